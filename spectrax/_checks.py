"""Input validation shared by every layer.

Errors name the argument, what it got and what it expected."""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
import weakref
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np


def _describe(value: Any) -> str:
    """``type repr`` of a bad argument for an error message, the repr cut short."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def _array_dtype(
    name: str, x: Any, kind: Any, kind_words: str, what: str, scalar_ok: bool
) -> np.dtype:
    """The dtype of ``x`` if it is an array (``jax.Array``, tracers included, or NumPy) of
    ``kind``, else a TypeError naming ``name``: a list, a string or ``None`` would otherwise fail
    in ``jnp.result_type`` or at the first ``.shape`` with a message that names nothing."""
    is_array = isinstance(x, (jax.Array, np.ndarray, np.generic)) or hasattr(x, "__jax_array__")
    is_scalar = isinstance(x, (int, float, complex)) and not isinstance(x, bool)
    if not (is_array or (scalar_ok and is_scalar)):
        accepted = (
            "a jax.Array, NumPy array or Python float"
            if scalar_ok
            else "a jax.Array or NumPy array"
        )
        raise TypeError(
            f"`{name}` must be {accepted} with a {kind_words} dtype; got "
            f"{_describe(x)}. Convert it first, e.g. `jnp.asarray({name}, jnp.float32)`."
        )
    dtype = getattr(x, "dtype", None)
    if dtype is None or jnp.issubdtype(dtype, np.number):
        dtype = jnp.result_type(x)  # canonical: a NumPy float64 is float32 without x64
    if not jnp.issubdtype(dtype, kind):
        raise TypeError(
            f"`{name}` must be a {what}; got dtype {dtype}. Cast it first, e.g. "
            f"`{name}.astype(jnp.float32)`."
        )
    return jnp.dtype(dtype)


def check_real_float(name: str, x: Any, *, scalar_ok: bool = False) -> None:
    """Raise TypeError unless ``x`` is a real floating-point array (``jax.Array``, a tracer, or
    NumPy; with ``scalar_ok`` also a Python float). The error names ``name``, what it got and
    what was expected."""
    what = "real floating-point array (float16, bfloat16, float32 or float64)"
    _array_dtype(name, x, jnp.floating, "real floating-point", what, scalar_ok)


def check_inexact(name: str, x: Any) -> np.dtype:
    """The (canonical) dtype of ``x`` if it is a real or complex floating-point array, else a
    TypeError naming ``name`` (as :func:`check_real_float`)."""
    what = "floating-point or complex array"
    return _array_dtype(name, x, jnp.inexact, "floating-point or complex", what, False)


def check_array(name: str, x: Any) -> None:
    """Raise TypeError unless ``x`` is an array (``jax.Array``, a tracer, or NumPy) of any dtype
    (the caller checks the dtype, e.g. after promotion with the other inputs): a list failed at
    ``.ndim`` or ``.shape`` with an AttributeError that names nothing."""
    _array_dtype(name, x, np.generic, "numeric", "array", False)


def check_not_bool(name: str, x: Any) -> None:
    """Raise TypeError if ``x`` is a boolean array: where integers are taken as numbers, a
    boolean one read True as 1 silently (an eigenvalue of +1, say)."""
    if jnp.result_type(x) == jnp.bool_:
        raise TypeError(
            f"`{name}` must be a numeric (floating-point or complex) array; got dtype bool."
        )


def check_bool(name: str, value: Any, why: str = "") -> bool:
    """``value`` as a bool if it is a Python or NumPy bool, else a TypeError naming ``name``:
    ``bool()`` would take ``"False"`` as True and a JAX array only outside ``jit``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a Python bool{why}; got {_describe(value)}.")
    return bool(value)


def compute_dtype(*dtypes: Any) -> np.dtype:
    """float64 if any input is float64 as JAX computes it, else float32 (half precision computes
    in float32). A NumPy float64 input without ``jax_enable_x64`` is float32 in JAX: taking its
    raw dtype asked for float64 and drew JAX's "not available" truncation warning."""
    for d in dtypes:
        if _is_float64(d):
            return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def result_dtype(*dtypes: Any) -> np.dtype:
    """What JAX's standard promotion gives for these dtypes, also when the process runs with
    ``jax_numpy_dtype_promotion="strict"`` (explicit: float32 with float64 gives float64,
    bfloat16 with float16 gives float32)."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.dtype(jnp.result_type(*dtypes))


def _is_float64(dtype: Any) -> bool:
    """Whether ``dtype`` is float64 as JAX computes it: a NumPy float64 input without
    ``jax_enable_x64`` is float32 in JAX (widening a module to float64 for it only warned
    "Explicitly requested dtype float64 ... not available", once per parameter)."""
    return jax.dtypes.canonicalize_dtype(dtype) == jnp.float64


def as_jax(x: Any) -> Any:
    """``x`` as JAX computes it: a NumPy array (or scalar) becomes a JAX array, so its dtype is
    canonical (a NumPy float64 array without ``jax_enable_x64`` is float32); anything else is
    returned as it is. Call after validation, before reading ``x.dtype``: a raw float64 dtype
    asks float64 of every cast and JAX truncates each with a warning."""
    return jnp.asarray(x) if isinstance(x, (np.ndarray, np.generic)) else x


def module_compute_dtype(x_dtype: Any, param_dtype: Any) -> np.dtype:
    """The dtype a module with ``param_dtype`` parameters computes an input in: its parameters'
    (a half-precision policy stays half precision), or float64 when the input is float64 (a
    float64 input is never narrowed silently; the parameters are widened for the call)."""
    if _is_float64(x_dtype):
        return jnp.dtype(jnp.float64)
    # NumPy float64 parameters without x64 compute in JAX's float32 (no truncation warning)
    return jax.dtypes.canonicalize_dtype(param_dtype)


def check_float_dtype(name: str, dtype: Any, *, x64: bool = True) -> np.dtype:
    """``dtype`` as a NumPy dtype if it is a real floating-point type, else a TypeError naming
    ``name`` (a module's parameter ``dtype``: an integer or complex one would fail later, inside
    ``jax.random``, with a message that does not name the argument). With ``x64`` (default) it
    must also be one JAX can produce now (:func:`check_x64_dtype`): float64 outside 64-bit mode
    built float32 arrays with only JAX's truncation warnings; ``x64=False`` for a caller that
    computes a float64 request in NumPy."""
    try:
        d = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a real floating-point type (e.g. jnp.float32); got {dtype!r}."
        ) from None
    if not jnp.issubdtype(d, jnp.floating):
        raise TypeError(f"`{name}` must be a real floating-point type (e.g. jnp.float32); got {d}.")
    return check_x64_dtype(name, d) if x64 else d


def check_x64_dtype(name: str, dtype: Any) -> np.dtype:
    """``dtype`` if JAX can produce it in the current mode, else a TypeError naming ``name``:
    float64 (or int64, complex128) outside 64-bit mode would be narrowed to 32 bits with only a
    warning."""
    d = jnp.dtype(dtype)
    if jax.dtypes.canonicalize_dtype(d) != d:
        raise TypeError(f"`{name}`={d} needs 64-bit mode: wrap the call in jax.enable_x64(True).")
    return d


def widen_to_input(module: Any, x_dtype: Any) -> Any:
    """``module`` with its floating-point arrays widened to float64 when the input is float64,
    else ``module`` itself: the :func:`module_compute_dtype` rule for a module that computes in
    its parameters' dtype (widening is differentiable, so gradients reach the stored
    parameters in their own dtype)."""
    if not _is_float64(x_dtype):
        return module

    def widen(leaf: Any) -> Any:
        if isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(jnp.float64)
        return leaf

    return jax.tree.map(widen, module)


def check_grid_shape(name: str, value: Any, ndim: int, hint: str = "") -> tuple[int, ...]:
    """``value`` as ``ndim`` positive ints (a grid shape), or a ValueError naming ``name``
    (``hint`` is added to the length message, e.g. the input grid it must match)."""
    try:
        shape = tuple(value)
    except TypeError:
        raise ValueError(f"`{name}` must be a sequence of {ndim} ints; got {value!r}.") from None
    if len(shape) != ndim:
        raise ValueError(
            f"`{name}` must have one entry per spatial axis ({ndim}{hint}); got {shape}."
        )
    return tuple(check_positive_int(f"{name}[{i}]", n) for i, n in enumerate(shape))


def complex_dtype(real_dtype: Any) -> np.dtype:
    return jnp.dtype(jnp.complex128 if jnp.dtype(real_dtype) == jnp.float64 else jnp.complex64)


def broadcast_leading(name_a: str, a: Sequence[int], name_b: str, b: Sequence[int]) -> tuple:
    """Broadcast two leading-dimension tuples or raise a ValueError naming both arguments."""
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise ValueError(
            f"leading dimensions of `{name_a}` {tuple(a)} and `{name_b}` {tuple(b)} do not "
            f"broadcast; expected NumPy-broadcastable shapes, e.g. {name_a} (B, H, L) with "
            f"{name_b} (H, K)."
        ) from None


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``int(value)`` for an integer >= ``minimum`` (Python, NumPy, or a concrete 0-d JAX
    integer array), else a ValueError naming ``name``; a traced value is refused saying why (a
    size or count is fixed when a function is traced)."""
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum} known when the computation is traced (a "
            f"size or count); got a traced value {value!r}. An array passed through jax.jit or a "
            "compiled model call is traced: pass Python ints, e.g. int(n)."
        )
    if isinstance(value, jax.Array) and value.ndim == 0 and jnp.issubdtype(value.dtype, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def lift_rank(x, ndim: int):
    """Prepend size-1 axes so ``x`` has ``ndim`` axes (explicit broadcasting under
    ``jax_numpy_rank_promotion="raise"``)."""
    return x.reshape((1,) * (ndim - x.ndim) + tuple(x.shape)) if x.ndim < ndim else x


def show_number(value: Any) -> str:
    """``repr(value)`` for an error message, but a Python int too long to read (10**400: beyond
    float's range) as its digit count."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"an int of {len(str(abs(value)))} digits"
    return repr(value)


def check_positive_float(name: str, value) -> float:
    """``float(value)`` for a finite real number > 0; TypeError or ValueError naming ``name``
    otherwise (NaN and inf are refused: no caller has a use for them, and they surface later as
    NaN output or an OverflowError far from the argument). A concrete 0-d real JAX array is
    taken as its value; a traced one is refused (a hyperparameter is fixed, not traced)."""
    if (
        isinstance(value, jax.Array)
        and not isinstance(value, jax.core.Tracer)
        and value.ndim == 0
        and jnp.issubdtype(value.dtype, np.number)
        and not jnp.issubdtype(value.dtype, np.complexfloating)
    ):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        traced = isinstance(value, jax.core.Tracer)
        why = " (a fixed hyperparameter: pass a concrete number, not a traced value)"
        raise TypeError(
            f"`{name}` must be a Python float{why if traced else ''}; got {_describe(value)}."
        )
    try:  # a Python int beyond float's range (10**400) is not a finite float either
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not (value > 0 and finite):
        raise ValueError(f"`{name}` must be a finite number > 0; got {show_number(value)}.")
    return float(value)


def check_finite(name: str, x: Any) -> None:
    """ValueError naming ``name`` and its first NaN or inf entry unless the concrete array ``x``
    is finite; nothing under a trace. A solver's NaN input otherwise came out as a NaN solution
    blamed on its step size."""
    if isinstance(x, jax.core.Tracer) or bool(jnp.all(jnp.isfinite(x))):
        return
    bad = ~np.isfinite(np.asarray(x))
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(
        f"`{name}` must be finite; got {name}{list(where)} = {np.asarray(x)[where]} "
        f"({int(bad.sum())} of {bad.size} entries NaN or inf)."
    )


def raise_if_not_finite(what: str, x: Any, fix: str) -> None:
    """RuntimeError if the concrete array ``x`` (a solver's output) holds NaN or inf, saying how
    many of its leading-axis rows do and ``fix``; nothing under a trace, where no value exists.
    A solver that blows up on its parameters must not hand NaN data on (to a disk cache, a
    training run that then skips every step as if the model had diverged)."""
    if isinstance(x, jax.core.Tracer) or bool(jnp.all(jnp.isfinite(x))):
        return
    rows = np.asarray(~jnp.all(jnp.isfinite(x.reshape((x.shape[0], -1))), axis=-1))
    raise RuntimeError(
        f"{what}: {int(rows.sum())} of {rows.size} hold NaN or inf (first: index "
        f"{int(np.argmax(rows))}). {fix}"
    )


def check_key(name: str, key: Any) -> None:
    """Raise unless ``key`` is one PRNG key: a typed key array of shape ``()``
    (``jax.random.key``) or a raw ``uint32`` key of shape ``(k,)`` (``jax.random.PRNGKey``),
    tracers included. A TypeError or ValueError names ``name``: an int seed failed in JAX with
    "invalid PRNG key data ... Got 0" and a batch of keys with "normal accepts a single key",
    naming no argument."""
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(
            f"`{name}` must be a PRNG key, e.g. `jax.random.key(0)`; got {_describe(key)}."
        )
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"`{name}` must be a single PRNG key (shape ()); got a key array of shape "
                f"{key.shape}. For a batch, jax.vmap over the keys."
            )
        return
    if key.dtype != np.uint32:
        raise TypeError(
            f"`{name}` must be a PRNG key, e.g. `jax.random.key(0)`; got an array of dtype "
            f"{key.dtype} and shape {key.shape}."
        )
    if key.ndim != 1:
        raise ValueError(
            f"`{name}` must be a single PRNG key; got raw uint32 key data of shape {key.shape} "
            "(one key is (2,) for jax.random.PRNGKey). For a batch, jax.vmap over the keys."
        )


def check_parameters(*modules: Any) -> None:
    """Raise ValueError unless every array field of each module, and of every spectrax layer
    inside it, still fits its jaxtyping annotation, with the dimension names bound
    consistently across the fields of one module in declaration order (``H`` is one size in
    ``D: " H"`` and ``B: "H M 2"``); for Equinox's own ``eqx.nn.Linear`` and
    ``eqx.nn.LayerNorm`` (no shape annotations), the shapes their static fields give. The
    error names the field by its path from the module checked
    (``SSMSequenceModel.blocks[1].ssm.D``). A module of the user's own inside it is left to
    its own call.

    A layer's constructor sets its parameters' shapes; a parameter swapped in later with
    ``eqx.tree_at`` (or taken from another layer) skips it. A wrong shape that broadcasts (a
    bias of shape ``(1,)``, a scalar skip weight) gave a silently different layer, others a
    bare IndexError or a shape error inside JAX. Called by every layer's forward pass: at trace
    time under ``jax.jit`` and in the models' compiled calls, on each eager call of the other
    layers (about 100 us for a module with a new set of field shapes and dtypes, a few us for
    one of known shapes, under 1 us for the same object again: a module that passed is
    remembered, so one changed in place with ``object.__setattr__`` after its first call, or
    a NumPy parameter reshaped in place, is not checked again outside a trace).

    The sizes are checked against each other and, for a layer whose class lists them in
    ``parameter_dims`` (``{"H": "channels", "M": lambda layer: layer.state_size // 2}``),
    against its configuration first; not inside ``jax.shard_map``, where a layer may run on
    its shard of the parameters. Elements of a tuple field are checked in turn, each named;
    dimension names starting with ``_`` (a factor's size, which differs per element) are not
    bound."""
    manual = bool(getattr(jax.sharding.get_abstract_mesh(), "manual_axes", ()))
    for module in modules:
        ref = _PASSED.get(id(module))
        if not manual and ref is not None and ref() is module:
            continue  # this very module passed before (modules are immutable)
        for sub, path in _modules_in(module, type(module).__name__, root=True):
            _check_any(sub, path)
        if not manual:
            _remember_passed(module)


# id -> weak reference of a module that passed (with its sizes bound to its configuration,
# so not one checked inside shard_map): an eager call of the same layer checks nothing again
# (the walk over an FNO's 33 modules took about 250 us)
_PASSED: dict[int, weakref.ref] = {}


def _remember_passed(module: Any) -> None:
    key = id(module)

    def forget(ref: weakref.ref, key: int = key) -> None:
        if _PASSED.get(key) is ref:
            _PASSED.pop(key, None)

    try:
        ref = weakref.ref(module, forget)
    except TypeError:  # not weakly referenceable: checked on every call
        return
    if len(_PASSED) >= 4096:
        _PASSED.clear()
    _PASSED[key] = ref


def _modules_in(value: Any, path: str, root: bool = False) -> list[tuple[Any, str]]:
    """``(module, path)`` of ``value`` and every spectrax or ``eqx.nn`` layer inside it,
    through non-static fields, tuples, lists and dicts, in field order (the path as
    ``jax.tree_util.keystr`` writes it after the root's class name). A module of the user's
    own is not entered: it may hold layers at other shapes (stacked by ``eqx.filter_vmap``
    for a ``lax.scan`` over them), and its own call is the judge of them."""
    if isinstance(value, eqx.Module):
        if not (root or _is_checked_inside(type(value))):
            return []
        found = [(value, path)]
        for name in _child_fields(type(value)):
            child = getattr(value, name, None)
            if isinstance(child, _CONTAINERS):
                found += _modules_in(child, f"{path}.{name}")
        return found
    if isinstance(value, (tuple, list)):
        names = getattr(type(value), "_fields", None)  # a NamedTuple's, as keystr names them
        return [
            m
            for i, v in enumerate(value)
            if isinstance(v, _CONTAINERS)
            for m in _modules_in(v, f"{path}.{names[i]}" if names else f"{path}[{i}]")
        ]
    if isinstance(value, dict):
        return [m for k, v in value.items() for m in _modules_in(v, f"{path}[{k!r}]")]
    return []


_CONTAINERS = (eqx.Module, tuple, list, dict)


@functools.cache
def _is_checked_inside(cls: type) -> bool:
    """Whether a module of class ``cls`` inside the one checked is checked (and entered):
    spectrax's layers (and subclasses of them) and the Equinox layers they hold."""
    if issubclass(cls, (eqx.nn.Linear, eqx.nn.LayerNorm)):
        return True
    return any(getattr(c, "__module__", "").startswith("spectrax.") for c in cls.__mro__)


@functools.cache
def _child_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get("static", False))


def _check_any(module: Any, label: str) -> None:
    if isinstance(module, (eqx.nn.Linear, eqx.nn.LayerNorm)):
        _check_equinox_layer(module, label)
    else:
        _check_parameters(module, label)


_REPLACED = (
    "A parameter replaced with `eqx.tree_at` must keep the shape the constructor gave it; "
    "build a new layer for other sizes."
)


def _check_equinox_layer(layer: Any, label: str) -> None:
    if isinstance(layer, eqx.nn.Linear):
        out, inp = (() if n == "scalar" else (n,) for n in (layer.out_features, layer.in_features))
        sizes = f"out_features={layer.out_features}, in_features={layer.in_features}"
        expected = {"weight": out + inp, "bias": out if layer.use_bias else None}
    else:
        sizes = f"shape={layer.shape}"
        expected = {
            "weight": layer.shape if layer.use_weight else None,
            "bias": layer.shape if layer.use_bias else None,
        }
    for name, shape in expected.items():
        value = getattr(layer, name)
        got = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        fits = (
            value is None
            if shape is None
            else got is not None and tuple(got) == shape and jnp.issubdtype(dtype, jnp.inexact)
        )
        if not fits:
            want = "None" if shape is None else f"a floating-point array of shape {shape}"
            kind = "" if label == type(layer).__name__ else f" (an eqx.nn.{type(layer).__name__})"
            raise ValueError(
                f"`{label}.{name}`{kind} does not fit the layer: got {_value_words(value)}; "
                f"expected {want} ({sizes}). {_REPLACED}"
            )


def _check_parameters(module: Any, label: str) -> None:
    fields = _parameter_annotations(type(module))
    if not fields:
        return
    bound = _bound_sizes(module)
    # the shapes and dtypes passed before: jaxtyping's check takes about 100 us, an eager
    # recurrent step a few hundred
    signature = (
        type(module),
        tuple(bound.items()),
        *(_signature(getattr(module, name)) for name, _ in fields),
    )
    if signature in _FITTING:
        return
    abstract = lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct)  # noqa: E731
    if any(map(abstract, jax.tree.leaves(module))):
        # an abstract module (eqx.filter_eval_shape of a constructor): jaxtyping checks
        # arrays, so its fields are checked as the tracers of an abstract evaluation
        dynamic, static = eqx.partition(module, abstract)
        jax.eval_shape(
            lambda d: _check_fields(eqx.combine(d, static), label, fields, bound), dynamic
        )
    else:
        _check_fields(module, label, fields, bound)
    if len(_FITTING) >= 4096:
        _FITTING.clear()
    _FITTING.add(signature)


_FITTING: set[tuple] = set()


def _signature(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(map(_signature, value))
    return type(value), getattr(value, "shape", None), getattr(value, "dtype", None)


def _bound_sizes(module: Any) -> dict[str, tuple[str, int]]:
    """``{dimension name: (what gives it, size)}`` from the layer's ``parameter_dims`` (a
    static field's name, or a function of the layer), so a parameter is checked against the
    configuration and not only against the other parameters (a lone per-channel weight has
    none to agree with). Empty inside ``jax.shard_map``: the layer may hold a shard."""
    dims = getattr(type(module), "parameter_dims", {})
    if not dims or getattr(jax.sharding.get_abstract_mesh(), "manual_axes", ()):
        return {}
    return {
        dim: (dim, int(source(module))) if callable(source) else (source, getattr(module, source))
        for dim, source in dims.items()
    }


@functools.cache
def _size_type(dim: str) -> Any:
    return jaxtyping.Shaped[np.ndarray, dim]


def _check_fields(
    module: Any, label: str, fields: tuple[tuple[str, Any], ...], bound: dict
) -> None:
    # a memo of dimension sizes of its own (the context form: the decorator's is switched
    # off with the rest of jaxtyping by JAXTYPING_DISABLE in jaxtyping 0.3.2)
    with jaxtyping.jaxtyped("context"):
        _check_fields_in_memo(module, label, fields, bound)


def _check_fields_in_memo(
    module: Any, label: str, fields: tuple[tuple[str, Any], ...], bound: dict
) -> None:
    for dim, (_, size) in bound.items():  # bind the configured sizes first
        if not isinstance(np.empty((size,), np.int8), _size_type(dim)):
            raise AssertionError(f"{type(module).__name__}.parameter_dims binds {dim} twice")
    checked = [f"{source}={size}" for source, size in bound.values()]
    for name, annotation in fields:
        for where, value, expected in _items(name, getattr(module, name), annotation):
            if not _fits(value, expected):
                before = (
                    f", sized as the layer's configuration and the fields before it give "
                    f"({', '.join(checked)}): this field or one named there was replaced"
                    if checked
                    else ""
                )
                raise ValueError(
                    f"`{label}.{where}` does not fit the layer: got {_value_words(value)}; "
                    f"expected {_annotation_words(expected)}{before}. {_REPLACED}"
                )
            checked.append(f"{where} {_value_words(value)}")


def _items(name: str, value: Any, annotation: Any) -> list[tuple[str, Any, Any]]:
    """``(where, value, annotation)`` to check: a tuple field's elements one by one
    (``weights[1]``), else the field itself."""
    if typing.get_origin(annotation) is tuple and isinstance(value, tuple):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) == len(value):
            pairs = enumerate(zip(value, args, strict=True))
            return [(f"{name}[{i}]", v, a) for i, (v, a) in pairs]
    return [(name, value, annotation)]


def _value_words(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, tuple):
        inner = ", ".join(_value_words(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return _describe(value)
    return f"{jnp.dtype(dtype).name}{list(shape)}"


def _annotation_words(annotation: Any) -> str:
    """``float["H M 2"] | None`` style text of a field's annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_annotation_words(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_annotation_words(args[0])}"
        return "a tuple (" + ", ".join(_annotation_words(a) for a in args) + ")"
    if _is_array_type(annotation):
        kind = getattr(annotation.dtype, "__name__", "Shaped")
        return f"{kind}[Array, {annotation.dim_str!r}]"
    return repr(annotation)


# not given a memo of its own by the test suite's jaxtyping import hook: that would unbind
# the sizes between fields
@typing.no_type_check
def _fits(value: Any, annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        return len(args) == len(value) and all(map(_fits, value, args))
    if _is_array_type(annotation):
        if isinstance(value, (np.ndarray, np.generic)):  # jax.device_get of a layer
            return isinstance(value, _numpy_type(annotation))
        return isinstance(value, annotation)
    return True  # not a parameter annotation (never reached: see _parameter_annotations)


@functools.cache
def _numpy_type(annotation: Any) -> Any:
    """The NumPy twin of a ``Float[jax.Array, "..."]`` annotation: the same dtypes and dims."""
    return annotation.dtype[np.ndarray, annotation.dim_str]


def _is_array_type(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, jaxtyping.AbstractArray)


def _mentions_array_type(annotation: Any) -> bool:
    return _is_array_type(annotation) or any(
        _mentions_array_type(a) for a in typing.get_args(annotation)
    )


@functools.cache
def _parameter_annotations(cls: type) -> tuple[tuple[str, Any], ...]:
    """``(name, annotation)`` of ``cls``'s non-static dataclass fields annotated with jaxtyping
    array types (alone, in a union, or in a tuple), in declaration order."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        # a subclass whose own annotations do not resolve at run time (a name imported under
        # TYPE_CHECKING): the fields of the classes that do
        hints = {}
        for base in reversed(cls.__mro__):
            try:
                hints.update(typing.get_type_hints(base))
            except Exception:
                continue
    return tuple(
        (f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if not f.metadata.get("static", False)
        and f.name in hints
        and _mentions_array_type(hints[f.name])
    )
