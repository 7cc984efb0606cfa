"""Flax NNX bridge: a spectrax module inside an NNX model computes and trains exactly as the
Equinox module does, and an NNX module inside an Equinox model likewise."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spectrax.models import FNO
from spectrax.nn import EqxBuffer, EqxToNNX, FourierFeatures, NNXToEqx, SpectralConv
from tests.helpers import assert_close

L = 32


# Optax's bias correction raises a float to an integer count, which strict promotion rejects; the
# optimiser is user code here, the bridge itself runs under strict promotion.
def _optax_promotion():
    return jax.numpy_dtype_promotion("standard")


def _fno(key):
    return FNO(1, 1, 1, width=6, modes=6, num_layers=1, projection_channels=8, key=key)


def _data(key, n=8):
    """Inputs a(x) and targets u = smoothed derivative of a: a linear operator an FNO can learn."""
    a = jax.random.normal(key, (n, 1, L))
    k = jnp.fft.rfftfreq(L, 1.0 / L).astype(a.dtype)
    multiplier = jax.lax.complex(jnp.zeros_like(k), k * jnp.exp(-0.1 * k * k))
    u = jnp.fft.irfft(jnp.fft.rfft(a, axis=-1) * multiplier[None, None, :], n=L, axis=-1)
    return a, u.astype(a.dtype)


class Hybrid(nnx.Module):
    """An NNX model: spectrax SpectralConv (wrapped) then an NNX readout over channels."""

    def __init__(self, conv: SpectralConv, *, rngs: nnx.Rngs):
        self.conv = EqxToNNX(conv)
        self.readout = nnx.Linear(conv.out_channels, 1, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.gelu(self.conv(x))  # (C, L)
        return self.readout(h.T).T


class EqxHybrid(eqx.Module):
    """The same model in plain Equinox, built from the NNX model's parameters."""

    conv: SpectralConv
    readout: eqx.nn.Linear

    def __call__(self, x):
        h = jax.nn.gelu(self.conv(x))
        return jax.vmap(self.readout, in_axes=1, out_axes=1)(h)


def _eqx_twin(model: Hybrid) -> EqxHybrid:
    readout = eqx.nn.Linear(model.readout.in_features, 1, key=jax.random.key(9))
    readout = eqx.tree_at(
        lambda r: (r.weight, r.bias),
        readout,
        (model.readout.kernel[...].T, model.readout.bias[...]),
    )
    return EqxHybrid(model.conv.module, readout)


def test_wrapped_fno_is_the_equinox_fno(key):
    fno = _fno(key)
    wrapped = EqxToNNX(fno)
    a, _ = _data(jax.random.key(1))
    expected = eqx.filter_jit(lambda m, a: jax.vmap(m)(a))(fno, a)

    @nnx.jit
    def apply(m, a):
        return jax.vmap(m)(a)

    assert_close(apply(wrapped, a), expected, jnp.float32, what="nnx.jit")
    # Every array of the FNO is a parameter, with the same values.
    params = jax.tree_util.tree_leaves(nnx.state(wrapped, nnx.Param))
    fno_params = jax.tree_util.tree_leaves(eqx.filter(fno, eqx.is_inexact_array))
    assert len(params) == len(fno_params)
    for p, q in zip(params, fno_params, strict=True):
        np.testing.assert_array_equal(np.asarray(p), np.asarray(q))
    # split/merge round trip keeps the module.
    graphdef, state = nnx.split(wrapped)
    np.testing.assert_array_equal(
        np.asarray(apply(nnx.merge(graphdef, state), a)), np.asarray(apply(wrapped, a))
    )


def test_hybrid_nnx_model_matches_equinox_model_outputs_and_grads(key):
    model = Hybrid(SpectralConv(1, 1, 8, 6, key=key), rngs=nnx.Rngs(0))
    twin = _eqx_twin(model)
    a, u = _data(jax.random.key(1))

    def loss(m):
        return jnp.mean((jax.vmap(m)(a) - u) ** 2)

    @nnx.jit
    def nnx_value_and_grad(m):
        return jax.vmap(m)(a), nnx.grad(loss)(m)

    @eqx.filter_jit
    def eqx_value_and_grad(m):
        return jax.vmap(m)(a), eqx.filter_grad(loss)(m)

    out_nnx, g_nnx = nnx_value_and_grad(model)
    out_eqx, g_eqx = eqx_value_and_grad(twin)
    assert_close(out_nnx, out_eqx, jnp.float32, what="outputs")
    g_conv_nnx = jax.tree_util.tree_leaves(g_nnx["conv"])
    g_conv_eqx = jax.tree_util.tree_leaves(eqx.filter(g_eqx.conv, eqx.is_inexact_array))
    assert len(g_conv_nnx) == len(g_conv_eqx) > 0
    for gn, ge in zip(g_conv_nnx, g_conv_eqx, strict=True):
        assert_close(gn, ge, jnp.float32, what="spectral weight gradient")
    assert_close(
        g_nnx["readout"]["kernel"][...].T, g_eqx.readout.weight, jnp.float32, what="readout grad"
    )


def test_nnx_model_with_spectrax_layer_trains_like_equinox(key):
    """Same optimiser, same start: NNX (nnx.Optimizer) and Equinox (optax) training reach the same
    parameters, and the loss falls."""
    steps, lr = 30, 1e-2
    fno = _fno(key)
    a, u = _data(jax.random.key(1))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(lr, weight_decay=1e-4))

    model = EqxToNNX(fno)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((jax.vmap(m)(a) - u) ** 2))(model)
        with _optax_promotion():
            optimizer.update(model, grads)
        return loss

    params = eqx.filter(fno, eqx.is_inexact_array)
    opt_state = tx.init(params)

    @eqx.filter_jit
    def eqx_step(m, opt_state):
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(a) - u) ** 2))(m)
        with _optax_promotion():
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, updates), opt_state, loss

    nnx_losses, eqx_losses = [], []
    for _ in range(steps):
        nnx_losses.append(float(nnx_step(model, optimizer)))
        fno, opt_state, loss = eqx_step(fno, opt_state)
        eqx_losses.append(float(loss))

    assert nnx_losses[-1] < 0.5 * nnx_losses[0]
    np.testing.assert_allclose(nnx_losses, eqx_losses, rtol=1e-4)
    trained = model.module
    assert type(trained) is FNO
    for p, q in zip(
        jax.tree_util.tree_leaves(eqx.filter(trained, eqx.is_inexact_array)),
        jax.tree_util.tree_leaves(eqx.filter(fno, eqx.is_inexact_array)),
        strict=True,
    ):
        assert_close(p, q, rtol=1e-4, what="trained parameters")


class _WithCounter(eqx.Module):
    weight: jax.Array
    index: jax.Array  # integer leaf: must not become a trainable parameter

    def __call__(self, x):
        return self.weight[self.index] * x


def test_integer_leaves_are_buffers_and_stay_fixed():
    module = EqxToNNX(_WithCounter(jnp.arange(1.0, 4.0), jnp.asarray(2)))
    assert isinstance(module.leaves[1], EqxBuffer)
    assert len(jax.tree_util.tree_leaves(nnx.state(module, nnx.Param))) == 1
    optimizer = nnx.Optimizer(module, optax.sgd(0.1), wrt=nnx.Param)
    grads = nnx.grad(lambda m: m(jnp.asarray(1.0)), argnums=nnx.DiffState(0, nnx.Param))(module)
    optimizer.update(module, grads)
    # d/dw[2] of w[2] * 1 is 1; sgd moves only that entry, the index is untouched.
    np.testing.assert_allclose(np.asarray(module.module.weight), [1.0, 2.0, 2.9], rtol=1e-6)
    assert int(module.module.index) == 2


def test_fixed_fourier_features_stay_fixed_under_adamw():
    """A FourierFeatures(trainable=False) holds its frequencies B fixed (stop_gradient), but
    EqxToNNX stored B as an nnx.Param, so AdamW's decoupled weight decay shrank it (by 0.3 in
    three steps of lr 1e-2, decay 0.5): the bandwidth sigma of the fixed features drifted. B is
    now an EqxBuffer, as frozen_param_mask marks it; a trainable B is still an nnx.Param."""
    fixed = FourierFeatures(2, 4, trainable=False, key=jax.random.key(0))
    module = EqxToNNX(fixed)
    assert isinstance(module.leaves[0], EqxBuffer)
    trained = FourierFeatures(2, 4, trainable=True, key=jax.random.key(0))
    assert isinstance(EqxToNNX(trained).leaves[0], nnx.Param)
    with _optax_promotion():
        optimizer = nnx.Optimizer(module, optax.adamw(1e-2, weight_decay=0.5), wrt=nnx.Param)
        x = jnp.asarray([0.3, -0.2])
        grads = nnx.grad(lambda m: jnp.sum(m(x)), argnums=nnx.DiffState(0, nnx.Param))(module)
        optimizer.update(module, grads)
    np.testing.assert_array_equal(np.asarray(module.module.B), np.asarray(fixed.B))


def test_float64_module_under_x64(x64):
    conv = SpectralConv(1, 2, 3, 5, dtype=jnp.float64, key=jax.random.key(0))
    a = jax.random.normal(jax.random.key(1), (2, 16), dtype=jnp.float64)
    out = EqxToNNX(conv)(a)
    assert out.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(out), np.asarray(conv(a)))


def test_nnx_module_inside_equinox_trains_with_optax():
    linear = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
    wrapped = NNXToEqx(linear)
    x = jax.random.normal(jax.random.key(1), (5, 8))
    y = jax.random.normal(jax.random.key(2), (5, 3))
    np.testing.assert_array_equal(np.asarray(wrapped(x)), np.asarray(linear(x)))
    jitted = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(wrapped, x)
    assert_close(jitted, linear(x), jnp.float32, what="jit+vmap")

    tx = optax.adam(1e-2)
    params = eqx.filter(wrapped, eqx.is_inexact_array)
    opt_state = tx.init(params)

    @eqx.filter_jit
    def step(m, opt_state):
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(m)
        with _optax_promotion():
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, updates), opt_state, loss

    reference = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(reference, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(m, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(m)
        with _optax_promotion():
            optimizer.update(m, grads)
        return loss

    losses = []
    for _ in range(20):
        wrapped, opt_state, loss = step(wrapped, opt_state)
        losses.append(float(loss))
        nnx_step(reference, optimizer)
    assert losses[-1] < losses[0]
    trained = wrapped.to_nnx()
    assert_close(trained.kernel[...], reference.kernel[...], rtol=1e-5, what="kernel")
    assert_close(trained.bias[...], reference.bias[...], rtol=1e-5, what="bias")
    # The original NNX module is not mutated by the Equinox training.
    np.testing.assert_array_equal(np.asarray(linear(x)), np.asarray(NNXToEqx(linear)(x)))
    assert not np.array_equal(np.asarray(linear.kernel[...]), np.asarray(trained.kernel[...]))


def test_nnx_to_eqx_rejects_non_nnx_modules(library_errors):
    with pytest.raises(TypeError, match="module must be a flax.nnx.Module"):
        NNXToEqx(eqx.nn.Linear(2, 2, key=jax.random.key(0)))


def test_nnx_model_trains_in_the_spectrax_guarded_step():
    """An NNX model, wrapped, goes through spectrax.train's jitted step (Optax state, NaN guard)
    and follows the same trajectory as the NNX model under nnx.Optimizer."""
    from spectrax.train import init_opt_state, make_train_step

    x = jax.random.normal(jax.random.key(1), (6, 4))
    y = jax.random.normal(jax.random.key(2), (6, 2))
    tx = optax.sgd(0.1)

    def loss_fn(model, batch):
        xb, yb = batch
        err = jnp.mean((jax.vmap(model)(xb) - yb) ** 2)
        return err, {"mse": err}

    model = NNXToEqx(nnx.Linear(4, 2, rngs=nnx.Rngs(3)))
    step = make_train_step(loss_fn, tx)
    opt_state = init_opt_state(tx, model)
    reference = nnx.Linear(4, 2, rngs=nnx.Rngs(3))
    optimizer = nnx.Optimizer(reference, tx, wrt=nnx.Param)
    for _ in range(5):
        model, opt_state, metrics = step(model, opt_state, (x, y))
        grads = nnx.grad(lambda m: loss_fn(m, (x, y))[0])(reference)
        optimizer.update(reference, grads)
    assert int(metrics["skipped"]) == 0
    assert_close(model.to_nnx().kernel[...], reference.kernel[...], rtol=1e-5, what="kernel")
    # A NaN batch is skipped by the guard: parameters unchanged, the skip counted.
    before = model.to_nnx().kernel[...]
    model, opt_state, metrics = step(model, opt_state, (x.at[0, 0].set(jnp.nan), y))
    assert int(metrics["skipped"]) == 1 and int(metrics["nonfinite_total"]) == 1
    np.testing.assert_array_equal(np.asarray(model.to_nnx().kernel[...]), np.asarray(before))


def test_nnx_to_eqx_eager_calls_do_not_mutate_the_wrapper():
    """Merging copies the state: eager calls (no jit) leave batch statistics and RNG counters
    of the wrapper as they were, so two calls agree, as under jit."""
    drop = NNXToEqx(nnx.Dropout(0.5, rngs=nnx.Rngs(0)))
    x = jnp.ones(16)
    np.testing.assert_array_equal(np.asarray(drop(x)), np.asarray(drop(x)))
    bn = NNXToEqx(nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
    before = [np.asarray(v) for v in jax.tree.leaves(bn.state)]
    bn(jnp.arange(8.0).reshape(2, 4))
    after = [np.asarray(v) for v in jax.tree.leaves(bn.state)]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)


def test_nnx_to_eqx_takes_a_key_for_its_dropout():
    """Without a key every call drew the same dropout mask (the RNG counter is discarded after
    each call). ``key=`` reseeds the module's streams for the call: different keys draw
    different masks, the same key the same one, eagerly, under jit and under vmap over keys;
    the keep rate is the module's; a bad key is named; a module without RNG streams ignores
    it."""
    drop = NNXToEqx(nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0)))
    x = jnp.ones(4096)
    k0, k1 = jax.random.key(0), jax.random.key(1)
    a, b = drop(x, key=k0), drop(x, key=k1)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(drop(x, key=k0)))
    assert bool(jnp.any(a != b))
    assert 0.45 < float(jnp.mean(a != 0)) < 0.55
    np.testing.assert_array_equal(np.asarray(a), np.asarray(eqx.filter_jit(drop)(x, key=k0)))
    keys = jax.random.split(k0, 3)
    masks = jax.vmap(lambda k: drop(x, key=k) != 0)(keys)
    assert len({tuple(np.asarray(m)) for m in masks}) == 3
    np.testing.assert_array_equal(np.asarray(masks[1]), np.asarray(drop(x, key=keys[1]) != 0))
    # a model with a dropout stream and parameters: the parameters' values do not change
    model = nnx.Sequential(nnx.Linear(4, 64, rngs=nnx.Rngs(0)), nnx.Dropout(0.5, rngs=nnx.Rngs(3)))
    wrapped = NNXToEqx(model)
    y0, y1 = wrapped(jnp.ones(4), key=k0), wrapped(jnp.ones(4), key=k1)
    assert bool(jnp.any((y0 == 0) != (y1 == 0)))
    kept = (y0 != 0) & (y1 != 0)
    np.testing.assert_array_equal(np.asarray(y0[kept]), np.asarray(y1[kept]))
    linear = NNXToEqx(nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
    np.testing.assert_array_equal(
        np.asarray(linear(jnp.ones(4), key=k0)), np.asarray(linear(jnp.ones(4)))
    )
    with pytest.raises(TypeError, match="`key` must be a PRNG key"):
        drop(x, key=0)


def test_nnx_to_eqx_trains_parameters_not_batch_statistics():
    """The documented recipe (eqx.filter(model, eqx.is_inexact_array), then optax) took gradient
    steps on BatchNorm's running mean and variance, float arrays like the parameters: after three
    SGD steps the variance read [8.7, 23.8] (it starts at 1) and could turn negative. Only
    nnx.Param variables have a gradient now."""
    model = nnx.Sequential(
        nnx.Linear(3, 2, rngs=nnx.Rngs(0)),
        nnx.BatchNorm(2, use_running_average=True, rngs=nnx.Rngs(0)),
    )
    wrapped = NNXToEqx(model)
    x = jnp.ones((5, 3))
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(wrapped)
    by_type = nnx.state(nnx.merge(wrapped.graphdef, grads.state), nnx.BatchStat)
    assert jax.tree.leaves(by_type)
    for g in jax.tree.leaves(by_type):
        np.testing.assert_array_equal(np.asarray(g), 0.0)
    params = eqx.filter(wrapped, eqx.is_inexact_array)
    tx = optax.sgd(0.1)
    updates, _ = tx.update(grads, tx.init(params))
    trained = eqx.apply_updates(wrapped, updates).to_nnx()
    np.testing.assert_array_equal(np.asarray(trained.layers[1].var[...]), 1.0)
    np.testing.assert_array_equal(np.asarray(trained.layers[1].mean[...]), 0.0)
    assert not np.array_equal(
        np.asarray(trained.layers[0].kernel[...]), np.asarray(model.layers[0].kernel[...])
    )


def test_round_trip_eqx_to_nnx_of_nnx_to_eqx():
    """EqxToNNX(NNXToEqx(m)) raised NNX's "Found data ... assigned to static attribute 'static'":
    the Equinox partition left the inner nnx.Param boxes in the static part. Now the round trip
    computes as m, trains m's parameters, and keeps BatchNorm's statistics out of nnx.Param."""
    model = nnx.Sequential(
        nnx.Linear(3, 2, rngs=nnx.Rngs(0)),
        nnx.BatchNorm(2, use_running_average=True, rngs=nnx.Rngs(0)),
    )
    x = jax.random.normal(jax.random.key(1), (5, 3))
    wrapped = EqxToNNX(NNXToEqx(model))
    np.testing.assert_array_equal(np.asarray(wrapped(x)), np.asarray(model(x)))
    params = jax.tree_util.tree_leaves(nnx.state(wrapped, nnx.Param))
    assert len(params) == 4  # Linear kernel and bias, BatchNorm scale and bias
    assert len(jax.tree_util.tree_leaves(nnx.state(wrapped, EqxBuffer))) == 2  # mean, var
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(wrapped)
    expected = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
    # Both in the State's sorted order: Linear bias, kernel, BatchNorm bias, scale.
    got, want = jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected)
    assert [g.shape for g in got] == [(2,), (3, 2), (2,), (2,)] == [w.shape for w in want]
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, jnp.float32, what="gradient through the round trip")
    assert type(wrapped.module) is NNXToEqx


def test_nnx_to_eqx_holds_a_copy_of_the_module_state():
    """The wrapper is a value: training the NNX module it was built from does not change it.
    nnx.split kept the module's Variable objects, so an optimizer step on the original moved
    the wrapper's output by 0.4 (SGD, lr 0.1, on a Linear(3, 2))."""
    x = jnp.ones(3)
    module = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    wrapper = NNXToEqx(module)
    before = np.asarray(wrapper(x))
    with _optax_promotion():
        opt = nnx.Optimizer(module, optax.sgd(0.1), wrt=nnx.Param)
        opt.update(module, nnx.grad(lambda m: jnp.sum(m(x)))(module))
    assert np.max(np.abs(np.asarray(module(x)) - before)) > 0.1  # the original did train
    np.testing.assert_array_equal(np.asarray(wrapper(x)), before)
    module.bias[...] = module.bias[...] + 1.0  # nor does an in-place edit reach it
    np.testing.assert_array_equal(np.asarray(wrapper(x)), before)


def test_eqx_to_nnx_names_a_trainable_that_is_not_a_predicate(library_errors):
    # trainable=True failed inside the leaf loop with "'bool' object is not callable"
    with pytest.raises(TypeError, match=r"`trainable` must be a predicate.*got bool True"):
        EqxToNNX(SpectralConv(1, 1, 4, 2, key=jax.random.key(0)), trainable=True)


def test_eqx_to_nnx_passes_the_modules_methods_through_with_current_values():
    """``wrapper.step`` / ``wrapper.init_state`` of a wrapped SSMSequenceModel decode token by
    token as the Equinox model does, with the values after an NNX optimizer step (they raised
    AttributeError: only ``__call__`` passed through); fields stay on ``.module``."""
    from spectrax.models import SSMSequenceModel

    model = SSMSequenceModel(
        2, 3, d_model=4, n_layers=1, state_size=4, pooling="none", key=jax.random.key(0)
    )
    wrapper = EqxToNNX(model)
    x = jax.random.normal(jax.random.key(1), (5, 2))

    def decode(step, state):
        ys = []
        for x_t in x:
            y, state = step(x_t, state)
            ys.append(y)
        return jnp.stack(ys)

    got = decode(wrapper.step, wrapper.init_state())
    assert_close(got, decode(model.step, model.init_state()), rtol=1e-6)
    assert_close(got, model(x), rtol=1e-4)
    assert "recurrent mode" in wrapper.step.__doc__

    with _optax_promotion():
        opt = nnx.Optimizer(wrapper, optax.sgd(0.5), wrt=nnx.Param)
        opt.update(wrapper, nnx.grad(lambda w: jnp.sum(w(x) ** 2))(wrapper))
    trained = wrapper.module
    after = decode(wrapper.step, wrapper.init_state())
    assert float(jnp.max(jnp.abs(after - got))) > 1e-3  # the step sees the trained values
    assert_close(after, decode(trained.step, trained.init_state()), rtol=1e-6)

    with pytest.raises(AttributeError, match=r"methods only.*wrapper\.module\.encoder"):
        wrapper.encoder  # noqa: B018
    with pytest.raises(AttributeError):
        wrapper.no_such_method  # noqa: B018
    assert not hasattr(wrapper, "pooling")  # a field: read it from .module


def test_ssm_param_labels_of_an_nnx_model_find_the_wrapped_ssm_parameters():
    """``ssm_param_labels(nnx.state(model, nnx.Param))`` of a Flax model holding an S4D in an
    EqxToNNX labelled every array ``"default"`` (the NNX state keeps the layer's arrays in a
    list, without its field names), so the SSM group of the README's recipe got nothing. Each
    variable now carries its label: with the SSM group frozen (learning rate 0) an
    nnx.Optimizer step leaves Λ, B and log dt and moves the rest."""
    from spectrax.nn import S4D, ssm_param_labels

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.ssm = EqxToNNX(S4D(4, 8, key=jax.random.key(0)))
            self.lin = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x):
            return jax.vmap(self.lin)(self.ssm(x))

    net = Net(nnx.Rngs(0))
    labels = ssm_param_labels(nnx.state(net, nnx.Param))
    layer = S4D(4, 8, key=jax.random.key(0))
    assert jax.tree.leaves(labels) == ["default", "default"] + jax.tree.leaves(
        ssm_param_labels(layer)
    )
    groups = {"ssm": optax.sgd(0.0), "default": optax.sgd(0.1)}
    opt = nnx.Optimizer(net, optax.multi_transform(groups, labels), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(1), (16, 4))
    before = [np.asarray(v[...]) for v in net.ssm.leaves]
    opt.update(net, nnx.grad(lambda m: jnp.mean(m(x) ** 2))(net))
    after = [np.asarray(v[...]) for v in net.ssm.leaves]
    moved = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert moved == [label == "default" for label in jax.tree.leaves(ssm_param_labels(layer))]


def test_spectrax_loads_flax_only_when_a_model_uses_it():
    """``import spectrax.nn`` (and the training CLI's imports) leave Flax unimported, about 0.5 s
    of every start-up; the NNX bridges import it on first use, and the parameter labels of a
    model without them need no Flax."""
    import subprocess
    import sys

    code = (
        "import sys, jax\n"
        "import spectrax.nn, spectrax.models, spectrax.train\n"
        "from spectrax.nn import S4D, frozen_param_mask, ssm_param_labels\n"
        "layer = S4D(2, 4, key=jax.random.key(0))\n"
        "labels, mask = ssm_param_labels(layer), frozen_param_mask(layer)\n"
        "assert labels.log_dt == 'ssm' and mask.log_dt is False, (labels, mask)\n"
        "assert 'flax' not in sys.modules, 'flax imported'\n"
        "assert 'EqxToNNX' in dir(spectrax.nn)\n"
        "from spectrax.nn import EqxToNNX\n"
        "assert 'flax.nnx' in sys.modules and EqxToNNX.__module__ == 'spectrax.nn._nnx'\n"
        "try:\n"
        "    spectrax.nn.NoSuchLayer\n"
        "except AttributeError as e:\n"
        "    assert 'NoSuchLayer' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


class _SSMThenFeatures(nnx.Module):
    """An NNX model of two wrapped layers, at module level so that pickle finds its class."""

    def __init__(self):
        from spectrax.nn import S4D

        self.ssm = EqxToNNX(S4D(3, 4, key=jax.random.key(1)))
        self.fixed = EqxToNNX(FourierFeatures(3, 2, trainable=False, key=jax.random.key(2)))

    def __call__(self, x):
        return jax.vmap(self.fixed)(self.ssm(x))


def test_a_wrapper_survives_deepcopy_and_pickle_alone_and_inside_a_model():
    """The wrapper kept the PyTreeDef of its Equinox module as a static attribute; a deep copy
    or an unpickled copy (of the wrapper, or of an NNX model holding it) failed at its first
    call with "'_Missing' object is not subscriptable"."""
    import copy
    import pickle

    model = _SSMThenFeatures()
    x = jax.random.normal(jax.random.key(0), (5, 3))
    want = model(x)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(copied(x), want)
        kinds = [type(v) for v in copied.ssm.leaves] + [type(v) for v in copied.fixed.leaves]
        assert kinds == [type(v) for v in model.ssm.leaves] + [type(v) for v in model.fixed.leaves]
    alone = pickle.loads(pickle.dumps(model.ssm))
    np.testing.assert_array_equal(alone(x), model.ssm(x))
    # a copy is independent: training the original leaves it unchanged
    copied = copy.deepcopy(model)
    model.ssm.leaves[0][...] = model.ssm.leaves[0][...] + 1.0
    np.testing.assert_array_equal(copied(x), want)
