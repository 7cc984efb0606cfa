"""The one place tolerances live, and comparison helpers built on them."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Relative (norm-wise) error bounds by the dtype of the computation under test.
RTOL = {
    jnp.dtype(jnp.float64): 1e-12,
    jnp.dtype(jnp.float32): 1e-5,
    jnp.dtype(jnp.bfloat16): 1e-2,
    jnp.dtype(jnp.float16): 2e-3,
    jnp.dtype(jnp.complex128): 1e-12,
    jnp.dtype(jnp.complex64): 1e-5,
}


def tol(dtype) -> float:
    return RTOL[jnp.dtype(dtype)]


def rel_err(actual, expected) -> float:
    """||actual - expected|| / ||expected|| in float64 (Frobenius over all entries)."""
    a = np.asarray(actual, dtype=np.complex128 if np.iscomplexobj(actual) else np.float64)
    e = np.asarray(expected, dtype=np.complex128 if np.iscomplexobj(expected) else np.float64)
    denom = np.linalg.norm(e.ravel())
    return float(np.linalg.norm((a - e).ravel()) / (denom if denom > 0 else 1.0))


def assert_close(
    actual, expected, dtype=None, *, rtol: float | None = None, what: str = ""
) -> None:
    """Assert norm-wise relative error within ``rtol`` (default: :func:`tol` of ``dtype``)."""
    if rtol is None:
        rtol = tol(dtype if dtype is not None else jnp.result_type(actual))
    assert np.shape(actual) == np.shape(expected), (
        f"{what} shape {np.shape(actual)} != expected {np.shape(expected)}"
    )
    err = rel_err(actual, expected)
    assert err <= rtol, f"{what} relative error {err:.3e} > {rtol:.1e}"
