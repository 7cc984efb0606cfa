"""Orbax checkpoints of a run: model, optimizer state, step, RNG and config, checked on restore.

Saves go through ``orbax.checkpoint.CheckpointManager``, which writes each step into a temporary
directory and renames it into place once complete: a process killed mid-save leaves only a
temporary directory that the manager ignores, and the previous step stays the latest. Each save
also records a SHA-256 of every array's bytes and the config; restore refuses a checkpoint whose
config differs or whose arrays do not hash to the record, before the caller sees any of it.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import os
import re
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from spectrax.train._config import config_differences

__all__ = ["CheckpointError", "Checkpointer", "tree_digest"]

logger = logging.getLogger(__name__)


def _is_late_loop_callback(unraisable) -> bool:
    """An asyncio callback scheduled onto a loop that is already closed: after a refused
    checkpoint, TensorStore's reads still in flight call back into the event loop Orbax ran the
    restore on and closed when the first read failed. The error was reported; this is noise."""
    exc = unraisable.exc_value
    return (
        isinstance(exc, RuntimeError)
        and str(exc) == "Event loop is closed"
        and any(
            frame.f_code.co_name == "call_soon_threadsafe"
            for frame, _ in traceback.walk_tb(unraisable.exc_traceback)
        )
    )


def _is_orphaned_checkpoint_read(unraisable) -> bool:
    """An Orbax read coroutine finalised unfinished: after a refused checkpoint (a truncated
    array chunk) the reads of the other arrays are never awaited, and each one reports its own
    failure with TensorStore's whole spec (dozens of lines per array). The restore's error was
    reported; nothing awaits these."""
    code = getattr(getattr(unraisable, "object", None), "cr_code", None)
    return (
        isinstance(unraisable.exc_value, Exception)
        and code is not None
        and f"{os.sep}orbax{os.sep}checkpoint{os.sep}" in code.co_filename
    )


def quiet_refused_read_reports() -> None:
    """Drop :func:`_is_late_loop_callback` and :func:`_is_orphaned_checkpoint_read` reports in
    this process; others go to the hook in place before. Installed once, by the first restore
    (the reports of a refused one come from other threads, before and after its
    :class:`CheckpointError`)."""
    previous = sys.unraisablehook
    if getattr(previous, "_spectrax", False):
        return

    def hook(unraisable):
        if not (_is_late_loop_callback(unraisable) or _is_orphaned_checkpoint_read(unraisable)):
            previous(unraisable)

    hook._spectrax = True
    sys.unraisablehook = hook


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or belongs to another config."""


def tree_digest(tree: Any) -> str:
    """SHA-256 over every array's path in the tree, dtype, shape and bytes.

    Paths, not the tree definition's text: that text holds static fields such as activation
    functions, whose repr carries a memory address that differs between processes.
    """
    h = hashlib.sha256()
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.asarray(jax.device_get(x))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _leaf_paths(tree: Any) -> list[str]:
    """The path of every leaf (array, or ``jax.ShapeDtypeStruct`` of a skeleton), in order."""
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _leaf_dtypes(tree: Any) -> list[str]:
    """The dtype name of every leaf (a Python scalar's as NumPy reads it), in the order of
    :func:`_leaf_paths`."""
    return [
        str(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)
        for x in jax.tree_util.tree_leaves(tree)
    ]


def _strip_spec(text: str) -> str:
    """An Orbax/TensorStore message without its TensorStore spec (a long JSON dump, given as
    ``[tensorstore_spec=...]`` or ``See full TensorStore details: <... TensorStore({...})>``)
    and without Orbax's advice on enabling padding or truncation (which would load a checkpoint
    of the wrong shape)."""
    text = re.split(r"\s*(?:\[tensorstore_spec|See full TensorStore details)", text, maxsplit=1)[0]
    return text.split(" Truncating/padding is disabled", 1)[0].rstrip(". ")


def _short_cause(err: BaseException, limit: int = 400) -> str:
    """The readable part of an Orbax/TensorStore restore error, at most about ``limit``
    characters: its own message (what was read) and, when raised from another, the innermost one
    (TensorStore's root cause, e.g. "Data corruption detected" or a byte range past the end of
    a truncated file), each without the spec dump; over the limit, the start and the end."""
    text = _strip_spec(str(err))
    root, seen = err, {id(err)}
    while (inner := root.__cause__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        root = inner
    if root is not err:
        text += f" <- {type(root).__name__}: {_strip_spec(str(root))}"
    if len(text) <= limit:
        return text
    return text[: limit // 3] + " ... " + text[-(limit - limit // 3) :]


def _check_step(step: Any) -> int:
    """``step`` as a Python int: an int, a NumPy integer or a 0-d integer array (an optimizer's
    step counter, e.g. optax's ``count``, is a JAX int32 scalar), >= 0. Orbax stores whatever it
    is given as the step, so a NumPy integer came back from ``latest_step``."""
    try:
        boolean = isinstance(step, bool) or np.dtype(getattr(step, "dtype", int)) == np.bool_
        value = None if boolean else operator.index(step)
    except TypeError:
        value = None
    if value is None or value < 0:
        raise ValueError(
            f"`step` must be an integer >= 0; got {step!r}. Pass an int, a NumPy integer or a "
            "0-d integer array."
        )
    return value


class Checkpointer:
    """Keep-last-k Orbax checkpoints of ``{"state": arrays, "meta": json}`` under ``directory``.

    Args:
        directory: where step folders live (created).
        keep: how many recent checkpoints to keep (default 3, as ``checkpoint.keep``).
        config_dict: :func:`spectrax.train.config_to_dict` of the run; stored with every save
            and compared on restore (default ``{}``: no config to compare).
        config_defaults: the config's field defaults (``config_defaults`` of
            ``spectrax.train._config``): a key the stored config lacks (a field added since it
            was written) is no difference where this run holds its default.

    Outside :func:`spectrax.train.train`, an Equinox model and its Optax state restore into a
    skeleton from ``eqx.filter_eval_shape`` (no arrays computed), whose leaves are
    ``jax.ShapeDtypeStruct``::

        ckpt = Checkpointer(directory)
        ckpt.save(step, {"model": eqx.filter(model, eqx.is_array), "opt": opt_state})
        # in a fresh process:
        is_struct = lambda x: isinstance(x, jax.ShapeDtypeStruct)
        params, static = eqx.partition(eqx.filter_eval_shape(make_model, key), is_struct)
        opt_skeleton = eqx.filter_eval_shape(optimizer.init, params)
        state, meta = ckpt.restore({"model": params, "opt": opt_skeleton})
        model, opt_state = eqx.combine(state["model"], static), state["opt"]
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep: int = 3,
        config_dict: dict[str, Any] | None = None,
        config_defaults: dict[str, Any] | None = None,
    ):
        if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
            raise ValueError(f"`keep` must be an integer >= 1; got {keep!r}.")
        self.directory = Path(directory).resolve()
        self.config_dict = {} if config_dict is None else config_dict
        self.config_defaults = config_defaults
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(
        self, step: int | np.integer | jax.Array, state: Any, *, extra: dict[str, Any] | None = None
    ) -> None:
        """Save ``state`` (a pytree of arrays) as ``step`` (an integer >= 0: an int, a NumPy
        integer or a 0-d integer array such as optax's step ``count``), after every step already
        saved in the directory; returns once the save is durable."""
        step = _check_step(step)
        later = [s for s in self.all_steps() if s >= step]
        if later:
            # Saved after step 9, step 7 made keep-last-k delete step 8 (retention follows save
            # order), and latest_step() said 7 in this process but 9 in the next one.
            raise ValueError(
                f"`step`={step} is not after the checkpoints already in {self.directory} (steps "
                f"{sorted(later)}); steps must increase. Save into another directory (a new "
                "run), or restore the latest checkpoint and continue from its step."
            )
        # Hashing gathers every array to this host: single-process runs only.
        digest = tree_digest(state) if jax.process_count() == 1 else None
        meta = {
            "step": int(step),
            "config": self.config_dict,
            "digest": digest,
            "arrays": _leaf_paths(state),
            "dtypes": _leaf_dtypes(state),
            **(extra or {}),
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def _earlier_hint(self, step: int) -> str:
        """Where a damaged checkpoint is the latest: the earlier ones a run may resume from."""
        earlier = [s for s in self.all_steps() if s < step]
        if not earlier:
            return ""
        return (
            f" Earlier checkpoints: steps {earlier}; move {self.directory / str(step)} out of "
            f"{self.directory} to resume from step {earlier[-1]}."
        )

    def read_meta(self, step: int) -> dict[str, Any]:
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return dict(out["meta"])
        except Exception as err:
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} is damaged or incomplete: its metadata "
                f"cannot be read ({type(err).__name__}: {err}).{self._earlier_hint(step)}"
            ) from err

    def restore(
        self, target: Any, step: int | np.integer | jax.Array | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Restore ``step`` (default: latest) into the structure, shapes, dtypes and shardings
        of ``target``.

        Raises:
            CheckpointError: no checkpoint (at ``step``, if given); a config that differs from
                this run's (the differing keys are listed; not checked without a
                ``config_dict``); arrays that do not match
                ``target`` or whose digest differs from the one recorded at save time
                (single-process runs: the digest is neither written nor checked over several
                processes).
        """
        step = self.latest_step() if step is None else _check_step(step)
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}.")
        if step not in self.all_steps():
            # read as a damaged checkpoint, with advice to move a folder that does not exist
            raise CheckpointError(
                f"no checkpoint at `step`={step!r} in {self.directory}; expected one of the "
                f"saved steps {self.all_steps()}."
            )
        meta = self.read_meta(step)
        # no config of its own (the default): nothing to compare; every key of a train() run's
        # checkpoint differed from the empty dict, and such a checkpoint could not be loaded
        diffs = (
            config_differences(
                meta.get("config", {}), self.config_dict, defaults=self.config_defaults
            )
            if self.config_dict
            else []
        )
        if diffs:
            longer = any(d.startswith("loop.num_steps:") for d in diffs)
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} was written by another config; "
                "refusing to load it. Differences (checkpoint != this run): "
                + "; ".join(diffs)
                + (
                    ". A run continues for another number of steps only with "
                    "optim.schedule=step and a warmup shorter than both runs (the cosine "
                    "schedule's rate at every step depends on loop.num_steps)"
                    if longer
                    else ""
                )
            )
        saved = meta.get("arrays")  # absent in checkpoints written before it was recorded
        if saved is not None and saved != _leaf_paths(target):
            have = set(_leaf_paths(target))
            missing = [p for p in saved if p not in have]
            extra = sorted(have - set(saved))
            # the entries of a dict target that it lacks altogether (a run's optimizer state
            # and RNG when only its model is asked for); any other gap (an entry present but
            # short of arrays, a target that is not a dict) is the filtered skeleton's
            absent = []
            if isinstance(target, Mapping):
                keys = {jax.tree_util.keystr((jax.tree_util.DictKey(k),)) for k in target}
                tops = {p.split("]", 1)[0] + "]" for p in missing if p.startswith("[")}
                absent = sorted(tops - keys)
            hint = (
                f" The target lacks the entries {absent} altogether: restore every entry the "
                "checkpoint holds (for a training run's model alone, spectrax.train.load_model "
                "does)."
                if absent
                else " A skeleton from eqx.filter_eval_shape has jax.ShapeDtypeStruct leaves, "
                "which eqx.is_array and eqx.is_inexact_array filter out: keep them with "
                "eqx.filter(skeleton, lambda x: isinstance(x, jax.ShapeDtypeStruct))."
            )
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} holds {len(saved)} arrays; the target "
                f"holds {len(have)}: missing in the target {missing[:8]}, not in the checkpoint "
                f"{extra[:8]}.{hint if missing else ''}"
            )
        saved_dtypes = meta.get("dtypes")  # absent in checkpoints from before it was recorded
        dtypes = _leaf_dtypes(target)
        if saved_dtypes is not None and len(saved_dtypes) == len(dtypes) and saved_dtypes != dtypes:
            # Orbax casts to the target's dtype, and the cast arrays then failed the digest:
            # reported as damage, with advice to move a sound checkpoint away
            differ = [
                f"{p}: {a} != {b}"
                for p, a, b in zip(_leaf_paths(target), saved_dtypes, dtypes, strict=True)
                if a != b
            ]
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} holds arrays of other dtypes than the "
                f"target (checkpoint != target): {'; '.join(differ[:8])}"
                + (f" (and {len(differ) - 8} more)" if len(differ) > 8 else "")
                + (
                    ". A float64 checkpoint comes from a run with JAX_ENABLE_X64 (jax_enable_x64) "
                    "on: restore it with the same setting."
                    if any(t in d for d in differ for t in ("float64", "complex128", "int64"))
                    else ". Give the target the checkpoint's dtypes (a PRNG key array is "
                    "key<fry>, a raw key uint32)."
                )
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        # before the read: when one array's read fails, the others' may report into the closed
        # event loop before the failure reaches this frame
        quiet_refused_read_reports()
        try:
            out = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )
            state = out["state"]
        except Exception as err:
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} is damaged or does not match this model "
                f"({type(err).__name__}: {_short_cause(err)}).{self._earlier_hint(step)}"
            ) from err
        if jax.tree.structure(state) != jax.tree.structure(target):
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} holds a different tree than this model."
            )
        # Like the save, hashing needs every array on this host: a checkpoint written by one
        # process and resumed over several is checked only by TensorStore's own checksums.
        digest = meta.get("digest") if jax.process_count() == 1 else None
        if digest is not None and tree_digest(state) != digest:
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} is damaged: its arrays do not match the "
                f"digest recorded when it was saved.{self._earlier_hint(step)}"
            )
        return state, meta

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
