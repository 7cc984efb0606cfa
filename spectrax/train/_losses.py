"""Operator-learning losses on fields ``(*batch, C, *spatial)``: relative Lp, relative H1 (spectral
derivatives) and relative negative Sobolev ``H^s`` (Parseval).

Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations"
(relative L2); Liu, Cao, Chen, Ji, Li, Anandkumar (2024), "Spectral-Refiner: Accurate Fine-Tuning
of Spatiotemporal Fourier Neural Operator for Turbulent Flows" (negative Sobolev ``H^{-s}`` loss).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from spectrax._checks import check_choice, check_positive_int, check_real_float
from spectrax.transforms import sobolev_norm, spectral_derivative

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


def _real(*xs):
    dtype = jnp.float64 if any(x.dtype == jnp.float64 for x in xs) else jnp.float32
    return [x.astype(dtype) for x in xs]


def _ratio(num_sq: Array, den_sq: Array, reduction: str) -> Array:
    check_choice("reduction", reduction, tuple(_REDUCTIONS))
    eps = jnp.asarray(jnp.finfo(den_sq.dtype).tiny, den_sq.dtype)
    return _REDUCTIONS[reduction](jnp.sqrt(num_sq) / jnp.sqrt(jnp.maximum(den_sq, eps)))


def relative_lp_loss(
    pred: Float[ArrayLike, "..."],
    target: Float[ArrayLike, "..."],
    *,
    num_spatial_dims: int = 1,
    p: float = 2.0,
    reduction: str = "mean",
) -> Float[Array, "..."]:
    """Relative Lp error ``||pred - target||_p / ||target||_p`` per example.

    The norm runs over the channel and spatial axes (the last ``num_spatial_dims + 1``) of
    ``(*batch, C, *spatial)``; on a uniform grid the quadrature weight cancels in the ratio.

    Args:
        pred, target: real arrays of the same shape.
        num_spatial_dims: ``d`` (default 1).
        p: exponent ``>= 1`` (default 2, the FNO paper's metric).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over the batch axes.

    Returns:
        A scalar, or ``(*batch)`` with ``reduction="none"``.
    """
    d = _check_pair(pred, target, num_spatial_dims)
    if p < 1:
        raise ValueError(f"`p` must be >= 1; got {p}.")
    pred, target = _real(pred, target)
    axes = tuple(range(pred.ndim - d - 1, pred.ndim))
    pp = jnp.asarray(p, pred.dtype)
    num = jnp.sum(jnp.abs(pred - target) ** pp, axis=axes) ** (2 / pp)
    den = jnp.sum(jnp.abs(target) ** pp, axis=axes) ** (2 / pp)
    return _ratio(num, den, reduction)


def _h1_sq(u: Array, d: int, lengths) -> Array:
    axes = tuple(range(u.ndim - d - 1, u.ndim))
    total = jnp.sum(u**2, axis=axes)
    for j in range(d):
        orders = tuple(1 if i == j else 0 for i in range(d))
        total = total + jnp.sum(spectral_derivative(u, orders, lengths=lengths) ** 2, axis=axes)
    return total


def h1_loss(
    pred: Float[ArrayLike, "..."],
    target: Float[ArrayLike, "..."],
    *,
    num_spatial_dims: int = 1,
    lengths: float | Sequence[float] = 1.0,
    reduction: str = "mean",
) -> Float[Array, "..."]:
    """Relative H1 error ``||e||_{H1} / ||target||_{H1}`` with ``||u||_{H1}^2 = ||u||^2 +
    sum_j ||d_j u||^2``, derivatives by :func:`spectrax.transforms.spectral_derivative`.

    Fields are taken as periodic on a box of side ``lengths``; the grid quadrature weight cancels.
    Arguments and return as :func:`relative_lp_loss`.
    """
    d = _check_pair(pred, target, num_spatial_dims)
    pred, target = _real(pred, target)
    return _ratio(_h1_sq(pred - target, d, lengths), _h1_sq(target, d, lengths), reduction)


def sobolev_loss(
    pred: Float[ArrayLike, "..."],
    target: Float[ArrayLike, "..."],
    *,
    s: float = -1.0,
    num_spatial_dims: int = 1,
    lengths: float | Sequence[float] = 1.0,
    homogeneous: bool = False,
    reduction: str = "mean",
) -> Float[Array, "..."]:
    """Relative Sobolev ``H^s`` error by Parseval, ``||e||_{H^s} / ||target||_{H^s}`` (any real s).

    Negative ``s`` (the Spectral-Refiner loss, Liu et al., 2024) weights mode ``k`` by
    ``(1 + |k|^2)^s`` (``|k|^{2s}``, mean dropped, with ``homogeneous=True``): large scales dominate
    and high-frequency noise in the target is damped. Norms by
    :func:`spectrax.transforms.sobolev_norm`, summed over channels. Arguments and return as
    :func:`relative_lp_loss`.
    """
    d = _check_pair(pred, target, num_spatial_dims)
    pred, target = _real(pred, target)

    def sq(u):
        n = sobolev_norm(
            u, s, num_spatial_dims=d, lengths=lengths, homogeneous=homogeneous, squared=True
        )
        return jnp.sum(n, axis=-1)

    return _ratio(sq(pred - target), sq(target), reduction)
