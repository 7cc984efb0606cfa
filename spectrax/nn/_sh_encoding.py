"""Spherical-harmonic location encoding and the SH + SIREN location encoder.

Rußwurm, Klemmer, Rolf, Zbinden & Tuia (2024), "Geographic Location Encoding with Spherical
Harmonics and Sinusoidal Representation Networks" (ICLR).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import check_positive_int, check_real_float, compute_dtype
from spectrax.nn._siren import Siren
from spectrax.transforms import real_sph_harm


def spherical_harmonic_encoding(
    lonlat: Float[Array, "*batch 2"], l_max: int
) -> Float[Array, "*batch harmonic"]:
    """Every real orthonormal spherical harmonic ``Y_lm``, ``l <= l_max``, at a longitude/latitude.

    Rußwurm et al., 2024, "Geographic Location Encoding with Spherical Harmonics and Sinusoidal
    Representation Networks": a positional embedding native to the sphere, with no seam at the
    date line and no crowding at the poles (unlike sine/cosine features of longitude and
    latitude, which assume a rectangle). The paper's ``L`` Legendre polynomials are degrees
    ``0 .. L - 1`` here, ``l_max = L - 1``.

    The point ``(lon, lat)`` in degrees maps to the colatitude ``θ = 90° - lat`` and azimuth
    ``φ = lon`` of :func:`~spectrax.transforms.real_sph_harm` (whose order and normalisation the
    features follow: index ``l^2 + l + m``, ``∫ Y_lm Y_l'm' dΩ = δ δ``). By the addition
    theorem every point's features have the same norm, ``Σ_lm Y_lm^2 = (l_max + 1)^2 / (4π)``,
    and the inner product of two points' features depends only on the angle between them:
    the embedding is rotation-invariant as a kernel.

    Args:
        lonlat: ``(..., 2)``: longitude in degrees (any real; periodic), then latitude in
            degrees in ``[-90, 90]`` (not checked: values outside fold over the pole).
        l_max: highest degree, a static integer ``>= 0``. float32 is accurate to ~1e-6 up to
            ``l_max ~ 20`` (see :func:`~spectrax.transforms.real_sph_harm`); use float64 beyond.

    Returns:
        ``(..., (l_max + 1)^2)`` in ``lonlat``'s dtype (half precision computes in float32).
    """
    check_real_float("lonlat", lonlat)
    l_max = check_positive_int("l_max", l_max, minimum=0)
    if lonlat.ndim < 1 or lonlat.shape[-1] != 2:
        raise ValueError(
            f"`lonlat` must have shape (..., 2): longitude then latitude in degrees; got "
            f"lonlat.shape={lonlat.shape}."
        )
    work = compute_dtype(lonlat.dtype)
    rad = jnp.asarray(math.pi / 180.0, work)
    lon, lat = lonlat[..., 0].astype(work), lonlat[..., 1].astype(work)
    y = real_sph_harm(l_max, (90.0 - lat) * rad, lon * rad)  # (harmonic, ...)
    return jnp.moveaxis(y, 0, -1).astype(lonlat.dtype)


class SphericalLocationEncoder(eqx.Module):
    """Spherical-harmonic features followed by a SIREN: the SH + SirenNet location encoder.

    Rußwurm et al., 2024, "Geographic Location Encoding with Spherical Harmonics and Sinusoidal
    Representation Networks": :func:`spherical_harmonic_encoding` up to ``l_max`` (a fixed,
    parameter-free embedding), then a :class:`~spectrax.nn.Siren` (Sitzmann et al., 2020) of
    ``depth`` sine layers and a linear output. The paper's best global encoder; it reads the
    SIREN on SH features as a learned refinement of a double-Fourier-sphere embedding.

    Args:
        l_max: highest harmonic degree (the paper's ``L`` Legendre polynomials are
            ``l_max = L - 1``; it uses ``L`` = 10 to 40).
        hidden_features: SIREN width. out_features: output size. depth: sine layers (``>= 1``).
        omega_0, hidden_omega_0: the SIREN frequency scales (defaults 1.0: the SH features
            already carry the spatial frequencies up to ``l_max``; the image-fitting 30.0 of
            the SIREN paper would multiply them by 30).
        dtype: parameter dtype (float32). key: PRNG key (keyword-only).

    Call with one point ``(2,)`` = (longitude, latitude) in degrees; returns
    ``(out_features,)``. Batch with ``jax.vmap``.
    """

    siren: Siren
    l_max: int = eqx.field(static=True)

    def __init__(
        self,
        l_max: int,
        hidden_features: int,
        out_features: int,
        depth: int = 2,
        *,
        omega_0: float = 1.0,
        hidden_omega_0: float = 1.0,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.l_max = check_positive_int("l_max", l_max, minimum=0)
        self.siren = Siren(
            (self.l_max + 1) ** 2,
            hidden_features,
            out_features,
            depth,
            omega_0=omega_0,
            hidden_omega_0=hidden_omega_0,
            dtype=dtype,
            key=key,
        )

    def __call__(self, lonlat: Float[Array, " 2"]) -> Float[Array, " O"]:
        check_real_float("lonlat", lonlat)
        if lonlat.shape != (2,):
            raise ValueError(
                f"`lonlat` must be one point (2,): longitude then latitude in degrees; got "
                f"lonlat.shape={lonlat.shape}. Batch with jax.vmap."
            )
        features = spherical_harmonic_encoding(lonlat, self.l_max)
        return self.siren(features.astype(self.siren.final_weight.dtype))
