"""Checkpoints are refused, never half-loaded, when they belong to another config or are damaged."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from spectrax.train import (
    Checkpointer,
    CheckpointError,
    ConfigError,
    apply_overrides,
    config_to_dict,
    evaluate_run,
    load_config,
    train,
    tree_digest,
)
from tests.helpers import assert_close
from tests.train.conftest import TOY


def _copy_run(toy_run, tmp_path):
    config, result = toy_run
    wd = tmp_path / "run"
    shutil.copytree(result.workdir, wd)
    return config, wd


def test_round_trip_and_keep_last(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2, config_dict={"a": 1})
    state = {"w": jnp.arange(6.0).reshape(2, 3), "n": jnp.asarray(3, jnp.int32)}
    for step in (1, 2, 3):
        ckpt.save(step, {"w": state["w"] * step, "n": state["n"]})
    assert ckpt.all_steps() == [2, 3]
    restored, meta = ckpt.restore(state)
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state["w"] * 3))
    assert meta["step"] == 3 and meta["digest"] == tree_digest(restored)
    ckpt.close()


def test_other_config_is_refused_naming_the_keys(toy_run, tmp_path):
    config, wd = _copy_run(toy_run, tmp_path)
    other = apply_overrides(config, ["optim.learning_rate=0.001", "task.resolution=32"])
    with pytest.raises(
        CheckpointError,
        match=r"another config.*optim\.learning_rate: 0\.03 != 0\.001.*task\.resolution",
    ):
        train(other, workdir=wd, resume=True)
    with pytest.raises(CheckpointError, match="another config"):
        evaluate_run(other, wd)


def test_a_resume_may_log_and_evaluate_at_another_rate(toy_run, tmp_path):
    """`loop.log_every` and `loop.eval_every` change when the host reads metrics, not the
    parameters: a run resumed with other values continues (it was refused as another config);
    a setting that changes the computation still is refused."""
    config, wd = _copy_run(toy_run, tmp_path)
    other = apply_overrides(config, ["loop.log_every=7", "loop.eval_every=9"])
    assert (other.loop.log_every, other.loop.eval_every) != (
        config.loop.log_every,
        config.loop.eval_every,
    )
    again = train(other, workdir=wd, resume=True)
    assert again.step == config.loop.num_steps and again.stopped == "completed"
    with pytest.raises(CheckpointError, match=r"another config.*loop\.batch_size"):
        train(apply_overrides(other, ["loop.batch_size=16"]), workdir=wd, resume=True)


def test_a_step_schedule_run_continues_for_longer_exactly(tmp_path):
    """With optim.schedule=step (and a warmup shorter than both runs) every step's rate is the
    same whatever loop.num_steps: a run resumed with more steps equals the uninterrupted run
    bit for bit (it was refused as another config). The cosine schedule still refuses, saying
    why."""
    over = ["optim.schedule=step", "optim.step_every=4", "checkpoint.every=6"]
    short = load_config(TOY, [*over, "loop.num_steps=6"], variant="smoke")
    long = apply_overrides(short, ["loop.num_steps=10"])
    one = jax.devices()[:1]
    train(short, workdir=tmp_path / "a", devices=one)
    resumed = train(long, workdir=tmp_path / "a", resume=True, devices=one)
    whole = train(long, workdir=tmp_path / "b", devices=one)
    assert resumed.step == whole.step == 10
    for x, y in zip(jax.tree.leaves(resumed.model), jax.tree.leaves(whole.model), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # not shorter: it was accepted ("completed at step 10 of 6") and config.json then said 6
    recorded = (tmp_path / "a" / "config.json").read_text()
    with pytest.raises(
        ConfigError, match=r"`loop\.num_steps`=6 is less than the step of the latest checkpoint"
    ):
        train(short, workdir=tmp_path / "a", resume=True, devices=one)
    assert (tmp_path / "a" / "config.json").read_text() == recorded
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == ["10", "6"]
    cosine = load_config(TOY, ["checkpoint.every=6", "loop.num_steps=6"], variant="smoke")
    train(cosine, workdir=tmp_path / "c", devices=one)
    with pytest.raises(
        CheckpointError, match=r"loop\.num_steps: 6 != 10.*only with optim\.schedule=step"
    ):
        train(apply_overrides(cosine, ["loop.num_steps=10"]), workdir=tmp_path / "c", resume=True)


def test_a_resume_whose_config_write_fails_keeps_config_json(toy_run, tmp_path, monkeypatch):
    """A resume rewrites config.json (the config `spectrax eval` rebuilds): a write that fails
    part-way (a full disk) must leave the old file whole, not truncated."""
    config, wd = _copy_run(toy_run, tmp_path)
    before = (wd / "config.json").read_text()
    real_write = Path.write_text

    def write_half_then_fail(self, data, *args, **kwargs):
        if not self.name.startswith("config.json"):
            return real_write(self, data, *args, **kwargs)
        real_write(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        train(config, workdir=wd, resume=True)
    monkeypatch.undo()
    assert (wd / "config.json").read_text() == before


def test_existing_run_needs_resume(toy_run, tmp_path, monkeypatch):
    config, wd = _copy_run(toy_run, tmp_path)
    with pytest.raises(CheckpointError, match="already holds checkpoints.*--resume"):
        train(config, workdir=wd)
    # refused before the task (its data) is built
    import spectrax.train._loop as loop_module

    def no_setup(*args, **kwargs):
        raise AssertionError("the task was built before the refusal")

    monkeypatch.setattr(loop_module, "_setup", no_setup)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        train(config, workdir=wd)


def test_damaged_arrays_are_refused(toy_run, tmp_path):
    config, wd = _copy_run(toy_run, tmp_path)
    data = [
        p
        for p in (wd / "checkpoints" / "60" / "state").rglob("*")
        if p.is_file() and p.parent.name == "d"
    ]
    assert data
    for p in data:
        raw = bytearray(p.read_bytes())
        for i in range(len(raw) // 2, len(raw)):
            raw[i] ^= 0xFF
        p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"checkpoint .*60 is damaged") as info:
        evaluate_run(config, wd)
    # the cause is TensorStore's, shortened: no JSON spec dump (the length without the run
    # directory, which the message names several times and pytest's tmp paths make long)
    message = str(info.value).replace(str(wd.resolve()), "<run>").replace(str(wd), "<run>")
    assert "tensorstore_spec" not in message and len(message) < 800, message
    # the way back: the intact earlier checkpoints, and how to resume from the last of them
    assert "Earlier checkpoints: steps [20, 40]; move" in str(info.value)
    assert "to resume from step 40." in str(info.value)


def _truncate_largest_chunk(directory: Path) -> None:
    """Cut the largest array data file of the checkpoint in ``directory`` to 100 bytes (a copy
    that ran out of disk)."""
    data = [p for p in (directory / "state").rglob("*") if p.parent.name == "d"]
    chunk = max(data, key=lambda p: p.stat().st_size)
    chunk.write_bytes(chunk.read_bytes()[:100])


def test_truncated_arrays_are_refused_naming_the_cause(tmp_path):
    """Array data cut short: the message gives TensorStore's root cause (which array, what was
    read) without the spec dump of Orbax's wrapper."""
    import sys

    ckpt = Checkpointer(tmp_path, keep=2, config_dict={})
    # random (incompressible) values: the array's chunk is the largest data file
    state = {"w": jax.random.normal(jax.random.key(0), (64, 64))}
    ckpt.save(1, state)
    _truncate_largest_chunk(tmp_path / "1")
    with pytest.raises(CheckpointError, match=r"checkpoint .*1 is damaged") as info:
        ckpt.restore(state)
    ckpt.close()
    message = str(info.value)
    assert "TensorStore details" not in message and "'driver'" not in message, message
    assert 'Error reading "w/' in message and "value of size 100" in message, message
    # bounded without the checkpoint directory, whose length is pytest's
    assert len(message.replace(str(tmp_path.resolve()), "<dir>")) < 600, message
    assert getattr(sys.unraisablehook, "_spectrax", False)  # installed by the restore


_REFUSED_RESTORE_REPORTS = """
import gc, sys
from pathlib import Path
import jax
from spectrax.train import Checkpointer, CheckpointError
from tests.train.test_checkpoint import _truncate_largest_chunk

seen = []
sys.unraisablehook = seen.append
root = Path(sys.argv[1])
state = {f"w{i}": jax.random.normal(jax.random.key(i), (64, 64)) for i in range(8)}
for attempt in range(3):
    ckpt = Checkpointer(root / str(attempt), keep=2, config_dict={})
    ckpt.save(1, state)
    _truncate_largest_chunk(root / str(attempt) / "1")
    try:
        ckpt.restore(state)
    except CheckpointError:
        pass
    else:
        raise SystemExit("the truncated checkpoint was restored")
    ckpt.close()
    gc.collect()
print(len(seen))
for report in seen:
    print(repr(report.exc_value), report.err_msg, report.object)
"""


def test_a_refused_restore_leaves_no_reports_of_the_reads_in_flight(tmp_path):
    """After a refused checkpoint, the reads still in flight print nothing (they printed a
    traceback each into a closed event loop under the Python API, which only the CLI dropped).
    In a fresh process: in this one, a late report of an earlier test's refused checkpoint could
    arrive while the test's own hook is in place, before the restore installs the filter."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", _REFUSED_RESTORE_REPORTS, str(tmp_path)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[0] == "0", run.stdout + run.stderr[-3000:]


def test_late_callbacks_into_a_closed_event_loop_are_dropped_and_nothing_else(monkeypatch):
    """After a refused checkpoint, TensorStore's reads still in flight call back into the
    event loop Orbax closed; a refused restore drops exactly those reports (it raised its error)."""
    import asyncio
    import sys
    import types

    from spectrax.train._checkpoint import quiet_refused_read_reports

    loop = asyncio.new_event_loop()
    loop.close()
    try:
        loop.call_soon_threadsafe(print)
    except RuntimeError as err:
        late = types.SimpleNamespace(exc_value=err, exc_traceback=err.__traceback__)
    try:
        raise RuntimeError("Event loop is closed")  # the same words, not from asyncio
    except RuntimeError as err:
        other = types.SimpleNamespace(exc_value=err, exc_traceback=err.__traceback__)
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    quiet_refused_read_reports()
    hook = sys.unraisablehook
    quiet_refused_read_reports()
    assert sys.unraisablehook is hook  # installed once
    sys.unraisablehook(late)
    sys.unraisablehook(other)
    assert seen == [other]


def test_orphaned_orbax_read_coroutines_are_dropped_and_nothing_else(monkeypatch):
    """After a refused checkpoint (a truncated chunk), Orbax's reads of the other arrays are
    finalised unawaited and each reports its error with TensorStore's whole spec; a refused restore
    drops those reports (its error was raised), not a coroutine's from elsewhere."""
    import os
    import sys
    import types

    from spectrax.train._checkpoint import quiet_refused_read_reports

    def coroutine_from(filename):
        namespace = {}
        exec(compile("async def read():\n    pass\n", filename, "exec"), namespace)
        return namespace["read"]()

    orbax_file = os.path.join(os.sep, "venv", "orbax", "checkpoint", "_src", "serialization.py")
    reads = [coroutine_from(orbax_file), coroutine_from(os.path.join(os.sep, "src", "mine.py"))]
    try:
        err = Exception("Encountered error while reading array index")
        orphaned, other = (
            types.SimpleNamespace(object=c, exc_value=err, exc_traceback=None) for c in reads
        )
        seen = []
        monkeypatch.setattr(sys, "unraisablehook", seen.append)
        quiet_refused_read_reports()
        sys.unraisablehook(orphaned)
        sys.unraisablehook(other)
        assert seen == [other]
    finally:
        for c in reads:
            c.close()


def test_evaluating_a_directory_without_checkpoints_is_refused_untouched(tmp_path, monkeypatch):
    """A mistyped run directory is named, neither created nor the task built for it."""
    import spectrax.train._loop as loop_module

    def no_setup(*args, **kwargs):
        raise AssertionError("the task was built before the refusal")

    monkeypatch.setattr(loop_module, "_setup", no_setup)
    typo = tmp_path / "runs" / "tyop"
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*tyop.*no checkpoints/ folder"):
        evaluate_run(load_config(TOY), typo)
    assert not typo.exists()
    (typo / "checkpoints").mkdir(parents=True)  # a run stopped before its first save
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*tyop.*the folder is empty"):
        evaluate_run(load_config(TOY), typo)


def test_missing_metadata_is_refused(toy_run, tmp_path):
    config, wd = _copy_run(toy_run, tmp_path)
    shutil.rmtree(wd / "checkpoints" / "60" / "meta")
    with pytest.raises(CheckpointError, match=r"60 is damaged or incomplete"):
        evaluate_run(config, wd)


def test_mismatched_tree_is_refused(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2, config_dict={})
    ckpt.save(1, {"w": jnp.ones(3)})
    with pytest.raises(CheckpointError, match="damaged or does not match|different tree") as info:
        ckpt.restore({"w": jnp.ones(4)})
    # Orbax's advice to enable padding/truncation (loading the wrong shape) is not passed on
    assert "padding" not in str(info.value)
    ckpt.close()


def test_a_checkpoint_of_other_dtypes_is_refused_naming_them_not_as_damage(tmp_path, x64):
    """A float64 checkpoint (a run with x64 on) restored into float32 arrays: Orbax cast them,
    the cast arrays failed the digest, and a sound checkpoint was reported as damaged (with
    advice to move it away)."""
    ckpt = Checkpointer(tmp_path, keep=2, config_dict={})
    ckpt.save(1, {"w": jnp.ones(3, jnp.float64), "n": jnp.zeros((), jnp.int32)})
    target = {"w": jnp.ones(3, jnp.float32), "n": jnp.zeros((), jnp.int32)}
    with pytest.raises(CheckpointError, match=r"other dtypes.*\['w'\]: float64 != float32") as info:
        ckpt.restore(target)
    assert "damaged" not in str(info.value) and "'n'" not in str(info.value)
    restored, _ = ckpt.restore({"w": jnp.zeros(3, jnp.float64), "n": target["n"]})
    assert restored["w"].dtype == jnp.float64
    ckpt.close()


def test_target_missing_arrays_is_refused_naming_them_not_as_damage(tmp_path, key):
    """A target without some of the saved arrays (here every one: ``eqx.is_array`` is False
    for the ``jax.ShapeDtypeStruct`` leaves of an ``eqx.filter_eval_shape`` skeleton) restored
    nothing and was then reported as a damaged checkpoint."""
    make = lambda k: eqx.nn.Linear(3, 2, key=k)  # noqa: E731
    ckpt = Checkpointer(tmp_path, keep=2, config_dict={})
    ckpt.save(1, eqx.filter(make(key), eqx.is_array))
    empty = eqx.filter(eqx.filter_eval_shape(make, key), eqx.is_array)
    with pytest.raises(CheckpointError, match=r"target.*missing.*\.weight.*\.bias") as info:
        ckpt.restore(empty)
    assert "damaged" not in str(info.value)
    is_struct = lambda x: isinstance(x, jax.ShapeDtypeStruct)  # noqa: E731
    skeleton = eqx.filter(eqx.filter_eval_shape(make, key), is_struct)
    restored, _ = ckpt.restore(skeleton)  # ShapeDtypeStruct leaves are a valid target
    assert_close(restored.weight, make(key).weight, rtol=0.0)
    ckpt.close()


def test_standalone_use_restores_an_equinox_model_and_optax_state(tmp_path, key):
    """The docstring's recipe: defaults for ``keep`` and ``config_dict`` (both were required),
    and a fresh skeleton from ``eqx.filter_eval_shape`` restores model and optimizer state."""
    import optax

    make = lambda k: eqx.nn.MLP(2, 1, 4, 1, key=k)  # noqa: E731
    model, optimizer = make(key), optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    ckpt = Checkpointer(tmp_path)
    ckpt.save(7, {"model": eqx.filter(model, eqx.is_array), "opt": opt_state})
    is_struct = lambda x: isinstance(x, jax.ShapeDtypeStruct)  # noqa: E731
    params, static = eqx.partition(eqx.filter_eval_shape(make, jax.random.key(9)), is_struct)
    skeleton = {"model": params, "opt": eqx.filter_eval_shape(optimizer.init, params)}
    state, meta = ckpt.restore(skeleton)
    assert meta["step"] == 7
    restored = eqx.combine(state["model"], static)
    assert tree_digest(eqx.filter(restored, eqx.is_array)) == tree_digest(
        eqx.filter(model, eqx.is_array)
    )
    assert tree_digest(state["opt"]) == tree_digest(opt_state)
    ckpt.close()
    with pytest.raises(ValueError, match=r"`keep` must be an integer >= 1; got 0"):
        Checkpointer(tmp_path, keep=0)


def test_a_checkpointer_without_a_config_loads_a_runs_checkpoint(tmp_path):
    """``config_dict`` defaults to "no config to compare": a checkpoint that train() wrote with
    its config loads into a notebook's ``Checkpointer(directory)``; it was refused as written
    by another config, every key differing from the empty dict. A config given is compared."""
    config = config_to_dict(load_config(TOY))
    Checkpointer(tmp_path, config_dict=config).save(3, {"w": jnp.arange(3.0)})
    ckpt = Checkpointer(tmp_path)
    state, meta = ckpt.restore({"w": jnp.zeros(3)})
    assert_close(state["w"], jnp.arange(3.0), rtol=0.0)
    assert meta["config"] == config
    ckpt.close()
    other = Checkpointer(tmp_path, config_dict={**config, "seed": 1})
    with pytest.raises(CheckpointError, match=r"another config.*seed: 0 != 1"):
        other.restore({"w": jnp.zeros(3)})
    other.close()


def test_digest_ignores_static_fields_but_not_values(key):
    import equinox as eqx
    import jax

    # Static fields (here activation functions) print with memory addresses that differ
    # between processes; a checkpoint must verify in the process that resumes it.
    relu = eqx.nn.MLP(2, 2, 4, 1, activation=jax.nn.relu, key=key)
    other = eqx.nn.MLP(2, 2, 4, 1, activation=lambda x: x, key=key)
    digest = tree_digest(eqx.filter(relu, eqx.is_array))
    assert digest == tree_digest(eqx.filter(other, eqx.is_array))
    bumped = eqx.tree_at(lambda m: m.layers[0].bias, relu, relu.layers[0].bias.at[0].add(1e-7))
    assert digest != tree_digest(eqx.filter(bumped, eqx.is_array))


def test_resume_on_another_mesh(tmp_path, caplog):
    # An FSDP run on 6 devices continues on 1 (a smaller machine), a 1-device run on 6: the
    # checkpoint holds whole arrays, and the mesh changes only the order of float sums.
    config = apply_overrides(load_config(TOY), ["loop.num_steps=20", "checkpoint.every=10"])
    fsdp = apply_overrides(config, ["mesh.data=2", "mesh.model=3", "mesh.params=fsdp"])
    runs = {}
    for name, cfg, devices in [("fsdp6", fsdp, None), ("one", config, jax.devices()[:1])]:
        runs[name] = train(cfg, workdir=tmp_path / name, devices=devices)
        shutil.copytree(tmp_path / name, tmp_path / f"{name}-moved")
        shutil.rmtree(tmp_path / f"{name}-moved" / "checkpoints" / "20")
    moved = {
        "fsdp6": train(
            config, workdir=tmp_path / "fsdp6-moved", resume=True, devices=[jax.devices()[0]]
        ),
        "one": train(fsdp, workdir=tmp_path / "one-moved", resume=True),
    }
    assert "resumed on another mesh" in caplog.text
    for name, result in moved.items():
        assert result.step == 20
        for a, b in zip(
            jax.tree.leaves(eqx.filter(result.model, eqx.is_array)),
            jax.tree.leaves(eqx.filter(runs[name].model, eqx.is_array)),
            strict=True,
        ):
            assert_close(np.asarray(a), np.asarray(b), what=name)
    assert moved["one"].model.weight.sharding.spec == PartitionSpec(None, None, "model")
    assert len(moved["fsdp6"].model.weight.sharding.device_set) == 1


def test_resume_with_the_same_mesh_config_on_other_devices_says_so(tmp_path, caplog):
    # mesh.data=-1 (all devices) resolves to 4 devices, then to 2: the same `mesh.*` values, so
    # the check on the config alone was silent though the sums are ordered differently.
    config = apply_overrides(load_config(TOY), ["loop.num_steps=10", "checkpoint.every=5"])
    train(config, workdir=tmp_path / "run", devices=jax.devices()[:4])
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "10")
    with caplog.at_level(logging.WARNING):
        train(config, workdir=tmp_path / "run", resume=True, devices=jax.devices()[:4])
    assert "resumed on another mesh" not in caplog.text
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "10")
    with caplog.at_level(logging.WARNING):
        result = train(config, workdir=tmp_path / "run", resume=True, devices=jax.devices()[:2])
    assert result.step == 10
    assert "resumed on another mesh" in caplog.text
    assert "'devices': 4, 'data': 4" in caplog.text and "'devices': 2, 'data': 2" in caplog.text


def test_a_step_that_was_never_saved_is_refused_listing_the_saved_ones(tmp_path):
    """``restore(target, step=7)`` with only step 3 saved called checkpoint 7 "damaged or
    incomplete" and advised moving its (non-existent) folder; a negative step was saved."""
    ckpt = Checkpointer(tmp_path, keep=2)
    state = {"w": jnp.ones(3)}
    ckpt.save(3, state)
    with pytest.raises(CheckpointError, match=r"no checkpoint at `step`=7.*saved steps \[3\]") as e:
        ckpt.restore(state, step=7)
    assert "damaged" not in str(e.value)
    with pytest.raises(ValueError, match=r"`step` must be an integer >= 0; got -1"):
        ckpt.save(-1, state)
    assert ckpt.all_steps() == [3]
    ckpt.close()


def test_an_integer_array_step_is_saved_as_an_int(tmp_path):
    """An optimizer's step counter (optax's ``count``, a 0-d int32 JAX array) was refused as "not
    an integer", and a NumPy integer step came back from ``latest_step`` as ``np.int64``."""
    ckpt = Checkpointer(tmp_path, keep=3)
    state = {"w": jnp.ones(3)}
    ckpt.save(jnp.asarray(4, jnp.int32), state)
    ckpt.save(np.int64(5), state)
    assert ckpt.all_steps() == [4, 5] and type(ckpt.latest_step()) is int
    assert ckpt.restore(state, step=jnp.asarray(4))[1]["step"] == 4
    for bad in (jnp.asarray(4.0), jnp.asarray(True), jnp.arange(2)):
        with pytest.raises(ValueError, match=r"`step` must be an integer >= 0; got "):
            ckpt.save(bad, state)
    ckpt.close()


def test_a_step_not_after_the_saved_ones_is_refused(tmp_path):
    """Saving step 7 after steps 8 and 9 (keep=2) deleted step 8, the newer one, and
    ``latest_step()`` said 7 in this process but 9 in a fresh one; saving an existing step
    again failed with Orbax's own StepAlreadyExistsError."""
    ckpt = Checkpointer(tmp_path, keep=2)
    state = {"w": jnp.ones(3)}
    for step in (8, 9):
        ckpt.save(step, state)
    for step, later in ((7, r"\[8, 9\]"), (9, r"\[9\]")):
        with pytest.raises(ValueError, match=rf"`step`={step} is not after .*\(steps {later}\)"):
            ckpt.save(step, state)
    assert ckpt.all_steps() == [8, 9] and ckpt.latest_step() == 9
    ckpt.close()


def test_a_field_added_since_the_checkpoint_at_its_default_resumes(tmp_path):
    """A checkpoint from before a config field existed (the FNO configs' `task.norm`, added
    with the default "none") was refused as written by another config (`task.norm: None !=
    'none'`): a key the checkpoint lacks is the same config when this run holds its default;
    any other value is still refused."""
    from spectrax.train._config import config_differences

    old = {"__class__": "C", "task": {"__class__": "T", "width": 8}}
    new = {"__class__": "C", "task": {"__class__": "T", "width": 8, "norm": "none"}}
    defaults = {"task": {"width": 32, "norm": "none"}}
    assert config_differences(old, new) == ["task.norm: None != 'none'"]
    assert config_differences(old, new, defaults=defaults) == []
    changed = {**new, "task": {**new["task"], "norm": "group"}}
    assert config_differences(old, changed, defaults=defaults) == ["task.norm: None != 'group'"]
    # a key this run lacks (a checkpoint from a newer version) is still a difference
    assert config_differences(new, old, defaults=defaults) == ["task.norm: 'none' != None"]

    state = {"w": jnp.arange(3.0)}
    ckpt = Checkpointer(tmp_path, config_dict=old)
    ckpt.save(1, state)
    ckpt.close()
    with pytest.raises(CheckpointError, match="another config.*task.norm"):
        Checkpointer(tmp_path, config_dict=new).restore(state)
    restored, _ = Checkpointer(tmp_path, config_dict=new, config_defaults=defaults).restore(state)
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(3.0))


def test_config_defaults_mirror_the_config(toy_run):
    """`config_defaults` holds each field's declared default where `config_to_dict` holds its
    value (the loop hands it to the Checkpointer)."""
    from spectrax.train._config import config_defaults, config_to_dict

    config, _ = toy_run
    values, defaults = config_to_dict(config), config_defaults(config)
    assert defaults["optim"]["clip_norm"] == 1.0 and defaults["loop"]["max_nonfinite"] == 10
    assert set(defaults["optim"]) == set(values["optim"]) - {"__class__"}


def test_resume_of_a_run_from_before_a_config_field_existed(toy_run, tmp_path):
    """End to end: the stored config lacks a field this run holds at its default (as an FNO
    run from before `task.norm`): `train(resume=True)` and `evaluate_run` accept it."""
    import json

    config, wd = _copy_run(toy_run, tmp_path)
    metas = [p for p in (wd / "checkpoints").rglob("*") if p.is_file() and p.parent.name == "meta"]
    edited = 0
    for path in metas:
        try:
            meta = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(meta, dict) and "config" in meta:
            del meta["config"]["optim"]["clip_norm"]  # at its default, 1.0, in this run
            path.write_text(json.dumps(meta))
            edited += 1
    assert edited and config.optim.clip_norm == 1.0
    evaluate_run(config, wd)
    more = apply_overrides(config, ["loop.num_steps=60"])
    assert train(more, workdir=wd, resume=True).step == 60


def test_load_model_restores_a_runs_model(toy_run, tmp_path):
    """``load_model(run_dir)`` is the trained model (its config rebuilt from config.json, as
    ``spectrax eval`` does), whole on one device and callable; ``step=`` an earlier one; a step
    never saved, another config's checkpoint and a run directory that records no config file
    are refused by name. Restoring needed the optimizer state and RNG of the checkpoint's
    layout, which no public function built."""
    import json

    from spectrax.train import load_model, run_config

    config, result = toy_run
    assert config_to_dict(run_config(result.workdir)) == config_to_dict(config)
    model = load_model(result.workdir)
    want = jax.tree.leaves(eqx.filter(result.model, eqx.is_array))
    got = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert len(a.sharding.device_set) == 1
    earlier = load_model(result.workdir, config, step=20)
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(eqx.filter(earlier, eqx.is_array)), want, strict=True)
    )
    with pytest.raises(CheckpointError, match=r"no checkpoint at `step`=7"):
        load_model(result.workdir, config, step=7)
    other = apply_overrides(config, ["optim.learning_rate=0.5"])
    with pytest.raises(CheckpointError, match="optim.learning_rate"):
        load_model(result.workdir, other)
    _, wd = _copy_run(toy_run, tmp_path)
    (wd / "config.json").write_text(json.dumps({"source": {}}))
    with pytest.raises(ConfigError, match="was not started by `spectrax train`"):
        load_model(wd)
    with pytest.raises(ConfigError, match="is not a run directory"):
        load_model(tmp_path / "nowhere")


def test_a_partial_target_is_told_what_it_lacks(toy_run, tmp_path):
    """Restoring a run's checkpoint into its model alone was refused with a tip about
    filtered skeletons, which was not the cause: the message names the entries the target
    lacks and load_model. A dtype difference without float64 no longer blames x64."""
    _, wd = _copy_run(toy_run, tmp_path)
    model = eqx.filter(toy_run[1].model, eqx.is_array)
    ckpt = Checkpointer(wd / "checkpoints", keep=3)
    try:
        with pytest.raises(CheckpointError, match=r"lacks the entries \[.*'opt_state'.*load_model"):
            ckpt.restore({"model": model})
    finally:
        ckpt.close()
    small = Checkpointer(tmp_path / "small", keep=1)
    try:
        small.save(1, {"n": jnp.arange(3, dtype=jnp.int32)})
        with pytest.raises(CheckpointError, match="other dtypes") as err:
            small.restore({"n": jnp.zeros(3, jnp.uint32)})
        assert "JAX_ENABLE_X64" not in str(err.value) and "int32 != uint32" in str(err.value)
    finally:
        small.close()


def test_a_filtered_skeleton_still_gets_the_skeleton_hint(tmp_path):
    """An entry present but short of arrays (a skeleton filtered with eqx.is_array, which drops
    its jax.ShapeDtypeStruct leaves), in a dict target or as the whole target: the message
    points to the filtering, not to entries 'lacked altogether'."""
    model = eqx.nn.MLP(2, 2, 4, 1, key=jax.random.key(0))
    arrays = eqx.filter(model, eqx.is_array)
    skeleton = eqx.filter(eqx.filter_eval_shape(lambda: model), eqx.is_array)
    for name, state, target in (
        ("dict", {"model": arrays}, {"model": skeleton}),
        ("whole", arrays, skeleton),
    ):
        ckpt = Checkpointer(tmp_path / name, keep=1)
        try:
            ckpt.save(1, state)
            with pytest.raises(CheckpointError, match="ShapeDtypeStruct") as err:
                ckpt.restore(target)
            assert "altogether" not in str(err.value)
        finally:
            ckpt.close()
