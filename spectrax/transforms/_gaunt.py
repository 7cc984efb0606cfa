"""Gaunt coefficients of the real spherical harmonics, and the Gaunt tensor product computed
through the sphere (two syntheses, a pointwise product, one analysis) instead of the dense
``O(L^6)`` contraction."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from spectrax._checks import (
    as_jax,
    check_positive_int,
    check_real_float,
    compute_dtype,
    result_dtype,
)
from spectrax.transforms._sht import harmonic_degree, isht, sht, sphere_grid


def gaunt_grid(l_max1: int, l_max2: int, l_max_out: int) -> tuple[int, int]:
    """The smallest :func:`~spectrax.transforms.sphere_grid` ``(nlat, nlon)`` on which
    :func:`gaunt_product` is exact for these degrees.

    The integrand ``Y_{l1 m1} Y_{l2 m2} Y_{l3 m3}`` is, after the longitude sum, a polynomial of
    degree ``l1 + l2 + l3`` in ``cos θ`` (the ``sin^{|m|} θ`` factors pair up: only
    ``±m1 ± m2 ± m3 = 0`` survive) and a trigonometric polynomial of degree ``<= l1 + l2 + l3``
    in ``φ``; with ``L = l_max1 + l_max2 + l_max_out`` the Gauss–Legendre rule needs
    ``2 nlat - 1 >= L`` and the equispaced longitudes ``nlon >= L + 1``. The grid also has to
    carry each transform alone (``nlat >= l + 1``, ``nlon >= 2 l + 1`` for each degree).
    """
    l_max1 = check_positive_int("l_max1", l_max1, minimum=0)
    l_max2 = check_positive_int("l_max2", l_max2, minimum=0)
    l_max_out = check_positive_int("l_max_out", l_max_out, minimum=0)
    total = l_max1 + l_max2 + l_max_out
    top = max(l_max1, l_max2, l_max_out)
    return max((total + 2) // 2, top + 1), max(total + 1, 2 * top + 1)


@functools.lru_cache(maxsize=4)
def _gaunt_table(l_max1: int, l_max2: int, l_max3: int) -> np.ndarray:
    nlat, nlon = gaunt_grid(l_max1, l_max2, l_max3)
    top = max(l_max1, l_max2, l_max3)
    _, _, weights = sphere_grid(nlat, nlon)
    size = (top + 1) ** 2
    # Every Y_a on the grid, synthesised by isht from unit coefficients in float64: the real-SH
    # convention lives in one place. Evaluated now (not staged) even when called under a trace.
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        y = np.asarray(isht(jnp.eye(size, dtype=jnp.float64), nlat, nlon), np.float64)
    y = y.reshape(size, nlat * nlon)
    w = np.repeat(weights * (2.0 * np.pi / nlon), nlon)
    n1, n2, n3 = ((l_max1 + 1) ** 2, (l_max2 + 1) ** 2, (l_max3 + 1) ** 2)
    table = np.einsum("ap,bp,cp->abc", y[:n1] * w, y[:n2], y[:n3], optimize=True)
    table[np.abs(table) < 1e-14] = 0.0  # the selection rules' zeros, free of quadrature dust
    table.setflags(write=False)
    return table


def gaunt_coefficients(
    l_max1: int, l_max2: int, l_max_out: int
) -> Float[np.ndarray, "harmonic1 harmonic2 harmonic_out"]:
    """Real Gaunt coefficients ``G[a, b, c] = ∫ Y_a Y_b Y_c dΩ`` over the unit sphere.

    Luo, Chen & Krishnapriyan, 2024, "Enabling Efficient Equivariant Operations in the Fourier
    Basis via Gaunt Tensor Products" (ICLR). ``Y`` are the real orthonormal harmonics of
    :func:`~spectrax.transforms.real_sph_harm` in its flat order (``a = l^2 + l + m``);
    ``G[:, :, c]`` projects the product of two spherical functions back onto ``Y_c``. For each
    degree triple ``(l1, l2, l3)`` the block of ``G`` is the (real-basis) Clebsch–Gordan block
    of the tensor product of irreps times one factor per triple,
    ``sqrt((2 l1 + 1)(2 l2 + 1) / (4π (2 l3 + 1))) ⟨l1 0 l2 0 | l3 0⟩``, which is zero
    whenever ``l1 + l2 + l3`` is odd: the Gaunt product has only the even-parity paths of the
    full Clebsch–Gordan tensor product (e.g. no cross product ``1 ⊗ 1 -> 1``, no
    ``1 ⊗ 2 -> 2``).

    Selection rules (among others, e.g. accidental zeros of the 3j symbols): ``G`` vanishes
    unless ``l1 + l2 + l3`` is even, the degrees satisfy the triangle inequality, the orders
    can cancel (``|m3| ∈ {|m1| + |m2|, ||m1| - |m2||}``) and an even number of the three
    orders is negative (the ``sin(|m| φ)`` harmonics; an odd number makes the integrand odd
    in ``φ``). ``G[0, b, c] = δ_bc / sqrt(4π)``.

    Computed once per degree triple in float64, by a quadrature that is exact for these
    degrees (:func:`gaunt_grid`) over the harmonics synthesised by
    :func:`~spectrax.transforms.isht`; agrees with the closed form (Wigner 3j symbols) to
    ~1e-15. Entries below 1e-14 in absolute value are set to 0: that removes the quadrature
    dust at the zeros of the selection rules, and also any genuinely smaller coefficient (at
    high degree: the stretched triple ``(25, 25, 50)`` has entries of ~2e-15). The table has
    ``(l_max1 + 1)^2 (l_max2 + 1)^2 (l_max_out + 1)^2`` float64 entries: 1.2e5 (0.9 MB) at
    degree 6 each, 4.8e6 (39 MB) at degree 12 each, 1.8e7 (143 MB) for ``(12, 12, 24)``. The
    four most recently used tables stay cached for the life of the process (``lru_cache``
    with ``maxsize=4``). For products use :func:`gaunt_product`, which never forms the table.

    Args:
        l_max1, l_max2, l_max_out: highest degrees of the two factors and of the result, static
            integers ``>= 0``.

    Returns:
        A read-only NumPy float64 array of shape ``((l_max1 + 1)^2, (l_max2 + 1)^2,
        (l_max_out + 1)^2)``.
    """
    l_max1 = check_positive_int("l_max1", l_max1, minimum=0)
    l_max2 = check_positive_int("l_max2", l_max2, minimum=0)
    l_max_out = check_positive_int("l_max_out", l_max_out, minimum=0)
    return _gaunt_table(l_max1, l_max2, l_max_out)


def gaunt_product(
    x1: Float[Array, "*#batch harmonic1"],
    x2: Float[Array, "*#batch harmonic2"],
    l_max_out: int | None = None,
) -> Float[Array, "*batch harmonic_out"]:
    """The Gaunt tensor product ``z_c = Σ_ab G[a, b, c] x1_a x2_b`` in ``O(L^3)``.

    Luo, Chen & Krishnapriyan, 2024, "Enabling Efficient Equivariant Operations in the Fourier
    Basis via Gaunt Tensor Products" (ICLR): with :func:`gaunt_coefficients` ``G``, ``z`` holds the
    spherical harmonic coefficients (up to ``l_max_out``) of the pointwise product of the two
    functions ``f1 = Σ x1_a Y_a`` and ``f2 = Σ x2_b Y_b``, so it is computed as that product
    on the sphere: ``z = sht(isht(x1) * isht(x2))`` on the grid of :func:`gaunt_grid`, which
    makes it exact (the paper goes through a 2-D Fourier basis to the same end). With the
    SHT's per-``m`` Legendre matrix products that is ``O(L^3)`` per product against ``O(L^6)``
    for the dense contraction (``L`` the largest degree); the product is rotation-equivariant
    (``Y_a`` of degree ``l`` rotate among themselves by the Wigner matrices), bilinear and
    symmetric when ``x1`` and ``x2`` have one degree. For a learnable equivariant layer scale
    ``x1``, ``x2`` per degree before the product, as the paper does.

    Args:
        x1, x2: real coefficients ``(..., (l_max1 + 1)^2)`` and ``(..., (l_max2 + 1)^2)`` in
            :func:`~spectrax.transforms.real_sph_harm`'s order, of the same rank; size-1
            leading axes broadcast (add them explicitly, e.g. ``x2[None]``).
        l_max_out: highest degree of the result (static), default ``l_max1 + l_max2``: the full
            product, above which every coefficient is zero.

    Returns:
        ``(..., (l_max_out + 1)^2)``, dtype the standard JAX promotion of the two inputs'
        dtypes (also under ``jax_numpy_dtype_promotion="strict"``: float32 with float64 gives
        float64, bfloat16 with float16 gives float32). The computation runs in that dtype,
        half precision in float32 with one rounding at the end. Exact to rounding: float64
        agrees with the dense contraction to ~1e-15, float32 to ~1e-7.
    """
    check_real_float("x1", x1)
    check_real_float("x2", x2)
    if x1.ndim < 1 or x2.ndim < 1:
        raise ValueError(
            f"`x1` and `x2` must have shape (..., (l_max + 1)**2); got {x1.shape=}, {x2.shape=}."
        )
    l1, l2 = harmonic_degree("x1", x1.shape), harmonic_degree("x2", x2.shape)
    if l_max_out is None:
        l_max_out = l1 + l2
    l_max_out = check_positive_int("l_max_out", l_max_out, minimum=0)
    if x1.ndim != x2.ndim:
        raise ValueError(
            f"`x1` and `x2` must have the same rank; got {x1.shape=}, {x2.shape=}. Add size-1 "
            "axes explicitly to broadcast."
        )
    try:
        np.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    except ValueError:
        raise ValueError(
            f"the leading dimensions of `x1` {x1.shape[:-1]} and `x2` {x2.shape[:-1]} do not "
            "broadcast."
        ) from None
    nlat, nlon = gaunt_grid(l1, l2, l_max_out)
    x1, x2 = as_jax(x1), as_jax(x2)
    dtype = result_dtype(x1.dtype, x2.dtype)  # explicit, documented promotion
    work = compute_dtype(dtype)
    f = isht(x1.astype(work), nlat, nlon) * isht(x2.astype(work), nlat, nlon)
    return sht(f, l_max_out).astype(dtype)
