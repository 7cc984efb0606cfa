"""RoPE (Su et al. 2021): agrees with equinox.nn.RotaryPositionalEmbedding, the rotate-half
layout on basis vectors, scores depend on relative position only, norms are preserved,
transformations and errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.nn import RoPE, apply_rope, rope_frequencies
from tests.helpers import assert_close


def _normal(seed, shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def test_frequencies():
    theta = rope_frequencies(8, base=100.0)
    np.testing.assert_allclose(theta, [1.0, 100.0**-0.25, 0.1, 100.0**-0.75], rtol=1e-7)
    assert theta.dtype == jnp.float32


# Distinct head sizes per base: equinox caches its cos/sin tables by (size, dtype), not by theta.
@pytest.mark.parametrize("head_dim, base", [(16, 10000.0), (12, 500.0)])
def test_matches_equinox(head_dim, base):
    x = _normal(0, (40, head_dim))
    expected = eqx.nn.RotaryPositionalEmbedding(head_dim, theta=base, dtype=jnp.float32)(x)
    # Angles up to 39 rad round to ~2e-6 in float32, in both implementations.
    assert_close(RoPE(head_dim, base=base)(x), expected, rtol=2e-6)
    assert_close(apply_rope(x, base=base), expected, rtol=2e-6)


def test_rotate_half_layout(x64):
    """Pair i is (x[i], x[i + D/2]): e_0 at position m goes to cos(m) e_0 + sin(m) e_2."""
    m = 3.7
    e0 = jnp.zeros((1, 4)).at[0, 0].set(1.0)
    out = np.asarray(apply_rope(e0, jnp.asarray([m])))[0]
    np.testing.assert_allclose(out, [np.cos(m), 0.0, np.sin(m), 0.0], atol=1e-15)
    e1 = jnp.zeros((1, 4)).at[0, 1].set(1.0)
    out = np.asarray(apply_rope(e1, jnp.asarray([m]), base=100.0))[0]
    # theta_1 = 100^(-1/2) = 0.1
    np.testing.assert_allclose(out, [0.0, np.cos(0.1 * m), 0.0, np.sin(0.1 * m)], atol=1e-15)


def test_scores_depend_on_relative_position_only(x64):
    """<R(m) q, R(n) k> = <q, R(n - m) k>: shift both positions by c and nothing changes."""
    q, k = _normal(1, (1, 32), jnp.float64), _normal(2, (1, 32), jnp.float64)

    def score(m, n):
        rq = apply_rope(q, jnp.asarray([m], jnp.float64))
        rk = apply_rope(k, jnp.asarray([n], jnp.float64))
        return float(jnp.sum(rq * rk))

    pairs = [(0.0, 0.0), (0.0, 5.0), (7.0, 2.0), (3.0, 3.5), (10.0, 50.0)]
    for m, n in pairs:
        s = score(m, n)
        assert abs(s - float(jnp.sum(q * apply_rope(k, jnp.asarray([n - m]))))) < 1e-11
        for c in [1.0, 17.0, -4.25, 1000.0, 123456.0]:
            # float64 rounding of angles ~|c|: measured <= 1.4e-11 at c = 123456.
            assert abs(score(m + c, n + c) - s) < 1e-13 * (1 + abs(c)), (m, n, c)
    # ... and it does depend on the offset (so the checks above can fail).
    offsets = [score(0.0, d) for d in (0.0, 1.0, 2.0, 5.0)]
    assert min(abs(a - b) for i, a in enumerate(offsets) for b in offsets[i + 1 :]) > 1e-3


def test_preserves_norms_dtype_and_vmap(x64):
    x = _normal(3, (2, 4, 24, 8), jnp.float64)
    pos = jnp.asarray(np.random.default_rng(4).integers(0, 1000, 24))
    y = jax.jit(apply_rope)(x, pos)
    assert y.shape == x.shape and y.dtype == jnp.float64
    assert_close(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), jnp.float64)
    # Leading axes are batch axes: the same as vmapping the one-head module.
    rope = RoPE(8)
    per_head = jax.vmap(jax.vmap(rope, in_axes=(0, None)), in_axes=(0, None))(x, pos)
    assert_close(y, per_head, jnp.float64)


def test_dtypes():
    # half-precision x: the angles and the rotation are still float32 and rounded once, so the
    # result is exactly the float32 computation on the same values, rounded (far positions,
    # where half-precision angles would be off by radians)
    x = _normal(5, (6, 8))
    pos = jnp.arange(100_000, 100_006)
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
        xd = x.astype(dtype)
        y = apply_rope(xd, pos)
        assert y.dtype == dtype
        expected = apply_rope(xd.astype(jnp.float32), pos).astype(dtype)
        np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(expected, np.float32))


def test_float32_angle_error_is_as_documented():
    """float32 at m ~ 1e5 against the float64 rotation: the angle of pair i is off by at most
    ~m theta_i 1.2e-7 (theta_i and m theta_i each rounded once), a few 1e-3 rad for theta_i
    near 1, and pair 0 (theta_0 = 1, exact angle m) only by the cos/sin rounding."""
    d = 64
    pos = np.arange(100_000, 100_016)
    x = np.zeros((16, d))
    x[:, : d // 2] = 1.0
    y32 = np.asarray(apply_rope(jnp.asarray(x, jnp.float32), jnp.asarray(pos)), np.float64)
    with jax.enable_x64(True):
        y64 = np.asarray(apply_rope(jnp.asarray(x), jnp.asarray(pos, jnp.float64)))
    angle = lambda y: np.arctan2(y[:, d // 2 :], y[:, : d // 2])  # noqa: E731
    err = np.abs(np.angle(np.exp(1j * (angle(y32) - angle(y64)))))
    theta = np.asarray(rope_frequencies(d, dtype=jnp.float32), np.float64)
    assert np.all(err <= pos[:, None] * theta[None] * 1.2e-7 + 1e-6)
    assert err[:, 0].max() < 1e-6
    assert 1e-4 < err[:, 1:4].max() < 6e-3  # the documented size, not far smaller


def test_gradient_is_transpose_rotation():
    """R is orthogonal: grad of <u, R x> is R^T u = R(-m) u, and grad |R x|^2 / 2 = x."""
    x, u = _normal(6, (5, 8)), _normal(7, (5, 8))
    pos = jnp.arange(5)
    g = jax.jit(jax.grad(lambda v: jnp.sum(u * apply_rope(v, pos))))(x)
    assert_close(g, apply_rope(u, -pos), jnp.float32)
    g2 = jax.grad(lambda v: 0.5 * jnp.sum(apply_rope(v) ** 2))(x)
    assert_close(g2, x, jnp.float32)


def test_errors(library_errors):
    with pytest.raises(ValueError, match="`head_dim`.*7"):
        rope_frequencies(7)
    with pytest.raises(ValueError, match="`head_dim`.*5"):
        RoPE(5)
    with pytest.raises(ValueError, match="`x`.*even"):
        apply_rope(jnp.ones((4, 5)))
    with pytest.raises(ValueError, match="`positions`.*\\(4,\\)"):
        apply_rope(jnp.ones((4, 6)), jnp.arange(3))
    with pytest.raises(ValueError, match="`x`.*head_dim"):
        RoPE(8)(jnp.ones((4, 6)))
    with pytest.raises(ValueError, match="`base`"):
        apply_rope(jnp.ones((4, 6)), base=-1.0)
    # base 1 gave one frequency for every pair, base 0.5 increasing ones, silently
    for base in (1.0, 0.5):
        with pytest.raises(ValueError, match=rf"`base` must be > 1.*got {base}"):
            RoPE(8, base=base)


def test_module_base_may_be_a_concrete_jax_scalar(library_errors):
    """RoPE's base is static (a Python float): a concrete JAX scalar, which rope_frequencies and
    apply_rope take, was refused with "must be a Python float; got ArrayImpl" and no value.
    It is taken as its value; a traced one is refused, saying why."""
    assert RoPE(8, base=jnp.float32(500.0)) == RoPE(8, base=500.0)
    with pytest.raises(TypeError, match=r"`base` must be a Python float \(a fixed hyper.*traced"):
        jax.jit(lambda b: RoPE(8, base=b))(500.0)
    # NaN, 0 and negative bases said "> 0", then 0.5 "> 1": the whole range at once
    for bad in (float("nan"), 0.0, -3.0):
        with pytest.raises(ValueError, match=r"`base` must be a finite number > 1.*got"):
            rope_frequencies(8, bad)


def test_rope_frequencies_refuses_a_non_float_dtype(library_errors):
    # dtype=int32 used to truncate the frequencies to [1, 0, 0, 0] silently
    with pytest.raises(TypeError, match=r"`dtype` must be a real floating-point type.*int32"):
        rope_frequencies(8, dtype=jnp.int32)


def test_call_names_a_non_array_x(library_errors):
    # the shape check ran first: AttributeError "'list' object has no attribute 'ndim'"
    with pytest.raises(TypeError, match=r"`x` must be a jax.Array or NumPy array.*got list"):
        RoPE(2)([[0.1, 0.2]])


def test_apply_rope_names_x_and_positions(library_errors):
    # D = 0 was reported as `head_dim`, which apply_rope does not take
    with pytest.raises(ValueError, match=r"last axis of `x` \(head_dim\).*x.shape=\(3, 0\)"):
        apply_rope(jnp.ones((3, 0)))
    # a string or a list with None failed in jnp.asarray, naming nothing
    for bad in ("abc", [None, 1, 2]):
        with pytest.raises(TypeError, match=r"`positions` must be an integer or real"):
            apply_rope(jnp.ones((3, 4)), bad)


@pytest.mark.usefixtures("x64")
def test_base_can_be_traced():
    """A JAX scalar base: jax.grad with respect to it (d theta_i / d base = -(2i/D) theta_i /
    base) and jax.vmap over bases, equal to Python-float bases (it had to be a Python float)."""
    d, base = 16, 500.0
    i = np.arange(d // 2)
    theta = base ** (-2.0 * i / d)
    jac = jax.jacrev(lambda b: rope_frequencies(d, b, jnp.float64))(jnp.float64(base))
    assert_close(jac, jnp.asarray(-(2.0 * i / d) * theta / base), rtol=1e-13)
    bases = jnp.asarray([10.0, 1e4, 1e6])
    x = jax.random.normal(jax.random.key(0), (5, d), jnp.float64)
    got = jax.vmap(lambda b: apply_rope(x, base=b))(bases)
    for row, b in zip(got, bases.tolist(), strict=True):
        assert_close(row, apply_rope(x, base=b), rtol=1e-13)
    # float32: the JAX path's power against the float64 table rounded once
    f32 = jax.jit(rope_frequencies, static_argnums=0)(128, jnp.float32(1e4))
    assert_close(f32, rope_frequencies(128, 1e4), rtol=3e-6)


def test_array_base_is_checked(library_errors):
    with pytest.raises(TypeError, match=r"`base` must be .*JAX scalar; got .*\(2,\)"):
        rope_frequencies(8, jnp.ones(2) * 100.0)
    with pytest.raises(TypeError, match=r"`base` must be .*JAX scalar; got .*complex64"):
        apply_rope(jnp.ones((3, 8)), base=jnp.complex64(100))
    with pytest.raises(ValueError, match=r"`base` must be > 1"):
        rope_frequencies(8, jnp.float32(0.5))


def test_an_integer_jax_base_is_taken_as_a_float():
    """``rope_frequencies(8, jnp.asarray(10000))`` was refused (integer dtype) while a Python int,
    a NumPy int and ``spectrax.theory``'s functions took it."""
    assert_close(rope_frequencies(8, jnp.asarray(10000)), rope_frequencies(8, 10000.0))
    x = jax.random.normal(jax.random.key(0), (5, 8))
    assert_close(apply_rope(x, base=jnp.asarray(500)), apply_rope(x, base=500.0))


def test_a_base_beyond_float_range_is_refused_naming_it(library_errors):
    """A Python int beyond float's range (10**400) raised a bare OverflowError."""
    with pytest.raises(ValueError, match=r"`base` must be a finite number > 1.*401 digits"):
        apply_rope(jnp.ones((2, 4)), base=10**400)
