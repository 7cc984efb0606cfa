"""ETDRK4 by itself: fourth-order convergence on an ODE with a closed-form solution, and the
contour-integral coefficients against their closed forms (Cox & Matthews, 2002; Kassam &
Trefethen, 2005)."""

import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.data._etdrk4 import etdrk4_coefficients, etdrk4_integrate, num_steps_for

# Measured (float64, a = 1, v0 = 0.5, t = 1): errors 1.4e-6, 9.2e-8, 5.8e-9, 3.7e-10 at
# dt = 0.2, 0.1, 0.05, 0.025: observed orders 3.95, 3.98, 3.99.


def _bernoulli(a, v0, t, dt):
    """v' = -a v + v^2 by ETDRK4 (L = -a, N(v) = v^2)."""
    n, h = num_steps_for(t, dt)
    c = etdrk4_coefficients(np.array([-a]), h, jnp.complex128)
    v = etdrk4_integrate(jnp.array([v0], jnp.complex128), c, lambda v: v * v, n)
    return complex(v[0]).real


def test_fourth_order_on_a_closed_form_ode(x64):
    """v' = -a v + v^2 has 1 / v = 1 / a + (1 / v0 - 1 / a) e^(a t): the error falls 16x per
    halving of dt (a first-order slip in any stage would cap the order below 4)."""
    a, v0, t = 1.0, 0.5, 1.0
    exact = 1.0 / (1.0 / a + (1.0 / v0 - 1.0 / a) * np.exp(a * t))
    errs = np.array([abs(_bernoulli(a, v0, t, dt) - exact) for dt in (0.2, 0.1, 0.05, 0.025)])
    orders = np.log2(errs[:-1] / errs[1:])
    assert np.all((orders > 3.8) & (orders < 4.2)), (errs, orders)


def test_coefficients_match_closed_forms(x64):
    """Away from hL = 0 the closed forms are accurate; the contour averages must equal them
    (and stay finite at hL = 0, where the closed forms are 0 / 0)."""
    h = 0.1
    L = np.array([-20.0, -3.0, 5.0, 0.0])
    c = etdrk4_coefficients(L, h, jnp.complex128)
    z = h * L[:3]
    closed = {
        "E": np.exp(z),
        "E2": np.exp(z / 2),
        "Q": h * (np.exp(z / 2) - 1) / z,
        "f1": h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3,
        "f2": h * (2 + z + np.exp(z) * (z - 2)) / z**3,
        "f3": h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3,
    }
    for name, value in closed.items():
        got = np.asarray(getattr(c, name))
        np.testing.assert_allclose(got[:3], value, rtol=1e-11, err_msg=name)
    # limits at hL = 0: Q = h / 2, f1 = h / 6, f2 = h / 6, f3 = h / 6
    for name, limit in (("Q", h / 2), ("f1", h / 6), ("f2", h / 6), ("f3", h / 6)):
        np.testing.assert_allclose(np.asarray(getattr(c, name))[3], limit, rtol=1e-13)


def test_coefficients_refuse_bad_contours_and_dtypes():
    """An odd number of contour points put one at r = -1, on the removable singularity of
    hL = 1 (63 points: f1 = -2.1e14 instead of 2e - 5 = 0.44); too few points lost digits
    (8: relative error 2.4e-5); a complex L cast to a real dtype lost its imaginary parts with
    only a ComplexWarning; a NaN step gave NaN coefficients. All are refused, naming the
    argument."""
    L = np.array([1.0, -2.0])
    with pytest.raises(ValueError, match=r"`num_points` must be an even integer >= 16; got 63"):
        etdrk4_coefficients(L, 1.0, jnp.complex64, num_points=63)
    with pytest.raises(ValueError, match=r"`num_points` .* got 8"):
        etdrk4_coefficients(L, 1.0, jnp.complex64, num_points=8)
    with pytest.raises(TypeError, match=r"`dtype` must be a complex .* got float32 for `L`"):
        etdrk4_coefficients(np.array([1j, -2.0]), 1.0, jnp.float32)
    with pytest.raises(ValueError, match=r"`h` must be a finite time step; got nan"):
        etdrk4_coefficients(L, float("nan"), jnp.complex64)
    with pytest.raises(ValueError, match=r"`L` must be finite; got 1 inf/NaN"):
        etdrk4_coefficients(np.array([-np.inf, 1.0]), 0.1, jnp.complex64)
    # a real L may use a real dtype: no ComplexWarning, the same numbers
    real = etdrk4_coefficients(L, 1.0, jnp.float32)
    cplx = etdrk4_coefficients(L, 1.0, jnp.complex64)
    for a, b in zip(real, cplx, strict=True):
        assert a.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b).real)
    np.testing.assert_allclose(np.asarray(real.f1)[0], 2 * np.e - 5, rtol=1e-6)


def test_coefficients_at_large_imaginary_hL_match_closed_forms(x64):
    """Dispersive spectra (L = i c k^3) reach |hL| in the millions. The contour points hL + r
    are rounded to float64 (an absolute error |hL| eps, which exp makes relative), so the
    contour average was off by 5.6e-12 at hL = 1e6 i, 6.6e-10 at 1e8 i and 4.3e-8 at 1e10 i;
    above |hL| = 4 the closed forms (accurate to 5e-16 there, against long double) are used."""
    h = 1.0
    z = np.array([1e6j, 1e8j, 1e10j, -3e3 + 1e9j])
    c = etdrk4_coefficients(z / h, h, jnp.complex128)
    closed = {
        "Q": h * (np.exp(z / 2) - 1) / z,
        "f1": h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3,
        "f2": h * (2 + z + np.exp(z) * (z - 2)) / z**3,
        "f3": h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3,
    }
    for name, value in closed.items():
        np.testing.assert_allclose(np.asarray(getattr(c, name)), value, rtol=1e-14, err_msg=name)
