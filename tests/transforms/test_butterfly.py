"""Butterfly matrices (Dao et al., 2019): the reshape implementation against explicit float64
factors, the Walsh–Hadamard and FFT twiddles against their definitions, dtypes, transformations
and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

from spectrax.nn import Butterfly
from spectrax.transforms import walsh_hadamard
from spectrax.transforms._butterfly import (
    bit_reversal_permutation,
    butterfly_multiply,
    butterfly_to_dense,
    fft_twiddle,
    hadamard_twiddle,
)
from tests.helpers import assert_close


def _twiddle(n, complex=False, seed=0):
    """Random float64 (complex128) twiddle of shape (log2 n, n/2, 2, 2), as NumPy."""
    rng = np.random.default_rng(seed)
    shape = (n.bit_length() - 1, n // 2, 2, 2)
    tw = rng.standard_normal(shape)
    return tw + 1j * rng.standard_normal(shape) if complex else tw


def _factor(tw_j, j, n):
    """The n x n factor of stride s = 2^j from the documented index formula, entry by entry:
    i = h 2s + l with bit j of i clear (l < s), its pair p = h s + l couples i and i + s."""
    s = 1 << j
    b = np.zeros((n, n), dtype=tw_j.dtype)
    for i in range(n):
        if i & s:
            continue
        h, l = divmod(i, 2 * s)
        p = h * s + l
        b[i, i], b[i, i + s] = tw_j[p, 0, 0], tw_j[p, 0, 1]
        b[i + s, i], b[i + s, i + s] = tw_j[p, 1, 0], tw_j[p, 1, 1]
    return b


def _dense_reference(tw, increasing_stride=True):
    """Product of the explicit factors: B_{k-1} ... B_0 (increasing) or B_0 ... B_{k-1}."""
    k = tw.shape[0]
    n = 2**k
    b = np.eye(n, dtype=tw.dtype)
    for j in range(k) if increasing_stride else reversed(range(k)):
        b = _factor(tw[j], j, n) @ b  # applied after the factors already in b
    return b


def _normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# ---------------------------------------------------------------- the product


@pytest.mark.parametrize("n", [2, 4, 16])
@pytest.mark.parametrize("complex", [False, True])
def test_multiply_equals_explicit_factors(x64, n, complex):
    tw = _twiddle(n, complex, seed=n)
    x = np.random.default_rng(1).standard_normal((3, 2, n))
    for inc in (True, False):
        b = _dense_reference(tw, inc)
        got = butterfly_multiply(jnp.asarray(tw), jnp.asarray(x), increasing_stride=inc)
        assert got.dtype == (jnp.complex128 if complex else jnp.float64)
        assert_close(got, x @ b.T, jnp.float64, what=f"increasing_stride={inc}")
        dense = butterfly_to_dense(jnp.asarray(tw), increasing_stride=inc)
        assert_close(dense, b, jnp.float64)
        assert_close(got, np.asarray(x) @ np.asarray(dense).T, jnp.float64)
    if n > 2:  # the two orders are different matrices (the check above could not tell)
        assert not np.allclose(_dense_reference(tw, True), _dense_reference(tw, False))


def test_factor_layout_for_n4(x64):
    """n = 4 written out: stride 1 pairs (0, 1), (2, 3) as pairs 0, 1; stride 2 pairs (0, 2),
    (1, 3) as pairs 0, 1."""
    tw = np.zeros((2, 2, 2, 2))
    tw[0] = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    tw[1] = np.eye(2)
    b0 = np.array([[1, 2, 0, 0], [3, 4, 0, 0], [0, 0, 5, 6], [0, 0, 7, 8]], float)
    assert_close(butterfly_to_dense(jnp.asarray(tw)), b0, jnp.float64)
    tw = np.zeros((2, 2, 2, 2))
    tw[0] = np.eye(2)
    tw[1] = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    b1 = np.array([[1, 0, 2, 0], [0, 5, 0, 6], [3, 0, 4, 0], [0, 7, 0, 8]], float)
    assert_close(butterfly_to_dense(jnp.asarray(tw)), b1, jnp.float64)


def test_transpose_is_the_opposite_order_with_transposed_blocks(x64):
    tw = jnp.asarray(_twiddle(16, seed=3))
    b = np.asarray(butterfly_to_dense(tw))
    bt = butterfly_to_dense(jnp.swapaxes(tw, -1, -2), increasing_stride=False)
    assert_close(bt, b.T, jnp.float64)


# ---------------------------------------------------------------- Walsh–Hadamard


@pytest.mark.parametrize("n", [2, 16])
def test_hadamard_twiddle_is_walsh_hadamard(x64, n):
    x = jnp.asarray(np.random.default_rng(n).standard_normal((3, n)))
    h = scipy.linalg.hadamard(n) / np.sqrt(n)
    tw = hadamard_twiddle(n, jnp.float64)
    assert tw.shape == (n.bit_length() - 1, n // 2, 2, 2) and tw.dtype == jnp.float64
    for inc in (True, False):  # the factors commute
        assert_close(butterfly_to_dense(tw, increasing_stride=inc), h, jnp.float64)
        got = butterfly_multiply(tw, x, increasing_stride=inc)
        assert_close(got, walsh_hadamard(x), jnp.float64)
        assert_close(got, np.asarray(x) @ h, jnp.float64)


def test_hadamard_twiddle_float32_default():
    tw = hadamard_twiddle(128)
    assert tw.dtype == jnp.float32
    x = _normal((4, 128))
    assert_close(butterfly_multiply(tw, x), walsh_hadamard(x), jnp.float32)


# ---------------------------------------------------------------- FFT


def test_bit_reversal_permutation():
    np.testing.assert_array_equal(bit_reversal_permutation(2), [0, 1])
    np.testing.assert_array_equal(bit_reversal_permutation(8), [0, 4, 2, 6, 1, 5, 3, 7])
    p = bit_reversal_permutation(64)
    np.testing.assert_array_equal(p[p], np.arange(64))  # an involution
    assert p[1] == 32 and p[3] == 48


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 64, 128, 256])
def test_fft_twiddle_with_bit_reversal_is_the_dft(x64, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))
    perm = bit_reversal_permutation(n)
    for norm in ("backward", "ortho", "forward"):
        tw = fft_twiddle(n, norm=norm, dtype=jnp.complex128)
        expected = np.fft.fft(x, norm=norm)
        # Decimation in time: bit-reversed input, strides 1, 2, ..., n/2.
        got = butterfly_multiply(tw, jnp.asarray(x[..., perm]))
        assert got.dtype == jnp.complex128
        assert_close(got, expected, jnp.complex128, what=norm)
        # Decimation in frequency: transposed blocks, strides n/2, ..., 1, bit-reversed output.
        dif = butterfly_multiply(jnp.swapaxes(tw, -1, -2), jnp.asarray(x), increasing_stride=False)
        assert_close(np.asarray(dif)[..., perm], expected, jnp.complex128, what=f"DIF {norm}")
    # The orthonormal twiddle has unitary factors: every 2x2 block is unitary.
    tw = np.asarray(fft_twiddle(n, norm="ortho", dtype=jnp.complex128))
    gram = np.conj(np.swapaxes(tw, -1, -2)) @ tw
    assert_close(gram, np.broadcast_to(np.eye(2), gram.shape), jnp.float64)


def test_fft_twiddle_complex64_on_real_input():
    n = 64
    x = _normal((3, n))
    got = butterfly_multiply(fft_twiddle(n), x[..., bit_reversal_permutation(n)])
    assert got.dtype == jnp.complex64
    assert_close(got, np.fft.fft(np.asarray(x, np.float64)), jnp.complex64)


# ---------------------------------------------------------------- dtypes and transformations


def test_dtypes_and_half_precision():
    n = 64
    x = _normal((2, n))
    tw32 = jnp.asarray(_twiddle(n, seed=1), jnp.float32)
    assert butterfly_multiply(tw32, x).dtype == jnp.float32
    # bf16 data with float32 parameters: JAX's standard promotion, float32.
    xb = x.astype(jnp.bfloat16)
    got = butterfly_multiply(tw32, xb)
    assert got.dtype == jnp.float32
    assert_close(got, butterfly_multiply(tw32, xb.astype(jnp.float32)), jnp.float32)
    # Everything bf16: computed in float32, rounded once at the end.
    twb = tw32.astype(jnp.bfloat16)
    got = butterfly_multiply(twb, xb)
    assert got.dtype == jnp.bfloat16
    expected = butterfly_multiply(twb.astype(jnp.float32), xb.astype(jnp.float32))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected.astype(jnp.bfloat16)))
    # Complex twiddle, real data: complex.
    assert butterfly_multiply(fft_twiddle(n), x).dtype == jnp.complex64


def test_jit_vmap():
    n = 32
    tw = jnp.asarray(_twiddle(n, seed=2), jnp.float32)
    x = _normal((5, n), seed=1)
    f = butterfly_multiply
    assert_close(jax.jit(f)(tw, x), f(tw, x), jnp.float32)
    assert_close(jax.vmap(f, in_axes=(None, 0))(tw, x), f(tw, x), jnp.float32)
    # A batch of twiddles: one matrix per row.
    tws = jnp.stack([jnp.asarray(_twiddle(n, seed=10 + i), jnp.float32) for i in range(5)])
    looped = jnp.stack([f(t, r) for t, r in zip(tws, x, strict=True)])
    assert_close(jax.vmap(f)(tws, x), looped, jnp.float32)


def test_gradients(x64):
    n = 8
    tw = jnp.asarray(_twiddle(n, seed=4))
    x = jnp.asarray(np.random.default_rng(5).standard_normal((3, n)))
    w = jnp.asarray(np.random.default_rng(6).standard_normal((3, n)))
    # The transpose: grad_x <B x, w> = B^T w, applied by the opposite order of transposed blocks.
    g = jax.grad(lambda x: jnp.sum(butterfly_multiply(tw, x) * w))(x)
    bt_w = butterfly_multiply(jnp.swapaxes(tw, -1, -2), w, increasing_stride=False)
    assert_close(g, bt_w, jnp.float64)
    # Twiddles (and x) against central finite differences, reverse mode (what training uses).
    check_grads(jax.jit(butterfly_multiply), (tw, x), order=1, modes="rev")
    twc = jnp.asarray(_twiddle(n, complex=True, seed=7))
    check_grads(
        jax.jit(lambda t: jnp.sum(jnp.abs(butterfly_multiply(t, x)) ** 2)),
        (twc,),
        order=1,
        modes="rev",
    )


def test_errors(library_errors):
    tw8 = hadamard_twiddle(8)
    with pytest.raises(
        ValueError,
        match=r"`x` has length 12 along its last axis \(shape \(3, 12\)\).*power of two.*16",
    ):
        butterfly_multiply(tw8, jnp.zeros((3, 12)))
    with pytest.raises(ValueError, match=r"`x` has length 1 .*power of two >= 2"):
        butterfly_multiply(tw8, jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"`x` is a scalar"):
        butterfly_multiply(tw8, jnp.zeros(()))
    with pytest.raises(
        ValueError,
        match=r"`twiddle` has shape \(3, 4, 2, 2\); for x of shape \(16,\) \(n=16\) expected "
        r"\(log2 n, n/2, 2, 2\) = \(4, 8, 2, 2\)",
    ):
        butterfly_multiply(tw8, jnp.zeros(16))
    with pytest.raises(ValueError, match=r"`twiddle` has shape \(3, 4, 4\)"):
        butterfly_multiply(jnp.zeros((3, 4, 4)), jnp.zeros(8))
    with pytest.raises(TypeError, match=r"`x` must be a floating-point or complex.*int32"):
        butterfly_multiply(tw8, jnp.zeros(8, jnp.int32))
    with pytest.raises(TypeError, match=r"`twiddle` must be a floating-point or complex.*int32"):
        butterfly_multiply(jnp.zeros((3, 4, 2, 2), jnp.int32), jnp.zeros(8))
    with pytest.raises(ValueError, match=r"`twiddle` has shape \(3, 4, 3, 2\)"):
        butterfly_to_dense(jnp.zeros((3, 4, 3, 2)))
    # The n/2 axis must match log2 n: named as the twiddle's shape (no `x` was passed) and
    # refused before the identity is built (a leading 40 asked for a 2^40 x 2^40 matrix and
    # aborted the process).
    with pytest.raises(ValueError, match=r"`twiddle` has shape \(3, 3, 2, 2\); expected"):
        butterfly_to_dense(jnp.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"`twiddle` has shape \(40, 3, 2, 2\); expected"):
        butterfly_to_dense(jnp.zeros((40, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"`n`=12 is not a power of two >= 2.*n=16"):
        hadamard_twiddle(12)
    with pytest.raises(ValueError, match=r"`n`=1 is not a power of two >= 2.*n=2"):
        fft_twiddle(1)
    with pytest.raises(TypeError, match=r"`n` must be an int; got float"):
        bit_reversal_permutation(8.0)
    with pytest.raises(ValueError, match=r"`norm` must be one of.*'ortho'.*got 'unitary'"):
        fft_twiddle(8, norm="unitary")
    with pytest.raises(TypeError, match=r"`dtype` must be a complex dtype; got float32"):
        fft_twiddle(8, dtype=jnp.float32)
    with pytest.raises(TypeError, match=r"`dtype` must be a floating-point or complex dtype"):
        hadamard_twiddle(8, jnp.int32)
    # outside 64-bit mode these came back complex64 / float32 with only JAX's truncation warning
    assert not jax.config.jax_enable_x64
    with pytest.raises(TypeError, match=r"`dtype`=complex128 needs 64-bit mode"):
        fft_twiddle(8, dtype=jnp.complex128)
    with pytest.raises(TypeError, match=r"`dtype`=float64 needs 64-bit mode"):
        hadamard_twiddle(8, jnp.float64)


@pytest.mark.parametrize("bad,got", [([1.0, 2.0], r"list \[1.0, 2.0\]"), (None, "NoneType None")])
def test_non_array_input_is_named(bad, got, library_errors):
    # used to be jnp.result_type's "Cannot determine dtype of [1.0, 2.0]", naming nothing
    tw = hadamard_twiddle(2)
    expected = r"must be a jax.Array or NumPy array with a floating-point or complex dtype; got "
    with pytest.raises(TypeError, match=rf"`x` {expected}{got}"):
        butterfly_multiply(tw, bad)
    with pytest.raises(TypeError, match=rf"`twiddle` {expected}{got}"):
        butterfly_multiply(bad, jnp.ones(2))
    with pytest.raises(TypeError, match=rf"`twiddle` {expected}{got}"):
        butterfly_to_dense(bad)
    with pytest.raises(TypeError, match=rf"`x` {expected}{got}"):
        Butterfly(2, init="identity", key=jax.random.key(0))(bad)


@pytest.mark.parametrize("flag", ["False", 1, None, jnp.asarray(False)])
def test_flags_must_be_bools(flag, library_errors):
    # bool() took "False" as True and an array outside jit: the other factor order (or a
    # complex butterfly), silently
    tw, key = hadamard_twiddle(4), jax.random.key(0)
    match = r"`increasing_stride` must be a Python bool.*; got "
    with pytest.raises(TypeError, match=match):
        butterfly_multiply(tw, jnp.ones(4), increasing_stride=flag)
    with pytest.raises(TypeError, match=match):
        butterfly_to_dense(tw, increasing_stride=flag)
    with pytest.raises(TypeError, match=match):
        Butterfly(4, increasing_stride=flag, key=key)
    with pytest.raises(TypeError, match=r"`complex` must be a Python bool; got "):
        Butterfly(4, complex=flag, key=key)
    b = Butterfly(4, complex=np.bool_(True), increasing_stride=np.bool_(False), key=key)
    assert b.complex is True and b.increasing_stride is False
