"""Orthogonal polynomials, Gauss–Legendre quadrature and real spherical harmonics, against
NumPy/SciPy in float64 and against their defining identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from numpy.polynomial import chebyshev as npcheb
from numpy.polynomial import legendre as nplegendre

from spectrax.transforms import chebyshev, gauss_legendre, legendre, real_sph_harm, sph_index
from tests.helpers import assert_close

# ---------------------------------------------------------------- Legendre / Chebyshev


@pytest.mark.parametrize("ours,npval", [(legendre, nplegendre.legval), (chebyshev, npcheb.chebval)])
@pytest.mark.parametrize("n", [0, 1, 12])
def test_polynomials_match_numpy(x64, ours, npval, n):
    x = np.linspace(-1.0, 1.0, 21).reshape(3, 7)
    got = ours(n, jnp.asarray(x))
    assert got.shape == (n + 1, 3, 7) and got.dtype == jnp.float64
    expected = np.stack([npval(x, np.eye(n + 1)[k]) for k in range(n + 1)])
    assert_close(got, expected, jnp.float64)
    np.testing.assert_allclose(np.asarray(got[:, 2, -1]), 1.0, rtol=1e-14)  # P_k(1) = T_k(1) = 1


def test_legendre_at_high_degree_matches_scipy(x64):
    """Bonnet's recurrence to degree 300 against scipy.special.eval_legendre (measured max
    error 2.9e-13 in float64; 8e-5 in float32, on float32-rounded points) and the closed form
    P_k(0) = (-1)^(k/2) k! / (2^k ((k/2)!)^2), 0 for odd k."""
    n = 300
    x = np.linspace(-1.0, 1.0, 201)
    k = np.arange(n + 1)[:, None]
    got = legendre(n, jnp.asarray(x))
    assert_close(got, scipy.special.eval_legendre(k, x), rtol=1e-12)
    x32 = x.astype(np.float32)
    got32 = legendre(n, jnp.asarray(x32))
    assert got32.dtype == jnp.float32
    ref32 = scipy.special.eval_legendre(k, x32.astype(np.float64))
    assert np.abs(np.asarray(got32, np.float64) - ref32).max() < 5e-4
    p0 = np.asarray(legendre(n, jnp.asarray(0.0)))
    even = np.arange(0, n + 1, 2)
    log_mag = (
        scipy.special.gammaln(even + 1) - 2 * scipy.special.gammaln(even // 2 + 1)
    ) - even * np.log(2.0)
    np.testing.assert_allclose(p0[::2], (-1.0) ** (even // 2) * np.exp(log_mag), atol=1e-13)
    assert np.all(p0[1::2] == 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_legendre_endpoints_are_exact_at_high_degree(x64, dtype):
    """P_k(1) = 1 and P_k(-1) = (-1)^k exactly to degree 1000: the recurrence in the form
    P_{k+1} = x P_k + k/(k+1) (x P_k - P_{k-1}) has no rounding there. The rounded-ratio form
    (2k+1)/(k+1) x P_k - k/(k+1) P_{k-1} drifted: here by 5.4e-6 in float32 and 1.4e-13 in
    float64, by 4.1e-4 in float32 for a 34-point input. Inside (-1, 1) the error is unchanged
    or smaller (3e-13 at degree 1000 in float64, against a long-double recurrence)."""
    n = 1000
    got = np.asarray(legendre(n, jnp.asarray([1.0, -1.0], dtype)), np.float64)
    k = np.arange(n + 1)
    np.testing.assert_array_equal(got[:, 0], np.ones(n + 1))
    np.testing.assert_array_equal(got[:, 1], (-1.0) ** k)


def test_legendre_orthogonality_by_gauss_legendre(x64):
    n = 20
    nodes, weights = gauss_legendre(n + 1)  # exact to degree 2n + 1 >= deg(P_j P_k)
    p = np.asarray(legendre(n, jnp.asarray(nodes)))
    gram = (p * weights) @ p.T
    assert_close(gram, np.diag(2.0 / (2 * np.arange(n + 1) + 1)), jnp.float64)


def test_chebyshev_is_cosine_of_multiple_angle(x64):
    t = np.linspace(0.0, np.pi, 33)
    got = chebyshev(40, jnp.asarray(np.cos(t)))
    assert_close(got, np.cos(np.arange(41)[:, None] * t[None]), jnp.float64)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_gauss_legendre_degree_of_exactness(n):
    nodes, weights = gauss_legendre(n)
    assert nodes.dtype == weights.dtype == np.float64 and nodes.shape == (n,)
    assert np.all(np.diff(nodes) > 0)
    for k in range(2 * n):
        exact = 2.0 / (k + 1) if k % 2 == 0 else 0.0
        assert abs(np.sum(weights * nodes**k) - exact) < 1e-14
    # ...and no further: an n-point rule misses x^(2n).
    assert abs(np.sum(weights * nodes ** (2 * n)) - 2.0 / (2 * n + 1)) > 1e-6


def test_gauss_legendre_weights_are_accurate_for_many_nodes():
    """128 nodes: the Gram matrix of P_0..P_127 (NumPy's legvander) under the rule is
    diag(2 / (2k + 1)) to 1e-13 relative (measured 3.9e-14). NumPy's leggauss, which
    gauss_legendre returned before, has weights off by 1.4e-11 relative here and misses it by
    6.8e-13. The nodes are leggauss's (the roots of P_128) to an ulp, and symmetric."""
    n = 128
    nodes, weights = gauss_legendre(n)
    v = nplegendre.legvander(nodes, n - 1)
    gram = (v.T * weights) @ v * ((2 * np.arange(n) + 1) / 2.0)[:, None]
    assert np.abs(gram - np.eye(n)).max() < 1e-13
    np.testing.assert_allclose(nodes, nplegendre.leggauss(n)[0], rtol=0, atol=4e-16)
    assert np.array_equal(nodes, -nodes[::-1]) and np.array_equal(weights, weights[::-1])


def test_polynomials_grad_jit_vmap_and_dtype(x64):
    n = 9
    x = jnp.linspace(-0.95, 0.95, 11)
    for ours, der, val in (
        (legendre, nplegendre.legder, nplegendre.legval),
        (chebyshev, npcheb.chebder, npcheb.chebval),
    ):
        dp = jax.vmap(jax.grad(lambda s, f=ours: f(n, s)[n]))(x)
        assert_close(dp, val(np.asarray(x), der(np.eye(n + 1)[n])), jnp.float64)
        assert_close(jax.jit(ours, static_argnums=0)(n, x), ours(n, x), jnp.float64)
        f32 = ours(n, x.astype(jnp.float32))
        assert f32.dtype == jnp.float32
        assert_close(f32, ours(n, x), jnp.float32)
        bf16 = ours(n, x.astype(jnp.bfloat16))
        assert bf16.dtype == jnp.bfloat16
        assert_close(bf16, f32, jnp.bfloat16)


def test_polynomial_errors(library_errors):
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 0; got -1"):
        legendre(-1, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 0; got 2.0"):
        chebyshev(2.0, jnp.zeros(3))
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*int32"):
        legendre(3, jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1; got 0"):
        gauss_legendre(0)
    # a list was jnp.result_type's "Cannot determine dtype of [0.5]", naming nothing
    for f in (legendre, chebyshev):
        with pytest.raises(TypeError, match=r"`x` must be a jax.Array, NumPy array or Python "):
            f(2, [0.5])
    with pytest.raises(TypeError, match=r"`phi` must be a jax.Array.*got list \[0.3\]"):
        real_sph_harm(2, 0.5, [0.3])
    # a Python float stays a rank-0 input
    assert_close(legendre(2, 0.5), jnp.asarray([1.0, 0.5, -0.125]))
    assert_close(chebyshev(2, 0.5), jnp.asarray([1.0, 0.5, -0.5]))


# ---------------------------------------------------------------- spherical harmonics


def _scipy_real_sph_harm(l_max, theta, phi):
    """The documented real-from-complex map applied to SciPy's (Condon–Shortley) harmonics."""
    out = []
    for l in range(l_max + 1):
        for m in range(-l, l + 1):
            c = scipy.special.sph_harm_y(l, abs(m), theta, phi)
            if m == 0:
                out.append(c.real)
            else:
                out.append(np.sqrt(2.0) * (-1) ** m * (c.real if m > 0 else c.imag))
    return np.stack([np.broadcast_to(o, np.broadcast_shapes(theta.shape, phi.shape)) for o in out])


def test_real_sph_harm_matches_scipy(x64):
    l_max = 8
    theta = np.concatenate([[0.0], np.linspace(0.1, 3.0, 5), [np.pi]]).reshape(-1, 1)
    phi = np.linspace(0.0, 2 * np.pi, 6).reshape(1, -1)
    got = real_sph_harm(l_max, jnp.asarray(theta), jnp.asarray(phi))
    assert got.shape == ((l_max + 1) ** 2, 7, 6) and got.dtype == jnp.float64
    assert_close(got, _scipy_real_sph_harm(l_max, theta, phi), jnp.float64)


def test_real_sph_harm_mixed_dtypes_promote(x64):
    """float32 theta with float64 phi: float64 out (standard promotion, also under the suite's
    strict promotion), equal to the all-float64 call on the same (float32-rounded) angles."""
    theta = jnp.linspace(0.1, 3.0, 5, dtype=jnp.float32)
    phi = jnp.linspace(0.0, 6.0, 5, dtype=jnp.float64)
    got = real_sph_harm(4, theta, phi)
    assert got.dtype == jnp.float64
    assert_close(got, real_sph_harm(4, theta.astype(jnp.float64), phi), rtol=1e-14)
    half = real_sph_harm(4, theta.astype(jnp.bfloat16), phi.astype(jnp.float32))
    assert half.dtype == jnp.float32


def test_real_sph_harm_high_degree_is_stable(x64):
    l_max = 50
    rng = np.random.default_rng(0)
    theta, phi = rng.uniform(0, np.pi, 40), rng.uniform(0, 2 * np.pi, 40)
    got = real_sph_harm(l_max, jnp.asarray(theta), jnp.asarray(phi))
    assert_close(got, _scipy_real_sph_harm(l_max, theta, phi), rtol=1e-12)


def test_real_sph_harm_degree_one_is_y_z_x(x64):
    theta, phi = np.array([0.3, 1.2, 2.9]), np.array([0.4, 2.5, 5.0])
    xyz = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    y = np.asarray(real_sph_harm(1, jnp.asarray(theta), jnp.asarray(phi)))
    c = np.sqrt(3.0 / (4.0 * np.pi))
    assert_close(y[0], np.full(3, 0.5 / np.sqrt(np.pi)), jnp.float64)
    assert_close(y[1:], c * xyz[[1, 2, 0]], jnp.float64)  # (m = -1, 0, 1) ~ (y, z, x)
    assert [sph_index(1, m) for m in (-1, 0, 1)] == [1, 2, 3] and sph_index(3, 3) == 15


def test_real_sph_harm_orthonormal_by_quadrature(x64):
    """Gauss–Legendre in cos(theta) x uniform phi is exact for products of degree <= 2 l_max."""
    l_max = 8
    mu, w_mu = gauss_legendre(l_max + 1)
    n_phi = 2 * l_max + 2
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    y = real_sph_harm(l_max, jnp.asarray(np.arccos(mu))[:, None], jnp.asarray(phi)[None, :])
    y = np.asarray(y).reshape((l_max + 1) ** 2, -1)
    w = (w_mu[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).ravel()
    gram = (y * w) @ y.T
    np.testing.assert_allclose(gram, np.eye((l_max + 1) ** 2), atol=1e-12)


def test_real_sph_harm_addition_theorem(x64):
    """sum_m Y_lm(r1) Y_lm(r2) = (2l + 1)/(4 pi) P_l(r1 . r2)."""
    l_max = 10
    theta = jnp.asarray([0.4, 2.2])
    phi = jnp.asarray([1.0, 4.1])
    y = np.asarray(real_sph_harm(l_max, theta, phi))
    r = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    p = np.asarray(legendre(l_max, jnp.asarray(r[:, 0] @ r[:, 1])))
    sums = [
        np.sum(y[l * l : (l + 1) ** 2, 0] * y[l * l : (l + 1) ** 2, 1]) for l in range(l_max + 1)
    ]
    assert_close(sums, (2 * np.arange(l_max + 1) + 1) / (4 * np.pi) * p, jnp.float64)


def test_real_sph_harm_jit_vmap_grad_dtype():
    l_max = 6
    rng = np.random.default_rng(1)
    theta = jnp.asarray(np.concatenate([[0.0, np.pi], rng.uniform(0, np.pi, 6)]), jnp.float32)
    phi = jnp.asarray(rng.uniform(0, 2 * np.pi, 8), jnp.float32)
    y = real_sph_harm(l_max, theta, phi)
    assert y.dtype == jnp.float32
    with jax.enable_x64(True):
        ref = _scipy_real_sph_harm(
            l_max, np.asarray(theta, np.float64), np.asarray(phi, np.float64)
        )
    assert_close(y, ref, jnp.float32)
    assert_close(jax.jit(real_sph_harm, static_argnums=0)(l_max, theta, phi), y, jnp.float32)
    assert_close(jax.vmap(lambda t, p: real_sph_harm(l_max, t, p), out_axes=1)(theta, phi), y)
    # d/dtheta of Y_11 = sqrt(3/(4 pi)) sin(theta) cos(phi), also at the poles; every
    # harmonic's gradient is finite there.
    jac = jax.jacrev(lambda t: real_sph_harm(l_max, t, phi))(theta)
    assert np.all(np.isfinite(np.asarray(jac)))
    expected = np.sqrt(3 / (4 * np.pi)) * np.cos(np.asarray(theta)) * np.cos(np.asarray(phi))
    assert_close(np.diagonal(np.asarray(jac[3])), expected, jnp.float32)
    assert real_sph_harm(2, theta.astype(jnp.bfloat16), phi.astype(jnp.bfloat16)).dtype == (
        jnp.bfloat16
    )


def test_real_sph_harm_takes_python_floats(library_errors):
    """A single point given as Python floats is a rank-0 array (it raised AttributeError)."""
    got = real_sph_harm(2, 0.5, 0.3)
    assert got.shape == (9,)
    assert_close(got, real_sph_harm(2, jnp.asarray(0.5), jnp.asarray(0.3)), rtol=0.0)


def test_real_sph_harm_errors(library_errors):
    t = jnp.zeros(4)
    with pytest.raises(ValueError, match=r"`l_max` must be an integer >= 0; got -1"):
        real_sph_harm(-1, t, t)
    with pytest.raises(TypeError, match=r"`theta` must be a real floating-point array"):
        real_sph_harm(2, jnp.zeros(4, jnp.int32), t)
    with pytest.raises(ValueError, match=r"`theta` and `phi` must have the same rank"):
        real_sph_harm(2, jnp.zeros((4, 1)), t)
    with pytest.raises(ValueError, match=r"`theta` \(4,\) and `phi` \(3,\) do not broadcast"):
        real_sph_harm(2, t, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"`m` must be an integer with -l <= m <= l \(l=2\)"):
        sph_index(2, 3)
