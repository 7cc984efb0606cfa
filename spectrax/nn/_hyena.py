"""The Hyena operator: long implicit convolutions interleaved with data-controlled gating.

Poli, Massaroli, Nguyen, Fu, Dao, Baccus, Bengio, Ermon & Ré, 2023, "Hyena Hierarchy: Towards
Larger Convolutional Language Models" (ICML). The long convolutions run on
:func:`spectrax.fft_conv` with the gate fused (``post_gate``), so the Pallas path does the
convolution and the gating in one kernel.
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
    as_jax,
    check_choice,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    compute_dtype,
    widen_to_input,
)
from spectrax._compile import compiled_call
from spectrax._random import normal, uniform, uniforms
from spectrax.kernels.fft_conv import IMPLS, fft_conv
from spectrax.nn._ssm import sequence_hint

# The reference code's ExponentialModulation: the window of the fastest channel falls to
# `target` = 1e-2 at t = 0.3 ("fast_decay_pct"), that of the slowest at t = 1.5
# ("slow_decay_pct"), t in [0, 1] over the maximal length.
DECAY_MIN = math.log(100.0) / 1.5  # about 3.070
DECAY_MAX = math.log(100.0) / 0.3  # about 15.35

# Hidden sine layers of the filter FFN after the first one (the reference's num_inner_mlps=2:
# four linear maps in all, the paper's "filter FFN depth 4", Table A.4).
_INNER_LAYERS = 2


def _uniform(key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int, dtype) -> Array:
    """PyTorch's default ``nn.Linear`` / ``nn.Conv1d`` init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    (what the reference implementation uses everywhere)."""
    bound = 1.0 / math.sqrt(fan_in)
    return uniform(key, shape, dtype, -bound, bound)


# The random parameters are drawn by one jitted program per size and dtype (eagerly, every
# draw compiled on its own: 17 compilations, about 1.6 s on a 2-core CPU, for one
# HyenaOperator), and the uniform ones as one draw (a copy of the Threefry hash each made the
# programs slow to compile: 2.6 s and 1.3 s). The same draws from the same keys give the same
# bits; under an outer jit or eqx.filter_eval_shape the program is inlined.
def _uniforms(keys, shapes, fan_ins, dtype) -> list[Array]:
    """:func:`_uniform` of every ``(key, shape, fan_in)`` as one draw (``uniforms``: the bits of
    a draw each)."""
    bounds = [(-1.0 / math.sqrt(f), 1.0 / math.sqrt(f)) for f in fan_ins]
    return uniforms(list(keys), shapes, dtype, bounds)


@functools.partial(jax.jit, static_argnames=("sizes", "channels", "dtype"))
def _draw_filter(key, *, sizes: tuple[int, ...], channels: int, dtype):
    """HyenaFilter's ``(weights, biases, out_weight)`` for the MLP widths ``sizes``."""
    keys = jax.random.split(key, 2 * len(sizes) - 1)
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    shapes = [(d_out, d_in) for d_in, d_out in pairs] + [(d_out,) for _, d_out in pairs]
    fan_ins = [d_in for d_in, _ in pairs] * 2 + [sizes[-1]]
    order = [2 * i for i in range(len(pairs))] + [2 * i + 1 for i in range(len(pairs))] + [-1]
    draws = _uniforms([keys[i] for i in order], shapes + [(channels, sizes[-1])], fan_ins, dtype)
    n = len(pairs)
    return tuple(draws[:n]), tuple(draws[n : 2 * n]), draws[-1]


@functools.partial(jax.jit, static_argnames=("h", "order", "short_filter", "n_convs", "dtype"))
def _draw_operator(key, *, h: int, order: int, short_filter: int, n_convs: int, dtype):
    """HyenaOperator's filter key and ``(in_weight, in_bias, short_kernel, short_bias, D,
    out_weight, out_bias)``."""
    p = (order + 1) * h
    k_in, k_inb, k_s, k_sb, k_f, k_d, k_out, k_outb = jax.random.split(key, 8)
    w_in, b_in, w_s, b_s, w_out, b_out = _uniforms(
        (k_in, k_inb, k_s, k_sb, k_out, k_outb),
        [(p, h), (p,), (p, short_filter), (p,), (h, h), (h,)],
        [h, h, short_filter, short_filter, h, h],
        dtype,
    )
    return k_f, (w_in, b_in, w_s, b_s, normal(k_d, (n_convs, h), dtype), w_out, b_out)


def _check_num_frequencies(num_frequencies: int | None, max_len: int) -> int:
    """``K`` with ``2 K < max_len`` (alias-free bands at integer positions); ``None``: the
    largest such ``K`` up to 8."""
    if num_frequencies is None:
        return min(8, (max_len - 1) // 2)
    num_frequencies = check_positive_int("num_frequencies", num_frequencies)
    if 2 * num_frequencies >= max_len:
        top = (max_len - 1) // 2
        fix = (
            f"use num_frequencies <= {top}, or leave it None (the largest such value up to 8)"
            if top >= 1
            else "leave it None (max_len <= 2 has no band: the input is t alone)"
        )
        raise ValueError(
            f"`num_frequencies` must satisfy 2 * num_frequencies < max_len: at integer positions "
            f"l the band k = max_len / 2 has sin(2 pi k l / max_len) = 0 at every l, and bands "
            f"k and max_len - k give the same features, so larger values only add dead or "
            f"duplicate inputs. Got num_frequencies={num_frequencies}, max_len={max_len}; {fix}."
        )
    return num_frequencies


def _positions(length: int, max_len: int, num_frequencies: int, dtype) -> tuple[Array, Array]:
    """``t`` ``(L,)`` and the filter FFN's input ``z`` ``(L, 1 + 2K)``, in ``dtype``.

    ``t_l = l / (max_len - 1)`` (so ``t`` spans ``[0, 1]`` over ``max_len`` points) and
    ``z_l = (t_l, cos(2 pi k l / max_len), sin(2 pi k l / max_len))``, ``k = 1 .. K``: the
    real and imaginary parts (up to sign) of the paper's ``exp(-i 2 pi k l / max_len)``.
    Both are normalised by ``max_len``, not ``length``: a shorter filter is a prefix. Built
    from iotas inside the traced program (a precomputed table would be embedded in every
    compiled program as an (L, 1 + 2K) constant).
    """
    l = jnp.arange(length, dtype=jnp.int32)
    t = l.astype(dtype) / max(max_len - 1, 1)
    k = jnp.arange(1, num_frequencies + 1, dtype=jnp.int32)
    # Reduce k l modulo max_len in integers: the phase is exact before the one rounding.
    phase = (2.0 * math.pi / max_len) * ((l[:, None] * k[None, :]) % max_len).astype(dtype)
    z = jnp.concatenate([t[:, None], jnp.cos(phase), jnp.sin(phase)], axis=1)
    return t, z


def _short_conv(x: Float[Array, "C L"], k: Float[Array, "C S"]) -> Float[Array, "C L"]:
    """Depthwise causal convolution ``y[c, t] = sum_{s < S} k[c, s] x[c, t - s]`` (zeros for
    ``t - s < 0``), as ``S`` shifted products: ``O(L S)`` for the short filter."""
    length, size = x.shape[-1], k.shape[-1]
    xp = jnp.pad(x, ((0, 0), (size - 1, 0)))
    y = k[:, :1] * x
    for s in range(1, size):
        y = y + k[:, s : s + 1] * xp[:, size - 1 - s : size - 1 - s + length]
    return y


def _paper_layout(z: Float[Array, "P H L"]) -> tuple[Array, Array]:
    """Definition 3.1: ``z = (x^1, .., x^N, v)`` -> ``v`` and the gates ``(x^1, .., x^N)``, each
    applied after a long convolution (``N`` convolutions)."""
    return z[-1], z[:-1]


def _reference_layout(z: Float[Array, "P H L"]) -> tuple[Array, Array]:
    """The reference code's order: ``z = (x^1, .., x^N, v)`` -> ``x^N v`` (the innermost gate,
    before the first convolution) and the gates ``(x^{N-1}, .., x^1)`` for the ``N - 1``
    convolutions, ``x^1`` outermost."""
    n = z.shape[0] - 1
    return z[n - 1] * z[n], jnp.flip(z[: n - 1], axis=0)


# layout -> (how many of the N gates have no long convolution, split of the projections)
_LAYOUTS = {"paper": (0, _paper_layout), "reference": (1, _reference_layout)}


# What the Pallas kernels read (spectrax.kernels.fft_conv._pallas.SUPPORTED_DTYPES).
_PALLAS_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def _check_pallas_dtypes(inputs: dict[str, Array], dtype) -> None:
    """TypeError naming the inputs of :func:`hyena_recurrence` that would reach the Pallas
    kernels in a dtype they do not support: the convolutions run on ``dtype`` (float64 when any
    input is, a half-precision ``v``'s own) with the filters in their own dtype. Raised inside
    fft_conv instead, the error named its ``u`` or ``k``, not an argument of this function."""
    cast = "or cast them to float32 or bfloat16"
    if jnp.dtype(dtype) not in _PALLAS_DTYPES:
        # a half-precision v sets the dtype alone; float64 comes from any of the inputs
        names = [n for n, a in inputs.items() if jnp.dtype(a.dtype) == jnp.dtype(dtype)]
        names = names if dtype == jnp.float64 else ["v"]
        raise TypeError(
            f"hyena_recurrence(impl='pallas') computes in {jnp.dtype(dtype)} because {names} "
            f"are {jnp.dtype(dtype)}; the Pallas kernels support float32 and bfloat16. Use "
            f"impl='xla' or impl='auto', {cast}."
        )
    if jnp.dtype(inputs["filters"].dtype) not in _PALLAS_DTYPES:
        raise TypeError(
            f"hyena_recurrence(impl='pallas') reads ['filters'] in their dtype "
            f"{jnp.dtype(inputs['filters'].dtype)}; the Pallas kernels support float32 and "
            f"bfloat16. Use impl='xla' or impl='auto', {cast}."
        )


def hyena_recurrence(
    v: Float[Array, "H L"],
    gates: Float[Array, "N H L"],
    filters: Float[Array, "N H K"],
    skip: Float[Array, "N H"],
    *,
    impl: str = "auto",
) -> Float[Array, "H L"]:
    """The order-``N`` Hyena recurrence (Poli et al., 2023, Definition 3.1, with a skip term).

    ``z^1 = v``, ``z^{n+1}_t = x^n_t (h^n * z^n + D^n z^n)_t`` for ``n = 1 .. N``, returns
    ``z^{N+1}``; ``*`` is the causal convolution along time and ``D^n`` the per-channel skip
    (the reference code's filter ``bias``). In matrix form ``y = D_x^N S^N ... D_x^1 S^1 v`` with
    ``D_x^n = diag(x^n)`` and ``S^n`` the lower-triangular Toeplitz matrix of ``h^n`` plus
    ``diag(D^n)``: a data-controlled, causal linear map of ``v``.

    Args:
        v: ``(H, L)``. gates: ``(N, H, L)``, ``x^1 .. x^N``. filters: ``(N, H, K)``, ``K <= L``.
        skip: ``(N, H)``. impl: :func:`spectrax.fft_conv`'s ``impl``; the gate ``x^n`` is its
            ``post_gate`` (fused into the Pallas kernel), the skip term is added outside.
            ``"pallas"`` needs the computation and the filters in float32 or bfloat16 (a
            TypeError names the inputs that are not).

    Returns:
        ``(H, L)`` in ``v``'s dtype, as :func:`spectrax.fft_conv` returns its ``u``'s: ``v`` is
        the data, the gates, filters and skips act on it. A float32 or float64 ``v`` computes
        all ``N`` steps in float64 if any of the four inputs is float64, else float32, and is
        rounded to ``v``'s dtype once, at the end. A half-precision ``v`` stays in its dtype
        between steps (each convolution runs in float32 and is rounded once per step), so the
        Pallas kernels read and write half precision, as FlashFFTConv's bfloat16 I/O and the
        reference code's ``fftconv`` (which returns in ``u``'s dtype): half the memory traffic
        of float32 intermediates, at ``N`` roundings instead of one (relative error against
        float64 on the same bfloat16 inputs: 4.4e-3, against 1.6e-3 for the float64 result
        rounded once; H=8, L=256, N=3).
    """
    inputs = {"v": v, "gates": gates, "filters": filters, "skip": skip}
    for name, a in inputs.items():
        check_real_float(name, a)
    inputs = {name: as_jax(a) for name, a in inputs.items()}
    v, gates, filters, skip = inputs.values()
    if v.ndim != 2:
        raise ValueError(f"`v` must have shape (H, L); got v.shape={v.shape}.")
    n_gates = gates.shape[0] if gates.ndim == 3 else -1
    if (
        gates.shape != (n_gates, *v.shape)
        or filters.ndim != 3
        or filters.shape[:2] != (n_gates, v.shape[0])
        or skip.shape != (n_gates, v.shape[0])
    ):
        raise ValueError(
            "expected v (H, L), gates (N, H, L), filters (N, H, K) and skip (N, H); got "
            f"v.shape={v.shape}, gates.shape={gates.shape}, filters.shape={filters.shape}, "
            f"skip.shape={skip.shape}."
        )
    if filters.shape[2] < 1:
        raise ValueError(
            f"`filters` must have at least one tap: got filters.shape={filters.shape} (K=0)."
        )
    if filters.shape[2] > v.shape[1]:
        raise ValueError(
            f"`filters` must be no longer than the sequence: filters.shape[2]={filters.shape[2]} "
            f"> L={v.shape[1]} (v.shape={v.shape})."
        )
    out_dtype = v.dtype
    # One dtype for all N steps: rounding a float64 filter's convolution to a float32 v at every
    # step would add N roundings instead of one. Half precision stays half between steps: the
    # intermediates z^n are the kernels' input and output, the hot path's memory traffic.
    half = jnp.dtype(v.dtype).itemsize < 4
    dtype = v.dtype if half else compute_dtype(*(a.dtype for a in inputs.values()))
    if impl == "pallas":
        _check_pallas_dtypes(inputs, dtype)
    # The filters keep their dtype: fft_conv computes each convolution in the wider of z's and
    # the filter's (a float32 filter bank of a bfloat16 model stays float32).
    z, gates, skip = (a.astype(dtype) for a in (v, gates, skip))
    for n in range(gates.shape[0]):
        z = fft_conv(z, filters[n], impl=impl, post_gate=gates[n]) + gates[n] * (
            skip[n][:, None] * z
        )
    return z.astype(out_dtype)


class HyenaFilter(eqx.Module):
    """Implicit long filter ``h_t = Window(t) (FFN o PositionalEncoding)(t)`` (Poli et al., 2023,
    eq. 7, Sec. 3.3).

    - Positional encoding of ``t_l = l / (max_len - 1)``, ``l < max_len``: ``(t, cos, sin)`` of
      ``2 pi k l / max_len``, ``k = 1 .. num_frequencies`` (the reference code's complex
      exponential features; it uses ``k = 1e-4, 1, .., K - 1``, whose first band is nearly
      constant and duplicates the first layer's bias). Fixed (the reference trains them with a
      learning rate of 1e-5).
    - FFN: ``Linear(1 + 2K, W)``, then ``sin(omega .)``, two hidden ``Linear(W, W)`` + sine
      layers, and ``Linear(W, channels)`` without bias (four linear maps: the paper's filter FFN
      of depth 4, width 64, Table A.4). The frequency ``omega`` is a trained vector ``(W,)`` shared
      by the three sine layers (the reference's ``Sin`` with ``train_freq=True``).
    - Window ``exp(-alpha_c t) + shift`` with fixed rates ``alpha_c`` spaced linearly from
      ``decay_min`` (channel 0) to ``decay_max`` (last channel) (the reference's
      ``ExponentialModulation``, the paper's ``Window(t) = exp(-alpha t)``). The defaults are the
      reference's: the fastest window falls to 1e-2 at ``t = 0.3``, the slowest at ``t = 1.5``.

    Args:
        channels: number of filters ``H`` (rows of the output).
        max_len: longest filter; ``t`` is normalised by it, so any shorter filter is a prefix.
        order: FFN width ``W`` (default 64, the paper's).
        num_frequencies: ``K``, the number of positional bands (input ``1 + 2K``), with
            ``1 <= K < max_len / 2``: at integer ``l`` the band ``k = max_len / 2`` has a sine
            that is 0 at every position, and ``k`` and ``max_len - k`` give the same features
            (up to the sine's sign), so larger ``K`` only adds dead or duplicate inputs and is
            refused. Default ``None``: ``min(8, (max_len - 1) // 2)`` (8, the default of
            earlier versions, for ``max_len >= 17``; no bands, input ``t`` alone, for
            ``max_len <= 2``).
        decay_min, decay_max: window rates ``0 < decay_min <= decay_max`` (defaults
            ``ln(100)/1.5 ~ 3.07``, ``ln(100)/0.3 ~ 15.35``).
        omega: initial sine frequency (default 1.0, the reference's ``w``; the paper's language
            models use 14, Table A.4).
        shift: constant added to the window (default 0.0, the reference's).
        dtype: parameter dtype (float32; half precision is drawn in float32 and rounded once).
            The filter is computed and returned in float32
            (float64 for float64 parameters) at ``Precision.HIGHEST``: ``omega`` multiplies
            matmul errors.
        key: PRNG key (keyword-only).

    Optimizer group: :func:`~spectrax.nn.ssm_param_labels` labels all of the filter's arrays
    (``ssm_params``: the FFN's weights and biases, ``out_weight``, ``omega``) ``"ssm"``, so
    ``spectrax train`` trains them with ``optim.ssm_learning_rate`` and no weight decay, as the
    reference code does: its ``HyenaFilter`` gives every parameter of the FFN (the sine
    frequency included) its own ``lr`` and ``wd`` (weight decay 0 in its configs, e.g.
    associative recall with the model's learning rate and ``wd: 0.0`` against a weight decay of
    0.1 elsewhere). The positional encoding and the window have no parameters here; the reference
    registers them with ``lr_pos_emb`` (1e-5 or 0) and ``modulation_lr=0`` (frozen) and no
    weight decay.
    """

    weights: tuple[Float[Array, "W _D"], ...]  # _D differs: the first layer's input is the features
    biases: tuple[Float[Array, " W"], ...]
    out_weight: Float[Array, "H W"]
    omega: Float[Array, " W"]
    channels: int = eqx.field(static=True)
    max_len: int = eqx.field(static=True)
    order: int = eqx.field(static=True)
    num_frequencies: int = eqx.field(static=True)
    decay_min: float = eqx.field(static=True)
    decay_max: float = eqx.field(static=True)
    shift: float = eqx.field(static=True)
    ssm_params: ClassVar[frozenset[str]] = frozenset({"weights", "biases", "out_weight", "omega"})
    parameter_dims: ClassVar[dict] = {"H": "channels"}

    def __init__(
        self,
        channels: int,
        max_len: int,
        *,
        order: int = 64,
        num_frequencies: int | None = None,
        decay_min: float = DECAY_MIN,
        decay_max: float = DECAY_MAX,
        omega: float = 1.0,
        shift: float = 0.0,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.channels = check_positive_int("channels", channels)
        self.max_len = check_positive_int("max_len", max_len)
        self.order = check_positive_int("order", order)
        self.num_frequencies = _check_num_frequencies(num_frequencies, self.max_len)
        self.decay_min = check_positive_float("decay_min", decay_min)
        self.decay_max = check_positive_float("decay_max", decay_max)
        if not (self.decay_min <= self.decay_max < math.inf):
            raise ValueError(
                "`decay_min` and `decay_max` must be finite with 0 < decay_min <= decay_max; got "
                f"decay_min={decay_min!r}, decay_max={decay_max!r}."
            )
        omega = check_positive_float("omega", omega)
        if not math.isfinite(omega):
            raise ValueError(f"`omega` must be finite; got {omega!r}.")
        if isinstance(shift, bool) or not isinstance(shift, (int, float, np.integer, np.floating)):
            raise TypeError(f"`shift` must be a Python float; got {type(shift).__name__}.")
        if not math.isfinite(float(shift)):
            raise ValueError(f"`shift` must be finite; got {shift!r}.")
        self.shift = float(shift)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        sizes = (1 + 2 * self.num_frequencies,) + (self.order,) * (_INNER_LAYERS + 1)
        self.weights, self.biases, self.out_weight = _draw_filter(
            key, sizes=sizes, channels=self.channels, dtype=dtype
        )
        self.omega = jnp.full((self.order,), omega, dtype)

    def _check_length(self, length: int) -> int:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"`length` must be a static Python int; got {type(length).__name__}.")
        if not 1 <= length <= self.max_len:
            hint = " Build the filter with a larger max_len." if length > self.max_len else ""
            raise ValueError(
                f"`length` must satisfy 1 <= length <= max_len={self.max_len}; got {length}." + hint
            )
        return int(length)

    def decay_rates(self) -> np.ndarray:
        """The window rates ``alpha_c``, ``(channels,)``, linear from decay_min to decay_max."""
        return np.linspace(self.decay_min, self.decay_max, self.channels)

    def window(self, length: int) -> Float[Array, "H L"]:
        """``exp(-alpha_c t_l) + shift``, ``(channels, length)``, in the filter's compute dtype."""
        length = self._check_length(length)
        dtype = compute_dtype(self.out_weight.dtype)
        t, _ = _positions(length, self.max_len, self.num_frequencies, dtype)
        rates = jnp.linspace(self.decay_min, self.decay_max, self.channels, dtype=dtype)
        return jnp.exp(-rates[:, None] * t[None, :]) + self.shift

    def __call__(self, length: int) -> Float[Array, "H L"]:
        """The filters at ``t_0 .. t_{length-1}``, ``(channels, length)``, ``length <= max_len``."""
        check_parameters(self)
        length = self._check_length(length)
        dtype = compute_dtype(self.out_weight.dtype)
        _, z = _positions(length, self.max_len, self.num_frequencies, dtype)
        h = z.T  # (D, L): features along rows, time along columns
        omega = self.omega.astype(dtype)[:, None]
        hi = jax.lax.Precision.HIGHEST
        for w, b in zip(self.weights, self.biases, strict=True):
            h = jnp.sin(
                omega * (jnp.matmul(w.astype(dtype), h, precision=hi) + b.astype(dtype)[:, None])
            )
        h = jnp.matmul(self.out_weight.astype(dtype), h, precision=hi)
        return h * self.window(length)


class HyenaOperator(eqx.Module):
    """Order-``N`` Hyena operator on one sequence ``(L, H)`` (Poli et al., 2023, Algorithms 1-3).

    ``u -> W_in u + b_in`` (``H -> (N + 1) H``), a depthwise causal convolution of size
    ``short_filter`` over time on all ``(N + 1) H`` projections, split into
    ``(x^1, .., x^N, v)``; then :func:`hyena_recurrence` with the ``M H`` implicit filters of one
    :class:`HyenaFilter` (channel ``i`` of ``h^m`` is row ``i M + m - 1``: interleaved, so each
    ``h^m`` spans the window rates ``decay_min .. decay_max``) and skips ``D^m``,
    ``m = 1 .. M``; then ``W_out y + b_out``. Causal: ``y_t`` depends on ``u_s`` for ``s <= t``
    only. With ``S^m`` the causal convolution with ``h^m`` plus ``diag(D^m)``, the two layouts:

    - ``layout="paper"`` (default): the paper's Definition 3.1, ``M = N`` long convolutions, each
      followed by a gate, ``y = x^N S^N (x^{N-1} S^{N-1}( .. x^1 S^1 v))``.
    - ``layout="reference"``: the reference code's (HazyResearch safari ``HyenaOperator``), with
      ``N`` gates but ``M = N - 1`` long convolutions, a gate before each and one at the end,
      ``y = x^1 S^{N-1}(x^2 S^{N-2}( .. x^{N-1} S^1(x^N v)))``: innermost gate ``x^N``,
      outermost ``x^1`` (its ``order`` counts the gates, as this one: the same ``(N + 1) H``
      projections). Its order 2 is "gate, one long convolution, gate" (the paper's order 2 with
      ``S^1`` the identity, up to which projection gates first). Needs ``N >= 2``. Measured on
      ``spectrax train s4d_recall task.layer=hyena optim.learning_rate=3e-3
      loop.num_steps=600`` (order 2), seeds 0 .. 11: the reference layout reaches test error 0.0
      on all 12 seeds, the paper layout on 9 (three stay at chance; see
      ``configs/s4d_recall.py``).

    Initialisation as the reference (PyTorch defaults): projections, short-filter taps and biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``D ~ N(0, 1)``.

    Args:
        d_model: ``H``. max_len: longest sequence (the filters' ``max_len``).
        order: ``N >= 1`` (default 2), the number of gates. filter_order: the filter FFN
            width (64).
        layout: ``"paper"`` (default, ``N`` long convolutions) or ``"reference"`` (``N - 1``,
            ``N >= 2``), as above. The projections have ``(N + 1) H`` outputs in both; the
            filter has ``M H`` channels and ``D`` shape ``(M, H)``. For the same key,
            ``"paper"`` draws the same parameters as before this option existed.
        short_filter: size of the short causal convolution (3, the paper's).
        num_frequencies, decay_min, decay_max, omega: as :class:`HyenaFilter`.
        impl: :func:`spectrax.fft_conv` implementation, ``"auto"`` (default), ``"xla"`` or
            ``"pallas"`` (float32 or bfloat16 ``dtype`` only: a TypeError names ``dtype``; a
            float64 ``x``, computed in float64, is refused by name too).
        dtype: parameter and compute dtype (float32; half-precision parameters are drawn in
            float32 and rounded once); a bfloat16 model computes its
            projections in bfloat16, its filters in float32, and its recurrence
            (:func:`hyena_recurrence`) with float32 convolutions rounded to bfloat16 after each
            step. The input is cast to this dtype, except that a float64 input computes in
            float64 (the parameters are widened for the call): float64 parameters compute in
            float64 whatever the input, float32 ones in float32 for a float32 or half-precision
            input, bfloat16 ones in bfloat16 (a float32 input is rounded to bfloat16 first).
        key: PRNG key (keyword-only).

    Call with ``x`` ``(L, H)``, ``1 <= L <= max_len``; returns ``(L, H)`` in ``x``'s dtype, as the
    state-space layers (:class:`~spectrax.nn.S4D`, rounded once from the compute dtype). Batch
    with ``jax.vmap``.
    """

    in_weight: Float[Array, "P H"]
    in_bias: Float[Array, " P"]
    short_kernel: Float[Array, "P S"]
    short_bias: Float[Array, " P"]
    filter: HyenaFilter
    D: Float[Array, "M H"]
    out_weight: Float[Array, "H H"]
    out_bias: Float[Array, " H"]
    d_model: int = eqx.field(static=True)
    max_len: int = eqx.field(static=True)
    order: int = eqx.field(static=True)
    layout: str = eqx.field(static=True)
    impl: str = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {
        "H": "d_model",
        "P": lambda op: (op.order + 1) * op.d_model,
        "M": lambda op: op.order - (op.layout == "reference"),
    }

    def __init__(
        self,
        d_model: int,
        max_len: int,
        *,
        order: int = 2,
        filter_order: int = 64,
        short_filter: int = 3,
        num_frequencies: int | None = None,
        decay_min: float = DECAY_MIN,
        decay_max: float = DECAY_MAX,
        omega: float = 1.0,
        layout: str = "paper",
        impl: str = "auto",
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.d_model = check_positive_int("d_model", d_model)
        self.max_len = check_positive_int("max_len", max_len)
        self.order = check_positive_int("order", order)
        check_choice("layout", layout, tuple(_LAYOUTS))
        self.layout = layout
        gates_only = _LAYOUTS[layout][0]  # gates without a long convolution
        n_convs = self.order - gates_only
        if n_convs < 1:
            raise ValueError(
                f"`layout`={layout!r} needs `order` >= {gates_only + 1} (it has order - "
                f"{gates_only} long convolutions); got order={self.order}. Use order >= "
                f"{gates_only + 1}, or layout='paper' (order=1: one long convolution, then a gate)."
            )
        short_filter = check_positive_int("short_filter", short_filter)
        # checked here: HyenaFilter would name it `order`, this operator's recurrence order
        filter_order = check_positive_int("filter_order", filter_order)
        check_choice("impl", impl, IMPLS)
        dtype = check_float_dtype("dtype", dtype)
        if impl == "pallas" and jnp.dtype(dtype) not in _PALLAS_DTYPES:
            # it computes in its parameters' dtype: every call would fail inside fft_conv
            raise TypeError(
                f"`impl`='pallas' runs the Pallas kernels, which support float32 and bfloat16; "
                f"got dtype={jnp.dtype(dtype)}. Use dtype=jnp.float32 or jnp.bfloat16, or "
                "impl='xla' or impl='auto'."
            )
        self.impl = impl
        check_key("key", key)
        h = self.d_model
        k_f, draws = _draw_operator(
            key, h=h, order=self.order, short_filter=short_filter, n_convs=n_convs, dtype=dtype
        )
        self.in_weight, self.in_bias, self.short_kernel, self.short_bias = draws[:4]
        self.D, self.out_weight, self.out_bias = draws[4:]
        self.filter = HyenaFilter(
            n_convs * h,
            self.max_len,
            order=filter_order,
            num_frequencies=num_frequencies,
            decay_min=decay_min,
            decay_max=decay_max,
            omega=omega,
            dtype=dtype,
            key=k_f,
        )

    @compiled_call
    def __call__(self, x: Float[Array, "L H"]) -> Float[Array, "L H"]:
        """Apply the operator to one sequence ``(L, H)``, ``L <= max_len``."""
        check_real_float("x", x)
        if x.ndim != 2 or x.shape[1] != self.d_model or not 1 <= x.shape[0] <= self.max_len:
            raise ValueError(
                f"`x` must be one sequence of shape (L, H) with H=d_model={self.d_model} and "
                f"1 <= L <= max_len={self.max_len}; got x.shape={x.shape}. "
                f"{sequence_hint(x.shape, self.d_model)} Build the operator with a larger "
                "max_len for longer sequences."
            )
        x = jnp.asarray(x)  # a NumPy float64 x is float32 without x64: the output's dtype too
        if self.impl == "pallas" and x.dtype == jnp.float64:
            # it would compute in float64, and hyena_recurrence's error named its own arguments
            raise TypeError(
                "`x` is float64, which this operator computes in float64, and impl='pallas' "
                "runs the Pallas kernels, which support float32 and bfloat16. Cast x to float32, "
                "or build the operator with impl='auto' or 'xla'."
            )
        self = widen_to_input(self, x.dtype)  # a float64 input computes in float64
        length, h, n = x.shape[0], self.d_model, self.order
        m = self.D.shape[0]  # long convolutions: n ("paper") or n - 1 ("reference")
        u = x.astype(self.D.dtype).T  # (H, L): time on the last axis, as fft_conv wants
        z = self.in_weight @ u + self.in_bias[:, None]
        z = _short_conv(z, self.short_kernel) + self.short_bias[:, None]
        # (x^1, .., x^N, v) -> the convolved input and the M gates in the order they apply
        v, gates = _LAYOUTS[self.layout][1](z.reshape(n + 1, h, length))
        # Filter channel c = i * m + j feeds channel i of the j-th convolution (j = 0 first
        # applied): the rates, linear in c, are interleaved, so every convolution spans
        # decay_min .. decay_max (the reference code's "c l (v o) -> c o v l"), not a block of
        # slow or fast ones. D[j] is the skip of the j-th convolution.
        filters = self.filter(length).reshape(h, m, length).transpose(1, 0, 2)
        y = hyena_recurrence(v, gates, filters, self.D, impl=self.impl)
        y = self.out_weight @ y + self.out_bias[:, None]
        return y.T.astype(x.dtype)
