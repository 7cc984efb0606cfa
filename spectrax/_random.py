"""Random parameter draws for every module: half precision is drawn in float32 and rounded once.

``jax.random.normal`` / ``uniform`` drawn directly in bfloat16 take only 128 distinct values (the
uniform's 7 mantissa bits; a normal has none beyond 2.89 sigma), float16 1024: a bfloat16
``PointwiseLinear(256, 256)`` had 128 distinct weights among 65536. Drawing in float32 (float64
for float64) and rounding once gives every value the parameter dtype can hold, and leaves
float32/float64 draws bit-identical to ``jax.random`` in that dtype (existing seeds and
checkpoints reproduce).

Every draw is made flat, ``(prod(shape),)``, and reshaped: the same bits (JAX's counter-based
PRNGs number the elements in row-major order), but XLA compiles a multi-dimensional draw far
more slowly (it constant-folds the key-independent counter arithmetic over the whole shape): a
``(2, 32, 32, 24, 13)`` normal took 2.4-6 s to compile on a 2-core CPU, the flat one 0.26 s.
Draw, scale and rounding are one jitted program per shape and dtype (eagerly, each op compiled
on its own; ``std`` and the bounds are traced, so they share it): the same operations in the same
order, and the same bits as the eager ops (checked for float32, bfloat16 and float64).

A module that makes several draws makes them in one jitted program (eagerly every split, draw and
slice is its own XLA compilation: 11 for a Siren) and as few draws as it can: compiling dominates
construction on a CPU, and every draw in a program is its own copy of the Threefry hash to
compile, so one program with many draws is no faster than many programs (Siren(2, 64, 1, 3): 2.1
s, against 1.5 s eagerly, on a loaded 2-core CPU). :func:`normals` and :func:`uniforms` make the
draws of one kind a single draw (keys batched by ``jax.vmap``, each a prefix of the longest: the
same bits) and :func:`from_params` builds a sub-module around arrays drawn so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from spectrax._checks import compute_dtype

T = TypeVar("T")


@functools.partial(jax.jit, static_argnames=("shape", "dtype"))
def _normal(key, std, *, shape: tuple[int, ...], dtype: Any) -> Array:
    draw = jax.random.normal(key, (math.prod(shape),), compute_dtype(dtype)).reshape(shape)
    # the barrier keeps XLA from folding `std` into the draw's own scaling (sqrt(2) erfinv(u)),
    # which changed the last bit of about half the values against the eager ops
    return (std * jax.lax.optimization_barrier(draw)).astype(dtype)


@functools.partial(jax.jit, static_argnames=("shape", "dtype"))
def _uniform(key, minval, maxval, *, shape: tuple[int, ...], dtype: Any) -> Array:
    draw = jax.random.uniform(key, (math.prod(shape),), compute_dtype(dtype), minval, maxval)
    return draw.reshape(shape).astype(dtype)


def _batchable(keys: Sequence[PRNGKeyArray]) -> bool:
    """Whether Threefry's bits for element ``i`` of a draw depend on the key and ``i`` only (its
    partitionable mode, JAX's default), so that a longer draw starts with the shorter one."""
    if not jax.config.jax_threefry_partitionable:
        return False
    impls = {
        str(jax.random.key_impl(k))
        if jax.dtypes.issubdtype(k.dtype, jax.dtypes.prng_key)
        else jax.config.jax_default_prng_impl
        for k in keys
    }
    return impls == {"threefry2x32"}


def _batched(draw, keys, shapes, dtype, *params) -> list[Array]:
    """``draw(key, *params, shape=(n,), dtype=dtype)`` for every key, as one ``jax.vmap``-ed draw
    of the longest size, each cut to its own size and reshaped."""
    shapes = [tuple(int(n) for n in shape) for shape in shapes]
    sizes = [math.prod(shape) for shape in shapes]
    if not _batchable(keys):
        return [
            draw(k, *p, shape=s, dtype=dtype)
            for k, s, *p in zip(keys, shapes, *params, strict=True)
        ]
    longest = max(sizes)
    # the scales and bounds in the draw's precision, as a Python float meets a float32 draw
    rows = jax.vmap(lambda k, *p: draw(k, *p, shape=(longest,), dtype=dtype))(
        jnp.stack(list(keys)), *(jnp.asarray(p, compute_dtype(dtype)) for p in params)
    )
    return [row[:n].reshape(shape) for row, n, shape in zip(rows, sizes, shapes, strict=True)]


def normals(
    keys: Sequence[PRNGKeyArray],
    shapes: Sequence[Sequence[int]],
    dtype: Any,
    stds: Sequence[float | Array],
) -> list[Array]:
    """``[normal(k, shape, dtype, std) ...]`` bit for bit, drawn as one: Threefry in its
    partitionable mode (JAX's default) numbers the elements, so a draw is the start of a longer
    one from the same key, and the keys are batched with ``jax.vmap``. Every draw is then one
    copy of the hash in the compiled program instead of one each (other PRNGs: one by one)."""
    return _batched(_normal, keys, shapes, dtype, stds)


def uniforms(
    keys: Sequence[PRNGKeyArray],
    shapes: Sequence[Sequence[int]],
    dtype: Any,
    bounds: Sequence[tuple[float | Array, float | Array]],
) -> list[Array]:
    """``[uniform(k, shape, dtype, lo, hi) ...]`` bit for bit, drawn as one (see
    :func:`normals`)."""
    return _batched(_uniform, keys, shapes, dtype, [b[0] for b in bounds], [b[1] for b in bounds])


@functools.partial(jax.jit, static_argnames=("shapes", "dtype"))
def _split_normals(key, stds, *, shapes, dtype) -> list[Array]:
    return normals(list(jax.random.split(key, len(shapes))), shapes, dtype, list(stds))


def split_normals(
    key: PRNGKeyArray, shapes: Sequence[Sequence[int]], dtype: Any, stds: Sequence[float]
) -> list[Array]:
    """``normal(k, shape, dtype, std)`` for the keys ``k`` of ``jax.random.split(key,
    len(shapes))`` in order, as one jitted program per shapes and dtype and one draw (eagerly
    the split and every draw compiled on its own); the same bits."""
    shapes = tuple(tuple(int(n) for n in shape) for shape in shapes)
    return _split_normals(key, tuple(float(s) for s in stds), shapes=shapes, dtype=dtype)


def normal(key: PRNGKeyArray, shape: Sequence[int], dtype: Any, std: float = 1.0) -> Array:
    """``std * N(0, 1)`` of ``shape`` in ``dtype`` (real floating), drawn in float32 (float64)
    and rounded once."""
    return _normal(key, std, shape=tuple(int(n) for n in shape), dtype=dtype)


def uniform(
    key: PRNGKeyArray, shape: Sequence[int], dtype: Any, minval: float, maxval: float
) -> Array:
    """``U(minval, maxval)`` of ``shape`` in ``dtype`` (real floating), drawn in float32
    (float64) and rounded once (a half-precision result can equal ``maxval``)."""
    return _uniform(key, minval, maxval, shape=tuple(int(n) for n in shape), dtype=dtype)


@functools.partial(jax.jit, static_argnames=("in_features", "out_features", "dtype"))
def _linear_params(key, *, in_features: int, out_features: int, dtype: Any) -> list[Array]:
    # eqx.nn.Linear's split and bounds; one program and one draw (eagerly: 4 compilations)
    lim = 1 / math.sqrt(in_features)
    shapes = [(out_features, in_features), (out_features,)]
    return uniforms(list(jax.random.split(key, 2)), shapes, dtype, [(-lim, lim)] * 2)


def linear(in_features: int, out_features: int, *, dtype: Any, key: PRNGKeyArray) -> eqx.nn.Linear:
    """``eqx.nn.Linear(in_features, out_features)`` with ``dtype`` parameters drawn in float32
    (float64) and rounded once (Equinox draws a half-precision Linear in that dtype directly);
    in float32/float64 Equinox's own parameters, bit for bit."""
    in_features, out_features = int(in_features), int(out_features)
    params = _linear_params(key, in_features=in_features, out_features=out_features, dtype=dtype)
    build = functools.partial(
        eqx.nn.Linear, in_features, out_features, dtype=compute_dtype(dtype), key=key
    )
    return from_params(build, lambda m: (m.weight, m.bias), tuple(params))


def from_params(build: Callable[[], T], where: Callable[[T], Any], params: Any) -> T:
    """The module ``build()`` returns, with the arrays ``where`` picks replaced by ``params``:
    built abstractly (``eqx.filter_eval_shape``: nothing drawn, nothing compiled), so a module
    whose arrays were drawn together with others' costs no draw of its own."""
    return eqx.tree_at(where, eqx.filter_eval_shape(build), params)
