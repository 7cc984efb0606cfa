"""RoPE base bounds and angle precision, against their definitions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.theory import (
    rope_aliasing_bound,
    rope_angle_error,
    rope_base_lower_bound,
    rope_decay_curve,
)


def test_decay_curve_is_the_mean_cosine():
    d, base = 16, 500.0
    theta = base ** (-np.arange(0, d, 2) / d)
    m = np.arange(0, 301)
    expected = np.cos(m[:, None] * theta[None, :]).mean(axis=1)
    np.testing.assert_allclose(rope_decay_curve(base, d, 300), expected, rtol=0, atol=1e-14)
    assert rope_decay_curve(base, d, 300)[0] == 1.0


def test_a_concrete_0d_array_base_is_its_number(library_errors):
    """rope_frequencies takes a 0-d array base; these refused it with "must be a real number > 1;
    got Array(10000., dtype=float32)"."""
    want = rope_decay_curve(1e4, 16, 50)
    for base in (jnp.float32(1e4), np.array(1e4), jnp.array(10000)):
        np.testing.assert_array_equal(rope_decay_curve(base, 16, 50), want)
    np.testing.assert_array_equal(
        rope_angle_error(jnp.float32(500.0), 16, np.arange(64)),
        rope_angle_error(500.0, 16, np.arange(64)),
    )
    for bad, dtype in ((jnp.array(True), "bool"), (jnp.array(1e4 + 0j), "complex64")):
        with pytest.raises(TypeError, match=rf"`base` must be a real number > 1; got .*{dtype}"):
            rope_decay_curve(bad, 16, 50)
    with pytest.raises(ValueError, match=r"`base` must be a finite number > 1; got 1.0"):
        rope_decay_curve(jnp.float32(1.0), 16, 50)
    with pytest.raises(TypeError, match=r"`base` must be a concrete number"):
        jax.jit(lambda b: rope_decay_curve(b, 16, 50))(jnp.float32(1e4))


def test_lower_bound_is_the_smallest_grid_base():
    # brute force over the same grid 2 (1 + rtol)^j: every smaller base fails somewhere
    n, d, rtol = 512, 128, 1e-2
    b = rope_base_lower_bound(n, d, rtol=rtol)
    assert rope_decay_curve(b, d, n).min() >= 0.0
    grid = 2.0 * (1 + rtol) ** np.arange(0, 2000)
    below = grid[grid < b * (1 - 1e-12)]
    assert below.size > 100
    assert all(rope_decay_curve(g, d, n).min() < 0.0 for g in below)


def test_lower_bound_matches_men_et_al():
    # Men et al. 2024, Figure 1 (d = 128): about 4e3 at 1K tokens and 8e4 at 8K.
    assert 4.0e3 < rope_base_lower_bound(1024, 128) < 4.6e3
    assert 7.8e4 < rope_base_lower_bound(8192, 128) < 9.0e4


def test_lower_bound_grows_with_context_and_exceeds_aliasing():
    bounds = [rope_base_lower_bound(n, 64) for n in (256, 1024, 4096)]
    assert bounds[0] < bounds[1] < bounds[2]
    # a base of 10^4 (RoFormer's default) is enough for 256 tokens at d = 64 and not for 4096
    assert bounds[0] < 1e4 < bounds[2]
    for n, b in zip((256, 1024, 4096), bounds, strict=True):
        assert b > rope_aliasing_bound(n, 64)


def test_aliasing_bound_closed_form():
    n, d = 8192, 128
    b = rope_aliasing_bound(n, d)
    theta_min = b ** (-(d - 2) / d)
    assert math.isclose(n * theta_min, math.pi, rel_tol=1e-12)


def test_angle_error_by_precision():
    pos = np.array([1, 255, 257, 1001, 2**20])
    assert np.all(rope_angle_error(1e4, 128, pos, jnp.float64) == 0.0)
    f32 = rope_angle_error(1e4, 128, pos, jnp.float32)
    # two float32 roundings (theta, then the product); theta_0 = 1 is the largest angle
    eps = float(np.finfo(np.float32).eps)
    assert np.all(f32 <= 2 * eps * pos), f32
    assert f32[-1] > 1e-3  # about 0.03 rad at a million tokens: visible in the slowest pairs
    bf16 = rope_angle_error(1e4, 128, pos[:4], jnp.bfloat16)
    # 257 and 1001 are not bfloat16 numbers (8 significant bits): the position itself moves
    assert bf16[2] >= 1.0 and bf16[3] >= 1.0, bf16


def test_bad_inputs_are_named(library_errors):
    with pytest.raises(ValueError, match="`head_dim` must be even"):
        rope_decay_curve(1e4, 63, 10)
    with pytest.raises(ValueError, match="`head_dim` must be an integer >= 4"):
        rope_aliasing_bound(100, 2)
    with pytest.raises(ValueError, match="`base` must be a finite number > 1"):
        rope_decay_curve(0.5, 64, 10)
    with pytest.raises(ValueError, match="finite number > 1; got an int of 401 digits"):
        rope_angle_error(10**400, 64, np.array([1]))  # was a bare OverflowError
    with pytest.raises(TypeError, match="`base` must be a real number"):
        rope_decay_curve("1e4", 64, 10)
    with pytest.raises(ValueError, match="`context_length` must be an integer >= 1"):
        rope_base_lower_bound(0, 64)
    with pytest.raises(ValueError, match="`rtol`"):
        rope_base_lower_bound(10, 64, rtol=2.0)
    with pytest.raises(TypeError, match="`rtol` must be a real number"):
        rope_base_lower_bound(10, 64, rtol="0.01")
    with pytest.raises(ValueError, match="`positions` must be a 1-d array"):
        rope_angle_error(1e4, 64, np.array([-1, 2]))
    with pytest.raises(ValueError, match=r"integers in \[0, 2\^31\)"):
        rope_angle_error(1e4, 64, np.array([2**31 + 5]))
    with pytest.raises(TypeError, match="`dtype` must be a real floating-point"):
        rope_angle_error(1e4, 64, np.array([1]), jnp.int32)


def test_angle_error_against_numpy_rounding():
    # the angles an implementation in float32 / bfloat16 forms: theta rounded from float64 once,
    # the position converted, one rounded product; NumPy (ml_dtypes for bfloat16) as reference.
    # The last two bases have a theta that rounding through float32 first moved by one ulp of
    # the half-precision type (it did: errors off by 1.8e-3 rad at position 58 in float16).
    positions = np.array([0, 3, 29, 58, 95, 116, 190, 251, 255, 257, 464, 1001, 4097, 2**20 + 1])
    cases = [
        (5e5, 64, np.float32),
        (5e5, 64, jnp.bfloat16),
        (52.14560603156215, 128, np.float16),
        (20.874350143042022, 64, jnp.bfloat16),
    ]
    for base, d, dtype in cases:
        pos = positions[positions <= 65504] if dtype == np.float16 else positions
        theta = base ** (-np.arange(0, d, 2) / d)
        exact = np.outer(pos.astype(np.float64), theta)
        computed = pos.astype(dtype)[:, None] * theta.astype(dtype)[None, :]
        want = np.abs(computed.astype(np.float64) - exact).max(axis=1)
        np.testing.assert_array_equal(rope_angle_error(base, d, pos, dtype), want)


def test_lower_bound_error_says_how_far_it_scanned(library_errors):
    """With a fine grid the scan ends after its 2^20 points, near base 5.7 for rtol = 1e-6: it
    raised "no base up to 1e300 satisfies the decay criterion", false (453 does, for 3 tokens
    at d = 4), where the fix is a coarser `rtol`."""
    assert rope_decay_curve(453.1, 4, 3).min() >= 0.0
    with pytest.raises(ValueError, match=r"no base up to 5\.7.*2\^20 points.*larger `rtol`"):
        rope_base_lower_bound(3, 4, rtol=1e-6)
