"""Fourier features: the float64 formula, cos^2 + sin^2 = 1, the Gaussian kernel they estimate
(Rahimi & Recht; Tancik et al. 2020), a frozen B gets no gradient, NeRF positional encoding."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spectrax.nn import FourierFeatures, fourier_features, positional_encoding
from tests.helpers import assert_close

# Test data from NumPy: no per-shape compilation of jax.random calls.
_rng = np.random.default_rng


def _uniform(seed, shape, lo=0.0, hi=1.0, dtype=jnp.float32):
    return jnp.asarray(_rng(seed).uniform(lo, hi, shape), dtype)


def _normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(_rng(seed).standard_normal(shape), dtype)


def _reference(x, B):
    phase = 2 * np.pi * np.asarray(x, np.float64) @ np.asarray(B, np.float64).T
    return np.concatenate([np.cos(phase), np.sin(phase)], axis=-1)


def test_matches_float64_formula(x64):
    x = _uniform(1, (4, 5, 3), dtype=jnp.float64)
    B = 10.0 * _normal(2, (16, 3), jnp.float64)
    got = jax.jit(fourier_features)(x, B)
    assert got.shape == (4, 5, 32) and got.dtype == jnp.float64
    assert_close(got, _reference(x, B), jnp.float64)


def test_float32_phase_accuracy():
    # sigma = 10: phases up to ~100 rad, so float32 rounding gives ~1e-5 absolute error.
    x = _uniform(1, (64, 2))
    B = 10.0 * _normal(2, (32, 2))
    got = fourier_features(x, B)
    assert got.dtype == jnp.float32
    assert_close(got, _reference(x, B), rtol=5e-5)


def test_norm_is_num_features(key):
    ff = FourierFeatures(3, 50, sigma=7.0, key=key)
    x = _normal(3, (20, 3))
    sq = jnp.sum(eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(ff, x) ** 2, axis=-1)
    np.testing.assert_allclose(sq, 50.0, rtol=1e-5)


def test_init_is_gaussian_with_sigma(key):
    ff = FourierFeatures(4, 4096, sigma=3.0, key=key)
    assert ff.B.shape == (4096, 4) and ff.B.dtype == jnp.float32
    # 16384 samples: the sample std has relative standard error 1/sqrt(2n) ~ 0.6%.
    assert abs(float(jnp.std(ff.B)) / 3.0 - 1.0) < 0.03
    assert abs(float(jnp.mean(ff.B))) < 0.1


def test_kernel_approximates_gaussian(key):
    """``gamma(x).gamma(y)/F = mean_j cos(2 pi b_j.(x - y))`` with ``E = k(d) =
    exp(-2 pi^2 sigma^2 |d|^2)`` and per-term variance ``(1 + k(d)^4)/2 - k(d)^2 <= 1/2``."""
    sigma, F = 1.0, 4096
    ff = FourierFeatures(2, F, sigma=sigma, key=key)
    pts = _uniform(4, (24, 2), 0.0, 0.4)
    feats = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(ff, pts)
    approx = np.asarray(feats @ feats.T, np.float64) / F
    d2 = np.sum((np.asarray(pts)[:, None] - np.asarray(pts)[None]) ** 2, axis=-1)
    exact = np.exp(-2 * np.pi**2 * sigma**2 * d2)
    assert exact.min() < 0.05  # the pairs span the kernel from ~0 to 1
    std = np.sqrt(((1 + exact**4) / 2 - exact**2) / F)
    # 276 distinct pairs: 5 standard errors, with a floor for the diagonal (std 0).
    assert np.all(np.abs(approx - exact) <= 5 * std + 1e-5), np.max(np.abs(approx - exact) / std)
    # The Monte-Carlo error is of the predicted size, not far smaller (e.g. a degenerate B). The
    # pairs share one B, so their errors are correlated: over keys 0-5 the RMS z-score measured
    # 0.5 .. 1.9 (1.54 for key 0) and the largest |z| 1.4 .. 3.5 (2.5 for key 0).
    z = (approx - exact)[std > 0] / std[std > 0]
    assert 0.2 < np.sqrt(np.mean(z**2)) < 3.0


def test_frozen_B_has_zero_gradient_and_stays_put(key):
    x = _normal(5, (8, 2))

    def loss(model):
        return jnp.sum(jax.vmap(model)(x)[:, 0])

    frozen = FourierFeatures(2, 6, sigma=2.0, key=key)
    grad = eqx.filter_jit(eqx.filter_grad(loss))
    grads = grad(frozen)
    assert np.all(np.asarray(grads.B) == 0.0)
    learnable = FourierFeatures(2, 6, sigma=2.0, trainable=True, key=key)
    np.testing.assert_array_equal(learnable.B, frozen.B)
    assert float(jnp.max(jnp.abs(grad(learnable).B))) > 1e-3

    opt = optax.adam(1e-1)
    state = opt.init(eqx.filter(frozen, eqx.is_array))
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        updates, _ = opt.update(grads, state, frozen)
        stepped = eqx.apply_updates(frozen, updates)
    np.testing.assert_array_equal(stepped.B, frozen.B)


def test_jit_and_vmap_match_batched_function(key):
    ff = FourierFeatures(3, 10, key=key)
    x = _normal(6, (7, 3))
    batched = fourier_features(x, ff.B)
    assert_close(eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(ff, x), batched, jnp.float32)
    one = eqx.filter_jit(lambda m, u: m(u))
    assert_close(jnp.stack([one(ff, u) for u in x]), batched, jnp.float32)


def test_positional_encoding_formula(x64):
    x = _uniform(7, (5, 3), -1.0, 1.0, jnp.float64)
    K = 4
    got = positional_encoding(x, K)
    assert got.shape == (5, 2 * K * 3)
    phase = np.concatenate([2.0**k * np.pi * np.asarray(x) for k in range(K)], axis=-1)
    assert_close(got, np.concatenate([np.sin(phase), np.cos(phase)], axis=-1), jnp.float64)
    with_x = positional_encoding(x, K, include_input=True)
    assert_close(with_x[:, :3], x, jnp.float64)
    assert_close(with_x[:, 3:], got, jnp.float64)


def test_positional_encoding_values():
    # x = 1/2: sin(2^k pi / 2) = 1, 0, 0 and cos = 0, -1, 1 for k = 0, 1, 2.
    got = positional_encoding(jnp.asarray([0.5]), 3)
    np.testing.assert_allclose(got, [1, 0, 0, 0, -1, 1], atol=1e-6)
    assert got.dtype == jnp.float32


def test_errors(key, library_errors):
    B = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="`x`.*D=3"):
        fourier_features(jnp.ones((5, 2)), B)
    with pytest.raises(ValueError, match="`B`"):
        fourier_features(jnp.ones((5, 3)), jnp.ones((3,)))
    with pytest.raises(TypeError, match="`x`"):
        fourier_features(jnp.ones((5, 3), jnp.int32), B)
    with pytest.raises(ValueError, match="`x`.*\\(3,\\)"):
        FourierFeatures(3, 4, key=key)(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="`sigma`"):
        FourierFeatures(3, 4, sigma=-1.0, key=key)
    with pytest.raises(ValueError, match="`num_frequencies`"):
        positional_encoding(jnp.ones((2,)), 0)


def test_trainable_is_static(key):
    ff = FourierFeatures(2, 3, trainable=True, key=key)
    leaves = jax.tree.leaves(ff)
    assert len(leaves) == 1 and leaves[0].shape == (3, 2)
    assert math.isclose(ff.sigma, 10.0)


def test_positional_encoding_refuses_octaves_that_overflow(library_errors):
    # 2^128 is inf in float32: features of the top octaves used to come back NaN, silently
    x = jnp.asarray([0.3, -0.7])
    assert bool(jnp.isfinite(positional_encoding(x, 127)).all())
    with pytest.raises(ValueError, match=r"`num_frequencies`=130 .* float32.* <= 127"):
        positional_encoding(x, 130)


@pytest.mark.parametrize("flag", ["False", 1, None, jnp.asarray(False)])
def test_flags_must_be_bools(key, flag, library_errors):
    # include_input was taken by truthiness: "False" prepended x, silently
    with pytest.raises(TypeError, match=r"`include_input` must be a Python bool; got "):
        positional_encoding(jnp.ones(2), 2, include_input=flag)
    with pytest.raises(TypeError, match=r"`trainable` must be a Python bool; got "):
        FourierFeatures(2, 3, trainable=flag, key=key)
    # a NumPy bool is a bool (trainable=np.True_ was refused as "got bool")
    assert FourierFeatures(2, 3, trainable=np.bool_(True), key=key).trainable is True
    assert positional_encoding(jnp.ones(2), 2, include_input=np.bool_(True)).shape == (10,)


def test_call_names_a_non_array_x(key, library_errors):
    # the shape check ran first: AttributeError "'list' object has no attribute 'shape'"
    ff = FourierFeatures(2, 3, key=key)
    with pytest.raises(TypeError, match=r"`x` must be a jax.Array or NumPy array.*got list"):
        ff([0.1, 0.2])
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*int32"):
        ff(jnp.ones(2, jnp.int32))


def test_half_precision_B_is_the_float32_draw_rounded_once(key):
    """jax.random.normal in bfloat16 takes 128 distinct values and none beyond 2.89 sigma: a
    (256, 1) bfloat16 B had 111 distinct frequencies, i.e. 145 duplicated features. B is now
    drawn in float32 and rounded once (227 distinct, as many as bfloat16 can hold)."""
    ref = FourierFeatures(1, 256, key=key).B
    for dtype in (jnp.bfloat16, jnp.float16):
        B = FourierFeatures(1, 256, dtype=dtype, key=key).B
        assert B.dtype == dtype
        np.testing.assert_array_equal(
            np.asarray(B, np.float32), np.asarray(ref.astype(dtype), np.float32)
        )
    assert len(np.unique(np.asarray(FourierFeatures(1, 256, dtype=jnp.bfloat16, key=key).B))) > 200
