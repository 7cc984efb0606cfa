"""Transform-Once vs FNO on the same Burgers data, the same optimizer and the same step budget.

Poli et al. (2022), "Transform Once: Efficient Operator Learning in Frequency Domain"
(``spectrax.models.TransformOnce``: one rfft, every layer on the kept modes, one inverse) against
Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations"
(``spectrax.models.FNO``: an FFT pair per layer). Both learn ``u(., 0) -> u(., 1)`` for Burgers
(``configs/burgers_fno.py``, nu = 0.1) with the same width, modes and number of layers, trained
by ``spectrax.train`` with the config's AdamW schedule for ``--steps`` steps each.

Seven models: the FNO, and T1 with each transform (``"rfft"``, and the paper's ``"dct"``
keeping ``2 * modes`` cosines: about the band of ``modes`` Fourier frequencies, and about the
same parameter count with real weights) in three variants: on the raw spectrum with the
per-mode init (``init="per_mode"``), with the paper's variance-preserving init
(``init="variance_preserving"`` at the training resolution), and with the spectrum
standardised per mode by the training data (``in_scale`` / ``out_scale`` from
``spectral_scale``).

Writes ``benchmarks/t1-vs-fno-<platform>.json``: test relative L2, parameter counts (real
scalars; a complex weight counts two) and the median wall time of one jitted train step
(forward, backward, optimizer update) for each model, and the error floor of truncating the
test targets to the kept modes (T1's output holds only those).

    python scripts/bench_t1_vs_fno.py
    python scripts/bench_t1_vs_fno.py --steps 50 --num-train 64 --num-test 16
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from spectrax._benchmark import median_time, provenance, record_path, write_record
from spectrax.models import TransformOnce, spectral_scale
from spectrax.train import (
    init_opt_state,
    load_config,
    make_optimizer,
    make_train_step,
    train,
)
from spectrax.train._optim import param_labels


def num_params(model) -> int:
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(x.size * (2 if jnp.iscomplexobj(x) else 1) for x in leaves))


def band_limit_floor(u: np.ndarray, modes: int) -> float:
    """Mean relative L2 error of the test targets truncated to their first ``modes`` Fourier
    modes: the best a model whose output holds only those modes (T1) can do."""
    u = np.asarray(u, np.float64)
    c = np.fft.rfft(u, axis=-1)
    c[..., modes:] = 0
    v = np.fft.irfft(c, n=u.shape[-1], axis=-1)
    return float(np.mean(np.linalg.norm(v - u, axis=-1) / np.linalg.norm(u, axis=-1)))


def step_seconds(config, repeats: int) -> float:
    """Median time of the run's own jitted train step on one fixed batch."""
    task = config.task.build()
    model = task.init_model(jax.random.key(config.seed))
    labels = param_labels(eqx.filter(model, eqx.is_inexact_array), task)
    optimizer = make_optimizer(config, labels)
    state = init_opt_state(optimizer, model)
    step = make_train_step(task.loss, optimizer)
    batch = jax.tree.map(jnp.asarray, task.get_batch(np.arange(config.loop.batch_size)))
    return median_time(step, model, state, batch, repeats=repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-train", type=int, default=512)
    p.add_argument("--num-test", type=int, default=128)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--modes", type=int, default=16)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--repeats", type=int, default=30, help="timed train steps per model")
    p.add_argument("--workdir", default="runs/bench_t1_vs_fno")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/...)")
    args = p.parse_args()

    overrides = [
        f"task.num_train={args.num_train}",
        f"task.num_test={args.num_test}",
        f"task.resolution={args.resolution}",
        f"task.width={args.width}",
        f"task.modes={args.modes}",
        f"task.num_layers={args.num_layers}",
        f"loop.num_steps={args.steps}",
        f"loop.batch_size={args.batch_size}",
        f"loop.eval_every={args.steps}",
        f"checkpoint.every={args.steps}",
        f"optim.learning_rate={args.learning_rate}",
        "output.progress=false",
    ]
    fno_config = load_config("burgers_fno", overrides)

    @dataclasses.dataclass(frozen=True)
    class BurgersT1(type(fno_config.task)):
        """The Burgers task of ``configs/burgers_fno.py`` with a Transform-Once model, its
        spectrum standardised per mode by the training data (``spectral_scale``) or not, and
        initialised per mode or variance-preserving (``init``)."""

        standardize: bool = False
        init: str = "per_mode"
        transform: str = "rfft"

        def build(self):
            task = super().build()
            modes = 2 * self.modes if self.transform == "dct" else self.modes
            scales = {"transform": self.transform}
            if self.init == "variance_preserving":
                scales |= {"init": self.init, "resolution": self.resolution}
            if self.standardize:
                x, y = task.train
                scales |= {
                    "in_scale": spectral_scale(x[:, None], modes, transform=self.transform),
                    "out_scale": spectral_scale(y[:, None], modes, transform=self.transform),
                }
            return dataclasses.replace(
                task,
                make_model=lambda key: TransformOnce(
                    1, 1, 1, self.width, modes, self.num_layers, **scales, key=key
                ),
            )

    fields = dataclasses.asdict(fno_config.task)
    runs = [("fno", fno_config)]
    variants = (
        ("t1", False, "per_mode", "rfft"),
        ("t1_variance_preserving", False, "variance_preserving", "rfft"),
        ("t1_standardized", True, "per_mode", "rfft"),
        ("t1_dct", False, "per_mode", "dct"),
        ("t1_dct_variance_preserving", False, "variance_preserving", "dct"),
        ("t1_dct_standardized", True, "per_mode", "dct"),
    )
    for name, standardize, init, transform in variants:
        task = BurgersT1(**fields, standardize=standardize, init=init, transform=transform)
        runs.append((name, dataclasses.replace(fno_config, name=f"burgers_{name}", task=task)))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    models = {}
    for name, config in runs:
        start = time.perf_counter()
        result = train(config, workdir=pathlib.Path(args.workdir) / stamp / name)
        seconds = time.perf_counter() - start
        task = config.task
        variant = {}
        if isinstance(task, BurgersT1):
            variant = {
                "transform": task.transform,
                "modes": 2 * task.modes if task.transform == "dct" else task.modes,
                "init": task.init,
                "standardized": task.standardize,
            }
        models[name] = {
            "model": type(result.model).__name__,
            **variant,
            "num_params": num_params(result.model),
            "train_step_seconds_median": step_seconds(config, args.repeats),
            "train_seconds_including_compile_and_eval": round(seconds, 1),
            "test_rel_l2": float(result.metrics["test_error"]),
            "test_rel_l2_max": float(result.metrics["test_rel_l2_max"]),
            "steps": result.step,
            "stopped": result.stopped,
        }
    record = {
        "benchmark": "Transform-Once vs FNO-1d on Burgers (nu=0.1), same data and step budget",
        **provenance(),
        "data": {
            "num_train": args.num_train,
            "num_test": args.num_test,
            "resolution": args.resolution,
            "nu": fno_config.task.nu,
        },
        "model_sizes": {"width": args.width, "modes": args.modes, "num_layers": args.num_layers},
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "schedule": (
            f"AdamW, {fno_config.optim.warmup_steps} warmup steps, cosine decay, weight decay "
            f"{fno_config.optim.weight_decay}, clip {fno_config.optim.clip_norm}"
        ),
        "timing": f"median of {args.repeats} jitted train steps at batch {args.batch_size}",
        "band_limit_floor_rel_l2": band_limit_floor(fno_config.task.build().test[1], args.modes),
        "models": models,
    }
    write_record(record, args.out or record_path(__file__, "t1-vs-fno"))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
