"""spectrax.models"""

from spectrax.models._afno import AFNO, AFNOBlock, patchify, unpatchify
from spectrax.models._fno import (
    FNO,
    FNOBlock,
    SpatiotemporalFNO,
    grid_channels,
    spatiotemporal_fno,
)
from spectrax.models._rollout import next_snapshots, rollout
from spectrax.models._sfno import SFNO, SFNOBlock
from spectrax.models._ssm_model import (
    LAYER_TYPES,
    POOLINGS,
    SSM_LAYER_TYPES,
    SSMBlock,
    SSMSequenceModel,
)
from spectrax.models._t1 import (
    T1Layer,
    TransformOnce,
    select_modes,
    spectral_scale,
    white_noise_gain,
)

__all__: list[str] = [
    "AFNO",
    "AFNOBlock",
    "FNO",
    "FNOBlock",
    "LAYER_TYPES",
    "POOLINGS",
    "SFNO",
    "SpatiotemporalFNO",
    "SFNOBlock",
    "SSMBlock",
    "SSMSequenceModel",
    "SSM_LAYER_TYPES",
    "T1Layer",
    "TransformOnce",
    "grid_channels",
    "next_snapshots",
    "patchify",
    "rollout",
    "select_modes",
    "spectral_scale",
    "spatiotemporal_fno",
    "unpatchify",
    "white_noise_gain",
]
