"""Real spherical harmonic transform on a Gauss–Legendre grid: an FFT over longitude, then a
Gauss–Legendre quadrature per zonal wavenumber ``m`` (the transform of spherical FNOs)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from spectrax._checks import check_positive_int, check_real_float, compute_dtype
from spectrax.transforms._polynomials import _sph_tables, gauss_legendre

# On GPU/TPU a float32 matmul defaults to reduced-precision passes (TF32/bf16); the Legendre
# quadrature sums nlat terms of mixed sign and would lose ~3 digits.
_PRECISION = jax.lax.Precision.HIGHEST


def sphere_grid(
    nlat: int, nlon: int
) -> tuple[Float[np.ndarray, " nlat"], Float[np.ndarray, " nlon"], Float[np.ndarray, " nlat"]]:
    """The Gauss–Legendre grid of :func:`sht`: colatitudes, longitudes and quadrature weights.

    ``theta_i = arccos(x_i)`` for the Gauss–Legendre nodes ``x_i`` of :func:`gauss_legendre`,
    ordered **north to south** (``theta`` ascending in ``(0, π)``, ``cos θ`` descending; the
    poles are not grid points), and ``phi_j = 2π j / nlon`` for ``j = 0..nlon-1``. The
    quadrature on the sphere is

        ∫ f dΩ = ∫_0^{2π} ∫_0^π f sin θ dθ dφ ≈ (2π / nlon) Σ_ij w_i f(theta_i, phi_j),

    exact when ``f`` is a polynomial of degree ``<= 2 nlat - 1`` in ``cos θ`` times a
    trigonometric polynomial of degree ``<= nlon - 1`` in ``φ`` (in particular for products
    ``Y_lm Y_l'm'`` with ``l, l' <= l_max`` whenever ``nlat >= l_max + 1`` and
    ``nlon >= 2 l_max + 1``).

    Args:
        nlat: number of latitudes, an integer ``>= 1``.
        nlon: number of longitudes, an integer ``>= 1``.

    Returns:
        ``(theta, phi, weights)``: NumPy float64 host constants of shapes ``(nlat,)``,
        ``(nlon,)`` and ``(nlat,)``. ``weights`` are the Gauss–Legendre weights in ``cos θ``
        (they sum to 2; the longitude weight ``2π / nlon`` is not included).
    """
    nlat = check_positive_int("nlat", nlat)
    nlon = check_positive_int("nlon", nlon)
    nodes, weights = gauss_legendre(nlat)
    theta = np.arccos(nodes[::-1])
    phi = 2.0 * np.pi * np.arange(nlon, dtype=np.float64) / nlon
    return theta, phi, weights[::-1].copy()


def _legendre_grid(nlat: int, l_max: int) -> np.ndarray:
    """Float64 ``P̄_l^m(cos theta_i)`` on the :func:`sphere_grid` latitudes, shape ``(m, l, nlat)``
    (zero for ``l < m``), by the normalised recurrence of :func:`real_sph_harm`, in NumPy."""
    theta, _, _ = sphere_grid(nlat, 1)
    x, s = np.cos(theta), np.sin(theta)
    size = l_max + 1
    a, b, diag = _sph_tables(l_max)
    p = np.zeros((size, size, nlat))  # (l, m, i)
    sect = np.full(nlat, diag[0])  # sectoral P̄_l^l
    p[0, 0] = sect
    prev2, prev1 = np.zeros((size, nlat)), p[0]
    for l in range(1, size):
        sect = diag[l] * s * sect
        cur = a[l][:, None] * x[None] * prev1 - b[l][:, None] * prev2
        cur[l] = sect
        p[l] = cur
        prev2, prev1 = prev1, cur
    return p.transpose(1, 0, 2)  # (m, l, i)


@functools.lru_cache(maxsize=32)
def _legendre_tables(nlat: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(analysis, synthesis)`` matrices of shape ``(m, l, nlat) = (l_max + 1,
    l_max + 1, nlat)``, zero for ``l < m``, built once per ``(nlat, l_max)``.

    ``synthesis[m, l, i] = c_m P̄_l^m(cos theta_i)`` with ``c_0 = 1`` and ``c_m = 1/sqrt(2)``
    (the real harmonic's ``sqrt(2)``, halved for the Hermitian ``irfft``);
    ``analysis[m, l, i] = 2π w_i s_m P̄_l^m(cos theta_i)`` with ``s_0 = 1``, ``s_m = sqrt(2)``
    (the ``1/nlon`` of the longitude quadrature is the ``rfft``'s ``norm="forward"``).
    ``P̄_l^m`` from :func:`_legendre_grid`."""
    _, _, weights = sphere_grid(nlat, 1)
    size = l_max + 1
    p = _legendre_grid(nlat, l_max)
    scale = np.where(np.arange(size) == 0, 1.0, math.sqrt(2.0))[:, None, None]
    synthesis = p * (scale / np.where(scale > 1.0, 2.0, 1.0))
    analysis = p * (2.0 * np.pi * scale * weights[None, None, :])
    for t in (analysis, synthesis):
        t.setflags(write=False)  # cached and shared between calls
    return analysis, synthesis


@functools.lru_cache(maxsize=32)
def _layout(l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Index maps between the flat harmonic axis (``l^2 + l + m``) and the ``(cos/sin, l, m)``
    blocks: ``gather[k]`` is the block entry of flat index ``k``; ``scatter[c, l, m]`` is the
    flat index of block entry ``(c, l, m)``, or ``(l_max + 1)^2`` (a zero) where it is empty
    (``m > l``, or the sine part of ``m = 0``)."""
    size = l_max + 1
    n = size * size
    gather = np.empty(n, np.int32)
    scatter = np.full((2, size, size), n, np.int32)
    for l in range(size):
        for m in range(-l, l + 1):
            k = l * l + l + m
            c = 0 if m >= 0 else 1
            gather[k] = c * n + l * size + abs(m)
            scatter[c, l, abs(m)] = k
    return gather, scatter


def harmonic_degree(name: str, shape: tuple[int, ...]) -> int:
    """``l_max`` of coefficients of shape ``(..., (l_max + 1)^2)``, or a ValueError naming
    ``name`` when the last axis is not a positive perfect square."""
    n = shape[-1]
    size = math.isqrt(n)
    if n == 0 or size * size != n:
        lo = max(size, 1)
        raise ValueError(
            f"`{name}` must have shape (..., (l_max + 1)**2) in real_sph_harm's order; got "
            f"{name}.shape={tuple(shape)}, whose last axis {n} is not a positive perfect square "
            f"(e.g. {lo * lo} or {(lo + 1) ** 2})."
        )
    return size - 1


def _max_degree(nlat: int, nlon: int) -> int:
    return min(nlat - 1, (nlon - 1) // 2)


def check_sphere_grid(
    name: str,
    shape: tuple[int, ...],
    l_max: int,
    *,
    l_max_name: str = "l_max",
    source: str = "",
) -> None:
    """Raise a ValueError naming ``name`` unless the :func:`sphere_grid` of ``shape = (nlat,
    nlon)`` is a grid (positive sizes) that carries degree ``l_max`` (``nlat >= l_max + 1``,
    ``nlon >= 2 l_max + 1``).

    ``name`` is the argument as the message shows it (e.g. ``"`x`"``), ``l_max_name`` how the
    degree is spelled (``"`l_max`"`` where it is the caller's argument) and ``source`` an
    optional note on where ``l_max`` comes from (e.g. ``" (from `weight`'s last axis)"``).
    Shared by :func:`sht`, :func:`isht`, :func:`~spectrax.nn.spherical_conv` and
    :class:`~spectrax.models.SFNO`."""
    nlat, nlon = shape
    if nlat < 1 or nlon < 1:  # the fit hint below would suggest a negative l_max
        raise ValueError(
            f"{name} is an nlat x nlon = {nlat} x {nlon} grid; the grid sizes must be positive "
            f"(nlat >= {l_max + 1} and nlon >= {2 * l_max + 1} for {l_max_name}={l_max}{source})."
        )
    if nlat < l_max + 1 or nlon < 2 * l_max + 1:
        raise ValueError(
            f"{name} is an nlat x nlon = {nlat} x {nlon} grid, too small for "
            f"{l_max_name}={l_max}{source}: the spherical harmonic transform needs nlat >= "
            f"{l_max + 1} and nlon >= {2 * l_max + 1} (l_max + 1 and 2 * l_max + 1). Use a "
            f"finer grid, or l_max <= {_max_degree(nlat, nlon)} on this one."
        )


def sht(f: Float[Array, "*batch nlat nlon"], l_max: int) -> Float[Array, "*batch harmonic"]:
    """Real spherical harmonic transform of a field sampled on the :func:`sphere_grid`.

    Driscoll & Healy, 1994, "Computing Fourier Transforms and Convolutions on the 2-Sphere";
    Schaeffer, 2013, "Efficient spherical harmonic transforms aimed at pseudospectral
    numerical simulations"; the transform of Bonev et al., 2023, "Spherical Fourier Neural
    Operators: Learning Stable Dynamics on the Sphere". Computes the quadrature

        c_lm = (2π / nlon) Σ_ij w_i f(theta_i, phi_j) Y_lm(theta_i, phi_j),   l <= l_max,

    with the real orthonormal ``Y_lm`` of :func:`real_sph_harm` (no Condon–Shortley phase,
    ``∫ Y_lm Y_l'm' dΩ = δ δ``) and the grid and weights of :func:`sphere_grid` (latitudes
    north to south, ``phi_j = 2π j / nlon``). An ``rfft`` over longitude gives the zonal
    modes ``m = 0..l_max``; a Gauss–Legendre quadrature per ``m`` against precomputed
    ``P̄_l^m`` matrices (float64, built once per ``(nlat, l_max)`` and cached) gives the
    coefficients: ``O(nlat nlon log nlon + nlat l_max^2)`` per field, against
    ``O(nlat nlon l_max^2)`` for the dense quadrature.

    Exactness: with ``nlat >= l_max + 1`` and ``nlon >= 2 l_max + 1`` the quadrature is
    exact for every product ``Y_lm Y_l'm'`` (``l, l' <= l_max``): over longitude,
    ``Σ_j e^{i k phi_j} = 0`` for ``0 < |k| <= 2 l_max < nlon``, so only ``m = m'`` survives;
    over latitude, ``P̄_l^m P̄_l'^m`` is a polynomial of degree ``l + l' <= 2 l_max <=
    2 nlat - 1`` in ``cos θ``. Hence for a band-limited ``f = Σ_{l <= l_max} c_lm Y_lm``,
    ``sht(f) == c`` and ``isht(sht(f)) == f`` to rounding. Both bounds are tight: on this
    grid ``Y_{nlat,0}`` vanishes at every node (``P_nlat`` has the Gauss nodes as roots) and
    ``cos((l_max + 1) φ)`` with ``nlon = 2 l_max + 1`` aliases onto ``m = l_max``. Content
    above ``l_max`` is not filtered but aliased into the coefficients where the grid cannot
    tell it apart (on the minimal grid: degree ``>= l_max + 2`` through the latitude rule,
    ``|m| >= l_max + 1`` through the longitude samples), as with any quadrature.

    Args:
        f: real field of shape ``(..., nlat, nlon)`` on :func:`sphere_grid` ``(nlat, nlon)``,
            any leading batch dimensions.
        l_max: highest degree, a static integer with ``0 <= l_max <= min(nlat - 1,
            (nlon - 1) // 2)``.

    Returns:
        Shape ``(..., (l_max + 1)^2)`` in :func:`real_sph_harm`'s order (index
        ``l^2 + l + m``), dtype of ``f``. float32/float64 compute in their own dtype;
        float16/bfloat16 compute in float32 (XLA has no half-precision FFT). Linear in ``f``,
        with adjoint ``grad_f <g, sht(f)> = (2π / nlon) w_i isht(g)``. Measured norm-wise
        relative errors on the minimal grid: float64 ``sht(isht(c))`` ~1e-15 (``l_max = 7``)
        to ~1.3e-14 (``l_max = 127``), ``isht(sht(f))`` up to ~4e-14; float32 ~1e-7 throughout
        (the tables are built in float64 and rounded once). The sectoral start ``sin^m θ``
        is not rescaled (see :func:`real_sph_harm`), so the polar entries underflow for
        ``l_max`` in the several hundreds. The cached tables hold ``2 (l_max + 1)^2 nlat``
        float64 values (~34 MB at ``l_max = 127``, ``nlat = 128``) and enter the jitted
        computation as constants.
    """
    l_max = check_positive_int("l_max", l_max, minimum=0)
    check_real_float("f", f)
    if f.ndim < 2:
        raise ValueError(
            f"`f` must have shape (..., nlat, nlon), a field on the sphere_grid(nlat, nlon); "
            f"got {f.shape=}."
        )
    nlat, nlon = f.shape[-2:]
    check_sphere_grid(f"`f` of shape {f.shape}", (nlat, nlon), l_max, l_max_name="`l_max`")
    return _sht(f, l_max)


# Jitted so an eager call compiles once per shape and the tables enter as constants.
@functools.partial(jax.jit, static_argnums=1)
def _sht(f: Array, l_max: int) -> Array:
    work = compute_dtype(f.dtype)
    nlat = f.shape[-2]
    analysis, _ = _legendre_tables(nlat, l_max)
    gather, _ = _layout(l_max)
    size = l_max + 1
    # (1/nlon) Σ_j f e^{-i m phi_j}: Re is the cos(m φ) sum, -Im the sin(m φ) sum.
    fm = jnp.fft.rfft(f.astype(work), axis=-1, norm="forward")[..., :size]
    parts = jnp.stack([fm.real, -fm.imag], axis=-3)  # (..., cos/sin, nlat, m)
    blocks = jnp.einsum(
        "...cim,mli->...clm", parts, jnp.asarray(analysis, work), precision=_PRECISION
    )
    flat = blocks.reshape(blocks.shape[:-3] + (2 * size * size,))
    return jnp.take(flat, gather, axis=-1).astype(f.dtype)


def isht(
    coeffs: Float[Array, "*batch harmonic"], nlat: int, nlon: int
) -> Float[Array, "*batch nlat nlon"]:
    """Inverse of :func:`sht`: synthesis ``f = Σ_lm c_lm Y_lm`` on the :func:`sphere_grid`.

    ``f(theta_i, phi_j) = Σ_{l <= l_max} Σ_{|m| <= l} c_lm Y_lm(theta_i, phi_j)`` with the
    real orthonormal ``Y_lm`` of :func:`real_sph_harm`, evaluated by the cached Legendre
    matrices of :func:`sht` (one matrix product per ``m``) and an ``irfft`` over longitude:
    ``O(nlat l_max^2 + nlat nlon log nlon)``. Under the grid conditions below,
    ``sht(isht(c), l_max) == c`` to rounding (the quadrature is exact for band-limited
    fields); they also make every ``Y_lm`` distinguishable on the grid.

    Args:
        coeffs: real coefficients of shape ``(..., (l_max + 1)^2)`` in :func:`real_sph_harm`'s
            order (index ``l^2 + l + m``), any leading batch dimensions.
        nlat: number of Gauss–Legendre latitudes, an integer ``>= l_max + 1``.
        nlon: number of equispaced longitudes, an integer ``>= 2 l_max + 1``.

    Returns:
        Shape ``(..., nlat, nlon)``, latitudes north to south as in :func:`sphere_grid`; dtype
        of ``coeffs`` (half precision computes in float32).
    """
    check_real_float("coeffs", coeffs)
    nlat = check_positive_int("nlat", nlat)
    nlon = check_positive_int("nlon", nlon)
    if coeffs.ndim < 1:
        raise ValueError(
            f"`coeffs` must have shape (..., (l_max + 1)**2); got a scalar, {coeffs.shape=}."
        )
    l_max = harmonic_degree("coeffs", coeffs.shape)
    n = coeffs.shape[-1]
    check_sphere_grid(
        "`nlat`, `nlon`", (nlat, nlon), l_max, source=f" (from `coeffs`' last axis, {n})"
    )
    return _isht(coeffs, nlat, nlon)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _isht(coeffs: Array, nlat: int, nlon: int) -> Array:
    work = compute_dtype(coeffs.dtype)
    size = math.isqrt(coeffs.shape[-1])
    _, synthesis = _legendre_tables(nlat, size - 1)
    _, scatter = _layout(size - 1)
    c = coeffs.astype(work)
    c = jnp.concatenate([c, jnp.zeros(c.shape[:-1] + (1,), work)], axis=-1)
    blocks = jnp.take(c, scatter, axis=-1)  # (..., cos/sin, l, m)
    g = jnp.einsum("...clm,mli->...cim", blocks, jnp.asarray(synthesis, work), precision=_PRECISION)
    # Hermitian spectrum X_m = (G_cos - i G_sin) / 2 (the 1/2 is in the table for m > 0):
    # x_j = X_0 + 2 Re Σ_m X_m e^{i m phi_j} = Σ_m G_cos cos(m φ) + G_sin sin(m φ).
    spec = jax.lax.complex(g[..., 0, :, :], -g[..., 1, :, :])
    f = jnp.fft.irfft(spec, n=nlon, axis=-1, norm="forward")
    return f.astype(coeffs.dtype)
