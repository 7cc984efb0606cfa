"""spectrax.models"""

from spectrax.models._afno import AFNO, AFNOBlock, patchify, unpatchify
from spectrax.models._fno import FNO, FNOBlock, grid_channels, spatiotemporal_fno
from spectrax.models._t1 import T1Layer, TransformOnce, select_modes

__all__: list[str] = [
    "AFNO",
    "AFNOBlock",
    "FNO",
    "FNOBlock",
    "T1Layer",
    "TransformOnce",
    "grid_channels",
    "patchify",
    "select_modes",
    "spatiotemporal_fno",
    "unpatchify",
]
