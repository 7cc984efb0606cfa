"""Benchmark the two paths of ``spectrax.nn.SpectralConv``: ``"rfft"`` (full FFT, slice the kept
modes) against ``"dft"`` (kept modes only, truncated DFTs as matrix products), forward and
backward, over 1-d, 2-d and 3-d problems; and which one ``impl="auto"`` picks.

Both paths run interleaved in one process on the same device; the JSON
(``benchmarks/spectral-conv-<device>.json``) records the median time of a jitted
``grad(sum(conv(x)**2))`` per shape and path, the ratio, and ``auto``'s choice.

    python scripts/bench_spectral_conv.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from spectrax._benchmark import provenance, record_path, time_interleaved, write_record
from spectrax.nn import SpectralConv, resolve_impl

# (name, batch, channels, spatial, modes): the FNO papers' problems at their sizes, a few grids
# that are awkward for FFTs (85 = 5 * 17, 94 = 2 * 47: Darcy with its domain padding), and
# problems keeping most of the spectrum, where the matrix products lose.
CASES = [
    ("burgers-1d", 20, 64, (1024,), (16,)),
    ("1d-short-all-modes", 20, 64, (64,), (32,)),
    ("darcy-2d", 20, 32, (85, 85), (12, 12)),
    ("darcy-2d-padded", 20, 32, (94, 94), (12, 12)),
    ("ns-2d", 20, 20, (64, 64), (12, 12)),
    ("issue-2d", 8, 64, (128, 128), (16, 16)),
    ("2d-half-modes", 8, 32, (64, 64), (16, 16)),
    ("2d-all-modes", 8, 32, (32, 32), (16, 16)),
    ("ns-3d", 4, 20, (64, 64, 40), (8, 8, 8)),
]


def _runner(conv, x):
    params, static = eqx.partition(conv, eqx.is_inexact_array)

    @jax.jit
    def grad(p, x):
        return jax.grad(
            lambda p, x: jnp.sum(jax.vmap(eqx.combine(p, static))(x) ** 2), argnums=(0, 1)
        )(p, x)

    return lambda: jax.block_until_ready(grad(params, x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    rows = []
    for name, batch, channels, spatial, modes in CASES:
        key = jax.random.key(0)
        x = jax.random.normal(key, (batch, channels, *spatial))
        runs = {
            impl: _runner(
                SpectralConv(len(spatial), channels, channels, modes, impl=impl, key=key), x
            )
            for impl in ("rfft", "dft")
        }
        timed = time_interleaved(runs, args.repeats)
        med = {impl: m for impl, (m, _) in timed.items()}
        auto = resolve_impl("auto", spatial, modes)
        row = {
            "case": name,
            "batch": batch,
            "channels": channels,
            "spatial": list(spatial),
            "modes": list(modes),
            "rfft_ms": 1e3 * med["rfft"],
            "dft_ms": 1e3 * med["dft"],
            "rfft_over_dft": med["rfft"] / med["dft"],
            "auto_picks": auto,
            "auto_picks_faster": med[auto] <= min(med.values()) * 1.0001,
        }
        rows.append(row)
        print(
            f"{name:20s} rfft {row['rfft_ms']:8.2f} ms  dft {row['dft_ms']:8.2f} ms  "
            f"rfft/dft {row['rfft_over_dft']:5.2f}  auto -> {auto}"
        )

    record = {
        "benchmark": "SpectralConv forward + backward: rfft vs kept-modes DFT",
        **provenance(),
        "timing": f"median of {args.repeats} jitted grad(sum(conv(x)**2)) calls (w.r.t. weights "
        "and input), the two paths interleaved",
        "rows": rows,
    }
    out = write_record(record, args.out or record_path(__file__, "spectral-conv"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
