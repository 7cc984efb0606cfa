"""Metric writers: ``metrics.jsonl`` always, TensorBoard event files when a writer exists."""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MetricWriter", "read_metrics"]

logger = logging.getLogger(__name__)

# Writer libraries tried in order; none is a dependency of spectrax.
_TB_WRITERS = (("tensorboardX", "SummaryWriter"), ("torch.utils.tensorboard", "SummaryWriter"))


def _tensorboard_writer(logdir: Path, purge_step: int | None) -> Any:
    """A SummaryWriter; ``purge_step`` (a resumed run's first new step) makes TensorBoard drop
    the events a stopped run logged past its checkpoint, as ``metrics.jsonl`` is truncated."""
    for module, name in _TB_WRITERS:
        try:
            return getattr(importlib.import_module(module), name)(
                str(logdir), purge_step=purge_step
            )
        except ImportError:
            continue
    return None


def _number(v: Any) -> bool | int | float | str:
    """A metric as a Python scalar: a boolean (Python, NumPy or JAX) as ``bool``, an integer as
    ``int``, anything else numeric as ``float`` (non-finite values kept); strings as they are."""
    if isinstance(v, str):
        return v
    a = np.asarray(v)
    if np.iscomplexobj(a):  # float() kept the real part with only a warning
        raise TypeError(f"a complex metric has no single real value; got {a!r}.")
    if a.dtype == np.bool_:
        return bool(a)
    if np.issubdtype(a.dtype, np.integer):
        return int(a)
    return float(a)


def _jsonable(v: Any) -> Any:
    v = _number(v)
    return None if isinstance(v, float) and not math.isfinite(v) else v


class MetricWriter:
    """Appends one JSON object per record to ``<workdir>/metrics.jsonl``.

    A resumed run truncates records past ``resume_step`` first, so the file reads as if the run
    had never stopped. Non-finite values are written as ``null`` (TensorBoard gets them as they
    are), booleans as ``true`` / ``false`` whatever their array type. With ``enabled=False`` (the
    non-primary processes of a multi-host run) nothing is written.
    """

    def __init__(
        self,
        workdir: str | Path,
        *,
        tensorboard: bool = True,
        resume_step: int | None = None,
        enabled: bool = True,
    ):
        self.path = Path(workdir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
            # written beside and renamed over: a write that fails part-way (a full disk, a
            # kill) would otherwise leave the log truncated, the run's history lost
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            os.replace(tmp, self.path)
        elif resume_step is None:
            self.path.write_text("")
        purge = None if resume_step is None else resume_step + 1
        self._tb = (
            _tensorboard_writer(Path(workdir) / "tensorboard", purge) if tensorboard else None
        )
        if tensorboard and self._tb is None:
            logger.info("no TensorBoard writer library installed; writing metrics.jsonl only")

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        """Append the record ``{"step": step, "split": split, **metrics}``.

        Args:
            step: the training step. split: ``"train"`` or ``"eval"`` (any string).
            metrics: name -> a real scalar (Python, NumPy or 0-d JAX) or a string.
        """
        if not self.enabled:
            return
        # step 2.7 was written as 2, a non-string split as it was
        as_array = np.asarray(step) if not isinstance(step, (str, bytes)) else None
        if (
            as_array is None
            or as_array.ndim != 0
            or as_array.dtype == np.bool_
            or not np.issubdtype(as_array.dtype, np.integer)
        ):
            raise TypeError(f"`step` must be an integer; got {type(step).__name__} {step!r}.")
        if not isinstance(split, str):
            raise TypeError(f"`split` must be a string (e.g. 'train'); got {split!r}.")
        values = {}
        for k, v in metrics.items():
            if k in ("step", "split"):
                raise ValueError(f"metric name {k!r} is the record's own key; rename the metric.")
            try:
                values[k] = _number(v)
            except (TypeError, ValueError) as err:
                # a vector (or complex) metric failed as "only 0-dimensional arrays can be
                # converted to Python scalars", naming neither the metric nor its shape
                raise TypeError(
                    f"metric {k!r} must be a real scalar or a string; got "
                    f"{type(v).__name__} of shape {np.shape(v)}. Reduce it (e.g. its mean) or "
                    "log one scalar per entry under its own name."
                ) from err
        record = {
            "step": int(step),
            "split": split,
            **{
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in values.items()
            },
        }
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            # every number, counters and flags included; TensorBoard shows NaN and inf as such
            for k, v in values.items():
                if not isinstance(v, str):
                    self._tb.add_scalar(f"{split}/{k}", float(v), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (a run directory also works).

    A last line cut short (a process killed mid-write) is dropped with a warning; a damaged
    line before it raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    lines = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip()]
    records = []
    for k, (i, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if k == len(lines) - 1:
                logger.warning("%s: dropping a cut-short last line %d (%s)", path, i, err)
                break
            raise ValueError(
                f"{path} line {i} is not a JSON record ({err}): {line[:80]!r}"
            ) from err
    return records
