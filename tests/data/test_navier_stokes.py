"""Navier–Stokes (vorticity, torus): Taylor–Green-type exact decays, an exact forced shear
flow, fourth-order time convergence, conservation, and the dataset generator."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from spectrax.data import fno_forcing, grf_periodic, navier_stokes_dataset, navier_stokes_solve
from spectrax.data._navier_stokes import _advection
from tests.helpers import rel_err

# Measured in float64: 4e-16 (Taylor-Green), 2e-14 (the |k|^2 = 25 shell) and 1.6e-15 for the
# shear flow; the bound leaves room for round-off growth over more steps.
EXACT_RTOL_X64 = 1e-11
# float32 runs of the same flows: measured about 1e-7.
EXACT_RTOL_X32 = 1e-5


def _grid(n):
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def taylor_green(n):
    """w = 2 sin(2 pi x) sin(2 pi y): u.grad w = 0, so w(t) = w0 exp(-8 pi^2 nu t)."""
    X, Y = _grid(n)
    return 2 * np.sin(2 * np.pi * X) * np.sin(2 * np.pi * Y), 8 * np.pi**2


def same_shell(n):
    """Modes with |k|^2 = 25 ((3,4), (0,5), (4,3)): psi is a Laplacian eigenfunction, so the
    advection cancels between modes (not term by term) and w decays like exp(-100 pi^2 nu t)."""
    X, Y = _grid(n)
    w = (
        np.sin(2 * np.pi * 3 * X) * np.cos(2 * np.pi * 4 * Y)
        + 0.7 * np.cos(2 * np.pi * 5 * Y)
        + 0.3 * np.sin(2 * np.pi * (4 * X + 3 * Y))
    )
    return w, 4 * np.pi**2 * 25


@pytest.mark.parametrize("flow", [taylor_green, same_shell])
def test_exact_decay(flow, x64):
    nu, n = 1e-2, 32
    w0, k2 = flow(n)
    w = navier_stokes_solve(
        jnp.asarray(w0), nu=nu, t_final=1.0, num_snapshots=2, dt=0.05, forcing="none"
    )
    assert w.shape == (2, n, n) and w.dtype == jnp.float64
    expected = np.stack([w0 * np.exp(-nu * k2 * t) for t in (0.5, 1.0)])
    assert rel_err(w, expected) < EXACT_RTOL_X64


def test_exact_decay_float32():
    w0, k2 = same_shell(32)
    w = navier_stokes_solve(jnp.asarray(w0, jnp.float32), nu=1e-3, t_final=2.0, forcing="none")
    assert w.dtype == jnp.float32
    assert rel_err(w[0], w0 * np.exp(-1e-3 * k2 * 2.0)) < EXACT_RTOL_X32


def test_forced_shear_flow(x64):
    """From rest under the FNO forcing (a function of x + y only, so advection vanishes):
    w(t) = f (1 - exp(-lambda t)) / lambda with lambda = 8 pi^2 nu."""
    n, nu, t = 16, 1e-3, 3.0
    w = navier_stokes_solve(jnp.zeros((n, n)), nu=nu, t_final=t, dt=0.1)
    lam = 8 * np.pi**2 * nu
    assert rel_err(w[0], fno_forcing(n) * (1 - np.exp(-lam * t)) / lam) < EXACT_RTOL_X64


def test_custom_forcing_array(x64):
    """An array forcing equal to the FNO one gives the same trajectory."""
    w0, _ = same_shell(16)
    f = jnp.asarray(fno_forcing(16))
    kw = dict(nu=1e-2, t_final=0.5, dt=0.05)
    np.testing.assert_allclose(
        navier_stokes_solve(jnp.asarray(w0), forcing=f, **kw),
        navier_stokes_solve(jnp.asarray(w0), forcing="fno", **kw),
        rtol=1e-13,
        atol=1e-13,
    )


def test_fourth_order_in_time_and_mean_conserved(key, x64):
    """A random (nonlinear, forced) flow, initial vorticity amplified 5x so that advection
    dominates: errors against a dt/8 reference fall ~16x per halving (measured order 4.04)."""
    w0 = grf_periodic(key, (32, 32), alpha=2.5, tau=7.0, sigma=7.0**1.5, dtype=jnp.float64) * 5.0
    kw = dict(nu=1e-3, t_final=1.0)
    ref = navier_stokes_solve(w0, dt=0.0125, **kw)
    errs = [rel_err(navier_stokes_solve(w0, dt=dt, **kw), ref) for dt in (0.1, 0.05)]
    order = np.log2(errs[0] / errs[1])
    assert 3.5 < order < 4.8, (errs, order)
    assert errs[1] < 1e-5
    assert abs(float(jnp.mean(ref))) < 1e-12


def test_leading_dims_and_vmap(key):
    w0 = jax.random.normal(key, (2, 16, 16), jnp.float32)
    kw = dict(nu=1e-2, t_final=0.2, num_snapshots=2, dt=0.05)
    w = navier_stokes_solve(w0, **kw)
    assert w.shape == (2, 2, 16, 16)
    np.testing.assert_allclose(w[1], navier_stokes_solve(w0[1], **kw), rtol=1e-5, atol=1e-6)


def test_dataset_is_subsampled_fine_solution(key):
    kw = dict(nu=1e-3, t_final=1.0, num_snapshots=2, dt=0.05)
    w0, w = navier_stokes_dataset(key, 2, 8, solver_resolution=16, batch_size=1, **kw)
    assert w0.shape == (2, 8, 8) and w.shape == (2, 2, 8, 8) and w.dtype == jnp.float32
    fine = grf_periodic(jax.random.split(key, 2)[1], (16, 16), alpha=2.5, tau=7.0, sigma=7.0**1.5)
    np.testing.assert_allclose(w0[1], fine[::2, ::2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        w[1], navier_stokes_solve(fine, **kw)[:, ::2, ::2], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(resolution=12, solver_resolution=16), ValueError, "multiple"),
        (dict(num_snapshots=0), ValueError, "num_snapshots"),
        (dict(nu=0.0), ValueError, "nu"),
    ],
)
def test_dataset_errors(key, kwargs, err, match, library_errors):
    with pytest.raises(err, match=match):
        navier_stokes_dataset(key, **(dict(num_samples=1, resolution=8) | kwargs))


def test_solve_errors(library_errors):
    with pytest.raises(ValueError, match="w0"):
        navier_stokes_solve(jnp.zeros((8, 6)))
    with pytest.raises(ValueError, match="forcing"):
        navier_stokes_solve(jnp.zeros((8, 8)), forcing="kolmogorov")
    with pytest.raises(ValueError, match="forcing"):
        navier_stokes_solve(jnp.zeros((8, 8)), forcing=jnp.zeros((4, 4)))


def test_advection_rate_closed_form(x64):
    """w0 = A sin 2 pi x + B cos 4 pi y: -Δ psi = w0 gives u = psi_y = -B sin(4 pi y) / (4 pi),
    v = -psi_x = -A cos(2 pi x) / (2 pi), so dw/dt = -(u w_x + v w_y)
    = -1.5 A B cos(2 pi x) sin(4 pi y) at t = 0 (nu ~ 0, no forcing). Both products are
    non-zero with different weights (1/2 and 2), so a sign slip in either velocity component, a
    scaled velocity or a swapped gradient moves the rate by 30 % or more; measured error 7e-5,
    the O(t) of the one-step difference quotient. (The other flows here have u . grad w = 0.)"""
    n, a, b, t = 16, 1.0, 0.5, 1e-4
    X, Y = _grid(n)
    w0 = a * np.sin(2 * np.pi * X) + b * np.cos(4 * np.pi * Y)
    w = navier_stokes_solve(jnp.asarray(w0), nu=1e-12, t_final=t, dt=t, forcing="none")
    rate = (np.asarray(w[0]) - w0) / t
    exact = -1.5 * a * b * np.cos(2 * np.pi * X) * np.sin(4 * np.pi * Y)
    assert rel_err(rate, exact) < 1e-3


def test_advection_term_is_the_dealiased_product(x64):
    """The advection term of a field with energy on both sides of the cutoff n/3 (per axis) is
    exactly the kept modes of u . grad w computed from the kept modes of w: nothing outside the
    band, and no product of modes near n/3 aliased back into it. Reference: the products as 2-d
    discrete convolutions of the Fourier coefficients (exact, no grid)."""
    n = 16
    kept = (n - 1) // 3
    top = n // 2 - 1  # frequencies -top .. top; the Nyquist row and column are zero
    rng = np.random.default_rng(0)
    w = np.real(np.fft.ifft2(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))))
    c = np.fft.fft2(w) / n**2
    k = np.arange(-top, top + 1)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    band = (np.abs(kx) <= kept) & (np.abs(ky) <= kept)
    cw = np.where(band, c[kx % n, ky % n], 0.0)
    k2 = 4 * np.pi**2 * (kx**2 + ky**2)
    psi = np.divide(cw, k2, out=np.zeros_like(cw), where=k2 > 0)
    u, v = 2j * np.pi * ky * psi, -2j * np.pi * kx * psi  # u = psi_y, v = -psi_x
    wx, wy = 2j * np.pi * kx * cw, 2j * np.pi * ky * cw
    prod = scipy.signal.convolve2d(u, wx) + scipy.signal.convolve2d(v, wy)  # -2 top .. 2 top
    rx, ry = np.meshgrid(np.fft.fftfreq(n, 1 / n).astype(int), np.arange(n // 2 + 1), indexing="ij")
    out_band = (np.abs(rx) <= kept) & (ry <= kept)
    expected = np.where(out_band, -(n**2) * prod[rx + 2 * top, ry + 2 * top], 0.0)
    got = np.asarray(_advection(n, jnp.complex128)(jnp.fft.rfft2(jnp.asarray(w))))
    assert np.all(got[~out_band] == 0)
    assert rel_err(got, expected) < 1e-13
    # the plain pseudo-spectral product (no dealiasing) is off at O(1): the test can tell
    gx = 2j * np.pi * np.fft.fftfreq(n, 1 / n)[:, None]
    gy = 2j * np.pi * np.fft.rfftfreq(n, 1 / n)[None, :]
    wh = np.fft.rfft2(w)
    lap = -(gx**2 + gy**2).real
    ph = np.divide(wh, lap, out=np.zeros_like(wh), where=lap > 0)
    fields = [
        np.fft.irfft2(op * h, s=(n, n)) for op, h in ((gy, ph), (-gx, ph), (gx, wh), (gy, wh))
    ]
    plain = -np.fft.rfft2(fields[0] * fields[2] + fields[1] * fields[3])
    assert rel_err(plain, expected) > 0.3


def test_float64_forcing_is_not_narrowed(x64):
    """A float64 forcing with a float32 w0 computes and returns float64, as if w0 were float64
    (it was cast to w0's float32)."""
    w0, _ = same_shell(16)
    w0 = jnp.asarray(w0, jnp.float32)
    f = jnp.asarray(fno_forcing(16) * 3.0)
    kw = dict(nu=1e-2, t_final=0.5, dt=0.05, forcing=f)
    w = navier_stokes_solve(w0, **kw)
    assert w.dtype == jnp.float64
    ref = navier_stokes_solve(w0.astype(jnp.float64), **kw)
    assert rel_err(w, ref) < 1e-14
    assert navier_stokes_solve(w0, **(kw | dict(forcing="fno"))).dtype == jnp.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nu=float("inf")), "`nu` must be a finite number > 0; got inf"),
        (dict(t_final=float("inf")), "`t_final` must be a finite number > 0; got inf"),
        (dict(dt=float("nan")), "`dt`"),
    ],
)
def test_non_finite_parameters_rejected(kwargs, match, library_errors):
    with pytest.raises(ValueError, match=match):
        navier_stokes_solve(jnp.zeros((8, 8)), **kwargs)


def test_unstable_steps_are_refused(key):
    """A step too large for the flow blew up into NaN trajectories that the dataset returned as
    data; now a RuntimeError names dt, nu and the grid (outside a trace)."""
    kw = dict(nu=1e-3, t_final=1.0, num_snapshots=1, dt=0.5)
    with pytest.raises(RuntimeError, match=r"2 of 2 hold NaN.*`dt`=0.5 is unstable.*16 x 16"):
        navier_stokes_dataset(key, 2, 16, sigma=1e3, **kw)
    w0 = grf_periodic(key, (16, 16), sigma=1e3)
    with pytest.raises(RuntimeError, match=r"navier_stokes_solve.*1 of 1 hold NaN.*`dt`=0.5"):
        navier_stokes_solve(w0, **kw)


def test_numpy_float64_input_outside_x64_solves_without_warnings(library_errors):
    """Outside 64-bit mode a NumPy float64 w0 is float32, as any JAX input; it was cast to
    float64 (with the named forcing), which JAX truncates with a UserWarning."""
    assert not jax.config.jax_enable_x64
    x = np.arange(8) / 8
    w0 = np.sin(2 * np.pi * x)[:, None] * np.cos(2 * np.pi * x)[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = navier_stokes_solve(w0, t_final=0.1)
    assert w.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(w), navier_stokes_solve(jnp.asarray(w0), t_final=0.1))


@pytest.mark.parametrize("n", [0, -1, 8.0, True])
def test_fno_forcing_refuses_a_bad_size(n, library_errors):
    """n=0 and n=-1 returned an empty (0, 0) forcing and 8.0 a float grid, silently."""
    with pytest.raises(ValueError, match=rf"`n` must be an integer >= 1; got {n!r}"):
        fno_forcing(n)
    assert fno_forcing(np.int64(3)).shape == (3, 3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_initial_condition_is_refused_naming_it(bad, library_errors):
    """A NaN or inf in ``w0`` ran the whole solve and was reported as a NaN solution, blamed
    on ``nu`` and ``dt``."""
    with pytest.raises(ValueError, match=r"`w0` must be finite; got w0\[1, 2, 3\]"):
        navier_stokes_solve(jnp.zeros((2, 16, 16)).at[1, 2, 3].set(bad))
