"""spectrax: spectral operators and state-space models in JAX."""

import importlib
from importlib.metadata import PackageNotFoundError, version

from spectrax import kernels, transforms
from spectrax.kernels.fft_conv import SpectralFilter, fft_conv, fft_conv_filter

try:
    __version__ = version("spectrax")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

# Imported on first attribute access (PEP 562), as `jax.numpy` is after `import jax`:
# `import spectrax; spectrax.nn.S4D(...)` raised AttributeError unless something had imported
# spectrax.nn first, and importing them all up front would load Orbax and Flax for any use.
_SUBPACKAGES = ("data", "models", "nn", "ssm", "theory", "train")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"spectrax.{name}")
    raise AttributeError(f"module 'spectrax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES))


__all__ = [
    "SpectralFilter",
    "__version__",
    "data",
    "fft_conv",
    "fft_conv_filter",
    "kernels",
    "models",
    "nn",
    "ssm",
    "theory",
    "train",
    "transforms",
]
