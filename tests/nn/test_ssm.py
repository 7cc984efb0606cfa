"""S4, S4D and S5 layers: every mode equals token-by-token recurrence; gradients; errors; labels."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.test_util import check_grads

from spectrax.nn import S4, S4D, S5, ssm_param_labels
from spectrax.ssm import dense_kernel, discretize_dense, hippo, nplr, ptd_legs, ptd_slots
from tests.helpers import assert_close, rel_err

LAYERS = {
    "s4-legs": (S4, {"measure": "legs"}),
    "s4-legt": (S4, {"measure": "legt"}),
    "s4d-legs": (S4D, {"init": "legs"}),
    "s4d-inv": (S4D, {"init": "inv"}),
    "s5": (S5, {}),
}
MODES = ("conv", "scan", "recurrent")


def _make(name, disc, dtype, *, channels=3, state=4, **extra):
    cls, kw = LAYERS[name]
    return cls(
        channels,
        state,
        disc=disc,
        dt_min=0.01,
        dt_max=0.5,
        dtype=dtype,
        key=jax.random.key(7),
        **kw,
        **extra,
    )


@eqx.filter_jit
def _run_all(layer, x):
    outs = {mode: layer(x, mode=mode) for mode in MODES}

    def body(state, u):
        y, state = layer.step(u, state)
        return state, y

    outs["step"] = jax.lax.scan(body, layer.init_state(), x)[1]
    return outs


def _check_modes(layer, x, rtol):
    outs = _run_all(layer, x)
    for mode, y in outs.items():
        assert y.shape == x.shape and y.dtype == x.dtype
        assert_close(y, outs["step"], rtol=rtol, what=mode)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    ("name", "disc"),
    [(n, d) for n in ("s4-legs", "s4d-legs", "s5") for d in ("zoh", "bilinear")]
    + [("s4-legt", "bilinear"), ("s4d-inv", "zoh")],
)
def test_modes_agree_float64(name, disc):
    layer = _make(name, disc, jnp.float64)
    x = jax.random.normal(jax.random.key(1), (40, 3), jnp.float64)
    _check_modes(layer, x, 1e-10)


@pytest.mark.usefixtures("x64")
def test_modes_agree_at_length_one():
    """L = 1: a one-tap kernel (S4's Cauchy kernel evaluated at a single root of unity) and a
    one-element scan; every mode equals the step recurrence. (Measured in float64 for S4, S4D
    and S5 at L = 1, 2, 7, 33, bidirectional too: at most 1e-15 apart.)"""
    layer = _make("s4-legs", "bilinear", jnp.float64)
    _check_modes(layer, jax.random.normal(jax.random.key(1), (1, 3), jnp.float64), 1e-12)


@pytest.mark.parametrize(
    ("name", "disc"), [("s4-legs", "bilinear"), ("s4d-legs", "zoh"), ("s5", "zoh")]
)
def test_modes_agree_float32(name, disc):
    layer = _make(name, disc, jnp.float32)
    x = jax.random.normal(jax.random.key(1), (64, 3), jnp.float32)
    _check_modes(layer, x, 1e-4)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", ["s4-legs", "s4d-lin", "s5"])
def test_bidirectional_is_forward_plus_reversed_backward(name):
    cls = {"s4-legs": S4, "s4d-lin": S4D, "s5": S5}[name]
    kw = {"init": "lin"} if cls is S4D else {}
    layer = cls(2, 4, bidirectional=True, dtype=jnp.float64, key=jax.random.key(0), **kw)
    x = jax.random.normal(jax.random.key(1), (24, 2), jnp.float64)
    fwd = eqx.tree_at(lambda m: m.C_back, layer, None, is_leaf=lambda v: v is None)
    back = eqx.tree_at(lambda m: m.C, fwd, layer.C_back)

    @eqx.filter_jit
    def run(layer, fwd, back, x):
        direct = jnp.flip(back(jnp.flip(x, 0), mode="recurrent"), 0)
        # Each of fwd and back adds the D skip; the layer adds it once.
        ref = fwd(x, mode="recurrent") + direct - x * layer.D[None, :]
        return ref, [layer(x, mode=mode) for mode in MODES]

    ref, outs = run(layer, fwd, back, x)
    for mode, out in zip(MODES, outs, strict=True):
        assert_close(out, ref, rtol=1e-10, what=mode)
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(x[0], layer.init_state())


@pytest.mark.usefixtures("x64")
def test_s5_per_step_dt():
    layer = _make("s5", "zoh", jnp.float64)
    x = jax.random.normal(jax.random.key(1), (30, 3), jnp.float64)
    dt = jax.random.uniform(jax.random.key(2), (30,), jnp.float64, 0.2, 3.0)

    @eqx.filter_jit
    def run(layer, x, dt):
        def body(state, inputs):
            y, state = layer.step(inputs[0], state, inputs[1])
            return state, y

        steps = jax.lax.scan(body, layer.init_state(), (x, dt))[1]
        return (
            layer(x, dt=dt, mode="scan"),
            layer(x, dt=dt, mode="recurrent"),
            steps,
            layer(x, dt=jnp.ones(30), mode="scan"),
            layer(x, mode="conv"),
            layer(x, mode="scan"),
        )

    scan, seq, steps, ones, conv, plain = run(layer, x, dt)
    assert_close(scan, steps, rtol=1e-10)
    assert_close(seq, steps, rtol=1e-10)
    assert_close(ones, conv, rtol=1e-10)
    assert float(jnp.max(jnp.abs(scan - plain))) > 1e-3  # dt matters
    with pytest.raises(ValueError, match="positive"):
        layer(x, dt=jnp.zeros(30))
    with pytest.raises(ValueError, match="conv"):
        layer(x, dt=dt, mode="conv")


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    ("name", "mode"), [("s4-legs", "conv"), ("s4d-legs", "conv"), ("s5", "scan")]
)
def test_gradients_match_finite_differences(name, mode):
    layer = _make(
        name, "bilinear" if name.startswith("s4-") else "zoh", jnp.float64, channels=2, state=4
    )
    x = jax.random.normal(jax.random.key(3), (12, 2), jnp.float64)
    params, static = eqx.partition(layer, eqx.is_array)
    leaves, treedef = jax.tree.flatten(params)

    def loss(*leaves_):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves_), static)
        return jnp.sum(jnp.sin(model(x, mode=mode)))

    loss = jax.jit(loss)
    grads = jax.jit(jax.grad(loss, argnums=tuple(range(len(leaves)))))(*leaves)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in grads)  # every parameter is used
    check_grads(loss, leaves, order=1, modes=["rev"], atol=1e-6, rtol=1e-6, eps=1e-6)


def test_jit_vmap_and_no_retrace():
    layer = _make("s4d-legs", "zoh", jnp.float32)
    xs = jax.random.normal(jax.random.key(1), (4, 32, 3), jnp.float32)
    traces = []

    @eqx.filter_jit
    def apply(m, x):
        traces.append(1)
        return jax.vmap(m)(x)

    out = apply(layer, xs)
    apply(layer, xs + 1.0)
    assert len(traces) == 1
    looped = jnp.stack([layer(x) for x in xs])
    assert_close(out, looped, rtol=1e-5)


def test_errors(library_errors):
    layer = _make("s4d-legs", "zoh", jnp.float32)
    with pytest.raises(ValueError, match=r"\(L, H\)"):
        layer(jnp.ones((10, 4)))
    with pytest.raises(ValueError, match="mode"):
        layer(jnp.ones((10, 3)), mode="fft")
    with pytest.raises(ValueError, match="dt_min"):
        S4D(3, 4, dt_min=0.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="dt_min"):
        S5(3, 4, dt_min=0.1, dt_max=0.01, key=jax.random.key(0))
    with pytest.raises(ValueError, match="init"):
        S4D(3, 4, init="legx", key=jax.random.key(0))
    with pytest.raises(ValueError, match="measure"):
        S4(3, 4, measure="cheb", key=jax.random.key(0))
    with pytest.raises(ValueError, match="state_size"):
        S5(3, 5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="state_size"):
        S4(3, 0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="disc"):
        S4(3, 4, disc="euler", key=jax.random.key(0))
    with pytest.raises(ValueError, match="state_size"):
        S4D(3, 5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="dt_max"):
        S4D(3, 4, dt_max=float("inf"), key=jax.random.key(0))
    # inputs: real floats, L >= 1, step shapes, backward read-out, S5's per-step dt
    with pytest.raises(TypeError, match="`x`"):
        layer(jnp.ones((10, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"L >= 1"):
        layer(jnp.ones((0, 3)))
    with pytest.raises(ValueError, match="`x_t`"):
        layer.step(jnp.ones((1,)), layer.init_state())
    with pytest.raises(ValueError, match="`state`"):
        layer.step(jnp.ones((3,)), layer.init_state()[0])
    with pytest.raises(ValueError, match="bidirectional"):
        layer.kernel(8, backward=True)
    s5 = S5(3, 4, key=jax.random.key(0))
    # the message names the bad value and its step (it said "got a value that is not")
    with pytest.raises(ValueError, match=r"`dt`.*got nan at step 2 \(1 of 4 steps\)"):
        s5(jnp.ones((4, 3)), dt=jnp.asarray([1.0, 1.0, jnp.nan, 1.0]), mode="scan")
    with pytest.raises(ValueError, match=r"`dt`.*got -1\.0 \(1 of 1 steps\)"):
        s5.step(jnp.ones((3,)), s5.init_state(), -1.0)
    with pytest.raises(ValueError, match="`dt`"):
        s5.step(jnp.ones((3,)), s5.init_state(), jnp.ones(3))


def test_constructor_arguments_are_checked_by_type(library_errors):
    """bidirectional went through bool(): the string "False" built a bidirectional layer (whose
    step then refused to run). dt_min / dt_max take what init_log_dt takes: a concrete JAX
    scalar was refused as "must be finite numbers" although it was one."""
    key = jax.random.key(0)
    for cls in (S4, S4D, S5):
        with pytest.raises(TypeError, match=r"`bidirectional` must be a Python bool; got str"):
            cls(2, 4, bidirectional="False", key=key)
        from_jax = cls(2, 4, dt_min=jnp.float32(1e-3), dt_max=jnp.float32(0.1), key=key)
        want = cls(2, 4, dt_min=1e-3, dt_max=0.1, key=key).log_dt
        np.testing.assert_array_equal(from_jax.log_dt, want)
    with pytest.raises(TypeError, match=r"`dt_min` must be a Python float; got str"):
        S4D(2, 4, dt_min="1e-3", key=key)
    # S5.step's scalar dt: a Python int is a number (it said "Cast it first, e.g. dt.astype")
    s5 = S5(2, 4, key=key)
    x_t, state = jnp.ones((2,)), s5.init_state()
    np.testing.assert_array_equal(s5.step(x_t, state, dt=2)[0], s5.step(x_t, state, dt=2.0)[0])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (S4D, {"init": "legs"}, "Lambda_im"),
        (S4D, {"init": "inv"}, "Lambda_im"),
        (S4, {"measure": "legs"}, "Lambda_im"),
        (S5, {}, "Lambda_im"),
    ],
)
def test_half_precision_parameters_that_overflow_are_refused(cls, kwargs, name, library_errors):
    """HiPPO's imaginary parts grow like N^2: at N = 512 they pass float16's largest number
    (65504) and became inf, with only NumPy's cast warning; every output was NaN. The layer
    names the dtype and the parameter; bfloat16 (float32's range) holds them."""
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=rf"`dtype`=float16 cannot hold the initial `{name}`.*512"):
        cls(1, 512, dtype=jnp.float16, key=key, **kwargs)
    layer = cls(1, 512, dtype=jnp.bfloat16, key=key, **kwargs)
    assert bool(jnp.all(jnp.isfinite(layer(jnp.ones((4, 1), jnp.bfloat16)))))
    small = cls(1, 64, dtype=jnp.float16, key=key, **kwargs)  # fits: built as before
    assert bool(jnp.all(jnp.isfinite(small(jnp.ones((4, 1), jnp.float16)))))


def test_sequence_constructors_name_a_bad_key(library_errors):
    # An int seed failed inside jax.random ("invalid PRNG key data ... Got 0") and a batch of
    # keys in jax.random.split, naming no argument; each now fails before any draw.
    from spectrax.models import SSMSequenceModel
    from spectrax.nn import HyenaFilter, HyenaOperator
    from spectrax.ssm import init_log_dt, ptd

    builds = {
        "S4": lambda k: S4(3, 4, key=k),
        "S4D": lambda k: S4D(3, 4, key=k),
        "S5": lambda k: S5(3, 4, key=k),
        "HyenaFilter": lambda k: HyenaFilter(3, 8, key=k),
        "HyenaOperator": lambda k: HyenaOperator(3, 8, key=k),
        "SSMSequenceModel": lambda k: SSMSequenceModel(2, 2, 4, 1, key=k),
        "init_log_dt": lambda k: init_log_dt(k, (3,)),
        "ptd": lambda k: ptd(hippo("legs", 4)[0], 0.1, k),
    }
    for build in builds.values():
        with pytest.raises(TypeError, match=r"`key` must be a PRNG key.*int 0"):
            build(0)
        with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*\(2,\)"):
            build(jax.random.split(jax.random.key(0)))
    # dropout's key; an abstract model: the check comes before any parameter is read
    model = eqx.filter_eval_shape(
        lambda k: SSMSequenceModel(2, 2, 4, 1, dropout=0.1, key=k), jax.random.key(0)
    )
    with pytest.raises(TypeError, match="`key` must be a PRNG key"):
        model(jnp.ones((5, 2)), key=1)


@pytest.mark.parametrize("name", ["s4d-legs", "s5", "hyena"])
def test_numpy_float64_input_without_x64_computes_float32_silently(name, library_errors):
    # Without x64 a NumPy float64 array (np.random's default) is float32 in JAX; the layers
    # widened themselves to "float64" for it anyway: 7 to 16 warnings ("Explicitly requested
    # dtype float64 ... not available") per call (SSMSequenceModel's blocks too), and the same
    # float32 result. Eager calls: under jit the input is float32 on entry.
    import warnings

    from spectrax.nn import HyenaOperator

    x = np.random.default_rng(0).standard_normal((6, 3))  # float64
    if name == "hyena":
        layer = HyenaOperator(3, 6, filter_order=4, key=jax.random.key(0))
    else:
        layer = _make(name, "zoh", jnp.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer(x)
        if hasattr(layer, "step"):
            y_t, _ = layer.step(x[0], layer.init_state())
            assert y_t.dtype == jnp.float32
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, layer(jnp.asarray(x, jnp.float32)))


def test_channels_first_sequences_are_named_as_such(library_errors):
    # (H, L), the axis order of fft_conv and of fields, said "Batch with jax.vmap".
    from spectrax.models import SSMSequenceModel
    from spectrax.nn import HyenaOperator

    # abstract layers: the shape check comes before any parameter is read
    builds = {
        "s4d": lambda k: S4D(3, 4, key=k),
        "hyena": lambda k: HyenaOperator(3, 8, key=k),
        "model": lambda k: SSMSequenceModel(3, 2, 4, 1, key=k),
    }
    layers = {n: eqx.filter_eval_shape(b, jax.random.key(0)) for n, b in builds.items()}
    for layer in layers.values():
        with pytest.raises(ValueError, match=r"got x\.shape=\(3, 8\)\. It looks channels-first"):
            layer(jnp.ones((3, 8)))
        with pytest.raises(ValueError, match=r"\(2, 8, 3\)\. Batch with jax\.vmap"):
            layer(jnp.ones((2, 8, 3)))
    block = layers["model"].blocks[0]
    with pytest.raises(ValueError, match=r"\(4, 8\)\. It looks channels-first.*pass x\.T"):
        block(jnp.ones((4, 8)), key=None, inference=True)


def test_forward_mode_runs_in_scan_mode_only():
    # S4D's documented contract: "conv" is fft_conv's custom_vjp (reverse mode only), "scan"
    # takes jax.jacfwd, and the two Jacobians are the same linear map.
    layer = _make("s4d-legs", "zoh", jnp.float32)
    x = jnp.ones((5, 3))
    j_scan = jax.jit(jax.jacfwd(lambda x: layer(x, mode="scan")))(x)
    assert_close(j_scan, jax.jit(jax.jacrev(lambda x: layer(x, mode="conv")))(x), rtol=1e-5)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.eval_shape(jax.jacfwd(lambda x: layer(x, mode="conv")), x)


@pytest.mark.parametrize("name", ["s4-legs", "s4d-legs", "s5"])
def test_step_refuses_a_state_of_another_dtype(name, library_errors):
    """A real state (e.g. jnp.zeros of init_state's shape) was accepted and came back complex,
    so a lax.scan over step failed on the carry's type with an error naming neither `state` nor
    init_state(). Now step names the dtype it needs."""
    layer = _make(name, "zoh", jnp.float32)
    zero = layer.init_state()
    with pytest.raises(TypeError, match=r"`state` must have dtype complex64.*got float32"):
        layer.step(jnp.ones((3,)), jnp.zeros(zero.shape))


def test_s4_stays_stable_whatever_the_trained_values(x64):
    """S4's Re Λ is -exp(.) and A = Λ - P P^*: for any trained values (log_Lambda_re anywhere in
    [-30, 10], large random P and Λ_im) the continuous A has no eigenvalue in the right half
    plane (a parametrisation Re Λ = log_Lambda_re would fail: half the values are positive)."""
    layer = S4(3, 8, measure="legt", dtype=jnp.float64, key=jax.random.key(0))
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    trained = eqx.tree_at(
        lambda m: (m.log_Lambda_re, m.Lambda_im, m.P),
        layer,
        (
            jax.random.uniform(k1, layer.log_Lambda_re.shape, jnp.float64, -30.0, 10.0),
            100.0 * jax.random.normal(k2, layer.Lambda_im.shape, jnp.float64),
            10.0 * jax.random.normal(k3, layer.P.shape, jnp.float64),
        ),
    )
    a = np.asarray(trained.continuous()[0])
    for a_h in a.reshape(-1, *a.shape[-2:]):
        eig = np.linalg.eigvals(a_h)
        assert np.max(eig.real) <= 1e-10 * np.max(np.abs(eig)), np.max(eig.real)


@pytest.mark.parametrize("cls", [S4, S4D, S5])
def test_bfloat16_parameters_every_mode_and_step(cls):
    """bfloat16 parameters and inputs under the suite's strict promotion: every mode and step
    run, computing in float32, and agree with the same parameters in float32 to bfloat16
    rounding of the output."""
    half = cls(2, 4, dtype=jnp.bfloat16, key=jax.random.key(1))
    full = jax.tree.map(
        lambda v: v.astype(jnp.float32) if eqx.is_array(v) and v.dtype == jnp.bfloat16 else v,
        half,
    )
    x = jax.random.normal(jax.random.key(2), (16, 2)).astype(jnp.bfloat16)

    @eqx.filter_jit  # one program per layer: eager, the scans and the step dispatch per op
    def run(m, u):
        return {mode: m(u, mode=mode) for mode in MODES}, m.step(u[0], m.init_state())

    outs, (y_t, state) = run(half, x)
    refs, (ref_t, _) = run(full, x.astype(jnp.float32))
    for mode in MODES:
        y = outs[mode]
        assert y.dtype == jnp.bfloat16 and y.shape == (16, 2)
        assert rel_err(y.astype(jnp.float32), refs[mode]) < 1e-2, mode
    assert y_t.dtype == jnp.bfloat16 and state.dtype == jnp.complex64
    assert rel_err(y_t.astype(jnp.float32), ref_t) < 1e-2


def test_param_labels_and_optax_groups():
    model = [
        S4(2, 4, key=jax.random.key(0)),
        S4D(2, 4, key=jax.random.key(1)),
        S5(2, 4, key=jax.random.key(2)),
        eqx.nn.Linear(2, 2, key=jax.random.key(3)),
    ]
    params = eqx.filter(model, eqx.is_array)
    labels = ssm_param_labels(params)
    assert jax.tree.structure(labels) == jax.tree.structure(params)
    assert labels[0].P == labels[0].B == labels[0].log_dt == labels[0].log_Lambda_re == "ssm"
    assert labels[0].C == labels[0].D == "default"
    assert labels[1].log_Lambda_re == labels[1].Lambda_im == labels[1].B == "ssm"
    assert labels[2].log_dt == labels[2].B == "ssm" and labels[2].C == "default"
    assert labels[3].weight == "default"
    # The "ssm" group gets no weight decay: with a zero gradient only "default" leaves move.
    opt = optax.multi_transform(
        {"ssm": optax.adam(1e-2), "default": optax.adamw(1e-2, weight_decay=0.5)}, lambda _: labels
    )
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count with floats

        @jax.jit  # eager, every optimizer op compiles once per leaf shape
        def update(params):
            zeros = jax.tree.map(jnp.zeros_like, params)
            return opt.update(zeros, opt.init(params), params)[0]

        updates = update(params)
    assert float(jnp.max(jnp.abs(updates[1].B))) == 0.0
    assert float(jnp.max(jnp.abs(updates[1].C))) > 0.0
    assert np.all(np.asarray(updates[3].weight) != 0.0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_float64_input_computes_in_float64(name, x64):
    """A float64 input to a float32 layer is not narrowed: the output equals that of the same
    layer stored in float64 to float64 round-off (a float32 computation is ~1e-7 away), and the
    gradient reaches the float32 parameters in their own dtype."""
    layer = _make(name, "zoh", jnp.float32)
    wide = jax.tree.map(lambda v: v.astype(jnp.float64) if eqx.is_inexact_array(v) else v, layer)
    x = jax.random.normal(jax.random.key(1), (32, 3), jnp.float64)

    @eqx.filter_jit  # one program for every call: eager scans dispatch per op
    def run(layer, wide, x):
        outs = {}
        for mode in MODES:
            outs[mode] = (
                layer(x, mode=mode),
                wide(x, mode=mode),
                layer(x.astype(jnp.float32), mode=mode),
            )
        return outs, eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(layer)

    outs, grads = run(layer, wide, x)
    for mode in MODES:
        y, ref, narrow = outs[mode]
        assert y.dtype == jnp.float64
        assert rel_err(y, ref) < 1e-12, mode
        narrow = narrow.astype(jnp.float64)
        assert rel_err(narrow, ref) > 1e-10, mode  # the check can fail
    assert grads.D.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(grads.D)))


@pytest.mark.parametrize("name", ["s4-legs", "s4d-legs", "s5"])
def test_dtype_rule(name, x64):
    """The documented rule (S4D's ``dtype``): ``__call__`` returns x's dtype for every mix of
    parameter and input dtypes, in every mode; ``step`` returns x_t's dtype and keeps
    init_state()'s; float64 parameters compute a float32 input in float64 (rounded once)."""
    f64, f32, b16 = jnp.float64, jnp.float32, jnp.bfloat16
    base = _make(name, "zoh", f32)
    # (every mode shares the final cast: all modes for one mix, the default mode for the rest)
    for pd, xd in itertools.product((b16, f64), (b16, f32, f64)):
        layer = jax.tree.map(lambda v, pd=pd: v.astype(pd) if eqx.is_inexact_array(v) else v, base)
        zero = layer.init_state()
        assert zero.dtype == (jnp.complex128 if pd == f64 else jnp.complex64)
        for mode in MODES if (pd, xd) == (b16, f32) else (None,):
            x = jax.ShapeDtypeStruct((5, 3), xd)
            out = eqx.filter_eval_shape(lambda m, x, mode=mode: m(x, mode=mode), layer, x)
            assert out.dtype == xd, (pd, xd, mode)
        y_t, state = eqx.filter_eval_shape(
            lambda m, u, s: m.step(u, s), layer, jax.ShapeDtypeStruct((3,), xd), zero
        )
        assert y_t.dtype == xd and state.dtype == zero.dtype, (pd, xd)
    if name == "s4-legs":
        return  # its __call__ is S4D's (_apply_siso): the numerical check below runs there
    wide = jax.tree.map(lambda v: v.astype(f64) if eqx.is_inexact_array(v) else v, base)
    x = jax.random.normal(jax.random.key(1), (16, 3), f32)
    run = eqx.filter_jit(lambda m, x: m(x, mode="recurrent"))
    np.testing.assert_array_equal(
        np.asarray(run(wide, x)), np.asarray(run(wide, x.astype(f64)).astype(f32))
    )


# --- each layer's kernel against a float64 NumPy system built from the papers' definitions ----


def _np_complex(p):
    p = np.asarray(p, np.float64)
    return p[..., 0] + 1j * p[..., 1]


def _np_discretize(a, b, dt, disc):
    """(Ā, B̄) of x' = a x + b u: ZOH as one scipy expm of [[a, b], [0, 0]] dt, bilinear directly."""
    n = a.shape[0]
    if disc == "zoh":
        block = np.zeros((n + 1, n + 1), np.complex128)
        block[:n, :n], block[:n, n] = a, b
        m = scipy.linalg.expm(block * dt)
        return m[:n, :n], m[:n, n]
    left = np.eye(n) - 0.5 * dt * a
    return np.linalg.solve(left, np.eye(n) + 0.5 * dt * a), np.linalg.solve(left, dt * b)


def _np_kernel(a_bar, b_bar, c, length):
    """C Ā^l B̄ for l < length by a direct loop."""
    out, x = [], b_bar.copy()
    for _ in range(length):
        out.append(c @ x)
        x = a_bar @ x
    return np.array(out)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    ("measure", "n", "disc"),
    [("legs", 4, "bilinear"), ("legt", 5, "bilinear"), ("lagt", 4, "zoh"), ("fout", 5, "zoh")],
)
def test_s4_initial_kernel_is_the_hippo_systems(measure, n, disc):
    """At initialisation S4 is the HiPPO system itself in its eigenbasis: Re(C̃ Ā^l B̄) equals
    Re((C̃ V^*) Ā^l B̄) of the real (A, B) = hippo(measure) in the original basis, with A
    shifted by S4's documented stability margin (Re Λ = -1e-4 where the normal part has
    Re Λ = 0). Odd N included (a zero eigenvalue for LegT and FouT). Measured: < 1e-14."""
    layer = S4(
        2,
        n,
        measure=measure,
        disc=disc,
        dt_min=0.01,
        dt_max=0.5,
        dtype=jnp.float64,
        key=jax.random.key(0),
    )
    length = 23
    a, b = hippo(measure, n)
    lam, _, _, v = nplr(measure, n)
    margin = np.where(-lam.real < 1e-4, -1e-4 - lam.real, 0.0)
    a = a + v @ np.diag(margin) @ v.conj().T
    c = _np_complex(layer.C) @ v.conj().T  # the read-out in the original basis
    dt = np.exp(np.asarray(layer.log_dt))
    want = np.stack(
        [np.real(_np_kernel(*_np_discretize(a, b, dt[h], disc), c[h], length)) for h in range(2)]
    )
    got = eqx.filter_jit(lambda m: m.kernel(length))(layer)
    assert_close(got, want, rtol=1e-12)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_diagonal_kernels_are_the_conjugate_pair_systems(disc):
    """S4D: K_h = 2 Re(C_h Λ̄_h^l B̄_h) is the kernel of the real system with both members of
    each conjugate pair; S5: K[:, :, l] = 2 Re(C Λ̄^l B̄) (MIMO, one step per state). Both
    against the dense float64 system and a direct loop. Measured: < 5e-15."""
    length = 23
    s4d = S4D(
        2,
        6,
        init="lin",
        disc=disc,
        dt_min=0.01,
        dt_max=0.5,
        dtype=jnp.float64,
        key=jax.random.key(0),
    )
    lam = -np.exp(np.asarray(s4d.log_Lambda_re)) + 1j * np.asarray(s4d.Lambda_im)
    b, c = _np_complex(s4d.B), _np_complex(s4d.C)
    dt = np.exp(np.asarray(s4d.log_dt))
    want = []
    for h in range(2):
        a_full = np.diag(np.concatenate([lam[h], lam[h].conj()]))
        b_full = np.concatenate([b[h], b[h].conj()])
        c_full = np.concatenate([c[h], c[h].conj()])
        want.append(
            np.real(_np_kernel(*_np_discretize(a_full, b_full, dt[h], disc), c_full, length))
        )
    assert_close(eqx.filter_jit(lambda m: m.kernel(length))(s4d), np.stack(want), rtol=1e-12)

    s5 = S5(3, 6, disc=disc, dt_min=0.01, dt_max=0.5, dtype=jnp.float64, key=jax.random.key(0))
    lam = -np.exp(np.asarray(s5.log_Lambda_re)) + 1j * np.asarray(s5.Lambda_im)
    b, c = _np_complex(s5.B), _np_complex(s5.C)  # (M, H), (H, M)
    dt = np.exp(np.asarray(s5.log_dt))
    want = np.zeros((3, 3, length))
    for m in range(lam.shape[0]):  # each state is a scalar system with its own step
        a_bar, b_bar = _np_discretize(lam[m : m + 1, None], np.ones(1), dt[m], disc)
        powers = a_bar[0, 0] ** np.arange(length) * b_bar[0]
        want += 2 * np.real(np.einsum("o,i,l->oil", c[:, m], b[m], powers))
    assert_close(eqx.filter_jit(lambda m: m.kernel(length))(s5), want, rtol=1e-12)


def test_s5_builds_under_eval_shape_and_jit():
    """S5's B was projected in NumPy from a jax.random draw: building under
    eqx.filter_eval_shape (a checkpoint's abstract skeleton) or jit raised
    TracerArrayConversionError. The jitted build equals the eager one."""
    build = lambda k: S5(3, 4, key=k)  # noqa: E731
    skeleton = eqx.filter_eval_shape(build, jax.random.key(0))
    assert skeleton.B.shape == (2, 3, 2) and skeleton.B.dtype == jnp.float32
    eager, jitted = build(jax.random.key(0)), eqx.filter_jit(build)(jax.random.key(0))
    assert_close(jitted.B, eager.B, jnp.float32, what="B, jit vs eager")


def _s5_init_before_blocks(channels, state_size, key, dtype):
    """S5's Λ and B as built before the ``blocks`` option (one HiPPO-N of size P), copied
    from that code: the blocks=1 initialisation must stay bit-identical to it."""
    lam, _, _, v = nplr("legs", state_size)
    keep = np.argsort(lam.imag)[state_size // 2 :]
    kb = jax.random.split(key, 5)[0]
    b = jax.random.normal(kb, (state_size, channels))
    vk = v.conj().T[keep]
    hi = jax.lax.Precision.HIGHEST
    b_re = jnp.matmul(jnp.asarray(vk.real, b.dtype), b, precision=hi)
    b_im = jnp.matmul(jnp.asarray(vk.imag, b.dtype), b, precision=hi)
    return (
        jnp.asarray(np.log(-lam.real[keep]), dtype),
        jnp.asarray(lam.imag[keep], dtype),
        (jnp.stack([b_re, b_im], axis=-1) / np.sqrt(channels)).astype(dtype),
    )


@pytest.mark.parametrize(("channels", "state_size"), [(5, 16)])
def test_s5_one_block_is_the_previous_initialisation(channels, state_size):
    """blocks=1 (the default) gives bit-identical parameters to the code before ``blocks``.
    The layer draws under ``jax.jit``, so the reference is jitted too: eager and jitted float32
    matmuls may differ in the last bit (jaxlib 0.10.0: 3 of B's 80 entries by one ulp)."""
    key = jax.random.key(11)
    want = jax.jit(lambda k: _s5_init_before_blocks(channels, state_size, k, jnp.float32))(key)
    for layer in (S5(channels, state_size, key=key), S5(channels, state_size, blocks=1, key=key)):
        for name, w in zip(("log_Lambda_re", "Lambda_im", "B"), want, strict=True):
            got = getattr(layer, name)
            assert got.dtype == w.dtype and np.array_equal(np.asarray(got), np.asarray(w)), name


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(("state_size", "blocks"), [(8, 2), (12, 3), (16, 8)])
def test_s5_block_diagonal_initialisation(state_size, blocks):
    """blocks=J (Smith et al., 2023; lindermanlab/S5 ``--blocks``): Λ is HiPPO-N of size P/J
    repeated J times (vs a float64 NumPy eig of LegS's normal part S = A + p p^T from the
    closed form, and vs nplr), and B = V^* b / √H for the explicit block-diagonal V.
    Measured: Λ within 7e-16 of eig(S) and equal to nplr's, B within 7e-17 of the projection."""
    channels, key = 3, jax.random.key(5)
    layer = S5(channels, state_size, blocks=blocks, dtype=jnp.float64, key=key)
    size, half = state_size // blocks, state_size // (2 * blocks)
    lam = -np.exp(np.asarray(layer.log_Lambda_re)) + 1j * np.asarray(layer.Lambda_im)
    # LegS from its closed form: A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k).
    r = np.sqrt(2.0 * np.arange(size) + 1.0)
    a = -np.tril(np.outer(r, r), -1) - np.diag(np.arange(size) + 1.0)
    p = np.sqrt(np.arange(size) + 0.5)
    s = a + np.outer(p, p)
    eig = np.linalg.eigvals(s)
    eig = eig[eig.imag > 0]
    eig = eig[np.argsort(eig.imag)]
    lam_n, _, _, v = nplr("legs", size)
    keep = np.argsort(lam_n.imag)[half:]
    for j in range(blocks):
        block = lam[j * half : (j + 1) * half]
        assert_close(block, eig, rtol=1e-13, what=f"Λ block {j} vs eig(S)")
        assert_close(block, lam_n[keep], rtol=1e-15, what=f"Λ block {j} vs nplr")
    # V diagonalises S: the projection below is onto S's eigenbasis.
    assert_close(s @ v, v * lam_n[None, :], rtol=1e-13, what="S V = V Λ")
    v_full = scipy.linalg.block_diag(*[v] * blocks)  # (P, P), unitary
    rows = np.concatenate([j * size + keep for j in range(blocks)])
    b = np.asarray(jax.random.normal(jax.random.split(key, 5)[0], (state_size, channels)))
    want = (v_full.conj().T @ b)[rows] / np.sqrt(channels)
    assert_close(_np_complex(layer.B), want, rtol=1e-13, what="B = V^* b")
    assert layer.log_dt.shape == (state_size // 2,)  # a step per state, not per block


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(("blocks", "disc"), [(2, "zoh"), (4, "bilinear")])
def test_s5_modes_agree_with_blocks(blocks, disc):
    """Repeated eigenvalues across blocks change nothing in the modes: conv, scan and recurrent
    equal the step recurrence (measured: at most 2.2e-16 apart)."""
    layer = _make("s5", disc, jnp.float64, state=8, blocks=blocks)
    x = jax.random.normal(jax.random.key(1), (40, 3), jnp.float64)
    _check_modes(layer, x, 1e-10)


def test_s5_blocks_errors(library_errors):
    for state_size, blocks in [(8, 3), (8, 8), (12, 4)]:
        with pytest.raises(ValueError, match=rf"`blocks`.*`state_size`.*even.*{blocks}"):
            S5(3, state_size, blocks=blocks, key=jax.random.key(0))
    with pytest.raises(ValueError, match="blocks"):
        S5(3, 8, blocks=0, key=jax.random.key(0))


def test_s5_blocks_build_under_eval_shape_and_jit():
    build = lambda k: S5(3, 8, blocks=2, key=k)  # noqa: E731
    skeleton = eqx.filter_eval_shape(build, jax.random.key(0))
    assert skeleton.B.shape == (4, 3, 2) and skeleton.Lambda_im.shape == (4,)
    eager, jitted = build(jax.random.key(0)), eqx.filter_jit(build)(jax.random.key(0))
    assert_close(jitted.B, eager.B, jnp.float32, what="B, jit vs eager")


@pytest.mark.parametrize("name", ["s4-legs", "s4d-legs", "s5"])
def test_float64_step_of_a_float32_layer_computes_in_float64(name, x64):
    """step follows __call__'s dtype rule: a float64 x_t widens float32 parameters (it was cast
    down to float32, 1e-8 relative off the float64 call). From the zero state one step is the
    float64 call on a length-1 sequence to float64 round-off, returned as float64; the state
    stays complex64 (init_state()'s dtype) so lax.scan can carry it. S5 with a step scale too."""
    layer = _make(name, "zoh", jnp.float32)
    x = jax.random.normal(jax.random.key(3), (3,), jnp.float64)

    @eqx.filter_jit  # one program (eager, the recurrent call dispatches op by op)
    def run(m, u, s):
        out = {"step": m.step(u, s), "call": m(u[None], mode="recurrent")[0]}
        if name == "s5":  # with a step scale too
            out["step_dt"] = m.step(u, s, 0.5)[0]
            out["call_dt"] = m(u[None], dt=jnp.asarray([0.5]), mode="recurrent")[0]
        return out

    out = run(layer, x, layer.init_state())
    y_t, state = out["step"]
    assert y_t.dtype == jnp.float64 and state.dtype == jnp.complex64
    assert_close(y_t, out["call"], jnp.float64)
    if name == "s5":
        assert_close(out["step_dt"], out["call_dt"], jnp.float64)


@pytest.mark.parametrize("name", ["s4d-inv", "s5"])
def test_float32_kernel_of_modes_near_minus_one(name, x64):
    """Bilinear at dt = 1: the fast modes' Λ̄ lie near -1 (|Λ dt| >> 2), where the powers
    exp(l log Λ̄) rounded l π ulps: the float32 kernel (L = 2048) was 3.6e-5 (S4D-Inv) and
    2.7e-5 (S5) from the float64 one of the same parameters; from log(-Λ̄) and an exact
    (-1)^l, 1.9e-6 and 1.5e-6."""
    cls, kw = LAYERS[name]
    layer = cls(2, 32, disc="bilinear", dt_min=1.0, dt_max=1.0, key=jax.random.key(0), **kw)
    kernel = eqx.filter_jit(lambda m: m.kernel(2048))
    wide = jax.tree_util.tree_map(
        lambda p: p.astype(jnp.float64) if eqx.is_inexact_array(p) else p, layer
    )
    assert_close(kernel(layer), kernel(wide), rtol=1e-5)


# --- PTD init (Yu, Mahoney & Erichson, 2024): the layers are the perturbed LegS exactly --------
# N = 16 (n = 14 with r = 2 real eigenvalues): one cached PTD, shared by these tests.


def _dense_ptd_kernel(ae, b, c, dt, length):
    a_bar, b_bar = discretize_dense(jnp.asarray(ae), jnp.asarray(b), dt, "zoh")
    return np.asarray(dense_kernel(a_bar, b_bar.T, jnp.asarray(c)[:, None, :], length))


@pytest.mark.usefixtures("x64")
def test_s4d_ptd_is_the_perturbed_legs_system():
    # Fails with a full-weight B on the real eigenvalues' slots (they would count twice).
    layer = S4D(3, 16, init="ptd", dtype=jnp.float64, key=jax.random.key(1))
    lam, v, ae, b = ptd_legs(16)
    c = np.asarray(layer.C)  # (H, n): the real read-out, trained in the PTD eigenbasis
    assert c.shape == (3, 14)
    dts = np.exp(np.asarray(layer.log_dt))
    k = np.asarray(layer.kernel(48))
    for h in range(3):
        ref = _dense_ptd_kernel(ae, b[:, None], c[h : h + 1], float(dts[h]), 48)[0, 0]
        assert rel_err(k[h], ref) < 1e-9, (h, rel_err(k[h], ref))


@pytest.mark.usefixtures("x64")
def test_s5_ptd_is_the_perturbed_legs_system_per_block():
    # Fails with a full-weight B on real slots. One dt for all states, so each block is one
    # dense system (ae, b_j, c_j) discretised with it; b_j and c_j read back from B and C.
    layer = S5(2, 32, blocks=2, init="ptd", dtype=jnp.float64, key=jax.random.key(2))
    layer = eqx.tree_at(lambda m: m.log_dt, layer, jnp.full((16,), np.log(0.05)))
    lam, v, ae, _ = ptd_legs(16)
    lam_s, w, cols = ptd_slots(lam, v)
    assert np.array_equal(np.asarray(layer.Lambda_im), np.tile(lam_s.imag, 2))
    bt = np.asarray(layer.B[..., 0]) + 1j * np.asarray(layer.B[..., 1])  # (P/2, H)
    n = cols.shape[0]
    assert layer.C.shape == (2, 2 * n)  # the real read-out, trained in the PTD eigenbasis
    pair = lam_s.imag != 0
    ref = 0.0
    for j in range(2):
        sl = slice(8 * j, 8 * j + 8)
        c = np.asarray(layer.C[:, n * j : n * j + n])  # (H, n)
        # B̃ = W b with W's real slots' rows real: n real equations for the real b (n, H)
        mat = np.concatenate([w.real, w[pair].imag])
        b = np.linalg.solve(mat, np.concatenate([bt[sl].real, bt[sl][pair].imag]))
        assert rel_err(w @ b, bt[sl]) < 1e-12
        ref = ref + _dense_ptd_kernel(ae, b, c, 0.05, 40)
    assert rel_err(np.asarray(layer.kernel(40)), ref) < 1e-9, rel_err(layer.kernel(40), ref)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("cls", [S4D, S5])
def test_ptd_layers_modes_agree_and_differentiate(cls):
    # conv == recurrent (the scan shares the recurrent's discretisation, tested above for HiPPO)
    layer = cls(2, 16, init="ptd", dtype=jnp.float64, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (12, 2), jnp.float64)
    y_conv = layer(x, mode="conv")
    assert rel_err(layer(x, mode="recurrent"), y_conv) < 1e-10
    grads = jax.grad(lambda b: jnp.sum(eqx.tree_at(lambda m: m.B, layer, b).kernel(12) ** 2))
    assert bool(jnp.all(jnp.isfinite(grads(layer.B))))
    # Float32 kernel (the float64 parameters rounded) against float64; measured at N = 16,
    # keys 0-3: S4D 6.8e-6 to 8.8e-6 (C = c Ṽ: the slots' large terms cancel, so rounding is
    # amplified by up to cond(Ṽ)), S5 9e-8 to 7.4e-7.
    f32 = jax.tree.map(lambda p: p.astype(jnp.float32) if eqx.is_array(p) else p, layer)
    assert rel_err(f32.kernel(48), layer.kernel(48)) < (3e-5 if cls is S4D else 3e-6)


@pytest.mark.usefixtures("x64")
def test_s4d_ptd_reads_out_a_real_system():
    # C = c Ṽ for a real c: the slots' large B̃ cancel. Drawn in the eigenbasis (as for the
    # other inits), C made the initial kernel about 100x S4D-LegS's (N = 64: rms 6.1 vs 0.06).
    ptd = S4D(16, 16, init="ptd", dtype=jnp.float64, key=jax.random.key(3))
    legs = S4D(16, 16, init="legs", dtype=jnp.float64, key=jax.random.key(3))
    rms = lambda layer: float(jnp.sqrt(jnp.mean(layer.kernel(256) ** 2)))  # noqa: E731
    assert rms(ptd) < 2.0 * rms(legs), (rms(ptd), rms(legs))


def test_ptd_init_errors_and_abstract_build(library_errors):
    with pytest.raises(ValueError, match="`init`.*'hippo'"):
        S5(2, 16, init="legs", key=jax.random.key(0))
    with pytest.raises(ValueError, match="`init`.*'ptd'"):
        S4D(2, 16, init="ptdd", key=jax.random.key(0))
    # Checkpoint skeletons build layers abstractly: the PTD is computed concretely all the same.
    for cls in (S4D, S5):
        shape = eqx.filter_eval_shape(
            lambda k, cls=cls: cls(2, 16, init="ptd", key=k), jax.random.key(0)
        )
        built = cls(2, 16, init="ptd", key=jax.random.key(0))
        assert jax.tree.map(lambda a: a.shape, shape) == jax.tree.map(jnp.shape, built)
        jitted = eqx.filter_jit(lambda k, cls=cls: cls(2, 16, init="ptd", key=k))(jax.random.key(0))
        assert rel_err(jitted.B, built.B) < 1e-6


@pytest.mark.parametrize(
    "build",
    [
        lambda k: S4D(4, 16, init="ptd", key=k),
        lambda k: S5(4, 16, key=k),
        lambda k: S5(4, 16, init="ptd", key=k),
    ],
    ids=["s4d-ptd", "s5-hippo", "s5-ptd"],
)
def test_float32_ssm_parameters_do_not_depend_on_x64(build):
    # c (S4D-PTD) and S5's b and c were drawn in the default float dtype: with jax_enable_x64 on,
    # a float32 layer's B and C came from float64 normals, other bits (S4D-PTD's C: max
    # difference 2.4 at N = 16), unlike every other init.
    off = build(jax.random.key(5))
    with jax.enable_x64(True):
        on = build(jax.random.key(5))
    for name in ("log_Lambda_re", "Lambda_im", "B", "C", "D", "log_dt"):
        assert getattr(on, name).dtype == jnp.float32
        assert np.array_equal(np.asarray(getattr(on, name)), np.asarray(getattr(off, name))), name


def test_s4_takes_init_as_s4d_and_s5_do(key):
    """``S4(init=...)`` is ``S4(measure=...)``, so one ``layer_kwargs={"init": ...}`` fits S4,
    S4D and S5 in an SSMSequenceModel (S4 refused ``init``); both names at once only if equal."""
    from spectrax.models import SSMSequenceModel

    a, b = S4(4, 8, init="legt", key=key), S4(4, 8, measure="legt", key=key)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.Lambda_im), np.asarray(S4(4, 8, key=key).Lambda_im))
    S4(4, 8, measure="legs", init="legs", key=key)
    with pytest.raises(ValueError, match=r"`measure` and `init` name the same thing"):
        S4(4, 8, measure="legs", init="legt", key=key)
    with pytest.raises(ValueError, match=r"`init` must be one of"):
        S4(4, 8, init="ptd", key=key)
    for layer in ("s4", "s4d", "s5"):
        kw = {"init": "legs"} if layer != "s5" else {"init": "hippo"}
        SSMSequenceModel(3, 2, 8, 1, layer=layer, state_size=8, layer_kwargs=kw, key=key)


@pytest.mark.parametrize("cut", [slice(0, 1), slice(0, 3)], ids=["one", "three"])
def test_a_complex_parameter_swapped_in_at_another_shape_is_refused(cut):
    """``eqx.tree_at`` putting a ``(..., 1)`` or ``(..., 3)`` array where a ``(..., 2)``
    (real, imag) pair was ran silently: a size-1 axis was read as both parts (the index
    clamped), a third entry ignored."""
    layer = S4D(3, 8, key=jax.random.key(0))
    pair = jnp.concatenate([layer.B, layer.B], -1)[..., cut]
    with pytest.raises(
        ValueError,
        match=r"`S4D.B` does not fit the layer: got float32\[3, 4, [13]\]; expected "
        r"Float\[Array, 'H M 2'\], sized as the layer's configuration and the fields before "
        r"it give \(channels=3, M=4, log_Lambda_re float32\[3, 4\], Lambda_im float32\[3, 4\]\)",
    ):
        eqx.tree_at(lambda m: m.B, layer, pair)(jnp.ones((8, 3)))
