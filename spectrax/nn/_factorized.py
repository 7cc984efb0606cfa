"""Spectral weights of a Fourier layer: dense, Tucker-, CP- and tensor-train-factorised (TFNO).

Kossaifi, Kovachki, Azizzadenesheli, Anandkumar (2023), "Multi-Grid Tensorized Fourier Neural
Operator for High-Resolution PDEs" (TFNO): the complex weight tensor ``W[o, i, k_1, ..., k_d]`` of
a spectral convolution is stored as a low-rank tensor decomposition and reconstructed before use.
The tensor train is Oseledets (2011), "Tensor-Train Decomposition", SIAM J. Sci. Comput. 33(5).

Every weight module here exposes the same two things, so :class:`~spectrax.nn.SpectralConv` can
hold any of them:

- ``complex()``: the dense complex tensor, shape ``(C_out, C_in, *kept)`` (``kept`` as returned by
  :func:`spectrax.transforms.truncate_modes`: ``2 m_1, ..., 2 m_{d-1}, m_d``);
- ``num_params``: the number of real parameters (a complex number counts as two).

Each is built from the weight ``shape`` (positive ints, at least one axis), a keyword ``std``
(a finite number > 0: the reconstructed entries have ``E|W|^2 = std^2``), a ``dtype`` and a
``key``, the factorised ones also from a ``rank``; a bad argument is a ValueError/TypeError
naming it.

Complex parameters are stored as real arrays with a leading axis of length 2 (real, imaginary), so
optimizers, weight decay and checkpoints only ever see real float arrays.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from spectrax._checks import (
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
)
from spectrax._random import normal, split_normals

RankLike = float | int | np.number | Sequence | np.ndarray  # sequence entries checked at run time
"""A factorised weight's ``rank``: an int, a float fraction in (0, 1], Tucker ranks per axis,
TT ranks ``(1, r_1, ..., r_{k-1}, 1)``, or NumPy scalars / arrays of those."""


def as_complex(pair: Float[Array, " 2 *rest"]) -> Complex[Array, "*rest"]:
    """``pair[0] + i pair[1]``: a complex array from its stacked real and imaginary parts
    (complex64 for float32 and half-precision parameters, complex128 for float64)."""
    if pair.ndim == 0 or pair.shape[0] != 2:
        # pair[1] of a size-1 axis is clamped to pair[0] (imag = real): a weight swapped in with
        # eqx.tree_at at another shape ran silently
        raise ValueError(
            "a complex spectral weight is stored as real and imaginary parts on a first axis of "
            f"2, (2, ...); got shape {pair.shape}. Replace weights with arrays of the shape "
            "they had."
        )
    if pair.dtype != jnp.float64:
        pair = pair.astype(jnp.float32)
    return jax.lax.complex(pair[0], pair[1])


def complex_normal(key: PRNGKeyArray, shape: Sequence[int], std: float, dtype) -> Array:
    """Stacked (real, imag) complex Gaussian with ``E|z|^2 = std^2``; shape ``(2, *shape)``.
    ``dtype`` (the weight classes' argument) must be real: the pair holds the complex parts."""
    dtype = check_float_dtype("dtype", dtype)
    return normal(key, (2, *shape), dtype, std / math.sqrt(2.0))


def tucker_reconstruct(
    core: Complex[Array, "*ranks"], factors: Sequence[Complex[Array, "_ _"]]
) -> Complex[Array, "..."]:
    """Dense tensor of a Tucker decomposition: ``core x_1 U_1 x_2 U_2 ... x_k U_k``.

    Args:
        core: ``(r_1, ..., r_k)``.
        factors: ``k`` matrices, ``U_j`` of shape ``(n_j, r_j)``.

    Returns:
        ``(n_1, ..., n_k)``.
    """
    k = core.ndim
    if len(factors) != k:
        raise ValueError(f"Tucker core has {k} axes but {len(factors)} factors were given.")
    for j, u in enumerate(factors):
        if u.ndim != 2 or u.shape[1] != core.shape[j]:
            raise ValueError(
                f"`factors[{j}]` must be (n_{j}, {core.shape[j]}): its columns are axis {j} of "
                f"the core {core.shape}; got factors[{j}].shape={u.shape}."
            )
    letters = string.ascii_letters
    r_idx, n_idx = letters[:k], letters[k : 2 * k]
    spec = r_idx + "," + ",".join(n_idx[j] + r_idx[j] for j in range(k)) + "->" + n_idx
    return jnp.einsum(spec, core, *factors)


def cp_reconstruct(factors: Sequence[Complex[Array, "_ R"]]) -> Complex[Array, "..."]:
    """Dense tensor of a CP (canonical polyadic) decomposition, ``sum_r U_1[:, r] o .. U_k[:, r]``.

    Args:
        factors: ``k`` matrices ``U_j`` of shape ``(n_j, R)`` (the weights of the rank-one terms
            are absorbed into the factors).

    Returns:
        ``(n_1, ..., n_k)``.
    """
    k = len(factors)
    if k == 0:
        raise ValueError("`factors` must hold at least one factor (n_j, R); got none.")
    r = factors[0].shape[-1] if factors[0].ndim else None
    for j, u in enumerate(factors):
        if u.ndim != 2 or u.shape[1] != r:
            raise ValueError(
                f"`factors[{j}]` must be (n_{j}, R) with R = {r}, the columns of factors[0]; "
                f"got factors[{j}].shape={u.shape}."
            )
    letters = string.ascii_letters
    n_idx = letters[:k]
    spec = ",".join(n_idx[j] + "z" for j in range(k)) + "->" + n_idx
    return jnp.einsum(spec, *factors)


def _weight_shape(shape) -> tuple[int, ...]:
    """``shape`` as a tuple of positive ints (at least one axis), or a ValueError naming it: a
    negative or fractional size was truncated by ``int()`` into another weight shape, an empty
    one divided by zero."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"`shape` must be a sequence of positive ints, e.g. (C_out, C_in, *kept); got "
            f"{shape!r}."
        ) from None
    if not dims:
        raise ValueError("`shape` must have at least one axis; got ().")
    return tuple(check_positive_int(f"shape[{i}]", n) for i, n in enumerate(dims))


def dense_num_params(shape: Sequence[int]) -> int:
    """Real parameters of a dense complex tensor of ``shape``: ``2 prod(shape)``."""
    return 2 * int(np.prod(shape))


def cp_num_params(shape: Sequence[int], rank: int) -> int:
    """Real parameters of a rank-``R`` CP decomposition: ``2 R sum(shape)``."""
    return 2 * int(rank) * int(sum(shape))


def tucker_num_params(shape: Sequence[int], ranks: Sequence[int]) -> int:
    """Real parameters of a Tucker decomposition: ``2 (prod(ranks) + sum(n_j r_j))``, one rank
    per axis of ``shape`` (else a ValueError naming ``ranks``)."""
    shape, ranks = tuple(shape), tuple(ranks)
    if len(ranks) != len(shape):  # zip cut the longer one: (2, 3, 4) with (1, 1) counted 12
        raise ValueError(
            f"`ranks` must hold one rank per axis of `shape` {shape} ({len(shape)}); got {ranks}."
        )
    return 2 * (int(np.prod(ranks)) + int(sum(n * r for n, r in zip(shape, ranks, strict=True))))


def cp_rank(shape: Sequence[int], rank: RankLike) -> int:
    """CP rank from an int (used as is) or a fraction in (0, 1] of the dense parameter count.

    A fraction ``f`` gives the largest ``R >= 1`` with ``cp_num_params <= f * dense_num_params``
    (``R = 1`` when even that exceeds the budget).
    """
    shape = _weight_shape(shape)
    if isinstance(rank, np.ndarray) and rank.ndim == 0:
        rank = rank.item()
    if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
        if rank < 1:
            raise ValueError(f"`rank` must be a positive int or a fraction in (0, 1]; got {rank}.")
        return int(rank)
    frac = _check_fraction(rank)
    return max(1, int(math.floor(frac * np.prod(shape) / sum(shape))))


def tucker_ranks(shape: Sequence[int], rank: RankLike) -> tuple[int, ...]:
    """Tucker ranks from explicit ranks (one per axis, or one int for all, clipped to the axis
    size) or a fraction ``f`` in (0, 1] of the dense parameter count.

    For a fraction the ranks are ``max(1, floor(a n_j))`` with the largest ``a`` in [0, 1] that
    keeps ``tucker_num_params <= f * dense_num_params`` (found by bisection; the count is monotone
    in ``a``); all ones when even that exceeds the budget.
    """
    shape = _weight_shape(shape)
    if isinstance(rank, np.ndarray):  # a NumPy array of ranks, or a 0-d one holding the rank
        rank = rank.item() if rank.ndim == 0 else rank.tolist()
    if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
        if rank < 1:
            raise ValueError(f"`rank` must be a positive int or a fraction in (0, 1]; got {rank}.")
        return tuple(min(int(rank), n) for n in shape)
    if isinstance(rank, Sequence) and not isinstance(rank, str):
        ranks = tuple(rank)
        if (
            len(ranks) != len(shape)
            or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) for r in ranks)
            or any(r < 1 or r > n for r, n in zip(ranks, shape, strict=False))
        ):
            raise ValueError(
                f"`rank` as a sequence needs one integer rank per axis of the weight {shape}, "
                f"each in 1..n; got {ranks}."
            )
        return tuple(int(r) for r in ranks)
    frac = _check_fraction(rank)
    budget = frac * dense_num_params(shape)

    def ranks_at(a: float) -> tuple[int, ...]:
        return tuple(max(1, min(n, int(math.floor(a * n)))) for n in shape)

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if tucker_num_params(shape, ranks_at(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return ranks_at(lo)


def tt_reconstruct(cores: Sequence[Complex[Array, "_ _ _"]]) -> Complex[Array, "..."]:
    """Dense tensor of a tensor-train (TT) decomposition (Oseledets, 2011):
    ``W[i_1, ..., i_k] = G_1[:, i_1, :] G_2[:, i_2, :] ... G_k[:, i_k, :]``.

    Args:
        cores: ``k`` arrays, ``G_j`` of shape ``(r_{j-1}, n_j, r_j)`` with ``r_0 = r_k = 1``.

    Returns:
        ``(n_1, ..., n_k)``.
    """
    k = len(cores)
    if k == 0:
        raise ValueError("`cores` must hold at least one core (r_{j-1}, n_j, r_j); got none.")
    prev = 1
    for j, g in enumerate(cores):
        last = 1 if j == k - 1 else "r_" + str(j + 1)
        if g.ndim != 3 or g.shape[0] != prev or (j == k - 1 and g.shape[2] != 1):
            raise ValueError(
                f"`cores[{j}]` must be ({prev}, n_{j}, {last}): its first axis is the last of "
                f"cores[{j - 1}] (1 for the first core), the last core ends in 1; got "
                f"cores[{j}].shape={g.shape}."
            )
        prev = g.shape[2]
    # Left to right: the partial product is (n_1 ... n_j, r_j), one matrix product per core.
    out = cores[0].reshape(cores[0].shape[1], cores[0].shape[2])
    for g in cores[1:]:
        out = (out @ g.reshape(g.shape[0], -1)).reshape(-1, g.shape[2])
    return out.reshape(tuple(g.shape[1] for g in cores))


def tt_num_params(shape: Sequence[int], ranks: Sequence[int]) -> int:
    """Real parameters of a TT decomposition with ranks ``(1, r_1, ..., r_{k-1}, 1)``:
    ``2 sum_j r_{j-1} n_j r_j``."""
    shape, ranks = tuple(int(n) for n in shape), tuple(int(r) for r in ranks)
    if len(ranks) != len(shape) + 1:
        raise ValueError(
            f"`ranks` must be (1, r_1, ..., r_{{k-1}}, 1), {len(shape) + 1} entries for the "
            f"{len(shape)} axes of `shape` {shape}; got {ranks}."
        )
    return 2 * sum(ranks[j] * n * ranks[j + 1] for j, n in enumerate(shape))


def tt_max_ranks(shape: Sequence[int]) -> tuple[int, ...]:
    """Full TT ranks of a tensor of ``shape``: ``r_j = min(n_1 ... n_j, n_{j+1} ... n_k)``, the
    ranks of its unfoldings, at which a TT represents every tensor exactly (TT-SVD)."""
    shape = _weight_shape(shape)
    inner = tuple(
        min(int(np.prod(shape[: j + 1])), int(np.prod(shape[j + 1 :])))
        for j in range(len(shape) - 1)
    )
    return (1, *inner, 1)


def tt_ranks(shape: Sequence[int], rank: RankLike) -> tuple[int, ...]:
    """TT ranks ``(1, r_1, ..., r_{k-1}, 1)`` from explicit ranks, one int for all, or a fraction
    ``f`` in (0, 1] of the dense parameter count.

    An int ``r`` gives ``r_j = min(r, rmax_j)`` with ``rmax_j`` the full ranks
    (:func:`tt_max_ranks`). A sequence is the ``k + 1`` ranks in the convention of TensorLy and
    neuraloperator, ``1`` at both ends, ``1 <= r_j <= rmax_j`` between. A fraction gives
    ``r_j = min(r, rmax_j)`` with the largest ``r >= 1`` that keeps
    ``tt_num_params <= f * dense_num_params`` (the count grows with ``r``); all ones when even
    that exceeds the budget.
    """
    shape = _weight_shape(shape)
    rmax = tt_max_ranks(shape)
    if isinstance(rank, np.ndarray):  # a NumPy array of ranks, or a 0-d one holding the rank
        rank = rank.item() if rank.ndim == 0 else rank.tolist()

    def clipped(r: int) -> tuple[int, ...]:
        return tuple(min(r, m) for m in rmax)

    if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
        if rank < 1:
            raise ValueError(f"`rank` must be a positive int or a fraction in (0, 1]; got {rank}.")
        return clipped(int(rank))
    if isinstance(rank, Sequence) and not isinstance(rank, str):
        ranks = tuple(rank)
        if (
            len(ranks) != len(shape) + 1
            or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) for r in ranks)
            or any(r < 1 or r > m for r, m in zip(ranks, rmax, strict=False))
        ):
            raise ValueError(
                f"`rank` as a sequence needs the {len(shape) + 1} integer TT ranks "
                f"(1, r_1, ..., r_{len(shape) - 1}, 1) of the weight {shape}, each at most the "
                f"full rank {rmax}; got {ranks}."
            )
        return tuple(int(r) for r in ranks)
    frac = _check_fraction(rank)
    budget = frac * dense_num_params(shape)
    lo, hi = 1, max(rmax)  # the largest r in [lo, hi] within budget, by bisection on integers
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tt_num_params(shape, clipped(mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return clipped(lo)


def _check_fraction(rank) -> float:
    if isinstance(rank, bool) or not isinstance(rank, (float, np.floating)) or not 0 < rank <= 1:
        raise ValueError(
            f"`rank` must be a positive int (an explicit rank) or a float fraction in (0, 1] of "
            f"the dense parameter count; got {rank!r}."
        )
    return float(rank)


class DenseWeight(eqx.Module):
    """Dense complex spectral weight ``W[o, i, k_1, ..., k_d]``.

    Attributes:
        weight: ``(2, C_out, C_in, *kept)`` real array: ``weight[0]`` the real part,
            ``weight[1]`` the imaginary part.
    """

    weight: Float[Array, "2 C_out C_in *kept"]

    def __init__(self, shape: Sequence[int], *, std: float, dtype=jnp.float32, key: PRNGKeyArray):
        std = check_positive_float("std", std)
        check_key("key", key)
        self.weight = complex_normal(key, _weight_shape(shape), std, dtype)

    def complex(self) -> Complex[Array, "C_out C_in *kept"]:
        check_parameters(self)
        return as_complex(self.weight)

    @property
    def num_params(self) -> int:
        return int(self.weight.size)


class TuckerWeight(eqx.Module):
    """Tucker-factorised complex spectral weight (TFNO, Kossaifi et al., 2023).

    ``W = core x_1 U_1 ... x_k U_k`` over all ``k = d + 2`` axes ``(C_out, C_in, *kept)``.
    Initialised so that the reconstructed entries have ``E|W|^2 = std^2`` like a dense weight:
    factors with ``E|U|^2 = 1/r_j``, core with ``E|core|^2 = std^2``.

    Attributes:
        core: ``(2, r_1, ..., r_k)``.
        factors: ``k`` arrays, ``(2, n_j, r_j)``.
    """

    core: Float[Array, "2 *ranks"]
    factors: tuple[Float[Array, "2 _n _r"], ...]  # _-prefixed sizes differ per factor

    def __init__(
        self,
        shape: Sequence[int],
        rank: RankLike,
        *,
        std: float,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        shape = _weight_shape(shape)
        std = check_positive_float("std", std)
        check_key("key", key)
        ranks = tucker_ranks(shape, rank)
        dtype = check_float_dtype("dtype", dtype)
        # complex_normal of the core and each factor from the split keys, as one draw
        self.core, *factors = split_normals(
            key,
            [(2, *ranks)] + [(2, n, r) for n, r in zip(shape, ranks, strict=True)],
            dtype,
            [std / math.sqrt(2.0)] + [1.0 / math.sqrt(r) / math.sqrt(2.0) for r in ranks],
        )
        self.factors = tuple(factors)

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(self.core.shape[1:])

    def complex(self) -> Complex[Array, "C_out C_in *kept"]:
        check_parameters(self)
        return tucker_reconstruct(as_complex(self.core), [as_complex(f) for f in self.factors])

    @property
    def num_params(self) -> int:
        return int(self.core.size + sum(f.size for f in self.factors))


class CPWeight(eqx.Module):
    """CP-factorised complex spectral weight (TFNO, Kossaifi et al., 2023).

    ``W = sum_r U_1[:, r] o ... o U_k[:, r]`` over all ``k = d + 2`` axes. Initialised so that
    ``E|W|^2 = std^2``: each factor has ``E|U|^2 = (std^2 / R)^(1/k)``.

    Cost: :meth:`complex` rebuilds ``W`` with one complex matrix product of ``prod(shape) R``
    multiply-adds (once per call, shared by a ``vmap``-ed batch). A parameter fraction buys a
    CP rank larger than any axis (``rank=0.1`` on ``(32, 32, 24, 12)``: R = 294, Tucker ranks
    ``(18, 18, 13, 6)``), so the rebuild costs about 15x Tucker's there (39x on
    ``(64, 64, 32, 16)``, R = 1191), which is why a CP FNO trains slower than a Tucker one of
    the same size.

    Attributes:
        factors: ``k`` arrays, ``(2, n_j, R)``.
    """

    factors: tuple[Float[Array, "2 _n R"], ...]  # _-prefixed sizes differ per factor

    def __init__(
        self,
        shape: Sequence[int],
        rank: RankLike,
        *,
        std: float,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        shape = _weight_shape(shape)
        std = check_positive_float("std", std)
        check_key("key", key)
        r = cp_rank(shape, rank)
        factor_std = (std**2 / r) ** (1.0 / (2 * len(shape)))
        # complex_normal of each factor from the split keys, as one draw
        self.factors = tuple(
            split_normals(
                key,
                [(2, n, r) for n in shape],
                check_float_dtype("dtype", dtype),
                [factor_std / math.sqrt(2.0)] * len(shape),
            )
        )

    @property
    def rank(self) -> int:
        return int(self.factors[0].shape[-1])

    def complex(self) -> Complex[Array, "C_out C_in *kept"]:
        check_parameters(self)
        return cp_reconstruct([as_complex(f) for f in self.factors])

    @property
    def num_params(self) -> int:
        return int(sum(f.size for f in self.factors))


# One jitted program draws every core (eagerly, the key split and each core's shape compiled
# on their own); under an outer jit or eqx.filter_eval_shape it is inlined. `std` is static: a
# layer's shapes fix it (1 / sqrt(C_in) and the ranks) and complex_normal takes a Python float.
@functools.partial(jax.jit, static_argnames=("std", "shapes", "dtype"))
def _draw_tt_cores(
    key, *, std: float, shapes: tuple[tuple[int, ...], ...], dtype
) -> tuple[Array, ...]:
    keys = jax.random.split(key, len(shapes))
    return tuple(complex_normal(k, s, std, dtype) for k, s in zip(keys, shapes, strict=True))


class TTWeight(eqx.Module):
    """Tensor-train (TT) factorised complex spectral weight (TFNO, Kossaifi et al., 2023).

    Oseledets (2011), "Tensor-Train Decomposition", SIAM J. Sci. Comput. 33(5); the fourth
    weight form of Kossaifi, Kovachki, Azizzadenesheli, Anandkumar (2023), "Multi-Grid
    Tensorized Fourier Neural Operator for High-Resolution PDEs" (neuraloperator's
    ``factorization="tt"``). ``W[i_1, ..., i_k] = G_1[:, i_1, :] ... G_k[:, i_k, :]`` over all
    ``k = d + 2`` axes ``(C_out, C_in, *kept)`` in that order, core ``G_j`` of shape
    ``(r_{j-1}, n_j, r_j)`` with ``r_0 = r_k = 1`` (:func:`tt_ranks`); reconstructed by
    :func:`tt_reconstruct` before use, as the Tucker and CP weights are.

    Initialisation: i.i.d. complex Gaussian cores, each with ``E|G_j|^2 = (std^2 / (r_1 ...
    r_{k-1}))^(1/k)``. An entry of ``W`` is a sum of ``r_1 ... r_{k-1}`` products of ``k``
    independent zero-mean core entries, uncorrelated with each other, so ``E|W|^2 = std^2``
    exactly, as for a dense weight; the equal split over the cores (as :class:`CPWeight`) keeps
    their gradients on one scale.

    Attributes:
        cores: ``k`` arrays, ``(2, r_{j-1}, n_j, r_j)``.
    """

    cores: tuple[Float[Array, "2 _r_prev _n _r_next"], ...]  # _-prefixed sizes differ per core

    def __init__(
        self,
        shape: Sequence[int],
        rank: RankLike,
        *,
        std: float,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        shape = _weight_shape(shape)
        std = check_positive_float("std", std)
        check_key("key", key)
        ranks = tt_ranks(shape, rank)
        dtype = check_float_dtype("dtype", dtype)
        core_std = (std**2 / math.prod(ranks)) ** (1.0 / (2 * len(shape)))
        core_shapes = tuple((ranks[j], n, ranks[j + 1]) for j, n in enumerate(shape))
        self.cores = _draw_tt_cores(key, std=float(core_std), shapes=core_shapes, dtype=dtype)

    @property
    def ranks(self) -> tuple[int, ...]:
        """``(1, r_1, ..., r_{k-1}, 1)``."""
        return (1, *(int(g.shape[-1]) for g in self.cores))

    def complex(self) -> Complex[Array, "C_out C_in *kept"]:
        check_parameters(self)
        return tt_reconstruct([as_complex(g) for g in self.cores])

    @property
    def num_params(self) -> int:
        return int(sum(g.size for g in self.cores))
