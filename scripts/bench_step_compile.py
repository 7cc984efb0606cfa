"""Compile time, step time and memory of the training step's NaN guard, grouped against per leaf.

``make_train_step`` checks that the new parameters and the new optimizer state are finite
before it applies them. It stacks leaves of one shape and dtype in groups of at most
``_FINITE_GROUP`` elements and reduces each group once (``spectrax.train._step._all_finite``);
before, it reduced every leaf on its own, and XLA's compile time grew faster than the number
of leaves. For each case
this script builds the step as ``spectrax train`` does (the config's task, model, optimizer
groups and NaN guard) and measures, side by side in one run on one device:

- ``lower_s`` and ``compile_s``: tracing + lowering, and XLA's compile, of the step (median
  of ``--compile-repeats`` new steps, the two variants in alternating order);
- ``step_s``: the compiled step's median run time (the two variants alternate);
- ``temp_bytes``: XLA's temporary buffers of the compiled step.

``per_leaf`` is the same step with ``_all_finite`` replaced by one reduction per leaf (the
gradient check the step dropped, which the global norm's check covers, is not added back).
Writes ``benchmarks/step-compile-<device>.json``. Usage::

    python scripts/bench_step_compile.py                     # every case
    python scripts/bench_step_compile.py --cases mlp40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectrax._benchmark import provenance, record_path, time_interleaved, write_record
from spectrax.train import _loop, _step, batch_sharding, init_opt_state, load_config

# name -> (config, overrides); "mlp<depth>" cases are a plain MLP under Adam (below)
CASES = {
    "burgers_fno": ("burgers_fno", []),
    "s4d_recall": ("s4d_recall", []),
    "s4d_recall_s5": ("s4d_recall", ["task.layer=s5"]),
    "s4d_recall_hyena": ("s4d_recall", ["task.layer=hyena"]),
    "mlp40": None,
}


def _per_leaf_all_finite(tree):
    """The guard's check before it was grouped: one isfinite reduction per leaf."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if eqx.is_inexact_array(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _config_case(name: str, overrides: list[str]):
    """Step, model, optimizer state and one batch as ``train`` builds them (one device)."""
    config = load_config(name, ["loop.eval_every=0", *overrides])
    mesh, task, model, optimizer, opt_state, rng = _loop._setup(config, jax.devices()[:1])
    sharding = batch_sharding(mesh)
    idx = np.arange(config.loop.batch_size)
    batch = _loop._global_batch(
        task, idx, sharding, _loop.batch_rows(sharding, config.loop.batch_size), rng, 1
    )
    loss, limit = task.loss, config.loop.max_nonfinite
    return (lambda: _step.make_train_step(loss, optimizer, max_nonfinite=limit)), (
        model,
        opt_state,
        batch,
    )


def _mlp_case(depth: int, width: int = 64, batch: int = 32):
    keys = jax.random.split(jax.random.key(0), depth)
    model = [eqx.nn.Linear(width, width, key=k) for k in keys]

    def loss(m, b):
        h = b
        for layer in m:
            h = jnp.tanh(jax.vmap(layer)(h))
        return jnp.mean(h**2), {}

    optimizer = optax.adam(1e-3)
    x = jax.random.normal(jax.random.key(1), (batch, width))
    return (lambda: _step.make_train_step(loss, optimizer)), (
        model,
        init_opt_state(optimizer, model),
        x,
    )


def bench_case(name: str, repeats: int, compile_repeats: int) -> dict:
    spec = CASES[name]
    make, args = _config_case(*spec) if spec is not None else _mlp_case(int(name[3:]))
    model = args[0]
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    row = {"case": name, "param_leaves": len(leaves), "params": sum(x.size for x in leaves)}
    if spec is not None:
        row["config"], row["overrides"] = spec
    compiled, times = {}, {"grouped": [], "per_leaf": []}
    grouped = _step._all_finite
    checks = {"grouped": grouped, "per_leaf": _per_leaf_all_finite}
    # each repeat traces, lowers and compiles a new step (a new program: no cache hit), the two
    # variants in alternating order so that neither always pays the process's first compile
    for r in range(compile_repeats):
        for variant in ("grouped", "per_leaf")[:: 1 if r % 2 == 0 else -1]:
            _step._all_finite = checks[variant]
            try:
                t0 = time.perf_counter()
                lowered = make().lower(*args)
                t1 = time.perf_counter()
                compiled[variant] = lowered.compile()
                t2 = time.perf_counter()
            finally:
                _step._all_finite = grouped
            times[variant].append((t1 - t0, t2 - t1))
            if r == 0:
                memory = lowered.lowered.compile().memory_analysis()
                row[f"{variant}_temp_bytes"] = int(memory.temp_size_in_bytes)
    for variant, ts in times.items():
        row[f"{variant}_lower_s"] = statistics.median(t for t, _ in ts)
        row[f"{variant}_compile_s"] = statistics.median(c for _, c in ts)
        row[f"{variant}_compile_all_s"] = [c for _, c in ts]
    runs = {v: (lambda c=c: jax.block_until_ready(c(*args))) for v, c in compiled.items()}
    for variant, (median, _) in time_interleaved(runs, repeats).items():
        row[f"{variant}_step_s"] = median
    row["compile_per_leaf_over_grouped"] = row["per_leaf_compile_s"] / row["grouped_compile_s"]
    row["step_per_leaf_over_grouped"] = row["per_leaf_step_s"] / row["grouped_step_s"]
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--compile-repeats", type=int, default=3)
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for name in args.cases:
        row = bench_case(name, args.repeats, args.compile_repeats)
        logging.info(json.dumps(row))
        rows.append(row)
    on_cpu = jax.default_backend() == "cpu"
    result = {
        "benchmark": "train step NaN guard: grouped finite checks against one per leaf",
        **provenance(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "note": (
            "XLA's default flags unless xla_flags says otherwise; a 2-core machine that other "
            "jobs may share: ratios within one row are the meaningful part."
            if on_cpu
            else "accelerator run"
        ),
        "rows": rows,
    }
    out = write_record(result, args.out or record_path(__file__, "step-compile"))
    logging.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
