"""Three-level DFT-as-matmul convolution for long sequences: an outer decomposition step.

A two-level plan (:mod:`spectrax.kernels.fft_conv.monarch`) keeps dense ``N1 x N1`` and
``N2 x N2`` factors on chip, which bounds it to ``L <= MAX_LENGTH``. Longer sequences add one
outer step of the same four-step algorithm (Bailey, 1990, "FFTs in external or hierarchical
memory"; the three-level Monarch decomposition of Fu et al., 2023, "FlashFFTConv"). With
``N = P * M`` and ``x[M p + m] = A[p, m]``:

    B[kp, m] = sum_p A[p, m] exp(-2 pi i p kp / P) * exp(-2 pi i m kp / N)     (outer, XLA)
    X[kp + P km] = DFT_M(B[kp, :])[km]                                          (inner, kernel)

so each of the ``P`` rows ``kp`` is an independent size-``M`` transform, multiplied by its own
slice ``K[kp + P km]`` of the filter spectrum and transformed back in the same fused Pallas
kernel (:func:`~spectrax.kernels.fft_conv.gpu.cconv_gpu`, complex rows, a circular inner
plan); the outer inverse then combines the rows. Because ``x`` and ``y`` are real, only the
rows ``kp = 0 .. P/2`` are computed (the others are their conjugates), and the causal zero
padding is folded into the outer factor (only the first ``P/2`` input rows are read; only the
first ``P/2`` output rows, which hold ``y[:L]``, are produced).

The outer steps are float32 matrix products of size ``P`` written in jnp (XLA fuses the
twiddles into them; the factors and twiddles are computed in the program from integer iotas,
not embedded as constants): they read the input once and write ``(P/2 + 1) / P`` of a complex
``N``-point array, so this path moves several times the bytes of the two-level kernel: it
trades bandwidth for supporting any length up to :data:`LONG_MAX_LENGTH`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from spectrax.kernels.fft_conv.monarch import (
    MonarchFactors,
    MonarchPlan,
    monarch_cconv_tile,
    monarch_factors,
    monarch_forward_complex,
    monarch_inverse_complex,
    unit_roots,
)

# Default inner (two-level, circular) transform size: 2^16 points, dense factors of 256 x 256
# (the TPU kernels; the GPU kernels use gpu.GPU_MAX_FFT).
INNER_SIZE = 1 << 16
# Longest supported sequence (P = 128 outer rows for a causal convolution).
LONG_MAX_LENGTH = 1 << 22

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class OuterPlan:
    """Shape of a three-level convolution: ``N = P * M``, inner circular plan of size ``M``.

    Attributes:
        length: ``L``.
        causal: linear (``N >= 2L``, the input in the first ``P/2`` rows) or circular
            (``N = L``).
        p: outer factor ``P`` (a power of two >= 2).
        inner: the inner two-level circular plan (``fft_size == M``).
    """

    length: int
    causal: bool
    p: int
    inner: MonarchPlan

    @property
    def m(self) -> int:
        return self.inner.fft_size

    @property
    def fft_size(self) -> int:
        return self.p * self.m

    @property
    def rows_in(self) -> int:
        """Outer rows that hold input (and output): ``P/2`` if causal, else ``P``."""
        return self.p // 2 if self.causal else self.p

    @property
    def spectrum_rows(self) -> int:
        """Outer frequency rows computed: ``P/2 + 1`` (real input)."""
        return self.p // 2 + 1


def plan_outer(length: int, *, causal: bool, inner_plan, inner_size: int = INNER_SIZE):
    """The three-level plan for ``L``, or ``None``.

    Args:
        length: ``L``, at most :data:`LONG_MAX_LENGTH`.
        causal: linear or circular convolution (circular needs ``L = P * inner_size``).
        inner_plan: ``(length, causal=False) -> MonarchPlan | None``, the kernel family's
            planner (the inner plan is circular).
        inner_size: ``M``, a power of two (smaller values exercise the path in tests).
    """
    if not 1 <= length <= LONG_MAX_LENGTH or inner_size < 1 or inner_size & (inner_size - 1):
        return None
    need = 2 * length if causal else length
    p = max(2, 1 << max(0, (math.ceil(need / inner_size) - 1).bit_length()))
    if not causal and p * inner_size != length:
        return None
    inner = inner_plan(inner_size, causal=False)
    if inner is None:
        return None
    return OuterPlan(length, causal, p, inner)


def _iota(shape: tuple[int, int], axis: int) -> jax.Array:
    return jax.lax.broadcasted_iota(jnp.int32, shape, axis)


def outer_twiddles(plan: OuterPlan) -> tuple[jax.Array, jax.Array]:
    """Twiddles ``exp(-2 pi i kp m / N)``, ``(P/2+1, M)`` float32 (real, imag).

    Built in the program from integer iotas (:func:`~spectrax.kernels.fft_conv.monarch.unit_roots`;
    ``kp m < N / 2`` is exact in int32) rather than embedded as a constant: as a table it is
    34 MB at ``L = 2^22`` (GPU and TPU plans), carried by every lowered program and compile."""
    shape = (plan.spectrum_rows, plan.m)
    return unit_roots(_iota(shape, 0) * _iota(shape, 1), plan.fft_size)


def _outer_factors(plan: OuterPlan) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """Forward ``(P/2+1, rows_in)`` DFT rows, twiddles ``(P/2+1, M)``, and the inverse
    ``(rows_in, P/2+1)`` real-output combination (weights 1, 2, .., 2, 1 over ``P``), each
    float32 (real, imag), built in the program."""
    p = plan.p
    shape = (plan.spectrum_rows, plan.rows_in)
    fwd = unit_roots(_iota(shape, 0) * _iota(shape, 1), p)
    shape = (plan.rows_in, plan.spectrum_rows)
    kp = _iota(shape, 1)
    weight = jnp.where((kp == 0) | (kp == p // 2), 1.0, 2.0).astype(jnp.float32) / p
    cr, ci = unit_roots(_iota(shape, 0) * kp, p)
    inv = (weight * cr, -weight * ci)  # conjugate roots: the inverse transform
    return fwd, outer_twiddles(plan), inv


def _lift(a: tuple[jax.Array, jax.Array], ndim: int) -> tuple[jax.Array, jax.Array]:
    """Leading unit axes up to ``ndim`` (explicit broadcasting: rank promotion is strict)."""
    return tuple(x.reshape((1,) * (ndim - x.ndim) + x.shape) for x in a)


def outer_forward(x: jax.Array, plan: OuterPlan) -> tuple[jax.Array, jax.Array]:
    """Real ``(..., L)`` -> twiddled outer spectrum rows ``(..., P/2+1, M)`` (real, imag)."""
    (fr, fi), tw, _ = _outer_factors(plan)
    pad = plan.rows_in * plan.m - x.shape[-1]
    x = x.astype(jnp.float32)
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    a = x.reshape(*x.shape[:-1], plan.rows_in, plan.m)
    tr, ti = _lift(tw, a.ndim)
    br = jnp.einsum("kp,...pm->...km", fr, a, precision=_HIGHEST)
    bi = jnp.einsum("kp,...pm->...km", fi, a, precision=_HIGHEST)
    return br * tr - bi * ti, br * ti + bi * tr


def outer_inverse(zr: jax.Array, zi: jax.Array, plan: OuterPlan) -> jax.Array:
    """Inner-inverted rows ``(..., P/2+1, M)`` -> real ``(..., L)`` (conjugate twiddles,
    then the real-output combination of the outer rows)."""
    _, tw, (cr, ci) = _outer_factors(plan)
    tr, ti = _lift(tw, zr.ndim)
    zr, zi = zr * tr + zi * ti, zi * tr - zr * ti
    y = jnp.einsum("pk,...km->...pm", cr, zr, precision=_HIGHEST) - jnp.einsum(
        "pk,...km->...pm", ci, zi, precision=_HIGHEST
    )
    return y.reshape(*y.shape[:-2], plan.rows_in * plan.m)[..., : plan.length]


def to_inner_tiles(br: jax.Array, plan: OuterPlan) -> jax.Array:
    """``(..., P/2+1, M)`` -> ``(..., P/2+1, N1, N2)`` (a free reshape)."""
    return br.reshape(*br.shape[:-1], plan.inner.n1, plan.inner.n2)


def outer_spectrum(
    k: jax.Array, plan: OuterPlan, precision: str = "f32"
) -> tuple[jax.Array, jax.Array]:
    """Filter spectrum in the kernel's order: ``(..., K)`` -> ``(..., P/2+1, N1, cols)``
    (real, imag), with ``X[kp + P (k1 + N1 k2)]`` at ``[kp, k1, k2]``; float32 (inner
    matmuls at ``precision``, one of :data:`~spectrax.kernels.fft_conv.monarch.PRECISIONS`)."""
    br, bi = outer_forward(k, plan)
    fac: MonarchFactors = monarch_factors(plan.inner)
    tiles = to_inner_tiles(br, plan), to_inner_tiles(bi, plan)
    return monarch_forward_complex(*tiles, fac, precision)


def outer_correlation_sum(
    a: jax.Array,
    br: jax.Array,
    bi: jax.Array,
    plan: OuterPlan,
    precision: str = "f32",
) -> jax.Array:
    """``sum_i corr(a[i], b[i])``: circular cross-correlations ``irfft(A conj(B))`` on the
    three-level plan, summed over the leading axis in the frequency domain.

    Summing the spectra first (the inverse is linear) takes one inverse transform per row of
    the result instead of one per row of ``a``: the filter gradient of a filter shared over a
    batch (as :func:`spectrax.kernels.fft_conv.ops.fft_conv`'s XLA backward does).

    Args:
        a: ``(Bo, ..., L)`` real.
        br, bi: the spectrum of ``b`` (``(Bo, ..., L)`` real) from :func:`outer_spectrum`.
        precision: matmul precision of ``a``'s inner transform and of the inverse.

    Returns:
        ``(..., L)`` float32 (its first ``K`` samples: ``corr(a, b)[:K]`` for a causal plan).
    """
    ar, ai = outer_spectrum(a, plan, precision)
    zr = jnp.sum(ar * br + ai * bi, axis=0)
    zi = jnp.sum(ai * br - ar * bi, axis=0)
    yr, yi = monarch_inverse_complex(zr, zi, monarch_factors(plan.inner), precision)
    shape = yr.shape[:-2] + (plan.m,)
    return outer_inverse(yr.reshape(shape), yi.reshape(shape), plan)


def outer_conv_reference(u: jax.Array, k: jax.Array, plan: OuterPlan) -> jax.Array:
    """Plain-jnp three-level convolution (what the kernel path computes), for tests."""
    kr, ki = outer_spectrum(k, plan)
    br, bi = outer_forward(u, plan)
    zr, zi = monarch_cconv_tile(
        to_inner_tiles(br, plan), to_inner_tiles(bi, plan), kr, ki, monarch_factors(plan.inner)
    )
    shape = zr.shape[:-2] + (plan.m,)
    return outer_inverse(zr.reshape(shape), zi.reshape(shape), plan)
