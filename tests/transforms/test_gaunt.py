"""Gaunt coefficients against the closed form (Wigner 3j symbols by Racah's formula, complex to
real harmonics), selection rules, and the Gaunt product through the sphere against the dense
contraction, with rotation equivariance, jit, vmap and grad."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.transforms import (
    gaunt_coefficients,
    gaunt_grid,
    gaunt_product,
    real_sph_harm,
    sph_index,
)
from tests.helpers import assert_close


def _wigner_3j(j1, j2, j3, m1, m2, m3):
    """Racah's formula, exact in Python integers up to the final square root."""
    if m1 + m2 + m3 != 0 or not abs(j1 - j2) <= j3 <= j1 + j2:
        return 0.0
    if abs(m1) > j1 or abs(m2) > j2 or abs(m3) > j3:
        return 0.0
    f = math.factorial
    delta = f(j1 + j2 - j3) * f(j1 - j2 + j3) * f(-j1 + j2 + j3) / f(j1 + j2 + j3 + 1)
    pre = delta * f(j1 + m1) * f(j1 - m1) * f(j2 + m2) * f(j2 - m2) * f(j3 + m3) * f(j3 - m3)
    total = 0
    for k in range(0, j1 + j2 + j3 + 1):
        den = [k, j1 + j2 - j3 - k, j1 - m1 - k, j2 + m2 - k, j3 - j2 + m1 + k, j3 - j1 - m2 + k]
        if min(den) < 0:
            continue
        total += (-1) ** k / math.prod(f(d) for d in den)
    return (-1) ** (j1 - j2 - m3) * math.sqrt(pre) * total


def _complex_gaunt(l1, l2, l3, m1, m2, m3):
    """∫ Y_l1^m1 Y_l2^m2 Y_l3^m3 dΩ for the complex harmonics with the Condon–Shortley phase."""
    norm = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi))
    return norm * _wigner_3j(l1, l2, l3, 0, 0, 0) * _wigner_3j(l1, l2, l3, m1, m2, m3)


def _real_to_complex(l):
    """U with Y_real[m] = Σ_μ U[m, μ] Y_complex[μ] (m, μ = -l..l), for real_sph_harm's
    convention: Y_lm = sqrt(2) (-1)^m Re Y_l^m (m > 0), sqrt(2) (-1)^m Im Y_l^|m| (m < 0)."""
    u = np.zeros((2 * l + 1, 2 * l + 1), complex)
    s = 1 / math.sqrt(2)
    u[l, l] = 1.0
    for m in range(1, l + 1):
        # conj(Y^m) = (-1)^m Y^-m
        u[l + m, l + m], u[l + m, l - m] = s * (-1) ** m, s
        u[l - m, l + m], u[l - m, l - m] = -1j * s * (-1) ** m, 1j * s
    return u


def _real_gaunt_closed_form(l_max1, l_max2, l_max3):
    g = np.zeros(((l_max1 + 1) ** 2, (l_max2 + 1) ** 2, (l_max3 + 1) ** 2))
    for l1 in range(l_max1 + 1):
        for l2 in range(l_max2 + 1):
            for l3 in range(l_max3 + 1):
                c = np.array(
                    [
                        [
                            [_complex_gaunt(l1, l2, l3, a, b, c) for c in range(-l3, l3 + 1)]
                            for b in range(-l2, l2 + 1)
                        ]
                        for a in range(-l1, l1 + 1)
                    ]
                )
                block = np.einsum(
                    "ia,jb,kc,abc->ijk",
                    _real_to_complex(l1),
                    _real_to_complex(l2),
                    _real_to_complex(l3),
                    c,
                )
                assert np.max(np.abs(block.imag)) < 1e-12
                g[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2] = (
                    block.real
                )
    return g


def test_wigner_3j_reference_is_right():
    # Tabulated values: (1 1 0; 0 0 0) = -1/sqrt(3), (1 1 2; 1 -1 0) = 1/sqrt(30),
    # (2 2 2; 0 0 0) = -sqrt(2/35).
    assert math.isclose(_wigner_3j(1, 1, 0, 0, 0, 0), -1 / math.sqrt(3))
    assert math.isclose(_wigner_3j(1, 1, 2, 1, -1, 0), 1 / math.sqrt(30))
    assert math.isclose(_wigner_3j(2, 2, 2, 0, 0, 0), -math.sqrt(2 / 35))


def test_coefficients_equal_the_closed_form():
    g = gaunt_coefficients(3, 2, 4)
    assert g.shape == (16, 9, 25) and g.dtype == np.float64 and not g.flags.writeable
    ref = _real_gaunt_closed_form(3, 2, 4)
    assert np.max(np.abs(g - ref)) < 1e-14
    assert np.count_nonzero(ref) > 100
    # The quadrature dust is cleared: the zeros of the selection rules are exact zeros.
    assert np.array_equal(g == 0.0, np.abs(ref) < 1e-14)


def test_selection_rules_and_closed_forms():
    l_max = 3
    g = gaunt_coefficients(l_max, l_max, l_max)
    n = (l_max + 1) ** 2
    assert_close(g[0], np.eye(n) / math.sqrt(4 * math.pi), rtol=1e-14)  # Y_00 is constant
    # Symmetric in its three indices (all degrees equal).
    assert np.max(np.abs(g - g.transpose(1, 0, 2))) < 1e-15
    assert np.max(np.abs(g - g.transpose(2, 1, 0))) < 1e-15
    deg = np.repeat(np.arange(l_max + 1), 2 * np.arange(l_max + 1) + 1)
    l1, l2, l3 = np.meshgrid(deg, deg, deg, indexing="ij")
    forbidden = ((l1 + l2 + l3) % 2 == 1) | (l3 > l1 + l2) | (l3 < np.abs(l1 - l2))
    assert np.all(g[forbidden] == 0.0) and np.any(g[~forbidden] != 0.0)
    # Y_10 Y_10 = (3/4π) cos^2: its projection on Y_20 is 1/sqrt(5π) (closed form).
    a, c = sph_index(1, 0), sph_index(2, 0)
    assert math.isclose(g[a, a, c], 1 / math.sqrt(5 * math.pi), rel_tol=1e-13)


@pytest.mark.parametrize("degrees", [(2, 3, None), (4, 4, 3), (1, 5, 7), (0, 2, 2)])
def test_product_equals_the_dense_contraction(degrees, x64):
    l1, l2, lo = degrees
    full = l1 + l2 if lo is None else lo
    k1, k2 = jax.random.split(jax.random.key(0))
    x1 = jax.random.normal(k1, (3, (l1 + 1) ** 2), jnp.float64)
    x2 = jax.random.normal(k2, (3, (l2 + 1) ** 2), jnp.float64)
    z = gaunt_product(x1, x2, lo)
    assert z.shape == (3, (full + 1) ** 2) and z.dtype == jnp.float64
    ref = np.einsum("abc,na,nb->nc", gaunt_coefficients(l1, l2, full), x1, x2)
    assert np.max(np.abs(np.asarray(z) - ref)) < 1e-13 * np.max(np.abs(ref))


def test_product_is_the_pointwise_product_of_the_functions(x64):
    """Off the grid too: f1(p) f2(p) == Σ_c z_c Y_c(p) at random points (full output degree)."""
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    x1 = jax.random.normal(k1, (16,), jnp.float64)  # degree 3
    x2 = jax.random.normal(k2, (9,), jnp.float64)  # degree 2
    z = gaunt_product(x1, x2)
    theta = jnp.arccos(jax.random.uniform(k3, (50,), jnp.float64, -1.0, 1.0))
    phi = jnp.linspace(0.0, 2 * math.pi, 50, dtype=jnp.float64) * 0.97
    y = real_sph_harm(5, theta, phi)
    f1, f2 = x1 @ y[:16], x2 @ y[:9]
    assert_close(z @ y, f1 * f2, rtol=1e-12)


def test_product_is_rotation_equivariant(x64):
    """Rotate both factors, multiply, and compare with the rotated product: degree-l
    coefficients rotate by a (2l+1)x(2l+1) orthogonal block, here obtained by evaluating the
    harmonics at rotated points and least squares."""
    rot = jnp.asarray(_random_rotation(np.random.default_rng(0)))
    pts = np.random.default_rng(1).normal(size=(200, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)

    def harmonics(l_max, p):
        theta = jnp.arccos(jnp.clip(p[:, 2], -1, 1))
        phi = jnp.arctan2(p[:, 1], p[:, 0])
        return real_sph_harm(l_max, theta, phi)  # (harmonic, points)

    def rotate(x, l_max):  # coefficients of f(R^T p)
        y, yr = harmonics(l_max, jnp.asarray(pts)), harmonics(l_max, jnp.asarray(pts) @ rot)
        return jnp.linalg.lstsq(y.T, yr.T @ x)[0]

    k1, k2 = jax.random.split(jax.random.key(2))
    x1 = jax.random.normal(k1, (9,), jnp.float64)
    x2 = jax.random.normal(k2, (16,), jnp.float64)
    lhs = gaunt_product(rotate(x1, 2), rotate(x2, 3))
    rhs = rotate(gaunt_product(x1, x2), 5)
    assert_close(lhs, rhs, rtol=1e-10)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_jit_vmap_grad_broadcast_and_float32():
    k1, k2 = jax.random.split(jax.random.key(3))
    x1 = jax.random.normal(k1, (4, 1, 9))
    x2 = jax.random.normal(k2, (1, 5, 4))
    z = jax.jit(gaunt_product, static_argnums=2)(x1, x2, 3)
    assert z.shape == (4, 5, 16) and z.dtype == jnp.float32
    ref = np.einsum("abc,ia,jb->ijc", gaunt_coefficients(2, 1, 3), x1[:, 0], x2[0])
    assert_close(z, ref, rtol=1e-5)
    v = jax.vmap(gaunt_product, in_axes=(0, None))(x1[:, 0], x2[0, 0])
    assert_close(v, z[:, 0], rtol=1e-5)
    # Bilinear: the gradient in x1 of <w, z> is G contracted with x2 and w.
    w = jax.random.normal(jax.random.key(4), (16,))
    g = jax.grad(lambda a: jnp.sum(w * gaunt_product(a, x2[0, 0], 3)))(x1[0, 0])
    assert_close(g, np.einsum("abc,b,c->a", gaunt_coefficients(2, 1, 3), x2[0, 0], w), rtol=1e-5)


@pytest.mark.parametrize(
    "dtypes, expected",
    [
        ((jnp.float32, jnp.float64), jnp.float64),
        ((jnp.float64, jnp.bfloat16), jnp.float64),
        ((jnp.bfloat16, jnp.float32), jnp.float32),
        ((jnp.bfloat16, jnp.float16), jnp.float32),
        ((jnp.float16, jnp.float16), jnp.float16),
    ],
)
def test_mixed_dtypes_promote_as_documented(dtypes, expected, x64):
    """The suite runs with strict dtype promotion; gaunt_product promotes explicitly."""
    k1, k2 = jax.random.split(jax.random.key(6))
    x1 = jax.random.normal(k1, (2, 9), jnp.float64).astype(dtypes[0])
    x2 = jax.random.normal(k2, (2, 16), jnp.float64).astype(dtypes[1])
    z = gaunt_product(x1, x2)
    assert z.shape == (2, 36) and z.dtype == expected
    ref = np.einsum(
        "abc,na,nb->nc",
        gaunt_coefficients(2, 3, 5),
        np.asarray(x1, np.float64),
        np.asarray(x2, np.float64),
    )
    assert_close(z, ref, expected)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_computes_in_float32_and_rounds_once(dtype):
    """The half-precision result is the float32 computation on the same (rounded) inputs,
    rounded once: every entry within half an ulp. Rounding the syntheses and the pointwise
    product to half precision as well (the old behaviour) fails both checks."""
    k1, k2 = jax.random.split(jax.random.key(7))
    x1 = jax.random.normal(k1, (4, 25)).astype(dtype)
    x2 = jax.random.normal(k2, (4, 16)).astype(dtype)
    z = gaunt_product(x1, x2)
    assert z.dtype == dtype
    ref = np.asarray(gaunt_product(x1.astype(jnp.float32), x2.astype(jnp.float32)), np.float64)
    err = np.abs(np.asarray(z, np.float64) - ref)
    info = jnp.finfo(dtype)
    assert np.all(err <= float(info.eps) / 2 * np.abs(ref) + float(info.smallest_subnormal))
    # norm-wise, one rounding costs ~0.45 of the unit roundoff eps / 2 (the old path ~0.7-0.95)
    assert_close(z, ref, rtol=0.6 * float(info.eps) / 2)


def test_coefficients_under_a_trace():
    """gaunt_coefficients is a host constant even when first built inside jit (x64 off)."""
    from spectrax.transforms._gaunt import _gaunt_table

    _gaunt_table.cache_clear()
    x = jax.random.normal(jax.random.key(8), (4,))
    z = jax.jit(lambda a: jnp.einsum("a,abc->bc", a, jnp.asarray(gaunt_coefficients(1, 2, 1))))(x)
    assert z.dtype == jnp.float32
    assert_close(z, np.einsum("a,abc->bc", np.asarray(x), gaunt_coefficients(1, 2, 1)), rtol=1e-6)
    assert _gaunt_table.cache_info().maxsize == 4


def test_grid_is_exact_and_minimal(x64):
    """gaunt_grid's grid is exact, and one latitude or one longitude fewer is not (each
    transform alone would still be valid there: the product rule is what sizes it)."""
    from spectrax.transforms import isht, sht

    assert gaunt_grid(3, 3, 6) == (7, 13)
    assert gaunt_grid(0, 0, 0) == (1, 1)
    assert gaunt_grid(8, 1, 1) == (9, 17)  # each transform's own grid dominates
    l1, l2, lo = 4, 4, 2
    nlat, nlon = gaunt_grid(l1, l2, lo)
    assert (nlat, nlon) == (6, 11)
    k1, k2 = jax.random.split(jax.random.key(5))
    x1 = jax.random.normal(k1, (8, 25), jnp.float64)
    x2 = jax.random.normal(k2, (8, 25), jnp.float64)
    ref = np.einsum("abc,na,nb->nc", gaunt_coefficients(l1, l2, lo), x1, x2)

    def on(nlat, nlon):
        return np.asarray(sht(isht(x1, nlat, nlon) * isht(x2, nlat, nlon), lo))

    assert np.max(np.abs(on(nlat, nlon) - ref)) < 1e-13
    assert np.max(np.abs(on(nlat - 1, nlon) - ref)) > 1e-3
    assert np.max(np.abs(on(nlat, nlon - 1) - ref)) > 1e-3


def test_errors(library_errors):
    with pytest.raises(ValueError, match="x1.*perfect square"):
        gaunt_product(jnp.ones(5), jnp.ones(4))
    with pytest.raises(ValueError, match="x2.*perfect square"):
        gaunt_product(jnp.ones(4), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="same rank"):
        gaunt_product(jnp.ones((2, 4)), jnp.ones(4))
    with pytest.raises(ValueError, match="do not broadcast"):
        gaunt_product(jnp.ones((2, 4)), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="l_max_out"):
        gaunt_product(jnp.ones(4), jnp.ones(4), -1)
    with pytest.raises(TypeError, match="x1"):
        gaunt_product(jnp.ones(4, jnp.int32), jnp.ones(4))
    with pytest.raises(ValueError, match="l_max1"):
        gaunt_coefficients(-1, 0, 0)
