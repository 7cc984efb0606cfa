"""notebooks/solver_validation.ipynb runs end to end in its fast mode (its cells assert the
validation errors)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "solver_validation.ipynb"


@pytest.mark.slow
def test_solver_validation_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAX_FAST", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "observed orders" in outputs and "Taylor-Green" in outputs
