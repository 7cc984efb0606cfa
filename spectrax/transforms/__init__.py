"""Pure array functions with no parameters: FFT sizes, mode slicing, derivatives, norms,
Walsh–Hadamard, butterfly and cosine/sine transforms, orthogonal polynomials, spherical
harmonics, the spherical harmonic transform and Gaunt products."""

from spectrax.transforms._butterfly import (
    bit_reversal_permutation,
    butterfly_multiply,
    butterfly_to_dense,
    fft_twiddle,
    hadamard_twiddle,
)
from spectrax.transforms._fft import conv_fft_size, irfft_trunc, next_fast_len, rfft_padded
from spectrax.transforms._gaunt import gaunt_coefficients, gaunt_grid, gaunt_product
from spectrax.transforms._hadamard import dct, dst, idct, idst, walsh_hadamard
from spectrax.transforms._polynomials import (
    chebyshev,
    gauss_legendre,
    legendre,
    real_sph_harm,
    sph_index,
)
from spectrax.transforms._sht import isht, sht, sphere_grid
from spectrax.transforms._spectral import (
    pad_modes,
    sobolev_norm,
    spectral_derivative,
    truncate_modes,
    wavenumbers,
)

__all__ = [
    "bit_reversal_permutation",
    "butterfly_multiply",
    "butterfly_to_dense",
    "fft_twiddle",
    "hadamard_twiddle",
    "sht",
    "sphere_grid",
    "chebyshev",
    "conv_fft_size",
    "dct",
    "dst",
    "gauss_legendre",
    "gaunt_coefficients",
    "gaunt_grid",
    "gaunt_product",
    "idct",
    "idst",
    "isht",
    "irfft_trunc",
    "legendre",
    "next_fast_len",
    "pad_modes",
    "real_sph_harm",
    "rfft_padded",
    "sobolev_norm",
    "spectral_derivative",
    "sph_index",
    "truncate_modes",
    "walsh_hadamard",
    "wavenumbers",
]
