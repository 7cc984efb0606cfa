"""Transform-Once: a float64 NumPy reference of the frequency-domain network, frequency
selection, variance-preserving init, resolution change, errors, smoke training vs FNO."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import TransformOnce, select_modes
from tests.helpers import assert_close
from tests.models.smoke import loss_decreases


def _c(p):
    return np.asarray(p[0]) + 1j * np.asarray(p[1])


def _reference(model, x, out_n):
    """float64 NumPy T1 in 1d: rfft/n, keep m modes, encoder, residual layers, decoder, irfft*n."""
    n, m = x.shape[-1], model.modes[0]
    c = np.fft.rfft(x, axis=-1)[:, :m] / n
    act = lambda v: np.asarray(jax.nn.gelu(jnp.asarray(v)))  # noqa: E731
    z = np.einsum("wim,im->wm", _c(model.encoder), c)
    for layer in model.layers:
        v = np.einsum(
            "mn,on->om", _c(layer.mode_weight), np.einsum("oim,im->om", _c(layer.channel_weight), z)
        ) + _c(layer.bias)
        z = z + act(v.real) + 1j * act(v.imag)
    y = np.einsum("owm,wm->om", _c(model.decoder), z)
    full = np.zeros((y.shape[0], out_n // 2 + 1), complex)
    full[:, :m] = y
    return np.fft.irfft(full, n=out_n, axis=-1) * out_n


def test_matches_float64_numpy_reference_and_resolution(x64, key):
    model = TransformOnce(1, 2, 3, 4, 5, 2, dtype=jnp.float64, key=key)
    model = eqx.tree_at(
        lambda t: [layer.bias for layer in t.layers],
        model,
        [0.3 * jnp.ones_like(layer.bias) for layer in model.layers],
    )
    x = jax.random.normal(key, (2, 16), jnp.float64)
    f = jax.jit(lambda u: model(u))
    assert_close(f(x), _reference(model, np.asarray(x), 16), jnp.float64)
    fine = jax.jit(lambda u: model(u, (40,)))(x)
    assert_close(fine, _reference(model, np.asarray(x), 40), jnp.float64)


def test_select_modes_by_energy():
    n = 64
    x = np.arange(n) / n
    y = x[:, None]
    u = (np.sin(2 * np.pi * 2 * x)[:, None] + 0.1 * np.cos(2 * np.pi * 5 * y.T)).reshape(1, 1, n, n)
    # Power 0.5 at mode 2 (axis 0), 0.005 at mode 5 (axis 1): 99% needs |k| < 3, all |k| < 6.
    assert select_modes(u, 2, 0.99) == (3, 3)
    assert select_modes(u, 2, 1.0) == (6, 6)
    with pytest.raises(ValueError, match="energy"):
        select_modes(u, 2, 1.5)


def test_variance_preserving_init():
    """For a band-limited input with unit-variance coefficients, each complex map keeps
    E|c|^2, so the output field's variance matches the input's (to sampling error)."""
    key = jax.random.key(5)
    model = TransformOnce(1, 16, 16, 16, 8, 0, activation="identity", key=key)
    rng = np.random.default_rng(0)
    spec = np.zeros((64, 16, 33), complex)
    spec[..., 1:8] = rng.normal(size=(64, 16, 7)) + 1j * rng.normal(size=(64, 16, 7))
    x = jnp.asarray(np.fft.irfft(spec, n=64, axis=-1), jnp.float32)
    out = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(model, x)
    ratio = float(jnp.var(out) / jnp.var(x))
    assert 0.7 < ratio < 1.4, ratio


def test_errors(key, library_errors):
    model = eqx.filter_eval_shape(TransformOnce, 2, 1, 1, 4, (3, 3), 1, key=key)

    def shape(*s):
        return jax.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct(s, jnp.float32))

    with pytest.raises(ValueError, match="too many"):
        shape(1, 4, 16)
    with pytest.raises(ValueError, match="channels"):
        shape(2, 16, 16)
    with pytest.raises(ValueError, match="spatial axes"):
        shape(1, 16)


def test_t1_loss_decreases():
    t1 = TransformOnce(1, 1, 1, 8, 6, 2, key=jax.random.key(1))
    first, last = loss_decreases(t1, (32,), steps=20)
    assert last < 0.5 * first, (first, last)
