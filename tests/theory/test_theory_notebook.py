"""notebooks/theory_checks.ipynb runs end to end in its fast mode (its cells assert the
theory: spectral bias, NTK spectra, transfer functions, RoPE bounds, HiPPO memory)."""

from pathlib import Path

import pytest

from tests.helpers import run_notebook

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "theory_checks.ipynb"


@pytest.mark.slow
def test_theory_notebook_runs(tmp_path, monkeypatch):
    outputs = run_notebook(NOTEBOOK, tmp_path, monkeypatch)
    markers = (
        "spectral bias:",
        "lambda_1 / lambda_41",
        "DFT of kernel",
        "decay bound",
        "max reconstruction error",
        "exact 32-term projection",
    )
    for marker in markers:
        assert marker in outputs, marker
