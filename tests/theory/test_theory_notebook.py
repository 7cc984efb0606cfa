"""notebooks/theory_checks.ipynb runs end to end in its fast mode (its cells assert the
theory: spectral bias, NTK spectra, transfer functions, RoPE bounds, HiPPO memory)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "theory_checks.ipynb"


@pytest.mark.slow
def test_theory_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAX_FAST", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    for marker in ("spectral bias:", "lambda_1 / lambda_41", "DFT of kernel", "decay bound"):
        assert marker in outputs, marker
