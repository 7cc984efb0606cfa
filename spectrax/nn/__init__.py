"""spectrax.nn"""

from spectrax.nn._factorized import (
    CPWeight,
    DenseWeight,
    TuckerWeight,
    cp_num_params,
    cp_rank,
    cp_reconstruct,
    dense_num_params,
    tucker_num_params,
    tucker_ranks,
    tucker_reconstruct,
)
from spectrax.nn._pointwise import (
    ACTIVATIONS,
    ChannelLayerNorm,
    ChannelMLP,
    PointwiseLinear,
    pointwise_linear,
)
from spectrax.nn._spectral_conv import SpectralConv, spectral_conv

__all__: list[str] = [
    "ACTIVATIONS",
    "CPWeight",
    "ChannelLayerNorm",
    "ChannelMLP",
    "DenseWeight",
    "PointwiseLinear",
    "SpectralConv",
    "TuckerWeight",
    "cp_num_params",
    "cp_rank",
    "cp_reconstruct",
    "dense_num_params",
    "pointwise_linear",
    "spectral_conv",
    "tucker_num_params",
    "tucker_ranks",
    "tucker_reconstruct",
]
