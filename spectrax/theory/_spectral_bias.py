"""Spectral bias: which frequencies of a target a network learns first (Rahaman et al., 2019,
"On the Spectral Bias of Neural Networks"; Tancik et al., 2020, "Fourier Features Let Networks
Learn High Frequency Functions in Low Dimensional Domains")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from spectrax._checks import (
    _describe,
    check_positive_int,
    check_real_float,
    compute_dtype,
    result_dtype,
)
from spectrax.theory._ntk import check_f, check_params


def _check_frequencies(frequencies: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    k = np.asarray(frequencies)
    if k.ndim != 1 or k.size == 0 or not np.issubdtype(k.dtype, np.integer):
        raise ValueError(
            f"`frequencies` must be a non-empty sequence of integers; got {frequencies!r}."
        )
    if k.min() < 0 or k.max() > n // 2:
        raise ValueError(
            f"`frequencies` must lie in [0, {n // 2}] for a grid of {n} points (rfft bins); "
            f"got {k.tolist()}."
        )
    return k


def frequency_errors(
    prediction: Float[Array, "*batch L"],
    target: Float[Array, "*batch L"],
    frequencies: Sequence[int] | np.ndarray,
) -> Float[Array, "*batch K"]:
    """Relative error of ``prediction`` at chosen Fourier frequencies of ``target``.

    ``|P̂_k - T̂_k| / |T̂_k|`` with ``^`` the DFT over the last axis, which must sample one
    period on a uniform grid. Each ``k`` must carry energy in the target: where ``T̂_k = 0``
    the ratio is ``inf`` (or ``nan`` when the prediction is exact there too).

    Args:
        prediction, target: real arrays of the same shape, last axis ``L`` the grid.
        frequencies: ``K`` integers in ``[0, L//2]``.

    Returns:
        ``(*batch, K)`` relative errors, in float32 (float64 if either input is float64).
    """
    check_real_float("prediction", prediction)
    check_real_float("target", target)
    dtype = compute_dtype(jnp.result_type(prediction), jnp.result_type(target))
    if jnp.ndim(target) < 1:
        raise ValueError(
            "`target` must have the grid as its last axis, shape (*batch, L); got shape "
            f"{jnp.shape(target)}."
        )
    if target.shape[-1] < 1:
        raise ValueError(
            "`target` must have at least one grid point on its last axis, shape (*batch, L) "
            f"with L >= 1; got shape {target.shape}."
        )
    if prediction.shape != target.shape:
        raise ValueError(
            f"`prediction` has shape {prediction.shape} but `target` has {target.shape}; "
            "expected the same shape."
        )
    k = _check_frequencies(frequencies, target.shape[-1])
    err = jnp.fft.rfft(prediction.astype(dtype) - target.astype(dtype), axis=-1)[..., k]
    ref = jnp.fft.rfft(target.astype(dtype), axis=-1)[..., k]
    return jnp.abs(err) / jnp.abs(ref)


class SpectralBiasCurve(NamedTuple):
    """What :func:`spectral_bias_curve` records.

    Attributes:
        step: ``(R,)`` the step of each record (0 is the initialisation).
        loss: ``(R,)`` the mean squared error at each record.
        errors: ``(R, K)`` :func:`frequency_errors` of the fit at each record.
        params: the parameters after the last step.
    """

    step: Int[Array, " R"]
    loss: Float[Array, " R"]
    errors: Float[Array, "R K"]
    params: Any


def spectral_bias_curve(
    f: Callable[[Any, Array], Array],
    params: Any,
    x: Float[Array, "N ..."],
    y: Float[Array, " N"],
    *,
    frequencies: Sequence[int] | np.ndarray,
    steps: int,
    optimizer: optax.GradientTransformation,
    record_every: int = 1,
) -> SpectralBiasCurve:
    """Fit ``f(params, x_i) ≈ y_i`` by full-batch gradient steps and record the error per
    frequency as training proceeds.

    The points ``x`` must sample one period of ``y`` uniformly (so the DFT of the fit over
    the ``N`` points gives its Fourier coefficients, up to aliasing of frequencies above
    ``N/2``). Under the NTK view the frequency ``k`` is learned
    at a rate set by the kernel's eigenvalue there (:func:`gd_residuals`); a ReLU/tanh MLP's
    eigenvalues fall with frequency, Fourier features and SIREN flatten the fall. The loss
    minimised is the mean squared error ``mean(r²)``, twice the loss of :func:`gd_residuals`:
    plain gradient descent at rate ``η`` here follows ``gd_residuals(ntk, r0, 2η, t)``,
    exactly for a model linear in its parameters, approximately for a wide network.

    Args:
        f: ``f(params, x_i) -> scalar`` on one example.
        params: initial parameters, a pytree of real float arrays (partition an Equinox model
            first, as for :func:`~spectrax.theory.empirical_ntk`).
        x: ``(N, ...)`` inputs. y: ``(N,)`` targets, real floating-point (of any float dtype:
            the residual ``f(params, x_i) - y_i`` takes the standard promotion of the two).
        frequencies: the DFT bins to track, integers in ``[0, N//2]``.
        steps: number of optimizer steps, ``>= 1``.
        optimizer: an Optax transformation (e.g. ``optax.adam(1e-3)``).
        record_every: record after every this many steps (``steps`` must be a multiple).

    Returns:
        A :class:`SpectralBiasCurve` with ``steps // record_every + 1`` records.
    """
    check_f(f)
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"`steps`={steps} must be a multiple of `record_every`={record_every}.")
    check_real_float("y", y)
    if not hasattr(x, "shape"):
        raise TypeError(f"`x` must be an array of inputs (N, ...); got {type(x).__name__}.")
    if y.ndim != 1 or x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"expected `x` (N, ...) and `y` (N,) with the same N; got {x.shape=} and {y.shape=}."
        )
    if y.shape[0] < 1:
        raise ValueError(
            f"`x` and `y` must hold at least one example (N >= 1); got {x.shape=} and {y.shape=}."
        )
    k = _check_frequencies(frequencies, y.shape[0])
    check_params(params)
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "`optimizer` must be an Optax GradientTransformation (with `init` and `update`), "
            f"e.g. `optax.adam(1e-3)`; got {_describe(optimizer)}."
        )

    def predict(p):
        return jax.vmap(f, in_axes=(None, 0))(p, x)

    # what `f` returns, before training: a tuple or dict was a bare AttributeError at `.shape`,
    # an integer or complex output an error about an argument named `prediction`
    out = jax.eval_shape(predict, params)
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(
            "`f` must return one real floating-point scalar per example; got "
            f"{jax.tree_util.tree_structure(out)}."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            f"`f` must return a real floating-point scalar per example; got dtype {out.dtype}."
        )
    if out.shape != y.shape:
        raise ValueError(
            f"`f` must return a scalar per example; over the batch it returned {out.shape}, "
            f"expected {y.shape}."
        )

    def sq_error(pred):
        # `f`'s output and `y` may differ in dtype (a float32 model fitted to float64 targets):
        # the residual takes their standard promotion explicitly, so strict promotion works too
        dt = result_dtype(pred.dtype, y.dtype)
        return jnp.mean((pred.astype(dt) - y.astype(dt)) ** 2)

    def loss_fn(p):
        return sq_error(predict(p))

    def record(p):
        pred = predict(p)
        return sq_error(pred), frequency_errors(pred, y, k)

    @jax.jit
    def run_chunk(p, state):
        def one(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            # Optax mixes Python floats with int32 step counts: standard promotion, as in
            # spectrax.train, even when the caller runs strict.
            with jax.numpy_dtype_promotion("standard"):
                updates, s = optimizer.update(g, s, p)
            return (optax.apply_updates(p, updates), s), None

        (p, state), _ = jax.lax.scan(one, (p, state), None, length=record_every)
        return p, state, record(p)

    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(params)
    loss0, err0 = jax.jit(record)(params)
    losses, errs = [loss0], [err0]
    for _ in range(steps // record_every):
        params, state, (loss, err) = run_chunk(params, state)
        losses.append(loss)
        errs.append(err)
    return SpectralBiasCurve(
        step=jnp.arange(0, steps + 1, record_every),
        loss=jnp.stack(losses),
        errors=jnp.stack(errs),
        params=params,
    )
