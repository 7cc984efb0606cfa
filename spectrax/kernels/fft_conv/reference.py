"""Plain-jnp FFT convolution: the reference every fft_conv implementation is tested against.

Differentiated by JAX's own autodiff through ``rfft``/``irfft``; no custom_vjp, no kernels.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from spectrax._checks import compute_dtype, lift_rank
from spectrax.kernels.fft_conv.ops import SpectralFilter, check_args
from spectrax.transforms import conv_fft_size


def fft_conv_reference(
    u: Float[Array, "*#batch L"], k: Float[Array, "*#kbatch K"], *, causal: bool = True
) -> Float[Array, "*batch L"]:
    """``y[..., t] = sum_s k[..., s] u[..., t - s]`` (causal, truncated to L) or circular (K == L).

    Same contract as :func:`spectrax.fft_conv` (validated the same way) without dispatch, gates
    or :class:`SpectralFilter`; differentiable in any mode (``jax.jvp`` included).
    """
    if isinstance(k, SpectralFilter):
        raise TypeError(
            "`k` must be a time-domain filter array (..., K) for fft_conv_reference; got a "
            "SpectralFilter. Pass the filter itself, or use fft_conv."
        )
    # a complex input lost its imaginary part and an integer one was truncated, silently
    check_args(u, k, causal)
    length, ksize = u.shape[-1], k.shape[-1]
    real = compute_dtype(u.dtype, k.dtype)
    n = conv_fft_size(length, ksize, causal=causal)
    nd = max(u.ndim, k.ndim)
    y = jnp.fft.irfft(
        jnp.fft.rfft(lift_rank(u, nd).astype(real), n=n)
        * jnp.fft.rfft(lift_rank(k, nd).astype(real), n=n),
        n=n,
    )[..., :length]
    return y.astype(u.dtype)
