"""Parameter draws: float32/float64 are jax.random's own draws bit for bit (existing seeds and
checkpoints reproduce); half precision is the float32 draw rounded once."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax._random import linear, normal, normals, split_normals, uniform, uniforms
from spectrax.nn import AFNOMixer, CPWeight, TuckerWeight
from tests.helpers import count_compiles


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_full_precision_draws_are_jax_random_in_that_dtype(dtype, x64):
    """Multi-dimensional (drawn flat and reshaped, jitted) and with a scale that is not a power
    of two (XLA once folded it into the draw's own sqrt(2): last bits differed)."""
    key, shape, std = jax.random.key(3), (4, 3, 5), 1.0 / math.sqrt(2.0)
    got = normal(key, shape, dtype, std)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, std * jax.random.normal(key, shape, dtype))
    got = uniform(key, shape, dtype, -0.3, 2.1)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, jax.random.uniform(key, shape, dtype, -0.3, 2.1))
    lin, ref = linear(3, 5, dtype=dtype, key=key), eqx.nn.Linear(3, 5, dtype=dtype, key=key)
    for a, b in zip(jax.tree.leaves(lin), jax.tree.leaves(ref), strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_draws_are_the_float32_draw_rounded_once(dtype):
    """Drawn directly in bfloat16, 4096 normals take 128 distinct values, none beyond 2.89
    sigma; rounded from float32 they take about 1300 and reach 3.6 sigma."""
    key = jax.random.key(0)
    as32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    w = normal(key, (4096,), dtype, 0.5)
    assert w.dtype == dtype
    np.testing.assert_array_equal(
        as32(w), as32(normal(key, (4096,), jnp.float32, 0.5).astype(dtype))
    )
    assert np.unique(as32(w)).size > 1000 and np.abs(as32(w)).max() > 3.2 * 0.5
    u = uniform(key, (4096,), dtype, -1.0, 1.0)
    ref = jax.random.uniform(key, (4096,), jnp.float32, -1.0, 1.0).astype(dtype)
    np.testing.assert_array_equal(as32(u), as32(ref))
    assert np.unique(as32(u)).size > 1000
    lin, ref = linear(3, 5, dtype=dtype, key=key), linear(3, 5, dtype=jnp.float32, key=key)
    for a, b in zip(jax.tree.leaves(lin), jax.tree.leaves(ref), strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(as32(a), as32(b.astype(dtype)))


@pytest.mark.parametrize("partitionable", [True, False])
def test_batched_draws_are_the_single_draws(partitionable, x64):
    """normals/uniforms draw several keys and sizes as one (a prefix of the longest draw, keys
    under jax.vmap): the bits of one draw each; other Threefry modes draw one by one."""
    keys = list(jax.random.split(jax.random.key(5), 3))
    shapes, stds, bounds = (
        [(4, 3), (7,), (2, 2, 2)],
        [0.5, 1.0 / 3.0, 2.0],
        [(-1.0, 1.0), (0.0, 3.0), (-2.0, 0.7)],
    )
    with jax.threefry_partitionable(partitionable):
        for dtype in (jnp.float32,):  # under x64: the scales are float64 Python floats
            got = normals(keys, shapes, dtype, stds)
            for g, k, s, std in zip(got, keys, shapes, stds, strict=True):
                assert g.dtype == dtype
                np.testing.assert_array_equal(g, normal(k, s, dtype, std))
            got = uniforms(keys, shapes, dtype, bounds)
            for g, k, s, (lo, hi) in zip(got, keys, shapes, bounds, strict=True):
                assert g.dtype == dtype
                np.testing.assert_array_equal(g, uniform(k, s, dtype, lo, hi))


def test_linear_is_one_program():
    """linear (the SSM models' encoder, decoder and block mix) compiles once per size (eagerly
    Equinox's split and each draw compiled on its own)."""
    key = jax.random.key(9)
    with count_compiles() as n:
        lin = linear(7, 13, dtype=jnp.float32, key=key)
    assert n[0] == 1 and lin.weight.shape == (13, 7)  # its bits: the first test


def test_split_normals_is_one_program_with_the_split_keys_draws():
    """TuckerWeight, CPWeight, AFNOMixer and TransformOnce draw their weights with it: the
    draws from the keys of one split, in order, one compilation (eagerly one per draw)."""
    key, shapes, stds = jax.random.key(8), [(2, 3), (5,), (1, 2, 2)], [0.7, 0.02, 3.0]
    with count_compiles() as n:
        got = split_normals(key, shapes, jnp.float32, stds)
    assert n[0] == 1
    for g, k, shape, std in zip(got, jax.random.split(key, 3), shapes, stds, strict=True):
        np.testing.assert_array_equal(g, normal(k, shape, jnp.float32, std))


@pytest.mark.parametrize(
    "build",
    [
        lambda k: TuckerWeight((3, 4, 7), 0.5, std=1.0, key=k),
        lambda k: CPWeight((3, 4, 7), 2, std=1.0, key=k),
        lambda k: AFNOMixer(1, 6, 7, num_blocks=3, key=k),
    ],
    ids=["TuckerWeight", "CPWeight", "AFNOMixer"],
)
def test_split_normals_modules_compile_once(build):
    """Eagerly 8, 4 and 4 compilations (the split and every draw)."""
    key = jax.random.key(2)
    with count_compiles() as n:
        build(key)
    assert n[0] == 1
