"""Tensor-train spectral weights (TFNO's "tt"): exact reconstruction of any tensor at full rank
(TT-SVD, Oseledets 2011), closed-form parameter counts, the rank-0.1 budget, the dense
initialisation's variance, and the conv equal to a dense conv holding the reconstructed weight."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from spectrax.nn import (
    DenseWeight,
    SpectralConv,
    TTWeight,
    dense_num_params,
    tt_max_ranks,
    tt_num_params,
    tt_ranks,
    tt_reconstruct,
)
from tests.helpers import assert_close

SHAPE = (3, 2, 4, 3)  # (C_out, C_in, 2 m_1, m_2)


def _pair(z):
    return jnp.asarray(np.stack([z.real, z.imag]))


def _dense(rng, shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def _tt_svd(w):
    """TT-SVD (Oseledets 2011, Algorithm 1) at full rank, in NumPy float64: cores
    ``(r_{j-1}, n_j, r_j)`` whose product is ``w`` to rounding."""
    cores, r, rest = [], 1, w
    for n in w.shape[:-1]:
        u, s, vh = np.linalg.svd(rest.reshape(r * n, -1), full_matrices=False)
        cores.append(u.reshape(r, n, s.size))
        rest, r = s[:, None] * vh, s.size
    cores.append(rest.reshape(r, w.shape[-1], 1))
    return cores


def test_full_rank_tt_reconstructs_any_dense_tensor(x64, key):
    w = _dense(np.random.default_rng(0), SHAPE)
    cores = _tt_svd(w)
    full = tt_max_ranks(SHAPE)
    assert full == (1, 3, 6, 3, 1) == tuple([1] + [g.shape[2] for g in cores])
    assert_close(tt_reconstruct([jnp.asarray(g) for g in cores]), w, jnp.float64)
    weight = TTWeight(SHAPE, full, std=1.0, dtype=jnp.float64, key=key)
    assert weight.ranks == full == tt_ranks(SHAPE, 6)  # an int above every full rank: clipped
    weight = eqx.tree_at(lambda t: t.cores, weight, tuple(_pair(g) for g in cores))
    assert_close(weight.complex(), w, jnp.float64)
    assert weight.num_params == tt_num_params(SHAPE, full) == 2 * (9 + 36 + 72 + 9)


def test_reconstruct_against_numpy_einsum(x64):
    rng = np.random.default_rng(1)
    ranks = (1, 2, 3, 2, 1)
    cores = [_dense(rng, (ranks[j], n, ranks[j + 1])) for j, n in enumerate((4, 5, 3, 2))]
    want = np.einsum("aib,bjc,ckd,dle->ijkl", *cores)
    assert_close(tt_reconstruct([jnp.asarray(g) for g in cores]), want, jnp.float64)


def test_parameter_count_closed_form_and_rank_fraction(key):
    width, modes = 32, (12, 12)
    shape = (width, width, 24, 12)
    dense = dense_num_params(shape)
    make = functools.partial(eqx.filter_eval_shape, SpectralConv, 2, width, width, modes, key=key)
    conv = make(factorization="tt", rank=0.1)
    ranks = conv.weight.ranks
    assert ranks == tt_ranks(shape, 0.1) == (1, 25, 25, 12, 1)  # r = 25, clipped to 12 last
    expected = 2 * sum(ranks[j] * n * ranks[j + 1] for j, n in enumerate(shape))
    assert conv.num_params == tt_num_params(shape, ranks) == expected
    assert 0.05 * dense <= conv.num_params <= 0.1 * dense
    # one more rank breaks the budget: the largest uniform rank was taken
    assert tt_num_params(shape, (1, 26, 26, 12, 1)) > 0.1 * dense
    for f in (0.01, 0.3, 0.6, 1.0):
        assert tt_num_params(shape, tt_ranks(shape, f)) <= f * dense
    counts = [tt_num_params(shape, tt_ranks(shape, f)) for f in (0.01, 0.1, 0.3, 1.0)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    # the rank-1 floor, above a tiny budget: 2 sum(shape) (a one-mode scalar layer: 6 > 2)
    assert tt_ranks(shape, 1e-9) == (1,) * 5
    tiny = functools.partial(eqx.filter_eval_shape, SpectralConv, 1, 1, 1, 1, key=key)
    assert tiny(factorization="tt", rank=0.1).num_params == 6 == 2 * (1 + 1 + 1)


def test_init_variance_matches_the_dense_init(key):
    """E|W|^2 = std^2 (the docstring's rule): mean |W|^2 over 48 draws within 15% of the dense
    init's. The tolerance is 4.5 standard errors: one TT draw's mean |W|^2 spreads by 26% (one
    draw shares its cores over all entries; measured over 64 draws), 48 draws by 3.8%. A rule
    that forgot the r_1 ... r_{k-1} terms of each entry would be off by a factor 180 here."""
    shape, std = (16, 16, 8, 5), 0.25
    keys = jax.random.split(key, 48)

    def mean_square(build):
        draw = jax.jit(jax.vmap(lambda k: jnp.mean(jnp.abs(build(k).complex()) ** 2)))
        return float(jnp.mean(draw(keys)))

    tt = mean_square(lambda k: TTWeight(shape, 0.1, std=std, key=k))
    dense = mean_square(lambda k: DenseWeight(shape, std=std, key=k))
    assert abs(dense / std**2 - 1) < 0.01, dense
    assert abs(tt / dense - 1) < 0.15, (tt, dense)
    assert np.prod(tt_ranks(shape, 0.1)) == 180


def test_conv_equals_dense_conv_with_the_reconstructed_weight(x64, key):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 10, 12)))

    @eqx.filter_jit  # built and applied in one program: one compilation
    def both(k):
        conv = SpectralConv(2, 3, 4, (3, 4), factorization="tt", rank=3, dtype=jnp.float64, key=k)
        dense = SpectralConv(2, 3, 4, (3, 4), dtype=jnp.float64, key=k)
        w = conv.weight.complex()
        dense = eqx.tree_at(lambda c: c.weight.weight, dense, jnp.stack([w.real, w.imag]))
        return conv.weight.ranks, conv(x), dense(x)

    ranks, y_tt, y_dense = both(key)
    assert ranks == (1, 3, 3, 3, 1)
    assert_close(y_tt, y_dense, jnp.float64)


def test_jit_vmap_and_gradient(x64, key):
    xs = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 16)))
    conv = eqx.filter_jit(
        lambda k: SpectralConv(1, 3, 2, 5, factorization="tt", rank=0.5, dtype=jnp.float64, key=k)
    )(key)
    params, static = eqx.partition(conv, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    v = jnp.asarray(np.random.default_rng(4).normal(size=flat.shape))

    def loss(p):
        return jnp.sum(jax.vmap(eqx.combine(p, static))(xs) ** 2)

    @jax.jit
    def run(p):
        one = [eqx.combine(p, static)(x) for x in xs]  # vmap equals a loop
        along = [loss(unravel(flat + t * v)) for t in (1e-5, -1e-5)]
        return jax.vmap(eqx.combine(p, static))(xs), jnp.stack(one), jax.grad(loss)(p), along

    batched, looped, grads, (plus, minus) = run(params)
    assert_close(batched, looped, jnp.float64)
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == 3 and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    # directional derivative along a random direction against a central difference
    fd = (plus - minus) / 2e-5
    assert_close(jnp.vdot(ravel_pytree(grads)[0], v), fd, rtol=1e-7)


def test_bad_ranks_and_cores_are_named(key, library_errors):
    shape = (4, 4, 6)
    for rank in (0, 1.5, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match=r"`rank` must be"):
            tt_ranks(shape, rank)
    for rank in ((1, 2, 1), (2, 2, 2, 1), (1, 2, 2, 2), (1, 2, 2.5, 1), (1, 17, 2, 1)):
        with pytest.raises(ValueError, match=r"`rank` as a sequence needs the 4 integer TT"):
            tt_ranks(shape, rank)
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(1, 4, 4, 6, factorization="tt", rank=(1, 2, 1), key=key)
    assert tt_ranks(shape, np.array([1, 3, 5, 1])) == (1, 3, 5, 1)
    assert tt_ranks(shape, np.int64(5)) == (1, 4, 5, 1)
    with pytest.raises(ValueError, match=r"`cores\[1\]` must be \(2, n_1, 1\).*shape=\(3, 5, 1\)"):
        tt_reconstruct([jnp.ones((1, 4, 2), jnp.complex64), jnp.ones((3, 5, 1), jnp.complex64)])
    with pytest.raises(ValueError, match=r"`cores\[0\]` must be \(1, n_0, r_1\)"):
        tt_reconstruct([jnp.ones((2, 4, 2), jnp.complex64), jnp.ones((2, 5, 1), jnp.complex64)])
    with pytest.raises(ValueError, match="at least one core"):
        tt_reconstruct([])
    with pytest.raises(ValueError, match=r"`ranks` must be \(1, r_1, ..., r_\{k-1\}, 1\)"):
        tt_num_params(shape, (1, 2, 1))
