"""Transform-Once (T1): a frequency-domain operator with one forward and one inverse transform.

Poli, Massaroli, Berto, Park, Ermon, Hie, Ré, Rusch (2022), "Transform Once: Efficient Operator
Learning in Frequency Domain".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from spectrax._checks import check_positive_int, check_real_float, complex_dtype
from spectrax.nn._factorized import as_complex, complex_normal
from spectrax.nn._pointwise import get_activation
from spectrax.nn._spectral_conv import check_field, check_grid, check_modes, kept_shape
from spectrax.transforms import pad_modes, truncate_modes


def select_modes(
    fields: Float[Array, "B C *spatial"] | np.ndarray,
    num_spatial_dims: int,
    energy: float = 0.99,
) -> tuple[int, ...]:
    """T1 frequency selection: the smallest ``modes`` keeping ``energy`` of the data's spectrum.

    The mean power ``E|c_k|^2`` of the Fourier coefficients of ``fields`` (over batch and
    channels) is accumulated over the FNO-convention block ``|k_j| < m`` (both signs on all but
    the last axis) for ``m = 1, 2, ...`` (clipped per axis to what the grid holds); the first
    ``m`` whose block holds ``energy`` of the total power is returned, one entry per axis. Runs on
    the host (the result is a static hyperparameter).

    Args:
        fields: training inputs ``(B, C, *spatial)``.
        num_spatial_dims: ``d``.
        energy: fraction in (0, 1] of the power to keep (default 0.99).

    Returns:
        ``modes`` for :class:`TransformOnce`.
    """
    d = check_positive_int("num_spatial_dims", num_spatial_dims)
    if not 0 < energy <= 1:
        raise ValueError(f"`energy` must be in (0, 1]; got {energy}.")
    u = np.asarray(fields, np.float64)
    if u.ndim != d + 2:
        raise ValueError(f"`fields` must be (B, C, *spatial) with {d} spatial axes; got {u.shape}.")
    spatial = u.shape[2:]
    axes = tuple(range(2, 2 + d))
    power = np.mean(np.abs(np.fft.fftn(u, axes=axes) / np.prod(spatial)) ** 2, axis=(0, 1))
    freqs = np.meshgrid(*[np.abs(np.fft.fftfreq(n, 1.0 / n)) for n in spatial], indexing="ij")
    total = power.sum()
    limits = [n // 2 for n in spatial[:-1]] + [spatial[-1] // 2 + 1]
    for m in range(1, max(limits) + 1):
        modes = tuple(min(m, lim) for lim in limits)
        inside = np.ones(power.shape, bool)
        for f, mm in zip(freqs, modes, strict=False):
            inside &= f < mm
        if power[inside].sum() >= energy * total * (1 - 1e-12):
            return modes
    return tuple(limits)


def _split(act: Callable[[Array], Array], z: Array) -> Array:
    """A real activation applied to real and imaginary parts separately."""
    return jax.lax.complex(act(z.real), act(z.imag))


class T1Layer(eqx.Module):
    """One frequency-domain layer: ``z + act(M (W z) + b)``: ``W`` mixes channels per mode,
    ``M`` mixes the kept modes (shared by channels), ``act`` is split into real/imaginary parts."""

    channel_weight: Float[Array, "2 Co Ci M"]
    mode_weight: Float[Array, "2 M M2"]
    bias: Float[Array, "2 Co M"]

    def __call__(self, z: Complex[Array, "Ci M"], act) -> Complex[Array, "Co M"]:
        u = jnp.einsum("oim,im->om", as_complex(self.channel_weight).astype(z.dtype), z)
        v = jnp.einsum("mn,on->om", as_complex(self.mode_weight).astype(z.dtype), u)
        return z + _split(act, v + as_complex(self.bias).astype(z.dtype))


class TransformOnce(eqx.Module):
    """Transform-Once operator (Poli et al., 2022) on fields ``(C_in, *spatial)``.

    ``x -> c = truncate(rfftn(x)) (one transform, kept modes) -> encoder (per-mode channel map
    C_in -> width) -> L T1Layers on the truncated spectrum -> decoder (per-mode width -> C_out)
    -> irfftn at the output grid (one inverse)``. Everything between the two transforms acts on
    ``prod(kept)`` coefficients instead of the grid, which is the point of T1; unlike FNO the
    layers mix modes (a dense map over the kept modes), since nothing else would couple them.

    Transforms use ``norm="forward"`` (coefficients of the underlying function: the model applies
    at any resolution holding ``modes``). Initialisation is variance preserving in the frequency
    domain (the paper's point that real-valued default inits do not transfer to complex spectra):
    every complex weight has ``E|W|^2 = 1 / fan_in`` (real and imaginary parts each
    ``1 / (2 fan_in)``), so each map keeps ``E|c_k|^2`` and, by Parseval, the field's variance;
    biases start at zero. Choose ``modes`` with :func:`select_modes` (frequency selection by
    spectral energy of the training data).

    Args:
        num_spatial_dims: ``d``.
        in_channels, out_channels: ``C_in``, ``C_out``.
        width: channels of the hidden spectrum.
        modes: kept modes per axis (FNO convention).
        num_layers: number of :class:`T1Layer` (default 4).
        activation: real activation applied to real and imaginary parts (default ``"gelu"``).
        dtype: parameter dtype (float32).
        key: PRNG key (keyword-only).
    """

    encoder: Float[Array, "2 W Ci M"]
    layers: tuple[T1Layer, ...]
    decoder: Float[Array, "2 Co W M"]
    num_spatial_dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int | Sequence[int],
        num_layers: int = 4,
        *,
        activation: str | Callable[[Array], Array] = "gelu",
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        d = self.num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        width = check_positive_int("width", width)
        num_layers = check_positive_int("num_layers", num_layers, minimum=0)
        self.modes = check_modes(modes, d)
        self.activation = get_activation(activation)
        m = int(np.prod(kept_shape(self.modes)))
        keys = jax.random.split(key, 2 * num_layers + 2)
        self.encoder = complex_normal(
            keys[0], (width, in_channels, m), 1 / math.sqrt(in_channels), dtype
        )
        self.layers = tuple(
            T1Layer(
                channel_weight=complex_normal(
                    keys[1 + 2 * i], (width, width, m), 1 / math.sqrt(width), dtype
                ),
                mode_weight=complex_normal(keys[2 + 2 * i], (m, m), 1 / math.sqrt(m), dtype),
                bias=jnp.zeros((2, width, m), dtype),
            )
            for i in range(num_layers)
        )
        self.decoder = complex_normal(
            keys[-1], (out_channels, width, m), 1 / math.sqrt(width), dtype
        )

    def __call__(
        self, x: Float[Array, " C_in *spatial"], out_shape: Sequence[int] | None = None
    ) -> Float[Array, " C_out *spatial_out"]:
        """Map one field ``(C_in, *spatial)`` to ``(C_out, *out_shape)``, default the input grid."""
        check_real_float("x", x)
        check_field("x", x, self.in_channels, self.num_spatial_dims)
        spatial = tuple(x.shape[1:])
        out_shape = spatial if out_shape is None else tuple(int(s) for s in out_shape)
        check_grid("the input", spatial, self.modes)
        check_grid("the output", out_shape, self.modes)
        real = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
        cdtype = complex_dtype(real)
        axes = tuple(range(1, 1 + self.num_spatial_dims))
        c = truncate_modes(jnp.fft.rfftn(x.astype(real), axes=axes, norm="forward"), self.modes)
        kept = c.shape[1:]
        z = jnp.einsum(
            "wim,im->wm", as_complex(self.encoder).astype(cdtype), c.reshape(c.shape[0], -1)
        )
        for layer in self.layers:
            z = layer(z, self.activation)
        y = jnp.einsum("owm,wm->om", as_complex(self.decoder).astype(cdtype), z)
        y = pad_modes(y.reshape(y.shape[0], *kept), out_shape)
        return jnp.fft.irfftn(y, s=out_shape, axes=axes, norm="forward")
