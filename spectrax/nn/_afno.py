"""Adaptive Fourier neural operator token mixer (AFNO).

Guibas, Mardani, Li, Tao, Anandkumar, Catanzaro (2022), "Adaptive Fourier Neural Operators:
Efficient Token Mixers for Transformers".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from spectrax._checks import (
    as_jax,
    check_float_dtype,
    check_inexact,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    complex_dtype,
    compute_dtype,
)
from spectrax._random import split_normals
from spectrax.nn._factorized import as_complex
from spectrax.nn._spectral_conv import check_field, check_grid, check_modes
from spectrax.transforms import pad_modes, truncate_modes


def soft_shrink(
    x: Float[Array, "..."],
    threshold: float | np.floating | Float[Array, ""] | Float[np.ndarray, ""],
) -> Float[Array, "..."]:
    """``sign(x) max(|x| - threshold, 0)``: the proximal map of the L1 norm (sparsity).

    ``threshold`` is a finite number ``>= 0``: a Python or NumPy number (0-d arrays included),
    or a real JAX scalar, checked where its value is concrete (a traced one, e.g. under
    ``jax.grad``, is used as it is)."""
    _check_threshold(threshold)
    return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - jnp.asarray(threshold, x.dtype))


def _check_threshold(threshold) -> None:
    """``threshold`` one finite number ``>= 0`` where its value is known (a negative one pushed
    values away from zero, 0.5 -> 0.6; a per-element array broadcast silently)."""
    if isinstance(threshold, (jax.Array, np.ndarray)):
        if threshold.shape != () or not (
            jnp.issubdtype(threshold.dtype, jnp.floating)
            or jnp.issubdtype(threshold.dtype, jnp.integer)
        ):
            raise ValueError(
                "`threshold` must be one real number (a scalar); got an array of shape "
                f"{threshold.shape} and dtype {threshold.dtype}."
            )
        if isinstance(threshold, jax.core.Tracer):
            return
        threshold = float(threshold)
    if isinstance(threshold, bool) or not isinstance(
        threshold, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"`threshold` must be a real number; got {threshold!r}.")
    if not (threshold >= 0 and math.isfinite(threshold)):
        raise ValueError(f"`threshold` must be a finite number >= 0; got {threshold}.")


def _block_linear(z: Complex[Array, "nb bs M"], w, b) -> Complex[Array, "nb bo M"]:
    """Block-diagonal complex linear map over channels: block ``g`` maps ``z[g]`` by ``w[g]``."""
    y = jnp.einsum("gim,gio->gom", z, w)
    return y + b[:, :, None]


def afno_mix(
    x: Float[Array, " C *spatial"],
    w1: Complex[Array, "nb bs bh"],
    b1: Complex[Array, "nb bh"],
    w2: Complex[Array, "nb bh bs"],
    b2: Complex[Array, "nb bs"],
    modes: int | Sequence[int],
    sparsity_threshold: float,
) -> Float[Array, " C *spatial"]:
    """AFNO token mixing of one field: ``irfftn(S_lambda(MLP(truncate(rfftn(x))))) + x``.

    The MLP is block-diagonal over channels (``C = nb * bs``), shared by all kept modes,
    ``z -> W2 ReLU(W1 z + b1) + b2`` with ReLU applied to real and imaginary parts separately;
    ``S_lambda`` is the soft-shrink of real and imaginary parts. Frequencies outside ``modes`` are
    dropped (hard thresholding). Transforms use ``norm="ortho"`` as in the paper. ``modes``: one
    int per spatial axis of ``x``, or an int, the same on every axis (as :class:`AFNOMixer`).

    Resolution: on ``n`` points the ortho coefficients of a band-limited field are ``sqrt(n)``
    times its Fourier-series coefficients. The MLP without biases and with ``lambda = 0`` is
    positively homogeneous, so it then gives the same field on every grid that holds ``modes``
    (to rounding), with one exception: a kept frequency that is the Nyquist frequency of an
    even leading (not last) axis, ``modes[i] = n_i / 2``. That bin holds the whole cosine
    ``cos(pi n_i x)`` on its grid but half of it on a finer one, and it is kept as it is, as in
    the paper's code and PhysicsNeMo's ``AFNO2DLayer`` (``scripts/check_physicsnemo_afno.py``
    checks the two agree), where :class:`SpectralConv` halves it (:func:`nyquist_weights`). On
    the last axis irfft's single count of the Nyquist bin makes up for it. The biases and
    ``lambda`` act at a fixed scale, so with them the mixer is a different map on a different
    grid (as in the paper, which trains and evaluates at one).

    Computed in float64 when ``x`` or the weights are 64-bit (the other is widened, never
    narrowed), and returned in that dtype; else computed in float32 (there is no half-precision
    FFT), residual included, and rounded once to ``x``'s dtype.
    """
    modes = _check_mix_args(x, w1, b1, w2, b2, modes)
    x, w1, b1, w2, b2 = (as_jax(a) for a in (x, w1, b1, w2, b2))
    d = len(modes)
    spatial = x.shape[1:]
    axes = tuple(range(1, 1 + d))
    nb, bs = w1.shape[0], w1.shape[1]
    real = compute_dtype(x.dtype, jnp.finfo(w1.dtype).dtype)
    out_dtype = real if real == jnp.float64 else x.dtype
    cdtype = complex_dtype(real)
    x_hat = truncate_modes(jnp.fft.rfftn(x.astype(real), axes=axes, norm="ortho"), modes)
    kept = x_hat.shape[1:]
    # One axis split or merged per reshape: under vmap, JAX's sharding rule for a batch sharded
    # over an Explicit mesh axis takes those, not several at once.
    z = x_hat
    for _ in range(d - 1):  # (C, k1, k2, ...) -> (C, k1 k2, ...) -> ... -> (C, M)
        z = z.reshape(z.shape[0], z.shape[1] * z.shape[2], *z.shape[3:])
    z = z.reshape(nb, bs, z.shape[-1])
    h = _block_linear(z, w1.astype(cdtype), b1.astype(cdtype))
    h = jax.lax.complex(jax.nn.relu(h.real), jax.nn.relu(h.imag))
    o = _block_linear(h, w2.astype(cdtype), b2.astype(cdtype))
    o = jax.lax.complex(
        soft_shrink(o.real, sparsity_threshold), soft_shrink(o.imag, sparsity_threshold)
    )
    o = o.reshape(nb * bs, o.shape[-1])
    for i in range(d - 1):  # (C, M) -> (C, k1, M / k1) -> ... -> (C, *kept)
        o = o.reshape(*o.shape[: 1 + i], kept[i], o.shape[-1] // kept[i])
    y = jnp.fft.irfftn(pad_modes(o, spatial), s=spatial, axes=axes, norm="ortho")
    # The residual is added in the working dtype and the sum rounded once: rounding the
    # spectral branch to half precision first loses the digits the sum cancels.
    return (y + x.astype(real)).astype(out_dtype)


def _check_mix_args(x, w1, b1, w2, b2, modes) -> tuple[int, ...]:
    """``modes`` as a tuple, or ValueErrors naming the argument of :func:`afno_mix` whose shape
    does not fit."""
    check_real_float("x", x)
    if isinstance(modes, (int, np.integer)) and not isinstance(modes, bool):
        # x is one field (C, *spatial): its rank gives the number of spatial axes
        modes = check_modes(modes, max(x.ndim - 1, 1))
    try:
        modes = tuple(modes)
    except TypeError:  # modes=None was a bare "'NoneType' object is not iterable"
        raise ValueError(
            f"`modes` must be an int or one int per spatial axis of `x` (shape {x.shape}: "
            f"{max(x.ndim - 1, 1)}); got {modes!r}."
        ) from None
    for name, w in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
        check_inexact(name, w)
    d = len(modes)
    if x.ndim != 1 + d:
        raise ValueError(
            f"`x` must be one field (C, *spatial) with {d} spatial axes for modes {tuple(modes)}; "
            f"got x.shape={x.shape}."
        )
    if w1.ndim != 3:
        raise ValueError(f"`w1` must be (num_blocks, block_size, hidden); got {w1.shape=}.")
    nb, bs, bh = w1.shape
    if nb * bs != x.shape[0]:
        raise ValueError(
            f"`w1` of shape {w1.shape} has {nb} blocks of {bs} channels, but `x` has "
            f"{x.shape[0]} channels (x.shape={x.shape}); expected num_blocks * block_size = C."
        )
    for name, w, want in (("b1", b1, (nb, bh)), ("w2", w2, (nb, bh, bs)), ("b2", b2, (nb, bs))):
        if tuple(w.shape) != want:
            raise ValueError(
                f"`{name}` must have shape {want} to match `w1` {w1.shape} (num_blocks, "
                f"block_size, hidden); got {name}.shape={w.shape}."
            )
    modes = check_modes(modes, d)
    check_grid("the input", x.shape[1:], modes)
    return modes


class AFNOMixer(eqx.Module):
    """AFNO token mixer on fields ``(C, *spatial)`` (Guibas et al., 2022).

    Args:
        num_spatial_dims: ``d``.
        channels: ``C``, split into ``num_blocks`` blocks of ``C // num_blocks`` channels.
        modes: kept modes per axis (mode truncation; FNO convention, both signs on all but the
            last axis). The 2-d reference code's ``hard_thresholding_fraction`` ``f`` keeps
            ``k = int(f * (n_1 // 2 + 1))`` frequencies on both axes, counted from the first
            axis' size: at ``f = 1`` (its default, and FourCastNet's) that is every mode when
            ``n_2 <= n_1``, here ``modes = (n_1 // 2, n_2 // 2 + 1)`` for an even ``n_1`` (on an
            odd axis ``n = 2 M + 1``, ``modes <= M`` keeps ``-M..M-1``: frequency ``+M`` is out
            of reach of this convention). For ``f < 1`` it keeps, on the first axis, the ``2 k``
            around the Nyquist frequency (rows ``t - k .. t + k - 1`` of the unshifted spectrum,
            ``t = n_1 // 2 + 1``), not the lowest; ``modes = (k, k)`` is the low-pass
            truncation (``scripts/check_physicsnemo_afno.py`` records these against
            PhysicsNeMo's ``AFNO2DLayer``).
        num_blocks: number of diagonal blocks (default 8; must divide ``C``).
        hidden_factor: hidden size of each block MLP relative to the block size (default 1):
            ``ceil(hidden_factor * block_size)`` channels.
        sparsity_threshold: soft-shrink ``lambda`` (default 0.01).
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).

    Parameters are complex, stored as (real, imag) pairs on a leading axis of 2, initialised as in
    the paper: ``0.02 * N(0, 1)`` for weights and biases.
    """

    w1: Float[Array, "2 nb bs bh"]
    b1: Float[Array, "2 nb bh"]
    w2: Float[Array, "2 nb bh bs"]
    b2: Float[Array, "2 nb bs"]
    num_spatial_dims: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    sparsity_threshold: float = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        channels: int,
        modes: int | Sequence[int],
        *,
        num_blocks: int = 8,
        hidden_factor: float = 1.0,
        sparsity_threshold: float = 0.01,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
        self.channels = check_positive_int("channels", channels)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        if channels % num_blocks:
            raise ValueError(
                f"`num_blocks`={num_blocks} must divide `channels`={channels} (block-diagonal "
                "channel mixing)."
            )
        self.modes = check_modes(modes, self.num_spatial_dims)
        if isinstance(sparsity_threshold, bool) or not isinstance(
            sparsity_threshold, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"`sparsity_threshold` must be a real number; got {sparsity_threshold!r}."
            )
        if not (sparsity_threshold >= 0 and math.isfinite(sparsity_threshold)):
            raise ValueError(
                f"`sparsity_threshold` must be a finite number >= 0; got {sparsity_threshold}."
            )
        check_float_dtype("dtype", dtype)
        self.sparsity_threshold = float(sparsity_threshold)
        bs = channels // num_blocks
        hidden = check_positive_float("hidden_factor", hidden_factor) * bs
        # rounded before the ceiling: 1.1 * 50 is 55.00000000000001 in binary floating point
        bh = max(1, math.ceil(round(hidden, 9)))
        shapes = [(2, num_blocks, bs, bh), (2, num_blocks, bh), (2, num_blocks, bh, bs)]
        shapes.append((2, num_blocks, bs))
        self.w1, self.b1, self.w2, self.b2 = split_normals(
            key, shapes, check_float_dtype("dtype", dtype), [0.02] * 4
        )

    def __call__(self, x: Float[Array, " C *spatial"]) -> Float[Array, " C *spatial"]:
        check_parameters(self)
        check_real_float("x", x)
        check_field("x", x, self.channels, self.num_spatial_dims)
        check_grid("the input", x.shape[1:], self.modes)
        return afno_mix(
            x,
            as_complex(self.w1),
            as_complex(self.b1),
            as_complex(self.w2),
            as_complex(self.b2),
            self.modes,
            self.sparsity_threshold,
        )
