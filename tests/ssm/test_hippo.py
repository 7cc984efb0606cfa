"""HiPPO closed forms, the NPLR form, LegS online projection, S4D inits and PTD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import legendre

from spectrax.ssm import (
    MEASURES,
    hippo,
    nplr,
    ptd,
    s4d_inv,
    s4d_legs,
    s4d_lin,
    transfer_continuous,
)
from tests.helpers import rel_err

# Entry-by-entry closed forms written as scalar formulas (independent of the vectorised code).


def _legs_entry(n, k):
    if n > k:
        return -np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1)
    return -(n + 1.0) if n == k else 0.0


def _legt_entry(n, k):
    sign = 1.0 if n >= k else (-1.0) ** (n - k)
    return -0.5 * np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1) * sign


def _lagt_entry(n, k):
    return -1.0 if n > k else (-0.5 if n == k else 0.0)


def _fout_b(n):
    return 1.0 if n == 0 else (np.sqrt(2.0) if n % 2 == 1 else 0.0)


def _fout_entry(n, k):
    rot = 0.0
    if n % 2 == 0 and n > 0 and k == n - 1:
        rot = np.pi * (n // 2)  # d(sin_k)/dt picks up +pi k cos_k
    if n % 2 == 1 and k == n + 1:
        rot = -np.pi * ((n + 1) // 2)
    return rot - _fout_b(n) * _fout_b(k)


CLOSED = {
    "legs": (_legs_entry, lambda n: np.sqrt(2 * n + 1)),
    "legt": (_legt_entry, lambda n: 0.5 * np.sqrt(2 * n + 1)),
    "lagt": (_lagt_entry, lambda n: 1.0),
    "fout": (_fout_entry, _fout_b),
}


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("N", [1, 2, 5, 8])
def test_hippo_closed_forms(measure, N):
    a, b = hippo(measure, N)
    entry, b_entry = CLOSED[measure]
    a_ref = np.array([[entry(n, k) for k in range(N)] for n in range(N)])
    b_ref = np.array([b_entry(n) for n in range(N)])
    np.testing.assert_array_equal(a, a_ref)
    np.testing.assert_array_equal(b, b_ref)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("N", [4, 7, 32, 64])
def test_nplr_reconstructs(measure, N):
    a, _ = hippo(measure, N)
    lam, p, b, v = nplr(measure, N)
    np.testing.assert_array_equal(b, hippo(measure, N)[1])
    assert rel_err(v.conj().T @ v, np.eye(N)) < 1e-12, "V is not unitary"
    recon = v @ np.diag(lam) @ v.conj().T - p.T @ p
    assert np.max(np.abs(recon - a)) / np.max(np.abs(a)) < 1e-10
    assert np.allclose(recon.imag, 0.0, atol=1e-10)
    # Eigenvalues of a real matrix: the spectrum is closed under conjugation.
    np.testing.assert_allclose(np.sort_complex(lam), np.sort_complex(lam.conj()), atol=1e-10)


def _legs_online(f, n, steps):
    """Run HiPPO-LegS's ODE c' = (A c + B f(t)) / t on [0, 1] with the midpoint bilinear rule."""
    a, b = hippo("legs", n)
    eye = np.eye(n)
    c = np.zeros(n)
    c[0] = f(0.0)
    dt = 1.0 / steps
    for k in range(steps):
        h = 1.0 / (k + 0.5)
        c = np.linalg.solve(eye - 0.5 * h * a, (eye + 0.5 * h * a) @ c + h * b * f((k + 0.5) * dt))
    return c


def test_legs_online_projection_converges_with_N():
    f = lambda t: np.sin(4.0 * t) + 0.5 * np.cos(9.0 * t) * t  # noqa: E731
    x = np.linspace(0.0, 1.0, 401)
    errors = []
    for n in (4, 8, 16):
        c = _legs_online(f, n, 4000)
        # Reconstruction on [0, 1]: f(x) ~ sum_n c_n sqrt(2n+1) P_n(2x - 1).
        recon = legendre.legval(2 * x - 1, c * np.sqrt(2 * np.arange(n) + 1))
        errors.append(np.max(np.abs(recon - f(x))))
    # Measured: [1.48e-01, 2.06e-02, 3.39e-07]; Legendre projections of an analytic function
    # converge geometrically in N, down to the O(dt^2) floor of the time stepping.
    assert errors[0] > 5 * errors[1] > 25 * errors[2], errors
    assert errors[2] < 1e-5, errors


def test_s4d_inits_closed_forms():
    lam, b = s4d_lin(8)
    np.testing.assert_allclose(lam, -0.5 + 1j * np.pi * np.arange(4))
    np.testing.assert_array_equal(b, np.ones(4))
    lam, _ = s4d_inv(8)
    np.testing.assert_allclose(lam, -0.5 + 1j * (8 / np.pi) * (8 / (2 * np.arange(4) + 1) - 1))
    lam, b = s4d_legs(16)
    full, _, bb, v = nplr("legs", 16)
    assert lam.shape == (8,) and np.all(lam.imag > 0) and np.allclose(lam.real, -0.5)
    # Each kept eigenvalue is one of LegS's NPLR eigenvalues, with its projected B.
    for value, coef in zip(lam, b, strict=True):
        i = int(np.argmin(np.abs(full - value)))
        assert abs(full[i] - value) < 1e-12 and abs((v.conj().T @ bb)[i] - coef) < 1e-12


def test_errors(library_errors):
    with pytest.raises(ValueError, match="measure"):
        hippo("legx", 4)
    with pytest.raises(ValueError, match="`N`"):
        hippo("legs", 0)
    with pytest.raises(ValueError, match="`N`"):
        nplr("legs", -3)
    with pytest.raises(ValueError, match="even"):
        s4d_lin(7)
    with pytest.raises(ValueError, match="eps"):
        ptd(hippo("legs", 4)[0], 0.0, jax.random.key(0))
    with pytest.raises(ValueError, match="square"):
        ptd(np.zeros((3, 4)), 1e-2, jax.random.key(0))


# PTD: Yu, Mahoney & Erichson, ICLR 2024. Measured (N = 64, C ~ N(0, 1) with key 3,
# s = i w, w in [-100, 100], 2001 points; relative sup-norm transfer-function distance to
# HiPPO-LegS): S4D-LegS 3.09; PTD eps = 1e-1: 1.32e-2, 1e-2: 1.32e-3, 1e-3: 1.32e-4;
# ||V L V^-1 - A||_2 = eps to 3 digits; cond(V) = 4.5e4, 4.5e5, 4.7e6.
PTD_N = 64


def _tf_distance(lam, b_modal, c_modal, h_ref, s):
    h = np.asarray(
        transfer_continuous(
            jnp.asarray(lam), jnp.asarray(b_modal), jnp.asarray(c_modal), None, jnp.asarray(s)
        )
    )
    return float(np.max(np.abs(h - h_ref)) / np.max(np.abs(h_ref)))


@pytest.mark.usefixtures("x64")
def test_ptd_backward_stable_and_closer_than_s4d_legs():
    a, b = hippo("legs", PTD_N)
    c = np.asarray(jax.random.normal(jax.random.key(3), (PTD_N,)), np.float64)
    s = 1j * np.linspace(-100.0, 100.0, 2001)
    h_ref = np.asarray(
        transfer_continuous(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c), None, jnp.asarray(s))
    )
    lam, _, _, v = nplr("legs", PTD_N)
    d_s4d = _tf_distance(lam, v.conj().T @ b, c @ v, h_ref, s)
    assert d_s4d > 1.0, d_s4d  # measured 3.09: dropping the low-rank term changes the system
    dists = []
    for eps in (1e-1, 1e-2, 1e-3):
        lam_p, w, cond = ptd(a, eps, jax.random.key(0))
        backward = np.linalg.norm(w @ np.diag(lam_p) @ np.linalg.inv(w) - a, 2)
        assert 0.5 * eps < backward < 2.0 * eps, (eps, backward)
        assert cond > 1.0 / eps, (eps, cond)  # the trade-off: cond(V) grows as eps shrinks
        dists.append(_tf_distance(lam_p, np.linalg.solve(w, b), c @ w, h_ref, s))
    # Measured [1.32e-2, 1.32e-3, 1.32e-4]: first order in eps, and far below S4D-LegS's 3.09.
    assert dists[0] < 0.05 and dists[1] < 5e-3 and dists[2] < 5e-4, dists
    assert max(dists) < d_s4d / 50, (dists, d_s4d)
