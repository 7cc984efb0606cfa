"""Pallas GPU kernels for FFT convolution as DFT matrix products (FlashFFTConv-style).

Backend: **Pallas Triton** (``pl.pallas_call`` lowered through Triton). On Hopper, Triton
compiles ``tl.dot`` on f32/bf16 tiles of at least 16x16 to warpgroup MMA (``wgmma``)
tensor-core instructions with f32 accumulation, schedules the loads itself, and the same
kernel runs on Ampere and in ``interpret=True`` mode on CPU, which is how it is tested here.
Mosaic GPU exposes ``wgmma`` and TMA more directly and can go further (explicit warpgroup
pipelining), but its kernels are Hopper-only, need hand-managed shared-memory layouts and
cannot be exercised without a GPU; the Triton path is the one that is portable and tested.
JAX 0.11 deprecates the Pallas Triton backend (a ``DeprecationWarning``, id
``jax-pallas-triton``, each time such a kernel is lowered for a GPU; it still lowers in JAX
0.12.1, and spectrax pins ``jax < 0.13``); a Mosaic GPU port is the way forward once it can be
tested on a GPU.

One program per (batch, channel) row: it loads the row's ``(m_in, N2)`` input tile (the
causal zero padding is folded into the first DFT factor, nothing padded is read), the
filter's spectrum in kernel order, and the DFT factors and twiddles; it computes the forward
transform, the pointwise product, the inverse transform and the optional gates without
writing any intermediate to global memory, and stores the ``(m_out, N2)`` output tile.

Triton needs power-of-two block shapes of at least 16 per matmul dimension: plans for this
backend use ``N2 >= 16`` and power-of-two row counts (:func:`gpu_plan`), and one program
holds at most :data:`GPU_MAX_FFT` points; longer sequences take the three-level plan of
:mod:`spectrax.kernels.fft_conv.outer` (or the chunked path for short filters).

Speed on a GPU has not been measured (no GPU was available when this was written); the
block-size defaults are heuristics, not tuned values.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from spectrax._checks import check_positive_int
from spectrax.kernels.fft_conv.monarch import (
    MonarchFactors,
    MonarchPlan,
    monarch_cconv_tile,
    monarch_conv_tile,
    monarch_factors,
    monarch_xcorr_tile,
    plan_monarch,
)

# Largest transform one GPU program holds: its complex float32 intermediates (8 bytes per
# point: 64 KiB at 8192) must stay in registers / shared memory (228 KiB per H100 SM), and
# Triton stages each tl.dot operand through shared memory. Longer transforms take the
# three-level plan with inner transforms of this size. A heuristic: not tuned on hardware.
GPU_MAX_FFT = 1 << 13


def gpu_plan(length: int, *, causal: bool) -> MonarchPlan | None:
    """Plan with power-of-two tiles of at least 16 (Triton / tensor-core MMA shapes) and at
    most :data:`GPU_MAX_FFT` points (``L <= 4096`` causal; circular, ``L`` a power of two from
    256 to 8192: a circular plan has ``N1 = L / N2`` rows, both powers of two of at least 16)."""
    plan = plan_monarch(length, causal=causal, min_n2=16, min_rows=16, pow2=True)
    if plan is None or plan.fft_size > GPU_MAX_FFT:
        return None
    # a circular plan has N1 = L / N2 rows, which plan_monarch does not round up: below 16 a
    # Triton dot would get a dimension under its minimum (L < 256 circular goes to XLA)
    return plan if plan.n1 >= 16 and plan.m_in >= 16 else None


def gpu_out_rows(plan: MonarchPlan, ksize: int) -> int:
    """Rows of the filter gradient tile: ``ceil(K / N2)`` rounded to a power of two, so a
    short filter (``K << L``) skips most of the last inverse product."""
    rows = 1 << max(0, (math.ceil(ksize / plan.n2) - 1).bit_length())
    return min(plan.m_out, max(rows, 16))


@dataclasses.dataclass(frozen=True)
class GpuBlockSizes:
    """Launch parameters of the GPU kernels (one program per row).

    Attributes:
        num_warps: Triton warps per program (4 = one Hopper warpgroup).
        num_stages: Triton software-pipelining stages.
    """

    num_warps: int = 4
    num_stages: int = 1

    def __post_init__(self):
        warps = check_positive_int("num_warps", self.num_warps)
        if warps & (warps - 1):
            raise ValueError(f"`num_warps` must be a power of two (Triton); got {warps}.")
        check_positive_int("num_stages", self.num_stages)

    @classmethod
    def get_default(cls, plan: MonarchPlan) -> GpuBlockSizes:
        """Heuristic defaults (untuned): two warpgroups for the largest tiles (the full
        :data:`GPU_MAX_FFT` points), one below."""
        return cls(num_warps=8 if plan.n1 * plan.n2 >= GPU_MAX_FFT else 4, num_stages=1)


def check_tiles(plan: MonarchPlan, tiles, spectra=()) -> tuple[int, int]:
    """Check the operands of a kernel call against its ``plan``; returns ``(Bo, R)``.

    ``tiles`` are ``(name, array, rows)`` that must be ``(Bo, R, rows, N2)``, all with the
    first one's ``(Bo, R)`` (``None`` arrays are skipped); ``spectra`` are ``(name, array)``
    that must be ``(R, N1, cols)``. Pallas does not catch a mismatch: a block index past a
    short spectrum is clamped (every row silently gets the first rows' filter in interpret
    mode; an out-of-bounds read on hardware) and a tile of another plan is read in part.
    """
    what = f"for the plan N1={plan.n1}, N2={plan.n2}, m_in={plan.m_in}"
    lead = None
    for name, x, rows in tiles:
        if x is None:
            continue
        shape = tuple(x.shape)
        if lead is None:
            if len(shape) != 4 or shape[2:] != (rows, plan.n2):
                raise ValueError(
                    f"`{name}` must be row tiles (Bo, R, {rows}, {plan.n2}) {what}; got "
                    f"{name}.shape={shape}."
                )
            lead = shape[:2]
        elif shape != (*lead, rows, plan.n2):
            raise ValueError(
                f"`{name}` must have shape {(*lead, rows, plan.n2)} (Bo, R, {rows}, N2) {what}; "
                f"got {name}.shape={shape}."
            )
    for name, x in spectra:
        want = (lead[1], plan.n1, plan.spectrum_cols)
        if tuple(x.shape) != want:
            raise ValueError(
                f"`{name}` must be the filter spectrum {want} (R, N1, cols) {what}, one per "
                f"row of the tiles; got {name}.shape={tuple(x.shape)}."
            )
    return lead


def check_out_rows(plan: MonarchPlan, out_rows) -> int:
    """``1 <= out_rows <= m_out`` (rows of a correlation kernel's output)."""
    if (
        isinstance(out_rows, bool)
        or not isinstance(out_rows, int)
        or not 1 <= out_rows <= plan.m_out
    ):
        raise ValueError(
            f"`out_rows` must be an integer in [1, m_out={plan.m_out}]; got {out_rows!r}."
        )
    return out_rows


def check_circular_tiles(plan: MonarchPlan, xr, xi, kr, ki) -> tuple[int, int]:
    """Operands of a complex-row kernel: a circular plan, ``(Bo, R, N1, N2)`` tiles."""
    if plan.causal:
        raise ValueError(
            "`plan` of a complex-row (three-level inner) kernel must be circular; got a causal "
            f"plan for L={plan.length}."
        )
    return check_tiles(plan, [("xr", xr, plan.n1), ("xi", xi, plan.n1)], [("kr", kr), ("ki", ki)])


def load_factors(refs) -> MonarchFactors:
    return MonarchFactors(*(r[...] for r in refs))


def conv_rows(
    refs, at, *, has_pre: bool, has_post: bool, conj_filter: bool, precision: str = "f32"
) -> None:
    """Kernel body on refs: ``out[at] = post * irfft(rfft(pre * x) * K)`` for one row.

    ``at`` indexes the per-row refs (``...`` for one row per program, a row number when a
    program holds a block of rows). Ref order: x, [pre], [post], kr, ki, 8 factors, out.
    """
    refs = list(refs)
    x = refs.pop(0)[at].astype(jnp.float32)
    if has_pre:
        x = x * refs.pop(0)[at].astype(jnp.float32)
    post = refs.pop(0)[at].astype(jnp.float32) if has_post else None
    kr, ki = refs.pop(0)[at], refs.pop(0)[at]
    fac = load_factors(refs[:8])
    out = refs[8]
    y = monarch_conv_tile(x, kr, ki, fac, conj_filter=conj_filter, precision=precision)
    if post is not None:
        y = y * post
    out[at] = y.astype(out.dtype)


def xcorr_rows(refs, at, *, precision: str = "f32") -> None:
    """Kernel body on refs: ``out[at] = irfft(rfft(a) * conj(rfft(b)))[:m_out rows]``.
    Ref order: a, b, 8 factors, out."""
    a = refs[0][at].astype(jnp.float32)
    b = refs[1][at].astype(jnp.float32)
    fac = load_factors(refs[2:10])
    refs[10][at] = monarch_xcorr_tile(a, b, fac, precision).astype(refs[10].dtype)


def cconv_rows(refs, at, *, conj_filter: bool, precision: str = "f32") -> None:
    """Kernel body on refs: complex ``out[at] = ifft(fft(x) * K)`` for one row (the inner
    transform of the three-level plan). Ref order: xr, xi, kr, ki, 8 factors, out_r, out_i."""
    xr, xi = refs[0][at], refs[1][at]
    kr, ki = refs[2][at], refs[3][at]
    fac = load_factors(refs[4:12])
    yr, yi = monarch_cconv_tile(xr, xi, kr, ki, fac, conj_filter=conj_filter, precision=precision)
    refs[12][at] = yr.astype(refs[12].dtype)
    refs[13][at] = yi.astype(refs[13].dtype)


def _factor_specs(fac: MonarchFactors, ngrid: int) -> list:
    zero = (0, 0)
    return [pl.BlockSpec(f.shape, lambda *_, z=zero: z) for f in fac]


def _compiler_params(block_sizes: GpuBlockSizes, interpret) -> dict:
    if interpret:
        return {}
    from jax.experimental.pallas import triton as pltriton

    return {
        "compiler_params": pltriton.CompilerParams(
            num_warps=block_sizes.num_warps, num_stages=block_sizes.num_stages
        )
    }


def conv_gpu(
    x: jax.Array,
    kr: jax.Array,
    ki: jax.Array,
    plan: MonarchPlan,
    *,
    pre: jax.Array | None = None,
    post: jax.Array | None = None,
    conj_filter: bool = False,
    out_dtype=None,
    block_sizes: GpuBlockSizes | None = None,
    interpret: bool = False,
    precision: str = "f32",
) -> jax.Array:
    """Fused gated convolution of row tiles on the GPU kernel.

    Args:
        x: ``(Bo, R, m_in, N2)`` real input tiles (float32 or bfloat16).
        kr, ki: ``(R, N1, cols)`` float32 filter spectrum in kernel order (shared over ``Bo``).
        plan: the :func:`gpu_plan` the tiles and spectrum were built with.
        pre: optional ``(Bo, R, m_in, N2)`` input gate; post: ``(Bo, R, m_out, N2)`` output gate.
        conj_filter: multiply by ``conj(K)`` (a correlation; the input gradient).
        out_dtype: output dtype (default ``x.dtype``).
        block_sizes: launch parameters (default :meth:`GpuBlockSizes.get_default`).
        interpret: run in Pallas interpret mode (CPU testing).
        precision: matmul precision, one of ``monarch.PRECISIONS``.

    Returns:
        ``(Bo, R, m_out, N2)``.
    """
    nb, nr = check_tiles(
        plan,
        [("x", x, plan.m_in), ("pre", pre, plan.m_in), ("post", post, plan.m_out)],
        [("kr", kr), ("ki", ki)],
    )
    block_sizes = block_sizes or GpuBlockSizes.get_default(plan)
    fac = monarch_factors(plan)
    row_in = pl.BlockSpec((None, None, plan.m_in, plan.n2), lambda b, r: (b, r, 0, 0))
    row_out = pl.BlockSpec((None, None, plan.m_out, plan.n2), lambda b, r: (b, r, 0, 0))
    spec_k = pl.BlockSpec((None, plan.n1, plan.spectrum_cols), lambda b, r: (r, 0, 0))
    args, specs = [x], [row_in]
    if pre is not None:
        args.append(pre)
        specs.append(row_in)
    if post is not None:
        args.append(post)
        specs.append(row_out)
    args += [kr, ki, *fac]
    specs += [spec_k, spec_k, *_factor_specs(fac, 2)]

    def kernel(*refs):
        conv_rows(
            refs,
            ...,
            has_pre=pre is not None,
            has_post=post is not None,
            conj_filter=conj_filter,
            precision=precision,
        )

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((nb, nr, plan.m_out, plan.n2), out_dtype or x.dtype),
        grid=(nb, nr),
        in_specs=specs,
        out_specs=row_out,
        interpret=interpret,
        **_compiler_params(block_sizes, interpret),
    )(*args)


def xcorr_gpu(
    a: jax.Array,
    b: jax.Array,
    plan: MonarchPlan,
    out_rows: int,
    *,
    block_sizes: GpuBlockSizes | None = None,
    interpret: bool = False,
    precision: str = "f32",
) -> jax.Array:
    """Row-wise circular cross-correlation ``irfft(rfft(a) conj(rfft(b)))``, first
    ``out_rows`` rows: ``(Bo, R, m_in, N2)`` x2 -> ``(Bo, R, out_rows, N2)`` float32."""
    nb, nr = check_tiles(plan, [("a", a, plan.m_in), ("b", b, plan.m_in)])
    check_out_rows(plan, out_rows)
    block_sizes = block_sizes or GpuBlockSizes.get_default(plan)
    fac = monarch_factors(plan, m_out=out_rows)
    row_in = pl.BlockSpec((None, None, plan.m_in, plan.n2), lambda i, r: (i, r, 0, 0))
    row_out = pl.BlockSpec((None, None, out_rows, plan.n2), lambda i, r: (i, r, 0, 0))

    def kernel(*refs):
        xcorr_rows(refs, ..., precision=precision)

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((nb, nr, out_rows, plan.n2), jnp.float32),
        grid=(nb, nr),
        in_specs=[row_in, row_in, *_factor_specs(fac, 2)],
        out_specs=row_out,
        interpret=interpret,
        **_compiler_params(block_sizes, interpret),
    )(a, b, *fac)


def cconv_gpu(
    xr: jax.Array,
    xi: jax.Array,
    kr: jax.Array,
    ki: jax.Array,
    plan: MonarchPlan,
    *,
    conj_filter: bool = False,
    block_sizes: GpuBlockSizes | None = None,
    interpret: bool = False,
    precision: str = "f32",
) -> tuple[jax.Array, jax.Array]:
    """Complex row-wise circular convolution ``ifft(fft(x) * K)`` on the GPU kernel.

    Args:
        xr, xi: ``(Bo, R, N1, N2)`` float32 real and imaginary tiles (a circular plan).
        kr, ki: ``(R, N1, cols)`` float32 spectrum in kernel order, one per row.

    Returns:
        ``(yr, yi)``, each ``(Bo, R, N1, N2)`` float32.
    """
    nb, nr = check_circular_tiles(plan, xr, xi, kr, ki)
    block_sizes = block_sizes or GpuBlockSizes.get_default(plan)
    fac = monarch_factors(plan)
    row = pl.BlockSpec((None, None, plan.n1, plan.n2), lambda b, r: (b, r, 0, 0))
    spec_k = pl.BlockSpec((None, plan.n1, plan.spectrum_cols), lambda b, r: (r, 0, 0))
    out = jax.ShapeDtypeStruct((nb, nr, plan.n1, plan.n2), jnp.float32)

    def kernel(*refs):
        cconv_rows(refs, ..., conj_filter=conj_filter, precision=precision)

    return pl.pallas_call(
        kernel,
        out_shape=(out, out),
        grid=(nb, nr),
        in_specs=[row, row, spec_k, spec_k, *_factor_specs(fac, 2)],
        out_specs=(row, row),
        interpret=interpret,
        **_compiler_params(block_sizes, interpret),
    )(xr, xi, kr, ki, *fac)
