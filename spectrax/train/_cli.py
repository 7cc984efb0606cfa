"""``spectrax train`` and ``spectrax eval``, registered into ``spectrax.cli`` via ``COMMANDS``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["COMMANDS", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = "burgers_fno"


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        default=DEFAULT_CONFIG,
        help=f"config file or name in configs/ (default: {DEFAULT_CONFIG})",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. optim.learning_rate=3e-4",
    )
    p.add_argument(
        "--workdir", default=None, help="run directory (default: runs/<config>-<timestamp>)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the run directory's latest checkpoint"
    )
    p.add_argument(
        "--smoke", action="store_true", help="the config's tiny smoke variant (what CI runs)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split_config_arg(args: argparse.Namespace) -> tuple[str, list[str]]:
    # argparse fills the optional positional with the first override when no config is given.
    if "=" in args.config:
        return DEFAULT_CONFIG, [args.config, *args.overrides]
    return args.config, list(args.overrides)


def _run_train(args: argparse.Namespace) -> int:
    from spectrax.train._checkpoint import CheckpointError
    from spectrax.train._config import ConfigError, load_config, resolve_config_path

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    name, overrides = _split_config_arg(args)
    if args.no_progress:
        overrides.append("output.progress=false")
    variant = "smoke" if args.smoke else "default"
    try:
        config = load_config(name, overrides, variant=variant)
        source = {
            "file": str(resolve_config_path(name)),
            "variant": variant,
            "overrides": overrides,
        }
        from spectrax.train._loop import train

        result = train(config, workdir=args.workdir, resume=args.resume, source=source)
    except (ConfigError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run directory: {result.workdir}")
    print(
        f"stopped: {result.stopped} at step {result.step}; "
        f"skipped non-finite updates: {result.skipped}"
    )
    for k, v in result.metrics.items():
        print(f"{k}: {v:.6g}")
    if result.stopped == "nonfinite":
        return 3
    if result.passed is not None:
        verdict = "pass" if result.passed else "FAIL"
        print(
            f"test error {result.metrics['test_error']:.4g} "
            f"vs threshold {config.max_test_error} ({verdict})"
        )
        return 0 if result.passed else 1
    return 0


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `spectrax train`")


def _run_eval(args: argparse.Namespace) -> int:
    from spectrax.train._checkpoint import CheckpointError
    from spectrax.train._config import ConfigError, load_config
    from spectrax.train._loop import evaluate_run

    run = Path(args.run_dir)
    try:
        stored = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as err:
        print(f"error: {run} is not a run directory ({err}).", file=sys.stderr)
        return 2
    src = stored.get("source") or {}
    try:
        config = load_config(
            src["file"], src.get("overrides", []), variant=src.get("variant", "default")
        )
        metrics = evaluate_run(config, run)
    except (ConfigError, CheckpointError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for k, v in metrics.items():
        print(f"{k}: {v:.6g}")
    return 0


COMMANDS = {
    "train": ("train a model from a config (default: FNO on Burgers)", _add_train_args, _run_train),
    "eval": ("evaluate the latest checkpoint of a run directory", _add_eval_args, _run_eval),
}
