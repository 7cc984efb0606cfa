"""FFT sizes and the real-FFT building blocks of FFT convolution."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from spectrax._checks import check_inexact, check_positive_int, check_real_float

# XLA's CPU (DUCC) and GPU (cuFFT) FFTs are fastest for sizes whose only prime factors are
# 2, 3, 5 and 7; a 7-smooth size is at most ~1.2x the input, against up to 2x for a power of 2.
_FAST_PRIMES = (2, 3, 5, 7)


def next_fast_len(n: int) -> int:
    """Smallest 7-smooth integer (only prime factors 2, 3, 5, 7) that is ``>= n``.

    Args:
        n: a positive integer.

    Returns:
        The FFT size to pad to. ``next_fast_len(1000) == 1000``, ``next_fast_len(1031) == 1050``.
    """
    # Checked before the cache: lru_cache takes 11.0 (or True) for a cached np.int64(11) (or 1),
    # so a check inside it would refuse a float or a bool only on a cache miss.
    return _next_fast_len(check_positive_int("n", n))


@functools.lru_cache(maxsize=4096)
def _next_fast_len(n: int) -> int:
    m = n
    while True:
        r = m
        for p in _FAST_PRIMES:
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def conv_fft_size(length: int, kernel_size: int, *, causal: bool = True) -> int:
    """FFT size used by :func:`spectrax.fft_conv`: ``length`` when circular, else a fast
    size ``>= length + kernel_size - 1`` so the linear convolution does not wrap.

    ``length`` and ``kernel_size`` are integers ``>= 1`` (a ValueError names the one that is
    not); ``causal`` is a bool."""
    length = check_positive_int("length", length)
    kernel_size = check_positive_int("kernel_size", kernel_size)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"`causal` must be a bool; got {type(causal).__name__} {causal!r}.")
    if not causal:
        return length
    return next_fast_len(length + kernel_size - 1)


def rfft_padded(x: Float[Array, "*batch L"], n: int) -> Complex[Array, "*batch F"]:
    """Real FFT of ``x`` zero-padded (or truncated) to ``n`` along the last axis.

    ``jnp.fft.rfft(x, n=n, axis=-1)`` (``norm="backward"``: no scaling), shape
    ``(*batch, n // 2 + 1)``. ``x`` is a float32 or float64 array with at least one axis (XLA
    has no half-precision FFT; cast first) and ``n`` an integer ``>= 1``; otherwise a
    TypeError or ValueError names the argument.
    """
    _check_fft_input("x", x, real=True)
    n = check_positive_int("n", n)
    return jnp.fft.rfft(x, n=n, axis=-1)


def irfft_trunc(x_f: Complex[Array, "*batch F"], n: int, length: int) -> Float[Array, "*batch L"]:
    """Inverse real FFT of size ``n`` keeping the first ``length`` samples.

    ``jnp.fft.irfft(x_f, n=n, axis=-1)[..., :length]`` (``norm="backward"``: scaled by
    ``1/n``), the inverse of :func:`rfft_padded` with the same ``n``. ``x_f`` is a complex64 or
    complex128 spectrum of shape ``(*batch, n // 2 + 1)``, exactly the bins of a real FFT of
    size ``n`` (a spectrum of another length, e.g. from a different ``n``, would be silently
    truncated or zero-padded by ``irfft``); ``n`` and ``length`` are integers with
    ``1 <= length <= n``. Otherwise a TypeError or ValueError names the argument.

    Returns:
        Shape ``(*batch, length)``, float32 for complex64 input, float64 for complex128.
    """
    _check_fft_input("x_f", x_f, real=False)
    n = check_positive_int("n", n)
    length = check_positive_int("length", length)
    if length > n:
        raise ValueError(
            f"`length`={length} is more than the FFT size `n`={n}: the inverse FFT has only n "
            "samples. Expected 1 <= length <= n."
        )
    if x_f.shape[-1] != n // 2 + 1:
        raise ValueError(
            f"`x_f` has {x_f.shape[-1]} frequency bins on its last axis (shape {x_f.shape}); "
            f"an inverse real FFT of size n={n} expects n // 2 + 1 = {n // 2 + 1}. Pass the n "
            "that rfft_padded used."
        )
    return jnp.fft.irfft(x_f, n=n, axis=-1)[..., :length]


def _check_fft_input(name: str, x, *, real: bool) -> None:
    """TypeError/ValueError naming ``name`` unless ``x`` is a float32/float64 array (``real``)
    or complex64/complex128 one, with at least one axis."""
    if real:
        check_real_float(name, x)
        ok, want, hint = (jnp.float32, jnp.float64), "float32 or float64", "jnp.float32"
    else:
        check_inexact(name, x)
        ok, want, hint = (jnp.complex64, jnp.complex128), "complex64 or complex128", "jnp.complex64"
    if jnp.dtype(x.dtype) not in tuple(jnp.dtype(d) for d in ok):
        raise TypeError(
            f"`{name}` must be {want} (XLA has no FFT for other dtypes); got dtype {x.dtype}. "
            f"Cast it first, e.g. `{name}.astype({hint})`."
        )
    if x.ndim < 1:
        raise ValueError(
            f"`{name}` is a scalar (shape ()); expected (..., length) with length >= 1."
        )
