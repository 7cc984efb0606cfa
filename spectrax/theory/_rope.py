"""How large the RoPE base must be for a context length, and what finite precision does to
RoPE angles (Su et al., 2021, "RoFormer"; Men et al., 2024, "Base of RoPE Bounds Context
Length"; the phase-modulation reading of RoPE as a bank of oscillators, "Rotary Positional
Embeddings as Phase Modulation: Theoretical Bounds on the RoPE Base for Long-Context
Transformers", 2026).

Frequencies ``θ_i = base^(-2i/d)``, ``i = 0 … d/2 - 1`` (``d`` the head dimension), as in
:func:`spectrax.nn.rope_frequencies`. The bounds here run once, in NumPy float64, on static
numbers; :func:`rope_angle_error` measures the angles as a given dtype computes them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from spectrax._checks import check_float_dtype, check_positive_int, show_number


def _check_head_dim(head_dim) -> int:
    d = check_positive_int("head_dim", head_dim, minimum=4)
    if d % 2:
        raise ValueError(f"`head_dim` must be even (pairs of channels rotate); got {d}.")
    return d


def _check_base(base) -> float:
    # a concrete 0-d array is its number, as spectrax.nn.rope_frequencies takes it (it was
    # refused as "must be a real number > 1; got Array(10000., dtype=float32)")
    if isinstance(base, (np.ndarray, jax.Array)) and base.ndim == 0:
        if not (
            jnp.issubdtype(base.dtype, jnp.floating) or jnp.issubdtype(base.dtype, jnp.integer)
        ):
            raise TypeError(
                f"`base` must be a real number > 1; got an array of dtype {base.dtype}."
            )
        try:
            base = base.item()
        except jax.errors.ConcretizationTypeError:
            raise TypeError(
                "`base` must be a concrete number > 1 (these checks compute on the host); got a "
                "traced array: call outside jit/grad/vmap."
            ) from None
    if isinstance(base, bool) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise TypeError(f"`base` must be a real number > 1; got {base!r}.")
    try:
        value = float(base)
    except OverflowError:  # an int beyond float range
        value = math.inf
    if not math.isfinite(value) or value <= 1.0:
        raise ValueError(f"`base` must be a finite number > 1; got {show_number(base)}.")
    return value


def _theta(base: float, d: int) -> np.ndarray:
    return base ** (-np.arange(0, d, 2, dtype=np.float64) / d)


def rope_decay_curve(base: float, head_dim: int, max_distance: int) -> Float[np.ndarray, " L"]:
    """``B(m) = (2/d) Σ_i cos(m θ_i)`` for ``m = 0 … max_distance`` (Men et al., 2024).

    ``B(m)`` is the expected attention score between a query and a key equal to it up to
    zero-mean noise, at relative distance ``m``, divided by its value at ``m = 0``: where it
    turns negative, RoPE makes a token prefer dissimilar tokens over similar ones at that
    distance.

    Args:
        base: the RoPE base, a finite real number ``> 1``.
        head_dim: ``d``, even, ``>= 4``.
        max_distance: the largest relative distance ``m``, an integer ``>= 1``.

    Returns:
        ``(max_distance + 1,)`` float64 (computed in NumPy float64, whatever JAX's x64 setting).
    """
    d = _check_head_dim(head_dim)
    theta = _theta(_check_base(base), d)
    n = check_positive_int("max_distance", max_distance)
    return _decay_curve(theta, n)


def _decay_curve(theta: np.ndarray, n: int, chunk: int = 1 << 16) -> np.ndarray:
    out = np.empty(n + 1)
    for start in range(0, n + 1, chunk):
        m = np.arange(start, min(start + chunk, n + 1), dtype=np.float64)
        out[start : start + m.size] = np.cos(np.outer(m, theta)).mean(axis=1)
    return out


def _drop_failing(
    bases: np.ndarray, alive: np.ndarray, exps: np.ndarray, m_all: np.ndarray
) -> None:
    """Clear ``alive`` for each base whose decay curve is negative at some distance of
    ``m_all``. Distances are scanned in chunks that start short and double (a base is dropped
    at its first negative chunk, so failing bases cost little)."""
    start, chunk = 0, 64
    while start < m_all.size:
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            return
        theta = bases[idx, None] ** (-exps[None, :])  # (G, d/2)
        m = m_all[start : start + chunk]
        worst = np.cos(m[None, :, None] * theta[:, None, :]).sum(axis=2).min(axis=1)
        alive[idx[worst < 0.0]] = False
        start += chunk
        chunk = min(2 * chunk, 2048)


def _first_holding(bases: np.ndarray, d: int, n: int, stride: int = 16) -> int | None:
    """Index of the first base in ``bases`` whose decay curve stays ``>= 0`` for
    ``m <= n``, or ``None``."""
    alive = np.ones(bases.size, bool)
    exps = np.arange(0, d, 2, dtype=np.float64) / d
    m = np.arange(0, n + 1, dtype=np.float64)
    # A coarse pass first, at every `stride`-th distance: a base below the bound is negative
    # over a stretch of distances (the slow rotations), so most are dropped there at a
    # `stride`-th of the cost; the survivors are then checked at every distance. (A short
    # context is checked at once: there the coarse pass would only add a call per block.)
    if m.size > 64:
        _drop_failing(bases, alive, exps, m[::stride])
    _drop_failing(bases, alive, exps, m)
    hits = np.flatnonzero(alive)
    return int(hits[0]) if hits.size else None


def rope_base_lower_bound(context_length: int, head_dim: int, *, rtol: float = 1e-2) -> float:
    """The smallest base for which :func:`rope_decay_curve` stays ``>= 0`` over the context.

    Men et al. (2024) show a model keeps its ability to attend to similar tokens at distance
    ``m`` only while ``B(m) >= 0``; the base must therefore hold ``B(m) >= 0`` for every
    ``0 <= m <= context_length``. The criterion is not monotone in the base (a base can hold
    while a somewhat larger one fails), so the bound is found by scanning the geometric grid
    ``2 (1 + rtol)^j`` upward from 2 and returning its first base that holds: the smallest
    base to within ``rtol``, unless the criterion holds only on an interval narrower than one
    grid step, or already holds at 2: then 2.0 is returned though smaller bases hold too (at
    ``context_length = 1`` every base ``> 1`` holds; at 2 tokens and ``d = 128`` every base
    from about 1.68 on, measured). At ``d = 128`` this gives 4.3e3 / 2.9e4 / 8.4e4 for
    1K / 4K / 8K tokens, the scale of the bounds Men et al. report for these lengths.
    Digit-for-digit agreement with another search is not to be expected: as the criterion is
    not monotone, the first base that holds depends on the grid (at 2K tokens the first
    passing point of the 1% grid, 1.16e4, is an isolated one: 1.01 times it fails).

    Args:
        context_length: the longest relative distance ``L``, ``>= 1``.
        head_dim: ``d``, even, ``>= 4``.
        rtol: the grid's relative step, in ``(0, 1)``.

    Returns:
        The bound, a Python float.

    Raises:
        ValueError: if no base among the grid's first 2^20 points (and below 1e300) holds: with
            a small ``rtol`` the grid ends early (near 5.7 for ``rtol = 1e-6``).
    """
    n = check_positive_int("context_length", context_length)
    d = _check_head_dim(head_dim)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.integer, np.floating)):
        raise TypeError(f"`rtol` must be a real number in (0, 1); got {rtol!r}.")
    if not 0 < rtol < 1:
        raise ValueError(f"`rtol` must lie in (0, 1); got {rtol!r}.")
    block, points = 64, 1 << 20
    top = 2.0
    for j0 in range(0, points, block):
        bases = 2.0 * (1.0 + rtol) ** np.arange(j0, j0 + block, dtype=np.float64)
        if bases[0] > 1e300:
            break
        top = float(bases[-1])
        hit = _first_holding(bases, d, n)
        if hit is not None:
            return float(bases[hit])
    raise ValueError(
        f"no base up to {top:.3g} (the grid 2 (1 + rtol)^j, rtol={rtol!r}, stops after 2^20 "
        f"points or at 1e300) satisfies the decay criterion for context_length={n}, "
        f"head_dim={d}; a larger `rtol` reaches larger bases."
    )


def rope_aliasing_bound(context_length: int, head_dim: int) -> float:
    """The smallest base whose slowest rotation turns by at most ``π`` over the context.

    The slowest pair rotates by ``θ_min = base^(-(d-2)/d)`` per token. Its score
    ``cos(m θ_min)`` identifies the distance ``m`` one-to-one only while
    ``context_length · θ_min <= π``; beyond, distances alias onto each other in every pair,
    the analogue of a Nyquist limit in the oscillator-bank reading of RoPE. Closed form:
    ``base >= (context_length / π)^(d / (d - 2))``, returned as is: below 1 for
    ``context_length <= 3``, where every valid base (``> 1``) passes.
    """
    n = check_positive_int("context_length", context_length)
    d = _check_head_dim(head_dim)
    return (n / math.pi) ** (d / (d - 2))


def rope_angle_error(
    base: float, head_dim: int, positions, dtype=jnp.float32
) -> Float[np.ndarray, " P"]:
    """Largest angle error over all pairs when RoPE angles ``m θ_i`` are computed in ``dtype``.

    The angles are formed as a RoPE implementation working in ``dtype`` forms them:
    positions and frequencies cast to ``dtype``, then multiplied in ``dtype``; compared with
    the exact float64 product. (:func:`spectrax.nn.apply_rope` works in float32, or float64
    for float64 inputs, whatever the dtype of ``x``: its error is the float32 case.)

    Rounding gives an error near ``eps(dtype) · m θ_i`` at position ``m``; once it reaches
    the slowest pair's step ``θ_min`` that pair no longer resolves single tokens. In float32
    this happens near ``m ≈ 1/eps ≈ 10^7`` whatever the base. bfloat16 holds integers
    exactly only up to 256 and rounds ``m θ`` to 8 significant bits, radians off from about
    a thousand tokens on, which is why ``apply_rope`` never forms angles in half precision.

    Args:
        base: the RoPE base. head_dim: ``d``, even.
        positions: integer positions in ``[0, 2^31)``, shape ``(P,)``.
        dtype: the float type under test (float16 overflows to ``inf`` past 65504).

    Returns:
        ``(P,)`` float64 absolute angle errors, in radians (not reduced mod 2π).
    """
    d = _check_head_dim(head_dim)
    b = _check_base(base)
    pos = np.asarray(positions)
    if (
        pos.ndim != 1
        or not np.issubdtype(pos.dtype, np.integer)
        or (pos < 0).any()
        or (pos >= 2**31).any()
    ):
        raise ValueError(
            f"`positions` must be a 1-d array of integers in [0, 2^31); got {positions!r}."
        )
    dtype = check_float_dtype("dtype", dtype, x64=False)  # float64 is computed in NumPy
    exact = np.outer(pos.astype(np.float64), _theta(b, d))
    if dtype == np.float64:  # exact reference type: JAX may run with x64 off
        computed = np.outer(pos.astype(np.float64), _theta(b, d))
    else:
        # rounded once, in NumPy (ml_dtypes for bfloat16), as rope_frequencies rounds: through
        # float32 first, a half-precision theta could land one ulp off (double rounding)
        theta = jnp.asarray(_theta(b, d).astype(dtype))
        computed = jnp.asarray(pos.astype(np.int32)).astype(dtype)[:, None] * theta[None, :]
    return np.abs(np.asarray(computed).astype(np.float64) - exact).max(axis=1)
