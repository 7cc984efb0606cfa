"""Operator losses: closed forms for relative Lp, H1 and negative Sobolev norms of sinusoids,
reductions, gradients, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.train import h1_loss, relative_lp_loss, sobolev_loss
from tests.helpers import assert_close


def _x(n):
    return np.arange(n) / n


def test_relative_lp_closed_forms(x64):
    rng = np.random.default_rng(0)
    t = rng.normal(size=(3, 2, 16))
    e = rng.normal(size=(3, 2, 16))
    for p in (1.0, 2.0, 3.0):
        want = np.sum(np.abs(e) ** p, axis=(1, 2)) ** (1 / p) / np.sum(
            np.abs(t) ** p, axis=(1, 2)
        ) ** (1 / p)
        got = relative_lp_loss(jnp.asarray(t + e), jnp.asarray(t), p=p, reduction="none")
        assert_close(got, want, jnp.float64)
        assert_close(
            relative_lp_loss(jnp.asarray(t + e), jnp.asarray(t), p=p), want.mean(), jnp.float64
        )
    # Two spatial axes, batch (2, 3): norm over (C, X, Y) per example.
    t2, e2 = rng.normal(size=(2, 3, 1, 4, 5)), rng.normal(size=(2, 3, 1, 4, 5))
    got = relative_lp_loss(
        jnp.asarray(t2 + e2), jnp.asarray(t2), num_spatial_dims=2, reduction="sum"
    )
    want = np.linalg.norm(e2.reshape(6, -1), axis=1) / np.linalg.norm(t2.reshape(6, -1), axis=1)
    assert_close(got, want.sum(), jnp.float64)


def test_h1_and_sobolev_closed_forms_on_sinusoids(x64):
    n = 32
    x = _x(n)
    target = np.sin(2 * np.pi * 1 * x)[None, None]
    err = 0.1 * np.cos(2 * np.pi * 4 * x)[None, None]
    pred = target + err
    # ||a sin(2 pi m x)||_{H1}^2 = a^2/2 (1 + (2 pi m)^2).
    want = np.sqrt(0.01 * (1 + (8 * np.pi) ** 2) / (1 + (2 * np.pi) ** 2))
    assert_close(h1_loss(jnp.asarray(pred), jnp.asarray(target)), want, jnp.float64)
    for s in (-1.0, -0.5, 1.0):
        want = np.sqrt(0.01 * (1 + (8 * np.pi) ** 2) ** s / (1 + (2 * np.pi) ** 2) ** s)
        assert_close(sobolev_loss(jnp.asarray(pred), jnp.asarray(target), s=s), want, jnp.float64)
    hom = sobolev_loss(jnp.asarray(pred), jnp.asarray(target), s=-1.0, homogeneous=True)
    assert_close(hom, np.sqrt(0.01 * (8 * np.pi) ** -2 / (2 * np.pi) ** -2), jnp.float64)
    # s = 0 is relative L2.
    assert_close(
        sobolev_loss(jnp.asarray(pred), jnp.asarray(target), s=0.0),
        relative_lp_loss(jnp.asarray(pred), jnp.asarray(target)),
        jnp.float64,
    )


def test_h1_2d_with_lengths(x64):
    nx, ny = 16, 12
    x, y = np.meshgrid(_x(nx) * 2.0, _x(ny) * 3.0, indexing="ij")
    target = np.sin(2 * np.pi * x / 2.0)[None, None]
    err = 0.2 * np.cos(2 * np.pi * 2 * y / 3.0)[None, None]
    got = h1_loss(
        jnp.asarray(target + err), jnp.asarray(target), num_spatial_dims=2, lengths=(2.0, 3.0)
    )
    want = np.sqrt(0.04 * (1 + (4 * np.pi / 3) ** 2) / (1 + np.pi**2))
    assert_close(got, want, jnp.float64)


def test_gradients_finite_and_jit(key):
    t = jax.random.normal(key, (4, 1, 32))
    p = t + 0.1 * jax.random.normal(jax.random.key(1), t.shape)
    for loss in (relative_lp_loss, h1_loss, lambda a, b: sobolev_loss(a, b, s=-1.0)):
        g = jax.jit(jax.grad(loss))(p, t)
        assert bool(jnp.all(jnp.isfinite(g)))
        assert_close(jax.jit(loss)(p, t), loss(p, t), jnp.float32)
    assert float(relative_lp_loss(t, t)) == 0.0


def test_errors(library_errors):
    a = jnp.ones((2, 1, 8))
    with pytest.raises(ValueError, match="same shape"):
        relative_lp_loss(a, jnp.ones((2, 1, 9)))
    with pytest.raises(ValueError, match="spatial axes"):
        h1_loss(jnp.ones((8,)), jnp.ones((8,)), num_spatial_dims=1)
    with pytest.raises(ValueError, match="reduction"):
        relative_lp_loss(a, a, reduction="max")
    with pytest.raises(ValueError, match="p"):
        relative_lp_loss(a, a, p=0.5)
    with pytest.raises(TypeError, match="floating"):
        relative_lp_loss(a.astype(jnp.int32), a)
