"""``impl="pallas"`` for :func:`spectrax.fft_conv`: backend choice, layout, custom_vjp, registry.

The forward pass is one fused kernel (gates, transform, product, inverse). The backward pass
runs the same kernels: ``du = corr(g', k)`` is the convolution kernel with the conjugated
filter spectrum, and ``dk = corr(g', v)[:K]`` is a correlation kernel that transforms both
operands on chip and computes only the ``ceil(K / N2)`` output rows a short filter needs
(``g' = post * g``, ``v = pre * u``); on TPU it sums the products over the batch on chip and
inverts once per filter row (a GPU's batch rows are parallel programs: each inverts its own).
The gradient of the output gate needs the ungated convolution, which the backward recomputes
with the forward kernel instead of storing it.
Second and higher derivatives: the forward and backward kernels are each a ``custom_jvp``
whose tangent is that of a ``jnp.fft`` reference of the same map, so grad of grad and
``jax.hessian`` run the kernels for the first derivatives and XLA for the rest.

Three paths, chosen per call (:func:`fft_conv_pallas`):

* **two-level**: one ``(N1, N2)`` plan over the whole sequence, up to what one program holds
  (``L <= 4096`` on GPU, :data:`GPU_MAX_FFT`; ``L <= MAX_LENGTH`` on TPU);
* **short filter** (``K`` much smaller than ``L``; FlashFFTConv's partial convolution):
  overlap-save over chunks of ``C >= K`` samples, each frame ``[previous chunk, chunk]`` a
  size-``2C`` circular convolution whose second half is the output; the transform cost
  drops from ``O(L sqrt(L))`` to ``O(L sqrt(C))`` matmul work (frames are gathered by XLA,
  reading the input twice);
* **long** (beyond one program, up to ``LONG_MAX_LENGTH``): the three-level plan of
  :mod:`spectrax.kernels.fft_conv.outer` (an XLA outer step around complex-row kernels);
  the gradient of a filter shared over a batch sums the spectra over the batch before its
  one inverse per filter row (:func:`~spectrax.kernels.fft_conv.outer.outer_correlation_sum`).

Frequency-sparse filters (``bandwidth``) compute only the kept spectrum columns of the
two-level plan (:func:`~spectrax.kernels.fft_conv.monarch.band_mask` gives the exact mask).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from spectrax._checks import check_choice, check_positive_int, lift_rank
from spectrax.kernels.fft_conv.gpu import (
    GPU_MAX_FFT,
    GpuBlockSizes,
    cconv_gpu,
    conv_gpu,
    gpu_out_rows,
    gpu_plan,
    xcorr_gpu,
)
from spectrax.kernels.fft_conv.monarch import (
    MonarchPlan,
    band_mask,
    check_precision,
    filter_spectrum,
    from_tiles,
    to_tiles,
)
from spectrax.kernels.fft_conv.ops import check_args, check_lengths
from spectrax.kernels.fft_conv.outer import (
    INNER_SIZE,
    LONG_MAX_LENGTH,
    OuterPlan,
    outer_correlation_sum,
    outer_forward,
    outer_inverse,
    outer_spectrum,
    plan_outer,
    to_inner_tiles,
)
from spectrax.kernels.fft_conv.tpu import (
    TpuBlockSizes,
    cconv_tpu,
    conv_tpu,
    tpu_out_rows,
    tpu_plan,
    xcorr_sum_tpu,
    xcorr_tpu,
)

logger = logging.getLogger(__name__)

SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


@dataclasses.dataclass(frozen=True)
class _Kernels:
    plan: Callable[..., MonarchPlan | None]
    conv: Callable[..., jax.Array]
    xcorr: Callable[..., jax.Array]
    cconv: Callable[..., tuple[jax.Array, jax.Array]]
    out_rows: Callable[[MonarchPlan, int], int]
    block_sizes: type
    describe: str
    # spectrum-column granularity of frequency-sparse plans (Triton: powers of two >= 16;
    # Mosaic: multiples of the 128-lane width)
    col_multiple: int
    col_pow2: bool
    # inner transform size of the three-level plan (at most what one program holds)
    inner_size: int
    # correlations summed over the batch in the kernel (None: xcorr, then a sum in XLA)
    xcorr_sum: Callable[..., jax.Array] | None = None

    def outer_plan(self, length: int, causal: bool) -> OuterPlan | None:
        return plan_outer(length, causal=causal, inner_plan=self.plan, inner_size=self.inner_size)


KERNELS: dict[str, _Kernels] = {
    "gpu": _Kernels(
        gpu_plan,
        conv_gpu,
        xcorr_gpu,
        cconv_gpu,
        gpu_out_rows,
        GpuBlockSizes,
        "Pallas Triton kernel (GPU)",
        16,
        True,
        GPU_MAX_FFT,
    ),
    "tpu": _Kernels(
        tpu_plan,
        conv_tpu,
        xcorr_tpu,
        cconv_tpu,
        tpu_out_rows,
        TpuBlockSizes,
        "Pallas Mosaic kernel (TPU)",
        128,
        False,
        INNER_SIZE,
        xcorr_sum_tpu,
    ),
}

# Smallest chunk of the short-filter (overlap-save) path; frames are 2 * chunk samples.
MIN_CHUNK = 1024
# Matmul precision by input dtype when none is given (tensor-core products for both).
DEFAULT_PRECISION = {jnp.dtype(jnp.float32): "bf16_3x", jnp.dtype(jnp.bfloat16): "bf16"}

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
        # as JAX computes it: a NumPy float64 array without jax_enable_x64 is float32
        dtype = jax.dtypes.canonicalize_dtype(x.dtype)
        if dtype not in SUPPORTED_DTYPES:
            return f"`{name}` has dtype {dtype}; impl='pallas' supports float32 and bfloat16"
    length = u.shape[-1]
    ker = KERNELS[family]
    if ker.plan(length, causal=causal) is None and ker.outer_plan(length, causal) is None:
        what = (
            f"1 <= L <= {LONG_MAX_LENGTH}"
            if causal
            else ("L a power of two >= 256" if family == "gpu" else "L a multiple of 128")
            + f" up to {ker.inner_size}, or L = "
            f"P * {ker.inner_size} with P a power of two up to L = {LONG_MAX_LENGTH}, for "
            "causal=False"
        )
        return f"L={length} is not supported by the Pallas kernels; expected {what}"
    return None


# kernel family -> the lowering platforms (lax.platform_dependent names) it compiles for
_LOWERING_PLATFORMS = {"gpu": ("cuda", "rocm"), "tpu": ("tpu",)}


def platforms() -> tuple[str, ...]:
    """The lowering platforms where ``impl="auto"`` runs the kernels: those of the default
    backend's family (``("cuda", "rocm")`` or ``("tpu",)``); a computation lowered for any
    other platform, e.g. the CPU of a GPU host, runs XLA."""
    return _LOWERING_PLATFORMS[_platform()[0]]


def supports(u, k, causal: bool) -> bool:
    """Whether ``impl="auto"`` should pick Pallas: a GPU or TPU default backend and supported
    arguments (dtypes float32/bfloat16, time-domain filter, plannable length). The kernels then
    run where the computation is lowered for :func:`platforms`, XLA elsewhere."""
    family, compiled = _platform()
    return compiled and _unsupported_reason(u, k, causal, family) is None


@dataclasses.dataclass(frozen=True)
class _Config:
    family: str
    plan: Any  # MonarchPlan (two-level, short-filter) or OuterPlan (long)
    ksize: int
    block_sizes: Any
    interpret: Any
    precision: str


# The kernels' two operations, on one layout: tiles ``(Bo, R, m_in, N2)`` of a two-level plan
# (whole rows or overlap-save frames), or rows ``(Bo, R, L)`` of a three-level plan; the
# filter is ``(R, K)`` and its spectrum ``(kr, ki)`` is computed once per call.


def _spectrum(k, cfg: _Config):
    if isinstance(cfg.plan, OuterPlan):
        return _long_spectrum(k, cfg.plan)
    return filter_spectrum(k, cfg.plan)


def _kernel_forward(x, k, gates, kr, ki, cfg: _Config):
    """``post * conv(pre * x, k)`` on the kernels, in ``x``'s dtype."""
    pre, post = gates.get("pre"), gates.get("post")
    if isinstance(cfg.plan, OuterPlan):
        return _long_conv(x, kr, ki, cfg, pre=pre, post=post).astype(x.dtype)
    return KERNELS[cfg.family].conv(
        x,
        kr,
        ki,
        cfg.plan,
        pre=pre,
        post=post,
        out_dtype=x.dtype,
        block_sizes=cfg.block_sizes,
        interpret=cfg.interpret,
        precision=cfg.precision,
    )


def _kernel_backward(x, k, gates, kr, ki, g, cfg: _Config):
    """Cotangents of ``x``, ``k`` and the gates for the output cotangent ``g``, on the kernels."""
    f32 = jnp.float32
    pre, post = gates.get("pre"), gates.get("post")
    g = g.astype(f32)
    d_gates = {}
    if isinstance(cfg.plan, OuterPlan):

        def conv(y, kr, ki, **kw):
            return _long_conv(y, kr, ki, cfg, **kw)

    else:
        ker = KERNELS[cfg.family]
        run = dict(block_sizes=cfg.block_sizes, interpret=cfg.interpret, precision=cfg.precision)

        def conv(y, kr, ki, **kw):
            return ker.conv(y, kr, ki, cfg.plan, out_dtype=f32, **run, **kw)

    if post is not None:
        d_gates["post"] = (g * conv(x, kr, ki, pre=pre)).astype(post.dtype)
        g = g * post.astype(f32)
    dv = conv(g, kr, ki, conj_filter=True)
    v = x.astype(f32)
    if pre is not None:
        d_gates["pre"] = (dv * v).astype(pre.dtype)
        dv = dv * pre.astype(f32)
        v = v * pre.astype(f32)
    if isinstance(cfg.plan, OuterPlan):
        # dk = corr(g, v)[:K], summed over the Bo batch rows that share the filter
        nb, nr, length = v.shape
        if nb > 1:
            # the products of the spectra summed over the batch first (XLA), one inverse per
            # filter row: the kernel would run its inverse on every batch row
            vr, vi = outer_spectrum(v, cfg.plan)
            dk = outer_correlation_sum(g, vr, vi, cfg.plan, cfg.precision)[..., : cfg.ksize]
        else:  # one batch row: the convolution kernel with v's spectrum, conjugated
            vr, vi = _long_spectrum(v.reshape(nr, length), cfg.plan)
            dk = conv(g, vr, vi, conj_filter=True)[0, :, : cfg.ksize]
    else:
        rows = ker.out_rows(cfg.plan, cfg.ksize)
        if ker.xcorr_sum is not None:  # TPU: summed over the batch on chip, one inverse a row
            dk = from_tiles(ker.xcorr_sum(g, v, cfg.plan, rows, **run), cfg.ksize)
        else:  # GPU: the batch rows are parallel programs, each inverts its own product
            dk = jnp.sum(from_tiles(ker.xcorr(g, v, cfg.plan, rows, **run), cfg.ksize), axis=0)
    return dv.astype(x.dtype), dk.astype(k.dtype), d_gates


def _reference(x, k, gates, cfg: _Config):
    """The kernels' linear map in ``jnp.fft`` (float32, same layout): ``post * irfft(rfft(pre
    * x, N) rfft(k, N) mask, N)`` on the plan's size ``N`` (``mask``: a frequency-sparse plan's
    :func:`~spectrax.kernels.fft_conv.monarch.band_mask`), truncated to the layout's length."""
    f32 = jnp.float32
    pre, post = gates.get("pre"), gates.get("post")
    v = x.astype(f32) if pre is None else x.astype(f32) * pre.astype(f32)
    tiled = not isinstance(cfg.plan, OuterPlan)
    if tiled:
        v = v.reshape(*v.shape[:-2], -1)
    n = cfg.plan.fft_size
    k_f = jnp.fft.rfft(k.astype(f32), n=n)
    if tiled and cfg.plan.cols is not None:
        k_f = k_f * lift_rank(jnp.asarray(band_mask(cfg.plan), k_f.dtype), k_f.ndim)
    y = jnp.fft.irfft(jnp.fft.rfft(v, n=n) * lift_rank(k_f, v.ndim), n=n)[..., : v.shape[-1]]
    y = y.reshape(x.shape)
    if post is not None:
        y = y * post.astype(f32)
    return y.astype(x.dtype)


def _reference_backward(x, k, gates, g, cfg: _Config):
    return jax.vjp(lambda x, k, gates: _reference(x, k, gates, cfg), x, k, gates)[1](g)


# Derivatives beyond the first. The forward and backward kernels are each a custom_jvp: the
# primal runs on the kernels, the tangent is the jnp.fft reference's. So jax.hessian and grad of
# grad work through the kernels (first derivatives stay on the kernels; the derivatives of the
# backward pass run under XLA). The spectrum (kr, ki) is a function of k: its tangent is
# carried by k's, so the rules read dk and leave dkr, dki aside.


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _forward(x, k, gates, kr, ki, cfg):
    return _kernel_forward(x, k, gates, kr, ki, cfg)


@_forward.defjvp
def _forward_jvp(cfg, primals, tangents):
    x, k, gates, kr, ki = primals
    dx, dk, d_gates, _, _ = tangents
    ref = functools.partial(_reference, cfg=cfg)
    return _forward(x, k, gates, kr, ki, cfg), jax.jvp(ref, (x, k, gates), (dx, dk, d_gates))[1]


@functools.partial(jax.custom_jvp, nondiff_argnums=(6,))
def _backward(x, k, gates, kr, ki, g, cfg):
    return _kernel_backward(x, k, gates, kr, ki, g, cfg)


@_backward.defjvp
def _backward_jvp(cfg, primals, tangents):
    x, k, gates, kr, ki, g = primals
    dx, dk, d_gates, _, _, dg = tangents
    ref = functools.partial(_reference_backward, cfg=cfg)
    out = _backward(x, k, gates, kr, ki, g, cfg)
    return out, jax.jvp(ref, (x, k, gates, g), (dx, dk, d_gates, dg))[1]


def _conv_primal(x, k, gates, cfg):
    return _forward(x, k, gates, *_spectrum(k, cfg), cfg)


def _conv_fwd(x, k, gates, cfg):
    kr, ki = _spectrum(k, cfg)
    return _forward(x, k, gates, kr, ki, cfg), (x, k, gates, kr, ki)


def _conv_bwd(cfg: _Config, res, g):
    return _backward(*res, g, cfg)


_conv = jax.custom_vjp(_conv_primal, nondiff_argnums=(3,))
_conv.defvjp(_conv_fwd, _conv_bwd)


# Long sequences: outer step in XLA around the complex-row kernels; x is (Bo, R, L).


def _long_conv(x, kr, ki, cfg: _Config, *, conj_filter=False, pre=None, post=None):
    """``post * irfft(rfft(pre * x) * K)`` on the three-level plan; ``(Bo, R, L)`` float32,
    spectrum ``(R * (P/2+1), N1, cols)`` (one slice per row and outer frequency)."""
    plan: OuterPlan = cfg.plan
    ker = KERNELS[cfg.family]
    x = x.astype(jnp.float32)
    if pre is not None:
        x = x * pre.astype(jnp.float32)
    nb, nr = x.shape[0], x.shape[1]
    br, bi = outer_forward(x, plan)  # (Bo, R, P/2+1, M)
    rows = nr * plan.spectrum_rows

    def tiles(b):
        return to_inner_tiles(b, plan).reshape(nb, rows, plan.inner.n1, plan.inner.n2)

    zr, zi = ker.cconv(
        tiles(br),
        tiles(bi),
        kr,
        ki,
        plan.inner,
        conj_filter=conj_filter,
        block_sizes=cfg.block_sizes,
        interpret=cfg.interpret,
        precision=cfg.precision,
    )
    shape = (nb, nr, plan.spectrum_rows, plan.m)
    y = outer_inverse(zr.reshape(shape), zi.reshape(shape), plan)
    if post is not None:
        y = y * post.astype(jnp.float32)
    return y


def _long_spectrum(k, plan: OuterPlan):
    """``(R, K)`` -> spectrum ``(R * (P/2+1), N1, cols)`` (real, imag)."""
    kr, ki = outer_spectrum(k, plan)
    shape = (-1, plan.inner.n1, plan.inner.spectrum_cols)
    return kr.reshape(shape), ki.reshape(shape)


def _chunk_size(length: int, ksize: int, causal: bool, chunk, ker: _Kernels) -> int | None:
    """The overlap-save chunk ``C`` for a short filter, or ``None`` for one whole plan.

    ``chunk=None`` (auto): ``C = max(MIN_CHUNK, next power of two >= K)`` when ``L >= 4 C``;
    ``chunk=0``: never; an int: that chunk (a power of two ``>= K`` and ``< L``)."""
    if chunk == 0 or not causal:
        if chunk and not causal:
            raise ValueError("`chunk` (the short-filter path) needs causal=True; got causal=False.")
        return None
    if chunk is None:
        size = max(MIN_CHUNK, 1 << max(0, (ksize - 1).bit_length()))
        ok = 4 * size <= length and ker.plan(2 * size, causal=False) is not None
        return size if ok else None
    if (
        not isinstance(chunk, int)
        or chunk < ksize
        or chunk >= length
        or chunk & (chunk - 1)
        or ker.plan(2 * chunk, causal=False) is None
    ):
        raise ValueError(
            f"`chunk` must be a power of two with K={ksize} <= chunk < L={length} (and a "
            f"supported frame size 2 * chunk); got {chunk!r}."
        )
    return chunk


def _frames(x: jax.Array, chunk: int) -> jax.Array:
    """``(Bo, R, L)`` -> overlap-save frames ``(Bo * nc, R, 2 C)``: ``[chunk j-1, chunk j]``."""
    nb, nr, length = x.shape
    nc = -(-length // chunk)
    if nc * chunk != length:
        x = jnp.pad(x, [(0, 0), (0, 0), (0, nc * chunk - length)])
    cur = jnp.moveaxis(x.reshape(nb, nr, nc, chunk), 2, 1)  # (Bo, nc, R, C)
    prev = jnp.pad(cur, [(0, 0), (1, 0), (0, 0), (0, 0)])[:, :nc]
    return jnp.concatenate([prev, cur], axis=-1).reshape(nb * nc, nr, 2 * chunk)


def _unframe(y: jax.Array, nb: int, length: int, chunk: int) -> jax.Array:
    """Frames ``(Bo * nc, R, 2 C)`` -> ``(Bo, R, L)`` (the second half of each frame)."""
    nr = y.shape[1]
    y = y[..., chunk:].reshape(nb, -1, nr, chunk)
    return jnp.moveaxis(y, 1, 2).reshape(nb, nr, -1)[..., :length]


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
    precision: str | None = None,
    bandwidth: float | int | np.number | None = None,
    chunk: int | np.integer | None = None,
) -> jax.Array:
    """Gated FFT convolution on the Pallas kernels: ``post_gate * conv(pre_gate * u, k)``.

    Arguments are those of :func:`spectrax.fft_conv` (validated the same way), plus:

    Args:
        backend: kernel family, ``"gpu"`` (Triton) or ``"tpu"`` (Mosaic); default: the one
            for the default JAX backend (``"gpu"`` on CPU, in interpret mode).
        block_sizes: :class:`GpuBlockSizes` or :class:`TpuBlockSizes` (default: per plan).
        interpret: Pallas interpret mode; default on when the default backend is not the
            kernel's device. Pass ``pltpu.InterpretParams()`` to emulate TPU semantics.
        precision: DFT matmul precision, ``"f32"``, ``"bf16_3x"`` or ``"bf16"``
            (:data:`~spectrax.kernels.fft_conv.monarch.PRECISIONS`); default ``"bf16_3x"``
            for float32 inputs (tensor cores / MXU; operands carry 16 significant bits, so
            relative error about 5e-6, against 2e-7 for ``"f32"`` and ``impl="xla"``) and
            ``"bf16"`` for bfloat16 inputs (about 3e-3). Measured against float64 on
            ``L = 256 .. 4096``; pass ``"f32"`` where float32 round-off is needed.
        bandwidth: frequency-sparse filter: keep only ``|f| < bandwidth * N / 2`` of the
            size-``N`` transform (rounded up to the kernel's block of spectrum columns) and
            skip the rest of the spectrum. The result is the convolution with the band-limited
            filter of :func:`~spectrax.kernels.fft_conv.monarch.band_mask` (exact when ``k``
            is band-limited already). Two-level plans only (not with ``chunk``, nor beyond
            one program's length); ``None``: dense.
        chunk: short-filter path: overlap-save over chunks of this many samples (a power of
            two, ``K <= chunk < L``); ``None`` picks it when ``K`` is short (``L >= 4 C``,
            ``C = max(MIN_CHUNK, next power of two >= K)``), ``0`` never chunks. Causal only.

    Returns:
        ``(broadcast leading dims, L)`` in ``u``'s dtype; computed with float32 accumulation.

    Raises:
        TypeError / ValueError: unsupported dtype, filter kind, length or option (see
            :func:`supports`); nothing falls back silently under ``impl="pallas"``.
    """
    family, compiled = _platform()
    family = backend or family
    if family not in KERNELS:
        raise ValueError(f"`backend` must be one of {sorted(KERNELS)}; got {backend!r}.")
    u, k, pre_gate, post_gate = check_args(u, k, causal, pre_gate=pre_gate, post_gate=post_gate)
    if block_sizes is not None and not isinstance(block_sizes, KERNELS[family].block_sizes):
        raise TypeError(
            f"`block_sizes` for backend={family!r} must be a "
            f"{KERNELS[family].block_sizes.__name__}; got {type(block_sizes).__name__}."
        )
    reason = _unsupported_reason(u, k, causal, family)
    if reason is not None:
        error = TypeError if "dtype" in reason else ValueError
        raise error(f"fft_conv(impl='pallas'): {reason}. Use impl='xla' or impl='auto'.")
    if interpret is None:
        interpret = not (compiled and family == _platform()[0])
        if interpret:
            # asked for the fused kernel, given its emulator (about 6x slower than impl='xla'
            # on a CPU): not silently (Python's default filter shows it once per process)
            warnings.warn(
                f"fft_conv(impl='pallas') on {jax.default_backend()}: the {family} Pallas kernel "
                "runs in interpret mode (an emulator, several times slower than impl='xla'); "
                "use impl='auto' (XLA here, the kernel where it compiles), or pass "
                "interpret=True to ask for the emulator.",
                stacklevel=2,
            )
    precision = check_precision(
        DEFAULT_PRECISION[jnp.dtype(u.dtype)] if precision is None else precision
    )
    ker = KERNELS[family]
    length, ksize = u.shape[-1], k.shape[-1]
    path, plan, chunk = _select(length, ksize, causal, ker, bandwidth, chunk)
    # The kernels take float32/bfloat16 (checked above for u and k); a gate of another dtype
    # (float16, or float64 under x64) is rounded to float32, where impl="xla" computes the gate
    # products too; its cotangent comes back in its own dtype through the cast.
    gates = {
        name: g if jnp.dtype(g.dtype) in SUPPORTED_DTYPES else g.astype(jnp.float32)
        for name, g in (("pre", pre_gate), ("post", post_gate))
        if g is not None
    }
    nd = max([u.ndim, k.ndim] + [g.ndim for g in gates.values()])
    u = u.reshape((1,) * (nd - u.ndim) + u.shape)
    k = k.reshape((1,) * (nd - k.ndim) + k.shape)
    gates = {n: g.reshape((1,) * (nd - g.ndim) + g.shape) for n, g in gates.items()}
    lead = jnp.broadcast_shapes(u.shape[:-1], k.shape[:-1], *(g.shape[:-1] for g in gates.values()))
    if math.prod(lead) == 0:
        # nothing to convolve: a kernel grid with a zero-sized axis cannot run (and the
        # gradients of an empty output are zero, which autodiff of this constant gives)
        return jnp.zeros(lead + (length,), u.dtype)
    j = _split_broadcast(k.shape[:-1], lead)
    if j is None:
        k = jnp.broadcast_to(k, lead + (ksize,))
        j = 0
    nb, nr = math.prod(lead[:j]), math.prod(lead[j:])

    def default_blocks(plan):
        inner = plan.inner if isinstance(plan, OuterPlan) else plan
        if block_sizes is not None:
            return block_sizes
        if family == "tpu":
            return ker.block_sizes.get_default(inner, nr)
        return ker.block_sizes.get_default(inner)

    cfg = _Config(family, plan, ksize, default_blocks(plan), interpret, precision)
    return _run(u, k, gates, cfg=cfg, path=path, chunk=chunk, lead=lead, split=(nb, nr))


# One program per call: an eager call dispatches it once rather than op by op around the
# kernels (the three-level path's outer steps and twiddles are dozens of ops); under an outer
# jit it is inlined.
@functools.partial(jax.jit, static_argnames=("cfg", "path", "chunk", "lead", "split"))
def _run(u, k, gates, *, cfg: _Config, path: str, chunk, lead: tuple[int, ...], split):
    nb, nr = split
    plan, length = cfg.plan, u.shape[-1]
    k = k.reshape(nr, cfg.ksize)

    def rows(x):
        return jnp.broadcast_to(x, lead + (length,)).reshape(nb, nr, length)

    if path == "chunked":  # short filter: overlap-save frames through the two-level kernel
        x = {n: to_tiles(_frames(rows(g), chunk), plan) for n, g in (("u", u), *gates.items())}
        y = _conv(x.pop("u"), k, x, cfg)
        y = _unframe(from_tiles(y, 2 * chunk), nb, length, chunk)
    elif path == "long":  # the three-level plan
        y = _conv(rows(u), k, {n: rows(g) for n, g in gates.items()}, cfg)
    else:
        x = {n: to_tiles(rows(g), plan) for n, g in (("u", u), *gates.items())}
        y = from_tiles(_conv(x.pop("u"), k, x, cfg), length)
    return y.reshape(lead + (length,))


def _select(length, ksize, causal, ker: _Kernels, bandwidth, chunk):
    """``(path, plan, chunk)``: path ``"two_level"``, ``"chunked"`` or ``"long"``."""
    if chunk is not None:
        # NumPy integers are ints here; a bool is not (chunk=False would mean "never")
        if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer):
            raise ValueError(
                f"`chunk` must be None (auto), 0 (never) or an int chunk size; got {chunk!r}."
            )
        chunk = int(chunk)
    if bandwidth is not None:
        if (
            isinstance(bandwidth, bool)
            or not isinstance(bandwidth, int | float | np.integer | np.floating)
            or not 0 < bandwidth <= 1
        ):
            raise ValueError(f"`bandwidth` must be a number in (0, 1]; got {bandwidth!r}.")
        bandwidth = float(bandwidth)
        if chunk:
            raise ValueError(f"`bandwidth` cannot be combined with `chunk`; got chunk={chunk}.")
        chunk = 0
    chunk = _chunk_size(length, ksize, causal, chunk, ker)
    if chunk is not None:
        return "chunked", ker.plan(2 * chunk, causal=False), chunk
    plan = ker.plan(length, causal=causal)
    if plan is None:
        if bandwidth is not None:
            raise ValueError(
                f"`bandwidth` (frequency-sparse filters) needs a two-level plan; L={length} is "
                "too long for one on this kernel family (see pallas_plan)."
            )
        return "long", ker.outer_plan(length, causal), None
    if bandwidth is not None:
        plan = plan.with_bandwidth(bandwidth, multiple=ker.col_multiple)
        if ker.col_pow2 and plan.cols is not None:
            cols = 1 << (plan.cols - 1).bit_length()
            plan = dataclasses.replace(plan, cols=None if cols >= plan.n2 else cols)
    return "two_level", plan, None


def pallas_plan(
    length: int,
    ksize: int,
    *,
    causal: bool = True,
    backend: str = "gpu",
    bandwidth: float | int | np.number | None = None,
    chunk: int | np.integer | None = None,
) -> MonarchPlan | OuterPlan:
    """The plan :func:`fft_conv_pallas` runs for these sizes (for inspection, e.g. the exact
    mask of a frequency-sparse filter: ``monarch.band_mask(pallas_plan(..., bandwidth=b))``).
    For the short-filter path it is the plan of one ``2 C`` frame."""
    length = check_positive_int("length", length)
    ksize = check_positive_int("ksize", ksize)
    check_lengths(length, ksize, causal, "length")
    check_choice("backend", backend, tuple(sorted(KERNELS)))
    return _select(length, ksize, bool(causal), KERNELS[backend], bandwidth, chunk)[1]


def _registered(u, k, *, causal=True, pre_gate=None, post_gate=None):
    return fft_conv_pallas(u, k, causal=causal, pre_gate=pre_gate, post_gate=post_gate)


def pallas_status() -> str:
    """One line for ``spectrax info``: what ``impl="pallas"`` runs on this machine."""
    family, compiled = _platform()
    if compiled:
        return (
            f"yes ({KERNELS[family].describe}; L <= {LONG_MAX_LENGTH}, float32/bfloat16; "
            f"impl='auto' uses it where lowered for {'/'.join(platforms())}, xla elsewhere)"
        )
    return (
        f"interpret mode only on {jax.default_backend()} (impl='pallas' runs the GPU-style "
        "kernel interpreted, slowly; impl='auto' uses xla)"
    )
