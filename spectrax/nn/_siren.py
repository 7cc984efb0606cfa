"""SIREN: sinusoidal representation networks.

Sitzmann, Martel, Bergman, Lindell, Wetzstein (2020), "Implicit Neural Representations with
Periodic Activation Functions".
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    check_bool,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    compute_dtype,
    module_compute_dtype,
)
from spectrax._random import from_params, uniform, uniforms


def sine_layer(
    x: Float[Array, " D_in"],
    weight: Float[Array, "D_out D_in"],
    bias: Float[Array, " D_out"],
    omega_0: float | Float[Array, ""],
) -> Float[Array, " D_out"]:
    """``sin(omega_0 (W x + b))``: one SIREN layer (the bias sits inside the frequency scaling,
    as in the paper's reference code).

    ``omega_0`` is a finite number ``> 0``: a Python or NumPy number, or a real floating-point
    JAX scalar, e.g. traced to differentiate with respect to it (a concrete one is checked as a
    number; of a traced one only the shape and dtype).

    The result is in the parameters' dtype (a half-precision policy stays half precision), or
    float64 when ``x`` is float64 (the parameters are widened, never the input narrowed). For
    half-precision parameters the product accumulates in float32 and the phase and sine are
    float32, rounded once at the end: rounding ``W x + b`` to bfloat16 before scaling it by
    ``omega_0`` cost up to 0.23 of the unit output (rms 0.026) in a first layer with
    ``omega_0 = 30``; rounding once costs at most 0.002. A wider ``x`` than the parameters
    (float32 coordinates into a bfloat16 layer) is not rounded to their dtype: the product
    runs in float32 at ``Precision.HIGHEST`` (rounding the coordinates to bfloat16 first cost
    up to 0.05)."""
    omega_0 = _check_omega("omega_0", omega_0)
    check_real_float("x", x)
    check_real_float("weight", weight)
    check_real_float("bias", bias)
    if weight.ndim != 2 or x.shape != (weight.shape[1],) or bias.shape != (weight.shape[0],):
        raise ValueError(
            f"`x`, `weight`, `bias` must have shapes (D_in,), (D_out, D_in), (D_out,); got "
            f"x.shape={x.shape}, weight.shape={weight.shape}, bias.shape={bias.shape}. Batch "
            "over points with jax.vmap."
        )
    dtype = module_compute_dtype(x.dtype, weight.dtype)
    h = _affine(weight, x, bias, dtype)
    if isinstance(omega_0, jax.Array):
        omega_0 = omega_0.astype(h.dtype)
    return jnp.sin(omega_0 * h).astype(dtype)


def _affine(weight: Array, x: Array, bias: Array, dtype) -> Array:
    """``W x + b`` with ``W`` in ``dtype``, accumulated and returned in float32 for half
    precision (in ``dtype`` otherwise). ``x`` is rounded to ``dtype`` only if that keeps its
    precision: a float32 input to a half-precision layer (coordinates into a first layer) is
    multiplied in float32. Rounded to bfloat16 (8 significant bits), neighbouring coordinates
    of a 1024-point grid on ``[-1, 1]`` merged (4 to a value near 1) and the first layer's
    phase ``omega_0 W x`` was off by up to 0.05 rad at ``omega_0 = 30``. That float32 product
    runs at ``Precision.HIGHEST``: the default on GPU/TPU (TF32, a bfloat16 pass) would round
    ``x`` again; it is the narrow first layer, so the cost is small."""
    work = compute_dtype(dtype)
    if jnp.finfo(x.dtype).nmant > jnp.finfo(dtype).nmant:
        wx = jnp.dot(weight.astype(work), x.astype(work), precision=jax.lax.Precision.HIGHEST)
    else:  # products of half-precision numbers are exact in float32 on every backend
        wx = jnp.dot(weight.astype(dtype), x.astype(dtype), preferred_element_type=work)
    return wx + bias.astype(work)


def _check_omega(name: str, omega_0):
    """A Python/NumPy ``omega_0`` as a finite float > 0; a JAX array must be a real
    floating-point scalar, finite and > 0 where its value is concrete (a traced one, e.g. under
    ``jax.grad``, cannot be checked)."""
    if isinstance(omega_0, jax.Array):
        check_real_float(name, omega_0)
        if omega_0.shape != ():
            raise ValueError(
                f"`{name}` must be a scalar (one frequency scale for the layer); got an array "
                f"of shape {omega_0.shape}."
            )
        if not isinstance(omega_0, jax.core.Tracer):
            # a concrete NaN, 0 or negative scale gave NaN, zero or sign-flipped features
            check_positive_float(name, float(omega_0))
        return omega_0
    if isinstance(omega_0, np.ndarray) and omega_0.shape == ():
        omega_0 = omega_0[()]
    return check_positive_float(name, omega_0)


def siren_weight_bound(in_features: int, omega_0: float, is_first: bool) -> float:
    """Half-width of the uniform SIREN weight init: ``1/in`` for the first layer, else
    ``sqrt(6/in) / omega_0`` (Sitzmann et al., 2020, Sec. 3.2 and supplement Sec. 1)."""
    in_features = check_positive_int("in_features", in_features)
    omega_0 = check_positive_float("omega_0", omega_0)
    is_first = check_bool("is_first", is_first)
    return 1.0 / in_features if is_first else math.sqrt(6.0 / in_features) / omega_0


def _uniform(key, shape, bound, dtype) -> Array:
    return uniform(key, shape, dtype, -bound, bound)


def _sine_params(keys, shapes, bounds, dtype) -> list[Array]:
    """Weights and biases ``U(-bound, bound)`` of one or several layers, ``keys`` split in
    ``(weight, bias)`` pairs as a lone layer splits its key, drawn as one (``uniforms``)."""
    pairs = jax.vmap(jax.random.split)(jnp.stack(keys))
    flat_keys = [k for pair in pairs for k in pair]
    return uniforms(flat_keys, shapes, dtype, [(-b, b) for b in bounds])


@functools.partial(jax.jit, static_argnames=("shape", "dtype"))
def _draw_sine(key, bound, bias_bound, *, shape: tuple[int, int], dtype) -> list[Array]:
    """A sine layer's ``[weight, bias]``, ``shape = (D_out, D_in)``: one jitted program per size
    and dtype (the bounds are traced, so they share it), the eager draws' bits."""
    return _sine_params([key], [shape, shape[:1]], [bound, bias_bound], dtype)


@functools.partial(
    jax.jit,
    static_argnames=(
        "in_features",
        "hidden",
        "out_features",
        "depth",
        "omega_0",
        "hidden_omega_0",
        "dtype",
    ),
)
def _draw_siren(key, *, in_features, hidden, out_features, depth, omega_0, hidden_omega_0, dtype):
    """Every ``(weight, bias)`` of a Siren, the final layer's last, as one program and one
    draw: eagerly (a SineLayer each) 11 XLA compilations for Siren(2, 64, 1, 3), 1.5 s on a
    loaded 2-core CPU; as one program with a draw per array still 2.1 s (every draw is its own
    copy of the Threefry hash to compile)."""
    fan_in = (in_features,) + (hidden,) * depth
    fan_out = (hidden,) * depth + (out_features,)
    omegas = (omega_0,) + (hidden_omega_0,) * depth
    shapes, bounds = [], []
    for i, (d_in, d_out, w0) in enumerate(zip(fan_in, fan_out, omegas, strict=True)):
        shapes += [(d_out, d_in), (d_out,)]
        bounds += [siren_weight_bound(d_in, w0, i == 0), 1.0 / math.sqrt(d_in)]
    keys = jax.random.split(key, depth + 1)
    draws = _sine_params(list(keys), shapes, bounds, dtype)
    return [tuple(draws[2 * i : 2 * i + 2]) for i in range(depth + 1)]


class SineLayer(eqx.Module):
    """A linear map followed by ``sin(omega_0 .)``: ``y = sin(omega_0 (W x + b))``.

    Initialisation (Sitzmann et al., 2020): ``W ~ U(-1/in, 1/in)`` for the first layer, so that
    ``omega_0 W x`` spans several periods over inputs in ``[-1, 1]``; ``W ~ U(-c, c)`` with
    ``c = sqrt(6/in) / omega_0`` for the others, so that ``omega_0 W h`` has unit variance when
    ``h`` is arcsine-distributed on ``[-1, 1]`` (the output of a sine layer), at any depth. The
    bias is ``U(-1/sqrt(in), 1/sqrt(in))``: the reference implementation leaves it at the
    ``torch.nn.Linear`` default, and so does this one.

    Args:
        in_features, out_features: ``D_in``, ``D_out``.
        omega_0: frequency scale (default 30.0, the paper's choice).
        is_first: use the first-layer weight init (default False).
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).

    The output is in ``dtype`` (float64 for a float64 ``x``: the parameters are widened for the
    call, never the input narrowed; nor is a float32 input to half-precision parameters, whose
    product runs in float32 at ``Precision.HIGHEST``). Otherwise the matrix product runs at
    JAX's default precision (TF32 on recent NVIDIA GPUs), and its error is multiplied by
    ``omega_0``; set
    ``jax_default_matmul_precision="highest"`` for accurate high-frequency fits on GPU.
    """

    weight: Float[Array, "D_out D_in"]
    bias: Float[Array, " D_out"]
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    omega_0: float = eqx.field(static=True)
    is_first: bool = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {"D_out": "out_features", "D_in": "in_features"}

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        omega_0: float = 30.0,
        is_first: bool = False,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.omega_0 = check_positive_float("omega_0", omega_0)
        self.is_first = check_bool("is_first", is_first)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        bound = siren_weight_bound(in_features, self.omega_0, self.is_first)
        self.weight, self.bias = _draw_sine(
            key,
            bound,
            1.0 / math.sqrt(in_features),
            shape=(self.out_features, self.in_features),
            dtype=dtype,
        )

    def __call__(self, x: Float[Array, " D_in"]) -> Float[Array, " D_out"]:
        check_parameters(self)
        check_real_float("x", x)
        if x.shape != (self.in_features,):
            raise ValueError(
                f"`x` must be one point of shape ({self.in_features},); got x.shape={x.shape}. "
                "Batch with jax.vmap."
            )
        return sine_layer(x, self.weight, self.bias, self.omega_0)


class Siren(eqx.Module):
    """A SIREN: ``depth`` sine layers, then a linear output layer (Sitzmann et al., 2020).

    ``D -> hidden -> ... -> hidden -> O``: the first sine layer uses ``omega_0`` and the
    first-layer init, the ``depth - 1`` others ``hidden_omega_0`` and the hidden init. The final
    linear layer is initialised like a hidden layer, ``U(-c, c)`` with
    ``c = sqrt(6/hidden) / hidden_omega_0`` and a ``U(-1/sqrt(hidden), 1/sqrt(hidden))`` bias, as in
    the reference's ``outermost_linear=True``. (The reference's ``hidden_layers`` is ``depth - 1``.)

    Args:
        in_features: ``D``.
        hidden_features: width of every sine layer.
        out_features: ``O``.
        depth: number of sine layers (``>= 1``).
        omega_0: frequency scale of the first layer (default 30.0).
        hidden_omega_0: frequency scale of the other sine layers (default 30.0).
        dtype: parameter dtype (float32); the output is in this dtype, or float64 for a float64
            input (the parameters are widened for the call, never the input narrowed).
        key: PRNG key (keyword-only).
    """

    layers: tuple[SineLayer, ...]
    final_weight: Float[Array, "O H"]
    final_bias: Float[Array, " O"]
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {"O": "out_features"}

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        depth: int,
        *,
        omega_0: float = 30.0,
        hidden_omega_0: float = 30.0,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.in_features = check_positive_int("in_features", in_features)
        hidden_features = check_positive_int("hidden_features", hidden_features)
        self.out_features = check_positive_int("out_features", out_features)
        check_key("key", key)
        depth = check_positive_int("depth", depth)
        hidden_omega_0 = check_positive_float("hidden_omega_0", hidden_omega_0)
        dtype = check_float_dtype("dtype", dtype)
        omega_0 = check_positive_float("omega_0", omega_0)
        *params, (self.final_weight, self.final_bias) = _draw_siren(
            key,
            in_features=self.in_features,
            hidden=hidden_features,
            out_features=self.out_features,
            depth=depth,
            omega_0=omega_0,
            hidden_omega_0=hidden_omega_0,
            dtype=dtype,
        )
        omegas = (omega_0,) + (hidden_omega_0,) * (depth - 1)
        self.layers = tuple(
            from_params(
                functools.partial(
                    SineLayer, *w.shape[::-1], omega_0=w0, is_first=i == 0, dtype=dtype, key=key
                ),
                lambda m: (m.weight, m.bias),
                (w, b),
            )
            for i, ((w, b), w0) in enumerate(zip(params, omegas, strict=True))
        )

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, " O"]:
        check_parameters(self)
        check_real_float("x", x)
        if x.shape != (self.in_features,):
            raise ValueError(
                f"`x` must be one point of shape ({self.in_features},); got x.shape={x.shape}. "
                "Batch with jax.vmap."
            )
        h = x
        for layer in self.layers:
            h = layer(h)
        return _affine(self.final_weight, h, self.final_bias, h.dtype).astype(h.dtype)
