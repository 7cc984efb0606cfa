"""AFNO network: patch embedding, AFNO mixer blocks with channel MLPs, linear head.

Guibas, Mardani, Li, Tao, Anandkumar, Catanzaro (2022), "Adaptive Fourier Neural Operators:
Efficient Token Mixers for Transformers" (the vision-transformer backbone of FourCastNet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
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
from spectrax.models._fno import grid_channels
from spectrax.nn import AFNOMixer, ChannelLayerNorm, ChannelMLP, PointwiseLinear
from spectrax.nn._spectral_conv import check_field, check_grid, check_modes


def patchify(x: Float[Array, " C *spatial"], patch: int) -> Float[Array, " Cp *tokens"]:
    """Non-overlapping ``patch^d`` patches folded into channels: ``(C, *n) -> (C p^d, *n/p)``."""
    patch = check_positive_int("patch", patch)
    spatial = x.shape[1:]
    if any(n % patch for n in spatial):
        raise ValueError(
            f"`x` spatial shape {tuple(spatial)} must be a multiple of patch={patch} on every "
            f"axis; got x.shape={x.shape}."
        )
    d = len(spatial)
    # One axis split or merged per reshape: under vmap, JAX's sharding rule for a batch sharded
    # over an Explicit mesh axis takes those, not several at once.
    y = x
    for i, n in enumerate(spatial):  # (C, t1, p1, ..., n_i, ...)
        y = y.reshape(*y.shape[: 1 + 2 * i], n // patch, patch, *y.shape[2 + 2 * i :])
    # (C, t1, p1, t2, p2, ...) -> (C, p1, p2, ..., t1, t2, ...)
    perm = [0] + [2 + 2 * i for i in range(d)] + [1 + 2 * i for i in range(d)]
    y = y.transpose(perm)
    for _ in range(d):  # (C, p1, p2, ...) -> (C p1, p2, ...) -> ...
        y = y.reshape(y.shape[0] * y.shape[1], *y.shape[2:])
    return y


def unpatchify(
    y: Float[Array, " Cp *tokens"], patch: int, channels: int
) -> Float[Array, " C *spatial"]:
    """Inverse of :func:`patchify` (one axis split or merged per reshape, as there)."""
    patch = check_positive_int("patch", patch)
    channels = check_positive_int("channels", channels)
    tokens = y.shape[1:]
    d = len(tokens)
    if y.shape[0] != channels * patch**d:
        raise ValueError(
            f"`y` has {y.shape[0]} channels (y.shape={y.shape}); expected channels * patch^d = "
            f"{channels} * {patch}^{d} = {channels * patch**d}."
        )
    z = y
    for _ in range(d):  # (C p^d, t...) -> (C p^(d-1), p_d, t...) -> ... -> (C, p1, ..., pd, t...)
        z = z.reshape(z.shape[0] // patch, patch, *z.shape[1:])
    perm = [0]
    for i in range(d):
        perm += [1 + d + i, 1 + i]
    z = z.transpose(perm)  # (C, t1, p1, t2, p2, ...)
    for i in range(d):
        z = z.reshape(*z.shape[: 1 + i], z.shape[1 + i] * z.shape[2 + i], *z.shape[3 + i :])
    return z


class AFNOBlock(eqx.Module):
    """``y = AFNO(LN(x)) + x``; ``y = y + MLP(LN(y))`` (the AFNO mixer adds its own input too).

    Returns ``x``'s dtype: the mixer computes in float32 (float64) and the MLP in its parameters'
    dtype, so each residual branch is cast back to the input's dtype."""

    norm1: ChannelLayerNorm
    mixer: AFNOMixer
    norm2: ChannelLayerNorm
    mlp: ChannelMLP

    def __call__(self, x: Float[Array, " C *spatial"]) -> Float[Array, " C *spatial"]:
        check_parameters(self)  # named by their path from the block
        y = self.mixer(self.norm1(x)).astype(x.dtype) + x
        return y + self.mlp(self.norm2(y)).astype(x.dtype)


class AFNO(eqx.Module):
    """AFNO operator network on fields ``(C_in, *spatial)`` (Guibas et al., 2022).

    ``x -> [x, grid] -> patch embedding (patch^d patches, linear to width) -> L AFNOBlocks ->
    linear head (width -> C_out patch^d) -> unpatchify``. The spatial sizes must be multiples of
    ``patch_size`` and the token grid (``spatial / patch_size``) must hold ``modes``.

    Args:
        num_spatial_dims: ``d``.
        in_channels, out_channels: ``C_in``, ``C_out``.
        width: embedding channels, at least 2 (the blocks layer-normalise over them), divisible
            by ``num_blocks``.
        modes: kept token-grid modes per axis (mode truncation).
        num_layers: number of blocks (default 4).
        patch_size: patch edge (default 1: one token per grid point). The mixers' biases and
            soft-shrink act on ortho-normalised coefficients (see :func:`~spectrax.nn.afno_mix`),
            so unlike the FNO the trained model is tied to its token grid's size.
        num_blocks: diagonal blocks of the mixer MLP (default 8).
        mlp_ratio: hidden size of the channel MLPs relative to ``width`` (default 2).
        sparsity_threshold: soft-shrink ``lambda`` (default 0.01).
        activation: channel-MLP activation (default ``"gelu"``).
        positional_grid: append grid coordinates as input channels (default True).
        dtype: parameter dtype (float32); half precision is drawn in float32 and rounded once.
        key: PRNG key (keyword-only).
    """

    embed: PointwiseLinear
    blocks: tuple[AFNOBlock, ...]
    head: PointwiseLinear
    num_spatial_dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    patch_size: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    positional_grid: bool = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int | Sequence[int],
        num_layers: int = 4,
        *,
        patch_size: int = 1,
        num_blocks: int = 8,
        mlp_ratio: float = 2.0,
        sparsity_threshold: float = 0.01,
        activation: str | Callable[[Array], Array] = "gelu",
        positional_grid: bool = True,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        check_key("key", key)
        d = self.num_spatial_dims = check_positive_int("num_spatial_dims", num_spatial_dims)
        check_float_dtype("dtype", dtype)  # float64 needs x64 mode
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.patch_size = check_positive_int("patch_size", patch_size)
        # the blocks' layer norms act over the width channels: over one, they output a constant
        width = check_positive_int("width", width, minimum=2)
        num_layers = check_positive_int("num_layers", num_layers)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        if width % num_blocks:
            raise ValueError(
                f"`num_blocks`={num_blocks} must divide `width`={width} (the mixer's "
                "block-diagonal channel mixing); choose a width that is a multiple of it."
            )
        self.modes = check_modes(modes, d)
        self.positional_grid = check_bool("positional_grid", positional_grid)
        keys = jax.random.split(key, 2 * num_layers + 2)
        lift_in = (in_channels + (d if positional_grid else 0)) * patch_size**d
        self.embed = PointwiseLinear(lift_in, width, dtype=dtype, key=keys[0])
        hidden = max(1, round(check_positive_float("mlp_ratio", mlp_ratio) * width))
        self.blocks = tuple(
            AFNOBlock(
                norm1=ChannelLayerNorm(width, dtype=dtype),
                mixer=AFNOMixer(
                    d,
                    width,
                    self.modes,
                    num_blocks=num_blocks,
                    sparsity_threshold=sparsity_threshold,
                    dtype=dtype,
                    key=keys[1 + 2 * i],
                ),
                norm2=ChannelLayerNorm(width, dtype=dtype),
                mlp=ChannelMLP(
                    width, hidden, width, activation=activation, dtype=dtype, key=keys[2 + 2 * i]
                ),
            )
            for i in range(num_layers)
        )
        self.head = PointwiseLinear(width, out_channels * patch_size**d, dtype=dtype, key=keys[-1])

    @compiled_call
    def __call__(self, x: Float[Array, " C_in *spatial"]) -> Float[Array, " C_out *spatial"]:
        """Map one field ``(C_in, *spatial)`` to ``(C_out, *spatial)``; batch with ``jax.vmap``."""
        check_real_float("x", x)
        check_field("x", x, self.in_channels, self.num_spatial_dims)
        spatial = x.shape[1:]
        p = self.patch_size
        if any(n % p for n in spatial):
            raise ValueError(
                f"`x` spatial shape {spatial} must be a multiple of patch_size={p} on every axis."
            )
        check_grid(
            "the token grid (spatial / patch_size) of the", [n // p for n in spatial], self.modes
        )
        # the parameters' dtype; float64 input computes (and returns) float64
        dtype = module_compute_dtype(x.dtype, self.embed.weight.dtype)
        x = x.astype(dtype)
        if self.positional_grid:
            x = jnp.concatenate([x, grid_channels(spatial, dtype=dtype)], axis=0)
        h = self.embed(patchify(x, p))
        for block in self.blocks:
            h = block(h)
        return unpatchify(self.head(h), p, self.out_channels)
