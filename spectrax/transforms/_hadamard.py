"""Orthogonal real transforms along one axis: the fast Walsh–Hadamard transform and the
orthonormal discrete cosine and sine transforms (type II and their inverses, type III)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Inexact

from spectrax._checks import check_bool, check_inexact, check_real_float, compute_dtype, lift_rank


def _check_axis(name: str, x: Array, axis) -> int:
    """Normalise ``axis`` of ``x`` to ``0 <= axis < x.ndim`` or raise naming both."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be an int; got {type(axis).__name__} {axis!r}.")
    if x.ndim == 0:
        raise ValueError(
            f"`{name}` is a scalar (shape ()); expected an array with at least one axis to "
            "transform along."
        )
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"`axis`={axis} is out of range for `{name}` of shape {x.shape}: expected "
            f"{-x.ndim} <= axis < {x.ndim}."
        )
    return int(axis) % x.ndim


def _work_dtype(dtype) -> np.dtype:
    """Dtype the arithmetic runs in: complex stays complex, half precision computes in
    float32 (in bf16 every one of the log2(n) butterfly stages would round)."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return dtype
    return compute_dtype(dtype)


def walsh_hadamard(
    x: Inexact[Array, "..."], axis: int = -1, *, normalize: bool = True
) -> Inexact[Array, "..."]:
    """Fast Walsh–Hadamard transform in Sylvester (natural) order along one axis.

    Fino & Algazi, 1976, "Unified matrix treatment of the fast Walsh–Hadamard transform".
    Along ``axis`` of length ``n = 2^k`` this is ``y = H_n x`` with the Sylvester matrix
    ``H_1 = [1]``, ``H_{2m} = [[H_m, H_m], [H_m, -H_m]]``, i.e.
    ``H[i, j] = (-1)^popcount(i & j)`` (``scipy.linalg.hadamard(n)``), scaled by
    ``1/sqrt(n)`` when ``normalize``. ``H_n`` is symmetric, so the transform of the last axis
    equals ``x @ H_n``; with ``normalize=True`` it is orthonormal and its own inverse
    (``walsh_hadamard(walsh_hadamard(x)) == x``, ``||y|| == ||x||``).

    Computed with ``k`` butterfly stages of reshapes, ``O(n log n)`` additions; the ``n x n``
    matrix is never built.

    Args:
        x: real or complex array of any shape; ``x.shape[axis]`` must be a power of two
            (``1, 2, 4, ...``). Complex input is transformed as its real and imaginary parts
            (``H`` is real).
        axis: the axis to transform (default: the last).
        normalize: scale by ``1/sqrt(n)`` (orthonormal, self-inverse). ``False`` gives the
            unscaled ``±1`` transform, whose inverse is itself divided by ``n``.

    Returns:
        Same shape and dtype as ``x``. float32/float64/complex inputs compute in their own
        dtype; float16/bfloat16 compute in float32 and are cast back.
    """
    check_inexact("x", x)
    ax = _check_axis("x", x, axis)
    normalize = check_bool("normalize", normalize, " (it picks the scaling at trace time)")
    n = x.shape[ax]
    if n < 1 or n & (n - 1):
        nxt = 1 << max(n - 1, 0).bit_length()
        raise ValueError(
            f"`x` has length {n} along axis {axis} (shape {x.shape}); the Walsh–Hadamard "
            f"transform needs a power of two (1, 2, 4, 8, ...). Zero-pad that axis, e.g. to "
            f"{nxt}."
        )
    return _wht(x, ax, normalize)


# Jitted so an eager call compiles once per shape rather than dispatching every stage.
@functools.partial(jax.jit, static_argnums=(1, 2))
def _wht(x: Array, ax: int, normalize: bool) -> Array:
    n = x.shape[ax]
    y = jnp.moveaxis(x.astype(_work_dtype(x.dtype)), ax, -1)
    lead = y.shape[:-1]
    h = 1
    while h < n:
        # Index i = (j, c, r) with c the bit of weight h: the stage applies [[1, 1], [1, -1]]
        # to that bit, and the product over all bits is (-1)^popcount(i & j).
        y = y.reshape(lead + (n // (2 * h), 2, h))
        a, b = y[..., 0, :], y[..., 1, :]
        y = jnp.stack([a + b, a - b], axis=-2)
        h *= 2
    y = y.reshape(lead + (n,))
    if normalize and n > 1:
        y = y * (1.0 / math.sqrt(n))
    return jnp.moveaxis(y, -1, ax).astype(x.dtype)


def _prepare_real(name: str, x: Array, axis) -> int:
    check_real_float(name, x)
    ax = _check_axis(name, x, axis)
    if x.shape[ax] < 1:
        raise ValueError(
            f"`{name}` has length 0 along axis {axis} (shape {x.shape}); expected length >= 1."
        )
    return ax


def _alternate(x: Array, ax: int) -> Array:
    """Multiply by ``(-1)^j`` along axis ``ax`` (exact in any dtype)."""
    n = x.shape[ax]
    sign = jnp.asarray(1 - 2 * (np.arange(n) % 2), x.dtype)
    sign = lift_rank(sign.reshape((n,) + (1,) * (x.ndim - ax - 1)), x.ndim)
    return x * sign


# XLA has no half-precision FFT: compute in float32 (float64 stays float64), cast back.
@functools.partial(jax.jit, static_argnums=1)
def _dct(x: Array, ax: int) -> Array:
    y = jax.scipy.fft.dct(x.astype(compute_dtype(x.dtype)), type=2, axis=ax, norm="ortho")
    return y.astype(x.dtype)


@functools.partial(jax.jit, static_argnums=1)
def _idct(y: Array, ax: int) -> Array:
    x = jax.scipy.fft.idct(y.astype(compute_dtype(y.dtype)), type=2, axis=ax, norm="ortho")
    return x.astype(y.dtype)


@functools.partial(jax.jit, static_argnums=1)
def _dst(x: Array, ax: int) -> Array:
    z = _dct(_alternate(x.astype(compute_dtype(x.dtype)), ax), ax)
    return jnp.flip(z, axis=ax).astype(x.dtype)


@functools.partial(jax.jit, static_argnums=1)
def _idst(y: Array, ax: int) -> Array:
    z = _idct(jnp.flip(y.astype(compute_dtype(y.dtype)), axis=ax), ax)
    return _alternate(z, ax).astype(y.dtype)


def dct(x: Float[Array, "..."], axis: int = -1) -> Float[Array, "..."]:
    """Orthonormal DCT-II along one axis.

    Ahmed, Natarajan & Rao, 1974, "Discrete Cosine Transform". With ``n = x.shape[axis]``,
    ``y_k = s_k sqrt(2/n) sum_j x_j cos(pi k (2j + 1) / (2n))``, ``s_0 = 1/sqrt(2)`` and
    ``s_k = 1`` otherwise: an orthogonal matrix, so ``||y|| == ||x||``. Same as
    ``scipy.fft.dct(x, type=2, norm="ortho")``; computed by ``jax.scipy.fft.dct`` (an FFT).

    Args:
        x: real array; ``x.shape[axis] >= 1``.
        axis: the axis to transform (default: the last).

    Returns:
        Same shape and dtype as ``x``; float16/bfloat16 compute in float32 (XLA has no
        half-precision FFT) and are cast back. Inverse: :func:`idct`.
    """
    ax = _prepare_real("x", x, axis)
    return _dct(x, ax)


def idct(y: Float[Array, "..."], axis: int = -1) -> Float[Array, "..."]:
    """Inverse of :func:`dct`: the orthonormal DCT-III (the transpose of the DCT-II matrix).

    ``x_j = sqrt(2/n) sum_k s_k y_k cos(pi k (2j + 1) / (2n))`` with ``s`` as in :func:`dct`;
    ``idct(dct(x)) == x`` to rounding. Same as ``scipy.fft.idct(y, type=2, norm="ortho")``.

    Args:
        y: real array; ``y.shape[axis] >= 1``.
        axis: the axis to transform (default: the last).

    Returns:
        Same shape and dtype as ``y`` (half precision computes in float32).
    """
    ax = _prepare_real("y", y, axis)
    return _idct(y, ax)


def dst(x: Float[Array, "..."], axis: int = -1) -> Float[Array, "..."]:
    """Orthonormal DST-II along one axis.

    ``y_k = s_k sqrt(2/n) sum_j x_j sin(pi (k + 1) (2j + 1) / (2n))`` with ``s_{n-1} =
    1/sqrt(2)`` and ``s_k = 1`` otherwise; same as ``scipy.fft.dst(x, type=2, norm="ortho")``.
    Computed through the identity ``DST-II(x)_k = DCT-II((-1)^j x_j)_{n-1-k}`` (Ahmed,
    Natarajan & Rao, 1974, for the DCT), which holds for the orthonormal scalings too.

    Args:
        x: real array; ``x.shape[axis] >= 1``.
        axis: the axis to transform (default: the last).

    Returns:
        Same shape and dtype as ``x`` (half precision computes in float32). Inverse:
        :func:`idst`.
    """
    ax = _prepare_real("x", x, axis)
    return _dst(x, ax)


def idst(y: Float[Array, "..."], axis: int = -1) -> Float[Array, "..."]:
    """Inverse of :func:`dst`: the orthonormal DST-III; ``idst(dst(x)) == x`` to rounding.

    Same as ``scipy.fft.idst(y, type=2, norm="ortho")``.

    Args:
        y: real array; ``y.shape[axis] >= 1``.
        axis: the axis to transform (default: the last).

    Returns:
        Same shape and dtype as ``y`` (half precision computes in float32).
    """
    ax = _prepare_real("y", y, axis)
    return _idst(y, ax)
