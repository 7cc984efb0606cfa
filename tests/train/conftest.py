"""Shared fixtures of the training-system tests: the tiny toy config and one finished run."""

from __future__ import annotations

from pathlib import Path

import pytest

TOY = str(Path(__file__).with_name("toy_config.py"))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One completed toy run (60 steps, checkpoints every 20) shared by a module's tests."""
    from spectrax.train import load_config, train

    config = load_config(TOY, ["checkpoint.every=20"])
    workdir = tmp_path_factory.mktemp("toy_run")
    result = train(
        config,
        workdir=workdir,
        source={"file": TOY, "variant": "default", "overrides": ["checkpoint.every=20"]},
    )
    return config, result
