"""Rotary position embedding (RoPE), rotate-half layout.

Su, Lu, Pan, Murtadha, Wen, Liu (2021), "RoFormer: Enhanced Transformer with Rotary Position
Embedding".
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Real

from spectrax._checks import (
    _describe,
    as_jax,
    check_float_dtype,
    check_positive_float,
    check_real_float,
    compute_dtype,
    lift_rank,
    show_number,
)


def _check_head_dim(name: str, head_dim) -> int:
    if isinstance(head_dim, bool) or not isinstance(head_dim, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; got {type(head_dim).__name__}.")
    if head_dim < 2 or head_dim % 2:
        raise ValueError(
            f"`{name}` must be a positive even integer (RoPE rotates pairs of features); "
            f"got {head_dim}."
        )
    return int(head_dim)


def _check_base_or_array(base: Any) -> float | Array:
    """A Python / NumPy number as :func:`_check_base`; or a real JAX scalar, traced (``jax.grad``
    or ``jax.vmap`` over the base) or concrete (its value is checked then); an integer one is
    taken as a float (float32, float64 under x64)."""
    if isinstance(base, jax.Array):  # tracers included
        if base.shape == () and jnp.issubdtype(base.dtype, jnp.integer):
            base = base.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
        if base.shape != () or not jnp.issubdtype(base.dtype, jnp.floating):
            raise TypeError(
                "`base` must be a Python float or a real JAX scalar; got an "
                f"array of shape {base.shape} and dtype {base.dtype}."
            )
        if not isinstance(base, jax.core.Tracer):
            _check_base(float(base))
        return base
    return _check_base(base)


def _theta(head_dim: int, base: float | Array, dtype) -> Array:
    """``base^(-2i/head_dim)`` in ``dtype``: a Python base in float64 NumPy, rounded once; a JAX
    base in float32, or float64 if ``base`` or ``dtype`` is (differentiable in ``base``)."""
    if not isinstance(base, jax.Array):
        i = np.arange(head_dim // 2, dtype=np.float64)
        return jnp.asarray(base ** (-2.0 * i / head_dim), dtype)
    wide = jnp.float64 if jnp.float64 in (jnp.dtype(base.dtype), jnp.dtype(dtype)) else jnp.float32
    i = jnp.arange(head_dim // 2, dtype=wide)
    return jnp.power(base.astype(wide), (-2.0 / head_dim) * i).astype(dtype)


def _check_base(base: Any) -> float:
    try:
        base = check_positive_float("base", base)
    except ValueError:  # NaN, inf, 0 or negative: say the whole range at once
        raise ValueError(
            "`base` must be a finite number > 1 (frequencies base^(-2i/D) decrease); got "
            f"{show_number(base)}."
        ) from None
    if base <= 1.0:
        # base 1 rotates every pair at the same rate, a base < 1 faster with i: neither is the
        # decreasing bank the bounds of spectrax.theory (which also need base > 1) assume
        raise ValueError(f"`base` must be > 1 (frequencies base^(-2i/D) decrease); got {base!r}.")
    return base


def rope_frequencies(
    head_dim: int, base: float | Real[Array, ""] = 10000.0, dtype=jnp.float32
) -> Float[Array, " M"]:
    """RoPE rotation frequencies ``theta_i = base^(-2i/head_dim)``, ``i = 0 .. head_dim/2 - 1``.

    Su et al. (2021), eq. 15. For a Python ``base``, computed in float64 NumPy and rounded once
    to ``dtype``. A JAX scalar ``base`` may be traced (``jax.grad`` with respect to the base,
    ``jax.vmap`` over bases): then ``theta`` is computed in float32, or float64 if ``base`` or
    ``dtype`` is (float32: relative error up to about ``1e-6`` at ``i = D/2 - 1``; pass a float64
    base under ``jax.enable_x64`` for theory checks).

    Args:
        head_dim: ``D``, even.
        base: the base, > 1 (default 10000.0, the paper's): a Python float or a real
            floating-point JAX scalar.
        dtype: output dtype, real floating-point (default float32).

    Returns:
        ``(D/2,)``, decreasing from ``theta_0 = 1`` to ``base^(-(D-2)/D)``.
    """
    head_dim = _check_head_dim("head_dim", head_dim)
    base = _check_base_or_array(base)
    dtype = check_float_dtype("dtype", dtype)
    return _theta(head_dim, base, dtype)


def apply_rope(
    x: Float[Array, "*batch L D"],
    positions: Real[Array, " L"] | None = None,
    *,
    base: float | Real[Array, ""] = 10000.0,
) -> Float[Array, "*batch L D"]:
    """Rotate each feature pair of ``x`` by ``position * theta_i`` (RoPE, Su et al. 2021).

    Rotate-half layout (GPT-NeoX, LLaMA in Hugging Face, ``equinox.nn.RotaryPositionalEmbedding``):
    pair ``i`` is ``(x[..., i], x[..., i + D/2])``, read as the real and imaginary part of
    ``z_i``, and the output is ``z_i exp(1j m theta_i)`` at position ``m``. Hence
    ``<apply_rope(q, m), apply_rope(k, n)>`` depends on ``m - n`` only, and norms are preserved.
    (The paper and Meta's LLaMA interleave the pairs, ``(x[2i], x[2i+1])``: permute the features
    to convert between the two.)

    Args:
        x: ``(*batch, L, D)`` with ``D`` even; any leading dimensions (heads, batch).
        positions: ``(L,)`` integer or real positions (default ``arange(L)``).
        base: ``theta_i = base^(-2i/D)``, > 1 (default 10000.0); a Python float, or a real
            floating-point JAX scalar that may be traced (see :func:`rope_frequencies`).

    Returns:
        ``(*batch, L, D)`` in ``x``'s dtype.

    Angles ``m * theta_i`` and the rotation are computed in float32 (float64 if ``x`` is float64)
    and rounded to ``x``'s dtype once. In float32 the absolute angle error grows with the
    position: rounding ``theta_i`` and the product ``m * theta_i`` costs up to about
    ``m * theta_i * 1.2e-7`` rad (measured ``~3e-3`` rad at ``m = 1e5`` for ``theta_i`` near 1;
    ``theta_0 = 1`` itself is exact, so its angle is too), and positions above ``2^24`` are not
    even exact. Use float64 ``x`` (``jax.enable_x64``) for theory checks at long range, e.g.
    bounds on ``base`` from the decay of these rotations.
    """
    check_real_float("x", x)
    x = as_jax(x)  # NumPy float64 without x64: JAX's float32, no truncation warning
    if x.ndim < 2:
        raise ValueError(f"`x` must be (*batch, L, D); got x.shape={x.shape}.")
    seq_len, head_dim = x.shape[-2], x.shape[-1]
    if head_dim < 2 or head_dim % 2:
        raise ValueError(
            f"the last axis of `x` (head_dim) must be a positive even length (RoPE rotates "
            f"pairs of features); got x.shape={x.shape}."
        )
    dtype = compute_dtype(x.dtype)
    if positions is None:
        pos = jnp.arange(seq_len, dtype=dtype)
    else:
        try:
            positions = jnp.asarray(positions)
        except (TypeError, ValueError):
            raise TypeError(
                f"`positions` must be an integer or real floating-point array of shape (L,); "
                f"got {_describe(positions)}."
            ) from None
        if positions.shape != (seq_len,):
            raise ValueError(
                f"`positions` must have shape (L,) = ({seq_len},), one per row of `x`; got "
                f"positions.shape={positions.shape} for x.shape={x.shape}."
            )
        if not (
            jnp.issubdtype(positions.dtype, jnp.integer)
            or jnp.issubdtype(positions.dtype, jnp.floating)
        ):
            raise TypeError(
                f"`positions` must be an integer or real floating-point array; got dtype "
                f"{positions.dtype}."
            )
        pos = positions.astype(dtype)
    theta = rope_frequencies(head_dim, base, dtype)
    angle = pos[:, None] * theta[None, :]
    cos = lift_rank(jnp.cos(angle), x.ndim)
    sin = lift_rank(jnp.sin(angle), x.ndim)
    xc = x.astype(dtype)
    x1, x2 = xc[..., : head_dim // 2], xc[..., head_dim // 2 :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class RoPE(eqx.Module):
    """Rotary position embedding of one head, ``(L, D) -> (L, D)``: :func:`apply_rope` with
    fixed ``head_dim`` and ``base`` (Su et al., 2021). No parameters; vmap over heads and batch.

    Args:
        head_dim: ``D``, even.
        base: ``theta_i = base^(-2i/D)``, > 1 (default 10000.0).
    """

    head_dim: int = eqx.field(static=True)
    base: float = eqx.field(static=True)

    def __init__(self, head_dim: int, *, base: float = 10000.0):
        self.head_dim = _check_head_dim("head_dim", head_dim)
        self.base = _check_base(base)

    def __call__(
        self, x: Float[Array, "L D"], positions: Real[Array, " L"] | None = None
    ) -> Float[Array, "L D"]:
        check_real_float("x", x)
        if x.ndim != 2 or x.shape[-1] != self.head_dim:
            raise ValueError(
                f"`x` must be one head (L, head_dim) = (L, {self.head_dim}); got "
                f"x.shape={x.shape}. Batch over heads with jax.vmap."
            )
        return apply_rope(x, positions, base=self.base)
