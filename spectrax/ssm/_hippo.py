"""HiPPO matrices, their normal-plus-low-rank (NPLR) form, diagonal initialisations and PTD.

Everything here runs once at initialisation, in NumPy float64, and returns NumPy arrays; cast
with ``jnp.asarray(x, dtype)``. Convention throughout: the continuous system is
``x'(t) = A x(t) + B u(t)`` (A has eigenvalues in the left half-plane).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jaxtyping import Complex, Float, PRNGKeyArray

from spectrax._checks import check_choice, check_positive_float, check_positive_int


def _legs(n: int) -> tuple[np.ndarray, np.ndarray]:
    # A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k); B_n = sqrt(2n+1).
    r = np.sqrt(2.0 * np.arange(n) + 1.0)
    a = -np.tril(np.outer(r, r), -1) - np.diag(np.arange(n) + 1.0)
    return a, r.copy()


def _legt(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Window length 2 (S4's scaling, so timescales match LegS):
    # A_nk = -1/2 sqrt(2n+1) sqrt(2k+1) * (1 if n >= k else (-1)^(n-k)); B_n = 1/2 sqrt(2n+1).
    r = np.sqrt(2.0 * np.arange(n) + 1.0)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    sign = np.where(i >= j, 1.0, (-1.0) ** (i - j))
    return -0.5 * np.outer(r, r) * sign, 0.5 * r


def _lagt(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Laguerre (exponentially decaying measure): A_nk = -1 (n > k), -1/2 (n = k), 0; B_n = 1.
    return np.eye(n) / 2.0 - np.tril(np.ones((n, n))), np.ones(n)


def _fout(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Truncated Fourier basis [1, cos, sin, cos, sin, ...] on a window of length 2:
    # B_0 = 1, B_{2k-1} = sqrt 2 (cosines), B_{2k} = 0 (sines); A = Omega - B B^T with the
    # skew rotation Omega[2k, 2k-1] = pi k = -Omega[2k-1, 2k] (frequency pi k = 2 pi k / 2).
    # Even n: the last state would be the cosine of frequency pi n/2 without its sine partner
    # (no rotation), and driving it would lock it to sqrt2 x_0 (a conserved combination, see
    # hippo's docstring); it is an undriven dead state instead, as in S4's FouT.
    b = np.zeros(n)
    b[0] = 1.0
    b[1::2] = np.sqrt(2.0)
    if n % 2 == 0:
        b[-1] = 0.0
    omega = np.zeros((n, n))
    for k in range(1, (n + 1) // 2 + 1):
        c, s = 2 * k - 1, 2 * k
        if s < n:
            omega[s, c] = np.pi * k
            omega[c, s] = -np.pi * k
    return omega - np.outer(b, b), b


_HIPPO: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "legs": _legs,
    "legt": _legt,
    "lagt": _lagt,
    "fout": _fout,
}
MEASURES = tuple(_HIPPO)


def hippo(measure: str, N: int) -> tuple[Float[np.ndarray, "N N"], Float[np.ndarray, " N"]]:
    """The HiPPO matrices ``(A, B)`` of a measure, from their closed forms.

    Gu et al., 2020, "HiPPO: Recurrent Memory with Optimal Polynomial Projections"; Gu et al.,
    2023, "How to Train Your HiPPO" (LegT and FouT with window length 2, as in S4).

    LegS is the scaled measure (uniform on ``[0, t]``): the time-varying ODE ``x' = (A x +
    B u)/t`` holds ``x_n(t) = 1/t ∫_0^t u(s) √(2n+1) P_n(2s/t - 1) ds``, exactly for a ``u``
    that is a polynomial of degree ``< N`` (HiPPO's projection property). As a time-invariant
    SSM (S4) its impulse response is ``e^{tA} B = √(2n+1) e^{-t} P_n(2e^{-t} - 1)``, Legendre
    polynomials warped by ``e^{-t}`` (Gu et al., 2023, S4-LegS). LagT: ``x_n(t) =
    ∫_{-∞}^t u(s) L_n(t - s) e^{-(t - s)/2} ds`` (Laguerre polynomials; ``L_n(y) e^{-y/2}`` are
    orthonormal in the lag ``y``, and the ODE is exact, with no end-point approximation), so
    ``u(t - y) ≈ Σ_n x_n(t) L_n(y) e^{-y/2}``.

    What the state of ``x' = A x + B u`` (from ``x = 0``) holds, for the translated measures
    (window ``[t - 2, t]``, uniform weight ``1/2``):

    - LegT: ``x_n(t) ≈ 1/2 ∫_{t-2}^t u(s) √(2n+1) P_n(s - t + 1) ds`` (Legendre coefficients),
      so ``u(s) ≈ Σ_n x_n(t) √(2n+1) P_n(s - t + 1)`` on the window. The ODE approximates
      ``u(t - 2)`` by that reconstruction, so this is the projection up to an error that falls
      geometrically in ``N`` for a smooth ``u``.
    - FouT: with the orthonormal basis ``g = [1, √2 cos(2π y), √2 sin(2π y), √2 cos(4π y),
      ...]`` of the lag ``y = (t - s)/2 ∈ [0, 1]``, ``x_n(t) ≈ 1/2 ∫_{t-2}^t u(s) g_n(y) ds`` and
      ``u(t - 2y) ≈ Σ_n x_n(t) g_n(y)``. ``u(t - 2)`` is approximated by twice the series at
      the window's end minus ``u(t)`` (the series converges to the average of the two ends), so
      the error falls like ``1/N`` for a ``u`` with ``u(t) ≠ u(t - 2)`` and is the time-stepping
      error alone for a ``u`` of period 2 in the span of the basis.
    - FouT with **even** ``N``: the last basis function would be the cosine of frequency
      ``π N/2`` without its sine partner; driven, it would be locked to ``√2 x_0`` (``√2 x_0 -
      x_{N-1}`` would be conserved) and spoil the reconstruction. It is a dead state instead,
      as in S4's FouT: ``B_{N-1} = 0`` and a zero last row and column of ``A``, so the state
      stays 0 from ``x = 0`` and the other ``N - 1`` states are the odd-size memory.

    Args:
        measure: ``"legs"`` (scaled Legendre), ``"legt"`` (translated Legendre), ``"lagt"``
            (Laguerre), ``"fout"`` (translated Fourier).
        N: state size, ``>= 1``.

    Returns:
        ``A`` ``(N, N)`` and ``B`` ``(N,)``, float64 NumPy arrays.
    """
    check_choice("measure", measure, MEASURES)
    n = check_positive_int("N", N)
    return _HIPPO[measure](n)


def _low_rank(measure: str, n: int) -> np.ndarray:
    """``P`` ``(r, N)`` such that ``A + P^T P`` is normal (skew-symmetric plus a multiple of I)."""
    idx = np.arange(n)
    if measure == "legs":
        return np.sqrt(idx + 0.5)[None, :]
    if measure == "legt":
        r = np.sqrt(2.0 * idx + 1.0) / np.sqrt(2.0)
        return np.stack([np.where(idx % 2 == 1, r, 0.0), np.where(idx % 2 == 0, r, 0.0)])
    if measure == "lagt":
        return np.full((1, n), np.sqrt(0.5))
    return _fout(n)[1][None, :]


def nplr(
    measure: str, N: int
) -> tuple[
    Complex[np.ndarray, " N"],
    Float[np.ndarray, "r N"],
    Float[np.ndarray, " N"],
    Complex[np.ndarray, "N N"],
]:
    """Normal-plus-low-rank form of a HiPPO matrix: ``A = V diag(Lambda) V^* - P^T P``.

    Gu, Goel & Ré, 2022, "Efficiently Modeling Long Sequences with Structured State Spaces".
    Convention: ``P`` has shape ``(r, N)`` (rank ``r``: 1, or 2 for LegT), real, and ``Q = P``,
    so ``A = V Λ V^* - Σ_i p_i p_i^T``; ``V`` is unitary (``A + P^T P`` is normal: a multiple of
    the identity plus a skew-symmetric matrix, diagonalised with a Hermitian eigensolver, which
    is what makes this stable where diagonalising ``A`` itself is not). In the eigenbasis the
    system is the DPLR ``Λ - (V^* P^T)(V^* P^T)^*`` with input ``V^* B``.

    Returns:
        ``(Lambda (N,) complex, P (r, N) real, B (N,) real, V (N, N) complex)``, float64/complex128,
        eigenvalues sorted by imaginary part (conjugate pairs at mirrored positions).
    """
    a, b = hippo(measure, N)
    p = _low_rank(measure, int(N))
    s = a + p.T @ p
    shift = float(np.mean(np.diag(s)))
    skew = s - shift * np.eye(int(N))
    # -i * skew is Hermitian: real eigenvalues w, unitary V; skew = V (i w) V^*.
    w, v = np.linalg.eigh(-1j * skew)
    lam = shift + 1j * w
    return lam, p, b, v


def s4d_legs(N: int) -> tuple[Complex[np.ndarray, " M"], Complex[np.ndarray, " M"]]:
    """S4D-LegS: the diagonal part ``Λ`` of LegS's NPLR form and ``B = V^* B``, one of each
    conjugate pair (``M = N // 2`` states with positive imaginary part).

    Gu et al., 2022, "On the Parameterization and Initialization of Diagonal State Space Models".

    Args:
        N: full (real) state size, even.
    """
    n = _check_even("N", N)
    lam, _, b, v = nplr("legs", n)
    keep = np.argsort(lam.imag)[n // 2 :]
    return lam[keep], (v.conj().T @ b)[keep]


def s4d_lin(N: int) -> tuple[Complex[np.ndarray, " M"], Complex[np.ndarray, " M"]]:
    """S4D-Lin: ``Λ_n = -1/2 + i π n``, ``B_n = 1``, ``n < N // 2`` (Gu et al., 2022, S4D)."""
    m = _check_even("N", N) // 2
    return -0.5 + 1j * np.pi * np.arange(m), np.ones(m, np.complex128)


def s4d_inv(N: int) -> tuple[Complex[np.ndarray, " M"], Complex[np.ndarray, " M"]]:
    """S4D-Inv: ``Λ_n = -1/2 + i (N/π)(N/(2n+1) - 1)``, ``B_n = 1`` (Gu et al., 2022, S4D)."""
    n = _check_even("N", N)
    k = np.arange(n // 2)
    return -0.5 + 1j * (n / np.pi) * (n / (2.0 * k + 1.0) - 1.0), np.ones(n // 2, np.complex128)


DIAGONAL_INITS: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "legs": s4d_legs,
    "lin": s4d_lin,
    "inv": s4d_inv,
}


def _check_even(name: str, value) -> int:
    n = check_positive_int(name, value, minimum=2)
    if n % 2:
        raise ValueError(
            f"`{name}` must be even (states come in conjugate pairs, N // 2 are kept); got {n}."
        )
    return n


def ptd(
    A: Float[np.ndarray, "N N"], eps: float, key: PRNGKeyArray
) -> tuple[Complex[np.ndarray, " N"], Complex[np.ndarray, "N N"], float]:
    """Perturb-then-diagonalise: eigendecomposition of ``A + E`` with random ``‖E‖_2 = eps``.

    Yu, Mahoney & Erichson, 2024, "Robustifying State-space Models for Long Sequences via
    Approximate Diagonalization" (ICLR). HiPPO-LegS is non-normal: its eigenvectors are
    exponentially ill-conditioned in ``N`` and diagonalising it directly is numerically
    meaningless. A perturbation of size ``eps`` makes ``A + E = V Λ V^{-1}`` well posed; the
    result is backward stable (``‖V Λ V^{-1} - A‖ ≈ eps``) and its transfer function converges
    to ``A``'s as ``eps -> 0`` on bounded frequencies, unlike S4D-LegS which drops the low-rank
    term outright. The trade-off: smaller ``eps`` approximates ``A`` better but ``cond(V)``
    grows (roughly like ``1/eps`` for LegS), which amplifies rounding in ``V^{-1} B`` and makes
    learned ``Λ`` harder to train; the paper uses ``eps`` around 1e-2 to 1e-1 for N = 64.

    ``E`` here is random (Gaussian, rescaled to norm ``eps``); the paper instead chooses ``E``
    by minimising ``κ(V) + γ‖E‖`` (a non-convex problem solved by gradient descent), to get a
    better-conditioned ``V`` for its size (not implemented here). Measured for LegS (median of 10
    keys): ``cond(V)`` 5e5, 6e4, 7e3 at N = 64 and eps = 1e-2, 1e-1, 1 (2e7 at N = 256,
    eps = 1e-2); and a real ``A + E`` keeps 2 to 6 real eigenvalues besides its conjugate
    pairs. That is why no layer offers a PTD init yet: the largest entry of ``V^{-1} B`` is
    then 1e6, 2e5, 4e4 (N = 64, the same three ``eps``), so a diagonal layer's per-mode
    terms would cancel to its kernel with up to about ``κ(V)`` ulps of float32 error; and the
    real eigenvalues do not fit S4D/S5's ``N // 2`` conjugate-pair states.

    Args:
        A: real ``(N, N)`` state matrix (e.g. ``hippo("legs", N)[0]``).
        eps: spectral norm of the perturbation, a finite Python float ``> 0``.
        key: PRNG key for ``E`` (standard Gaussian entries, rescaled).

    Returns:
        ``(Lambda (N,), V (N, N), cond(V))`` in complex128, with ``A + E = V diag(Λ) V^{-1}``;
        columns of ``V`` have unit norm. Runs in NumPy on the host (not jittable).
    """
    if np.iscomplexobj(A):
        raise TypeError(
            f"`A` must be real (ptd perturbs a real state matrix); got dtype {np.asarray(A).dtype}."
        )
    a = np.asarray(A, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"`A` must be a square (N, N) matrix with N >= 1; got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError("`A` must be finite; got a matrix with inf or NaN entries.")
    # > 0: eps = 0 would diagonalise A itself, the ill-posed problem PTD exists to avoid.
    eps = check_positive_float("eps", eps)  # finite and > 0
    e = np.array(jax.random.normal(key, a.shape), np.float64)
    e *= eps / np.linalg.norm(e, 2)
    lam, v = np.linalg.eig(a + e)
    v = v / np.linalg.norm(v, axis=0, keepdims=True)
    return lam.astype(np.complex128), v.astype(np.complex128), float(np.linalg.cond(v))
