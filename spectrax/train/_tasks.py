"""Ready-made tasks from arrays: an operator between fields on uniform grids (any number of
spatial axes), and sequence classification."""

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
from jaxtyping import Float

from spectrax._checks import check_bool, check_positive_int, result_dtype
from spectrax.models import next_snapshots, rollout
from spectrax.train._losses import relative_lp_loss
from spectrax.train._plots import new_figure, plot_field_predictions

__all__ = ["FieldRegressionTask", "SequenceClassificationTask", "grid_coordinates"]


# Grid conventions: the spacing's denominator for an axis of n points.
_GRIDS: dict[str, Callable[[int], int]] = {
    "periodic": lambda n: n,
    "endpoint": lambda n: max(n - 1, 1),
}


def grid_coordinates(
    spatial_shape: tuple[int, ...], grid: str, dtype
) -> Float[np.ndarray, " D *spatial"]:
    """One coordinate channel per axis on the unit cube, shape ``(d, *spatial_shape)``.

    ``grid="periodic"``: ``x_j = j / X`` (the unit torus, Burgers and Navier–Stokes data);
    ``grid="endpoint"``: ``x_j = j / (X - 1)`` (node grids holding both boundaries, Darcy).
    """
    if grid not in _GRIDS:
        raise ValueError(f"`grid` must be one of {tuple(_GRIDS)}; got {grid!r}.")
    axes = [np.arange(n) / _GRIDS[grid](n) for n in spatial_shape]
    return np.stack(np.meshgrid(*axes, indexing="ij")).astype(dtype)


@dataclasses.dataclass
class FieldRegressionTask:
    """Learn ``a -> u`` between fields on a uniform grid with any number of spatial axes, scored
    by the per-sample relative L2 error over all channel and spatial axes.

    Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations":
    the operator-learning setting and metric (mean over test samples of
    ``||pred - u||_2 / ||u||_2``), with optional grid coordinates as extra input channels for
    models that do not add them themselves.

    Shapes, with ``d = num_spatial_dims`` and ``spatial = (X_1, ..., X_d)``:

    - ``channel_axis=False`` (default): ``a`` and ``u`` are ``(B, *spatial)``; the model sees
      ``(1, *spatial)`` and returns ``(1, *spatial)``.
    - ``channel_axis=True``: ``a`` is ``(B, C_in, *spatial)`` and ``u`` ``(B, C_out, *spatial)``
      (e.g. Navier–Stokes: ten vorticity snapshots in, the following ones out); the model sees
      ``(C_in, *spatial)`` and returns ``(C_out, *spatial)``.

    With ``rollout`` (needs ``channel_axis``) the channels are snapshots in time and the model is
    a one-step operator, ``(C_in, *spatial) -> (k, *spatial)`` (the next ``k`` snapshots), unrolled
    by :func:`spectrax.models.rollout` until it covers the ``C_out`` target snapshots; the loss
    and the test error are those of the whole rollout (the paper's recurrent FNO-2d on
    Navier–Stokes, trained through the rollout). With ``residual`` the model returns increments
    over the last snapshot of its window (:func:`spectrax.models.next_snapshots`); without
    ``rollout``, over the last input channel (before any grid channels), broadcast over the
    output channels. With
    ``teacher_forcing`` it is trained on single calls instead: the training examples are every
    window of ``C_in`` consecutive true snapshots of each trajectory (``a`` followed by ``u``)
    whose next ``step_snapshots`` snapshots lie in ``u``, ``C_out - step_snapshots + 1`` per
    trajectory, each scored against those true next snapshots; the test error is still that of
    the whole rollout from ``a``. One model call per example instead of ``C_out / k``.

    With ``grid_channel`` the model sees ``d`` more input channels, the coordinate of each axis
    (:func:`grid_coordinates`: ``x_j = j / X`` for ``grid="periodic"``, ``j / (X - 1)`` for
    ``grid="endpoint"``).

    Args:
        make_model: ``key -> model``.
        train: ``(a, u)`` NumPy arrays of the shapes above.
        test: ``(a, u)`` likewise (same spatial shape and channels as ``train``).
        loss_fn: ``(pred, target) -> scalar`` over batches ``(B, C_out, *spatial)`` (default:
            relative L2 over the channel and spatial axes, :func:`relative_lp_loss` with
            ``num_spatial_dims=d``). A library loss needs its required ``num_spatial_dims``
            bound, e.g. ``functools.partial(h1_loss, num_spatial_dims=d)``.
        num_spatial_dims: ``d`` (default 1).
        channel_axis: the arrays carry a channel axis after the batch axis (default False).
        grid_channel: append the grid coordinates as ``d`` input channels (default False).
        grid: ``"periodic"`` (default) or ``"endpoint"``, the coordinates of ``grid_channel``.
        rollout: unroll a one-step model over the target snapshots (default False).
        residual: the model returns increments: over the window's last snapshot with
            ``rollout``, else over the last input channel (default False).
        teacher_forcing: with ``rollout``, train on one-call windows of the true trajectory
            (default False: train through the whole rollout).
        step_snapshots: with ``teacher_forcing``, ``k``, the snapshots the model returns per
            call (default 1).
        remat: with ``rollout``, recompute each step's activations in the backward pass
            (``jax.checkpoint``; memory of one step instead of all).
        eval_batch: test examples per jitted evaluation call.

    Raises:
        ValueError: arrays of the wrong rank, or ``a`` and ``u`` that disagree in batch or
            spatial shape, or train and test with different spatial shapes or channels.
    """

    make_model: Callable[[Any], Any]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    loss_fn: Callable[[Any, Any], Any] | None = None
    num_spatial_dims: int | np.integer = 1
    channel_axis: bool = False
    grid_channel: bool = False
    grid: str = "periodic"
    rollout: bool = False
    residual: bool = False
    teacher_forcing: bool = False
    step_snapshots: int | np.integer = 1
    remat: bool = False
    eval_batch: int | np.integer = 256

    def __post_init__(self) -> None:
        # Taken by truthiness, teacher_forcing="False" would switch teacher forcing on.
        flags = ("channel_axis", "grid_channel", "rollout", "residual", "teacher_forcing", "remat")
        for flag in flags:
            setattr(self, flag, check_bool(flag, getattr(self, flag)))
        # a Python int from here on (np.int64 accepted, as everywhere): it sizes shapes and axes
        self.num_spatial_dims = check_positive_int("num_spatial_dims", self.num_spatial_dims)
        d = self.num_spatial_dims
        if self.grid not in _GRIDS:
            raise ValueError(f"`grid` must be one of {tuple(_GRIDS)}; got {self.grid!r}.")
        if self.rollout and (not self.channel_axis or self.grid_channel):
            raise ValueError(
                "`rollout=True` needs snapshots on a channel axis and no grid channels (they "
                "would enter the sliding window): expected channel_axis=True, grid_channel=False; "
                f"got channel_axis={self.channel_axis}, grid_channel={self.grid_channel}."
            )
        if self.teacher_forcing and not self.rollout:
            raise ValueError(
                "`teacher_forcing` trains a one-step model for a rollout: expected rollout=True; "
                "got rollout=False."
            )
        self.step_snapshots = k = check_positive_int("step_snapshots", self.step_snapshots)
        self.eval_batch = check_positive_int("eval_batch", self.eval_batch)
        c = 1 if self.channel_axis else 0
        layout = "(B, C, *spatial)" if self.channel_axis else "(B, *spatial)"
        shapes = {}
        for name, pair in (("train", self.train), ("test", self.test)):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"`{name}` must be a pair (a, u) of arrays; got {type(pair)}.")
            a, u = (np.asarray(x) for x in pair)
            if a.ndim != 1 + c + d or u.ndim != 1 + c + d:
                raise ValueError(
                    f"`{name}` must be two arrays {layout} with {d} spatial axes "
                    f"(rank {1 + c + d}, num_spatial_dims={d}, channel_axis={self.channel_axis});"
                    f" got {a.shape} and {u.shape}."
                )
            if a.shape[0] != u.shape[0] or a.shape[1 + c :] != u.shape[1 + c :]:
                raise ValueError(
                    f"`{name}` arrays a and u must share the batch and spatial axes; got "
                    f"{a.shape} and {u.shape}."
                )
            if a.shape[0] == 0:  # an empty test set trained, then failed at the evaluation
                raise ValueError(f"`{name}` must hold at least one example; got {a.shape}.")
            shapes[name] = (a.shape[1:], u.shape[1:])
        if shapes["train"] != shapes["test"]:
            raise ValueError(
                f"`test` must have the channels and grid of `train`, per example "
                f"{shapes['train']}; got {shapes['test']}."
            )
        if self.teacher_forcing:
            c_in, c_out = shapes["train"][0][0], shapes["train"][1][0]
            if not k <= min(c_in, c_out):
                raise ValueError(
                    f"`step_snapshots` must be at most the input and target snapshots "
                    f"(C_in={c_in}, C_out={c_out}) for teacher forcing; got {k}."
                )
        self.spatial_shape = tuple(self.train[0].shape[1 + c :])
        # The 1-D grid, kept for the 1-D plots; the d-channel grid feeds the model.
        self.coordinates = grid_coordinates(self.spatial_shape, self.grid, self.train[0].dtype)
        self.grid_points = self.coordinates[0] if d == 1 else None

    def init_model(self, key):
        """``make_model(key)``, checked against one training example by tracing the loss
        (shapes only, nothing is computed): a model that does not fit the data (more Fourier
        modes than the grid holds, wrong channel counts, an output of the wrong shape) raises
        its ValueError here, when the model is built, not at the first training step."""
        model = self.make_model(key)
        eqx.filter_eval_shape(self.loss, model, self._batch(np.arange(1)))
        return model

    def _windows_per_trajectory(self) -> int:
        return int(self.train[1].shape[1]) - self.step_snapshots + 1

    def num_train(self) -> int:
        """Training examples: trajectories, or with ``teacher_forcing`` their windows."""
        n = int(self.train[0].shape[0])
        return n * self._windows_per_trajectory() if self.teacher_forcing else n

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self._batch(indices)

    def _batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        # init_model's shape check reads examples here, not through get_batch, which a caller
        # may wrap (the loop's data position and any counting a test adds stay untouched)
        if not self.teacher_forcing:
            return {"a": self.train[0][indices], "u": self.train[1][indices]}
        # Example i is window t = i % W of trajectory i // W: snapshots t .. t + C_in - 1 of
        # concat(a, u) in, the next k out.
        indices = np.asarray(indices)
        n, t = np.divmod(indices, self._windows_per_trajectory())
        traj = np.concatenate([self.train[0][n], self.train[1][n]], axis=1)
        c_in, k = self.train[0].shape[1], self.step_snapshots
        rows = np.arange(len(indices))[:, None]
        return {
            "a": traj[rows, t[:, None] + np.arange(c_in)],
            "u": traj[rows, t[:, None] + c_in + np.arange(k)],
        }

    def _inputs(self, a):
        x = a if self.channel_axis else a[:, None]
        if not self.grid_channel:
            return x
        grid = jnp.broadcast_to(
            jnp.asarray(self.coordinates, x.dtype)[None],
            (x.shape[0],) + self.coordinates.shape,
        )
        return jnp.concatenate([x, grid], axis=1)

    def _targets(self, u):
        return u if self.channel_axis else u[:, None]

    def _outputs(self, pred):
        return pred if self.channel_axis else pred[:, 0]

    def _apply(self, model, x):
        if not self.rollout:
            out = jax.vmap(model)(x)
            if not self.residual:
                return out
            c_in = self.train[0].shape[1] if self.channel_axis else 1
            # the last input field, broadcast, added in the wider dtype (a bfloat16 increment
            # of a mixed-precision step onto the float32 field, as next_snapshots does)
            wide = result_dtype(x.dtype, out.dtype)
            return x[:, c_in - 1 : c_in].astype(wide) + out.astype(wide)
        steps = self.train[1].shape[1]
        return jax.vmap(
            lambda h: rollout(model, h, steps, remat=self.remat, residual=self.residual)
        )(x)

    def _one_call(self, model, x):
        """Teacher forcing: one model call per window, checked to return ``step_snapshots``."""
        out = jax.eval_shape(lambda h: model(h), x[0])
        if out.shape[0] != self.step_snapshots:
            raise ValueError(
                f"the model returns {out.shape[0]} snapshots per call, but the task's "
                f"`step_snapshots` is {self.step_snapshots}: set them equal for teacher forcing."
            )
        return jax.vmap(lambda h: next_snapshots(model, h, residual=self.residual))(x)

    def predict(self, model, a):
        """Predictions shaped like ``u`` for a batch of inputs shaped like ``a``."""
        return self._outputs(self._apply(model, self._inputs(a)))

    def loss(self, model, batch):
        apply = self._one_call if self.teacher_forcing else self._apply
        pred = apply(model, self._inputs(batch["a"]))
        target = self._targets(batch["u"])
        rel = relative_lp_loss(pred, target, num_spatial_dims=self.num_spatial_dims)
        loss = rel if self.loss_fn is None else self.loss_fn(pred, target)
        return loss, {"train_rel_l2": rel}

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
        pred = self._predict_all(model).astype(np.float64)
        u = self.test[1].astype(np.float64)
        b = u.shape[0]
        den = np.linalg.norm(u.reshape(b, -1), axis=-1)
        # a zero test target: its denominator clamped as relative_lp_loss does (in float64),
        # so the error is 0 for a zero prediction, else finite and huge (it was a division
        # by zero: NaN or inf and NumPy's warning)
        den = np.where(den == 0, np.sqrt(np.finfo(np.float64).tiny), den)
        err = np.linalg.norm((pred - u).reshape(b, -1), axis=-1) / den
        return {"test_error": float(err.mean()), "test_rel_l2_max": float(err.max())}

    def plots(self, model, outdir: Path) -> list[Path]:
        """1-D: predictions and error spectrum; 2-D: input, prediction, truth and error images
        of a few test samples (first input channel, last output channel); otherwise none."""
        if self.num_spatial_dims > 2:
            return []
        pred = self._predict_all(model)
        a, u = self.test
        if self.channel_axis:
            a, u, pred = a[:, 0], u[:, -1], pred[:, -1]
        if self.num_spatial_dims == 1:
            return plot_field_predictions(self.grid_points, a, pred, u, outdir)
        return [_plot_2d_predictions(a, pred, u, Path(outdir) / "predictions.png")]

    def param_labels(self, params):
        return None


def _plot_2d_predictions(a: np.ndarray, pred: np.ndarray, truth: np.ndarray, path: Path) -> Path:
    n = min(3, pred.shape[0])
    titles = ("input", "prediction", "truth", "error")
    fig = new_figure(figsize=(12, 3 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        lo, hi = float(truth[i].min()), float(truth[i].max())
        panels = (a[i], pred[i], truth[i], pred[i] - truth[i])
        for j, (ax, img) in enumerate(zip(axes[i], panels, strict=True)):
            kw = {"vmin": lo, "vmax": hi} if j in (1, 2) else {}
            im = ax.imshow(
                np.asarray(img).T, origin="lower", cmap="RdBu_r" if j == 3 else None, **kw
            )
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


@dataclasses.dataclass
class SequenceClassificationTask:
    """Classify sequences ``(L, H)`` into ``num_classes`` with softmax cross-entropy.

    ``test_error`` is the test misclassification rate (1 - accuracy).

    Every sequence is ``L`` steps of data, with no padding mask: the model pools over all ``L``
    steps (the generators of :mod:`spectrax.data`, :func:`~spectrax.data.delayed_recall` and
    :func:`~spectrax.data.delayed_copy`, make equal-length, unpadded sequences). For padded
    sequences of different lengths call the model with its ``mask``
    (:class:`~spectrax.models.SSMSequenceModel`) in a task of your own: padding fed through
    this one would be pooled as data.

    Args:
        make_model: ``key -> model``, the model mapping one sequence ``(L, H)`` to logits
            ``(num_classes,)``.
        train: ``(x, y)`` with ``x`` ``(B, L, H)`` floats and ``y`` ``(B,)`` integer labels.
        test: the same for the test set.
        eval_batch: test examples per jitted evaluation call.
        needs_key: the model takes ``key=`` in training (dropout): the loop then adds one PRNG
            key per example to each batch, drawn from the run's key and the step (so a resumed
            run draws the same ones); evaluation calls the model without a key.

    Raises:
        ValueError: arrays of the wrong rank or non-integer labels, a negative label, an empty
            set, or test sequences with other channels than the training ones (their lengths
            may differ).
    """

    make_model: Callable[[Any], Any]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    eval_batch: int | np.integer = 256
    needs_key: bool = False

    def __post_init__(self) -> None:
        self.eval_batch = check_positive_int("eval_batch", self.eval_batch)
        for name, pair in (("train", self.train), ("test", self.test)):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"`{name}` must be a pair (x, y) of arrays; got {type(pair)}.")
            # a list x failed at `.ndim` naming nothing
            x, y = (np.asarray(v) if isinstance(v, (list, tuple)) else v for v in pair)
            setattr(self, name, (x, y))
            if not hasattr(x, "ndim") or not hasattr(y, "dtype"):
                raise TypeError(
                    f"`{name}` must be a pair of arrays (x, y); got {type(x).__name__} and "
                    f"{type(y).__name__}."
                )
            if x.ndim != 3 or y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"`{name}` must be x (B, L, H) and integer labels y (B,); got "
                    f"{x.shape} and {y.shape} {y.dtype}."
                )
            if y.size and int(y.min()) < 0:
                # the cross-entropy reads label -1 as the last class (an index from the end)
                # while the accuracy counts it wrong: a silently different task
                raise ValueError(
                    f"`{name}` labels must be class indices >= 0; got {int(y.min())} (at "
                    f"example {int(np.argmin(y))})."
                )
            if x.shape[0] == 0:  # an empty test set failed in init_model at test[0][0]
                raise ValueError(f"`{name}` must hold at least one example; got x {x.shape}.")
        if self.train[0].shape[2] != self.test[0].shape[2]:
            raise ValueError(
                f"`test` sequences must have the channels H of `train` "
                f"({self.train[0].shape[2]}); got {self.test[0].shape[2]} "
                f"(train x {self.train[0].shape}, test x {self.test[0].shape})."
            )

    def init_model(self, key):
        """``make_model(key)``, checked by tracing it on one test sequence (shapes only): it
        must return one logit vector ``(num_classes,)`` per sequence, with a logit for every
        label in the data."""
        model = self.make_model(key)
        out = eqx.filter_eval_shape(model, self.test[0][0])
        if getattr(out, "ndim", None) != 1:
            raise ValueError(
                f"the model must map one sequence {self.test[0].shape[1:]} to logits "
                f"(num_classes,); it returns {getattr(out, 'shape', type(out).__name__)}."
            )
        classes = 1 + max(int(y.max(initial=0)) for _, y in (self.train, self.test))
        if out.shape[0] < classes:
            # a label beyond the logits makes the cross-entropy NaN at every step
            raise ValueError(
                f"the model returns {out.shape[0]} logits per sequence but the labels run to "
                f"{classes - 1}; expected at least {classes} logits (one per class)."
            )
        return model

    def num_train(self) -> int:
        return int(self.train[0].shape[0])

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"x": self.train[0][indices], "y": self.train[1][indices]}

    def loss(self, model, batch):
        if "key" in batch:
            keys = jax.random.wrap_key_data(batch["key"])
            logits = jax.vmap(lambda x, k: model(x, key=k))(batch["x"], keys)
        else:
            logits = jax.vmap(model)(batch["x"])
        # the softmax and its mean in float32 at least (bfloat16 logits of a mixed-precision
        # step gave a bfloat16 loss: 8 bits of mantissa for the whole batch's mean)
        if jnp.finfo(logits.dtype).bits < 32:
            logits = logits.astype(jnp.float32)
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
