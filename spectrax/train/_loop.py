"""The training loop: mesh, model, optimizer, resume, jitted steps, guard, logs, checkpoints,
evaluation, plots and report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from spectrax.train._checkpoint import Checkpointer, CheckpointError
from spectrax.train._config import (
    Config,
    ConfigError,
    config_defaults,
    config_to_dict,
    load_config,
    validate_config,
)
from spectrax.train._mesh import (
    batch_from_rows,
    batch_rows,
    batch_sharding,
    gather_to_host,
    make_mesh,
    maybe_initialize_distributed,
    shard_model,
)
from spectrax.train._metrics import MetricWriter, read_metrics
from spectrax.train._optim import make_optimizer, param_labels
from spectrax.train._plots import plot_loss_curves
from spectrax.train._step import init_opt_state, make_train_step
from spectrax.train._task import batch_indices

__all__ = [
    "TrainResult",
    "default_workdir",
    "evaluate_run",
    "load_model",
    "params_digest",
    "run_config",
    "train",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What a run ended with.

    Attributes:
        workdir: the run directory.
        step: the last step taken.
        model: the trained model.
        metrics: final evaluation metrics (``test_error`` among them); empty if the run stopped
            on non-finite updates.
        stopped: ``"completed"``, ``"nonfinite"`` or ``"signal"``.
        skipped: total number of skipped (non-finite) updates.
        passed: ``test_error <= max_test_error``, or ``None`` without a threshold.
    """

    workdir: Path
    step: int
    model: Any
    metrics: dict[str, float]
    stopped: str
    skipped: int
    passed: bool | None


def default_workdir(config: Config, root: str | Path = "runs") -> Path:
    """``runs/<name>-<UTC timestamp>``, or ``...-<timestamp>-<n>`` if that one already exists
    (two runs started in the same second)."""
    base = Path(root) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def latest_workdir(config: Config, root: str | Path = "runs") -> Path | None:
    """The newest ``runs/<name>-<timestamp>[-<n>]`` of this config's name exactly (``toy`` does
    not match ``toy_big-...``)."""
    pattern = re.compile(rf"{re.escape(config.name)}-(\d{{8}}-\d{{6}})(?:-(\d+))?")
    found = []
    for p in Path(root).glob(f"{config.name}-*"):
        m = pattern.fullmatch(p.name)
        if m and p.is_dir():
            found.append((m.group(1), int(m.group(2) or 1), p))
    return max(found)[2] if found else None


def _is_primary() -> bool:
    """Whether this process writes the run's outputs (config.json, metrics, plots, report).
    Checkpoints are written by every process: Orbax coordinates them across hosts."""
    return jax.process_index() == 0


def _new_workdir(config: Config) -> Path:
    """Create a fresh default run directory (atomically: a directory another run created in
    the same second is never shared)."""
    while True:
        path = default_workdir(config)
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue


def _holds_metrics(workdir: Path) -> bool:
    path = workdir / "metrics.jsonl"
    return path.is_file() and bool(path.read_text().strip())


def _held_metrics_error(workdir: Path) -> CheckpointError:
    return CheckpointError(
        f"{workdir} already holds a run's metrics.jsonl but no checkpoint; choose another "
        "--workdir, or pass --resume to start over in it (the old log is kept)."
    )


def _set_aside_metrics(workdir: Path, resume: bool) -> None:
    """A directory with logged metrics but no checkpoint: refuse a fresh run (nothing is
    overwritten); with ``resume``, start over and keep the old log beside the new one."""
    path = workdir / "metrics.jsonl"
    if not _holds_metrics(workdir):
        return
    if not resume:
        raise _held_metrics_error(workdir)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    kept = path.with_name(f"metrics.jsonl.before-{stamp}")
    path.rename(kept)
    # the config that wrote the old log goes with it (the new run writes its own config.json)
    config_json = workdir / "config.json"
    if config_json.is_file():
        config_json.rename(config_json.with_name(f"config.json.before-{stamp}"))
    # and its TensorBoard events: left in place, the new run's curves were drawn over the old
    # run's (a fresh log has no purge step to drop them)
    events = workdir / "tensorboard"
    if events.is_dir():
        events.rename(events.with_name(f"tensorboard.before-{stamp}"))
    logger.warning(
        "%s has no checkpoint to resume from: starting over; old log kept as %s (its config "
        "as config.json.before-%s, its TensorBoard events as tensorboard.before-%s)",
        workdir,
        kept.name,
        stamp,
        stamp,
    )


def _write_replacing(path: Path, text: str) -> None:
    """Written beside and renamed over: a write that fails part-way (a full disk, a kill) leaves
    the old file whole (a resumed run's config.json, which `spectrax eval` rebuilds the config
    from, was truncated in place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _stored_source(workdir: Path) -> dict[str, Any]:
    """The ``source`` recorded in an existing ``config.json`` (empty if none)."""
    try:
        return json.loads((workdir / "config.json").read_text()).get("source") or {}
    except (OSError, ValueError, AttributeError):
        return {}


@contextlib.contextmanager
def _stop_on_signals():
    """Turn SIGTERM/SIGINT into a flag the loop checks after each step (main thread only)."""
    flag = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        flag["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _agreed_signal(local: str | None) -> str | None:
    """The signal this process or any other received (all of them stop at this step), else
    ``None``. Over several processes a collective: every process calls it at the same steps."""
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    flags = np.asarray(multihost_utils.process_allgather(np.int32(local is not None)))
    if not flags.any():
        return None
    return local or f"a signal on process {int(np.argmax(flags))}"


@contextlib.contextmanager
def _task_values_checked():
    """Re-raise a ValueError or TypeError from building the task or its model as a ConfigError
    that points at the ``task.*`` values."""
    try:
        yield
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"the task refused its `task.*` values: {e} (check the overrides of `task.*`; "
            f"with none, the config's own task or model code raised this {type(e).__name__})"
        ) from e


def _setup(config: Config, devices: list | None):
    mesh = make_mesh(config, devices)
    # Task values each in range that the builder refuses (a lag longer than the sequence, a
    # resolution the generator cannot take) or that give a model that does not fit the data
    # (more modes than the grid holds: the ready-made tasks trace the loss on one example in
    # init_model) are config errors (exit 2), raised before the run directory is touched.
    with _task_values_checked():
        task = config.task.build()
    if config.loop.batch_size > task.num_train():
        raise ConfigError(
            f"`loop.batch_size` ({config.loop.batch_size}) exceeds the task's "
            f"{task.num_train()} training examples; lower it or raise `task.num_train`."
        )
    key = jax.random.key(config.seed)
    model_key, run_key = jax.random.split(key)
    with _task_values_checked():
        model = task.init_model(model_key)
    params = eqx.filter(model, eqx.is_inexact_array)
    optimizer = make_optimizer(config, param_labels(params, task))
    opt_state = init_opt_state(optimizer, model)
    if config.mesh.params == "fsdp" and mesh.shape["model"] == 1 and mesh.size > 1:
        logger.warning(
            "mesh.params=fsdp with a model axis of 1 device shards nothing: each of the %d "
            "devices holds whole parameters and optimizer state, as with replicated; set "
            "mesh.model to a divisor of the device count above 1 to split them",
            mesh.size,
        )
    model = shard_model(model, mesh, config.mesh.params)
    opt_state = shard_model(opt_state, mesh, config.mesh.params)
    rng = shard_model(jax.random.key_data(run_key), mesh, "replicated")
    return mesh, task, model, optimizer, opt_state, rng


def _refuse_held_checkpoints_early(workdir: Path) -> None:
    """The fresh-run refusals below, from the folder names alone, before the data are built
    (minutes for some tasks); the check after setup, through Orbax, stays the authority. On
    every process: one that went on alone would wait forever for the others' collectives."""
    ckpts = workdir / "checkpoints"
    steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
    if steps:
        raise _held_checkpoints_error(workdir, max(steps))
    if _holds_metrics(workdir):
        raise _held_metrics_error(workdir)


def _damaged_log_error(workdir: Path, err: ValueError) -> CheckpointError:
    return CheckpointError(
        f"cannot resume the log of {workdir}: {err}. Repair or delete that line; the log is "
        "left as it is."
    )


def _check_log_early(workdir: Path) -> None:
    """A resumed run's log, read before the data are built (minutes for some tasks) where a
    checkpoint will have it rewritten: a damaged line is a bad run directory, not a crash after
    the restore. On every process, as :func:`_refuse_held_checkpoints_early`."""
    ckpts = workdir / "checkpoints"
    if not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
        return
    if (workdir / "metrics.jsonl").is_file():
        try:
            read_metrics(workdir)
        except ValueError as err:
            raise _damaged_log_error(workdir, err) from err


def _check_workdir_path(workdir: Path) -> None:
    """A run directory that is a file, or lies under one, cannot be created: say so before the
    data are built (minutes for some tasks), not as a crash when the outputs are written."""
    for path in (workdir, *workdir.parents):
        if path.exists():
            if not path.is_dir():
                what = "is" if path == workdir else f"lies under {path}, which is"
                raise ConfigError(
                    f"the run directory (--workdir or `output.workdir`) {workdir} {what} a file, "
                    "not a directory; choose another path."
                )
            return


def _held_checkpoints_error(workdir: Path, latest: int) -> CheckpointError:
    return CheckpointError(
        f"{workdir} already holds checkpoints (latest step {latest}); pass "
        "--resume to continue that run or choose another --workdir."
    )


def _checkpoint_state(model, opt_state, rng) -> dict[str, Any]:
    return {"model": eqx.filter(model, eqx.is_array), "opt_state": opt_state, "rng": rng}


def train(
    config: Config,
    *,
    workdir: str | Path | None = None,
    resume: bool = False,
    devices: list | None = None,
    source: dict[str, Any] | None = None,
) -> TrainResult:
    """Run a training job end to end.

    Args:
        config: a validated :class:`Config`.
        workdir: run directory (default ``config.output.workdir``, ``~`` expanded, or
            ``runs/<name>-<time>``; with ``resume`` and no directory, the newest
            ``runs/<name>-*``).
        resume: continue from the directory's latest checkpoint (a fresh start if it has
            none), also on another mesh (``mesh.*`` may differ). Without it, a directory that
            already holds checkpoints is refused.
        devices: devices for the mesh (default: all).
        source: how the config was made (file, variant, overrides), stored in
            ``config.json`` so ``spectrax eval`` can rebuild it. A resumed run given none keeps
            the one already stored.

    Returns:
        A :class:`TrainResult`. Writes ``checkpoints/``, ``metrics.jsonl``, ``config.json``,
        ``*.png`` and ``report.md`` into the run directory (on multi-host runs, process 0
        writes all but the checkpoints).

    Raises:
        ConfigError: an invalid config or mesh, before any work; a multi-host run without a
            run directory (each host would pick its own timestamp).
        CheckpointError: a checkpoint from another config, or a damaged one; a directory that
            holds checkpoints, or logged metrics, of a run not being resumed.
    """
    validate_config(config)
    maybe_initialize_distributed()
    if workdir is None and config.output.workdir:
        # a config value reaches no shell: `~` is the home folder here, not a folder named "~"
        workdir = Path(config.output.workdir).expanduser()
    if workdir is None and jax.process_count() > 1:
        raise ConfigError(
            f"a run over {jax.process_count()} processes needs one run directory for all of "
            "them: pass --workdir (or set `output.workdir`)."
        )
    if workdir is not None:
        _check_workdir_path(Path(workdir))
    if workdir is not None and not resume:
        _refuse_held_checkpoints_early(Path(workdir))
    if workdir is not None and resume:
        _check_log_early(Path(workdir))
    mesh, task, model, optimizer, opt_state, rng = _setup(config, devices)
    if workdir is None:
        workdir = (latest_workdir(config) if resume else None) or _new_workdir(config)
    workdir = Path(workdir)
    primary = _is_primary()
    cfg_dict = config_to_dict(config)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpointer(
        workdir / "checkpoints",
        keep=config.checkpoint.keep,
        config_dict=cfg_dict,
        config_defaults=config_defaults(config),
    )
    start, loop_steps = 0, config.loop.num_steps
    if primary and source is None and resume:
        # read before a log without a checkpoint is set aside with its config.json
        source = _stored_source(workdir)
    if ckpt.latest_step() is not None:
        if not resume:
            ckpt.close()
            raise _held_checkpoints_error(workdir, ckpt.latest_step())
        restored, meta = ckpt.restore(_checkpoint_state(model, opt_state, rng))
        static = eqx.filter(model, eqx.is_array, inverse=True)
        model = eqx.combine(restored["model"], static)
        opt_state, rng = restored["opt_state"], restored["rng"]
        start = int(meta["step"])
        if start > loop_steps:
            ckpt.close()
            # it was accepted and reported "completed at step 10 of 6", and config.json then
            # recorded a shorter run than its checkpoint holds (a step schedule lets the
            # length differ; a cosine one is refused with the other config differences)
            raise ConfigError(
                f"`loop.num_steps`={loop_steps} is less than the step of the latest checkpoint "
                f"in {workdir / 'checkpoints'} ({start}): a resumed run continues up to "
                f"loop.num_steps, it cannot be shortened. Pass loop.num_steps >= {start}, or "
                f"evaluate that checkpoint with `spectrax eval {workdir}`."
            )
        logger.info("resumed %s at step %d", workdir, start)
        saved_mesh = meta.get("config", {}).get("mesh")
        # the resolved mesh too: the same `mesh.*` (data=-1) on another number of devices
        saved_used, used = meta.get("mesh_used"), _mesh_used(mesh)
        if (saved_mesh is not None and saved_mesh != cfg_dict["mesh"]) or (
            saved_used is not None and saved_used != used
        ):
            logger.warning(
                "resumed on another mesh (checkpoint: %s, %s; now: %s, %s): the run continues "
                "equal to an uninterrupted one to float rounding, not bitwise",
                saved_mesh,
                saved_used,
                cfg_dict["mesh"],
                used,
            )
    elif primary:
        if resume:
            logger.warning("--resume: %s holds no checkpoint; starting at step 0", workdir)
        try:
            _set_aside_metrics(workdir, resume)
        except CheckpointError:
            ckpt.close()
            raise
    if primary:
        _write_replacing(
            workdir / "config.json",
            json.dumps({"config": cfg_dict, "source": source or {}}, indent=2, default=str),
        )
        if not start:  # a resumed run said so above; a long run is watched from its start
            logger.info("run %s: writing to %s", config.name, workdir)

    loop = config.loop
    step_fn = make_train_step(
        task.loss,
        optimizer,
        max_nonfinite=loop.max_nonfinite,
        mesh=mesh,
        param_sharding=config.mesh.params,
        compute_dtype=loop.compute_dtype,
    )
    sharding = batch_sharding(mesh)
    # the rows of each batch this process's devices hold (all of them with one process)
    rows = batch_rows(sharding, loop.batch_size)
    try:
        writer = MetricWriter(
            workdir,
            tensorboard=config.output.tensorboard,
            resume_step=start if start else None,
            enabled=primary,
        )
    except ValueError as err:  # a damaged line before the last one: read_metrics names it
        ckpt.close()
        raise _damaged_log_error(workdir, err) from err
    num_train = task.num_train()
    stopped, step, last_saved = "completed", start, start if start else -1
    # the guard's running count lives in the optimizer state: a resumed run continues it
    skipped_total = int(jax.device_get(opt_state.guard.total))
    pending: list[tuple[int, dict[str, Any]]] = []
    tic, tic_step = time.perf_counter(), start

    from tqdm.auto import tqdm

    bar = tqdm(
        total=loop.num_steps,
        initial=start,
        disable=not config.output.progress,
        desc=config.name,
        unit="step",
    )

    def flush() -> dict[str, Any] | None:
        """Write the pending step metrics; return the last one (None if nothing was pending)."""
        nonlocal pending, worst_run, tripped_at
        if not pending:
            return None
        host = jax.device_get(pending)
        pending = []
        for s, m in host:
            writer.write(s, "train", m)
        skipped_now = [s for s, m in host if int(m["skipped"]) and not int(m["halted"])]
        if skipped_now:
            # below the limit the run goes on: say so now, not only in the final summary
            logger.warning(
                "non-finite loss, gradients or update at step(s) %s: skipped (%d so far; "
                "loop.max_nonfinite=%d in a row stop the run)",
                ", ".join(map(str, skipped_now[:10]))
                + (f", ... ({len(skipped_now)} steps)" if len(skipped_now) > 10 else ""),
                int(host[-1][1]["nonfinite_total"]),
                loop.max_nonfinite,
            )
        worst_run = max(worst_run, *(int(m["nonfinite_consecutive"]) for _, m in host))
        if tripped_at is None:
            tripped_at = next(
                (s for s, m in host if int(m["nonfinite_consecutive"]) >= loop.max_nonfinite),
                None,
            )
        return host[-1][1]

    def report_nonfinite(step: int) -> None:
        every = config.checkpoint.every
        if last_saved > 0:
            saved = f"the last checkpoint (step {last_saved}) is intact"
        elif not every:
            saved = "no checkpoint was written (checkpoint.every=0)"
        elif step < every:
            saved = f"no checkpoint was written (the first would have been at step {every})"
        else:  # every due step before the trip saved one: this one is due, and withheld
            saved = (
                f"no checkpoint was written (the one due at step {step} is withheld: none is "
                "written of halted steps)"
            )
        logger.error(
            "stopping at step %d: %d non-finite updates in a row by step %d "
            "(loop.max_nonfinite=%d), and the steps after it changed nothing; %s",
            step,
            worst_run,
            tripped_at,
            loop.max_nonfinite,
            saved,
        )

    worst_run, tripped_at = 0, None
    multi = jax.process_count() > 1
    with _stop_on_signals() as flag:
        for step in range(start + 1, loop.num_steps + 1):
            idx = batch_indices(config.seed, step - 1, num_train, loop.batch_size)
            batch = _global_batch(task, idx, sharding, rows, rng, step)
            model, opt_state, metrics = step_fn(model, opt_state, batch)
            pending.append((step, metrics))
            bar.update(1)
            due = bool(config.checkpoint.every and step % config.checkpoint.every == 0)
            eval_now = bool(
                loop.eval_every and step % loop.eval_every == 0 and step != loop.num_steps
            )
            # an evaluation step flushes too: its eval record follows the train records of the
            # steps before it, as after a stop and resume at that step
            at_log = step % loop.log_every == 0 or step == loop.num_steps or eval_now
            # Several processes must save and stop at one step (the save is a collective): they
            # compare flags at the log and checkpoint steps, where the host waits anyway.
            signal_now = _agreed_signal(flag["signal"]) if at_log or due or not multi else None
            save = due or bool(signal_now)
            if at_log or save:
                # The log must reach every checkpoint: a resumed run appends after its step.
                last = flush()
                if last is not None:
                    skipped_total = int(last["nonfinite_total"])
                    rate = (
                        (step - tic_step) * loop.batch_size / max(time.perf_counter() - tic, 1e-9)
                    )
                    tic, tic_step = time.perf_counter(), step
                    bar.set_postfix(
                        loss=f"{float(last['loss']):.3e}",
                        ex_per_s=f"{rate:.0f}",
                        skipped=skipped_total,
                    )
                if worst_run >= loop.max_nonfinite:
                    stopped = "nonfinite"
                    report_nonfinite(step)
                    break
            if eval_now:
                writer.write(step, "eval", task.evaluate(_for_eval(model, mesh, config)))
            if flag["signal"] and not save and not multi:
                # the signal came during the log flush or the eval above: still save this step
                signal_now, save = flag["signal"], True
                last = flush()
                if last is not None:
                    skipped_total = int(last["nonfinite_total"])
                if worst_run >= loop.max_nonfinite:
                    # the guard tripped since the last read: no checkpoint of halted steps
                    stopped = "nonfinite"
                    report_nonfinite(step)
                    break
            if save:
                ckpt.save(
                    step,
                    _checkpoint_state(model, opt_state, rng),
                    extra=_position(config, step, mesh),
                )
                last_saved = step
            if signal_now:
                stopped = "signal"
                logger.warning("received %s: saved step %d and stopped", signal_now, step)
                break
    bar.close()
    if stopped == "completed" and last_saved != step:
        ckpt.save(
            step, _checkpoint_state(model, opt_state, rng), extra=_position(config, step, mesh)
        )
    ckpt.close()

    final: dict[str, float] = {}
    passed = None
    if stopped == "completed":
        final = task.evaluate(_for_eval(model, mesh, config))
        # a resumed run that had already finished has this record (do not log it twice)
        logged = (
            start == step
            and primary
            and (workdir / "metrics.jsonl").exists()
            and any(r["split"] == "eval" and r["step"] == step for r in read_metrics(workdir))
        )
        if not logged:
            writer.write(step, "eval", final)
        if config.max_test_error is not None:
            passed = final["test_error"] <= config.max_test_error
    writer.close()
    draw = config.output.plots and stopped == "completed"
    # every process: over several, gathering the model for process 0's plots is a collective
    plot_model = gather_to_host(model) if draw else None
    if config.output.plots and primary:
        plot_loss_curves(read_metrics(workdir), workdir / "loss_curves.png")
        if draw:
            task.plots(plot_model, workdir)
    result = TrainResult(workdir, step, model, final, stopped, skipped_total, passed)
    if primary:
        _write_report(config, result, mesh)
    return result


def _global_batch(task, idx: np.ndarray, sharding, rows: np.ndarray, rng, step: int) -> Any:
    """Step ``step``'s batch, examples ``idx``, as global arrays laid out by ``sharding``.

    This process loads its ``rows`` of it alone (:func:`~spectrax.train._mesh.batch_rows`):
    over several processes that split the ``data`` axis, host work and memory per process
    scale with its share of the batch, not with the whole. With every row (one process, or a
    batch axis replicated over the devices of all processes) the host batch goes in whole.
    """
    if len(rows) == len(idx):
        batch = task.get_batch(idx)
    else:
        batch = batch_from_rows(task.get_batch(idx[rows]), sharding, rows, len(idx))
    if getattr(task, "needs_key", False):
        # one PRNG key per example (dropout), a pure function of (run key, step): a resumed
        # run draws the same ones, and so does a run over any number of processes
        keys = jax.random.split(jax.random.fold_in(jax.random.wrap_key_data(rng), step), len(idx))
        batch = {**batch, "key": jax.random.key_data(keys)}
    # places the host batch, or only the keys when the rest is already placed
    return jax.device_put(batch, sharding)


def _position(config: Config, step: int, mesh) -> dict[str, Any]:
    # The data order is a pure function of (seed, step): this is the whole iterator state.
    return {
        "data_position": {"seed": config.seed, "step": step, "batch_size": config.loop.batch_size},
        "mesh_used": _mesh_used(mesh),
    }


def _mesh_used(mesh) -> dict[str, int]:
    # the mesh as resolved (mesh.data=-1 is all devices: the same config on another machine)
    return {"devices": int(mesh.devices.size), **{k: int(v) for k, v in mesh.shape.items()}}


def _write_report(config: Config, result: TrainResult, mesh) -> None:
    lines = [
        f"# {config.name}",
        "",
        f"- stopped: {result.stopped} at step {result.step} of {config.loop.num_steps}",
        f"- skipped non-finite updates: {result.skipped}",
        # the mesh the run used (train(devices=...) may take fewer than all; data=-1 resolved)
        f"- devices: {mesh.devices.size} ({jax.default_backend()}), mesh data={mesh.shape['data']} "
        f"model={mesh.shape['model']} params={config.mesh.params}",
    ]
    for k, v in result.metrics.items():
        lines.append(f"- {k}: {v:.6g}")
    if config.max_test_error is not None and result.metrics:
        verdict = "pass" if result.passed else "FAIL"
        lines.append(f"- threshold: test_error <= {config.max_test_error} ({verdict})")
    pngs = sorted(p.name for p in result.workdir.glob("*.png"))
    if pngs:
        lines += ["", "## Figures", ""] + [f"![{p}]({p})" for p in pngs]
    (result.workdir / "report.md").write_text("\n".join(lines) + "\n")


def _for_eval(model: Any, mesh: Any, config: Config) -> Any:
    """The model as the tasks' evaluation runs it: whole on every device. FSDP-sharded
    parameters made XLA partition the evaluation's forward pass, which replicates its FFTs
    (openxla/xla#24) and, for an S4D model on CPU, failed in XLA's FFT with a layout
    RET_CHECK; the training step gathers them in its own way (make_train_step's ``mesh``)."""
    if config.mesh.params != "fsdp" or mesh.size == 1:
        return model
    return shard_model(model, mesh, "replicated")


def _restore_run(
    config: Config, workdir: str | Path, devices: list | None, step: int | None, what: str
) -> tuple[Any, Any, Any, Config, dict]:
    """``(model, task, mesh, config, meta)`` of ``workdir``'s checkpoint at ``step`` (default:
    the latest), on the config's mesh over ``devices`` when it fits, else on the first device
    alone (``config`` is then that one-device config)."""
    ckpts = Path(workdir) / "checkpoints"
    # before the task is built (minutes for some), and without creating a mistyped directory
    if not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
        raise CheckpointError(
            f"no checkpoint in {ckpts}: expected the run directory of a run that saved one "
            f"({'it has no checkpoints/ folder' if not ckpts.is_dir() else 'the folder is empty'})."
        )
    cfg_dict = config_to_dict(config)  # the training config: what the checkpoint records
    devices = list(jax.devices() if devices is None else devices)
    try:
        make_mesh(config, devices)
    except ConfigError as err:
        log = logger.info if len(devices) == 1 else logger.warning  # one device asked for
        log("the run's mesh does not fit here (%s); %s on one device", err, what)
        devices = devices[:1]
        config = dataclasses.replace(config, mesh=dataclasses.replace(config.mesh, data=1, model=1))
    mesh, task, model, _, opt_state, rng = _setup(config, devices)
    ckpt = Checkpointer(
        ckpts,
        keep=config.checkpoint.keep,
        config_dict=cfg_dict,
        config_defaults=config_defaults(config),
    )
    try:
        restored, meta = ckpt.restore(_checkpoint_state(model, opt_state, rng), step)
    finally:
        ckpt.close()
    logger.info("%s %s, step %s", what, ckpts, meta.get("step"))
    model = eqx.combine(restored["model"], eqx.filter(model, eqx.is_array, inverse=True))
    return model, task, mesh, config, meta


def evaluate_run(
    config: Config, workdir: str | Path, *, devices: list | None = None
) -> dict[str, float]:
    """Restore the latest checkpoint of ``workdir`` (refused if written by another config) and
    return the task's test metrics.

    The config's mesh is used when it fits ``devices`` (default: all); otherwise (a run trained
    on 8 devices, evaluated on a laptop) the model is evaluated on the first device alone.
    """
    model, task, mesh, config, _ = _restore_run(config, workdir, devices, None, "evaluating")
    return task.evaluate(_for_eval(model, mesh, config))


def run_config(workdir: str | Path) -> Config:
    """The config a run directory written by ``spectrax train`` was started with: its
    ``config.json`` records the config file, variant and overrides, from which the config is
    rebuilt (as ``spectrax eval`` does).

    Raises:
        ConfigError: not such a run directory (no or a damaged ``config.json``, or one of a run
            started from Python, which records no config file: pass that run's config to
            :func:`load_model` or :func:`evaluate_run` yourself).
    """
    run = Path(workdir)
    try:
        stored = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{run} is not a run directory ({err}).") from None
    src = stored.get("source") if isinstance(stored, dict) else None
    src = {} if src is None and isinstance(stored, dict) else src
    overrides = src.get("overrides", []) if isinstance(src, dict) else None
    if not (
        isinstance(src, dict)
        and isinstance(src.get("file", ""), str)
        and isinstance(src.get("variant", ""), str)
        and isinstance(overrides, list)
        and all(isinstance(o, str) for o in overrides)
    ):
        raise ConfigError(
            f"{run} is not a run directory (its config.json is not the record `spectrax "
            "train` writes: an object whose `source` holds the config file, variant and "
            "override strings)."
        )
    if "file" not in src:
        raise ConfigError(
            f"{run} was not started by `spectrax train` (its config.json records no config "
            "file to rebuild the task from); pass the run's config yourself."
        )
    return load_config(src["file"], overrides, variant=src.get("variant", "default"))


def load_model(
    workdir: str | Path,
    config: Config | None = None,
    *,
    step: int | None = None,
    devices: list | None = None,
) -> Any:
    """The trained model of a run directory, restored from its checkpoint at ``step`` (default:
    the latest), ready to call: ``model = load_model("runs/try"); jax.vmap(model)(x)``.

    Args:
        workdir: the run directory (``train``'s ``workdir``, ``spectrax train --workdir``).
        config: the run's config; default :func:`run_config` of ``workdir`` (a run started
            by ``spectrax train``). A checkpoint written by another config is refused, naming
            the keys that differ.
        step: a saved step (``Checkpointer(...).all_steps()``); default the latest.
        devices: where to place it (default: the first device): on the run's mesh when it
            fits these devices, the parameters whole (FSDP shards gathered) on each of them;
            otherwise on the first of them alone.

    Returns:
        The model (an Equinox module) as the run's task builds it, with the checkpoint's
        parameters (float32 master copy of a mixed-precision run).

    Raises:
        CheckpointError: no checkpoint, none at ``step``, another config's or a damaged one.
        ConfigError: ``config`` omitted and ``workdir`` not a ``spectrax train`` run.
    """
    if config is None:
        config = run_config(workdir)
    elif not isinstance(config, Config):
        raise TypeError(f"`config` must be a Config or None; got {type(config).__name__}.")
    if devices is None:
        devices = jax.devices()[:1]
    model, _, mesh, config, _ = _restore_run(config, workdir, devices, step, "loading")
    return _for_eval(model, mesh, config)


def params_digest(model: Any) -> str:
    """SHA-256 of a model's arrays (bitwise comparisons between runs)."""
    from spectrax.train._checkpoint import tree_digest

    return tree_digest(eqx.filter(model, eqx.is_array))
