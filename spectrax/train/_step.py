"""The jitted training step with its non-finite guard, and the jitted evaluation of a loss."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

from spectrax._checks import check_choice, check_positive_int
from spectrax.nn import FourierFeatures, frozen_param_mask, ssm_param_labels
from spectrax.train._mesh import MODES, _param_spec

__all__ = ["GuardState", "TrainState", "init_opt_state", "make_train_step"]


class GuardState(NamedTuple):
    """Counters of skipped (non-finite) updates, kept on device so the step never syncs."""

    consecutive: jax.Array
    total: jax.Array


class TrainState(NamedTuple):
    """Optimizer state of the step: Optax's state and the guard's counters."""

    inner: Any
    guard: GuardState


def init_opt_state(optimizer: optax.GradientTransformation, model: Any) -> TrainState:
    """Optax state over the model's inexact arrays, plus zeroed guard counters."""
    params = eqx.filter(model, eqx.is_inexact_array)
    zero = jnp.zeros((), jnp.int32)
    with jax.numpy_dtype_promotion("standard"):
        inner = optimizer.init(params)
    return TrainState(inner, GuardState(zero, zero))


# elements per stacked group of `_all_finite` (4 MiB of float32): bounds the copy it makes
_FINITE_GROUP = 1 << 20


def _all_finite(tree: Any) -> jax.Array:
    """Whether every floating or complex array leaf of ``tree`` is finite (others are ignored:
    an optimizer state holds integer counts).

    Leaves of one shape and dtype are stacked in groups of at most ``_FINITE_GROUP`` elements
    (a larger leaf is a group of its own) and each group is reduced once, as
    ``isfinite(sum(group * 0))``: exact, as ``x * 0`` is 0 for every finite ``x`` and NaN for
    NaN and ±inf (a complex one too). One reduction per leaf made XLA's compile time grow
    faster than the leaf count; concatenating leaves of different shapes compiled fastest but
    made XLA gather FSDP-sharded parameters (39 all-gathers more in the Burgers FNO's step on
    a 4-way ``model`` axis), while leaves of one shape share their sharding (``shard_model``),
    so a stack of them stays where it is: no collective beyond the one scalar's. Measured on a
    2-core CPU (jaxlib 0.10.2, ``benchmarks/step-compile-cpu.json``, XLA's default flags),
    per leaf against grouped: the compile of the Hyena recall config's step (44 leaves, checked
    in the new parameters and Adam's two moments) 16.6 s against 7.8 s, of a 40-layer MLP's
    (80 leaves) 20.9 s against 2.7 s, of the Burgers FNO's 5.7 s against 3.3 s, the step's
    run time not slower; under the test suite's flags (tests/conftest.py) a 100-layer MLP's
    (200 leaves) 405 s against 8.9 s.
    """
    leaves = [x for x in jax.tree.leaves(tree) if eqx.is_inexact_array(x)]
    groups: list[list[jax.Array]] = []
    open_group: dict[tuple, list[jax.Array]] = {}  # (shape, dtype) -> its group being filled
    for x in leaves:
        group = open_group.get((x.shape, x.dtype))
        if group is None or (len(group) + 1) * x.size > _FINITE_GROUP:
            group = []
            groups.append(group)
            open_group[(x.shape, x.dtype)] = group
        group.append(x)
    sums = [jnp.sum((jnp.stack(g) if len(g) > 1 else g[0]) * 0) for g in groups]
    if not sums:
        return jnp.asarray(True)
    # one dtype for the scalars' sum (a NaN stays NaN in any of them)
    return jnp.all(jnp.isfinite(jnp.stack([jnp.abs(v).astype(jnp.float32) for v in sums])))


# the metrics the step adds itself; a loss-function metric of the same name replaced them, and
# the loop reads `skipped` and `halted` to guard the run
_STEP_METRICS = (
    "grad_norm",
    "skipped",
    "halted",
    "nonfinite_consecutive",
    "nonfinite_total",
)


def _check_metrics(aux: Any) -> None:
    """Trace-time check of ``loss_fn``'s metrics: a dict of scalars whose names are not the
    step's own. A vector metric passed the step and crashed the metric writer at the first log
    step, after training had started, with "only 0-dimensional arrays can be converted"."""
    if not isinstance(aux, Mapping):
        raise TypeError(
            "`loss_fn` must return (loss, metrics) with metrics a dict of scalars; got metrics "
            f"of type {type(aux).__name__}."
        )
    for name, value in aux.items():
        if not isinstance(name, str):
            raise TypeError(f"`loss_fn` metric names must be strings; got {name!r}.")
        if name in _STEP_METRICS:
            raise ValueError(
                f"`loss_fn` metric {name!r} has the name of one the step computes itself "
                f"({', '.join(_STEP_METRICS)}); rename it."
            )
        shape = jnp.shape(value)
        if shape != ():
            raise ValueError(
                f"`loss_fn` metric {name!r} must be a scalar; got shape {shape}. Reduce it "
                "(e.g. jnp.mean) or return one scalar per entry under its own name."
            )


def _check_loss_output(out: Any) -> tuple[Any, Any]:
    """Trace-time check that ``loss_fn`` returned ``(scalar loss, metrics)``. A bare loss failed
    inside ``jax.value_and_grad`` with "expected function with aux output to return a
    two-element tuple, but got ... LinearizeTracer", naming neither ``loss_fn`` nor the fix."""
    if not (isinstance(out, tuple) and len(out) == 2):
        got = (
            f"a tuple of {len(out)}"
            if isinstance(out, tuple)
            else f"one array of shape {jnp.shape(out)}"
            if hasattr(out, "shape")
            else type(out).__name__
        )
        raise TypeError(
            "`loss_fn` must return (loss, metrics): a scalar loss and a dict of scalar metrics "
            f"({{}} for none); got {got}. E.g. `return loss, {{}}`."
        )
    shape = jnp.shape(out[0])
    if shape != ():
        raise ValueError(
            f"`loss_fn` must return a scalar loss; got shape {shape}. Reduce it (e.g. jnp.mean "
            "over the batch)."
        )
    return out


# compute dtypes of make_train_step (`loop.compute_dtype`); float16 would need loss scaling
COMPUTE_DTYPES = ("float32", "bfloat16")


def _check_compute_dtype(compute_dtype: Any) -> jnp.dtype | None:
    if compute_dtype is None:
        return None
    try:
        dtype = jnp.dtype(compute_dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in COMPUTE_DTYPES:
        hint = (
            " (float16 needs loss scaling, which the step does not do: use bfloat16)"
            if dtype == jnp.float16
            else ""
        )
        raise ValueError(
            f"`compute_dtype` must be None or one of {COMPUTE_DTYPES}; got {compute_dtype!r}{hint}."
        )
    return None if dtype == jnp.float32 else dtype


def compute_params(params: Any, dtype: Any) -> Any:
    """``params`` as the step's mixed-precision forward pass uses them: every real floating
    array wider than ``dtype`` cast to it, except frequencies, which stay as they are: the
    arrays that define an SSM or Hyena long-convolution kernel (``ssm_param_labels``'s
    ``"ssm"``: Λ's imaginary parts run up to about ``pi N``, where bfloat16's spacing is 0.25
    to 2, so the kernel's frequencies would move), a ``FourierFeatures``' ``B`` (trainable or
    not: at ``sigma = 10`` bfloat16 moved the features' phases by up to 0.4 rad), and the
    other arrays a module holds fixed (``frozen_param_mask``: a wrapped NNX module's batch
    statistics); complex arrays too (there is no complex bfloat16). Gradients through the cast
    come back in the parameters' own dtype."""
    dtype = jnp.dtype(dtype)
    labels = ssm_param_labels(params)
    frozen = frozen_param_mask(params)
    # True at every array of a FourierFeatures (its B)
    features = jax.tree.map(
        lambda node: (
            jax.tree.map(lambda x: True, node)
            if isinstance(node, FourierFeatures)
            else (False if eqx.is_array(node) else None)
        ),
        params,
        is_leaf=lambda node: isinstance(node, FourierFeatures),
    )

    def cast(x, label, fixed, frequency):
        if (
            label == "ssm"
            or fixed
            or frequency
            or not jnp.issubdtype(x.dtype, jnp.floating)
            or jnp.finfo(x.dtype).bits <= jnp.finfo(dtype).bits
        ):
            return x
        return x.astype(dtype)

    return jax.tree.map(cast, params, labels, frozen, features)


def _batch_axes(mesh: Mesh, batch: Any) -> tuple[str, ...]:
    """The mesh axes the per-shard step splits the batch over: ``data``, then every other axis
    when the batch divides over all of them (``mesh.size``), else ``data`` alone (the other
    axes then compute the same examples)."""
    others = tuple(a for a in mesh.axis_names if a != "data")
    leaves = jax.tree.leaves(batch)
    if others and all(jnp.ndim(x) >= 1 and jnp.shape(x)[0] % mesh.size == 0 for x in leaves):
        return ("data", *others)
    return ("data",)


def _model_axis(spec: PartitionSpec) -> int | None:
    """The axis ``spec`` splits over the ``model`` mesh axis, or None."""
    return next((k for k, name in enumerate(spec) if name == "model"), None)


def _gather(x: jax.Array, spec: PartitionSpec) -> jax.Array:
    """Inside the per-shard step: the whole parameter from this device's FSDP shard."""
    k = _model_axis(spec)
    return x if k is None else jax.lax.all_gather(x, "model", axis=k, tiled=True)


# bytes of gradient packed into one reduce-scatter on a CPU mesh (a bound on the copy it makes)
_SCATTER_BUCKET = 4 << 20


def _reduce(grads: Any, specs: Any, axes: tuple[str, ...], mesh: Mesh) -> Any:
    """Inside the per-shard step: the mean over the batch shards of every gradient, each left
    as this device's shard of it (its ``specs`` entry).

    A gradient split over ``model`` is reduce-scattered over ``model`` when the batch is split
    over it too: each device receives only its shard's sum, half an all-reduce's traffic, and
    the mean over ``data`` then all-reduces that shard alone. On a CPU mesh the split
    gradients of one dtype travel packed, as ``(model, -1)`` rows concatenated into buckets of
    at most ``_SCATTER_BUCKET`` bytes (an array beyond it alone): XLA:CPU does not combine
    reduce-scatters, and one per array was 16% slower than the whole gradients' single
    all-reduce on 8 fake CPU devices, while one buffer for all of them held a copy of the
    whole gradient (twice the temporary memory of one per array). XLA combines them itself on
    GPU and TPU, where each goes alone. When the batch is not split over ``model`` (its
    devices computed the same gradient), each device takes its slice before the mean.
    Gradients not split (``PartitionSpec()``) are averaged whole."""
    leaves, treedef = jax.tree.flatten(grads)
    spec_leaves = treedef.flatten_up_to(specs)
    m = mesh.shape.get("model", 1)
    count = 1
    for a in axes:
        count *= mesh.shape[a]
    rest = tuple(a for a in axes if a != "model")

    def mean(buf, k):  # this device's shard of the mean of `buf`, split on its axis k
        buf = jax.lax.psum_scatter(buf, "model", scatter_dimension=k, tiled=True)
        if rest:
            buf = jax.lax.psum(buf, rest)
        return buf / jnp.asarray(count, buf.dtype)

    pack = mesh.devices.flat[0].platform == "cpu"
    out: list[Any] = list(leaves)
    buckets: list[list[int]] = []
    open_bucket: dict[Any, tuple[list[int], list[int]]] = {}  # dtype -> (indices, [bytes])
    for i, (g, spec) in enumerate(zip(leaves, spec_leaves, strict=True)):
        k = _model_axis(spec)
        if k is None:
            out[i] = jax.lax.pmean(g, axes)
        elif "model" not in axes:
            size = g.shape[k] // m
            g = jax.lax.dynamic_slice_in_dim(g, jax.lax.axis_index("model") * size, size, axis=k)
            out[i] = jax.lax.pmean(g, axes)
        elif not pack or g.nbytes >= _SCATTER_BUCKET:
            out[i] = mean(g, k)
        else:
            indices, used = open_bucket.get(g.dtype, (None, [0]))
            if indices is None or used[0] + g.nbytes > _SCATTER_BUCKET:
                indices, used = [], [0]
                buckets.append(indices)
                open_bucket[g.dtype] = (indices, used)
            indices.append(i)
            used[0] += g.nbytes
    for indices in buckets:
        if len(indices) == 1:
            i = indices[0]
            out[i] = mean(leaves[i], _model_axis(spec_leaves[i]))
            continue
        rows, shapes = [], []
        for i in indices:
            g, k = leaves[i], _model_axis(spec_leaves[i])
            split = (*g.shape[:k], m, g.shape[k] // m, *g.shape[k + 1 :])
            moved = jnp.moveaxis(g.reshape(split), k, 0)  # (model, *shard shape)
            shapes.append(moved.shape[1:])
            rows.append(moved.reshape(m, -1))
        buf = mean(jnp.concatenate(rows, axis=1), 0)[0]
        at = 0
        for i, shard in zip(indices, shapes, strict=True):
            size = int(np.prod(shard))
            out[i] = buf[at : at + size].reshape(shard)
            at += size
    return jax.tree.unflatten(treedef, out)


def make_train_step(
    loss_fn: Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]],
    optimizer: optax.GradientTransformation,
    *,
    max_nonfinite: int | None = None,
    mesh: Mesh | None = None,
    param_sharding: str = "replicated",
    compute_dtype: Any = None,
) -> Callable[[Any, TrainState, Any], tuple[Any, TrainState, dict[str, jax.Array]]]:
    """One pure jitted step ``(model, opt_state, batch) -> (model, opt_state, metrics)``.

    A non-finite loss, gradient, gradient norm (a float32 norm overflows once the gradient's
    entries pass about ``1.8e19 / sqrt(n)``), updated parameter or updated Optax state (Adam's
    second moment overflows for a finite gradient above ``sqrt(finfo.max)``, 1.8e19 in float32,
    while its update stays finite) leaves the parameters and the Optax state
    untouched and increments the guard's counters (``consecutive`` resets on the next finite
    step), all on device: the host reads them from ``metrics`` at its logging cadence.

    Args:
        loss_fn: ``(model, batch) -> (scalar loss, dict of scalar metrics)``; a metric that is
            not a scalar, or is named as one of the step's own (below, ``loss`` excepted),
            fails at the first call.
        optimizer: an Optax transformation over the model's inexact arrays.
        max_nonfinite: once the guard has counted this many non-finite updates in a row, the
            step changes nothing at all (parameters, Optax state and counters stay as they
            are, ``halted`` is 1) until the host, which reads the counters only at its logging
            cadence, stops the run: a finite update after the limit is never applied. ``None``
            (default): no limit.
        mesh: the mesh the batch is sharded over (on its ``data`` axis, as
            :func:`batch_sharding` lays it out). On more than one device the loss and its
            gradient are computed per shard under ``jax.shard_map`` and averaged (``pmean``),
            the parameters gathered whole for it (FSDP keeps them sharded between steps): the
            batch is split over ``data`` and, when it divides over every device, over the
            mesh's other axes too (each device then computes ``batch / mesh.size`` examples;
            otherwise the devices of one ``data`` position compute the same ones). XLA's SPMD
            partitioner replicates an FFT whose batch axes are sharded (openxla/xla#24):
            without this every device all-gathered the global batch and computed every FFT of
            it (and, with FSDP on CPU, an S4D model failed in XLA's FFT with a layout
            RET_CHECK). ``loss_fn`` and its metrics must then be means over
            the batch's examples, as the tasks' are. ``None`` (default): XLA partitions the
            step from the inputs' shardings.
        param_sharding: how the parameters lie on ``mesh`` (:func:`shard_model`'s ``mode``,
            a config's ``mesh.params``): ``"replicated"`` (default) or ``"fsdp"``. With
            ``"fsdp"`` the per-shard step gathers each parameter from its shards and hands
            back each gradient as the device's shard of the mean, reduce-scattered over
            ``model`` (each device receives a ``1/model`` part of it, where an all-reduce of
            the whole gradient delivered all of it: per device, half the gradient traffic
            over ``model`` and a ``1/model`` gradient to keep). Parameters laid out
            otherwise still give the right step (XLA moves them to the stated layout first).
            Unused without a mesh of more than one device.
        compute_dtype: ``"bfloat16"``: mixed precision. The loss and its gradient are
            computed with the parameters cast to bfloat16 (:func:`compute_params`: the SSM
            kernel parameters and fixed arrays stay float32), so the model's matrix products
            and activations run in bfloat16 (its FFTs stay float32, as everywhere in
            spectrax); the parameters, gradients and optimizer state stay float32 (the
            float32 master copy is what is updated, checkpointed and evaluated). ``None`` or
            ``"float32"`` (default): the parameters as they are. The loss function should
            reduce in float32 (the tasks' losses do).

    Returns:
        The step. ``metrics`` holds ``loss``, ``grad_norm``, ``skipped`` (0/1: the update was
        not applied), ``halted`` (0/1), the guard's ``nonfinite_consecutive`` and
        ``nonfinite_total``, and the loss function's metrics.
    """
    if max_nonfinite is not None:  # NumPy integers too; not bools, floats or 0
        max_nonfinite = check_positive_int("max_nonfinite", max_nonfinite)
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None; got {type(mesh).__name__}.")
    if mesh is not None and "data" not in mesh.shape:
        raise ValueError(
            f"`mesh` must have a 'data' axis (the batch's); got axes {tuple(mesh.axis_names)}."
        )
    check_choice("param_sharding", param_sharding, MODES)
    if param_sharding == "fsdp" and mesh is not None and "model" not in mesh.shape:
        raise ValueError(
            "`param_sharding='fsdp'` needs a mesh with a 'model' axis; got axes "
            f"{tuple(mesh.axis_names)}."
        )
    per_shard = mesh is not None and mesh.size > 1
    low = _check_compute_dtype(compute_dtype)

    @eqx.filter_jit
    def step(model, opt_state: TrainState, batch):
        # Optax's own state (optimizer.init(params)) failed with "'tuple' object has no
        # attribute 'inner'"
        if not isinstance(opt_state, TrainState):
            raise TypeError(
                "`opt_state` must be the state of init_opt_state(optimizer, model) (Optax's "
                f"state and the step's non-finite guard counters); got {type(opt_state).__name__}"
                ". Build it with spectrax.train.init_opt_state(optimizer, model), not "
                "optimizer.init."
            )
        params, static = eqx.partition(model, eqx.is_inexact_array)

        def loss_and_grad(p, b):
            def objective(p):
                if low is not None:
                    p = compute_params(p, low)
                return _check_loss_output(loss_fn(eqx.combine(p, static), b))

            return jax.value_and_grad(objective, has_aux=True)(p)

        if per_shard:
            # every mesh axis manual: the parameters whole (an all-gather of FSDP shards), the
            # batch split over `data` and, where it divides, over the other axes too (which
            # hold it replicated: taking a piece is a local slice, and no device repeats
            # another's work); check_vma off because a custom_vjp's cotangent of a replicated
            # input (fft_conv's filter) varies per shard until the pmean below, which
            # averages it as the gradient of a mean
            axes = _batch_axes(mesh, batch)

            model_size = mesh.shape.get("model", 1)
            specs = jax.tree.map(lambda x: _param_spec(x, model_size, param_sharding), params)

            def local(p, b):
                p = jax.tree.map(_gather, p, specs)
                (loss, aux), g = loss_and_grad(p, b)
                g = _reduce(g, specs, axes, mesh)
                return jax.lax.pmean((loss, aux), axes), g

            (loss, aux), grads = jax.shard_map(
                local,
                mesh=mesh,
                in_specs=(specs, PartitionSpec(axes)),
                out_specs=(PartitionSpec(), specs),
                check_vma=False,
            )(params, batch)
        else:
            (loss, aux), grads = loss_and_grad(params, batch)
        _check_metrics(aux)
        grad_norm = optax.tree.norm(grads)
        # Optax mixes Python floats with int32 step counts (bias correction, schedules): run
        # it under standard promotion even when the caller asked for strict.
        with jax.numpy_dtype_promotion("standard"):
            updates, inner = optimizer.update(grads, opt_state.inner, params)
        new_params = optax.apply_updates(params, updates)
        # the updated parameters and Optax state too: finite gradients can still give a
        # non-finite update (an overflowing step, a bad optimizer setting) or state (an inf
        # second moment, which freezes its parameter for good: every later update is m / inf),
        # neither of which may reach a checkpoint
        # a global norm that overflows (finite entries above sqrt(finfo.max) / sqrt(n)) is
        # non-finite too: global-norm clipping would divide by it and silently apply a zero
        # update that still advances the Optax state. A NaN or inf gradient entry makes the
        # norm NaN or inf, so the norm's check covers the gradients' own.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite((new_params, inner))
        old_guard = opt_state.guard
        halted = (
            jnp.asarray(False) if max_nonfinite is None else old_guard.consecutive >= max_nonfinite
        )
        apply = finite & ~halted
        keep = lambda new, old: jnp.where(apply, new, old)  # noqa: E731
        params = jax.tree.map(keep, new_params, params)
        inner = jax.tree.map(keep, inner, opt_state.inner)
        bad = (~finite & ~halted).astype(jnp.int32)
        guard = GuardState(
            consecutive=jnp.where(
                halted, old_guard.consecutive, (old_guard.consecutive + bad) * bad
            ),
            total=old_guard.total + bad,
        )
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "skipped": (~apply).astype(jnp.int32),
            "halted": halted.astype(jnp.int32),
            "nonfinite_consecutive": guard.consecutive,
            "nonfinite_total": guard.total,
            **aux,
        }
        return eqx.combine(params, static), TrainState(inner, guard), metrics

    return step
