"""AFNO network: patching round trip, jit/vmap, gradients, errors, smoke training."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import AFNO, patchify, unpatchify
from tests.helpers import assert_close
from tests.models.smoke import loss_decreases


def test_patchify_round_trip_and_layout():
    x = jnp.arange(2 * 4 * 6, dtype=jnp.float32).reshape(2, 4, 6)
    p = patchify(x, 2)
    assert p.shape == (8, 2, 3)
    # Channel c * 4 + 2 i + j of token (a, b) is x[c, 2a + i, 2b + j].
    np.testing.assert_array_equal(p[1 * 4 + 1 * 2 + 0, 1, 2], x[1, 3, 4])
    np.testing.assert_array_equal(unpatchify(p, 2, 2), x)


def test_jit_vmap_gradients_and_patches(key):
    model = AFNO(2, 2, 1, 8, (2, 2), 2, patch_size=2, num_blocks=2, key=key)
    x = jax.random.normal(key, (2, 2, 8, 12))

    @eqx.filter_jit  # one compiled program: vmapped, single-example and gradient
    def run(model, x):
        grads = eqx.filter_grad(lambda m: jnp.sum(jax.vmap(m)(x) ** 2))(model)
        return jax.vmap(model)(x), model(x[1]), grads

    out, single, grads = run(model, x)
    assert out.shape == (2, 1, 8, 12)
    assert_close(out[1], single, jnp.float32)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


def test_errors(key, library_errors):
    model = eqx.filter_eval_shape(AFNO, 2, 2, 1, 8, 2, 1, patch_size=2, num_blocks=2, key=key)

    def shape(*s):
        return jax.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct(s, jnp.float32))

    with pytest.raises(ValueError, match="patch_size"):
        shape(2, 8, 9)
    with pytest.raises(ValueError, match="too many"):
        shape(2, 4, 8)
    with pytest.raises(ValueError, match="spatial axes"):
        shape(2, 8)
    with pytest.raises(ValueError, match="mlp_ratio"):
        AFNO(2, 2, 1, 8, 2, 1, mlp_ratio=-1.0, key=key)
    with pytest.raises(ValueError, match="`num_blocks`=8 must divide `width`=12"):
        AFNO(2, 2, 1, 12, 2, 1, key=key)


def test_float64_input_is_not_narrowed(x64, key):
    """float32 parameters, float64 input: computed in float64 (the parameters widened), equal to
    the same model with float64 parameters."""
    model = AFNO(2, 2, 1, 8, (2, 2), 2, patch_size=2, num_blocks=2, key=key)
    wide = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model)
    x = jax.random.normal(key, (2, 8, 12), jnp.float64)
    call = eqx.filter_jit(lambda m, x: m(x))  # compiled, not dispatched op by op
    y = call(model, x)
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(y), np.asarray(call(wide, x)), rtol=1e-12, atol=1e-12)
    assert call(model, x.astype(jnp.float32)).dtype == jnp.float32


def test_afno_loss_decreases():
    model = AFNO(1, 1, 1, 16, 6, 2, num_blocks=4, key=jax.random.key(1))
    first, last = loss_decreases(model, (32,), steps=20)
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("flag", ["False", 0, None])
def test_positional_grid_must_be_a_bool(key, flag, library_errors):
    # taken by truthiness: positional_grid="False" added the grid channels, silently
    with pytest.raises(TypeError, match=r"`positional_grid` must be a Python bool; got "):
        eqx.filter_eval_shape(AFNO, 1, 2, 1, 8, 2, 1, positional_grid=flag, key=key)
    # a NumPy bool is a bool (closed over: filter_eval_shape would trace it as an array)
    model = eqx.filter_eval_shape(
        lambda: AFNO(1, 2, 1, 8, 2, 1, positional_grid=np.bool_(0), key=key)
    )
    assert model.embed.in_channels == 2


def test_patchify_and_unpatchify_name_bad_arguments(library_errors):
    # these failed in a bare reshape ("cannot reshape array") or with ZeroDivisionError
    with pytest.raises(ValueError, match=r"`x` spatial shape \(8,\) must be a multiple of"):
        patchify(jnp.ones((2, 8)), 3)
    with pytest.raises(ValueError, match="`patch` must be an integer >= 1; got 0"):
        patchify(jnp.ones((2, 8)), 0)
    with pytest.raises(
        ValueError, match=r"`y` has 5 channels.*channels \* patch\^d = 2 \* 2\^1 = 4"
    ):
        unpatchify(jnp.ones((5, 4)), 2, 2)
    with pytest.raises(ValueError, match="`channels` must be an integer >= 1; got 0"):
        unpatchify(jnp.ones((4, 4)), 2, 0)


def test_batch_sharded_over_an_explicit_mesh(key):
    """``jax.make_mesh``'s default (Explicit axes), batch sharded over ``data``: the patch
    reshapes split several axes at once, which JAX's sharding rule refused under vmap ("This
    reshape is not supported"); the gradient equals the unsharded one."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((4,), ("data",), devices=jax.devices()[:4])
    model = AFNO(2, 1, 1, 8, 2, 1, patch_size=2, num_blocks=2, key=key)
    a = jax.random.normal(jax.random.key(1), (4, 1, 8, 8))
    grad = eqx.filter_jit(eqx.filter_grad(lambda m, a: jnp.sum(jax.vmap(m)(a) ** 2)))
    expected = grad(model, a)
    with jax.set_mesh(mesh):
        got = grad(model, jax.device_put(a, NamedSharding(mesh, PartitionSpec("data"))))
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert_close(g, e, rtol=1e-5)
