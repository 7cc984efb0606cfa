"""Optax parameter groups: state-space layers and Hyena's implicit filters, and the arrays a
module holds fixed."""

from __future__ import annotations

import sys
from typing import Any

import equinox as eqx
import jax

from spectrax.nn._fourier_features import FourierFeatures
from spectrax.nn._hyena import HyenaFilter
from spectrax.nn._ssm import S4, S4D, S5

# Modules whose `ssm_params` (names of array fields) go to the "ssm" group.
SSM_LAYERS = (S4, S4D, S5, HyenaFilter)


def _loaded(module: str, name: str) -> tuple[type, ...]:
    """``(module.name,)`` if ``module`` is already imported, else ``()``: Flax NNX (and the
    bridges of ``spectrax.nn._nnx``, which import it) load only when a model uses them, and
    nothing is an instance of a class that was never imported."""
    mod = sys.modules.get(module)
    return (getattr(mod, name),) if mod is not None else ()


def _label_layer(layer: Any) -> Any:
    def label(path, leaf):
        if not eqx.is_array(leaf):
            return None
        names = [k.name for k in path if isinstance(k, jax.tree_util.GetAttrKey)]
        return "ssm" if names and names[-1] in layer.ssm_params else "default"

    return jax.tree_util.tree_map_with_path(label, layer)


def ssm_param_labels(model: Any) -> Any:
    """A pytree like ``model`` with ``"ssm"`` at the parameters that define a long convolution
    kernel and ``"default"`` at every other array.

    ``"ssm"`` holds the state-space parameters of every S4, S4D and S5 layer (Λ, B, log dt, and
    S4's low-rank ``P``) and every parameter of a :class:`~spectrax.nn.HyenaFilter` (its FFN's
    weights and biases, output map and sine frequency; the rest of a
    :class:`~spectrax.nn.HyenaOperator`, its projections, short filter and skip ``D``, is
    ``"default"``). Gu, Goel & Ré, 2022 (S4) and Smith et al., 2023 (S5) train the SSM parameters
    with their own (smaller) learning rate and no weight decay; the Hyena reference code (Poli et
    al., 2023, "Hyena Hierarchy") gives the implicit filter's FFN its own learning rate and
    weight decay, 0 in its configs. Use with ``optax.multi_transform``::

        params = eqx.filter(model, eqx.is_array)
        labels = ssm_param_labels(params)
        opt = optax.multi_transform(
            {"ssm": optax.adam(1e-3), "default": optax.adamw(4e-3, weight_decay=0.05)},
            lambda _: labels)  # a labelled module is callable: optax must not call it

    Works on a model or on ``eqx.filter(model, eqx.is_array)``, with the same result: leaves that
    are not arrays (and ``None`` leaves) are ``None`` in the labels. Also on the NNX state of a
    Flax model holding spectrax layers in :class:`~spectrax.nn.EqxToNNX` (what
    ``nnx.Optimizer`` passes an Optax transformation, ``nnx.state(model, nnx.Param)``): one
    label per NNX variable, those of a wrapped layer's SSM parameters ``"ssm"``. Pass the
    labels themselves, not this function: ``nnx.Optimizer`` updates with plain arrays, which
    carry no label::

        labels = ssm_param_labels(nnx.state(model, nnx.Param))
        groups = {"ssm": optax.adam(1e-3), "default": optax.adamw(4e-3, weight_decay=0.05)}
        opt = nnx.Optimizer(model, optax.multi_transform(groups, labels), wrt=nnx.Param)
    """
    # Non-array leaves (a dropout rate, an activation function) get None, as in
    # eqx.filter(model, eqx.is_array): the labels of a model fit its filtered parameters. An
    # NNX variable carries the label EqxToNNX gave it. In an NNX state the label stands at the
    # variable (a prefix of the tree, which optax.multi_transform takes, and the whole tree of
    # the plain arrays nnx.Optimizer updates with); inside an Equinox model (an NNXToEqx's
    # state) at the variable's array, the structure frozen_param_mask gives.
    variable = _loaded("flax.nnx", "Variable")
    at_variable = isinstance(model, _loaded("flax.nnx", "State"))

    def label(node: Any) -> Any:
        if isinstance(node, SSM_LAYERS):
            return _label_layer(node)
        if isinstance(node, variable):
            group = node.get_metadata().get("ssm_label", "default")
            if at_variable:
                return group
            return jax.tree.map(lambda leaf: group if eqx.is_array(leaf) else None, node)
        return "default" if eqx.is_array(node) else None

    return jax.tree.map(
        label, model, is_leaf=lambda node: isinstance(node, (*SSM_LAYERS, *variable))
    )


def _mask_of(node: Any, frozen: bool) -> Any:
    return jax.tree.map(lambda leaf: frozen if eqx.is_array(leaf) else None, node)


def frozen_param_mask(model: Any) -> Any:
    """A pytree like ``model`` with ``True`` at the arrays its modules hold fixed, ``False`` at
    every other array (``None`` at leaves that are not arrays, as in ``eqx.filter``).

    Fixed arrays enter the forward pass through ``jax.lax.stop_gradient``, so their gradient is
    zero, but decoupled weight decay (AdamW) would still shrink them: the random frequencies ``B``
    of a :class:`~spectrax.nn.FourierFeatures` with ``trainable=False`` (Tancik et al., 2020:
    fixed features; shrinking ``B`` lowers the bandwidth ``sigma``), and the variables of a
    wrapped NNX module (:class:`~spectrax.nn.NNXToEqx`) that are not ``nnx.Param`` (batch
    statistics). ``spectrax.train`` gives them an optimizer group that never changes them; with
    your own optimizer::

        params = eqx.filter(model, eqx.is_inexact_array)
        trained = jax.tree.map(lambda frozen: not frozen, frozen_param_mask(params))
        opt = optax.masked(optax.adamw(1e-3, weight_decay=0.1), trained)

    Works on a model or on its filtered parameters, with the same result.
    """

    wrapped = _loaded("spectrax.nn._nnx", "NNXToEqx")

    def mark(node: Any) -> Any:
        if isinstance(node, FourierFeatures):
            return _mask_of(node, not node.trainable)
        if isinstance(node, wrapped):
            from flax import nnx  # imported already: spectrax.nn._nnx imports it

            return jax.tree.map(
                lambda v: (
                    _mask_of(v, not isinstance(v, nnx.Param))
                    if isinstance(v, nnx.Variable)
                    else _mask_of(v, False)
                ),
                node,
                is_leaf=lambda v: isinstance(v, nnx.Variable),
            )
        return _mask_of(node, False)

    return jax.tree.map(mark, model, is_leaf=lambda n: isinstance(n, (FourierFeatures, *wrapped)))
