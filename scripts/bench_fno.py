"""Benchmark the FNO-2d training step: spectrax FNO (rfft and kept-modes-only DFT paths) against a
plain ``jnp.fft`` FNO written here and, when installed, neuraloperator (PyTorch, eager).

All columns run in one process on the same device; results (median step time, ratios, parameter
counts, device, versions, shapes) go to ``benchmarks/fno-train-step-<device>.json``. The issue's
sizes (batch 32, 128x128, width 64, 16+16 x 16 kept modes, 4 layers) are the default on GPU; on
CPU the default is a smaller problem, and the JSON says so. ``--paper-sizes`` forces the
issue's sizes anywhere. Where PyTorch is absent on a GPU (a JAX-only image), the record adds a
``neuraloperator_estimate``, labelled as such: the speed-up over the plain FNO, measured here,
times the issue's H100 plain-vs-neuraloperator ratio.

    python scripts/bench_fno.py                  # CPU sizes on CPU, issue sizes on GPU
    python scripts/bench_fno.py --paper-sizes
"""

from __future__ import annotations

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectrax._benchmark import provenance, record_path, time_interleaved, write_record
from spectrax.models import FNO
from spectrax.nn import resolve_impl
from spectrax.train import relative_lp_loss
from spectrax.train._step import compute_params

PAPER = dict(batch=32, size=128, width=64, modes=16, layers=4)
# The issue's H100 measurement at PAPER sizes, before any work here: plain jnp.fft FNO 11.9 ms,
# neuraloperator 21.6 ms. Used only to state an estimate when neuraloperator cannot run here.
ISSUE_H100_MS = {"plain_jnp_fft_fno": 11.9, "neuraloperator": 21.6}
TARGET_VS_NEURALOPERATOR = 3.0
CPU = dict(batch=8, size=64, width=32, modes=12, layers=4)


def _data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    s = cfg["size"]
    a = rng.normal(size=(cfg["batch"], 1, s, s)).astype(np.float32)
    u = rng.normal(size=(cfg["batch"], 1, s, s)).astype(np.float32)
    return jnp.asarray(a), jnp.asarray(u)


def bench_spectrax(cfg, impl: str, compute_dtype=None):
    """The spectrax FNO's step; ``compute_dtype=jnp.bfloat16``: mixed precision as
    ``make_train_step(..., compute_dtype=)`` does it (bfloat16 forward and backward over float32
    parameters and Adam state)."""
    model = FNO(
        2, 1, 1, cfg["width"], cfg["modes"], cfg["layers"], impl=impl, key=jax.random.key(0)
    )
    a, u = _data(cfg)
    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(params)

    @jax.jit
    def step(p, s, a, u):
        def loss_fn(p):
            if compute_dtype is not None:
                p = compute_params(p, compute_dtype)
            return relative_lp_loss(jax.vmap(eqx.combine(p, static))(a), u, num_spatial_dims=2)

        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    holder = {"p": params, "s": state}

    def run():
        holder["p"], holder["s"], loss = step(holder["p"], holder["s"], a, u)
        loss.block_until_ready()

    n_params = sum(x.size for x in jax.tree.leaves(params))
    return run, n_params


def _plain_fno_init(cfg, key):
    """Li et al.'s FNO-2d as plain arrays: fc0, 4 x (spectral weights, 1x1 conv), fc1, fc2."""
    w, m, c_in = cfg["width"], cfg["modes"], 3
    keys = iter(jax.random.split(key, 4 * cfg["layers"] + 6))
    scale = 1.0 / (w * w)
    p = {
        "fc0_w": jax.random.normal(next(keys), (c_in, w)) / np.sqrt(c_in),
        "fc0_b": jnp.zeros((w,)),
        "fc1_w": jax.random.normal(next(keys), (w, 128)) / np.sqrt(w),
        "fc1_b": jnp.zeros((128,)),
        "fc2_w": jax.random.normal(next(keys), (128, 1)) / np.sqrt(128),
        "fc2_b": jnp.zeros((1,)),
        "layers": [],
    }
    for _ in range(cfg["layers"]):
        p["layers"].append(
            {
                "w1": scale * jax.random.normal(next(keys), (2, w, w, m, m)),
                "w2": scale * jax.random.normal(next(keys), (2, w, w, m, m)),
                "conv_w": jax.random.normal(next(keys), (w, w)) / np.sqrt(w),
                "conv_b": jnp.zeros((w,)),
            }
        )
    return p


def _plain_fno_apply(p, a, modes):
    """Batched (B, S, S, C) channels-last, the original PyTorch layout, with jnp.fft."""
    b, s = a.shape[0], a.shape[1]
    g = jnp.linspace(0.0, 1.0, s)
    gx = jnp.broadcast_to(g.reshape(1, s, 1, 1), (b, s, s, 1))
    gy = jnp.broadcast_to(g.reshape(1, 1, s, 1), (b, s, s, 1))
    x = jnp.concatenate([a, gx, gy], axis=-1) @ p["fc0_w"] + p["fc0_b"]
    n = len(p["layers"])
    for i, lyr in enumerate(p["layers"]):
        xh = jnp.fft.rfft2(x, axes=(1, 2))
        w1 = jax.lax.complex(lyr["w1"][0], lyr["w1"][1])
        w2 = jax.lax.complex(lyr["w2"][0], lyr["w2"][1])
        out = jnp.zeros((b, s, s // 2 + 1, x.shape[-1]), xh.dtype)
        out = out.at[:, :modes, :modes].set(
            jnp.einsum("bxyi,ioxy->bxyo", xh[:, :modes, :modes], w1)
        )
        out = out.at[:, -modes:, :modes].set(
            jnp.einsum("bxyi,ioxy->bxyo", xh[:, -modes:, :modes], w2)
        )
        x = jnp.fft.irfft2(out, s=(s, s), axes=(1, 2)) + x @ lyr["conv_w"] + lyr["conv_b"]
        if i < n - 1:
            x = jax.nn.gelu(x)
    x = jax.nn.gelu(x @ p["fc1_w"] + p["fc1_b"])
    return x @ p["fc2_w"] + p["fc2_b"]


def bench_plain(cfg):
    params = _plain_fno_init(cfg, jax.random.key(0))
    a, u = _data(cfg)
    a, u = jnp.moveaxis(a, 1, -1), jnp.moveaxis(u, 1, -1)
    opt = optax.adam(1e-3)
    state = opt.init(params)
    modes = cfg["modes"]

    @jax.jit
    def step(p, s, a, u):
        def loss_fn(p):
            pred = _plain_fno_apply(p, a, modes)
            num = jnp.sqrt(jnp.sum((pred - u) ** 2, axis=(1, 2, 3)))
            return jnp.mean(num / jnp.sqrt(jnp.sum(u**2, axis=(1, 2, 3))))

        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    holder = {"p": params, "s": state}

    def run():
        holder["p"], holder["s"], loss = step(holder["p"], holder["s"], a, u)
        loss.block_until_ready()

    n_params = sum(x.size for x in jax.tree.leaves(params))
    return run, n_params


def bench_neuraloperator(cfg):
    """neuraloperator 2.x FNO, eager PyTorch, same sizes; None when not installed."""
    try:
        import torch
        from neuralop.models import FNO as TorchFNO
    except ImportError as e:  # optional column
        return None, f"not installed ({e.__class__.__name__}: {e})"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m = cfg["modes"]
    model = TorchFNO(
        # neuraloperator keeps n // 2 + 1 modes on the rfft axis: 2m - 2 keeps m there.
        n_modes=(2 * m, 2 * m - 2),
        in_channels=1,
        out_channels=1,
        hidden_channels=cfg["width"],
        n_layers=cfg["layers"],
        lifting_channel_ratio=1,
        projection_channel_ratio=128 / cfg["width"],
        use_channel_mlp=False,
        positional_embedding="grid",
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    s = cfg["size"]
    a = torch.tensor(rng.normal(size=(cfg["batch"], 1, s, s)), dtype=torch.float32, device=device)
    u = torch.tensor(rng.normal(size=(cfg["batch"], 1, s, s)), dtype=torch.float32, device=device)

    def run():
        opt.zero_grad()
        pred = model(a)
        num = torch.linalg.vector_norm((pred - u).reshape(len(a), -1), dim=1)
        loss = (num / torch.linalg.vector_norm(u.reshape(len(a), -1), dim=1)).mean()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    n_params = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
    import neuralop

    return (
        run,
        n_params,
    ), f"neuraloperator {neuralop.__version__}, torch {torch.__version__} on {device}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--paper-sizes", action="store_true", help="the issue's sizes on any device"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    dev = jax.devices()[0]
    on_accel = dev.platform != "cpu"
    cfg = dict(PAPER if (args.paper_sizes or on_accel) else CPU)
    sizes_note = (
        "issue sizes"
        if cfg == PAPER
        else "CPU sizes (no accelerator), smaller than the issue's "
        "(batch 32, 128x128, width 64, 16 modes)"
    )
    default_impl = resolve_impl("auto", (cfg["size"],) * 2, (cfg["modes"],) * 2)
    columns = {
        "spectrax_fno_rfft": bench_spectrax(cfg, "rfft"),
        "spectrax_fno_dft": bench_spectrax(cfg, "dft"),
        # mixed precision (loop.compute_dtype=bfloat16): not the issue's like-for-like float32
        # comparison, recorded beside it
        f"spectrax_fno_{default_impl}_bf16_compute": bench_spectrax(
            cfg, default_impl, jnp.bfloat16
        ),
        "plain_jnp_fft_fno": bench_plain(cfg),
    }
    torch_res, torch_note = bench_neuraloperator(cfg)
    if torch_res is not None:
        columns["neuraloperator"] = torch_res
    else:
        print(f"neuraloperator: skipped, {torch_note}")
    timed = time_interleaved({k: v[0] for k, v in columns.items()}, args.repeats)
    results = {}
    for name, (med, times) in timed.items():
        n_params = columns[name][1]
        results[name] = {
            "median_ms": 1e3 * med,
            "times_ms": [1e3 * t for t in times],
            "num_params": int(n_params),
        }
        print(f"{name:22s} {1e3 * med:9.2f} ms   params {n_params}")
    base = results["plain_jnp_fft_fno"]["median_ms"]
    ratios = {f"{k}_vs_plain_jnp_fft": base / v["median_ms"] for k, v in results.items()}
    if "neuraloperator" in results:
        ref = results["neuraloperator"]["median_ms"]
        ratios.update({f"{k}_vs_neuraloperator": ref / v["median_ms"] for k, v in results.items()})
    estimate = None
    if "neuraloperator" not in results and cfg == PAPER and on_accel:
        # No side-by-side column (PyTorch absent, e.g. on a JAX-only GPU image): scale by the
        # issue's plain-vs-neuraloperator ratio. An estimate across runs, said as such.
        plain_vs_torch = ISSUE_H100_MS["neuraloperator"] / ISSUE_H100_MS["plain_jnp_fft_fno"]
        estimate = {
            "what": "ESTIMATE, not a side-by-side measurement: this run's speed-up over the "
            "plain jnp.fft FNO times the issue's H100 plain-vs-neuraloperator ratio "
            "(21.6 ms / 11.9 ms); valid only on an H100-class GPU",
            "issue_plain_vs_neuraloperator": plain_vs_torch,
            "needed_vs_plain_for_target": TARGET_VS_NEURALOPERATOR / plain_vs_torch,
            "estimated_vs_neuraloperator": {
                k: plain_vs_torch * base / v["median_ms"] for k, v in results.items()
            },
        }
        for k, v in estimate["estimated_vs_neuraloperator"].items():
            print(f"{k + '_vs_neuraloperator (ESTIMATE)':45s} {v:6.2f}x")
    record = {
        "benchmark": "FNO-2d train step (forward, backward, Adam update), relative L2 loss",
        **provenance(),
        "sizes": {
            **cfg,
            "kept_modes": f"{cfg['modes']}+{cfg['modes']} x {cfg['modes']}",
            "note": sizes_note,
        },
        "spectrax_default_impl": f"auto, which resolves to {default_impl} at these sizes",
        "bf16_compute_column": "mixed precision (make_train_step's compute_dtype='bfloat16'): "
        "bfloat16 forward and backward over float32 parameters and Adam state; every other "
        "column, neuraloperator's included, is float32 throughout",
        "neuraloperator": torch_note,
        "results": results,
        "speedup_ratios": ratios,
        "ratio_meaning": "time of the reference / time of the column (> 1 is faster)",
    }
    if estimate is not None:
        record["neuraloperator_estimate"] = estimate
    out = write_record(record, args.out or record_path(__file__, "fno-train-step"))
    for k, v in ratios.items():
        print(f"{k:45s} {v:6.2f}x")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
