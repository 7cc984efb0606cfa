"""Gaussian random fields with Matérn-type covariance sigma^2 (-Δ + tau^2 I)^(-alpha).

Two domains, the ones the FNO benchmark data are drawn on (Li et al., 2021, "Fourier Neural
Operator for Parametric Partial Differential Equations"):

- the periodic unit torus ``[0, 1)^d`` (Burgers, Navier–Stokes initial conditions), sampled on a
  uniform grid of ``n`` points per axis, ``x_j = j / n``;
- the unit square ``[0, 1]^2`` with homogeneous Neumann conditions (the Darcy coefficient),
  sampled on the ``s x s`` node grid ``x_i = i / (s - 1)`` including the boundary.

On both, the field is a Karhunen–Loève sum over the Laplacian's eigenfunctions (Fourier modes,
resp. cosines) with independent standard normal weights scaled by the square root of the
covariance eigenvalue ``sigma^2 (lambda_k + tau^2)^(-alpha)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import check_bool, check_key, check_positive_int, check_x64_dtype

__all__ = ["grf_neumann", "grf_periodic", "grf_periodic_std"]


def _check_params(alpha: float, tau: float, sigma: float, zero_mean: bool) -> None:
    check_bool("zero_mean", zero_mean, " (truthiness would take 'False' as True)")
    for name, value in (("alpha", alpha), ("tau", tau), ("sigma", sigma)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"`{name}` must be a Python float; got {type(value).__name__}.")
        if not math.isfinite(value):
            raise ValueError(f"`{name}` must be finite; got {value}.")
    if alpha <= 0:
        raise ValueError(f"`alpha` must be > 0 (covariance power); got {alpha}.")
    if tau < 0:
        raise ValueError(f"`tau` must be >= 0; got {tau}.")
    if sigma < 0:
        raise ValueError(f"`sigma` must be >= 0; got {sigma}.")
    if tau == 0 and not zero_mean:
        raise ValueError(
            "`tau`=0 with `zero_mean=False`: the constant mode would have infinite variance "
            "sigma^2 tau^(-2 alpha); pass tau > 0 or zero_mean=True."
        )


def _spectrum_std(k2: np.ndarray, alpha: float, tau: float, sigma: float, zero_mean: bool):
    """sigma (lambda + tau^2)^(-alpha / 2) for Laplacian eigenvalues ``k2`` (index 0 is the
    constant mode, 0 when ``zero_mean``; with tau = 0 it is never evaluated)."""
    std = np.zeros(k2.shape)
    keep = np.ones(k2.shape, bool)
    if zero_mean:
        keep.flat[0] = False
    std[keep] = sigma * (k2[keep] + tau**2) ** (-alpha / 2.0)
    return std


def _float_dtype(dtype) -> np.dtype:
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise TypeError(f"`dtype` must be float32 or float64; got {dtype}.")
    return check_x64_dtype("dtype", dtype)


def _check_shape(shape) -> tuple[int, ...]:
    """A grid shape: an int ``n`` (one axis) or a sequence of ints >= 1."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(
            f"`shape` must be an int n or a sequence of ints (n_1, ..., n_d); got "
            f"{type(shape).__name__} {shape!r}."
        )
    shape = tuple(check_positive_int(f"shape[{i}]", n) for i, n in enumerate(shape))
    if not shape:
        raise ValueError("`shape` must have at least one axis; got ().")
    return shape


def grf_periodic_std(
    shape: int | Sequence[int],
    *,
    alpha: float = 2.0,
    tau: float = 5.0,
    sigma: float = 25.0,
    zero_mean: bool = True,
) -> np.ndarray:
    """Standard deviations of the Fourier coefficients of :func:`grf_periodic`, rfft layout.

    Entry ``k`` is ``sigma (4 pi^2 |k|^2 + tau^2)^(-alpha / 2)`` (``0`` at ``k = 0`` when
    ``zero_mean``), a float64 NumPy array of shape ``(n_1, ..., n_d // 2 + 1)``.
    """
    shape = _check_shape(shape)
    _check_params(alpha, tau, sigma, zero_mean)
    freqs = [np.fft.fftfreq(n, 1.0 / n) for n in shape[:-1]] + [
        np.fft.rfftfreq(shape[-1], 1.0 / shape[-1])
    ]
    k2 = sum(np.meshgrid(*[f**2 for f in freqs], indexing="ij"))
    return _spectrum_std(4.0 * np.pi**2 * k2, alpha, tau, sigma, zero_mean)


def grf_periodic(
    key: PRNGKeyArray,
    shape: int | Sequence[int],
    *,
    alpha: float = 2.0,
    tau: float = 5.0,
    sigma: float = 25.0,
    zero_mean: bool = True,
    dtype=jnp.float32,
) -> Float[Array, "..."]:
    """One sample of the periodic Gaussian random field N(0, sigma^2 (-Δ + tau^2 I)^(-alpha)).

    The field lives on the unit torus ``[0, 1)^d`` and is returned at the grid points
    ``x_j = j / n``. It is exact for the covariance truncated to the grid's Fourier modes: white
    noise on the grid is coloured in Fourier space by the covariance's square root, so the
    coefficient of ``exp(2 pi i k.x)`` has variance ``sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha)``.

    The defaults are the Burgers initial conditions of Li et al. (2021, FNO):
    ``N(0, 625 (-Δ + 25 I)^(-2))``. Their Navier–Stokes initial vorticity is
    ``alpha=2.5, tau=7, sigma=7 ** 1.5`` (the amplitude of their ``GaussianRF`` code, which the
    paper writes as ``N(0, 7^(3/2) (-Δ + 49 I)^(-2.5))``). That code's current version draws
    complex-normal coefficients and has this field's law (pointwise variance 0.0340 from a
    NumPy transcription against 0.0342 here, 32 x 32, 4000 samples); its first (2020) version
    drew real and imaginary parts each N(0, 1), twice the variance: ``sigma = 2 ** 0.5 * 7 **
    1.5`` reproduces that one (0.0689).

    Args:
        key: a PRNG key.
        shape: grid points per axis, ``(n_1, ..., n_d)``, ``d >= 1``; an int ``n`` is ``(n,)``.
        alpha: covariance power (smoothness: samples are in H^s for s < alpha - d/2).
        tau: inverse length scale, ``>= 0`` (``0`` only with ``zero_mean``: the constant mode
            would have infinite variance).
        sigma: amplitude.
        zero_mean: drop the constant mode (as the FNO data do); otherwise it has variance
            ``sigma^2 tau^(-2 alpha)``.
        dtype: float32 (default) or float64 (under ``jax.enable_x64``).

    Returns:
        Array of shape ``shape`` (``(n,)`` for an int) and dtype ``dtype``. ``vmap`` over keys
        for a batch.
    """
    check_key("key", key)
    shape = _check_shape(shape)
    _check_params(alpha, tau, sigma, zero_mean)
    dtype = _float_dtype(dtype)
    std = jnp.asarray(
        grf_periodic_std(shape, alpha=alpha, tau=tau, sigma=sigma, zero_mean=zero_mean), dtype
    )
    noise = jax.random.normal(key, shape, dtype)
    # rfftn of unit white noise has E|c_k|^2 = prod(n); scaling by sqrt(prod(n)) after the
    # normalised inverse gives coefficients of variance std^2 in the exp(2 pi i k.x) basis.
    scale = jnp.asarray(np.sqrt(np.prod(shape)), dtype)
    spec = jnp.fft.rfftn(noise)
    spec = spec * std.astype(spec.dtype)
    return jnp.fft.irfftn(spec, s=shape) * scale


def _cos_basis(s: int, num_modes: int, dtype) -> np.ndarray:
    """Orthonormal Neumann eigenfunctions on [0, 1] at the nodes i/(s-1): (s, num_modes)."""
    x = np.arange(s) / (s - 1)
    k = np.arange(num_modes)
    basis = np.sqrt(2.0) * np.cos(np.pi * np.outer(x, k))
    basis[:, 0] = 1.0
    return basis.astype(dtype)


def grf_neumann(
    key: PRNGKeyArray,
    resolution: int,
    *,
    alpha: float = 2.0,
    tau: float = 3.0,
    sigma: float = 1.0,
    zero_mean: bool = True,
    num_modes: int | None = None,
    dtype=jnp.float32,
) -> Float[Array, "X Y"]:
    """One sample of N(0, sigma^2 (-Δ + tau^2 I)^(-alpha)) on the unit square, Neumann conditions.

    Karhunen–Loève sum over the cosines ``phi_k(x) phi_l(y)``, ``phi_0 = 1``,
    ``phi_k = sqrt(2) cos(pi k x)``, with weights of variance
    ``sigma^2 (pi^2 (k^2 + l^2) + tau^2)^(-alpha)``, evaluated at the nodes
    ``(i, j) / (resolution - 1)`` (boundary included). The defaults are the Darcy coefficient
    field of Li et al. (2021, FNO), ``N(0, (-Δ + 9 I)^(-2))``, before thresholding.

    Args:
        key: a PRNG key.
        resolution: nodes per side ``s >= 2``.
        alpha, tau, sigma, zero_mean: as in :func:`grf_periodic`.
        num_modes: cosines per axis (default ``resolution``, the most the node grid resolves).
        dtype: float32 (default) or float64 (under ``jax.enable_x64``).

    Returns:
        Array of shape ``(resolution, resolution)``, the cosine sum evaluated with
        ``Precision.HIGHEST`` matrix products (no TF32 rounding on GPUs).
    """
    check_key("key", key)
    s = check_positive_int("resolution", resolution, minimum=2)
    m = s if num_modes is None else check_positive_int("num_modes", num_modes)
    _check_params(alpha, tau, sigma, zero_mean)
    dtype = _float_dtype(dtype)
    k = np.arange(m)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    std = _spectrum_std(np.pi**2 * k2, alpha, tau, sigma, zero_mean)
    basis = jnp.asarray(_cos_basis(s, m, np.float64), dtype)
    xi = jax.random.normal(key, (m, m), dtype) * jnp.asarray(std, dtype)
    # Full float32 products: the default GPU precision (TF32) would round the field to ~1e-3
    # relative, so the data (and the Darcy coefficient's sign) would depend on the device.
    highest = jax.lax.Precision.HIGHEST
    return jnp.matmul(jnp.matmul(basis, xi, precision=highest), basis.T, precision=highest)
