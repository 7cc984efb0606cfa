"""spectrax: spectral operators and state-space models in JAX."""

from importlib.metadata import PackageNotFoundError, version

from spectrax import kernels, transforms
from spectrax.kernels.fft_conv import SpectralFilter, fft_conv, fft_conv_filter

try:
    __version__ = version("spectrax")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

__all__ = [
    "SpectralFilter",
    "__version__",
    "fft_conv",
    "fft_conv_filter",
    "kernels",
    "transforms",
]
