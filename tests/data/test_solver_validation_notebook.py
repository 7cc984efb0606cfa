"""notebooks/solver_validation.ipynb runs end to end in its fast mode (its cells assert the
validation errors)."""

from pathlib import Path

import pytest

from tests.helpers import run_notebook

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "solver_validation.ipynb"


@pytest.mark.slow
def test_solver_validation_notebook_runs(tmp_path, monkeypatch):
    outputs = run_notebook(NOTEBOOK, tmp_path, monkeypatch)
    for marker in ("fitted order", "Taylor-Green", "random forced flow", "observed orders"):
        assert marker in outputs, marker
