"""A tiny config for the training-system tests: a circular convolution learned from 1-D fields.

The target ``u = k * a`` (periodic convolution with a fixed 3-tap kernel) is exactly
representable by the model, a circular ``Conv1d(1 -> 1, 3 taps)``, so the test error can reach
float round-off; ``hidden=k`` puts ``k`` channels between two circular convolutions
(parameters that FSDP splits over a model axis dividing ``k``). ``nan_examples`` poisons those
training inputs with NaN; ``nan_after`` makes every batch after the first ``nan_after`` ones NaN
(guard tests); ``sigterm_after`` sends this process SIGTERM while fetching that batch (only
process ``sigterm_process`` of several, if set), ``sigterm_in_eval`` during the first periodic
evaluation (signal tests). With ``SPECTRAX_TOY_LOG_BATCHES=1`` in the environment (not a config
value: a run logged so resumes a checkpoint of one that was not), every ``get_batch`` call prints
the indices it was asked for (which rows each of several processes loads).
"""

from __future__ import annotations

import dataclasses
import os
import signal

import equinox as eqx
import jax
import numpy as np

from spectrax.train import Config, FieldRegressionTask, LoopConfig, OptimConfig, OutputConfig

VARIANTS = ("default", "smoke")


@dataclasses.dataclass(frozen=True)
class ToyTask:
    num_train: int = 64
    num_test: int = 16
    resolution: int = 16
    hidden: int = 0
    nan_examples: tuple[int, ...] = ()
    nan_after: int = -1
    sigterm_after: int = -1
    sigterm_process: int = -1
    sigterm_in_eval: bool = False

    def build(self) -> FieldRegressionTask:
        rng = np.random.default_rng(0)
        n = self.num_train + self.num_test
        a = rng.standard_normal((n, self.resolution)).astype(np.float32)
        u = (0.5 * a + 0.3 * np.roll(a, 1, axis=-1) - 0.2 * np.roll(a, -1, axis=-1)).astype(
            np.float32
        )
        a_train = a[: self.num_train].copy()
        a_train[list(self.nan_examples)] = np.nan
        task = FieldRegressionTask(
            make_model=self._model,
            train=(a_train, u[: self.num_train]),
            test=(a[self.num_train :], u[self.num_train :]),
        )
        log_batches = os.environ.get("SPECTRAX_TOY_LOG_BATCHES") == "1"
        if self.nan_after >= 0 or self.sigterm_after >= 0 or log_batches:
            get_batch, calls = task.get_batch, [0]

            def patched(indices):
                calls[0] += 1
                if log_batches:
                    print("get_batch:", *np.asarray(indices).tolist(), flush=True)
                batch = get_batch(indices)
                if 0 <= self.nan_after < calls[0]:
                    batch = {k: np.full_like(v, np.nan) for k, v in batch.items()}
                if calls[0] == self.sigterm_after and self.sigterm_process in (
                    -1,
                    jax.process_index(),
                ):
                    os.kill(os.getpid(), signal.SIGTERM)
                return batch

            task.get_batch = patched  # type: ignore[method-assign]
        if self.sigterm_in_eval:
            evaluate = task.evaluate

            def evaluate_then_signal(model):
                out = evaluate(model)
                os.kill(os.getpid(), signal.SIGTERM)
                return out

            task.evaluate = evaluate_then_signal  # type: ignore[method-assign]
        return task

    def _model(self, key):
        if not self.hidden:
            return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=key)
        k1, k2 = jax.random.split(key)
        return eqx.nn.Sequential(
            [
                eqx.nn.Conv1d(1, self.hidden, 3, padding=1, padding_mode="CIRCULAR", key=k1),
                eqx.nn.Conv1d(self.hidden, 1, 1, key=k2),
            ]
        )


def get_config(variant: str = "default") -> Config:
    steps = {"default": 60, "smoke": 10}[variant]
    return Config(
        name="toy",
        task=ToyTask(),
        seed=0,
        max_test_error=0.5,
        optim=OptimConfig(learning_rate=3e-2, warmup_steps=5),
        loop=LoopConfig(num_steps=steps, batch_size=8, log_every=5, eval_every=0, max_nonfinite=4),
        output=OutputConfig(progress=False, tensorboard=False),
    )
