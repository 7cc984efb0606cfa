"""AFNO mixer: soft-shrink, a float64 NumPy reference of the block-diagonal spectral MLP,
identity at zero weights, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.nn import AFNOMixer, afno_mix, soft_shrink
from tests.helpers import assert_close, rel_err


def test_soft_shrink_closed_form():
    x = jnp.asarray([-2.0, -0.5, -0.1, 0.0, 0.05, 0.3, 1.0])
    np.testing.assert_allclose(
        soft_shrink(x, 0.2), [-1.8, -0.3, 0.0, 0.0, 0.0, 0.1, 0.8], atol=1e-7
    )


@pytest.mark.parametrize(
    "threshold",
    [
        -0.1,
        float("nan"),
        float("inf"),
        np.float32(-0.1),
        np.array(-0.1),  # 0-d NumPy arrays were not checked
        np.array(float("nan"), np.float32),
        jnp.asarray(-0.1),  # neither were concrete JAX scalars
    ],
)
def test_soft_shrink_refuses_a_negative_or_non_finite_threshold(threshold, library_errors):
    # a negative threshold pushed values away from zero (0.5 -> 0.6), silently
    with pytest.raises(ValueError, match="`threshold` must be a finite number >= 0; got"):
        soft_shrink(jnp.asarray([0.5, -0.5]), threshold)
    # a traced threshold is taken as it is
    assert jax.jit(soft_shrink)(jnp.asarray([0.5]), jnp.asarray(0.2)).shape == (1,)


@pytest.mark.parametrize("threshold", [np.array([0.1, 0.2]), jnp.asarray([0.1, 0.2])])
def test_soft_shrink_refuses_a_non_scalar_threshold(threshold, library_errors):
    # a (2,) threshold broadcast against x: per-element thresholds, silently
    with pytest.raises(ValueError, match=r"`threshold` must be one real number.*shape \(2,\)"):
        soft_shrink(jnp.asarray([0.5, -0.5]), threshold)


def test_soft_shrink_takes_numpy_and_jax_scalars():
    x = jnp.asarray([-0.5, 0.1, 0.5])
    want = soft_shrink(x, 0.2)
    for t in (np.float32(0.2), np.array(0.2), jnp.asarray(0.2)):
        np.testing.assert_allclose(soft_shrink(x, t), want, atol=1e-7)
    np.testing.assert_array_equal(soft_shrink(x, 0.0), x)


def test_soft_shrink_refuses_a_non_number(library_errors):
    x = jnp.asarray([-0.5, 0.1, 0.5])
    with pytest.raises(TypeError, match="`threshold` must be a real number; got '0.2'"):
        soft_shrink(x, "0.2")


def _reference(x, mixer):
    """float64 NumPy AFNO on one field: ortho rfftn, hard-threshold modes, per-block MLP."""
    c = lambda p: np.asarray(p[0]) + 1j * np.asarray(p[1])  # noqa: E731
    w1, b1, w2, b2 = c(mixer.w1), c(mixer.b1), c(mixer.w2), c(mixer.b2)
    d = x.ndim - 1
    spatial = x.shape[1:]
    xh = np.fft.rfftn(x, axes=tuple(range(1, d + 1)), norm="ortho")
    out = np.zeros_like(xh)
    nb, bs = w1.shape[:2]
    relu = lambda z: np.maximum(z.real, 0) + 1j * np.maximum(z.imag, 0)  # noqa: E731
    lam = mixer.sparsity_threshold
    shrink = lambda r: np.sign(r) * np.maximum(np.abs(r) - lam, 0)  # noqa: E731
    for idx in np.ndindex(*xh.shape[1:]):
        keep = all(
            (k < m) if j == d - 1 else (k < m or k >= spatial[j] - m)
            for j, (k, m) in enumerate(zip(idx, mixer.modes, strict=False))
        )
        if not keep:
            continue
        z = xh[(slice(None),) + idx].reshape(nb, bs)
        h = relu(np.einsum("gi,gio->go", z, w1) + b1)
        o = np.einsum("gi,gio->go", h, w2) + b2
        out[(slice(None),) + idx] = (shrink(o.real) + 1j * shrink(o.imag)).reshape(-1)
    return np.fft.irfftn(out, s=spatial, axes=tuple(range(1, d + 1)), norm="ortho") + x


def test_matches_float64_numpy_reference(x64):
    key = jax.random.key(3)
    mixer = AFNOMixer(
        2,
        8,
        (3, 4),
        num_blocks=2,
        hidden_factor=1.5,
        sparsity_threshold=0.05,
        dtype=jnp.float64,
        key=key,
    )
    # Larger weights than the 0.02 init so the ReLUs and the shrinkage are exercised.
    mixer = jax.tree.map(lambda p: 25.0 * p, mixer)
    x = jax.random.normal(key, (8, 10, 12), jnp.float64)
    got = jax.jit(lambda u: mixer(u))(x)
    assert_close(got, _reference(np.asarray(x), mixer), jnp.float64)


def test_zero_weights_are_identity_and_vmap(key):
    mixer = AFNOMixer(1, 8, 5, num_blocks=4, key=key)
    zero = jax.tree.map(jnp.zeros_like, mixer)
    x = jax.random.normal(key, (3, 8, 32))
    f = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))
    assert_close(f(zero, x), x, jnp.float32)
    g = eqx.filter_jit(lambda m, u: m(u))
    loop = jnp.stack([g(mixer, u) for u in x])
    assert_close(f(mixer, x), loop, jnp.float32)


def test_errors(key, library_errors):
    with pytest.raises(ValueError, match="divide"):
        AFNOMixer(1, 6, 4, num_blocks=4, key=key)
    mixer = AFNOMixer(1, 8, 4, num_blocks=4, key=key)
    with pytest.raises(ValueError, match="too many"):
        jax.eval_shape(mixer, jax.ShapeDtypeStruct((8, 4), jnp.float32))
    with pytest.raises(ValueError, match="channels"):
        jax.eval_shape(mixer, jax.ShapeDtypeStruct((4, 16), jnp.float32))


def test_afno_mix_int_modes_are_the_same_on_every_axis(key):
    # an int was refused ("one int per spatial axis"), though x is one field (C, *spatial), whose
    # rank says how many axes are spatial, and AFNOMixer / AFNO take an int
    ks = jax.random.split(key, 5)
    x = jax.random.normal(ks[0], (4, 8, 6))
    c = lambda k, *s: jax.lax.complex(*jax.random.normal(k, (2, *s)))  # noqa: E731
    w = (c(ks[1], 2, 2, 3), c(ks[2], 2, 3), c(ks[3], 2, 3, 2), c(ks[4], 2, 2))
    got = afno_mix(x, *w, 3, 0.01)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(afno_mix(x, *w, (3, 3), 0.01)))
    # and the mixing acts: not the identity residual
    assert float(jnp.max(jnp.abs(got - x))) > 1e-2


def _cz(*shape):
    return jnp.zeros(shape, jnp.complex64)


@pytest.mark.parametrize(
    "x_shape, w1, b1, w2, b2, modes, match",
    [
        # 8 channels against blocks of 2 x 3: mixed channels with modes, then failed in a
        # bare reshape (TypeError "cannot reshape array"); the others failed in einsum or later
        ((8, 16), (2, 3, 3), (2, 3), (2, 3, 3), (2, 3), (3,), r"`w1`.*\(2, 3, 3\).*8 channels"),
        ((8, 16), (2, 4, 3), (2, 4), (2, 3, 4), (2, 4), (3,), r"`b1`.*\(2, 3\)"),
        ((8, 16), (2, 4, 3), (2, 3), (2, 4, 4), (2, 4), (3,), r"`w2`.*\(2, 3, 4\)"),
        ((8, 16), (2, 4, 3), (2, 3), (2, 3, 4), (2, 3), (3,), r"`b2`.*\(2, 4\)"),
        ((8, 16), (2, 4, 3), (2, 3), (2, 3, 4), (2, 4), (3, 3), r"`x`.*2 spatial axes"),
        ((8, 16), (2, 4, 3), (2, 3), (2, 3, 4), (2, 4), (10,), "too many"),
        ((8, 16, 16), (2, 4, 3), (2, 3), (2, 3, 4), (2, 4), 9, r"`modes\[0\]`=9 is too many"),
        # a bare "'NoneType' object is not iterable"
        (
            (8, 16, 16),
            (2, 4, 3),
            (2, 3),
            (2, 3, 4),
            (2, 4),
            None,
            r"`modes` must be an int.*2\); got None",
        ),
        ((8, 16), (2, 4, 3), (2, 3), (2, 3, 4), (2, 4), True, r"`modes` must be an int.*got True"),
    ],
)
def test_afno_mix_checks_its_shapes(x_shape, w1, b1, w2, b2, modes, match, library_errors):
    x = jnp.zeros(x_shape)
    with pytest.raises(ValueError, match=match):
        afno_mix(x, _cz(*w1), _cz(*b1), _cz(*w2), _cz(*b2), modes, 0.01)


def test_float64_parameters_are_not_narrowed_for_a_float32_input(x64):
    """float64 parameters with a float32 input compute in (and return) float64, as SpectralConv
    and PointwiseLinear do: equal to the float64 reference on the exactly widened input (the
    mixer used to cast its complex128 weights to complex64 and return float32, ~1e-7 off)."""
    key = jax.random.key(4)
    mixer = AFNOMixer(1, 8, 5, num_blocks=2, sparsity_threshold=0.05, dtype=jnp.float64, key=key)
    mixer = jax.tree.map(lambda p: 25.0 * p, mixer)
    x = jax.random.normal(key, (8, 16), jnp.float32)
    got = jax.jit(lambda u: mixer(u))(x)
    assert got.dtype == jnp.float64
    assert_close(got, _reference(np.asarray(x, np.float64), mixer), jnp.float64)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_input_is_rounded_once(dtype):
    """A half-precision input gives the float32 computation on the same input, rounded once:
    every entry within half an ulp. The spectral branch used to be rounded to half precision
    before the residual was added (then the sum rounded again): up to 256 half-ulps off
    (bfloat16) where the branch and the input cancel."""
    key = jax.random.key(5)
    mixer = AFNOMixer(1, 8, 5, num_blocks=2, sparsity_threshold=0.0, key=key)
    mixer = jax.tree.map(lambda p: 25.0 * p, mixer)  # a branch as large as the input
    x = jax.random.normal(key, (8, 32)).astype(dtype)
    out = mixer(x)
    assert out.dtype == dtype
    ref = np.asarray(mixer(x.astype(jnp.float32)), np.float64)
    err = np.abs(np.asarray(out, np.float64) - ref)
    info = jnp.finfo(dtype)
    assert np.all(err <= float(info.eps) / 2 * np.abs(ref) + float(info.smallest_subnormal))


@pytest.mark.parametrize("factor, block, hidden", [(1.1, 50, 55), (0.28, 25, 7), (1.5, 3, 5)])
def test_hidden_size_is_the_ceiling_of_the_exact_product(factor, block, hidden):
    # 1.1 * 50 is 55.00000000000001 in floating point: the block MLP got 56 hidden channels
    mixer = eqx.filter_eval_shape(
        AFNOMixer, 1, block, 4, num_blocks=1, hidden_factor=factor, key=jax.random.key(0)
    )
    assert mixer.w1.shape == (2, 1, block, hidden) and mixer.w2.shape == (2, 1, hidden, block)


def test_resolution_dependence_comes_from_the_biases_and_threshold_only(x64):
    """A band-limited field on 16 and on 64 points: without biases and with lambda = 0 the
    mixer gives the same field on both grids (the ortho scaling cancels through the positively
    homogeneous MLP); with biases it does not (as documented: the test can fail)."""
    key = jax.random.key(6)
    mixer = AFNOMixer(1, 4, 5, num_blocks=2, sparsity_threshold=0.0, dtype=jnp.float64, key=key)
    mixer = jax.tree.map(lambda p: 25.0 * p, mixer)
    homogeneous = eqx.tree_at(
        lambda m: (m.b1, m.b2), mixer, (jnp.zeros_like(mixer.b1), jnp.zeros_like(mixer.b2))
    )
    coeffs = jax.random.normal(key, (4, 4), jnp.float64)

    def field(n):  # sum of cos(2 pi k t) for k = 1..4
        t = jnp.arange(n, dtype=jnp.float64) / n
        return coeffs @ jnp.cos(2 * jnp.pi * jnp.arange(1.0, 5.0)[:, None] * t[None])

    call = eqx.filter_jit(lambda m, u: m(u))
    coarse, fine = field(16), field(64)
    assert_close(call(homogeneous, coarse), call(homogeneous, fine)[:, ::4], jnp.float64)
    assert rel_err(call(mixer, coarse), call(mixer, fine)[:, ::4]) > 1e-2


def test_a_leading_axis_nyquist_bin_is_kept_whole_as_physicsnemo_does(x64):
    """The documented exception to the resolution rule: with ``modes[0] = n/2`` on an even
    leading axis, a field with content at that Nyquist frequency mixes to a different field on
    a finer grid (the bin holds the whole cosine on its grid, half of it on a finer one); one
    frequency below it the homogeneous mixer agrees across grids."""
    key = jax.random.key(7)
    mixer = AFNOMixer(
        2, 4, (4, 2), num_blocks=2, sparsity_threshold=0.0, dtype=jnp.float64, key=key
    )
    mixer = jax.tree.map(lambda p: 25.0 * p, mixer)
    mixer = eqx.tree_at(
        lambda m: (m.b1, m.b2), mixer, (jnp.zeros_like(mixer.b1), jnp.zeros_like(mixer.b2))
    )
    a = jax.random.normal(key, (4, 2), jnp.float64)

    def field(n, k):  # cos(2 pi y) + cos(2 pi k x) per channel, on n x 6 points
        x, y = jnp.meshgrid(jnp.arange(n) / n, jnp.arange(6) / 6, indexing="ij")
        low, high = jnp.cos(2 * jnp.pi * y)[None], jnp.cos(2 * jnp.pi * k * x)[None]
        return a[:, :1, None] * low + a[:, 1:, None] * high

    call = eqx.filter_jit(lambda m, u: m(u) - u)  # the spectral path, without the residual
    below = call(mixer, field(16, 3))[:, ::2]
    assert_close(call(mixer, field(8, 3)), below, jnp.float64)
    at_nyquist = call(mixer, field(8, 4))
    assert rel_err(at_nyquist, call(mixer, field(16, 4))[:, ::2]) > 0.1
