"""spectrax.models"""

from spectrax.models._fno import FNO, FNOBlock, grid_channels, spatiotemporal_fno

__all__: list[str] = [
    "FNO",
    "FNOBlock",
    "grid_channels",
    "spatiotemporal_fno",
]
