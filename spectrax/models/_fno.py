"""Fourier neural operator (1d/2d/3d, and space-time), optionally with factorised weights (TFNO).

Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar (2021), "Fourier Neural
Operator for Parametric Partial Differential Equations"; Kossaifi et al. (2023), "Multi-Grid
Tensorized Fourier Neural Operator for High-Resolution PDEs" (factorised weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    check_bool,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    module_compute_dtype,
)
from spectrax._compile import compiled_call
from spectrax.nn import ChannelMLP, GroupNorm, PointwiseLinear, SoftGating, SpectralConv
from spectrax.nn._factorized import RankLike
from spectrax.nn._pointwise import get_activation
from spectrax.nn._spectral_conv import check_field, check_grid, check_modes


def grid_channels(
    spatial_shape: Sequence[int], *, endpoint: bool = False, dtype=jnp.float32
) -> Float[Array, " D *spatial"]:
    """Coordinates of a uniform grid on the unit cube, one channel per axis.

    ``endpoint=False`` samples the unit torus (``j / n``: the same points refine consistently when
    the grid is refined, the right choice for periodic data); ``endpoint=True`` samples
    ``linspace(0, 1, n)`` (data that includes both boundaries, e.g. Darcy).

    Computed in float32 (float64 for ``dtype=float64``) and rounded to ``dtype``, a real
    floating-point type (a TypeError names it otherwise; ``endpoint`` must be a bool). Built from
    ``iota`` rather than as a NumPy constant: under ``jax.vmap`` JAX's concatenate of a batch
    sharded over an Explicit mesh axis (``jax.make_mesh``'s default) with a constant fails
    ("Resource axis ... is not found in mesh: ()").
    """
    try:
        spatial_shape = tuple(spatial_shape)
    except TypeError:
        raise ValueError(
            f"`spatial_shape` must be a sequence of ints, one per axis; got {spatial_shape!r}."
        ) from None
    shape = tuple(check_positive_int(f"spatial_shape[{i}]", n) for i, n in enumerate(spatial_shape))
    # taken by truthiness, endpoint="False" sampled linspace(0, 1, n); an integer dtype
    # truncated every coordinate below 1 to 0
    endpoint = check_bool("endpoint", endpoint)
    dtype = check_float_dtype("dtype", dtype)
    wide = jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32
    # endpoint with n = 1: linspace(0, 1, 1) = [0]
    scale = [max(n - 1, 1) if endpoint else n for n in shape]
    axes = [jax.lax.broadcasted_iota(wide, shape, i) / s for i, s in enumerate(scale)]
    return jnp.stack(axes).astype(dtype)


def _as_padding(padding, d: int) -> tuple[float, ...]:
    what = f"`padding` must be a finite non-negative fraction or one per spatial axis ({d})"
    if isinstance(padding, (int, float, np.integer, np.floating)):
        padding = (padding,) * d
    try:
        padding = tuple(padding)
        # a bool is an int to float(): padding=True would pad by 100%; a string "0.25" would
        # be parsed by float()
        if any(
            isinstance(p, (bool, np.bool_))
            or not isinstance(p, (int, float, np.integer, np.floating))
            for p in padding
        ):
            raise TypeError
        padding = tuple(float(p) for p in padding)
    except (TypeError, ValueError):
        raise ValueError(f"{what}; got {padding!r}.") from None
    # not finite: round(inf * n) would fail at call time with an OverflowError
    if len(padding) != d or any(not (p >= 0 and math.isfinite(p)) for p in padding):
        raise ValueError(f"{what}; got {padding}.")
    return padding


NORMS = (None, "group", "instance")


def check_norm(norm) -> str | None:
    """``norm`` as one of :data:`NORMS`, or a ValueError naming it."""
    if norm is None or (isinstance(norm, str) and norm in NORMS):
        return norm
    raise ValueError(f"`norm` must be None, 'group' or 'instance'; got {norm!r}.")


def block_norms(width: int, norm: str | None, dtype) -> tuple[GroupNorm, ...]:
    """The block's normalisations: none, or two :class:`~spectrax.nn.GroupNorm` (one group for
    ``"group"``, ``width`` for ``"instance"``): on the spectral path and on the block's output,
    the two places of neuraloperator's ``FNOBlocks``."""
    if check_norm(norm) is None:
        return ()
    groups = 1 if norm == "group" else width
    return (GroupNorm(groups, width, dtype=dtype), GroupNorm(groups, width, dtype=dtype))


SKIPS = ("linear", "soft_gating", "identity")


def block_skip(width: int, skip: str, dtype, key) -> PointwiseLinear | SoftGating | None:
    """The block's skip path: ``"linear"`` a pointwise linear map (the paper's ``W``),
    ``"soft_gating"`` a per-channel scale (:class:`~spectrax.nn.SoftGating`), ``"identity"``
    none (None: ``x`` itself)."""
    if not (isinstance(skip, str) and skip in SKIPS):
        raise ValueError(f"`skip` must be 'linear', 'soft_gating' or 'identity'; got {skip!r}.")
    if skip == "linear":
        return PointwiseLinear(width, width, use_bias=False, dtype=dtype, key=key)
    return SoftGating(width, dtype=dtype) if skip == "soft_gating" else None


class FNOBlock(eqx.Module):
    """One Fourier layer: ``y = N(SpectralConv(x)) + S(x)``, then, if a channel MLP is used,
    ``y = act(y) + MLP(act(y))``, and ``N'(y)``. ``S`` is the skip path: ``W x`` (pointwise
    linear, the paper's), a per-channel scale or ``x`` (``skip``); ``N``, ``N'`` are the
    identity unless ``norm`` (``"group"`` or ``"instance"``, :class:`~spectrax.nn.GroupNorm`,
    in the two places of neuraloperator's ``norm``, which also applies the activation between
    the two). The activation after the block is the caller's."""

    conv: SpectralConv
    skip: PointwiseLinear | SoftGating | None
    mlp: ChannelMLP | None
    norms: tuple[GroupNorm, ...]
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        width: int,
        modes,
        *,
        channel_mlp_expansion: float | None,
        activation,
        factorization: str,
        rank,
        impl: str,
        dtype,
        key: PRNGKeyArray,
        norm: str | None = None,
        skip: str = "linear",
        separable: bool = False,
    ):
        check_key("key", key)
        # checked here: SpectralConv would name its own `in_channels`
        width = check_positive_int("width", width)
        kc, ks, km = jax.random.split(key, 3)
        self.conv = SpectralConv(
            num_spatial_dims,
            width,
            width,
            modes,
            factorization=factorization,
            rank=rank,
            impl=impl,
            separable=separable,
            dtype=dtype,
            key=kc,
        )
        self.skip = block_skip(width, skip, dtype, ks)
        self.activation = get_activation(activation)
        self.mlp = block_channel_mlp(width, channel_mlp_expansion, activation, dtype, km)
        self.norms = block_norms(width, norm, dtype)

    def __call__(self, x: Float[Array, " C *spatial"]) -> Float[Array, " C *spatial"]:
        check_parameters(self)  # named by their path from the block
        return block_tail(self.conv(x), x, self.skip, self.mlp, self.activation, self.norms)


def block_channel_mlp(
    width: int, expansion: float | None, activation, dtype, key
) -> ChannelMLP | None:
    """The optional residual channel MLP of a block, hidden size ``expansion * width``."""
    if not expansion:
        return None
    expansion = check_positive_float("channel_mlp_expansion", expansion)
    hidden = max(1, round(expansion * width))
    return ChannelMLP(width, hidden, width, activation=activation, dtype=dtype, key=key)


def block_tail(spectral: Array, x: Array, skip, mlp, activation, norms=()) -> Array:
    """``y = N(spectral) + skip(x)`` (``skip`` None: ``x``), then with an MLP ``y = act(y);
    y + MLP(y)``, and ``N'(y)``, with ``N, N' = norms`` (none: identities). The spectral path
    computes in float32 (XLA has no half-precision FFT); the block keeps its input's dtype (the
    pointwise layers compute in their parameters' dtype, so each path is cast back to it)."""
    spectral = spectral.astype(x.dtype)
    if norms:
        spectral = norms[0](spectral)
    y = spectral + (x if skip is None else skip(x).astype(x.dtype))
    if mlp is not None:
        y = activation(y)
        y = y + mlp(y).astype(y.dtype)
    if len(norms) > 1:
        y = norms[1](y)
    return y


class FNO(eqx.Module):
    """Fourier neural operator on fields ``(C_in, *spatial)`` with 1, 2 or 3 (or more) spatial dims.

    Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations".
    ``x -> [x, grid] -> lift (pointwise) -> pad -> L x (FNOBlock, activation except after the
    last) -> crop -> projection MLP (width -> projection_channels -> C_out)``.

    The same model applies to any grid that holds its ``modes`` (zero-shot super-resolution: train
    at one resolution, evaluate at another), since the Fourier coefficients are normalised as
    those of the underlying function. Exactly so (to rounding) for a band-limited input without
    ``positional_grid`` and with a linear activation; a nonlinear activation adds aliasing that
    falls quickly with refinement. The grid channels (the default) are not band-limited: the
    coordinate ``j / n`` jumps from ``1 - 1/n`` back to 0 across the periodic boundary, so the
    spectral layers see a sawtooth whose coefficients depend on ``n``, and the output moves by
    ``O(1/n)`` between resolutions (for one-layer 1-d FNOs at init on ``sin(2 pi x)``: 2e-2 to
    1.2e-1 of the output's maximum between 16 and 32 points, measured over widths 16 to 64,
    modes 4 to 8 and four keys; half that between 32 and 64). A space-time FNO ("FNO-3d"
    on ``(x, y, t)``) is this model with ``num_spatial_dims = d + 1`` and domain padding on the
    (non-periodic) time axis: :func:`spatiotemporal_fno`.

    Args:
        num_spatial_dims: ``d`` (1, 2, 3).
        in_channels: ``C_in`` of the input field (grid channels are added internally).
        out_channels: ``C_out``.
        width: hidden channels of the Fourier layers (paper: 64 for 1d, 32 for 2d, 20 for 3d).
        modes: kept modes per axis, int or ``d`` ints (paper: 16 for 1d, 12 for 2d/3d).
        num_layers: number of Fourier layers ``L`` (default 4).
        projection_channels: hidden channels of the projection MLP (default 128).
        lifting_channels: None (default): the lifting is one pointwise linear map (Li et al.'s
            ``fc0``); an int: a two-layer channel MLP ``C_in (+ d) -> lifting_channels ->
            width`` with the model's activation (neuraloperator's lifting, whose hidden size is
            ``lifting_channel_ratio * width``).
        activation: name in ``spectrax.nn.ACTIVATIONS`` or a callable (default ``"gelu"``,
            JAX's tanh approximation; ``"gelu_exact"``: the erf form, PyTorch's and neuralop's).
        positional_grid: append the grid coordinates as ``d`` input channels (default True).
        grid_endpoint: grid on ``linspace(0, 1, n)`` rather than ``j / n`` (see
            :func:`grid_channels`).
        padding: domain padding for non-periodic problems, a fraction of each axis (or one per
            axis) of zeros appended after lifting and cropped before projection (default 0):
            ``round(padding * n)`` points on an axis of ``n``. The Fourier layers see a domain
            ``(n + pad) / n`` times the physical one, so for zero-shot super-resolution choose
            resolutions at which ``padding * n`` is an integer (the same ratio on every grid);
            otherwise each kept mode is a slightly different wavenumber on each grid.
        channel_mlp_expansion: if set, each block ends with a residual channel MLP of hidden size
            ``expansion * width`` (neuraloperator's "channel MLP"); default None, the original
            FNO (``0`` also means no MLP).
        skip: each block's skip path: ``"linear"`` (default, the paper's pointwise ``W x``),
            ``"soft_gating"`` (a per-channel scale, :class:`~spectrax.nn.SoftGating`) or
            ``"identity"`` (``x``); neuraloperator's ``fno_skip``.
        norm: normalise each block's spectral output and the block's output (after a channel
            MLP), neuraloperator's two places, with a :class:`~spectrax.nn.GroupNorm`:
            ``"group"`` over channels and space (one group, neuraloperator's
            ``"group_norm"``), ``"instance"`` per channel over space (its ``"instance_norm"``,
            which learns no scale and shift; both norms here learn a per-channel scale and
            shift), or None (default, the original FNO). On the ``burgers_fno`` config (2000
            steps, CPU) the test error was 0.0029 without a norm, 0.019 with ``"group"`` and
            0.062 with ``"instance"`` (one run each, on an earlier host; the default run
            gives 0.0035 on today's record): not the default for a reason.
        factorization: ``"dense"``, ``"tucker"``, ``"cp"`` or ``"tt"`` (tensor train) spectral
            weights (TFNO).
        rank: rank for factorised weights (int, or fraction of dense parameters, with a floor
            of rank 1 that a small layer's budget may not hold; default 0.1; see
            :class:`~spectrax.nn.SpectralConv`).
        impl: spectral path, ``"auto"`` (default), ``"rfft"`` or ``"dft"`` (see
            :func:`spectrax.nn.spectral_conv`).
        separable: depthwise spectral weights ``(width, *kept)``, no channel mixing in the
            Fourier layers (neuraloperator's ``separable``; the skip path still mixes, unless
            ``skip`` is not ``"linear"``): ``width`` times fewer spectral parameters.
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).
    """

    lifting: PointwiseLinear | ChannelMLP
    blocks: tuple[FNOBlock, ...]
    projection: ChannelMLP
    num_spatial_dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)
    positional_grid: bool = eqx.field(static=True)
    grid_endpoint: bool = eqx.field(static=True)
    padding: tuple[float, ...] = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int | Sequence[int],
        num_layers: int = 4,
        *,
        projection_channels: int = 128,
        lifting_channels: int | None = None,
        activation: str | Callable[[Array], Array] = "gelu",
        positional_grid: bool = True,
        grid_endpoint: bool = False,
        padding: float | Sequence[float] = 0.0,
        channel_mlp_expansion: float | None = None,
        norm: str | None = None,
        skip: str = "linear",
        separable: bool = False,
        factorization: str = "dense",
        rank: RankLike = 0.1,
        impl: str = "auto",
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        check_key("key", key)
        d = self.num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
        check_float_dtype("dtype", dtype)  # float64 needs x64 mode
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        width = check_positive_int("width", width)
        num_layers = check_positive_int("num_layers", num_layers)
        projection_channels = check_positive_int("projection_channels", projection_channels)
        self.modes = check_modes(modes, d)
        self.activation = get_activation(activation)
        self.positional_grid = check_bool("positional_grid", positional_grid)
        self.grid_endpoint = check_bool("grid_endpoint", grid_endpoint)
        self.padding = _as_padding(padding, d)
        norm = check_norm(norm)
        keys = jax.random.split(key, num_layers + 2)
        lift_in = in_channels + (d if positional_grid else 0)
        if lifting_channels is None:
            self.lifting = PointwiseLinear(lift_in, width, dtype=dtype, key=keys[0])
        else:
            lifting_channels = check_positive_int("lifting_channels", lifting_channels)
            self.lifting = ChannelMLP(
                lift_in, lifting_channels, width, activation=activation, dtype=dtype, key=keys[0]
            )
        self.blocks = tuple(
            FNOBlock(
                d,
                width,
                self.modes,
                channel_mlp_expansion=channel_mlp_expansion,
                activation=activation,
                factorization=factorization,
                rank=rank,
                impl=impl,
                dtype=dtype,
                key=k,
                norm=norm,
                skip=skip,
                separable=separable,
            )
            for k in keys[1:-1]
        )
        self.projection = ChannelMLP(
            width,
            projection_channels,
            out_channels,
            activation=activation,
            dtype=dtype,
            key=keys[-1],
        )

    @compiled_call
    def __call__(self, x: Float[Array, " C_in *spatial"]) -> Float[Array, " C_out *spatial"]:
        """Map one input field ``(C_in, *spatial)`` to ``(C_out, *spatial)``; batch with
        ``jax.vmap``."""
        check_real_float("x", x)
        check_field("x", x, self.in_channels, self.num_spatial_dims)
        spatial = x.shape[1:]
        # the parameters' dtype; float64 input computes (and returns) float64
        dtype = module_compute_dtype(x.dtype, self.projection.fc1.weight.dtype)
        x = x.astype(dtype)
        if self.positional_grid:
            grid = grid_channels(spatial, endpoint=self.grid_endpoint, dtype=dtype)
            x = jnp.concatenate([x, grid], axis=0)
        h = self.lifting(x)
        pads = tuple(int(round(p * n)) for p, n in zip(self.padding, spatial, strict=False))
        h = jnp.pad(h, ((0, 0),) + tuple((0, p) for p in pads))
        check_grid("the (padded) input", h.shape[1:], self.modes)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < len(self.blocks) - 1:
                h = self.activation(h)
        h = h[(slice(None),) + tuple(slice(0, n) for n in spatial)]
        return self.projection(h)


class SpatiotemporalFNO(FNO):
    """An :class:`FNO` over space and time, time last: what :func:`spatiotemporal_fno` builds.

    It computes as the :class:`FNO` it is (``isinstance(model, FNO)``; its
    ``num_spatial_dims`` counts time); a field of the wrong rank is named as a space-time
    field ``(C, *space, T)``, with the number of space axes the caller gave.
    """

    def __call__(self, x: Float[Array, " C_in *spatial"]) -> Float[Array, " C_out *spatial"]:
        """Map one space-time field ``(C_in, *space, T)`` to ``(C_out, *space, T)``; batch with
        ``jax.vmap``."""
        shape = tuple(getattr(x, "shape", ()))
        d = self.num_spatial_dims
        if shape and len(shape) != 1 + d:
            axes = "axis" if d - 1 == 1 else "axes"
            hint = (
                "Batch with jax.vmap."
                if len(shape) > 1 + d
                else "Give the input a last time axis, e.g. the initial snapshots repeated over "
                "the T output times (Li et al., 2021, section 5.3): "
                "jnp.broadcast_to(x[..., None], (*x.shape, T))."
            )
            raise ValueError(
                f"`x` must be one space-time field (C, *space, T): {d - 1} space {axes} and "
                f"time last, {d} axes after the channels; got x.shape={shape}. {hint}"
            )
        return FNO.__call__(self, x)


def spatiotemporal_fno(
    num_spatial_dims: int | None = None,
    in_channels: int | None = None,
    out_channels: int | None = None,
    width: int | None = None,
    modes: int | Sequence[int] | None = None,
    num_layers: int = 4,
    *,
    time_padding: float = 0.25,
    key: PRNGKeyArray,
    num_space_dims: int | None = None,
    **kwargs,
) -> SpatiotemporalFNO:
    """A space-time FNO: an :class:`FNO` whose last axis is time (``num_spatial_dims + 1`` axes),
    as a :class:`SpatiotemporalFNO`.

    Li et al. (2021), section 5.3 ("FNO-3d"): the input field ``(C_in, *space, T)`` holds, e.g.,
    the first ``T_in`` vorticity snapshots repeated along the time axis; time is not periodic, so
    it is zero-padded by ``time_padding`` of its length (space is periodic and not padded).

    Args:
        num_spatial_dims: the number of space axes, time not counted (2 for ``(x, y, t)``); the
            returned :class:`FNO` has ``num_spatial_dims + 1`` axes (its own
            ``num_spatial_dims`` attribute counts time). ``num_space_dims=`` is the same
            argument under its earlier name (give one of the two; both is a TypeError).
        in_channels, out_channels, width, num_layers: as :class:`FNO`.
        modes: an int (every axis, time included) or ``num_spatial_dims + 1`` ints, space
            first, time last.
        time_padding: zero padding of the time axis, a fraction of its length (default 0.25).
        key: PRNG key.
        **kwargs: other keyword arguments of :class:`FNO` (not ``padding``).
    """
    check_key("key", key)
    if num_space_dims is not None:
        if num_spatial_dims is not None:
            raise TypeError(
                f"give the number of space axes once: `num_spatial_dims`={num_spatial_dims!r} "
                f"and `num_space_dims`={num_space_dims!r} (its earlier name) were both passed."
            )
        num_spatial_dims = num_space_dims
    missing = [
        name
        for name, value in (
            ("num_spatial_dims", num_spatial_dims),
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("width", width),
            ("modes", modes),
        )
        if value is None
    ]
    if missing:
        raise TypeError(
            "spatiotemporal_fno() missing required argument(s): "
            + ", ".join(f"`{m}`" for m in missing)
            + "."
        )
    d = check_positive_int("num_spatial_dims", num_spatial_dims) + 1
    if "padding" in kwargs:
        raise ValueError(
            f"`padding` is set by `time_padding` here (space is periodic, not padded); got "
            f"padding={kwargs['padding']!r}. Pass time_padding=..., or build an FNO directly."
        )
    # checked here: FNO would name its own `padding` and quote the tuple built from it
    if isinstance(time_padding, (bool, np.bool_)) or not isinstance(
        time_padding, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            f"`time_padding` must be a finite non-negative fraction of the time axis; got "
            f"{time_padding!r}."
        )
    if not (time_padding >= 0 and math.isfinite(time_padding)):
        raise ValueError(
            f"`time_padding` must be a finite non-negative fraction of the time axis; got "
            f"{time_padding}."
        )
    padding = (0.0,) * (d - 1) + (float(time_padding),)
    return SpatiotemporalFNO(
        d, in_channels, out_channels, width, modes, num_layers, padding=padding, key=key, **kwargs
    )
