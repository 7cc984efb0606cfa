"""FNO accuracy on the paper's benchmarks (Burgers, Darcy, Navier–Stokes), trained by
``spectrax.train``.

Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations":

- ``burgers`` (Table 1): FNO-1d on Burgers (nu = 0.1), 1000 train / 100 test at s = 1024,
  16 modes, width 64: test relative L2 0.0160. Config ``configs/burgers_fno.py``.
- ``darcy`` (Table 4): FNO-2d on Darcy flow, 1000 train / 100 test at s = 85 (solved at 421),
  12 modes, width 32: 0.0108. Config ``configs/darcy_fno.py``.
- ``navier_stokes`` (Table 3): FNO-2d on vorticity at nu = 1e-3, 64 x 64, 10 snapshots in,
  the next 40 out, N = 1000 train: 0.0128. Config ``configs/navier_stokes_fno.py`` (by default
  the paper's one-step model tested by the 40-step rollout, trained by teacher forcing;
  ``--set task.formulation=recurrent`` or ``direct`` for the others: see its docstring).

Data come from the project's own solvers, never downloaded; they are generated into a fresh
cache directory under the work directory, so the data-generation time is measured every run
(unless that directory holds a cache already: the record then says ``data_read_from_cache``).
Writes ``benchmarks/fno-<problem>-accuracy-<platform>.json`` with the device, versions, date,
sizes, data-generation and training times, the test relative L2 error and the paper's value.

    python scripts/bench_fno_accuracy.py                      # Burgers at the paper's sizes
    python scripts/bench_fno_accuracy.py --problem darcy --steps 2000
    python scripts/bench_fno_accuracy.py --problem navier_stokes --steps 50 --num-train 64

Long runs survive interruption: give a fixed ``--workdir`` and a ``checkpoint.every``, and
continue later with ``--resume WORKDIR`` (the run's own options are read back from
``WORKDIR/bench_run.json``; the JSON is written when the run completes, with the training time
summed over its segments).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from spectrax._benchmark import provenance, record_path, write_record
from spectrax.train import load_config, read_metrics, train


@dataclasses.dataclass(frozen=True)
class Problem:
    config: str
    title: str
    paper_rel_l2: float
    paper_setting: str
    paper_epochs: int
    formulation: Callable[[Any], str]  # config.task -> what is computed
    # Script defaults: (num_train, num_test, resolution, width, modes, steps, batch, lr).
    defaults: dict


PROBLEMS = {
    "burgers": Problem(
        "burgers_fno",
        "FNO-1d on Burgers (nu=0.1), test relative L2",
        0.0160,
        "Li et al. 2021, Table 1: s=1024, 1000 train / 100 test, modes 16, width 64",
        500,
        lambda task: "a = u(., 0) -> u(., 1), as in the paper",
        {
            "num_train": 1000,
            "num_test": 100,
            "resolution": 1024,
            "width": 64,
            "modes": 16,
            "steps": 4000,
            "batch_size": 20,
            "learning_rate": 3e-3,
        },
    ),
    "darcy": Problem(
        "darcy_fno",
        "FNO-2d on Darcy flow, test relative L2",
        0.0108,
        "Li et al. 2021, Table 4: s=85 (from 421), 1000 train / 100 test, modes 12, width 32, "
        "500 epochs",
        500,
        lambda task: (
            f"coefficient a -> pressure u, as in the paper; {task.normalize} standardisation "
            f"(the paper's code: pointwise), domain padding {task.padding:g} of each axis "
            "(the paper's code: 9 points of 85)"
        ),
        {
            "num_train": 1000,
            "num_test": 100,
            "resolution": 85,
            "width": 32,
            "modes": 12,
            "steps": 2000,
            "batch_size": 20,
            "learning_rate": 2e-3,
        },
    ),
    "navier_stokes": Problem(
        "navier_stokes_fno",
        "FNO-2d on Navier-Stokes (nu=1e-3, 10 -> 40 snapshots), test relative L2",
        0.0128,
        "Li et al. 2021, Table 3: FNO-2d, nu=1e-3, T=50, N=1000, 64x64, modes 12, width 20, "
        "recurrent rollout, 500 epochs",
        500,
        lambda task: (
            (
                "direct map: the 10 snapshots t=1..10 as input channels -> the 40 snapshots "
                "t=11..50 as output channels in one FNO-2d call (the paper's FNO-2d is a recurrent "
                "one-step map unrolled 40 times)"
                if task.formulation == "direct"
                else "recurrent, as the paper's FNO-2d: the last 10 snapshots -> the next one, "
                "unrolled 40 times and trained through the rollout (loss: relative L2 of the whole "
                "rollout; the paper sums per-step relative L2)"
                if task.formulation == "recurrent"
                else "recurrent one-step FNO-2d as the paper's (the last 10 snapshots -> the next "
                "one; tested by the 40-step rollout from t=1..10), trained by teacher forcing: "
                "each training example is one window of 10 true snapshots and its true next one "
                "(40 windows per trajectory), loss the one-step relative L2"
            )
            + (
                "; residual: the model returns increments over the last input snapshot"
                if getattr(task, "residual", False)
                else ""
            )
            + "; data solved on 64x64 with ETDRK4, dt=0.05 (paper: 256x256, dt=1e-4)"
        ),
        {
            "num_train": 1000,
            "num_test": 200,
            "resolution": 64,
            "width": 20,
            "modes": 12,
            "steps": 3000,
            "batch_size": 20,
            "learning_rate": 2e-3,
        },
    ),
}


def _budget_text(config, problem: Problem, steps: int, epochs: float) -> str:
    batch = config.loop.batch_size
    text = f"{steps} steps at batch {batch} = {epochs} epochs"
    if getattr(config.task, "formulation", None) == "teacher_forcing":
        windows = config.task.num_train * config.task.t_out  # one-step windows (k = 1)
        text = (
            f"{steps} steps at batch {batch} = {steps * batch} one-step windows, "
            f"{round(steps * batch / windows, 2)} passes over the {windows} windows of the "
            f"{config.task.num_train} trajectories ({epochs} trajectory-sized epochs of one "
            "model call per example)"
        )
    return f"{text} (paper: {problem.paper_epochs} epochs)"


def _schedule_text(o) -> str:
    if o.schedule == "step":
        decay = f"rate x{o.step_factor} every {o.step_every} steps"
    else:
        decay = f"cosine decay to {o.final_lr_fraction} of the peak"
    return f"AdamW, {o.warmup_steps} warmup steps, {decay}, weight decay {o.weight_decay}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", choices=tuple(PROBLEMS), default="burgers")
    for name in ("num_train", "num_test", "resolution", "width", "modes", "steps", "batch_size"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further config overrides, e.g. task.padding=0.1 or task.formulation=recurrent",
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="run directory (default runs/bench_fno_accuracy/<problem>/<time>)",
    )
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/...)")
    p.add_argument(
        "--resume",
        default=None,
        metavar="WORKDIR",
        help="continue an interrupted run from its latest checkpoint, with its own options",
    )
    args = p.parse_args()
    if args.resume is not None:
        run_file = pathlib.Path(args.resume) / "bench_run.json"
        if not run_file.is_file():
            raise SystemExit(
                f"--resume {args.resume}: no {run_file.name} there (not a run of this script)."
            )
        given = {k: v for k, v in vars(args).items() if k != "resume" and v != p.get_default(k)}
        if given:
            raise SystemExit(
                f"--resume takes the run's own options from {run_file}; got others too: {given}."
            )
        run = json.loads(run_file.read_text())
        args = argparse.Namespace(**{**run["args"], "resume": args.resume})
    else:
        run = None
    problem = PROBLEMS[args.problem]
    opts = {
        k: getattr(args, k) if getattr(args, k) is not None else v
        for k, v in problem.defaults.items()
    }

    overrides = [
        f"task.num_train={opts['num_train']}",
        f"task.num_test={opts['num_test']}",
        f"task.resolution={opts['resolution']}",
        f"task.width={opts['width']}",
        f"task.modes={opts['modes']}",
        f"loop.num_steps={opts['steps']}",
        f"loop.batch_size={opts['batch_size']}",
        f"loop.eval_every={max(opts['steps'] // 4, 1)}",
        f"checkpoint.every={opts['steps']}",
        f"optim.learning_rate={opts['learning_rate']}",
        "output.progress=false",
        *args.set,
    ]
    if args.problem == "burgers":
        overrides.append(f"task.projection_channels={2 * opts['width']}")
    config = load_config(problem.config, overrides)
    if run is not None:
        workdir = pathlib.Path(args.resume)
    elif args.workdir is not None:
        workdir = pathlib.Path(args.workdir)
    else:
        workdir = pathlib.Path(f"runs/bench_fno_accuracy/{args.problem}")
        workdir = workdir / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.environ["SPECTRAX_CACHE"] = str(workdir / "cache")
    if run is None:
        if (workdir / "bench_run.json").exists():
            raise SystemExit(f"{workdir} holds a run already; continue it with --resume {workdir}.")
        # Generate the data into a fresh cache: the timing is the solver's, not a file read
        # (unless the workdir was given a cache already: then the record says so).
        cache = workdir / "cache"
        data_cached = cache.is_dir() and any(cache.iterdir())
        start = time.perf_counter()
        config.task.build()
        run = {
            "args": {k: v for k, v in vars(args).items() if k != "resume"},
            "data_cached": data_cached,
            "data_seconds": time.perf_counter() - start,
            "segments": [],
        }
        write_record(run, workdir / "bench_run.json")
    data_seconds = run["data_seconds"]
    for seg in run["segments"]:
        if seg.get("seconds") is None:
            # A segment that never returned (killed hard): count it up to its last log line.
            log = workdir / "metrics.jsonl"
            last = log.stat().st_mtime if log.exists() else seg["started"]
            seg["seconds"] = max(last - seg["started"], 0.0)
            seg["seconds_estimated"] = "killed: counted to the last write of metrics.jsonl"
    segment = {"started": time.time(), "end_step": None, "seconds": None}
    run["segments"].append(segment)
    write_record(run, workdir / "bench_run.json")
    start = time.perf_counter()
    # Reads the cache written above; continues from the latest checkpoint when resuming.
    result = train(config, workdir=workdir, resume=args.resume is not None)
    segment.update(end_step=result.step, seconds=time.perf_counter() - start)
    write_record(run, workdir / "bench_run.json")
    seconds = sum(seg["seconds"] for seg in run["segments"])
    if result.stopped == "signal":
        print(f"stopped by a signal at step {result.step}; continue with --resume {workdir}")
        return
    task_fields = dataclasses.asdict(config.task)
    records = read_metrics(workdir)
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    # the training curve as recorded: every periodic test evaluation, and the mean training
    # loss (relative L2) over the last epoch
    history = [
        {
            "step": r["step"],
            "epoch": round(r["step"] * config.loop.batch_size / config.task.num_train, 2),
            "test_rel_l2": r["test_error"],
        }
        for r in records
        if r["split"] == "eval" and "test_error" in r
    ]
    # one training record per step: the records of the last epoch
    last_epoch = max(1, config.task.num_train // config.loop.batch_size)
    final_train = float(np.mean(train_losses[-last_epoch:])) if train_losses else float("nan")
    test_rel_l2 = float(result.metrics.get("test_error", float("nan")))
    batch_size, num_train = config.loop.batch_size, config.task.num_train
    epochs = round(result.step * batch_size / num_train, 2)
    record = {
        "benchmark": problem.title,
        "problem": args.problem,
        **provenance(),
        "config": f"configs/{problem.config}.py",
        "task": task_fields,
        "shapes": {
            name: getattr(config.task, name)
            for name in ("num_train", "num_test", "resolution", "width", "modes", "num_layers")
        },
        "steps": result.step,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": config.optim.learning_rate,
        "schedule": _schedule_text(config.optim),
        "segments": len(run["segments"]),
        "timing_estimated": any("seconds_estimated" in seg for seg in run["segments"]),
        "budget": _budget_text(config, problem, result.step, epochs),
        "data_seconds": round(data_seconds, 1),
        "data_read_from_cache": bool(run.get("data_cached", False)),
        "train_seconds_including_compile_and_eval": round(seconds, 1),
        "train_seconds_including_data_and_compile": round(data_seconds + seconds, 1),
        "test_rel_l2": test_rel_l2,
        "test_rel_l2_max": float(result.metrics.get("test_rel_l2_max", float("nan"))),
        "train_rel_l2_last_epoch": final_train,
        "train_rel_l2_is": (
            "one-step relative L2 of teacher-forced windows (epochs count one window per "
            "trajectory example)"
            if getattr(config.task, "formulation", None) == "teacher_forcing"
            else "relative L2 of the training prediction, as the test error"
        ),
        "eval_history": history,
        "paper_rel_l2": problem.paper_rel_l2,
        "paper_setting": problem.paper_setting,
        "formulation": problem.formulation(config.task),
        "overrides": args.set,
        "meets_paper": bool(test_rel_l2 <= problem.paper_rel_l2),  # False when NaN (no eval)
        "stopped": result.stopped,
    }
    write_record(record, args.out or record_path(__file__, f"fno-{args.problem}-accuracy"))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
