"""FFT convolution: the plain-jnp reference, the XLA path with an FFT-correlation backward,
and (where available) Pallas kernels, behind one public :func:`fft_conv`."""

from spectrax.kernels.fft_conv.ops import (
    IMPLS,
    SpectralFilter,
    available_impls,
    fft_conv,
    fft_conv_filter,
    fft_conv_xla,
    register_impl,
)
from spectrax.kernels.fft_conv.reference import fft_conv_reference

__all__ = [
    "IMPLS",
    "SpectralFilter",
    "available_impls",
    "fft_conv",
    "fft_conv_filter",
    "fft_conv_reference",
    "fft_conv_xla",
    "register_impl",
]
