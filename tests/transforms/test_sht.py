"""Spherical harmonic transform on the Gauss–Legendre grid: against the direct float64
quadrature with real_sph_harm, round trips, Parseval, and aliasing that shows the grid
conditions nlat >= l_max + 1, nlon >= 2 l_max + 1 are tight."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from spectrax.transforms import (
    _sht,
    gauss_legendre,
    isht,
    real_sph_harm,
    sht,
    sph_index,
    sphere_grid,
)
from tests.helpers import assert_close, rel_err


def _harmonics(l_max, nlat, nlon):
    """Every Y_lm (l <= l_max) on sphere_grid(nlat, nlon): float64, (harmonic, nlat, nlon)."""
    theta, phi, _ = sphere_grid(nlat, nlon)
    y = real_sph_harm(l_max, jnp.asarray(theta)[:, None], jnp.asarray(phi)[None, :])
    return np.asarray(y, np.float64)


def _quadrature(f, nlat, nlon):
    """(2π/nlon) Σ_ij w_i f_ij over the last two axes."""
    _, _, w = sphere_grid(nlat, nlon)
    return np.einsum("...ij,i->...", f, w) * (2 * np.pi / nlon)


def test_sphere_grid():
    theta, phi, w = sphere_grid(6, 10)
    nodes, weights = gauss_legendre(6)
    assert theta.shape == w.shape == (6,) and phi.shape == (10,)
    assert theta.dtype == phi.dtype == w.dtype == np.float64
    assert np.all(np.diff(theta) > 0) and 0 < theta[0] and theta[-1] < np.pi  # north to south
    np.testing.assert_allclose(np.cos(theta), nodes[::-1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(w, weights[::-1], rtol=1e-15)
    np.testing.assert_allclose(phi, 2 * np.pi * np.arange(10) / 10, rtol=1e-15)
    # ∫ dΩ = 4π and ∫ cos²θ dΩ = 4π/3
    cos2 = np.broadcast_to(np.cos(theta)[:, None] ** 2, (6, 10))
    np.testing.assert_allclose(_quadrature(np.ones((6, 10)), 6, 10), 4 * np.pi, rtol=1e-14)
    np.testing.assert_allclose(_quadrature(cos2, 6, 10), 4 * np.pi / 3, rtol=1e-14)


@pytest.mark.parametrize("l_max,nlat,nlon", [(0, 1, 1), (5, 6, 11), (6, 9, 16)])
def test_sht_equals_direct_quadrature(x64, l_max, nlat, nlon):
    """For any field (band-limited or not) sht is the quadrature Σ w (2π/nlon) f Y_lm."""
    f = np.random.default_rng(0).standard_normal((2, nlat, nlon))
    y = _harmonics(l_max, nlat, nlon)
    expected = _quadrature(f[:, None] * y[None], nlat, nlon)
    got = sht(jnp.asarray(f), l_max)
    assert got.shape == (2, (l_max + 1) ** 2) and got.dtype == jnp.float64
    assert_close(got, expected, jnp.float64)


@pytest.mark.parametrize("nlat_extra,nlon_extra", [(0, 0), (3, 3)])
def test_round_trips_for_band_limited_fields(x64, nlat_extra, nlon_extra):
    l_max = 7
    nlat, nlon = l_max + 1 + nlat_extra, 2 * l_max + 1 + nlon_extra  # minimal, and larger/even
    c = np.random.default_rng(1).standard_normal((3, (l_max + 1) ** 2))
    f = np.einsum("bk,kij->bij", c, _harmonics(l_max, nlat, nlon))
    synth = isht(jnp.asarray(c), nlat, nlon)
    assert synth.shape == (3, nlat, nlon) and synth.dtype == jnp.float64
    assert_close(synth, f, jnp.float64, what="isht vs Σ c Y")
    assert_close(sht(synth, l_max), c, jnp.float64, what="sht(isht(c))")
    assert_close(isht(sht(jnp.asarray(f), l_max), nlat, nlon), f, jnp.float64, what="isht(sht)")


def test_round_trip_is_float64_accurate_on_a_larger_grid(x64):
    """l_max = 31 on a 40 x 80 grid (more latitudes than the minimal 32): sht(isht(c)) == c to
    1e-14 norm-wise (measured 2.5e-15). With NumPy's leggauss weights (off by ~7e-13 relative
    at 40 nodes) it was 2.4e-14, and 1.8e-13 at l_max = 63 on 90 x 180."""
    l_max, nlat, nlon = 31, 40, 80
    c = jnp.asarray(np.random.default_rng(2).standard_normal((2, (l_max + 1) ** 2)))
    assert rel_err(sht(isht(c, nlat, nlon), l_max), c) < 1e-14


def test_high_degree_harmonics_against_scipy(x64):
    """At l_max = 40 on the minimal grid the cached Legendre tables (built in NumPy by the
    normalised recurrence) synthesise and analyse scipy.special.sph_harm_y's harmonics,
    converted to the real, phase-free convention: Y_lm = sqrt(2) (-1)^m Re Y_l^m (m > 0),
    sqrt(2) (-1)^m Im Y_l^|m| (m < 0). Measured: isht 7e-15 norm-wise, sht 1.3e-13 max."""
    l_max = 40
    nlat, nlon = l_max + 1, 2 * l_max + 1
    theta, phi, _ = sphere_grid(nlat, nlon)
    lms = [(40, 0), (40, 1), (40, -17), (40, 40), (40, -40), (39, 25), (33, -32), (1, 1)]
    ref = []
    for l, m in lms:
        y = scipy.special.sph_harm_y(l, abs(m), theta[:, None], phi[None, :])
        part = y.real if m >= 0 else y.imag
        ref.append(part * (1.0 if m == 0 else np.sqrt(2.0) * (-1.0) ** m))
    ref = np.stack(ref)
    unit = np.zeros((len(lms), (l_max + 1) ** 2))
    unit[np.arange(len(lms)), [sph_index(l, m) for l, m in lms]] = 1.0
    synth = isht(jnp.asarray(unit), nlat, nlon)
    assert_close(synth, ref, rtol=1e-12, what="isht(e_lm)")
    got = np.asarray(sht(jnp.asarray(ref), l_max))
    np.testing.assert_allclose(got, unit, rtol=0, atol=1e-12)


def test_each_harmonic_transforms_to_a_unit_vector(x64):
    l_max = 6
    nlat, nlon = l_max + 1, 2 * l_max + 1
    coeffs = np.asarray(sht(jnp.asarray(_harmonics(l_max, nlat, nlon)), l_max))
    np.testing.assert_allclose(coeffs, np.eye((l_max + 1) ** 2), rtol=0, atol=1e-13)
    assert np.argmax(np.abs(coeffs[sph_index(4, -3)])) == sph_index(4, -3)


def test_parseval(x64):
    """∫ f² dΩ = Σ c² for band-limited f (f² has degree 2 l_max, which the grid integrates)."""
    l_max, nlat, nlon = 9, 10, 19
    c = np.random.default_rng(2).standard_normal((l_max + 1) ** 2)
    f = np.asarray(isht(jnp.asarray(c), nlat, nlon))
    np.testing.assert_allclose(_quadrature(f**2, nlat, nlon), np.sum(c**2), rtol=1e-13)
    coeffs = np.asarray(sht(jnp.asarray(f), l_max))
    np.testing.assert_allclose(np.sum(coeffs**2), _quadrature(f**2, nlat, nlon), rtol=1e-13)


def test_grid_conditions_are_tight(x64):
    """On the minimal grid for l_max the discrete Gram matrix sht(Y) is the identity; one
    latitude or one longitude fewer breaks it. sht refuses those grids, so its jitted core
    is called directly to show why."""
    l_max = 5
    for nlat, nlon, exact in [(6, 11, True), (5, 11, False), (6, 10, False)]:
        gram = np.asarray(_sht._sht(jnp.asarray(_harmonics(l_max, nlat, nlon)), l_max))
        err = np.abs(gram - np.eye((l_max + 1) ** 2)).max()
        assert (err < 1e-13) if exact else (err > 0.5), (nlat, nlon, err)
    # the failures are the predicted ones: P_{l_max} vanishes at the l_max Gauss nodes, and
    # sin(l_max φ) at the 2 l_max equispaced longitudes
    assert np.abs(_harmonics(l_max, 5, 11)[sph_index(l_max, 0)]).max() < 1e-13
    assert np.abs(_harmonics(l_max, 6, 10)[sph_index(l_max, -l_max)]).max() < 1e-13


def test_fields_above_l_max_alias_on_the_minimal_grid(x64):
    """On the minimal grid for l_max, higher-degree fields are invisible or leak into (alias
    onto) the degree <= l_max coefficients, so the field is not reproduced; on a grid fine
    enough for them they are orthogonal to those coefficients, as on the sphere."""
    l_max = 5
    nlat, nlon = l_max + 1, 2 * l_max + 1
    coarse = _harmonics(l_max + 2, nlat, nlon)
    fine = _harmonics(l_max + 2, l_max + 3, 2 * l_max + 5)  # exact up to degree l_max + 2
    # P_{l_max + 1} has the nlat Gauss nodes as roots: Y_{l_max+1,0} is zero on the grid
    assert np.abs(coarse[sph_index(l_max + 1, 0)]).max() < 1e-13
    cases = [
        # latitude: P̄_{l_max+2}^m P̄_{l_max}^m has degree 2 nlat in cos θ, one past the rule
        ((l_max + 2, 0), (l_max, 0)),
        ((l_max + 2, 3), (l_max, 3)),
        # longitude: cos/sin((l_max + 1) φ) = cos(l_max φ) / -sin(l_max φ) on 2 l_max + 1 points
        ((l_max + 1, l_max + 1), (l_max, l_max)),
        ((l_max + 1, -l_max - 1), (l_max, -l_max)),
    ]
    for (l, m), (l_to, m_to) in cases:
        k = sph_index(l, m)
        assert np.abs(np.asarray(sht(jnp.asarray(fine[k]), l_max))).max() < 1e-13, (l, m)
        leaked = sht(jnp.asarray(coarse[k]), l_max)
        assert np.argmax(np.abs(leaked)) == sph_index(l_to, m_to), (l, m)
        assert np.abs(np.asarray(leaked)).max() > 0.1, (l, m)
        # the samples are those of a lower-degree field; between the nodes it is another one
        on_fine = isht(leaked, l_max + 3, 2 * l_max + 5)
        assert rel_err(on_fine, fine[k]) > 0.5, (l, m)


def test_jit_vmap_grad_and_caching(x64):
    l_max, nlat, nlon = 4, 6, 10
    rng = np.random.default_rng(3)
    f = jnp.asarray(rng.standard_normal((2, 3, nlat, nlon)))
    c = sht(f, l_max)
    assert c.shape == (2, 3, (l_max + 1) ** 2)
    assert_close(jax.jit(sht, static_argnums=1)(f, l_max), c, jnp.float64)
    assert_close(jax.vmap(lambda x: sht(x, l_max))(f), c, jnp.float64)
    back = isht(c, nlat, nlon)
    assert_close(jax.jit(isht, static_argnums=(1, 2))(c, nlat, nlon), back, jnp.float64)
    assert_close(jax.vmap(lambda x: isht(x, nlat, nlon))(c), back, jnp.float64)
    # adjoints: grad_f <g, sht(f)> = (2π/nlon) w_i isht(g); grad_c <h, isht(c)> = Σ_ij h Y_k
    g = jnp.asarray(rng.standard_normal((l_max + 1) ** 2))
    h = rng.standard_normal((nlat, nlon))
    _, _, w = sphere_grid(nlat, nlon)
    dsht = jax.grad(lambda x: jnp.sum(g * sht(x, l_max)))(f[0, 0])
    expected = (2 * np.pi / nlon) * w[:, None] * np.asarray(isht(g, nlat, nlon))
    assert_close(dsht, expected, jnp.float64)
    disht = jax.grad(lambda x: jnp.sum(jnp.asarray(h) * isht(x, nlat, nlon)))(g)
    assert_close(disht, np.einsum("ij,kij->k", h, _harmonics(l_max, nlat, nlon)), jnp.float64)
    # the Legendre tables are built once per (nlat, l_max), not per call or per shape
    misses = _sht._legendre_tables.cache_info().misses
    sht(f[0], l_max), isht(c[0, 0], nlat, nlon), jax.jit(lambda x: sht(x, l_max))(f[1])
    assert _sht._legendre_tables.cache_info().misses == misses


def test_float32_and_half_precision():
    l_max, nlat, nlon = 12, 14, 26
    c = np.random.default_rng(4).standard_normal((2, (l_max + 1) ** 2))
    with jax.enable_x64(True):
        f64 = np.asarray(isht(jnp.asarray(c), nlat, nlon))
    f32 = isht(jnp.asarray(c, jnp.float32), nlat, nlon)
    assert f32.dtype == jnp.float32
    assert_close(f32, f64, jnp.float32)
    c32 = sht(jnp.asarray(f64, jnp.float32), l_max)
    assert c32.dtype == jnp.float32
    assert_close(c32, c, jnp.float32)
    assert_close(sht(f32, l_max), c, jnp.float32)
    bf16 = sht(jnp.asarray(f64, jnp.bfloat16), l_max)
    assert bf16.dtype == jnp.bfloat16
    assert_close(bf16, c, jnp.bfloat16)
    assert isht(bf16, nlat, nlon).dtype == jnp.bfloat16


def test_errors(library_errors):
    f = jnp.zeros((3, 6, 11))
    with pytest.raises(ValueError, match=r"`l_max` must be an integer >= 0; got -1"):
        sht(f, -1)
    with pytest.raises(TypeError, match=r"`f` must be a real floating-point array.*int32"):
        sht(jnp.zeros((6, 11), jnp.int32), 5)
    with pytest.raises(TypeError, match=r"`f` must be a real floating-point array.*complex64"):
        sht(jnp.zeros((6, 11), jnp.complex64), 5)
    with pytest.raises(ValueError, match=r"`f` must have shape \(\.\.\., nlat, nlon\).*\(11,\)"):
        sht(jnp.zeros(11), 5)
    with pytest.raises(
        ValueError,
        match=r"`f` of shape \(3, 6, 11\) is an nlat x nlon = 6 x 11 grid, too small for "
        r"`l_max`=6: the spherical harmonic transform needs nlat >= 7 and nlon >= 13.*"
        r"l_max <= 5",
    ):
        sht(f, 6)
    with pytest.raises(ValueError, match=r"6 x 10 grid, too small for `l_max`=5.*l_max <= 4"):
        sht(jnp.zeros((6, 10)), 5)
    # an empty grid was "too small for `l_max`=0 ... l_max <= -1 on this one"
    with pytest.raises(ValueError, match=r"0 x 11 grid; the grid sizes must be positive"):
        sht(jnp.zeros((0, 11)), 0)
    c = jnp.zeros((2, 36))
    with pytest.raises(
        ValueError,
        match=r"`nlat`, `nlon` is an nlat x nlon = 5 x 11 grid, too small for l_max=5 \(from "
        r"`coeffs`' last axis, 36\)",
    ):
        isht(c, 5, 11)
    with pytest.raises(ValueError, match=r"`nlon` must be an integer >= 1; got 0"):
        isht(c, 6, 0)
    with pytest.raises(ValueError, match=r"last axis 35 is not a positive perfect square"):
        isht(jnp.zeros((2, 35)), 6, 11)
    with pytest.raises(TypeError, match=r"`coeffs` must be a real floating-point array"):
        isht(jnp.zeros(36, jnp.int32), 6, 11)
    with pytest.raises(ValueError, match=r"`nlat` must be an integer >= 1; got 0"):
        sphere_grid(0, 4)
