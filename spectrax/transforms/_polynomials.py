"""Orthogonal polynomials and spherical harmonics: Legendre and Chebyshev values by their
three-term recurrences, Gauss–Legendre quadrature, and real orthonormal spherical harmonics."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from spectrax._checks import check_positive_int, check_real_float, compute_dtype, result_dtype


def _recurrence(x: Array, p1: Array, rule, coefs: tuple[np.ndarray, ...], n: int) -> Array:
    """Stack ``p_0 = 1``, ``p_1``, and ``p_{k+1} = rule(x, p_{k-1}, p_k, *coef_k)`` up to degree
    ``n`` on a new leading axis (coefficient arrays indexed by ``k = 1..n-1``)."""
    p0 = jnp.ones_like(x)
    if n == 0:
        return p0[None]

    def step(carry, coef):
        prev, cur = carry
        nxt = rule(x, prev, cur, *coef)
        return (cur, nxt), nxt

    xs = tuple(jnp.asarray(v, x.dtype) for v in coefs)
    _, rest = jax.lax.scan(step, (p0, p1), xs, length=n - 1)
    return jnp.concatenate([p0[None], p1[None], rest], axis=0)


def _bonnet(x: Array, prev: Array, cur: Array, r: Array) -> Array:
    # P_{k+1} = x P_k + k/(k+1) (x P_k - P_{k-1}), Bonnet's recurrence with only the ratio
    # r = k/(k+1) rounded, and it multiplies a difference that is exactly 0 at x = +-1, so
    # P_k(+-1) = (+-1)^k exactly. The form ((2k+1) x P_k - k P_{k-1}) / (k+1) with rounded
    # ratios drifted there: P_1000(1) was off by up to 4e-4 in float32 (5e-6 to 4e-4,
    # depending on how XLA compiled the input's shape) and 7e-13 in float64.
    xp = x * cur
    return xp + r * (xp - prev)


def _chebyshev_step(x: Array, prev: Array, cur: Array) -> Array:
    return 2 * x * cur - prev


def legendre(n: int, x: Float[Array, "*batch"]) -> Float[Array, " degree *batch"]:
    """Legendre polynomials ``P_0(x), ..., P_n(x)`` stacked on a new leading axis.

    Standard normalisation ``P_k(1) = 1``, orthogonal on ``[-1, 1]`` with
    ``∫ P_j P_k dx = 2/(2k+1) δ_jk``. The orthonormal basis of HiPPO-LegT/LegS (Gu et al.,
    2020, "HiPPO: Recurrent Memory with Optimal Polynomial Projections") is
    ``sqrt(2k+1) P_k`` for the uniform probability measure on ``[-1, 1]``. Evaluated by
    Bonnet's recurrence ``(k+1) P_{k+1} = (2k+1) x P_k - k P_{k-1}`` under ``lax.scan``
    (stable for ``|x| <= 1``; the values grow like ``|x|^k`` outside).

    Args:
        n: highest degree, a static integer ``>= 0``.
        x: real points, any shape (a Python float is a rank-0 array).

    Returns:
        Shape ``(n + 1, *x.shape)``, dtype of ``x`` (half precision computes in float32).
        Entry ``k`` is ``P_k(x)``.
    """
    n = check_positive_int("n", n, minimum=0)
    check_real_float("x", x, scalar_ok=True)
    return _legendre(x, n)


@functools.partial(jax.jit, static_argnums=1)
def _legendre(x: Array, n: int) -> Array:
    xw = x.astype(compute_dtype(x.dtype))
    k = np.arange(1, max(n, 1), dtype=np.float64)
    out = _recurrence(xw, xw, _bonnet, (k / (k + 1),), n)
    return out.astype(x.dtype)


def chebyshev(n: int, x: Float[Array, "*batch"]) -> Float[Array, " degree *batch"]:
    """Chebyshev polynomials of the first kind ``T_0(x), ..., T_n(x)`` on a new leading axis.

    ``T_k(cos t) = cos(k t)``, ``T_k(1) = 1``; orthogonal on ``[-1, 1]`` for the weight
    ``1/sqrt(1 - x^2)``. Evaluated by ``T_{k+1} = 2 x T_k - T_{k-1}`` under ``lax.scan``.

    Args:
        n: highest degree, a static integer ``>= 0``.
        x: real points, any shape (a Python float is a rank-0 array).

    Returns:
        Shape ``(n + 1, *x.shape)``, dtype of ``x`` (half precision computes in float32).
        Entry ``k`` is ``T_k(x)``.
    """
    n = check_positive_int("n", n, minimum=0)
    check_real_float("x", x, scalar_ok=True)
    return _chebyshev(x, n)


@functools.partial(jax.jit, static_argnums=1)
def _chebyshev(x: Array, n: int) -> Array:
    xw = x.astype(compute_dtype(x.dtype))
    out = _recurrence(xw, xw, _chebyshev_step, (), n)
    return out.astype(x.dtype)


def gauss_legendre(n: int) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, " n"]]:
    """Gauss–Legendre nodes and weights on ``[-1, 1]``.

    ``sum_i w_i f(x_i) = ∫_{-1}^{1} f(x) dx`` exactly for polynomials of degree ``<= 2n - 1``
    (Gauss, 1814; Abramowitz & Stegun 25.4.29). The nodes are the roots of ``P_n`` by Newton's
    method from ``cos(π (i - 1/4) / (n + 1/2))``, the weights ``2 / ((1 - x^2) P_n'(x)^2)``,
    both by the three-term recurrence in float64 (``O(n^2)``). ``numpy``'s ``leggauss``
    (companion-matrix eigenvalues, ``O(n^3)``) has the same nodes to an ulp but weights off by
    up to ~1e-11 relative for ``n`` in the hundreds (1.4e-11 at ``n = 128``): its rule missed
    the orthogonality of ``P_j, P_k`` by 7e-13 there, this one by 4e-14 (the recurrence's own
    rounding). For ``∫_a^b`` map ``x -> (b - a)/2 x + (a + b)/2`` and scale the weights by
    ``(b - a)/2``.

    Args:
        n: number of nodes, an integer ``>= 1``.

    Returns:
        ``(nodes, weights)``, NumPy float64 arrays of shape ``(n,)``, nodes ascending; host
        constants, so cast with ``jnp.asarray(nodes, dtype)`` where needed.
    """
    n = check_positive_int("n", n)
    i = np.arange(n, 0, -1, dtype=np.float64)  # ascending nodes
    x = np.cos(np.pi * (i - 0.25) / (n + 0.5))  # within O(1/n^2) of the roots
    for _ in range(100):  # quadratic convergence: 3 to 6 steps in practice
        p, dp = _legendre_and_derivative(n, x)
        step = p / dp
        x = x - step
        if np.max(np.abs(step)) <= 1e-15:
            break
    x = (x - x[::-1]) / 2.0  # exactly symmetric about 0, as the rule is
    _, dp = _legendre_and_derivative(n, x)
    weights = 2.0 / ((1.0 - x) * (1.0 + x) * dp * dp)
    return x, (weights + weights[::-1]) / 2.0


def _legendre_and_derivative(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P_n(x), P_n'(x))`` in float64 by the three-term recurrence, for ``|x| < 1``."""
    p, prev = np.ones_like(x), np.zeros_like(x)
    for j in range(1, n + 1):
        p, prev = ((2 * j - 1) * x * p - (j - 1) * prev) / j, p
    return p, n * (prev - x * p) / ((1.0 - x) * (1.0 + x))


def _sph_tables(l_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of the normalised associated-Legendre recurrence in ``l`` for every ``m``.

    Row ``l`` (``1 <= l <= l_max``), column ``m``: ``A = a_l^m`` and ``B = a_l^m / a_{l-1}^m``
    with ``a_l^m = sqrt((4 l^2 - 1) / (l^2 - m^2))``, zero where the term is absent; ``diag``
    is the factor ``sqrt((2l + 1) / (2l))`` of the sectoral step ``P̄_l^l = diag_l sin θ
    P̄_{l-1}^{l-1}``."""
    size = l_max + 1
    a = np.zeros((size, size))
    b = np.zeros((size, size))
    for l in range(1, size):
        m = np.arange(l)
        a[l, :l] = np.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
        if l >= 2:
            m2 = np.arange(l - 1)
            prev = np.sqrt((4.0 * (l - 1) ** 2 - 1.0) / ((l - 1) ** 2 - m2 * m2))
            b[l, : l - 1] = a[l, : l - 1] / prev
    ls = np.arange(1, size, dtype=np.float64)
    diag = np.concatenate([[1.0 / math.sqrt(4.0 * math.pi)], np.sqrt((2 * ls + 1) / (2 * ls))])
    return a, b, diag


def flat_degrees(l_max: int) -> np.ndarray:
    """Degree ``l`` of each flat harmonic index ``l^2 + l + m`` of :func:`real_sph_harm`
    (``0, 1, 1, 1, 2, ...``), a NumPy int array of length ``(l_max + 1)^2``."""
    return np.repeat(np.arange(l_max + 1), 2 * np.arange(l_max + 1) + 1)


def flat_orders(l_max: int) -> np.ndarray:
    """Order ``m`` of each flat harmonic index ``l^2 + l + m`` of :func:`real_sph_harm`
    (``0, -1, 0, 1, -2, ...``), a NumPy int array of length ``(l_max + 1)^2``."""
    return np.concatenate([np.arange(-l, l + 1) for l in range(l_max + 1)])


def sph_index(l: int, m: int) -> int:
    """Position of ``Y_lm`` on the leading axis of :func:`real_sph_harm`: ``l^2 + l + m``."""
    l = check_positive_int("l", l, minimum=0)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not -l <= m <= l:
        raise ValueError(f"`m` must be an integer with -l <= m <= l (l={l}); got {m!r}.")
    return l * l + l + int(m)


def real_sph_harm(
    l_max: int, theta: Float[Array, "*#batch"], phi: Float[Array, "*#batch"]
) -> Float[Array, " harmonic *batch"]:
    """All real orthonormal spherical harmonics ``Y_lm(θ, φ)`` with ``0 <= l <= l_max``.

    Order on the leading axis (length ``(l_max + 1)^2``): ``(l, m) = (0, 0), (1, -1), (1, 0),
    (1, 1), (2, -2), ...``, i.e. index ``l^2 + l + m`` (:func:`sph_index`). Orthonormal on the
    unit sphere, ``∫ Y_lm Y_l'm' sin θ dθ dφ = δ_ll' δ_mm'``, with ``θ`` the polar angle in
    ``[0, π]`` and ``φ`` the azimuth::

        Y_lm = sqrt(2) P̄_l^m(cos θ) cos(m φ)      m > 0
        Y_l0 = P̄_l^0(cos θ)
        Y_lm = sqrt(2) P̄_l^|m|(cos θ) sin(|m| φ)  m < 0

    where ``P̄_l^m = sqrt((2l+1)/(4π) (l-m)!/(l+m)!) P_l^m`` and ``P_l^m`` carries **no**
    Condon–Shortley phase (``P_l^l = (2l-1)!! sin^l θ >= 0``). From the complex harmonics
    ``Y_l^m`` *with* that phase (SciPy's ``sph_harm_y``): ``Y_lm = sqrt(2) (-1)^m Re Y_l^m``
    for ``m > 0`` and ``sqrt(2) (-1)^m Im Y_l^|m|`` for ``m < 0``, so that
    ``(Y_1,-1, Y_10, Y_11) = sqrt(3/(4π)) (y, z, x)`` on the unit sphere.

    ``P̄_l^m`` come from the normalised recurrences of Limpanuparb & Milthorpe, 2014,
    "Associated Legendre Polynomials and Spherical Harmonics Computation for Chemistry
    Applications": sectoral ``P̄_l^l = sqrt((2l+1)/(2l)) sin θ P̄_{l-1}^{l-1}``, then
    ``P̄_l^m = a_l^m (cos θ P̄_{l-1}^m - P̄_{l-2}^m / a_{l-1}^m)`` with
    ``a_l^m = sqrt((4l^2-1)/(l^2-m^2))``, vectorised over ``m`` in one ``lax.scan`` over ``l``.
    No factorial is formed; in float64 the values agree with SciPy to ~1e-14 (norm-wise
    relative) at ``l_max = 50``. The sectoral start ``sin^m θ`` is not rescaled, so close to
    the poles it underflows for large ``m`` (``m`` in the hundreds in float64, from about 30
    in float32 at ``sin θ ~ 0.05``); use float64 beyond ``l_max ~ 20``.

    Args:
        l_max: highest degree, a static integer ``>= 0``.
        theta: polar angles, a real array (a Python float is a rank-0 one).
        phi: azimuths, real, same rank as ``theta`` and broadcastable against it.

    Returns:
        Shape ``((l_max + 1)^2, *broadcast(theta.shape, phi.shape))``; dtype the promotion of
        the two inputs (half precision computes in float32).
    """
    l_max = check_positive_int("l_max", l_max, minimum=0)
    check_real_float("theta", theta, scalar_ok=True)
    check_real_float("phi", phi, scalar_ok=True)
    # Python floats and NumPy arrays are taken as arrays (a scalar angle is rank 0).
    theta, phi = jnp.asarray(theta), jnp.asarray(phi)
    if theta.ndim != phi.ndim:
        raise ValueError(
            f"`theta` and `phi` must have the same rank; got {theta.shape=}, {phi.shape=}. "
            "Add size-1 axes explicitly to broadcast."
        )
    try:
        shape = np.broadcast_shapes(theta.shape, phi.shape)
    except ValueError:
        raise ValueError(
            f"`theta` {theta.shape} and `phi` {phi.shape} do not broadcast; expected "
            "NumPy-broadcastable shapes such as (n, 1) and (1, m)."
        ) from None
    return _real_sph_harm(theta, phi, l_max, shape)


# Jitted: eagerly, every step of the recurrence and of the assembly would dispatch alone.
@functools.partial(jax.jit, static_argnums=(2, 3))
def _real_sph_harm(theta: Array, phi: Array, l_max: int, shape: tuple[int, ...]) -> Array:
    out_dtype = result_dtype(theta.dtype, phi.dtype)
    work = compute_dtype(theta.dtype, phi.dtype)
    th = jnp.broadcast_to(theta.astype(work), shape)
    ph = jnp.broadcast_to(phi.astype(work), shape)
    size = l_max + 1
    col = (size,) + (1,) * len(shape)  # a per-m coefficient against (m, *batch)

    a, b, diag = _sph_tables(l_max)
    eye = np.eye(size)
    cos_t, sin_t = jnp.cos(th), jnp.sin(th)
    # P̄_l^m for all m at once: row m of the carry is P̄_l^m (zero for m > l).
    sect0 = jnp.full(shape, diag[0], work)
    p0 = jnp.asarray(eye[0], work).reshape(col) * sect0[None]

    def step(carry, coef):
        prev2, prev1, sect = carry
        al, bl, dl, el = coef
        sect = dl * sin_t * sect  # sectoral P̄_l^l
        p = (
            al.reshape(col) * cos_t[None] * prev1
            - bl.reshape(col) * prev2
            + el.reshape(col) * sect[None]
        )
        return (prev1, p, sect), p

    xs = tuple(jnp.asarray(v[1:], work) for v in (a, b, diag, eye))
    if l_max == 0:
        p_all = p0[None]
    else:
        _, rest = jax.lax.scan(step, (jnp.zeros_like(p0), p0, sect0), xs)
        p_all = jnp.concatenate([p0[None], rest], axis=0)  # (l, m, *batch)

    ms = np.arange(size, dtype=np.float64).reshape(col)
    mphi = jnp.asarray(ms, work) * ph[None]
    trig = jnp.concatenate([jnp.cos(mphi), jnp.sin(mphi[1:])], axis=0)  # cos m>=0, sin m>=1
    l_idx, m_idx = flat_degrees(l_max), flat_orders(l_max)
    trig_idx = np.where(m_idx >= 0, m_idx, l_max - m_idx)
    scale = np.where(m_idx == 0, 1.0, math.sqrt(2.0)).reshape((-1,) + (1,) * len(shape))
    y = p_all[l_idx, np.abs(m_idx)] * trig[trig_idx] * jnp.asarray(scale, work)
    return y.astype(out_dtype)
