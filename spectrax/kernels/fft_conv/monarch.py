"""DFT as matrix products (four-step / Monarch decomposition) for FFT convolution, in plain jnp.

A length-``N`` DFT with ``N = N1 * N2`` is two dense DFTs of sizes ``N1`` and ``N2`` with a
pointwise twiddle in between (Cooley & Tukey, 1965; Bailey, 1990, "FFTs in external or
hierarchical memory"); written as matrix products it is the Monarch form used by
FlashFFTConv (Fu, Kumbong, Nguyen, Re, 2023, "FlashFFTConv: Efficient Convolutions for Long
Sequences with Tensor Cores"). With ``x[N2*n1 + n2] = A[n1, n2]``:

    B = F_N1 @ A,   B *= T (T[k1, n2] = exp(-2 pi i k1 n2 / N)),   C = B @ F_N2,

and ``C[k1, k2] = X[k1 + N1*k2]``. The spectrum stays in this "kernel order" ``(N1, N2)``;
filters are transformed once into the same order, so neither the forward nor the inverse
transform writes a transpose. The inverse runs the same three steps backwards with conjugate
factors and lands in natural time order again.

Everything is real arithmetic on ``(real, imag)`` pairs (the Pallas TPU rules: no complex
dtype inside kernels) and float32 accumulation. Real input and output are exploited: the
first product reads a real tile (2 real matmuls instead of 4), the last one writes only the
real part (2 instead of 4). Causal zero padding is folded into the factors: the input
occupies the first ``m_in`` of ``N1`` rows, so the first product uses ``F_N1[:, :m_in]``,
and only the first ``m_out`` output rows (those inside ``L``) are computed.

The functions here run on arrays of any leading batch shape and are also the in-kernel
bodies of the Pallas kernels (:mod:`spectrax.kernels.fft_conv.gpu`,
:mod:`spectrax.kernels.fft_conv.tpu`): what the kernels compute is exactly
:func:`monarch_conv`.

Limits: two levels only (no outer third factor), so the dense factors grow like
``sqrt(N)``; :data:`MAX_LENGTH` bounds the supported ``L``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

# Two-level plans only: beyond this, the dense N1 x N1 factor (N1 ~ sqrt(4L)) no longer fits
# on-chip memory and an outer decomposition step would be needed (not implemented).
MAX_LENGTH = 1 << 16

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class MonarchPlan:
    """Shape of a two-level DFT-as-matmul convolution.

    Attributes:
        length: the sequence length ``L``.
        causal: linear (zero-padded) or circular convolution.
        n1: rows of the ``(N1, N2)`` layout (first, column-wise DFT).
        n2: columns (second, row-wise DFT); the lane dimension.
        m_in: rows that hold input (``ceil(L / n2)`` rounded up; ``n1 // 2`` if causal).
        m_out: rows of output computed (``m_in``).
    """

    length: int
    causal: bool
    n1: int
    n2: int
    m_in: int
    m_out: int

    @property
    def fft_size(self) -> int:
        return self.n1 * self.n2

    @property
    def padded_length(self) -> int:
        """``m_in * n2 >= L``: inputs are zero-padded to this many samples."""
        return self.m_in * self.n2


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x - 1).bit_length())


def plan_monarch(
    length: int, *, causal: bool, min_n2: int = 128, min_rows: int = 8, pow2: bool = False
) -> MonarchPlan | None:
    """Choose ``N = N1 * N2`` for an ``L``-point convolution, or ``None`` if unsupported.

    Causal: ``N = 2 * m_in * N2 >= 2L >= L + K - 1`` (no wrap-around for any ``K <= L``).
    Circular: ``N = L`` exactly, so ``L`` must be a multiple of ``N2``.

    Args:
        length: ``L``, ``1 <= L <= MAX_LENGTH``.
        causal: linear or circular convolution.
        min_n2: smallest lane dimension (128 for TPU lanes, 16 for GPU tensor-core tiles).
        min_rows: smallest number of input rows (sublane / MMA tile).
        pow2: round ``m_in`` to a power of two (Triton block shapes must be powers of two).
    """
    if not 1 <= length <= MAX_LENGTH:
        return None
    n2 = max(min_n2, _next_pow2(math.ceil(math.sqrt(length))))
    rows = math.ceil(length / n2)
    if causal:
        m = _next_pow2(max(rows, min_rows)) if pow2 else min_rows * math.ceil(rows / min_rows)
        return MonarchPlan(length, True, 2 * m, n2, m, m)
    # circular: N = L, try lane sizes from the chosen one down to min_n2
    while n2 >= min_n2:
        n1 = length // n2
        if length % n2 == 0 and (not pow2 or n1 == _next_pow2(n1)):
            return MonarchPlan(length, False, n1, n2, n1, n1)
        n2 //= 2
    return None


class MonarchFactors(NamedTuple):
    """DFT factors and twiddles of a plan, float32, real and imaginary parts separate.

    ``fin`` is ``F_N1[:, :m_in]`` (N1, m_in); ``f2`` is ``F_N2`` (N2, N2); ``tw`` the twiddles
    (N1, N2); ``fout`` is ``F_N1[:m_out, :] / N`` (m_out, N1), used conjugated in the inverse.
    """

    fin_r: Array
    fin_i: Array
    f2_r: Array
    f2_i: Array
    tw_r: Array
    tw_i: Array
    fout_r: Array
    fout_i: Array


def _dft(n: int) -> np.ndarray:
    j = np.arange(n)
    # (j * k) mod n keeps the angle small and the factor exact to float64 rounding
    return np.exp(-2j * np.pi * ((j[:, None] * j[None, :]) % n) / n)


def monarch_factors(plan: MonarchPlan, m_out: int | None = None) -> MonarchFactors:
    """Factors and twiddles for ``plan`` (``m_out`` overrides the output rows, e.g. for a
    short filter's gradient that needs only ``ceil(K / N2)`` rows)."""
    n1, n2 = plan.n1, plan.n2
    rows = plan.m_out if m_out is None else m_out
    f1 = _dft(n1)
    f2 = _dft(n2)
    tw = np.exp(
        -2j
        * np.pi
        * ((np.arange(n1)[:, None] * np.arange(n2)[None, :]) % plan.fft_size)
        / plan.fft_size
    )
    fin = f1[:, : plan.m_in]
    fout = f1[:rows, :] / plan.fft_size
    parts = []
    for a in (fin, f2, tw, fout):
        parts += [jnp.asarray(a.real, jnp.float32), jnp.asarray(a.imag, jnp.float32)]
    return MonarchFactors(*parts)


def _lift(x: Array, ndim: int) -> Array:
    """Explicit broadcasting of a factor over leading batch axes (rank promotion is strict)."""
    return x.reshape((1,) * (ndim - x.ndim) + tuple(x.shape))


def _left(f: Array, x: Array) -> Array:
    """``f @ x`` over the last two axes of ``x`` (any leading batch), float32 accumulation."""
    return jnp.einsum(
        "ij,...jk->...ik", f, x, precision=_HIGHEST, preferred_element_type=jnp.float32
    )


def _right(x: Array, f: Array) -> Array:
    return jnp.einsum(
        "...ij,jk->...ik", x, f, precision=_HIGHEST, preferred_element_type=jnp.float32
    )


def monarch_forward(
    x: Float[Array, "*batch m n2"], fac: MonarchFactors
) -> tuple[Float[Array, "*batch n1 n2"], Float[Array, "*batch n1 n2"]]:
    """DFT of a real ``(m_in, N2)`` tile (zero rows below) into kernel order ``(N1, N2)``."""
    x = x.astype(jnp.float32)
    br = _left(fac.fin_r, x)
    bi = _left(fac.fin_i, x)
    tr, ti = _lift(fac.tw_r, br.ndim), _lift(fac.tw_i, br.ndim)
    br, bi = br * tr - bi * ti, br * ti + bi * tr
    cr = _right(br, fac.f2_r) - _right(bi, fac.f2_i)
    ci = _right(br, fac.f2_i) + _right(bi, fac.f2_r)
    return cr, ci


def monarch_inverse_real(
    cr: Float[Array, "*batch n1 n2"], ci: Float[Array, "*batch n1 n2"], fac: MonarchFactors
) -> Float[Array, "*batch m n2"]:
    """Real part of the inverse DFT of a kernel-order spectrum, first ``m_out`` rows."""
    dr = _right(cr, fac.f2_r) + _right(ci, fac.f2_i)
    di = _right(ci, fac.f2_r) - _right(cr, fac.f2_i)
    tr, ti = _lift(fac.tw_r, dr.ndim), _lift(fac.tw_i, dr.ndim)
    dr, di = dr * tr + di * ti, di * tr - dr * ti
    return _left(fac.fout_r, dr) + _left(fac.fout_i, di)


def monarch_conv_tile(
    x: Array, kr: Array, ki: Array, fac: MonarchFactors, *, conj_filter: bool = False
) -> Array:
    """``irfft(X * K)`` (or ``X * conj(K)``: a correlation) of one tile, first ``m_out`` rows."""
    xr, xi = monarch_forward(x, fac)
    sign = -1.0 if conj_filter else 1.0
    ki = sign * ki
    return monarch_inverse_real(xr * kr - xi * ki, xr * ki + xi * kr, fac)


def monarch_xcorr_tile(a: Array, b: Array, fac: MonarchFactors) -> Array:
    """Circular cross-correlation ``c[s] = sum_t a[t+s] b[t]`` (``irfft(A conj(B))``) of two
    real tiles, first ``m_out`` rows (the filter gradient ``dk = corr(g, u)[:K]``)."""
    ar, ai = monarch_forward(a, fac)
    br, bi = monarch_forward(b, fac)
    return monarch_inverse_real(ar * br + ai * bi, ai * br - ar * bi, fac)


def to_tiles(x: Array, plan: MonarchPlan) -> Array:
    """``(..., L)`` -> zero-padded ``(..., m_in, N2)`` (a free reshape when ``L`` fills it)."""
    pad = plan.padded_length - x.shape[-1]
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], plan.m_in, plan.n2)


def from_tiles(y: Array, length: int) -> Array:
    """``(..., m, N2)`` -> ``(..., length)``."""
    return y.reshape(*y.shape[:-2], y.shape[-2] * y.shape[-1])[..., :length]


def filter_spectrum(
    k: Float[Array, "*kbatch K"], plan: MonarchPlan
) -> tuple[Float[Array, "*kbatch n1 n2"], Float[Array, "*kbatch n1 n2"]]:
    """The filter's DFT in kernel order ``(N1, N2)``, computed once per call (``K <= L``)."""
    fac = monarch_factors(plan)
    return monarch_forward(to_tiles(k.astype(jnp.float32), plan), fac)


def monarch_conv(
    u: Float[Array, "*batch L"],
    k: Float[Array, "*batch K"],
    *,
    causal: bool = True,
    plan: MonarchPlan | None = None,
) -> Float[Array, "*batch L"]:
    """FFT convolution as DFT matrix products: equals ``fft_conv(u, k, causal=causal)``.

    Plain-jnp reference of what the Pallas kernels compute (same plan, same factors, same
    order of operations); ``u`` and ``k`` must have equal leading shapes. Output float32.
    """
    length = u.shape[-1]
    plan = plan or plan_monarch(length, causal=causal)
    if plan is None:
        raise ValueError(
            f"no two-level DFT plan for L={length}, causal={causal}; expected 1 <= L <= "
            f"{MAX_LENGTH} (and L a multiple of 128 when causal=False)."
        )
    fac = monarch_factors(plan)
    kr, ki = filter_spectrum(k, plan)
    return from_tiles(monarch_conv_tile(to_tiles(u, plan), kr, ki, fac), length)
