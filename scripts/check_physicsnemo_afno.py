"""Cross-check spectrax's AFNO token mixer against PhysicsNeMo's ``AFNO2DLayer`` (PyTorch) with
the same weights.

``physicsnemo.nn.module.afno_layers.AFNO2DLayer`` (NVIDIA PhysicsNeMo, formerly Modulus) is the
AFNO filter of Guibas et al., 2022, "Adaptive Fourier Neural Operators: Efficient Token Mixers
for Transformers", as used in FourCastNet (Pathak et al., 2022): ``rfft2`` (``norm="ortho"``),
a block-diagonal complex MLP ``W2 ReLU(W1 z + b1) + b2`` on the kept modes (ReLU on real and
imaginary parts apart), soft-shrink of real and imaginary parts, ``irfft2``, plus the input.
This script copies one set of weights into it and into :func:`spectrax.nn.afno_mix` /
:class:`spectrax.nn.AFNOMixer` and records the largest difference of their outputs; then the
same for the whole network, PhysicsNeMo's ``AFNO`` against :class:`spectrax.models.AFNO` (see
:meth:`Check.model` for the mapping).

Weight layout. Both store ``w1 (2, num_blocks, block_size, hidden)``, ``b1 (2, num_blocks,
hidden)``, ``w2 (2, num_blocks, hidden, block_size)``, ``b2 (2, num_blocks, block_size)`` with
real and imaginary parts on the leading axis, and split channels ``C = num_blocks *
block_size`` the same way, so the arrays are copied as they are. PhysicsNeMo takes fields
``(B, H, W, C)``, spectrax ``(C, H, W)``.

Kept modes. PhysicsNeMo keeps, with ``t = H // 2 + 1`` and ``k = int(t *
hard_thresholding_fraction)``, rows ``t - k .. t + k - 1`` of the ``rfft2`` output (frequency
order ``0, 1, .., -1``) and columns ``0 .. k - 1``. spectrax keeps the FNO corners ``|k_1| <
m_1``, ``0 <= k_2 < m_2``. At fraction 1 and ``W <= H`` both keep every mode (spectrax's
``modes = (H // 2, W // 2 + 1)``); the script also runs the two cases where they differ.

Where they differ the script asks the mathematics: with identity blocks (``W1 = W2 = I``,
``b1 = beta (1 + i)``, ``b2 = -beta (1 + i)``, ``beta`` above every coefficient, ``lambda = 0``)
the MLP is the identity on every kept mode, so a field whose frequencies all lie in the kept
set must come back doubled (spectral path plus residual); the record gives each library's error
against ``2 x``.

Precision. PhysicsNeMo casts the input to float32 and its parameters are float32; spectrax runs
in float64 with the same (float32-rounded) weights, so agreement is float32 rounding.

Runs only where ``torch`` and ``physicsnemo`` import (a separate environment: they are not
spectrax dependencies), e.g.::

    python -m venv /tmp/xval-venv && /tmp/xval-venv/bin/pip install torch nvidia-physicsnemo
    /tmp/xval-venv/bin/pip install -e .
    /tmp/xval-venv/bin/python scripts/check_physicsnemo_afno.py

and writes ``benchmarks/physicsnemo-afno-equivalence-<platform>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from spectrax._benchmark import provenance, record_path, write_record  # noqa: E402
from spectrax.models import AFNO  # noqa: E402
from spectrax.nn import ChannelLayerNorm, afno_mix  # noqa: E402


def rel_err(a, b) -> float:
    """``max |a - b| / max |b|`` (b the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def band_limited(rng, shape, top) -> np.ndarray:
    """A random real field on ``shape`` with frequencies ``|k_1| <= top[0]``, ``0 <= k_2 <=
    top[1]`` (inside the kept set, below both Nyquist frequencies)."""
    k1, k2 = np.meshgrid(np.arange(-top[0], top[0] + 1), np.arange(top[1] + 1), indexing="ij")
    ks = np.stack([k1.ravel(), k2.ravel()], -1)
    c = rng.normal(size=len(ks)) + 1j * rng.normal(size=len(ks))
    grid = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), -1)
    return np.real(np.exp(2j * np.pi * grid @ ks.T) @ c)


class Check:
    def __init__(self, torch, layer_cls, model_cls, seed: int):
        self.torch, self.layer_cls, self.model_cls = torch, layer_cls, model_cls
        self.rng = np.random.default_rng(seed)
        self.rows: list[dict] = []

    def run_pair(self, params, x, fraction, modes, lam, num_blocks, factor):
        """Both layers with ``params = (w1, b1, w2, b2)`` (stacked real/imag) on ``x (B, C, H,
        W)``; returns ``(y_physicsnemo, y_spectrax)`` as ``(B, C, H, W)``."""
        torch = self.torch
        c = x.shape[1]
        layer = self.layer_cls(
            hidden_size=c,
            num_blocks=num_blocks,
            sparsity_threshold=lam,
            hard_thresholding_fraction=fraction,
            hidden_size_factor=factor,
        )
        params32 = [np.asarray(p, np.float32) for p in params]
        for name, p in zip(("w1", "b1", "w2", "b2"), params32, strict=True):
            setattr(layer, name, torch.nn.Parameter(torch.from_numpy(p)))
        with torch.no_grad():
            y_t = layer(torch.from_numpy(np.moveaxis(x, 1, -1).copy())).numpy()
        y_t = np.moveaxis(y_t, -1, 1)
        w1, b1, w2, b2 = (jnp.asarray(p[0] + 1j * p[1], jnp.complex128) for p in params32)
        y_s = jax.vmap(lambda v: afno_mix(v, w1, b1, w2, b2, modes, lam))(jnp.asarray(x))
        return y_t, np.asarray(y_s)

    def case(
        self, shape, fraction, modes, *, note=None, c=16, num_blocks=4, factor=1, lam=0.01, top=None
    ):
        bs = c // num_blocks
        bh = bs * factor
        shapes = [(2, num_blocks, bs, bh), (2, num_blocks, bh), (2, num_blocks, bh, bs)]
        shapes.append((2, num_blocks, bs))
        # scale 0.3 rather than the init's 0.02, so that the MLP, the biases and the soft-shrink
        # all matter against O(1)-per-mode ortho coefficients
        params = [0.3 * self.rng.normal(size=s) for s in shapes]
        x = self.rng.normal(size=(2, c, *shape))
        y_t, y_s = self.run_pair(params, x, fraction, modes, lam, num_blocks, factor)
        t = shape[0] // 2 + 1
        k = int(t * fraction)
        row = dict(
            case="AFNO2DLayer vs afno_mix",
            spatial=list(shape),
            channels=c,
            num_blocks=num_blocks,
            hidden_size_factor=factor,
            sparsity_threshold=lam,
            hard_thresholding_fraction=fraction,
            physicsnemo_kept_rows=[t - k, min(t + k, shape[0]) - 1],
            physicsnemo_kept_cols=min(k, shape[1] // 2 + 1),
            spectrax_modes=list(modes),
            max_rel_err=rel_err(y_s, y_t),
            max_rel_err_spectral_path=rel_err(y_s - x, y_t - x),
        )
        row.update(self.arbiter(shape, fraction, modes, c, num_blocks, top))
        if note:
            row["note"] = note
        self.rows.append(row)

    def arbiter(self, shape, fraction, modes, c, num_blocks, top=None) -> dict:
        """Each library's error against ``2 x`` with identity blocks on a field whose frequencies
        lie inside spectrax's ``modes``, below the Nyquist ones (or ``|k_1| <= top[0]``,
        ``k_2 <= top[1]``)."""
        bs = c // num_blocks
        eye = np.broadcast_to(np.eye(bs), (num_blocks, bs, bs))
        zero = np.zeros_like(eye)
        if top is None:
            top = (modes[0] - 1, min(modes[1] - 1, shape[1] // 2 - 1))
        x = np.stack([band_limited(self.rng, shape, top) for _ in range(c)])[None]
        beta = 10.0 * np.abs(np.fft.rfft2(x, norm="ortho")).max()
        b = np.full((2, num_blocks, bs), beta)
        params = [np.stack([eye, zero]), b, np.stack([eye, zero]), -b]
        y_t, y_s = self.run_pair(params, x, fraction, modes, 0.0, num_blocks, 1)
        return dict(
            identity_band_limited_err_spectrax=rel_err(y_s, 2 * x),
            identity_band_limited_err_physicsnemo=rel_err(y_t, 2 * x),
            identity_field_max_frequencies=list(top),
        )

    def model(self, shape, patch, *, width=16, depth=2, num_blocks=4, ci=3, co=2, eps=1e-6):
        """The whole network: patch embedding (PhysicsNeMo's strided ``Conv2d`` is spectrax's
        ``patchify`` + linear), ``depth`` blocks ``y = AFNO(LN x) + x; y + MLP(LN y)`` (the
        AFNO layer adds its own input too: PhysicsNeMo's ``double_skip``), a linear head and
        the inverse of the patching. PhysicsNeMo's learned position embedding is set to zero
        (spectrax has none; ``positional_grid=False``), its head has no bias (spectrax's is set
        to zero) and its channel order after the head is ``(p1, p2, C_out)`` where spectrax's is
        ``(C_out, p1, p2)``. Every parameter is random (LayerNorm scales ``1 + N(0, 0.1)``)."""
        torch = self.torch
        h, w = shape[0] // patch, shape[1] // patch
        model_t = self.model_cls(
            inp_shape=list(shape),
            in_channels=ci,
            out_channels=co,
            patch_size=[patch, patch],
            embed_dim=width,
            depth=depth,
            mlp_ratio=2.0,
            num_blocks=num_blocks,
        )
        params = {}
        for name, p in model_t.named_parameters():
            v = 0.3 * self.rng.normal(size=tuple(p.shape))
            if name == "pos_embed":
                v = np.zeros(p.shape)
            elif name.endswith(("norm1.weight", "norm2.weight")):
                v = 1.0 + v / 3.0
            params[name] = np.asarray(v, np.float32)
            p.data = torch.from_numpy(params[name])
        model_s = AFNO(
            2,
            ci,
            co,
            width,
            (h // 2, w // 2 + 1),
            depth,
            patch_size=patch,
            num_blocks=num_blocks,
            mlp_ratio=2.0,
            activation="gelu_exact",
            positional_grid=False,
            key=jax.random.key(0),
        )
        f64 = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        head = params["head.weight"].reshape(patch, patch, co, width).transpose(2, 0, 1, 3)
        blocks = []
        for i, blk in enumerate(model_s.blocks):
            q = f"blocks.{i}."
            blk = eqx.tree_at(
                lambda b: (b.norm1, b.norm2),
                blk,
                (ChannelLayerNorm(width, eps=eps), ChannelLayerNorm(width, eps=eps)),
            )
            blocks.append(
                eqx.tree_at(
                    lambda b: (
                        b.norm1.scale,
                        b.norm1.shift,
                        b.norm2.scale,
                        b.norm2.shift,
                        b.mixer.w1,
                        b.mixer.b1,
                        b.mixer.w2,
                        b.mixer.b2,
                        b.mlp.fc1.weight,
                        b.mlp.fc1.bias,
                        b.mlp.fc2.weight,
                        b.mlp.fc2.bias,
                    ),
                    blk,
                    tuple(
                        f64[q + n]
                        for n in (
                            "norm1.weight",
                            "norm1.bias",
                            "norm2.weight",
                            "norm2.bias",
                            "filter.w1",
                            "filter.b1",
                            "filter.w2",
                            "filter.b2",
                            "mlp.fc1.weight",
                            "mlp.fc1.bias",
                            "mlp.fc2.weight",
                            "mlp.fc2.bias",
                        )
                    ),
                )
            )
        model_s = eqx.tree_at(
            lambda m: (m.embed.weight, m.embed.bias, m.blocks, m.head.weight, m.head.bias),
            model_s,
            (
                f64["patch_embed.proj.weight"].reshape(width, ci * patch * patch),
                f64["patch_embed.proj.bias"],
                tuple(blocks),
                jnp.asarray(head.reshape(co * patch * patch, width), jnp.float64),
                jnp.zeros(co * patch * patch, jnp.float64),
            ),
        )
        x = self.rng.normal(size=(2, ci, *shape))
        with torch.no_grad():
            y_t = model_t(torch.from_numpy(x.astype(np.float32))).double().numpy()
        y_s = np.asarray(jax.vmap(model_s)(jnp.asarray(x)))
        self.rows.append(
            dict(
                case="physicsnemo AFNO vs spectrax AFNO"
                + ("" if eps == 1e-6 else f", spectrax LayerNorm eps {eps}"),
                spatial=list(shape),
                patch_size=patch,
                width=width,
                depth=depth,
                num_blocks=num_blocks,
                channels=[ci, co],
                spectrax_modes=[h // 2, w // 2 + 1],
                max_rel_err=rel_err(y_s, y_t),
            )
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import physicsnemo
        import torch
        from physicsnemo.models.afno import AFNO as TorchAFNO
        from physicsnemo.nn.module.afno_layers import AFNO2DLayer
    except ImportError as e:
        print(
            f"check_physicsnemo_afno: skipped, torch and physicsnemo are not importable here "
            f"({e}); install them in a separate environment (see this script's docstring)."
        )
        return 0
    check = Check(torch, AFNO2DLayer, TorchAFNO, args.seed)
    # every mode kept (fraction 1, W <= H)
    check.case((16, 16), 1.0, (8, 9))
    check.case((24, 16), 1.0, (12, 9), factor=2)
    check.case((16, 12), 1.0, (8, 7), num_blocks=2, lam=0.0)
    # an odd leading axis: spectrax's modes <= n // 2 keep -7..6 of 15 frequencies
    check.case(
        (15, 14),
        1.0,
        (7, 8),
        top=(7, 6),
        note=(
            "design limit of spectrax (the FNO convention of truncate_modes, shared with "
            "SpectralConv): on an odd leading axis n = 2M + 1, modes <= M keeps frequencies "
            "-M..M-1, so +M is dropped while -M is kept, and no modes value keeps all of them; "
            "physicsnemo at fraction 1 keeps all. The identity field here uses |k_1| <= 7"
        ),
    )
    # W > H at fraction 1: the reference sizes the last axis' band by H
    check.case(
        (16, 32),
        1.0,
        (8, 17),
        note=(
            "physicsnemo keeps int(fraction * (H // 2 + 1)) = 9 of the 17 rfft columns of a "
            "W = 32 axis at fraction 1 (total_modes is computed from H for both axes): "
            "frequencies 9..16 of the last axis are dropped"
        ),
    )
    # fraction < 1: the reference keeps a band around the leading axis' Nyquist frequency
    check.case(
        (16, 16),
        0.5,
        (4, 4),
        note=(
            "at hard_thresholding_fraction < 1 physicsnemo keeps rows t - k .. t + k - 1 "
            "(t = H // 2 + 1) of the unshifted rfft2 output, i.e. frequencies 5..8, -7..-4 on "
            "the leading axis (the highest ones), and columns 0..k - 1 (the lowest) on the last; "
            "spectrax keeps the lowest |k_1| < 4, k_2 < 4"
        ),
    )
    check.model((32, 32), 4)
    check.model((32, 16), 2)
    check.model((32, 32), 4, eps=1e-5)  # spectrax's default LayerNorm eps

    record = {
        "check": (
            "spectrax afno_mix vs physicsnemo AFNO2DLayer, and spectrax AFNO vs physicsnemo "
            "AFNO, same weights"
        ),
        **provenance(),
        "torch": torch.__version__,
        "physicsnemo": physicsnemo.__version__,
        "precision": (
            "physicsnemo computes in float32 (float32 parameters, input cast to float32); "
            "spectrax in float64 with the same float32-rounded weights"
        ),
        "error": (
            "max |spectrax - physicsnemo| / max |physicsnemo| over the batch, on the output "
            "(max_rel_err) and on the output less the residual input (max_rel_err_spectral_path)"
        ),
        "arbiter": (
            "identity blocks (W1 = W2 = I, b1 = -b2 = beta (1 + i) with beta above every "
            "coefficient, lambda = 0) on a random field whose frequencies lie in spectrax's kept "
            "modes, below the Nyquist ones: the MLP is the identity there, so the exact output "
            "is 2 x"
        ),
        "rows": check.rows,
    }
    for r in check.rows:
        print(json.dumps(r))
    write_record(record, args.out or record_path(__file__, "physicsnemo-afno-equivalence"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
