"""``spectrax train`` / ``spectrax eval``: argument handling, errors before any work, exit codes."""

from __future__ import annotations

import pytest

from spectrax.cli import build_parser, main
from spectrax.train._cli import DEFAULT_CONFIG, _split_config_arg
from tests.train.conftest import TOY


def test_train_and_eval_are_registered():
    parser = build_parser()
    args = parser.parse_args(["train"])
    assert args.command == "train" and _split_config_arg(args) == (DEFAULT_CONFIG, [])
    args = parser.parse_args(["train", "loop.num_steps=5", "seed=1"])
    assert _split_config_arg(args) == (DEFAULT_CONFIG, ["loop.num_steps=5", "seed=1"])
    args = parser.parse_args(["train", "configs/x.py", "seed=1", "--resume", "--workdir", "w"])
    assert (
        _split_config_arg(args) == ("configs/x.py", ["seed=1"])
        and args.resume
        and args.workdir == "w"
    )
    args = parser.parse_args(["train", "configs/x.py", "seed=1", "--resume", "a=2", "--workdir=w"])
    assert _split_config_arg(args) == ("configs/x.py", ["seed=1", "a=2"])
    assert args.resume and args.workdir == "w"
    args = parser.parse_args(["train", "--smoke", "seed=1", "--bogus"])
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['--bogus'\]"):
        _split_config_arg(args)
    assert parser.parse_args(["eval", "runs/x"]).run_dir == "runs/x"
    # --help after the config name (swallowed by the overrides) still prints the help
    with pytest.raises(SystemExit) as exit_info:
        _split_config_arg(parser.parse_args(["train", "burgers_fno", "--help"]))
    assert exit_info.value.code == 0


@pytest.mark.parametrize(
    "argv",
    [["train", "--smok"], ["train", "--smoke", "--no-progres"], ["train", "seed=1", "--resum"]],
)
def test_abbreviated_options_are_refused(argv, tmp_path, capsys):
    # argparse's prefix matching took `--smok` for `--smoke`: a typo ran another job
    wd = tmp_path / "run"
    try:
        code = main([*argv, "--workdir", str(wd)])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2 and not wd.exists()
    assert argv[-1] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loop.num_steps=ten", "`loop.num_steps` expects an int"),
        ("optim.learning_rate=-1", "`optim.learning_rate` must be > 0.0"),
        ("optim.lr=1", "unknown config key `optim.lr`; valid keys:"),
        ("loop.batch_size=12", "`loop.batch_size` (12) must be divisible by the data axis"),
        ("optim.b2=1.0", "`optim.b2` must be < 1.0"),
        ("mesh.data=0", "`mesh.data` must be -1 (every device the model axis leaves) or >= 1"),
        ("loop.batch_size=128", "`loop.batch_size` (128) exceeds the task's 64 training"),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, capsys, override, message):
    wd = tmp_path / "run"
    assert main(["train", TOY, override, "--workdir", str(wd)]) == 2
    assert message in capsys.readouterr().err
    assert not wd.exists()


def test_train_then_eval(tmp_path, capsys):
    wd = tmp_path / "run"
    assert (
        main(
            [
                "train",
                TOY,
                "loop.num_steps=20",
                "output.plots=false",
                "--workdir",
                str(wd),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "stopped: completed at step 20" in out and "(pass)" in out
    train_error = next(line for line in out.splitlines() if line.startswith("test_error:"))
    assert main(["eval", str(wd)]) == 0
    captured = capsys.readouterr()
    assert train_error in captured.out
    assert f"evaluating {wd.resolve() / 'checkpoints'}, step 20" in captured.err
    # Same directory again without --resume: refused, nothing overwritten.
    assert main(["train", TOY, "loop.num_steps=20", "--workdir", str(wd)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_persistent_nan_exit_code(tmp_path, capsys):
    code = main(
        [
            "train",
            TOY,
            "task.nan_after=0",
            "loop.max_nonfinite=5",
            "--workdir",
            str(tmp_path / "r"),
            "--no-progress",
        ]
    )
    assert code == 3
    assert "stopped: nonfinite at step 5" in capsys.readouterr().out


def test_signal_exit_code_and_eval_of_a_python_run(tmp_path, capsys):
    """A run stopped by SIGTERM exits 4 (a scheduler can tell it from a finished one); `eval`
    of a run started from Python (no config file recorded) says so instead of a KeyError."""
    wd = tmp_path / "r"
    code = main(["train", TOY, "task.sigterm_after=7", "--workdir", str(wd), "--no-progress"])
    assert code == 4
    out = capsys.readouterr().out
    assert "stopped: signal at step 7" in out
    # the resume line is the command to run (it read `spectrax train ... --workdir W --resume`)
    again = f"spectrax train {TOY} task.sigterm_after=7 --no-progress --workdir {wd} --resume"
    assert f"continue with: {again}\n" in out
    from spectrax.train import load_config, train

    py = tmp_path / "py"
    train(load_config(TOY, ["loop.num_steps=5", "output.plots=false"]), workdir=py)
    assert main(["eval", str(py)]) == 2
    assert "was not started by `spectrax train`" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["[]", '"run"', '{"source": [1]}', '{"source": {"file": 3}}'])
def test_eval_of_a_damaged_config_json_is_refused(tmp_path, capsys, text):
    # config.json holding valid JSON that is not a run's record crashed eval with an
    # AttributeError/TypeError traceback and exit status 1
    (tmp_path / "config.json").write_text(text)
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path} is not a run directory" in err and "config.json" in err


def test_ctrl_c_ends_train_and_eval_at_once_outside_the_loop(tmp_path, monkeypatch):
    # Python's KeyboardInterrupt waits for the running XLA computation: a Ctrl-C while the data
    # were generated took effect only when they were done (112 s for darcy_fno's default data)
    import signal

    from spectrax.train import _loop

    seen = []
    for name in ("_setup", "evaluate_run"):
        original = getattr(_loop, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, signal.getsignal(signal.SIGINT)))
            return _original(*args, **kwargs)

        monkeypatch.setattr(_loop, name, spy)
    before = signal.getsignal(signal.SIGINT)
    wd = tmp_path / "r"
    argv = ["train", TOY, "loop.num_steps=2", "max_test_error=none", "output.plots=false"]
    assert main([*argv, "--no-progress", "--workdir", str(wd)]) == 0
    assert main(["eval", str(wd)]) == 0
    assert {n for n, _ in seen} == {"_setup", "evaluate_run"}
    assert {h for _, h in seen} == {signal.SIG_DFL}
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.slow
def test_default_train_from_fresh_install(tmp_path):
    """Plain ``spectrax train``: generates and caches the Burgers data, trains the FNO, prints a
    test error below its config's threshold and writes the run directory (about a minute)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from spectrax.train import load_config

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", SPECTRAX_CACHE=str(tmp_path / "cache"))
    script = Path(sys.executable).with_name("spectrax")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "spectrax.cli"]
    # From an empty directory: the config is found without a configs/ folder in the cwd.
    proc = subprocess.run(
        [*cmd, "train", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    threshold = load_config("burgers_fno").max_test_error
    error = float(
        next(ln for ln in proc.stdout.splitlines() if ln.startswith("test_error:")).split()[1]
    )
    assert error < threshold
    assert f"vs threshold {threshold} (pass)" in proc.stdout
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("burgers_fno-")
    for name in (
        "metrics.jsonl",
        "report.md",
        "loss_curves.png",
        "predictions.png",
        "error_spectrum.png",
    ):
        assert (run / name).stat().st_size > 0, name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1000", "1500", "2000"]
    assert len(list((tmp_path / "cache").glob("burgers_dataset-*.npz"))) == 1


def test_bench_lists_runs_and_refuses_unknown_names(tmp_path, capsys):
    """``spectrax bench`` lists every scripts/bench_*.py, runs one with its own options (a tiny
    SSM benchmark writing its JSON where told) and names the choices for an unknown one."""
    import json
    from pathlib import Path

    from spectrax.cli import main

    scripts = sorted(Path(__file__).resolve().parents[1].glob("scripts/bench_*.py"))
    assert main(["bench"]) == 0
    listing = capsys.readouterr().out
    assert scripts and all(p.stem.removeprefix("bench_") in listing for p in scripts)
    assert main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "'ssm'" in err
    out = tmp_path / "ssm.json"
    args = ["--lengths", "64", "--batch", "1", "--channels", "4", "--state", "4"]
    assert main(["bench", "ssm", *args, "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [row["L"] for row in result["rows"]] == [64]
    assert result["rows"][0]["s4d_conv_tokens_per_s"] > 0
    assert result["platform"] == "cpu" and result["jax"]


def test_python_dash_m_spectrax_is_the_command(monkeypatch, capsys):
    # `python -m spectrax` failed: "No module named spectrax.__main__"
    import runpy

    monkeypatch.setattr("sys.argv", ["spectrax", "train", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("spectrax", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    assert "usage: spectrax train" in capsys.readouterr().out


def test_bench_listing_gives_whole_first_sentences(tmp_path):
    # the listing cut a wrapped first sentence at the line end ("... DFT paths) against a")
    from spectrax.cli import _first_doc_line

    script = tmp_path / "bench_x.py"
    script.write_text('"""Benchmark A against B\nand C, on the GPU. More.\n\nDetails."""\n')
    assert _first_doc_line(script) == "Benchmark A against B and C, on the GPU."
    script.write_text('"""No full stop\nhere\n\nDetails."""\n')
    assert _first_doc_line(script) == "No full stop here"
    script.write_text("x = 1\n")
    assert _first_doc_line(script) == ""


def test_bench_passes_on_a_scripts_exit_message(tmp_path, capsys, monkeypatch):
    """A benchmark that stops with ``SystemExit("why")`` exits 1 with its message shown, as
    running the script directly would; ``SystemExit(3)`` keeps its status."""
    import spectrax.cli as cli

    script = tmp_path / "bench_stop.py"
    script.write_text("import sys\nraise SystemExit(sys.argv[1] if sys.argv[1:] else 3)\n")
    monkeypatch.setattr(cli, "benchmarks", lambda: {"stop": script})
    assert cli.main(["bench", "stop", "no GPU: nothing to time"]) == 1
    assert "no GPU: nothing to time" in capsys.readouterr().err
    assert cli.main(["bench", "stop"]) == 3


def test_variant_option_selects_any_listed_variant(tmp_path, capsys):
    """--variant reaches every variant a config lists (navier_stokes_fno's smoke_recurrent was
    reachable from Python only); --smoke is --variant smoke; a variant the file does not list,
    or --smoke with another --variant, fails before any work; the variant is recorded for
    eval and repeated in the resume line."""
    wd = tmp_path / "run"
    # exit 0 or 1 (the toy's threshold after 10 steps): the smoke variant's 10 steps, not 60
    assert main(["train", TOY, "--variant", "smoke", "--no-progress", "--workdir", str(wd)]) < 2
    assert "stopped: completed at step 10" in capsys.readouterr().out
    assert main(["eval", str(wd)]) == 0
    bad = tmp_path / "bad"
    assert main(["train", TOY, "--variant", "tiny", "--workdir", str(bad)]) == 2
    assert "`variant` must be one of ['default', 'smoke']; got 'tiny'" in capsys.readouterr().err
    assert main(["train", TOY, "--smoke", "--variant", "default", "--workdir", str(bad)]) == 2
    assert "--smoke selects the 'smoke' variant" in capsys.readouterr().err
    assert not bad.exists()
    args = build_parser().parse_args(["train", TOY, "seed=1", "--variant", "smoke"])
    assert _split_config_arg(args) == (TOY, ["seed=1"]) and args.variant == "smoke"


def _compile_in_subprocess(env: dict[str, str], stderr: list | None = None) -> str:
    """Run ``spectrax.train._cli._compilation_cache`` and one jitted function in a fresh
    process (the cache is process-wide JAX state); its printed return value (its standard
    error appended to ``stderr``)."""
    import os
    import subprocess
    import sys

    code = (
        "import logging; logging.basicConfig()\n"
        "from spectrax.train._cli import _compilation_cache\n"
        "folder = _compilation_cache()\n"
        "import jax, jax.numpy as jnp\n"
        "jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()\n"
        "print(folder)\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SPECTRAX_", "JAX_COMP"))}
    # every program cached, however fast it compiled (an environment setting JAX reads)
    base.update({"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **env})
    out = subprocess.run(
        [sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True
    )
    if stderr is not None:
        stderr.append(out.stderr)
    return out.stdout.strip().splitlines()[-1]


def test_train_and_eval_turn_on_jax_persistent_compilation_cache(tmp_path):
    """``spectrax train`` / ``eval`` keep compiled programs under ``$SPECTRAX_CACHE/jax`` (a
    rerun, resume or evaluation loads them instead of compiling again), unless told not to or
    JAX's own cache folder is set, which is then left as it is."""
    ours = tmp_path / "spectrax"
    folder = _compile_in_subprocess({"SPECTRAX_CACHE": str(ours)})
    assert folder == str(ours / "jax")
    assert any((ours / "jax").iterdir())
    off = tmp_path / "off"
    assert (
        _compile_in_subprocess({"SPECTRAX_CACHE": str(off), "SPECTRAX_COMPILATION_CACHE": "0"})
        == "None"
    )
    assert not (off / "jax").exists()
    theirs, mine = tmp_path / "theirs", tmp_path / "mine"
    got = _compile_in_subprocess(
        {"SPECTRAX_CACHE": str(mine), "JAX_COMPILATION_CACHE_DIR": str(theirs)}
    )
    assert got == "None" and any(theirs.iterdir()) and not (mine / "jax").exists()
    # a folder that cannot be written: one warning, then no cache (JAX warned at every compile)
    err: list[str] = []
    assert _compile_in_subprocess({"SPECTRAX_CACHE": "/proc/spectrax-test"}, err) == "None"
    assert "compilation cache off: cannot write to /proc/spectrax-test/jax" in err[0], err[0]
    assert "persistent compilation cache" not in err[0], err[0]
