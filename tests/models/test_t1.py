"""Transform-Once: a float64 NumPy reference of the frequency-domain network, frequency
selection, per-mode spectral standardisation, variance-preserving init, resolution change,
errors, smoke training vs FNO."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import TransformOnce, select_modes, spectral_scale
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


def test_nyquist_mode_and_out_shape(x64, key, library_errors):
    """With the last axis' Nyquist mode kept (n = 8, m = 5) the output on a finer grid agrees
    with the input-grid output at the shared points; a bad out_shape is named."""
    model = TransformOnce(1, 1, 2, 4, 5, 2, dtype=jnp.float64, key=key)
    x = jax.random.normal(key, (1, 8), jnp.float64)
    f = jax.jit(lambda u, out=None: model(u, out), static_argnums=1)
    assert_close(f(x, (16,))[:, ::2], f(x), jnp.float64)
    with pytest.raises(ValueError, match="out_shape"):
        model(x, (16, 16))


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


def test_spectral_scale_closed_form():
    """Fields with known Fourier amplitudes: the RMS of each kept coefficient (norm="forward")
    in the FNO layout, both signs on the first axis, per channel, floored."""
    n = 16
    x = np.arange(n) / n
    rng = np.random.default_rng(3)
    amp = rng.uniform(0.5, 2.0, size=(8, 1, 1))  # per-sample amplitude, E[amp^2] known
    # channel 0: amp * cos(2 pi (2 x + 1 y)): |c| = amp/2 at k = (2, 1) and at (-2, -1) (not
    # in the rfft half-plane), so the kept block holds amp/2 at (2, 1) and nothing else.
    # channel 1: 3 (constant): |c_0| = 3.
    f0 = amp * np.cos(2 * np.pi * (2 * x[:, None] + x[None, :]))
    f1 = np.broadcast_to(3.0, (8, n, n))
    u = np.stack([f0, f1], axis=1)
    scale = spectral_scale(u, (3, 2), floor=1e-3)
    assert scale.shape == (2, 6, 2)
    want0 = np.full((6, 2), 1e-3 * np.sqrt(np.mean(amp**2)) / 2)
    want0[2, 1] = np.sqrt(np.mean(amp**2)) / 2
    want1 = np.full((6, 2), 3e-3)
    want1[0, 0] = 3.0
    np.testing.assert_allclose(scale, np.stack([want0, want1]), rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="floor"):
        spectral_scale(u, (3, 2), floor=0.0)
    with pytest.raises(ValueError, match="too many"):
        spectral_scale(u, (9, 2))


def test_scales_equal_folded_weights(x64, key):
    """Standardising the spectrum is a fixed per-mode reparametrisation: the same function as
    the unscaled model with encoder columns divided by in_scale and decoder rows multiplied by
    out_scale; the scales are static (not parameters) and jit/grad go through."""
    rng = np.random.default_rng(0)
    s_in = rng.uniform(0.1, 2.0, size=(2, 5))
    s_out = rng.uniform(0.1, 2.0, size=(3, 5))
    scaled = TransformOnce(
        1, 2, 3, 4, 5, 2, in_scale=s_in, out_scale=s_out, dtype=jnp.float64, key=key
    )
    plain = TransformOnce(1, 2, 3, 4, 5, 2, dtype=jnp.float64, key=key)
    folded = eqx.tree_at(
        lambda t: (t.encoder, t.decoder),
        plain,
        (plain.encoder / s_in[None, None], plain.decoder * s_out[None, :, None]),
    )
    x = jax.random.normal(key, (2, 16), jnp.float64)
    assert_close(eqx.filter_jit(lambda m, u: m(u))(scaled, x), folded(x), jnp.float64)
    params = eqx.filter(scaled, eqx.is_inexact_array)
    assert len(jax.tree.leaves(params)) == len(
        jax.tree.leaves(eqx.filter(plain, eqx.is_inexact_array))
    )
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(scaled)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_scale_errors(key):
    with pytest.raises(ValueError, match="in_scale"):
        TransformOnce(1, 2, 3, 4, 5, 1, in_scale=np.ones((2, 4)), key=key)
    with pytest.raises(ValueError, match="out_scale.*> 0"):
        TransformOnce(1, 2, 3, 4, 5, 1, out_scale=np.zeros((3, 5)), key=key)


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
