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
    u: Float[Array, "*#batch L"],
    k: Float[Array, "*#kbatch K"],
    *,
    causal: bool = True,
    pre_gate: Float[Array, "*#gbatch L"] | None = None,
    post_gate: Float[Array, "*#gbatch L"] | None = None,
) -> Float[Array, "*batch L"]:
    """``y[..., t] = sum_s k[..., s] v[..., t - s]`` (causal, truncated to L) or circular (K == L),
    ``v = pre_gate * u``, times ``post_gate``.

    Same contract as :func:`spectrax.fft_conv` (arguments, broadcasting and validation, the
    gates ``y = post_gate * conv(pre_gate * u, k)`` included) without dispatch or
    :class:`SpectralFilter`; differentiable in any mode (``jax.jvp`` and ``jax.jacfwd``
    included, which :func:`spectrax.fft_conv` refuses). Computed in float64 if any input is
    float64, else float32, and rounded to ``u``'s dtype once.
    """
    if isinstance(k, SpectralFilter):
        raise TypeError(
            "`k` must be a time-domain filter array (..., K) for fft_conv_reference; got a "
            "SpectralFilter. Pass the filter itself, or use fft_conv."
        )
    # a complex input lost its imaginary part and an integer one was truncated, silently
    u, k, pre_gate, post_gate = check_args(u, k, causal, pre_gate=pre_gate, post_gate=post_gate)
    gates = [g for g in (pre_gate, post_gate) if g is not None]
    length, ksize = u.shape[-1], k.shape[-1]
    real = compute_dtype(u.dtype, k.dtype, *(g.dtype for g in gates))
    n = conv_fft_size(length, ksize, causal=causal)
    nd = max(u.ndim, k.ndim, *(g.ndim for g in gates))
    v = lift_rank(u, nd).astype(real)
    if pre_gate is not None:
        v = v * lift_rank(pre_gate, nd).astype(real)
    y = jnp.fft.irfft(jnp.fft.rfft(v, n=n) * jnp.fft.rfft(lift_rank(k, nd).astype(real), n=n), n=n)[
        ..., :length
    ]
    if post_gate is not None:
        y = y * lift_rank(post_gate, nd).astype(real)
    return y.astype(u.dtype)
