"""FNO accuracy on the paper's Burgers benchmark, trained by ``spectrax.train``.

Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations",
Table 1: FNO-1d on Burgers (nu = 0.1), 1000 train / 100 test samples at s = 1024, 16 modes,
width 64, reports a test relative L2 error of 0.0160. Data come from the project's own ETDRK4
solver (``spectrax.data.burgers_dataset``), never downloaded.

Writes ``benchmarks/fno-burgers-accuracy-<platform>.json`` with the device, versions, date,
sizes, training time and the test relative L2 error.

    python scripts/bench_fno_accuracy.py                 # the paper's sizes
    python scripts/bench_fno_accuracy.py --steps 50 --num-train 64 --num-test 16 --resolution 128
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import time

import jax

import spectrax
from spectrax.train import load_config, train

PAPER_REL_L2 = 0.0160


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-test", type=int, default=100)
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--modes", type=int, default=16)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--workdir", default="runs/bench_fno_accuracy")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/...)")
    args = p.parse_args()

    overrides = [
        f"task.num_train={args.num_train}",
        f"task.num_test={args.num_test}",
        f"task.resolution={args.resolution}",
        f"task.width={args.width}",
        f"task.modes={args.modes}",
        f"task.projection_channels={2 * args.width}",
        f"loop.num_steps={args.steps}",
        f"loop.batch_size={args.batch_size}",
        f"loop.eval_every={max(args.steps // 4, 1)}",
        f"checkpoint.every={args.steps}",
        f"optim.learning_rate={args.learning_rate}",
    ]
    config = load_config("burgers_fno", overrides)
    workdir = pathlib.Path(args.workdir) / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    start = time.perf_counter()
    result = train(config, workdir=workdir)
    seconds = time.perf_counter() - start
    dev = jax.devices()[0]
    record = {
        "benchmark": "FNO-1d on Burgers (nu=0.1), test relative L2",
        "device": str(dev.device_kind),
        "platform": dev.platform,
        "num_devices": jax.device_count(),
        "jax": jax.__version__,
        "spectrax": spectrax.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "shapes": {
            "num_train": args.num_train,
            "num_test": args.num_test,
            "resolution": args.resolution,
            "width": args.width,
            "modes": args.modes,
            "num_layers": config.task.num_layers,
        },
        "steps": result.step,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "train_seconds_including_data_and_compile": round(seconds, 1),
        "test_rel_l2": float(result.metrics["test_error"]),
        "paper_rel_l2": PAPER_REL_L2,
        "meets_paper": bool(result.metrics["test_error"] <= PAPER_REL_L2),
        "stopped": result.stopped,
    }
    out = pathlib.Path(args.out or f"benchmarks/fno-burgers-accuracy-{dev.platform}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
