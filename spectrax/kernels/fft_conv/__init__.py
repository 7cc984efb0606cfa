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

try:
    from spectrax.kernels.fft_conv._pallas import (
        fft_conv_pallas,
        pallas_status,
    )
except ImportError:  # a JAX build without jax.experimental.pallas: XLA only
    pass
else:
    from spectrax.kernels.fft_conv import _pallas

    register_impl("pallas", _pallas._registered, _pallas.supports, platforms=_pallas.platforms)

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
if "fft_conv_pallas" in globals():  # `from ... import *` must not name what is missing
    __all__ += ["fft_conv_pallas", "pallas_status"]
