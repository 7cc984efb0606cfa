"""Eager calls of models: one compiled program per call against JAX's op-by-op dispatch.

Called outside ``jax.jit`` (a notebook, a script, an eager ``jax.vmap``), a model's forward pass
would dispatch its primitives one at a time, each compiled on its own the first time it meets a
shape. spectrax runs the eager ``__call__`` of its models and layers, and their ``step``, through
``eqx.filter_jit`` (``spectrax._compile.compiled_call``). For each case this script measures,
in fresh processes (a process keeps what it compiled, so each measurement starts from none):

- ``build_s``: constructing the model (the same code in both variants: a check that the
  processes are alike; mostly XLA compiling the random draws of the parameters);
- ``first_s``: the first call (tracing, compiling and running), what a user waits for;
- ``next_s``: the median of the next ``--calls`` calls with the same shapes (dispatch only);
- for ``*_decode`` cases one call is a token-by-token decode of ``--tokens`` steps of
  ``model.step`` from ``init_state()`` (each step a call);

``compiled`` is spectrax as shipped, ``op_by_op`` the same code with ``compiled_call`` replaced
by a plain call (its input checks kept), i.e. what the methods did before. The two run in
alternating order, ``--repeats`` processes each, and the medians are recorded.
Writes ``benchmarks/eager-<device>.json``. Usage::

    python scripts/bench_eager.py                         # every case, 3 processes each
    python scripts/bench_eager.py --cases fno1d --repeats 1
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import statistics
import subprocess
import sys
import time

BATCH = 8
# name -> what the case builds (documented in the record)
CASES = {
    "fno1d": "FNO(1, 1, 1, width=32, modes=16, num_layers=4), jax.vmap over (8, 1, 256)",
    "fno2d": "FNO(2, 1, 1, width=16, modes=8, num_layers=4), jax.vmap over (8, 1, 32, 32)",
    "s5_model": "SSMSequenceModel(1, 4, d_model=32, n_layers=2, layer='s5', state_size=32), "
    "jax.vmap over (8, 256, 1)",
    "s4d_model": "SSMSequenceModel(1, 4, d_model=32, n_layers=2, layer='s4d', state_size=32), "
    "jax.vmap over (8, 256, 1)",
    "s4d_decode": "SSMSequenceModel(1, 4, d_model=32, n_layers=2, layer='s4d', state_size=32, "
    "pooling='none'): init_state() then --tokens calls of step",
}


def _plain_call(method=None, *, precheck=None):
    """``compiled_call`` without the compile: the checks, then the method, dispatched op by op."""
    import functools

    if method is None:
        return functools.partial(_plain_call, precheck=precheck)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if precheck is not None:
            precheck(self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return call


def _build(case: str, tokens: int):
    """``(run, args)``: ``run(*args)`` is one eager call of the case, waited on."""
    import jax
    import jax.numpy as jnp

    from spectrax.models import FNO, SSMSequenceModel

    key = jax.random.key(0)
    if case.startswith("fno"):
        d = int(case[3])
        width, modes, size = (32, 16, 256) if d == 1 else (16, 8, 32)
        model = FNO(d, 1, 1, width=width, modes=modes, num_layers=4, key=key)
        x = jax.random.normal(jax.random.key(1), (BATCH, 1) + (size,) * d)
        return (lambda m, x: jax.block_until_ready(jax.vmap(m)(x))), (model, x)
    layer = case.split("_")[0]
    if case.endswith("_model"):
        model = SSMSequenceModel(1, 4, d_model=32, n_layers=2, layer=layer, state_size=32, key=key)
        x = jax.random.normal(jax.random.key(1), (BATCH, 256, 1))
        return (lambda m, x: jax.block_until_ready(jax.vmap(m)(x))), (model, x)
    model = SSMSequenceModel(
        1, 4, d_model=32, n_layers=2, layer=layer, state_size=32, pooling="none", key=key
    )
    xs = jax.random.normal(jax.random.key(1), (tokens, 1))

    def decode(m, xs):
        state, ys = m.init_state(), []
        for t in range(xs.shape[0]):
            y, state = m.step(xs[t], state)
            ys.append(y)
        return jax.block_until_ready(jnp.stack(ys))

    return decode, (model, xs)


def child(case: str, variant: str, calls: int, tokens: int) -> dict:
    """One measurement in this (fresh) process."""
    import spectrax._compile

    if variant == "op_by_op":
        # before spectrax.nn / spectrax.models are imported: their methods take this one
        spectrax._compile.compiled_call = _plain_call
    import spectrax.models  # noqa: F401  (imported here: build_s is the construction alone)

    t0 = time.perf_counter()
    run, args = _build(case, tokens)
    t1 = time.perf_counter()
    run(*args)
    t2 = time.perf_counter()
    times = []
    for _ in range(calls):
        s = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - s)
    return {"build_s": t1 - t0, "first_s": t2 - t1, "next_s": statistics.median(times)}


def _spawn(case: str, variant: str, calls: int, tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--child", case, variant]
    cmd += ["--calls", str(calls), "--tokens", str(tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{case} / {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per case and variant")
    p.add_argument("--calls", type=int, default=5, help="calls after the first, per process")
    p.add_argument("--tokens", type=int, default=32, help="steps per decode (*_decode cases)")
    p.add_argument("--child", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.calls, args.tokens)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import jax

    from spectrax._benchmark import provenance, record_path, write_record

    rows = []
    for case in args.cases:
        runs = {"compiled": [], "op_by_op": []}
        for r in range(args.repeats):
            for variant in ("compiled", "op_by_op")[:: 1 if r % 2 == 0 else -1]:
                runs[variant].append(_spawn(case, variant, args.calls, args.tokens))
        row = {"case": case, "what": CASES[case]}
        for variant, ms in runs.items():
            for k in ("build_s", "first_s", "next_s"):
                row[f"{variant}_{k}"] = statistics.median(m[k] for m in ms)
            row[f"{variant}_first_all_s"] = [m["first_s"] for m in ms]
        row["first_op_by_op_over_compiled"] = row["op_by_op_first_s"] / row["compiled_first_s"]
        row["next_op_by_op_over_compiled"] = row["op_by_op_next_s"] / row["compiled_next_s"]
        logging.info(json.dumps(row))
        rows.append(row)
    on_cpu = jax.default_backend() == "cpu"
    result = {
        "benchmark": "eager model calls: one compiled program (compiled_call) vs op-by-op dispatch",
        **provenance(),
        "settings": {
            "batch": BATCH,
            "repeats": args.repeats,
            "calls": args.calls,
            "tokens": args.tokens,
        },
        "note": (
            "each measurement in a fresh process, the variants alternating; XLA's default "
            "flags; no persistent compilation cache"
            + ("; CPU sizes on a 2-core machine that other jobs may share" if on_cpu else "")
        ),
        "rows": rows,
    }
    out = args.out or record_path(__file__, "eager")
    logging.info("wrote %s", write_record(result, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
