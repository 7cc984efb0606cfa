"""Cross-check spectrax against neuraloperator (PyTorch) with the same weights.

neuraloperator 2.x (Kossaifi et al., "A Library for Learning Neural Operators", 2024) is the
reference implementation of the FNO (Li et al., 2021, "Fourier Neural Operator for Parametric
Partial Differential Equations") and the TFNO (Kossaifi et al., 2023). This script copies one set
of weights into both libraries and records the largest difference of their outputs:

1. ``SpectralConv`` 1d/2d/3d with dense and Tucker weights, on the input grid and on a finer
   output grid (``out_shape`` / ``output_shape``).
2. The whole ``FNO`` (grid channels, lifting, Fourier layers with linear skip, projection MLP,
   domain padding) where the two architectures coincide (neuraloperator without channel MLP,
   ``lifting_channel_ratio=0``; spectrax with exact GELU), and with neuraloperator's lifting
   MLP, soft-gating skips and separable (depthwise) spectral weights.

Weight layout. neuraloperator's weight is ``(C_in, C_out, *modes)`` with every leading mode axis
in ``fftshift`` order (index ``j`` is frequency ``j - m``); spectrax's ``weight.complex()`` is
``(C_out, C_in, *modes)`` with ``0..m-1, -m..-1`` on those axes (:func:`ifftshift` of the
former). neuraloperator's ``n_modes`` counts both signs: ``2 m`` on a leading axis, and on the
last (rfft) axis ``n_modes // 2 + 1`` kept frequencies, so ``2 m - 1`` keeps spectrax's ``m``.
Both take the FFT with ``norm="forward"``.

A difference in the FNO's design is bridged with spectrax's public modules: neuraloperator 2.0
applies the activation twice between Fourier layers (see :meth:`Check.fno`).

Where the two disagree the script asks the mathematics: identity weights (``W = delta_oi`` on
every kept mode) applied to a random band-limited field must return that field, evaluated on the
output grid; the record gives each library's error against that exact answer.

Precision. Inputs and weights are float64 / complex128 on both sides, but neuraloperator's
``SpectralConv`` allocates its output spectrum as ``torch.cfloat`` (complex64), so its spectral
path is float32 whatever the input: the agreement it allows is float32 rounding (about 1e-7).

Runs only where ``torch`` and ``neuralop`` import (a separate environment: they are not spectrax
dependencies), e.g.::

    python -m venv /tmp/xval-venv && /tmp/xval-venv/bin/pip install torch neuraloperator
    /tmp/xval-venv/bin/pip install -e .
    /tmp/xval-venv/bin/python scripts/check_neuraloperator.py

and writes ``benchmarks/neuraloperator-equivalence-<platform>.json``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from spectrax._benchmark import provenance, record_path, write_record  # noqa: E402
from spectrax.models import FNO  # noqa: E402
from spectrax.nn import ChannelMLP, SpectralConv  # noqa: E402


def rel_err(a, b) -> float:
    """``max |a - b| / max |b|`` (b the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def n_modes(modes) -> list[int]:
    """neuraloperator's ``n_modes`` keeping spectrax's ``modes``."""
    return [2 * m for m in modes[:-1]] + [2 * modes[-1] - 1]


def to_spectrax_layout(w, num_mode_axes: int) -> np.ndarray:
    """A neuraloperator-layout complex tensor ``(C_in, C_out, *modes)`` as spectrax's
    ``(C_out, C_in, *modes)``: channels swapped, leading mode axes from fftshift order."""
    w = np.swapaxes(np.asarray(w), 0, 1)
    return np.fft.ifftshift(w, axes=tuple(range(2, 2 + num_mode_axes - 1)))


def to_torch_layout(w, num_mode_axes: int) -> np.ndarray:
    """The inverse of :func:`to_spectrax_layout`."""
    w = np.fft.fftshift(np.asarray(w), axes=tuple(range(2, 2 + num_mode_axes - 1)))
    return np.swapaxes(w, 0, 1)


def pair(w) -> jnp.ndarray:
    """A complex array as spectrax's stacked (real, imaginary) parameter."""
    return jnp.asarray(np.stack([w.real, w.imag]))


def band_limited(rng, shapes, modes):
    """A random real field with every frequency strictly inside the kept ones and below the
    Nyquist frequency of every grid in ``shapes`` (``|k_j| < m_j`` on a leading axis, ``k_d < m_d``
    on the last, ``|k_j| < n_j / 2``), sampled on each grid (``x_j = j / n``):
    ``Re sum_k c_k exp(2 pi i k.x)``."""
    d = len(modes)
    top = [min(m - 1, (min(s[j] for s in shapes) - 1) // 2) for j, m in enumerate(modes)]
    ranges = [np.arange(-t, t + 1) for t in top[:-1]] + [np.arange(top[-1] + 1)]
    ks = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, d)
    c = rng.normal(size=len(ks)) + 1j * rng.normal(size=len(ks))
    out = []
    for shape in shapes:
        grid = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), -1)
        out.append(np.real(np.exp(2j * np.pi * grid @ ks.T) @ c))
    return out


class Check:
    def __init__(self, torch, seed: int):
        self.torch = torch
        self.rng = np.random.default_rng(seed)
        self.rows: list[dict] = []

    def torch_conv(self, ci, co, modes, factorization=None, rank=0.5):
        from neuralop.layers.spectral_convolution import SpectralConv as TorchSpectralConv

        kw = {}
        if factorization is not None:
            kw = dict(factorization=factorization, rank=rank, implementation="factorized")
        return TorchSpectralConv(ci, co, n_modes(modes), bias=False, **kw)

    def run_pair(self, conv_t, conv_s, x, out_shape):
        torch = self.torch
        with torch.no_grad():
            y_t = conv_t(torch.from_numpy(x), output_shape=out_shape).numpy()
        y_s = np.asarray(jax.vmap(lambda v: conv_s(v, out_shape))(jnp.asarray(x)))
        return y_t, y_s

    def dense(self, spatial, modes, out_shape=None, *, note=None, ci=3, co=4, batch=2):
        torch = self.torch
        d = len(modes)
        conv_t = self.torch_conv(ci, co, modes)
        shape_t = tuple(conv_t.weight.tensor.shape)
        w_t = self.rng.normal(size=shape_t) + 1j * self.rng.normal(size=shape_t)
        conv_t.weight.tensor = torch.nn.Parameter(torch.from_numpy(w_t))
        conv_s = SpectralConv(d, ci, co, modes, key=jax.random.key(0))
        conv_s = eqx.tree_at(lambda c: c.weight.weight, conv_s, pair(to_spectrax_layout(w_t, d)))
        x = self.rng.normal(size=(batch, ci, *spatial))
        y_t, y_s = self.run_pair(conv_t, conv_s, x, out_shape)
        row = dict(
            case=f"SpectralConv {d}d dense",
            spatial=list(spatial),
            out_shape=list(out_shape or spatial),
            modes=list(modes),
            neuralop_n_modes=n_modes(modes),
            channels=[ci, co],
            max_rel_err=rel_err(y_s, y_t),
        )
        row.update(self.arbiter(spatial, modes, out_shape))
        if note:
            row["note"] = note
        self.rows.append(row)

    def arbiter(self, spatial, modes, out_shape) -> dict:
        """Each library's error against the exact answer of identity weights on a band-limited
        field (the field itself on the output grid)."""
        torch = self.torch
        d, c = len(modes), 2
        out = tuple(out_shape or spatial)
        x, want = band_limited(self.rng, [spatial, out], modes)
        x, want = np.stack([x, 2 * x])[None], np.stack([want, 2 * want])[None]
        eye = np.eye(c).reshape(c, c, *(1,) * d) * np.ones((1, 1, *kept(modes)))
        conv_t = self.torch_conv(c, c, modes)
        conv_t.weight.tensor = torch.nn.Parameter(
            torch.from_numpy(to_torch_layout(eye + 0j, d).copy())
        )
        conv_s = SpectralConv(d, c, c, modes, key=jax.random.key(0))
        conv_s = eqx.tree_at(lambda m: m.weight.weight, conv_s, pair(eye + 0j))
        y_t, y_s = self.run_pair(conv_t, conv_s, x, out_shape)
        return dict(
            identity_band_limited_err_spectrax=rel_err(y_s, want),
            identity_band_limited_err_neuralop=rel_err(y_t, want),
        )

    def tucker(self, spatial, modes, rank=0.5, ci=3, co=4, batch=2):
        """neuraloperator's Tucker factors mapped one to one onto spectrax's: core axes 0 and 1
        swapped, the C_in and C_out factors swapped, the rows of a leading mode axis' factor in
        spectrax's frequency order. neuraloperator contracts the factors with the input
        (``implementation="factorized"``); spectrax reconstructs the dense weight."""
        torch = self.torch
        d = len(modes)
        conv_t = self.torch_conv(ci, co, modes, "tucker", rank)
        tw = conv_t.weight
        core = self.rng.normal(size=tw.core.shape) + 1j * self.rng.normal(size=tw.core.shape)
        factors = [
            self.rng.normal(size=f.shape) + 1j * self.rng.normal(size=f.shape) for f in tw.factors
        ]
        tw.core = torch.nn.Parameter(torch.from_numpy(core))
        for j, f in enumerate(factors):
            setattr(tw.factors, f"factor_{j}", torch.nn.Parameter(torch.from_numpy(f)))
        conv_s = SpectralConv(
            d, ci, co, modes, factorization="tucker", rank=rank, key=jax.random.key(0)
        )
        mode_factors = [np.fft.ifftshift(f, axes=0) for f in factors[2:-1]] + factors[-1:]
        conv_s = eqx.tree_at(
            lambda c: (c.weight.core, c.weight.factors),
            conv_s,
            (
                pair(np.swapaxes(core, 0, 1)),
                tuple(pair(f) for f in [factors[1], factors[0], *mode_factors]),
            ),
        )
        x = self.rng.normal(size=(batch, ci, *spatial))
        y_t, y_s = self.run_pair(conv_t, conv_s, x, None)
        self.rows.append(
            dict(
                case=f"SpectralConv {d}d Tucker",
                spatial=list(spatial),
                modes=list(modes),
                neuralop_n_modes=n_modes(modes),
                channels=[ci, co],
                tucker_ranks=list(core.shape),
                max_rel_err=rel_err(y_s, y_t),
            )
        )

    def fno(
        self,
        spatial,
        modes,
        *,
        width=8,
        layers=3,
        padding=0.0,
        exact_gelu=True,
        batch=2,
        lifting_ratio=0,
        skip="linear",
        separable=False,
    ):
        """The whole FNO. neuraloperator pads ``round(p n)`` zeros on both ends of an axis,
        spectrax ``round(p n)`` at the end: the Fourier layers and pointwise maps commute with a
        circular shift, so spectrax's padding ``2 p`` is neuraloperator's ``p`` exactly where
        ``round(2 p n) = 2 round(p n)``.

        neuraloperator 2.0's ``FNOBlocks.forward_with_postactivation`` applies the non-linearity
        twice between layers (after ``conv + skip``, and again after the channel-MLP / norm
        step, which runs even when both are off); the original FNO and spectrax apply it once.
        The spectrax model is built with ``gelu(gelu(.))`` between layers and a projection with
        one GELU to match it: the same public modules, a different activation.

        ``lifting_ratio`` (neuraloperator's ``lifting_channel_ratio``: a two-layer lifting MLP,
        spectrax's ``lifting_channels``), ``skip="soft_gating"`` (its ``fno_skip="soft-gating"``)
        and ``separable`` (depthwise spectral weights) are compared with random weights."""
        torch = self.torch
        from neuralop.models import FNO as TorchFNO

        d = len(modes)
        ci, co = 2, 3
        kw = dict(domain_padding=padding) if padding else {}
        model_t = TorchFNO(
            n_modes=n_modes(modes),
            in_channels=ci,
            out_channels=co,
            hidden_channels=width,
            n_layers=layers,
            lifting_channel_ratio=lifting_ratio,
            projection_channel_ratio=2,
            use_channel_mlp=False,
            fno_skip="soft-gating" if skip == "soft_gating" else "linear",
            separable=separable,
            **kw,
        ).double()
        gelu = functools.partial(jax.nn.gelu, approximate=not exact_gelu)
        model_s = FNO(
            d,
            ci,
            co,
            width,
            modes,
            layers,
            projection_channels=2 * width,
            activation=lambda h: gelu(gelu(h)),  # twice between layers, as neuraloperator
            padding=2 * padding,
            lifting_channels=lifting_ratio * width if lifting_ratio else None,
            skip=skip,
            separable=separable,
            dtype=jnp.float64,
            key=jax.random.key(0),
        )
        projection = ChannelMLP(
            width, 2 * width, co, activation=gelu, dtype=jnp.float64, key=jax.random.key(1)
        )
        model_s = eqx.tree_at(lambda m: m.projection, model_s, projection)
        with torch.no_grad():
            for conv in model_t.fno_blocks.convs:
                shape = tuple(conv.weight.tensor.shape)
                w = self.rng.normal(size=shape) + 1j * self.rng.normal(size=shape)
                conv.weight.tensor = torch.nn.Parameter(torch.from_numpy(w / np.sqrt(width)))
                conv.bias.zero_()  # spectrax's spectral convolution has no bias
            if skip == "soft_gating":  # ones at init: random, so that the check can fail
                for gate in model_t.fno_blocks.fno_skips:
                    gate.weight.copy_(torch.from_numpy(self.rng.normal(size=gate.weight.shape)))
        params = {n: p.detach().numpy() for n, p in model_t.named_parameters()}

        def linear(prefix):
            """A neuraloperator 1x1 convolution's (weight, bias) as spectrax arrays."""
            bias = params.get(prefix + ".bias")
            bias = None if bias is None else jnp.asarray(bias)
            return jnp.asarray(params[prefix + ".weight"][..., 0]), bias

        def spectral(k):
            w = params[f"fno_blocks.convs.{k}.weight.tensor"]
            if separable:  # (C, *modes): no channel swap
                return pair(np.fft.ifftshift(w, axes=tuple(range(1, d))))
            return pair(to_spectrax_layout(w, d))

        def skip_weight(k):
            if skip == "soft_gating":
                return jnp.asarray(params[f"fno_blocks.fno_skips.{k}.weight"].reshape(-1))
            return linear(f"fno_blocks.fno_skips.{k}.conv")[0]

        blocks = tuple(
            eqx.tree_at(
                lambda blk: (blk.conv.weight.weight, blk.skip.weight),
                blk,
                (spectral(k), skip_weight(k)),
            )
            for k, blk in enumerate(model_s.blocks)
        )
        if lifting_ratio:  # one GELU inside the lifting MLP, as neuraloperator's
            lift = ChannelMLP(
                ci + d,
                lifting_ratio * width,
                width,
                activation=gelu,
                dtype=jnp.float64,
                key=jax.random.key(2),
            )
            (w1, b1), (w2, b2) = linear("lifting.fcs.0"), linear("lifting.fcs.1")
            lift = eqx.tree_at(
                lambda m: (m.fc1.weight, m.fc1.bias, m.fc2.weight, m.fc2.bias),
                lift,
                (w1, b1, w2, b2),
            )
            model_s = eqx.tree_at(lambda m: m.lifting, model_s, lift)
        if not lifting_ratio:
            model_s = eqx.tree_at(
                lambda m: (m.lifting.weight, m.lifting.bias), model_s, linear("lifting.fcs.0")
            )
        model_s = eqx.tree_at(
            lambda m: (
                m.blocks,
                m.projection.fc1.weight,
                m.projection.fc1.bias,
                m.projection.fc2.weight,
                m.projection.fc2.bias,
            ),
            model_s,
            (
                blocks,
                *linear("projection.fcs.0"),
                *linear("projection.fcs.1"),
            ),
        )
        x = self.rng.normal(size=(batch, ci, *spatial))
        with torch.no_grad():
            y_t = model_t(torch.from_numpy(x)).numpy()
        y_s = np.asarray(jax.vmap(model_s)(jnp.asarray(x)))
        self.rows.append(
            dict(
                case=f"FNO {d}d"
                + (", spectrax default tanh-GELU" if not exact_gelu else "")
                + (f", lifting MLP (ratio {lifting_ratio})" if lifting_ratio else "")
                + (", soft-gating skip" if skip == "soft_gating" else "")
                + (", separable" if separable else ""),
                spatial=list(spatial),
                modes=list(modes),
                neuralop_n_modes=n_modes(modes),
                width=width,
                layers=layers,
                neuralop_domain_padding=padding,
                spectrax_padding=2 * padding,
                max_rel_err=rel_err(y_s, y_t),
            )
        )


def kept(modes):
    return tuple(2 * m for m in modes[:-1]) + (modes[-1],)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import neuralop
        import torch
    except ImportError as e:
        print(
            f"check_neuraloperator: skipped, torch and neuraloperator are not importable here "
            f"({e}); install them in a separate environment (see this script's docstring)."
        )
        return 0
    torch.set_default_dtype(torch.float64)
    check = Check(torch, args.seed)
    # same grid, frequencies below the Nyquist one
    check.dense((64,), (12,))
    check.dense((32, 24), (6, 5))
    check.dense((16, 12, 10), (4, 3, 3))
    # a finer output grid (zero-shot super-resolution)
    resampled = (
        "neuraloperator pads its output spectrum with irfftn(s=output_shape), which appends the "
        "zeros after the negative frequencies of a leading axis: they become high positive ones"
    )
    check.dense((64,), (12,), (160,))
    check.dense((32, 24), (6, 5), (64, 48), note=resampled)
    check.dense((16, 12, 10), (4, 3, 3), (32, 24, 20), note=resampled)
    # an odd leading axis
    odd = (
        "neuraloperator undoes its fftshift with fftshift (not ifftshift) before the inverse "
        "FFT: on an odd axis every output frequency moves down by one"
    )
    check.dense((31, 24), (6, 5), note=odd)
    check.dense((15, 12, 10), (4, 3, 3), note=odd)
    # the Nyquist frequency kept: on the last axis (m = n/2 + 1), on a leading one (m = n/2)
    nyquist = (
        "design difference: spectrax reads a kept Nyquist coefficient c as c cos(pi n x), i.e. "
        "c/2 at the one kept frequency (spectrax.nn.nyquist_weights), so the operator is the "
        "same on every grid; neuraloperator keeps c"
    )
    check.dense((16,), (9,))
    check.dense((16,), (9,), (32,), note=nyquist)
    check.dense((16, 12), (8, 4), note=nyquist)
    check.dense((16, 12), (8, 4), (32, 24), note=nyquist + "; and the resampling note above")
    check.tucker((48,), (10,))
    check.tucker((32, 24), (6, 5))
    check.tucker((16, 12, 10), (4, 3, 3))
    check.fno((64,), (12,))
    check.fno((32, 24), (6, 5))
    check.fno((16, 12, 10), (4, 3, 3), layers=2)
    check.fno((40, 32), (6, 5), padding=0.125)
    check.fno((32, 24), (6, 5), exact_gelu=False)
    check.fno((32, 24), (6, 5), lifting_ratio=2)
    check.fno((32, 24), (6, 5), skip="soft_gating")
    check.fno((32, 24), (6, 5), separable=True)
    check.fno((64,), (12,), lifting_ratio=2, skip="soft_gating", separable=True)

    record = {
        "check": "spectrax vs neuraloperator, same weights",
        **provenance(),
        "torch": torch.__version__,
        "neuraloperator": neuralop.__version__,
        "precision": (
            "inputs and weights float64/complex128 on both sides; neuraloperator's SpectralConv "
            "holds its output spectrum in complex64 (torch.cfloat), so agreement is to float32 "
            "rounding"
        ),
        "error": "max |spectrax - neuraloperator| / max |neuraloperator| over the batch",
        "arbiter": (
            "identity weights on a random band-limited field (frequencies inside the kept ones, "
            "no Nyquist); each library's error against the field on the output grid"
        ),
        "rows": check.rows,
    }
    for r in check.rows:
        extra = ""
        if "identity_band_limited_err_spectrax" in r:
            extra = (
                f"  identity: spectrax {r['identity_band_limited_err_spectrax']:.1e}, "
                f"neuralop {r['identity_band_limited_err_neuralop']:.1e}"
            )
        shape = f"{r['spatial']}" + (
            f"->{r['out_shape']}" if r.get("out_shape", r["spatial"]) != r["spatial"] else ""
        )
        print(f"{r['case']:40s} {shape:28s} modes {r['modes']}: {r['max_rel_err']:.2e}{extra}")
    out = write_record(record, args.out or record_path(__file__, "neuraloperator-equivalence"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
