"""The one place tolerances live, and comparison helpers built on them."""

from __future__ import annotations

import contextlib

import jax
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


def run_notebook(path, tmp_path, monkeypatch) -> str:
    """Execute a notebook in its fast mode (``SPECTRAX_FAST=1``, CPU) in ``tmp_path``; return
    the text its code cells printed. A failing assert in a cell fails the caller."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("SPECTRAX_FAST", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@contextlib.contextmanager
def count_compiles():
    """Count the XLA compilations inside the block: ``with count_compiles() as n: ...; n[0]``.
    Use sizes no other test builds, so that nothing is already cached."""
    count = [0]

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
