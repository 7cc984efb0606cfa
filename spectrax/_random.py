"""Random parameter draws for every module: half precision is drawn in float32 and rounded once.

``jax.random.normal`` / ``uniform`` drawn directly in bfloat16 take only 128 distinct values (the
uniform's 7 mantissa bits; a normal has none beyond 2.89 sigma), float16 1024: a bfloat16
``PointwiseLinear(256, 256)`` had 128 distinct weights among 65536. Drawing in float32 (float64
for float64) and rounding once gives every value the parameter dtype can hold, and leaves
float32/float64 draws bit-identical to ``jax.random`` in that dtype (existing seeds and
checkpoints reproduce).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray

from spectrax._checks import compute_dtype


def normal(key: PRNGKeyArray, shape: Sequence[int], dtype: Any, std: float = 1.0) -> Array:
    """``std * N(0, 1)`` of ``shape`` in ``dtype`` (real floating), drawn in float32 (float64)
    and rounded once."""
    return (std * jax.random.normal(key, tuple(shape), compute_dtype(dtype))).astype(dtype)


def uniform(
    key: PRNGKeyArray, shape: Sequence[int], dtype: Any, minval: float, maxval: float
) -> Array:
    """``U(minval, maxval)`` of ``shape`` in ``dtype`` (real floating), drawn in float32
    (float64) and rounded once (a half-precision result can equal ``maxval``)."""
    draw = jax.random.uniform(key, tuple(shape), compute_dtype(dtype), minval, maxval)
    return draw.astype(dtype)


def linear(in_features: int, out_features: int, *, dtype: Any, key: PRNGKeyArray) -> eqx.nn.Linear:
    """``eqx.nn.Linear(in_features, out_features)`` with ``dtype`` parameters drawn in float32
    (float64) and rounded once (Equinox draws a half-precision Linear in that dtype directly)."""
    lin = eqx.nn.Linear(in_features, out_features, dtype=compute_dtype(dtype), key=key)
    rounded = (lin.weight.astype(dtype), lin.bias.astype(dtype))
    return eqx.tree_at(lambda m: (m.weight, m.bias), lin, rounded)
