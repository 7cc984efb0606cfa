"""Pointwise channel maps (1x1 convolution, channel MLP, channel layer norm): input checks."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax._random import uniform
from spectrax.models import AFNO
from spectrax.nn import (
    ChannelLayerNorm,
    ChannelMLP,
    GroupNorm,
    PointwiseLinear,
    SoftGating,
    pointwise_linear,
)
from tests.helpers import assert_close, count_compiles

_W, _B = jnp.ones((3, 2)), jnp.ones(3)


@pytest.mark.parametrize(
    "x,weight,bias,error,match",
    [
        # a complex x lost its imaginary part and an int weight made the product integer,
        # silently; a 3-d weight or a (3, 1) bias broadcast to a wrong shape without a word
        (jnp.ones((2, 5), jnp.complex64), _W, _B, TypeError, r"`x` must be a real float"),
        (jnp.ones((2, 5), jnp.int32), _W, _B, TypeError, r"`x` must be a real float.*int32"),
        (jnp.ones((2, 5)), _W.astype(jnp.int32), _B, TypeError, r"`weight` must be a real"),
        (jnp.ones((2, 5)), jnp.ones((3, 2, 1)), _B, ValueError, r"weight.shape=\(3, 2, 1\)"),
        (jnp.ones((2, 5)), _W, jnp.ones((3, 1)), ValueError, r"bias.shape=\(3, 1\)"),
        (jnp.ones((2, 5)), _W, jnp.ones(4), ValueError, r"bias.shape=\(4,\)"),
        (jnp.ones((3, 5)), _W, None, ValueError, r"`x`, `weight`, `bias`.*x.shape=\(3, 5\)"),
        (jnp.ones(()), _W, None, ValueError, r"x.shape=\(\)"),
        ([[1.0]], _W, None, TypeError, r"`x` must be a jax.Array.*got list"),
        (jnp.ones((2, 5)), _W, [1.0, 2.0, 3.0], TypeError, r"`bias` must be a jax.Array"),
    ],
)
def test_pointwise_linear_errors(x, weight, bias, error, match, library_errors):
    with pytest.raises(error, match=match):
        pointwise_linear(x, weight, bias)


def test_modules_refuse_a_non_float_x(library_errors):
    # an int field was cast to float32 without a word; a list failed with AttributeError
    key = jax.random.key(0)
    for layer in (PointwiseLinear(2, 3, key=key), ChannelMLP(2, 4, 3, key=key)):
        with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*int32"):
            layer(jnp.ones((2, 5), jnp.int32))
        with pytest.raises(TypeError, match=r"`x` must be a jax.Array or NumPy array"):
            layer([[1.0], [2.0]])


@pytest.mark.parametrize("flag", ["False", 0, None, jnp.asarray(True)])
def test_use_bias_must_be_a_bool(flag, library_errors):
    # taken by truthiness: "False" kept a bias, 0 or None dropped it, silently
    with pytest.raises(TypeError, match=r"`use_bias` must be a Python bool; got "):
        PointwiseLinear(2, 3, use_bias=flag, key=jax.random.key(0))


def test_channel_mlp_names_its_own_arguments(library_errors):
    key = jax.random.key(0)
    # a zero hidden width was reported as `out_channels` (that of the inner layer)
    with pytest.raises(ValueError, match=r"`hidden_channels` must be an integer >= 1; got 0"):
        ChannelMLP(2, 0, 3, key=key)
    # a list failed as "unhashable type: 'list'"
    with pytest.raises(ValueError, match=r"`activation` must be a callable or one of.*\['gelu'\]"):
        ChannelMLP(2, 4, 3, activation=["gelu"], key=key)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        # eps was float()-ed: 0 or a negative one gave inf/NaN on a constant field, "1e-5"
        # and True were accepted; an int dtype gave integer scale and shift
        ({"eps": 0.0}, ValueError, r"`eps` must be a finite number > 0; got 0.0"),
        ({"eps": -1e-5}, ValueError, r"`eps` must be a finite number > 0"),
        ({"eps": float("nan")}, ValueError, r"`eps` must be a finite number > 0; got nan"),
        ({"eps": "1e-5"}, TypeError, r"`eps` must be a Python float"),
        ({"dtype": jnp.int32}, TypeError, r"`dtype` must be a real floating-point type.*int32"),
        ({"dtype": "foo"}, TypeError, r"`dtype` must be a real floating-point type.*'foo'"),
    ],
)
def test_channel_layer_norm_constructor_errors(kwargs, error, match, library_errors):
    with pytest.raises(error, match=match):
        ChannelLayerNorm(3, **kwargs)


def test_channel_layer_norm_refuses_one_channel(library_errors):
    """ChannelLayerNorm(1) returned its shift for every input (zero variance over one channel),
    and so did every AFNO block of width 1; both are refused by name."""
    with pytest.raises(ValueError, match=r"`channels`=1: a layer norm over one channel"):
        ChannelLayerNorm(1)
    with pytest.raises(ValueError, match=r"`width` must be an integer >= 2; got 1"):
        AFNO(1, 1, 1, 1, 3, 1, num_blocks=1, key=jax.random.key(0))


def test_channel_layer_norm_call_errors(library_errors):
    norm = ChannelLayerNorm(3)
    # one channel broadcast against the 3 scales: a (3, 5) output from a (1, 5) field, silently
    with pytest.raises(ValueError, match=r"`x` must have 3 channels on axis 0.*\(1, 5\)"):
        norm(jnp.ones((1, 5)))
    with pytest.raises(ValueError, match=r"`x` must have 3 channels on axis 0.*\(\)"):
        norm(jnp.ones(()))
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*complex64"):
        norm(jnp.ones((3, 5), jnp.complex64))
    with pytest.raises(TypeError, match=r"`x` must be a jax.Array or NumPy array"):
        norm([[1.0], [2.0], [3.0]])


@pytest.mark.usefixtures("x64")
def test_activation_names(library_errors):
    """ "gelu" is JAX's tanh approximation; "gelu_exact" the erf form (PyTorch, neuraloperator)."""
    from spectrax.nn import ACTIVATIONS
    from spectrax.nn._pointwise import get_activation

    x = jnp.linspace(-4.0, 4.0, 81)
    exact = jnp.asarray([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.tolist()])
    assert_close(get_activation("gelu_exact")(x), exact, rtol=1e-14)
    approx = ACTIVATIONS["gelu"](x)
    assert 1e-4 < float(jnp.max(jnp.abs(approx - exact))) < 1e-3  # the tanh form, not the erf
    with pytest.raises(ValueError, match=r"`activation` must be .*'gelu_exact'.*got 'gelu_erf'"):
        get_activation("gelu_erf")


def test_channel_mlp_is_drawn_in_one_program_with_the_eager_bits():
    """fc1 and fc2 are PointwiseLinear's U(+-1/sqrt(C_in)) draws from the halves of the two
    halves of the key, drawn in one compiled program (eagerly: 6 compilations)."""
    key = jax.random.key(4)
    with count_compiles() as n:
        mlp = ChannelMLP(5, 11, 3, key=key)
    assert n[0] == 1
    for layer, k, (c_in, c_out) in zip(
        (mlp.fc1, mlp.fc2), jax.random.split(key), ((5, 11), (11, 3)), strict=True
    ):
        wkey, bkey = jax.random.split(k)
        lim = 1.0 / math.sqrt(c_in)
        np.testing.assert_array_equal(
            layer.weight, uniform(wkey, (c_out, c_in), jnp.float32, -lim, lim)
        )
        np.testing.assert_array_equal(layer.bias, uniform(bkey, (c_out,), jnp.float32, -lim, lim))


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm_matches_a_float64_numpy_reference(x64, groups):
    """Each group of C / G channels is normalised over its channels and every grid point
    (G = 1: a layer norm over channels and space; G = C: an instance norm), then scaled and
    shifted per channel."""
    rng = np.random.default_rng(groups)
    x = rng.normal(size=(6, 5, 4)) * 3.0 + 1.0
    scale, shift = rng.normal(size=6), rng.normal(size=6)
    norm = eqx.tree_at(
        lambda m: (m.scale, m.shift),
        GroupNorm(groups, 6, dtype=jnp.float64),
        (jnp.asarray(scale), jnp.asarray(shift)),
    )
    g = x.reshape(groups, -1)
    ref = ((g - g.mean(1, keepdims=True)) / np.sqrt(g.var(1, keepdims=True) + 1e-5)).reshape(
        x.shape
    )
    ref = ref * scale[:, None, None] + shift[:, None, None]
    y = norm(jnp.asarray(x))
    assert y.dtype == jnp.float64
    assert_close(y, ref, rtol=1e-12)


def test_group_norm_is_grid_free_on_band_limited_fields(x64):
    """Mean and variance over the grid are those of the function for a band-limited field on a
    fine enough grid, so the norm maps the same function to the same function on any grid."""
    norm = GroupNorm(2, 4, dtype=jnp.float64)

    def field(n):
        t = np.arange(n) / n
        rows = [np.cos(2 * np.pi * k * t) + 0.5 * k for k in range(1, 5)]
        return jnp.asarray(np.stack(rows))

    assert_close(norm(field(32))[:, ::2], norm(field(16)), rtol=1e-12)


def test_group_norm_dtypes():
    """The input's dtype out (a residual-stream layer); half precision is normalised in float32
    and rounded once."""
    x = jax.random.normal(jax.random.key(0), (4, 16)) * 5.0 + 3.0
    norm = GroupNorm(1, 4)
    y16 = norm(x.astype(jnp.bfloat16))
    assert y16.dtype == jnp.bfloat16
    # bit for bit the float32 result rounded once (normalising in bfloat16 is ~1e-2 off)
    want = norm(x.astype(jnp.bfloat16).astype(jnp.float32)).astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(y16, np.float32), np.asarray(want, np.float32))
    assert GroupNorm(1, 4, dtype=jnp.bfloat16)(x).dtype == jnp.float32


def test_channel_layer_norm_dtypes():
    """As GroupNorm: the input's dtype out, half precision normalised in float32 and rounded
    once. Normalised in bfloat16, a field with a mean offset was 0.078 off the float64 norm
    (C = 64, mean 10, std 0.5), ten times one final rounding."""
    x = (jax.random.normal(jax.random.key(0), (64, 16, 16)) * 0.5 + 10.0).astype(jnp.bfloat16)
    norm = ChannelLayerNorm(64)
    y16 = norm(x)
    assert y16.dtype == jnp.bfloat16
    want = norm(x.astype(jnp.float32)).astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(y16, np.float32), np.asarray(want, np.float32))
    h = np.asarray(x.astype(jnp.float32), np.float64)
    ref = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5)
    # one rounding of values below 4 in magnitude: at most half a bfloat16 ulp there, 2**-7
    assert np.abs(ref).max() < 4.0
    assert np.abs(np.asarray(y16, np.float64) - ref).max() <= 2.0**-7
    assert ChannelLayerNorm(64, dtype=jnp.bfloat16)(x.astype(jnp.float32)).dtype == jnp.float32


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((4, 6), {}, ValueError, r"`groups`=4 must divide `channels`=6"),
        ((0, 6), {}, ValueError, r"`groups` must be an integer >= 1; got 0"),
        ((1, 0), {}, ValueError, r"`channels` must be an integer >= 1; got 0"),
        ((1, 6), {"eps": 0.0}, ValueError, r"`eps` must be a finite number > 0"),
        ((1, 6), {"dtype": jnp.int32}, TypeError, r"`dtype` must be a real floating-point"),
    ],
)
def test_group_norm_constructor_errors(args, kwargs, error, match, library_errors):
    with pytest.raises(error, match=match):
        GroupNorm(*args, **kwargs)


def test_group_norm_call_errors(library_errors):
    norm = GroupNorm(2, 4)
    # one value per group: its variance is 0 and the output was the shift, silently
    with pytest.raises(ValueError, match=r"one value per group.*x.shape=\(4,\)"):
        GroupNorm(4, 4)(jnp.ones(4))
    with pytest.raises(ValueError, match=r"`x` must have 4 channels on axis 0.*\(2, 5\)"):
        norm(jnp.ones((2, 5)))
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*complex64"):
        norm(jnp.ones((4, 5), jnp.complex64))


def test_soft_gating(library_errors):
    """A per-channel scale starting at 1, in the parameters' dtype (float64 for float64 input)."""
    x = jax.random.normal(jax.random.key(0), (3, 5))
    gate = SoftGating(3)
    assert_close(gate(x), x, jnp.float32)
    gate = eqx.tree_at(lambda g: g.weight, gate, jnp.asarray([2.0, -1.0, 0.5]))
    assert_close(gate(x), jnp.asarray([2.0, -1.0, 0.5])[:, None] * x, jnp.float32)
    assert SoftGating(3, dtype=jnp.bfloat16)(x).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match=r"`x` must have 3 channels on axis 0.*\(2, 5\)"):
        gate(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"`channels` must be an integer >= 1; got 0"):
        SoftGating(0)
