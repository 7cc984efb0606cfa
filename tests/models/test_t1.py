"""Transform-Once: a float64 NumPy reference of the frequency-domain network, frequency
selection, per-mode spectral standardisation, per-mode and variance-preserving inits,
resolution change, errors, smoke training vs FNO."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import T1Layer, TransformOnce, select_modes, spectral_scale, white_noise_gain
from spectrax.nn._spectral_conv import kept_shape
from tests.helpers import assert_close
from tests.models.smoke import loss_decreases
from tests.nn.test_spectral_conv import band_limited_field


def _c(p):
    return np.asarray(p[0]) + 1j * np.asarray(p[1])


def _reference(model, x, out_n):
    """float64 NumPy T1 in 1d: rfft/n, keep m modes, encoder, residual layers, decoder, irfft*n."""
    n, m = x.shape[-1], model.modes[0]
    c = np.fft.rfft(x, axis=-1)[:, :m] / n
    act = lambda v: np.asarray(jax.nn.gelu(jnp.asarray(v)))  # noqa: E731
    z = np.einsum("wim,im->wm", _c(model.encoder), c)
    for layer in model.layers:
        v = np.einsum(
            "mn,on->om", _c(layer.mode_weight), np.einsum("oim,im->om", _c(layer.channel_weight), z)
        ) + _c(layer.bias)
        z = z + act(v.real) + 1j * act(v.imag)
    y = np.einsum("owm,wm->om", _c(model.decoder), z)
    full = np.zeros((y.shape[0], out_n // 2 + 1), complex)
    full[:, :m] = y
    return np.fft.irfft(full, n=out_n, axis=-1) * out_n


def test_matches_float64_numpy_reference_and_resolution(x64, key):
    model = TransformOnce(1, 2, 3, 4, 5, 2, dtype=jnp.float64, key=key)
    model = eqx.tree_at(
        lambda t: [layer.bias for layer in t.layers],
        model,
        [0.3 * jnp.ones_like(layer.bias) for layer in model.layers],
    )
    x = jax.random.normal(key, (2, 16), jnp.float64)
    f = jax.jit(lambda u: model(u))
    assert_close(f(x), _reference(model, np.asarray(x), 16), jnp.float64)
    fine = jax.jit(lambda u: model(u, (40,)))(x)
    assert_close(fine, _reference(model, np.asarray(x), 40), jnp.float64)


def test_nyquist_mode_and_out_shape(x64, key, library_errors):
    """With the last axis' Nyquist mode kept (n = 8, m = 5) the output on a finer grid agrees
    with the input-grid output at the shared points; a bad out_shape is named."""
    model = TransformOnce(1, 1, 2, 4, 5, 2, dtype=jnp.float64, key=key)
    x = jax.random.normal(key, (1, 8), jnp.float64)
    f = jax.jit(lambda u, out=None: model(u, out), static_argnums=1)
    assert_close(f(x, (16,))[:, ::2], f(x), jnp.float64)
    with pytest.raises(ValueError, match="out_shape"):
        model(x, (16, 16))
    # an output grid too coarse for the kept modes names the argument, for each transform
    with pytest.raises(ValueError, match=r"`modes\[0\]`=5 is too many for the `out_shape` spatial"):
        model(x, (6,))
    dct_model = TransformOnce(1, 1, 2, 4, 5, 2, transform="dct", dtype=jnp.float64, key=key)
    with pytest.raises(ValueError, match=r"`modes\[0\]`=5 is too many for the `out_shape` spatial"):
        dct_model(x, (4,))


@pytest.mark.parametrize("modes, coarse", [((4, 3), (8, 8)), ((3, 2, 3), (6, 4, 8))])
def test_leading_axis_nyquist_is_the_same_function_on_every_grid(x64, key, modes, coarse):
    """A leading axis keeping its Nyquist frequency (2 m = n): the same function (with a
    cos(2 pi m x_0) g(x_1) part) given on n and on 2n points gives the same output function."""
    d = len(modes)
    fine = tuple(2 * n for n in coarse)
    model = TransformOnce(d, 2, 3, 4, modes, 2, dtype=jnp.float64, key=key)
    u = band_limited_field(modes, 2, seed=2)
    f = jax.jit(lambda v, out=None: model(v, out), static_argnums=1)
    on_coarse, coarse_to_fine, on_fine = f(u(coarse)), f(u(coarse), fine), f(u(fine))
    assert_close(coarse_to_fine, on_fine, jnp.float64)
    assert_close(on_fine[(slice(None),) + (slice(None, None, 2),) * d], on_coarse, jnp.float64)


def test_64_bit_parameters_or_input_compute_in_float64(x64, key):
    """float64 parameters are not narrowed for a float32 input (nor a float64 input for float32
    parameters): float64 out, equal to the all-float64 model on the exactly widened argument."""
    x = jax.random.normal(key, (2, 16), jnp.float64).astype(jnp.float32)
    call = eqx.filter_jit(lambda m, u: m(u))  # compiled, not dispatched op by op
    m64 = TransformOnce(1, 2, 3, 4, 5, 2, dtype=jnp.float64, key=key)
    got = call(m64, x)
    assert got.dtype == jnp.float64
    assert_close(got, call(m64, x.astype(jnp.float64)), jnp.float64)
    m32 = TransformOnce(1, 2, 3, 4, 5, 2, key=key)
    up = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, m32)
    got = call(m32, x.astype(jnp.float64))
    assert got.dtype == jnp.float64
    assert_close(got, _reference(up, np.asarray(x, np.float64), 16), jnp.float64)
    assert call(m32, x).dtype == jnp.float32


def test_select_modes_by_energy():
    n = 64
    x = np.arange(n) / n
    y = x[:, None]
    u = (np.sin(2 * np.pi * 2 * x)[:, None] + 0.1 * np.cos(2 * np.pi * 5 * y.T)).reshape(1, 1, n, n)
    # Power 0.5 at mode 2 (axis 0), 0.005 at mode 5 (axis 1): 99% needs |k| < 3, all |k| < 6.
    assert select_modes(u, 2, 0.99) == (3, 3)
    assert select_modes(u, 2, 1.0) == (6, 6)
    with pytest.raises(ValueError, match="energy"):
        select_modes(u, 2, 1.5)


@pytest.mark.parametrize("energy", ["0.9", True, None])
def test_select_modes_names_a_non_number_energy(energy, library_errors):
    # "0.9" failed in the comparison with a bare TypeError; True passed as energy 1.0
    with pytest.raises(TypeError, match="`energy` must be a Python float; got"):
        select_modes(np.ones((1, 1, 8)), 1, energy)


def test_spectral_scale_closed_form():
    """Fields with known Fourier amplitudes: the RMS of each kept coefficient (norm="forward")
    in the FNO layout, both signs on the first axis, per channel, floored."""
    n = 16
    x = np.arange(n) / n
    rng = np.random.default_rng(3)
    amp = rng.uniform(0.5, 2.0, size=(8, 1, 1))  # per-sample amplitude, E[amp^2] known
    # channel 0: amp * cos(2 pi (2 x + 1 y)): |c| = amp/2 at k = (2, 1) and at (-2, -1) (not
    # in the rfft half-plane), so the kept block holds amp/2 at (2, 1) and nothing else.
    # channel 1: 3 (constant): |c_0| = 3.
    f0 = amp * np.cos(2 * np.pi * (2 * x[:, None] + x[None, :]))
    f1 = np.broadcast_to(3.0, (8, n, n))
    u = np.stack([f0, f1], axis=1)
    scale = spectral_scale(u, (3, 2), floor=1e-3)
    assert scale.shape == (2, 6, 2)
    want0 = np.full((6, 2), 1e-3 * np.sqrt(np.mean(amp**2)) / 2)
    want0[2, 1] = np.sqrt(np.mean(amp**2)) / 2
    want1 = np.full((6, 2), 3e-3)
    want1[0, 0] = 3.0
    np.testing.assert_allclose(scale, np.stack([want0, want1]), rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="floor"):
        spectral_scale(u, (3, 2), floor=0.0)
    with pytest.raises(ValueError, match="too many"):
        spectral_scale(u, (9, 2))


def test_spectral_scale_is_the_same_on_every_grid():
    """The same fields given on an (8, 6) grid, where the kept frequencies -4 (axis 0) and 3
    (axis 1) are Nyquist, and on a (16, 12) grid, where they are not, give the same scale."""
    rng = np.random.default_rng(4)
    amp = rng.normal(size=(5, 2, 5, 1, 1))

    def fields(shape):
        x, y = np.meshgrid(*[2 * np.pi * np.arange(n) / n for n in shape], indexing="ij")
        terms = [
            np.cos(4 * x) * (1 + np.cos(y)),
            np.cos(4 * x) * np.cos(3 * y),
            np.cos(3 * y) * np.sin(x),
            np.sin(x + 2 * y),
            np.cos(3 * x - y),
        ]
        return np.sum(amp * np.stack(terms)[None, None], axis=2)

    coarse = spectral_scale(fields((8, 6)), (4, 4))
    np.testing.assert_allclose(coarse, spectral_scale(fields((16, 12)), (4, 4)), rtol=1e-6)
    # cos(4 x)(1 + cos y): half the amplitude at frequency -4 of axis 0
    np.testing.assert_allclose(coarse[:, 4, 0], np.sqrt(np.mean(amp[:, :, 0, 0, 0] ** 2, 0)) / 2)


def test_scales_equal_folded_weights(x64, key):
    """Standardising the spectrum is a fixed per-mode reparametrisation: the same function as
    the unscaled model with encoder columns divided by in_scale and decoder rows multiplied by
    out_scale; the scales are static (not parameters) and jit/grad go through."""
    rng = np.random.default_rng(0)
    s_in = rng.uniform(0.1, 2.0, size=(2, 5))
    s_out = rng.uniform(0.1, 2.0, size=(3, 5))
    scaled = TransformOnce(
        1, 2, 3, 4, 5, 2, in_scale=s_in, out_scale=s_out, dtype=jnp.float64, key=key
    )
    plain = TransformOnce(1, 2, 3, 4, 5, 2, dtype=jnp.float64, key=key)
    folded = eqx.tree_at(
        lambda t: (t.encoder, t.decoder),
        plain,
        (plain.encoder / s_in[None, None], plain.decoder * s_out[None, :, None]),
    )
    x = jax.random.normal(key, (2, 16), jnp.float64)

    @eqx.filter_jit  # one compiled program (eager, each op compiles on its own)
    def run(scaled, folded, x):
        return scaled(x), folded(x), eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(scaled)

    y, y_folded, grads = run(scaled, folded, x)
    assert_close(y, y_folded, jnp.float64)
    params = eqx.filter(scaled, eqx.is_inexact_array)
    assert len(jax.tree.leaves(params)) == len(
        jax.tree.leaves(eqx.filter(plain, eqx.is_inexact_array))
    )
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_scale_errors(key):
    with pytest.raises(ValueError, match="in_scale"):
        TransformOnce(1, 2, 3, 4, 5, 1, in_scale=np.ones((2, 4)), key=key)
    with pytest.raises(ValueError, match="out_scale.*> 0"):
        TransformOnce(1, 2, 3, 4, 5, 1, out_scale=np.zeros((3, 5)), key=key)


def test_per_mode_init_keeps_band_limited_variance():
    """For a band-limited input with unit-variance coefficients, each complex map keeps
    E|c|^2, so the output field's variance matches the input's (to sampling error)."""
    key = jax.random.key(5)
    model = TransformOnce(1, 16, 16, 16, 8, 0, activation="identity", key=key)
    rng = np.random.default_rng(0)
    spec = np.zeros((64, 16, 33), complex)
    spec[..., 1:8] = rng.normal(size=(64, 16, 7)) + 1j * rng.normal(size=(64, 16, 7))
    x = jnp.asarray(np.fft.irfft(spec, n=64, axis=-1), jnp.float32)
    out = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(model, x)
    ratio = float(jnp.var(out) / jnp.var(x))
    assert 0.7 < ratio < 1.4, ratio


def test_init_variance_of_the_whole_model():
    """What the docstring says of the model at init, measured on unit white noise (n = 64, 8
    kept modes, 256 models; weight sampling dominates, standard error about 3%): with no
    layers the variance is (1/2 + 14)/64 (frequency 0 keeps half its power); one residual
    layer with the identity activation doubles it. The docstring used to call the model
    variance preserving."""
    n_models = 256
    models = eqx.filter_vmap(
        lambda k: TransformOnce(1, 1, 1, 8, 8, 1, activation="identity", key=k)
    )(jax.random.split(jax.random.key(11), n_models))
    bare = eqx.tree_at(lambda m: m.layers, models, ())
    x = jax.random.normal(jax.random.key(12), (n_models, 16, 1, 64))
    run = eqx.filter_jit(eqx.filter_vmap(lambda m, u: jnp.mean(jax.vmap(m)(u) ** 2)))
    v0, v1 = float(jnp.mean(run(bare, x))), float(jnp.mean(run(models, x)))
    assert abs(v0 / (14.5 / 64) - 1) < 0.12, v0
    assert abs(v1 / v0 - 2) < 0.2, v1 / v0


def test_layer_init_keeps_per_mode_power():
    """The T1 layers' complex maps start with E|W|^2 = 1 / fan_in (init="per_mode"): fan-in
    ``width`` for the channel map, the number of kept modes for the mode map; real and
    imaginary parts each 1 / (2 fan_in), mean zero. Measured over 128 models (more than 10^4
    entries per map, standard error <= 1%), so a std off by sqrt(2) (a factor 2 here) fails
    by far. Functionally, the layer branch M (W z) (identity activation, zero bias) keeps
    E|z|^2 of a unit complex Gaussian z."""
    width, modes, n_models = 8, 16, 128
    models = eqx.filter_vmap(
        lambda k: TransformOnce(1, 4, 4, width, modes, 2, activation="identity", key=k)
    )(jax.random.split(jax.random.key(7), n_models))

    def check(pair, fan_in, what):
        pair = np.asarray(pair, np.float64)  # (models, 2, ...)
        re, im = pair[:, 0], pair[:, 1]
        assert abs(np.mean(re**2 + im**2) * fan_in - 1) < 0.03, (what, np.mean(re**2 + im**2))
        for part in (re, im):
            assert abs(np.mean(part**2) * 2 * fan_in - 1) < 0.04, what
            assert abs(np.mean(part)) * np.sqrt(2 * fan_in) < 0.03, what

    check(models.encoder, 4, "encoder")
    check(models.decoder, width, "decoder")
    for i, layer in enumerate(models.layers):
        check(layer.channel_weight, width, f"layer {i} channel")
        check(layer.mode_weight, modes, f"layer {i} mode")
    # the two layers are independent draws
    a, b = (np.asarray(layer.channel_weight).ravel() for layer in models.layers)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02

    z = jax.random.normal(jax.random.key(8), (n_models, 16, 2, width, modes))
    z = jax.lax.complex(z[:, :, 0], z[:, :, 1]) / 2**0.5  # E|z|^2 = 1

    def branch(layer, zs):
        return jax.vmap(lambda v: layer(v, lambda t: t) - v)(zs)

    out = eqx.filter_jit(eqx.filter_vmap(branch))(models.layers[0], z)
    ratio = float(jnp.mean(jnp.abs(out) ** 2) / jnp.mean(jnp.abs(z) ** 2))
    assert abs(ratio - 1) < 0.05, ratio


def test_errors(key, library_errors):
    model = eqx.filter_eval_shape(TransformOnce, 2, 1, 1, 4, (3, 3), 1, key=key)

    def shape(*s):
        return jax.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct(s, jnp.float32))

    with pytest.raises(ValueError, match="too many"):
        shape(1, 4, 16)
    with pytest.raises(ValueError, match="channels"):
        shape(2, 16, 16)
    with pytest.raises(ValueError, match="spatial axes"):
        shape(1, 16)


def test_t1_loss_decreases():
    t1 = TransformOnce(1, 1, 1, 8, 6, 2, key=jax.random.key(1))
    first, last = loss_decreases(t1, (32,), steps=20)
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize(
    "resolution, modes", [((8,), (5,)), ((7,), (4,)), ((6, 8), (3, 5)), ((4, 4, 6), (2, 1, 4))]
)
def test_white_noise_gain_is_the_expectation_over_the_models_linear_map(x64, resolution, modes):
    """The closed form against brute force on the model's own transforms: with one channel,
    encoder 1 and a decoder holding one unit (or imaginary unit) coefficient at kept mode k,
    the model is a real N x N matrix A_k; for white noise of unit variance and independent
    circular weights of unit power, E Var(y) = sum_k (|A_k|_F^2 + |A_ik|_F^2) / 2 / N
    (cross terms have zero mean). Covers odd and even grids and a kept Nyquist frequency on the
    last and on a leading axis (the halving on input, the doubling on output)."""
    d = len(resolution)
    n = int(np.prod(resolution))
    model = TransformOnce(d, 1, 1, 1, modes, 0, dtype=jnp.float64, key=jax.random.key(0))
    m = int(np.prod(kept_shape(modes)))
    one = jnp.zeros((2, 1, 1, m), jnp.float64).at[0].set(1.0)
    model = eqx.tree_at(lambda t: t.encoder, model, one)
    eye = jnp.eye(n, dtype=jnp.float64).reshape(n, 1, *resolution)

    def frob2(decoder):
        a = jax.vmap(eqx.tree_at(lambda t: t.decoder, model, decoder))(eye)
        return jnp.sum(a**2)

    units = jnp.eye(m, dtype=jnp.float64).reshape(m, 1, 1, m)
    zero = jnp.zeros_like(units)
    real = jax.vmap(frob2)(jnp.stack([units, zero], 1))
    imag = jax.vmap(frob2)(jnp.stack([zero, units], 1))
    brute = float(jnp.sum(real + imag)) / 2 / n
    assert abs(white_noise_gain(resolution, modes) / brute - 1) < 1e-12


def test_variance_preserving_init_keeps_white_noise_variance():
    """init="variance_preserving" (the T1 paper's): the decoder's power is 1 / gain times the
    per-mode init's, and with no layers unit white noise at the training resolution comes out
    with unit variance (256 models, standard error about 3%); per-mode init gives the gain."""
    n_models, width = 256, 8
    make = lambda k, **kw: TransformOnce(1, 1, 1, width, 8, 0, key=k, **kw)  # noqa: E731
    keys = jax.random.split(jax.random.key(11), n_models)
    vp = eqx.filter_vmap(lambda k: make(k, init="variance_preserving", resolution=64))(keys)
    plain = eqx.filter_vmap(make)(keys)
    gain = white_noise_gain((64,), (8,))
    assert gain == 14.5 / 64
    # same draws, decoder scaled by 1/sqrt(gain), everything else identical
    assert_close(vp.decoder, plain.decoder / gain**0.5, rtol=1e-6)
    assert_close(vp.encoder, plain.encoder, rtol=0)
    x = jax.random.normal(jax.random.key(12), (n_models, 16, 1, 64))
    run = eqx.filter_jit(eqx.filter_vmap(lambda m, u: jnp.mean(jax.vmap(m)(u) ** 2)))
    v_vp, v_plain = float(jnp.mean(run(vp, x))), float(jnp.mean(run(plain, x)))
    assert abs(v_vp - 1) < 0.12, v_vp
    assert abs(v_plain / gain - 1) < 0.12, v_plain


def test_variance_preserving_init_2d_and_errors(key):
    vp = TransformOnce(
        2, 1, 1, 4, (3, 5), 1, init="variance_preserving", resolution=(6, 8), key=key
    )
    plain = TransformOnce(2, 1, 1, 4, (3, 5), 1, key=key)
    gain = white_noise_gain((6, 8), (3, 5))
    assert_close(vp.decoder, plain.decoder / gain**0.5, rtol=1e-6)
    # an int resolution is repeated over the axes
    square = TransformOnce(2, 1, 1, 4, 3, 1, init="variance_preserving", resolution=8, key=key)
    ref = TransformOnce(2, 1, 1, 4, 3, 1, init="variance_preserving", resolution=(8, 8), key=key)
    assert_close(square.decoder, ref.decoder, rtol=0)
    with pytest.raises(ValueError, match="needs `resolution`"):
        TransformOnce(1, 1, 1, 4, 3, 1, init="variance_preserving", key=key)
    with pytest.raises(ValueError, match="Choose one"):
        TransformOnce(
            1, 1, 1, 4, 3, 1, init="variance_preserving", resolution=8, in_scale=1.0, key=key
        )
    with pytest.raises(ValueError, match="applies only to init='variance_preserving'"):
        TransformOnce(1, 1, 1, 4, 3, 1, resolution=8, key=key)
    with pytest.raises(ValueError, match="too many for the `resolution`"):
        TransformOnce(1, 1, 1, 4, 5, 1, init="variance_preserving", resolution=6, key=key)
    with pytest.raises(ValueError, match="`resolution` must have one entry per spatial axis"):
        TransformOnce(2, 1, 1, 4, 3, 1, init="variance_preserving", resolution=(8,), key=key)
    with pytest.raises(ValueError, match="`init` must be one of"):
        TransformOnce(1, 1, 1, 4, 3, 1, init="vp", key=key)


def test_t1_layer_checks_shapes(key, library_errors):
    model = TransformOnce(1, 1, 1, 4, 3, 1, key=key)
    layer = model.layers[0]
    with pytest.raises(ValueError, match=r"complex \(W, M\) = \(4, 3\)"):
        layer(jnp.ones((4, 3), jnp.complex64)[:3], jax.nn.gelu)
    with pytest.raises(ValueError, match="complex"):
        layer(jnp.ones((4, 3), jnp.float32), jax.nn.gelu)
    real = TransformOnce(1, 1, 1, 4, 3, 1, transform="dct", key=key).layers[0]
    with pytest.raises(ValueError, match=r"real floating-point \(W, M\)"):
        real(jnp.ones((4, 3), jnp.complex64), jax.nn.gelu)
    with pytest.raises(ValueError, match=r"mode_weight \(M, M\)"):
        T1Layer(
            channel_weight=jnp.zeros((2, 4, 4, 3)),
            mode_weight=jnp.zeros((2, 3, 2)),
            bias=jnp.zeros((2, 4, 3)),
        )
    with pytest.raises(ValueError, match="keeps W channels"):
        T1Layer(
            channel_weight=jnp.zeros((2, 5, 4, 3)),
            mode_weight=jnp.zeros((2, 3, 3)),
            bias=jnp.zeros((2, 5, 3)),
        )


def _dct_reference(model, x, out_shape):
    """float64 T1 with transform="dct" via scipy: orthonormal DCT-II per axis divided by
    sqrt(n), first m per axis; real layers z + gelu(M W z + b); orthonormal DCT-III times
    sqrt(n) on the output grid (the cosine series at its cell centres)."""
    from scipy.fft import dctn, idctn

    d = x.ndim - 1
    axes = tuple(range(1, 1 + d))
    n_in, n_out = np.prod(x.shape[1:]), np.prod(out_shape)
    c = dctn(x, type=2, axes=axes, norm="ortho")[
        (slice(None),) + tuple(slice(m) for m in model.modes)
    ]
    c = c.reshape(c.shape[0], -1) / np.sqrt(n_in)
    act = lambda v: np.asarray(jax.nn.gelu(jnp.asarray(v)))  # noqa: E731
    z = np.einsum("wim,im->wm", np.asarray(model.encoder), c)
    for layer in model.layers:
        v = np.einsum(
            "mn,on->om",
            np.asarray(layer.mode_weight),
            np.einsum("oim,im->om", np.asarray(layer.channel_weight), z),
        )
        z = z + act(v + np.asarray(layer.bias))
    y = np.einsum("owm,wm->om", np.asarray(model.decoder), z).reshape(-1, *model.modes)
    full = np.zeros((y.shape[0], *out_shape))
    full[(slice(None),) + tuple(slice(m) for m in model.modes)] = y
    return idctn(full, type=2, axes=axes, norm="ortho") * np.sqrt(n_out)


@pytest.mark.parametrize("modes, grid, out", [((5,), (12,), (20,)), ((3, 4), (6, 5), (9, 8))])
def test_dct_matches_float64_scipy_reference_and_resolution(x64, key, modes, grid, out):
    """transform="dct" (the T1 paper's default, real throughout) equals a scipy float64
    reference on the input grid and on a finer and a coarser output grid, including modes = n
    on an axis (every cosine kept)."""
    d = len(modes)
    model = TransformOnce(d, 2, 3, 4, modes, 2, transform="dct", dtype=jnp.float64, key=key)
    model = eqx.tree_at(
        lambda t: [layer.bias for layer in t.layers],
        model,
        [0.3 * jnp.ones_like(layer.bias) for layer in model.layers],
    )
    assert model.encoder.shape == (4, 2, int(np.prod(modes)))
    x = jax.random.normal(key, (2, *grid), jnp.float64)
    f = jax.jit(lambda u, o: model(u, o), static_argnums=1)
    for shape in (grid, out, tuple(modes)):
        assert_close(f(x, shape), _dct_reference(model, np.asarray(x), shape), jnp.float64)


def test_dct_is_the_same_function_on_every_grid(x64, key):
    """A cosine series (k < m) sampled at the cell centres of 10 and of 17 points gives the
    same output function: mapped from either grid onto the other, the outputs agree."""
    modes = (4, 3)
    model = TransformOnce(2, 1, 2, 4, modes, 2, transform="dct", dtype=jnp.float64, key=key)
    rng = np.random.default_rng(3)
    a = rng.normal(size=modes)

    def field(n0, n1):
        x0, x1 = (np.arange(n0) + 0.5) / n0, (np.arange(n1) + 0.5) / n1
        c0 = np.cos(np.pi * np.arange(modes[0])[:, None] * x0[None])
        c1 = np.cos(np.pi * np.arange(modes[1])[:, None] * x1[None])
        return jnp.asarray(np.einsum("jk,ja,kb->ab", a, c0, c1)[None])

    f = jax.jit(lambda u, o=None: model(u, o), static_argnums=1)
    assert_close(f(field(10, 10), (17, 17)), f(field(17, 17)), jnp.float64)
    assert_close(f(field(17, 17), (10, 10)), f(field(10, 10)), jnp.float64)


def test_dct_white_noise_gain_and_variance_preserving_init(x64, key):
    """For the orthonormal DCT the gain is the paper's m / N, checked by brute force over the
    model's own linear map (real unit decoder entries: E Var = sum_k |A_k|_F^2 / N); the
    variance-preserving decoder is the per-mode one times sqrt(N / m)."""
    grid, modes = (6, 5), (3, 4)
    n, m = 30, 12
    assert white_noise_gain(grid, modes, transform="dct") == m / n
    model = TransformOnce(2, 1, 1, 1, modes, 0, transform="dct", dtype=jnp.float64, key=key)
    model = eqx.tree_at(lambda t: t.encoder, model, jnp.ones((1, 1, m), jnp.float64))
    eye = jnp.eye(n, dtype=jnp.float64).reshape(n, 1, *grid)

    def frob2(decoder):
        return jnp.sum(jax.vmap(eqx.tree_at(lambda t: t.decoder, model, decoder))(eye) ** 2)

    brute = float(jnp.sum(jax.vmap(frob2)(jnp.eye(m, dtype=jnp.float64).reshape(m, 1, 1, m))))
    assert abs(brute / n / (m / n) - 1) < 1e-12
    vp = TransformOnce(
        2, 1, 1, 4, modes, 1, transform="dct", init="variance_preserving", resolution=grid, key=key
    )
    plain = TransformOnce(2, 1, 1, 4, modes, 1, transform="dct", key=key)
    assert_close(vp.decoder, plain.decoder * (n / m) ** 0.5, rtol=1e-6)


def test_dct_frequency_selection_and_scales(x64):
    """select_modes and spectral_scale with transform="dct" read the model's cosine
    coefficients: a field cos(pi 2 x) + 0.1 cos(pi 5 x) at cell centres needs m = 3 for 99% of
    its energy, 6 for all of it; its scales are 1/sqrt(2) and 0.1/sqrt(2) (forward-scaled
    orthonormal DCT-II) at k = 2, 5 and the floor elsewhere."""
    n = 32
    x = (np.arange(n) + 0.5) / n
    u = (np.cos(2 * np.pi * x) + 0.1 * np.cos(5 * np.pi * x))[None, None]
    assert select_modes(u, 1, 0.99, transform="dct") == (3,)
    assert select_modes(u, 1, 1.0, transform="dct") == (6,)
    scale = spectral_scale(u, 8, transform="dct")
    assert scale.shape == (1, 8)
    np.testing.assert_allclose(scale[0, [2, 5]], [2**-0.5, 0.1 * 2**-0.5], rtol=1e-12)
    np.testing.assert_allclose(np.delete(scale[0], [2, 5]), 1e-3 * 2**-0.5, rtol=1e-9)


def test_dct_errors(key, library_errors):
    model = TransformOnce(1, 1, 1, 4, 6, 1, transform="dct", key=key)
    model(jnp.ones((1, 6)))  # every cosine of a 6-point grid
    with pytest.raises(ValueError, match="at most 5 cosine modes"):
        model(jnp.ones((1, 5)))
    with pytest.raises(ValueError, match="at most 5 cosine modes"):
        model(jnp.ones((1, 8)), (5,))
    with pytest.raises(ValueError, match="`transform` must be one of"):
        TransformOnce(1, 1, 1, 4, 3, 1, transform="fft", key=key)
    with pytest.raises(ValueError, match="at most 5 cosine modes"):
        white_noise_gain((5,), 6, transform="dct")


def test_white_noise_gain_takes_an_int_resolution_and_names_a_bad_one(library_errors):
    """An int resolution, as TransformOnce's, is n on every axis of `modes`; None or an int
    failed in tuple() with "'int' object is not iterable", naming no argument."""
    assert white_noise_gain(64, 8) == white_noise_gain((64,), (8,)) == 14.5 / 64
    assert white_noise_gain(16, (3, 5)) == white_noise_gain((16, 16), (3, 5))
    assert white_noise_gain(16, np.array([3, 5])) == white_noise_gain((16, 16), (3, 5))
    with pytest.raises(ValueError, match=r"`resolution` must be the grid.* got None"):
        white_noise_gain(None, 8)
    with pytest.raises(ValueError, match=r"`modes`"):
        white_noise_gain(16, None)
