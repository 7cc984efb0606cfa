"""Convolution kernels of discrete state-space systems: Vandermonde (diagonal, chunked over
length), DPLR (S4's Cauchy kernel at the roots of unity with a Woodbury correction), and the
dense power sum they are checked against; continuous and discrete transfer functions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Inexact

from spectrax._checks import (
    as_jax,
    check_array,
    check_inexact,
    check_not_bool,
    check_positive_int,
    complex_dtype,
    result_dtype,
)
from spectrax.ssm._discretize import _as_dt, _wider


def vandermonde_kernel(
    Lambda_bar: Inexact[Array, "*#batch N"],
    W: Inexact[Array, "*#batch N"],
    length: int,
    *,
    chunk: int | None = None,
    log_Lambda_bar: Inexact[Array, "*#batch N"] | None = None,
    negated: Bool[Array, "*#batch N"] | None = None,
) -> Inexact[Array, "*batch L"]:
    """``K[..., l] = Σ_n W[..., n] Λ̄[..., n]^l`` for ``l < length`` (diagonal SSM kernel).

    Gu et al., 2022, "On the Parameterization and Initialization of Diagonal State Space
    Models" (S4D's Vandermonde kernel). With ``W = C ⊙ B̄`` this is ``C Λ̄^l B̄``. With
    ``l = c chunk + j`` (``j < chunk``) the powers are ``Λ̄^(c chunk) Λ̄^j``, each factor
    ``exp`` of its step count times ``log Λ̄`` (relative error about ``l`` ulps, as
    ``exp(l log Λ̄)``): ``N (chunk + L / chunk)`` exponentials instead of ``N L``, and the sum
    over ``n`` one ``(L / chunk, N) @ (N, chunk)`` matrix product; the ``N x L`` Vandermonde
    matrix is never materialised (memory ``N (chunk + L / chunk)`` plus the output, per batch
    element).

    Args:
        Lambda_bar: discrete eigenvalues ``(..., N)``, complex (real input is promoted; an
            eigenvalue exactly 0 contributes at ``l = 0`` only).
        W: coefficients ``(..., N)``, same rank (broadcast explicitly), complex.
        length: kernel length ``L >= 1``.
        chunk: time steps per block (``>= 1``); ``None`` (default): ``ceil(sqrt(L))``, the
            fewest exponentials.
        log_Lambda_bar: ``log Λ̄`` from the continuous system
            (:func:`~spectrax.ssm.log_discrete_eigenvalues`), same shape as ``Lambda_bar``;
            used for the powers in place of ``log(Lambda_bar)``, which loses the digits of a
            slow mode's ``Λ̄`` rounded near 1 (about 15x less error in float32 at
            ``dt = 1e-3``).
        negated: with ``log_Lambda_bar``, where ``log_Lambda_bar`` is ``log(-Λ̄)``: the powers
            are ``(-1)^l exp(l log(-Λ̄))`` there (``log_discrete_eigenvalues(...,
            half_turn=True)`` gives both). The error of ``exp(l log Λ̄)`` grows with ``l`` times
            the phase, which is near ``π`` for a ``Λ̄`` near -1 (bilinear at ``|Λ dt| > 2``).

    Returns:
        complex ``(broadcast batch, L)``.
    """
    length = check_positive_int("length", length)
    if chunk is not None:
        chunk = min(check_positive_int("chunk", chunk), length)
    check_array("Lambda_bar", Lambda_bar)
    check_array("W", W)
    if log_Lambda_bar is not None:
        check_array("log_Lambda_bar", log_Lambda_bar)
    if negated is not None:
        check_array("negated", negated)
        if log_Lambda_bar is None or negated.shape != log_Lambda_bar.shape:
            raise ValueError(
                "`negated` needs `log_Lambda_bar` and its shape (it marks where that is "
                f"log(-Λ̄)); got negated.shape={negated.shape}, log_Lambda_bar.shape="
                f"{None if log_Lambda_bar is None else log_Lambda_bar.shape}."
            )
        if negated.dtype != jnp.bool_:
            raise TypeError(f"`negated` must be a boolean array; got dtype {negated.dtype}.")
    if Lambda_bar.ndim == 0 or W.ndim == 0:
        raise ValueError(
            f"`Lambda_bar` and `W` must have shape (..., N); got {Lambda_bar.shape=}, {W.shape=}."
        )
    Lambda_bar, W, log_Lambda_bar = as_jax(Lambda_bar), as_jax(W), as_jax(log_Lambda_bar)
    for name, x in (("Lambda_bar", Lambda_bar), ("W", W), ("log_Lambda_bar", log_Lambda_bar)):
        if x is not None:
            check_not_bool(name, x)
    if Lambda_bar.ndim != W.ndim:
        raise ValueError(
            f"`Lambda_bar` and `W` must have the same rank; got {Lambda_bar.shape=}, {W.shape=}."
        )
    try:
        shape = np.broadcast_shapes(Lambda_bar.shape, W.shape)
    except ValueError:
        raise ValueError(
            f"`Lambda_bar` and `W` must broadcast (the same N, batch dims 1 or equal); got "
            f"{Lambda_bar.shape=}, {W.shape=}."
        ) from None
    dtype = result_dtype(Lambda_bar.dtype, W.dtype)  # explicit: also under strict promotion
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"`Lambda_bar` or `W` must be floating-point or complex; got {Lambda_bar.dtype=}, "
            f"{W.dtype=}."
        )
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        # a negative real eigenvalue has no real logarithm: work in the complex plane
        dtype = complex_dtype(jnp.finfo(dtype).dtype)
    lam = Lambda_bar.astype(dtype)
    # An eigenvalue that underflowed to 0 (ZOH with Re(Λ) dt below about -87 in float32)
    # contributes at l = 0 only; its log would be -inf and 0 * -inf = NaN at l = 0, so take it
    # as the smallest normal number instead (whose powers l >= 1 underflow to 0).
    tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    if log_Lambda_bar is None:
        log_lam = jnp.log(jnp.where(lam == 0, tiny, lam))
    else:
        if log_Lambda_bar.shape != Lambda_bar.shape:
            raise ValueError(
                f"`log_Lambda_bar` must have the shape of `Lambda_bar` {Lambda_bar.shape}; got "
                f"{log_Lambda_bar.shape}."
            )
        log_lam = log_Lambda_bar.astype(dtype)
        # Λ̄ = 0 (bilinear at Λ dt = -2) has log -inf: the same smallest normal number
        log_lam = jnp.where(jnp.real(log_lam) == -jnp.inf, jnp.log(tiny), log_lam)
    log_lam = jnp.broadcast_to(log_lam, shape)
    w = jnp.broadcast_to(W.astype(dtype), shape)
    if chunk is None:
        chunk = math.isqrt(length - 1) + 1  # ceil(sqrt(L)): the fewest exponentials
    if negated is not None:
        chunk += chunk % 2  # even: every block starts at an even step (see below)
    n_chunks = math.ceil(length / chunk)
    real = jnp.real(log_lam).dtype
    # l = c chunk + j: Λ̄^l = Λ̄^(c chunk) Λ̄^j, each factor one exponential of its exact step
    # count, so N (chunk + L / chunk) exponentials where exp(l log Λ̄) took N L, and the sum
    # over n is one matrix product per batch element, (L / chunk, N) @ (N, chunk)
    lead = (1,) * (len(shape) - 1)  # explicit ranks (also under rank promotion "raise")
    steps = jnp.arange(chunk, dtype=real).astype(dtype).reshape(lead + (chunk, 1))
    starts = (jnp.arange(n_chunks, dtype=real) * chunk).astype(dtype)
    inner = jnp.exp(log_lam[..., None, :] * steps)
    outer = jnp.exp(log_lam[..., None, :] * starts.reshape(lead + (n_chunks, 1)))
    outer = outer * w[..., None, :]
    if negated is not None:
        # (-1)^l where the log is log(-Λ̄), exact (unlike l π): every block starts at an even
        # step, so the sign is (-1)^j, on the flipped modes only
        odd = (jnp.arange(chunk) % 2 == 1).reshape(lead + (chunk, 1))
        flip = jnp.broadcast_to(negated, shape)[..., None, :] & odd
        inner = jnp.where(flip, -inner, inner)
    blocks = jnp.einsum("...cn,...jn->...cj", outer, inner)
    return blocks.reshape(shape[:-1] + (n_chunks * chunk,))[..., :length]


def dense_kernel(
    A_bar: Inexact[Array, "*#batch N N"],
    B_bar: Inexact[Array, "*#batch N"],
    C: Inexact[Array, "*#batch N"],
    length: int,
) -> Inexact[Array, "*batch L"]:
    """``K[l] = C Ā^l B̄`` by repeated multiplication (``O(L N^2)``): the naive reference, and
    the kernel of a dense system for which no structured algorithm applies (S4 with ZOH).
    The leading dims of ``A_bar``, ``B_bar`` and ``C`` broadcast together."""
    length = check_positive_int("length", length)
    for name, x in (("A_bar", A_bar), ("B_bar", B_bar), ("C", C)):
        check_array(name, x)
    A_bar, B_bar, C = as_jax(A_bar), as_jax(B_bar), as_jax(C)
    n = A_bar.shape[-1] if A_bar.ndim else 0
    lead = None
    if A_bar.ndim >= 2 and A_bar.shape[-2] == n and B_bar.ndim >= 1 and C.ndim >= 1:
        if B_bar.shape[-1] == n and C.shape[-1] == n:
            try:
                lead = np.broadcast_shapes(A_bar.shape[:-2], B_bar.shape[:-1], C.shape[:-1])
            except ValueError:
                lead = None
    if lead is None:
        raise ValueError(
            "expected A_bar (..., N, N), B_bar (..., N) and C (..., N) with broadcastable "
            f"leading dims; got {A_bar.shape=}, {B_bar.shape=}, {C.shape=}."
        )
    dtype = result_dtype(A_bar.dtype, B_bar.dtype, C.dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):  # booleans would sum with `or`
        raise TypeError(
            f"`A_bar`, `B_bar` or `C` must be floating-point or complex; got {A_bar.dtype=}, "
            f"{B_bar.dtype=}, {C.dtype=}."
        )
    # explicit broadcasting (also under rank-promotion="raise"); the scan carry keeps one shape
    a = jnp.broadcast_to(A_bar.astype(dtype), lead + (n, n))
    b = jnp.broadcast_to(B_bar.astype(dtype), lead + (n,))
    c = jnp.broadcast_to(C.astype(dtype), lead + (n,))

    def step(x, _):
        return jnp.einsum("...ij,...j->...i", a, x), jnp.sum(c * x, axis=-1)

    return jnp.moveaxis(jax.lax.scan(step, b, None, length=length)[1], 0, -1)


def dplr_kernel(
    Lambda: Inexact[Array, " N"],
    P: Inexact[Array, "r N"],
    B: Inexact[Array, " N"],
    C: Inexact[Array, "*batch N"],
    dt: Float[Array, "*batch"] | Float[Array, ""] | float,
    length: int,
) -> Inexact[Array, "*batch L"]:
    """Convolution kernel of the bilinear discretisation of ``A = diag(Λ) - P^T P̄`` (DPLR).

    Gu, Goel & Ré, 2022, "Efficiently Modeling Long Sequences with Structured State Spaces"
    (S4, Algorithm 1). The truncated generating function at ``z = ω^k``, ``ω = exp(-2πi/L)``,
    is ``K̂(z) = C̃ ((1-z)/dt I - (1+z)/2 A)^{-1} B`` with ``C̃ = C (I - Ā^L)``; the diagonal
    plus rank-``r`` resolvent is a Cauchy kernel ``Σ_n a_n b_n / ((1-z)/dt - (1+z)Λ_n/2)`` with a
    Woodbury correction, and ``K = ifft(K̂)``. Written with ``(1-z)/dt`` rather than S4's
    ``2/(1+z)`` prefactor so ``z = -1`` (even ``L``) is not singular, and ``z = 1`` as the
    geometric sum ``C (Σ_l Ā^l) B̄`` (no inverse of ``A``: even-N FouT's is singular). ``Ā^L``
    and that sum come from one doubling per channel (``O(N^3 log L)``); the Cauchy sums cost
    ``O(L N r^2)``; their ``(..., L, N)`` arrays are formed a block of frequencies at a time
    once they pass about 2^20 elements on a CPU (2^24 on a GPU or TPU), each block recomputed
    in the backward pass, so memory stays bounded as ``L`` grows (the official S4 uses a
    dedicated Cauchy kernel for this).

    Accuracy: at each frequency the pole nearest ``z`` is taken out of the Cauchy sums and the
    Woodbury correction is formed as a ratio of small determinants that stays finite as that
    pole reaches ``z`` (LegT and LagT have ``Re Λ = 0``, poles on the unit circle); ``1 - z``
    and ``(1 + z)/2`` come from the half angle in float64; the doubling squares ``Ā^(2^j) - I``
    where that is smaller than the power (an ``Ā`` near ``I`` keeps its digits). Measured in
    float32 against float64 on the same rounded inputs (relative 2-norm error, max over L in
    {1024, 4096, 16384} and dt in {1e-3, 1e-2, 0.1}): N = 16 and 64, every measure within
    ``1.5e-5`` (LegS ``2e-6``); N = 256, LegS ``1e-4``, LegT ``1.5e-4``, LagT ``3e-4``, FouT
    ``6e-4`` (at dt = 0.1; before these three changes LagT reached ``8e-3``, and LegS, LegT
    and FouT ``1e-4`` to ``5e-4`` at dt = 1e-3). Float64 agrees with the naive ``C Ā^l B̄`` to
    ``1e-11`` (N <= 64). Steps beyond S4's initial range (dt <= 0.1) cost float32 digits: at
    N = 64, L = 1024 (max over 4 channels) LegS ``4e-5`` at dt = 1, ``1.3e-3`` at 10, ``2e-2`` at
    100; LegT ``5e-5``, ``4e-4``, ``3e-2``; FouT ``2e-4`` to ``4e-4``; LagT below ``1e-4``
    (bilinear ``Ā``'s eigenvalues near -1). For such steps compute in float64, or use the
    layer's ``mode="scan"`` (float32 error below ``5e-6`` at N = 8, L = 16, dt up to 1e4).

    Args:
        Lambda: ``(N,)`` complex diagonal; P: ``(r, N)`` low-rank factor (complex);
        B: ``(N,)``; C: ``(..., N)`` output vectors (one per channel); dt: ``(...)`` steps > 0
        (or a scalar for all);
        length: ``L``.

    Returns:
        the complex kernel ``C Ā^l B̄``, shape ``(..., L)``; a real system's is ``Re`` of it.
    """
    length = check_positive_int("length", length)
    for name, x in (("Lambda", Lambda), ("P", P), ("B", B), ("C", C)):
        check_array(name, x)
    Lambda, P, B, C = (as_jax(x) for x in (Lambda, P, B, C))
    for name, x in (("Lambda", Lambda), ("P", P), ("B", B), ("C", C)):
        check_not_bool(name, x)
    n = Lambda.shape[-1] if Lambda.ndim == 1 else -1  # one (N,) diagonal shared by all channels
    if n < 0 or P.ndim != 2 or P.shape[-1] != n or B.shape != (n,) or C.shape[-1:] != (n,):
        raise ValueError(
            f"expected Lambda (N,), P (r, N), B (N,), C (..., N); got {Lambda.shape=}, "
            f"{P.shape=}, {B.shape=}, {C.shape=}."
        )
    dt_in, dt = dt, _as_dt(dt)  # finite and > 0 when concrete, as for the other discretisations
    if dt.ndim == 0:
        dt = jnp.broadcast_to(dt, C.shape[:-1])
    if dt.shape != C.shape[:-1]:
        raise ValueError(f"`dt` must have shape C.shape[:-1]={C.shape[:-1]}; got {dt.shape}.")
    # One complex dtype for all (a real Lambda, or a real P, B or C, is promoted; nothing
    # complex is cast to real): complex128 if any input, dt included, is 64-bit, else complex64.
    wide = any(jnp.dtype(x.dtype) in (jnp.float64, jnp.complex128) for x in (Lambda, P, B, C))
    wide = wide or _wider(dt_in, dt, jnp.float32)
    cdt = complex_dtype(jnp.float64 if wide else jnp.float32)
    lam, p, b = Lambda.astype(cdt), P.astype(cdt), B.astype(cdt)
    c = C.astype(cdt)
    lead = c.ndim - 1
    a = (jnp.diag(lam) - p.T @ jnp.conj(p)).reshape((1,) * lead + (n, n))
    eye = jnp.eye(n, dtype=cdt).reshape((1,) * lead + (n, n))
    d = dt.astype(cdt)[..., None, None]
    # Ā - I = (I - dt A/2)^{-1} dt A and B̄ from one solve (one LU of I - dt A/2; two solves
    # factor it twice). Ā itself would be I plus a small matrix (dt ||A|| << 1) rounded to the
    # digits of I: in float32 that rounding, carried through L powers of a far-from-normal Ā
    # (LagT), put C (I - Ā^L) 1e-3 off at N = 256, L = 16384, dt = 1e-3 (now 3e-6).
    both = jnp.linalg.solve(
        eye - 0.5 * d * a,
        jnp.concatenate([d * a, d * jnp.broadcast_to(b, c.shape)[..., None]], -1),
    )
    a_dif, b_bar = both[..., :n], both[..., n]
    c_tilde, k_one = _power_and_sum(a_dif, c, b_bar, length)

    # z = 1 (k = 0) is K̂(1) = C (Σ_{l<L} Ā^l) B̄, the geometric sum from the same doubling as
    # Ā^L: there the Cauchy denominators are -Λ_n, which vanish for measures with a zero
    # eigenvalue (FouT, odd-N LegT), and A itself may be singular (even-N FouT).
    m = length - 1
    # 1 - z and (1 + z)/2 at z = exp(-iθ), θ = 2πk/L, from the half angle in float64 (constants
    # of L): 1 - z = 2 sin²(θ/2) + i sin θ. Formed from a rounded z, 1 - z keeps no digit of its
    # real part at small k (cos θ rounds to 1 in float32 for k < L/5800), and (1 - z)/dt,
    # large for a small dt, is what a pole near z cancels against.
    half_angle = np.pi * np.arange(1, length) / length
    sin_full = np.sin(2.0 * half_angle)
    one_minus = 2.0 * np.sin(half_angle) ** 2 + 1j * sin_full
    half = np.cos(half_angle) ** 2 - 0.5j * sin_full
    dt_ = dt.astype(cdt).reshape(dt.shape + (1, 1))
    # Numerators of the Cauchy sums: x_a y_b with x = (c̃, p̄_1..p̄_r), y = (b, p_1..p_r), the
    # y_{b >= 1} columns scaled by (1 + z)/2 after the sum.
    rank = p.shape[0]
    size = 1 + rank
    lifted = (1,) * lead
    x = jnp.concatenate(
        [c_tilde[..., None, :], jnp.broadcast_to(jnp.conj(p), c_tilde.shape[:-1] + (rank, n))],
        axis=-2,
    )  # (..., 1 + r, N)
    y = jnp.concatenate([b[None], p], axis=0)  # (1 + r, N)
    w = (x[..., :, None, :] * y.reshape(lifted + (1,) + y.shape)).reshape(
        x.shape[:-2] + ((1 + rank) ** 2, n)
    )

    def at(one_minus: Array, half: Array) -> Array:
        """``K̂`` at the frequencies given by their ``1 - z`` and ``(1 + z)/2``, ``(..., F)``."""
        f = one_minus.shape[0]
        den = one_minus.reshape(lifted + (f, 1)) / dt_ - half.reshape(
            lifted + (f, 1)
        ) * lam.reshape(lifted + (1, n))
        half = half.reshape(lifted + (f, 1))
        # The pole nearest each z is taken out of every sum. Near a resonance (a pole of the
        # diagonal part close to a root of unity: LegT and LagT have Re Λ = 0) its term
        # dominates k00, k01, k10 and k11 alike, and k00 - k01 (1 + k11)^{-1} k10 cancels it
        # away: in float32 a kernel came out wrong in its leading digit (LegT N = 16,
        # L = 16384, dt = 1e-2). The term is rank one, x y / d, so the Woodbury form is a
        # ratio of bordered determinants in which d enters linearly and nothing is large:
        #   K̂ = det([[S, x*], [-y*, d]]) / det([[S_11, x*_1], [-y*_1, d]]),
        # S = [[s00, s01], [s10, I + s11]] the sums without the pole, x*, y* its numerators
        # (a bordered determinant is det([[S, x], [y, c]]) = c det S - y adj(S) x; the
        # Woodbury form is det(S + x y/d) / det(S_11 + x_1 y_1/d)).
        mag = jnp.real(den) ** 2 + jnp.imag(den) ** 2
        near = jnp.argmin(mag, axis=-1)  # (..., F)
        pole = jnp.arange(n).reshape(lifted + (1, n)) == near[..., None]
        # the inner `where` keeps an exact zero denominator (and its gradient) out of the sums
        r = jnp.where(pole, 0.0, 1.0 / jnp.where(pole, 1.0, den))
        d = jnp.take_along_axis(den, near[..., None], axis=-1)[..., 0]  # (..., F)
        # The sums share the denominators r: one product r @ W (r is read once; XLA otherwise
        # recomputes the complex division inside every consumer, 6x slower on CPU).
        sums = jnp.einsum("...ln,...qn->...lq", r, w).reshape(r.shape[:-1] + (size, size))
        scale = jnp.concatenate(
            [jnp.ones(half.shape, cdt), jnp.broadcast_to(half, half.shape[:-1] + (rank,))],
            axis=-1,
        )  # (..., F, 1 + r)
        ident = jnp.pad(jnp.eye(rank, dtype=cdt), ((1, 0), (1, 0))).reshape(
            lifted + (1, size, size)
        )
        s_mat = sums * scale[..., None, :] + ident
        x_pole = jnp.take_along_axis(x[..., None, :, :], near[..., None, None], axis=-1)[..., 0]
        y_pole = jnp.moveaxis(y[:, near], 0, -1) * scale  # (..., F, 1 + r)
        bordered = [
            [s_mat[..., i, j] for j in range(size)] + [x_pole[..., i]] for i in range(size)
        ] + [[-y_pole[..., j] for j in range(size)] + [d]]
        return _det([row[:] for row in bordered]) / _det([row[1:] for row in bordered[1:]])

    # The sums hold (..., F, N) complex arrays, several of them kept for the backward pass:
    # all L - 1 frequencies at once took 1.2 GB of XLA temporaries for H = 64, N = 64,
    # L = 16384 (98 MB in blocks). Blocks of frequencies (`_frequency_block`), each recomputed
    # in the backward pass (``jax.checkpoint``), bound that by the block; on a CPU they are no
    # slower.
    block = _frequency_block(m, math.prod(c_tilde.shape[:-1]) * n)
    if block >= m:
        k_hat = at(jnp.asarray(one_minus, cdt), jnp.asarray(half, cdt))
    else:
        blocks = -(-m // block)

        def split(v: np.ndarray) -> Array:
            # the last block padded with copies of the last frequency (finite), cut off below
            v = np.concatenate([v, np.repeat(v[-1:], blocks * block - m)])
            return jnp.asarray(v.reshape(blocks, block), cdt)

        parts = jax.lax.map(
            jax.checkpoint(lambda zs: at(*zs)), (split(one_minus), split(half))
        )  # (blocks, ..., block)
        k_hat = jnp.moveaxis(parts, 0, -2).reshape(parts.shape[1:-1] + (blocks * block,))
        k_hat = k_hat[..., :m]
    return jnp.fft.ifft(jnp.concatenate([k_one[..., None], k_hat], axis=-1), axis=-1)


# Elements (batch x frequencies x N) of each of the Cauchy sums' arrays per block of
# frequencies in `dplr_kernel`. On a CPU 2^20 (8 MiB complex64): measured on a 2-core CPU
# (S4 kernel forward + backward, interleaved), H = N = 32, L = 4096: 193 ms and 34 MiB of XLA
# temporaries against 192 ms and 86 MiB in one block; H = N = 64, L = 16384: 1.93 s and 98 MiB
# against 2.06 s and 1.2 GB. On a GPU or TPU (untimed there) 2^24, so that one block holds
# every frequency up to sizes such as H = 256, N = 64, L = 1024 and only longer kernels, whose
# arrays run into GBs, are split.
_DPLR_BLOCK_ELEMENTS = {"cpu": 2**20}
_DPLR_BLOCK_ELEMENTS_ACCELERATOR = 2**24


def _frequency_block(frequencies: int, per_frequency: int) -> int:
    """Frequencies per block of ``dplr_kernel``'s sums on the default backend: all of them when
    they fit its element budget, else that budget's worth, at least 16."""
    budget = _DPLR_BLOCK_ELEMENTS.get(jax.default_backend(), _DPLR_BLOCK_ELEMENTS_ACCELERATOR)
    if frequencies * per_frequency <= budget:
        return frequencies
    return max(16, budget // per_frequency)


def _det(rows: list[list[Array]]) -> Array:
    """Determinant of a small matrix given as rows of equally shaped arrays (a batch of
    matrices), by cofactor expansion along the first row for sizes up to 4 (DPLR rank 1 or 2),
    where batched LU of tiny matrices is far slower on CPU, forward and backward."""
    if len(rows) == 1:
        return rows[0][0]
    if len(rows) == 2:
        return rows[0][0] * rows[1][1] - rows[0][1] * rows[1][0]
    if len(rows) > 4:  # rank >= 3: cofactor expansion grows factorially; batched LU instead
        return jnp.linalg.det(jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2))
    total = None
    for j, head in enumerate(rows[0]):
        minor = _det([row[:j] + row[j + 1 :] for row in rows[1:]])
        term = head * minor
        total = term if total is None else (total - term if j % 2 else total + term)
    return total


def _power_and_sum(e: Array, c: Array, b: Array, power: int) -> tuple[Array, Array]:
    """``(c (I - a^power), c (Σ_{l<power} a^l) b)`` with ``a = I + e``, for row vectors ``c`` and
    columns ``b`` (``(..., N)`` each, ``e`` ``(..., N, N)``), from the squarings ``a^(2^j)``
    alone: ``log2 power`` matrix products, the rest matrix-vector (``O(N^3 log power)``; forming
    the power and the geometric sum as matrices by doubling takes about 2.3x the matrix
    products).

    With ``T_j = Σ_{l<2^j} a^l`` (so ``T_{j+1} = T_j + a^(2^j) T_j``) and ``power = Σ_j β_j 2^j``,
    ``Σ_{l<power} a^l = Σ_{j: β_j = 1} a^(o_j) T_j`` where ``o_j`` sums the set bits above ``j``:
    the blocks of exponents, highest bit first. ``t_j = T_j b`` and ``u = c a^(o_j)`` are vectors.

    Each square is held as ``a^(2^j) - I`` or as ``a^(2^j)``, whichever has the smaller
    Frobenius norm (``e_{j+1} = e_j (e_j + 2I)`` or ``a_{j+1} = a_j a_j``), and ``c - u`` is
    kept as its own vector: a power near ``I`` rounded as a matrix keeps only the digits of
    ``e`` that survive next to 1, as ``exp(x) - 1`` does, and the error of a power of a
    far-from-normal ``a`` grows with the exponent times that rounding (float32 LagT, N = 256,
    L = 16384, dt = 1e-3: ``c (I - a^L)`` 9e-4 from float64 squaring ``a``, 3e-5 now); the
    difference alone, squared where it is larger than the power (FouT's ``a`` near ``-I`` at
    ``dt = 0.1``), lost 5x more than ``a`` did.
    """
    bits = [int(ch) for ch in reversed(bin(power)[2:])]  # β_0 .. β_J
    eye = jnp.eye(e.shape[-1], dtype=e.dtype).reshape((1,) * (e.ndim - 2) + e.shape[-2:])

    def sq_norm(x):
        return jnp.sum(jnp.real(x) ** 2 + jnp.imag(x) ** 2, axis=(-2, -1), keepdims=True)

    def pick(p, s):
        # p = a - (1 - s) I, from a held as itself (s = 1) or as a - I (s = 0)
        power_, diff = p + (1.0 - s) * eye, p - s * eye
        keep = sq_norm(power_) <= sq_norm(diff)
        return jnp.where(keep, power_, diff), keep.astype(e.dtype)

    m, s = pick(e, jnp.zeros((), e.dtype))
    held = [(m, s)]
    for _ in bits[1:]:
        m, s = pick(m @ (m + 2.0 * (1.0 - s) * eye), s)  # a² - (1 - s) I
        held.append((m, s))
    t = [b]  # T_{j+1} b = (I + a^(2^j)) T_j b
    for m, s in held[:-1]:
        t.append((2.0 - s[..., 0]) * t[-1] + jnp.einsum("...ij,...j->...i", m, t[-1]))
    u, rest, total = c, jnp.zeros_like(c), jnp.zeros(c.shape[:-1], c.dtype)
    for j in reversed(range(len(bits))):
        if bits[j]:
            total = total + jnp.sum(u * t[j], axis=-1)
            m, s = held[j]
            step = jnp.einsum("...i,...ij->...j", u, m) - s[..., 0] * u  # u a^(2^j) - u
            u, rest = u + step, rest - step
    return rest, total


def _resolvent(A: Array, B: Array, s: Array) -> Array:
    """``(s I - A)^{-1} B`` for every ``s``: ``A`` dense ``(N, N)`` or diagonal ``(N,)``."""
    n = B.shape[0]
    b = B.reshape(n, -1)
    if A.ndim == 1:
        return b[None] / (s[:, None, None] - A[None, :, None])
    eye = jnp.eye(n, dtype=A.dtype)
    m = s[:, None, None] * eye[None] - A[None]
    return jnp.linalg.solve(m, jnp.broadcast_to(b[None], (s.shape[0],) + b.shape))


def _check_system(A, B, C, *others, names=("A", "B", "C")):
    """``A, B, C`` cast to one complex dtype: complex128 if any of them or of ``others`` (the
    evaluation points, ``D``) is a 64-bit array, else complex64. A Python number or a weakly
    typed array (a Python float under ``jit``) takes the others' precision."""
    # a list failed at `.shape`; a boolean matrix was cast to complex silently
    for name, x in zip(names, (A, B, C), strict=True):
        check_inexact(name, x)
    A, B, C = as_jax(A), as_jax(B), as_jax(C)
    others = [as_jax(x) for x in others]
    n = A.shape[-1] if A.ndim else -1  # a 0-d A failed with an IndexError naming nothing
    ok = A.ndim in (1, 2) and (A.ndim == 1 or A.shape == (n, n))
    ok = ok and B.ndim in (1, 2) and B.shape[0] == n and C.ndim in (1, 2) and C.shape[-1] == n
    if not ok:
        raise ValueError(
            "expected A (N, N) or diagonal (N,), B (N,) or (N, H_in), C (N,) or (H_out, N); got "
            f"{A.shape=}, {B.shape=}, {C.shape=}."
        )
    others = [x for x in others if hasattr(x, "dtype") and not getattr(x, "weak_type", False)]
    wide = any(jnp.dtype(x.dtype) in (jnp.float64, jnp.complex128) for x in (A, B, C, *others))
    dtype = complex_dtype(jnp.float64 if wide else jnp.float32)
    return A.astype(dtype), B.astype(dtype), C.astype(dtype)


def _check_points(name: str, points) -> None:
    if getattr(points, "ndim", None) != 1:
        raise ValueError(
            f"`{name}` must be a 1-d array of evaluation points (S,); got "
            f"{getattr(points, 'shape', type(points).__name__)} (wrap one point as "
            f"jnp.array([{name}]))."
        )
    # a boolean or integer array was cast to complex silently (True is the point 1 + 0j)
    check_inexact(name, points)


def _apply_c(C: Array, X: Array, B: Array, D) -> Array:
    y = jnp.einsum("on,snh->soh", C.reshape(-1, C.shape[-1]), X)
    squeeze = (1 if C.ndim == 1 else 0, 2 if B.ndim == 1 else 0)
    if D is not None:
        if isinstance(D, bool) or not isinstance(D, (int, float, complex)):
            check_inexact("D", D)  # a boolean D was added as 1 or 0 silently
        d = jnp.asarray(D)
        want = y.shape[1:]  # (H_out, H_in), 1 where B or C is a vector
        squeezed = tuple(w for i, w in enumerate(want) if not squeeze[i])
        if d.ndim == 0:
            d = jnp.broadcast_to(d, want)
        elif d.shape not in (want, squeezed):
            raise ValueError(
                f"`D` must be a scalar or (H_out, H_in) = {want} (the shape of C B"
                + (f", or {squeezed} without the vector axes" if squeezed != want else "")
                + f"); got D.shape={d.shape}."
            )
        y = y + d.astype(y.dtype).reshape((1,) + want)
    shape = (y.shape[0],) + tuple(d for i, d in enumerate(y.shape[1:]) if not squeeze[i])
    return y.reshape(shape)


def transfer_continuous(
    A: Inexact[Array, "..."],
    B: Inexact[Array, "..."],
    C: Inexact[Array, "..."],
    D: Inexact[Array, "..."] | float | None,
    s: Inexact[Array, " S"],
) -> Inexact[Array, "S ..."]:
    """``H(s) = C (sI - A)^{-1} B + D`` at every point of ``s`` (e.g. ``s = iω``).

    Args:
        A: ``(N, N)``, or ``(N,)`` for a diagonal system. B: ``(N,)`` or ``(N, H_in)``.
        C: ``(N,)`` or ``(H_out, N)``. D: ``None``, scalar or ``(H_out, H_in)``.
        s: ``(S,)`` complex frequencies.

    Returns:
        ``(S,)`` for a SISO system, else ``(S, H_out, H_in)`` (squeezing vector B/C axes);
        complex128 if any array argument (``s`` and ``D`` included) is 64-bit, else complex64.
    """
    _check_points("s", s)
    a, b, c = _check_system(A, B, C, s, D)
    return _apply_c(c, _resolvent(a, b, s.astype(a.dtype)), B, D)


def transfer_discrete(
    A_bar: Inexact[Array, "..."],
    B_bar: Inexact[Array, "..."],
    C: Inexact[Array, "..."],
    D: Inexact[Array, "..."] | float | None,
    z: Inexact[Array, " S"],
) -> Inexact[Array, "S ..."]:
    """``H(z) = Σ_k C Ā^k B̄ z^{-k} + D = z C (zI - Ā)^{-1} B̄ + D`` at every point of ``z``.

    This matches the recurrence ``x_k = Ā x_{k-1} + B̄ u_k``, ``y_k = C x_k + D u_k`` used
    throughout (the state includes the current input). At ``z = exp(2πi j/L)`` it equals the
    DFT of the length-``L`` kernel once ``Ā^L`` is negligible (exactly, with
    ``C`` replaced by ``C (I - Ā^L)``). Shapes as :func:`transfer_continuous`.
    """
    _check_points("z", z)
    a, b, c = _check_system(A_bar, B_bar, C, z, D, names=("A_bar", "B_bar", "C"))
    zz = z.astype(a.dtype)
    x = _resolvent(a, b, zz) * zz[:, None, None]
    return _apply_c(c, x, B_bar, D)
