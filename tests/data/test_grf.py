"""Gaussian random fields: Fourier-coefficient and pointwise variances against the covariance
in closed form, determinism, vmap, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.data import (
    burgers_dataset,
    darcy_dataset,
    delayed_copy,
    delayed_recall,
    grf_neumann,
    grf_periodic,
    navier_stokes_dataset,
)
from spectrax.data._grf import grf_periodic_std


def _samples(key, num, fn):
    return np.asarray(jax.vmap(fn)(jax.random.split(key, num)), np.float64)


def test_periodic_1d_spectrum_matches_covariance(key):
    """E|c_k|^2 = 625 (4 pi^2 k^2 + 25)^-2 for the coefficient of exp(2 pi i k x) (FNO Burgers
    covariance); a factor-2 normalisation slip would move the ratio to 0.5 or 2."""
    n, num = 64, 4000
    u = _samples(key, num, lambda k: grf_periodic(k, (n,)))
    c = np.fft.rfft(u, axis=-1) / n
    power = np.mean(np.abs(c) ** 2, axis=0)
    k = np.arange(n // 2 + 1)
    expected = 625.0 * (4 * np.pi**2 * k**2 + 25.0) ** -2.0
    ratio = power[1:-1] / expected[1:-1]
    # Each ratio is a mean of 4000 chi^2_2 / 2 variables: std 1/sqrt(4000) = 1.6%.
    assert np.all(np.abs(ratio - 1) < 0.08), ratio
    assert abs(np.mean(ratio) - 1) < 0.01
    assert power[0] < 1e-12 * expected[1]  # zero mean up to float32 round-off


def test_periodic_2d_pointwise_variance(key):
    """Var u(x) = sum_k sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha (NS initial-vorticity parameters)."""
    n, num = 32, 2000
    params = dict(alpha=2.5, tau=7.0, sigma=7.0**1.5)
    u = _samples(key, num, lambda k: grf_periodic(k, (n, n), **params))
    std = grf_periodic_std((n, n), **params)
    # Full-grid sum: rfft columns 1..n/2-1 stand for two conjugate modes each.
    weights = np.full(n // 2 + 1, 2.0)
    weights[0] = weights[-1] = 1.0
    expected = float(np.sum(std**2 * weights[None, :]))
    var = np.mean(u**2)
    assert abs(var / expected - 1) < 0.03, (var, expected)
    np.testing.assert_allclose(u.mean(axis=(1, 2)), 0.0, atol=1e-6)


def test_periodic_2d_spectrum_per_mode_on_a_non_square_grid(key):
    """E|c_k|^2 = sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha for every full-FFT mode of a 12 x 20
    grid (negative frequencies included, Nyquist rows/columns excluded), and E[c_k^2] = 0
    (real and imaginary parts independent, equal variance). A swapped axis in the rfft layout
    moves anisotropic modes by factors of up to 10; a normalisation slip moves all of them.
    Measured: ratios 0.955 to 1.032 over 208 modes, |E c^2| / E|c|^2 <= 0.05 (4000 samples)."""
    n1, n2, num = 12, 20, 4000
    params = dict(alpha=2.5, tau=7.0, sigma=7.0**1.5)
    u = _samples(key, num, lambda k: grf_periodic(k, (n1, n2), **params))
    c = np.fft.fft2(u) / (n1 * n2)
    k1 = np.fft.fftfreq(n1, 1 / n1)[:, None]
    k2 = np.fft.fftfreq(n2, 1 / n2)[None, :]
    expected = 7.0**3 * (4 * np.pi**2 * (k1**2 + k2**2) + 49.0) ** -2.5
    keep = (np.abs(k1) < n1 // 2) & (np.abs(k2) < n2 // 2)
    keep[0, 0] = False
    ratio = np.mean(np.abs(c) ** 2, axis=0)[keep] / expected[keep]
    # each ratio: a mean of 4000 exponential variables, std 1.6%; 0.08 is 5 std
    assert np.all(np.abs(ratio - 1) < 0.08), ratio
    assert abs(np.mean(ratio) - 1) < 0.01
    assert np.max(np.abs(np.mean(c**2, axis=0))[keep] / expected[keep]) < 0.1
    assert np.max(np.abs(np.mean(c[:, 0, 0]))) < 1e-6 * np.sqrt(expected[keep].min())


def test_periodic_nonzero_mean_mode(key):
    """With zero_mean=False the constant mode has variance sigma^2 tau^(-2 alpha) = 1 here."""
    means = _samples(key, 4000, lambda k: grf_periodic(k, (16,), zero_mean=False)).mean(axis=-1)
    assert abs(np.var(means) - 1.0) < 0.08


def test_neumann_pointwise_variance_and_symmetry(key):
    """Var g(x, y) = sum_{k,l} lambda_kl phi_k(x)^2 phi_l(y)^2 with phi_k = sqrt(2) cos(pi k x):
    checked at a corner, an edge midpoint and the centre; each mode's even reflection makes the
    field's normal derivative vanish, so g is even about each boundary."""
    s, num = 17, 4000
    g = _samples(key, num, lambda k: grf_neumann(k, s))
    m = s
    k = np.arange(m)
    lam = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -2.0
    lam[0, 0] = 0.0
    x = np.arange(s) / (s - 1)
    phi2 = 2 * np.cos(np.pi * np.outer(x, k)) ** 2
    phi2[:, 0] = 1.0
    for i, j in [(0, 0), (0, s // 2), (s // 2, s // 2)]:
        expected = float(phi2[i] @ lam @ phi2[j])
        assert abs(np.var(g[:, i, j]) / expected - 1) < 0.08, (i, j)


def test_neumann_matches_cosine_sum_in_float64(key, x64):
    """The node values equal the cosine series evaluated directly from the same weights."""
    s, m = 9, 5
    g = np.asarray(grf_neumann(key, s, num_modes=m, sigma=2.0, dtype=jnp.float64))
    xi = np.asarray(jax.random.normal(key, (m, m), jnp.float64))
    k = np.arange(m)
    std = 2.0 * (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -1.0
    std[0, 0] = 0.0
    x = np.arange(s) / (s - 1)
    phi = np.sqrt(2) * np.cos(np.pi * np.outer(x, k))
    phi[:, 0] = 1
    np.testing.assert_allclose(g, phi @ (xi * std) @ phi.T, rtol=1e-12, atol=1e-14)


def test_deterministic_vmap_and_dtypes(key, x64):
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k: grf_periodic(k, (8, 12)))(keys)
    looped = jnp.stack([grf_periodic(k, (8, 12)) for k in keys])
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-6)
    assert batched.dtype == jnp.float32
    assert grf_periodic(key, (8,), dtype=jnp.float64).dtype == jnp.float64
    assert not np.allclose(batched[0], batched[1])
    np.testing.assert_array_equal(grf_neumann(key, 6), grf_neumann(key, 6))


@pytest.mark.parametrize(
    "call, err",
    [
        (lambda k: grf_periodic(k, ()), ValueError),
        (lambda k: grf_periodic(k, (0,)), ValueError),
        (lambda k: grf_periodic(k, (8,), alpha=-1.0), ValueError),
        (lambda k: grf_periodic(k, (8,), tau="5"), TypeError),
        (lambda k: grf_periodic(k, (8,), dtype=jnp.int32), TypeError),
        (lambda k: grf_neumann(k, 1), ValueError),
    ],
)
def test_errors(key, call, err, library_errors):
    with pytest.raises(err):
        call(key)


def test_float64_needs_x64(key, library_errors):
    with pytest.raises(TypeError, match="enable_x64"):
        grf_periodic(key, (8,), dtype=jnp.float64)


def test_int_shape_is_one_axis(key):
    """``grf_periodic(key, n)`` is the 1-d field ``(n,)`` (a common spelling; it raised a bare
    "'int' object is not iterable")."""
    np.testing.assert_array_equal(grf_periodic(key, 8), grf_periodic(key, (8,)))
    np.testing.assert_array_equal(grf_periodic_std(8), grf_periodic_std((8,)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=float("nan")), r"`alpha` must be finite; got nan"),
        (dict(tau=float("inf")), r"`tau` must be finite; got inf"),
        (dict(sigma=float("nan")), r"`sigma` must be finite"),
        (dict(tau=0.0, zero_mean=False), r"`tau`=0 with `zero_mean=False`.*infinite variance"),
    ],
)
@pytest.mark.parametrize("field", ["periodic", "neumann"])
def test_non_finite_parameters_rejected(key, kwargs, match, field, library_errors):
    """NaN parameters gave an all-NaN field and tau = 0 with the constant mode kept an inf one."""
    with pytest.raises(ValueError, match=match):
        if field == "periodic":
            grf_periodic(key, (8,), **kwargs)
        else:
            grf_neumann(key, 5, **kwargs)


@pytest.mark.filterwarnings("error")  # no division by zero at the dropped constant mode
def test_tau_zero_with_zero_mean(key):
    """tau = 0 is the pure power law sigma^2 (-Δ)^(-alpha); the constant mode is dropped."""
    std = grf_periodic_std((6,), alpha=1.0, tau=0.0, sigma=2.0)
    np.testing.assert_allclose(std, [0.0] + [2.0 / (2 * np.pi * k) for k in (1, 2, 3)])
    assert np.all(np.isfinite(np.asarray(grf_periodic(key, (8, 8), tau=0.0))))
    assert np.all(np.isfinite(np.asarray(grf_neumann(key, 5, tau=0.0))))


def test_bad_shape_named(key, library_errors):
    for bad in (8.0, "8", None):
        with pytest.raises(TypeError, match="`shape` must be an int n or a sequence"):
            grf_periodic(key, bad)
    with pytest.raises(ValueError, match=r"`shape\[1\]` must be an integer >= 1; got 0"):
        grf_periodic(key, (4, 0))


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (dict(alpha=None), TypeError, "`alpha` must be a Python float; got NoneType"),
        (dict(tau="3"), TypeError, "`tau` must be a Python float; got str"),
        (dict(alpha=True), TypeError, "`alpha` must be a Python float; got bool"),
    ],
)
@pytest.mark.parametrize("name", ["burgers_dataset", "darcy_dataset", "navier_stokes_dataset"])
def test_dataset_covariance_parameters_checked(key, name, bad, err, match, library_errors):
    """The datasets float()-ed alpha/tau/sigma before the GRF saw them: a string or a bool was
    taken silently (tau="3" as 3.0, alpha=True as 1.0) and None failed inside float()."""
    import spectrax.data as sd

    with pytest.raises(err, match=match):
        getattr(sd, name)(key, 1, 9 if name == "darcy_dataset" else 16, **bad)


def test_neumann_products_at_highest_precision(key):
    """The cosine sum is two matrix products; at the default precision a GPU rounds them to
    TF32 (~1e-3 relative), so Darcy coefficients (the sign of the field) differed by device.
    Checked on the traced program, since CPU computes float32 products in full either way."""
    jaxpr = jax.make_jaxpr(lambda k: grf_neumann(k, 6))(key)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    inner = [e for e in jaxpr.eqns if e.primitive.name in ("pjit", "jit")]
    for e in inner:
        dots += [d for d in e.params["jaxpr"].jaxpr.eqns if d.primitive.name == "dot_general"]
    assert len(dots) == 2, jaxpr
    for d in dots:
        precision = d.params["precision"]
        assert precision is not None, d
        assert all(p == jax.lax.Precision.HIGHEST for p in precision), precision


@pytest.mark.parametrize("bad", ["False", 0, None])
def test_zero_mean_must_be_a_bool(key, bad, library_errors):
    """zero_mean was taken by truthiness: 'False' kept the constant mode dropped and 0 or None
    kept it, silently."""
    with pytest.raises(TypeError, match="`zero_mean` must be a Python bool"):
        grf_periodic(key, 8, zero_mean=bad)
    with pytest.raises(TypeError, match="`zero_mean` must be a Python bool"):
        grf_neumann(key, 5, zero_mean=bad)
    np.testing.assert_array_equal(
        grf_periodic(key, 8, zero_mean=np.bool_(False)), grf_periodic(key, 8, zero_mean=False)
    )


_KEYED = [
    ("grf_periodic", lambda k: grf_periodic(k, (8,))),
    ("grf_neumann", lambda k: grf_neumann(k, 8)),
    ("delayed_recall", lambda k: delayed_recall(k, 2, 8, min_lag=4)),
    ("delayed_copy", lambda k: delayed_copy(k, 2, 8, delay=2, cutoff=0.25)),
    ("burgers_dataset", lambda k: burgers_dataset(k, 1, 8)),
    ("darcy_dataset", lambda k: darcy_dataset(k, 1, 5)),
    ("navier_stokes_dataset", lambda k: navier_stokes_dataset(k, 1, 8)),
]


@pytest.mark.parametrize("name,call", _KEYED, ids=[n for n, _ in _KEYED])
def test_key_must_be_one_prng_key(name, call, key, library_errors):
    """An int seed failed in JAX with "invalid PRNG key data ... Got 0", a float array with
    "expected key_data.dtype = uint32" and a batch of keys with "normal accepts a single key",
    none naming `key`."""
    with pytest.raises(TypeError, match=r"`key` must be a PRNG key.*got int 0"):
        call(0)
    with pytest.raises(TypeError, match=r"`key` must be a PRNG key.*dtype float32"):
        call(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*shape \(3,\)"):
        call(jax.random.split(key, 3))
    with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*shape \(3, 2\)"):
        call(jax.random.split(jax.random.PRNGKey(0), 3))


def test_keys_that_are_accepted(key):
    """A raw uint32 key (jax.random.PRNGKey), a traced key under jit and vmap over keys."""
    raw = grf_periodic(jax.random.PRNGKey(0), (8,))
    assert raw.shape == (8,)
    jitted = jax.jit(lambda k: grf_periodic(k, (8,)))(key)
    assert bool(jnp.all(jitted == grf_periodic(key, (8,))))
    assert jax.vmap(lambda k: grf_periodic(k, (8,)))(jax.random.split(key, 3)).shape == (3, 8)
