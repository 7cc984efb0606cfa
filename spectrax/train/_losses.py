"""Operator-learning losses on fields ``(*batch, C, *spatial)``: relative Lp, relative H1 and
relative Sobolev ``H^s`` (the last two by Parseval).

Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations"
(relative L2); Cao, Brarda, Li & Xi (2024, ICLR 2025; arXiv:2405.17211), "Spectral-Refiner:
Accurate Fine-Tuning of Spatiotemporal Fourier Neural Operator for Turbulent Flows" (negative
Sobolev ``H^{-s}`` loss).

Every loss takes ``num_spatial_dims`` as a required keyword: a default would silently compute a
1-d loss along the last axis of a 2-d or 3-d field. Each norm has the zero subgradient where it
vanishes, so an example with ``pred == target`` contributes a zero (not NaN) gradient.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from spectrax._checks import check_choice, check_positive_int, check_real_float
from spectrax.transforms import sobolev_norm

_REDUCTIONS: dict[str, Callable[[Array], Array]] = {
    "mean": jnp.mean,
    "sum": jnp.sum,
    "none": lambda v: v,
}


def _check_pair(pred, target, num_spatial_dims: int) -> int:
    check_real_float("pred", pred)
    check_real_float("target", target)
    d = check_positive_int("num_spatial_dims", num_spatial_dims)
    if pred.shape != target.shape:
        raise ValueError(
            f"`pred` and `target` must have the same shape; got pred.shape={pred.shape}, "
            f"target.shape={target.shape}."
        )
    if pred.ndim < d + 1:
        raise ValueError(
            f"`pred` must be (*batch, C, *spatial) with {d} spatial axes; got shape {pred.shape}."
        )
    return d


def _check_p(p) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"`p` must be a real number >= 1 or math.inf; got {type(p).__name__}.")
    p = float(p)
    if math.isnan(p) or p < 1:
        raise ValueError(f"`p` must be a real number >= 1 or math.inf (max norm); got {p}.")
    return p


def _real(*xs) -> list[Array]:
    """JAX arrays (NumPy input accepted) in the compute dtype: float64 if any input is and x64
    is on, else float32 (a NumPy float64 input with x64 off computes in float32, as JAX does
    with it everywhere, without JAX's truncation warning)."""
    wide = any(x.dtype == jnp.float64 for x in xs)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64) if wide else jnp.dtype(jnp.float32)
    return [jnp.asarray(x, dtype) for x in xs]


def _safe_sqrt(v: Array) -> Array:
    """``sqrt(v)`` for ``v >= 0`` with the zero subgradient at ``v = 0``.

    ``d sqrt(v)/dv`` is infinite at 0 and the chain rule turns it into NaN (``inf * 0``); the
    inner ``where`` keeps the evaluated root away from 0, the outer one returns 0 there. A NaN
    ``v`` stays NaN (``!= 0``, not ``> 0``: a diverged prediction must not score 0).
    """
    pos = v != 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def _lp_norm(x: Array, p: float, axes: tuple[int, ...]) -> Array:
    """``(sum |x|^p)^(1/p)`` over ``axes`` (``max |x|`` for ``p = inf``), zero subgradient at 0.

    The sum is taken of ``(|x| / m)^p`` with ``m = max |x|`` held constant (the norm is
    1-homogeneous, so value and gradient are those of the plain formula): no overflow or
    underflow of ``|x|^p``, and the root is of a number ``>= 1`` wherever ``x != 0``.
    """
    a = jnp.abs(x)
    m = jnp.max(a, axis=axes, keepdims=True)
    pos = m != 0  # a NaN max (a NaN in x) propagates instead of reading as a zero norm
    if math.isinf(p):
        norm = jnp.where(pos, m, 0.0)
    else:
        scale = jax.lax.stop_gradient(jnp.where(pos, m, 1.0))
        v = jnp.sum((a / scale) ** p, axis=axes, keepdims=True)
        norm = jnp.where(pos, scale * jnp.where(pos, v, 1.0) ** (1.0 / p), 0.0)
        norm = jnp.where(jnp.isinf(m), m, norm)  # inf / inf in the rescaling read as NaN
    return jnp.squeeze(norm, axis=axes)


def _ratio(num: Array, den: Array, reduction: str) -> Array:
    """``num / den`` of two norms; a zero ``den`` is replaced by ``sqrt(tiny)`` (only a zero
    one: every norm below it was, and a target of 1e-30 gave 2.6e-11 for a relative error of
    0.5)."""
    check_choice("reduction", reduction, tuple(_REDUCTIONS))
    eps = jnp.sqrt(jnp.asarray(jnp.finfo(den.dtype).tiny, den.dtype))
    return _REDUCTIONS[reduction](num / jnp.where(den > 0, den, eps))


def _scaled_pair(pred: Array, target: Array, d: int) -> tuple[Array, Array]:
    """``pred - target`` and ``target``, each example divided by its ``max |target|`` (held
    constant for the gradient; the ratio of the two norms does not change) so that the squared
    Parseval sums of :func:`h1_loss` and :func:`sobolev_loss` neither overflow (NaN for fields
    above about 1e19 in float32) nor underflow (a loss of exactly 0, and no gradient, below
    about 1e-19)."""
    axes = tuple(range(target.ndim - d - 1, target.ndim))
    m = jax.lax.stop_gradient(jnp.max(jnp.abs(target), axis=axes, keepdims=True))
    scale = jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))
    return (pred - target) / scale, target / scale


def _nonfinite_norm(norm: Array, err: Array, d: int) -> Array:
    """``norm`` of ``err`` per example, ``inf`` where ``err`` holds an infinite entry and NaN
    where it holds a NaN, as :func:`relative_lp_loss` gives: the FFT of an infinite entry is
    NaN, so a diverged prediction's Sobolev error read as NaN."""
    axes = tuple(range(err.ndim - d - 1, err.ndim))
    has_inf = jnp.any(jnp.isinf(err), axis=axes)
    has_nan = jnp.any(jnp.isnan(err), axis=axes)
    return jnp.where(has_nan, jnp.nan, jnp.where(has_inf, jnp.inf, norm))


def relative_lp_loss(
    pred: Float[ArrayLike, "..."],
    target: Float[ArrayLike, "..."],
    *,
    num_spatial_dims: int,
    p: float = 2.0,
    reduction: str = "mean",
) -> Float[Array, "..."]:
    """Relative Lp error ``||pred - target||_p / ||target||_p`` per example.

    The norm runs over the channel and spatial axes (the last ``num_spatial_dims + 1``) of
    ``(*batch, C, *spatial)``; on a uniform grid the quadrature weight cancels in the ratio.
    At ``pred == target`` the gradient is the zero subgradient (finite, for every ``p``).
    A target of zero norm has its denominator clamped to ``sqrt(tiny)`` of the dtype (1.1e-19
    in float32, 1.5e-154 in float64): that example's loss is 0 if ``pred`` is 0 too, else the
    finite but huge ``||pred|| / sqrt(tiny)`` (never inf or NaN; it dominates a mean). An
    infinite entry in ``pred`` (a diverged model) gives ``inf``, a NaN gives NaN.

    Args:
        pred, target: real arrays of the same shape.
        num_spatial_dims: ``d``, the number of trailing spatial axes (required: no default).
        p: exponent ``>= 1`` (default 2, the FNO paper's metric), or ``math.inf`` for the max
            norm ``max |pred - target| / max |target|``. NaN is refused.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over the batch axes.

    Returns:
        A scalar, or ``(*batch)`` with ``reduction="none"``.

    Raises:
        ValueError: ``p`` NaN or ``< 1``, shapes that differ or lack ``d + 1`` axes, an unknown
            ``reduction``.
        TypeError: non-floating arrays, a non-numeric ``p``, ``num_spatial_dims`` omitted.
    """
    d = _check_pair(pred, target, num_spatial_dims)
    p = _check_p(p)
    pred, target = _real(pred, target)
    axes = tuple(range(pred.ndim - d - 1, pred.ndim))
    return _ratio(_lp_norm(pred - target, p, axes), _lp_norm(target, p, axes), reduction)


def _sobolev_sq(u: Array, s: float, d: int, lengths, homogeneous: bool) -> Array:
    """Squared ``H^s`` norm by Parseval per ``(*batch)``, summed over the channel axis."""
    n = sobolev_norm(
        u, s, num_spatial_dims=d, lengths=lengths, homogeneous=homogeneous, squared=True
    )
    return jnp.sum(n, axis=-1)


def h1_loss(
    pred: Float[ArrayLike, "..."],
    target: Float[ArrayLike, "..."],
    *,
    num_spatial_dims: int,
    lengths: ArrayLike | Sequence[ArrayLike] = 1.0,
    reduction: str = "mean",
) -> Float[Array, "..."]:
    """Relative H1 error ``||e||_{H1} / ||target||_{H1}`` with ``||u||_{H1}^2 = ||u||^2 +
    sum_j ||d_j u||^2`` (the full norm, L2 part included), summed over channels.

    Computed by Parseval, ``|Omega| sum_k (1 + |k|^2) |c_k|^2`` (:func:`spectrax.transforms.
    sobolev_norm` with ``s = 1``, the same number as ``sobolev_loss(s=1)``): every mode the grid
    holds is weighted by ``1 + |k|^2``, the Nyquist (checkerboard) mode of an even axis included.
    (Derivatives from :func:`~spectrax.transforms.spectral_derivative` would drop that mode from
    the seminorm, so a grid-scale error would count as pure L2.) Fields are taken as periodic on
    a box of side ``lengths`` (a number, one per spatial axis, or a real JAX array of shape
    ``()`` or ``(d,)`` that may be traced: ``jax.grad`` with respect to the domain size, ``jax.
    vmap`` over sizes; concrete values must be positive and finite, a traced one is not checked;
    dtypes as :func:`spectrax.transforms.sobolev_norm`); the grid quadrature weight cancels.
    Arguments, return, errors and a zero-norm target as :func:`relative_lp_loss`.
    """
    d = _check_pair(pred, target, num_spatial_dims)
    pred, target = _real(pred, target)
    err, target = _scaled_pair(pred, target, d)
    num = _nonfinite_norm(_safe_sqrt(_sobolev_sq(err, 1.0, d, lengths, False)), err, d)
    den = _safe_sqrt(_sobolev_sq(target, 1.0, d, lengths, False))
    return _ratio(num, den, reduction)


def sobolev_loss(
    pred: Float[ArrayLike, "..."],
    target: Float[ArrayLike, "..."],
    *,
    num_spatial_dims: int,
    s: float = -1.0,
    lengths: ArrayLike | Sequence[ArrayLike] = 1.0,
    homogeneous: bool = False,
    reduction: str = "mean",
) -> Float[Array, "..."]:
    """Relative Sobolev ``H^s`` error by Parseval, ``||e||_{H^s} / ||target||_{H^s}`` (any real s).

    Negative ``s`` weights mode ``k`` by ``(1 + |k|^2)^s`` (``|k|^{2s}``, mean dropped, with
    ``homogeneous=True``): large scales dominate and high-frequency noise in the target is
    damped. Spectral-Refiner (Cao, Brarda, Li & Xi, 2024) fine-tunes with a negative Sobolev
    (``H^{-1}``) norm evaluated by Parseval, there of the PDE residual in an a posteriori error
    estimator; here the same kind of norm measures the prediction error against data. Norms by
    :func:`spectrax.transforms.sobolev_norm`, summed over channels; ``lengths`` as in
    :func:`h1_loss` (JAX arrays, traced or not, accepted). Arguments, return, errors and a
    zero-norm target as :func:`relative_lp_loss`.
    """
    d = _check_pair(pred, target, num_spatial_dims)
    pred, target = _real(pred, target)
    err, target = _scaled_pair(pred, target, d)
    num = _nonfinite_norm(_safe_sqrt(_sobolev_sq(err, s, d, lengths, homogeneous)), err, d)
    den = _safe_sqrt(_sobolev_sq(target, s, d, lengths, homogeneous))
    return _ratio(num, den, reduction)
