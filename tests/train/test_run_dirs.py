"""Run directories: naming, finding the latest, what a fresh or resumed run may overwrite, the
metrics log after a crash, multi-host outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import spectrax.train._loop as loop_module
from spectrax.train import CheckpointError, ConfigError, load_config, read_metrics, train
from spectrax.train._loop import default_workdir, latest_workdir
from spectrax.train._metrics import MetricWriter
from tests.train.conftest import TOY


def test_latest_workdir_matches_the_name_exactly_and_same_second_runs_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(TOY)
    assert latest_workdir(config) is None
    for name in (
        "toy-20260101-000000",
        "toy-20260101-000000-2",
        "toy-big-20270101-000000",  # another config whose name starts with "toy-"
        "toy-notes",
    ):
        (tmp_path / "runs" / name).mkdir(parents=True)
    assert latest_workdir(config) == Path("runs", "toy-20260101-000000-2")
    monkeypatch.setattr(loop_module.time, "gmtime", lambda: (2026, 1, 1, 0, 0, 0, 3, 1, 0))
    assert default_workdir(config) == Path("runs", "toy-20260101-000000-3")
    (tmp_path / "runs" / "toy-20260101-000000-10").mkdir()
    assert latest_workdir(config).name == "toy-20260101-000000-10"


def test_fresh_run_refuses_a_directory_with_a_log_and_resume_keeps_it(tmp_path):
    config = load_config(TOY, ["loop.num_steps=5", "output.plots=false"])
    log = tmp_path / "metrics.jsonl"
    old = json.dumps({"step": 1, "split": "train", "loss": 1.0}) + "\n"
    log.write_text(old)
    with pytest.raises(CheckpointError, match="already holds a run's metrics.jsonl"):
        train(config, workdir=tmp_path)
    assert log.read_text() == old and not (tmp_path / "config.json").exists()
    old_config = json.dumps({"config": {"name": "the old run"}})
    (tmp_path / "config.json").write_text(old_config)
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1").write_text("old run")
    result = train(config, workdir=tmp_path, resume=True)  # no checkpoint: starts over
    assert result.step == 5
    (kept,) = tmp_path.glob("metrics.jsonl.before-*")
    assert kept.read_text() == old
    # and the config that wrote the old log, beside it
    (kept_config,) = tmp_path.glob("config.json.before-*")
    assert kept_config.read_text() == old_config
    assert kept_config.name.split("before-")[1] == kept.name.split("before-")[1]
    # and its TensorBoard events (the new run's curves are not drawn over the old run's)
    (kept_events,) = tmp_path.glob("tensorboard.before-*")
    assert kept_events.name.split("before-")[1] == kept.name.split("before-")[1]
    assert (kept_events / "events.out.tfevents.1").read_text() == "old run"
    assert not (tmp_path / "tensorboard" / "events.out.tfevents.1").exists()
    assert json.loads((tmp_path / "config.json").read_text())["config"]["name"] == "toy"
    assert [r["step"] for r in read_metrics(tmp_path) if r["split"] == "train"] == [1, 2, 3, 4, 5]


def test_cut_short_log_line_is_dropped_on_resume_and_damage_elsewhere_is_named(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    good = [json.dumps({"step": s, "split": "train", "loss": 0.5}) for s in (1, 2, 3)]
    path.write_text("\n".join(good) + '\n{"step": 4, "split": "tr')
    with caplog.at_level(logging.WARNING):
        assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
    assert "cut-short last line 4" in caplog.text
    MetricWriter(tmp_path, tensorboard=False, resume_step=2).write(3, "train", {"loss": 0.25})
    assert [(r["step"], r["loss"]) for r in read_metrics(path)] == [(1, 0.5), (2, 0.5), (3, 0.25)]
    path.write_text(good[0] + "\n{oops\n" + good[2] + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a JSON record"):
        read_metrics(path)


def test_a_resume_with_a_damaged_log_is_a_checkpoint_error_and_keeps_the_log(tmp_path):
    """A damaged line inside metrics.jsonl is a bad run directory (exit 2), not a crash after
    the restore; said before the data are built, and the log is left alone."""
    config = load_config(TOY, ["output.plots=false"])
    (tmp_path / "checkpoints" / "5").mkdir(parents=True)  # the folder names are read first
    log = tmp_path / "metrics.jsonl"
    good = json.dumps({"step": 5, "split": "train", "loss": 0.5})
    damaged = "{oops\n" + good + "\n"
    log.write_text(damaged)
    with pytest.raises(CheckpointError, match=r"metrics.jsonl line 1 is not a JSON record"):
        train(config, workdir=tmp_path, resume=True)
    assert log.read_text() == damaged


def test_a_resume_whose_log_rewrite_fails_keeps_the_log(tmp_path, monkeypatch):
    """A resume rewrites metrics.jsonl without the records past its checkpoint: a write that
    fails part-way (a full disk) must leave the old log whole, not truncated."""
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "split": "train", "loss": 0.5}) + "\n" for s in (1, 2, 3)]
    path.write_text("".join(lines))
    real_open = Path.open

    def open_then_fail(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        if "w" not in mode:
            return fh

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fh.close()

            def write(self, data):
                raise OSError(28, "No space left on device")

        return Full()

    monkeypatch.setattr(Path, "open", open_then_fail)
    with pytest.raises(OSError, match="No space left"):
        MetricWriter(tmp_path, tensorboard=False, resume_step=2)
    monkeypatch.undo()
    assert path.read_text() == "".join(lines)


def test_python_resume_keeps_the_recorded_source_for_eval(tmp_path, capsys):
    from spectrax.cli import main

    wd = tmp_path / "run"
    argv = ["train", TOY, "loop.num_steps=20", "output.plots=false", "--workdir", str(wd)]
    assert main([*argv, "--no-progress"]) == 0
    source = json.loads((wd / "config.json").read_text())["source"]
    assert source["file"] and source["overrides"][0] == "loop.num_steps=20"
    config = load_config(TOY, ["loop.num_steps=20", "output.plots=false", "output.progress=false"])
    train(config, workdir=wd, resume=True)  # from Python, no source given
    assert json.loads((wd / "config.json").read_text())["source"] == source
    capsys.readouterr()
    assert main(["eval", str(wd)]) == 0
    assert "test_error:" in capsys.readouterr().out


def test_crash_exits_5_not_the_threshold_status(tmp_path, capsys, monkeypatch):
    from spectrax.cli import main

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(loop_module, "train", crash)
    assert main(["train", TOY, "--workdir", str(tmp_path / "r"), "--no-progress"]) == 5
    err = capsys.readouterr().err
    assert "RuntimeError: disk on fire" in err and "crashed (exit status 5)" in err


def test_a_mistyped_config_path_is_an_error_not_the_bundled_config(tmp_path):
    with pytest.raises(
        ConfigError, match=r"'elsewhere/burgers_fno.py' does not exist.*`burgers_fno`"
    ):
        load_config("elsewhere/burgers_fno.py")
    with pytest.raises(ConfigError, match=r"'typo_fno.py' does not exist\.$"):
        load_config("typo_fno.py")
    assert load_config(TOY).name == "toy"  # an existing path still loads


def test_only_the_primary_process_writes_outputs(tmp_path, monkeypatch):
    """On a multi-host run, process 0 writes config.json, metrics, plots and the report; every
    process takes part in the (Orbax-coordinated) checkpoints."""
    monkeypatch.setattr(loop_module, "_is_primary", lambda: False)
    config = load_config(TOY, ["loop.num_steps=6"])
    result = train(config, workdir=tmp_path)
    assert result.stopped == "completed" and result.metrics["test_error"] >= 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]


def test_multi_process_run_needs_a_workdir(monkeypatch):
    monkeypatch.setattr(loop_module.jax, "process_count", lambda: 2)
    with pytest.raises(ConfigError, match="pass --workdir"):
        train(load_config(TOY))


@pytest.mark.parametrize(
    "losses", [[None, None], [0.0, -0.25], [1.0, 0.1]], ids=["all-nan", "zero-negative", "positive"]
)
def test_loss_curves_plot_any_logged_values_without_warnings(tmp_path, losses):
    """A run stopped on NaN (losses logged as null) or a loss that is negative still plots, with
    no matplotlib warning (log scale only when every value is positive)."""
    import warnings

    from spectrax.train._plots import plot_loss_curves

    records = [{"step": i + 1, "split": "train", "loss": v} for i, v in enumerate(losses)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plot_loss_curves(records, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _plotted_loss_curves(records, path, monkeypatch):
    """The axes ``plot_loss_curves`` drew ``records`` on (the figure is captured as made)."""
    from spectrax.train import _plots

    made, original = [], _plots.new_figure

    def capture(**kwargs):
        made.append(original(**kwargs))
        return made[-1]

    monkeypatch.setattr(_plots, "new_figure", capture)
    _plots.plot_loss_curves(records, path)
    (fig,) = made
    return fig.axes[0]


def test_loss_curves_keep_zero_and_negative_eval_values(tmp_path, monkeypatch):
    """A classifier's test_error reaching 0.0 (or a negative metric) is a logged value: it
    stays on the curve and selects the linear scale; only null (non-finite) is left out."""
    records = [
        {"step": 10, "split": "train", "loss": 0.5},
        {"step": 10, "split": "eval", "test_error": 0.25, "score": -1.0},
        {"step": 20, "split": "train", "loss": 0.1},
        {"step": 20, "split": "eval", "test_error": 0.0, "score": None},
    ]
    ax = _plotted_loss_curves(records, tmp_path / "loss.png", monkeypatch)
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines["eval test_error"].get_xdata()) == [10, 20]
    assert list(lines["eval test_error"].get_ydata()) == [0.25, 0.0]
    assert list(lines["eval score"].get_ydata()) == [-1.0]
    assert ax.get_yscale() == "linear"


def test_a_single_finite_train_loss_is_drawn_as_a_marker(tmp_path, monkeypatch):
    """A run with one logged step (or one finite loss before NaN) has a one-point curve: a
    line without a marker draws nothing there."""
    records = [
        {"step": 1, "split": "train", "loss": 0.5},
        {"step": 2, "split": "train", "loss": None},
    ]
    (line,) = _plotted_loss_curves(records, tmp_path / "loss.png", monkeypatch).lines
    assert list(line.get_ydata()) == [0.5]
    assert line.get_marker() not in ("None", "", " ", None)


def test_plots_leave_the_callers_pyplot_backend_and_figures_alone(tmp_path):
    """Training from a notebook must not switch its pyplot backend (inline) to Agg, nor close or
    add figures: the run's PNGs are drawn outside pyplot."""
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    from spectrax.train._plots import plot_field_predictions, plot_loss_curves
    from spectrax.train._tasks import _plot_2d_predictions

    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # a non-Agg backend that needs no display
    try:
        mine = plt.figure()
        x = np.linspace(0.0, 1.0, 8, endpoint=False)
        field = np.sin(2 * np.pi * x)[None].repeat(2, axis=0)
        written = [
            plot_loss_curves([{"step": 1, "split": "train", "loss": 1.0}], tmp_path / "l.png"),
            *plot_field_predictions(x, field, field, field, tmp_path),
            _plot_2d_predictions(*[field[:, :, None] * field[:, None]] * 3, tmp_path / "2d.png"),
        ]
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [mine.number]
        for path in written:
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    finally:
        plt.close("all")
        plt.switch_backend(before)


@pytest.mark.parametrize("below", [False, True], ids=["file", "under-a-file"])
def test_a_workdir_that_is_a_file_is_a_config_error_before_the_data(tmp_path, monkeypatch, below):
    """--workdir naming a file (or a path under one) is refused before the task is built, not a
    crash (exit 5) once the data are generated; the file is left as it was."""
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")

    def no_setup(*args, **kwargs):
        raise AssertionError("the task was built before the refusal")

    monkeypatch.setattr(loop_module, "_setup", no_setup)
    workdir = afile / "run" if below else afile
    for resume in (False, True):
        with pytest.raises(
            ConfigError, match=rf"{workdir} (is|lies under .*notes.txt, which is) a"
        ):
            train(load_config(TOY), workdir=workdir, resume=resume)
    assert afile.read_text() == "keep me"


def test_a_home_relative_workdir_in_the_config_lands_in_home(tmp_path, monkeypatch):
    """`output.workdir=~/run` (a config value, which no shell expands) created a folder named
    "~" in the current directory instead of a run in the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = load_config(
        TOY, ["output.workdir=~/run", "loop.num_steps=2", "output.plots=false"], variant="smoke"
    )
    result = train(config)
    assert result.workdir == tmp_path / "home" / "run"
    assert (tmp_path / "home" / "run" / "report.md").is_file()
    assert not (tmp_path / "~").exists()


def test_metric_writer_names_a_metric_that_is_not_a_scalar(tmp_path, library_errors):
    """A vector metric (from a task's own ``evaluate``) failed with "only 0-dimensional arrays
    can be converted to Python scalars", naming no metric; a complex one was written as its real
    part; a metric named ``step`` replaced the record's step."""
    writer = MetricWriter(tmp_path, tensorboard=False)
    with pytest.raises(TypeError, match=r"metric 'per_class' must be a real scalar.*shape \(3,\)"):
        writer.write(1, "eval", {"per_class": np.ones(3)})
    with pytest.raises(TypeError, match=r"metric 'z' must be a real scalar"):
        writer.write(1, "eval", {"z": np.complex64(1 + 2j)})
    with pytest.raises(ValueError, match=r"metric name 'step' is the record's own key"):
        writer.write(1, "eval", {"step": 7})
    # step 2.7 was written as step 2, a split 3 as 3
    for step in (2.7, True, "2", np.ones(2, int)):
        with pytest.raises(TypeError, match=r"`step` must be an integer; got"):
            writer.write(step, "eval", {"acc": 0.5})
    with pytest.raises(TypeError, match=r"`split` must be a string.*got 3"):
        writer.write(1, 3, {"acc": 0.5})
    writer.write(np.int64(1), "eval", {"acc": np.float32(0.5), "ok": np.bool_(True), "tag": "x"})
    writer.close()
    assert read_metrics(tmp_path) == [
        {"step": 1, "split": "eval", "acc": 0.5, "ok": True, "tag": "x"}
    ]
