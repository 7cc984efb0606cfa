"""HiPPO closed forms, the NPLR form, LegS online projection, S4D inits and PTD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import legendre

from spectrax.ssm import (
    MEASURES,
    discretize_dense,
    hippo,
    nplr,
    ptd,
    ptd_legs,
    ptd_slots,
    s4d_inv,
    s4d_legs,
    s4d_lin,
    s4d_ptd,
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
    if measure == "fout" and N % 2 == 0:  # the unpaired last cosine is a dead state (as in S4)
        a_ref[-1, :] = a_ref[:, -1] = b_ref[-1] = 0.0
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


def test_legs_online_is_exact_for_polynomials_of_degree_below_n():
    """HiPPO's projection property: for u a polynomial of degree < N the LegS state is u's
    Legendre coefficients on [0, t] exactly, so only the O(dt^2) time-stepping error remains."""
    coef = np.array([1.0, -2.0, 0.0, 3.0])  # 1 - 2t + 3t^3, degree 3
    nodes, weights = legendre.leggauss(16)
    x = np.linspace(0.0, 1.0, 101)
    for n, f in ((4, coef), (6, coef), (4, np.append(coef, 5.0))):  # the last: degree 4 = N
        c = _legs_online(lambda t, f=f: np.polynomial.polynomial.polyval(t, f), n, 4000)
        r = np.sqrt(2.0 * np.arange(n) + 1.0)
        u = np.polynomial.polynomial.polyval(0.5 * (nodes + 1.0), f)
        exact = 0.5 * (weights * u) @ (legendre.legvander(nodes, n - 1) * r)
        recon = legendre.legval(2.0 * x - 1.0, c * r) - np.polynomial.polynomial.polyval(x, f)
        if len(f) <= n:  # measured 3.5e-8 (coefficients) and 1.4e-7 (reconstruction)
            assert np.max(np.abs(c - exact)) < 1e-6 and np.max(np.abs(recon)) < 1e-6
        else:  # degree N is outside the span: measured 7.1e-2
            assert np.max(np.abs(recon)) > 1e-2


def test_time_invariant_legs_impulse_response_is_warped_legendre():
    """hippo's docstring (How to Train Your HiPPO): e^{tA} B = sqrt(2n+1) e^{-t} P_n(2e^{-t} - 1)
    for the time-invariant LegS system (measured at most 3.7e-15 for t in (0.1, 0.7, 2))."""
    import scipy.linalg

    n = 6
    a, b = hippo("legs", n)
    r = np.sqrt(2.0 * np.arange(n) + 1.0)
    for t in (0.1, 0.7, 2.0):
        want = r * np.exp(-t) * legendre.legvander(np.array([2.0 * np.exp(-t) - 1.0]), n - 1)[0]
        np.testing.assert_allclose(scipy.linalg.expm(t * a) @ b, want, rtol=0, atol=1e-13)


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


def test_ptd_validates_inputs(library_errors):
    a = hippo("legs", 4)[0]
    key = jax.random.key(0)
    for bad in (-1e-2, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`eps`"):
            ptd(a, bad, key)
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError, match="`eps`"):
            ptd(a, bad, key)
    with pytest.raises(TypeError, match="`A` must be real"):
        ptd(a.astype(np.complex128) + 1e-3j, 1e-2, key)  # would silently drop the imaginary part
    with pytest.raises(ValueError, match="`A` must be finite"):
        ptd(np.where(np.eye(4) > 0, np.nan, a), 1e-2, key)
    # N = 0 failed in NumPy's cond (LinAlgError, after a divide-by-zero warning scaling E)
    with pytest.raises(ValueError, match=r"`A`.*N >= 1.*\(0, 0\)"):
        ptd(np.zeros((0, 0)), 1e-2, key)


@pytest.mark.usefixtures("x64")
def test_ptd_steps_lower_the_condition_number_at_fixed_norm():
    # n = 14, the size of ptd_legs(16) below (one compilation); measured cond(V) 6.9e3 -> 6.4e2
    # (key 1, eps = 0.1, 20 steps).
    a = hippo("legs", 14)[0]
    key = jax.random.key(1)
    lam0, v0, cond0 = ptd(a, 0.1, key)
    lam1, v1, cond1 = ptd(a, 0.1, key, steps=20)
    assert cond1 < 0.5 * cond0, (cond0, cond1)
    assert cond1 == pytest.approx(np.linalg.cond(v1))
    e = v1 @ np.diag(lam1) @ np.linalg.inv(v1) - a  # the optimised perturbation, rebuilt
    assert abs(np.linalg.norm(e, 2) - 0.1) < 1e-9, np.linalg.norm(e, 2)  # backward error = eps
    assert np.allclose(np.linalg.norm(v1, axis=0), 1.0)
    assert np.array_equal(ptd(a, 0.1, key, steps=20)[0], lam1)  # deterministic


def test_ptd_optimises_with_concrete_values_under_an_outer_trace():
    """Called while an outer ``jit`` or ``eval_shape`` traces (a layer built inside a jitted
    function), the optimisation still runs now, as one compiled loop, and gives the eager
    result bitwise (it ran op by op under ``ensure_compile_time_eval``: 47 compilations at
    N = 64)."""
    a = hippo("legs", 14)[0]
    key = jax.random.key(1)
    eager = ptd(a, 0.1, key, steps=20)
    seen = []

    def build(x):
        seen.append(ptd(a, 0.1, key, steps=20))
        return x

    jax.jit(build)(1.0)
    jax.eval_shape(lambda x: build(x), 1.0)  # a new function: not the jit's cached trace
    assert len(seen) == 2
    for lam, v, cond in seen:
        assert isinstance(lam, np.ndarray) and isinstance(v, np.ndarray)
        assert np.array_equal(lam, eager[0]) and np.array_equal(v, eager[1])
        assert cond == eager[2]


def _slot_system(lam, bt, ct, s):
    """Transfer function of slots read out as 2 Re(c x): slots plus their conjugates."""
    both = lambda z: jnp.asarray(np.concatenate([z, np.conj(z)]))  # noqa: E731
    return np.asarray(transfer_continuous(both(lam), both(bt), both(ct), None, jnp.asarray(s)))


@pytest.mark.usefixtures("x64")
def test_ptd_slots_are_the_real_system_exactly():
    # The half weight on real eigenvalues' slots: without it, each real mode counts twice.
    lam, v, ae, b = ptd_legs(16, steps=10)
    n = len(lam)
    r = int(np.sum(lam.imag == 0))
    assert n + r == 16 and r >= 1, (n, r)
    lam_s, w, cols = ptd_slots(lam, v)
    assert lam_s.shape == (8,) and w.shape == (8, n) and cols.shape == (n, 8)
    real = lam_s.imag == 0
    assert np.all(w[real].imag == 0) and np.all(cols[:, real].imag == 0)
    c = np.asarray(jax.random.normal(jax.random.key(0), (n,)), np.float64)
    s = 1j * np.linspace(-30.0, 30.0, 61) + 0.1
    h_dense = np.asarray(
        transfer_continuous(jnp.asarray(ae), jnp.asarray(b), jnp.asarray(c), None, jnp.asarray(s))
    )
    h_slots = _slot_system(lam_s, w @ b, c @ cols, s)
    assert rel_err(h_slots, h_dense) < 1e-10, rel_err(h_slots, h_dense)
    bt, lam_i = s4d_ptd(16, steps=10)[1], s4d_ptd(16, steps=10)[0]
    assert np.array_equal(lam_i, lam_s) and np.allclose(bt, w @ b, rtol=0, atol=1e-12)


@pytest.mark.usefixtures("x64")
def test_s4d_ptd_transfer_function_is_close_to_legs_unlike_s4d_legs():
    # The paper's claim at N = 64, eps = 0.1: relative sup distance to HiPPO-LegS(n) on
    # s = i w, |w| <= 100, same real C: the default init (150 steps, n = 62) 3.0e-2 (absolute
    # 6.9e-2; the paper's bound (2 ln n + 4) eps = 1.23); S4D-LegS 3.09. Here the random E
    # (steps = 0, no compilation: fast): 1.0e-2.
    lam, v, _, _ = ptd_legs(PTD_N, steps=0)
    n = len(lam)
    a, b = hippo("legs", n)
    c = np.asarray(jax.random.normal(jax.random.key(3), (n,)), np.float64)
    s = 1j * np.linspace(-100.0, 100.0, 401)
    h_ref = np.asarray(
        transfer_continuous(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c), None, jnp.asarray(s))
    )
    lam_s, w, cols = ptd_slots(lam, v)
    h = _slot_system(lam_s, w @ b, c @ cols, s)
    d_ptd = np.max(np.abs(h - h_ref)) / np.max(np.abs(h_ref))
    assert np.max(np.abs(h - h_ref)) < (2 * np.log(n) + 4) * 0.1
    a64, b64 = hippo("legs", PTD_N)
    c64 = np.asarray(jax.random.normal(jax.random.key(3), (PTD_N,)), np.float64)
    h64 = np.asarray(
        transfer_continuous(
            jnp.asarray(a64), jnp.asarray(b64), jnp.asarray(c64), None, jnp.asarray(s)
        )
    )
    lam_l, _, _, v_l = nplr("legs", PTD_N)
    d_legs = _tf_distance(lam_l, v_l.conj().T @ b64, c64 @ v_l, h64, s)
    assert d_ptd < 0.06 and d_legs > 1.0 and d_ptd < d_legs / 30, (d_ptd, d_legs)
    assert np.all(lam.real < 0)


def test_s4d_ptd_validates_inputs(library_errors):
    with pytest.raises(ValueError, match="even"):
        s4d_ptd(7)
    with pytest.raises(ValueError, match="`steps`.*-1"):
        s4d_ptd(8, steps=-1)
    with pytest.raises(ValueError, match="`steps`"):
        ptd(hippo("legs", 4)[0], 0.1, jax.random.key(0), steps=1.5)
    with pytest.raises(ValueError, match="`seed`.*-2"):
        s4d_ptd(8, seed=-2)
    with pytest.raises(TypeError, match="`eps`"):
        s4d_ptd(8, eps="0.1")
    with pytest.raises(ValueError, match="`eps`"):
        s4d_ptd(8, eps=0.0)
    # A perturbation as large as LegS itself moves eigenvalues into the right half-plane.
    with pytest.raises(ValueError, match=r"`eps` is too large.*Re = "):
        s4d_ptd(8, eps=30.0, steps=0)
    lam, b = s4d_ptd(2, steps=0)  # one real mode (n = 1) at half weight of B
    assert lam.shape == (1,) and lam.imag[0] == 0 and b[0] == 0.5


# --- what the translated measures remember -----------------------------------------------------
# hippo's docstring: the window is [t - 2, t]; LegT holds Legendre coefficients in s - t + 1 in
# [-1, 1], FouT Fourier coefficients in the lag y = (t - s)/2 in [0, 1]. The ODE x' = A x + B u is
# run in float64 with the library's bilinear discretisation and a small step (O(dt^2) error).


def _run_hippo(a, b, u, t_end, dt, x0=None):
    """States of the bilinear discretisation of x' = a x + b u at t = dt, 2 dt, ..., t_end
    (input sampled at the step midpoints), from x0 (zeros by default); (steps, N)."""
    a_bar, b_bar = discretize_dense(jnp.asarray(a), jnp.asarray(b)[:, None], dt, "bilinear")
    a_bar, b_bar = np.asarray(a_bar), np.asarray(b_bar)[:, 0]
    x = np.zeros(len(b)) if x0 is None else np.asarray(x0, np.float64)
    xs = []
    for k in range(int(round(t_end / dt))):
        x = a_bar @ x + b_bar * u((k + 0.5) * dt)
        xs.append(x)
    return np.stack(xs)


def _smooth(t):
    return np.sin(1.3 * t) + 0.5 * np.cos(2.9 * t + 0.3) + 0.2 * t


def _legt_recon(c, s, t):
    return legendre.legval(s - t + 1.0, c * np.sqrt(2.0 * np.arange(len(c)) + 1.0))


@pytest.mark.usefixtures("x64")
def test_legt_state_reconstructs_the_last_window():
    t_end = 6.0
    s = np.linspace(t_end - 2.0, t_end, 401)
    scale = np.max(np.abs(_smooth(s)))

    def recon_error(a, b):
        c = _run_hippo(a, b, _smooth, t_end, 1e-3)[-1]
        return np.max(np.abs(_legt_recon(c, s, t_end) - _smooth(s))) / scale, c

    errors = {n: recon_error(*hippo("legt", n))[0] for n in (4, 8)}
    errors[12], c = recon_error(*hippo("legt", 12))
    # Measured relative sup errors: N=4 5.6e-2, N=8 3.4e-4, N=12 5.3e-7 (the dt^2 floor):
    # geometric in N for an analytic input.
    assert errors[8] < errors[4] / 50 and errors[12] < 5e-6, errors
    # The state is the projection 1/2 ∫ u(s) sqrt(2n+1) P_n(s - t + 1) ds itself (measured 5.2e-7).
    nodes, weights = legendre.leggauss(64)
    basis = legendre.legvander(nodes, 11) * np.sqrt(2.0 * np.arange(12) + 1.0)
    proj = 0.5 * (weights * _smooth(t_end - 1.0 + nodes)) @ basis
    assert rel_err(c, proj) < 5e-6, rel_err(c, proj)
    # The same check rejects a wrong sign of A (diverges, 1e25), B doubled (1.0), or a window of
    # 1 instead of 2 (A and B doubled: 0.25).
    a, b = hippo("legt", 12)
    for wrong in ((-a, b), (a, 2 * b), (2 * a, 2 * b)):
        err = recon_error(*wrong)[0]
        assert not err < 0.1, err


def _fourier_basis(n, y):
    """[1, sqrt2 cos(2 pi y), sqrt2 sin(2 pi y), sqrt2 cos(4 pi y), ...][:n] at y: (n, len(y))."""
    k = (np.arange(n) + 1) // 2
    trig = np.where(np.arange(n) % 2 == 1, np.cos, np.sin)
    rows = [np.ones_like(y)] + [np.sqrt(2.0) * trig[i](2 * np.pi * k[i] * y) for i in range(1, n)]
    return np.stack(rows)


_Y = (np.arange(4000) + 0.5) / 4000  # midpoint rule on the lag y in [0, 1]


def _fout_projection(u, n, t):
    """1/2 ∫_{t-2}^t u(s) g_n((t - s)/2) ds = ∫_0^1 u(t - 2y) g_n(y) dy."""
    return _fourier_basis(n, _Y) @ u(t - 2.0 * _Y) / _Y.size


def _periodic(t):  # period 2 (the window), frequencies 0, pi and 2 pi: in the span for N >= 5
    return 0.3 + np.sin(np.pi * t) + 0.5 * np.cos(2.0 * np.pi * t + 0.3)


def _fout_run(a, b, u, t_end, x0=None):
    return _run_hippo(a, b, u, t_end, 1e-3, x0)


@pytest.mark.usefixtures("x64")
def test_fout_state_is_the_fourier_projection_of_the_window():
    n = 9
    a, b = hippo("fout", n)
    y = np.linspace(0.0, 1.0, 201)
    ref = _periodic(6.0 - 2.0 * y)

    def periodic_error(a, b):
        # u of period 2 in the basis' span: the projection solves the ODE exactly, so started
        # on it the state stays on it and reconstructs u(t - 2y) to the time-stepping error.
        c = _fout_run(a, b, _periodic, 6.0, _fout_projection(_periodic, n, 0.0))[-1]
        return np.max(np.abs(_fourier_basis(n, y).T @ c - ref)) / np.max(np.abs(ref))

    def smooth_error(a, b, n=n):
        # u(t) != u(t - 2): from x = 0, the state approaches the projection with a 1/N error
        c = _fout_run(a, b, _smooth, 8.0)[-1]
        proj = _fout_projection(_smooth, len(b), 8.0)
        return np.max(np.abs(c - proj)) / np.max(np.abs(proj))

    # Measured: periodic 1.3e-5; smooth 2.6e-2 at N=9, 7.1e-3 at N=33.
    assert periodic_error(a, b) < 1e-4
    e9 = smooth_error(a, b)
    e33 = smooth_error(*hippo("fout", 33), n=33)
    assert e9 < 0.05 and e33 < e9 / 2, (e9, e33)
    # Each of these breaks one of the two checks (measured): -A diverges (6e4); the rotation
    # transposed (sin/cos orientation swapped) 1.7; B doubled 1.0; +B B^T instead of -B B^T
    # diverges; A's rank-one part and B halved (the end-point average ignored) 0.18 on the
    # smooth input, doubled 0.27.
    rot = a + np.outer(b, b)
    assert not periodic_error(-a, b) < 0.1
    assert not periodic_error(rot.T - np.outer(b, b), b) < 0.1
    assert not periodic_error(a, 2 * b) < 0.1
    assert not periodic_error(rot + np.outer(b, b), b) < 0.1
    assert not smooth_error(rot - 0.5 * np.outer(b, b), 0.5 * b) < 0.1
    assert not smooth_error(rot - 2.0 * np.outer(b, b), 2.0 * b) < 0.1


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("n", [2, 8, 16])
def test_fout_even_n_has_a_dead_last_state(n):
    """Even N (hippo's docstring): the last cosine has no sine partner; driven, it would be locked
    to sqrt2 x_0 (sqrt2 x_0 - x_{N-1} conserved) and the reconstruction would not converge
    (measured 0.41 at N = 8). It is undriven with a zero row and column, as in S4: the other
    states are exactly the odd N - 1 memory."""
    a, b = hippo("fout", n)
    a_odd, b_odd = hippo("fout", n - 1)
    np.testing.assert_array_equal(a[:-1, :-1], a_odd)
    np.testing.assert_array_equal(b[:-1], b_odd)
    assert b[-1] == 0.0 and not a[-1].any() and not a[:, -1].any()
    xs = _fout_run(a, b, _periodic, 6.0)
    assert not xs[:, -1].any()
    np.testing.assert_allclose(xs[:, :-1], _fout_run(a_odd, b_odd, _periodic, 6.0), atol=1e-12)
    if n >= 8:  # in the span from N = 5 on
        y = np.linspace(0.0, 1.0, 201)
        ref = _periodic(6.0 - 2.0 * y)
        err = np.max(np.abs(_fourier_basis(n - 1, y).T @ xs[-1, :-1] - ref)) / np.max(np.abs(ref))
        assert err < 0.05, err  # measured before this fix: 0.41 (driven last cosine)


@pytest.mark.usefixtures("x64")
def test_lagt_state_is_the_laguerre_projection():
    """hippo's docstring: LagT's state is x_n(t) = ∫_0^t u(s) L_n(t - s) e^{-(t - s)/2} ds (the
    ODE is exact here, no end-point approximation), so it matches quadrature to O(dt^2)."""
    from scipy.special import eval_laguerre

    t_end, n = 6.0, 8
    nodes, weights = legendre.leggauss(200)
    lag = 0.5 * t_end * (nodes + 1.0)
    basis = np.stack([eval_laguerre(k, lag) * np.exp(-lag / 2.0) for k in range(n)])
    proj = basis @ (0.5 * t_end * weights * _smooth(t_end - lag))

    def error(a, b, dt):
        c = _run_hippo(a, b, _smooth, t_end, dt)[-1]
        return np.max(np.abs(c - proj)) / np.max(np.abs(proj))

    a, b = hippo("lagt", n)
    assert error(a, b, 1e-3) < 2e-6  # measured 1.8e-7 (1.8e-5 at dt = 1e-2: second order)
    # The untilted measure e^{-(t - s)} (diagonal -1, HiPPO 2020's LagT): 0.33; B halved: 0.5.
    assert not error(a - 0.5 * np.eye(n), b, 1e-2) < 0.1
    assert not error(a, 0.5 * b, 1e-2) < 0.1


def test_ptd_slots_rejects_eigenvalues_that_are_not_conjugate_pairs(library_errors):
    # A real eigenvalue with a stray +-1e-17 imaginary part took a full-weight pair slot and its
    # mirror none (7 slots for 8, silently a different system); now an error naming `Lambda`.
    lam = np.array([-1.0, -2.0, -0.5 + 3.0j, -0.5 - 3.0j])
    v = np.eye(4, dtype=np.complex128)
    assert ptd_slots(lam, v)[0].shape == (3,)
    for bad in (lam + np.array([1e-17j, -1e-17j, 0, 0]), lam + np.array([1e-17j, 0, 0, 0])):
        with pytest.raises(ValueError, match=r"`Lambda`.*conjugate pairs.*positive"):
            ptd_slots(bad, v)
    for bad_lam, bad_v in ((lam, np.eye(3)), (lam[:, None], v), (lam[:0], v[:0, :0])):
        # a V of another size failed in NumPy's inv or indexing, naming neither argument
        with pytest.raises(ValueError, match=r"`Lambda` must be \(n,\).*`V` the \(n, n\)"):
            ptd_slots(bad_lam, bad_v)
    with pytest.raises(ValueError, match=r"`Lambda`.*not conjugates"):
        ptd_slots(np.array([-1.0, -0.5 + 3.0j, -0.6 - 3.0j]), np.eye(3, dtype=np.complex128))


def test_ptd_does_not_depend_on_x64():
    # E was drawn in the default float dtype: float32 normals with x64 off, float64 with it on,
    # so the same key gave another perturbation (cond(V) 1.4e3 vs 2.2e3 at n = 14, eps = 0.1).
    a = hippo("legs", 6)[0]
    lam_off, v_off, cond_off = ptd(a, 0.1, jax.random.key(0))
    assert jnp.ones(2).dtype == jnp.float32  # the float64 draw does not leak x64 mode
    with jax.enable_x64(True):
        lam_on, v_on, cond_on = ptd(a, 0.1, jax.random.key(0))
    assert np.array_equal(lam_off, lam_on) and np.array_equal(v_off, v_on)
    assert cond_off == cond_on


def test_ptd_legs_does_not_depend_on_the_global_prng_settings():
    # The perturbation is a fixed part of S4D/S5's init, cached on (N, eps, steps, seed) alone: it
    # was drawn from jax.random.key(seed) under the global PRNG settings, so another
    # jax_default_prng_impl (or threefry_partitionable=False) gave another E, and the cache
    # returned whichever was computed first.
    from spectrax.ssm._hippo import _ptd_legs

    _ptd_legs.cache_clear()
    with jax.default_prng_impl("rbg"), jax.threefry_partitionable(False):
        other = ptd_legs(8, steps=0, seed=3)
    _ptd_legs.cache_clear()
    default = ptd_legs(8, steps=0, seed=3)
    for a, b in zip(other, default, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ptd_legs_gauge_does_not_depend_on_lapacks_eigenvectors(monkeypatch):
    # The layers store B~ = V~^-1 b in the slots and recompute V~ (C~ = c V~) at call time: a
    # LAPACK build that returned the eigenvalues in another order, or an eigenvector with
    # another phase (a real one with the other sign), computed another model from the same
    # checkpoint. ptd_legs fixes the gauge: (V~^-1 b)_j real and positive, order by Im, Re.
    from spectrax.nn import S4D, S5
    from spectrax.ssm import _hippo

    def build():
        _hippo._ptd_legs.cache_clear()
        s4d = S4D(2, 16, init="ptd", key=jax.random.key(0))
        s5 = S5(2, 16, init="ptd", key=jax.random.key(1))
        return ptd_legs(16), s4d, s5

    # V~ is a constant of each compiled call: every call below has a length not compiled yet
    # (the layers are causal, so a prefix of the input gives a prefix of the output)
    x = jax.random.normal(jax.random.key(2), (24, 2))
    (lam, v, _, b), s4d, s5 = build()
    bt = np.linalg.solve(v, b)
    assert np.all(bt.real > 0) and np.max(np.abs(bt.imag) / np.abs(bt)) < 1e-12
    assert np.all(np.diff(lam.imag) >= 0) and np.all(np.diff(lam[lam.imag == 0].real) > 0)
    y4, y5 = np.asarray(s4d(x)), np.asarray(s5(x))

    lapack = _hippo._ptd_decomposition

    def other_lapack(a, e):
        # reversed order, columns turned by unit factors (conjugate columns by conjugate
        # factors, real columns by -1), as another build may return them
        lam_, v_, ae = lapack(a, e)
        lam_, v_ = lam_[::-1], v_[:, ::-1]
        turn = np.exp(1j * np.linspace(0.3, 2.9, lam_.size))
        turn = np.where(lam_.imag == 0, -1.0, np.where(lam_.imag > 0, turn, np.conj(turn)))
        return lam_, v_ * turn[None, :], ae

    monkeypatch.setattr(_hippo, "_ptd_decomposition", other_lapack)
    try:
        (lam2, v2, _, _), s4d2, s52 = build()
        np.testing.assert_array_equal(lam2, lam)
        np.testing.assert_allclose(v2, v, rtol=0, atol=1e-12)
        # the first layers' parameters (a checkpoint) called where LAPACK differs, and the
        # layers initialised there
        for n, (layer, y) in enumerate(((s4d, y4), (s5, y5), (s4d2, y4), (s52, y5))):
            got = np.asarray(layer(x[: 20 - n]))
            np.testing.assert_allclose(got, y[: 20 - n], rtol=1e-5, atol=1e-5)
    finally:
        _hippo._ptd_legs.cache_clear()
