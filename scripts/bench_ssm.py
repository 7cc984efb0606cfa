"""Benchmark S4 (DPLR), S4D and S5 layers side by side, and the diagonal scan against its floor.

For each length L it measures, on one device in one run:

- training throughput (tokens/s) of one layer ``(L, H) -> (L, H)``, vmapped over a batch,
  forward + backward of a scalar loss w.r.t. every parameter, jitted, median of repeats, and
  the compiled step's XLA temporary memory (``*_temp_bytes``; for S4 also with the DPLR
  kernel's Cauchy sums in one block, as before 2026-12-07, ``s4_dplr_conv_one_block_*``):
  S4 in convolution mode (Cauchy/Woodbury DPLR kernel + FFT convolution), S4D in convolution
  mode (chunked Vandermonde kernel + FFT convolution), S5 in parallel-scan mode;
- the diagonal complex recurrence ``x_k = Λ̄ x_{k-1} + b_k`` on ``(B, L, N)`` complex64 with
  ``lax.associative_scan`` and with ``lax.scan``, against its byte floor (``b`` read and ``x``
  written once, over a copy bandwidth measured in the same run).

Writes ``benchmarks/ssm-<device>.json``. Usage::

    python scripts/bench_ssm.py                                # CPU sizes
    python scripts/bench_ssm.py --lengths 1024 4096 16384 65536 --batch 16 --channels 256
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp

from spectrax._benchmark import copy_bandwidth, median_time, provenance, record_path, write_record
from spectrax.nn import S4, S4D, S5
from spectrax.ssm import _kernel, scan_diagonal


def _layers(channels: int, state: int) -> dict:
    keys = jax.random.split(jax.random.key(0), 3)
    return {
        "s4_dplr_conv": S4(channels, state, mode="conv", key=keys[0]),
        "s4d_conv": S4D(channels, state, mode="conv", key=keys[1]),
        "s5_scan": S5(channels, state, mode="scan", key=keys[2]),
    }


def _train_step(layer, x):
    """The compiled gradient of a scalar loss w.r.t. every parameter, and the parameters."""
    params, static = eqx.partition(layer, eqx.is_array)

    def loss(p, x):
        return jnp.mean(jax.vmap(eqx.combine(p, static))(x) ** 2)

    return jax.jit(jax.grad(loss)).lower(params, x).compile(), params


def _one_block_temp_bytes(channels, state, x) -> int:
    """XLA's temporary memory of the S4 step with the DPLR kernel's Cauchy sums over every
    frequency in one block (``dplr_kernel`` before 2026-12-07): compiled, not run."""
    budget = _kernel._DPLR_BLOCK_ELEMENTS.copy()
    jax.clear_caches()  # the layer's inner jit would reuse the blocked trace
    try:
        _kernel._DPLR_BLOCK_ELEMENTS[jax.default_backend()] = 2**62
        step, _ = _train_step(_layers(channels, state)["s4_dplr_conv"], x)
        return int(step.memory_analysis().temp_size_in_bytes)
    finally:
        _kernel._DPLR_BLOCK_ELEMENTS.clear()
        _kernel._DPLR_BLOCK_ELEMENTS.update(budget)
        jax.clear_caches()


def bench_length(length, batch, channels, state, repeats, bw) -> dict:
    x = jax.random.normal(jax.random.key(1), (batch, length, channels), jnp.float32)
    row = {"L": length, "B": batch, "H": channels, "N": state}
    for name, layer in _layers(channels, state).items():
        step, params = _train_step(layer, x)
        t = median_time(step, params, x, repeats=repeats)
        row[f"{name}_fwd_bwd_s"] = t
        row[f"{name}_tokens_per_s"] = batch * length / t
        row[f"{name}_temp_bytes"] = int(step.memory_analysis().temp_size_in_bytes)
    row["s4_dplr_conv_one_block_temp_bytes"] = _one_block_temp_bytes(channels, state, x)
    n_states = state // 2
    lam_bar = jnp.full((batch, 1, n_states), 0.99 + 0.01j, jnp.complex64)
    bu = jax.lax.complex(x[..., :1].repeat(n_states, -1), x[..., :1].repeat(n_states, -1))
    nbytes = 2 * bu.size * bu.dtype.itemsize
    row["scan_bytes"] = int(nbytes)
    row["scan_byte_floor_s"] = nbytes / bw
    for method in ("associative", "sequential"):
        fn = jax.jit(lambda a, b, m=method: scan_diagonal(a, b, method=m))
        t = median_time(fn, lam_bar, bu, repeats=repeats)
        row[f"scan_{method}_s"] = t
        row[f"scan_{method}_over_floor"] = t / row["scan_byte_floor_s"]
    row["scan_sequential_over_associative"] = row["scan_sequential_s"] / row["scan_associative_s"]
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--state", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bw = copy_bandwidth(1 << 26, args.repeats)
    rows = []
    for length in args.lengths:
        row = bench_length(length, args.batch, args.channels, args.state, args.repeats, bw)
        logging.info(json.dumps(row))
        rows.append(row)
    on_cpu = jax.default_backend() == "cpu"
    result = {
        "benchmark": "ssm layers (training throughput) and diagonal scan vs byte floor",
        **provenance(),
        "copy_bandwidth_bytes_per_s": bw,
        "note": (
            "CPU sizes on a 2-core machine that other jobs may share: ratios within "
            "one row are the meaningful part; GPU figures are unmeasured here."
            if on_cpu
            else "accelerator run"
        ),
        "rows": rows,
    }
    out = write_record(result, args.out or record_path(__file__, "ssm"))
    logging.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
