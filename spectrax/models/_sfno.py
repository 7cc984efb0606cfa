"""Spherical Fourier neural operator: the FNO with its spectral layers on the sphere.

Bonev, Kurth, Hundt, Pathak, Baust, Kashinath & Anandkumar (2023), "Spherical Fourier Neural
Operators: Learning Stable Dynamics on the Sphere" (ICML).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_int,
    check_real_float,
)
from spectrax._compile import compiled_call
from spectrax.models._fno import block_channel_mlp, block_tail
from spectrax.nn import ChannelMLP, PointwiseLinear, SphericalConv
from spectrax.nn._pointwise import get_activation
from spectrax.transforms._sht import check_sphere_grid as _check_sphere_grid


class SFNOBlock(eqx.Module):
    """One spherical Fourier layer: ``y = SphericalConv(x) + W x``, then, with a channel MLP,
    ``y = act(y); y = y + MLP(y)``. The activation after the block is the caller's."""

    conv: SphericalConv
    skip: PointwiseLinear
    mlp: ChannelMLP | None
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        width: int,
        l_max: int,
        *,
        channel_mlp_expansion: float | None,
        activation,
        dtype,
        key: PRNGKeyArray,
    ):
        check_key("key", key)
        # checked here: SphericalConv would name its own `in_channels`
        width = check_positive_int("width", width)
        kc, ks, km = jax.random.split(key, 3)
        self.conv = SphericalConv(width, width, l_max, dtype=dtype, key=kc)
        self.skip = PointwiseLinear(width, width, use_bias=False, dtype=dtype, key=ks)
        self.activation = get_activation(activation)
        self.mlp = block_channel_mlp(width, channel_mlp_expansion, activation, dtype, km)

    def __call__(self, x: Float[Array, "C nlat nlon"]) -> Float[Array, "C nlat nlon"]:
        check_parameters(self)  # named by their path from the block
        return block_tail(self.conv(x), x, self.skip, self.mlp, self.activation)


class SFNO(eqx.Module):
    """Spherical Fourier neural operator on fields ``(C_in, nlat, nlon)`` on the sphere.

    Bonev et al. (2023), "Spherical Fourier Neural Operators: Learning Stable Dynamics on the
    Sphere": the FNO of Li et al. (2021) with the FFT replaced by the spherical harmonic
    transform, ``x -> lift (pointwise) -> L x (SFNOBlock, activation except after the last) ->
    projection MLP (width -> projection_channels -> C_out)``. Each block's spectral path is a
    :class:`~spectrax.nn.SphericalConv` (one channel-mixing matrix per degree ``l <= l_max``),
    which commutes with rotations of the sphere; with pointwise layers elsewhere the model is
    rotation-equivariant up to the aliasing of its nonlinearities on the grid, and has no seam
    at the date line and no pole singularity (the FFT-based FNO on a latitude-longitude grid
    treats the sphere as a torus). No positional channels are added, to keep that symmetry.

    Fields live on the :func:`~spectrax.transforms.sphere_grid` (Gauss–Legendre latitudes north
    to south, equispaced longitudes) with ``nlat >= l_max + 1``, ``nlon >= 2 l_max + 1``; the
    same model applies on any such grid (the spectral weights are per degree, not per grid
    point).

    Args:
        in_channels, out_channels: field channels.
        width: channels inside the blocks.
        l_max: highest harmonic degree of the spectral layers.
        num_layers: number of blocks (default 4).
        projection_channels: hidden channels of the projection MLP (default 128).
        activation: name in ``spectrax.nn.ACTIVATIONS`` or a callable (default ``"gelu"``,
            JAX's tanh approximation; ``"gelu_exact"``: the erf form, PyTorch's and neuralop's).
        channel_mlp_expansion: if set, each block ends with a residual channel MLP of hidden size
            ``expansion * width``; default None.
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).
    """

    lifting: PointwiseLinear
    blocks: tuple[SFNOBlock, ...]
    projection: ChannelMLP
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    l_max: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        l_max: int,
        num_layers: int = 4,
        *,
        projection_channels: int = 128,
        activation: str | Callable[[Array], Array] = "gelu",
        channel_mlp_expansion: float | None = None,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        check_key("key", key)
        check_float_dtype("dtype", dtype)  # float64 needs x64 mode
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        width = check_positive_int("width", width)
        self.l_max = check_positive_int("l_max", l_max, minimum=0)
        num_layers = check_positive_int("num_layers", num_layers)
        projection_channels = check_positive_int("projection_channels", projection_channels)
        self.activation = get_activation(activation)
        kl, kp, *kb = jax.random.split(key, num_layers + 2)
        self.lifting = PointwiseLinear(in_channels, width, dtype=dtype, key=kl)
        self.blocks = tuple(
            SFNOBlock(
                width,
                self.l_max,
                channel_mlp_expansion=channel_mlp_expansion,
                activation=activation,
                dtype=dtype,
                key=k,
            )
            for k in kb
        )
        self.projection = ChannelMLP(
            width, projection_channels, out_channels, activation=activation, dtype=dtype, key=kp
        )

    @compiled_call
    def __call__(self, x: Float[Array, "C_in nlat nlon"]) -> Float[Array, "C_out nlat nlon"]:
        """``(in_channels, nlat, nlon) -> (out_channels, nlat, nlon)``, one sample."""
        check_real_float("x", x)
        if x.ndim != 3 or x.shape[0] != self.in_channels:
            raise ValueError(
                f"`x` must be fields (C_in, nlat, nlon) with C_in={self.in_channels}; got "
                f"x.shape={x.shape}. Batch with jax.vmap."
            )
        _check_sphere_grid("`x`", x.shape[1:], self.l_max)
        h = self.lifting(x)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < len(self.blocks) - 1:
                h = self.activation(h)
        return self.projection(h)
