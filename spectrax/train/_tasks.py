"""Ready-made tasks from arrays: an operator between 1-D periodic fields, and sequence
classification."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectrax.train._losses import relative_lp_loss
from spectrax.train._plots import plot_field_predictions

__all__ = ["FieldRegressionTask", "SequenceClassificationTask"]


@dataclasses.dataclass
class FieldRegressionTask:
    """Learn ``a -> u`` for 1-D fields sampled on ``x_j = j / X``, scored by relative L2.

    The model sees ``(1, X)`` (the input field; with ``grid_channel``, ``(2, X)`` with the grid
    coordinate ``x_j`` appended, as in Li et al., 2021, "Fourier Neural Operator for Parametric
    Partial Differential Equations", for models that do not add it themselves) and returns
    ``(1, X)``.

    Args:
        make_model: ``key -> model``.
        train: ``(a, u)`` NumPy arrays of shape ``(B, X)``.
        test: ``(a, u)`` of shape ``(B_test, X)``.
        loss_fn: ``(pred, target) -> scalar`` over batches ``(B, 1, X)`` (default: relative L2).
        grid_channel: append the grid coordinate as a second input channel (default False).
        eval_batch: test examples per jitted evaluation call.
    """

    make_model: Callable[[Any], Any]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    loss_fn: Callable[[Any, Any], Any] = relative_lp_loss
    grid_channel: bool = False
    eval_batch: int = 256

    def __post_init__(self) -> None:
        for name, (a, u) in (("train", self.train), ("test", self.test)):
            if a.shape != u.shape or a.ndim != 2:
                raise ValueError(
                    f"`{name}` must be two arrays of shape (B, X); got {a.shape} and {u.shape}."
                )
        n = self.train[0].shape[-1]
        self.grid = np.arange(n, dtype=self.train[0].dtype) / n

    def init_model(self, key):
        return self.make_model(key)

    def num_train(self) -> int:
        return int(self.train[0].shape[0])

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"a": self.train[0][indices], "u": self.train[1][indices]}

    def _inputs(self, a):
        if not self.grid_channel:
            return a[:, None]
        grid = jnp.broadcast_to(jnp.asarray(self.grid, a.dtype)[None], a.shape)
        return jnp.stack([a, grid], axis=1)

    def predict(self, model, a):
        """Predictions ``(B, X)`` for inputs ``(B, X)``."""
        return jax.vmap(model)(self._inputs(a))[:, 0]

    def loss(self, model, batch):
        pred = jax.vmap(model)(self._inputs(batch["a"]))
        loss = self.loss_fn(pred, batch["u"][:, None])
        return loss, {"train_rel_l2": relative_lp_loss(pred, batch["u"][:, None])}

    def _predict_all(self, model) -> np.ndarray:
        predict = eqx.filter_jit(self.predict)
        a = self.test[0]
        return np.concatenate(
            [
                np.asarray(predict(model, jnp.asarray(a[i : i + self.eval_batch])))
                for i in range(0, len(a), self.eval_batch)
            ]
        )

    def evaluate(self, model) -> dict[str, float]:
        pred = self._predict_all(model)
        u = self.test[1].astype(np.float64)
        err = np.linalg.norm(pred - u, axis=-1) / np.linalg.norm(u, axis=-1)
        return {"test_error": float(err.mean()), "test_rel_l2_max": float(err.max())}

    def plots(self, model, outdir: Path) -> list[Path]:
        pred = self._predict_all(model)
        return plot_field_predictions(self.grid, self.test[0], pred, self.test[1], outdir)

    def param_labels(self, params):
        return None


@dataclasses.dataclass
class SequenceClassificationTask:
    """Classify sequences ``(L, H)`` into ``num_classes`` with softmax cross-entropy.

    ``test_error`` is the test misclassification rate (1 - accuracy).

    Args:
        make_model: ``key -> model``, the model mapping one sequence ``(L, H)`` to logits
            ``(num_classes,)``.
        train: ``(x, y)`` with ``x`` ``(B, L, H)`` floats and ``y`` ``(B,)`` integer labels.
        test: the same for the test set.
        eval_batch: test examples per jitted evaluation call.
    """

    make_model: Callable[[Any], Any]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    eval_batch: int = 256

    def __post_init__(self) -> None:
        for name, (x, y) in (("train", self.train), ("test", self.test)):
            if x.ndim != 3 or y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"`{name}` must be x (B, L, H) and integer labels y (B,); got "
                    f"{x.shape} and {y.shape} {y.dtype}."
                )

    def init_model(self, key):
        return self.make_model(key)

    def num_train(self) -> int:
        return int(self.train[0].shape[0])

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"x": self.train[0][indices], "y": self.train[1][indices]}

    def loss(self, model, batch):
        logits = jax.vmap(model)(batch["x"])
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))
        accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == batch["y"]).astype(logits.dtype))
        return loss, {"train_accuracy": accuracy}

    def evaluate(self, model) -> dict[str, float]:
        predict = eqx.filter_jit(lambda m, x: jnp.argmax(jax.vmap(m)(x), axis=-1))
        x, y = self.test
        pred = np.concatenate(
            [
                np.asarray(predict(model, jnp.asarray(x[i : i + self.eval_batch])))
                for i in range(0, len(x), self.eval_batch)
            ]
        )
        accuracy = float(np.mean(pred == y))
        return {"test_error": 1.0 - accuracy, "test_accuracy": accuracy}

    def plots(self, model, outdir: Path) -> list[Path]:
        return []

    def param_labels(self, params):
        return None
