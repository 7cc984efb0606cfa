"""Pure array functions with no parameters: FFT sizes, mode slicing, derivatives, norms."""

from spectrax.transforms._fft import conv_fft_size, irfft_trunc, next_fast_len, rfft_padded
from spectrax.transforms._spectral import (
    pad_modes,
    sobolev_norm,
    spectral_derivative,
    truncate_modes,
    wavenumbers,
)

__all__ = [
    "conv_fft_size",
    "irfft_trunc",
    "next_fast_len",
    "pad_modes",
    "rfft_padded",
    "sobolev_norm",
    "spectral_derivative",
    "truncate_modes",
    "wavenumbers",
]
