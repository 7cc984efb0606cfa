"""The loop end to end on the toy task: outputs, non-finite guard, 1 vs 8 devices, sharding."""

from __future__ import annotations

import json
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

import spectrax.train._loop as loop_module
from spectrax.train import (
    Checkpointer,
    ConfigError,
    apply_overrides,
    batch_indices,
    config_to_dict,
    evaluate_run,
    load_config,
    make_mesh,
    read_metrics,
    shard_model,
    train,
)
from tests.train.conftest import TOY


def test_run_writes_outputs_and_reaches_threshold(toy_run):
    config, result = toy_run
    wd = result.workdir
    assert result.stopped == "completed" and result.step == 60 and result.skipped == 0
    for name in (
        "metrics.jsonl",
        "report.md",
        "config.json",
        "loss_curves.png",
        "predictions.png",
        "error_spectrum.png",
    ):
        assert (wd / name).stat().st_size > 0, name
    assert (wd / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = read_metrics(wd)
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == list(range(1, 61))
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # The target is exactly representable: the test error must fall well below the threshold.
    assert result.passed and result.metrics["test_error"] < config.max_test_error
    assert Checkpointer(wd / "checkpoints", keep=3, config_dict={}).all_steps() == [20, 40, 60]
    report = (wd / "report.md").read_text()
    assert "test_error" in report and "(pass)" in report
    stored = json.loads((wd / "config.json").read_text())
    assert stored["config"] == json.loads(json.dumps(config_to_dict(config)))
    # Evaluating the saved run gives the numbers the run ended with.
    assert evaluate_run(config, wd) == pytest.approx(result.metrics, rel=1e-6)


def test_injected_nan_is_skipped_and_counted(tmp_path, caplog):
    poisoned = 5
    config = load_config(TOY, [f"task.nan_examples={poisoned}", "loop.num_steps=24"])
    with caplog.at_level(logging.INFO, logger="spectrax.train._loop"):
        result = train(config, workdir=tmp_path)
    # where the run writes is said when it starts, before the first step's warning
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == f"run {config.name}: writing to {tmp_path}", said[:2]
    expected = [s + 1 for s in range(24) if poisoned in batch_indices(0, s, 64, 8)]
    # said while the run goes on (the log has no progress bar), naming the steps
    warned = [r.getMessage() for r in caplog.records if "non-finite" in r.getMessage()]
    assert warned and all(f" {s}" in " ".join(warned) for s in expected), warned
    assert "3 so far" in warned[-1]
    records = [r for r in read_metrics(tmp_path) if r["split"] == "train"]
    assert [r["step"] for r in records if r["skipped"]] == expected
    assert result.stopped == "completed" and result.skipped == len(expected) == 3
    assert all(np.isfinite(r["loss"]) for r in records if not r["skipped"])
    assert np.isfinite(result.metrics["test_error"])
    # Resuming the finished run reports the run's count (kept in the optimizer state), not 0.
    again = train(config, workdir=tmp_path, resume=True)
    assert again.step == 24 and again.skipped == 3


def test_persistent_nan_stops_with_checkpoint_intact(tmp_path):
    # Batches 13.. are NaN; max_nonfinite=4 in a row is reached at step 16, the step halts
    # itself (17..20 change nothing) and the host stops the run at its next log (step 20).
    config = load_config(TOY, ["task.nan_after=12", "checkpoint.every=5", "loop.max_nonfinite=4"])
    result = train(config, workdir=tmp_path)
    assert result.stopped == "nonfinite" and result.step == 20 and result.skipped == 4
    train_rows = [r for r in read_metrics(tmp_path) if r["split"] == "train"]
    halted = [r["step"] for r in train_rows if r.get("halted")]
    assert halted == [17, 18, 19, 20]
    assert max(r["nonfinite_consecutive"] for r in train_rows) == 4
    assert result.metrics == {}
    ckpt = Checkpointer(tmp_path / "checkpoints", keep=3, config_dict=config_to_dict(config))
    assert ckpt.latest_step() == 15
    ckpt.close()
    metrics = evaluate_run(config, tmp_path)
    assert np.isfinite(metrics["test_error"])
    assert "stopped: nonfinite at step 20" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    "every, said",
    [
        # the stop at step 5 is the checkpoint step: it said "checkpoint.every=0 or none due yet"
        (5, "no checkpoint was written (the one due at step 5 is withheld"),
        (10, "no checkpoint was written (the first would have been at step 10)"),
        (0, "no checkpoint was written (checkpoint.every=0)"),
    ],
)
def test_a_nonfinite_stop_says_why_no_checkpoint_was_written(tmp_path, caplog, every, said):
    over = ["task.nan_after=0", "loop.max_nonfinite=2", "loop.log_every=5", "output.plots=false"]
    config = load_config(TOY, [*over, f"checkpoint.every={every}"])
    with caplog.at_level(logging.ERROR, logger="spectrax.train._loop"):
        result = train(config, workdir=tmp_path)
    assert result.stopped == "nonfinite" and result.step == 5
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert said in error, error
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_signal_after_the_guard_tripped_stops_without_saving_halted_steps(tmp_path):
    """The limit is reached at step 16; SIGTERM is due in the eval at step 18, where the host
    reads the counters (an eval step flushes the log; log_every=10): the run stops as
    non-finite and does not checkpoint step 18 (a checkpoint whose every resumed step would
    halt)."""
    config = load_config(
        TOY,
        [
            "task.nan_after=12",
            "checkpoint.every=5",
            "loop.max_nonfinite=4",
            "loop.log_every=10",
            "loop.eval_every=18",
            "task.sigterm_in_eval=true",
            "output.plots=false",
        ],
    )
    result = train(config, workdir=tmp_path)
    assert result.stopped == "nonfinite" and result.step == 18
    ckpt = Checkpointer(tmp_path / "checkpoints", keep=3, config_dict=config_to_dict(config))
    assert ckpt.latest_step() == 15
    ckpt.close()


def test_one_vs_eight_devices_same_curve_and_sharded_batch(tmp_path, monkeypatch):
    assert jax.device_count() == 8
    seen = []
    make = loop_module.make_train_step

    def spy(loss_fn, optimizer, **kwargs):
        step = make(loss_fn, optimizer, **kwargs)

        def wrapped(model, opt_state, batch):
            seen.append(batch["a"].sharding)
            return step(model, opt_state, batch)

        return wrapped

    monkeypatch.setattr(loop_module, "make_train_step", spy)
    config = load_config(TOY, ["loop.num_steps=20", "output.plots=false"])
    one = train(config, workdir=tmp_path / "one", devices=jax.devices()[:1])
    assert len(seen[0].device_set) == 1
    # the report gives the mesh the run used, not the machine's device count or data=-1
    assert (
        "- devices: 1 (cpu), mesh data=1 model=1 " in (tmp_path / "one" / "report.md").read_text()
    )
    seen.clear()
    config8 = apply_overrides(config, ["mesh.data=8"])
    eight = train(config8, workdir=tmp_path / "eight")
    assert (
        "- devices: 8 (cpu), mesh data=8 model=1 " in (tmp_path / "eight" / "report.md").read_text()
    )
    sharding = seen[0]
    assert sharding.spec == PartitionSpec("data") and len(sharding.device_set) == 8
    assert sharding.shard_shape((8, 16)) == (1, 16)
    curve = lambda wd: np.array([r["loss"] for r in read_metrics(wd) if r["split"] == "train"])  # noqa: E731
    np.testing.assert_allclose(curve(tmp_path / "eight"), curve(tmp_path / "one"), rtol=1e-5)
    assert eight.metrics["test_error"] == pytest.approx(one.metrics["test_error"], rel=1e-4)
    # A run trained on an 8-device mesh evaluates where only one device is available.
    alone = evaluate_run(config8, tmp_path / "eight", devices=jax.devices()[:1])
    assert alone == pytest.approx(eight.metrics, rel=1e-5)


def test_fsdp_shards_parameters_over_model_axis():
    config = apply_overrides(load_config(TOY), ["mesh.model=2", "mesh.params=fsdp"])
    mesh = make_mesh(config)
    tree = {"w": np.ones((3, 8), np.float32), "b": np.ones((3,), np.float32), "s": np.float32(1.0)}
    placed = shard_model(tree, mesh, "fsdp")
    assert placed["w"].sharding.spec == PartitionSpec(None, "model")
    assert placed["w"].addressable_shards[0].data.shape == (3, 4)
    assert placed["b"].sharding.spec == PartitionSpec()  # 3 does not split over 2
    replicated = shard_model(tree, mesh, "replicated")
    assert replicated["w"].sharding.spec == PartitionSpec()


def test_shard_model_refuses_an_unknown_mode_and_a_mesh_without_model(library_errors):
    """A typo ("replicate") sharded every parameter FSDP-style without a word, and a mesh
    without a ``model`` axis raised a bare KeyError."""
    mesh = jax.make_mesh((4, 2), ("data", "model"), devices=jax.devices()[:8])
    tree = {"w": np.ones((3, 8), np.float32)}
    with pytest.raises(
        ValueError, match=r"`mode` must be one of \['replicated', 'fsdp'\]; got 'replicate'"
    ):
        shard_model(tree, mesh, "replicate")
    flat = jax.make_mesh((8,), ("batch",), devices=jax.devices()[:8])
    with pytest.raises(ValueError, match=r"`mesh` must have a 'model' axis.*\('batch',\)"):
        shard_model(tree, flat, "fsdp")
    assert shard_model(tree, flat, "replicated")["w"].sharding.spec == PartitionSpec()


def _assert_stopped_by_signal_at(config, workdir, step):
    """Train; the run stops at ``step`` with exactly that checkpoint and every train record up
    to it in the log."""
    result = train(config, workdir=workdir)
    assert result.stopped == "signal" and result.step == step
    ckpt = Checkpointer(workdir / "checkpoints", keep=3, config_dict=config_to_dict(config))
    assert ckpt.all_steps() == [step]
    ckpt.close()
    train_steps = [r["step"] for r in read_metrics(workdir) if r["split"] == "train"]
    assert train_steps == list(range(1, step + 1))


def test_sigterm_saves_and_stops(tmp_path):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    config = load_config(TOY, ["task.sigterm_after=25", "output.plots=false"])
    _assert_stopped_by_signal_at(config, tmp_path, 25)
    assert signal.getsignal(signal.SIGTERM) == before  # the run's handler is removed


def test_resuming_a_finished_run_logs_its_final_eval_once(tmp_path):
    config = load_config(TOY, ["loop.num_steps=10", "output.plots=false"])
    first = train(config, workdir=tmp_path)
    again = train(config, workdir=tmp_path, resume=True)
    assert again.step == first.step == 10 and again.metrics == first.metrics
    evals = [r for r in read_metrics(tmp_path) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [10]


def test_eval_records_follow_the_train_records_of_their_step(tmp_path):
    """An evaluation off the log cadence (eval_every=3, log_every=4) is logged after the train
    records of the steps up to it, in the order a run stopped and resumed at that step writes."""
    config = load_config(
        TOY,
        ["loop.num_steps=6", "loop.log_every=4", "loop.eval_every=3", "output.plots=false"],
        variant="smoke",
    )
    train(config, workdir=tmp_path)
    order = [(r["step"], r["split"]) for r in read_metrics(tmp_path)]
    assert order == [(1, "train"), (2, "train"), (3, "train"), (3, "eval")] + [
        (4, "train"),
        (5, "train"),
        (6, "train"),
        (6, "eval"),
    ]


def test_signal_during_eval_still_saves(tmp_path):
    """SIGTERM arriving during a periodic evaluation (after the step's save decision) still
    checkpoints that step, and its train metrics reach the log."""
    config = load_config(
        TOY, ["task.sigterm_in_eval=true", "loop.eval_every=12", "output.plots=false"]
    )
    _assert_stopped_by_signal_at(config, tmp_path, 12)


def test_tensorboard_events_when_a_writer_library_exists(tmp_path, monkeypatch):
    import sys
    import types

    calls = []

    class SummaryWriter:
        def __init__(self, logdir, purge_step=None):
            calls.append(("init", logdir, purge_step))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(
        sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=SummaryWriter)
    )
    from spectrax.train import MetricWriter

    writer = MetricWriter(tmp_path, tensorboard=True)
    metrics = {"loss": np.float32(0.5), "skipped": np.int32(2), "halted": jnp.bool_(True)}
    writer.write(3, "train", {**metrics, "grad_norm": np.float32(np.nan), "ok": np.True_})
    writer.close()
    assert calls[0] == ("init", str(tmp_path / "tensorboard"), None) and calls[-1] == ("close",)
    # every number reaches TensorBoard: counters, flags and a NaN too (JSON gets null)
    logged = {tag: (value, step) for tag, value, step in calls[1:-1]}
    assert logged.keys() == {
        "train/loss",
        "train/skipped",
        "train/halted",
        "train/grad_norm",
        "train/ok",
    }
    assert logged["train/loss"] == (0.5, 3) and logged["train/skipped"] == (2.0, 3)
    assert logged["train/halted"] == (1.0, 3) and math.isnan(logged["train/grad_norm"][0])
    # NumPy and JAX booleans are JSON booleans, as Python's are
    assert read_metrics(tmp_path) == [
        {
            "step": 3,
            "split": "train",
            "loss": 0.5,
            "skipped": 2,
            "halted": True,
            "grad_norm": None,
            "ok": True,
        }
    ]
    # A run resumed from step 2 has TensorBoard purge the events it logged after it (step 3).
    calls.clear()
    MetricWriter(tmp_path, tensorboard=True, resume_step=2).close()
    assert calls[0] == ("init", str(tmp_path / "tensorboard"), 3)
    assert read_metrics(tmp_path) == []


def test_task_values_the_builder_refuses_are_a_config_error_before_any_file(tmp_path):
    """A resolution the generator refuses: reported as a ConfigError (CLI exit 2) while the
    task is built, before the run directory exists."""
    config = load_config("burgers_fno", ["task.resolution=2"], variant="smoke")
    with pytest.raises(ConfigError, match=r"the task refused its `task\.\*` values: `resolution`"):
        train(config, workdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_more_modes_than_the_grid_holds_is_a_config_error_before_any_file(tmp_path):
    """The model is checked against one example when it is built (the loss traced, shapes
    only), so 40 modes on a 64-point grid is a ConfigError naming `modes`, not a crash at the
    first step after the run directory was written."""
    config = load_config("burgers_fno", ["task.modes=40"], variant="smoke")
    with pytest.raises(
        ConfigError, match=r"the task refused its `task\.\*` values: `modes\[0\]`=40"
    ):
        train(config, workdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
