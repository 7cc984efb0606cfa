"""On-disk cache of generated datasets, keyed by the generator, its parameters and the seed."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import re
import sys
import tempfile
import time
import types
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from spectrax._checks import _describe, check_key

__all__ = ["cache_path", "cached", "default_cache_dir"]

logger = logging.getLogger(__name__)

# Bump when the numbers a generator returns change for a reason its source does not show (the
# source itself is hashed into the key, see _source_digest).
# 2: delayed_recall draws int32 in every mode (its data under x64 changed); the JAX version and
# the x64 / threefry-partitionable flags joined the key. The generators' source joined it later
# (a change of key by itself, with no bump), and so did the default backend's platform.
# 3: files store each array's dtype name (bfloat16 and the other ml_dtypes types were read
# back as raw void bytes, |V2).
CACHE_VERSION = 3

_DATA_DIR = Path(__file__).resolve().parent

# The temporary files of _store: mkstemp's random part between the stem of a cache file
# (``name-<20 hex digits>``) and ".tmp". One untouched for _STALE_SECONDS is a killed writer's:
# the data are generated before the file is created, and each write moves its mtime.
_TEMP_NAME = re.compile(r".+-[0-9a-f]{20}\.[a-z0-9_]+\.tmp")
_STALE_SECONDS = 3600.0


def _source_files(module_name: str) -> list[Path]:
    """The source files a generator's numbers depend on: every module of ``spectrax.data`` (its
    generators call one another, and a user's generator typically wraps one of them) and the
    shared argument checks, plus, for a generator defined elsewhere, the file of its module
    (what that calls outside spectrax is not followed; the JAX version is keyed separately).
    Only spectrax's files when the module has no source file (e.g. a notebook)."""
    files = [f for f in _DATA_DIR.glob("*.py") if f.name != "_cache.py"]
    files = sorted([*files, _DATA_DIR.parent / "_checks.py"])
    if module_name == "spectrax.data" or module_name.startswith("spectrax.data."):
        return files
    file = getattr(sys.modules.get(module_name), "__file__", None)
    return [Path(file), *files] if file else files


def _source_digest(module_name: str) -> str | None:
    """A hash of :func:`_source_files`, so editing a generator (or upgrading spectrax) never
    reads back data the old code drew; ``None`` when no source file can be read."""
    digest = hashlib.sha256()
    found = False
    for path in _source_files(module_name):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
            found = True
        except OSError:  # e.g. an install without .py files: key on the rest
            continue
    return digest.hexdigest() if found else None


def _code_digest(code: types.CodeType) -> str:
    """A hash of a code object's bytecode, names and constants (nested code objects included),
    stable across processes: frozenset constants are hashed in sorted order, since their repr
    follows the per-process string hash seed."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, types.CodeType):
            digest.update(b"code\0" + value.co_code)
            digest.update(repr((value.co_names, value.co_varnames, value.co_freevars)).encode())
            for const in value.co_consts:
                feed(const)
        elif isinstance(value, (frozenset, set)):
            digest.update(b"set\0" + repr(sorted(repr(v) for v in value)).encode())
        elif isinstance(value, tuple):
            digest.update(b"tuple\0")
            for v in value:
                feed(v)
        else:
            digest.update(repr(value).encode() + b"\0")

    feed(code)
    return digest.hexdigest()


def _function_identity(fn: Any, seen: set[int] | None = None) -> Any:
    """What a generator's source file does not pin down: its bytecode (two lambdas, or a
    function redefined in a notebook, share a name, and a notebook has no source file) and the
    values its closure captured (``scale`` in ``def make(scale): def gen(key, n): ...``).
    Captured functions are keyed the same way; other values as parameters (:func:`_canonical`).
    ``None`` for a callable without Python code (e.g. an instance of a class)."""
    seen = set() if seen is None else seen
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType) or id(fn) in seen:
        return None
    seen.add(id(fn))
    captured = {}
    for var, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=True):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned after the inner def)
            continue
        inner = inspect.unwrap(value) if callable(value) else None  # e.g. a jax.jit function
        if isinstance(getattr(inner, "__code__", None), types.CodeType):
            qualname = f"{inner.__module__}.{inner.__qualname__}"
            captured[var] = [qualname, _function_identity(inner, seen)]
        else:
            try:
                captured[var] = _canonical(var, value)
            except TypeError:
                raise TypeError(
                    f"cannot key the cache on `{var}`, of type {type(value).__name__}, which the "
                    f"generator {fn.__qualname__} captures from its enclosing scope; pass it as "
                    f"an argument of the generator (None, bool, int, float, str, tuples/lists "
                    f"of those, or arrays) so that it is part of the key."
                ) from None
    return {"code": _code_digest(code), "captured": captured}


def _instance_state(owner: Any, name: str) -> Any:
    """The attributes of the object a generator method or callable instance reads its state
    from, as key values; a class (a classmethod's owner) or module by its name."""
    if isinstance(owner, (type, types.ModuleType)):
        return getattr(owner, "__qualname__", owner.__name__)
    state = getattr(owner, "__dict__", None)
    if state is None:
        raise TypeError(
            f"cannot key the cache on the state of the {type(owner).__name__} instance the "
            f"generator {name} belongs to (it has no __dict__); pass a plain function, or "
            f"functools.partial of one, with its values as arguments."
        )
    out = {}
    for attr, value in sorted(state.items()):
        try:
            out[attr] = _canonical(attr, value)
        except TypeError:
            raise TypeError(
                f"cannot key the cache on attribute `{attr}` ({type(value).__name__}) of the "
                f"{type(owner).__name__} instance the generator {name} belongs to; pass it as an "
                f"argument of the generator (None, bool, int, float, str, tuples/lists of "
                f"those, or arrays) so that it is part of the key."
            ) from None
    return out


def _generator_identity(generator: Any) -> tuple[str, str, Any]:
    """``(module, qualified name, identity)`` of a generator for the cache key. A plain
    function is keyed by :func:`_function_identity`; a ``functools.partial`` by its function
    and the arguments it holds; a bound method and a callable instance by their function and
    the state of their object (:func:`_instance_state`): that state changes the numbers as
    much as an argument does, so data drawn with other values are never read back."""
    if isinstance(generator, functools.partial):
        module, qualname, inner = _generator_identity(generator.func)
        held = {
            "args": [
                _canonical(f"{qualname} argument {i}", a) for i, a in enumerate(generator.args)
            ],
            "keywords": {k: _canonical(k, v) for k, v in sorted(generator.keywords.items())},
        }
        return module, qualname, {"partial": inner, **held}
    if inspect.ismethod(generator):
        fn = generator.__func__
        qualname = f"{fn.__module__}.{fn.__qualname__}"
        state = _instance_state(generator.__self__, qualname)
        return fn.__module__, fn.__qualname__, {"method": _function_identity(fn), "self": state}
    if isinstance(generator, type) or hasattr(inspect.unwrap(generator), "__code__"):
        return generator.__module__, generator.__qualname__, _function_identity(generator)
    if isinstance(generator, types.BuiltinFunctionType):  # C code: no state, no bytecode
        return generator.__module__ or "", generator.__qualname__, None
    cls = type(generator)
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    state = _instance_state(generator, qualname)
    call = cls.__call__
    return cls.__module__, cls.__qualname__, {"call": _function_identity(call), "self": state}


def _jax_config() -> dict[str, Any]:
    """What the generated numbers depend on besides the arguments: ``split(key, N)[i]`` (the
    key of sample i) changes with ``jax_threefry_partitionable``, default integer and float
    widths with ``jax_enable_x64``, and either may change between JAX releases; the platform
    (``"cpu"``, ``"gpu"``, ``"tpu"``) because its matmuls (TF32 on GPU) and FFTs round
    differently, and a thresholded field (Darcy's coefficient) can flip nodes with them; for
    the same reason the compiler flags in ``XLA_FLAGS`` (an optimisation level or emitter
    changes the rounding: Burgers inputs by up to 3.6e-7), all but the host device count, which
    leaves the numbers alone. Without flags the key is what it was before they joined it."""
    config = {
        "jax": ".".join(jax.__version__.split(".")[:2]),
        "platform": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
    }
    flags = sorted(
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    )
    if flags:
        config["xla_flags"] = flags
    return config


def default_cache_dir() -> Path:
    """``$SPECTRAX_CACHE`` if set, else ``~/.cache/spectrax``."""
    env = os.environ.get("SPECTRAX_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "spectrax"


def _canonical(name: str, value: Any) -> Any:
    """A JSON-able, deterministic form of a parameter (arrays by content hash). Each kind of
    value has a form of its own: a float is ``{"float": repr}`` (its bare repr was the string
    ``"1.5"``'s key too), and a NumPy number names its dtype (``np.float32(1.5)`` is a strongly
    typed float32 to JAX, a Python ``1.5`` a weak type that takes the other operand's dtype, so a
    generator may return other data for each; they shared one key)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):  # what the generators' bool checks accept
        return bool(value)
    if isinstance(value, np.integer):
        return {"numpy": str(value.dtype), "value": int(value)}
    if isinstance(value, np.floating):
        return {"numpy": str(value.dtype), "value": repr(float(value))}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return {"float": repr(float(value))}
    if isinstance(value, (tuple, list)):
        return [_canonical(name, v) for v in value]
    if isinstance(value, (np.dtype, type)):
        try:  # a dtype argument (jnp.float32, np.dtype("float64"), ...)
            dtype = np.dtype(value)
        except TypeError:
            dtype = None
        # NumPy maps any other class (dict, a user's class) to the object dtype: not a key
        if dtype is not None and (dtype != np.dtype(object) or value in (object, np.object_)):
            return {"dtype": str(dtype)}
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return {"prng_key": _key_data(value)}  # e.g. a key held by a functools.partial
    if isinstance(value, (np.ndarray, jax.Array)):
        arr = np.asarray(value)
        return {
            "dtype": str(arr.dtype),
            "shape": list(arr.shape),
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
        }
    raise TypeError(
        f"cannot key the cache on `{name}` of type {type(value).__name__}; expected None, bool, "
        f"int, float, str, tuples/lists of those, or arrays."
    )


def _key_data(key) -> list[Any]:
    key = jax.numpy.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        data = np.asarray(jax.random.key_data(key))
    else:
        # a raw uint32 key means whatever jax_default_prng_impl says: rbg and unsafe_rbg keys
        # are both (4,) uint32 words whose split and fold_in differ
        impl = f"raw:{jax.config.jax_default_prng_impl}"
        data = np.asarray(key)
    return [impl, data.dtype.str, data.ravel().tolist()]


def cache_path(
    generator: Callable[..., Any],
    key,
    *args: Any,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Path:
    """The file :func:`cached` reads or writes for these arguments (nothing is computed).

    The name also depends on the JAX major.minor version, the default backend's platform
    (``jax.default_backend()``: data drawn on a GPU are not read back on a CPU), on the
    ``jax_enable_x64`` and
    ``jax_threefry_partitionable`` flags in effect (and, for a raw ``uint32`` key, on
    ``jax_default_prng_impl``, which says how it is split), on the source code of the generator's
    module and of the whole ``spectrax.data`` package (which a user's generator may wrap), its
    bytecode and the values its closure captured, so data drawn under another configuration
    or by other code (another lambda, a function redefined in a notebook, a closure over
    another value) are never read back."""
    if not callable(generator):
        raise TypeError(
            "`generator` must be a dataset function called as generator(key, *args, **kwargs), "
            f"e.g. burgers_dataset; got {_describe(generator)}."
        )
    check_key("key", key)
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            "`cache_dir` must be a directory path (str or os.PathLike), or None for "
            f"default_cache_dir(); got {_describe(cache_dir)}."
        )
    module, qualname, identity = _generator_identity(generator)
    name = f"{module}.{qualname}"
    try:
        bound = inspect.signature(generator).bind(key, *args, **kwargs)
    except TypeError as err:
        raise TypeError(f"arguments do not match {name}: {err}") from None
    # Defaults are part of the key: the same call hashes the same however it is spelled, and
    # a changed default does not reuse stale data.
    bound.apply_defaults()
    params = dict(bound.arguments)
    params.pop(next(iter(params)))
    # a generator's **kwargs bind as one dict: each keyword is keyed by its own name (they
    # cannot repeat a named parameter's)
    for p in inspect.signature(generator).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            params.update(params.pop(p.name, {}))
    spec = {
        "version": CACHE_VERSION,
        "jax_config": _jax_config(),
        "generator": name,
        "source": _source_digest(module),
        "function": identity,
        "key": _key_data(key),
        "params": {k: _canonical(k, v) for k, v in sorted(params.items())},
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return root / f"{qualname.rsplit('.', 1)[-1]}-{digest}.npz"


def _write(fh, arrays: tuple[np.ndarray, ...]) -> None:
    """``arrays`` as ``arr_0, arr_1, ...`` plus their dtype names: the .npy format stores
    bfloat16 and the other ml_dtypes types as raw void bytes (``|V2``), so those are written as
    unsigned integers of the same width and viewed back by name in :func:`_read`."""
    stored, names = [], []
    for a in arrays:
        if np.dtype(a.dtype.str) == a.dtype:  # NumPy's own, by exact spec ('<U3', '<M8[D]')
            stored.append(a)
            names.append(a.dtype.str)
        else:  # an ml_dtypes type, by name ('bfloat16'), its bytes as unsigned integers
            stored.append(a.view(np.dtype(f"u{a.dtype.itemsize}")))
            names.append(a.dtype.name)
    np.savez(fh, *stored, dtypes=np.array(names))


def _read(path: Path) -> tuple[np.ndarray, ...]:
    """The arrays :func:`_write` stored, each in its own dtype; raises if the file is not one
    (unreadable, truncated, or without the dtype record)."""
    with np.load(path) as data:
        names = [str(n) for n in data["dtypes"]]
        out = []
        for i, name in enumerate(names):
            arr = data[f"arr_{i}"]
            try:
                dtype = np.dtype(name)
            except TypeError:  # an ml_dtypes type, known to JAX by name
                dtype = jax.numpy.dtype(name)
            out.append(arr if arr.dtype == dtype else arr.view(dtype))
        if len(data.files) != len(names) + 1:
            raise ValueError(f"{len(data.files) - 1} arrays stored, {len(names)} dtypes")
    return tuple(out)


def cached(
    generator: Callable[..., tuple[jax.Array, ...]],
    key,
    *args: Any,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, ...]:
    """``generator(key, *args, **kwargs)``, computed once and then read from disk.

    The file is named by a hash of the generator's qualified name and source, the key's data,
    all its parameters (defaults included), a cache version and the JAX configuration (see
    :func:`cache_path`), under ``cache_dir`` (default
    :func:`default_cache_dir`: ``$SPECTRAX_CACHE`` or ``~/.cache/spectrax``). It is written
    to a temporary file in the same directory and moved into place with ``os.replace``, so an
    interrupted run never leaves a partial file under the final name and concurrent writers
    race harmlessly. A directory that cannot be written (read-only, full) gives a
    ``RuntimeWarning`` and the generated data, uncached.

    Args:
        generator: a dataset function returning a tuple of arrays, e.g.
            :func:`burgers_dataset`; its parameters must be plain Python values or arrays. A
            ``functools.partial``, a bound method or a callable instance is keyed by the values
            it holds (the partial's arguments, the instance's attributes), which must be of
            those kinds too.
        key: the PRNG key passed to ``generator``.
        *args, **kwargs: passed to ``generator`` and hashed into the file name.
        cache_dir: directory override.

    Returns:
        The generator's arrays as a tuple of NumPy arrays (what was stored; a generator that
        returns one array gives a 1-tuple).

    Example:
        >>> a, u = cached(burgers_dataset, jax.random.key(0), 1000, 1024)  # doctest: +SKIP
    """
    path = cache_path(generator, key, *args, cache_dir=cache_dir, **kwargs)
    if path.exists():
        try:
            return _read(path)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            logger.warning("ignoring unreadable cache file %s (%s); regenerating", path, err)
    out = generator(key, *args, **kwargs)
    if not isinstance(out, (tuple, np.ndarray, jax.Array)):
        # a list of arrays was stacked into one array, a dict stored as an object array that
        # could never be read back
        raise TypeError(
            f"`generator` {path.name.rsplit('-', 1)[0]} must return an array or a tuple of "
            f"arrays; got {_describe(out)}."
        )
    # np.array copies: a view of a JAX array is read-only, while what a hit reads is writable
    arrays = tuple(np.array(x) for x in (out if isinstance(out, tuple) else (out,)))
    try:
        _store(path, arrays)
    except OSError as err:
        # The data are computed (possibly hours of work) and correct: hand them back.
        warnings.warn(
            f"could not write the cache file {path} ({err}); returning the data uncached. Point "
            f"`cache_dir` or $SPECTRAX_CACHE at a writable directory with free space.",
            RuntimeWarning,
            stacklevel=2,
        )
        return arrays
    logger.info("cached %s to %s", path.name.rsplit("-", 1)[0], path)
    return arrays


def _store(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    """Write ``arrays`` to ``path`` atomically: a temporary file in the same directory, synced,
    then renamed; on any failure the temporary file is removed. Temporary files that a killed
    writer left in the directory are removed first (:func:`_remove_stale_temps`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            _write(fh, arrays)
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_temps(directory: Path) -> None:
    """Delete the temporary files of :func:`_store` in ``directory`` (by name, ``_TEMP_NAME``)
    last modified over ``_STALE_SECONDS`` ago: a writer killed mid-write (SIGKILL, power loss)
    cannot remove its own. Best effort: a file that another process removes first, or that
    cannot be removed, is left alone."""
    cutoff = time.time() - _STALE_SECONDS
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                logger.info("removed the stale temporary cache file %s", entry.path)
        except OSError:
            continue
