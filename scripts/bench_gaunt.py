"""Benchmark the Gaunt tensor product: ``spectrax.transforms.gaunt_product`` (through the sphere,
O(L^3)) against the dense contraction with the Gaunt coefficient table (O(L^6)).

Both run jitted and interleaved in one process on the same device, for a batch of coefficient
pairs of degree ``L`` each and the full output degree ``2L``; the JSON
(``benchmarks/gaunt-<device>.json``) records the median times, their ratio, the table's size
and the largest relative difference between the two.

    python scripts/bench_gaunt.py
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from spectrax._benchmark import provenance, record_path, time_interleaved, write_record
from spectrax.transforms import gaunt_coefficients, gaunt_grid, gaunt_product

DEGREES = (2, 4, 6, 8, 10, 12)


def _run(fn, *args):
    return jax.block_until_ready(fn(*args))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    rows = []
    for degree in DEGREES:
        n_in, n_out = (degree + 1) ** 2, (2 * degree + 1) ** 2
        k1, k2 = jax.random.split(jax.random.key(degree))
        x1 = jax.random.normal(k1, (args.batch, n_in))
        x2 = jax.random.normal(k2, (args.batch, n_in))
        table = jnp.asarray(gaunt_coefficients(degree, degree, 2 * degree), jnp.float32)
        sphere = jax.jit(gaunt_product)
        dense = jax.jit(
            lambda a, b, t: jnp.einsum(
                "abc,na,nb->nc", t, a, b, precision=jax.lax.Precision.HIGHEST
            )
        )
        runs = {
            "sphere": functools.partial(_run, sphere, x1, x2),
            "dense": functools.partial(_run, dense, x1, x2, table),
        }
        timed = time_interleaved(runs, args.repeats)
        med = {name: m for name, (m, _) in timed.items()}
        z_sphere, z_dense = np.asarray(sphere(x1, x2)), np.asarray(dense(x1, x2, table))
        diff = float(np.max(np.abs(z_sphere - z_dense)) / np.max(np.abs(z_dense)))
        row = {
            "degree": degree,
            "batch": args.batch,
            "harmonics_in": n_in,
            "harmonics_out": n_out,
            "grid": list(gaunt_grid(degree, degree, 2 * degree)),
            "table_entries": int(table.size),
            "sphere_ms": 1e3 * med["sphere"],
            "dense_ms": 1e3 * med["dense"],
            "dense_over_sphere": med["dense"] / med["sphere"],
            "max_rel_diff": diff,
        }
        rows.append(row)
        print(
            f"L={degree:3d}  sphere {row['sphere_ms']:8.3f} ms  dense {row['dense_ms']:9.3f} ms  "
            f"dense/sphere {row['dense_over_sphere']:7.2f}  max rel diff {diff:.1e}"
        )

    record = {
        "benchmark": "Gaunt tensor product: through the sphere (sht/isht) vs dense Gaunt table",
        **provenance(),
        "dtype": "float32",
        "timing": f"median of {args.repeats} jitted forward calls on a batch of {args.batch} "
        "pairs of degree L, output degree 2L, the two interleaved",
        "rows": rows,
    }
    out = write_record(record, args.out or record_path(__file__, "gaunt"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
