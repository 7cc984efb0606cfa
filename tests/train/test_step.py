"""The jitted step: equals a hand-written Optax update, skips non-finite updates on device,
does not retrace; the optimizer's schedule and groups; the batch order is a pure function."""

from __future__ import annotations

import logging

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from spectrax.train import (
    ConfigError,
    apply_overrides,
    batch_indices,
    init_opt_state,
    load_config,
    make_optimizer,
    make_schedule,
    make_train_step,
)
from tests.helpers import assert_close
from tests.train.conftest import TOY


@pytest.fixture
def standard_promotion():
    """Optax mixes Python floats with int32 counts; outside the step that needs standard rules."""
    with jax.numpy_dtype_promotion("standard"):
        yield


def _loss(model, batch):
    pred = jax.vmap(model)(batch["x"])
    loss = jnp.mean((pred - batch["y"]) ** 2)
    return loss, {"mse": loss}


@pytest.fixture
def setup(key):
    model = eqx.nn.Linear(3, 2, key=key)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=1e-3))
    kx, ky = jax.random.split(jax.random.fold_in(key, 1))
    batch = {"x": jax.random.normal(kx, (8, 3)), "y": jax.random.normal(ky, (8, 2))}
    return model, optimizer, batch


def test_step_equals_manual_optax_update(setup):
    model, optimizer, batch = setup
    step = make_train_step(_loss, optimizer)
    new, state, metrics = step(model, init_opt_state(optimizer, model), batch)

    @eqx.filter_jit  # the manual reference as one program (eager, compiled op by op)
    def manual(model, batch):
        params = eqx.filter(model, eqx.is_inexact_array)
        grads = eqx.filter_grad(lambda m: _loss(m, batch)[0])(model)
        with jax.numpy_dtype_promotion("standard"):  # Optax is not strict-promotion clean
            updates, _ = optimizer.update(grads, optimizer.init(params), params)
        expected = optax.apply_updates(params, updates)
        return expected, _loss(model, batch)[0], optax.tree.norm(grads)

    expected, loss, grad_norm = manual(model, batch)
    assert_close(new.weight, expected.weight)
    assert_close(new.bias, expected.bias)
    assert_close(metrics["loss"], loss)
    assert_close(metrics["grad_norm"], grad_norm)
    assert int(metrics["skipped"]) == 0 and int(state.guard.total) == 0


def test_nonfinite_batches_are_skipped_and_counted(setup):
    model, optimizer, batch = setup
    step = make_train_step(_loss, optimizer)
    state = init_opt_state(optimizer, model)
    model1, state1, _ = step(model, state, batch)
    bad = {"x": batch["x"].at[3, 1].set(jnp.nan), "y": batch["y"]}
    model2, state2, m = step(model1, state1, bad)
    assert int(m["skipped"]) == 1
    assert int(m["nonfinite_consecutive"]) == 1 and int(m["nonfinite_total"]) == 1
    chex.assert_trees_all_equal(eqx.filter(model2, eqx.is_array), eqx.filter(model1, eqx.is_array))
    chex.assert_trees_all_equal(state2.inner, state1.inner)
    model3, state3, m = step(
        model2, state2, {"x": batch["x"], "y": batch["y"].at[0, 0].set(jnp.inf)}
    )
    assert int(m["nonfinite_consecutive"]) == 2
    # A finite step resets the run of failures but not the total, and equals the step that
    # would have followed without the bad batches.
    model4, state4, m = step(model3, state3, batch)
    assert int(m["nonfinite_consecutive"]) == 0 and int(m["nonfinite_total"]) == 2
    ref, _, _ = step(model1, state1, batch)
    chex.assert_trees_all_equal(eqx.filter(model4, eqx.is_array), eqx.filter(ref, eqx.is_array))


def test_step_halts_after_max_nonfinite_in_a_row(setup, library_errors):
    """With max_nonfinite=2, after two non-finite updates in a row the step changes nothing,
    not even on a finite batch: parameters, Optax state and counters stay, `halted` says so."""
    model, optimizer, batch = setup
    step = make_train_step(_loss, optimizer, max_nonfinite=2)
    state = init_opt_state(optimizer, model)
    model1, state1, m = step(model, state, batch)
    assert int(m["halted"]) == 0 and int(m["skipped"]) == 0
    bad = {"x": batch["x"].at[0, 0].set(jnp.nan), "y": batch["y"]}
    model2, state2, _ = step(model1, state1, bad)
    model3, state3, m = step(model2, state2, bad)
    assert int(m["nonfinite_consecutive"]) == 2 and int(m["halted"]) == 0
    model4, state4, m = step(model3, state3, batch)  # finite, but the limit was reached
    assert int(m["halted"]) == 1 and int(m["skipped"]) == 1
    assert int(m["nonfinite_consecutive"]) == 2 and int(m["nonfinite_total"]) == 2
    chex.assert_trees_all_equal(eqx.filter(model4, eqx.is_array), eqx.filter(model1, eqx.is_array))
    chex.assert_trees_all_equal(state4, state3)
    # without a limit the same finite batch is applied and resets the run
    free = make_train_step(_loss, optimizer)
    _, _, m = free(model3, state3, batch)
    assert int(m["halted"]) == 0 and int(m["nonfinite_consecutive"]) == 0
    for bad_limit in (0, 1.5, True):
        with pytest.raises(ValueError, match="`max_nonfinite` must be an integer >= 1"):
            make_train_step(_loss, optimizer, max_nonfinite=bad_limit)
    make_train_step(_loss, optimizer, max_nonfinite=np.int64(2))  # a NumPy integer is one


def test_nonfinite_update_with_finite_gradients_is_skipped(setup):
    """An optimizer that turns finite gradients into an infinite update (here a scale by inf)
    must not write it into the parameters."""
    model, _, batch = setup
    step = make_train_step(_loss, optax.scale(float("inf")))
    state = init_opt_state(optax.scale(float("inf")), model)
    new, _, m = step(model, state, batch)
    assert bool(jnp.isfinite(m["grad_norm"])) and int(m["skipped"]) == 1
    chex.assert_trees_all_equal(eqx.filter(new, eqx.is_array), eqx.filter(model, eqx.is_array))


def test_nonfinite_optimizer_state_with_finite_update_is_skipped():
    """A finite float32 gradient of 1e20 squares to inf in Adam's second moment while the
    update m / sqrt(inf) is a finite 0: committing that state would freeze the parameter for
    good (and checkpoint an inf)."""
    model = {"w": jnp.ones(3)}
    optimizer = optax.adam(1e-3)

    def loss(m, b):
        return jnp.sum(m["w"] * b), {}

    step = make_train_step(loss, optimizer)
    state = init_opt_state(optimizer, model)
    new, new_state, m = step(model, state, jnp.asarray([1e20, 1.0, 1.0]))
    assert int(m["skipped"]) == 1 and int(m["nonfinite_total"]) == 1
    chex.assert_trees_all_equal(new, model)
    chex.assert_trees_all_equal(new_state.inner, state.inner)
    # the next finite batch trains every parameter
    new, _, m = step(new, new_state, jnp.ones(3))
    assert int(m["skipped"]) == 0 and int(m["nonfinite_consecutive"]) == 0
    assert bool(np.all(np.asarray(new["w"]) < 1.0))


def test_gradient_whose_norm_overflows_is_skipped():
    """Finite float32 entries of 3e19 have a global norm of inf: clipping by it would apply a
    silent zero update (and advance Adam's count and moments) that the guard did not count."""
    model = {"w": jnp.ones(3)}
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))

    def loss(m, b):
        return jnp.sum(m["w"] * b), {}

    step = make_train_step(loss, optimizer)
    state = init_opt_state(optimizer, model)
    new, new_state, m = step(model, state, jnp.asarray([3e19, 1.0, 1.0]))
    assert not bool(jnp.isfinite(m["grad_norm"]))
    assert int(m["skipped"]) == 1 and int(m["nonfinite_total"]) == 1
    chex.assert_trees_all_equal(new, model)
    chex.assert_trees_all_equal(new_state.inner, state.inner)


@pytest.mark.parametrize("group", [1, 7, 1 << 20])
def test_all_finite_finds_any_bad_entry_in_any_group(monkeypatch, group):
    """The guard's check, leaves stacked per shape and dtype (groups of at most 7 elements, of
    one, and the default): True for a finite tree; False for a NaN, +inf or -inf in any one
    entry of any floating or complex leaf, small or above the group size; integer leaves
    ignored."""
    from spectrax.train import _step

    monkeypatch.setattr(_step, "_FINITE_GROUP", group)
    rng = np.random.default_rng(0)
    tree = {
        "a": rng.normal(size=(3, 4)).astype(np.float32),
        "b": rng.normal(size=(5,)).astype(np.float32),
        "c": (rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))).astype(np.complex64),
        "d": rng.normal(size=(9,)).astype(jnp.bfloat16),
        "e": rng.normal(size=()).astype(np.float32),
        "n": np.array([2**31 - 1, -5], np.int32),
    }
    check = jax.jit(_step._all_finite)
    assert bool(check(tree)) and bool(_step._all_finite(tree))
    for name in "abcde":
        for flat in sorted({0, tree[name].size // 2, tree[name].size - 1}):
            for bad in (np.nan, np.inf, -np.inf, complex(0, np.inf)):
                if name != "c" and isinstance(bad, complex):
                    continue
                broken = {k: np.array(v) for k, v in tree.items()}
                broken[name].reshape(-1)[flat] = bad
                assert not bool(check(broken)), (name, flat, bad)
    assert bool(check({"n": tree["n"]})) and bool(check({}))


def test_the_step_checks_small_leaves_in_groups(setup):
    """The step's finite checks: one reduction per shape, not one per leaf of the parameters
    and of Adam's moments. One per leaf made XLA's compile time grow faster than the leaf count (a
    100-layer MLP's step: 405 s against 8.9 s grouped, see _all_finite)."""
    _, _, batch = setup
    keys = jax.random.split(jax.random.key(1), 30)
    model = [eqx.nn.Linear(3, 3, key=k) for k in keys[:-1]] + [eqx.nn.Linear(3, 2, key=keys[-1])]

    def loss(m, b):
        h = b["x"]
        for layer in m:
            h = jax.vmap(layer)(h)
        return jnp.mean((h - b["y"]) ** 2), {}

    optimizer = optax.adam(1e-3)
    text = (
        make_train_step(loss, optimizer)
        .lower(model, init_opt_state(optimizer, model), batch)
        .as_text()
    )
    leaves = len(jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    assert leaves == 60
    # is_finite lowers to stablehlo.is_finite, one per checked array
    assert text.count("stablehlo.is_finite") <= 4, text.count("stablehlo.is_finite")


@pytest.mark.parametrize("per_shard", [False, True], ids=["xla", "shard_map"])
def test_the_finite_checks_add_no_collective_under_fsdp(monkeypatch, key, per_shard):
    """With parameters FSDP-sharded over a 4-way ``model`` axis (``shard_model``), the guard's
    grouped checks add no all-gather, collective-permute or all-to-all to the step: only
    arrays of one shape, which share their sharding, are stacked (concatenating arrays of
    different shapes made XLA gather them)."""
    import re

    from spectrax.train import MeshConfig, _step, make_mesh, shard_model

    mesh = make_mesh(MeshConfig(data=2, model=4, params="fsdp"))
    k1, k2, k3 = jax.random.split(key, 3)
    model = [eqx.nn.Linear(8, 16, key=k1), eqx.nn.Linear(16, 12, key=k2)]
    model.append(eqx.nn.Linear(12, 4, key=k3))

    def loss(m, b):
        h = b
        for layer in m:
            h = jnp.tanh(jax.vmap(layer)(h))
        return jnp.mean(h**2), {}

    optimizer = optax.adam(1e-3)
    state = shard_model(init_opt_state(optimizer, model), mesh, "fsdp")
    model = shard_model(model, mesh, "fsdp")
    batch = jax.device_put(
        jnp.ones((8, 8)), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    )

    def collectives() -> dict:
        step = make_train_step(
            loss, optimizer, mesh=mesh if per_shard else None, param_sharding="fsdp"
        )
        compiled = step.lower(model, state, batch).lowered.compile()
        ops = re.findall(
            r"= \S+ (all-gather|collective-permute|all-to-all)(?:-start)?\(", compiled.as_text()
        )
        return {op: ops.count(op) for op in set(ops)}

    with_checks = collectives()
    monkeypatch.setattr(_step, "_all_finite", lambda tree: jnp.asarray(True))
    assert with_checks == collectives()


@pytest.mark.parametrize(
    "data, model_axis, batch_size, per_device",
    [(8, 1, 16, 2), (4, 2, 16, 2), (4, 2, 12, 3)],
    ids=["data8", "fsdp4x2", "fsdp4x2-batch12"],
)
def test_a_sharded_step_keeps_its_ffts_on_the_local_batch(
    key, data, model_axis, batch_size, per_device
):
    """XLA's SPMD partitioner replicates an FFT whose batch axes are sharded (openxla/xla#24):
    each of 8 devices all-gathered the global batch of 16 and transformed all of it, and with
    FSDP parameters an S4D step failed in XLA:CPU's FFT (a layout RET_CHECK). With the mesh,
    the step computes per shard: every FFT holds batch / 8 examples (the ``model`` axis splits
    the data shard further when the batch divides over all 8 devices; batch 12 does not, so
    each data shard's 3 examples are computed on both of its devices), the batch is neither
    gathered nor moved between devices, and the step equals the one-device step to float
    rounding."""
    import re

    from spectrax.nn import S4D
    from spectrax.train import MeshConfig, make_mesh, shard_model

    mode = "fsdp" if model_axis > 1 else "replicated"
    mesh = make_mesh(MeshConfig(data=data, model=model_axis, params=mode))
    layer = S4D(8, 8, key=key)
    kx, ky = jax.random.split(jax.random.fold_in(key, 1))
    x = jax.random.normal(kx, (batch_size, 32, 8))
    y = jax.random.normal(ky, (batch_size, 32, 8))

    def loss(m, b):
        err = jnp.mean((jax.vmap(m)(b["x"]) - b["y"]) ** 2)
        return err, {"mse": err}

    optimizer = optax.adam(1e-2)
    step = make_train_step(loss, optimizer, mesh=mesh, param_sharding=mode)
    batch = jax.device_put({"x": x, "y": y}, jax.sharding.NamedSharding(mesh, P("data")))
    model = shard_model(layer, mesh, mode)
    state = shard_model(init_opt_state(optimizer, layer), mesh, mode)
    text = step.lower(model, state, batch).lowered.compile().as_text()
    ffts = re.findall(r"= \S+\[(\d+),8,\d+\]\S* fft\(", text)
    assert ffts and set(ffts) == {str(per_device)}, ffts
    # the only all-gathers are FSDP's parameters (none with replicated ones), not the batch,
    # and nothing is permuted or exchanged (splitting a data shard over `model` is a slice)
    gathered = re.findall(r"= \S+?\[([\d,]*)\]\S* all-gather(?:-start)?\(", text)
    assert all(str(batch_size) not in shape.split(",") for shape in gathered), gathered
    assert model_axis > 1 or not gathered
    assert not re.findall(r"= \S+ (collective-permute|all-to-all)(?:-start)?\(", text)
    new, _, metrics = step(model, state, batch)
    ref, _, ref_metrics = make_train_step(loss, optimizer)(
        layer, init_opt_state(optimizer, layer), {"x": x, "y": y}
    )
    assert_close(metrics["loss"], ref_metrics["loss"], rtol=1e-6)
    assert_close(metrics["mse"], ref_metrics["mse"], rtol=1e-6)
    assert_close(metrics["grad_norm"], ref_metrics["grad_norm"], rtol=1e-5)
    for a, b in zip(
        jax.tree.leaves(eqx.filter(new, eqx.is_array)),
        jax.tree.leaves(eqx.filter(ref, eqx.is_array)),
        strict=True,
    ):
        assert_close(a, b, rtol=1e-5)


def _collective_results(text: str, op: str) -> list[str]:
    """The result shapes of the ``op`` collectives in a compiled module's text."""
    import re

    return re.findall(rf"= (\S+|\([^)]*\)) {op}(?:-start)?\(", text)


@pytest.mark.parametrize("batch_size", [16, 12], ids=["batch16", "batch12"])
def test_fsdp_gradients_come_back_as_each_devices_shard(key, batch_size):
    """With FSDP parameters (``param_sharding="fsdp"``, a 4 x 2 mesh) the per-shard step
    hands each device only its shard of every split gradient: a reduce-scatter over ``model``
    when the batch is split over it too (batch 16; the mean over ``data`` then all-reduces the
    shards alone), a local slice when it is not (batch 12: the two ``model`` devices of a data
    shard computed the same gradient; the mean over ``data`` then all-reduces the shards
    alone). On a CPU mesh the split gradients of one dtype travel packed (XLA:CPU does not
    combine reduce-scatters). The whole gradients were all-reduced before; the step
    is the one-device step to float rounding either way, complex parameters included."""
    from spectrax.train import MeshConfig, make_mesh, shard_model

    mesh = make_mesh(MeshConfig(data=4, model=2, params="fsdp"))
    k1, k2, k3, k4 = jax.random.split(key, 4)
    model = {
        "w": jax.random.normal(k1, (6, 10)),
        "v": jax.random.normal(k4, (6, 6)),
        "c": jax.lax.complex(jax.random.normal(k2, (4, 6)), jax.random.normal(k3, (4, 6))),
        "b": jnp.ones((3,)),  # 3 does not split over 2: replicated, averaged whole
    }

    def loss(m, b):
        h = jnp.tanh(b @ m["w"].T) @ m["v"].T
        z = jnp.abs(h.astype(m["c"].dtype) @ m["c"].T) ** 2
        err = jnp.mean(z) + jnp.sum(m["b"] ** 2)
        return err, {}

    x = jax.random.normal(jax.random.fold_in(key, 1), (batch_size, 10))
    optimizer = optax.sgd(0.1)
    batch = jax.device_put(x, jax.sharding.NamedSharding(mesh, P("data")))
    state = shard_model(init_opt_state(optimizer, model), mesh, "fsdp")
    sharded = shard_model(model, mesh, "fsdp")
    fsdp = make_train_step(loss, optimizer, mesh=mesh, param_sharding="fsdp")
    whole = make_train_step(loss, optimizer, mesh=mesh)
    fsdp_text = fsdp.lower(sharded, state, batch).lowered.compile().as_text()
    whole_text = whole.lower(sharded, state, batch).lowered.compile().as_text()
    scattered = _collective_results(fsdp_text, "reduce-scatter")
    if batch_size == 16:
        # w (6, 10), v (6, 6) and c (4, 6) split on their last (largest) axes: shards (6, 5),
        # (6, 3) and (4, 3); w and v packed into one buffer, c alone in its dtype
        assert sorted(s.split("{")[0] for s in scattered) == ["c64[4,3]", "f32[1,48]"], scattered
    else:
        assert not scattered
    # no whole split gradient is all-reduced any more (it was without param_sharding)
    reduced = " ".join(_collective_results(fsdp_text, "all-reduce"))
    assert "[6,10]" not in reduced and "[4,6]" not in reduced, reduced
    assert "[6,10]" in " ".join(_collective_results(whole_text, "all-reduce"))
    new, _, metrics = fsdp(sharded, state, batch)
    assert new["w"].sharding.spec == P(None, "model")
    ref, _, ref_metrics = make_train_step(loss, optimizer)(
        model, init_opt_state(optimizer, model), x
    )
    assert_close(metrics["loss"], ref_metrics["loss"], rtol=1e-6)
    assert_close(metrics["grad_norm"], ref_metrics["grad_norm"], rtol=1e-5)
    for name in model:
        assert_close(new[name], ref[name], rtol=1e-5, what=name)


@pytest.mark.parametrize("data, model_axis", [(2, 4), (4, 2), (1, 8)])
def test_fsdp_step_needs_no_more_temporary_memory_than_all_reducing(
    key, monkeypatch, data, model_axis
):
    """Packing every split gradient into one buffer for the reduce-scatter held a copy of the
    whole gradient: 48 MiB of temporaries per device for a 24 MB MLP on a 1 x 8 mesh, against
    26 MiB all-reducing it whole. Buckets (here 1 MiB) bound that copy; the step still equals
    the all-reducing one (with several buckets per dtype)."""
    from spectrax.train import MeshConfig, _step, make_mesh, shard_model

    monkeypatch.setattr(_step, "_SCATTER_BUCKET", 1 << 20)
    mesh = make_mesh(MeshConfig(data=data, model=model_axis, params="fsdp"))
    mlp = eqx.nn.MLP(256, 256, 512, depth=5, key=key)  # 4.3 MB of float32 parameters

    def loss(m, b):
        return jnp.mean(jax.vmap(m)(b) ** 2), {}

    optimizer = optax.sgd(1e-2)
    model = shard_model(mlp, mesh, "fsdp")
    state = shard_model(init_opt_state(optimizer, mlp), mesh, "fsdp")
    x = jax.random.normal(jax.random.fold_in(key, 1), (8 * data, 256))
    batch = jax.device_put(x, jax.sharding.NamedSharding(mesh, P("data")))
    temp, new = {}, {}
    for mode in ("replicated", "fsdp"):
        step = make_train_step(loss, optimizer, mesh=mesh, param_sharding=mode)
        compiled = step.lower(model, state, batch).lowered.compile()
        temp[mode] = compiled.memory_analysis().temp_size_in_bytes
        new[mode] = step(model, state, batch)[0]
        if mode == "fsdp":
            assert len(_collective_results(compiled.as_text(), "reduce-scatter")) >= 3
    assert temp["fsdp"] <= temp["replicated"], temp
    for a, b in zip(
        jax.tree.leaves(eqx.filter(new["fsdp"], eqx.is_array)),
        jax.tree.leaves(eqx.filter(new["replicated"], eqx.is_array)),
        strict=True,
    ):
        assert_close(a, b, rtol=1e-6)


@pytest.mark.skipif(
    tuple(int(p) for p in jax.lib.__version__.split(".")[:2]) == (0, 11),
    reason="jaxlib 0.11's XLA:CPU crashes (SIGSEGV) compiling a per-shard step whose loss "
    "reduces an empty array, with or without FSDP (a jaxlib bug; 0.10 and 0.12 compile it)",
)
def test_fsdp_step_takes_an_empty_parameter(key):
    """An array of size 0 counted as split over ``model`` (0 divides), and its gather inside
    the FSDP step was refused by the StableHLO verifier ("dimension size of operand at
    'all_gather_dim' cannot be zero"); it is replicated."""
    from spectrax.train import MeshConfig, make_mesh, shard_model

    mesh = make_mesh(MeshConfig(data=2, model=4, params="fsdp"))
    model = {"w": jnp.ones((3,)), "z": jnp.zeros((0, 4))}

    def loss(m, b):
        return jnp.mean((b @ m["w"]) ** 2) + jnp.sum(m["z"]), {}

    optimizer = optax.sgd(0.1)
    state = shard_model(init_opt_state(optimizer, model), mesh, "fsdp")
    sharded = shard_model(model, mesh, "fsdp")
    assert sharded["z"].sharding.spec == P()
    x = jnp.ones((8, 3))
    batch = jax.device_put(x, jax.sharding.NamedSharding(mesh, P("data")))
    new, _, metrics = make_train_step(loss, optimizer, mesh=mesh, param_sharding="fsdp")(
        sharded, state, batch
    )
    assert float(metrics["loss"]) == 9.0 and new["z"].shape == (0, 4)


def test_param_sharding_is_checked(library_errors):
    with pytest.raises(ValueError, match="param_sharding"):
        make_train_step(lambda m, b: (0.0, {}), optax.sgd(0.1), param_sharding="zero3")
    mesh = jax.make_mesh((8,), ("data",), devices=jax.devices()[:8])
    with pytest.raises(ValueError, match="'model' axis"):
        make_train_step(lambda m, b: (0.0, {}), optax.sgd(0.1), mesh=mesh, param_sharding="fsdp")


def test_step_does_not_retrace(setup):
    model, optimizer, batch = setup
    traces = []

    def loss(m, b):
        traces.append(1)
        return _loss(m, b)

    step = make_train_step(loss, optimizer)
    state = init_opt_state(optimizer, model)
    for _ in range(3):
        model, state, _ = step(model, state, batch)
    assert len(traces) == 1


def test_schedule_warmup_cosine(standard_promotion):
    config = apply_overrides(
        load_config(TOY),
        ["optim.warmup_steps=10", "loop.num_steps=110", "optim.final_lr_fraction=0.1"],
    )
    sched = make_schedule(2.0, config)
    assert float(sched(0)) == 0.0
    assert_close(float(sched(5)), 1.0, rtol=1e-6)
    assert_close(float(sched(10)), 2.0, rtol=1e-6)
    # Cosine half-way: peak * (f + (1 - f) * (1 + cos(pi/2)) / 2).
    assert_close(float(sched(60)), 2.0 * (0.1 + 0.9 * 0.5), rtol=1e-5)
    assert_close(float(sched(110)), 0.2, rtol=1e-5)


def test_schedule_step(standard_promotion):
    config = apply_overrides(
        load_config(TOY),
        [
            "optim.schedule=step",
            "optim.warmup_steps=10",
            "optim.step_every=100",
            "optim.step_factor=0.5",
            "loop.num_steps=500",
        ],
    )
    sched = make_schedule(2.0, config)
    assert float(sched(0)) == 0.0
    assert_close(float(sched(5)), 1.0, rtol=1e-6)
    # Counted from the end of the warmup: full rate for 100 steps, then halved every 100.
    for step, want in ((10, 2.0), (109, 2.0), (110, 1.0), (209, 1.0), (210, 0.5), (410, 0.125)):
        assert_close(float(sched(step)), want, rtol=1e-6)
    no_warmup = make_schedule(
        1.0, apply_overrides(config, ["optim.warmup_steps=0", "optim.step_factor=0.1"])
    )
    assert float(no_warmup(0)) == 1.0 and float(no_warmup(99)) == 1.0
    assert_close(float(no_warmup(100)), 0.1, rtol=1e-6)


def test_schedule_settings_the_run_makes_inert_are_logged(caplog, standard_promotion):
    """A warmup as long as the run (shortened) and a step decay past its end (never decays)
    run, but not silently."""
    base = load_config(TOY)  # 60 steps, warmup 5
    labels = {"w": "default"}
    cases = [
        (["optim.warmup_steps=60"], "`optim.warmup_steps` (60) >= `loop.num_steps` (60)"),
        (["optim.schedule=step", "optim.step_every=55"], "`optim.step_every` (55) after 5"),
        (["optim.schedule=step", "optim.step_every=54"], None),
        (["optim.warmup_steps=59"], None),
    ]
    for overrides, message in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spectrax.train._optim"):
            make_optimizer(apply_overrides(base, overrides), labels)
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert (message in logged) if message else not logged, (overrides, logged)


def test_schedule_rejects_unknown_name(standard_promotion):
    with pytest.raises(ConfigError, match="optim.schedule"):
        apply_overrides(load_config(TOY), ["optim.schedule=linear"])


def test_parameter_groups_ssm_has_own_rate_and_no_decay(standard_promotion):
    config = apply_overrides(
        load_config(TOY),
        [
            "optim.learning_rate=0.1",
            "optim.ssm_learning_rate=0.01",
            "optim.weight_decay=0.5",
            "optim.warmup_steps=0",
        ],
    )
    params = {"w": jnp.ones(3), "lam": jnp.ones(3)}
    labels = {"w": "default", "lam": "ssm"}
    opt = make_optimizer(config, labels)
    grads = {"w": jnp.zeros(3), "lam": jnp.zeros(3)}
    updates, _ = opt.update(grads, opt.init(params), params)
    # Zero gradients: only decoupled weight decay moves a parameter, and only in "default".
    assert_close(updates["w"], -0.1 * 0.5 * jnp.ones(3), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(updates["lam"]), np.zeros(3))
    g = {"w": jnp.full(3, 1e-3), "lam": jnp.full(3, 1e-3)}
    updates, _ = opt.update(g, opt.init(params), params)
    # Adam's first step is -lr * sign(g) (up to eps) for each group.
    assert_close(updates["lam"], -0.01 * jnp.ones(3), rtol=1e-4)


def test_batch_order_is_pure_and_covers_each_epoch():
    a = batch_indices(3, 7, 20, 6)
    np.testing.assert_array_equal(a, batch_indices(3, 7, 20, 6))
    assert not np.array_equal(a, batch_indices(4, 7, 20, 6))
    # 10 steps of 6 over 20 examples = 3 epochs: each epoch is a permutation.
    flat = np.concatenate([batch_indices(0, s, 20, 6) for s in range(10)])
    for e in range(3):
        assert sorted(flat[20 * e : 20 * (e + 1)]) == list(range(20))
    with pytest.raises(ValueError, match=r"`loop\.batch_size` \(30\) exceeds"):
        batch_indices(0, 0, 20, 30)


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 0, 20, 0), r"`batch_size` must be an integer >= 1; got 0"),  # was an empty batch
        ((0, -1, 20, 6), r"`step` must be an integer >= 0; got -1"),
        ((-3, 0, 20, 6), r"`seed` must be an integer >= 0; got -3"),
        ((0, 0, 20.0, 6), r"`num_examples` must be an integer >= 1; got 20.0"),
    ],
)
def test_batch_indices_refuses_bad_arguments_naming_them(args, message, library_errors):
    """``batch_indices`` is public (a loop of one's own can draw train()'s batches): a batch size
    of 0 returned empty batches, a negative step or seed failed with NumPy's "expected
    non-negative integer", a float count with "seed must be integer"."""
    with pytest.raises(ValueError, match=message):
        batch_indices(*args)


def test_ssm_model_parameters_get_the_ssm_group(key, standard_promotion):
    from spectrax.models import SSMSequenceModel
    from spectrax.train._optim import param_labels

    model = SSMSequenceModel(3, 2, 8, 1, layer="s4d", state_size=4, key=key)
    params = eqx.filter(model, eqx.is_inexact_array)
    labels = param_labels(params)
    flat = jax.tree.leaves(labels)
    assert "ssm" in flat and "default" in flat
    config = apply_overrides(load_config(TOY), ["optim.weight_decay=0.5", "optim.warmup_steps=0"])
    opt = make_optimizer(config, labels)
    params = jax.tree.map(jnp.ones_like, params)  # nonzero everywhere: decay shows
    zeros = jax.tree.map(jnp.zeros_like, params)
    # one compiled program: eager, every optimizer op compiles once per leaf shape
    updates, _ = jax.jit(lambda g, p: opt.update(g, opt.init(p), p))(zeros, params)
    # Zero gradients: weight decay moves exactly the "default" group.
    for label, u in zip(flat, jax.tree.leaves(updates), strict=True):
        assert (label == "ssm") == bool(np.all(np.asarray(u) == 0)), label


def test_arrays_held_fixed_get_no_update_weight_decay_included(key, standard_promotion):
    """Fixed Fourier-feature frequencies and NNX batch statistics have zero gradients, but
    AdamW's decoupled decay shrank them (lowering the features' bandwidth sigma step by step):
    they get the "frozen" group, which never changes them."""
    from flax import nnx

    from spectrax.nn import FourierFeatures, NNXToEqx, frozen_param_mask
    from spectrax.train._optim import param_labels

    k1, k2, k3 = jax.random.split(key, 3)
    bn = NNXToEqx(nnx.BatchNorm(3, rngs=nnx.Rngs(0)))
    model = (
        FourierFeatures(2, 4, key=k1),  # fixed B (the paper's features)
        FourierFeatures(2, 4, trainable=True, key=k2),
        eqx.nn.Linear(8, 3, key=k3),
        bn,
    )
    params = eqx.filter(model, eqx.is_inexact_array)
    mask = frozen_param_mask(params)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    assert jax.tree.leaves(frozen_param_mask(model)) == jax.tree.leaves(mask)
    labels = param_labels(params)
    expected = ["frozen", "default", "default", "default"]  # B, B, Linear weight and bias
    expected += [
        "default" if isinstance(v, nnx.Param) else "frozen"  # BatchNorm: scale/bias vs stats
        for v in jax.tree.leaves(bn.state, is_leaf=lambda v: isinstance(v, nnx.Variable))
    ]
    assert jax.tree.leaves(labels) == expected and expected.count("frozen") == 3
    config = apply_overrides(load_config(TOY), ["optim.weight_decay=0.5", "optim.warmup_steps=0"])
    opt = make_optimizer(config, labels)
    params = jax.tree.map(jnp.ones_like, params)  # nonzero everywhere: decay shows
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)
    updates, _ = opt.update(grads, opt.init(params), params)
    for label, u in zip(expected, jax.tree.leaves(updates), strict=True):
        assert (label == "frozen") == bool(np.all(np.asarray(u) == 0)), label
    # without fixed arrays the labels and the optimizer state are as before: no "frozen" group
    plain = eqx.filter(model[1:3], eqx.is_inexact_array)
    assert "frozen" not in jax.tree.leaves(param_labels(plain))
    state = make_optimizer(config, param_labels(plain)).init(plain)
    inner = state[1].inner_states  # the multi_transform after clipping
    assert set(inner) == {"default", "ssm"}


def test_loss_fn_metrics_must_be_named_scalars(setup, library_errors):
    """A vector metric passed the step and crashed the metric writer at the first log step
    ("only 0-dimensional arrays can be converted to Python scalars", naming no metric); a
    metric named ``skipped`` replaced the guard's flag that the loop reads."""
    model, optimizer, batch = setup
    state = init_opt_state(optimizer, model)

    def per_output(model, batch):
        loss, _ = _loss(model, batch)
        return loss, {"mse_per_output": jnp.mean((jax.vmap(model)(batch["x"]) - 1) ** 2, 0)}

    with pytest.raises(ValueError, match=r"metric 'mse_per_output' must be a scalar; got shape"):
        make_train_step(per_output, optimizer)(model, state, batch)
    clash = lambda m, b: (_loss(m, b)[0], {"skipped": jnp.asarray(0)})  # noqa: E731
    with pytest.raises(ValueError, match=r"metric 'skipped' has the name of one the step"):
        make_train_step(clash, optimizer)(model, state, batch)
    as_list = lambda m, b: (_loss(m, b)[0], [1.0])  # noqa: E731
    with pytest.raises(TypeError, match=r"metrics a dict of scalars; got metrics of type list"):
        make_train_step(as_list, optimizer)(model, state, batch)


def test_loss_fn_that_returns_a_bare_loss_is_refused_naming_the_fix(setup, library_errors):
    """A loss function returning only the loss (no metrics dict) failed inside jax.value_and_grad
    with "expected function with aux output to return a two-element tuple, but got ...
    LinearizeTracer"; a per-example loss vector with "Gradient only defined for scalar-output
    functions"."""
    model, optimizer, batch = setup
    state = init_opt_state(optimizer, model)
    bare = lambda m, b: _loss(m, b)[0]  # noqa: E731
    with pytest.raises(
        TypeError, match=r"`loss_fn` must return \(loss, metrics\).*got one array of shape \(\)"
    ):
        make_train_step(bare, optimizer)(model, state, batch)
    per_example = lambda m, b: (jnp.mean((jax.vmap(m)(b["x"]) - b["y"]) ** 2, 1), {})  # noqa: E731
    with pytest.raises(ValueError, match=r"`loss_fn` must return a scalar loss; got shape \(8,\)"):
        make_train_step(per_example, optimizer)(model, state, batch)


def test_optax_state_in_place_of_init_opt_state_is_refused_naming_the_fix(setup, library_errors):
    """``optimizer.init(params)`` passed as the step's state failed with "'tuple' object has no
    attribute 'inner'"."""
    model, optimizer, batch = setup
    optax_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    with pytest.raises(TypeError, match=r"`opt_state` must be the state of init_opt_state.*tuple"):
        make_train_step(_loss, optimizer)(model, optax_state, batch)


def test_a_bfloat16_step_computes_in_bfloat16_and_updates_float32_parameters(key):
    """``compute_dtype="bfloat16"``: the FNO's matrix products run on bfloat16 operands (none
    in the float32 step), its FFTs stay float32, the loss is the float32 loss to bfloat16
    rounding (and differs from it: the cast took effect), the gradient points the same way,
    and the updated parameters and Optax state stay float32; a few steps lower the loss."""
    import re

    from spectrax.models import FNO
    from spectrax.train import relative_lp_loss

    model = FNO(1, 1, 1, 16, 8, 2, projection_channels=32, impl="rfft", key=key)
    # smooth fields (modes 1-4) and a smooth target: a shift plus a square
    coef = jax.random.normal(jax.random.fold_in(key, 1), (8, 1, 4, 2))
    t = (jnp.arange(64, dtype=jnp.float32) / 64)[None, :]
    k = jnp.arange(1.0, 5.0)[:, None]
    x = jnp.einsum("bck,kt->bct", coef[..., 0], jnp.sin(2 * jnp.pi * k * t)) + jnp.einsum(
        "bck,kt->bct", coef[..., 1], jnp.cos(2 * jnp.pi * k * t)
    )
    batch = {"x": x, "y": jnp.roll(x, 5, axis=-1) + 0.2 * x**2}

    def loss(m, b):
        err = relative_lp_loss(jax.vmap(m)(b["x"]), b["y"], num_spatial_dims=1)
        return err, {"rel": err}

    optimizer = optax.adam(3e-3)
    state = init_opt_state(optimizer, model)
    steps = {d: make_train_step(loss, optimizer, compute_dtype=d) for d in (None, "bfloat16")}
    # StableHLO (XLA:CPU fuses its dots into library calls that the compiled text hides)
    texts = {d: s.lower(model, state, batch).lowered.as_text() for d, s in steps.items()}
    dot = r"stablehlo.dot_general.*?: \(tensor<[\dx]*(\w+)>, tensor<[\dx]*(\w+)>\)"
    kinds = {d: re.findall(dot, t) for d, t in texts.items()}
    assert kinds[None] and ("bf16", "bf16") not in kinds[None], kinds[None]
    assert ("bf16", "bf16") in kinds["bfloat16"], kinds["bfloat16"]
    ffts = [line for line in texts["bfloat16"].splitlines() if "stablehlo.fft" in line]
    assert ffts and not any("bf16" in line for line in ffts), ffts
    (new32, _, m32), (new16, state16, m16) = (steps[d](model, state, batch) for d in steps)
    assert m16["loss"].dtype == jnp.float32
    assert_close(m16["loss"], m32["loss"], rtol=3e-2)
    assert float(m16["loss"]) != float(m32["loss"])
    for leaf in jax.tree.leaves((eqx.filter(new16, eqx.is_inexact_array), state16.inner)):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    # the update directions agree (Adam's first step is sign-like: compare the moved params)
    d32 = jnp.concatenate(
        [
            (a - b).ravel()
            for a, b in zip(
                *(jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array)) for t in (new32, model)),
                strict=True,
            )
        ]
    )
    d16 = jnp.concatenate(
        [
            (a - b).ravel()
            for a, b in zip(
                *(jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array)) for t in (new16, model)),
                strict=True,
            )
        ]
    )
    assert float(jnp.dot(d32, d16) / (jnp.linalg.norm(d32) * jnp.linalg.norm(d16))) > 0.9
    # 40 steps: the bfloat16 run learns as the float32 one does
    final = {}
    for d, step in steps.items():
        m, s = model, state
        for _ in range(40):
            m, s, metrics = step(m, s, batch)
        final[d] = float(metrics["loss"])
    assert final[None] < 0.5 * float(m32["loss"])
    assert final["bfloat16"] < 0.5 * float(m16["loss"])
    assert 0.75 < final["bfloat16"] / final[None] < 1.33, final


def test_the_bfloat16_step_keeps_the_ssm_kernel_parameters_in_float32(key):
    """The arrays that define an SSM's convolution kernel (Λ, B, log dt) stay float32 in the
    bfloat16 forward pass (Λ's imaginary parts up to about pi N would move by bfloat16's
    spacing); the encoder, mixing and read-out weights are bfloat16; the task's
    cross-entropy is float32."""
    from spectrax.models import SSMSequenceModel
    from spectrax.train import SequenceClassificationTask

    model = SSMSequenceModel(3, 4, 16, 1, state_size=8, key=key)
    x = np.asarray(jax.random.normal(key, (8, 32, 3)), np.float32)
    y = np.arange(8) % 4
    task = SequenceClassificationTask(make_model=lambda k: model, train=(x, y), test=(x, y))
    seen = {}

    def loss(m, b):
        seen.update(
            {
                jax.tree_util.keystr(k): v.dtype
                for k, v in jax.tree_util.tree_leaves_with_path(eqx.filter(m, eqx.is_inexact_array))
            }
        )
        out = task.loss(m, b)
        seen["loss"] = out[0].dtype
        return out

    optimizer = optax.adam(1e-3)
    step = make_train_step(loss, optimizer, compute_dtype=jnp.bfloat16)
    step(model, init_opt_state(optimizer, model), task.get_batch(np.arange(8)))
    ssm = {k: v for k, v in seen.items() if ".ssm." in k}
    assert ssm and {k for k, v in ssm.items() if v == jnp.float32} == {
        ".blocks[0].ssm.log_Lambda_re",
        ".blocks[0].ssm.Lambda_im",
        ".blocks[0].ssm.B",
        ".blocks[0].ssm.log_dt",
    }, ssm
    assert seen[".encoder.weight"] == jnp.bfloat16 and seen[".decoder.weight"] == jnp.bfloat16
    assert seen["loss"] == jnp.float32


@pytest.mark.parametrize(
    ("value", "match"),
    [("float16", "float16 needs loss scaling"), ("int8", "got 'int8'"), (3, "got 3")],
)
def test_compute_dtype_must_be_float32_or_bfloat16(value, match):
    with pytest.raises(ValueError, match=rf"`compute_dtype` must be None or one of .*{match}"):
        make_train_step(_loss, optax.sgd(0.1), compute_dtype=value)


@pytest.mark.parametrize("trainable", [False, True])
def test_the_bfloat16_step_keeps_fourier_feature_frequencies_in_float32(key, trainable):
    """A FourierFeatures' B (frequencies up to about 3 sigma) stays float32 in the bfloat16
    forward pass, trainable or not: rounded to bfloat16 it moved the features' phases by up to
    0.4 rad at sigma = 10. The linear read-out after it is cast."""
    from spectrax.nn import FourierFeatures
    from spectrax.train._step import compute_params

    k1, k2 = jax.random.split(key)
    model = [
        FourierFeatures(2, 64, sigma=10.0, trainable=trainable, key=k1),
        eqx.nn.Linear(128, 1, key=k2),
    ]
    params = eqx.filter(model, eqx.is_inexact_array)
    cast = compute_params(params, jnp.bfloat16)
    assert cast[0].B.dtype == jnp.float32
    assert cast[1].weight.dtype == jnp.bfloat16 and cast[1].bias.dtype == jnp.bfloat16
    x = jax.random.uniform(key, (2,))
    features = eqx.combine(cast, eqx.filter(model, eqx.is_inexact_array, inverse=True))[0](x)
    np.testing.assert_allclose(np.asarray(features), np.asarray(model[0](x)), atol=1e-6)
