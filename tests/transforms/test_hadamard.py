"""Walsh–Hadamard, DCT and DST: the explicit matrices, inverses, Parseval, transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.linalg

from spectrax.transforms import dct, dst, idct, idst, walsh_hadamard
from tests.helpers import assert_close


def _along(matrix, x, axis):
    """Apply ``matrix`` (out x in) along ``axis`` of ``x`` in float64."""
    return np.moveaxis(np.tensordot(matrix, np.moveaxis(x, axis, 0), axes=(1, 0)), 0, axis)


def _dct2_matrix(n):
    """Orthonormal DCT-II from its definition (Ahmed, Natarajan & Rao, 1974)."""
    k, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * j + 1) / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def _dst2_matrix(n):
    """Orthonormal DST-II from its definition (row n-1 scaled by 1/sqrt 2)."""
    k, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    s = np.sqrt(2.0 / n) * np.sin(np.pi * (k + 1) * (2 * j + 1) / (2 * n))
    s[-1] /= np.sqrt(2.0)
    return s


def _normal(shape, seed=0):
    """float32 test data (NumPy's generator: no compilation per shape)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# ---------------------------------------------------------------- Walsh–Hadamard


@pytest.mark.parametrize("n", [1, 2, 8, 64])
@pytest.mark.parametrize("normalize", [True, False])
def test_wht_equals_sylvester_matrix(x64, n, normalize):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, 2, n))
    h = scipy.linalg.hadamard(n).astype(np.float64)  # Sylvester order
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    assert np.array_equal(h, (-1.0) ** np.bitwise_count(i & j))  # H[i, j] = (-1)^popcount(i&j)
    if normalize:
        h = h / np.sqrt(n)
    got = walsh_hadamard(jnp.asarray(x), normalize=normalize)
    assert got.dtype == jnp.float64
    assert_close(got, x @ h, jnp.float64)
    # A middle axis, with a negative and a positive index.
    xt = np.swapaxes(x, 1, 2)
    for axis in (1, -2):
        got = walsh_hadamard(jnp.asarray(xt), axis=axis, normalize=normalize)
        assert_close(got, _along(h.T, xt, 1), jnp.float64)


def test_wht_self_inverse_and_parseval():
    x = _normal((4, 5, 128))
    y = walsh_hadamard(x)
    assert y.dtype == jnp.float32 and y.shape == x.shape
    assert_close(walsh_hadamard(y), x, jnp.float32)
    assert_close(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), jnp.float32)
    # Unnormalised: H H = n I.
    twice = walsh_hadamard(walsh_hadamard(x, normalize=False), normalize=False)
    assert_close(twice, 128.0 * x, jnp.float32)


def test_wht_complex_is_linear_over_real_and_imag():
    re, im = _normal((3, 32), seed=1), _normal((3, 32), seed=2)
    got = walsh_hadamard(jnp.asarray(np.asarray(re) + 1j * np.asarray(im), jnp.complex64), axis=1)
    assert got.dtype == jnp.complex64
    expected = np.asarray(walsh_hadamard(re)) + 1j * np.asarray(walsh_hadamard(im))
    assert_close(got, expected, jnp.complex64)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_wht_half_precision_computes_in_float32(dtype):
    x = _normal((2, 256)).astype(dtype)
    got = walsh_hadamard(x)
    assert got.dtype == dtype
    expected = walsh_hadamard(x.astype(jnp.float32)).astype(dtype)  # one rounding at the end
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_wht_jit_vmap_grad():
    x, w = _normal((6, 16), seed=1), _normal((6, 16), seed=2)
    assert_close(jax.jit(walsh_hadamard)(x), walsh_hadamard(x), jnp.float32)
    looped = jnp.stack([walsh_hadamard(r) for r in x])
    assert_close(jax.vmap(walsh_hadamard)(x), looped, jnp.float32)
    # H is symmetric: the gradient of <wht(x), w> is wht(w).
    g = jax.grad(lambda x: jnp.sum(walsh_hadamard(x) * w))(x)
    assert_close(g, walsh_hadamard(w), jnp.float32)


def test_wht_errors(library_errors):
    with pytest.raises(
        ValueError, match=r"`x` has length 12 along axis -1 \(shape \(3, 12\)\).*power of two.*16"
    ):
        walsh_hadamard(jnp.zeros((3, 12)))
    with pytest.raises(ValueError, match=r"`x` has length 0 along axis 0.*power of two"):
        walsh_hadamard(jnp.zeros((0, 4)), axis=0)
    with pytest.raises(TypeError, match=r"`x` must be a floating-point or complex array.*int32"):
        walsh_hadamard(jnp.zeros(8, jnp.int32))
    with pytest.raises(ValueError, match=r"`axis`=2 is out of range for `x` of shape \(4, 8\)"):
        walsh_hadamard(jnp.zeros((4, 8)), axis=2)
    with pytest.raises(ValueError, match=r"`x` is a scalar"):
        walsh_hadamard(jnp.zeros(()))
    with pytest.raises(TypeError, match=r"`axis` must be an int; got float"):
        walsh_hadamard(jnp.zeros(8), axis=1.0)


# ---------------------------------------------------------------- DCT / DST


@pytest.mark.parametrize("n", [1, 5, 16])
def test_dct_and_dst_equal_their_matrices(x64, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, n, 2))
    c, s = _dct2_matrix(n), _dst2_matrix(n)
    for axis in (1, -2):
        assert_close(dct(jnp.asarray(x), axis=axis), _along(c, x, 1), jnp.float64)
        assert_close(idct(jnp.asarray(x), axis=axis), _along(c.T, x, 1), jnp.float64)
        assert_close(dst(jnp.asarray(x), axis=axis), _along(s, x, 1), jnp.float64)
        assert_close(idst(jnp.asarray(x), axis=axis), _along(s.T, x, 1), jnp.float64)
    # The same convention as SciPy's norm="ortho" type II.
    assert_close(
        dst(jnp.asarray(x), axis=1), scipy.fft.dst(x, 2, axis=1, norm="ortho"), jnp.float64
    )


def test_dct_family_equals_scipy_at_a_non_power_of_two_size(x64):
    """All four transforms against scipy.fft (type 2, norm="ortho", and its inverse, type 3)
    at n = 100 in float64 (measured <= 4e-16), and DCT/DST at odd n = 17 in float32
    (measured <= 2e-7)."""
    rng = np.random.default_rng(3)
    pairs = ((dct, scipy.fft.dct), (idct, scipy.fft.idct), (dst, scipy.fft.dst))
    x = rng.standard_normal((2, 100))
    for ours, ref in pairs + ((idst, scipy.fft.idst),):
        expected = ref(x, 2, axis=-1, norm="ortho")
        assert_close(ours(jnp.asarray(x)), expected, jnp.float64, what=ours.__name__)
    x = rng.standard_normal((2, 17))
    for ours, ref in (pairs[0], pairs[2]):
        got = ours(jnp.asarray(x, jnp.float32))
        assert got.dtype == jnp.float32
        assert_close(got, ref(x, 2, axis=-1, norm="ortho"), jnp.float32, what=ours.__name__)


def test_dct_of_a_cosine_mode_is_one_coefficient(x64):
    n, k0 = 24, 7
    j = np.arange(n)
    x = np.cos(np.pi * k0 * (2 * j + 1) / (2 * n))
    expected = np.zeros(n)
    expected[k0] = np.sqrt(n / 2.0)
    assert_close(dct(jnp.asarray(x)), expected, jnp.float64)


@pytest.mark.parametrize("pair", [(dct, idct), (dst, idst)])
def test_round_trip_and_parseval(pair):
    fwd, inv = pair
    x = _normal((4, 3, 50))
    y = fwd(x)
    assert y.dtype == jnp.float32 and y.shape == x.shape
    assert_close(inv(y), x, jnp.float32)
    assert_close(fwd(inv(x)), x, jnp.float32)
    assert_close(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), jnp.float32)
    x0 = jnp.swapaxes(x, 0, 2)
    assert_close(inv(fwd(x0, axis=0), axis=0), x0, jnp.float32)


def test_dct_jit_vmap_grad_and_half_precision():
    x, w = _normal((5, 32), seed=1), _normal((5, 32), seed=2)
    assert_close(jax.jit(dct)(x), dct(x), jnp.float32)
    assert_close(jax.vmap(dct)(x), jnp.stack([dct(r) for r in x]), jnp.float32)
    # Orthogonal: the transpose is the inverse, so grad <dct(x), w> = idct(w).
    assert_close(jax.grad(lambda x: jnp.sum(dct(x) * w))(x), idct(w), jnp.float32)
    assert_close(jax.grad(lambda x: jnp.sum(dst(x) * w))(x), idst(w), jnp.float32)
    xb = x.astype(jnp.bfloat16)
    for f in (dct, idst):
        got = f(xb)
        assert got.dtype == jnp.bfloat16
        assert_close(got, f(xb.astype(jnp.float32)), jnp.bfloat16)


def test_dct_errors(library_errors):
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*int32"):
        dct(jnp.zeros(8, jnp.int32))
    with pytest.raises(TypeError, match=r"`y` must be a real floating-point array.*complex64"):
        idct(jnp.zeros(8, jnp.complex64))
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array"):
        dst(jnp.zeros(8, jnp.complex64))
    with pytest.raises(ValueError, match=r"`axis`=-3 is out of range for `x` of shape \(2, 8\)"):
        dct(jnp.zeros((2, 8)), axis=-3)
    with pytest.raises(ValueError, match=r"`y` has length 0 along axis 1.*expected length >= 1"):
        idst(jnp.zeros((2, 0)), axis=1)


def test_wht_normalize_must_be_a_bool(library_errors):
    # an array used to fail inside jax.jit as an unhashable static argument, naming nothing
    with pytest.raises(TypeError, match=r"`normalize` must be a Python bool.*got ArrayImpl"):
        walsh_hadamard(jnp.ones(4), normalize=jnp.asarray(True))
    assert_close(
        walsh_hadamard(jnp.ones(4), normalize=np.bool_(False)), jnp.asarray([4.0, 0, 0, 0])
    )


@pytest.mark.parametrize(
    "f,name", [(walsh_hadamard, "x"), (dct, "x"), (idct, "y"), (dst, "x"), (idst, "y")]
)
def test_non_array_input_is_named(f, name, library_errors):
    # a list failed in jnp.result_type ("Cannot determine dtype"), a Python float or None at
    # `.ndim` (AttributeError), a string as "data type not understood": none named the argument
    for bad, got in [([1.0, 2.0], r"list \[1.0, 2.0\]"), (1.0, "float 1.0"), (None, "NoneType")]:
        with pytest.raises(TypeError, match=rf"`{name}` must be a jax.Array or NumPy array.*{got}"):
            f(bad)
    with pytest.raises(TypeError, match=rf"`{name}` must be a .*array.*got dtype <U4"):
        f(np.array(["abcd"]))
