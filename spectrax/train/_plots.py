"""PNG figures of a run: loss curves, and for field-to-field (PDE) tasks prediction vs truth and
the error spectrum by wavenumber."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["error_spectrum", "plot_field_predictions", "plot_loss_curves"]


def new_figure(**kwargs: Any) -> Any:
    """A ``matplotlib.figure.Figure`` outside pyplot: saved as PNG by Agg without a display,
    and the caller's pyplot state (its backend, e.g. a notebook's inline one, and its open
    figures) is left alone. Nothing to close: it is freed with its last reference."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_loss_curves(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Training loss (and every ``eval`` metric) against step: log scale when every plotted
    value is positive (a custom loss may be zero or negative), else linear. Non-finite values
    (logged as ``null``) are left out; a curve of a single point is drawn as a marker."""
    fig = new_figure(figsize=(6, 4))
    ax = fig.subplots()
    train = [r for r in records if r["split"] == "train" and r.get("loss") is not None]
    if train:
        # a plain line through one point (a run of one logged step) draws nothing
        marker = "o" if len(train) == 1 else None
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        ax.plot(steps, losses, marker=marker, label="train loss")
    evals = [r for r in records if r["split"] == "eval"]
    keys = sorted({k for r in evals for k in r if k not in ("step", "split")})
    for k in keys:
        # every logged number, zero and negative ones included (they select a linear scale)
        pts = [(r["step"], r[k]) for r in evals if _is_number(r.get(k))]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=f"eval {k}")
    values = [v for line in ax.lines for v in line.get_ydata()]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if ax.lines:
        ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def error_spectrum(
    pred: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean squared amplitude by wavenumber of the error and of the truth over the last axis.

    Returns:
        ``(k, error_power, truth_power)`` with ``k = 0..n//2``; powers averaged over all leading
        axes.
    """
    e = np.fft.rfft(np.asarray(pred, np.float64) - np.asarray(truth, np.float64), axis=-1)
    t = np.fft.rfft(np.asarray(truth, np.float64), axis=-1)
    lead = tuple(range(e.ndim - 1))
    return (
        np.arange(e.shape[-1]),
        np.mean(np.abs(e) ** 2, axis=lead),
        np.mean(np.abs(t) ** 2, axis=lead),
    )


def plot_field_predictions(
    x: np.ndarray, inputs: np.ndarray, pred: np.ndarray, truth: np.ndarray, outdir: str | Path
) -> list[Path]:
    """``predictions.png`` (input, prediction and truth for a few 1-D test samples) and
    ``error_spectrum.png`` (error vs truth power by wavenumber over all test samples)."""
    outdir = Path(outdir)
    n = min(3, pred.shape[0])
    fig = new_figure(figsize=(7, 2.2 * n))
    axes = fig.subplots(n, 1, squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        # The input on its own axis: solution operators often change the amplitude a lot.
        twin = ax.twinx()
        twin.plot(x, inputs[i], color="0.75", label="input a(x) (right axis)")
        ax.plot(x, truth[i], "k-", label="truth u(x)")
        ax.plot(x, pred[i], "r--", label="prediction")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(loc="upper left", fontsize=8)
            twin.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    p1 = outdir / "predictions.png"
    fig.savefig(p1, dpi=100)

    k, err, tru = error_spectrum(pred, truth)
    fig = new_figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.semilogy(k, tru + 1e-300, "k-", label="truth")
    ax.semilogy(k, err + 1e-300, "r-", label="error")
    ax.set_xlabel("wavenumber k")
    ax.set_ylabel("mean |û_k|²")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    p2 = outdir / "error_spectrum.png"
    fig.savefig(p2, dpi=100)
    return [p1, p2]
