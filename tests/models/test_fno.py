"""FNO: zero-shot resolution change, transformations, gradients, padding, factorised and
space-time variants, errors, and a smoke training run."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from spectrax.models import FNO, FNOBlock, SpatiotemporalFNO, grid_channels, spatiotemporal_fno
from tests.helpers import assert_close
from tests.models.smoke import loss_decreases


def test_one_layer_fno_is_resolution_invariant(x64, key):
    """Without grid channels, a one-block FNO maps a band-limited field to the same function on
    any grid: lifting, skip and projection are pointwise, the spectral conv is grid-free."""
    model = FNO(2, 1, 2, 6, (3, 3), 1, positional_grid=False, dtype=jnp.float64, key=key)
    coef = np.random.default_rng(0).normal(size=(5, 5, 2))

    def field(n):
        x, y = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
        ph = [2 * np.pi * (p * x + q * y) for p in range(-2, 3) for q in range(5)]
        c = coef.reshape(-1, 2)
        return jnp.asarray(
            sum(a * np.cos(t) + b * np.sin(t) for (a, b), t in zip(c, ph, strict=False))[None]
        )

    a, a64 = field(32), field(64)
    f = eqx.filter_jit(model)
    assert_close(f(a64)[:, ::2, ::2], f(a), jnp.float64)


@pytest.mark.parametrize("norm, mlp", [("group", 0.5), ("instance", 0.5), ("group", None)])
def test_normalised_fno_matches_numpy_and_stays_grid_free(x64, key, norm, mlp):
    """``norm`` normalises each block's spectral output and the block's output, after a channel
    MLP if there is one (the two places of neuraloperator's ``norm="group_norm"`` /
    ``"instance_norm"``): against NumPy, and (means and variances over the grid being exact for
    band-limited fields) the one-block model stays resolution invariant."""
    model = FNO(
        1,
        1,
        2,
        4,
        3,
        2,
        positional_grid=False,
        norm=norm,
        channel_mlp_expansion=mlp,
        activation="identity",
        dtype=jnp.float64,
        key=key,
    )
    t = np.arange(32) / 32
    x = np.stack([np.sin(2 * np.pi * t) + 0.3 * np.cos(4 * np.pi * t) + 0.2])
    groups = 1 if norm == "group" else 4

    def gn(h, layer):
        g = h.reshape(groups, -1)
        g = (g - g.mean(1, keepdims=True)) / np.sqrt(g.var(1, keepdims=True) + 1e-5)
        return (
            g.reshape(h.shape) * np.asarray(layer.scale)[:, None] + np.asarray(layer.shift)[:, None]
        )

    def lin(layer, h):
        bias = 0.0 if layer.bias is None else np.asarray(layer.bias)[:, None]
        return np.asarray(layer.weight) @ h + bias

    h = lin(model.lifting, x)
    for block in model.blocks:
        w = np.asarray(block.conv.weight.complex())
        hh = np.fft.rfft(h, norm="forward")[:, :3]
        spec = np.fft.irfft(np.einsum("oik,ik->ok", w, hh), n=32, norm="forward")
        y = gn(spec, block.norms[0]) + lin(block.skip, h)
        if mlp:
            y = y + lin(block.mlp.fc2, lin(block.mlp.fc1, y))
        h = gn(y, block.norms[1])
    ref = lin(model.projection.fc2, lin(model.projection.fc1, h))
    f = eqx.filter_jit(model)
    assert_close(f(jnp.asarray(x)), ref, rtol=1e-11)
    one = FNO(1, 1, 2, 4, 3, 1, positional_grid=False, norm=norm, dtype=jnp.float64, key=key)
    fine = np.stack([np.sin(2 * np.pi * np.arange(64) / 64)])
    assert_close(
        eqx.filter_jit(one)(jnp.asarray(fine))[:, ::2], one(jnp.asarray(fine[:, ::2])), rtol=1e-11
    )


def test_block_skip_paths(x64, key):
    """``skip``: the paper's pointwise ``W x``, a per-channel scale (neuraloperator's soft
    gating) or ``x`` itself, added to the spectral path."""
    x = jax.random.normal(key, (4, 16), jnp.float64)
    kwargs = dict(channel_mlp_expansion=None, activation="gelu", factorization="dense", rank=0.1)
    kwargs |= dict(impl="auto", dtype=jnp.float64, key=key)
    for skip in ("linear", "soft_gating", "identity"):
        block = FNOBlock(1, 4, (3,), skip=skip, **kwargs)
        diff = block(x) - block.conv(x)
        if skip == "linear":
            assert_close(diff, block.skip.weight @ x, rtol=1e-13)
        elif skip == "soft_gating":
            gate = jnp.asarray([0.5, -1.0, 2.0, 3.0], jnp.float64)
            block = eqx.tree_at(lambda b: b.skip.weight, block, gate)
            assert_close(block(x) - block.conv(x), gate[:, None] * x, rtol=1e-13)
        else:
            assert block.skip is None
            assert_close(diff, x, rtol=1e-13)
    model = FNO(1, 1, 1, 4, 3, 2, skip="soft_gating", key=key)
    assert all(b.skip.weight.shape == (4,) for b in model.blocks)
    separable = FNO(1, 1, 1, 4, 3, 2, separable=True, key=key)
    assert [b.conv.num_params for b in separable.blocks] == [2 * 4 * 3] * 2


def test_grid_channels_make_the_resolution_change_first_order(x64, key):
    """What the docstring says of super-resolution with the grid channels: the sawtooth
    coordinate is not band-limited, so even a linear FNO's output moves between resolutions,
    by O(1/n): it halves each time the grid is refined (without the grid it is exact,
    test_one_layer_fno_is_resolution_invariant)."""
    model = FNO(1, 1, 1, 4, 3, 1, activation="identity", dtype=jnp.float64, key=key)
    f = eqx.filter_jit(model)
    y16, y32, y64 = (
        f(jnp.asarray(np.sin(2 * np.pi * np.arange(n) / n)[None])) for n in (16, 32, 64)
    )
    d1 = float(jnp.max(jnp.abs(y32[:, ::2] - y16)))
    d2 = float(jnp.max(jnp.abs(y64[:, ::2] - y32)))
    assert d1 > 1e-3 * float(jnp.max(jnp.abs(y16))), d1
    assert 0.35 < d2 / d1 < 0.65, (d1, d2)


def _np_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _np_fno_2d(model, x):
    """An independent float64 NumPy FNO-2d: grid channels, lifting, zero padding at the end of
    each axis, Fourier layers (rfft2, kept frequencies -m1..m1-1 x 0..m2-1, channel mixing,
    irfft2) plus the pointwise skip, GELU between layers, crop, projection MLP."""
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    n1, n2 = x.shape[1:]
    g1, g2 = np.meshgrid(np.arange(n1) / n1, np.arange(n2) / n2, indexing="ij")
    h = np.concatenate([x, g1[None], g2[None]])

    def linear(layer, h):
        return np.einsum("oi,ixy->oxy", f64(layer.weight), h) + f64(layer.bias)[:, None, None]

    if hasattr(model.lifting, "fc1"):  # a lifting MLP (lifting_channels)
        h = linear(model.lifting.fc2, _np_gelu(linear(model.lifting.fc1, h)))
    else:
        h = linear(model.lifting, h)
    p1, p2 = (round(p * n) for p, n in zip(model.padding, (n1, n2), strict=True))
    h = np.pad(h, ((0, 0), (0, p1), (0, p2)))
    m1, m2 = model.modes
    rows = [*range(m1), *range(-m1, 0)]  # the weight's index order on the leading axis
    for i, block in enumerate(model.blocks):
        w = np.asarray(block.conv.weight.complex(), np.complex128)
        hh = np.fft.rfft2(h)
        out = np.zeros((w.shape[0], *hh.shape[1:]), np.complex128)
        for j, k1 in enumerate(rows):
            out[:, k1, :m2] = np.einsum("oik,ik->ok", w[:, :, j], hh[:, k1, :m2])
        h = np.fft.irfft2(out, s=h.shape[1:]) + np.einsum("oi,ixy->oxy", f64(block.skip.weight), h)
        if i < len(model.blocks) - 1:
            h = _np_gelu(h)
    h = h[:, :n1, :n2]
    fc1, fc2 = model.projection.fc1, model.projection.fc2
    h = _np_gelu(np.einsum("oi,ixy->oxy", f64(fc1.weight), h) + f64(fc1.bias)[:, None, None])
    return np.einsum("oi,ixy->oxy", f64(fc2.weight), h) + f64(fc2.bias)[:, None, None]


@pytest.mark.parametrize(
    "param_dtype, lifting_channels", [(jnp.float64, None), (jnp.float32, None), (jnp.float64, 5)]
)
def test_padded_fno_matches_a_float64_numpy_reference(x64, key, param_dtype, lifting_channels):
    """Values, not shapes: padding side, crop, skip path, activations and the kept frequencies
    against an independent NumPy FNO. float32 parameters with a float64 input compute in float64
    (the parameters are widened, the input is not narrowed). ``lifting_channels``: the lifting
    is a two-layer channel MLP (neuraloperator's)."""
    model = FNO(
        2,
        2,
        3,
        6,
        (4, 3),
        3,
        projection_channels=8,
        padding=(0.25, 0.5),
        lifting_channels=lifting_channels,
        dtype=param_dtype,
        key=key,
    )
    if lifting_channels is not None:  # the MLP, not the paper's one linear map
        assert model.lifting.fc1.weight.shape == (lifting_channels, 2 + 2)
    x = np.random.default_rng(1).normal(size=(2, 12, 10))
    y = eqx.filter_jit(model)(jnp.asarray(x))
    assert y.dtype == jnp.float64
    ref = _np_fno_2d(model, x)
    assert np.max(np.abs(np.asarray(y) - ref)) < 1e-10 * np.max(np.abs(ref))


def test_spatiotemporal_fno_matches_the_reference_padding_time_only(x64, key):
    model = spatiotemporal_fno(
        1, 2, 3, 6, (4, 3), 2, time_padding=0.5, projection_channels=8, dtype=jnp.float64, key=key
    )
    x = np.random.default_rng(2).normal(size=(2, 12, 10))  # (C, x, t)
    ref = _np_fno_2d(model, x)  # pads (round(0 * 12), round(0.5 * 10)) = (0, 5)
    assert model.padding == (0.0, 0.5)
    y = np.asarray(eqx.filter_jit(model)(jnp.asarray(x)))
    assert np.max(np.abs(y - ref)) < 1e-10 * np.max(np.abs(ref))


def test_grid_channels():
    g = grid_channels((4, 3))
    assert g.shape == (2, 4, 3)
    np.testing.assert_allclose(g[0, :, 0], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(grid_channels((3,), endpoint=True)[0], [0, 0.5, 1.0])
    assert_close(grid_channels((1, 5), endpoint=True)[0], jnp.zeros((1, 5)), rtol=0.0)


def test_batch_sharded_over_an_explicit_mesh(key):
    """``jax.make_mesh``'s default (Explicit axes) with a batch sharded over ``data``: the grid
    channels were NumPy constants, and JAX's concatenate under vmap failed on them ("Resource
    axis: data ... is not found in mesh: ()"); the result equals the unsharded one."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((4,), ("data",), devices=jax.devices()[:4])
    model = FNO(2, 1, 1, 4, 3, 1, projection_channels=4, key=key)
    a = jax.random.normal(jax.random.key(1), (4, 1, 8, 8))
    grad = eqx.filter_jit(eqx.filter_grad(lambda m, a: jnp.sum(jax.vmap(m)(a) ** 2)))
    expected = grad(model, a)
    with jax.set_mesh(mesh):
        sharded = jax.device_put(a, NamedSharding(mesh, PartitionSpec("data")))
        got = grad(model, sharded)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert_close(g, e, rtol=1e-5)


@eqx.filter_jit
def _batched(model, x):
    return jax.vmap(model)(x)


@eqx.filter_jit
def _single(model, x):
    return model(x)


def test_jit_vmap_and_superresolution_shapes(key):
    for shape in [(64,), (16, 12), (16, 12, 8)]:
        if len(shape) == 3:
            m = FNO(3, 2, 3, 8, 3, 2, key=key)
            x = jax.random.normal(key, (2, 2, *shape))
            loop = jnp.stack([_single(m, u) for u in x])
            assert_close(_batched(m, x), loop, jnp.float32)
            assert_close(m(x[0]), loop[0], jnp.float32)
        else:
            # Abstract parameters: shapes and dtypes only, nothing compiled.
            m = eqx.filter_eval_shape(FNO, len(shape), 2, 3, 8, 3, 2, key=key)
        for grid in (shape, tuple(2 * n + 1 for n in shape)):
            out = jax.eval_shape(_call, m, jax.ShapeDtypeStruct((2, *grid), jnp.float32))
            assert out.shape == (3, *grid) and out.dtype == jnp.float32


def test_input_gradients_match_finite_differences(x64, key):
    model = FNO(1, 1, 1, 4, 3, 2, projection_channels=8, padding=0.25, dtype=jnp.float64, key=key)
    x = jax.random.normal(key, (1, 12), jnp.float64)
    check_grads(jax.jit(lambda u: model(u)), (x,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def _call(model, x):
    return model(x)


def _shape(model, shape):
    return jax.eval_shape(_call, model, jax.ShapeDtypeStruct(shape, jnp.float32)).shape


def _abstract(*args, **kwargs):
    return eqx.filter_eval_shape(FNO, *args, **kwargs)


def test_domain_padding_and_variants(key):
    padded = _abstract(
        2, 2, 1, 8, (4, 4), 2, padding=(0.5, 0.2), channel_mlp_expansion=0.5, key=key
    )
    assert _shape(padded, (2, 12, 10)) == (1, 12, 10)
    dense = _abstract(2, 2, 1, 16, (4, 4), 2, key=key)
    for factorization in ("tucker", "cp", "tt"):
        tfno = _abstract(2, 2, 1, 16, (4, 4), 2, factorization=factorization, rank=0.1, key=key)
        for b, bd in zip(tfno.blocks, dense.blocks, strict=False):
            assert b.conv.num_params <= 0.1 * bd.conv.num_params
        assert _shape(tfno, (2, 12, 10)) == (1, 12, 10)


def test_spatiotemporal_fno_pads_time_only(key):
    model = eqx.filter_eval_shape(
        spatiotemporal_fno, 2, 3, 1, 8, (3, 3, 2), 2, time_padding=0.5, key=key
    )
    assert model.num_spatial_dims == 3 and model.padding == (0.0, 0.0, 0.5)
    assert _shape(model, (3, 8, 8, 4)) == (1, 8, 8, 4)
    tt = eqx.filter_eval_shape(
        spatiotemporal_fno, 2, 3, 1, 8, (3, 3, 2), 2, factorization="tt", rank=0.3, key=key
    )
    assert [len(b.conv.weight.cores) for b in tt.blocks] == [5, 5]  # (C_out, C_in, x, y, t)
    assert _shape(tt, (3, 8, 8, 4)) == (1, 8, 8, 4)


def test_errors(key, library_errors):
    model = _abstract(2, 2, 1, 8, (4, 4), 1, key=key)
    with pytest.raises(ValueError, match="channels") as err:
        _shape(model, (3, 16, 16))
    assert "channels-last" not in str(err.value)
    # a channels-last field said only "has 16 channels ...; expected 2"
    with pytest.raises(ValueError, match=r"looks channels-last.*jnp\.moveaxis\(x, -1, 0\)"):
        _shape(model, (16, 16, 2))
    with pytest.raises(ValueError, match="spatial axes"):
        _shape(model, (2, 16))
    with pytest.raises(ValueError, match="too many"):
        _shape(model, (2, 6, 16))
    with pytest.raises(ValueError, match="padding"):
        _abstract(2, 2, 1, 8, 4, padding=(0.1,), key=key)
    with pytest.raises(ValueError, match="activation"):
        _abstract(1, 2, 1, 8, 4, activation="swishy", key=key)
    with pytest.raises(ValueError, match="width"):
        _abstract(1, 2, 1, 0, 4, key=key)
    with pytest.raises(ValueError, match="padding"):
        _abstract(1, 2, 1, 8, 4, padding="a", key=key)
    # an infinite fraction used to pass and fail at call time in round(inf * n) (OverflowError)
    with pytest.raises(ValueError, match=r"`padding` must be a finite.*got \(0\.25, inf\)"):
        _abstract(2, 2, 1, 8, 4, padding=(0.25, float("inf")), key=key)
    with pytest.raises(ValueError, match="channel_mlp_expansion"):
        _abstract(1, 2, 1, 8, 4, channel_mlp_expansion=-1.0, key=key)
    with pytest.raises(ValueError, match="modes"):
        _abstract(1, 2, 1, 8, 4.0, key=key)
    with pytest.raises(ValueError, match="`projection_channels` must be an integer >= 1; got 0"):
        _abstract(1, 2, 1, 8, 4, projection_channels=0, key=key)
    with pytest.raises(ValueError, match="`lifting_channels` must be an integer >= 1; got 0"):
        _abstract(1, 2, 1, 8, 4, lifting_channels=0, key=key)
    with pytest.raises(ValueError, match=r"`skip` must be 'linear', 'soft_gating' or 'identity'"):
        _abstract(1, 2, 1, 8, 4, skip="soft-gating", key=key)
    with pytest.raises(
        ValueError, match=r"`norm` must be None, 'group' or 'instance'; got 'batch'"
    ):
        _abstract(1, 2, 1, 8, 4, norm="batch", key=key)


def test_half_precision_parameters_run(key):
    """bfloat16 parameters: the spectral weights are upcast to complex64 for the transform, the
    pointwise layers compute in bfloat16 (the policy) and the result is bfloat16, within bfloat16
    rounding (measured 8e-3) of the same parameters in float32."""
    model = FNO(1, 1, 1, 8, 4, 2, dtype=jnp.bfloat16, key=key)
    wide = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, model)
    x = jax.random.normal(key, (1, 16))
    y, y32 = eqx.filter_jit(lambda m, w, u: (m(u), w(u)))(model, wide, x)
    assert y.shape == (1, 16) and y.dtype == jnp.bfloat16
    assert_close(y, y32, jnp.bfloat16, rtol=3e-2)


def test_fno_loss_decreases():
    model = FNO(1, 1, 1, 16, 6, 2, key=jax.random.key(1))
    first, last = loss_decreases(model, (32,), steps=20)
    assert last < 0.5 * first, (first, last)


def test_tensor_train_fno_loss_decreases():
    # one Fourier layer: the loss falls from 1.06 to 0.19 (measured), compiles in half the time
    model = FNO(1, 1, 1, 16, 6, 1, factorization="tt", rank=0.3, key=jax.random.key(1))
    assert all(b.conv.num_params <= 0.3 * 2 * 16 * 16 * 6 for b in model.blocks)
    first, last = loss_decreases(model, (32,), steps=20)
    assert last < 0.5 * first, (first, last)


def test_block_names_width(library_errors):
    """FNOBlock(width=0) was refused by its SpectralConv, under that layer's `in_channels`."""
    kwargs = dict(channel_mlp_expansion=None, activation="gelu", factorization="dense", rank=None)
    with pytest.raises(ValueError, match=r"`width` must be an integer >= 1; got 0"):
        FNOBlock(1, 0, (4,), **kwargs, impl="auto", dtype=jnp.float32, key=jax.random.key(0))


@pytest.mark.parametrize("flag", ["False", 0, None])
def test_grid_flags_must_be_bools(key, flag, library_errors):
    # taken by truthiness: positional_grid="False" added the grid channels, silently
    with pytest.raises(TypeError, match=r"`positional_grid` must be a Python bool; got "):
        _abstract(1, 2, 1, 8, 4, positional_grid=flag, key=key)
    with pytest.raises(TypeError, match=r"`grid_endpoint` must be a Python bool; got "):
        _abstract(1, 2, 1, 8, 4, grid_endpoint=flag, key=key)
    # a NumPy bool is a bool (closed over: filter_eval_shape would trace it as an array)
    model = eqx.filter_eval_shape(lambda: FNO(1, 2, 1, 8, 4, positional_grid=np.bool_(0), key=key))
    assert model.lifting.in_channels == 2


@pytest.mark.parametrize("padding", [True, (0.25, False), ("0.25", "0.5"), (0.25, None)])
def test_padding_refuses_bools(key, padding, library_errors):
    # a bool was read as a fraction: padding=True padded every axis by 100%, silently; strings
    # were parsed by float(): ("0.25", "0.5") built a model padded by (0.25, 0.5)
    with pytest.raises(ValueError, match=r"`padding` must be a finite non-negative fraction"):
        _abstract(2, 2, 1, 8, 4, padding=padding, key=key)


def test_grid_channels_names_a_bad_shape(library_errors):
    # an int failed with "'int' object is not iterable"; a zero size gave an empty grid
    with pytest.raises(
        ValueError, match=r"`spatial_shape` must be a sequence of ints, one per axis; got 4"
    ):
        grid_channels(4)
    with pytest.raises(ValueError, match=r"`spatial_shape\[0\]` must be an integer >= 1; got 0"):
        grid_channels((0, 4))
    # endpoint="False" was taken as True (linspace(0, 1, n)); an integer dtype truncated the
    # coordinates j / n < 1 to 0, a complex one was accepted
    with pytest.raises(TypeError, match=r"`endpoint` must be a Python bool; got "):
        grid_channels((4,), endpoint="False")
    for bad in (jnp.int32, jnp.complex64):
        with pytest.raises(TypeError, match=r"`dtype` must be a real floating-point type"):
            grid_channels((4,), dtype=bad)


def test_spatiotemporal_fno_takes_num_spatial_dims_as_fno_does(key, library_errors):
    # only `num_space_dims=` was accepted by keyword, where FNO says `num_spatial_dims=`
    kw = dict(in_channels=1, out_channels=1, width=4, modes=2, num_layers=1, key=key)
    new = spatiotemporal_fno(num_spatial_dims=2, **kw)
    old = spatiotemporal_fno(num_space_dims=2, **kw)  # the earlier name keeps working
    pos = spatiotemporal_fno(2, 1, 1, 4, 2, 1, key=key)
    assert new.num_spatial_dims == 3 and new.padding == (0.0, 0.0, 0.25)  # 2 space axes + time
    for other in (old, pos):
        for p, q in zip(jax.tree.leaves(new), jax.tree.leaves(other), strict=True):
            np.testing.assert_array_equal(np.asarray(p), np.asarray(q))
    for both in (2, 3):
        with pytest.raises(TypeError, match=r"`num_spatial_dims`=2 and `num_space_dims`="):
            spatiotemporal_fno(num_spatial_dims=2, num_space_dims=both, **kw)
    with pytest.raises(TypeError, match=r"`num_space_dims`=3 \(its earlier name\) were both"):
        spatiotemporal_fno(2, num_space_dims=3, **kw)
    with pytest.raises(TypeError, match=r"missing required argument\(s\): `num_spatial_dims`"):
        spatiotemporal_fno(**kw)
    with pytest.raises(TypeError, match=r"missing required argument\(s\): `width`, `modes`"):
        spatiotemporal_fno(2, 1, 1, key=key)


def test_spatiotemporal_fno_names_bad_padding(key, library_errors):
    # time_padding=True padded time by 100% (float(True)); padding= failed with Python's
    # "got multiple values for keyword argument 'padding'"
    # and the refusal named `padding`, an argument the caller did not pass, quoting the tuple
    # (0.0, 0.0, True) built from time_padding
    for bad in (True, -0.1, float("nan"), "0.25", (0.25,)):
        with pytest.raises(
            ValueError,
            match=r"`time_padding` must be a finite non-negative fraction of the time axis; got ",
        ):
            eqx.filter_eval_shape(
                lambda b=bad: spatiotemporal_fno(2, 1, 1, 4, 2, 1, time_padding=b, key=key)
            )
    with pytest.raises(ValueError, match=r"`padding` is set by `time_padding`"):
        eqx.filter_eval_shape(lambda: spatiotemporal_fno(2, 1, 1, 4, 2, 1, padding=0.1, key=key))


def test_float64_parameters_need_x64(key, library_errors):
    # dtype=float64 outside 64-bit mode built a float32 model with only JAX's truncation
    # warning (as wavenumbers and unlike the GRFs, which raise)
    from spectrax.models import AFNO, SFNO, TransformOnce
    from spectrax.nn import SpectralConv

    builds = {
        "FNO": lambda: FNO(1, 1, 1, 4, 2, 1, dtype=jnp.float64, key=key),
        "AFNO": lambda: AFNO(1, 1, 1, 4, 2, 1, num_blocks=1, dtype=jnp.float64, key=key),
        "TransformOnce": lambda: TransformOnce(1, 1, 1, 4, 2, 1, dtype=jnp.float64, key=key),
        "SFNO": lambda: SFNO(1, 1, 4, 3, 1, dtype=jnp.float64, key=key),
        "SpectralConv": lambda: SpectralConv(1, 1, 1, 2, dtype=jnp.float64, key=key),
    }
    for build in builds.values():
        with pytest.raises(TypeError, match=r"`dtype`=float64 needs 64-bit mode"):
            eqx.filter_eval_shape(build)
    with jax.enable_x64(True):
        for name, build in builds.items():
            model = eqx.filter_eval_shape(build)
            dtypes = {leaf.dtype for leaf in jax.tree.leaves(model) if hasattr(leaf, "dtype")}
            assert dtypes == {jnp.dtype(jnp.float64)}, (name, dtypes)


def test_spatiotemporal_fno_names_space_and_time_in_its_rank_error(key, library_errors):
    """A field without the time axis (or batched) is named as a space-time field with the
    caller's number of space axes (FNO's message counted time among "2 spatial axes" for a
    1-space-axis model); the model is an FNO and computes as one."""
    model = spatiotemporal_fno(1, 1, 1, 4, 3, 1, projection_channels=8, key=key)
    assert isinstance(model, FNO) and isinstance(model, SpatiotemporalFNO)
    with pytest.raises(
        ValueError,
        match=r"space-time field \(C, \*space, T\): 1 space axis and time last.*"
        r"x\.shape=\(1, 32\).*broadcast_to",
    ):
        model(jnp.ones((1, 32)))
    with pytest.raises(ValueError, match=r"2 axes after the channels.*Batch with jax\.vmap"):
        model(jnp.ones((4, 1, 32, 6)))
    with pytest.raises(ValueError, match=r"has 2 channels"):  # FNO's own checks follow
        model(jnp.ones((2, 32, 6)))
    x = jax.random.normal(key, (1, 16, 6))
    as_fno = FNO.__call__(model, x)
    assert_close(model(x), as_fno, rtol=0.0)
    two = spatiotemporal_fno(2, 1, 1, 4, 3, 1, projection_channels=8, key=key)
    with pytest.raises(ValueError, match=r"2 space axes and time last, 3 axes"):
        two(jnp.ones((1, 16, 16)))
