"""Hyena: the operator equals an explicit O(L^2) float64 reference; causality; the implicit filter's
window and prefix property; transformations; bfloat16; a delay task; errors."""

import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

from spectrax.nn import HyenaFilter, HyenaOperator, hyena_recurrence
from tests.helpers import assert_close, rel_err

H, MAX_LEN = 3, 24


# One size throughout, parameters drawn once in float32 and cast: each new parameter shape or
# dtype costs compiles of the PRNG (~0.3 s each on CPU).
KW = {"filter_order": 8, "num_frequencies": 3}


@eqx.filter_jit  # one compile per tree, not one per leaf
def _cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


@functools.cache
def _op(dtype=jnp.float32, order=2, impl="auto", layout="paper"):
    op = HyenaOperator(
        H, MAX_LEN, order=order, impl=impl, layout=layout, key=jax.random.key(3), **KW
    )
    return op if dtype == jnp.float32 else _cast(op, dtype)


# One jitted call for every test: the same model and input shapes compile once.
_run = eqx.filter_jit(lambda model, x: model(x))
_filter = eqx.filter_jit(lambda f, length: f(length))  # length: static


def _x(length=MAX_LEN, dtype=jnp.float32, seed=1, shape=None):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal(shape or (length, H)), dtype)


def _reference(op: HyenaOperator, x) -> np.ndarray:
    """The operator in float64 numpy, every convolution an explicit lower-triangular Toeplitz
    matrix."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), eqx.filter(op, eqx.is_array))
    f = op.filter
    x = np.asarray(x, np.float64)
    length, n = x.shape[0], op.order
    m = n if op.layout == "paper" else n - 1  # long convolutions
    # Implicit filters: (t, cos 2 pi k l / max_len, sin ...) -> sine FFN -> exponential window.
    lag = np.arange(length)
    t = lag / (op.max_len - 1)
    phase = 2 * math.pi * np.outer(lag, np.arange(1, f.num_frequencies + 1)) / op.max_len
    a = np.concatenate([t[:, None], np.cos(phase), np.sin(phase)], axis=1)
    for w, b in zip(p.filter.weights, p.filter.biases, strict=True):
        a = np.sin(p.filter.omega * (a @ w.T + b))
    alpha = np.linspace(f.decay_min, f.decay_max, m * H)
    # channel c = i * m + j of the filter bank is channel i of the j-th convolution
    h = ((a @ p.filter.out_weight.T) * np.exp(-np.outer(t, alpha))).T
    h = h.reshape(H, m, length).transpose(1, 0, 2)
    # Projection, then the short causal depthwise convolution.
    z = x @ p.in_weight.T + p.in_bias
    zs = np.tile(p.short_bias, (length, 1))
    for i in range(length):
        for s in range(min(i + 1, p.short_kernel.shape[1])):
            zs[i] += p.short_kernel[:, s] * z[i - s]
    x_gate, v = zs.T.reshape(n + 1, H, length)[:n], zs.T[-H:]  # x^1 .. x^N and v
    # S^k = T(h^k) + diag(D^k), T[c, i, j] = h[c, i - j] below the diagonal, 0 above.
    diff = lag[:, None] - lag[None, :]
    s = [
        np.where(diff >= 0, h[k][:, np.maximum(diff, 0)], 0.0)
        + p.D[k][:, None, None] * np.eye(length)
        for k in range(m)
    ]
    if op.layout == "paper":  # y = x^N S^N ( .. x^2 S^2 (x^1 S^1 v))
        y = v
        for k in range(n):
            y = x_gate[k] * np.einsum("cij,cj->ci", s[k], y)
    else:  # y = x^1 S^{N-1} (x^2 S^{N-2} ( .. x^{N-1} S^1 (x^N v)))
        y = x_gate[n - 1] * v
        for k in range(n - 1):
            y = x_gate[n - 2 - k] * np.einsum("cij,cj->ci", s[k], y)
    return (p.out_weight @ y + p.out_bias[:, None]).T


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    ("layout", "order", "length"),
    [("paper", 2, MAX_LEN), ("paper", 3, 17), ("reference", 2, MAX_LEN), ("reference", 3, 17)],
)
def test_operator_matches_explicit_convolution_float64(layout, order, length):
    op = _op(jnp.float64, order, layout=layout)
    x = _x(length, jnp.float64)
    y = _run(op, x)
    assert y.shape == (length, H) and y.dtype == jnp.float64
    assert_close(y, _reference(op, x), rtol=1e-12)


def test_operator_matches_explicit_convolution_float32():
    op, x = _op(), _x()
    assert_close(_run(op, x), _reference(op, x), rtol=1e-5)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("layout", ["paper", "reference"])
def test_causal_jacobian(layout):
    op, x = _op(jnp.float64, layout=layout), _x(16, jnp.float64)
    jac = eqx.filter_jit(lambda m, u: jax.jacrev(m)(u))(op, x)  # (L_out, H_out, L_in, H_in)
    lag = np.arange(16)[:, None] - np.arange(16)[None, :]  # t - s
    per_pair = np.abs(np.asarray(jac)).max(axis=(1, 3))
    # The FFT mixes every position's rounding error into every output, so the future
    # block is zero to rounding (measured ~1e-17 of the largest entry), not bitwise.
    assert per_pair[lag < 0].max() <= 1e-14 * per_pair.max()
    # The long filters carry information past the short filter's 3 taps.
    assert per_pair[lag >= 3].min() > 1e-8 * per_pair.max()


@pytest.mark.usefixtures("x64")
def test_window_decays_at_the_stated_rates():
    # The reference code's rates: the window falls to 1e-2 at t = 0.3 (fastest) and 1.5 (slowest).
    f = _op(jnp.float64).filter
    np.testing.assert_allclose(np.exp(-0.3 * f.decay_max), 1e-2, rtol=1e-12)
    np.testing.assert_allclose(np.exp(-1.5 * f.decay_min), 1e-2, rtol=1e-12)
    # every convolution of the operator gets slow and fast windows (rates interleaved)
    n = _op(jnp.float64).order
    per_conv = np.asarray(f.decay_rates()).reshape(H, n).T  # (n, H), as the operator splits
    for rates in per_conv:
        assert rates.min() < f.decay_min + (f.decay_max - f.decay_min) / n
        assert rates.max() > f.decay_max - (f.decay_max - f.decay_min) / n
    # With the FFN's weights zeroed its output is constant in t: h is the window times a
    # per-channel constant, and |h(t)| / |h(0)| = exp(-alpha_c t), t = l / (max_len - 1).
    f = HyenaFilter(
        2 * H,
        MAX_LEN,
        decay_min=1.0,
        decay_max=6.0,
        order=8,
        num_frequencies=3,
        key=jax.random.key(0),
    )
    f = _cast(f, jnp.float64)
    f = eqx.tree_at(lambda m: m.weights, f, tuple(jnp.zeros_like(w) for w in f.weights))
    h = np.asarray(f(MAX_LEN))
    t = np.arange(MAX_LEN) / (MAX_LEN - 1)
    assert np.all(np.abs(h[:, 0]) > 1e-3)
    alpha = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_allclose(np.abs(h / h[:, :1]), np.exp(-np.outer(alpha, t)), rtol=1e-12)


def test_filter_prefix_and_operator_prefix():
    f = _op().filter
    full = _filter(f, MAX_LEN)
    assert full.shape == (2 * H, MAX_LEN) and full.dtype == jnp.float32
    for length in (1, 17):
        assert_close(_filter(f, length), full[:, :length], rtol=1e-6)
    # Causality + prefix filters: the operator on a truncated sequence is the truncated output.
    op, x = _op(), _x()
    assert_close(_run(op, x[:10]), _run(op, x)[:10], rtol=1e-5)


def test_jit_vmap_and_gradients_finite():
    op = _op()
    xs = _x(shape=(3, MAX_LEN, H))
    assert_close(_run(op, xs[0]), op(xs[0]), rtol=1e-6)
    batched = eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(op, xs)
    assert_close(batched, jnp.stack([_run(op, x) for x in xs]), rtol=1e-6)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m, u: jnp.sum(jax.vmap(m)(u) ** 2)))(op, xs)
    leaves = [np.asarray(g) for g in jax.tree.leaves(eqx.filter(grads, eqx.is_array))]
    assert all(np.all(np.isfinite(g)) and np.max(np.abs(g)) > 0 for g in leaves)


@pytest.mark.usefixtures("x64")
def test_gradients_match_finite_differences():
    op, x = _op(jnp.float64), _x(12, jnp.float64)
    w = _x(12, jnp.float64, seed=5)
    params, static = eqx.partition(op, eqx.is_array)
    flat, unravel = ravel_pytree(params)
    loss = lambda u, q: jnp.sum(w * eqx.combine(unravel(q), static)(u))  # noqa: E731
    check_grads(jax.jit(loss), (x, flat), order=1, modes=("rev",))


def test_bfloat16():
    op, x16 = _op(), _x().astype(jnp.bfloat16)
    expected = _run(op, x16.astype(jnp.float32))
    # float32 parameters: computed in float32, rounded once at the end.
    y = _run(op, x16)
    assert y.dtype == jnp.bfloat16
    assert rel_err(y, expected) < 4e-3
    # bfloat16 parameters: bfloat16 projections, float32 filters, the recurrence rounded to
    # bfloat16 after each step.
    op16 = _cast(op, jnp.bfloat16)
    y16 = _run(op16, x16)
    assert y16.dtype == jnp.bfloat16
    err = rel_err(y16, _run(_cast(op16, jnp.float32), x16.astype(jnp.float32)))
    assert err < 1e-2, err  # measured 2.0e-3 (1.7e-3 for the float32 model above)


def test_pallas_path_is_causal_and_has_the_xla_gradients():
    # The fused kernel's custom VJP must be causal too: d y_t / d u_s = 0 for s > t, through the
    # Pallas forward and backward (interpret mode on CPU), and the parameter gradients must be
    # the XLA path's.
    x = _x(16)
    grad = eqx.filter_grad(lambda m, u: jnp.sum(jnp.sin(m(u))))

    @eqx.filter_jit  # one compiled program for the Jacobian and both gradients
    def run(pallas, xla, x):
        return jax.jacrev(pallas)(x), grad(pallas, x), grad(xla, x)

    jac, g_pallas, g_xla = run(_op(impl="pallas"), _op(impl="xla"), x)
    per_pair = np.abs(np.asarray(jac)).max(axis=(1, 3))
    lag = np.arange(16)[:, None] - np.arange(16)[None, :]
    # float32 FFT rounding only (measured 9e-8 of the largest entry)
    assert per_pair[lag < 0].max() <= 1e-6 * per_pair.max()
    assert per_pair[lag >= 3].min() > 1e-4 * per_pair.max()
    flat_pallas = ravel_pytree(eqx.filter(g_pallas, eqx.is_array))[0]
    flat_xla = ravel_pytree(eqx.filter(g_xla, eqx.is_array))[0]
    assert_close(flat_pallas, flat_xla, rtol=1e-5)


def test_pallas_interpret_matches_xla():
    # On CPU the Pallas kernel (gate fused) runs in interpret mode: the XLA path's numbers.
    x = _x(16)
    assert_close(_run(_op(impl="pallas"), x), _run(_op(impl="xla"), x), rtol=1e-5)


# Hyena learns y_t = u_{t-5} (u in channel 0 of the input, the prediction channel 0 of the
# output, so the out-projection is the linear read-out): a delay beyond the short filter's reach
# (2 steps), so the long filters must carry it. Measured (CPU, float32): held-out MSE
# 0.82 -> 5.2e-3 after 100 Adam steps (lr 1e-2, batches of 16 fresh sequences).
DELAY = 5


def _delay_data(seed, shape):
    u = np.random.default_rng(seed).standard_normal(shape + (MAX_LEN, 1)).astype(np.float32)
    y = np.zeros_like(u)
    y[..., DELAY:, :] = u[..., :-DELAY, :]
    return jnp.asarray(u), jnp.asarray(y)


def test_learns_a_delay():
    params, static = eqx.partition(_op(), eqx.is_array)
    opt = optax.adam(1e-2)

    def loss(p, u, y):
        x = jnp.pad(u, ((0, 0), (0, 0), (0, H - 1)))
        return jnp.mean((jax.vmap(eqx.combine(p, static))(x)[..., :1] - y) ** 2)

    @jax.jit
    def train(params):
        def step(carry, batch):
            params, state = carry
            grads = jax.grad(loss)(params, *batch)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count with floats
                updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        carry, _ = jax.lax.scan(step, (params, opt.init(params)), _delay_data(1, (100, 16)))
        return carry[0]

    u, y = _delay_data(2, (64,))
    evaluate = jax.jit(loss)
    before = float(evaluate(params, u, y))
    after = float(evaluate(train(params), u, y))
    assert after < before / 50, (before, after)


def test_errors(library_errors):
    op = _op()
    with pytest.raises(ValueError, match=r"max_len=24.*x.shape=\(25, 3\)"):
        op(jnp.ones((MAX_LEN + 1, H)))
    with pytest.raises(ValueError, match=r"d_model=3.*x.shape=\(10, 4\)"):
        op(jnp.ones((10, H + 1)))
    with pytest.raises(ValueError, match="Batch with jax.vmap"):
        op(jnp.ones((2, 10, H)))
    with pytest.raises(TypeError, match="`x`"):
        op(jnp.ones((10, H), jnp.int32))
    with pytest.raises(ValueError, match="`order` must be an integer >= 1; got 0"):
        HyenaOperator(H, MAX_LEN, order=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`short_filter`"):
        HyenaOperator(H, MAX_LEN, short_filter=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`impl`"):
        HyenaOperator(H, MAX_LEN, impl="cuda", key=jax.random.key(0))
    with pytest.raises(TypeError, match="`dtype` must be a real floating-point type.*int32"):
        HyenaOperator(H, MAX_LEN, dtype=jnp.int32, key=jax.random.key(0))
    with pytest.raises(TypeError, match="`dtype` must be a real floating-point type.*complex64"):
        HyenaFilter(H, MAX_LEN, dtype=jnp.complex64, key=jax.random.key(0))
    with pytest.raises(ValueError, match="decay_min=5.0, decay_max=2.0"):
        HyenaFilter(H, MAX_LEN, decay_min=5.0, decay_max=2.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`length`.*max_len=24; got 25. Build .* larger max_len"):
        op.filter(MAX_LEN + 1)
    # a larger max_len does not help a length of 0: the error no longer suggests it
    with pytest.raises(ValueError, match=r"`length`.*max_len=24; got 0\.$"):
        op.filter(0)
    with pytest.raises(TypeError, match="`length` must be a static Python int"):
        op.filter(jnp.asarray(3))
    with pytest.raises(ValueError, match=r"gates \(N, H, L\).*gates.shape=\(2, 3, 9\)"):
        hyena_recurrence(
            jnp.ones((H, 8)), jnp.ones((2, H, 9)), jnp.ones((2, H, 8)), jnp.ones((2, H))
        )


def test_recurrence_casts_gates_and_checks_filter_length(library_errors):
    v = jnp.ones((2, 8), jnp.float32)
    gates = jnp.full((1, 2, 8), 0.5, jnp.bfloat16)
    filters = jnp.ones((1, 2, 3), jnp.float32)
    skip = jnp.ones((1, 2), jnp.float32)
    y = hyena_recurrence(v, gates, filters, skip)
    assert y.dtype == jnp.float32  # v's dtype, whatever the gates'
    want = hyena_recurrence(v, gates.astype(jnp.float32), filters, skip)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(want))
    with pytest.raises(ValueError, match="`filters` must be no longer than the sequence"):
        hyena_recurrence(v, gates, jnp.ones((1, 2, 9)), skip)
    with pytest.raises(ValueError, match=r"`filters` must have at least one tap.*\(1, 2, 0\)"):
        hyena_recurrence(v, gates, jnp.ones((1, 2, 0)), skip)


def test_float64_input_computes_in_float64(x64):
    """A float64 input to a float32 operator computes in float64 (filters, FFTs, gates): it
    equals the operator stored in float64 to round-off, unlike the float32 computation."""
    op = HyenaOperator(4, 32, key=jax.random.key(0))
    wide = jax.tree.map(lambda v: v.astype(jnp.float64) if eqx.is_inexact_array(v) else v, op)
    x = jax.random.normal(jax.random.key(1), (32, 4), jnp.float64)
    # one compiled program: eager, each of the operator's ops compiles on its own
    run = eqx.filter_jit(lambda op, wide, x: (op(x), wide(x), op(x.astype(jnp.float32))))
    y, y_wide, narrow = run(op, wide, x)
    assert y.dtype == jnp.float64
    assert rel_err(y, y_wide) < 1e-12
    assert rel_err(narrow.astype(jnp.float64), y_wide) > 1e-10


def test_operator_dtype_rule(x64):
    """The documented rule (``dtype``): the output is in x's dtype for every mix of parameter and
    input dtypes; float64 parameters compute a float32 input in float64 (rounded once)."""
    f64, f32, b16 = jnp.float64, jnp.float32, jnp.bfloat16
    for pd, xd in itertools.product((b16, f32, f64), repeat=2):
        out = eqx.filter_eval_shape(_run, _op(pd), jax.ShapeDtypeStruct((8, H), xd))
        assert out.shape == (8, H) and out.dtype == xd, (pd, xd)
    x = _x(8)
    np.testing.assert_array_equal(
        np.asarray(_run(_op(f64), x)), np.asarray(_run(_op(f64), x.astype(f64)).astype(f32))
    )


def _recurrence_args(dtypes, seed=0):
    """v (H, L), gates (N, H, L), filters (N, H, K), skip (N, H) in the given dtypes."""
    rng = np.random.default_rng(seed)
    shapes = ((H, 16), (2, H, 16), (2, H, 16), (2, H))
    return [jnp.asarray(rng.standard_normal(s), d) for s, d in zip(shapes, dtypes, strict=True)]


@pytest.mark.usefixtures("x64")
def test_recurrence_returns_v_dtype_for_every_mix():
    # v is the data, as fft_conv's u: the output is in v's dtype whatever the others'.
    f64, f32, b16, f16 = jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16
    others = [(f32, f64, f32), (f64, f32, b16), (b16, b16, f64), (f16, f32, b16), (f32,) * 3]
    for v, rest in itertools.product((f32, f64, b16, f16), others):
        out = jax.eval_shape(hyena_recurrence, *_recurrence_args((v, *rest)))
        assert out.shape == (H, 16) and out.dtype == jnp.dtype(v), (v, rest)


@pytest.mark.usefixtures("x64")
def test_recurrence_computes_in_the_widest_dtype_and_half_precision_per_step():
    """A float32 v with float64 filters, gates and skips computes in float64 and rounds once
    (each step used to round z^n to float32: 7.7e-8 instead of 2.5e-8 relative error, H=8,
    L=256, N=3). A bfloat16 v stays bfloat16 between steps (the kernels' I/O, as FlashFFTConv),
    within a few bfloat16 roundings per step of float64 on the same inputs."""
    f = jnp.float64
    mixed = _recurrence_args((jnp.float32, f, f, f))
    wide = hyena_recurrence(*(a.astype(f) for a in mixed))
    np.testing.assert_array_equal(
        np.asarray(hyena_recurrence(*mixed)), np.asarray(wide.astype(jnp.float32))
    )
    b = jnp.bfloat16
    half = _recurrence_args((b, b, jnp.float32, b))
    y = hyena_recurrence(*half)
    ref = hyena_recurrence(*(a.astype(f) for a in half))
    assert y.dtype == b
    # N = 2 steps, a few bfloat16 roundings (unit roundoff 2^-9) each: measured 3.0e-3
    assert rel_err(y.astype(f), ref) < 4 * 2.0**-9


def test_operator_names_filter_order_in_its_error(library_errors):
    """HyenaOperator(filter_order=0) raised HyenaFilter's "`order` must be an integer >= 1":
    the name of the operator's other argument, the recurrence order."""
    with pytest.raises(ValueError, match="`filter_order` must be an integer >= 1; got 0"):
        HyenaOperator(H, MAX_LEN, filter_order=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`filter_order` must be an integer >= 1; got 2.5"):
        HyenaOperator(H, MAX_LEN, filter_order=2.5, key=jax.random.key(0))


@pytest.mark.usefixtures("x64")
def test_recurrence_pallas_float64_error_names_the_float64_input(library_errors):
    """A float64 filter bank with a float32 v and impl='pallas' failed inside fft_conv with
    "`k` has dtype float64" (and, computing in float64, would say "`u`"): neither is an argument
    of hyena_recurrence."""
    args = _recurrence_args((jnp.float32, jnp.float32, jnp.float64, jnp.float32))
    with pytest.raises(TypeError, match=r"impl='pallas'.*\['filters'\].*float64.*impl='xla'"):
        hyena_recurrence(*args, impl="pallas")


@pytest.mark.usefixtures("x64")
def test_recurrence_pallas_half_and_filter_dtypes_are_named(library_errors):
    """impl='pallas' with a float16 v, or float16/float64 filters on a bfloat16 v, failed inside
    fft_conv with "`u` has dtype float16" or "`k` has dtype ...": names of fft_conv's arguments,
    not of hyena_recurrence's. HyenaOperator(dtype=float16 or float64, impl='pallas') was built
    and then failed on every call the same way."""
    f16, f32, b16, f64 = jnp.float16, jnp.float32, jnp.bfloat16, jnp.float64
    cases = [
        ((f16, f16, f32, f16), r"computes in float16 because \['v'\] are float16"),
        ((f32, f32, f16, f32), r"reads \['filters'\] in their dtype float16"),
        ((b16, b16, f64, b16), r"reads \['filters'\] in their dtype float64"),
    ]
    for dtypes, message in cases:
        with pytest.raises(TypeError, match=r"impl='pallas'.*" + message + ".*impl='xla'"):
            hyena_recurrence(*_recurrence_args(dtypes), impl="pallas")
    for dtype in (f16, f64):
        with pytest.raises(TypeError, match=rf"`impl`='pallas'.*got dtype={jnp.dtype(dtype)}"):
            HyenaOperator(H, MAX_LEN, impl="pallas", dtype=dtype, key=jax.random.key(0), **KW)
    # a float32 operator computes a float64 x in float64: the error named hyena_recurrence's
    # ['v', 'gates', 'filters', 'skip'], none of them an argument of the operator
    op = eqx.filter_eval_shape(
        lambda k: HyenaOperator(H, MAX_LEN, impl="pallas", key=k, **KW), jax.random.key(0)
    )
    with pytest.raises(TypeError, match=r"`x` is float64.*impl='pallas'.*Cast x to float32"):
        op(jnp.ones((MAX_LEN, H), f64))


def test_num_frequencies_below_half_max_len(library_errors):
    """num_frequencies >= max_len / 2 was accepted: at integer positions the band k = max_len / 2
    has a sine that is 0 everywhere, and k, max_len - k repeat each other, so the FFN's input had
    dead or duplicate columns (the default 8 with max_len = 16: rank 16 of 17). Now an explicit
    value is refused, naming both, and the default is the largest alias-free value up to 8."""
    from spectrax.nn._hyena import _check_num_frequencies, _positions

    key = jax.random.key(0)
    with pytest.raises(
        ValueError, match=r"num_frequencies=8, max_len=16; use num_frequencies <= 7"
    ):
        HyenaFilter(2, 16, num_frequencies=8, key=key)
    with pytest.raises(ValueError, match=r"num_frequencies=1, max_len=2; leave it None"):
        HyenaOperator(2, 2, num_frequencies=1, key=key)
    positions = jax.jit(_positions, static_argnums=(0, 1, 2, 3))
    for max_len, k in ((1, 0), (2, 0), (3, 1), (16, 7), (17, 8), (40, 8)):
        assert _check_num_frequencies(None, max_len) == k, max_len
    for max_len, k in ((3, 1), (16, 7), (17, 8)):
        # every feature column carries information: full column rank over the max_len positions
        _, z = positions(max_len, max_len, k, jnp.float32)
        assert np.linalg.matrix_rank(np.asarray(z)) == 1 + 2 * k, max_len
    _, z = positions(16, 16, 8, jnp.float32)  # the old default at max_len = 16
    assert (
        np.linalg.matrix_rank(np.asarray(z)) == 16 and np.max(np.abs(np.asarray(z)[:, -1])) < 1e-5
    )
    f = HyenaFilter(2, 2, order=4, key=key)  # no bands: the FFN reads t alone
    assert f.num_frequencies == 0 and f.weights[0].shape == (4, 1)
    assert np.all(np.isfinite(np.asarray(_filter(f, 2))))


def test_param_labels_put_the_implicit_filter_in_the_ssm_group():
    """ssm_param_labels labelled every Hyena parameter "default", so the implicit filter's FFN
    trained with the default group's weight decay; the reference code (Poli et al., 2023) trains
    it with its own learning rate and none. Now the filter's arrays (FFN weights, biases, output
    map, sine frequency) are "ssm" and the operator's projections, short filter and skip D stay
    "default"; with a zero gradient only the "default" leaves move (weight decay)."""
    from spectrax.nn import ssm_param_labels

    params = eqx.filter(_op(), eqx.is_array)
    labels = ssm_param_labels(params)
    assert jax.tree.structure(labels) == jax.tree.structure(params)
    filter_labels = jax.tree.leaves(labels.filter)
    assert len(filter_labels) == 2 * len(params.filter.weights) + 2
    assert set(filter_labels) == {"ssm"}
    rest = eqx.tree_at(lambda m: m.filter, labels, None)
    assert set(jax.tree.leaves(rest)) == {"default"}
    opt = optax.multi_transform(
        {"ssm": optax.adam(1e-2), "default": optax.adamw(1e-2, weight_decay=0.5)}, lambda _: labels
    )

    @eqx.filter_jit  # one compile, not one per leaf and optax op
    def update(params):
        with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count with floats
            zeros = jax.tree.map(jnp.zeros_like, params)
            return opt.update(zeros, opt.init(params), params)[0]

    updates = update(params)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates.filter))
    assert float(jnp.min(jnp.abs(updates.in_weight))) > 0.0


def test_reference_layout_parameters_and_gradients():
    """layout="reference" (the reference code's): N gates, N - 1 long convolutions, so the
    filter bank has (N - 1) H channels and D is (N - 1, H); the projections still have
    (N + 1) H outputs. The gradients through jit and vmap are finite and nonzero."""
    op = _op(order=3, layout="reference")
    assert op.filter.channels == 2 * H and op.D.shape == (2, H)
    assert op.in_weight.shape == (4 * H, H) and op.short_kernel.shape[0] == 4 * H
    xs = _x(shape=(2, MAX_LEN, H))
    grads = eqx.filter_jit(eqx.filter_grad(lambda m, u: jnp.sum(jnp.sin(jax.vmap(m)(u)))))(op, xs)
    leaves = [np.asarray(g) for g in jax.tree.leaves(eqx.filter(grads, eqx.is_array))]
    assert all(np.all(np.isfinite(g)) and np.max(np.abs(g)) > 0 for g in leaves)


def test_reference_layout_pallas_interpret_matches_xla():
    # The pre-gate x^N v is outside the kernel; the N - 1 gates after it are fused (post_gate).
    x = _x(8)
    pallas, xla = _op(impl="pallas", layout="reference"), _op(impl="xla", layout="reference")
    assert_close(_run(pallas, x), _run(xla, x), rtol=1e-5)


def test_paper_layout_draws_the_parameters_it_drew_before_the_option():
    """layout="paper" (the default) keeps the parameters of the same key: rebuilt here from
    the key the way the operator drew them before ``layout`` existed. layout="reference" shares
    every draw but the filter's channel count and D's rows."""
    key = jax.random.key(3)
    k_in, k_inb, k_s, k_sb, k_f, k_d, k_out, k_outb = jax.random.split(key, 8)
    p, n = 3 * H, 2

    def uniform(k, shape, fan_in):
        return jax.random.uniform(k, shape, jnp.float32, -(fan_in**-0.5), fan_in**-0.5)

    expected = {
        "in_weight": uniform(k_in, (p, H), H),
        "in_bias": uniform(k_inb, (p,), H),
        "short_kernel": uniform(k_s, (p, 3), 3),
        "short_bias": uniform(k_sb, (p,), 3),
        "out_weight": uniform(k_out, (H, H), H),
        "out_bias": uniform(k_outb, (H,), H),
    }
    paper, reference = _op(), _op(layout="reference")
    for name, want in expected.items():
        np.testing.assert_array_equal(getattr(paper, name), want, err_msg=name)
        np.testing.assert_array_equal(getattr(reference, name), want, err_msg=name)
    np.testing.assert_array_equal(paper.D, jax.random.normal(k_d, (n, H)))
    np.testing.assert_array_equal(reference.D, jax.random.normal(k_d, (n - 1, H)))
    for op, m in ((paper, n), (reference, n - 1)):
        f = HyenaFilter(m * H, MAX_LEN, order=8, num_frequencies=3, key=k_f)
        assert jax.tree.structure(op.filter) == jax.tree.structure(f)
        for got, want in zip(jax.tree.leaves(op.filter), jax.tree.leaves(f), strict=True):
            np.testing.assert_array_equal(got, want)


def test_layout_errors(library_errors):
    with pytest.raises(ValueError, match=r"`layout`='reference' needs `order` >= 2.*got order=1"):
        HyenaOperator(H, MAX_LEN, order=1, layout="reference", key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`layout` must be one of \['paper', 'reference'\]"):
        HyenaOperator(H, MAX_LEN, layout="referense", key=jax.random.key(0))


def test_operator_draws_its_uniform_parameters_as_one_draw():
    """The operator's six uniform arrays, and the filter's seven, are one draw each (plus D's
    normal): every draw is a copy of the Threefry hash to compile, and ten made the two
    construction programs take 1.4 s to compile on a 2-core CPU (0.7 s as three)."""

    def build(k):
        return jax.tree.leaves(eqx.filter(HyenaOperator(4, 16, key=k), eqx.is_array))

    assert str(jax.make_jaxpr(build)(jax.random.key(0))).count("random_bits") == 3
