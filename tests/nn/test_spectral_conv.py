"""SpectralConv: analytic derivatives, a float64 NumPy reference, resolution invariance, the
truncated-DFT path, transformations, gradients and errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax.test_util import check_grads

from spectrax.nn import (
    DenseWeight,
    SpectralConv,
    nyquist_weights,
    resolve_impl,
    spectral_conv,
)
from tests.helpers import assert_close


def _freqs(m, last):
    return np.arange(m) if last else np.concatenate([np.arange(m), np.arange(-m, 0)])


def _derivative_weight(modes, orders, channels):
    """Complex weight delta_oi prod_j (2 pi i k_j)^{n_j}: the derivative operator."""
    d = len(modes)
    mult = np.ones(())
    for j, (m, n) in enumerate(zip(modes, orders, strict=False)):
        k = 2 * np.pi * _freqs(m, j == d - 1)
        shape = [1] * d
        shape[j] = k.size
        mult = mult * ((1j * k) ** n).reshape(shape)
    eye = np.eye(channels).reshape((channels, channels) + (1,) * d)
    return eye * mult[None, None]


def _with_complex_weight(conv, w):
    w = np.asarray(w)
    pair = jnp.asarray(np.stack([w.real, w.imag]), conv.weight.weight.dtype)
    return eqx.tree_at(lambda c: c.weight.weight, conv, pair)


def _mesh(shape):
    return np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")


# Fields: (function, its derivative) with the derivative orders per axis.
CASES = {
    1: (
        (16,),
        (5,),
        lambda x: np.sin(2 * np.pi * 3 * x) + 0.5 * np.cos(2 * np.pi * 1 * x),
        (2,),
        lambda x: (
            -((2 * np.pi * 3) ** 2) * np.sin(2 * np.pi * 3 * x)
            - 0.5 * (2 * np.pi) ** 2 * np.cos(2 * np.pi * x)
        ),
    ),
    2: (
        (16, 12),
        (4, 4),
        lambda x, y: np.sin(2 * np.pi * (2 * x + y)) + np.cos(2 * np.pi * 3 * y),
        (1, 1),
        lambda x, y: -((2 * np.pi) ** 2) * 2 * np.sin(2 * np.pi * (2 * x + y)),
    ),
    3: (
        (8, 8, 10),
        (3, 3, 3),
        lambda x, y, z: np.sin(2 * np.pi * x) * np.cos(2 * np.pi * (2 * y - z)),
        (0, 1, 2),
        lambda x, y, z: (
            (2 * np.pi) ** 3 * 2 * np.sin(2 * np.pi * x) * np.sin(2 * np.pi * (2 * y - z))
        ),
    ),
}


@pytest.mark.parametrize("impl", ["rfft", "dft"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_derivative_weights_give_analytic_derivatives(x64, key, d, impl):
    shape, modes, f, orders, df = CASES[d]
    conv = SpectralConv(d, 1, 1, modes, impl=impl, dtype=jnp.float64, key=key)
    conv = _with_complex_weight(conv, _derivative_weight(modes, orders, 1))
    u = jnp.asarray(f(*_mesh(shape))[None])
    fine = tuple(2 * n + 1 for n in shape)
    same, finer = jax.jit(lambda v: (conv(v), conv(v, fine)))(u)
    assert_close(same, df(*_mesh(shape))[None], jnp.float64)
    # Same operator, finer output grid: the derivative evaluated on that grid.
    assert_close(finer, df(*_mesh(fine))[None], jnp.float64)


def _numpy_reference(x, w, modes, out_shape):
    """float64 NumPy, with the operator defined on the band-limited function the samples ``x``
    stand for, never on a grid's bins: that function (its trigonometric interpolant,
    ``scipy.signal.resample``, which reads an even grid's Nyquist coefficient as a cosine,
    half at +n/2 and half at -n/2) is sampled 3 times finer, where every kept frequency is an
    ordinary one; there rfftn / N, slice the kept block by hand (frequencies -m..m-1 on all but
    the last axis, 0..m-1 on the last), mix channels, place the result in the spectrum of a grid
    3 times finer than ``out_shape``, irfftn * N, and keep every third point."""
    d = len(modes)
    axes = tuple(range(x.ndim - d, x.ndim))
    for ax in axes:
        x = scipy.signal.resample(x, 3 * x.shape[ax], axis=ax)
    fine_in = x.shape[-d:]
    fine_out = tuple(3 * n for n in out_shape)
    x_hat = np.fft.rfftn(x, axes=axes) / np.prod(fine_in)
    out_hat = np.zeros(
        x.shape[: -d - 1] + (w.shape[0],) + fine_out[:-1] + (fine_out[-1] // 2 + 1,), complex
    )
    for idx in np.ndindex(*w.shape[2:]):
        ks = [
            i if (j == d - 1 or i < m) else i - 2 * m
            for j, (i, m) in enumerate(zip(idx, modes, strict=True))
        ]
        src = tuple(k % n for k, n in zip(ks, fine_in, strict=True))
        dst = tuple(k % n for k, n in zip(ks, fine_out, strict=True))
        coef = x_hat[(Ellipsis, slice(None)) + src]
        out_hat[(Ellipsis, slice(None)) + dst] += coef @ w[(slice(None), slice(None)) + idx].T
    y = np.fft.irfftn(out_hat, s=fine_out, axes=axes) * np.prod(fine_out)
    return y[(Ellipsis,) + (slice(None, None, 3),) * d]


@pytest.mark.parametrize("impl", ["rfft", "dft"])
@pytest.mark.parametrize(
    "shape, modes, out_shape",
    [
        ((17,), (6,), (17,)),
        ((12, 9), (3, 4), (20, 15)),
        ((6, 8, 7), (2, 3, 2), (6, 8, 7)),
        # the last axis keeps its Nyquist frequency (n = 8, m = 5) on input and output, on
        # input only (a finer output grid), on output only (9 -> 8 points)
        ((6, 8), (3, 5), (6, 8)),
        ((6, 8), (3, 5), (10, 16)),
        ((6, 9), (3, 5), (6, 8)),
        # leading axes keep their Nyquist frequency (2 m = n): on input and output, on input
        # only, on output only, and in 3-d on both leading axes together with the last one
        ((8, 6), (4, 3), (8, 6)),
        ((8, 6), (4, 3), (12, 10)),
        ((9, 7), (4, 3), (8, 6)),
        ((6, 4, 8), (3, 2, 5), (6, 4, 8)),
        ((6, 4, 8), (3, 2, 5), (12, 10, 9)),
    ],
)
def test_matches_float64_numpy_reference(x64, key, shape, modes, out_shape, impl):
    k1, k2 = jax.random.split(key)
    conv = SpectralConv(len(shape), 3, 2, modes, impl=impl, dtype=jnp.float64, key=k1)
    x = jax.random.normal(k2, (4, 3, *shape), jnp.float64)
    got, got_vmap = jax.jit(
        lambda v: (
            spectral_conv(v, conv.weight.complex(), modes, out_shape, impl=impl),
            jax.vmap(lambda u: conv(u, out_shape))(v),
        )
    )(x)
    want = _numpy_reference(np.asarray(x), np.asarray(conv.weight.complex()), modes, out_shape)
    assert_close(got, want, jnp.float64)
    assert_close(got_vmap, want, jnp.float64)


def test_resolution_change_keeps_the_operator(x64, key):
    """A band-limited field sampled at 24 and at 60 points gives the same output function."""
    conv = SpectralConv(2, 2, 3, (4, 5), dtype=jnp.float64, key=key)
    coef = np.random.default_rng(0).normal(size=(2, 3, 4, 2))

    def field(shape):
        x, y = _mesh(shape)
        return np.stack(
            [
                sum(
                    c[a, b, 0] * np.cos(2 * np.pi * (a * x + b * y))
                    + c[a, b, 1] * np.sin(2 * np.pi * (a * x + b * y))
                    for a in range(3)
                    for b in range(4)
                )
                for c in coef
            ]
        )

    coarse, fine = (24, 20), (60, 50)
    f = jax.jit(lambda u, out=None: conv(u, out), static_argnums=1)
    assert_close(f(jnp.asarray(field(coarse)), fine), f(jnp.asarray(field(fine))), jnp.float64)


@pytest.mark.parametrize("impl", ["rfft", "dft"])
def test_nyquist_mode_is_the_same_function_on_every_grid(x64, key, impl):
    """Keeping the last axis' Nyquist frequency (n = 8, m = 5): the output on a finer grid agrees
    with the output on the input grid at the shared points, and cos(8 pi x) given on 8 points
    (where it is the Nyquist mode) or on 16 (an ordinary mode) gives the same output."""
    conv = SpectralConv(1, 2, 3, 5, impl=impl, dtype=jnp.float64, key=key)
    x = jax.random.normal(key, (2, 8), jnp.float64)
    f = jax.jit(lambda u, out=None: conv(u, out), static_argnums=1)
    on_8, on_16, on_32 = f(x), f(x, (16,)), f(x, (32,))
    assert_close(on_16[:, ::2], on_8, jnp.float64)
    assert_close(on_32[:, ::4], on_8, jnp.float64)

    def cos8(n):
        return jnp.broadcast_to(jnp.cos(8 * jnp.pi * jnp.arange(n, dtype=jnp.float64) / n), (2, n))

    assert_close(f(cos8(8), (16,)), f(cos8(16)), jnp.float64)
    # the same in two dims (Nyquist on the last axis only matters)
    conv2 = SpectralConv(2, 1, 1, (2, 5), impl=impl, dtype=jnp.float64, key=key)
    x2 = jax.random.normal(key, (1, 6, 8), jnp.float64)
    g = jax.jit(lambda u, out=None: conv2(u, out), static_argnums=1)
    assert_close(g(x2, (12, 16))[:, ::2, ::2], g(x2), jnp.float64)


def band_limited_field(modes, channels, seed):
    """``shape -> (channels, *shape)`` samples of one fixed band-limited real function: a random
    combination of products of 1-d terms, ``cos(2 pi k x)`` for ``k = 0..m`` and
    ``sin(2 pi k x)`` for ``k = 1..m-1`` on every axis but the last (so ``cos(2 pi m x_0)
    g(x_1, ...)``, the Nyquist cosine of a grid of ``2m`` points, is in it, with a low band),
    and ``k < m`` on the last."""
    d = len(modes)
    tops = [m if j < d - 1 else m - 1 for j, m in enumerate(modes)]
    sizes = [(top + 1) + min(top, m - 1) for top, m in zip(tops, modes, strict=True)]
    coef = np.random.default_rng(seed).normal(size=(channels, *sizes))

    def field(shape):
        out = coef
        for top, m, n in zip(tops, modes, shape, strict=True):
            x = 2 * np.pi * np.arange(n) / n
            basis = [np.cos(k * x) for k in range(top + 1)]
            basis += [np.sin(k * x) for k in range(1, min(top + 1, m))]
            out = np.tensordot(out, np.stack(basis), axes=([1], [0]))
        return jnp.asarray(out)

    return field


@pytest.mark.parametrize("impl", ["rfft", "dft"])
@pytest.mark.parametrize("modes, coarse", [((4, 3), (8, 8)), ((3, 2, 3), (6, 4, 8))])
def test_leading_axis_nyquist_is_the_same_function_on_every_grid(x64, key, impl, modes, coarse):
    """A leading axis keeping its Nyquist frequency (2 m = n): the same function (with a
    cos(2 pi m x_0) g(x_1) part) given on n and on 2n points gives the same output function:
    equal on the fine grid (coarse input, fine output vs fine input) and at the shared points."""
    d = len(modes)
    fine = tuple(2 * n for n in coarse)
    conv = SpectralConv(d, 2, 3, modes, impl=impl, dtype=jnp.float64, key=key)
    u = band_limited_field(modes, 2, seed=1)
    f = jax.jit(lambda v, out=None: conv(v, out), static_argnums=1)
    on_coarse, coarse_to_fine, on_fine = f(u(coarse)), f(u(coarse), fine), f(u(fine))
    assert_close(coarse_to_fine, on_fine, jnp.float64)
    assert_close(on_fine[(slice(None),) + (slice(None, None, 2),) * d], on_coarse, jnp.float64)


@pytest.mark.parametrize(
    "shape, modes", [((64,), (9,)), ((32, 30), (8, 7)), ((10, 12, 9), (3, 4, 5))]
)
def test_dft_path_equals_rfft_path_float32(key, shape, modes):
    k1, k2 = jax.random.split(key)
    a = SpectralConv(len(shape), 4, 3, modes, key=k1)
    b = SpectralConv(len(shape), 4, 3, modes, impl="dft", key=k1)
    x = jax.random.normal(k2, (4, *shape))
    fwd = eqx.filter_jit(lambda c: c(x))
    assert_close(fwd(b), fwd(a), jnp.float32, rtol=1e-5)
    grad = eqx.filter_jit(jax.grad(lambda c: jnp.sum(c(x) ** 2)))
    ga, gb = grad(a), grad(b)
    assert_close(gb.weight.weight, ga.weight.weight, jnp.float32, rtol=1e-4)


@pytest.mark.parametrize(
    "spatial, modes, want",
    [
        ((1024,), (16,), "dft"),
        ((64,), (33,), "rfft"),  # every rfft mode kept
        ((85, 85), (12, 12), "dft"),
        ((32, 32), (16, 16), "rfft"),  # 2m = n on the first axis
        ((64, 64), (16, 16), "dft"),  # exactly half: 2m / n = 1/2, m / (n/2 + 1) < 1/2
        ((64, 64), (17, 8), "rfft"),
        ((64, 64, 40), (8, 8, 8), "dft"),
    ],
)
def test_auto_impl_rule(spatial, modes, want):
    assert resolve_impl("auto", spatial, modes) == want
    assert resolve_impl("rfft", spatial, modes) == "rfft"
    assert resolve_impl("dft", spatial, modes) == "dft"


def test_auto_impl_rule_errors(library_errors):
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        resolve_impl("auto", (64, 64), (8,))
    with pytest.raises(ValueError, match="impl"):
        resolve_impl("fastest", (64,), (8,))
    # a zero-size axis raised ZeroDivisionError; 9 modes on 8 points, 2.5 or 0 modes, a
    # fractional grid size were answered with a path
    with pytest.raises(ValueError, match=r"`spatial\[0\]` must be an integer >= 1; got 0"):
        resolve_impl("auto", (0, 8), (1, 2))
    with pytest.raises(ValueError, match=r"`modes\[0\]`=9 is too many for the `spatial` spatial"):
        resolve_impl("auto", (8, 8), (9, 2))
    with pytest.raises(ValueError, match=r"`modes\[0\]` must be an integer >= 1; got 2.5"):
        resolve_impl("dft", (8,), (2.5,))
    with pytest.raises(ValueError, match=r"`modes\[0\]` must be an integer >= 1; got 0"):
        resolve_impl("auto", (8,), (0,))
    with pytest.raises(ValueError, match=r"`spatial\[0\]` must be an integer >= 1; got 8.5"):
        resolve_impl("auto", (8.5,), (2,))
    with pytest.raises(ValueError, match=r"`modes` must be one int per spatial axis; got 4"):
        resolve_impl("auto", (8,), 4)


def test_auto_is_the_default_and_equals_both_paths(key):
    k1, k2 = jax.random.split(key)
    convs = {i: SpectralConv(2, 3, 2, (4, 5), impl=i, key=k1) for i in ("auto", "rfft", "dft")}
    assert SpectralConv(2, 3, 2, (4, 5), key=k1).impl == "auto"
    x = jax.random.normal(k2, (3, 24, 20))
    out = {i: eqx.filter_jit(lambda c: c(x))(c) for i, c in convs.items()}
    assert_close(out["auto"], out["rfft"], jnp.float32, rtol=1e-5)
    assert_close(out["auto"], out["dft"], jnp.float32, rtol=1e-5)


def test_jit_vmap_and_dtype(key):
    conv = SpectralConv(2, 2, 2, 3, key=key)
    x = jax.random.normal(key, (5, 2, 8, 8))
    single = jax.jit(lambda u: conv(u))
    loop = jnp.stack([single(u) for u in x])
    assert_close(jax.jit(jax.vmap(conv))(x), loop, jnp.float32)
    assert_close(conv(x[0]), loop[0], jnp.float32)
    assert loop.dtype == jnp.float32


@pytest.mark.parametrize("impl", ["rfft", "dft"])
def test_64_bit_weight_or_input_computes_in_float64(x64, key, impl):
    """A complex128 weight is not narrowed for a float32 input, nor a float64 input for a
    complex64 weight: both compute in and return float64, equal to the float64 reference on
    the (exactly widened) other argument."""
    k1, k2 = jax.random.split(key)
    modes, shape = (3, 4), (8, 10)
    conv64 = SpectralConv(2, 3, 2, modes, impl=impl, dtype=jnp.float64, key=k1)
    conv32 = SpectralConv(2, 3, 2, modes, impl=impl, key=k1)
    x64_ = jax.random.normal(k2, (3, *shape), jnp.float64)
    x32 = x64_.astype(jnp.float32)
    w64, w32 = conv64.weight.complex(), conv32.weight.complex()
    assert (w64.dtype, w32.dtype) == (jnp.complex128, jnp.complex64)
    for x, conv, w in ((x32, conv64, w64), (x64_, conv32, w32)):
        want = _numpy_reference(
            np.asarray(x, np.float64), np.asarray(w, np.complex128), modes, shape
        )
        for got in (
            conv(x),
            spectral_conv(x, w, modes, impl=impl),
            jax.jit(lambda v, w_: spectral_conv(v, w_, modes, impl=impl))(x, w),
        ):
            assert got.dtype == jnp.float64
            assert_close(got, want, jnp.float64)


@pytest.mark.parametrize("impl", ["rfft", "dft"])
def test_float32_and_half_precision_compute_in_float32(key, impl):
    """Half-precision inputs or parameters compute in float32 (no half-precision FFT) and the
    layer returns its parameters' dtype, as README states for the channel maps: bfloat16
    parameters returned float32, so a bfloat16 policy left the layer in float32."""
    x = jax.random.normal(key, (3, 8, 10)).astype(jnp.bfloat16)
    conv = SpectralConv(2, 3, 2, (3, 4), impl=impl, key=key)
    half = SpectralConv(2, 3, 2, (3, 4), impl=impl, dtype=jnp.bfloat16, key=key)
    got = conv(x)
    assert got.dtype == jnp.float32
    assert_close(got, conv(x.astype(jnp.float32)), jnp.float32)  # widened exactly
    assert half(x).dtype == half(x.astype(jnp.float32)).dtype == jnp.bfloat16
    # the float32 result rounded once
    want = spectral_conv(x, half.weight.complex(), (3, 4), impl=impl).astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(half(x), np.float32), np.asarray(want, np.float32))


@pytest.mark.parametrize("impl", ["rfft", "dft"])
def test_gradients_match_finite_differences(x64, key, impl):
    k1, k2 = jax.random.split(key)
    conv = SpectralConv(2, 2, 2, (2, 3), impl=impl, dtype=jnp.float64, key=k1)
    x = jax.random.normal(k2, (2, 6, 6), jnp.float64)
    w = conv.weight.weight
    check_grads(
        jax.jit(lambda w_, x_: spectral_conv(x_, jax.lax.complex(w_[0], w_[1]), (2, 3), impl=impl)),
        (w, x),
        order=1,
        modes=("rev",),
        atol=1e-6,
        rtol=1e-6,
    )


def test_dense_weight_layout_and_init(key):
    conv = SpectralConv(2, 8, 6, (5, 4), key=key)
    assert isinstance(conv.weight, DenseWeight)
    assert conv.weight.weight.shape == (2, 6, 8, 10, 4)
    assert conv.num_params == 2 * 6 * 8 * 10 * 4
    # E|W|^2 = 1 / C_in.
    np.testing.assert_allclose(
        float(jnp.mean(jnp.abs(conv.weight.complex()) ** 2)), 1 / 8, rtol=0.1
    )


def test_errors(key, library_errors):
    conv = SpectralConv(2, 3, 2, (4, 4), key=key)
    with pytest.raises(ValueError, match="too many"):
        conv(jnp.ones((3, 6, 16)))
    # the refusal of an output grid too coarse for the kept modes names the argument
    with pytest.raises(
        ValueError,
        match=r"`modes\[1\]`=4 is too many for the `out_shape` spatial shape \(16, 4\): axis 1 "
        r"of size 4 holds at most 3 modes",
    ):
        conv(jnp.ones((3, 16, 16)), (16, 4))
    with pytest.raises(ValueError, match="channels"):
        conv(jnp.ones((2, 16, 16)))
    with pytest.raises(ValueError, match="spatial axes"):
        conv(jnp.ones((3, 16)))
    with pytest.raises(TypeError, match="floating"):
        conv(jnp.ones((3, 16, 16), jnp.int32))
    with pytest.raises(TypeError, match="`weight`.*int32"):
        spectral_conv(jnp.ones((3, 16, 16)), jnp.ones((2, 3, 8, 4), jnp.int32), (4, 4))
    with pytest.raises(ValueError, match="modes"):
        SpectralConv(2, 3, 2, (4, 4, 4), key=key)
    with pytest.raises(ValueError, match="modes"):
        SpectralConv(1, 3, 2, 0, key=key)
    with pytest.raises(ValueError, match="factorization"):
        SpectralConv(1, 3, 2, 4, factorization="svd", key=key)
    with pytest.raises(ValueError, match="impl"):
        SpectralConv(1, 3, 2, 4, impl="fast", key=key)
    with pytest.raises(ValueError, match="impl"):
        spectral_conv(jnp.ones((3, 16)), conv.weight.complex()[:, :, 0], (4,), impl="fast")
    # the functional form checks what the module guarantees by construction
    w = conv.weight.complex()  # (2, 3, 8, 4) for modes (4, 4)
    x = jnp.ones((3, 16, 16))
    with pytest.raises(ValueError, match="`weight`"):
        spectral_conv(x, jnp.swapaxes(w, 2, 3), (4, 4))  # kept axes swapped
    with pytest.raises(ValueError, match="`weight`"):
        spectral_conv(jnp.ones((2, 16, 16)), w, (4, 4))  # C_in
    with pytest.raises(ValueError, match="`modes`"):
        spectral_conv(x, w, 4)
    with pytest.raises(ValueError, match="modes"):
        spectral_conv(x, w, (4, 0))
    # no modes at all was a bare IndexError (spectral_conv) or max() of nothing (resolve_impl); an
    # empty spatial axis of x was reported as resolve_impl's `spatial`
    with pytest.raises(ValueError, match=r"`modes` must give one mode count per spatial axis"):
        spectral_conv(x, w[:, :, 0, 0], ())
    with pytest.raises(ValueError, match=r"`modes` must give one mode count per spatial axis"):
        resolve_impl("auto", (), ())
    for bad in (None, np.array(4)):  # len() of them was a bare TypeError
        with pytest.raises(ValueError, match=r"`modes` must be one int per spatial axis; got"):
            spectral_conv(x, w, bad)
    with pytest.raises(ValueError, match=r"`x` has an empty spatial axis"):
        spectral_conv(jnp.ones((3, 0)), w[:, :, 0, :1], (1,))
    with pytest.raises(ValueError, match="`x`"):
        spectral_conv(jnp.ones((16, 16)), w, (4, 4))
    with pytest.raises(ValueError, match="out_shape"):
        conv(x, (32,))
    with pytest.raises(ValueError, match="out_shape"):
        conv(x, (32, 32, 32))
    with pytest.raises(ValueError, match="out_shape"):
        conv(x, (32, 16.5))
    with pytest.raises(ValueError, match="out_shape"):
        conv(x, (32, 0))


def _direct_conv(x, w, modes, out_shape):
    """The operator written out with explicit DFT sums in jnp (no FFT, no irfft), for an input
    grid on which no kept frequency is a Nyquist bin: ``c_k = mean(x e^{-2 pi i k.j/n})`` on the
    kept block, ``Y = W c`` per mode, and the real field ``sum_k a_k Re(Y_k e^{2 pi i k.j/n'})``
    on ``out_shape``, ``a_k = 1`` where the last-axis frequency is 0 (the imaginary part of that
    plane, the zero mode's included, does not reach a real output) and 2 elsewhere (the
    conjugate partner of the rfft half-spectrum), whether or not ``k`` is a Nyquist bin of
    ``out_shape``. Differentiable through einsums only: a reference for gradients too."""
    d = len(modes)
    c = x.astype(jnp.complex128)
    for a, (n, m) in enumerate(zip(x.shape[1:], modes, strict=True)):
        k = _freqs(m, a == d - 1)
        fwd = jnp.asarray(np.exp(-2j * np.pi * np.outer(k, np.arange(n)) / n) / n)
        c = jnp.moveaxis(jnp.tensordot(fwd, c, axes=((1,), (1 + a,))), 0, 1 + a)
    y = jnp.einsum("oi...,i...->o...", w, c)
    for a, (n, m) in enumerate(zip(out_shape, modes, strict=True)):
        k = _freqs(m, a == d - 1)
        weight = np.where(k == 0, 1.0, 2.0) if a == d - 1 else np.ones(k.size)
        inv = jnp.asarray(np.exp(2j * np.pi * np.outer(np.arange(n), k) / n) * weight)
        y = jnp.moveaxis(jnp.tensordot(inv, y, axes=((1,), (1 + a,))), 0, 1 + a)
    return y.real


@pytest.mark.parametrize("impl", ["rfft", "dft"])
@pytest.mark.parametrize(
    "shape, modes, out_shapes",
    [
        # output grids where kept frequencies are Nyquist bins (2m = n', m = n'/2 + 1), odd ones,
        # finer ones; the input grids keep no Nyquist bin
        ((9,), (5,), [(8,), (20,)]),
        ((10, 9), (3, 4), [(6, 6), (7, 7)]),
        ((6, 7, 9), (2, 3, 4), [(4, 6, 6)]),
    ],
)
def test_forward_and_gradients_match_direct_dft_sums(x64, key, impl, shape, modes, out_shapes):
    """float64, both paths, forward and reverse mode against :func:`_direct_conv`: a weight with
    a non-Hermitian zero-frequency plane (``W[k_1, 0] != conj W[-k_1, 0]``, complex zero mode)
    still gives the real field that keeps only the Hermitian part of that plane."""
    k1, k2, k3 = jax.random.split(key, 3)
    kept = (*(2 * m for m in modes[:-1]), modes[-1])
    wr, wi = jax.random.normal(k1, (2, 2, 3, *kept), jnp.float64)
    x = jax.random.normal(k2, (3, *shape), jnp.float64)
    cts = [jax.random.normal(k3, (2, *s), jnp.float64) for s in out_shapes]

    def conv(x_, wr_, wi_, out_shape):
        return spectral_conv(x_, jax.lax.complex(wr_, wi_), modes, out_shape, impl=impl)

    def ref(x_, wr_, wi_, out_shape):
        return _direct_conv(x_, jax.lax.complex(wr_, wi_), modes, out_shape)

    @jax.jit
    def both(x_, wr_, wi_):
        out = []
        for out_shape, ct in zip(out_shapes, cts, strict=True):
            for f in (conv, ref):
                loss = lambda *a, f=f, s=out_shape, c=ct: jnp.sum(f(*a, s) * c)  # noqa: E731
                out.append((f(x_, wr_, wi_, out_shape), jax.grad(loss, (0, 1, 2))(x_, wr_, wi_)))
        return out

    res = both(x, wr, wi)
    for j, out_shape in enumerate(out_shapes):
        (y, got), (y_ref, want) = res[2 * j], res[2 * j + 1]
        assert_close(y, y_ref, jnp.float64, what=f"{out_shape}")
        for name, g, h in zip(("x", "re W", "im W"), got, want, strict=True):
            assert_close(g, h, jnp.float64, what=f"{out_shape} d/d{name}")


def test_real_weight_is_refused(key, library_errors):
    """A real weight was taken as W + 0i without a word, though documented as complex: a zero
    phase multiplier whose gradient loses its imaginary part, so trained as such it could never
    learn a phase. It is refused, naming the argument, its dtype and the cast."""
    w = SpectralConv(1, 3, 2, 4, key=key).weight.complex()  # (2, 3, 4)
    x = jnp.ones((3, 16))
    for real in (w.real, np.asarray(w.real)):
        with pytest.raises(TypeError, match=r"`weight` must be a complex.*got dtype float32.*"):
            spectral_conv(x, real, (4,))
    with pytest.raises(TypeError, match=r"`weight` must be a jax.Array.*got list"):
        spectral_conv(x, w.real.tolist(), (4,))


def test_nyquist_weights_values_and_bad_arguments(library_errors):
    """The halved bin on each kind of axis, and nothing on odd grids or below the limit. Bad
    arguments were answered: m above the limit gave None (all ones, for modes the axis cannot
    hold), n = 0 gave [0.5], last="no" was taken as True."""
    np.testing.assert_array_equal(nyquist_weights(8, 5), [1, 1, 1, 1, 0.5])
    np.testing.assert_array_equal(nyquist_weights(8, 4, last=False), [1, 1, 1, 1, 0.5, 1, 1, 1])
    assert nyquist_weights(8, 4) is None and nyquist_weights(9, 5) is None
    assert nyquist_weights(8, 3, last=False) is None and nyquist_weights(9, 4, last=False) is None
    with pytest.raises(ValueError, match=r"`m`=6 is too many modes for an axis of `n`=8 points"):
        nyquist_weights(8, 6)
    with pytest.raises(ValueError, match=r"`m`=5 .* `n`=8 .*expected 1 <= m <= 4"):
        nyquist_weights(8, 5, last=False)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1; got 0"):
        nyquist_weights(0, 1)
    with pytest.raises(ValueError, match=r"`m` must be an integer >= 1; got 5.0"):
        nyquist_weights(8, 5.0)
    with pytest.raises(TypeError, match=r"`last` must be a Python bool"):
        nyquist_weights(8, 5, last="no")


@pytest.mark.parametrize("impl", ["rfft", "dft"])
def test_depthwise_weight_is_the_diagonal_dense_one(x64, key, impl):
    """A ``(C, *kept)`` weight (``separable=True``, neuraloperator's depthwise spectral conv)
    mixes no channels: equal to the dense ``(C, C, *kept)`` weight with it on the diagonal."""
    kw, kx = jax.random.split(key)
    w = jax.lax.complex(
        jax.random.normal(kw, (3, 8, 4), jnp.float64), jax.random.normal(kx, (3, 8, 4), jnp.float64)
    )
    dense = jnp.einsum("ij,ikl->ijkl", jnp.eye(3, dtype=w.dtype), w)
    x = jax.random.normal(kx, (2, 3, 12, 10), jnp.float64)
    got = spectral_conv(x, w, (4, 4), (16, 10), impl=impl)
    assert_close(got, spectral_conv(x, dense, (4, 4), (16, 10), impl=impl), rtol=1e-13)


def test_separable_layer(key, library_errors):
    """``separable=True`` stores ``(C, *kept)`` (dense: 2 C prod(kept) real numbers; factorised
    too), initialised with ``E|W|^2 = 1`` (each output mode is one input mode times W), and
    needs as many output channels as input ones."""
    conv = SpectralConv(2, 6, 6, (5, 4), separable=True, key=key)
    assert conv.weight.complex().shape == (6, 10, 4)
    assert conv.num_params == 2 * 6 * 10 * 4
    np.testing.assert_allclose(float(jnp.mean(jnp.abs(conv.weight.complex()) ** 2)), 1.0, rtol=0.15)
    assert conv(jnp.ones((6, 16, 12))).shape == (6, 16, 12)
    tucker = SpectralConv(2, 6, 6, (5, 4), separable=True, factorization="tucker", key=key)
    assert tucker.weight.complex().shape == (6, 10, 4) and tucker.num_params < conv.num_params
    with pytest.raises(ValueError, match=r"`separable=True` needs `out_channels` = `in_channels`"):
        SpectralConv(2, 6, 4, (5, 4), separable=True, key=key)
    with pytest.raises(ValueError, match=r"`weight` must be \(C_out, C_in, \*kept modes\) .* or"):
        spectral_conv(jnp.ones((3, 8)), jnp.ones((2, 4), jnp.complex64), (4,))


@pytest.mark.parametrize("impl", ["rfft", "dft", "auto"])
def test_empty_batch_with_a_dense_weight(impl):
    """An empty batch gives an empty output for every weight layout: the dense (channel-mixing)
    one failed with "ZeroDivisionError: integer modulo by zero" (a -1 in a reshape)."""
    weight = jnp.ones((3, 2, 4), jnp.complex64)  # (C_out, C_in, kept)
    y = spectral_conv(jnp.ones((0, 2, 8)), weight, (4,), impl=impl)
    assert y.shape == (0, 3, 8)
    depthwise = spectral_conv(jnp.ones((0, 2, 8)), weight[0], (4,), impl=impl)
    assert depthwise.shape == (0, 2, 8)


def test_a_list_input_is_refused_as_not_an_array(key, library_errors):
    """A nested list was read as shape () and refused for its number of axes."""
    layer = SpectralConv(1, 2, 2, 3, key=key)
    with pytest.raises(TypeError, match=r"`x` must be a jax.Array or NumPy array.*got list"):
        layer([[0.0] * 8] * 2)
    assert layer(np.ones((2, 8), np.float32)).shape == (2, 8)
