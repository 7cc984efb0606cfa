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

Also here: complex-input rows (:func:`monarch_forward_complex`, :func:`monarch_inverse_complex`),
the inner transforms of the three-level plan for long sequences
(:mod:`spectrax.kernels.fft_conv.outer`) and their roots of unity built in the program
(:func:`unit_roots`); frequency-sparse plans (``MonarchPlan.cols``: only
the spectrum columns of a low band are computed, see :func:`band_mask`); and three matmul
precisions (:data:`PRECISIONS`).

Limits: two levels, so the dense factors grow like ``sqrt(N)``; :data:`MAX_LENGTH` bounds the
``L`` of one two-level plan; longer sequences take the outer decomposition step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

# Largest L of a two-level plan: beyond it the dense N1 x N1 factor (N1 ~ sqrt(4L)) no longer
# fits on-chip memory, and spectrax.kernels.fft_conv.outer adds an outer decomposition step.
MAX_LENGTH = 1 << 16

_HIGHEST = jax.lax.Precision.HIGHEST

# Matmul precisions of the DFT products (float32 accumulation in all three):
#   "f32":     float32 operands at HIGHEST precision (exact float32 products; on a GPU this
#              is not a tensor-core instruction),
#   "bf16_3x": each float32 operand split into bfloat16 hi + lo parts, three bfloat16
#              products (hi*hi + hi*lo + lo*hi) on tensor cores / MXU; hi + lo keeps 16 of
#              float32's 24 significant bits: relative error about 5e-6 against float64,
#              not float32's 2e-7 (fft_conv, L = 256 .. 4096),
#   "bf16":    one bfloat16 product (operands rounded to 8 mantissa bits): fastest, about 3e-3.
PRECISIONS = ("f32", "bf16_3x", "bf16")


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
        cols: spectrum columns kept (``None``: all ``n2``). A frequency-sparse plan keeps
            ``cols // 2`` columns at each end: the natural frequencies ``|f| < F`` with
            ``F = N1 * cols // 2`` (:func:`band_mask`); the others are never computed.
    """

    length: int
    causal: bool
    n1: int
    n2: int
    m_in: int
    m_out: int
    cols: int | None = None

    @property
    def fft_size(self) -> int:
        return self.n1 * self.n2

    @property
    def spectrum_cols(self) -> int:
        """Columns of the kernel-order spectrum ``(N1, spectrum_cols)``."""
        return self.n2 if self.cols is None else self.cols

    def kept_columns(self) -> np.ndarray:
        """Indices of the kept spectrum columns (all ``N2`` for a dense plan)."""
        if self.cols is None:
            return np.arange(self.n2)
        half = self.cols // 2
        return np.concatenate([np.arange(half), np.arange(self.n2 - half, self.n2)])

    def with_bandwidth(self, bandwidth: float | int, *, multiple: int) -> MonarchPlan:
        """The frequency-sparse version of this plan keeping at least the fraction
        ``bandwidth`` of the band (``|f| < bandwidth * N / 2``): ``cols`` is rounded up to a
        multiple of ``multiple`` (the kernel's lane/tile size); ``>= n2`` gives a dense plan."""
        need = math.ceil(bandwidth * self.n2 / 2) * 2
        cols = max(multiple, multiple * math.ceil(need / multiple))
        return dataclasses.replace(self, cols=None if cols >= self.n2 else cols)

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

    ``fin`` is ``F_N1[:, :m_in]`` (N1, m_in); ``f2`` is ``F_N2[:, S]`` (N2, cols) for the kept
    columns ``S`` (all of them in a dense plan), used transposed and conjugated in the
    inverse; ``tw`` the twiddles (N1, N2); ``fout`` is ``F_N1[:m_out, :] / N`` (m_out, N1),
    used conjugated in the inverse.
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


def unit_roots(e: Array, n: int) -> tuple[Array, Array]:
    """``exp(-2 pi i e / n)`` for an integer array ``e >= 0``, built in the program (no table).

    The exponent is reduced exactly in int32 (``e mod n``, then to a quadrant and to an angle
    ``theta <= pi / 4`` by the symmetries ``exp(-i pi/2) = -i`` and ``cos(pi/2 - t) = sin(t)``), so
    float32 ``cos`` / ``sin`` only see a small angle: the error stays at the level of a rounded
    float64 table (about one float32 ulp; a large angle such as ``2 pi (N/2 - 1) / N`` in float32
    costs several), which :func:`~spectrax.kernels.fft_conv.outer` relies on for its
    ``(P/2 + 1) x M`` twiddles (tens of MB as a constant at ``L = 2^22``).

    Args:
        e: int32 exponents, ``0 <= e < 2^29`` (``4 (e mod n)`` must fit int32).
        n: the root's order, ``1 <= n < 2^29``.

    Returns:
        ``(real, imag)``, float32, of ``e``'s shape.
    """
    e = e.astype(jnp.int32) % n
    four = 4 * e
    quad = four // n
    r = four - quad * n  # the angle within the quadrant is (pi / 2) * r / n, r in [0, n)
    flip = 2 * r > n
    r = jnp.where(flip, n - r, r)  # (pi / 2) * r / n <= pi / 4
    theta = r.astype(jnp.float32) * jnp.float32(math.pi / (2 * n))
    c, s = jnp.cos(theta), jnp.sin(theta)
    c, s = jnp.where(flip, s, c), jnp.where(flip, c, s)
    # cos and sin of the whole angle: a quarter turn maps (c, s) to (-s, c)
    first, second, third = quad == 1, quad == 2, quad == 3
    cos = jnp.where(first, -s, jnp.where(second, -c, jnp.where(third, s, c)))
    sin = jnp.where(first, c, jnp.where(second, -s, jnp.where(third, -c, s)))
    return cos, -sin


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
    f2 = f2[:, plan.kept_columns()]
    fout = f1[:rows, :] / plan.fft_size
    parts = []
    for a in (fin, f2, tw, fout):
        parts += [jnp.asarray(a.real, jnp.float32), jnp.asarray(a.imag, jnp.float32)]
    return MonarchFactors(*parts)


def _lift(x: Array, ndim: int) -> Array:
    """Explicit broadcasting of a factor over leading batch axes (rank promotion is strict)."""
    return x.reshape((1,) * (ndim - x.ndim) + tuple(x.shape))


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}; got {precision!r}.")
    return precision


def _dot(spec: str, a: Array, b: Array, precision: str) -> Array:
    """``einsum(spec, a, b)`` with float32 accumulation at one of :data:`PRECISIONS`."""
    f32, bf16 = jnp.float32, jnp.bfloat16
    if precision == "f32":
        return jnp.einsum(spec, a, b, precision=_HIGHEST, preferred_element_type=f32)
    a = a.astype(f32)
    b = b.astype(f32)
    ah, bh = a.astype(bf16), b.astype(bf16)
    out = jnp.einsum(spec, ah, bh, preferred_element_type=f32)
    if precision == "bf16":
        return out
    al = (a - ah.astype(f32)).astype(bf16)
    bl = (b - bh.astype(f32)).astype(bf16)
    out = out + jnp.einsum(spec, ah, bl, preferred_element_type=f32)
    return out + jnp.einsum(spec, al, bh, preferred_element_type=f32)


def _left(f: Array, x: Array, precision: str = "f32") -> Array:
    """``f @ x`` over the last two axes of ``x`` (any leading batch), float32 accumulation."""
    return _dot("ij,...jk->...ik", f, x, precision)


def _right(x: Array, f: Array, precision: str = "f32") -> Array:
    """``x @ f``."""
    return _dot("...ij,jk->...ik", x, f, precision)


def _right_t(x: Array, f: Array, precision: str = "f32") -> Array:
    """``x @ f.T`` (no transpose materialised)."""
    return _dot("...ij,kj->...ik", x, f, precision)


def _twiddle(br: Array, bi: Array, fac: MonarchFactors, *, conj: bool) -> tuple[Array, Array]:
    tr, ti = _lift(fac.tw_r, br.ndim), _lift(fac.tw_i, br.ndim)
    if conj:
        return br * tr + bi * ti, bi * tr - br * ti
    return br * tr - bi * ti, br * ti + bi * tr


def _columns(br: Array, bi: Array, fac: MonarchFactors, p: str) -> tuple[Array, Array]:
    """``B @ F2[:, S]`` (complex)."""
    cr = _right(br, fac.f2_r, p) - _right(bi, fac.f2_i, p)
    ci = _right(br, fac.f2_i, p) + _right(bi, fac.f2_r, p)
    return cr, ci


def _columns_inverse(cr: Array, ci: Array, fac: MonarchFactors, p: str) -> tuple[Array, Array]:
    """``C @ conj(F2[:, S]).T``: back from the kept columns to all ``N2``."""
    dr = _right_t(cr, fac.f2_r, p) + _right_t(ci, fac.f2_i, p)
    di = _right_t(ci, fac.f2_r, p) - _right_t(cr, fac.f2_i, p)
    return dr, di


def monarch_forward(
    x: Float[Array, "*batch m n2"], fac: MonarchFactors, precision: str = "f32"
) -> tuple[Float[Array, "*batch n1 c"], Float[Array, "*batch n1 c"]]:
    """DFT of a real ``(m_in, N2)`` tile (zero rows below) into kernel order ``(N1, cols)``."""
    x = x.astype(jnp.float32)
    br = _left(fac.fin_r, x, precision)
    bi = _left(fac.fin_i, x, precision)
    br, bi = _twiddle(br, bi, fac, conj=False)
    return _columns(br, bi, fac, precision)


def monarch_inverse_real(
    cr: Float[Array, "*batch n1 c"],
    ci: Float[Array, "*batch n1 c"],
    fac: MonarchFactors,
    precision: str = "f32",
) -> Float[Array, "*batch m n2"]:
    """Real part of the inverse DFT of a kernel-order spectrum, first ``m_out`` rows."""
    dr, di = _columns_inverse(cr, ci, fac, precision)
    dr, di = _twiddle(dr, di, fac, conj=True)
    return _left(fac.fout_r, dr, precision) + _left(fac.fout_i, di, precision)


def monarch_forward_complex(
    xr: Float[Array, "*batch m n2"],
    xi: Float[Array, "*batch m n2"],
    fac: MonarchFactors,
    precision: str = "f32",
) -> tuple[Float[Array, "*batch n1 c"], Float[Array, "*batch n1 c"]]:
    """DFT of a complex ``(m_in, N2)`` tile (real and imaginary parts) into kernel order."""
    xr, xi = xr.astype(jnp.float32), xi.astype(jnp.float32)
    br = _left(fac.fin_r, xr, precision) - _left(fac.fin_i, xi, precision)
    bi = _left(fac.fin_r, xi, precision) + _left(fac.fin_i, xr, precision)
    br, bi = _twiddle(br, bi, fac, conj=False)
    return _columns(br, bi, fac, precision)


def monarch_inverse_complex(
    cr: Float[Array, "*batch n1 c"],
    ci: Float[Array, "*batch n1 c"],
    fac: MonarchFactors,
    precision: str = "f32",
) -> tuple[Float[Array, "*batch m n2"], Float[Array, "*batch m n2"]]:
    """Inverse DFT of a kernel-order spectrum, first ``m_out`` rows, complex."""
    dr, di = _columns_inverse(cr, ci, fac, precision)
    dr, di = _twiddle(dr, di, fac, conj=True)
    yr = _left(fac.fout_r, dr, precision) + _left(fac.fout_i, di, precision)
    yi = _left(fac.fout_r, di, precision) - _left(fac.fout_i, dr, precision)
    return yr, yi


def _product(xr, xi, kr, ki, conj_filter: bool):
    ki = -ki if conj_filter else ki
    return xr * kr - xi * ki, xr * ki + xi * kr


def monarch_conv_tile(
    x: Array,
    kr: Array,
    ki: Array,
    fac: MonarchFactors,
    *,
    conj_filter: bool = False,
    precision: str = "f32",
) -> Array:
    """``irfft(X * K)`` (or ``X * conj(K)``: a correlation) of one tile, first ``m_out`` rows."""
    xr, xi = monarch_forward(x, fac, precision)
    return monarch_inverse_real(*_product(xr, xi, kr, ki, conj_filter), fac, precision)


def monarch_cconv_tile(
    xr: Array,
    xi: Array,
    kr: Array,
    ki: Array,
    fac: MonarchFactors,
    *,
    conj_filter: bool = False,
    precision: str = "f32",
) -> tuple[Array, Array]:
    """``ifft(fft(x) * K)`` of a complex tile (circular plan): the inner step of the
    three-level transform, where each row carries its own slice of the filter spectrum."""
    cr, ci = monarch_forward_complex(xr, xi, fac, precision)
    return monarch_inverse_complex(*_product(cr, ci, kr, ki, conj_filter), fac, precision)


def monarch_xcorr_tile(a: Array, b: Array, fac: MonarchFactors, precision: str = "f32") -> Array:
    """Circular cross-correlation ``c[s] = sum_t a[t+s] b[t]`` (``irfft(A conj(B))``) of two
    real tiles, first ``m_out`` rows (the filter gradient ``dk = corr(g, u)[:K]``)."""
    ar, ai = monarch_forward(a, fac, precision)
    br, bi = monarch_forward(b, fac, precision)
    return monarch_inverse_real(ar * br + ai * bi, ai * br - ar * bi, fac, precision)


def band_mask(plan: MonarchPlan) -> np.ndarray:
    """The multiplier a frequency-sparse plan applies to the filter's spectrum, as a float64
    mask over the ``N // 2 + 1`` rfft frequencies of the size-``N`` transform.

    It is 1 for ``|f| < F`` (``F = N1 * cols // 2``), 1/2 at ``|f| = F`` (the plan keeps
    ``-F`` but not ``+F``; the real part of the output averages the two) and 0 above: the
    convolution is the one with the band-limited filter ``irfft(rfft(k, N) * mask, N)``.
    A dense plan returns all ones.
    """
    n = plan.fft_size
    mask = np.ones(n // 2 + 1)
    if plan.cols is None:
        return mask
    f = plan.n1 * (plan.cols // 2)
    freqs = np.arange(n // 2 + 1)
    return np.where(freqs < f, 1.0, np.where(freqs == f, 0.5, 0.0))


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
) -> tuple[Float[Array, "*kbatch n1 c"], Float[Array, "*kbatch n1 c"]]:
    """The filter's DFT in kernel order ``(N1, cols)``, computed once per call (``K <= L``),
    at float32 precision whatever the kernels' matmul precision."""
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
    order of operations); ``u`` and ``k`` must have equal leading shapes and ``K <= L``. A
    given ``plan`` must be one of this convolution: ``causal`` as here, covering ``L``
    (``padded_length >= L``; a circular plan has ``fft_size == L``). Output float32.
    """
    length, ksize = u.shape[-1], k.shape[-1]
    if not 1 <= ksize <= length:
        raise ValueError(
            f"`k` must have 1 <= K <= L={length} taps (L: the length of `u`); got {k.shape=}."
        )
    if plan is None:
        plan = plan_monarch(length, causal=causal)
        if plan is None:
            raise ValueError(
                f"`u` has length L={length}, which has no two-level DFT plan for "
                f"causal={causal}; expected 1 <= L <= {MAX_LENGTH} (and L a multiple of 128 "
                "when causal=False)."
            )
    elif (
        plan.causal != causal
        or plan.padded_length < length
        or (not causal and plan.fft_size != length)
    ):
        kind = "causal plan with padded_length >= L" if causal else "circular plan of size L"
        raise ValueError(
            f"`plan` must be a {kind} (L={length}, the length of `u`) for causal={causal}; got "
            f"{plan}."
        )
    fac = monarch_factors(plan)
    kr, ki = filter_spectrum(k, plan)
    return from_tiles(monarch_conv_tile(to_tiles(u, plan), kr, ki, fac), length)
