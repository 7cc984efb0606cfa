"""Typed, frozen training configs: sections, ``key=value`` overrides with type checks, and
validation that runs before any work.

A config is a :class:`Config` of frozen dataclass sections. The ``task`` section is any frozen
dataclass with a ``build() -> Task`` method (see :mod:`spectrax.train._task`); its fields are
overridable like the others (``task.width=32``). Ranges live in field metadata
(``min``/``max``/``min_open``/``max_open``/``choices``; a bounded number must also be finite;
on a tuple field they hold for each item) so one function validates every section.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import re
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "LoopConfig",
    "MeshConfig",
    "OptimConfig",
    "OutputConfig",
    "apply_overrides",
    "config_defaults",
    "config_to_dict",
    "flat_keys",
    "load_config",
    "validate_config",
]


class ConfigError(ValueError):
    """A config key, value or combination is invalid; the message names the key."""


# Step counts that enter the jitted step as int32 (Optax's count, the schedules, the guard):
# a larger one passed validation and then overflowed at the first step.
_INT32_MAX = 2**31 - 1
_FLOAT32_MAX = 3.4028234663852886e38  # float(np.finfo(np.float32).max)
_MAX_NAME = 200


def _f(default: Any, **checks: Any) -> Any:
    return dataclasses.field(default=default, metadata=checks)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup, a decay schedule, global-norm clipping and parameter groups.

    Parameters labelled ``"ssm"`` (``spectrax.nn.ssm_param_labels``: Λ, B, log_dt of SSM layers,
    and the FFN of Hyena's implicit filters) use ``ssm_learning_rate`` and no weight decay; all
    others use ``learning_rate`` and ``weight_decay``, except arrays a module holds fixed
    (``spectrax.nn.frozen_param_mask``), which nothing changes. Both follow the same shape after
    ``warmup_steps`` of linear warmup: ``schedule="cosine"`` (default) decays to
    ``final_lr_fraction`` of the peak at ``loop.num_steps``; ``schedule="step"`` multiplies the
    rate by ``step_factor`` every ``step_every`` steps (the FNO paper's schedule: 0.5 every 100
    epochs).
    """

    # bounded by float32's largest number: 1e39 is inf in the step, which skipped every update
    learning_rate: float = _f(1e-3, min=0.0, min_open=True, max=_FLOAT32_MAX)
    ssm_learning_rate: float = _f(1e-3, min=0.0, min_open=True, max=_FLOAT32_MAX)
    warmup_steps: int = _f(0, min=0)
    schedule: str = _f("cosine", choices=("cosine", "step"))
    final_lr_fraction: float = _f(0.01, min=0.0, max=1.0)
    step_every: int = _f(1000, min=1, max=_INT32_MAX)
    step_factor: float = _f(0.5, min=0.0, max=1.0, min_open=True)
    weight_decay: float = _f(1e-4, min=0.0, max=_FLOAT32_MAX)
    clip_norm: float = _f(1.0, min=0.0, min_open=True)
    b1: float = _f(0.9, min=0.0, max=1.0, max_open=True)
    b2: float = _f(0.999, min=0.0, max=1.0, max_open=True)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Steps, batch size and the cadence of logging and evaluation.

    ``max_nonfinite``: that many non-finite updates in a row stop the run (each one is skipped
    inside the jitted step). The host reads the guard's counters (and logs the pending train
    metrics) every ``log_every`` steps and at each evaluation step, before the evaluation; the
    steps between the limit and that read change nothing (the step halts itself).

    ``compute_dtype="bfloat16"``: mixed precision, the forward and backward pass with bfloat16
    parameters over a float32 master copy (``make_train_step``'s ``compute_dtype``); the
    optimizer, checkpoints and evaluation use the float32 parameters.
    """

    num_steps: int = _f(1000, min=1, max=_INT32_MAX)
    batch_size: int = _f(32, min=1)
    log_every: int = _f(20, min=1)
    eval_every: int = _f(0, min=0)
    max_nonfinite: int = _f(10, min=1, max=_INT32_MAX)
    compute_dtype: str = _f("float32", choices=("float32", "bfloat16"))


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh with axes ``("data", "model")`` built with ``jax.make_mesh``.

    ``data=-1`` takes every device the ``model`` axis leaves. ``params="replicated"`` copies
    parameters to every device; ``"fsdp"`` shards each parameter's largest axis divisible by
    the ``model`` axis size over ``model`` (others stay replicated).
    """

    data: int = _f(-1, min=-1)
    model: int = _f(1, min=1)
    params: str = _f("replicated", choices=("replicated", "fsdp"))


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Orbax checkpoints every ``every`` steps (0: only at the end and on signals), keeping
    the last ``keep``."""

    every: int = _f(0, min=0)
    keep: int = _f(3, min=1)


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Run directory (``""``: ``runs/<name>-<timestamp>``), progress bar, plots, TensorBoard."""

    workdir: str = ""
    progress: bool = True
    plots: bool = True
    tensorboard: bool = True


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole training job. ``max_test_error``: the test error the run must reach (``None``:
    no threshold); the CLI exits non-zero above it."""

    name: str
    task: Any
    # jax.random.key keeps 32 bits of a seed outside 64-bit mode: 2**32 + 5 gave seed 5's key
    seed: int = _f(0, min=0, max=2**32 - 1)
    max_test_error: float | None = _f(None, min=0.0, min_open=True)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)


# Top-level keys that do not change what is computed: a resumed run may differ in these.
OUTPUT_SECTIONS = ("output", "checkpoint", "max_test_error")
# Where the computation runs: checkpoints hold whole arrays, so a run may resume on another mesh
# (fewer devices, FSDP instead of replicated), equal to the uninterrupted run to float rounding.
PLACEMENT_SECTIONS = ("mesh",)
# When the host logs and evaluates: neither changes the parameters (the guard halts the step
# itself; the host only notices it at a log step), so a resumed run may log or evaluate at
# another rate.
MONITORING_KEYS = ("loop.log_every", "loop.eval_every")


def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def _fields(obj: Any) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = _hints(type(obj))
    return {f.name: (f, hints.get(f.name, Any)) for f in dataclasses.fields(obj)}


def flat_keys(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf key of a config as ``"section.field" -> value``."""
    out: dict[str, Any] = {}
    for name, (_, _) in _fields(config).items():
        value = getattr(config, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(flat_keys(value, prefix + name + "."))
        else:
            out[prefix + name] = value
    return out


def _type_name(tp: Any) -> str:
    if typing.get_args(tp):  # tuple[int, float], not "tuple"
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _tuple_items(tp: Any, n: int) -> list[Any] | None:
    """The item types of an ``n``-tuple annotated ``tp`` (``tuple``, ``tuple[X, ...]`` or
    ``tuple[X, Y]``), or ``None`` if a fixed-length annotation has another length."""
    args = typing.get_args(tp)
    if not args:
        return [Any] * n
    if len(args) == 2 and args[1] is Ellipsis:
        return [args[0]] * n
    if args == ((),):  # tuple[()]
        args = ()
    return list(args) if len(args) == n else None


def _parse_scalar(key: str, text: str, tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse_scalar(key, text, a)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"`{key}` expects {_type_name(tp)}; got {text!r}.")
    if typing.get_origin(tp) is tuple:
        parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
        inner = _tuple_items(tp, len(parts))
        if inner is None:
            raise ConfigError(
                f"`{key}` expects {len(args)} comma-separated values ({_type_name(tp)}); "
                f"got {len(parts)} in {text!r}."
            )
        return tuple(
            _parse_scalar(key, p.strip(), str if t is Any else t)
            for p, t in zip(parts, inner, strict=True)
        )
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"`{key}` expects a bool (true/false); got {text!r}.")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"`{key}` expects an int; got {text!r}.") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"`{key}` expects a float; got {text!r}.") from None
    if tp is str:
        return text
    raise ConfigError(
        f"`{key}` has type {_type_name(tp)}, which cannot be set from the command line."
    )


def _check_type(key: str, value: Any, tp: Any) -> None:
    origin = typing.get_origin(tp)
    if tp is Any:
        return
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            try:
                _check_type(key, value, a)
                return
            except ConfigError:
                continue
        raise ConfigError(
            f"`{key}` must be {_type_name(tp)}; got {value!r} ({type(value).__name__})."
        )
    if tp is type(None):
        ok = value is None
    elif origin is tuple:
        items = _tuple_items(tp, len(value)) if isinstance(value, tuple) else None
        ok = items is not None
        if ok:
            for i, (v, t) in enumerate(zip(value, items, strict=True)):
                _check_type(f"{key}[{i}]", v, t)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    else:
        ok = True
    if not ok:
        raise ConfigError(
            f"`{key}` must be {_type_name(tp)}; got {value!r} ({type(value).__name__})."
        )


def _check_range(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    if value is None:
        return
    if isinstance(value, tuple) and value not in meta.get("choices", ()):
        # the range and the choices of a tuple field hold for each of its items
        for i, v in enumerate(value):
            _check_range(f"{key}[{i}]", v, meta)
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"`{key}` must be one of {list(meta['choices'])}; got {value!r}.")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None or hi is not None) and not math.isfinite(value):
        raise ConfigError(f"`{key}` must be a finite number; got {value!r}.")
    if lo is not None and (value <= lo if meta.get("min_open") else value < lo):
        op = ">" if meta.get("min_open") else ">="
        raise ConfigError(f"`{key}` must be {op} {lo}; got {value!r}.")
    if hi is not None and (value >= hi if meta.get("max_open") else value > hi):
        op = "<" if meta.get("max_open") else "<="
        raise ConfigError(f"`{key}` must be {op} {hi}; got {value!r}.")


def validate_config(config: Config) -> Config:
    """Check every field's type and range and the cross-field rules; return the config.

    Raises:
        ConfigError: naming the offending key, what it got and what it expects.
    """
    if not isinstance(config, Config):
        raise ConfigError(
            f"get_config() must return a spectrax.train.Config; got {type(config).__name__}."
        )
    if not (
        dataclasses.is_dataclass(config.task) and callable(getattr(config.task, "build", None))
    ):
        built = callable(getattr(config.task, "init_model", None))
        raise ConfigError(
            "`task` must be a frozen dataclass with a build() method that returns the task (its "
            f"fields are the `task.*` keys); got {type(config.task).__name__}."
            + (
                " To train a task object as it is, wrap it: @dataclasses.dataclass(frozen=True) "
                "class MyTask: def build(self): return task"
                if built
                else ""
            )
        )

    # the run directory is runs/<name>-<time>: a name is one path component
    if not isinstance(config.name, str) or not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*", config.name
    ):
        raise ConfigError(
            f"`name` must be letters, digits, '_', '.' or '-' (not starting with '.', '_' or "
            f"'-'; it names the run directory); got {config.name!r}."
        )
    if len(config.name) > _MAX_NAME:
        # runs/<name>-<timestamp>[-n] must fit a file name (255 bytes on common file systems):
        # a longer one failed with OSError once the data were built
        raise ConfigError(
            f"`name` must be at most {_MAX_NAME} characters (it names the run directory "
            f"<name>-<timestamp>); got {len(config.name)}."
        )

    def walk(obj: Any, prefix: str) -> None:
        for name, (f, tp) in _fields(obj).items():
            value = getattr(obj, name)
            key = prefix + name
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                walk(value, key + ".")
                continue
            _check_type(key, value, tp)
            _check_range(key, value, f.metadata)

    walk(config, "")
    loop = config.loop
    if loop.eval_every and loop.eval_every > loop.num_steps:
        raise ConfigError(
            f"`loop.eval_every` ({loop.eval_every}) exceeds `loop.num_steps` ({loop.num_steps}); "
            "use 0 to evaluate only at the end."
        )
    return config


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """Return ``config`` with ``key=value`` overrides applied, typed from the field annotations.

    Args:
        config: the base config.
        overrides: strings like ``"optim.learning_rate=3e-4"`` or ``"task.width=32"``.

    Raises:
        ConfigError: unknown key (the message lists the valid ones), unparsable or out-of-range
            value.
        TypeError: ``overrides`` is one string or a dict rather than a sequence of strings.
    """
    if isinstance(overrides, (str, bytes)):
        # iterated, a string gave one "override" per character: "override 'l' is not ..."
        raise TypeError(
            f"`overrides` must be a sequence of key=value strings; got the single string "
            f"{overrides!r}. Pass a list: [{overrides!r}]."
        )
    if isinstance(overrides, Mapping):
        # iterated, a dict gave its keys: "override 'loop.num_steps' is not of the form key=value"
        example = [f"{k}={v}" for k, v in list(overrides.items())[:2]]
        raise TypeError(
            "`overrides` must be a sequence of key=value strings; got a "
            f"{type(overrides).__name__}. Pass a list, e.g. {example} "
            "([f'{k}={v}' for k, v in overrides.items()])."
        )
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value.")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has no key before '='; expected key=value.")
        valid = flat_keys(config)
        section = [k for k in sorted(valid) if k.startswith(key + ".")]
        if section:
            raise ConfigError(
                f"`{key}` is a section, not a key; set one of its keys: "
                f"{', '.join(f'`{k}`' for k in section)}."
            )
        if key not in valid:
            near = _near_keys(key, valid)
            hint = f" did you mean {' or '.join(f'`{k}`' for k in near)}?" if near else ""
            raise ConfigError(
                f"unknown config key `{key}`;{hint} valid keys: {', '.join(sorted(valid))}."
            )
        config = _replace_path(config, key.split("."), key, text)
    return validate_config(config)


def _near_keys(key: str, valid: Iterable[str]) -> list[str]:
    """Valid keys a mistyped ``key`` probably meant: the closest spelling of its last component
    in the same section, a close spelling of the whole key (a mistyped section), and keys with
    the same last component (a key given without its section, e.g. ``learning_rate``)."""
    valid = sorted(valid)
    section, _, leaf = key.rpartition(".")
    same = {k.rpartition(".")[2]: k for k in valid if k.rpartition(".")[0] == section}
    near = [same[m] for m in difflib.get_close_matches(leaf, list(same), n=1, cutoff=0.75)]
    near += difflib.get_close_matches(key, valid, n=1, cutoff=0.9)
    near += [k for k in valid if k.rpartition(".")[2] == leaf]
    return list(dict.fromkeys(near))[:3]


def _replace_path(obj: Any, path: list[str], key: str, text: str) -> Any:
    fields = _fields(obj)
    f, tp = fields[path[0]]
    if len(path) == 1:
        value = _parse_scalar(key, text, tp)
        _check_range(key, value, f.metadata)
        return dataclasses.replace(obj, **{path[0]: value})
    child = _replace_path(getattr(obj, path[0]), path[1:], key, text)
    return dataclasses.replace(obj, **{path[0]: child})


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of the config, with each section's class recorded."""
    out: dict[str, Any] = {"__class__": f"{type(config).__module__}.{type(config).__qualname__}"}
    for name in _fields(config):
        value = getattr(config, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[name] = config_to_dict(value)
        else:
            out[name] = _as_json(value)
    return out


def _as_json(value: Any) -> Any:
    """Tuples as lists at every depth: a checkpoint stores the dict as JSON, and a tuple left
    inside a list would differ from its stored copy (the run could not resume its own)."""
    if isinstance(value, (tuple, list)):
        return [_as_json(v) for v in value]
    return value


def config_defaults(config: Any) -> dict[str, Any]:
    """Each field's declared default, nested as :func:`config_to_dict` nests the values (a
    field without a default is left out)."""
    out: dict[str, Any] = {}
    for name, (field, _) in _fields(config).items():
        value = getattr(config, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[name] = config_defaults(value)
        elif field.default is not dataclasses.MISSING:
            out[name] = _as_json(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            out[name] = _as_json(field.default_factory())
    return out


def config_differences(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    prefix: str = "",
    *,
    defaults: Mapping[str, Any] | None = None,
    _free: tuple[str, ...] | None = None,
) -> list[str]:
    """Keys whose values differ between two :func:`config_to_dict` results, ``a`` the stored
    one (sections in ``OUTPUT_SECTIONS`` and ``PLACEMENT_SECTIONS`` are ignored at the top
    level, and the keys in ``MONITORING_KEYS``; ``loop.num_steps`` too where both use a
    ``"step"`` schedule with a warmup shorter than both runs: every step's rate is then the
    same, so a run resumed with a larger ``num_steps`` continues exactly). With ``defaults``
    (:func:`config_defaults` of ``b``'s config), a key ``a`` lacks whose value in ``b`` is
    its default is no difference: a field added since ``a`` was written, at the value that
    keeps the old behaviour."""
    diffs = []
    defaults = {} if defaults is None else defaults
    free = _free
    if free is None:  # the top level: which keys no section may differ in
        free = MONITORING_KEYS + (("loop.num_steps",) if _same_schedule(a, b) else ())
    for k in sorted(set(a) | set(b)):
        if not prefix and k in OUTPUT_SECTIONS + PLACEMENT_SECTIONS:
            continue
        if prefix + k in free:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            sub = defaults.get(k)
            sub = sub if isinstance(sub, Mapping) else None
            diffs += config_differences(va, vb, prefix + k + ".", defaults=sub, _free=free)
        elif k not in a and k in b and k in defaults and vb == defaults[k]:
            continue
        elif k == "__class__" and _class_id(va) == _class_id(vb):
            continue
        elif va != vb:
            diffs.append(f"{prefix}{k}: {va!r} != {vb!r}")
    return diffs


def _same_schedule(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``loop.num_steps`` may differ between two configs with every step's learning
    rate the same: a ``"step"`` schedule (its decay counts steps from the warmup, whatever the
    run's length) whose warmup is shorter than both runs (a warmup as long as the run is
    shortened to it). The cosine schedule's rate at every step depends on the length."""
    try:
        oa, ob = a["optim"], b["optim"]
        steps = min(a["loop"]["num_steps"], b["loop"]["num_steps"])
        return (
            oa.get("schedule") == ob.get("schedule") == "step"
            and oa.get("warmup_steps") == ob.get("warmup_steps")
            and oa["warmup_steps"] < steps
        )
    except (KeyError, TypeError):
        return False


def _class_id(recorded: Any) -> Any:
    """A recorded ``module.Qualname`` as ``file.Qualname``: a config file's classes are named
    after the module it was loaded as, ``spectrax_config_<stem>`` by :func:`load_config` (the
    CLI) and ``configs.<stem>`` (or any package path) when imported, one config either way (a
    checkpoint the CLI wrote was refused by the same config imported)."""
    if not isinstance(recorded, str) or "." not in recorded:
        return recorded
    qual = recorded.rsplit(".", 1)[1]
    module = recorded.rsplit(".", 1)[0].rsplit(".", 1)[-1]
    return f"{module.removeprefix(_CONFIG_MODULE_PREFIX)}.{qual}"


_CONFIG_MODULE_PREFIX = "spectrax_config_"
_SECTION_NAMES = frozenset(f.name for f in dataclasses.fields(Config))


def resolve_config_path(name_or_path: str) -> Path:
    """A config file from a path, or a bare name looked up in ``./configs``, in the
    ``configs/`` folder of the source checkout and in the installed package's
    ``spectrax/configs/`` (a wheel holds them there). A path (a ``.py`` name or one with a
    folder) that does not exist is an error, never a bundled config of the same name."""
    p = Path(name_or_path)
    here = Path(__file__).resolve()
    # once each: run from the checkout, ./configs is the checkout's configs/. The installed
    # spectrax/configs/ (a wheel's); the checkout's configs/ only in a checkout (beside an
    # installed package, site-packages/configs is another distribution's)
    roots = [(Path.cwd() / "configs").resolve(), here.parents[1] / "configs"]
    if (here.parents[2] / "pyproject.toml").is_file():
        roots.append(here.parents[2] / "configs")
    roots = list(dict.fromkeys(roots))
    if p.suffix == ".py" or len(p.parts) > 1:
        if p.is_file():
            return p.resolve()
        bundled = [r / f"{p.stem}.py" for r in roots if (r / f"{p.stem}.py").is_file()]
        hint = f"; the bundled config of that name is `{p.stem}` ({bundled[0]})" if bundled else ""
        raise ConfigError(f"config file {name_or_path!r} does not exist{hint}.")
    stem = name_or_path
    for root in roots:
        cand = root / f"{stem}.py"
        if cand.exists() and stem != "__init__":  # the package file of spectrax/configs
            return cand.resolve()
    available = sorted(
        {c.stem for r in roots if r.is_dir() for c in r.glob("*.py") if c.stem != "__init__"}
    )
    hint = (
        ""
        if available
        else " The configs ship in the repository's configs/ folder and, installed, in "
        "spectrax/configs/ (neither was found: an incomplete installation?): reinstall, run "
        "from a folder that holds configs/, or pass the path of a config file."
    )
    if "." in stem and stem.split(".", 1)[0] in _SECTION_NAMES:
        # `spectrax train optim.learning_rate` (the value forgotten): read as the config name
        hint += f" {name_or_path!r} looks like a config key: an override is key=value."
    raise ConfigError(
        f"config {name_or_path!r} not found (looked for a .py file and in "
        f"{', '.join(map(str, roots))}); "
        f"available: {', '.join(available) or 'none'}.{hint}"
    )


def load_config(
    name_or_path: str, overrides: Sequence[str] = (), *, variant: str = "default"
) -> Config:
    """Run a config file's ``get_config(variant)``, apply overrides and validate.

    Args:
        name_or_path: ``configs/burgers_fno.py`` or ``burgers_fno``.
        overrides: ``key=value`` strings (see :func:`apply_overrides`).
        variant: ``"default"`` or ``"smoke"`` (every config has both).
    """
    path = resolve_config_path(name_or_path)
    spec = importlib.util.spec_from_file_location(f"{_CONFIG_MODULE_PREFIX}{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config().")
    variants = getattr(module, "VARIANTS", ("default", "smoke"))
    if variant not in variants:
        raise ConfigError(f"`variant` must be one of {list(variants)}; got {variant!r}.")
    config = validate_config(module.get_config(variant))
    return apply_overrides(config, overrides)
