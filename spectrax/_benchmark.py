"""Timing helpers shared by the benchmark scripts in ``scripts/``."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

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


def provenance() -> dict:
    """Where and when a benchmark ran, the same keys in every record the scripts write:
    ``device`` (the first device's kind), ``platform`` (cpu, gpu, tpu), ``num_devices``,
    ``host`` (machine architecture), ``cpu_count``, ``python``, ``jax``, ``jaxlib``,
    ``spectrax`` (versions) and ``date`` (UTC, ISO 8601)."""
    from spectrax import __version__

    dev = jax.devices()[0]
    return {
        "device": str(dev.device_kind),
        "platform": dev.platform,
        "num_devices": jax.device_count(),
        "host": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "spectrax": __version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
