"""Benchmark fft_conv: impl="xla" vs impl="pallas", forward and forward+backward, side by side.

For each length L (B*H*L fixed, H a multiple of the kernel's channel block) it measures:
wall time (median of repeats, jitted, after a warm-up), the byte floor (bytes of u and k read
plus y written, over a copy bandwidth measured in the same run), peak memory (XLA's compiled
temp + argument + output bytes of the forward+backward), and the max over rows of the
relative error against a float64 NumPy reference. Prints a table and writes
``benchmarks/fft_conv-<device>.json``, rewritten after every row so that a run stopped by a
time limit keeps the rows it finished. Each row names the Pallas path taken (two-level,
chunked short filter, long three-level) and its matmul precision;
``--ksize`` benchmarks short filters, ``--bandwidth`` frequency-sparse filters (the error is
then measured against the float64 convolution with the band-limited filter).

On CPU the Pallas kernels run in interpret mode (an emulator): those timings only prove the
script works and say nothing about kernel speed. Usage::

    python scripts/bench_fft_conv.py                    # CPU sizes (default on CPU)
    python scripts/bench_fft_conv.py --lengths 1024 65536 --total 134217728 --dtypes bfloat16
    python scripts/bench_fft_conv.py --ksize 128          # short filters (overlap-save)
    python scripts/bench_fft_conv.py --precision f32      # the exact-float32 matmul mode
"""

from __future__ import annotations

import argparse
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from spectrax._benchmark import copy_bandwidth, median_time, provenance, record_path, write_record
from spectrax.kernels.fft_conv import fft_conv, pallas_status
from spectrax.kernels.fft_conv._pallas import (
    DEFAULT_PRECISION,
    KERNELS,
    _platform,
    _select,
    fft_conv_pallas,
)
from spectrax.kernels.fft_conv.monarch import PRECISIONS, MonarchPlan, band_mask
from spectrax.kernels.fft_conv.outer import LONG_MAX_LENGTH


def _peak_memory(compiled) -> int | None:
    """XLA's temp + argument + output bytes of a compiled function: a figure of this function
    alone. (A device's ``memory_stats()["peak_bytes_in_use"]`` is the process's peak since
    start and never resets, so it would give every row the largest figure of the rows before
    it.)"""
    try:
        m = compiled.memory_analysis()
        return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)
    except (AttributeError, TypeError, NotImplementedError):
        return None


def _reference(u, k, plan=None) -> np.ndarray:
    """float64 causal convolution; with a frequency-sparse ``plan``, the one with the
    band-limited filter of :func:`band_mask` on the plan's grid."""
    u64, k64 = np.asarray(u, np.float64), np.asarray(k, np.float64)
    if plan is None:
        n, mask = 2 * u.shape[-1], 1.0
    else:
        n, mask = plan.fft_size, band_mask(plan)
    return np.fft.irfft(np.fft.rfft(u64, n) * np.fft.rfft(k64, n) * mask, n)[..., : u.shape[-1]]


def _max_rel_err(y, ref) -> float:
    y = np.asarray(y, np.float64).reshape(-1, ref.shape[-1])
    ref = ref.reshape(-1, ref.shape[-1])
    num = np.linalg.norm(y - ref, axis=-1)
    return float(np.max(num / np.maximum(np.linalg.norm(ref, axis=-1), 1e-30)))


def bench_length(
    length: int,
    total: int,
    channels: int,
    dtype,
    repeats: int,
    bw: float,
    *,
    ksize: int | None = None,
    precision: str | None = None,
    bandwidth: float | None = None,
) -> dict:
    batch = max(1, total // (channels * length))
    ksize = min(ksize or length, length)
    ku, kk, kw = jax.random.split(jax.random.key(0), 3)
    u = jax.random.normal(ku, (batch, channels, length), jnp.float32).astype(dtype)
    k = (jax.random.normal(kk, (channels, ksize), jnp.float32) / np.sqrt(ksize)).astype(dtype)
    w = jax.random.normal(kw, (batch, channels, length), jnp.float32)
    family = _platform()[0]
    path, plan, _ = _select(length, ksize, True, KERNELS[family], bandwidth, None)
    sparse = bandwidth is not None and isinstance(plan, MonarchPlan) and plan.cols is not None
    ref = _reference(u, k, plan if sparse else None)
    nbytes = (u.size + k.size + u.size) * jnp.dtype(dtype).itemsize
    row = {
        "L": length,
        "K": ksize,
        "B": batch,
        "H": channels,
        "dtype": jnp.dtype(dtype).name,
        "pallas_path": path,
        "pallas_precision": precision or DEFAULT_PRECISION[jnp.dtype(dtype)],
        "bandwidth": bandwidth,
        "spectrum_cols": f"{plan.cols}/{plan.n2}" if sparse else None,
        "bytes": int(nbytes),
        "byte_floor_s": nbytes / bw,
    }
    convs = {
        "xla": lambda u, k: fft_conv(u, k, impl="xla"),
        "pallas": lambda u, k: fft_conv_pallas(u, k, precision=precision, bandwidth=bandwidth),
    }
    for impl, conv in convs.items():
        # compiled once, ahead of time: timed, and its memory read, from the same executable
        fwd = jax.jit(conv).lower(u, k).compile()

        def loss(u, k, conv=conv):
            return jnp.sum(w * conv(u, k).astype(jnp.float32))

        fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(u, k).compile()
        row[f"{impl}_fwd_s"] = median_time(fwd, u, k, repeats=repeats)
        row[f"{impl}_fwd_bwd_s"] = median_time(fwd_bwd, u, k, repeats=repeats)
        row[f"{impl}_peak_bytes_fwd_bwd"] = _peak_memory(fwd_bwd)
        # the XLA path computes the dense convolution: against the band-limited reference
        # its error is the part of the filter's spectrum a sparse plan drops
        row[f"{impl}_max_rel_err"] = _max_rel_err(fwd(u, k), ref)
    row["speedup_fwd"] = row["xla_fwd_s"] / row["pallas_fwd_s"]
    row["speedup_fwd_bwd"] = row["xla_fwd_bwd_s"] / row["pallas_fwd_bwd_s"]
    row["pallas_fwd_over_floor"] = row["pallas_fwd_s"] / row["byte_floor_s"]
    row["xla_fwd_over_floor"] = row["xla_fwd_s"] / row["byte_floor_s"]
    return row


def main(argv=None) -> int:
    on_cpu = jax.default_backend() == "cpu"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=[256, 1024, 4096] if on_cpu else [256, 1024, 4096, 16384, 65536, 262144, 1048576],
    )
    p.add_argument(
        "--total", type=int, default=1 << 15 if on_cpu else 1 << 27, help="B*H*L elements per call"
    )
    p.add_argument("--channels", type=int, default=8, help="H (a multiple of the block)")
    p.add_argument(
        "--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"]
    )
    p.add_argument("--ksize", type=int, default=None, help="filter length K (default L)")
    p.add_argument("--precision", default=None, choices=PRECISIONS, help="Pallas matmuls")
    p.add_argument("--bandwidth", type=float, default=None, help="frequency-sparse filters")
    p.add_argument("--repeats", type=int, default=3 if on_cpu else 20)
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    dev = jax.devices()[0]
    device = jax.default_backend() if on_cpu else dev.device_kind.replace(" ", "-").lower()
    out = args.out or record_path(__file__, "fft_conv", device)
    bw = copy_bandwidth(min(4 * args.total, 1 << 28), args.repeats)
    rows = []
    skipped = [
        {"L": length, "why": f"impl='pallas' supports L <= {LONG_MAX_LENGTH}"}
        for length in args.lengths
        if length > LONG_MAX_LENGTH
    ]
    result = {
        **provenance(),
        "device": device,
        "device_kind": dev.device_kind,
        "pallas_status": pallas_status(),
        "copy_bandwidth_bytes_per_s": bw,
        "total_elements": args.total,
        "rows": rows,
        "skipped": skipped,
        "notes": (
            "CPU run: impl='pallas' executes the Pallas kernels in interpret mode (an emulator), "
            "so its timings, speedups and floor ratios say nothing about kernel speed; they "
            "prove the script runs. GPU (H100) and TPU figures are unmeasured: no accelerator "
            "was available. Errors are max over rows of the norm-wise relative error against a "
            "float64 NumPy reference. Peak bytes are XLA's compiled temp+argument+output "
            "sizes (interpret mode inflates the Pallas figure)."
            if on_cpu
            else "Measured on an accelerator. Peak bytes are XLA's compiled "
            "temp+argument+output sizes of the forward+backward."
        ),
    }
    for length in args.lengths:
        if length > LONG_MAX_LENGTH:
            continue
        for dtype in args.dtypes:
            rows.append(
                bench_length(
                    length,
                    args.total,
                    args.channels,
                    jnp.dtype(dtype),
                    args.repeats,
                    bw,
                    ksize=args.ksize,
                    precision=args.precision,
                    bandwidth=args.bandwidth,
                )
            )
            write_record(result, out)  # after every row: a run cut off by a time limit keeps it

    header = (
        f"{'L':>8} {'K':>8} {'dtype':>8} {'path':>9} {'prec':>7} {'B':>5} {'xla fwd':>10} "
        f"{'pal fwd':>10} {'x':>6} {'xla f+b':>10} "
        f"{'pal f+b':>10} {'x':>6} {'floor':>10} {'xla err':>9} {'pal err':>9}"
    )
    lines = [
        f"device={device} pallas: {pallas_status()}",
        f"copy bandwidth {bw / 1e9:.1f} GB/s",
        header,
    ]
    for r in rows:
        lines.append(
            f"{r['L']:>8} {r['K']:>8} {r['dtype']:>8} {r['pallas_path']:>9} "
            f"{r['pallas_precision']:>7} {r['B']:>5} "
            f"{r['xla_fwd_s'] * 1e3:>8.2f}ms {r['pallas_fwd_s'] * 1e3:>8.2f}ms "
            f"{r['speedup_fwd']:>6.2f} {r['xla_fwd_bwd_s'] * 1e3:>8.2f}ms "
            f"{r['pallas_fwd_bwd_s'] * 1e3:>8.2f}ms {r['speedup_fwd_bwd']:>6.2f} "
            f"{r['byte_floor_s'] * 1e3:>8.3f}ms {r['xla_max_rel_err']:>9.1e} "
            f"{r['pallas_max_rel_err']:>9.1e}"
        )
    for s in skipped:
        lines.append(f"{s['L']:>8} skipped: {s['why']}")
    print("\n".join(lines))

    write_record(result, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
