"""Every config in configs/ validates and its smoke variant trains end to end (what CI runs)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from spectrax.train import load_config, read_metrics, train

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.py"))


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
    assert (
        len([r for r in read_metrics(tmp_path / "run") if r["split"] == "train"])
        == config.loop.num_steps
    )
