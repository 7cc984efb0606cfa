"""HiPPO-LegS memory: the state converges to the optimal Legendre projection of the history."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import legendre as npleg

from spectrax.ssm import hippo
from spectrax.theory import legs_memory, legs_reconstruct
from tests.helpers import assert_close


def _signal(t):
    return np.sin(6 * t) + 0.5 * np.cos(13 * t**2)


def _projection(n, quad=200):
    # c_n = ∫_0^1 u(s) sqrt(2n+1) P_n(2s - 1) ds, by Gauss–Legendre quadrature
    x, w = npleg.leggauss(quad)
    s = (x + 1) / 2
    return np.array(
        [
            np.sum(w / 2 * _signal(s) * np.sqrt(2 * k + 1) * npleg.legval(x, [0] * k + [1]))
            for k in range(n)
        ]
    )


def test_memory_equals_the_bilinear_recurrence(x64):
    n, length = 8, 50
    u = np.random.default_rng(0).standard_normal(length)
    a, b = hippo("legs", n)
    x, eye, states = np.zeros(n), np.eye(n), []
    for k in range(1, length + 1):
        x = np.linalg.solve(eye - a / (2 * k), (eye + a / (2 * k)) @ x + b * u[k - 1] / k)
        states.append(x)
    assert_close(legs_memory(jnp.asarray(u), n), np.stack(states), jnp.float64)


def test_memory_converges_to_optimal_projection(x64):
    # Gu et al. 2020: x(t) holds the coefficients of u on [0, t]. Measured (N = 32): relative
    # coefficient error 0.0178, 0.0094, 0.0048 at L = 500, 1000, 2000: first order in 1/L.
    n = 32
    proj = _projection(n)
    errs = []
    for length in (500, 1000, 2000):
        t = np.arange(1, length + 1) / length
        x = legs_memory(jnp.asarray(_signal(t)), n)[-1]
        errs.append(np.linalg.norm(np.asarray(x) - proj) / np.linalg.norm(proj))
    assert errs[-1] < 6e-3, errs
    assert 1.7 < errs[0] / errs[1] < 2.3 and 1.7 < errs[1] / errs[2] < 2.3, errs
    s = jnp.linspace(0.05, 1.0, 101)
    recon = legs_reconstruct(x, s)
    assert float(jnp.abs(recon - _signal(np.asarray(s))).max()) < 6e-3


def test_reconstruct_is_the_legendre_series(x64):
    c = jnp.asarray(np.random.default_rng(1).standard_normal((3, 6)))
    s = jnp.linspace(0.0, 1.0, 17)
    scaled = np.asarray(c) * np.sqrt(2 * np.arange(6) + 1)
    expected = np.stack([npleg.legval(2 * np.asarray(s) - 1, row) for row in scaled])
    assert_close(legs_reconstruct(c, s), expected, jnp.float64)


def test_float32_jit_and_grad():
    u = jnp.sin(jnp.linspace(0.0, 3.0, 64))
    x = jax.jit(legs_memory, static_argnums=1)(u, 8)
    assert x.dtype == jnp.float32 and x.shape == (64, 8)
    g = jax.jit(jax.grad(lambda u: legs_reconstruct(legs_memory(u, 8)[-1], jnp.ones((1,)))[0]))(u)
    assert bool(jnp.all(jnp.isfinite(g)))
    # the newest sample's weight: d x_L / d u_L = (I - A/2L)^{-1} B / L
    a, b = hippo("legs", 8)
    want = np.linalg.solve(np.eye(8) - a / 128, b / 64)
    got = jax.jit(jax.jacrev(lambda u: legs_memory(u, 8)[-1]))(u)[:, -1]
    assert_close(got, want, jnp.float32, rtol=1e-5)


def test_bad_inputs_are_named(library_errors):
    with pytest.raises(ValueError, match=r"`u` must be a 1-d sequence \(L,\)"):
        legs_memory(jnp.ones((4, 2)), 4)
    with pytest.raises(TypeError, match="`u` must be a real floating-point"):
        legs_memory(jnp.arange(4), 4)
    with pytest.raises(ValueError, match="`N` must be an integer >= 1"):
        legs_memory(jnp.ones(4), 0)
    with pytest.raises(ValueError, match="expected `coefficients`"):
        legs_reconstruct(jnp.ones(4), jnp.ones((2, 2)))


def test_vmap_and_float32_against_float64_recurrence():
    # the memory is linear in u: vmap over sequences equals one call per sequence, and float32
    # stays within rounding of the float64 recurrence (measured: relative error 3.2e-7)
    n, length = 8, 60
    u = np.random.default_rng(2).standard_normal((3, length))
    a, b = hippo("legs", n)
    x, eye, want = np.zeros((3, n)), np.eye(n), []
    for k in range(1, length + 1):
        rhs = x @ (eye + a / (2 * k)).T + u[:, k - 1 : k] * b[None, :] / k
        x = np.linalg.solve(eye - a / (2 * k), rhs.T).T
        want.append(x)
    want = np.stack(want, axis=1)  # (3, L, N)
    batched = jax.vmap(legs_memory, in_axes=(0, None))(jnp.asarray(u, jnp.float32), n)
    assert batched.dtype == jnp.float32 and batched.shape == (3, length, n)
    for i in range(3):
        assert_close(batched[i], legs_memory(jnp.asarray(u[i], jnp.float32), n), jnp.float32)
    assert_close(batched, want, jnp.float32, rtol=2e-6)
