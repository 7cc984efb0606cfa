"""The Optax optimizer of a config: warmup + cosine or step schedules, clipping, AdamW, parameter
groups."""

from __future__ import annotations

import logging
from typing import Any

import jax
import optax

from spectrax.nn import frozen_param_mask, ssm_param_labels
from spectrax.train._config import Config

__all__ = ["make_optimizer", "make_schedule", "param_labels"]

GROUPS = ("default", "ssm", "frozen")

logger = logging.getLogger(__name__)


def _warn_inert_schedule(config: Config) -> None:
    """Log the schedule settings that the run's length makes inert or changes: a warmup as long
    as the run (shortened to it), a step decay whose first step lies past the end (a constant
    rate)."""
    o, steps = config.optim, config.loop.num_steps
    if o.warmup_steps >= steps:
        logger.warning(
            "`optim.warmup_steps` (%d) >= `loop.num_steps` (%d): the warmup is shortened to %d "
            "steps and the rate reaches its peak only at the last step; lower warmup_steps",
            o.warmup_steps,
            steps,
            steps - 1,
        )
    warmup = min(o.warmup_steps, steps - 1)
    if o.schedule == "step" and warmup + o.step_every >= steps:
        logger.warning(
            "`optim.step_every` (%d) after %d warmup steps is past `loop.num_steps` (%d): the "
            "step schedule never decays (a constant rate); lower step_every",
            o.step_every,
            warmup,
            steps,
        )


def make_schedule(peak: float, config: Config) -> optax.Schedule:
    """Linear warmup from 0 to ``peak`` over ``optim.warmup_steps``, then either cosine decay to
    ``peak * optim.final_lr_fraction`` at ``loop.num_steps`` (``optim.schedule="cosine"``) or
    ``peak * optim.step_factor ** (k // optim.step_every)`` at ``k`` steps after the warmup
    (``"step"``). A warmup as long as the run is shortened to ``loop.num_steps - 1`` steps
    (:func:`make_optimizer` logs a warning then, and for a step decay past the end of the run);
    ``step_every``/``step_factor`` apply to ``"step"`` only and ``final_lr_fraction`` to
    ``"cosine"`` only."""
    o, steps = config.optim, config.loop.num_steps
    warmup = min(o.warmup_steps, steps - 1)
    if o.schedule == "step":
        decay = optax.exponential_decay(
            peak, transition_steps=o.step_every, decay_rate=o.step_factor, staircase=True
        )
        if warmup == 0:
            return decay
        ramp = optax.linear_schedule(0.0, peak, warmup)
        return optax.join_schedules([ramp, decay], [warmup])
    if warmup == 0:
        return optax.cosine_decay_schedule(peak, max(steps, 1), alpha=o.final_lr_fraction)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup,
        decay_steps=steps,
        end_value=peak * o.final_lr_fraction,
    )


def param_labels(params: Any, task: Any = None) -> Any:
    """One group label per array leaf: the task's own labels if it gives them, else
    ``spectrax.nn.ssm_param_labels``; then ``"frozen"`` at the arrays a module holds fixed
    (``spectrax.nn.frozen_param_mask``: e.g. non-trainable Fourier feature frequencies), which
    no update, weight decay included, may change."""
    labels = None
    if task is not None and hasattr(task, "param_labels"):
        labels = task.param_labels(params)
    if labels is None:
        labels = ssm_param_labels(params)
    frozen = frozen_param_mask(params)
    if not any(jax.tree.leaves(frozen)):
        return labels  # no "frozen" group: the optimizer state keeps its former structure
    return jax.tree.map(lambda label, fixed: "frozen" if fixed else label, labels, frozen)


def make_optimizer(config: Config, labels: Any) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW per group: ``"default"`` with ``optim.learning_rate``
    and ``optim.weight_decay``; ``"ssm"`` with ``optim.ssm_learning_rate`` and no weight decay
    (Gu et al., 2022, "Efficiently Modeling Long Sequences with Structured State Spaces": the
    SSM parameters train with a smaller rate and no decay; Poli et al., 2023, "Hyena Hierarchy":
    the reference code trains the implicit filter's FFN with its own rate and no decay);
    ``"frozen"``, when ``labels`` has it, with no update at all. ``labels``: the group of
    each parameter, a pytree of those names shaped as the parameters (:func:`param_labels`)."""
    o = config.optim
    _warn_inert_schedule(config)
    groups = {
        "default": optax.adamw(
            make_schedule(o.learning_rate, config), b1=o.b1, b2=o.b2, weight_decay=o.weight_decay
        ),
        "ssm": optax.adam(make_schedule(o.ssm_learning_rate, config), b1=o.b1, b2=o.b2),
    }
    if "frozen" in jax.tree.leaves(labels):
        groups["frozen"] = optax.set_to_zero()
    # A labels pytree may itself be callable (an Equinox module): optax must not call it.
    return optax.chain(
        optax.clip_by_global_norm(o.clip_norm), optax.multi_transform(groups, lambda _: labels)
    )
