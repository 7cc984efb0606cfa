"""SSMSequenceModel: encoder, a stack of residual state-space blocks, pooling, decoder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from spectrax._checks import (
    check_choice,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_int,
    check_real_float,
    compute_dtype,
    widen_to_input,
)
from spectrax._compile import compiled_call
from spectrax._random import linear
from spectrax.nn import S4, S4D, S5, HyenaOperator
from spectrax.nn._ssm import _check_dt_steps, sequence_hint

SSM_LAYER_TYPES: dict[str, Callable[..., eqx.Module]] = {"s4": S4, "s4d": S4D, "s5": S5}
# Sequence mixers a block can hold: the state-space layers, and the Hyena long convolution
# (not a state-space layer: its filters are implicit, it needs ``max_len`` and has no state size).
LAYER_TYPES: tuple[str, ...] = (*SSM_LAYER_TYPES, "hyena")


def _make_layer(
    layer: str,
    d_model: int,
    state_size: int,
    max_len: int | None,
    layer_kwargs: dict[str, Any],
    dtype,
    key: PRNGKeyArray,
) -> eqx.Module:
    if layer == "hyena":
        return HyenaOperator(d_model, max_len, dtype=dtype, key=key, **layer_kwargs)
    return SSM_LAYER_TYPES[layer](d_model, state_size, dtype=dtype, key=key, **layer_kwargs)


def _check_block_args(
    layer: Any, dropout: Any, layer_kwargs: Any, max_len: Any, dtype: Any
) -> None:
    """The arguments :class:`SSMBlock` and :class:`SSMSequenceModel` share, or an error naming
    the one that is wrong."""
    check_choice("layer", layer, LAYER_TYPES)
    check_float_dtype("dtype", dtype)
    if layer == "hyena":
        if max_len is None:
            raise ValueError(
                "`max_len` is required with layer='hyena' (the longest sequence the model "
                "takes; it sizes the implicit filters); got max_len=None."
            )
        check_positive_int("max_len", max_len)
    elif max_len is not None:
        raise ValueError(
            f"`max_len` applies only to layer='hyena' (state-space layers take any length); "
            f"got max_len={max_len!r} with layer={layer!r}."
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.integer, np.floating)):
        raise TypeError(f"`dropout` must be a number in [0, 1); got {dropout!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout!r}.")
    if layer_kwargs is not None and not isinstance(layer_kwargs, Mapping):
        raise TypeError(
            "`layer_kwargs` must be a dict of keyword arguments of the layer (e.g. "
            f"{{'init': 'lin'}}); got {type(layer_kwargs).__name__} {layer_kwargs!r}."
        )
    reserved = {"max_len", "dtype", "key", "channels", "d_model", "state_size"}
    clash = sorted(reserved & set(layer_kwargs or {}))
    if clash:
        raise ValueError(
            f"`layer_kwargs` must not set {clash}: the model passes them to every layer "
            f"(give them as SSMSequenceModel arguments); got keys {sorted(layer_kwargs)}."
        )


def _check_dropout_key(rate: Any, key: Any, inference: bool) -> None:
    # a rate traced with the module (jax.jit of the whole pytree) counts as nonzero, as Equinox's
    # Dropout counts it
    if not inference and key is None and (not isinstance(rate, (int, float)) or rate > 0):
        raise ValueError(
            f"`key` is required with inference=False: the blocks apply dropout={rate}. Pass "
            "key=... to train, or leave inference unset (or True) to evaluate."
        )


def _pool_mean(y: Float[Array, "L H"], mask: Bool[Array, " L"] | None) -> Float[Array, " H"]:
    if mask is None:
        return jnp.mean(y, axis=0)
    # Sum and count in float32 (float64 for float64), rounded once, as jnp.mean does: in half
    # precision the count is inexact past 256 steps (bfloat16) and the sum overflows past 65504
    # (float16). NaN for an all-False mask (the mean of no steps), through a safe division: a
    # 0 / 0 would send a NaN cotangent back even where the loss drops the row.
    acc = compute_dtype(y.dtype)
    count = jnp.sum(mask, dtype=acc)
    total = jnp.sum(jnp.where(mask[:, None], y, jnp.zeros((), y.dtype)), axis=0, dtype=acc)
    mean = total / jnp.maximum(count, jnp.ones((), acc))
    return jnp.where(count > 0, mean, jnp.full((), jnp.nan, acc)).astype(y.dtype)


def _pool_last(y: Float[Array, "L H"], mask: Bool[Array, " L"] | None) -> Float[Array, " H"]:
    if mask is None:
        return y[-1]
    last = jnp.max(jnp.where(mask, jnp.arange(y.shape[0]), -1))  # -1: no valid step
    return jnp.where(last >= 0, y[jnp.maximum(last, 0)], jnp.nan)


def _pool_none(y: Float[Array, "L H"], mask: Bool[Array, " L"] | None) -> Float[Array, "L H"]:
    return y


POOLINGS: dict[str, Callable[[Array, Array | None], Array]] = {
    "mean": _pool_mean,
    "last": _pool_last,
    "none": _pool_none,
}


class SSMBlock(eqx.Module):
    """Pre-norm residual block: ``x + dropout(GLU(W gelu(SSM(norm(x)))))`` on ``(L, H)``.

    ``SSM`` is an S4, S4D or S5 layer, or a :class:`~spectrax.nn.HyenaOperator` (``layer="hyena"``,
    which needs ``max_len``).

    The GLU mixing (a linear map to ``2H`` channels, one half gating the other) follows S4/S5's
    "glu" output layer (Dauphin et al., 2017, "Language Modeling with Gated Convolutional
    Networks").

    Computes in the parameters' dtype (float64 for a float64 input: the parameters are widened
    for the call) and returns ``x``'s dtype.

    Args:
        layer: ``"s4"``, ``"s4d"``, ``"s5"`` or ``"hyena"``. d_model: channels ``H``.
        state_size: ``N`` (``P`` for S5; unused by Hyena). dropout: rate in ``[0, 1)``.
        layer_kwargs: extra keyword arguments of the layer (a dict, or ``None``).
        dtype: parameter dtype. max_len: Hyena's longest sequence (required with
            ``layer="hyena"``, ``None`` otherwise). key: PRNG key.

    Call with ``x`` ``(L, H)``, ``key`` (dropout's PRNG key, or ``None``) and ``inference``
    (``True`` turns dropout off; ``False`` with ``dropout > 0`` needs ``key``), and for an S5
    block optionally ``dt``, S5's per-step scale ``(L,)`` (irregular sampling).
    """

    norm: eqx.nn.LayerNorm
    ssm: eqx.Module
    mix: eqx.nn.Linear
    dropout: eqx.nn.Dropout

    def __init__(
        self,
        layer: str,
        d_model: int,
        state_size: int,
        dropout: float,
        layer_kwargs: Mapping[str, Any] | None,
        dtype,
        *,
        max_len: int | None = None,
        key: PRNGKeyArray,
    ):
        check_positive_int("d_model", d_model)
        _check_block_args(layer, dropout, layer_kwargs, max_len, dtype)
        check_key("key", key)
        k_ssm, k_mix = jax.random.split(key)
        layer_kwargs = dict(layer_kwargs or {})
        self.norm = eqx.nn.LayerNorm(d_model, dtype=dtype)
        self.ssm = _make_layer(layer, d_model, state_size, max_len, layer_kwargs, dtype, k_ssm)
        self.mix = linear(d_model, 2 * d_model, dtype=dtype, key=k_mix)
        self.dropout = eqx.nn.Dropout(dropout)

    def __call__(
        self,
        x: Float[Array, "L H"],
        *,
        key: PRNGKeyArray | None,
        inference: bool,
        dt: Float[Array, " L"] | None = None,
    ) -> Float[Array, "L H"]:
        check_parameters(self)
        check_real_float("x", x)
        h_in = self.mix.in_features
        if x.ndim != 2 or x.shape[1] != h_in or x.shape[0] < 1:
            raise ValueError(
                f"expected one sequence (L, H) with L >= 1 and H=d_model={h_in}; got "
                f"x.shape={x.shape}. {sequence_hint(x.shape, h_in)}"
            )
        _check_dropout_key(self.dropout.p, key, inference)
        _check_block_dt(self.ssm, dt)
        self = widen_to_input(self, x.dtype)  # a float64 input computes in float64
        h = x.astype(self.mix.weight.dtype)
        u = jax.vmap(self.norm)(h)
        z = (self.ssm(u) if dt is None else self.ssm(u, dt=dt)).astype(h.dtype)
        z = jax.nn.glu(jax.vmap(self.mix)(jax.nn.gelu(z)), axis=-1)
        return (h + self.dropout(z, key=key, inference=inference)).astype(x.dtype)

    def init_state(self) -> Array:
        """Zero recurrent state of the block's layer, for :meth:`step`."""
        if not hasattr(self.ssm, "step"):
            raise ValueError(
                f"`step` needs a state-space layer (s4, s4d, s5); this block holds a "
                f"{type(self.ssm).__name__}, which has no recurrent mode."
            )
        return self.ssm.init_state()

    def step(
        self, x_t: Float[Array, " H"], state: Array, dt: Float[Array, ""] | None = None
    ) -> tuple[Float[Array, " H"], Array]:
        """One time step of :meth:`__call__` (dropout off), with its dtype rule: computes in the
        parameters' dtype, float64 for a float64 ``x_t`` (the parameters are widened for the
        step), and returns ``x_t``'s dtype. The state keeps :meth:`init_state`'s dtype, so a
        float64 step of a float32 block rounds it to complex64 for the next step. ``dt``: an S5
        block's scale of this step (a scalar), as ``dt[t]`` of :meth:`__call__`."""
        zero = self.init_state()  # also the error for a layer without a recurrent mode
        # as __call__ and SSMSequenceModel.step: an integer x_t was stepped and the output
        # truncated to integers, a wrong shape failed inside LayerNorm naming nothing
        check_parameters(self)
        check_real_float("x_t", x_t)
        if x_t.shape != (self.mix.in_features,):
            raise ValueError(
                f"`x_t` must be one time step of shape (H,) = (d_model,) = "
                f"({self.mix.in_features},); got x_t.shape={x_t.shape}."
            )
        _check_block_dt(self.ssm, dt)
        if jnp.result_type(state) != zero.dtype:
            raise TypeError(
                f"`state` must have dtype {zero.dtype}, as init_state() returns for these "
                f"parameters; got {jnp.result_type(state)}. Start from init_state()."
            )
        wide = widen_to_input(self, x_t.dtype)  # a float64 input computes in float64
        h = x_t.astype(wide.mix.weight.dtype)
        # the widened layer steps a state of its own dtype; it is stored back in init_state()'s
        state = jnp.asarray(state).astype(wide.ssm.init_state().dtype)
        u = wide.norm(h)
        z, state = wide.ssm.step(u, state) if dt is None else wide.ssm.step(u, state, dt=dt)
        z = jax.nn.glu(wide.mix(jax.nn.gelu(z.astype(h.dtype))), axis=-1)
        return (h + z).astype(x_t.dtype), state.astype(zero.dtype)


def _check_block_dt(layer: eqx.Module, dt: Any) -> None:
    if dt is not None and not isinstance(layer, S5):
        raise ValueError(
            "`dt` (a per-step time scale, for irregularly sampled sequences) needs S5 layers "
            f"(layer='s5'), whose discretisation takes it; this model's layers are "
            f"{type(layer).__name__}. Drop `dt`, or build the model with layer='s5'."
        )


def _precheck_call(
    model, x=None, *args, dt=None, mask=None, key=None, inference=None, **kwargs
) -> None:
    """``SSMSequenceModel.__call__``'s checks on the arguments as given, before tracing."""
    if (mask is not None or dt is not None) and hasattr(x, "shape"):
        model._check_call(x, mask, key, inference, dt)  # else the call's own checks name `x`


def _precheck_step(model, x_t=None, state=None, dt=None, **kwargs) -> None:
    """``SSMSequenceModel.step``'s check of a concrete ``dt`` (finite, > 0), before tracing."""
    if dt is not None:
        _check_block_dt(model.blocks[0].ssm, dt)
        _check_dt_steps(dt, (), "a scalar")


class SSMSequenceModel(eqx.Module):
    """A deep state-space sequence model for classification or sequence-to-sequence regression.

    Gu, Goel & Ré, 2022 (S4); Smith et al., 2023 (S5): linear encoder ``d_input -> d_model``;
    ``n_layers`` :class:`SSMBlock` (SSM layer, layer norm, GELU + GLU mixing, dropout,
    residual); a final layer norm; pooling over time (``"mean"``, ``"last"`` for
    classification, ``"none"`` for sequence-to-sequence); linear decoder ``-> d_output``.
    With ``layer="hyena"`` the blocks hold Hyena operators (Poli et al., 2023, "Hyena
    Hierarchy") in place of the state-space layers: the same model around a long convolution.

    Args:
        d_input, d_output, d_model: feature sizes. n_layers: number of blocks.
        layer: ``"s4"``, ``"s4d"``, ``"s5"`` or ``"hyena"``. state_size: ``N`` (``P`` for S5;
            unused by Hyena, whose filters are implicit).
        max_len: the longest sequence a Hyena model takes (required with ``layer="hyena"``,
            which sizes its filters by it; must be left ``None`` otherwise).
        pooling: ``"mean"`` (default), ``"last"`` or ``"none"``.
        dropout: dropout rate in the blocks (0).
        layer_kwargs: extra keyword arguments of the SSM layer (e.g. ``{"init": "lin"}``).
        dtype: parameter dtype (a float64 input computes in float64: the parameters are
            widened for the call). The output is in the parameters' dtype, float64 for a
            float64 input, as :class:`~spectrax.models.FNO`'s (the blocks' layers return their
            input's dtype, and each block casts back to the model's dtype). key: PRNG key.

    Call with one sequence ``(L, d_input)``; returns ``(d_output,)`` or, with
    ``pooling="none"``, ``(L, d_output)``. Pass ``key`` for dropout when training, ``mask``
    for padded sequences of different lengths, and with S5 layers ``dt`` for irregularly
    sampled sequences (see :meth:`__call__`).
    """

    encoder: eqx.nn.Linear
    blocks: tuple[SSMBlock, ...]
    norm: eqx.nn.LayerNorm
    decoder: eqx.nn.Linear
    pooling: str = eqx.field(static=True)
    max_len: int | None = eqx.field(static=True)

    def __init__(
        self,
        d_input: int,
        d_output: int,
        d_model: int = 64,
        n_layers: int = 4,
        *,
        layer: str = "s4d",
        state_size: int = 64,
        pooling: str = "mean",
        dropout: float = 0.0,
        layer_kwargs: dict[str, Any] | None = None,
        max_len: int | None = None,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        for name, value in (
            ("d_input", d_input),
            ("d_output", d_output),
            ("d_model", d_model),
            ("n_layers", n_layers),
        ):
            check_positive_int(name, value)
        check_choice("pooling", pooling, tuple(POOLINGS))
        _check_block_args(layer, dropout, layer_kwargs, max_len, dtype)
        check_key("key", key)
        keys = jax.random.split(key, n_layers + 2)
        self.encoder = linear(d_input, d_model, dtype=dtype, key=keys[0])
        self.blocks = tuple(
            SSMBlock(
                layer,
                d_model,
                state_size,
                dropout,
                dict(layer_kwargs or {}),
                dtype,
                max_len=max_len,
                key=k,
            )
            for k in keys[2:]
        )
        self.norm = eqx.nn.LayerNorm(d_model, dtype=dtype)
        self.decoder = linear(d_model, d_output, dtype=dtype, key=keys[1])
        self.pooling = pooling
        self.max_len = max_len

    @compiled_call(precheck=_precheck_call)
    def __call__(
        self,
        x: Float[Array, "L D"],
        *,
        dt: Float[Array, " L"] | None = None,
        mask: Bool[Array, " L"] | None = None,
        key: PRNGKeyArray | None = None,
        inference: bool | None = None,
    ) -> Float[Array, "..."]:
        """Apply the model to one sequence; batch with ``jax.vmap``.

        Args:
            x: ``(L, d_input)``, real floating point, ``L >= 1`` (``L <= max_len`` for Hyena).
            dt: S5 layers only (``layer="s5"``): a positive per-step scale ``(L,)`` of every
                block's step, for irregularly sampled sequences (Smith et al., 2023, Sec. 6.3):
                block ``b``'s step at time ``k`` is ``exp(log_dt_b) * dt[k]``, e.g. the time
                between observations ``k - 1`` and ``k`` in the units the steps were
                initialised for. Finite and positive at every step, padded ones included
                (pad with ones); in scan or recurrent mode (a per-step step has no single
                convolution kernel: mode="conv" refuses it). ``None`` (default): every step is 1.
            mask: optional boolean ``(L,)``, ``True`` at valid steps, ``False`` at padding:
                sequences of different lengths padded at the end to a common ``L`` (``jax.vmap``
                over ``x`` and ``mask`` together). Padded inputs are replaced by zeros (so any
                values, NaN included, may fill them); ``"mean"`` pools the valid steps only,
                ``"last"`` takes the last valid step, and ``"none"`` returns zeros at padded
                steps. Every layer is causal, so with padding at the end the result equals that
                of the unpadded sequence ``x[:n]`` (to round-off). Padding elsewhere (at the
                start, or holes) is pooled out but still read by the layers: as the encoder's
                output for a zero input (its bias).
                An all-``False`` mask with ``"mean"`` or ``"last"`` raises a ValueError when
                the mask is concrete; under ``jit``/``vmap`` it returns NaN (nothing to pool),
                with gradients that stay finite where the loss drops that row (``jnp.where``).
                Not with bidirectional layers (``layer_kwargs={"bidirectional": True}``), whose
                backward pass carries the padding into every step. ``None`` (default): all
                steps are valid.
            key: PRNG key for dropout; dropout is on iff ``key`` is given (unless
                ``inference`` says otherwise).
            inference: ``True`` turns dropout off, ``False`` on (then ``key`` is needed).

        Returns:
            ``(d_output,)``, or ``(L, d_output)`` with ``pooling="none"``.
        """
        check_parameters(self)
        mask = self._check_call(x, mask, key, inference, dt)
        if mask is not None:
            x = jnp.where(mask[:, None], x, jnp.zeros((), x.dtype))
        inference = key is None if inference is None else inference
        keys = (
            [None] * len(self.blocks)
            if key is None
            else list(jax.random.split(key, len(self.blocks)))
        )
        self = widen_to_input(self, x.dtype)  # a float64 input computes in float64
        h = jax.vmap(self.encoder)(x.astype(self.encoder.weight.dtype))
        for block, k in zip(self.blocks, keys, strict=True):
            h = block(h, key=k, inference=inference, dt=dt)
        h = POOLINGS[self.pooling](jax.vmap(self.norm)(h), mask)
        if h.ndim == 1:
            if mask is None:
                return self.decoder(h)
            # An empty sequence answers NaN, but the decoder reads zeros: its weight gradient
            # (ct x h) would be NaN, even where the loss drops the row, for the whole batch.
            empty = ~jnp.any(mask)
            y = self.decoder(jnp.where(empty, jnp.zeros((), h.dtype), h))
            return jnp.where(empty, jnp.full((), jnp.nan, y.dtype), y)
        y = jax.vmap(self.decoder)(h)
        return y if mask is None else jnp.where(mask[:, None], y, jnp.zeros((), y.dtype))

    def init_state(self) -> tuple[Array, ...]:
        """Zero state for :meth:`step`: one state per block (see the layers' ``init_state``)."""
        self._check_step_model()
        return tuple(block.init_state() for block in self.blocks)

    @compiled_call(precheck=_precheck_step)
    def step(
        self,
        x_t: Float[Array, " D"],
        state: tuple[Array, ...],
        dt: Float[Array, ""] | None = None,
    ) -> tuple[Float[Array, " d_output"], tuple[Array, ...]]:
        """One time step of the model in recurrent mode, for autoregressive generation.

        Feeding ``x[0], x[1], ...`` from :meth:`init_state` returns, at step ``t``, row ``t`` of
        ``model(x)`` with ``pooling="none"`` (or ``model(x[: t + 1])`` with ``"last"``), to
        round-off: the layers' convolution and recurrent modes agree. Dropout is off.

        The dtype rule of :meth:`__call__`: computes in the parameters' dtype, float64 for a
        float64 ``x_t`` (the parameters are widened for the step), and returns ``y_t`` in that
        dtype (not ``x_t``'s: a bfloat16 ``x_t`` into a float32 model gives float32). The state
        keeps :meth:`init_state`'s dtype (complex128 for float64 parameters, else complex64),
        so ``lax.scan`` can carry it: with a float64 ``x_t`` into a float32 model each step
        computes in float64 but the state between steps is rounded to complex64 (about 1e-7
        relative); build the model with ``dtype=jnp.float64`` to match a float64 call to
        float64 round-off. Needs causal state-space layers (``"s4"``, ``"s4d"``, ``"s5"``; not
        Hyena, not bidirectional) and ``pooling`` ``"none"`` or ``"last"``.

        Args:
            x_t: one step of the input, ``(d_input,)``.
            state: the state from :meth:`init_state` or the previous ``step``.
            dt: S5 layers only: this step's positive scale, ``dt[t]`` of :meth:`__call__`
                (``None``: 1).

        Returns:
            ``(y_t, state)``: ``y_t`` of shape ``(d_output,)`` and the next state.
        """
        self._check_step_model()
        check_parameters(self)
        check_real_float("x_t", x_t)
        if x_t.shape != (self.encoder.in_features,):
            raise ValueError(
                f"`x_t` must be one time step of shape (d_input,) = "
                f"({self.encoder.in_features},); got x_t.shape={x_t.shape}."
            )
        if not isinstance(state, (tuple, list)) or len(state) != len(self.blocks):
            raise ValueError(
                f"`state` must be a tuple of {len(self.blocks)} block states (see init_state()); "
                f"got {type(state).__name__} {jax.tree.map(jnp.shape, state)}."
            )
        for i, (s, z) in enumerate(zip(state, self.init_state(), strict=True)):
            # named here: the block's own error said `state`, not which of the tuple's entries
            if tuple(jnp.shape(s)) != z.shape:
                raise ValueError(
                    f"`state[{i}]` must have shape {z.shape}, as init_state()[{i}] (block {i}'s "
                    f"layer state); got {tuple(jnp.shape(s))}. Start from model.init_state()."
                )
            if jnp.result_type(s) != z.dtype:
                raise TypeError(
                    f"`state[{i}]` must have dtype {z.dtype}, as init_state() returns for these "
                    f"parameters; got {jnp.result_type(s)}. Start from model.init_state()."
                )
        wide = widen_to_input(self, x_t.dtype)  # a float64 input computes in float64
        h = wide.encoder(x_t.astype(wide.encoder.weight.dtype))
        new_state = []
        for block, s in zip(self.blocks, state, strict=True):
            h, s = block.step(h, s, dt)  # widens itself for a float64 h; the state keeps its dtype
            new_state.append(s)
        return wide.decoder(wide.norm(h)), tuple(new_state)

    def _check_call(
        self, x: Any, mask: Any, key: Any, inference: Any, dt: Any = None
    ) -> Array | None:
        """The checks of :meth:`__call__`, also made before it is traced (by
        ``_precheck_call``), where an all-False ``mask`` and ``dt``'s values are concrete:
        ``mask`` as an array."""
        check_real_float("x", x)
        if x.ndim != 2 or x.shape[1] != self.encoder.in_features or x.shape[0] < 1:
            raise ValueError(
                f"expected one sequence (L, d_input) with L >= 1 and "
                f"d_input={self.encoder.in_features}; got x.shape={x.shape}. "
                f"{sequence_hint(x.shape, self.encoder.in_features)}"
            )
        if self.max_len is not None and x.shape[0] > self.max_len:
            raise ValueError(
                f"`x` has L={x.shape[0]} steps; this Hyena model takes at most "
                f"max_len={self.max_len} (got x.shape={x.shape})."
            )
        if mask is not None:
            mask = self._check_mask(mask, x.shape)
        if dt is not None:
            _check_block_dt(self.blocks[0].ssm, dt)
            _check_dt_steps(dt, x.shape[:1], "(L,)")
        if key is not None:
            check_key("key", key)  # dropout's key: an int seed failed in jax.random.split
        inference = key is None if inference is None else inference
        _check_dropout_key(self.blocks[0].dropout.p, key, inference)
        return mask

    def _check_step_model(self) -> None:
        if self.pooling == "mean":
            raise ValueError(
                "`step` returns one output per step, which pooling='mean' does not have; build "
                "the model with pooling='none' (sequence output) or 'last' for decoding."
            )

    def _check_mask(self, mask: Any, x_shape: tuple[int, ...]) -> Array:
        """``mask`` as a boolean ``(L,)`` array, or an error naming it."""
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise TypeError(
                f"`mask` must be a boolean array (True at valid steps); got dtype {mask.dtype}. "
                "Pass e.g. mask.astype(bool), or jnp.arange(L) < length for a sequence of "
                "`length` valid steps."
            )
        if mask.shape != x_shape[:1]:
            raise ValueError(
                f"`mask` must have shape (L,) = {x_shape[:1]}, one flag per step of "
                f"x.shape={x_shape}; got mask.shape={mask.shape}. Batch x and mask together "
                "with jax.vmap."
            )
        bidirectional = [
            type(b.ssm).__name__ for b in self.blocks if getattr(b.ssm, "bidirectional", False)
        ]
        if bidirectional:
            raise ValueError(
                f"`mask` needs causal layers, but this model's {bidirectional[0]} layers are "
                "bidirectional (layer_kwargs={'bidirectional': True}): their backward pass "
                "carries the padding into every step. Build the model without bidirectional "
                "to pad sequences, or call it on each unpadded sequence."
            )
        if self.pooling != "none" and not isinstance(mask, jax.core.Tracer):
            if not np.any(np.asarray(mask)):
                raise ValueError(
                    f"`mask` is all False: pooling={self.pooling!r} has no valid step to pool "
                    f"(got mask.shape={mask.shape}). Drop empty sequences from the batch."
                )
        return mask
