"""Per-frequency errors, spectral bias curves, and their agreement with the NTK dynamics."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spectrax.theory import empirical_ntk, frequency_errors, gd_residuals, spectral_bias_curve
from tests.helpers import assert_close


def _grid(n, dtype=jnp.float32):
    return jnp.arange(n, dtype=dtype) / n


def test_frequency_errors_closed_form(x64):
    x = _grid(64, jnp.float64)
    target = jnp.sin(2 * jnp.pi * 3 * x) + 0.5 * jnp.cos(2 * jnp.pi * 7 * x)
    pred = target + 0.1 * jnp.sin(2 * jnp.pi * 7 * x) - 0.3 * jnp.sin(2 * jnp.pi * 3 * x)
    err = frequency_errors(pred, target, [3, 7])
    # |0.1 i-part| / |0.5| at k = 7; 0.3 / 1 at k = 3.
    assert_close(err, jnp.asarray([0.3, 0.2]), jnp.float64)
    batched = frequency_errors(jnp.stack([pred, target]), jnp.stack([target, target]), [3, 7])
    assert_close(batched[0], err, jnp.float64)
    assert float(jnp.abs(batched[1]).max()) == 0.0


def _mlp(params, x):
    h = x
    for w, b in params[:-1]:
        h = jax.nn.relu(w @ h + b)
    w, b = params[-1]
    return (w @ h + b)[0]


def _init(key, widths):
    keys = jax.random.split(key, len(widths) - 1)
    return [
        (
            jax.random.normal(k, (o, i)) * jnp.sqrt(2.0 / i),
            jnp.zeros((o,)),
        )
        for k, i, o in zip(keys, widths[:-1], widths[1:], strict=True)
    ]


def test_relu_mlp_learns_low_frequency_first(key):
    # Rahaman et al. 2019: equal amplitudes at k = 1 and k = 8; the k = 1 component is fitted
    # long before k = 8. Measured with this seed (JAX 0.10.2 CPU): at step 300 the relative
    # error at k=1 is 0.147 while at k=8 it is still 0.925.
    x = _grid(64)[:, None]
    y = jnp.sin(2 * jnp.pi * x[:, 0]) + jnp.sin(2 * jnp.pi * 8 * x[:, 0])
    curve = spectral_bias_curve(
        _mlp,
        _init(key, [1, 64, 64, 1]),
        x,
        y,
        frequencies=[1, 8],
        steps=300,
        optimizer=optax.adam(3e-3),
        record_every=100,
    )
    assert curve.step.tolist() == [0, 100, 200, 300]
    assert curve.errors.shape == (4, 2)
    assert bool(curve.loss[-1] < curve.loss[0])
    low, high = curve.errors[-1]
    assert float(low) < 0.3 and float(high) > 0.8, curve.errors
    assert float(high) > 4 * float(low), curve.errors


def test_curve_matches_ntk_dynamics_for_linear_model(key, x64):
    # A model linear in its parameters trained by plain GD follows the NTK prediction exactly.
    # The curve's loss is mean(r^2) (no 1/2), so its rate eta acts as 2 eta in gd_residuals.
    n = 32
    x = _grid(n, jnp.float64)
    k = jnp.arange(1, 9, dtype=jnp.float64)

    def model(w, xi):
        feats = jnp.concatenate([jnp.cos(2 * jnp.pi * k * xi), jnp.sin(2 * jnp.pi * k * xi)])
        return w @ (feats / jnp.concatenate([k, k]) ** 1.5)

    y = jnp.sin(2 * jnp.pi * x) + jnp.cos(2 * jnp.pi * 6 * x)
    w0 = jnp.zeros((16,), jnp.float64)
    eta, steps = 0.5, 40
    curve = spectral_bias_curve(
        model, w0, x, y, frequencies=[1, 6], steps=steps, optimizer=optax.sgd(eta), record_every=10
    )
    ntk = empirical_ntk(model, w0, x)
    r = gd_residuals(ntk, jax.vmap(model, in_axes=(None, 0))(w0, x) - y, 2 * eta, steps)
    predicted = frequency_errors(r[::10] + y[None, :], jnp.broadcast_to(y, (5, n)), [1, 6])
    assert_close(curve.errors, predicted, jnp.float64, rtol=1e-9)
    # and the spectral bias in the kernel: the k = 6 direction decays slower than k = 1.
    assert float(curve.errors[-1, 1]) > 10 * float(curve.errors[-1, 0])


def test_bad_inputs_are_named(library_errors):
    x = _grid(16)
    with pytest.raises(ValueError, match=r"`frequencies` must lie in \[0, 8\]"):
        frequency_errors(x, x, [9])
    with pytest.raises(ValueError, match="same shape"):
        frequency_errors(x, x[:8], [1])
    with pytest.raises(TypeError, match="`prediction` must be a real floating-point"):
        frequency_errors(jnp.arange(16), x, [1])
    with pytest.raises(ValueError, match=r"`target` must have the grid as its last axis.*\(\)"):
        frequency_errors(x[0], x[0], [0])
    f = lambda p, xi: p * xi  # noqa: E731
    with pytest.raises(ValueError, match="multiple of `record_every`"):
        spectral_bias_curve(
            f,
            jnp.ones(()),
            x,
            x,
            frequencies=[1],
            steps=5,
            optimizer=optax.sgd(0.1),
            record_every=2,
        )
    with pytest.raises(TypeError, match="`x` must be an array of inputs"):
        spectral_bias_curve(
            f, jnp.ones(()), [0.0] * 16, x, frequencies=[1], steps=1, optimizer=optax.sgd(0.1)
        )
    with pytest.raises(ValueError, match="same N"):
        spectral_bias_curve(
            f, jnp.ones(()), x[:4], x, frequencies=[1], steps=2, optimizer=optax.sgd(0.1)
        )
    # what `f` returns is named: a tuple was a bare AttributeError at `.shape`, an integer output
    # an error about an argument `prediction` the caller never passed
    for g, what in (
        (lambda p, xi: (p * xi, p * xi), "got PyTreeDef"),
        (lambda p, xi: jnp.round(p * xi).astype(jnp.int32), "got dtype int32"),
    ):
        with pytest.raises(TypeError, match=rf"`f` must return .*scalar per example; {what}"):
            spectral_bias_curve(
                g, jnp.ones(()), x, x, frequencies=[1], steps=1, optimizer=optax.sgd(0.1)
            )
    with pytest.raises(ValueError, match="scalar per example"):
        spectral_bias_curve(
            lambda p, xi: p * jnp.ones(2) * xi,
            jnp.ones(()),
            x,
            x,
            frequencies=[1],
            steps=1,
            optimizer=optax.sgd(0.1),
        )


def test_params_must_be_float_arrays(key, library_errors):
    """An unpartitioned Equinox model raised JAX's "Error interpreting argument to
    <function spectral_bias_curve.<locals>.record> as an abstract array", integer leaves JAX's
    grad error; neither named `params` or the fix."""
    x = _grid(16)[:, None]
    y = jnp.sin(2 * jnp.pi * x[:, 0])
    model = eqx.nn.MLP(1, "scalar", 8, 1, key=key)
    kw = {"frequencies": [1], "steps": 1, "optimizer": optax.sgd(0.1)}
    with pytest.raises(TypeError, match=r"`params`.*got a leaf of type .*eqx\.partition"):
        spectral_bias_curve(lambda p, xi: p(xi), model, x, y, **kw)
    with pytest.raises(TypeError, match=r"`params`.*real floating-point.*got dtype int32"):
        spectral_bias_curve(lambda p, xi: p * xi[0], jnp.ones((), jnp.int32), x, y, **kw)


def test_an_empty_grid_is_refused(library_errors):
    """A grid of 0 points passed the frequency check ([0] lies in [0, 0]) and failed inside
    XLA's FFT lowering ("Cannot lower jaxpr with verifier errors"), naming no argument."""
    empty = jnp.zeros((0,))
    with pytest.raises(ValueError, match=r"`target` must have at least one grid point.*\(0,\)"):
        frequency_errors(empty, empty, [0])
    with pytest.raises(ValueError, match=r"at least one example.*x\.shape=\(0,\)"):
        spectral_bias_curve(
            lambda p, xi: p * xi,
            jnp.ones(()),
            empty,
            empty,
            frequencies=[0],
            steps=1,
            optimizer=optax.sgd(0.1),
        )


def test_frequency_errors_against_numpy_and_its_gradient(x64):
    # batched NumPy reference; under jit(vmap); the gradient in the prediction in closed form,
    # d |E_k| / |T_k| / d p_n = Re(conj(E_k) exp(-2 pi i k n / L)) / (|E_k| |T_k|)
    rng = np.random.default_rng(3)
    n, ks = 24, [1, 5, 12]
    pred, target = rng.standard_normal((2, 3, n)), rng.standard_normal((2, 3, n))
    e, t = np.fft.rfft(pred - target)[..., ks], np.fft.rfft(target)[..., ks]
    want = np.abs(e) / np.abs(t)
    p, tg = jnp.asarray(pred), jnp.asarray(target)
    assert_close(frequency_errors(p, tg, ks), want, jnp.float64)
    mapped = jax.jit(jax.vmap(lambda a, b: frequency_errors(a, b, ks)))(p, tg)
    assert_close(mapped, want, jnp.float64)
    grad = jax.jit(jax.jacrev(lambda a: frequency_errors(a, tg[0, 0], ks)))(p[0, 0])  # (K, L)
    phase = np.exp(-2j * np.pi * np.outer(ks, np.arange(n)) / n)
    e0, t0 = e[0, 0][:, None], t[0, 0][:, None]
    assert_close(grad, np.real(np.conj(e0) * phase) / (np.abs(e0) * np.abs(t0)), jnp.float64)


def test_optimizer_must_be_a_gradient_transformation(library_errors):
    """`optimizer=optax.adam` (the factory, not called) or a learning rate raised
    "AttributeError: 'function' object has no attribute 'init'", naming neither the argument
    nor the fix."""
    x = _grid(16)
    for bad in (optax.adam, 0.1):
        with pytest.raises(TypeError, match=r"`optimizer` must be an Optax.*optax\.adam\(1e-3\)"):
            spectral_bias_curve(
                lambda p, xi: p * xi, jnp.ones(()), x, x, frequencies=[1], steps=1, optimizer=bad
            )


def test_targets_of_another_dtype_than_the_model(x64):
    """A float32 model fitted to float64 targets (or a bfloat16 one to float32 targets) raised
    a TypePromotionError naming no argument under strict promotion; the residual now takes the
    standard promotion of the two, so the curve equals the one standard promotion gives."""
    x = _grid(16)[:, None]

    def model(p, xi):
        feats = jnp.concatenate([jnp.sin(2 * jnp.pi * xi), jnp.cos(2 * jnp.pi * 3 * xi)])
        return p @ feats.astype(p.dtype)

    for p_dtype, y_dtype in ((jnp.float32, jnp.float64), (jnp.bfloat16, jnp.float32)):
        y = (jnp.sin(2 * jnp.pi * x[:, 0]) + 0.5 * jnp.cos(6 * jnp.pi * x[:, 0])).astype(y_dtype)
        args = (model, jnp.zeros(2, p_dtype), x, y)
        kwargs = dict(frequencies=[1, 3], steps=3, optimizer=optax.sgd(0.2))
        curve = spectral_bias_curve(*args, **kwargs)  # the tests run with strict promotion
        assert curve.loss.dtype == y_dtype
        assert float(curve.loss[-1]) < float(curve.loss[0])
        if p_dtype == jnp.float32:  # one reference run is enough (each run compiles twice)
            with jax.numpy_dtype_promotion("standard"):
                want = spectral_bias_curve(*args, **kwargs)
            assert_close(curve.loss, want.loss, jnp.float32)
            assert_close(curve.errors, want.errors, jnp.float32)


def test_f_must_be_callable(library_errors):
    """`f` swapped with `params` (or a non-callable) failed inside JAX with "Expected a callable
    value, got ...", naming no argument."""
    x = _grid(16)
    f = lambda p, xi: p * xi  # noqa: E731
    with pytest.raises(TypeError, match=r"`f` must be a callable f\(params, x\).*got ArrayImpl"):
        spectral_bias_curve(
            jnp.ones(()), f, x, x, frequencies=[1], steps=1, optimizer=optax.sgd(0.1)
        )
    with pytest.raises(TypeError, match=r"`f` must be a callable f\(params, x\).*got int 3"):
        empirical_ntk(3, jnp.ones(()), x)
