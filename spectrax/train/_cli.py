"""``spectrax train`` and ``spectrax eval``, registered into ``spectrax.cli`` via ``COMMANDS``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
import traceback
from pathlib import Path

__all__ = ["COMMANDS", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = "burgers_fno"


def _add_options(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    kw = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("--workdir", help="run directory (default: runs/<config>-<timestamp>)", **kw)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run directory's latest checkpoint",
        **kw,
    )
    p.add_argument(
        "--smoke", action="store_true", help="the config's tiny smoke variant (what CI runs)", **kw
    )
    p.add_argument(
        "--variant",
        help="a variant the config file lists in VARIANTS (default: 'default'; --smoke is "
        "--variant smoke)",
        **kw,
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar", **kw)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        default=DEFAULT_CONFIG,
        help=f"config file or name in configs/ (default: {DEFAULT_CONFIG})",
    )
    # REMAINDER so options may follow the overrides (`train cfg k=v --resume`); the options
    # found there are parsed again in _split_config_arg.
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        metavar="key=value",
        help="config overrides, e.g. optim.learning_rate=3e-4",
    )
    _add_options(p)
    p.epilog = (
        "exit status: 0 done (and under max_test_error if the config sets one), 1 above "
        "max_test_error, 2 bad config or checkpoint, 3 stopped on non-finite updates, 4 stopped "
        "by SIGINT/SIGTERM after saving a checkpoint (continue with --resume), 5 crashed (an "
        "unexpected error; its traceback is printed)"
    )


def _split_config_arg(args: argparse.Namespace) -> tuple[str, list[str]]:
    """``(config, overrides)``, moving options given among the overrides onto ``args``."""
    late = argparse.ArgumentParser(prog="spectrax train", add_help=False, allow_abbrev=False)
    _add_options(late, defaults=False)
    found, rest = late.parse_known_args(list(args.overrides))
    for name, value in vars(found).items():
        setattr(args, name, value)
    if "-h" in rest or "--help" in rest:  # `spectrax train cfg --help`: REMAINDER took it
        from spectrax.cli import build_parser

        build_parser().parse_args(["train", "--help"])  # prints the help and exits 0
    unknown = [r for r in rest if r.startswith("-")]
    if unknown:
        from spectrax.train._config import ConfigError

        raise ConfigError(f"unknown option(s) {unknown}; see `spectrax train --help`.")
    # argparse fills the optional positional with the first override when no config is given.
    if "=" in args.config:
        return DEFAULT_CONFIG, [args.config, *rest]
    return args.config, rest


def _log_info() -> None:
    # force: importing orbax already gave the root logger absl's WARNING-level handler, which
    # would swallow the INFO lines (a resume, the checkpoint evaluated are announced at INFO);
    # orbax's and JAX's INFO chatter stays off.
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# compiled programs faster to compile than this are not written to the cache (JAX's default,
# 1 s, kept only the training step of a smoke run; 0.1 s also keeps the data generators',
# evaluation's and the models' eager calls: a second `spectrax train s4d_recall --smoke`
# took 8.8 s against 14.5 s uncached, `burgers_fno --smoke` 11.0 s against 14.6 s, 2-core CPU)
_CACHE_MIN_COMPILE_SECS = 0.1


def _compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for this process, at
    ``$SPECTRAX_CACHE/jax`` (``~/.cache/spectrax/jax``), and return its folder: a rerun,
    resume or evaluation of a config loads its compiled programs instead of compiling them
    again. Left alone (returns None) when ``SPECTRAX_COMPILATION_CACHE=0``, or when JAX's own
    cache folder is already set (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), which then
    applies with JAX's own settings."""
    if os.environ.get("SPECTRAX_COMPILATION_CACHE", "1").strip().lower() in _OFF:
        return None
    import jax

    from spectrax.data._cache import default_cache_dir

    if jax.config.jax_compilation_cache_dir:
        return None
    folder = default_cache_dir() / "jax"
    try:  # JAX warned at every compilation of a folder it could not create
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        logging.getLogger(__name__).warning(
            "compilation cache off: cannot write to %s (set SPECTRAX_CACHE to a writable "
            "folder, or SPECTRAX_COMPILATION_CACHE=0)",
            folder,
        )
        return None
    folder = str(folder)
    jax.config.update("jax_compilation_cache_dir", folder)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _CACHE_MIN_COMPILE_SECS)
    return folder


_OFF = ("0", "false", "no", "off")


@contextlib.contextmanager
def _ctrl_c_ends_at_once():
    """SIGINT ends the process at once (exit 130, as SIGTERM gives 143) instead of raising
    KeyboardInterrupt: Python raises it only between bytecodes, so a Ctrl-C while the data are
    generated (one XLA computation, minutes for Darcy or Navier-Stokes) waited for the whole
    computation. The training loop installs its own handler (save the step and stop, exit 4)
    and puts this one back after. Only replaces Python's default handler, in the main thread."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _variant(args: argparse.Namespace) -> str:
    """The config variant ``--smoke`` / ``--variant`` select (a ConfigError if they disagree)."""
    from spectrax.train._config import ConfigError

    variant = getattr(args, "variant", None)
    if args.smoke and variant not in (None, "smoke"):
        raise ConfigError(f"--smoke selects the 'smoke' variant; got also --variant {variant!r}.")
    return "smoke" if args.smoke else (variant or "default")


def _run_train(args: argparse.Namespace) -> int:
    from spectrax.train._checkpoint import CheckpointError
    from spectrax.train._config import ConfigError, load_config, resolve_config_path

    _log_info()
    _compilation_cache()
    try:
        name, overrides = _split_config_arg(args)
        given = list(overrides)  # as typed, for the resume line
        if args.no_progress:
            overrides.append("output.progress=false")
        variant = _variant(args)
        config = load_config(name, overrides, variant=variant)
        source = {
            "file": str(resolve_config_path(name)),
            "variant": variant,
            "overrides": overrides,
        }
        from spectrax.train._loop import train

        # an empty --workdir (e.g. an unset "$WD") means the default, not the current folder
        with _ctrl_c_ends_at_once():
            result = train(config, workdir=args.workdir or None, resume=args.resume, source=source)
    except (ConfigError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception:  # exit 1 means "above max_test_error": a crash must not read as that
        traceback.print_exc()
        print("error: the run crashed (exit status 5); see the traceback above.", file=sys.stderr)
        return 5
    print(f"run directory: {result.workdir}")
    print(
        f"stopped: {result.stopped} at step {result.step}; "
        f"skipped non-finite updates: {result.skipped}"
    )
    for k, v in result.metrics.items():
        print(f"{k}: {v:.6g}")
    if result.stopped == "nonfinite":
        return 3
    if result.stopped == "signal":
        options = ["--smoke"] * args.smoke + ["--no-progress"] * args.no_progress
        if args.variant is not None and not args.smoke:
            options += ["--variant", args.variant]
        again = ["spectrax", "train", name, *given, *options, "--workdir", str(result.workdir)]
        print(f"continue with: {shlex.join(again)} --resume")
        return 4
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
    from spectrax.train._config import ConfigError
    from spectrax.train._loop import evaluate_run, run_config

    _log_info()
    _compilation_cache()
    run = Path(args.run_dir)
    try:
        config = run_config(run)
        with _ctrl_c_ends_at_once():
            metrics = evaluate_run(config, run)
    except (ConfigError, CheckpointError, KeyError) as err:
        msg = str(err)
        if "was not started by `spectrax train`" in msg:
            msg += " Evaluate it from Python with spectrax.train.evaluate_run(config, run_dir)."
        print(f"error: {msg}", file=sys.stderr)
        return 2
    for k, v in metrics.items():
        print(f"{k}: {v:.6g}")
    return 0


COMMANDS = {
    "train": ("train a model from a config (default: FNO on Burgers)", _add_train_args, _run_train),
    "eval": ("evaluate the latest checkpoint of a run directory", _add_eval_args, _run_eval),
}
