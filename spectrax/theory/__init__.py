"""Theory checks as library functions: NTK spectra and the gradient-descent dynamics they
predict, spectral bias curves, RoPE base bounds and angle precision, HiPPO-LegS memory."""

from spectrax.theory._hippo_memory import legs_memory, legs_reconstruct
from spectrax.theory._ntk import empirical_ntk, gd_residuals, ntk_eigh
from spectrax.theory._rope import (
    rope_aliasing_bound,
    rope_angle_error,
    rope_base_lower_bound,
    rope_decay_curve,
)
from spectrax.theory._spectral_bias import (
    SpectralBiasCurve,
    frequency_errors,
    spectral_bias_curve,
)

__all__ = [
    "SpectralBiasCurve",
    "empirical_ntk",
    "frequency_errors",
    "gd_residuals",
    "legs_memory",
    "legs_reconstruct",
    "ntk_eigh",
    "rope_aliasing_bound",
    "rope_angle_error",
    "rope_base_lower_bound",
    "rope_decay_curve",
    "spectral_bias_curve",
]
