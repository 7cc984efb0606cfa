"""rollout: closed forms, equality with a Python loop of model calls (forward and gradients,
with and without remat), jit/vmap, errors; FieldRegressionTask(rollout=True)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import FNO, next_snapshots, rollout
from spectrax.train import FieldRegressionTask
from tests.helpers import assert_close


def test_linear_recurrence_closed_form():
    # x_{t+1} = 2 x_t - x_{t-1}: from (0, 1) the rollout is 2, 3, 4, ... (an arithmetic sequence).
    def model(w):
        return 2 * w[-1:] - w[-2:-1]

    h = jnp.stack([jnp.zeros((3, 4)), jnp.ones((3, 4))])
    out = jax.jit(lambda h: rollout(model, h, 7))(h)
    want = np.arange(2, 9, dtype=np.float32)[:, None, None] * np.ones((1, 3, 4))
    assert out.shape == (7, 3, 4)
    assert_close(out, want, jnp.float32)


def test_several_snapshots_per_call_and_truncation():
    # k = 2 per call; 5 steps need 3 calls and drop the last snapshot.
    def model(w):
        return w[-2:] + 10.0

    h = jnp.arange(3.0)[:, None] * jnp.ones((1, 5))
    out = rollout(model, h, 5)
    want = np.array([11.0, 12.0, 21.0, 22.0, 31.0])[:, None] * np.ones((1, 5))
    assert_close(out, want, jnp.float32)


def _loop(model, h, steps):
    preds = []
    for _ in range(steps):
        nxt = model(h)
        preds.append(nxt)
        h = jnp.concatenate([h[1:], nxt])
    return jnp.concatenate(preds)


def _rollout_loss(m, fn):
    target = jnp.sin(jnp.arange(4.0))[:, None, None] * jnp.ones((1, 12, 12))
    return jnp.mean((fn(m) - target) ** 2)


@pytest.fixture(scope="module")
def fno_and_loop_reference():
    """An FNO, a history, and the Python loop's loss and gradient: the reference does not
    depend on `remat`, so it is compiled once for both cases."""
    k1, k2 = jax.random.split(jax.random.key(0))
    model = FNO(2, 3, 1, 8, 3, 2, projection_channels=8, key=k1)
    h = jax.random.normal(k2, (3, 12, 12))
    loop = eqx.filter_value_and_grad(lambda m: _rollout_loss(m, lambda m: _loop(m, h, 4)))
    return model, h, eqx.filter_jit(loop)(model)


@pytest.mark.parametrize("remat", [False, True])
def test_fno_rollout_equals_a_python_loop_forward_and_gradient(fno_and_loop_reference, remat):
    model, h, (ll, gl) = fno_and_loop_reference
    scan = eqx.filter_jit(
        eqx.filter_value_and_grad(
            lambda m: _rollout_loss(m, lambda m: rollout(m, h, 4, remat=remat))
        )
    )
    ls, gs = scan(model)
    assert_close(ls, ll, jnp.float32, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(gl), strict=True):
        assert_close(a, b, jnp.float32, rtol=1e-4)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(gs))


def test_vmap_over_histories(key):
    model = FNO(1, 2, 1, 8, 4, 1, projection_channels=8, key=key)
    hs = jax.random.normal(key, (3, 2, 16))
    batched = jax.jit(jax.vmap(lambda h: rollout(model, h, 3)))(hs)
    assert batched.shape == (3, 3, 16)
    for i in range(3):
        assert_close(batched[i], rollout(model, hs[i], 3), jnp.float32, rtol=1e-5)


def test_a_batch_of_histories_is_named_as_rollouts_argument(key, library_errors):
    """The model's error (naming its own `x`) says it came from rollout's `history` and how to
    batch (it named only `x`, an argument the caller never passed)."""
    model = FNO(1, 2, 1, 8, 4, 1, projection_channels=8, key=key)
    with pytest.raises(
        ValueError,
        match=r"(?s)`x` must be.*`history` of shape \(3, 2, 16\).*"
        r"jax\.vmap\(lambda h: rollout\(model, h, 5\)\)",
    ):
        rollout(model, jnp.ones((3, 2, 16)), 5)


def test_errors(key, library_errors):
    h = jnp.ones((2, 8))
    with pytest.raises(ValueError, match="num_steps"):
        rollout(lambda w: w[-1:], h, 0)
    with pytest.raises(ValueError, match="history"):
        rollout(lambda w: w[-1:], jnp.ones((4,)), 2)
    # JAX's "None is not a valid value for jnp.array" named no argument
    for bad in (None, "abc", [[1.0, 2.0], [3.0]]):
        with pytest.raises(TypeError, match=r"`history` must be an array of snapshots"):
            rollout(lambda w: w[-1:], bad, 2)
    with pytest.raises(ValueError, match="`window` must be snapshots"):
        next_snapshots(lambda w: w[-1:], jnp.ones((4,)), residual=True)
    with pytest.raises(ValueError, match="1 <= k <= 2"):
        rollout(lambda w: jnp.concatenate([w, w]), h, 2)  # k = 4 > C = 2
    with pytest.raises(ValueError, match="returns"):
        rollout(lambda w: w[-1:, :4], h, 2)  # wrong spatial shape
    a = np.zeros((4, 2, 8), np.float32)
    with pytest.raises(ValueError, match="channel_axis=True"):
        FieldRegressionTask(lambda k: None, (a[:, 0], a[:, 0]), (a[:, 0], a[:, 0]), rollout=True)
    with pytest.raises(ValueError, match="grid_channel"):
        FieldRegressionTask(
            lambda k: None, (a, a), (a, a), channel_axis=True, grid_channel=True, rollout=True
        )


def test_task_rollout_loss_and_prediction(key):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 2, 16)).astype(np.float32)
    u = rng.normal(size=(4, 3, 16)).astype(np.float32)
    task = FieldRegressionTask(
        lambda k: FNO(1, 2, 1, 8, 4, 1, projection_channels=8, key=k),
        (a, u),
        (a, u),
        channel_axis=True,
        rollout=True,
    )
    model = task.init_model(key)
    pred = task.predict(model, jnp.asarray(a))
    assert pred.shape == u.shape
    assert_close(pred[1], rollout(model, jnp.asarray(a[1]), 3), jnp.float32, rtol=1e-5)
    loss, aux = task.loss(model, {"a": jnp.asarray(a), "u": jnp.asarray(u)})
    rel = np.mean(
        np.linalg.norm((np.asarray(pred) - u).reshape(4, -1), axis=1)
        / np.linalg.norm(u.reshape(4, -1), axis=1)
    )
    np.testing.assert_allclose(float(loss), rel, rtol=1e-5)


def test_residual_rollout_adds_increments_to_the_last_snapshot():
    # An increment model returning the constant 1: the rollout counts up from the last snapshot.
    h = jnp.stack([jnp.zeros((4,)), jnp.full((4,), 5.0)])
    out = rollout(lambda w: jnp.ones((1, 4)), h, 3, residual=True)
    assert_close(out, np.array([6.0, 7.0, 8.0])[:, None] * np.ones((1, 4)), jnp.float32)
    # Zero increments: persistence.
    assert_close(next_snapshots(lambda w: jnp.zeros((1, 4)), h, residual=True), h[-1:], jnp.float32)
    # Without residual, next_snapshots is the model's output.
    assert_close(next_snapshots(lambda w: w[:1] + 2.0, h), h[:1] + 2.0, jnp.float32)


def test_residual_fno_rollout_equals_a_python_loop(key):
    k1, k2 = jax.random.split(key)
    model = FNO(1, 3, 1, 8, 4, 1, projection_channels=8, key=k1)
    h = jax.random.normal(k2, (3, 16))
    want = _loop(lambda w: w[-1:] + model(w), h, 5)
    assert_close(rollout(model, h, 5, residual=True), want, jnp.float32, rtol=1e-5)


def _tf_task(k=1, residual=False, out_k=None):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 2, 16)).astype(np.float32)
    u = rng.normal(size=(3, 4, 16)).astype(np.float32)
    out_k = k if out_k is None else out_k
    task = FieldRegressionTask(
        lambda key: FNO(1, 2, out_k, 8, 4, 1, projection_channels=8, key=key),
        (a, u),
        (a, u),
        channel_axis=True,
        rollout=True,
        residual=residual,
        teacher_forcing=True,
        step_snapshots=k,
    )
    return task, a, u


@pytest.mark.parametrize("k", [1, 2])
def test_teacher_forcing_windows(k):
    task, a, u = _tf_task(k)
    w = 4 - k + 1  # windows per trajectory whose k targets lie in u
    assert task.num_train() == 3 * w
    traj = np.concatenate([a, u], axis=1)
    idx = np.arange(3 * w)[::-1]
    batch = task.get_batch(idx)
    assert batch["a"].shape == (3 * w, 2, 16) and batch["u"].shape == (3 * w, k, 16)
    for row, i in enumerate(idx):
        n, t = divmod(int(i), w)
        np.testing.assert_array_equal(batch["a"][row], traj[n, t : t + 2])
        np.testing.assert_array_equal(batch["u"][row], traj[n, t + 2 : t + 2 + k])
    # Every target snapshot of u is some window's target.
    last = task.get_batch(np.array([w - 1]))
    np.testing.assert_array_equal(last["u"][0, -1], u[0, -1])


@pytest.mark.parametrize("residual", [False, True])
def test_teacher_forcing_loss_is_one_call_and_test_error_is_the_rollout(key, residual):
    task, a, u = _tf_task(1, residual=residual)
    model = task.init_model(key)
    batch = {k: jnp.asarray(v) for k, v in task.get_batch(np.arange(task.num_train())).items()}
    loss, _ = task.loss(model, batch)
    one = jax.vmap(model)(batch["a"])
    if residual:
        one = one + batch["a"][:, -1:]
    want = np.mean(
        np.linalg.norm((np.asarray(one) - np.asarray(batch["u"])).reshape(len(one), -1), axis=1)
        / np.linalg.norm(np.asarray(batch["u"]).reshape(len(one), -1), axis=1)
    )
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    pred = task.predict(model, jnp.asarray(a))
    assert pred.shape == u.shape
    assert_close(
        pred[0], rollout(model, jnp.asarray(a[0]), 4, residual=residual), jnp.float32, rtol=1e-5
    )
    err = np.mean(
        np.linalg.norm((np.asarray(pred, np.float64) - u).reshape(3, -1), axis=1)
        / np.linalg.norm(u.reshape(3, -1), axis=1)
    )
    np.testing.assert_allclose(task.evaluate(model)["test_error"], err, rtol=1e-5)


def test_teacher_forcing_errors(key, library_errors):
    a = np.zeros((4, 2, 8), np.float32)
    u = np.zeros((4, 3, 8), np.float32)
    with pytest.raises(ValueError, match="rollout=True"):
        FieldRegressionTask(lambda k: None, (a, u), (a, u), channel_axis=True, teacher_forcing=True)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="step_snapshots"):
            FieldRegressionTask(
                lambda k: None, (a, u), (a, u), channel_axis=True, rollout=True, step_snapshots=bad
            )
    with pytest.raises(ValueError, match="C_in=2, C_out=3"):
        FieldRegressionTask(
            lambda k: None,
            (a, u),
            (a, u),
            channel_axis=True,
            rollout=True,
            teacher_forcing=True,
            step_snapshots=3,
        )
    task, _, _ = _tf_task(1, out_k=2)  # the model returns 2 snapshots per call
    batch = {k: jnp.asarray(v) for k, v in task.get_batch(np.arange(2)).items()}
    with pytest.raises(ValueError, match="`step_snapshots` is 1"):
        task.loss(task.init_model(key), batch)


@pytest.mark.parametrize("channel_axis, grid_channel", [(True, False), (True, True), (False, True)])
def test_residual_direct_map_adds_the_last_input_field(key, channel_axis, grid_channel):
    rng = np.random.default_rng(2)
    c_in, c_out = (3, 2) if channel_axis else (1, 1)
    shape = (4, c_in, 16) if channel_axis else (4, 16)
    a = rng.normal(size=shape).astype(np.float32)
    u = rng.normal(size=(4, c_out, 16) if channel_axis else (4, 16)).astype(np.float32)
    extra = 1 if grid_channel else 0
    kw = dict(channel_axis=channel_axis, grid_channel=grid_channel)
    make = lambda k: FNO(1, c_in + extra, c_out, 8, 4, 1, projection_channels=8, key=k)  # noqa: E731
    plain = FieldRegressionTask(make, (a, u), (a, u), **kw)
    res = FieldRegressionTask(make, (a, u), (a, u), residual=True, **kw)
    model = plain.init_model(key)
    last = a[:, -1:] if channel_axis else a  # the last field channel, not the grid channel
    want = np.asarray(plain.predict(model, jnp.asarray(a))) + last
    assert_close(res.predict(model, jnp.asarray(a)), want, jnp.float32, rtol=1e-5)


@pytest.mark.parametrize("flag", ["False", 0, None, jnp.asarray(False)])
def test_flags_must_be_bools(flag, library_errors):
    # residual and remat were taken by truthiness: residual="False" added the last snapshot to
    # every output (a rollout of 6, 7, 8 where the model predicts 1, 1, 1), silently
    h = jnp.stack([jnp.zeros((4,)), jnp.full((4,), 5.0)])
    model = lambda w: jnp.ones((1, 4))  # noqa: E731
    for name in ("residual", "remat"):
        with pytest.raises(TypeError, match=rf"`{name}` must be a Python bool; got "):
            rollout(model, h, 3, **{name: flag})
    with pytest.raises(TypeError, match=r"`residual` must be a Python bool; got "):
        next_snapshots(model, h, residual=flag)
    # a NumPy bool is a bool
    assert_close(
        rollout(model, h, 2, residual=np.bool_(True)),
        6.0 + np.arange(2.0)[:, None] * np.ones((1, 4)),
        jnp.float32,
    )


def test_model_output_errors_name_the_model(library_errors):
    h = jnp.stack([jnp.zeros((4,)), jnp.full((4,), 5.0)])
    # A complex output lost its imaginary part in the cast to the window's dtype (a warning)
    with pytest.raises(TypeError, match=r"`model` returns complex64 .* float32 window"):
        rollout(lambda w: w[-1:].astype(jnp.complex64) * 1j, h, 2)
    with pytest.raises(TypeError, match=r"`model` returns complex64"):
        next_snapshots(lambda w: w[-1:].astype(jnp.complex64) * 1j, h, residual=True)
    # A tuple failed with AttributeError: 'tuple' object has no attribute 'ndim'
    with pytest.raises(TypeError, match=r"`model` must return one array.*tuple"):
        rollout(lambda w: (w[-1:],), h, 2)
    # A wrong spatial shape with residual failed in the addition, a bare broadcasting error
    with pytest.raises(ValueError, match=r"`model` must map a window \(2, 4\).*returns \(1, 3\)"):
        next_snapshots(lambda w: jnp.ones((1, 3)), h, residual=True)


class _TwoStep(eqx.Module):
    """A nonlinear one-step map returning k = 2 snapshots from a window of 3."""

    weight: jax.Array

    def __call__(self, w):
        return jnp.tanh(jnp.einsum("kc,cx->kx", self.weight, w)) * jnp.flip(w[-1:], axis=-1)


def _loop_two_step(m, h):
    preds = []
    for _ in range(3):
        nxt = m(h) + h[-1:]
        preds.append(nxt)
        h = jnp.concatenate([h[2:], nxt])
    return jnp.concatenate(preds)[:5]


def test_two_snapshots_per_call_residual_remat_gradients_equal_a_loop(x64):
    """k = 2 per call, 5 steps (3 calls, the last one cut), increments, with and without remat:
    values and gradients (parameters and history) equal the Python loop of calls."""
    rng = np.random.default_rng(3)
    model = _TwoStep(jnp.asarray(rng.normal(size=(2, 3))))
    h = jnp.asarray(rng.normal(size=(3, 6)))
    target = jnp.asarray(rng.normal(size=(5, 6)))
    fns = {
        "loop": _loop_two_step,
        "scan": lambda m, h: rollout(m, h, 5, residual=True),
        "remat": lambda m, h: rollout(m, h, 5, remat=True, residual=True),
    }

    @jax.jit  # one compilation for the three losses, not one per eager op
    def values_and_grads(m, h):
        def loss(m, h, fn):
            return jnp.sum((fn(m, h) - target) ** 2)

        grad = jax.value_and_grad(loss, argnums=(0, 1))
        return {name: grad(m, h, fn) for name, fn in fns.items()}

    out = values_and_grads(model, h)
    want_loss, (want_m, want_h) = out["loop"]
    for name in ("scan", "remat"):
        got_loss, (got_m, got_h) = out[name]
        assert_close(got_loss, want_loss, jnp.float64)
        assert_close(got_m.weight, want_m.weight, jnp.float64)
        assert_close(got_h, want_h, jnp.float64)


@pytest.mark.parametrize(
    "flag", ["channel_axis", "grid_channel", "rollout", "residual", "teacher_forcing", "remat"]
)
def test_task_flags_must_be_bools(flag, library_errors):
    # taken by truthiness: teacher_forcing="False" trained on 12 one-call windows instead of the
    # 4 rollouts, channel_axis="False" read a channel axis, silently
    a = np.zeros((4, 2, 8), np.float32)
    u = np.zeros((4, 3, 8), np.float32)
    kw = dict(channel_axis=True, rollout=True, teacher_forcing=False)
    kw[flag] = "False"
    with pytest.raises(TypeError, match=rf"`{flag}` must be a Python bool; got str 'False'"):
        FieldRegressionTask(lambda k: None, (a, u), (a, u), **kw)
    kw[flag] = np.bool_(flag in ("channel_axis", "rollout"))  # a NumPy bool is a bool
    task = FieldRegressionTask(lambda k: None, (a, u), (a, u), **kw)
    assert task.num_train() == 4 and getattr(task, flag) is bool(kw[flag])


def test_integer_snapshots_are_refused(library_errors):
    """The predictions are cast to the history's dtype: an int32 history truncated every one
    (0.5 * 4 = 2, then 1, then 0) and a residual step added the increment in int32, silently."""
    h = jnp.array([[1, 2, 3, 4]], jnp.int32)
    half = lambda w: 0.5 * w[-1:].astype(jnp.float32)  # noqa: E731
    with pytest.raises(TypeError, match=r"`history` must hold floating-point .* got dtype int32"):
        rollout(half, h, 3)
    with pytest.raises(TypeError, match=r"`window` must hold floating-point .* got dtype int32"):
        next_snapshots(half, h, residual=True)
    # floating point (real or complex) is unchanged; without residual the output is the model's
    assert_close(
        rollout(half, h.astype(jnp.float32), 2),
        jnp.array([[0.5, 1, 1.5, 2], [0.25, 0.5, 0.75, 1]]),
        jnp.float32,
    )
    assert next_snapshots(half, h).dtype == jnp.float32
