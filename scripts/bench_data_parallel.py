"""Data-parallel training step: per-shard (``make_train_step(..., mesh=mesh)``) against XLA's own
partitioning of the same step (``mesh=None``), on ``--devices`` devices.

XLA's SPMD partitioner replicates an FFT whose batch axes are sharded (openxla/xla#24): every
device all-gathers the global batch and transforms all of it. ``make_train_step`` given the mesh
computes the loss and gradients per shard under ``jax.shard_map`` (the batch split over ``data``,
and over ``model`` too where it divides over every device) and averages them; with FSDP
parameters (``param_sharding="fsdp"``) each gradient split over ``model`` is reduce-scattered
there, so each device receives only its shard of the mean.
For each case this script builds the step as ``spectrax train`` does (the config's task, model,
optimizer and NaN guard; ``mesh.model`` each of ``--models``, 1 with replicated parameters,
more with FSDP; ``mesh.data`` the rest of the devices) and records,
side by side in one run:

- ``fft_batch``: the leading extents of the compiled step's FFTs (the examples each device
  transforms; the global batch when they are replicated);
- ``all_gathers``: the all-gather ops in the compiled step;
- ``all_reduce_bytes``, ``reduce_scatter_bytes``: what those collectives leave on each device
  (the results' bytes);
- ``per_shard_allreduce`` (FSDP rows): the per-shard step that all-reduces the gradients whole
  (``param_sharding="replicated"`` over FSDP parameters, the step before the reduce-scatter);
- ``step_s``: the compiled step's median run time (the variants alternate);
- ``step_xla_over_per_shard``, ``step_allreduce_over_per_shard``: the ratios of those times;
- ``loss_rel_diff``: the two steps' losses against each other (float rounding);
- ``xla_error``: where XLA's own partitioning fails to run (an S4D step with FSDP parameters on
  CPU: a layout RET_CHECK in XLA's FFT).

On a CPU the devices are ``--xla_force_host_platform_device_count`` fakes sharing its cores (set
here before JAX starts): the FFT work and collectives are what changes, not the parallelism.
Writes ``benchmarks/data-parallel-<device>.json``. Usage::

    python scripts/bench_data_parallel.py                 # 8 devices, both cases
    python scripts/bench_data_parallel.py --devices 4 --models 2
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys

import numpy as np


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=8, help="devices (fake ones on a CPU)")
    p.add_argument(
        "--models",
        type=int,
        nargs="+",
        default=[1, 2],
        help="FSDP ways (mesh.model); 1: replicated",
    )
    p.add_argument("--cases", nargs="+", default=["burgers_fno", "s4d_recall"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=pathlib.Path, default=None)
    return p.parse_args(argv)


def bench_case(name: str, model_ways: int, args) -> dict:
    import jax

    from spectrax._benchmark import time_interleaved
    from spectrax.train import _loop, _step, batch_sharding, load_config

    data = args.devices // model_ways
    over = [
        "loop.eval_every=0",
        f"loop.batch_size={args.batch_size}",
        f"mesh.data={data}",
        f"mesh.model={model_ways}",
        f"mesh.params={'fsdp' if model_ways > 1 else 'replicated'}",
    ]
    config = load_config(name, over)
    devices = jax.devices()[: args.devices]
    mesh, task, model, optimizer, opt_state, rng = _loop._setup(config, devices)
    sharding = batch_sharding(mesh)
    idx = np.arange(config.loop.batch_size)
    rows = _loop.batch_rows(sharding, config.loop.batch_size)
    batch = _loop._global_batch(task, idx, sharding, rows, rng, 1)
    limit = config.loop.max_nonfinite
    row = {"case": name, "overrides": over, "devices": len(devices)}
    compiled, losses = {}, {}
    variants = [("per_shard", mesh, config.mesh.params), ("xla", None, "replicated")]
    if config.mesh.params == "fsdp":  # the per-shard step as it was: gradients all-reduced whole
        variants.insert(1, ("per_shard_allreduce", mesh, "replicated"))
    for variant, step_mesh, params in variants:
        step = _step.make_train_step(
            task.loss, optimizer, max_nonfinite=limit, mesh=step_mesh, param_sharding=params
        )
        lowered = step.lower(model, opt_state, batch)
        text = lowered.lowered.compile().as_text()  # XLA's program, partitioned
        ffts = re.findall(r"= \S+?\[(\d+)[,\]]\S* fft\(", text)
        row[f"{variant}_fft_batch"] = sorted({int(b) for b in ffts})
        row[f"{variant}_all_gathers"] = len(re.findall(r"= \S+ all-gather(?:-start)?\(", text))
        for op in ("all-reduce", "reduce-scatter"):
            row[f"{variant}_{op.replace('-', '_')}_bytes"] = _collective_bytes(text, op)
        try:
            fn = lowered.compile()
            losses[variant] = float(fn(model, opt_state, batch)[2]["loss"])
        except jax.errors.JaxRuntimeError as err:  # XLA:CPU's FFT layout RET_CHECK under FSDP
            row[f"{variant}_error"] = str(err).splitlines()[0][:200]
            continue
        compiled[variant] = fn
    runs = {
        v: (lambda c=c: jax.block_until_ready(c(model, opt_state, batch)))
        for v, c in compiled.items()
    }
    for variant, (median, _) in time_interleaved(runs, args.repeats).items():
        row[f"{variant}_step_s"] = median
    if "xla" in compiled:
        row["step_xla_over_per_shard"] = row["xla_step_s"] / row["per_shard_step_s"]
        row["loss_rel_diff"] = abs(losses["per_shard"] - losses["xla"]) / abs(losses["xla"])
    if "per_shard_allreduce" in compiled:
        row["step_allreduce_over_per_shard"] = (
            row["per_shard_allreduce_step_s"] / row["per_shard_step_s"]
        )
    return row


# bytes per element of the HLO types a step's collectives carry
_HLO_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f32": 4}
_HLO_BYTES.update({"s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16})


def _collective_bytes(text: str, op: str) -> int:
    """Bytes of the results of the ``op`` collectives (``all-reduce``, ``reduce-scatter``) in
    a compiled HLO module's text: per device, what each of them leaves there."""
    total = 0
    for line in text.splitlines():
        if not re.search(rf" {op}(?:-start)?\(", line) or "=" not in line:
            continue
        result = line.split("=", 1)[1].split(f" {op}", 1)[0]
        for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", result):
            total += int(np.prod([int(d) for d in dims.split(",") if d])) * _HLO_BYTES[dtype]
    return total


def main(argv=None) -> int:
    args = _parse(argv)
    if "jax" not in sys.modules:  # fake CPU devices must be asked for before JAX starts
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            count = f"--xla_force_host_platform_device_count={args.devices}"
            os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()
    import json
    import logging

    import jax

    from spectrax._benchmark import provenance, record_path, write_record

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if jax.device_count() < args.devices:
        raise SystemExit(f"--devices {args.devices}: only {jax.device_count()} devices here")
    rows = []
    for ways in args.models:
        for name in args.cases:
            row = bench_case(name, ways, args)
            logging.info(json.dumps(row))
            rows.append(row)
    on_cpu = jax.default_backend() == "cpu"
    result = {
        "benchmark": "data-parallel train step: per data shard (shard_map) against XLA's own "
        "partitioning",
        **provenance(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "note": (
            "fake CPU devices sharing this machine's cores: the FFT work each device does and "
            "the collectives change, not the parallelism; ratios within one row are the "
            "meaningful part."
            if on_cpu
            else "accelerator run"
        ),
        "rows": rows,
    }
    out = write_record(result, args.out or record_path(__file__, "data-parallel"))
    logging.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
