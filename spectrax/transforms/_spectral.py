"""Spectral helpers on periodic grids: mode truncation and padding of rfft spectra,
wavenumbers, spectral derivatives and Sobolev norms via Parseval."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from spectrax._checks import (
    as_jax,
    check_bool,
    check_float_dtype,
    check_grid_shape,
    check_inexact,
    check_positive_int,
    check_real_float,
    lift_rank,
)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


def _as_tuple(name: str, value, ndim: int) -> tuple:
    """``value`` (a real number, or one per spatial axis) as ``ndim`` Python numbers, else a
    TypeError/ValueError naming ``name``: a bool would be read as 1 or 0, a string failed inside
    NumPy with a message that named nothing."""
    if _is_number(value):
        return (value,) * ndim
    try:
        values = tuple(value) if not isinstance(value, str) else None
    except TypeError:
        values = None
    if values is None or not all(_is_number(v) for v in values):
        raise TypeError(
            f"`{name}` must be a real number or a sequence of {ndim} real numbers (Python or "
            f"NumPy, one per spatial axis); got {value!r}."
        )
    if len(values) != ndim:
        raise ValueError(f"`{name}` must have one entry per spatial axis ({ndim}); got {values}.")
    return values


Lengths = ArrayLike | Sequence[ArrayLike]
"""Domain lengths: a real number, one per spatial axis, or a real JAX/NumPy array of shape
``()`` or ``(d,)`` (traced or concrete)."""


def _is_real_jax(v) -> bool:
    return isinstance(v, jax.Array) and (
        jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)
    )


def _concrete(v) -> np.ndarray | None:
    """The value of a JAX array, or None under a trace (jit, grad, vmap)."""
    try:
        return np.asarray(v)
    except jax.errors.TracerArrayConversionError:
        return None


def _lengths(lengths, ndim: int) -> tuple:
    """``lengths`` as ``ndim`` entries, each a Python/NumPy number (the path taken before JAX
    arrays were accepted, bit-identical) or a 0-d real JAX array (possibly traced). Concrete
    entries must be positive and finite (a ValueError naming ``lengths[i]``); a traced one cannot
    be checked at trace time and is taken as given."""
    name = "lengths"
    if isinstance(lengths, np.ndarray) and lengths.ndim == 0:
        lengths = lengths[()]
    if isinstance(lengths, jax.Array):
        if not _is_real_jax(lengths):
            raise TypeError(
                f"`{name}` must be a real (integer or floating-point) array; got dtype "
                f"{lengths.dtype}."
            )
        if lengths.ndim == 0:
            values = (lengths,) * ndim
        elif lengths.shape == (ndim,):
            values = tuple(lengths[i] for i in range(ndim))
        else:
            raise ValueError(
                f"`{name}` must be a scalar or have one entry per spatial axis, shape () or "
                f"({ndim},); got an array of shape {lengths.shape}."
            )
    elif isinstance(lengths, (list, tuple)) and any(isinstance(v, jax.Array) for v in lengths):
        if not all(_is_number(v) or (_is_real_jax(v) and v.ndim == 0) for v in lengths):
            raise TypeError(
                f"`{name}` must be a real number or a sequence of {ndim} real numbers (Python, "
                f"NumPy or 0-d JAX arrays, one per spatial axis); got {lengths!r}."
            )
        if len(lengths) != ndim:
            raise ValueError(
                f"`{name}` must have one entry per spatial axis ({ndim}); got {len(lengths)}."
            )
        values = tuple(lengths)
    else:
        values = _as_tuple(name, lengths, ndim)
    for i, ell in enumerate(values):
        v = _concrete(ell) if isinstance(ell, jax.Array) else ell
        if v is not None and not (np.isfinite(v) and v > 0):
            got = float(v) if isinstance(ell, jax.Array) else v
            raise ValueError(f"`{name}[{i}]` must be positive and finite; got {got}.")
    return values


def _length_dtype(values: tuple, dtype) -> np.dtype:
    """The real dtype to compute in: ``dtype`` (a field's), widened to float64 by a float64 JAX
    length (strongly typed: a Python float under ``jax.grad`` is weak and widens nothing), at
    least float32; a float32 length never narrows it."""
    wide = dtype == jnp.float64 or any(
        isinstance(v, jax.Array) and v.dtype == jnp.float64 and not jax.typeof(v).weak_type
        for v in values
    )
    return np.dtype(jnp.float64 if wide else jnp.float32)


def _volume(values: tuple, real) -> float | Array:
    """``prod(lengths)``: a Python float for numbers (as before), else an array of ``real``."""
    if not any(isinstance(v, jax.Array) for v in values):
        return float(np.prod(values))
    vol = jnp.ones((), real)
    for v in values:
        vol = vol * jnp.asarray(v).astype(real)
    return vol


def _grid(name: str, value) -> tuple[int, ...]:
    """A grid shape of any number of axes: positive ints (NumPy integers too), else a ValueError
    naming ``name`` (a size of 64.5 was truncated to 64)."""
    try:
        shape = tuple(value)
    except TypeError:
        raise ValueError(f"`{name}` must be a sequence of ints; got {value!r}.") from None
    if not shape:
        raise ValueError(f"`{name}` must have at least one axis; got {shape}.")
    return check_grid_shape(name, shape, len(shape))


def _check_modes(modes: Sequence[int], spatial: Sequence[int]) -> tuple[int, ...]:
    """Validate kept modes against a spatial grid (FNO convention, see truncate_modes)."""
    modes = tuple(check_positive_int(f"modes[{i}]", m) for i, m in enumerate(modes))
    spatial = tuple(int(s) for s in spatial)
    if len(modes) != len(spatial):
        raise ValueError(
            f"`modes` has {len(modes)} entries but the field has {len(spatial)} spatial axes "
            f"{spatial}; give one mode count per spatial axis."
        )
    for i, (m, n) in enumerate(zip(modes, spatial, strict=False)):
        last = i == len(spatial) - 1
        limit = n // 2 + 1 if last else n // 2
        if m < 1 or m > limit:
            why = "n//2+1 on the rfft axis" if last else "n//2, since both signs are kept"
            raise ValueError(
                f"`modes[{i}]`={m} is out of range for a spatial axis of size {n}: expected "
                f"1 <= modes[{i}] <= {limit} ({why})."
            )
    return modes


def truncate_modes(
    x_hat: Complex[Array, "*batch ..."],
    modes: int | Sequence[int],
    *,
    num_spatial_dims: int | None = None,
) -> Complex[Array, "*batch ..."]:
    """Keep the lowest ``modes`` frequencies of an ``rfftn`` spectrum over its last ``d`` axes.

    FNO convention (Li et al., 2021): on every axis but the last, frequencies ``0..m-1`` and
    ``-m..-1`` are kept (``2m`` entries, the positive and negative corners); on the last (rfft)
    axis, ``0..m-1``.

    Args:
        x_hat: ``jnp.fft.rfftn(x, axes=last d axes)``, shape ``(*batch, n_1, ..., n_d//2+1)``.
        modes: ``d`` positive integers, ``m_i <= n_i//2`` (``m_d <= n_d//2+1``), or one int,
            the same on every spatial axis, together with ``num_spatial_dims`` (as
            :class:`~spectrax.models.FNO`'s ``modes``). An int alone is refused (a TypeError):
            ``x_hat`` may carry batch axes, so its rank does not say how many axes are spatial.
        num_spatial_dims: ``d``, the number of trailing spatial axes; needed with an int
            ``modes``, optional (and checked against ``len(modes)``) otherwise.

    Returns:
        Shape ``(*batch, 2 m_1, ..., 2 m_{d-1}, m_d)``.
    """
    check_inexact("x_hat", x_hat)
    if num_spatial_dims is not None:
        num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
    if isinstance(modes, (int, np.integer)) and not isinstance(modes, (bool, np.bool_)):
        if num_spatial_dims is None:
            raise TypeError(
                f"`modes` must be one int per spatial axis, e.g. ({modes},) in 1-d or "
                f"({modes}, {modes}) in 2-d, or an int with `num_spatial_dims`; got {modes} alone "
                "(`x_hat` may carry batch axes, so its rank does not say how many are spatial)."
            )
        modes = (modes,) * num_spatial_dims
    try:
        modes = tuple(modes)
    except TypeError:
        raise TypeError(
            f"`modes` must be one int per spatial axis, or an int with `num_spatial_dims`; got "
            f"{modes!r}."
        ) from None
    d = len(modes)
    if num_spatial_dims is not None and d != num_spatial_dims:
        raise ValueError(
            f"`modes` {modes} has {d} entries but `num_spatial_dims`={num_spatial_dims}; give one "
            "mode count per spatial axis (or an int, the same on every axis)."
        )
    if d == 0:  # modes[-1] below was a bare IndexError
        raise ValueError(
            f"`modes` must give one mode count per spatial axis (at least one axis); got {modes!r}."
        )
    if x_hat.ndim < d:
        raise ValueError(f"`x_hat` has {x_hat.ndim} axes, fewer than len(modes)={d}.")
    full = tuple(x_hat.shape[-d:-1]) + (2 * (x_hat.shape[-1] - 1),)
    # The last axis length n_d is ambiguous from its rfft length (2L - 2 or 2L - 1 points give
    # L frequencies; the limit is L either way): say so rather than name one grid size.
    rfft_len = x_hat.shape[-1]
    m_last = modes[-1]
    if isinstance(m_last, (int, np.integer)) and not isinstance(m_last, bool) and m_last > rfft_len:
        raise ValueError(
            f"`modes[{d - 1}]`={m_last} is more than the {rfft_len} frequencies of the last (rfft) "
            f"axis of `x_hat` (shape {tuple(x_hat.shape)}, a grid of "
            + " or ".join(str(n) for n in sorted({max(2 * rfft_len - 2, 1), 2 * rfft_len - 1}))
            + f" points): expected 1 <= modes[{d - 1}] <= {rfft_len}."
        )
    _check_modes(modes, full)
    x_hat = as_jax(x_hat)  # a JAX array in every dimension (1-d slices alone kept NumPy's)
    out = x_hat[..., : modes[-1]]
    for i in range(d - 1):
        axis = x_hat.ndim - d + i
        m = modes[i]
        # static slices (not jnp.take: a gather, whose transpose is a slow scatter-add)
        n = x_hat.shape[axis]
        lo = jax.lax.slice_in_dim(out, 0, m, axis=axis)
        hi = jax.lax.slice_in_dim(out, n - m, n, axis=axis)
        out = jnp.concatenate([lo, hi], axis=axis)
    return out


def pad_modes(
    x_trunc: Complex[Array, "*batch ..."],
    spatial_shape: Sequence[int],
    *,
    in_shape: int | Sequence[int] | None = None,
) -> Complex[Array, "*batch ..."]:
    """Inverse of :func:`truncate_modes`: zero-pad kept modes to the rfft grid of ``spatial_shape``.

    With ``in_shape`` (the grid the kept spectrum came from) and the coefficients of a real field
    (``norm="forward"`` on both transforms),
    ``jnp.fft.irfftn(pad_modes(t, s, in_shape=s0), s=s, norm="forward")`` evaluates the
    band-limited field on any grid ``s`` large enough to hold the kept modes (zero-shot
    super-resolution in FNO). A kept Nyquist frequency of an even axis of ``s0`` is read as a
    cosine, ``c cos(pi n x)``, half at ``+n/2`` and half at ``-n/2``, the convention of
    :func:`spectrax.nn.nyquist_weights`; where ``s`` differs from ``s0`` on that axis it is no
    longer a Nyquist bin, so it is halved at ``-n/2`` and copied to ``+n/2`` (a leading axis;
    that bin lies outside the :func:`truncate_modes` layout) or, on the last axis, replaced by
    half its Hermitian part over the leading axes, ``(b[k] + conj b[-k]) / 4`` (irfft supplies
    the conjugate half; on ``s0`` irfftn keeps only that Hermitian part, so the column is
    ``H(x) cos(pi n y)`` and gains no sine where the layout kept frequency ``-m`` but not
    ``+m``). On the last axis, a kept frequency that is the Nyquist bin
    of an even ``s`` but not of ``s0`` is doubled, since irfft counts that bin once. On axes
    where ``s`` equals ``s0`` nothing changes.

    Without ``in_shape`` the kept bins are copied as they are. That is the same field only when
    no kept frequency is the Nyquist bin of one grid but not of the other, e.g. on the same grid
    (:class:`~spectrax.nn.SpectralConv` applies :func:`spectrax.nn.nyquist_weights` itself and
    pads without ``in_shape``); otherwise a kept last-axis Nyquist bin comes back doubled on a
    finer grid. With the default ``norm="backward"`` the result is scaled by
    ``prod(old grid) / prod(s)``.

    Args:
        x_trunc: kept modes, shape ``(*batch, 2 m_1, ..., 2 m_{d-1}, m_d)`` (the
            :func:`truncate_modes` layout).
        spatial_shape: output grid ``s``, ``d`` sizes (a sequence, also in 1-d: ``x_trunc``
            may carry batch axes, so an int could not say how many axes are spatial; a
            ValueError says so).
        in_shape: input grid ``s0`` of the kept spectrum, ``d`` sizes (or one int, the same on
            every axis), each able to hold the kept modes; ``None`` copies the bins unchanged.

    Returns:
        Shape ``(*batch, s_1, ..., s_{d-1}, s_d//2 + 1)``, dtype of ``x_trunc``.
    """
    check_inexact("x_trunc", x_trunc)
    if isinstance(spatial_shape, (int, np.integer)) and not isinstance(spatial_shape, bool):
        n = spatial_shape
        raise ValueError(
            f"`spatial_shape` must be a sequence of ints, one per spatial axis, e.g. ({n},) for a "
            f"1-d grid or ({n}, {n}) for 2-d; got {n} alone (`x_trunc` may carry batch axes, so "
            "its rank does not say how many axes are spatial)."
        )
    spatial_shape = _grid("spatial_shape", spatial_shape)
    d = len(spatial_shape)
    if x_trunc.ndim < d:
        raise ValueError(f"`x_trunc` has {x_trunc.ndim} axes, fewer than len(spatial_shape)={d}.")
    kept = x_trunc.shape[-d:]
    modes = tuple(k // 2 for k in kept[:-1]) + (kept[-1],)
    if any(k % 2 for k in kept[:-1]):
        raise ValueError(
            f"`x_trunc` spatial axes {kept}: every axis but the last must have even length "
            "(2*modes), as produced by truncate_modes."
        )
    # the kept modes come from x_trunc: a grid too coarse for them is `spatial_shape`'s fault
    check_grid("the `spatial_shape`", spatial_shape, modes)
    _check_modes(modes, spatial_shape)
    if in_shape is not None:
        in_shape = _check_in_shape(in_shape, modes)
    lead = x_trunc.shape[:-d]
    x_trunc = as_jax(x_trunc)
    out = jnp.zeros(lead + spatial_shape[:-1] + (spatial_shape[-1] // 2 + 1,), x_trunc.dtype)
    # Scatter the 2^(d-1) frequency corners.
    for corner in np.ndindex(*(2,) * (d - 1)):
        src = [slice(None)] * len(lead)
        dst = [slice(None)] * len(lead)
        for i, c in enumerate(corner):
            m = modes[i]
            src.append(slice(0, m) if c == 0 else slice(m, 2 * m))
            dst.append(slice(0, m) if c == 0 else slice(spatial_shape[i] - m, spatial_shape[i]))
        src.append(slice(0, modes[-1]))
        dst.append(slice(0, modes[-1]))
        out = out.at[tuple(dst)].set(x_trunc[tuple(src)])
    if in_shape is None:
        return out
    # Nyquist bins (static shapes; every step is a slice update of one hyperplane).
    for i in range(d - 1):
        n0, n, m = in_shape[i], spatial_shape[i], modes[i]
        if n0 % 2 == 0 and m == n0 // 2 and n != n0:  # n > n0: -m and +m are distinct bins
            axis = len(lead) + i
            half = 0.5 * jax.lax.slice_in_dim(out, n - m, n - m + 1, axis=axis)
            out = jax.lax.dynamic_update_slice_in_dim(out, half, n - m, axis=axis)
            out = jax.lax.dynamic_update_slice_in_dim(out, half, m, axis=axis)
    n0, n, m = in_shape[-1], spatial_shape[-1], modes[-1]
    b = out[..., m - 1 : m]
    if n0 % 2 == 0 and m == n0 // 2 + 1 and n != n0:
        # The input's Nyquist column is an interior one of the output. On the input grid irfftn
        # keeps only its Hermitian part over the leading axes, H[k] = (b[k] + conj b[-k]) / 2
        # (the real part after the inverse FFT of the leading axes); read as a cosine in the
        # last axis, H[k] e^{i k.x} cos(pi n0 y) puts H[k] / 2 at (k, +n0/2), and irfftn adds
        # the conjugate half at (-k, -n0/2). Halving b alone would keep its anti-Hermitian part
        # as a sine, zero on the input grid but not between its points.
        flipped = b
        for i in range(d - 1):  # index k -> -k mod n on every leading axis
            axis = len(lead) + i
            flipped = jnp.roll(jnp.flip(flipped, axis=axis), 1, axis=axis)
        quarter = jnp.asarray(0.25, b.real.dtype).astype(b.dtype)
        out = out.at[..., m - 1 : m].set(quarter * (b + jnp.conj(flipped)))
    elif n % 2 == 0 and m == n // 2 + 1 and n != n0:
        # an interior bin of the input is the output's Nyquist bin, which irfft counts once
        out = out.at[..., m - 1 : m].set(b * jnp.asarray(2.0, b.real.dtype).astype(b.dtype))
    return out


def _check_in_shape(in_shape: int | Sequence[int], modes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(in_shape, (int, np.integer)) and not isinstance(in_shape, bool):
        in_shape = (in_shape,) * len(modes)  # d is known from spatial_shape: the same per axis
    shape = check_grid_shape("in_shape", in_shape, len(modes))
    check_grid("the `in_shape`", shape, modes)
    return shape


def check_grid(name: str, spatial: Sequence[int], modes: Sequence[int]) -> None:
    """Raise a ValueError naming ``name`` if ``spatial`` cannot hold ``modes`` (both signs kept on
    all but the last axis, so ``m <= n//2`` there and ``m <= n//2 + 1`` on the last)."""
    d = len(modes)
    for i, (n, m) in enumerate(zip(spatial, modes, strict=True)):
        limit = n // 2 + 1 if i == d - 1 else n // 2
        if m > limit:
            raise ValueError(
                f"`modes[{i}]`={m} is too many for {name} spatial shape {tuple(spatial)}: axis {i} "
                f"of size {n} holds at most {limit} modes ("
                + ("n//2+1 on the last, rfft, axis" if i == d - 1 else "n//2, both signs kept")
                + f"). Use a finer grid or fewer modes (modes <= {limit})."
            )


def wavenumbers(
    spatial_shape: int | Sequence[int], lengths: Lengths = 1.0, *, dtype=jnp.float32
) -> tuple[Array, ...]:
    """Angular wavenumbers ``2*pi*k/length`` on the ``rfftn`` grid of ``spatial_shape``.

    Returns one array per axis, shaped to broadcast against the rfftn spectrum: axis ``i`` has
    shape ``(1, .., n_i, .., 1)`` (the last axis ``n_d//2+1``). An int ``spatial_shape`` ``n``
    is the 1-d grid ``(n,)``. Frequencies follow ``fftfreq``/``rfftfreq`` order. ``dtype`` is a
    real floating-point type JAX can produce in the current mode (a TypeError names it
    otherwise: integer wavenumbers would be truncated, and float64 outside ``jax_enable_x64``
    narrowed to float32 with only a warning).

    ``lengths`` is a real number, one per spatial axis, or a real JAX/NumPy array of shape
    ``()`` or ``(d,)``; a JAX array may be traced, so ``jax.grad``/``jax.vmap``/``jax.jit`` see
    the domain length. Concrete lengths must be positive and finite (a ValueError names the
    entry); a traced length cannot be checked at trace time and is used as given. Python and
    NumPy numbers are divided in float64 NumPy and cast to ``dtype``; a JAX length is divided
    in float64 if it or ``dtype`` is float64 (a strongly typed float64 length, x64 mode), else
    in float32, then cast to ``dtype``.
    """
    if isinstance(spatial_shape, (int, np.integer)) and not isinstance(spatial_shape, bool):
        spatial_shape = (spatial_shape,)  # as np.fft.rfftfreq(n): there is no other axis count
    spatial_shape = _grid("spatial_shape", spatial_shape)
    dtype = check_float_dtype("dtype", dtype)
    return _wavenumbers(spatial_shape, _lengths(lengths, len(spatial_shape)), dtype)


def _wavenumbers(spatial_shape: tuple[int, ...], lengths: tuple, dtype) -> tuple[Array, ...]:
    """:func:`wavenumbers` for a checked shape and :func:`_lengths` output."""
    d = len(spatial_shape)
    ks = []
    for i, (n, ell) in enumerate(zip(spatial_shape, lengths, strict=True)):
        f = np.fft.rfftfreq(n, d=1.0 / n) if i == d - 1 else np.fft.fftfreq(n, d=1.0 / n)
        if isinstance(ell, jax.Array):
            wide = _length_dtype((ell,), dtype)
            k = (jnp.asarray(2 * np.pi * f, wide) / ell.astype(wide)).astype(dtype)
        else:
            k = jnp.asarray(2 * np.pi * f / ell, dtype=dtype)
        shape = [1] * d
        shape[i] = k.shape[0]
        ks.append(k.reshape(shape))
    return tuple(ks)


def _check_spatial_sizes(u_shape: tuple[int, ...], d: int) -> tuple[int, ...]:
    """The last ``d`` axes of ``u``, or a ValueError naming ``u`` if one has length 0 (a
    zero-length FFT failed in XLA's lowering with a verifier error that names nothing)."""
    spatial = tuple(u_shape[-d:])
    if 0 in spatial:
        raise ValueError(
            f"`u` has shape {u_shape}, a spatial axis of length 0 (the last {d} axes are "
            "spatial); expected every spatial axis to hold at least 1 grid point."
        )
    return spatial


def spectral_derivative(
    u: Float[Array, "*batch ..."],
    orders: int | Sequence[int],
    *,
    lengths: Lengths = 1.0,
) -> Float[Array, "*batch ..."]:
    """Partial derivative of a periodic field: multiply by ``(i k)^order`` in Fourier space.

    Args:
        u: real field sampled on a uniform periodic grid; its last ``len(orders)`` axes are
            spatial.
        orders: derivative order per spatial axis (an int means the last axis only).
        lengths: domain length per spatial axis (default 1: the unit interval/square/cube): a
            real number, one per axis, or a real JAX/NumPy array of shape ``()`` or ``(d,)``,
            possibly traced (differentiate or ``vmap`` with respect to it). Concrete values must
            be positive and finite; a traced one is not checked. See :func:`wavenumbers`.

    Returns:
        The derivative, same shape and dtype as ``u`` (computed in float64 if ``u`` or a
        strongly typed JAX length is float64, else float32). Exact (to rounding) for trigonometric
        polynomials resolved by the grid; the Nyquist mode of an axis of even length
        differentiated an odd number of times is set to 0 (Nyquist content of the other axes
        is differentiated like any other mode).
    """
    check_real_float("u", u)
    if isinstance(orders, (int, np.integer)) and not isinstance(orders, (bool, np.bool_)):
        orders = (int(orders),)
    elif isinstance(orders, (bool, np.bool_)):
        raise TypeError(f"`orders` must be non-negative integers; got {orders!r}.")
    if isinstance(orders, (float, np.floating)) or any(
        isinstance(o, bool) or not isinstance(o, (int, np.integer)) for o in orders
    ):
        raise TypeError(f"`orders` must be non-negative integers; got {orders!r}.")
    orders = tuple(int(o) for o in orders)
    if not orders:
        raise ValueError(
            "`orders` must give at least one spatial axis (an int for the last axis, or one "
            "order per spatial axis); got ()."
        )
    if any(o < 0 for o in orders):
        raise ValueError(f"`orders` must be non-negative integers; got {orders}.")
    d = len(orders)
    if u.ndim < d:
        raise ValueError(f"`u` has shape {u.shape}, fewer axes than len(orders)={d}.")
    spatial = _check_spatial_sizes(u.shape, d)
    axes = tuple(range(u.ndim - d, u.ndim))
    u = as_jax(u)
    in_dtype = u.dtype
    lengths = _lengths(lengths, d)
    real = _length_dtype(lengths, in_dtype)
    u_hat = jnp.fft.rfftn(u.astype(real), axes=axes)
    ks = _wavenumbers(spatial, lengths, real)
    mult = jnp.ones(spatial[:-1] + (spatial[-1] // 2 + 1,), u_hat.dtype)
    for k, o, n in zip(ks, orders, spatial, strict=True):
        if not o:
            continue
        factor = (1j * k.astype(u_hat.dtype)) ** o
        if o % 2 and n % 2 == 0:
            # An odd derivative of this axis' Nyquist mode cos(pi n x) is a sine, zero on the
            # grid; only this axis' Nyquist bin (index n//2 in both fftfreq and rfftfreq order).
            keep = np.ones(k.size)
            keep[n // 2] = 0.0
            factor = factor * jnp.asarray(keep.reshape(k.shape), real).astype(u_hat.dtype)
        mult = mult * factor
    out = jnp.fft.irfftn(u_hat * lift_rank(mult, u_hat.ndim), s=spatial, axes=axes)
    return out.astype(in_dtype)


def sobolev_norm(
    u: Float[Array, "*batch ..."],
    s: float,
    *,
    num_spatial_dims: int = 1,
    lengths: Lengths = 1.0,
    homogeneous: bool = False,
    squared: bool = False,
) -> Float[Array, "*batch"]:
    """Sobolev ``H^s`` norm of a periodic field via Parseval, for any real ``s``.

    ``||u||_{H^s}^2 = |Omega| * sum_k w(k)^s |c_k|^2`` with ``c_k`` the Fourier coefficients
    (``rfftn / N``), ``|Omega|`` the domain volume and ``w(k) = 1 + |k|^2`` (``|k|^2`` with
    ``homogeneous=True``, which drops ``k = 0``; that is the seminorm used by negative Sobolev
    losses, Spectral-Refiner). ``s = 0`` is the L2 norm: for ``a sin(2 pi m x)`` on ``[0, 1)``
    it gives ``a^2/2 (1 + (2 pi m)^2)^s`` squared.

    Args:
        u: real field; its last ``num_spatial_dims`` axes are spatial.
        s: smoothness index (negative allowed).
        num_spatial_dims: number of trailing spatial axes.
        lengths: domain length per spatial axis: a real number, one per axis, or a real
            JAX/NumPy array of shape ``()`` or ``(d,)``, possibly traced (``jax.grad`` with
            respect to the domain size, ``jax.vmap`` over sizes). Concrete values must be
            positive and finite; a traced one is not checked. See :func:`wavenumbers`.
        homogeneous: use ``|k|^(2s)`` and drop the mean.
        squared: return the squared norm. Otherwise the gradient at ``u = 0`` is zero (a
            subgradient) rather than NaN.

    Returns:
        One value per leading index, dtype float32 (float64 for float64 input, or for a
        strongly typed float64 JAX length in x64 mode; a float32 length never narrows a float64
        field).
    """
    check_real_float("u", u)
    # a Python or NumPy number is checked here; a JAX scalar (possibly traced, e.g. d/ds) passes
    if isinstance(s, (bool, str, complex, np.complexfloating)) or s is None:
        raise TypeError(f"`s` must be a real number; got {s!r}.")
    if isinstance(s, (int, float, np.number)) and not math.isfinite(s):
        raise ValueError(f"`s` must be finite; got {s}.")
    # an array s broadcast against the weight of the last (rfft) axis: per-mode exponents, or a
    # bare broadcasting error from inside the power
    if np.ndim(s) != 0:
        raise ValueError(
            f"`s` must be one smoothness index, a scalar; got an array of shape {np.shape(s)}. "
            "For several indices call once per s (or jax.vmap over a scalar s)."
        )
    # a 0-d array passed the checks above: a complex one lost its imaginary part, a bool one
    # was read as 0 or 1, and NaN or inf gave a NaN or inf norm
    if isinstance(s, (np.ndarray, jax.Array)):
        if not (jnp.issubdtype(s.dtype, jnp.floating) or jnp.issubdtype(s.dtype, jnp.integer)):
            raise TypeError(f"`s` must be a real number; got a 0-d array of dtype {s.dtype}.")
        value = _concrete(s) if isinstance(s, jax.Array) else s
        if value is not None and not np.isfinite(value):
            raise ValueError(f"`s` must be finite; got {value}.")
    d = check_positive_int("num_spatial_dims", num_spatial_dims)
    homogeneous = check_bool("homogeneous", homogeneous, " (it picks the weight at trace time)")
    squared = check_bool("squared", squared)
    if u.ndim < d:
        raise ValueError(
            f"`num_spatial_dims`={num_spatial_dims} is more than the {u.ndim} axes of `u` "
            f"(shape {u.shape}): expected 1 <= num_spatial_dims <= u.ndim, the trailing spatial "
            "axes."
        )
    spatial = _check_spatial_sizes(u.shape, d)
    axes = tuple(range(u.ndim - d, u.ndim))
    lengths_t = _lengths(lengths, d)
    u = as_jax(u)
    real = _length_dtype(lengths_t, u.dtype)
    n_total = float(np.prod(spatial))
    volume = _volume(lengths_t, real)
    c = jnp.fft.rfftn(u.astype(real), axes=axes) / n_total
    ks = _wavenumbers(spatial, lengths_t, real)
    k2 = jnp.zeros(spatial[:-1] + (spatial[-1] // 2 + 1,), real)
    for k in ks:
        k2 = k2 + k**2
    if homogeneous:
        safe = jnp.where(k2 > 0, k2, 1.0)
        weight = jnp.where(k2 > 0, safe ** jnp.asarray(s, real), 0.0)
    else:
        weight = (1.0 + k2) ** jnp.asarray(s, real)
    # rfft keeps half of the last axis: interior bins stand for two conjugate coefficients.
    n_last = spatial[-1]
    dup = np.full(n_last // 2 + 1, 2.0)
    dup[0] = 1.0
    if n_last % 2 == 0:
        dup[-1] = 1.0
    weight = weight * lift_rank(jnp.asarray(dup, real), d)
    sq = volume * jnp.sum(lift_rank(weight, c.ndim) * (c.real**2 + c.imag**2), axis=axes)
    if squared:
        return sq
    # sqrt with the zero subgradient at u = 0 (the plain sqrt's gradient is NaN there); a NaN
    # stays NaN (`!= 0`, not `> 0`).
    pos = sq != 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
