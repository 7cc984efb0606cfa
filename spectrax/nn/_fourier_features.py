"""Random Fourier features and NeRF positional encoding of low-dimensional coordinates.

Tancik, Srinivasan, Mildenhall, Fridovich-Keil, Raghavan, Singhal, Ramamoorthi, Barron, Ng (2020),
"Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional Domains".
Mildenhall, Srinivasan, Tancik, Barron, Ramamoorthi, Ng (2020), "NeRF: Representing Scenes as
Neural Radiance Fields for View Synthesis".
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    as_jax,
    check_bool,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    compute_dtype,
    lift_rank,
)
from spectrax._random import normal


def fourier_features(x: Float[Array, "... D"], B: Float[Array, "F D"]) -> Float[Array, "... 2*F"]:
    """``[cos(2 pi x B^T), sin(2 pi x B^T)]``: the Fourier feature map of Tancik et al. (2020).

    With the rows of ``B`` drawn from ``N(0, sigma^2 I)`` the features are random Fourier features
    (Rahimi & Recht, 2007): ``gamma(x) . gamma(y) / F`` is an unbiased Monte-Carlo estimate of the
    Gaussian kernel ``exp(-2 pi^2 sigma^2 |x - y|^2)`` with standard error ``<= 1/sqrt(2F)``, and
    ``|gamma(x)|^2 = F`` exactly.

    Args:
        x: coordinates ``(..., D)``; any leading dimensions.
        B: frequency matrix ``(F, D)``.

    Returns:
        ``(..., 2F)``: the ``F`` cosines, then the ``F`` sines, in ``x``'s dtype.

    The phases ``2 pi x B^T`` are large by design (tens of radians for ``sigma = 10``), so they are
    computed in float32 (float64 if ``x`` or ``B`` is float64) with ``Precision.HIGHEST``: a
    TF32/bfloat16 matrix product would put errors of order ``1e-2`` rad into them. The absolute
    phase error is still about ``|2 pi x B^T| * 6e-8`` in float32.
    """
    check_real_float("x", x)
    check_real_float("B", B)
    x, B = as_jax(x), as_jax(B)  # NumPy float64 without x64: JAX's float32, no truncation warning
    if B.ndim != 2:
        raise ValueError(f"`B` must be a matrix (F, D); got B.shape={B.shape}.")
    if x.ndim < 1 or x.shape[-1] != B.shape[1]:
        raise ValueError(
            f"`x` must have the D={B.shape[1]} coordinates of `B` (F, D) on its last axis; "
            f"got x.shape={x.shape}, B.shape={B.shape}."
        )
    dtype = compute_dtype(x.dtype, B.dtype)
    phase = (2.0 * math.pi) * jnp.tensordot(
        x.astype(dtype),
        B.astype(dtype),
        axes=((x.ndim - 1,), (1,)),
        precision=jax.lax.Precision.HIGHEST,
    )
    return jnp.concatenate([jnp.cos(phase), jnp.sin(phase)], axis=-1).astype(x.dtype)


def positional_encoding(
    x: Float[Array, "... D"], num_frequencies: int, *, include_input: bool = False
) -> Float[Array, "... E"]:
    """NeRF positional encoding: ``sin`` and ``cos`` of ``2^k pi x``, ``k = 0 .. K-1``.

    Mildenhall et al. (2020), eq. 4: ``gamma(p) = (sin(2^0 pi p), cos(2^0 pi p), ...,
    sin(2^(K-1) pi p), cos(2^(K-1) pi p))`` applied to every coordinate. The paper scales
    coordinates to ``[-1, 1]`` first.

    Args:
        x: coordinates ``(..., D)``; any leading dimensions.
        num_frequencies: ``K >= 1``, the number of octaves.
        include_input: prepend ``x`` itself (what the NeRF reference code does, the paper's
            ``gamma`` does not). Default False: the paper's ``gamma`` only.

    Returns:
        ``(..., E)`` in ``x``'s dtype with ``E = 2 K D`` (``E = D + 2 K D`` with ``x``): all the
        sines, then all the cosines; within each half entry ``k D + d`` is frequency ``2^k pi``
        of coordinate ``d``. The same numbers as the paper's ``gamma``, in a different order.

    Computed in float32 (float64 for float64 ``x``); the phase error grows like ``2^k``
    (about ``2^k * 2e-7`` rad for ``|x| <= 1`` in float32). ``num_frequencies`` above 127
    (float32) or 1023 (float64), where ``2^(K-1) pi`` overflows, is refused.
    """
    check_real_float("x", x)
    x = as_jax(x)  # NumPy float64 without x64: JAX's float32, no truncation warning
    num_frequencies = check_positive_int("num_frequencies", num_frequencies)
    include_input = check_bool("include_input", include_input)
    if x.ndim < 1:
        raise ValueError(f"`x` must have a coordinate axis (..., D); got x.shape={x.shape}.")
    dtype = compute_dtype(x.dtype)
    # 2^(K-1) pi must be finite in `dtype`, else the top octaves are inf and sin(inf) NaN.
    top = np.finfo(dtype).maxexp - 2
    if num_frequencies - 1 > top:
        raise ValueError(
            f"`num_frequencies`={num_frequencies} is too many for {dtype} coordinates: "
            f"2^{num_frequencies - 1} pi overflows {dtype}, so those features would be NaN. "
            f"Expected num_frequencies <= {top + 1} (in practice far fewer: in {dtype} the "
            f"phase 2^k pi x has no correct digits once 2^k exceeds 1/eps = "
            f"{1 / np.finfo(dtype).eps:.0e})."
        )
    # Powers of two are exact, so the only rounding in the phase is that of pi * x.
    octaves = jnp.asarray(2.0 ** np.arange(num_frequencies), dtype)
    px = math.pi * x.astype(dtype)
    phase = px[..., None, :] * lift_rank(octaves[:, None], x.ndim + 1)
    phase = phase.reshape(*x.shape[:-1], num_frequencies * x.shape[-1])
    parts = [jnp.sin(phase), jnp.cos(phase)]
    if include_input:
        parts.insert(0, x.astype(dtype))
    return jnp.concatenate(parts, axis=-1).astype(x.dtype)


class FourierFeatures(eqx.Module):
    """Gaussian random Fourier features of one point (Tancik et al., 2020).

    ``x -> [cos(2 pi B x), sin(2 pi B x)]`` with ``B ~ N(0, sigma^2)`` of shape ``(F, D)``.
    ``sigma`` sets the bandwidth of the induced kernel ``exp(-2 pi^2 sigma^2 |x - y|^2)``, and so
    the frequencies an MLP on top can fit: too small underfits, too large gives noisy
    interpolation. The paper sweeps ``sigma`` in ``[1, 100]`` for coordinates in ``[0, 1]``.

    Args:
        in_features: ``D``.
        num_features: ``F``; the output has ``2F`` entries.
        sigma: standard deviation of the entries of ``B`` (default 10.0).
        trainable: learn ``B`` (default False, as in the paper). When False, ``__call__`` wraps
            ``B`` in ``jax.lax.stop_gradient``, so its gradient is exactly zero and gradient-based
            optimisers without weight decay leave it unchanged. Decoupled weight decay (AdamW)
            would still shrink it: :func:`~spectrax.nn.frozen_param_mask` marks it, for
            ``optax.masked``; ``spectrax.train`` leaves it unchanged.
        dtype: dtype of ``B`` (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).
    """

    B: Float[Array, "F D"]
    in_features: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    trainable: bool = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {"F": "num_features", "D": "in_features"}

    def __init__(
        self,
        in_features: int,
        num_features: int,
        *,
        sigma: float = 10.0,
        trainable: bool = False,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.in_features = check_positive_int("in_features", in_features)
        self.num_features = check_positive_int("num_features", num_features)
        self.sigma = check_positive_float("sigma", sigma)
        self.trainable = check_bool("trainable", trainable)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        # Drawn in float32 (float64) and rounded once: jax.random.normal in bfloat16 takes only
        # 128 distinct values, none beyond 2.89 sigma, so that FourierFeatures(1, 256) had 111
        # distinct frequencies (145 duplicated features) instead of 227.
        self.B = normal(key, (num_features, in_features), dtype, self.sigma)

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, " E"]:
        """``(D,) -> (2F,)``: cosines then sines; batch with ``jax.vmap``."""
        check_parameters(self)
        check_real_float("x", x)
        if x.shape != (self.in_features,):
            raise ValueError(
                f"`x` must be one point of shape ({self.in_features},); got x.shape={x.shape}. "
                "Batch with jax.vmap."
            )
        B = self.B if self.trainable else jax.lax.stop_gradient(self.B)
        return fourier_features(x, B)
