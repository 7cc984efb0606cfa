"""Benchmark fft_conv: impl="xla" vs impl="pallas", forward and forward+backward, side by side.

For each length L (B*H*L fixed, H a multiple of the kernel's channel block) it measures:
wall time (median of repeats, jitted, after a warm-up), the byte floor (bytes of u and k read
plus y written, over a copy bandwidth measured in the same run), peak memory (device
``memory_stats`` where the backend has them, else XLA's compiled temp + argument + output
bytes), and the max over rows of the relative error against a float64 NumPy reference.
Prints a table and writes ``benchmarks/fft_conv-<device>.json``.

On CPU the Pallas kernels run in interpret mode (an emulator): those timings only prove the
script works and say nothing about kernel speed. Usage::

    python scripts/bench_fft_conv.py                    # CPU sizes (default on CPU)
    python scripts/bench_fft_conv.py --lengths 1024 65536 --total 134217728 --dtypes bfloat16
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import pathlib
import platform

import jax
import jax.numpy as jnp
import numpy as np

import spectrax
from spectrax._benchmark import copy_bandwidth, median_time
from spectrax.kernels.fft_conv import fft_conv, pallas_status
from spectrax.kernels.fft_conv.monarch import MAX_LENGTH

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _peak_memory(fn, *args) -> int | None:
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        jax.block_until_ready(fn(*args))
        return int(dev.memory_stats()["peak_bytes_in_use"])
    try:
        m = jax.jit(fn).lower(*args).compile().memory_analysis()
        return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)
    except (AttributeError, TypeError, NotImplementedError):
        return None


def _reference(u, k) -> np.ndarray:
    u64, k64 = np.asarray(u, np.float64), np.asarray(k, np.float64)
    n = 2 * u.shape[-1]
    return np.fft.irfft(np.fft.rfft(u64, n) * np.fft.rfft(k64, n), n)[..., : u.shape[-1]]


def _max_rel_err(y, ref) -> float:
    y = np.asarray(y, np.float64).reshape(-1, ref.shape[-1])
    ref = ref.reshape(-1, ref.shape[-1])
    num = np.linalg.norm(y - ref, axis=-1)
    return float(np.max(num / np.maximum(np.linalg.norm(ref, axis=-1), 1e-30)))


def bench_length(length: int, total: int, channels: int, dtype, repeats: int, bw: float) -> dict:
    batch = max(1, total // (channels * length))
    ku, kk, kw = jax.random.split(jax.random.key(0), 3)
    u = jax.random.normal(ku, (batch, channels, length), jnp.float32).astype(dtype)
    k = (jax.random.normal(kk, (channels, length), jnp.float32) / np.sqrt(length)).astype(dtype)
    w = jax.random.normal(kw, (batch, channels, length), jnp.float32)
    ref = _reference(u, k)
    nbytes = (u.size + k.size + u.size) * jnp.dtype(dtype).itemsize
    row = {
        "L": length,
        "B": batch,
        "H": channels,
        "dtype": jnp.dtype(dtype).name,
        "bytes": int(nbytes),
        "byte_floor_s": nbytes / bw,
    }
    for impl in ("xla", "pallas"):
        fwd = jax.jit(lambda u, k, impl=impl: fft_conv(u, k, impl=impl))

        def loss(u, k, impl=impl):
            return jnp.sum(w * fft_conv(u, k, impl=impl).astype(jnp.float32))

        fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
        row[f"{impl}_fwd_s"] = median_time(fwd, u, k, repeats=repeats)
        row[f"{impl}_fwd_bwd_s"] = median_time(fwd_bwd, u, k, repeats=repeats)
        row[f"{impl}_peak_bytes_fwd_bwd"] = _peak_memory(fwd_bwd, u, k)
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
    p.add_argument("--repeats", type=int, default=3 if on_cpu else 20)
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    dev = jax.devices()[0]
    device = jax.default_backend() if on_cpu else dev.device_kind.replace(" ", "-").lower()
    bw = copy_bandwidth(min(4 * args.total, 1 << 28), args.repeats)
    rows, skipped = [], []
    for length in args.lengths:
        if length > MAX_LENGTH:
            skipped.append(
                {
                    "L": length,
                    "why": f"impl='pallas' supports L <= {MAX_LENGTH} "
                    "(two-level plans; no outer decomposition step yet)",
                }
            )
            continue
        for dtype in args.dtypes:
            rows.append(
                bench_length(length, args.total, args.channels, jnp.dtype(dtype), args.repeats, bw)
            )

    header = (
        f"{'L':>8} {'dtype':>8} {'B':>5} {'xla fwd':>10} {'pal fwd':>10} {'x':>6} {'xla f+b':>10} "
        f"{'pal f+b':>10} {'x':>6} {'floor':>10} {'xla err':>9} {'pal err':>9}"
    )
    lines = [
        f"device={device} pallas: {pallas_status()}",
        f"copy bandwidth {bw / 1e9:.1f} GB/s",
        header,
    ]
    for r in rows:
        lines.append(
            f"{r['L']:>8} {r['dtype']:>8} {r['B']:>5} "
            f"{r['xla_fwd_s'] * 1e3:>8.2f}ms {r['pallas_fwd_s'] * 1e3:>8.2f}ms "
            f"{r['speedup_fwd']:>6.2f} {r['xla_fwd_bwd_s'] * 1e3:>8.2f}ms "
            f"{r['pallas_fwd_bwd_s'] * 1e3:>8.2f}ms {r['speedup_fwd_bwd']:>6.2f} "
            f"{r['byte_floor_s'] * 1e3:>8.3f}ms {r['xla_max_rel_err']:>9.1e} "
            f"{r['pallas_max_rel_err']:>9.1e}"
        )
    for s in skipped:
        lines.append(f"{s['L']:>8} skipped: {s['why']}")
    print("\n".join(lines))

    result = {
        "device": device,
        "device_kind": dev.device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "spectrax": getattr(spectrax, "__version__", "unknown"),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
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
            "float64 NumPy reference. Peak bytes on CPU are XLA's compiled temp+argument+output "
            "sizes (interpret mode inflates the Pallas figure)."
            if on_cpu
            else "Measured on an accelerator."
        ),
    }
    out = args.out or ROOT / "benchmarks" / f"fft_conv-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
