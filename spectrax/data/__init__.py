"""spectrax.data"""

from spectrax.data._burgers import burgers_dataset, burgers_solve
from spectrax.data._cache import cache_path, cached, default_cache_dir
from spectrax.data._darcy import darcy_dataset, darcy_operator, darcy_solve
from spectrax.data._grf import grf_neumann, grf_periodic
from spectrax.data._navier_stokes import fno_forcing, navier_stokes_dataset, navier_stokes_solve
from spectrax.data._sequence import delayed_copy, delayed_recall

__all__: list[str] = [
    "burgers_dataset",
    "burgers_solve",
    "cache_path",
    "cached",
    "darcy_dataset",
    "darcy_operator",
    "darcy_solve",
    "default_cache_dir",
    "delayed_copy",
    "delayed_recall",
    "fno_forcing",
    "grf_neumann",
    "grf_periodic",
    "navier_stokes_dataset",
    "navier_stokes_solve",
]
