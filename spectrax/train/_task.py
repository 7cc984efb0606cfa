"""What the training loop needs from a "model + data" task, and the deterministic batch order.

A task owns its data and its model family; the loop owns optimisation, devices, checkpoints and
outputs. Any object with these methods trains: see ``configs/burgers_fno.py`` for a PDE operator
task and ``tests/train/toy_config.py`` for a minimal one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from spectrax._checks import check_positive_int

__all__ = ["Task", "batch_indices"]


@runtime_checkable
class Task(Protocol):
    """A model family, its data and its loss.

    Methods:
        init_model(key): a fresh model (an Equinox module) from a PRNG key. A ValueError or
            TypeError raised here (the ready-made tasks trace the loss on one example, so a
            model that does not fit the data raises) is reported as a config error (exit 2)
            before the run directory is written.
        num_train(): number of training examples.
        get_batch(indices): the training examples at ``indices`` as a pytree of NumPy arrays
            with a leading batch axis, row ``i`` the example ``indices[i]`` (the loop shards
            that axis over the ``data`` mesh axis). Over several processes each calls it once
            a step with the subset of the step's indices its devices hold, in batch order, so
            an example must not depend on the others asked for with it.
        loss(model, batch): ``(scalar loss, dict of scalar metrics)`` for a batch; traced once
            inside the jitted step.
        evaluate(model): test metrics as Python floats; must contain ``"test_error"``, the
            number compared with ``Config.max_test_error``.
        plots(model, outdir): task-specific figures written to ``outdir``; returns their paths.
        param_labels(params): optimizer group per parameter leaf (``"default"`` or ``"ssm"``),
            or ``None`` for the library's labelling (``spectrax.nn.ssm_param_labels``: the
            Λ, B and log_dt of SSM layers and the parameters of Hyena's implicit filters in
            ``"ssm"``, everything else ``"default"``). Either way the arrays a module holds
            fixed (``spectrax.nn.frozen_param_mask``) are then labelled ``"frozen"``.
    """

    def init_model(self, key: Any) -> Any: ...

    def num_train(self) -> int: ...

    def get_batch(self, indices: np.ndarray) -> Any: ...

    def loss(self, model: Any, batch: Any) -> tuple[Any, dict[str, Any]]: ...

    def evaluate(self, model: Any) -> dict[str, float]: ...

    def plots(self, model: Any, outdir: Path) -> list[Path]: ...

    def param_labels(self, params: Any) -> Any: ...


def batch_indices(seed: int, step: int, num_examples: int, batch_size: int) -> np.ndarray:
    """The training examples of step ``step``: a pure function of ``(seed, step)``.

    Epoch ``e = (step * batch_size) // num_examples`` walks a permutation drawn from
    ``(seed, e)``; a batch that crosses an epoch boundary continues into the next permutation.
    No iterator state exists beyond ``step``, so a resumed run draws the same batches as an
    uninterrupted one.

    Raises:
        ValueError: a negative ``seed`` or ``step``, ``num_examples`` or ``batch_size`` below 1
            (a batch size of 0 gave empty batches, a negative step NumPy's "expected
            non-negative integer"), or ``batch_size > num_examples``.
    """
    seed = check_positive_int("seed", seed, minimum=0)
    step = check_positive_int("step", step, minimum=0)
    num_examples = check_positive_int("num_examples", num_examples)
    batch_size = check_positive_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(
            f"`loop.batch_size` ({batch_size}) exceeds the number of training examples "
            f"({num_examples})."
        )
    start = step * batch_size
    out = np.empty(batch_size, dtype=np.int64)
    filled = 0
    while filled < batch_size:
        epoch, offset = divmod(start + filled, num_examples)
        perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
        take = min(batch_size - filled, num_examples - offset)
        out[filled : filled + take] = perm[offset : offset + take]
        filled += take
    return out
