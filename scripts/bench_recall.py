"""Benchmark SSM initialisations on delayed recall 256 steps back: held-out accuracy per seed.

The task of ``tests/models/test_ssm_model.py``: a signal token (one of 4 classes) sits at least
256 steps before the read-out among noise tokens (length 288; chance 0.25); one
:class:`~spectrax.models.SSMSequenceModel` block of 16 channels, ``pooling="last"``, steps in
``[1e-3, 1e-2]``, Adam with the SSM parameters at 3e-3 and the rest at 1e-2, batch 32. For each
layer / init and model seed it records the held-out accuracy (512 sequences) at the given
step counts, so the spread over seeds is visible, not one lucky run.

Writes ``benchmarks/recall-<device>.json``. Usage::

    python scripts/bench_recall.py                                  # 4 inits x 3 seeds, 400 steps
    python scripts/bench_recall.py --runs s4d:ptd s5:ptd --seeds 0 1 2 3 --steps 300 400 600
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from spectrax._benchmark import provenance, record_path, write_record
from spectrax.data import delayed_recall
from spectrax.models import SSMSequenceModel
from spectrax.nn import ssm_param_labels

LENGTH, MIN_LAG, CLASSES = 288, 256, 4
STATE = {"s4": 16, "s4d": 16, "s5": 32}
RUNS = ("s4d:legs", "s4d:ptd", "s5:hippo", "s5:ptd")


def run(layer: str, init: str | None, seed: int, checkpoints: list[int], data) -> dict:
    """Train one model; its held-out accuracy at each step count in ``checkpoints``."""
    (x_train, y_train), (x_test, y_test) = data
    kwargs = {"dt_min": 1e-3, "dt_max": 1e-2}
    if init is not None:
        kwargs["init"] = init
    model = SSMSequenceModel(
        x_train.shape[-1],
        CLASSES,
        16,
        1,
        layer=layer,
        state_size=STATE[layer],
        pooling="last",
        layer_kwargs=kwargs,
        key=jax.random.key(seed),
    )
    params = eqx.filter(model, eqx.is_array)
    labels = ssm_param_labels(params)
    opt = optax.multi_transform(
        {"ssm": optax.adam(3e-3), "default": optax.adam(1e-2)}, lambda _: labels
    )

    def loss_fn(m, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(jax.vmap(m)(x), y).mean()

    @eqx.filter_jit
    def step(m, state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(m, x, y)
        updates, state = opt.update(grads, state, eqx.filter(m, eqx.is_array))
        return eqx.apply_updates(m, updates), state, loss

    predict = eqx.filter_jit(lambda m, x: jnp.argmax(jax.vmap(m)(x), axis=-1))
    state = opt.init(params)
    accuracy = {}
    start = time.perf_counter()
    for i in range(max(checkpoints)):
        j = (32 * i) % x_train.shape[0]
        model, state, loss = step(model, state, x_train[j : j + 32], y_train[j : j + 32])
        if i + 1 in checkpoints:
            hits = (predict(model, x_test) == y_test).astype(jnp.float32)
            accuracy[str(i + 1)] = round(float(jnp.mean(hits)), 4)
    return {
        "layer": layer,
        "init": init,
        "seed": seed,
        "accuracy": accuracy,
        "final_train_loss": float(loss),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=list(RUNS), help="layer:init, e.g. s4d:ptd")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, nargs="+", default=[300, 400])
    p.add_argument("--out", type=pathlib.Path, default=None)
    p.add_argument("--note", default="", help="appended to the file's note (e.g. the commit)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = []
    for spec in args.runs:
        layer, _, init = spec.partition(":")
        if layer not in STATE:
            p.error(f"--runs: layer must be one of {sorted(STATE)}; got {spec!r}")
        runs.append((layer, init or None))
    if min(args.steps) < 1:
        p.error(f"--steps must be positive; got {args.steps}")
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count with floats
        data = (
            delayed_recall(jax.random.key(1), 2048, LENGTH, min_lag=MIN_LAG, num_classes=CLASSES),
            delayed_recall(jax.random.key(2), 512, LENGTH, min_lag=MIN_LAG, num_classes=CLASSES),
        )
        rows = []
        for layer, init in runs:
            for seed in args.seeds:
                row = run(layer, init, seed, sorted(set(args.steps)), data)
                logging.info(json.dumps(row))
                rows.append(row)
    result = {
        "benchmark": "delayed recall 256 steps back: held-out accuracy per SSM init and seed",
        **provenance(),
        "task": {
            "length": LENGTH,
            "min_lag": MIN_LAG,
            "classes": CLASSES,
            "train": 2048,
            "test": 512,
            "batch": 32,
            "d_model": 16,
            "blocks": 1,
            "state_size": STATE,
            "dt_range": [1e-3, 1e-2],
            "lr_ssm": 3e-3,
            "lr": 1e-2,
            "chance": 1.0 / CLASSES,
        },
        "note": " ".join(
            [
                "accuracy is the measure; seconds are wall time on a machine other jobs may share",
                args.note,
            ]
        ).strip(),
        "rows": rows,
    }
    out = write_record(result, args.out or record_path(__file__, "recall"))
    logging.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
