"""Every config in configs/ validates and its smoke variant trains end to end (what CI runs)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from spectrax.train import load_config, read_metrics, train

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.py"))
# Smoke variants whose few full-batch steps reliably lower the training loss (the recall
# task's 8 steps do not).
LEARNS_IN_SMOKE = {"burgers_fno", "darcy_fno", "navier_stokes_fno"}


def test_there_is_a_default_config():
    assert "burgers_fno" in [p.stem for p in CONFIGS]
    config = load_config("burgers_fno")
    assert config.max_test_error is not None and config.max_test_error <= 0.05


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_smoke_variant_trains(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAX_CACHE", str(tmp_path / "cache"))  # a fresh install: no data yet
    config = load_config(str(path), ["output.progress=false"], variant="smoke")
    # One device, as on a user's CPU (sharding is tested on the toy task with 8).
    result = train(config, workdir=tmp_path / "run", devices=jax.devices()[:1])
    assert result.stopped == "completed" and result.step == config.loop.num_steps
    assert np.isfinite(result.metrics["test_error"])
    for name in ("metrics.jsonl", "report.md", "loss_curves.png"):
        assert (tmp_path / "run" / name).exists()
    train_losses = [r["loss"] for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
    assert len(train_losses) == config.loop.num_steps
    if path.stem in LEARNS_IN_SMOKE:
        assert train_losses[-1] < train_losses[0], f"{path.stem}: the smoke run did not learn"


PAPER_SIZES = {
    # Li et al. (2021), FNO paper, Table 4 (Darcy, s = 85) and Table 3 (Navier-Stokes, 1e-3).
    "darcy_fno": {
        "num_train": 1000,
        "num_test": 100,
        "resolution": 85,
        "solver_resolution": 421,
        "modes": 12,
        "width": 32,
        "num_layers": 4,
    },
    "navier_stokes_fno": {
        "num_train": 1000,
        "num_test": 200,
        "resolution": 64,
        "nu": 1e-3,
        "t_in": 10,
        "t_out": 40,
        "modes": 12,
        "width": 20,
        "num_layers": 4,
    },
}


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_default_variant_has_the_paper_sizes(name):
    config = load_config(name)
    for field, value in PAPER_SIZES[name].items():
        assert getattr(config.task, field) == value, field
    assert config.max_test_error is not None
