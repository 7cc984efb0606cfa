"""spectrax.ssm: pure state-space model mathematics (HiPPO, NPLR/DPLR, discretisation, kernels,
scans, transfer functions, initialisations)."""

from spectrax.ssm._discretize import (
    DISCRETIZATIONS,
    discretize_dense,
    discretize_diagonal,
    init_log_dt,
    log_discrete_eigenvalues,
)
from spectrax.ssm._hippo import (
    DIAGONAL_INITS,
    MEASURES,
    hippo,
    nplr,
    ptd,
    ptd_legs,
    ptd_slots,
    s4d_inv,
    s4d_legs,
    s4d_lin,
    s4d_ptd,
)
from spectrax.ssm._kernel import (
    dense_kernel,
    dplr_kernel,
    transfer_continuous,
    transfer_discrete,
    vandermonde_kernel,
)
from spectrax.ssm._scan import SCAN_METHODS, scan_dense, scan_diagonal

__all__: list[str] = [
    "DIAGONAL_INITS",
    "DISCRETIZATIONS",
    "MEASURES",
    "SCAN_METHODS",
    "dense_kernel",
    "discretize_dense",
    "discretize_diagonal",
    "dplr_kernel",
    "hippo",
    "init_log_dt",
    "log_discrete_eigenvalues",
    "nplr",
    "ptd",
    "ptd_legs",
    "ptd_slots",
    "s4d_inv",
    "s4d_legs",
    "s4d_lin",
    "s4d_ptd",
    "scan_dense",
    "scan_diagonal",
    "transfer_continuous",
    "transfer_discrete",
    "vandermonde_kernel",
]
