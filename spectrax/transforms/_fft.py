"""FFT sizes and the real-FFT building blocks of FFT convolution."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from spectrax._checks import check_positive_int

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
    """Real FFT of ``x`` zero-padded (or truncated) to ``n`` along the last axis."""
    return jnp.fft.rfft(x, n=n, axis=-1)


def irfft_trunc(x_f: Complex[Array, "*batch F"], n: int, length: int) -> Float[Array, "*batch L"]:
    """Inverse real FFT of size ``n`` keeping the first ``length`` samples."""
    return jnp.fft.irfft(x_f, n=n, axis=-1)[..., :length]
