"""Several processes: the launch variables of ``spectrax/train/_mesh.py`` reach
``jax.distributed.initialize``, and a real two-process CPU run (gloo) trains, checkpoints from
every process, logs from process 0 only, loads only the batch rows its devices hold, and
resumes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

import spectrax.train._mesh as mesh_module
from spectrax.train import (
    Checkpointer,
    ConfigError,
    batch_indices,
    config_to_dict,
    load_config,
    read_metrics,
    train,
)
from spectrax.train._loop import _checkpoint_state, _setup
from tests.helpers import assert_close
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


def _spawn_two(args: list[str], *, devices: int = 2, expect: int = 0) -> list[str]:
    """``python args`` as processes 0 and 1 of 2, ``devices`` CPU devices each; their outputs."""
    port = _free_port()
    procs = []
    for i in range(2):
        env = dict(os.environ)
        env.update(
            JAX_PLATFORMS="cpu",
            # the suite's compile flags (conftest), with this process's device count
            XLA_FLAGS=" ".join(
                [
                    *(f for f in env["XLA_FLAGS"].split() if "device_count" not in f),
                    f"--xla_force_host_platform_device_count={devices}",
                ]
            ),
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(i),
            PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            SPECTRAX_TOY_LOG_BATCHES="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
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


def _launch_two(workdir: Path, *args: str, expect: int = 0) -> list[str]:
    """``spectrax train TOY --smoke ...`` as processes 0 and 1 of 2, two CPU devices each."""
    cmd = ["-m", "spectrax.cli", "train", TOY, "--smoke", *OVERRIDES, *args]
    return _spawn_two([*cmd, "--workdir", str(workdir), "--no-progress"], expect=expect)


def _requested(out: str) -> list[list[int]]:
    """The indices of each ``get_batch`` call a process made, from its output."""
    calls = [line.split(":", 1)[1] for line in out.splitlines() if line.startswith("get_batch:")]
    return [[int(i) for i in call.split()] for call in calls]


def _batches(config, steps: range) -> list[np.ndarray]:
    return [
        batch_indices(config.seed, s, config.task.num_train, config.loop.batch_size) for s in steps
    ]


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
    # mesh.data=1: the batch axis is replicated over the devices of both processes, so each
    # loads every row of every batch
    config = load_config(TOY, OVERRIDES, variant="smoke")
    whole = [b.tolist() for b in _batches(config, range(10))]
    assert [_requested(out) for out in outs] == [whole, whole]
    # process 0 drew the plots of a model split over both processes (it used to wait forever)
    assert (wd / "predictions.png").is_file() and (wd / "report.md").is_file()
    assert sorted(p.name for p in (wd / "checkpoints").iterdir() if p.name.isdigit()) == ["10", "5"]
    # One process writes the log: each step once, the losses of one process over 4 devices.
    one = train(config, workdir=tmp_path / "one", devices=jax.devices()[:4])
    assert one.model.layers[0].weight.sharding.spec == PartitionSpec("model", None, None)
    _assert_same_log(wd, read_metrics(one.workdir))

    # A checkpoint written by one process (with a digest of whole arrays, which no process of
    # two can compute) resumes over two, here data parallel (each process's 2 devices hold a
    # half of the data axis): the log and the parameters end as the uninterrupted run's.
    uninterrupted = read_metrics(one.workdir)
    shutil.rmtree(one.workdir / "checkpoints" / "10")
    data_parallel = ["mesh.data=4", "mesh.model=1", "mesh.params=replicated"]
    outs = _launch_two(one.workdir, "--resume", *data_parallel)
    assert "resumed" in outs[0] and "completed at step 10" in outs[0]
    _assert_same_log(one.workdir, uninterrupted)
    # Each process loads only its half of every batch (both used to load all of it).
    halves = [
        [b[4 * p : 4 * p + 4].tolist() for b in _batches(config, range(5, 10))] for p in (0, 1)
    ]
    assert [_requested(out) for out in outs] == halves
    _, _, model, _, opt_state, rng = _setup(config, jax.devices()[:4])
    ckpt = Checkpointer(
        one.workdir / "checkpoints", keep=config.checkpoint.keep, config_dict=config_to_dict(config)
    )
    try:
        resumed, meta = ckpt.restore(_checkpoint_state(model, opt_state, rng))
    finally:
        ckpt.close()
    assert meta["step"] == 10
    want = jax.tree.leaves(eqx.filter(one.model, eqx.is_array))
    for got, ref in zip(jax.tree.leaves(resumed["model"]), want, strict=True):
        assert_close(np.asarray(got), np.asarray(ref), rtol=1e-5, what="resumed parameter")


def test_each_process_loads_the_rows_its_devices_hold():
    # Two processes of 3 devices, a batch of 12. The rows each process loads come from the
    # sharding: its half where the data axis splits the processes (6 x 1), all of them where
    # the batch axis is replicated (1 x 6), and blocks that both hold where a data position
    # straddles the processes (3 x 2: the second row of the mesh, devices 2 and 3, holds rows
    # 4..7). Either way the global batch and its dropout keys equal one process's.
    outs = _spawn_two(["-m", "tests.train.two_process_batches", "6x1", "1x6", "3x2"], devices=3)
    want = {
        (6, 1): (list(range(6)), list(range(6, 12))),
        (1, 6): (list(range(12)), list(range(12))),
        (3, 2): (list(range(8)), list(range(4, 12))),
    }
    got = [[json.loads(line) for line in out.splitlines() if line.startswith("{")] for out in outs]
    for records in got:
        assert [tuple(r["mesh"]) for r in records] == list(want)
        assert all(r["equal"] and r["calls"] == 1 for r in records), records
    assert {tuple(r["mesh"]): (r["rows"], s["rows"]) for r, s in zip(*got, strict=True)} == want


def test_batch_from_rows_places_each_block_and_names_a_short_batch():
    # One process holds every row: the assembled batch is the device_put one, block for block
    # over a 4 x 2 mesh (each block on the two devices of its data position).
    config = load_config(TOY, ["mesh.data=4", "mesh.model=2"])
    sharding = mesh_module.batch_sharding(mesh_module.make_mesh(config))
    rows = mesh_module.batch_rows(sharding, 8)
    np.testing.assert_array_equal(rows, np.arange(8))
    local = {"a": np.arange(8 * 3, dtype=np.float32).reshape(8, 3)}
    got = mesh_module.batch_from_rows(local, sharding, rows, 8)["a"]
    assert got.sharding == sharding
    for shard in got.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), local["a"][shard.index])
    with pytest.raises(ValueError, match=r"`task.get_batch` returned an array of shape \(7, 3\)"):
        mesh_module.batch_from_rows({"a": local["a"][:7]}, sharding, rows, 8)
    # a batch the data axis does not divide: named (JAX's IndivisibleError did not name it)
    with pytest.raises(ValueError, match=r"`batch_size` \(6\) does not split evenly"):
        mesh_module.batch_rows(sharding, 6)


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


def test_fsdp_over_a_model_axis_of_one_says_it_shards_nothing(caplog):
    """``mesh.params=fsdp`` with ``mesh.model=1`` ran replicated without a word, and the report
    still said fsdp: a warning names it (not on one device, where nothing is split either)."""
    import logging

    config = load_config(TOY, ["mesh.params=fsdp", "mesh.model=1"])
    with caplog.at_level(logging.WARNING, logger="spectrax.train._loop"):
        _, _, model, *_ = _setup(config, jax.devices()[:4])
    assert any(
        "shards nothing" in r.getMessage() and "4 devices" in r.getMessage() for r in caplog.records
    )
    leaf = jax.tree.leaves(eqx.filter(model, eqx.is_array))[0]
    assert leaf.sharding.is_fully_replicated
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spectrax.train._loop"):
        _setup(config, jax.devices()[:1])
        _setup(load_config(TOY, ["mesh.params=fsdp", "mesh.model=2"]), jax.devices()[:4])
    assert not any("shards nothing" in r.getMessage() for r in caplog.records)
