"""2D Darcy flow -∇·(a ∇u) = f on the unit square, u = 0 on the boundary: a finite-volume
solver (preconditioned conjugate gradients) and the FNO benchmark data."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    broadcast_leading,
    check_positive_int,
    check_real_float,
    compute_dtype,
)
from spectrax.data._grf import grf_neumann

__all__ = ["darcy_dataset", "darcy_operator", "darcy_solve"]

# Relative residual reached by default, by the dtype of the solve.
_DEFAULT_TOL = {jnp.dtype(jnp.float32): 1e-5, jnp.dtype(jnp.float64): 1e-11}


FACE_MEANS = ("harmonic", "arithmetic")


def _face(a, b, face_mean: str):
    if face_mean == "harmonic":
        return 2.0 * a * b / (a + b)
    return 0.5 * (a + b)


def _check_face_mean(face_mean) -> str:
    if face_mean not in FACE_MEANS:
        raise ValueError(f"`face_mean` must be one of {FACE_MEANS}; got {face_mean!r}.")
    return face_mean


def _apply(a, u_int, face_mean: str = "harmonic"):
    """The 5-point finite-volume operator at the interior nodes.

    ``a``: (s, s) node values; ``u_int``: (s-2, s-2) interior values (zero Dirichlet data).
    Face conductivities are the harmonic means of the two adjacent nodes (the flux-continuous
    choice for piecewise-constant coefficients) or their arithmetic means (``face_mean``).
    """
    s = a.shape[-1]
    h2 = jnp.asarray((s - 1) ** 2, a.dtype)
    u = jnp.pad(u_int, 1)
    flux_x = _face(a[1:, :], a[:-1, :], face_mean) * (u[1:, :] - u[:-1, :])
    flux_y = _face(a[:, 1:], a[:, :-1], face_mean) * (u[:, 1:] - u[:, :-1])
    div = (flux_x[1:, 1:-1] - flux_x[:-1, 1:-1]) + (flux_y[1:-1, 1:] - flux_y[1:-1, :-1])
    return -div * h2


def _dst1(x, axis: int):
    """Unnormalised DST-I along ``axis``: X_k = sum_j x_j sin(pi j k / (m + 1)), j, k = 1..m,
    from the FFT of the odd extension of length 2 (m + 1)."""
    x = jnp.moveaxis(x, axis, -1)
    zero = jnp.zeros(x.shape[:-1] + (1,), x.dtype)
    ext = jnp.concatenate([zero, x, zero, -x[..., ::-1]], axis=-1)
    m = x.shape[-1]
    out = -jnp.imag(jnp.fft.rfft(ext)[..., 1 : m + 1]) / 2
    return jnp.moveaxis(out, -1, axis)


def _laplacian_inverse(s: int, dtype):
    """Inverse of the constant-coefficient 5-point Dirichlet Laplacian on the (s-2)^2 interior,
    diagonalised by DST-I: the preconditioner. With it the conjugate-gradient iteration count
    depends on max(a) / min(a) only, not on the grid."""
    m = s - 2
    h2 = (s - 1) ** 2
    p = np.arange(1, m + 1)
    lam1 = 4 * h2 * np.sin(p * np.pi / (2 * (m + 1))) ** 2
    inv = (2.0 / (m + 1)) ** 2 / (lam1[:, None] + lam1[None, :])
    inv = jnp.asarray(inv, dtype)

    def apply(r):
        return _dst1(_dst1(_dst1(_dst1(r, 0), 1) * inv, 0), 1)

    return apply


def _pcg_one(a, f_int, tol: float, max_iter: int, face_mean: str = "harmonic"):
    s = a.shape[-1]
    precond = _laplacian_inverse(s, a.dtype)
    b = f_int
    b_norm2 = jnp.vdot(b, b)
    tol2 = jnp.asarray(tol**2, a.dtype) * b_norm2

    def cond(state):
        _, r, _, _, _, it = state
        return jnp.logical_and(jnp.vdot(r, r) > tol2, it < max_iter)

    def body(state):
        x, r, z, p, rz, it = state
        ap = _apply(a, p, face_mean)
        alpha = rz / jnp.vdot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_new = jnp.vdot(r, z)
        p = z + (rz_new / rz) * p
        return x, r, z, p, rz_new, it + 1

    x0 = jnp.zeros_like(b)
    z0 = precond(b)
    state = (x0, b, z0, z0, jnp.vdot(b, z0), jnp.asarray(0, jnp.int32))
    x, *_ = jax.lax.while_loop(cond, body, state)
    return jnp.pad(x, 1)


@functools.partial(jax.jit, static_argnames=("tol", "max_iter", "face_mean"))
def _solve(a, f, tol, max_iter, face_mean):
    s = a.shape[-1]
    lead = a.shape[:-2]
    a_flat = a.reshape((-1, s, s))
    f_flat = f.reshape((-1, s, s))[:, 1:-1, 1:-1]
    u = jax.vmap(lambda ai, fi: _pcg_one(ai, fi, tol, max_iter, face_mean))(a_flat, f_flat)
    return u.reshape(lead + (s, s))


def _check_grid(name: str, x) -> None:
    check_real_float(name, x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 3:
        raise ValueError(f"`{name}` must have shape (*batch, s, s) with s >= 3; got {x.shape=}.")


def darcy_operator(
    a: Float[Array, "*Ba X Y"],
    u: Float[Array, "*Bu X Y"],
    *,
    face_mean: str = "harmonic",
) -> Float[Array, "*B X Y"]:
    """The discrete operator -∇·(a ∇u) of :func:`darcy_solve` at the interior nodes.

    Args:
        a: positive coefficient at the ``s x s`` nodes ``(i, j) / (s - 1)``.
        u: values at the same nodes; the boundary values are taken as zero.
        face_mean: face conductivities from the two adjacent nodes, ``"harmonic"`` or
            ``"arithmetic"`` (as :func:`darcy_solve`).

    Returns:
        Shape ``(*batch, s, s)``: the 5-point finite-volume operator at interior nodes, zero
        on the boundary. ``darcy_operator(a, u) - f`` is the discrete residual.
    """
    _check_grid("a", a)
    _check_grid("u", u)
    face_mean = _check_face_mean(face_mean)
    if a.shape[-2:] != u.shape[-2:]:
        raise ValueError(f"`a` and `u` must be on the same grid; got {a.shape=} and {u.shape=}.")
    s = a.shape[-1]
    dtype = compute_dtype(a.dtype, u.dtype)
    lead = broadcast_leading("a", a.shape[:-2], "u", u.shape[:-2])
    a_flat = jnp.broadcast_to(a.astype(dtype), lead + (s, s)).reshape((-1, s, s))
    u_flat = jnp.broadcast_to(u.astype(dtype), lead + (s, s)).reshape((-1, s, s))[:, 1:-1, 1:-1]
    out = jax.vmap(lambda ai, ui: jnp.pad(_apply(ai, ui, face_mean), 1))(a_flat, u_flat)
    return out.reshape(lead + (s, s))


def darcy_solve(
    a: Float[Array, "*Ba X Y"],
    f: float | Float[Array, "*Bf X Y"] = 1.0,
    *,
    tol: float | None = None,
    max_iter: int = 2000,
    face_mean: str = "harmonic",
) -> Float[Array, "*B X Y"]:
    """Solve ``-∇·(a ∇u) = f`` on the unit square with ``u = 0`` on the boundary.

    Cell-centred-flux finite volumes on the node grid ``(i, j) / (s - 1)`` (the 5-point stencil
    with harmonic means of ``a`` at the faces, second order for smooth ``a``), solved by
    conjugate gradients preconditioned with the fast (DST-I) inverse of the constant-coefficient
    Laplacian: the iteration count is bounded by ``sqrt(max a / min a)`` times a log of the
    tolerance, independent of ``s`` (for the FNO coefficient, ratio 4: 10 iterations to a
    relative error of 1e-6 in float32, at 85 and at 421 nodes alike).

    Args:
        a: coefficient at the nodes, shape ``(*batch, s, s)``, ``s >= 3``, positive
            (positivity is not checked under ``jit``; a non-positive ``a`` gives garbage).
        f: right-hand side, a Python float or node values ``(*batch', s, s)`` whose leading
            dimensions broadcast with ``a``'s (boundary entries are ignored). Default ``1.0`` as
            in the FNO benchmark.
        tol: relative residual ``||A u - f|| / ||f||`` to reach (default 1e-5 in float32,
            1e-11 in float64).
        max_iter: iteration cap.
        face_mean: conductivity of the face between two nodes: ``"harmonic"`` (default) mean
            of their coefficients, flux-continuous across a jump of ``a``; or ``"arithmetic"``,
            the choice of the FNO paper's MATLAB data generator (``solve_gwf``). The two agree
            to second order where ``a`` is smooth and differ by O(h) next to a jump.

    Returns:
        ``u`` at the nodes, shape ``(*broadcast batch, s, s)``, zero on the boundary, dtype of
        ``a``.
    """
    _check_grid("a", a)
    dtype = jnp.float64 if a.dtype == jnp.float64 else jnp.float32
    if isinstance(f, (int, float)) and not isinstance(f, bool):
        f = jnp.full(a.shape[-2:], f, dtype)
    else:
        check_real_float("f", f)
        if f.ndim < 2 or f.shape[-2:] != a.shape[-2:]:
            raise ValueError(f"`f` must end with the grid shape {a.shape[-2:]}; got {f.shape=}.")
        f = f.astype(dtype)
    lead = broadcast_leading("a", a.shape[:-2], "f", f.shape[:-2])
    a = jnp.broadcast_to(a, lead + a.shape[-2:])
    f = jnp.broadcast_to(f, lead + f.shape[-2:])
    tol = _DEFAULT_TOL[jnp.dtype(dtype)] if tol is None else float(tol)
    if not tol > 0:
        raise ValueError(f"`tol` must be > 0; got {tol}.")
    max_iter = check_positive_int("max_iter", max_iter)
    face_mean = _check_face_mean(face_mean)
    return _solve(a.astype(dtype), f, tol, max_iter, face_mean).astype(a.dtype)


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_samples",
        "s_fine",
        "stride",
        "values",
        "grf",
        "tol",
        "batch_size",
        "face_mean",
    ),
)
def _generate(key, num_samples, s_fine, stride, values, grf, tol, batch_size, face_mean):
    alpha, tau, sigma = grf
    high, low = values
    f = jnp.ones((s_fine - 2, s_fine - 2), jnp.float32)

    def one(k):
        g = grf_neumann(k, s_fine, alpha=alpha, tau=tau, sigma=sigma)
        a = jnp.where(g >= 0, jnp.float32(high), jnp.float32(low))
        u = _pcg_one(a, f, tol, 2000, face_mean)
        return a[::stride, ::stride], u[::stride, ::stride]

    keys = jax.random.split(key, num_samples)
    return jax.lax.map(one, keys, batch_size=batch_size)


def darcy_dataset(
    key: PRNGKeyArray,
    num_samples: int,
    resolution: int,
    *,
    solver_resolution: int | None = None,
    a_high: float = 12.0,
    a_low: float = 3.0,
    alpha: float = 2.0,
    tau: float = 3.0,
    tol: float = 1e-5,
    batch_size: int = 64,
    face_mean: str = "harmonic",
) -> tuple[Float[Array, "B X Y"], Float[Array, "B X Y"]]:
    """The FNO Darcy benchmark: piecewise-constant coefficients and the pressure they produce.

    Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations":
    ``-∇·(a ∇u) = 1`` on the unit square, ``u = 0`` on the boundary,
    ``a = a_high`` where ``g >= 0`` and ``a_low`` elsewhere, ``g ~ N(0, (-Δ + 9 I)^(-2))`` with
    Neumann conditions (:func:`grf_neumann`). Solved by :func:`darcy_solve` on
    ``solver_resolution`` nodes per side and subsampled to ``resolution`` (the paper solves on
    421 and subsamples to 85, 141, 211: pass ``solver_resolution=421``).

    Cost: about 10 PCG iterations of a few FFTs of the solver grid per sample, at any grid
    size. Measured on 2 CPU cores: 1000 samples at 85 in 4 s; 100 samples solved at 421 and
    subsampled to 85 in 10 s (compilation included).

    Args:
        key: a PRNG key; sample ``i`` uses ``jax.random.split(key, num_samples)[i]``.
        num_samples: number of pairs.
        resolution: output nodes per side (boundary included), ``>= 3``.
        solver_resolution: internal nodes per side (default ``resolution``); ``solver_resolution
            - 1`` must be a multiple of ``resolution - 1``.
        a_high, a_low: the two coefficient values.
        alpha, tau: covariance of ``g`` (only its sign matters, so no amplitude).
        tol: relative residual of the solve.
        batch_size: samples solved at once (memory bound; results do not depend on it).
        face_mean: face conductivities of the solver (:func:`darcy_solve`); ``"arithmetic"``
            as the paper's MATLAB generator.

    Returns:
        ``(a, u)``: float32, each of shape ``(num_samples, resolution, resolution)``.
    """
    num_samples = check_positive_int("num_samples", num_samples)
    resolution = check_positive_int("resolution", resolution, minimum=3)
    solver_resolution = resolution if solver_resolution is None else solver_resolution
    solver_resolution = check_positive_int("solver_resolution", solver_resolution, minimum=3)
    if (solver_resolution - 1) % (resolution - 1):
        raise ValueError(
            f"`solver_resolution - 1`={solver_resolution - 1} must be a multiple of "
            f"`resolution - 1`={resolution - 1} so that the output nodes are solver nodes "
            f"(e.g. resolution 85 from solver_resolution 421)."
        )
    for name, value in (("a_high", a_high), ("a_low", a_low)):
        if not value > 0:
            raise ValueError(f"`{name}` must be > 0; got {value}.")
    batch_size = check_positive_int("batch_size", batch_size)
    face_mean = _check_face_mean(face_mean)
    a, u = _generate(
        key,
        num_samples,
        solver_resolution,
        (solver_resolution - 1) // (resolution - 1),
        (float(a_high), float(a_low)),
        (float(alpha), float(tau), 1.0),
        float(tol),
        min(batch_size, num_samples),
        face_mean,
    )
    return a, u
