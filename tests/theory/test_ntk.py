"""Empirical NTK against closed forms and independent Jacobians; GD dynamics it predicts."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from spectrax.theory import empirical_ntk, gd_residuals, ntk_eigh
from tests.helpers import assert_close


def _mlp_params(key, widths, dtype=jnp.float64):
    keys = jax.random.split(key, len(widths) - 1)
    return [
        {
            "w": jax.random.normal(k, (o, i), dtype) / jnp.sqrt(jnp.asarray(i, dtype)),
            "b": jnp.zeros((o,), dtype),
        }
        for k, i, o in zip(keys, widths[:-1], widths[1:], strict=True)
    ]


def _mlp(params, x):
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(layer["w"] @ h + layer["b"])
    out = params[-1]["w"] @ h + params[-1]["b"]
    return out[0] if out.shape == (1,) else out


def test_linear_model_ntk_is_feature_gram(key, x64):
    # f(w, x) = w . phi(x): J(x) = phi(x), so the NTK is the feature Gram matrix exactly.
    x = jnp.linspace(0.0, 1.0, 9)[:, None]
    freqs = jnp.arange(1.0, 6.0)

    def phi(x):
        return jnp.concatenate(
            [jnp.cos(2 * jnp.pi * freqs * x[0]), jnp.sin(2 * jnp.pi * freqs * x[0])]
        )

    w = jax.random.normal(key, (10,), jnp.float64)
    ntk = jax.jit(lambda w, x: empirical_ntk(lambda p, x: p @ phi(x), w, x))(w, x)
    feats = jax.jit(jax.vmap(phi))(x)
    assert_close(ntk, feats @ feats.T, jnp.float64)


def test_pytree_ntk_matches_flat_jacobian(key, x64):
    params = _mlp_params(key, [2, 8, 8, 1])
    x1 = jax.random.normal(jax.random.key(1), (7, 2), jnp.float64)
    x2 = jax.random.normal(jax.random.key(2), (5, 2), jnp.float64)

    # one compiled program (op-by-op dispatch of the Jacobians took seconds)
    @jax.jit
    def kernels(params, x1, x2):
        flat, unravel = ravel_pytree(params)
        jac = jax.vmap(jax.jacfwd(lambda p, x: _mlp(unravel(p), x)), in_axes=(None, 0))
        j1, j2 = jac(flat, x1), jac(flat, x2)
        return (
            (empirical_ntk(_mlp, params, x1, x2), j1 @ j2.T),
            (empirical_ntk(_mlp, params, x1), j1 @ j1.T),
        )

    for got, want in kernels(params, x1, x2):
        assert_close(got, want, jnp.float64)


def test_vector_output_kernel_layout(key, x64):
    params = _mlp_params(key, [3, 8, 4])
    x1 = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
    x2 = jax.random.normal(jax.random.key(2), (6, 3), jnp.float64)

    @jax.jit  # one compiled program instead of op-by-op dispatch
    def kernels(params, x1, x2):
        k12 = empirical_ntk(_mlp, params, x1, x2)
        k21 = empirical_ntk(_mlp, params, x2, x1)
        jac = jax.vmap(jax.jacrev(lambda p, x: _mlp(p, x)), in_axes=(None, 0))
        flat1 = jnp.concatenate(
            [leaf.reshape(4, 4, -1) for leaf in jax.tree_util.tree_leaves(jac(params, x1))], -1
        )
        flat2 = jnp.concatenate(
            [leaf.reshape(6, 4, -1) for leaf in jax.tree_util.tree_leaves(jac(params, x2))], -1
        )
        return k12, k21, flat1[1] @ flat2[2].T

    k12, k21, block = kernels(params, x1, x2)
    assert k12.shape == (4, 6, 4, 4)
    assert_close(k12, jnp.transpose(k21, (1, 0, 3, 2)), jnp.float64)
    # the (o, q) block is J_o(x) J_q(x')^T
    assert_close(k12[1, 2], block, jnp.float64)


def test_ntk_predicts_one_small_gradient_step(key, x64):
    # A nonlinear network: one GD step of rate eta on L = (1/2N) sum r^2 changes the outputs by
    # -(eta/N) Theta r + O(eta^2): relative to the O(eta) prediction the remainder is O(eta),
    # so it shrinks 10x when eta does.
    params = _mlp_params(key, [1, 32, 32, 1])
    x = jnp.linspace(-1.0, 1.0, 12)[:, None]
    y = jnp.sin(3 * x[:, 0])
    f = jax.vmap(_mlp, in_axes=(None, 0))

    @jax.jit  # one compiled program instead of op-by-op dispatch
    def remainders(params):
        r = f(params, x) - y
        ntk = empirical_ntk(_mlp, params, x)

        def loss(p):
            return 0.5 * jnp.mean((f(p, x) - y) ** 2)

        g = jax.grad(loss)(params)
        out = []
        for eta in (1e-2, 1e-3):
            stepped = jax.tree_util.tree_map(lambda p, gi, eta=eta: p - eta * gi, params, g)
            actual = f(stepped, x) - f(params, x)
            predicted = -(eta / x.shape[0]) * ntk @ r
            out.append(jnp.linalg.norm(actual - predicted) / jnp.linalg.norm(predicted))
        return out

    remainders = [float(r) for r in remainders(params)]
    assert remainders[0] < 0.05
    assert 8 < remainders[0] / remainders[1] < 12, remainders


def test_gd_residuals_exact_for_linear_model(key, x64):
    n, p = 16, 24
    feats = jax.random.normal(key, (n, p), jnp.float64)
    y = jax.random.normal(jax.random.key(1), (n,), jnp.float64)
    w = jnp.zeros((p,), jnp.float64)
    eta, steps = 0.05, 30
    opt = optax.sgd(eta)
    state = opt.init(w)

    def loss(w):
        return 0.5 * jnp.mean((feats @ w - y) ** 2)

    @jax.jit  # compiled once, not dispatched op by op at every step
    def step(w, state):
        updates, state = opt.update(jax.grad(loss)(w), state)
        w = optax.apply_updates(w, updates)
        return w, state, feats @ w - y

    residuals = [feats @ w - y]
    for _ in range(steps):
        w, state, r = step(w, state)
        residuals.append(r)
    ntk = empirical_ntk(lambda w, f: w @ f, w, feats)
    assert_close(gd_residuals(ntk, residuals[0], eta, steps), jnp.stack(residuals), jnp.float64)


def test_ntk_eigh_orders_and_reconstructs(key, x64):
    params = _mlp_params(key, [1, 16, 1])
    x = jnp.linspace(-1.0, 1.0, 10)[:, None]
    ntk = jax.jit(lambda p: empirical_ntk(_mlp, p, x))(params)
    w, v = ntk_eigh(ntk)
    assert bool(jnp.all(w[:-1] >= w[1:]))
    assert_close((v * w[None, :]) @ v.T, ntk, jnp.float64, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(v.T @ v), np.eye(10), atol=1e-10)


def test_ntk_jit_and_grad(key):
    params = _mlp_params(key, [2, 8, 1], jnp.float32)
    x = jax.random.normal(jax.random.key(3), (5, 2))
    eager = empirical_ntk(_mlp, params, x)
    jitted = jax.jit(lambda p, x: empirical_ntk(_mlp, p, x))(params, x)
    assert_close(jitted, eager, jnp.float32)
    g = jax.jit(jax.grad(lambda p: jnp.trace(empirical_ntk(_mlp, p, x))))(params)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


def test_gd_residuals_mixed_and_half_precision(key, x64):
    # One compute dtype for the kernel, the residual and a traced rate: float64 if any input is,
    # float32 for half precision (eigh has no bfloat16 path). The reference is the recursion.
    a = jax.random.normal(key, (6, 6), jnp.float64)
    ntk = a @ a.T
    r0 = jax.random.normal(jax.random.key(1), (6,), jnp.float64)
    eta, steps = 0.3, 5
    step = np.eye(6) - eta * np.asarray(ntk) / 6
    want = [np.asarray(r0)]
    for _ in range(steps):
        want.append(step @ want[-1])
    want = np.stack(want)
    got = gd_residuals(ntk.astype(jnp.float32), r0, eta, steps)
    assert got.dtype == jnp.float64
    assert_close(got, want, rtol=1e-6)  # the kernel was rounded to float32
    got = gd_residuals(ntk, r0.astype(jnp.float32), eta, steps)
    assert got.dtype == jnp.float64
    assert_close(got, want, rtol=1e-6)  # the residual was rounded to float32
    rates = jnp.asarray([eta, eta], jnp.float32)
    batched = jax.vmap(lambda lr: gd_residuals(ntk, r0, lr, steps))(rates)
    assert batched.dtype == jnp.float64
    assert_close(batched[0], want, rtol=1e-6)  # the rate was rounded to float32
    half = gd_residuals(ntk.astype(jnp.bfloat16), r0.astype(jnp.bfloat16), eta, steps)
    assert half.dtype == jnp.float32
    assert_close(half, want, rtol=5e-2)
    w16, _ = ntk_eigh(ntk.astype(jnp.bfloat16))
    w32, _ = ntk_eigh(ntk.astype(jnp.bfloat16).astype(jnp.float32))
    assert w16.dtype == jnp.float32
    assert_close(w16, w32, jnp.float32)


def test_ntk_refuses_structured_outputs(library_errors):
    # A tuple of outputs used to be flattened into one kernel, the sum of the two kernels.
    f = lambda p, x: (p @ x, 2.0 * (p @ x))  # noqa: E731
    with pytest.raises(TypeError, match="`f` must return one array per example"):
        empirical_ntk(f, jnp.ones(3), jnp.ones((4, 3)))
    with pytest.raises(TypeError, match="`f` must return one array per example"):
        empirical_ntk(lambda p, x: {"y": p @ x}, jnp.ones(3), jnp.ones((4, 3)))
    with pytest.raises(TypeError, match="`f` must return a real floating-point array"):
        empirical_ntk(lambda p, x: (p @ x).astype(jnp.complex64), jnp.ones(3), jnp.ones((4, 3)))


def test_bad_inputs_are_named(key, library_errors):
    params = _mlp_params(key, [2, 4, 1], jnp.float32)
    x = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="`x2` examples have shape"):
        empirical_ntk(_mlp, params, x, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="`x1` must be an array of examples"):
        empirical_ntk(_mlp, params, jnp.ones(()))
    with pytest.raises(TypeError, match="real floating-point"):
        empirical_ntk(lambda p, x: p.sum() * x.sum(), jnp.ones(3, jnp.int32), x)
    with pytest.raises(ValueError, match="square"):
        ntk_eigh(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="`residual0` must have shape"):
        gd_residuals(jnp.eye(3), jnp.ones(4), 0.1, 3)
    with pytest.raises(ValueError, match="`learning_rate`"):
        gd_residuals(jnp.eye(3), jnp.ones(3), 0.0, 3)
    with pytest.raises(ValueError, match="`steps`"):
        gd_residuals(jnp.eye(3), jnp.ones(3), 0.1, -1)
    with pytest.raises(TypeError, match="`learning_rate` must be a real number; got True"):
        gd_residuals(jnp.eye(3), jnp.ones(3), True, 3)
    with pytest.raises(TypeError, match="`learning_rate` must be a real number"):
        gd_residuals(jnp.eye(3), jnp.ones(3), "0.1", 3)
    with pytest.raises(TypeError, match="`ntk` must be a real floating-point"):
        gd_residuals(jnp.eye(3, dtype=jnp.int32), jnp.ones(3), 0.1, 3)
    with pytest.raises(TypeError, match="`residual0` must be a real floating-point"):
        gd_residuals(jnp.eye(3), jnp.ones(3, jnp.int32), 0.1, 3)
    with pytest.raises(TypeError, match="`ntk` must be a real floating-point"):
        ntk_eigh(jnp.eye(3, dtype=jnp.int32))


def test_python_float_parameters_and_a_negative_rate_array(x64, library_errors):
    """Python-float parameters give the same kernel as 0-d arrays; a concrete negative rate is
    refused whether a Python number or an array."""
    f = lambda p, x: p["w"] * x + p["b"]  # noqa: E731
    x = jnp.linspace(-1.0, 1.0, 4)
    as_arrays = {"w": jnp.asarray(1.0), "b": jnp.asarray(0.5)}
    assert_close(empirical_ntk(f, {"w": 1.0, "b": 0.5}, x), empirical_ntk(f, as_arrays, x))
    for rate in (-0.1, jnp.asarray(-0.1), jnp.asarray(0.0)):
        with pytest.raises(ValueError, match=r"`learning_rate` must be > 0"):
            gd_residuals(jnp.eye(3), jnp.ones(3), rate, 3)


def test_learning_rate_must_be_one_finite_number(library_errors):
    """A rate array of shape (N,) multiplied the eigenvalues entrywise (a meaningless per-mode
    rate, silently); an infinite rate returned NaN residuals."""
    ntk, r0 = jnp.eye(3) + 0.5, jnp.ones(3)
    for rate in (jnp.full((3,), 0.1), jnp.full((1,), 0.1)):
        with pytest.raises(ValueError, match=r"`learning_rate` must be a scalar; got shape"):
            gd_residuals(ntk, r0, rate, 2)
    with pytest.raises(ValueError, match=r"`learning_rate` must be a scalar; got shape \(3,\)"):
        jax.jit(lambda lr: gd_residuals(ntk, r0, lr, 2))(jnp.full((3,), 0.1))
    for rate in (float("inf"), jnp.asarray(jnp.inf)):
        with pytest.raises(ValueError, match=r"`learning_rate` must be > 0 and finite"):
            gd_residuals(ntk, r0, rate, 2)
    # a traced scalar rate (vmap over rates) still works
    assert jax.vmap(lambda lr: gd_residuals(ntk, r0, lr, 2))(jnp.asarray([0.1, 0.2])).shape == (
        2,
        3,
        3,
    )


def test_an_unpartitioned_model_is_refused_with_the_fix(key, library_errors):
    """An Equinox model passed as `params` (its activation is a non-array leaf) raised
    "Cannot determine dtype of <custom_jvp ...>", naming neither `params` nor the fix."""
    model = eqx.nn.MLP(1, "scalar", 8, 1, key=key)
    with pytest.raises(TypeError, match=r"`params`.*got a leaf of type .*eqx\.partition"):
        empirical_ntk(lambda p, xi: p(xi), model, jnp.ones((4, 1)))


def test_gd_residuals_gradient_in_the_rate(x64):
    """d r_t / d eta against the closed form, also at a rate where a mode is removed in one step
    (eta lambda / N = 1): `factor ** t` with float t differentiated 0 ** 0 as 0 * 0 ** -1, NaN."""
    lam, n, steps = jnp.asarray([4.0, 1.0], jnp.float64), 2, 4
    ntk, r0 = jnp.diag(lam), jnp.asarray([1.0, -2.0], jnp.float64)
    t = np.arange(steps + 1)[:, None]
    jac = jax.jit(jax.jacfwd(lambda lr: gd_residuals(ntk, r0, lr, steps)))
    for eta in (0.5, 0.3):  # 0.5: the first mode's factor 1 - eta * 4 / 2 is exactly 0
        factor = 1.0 - eta * np.asarray(lam) / n
        want = np.where(t == 0, 0.0, -t * factor ** np.maximum(t - 1, 0)) * np.asarray(lam / n * r0)
        assert_close(jac(jnp.asarray(eta)), want, jnp.float64)


def test_one_hidden_layer_ntk_by_hand(key, x64):
    """f(x) = sum_j a_j tanh(w_j . x + b_j) + c: the NTK written out from the partial derivatives
    (no autodiff), Theta(x, x') = 1 + sum_j [s_j s'_j + a_j^2 (1 - s_j^2)(1 - s'_j^2)(x.x' + 1)]
    with s_j = tanh(w_j . x + b_j), s'_j the same at x'."""
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    h, d = 6, 3
    params = {
        "w": jax.random.normal(k1, (h, d), jnp.float64),
        "b": jax.random.normal(k2, (h,), jnp.float64),
        "a": jax.random.normal(k3, (h,), jnp.float64),
        "c": jnp.asarray(0.3, jnp.float64),
    }
    x1 = jax.random.normal(k4, (5, d), jnp.float64)
    x2 = jax.random.normal(k5, (4, d), jnp.float64)

    def f(p, x):
        return p["a"] @ jnp.tanh(p["w"] @ x + p["b"]) + p["c"]

    w, b, a = (np.asarray(params[n]) for n in ("w", "b", "a"))
    s1, s2 = np.tanh(np.asarray(x1) @ w.T + b), np.tanh(np.asarray(x2) @ w.T + b)  # (N, H)
    gram = np.asarray(x1) @ np.asarray(x2).T + 1.0
    want = 1.0 + s1 @ s2.T + ((1 - s1**2) * a**2) @ (1 - s2**2).T * gram
    ntk = jax.jit(lambda p, a, b: empirical_ntk(f, p, a, b))(params, x1, x2)
    assert_close(ntk, want, jnp.float64)


def test_gd_residuals_gradient_in_the_kernel(key, x64):
    """d (c . r_T) / d Theta against the closed form -(eta/N) sum_j M^(T-1-j) c r0^T M^j,
    M = I - eta Theta / N (symmetrised, as the kernel is). Through an eigendecomposition the
    gradient was NaN for a kernel with repeated eigenvalues and off by 116% for a rank-deficient
    kernel J J^T with fewer parameters than points (close zero eigenvalues)."""
    n, eta, steps = 4, 0.3, 5
    r0 = jnp.asarray([1.0, -2.0, 0.5, 0.3], jnp.float64)
    c = jnp.asarray([0.7, 0.1, -1.0, 2.0], jnp.float64)
    jac = jax.random.normal(key, (n, 2), jnp.float64)
    grad = jax.jit(jax.grad(lambda k: gd_residuals(k, r0, eta, steps)[-1] @ c))
    for ntk in (jnp.eye(n, dtype=jnp.float64), jac @ jac.T):
        m = np.eye(n) - eta * np.asarray(ntk) / n
        powers = [np.linalg.matrix_power(m, j) for j in range(steps)]
        want = sum(
            powers[steps - 1 - j] @ np.outer(np.asarray(c), np.asarray(r0)) @ powers[j]
            for j in range(steps)
        )
        want = -(eta / n) * 0.5 * (want + want.T)
        assert_close(grad(ntk), want, jnp.float64)


def test_a_complex_or_overflowing_rate_is_refused(library_errors):
    """A NumPy complex rate was taken as its real part with only a ComplexWarning (np.complex64
    is an np.number); an int too large for a float raised a bare OverflowError."""
    ntk, r0 = jnp.eye(2), jnp.ones(2)
    for rate in (np.complex64(0.1), np.complex128(0.1 + 0.1j), jnp.asarray(0.1 + 0j)):
        with pytest.raises(
            TypeError, match=r"`learning_rate` must be a real number; got .*complex"
        ):
            gd_residuals(ntk, r0, rate, 2)
    # an integer JAX rate is a number, as a Python or NumPy int is (it was refused); bool is not
    np.testing.assert_array_equal(
        gd_residuals(ntk, r0, jnp.array(1), 2), gd_residuals(ntk, r0, 1, 2)
    )
    with pytest.raises(TypeError, match=r"`learning_rate` must be a real number; got .*bool"):
        gd_residuals(ntk, r0, jnp.array(True), 2)
    with pytest.raises(ValueError, match=r"`learning_rate` must be > 0 and finite; got 1000"):
        gd_residuals(ntk, r0, 10**400, 2)
    assert_close(gd_residuals(ntk, r0, np.float32(0.5), 1)[1], 0.75 * r0)


def test_an_empty_output_is_refused(library_errors):
    """An `f` returning shape (0,) per example failed in the Jacobian's reshape with a bare
    ZeroDivisionError."""
    with pytest.raises(ValueError, match=r"`f` must return at least one value.*\(0,\)"):
        empirical_ntk(lambda p, x: p[:0] * x[:0], jnp.ones(3), jnp.ones((4, 3)))
