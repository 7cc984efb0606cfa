"""Pallas TPU (Mosaic) kernels for FFT convolution as DFT matrix products.

The algorithm of :mod:`spectrax.kernels.fft_conv.monarch` under TPU rules: no complex dtype
inside the kernel (real and imaginary parts are separate float32 arrays), the lane dimension
``N2`` is a multiple of 128 and the row count a multiple of 8 (one ``(8, 128)`` vreg tile),
every product is a float32-accumulated MXU matmul. A program holds ``block_rows`` channel rows
(a ``fori_loop`` walks them) so the DFT factors and twiddles, whose block index never
changes, are copied into VMEM once and stay there across the grid; the filter spectrum
block is reused over the batch axis (the innermost grid axis is the batch), and the filter
gradient's correlation accumulates over it in VMEM (:func:`xcorr_sum_tpu`).

Tested in TPU interpret mode on CPU (``interpret=pltpu.InterpretParams()``); its speed on a
TPU has not been measured (no TPU was available), and the defaults are heuristics.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from spectrax._checks import check_positive_int
from spectrax.kernels.fft_conv.gpu import (
    cconv_rows,
    check_circular_tiles,
    check_out_rows,
    check_tiles,
    conv_rows,
    load_factors,
    xcorr_rows,
)
from spectrax.kernels.fft_conv.monarch import (
    MonarchPlan,
    monarch_factors,
    monarch_forward,
    monarch_inverse_real,
    plan_monarch,
)

# VMEM bytes a program's per-row blocks may use (inputs double-buffered), well inside the
# 16-32 MiB of scoped VMEM on v4/v5 chips, leaving room for the factors and temporaries.
_VMEM_BUDGET = 4 << 20


def tpu_plan(length: int, *, causal: bool) -> MonarchPlan | None:
    """Plan with 128-lane columns and 8-row (sublane) granularity."""
    return plan_monarch(length, causal=causal, min_n2=128, min_rows=8, pow2=False)


def tpu_out_rows(plan: MonarchPlan, ksize: int) -> int:
    """Rows of the filter-gradient tile: ``ceil(K / N2)`` rounded up to 8 (short filters
    skip most of the last inverse product)."""
    return min(plan.m_out, 8 * math.ceil(math.ceil(ksize / plan.n2) / 8))


@dataclasses.dataclass(frozen=True)
class TpuBlockSizes:
    """Rows (channels) per program of the TPU kernels.

    Attributes:
        block_rows: channel rows a program transforms; rows are padded to a multiple.
    """

    block_rows: int = 1

    def __post_init__(self):
        check_positive_int("block_rows", self.block_rows)

    @classmethod
    def get_default(cls, plan: MonarchPlan, rows: int) -> TpuBlockSizes:
        """The largest divisor of ``rows`` (no padding) whose blocks fit the VMEM budget."""
        per_row = 4 * plan.n2 * (2 * plan.m_in + 2 * plan.n1 + plan.m_out) * 2
        cap = max(1, min(8, _VMEM_BUDGET // per_row))
        return cls(block_rows=max(d for d in range(1, cap + 1) if rows % d == 0))


def _pad_rows(x: jax.Array, axis: int, multiple: int) -> jax.Array:
    extra = -x.shape[axis] % multiple
    if not extra:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths)


def _run_blocked(
    body, args, row_specs_rows, out_rows, out_dtype, nb, nr, plan, fac, rb, interpret, n_out=1
):
    """Shared pallas_call: grid (channel blocks, batch); ``row_specs_rows`` lists, per
    argument, its tile row count (``None`` for a filter spectrum block); ``n_out`` outputs
    of ``(nb, nr, out_rows, N2)``."""
    specs = []
    for rows in row_specs_rows:
        if rows is None:
            specs.append(pl.BlockSpec((rb, plan.n1, plan.spectrum_cols), lambda r, b: (r, 0, 0)))
        else:
            specs.append(pl.BlockSpec((None, rb, rows, plan.n2), lambda r, b: (b, r, 0, 0)))
    specs += [pl.BlockSpec(f.shape, lambda r, b: (0, 0)) for f in fac]
    out_spec = pl.BlockSpec((None, rb, out_rows, plan.n2), lambda r, b: (b, r, 0, 0))
    out_shape = jax.ShapeDtypeStruct((nb, nr, out_rows, plan.n2), out_dtype)

    def kernel(*refs):
        def step(i, carry):
            body(refs, i)
            return carry

        jax.lax.fori_loop(0, rb, step, 0)

    return pl.pallas_call(
        kernel,
        out_shape=out_shape if n_out == 1 else (out_shape,) * n_out,
        grid=(nr // rb, nb),
        in_specs=specs,
        out_specs=out_spec if n_out == 1 else (out_spec,) * n_out,
        interpret=interpret,
    )(*args, *fac)


def conv_tpu(
    x: jax.Array,
    kr: jax.Array,
    ki: jax.Array,
    plan: MonarchPlan,
    *,
    pre: jax.Array | None = None,
    post: jax.Array | None = None,
    conj_filter: bool = False,
    out_dtype=None,
    block_sizes: TpuBlockSizes | None = None,
    interpret=False,
    precision: str = "f32",
) -> jax.Array:
    """Fused gated convolution of row tiles on the TPU kernel.

    Same contract as :func:`spectrax.kernels.fft_conv.gpu.conv_gpu`: ``x (Bo, R, m_in, N2)``,
    spectrum ``(R, N1, cols)`` float32 (``cols = plan.spectrum_cols``), gates
    ``(Bo, R, m_in|m_out, N2)``; returns ``(Bo, R, m_out, N2)``. ``interpret``: ``False``,
    or ``pltpu.InterpretParams()`` (or ``True``) to run on CPU.
    """
    nb, nr = check_tiles(
        plan,
        [("x", x, plan.m_in), ("pre", pre, plan.m_in), ("post", post, plan.m_out)],
        [("kr", kr), ("ki", ki)],
    )
    rb = (block_sizes or TpuBlockSizes.get_default(plan, nr)).block_rows
    has_pre, has_post = pre is not None, post is not None
    args = [_pad_rows(x, 1, rb)]
    rows = [plan.m_in]
    if has_pre:
        args.append(_pad_rows(pre, 1, rb))
        rows.append(plan.m_in)
    if has_post:
        args.append(_pad_rows(post, 1, rb))
        rows.append(plan.m_out)
    args += [_pad_rows(kr, 0, rb), _pad_rows(ki, 0, rb)]
    rows += [None, None]

    def body(refs, i):
        conv_rows(
            refs,
            i,
            has_pre=has_pre,
            has_post=has_post,
            conj_filter=conj_filter,
            precision=precision,
        )

    out = _run_blocked(
        body,
        args,
        rows,
        plan.m_out,
        out_dtype or x.dtype,
        nb,
        args[0].shape[1],
        plan,
        monarch_factors(plan),
        rb,
        interpret,
    )
    return out[:, :nr]


def xcorr_tpu(
    a: jax.Array,
    b: jax.Array,
    plan: MonarchPlan,
    out_rows: int,
    *,
    block_sizes: TpuBlockSizes | None = None,
    interpret=False,
    precision: str = "f32",
) -> jax.Array:
    """Row-wise circular cross-correlation on the TPU kernel (see
    :func:`spectrax.kernels.fft_conv.gpu.xcorr_gpu`)."""
    nb, nr = check_tiles(plan, [("a", a, plan.m_in), ("b", b, plan.m_in)])
    check_out_rows(plan, out_rows)
    rb = (block_sizes or TpuBlockSizes.get_default(plan, nr)).block_rows
    args = [_pad_rows(a, 1, rb), _pad_rows(b, 1, rb)]

    def body(refs, i):
        xcorr_rows(refs, i, precision=precision)

    out = _run_blocked(
        body,
        args,
        [plan.m_in, plan.m_in],
        out_rows,
        jnp.float32,
        nb,
        args[0].shape[1],
        plan,
        monarch_factors(plan, m_out=out_rows),
        rb,
        interpret,
    )
    return out[:, :nr]


def xcorr_sum_tpu(
    a: jax.Array,
    b: jax.Array,
    plan: MonarchPlan,
    out_rows: int,
    *,
    block_sizes: TpuBlockSizes | None = None,
    interpret=False,
    precision: str = "f32",
) -> jax.Array:
    """Row-wise circular cross-correlations summed over the batch on the TPU kernel:
    ``sum_b irfft(rfft(a[b]) conj(rfft(b[b])))``, first ``out_rows`` rows,
    ``(Bo, R, m_in, N2)`` x2 -> ``(R, out_rows, N2)`` float32 (a shared filter's gradient).

    The batch is the innermost grid axis, which a TPU walks in order: the products of the
    spectra accumulate in VMEM over the batch and are inverted once per row at its last step
    (the inverse is linear), so the inverse runs ``R`` times instead of ``Bo * R``
    (:func:`xcorr_tpu` inverts every row; the sum is then taken outside).
    """
    nb, nr = check_tiles(plan, [("a", a, plan.m_in), ("b", b, plan.m_in)])
    check_out_rows(plan, out_rows)
    rb = (block_sizes or TpuBlockSizes.get_default(plan, nr)).block_rows
    a, b = _pad_rows(a, 1, rb), _pad_rows(b, 1, rb)
    rows = a.shape[1]
    fac = monarch_factors(plan, m_out=out_rows)
    tile = pl.BlockSpec((None, rb, plan.m_in, plan.n2), lambda r, i: (i, r, 0, 0))
    f32 = jnp.float32

    def kernel(a_ref, b_ref, *refs):
        fac_refs, out, acc_r, acc_i = refs[:8], refs[8], refs[9], refs[10]
        step = pl.program_id(1)

        @pl.when(step == 0)
        def _():
            acc_r[...] = jnp.zeros(acc_r.shape, f32)
            acc_i[...] = jnp.zeros(acc_i.shape, f32)

        def accumulate(j, carry):
            f = load_factors(fac_refs)
            xr, xi = monarch_forward(a_ref[j], f, precision)
            yr, yi = monarch_forward(b_ref[j], f, precision)
            acc_r[j] += xr * yr + xi * yi
            acc_i[j] += xi * yr - xr * yi
            return carry

        jax.lax.fori_loop(0, rb, accumulate, 0)

        @pl.when(step == nb - 1)
        def _():
            def invert(j, carry):
                f = load_factors(fac_refs)
                out[j] = monarch_inverse_real(acc_r[j], acc_i[j], f, precision)
                return carry

            jax.lax.fori_loop(0, rb, invert, 0)

    scratch = pltpu.VMEM((rb, plan.n1, plan.spectrum_cols), f32)
    out = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((rows, out_rows, plan.n2), f32),
        grid=(rows // rb, nb),
        in_specs=[tile, tile, *(pl.BlockSpec(f.shape, lambda r, i: (0, 0)) for f in fac)],
        out_specs=pl.BlockSpec((rb, out_rows, plan.n2), lambda r, i: (r, 0, 0)),
        scratch_shapes=[scratch, scratch],
        interpret=interpret,
    )(a, b, *fac)
    return out[:nr]


def cconv_tpu(
    xr: jax.Array,
    xi: jax.Array,
    kr: jax.Array,
    ki: jax.Array,
    plan: MonarchPlan,
    *,
    conj_filter: bool = False,
    block_sizes: TpuBlockSizes | None = None,
    interpret=False,
    precision: str = "f32",
) -> tuple[jax.Array, jax.Array]:
    """Complex row-wise circular convolution on the TPU kernel (see
    :func:`spectrax.kernels.fft_conv.gpu.cconv_gpu`): ``(Bo, R, N1, N2)`` pairs in and out."""
    nb, nr = check_circular_tiles(plan, xr, xi, kr, ki)
    rb = (block_sizes or TpuBlockSizes.get_default(plan, nr)).block_rows
    args = [_pad_rows(xr, 1, rb), _pad_rows(xi, 1, rb), _pad_rows(kr, 0, rb), _pad_rows(ki, 0, rb)]

    def body(refs, i):
        cconv_rows(refs, i, conj_filter=conj_filter, precision=precision)

    yr, yi = _run_blocked(
        body,
        args,
        [plan.n1, plan.n1, None, None],
        plan.n1,
        jnp.float32,
        nb,
        args[0].shape[1],
        plan,
        monarch_factors(plan),
        rb,
        interpret,
        n_out=2,
    )
    return yr[:, :nr], yi[:, :nr]
