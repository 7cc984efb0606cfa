"""Benchmark S4D's Vandermonde kernel ``K[l] = sum_n W_n Λ̄_n^l``: spectrax's factored powers
(``Λ̄^(c chunk) Λ̄^j``, ``N (chunk + L / chunk)`` exponentials and one matrix product,
:func:`spectrax.ssm.vandermonde_kernel`) against the direct form written here, one exponential
``exp(l log Λ̄)`` per power (``N L``; what spectrax computed before 2026-12-07, blockwise).

Both run interleaved in one process on the same device, forward and forward + backward (jitted
``grad`` of a sum of squares w.r.t. ``log Λ̄`` and ``W``); each row also records both results'
error against float64 NumPy (relative to the kernel's largest entry). Eigenvalues are S4D-Lin's
(``-1/2 + i pi n``) at steps ``dt`` log-spaced in ``[1e-3, 1e-1]``. Writes
``benchmarks/vandermonde-<device>.json``::

    python scripts/bench_vandermonde.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from spectrax._benchmark import provenance, record_path, time_interleaved, write_record
from spectrax.ssm import vandermonde_kernel

# (channels H, modes N/2, length L)
CASES = [(32, 16, 1024), (32, 16, 4096), (32, 16, 16384), (32, 16, 65536)]


def direct_kernel(log_lam, w, length):
    """``sum_n w_n exp(l log Λ̄_n)``, one exponential per power (the baseline)."""
    steps = jnp.arange(length, dtype=jnp.float32).astype(log_lam.dtype)
    powers = jnp.exp(log_lam[..., None, :] * steps[None, :, None])
    return jnp.einsum("hln,hn->hl", powers, w)


def _system(h, m, seed=0):
    rng = np.random.default_rng(seed)
    lam = -0.5 + 1j * np.pi * np.arange(m)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), size=(h, 1)))
    log_lam = lam[None, :] * dt
    w = rng.normal(size=(h, m)) + 1j * rng.normal(size=(h, m))
    return log_lam, w


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    rows = []
    for h, m, length in CASES:
        log_lam64, w64 = _system(h, m)
        log_lam = jnp.asarray(log_lam64, jnp.complex64)
        w = jnp.asarray(w64, jnp.complex64)

        def factored(a, w, length=length):
            return vandermonde_kernel(jnp.exp(a), w, length, log_Lambda_bar=a)

        def direct(a, w, length=length):
            return direct_kernel(a, w, length)

        fns = {"factored": factored, "direct": direct}
        runs = {}
        for name, fn in fns.items():
            fwd = jax.jit(fn)
            grad = jax.jit(
                jax.grad(lambda a, w, fn=fn: jnp.sum(jnp.abs(fn(a, w)) ** 2), argnums=(0, 1))
            )
            args_ = (log_lam, w)
            runs[f"{name}_forward"] = lambda f=fwd, a=args_: jax.block_until_ready(f(*a))
            runs[f"{name}_forward_backward"] = lambda g=grad, a=args_: jax.block_until_ready(g(*a))
        timed = time_interleaved(runs, args.repeats)
        ref = np.stack(
            [
                (w64[i][None, :] * np.exp(np.outer(np.arange(length), log_lam64[i]))).sum(-1)
                for i in range(h)
            ]
        )
        scale = np.max(np.abs(ref))
        row = {"H": h, "modes": m, "L": length}
        for name, fn in fns.items():
            got = np.asarray(jax.jit(fn)(log_lam, w), np.complex128)
            row[f"{name}_error_vs_float64"] = float(np.max(np.abs(got - ref)) / scale)
        for name, (med, _) in timed.items():
            row[f"{name}_s"] = med
        for part in ("forward", "forward_backward"):
            row[f"{part}_direct_over_factored"] = (
                row[f"direct_{part}_s"] / row[f"factored_{part}_s"]
            )
        print(row)
        rows.append(row)

    record = {
        "benchmark": "Vandermonde kernel: factored powers (spectrax) against one exponential "
        "per power, complex64, jitted",
        **provenance(),
        "eigenvalues": "S4D-Lin, -1/2 + i pi n, dt log-uniform in [1e-3, 1e-1] per channel",
        "ratio_meaning": "time of the direct form / time of the factored (> 1: factored faster)",
        "rows": rows,
    }
    out = write_record(record, args.out or record_path(__file__, "vandermonde"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
