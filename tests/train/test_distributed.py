"""Several processes: the launch variables of ``spectrax/train/_mesh.py`` reach
``jax.distributed.initialize``, and a real two-process CPU run (gloo) trains, checkpoints from
every process, logs from process 0 only, and resumes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

import spectrax.train._mesh as mesh_module
from spectrax.train import ConfigError, load_config, read_metrics, train
from tests.train.conftest import TOY

ROOT = Path(__file__).resolve().parents[2]
# 10 smoke steps do not reach the toy threshold (exit status 1): only the run is checked here.
OVERRIDES = [
    "checkpoint.every=5",
    "max_test_error=10.0",
    "task.hidden=4",
    "mesh.data=1",
    "mesh.model=4",
    "mesh.params=fsdp",
]


@pytest.fixture
def fake_initialize(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    for name in ("SPECTRAX_DISTRIBUTED", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    return calls


def test_launch_line_variables_are_passed_to_initialize(fake_initialize, monkeypatch):
    # JAX reads only JAX_COORDINATOR_ADDRESS: without them, initialize() raised "Number of
    # processes must be defined." on the documented launch line.
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert mesh_module.maybe_initialize_distributed()
    assert fake_initialize == [{"num_processes": 4, "process_id": 3}]


def test_managed_cluster_leaves_the_counts_to_jax(fake_initialize, monkeypatch):
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
    monkeypatch.setenv("SPECTRAX_DISTRIBUTED", "1")
    assert mesh_module.maybe_initialize_distributed()
    assert fake_initialize == [{"num_processes": None, "process_id": None}]


@pytest.mark.parametrize(
    ("name", "value", "minimum"),
    [("JAX_NUM_PROCESSES", "two", 1), ("JAX_NUM_PROCESSES", "0", 1), ("JAX_PROCESS_ID", "-1", 0)],
)
def test_bad_launch_variable_is_named(fake_initialize, monkeypatch, name, value, minimum):
    monkeypatch.setenv(name, value)
    with pytest.raises(
        ConfigError, match=rf"`{name}` must be an integer >= {minimum}; got '{value}'"
    ):
        mesh_module.maybe_initialize_distributed()
    assert fake_initialize == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(workdir: Path, *args: str, expect: int = 0) -> list[str]:
    """``spectrax train TOY --smoke ...`` as processes 0 and 1 of 2, two CPU devices each."""
    port = _free_port()
    procs = []
    for i in range(2):
        env = dict(os.environ)
        env.update(
            JAX_PLATFORMS="cpu",
            XLA_FLAGS="--xla_force_host_platform_device_count=2",
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(i),
            PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        cmd = [sys.executable, "-m", "spectrax.cli", "train", TOY, "--smoke", *OVERRIDES, *args]
        cmd += ["--workdir", str(workdir), "--no-progress"]
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=60)[0].decode())
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == expect, out[-3000:]
    return outs


def _assert_same_log(workdir: Path, expected: list[dict]) -> None:
    got = [r for r in read_metrics(workdir) if r["split"] == "train"]
    want = [r for r in expected if r["split"] == "train"]
    assert [r["step"] for r in got] == [r["step"] for r in want]
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=1e-5)


def test_two_processes_train_checkpoint_and_resume(tmp_path):
    # FSDP over a model axis that spans both processes: neither holds a whole parameter.
    wd = tmp_path / "mp"
    outs = _launch_two(wd)
    assert all("stopped: completed at step 10" in out for out in outs)
    # process 0 drew the plots of a model split over both processes (it used to wait forever)
    assert (wd / "predictions.png").is_file() and (wd / "report.md").is_file()
    assert sorted(p.name for p in (wd / "checkpoints").iterdir() if p.name.isdigit()) == ["10", "5"]
    # One process writes the log: each step once, the losses of one process over 4 devices.
    config = load_config(TOY, OVERRIDES, variant="smoke")
    one = train(config, workdir=tmp_path / "one", devices=jax.devices()[:4])
    assert one.model.layers[0].weight.sharding.spec == PartitionSpec("model", None, None)
    _assert_same_log(wd, read_metrics(one.workdir))

    # A checkpoint written by one process (with a digest of whole arrays, which no process of
    # two can compute) resumes over two: the log ends as the uninterrupted one.
    uninterrupted = read_metrics(one.workdir)
    shutil.rmtree(one.workdir / "checkpoints" / "10")
    outs = _launch_two(one.workdir, "--resume")
    assert "resumed" in outs[0] and "completed at step 10" in outs[0]
    _assert_same_log(one.workdir, uninterrupted)


def test_signal_to_one_process_stops_all_at_one_step(tmp_path):
    # SIGTERM reaches process 1 alone while it fetches batch 7: both processes save and stop at
    # step 10, the next step they compare flags at (log_every = checkpoint.every = 5). Each
    # used to act on its own flag: process 1 saved alone, a collective the other never joined.
    wd = tmp_path / "signal"
    args = ["loop.num_steps=20", "task.sigterm_after=7", "task.sigterm_process=1"]
    outs = _launch_two(wd, *args, expect=4)
    assert all("stopped: signal at step 10" in out for out in outs)
    assert "a signal on process 1" in outs[0]
    assert sorted(p.name for p in (wd / "checkpoints").iterdir() if p.name.isdigit()) == ["10", "5"]


def test_every_process_refuses_a_directory_with_another_runs_log(tmp_path):
    # Process 0 alone refused it (exit 2) and process 1 trained on, waiting for it forever.
    wd = tmp_path / "logged"
    wd.mkdir()
    (wd / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n')
    outs = _launch_two(wd, expect=2)
    assert all("already holds a run's metrics.jsonl but no checkpoint" in out for out in outs)
