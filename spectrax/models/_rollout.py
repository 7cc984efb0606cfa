"""Autoregressive rollout of a one-step operator over snapshot windows.

Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations",
section 5.3: the FNO-2d for Navier–Stokes maps the last ten vorticity snapshots (as channels) to
the next one and is unrolled over the forecast horizon, trained through the whole rollout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from spectrax._checks import check_bool, check_positive_int


def _check_floating(name: str, snapshots: Array) -> None:
    """TypeError naming ``name`` unless the snapshots are floating point (real or complex): the
    predictions are cast to their dtype, so integer snapshots truncated every prediction."""
    if not jnp.issubdtype(snapshots.dtype, jnp.inexact):
        raise TypeError(
            f"`{name}` must hold floating-point snapshots (the predictions are cast to its "
            f"dtype, which would truncate them); got dtype {snapshots.dtype}. Cast it first, "
            f"e.g. `{name}.astype(jnp.float32)`."
        )


def rollout(
    model: Callable[[Array], Array],
    history: Float[Array, " C *spatial"],
    num_steps: int,
    *,
    remat: bool = False,
    residual: bool = False,
) -> Float[Array, " T *spatial"]:
    """Unroll ``model`` from ``history`` for ``num_steps`` snapshots.

    ``model`` maps a window of the last ``C`` snapshots ``(C, *spatial)`` (channel ``j`` is the
    ``j``-th oldest) to the next ``k`` snapshots ``(k, *spatial)``, ``1 <= k <= C``. Each call
    slides the window by ``k``: ``window <- concat(window[k:], model(window))``. Runs as a
    ``jax.lax.scan`` over ``ceil(num_steps / k)`` calls, so it jits once whatever the horizon and
    differentiates through the whole rollout (the paper's training of the recurrent FNO-2d).

    Args:
        model: one-step operator, e.g. ``FNO(2, C, k, ...)``.
        history: the ``C`` most recent snapshots, oldest first.
        num_steps: snapshots to predict, ``T``.
        remat: recompute each call's activations in the backward pass instead of storing them
            (``jax.checkpoint``): memory of one call instead of ``T / k`` calls, for one more
            forward pass.
        residual: ``model`` returns increments: the next snapshots are the last one of the
            window plus ``model(window)`` (:func:`next_snapshots`): the model learns the
            change per step, and a zero output is persistence.

    Returns:
        The ``T`` predicted snapshots, oldest first, in ``history``'s dtype.

    Raises:
        ValueError: ``num_steps < 1``, a ``history`` without a spatial axis, or a ``model``
            whose output is not ``(k, *spatial)`` with ``1 <= k <= C``.
        TypeError: non-bool ``remat``/``residual``; an integer or bool ``history`` (the
            predictions, cast to its dtype, would be truncated); a ``model`` that does not
            return one array,
            or returns complex snapshots for a real ``history`` (the cast would drop the
            imaginary part).
    """
    num_steps = check_positive_int("num_steps", num_steps)
    # Taken by truthiness, residual="False" would add the last snapshot to every output.
    remat = check_bool("remat", remat)
    residual = check_bool("residual", residual)
    # jnp.asarray's own refusal ("None is not a valid value for jnp.array") named nothing
    try:
        history = jnp.asarray(history)
    except (TypeError, ValueError):
        raise TypeError(
            f"`history` must be an array of snapshots (C, *spatial); got {type(history).__name__}"
            f" {history!r:.80}."
        ) from None
    if history.ndim < 2:
        raise ValueError(
            f"`history` must be snapshots (C, *spatial) with at least one spatial axis; got "
            f"shape {history.shape}."
        )
    _check_floating("history", history)
    # Wrapped in lambdas: jax hashes the callables it is given, and a module holding tracers
    # (under grad) is unhashable.
    try:
        out = jax.eval_shape(lambda h: model(h), history)
    except (ValueError, TypeError) as e:
        # the model's own message names its argument (`x`), not rollout's
        e.add_note(
            f"(raised by `model` on rollout's first window, `history` of shape "
            f"{history.shape}; rollout takes one history (C, *spatial): batch with "
            f"jax.vmap(lambda h: rollout(model, h, {num_steps}))(histories))"
        )
        raise
    k = _check_model_output(out, history, max_k=history.shape[0])
    call = lambda w: next_snapshots(model, w, residual=residual)  # noqa: E731
    step = jax.checkpoint(call) if remat else call

    def body(window, _):
        nxt = step(window).astype(window.dtype)
        return jnp.concatenate([window[k:], nxt], axis=0), nxt

    _, preds = jax.lax.scan(body, history, length=math.ceil(num_steps / k))
    return preds.reshape(-1, *history.shape[1:])[:num_steps]


def next_snapshots(
    model: Callable[[Array], Array], window: Float[Array, " C *spatial"], *, residual: bool = False
) -> Float[Array, " k *spatial"]:
    """One call of a one-step operator: ``model(window)``, or with ``residual`` the last snapshot
    of the window plus ``model(window)`` (the increment form of the one-step map, as in
    :func:`rollout` and in teacher-forced training)."""
    residual = check_bool("residual", residual)
    if jnp.ndim(window) < 2:
        raise ValueError(
            f"`window` must be snapshots (C, *spatial) with at least one spatial axis; got "
            f"shape {jnp.shape(window)}."
        )
    if residual:  # the increment is added in the window's dtype
        _check_floating("window", jnp.asarray(window))
    out = model(window)
    if not residual:
        return out
    _check_model_output(out, window)
    return window[-1:] + out.astype(window.dtype)


def _check_model_output(out, window: Array, max_k: int | None = None) -> int:
    """``k`` of a model output ``out`` (an array or its ``ShapeDtypeStruct``) that is the next
    ``k`` snapshots of ``window`` (``1 <= k``, ``k <= max_k`` if given), else an error naming
    ``model``. A complex output for a real window is refused: casting it to the window's dtype,
    as the rollout does, would drop its imaginary part."""
    if not (hasattr(out, "shape") and hasattr(out, "dtype")):
        raise TypeError(
            f"`model` must return one array, the next snapshots (k, *spatial); it returns "
            f"{type(out).__name__}."
        )
    spatial = tuple(window.shape[1:])
    hi = "" if max_k is None else f" <= {max_k}"
    k = out.shape[0] if len(out.shape) == len(window.shape) else 0
    if tuple(out.shape[1:]) != spatial or k < 1 or (max_k is not None and k > max_k):
        raise ValueError(
            f"`model` must map a window {tuple(window.shape)} to the next k snapshots (k, "
            f"{', '.join(map(str, spatial))}) with 1 <= k{hi}; it returns {tuple(out.shape)}."
        )
    if jnp.issubdtype(out.dtype, jnp.complexfloating) and not jnp.issubdtype(
        window.dtype, jnp.complexfloating
    ):
        raise TypeError(
            f"`model` returns {out.dtype} snapshots for a {window.dtype} window: the rollout "
            "would drop their imaginary part. Return real snapshots (e.g. `.real`)."
        )
    return int(k)
