"""Spectral convolution of the Fourier neural operator, one n-d implementation for 1, 2, 3 dims.

Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar (2021), "Fourier Neural
Operator for Parametric Partial Differential Equations".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from spectrax._checks import (
    check_array,
    check_bool,
    check_choice,
    check_float_dtype,
    check_grid_shape,
    check_inexact,
    check_parameters,
    check_positive_int,
    check_real_float,
    complex_dtype,
    compute_dtype,
    module_compute_dtype,
    widen_to_input,
)
from spectrax.nn._factorized import CPWeight, DenseWeight, RankLike, TTWeight, TuckerWeight
from spectrax.transforms import pad_modes, truncate_modes
from spectrax.transforms._spectral import check_grid


def check_modes(modes: int | Sequence[int], num_spatial_dims: int) -> tuple[int, ...]:
    """``modes`` as one positive int per spatial axis (an int is repeated)."""
    if isinstance(modes, (int, np.integer)) and not isinstance(modes, bool):
        modes = (int(modes),) * num_spatial_dims
    try:
        modes = tuple(modes)
    except TypeError:
        raise ValueError(
            f"`modes` must be an int or one int per spatial axis ({num_spatial_dims}); got "
            f"{modes!r}."
        ) from None
    if not modes:  # kept_shape's modes[-1] was a bare IndexError, resolve_impl's max() another
        raise ValueError(
            f"`modes` must give one mode count per spatial axis (at least one axis); got {modes}."
        )
    if len(modes) != num_spatial_dims:
        raise ValueError(
            f"`modes` must be an int or one int per spatial axis ({num_spatial_dims}); got {modes}."
        )
    for i, m in enumerate(modes):
        check_positive_int(f"modes[{i}]", m)
    return tuple(int(m) for m in modes)


def check_out_shape(out_shape: Sequence[int] | None, spatial: Sequence[int]) -> tuple[int, ...]:
    """``out_shape`` as one positive int per spatial axis (default ``spatial``), or a ValueError
    naming it."""
    if out_shape is None:
        return tuple(spatial)
    hint = f", like the input grid {tuple(spatial)}"
    return check_grid_shape("out_shape", out_shape, len(spatial), hint)


def kept_shape(modes: Sequence[int]) -> tuple[int, ...]:
    """Shape of the kept spectrum: ``2 m`` on every axis but the last, ``m`` on the last."""
    return tuple(2 * m for m in modes[:-1]) + (int(modes[-1]),)


def _apply_axis(x: Array, mat: Array, axis: int) -> Array:
    """Contract ``mat`` (out, n) with axis ``axis`` of ``x`` (length n), result in place."""
    return jnp.moveaxis(jnp.tensordot(mat, x, axes=((1,), (axis,))), 0, axis)


@functools.lru_cache(maxsize=256)
def _dft_matrices(n: int, m: int, last: bool, dtype_name: str):
    """Truncated DFT matrices for one axis of length ``n`` keeping ``m`` modes.

    Forward uses ``norm="forward"`` (1/n). On a leading axis (``last=False``, both signs kept)
    they are the complex ``(2m, n)`` forward and ``(n, 2m)`` inverse matrices. On the last (rfft)
    axis they are real and laid out for ``x @ mat`` with the contracted axis minor: the forward
    ``(n, 2m)`` matrix ``[cos | -sin] / n`` maps a real row to the real and imaginary parts of its
    ``m`` coefficients; the inverse ``(2m, n)`` matrix is the half-spectrum synthesis of
    ``irfft`` (weight 1 for frequency 0 and 2 for every other, both signs) acting on
    ``[re | im]``, of which only the real part survives. A kept Nyquist frequency follows
    :func:`nyquist_weights` on every axis: halved by the forward matrix (the ``-n/2`` row of a
    leading axis, the ``n/2`` column of the last): the coefficient a finer grid reads there.
    On the last axis the inverse's weight 2 gives it back on the same grid; a leading axis'
    inverse needs nothing.
    """
    freqs = np.arange(m) if last else np.concatenate([np.arange(m), np.arange(-m, 0)])
    x = np.arange(n)
    phase = 2 * np.pi * np.outer(freqs, x) / n
    half = nyquist_weights(n, m, last=last)
    if not last:
        fwd = np.exp(-1j * phase) / n
        if half is not None:
            fwd = half[:, None] * fwd
        return fwd.astype(dtype_name), np.exp(1j * phase).T.astype(dtype_name)
    real = np.dtype(dtype_name).type(0).real.dtype
    half = np.ones((m, 1)) if half is None else half[:, None]
    fwd = (np.concatenate([half * np.cos(phase), -half * np.sin(phase)]) / n).T
    weight = np.where(freqs == 0, 1.0, 2.0)[:, None]
    inv = np.concatenate([weight * np.cos(phase), -weight * np.sin(phase)])
    return fwd.astype(real), inv.astype(real)


def nyquist_weights(n: int, m: int, *, last: bool = True) -> np.ndarray | None:
    """Forward weights of the kept frequencies of an axis of ``n`` points: ``None`` (all ones)
    unless ``n`` is even and the Nyquist frequency is kept, then ones with ``0.5`` there.

    On the last (rfft) axis (``last=True``) the ``m`` kept frequencies are ``0..m-1`` and the
    Nyquist one is ``+n/2`` (kept when ``m = n/2 + 1``). On a leading axis (``last=False``) the
    ``2m`` kept frequencies are ``0..m-1, -m..-1`` (the :func:`truncate_modes` layout) and the
    Nyquist one is ``-n/2`` at index ``m`` (kept when ``m = n/2``).

    On a grid of even ``n`` the Nyquist coefficient ``c`` of a real field stands for
    ``c cos(pi n x)``, which is ``c/2`` at ``+n/2`` and ``c/2`` at ``-n/2``; on any finer grid
    the kept frequency (``+n/2`` on the last axis, ``-n/2`` on a leading one) reads ``c/2``.
    Storing ``c/2`` makes the operator read the same function on every grid. On output nothing
    changes on a leading axis: a value placed at ``-n/2`` on a grid where it is the Nyquist bin
    samples the same function as on a finer grid. On the last axis irfft counts the Nyquist bin
    once but every other nonzero frequency twice (both signs), so the inverse multiplies it back
    by 2 there. Without the halving the Nyquist term would be doubled on every finer grid.

    ``n`` and ``m`` are positive ints with ``m`` at most the axis' limit (``n//2 + 1`` on the last
    axis, ``n//2`` on a leading one), ``last`` a bool; else a ValueError/TypeError naming them.
    """
    n = check_positive_int("n", n)
    m = check_positive_int("m", m)
    last = check_bool("last", last)
    limit = n // 2 + 1 if last else n // 2
    if m > limit:
        raise ValueError(
            f"`m`={m} is too many modes for an axis of `n`={n} points (last={last}): expected "
            f"1 <= m <= {limit} ("
            + ("n//2+1 on the last, rfft, axis" if last else "n//2, both signs kept")
            + ")."
        )
    if last:
        if n % 2 or m != n // 2 + 1:
            return None
        w = np.ones(m)
        w[-1] = 0.5
        return w
    if n % 2 or m != n // 2:
        return None
    w = np.ones(2 * m)
    w[m] = 0.5
    return w


def _along(w: np.ndarray, axis: int, like):
    """Real weights along axis ``axis`` of ``like``, shaped and typed to multiply it."""
    shape = [1] * like.ndim
    shape[axis] = -1
    return jnp.asarray(w.reshape(shape), like.real.dtype).astype(like.dtype)


def _last_axis(w: np.ndarray, like):
    """Real weights along the last axis of ``like``, shaped and typed to multiply it."""
    return _along(w, like.ndim - 1, like)


def _forward_rfft(x, modes, axes):
    x_hat = truncate_modes(jnp.fft.rfftn(x, axes=axes, norm="forward"), modes)
    d = len(modes)
    for i, (ax, m) in enumerate(zip(axes, modes, strict=True)):
        w = nyquist_weights(x.shape[ax], m, last=i == d - 1)
        if w is not None:
            x_hat = x_hat * _along(w, ax, x_hat)
    return x_hat


def _inverse_rfft(y, out_shape, axes):
    w = nyquist_weights(out_shape[-1], y.shape[-1])
    if w is not None:  # irfft weights the output grid's Nyquist bin once; the data hold half
        y = y * _last_axis(1.0 / w, y)
    return jnp.fft.irfftn(pad_modes(y, out_shape), s=out_shape, axes=axes, norm="forward")


def _forward_dft(x, modes, axes):
    cdtype = complex_dtype(x.dtype)
    d = len(modes)
    m = modes[-1]
    # The last axis first, as one real matmul with the contracted axis minor (no transpose):
    # the following complex contractions then run on m_d instead of n_d entries.
    fwd, _ = _dft_matrices(x.shape[axes[-1]], m, True, cdtype.name)
    re_im = x @ jnp.asarray(fwd)
    out = jax.lax.complex(re_im[..., :m], re_im[..., m:])
    for i in range(d - 1):
        fwd, _ = _dft_matrices(x.shape[axes[i]], modes[i], False, cdtype.name)
        out = _apply_axis(out, jnp.asarray(fwd), axes[i])
    return out


def _inverse_dft(y, out_shape, axes):
    d = len(out_shape)
    modes = tuple(k // 2 for k in y.shape[y.ndim - d : -1]) + (y.shape[-1],)
    for i in range(d - 1):
        _, inv = _dft_matrices(out_shape[i], modes[i], False, y.dtype.name)
        y = _apply_axis(y, jnp.asarray(inv), axes[i])
    _, inv = _dft_matrices(out_shape[-1], modes[-1], True, y.dtype.name)
    return jnp.concatenate([y.real, y.imag], axis=-1) @ jnp.asarray(inv)


_IMPLS: dict[str, tuple[Callable, Callable]] = {
    "rfft": (_forward_rfft, _inverse_rfft),
    "dft": (_forward_dft, _inverse_dft),
}
IMPLS = ("auto", *_IMPLS)

# "auto" takes the kept-modes DFT when no axis keeps more than this fraction of its spectrum.
AUTO_DFT_MAX_FRACTION = 0.5


def resolve_impl(impl: str, spatial: Sequence[int], modes: Sequence[int]) -> str:
    """The path ``impl`` means on grid ``spatial`` with ``modes`` kept: itself, or for ``"auto"``
    ``"dft"`` when every axis keeps at most ``AUTO_DFT_MAX_FRACTION`` of its spectrum (``2m`` of
    ``n`` entries; ``m`` of ``n//2 + 1`` on the last axis), else ``"rfft"``. ``spatial`` must
    hold ``modes`` (:func:`spectral_conv`'s limits), else a ValueError names the argument.

    The matrix products cost ``O(n m)`` per axis against the FFT's ``O(n log n)``, but they run
    at matrix-unit speed and never touch the dropped modes; ``scripts/bench_spectral_conv.py``
    measures both paths and whether this rule picks the faster one
    (``benchmarks/spectral-conv-<device>.json``). The products run at JAX's default matmul
    precision, like the FNO's pointwise layers: where that is TF32 (NVIDIA GPUs) the ``"dft"``
    path rounds to about 1e-3 relative; ``jax.default_matmul_precision("highest")`` makes it
    float32-exact, or take ``impl="rfft"``.
    """
    check_choice("impl", impl, IMPLS)
    # a grid of size 0 divided by zero below, modes the grid cannot hold (or 2.5 modes) were
    # answered as if they were a choice
    try:
        d = len(modes)
    except TypeError:
        raise ValueError(f"`modes` must be one int per spatial axis; got {modes!r}.") from None
    modes = check_modes(modes, d)
    spatial = check_grid_shape("spatial", spatial, len(modes), f", like `modes` {modes}")
    check_grid("the `spatial`", spatial, modes)
    if impl != "auto":
        return impl
    fractions = [
        (m / (n // 2 + 1)) if i == d - 1 else (2 * m / n)
        for i, (n, m) in enumerate(zip(spatial, modes, strict=True))
    ]
    return "dft" if max(fractions) <= AUTO_DFT_MAX_FRACTION else "rfft"


def spectral_conv(
    x: Float[Array, "..."],
    weight: Complex[Array, "C_out C_in *kept"],
    modes: Sequence[int],
    out_shape: Sequence[int] | None = None,
    *,
    impl: str = "auto",
) -> Float[Array, "..."]:
    """Fourier-layer kernel integral: transform, keep ``modes``, mix channels per mode, invert.

    ``y[o] = irfftn(pad(sum_i W[o, i, k] * truncate(rfftn(x[i]))[k]), out_shape)`` with
    ``norm="forward"`` on both transforms, so the Fourier coefficients are those of the function
    (``c_k = mean(x e^{-i k.x})``) and the operator does not depend on the grid: the same weights
    evaluate the same function on any ``out_shape`` (zero-shot super-resolution; a kept Nyquist
    frequency of an even axis is read as a cosine, :func:`nyquist_weights`). A weight
    ``W[o, i, k] = delta_oi (i k)^n`` returns the n-th derivative of a band-limited input.

    Args:
        x: real field ``(*batch, C_in, n_1, ..., n_d)``, ``d = len(modes)``.
        weight: complex (complex64 or complex128; a real weight is refused, cast a real
            multiplier explicitly) ``(C_out, C_in, 2 m_1, ..., 2 m_{d-1}, m_d)``; the layout of
            :func:`spectrax.transforms.truncate_modes` (on all but the last axis, frequencies
            ``0..m-1`` then ``-m..-1``; on the last, ``0..m-1``). A ``(C_in, *kept)`` weight is
            depthwise: ``y[c] = W[c] x̂[c]``, no channel mixing (neuraloperator's
            ``separable=True``), the dense weight with it on the diagonal.
        modes: kept modes ``(m_1, ..., m_d)``.
        out_shape: output grid, default the input grid; must hold the kept modes.
        impl: ``"rfft"`` (full FFT then slicing), ``"dft"`` (only the kept modes, as truncated
            DFT matrix products: ``O(n m)`` per axis instead of ``O(n log n)``, fast when
            ``m << n`` and on matrix units) or ``"auto"`` (default: :func:`resolve_impl`
            picks by the kept fraction of the spectrum). Equal to rounding.

    Returns:
        ``(*batch, C_out, *out_shape)``, computed in and returned as float64 when ``x`` or
        ``weight`` is 64-bit (float64 / complex128; the other is widened, never narrowed),
        else float32 (half-precision ``x`` is computed in float32: there is no half-precision
        FFT).
    """
    check_real_float("x", x)
    check_choice("impl", impl, IMPLS)
    # A real weight would be accepted as W + 0i: a zero-phase multiplier whose gradient drops
    # its imaginary part, so a trained real weight could never learn a phase. Refused; a real
    # multiplier meant as such (e.g. -k^2, the second derivative) is cast explicitly.
    if isinstance(weight, (jax.Array, np.ndarray)):
        w_dtype = jnp.result_type(weight)
    else:
        w_dtype = check_inexact("weight", weight)  # a list, None, ...: names the argument
    if not jnp.issubdtype(w_dtype, jnp.complexfloating):
        raise TypeError(
            f"`weight` must be a complex (complex64 or complex128) array; got dtype {w_dtype}. "
            "A real multiplier (zero phase) is `weight.astype(jnp.complex64)`; a weight stored "
            "as real and imaginary parts is `jax.lax.complex(re, im)`."
        )
    if isinstance(modes, (int, np.integer)):
        raise ValueError(
            f"`modes` must be one int per spatial axis, e.g. (m,) * d; got the int {modes}."
        )
    try:  # None or a 0-d array: a bare "len() of unsized object"
        d = len(modes)
    except TypeError:
        raise ValueError(f"`modes` must be one int per spatial axis; got {modes!r}.") from None
    modes = check_modes(modes, d)
    if x.ndim < d + 1:
        raise ValueError(
            f"`x` must be (*batch, C_in, {d} spatial axes) for {d} modes; got x.shape={x.shape}."
        )
    want = (x.shape[-d - 1], *kept_shape(modes))
    depthwise = weight.ndim == d + 1
    if tuple(weight.shape[0 if depthwise else 1 :]) != want or weight.ndim not in (d + 1, d + 2):
        raise ValueError(
            f"`weight` must be (C_out, C_in, *kept modes) = (C_out, {', '.join(map(str, want))}) "
            f"or, depthwise, (C_in, *kept modes) = {want} for x with {want[0]} channels and "
            f"modes {modes}; got weight.shape={weight.shape}."
        )
    spatial = tuple(x.shape[x.ndim - d :])
    if min(spatial) < 1:  # else reported as resolve_impl's `spatial`
        raise ValueError(
            f"`x` has an empty spatial axis (x.shape={x.shape}, the last {d} axes spatial); "
            "expected at least one grid point per axis."
        )
    out_shape = check_out_shape(out_shape, spatial)
    check_grid("the input", spatial, modes)
    check_grid("the `out_shape`", out_shape, modes)
    impl = resolve_impl(impl, spatial, modes)
    real = compute_dtype(x.dtype, jnp.finfo(weight.dtype).dtype)
    axes = tuple(range(x.ndim - d, x.ndim))
    forward, inverse = _IMPLS[impl]
    x_hat = forward(x.astype(real), modes, axes)
    w = weight.astype(complex_dtype(real))
    # Channel axis sits just before the spatial ones; leading batch axes pass through.
    lead = x_hat.shape[: x.ndim - d]
    if depthwise:
        y_hat = x_hat * w.reshape((1,) * len(lead[:-1]) + w.shape)
    else:
        y_hat = jnp.einsum(
            "...ik,oik->...ok",
            # the kept modes' count spelled out: -1 cannot be inferred for an empty batch
            x_hat.reshape(*lead, math.prod(x_hat.shape[x.ndim - d :])),
            w.reshape(w.shape[0], w.shape[1], -1),
        )
        y_hat = y_hat.reshape(*y_hat.shape[:-1], *x_hat.shape[x.ndim - d :])
    return inverse(y_hat, out_shape, axes)


_FACTORIZATIONS: dict[str, Callable[..., eqx.Module]] = {
    "dense": lambda shape, rank, **kw: DenseWeight(shape, **kw),
    "tucker": TuckerWeight,
    "cp": CPWeight,
    "tt": TTWeight,
}


class SpectralConv(eqx.Module):
    """Spectral convolution (FNO Fourier layer) on ``(C_in, *spatial)`` fields, 1, 2 or 3 dims.

    Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations";
    factorised weights as in TFNO, Kossaifi et al. (2023), "Multi-Grid Tensorized Fourier Neural
    Operator for High-Resolution PDEs". See :func:`spectral_conv` for the operator.

    Weight layout: ``self.weight.complex()`` is the complex tensor ``W[o, i, k_1, ..., k_d]`` of
    shape ``(C_out, C_in, 2 m_1, ..., 2 m_{d-1}, m_d)``: on every axis but the last, index ``j < m``
    is frequency ``j`` and index ``m + j`` is frequency ``j - m`` (negative); on the last (rfft)
    axis index ``j`` is frequency ``j``. Frequencies are in cycles per domain (angular wavenumber
    ``2 pi j / length``). Dense storage is :class:`DenseWeight` (real and imaginary parts stacked
    on a leading axis of 2); ``factorization="tucker"``/``"cp"``/``"tt"`` store
    :class:`TuckerWeight` / :class:`CPWeight` / :class:`TTWeight` (tensor train, Oseledets 2011)
    instead, with ``rank`` an int or a fraction of the dense parameter count.

    Args:
        num_spatial_dims: ``d`` in 1, 2, 3 (any positive ``d`` works).
        in_channels, out_channels: ``C_in``, ``C_out``.
        modes: kept modes per axis (an int for all axes).
        factorization: ``"dense"`` (default), ``"tucker"``, ``"cp"`` or ``"tt"``.
        rank: for factorised weights: an int rank, or a float ``f`` in (0, 1] (default 0.1):
            the largest rank (Tucker: ranks ``floor(a n_j)`` at the largest common ``a``; TT:
            one rank ``r`` clipped to each full rank) whose parameter count is at most ``f``
            times the dense one (:func:`cp_rank`, :func:`tucker_ranks`, :func:`tt_ranks`), but
            never below rank 1 on any axis, whose count (CP ``2 sum(shape)``, Tucker
            ``2 (1 + sum(shape))``, TT ``2 sum(shape)`` for the weight shape
            ``(C_out, C_in, *kept)``) can exceed that budget on a small layer, and even the
            dense count (e.g. ``C_in = C_out = 1`` with one mode: 6, 8 or 6 against 2).
        impl: ``"auto"`` (default), ``"rfft"`` or ``"dft"`` (kept modes only); see
            :func:`spectral_conv` and :func:`resolve_impl`.
        separable: a depthwise weight ``W[c, k]`` of shape ``(C, *kept)``, no channel mixing
            (neuraloperator's ``separable=True``; ``C_out`` must equal ``C_in``): ``C_in`` times
            fewer parameters; factorised as the dense one is.
        dtype: parameter dtype (float32), also the output's (float64 for a float64 input);
            half precision is drawn in float32 and rounded once, and the FFTs run in float32.
        key: PRNG key (keyword-only).

    Initialisation: complex Gaussian with ``E|W|^2 = 1 / C_in`` (separable: 1) so that for
    inputs with unit coefficient variance the kept output coefficients keep unit variance.
    """

    weight: DenseWeight | TuckerWeight | CPWeight | TTWeight
    num_spatial_dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    impl: str = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        *,
        factorization: str = "dense",
        rank: RankLike = 0.1,
        impl: str = "auto",
        separable: bool = False,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.modes = check_modes(modes, self.num_spatial_dims)
        check_choice("factorization", factorization, tuple(_FACTORIZATIONS))
        check_choice("impl", impl, IMPLS)
        # complex weights are stored as real pairs; float64 outside x64 was a float32 layer
        check_float_dtype("dtype", dtype)
        self.impl = impl
        if check_bool("separable", separable):
            if self.out_channels != self.in_channels:
                raise ValueError(
                    f"`separable=True` needs `out_channels` = `in_channels` (a depthwise weight "
                    f"maps each channel to itself); got in_channels={self.in_channels}, "
                    f"out_channels={self.out_channels}."
                )
            shape, std = (self.in_channels, *kept_shape(self.modes)), 1.0
        else:
            shape = (self.out_channels, self.in_channels, *kept_shape(self.modes))
            std = 1.0 / math.sqrt(self.in_channels)
        self.weight = _FACTORIZATIONS[factorization](shape, rank, std=std, dtype=dtype, key=key)

    def __call__(
        self, x: Float[Array, " C_in *spatial"], out_shape: Sequence[int] | None = None
    ) -> Float[Array, " C_out *spatial_out"]:
        """Apply to one field ``(C_in, *spatial)``; ``out_shape`` (default ``spatial``) is the
        output grid. Batch with ``jax.vmap``. Computes in float32 (float64 for a float64 input
        or float64 parameters) and returns the parameters' dtype, or float64 for a float64
        input."""
        check_parameters(self)  # the weight's factors too, named as `SpectralConv.weight.core`
        check_field("x", x, self.in_channels, self.num_spatial_dims)
        # a float64 input widens the stored factors before the (Tucker/CP/TT) reconstruction, so
        # the dense weight is complex128, not a complex64 product widened afterwards
        weight = widen_to_input(self.weight, x.dtype).complex()
        y = spectral_conv(x, weight, self.modes, out_shape, impl=self.impl)
        # a channel map returns its parameters' dtype (a bfloat16 policy stays bfloat16; the
        # FFTs ran in float32), float64 for a float64 input
        param_dtype = jax.tree_util.tree_leaves(self.weight)[0].dtype
        return y.astype(module_compute_dtype(x.dtype, param_dtype))

    @property
    def num_params(self) -> int:
        return self.weight.num_params


def check_field(name: str, x, channels: int, num_spatial_dims: int) -> None:
    """Raise a ValueError unless ``x`` is one field ``(channels, *spatial)`` with
    ``num_spatial_dims`` spatial axes (a TypeError unless it is an array: a list read as
    shape ``()``)."""
    check_array(name, x)
    shape = tuple(x.shape)
    if len(shape) != 1 + num_spatial_dims:
        raise ValueError(
            f"`{name}` must be one field (C, *spatial) with {num_spatial_dims} spatial axes; got "
            f"{name}.shape={shape}. Batch with jax.vmap."
        )
    if shape[0] != channels:
        hint = ""
        if shape[-1] == channels:  # the natural mistake: a channels-last (*spatial, C) field
            hint = (
                f" It looks channels-last (*spatial, C): fields are channels-first (C, *spatial);"
                f" pass jnp.moveaxis({name}, -1, 0)."
            )
        raise ValueError(
            f"`{name}` has {shape[0]} channels (axis 0 of shape {shape}); expected {channels}."
            + hint
        )
