"""Transform-Once (T1): a frequency-domain operator with one forward and one inverse transform.

Poli, Massaroli, Berto, Park, Ermon, Hie, Ré, Rusch (2022), "Transform Once: Efficient Operator
Learning in Frequency Domain".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from spectrax._checks import (
    check_choice,
    check_float_dtype,
    check_grid_shape,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    complex_dtype,
    compute_dtype,
)
from spectrax._compile import compiled_call
from spectrax._random import split_normals
from spectrax.nn._factorized import as_complex
from spectrax.nn._pointwise import get_activation
from spectrax.nn._spectral_conv import (
    _forward_rfft,
    _inverse_rfft,
    check_field,
    check_grid,
    check_modes,
    check_out_shape,
    kept_shape,
    nyquist_weights,
)
from spectrax.transforms import dct, idct, truncate_modes

TRANSFORMS = ("rfft", "dct")


def _np_dct(u: np.ndarray, axis: int) -> np.ndarray:
    """Orthonormal DCT-II along ``axis`` in float64 on the host (as :func:`spectrax.dct`)."""
    n = u.shape[axis]
    k, j = np.arange(n)[:, None], np.arange(n)[None, :]
    mat = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * j + 1) / (2 * n))
    mat[0] /= np.sqrt(2.0)
    return np.moveaxis(np.tensordot(mat, u, axes=([1], [axis])), 0, axis)


def _check_dct_grid(name: str, spatial: Sequence[int], modes: Sequence[int]) -> None:
    for i, (n, m) in enumerate(zip(spatial, modes, strict=True)):
        if m > n:
            raise ValueError(
                f"`modes[{i}]`={m} is too many for {name} spatial shape {tuple(spatial)}: axis {i} "
                f"of size {n} holds at most {n} cosine modes (transform='dct'). Use a finer grid "
                f"or fewer modes (modes <= {n})."
            )


def _forward_dct(x, modes, axes):
    """The first ``modes`` DCT-II coefficients per axis, scaled by ``1/sqrt(n)`` per axis: the
    cosine coefficients of the function the cell-centred samples come from, on any grid."""
    for ax, m in zip(axes, modes, strict=True):
        n = x.shape[ax]
        x = jax.lax.slice_in_dim(dct(x, axis=ax), 0, m, axis=ax) / math.sqrt(n)
    return x


def _inverse_dct(y, out_shape, axes):
    """The cosine series ``y`` at the cell centres of ``out_shape`` (inverse of
    :func:`_forward_dct` on a grid holding the modes)."""
    for ax, n in zip(axes, out_shape, strict=True):
        pad = [(0, 0)] * y.ndim
        pad[ax] = (0, n - y.shape[ax])
        y = idct(jnp.pad(y, pad), axis=ax) * math.sqrt(n)
    return y


def _check_transform(transform: str) -> str:
    check_choice("transform", transform, TRANSFORMS)
    return transform


def select_modes(
    fields: Float[Array, "B C *spatial"] | np.ndarray,
    num_spatial_dims: int,
    energy: float = 0.99,
    *,
    transform: str = "rfft",
) -> tuple[int, ...]:
    """T1 frequency selection: the smallest ``modes`` keeping ``energy`` of the data's spectrum.

    The mean power ``E|c_k|^2`` of the Fourier coefficients of ``fields`` (over batch and
    channels) is accumulated over the FNO-convention block ``|k_j| < m`` (both signs on all but
    the last axis) for ``m = 1, 2, ...`` (clipped per axis to what the grid holds); the first
    ``m`` whose block holds ``energy`` of the total power is returned, one entry per axis. With
    ``transform="dct"`` the coefficients are the orthonormal DCT-II's and the block is
    ``k_j < m`` (cosine modes are non-negative). Runs on the host (the result is a static
    hyperparameter).

    Args:
        fields: training inputs ``(B, C, *spatial)``.
        num_spatial_dims: ``d``.
        energy: fraction in (0, 1] of the power to keep (default 0.99).
        transform: ``"rfft"`` (default) or ``"dct"``, as the model's.

    Returns:
        ``modes`` for :class:`TransformOnce`.
    """
    d = check_positive_int("num_spatial_dims", num_spatial_dims)
    if isinstance(energy, bool) or not isinstance(energy, (int, float, np.integer, np.floating)):
        raise TypeError(f"`energy` must be a Python float; got {type(energy).__name__}.")
    if not 0 < energy <= 1:
        raise ValueError(f"`energy` must be in (0, 1]; got {energy}.")
    u = np.asarray(fields, np.float64)
    if u.ndim != d + 2:
        raise ValueError(f"`fields` must be (B, C, *spatial) with {d} spatial axes; got {u.shape}.")
    spatial = u.shape[2:]
    axes = tuple(range(2, 2 + d))
    if _check_transform(transform) == "dct":
        for ax in axes:
            u = _np_dct(u, ax)
        power = np.mean(u**2, axis=(0, 1))
        freqs = np.meshgrid(*[np.arange(n, dtype=float) for n in spatial], indexing="ij")
        limits = list(spatial)
    else:
        power = np.mean(np.abs(np.fft.fftn(u, axes=axes) / np.prod(spatial)) ** 2, axis=(0, 1))
        freqs = np.meshgrid(*[np.abs(np.fft.fftfreq(n, 1.0 / n)) for n in spatial], indexing="ij")
        limits = [n // 2 for n in spatial[:-1]] + [spatial[-1] // 2 + 1]
    total = power.sum()
    for m in range(1, max(limits) + 1):
        modes = tuple(min(m, lim) for lim in limits)
        inside = np.ones(power.shape, bool)
        for f, mm in zip(freqs, modes, strict=False):
            inside &= f < mm
        if power[inside].sum() >= energy * total * (1 - 1e-12):
            return modes
    return tuple(limits)


def spectral_scale(
    fields: Float[Array, "B C *spatial"] | np.ndarray,
    modes: int | Sequence[int],
    *,
    floor: float = 1e-3,
    transform: str = "rfft",
) -> np.ndarray:
    """Root-mean-square magnitude of each kept Fourier coefficient of ``fields``, per channel.

    ``sqrt(E_batch |c_{c,k}|^2)`` of ``rfftn(fields, norm="forward")`` over the FNO-convention
    block of ``modes`` (the layout :class:`TransformOnce` works in), clipped below at ``floor``
    times the channel's largest value so that modes the data never excite do not blow up when
    divided by. Pass the training inputs as ``in_scale`` and the training targets as
    ``out_scale`` of :class:`TransformOnce`: the layers then see (and produce) coefficients of
    order one at every kept mode, instead of a spectrum whose magnitude falls by orders across
    the kept band (for smooth fields the highest kept modes would otherwise sit in the nearly
    linear range of the activation and get vanishing gradients). A kept Nyquist coefficient (2m = n
    on a leading axis, m = n/2 + 1 on the last) is halved, as the model's transform holds it
    (:func:`spectrax.nn.nyquist_weights`). With ``transform="dct"`` the coefficients are the
    model's DCT ones (orthonormal DCT-II divided by ``sqrt(n)`` per axis, first ``m`` per axis).
    Runs on the host.

    Args:
        fields: ``(B, C, *spatial)`` training inputs or targets.
        modes: kept modes per axis (int or ``d`` ints), as the model's.
        floor: relative lower bound, in (0, 1].
        transform: ``"rfft"`` (default) or ``"dct"``, as the model's.

    Returns:
        float64 NumPy array of shape ``(C, *kept)`` (``(C, *modes)`` for the DCT).
    """
    u = np.asarray(fields, np.float64)
    if u.ndim < 3:
        raise ValueError(f"`fields` must be (B, C, *spatial); got shape {u.shape}.")
    d = u.ndim - 2
    modes = check_modes(modes, d)
    _check_transform(transform)
    if check_positive_float("floor", floor) > 1:
        raise ValueError(f"`floor` must be in (0, 1]; got {floor}.")
    if transform == "dct":
        _check_dct_grid("`fields`", u.shape[2:], modes)
        for i, m in enumerate(modes):
            u = np.take(_np_dct(u, 2 + i), np.arange(m), axis=2 + i) / np.sqrt(u.shape[2 + i])
        rms = np.sqrt(np.mean(u**2, 0))
        top = rms.reshape(rms.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * d)
        return np.maximum(rms, floor * np.where(top > 0, top, 1.0))
    check_grid("`fields`", u.shape[2:], modes)
    power = np.mean(np.abs(np.fft.rfftn(u, axes=tuple(range(2, 2 + d)), norm="forward")) ** 2, 0)
    # the kept block in the model's layout (the power is accumulated in float64 on the host; a
    # scale needs no more than float32 from here)
    power = np.asarray(truncate_modes(jnp.asarray(power, jnp.float32), modes), np.float64)
    # what the model's transform holds: a kept Nyquist coefficient (-n/2 on a leading axis,
    # +n/2 on the last) halved, so that it reads the same cosine as on a finer grid
    for i, (n, m) in enumerate(zip(u.shape[2:], modes, strict=True)):
        half = nyquist_weights(n, m, last=i == d - 1)
        if half is not None:
            shape = [1] * power.ndim
            shape[1 + i] = -1
            power = power * half.reshape(shape) ** 2
    rms = np.sqrt(power)
    top = rms.reshape(rms.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * d)
    return np.maximum(rms, floor * np.where(top > 0, top, 1.0))


def _as_scale(name: str, value, channels: int, kept: tuple[int, ...]):
    """A per-mode scale as a static tuple of floats of shape (channels, prod(kept))."""
    if value is None:
        return None
    v = np.asarray(value, np.float64)
    try:
        v = np.broadcast_to(v, (channels, *kept))
    except ValueError:
        raise ValueError(
            f"`{name}` must broadcast to (channels, *kept modes) = {(channels, *kept)}; "
            f"got shape {v.shape} (build it with spectrax.models.spectral_scale)."
        ) from None
    if not np.all(np.isfinite(v)) or not np.all(v > 0):
        raise ValueError(f"`{name}` must be finite and > 0 everywhere.")
    return tuple(tuple(float(t) for t in row) for row in v.reshape(channels, -1))


INITS = ("per_mode", "variance_preserving")


def white_noise_gain(
    resolution: Sequence[int], modes: int | Sequence[int], *, transform: str = "rfft"
) -> float:
    """``Var(y) / Var(x)`` of ``x -> irfftn(W . truncate(rfftn(x)))`` at ``resolution``, for
    white noise ``x`` and independent circular complex weights with ``E|W_k|^2 = 1``, in the
    model's transforms (``norm="forward"``, FNO-convention ``modes``, kept Nyquist halved).

    Every kept coefficient of white noise of variance ``s^2`` on ``N`` points has power
    ``s^2 / N`` (a kept Nyquist one a quarter of it, halved on input); on output a coefficient
    with nonzero last-axis frequency is counted for both signs (``2x``), one on the frequency-0
    plane of the last axis, or on its Nyquist plane, only through its Hermitian part (``1/2x``;
    the Nyquist plane's doubling on output makes up the input halving). So the gain is
    ``prod_axes(sum of per-axis factors) / N``; in 1-d ``(1/2 + 2 (m - 1)) / n`` without a kept
    Nyquist. It is what truncation and the Hermitian projection lose of the field's variance.
    With ``transform="dct"`` (orthonormal, real weights of unit power) it is the paper's
    ``m / N``: ``prod(modes) / prod(resolution)``.

    Args:
        resolution: the grid, ``d`` positive ints (an int ``n``: ``n`` on every axis of
            ``modes``, as :class:`TransformOnce`'s ``resolution``).
        modes: kept modes per axis (int or ``d`` ints), as :class:`TransformOnce`'s; the grid
            must hold them.
        transform: ``"rfft"`` (default) or ``"dct"``, as the model's.

    Returns:
        The gain, a Python float in ``(0, 1]``.
    """
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        # as TransformOnce's `resolution`: n on every axis of `modes`
        d = len(modes) if np.ndim(modes) == 1 else 1
        resolution = (resolution,) * d  # a bad `modes` is named by check_modes below
    try:
        ndim = len(resolution)
    except TypeError:  # was "'NoneType' object is not iterable", naming nothing
        raise ValueError(
            f"`resolution` must be the grid, an int n or d ints (n_1, ..., n_d); got "
            f"{resolution!r}."
        ) from None
    resolution = check_grid_shape("resolution", resolution, ndim)
    modes = check_modes(modes, len(resolution))
    if _check_transform(transform) == "dct":
        _check_dct_grid("the `resolution`", resolution, modes)
        return float(np.prod(modes)) / float(np.prod(resolution))
    check_grid("the `resolution`", resolution, modes)
    n, m = resolution[-1], modes[-1]
    factors = np.full(m, 2.0)
    factors[0] = 0.5
    if n % 2 == 0 and m == n // 2 + 1:
        factors[-1] = 0.5
    total = float(factors.sum())
    for n, m in zip(resolution[:-1], modes[:-1], strict=True):
        total *= 2 * m - (0.75 if n % 2 == 0 and m == n // 2 else 0.0)
    return total / float(np.prod(resolution))


def _split(act: Callable[[Array], Array], z: Array) -> Array:
    """A real activation applied to real and imaginary parts separately."""
    return jax.lax.complex(act(z.real), act(z.imag))


class T1Layer(eqx.Module):
    """One frequency-domain layer: ``z + act(M (W z) + b)``: ``W`` mixes channels per mode,
    ``M`` mixes the kept modes (shared by channels). Complex (``transform="rfft"``: weights
    stored as (real, imag) pairs, ``act`` applied to real and imaginary parts) or real
    (``transform="dct"``: real weights, a real spectrum)."""

    channel_weight: Float[Array, "*pair W W M"]
    mode_weight: Float[Array, "*pair M M"]
    bias: Float[Array, "*pair W M"]

    def __check_init__(self):
        cw, mw, b = (tuple(a.shape) for a in (self.channel_weight, self.mode_weight, self.bias))
        pair = cw[:1] if len(cw) == 4 and cw[0] == 2 else ()
        core = cw[len(pair) :]
        ok = len(core) == 3 and core[0] == core[1]
        ok = ok and mw == (*pair, core[-1], core[-1]) and b == (*pair, core[0], core[-1])
        if not ok:
            raise ValueError(
                "T1Layer weights must be channel_weight (W, W, M), mode_weight (M, M) and bias "
                "(W, M), all real, or all with a leading 2 (real, imag) for a complex layer (the "
                f"layer is residual, so it keeps W channels and M modes); got channel_weight {cw}, "
                f"mode_weight {mw}, bias {b}."
            )

    @property
    def is_complex(self) -> bool:
        return self.channel_weight.ndim == 4

    def __call__(self, z: Complex[Array, "W M"] | Float[Array, "W M"], act) -> Array:
        """Apply the layer to the kept spectrum ``z`` ``(W, M)`` (complex for a complex layer,
        real floating point for a real one); ``act`` is a real activation."""
        check_parameters(self)
        want = self.channel_weight.shape[-3:-1][:1] + self.channel_weight.shape[-1:]
        kind = "complex" if self.is_complex else "real floating-point"
        ok_dtype = jnp.iscomplexobj(z) if self.is_complex else jnp.issubdtype(z.dtype, jnp.floating)
        if not ok_dtype or z.shape != want:
            raise ValueError(
                f"`z` must be a {kind} (W, M) = {want} spectrum; got shape {z.shape}, "
                f"dtype {z.dtype}."
            )
        if not self.is_complex:
            u = jnp.einsum("oim,im->om", self.channel_weight.astype(z.dtype), z)
            v = jnp.einsum("mn,on->om", self.mode_weight.astype(z.dtype), u)
            return z + act(v + self.bias.astype(z.dtype))
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
    at any resolution holding ``modes``). Optionally the spectrum is standardised per mode:
    ``in_scale`` divides the input coefficients and ``out_scale`` multiplies the decoder's output
    (fixed, not trained; :func:`spectral_scale` computes them from training data).

    ``transform="dct"`` is the real transform the paper chooses for T1: the orthonormal DCT-II
    along every axis, the first ``modes[j]`` cosines per axis (``m <= n``; ``prod(modes)``
    coefficients), divided by ``sqrt(n)`` per axis, real weights, biases and activations
    throughout, and the cosine series evaluated at the output grid by the DCT-III. It reads a
    field as samples at the cell centres ``(j + 1/2) / n`` of ``[0, 1]^d`` (even extension: no
    wrap-around jump, so it suits non-periodic fields) and, like the rfft, applies at any
    resolution holding ``modes``. The rfft's ``m`` frequencies span about what ``2m`` cosines
    do.

    Initialisation (the paper's point that real-valued default inits do not transfer to complex
    spectra). With ``init="per_mode"`` (default) every complex weight has ``E|W|^2 = 1 / fan_in``
    (real and imaginary parts each ``1 / (2 fan_in)``), biases start at zero. So the encoder, the
    decoder and each layer's channel map keep the per-mode power ``E|c_k|^2``, and the mode map
    keeps its mean over the kept modes: a band-limited field the kept modes hold comes out with
    its variance (``num_layers=0``). The model as a whole does not keep a general field's
    variance:

    - each :class:`T1Layer` is residual, ``z + act(M W z + b)``, and adds its branch's power:
      with ``activation="identity"`` every layer doubles ``E|z|^2``;
    - along the last axis the inverse rfft keeps only the Hermitian part of the frequency-0
      plane (and of a kept Nyquist one), which the complex weights have made complex: half the
      power of those coefficients is lost;
    - the truncation drops everything outside ``modes``.

    With ``num_layers=0``, unit white noise on 64 points with 8 kept modes in 1-d comes out
    with variance ``(1/2 + 2 * 7) / 64 = 14.5/64`` in expectation (frequency 0 at half power,
    frequencies 1..7 counted for both signs): :func:`white_noise_gain`.

    ``init="variance_preserving"`` is the paper's variance-preserving initialisation: the
    weights acting on the ``m`` kept of ``N`` components get their variance multiplied by
    ``N / m`` (the paper's reduced-order argument, Poli et al., 2022, Sec. 3), so that white
    noise at the training ``resolution`` keeps its variance through truncation and inverse. The
    model transforms once, so the loss happens once and the factor is applied once, to the
    decoder, and exactly: ``1 / white_noise_gain(resolution, modes)`` in place of ``N / m``
    (``64 / 14.5`` above rather than ``64 / 8``), which accounts for both signs and the
    Hermitian projection (for the DCT it is exactly ``N / m``; real weights there have
    ``E W^2 = 1 / fan_in``). With ``num_layers=0`` unit white noise at ``resolution`` then comes
    out with unit variance in expectation; each residual layer still adds its branch's power as
    above. (Putting the factor on every layer's channel map, as the reference code does, would
    compound it ``num_layers`` times between one truncation and one inverse.) It answers the
    same question as ``in_scale``/``out_scale`` (the output's magnitude), so the two are not
    combined.

    Choose ``modes`` with :func:`select_modes` (frequency selection by spectral energy of the
    training data).

    Args:
        num_spatial_dims: ``d``.
        in_channels, out_channels: ``C_in``, ``C_out``.
        width: channels of the hidden spectrum.
        modes: kept modes per axis (FNO convention; the first ``m`` cosines with the DCT).
        num_layers: number of :class:`T1Layer` (default 4).
        activation: real activation applied to real and imaginary parts (default ``"gelu"``).
        in_scale, out_scale: optional positive per-mode scales broadcastable to
            ``(C_in, *kept)`` and ``(C_out, *kept)`` (``kept = modes`` with the DCT; default:
            none, i.e. ones); :func:`spectral_scale` with the same ``transform`` builds them.
        init: ``"per_mode"`` (default) or ``"variance_preserving"`` (the paper's; needs
            ``resolution``, excludes ``in_scale``/``out_scale``).
        resolution: the grid (int or ``d`` ints) the variance-preserving init is computed for,
            the training grid; it must hold ``modes``. Only with ``init="variance_preserving"``.
        transform: ``"rfft"`` (default) or ``"dct"`` (real; see above).
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).
    """

    encoder: Float[Array, "*pair W Ci M"]
    layers: tuple[T1Layer, ...]
    decoder: Float[Array, "*pair Co W M"]
    num_spatial_dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)
    in_scale: tuple[tuple[float, ...], ...] | None = eqx.field(static=True)
    out_scale: tuple[tuple[float, ...], ...] | None = eqx.field(static=True)
    transform: str = eqx.field(static=True)
    parameter_dims: ClassVar[dict] = {"Ci": "in_channels", "Co": "out_channels"}

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
        in_scale=None,
        out_scale=None,
        init: str = "per_mode",
        resolution: int | Sequence[int] | None = None,
        transform: str = "rfft",
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        check_key("key", key)
        d = self.num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        width = check_positive_int("width", width)
        num_layers = check_positive_int("num_layers", num_layers, minimum=0)
        self.modes = check_modes(modes, d)
        dtype = check_float_dtype("dtype", dtype)  # complex weights are stored as real pairs
        self.activation = get_activation(activation)
        self.transform = _check_transform(transform)
        kept = self.modes if transform == "dct" else kept_shape(self.modes)
        m = int(np.prod(kept))
        self.in_scale = _as_scale("in_scale", in_scale, self.in_channels, kept)
        self.out_scale = _as_scale("out_scale", out_scale, self.out_channels, kept)
        check_choice("init", init, INITS)
        decoder_gain = 1.0
        if init == "variance_preserving":
            if resolution is None:
                raise ValueError(
                    "`init='variance_preserving'` needs `resolution`, the grid the model is "
                    "initialised for (the training grid): the variance truncation loses depends "
                    "on it."
                )
            if in_scale is not None or out_scale is not None:
                raise ValueError(
                    "`init='variance_preserving'` scales the decoder for white noise at "
                    "`resolution`; `in_scale`/`out_scale` standardise the spectrum instead. "
                    "Choose one: got in_scale and/or out_scale with init='variance_preserving'."
                )
            if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
                resolution = (resolution,) * d
            resolution = check_grid_shape("resolution", resolution, d)
            decoder_gain = 1.0 / white_noise_gain(resolution, self.modes, transform=transform)
        elif resolution is not None:
            raise ValueError(
                f"`resolution` applies only to init='variance_preserving'; got "
                f"resolution={resolution!r} with init={init!r}."
            )
        if transform == "dct":  # real weights with E W^2 = std^2

            def scaled(std):
                return std

            pair = ()
        else:  # complex (real, imag) pairs with E|W|^2 = std^2, as complex_normal draws them

            def scaled(std):
                return std / math.sqrt(2.0)

            pair = (2,)
        shapes = [(*pair, width, in_channels, m)]
        stds = [1 / math.sqrt(in_channels)]
        for _ in range(num_layers):
            shapes += [(*pair, width, width, m), (*pair, m, m)]
            stds += [1 / math.sqrt(width), 1 / math.sqrt(m)]
        shapes.append((*pair, out_channels, width, m))
        stds.append(math.sqrt(decoder_gain) / math.sqrt(width))
        # every weight from its split key, as one jitted program and one draw (eagerly: 9 XLA
        # compilations for TransformOnce(1, 1, 1, 32, 16))
        self.encoder, *weights, self.decoder = split_normals(
            key, shapes, dtype, [scaled(s) for s in stds]
        )
        self.layers = tuple(
            T1Layer(
                channel_weight=weights[2 * i],
                mode_weight=weights[2 * i + 1],
                bias=jnp.zeros((*pair, width, m), dtype),
            )
            for i in range(num_layers)
        )

    @compiled_call
    def __call__(
        self, x: Float[Array, " C_in *spatial"], out_shape: Sequence[int] | None = None
    ) -> Float[Array, " C_out *spatial_out"]:
        """Map one field ``(C_in, *spatial)`` to ``(C_out, *out_shape)``, default the input grid;
        computed in and returned as float64 if ``x`` or the parameters are float64, else
        float32."""
        check_real_float("x", x)
        check_field("x", x, self.in_channels, self.num_spatial_dims)
        spatial = tuple(x.shape[1:])
        out_shape = check_out_shape(out_shape, spatial)
        grid_check = _check_dct_grid if self.transform == "dct" else check_grid
        grid_check("the input", spatial, self.modes)
        grid_check("the `out_shape`", out_shape, self.modes)
        # float64 if the input or the parameters are (never narrowed), else float32
        real = compute_dtype(x.dtype, self.encoder.dtype)
        axes = tuple(range(1, 1 + self.num_spatial_dims))
        if self.transform == "dct":
            return self._call_dct(x.astype(real), out_shape, axes)
        cdtype = complex_dtype(real)
        c = _forward_rfft(x.astype(real), self.modes, axes)
        kept = c.shape[1:]
        c = c.reshape(c.shape[0], -1)
        if self.in_scale is not None:
            c = c / jnp.asarray(self.in_scale, real).astype(cdtype)
        z = jnp.einsum("wim,im->wm", as_complex(self.encoder).astype(cdtype), c)
        for layer in self.layers:
            z = layer(z, self.activation)
        y = jnp.einsum("owm,wm->om", as_complex(self.decoder).astype(cdtype), z)
        if self.out_scale is not None:
            y = y * jnp.asarray(self.out_scale, real).astype(cdtype)
        return _inverse_rfft(y.reshape(y.shape[0], *kept), out_shape, axes)

    def _call_dct(self, x, out_shape, axes):
        real = x.dtype
        c = _forward_dct(x, self.modes, axes)
        c = c.reshape(c.shape[0], -1)
        if self.in_scale is not None:
            c = c / jnp.asarray(self.in_scale, real)
        z = jnp.einsum("wim,im->wm", self.encoder.astype(real), c)
        for layer in self.layers:
            z = layer(z, self.activation)
        y = jnp.einsum("owm,wm->om", self.decoder.astype(real), z)
        if self.out_scale is not None:
            y = y * jnp.asarray(self.out_scale, real)
        return _inverse_dct(y.reshape(y.shape[0], *self.modes), out_shape, axes)
