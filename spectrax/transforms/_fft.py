"""FFT sizes and the real-FFT building blocks of FFT convolution."""

from __future__ import annotations

import functools

import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from spectrax._checks import check_positive_int

# XLA's CPU (DUCC) and GPU (cuFFT) FFTs are fastest for sizes whose only prime factors are
# 2, 3, 5 and 7; a 7-smooth size is at most ~1.2x the input, against up to 2x for a power of 2.
_FAST_PRIMES = (2, 3, 5, 7)


@functools.lru_cache(maxsize=4096)
def next_fast_len(n: int) -> int:
    """Smallest 7-smooth integer (only prime factors 2, 3, 5, 7) that is ``>= n``.

    Args:
        n: a positive integer.

    Returns:
        The FFT size to pad to. ``next_fast_len(1000) == 1000``, ``next_fast_len(1031) == 1050``.
    """
    n = check_positive_int("n", n)
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
    size ``>= length + kernel_size - 1`` so the linear convolution does not wrap."""
    if not causal:
        return int(length)
    return next_fast_len(int(length) + int(kernel_size) - 1)


def rfft_padded(x: Float[Array, "*batch L"], n: int) -> Complex[Array, "*batch F"]:
    """Real FFT of ``x`` zero-padded (or truncated) to ``n`` along the last axis."""
    return jnp.fft.rfft(x, n=n, axis=-1)


def irfft_trunc(x_f: Complex[Array, "*batch F"], n: int, length: int) -> Float[Array, "*batch L"]:
    """Inverse real FFT of size ``n`` keeping the first ``length`` samples."""
    return jnp.fft.irfft(x_f, n=n, axis=-1)[..., :length]
