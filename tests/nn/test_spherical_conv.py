"""Spherical convolution: the Laplace-Beltrami operator from per-degree weights on harmonic
polynomials, a float64 dense-quadrature reference, any output grid, rotation equivariance,
jit/vmap/grad and errors."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.nn import SphericalConv, spherical_conv
from spectrax.transforms import real_sph_harm, sht, sphere_grid
from tests.helpers import assert_close, rel_err


def _grid_xyz(nlat, nlon):
    theta, phi, _ = sphere_grid(nlat, nlon)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])  # (3, nlat, nlon)


def _harmonics_at(l_max, xyz):
    """Every Y_lm (l <= l_max) at unit vectors xyz (3, ...): (harmonic, ...), float64."""
    theta = jnp.arccos(jnp.clip(jnp.asarray(xyz[2]), -1.0, 1.0))
    phi = jnp.arctan2(jnp.asarray(xyz[1]), jnp.asarray(xyz[0]))
    return real_sph_harm(l_max, theta, phi)


def test_per_degree_weights_give_the_laplace_beltrami_operator(x64):
    """On the sphere a harmonic homogeneous polynomial of degree l is an eigenfunction of the
    Laplace-Beltrami operator with eigenvalue -l(l+1); weights W_l = -l(l+1) apply it."""
    l_max = 5
    weight = -jnp.arange(l_max + 1.0, dtype=jnp.float64) * jnp.arange(1.0, l_max + 2.0)
    weight = weight.reshape(1, 1, -1)
    for nlat, nlon in [(6, 11), (12, 24)]:
        x, y, z = _grid_xyz(nlat, nlon)
        f = 0.5 + z + x * y + (x**3 - 3 * x * y**2)  # degrees 0, 1, 2, 3 (all harmonic)
        lap = -2 * z - 6 * x * y - 12 * (x**3 - 3 * x * y**2)
        out = spherical_conv(jnp.asarray(f)[None], weight)
        assert_close(out[0], lap, rtol=1e-13)
        # Synthesised on a finer grid: the same operator, the function at the new points.
        xf, yf, zf = _grid_xyz(20, 40)
        fine = spherical_conv(jnp.asarray(f)[None], weight, (20, 40))
        lap_fine = -2 * zf - 6 * xf * yf - 12 * (xf**3 - 3 * xf * yf**2)
        assert_close(fine[0], lap_fine, rtol=1e-13)


def test_equals_a_dense_float64_quadrature(x64):
    """Random weights on a field that is not band-limited: the transform's output equals the
    quadrature c_lm = Σ w Y_lm f, per-degree mixing, synthesis Σ c Y_lm at the output grid."""
    l_max, (nlat, nlon), out_shape = 4, (7, 12), (9, 16)
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (3, nlat, nlon), jnp.float64)
    w = jax.random.normal(kw, (2, 3, l_max + 1), jnp.float64)
    out = spherical_conv(x, w, out_shape)
    _, _, wts = sphere_grid(nlat, nlon)
    y_in = np.asarray(_harmonics_at(l_max, _grid_xyz(nlat, nlon)))
    y_out = np.asarray(_harmonics_at(l_max, _grid_xyz(*out_shape)))
    coeffs = np.einsum("hij,cij,i->ch", y_in, np.asarray(x), wts) * (2 * np.pi / nlon)
    deg = np.repeat(np.arange(l_max + 1), 2 * np.arange(l_max + 1) + 1)
    mixed = np.einsum("oih,ih->oh", np.asarray(w)[:, :, deg], coeffs)
    ref = np.einsum("oh,hij->oij", mixed, y_out)
    assert out.shape == (2, *out_shape) and out.dtype == jnp.float64
    assert_close(out, ref, rtol=1e-13)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_commutes_with_rotations(x64):
    """conv(f o R^T) == conv(f) o R^T for band-limited f (exact on the grid), and not for a
    weight that depends on the order m as well (the test can fail)."""
    l_max, nlat, nlon = 6, 8, 16
    rot = _random_rotation(np.random.default_rng(0))
    xyz = _grid_xyz(nlat, nlon)
    rotated = np.einsum("ab,bij->aij", rot.T, xyz)  # R^T p at every grid point
    coeffs = jax.random.normal(jax.random.key(1), (2, (l_max + 1) ** 2), jnp.float64)
    f = jnp.einsum("ch,hij->cij", coeffs, _harmonics_at(l_max, xyz))
    f_rot = jnp.einsum("ch,hij->cij", coeffs, _harmonics_at(l_max, rotated))
    layer = SphericalConv(2, 3, l_max, dtype=jnp.float64, key=jax.random.key(2))
    lhs = layer(f_rot)
    out_coeffs = sht(layer(f), l_max)
    rhs = jnp.einsum("ch,hij->cij", out_coeffs, _harmonics_at(l_max, rotated))
    assert_close(lhs, rhs, rtol=1e-12)

    def order_dependent(x):  # multiply each (l, m) by its own factor: not equivariant
        c = sht(x, l_max)
        scale = 1.0 + jnp.arange(c.shape[-1], dtype=c.dtype) / c.shape[-1]
        return jnp.einsum("ch,hij->cij", c * scale[None], _harmonics_at(l_max, xyz))

    bad = order_dependent(f_rot)
    bad_ref = jnp.einsum(
        "ch,hij->cij", sht(order_dependent(f), l_max), _harmonics_at(l_max, rotated)
    )
    assert float(jnp.max(jnp.abs(bad - bad_ref))) > 1e-2


def test_layer_parameters_init_jit_vmap_grad():
    layer = SphericalConv(4, 5, 7, key=jax.random.key(0))
    assert layer.weight.shape == (5, 4, 8) and layer.weight.dtype == jnp.float32
    assert 0.3 < float(jnp.std(layer.weight)) * math.sqrt(4) < 1.7  # N(0, 1/in_channels)
    x = jax.random.normal(jax.random.key(1), (3, 4, 8, 16))
    y = eqx.filter_jit(lambda m, v: jax.vmap(m)(v))(layer, x)
    assert y.shape == (3, 5, 8, 16) and y.dtype == jnp.float32
    assert_close(y[1], layer(x[1]), rtol=1e-5)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(x[0]) ** 2)))(layer)
    assert bool(jnp.all(jnp.isfinite(grads.weight))) and float(jnp.max(jnp.abs(grads.weight))) > 0
    # Linear in x: the gradient in x equals the adjoint applied to the cotangent, checked by
    # the inner-product identity <A x, v> = <x, A^T v>.
    v = jax.random.normal(jax.random.key(2), (5, 8, 16))
    _, vjp = jax.vjp(layer, x[0])
    (xt,) = vjp(v)
    assert_close(jnp.sum(xt * x[0]), jnp.sum(layer(x[0]) * v), rtol=1e-4)


def _largest_value(jaxpr) -> int:
    """The most elements of any value a jaxpr computes, its sub-jaxprs (jit, scan) included."""
    biggest = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            biggest = max(biggest, math.prod(v.aval.shape))
        for param in eqn.params.values():
            sub = getattr(param, "jaxpr", param)  # a ClosedJaxpr holds its Jaxpr
            if hasattr(sub, "eqns"):
                biggest = max(biggest, _largest_value(sub))
    return biggest


def test_weight_is_not_expanded_to_every_order():
    """Forward and backward never hold the weight repeated over the 2l + 1 orders of each
    degree, a (C_out, C_in, (l_max + 1)^2) array l_max + 1 times the weight (it was gathered
    to that shape and its gradient scattered back: 272 MB of temporaries at 128 channels,
    l_max = 63)."""
    c_out, c_in, l_max = 8, 8, 15
    x = jnp.ones((c_in, l_max + 1, 2 * l_max + 2))
    w = jnp.ones((c_out, c_in, l_max + 1))
    expanded = c_out * c_in * (l_max + 1) ** 2
    loss = jax.grad(lambda w, x: jnp.sum(spherical_conv(x, w) ** 2))
    for name, f, args in [("forward", spherical_conv, (x, w)), ("grad", loss, (w, x))]:
        biggest = _largest_value(jax.make_jaxpr(f)(*args).jaxpr)
        assert biggest < expanded // 2, (name, biggest, expanded)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_computes_in_float32_and_rounds_once(dtype):
    """A half-precision x gives the float32 computation on the same (rounded) input, rounded
    once: every entry within half an ulp (the transform, the weight and the channel mixing
    are not rounded to half precision on the way)."""
    kx, kw = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, (3, 10, 20)).astype(dtype)
    w = jax.random.normal(kw, (2, 3, 8))
    out = spherical_conv(x, w, (12, 24))
    assert out.dtype == dtype
    ref = np.asarray(spherical_conv(x.astype(jnp.float32), w, (12, 24)), np.float64)
    err = np.abs(np.asarray(out, np.float64) - ref)
    info = jnp.finfo(dtype)
    assert np.all(err <= float(info.eps) / 2 * np.abs(ref) + float(info.smallest_subnormal))
    # norm-wise, one rounding costs ~0.45 of the unit roundoff eps / 2 (the old path ~0.7-0.95)
    assert_close(out, ref, rtol=0.6 * float(info.eps) / 2)


def test_float64_weight_with_float32_x_computes_in_float64(x64):
    """A float64 weight (a float64 SphericalConv) with a float32 x computes in and returns
    float64, equal to the computation on the exactly widened x, as spectral_conv and afno_mix
    do: the weight used to be narrowed to float32 and the result returned in float32, ~1e-7 off
    the float64 layer it was built as."""
    kx, kw = jax.random.split(jax.random.key(4))
    x = jax.random.normal(kx, (3, 8, 16), jnp.float32)
    layer = SphericalConv(3, 2, 5, dtype=jnp.float64, key=kw)
    call = jax.jit(spherical_conv)  # one compiled call per dtype (eager, every op compiles)
    out = call(x, layer.weight)
    assert out.dtype == jnp.float64
    assert_close(out, call(x.astype(jnp.float64), layer.weight), rtol=1e-14)
    # a float32 weight with a float32 x stays float32
    assert jax.eval_shape(call, x, layer.weight.astype(jnp.float32)).dtype == jnp.float32


def test_errors(library_errors):
    layer = SphericalConv(2, 3, 7, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"C_in=2.*\(3, 8, 16\)"):
        layer(jnp.ones((3, 8, 16)))
    with pytest.raises(ValueError, match=r"x.*7 x 16.*l_max=7.*nlat >= 8"):
        layer(jnp.ones((2, 7, 16)))
    with pytest.raises(ValueError, match=r"output_shape.*8 x 14.*nlon >= 15"):
        layer(jnp.ones((2, 8, 16)), (8, 14))
    with pytest.raises(ValueError, match="output_shape.*pair of integers"):
        layer(jnp.ones((2, 8, 16)), (8.0, 16))
    # a negative size was reported as a grid too small "for l_max <= -2 on this one"
    with pytest.raises(ValueError, match=r"output_shape.*-8 x 16 grid; the grid sizes must be pos"):
        layer(jnp.ones((2, 8, 16)), (-8, 16))
    with pytest.raises(ValueError, match=r"weight.*\(C_out, C_in, l_max \+ 1\)"):
        spherical_conv(jnp.ones((2, 8, 16)), jnp.ones((3, 2)))
    with pytest.raises(
        ValueError,
        match=r"`weight` must have shape \(C_out, C_in, l_max \+ 1\) with at least one degree.*"
        r"weight.shape=\(3, 2, 0\)",
    ):
        spherical_conv(jnp.ones((2, 8, 16)), jnp.ones((3, 2, 0)))
    with pytest.raises(TypeError, match="x"):
        layer(jnp.ones((2, 8, 16), jnp.int32))
    with pytest.raises(ValueError, match="l_max"):
        SphericalConv(2, 3, -1, key=jax.random.key(0))


def _complex_harmonic_field(a, theta, phi):
    """Re Σ_lm a_lm Y_l^m(θ, φ) with SciPy's complex harmonics (independent of the library's
    real basis and its sign convention): a (C, l, 2l + 1) complex, indexed (l, m + l)."""
    from scipy.special import sph_harm_y

    out = np.zeros((a.shape[0],) + np.broadcast(theta, phi).shape)
    for l in range(a.shape[1]):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, m, theta, phi)
            out += np.real(a[:, l, m + a.shape[1] - 1, None, None] * y[None])
    return out


def test_is_a_per_degree_multiplier_against_scipy_harmonics(x64):
    """Independent float64 reference: for f = Re Σ a_lm Y_l^m (SciPy's complex harmonics, degrees
    <= 6), spherical_conv with a per-degree weight W_l, l <= 4, returns Re Σ_{l <= 4} W_l a_lm Y_l^m
    on any output grid: diagonal in l, the same multiplier for every order, and degrees 5, 6
    removed (the grid resolves degree 6, so they do not alias). Rotations about the polar axis:
    a longitude shift by a grid step commutes exactly for any field, by an angle off the grid
    for band-limited ones."""
    rng = np.random.default_rng(0)
    big, l_max, (nlat, nlon), out_shape = 6, 4, (8, 15), (10, 30)
    a = rng.normal(size=(2, big + 1, 2 * big + 1)) + 1j * rng.normal(size=(2, big + 1, 2 * big + 1))
    w = rng.normal(size=(3, 2, l_max + 1))
    theta, phi, _ = sphere_grid(nlat, nlon)
    theta_o, phi_o, _ = sphere_grid(*out_shape)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    to, po = np.meshgrid(theta_o, phi_o, indexing="ij")
    f = _complex_harmonic_field(a, t, p)
    # W applied degree by degree: y_o = Σ_i W[o, i, l] (degree-l part of f_i)
    filtered = np.zeros((3, 2, big + 1, 2 * big + 1), complex)
    filtered[:, :, : l_max + 1] = w[..., None] * a[None, :, : l_max + 1]
    ref = np.concatenate(
        [_complex_harmonic_field(filtered[o_], to, po).sum(0)[None] for o_ in range(3)]
    )
    # One compiled call for every field below (eager, each jnp op would compile on its own).
    conv = jax.jit(lambda v: spherical_conv(v, jnp.asarray(w), out_shape))
    out = conv(jnp.asarray(f))
    assert out.shape == (3, *out_shape)
    assert_close(out, ref, rtol=1e-13)
    # Polar-axis rotations. A shift by 4 input grid steps (8 output steps) of an arbitrary, not
    # band-limited, field:
    x = rng.normal(size=(2, nlat, nlon))
    shifted = conv(jnp.asarray(np.roll(x, 4, axis=-1)))
    assert_close(shifted, np.roll(np.asarray(conv(jnp.asarray(x))), 8, axis=-1), rtol=1e-14)
    # By alpha = 0.37 rad (not a multiple of the grid step 2π/15): f(θ, φ - α) -> y(θ, φ - α)
    alpha = 0.37
    f_rot = _complex_harmonic_field(a, t, p - alpha)
    ref_rot = np.concatenate(
        [_complex_harmonic_field(filtered[o_], to, po - alpha).sum(0)[None] for o_ in range(3)]
    )
    assert rel_err(ref_rot, ref) > 0.1  # the rotation moves the output
    assert_close(conv(jnp.asarray(f_rot)), ref_rot, rtol=1e-13)
