"""spectrax.nn"""

from typing import TYPE_CHECKING

from spectrax.nn._afno import AFNOMixer, afno_mix, soft_shrink
from spectrax.nn._butterfly import Butterfly
from spectrax.nn._factorized import (
    CPWeight,
    DenseWeight,
    TTWeight,
    TuckerWeight,
    cp_num_params,
    cp_rank,
    cp_reconstruct,
    dense_num_params,
    tt_max_ranks,
    tt_num_params,
    tt_ranks,
    tt_reconstruct,
    tucker_num_params,
    tucker_ranks,
    tucker_reconstruct,
)
from spectrax.nn._fourier_features import (
    FourierFeatures,
    fourier_features,
    positional_encoding,
)
from spectrax.nn._hyena import HyenaFilter, HyenaOperator, hyena_recurrence
from spectrax.nn._pointwise import (
    ACTIVATIONS,
    ChannelLayerNorm,
    ChannelMLP,
    GroupNorm,
    PointwiseLinear,
    SoftGating,
    pointwise_linear,
)
from spectrax.nn._rope import RoPE, apply_rope, rope_frequencies
from spectrax.nn._sh_encoding import SphericalLocationEncoder, spherical_harmonic_encoding
from spectrax.nn._siren import SineLayer, Siren, sine_layer, siren_weight_bound
from spectrax.nn._spectral_conv import SpectralConv, nyquist_weights, resolve_impl, spectral_conv
from spectrax.nn._spherical_conv import SphericalConv, spherical_conv
from spectrax.nn._ssm import MODES as SSM_MODES
from spectrax.nn._ssm import S4, S4D, S5
from spectrax.nn._ssm_labels import frozen_param_mask, ssm_param_labels

__all__: list[str] = [
    "Butterfly",
    "S4",
    "S4D",
    "S5",
    "SSM_MODES",
    "ssm_param_labels",
    "frozen_param_mask",
    "HyenaFilter",
    "HyenaOperator",
    "hyena_recurrence",
    "ACTIVATIONS",
    "AFNOMixer",
    "CPWeight",
    "ChannelLayerNorm",
    "ChannelMLP",
    "DenseWeight",
    "EqxBuffer",
    "EqxToNNX",
    "GroupNorm",
    "NNXToEqx",
    "PointwiseLinear",
    "SoftGating",
    "SpectralConv",
    "TTWeight",
    "TuckerWeight",
    "afno_mix",
    "cp_num_params",
    "cp_rank",
    "cp_reconstruct",
    "dense_num_params",
    "pointwise_linear",
    "soft_shrink",
    "nyquist_weights",
    "resolve_impl",
    "spectral_conv",
    "tucker_num_params",
    "tucker_ranks",
    "tucker_reconstruct",
    "tt_max_ranks",
    "tt_num_params",
    "tt_ranks",
    "tt_reconstruct",
    "FourierFeatures",
    "RoPE",
    "SineLayer",
    "Siren",
    "SphericalConv",
    "SphericalLocationEncoder",
    "apply_rope",
    "fourier_features",
    "positional_encoding",
    "spherical_conv",
    "spherical_harmonic_encoding",
    "rope_frequencies",
    "sine_layer",
    "siren_weight_bound",
]

# The Flax NNX bridges import flax (about 0.5 s), so they load on first use: `import
# spectrax.nn` (and `spectrax train`) do not pay for Flax unless a model uses it.
_NNX_NAMES = ("EqxBuffer", "EqxToNNX", "NNXToEqx")

if TYPE_CHECKING:
    from spectrax.nn._nnx import EqxBuffer, EqxToNNX, NNXToEqx


def __getattr__(name: str):
    if name in _NNX_NAMES:
        from spectrax.nn import _nnx

        return getattr(_nnx, name)
    raise AttributeError(f"module 'spectrax.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
