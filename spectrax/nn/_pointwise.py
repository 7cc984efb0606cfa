"""Pointwise (1x1) channel maps on fields ``(C, *spatial)``: linear, MLP, layer norm."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    as_jax,
    check_bool,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    module_compute_dtype,
)
from spectrax._random import from_params, uniforms

# Activations by name. "gelu" is jax.nn.gelu (the tanh approximation, JAX's default);
# "gelu_exact" is the erf form, PyTorch's default and the one the FNO paper's code and
# neuraloperator use (the two differ by up to 1e-3 per call; an FNO's output by about 1e-4).
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": jax.nn.gelu,  # JAX's default, the tanh approximation
    "gelu_exact": functools.partial(jax.nn.gelu, approximate=False),  # erf form, as PyTorch's
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "identity": lambda x: x,
}


def get_activation(activation: str | Callable[[Array], Array]) -> Callable[[Array], Array]:
    """An activation function from its name (a key of ``ACTIVATIONS``) or a callable as is."""
    if callable(activation):
        return activation
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"`activation` must be a callable or one of {sorted(ACTIVATIONS)}; got {activation!r}."
        )
    return ACTIVATIONS[activation]


def pointwise_linear(
    x: Float[Array, " C_in *spatial"], weight: Float[Array, "C_out C_in"], bias
) -> Float[Array, " C_out *spatial"]:
    """``y[o, s] = sum_i W[o, i] x[i, s] + b[o]`` at every grid point ``s``.

    Computed with the channels minor (``x^T W^T``, moved back after): under ``jax.vmap`` that is
    one plain matrix product over all batch and grid points, where the channels-first
    contraction makes XLA transpose the whole field first.

    ``x`` ``(C_in, *spatial)``, ``weight`` ``(C_out, C_in)`` and ``bias`` ``(C_out,)`` or None are
    real floating-point arrays; computed (and returned) in ``weight``'s dtype, or float64 for a
    float64 ``x``.
    """
    check_real_float("x", x)
    check_real_float("weight", weight)
    if bias is not None:
        check_real_float("bias", bias)
    if (
        x.ndim < 1
        or weight.ndim != 2
        or x.shape[0] != weight.shape[1]
        or (bias is not None and bias.shape != weight.shape[:1])
    ):
        raise ValueError(
            f"`x`, `weight`, `bias` must have shapes (C_in, *spatial), (C_out, C_in), (C_out,) "
            f"or None; got x.shape={x.shape}, weight.shape={weight.shape}, bias.shape="
            f"{None if bias is None else bias.shape}."
        )
    dtype = module_compute_dtype(x.dtype, weight.dtype)
    y = _linear_last(jnp.moveaxis(x.astype(dtype), 0, -1), weight, bias)
    return jnp.moveaxis(y, -1, 0)


def _linear_last(x: Float[Array, "*spatial C_in"], weight, bias) -> Float[Array, "*spatial C_out"]:
    """In ``x``'s dtype (the caller picks it with ``module_compute_dtype``)."""
    y = jnp.tensordot(x, weight.astype(x.dtype), axes=((x.ndim - 1,), (1,)))
    if bias is None:
        return y
    return y + bias.astype(x.dtype).reshape((1,) * (y.ndim - 1) + (-1,))


def _linear_params(keys, layers, dtype) -> list[Array | None]:
    """``[weight, bias or None, ...]`` of linear layers ``layers = ((in, out, use_bias), ...)``,
    each ``U(+-1/sqrt(in))`` from the halves of its key split in two, as one draw
    (``spectrax._random.uniforms``: the bits of a draw each)."""
    halves = jax.vmap(jax.random.split)(jnp.stack(keys))
    draw_keys, shapes, bounds, slots = [], [], [], []
    for (c_in, c_out, use_bias), (wkey, bkey) in zip(layers, halves, strict=True):
        lim = 1.0 / math.sqrt(c_in)
        draw_keys += [wkey, bkey] if use_bias else [wkey]
        shapes += [(c_out, c_in), (c_out,)] if use_bias else [(c_out, c_in)]
        bounds += [(-lim, lim)] * (2 if use_bias else 1)
        slots += [True, use_bias]
    draws = iter(uniforms(draw_keys, shapes, dtype, bounds))
    return [next(draws) if drawn else None for drawn in slots]


# One jitted program per size and dtype for a layer's split and draws (eagerly a PointwiseLinear
# was 4 XLA compilations, a ChannelMLP 6), and one draw for all its arrays.
@functools.partial(jax.jit, static_argnames=("layers", "dtype"))
def draw_linear_layers(key, *, layers: tuple[tuple[int, int, bool], ...], dtype) -> list:
    """The ``(weight, bias)`` pairs of ``len(layers)`` layers from ``key`` split as ChannelMLP
    splits it; one layer: from ``key`` itself, as PointwiseLinear draws."""
    keys = [key] if len(layers) == 1 else list(jax.random.split(key, len(layers)))
    params = _linear_params(keys, layers, dtype)
    return [tuple(params[2 * i : 2 * i + 2]) for i in range(len(layers))]


def check_channel_field(x, channels: int) -> None:
    """A TypeError unless ``x`` is a real floating-point array, a ValueError unless its axis 0
    holds ``channels`` channels (a field ``(C, *spatial)``); both name ``x``."""
    check_real_float("x", x)
    if x.ndim < 1 or x.shape[0] != channels:
        raise ValueError(f"`x` must have {channels} channels on axis 0; got x.shape={x.shape}.")


class PointwiseLinear(eqx.Module):
    """A 1x1 convolution: the same affine channel map at every grid point of ``(C_in, *spatial)``.

    Initialised like ``torch.nn.Linear`` / ``eqx.nn.Linear``: uniform in ``+-1/sqrt(C_in)``.

    Args:
        in_channels, out_channels: channel counts.
        use_bias: add a per-channel bias (default True).
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).
    """

    weight: Float[Array, "C_out C_in"]
    bias: Float[Array, " C_out"] | None
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {"C_out": "out_channels", "C_in": "in_channels"}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        use_bias: bool = True,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        use_bias = check_bool("use_bias", use_bias)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        ((self.weight, self.bias),) = draw_linear_layers(
            key, layers=((self.in_channels, self.out_channels, use_bias),), dtype=dtype
        )

    def __call__(self, x: Float[Array, " C_in *spatial"]) -> Float[Array, " C_out *spatial"]:
        check_parameters(self)
        check_channel_field(x, self.in_channels)
        return pointwise_linear(x, self.weight, self.bias)


class SoftGating(eqx.Module):
    """A per-channel scale, ``y[c] = w[c] x[c]`` at every grid point (``w`` starts at 1): the
    cheapest skip connection of an operator block (neuraloperator's ``"soft-gating"`` skip,
    Kossaifi et al., 2023, "Multi-Grid Tensorized Fourier Neural Operator for High-Resolution
    PDEs").

    Args:
        channels: ``C``.
        dtype: parameter dtype (float32).

    Computed in and returned as the parameters' dtype (float64 for a float64 input), like
    :class:`PointwiseLinear`.
    """

    weight: Float[Array, " C"]
    channels: int = eqx.field(static=True)

    # a weight swapped in at another size is refused against `channels` (not read as the
    # input's channel count)
    parameter_dims: ClassVar[dict[str, str]] = {"C": "channels"}

    def __init__(self, channels: int, *, dtype=jnp.float32):
        self.channels = check_positive_int("channels", channels)
        self.weight = jnp.ones((channels,), check_float_dtype("dtype", dtype))

    def __call__(self, x: Float[Array, " C *spatial"]) -> Float[Array, " C *spatial"]:
        check_parameters(self)
        # the weight's length, which `check_parameters` pinned to `channels` (inside shard_map
        # the layer may hold its shard of the channels)
        check_channel_field(x, self.weight.shape[0])
        dtype = module_compute_dtype(x.dtype, self.weight.dtype)
        return x.astype(dtype) * self.weight.astype(dtype).reshape((-1,) + (1,) * (x.ndim - 1))


class ChannelMLP(eqx.Module):
    """Two pointwise linear maps with an activation between: ``C_in -> hidden -> C_out``."""

    fc1: PointwiseLinear
    fc2: PointwiseLinear
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        activation: str | Callable[[Array], Array] = "gelu",
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        # checked here, so that an error names this constructor's arguments (a bad
        # hidden_channels was reported as fc1's `out_channels`)
        in_channels = check_positive_int("in_channels", in_channels)
        hidden_channels = check_positive_int("hidden_channels", hidden_channels)
        out_channels = check_positive_int("out_channels", out_channels)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        sizes = ((in_channels, hidden_channels, True), (hidden_channels, out_channels, True))
        self.fc1, self.fc2 = (
            from_params(
                functools.partial(PointwiseLinear, c_in, c_out, dtype=dtype, key=key),
                lambda m: (m.weight, m.bias),
                params,
            )
            for (c_in, c_out, _), params in zip(
                sizes, draw_linear_layers(key, layers=sizes, dtype=dtype), strict=True
            )
        )
        self.activation = get_activation(activation)

    def __call__(self, x: Float[Array, " C_in *spatial"]) -> Float[Array, " C_out *spatial"]:
        check_parameters(self)  # fc1 and fc2 too: read here, not through their calls
        check_channel_field(x, self.fc1.in_channels)
        # Channels minor throughout, so the wide hidden layer is never transposed.
        h = jnp.moveaxis(x.astype(module_compute_dtype(x.dtype, self.fc1.weight.dtype)), 0, -1)
        h = self.activation(_linear_last(h, self.fc1.weight, self.fc1.bias))
        return jnp.moveaxis(_linear_last(h, self.fc2.weight, self.fc2.bias), -1, 0)


class ChannelLayerNorm(eqx.Module):
    """Layer norm over the channel axis at every grid point, with per-channel scale and shift.

    Args:
        channels: ``C >= 2`` (over one channel the variance is 0 and the output the shift).
        eps: added to the variance, a finite number ``> 0`` (default 1e-5): a constant field
            has variance 0.
        dtype: parameter dtype (float32).

    Returns the input's dtype; half precision is normalised in float32 and rounded once (as
    :class:`GroupNorm`), a float64 input in float64.
    """

    scale: Float[Array, " C"]
    shift: Float[Array, " C"]
    eps: float = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    parameter_dims: ClassVar[dict[str, str]] = {"C": "channels"}

    def __init__(self, channels: int, *, eps: float = 1e-5, dtype=jnp.float32):
        channels = self.channels = check_positive_int("channels", channels)
        if channels == 1:  # as GroupNorm refuses one value per group
            raise ValueError(
                "`channels`=1: a layer norm over one channel sees variance 0 at every grid "
                "point and returns its shift whatever the input; expected channels >= 2 "
                "(GroupNorm(1, 1) normalises one channel over the grid)."
            )
        self.eps = check_positive_float("eps", eps)
        dtype = check_float_dtype("dtype", dtype)
        self.scale = jnp.ones((channels,), dtype)
        self.shift = jnp.zeros((channels,), dtype)

    def __call__(self, x: Float[Array, " C *spatial"]) -> Float[Array, " C *spatial"]:
        check_parameters(self)
        check_channel_field(x, self.scale.shape[0])
        x = as_jax(x)  # NumPy float64 without x64: JAX's float32, no truncation warning
        # in bfloat16, the statistics and x - mean cost digits on a field with a mean offset
        # (C = 64, mean 10, std 0.5: 0.078 off the float64 norm; one final rounding: 0.0078)
        work = jnp.float32 if jnp.finfo(x.dtype).bits < 32 else x.dtype
        h = x.astype(work)
        mean = jnp.mean(h, axis=0, keepdims=True)
        var = jnp.mean(jnp.square(h - mean), axis=0, keepdims=True)
        shape = (-1,) + (1,) * (x.ndim - 1)
        y = (h - mean) * jax.lax.rsqrt(var + jnp.asarray(self.eps, work))
        y = y * self.scale.reshape(shape).astype(work) + self.shift.reshape(shape).astype(work)
        return y.astype(x.dtype)


class GroupNorm(eqx.Module):
    """Group norm on fields ``(C, *spatial)``: the channels split into ``groups`` groups of
    ``C / groups``, each normalised to zero mean and unit variance over its channels and every
    grid point, then a per-channel scale and shift (Wu & He, 2018, "Group Normalization").

    ``groups=1`` normalises the whole field (neuraloperator's ``"group_norm"``, PyTorch's
    ``GroupNorm(1, C)``); ``groups=C`` each channel over the grid, an instance norm. Means
    over the grid are those of the function for a band-limited field on a fine enough grid, so
    the layer maps the same function to the same function on any such grid.

    Args:
        groups: number of groups, dividing ``channels``.
        channels: ``C``.
        eps: added to the variance, a finite number ``> 0`` (default 1e-5).
        dtype: parameter dtype (float32).

    Returns the input's dtype; half precision is normalised in float32 and rounded once, a
    float64 input in float64.
    """

    scale: Float[Array, " C"]
    shift: Float[Array, " C"]
    groups: int = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    parameter_dims: ClassVar[dict[str, str]] = {"C": "channels"}

    def __init__(self, groups: int, channels: int, *, eps: float = 1e-5, dtype=jnp.float32):
        groups = check_positive_int("groups", groups)
        channels = self.channels = check_positive_int("channels", channels)
        if channels % groups:
            raise ValueError(
                f"`groups`={groups} must divide `channels`={channels} (1 for one group over all "
                f"channels, {channels} for an instance norm)."
            )
        self.groups = groups
        self.eps = check_positive_float("eps", eps)
        dtype = check_float_dtype("dtype", dtype)
        self.scale = jnp.ones((channels,), dtype)
        self.shift = jnp.zeros((channels,), dtype)

    def __call__(self, x: Float[Array, " C *spatial"]) -> Float[Array, " C *spatial"]:
        check_parameters(self)
        check_channel_field(x, self.scale.shape[0])
        x = as_jax(x)  # NumPy float64 without x64: JAX's float32, no truncation warning
        if x.size == self.groups:
            raise ValueError(
                f"`x` holds one value per group (x.shape={x.shape}, groups={self.groups}): its "
                "variance is 0 and the output would be the shift alone; expected a field "
                "(C, *spatial) with grid points, or fewer groups."
            )
        work = jnp.float32 if jnp.finfo(x.dtype).bits < 32 else x.dtype
        h = x.astype(work).reshape(self.groups, -1)
        mean = jnp.mean(h, axis=1, keepdims=True)
        var = jnp.mean(jnp.square(h - mean), axis=1, keepdims=True)
        y = ((h - mean) * jax.lax.rsqrt(var + jnp.asarray(self.eps, work))).reshape(x.shape)
        shape = (-1,) + (1,) * (x.ndim - 1)
        y = y * self.scale.reshape(shape).astype(work) + self.shift.reshape(shape).astype(work)
        return y.astype(x.dtype)
