"""HiPPO-LegS as online function approximation: the state at time ``t`` holds the Legendre
coefficients of the whole history ``u[0:t]`` (Gu et al., 2020, "HiPPO: Recurrent Memory with
Optimal Polynomial Projections", Sec. 3 and Appendix B)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from spectrax._checks import check_positive_int, check_real_float, compute_dtype
from spectrax.ssm import hippo
from spectrax.transforms import legendre


def legs_memory(u: Float[Array, " L"], N: int) -> Float[Array, "L N"]:
    """Run the scaled-Legendre (LegS) memory over a sequence and return every state.

    The continuous system is ``x'(t) = (A x(t) + B u(t)) / t`` with ``(A, B) =
    hippo("legs", N)``. It is discretised at ``t = k`` (``k = 1 … L``, sample ``k`` taken at
    ``t = k``) by the bilinear rule, as in the HiPPO paper:
    ``x_k = (I - A/2k)^{-1} ((I + A/2k) x_{k-1} + B u_k / k)``. ``A`` is lower triangular, so
    each step is one triangular solve. The state ``x_k`` approximates the vector of
    coefficients of ``u`` on ``[0, k]`` in the orthonormal basis of :func:`legs_reconstruct`,
    to first order: the zero initial state and the step make an error that falls as ``1/k``
    (measured for N = 32 and a smooth signal: relative coefficient error 1.8e-2, 9.4e-3,
    4.8e-3 at k = 500, 1000, 2000; even a constant input has ``x_k[0] = 1 - 1/(2k+1)`` at
    ``N = 1``).

    Args:
        u: ``(L,)`` real samples. N: state size (number of Legendre coefficients), ``>= 1``.

    Returns:
        ``(L, N)`` states, in the dtype of ``u`` (computed in float32 at least).
    """
    check_real_float("u", u)
    if u.ndim != 1:
        raise ValueError(f"`u` must be a 1-d sequence (L,); got shape {u.shape}.")
    n = check_positive_int("N", N)
    dtype = compute_dtype(jnp.result_type(u))
    a_np, b_np = hippo("legs", n)
    a = jnp.asarray(a_np.astype(np.float32) if dtype == jnp.float32 else a_np, dtype)
    b = jnp.asarray(b_np.astype(np.float32) if dtype == jnp.float32 else b_np, dtype)
    return _legs_scan(u.astype(dtype), a, b).astype(jnp.result_type(u))


@jax.jit
def _legs_scan(u: Array, a: Array, b: Array) -> Array:
    # module-level jit: eager calls reuse the compiled scan (a closure would retrace per call)
    n = b.shape[0]
    eye = jnp.eye(n, dtype=u.dtype)

    def step(x, inputs):
        k, uk = inputs
        half = a / (2.0 * k)
        rhs = (eye + half) @ x + b * (uk / k)
        x = jax.scipy.linalg.solve_triangular(eye - half, rhs, lower=True)
        return x, x

    ks = jnp.arange(1, u.shape[0] + 1, dtype=u.dtype)
    _, xs = jax.lax.scan(step, jnp.zeros((n,), u.dtype), (ks, u))
    return xs


def legs_reconstruct(
    coefficients: Float[Array, "*batch N"], s: Float[Array, " S"]
) -> Float[Array, "*batch S"]:
    """Evaluate ``Σ_n c_n sqrt(2n+1) P_n(2s - 1)`` at relative times ``s ∈ [0, 1]``.

    With the state ``x_k`` of :func:`legs_memory` as ``coefficients``, this approximates the
    history at times ``s · k``: ``u(s k) ≈ legs_reconstruct(x_k, s)`` (``s = 1`` is the
    newest sample, ``s = 0`` the oldest).

    Args:
        coefficients: ``(*batch, N)``. s: ``(S,)`` relative times in ``[0, 1]`` (outside it the
            series is extrapolated, and ``P_n(2s - 1)`` grows geometrically with ``n``).

    Returns:
        ``(*batch, S)``, in float32 (float64 if either input is float64; half precision is
        widened, so this is not the dtype of a half-precision :func:`legs_memory` state).
    """
    check_real_float("coefficients", coefficients)
    check_real_float("s", s)
    if coefficients.ndim < 1 or s.ndim != 1:
        raise ValueError(
            f"expected `coefficients` (*batch, N) and `s` (S,); got {coefficients.shape=} "
            f"and {s.shape=}."
        )
    n = coefficients.shape[-1]
    if n < 1:
        raise ValueError(
            f"`coefficients` must hold at least one coefficient on its last axis; got "
            f"{coefficients.shape=}."
        )
    dtype = compute_dtype(jnp.result_type(coefficients), jnp.result_type(s))
    p = legendre(n - 1, 2.0 * s.astype(dtype) - 1.0)  # (N, S)
    scale = jnp.sqrt(2.0 * jnp.arange(n, dtype=dtype) + 1.0)
    return jnp.einsum("...n,n,ns->...s", coefficients.astype(dtype), scale, p)
