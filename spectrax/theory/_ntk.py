"""Empirical neural tangent kernels, their spectra, and the gradient-descent dynamics they
predict (Jacot et al., 2018, "Neural Tangent Kernel: Convergence and Generalization in Neural
Networks"; Lee et al., 2019, "Wide Neural Networks of Any Depth Evolve as Linear Models Under
Gradient Descent")."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Inexact

from spectrax._checks import _describe, check_positive_int, check_real_float, compute_dtype


def _check_batch(name: str, x: Any) -> None:
    if not hasattr(x, "shape") or len(x.shape) < 1 or x.shape[0] < 1:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(
            f"`{name}` must be an array of examples with a leading batch axis (N, ...); got {got}."
        )


_PARTITION_HINT = (
    "Partition a model first, e.g. `params, static = eqx.partition(model, "
    "eqx.is_inexact_array)` and `f = lambda p, x: eqx.combine(p, static)(x)`."
)


def check_f(f: Any) -> None:
    """TypeError naming ``f`` unless it is callable (JAX's own 'Expected a callable value, got
    3' names no argument)."""
    if not callable(f):
        raise TypeError(
            f"`f` must be a callable f(params, x) -> y on one example; got {_describe(f)}."
        )


def check_params(params: Any) -> list:
    """The leaves of ``params``, or an error naming ``params`` unless every leaf is a real
    floating-point array (or Python float): what ``jax.grad`` and ``jax.jacrev`` can take."""
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("`params` has no array leaves; nothing to differentiate.")
    for leaf in leaves:
        if isinstance(leaf, float):
            continue
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not hasattr(leaf, "shape"):
            # e.g. an Equinox model's activation function: the model was not partitioned
            raise TypeError(
                "every leaf of `params` must be a real floating-point array; got a leaf of type "
                f"{type(leaf).__name__}. {_PARTITION_HINT}"
            )
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"every leaf of `params` must be a real floating-point array; got dtype {dtype}. "
                f"{_PARTITION_HINT}"
            )
    return leaves


def _jacobian(f: Callable, params: Any, x: Array) -> Array:
    """Per-example Jacobian of ``f(params, x_i)`` w.r.t. all parameters, flattened to
    ``(N, O, P)`` (``O`` = output size, ``P`` = number of parameter entries)."""
    leaves = check_params(params)
    # `f` must return one array: the flattening below reads the output shape off the first
    # Jacobian leaf, so a tuple or dict of outputs would be summed into one kernel silently.
    out = jax.eval_shape(f, params, jax.ShapeDtypeStruct(x.shape[1:], x.dtype))
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(
            "`f` must return one array per example (a scalar or an array of shape `out`); got "
            f"{jax.tree_util.tree_structure(out)}. Stack the outputs into one array."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            f"`f` must return a real floating-point array; got dtype {out.dtype}. For a complex "
            "output, return its real and imaginary parts stacked."
        )
    if math.prod(out.shape) == 0:
        raise ValueError(
            f"`f` must return at least one value per example; got an output of shape {out.shape}."
        )
    jac = jax.vmap(jax.jacrev(f), in_axes=(None, 0))(params, x)
    n = x.shape[0]
    # Each Jacobian leaf has shape (N, *out, *leaf_shape), leaves in the order of `params`.
    jac_leaves = jax.tree_util.tree_leaves(jac)
    out_ndim = jac_leaves[0].ndim - 1 - jnp.ndim(leaves[0])  # a leaf may be a Python float
    out_size = math.prod(jac_leaves[0].shape[1 : 1 + out_ndim])
    # one float type for the kernel: float64 if any leaf is, else float32 (half-precision
    # parameters are accumulated in float32)
    dtype = compute_dtype(*(j.dtype for j in jac_leaves))
    return jnp.concatenate([j.reshape(n, out_size, -1).astype(dtype) for j in jac_leaves], axis=-1)


def empirical_ntk(
    f: Callable[[Any, Array], Array],
    params: Any,
    x1: Inexact[Array, "N1 ..."],
    x2: Inexact[Array, "N2 ..."] | None = None,
) -> Float[Array, "N1 N2 *out"]:
    """The empirical NTK ``Θ(x, x') = J(x) J(x')ᵀ`` of ``f`` at ``params``.

    ``J(x) = ∂f(params, x)/∂params`` over every leaf of ``params`` (a pytree). For an Equinox
    model, partition it first::

        params, static = eqx.partition(model, eqx.is_inexact_array)
        f = lambda p, x: eqx.combine(p, static)(x)

    Args:
        f: ``f(params, x) -> y`` on one example; ``y`` a scalar or an array of shape ``out``.
        params: the point of linearisation, a pytree of real float arrays.
        x1: ``(N1, ...)`` examples. x2: ``(N2, ...)``, defaults to ``x1``.

    Returns:
        ``(N1, N2)`` for scalar (or single-element) outputs, else ``(N1, N2, O, O)`` with
        ``O = prod(out)``
        (the kernel between output components). In float32, or float64 if any leaf of
        ``params`` is (the Jacobian takes the parameters' dtype, whatever ``x`` and the output
        are; half-precision leaves are widened). Computed as an explicit Jacobian product:
        memory ``O((N1 + N2) · O · P)``, meant for the analysis of small and medium models.
    """
    check_f(f)
    _check_batch("x1", x1)
    if x2 is not None:  # checked before any Jacobian is computed
        _check_batch("x2", x2)
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"`x2` examples have shape {x2.shape[1:]} but `x1` examples have "
                f"{x1.shape[1:]}; expected the same per-example shape."
            )
    j1 = _jacobian(f, params, x1)
    j2 = j1 if x2 is None else _jacobian(f, params, x2)
    k = jnp.einsum("aop,bqp->aboq", j1, j2, precision=jax.lax.Precision.HIGHEST)
    if j1.shape[1] == 1:
        return k[:, :, 0, 0]
    return k


def ntk_eigh(
    ntk: Float[Array, "N N"],
) -> tuple[Float[Array, " N"], Float[Array, "N N"]]:
    """Eigenvalues (descending) and orthonormal eigenvectors (columns) of a symmetric NTK.

    Computed on ``(ntk + ntk.T) / 2`` in float32 (float64 for a float64 ``ntk``; a
    half-precision kernel is widened, as ``eigh`` has no half-precision path).

    Raises:
        TypeError: if ``ntk`` is not a real floating-point array.
        ValueError: if ``ntk`` is not square (e.g. a ``(N1, N2)`` cross-kernel or the
            ``(N, N, O, O)`` kernel of a vector output: take ``ntk[..., i, i]`` or reshape).
    """
    check_real_float("ntk", ntk)
    if ntk.ndim != 2 or ntk.shape[0] != ntk.shape[1]:
        raise ValueError(
            f"`ntk` must be a square (N, N) kernel on one set of points; got shape {ntk.shape}."
        )
    ntk = ntk.astype(compute_dtype(ntk.dtype))
    sym = 0.5 * (ntk + ntk.T)
    w, v = jnp.linalg.eigh(sym)
    return w[::-1], v[:, ::-1]


def gd_residuals(
    ntk: Float[Array, "N N"],
    residual0: Float[Array, " N"],
    learning_rate: float | Float[Array, ""],
    steps: int,
) -> Float[Array, "T N"]:
    """Training residuals ``r_t = f_t(X) - y`` predicted by the linearised model.

    For the loss ``L = (1/2N) Σ_i (f(x_i) - y_i)²`` (half the mean squared error) and plain
    gradient descent with rate ``η``, a model linear in its parameters follows exactly
    ``r_{t+1} = (I - η Θ / N) r_t``; a wide network follows it approximately (Lee et al.,
    2019). In the eigenbasis of ``Θ`` each component decays as ``(1 - η λ_i / N)^t``: the
    directions with small eigenvalues (for smooth networks, the high frequencies) are learned
    last, which is the spectral bias.

    Computed by applying ``I - η Θ / N`` step by step, with ``Θ`` symmetrised as
    ``(ntk + ntk.T) / 2`` (half precision widened to float32), so the result is differentiable
    in ``ntk`` and ``learning_rate`` everywhere, repeated eigenvalues included.

    Args:
        ntk: ``(N, N)`` symmetric kernel on the training points.
        residual0: ``(N,)`` the residual at initialisation.
        learning_rate: ``η > 0``, finite, a scalar (may be traced, e.g. under ``vmap`` over
            rates).
        steps: number of steps ``T >= 0``, static.

    Returns:
        ``(T + 1, N)``: ``r_0 … r_T``, in float32 (float64 if ``ntk`` or ``residual0`` is).
    """
    check_real_float("ntk", ntk)
    check_real_float("residual0", residual0)
    if ntk.ndim != 2 or ntk.shape[0] != ntk.shape[1]:
        raise ValueError(f"`ntk` must be a square (N, N) kernel; got shape {ntk.shape}.")
    if residual0.shape != (ntk.shape[0],):
        raise ValueError(
            f"`residual0` must have shape ({ntk.shape[0]},) to match `ntk`; got {residual0.shape}."
        )
    # a concrete rate is checked here; a traced one (jit/vmap over rates) is the caller's
    # NumPy complex scalars are np.number but not real: they go to the dtype check below
    real_number = (int, float, np.integer, np.floating)
    if isinstance(learning_rate, bool) or not (
        isinstance(learning_rate, real_number) or hasattr(learning_rate, "dtype")
    ):
        raise TypeError(f"`learning_rate` must be a real number; got {learning_rate!r}.")
    steps = check_positive_int("steps", steps, minimum=0)
    dtype = compute_dtype(ntk.dtype, residual0.dtype)
    if isinstance(learning_rate, real_number):
        try:
            lr = float(learning_rate)  # weakly typed: takes the kernel's dtype
        except OverflowError:  # an int beyond float range
            lr = math.inf
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"`learning_rate` must be > 0 and finite; got {learning_rate!r}.")
    else:
        # an integer array is a number, as a Python or NumPy int is (jnp.array(1) was refused)
        if not (
            jnp.issubdtype(learning_rate.dtype, jnp.floating)
            or jnp.issubdtype(learning_rate.dtype, jnp.integer)
        ):
            raise TypeError(
                f"`learning_rate` must be a real number; got an array of dtype "
                f"{learning_rate.dtype}."
            )
        # one rate: an (N,) array would scale the eigenvalues entrywise, silently
        if jnp.ndim(learning_rate) != 0:
            raise ValueError(
                f"`learning_rate` must be a scalar; got shape {jnp.shape(learning_rate)}. To "
                "compare several rates, jax.vmap over them."
            )
        if not isinstance(learning_rate, jax.core.Tracer):
            value = np.asarray(learning_rate)
            if not (value > 0 and np.isfinite(value)):
                raise ValueError(f"`learning_rate` must be > 0 and finite; got {value!r}.")
        # one dtype throughout (a float32 rate traced beside a float64 kernel, strict promotion)
        lr = learning_rate.astype(dtype)
    # The recursion itself, not the eigendecomposition it diagonalises: r_T is a polynomial in
    # the kernel, but the derivative of `eigh` has 1/(λ_i - λ_j) terms, NaN for a repeated
    # eigenvalue and inaccurate for close ones (the zero eigenvalues of a kernel J Jᵀ with
    # fewer parameters than points). Same O(T N²) work as applying the eigenbasis.
    ntk = ntk.astype(dtype)
    n = ntk.shape[0]
    step = (0.5 * lr) * (ntk + ntk.T) / n
    r0 = residual0.astype(dtype)

    def one(r, _):
        r = r - jnp.matmul(step, r, precision=jax.lax.Precision.HIGHEST)
        return r, r

    _, rs = jax.lax.scan(one, r0, None, length=steps)
    return jnp.concatenate([r0[None, :], rs], axis=0)
