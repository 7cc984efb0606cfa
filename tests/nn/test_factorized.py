"""Factorised spectral weights (TFNO): exact reconstruction at full rank, closed-form parameter
counts, the rank-0.1 budget, initialisation scale, gradients."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.nn import (
    CPWeight,
    DenseWeight,
    SpectralConv,
    TTWeight,
    TuckerWeight,
    cp_num_params,
    cp_rank,
    cp_reconstruct,
    dense_num_params,
    tt_ranks,
    tucker_num_params,
    tucker_ranks,
    tucker_reconstruct,
)
from tests.helpers import assert_close

SHAPE = (3, 2, 4, 3)  # (C_out, C_in, 2 m_1, m_2)


def _pair(z):
    return jnp.asarray(np.stack([z.real, z.imag]))


def _dense(rng, shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def test_tucker_full_rank_reconstructs_dense_operator(x64, key):
    rng = np.random.default_rng(0)
    w = _dense(rng, SHAPE)
    # core = W, factors = orthogonal Q_j and core = W x_j Q_j^H: an exact full-rank Tucker form.
    qs = [np.linalg.qr(_dense(rng, (n, n)))[0] for n in SHAPE]
    core = w
    for j, q in enumerate(qs):
        core = np.moveaxis(np.tensordot(q.conj().T, core, axes=((1,), (j,))), 0, j)
    conv = SpectralConv(
        2, 2, 3, (2, 3), factorization="tucker", rank=SHAPE, dtype=jnp.float64, key=key
    )
    assert conv.weight.ranks == SHAPE
    conv = eqx.tree_at(
        lambda c: (c.weight.core, c.weight.factors),
        conv,
        (_pair(core), tuple(_pair(q) for q in qs)),
    )
    assert_close(conv.weight.complex(), w, jnp.float64)
    dense = SpectralConv(2, 2, 3, (2, 3), dtype=jnp.float64, key=key)
    dense = eqx.tree_at(lambda c: c.weight.weight, dense, _pair(w))
    x = jax.random.normal(key, (2, 8, 6), jnp.float64)
    f = eqx.filter_jit(lambda c, u: c(u))
    assert_close(f(conv, x), f(dense, x), jnp.float64)


def test_cp_full_rank_reconstructs_dense_operator(x64):
    rng = np.random.default_rng(1)
    w = _dense(rng, SHAPE)
    # Rank prod(SHAPE[1:]): one rank-one term per multi-index of the trailing axes.
    rest = SHAPE[1:]
    r = int(np.prod(rest))
    factors = [w.reshape(SHAPE[0], r)]
    for j, n in enumerate(rest):
        idx = np.array(np.unravel_index(np.arange(r), rest))[j]
        factors.append(np.eye(n)[idx].T.astype(complex))
    assert_close(cp_reconstruct([jnp.asarray(f) for f in factors]), w, jnp.float64)
    weight = CPWeight(SHAPE, r, std=1.0, dtype=jnp.float64, key=jax.random.key(0))
    weight = eqx.tree_at(lambda c: c.factors, weight, tuple(_pair(f) for f in factors))
    assert weight.rank == r and weight.num_params == cp_num_params(SHAPE, r)
    assert_close(weight.complex(), w, jnp.float64)


def test_reconstruct_against_numpy_einsum(x64):
    rng = np.random.default_rng(2)
    core = _dense(rng, (2, 3, 2))
    us = [_dense(rng, (n, r)) for n, r in zip((4, 5, 3), (2, 3, 2), strict=False)]
    want = np.einsum("abc,ia,jb,kc->ijk", core, *us)
    assert_close(
        tucker_reconstruct(jnp.asarray(core), [jnp.asarray(u) for u in us]), want, jnp.float64
    )
    vs = [_dense(rng, (n, 4)) for n in (4, 5, 3)]
    assert_close(
        cp_reconstruct([jnp.asarray(v) for v in vs]), np.einsum("ir,jr,kr->ijk", *vs), jnp.float64
    )


def test_reconstruct_names_a_factor_that_does_not_fit(library_errors):
    # einsum failed with "Size of label 'b' for operand 2 (3) does not match previous terms"
    core = jnp.ones((2, 3), jnp.complex64)
    with pytest.raises(ValueError, match=r"`factors\[1\]` must be \(n_1, 3\).*shape=\(5, 2\)"):
        tucker_reconstruct(core, [jnp.ones((4, 2), jnp.complex64), jnp.ones((5, 2), jnp.complex64)])
    with pytest.raises(ValueError, match=r"`factors\[1\]` must be \(n_1, R\) with R = 2.*\(5, 3\)"):
        cp_reconstruct([jnp.ones((4, 2), jnp.complex64), jnp.ones((5, 3), jnp.complex64)])
    with pytest.raises(ValueError, match="at least one factor"):
        cp_reconstruct([])


@pytest.mark.parametrize("factorization", ["tucker", "cp"])
def test_parameter_counts_closed_forms_and_rank_fraction(key, factorization):
    width, modes = 32, (12, 12)
    shape = (width, width, 24, 12)
    dense = dense_num_params(shape)
    # Abstract parameters (shapes only): counting needs no initialisation.
    make = functools.partial(eqx.filter_eval_shape, SpectralConv, 2, width, width, modes, key=key)
    assert make().num_params == dense == 2 * 32 * 32 * 24 * 12
    conv = make(factorization=factorization, rank=0.1)
    if factorization == "tucker":
        ranks = conv.weight.ranks
        assert ranks == tucker_ranks(shape, 0.1)
        expected = 2 * (np.prod(ranks) + sum(n * r for n, r in zip(shape, ranks, strict=False)))
        assert conv.num_params == tucker_num_params(shape, ranks) == expected
    else:
        r = conv.weight.rank
        assert r == cp_rank(shape, 0.1) == int(0.1 * np.prod(shape) / sum(shape))
        assert conv.num_params == cp_num_params(shape, r) == 2 * r * sum(shape)
    assert conv.num_params <= 0.1 * dense
    # The budget is used: not absurdly far below 10%.
    assert conv.num_params >= 0.05 * dense


def test_tucker_init_scale_matches_dense(key):
    shape = (16, 16, 8, 5)
    for weight in (
        TuckerWeight(shape, 0.3, std=0.25, key=key),
        CPWeight(shape, 0.3, std=0.25, key=key),
    ):
        ms = float(jnp.mean(jnp.abs(weight.complex()) ** 2))
        assert 0.25**2 / 2 < ms < 0.25**2 * 2, (type(weight).__name__, ms)


def test_factorized_conv_gradients_finite_and_jit(key):
    conv = SpectralConv(1, 4, 4, 6, factorization="cp", rank=3, key=key)
    x = jax.random.normal(key, (4, 32))
    grads = eqx.filter_jit(jax.grad(lambda c: jnp.sum(c(x) ** 2)))(conv)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert_close(eqx.filter_jit(lambda c, u: c(u))(conv, x), conv(x), jnp.float32)


def test_rank_errors(key):
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(1, 4, 4, 6, factorization="cp", rank=1.5, key=key)
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(1, 4, 4, 6, factorization="tucker", rank=(2, 2), key=key)
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(1, 4, 4, 6, factorization="cp", rank=0, key=key)


@pytest.mark.parametrize("std", [float("nan"), float("inf"), 0.0, -1.0, "1", None])
def test_weight_std_is_checked(key, std, library_errors):
    """A NaN or infinite `std` gave NaN/inf weights silently; a string or None a bare TypeError
    from arithmetic inside the constructor. Each weight class names `std`."""
    builders = (
        lambda: DenseWeight((2, 3), std=std, key=key),
        lambda: TuckerWeight((2, 3), 0.5, std=std, key=key),
        lambda: CPWeight((2, 3), 1, std=std, key=key),
        lambda: TTWeight((2, 3), 1, std=std, key=key),
    )
    for build in builders:
        with pytest.raises((TypeError, ValueError), match=r"`std` must be"):
            build()


@pytest.mark.parametrize("shape", [(2, -1), (2.5, 3), (2, 0), (), 5])
def test_weight_shape_is_checked(key, shape, library_errors):
    """A negative or fractional size was truncated by int() into another weight: TuckerWeight
    and CPWeight((2, -1)) reconstructed a (2, 1) tensor, (2.5, 3) a (2, 3) one, silently; an
    empty shape divided by zero (CP, TT) or failed inside einsum (Tucker)."""
    builders = (
        lambda: DenseWeight(shape, std=1.0, key=key),
        lambda: TuckerWeight(shape, 0.5, std=1.0, key=key),
        lambda: CPWeight(shape, 1, std=1.0, key=key),
        lambda: TTWeight(shape, 1, std=1.0, key=key),
        lambda: cp_rank(shape, 0.5),
        lambda: tucker_ranks(shape, 0.5),
        lambda: tt_ranks(shape, 0.5),
    )
    for build in builders:
        with pytest.raises(ValueError, match=r"`shape(\[\d\])?` must"):
            build()


def test_tucker_num_params_needs_one_rank_per_axis(library_errors):
    """zip() cut the longer argument: (2, 3, 4) with ranks (1, 1) counted 12 parameters."""
    assert tucker_num_params((2, 3, 4), (1, 1, 1)) == 2 * (1 + 9)
    with pytest.raises(ValueError, match=r"`ranks` must hold one rank per axis of `shape`"):
        tucker_num_params((2, 3, 4), (1, 1))


@pytest.mark.parametrize("factorization", ["tucker", "cp", "tt"])
def test_float64_input_reconstructs_weight_in_float64(x64, key, factorization):
    # float32 factors, float64 input: the factors are widened before the reconstruction, so the
    # output matches a conv whose factors were float64 all along to float64 precision (a
    # complex64 reconstruction widened afterwards is off by ~1e-7).
    conv = SpectralConv(2, 3, 3, (3, 4), factorization=factorization, rank=0.5, key=key)
    wide = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, conv)
    x = jax.random.normal(key, (3, 10, 12), jnp.float64)
    y = conv(x)
    assert y.dtype == jnp.float64
    assert_close(y, wide(x), jnp.float64)


def test_rank_as_numpy_array(key):
    shape = (4, 4, 6, 4)
    assert tucker_ranks(shape, np.array([2, 2, 3, 2])) == (2, 2, 3, 2)
    assert tucker_ranks(shape, np.int64(3)) == (3, 3, 3, 3)
    assert cp_rank(shape, np.array(5)) == 5
    conv = SpectralConv(1, 4, 4, 4, factorization="tucker", rank=np.array([2, 3, 4]), key=key)
    assert conv(jnp.ones((4, 16))).shape == (4, 16)


def test_tucker_rank_sequence_must_hold_integers(key):
    with pytest.raises(ValueError, match="integer rank per axis"):
        tucker_ranks((4, 4, 6), [2, 2.5, 3])
    with pytest.raises(ValueError, match="integer rank per axis"):
        tucker_ranks((4, 4, 6), [2, True, 3])


def test_rank_edge_cases(key):
    """Rank 1 and a tiny fraction (rank-1 fallback, above its budget, as documented); a fraction
    of 1 stays within the dense count; an int Tucker rank above an axis is clipped to it; the
    count grows with the fraction and stays within budget."""
    shape = (3, 4, 6, 5)
    dense = dense_num_params(shape)
    make = functools.partial(eqx.filter_eval_shape, std=1.0, key=key)
    for rank in (1, 1e-9):
        cp, tucker = make(CPWeight, shape, rank), make(TuckerWeight, shape, rank)
        assert cp.rank == 1 and cp.num_params == cp_num_params(shape, 1) == 2 * sum(shape)
        assert tucker.ranks == (1, 1, 1, 1) and tucker.num_params == 2 * (1 + sum(shape))
    assert cp_num_params(shape, cp_rank(shape, 0.02)) > 0.02 * dense  # the fallback
    assert tucker_ranks(shape, 5) == (3, 4, 5, 5)
    assert make(TuckerWeight, shape, 1.0).num_params <= dense
    for f in (0.1, 0.3, 0.6, 1.0):
        assert cp_num_params(shape, cp_rank(shape, f)) <= f * dense
        assert tucker_num_params(shape, tucker_ranks(shape, f)) <= f * dense
    counts = [tucker_num_params(shape, tucker_ranks(shape, f)) for f in (0.1, 0.3, 0.6, 1.0)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_rank_fraction_at_the_budget_boundary_and_the_rank_one_floor(key):
    """The documented count at the boundary: a fraction whose budget rank 1 fills exactly
    keeps rank 1 (``<=``); just below it the rank-1 floor exceeds the budget; a one-mode layer's
    rank-1 weight exceeds even the dense count (SpectralConv's `rank` doc states the floor)."""
    shape = (2, 2, 4)  # a 1-d layer, C_in = C_out = 2, 4 modes: dense 2 * 16 = 32
    dense = dense_num_params(shape)
    assert dense == 32
    # CP rank 1: 2 * (2 + 2 + 4) = 16 = 0.5 * dense; Tucker ones: 2 * (1 + 8) = 18 = 0.5625 dense
    for f, per in ((0.5, cp_num_params(shape, 1)), (0.5625, tucker_num_params(shape, (1,) * 3))):
        assert per == f * dense
    assert cp_rank(shape, 0.5) == 1 and cp_rank(shape, 1.0) == 2  # 2 * 2 * 8 = 32 = dense
    assert tucker_ranks(shape, 0.5625) == (1, 1, 1)
    for f in (0.49, 0.5):  # below the boundary: the floor, over budget
        assert tucker_ranks(shape, f) == (1, 1, 1) and 18 > f * dense
    assert cp_rank(shape, 0.49) == 1 and cp_num_params(shape, 1) > 0.49 * dense
    make = functools.partial(eqx.filter_eval_shape, SpectralConv, 1, 1, 1, 1, key=key)
    assert make().num_params == 2
    assert make(factorization="cp", rank=0.1).num_params == 6 == 2 * (1 + 1 + 1)
    assert make(factorization="tucker", rank=0.1).num_params == 8 == 2 * (1 + 3)


def test_a_weight_swapped_in_without_its_pair_axis_is_refused(library_errors):
    """A ``(1, ...)`` array in place of the stacked (real, imag) pair was read as imag = real
    (the index clamped) without a word."""
    weight = DenseWeight((3, 2, 3), std=1.0, key=jax.random.key(0))
    broken = eqx.tree_at(lambda w: w.weight, weight, weight.weight[:1])
    with pytest.raises(
        ValueError,
        match=r"`DenseWeight.weight` does not fit the layer: got float32\[1, 3, 2, 3\]; "
        r"expected Float\[Array, '2 C_out C_in \*kept'\]\. A parameter replaced",
    ):
        broken.complex()
