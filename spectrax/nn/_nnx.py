"""Flax NNX interop: a spectrax (Equinox) module inside a Flax NNX model, and the reverse.

Equinox modules are immutable pytrees; NNX modules are mutable Python objects whose arrays sit
in ``nnx.Variable`` boxes. :class:`EqxToNNX` boxes every array leaf of an Equinox module in a
Variable (floating and complex leaves in ``nnx.Param``, the rest in :class:`EqxBuffer`) and
rebuilds the Equinox module from the current values on each call, so ``nnx.Optimizer``,
``nnx.grad`` and ``nnx.jit`` see ordinary NNX parameters. :class:`NNXToEqx` stores
``nnx.split(module)`` as an Equinox pytree (graph definition static, state as leaves) and merges
it on each call, so ``eqx.filter_grad`` and optax train an NNX module like any Equinox module.

Both directions are exact: the wrapped computation is the same sequence of operations on the
same arrays, so outputs and gradients equal the unwrapped ones bit for bit.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from flax import nnx

from spectrax._checks import check_key
from spectrax.nn._ssm_labels import frozen_param_mask

__all__ = ["EqxBuffer", "EqxToNNX", "NNXToEqx"]


class EqxBuffer(nnx.Variable):
    """A non-trainable array of a wrapped Equinox module (integer or boolean leaves, arrays the
    module holds fixed, or any leaf the ``trainable`` filter of :class:`EqxToNNX` rejects).
    ``nnx.Optimizer(..., wrt=nnx.Param)``
    leaves it alone."""


def _in_nnx_param(module: Any) -> list[bool]:
    """Per leaf of ``module``: ``False`` if it sits in an ``nnx.Variable`` that is not an
    ``nnx.Param`` (batch statistics, RNG state of a wrapped NNX module), else ``True``."""
    flags = []
    for node in jax.tree_util.tree_leaves(module, is_leaf=lambda x: isinstance(x, nnx.Variable)):
        if isinstance(node, nnx.Variable):
            flags += [isinstance(node, nnx.Param)] * len(jax.tree_util.tree_leaves(node))
        else:
            flags.append(True)
    return flags


def _frozen_leaves(module: Any, treedef: Any) -> list[bool]:
    """Per leaf of ``module`` (in ``treedef`` order): ``True`` where
    :func:`~spectrax.nn.frozen_param_mask` marks an array the module holds fixed (the ``B`` of a
    ``FourierFeatures(trainable=False)``, the variables of a wrapped NNX module that are not
    ``nnx.Param``), else ``False``."""
    return [m is True for m in treedef.flatten_up_to(frozen_param_mask(module))]


class _Structure:
    """The tree structure of a wrapped module, as a static attribute that survives
    ``copy.deepcopy`` (of the wrapper or of an NNX model holding it) and ``pickle``. A bare
    PyTreeDef of an Equinox module does not: its copy failed at the wrapper's first call with
    "'_Missing' object is not subscriptable". A deep copy shares it (it is immutable); pickle
    stores the module with placeholder leaves and takes its structure back."""

    def __init__(self, treedef: Any):
        self.treedef = treedef

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Structure) and self.treedef == other.treedef

    def __hash__(self) -> int:
        return hash(self.treedef)

    def __deepcopy__(self, memo: dict) -> _Structure:
        return self

    def __reduce__(self):
        skeleton = jax.tree_util.tree_unflatten(self.treedef, [0] * self.treedef.num_leaves)
        return _structure_of, (skeleton,)


def _structure_of(skeleton: Any) -> _Structure:
    return _Structure(jax.tree_util.tree_structure(skeleton))


class EqxToNNX(nnx.Module):
    """An Equinox module as a Flax NNX module: its arrays become NNX variables.

    Example::

        class Model(nnx.Module):
            def __init__(self, *, rngs):
                self.conv = EqxToNNX(SpectralConv(1, 2, 8, 6, key=jax.random.key(0)))
                self.readout = nnx.Linear(8, 1, rngs=rngs)

            def __call__(self, x):  # x: (2, L)
                return self.readout(jax.nn.gelu(self.conv(x)).T).T

        model = Model(rngs=nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    Args:
        module: any Equinox module (or pytree) holding JAX/NumPy array leaves.
        trainable: predicate on an array leaf; ``True`` stores it as ``nnx.Param``, ``False`` as
            :class:`EqxBuffer`. Default ``eqx.is_inexact_array`` (floating and complex arrays
            train; integer and boolean arrays do not). An array held by an NNX variable
            inside ``module`` (an :class:`NNXToEqx` in it) keeps its role: in an ``nnx.Param``
            it follows ``trainable``, in any other variable (batch statistics, RNG state) it is
            an :class:`EqxBuffer`. So is every array the module holds fixed,
            :func:`~spectrax.nn.frozen_param_mask` (the frequencies ``B`` of a
            ``FourierFeatures(trainable=False)``): an ``nnx.Param`` there would have its
            gradient zero but still shrink under AdamW's weight decay.
            ``EqxToNNX(NNXToEqx(m))`` computes as ``m``; prefer ``m``.

    Calling the wrapper calls the Equinox module with the same arguments (one unbatched example,
    as for every spectrax module; batch with ``jax.vmap`` or ``nnx.vmap``), and so does a call
    of any public method of the module through the wrapper (``wrapper.step(x_t, state)`` and
    ``wrapper.init_state()`` of an :class:`~spectrax.models.SSMSequenceModel`), with the
    current values. The :attr:`module` property returns the Equinox module holding the
    current values, e.g. after training; read its other attributes there.
    Non-array leaves (activation functions, static fields) are kept as they are and must be
    hashable, as every static attribute of an NNX module.
    """

    def __init__(self, module: Any, *, trainable: Callable[[Any], bool] = eqx.is_inexact_array):
        if not callable(trainable):
            raise TypeError(
                "`trainable` must be a predicate on an array leaf (e.g. eqx.is_inexact_array); "
                f"got {type(trainable).__name__} {trainable!r}."
            )
        # Flatten through nnx.Variable nodes (an NNXToEqx inside `module` holds its state in
        # them): the tree structure keeps them, and no Variable is left in a static attribute,
        # which NNX refuses ("Found data ... assigned to static attribute").
        leaves, treedef = jax.tree_util.tree_flatten(module)
        self.treedef = _Structure(treedef)
        is_array = [eqx.is_array(x) for x in leaves]
        self.static = tuple(None if a else x for x, a in zip(leaves, is_array, strict=True))
        # An array the module holds fixed (behind stop_gradient) is a buffer whatever
        # `trainable` says: as an nnx.Param, AdamW's decoupled weight decay would shrink it.
        frozen = _frozen_leaves(module, treedef)
        in_param = _in_nnx_param(module)
        # each variable carries its SSM optimizer group (ssm_param_labels of an NNX state
        # reads it): the NNX state holds the leaves in a list, without the layers' field names
        from spectrax.nn._ssm_labels import ssm_param_labels

        labels = iter(jax.tree.leaves(ssm_param_labels(module)))
        groups = [next(labels) if a else None for a in is_array]
        self.leaves = nnx.List(
            [
                (nnx.Param if trainable(x) and param and not fixed else EqxBuffer)(
                    x, ssm_label=group
                )
                for x, a, param, fixed, group in zip(
                    leaves, is_array, in_param, frozen, groups, strict=True
                )
                if a
            ]
        )

    @property
    def module(self) -> Any:
        """The wrapped Equinox module, with the current values of the NNX variables."""
        values = iter(v[...] for v in self.leaves)
        leaves = [next(values) if x is None else x for x in self.static]
        return jax.tree_util.tree_unflatten(self.treedef.treedef, leaves)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name the wrapper itself lacks: the wrapped module's public methods
        # (e.g. SSMSequenceModel.step / init_state, a layer's kernel), bound at call time to
        # the current values, so an NNX optimizer step in between is seen. Arrays and other
        # attributes stay on `.module`: a stored copy would go stale as the variables train.
        if name.startswith("_") or name in {"treedef", "static", "leaves"}:
            raise AttributeError(name)
        module = self.module
        attr = inspect.getattr_static(type(module), name, None)
        if not inspect.isfunction(attr):  # a field, a submodule, a property, nothing
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r}: it passes through the "
                f"wrapped {type(module).__name__}'s methods only; read other attributes "
                f"from `.module` (e.g. wrapper.module.{name})."
            )

        def method(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.module, name)(*args, **kwargs)

        method.__name__ = name
        method.__doc__ = getattr(attr, "__doc__", None)
        return method


def _rng_streams(module: nnx.Module) -> list[str]:
    """The names of ``module``'s RNG streams (the tags of its ``nnx.RngKey`` variables)."""
    keys = jax.tree.leaves(
        nnx.state(module, nnx.RngKey), is_leaf=lambda v: isinstance(v, nnx.Variable)
    )
    return sorted({v.tag for v in keys})


class NNXToEqx(eqx.Module):
    """A Flax NNX module as an Equinox module: ``nnx.split`` state as pytree leaves.

    Example::

        layer = NNXToEqx(nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
        params = eqx.filter(layer, eqx.is_inexact_array)
        opt_state = optax.adam(1e-3).init(params)
        grads = eqx.filter_grad(loss)(layer, x, y)

    Args:
        module: an NNX module. Its graph structure (``GraphDef``) is a static field; its state
            (every variable, parameters and others) are the leaves.

    The forward pass merges a fresh copy of the NNX module, so it is a pure function of the
    leaves: in-place updates the NNX module would make during the call (batch-norm statistics,
    ``nnx.Rngs`` counters) are discarded. Only ``nnx.Param`` variables train: the others
    (``nnx.BatchStat`` running statistics, RNG state) enter the forward pass through
    ``jax.lax.stop_gradient``, so their gradient is zero. Filter trainable leaves with
    ``eqx.filter(model, eqx.is_inexact_array)`` as for any Equinox module (an optimizer with
    weight decay would still shrink float batch statistics: :func:`~spectrax.nn.frozen_param_mask`
    marks them, for ``optax.masked``; ``spectrax.train`` leaves them unchanged);
    :meth:`to_nnx` returns the NNX module with the current values. The wrapper holds a copy of
    ``module``'s state: later changes to ``module`` (e.g. an ``nnx.Optimizer`` step on it) do
    not reach the wrapper.

    Randomness (dropout): as the module's RNG counters are discarded after each call, every
    call without a key draws the same dropout mask. Pass ``key=`` (Equinox's convention, as
    ``spectrax.train`` does for a task with ``needs_key``): each of the module's RNG streams is
    reseeded for that call from ``key`` and the stream's name (``nnx.reseed``), so different
    keys draw different masks and the same key the same one, under ``jit`` and ``vmap``.
    ``key`` is not passed on to the NNX module; a module without RNG streams ignores it.
    """

    graphdef: Any = eqx.field(static=True)
    state: Any

    def __init__(self, module: nnx.Module):
        if not isinstance(module, nnx.Module):
            raise TypeError(
                f"NNXToEqx: module must be a flax.nnx.Module, got {type(module).__name__}"
            )
        # clone: split alone keeps the module's own Variable objects, so training or editing
        # `module` afterwards would change this (immutable) wrapper's values as well.
        self.graphdef, self.state = nnx.split(nnx.clone(module))

    def to_nnx(self) -> nnx.Module:
        """The NNX module with the current values (a new object; the wrapper is unchanged)."""
        # copy: merging reuses the state's Variable objects otherwise, and an eager call would
        # write batch statistics or RNG counters back into this (immutable) wrapper.
        return nnx.merge(self.graphdef, self.state, copy=True)

    def __call__(self, *args: Any, key: Any = None, **kwargs: Any) -> Any:
        # Only nnx.Param variables train. The rest (batch statistics, RNG state) are float or
        # integer arrays too, so eqx.filter(model, eqx.is_inexact_array) picks the float ones;
        # without stop_gradient an optimizer would step on BatchNorm's running mean and var.
        params, rest = nnx.split_state(self.state, nnx.Param, ...)
        rest = jax.tree.map(
            lambda a: jax.lax.stop_gradient(a) if eqx.is_inexact_array(a) else a, rest
        )
        module = nnx.merge(self.graphdef, params, rest, copy=True)
        if key is not None:
            check_key("key", key)
            streams = _rng_streams(module)
            if streams:
                # one key per stream, from its name: adding a stream leaves the others' draws
                seeds = {s: jax.random.fold_in(key, zlib.crc32(s.encode()) >> 1) for s in streams}
                nnx.reseed(module, policy="match_shape", **seeds)
        return module(*args, **kwargs)
