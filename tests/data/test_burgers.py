"""Burgers: the ETDRK4 pseudo-spectral solver against the Cole–Hopf exact solution, its
fourth-order time convergence, conservation, and the dataset generator."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.data import burgers_dataset, burgers_solve, grf_periodic
from spectrax.data._burgers import _nonlinear, dealias_mask
from tests.helpers import rel_err

# Measured (float64, dt=1e-3): 4e-11 (smooth IC, nu=0.1), 2e-10 (nu=0.02), up to 4e-9 (FNO GRF
# ICs, n=256, nu=0.1), 8e-12 (Hopf quadrature, nu=0.01); float32 at the default dt: 1.7e-6.
COLE_HOPF_RTOL_X64 = 1e-8
COLE_HOPF_RTOL_X32 = 1e-5


def cole_hopf(u0, nu, t, fine=4096):
    """Exact u(., t) of u_t + u u_x = nu u_xx for a band-limited, mean-zero periodic u0 (NumPy
    float64): u = -2 nu phi_x / phi with phi_t = nu phi_xx, phi(x, 0) = exp(-U0(x) / (2 nu)),
    U0' = u0. The primitive is interpolated on a fine grid, the heat equation is solved exactly
    in Fourier space, and the result is sampled back on u0's grid."""
    n = u0.shape[-1]
    c = np.fft.rfft(u0)
    assert abs(c[0]) < 1e-9 * np.abs(c).max(), "Cole-Hopf here needs a mean-zero u0"
    k = np.arange(n // 2 + 1)
    prim = np.zeros(fine // 2 + 1, complex)
    prim[1 : n // 2] = c[1 : n // 2] / (2j * np.pi * k[1 : n // 2])
    big_u0 = np.fft.irfft(prim, fine) * (fine / n)
    phi0 = np.exp(-big_u0 / (2 * nu))
    kf = 2 * np.pi * np.arange(fine // 2 + 1)
    phi_hat = np.fft.rfft(phi0) * np.exp(-nu * kf**2 * t)
    u = -2 * nu * np.fft.irfft(1j * kf * phi_hat, fine) / np.fft.irfft(phi_hat, fine)
    return u[:: fine // n]


def hopf_quadrature(u0, nu, t, fine=8192):
    """The same exact solution by the Hopf formula as a quadrature over the heat kernel's
    periodic images, in log-sum-exp form so that small nu (dynamic range exp(|U0| / 2 nu))
    stays finite: u(x) = E[(x - y) / t] under the weights
    exp(-(x - y)^2 / (4 nu t) - U0(y) / (2 nu)). Independent of the FFT heat solve above."""
    from scipy.special import logsumexp

    n = u0.shape[-1]
    c = np.fft.rfft(u0)
    k = np.arange(n // 2 + 1)
    prim = np.zeros(fine // 2 + 1, complex)
    prim[1 : n // 2] = c[1 : n // 2] / (2j * np.pi * k[1 : n // 2])
    big_u0 = np.tile(np.fft.irfft(prim, fine) * (fine / n), 3)
    y = np.arange(-fine, 2 * fine) / fine
    d = np.arange(n)[:, None] / n - y[None, :]
    e = -(d**2) / (4 * nu * t) - big_u0[None, :] / (2 * nu)
    log_w = logsumexp(e, axis=1)
    pos = logsumexp(e, b=np.maximum(d, 0), axis=1)
    neg = logsumexp(e, b=np.maximum(-d, 0), axis=1)
    return (np.exp(pos - log_w) - np.exp(neg - log_w)) / t


def _without_nyquist(u):
    c = np.fft.rfft(np.asarray(u, np.float64))
    c[-1] = 0
    return np.fft.irfft(c, u.shape[-1])


def _smooth_ic(n):
    x = np.arange(n) / n
    return np.sin(2 * np.pi * x) + 0.5 * np.cos(4 * np.pi * x) - 0.3 * np.sin(6 * np.pi * x)


@pytest.mark.parametrize("nu", [0.1, 0.02])
def test_cole_hopf_smooth_initial_condition(nu, x64):
    u0 = _smooth_ic(128)
    u = burgers_solve(jnp.asarray(u0), nu=nu, t_final=1.0, dt=1e-3)
    err = rel_err(u, cole_hopf(u0, nu, 1.0))
    assert err < COLE_HOPF_RTOL_X64, err


def test_cole_hopf_fno_initial_condition(key, x64):
    """The dataset's initial-condition law (N(0, 625 (-Δ + 25 I)^-2)) at nu = 0.1, batched."""
    u0 = jax.vmap(lambda k: grf_periodic(k, (256,), dtype=jnp.float64))(jax.random.split(key, 3))
    u0 = np.stack([_without_nyquist(v) for v in u0])
    u = burgers_solve(jnp.asarray(u0), nu=0.1, dt=1e-3)
    assert u.shape == (3, 256) and u.dtype == jnp.float64
    for i in range(3):
        err = rel_err(u[i], cole_hopf(u0[i], 0.1, 1.0))
        assert err < COLE_HOPF_RTOL_X64, (i, err)


def test_hopf_quadrature_small_viscosity(key, x64):
    """nu = 0.01 with the initial-condition law of the public FNO generator script
    (alpha=2.5, tau=7, sigma=49): fronts steepen, exp(-U0 / 2 nu) spans many decades.
    Measured 8e-12 at dt=1e-3 (and 3e-9 at nu=1e-3, n=1024, outside the test suite)."""
    u0 = grf_periodic(key, (256,), alpha=2.5, tau=7.0, sigma=49.0, dtype=jnp.float64)
    u0 = _without_nyquist(u0)
    u = burgers_solve(jnp.asarray(u0), nu=0.01, dt=1e-3)
    assert rel_err(u, hopf_quadrature(u0, 0.01, 1.0)) < COLE_HOPF_RTOL_X64
    assert rel_err(cole_hopf(u0, 0.01, 1.0), hopf_quadrature(u0, 0.01, 1.0)) < 1e-10


def test_cole_hopf_float32_default_step():
    u0 = _smooth_ic(128)
    u = burgers_solve(jnp.asarray(u0, jnp.float32), nu=0.1)
    assert u.dtype == jnp.float32
    err = rel_err(u, cole_hopf(u0, 0.1, 1.0))
    assert err < COLE_HOPF_RTOL_X32, err


def test_fourth_order_in_time(x64):
    """Halving dt divides the error by about 2^4 = 16 (ETDRK4; measured order 3.69)."""
    u0 = _smooth_ic(64)
    exact = cole_hopf(u0, 0.05, 0.5)
    errs = [
        rel_err(burgers_solve(jnp.asarray(u0), nu=0.05, t_final=0.5, dt=dt), exact)
        for dt in (0.05, 0.025)
    ]
    order = np.log2(errs[0] / errs[1])
    assert 3.4 < order < 4.6, (errs, order)


def test_mean_conserved_and_energy_decays(key, x64):
    u0 = grf_periodic(key, (128,), zero_mean=False, dtype=jnp.float64)
    u = burgers_solve(u0, nu=0.05, t_final=0.3)
    np.testing.assert_allclose(jnp.mean(u), jnp.mean(u0), rtol=1e-12)
    assert float(jnp.sum((u - jnp.mean(u)) ** 2)) < float(jnp.sum((u0 - jnp.mean(u0)) ** 2))


def test_leading_dims_jit_and_dtype(key):
    u0 = jax.random.normal(key, (2, 3, 32), jnp.float32)
    u = burgers_solve(u0, t_final=0.1)
    assert u.shape == (2, 3, 32) and u.dtype == jnp.float32
    np.testing.assert_allclose(u[1, 2], burgers_solve(u0[1, 2], t_final=0.1), rtol=1e-5, atol=1e-6)
    jitted = jax.jit(lambda v: burgers_solve(v, t_final=0.1))(u0)
    np.testing.assert_allclose(jitted, u, rtol=1e-5, atol=1e-6)


def test_dataset_is_subsampled_fine_solution(key):
    """Sample i is grf_periodic(split(key)[i]) on the solver grid, solved, then subsampled."""
    a, u = burgers_dataset(key, 3, 32, solver_resolution=128, dt=1e-2, batch_size=2)
    assert a.shape == u.shape == (3, 32) and a.dtype == u.dtype == jnp.float32
    keys = jax.random.split(key, 3)
    for i in range(3):
        fine = grf_periodic(keys[i], (128,))
        np.testing.assert_allclose(a[i], fine[::4], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(u[i], burgers_solve(fine, dt=1e-2)[::4], rtol=1e-4, atol=1e-6)
    a2, u2 = burgers_dataset(key, 3, 32, solver_resolution=128, dt=1e-2, batch_size=3)
    np.testing.assert_allclose(u2, u, rtol=1e-5, atol=1e-7)


def test_dataset_default_solver_grid(key):
    """The default solver grid is the first multiple of the resolution >= 1024; nu = 0.1 makes
    u(1) a strongly damped, smooth version of a."""
    a, u = burgers_dataset(key, 2, 256)
    ref = burgers_solve(grf_periodic(jax.random.split(key, 2)[1], (1024,)))[::4]
    np.testing.assert_allclose(u[1], ref, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(u).max()) < float(jnp.abs(a).max())


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(resolution=30, solver_resolution=64), ValueError, "multiple"),
        (dict(nu=-0.1), ValueError, "nu"),
        (dict(dt=0.0), ValueError, "dt"),
        (dict(num_samples=0), ValueError, "num_samples"),
        (dict(nu="0.1"), TypeError, "nu"),
    ],
)
def test_dataset_errors(key, kwargs, err, match, library_errors):
    args = dict(num_samples=2, resolution=32) | kwargs
    with pytest.raises(err, match=match):
        burgers_dataset(key, **args)


def test_solve_errors(library_errors):
    with pytest.raises(TypeError, match="u0"):
        burgers_solve(jnp.arange(8))
    with pytest.raises(ValueError, match="u0"):
        burgers_solve(jnp.zeros((2,)))


def _aliases_into(n, k_max, kept):
    """Whether a product of two modes |k| <= k_max lands, folded onto the n-point grid, on a
    mode |k| <= kept other than its true frequency (brute force over all pairs)."""
    k = np.arange(-k_max, k_max + 1)
    m = k[:, None] + k[None, :]
    folded = (m + n // 2) % n - n // 2
    return bool(np.any((folded != m) & (np.abs(folded) <= kept)))


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8, 9, 16, 24, 31, 64, 100])
def test_dealias_mask_is_the_largest_alias_free_band(n):
    """The kept band [0, K]: no product of two kept modes aliases onto a kept mode, K + 1 would
    let one through (so no mode is dropped needlessly), and the Nyquist bin is never kept."""
    mask = dealias_mask(n)
    assert mask.shape == (n // 2 + 1,) and mask.dtype == bool
    kept = int(mask.sum()) - 1
    np.testing.assert_array_equal(mask, np.arange(n // 2 + 1) <= kept)  # a band from k = 0
    assert not _aliases_into(n, kept, kept)
    assert _aliases_into(n, kept + 1, kept + 1)
    if n % 2 == 0:
        assert not mask[n // 2]


def _exact_quadratic_term(u, n_keep):
    """-(u^2 / 2)_x of the band |k| <= n_keep of u, kept modes only, as rfft coefficients
    (unnormalised like np.fft.rfft): the product by discrete convolution of the Fourier
    coefficients (exact, no grid, hence no aliasing)."""
    n = u.shape[-1]
    c = np.fft.fft(u) / n
    top = n // 2 - 1  # frequencies -top .. top (the Nyquist coefficient is zero here)
    k = np.arange(-top, top + 1)
    band = np.where(np.abs(k) <= n_keep, c[k % n], 0.0)
    prod = np.convolve(band, band)  # frequencies -2 top .. 2 top
    m = np.arange(n // 2 + 1)
    coef = np.where(m <= n_keep, prod[m + 2 * top], 0.0)
    return -0.5j * 2 * np.pi * m * n * coef


def test_nonlinear_term_is_the_dealiased_product(x64):
    """The Burgers term of a field with energy on both sides of the cutoff n/3 is exactly the
    kept modes of the product of the kept modes: nothing at or above the cutoff, and none of
    the products of modes near n/3 aliased back into the band (the solver tests, at their
    well-resolved viscosities, pass without any dealiasing)."""
    n = 24
    rng = np.random.default_rng(0)
    c = np.zeros(n // 2 + 1, complex)
    c[1 : n // 2] = rng.normal(size=n // 2 - 1) + 1j * rng.normal(size=n // 2 - 1)
    u = np.fft.irfft(c, n)  # modes 1 .. 11 on both sides of the cutoff 7
    kept = (n - 1) // 3
    got = np.asarray(_nonlinear(n, jnp.complex128)(jnp.fft.rfft(jnp.asarray(u))))
    expected = _exact_quadratic_term(u, kept)
    assert np.all(got[kept + 1 :] == 0)
    assert rel_err(got, expected) < 1e-13
    # the undealiased product differs at O(1): the test can tell
    undealiased = -0.5j * 2 * np.pi * np.arange(n // 2 + 1) * np.fft.rfft(u * u)
    assert rel_err(undealiased, expected) > 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nu=float("inf")), "`nu` must be a finite number > 0; got inf"),
        (dict(nu=float("nan")), "`nu`"),
        (dict(t_final=float("inf")), "`t_final` must be a finite number > 0; got inf"),
        (dict(dt=float("inf")), "`dt`"),
    ],
)
def test_non_finite_parameters_rejected(kwargs, match, library_errors):
    """nu = inf returned NaN and t_final = inf raised a bare OverflowError."""
    with pytest.raises(ValueError, match=match):
        burgers_solve(jnp.zeros((8,)), **kwargs)


def test_solutions_the_grid_cannot_resolve_are_refused(key):
    """At nu = 1e-6 the fronts are far thinner than the 1024-point grid and the solver blows up:
    the dataset returned NaN solutions (and `cached` wrote them to disk); now a RuntimeError
    names nu, dt and the grid. Under a trace no value exists, so the NaN passes through."""
    with pytest.raises(RuntimeError, match=r"4 of 4 hold NaN.*`nu`=1e-06.*1024 points.*`dt`"):
        burgers_dataset(key, 4, 64, nu=1e-6)
    u0 = 100.0 * jnp.sin(jnp.linspace(0.0, 2 * jnp.pi, 64, endpoint=False))
    with pytest.raises(RuntimeError, match=r"burgers_solve.*2 of 3 hold NaN.*index 1"):
        burgers_solve(jnp.stack([0.0 * u0, u0, u0]), nu=1e-6)
    assert bool(jnp.all(jnp.isfinite(burgers_solve(u0 / 100.0, nu=1e-1))))
    _, u = jax.jit(lambda k: burgers_dataset(k, 2, 64, nu=1e-6))(key)
    assert not bool(jnp.any(jnp.isfinite(u)))


def test_numpy_float64_input_outside_x64_solves_without_warnings(library_errors):
    """Outside 64-bit mode a NumPy float64 u0 is float32, as any JAX input; the result was
    cast back with astype(float64), which JAX truncates with a UserWarning."""
    assert not jax.config.jax_enable_x64
    u0 = np.sin(2 * np.pi * np.arange(16) / 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = burgers_solve(u0, t_final=0.1)
    assert u.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(u), burgers_solve(jnp.asarray(u0), t_final=0.1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_initial_condition_is_refused_naming_it(bad, library_errors):
    """A NaN or inf in ``u0`` ran the whole solve and was reported as a NaN solution, blamed
    on ``nu`` and ``dt``."""
    with pytest.raises(ValueError, match=r"`u0` must be finite; got u0\[5\]"):
        burgers_solve(jnp.sin(jnp.linspace(0.0, 6.0, 32)).at[5].set(bad))
