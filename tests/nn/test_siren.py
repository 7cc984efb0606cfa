"""SIREN (Sitzmann et al. 2020): the paper's initialisation and its unit-variance claim, a float64
NumPy forward, the analytic input derivative, and the spectral-bias contrast with a ReLU MLP."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spectrax._random import uniform
from spectrax.nn import SineLayer, Siren, sine_layer, siren_weight_bound
from tests.helpers import assert_close, count_compiles


def _uniform_std(bound):
    return bound / math.sqrt(3.0)


def test_siren_is_drawn_in_one_program_with_the_eager_bits():
    """Every layer's (weight, bias) is drawn from its split key as a lone layer draws it, in one
    compiled program (eagerly: 11 compilations for Siren(2, 64, 1, 3), most of its build)."""
    key, dims = jax.random.key(11), (3, 9, 9, 9, 9, 2)
    with count_compiles() as n:
        siren = Siren(3, 9, 2, 4, omega_0=20.0, hidden_omega_0=5.0, key=key)
    assert n[0] == 1
    keys = jax.random.split(key, 5)
    params = [(layer.weight, layer.bias) for layer in siren.layers]
    for i, (w, b) in enumerate(params + [(siren.final_weight, siren.final_bias)]):
        wkey, bkey = jax.random.split(keys[i])
        c = siren_weight_bound(dims[i], 20.0 if i == 0 else 5.0, i == 0)
        np.testing.assert_array_equal(w, uniform(wkey, (dims[i + 1], dims[i]), jnp.float32, -c, c))
        c = 1.0 / math.sqrt(dims[i])
        np.testing.assert_array_equal(b, uniform(bkey, (dims[i + 1],), jnp.float32, -c, c))


@pytest.mark.parametrize("is_first", [True, False])
def test_init_ranges(key, is_first):
    fan_in, omega = 128, 30.0
    layer = SineLayer(fan_in, 256, omega_0=omega, is_first=is_first, key=key)
    bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / omega
    w = np.asarray(layer.weight, np.float64)
    assert w.shape == (256, fan_in)
    # 32768 draws: the max is within bound*(1 - 1e-3) with overwhelming probability, and the
    # sample std has relative standard error sqrt(0.8/n)/2 ~ 0.25%.
    assert bound * 0.999 < np.abs(w).max() <= bound
    assert abs(w.std() / _uniform_std(bound) - 1.0) < 0.02
    b = np.asarray(layer.bias, np.float64)
    b_bound = 1.0 / math.sqrt(fan_in)
    assert np.abs(b).max() <= b_bound and abs(b.std() / _uniform_std(b_bound) - 1.0) < 0.15


def test_siren_layers_and_final_init(key):
    siren = Siren(2, 256, 3, 3, omega_0=30.0, hidden_omega_0=10.0, key=key)
    first, *hidden = siren.layers
    assert len(hidden) == 2 and first.is_first and first.omega_0 == 30.0
    assert all(not h.is_first and h.omega_0 == 10.0 for h in hidden)
    c = math.sqrt(6.0 / 256) / 10.0
    for w in [h.weight for h in hidden] + [siren.final_weight]:
        assert np.abs(np.asarray(w)).max() <= c
    assert siren.final_weight.shape == (3, 256) and siren.final_bias.shape == (3,)


def test_hidden_preactivations_have_unit_variance(key):
    """Sitzmann et al., Sec. 3.2: with ``h`` the arcsine-distributed output of a sine layer and
    ``W ~ U(+-sqrt(6/n)/omega_0)``, ``omega_0 W h`` has variance ``omega_0^2 n (c^2/3) (1/2) = 1``
    at every depth (the bias adds its own ``omega_0^2 / (3n)`` on top)."""
    siren = Siren(2, 256, 1, 5, key=key)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (512, 2)), jnp.float32)

    @jax.jit
    def stds(x):
        out, h = [], jax.vmap(siren.layers[0])(x)
        for layer in siren.layers[1:]:
            out.append(jnp.std(layer.omega_0 * (h @ layer.weight.T)))
            h = jax.vmap(layer)(h)
        return jnp.stack(out)

    np.testing.assert_allclose(stds(x), 1.0, rtol=0.08)


def _numpy_siren(siren, x):
    h = np.asarray(x, np.float64)
    for layer in siren.layers:
        w, b = np.asarray(layer.weight, np.float64), np.asarray(layer.bias, np.float64)
        h = np.sin(layer.omega_0 * (w @ h + b))
    return np.asarray(siren.final_weight, np.float64) @ h + np.asarray(siren.final_bias)


def test_forward_matches_float64_numpy(x64, key):
    siren = Siren(3, 16, 2, 3, omega_0=20.0, hidden_omega_0=25.0, dtype=jnp.float64, key=key)
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (6, 3)))
    got = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(siren, x)
    expected = np.stack([_numpy_siren(siren, u) for u in np.asarray(x)])
    assert got.dtype == jnp.float64
    assert_close(got, expected, jnp.float64)


def test_float64_input_is_not_narrowed(x64, key):
    """float32 parameters with a float64 input compute in float64 (the library's rule: the
    parameters are widened, the input never narrowed), so the result equals the float64 NumPy
    forward on the float32 parameters; narrowing x to float32 would cost ~1e-7 relative
    (amplified by omega_0 = 30), far above the float64 tolerance."""
    siren = Siren(3, 16, 2, 3, key=key)
    assert siren.final_weight.dtype == jnp.float32
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (6, 3)))
    got = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(siren, x)
    assert got.dtype == jnp.float64
    expected = np.stack([_numpy_siren(siren, u) for u in np.asarray(x)])
    assert_close(got, expected, jnp.float64)
    layer = siren.layers[0]
    y = layer(x[0])
    assert y.dtype == jnp.float64
    w, b = np.asarray(layer.weight, np.float64), np.asarray(layer.bias, np.float64)
    assert_close(y, np.sin(30.0 * (w @ np.asarray(x[0]) + b)), jnp.float64)
    # A float32 input keeps the float32 computation, and half-precision parameters stay a
    # half-precision policy for a float32 input.
    assert siren(x[0].astype(jnp.float32)).dtype == jnp.float32
    half = Siren(3, 16, 2, 3, dtype=jnp.bfloat16, key=key)
    assert half(x[0].astype(jnp.float32)).dtype == jnp.bfloat16


def test_input_derivative_is_analytic(x64, key):
    """``d/dx sin(omega_0 (W x + b)) = omega_0 cos(omega_0 (W x + b)) W``."""
    layer = SineLayer(4, 5, omega_0=30.0, is_first=True, dtype=jnp.float64, key=key)
    x = jnp.asarray([0.3, -0.7, 0.1, 0.9])
    w, b = np.asarray(layer.weight), np.asarray(layer.bias)
    analytic = 30.0 * np.cos(30.0 * (w @ np.asarray(x) + b))[:, None] * w
    assert_close(jax.jacrev(layer)(x), analytic, jnp.float64)
    u = jnp.asarray([1.0, -2.0, 0.5, 0.0, 3.0])
    assert_close(jax.grad(lambda v: u @ layer(v))(x), np.asarray(u) @ analytic, jnp.float64)


def _fit(model, x, y, steps, lr):
    params, static = eqx.partition(model, eqx.is_array)
    opt = optax.adam(lr)

    def loss(p):
        return jnp.mean((jax.vmap(eqx.combine(p, static))(x) - y) ** 2)

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        updates, s = opt.update(g, s, p)
        return (optax.apply_updates(p, updates), s), None

    @jax.jit
    def run(p):
        (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
        return loss(p)

    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        return float(run(params))


def test_siren_beats_relu_on_high_frequency(key):
    """Spectral bias: 200 Adam steps on ``sin(2 pi 4 x)``, 64 points on [-1, 1] (8 periods).
    Measured with this key (and keys 1-3): Siren MSE 4e-5 (3e-11 .. 1e-6); the ReLU MLP of the
    same size stays at ~0.47, the variance of the target (0.5): it has not started to fit the
    oscillation. The asserted factor 1e3 leaves a wide margin on both sides."""
    x = jnp.linspace(-1.0, 1.0, 64)[:, None]
    y = jnp.sin(2 * jnp.pi * 4.0 * x)
    siren = Siren(1, 32, 1, 3, key=key)
    relu = eqx.nn.MLP(1, 1, 32, 3, activation=jax.nn.relu, key=key)
    siren_mse = _fit(siren, x, y, 200, 1e-3)
    relu_mse = _fit(relu, x, y, 200, 1e-3)
    assert siren_mse < 1e-3, siren_mse
    assert relu_mse > 0.1, relu_mse
    assert relu_mse > 1e3 * siren_mse


def test_errors(key, library_errors):
    with pytest.raises(ValueError, match="`x`.*\\(3,\\)"):
        SineLayer(3, 4, key=key)(jnp.ones((4,)))
    with pytest.raises(ValueError, match="`x`.*\\(2,\\)"):
        Siren(2, 8, 1, 2, key=key)(jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="`depth`"):
        Siren(2, 8, 1, 0, key=key)
    with pytest.raises(ValueError, match="`omega_0`"):
        SineLayer(3, 4, omega_0=0.0, key=key)
    # The pure functions: shapes and types named, not a bare dot_general/broadcast error.
    w, b = jnp.ones((4, 2)), jnp.ones(4)
    with pytest.raises(ValueError, match=r"`x`, `weight`, `bias`.*x.shape=\(3,\)"):
        sine_layer(jnp.ones(3), w, b, 30.0)
    with pytest.raises(ValueError, match=r"bias.shape=\(3,\)"):
        sine_layer(jnp.ones(2), w, jnp.ones(3), 30.0)
    with pytest.raises(TypeError, match="`x`.*int32"):
        sine_layer(jnp.ones(2, jnp.int32), w, b, 30.0)
    with pytest.raises(ValueError, match="`in_features`.*0"):
        siren_weight_bound(0, 30.0, False)
    with pytest.raises(ValueError, match="`in_features`.*-3"):
        siren_weight_bound(-3, 30.0, True)  # was a negative "bound"
    with pytest.raises(ValueError, match="`omega_0`"):
        siren_weight_bound(4, 0.0, False)


@pytest.mark.parametrize(
    "omega_0,error,match",
    [
        (0.0, ValueError, r"`omega_0` must be a finite number > 0; got 0.0"),
        (-30.0, ValueError, r"`omega_0` must be a finite number > 0; got -30.0"),
        (float("nan"), ValueError, r"`omega_0` must be a finite number > 0; got nan"),
        (float("inf"), ValueError, r"`omega_0` must be a finite number > 0; got inf"),
        (jnp.ones(4), ValueError, r"`omega_0` must be a scalar.*shape \(4,\)"),
        (jnp.asarray(30), TypeError, r"`omega_0` must be a real floating-point array.*int32"),
        ("30", TypeError, r"`omega_0` must be a Python float"),
        # a concrete JAX scale is checked as a number (it gave NaN or sign-flipped features)
        (jnp.asarray(float("nan")), ValueError, r"`omega_0` must be a finite number > 0; got nan"),
        (jnp.asarray(-30.0), ValueError, r"`omega_0` must be a finite number > 0; got -30.0"),
    ],
)
def test_sine_layer_refuses_bad_omega_0(omega_0, error, match, library_errors):
    # the pure function took any of these: sin(0) = 0, sign-flipped or NaN features, or a
    # (D_out,) array broadcast as per-unit frequencies, silently
    w, b = jnp.ones((4, 2)), jnp.ones(4)
    with pytest.raises(error, match=match):
        sine_layer(jnp.ones(2), w, b, omega_0)


def test_sine_layer_traced_omega_0(x64):
    """A JAX scalar omega_0 may be traced (d/d omega_0 = (Wx + b) cos(omega_0 (Wx + b)))."""
    w, b, x = jnp.ones((3, 2)), jnp.arange(3.0), jnp.asarray([0.5, -0.25])
    h = w @ x + b
    got = jax.grad(lambda o: jnp.sum(sine_layer(x, w, b, o)))(jnp.asarray(2.0))
    assert_close(got, jnp.sum(h * jnp.cos(2.0 * h)))
    assert sine_layer(x, w, b, jnp.asarray(2.0, jnp.float32)).dtype == jnp.float64


@pytest.mark.parametrize("is_first", ["False", 1, None, jnp.asarray(True)])
def test_is_first_must_be_a_bool(key, is_first, library_errors):
    # bool() took "False" as True and 0/None as False: the other init, silently
    with pytest.raises(TypeError, match=r"`is_first` must be a Python bool; got "):
        SineLayer(2, 3, is_first=is_first, key=key)
    with pytest.raises(TypeError, match=r"`is_first` must be a Python bool; got "):
        siren_weight_bound(2, 30.0, is_first)
    assert SineLayer(2, 3, is_first=np.bool_(True), key=key).is_first is True


def test_half_precision_init_is_the_float32_draw_rounded_once(key):
    """jax.random.uniform in bfloat16 takes only 128 equally spaced values; the weights and
    biases are now drawn in float32 and rounded once, as the parameters of every other dtype."""
    ref = Siren(2, 16, 1, 1, key=key)
    for dtype in (jnp.bfloat16, jnp.float16):
        half = Siren(2, 16, 1, 1, dtype=dtype, key=key)
        for a, b in zip(jax.tree.leaves(half), jax.tree.leaves(ref), strict=True):
            assert a.dtype == dtype
            np.testing.assert_array_equal(
                np.asarray(a, np.float32), np.asarray(b.astype(dtype), np.float32)
            )


def test_half_precision_layer_rounds_once(key):
    """A bfloat16 first layer (omega_0 = 30) against float64 arithmetic on the same bfloat16
    parameters and inputs: W x + b used to be rounded to bfloat16 before the scaling by omega_0,
    off by up to 0.23 of the unit output (rms 0.026); accumulated and taken through the sine
    in float32 and rounded once, it is within half a bfloat16 ulp of 1, 2^-9 (measured 0.002)."""
    layer = SineLayer(2, 256, is_first=True, dtype=jnp.bfloat16, key=key)
    x = jax.random.uniform(jax.random.key(1), (512, 2), jnp.float32, -1.0, 1.0)
    x = x.astype(jnp.bfloat16)
    y = jax.vmap(layer)(x)
    assert y.dtype == jnp.bfloat16
    w, b, x64_ = (np.asarray(a, np.float64) for a in (layer.weight, layer.bias, x))
    ref = np.sin(30.0 * (x64_ @ w.T + b))
    assert np.abs(np.asarray(y, np.float64) - ref).max() <= 2.0**-9 + 1e-5  # + float32 sine


def test_half_precision_layer_keeps_float32_coordinates(key):
    """A bfloat16 first layer fed float32 coordinates (the usual policy: parameters in bfloat16,
    a coordinate grid in float32) used to round the coordinates to bfloat16 before the product:
    8 significant bits merge neighbouring points of a 1024-point grid on [-1, 1] and put up to
    0.05 into the unit output at omega_0 = 30. Against float64 arithmetic on the same bfloat16
    parameters and the float32 coordinates it is now within the one final rounding, 2^-9."""
    layer = SineLayer(2, 64, is_first=True, dtype=jnp.bfloat16, key=key)
    grid = jnp.linspace(-1.0, 1.0, 1024, dtype=jnp.float32)
    x = jnp.stack([grid, grid[::-1]], axis=-1)
    y = jax.vmap(layer)(x)
    assert y.dtype == jnp.bfloat16
    w, b, x64_ = (np.asarray(a, np.float64) for a in (layer.weight, layer.bias, x))
    ref = np.sin(30.0 * (x64_ @ w.T + b))
    assert np.abs(np.asarray(y, np.float64) - ref).max() <= 2.0**-9 + 1e-5


def test_numpy_float64_parameters_compute_in_float32_without_x64():
    """A module's NumPy float64 parameters outside 64-bit mode compute in JAX's float32 (as any
    JAX input): ``sine_layer`` on NumPy float64 arrays asked for float64 and JAX warned that it
    truncates."""
    from spectrax._checks import module_compute_dtype

    assert module_compute_dtype(jnp.float32, np.float64) == jnp.float32
    assert module_compute_dtype(np.float64, np.float64) == jnp.float32
    assert module_compute_dtype(jnp.bfloat16, jnp.bfloat16) == jnp.bfloat16
