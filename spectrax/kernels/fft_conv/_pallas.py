"""``impl="pallas"`` for :func:`spectrax.fft_conv`: backend choice, layout, custom_vjp, registry.

The forward pass is one fused kernel (gates, transform, product, inverse). The backward pass
runs the same kernels: ``du = corr(g', k)`` is the convolution kernel with the conjugated
filter spectrum, and ``dk = corr(g', v)[:K]`` is a correlation kernel that transforms both
operands on chip and computes only the ``ceil(K / N2)`` output rows a short filter needs
(``g' = post * g``, ``v = pre * u``). The gradient of the output gate needs the ungated
convolution, which the backward recomputes with the forward kernel instead of storing it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from spectrax.kernels.fft_conv.gpu import GpuBlockSizes, conv_gpu, gpu_out_rows, gpu_plan, xcorr_gpu
from spectrax.kernels.fft_conv.monarch import (
    MAX_LENGTH,
    MonarchPlan,
    filter_spectrum,
    from_tiles,
    to_tiles,
)
from spectrax.kernels.fft_conv.tpu import TpuBlockSizes, conv_tpu, tpu_out_rows, tpu_plan, xcorr_tpu

logger = logging.getLogger(__name__)

SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


@dataclasses.dataclass(frozen=True)
class _Kernels:
    plan: Callable[..., MonarchPlan | None]
    conv: Callable[..., jax.Array]
    xcorr: Callable[..., jax.Array]
    out_rows: Callable[[MonarchPlan, int], int]
    block_sizes: type
    describe: str


KERNELS: dict[str, _Kernels] = {
    "gpu": _Kernels(
        gpu_plan, conv_gpu, xcorr_gpu, gpu_out_rows, GpuBlockSizes, "Pallas Triton kernel (GPU)"
    ),
    "tpu": _Kernels(
        tpu_plan, conv_tpu, xcorr_tpu, tpu_out_rows, TpuBlockSizes, "Pallas Mosaic kernel (TPU)"
    ),
}

# JAX platform -> (kernel family, runs compiled). On CPU the GPU-style kernel runs in
# interpret mode: correct and differentiable, but slow (for tests; "auto" keeps XLA there).
_PLATFORM_KERNELS = {
    "gpu": ("gpu", True),
    "cuda": ("gpu", True),
    "rocm": ("gpu", True),
    "tpu": ("tpu", True),
    "cpu": ("gpu", False),
}


def _platform() -> tuple[str, bool]:
    return _PLATFORM_KERNELS.get(jax.default_backend(), ("gpu", False))


def _unsupported_reason(u, k, causal: bool, family: str) -> str | None:
    """Why the Pallas kernels cannot take these arguments (``None`` if they can)."""
    from spectrax.kernels.fft_conv.ops import SpectralFilter

    if isinstance(k, SpectralFilter):
        return (
            "`k` is a SpectralFilter (an rfft spectrum); impl='pallas' builds its own "
            "spectrum in kernel order and needs the time-domain filter `k`"
        )
    for name, x in (("u", u), ("k", k)):
        if jnp.dtype(x.dtype) not in SUPPORTED_DTYPES:
            return (
                f"`{name}` has dtype {jnp.dtype(x.dtype)}; impl='pallas' supports "
                "float32 and bfloat16"
            )
    length = u.shape[-1]
    if KERNELS[family].plan(length, causal=causal) is None:
        what = (
            f"1 <= L <= {MAX_LENGTH}"
            if causal
            else f"L <= {MAX_LENGTH} a multiple of 128 (a power of two on GPU) for causal=False"
        )
        return f"L={length} is not supported by the Pallas kernels; expected {what}"
    return None


def supports(u, k, causal: bool) -> bool:
    """Whether ``impl="auto"`` should pick Pallas: a GPU or TPU backend and supported
    arguments (dtypes float32/bfloat16, time-domain filter, plannable length)."""
    family, compiled = _platform()
    return compiled and _unsupported_reason(u, k, causal, family) is None


@dataclasses.dataclass(frozen=True)
class _Config:
    family: str
    plan: MonarchPlan
    ksize: int
    block_sizes: Any
    interpret: Any


def _core_impl(x, k, gates, cfg: _Config):
    ker = KERNELS[cfg.family]
    kr, ki = filter_spectrum(k, cfg.plan)
    y = ker.conv(
        x,
        kr,
        ki,
        cfg.plan,
        pre=gates.get("pre"),
        post=gates.get("post"),
        out_dtype=x.dtype,
        block_sizes=cfg.block_sizes,
        interpret=cfg.interpret,
    )
    return y, (kr, ki)


def _core_primal(x, k, gates, cfg):
    return _core_impl(x, k, gates, cfg)[0]


def _core_fwd(x, k, gates, cfg):
    y, (kr, ki) = _core_impl(x, k, gates, cfg)
    return y, (x, k, gates, kr, ki)


def _core_bwd(cfg: _Config, res, g):
    x, k, gates, kr, ki = res
    ker = KERNELS[cfg.family]
    run = dict(block_sizes=cfg.block_sizes, interpret=cfg.interpret)
    f32 = jnp.float32
    pre, post = gates.get("pre"), gates.get("post")
    g = g.astype(f32)
    d_gates = {}
    if post is not None:
        z = ker.conv(x, kr, ki, cfg.plan, pre=pre, out_dtype=f32, **run)
        d_gates["post"] = (g * z).astype(post.dtype)
        g = g * post.astype(f32)
    dv = ker.conv(g, kr, ki, cfg.plan, conj_filter=True, out_dtype=f32, **run)
    v = x.astype(f32)
    if pre is not None:
        d_gates["pre"] = (dv * v).astype(pre.dtype)
        dv = dv * pre.astype(f32)
        v = v * pre.astype(f32)
    rows = ker.out_rows(cfg.plan, cfg.ksize)
    dk = ker.xcorr(g, v, cfg.plan, rows, **run)
    dk = jnp.sum(from_tiles(dk, cfg.ksize), axis=0).astype(k.dtype)
    return dv.astype(x.dtype), dk, d_gates


_core = jax.custom_vjp(_core_primal, nondiff_argnums=(3,))
_core.defvjp(_core_fwd, _core_bwd)


def _split_broadcast(kshape: tuple[int, ...], shape: tuple[int, ...]) -> int | None:
    """Index ``j`` with ``kshape[:j]`` all ones and ``kshape[j:] == shape[j:]`` (the filter
    is shared over the first ``j`` axes), or ``None`` if the filter must be materialised."""
    for j in range(len(shape) + 1):
        if all(s == 1 for s in kshape[:j]) and tuple(kshape[j:]) == tuple(shape[j:]):
            return j
    return None


def fft_conv_pallas(
    u: jax.Array,
    k: jax.Array,
    *,
    causal: bool = True,
    pre_gate: jax.Array | None = None,
    post_gate: jax.Array | None = None,
    backend: str | None = None,
    block_sizes: GpuBlockSizes | TpuBlockSizes | None = None,
    interpret: Any = None,
) -> jax.Array:
    """Gated FFT convolution on the Pallas kernels: ``post_gate * conv(pre_gate * u, k)``.

    Arguments are those of :func:`spectrax.fft_conv` (validated there), plus:

    Args:
        backend: kernel family, ``"gpu"`` (Triton) or ``"tpu"`` (Mosaic); default: the one
            for the default JAX backend (``"gpu"`` on CPU, in interpret mode).
        block_sizes: :class:`GpuBlockSizes` or :class:`TpuBlockSizes` (default: per plan).
        interpret: Pallas interpret mode; default on when the default backend is not the
            kernel's device. Pass ``pltpu.InterpretParams()`` to emulate TPU semantics.

    Returns:
        ``(broadcast leading dims, L)`` in ``u``'s dtype; computed in float32 (float32 DFT
        factors, float32 MXU/tensor-core accumulation).

    Raises:
        TypeError / ValueError: unsupported dtype, filter kind or length (see
            :func:`supports`); nothing falls back silently under ``impl="pallas"``.
    """
    family, compiled = _platform()
    family = backend or family
    if family not in KERNELS:
        raise ValueError(f"`backend` must be one of {sorted(KERNELS)}; got {backend!r}.")
    if interpret is None:
        interpret = not (compiled and family == _platform()[0])
        if interpret:
            logger.info("fft_conv impl='pallas': running the %s kernel in interpret mode", family)
    reason = _unsupported_reason(u, k, causal, family)
    if reason is not None:
        error = TypeError if "dtype" in reason else ValueError
        raise error(f"fft_conv(impl='pallas'): {reason}. Use impl='xla' or impl='auto'.")
    ker = KERNELS[family]
    length, ksize = u.shape[-1], k.shape[-1]
    plan = ker.plan(length, causal=causal)
    gates = {name: g for name, g in (("pre", pre_gate), ("post", post_gate)) if g is not None}
    nd = max([u.ndim, k.ndim] + [g.ndim for g in gates.values()])
    u = u.reshape((1,) * (nd - u.ndim) + u.shape)
    k = k.reshape((1,) * (nd - k.ndim) + k.shape)
    gates = {n: g.reshape((1,) * (nd - g.ndim) + g.shape) for n, g in gates.items()}
    lead = jnp.broadcast_shapes(u.shape[:-1], k.shape[:-1], *(g.shape[:-1] for g in gates.values()))
    j = _split_broadcast(k.shape[:-1], lead)
    if j is None:
        k = jnp.broadcast_to(k, lead + (ksize,))
        j = 0
    nb, nr = math.prod(lead[:j]), math.prod(lead[j:])

    def tiles(x):
        x = jnp.broadcast_to(x, lead + (length,)).reshape(nb, nr, length)
        return to_tiles(x, plan)

    if block_sizes is None:
        block_sizes = (
            ker.block_sizes.get_default(plan, nr)
            if family == "tpu"
            else ker.block_sizes.get_default(plan)
        )
    cfg = _Config(family, plan, ksize, block_sizes, interpret)
    y = _core(tiles(u), k.reshape(nr, ksize), {n: tiles(g) for n, g in gates.items()}, cfg)
    return from_tiles(y, length).reshape(lead + (length,))


def _registered(u, k, *, causal=True, pre_gate=None, post_gate=None):
    return fft_conv_pallas(u, k, causal=causal, pre_gate=pre_gate, post_gate=post_gate)


def pallas_status() -> str:
    """One line for ``spectrax info``: what ``impl="pallas"`` runs on this machine."""
    family, compiled = _platform()
    if compiled:
        return (
            f"yes ({KERNELS[family].describe}; L <= {MAX_LENGTH}, float32/bfloat16; "
            "impl='auto' uses it)"
        )
    return (
        f"interpret mode only on {jax.default_backend()} (impl='pallas' runs the GPU-style "
        "kernel interpreted, slowly; impl='auto' uses xla)"
    )
