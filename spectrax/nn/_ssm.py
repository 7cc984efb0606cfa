"""State-space sequence layers S4 (DPLR), S4D (diagonal) and S5 (MIMO diagonal) on ``(L, H)``.

Each layer has a training mode (``"conv"``: kernel + FFT convolution; ``"scan"``: parallel
associative scan; ``"recurrent"``: sequential ``lax.scan``), all equal up to rounding, and
``init_state`` / ``step`` for token-by-token inference. Complex parameters are stored as real
arrays with a trailing axis of 2 (real, imaginary), so optimisers and checkpoints see only real
floats.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from spectrax._checks import (
    check_bool,
    check_choice,
    check_float_dtype,
    check_key,
    check_parameters,
    check_positive_float,
    check_positive_int,
    check_real_float,
    complex_dtype,
    compute_dtype,
    widen_to_input,
)
from spectrax._compile import compiled_call
from spectrax._random import normal
from spectrax.kernels.fft_conv import fft_conv
from spectrax.ssm import (
    DIAGONAL_INITS,
    DISCRETIZATIONS,
    MEASURES,
    discretize_dense,
    discretize_diagonal,
    init_log_dt,
    log_discrete_eigenvalues,
    nplr,
    ptd_legs,
    ptd_slots,
    scan_dense,
    scan_diagonal,
    vandermonde_kernel,
)
from spectrax.ssm import dense_kernel as _dense_kernel
from spectrax.ssm import dplr_kernel as _dplr_kernel

MODES = ("conv", "scan", "recurrent")
_SCAN_OF_MODE = {"scan": "associative", "recurrent": "sequential"}


# Smallest decay rate -Re Λ at initialisation (measures whose normal part has Re Λ = 0).
_MIN_DECAY = 1e-4


def _f32(x: Array) -> Array:
    """Half-precision parameters computed in float32 (complex arithmetic needs >= 32 bits)."""
    return x if x.dtype in (jnp.float32, jnp.float64) else x.astype(jnp.float32)


def _to_complex(x: Array) -> Array:
    if x.ndim == 0 or x.shape[-1] != 2:
        # x[..., 1] of a size-1 axis is clamped to x[..., 0] (imag = real) and a third entry
        # ignored: a parameter swapped in with eqx.tree_at at another shape ran silently
        raise ValueError(
            "a complex SSM parameter is stored as real and imaginary parts on a last axis of 2, "
            f"(..., 2); got shape {x.shape}. Replace parameters with arrays of the shape they had."
        )
    x = _f32(x)
    return jax.lax.complex(x[..., 0], x[..., 1])


def _from_complex(z: np.ndarray, dtype) -> Array:
    return jnp.asarray(np.stack([z.real, z.imag], axis=-1), dtype)


def sequence_hint(shape: tuple[int, ...], channels: int, name: str = "x") -> str:
    """The fix for a sequence of the wrong ``shape``: its transpose for a channels-first
    ``(H, L)`` one (the axis order of :func:`spectrax.fft_conv` and of fields), else
    ``jax.vmap`` for a batch."""
    if len(shape) == 2 and shape[0] == channels != shape[1]:
        return f"It looks channels-first (H, L); sequences are time-major (L, H): pass {name}.T."
    return "Batch with jax.vmap."


def _check_sequence(x: Array, channels: int) -> None:
    check_real_float("x", x)
    if x.ndim != 2 or x.shape[1] != channels or x.shape[0] < 1:
        raise ValueError(
            f"expected one sequence of shape (L, H) with L >= 1 and H={channels}; got "
            f"x.shape={x.shape}. {sequence_hint(x.shape, channels)}"
        )


def _check_step(x_t: Array, state: Array, channels: int, zero_state: Array) -> None:
    check_real_float("x_t", x_t)
    if x_t.shape != (channels,):
        raise ValueError(
            f"`x_t` must be one time step of shape (H,) = ({channels},); got {x_t.shape}."
        )
    if tuple(jnp.shape(state)) != zero_state.shape:
        raise ValueError(
            f"`state` must have shape {zero_state.shape} (see init_state()); got "
            f"{jnp.shape(state)}."
        )
    # Another dtype would come back as the updated state in a third one (a real state turns
    # complex, complex128 stays complex128 with float32 parameters), and lax.scan would refuse
    # the carry with an error that names neither.
    if jnp.result_type(state) != zero_state.dtype:
        raise TypeError(
            f"`state` must have dtype {zero_state.dtype}, as init_state() returns for these "
            f"parameters; got {jnp.result_type(state)}. Start from layer.init_state()."
        )


def _widened_step(layer, x_t: Array, state: Array, body: Callable) -> tuple[Array, Array]:
    """A layer's :meth:`step` under its ``__call__`` dtype rule: checks ``x_t`` and ``state``,
    runs ``body(layer, x_t, state)`` on the layer widened to float64 for a float64 ``x_t`` (as
    ``__call__`` widens for a float64 sequence), and returns ``y_t`` in ``x_t``'s dtype and the
    new state in :meth:`init_state`'s dtype, so ``lax.scan`` can carry it (a float64 step of a
    float32 layer rounds the state to complex64 between steps)."""
    _no_step_if_bidirectional(layer)
    zero = layer.init_state()
    _check_step(x_t, state, layer.channels, zero)
    x_t = jnp.asarray(x_t)  # NumPy float64 is float32 without x64, as in __call__
    wide = widen_to_input(layer, x_t.dtype)
    y, new = body(wide, x_t, jnp.asarray(state).astype(wide.init_state().dtype))
    return y.astype(x_t.dtype), new.astype(zero.dtype)


def _check_init_fits(layer: Any, dtype: Any, what: str) -> None:
    """A ValueError naming ``dtype`` if a concrete initial parameter of ``layer`` is not finite:
    HiPPO's imaginary parts grow like N^2 (LegS 2.1e4 at N = 256, S4D-Inv 8.3e4 at N = 512), past
    float16's largest number (65504), and became inf with only NumPy's cast warning; the output
    was NaN. Skipped under a trace (``jax.jit``, ``eqx.filter_eval_shape``), where no value
    exists."""
    for name in ("log_Lambda_re", "Lambda_im", "P", "B", "C", "C_back", "D", "log_dt"):
        a = getattr(layer, name, None)
        if a is None or isinstance(a, jax.core.Tracer) or bool(jnp.all(jnp.isfinite(a))):
            continue
        raise ValueError(
            f"`dtype`={jnp.dtype(dtype)} cannot hold the initial `{name}` of "
            f"{type(layer).__name__}(state_size={layer.state_size}, {what}): values beyond its "
            f"largest finite number {float(jnp.finfo(dtype).max):.6g} became inf. Use bfloat16 "
            "(float32's range) or float32 parameters, or a smaller state_size."
        )


def _check_dt_range(dt_min: Any, dt_max: Any) -> tuple[float, float]:
    """``(dt_min, dt_max)`` as floats, as :func:`~spectrax.ssm.init_log_dt` takes them (Python,
    NumPy or concrete JAX numbers); a type or range error names the argument."""
    lo, hi = check_positive_float("dt_min", dt_min), check_positive_float("dt_max", dt_max)
    if not lo <= hi:
        raise ValueError(
            "`dt_min` and `dt_max` must be finite numbers with 0 < dt_min <= dt_max; got "
            f"dt_min={lo!r}, dt_max={hi!r}."
        )
    return lo, hi


def _check_dt_steps(dt, shape: tuple, what: str) -> Array:
    """S5's per-step scale: real, of ``shape``, and (when concrete) finite and > 0. A Python
    number is a float (``step(x_t, state, dt=2)``: an int array is refused, a literal is not)."""
    if isinstance(dt, int) and not isinstance(dt, bool):
        dt = float(dt)
    dt = jnp.asarray(dt)
    check_real_float("dt", dt)
    if dt.shape != shape:
        raise ValueError(f"`dt` must be {what} {shape}; got shape {dt.shape}.")
    if not isinstance(dt, jax.core.Tracer):
        v = np.asarray(dt, np.float64)
        bad = ~(np.isfinite(v) & (v > 0))
        if np.any(bad):
            first = float(v[bad].ravel()[0])
            where = f" at step {int(np.flatnonzero(bad.ravel())[0])}" if v.ndim else ""
            raise ValueError(
                f"`dt` must be finite and positive at every step; got {first!r}{where} "
                f"({int(np.count_nonzero(bad))} of {v.size} steps)."
            )
    return dt


def _s5_precheck(layer, x=None, *args, dt=None, mode=None, **kwargs) -> None:
    """The checks of ``S5.__call__`` made before it is traced: ``dt``'s values (finite, > 0)
    are seen only here, where they are concrete (in the same order as the call's checks)."""
    if x is None or dt is None:
        return
    _check_sequence(x, layer.channels)
    check_choice("mode", layer.mode if mode is None else mode, MODES)
    _check_dt_steps(dt, (np.shape(x)[0],), "(L,)")


def _check_backward(layer, backward: bool) -> None:
    if backward and layer.C_back is None:
        raise ValueError(
            "`backward=True` needs a layer built with bidirectional=True (this one has no "
            "backward read-out)."
        )


def _complex_normal(key, shape, std, dtype) -> Array:
    return normal(key, shape + (2,), dtype, std / math.sqrt(2.0))


# The random parameters of a layer are drawn by one jitted program per size and dtype: eagerly,
# every draw, split and scaling compiled on its own (S5: 13 compilations, about 1.2 s on a 2-core
# CPU, for one layer). The operations and their order are those of the eager code, so the bits
# are the same; nested in an outer jit or eqx.filter_eval_shape it is inlined.
_STATIC_DRAW = ("h", "m", "bidirectional", "dt_min", "dt_max", "dtype")


@functools.partial(jax.jit, static_argnames=_STATIC_DRAW)
def _draw_readout(key, vc_re=None, vc_im=None, *, h, m, bidirectional, dt_min, dt_max, dtype):
    """S4/S4D: ``(C, C_back, D, log_dt)`` from ``key``; ``C`` and ``C_back`` ``(h, m, 2)``,
    drawn in the eigenbasis (``E|C̃|² = 1``), or, given the fixed columns ``vc_re + i vc_im``
    ``(n, m)`` of a non-unitary eigenbasis (S4D-PTD), the real read-out ``c (h, n)`` itself, a
    standard normal drawn in the columns' dtype: the layer reads out with ``C̃ = c Ṽ``
    (``E|C̃|² = 1`` for unit columns)."""
    kc, kb, kdt, kd = jax.random.split(key, 4)

    def readout(k):
        if vc_re is None:
            return _complex_normal(k, (h, m), 1.0, dtype)
        n = vc_re.shape[0]
        return jax.random.normal(k, (h * n,), vc_re.dtype).reshape(h, n).astype(dtype)

    c = readout(kc)
    c_back = readout(kb) if bidirectional else None
    return c, c_back, normal(kd, (h,), dtype), init_log_dt(kdt, (h,), dt_min, dt_max, dtype)


def _stack_matmul(x, y_re, y_im, *, left: bool) -> Array:
    """A complex matrix ``y_re + i y_im`` times a real ``x`` (``y x``, or ``x y`` if not
    ``left``), as ``(..., 2)`` real and imaginary parts: two real matmuls."""
    hi = jax.lax.Precision.HIGHEST
    mm = (
        (lambda y: jnp.matmul(y, x, precision=hi))
        if left
        else (lambda y: jnp.matmul(x, y, precision=hi))
    )
    return jnp.stack([mm(y_re), mm(y_im)], axis=-1)


@functools.partial(jax.jit, static_argnames=_STATIC_DRAW)
def _draw_s5(key, vk_re, vk_im, vc_re, vc_im, *, h, m, bidirectional, dt_min, dt_max, dtype):
    """S5: ``(B, C, C_back, D, log_dt)`` from ``key``, ``B = W b`` for the fixed rows
    ``vk_re + i vk_im`` ``(m, n)`` (``V^H`` for HiPPO, ``n = 2m``; PTD's ``Ṽ^{-1}`` slots) and a
    real ``b (n, h)`` in the dtype of ``vk_re`` (float32, float64 for float64 parameters,
    whatever ``jax_enable_x64``). ``C``: drawn in the eigenbasis when
    ``vc_re`` is None, else the real read-out ``c (h, n)`` of variance ``1/(2m)`` itself, in
    ``vc_re``'s dtype, which the layer reads out as ``c V`` for the fixed columns
    ``vc_re + i vc_im`` ``(n, m)`` (``E|C̃|² = 1/(2m)`` for unit columns)."""
    kb, kc, kcb, kdt, kd = jax.random.split(key, 5)
    # W b in jnp (not NumPy) so the module also builds under jit and eqx.filter_eval_shape (a
    # checkpoint's abstract skeleton); real and imaginary parts are two real matmuls. Drawn flat
    # and reshaped: the same bits, compiled faster (see spectrax._random).
    n = vk_re.shape[1]
    b = jax.random.normal(kb, (n * h,), vk_re.dtype).reshape(n, h)
    std = 1.0 / math.sqrt(2 * m)

    def readout(k):
        if vc_re is None:
            return _complex_normal(k, (h, m), std, dtype)
        c = jax.random.normal(k, (h * n,), vc_re.dtype).reshape(h, n)
        return (c * std).astype(dtype)  # the real read-out; C̃ = c Ṽ (S5._readout)

    return (
        (_stack_matmul(b, vk_re, vk_im, left=True) / math.sqrt(h)).astype(dtype),
        readout(kc),
        readout(kcb) if bidirectional else None,
        normal(kd, (h,), dtype),
        init_log_dt(kdt, (m,), dt_min, dt_max, dtype),
    )


def _bidirectional(fn: Callable[[Array, Array], Array], x: Array, c: Array, c_back) -> Array:
    """``fn(x, c)`` plus, if there is a backward read-out, the same system run on reversed time."""
    y = fn(x, c)
    if c_back is None:
        return y
    return y + jnp.flip(fn(jnp.flip(x, 0), c_back), 0)


def _no_step_if_bidirectional(layer) -> None:
    if layer.bidirectional:
        raise ValueError(
            "`step` needs a causal layer; this one was built with bidirectional=True, whose "
            "output depends on future inputs. Build it with bidirectional=False for decoding."
        )


def _apply_siso(layer, x: Array, mode: str | None) -> Array:
    """The shared ``__call__`` of :class:`S4D` and :class:`S4`: ``y = K * x + D x`` per channel
    through the layer's ``_conv(u, c)`` or ``_scan(u, c, method)``, plus the backward read-out
    when there is one."""
    _check_sequence(x, layer.channels)
    x = jnp.asarray(x)  # a NumPy float64 x is float32 without x64: the output's dtype too
    mode = layer.mode if mode is None else mode
    check_choice("mode", mode, MODES)
    layer = widen_to_input(layer, x.dtype)  # a float64 input computes in float64
    xc = x.astype(_f32(layer.D).dtype)  # half precision computes in float32
    if mode == "conv":
        fn = layer._conv
    else:
        method = _SCAN_OF_MODE[mode]
        fn = lambda u, c: layer._scan(u, c, method)  # noqa: E731
    y = _bidirectional(fn, xc, layer.C, layer.C_back).astype(xc.dtype) + xc * _f32(layer.D)[None, :]
    return y.astype(x.dtype)


class S4D(eqx.Module):
    """Diagonal state-space layer: ``H`` independent SISO systems of ``N // 2`` complex states.

    Gu, Gupta, Goel & Ré, 2022, "On the Parameterization and Initialization of Diagonal State
    Space Models". Per channel ``h``: ``x' = Λ_h x + B_h u_h``, ``y_h = 2 Re(C_h x) + D_h u_h``
    (conjugate-pair symmetry: ``N // 2`` states stand for ``N`` real ones), discretised with
    step ``exp(log_dt[h])``. ``Re Λ = -exp(log_Lambda_re)`` stays negative.

    Args:
        channels: ``H``. state_size: ``N`` (even).
        init: ``"legs"`` | ``"lin"`` | ``"inv"`` | ``"ptd"`` (S4D-LegS/Lin/Inv; default
            ``"legs"``), or S4D-PTD (Yu, Mahoney & Erichson, 2024: the perturb-then-diagonalise
            HiPPO-LegS of :func:`~spectrax.ssm.s4d_ptd`, its transfer function 3e-2 from
            LegS's where S4D-LegS's is 3.1 away at N = 64; real eigenvalues in slots at half
            weight of ``B``, on which ``C`` acts through its real part). ``C`` is drawn in the
            eigenbasis (``E|C̃|² = 1``) for the other inits, stored as ``(H, N // 2, 2)``; for
            PTD the parameter ``C`` (and ``C_back``) is a real ``c (H, n)``, standard normal at
            init, read out as ``C̃ = c Ṽ`` (``Ṽ`` the fixed PTD eigenvector columns), so each
            channel is the real system ``(Ã, b, c)``: its slots' large terms (``|B̃|`` up to
            1.9e4 at N = 64) cancel, initial kernel rms 0.020 against S4D-LegS's 0.06
            (N = H = 64, ``L = 1024``; a ``C`` drawn in the eigenbasis gave 6.1), float32
            kernel 5.4e-5 from float64 (median channel; S4D-LegS 3.3e-5). ``c`` is trained in
            that basis: trained as ``C̃`` itself, Adam's steps moved the cancelling products
            ``C̃ B̃`` tens of times further than for LegS, and S4D-PTD stayed at chance on
            delayed recall 256 steps back (0.26-0.27 after 400 steps, seeds 0-3) where the real
            basis learns it (0.72 to 1.0; ``benchmarks/recall-cpu.json`` and
            ``recall-ptd-slot-readout-cpu.json``, ``scripts/bench_recall.py``).
        disc: ``"zoh"`` (default) or ``"bilinear"``.
        mode: ``"conv"`` (default), ``"scan"`` or ``"recurrent"``. ``"conv"`` runs
            :func:`spectrax.fft_conv`, a ``custom_vjp``: reverse mode and second derivatives
            (``jax.grad``, ``jax.hessian``) work, but ``jax.jvp`` / ``jax.jacfwd`` of a
            ``"conv"`` call raise (as for :class:`S4` and :class:`S5` in ``"conv"`` mode, and
            :class:`~spectrax.nn.HyenaOperator`); ``"scan"`` supports forward mode.
        bidirectional: add a backward read-out of the same system on reversed time.
        dt_min, dt_max: log-uniform range of the initial steps (1e-3, 1e-1).
        dtype: parameter dtype (float32; half precision is drawn in float32 and rounded once).
            Dtype rule, shared by :class:`S4` and :class:`S5`:
            ``__call__`` returns ``(L, H)`` in ``x``'s dtype, computed in float64 if ``x`` or
            the parameters are float64 (the parameters are widened for the call), else in
            float32 (half-precision parameters and inputs alike: the complex arithmetic needs
            32 bits), and rounded to ``x``'s dtype once. :meth:`step` follows the same rule
            (float64 for a float64 ``x_t``: the parameters are widened for the step) and
            returns ``y_t`` in ``x_t``'s dtype; the state keeps :meth:`init_state`'s dtype
            (complex64, or complex128 for float64 parameters), so a float64 step of float32
            parameters rounds the state to complex64 between steps.
        key: PRNG key (keyword-only).
    """

    log_Lambda_re: Float[Array, "H M"]
    Lambda_im: Float[Array, "H M"]
    B: Float[Array, "H M 2"]
    C: Float[Array, "H M 2"] | Float[Array, "H n"]  # (H, n): init="ptd"'s real read-out c
    C_back: Float[Array, "H M 2"] | Float[Array, "H n"] | None
    D: Float[Array, " H"]
    log_dt: Float[Array, " H"]
    channels: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    disc: str = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    bidirectional: bool = eqx.field(static=True)
    ssm_params: ClassVar[frozenset[str]] = frozenset({"log_Lambda_re", "Lambda_im", "B", "log_dt"})
    parameter_dims: ClassVar[dict] = {"H": "channels", "M": lambda layer: layer.state_size // 2}

    def __init__(
        self,
        channels: int,
        state_size: int = 64,
        *,
        init: str = "legs",
        disc: str = "zoh",
        mode: str = "conv",
        bidirectional: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.channels = check_positive_int("channels", channels)
        self.state_size = check_positive_int("state_size", state_size)
        if state_size % 2:
            raise ValueError(
                f"`state_size` must be even (N // 2 conjugate pairs are kept); got {state_size}."
            )
        check_choice("init", init, tuple(DIAGONAL_INITS))
        check_choice("disc", disc, DISCRETIZATIONS)
        check_choice("mode", mode, MODES)
        dt_min, dt_max = _check_dt_range(dt_min, dt_max)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        self.disc, self.mode, self.bidirectional = (
            disc,
            mode,
            check_bool("bidirectional", bidirectional),
        )
        lam, b = DIAGONAL_INITS[init](state_size)
        m = lam.shape[0]
        h = self.channels
        self.log_Lambda_re = jnp.asarray(np.tile(np.log(-lam.real), (h, 1)), dtype)
        self.Lambda_im = jnp.asarray(np.tile(lam.imag, (h, 1)), dtype)
        self.B = _from_complex(np.tile(b, (h, 1)), dtype)
        cols = None
        if init == "ptd":
            # Ṽ is not unitary: a C drawn in the eigenbasis does not cancel the slots' large
            # B̃ (up to 1.9e4 at N = 64) as the read-out of a real system does; its initial
            # kernel was about 100x S4D-LegS's (rms 6.1 vs 0.06 at N = 64, L = 1024; with
            # C = c Ṽ: 0.020).
            # c and Ṽ in float32 (float64 for float64 parameters), not the default float
            # dtype: the same C with jax_enable_x64 on or off, as the other inits' draws.
            wide = jnp.float64 if dtype == jnp.float64 else jnp.float32
            cols = ptd_slots(*ptd_legs(state_size)[:2])[2]
            cols = (jnp.asarray(cols.real, wide), jnp.asarray(cols.imag, wide))
        self.C, self.C_back, self.D, self.log_dt = _draw_readout(
            key,
            *(cols or ()),
            h=h,
            m=m,
            bidirectional=self.bidirectional,
            dt_min=float(dt_min),
            dt_max=float(dt_max),
            dtype=dtype,
        )
        _check_init_fits(self, dtype, f"init={init!r}")

    def discrete(self) -> tuple[Complex[Array, "H M"], Complex[Array, "H M"]]:
        """``(Λ̄, B̄)``, each ``(H, N // 2)``."""
        check_parameters(self)
        lam = jax.lax.complex(-jnp.exp(_f32(self.log_Lambda_re)), _f32(self.Lambda_im))
        lam_bar, gamma = discretize_diagonal(lam, jnp.exp(_f32(self.log_dt))[:, None], self.disc)
        return lam_bar, gamma * _to_complex(self.B)

    def _log_lambda_bar(self) -> tuple[Complex[Array, "H M"], Array]:
        """``(log ±Λ̄, negated)`` from ``Λ`` and ``dt`` (exact digits for slow modes, and for
        a ``Λ̄`` near -1; see :func:`~spectrax.ssm.log_discrete_eigenvalues`)."""
        lam = jax.lax.complex(-jnp.exp(_f32(self.log_Lambda_re)), _f32(self.Lambda_im))
        dt = jnp.exp(_f32(self.log_dt))[:, None]
        return log_discrete_eigenvalues(lam, dt, self.disc, half_turn=True)

    def kernel(self, length: int, *, backward: bool = False) -> Float[Array, "H L"]:
        """The real convolution kernel ``K[h, l] = 2 Re(C_h Λ̄_h^l B̄_h)``, ``(H, L)``."""
        _check_backward(self, backward)
        return self._kernel(self.C_back if backward else self.C, length)

    def _kernel(self, c: Array, length: int) -> Array:
        lam_bar, b_bar = self.discrete()
        log_lam, negated = self._log_lambda_bar()
        k = vandermonde_kernel(
            lam_bar, self._readout(c) * b_bar, length, log_Lambda_bar=log_lam, negated=negated
        )
        return 2.0 * jnp.real(k)

    def _readout(self, c: Array) -> Complex[Array, "H M"]:
        """The slots' complex read-out ``C̃`` ``(H, N // 2)`` of ``C`` or ``C_back``: stored as
        real and imaginary parts ``(H, N // 2, 2)``, or for ``init="ptd"`` as the real ``c``
        ``(H, n)`` in the PTD eigenbasis, ``C̃ = c Ṽ`` (``Ṽ`` recomputed from the cached
        :func:`~spectrax.ssm.ptd_legs`, a constant)."""
        if c.ndim == 3:
            return _to_complex(c)
        c = _f32(c)
        cols = ptd_slots(*ptd_legs(self.state_size)[:2])[2]
        v_re, v_im = (jnp.asarray(part, c.dtype) for part in (cols.real, cols.imag))
        return _to_complex(_stack_matmul(c, v_re, v_im, left=False))

    def _conv(self, x: Array, c: Array) -> Array:
        return fft_conv(x.T, self._kernel(c, x.shape[0])).T

    def _scan(self, x: Array, c: Array, method: str) -> Array:
        lam_bar, b_bar = self.discrete()
        bu = b_bar[:, None, :] * x.T[:, :, None].astype(b_bar.dtype)  # (H, L, M)
        states = scan_diagonal(lam_bar[:, None, :], bu, method=method)
        return 2.0 * jnp.real(jnp.einsum("hlm,hm->lh", states, self._readout(c)))

    @compiled_call
    def __call__(self, x: Float[Array, "L H"], *, mode: str | None = None) -> Float[Array, "L H"]:
        """Apply the layer to one sequence ``(L, H)`` (``mode`` overrides the layer's)."""
        return _apply_siso(self, x, mode)

    def init_state(self) -> Complex[Array, "H M"]:
        """Zero state ``(H, N // 2)`` for :meth:`step`."""
        return jnp.zeros(self.Lambda_im.shape, complex_dtype(self.D.dtype))

    @compiled_call
    def step(
        self, x_t: Float[Array, " H"], state: Complex[Array, "H M"]
    ) -> tuple[Float[Array, " H"], Complex[Array, "H M"]]:
        """One recurrent step: ``x = Λ̄ x + B̄ u``, ``y = 2 Re(C x) + D u``; computes in float64
        for a float64 ``x_t``, as ``__call__`` (the state keeps :meth:`init_state`'s dtype).
        An eager call is one compiled program, as ``__call__``."""
        return _widened_step(self, x_t, state, S4D._step)

    def _step(self, x_t: Array, state: Array) -> tuple[Array, Array]:
        lam_bar, b_bar = self.discrete()
        u = x_t.astype(_f32(self.D).dtype)
        state = lam_bar * state + b_bar * u[:, None].astype(b_bar.dtype)
        y = 2.0 * jnp.real(jnp.sum(self._readout(self.C) * state, axis=-1)).astype(u.dtype)
        return y + _f32(self.D) * u, state


class S4(eqx.Module):
    """Structured state-space layer with a DPLR state matrix (S4).

    Gu, Goel & Ré, 2022, "Efficiently Modeling Long Sequences with Structured State Spaces".
    All ``H`` channels share ``A = diag(Λ) - P^T P̄`` and ``B`` (initialised from the NPLR form
    of a HiPPO measure, in the eigenbasis, all ``N`` complex states kept), each channel has its
    own step and read-out: ``y_h = Re(C_h x_h) + D_h u_h``. ``Re Λ = -exp(log_Lambda_re)`` stays
    negative, so ``A`` stays stable under training (measures whose normal part has ``Re Λ = 0``,
    LegT/LagT/FouT, start at ``-1e-4``). With ``disc="bilinear"`` (default)
    the convolution kernel is S4's Cauchy/Woodbury algorithm (:func:`spectrax.ssm.dplr_kernel`);
    with ``"zoh"`` no structured algorithm applies and the kernel is the dense power sum
    (``O(L N^2)`` per channel). ``"scan"`` multiplies dense ``N x N`` matrices (``O(L N^3)``):
    for checks and short sequences.

    Precision: the Cauchy kernel evaluates the generating function on the unit circle, where a
    mode with ``Re Λ`` near 0 is a resonance: its denominator ``2 sin(θ)/dt - cos(θ) Im Λ`` is
    a difference of two large numbers, so float32 loses about ``eps |Im Λ| / |Re Λ|`` there. At
    initialisation (float32 kernel vs the float64 kernel of the same parameters, ``N`` = 16..64,
    ``L`` = 1K..16K, 24 channels each): LegS 8e-6 median / 7e-5 worst channel; LegT 6e-5 /
    9e-2; LagT 2e-4 / 2e-3 (relative L2 per channel). Where LegT/LagT kernels must be accurate,
    compute in float64 (``jax.config.update("jax_enable_x64", True)``, ``dtype=jnp.float64``);
    training moves ``Re Λ`` away from the ``-1e-4`` start.

    Args:
        channels: ``H``. state_size: ``N``. measure: a HiPPO measure (``"legs"``, ``"legt"``,
        ``"lagt"``, ``"fout"``; S4's own name for it). init: the same, under the keyword
        :class:`S4D` and :class:`S5` use for their initialisation, so that
        ``layer_kwargs={"init": ...}`` of :class:`~spectrax.models.SSMSequenceModel` names it
        for every layer (the values are each layer's own: S4 measures, S4D ``"legs"``, ``"lin"``,
        ``"inv"``, ``"ptd"``, S5 ``"hippo"``, ``"ptd"``); give one of the two (both only if
        equal). Others as :class:`S4D` (but the default ``disc`` is S4's
        ``"bilinear"``), ``dtype`` with its dtype rule (the output in ``x``'s dtype, computed in
        float64 if ``x`` or the parameters are, else in float32).
    """

    log_Lambda_re: Float[Array, " N"]
    Lambda_im: Float[Array, " N"]
    P: Float[Array, "r N 2"]
    B: Float[Array, "N 2"]
    C: Float[Array, "H N 2"]
    C_back: Float[Array, "H N 2"] | None
    D: Float[Array, " H"]
    log_dt: Float[Array, " H"]
    channels: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    disc: str = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    bidirectional: bool = eqx.field(static=True)
    ssm_params: ClassVar[frozenset[str]] = frozenset(
        {"log_Lambda_re", "Lambda_im", "P", "B", "log_dt"}
    )
    parameter_dims: ClassVar[dict] = {"H": "channels", "N": "state_size"}

    def __init__(
        self,
        channels: int,
        state_size: int = 64,
        *,
        measure: str | None = None,
        disc: str = "bilinear",
        mode: str = "conv",
        bidirectional: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dtype=jnp.float32,
        key: PRNGKeyArray,
        init: str | None = None,
    ):
        self.channels = check_positive_int("channels", channels)
        self.state_size = check_positive_int("state_size", state_size)
        if init is not None:
            check_choice("init", init, MEASURES)
            if measure is not None and measure != init:
                raise ValueError(
                    f"`measure` and `init` name the same thing (S4's HiPPO measure); got "
                    f"measure={measure!r} and init={init!r}: give one of them."
                )
            measure = init
        measure = "legs" if measure is None else measure
        check_choice("measure", measure, MEASURES)
        check_choice("disc", disc, DISCRETIZATIONS)
        check_choice("mode", mode, MODES)
        dt_min, dt_max = _check_dt_range(dt_min, dt_max)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        self.disc, self.mode, self.bidirectional = (
            disc,
            mode,
            check_bool("bidirectional", bidirectional),
        )
        lam, p, b, v = nplr(measure, state_size)
        vh = v.conj().T
        h, n = self.channels, self.state_size
        # Re Λ = -exp(log_Lambda_re) < 0 whatever training does (the official S4's "exp" real
        # transform). LegT/LagT/FouT start at Re Λ = 0, which the log cannot hold: they start at
        # -1e-4, a stability margin far inside any step's resolution.
        self.log_Lambda_re = jnp.asarray(np.log(np.maximum(-lam.real, _MIN_DECAY)), dtype)
        self.Lambda_im = jnp.asarray(lam.imag, dtype)
        self.P = _from_complex((vh @ p.T).T, dtype)
        self.B = _from_complex(vh @ b, dtype)
        self.C, self.C_back, self.D, self.log_dt = _draw_readout(
            key,
            h=h,
            m=n,
            bidirectional=self.bidirectional,
            dt_min=float(dt_min),
            dt_max=float(dt_max),
            dtype=dtype,
        )
        _check_init_fits(self, dtype, f"measure={measure!r}")

    def _lambda(self) -> Complex[Array, " N"]:
        return jax.lax.complex(-jnp.exp(_f32(self.log_Lambda_re)), _f32(self.Lambda_im))

    def continuous(self) -> tuple[Complex[Array, "N N"], Complex[Array, " N"]]:
        """The dense continuous ``(A, B)`` in the eigenbasis."""
        lam = self._lambda()
        p = _to_complex(self.P)
        return jnp.diag(lam) - p.T @ jnp.conj(p), _to_complex(self.B)

    def discrete(self) -> tuple[Complex[Array, "H N N"], Complex[Array, "H N"]]:
        """Per-channel ``(Ā, B̄)``: ``(H, N, N)`` and ``(H, N)``."""
        check_parameters(self)
        a, b = self.continuous()
        h, n = self.channels, self.state_size
        a_bar, b_bar = discretize_dense(
            jnp.broadcast_to(a, (h, n, n)),
            jnp.broadcast_to(b[:, None], (h, n, 1)),
            jnp.exp(_f32(self.log_dt)),
            self.disc,
        )
        return a_bar, b_bar[..., 0]

    def kernel(self, length: int, *, backward: bool = False) -> Float[Array, "H L"]:
        """The real kernel ``K[h, l] = Re(C_h Ā_h^l B̄_h)``, ``(H, L)``."""
        _check_backward(self, backward)
        return self._kernel(self.C_back if backward else self.C, length)

    def _kernel(self, c: Array, length: int) -> Array:
        cc = _to_complex(c)
        if self.disc == "bilinear":
            lam = self._lambda()
            k = _dplr_kernel(
                lam,
                _to_complex(self.P),
                _to_complex(self.B),
                cc,
                jnp.exp(_f32(self.log_dt)),
                length,
            )
        else:
            a_bar, b_bar = self.discrete()
            k = _dense_kernel(a_bar, b_bar, cc, length)
        return jnp.real(k)

    def _conv(self, x: Array, c: Array) -> Array:
        return fft_conv(x.T, self._kernel(c, x.shape[0])).T

    def _scan(self, x: Array, c: Array, method: str) -> Array:
        a_bar, b_bar = self.discrete()
        bu = b_bar[:, None, :] * x.T[:, :, None].astype(b_bar.dtype)  # (H, L, N)
        states = jax.vmap(lambda a, b: scan_dense(a, b, method=method))(a_bar, bu)
        return jnp.real(jnp.einsum("hln,hn->lh", states, _to_complex(c)))

    @compiled_call
    def __call__(self, x: Float[Array, "L H"], *, mode: str | None = None) -> Float[Array, "L H"]:
        """Apply the layer to one sequence ``(L, H)`` (``mode`` overrides the layer's)."""
        return _apply_siso(self, x, mode)

    def init_state(self) -> Complex[Array, "H N"]:
        """Zero state ``(H, N)`` for :meth:`step`."""
        return jnp.zeros((self.channels, self.state_size), complex_dtype(self.D.dtype))

    @compiled_call
    def step(
        self, x_t: Float[Array, " H"], state: Complex[Array, "H N"]
    ) -> tuple[Float[Array, " H"], Complex[Array, "H N"]]:
        """One recurrent step with the dense discrete matrices (``O(H N^2)``); computes in
        float64 for a float64 ``x_t``, as ``__call__`` (the state keeps :meth:`init_state`'s
        dtype). An eager call is one compiled program, as ``__call__``."""
        return _widened_step(self, x_t, state, S4._step)

    def _step(self, x_t: Array, state: Array) -> tuple[Array, Array]:
        a_bar, b_bar = self.discrete()
        u = x_t.astype(_f32(self.D).dtype)
        state = jnp.einsum("hij,hj->hi", a_bar, state) + b_bar * u[:, None].astype(b_bar.dtype)
        y = jnp.real(jnp.sum(_to_complex(self.C) * state, axis=-1)).astype(u.dtype)
        return y + _f32(self.D) * u, state


def _s5_hippo(size: int) -> tuple[np.ndarray, np.ndarray, None]:
    """HiPPO-N: the ``size // 2`` eigenvalues of LegS's normal part with positive imaginary
    part and the rows of ``V^*`` (unitary ``V``); ``C`` is drawn in the eigenbasis."""
    lam, _, _, v = nplr("legs", size)
    keep = np.argsort(lam.imag)[size // 2 :]
    return lam[keep], v.conj().T[keep], None


def _s5_ptd(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PTD: the slots of the perturbed LegS (:func:`~spectrax.ssm.ptd_slots`), ``B = Ṽ^{-1} b``
    (``Ṽ`` is not unitary) and ``C = c Ṽ`` for real ``b``, ``c``."""
    lam, v, _, _ = ptd_legs(size)
    return ptd_slots(lam, v)


_S5_INITS: dict[str, Callable[[int], tuple]] = {"hippo": _s5_hippo, "ptd": _s5_ptd}


class S5(eqx.Module):
    """Simplified state-space layer: one MIMO diagonal system of ``P // 2`` complex states.

    Smith, Warrington & Linderman, 2023, "Simplified State Space Layers for Sequence Modeling".
    ``x' = Λ x + B u``, ``y = 2 Re(C x) + D ⊙ u`` with ``B (P/2, H)``, ``C (H, P/2)`` complex
    (conjugate symmetry), a step per state ``exp(log_dt)``. The default mode is the parallel
    scan, which also accepts per-step ``dt`` (irregular sampling); ``"conv"`` builds the
    ``(H, H, L)`` MIMO kernel (memory ``H^2 L``).

    Initialisation, S5's block-diagonal HiPPO-N: ``Λ`` is the diagonal of HiPPO-LegS's NPLR
    form at size ``P/J`` (the eigenvalues of its normal part ``S = A + p p^T``), the ``P/(2J)``
    with positive imaginary part, repeated for each of the ``J = blocks`` blocks (timescales
    repeat across blocks; ``J = 1`` is one HiPPO-N of size ``P``). ``B = V^* b`` for a random
    real ``b (P, H)`` and block-diagonal ``V`` (``J`` copies of the eigenvectors of ``S``): each
    block's states are driven by their own rows of ``b``. ``C`` is drawn directly in the
    eigenbasis (circular complex normal: the law of ``C V`` for a real ``C``).

    Against the reference code (lindermanlab/S5: ``s5/ssm_init.py``, ``s5/ssm.py``,
    ``s5/train.py``, where ``--blocks`` defaults to 8 and the LRA scripts use 3 to 16):

    - ``Λ``: the reference keeps each block's eigenvalues with *negative* imaginary part, their
      conjugates here: the same law of real systems (``V^* b``, ``b`` real, conjugates up to a
      phase per state, which the circular law of ``C`` absorbs). ``Re Λ = -exp(log_Lambda_re)``
      stays negative here; the reference learns ``Re Λ`` itself (optionally clipped).
    - ``b``: the reference draws ``lecun_normal`` of shape ``(P, H)``, which JAX reads as
      fan-in ``P``: truncated normal, std ``1/√P``. Here ``N(0, 1/H)`` (the fan-in of
      ``u ∈ R^H``): ``√(P/H)`` times the reference's scale (equal for ``P = H``).
    - ``C``: the reference default (``trunc_standard_normal``) has real and imaginary parts each
      truncated normal with std ``1/√P``, then ``C̃ = C V``: ``E|C̃|² = 2/P``. Here ``1/P`` (std
      ``1/√2`` times the reference's). Its other options give ``E|C̃|² = 2/(P H)``
      (``lecun_normal``: fan-in ``P H`` for the ``(H, P, 2)`` draw) and 1 (``complex_normal``).
    - ``dt``: per state (``P/2`` log-uniform steps in ``[dt_min, dt_max]``) in both, not per
      block. ``D``: ``N(0, 1)`` in both.

    Args:
        channels: ``H``. state_size: ``P`` (even). disc, bidirectional, dt_min, dt_max, dtype,
        key: as :class:`S4D`, ``dtype`` with its dtype rule (the output in ``x``'s dtype,
        computed in float64 if ``x`` or the parameters are, else in float32; a per-step ``dt``
        is cast to that compute dtype). mode: ``"scan"`` (default), ``"conv"`` or
        ``"recurrent"``. blocks: ``J`` (default 1), the number of HiPPO-N blocks of the
        initialisation; it must split ``P`` into blocks of even size ``P/J`` (whole conjugate
        pairs in each block). Only the initial values depend on it.
        init: ``"hippo"`` (default, the HiPPO-N above) or ``"ptd"`` (S5-PTD, Yu, Mahoney &
            Erichson, 2024): per block, ``Λ`` the slots of the perturb-then-diagonalise
            HiPPO-LegS ``Ã = A_n + E = Ṽ Λ̃ Ṽ^{-1}`` of :func:`~spectrax.ssm.ptd_legs` (size
            ``n = P/J - r`` for its ``r`` real eigenvalues), ``B = Ṽ^{-1} b`` (``Ṽ`` is not
            unitary: not ``Ṽ^*``) for a real ``b (J n, H)`` of the same law, with half the
            weight on real eigenvalues' slots (:func:`~spectrax.ssm.ptd_slots`), and
            ``C = c Ṽ`` for a real ``c (H, J n)`` with variance ``1/P`` (``E|C̃|² = 1/P``, as
            above; the parameter ``C`` (and ``C_back``) is that real ``c``, trained in the
            PTD eigenbasis, as :class:`S4D`'s with ``init="ptd"``, for the same reason): with
            one step ``dt`` for all states the layer is exactly the real system
            ``(Ã, b, c)`` discretised with it (each block; float64 kernels to 1e-11 at
            P = 64). The initial steps differ per state (as for HiPPO-N), which discretises
            each slot with its own step: a different system from the dense one (its kernel
            is O(1) to O(100) relative away), by design. Its initial kernel is larger than
            HiPPO-N's (rms 0.014 to 0.015 against 4e-4 to 6e-4 at P = H = 64, ``L = 1024``,
            keys 0 to 3): the dense LegS dynamics' transient growth, which the normal part
            lacks. Float32 kernel against float64 at init: 4e-7 relative (measured).
    """

    log_Lambda_re: Float[Array, " M"]
    Lambda_im: Float[Array, " M"]
    B: Float[Array, "M H 2"]
    C: Float[Array, "H M 2"] | Float[Array, "H n"]  # (H, J n): init="ptd"'s real read-out c
    C_back: Float[Array, "H M 2"] | Float[Array, "H n"] | None
    D: Float[Array, " H"]
    log_dt: Float[Array, " M"]
    channels: int = eqx.field(static=True)
    state_size: int = eqx.field(static=True)
    blocks: int = eqx.field(static=True)
    disc: str = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    bidirectional: bool = eqx.field(static=True)
    ssm_params: ClassVar[frozenset[str]] = frozenset({"log_Lambda_re", "Lambda_im", "B", "log_dt"})
    parameter_dims: ClassVar[dict] = {"H": "channels", "M": lambda layer: layer.state_size // 2}

    def __init__(
        self,
        channels: int,
        state_size: int = 64,
        *,
        disc: str = "zoh",
        mode: str = "scan",
        bidirectional: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        blocks: int = 1,
        init: str = "hippo",
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.channels = check_positive_int("channels", channels)
        self.state_size = check_positive_int("state_size", state_size)
        blocks = check_positive_int("blocks", blocks)
        check_choice("init", init, tuple(_S5_INITS))
        check_choice("disc", disc, DISCRETIZATIONS)
        check_choice("mode", mode, MODES)
        dt_min, dt_max = _check_dt_range(dt_min, dt_max)
        dtype = check_float_dtype("dtype", dtype)
        check_key("key", key)
        if state_size % 2:
            raise ValueError(
                f"`state_size` must be even (conjugate pairs, P // 2 kept); got {state_size}."
            )
        if state_size % (2 * blocks):
            raise ValueError(
                "`blocks` must split `state_size` into blocks of even size (state_size / blocks "
                f"an even integer: whole conjugate pairs per block); got blocks={blocks}, "
                f"state_size={state_size}."
            )
        self.disc, self.mode, self.bidirectional = (
            disc,
            mode,
            check_bool("bidirectional", bidirectional),
        )
        self.blocks = blocks
        size = state_size // blocks
        lam, w, cols = _S5_INITS[init](size)
        # The block-diagonal maps are J copies of one block's; kron with I_1 is exact, so
        # blocks=1 gives the single-block parameters bit for bit.
        vk = np.kron(np.eye(blocks), w)  # (P/2, J n)
        vc = None if cols is None else np.kron(np.eye(blocks), cols)  # (J n, P/2)
        # b and c drawn in float32 (float64 for float64 parameters), not the default float
        # dtype: a float32 layer's parameters do not depend on jax_enable_x64
        real = compute_dtype(dtype)
        self.log_Lambda_re = jnp.asarray(np.tile(np.log(-lam.real), blocks), dtype)
        self.Lambda_im = jnp.asarray(np.tile(lam.imag, blocks), dtype)
        self.B, self.C, self.C_back, self.D, self.log_dt = _draw_s5(
            key,
            jnp.asarray(vk.real, real),
            jnp.asarray(vk.imag, real),
            None if vc is None else jnp.asarray(vc.real, real),
            None if vc is None else jnp.asarray(vc.imag, real),
            h=self.channels,
            m=state_size // 2,
            bidirectional=self.bidirectional,
            dt_min=float(dt_min),
            dt_max=float(dt_max),
            dtype=dtype,
        )
        _check_init_fits(self, dtype, f"init={init!r}, blocks={blocks}")

    def discrete(
        self, dt: Float[Array, " L"] | None = None
    ) -> tuple[Complex[Array, "T M"], Complex[Array, "T M"]]:
        """``(Λ̄, γ)`` with ``B̄ = γ[:, None] * B``: ``(1, P/2)``, or ``(L, P/2)`` when the
        per-step scale ``dt`` (the step at time ``k`` is ``exp(log_dt) * dt[k]``) is given."""
        check_parameters(self)
        lam = jax.lax.complex(-jnp.exp(_f32(self.log_Lambda_re)), _f32(self.Lambda_im))
        step = jnp.exp(_f32(self.log_dt))[None, :]
        if dt is not None:
            step = step * dt.astype(step.dtype)[:, None]
        return discretize_diagonal(lam[None, :], step, self.disc)

    def _log_lambda_bar(self) -> tuple[Complex[Array, "1 M"], Array]:
        """``(log ±Λ̄, negated)``, each ``(1, P/2)``, from ``Λ`` and ``dt`` (exact digits for
        slow modes, and for a ``Λ̄`` near -1; see :func:`~spectrax.ssm.log_discrete_eigenvalues`)."""
        lam = jax.lax.complex(-jnp.exp(_f32(self.log_Lambda_re)), _f32(self.Lambda_im))
        step = jnp.exp(_f32(self.log_dt))[None, :]
        return log_discrete_eigenvalues(lam[None, :], step, self.disc, half_turn=True)

    def kernel(self, length: int, *, backward: bool = False) -> Float[Array, "H H L"]:
        """The real MIMO kernel ``K[:, :, l] = 2 Re(C Λ̄^l B̄)``, ``(H_out, H_in, L)``."""
        _check_backward(self, backward)
        return self._kernel(self.C_back if backward else self.C, length)

    def _kernel(self, c: Array, length: int) -> Array:
        lam_bar, gamma = self.discrete()
        b_bar = gamma[0][:, None] * _to_complex(self.B)
        w = self._readout(c)[:, None, :] * b_bar.T[None, :, :]  # (H, H, M)
        log_lam, negated = self._log_lambda_bar()
        k = vandermonde_kernel(
            lam_bar[None], w, length, log_Lambda_bar=log_lam[None], negated=negated[None]
        )
        return 2.0 * jnp.real(k)

    def _conv(self, x: Array, c: Array, dt) -> Array:
        if dt is not None:
            raise ValueError("per-step `dt` needs mode='scan' or 'recurrent'; got mode='conv'.")
        k = self._kernel(c, x.shape[0])
        return jnp.sum(fft_conv(x.T[None, :, :], k), axis=1).T

    def _scan(self, x: Array, c: Array, dt, method: str) -> Array:
        lam_bar, gamma = self.discrete(dt)
        bu = gamma * (x.astype(gamma.dtype) @ _to_complex(self.B).T)  # (L, M)
        states = scan_diagonal(lam_bar, bu, method=method)
        return 2.0 * jnp.real(states @ self._readout(c).T)

    def _readout(self, c: Array) -> Complex[Array, "H M"]:
        """The complex read-out ``C̃`` ``(H, P // 2)`` of ``C`` or ``C_back``: stored as real
        and imaginary parts ``(H, P // 2, 2)``, or for ``init="ptd"`` as the real ``c``
        ``(H, J n)`` in the block-diagonal PTD eigenbasis, ``C̃ = c Ṽ`` (``Ṽ`` recomputed
        from the cached :func:`~spectrax.ssm.ptd_legs`, a constant)."""
        if c.ndim == 3:
            return _to_complex(c)
        c = _f32(c)
        cols = np.kron(np.eye(self.blocks), _s5_ptd(self.state_size // self.blocks)[2])
        v_re, v_im = (jnp.asarray(part, c.dtype) for part in (cols.real, cols.imag))
        return _to_complex(_stack_matmul(c, v_re, v_im, left=False))

    @compiled_call(precheck=_s5_precheck)
    def __call__(
        self,
        x: Float[Array, "L H"],
        *,
        dt: Float[Array, " L"] | None = None,
        mode: str | None = None,
    ) -> Float[Array, "L H"]:
        """Apply the layer to ``(L, H)``. ``dt``: optional positive per-step scale of the
        learned steps (e.g. time increments of irregularly sampled inputs)."""
        _check_sequence(x, self.channels)
        x = jnp.asarray(x)  # a NumPy float64 x is float32 without x64: the output's dtype too
        mode = self.mode if mode is None else mode
        check_choice("mode", mode, MODES)
        if dt is not None:
            dt = _check_dt_steps(dt, (x.shape[0],), "(L,)")
        self = widen_to_input(self, x.dtype)  # a float64 input computes in float64
        xc = x.astype(_f32(self.D).dtype)  # half precision computes in float32
        if mode == "conv":
            fn = lambda u, c: self._conv(u, c, dt)  # noqa: E731
        else:
            method = _SCAN_OF_MODE[mode]
            fn = lambda u, c: self._scan(u, c, dt, method)  # noqa: E731
        if self.C_back is not None and dt is not None:
            raise ValueError("per-step `dt` is not supported with bidirectional=True.")
        y = (
            _bidirectional(fn, xc, self.C, self.C_back).astype(xc.dtype)
            + xc * _f32(self.D)[None, :]
        )
        return y.astype(x.dtype)

    def init_state(self) -> Complex[Array, " M"]:
        """Zero state ``(P // 2,)`` for :meth:`step`."""
        return jnp.zeros(self.Lambda_im.shape, complex_dtype(self.D.dtype))

    def step(
        self, x_t: Float[Array, " H"], state: Complex[Array, " M"], dt=None
    ) -> tuple[Float[Array, " H"], Complex[Array, " M"]]:
        """One recurrent step; ``dt`` an optional scalar scale of the step, as in ``__call__``.
        Computes in float64 for a float64 ``x_t``, as ``__call__`` (the state keeps
        :meth:`init_state`'s dtype). An eager call is one compiled program, as ``__call__``
        (``dt`` checked first, then traced: a new value is not a new compilation)."""
        check_parameters(self)
        if dt is not None:
            dt = _check_dt_steps(dt, (), "a scalar")
        return self._compiled_step(x_t, state, dt)

    @compiled_call
    def _compiled_step(self, x_t: Array, state: Array, dt: Array | None) -> tuple[Array, Array]:
        def body(layer, x_t, state):
            lam_bar, gamma = layer.discrete(None if dt is None else jnp.reshape(dt, (1,)))
            u = x_t.astype(_f32(layer.D).dtype)
            state = lam_bar[0] * state + gamma[0] * (_to_complex(layer.B) @ u.astype(gamma.dtype))
            y = 2.0 * jnp.real(layer._readout(layer.C) @ state).astype(u.dtype)
            return y + _f32(layer.D) * u, state

        return _widened_step(self, x_t, state, body)
