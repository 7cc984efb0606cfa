"""Timing helpers and the record writer shared by the benchmark scripts in ``scripts/``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib


def median_time(fn: Callable, *args, repeats: int) -> float:
    """Median wall time in seconds of ``fn(*args)`` over ``repeats`` calls, after one
    compile-and-warm-up call; every call is waited on with ``jax.block_until_ready``."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes/s of a read+write elementwise pass over an ``nbytes`` float32 array: the
    bandwidth that byte floors are computed from, measured in the same run."""
    x = jnp.ones((nbytes // 4,), jnp.float32)
    return 2 * nbytes / median_time(jax.jit(lambda x: x + 1.0), x, repeats=repeats)


def time_interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict:
    """``{name: (median seconds, all times)}`` of each zero-argument ``run`` (which must wait for
    its result), after two compile / warm-up calls each; the runs alternate within every repeat
    so that load from other processes on a shared machine hits every column alike."""
    for run in runs.values():
        run()
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), t) for name, t in times.items()}


def _cpu() -> dict:
    """The host CPU's model name and vector extensions (Linux ``/proc/cpuinfo``; empty
    elsewhere): XLA:CPU's kernels, so its rounding, follow them, and a training run's final
    error moves with its rounding (the default Burgers run: 0.0029 on one host, 0.0035 on an
    AMD EPYC with AVX2 and no AVX-512, same code and data)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    simd = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", ""), "cpu_simd": [f for f in simd if f in flags]}


def provenance() -> dict:
    """Where and when a benchmark ran, the same keys in every record the scripts write:
    ``device`` (the first device's kind), ``platform`` (cpu, gpu, tpu), ``num_devices``,
    ``host`` (machine architecture), ``cpu_count``, ``cpu_model`` and ``cpu_simd`` (on Linux),
    ``python``, ``jax``, ``jaxlib``, ``spectrax`` (versions) and ``date`` (UTC, ISO 8601)."""
    from spectrax import __version__

    dev = jax.devices()[0]
    return {
        "device": str(dev.device_kind),
        "platform": dev.platform,
        "num_devices": jax.device_count(),
        "host": platform.machine(),
        "cpu_count": os.cpu_count(),
        **_cpu(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "spectrax": __version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def record_path(script: str | os.PathLike, stem: str, suffix: str | None = None) -> Path:
    """Where a benchmark script writes its record by default: ``benchmarks/<stem>-<suffix>.json``
    of the checkout whose ``scripts/`` folder holds ``script`` (pass ``__file__``), whatever the
    working directory (``spectrax bench`` runs the scripts from anywhere). ``suffix`` defaults to
    ``cpu`` on a CPU, else the platform (``gpu``, ``tpu``)."""
    if suffix is None:
        suffix = jax.devices()[0].platform
    return Path(script).resolve().parents[1] / "benchmarks" / f"{stem}-{suffix}.json"


def write_record(record: dict, out: str | os.PathLike) -> Path:
    """Write ``record`` as indented JSON to ``out`` (its folder made if missing) and return the
    path. The file is replaced in one step: a run killed during the write leaves the previous
    record whole, never a truncated one."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    return out
