"""Spherical convolution: channel mixing per harmonic degree between a spherical harmonic
transform and its inverse (the spectral layer of spherical Fourier neural operators)."""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    as_jax,
    check_float_dtype,
    check_parameters,
    check_positive_int,
    check_real_float,
    compute_dtype,
)
from spectrax._random import normal
from spectrax.transforms import isht, sht
from spectrax.transforms._polynomials import flat_degrees, flat_orders
from spectrax.transforms._sht import check_sphere_grid


def spherical_conv(
    x: Float[Array, "C_in nlat nlon"],
    weight: Float[Array, "C_out C_in degree"],
    output_shape: tuple[int, int] | None = None,
) -> Float[Array, "C_out nlat_out nlon_out"]:
    """``y = isht(Σ_i W[o, i, l] sht(x_i)_lm)``: the spherical convolution of Bonev et al.

    Bonev, Kurth, Hundt, Pathak, Baust, Kashinath & Anandkumar, 2023, "Spherical Fourier Neural
    Operators: Learning Stable Dynamics on the Sphere" (ICML): the convolution theorem on the
    sphere (Driscoll & Healy, 1994) makes the convolution with an isotropic (zonal) kernel a
    per-degree multiplication of the spherical harmonic coefficients; with channels it mixes
    them by one matrix per degree ``l``, shared by the ``2l + 1`` orders. That commutes with
    every rotation of the sphere (the orders of one degree rotate among themselves), as the
    FFT-based spectral conv commutes with translations, and is resolution-independent: the
    output may be synthesised on any grid that carries ``l_max``.

    Args:
        x: fields ``(C_in, nlat, nlon)`` on the :func:`~spectrax.transforms.sphere_grid`
            (Gauss–Legendre latitudes north to south, equispaced longitudes), with
            ``nlat >= l_max + 1``, ``nlon >= 2 l_max + 1``.
        weight: ``(C_out, C_in, l_max + 1)`` real, at least one degree; ``l_max`` is read
            from its last axis.
            Degrees above ``l_max`` are dropped (the layer is a band-limiting filter).
        output_shape: ``(nlat_out, nlon_out)`` of the output grid, default that of ``x``.

    Returns:
        ``(C_out, *output_shape)``, computed in and returned as float64 when ``x`` or
        ``weight`` is float64 (the other is widened, never narrowed, as in
        :func:`~spectrax.nn.spectral_conv`); else computed in float32 and returned in ``x``'s
        dtype (half precision is rounded once, at the end).
    """
    check_real_float("x", x)
    check_real_float("weight", weight)
    if weight.ndim != 3:
        raise ValueError(
            f"`weight` must have shape (C_out, C_in, l_max + 1); got weight.shape={weight.shape}."
        )
    if weight.shape[2] == 0:
        raise ValueError(
            "`weight` must have shape (C_out, C_in, l_max + 1) with at least one degree "
            f"(l_max >= 0); got weight.shape={weight.shape}."
        )
    l_max = weight.shape[2] - 1
    if x.ndim != 3 or x.shape[0] != weight.shape[1]:
        raise ValueError(
            f"`x` must be fields (C_in, nlat, nlon) with C_in={weight.shape[1]} (weight's "
            f"second axis); got x.shape={x.shape}. Batch with jax.vmap."
        )
    check_sphere_grid("`x`", x.shape[1:], l_max, source=" (from `weight`'s last axis)")
    if output_shape is None:
        output_shape = x.shape[1:]
    if (
        not isinstance(output_shape, (tuple, list))
        or len(output_shape) != 2
        or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in output_shape)
    ):
        raise ValueError(
            f"`output_shape` must be a pair of integers (nlat, nlon); got {output_shape!r}."
        )
    output_shape = (int(output_shape[0]), int(output_shape[1]))
    check_sphere_grid("`output_shape`", output_shape, l_max, source=" (from `weight`'s last axis)")
    # Half precision computes in float32 and is rounded once, at the end; a float64 x or
    # weight computes in float64 (a float64 SphericalConv is not narrowed by a float32 input).
    x, weight = as_jax(x), as_jax(weight)
    work = compute_dtype(x.dtype, weight.dtype)
    out_dtype = work if work == jnp.float64 else x.dtype
    coeffs = sht(x.astype(work), l_max)  # (C_in, H)
    # Mix on a (degree, order) grid, one (C_out, C_in) matrix per degree, rather than
    # expanding the weight to every order: that would be a (C_out, C_in, (l_max + 1)^2) array,
    # l_max + 1 times the weight (4 GB for 256 channels at l_max = 127), forward and backward.
    to_grid, from_grid = _degree_order_grid(l_max)
    coeffs = jnp.concatenate([coeffs, jnp.zeros((coeffs.shape[0], 1), work)], axis=-1)
    blocks = jnp.take(coeffs, to_grid, axis=-1)  # (C_in, l, m + l_max), zero for |m| > l
    mixed = jnp.einsum(
        "oil,ilm->olm", weight.astype(work), blocks, precision=jax.lax.Precision.HIGHEST
    )
    mixed = jnp.take(mixed.reshape(mixed.shape[0], -1), from_grid, axis=-1)  # (C_out, H)
    return isht(mixed, *output_shape).astype(out_dtype)


@functools.lru_cache(maxsize=32)
def _degree_order_grid(l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Index maps between the flat harmonic axis (``l^2 + l + m``) and a ``(l, m + l_max)``
    grid of shape ``(l_max + 1, 2 l_max + 1)``: ``to_grid[l, m + l_max]`` is the flat index of
    ``(l, m)``, or ``(l_max + 1)^2`` (a zero) where ``|m| > l``; ``from_grid[k]`` is the
    row-major grid position of flat index ``k``."""
    l, m = flat_degrees(l_max), flat_orders(l_max)
    size = (l_max + 1) ** 2
    to_grid = np.full((l_max + 1, 2 * l_max + 1), size, np.int32)
    to_grid[l, m + l_max] = np.arange(size)
    from_grid = (l * (2 * l_max + 1) + m + l_max).astype(np.int32)
    for t in (to_grid, from_grid):
        t.setflags(write=False)
    return to_grid, from_grid


class SphericalConv(eqx.Module):
    """Spherical convolution layer: :func:`spherical_conv` with a learnable per-degree weight.

    Bonev et al., 2023, "Spherical Fourier Neural Operators: Learning Stable Dynamics on the
    Sphere". Weight layout ``(out_channels, in_channels, l_max + 1)``: one real channel-mixing
    matrix per harmonic degree, ``out_channels * in_channels * (l_max + 1)`` parameters,
    initialised ``N(0, 1 / in_channels)`` (a random field's variance per degree is kept in
    expectation).

    Args:
        in_channels, out_channels: channel counts.
        l_max: highest degree kept, ``>= 0``.
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).

    Call with ``(in_channels, nlat, nlon)`` and an optional ``output_shape``.
    """

    weight: Float[Array, "C_out C_in degree"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    l_max: int = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {
        "C_out": "out_channels",
        "C_in": "in_channels",
        "degree": lambda layer: layer.l_max + 1,
    }

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        l_max: int,
        *,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.l_max = check_positive_int("l_max", l_max, minimum=0)
        shape = (out_channels, in_channels, self.l_max + 1)
        dtype = check_float_dtype("dtype", dtype)
        self.weight = normal(key, shape, dtype, math.sqrt(1.0 / in_channels))

    def __call__(
        self, x: Float[Array, "C_in nlat nlon"], output_shape: tuple[int, int] | None = None
    ) -> Float[Array, "C_out nlat_out nlon_out"]:
        check_parameters(self)
        return spherical_conv(x, self.weight, output_shape)
