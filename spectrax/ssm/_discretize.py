"""Discretisation of continuous state-space systems (ZOH and bilinear) and dt initialisation."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Inexact, PRNGKeyArray

from spectrax._checks import (
    check_bool,
    check_choice,
    check_float_dtype,
    check_key,
    check_not_bool,
    check_positive_float,
    complex_dtype,
    result_dtype,
)
from spectrax._random import uniform

DISCRETIZATIONS = ("zoh", "bilinear")


def _diag_zoh(lam, dt):
    # expm1: (exp(Λ dt) - 1) cancels catastrophically when |Λ dt| is small (slow modes, small
    # steps): in float32 at Λ dt = -1e-8 the difference would be 0. Where |Λ dt| is below
    # eps^(1/3) the factor is its series dt (1 + z/2 + z^2/6), z = Λ dt, exact to rounding (the
    # next term is z^3/24 < eps): this covers Λ = 0 (an integrator, e.g. FouT's frequency 0:
    # the limit dt and the derivative dt^2 / 2 in Λ) and a Λ dt that underflows, which
    # expm1(Λ dt)/Λ would turn into 0 (Λ = -1e-37, dt = 1e-2 in float32). The inner `where`
    # keeps the unused branch's gradient finite.
    z = lam * dt
    small = jnp.abs(z) < float(jnp.finfo(jnp.real(z).dtype).eps) ** (1.0 / 3.0)
    safe = jnp.where(small, jnp.ones_like(lam), lam)
    series = dt * (1.0 + z * (0.5 + z / 6.0))
    gamma = jnp.where(small, series, jnp.expm1(safe * dt) / safe)
    return jnp.exp(z), gamma


def _diag_bilinear(lam, dt):
    den = 1.0 - 0.5 * dt * lam
    return (1.0 + 0.5 * dt * lam) / den, dt / den


_DIAG: dict[str, Callable] = {"zoh": _diag_zoh, "bilinear": _diag_bilinear}


def _as_dt(dt) -> Array:
    """``dt`` as a real array (a Python float is accepted); when its values are concrete (not
    traced under ``jit``/``grad``), also checked finite and ``> 0``."""
    dt = jnp.asarray(dt)
    if not jnp.issubdtype(dt.dtype, jnp.floating):
        if not jnp.issubdtype(dt.dtype, jnp.integer) or dt.dtype == jnp.bool_:
            raise TypeError(f"`dt` must be real (float); got dtype {dt.dtype}.")
        dt = dt.astype(jnp.float32)
    if not isinstance(dt, jax.core.Tracer):
        v = np.asarray(dt, np.float64)
        bad = ~(np.isfinite(v) & (v > 0))
        if np.any(bad):
            raise ValueError(
                f"`dt` must be finite and > 0 (positive steps); got {float(v[bad].ravel()[0])!r} "
                f"(at {int(np.count_nonzero(bad))} of {v.size} entries)."
            )
    return dt


def _wider(dt_in, dt: Array, real_dtype) -> bool:
    """Whether the step ``dt_in`` (``dt`` as an array) is a float array wider than
    ``real_dtype`` (a Python number takes the other inputs' precision, and so does a weakly
    typed array: what a Python float becomes under ``jit``, so jitted and eager calls agree)."""
    if isinstance(dt_in, (int, float)) or getattr(dt_in, "weak_type", False):
        return False
    return jnp.finfo(dt.dtype).bits > jnp.finfo(real_dtype).bits


def _as_complex(x: Array) -> Array:
    if jnp.iscomplexobj(x):
        return x
    return x.astype(complex_dtype(x.dtype))


def discretize_diagonal(
    Lambda: Inexact[Array, "*#batch N"],
    dt: Float[Array, "*#batch #N"] | Float[Array, ""] | float,
    method: str = "zoh",
) -> tuple[Inexact[Array, "*batch N"], Inexact[Array, "*batch N"]]:
    """Discretise a diagonal system ``x' = Λ x + B u`` with step ``dt``.

    ZOH: ``Λ̄ = exp(Λ dt)``, ``B̄ = (Λ̄ - 1)/Λ · B``. Bilinear (Tustin):
    ``Λ̄ = (1 + dt Λ/2)/(1 - dt Λ/2)``, ``B̄ = dt/(1 - dt Λ/2) · B``.

    Args:
        Lambda: complex eigenvalues ``(..., N)``; a zero one (an integrator) takes ZOH's limit
            ``gamma = dt``.
        dt: positive finite steps: a scalar, or an array broadcastable against ``Lambda`` with
            the same rank, e.g. ``(H, 1)`` per channel or ``(L, 1)`` per time step (irregular
            sampling). Values are checked when concrete (not under ``jit``).
        method: ``"zoh"`` or ``"bilinear"``.

    Returns:
        ``(Lambda_bar, gamma)``: the discrete eigenvalues and the input factor, with
        ``B̄ = gamma[..., :, None] * B`` (or ``gamma * B`` for a diagonal-per-channel ``B``).
        Both complex, broadcast shape, in the wider precision of ``Lambda`` and an array ``dt``
        (a Python float ``dt``, weakly typed under ``jit``, takes ``Lambda``'s).
    """
    lam, dt = _diagonal_args(Lambda, dt, method)  # checks `method` first
    return _DIAG[method](lam, dt)


def _diagonal_args(Lambda, dt, method: str):
    """Checked ``(Λ, dt)`` of a diagonal discretisation, both in the complex dtype of the
    wider of ``Λ`` and an array ``dt`` (a float64 dt array is not narrowed to complex64)."""
    check_choice("method", method, DISCRETIZATIONS)
    lam = jnp.asarray(Lambda)
    check_not_bool("Lambda", lam)
    lam = _as_complex(lam)
    dt_in, dt = dt, _as_dt(dt)
    if dt.ndim not in (0, lam.ndim):
        raise ValueError(
            f"`dt` and `Lambda` must have the same rank (explicit broadcasting); got "
            f"dt.shape={dt.shape}, Lambda.shape={lam.shape}. Reshape dt, e.g. dt[:, None]."
        )
    try:
        np.broadcast_shapes(dt.shape, lam.shape)
    except ValueError:
        raise ValueError(
            f"`dt` must broadcast against `Lambda` (each axis of dt 1 or Lambda's size); got "
            f"dt.shape={dt.shape}, Lambda.shape={lam.shape}."
        ) from None
    if _wider(dt_in, dt, lam.real.dtype):
        lam = lam.astype(complex_dtype(dt.dtype))
    return lam, dt.astype(lam.dtype)


def _diag_zoh_log(lam, dt):
    # Λ dt with its phase brought into (-π, π]: the kernel multiplies it by l up to L, and a
    # phase of 100 instead of 100 - 32π would round l times 30x more coarsely in float32. The
    # reduction goes through sin and cos, whose argument reduction is accurate; subtracting
    # multiples of a float32 2π would add their rounding, times l.
    z = lam * dt
    phase = jnp.arctan2(jnp.sin(jnp.imag(z)), jnp.cos(jnp.imag(z)))
    return jax.lax.complex(jnp.real(z), phase)


def _log_zero_at_minus_one(w, inner):
    """``2 artanh(inner)``, and ``-inf`` (``Λ̄ = 0``) where ``w = Λ dt/2`` is exactly -1: there
    artanh's derivative is infinite, and the zero cotangent the kernel sends back (it takes
    ``Λ̄ = 0`` as the smallest normal number) made NaN gradients in every parameter (S4D-Lin's
    real mode ``Λ = -1/2`` at ``dt = 4``). Its imaginary part is 0, not artanh's NaN. The
    gradient through the log is ``l Λ̄^l = 0`` there, so at that one point it lacks the ``l = 1``
    term ``dΛ̄`` that a scan's gradient has: finite, not exact."""
    zero = w == -1
    out = 2 * jnp.arctanh(jnp.where(zero, jnp.zeros_like(inner), inner))
    return jnp.where(zero, jnp.asarray(-jnp.inf, out.dtype), out)


def _diag_bilinear_log(lam, dt):
    # log((1 + z) / (1 - z)) = 2 artanh(z), z = Λ dt / 2, without forming the ratio: artanh keeps
    # the relative precision of a slow mode's decay rate, which log1p(z) - log1p(-z) cancels
    # away once |Im z| is not small; its phase lies in (-π, π]
    w = 0.5 * dt * lam
    return _log_zero_at_minus_one(w, w)


_DIAG_LOG: dict[str, Callable] = {"zoh": _diag_zoh_log, "bilinear": _diag_bilinear_log}


def _diag_zoh_log_half(lam, dt):
    # exact negation of (sin, cos) before the arctan2: log(-Λ̄) where cos(Im Λ dt) < 0
    z = lam * dt
    s, c = jnp.sin(jnp.imag(z)), jnp.cos(jnp.imag(z))
    flip = c < 0
    phase = jnp.arctan2(jnp.where(flip, -s, s), jnp.where(flip, -c, c))
    return jax.lax.complex(jnp.real(z), phase), flip


def _diag_bilinear_log_half(lam, dt):
    # Re Λ̄ < 0 exactly where |w| > 1 (w = Λ dt/2), and there -Λ̄ = (1 + 1/w)/(1 - 1/w):
    # log(-Λ̄) = 2 artanh(1/w), small for a Λ̄ near -1 (|Λ dt| >> 2) where log Λ̄ is near iπ.
    # The `where`s keep the unused branch finite (1/w at w = 0, artanh(±1)), and its gradient.
    w = 0.5 * dt * lam
    flip = jnp.abs(w) > 1
    inner = jnp.where(flip, 1.0 / jnp.where(flip, w, 2.0), jnp.where(flip, 0.0, w))
    return _log_zero_at_minus_one(w, inner), flip


_DIAG_LOG_HALF: dict[str, Callable] = {
    "zoh": _diag_zoh_log_half,
    "bilinear": _diag_bilinear_log_half,
}


def log_discrete_eigenvalues(
    Lambda: Inexact[Array, "*#batch N"],
    dt: Float[Array, "*#batch #N"] | Float[Array, ""] | float,
    method: str = "zoh",
    *,
    half_turn: bool = False,
) -> Inexact[Array, "*batch N"] | tuple[Inexact[Array, "*batch N"], Bool[Array, "*batch N"]]:
    """``log Λ̄`` of :func:`discretize_diagonal`, computed from ``Λ`` and ``dt`` directly:
    ``Λ dt`` (ZOH) or ``2 artanh(Λ dt/2)`` (bilinear), the phase in ``(-π, π]``.

    For a slow mode ``Λ̄`` lies within a few ulps of 1 and ``log(Λ̄)`` keeps only the digits
    that survived that rounding (in float32 at ``|Λ dt| = 1e-3``, a relative error near
    ``1e-4``); this keeps them all. Pass it to :func:`vandermonde_kernel` as
    ``log_Lambda_bar``, as the S4D and S5 layers do: the principal branch, which keeps the
    product ``l log Λ̄`` of the powers as small as it can be. Arguments and broadcasting as
    :func:`discretize_diagonal`.

    With ``half_turn=True`` it returns ``(log_abs, negated)``: ``log(-Λ̄)`` where ``Re Λ̄ < 0``
    (``negated`` True) and ``log Λ̄`` elsewhere, so the phase lies in ``[-π/2, π/2]`` and
    ``Λ̄^l = (-1)^(l negated) exp(l log_abs)`` (:func:`vandermonde_kernel`'s ``negated``). The
    power's phase ``l θ`` rounds about ``l |θ|`` ulps: for bilinear modes with ``|Λ dt| >> 2``
    (``Λ̄`` near -1, e.g. S4D-Inv's fast modes) float32 kernels come out 3x (``dt = 0.1``) to
    100x (``dt >= 1``) closer to float64 (S4D-Lin/Inv, ``N = 64``, ``L = 4096``).
    """
    lam, dt = _diagonal_args(Lambda, dt, method)
    if check_bool("half_turn", half_turn):
        return _DIAG_LOG_HALF[method](lam, dt)
    return _DIAG_LOG[method](lam, dt)


# jax.scipy.linalg.expm returns NaN, silently, for a matrix that needs more squarings than its
# max_squarings (default 16: ||M||_1 >= 2^17 θ, θ = 3.93 in float32 and 5.37 in float64), e.g.
# S4-LegS's ZOH at N = 256 beyond dt ≈ 3.4 (||A||_1 ≈ 1e5). 24 moves the limit to ||A dt||_1 ≈
# 1.3e8 (float32; S4-LegS N = 256 up to dt ≈ 1e3). A bound, not a count: only the squarings a
# matrix needs change its value, but batched (vmapped) matrices run all 24, and reverse mode
# keeps each as a residual (about a third more memory than 16).
_EXPM_MAX_SQUARINGS = 24


def _dense_zoh(a, b, dt):
    n = a.shape[-1]
    # exp([[A, B], [0, 0]] dt) = [[Ā, B̄], [0, I]]: no inverse of A needed.
    top = jnp.concatenate([a, b], axis=-1) * dt
    bottom = jnp.zeros(top.shape[:-2] + (b.shape[-1], n + b.shape[-1]), top.dtype)
    m = jax.scipy.linalg.expm(
        jnp.concatenate([top, bottom], axis=-2), max_squarings=_EXPM_MAX_SQUARINGS
    )
    return m[..., :n, :n], m[..., :n, n:]


def _dense_bilinear(a, b, dt):
    n = a.shape[-1]
    eye = jnp.broadcast_to(jnp.eye(n, dtype=a.dtype), a.shape)
    # One solve for both right-hand sides: one LU of (I - dt A/2), forward and backward
    # (two solves of the same matrix cost about 5x as much on CPU: XLA factors it twice).
    both = jnp.linalg.solve(
        eye - 0.5 * dt * a, jnp.concatenate([eye + 0.5 * dt * a, dt * b], axis=-1)
    )
    return both[..., :n], both[..., n:]


_DENSE: dict[str, Callable] = {"zoh": _dense_zoh, "bilinear": _dense_bilinear}


def discretize_dense(
    A: Inexact[Array, "*batch N N"],
    B: Inexact[Array, "*batch N H"],
    dt: Float[Array, "*batch"] | Float[Array, ""] | float,
    method: str = "zoh",
) -> tuple[Inexact[Array, "*batch N N"], Inexact[Array, "*batch N H"]]:
    """Discretise a dense system ``x' = A x + B u`` (ZOH through one block matrix exponential;
    bilinear ``Ā = (I - dt A/2)^{-1}(I + dt A/2)``, ``B̄ = (I - dt A/2)^{-1} dt B``).

    Args:
        A: ``(..., N, N)``; B: ``(..., N, H)`` with the same leading dimensions and dtype
            (complex or real floating point);
        dt: positive finite steps, a scalar or ``(...)`` one per system (values are checked
            when concrete, not under ``jit``).
        method: ``"zoh"`` or ``"bilinear"``.

    Returns:
        ``(A_bar, B_bar)`` in the wider precision of ``A`` and an array ``dt`` (a Python float
        ``dt`` takes ``A``'s), at least float32 (half precision computes in float32), as
        :func:`discretize_diagonal`. ZOH is NaN beyond
        ``||[A, B] dt||_1 ≈ 1.3e8`` (float32; 1.8e8 in float64), where the scaling-and-squaring
        exponential would need more than 24 squarings.

    Raises:
        ValueError: on a bad ``method``, misshapen ``A``, ``B`` or ``dt``, or a concrete
            ``dt`` that is not finite and ``> 0``; TypeError on a non-floating ``A``/``B``,
            different dtypes of ``A`` and ``B``, or a complex ``dt``.
    """
    check_choice("method", method, DISCRETIZATIONS)
    A, B = jnp.asarray(A), jnp.asarray(B)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"`A` must be square, shape (..., N, N); got A.shape={A.shape}.")
    if B.ndim != A.ndim or B.shape[:-2] != A.shape[:-2] or B.shape[-2] != A.shape[-1]:
        vector = B.shape == A.shape[:-1]  # hippo's B: one input, without its column axis
        raise ValueError(
            f"`B` must be (..., N, H) with A's leading dimensions and N = A.shape[-1] = "
            f"{A.shape[-1]} rows, i.e. {A.shape[:-1]} + (H,); got B.shape={B.shape} "
            f"(A.shape={A.shape})."
            + (" For a single-input B (N,), as hippo returns, pass B[..., None]." if vector else "")
        )
    for name, x in (("A", A), ("B", B)):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            raise TypeError(
                f"`{name}` must be a floating-point or complex array; got dtype {x.dtype}."
            )
    if A.dtype != B.dtype:
        raise TypeError(f"`A` and `B` must share a dtype; got {A.dtype} and {B.dtype}.")
    if jnp.finfo(A.dtype).bits < 32:
        # half precision computes in float32 (jax's expm and LU refuse float16 and bfloat16
        # with errors that name neither argument), as discretize_diagonal's complex64
        A, B = A.astype(jnp.float32), B.astype(jnp.float32)
    dt_in, dt = dt, _as_dt(dt)
    if _wider(dt_in, dt, jnp.finfo(A.dtype).dtype):  # a float64 dt array is not narrowed
        A = A.astype(result_dtype(A.dtype, dt.dtype))
        B = B.astype(A.dtype)
    if dt.ndim and dt.shape != A.shape[:-2]:
        raise ValueError(
            f"`dt` must be a scalar or one step per system, shape A.shape[:-2]={A.shape[:-2]}; "
            f"got dt.shape={dt.shape}."
        )
    d = dt.astype(A.dtype).reshape(dt.shape + (1, 1))
    return _DENSE[method](A, B, d)


def init_log_dt(
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    dtype=jnp.float32,
) -> Float[Array, "..."]:
    """``log dt`` with ``dt`` log-uniform in ``[dt_min, dt_max]`` (S4/S4D/S5 initialisation),
    drawn in float32 (float64) and rounded once to ``dtype``.

    Raises TypeError unless ``dt_min`` and ``dt_max`` are real numbers and ``dtype`` is a
    floating-point type, ValueError unless ``0 < dt_min <= dt_max < inf``.
    """
    lo = check_positive_float("dt_min", dt_min)
    hi = check_positive_float("dt_max", dt_max)
    if hi < lo:
        raise ValueError(f"expected dt_min <= dt_max; got dt_min={lo}, dt_max={hi}.")
    dtype = check_float_dtype("dtype", dtype)
    check_key("key", key)
    return uniform(key, shape, dtype, math.log(lo), math.log(hi))
