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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray

from spectrax._checks import compute_dtype


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


def linear(in_features: int, out_features: int, *, dtype: Any, key: PRNGKeyArray) -> eqx.nn.Linear:
    """``eqx.nn.Linear(in_features, out_features)`` with ``dtype`` parameters drawn in float32
    (float64) and rounded once (Equinox draws a half-precision Linear in that dtype directly)."""
    lin = eqx.nn.Linear(in_features, out_features, dtype=compute_dtype(dtype), key=key)
    rounded = (lin.weight.astype(dtype), lin.bias.astype(dtype))
    return eqx.tree_at(lambda m: (m.weight, m.bias), lin, rounded)
