"""Public FFT convolution: validation, frequency-domain filters, custom_vjp and dispatch."""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from spectrax._checks import (
    broadcast_leading,
    check_choice,
    check_inexact,
    check_positive_int,
    check_real_float,
    complex_dtype,
    compute_dtype,
    lift_rank,
)
from spectrax.transforms import conv_fft_size

IMPLS = ("auto", "xla", "pallas")


class SpectralFilter(eqx.Module):
    """A convolution filter already in the frequency domain, for filters reused across calls.

    Build it with :func:`fft_conv_filter`; pass it to :func:`fft_conv` in place of ``k``.
    It is a pytree whose only leaf is ``k_f``, so it can be cached, vmapped, and
    differentiated (``jax.grad`` w.r.t. ``k_f`` follows JAX's complex convention).

    Attributes:
        k_f: ``rfft(k, n)``, shape ``(*kbatch, n//2 + 1)``: complex128 for a float64 ``k``
            (x64 on), else complex64 (half-precision filters are transformed in float32).
        length: the sequence length ``L`` the filter was built for.
        kernel_size: the filter length ``K`` in the time domain (``K <= L``; ``K == L`` when
            not causal).
        causal: linear (causal) or circular convolution.
    """

    k_f: Complex[Array, "*kbatch F"]
    length: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    causal: bool = eqx.field(static=True)

    def __check_init__(self):
        # a hand-built filter gets the checks fft_conv_filter makes (K > L gave a wrong size)
        check_positive_int("length", self.length)
        check_positive_int("kernel_size", self.kernel_size)
        if not isinstance(self.causal, (bool, np.bool_)):
            raise TypeError(f"`causal` must be a bool; got {self.causal!r}.")
        if self.kernel_size > self.length if self.causal else self.kernel_size != self.length:
            raise ValueError(
                f"SpectralFilter `kernel_size`={self.kernel_size} does not fit `length`="
                f"{self.length} with causal={self.causal}; expected kernel_size "
                + ("<= length." if self.causal else "== length (circular).")
            )

    @property
    def fft_size(self) -> int:
        return conv_fft_size(self.length, self.kernel_size, causal=self.causal)


def check_array(name: str, x) -> None:
    """TypeError naming ``name`` unless ``x`` is a JAX or NumPy array (a Python number or
    list has no shape to validate; it failed later without naming the argument)."""
    if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
        raise TypeError(
            f"`{name}` must be a JAX or NumPy array; got {type(x).__name__} {x!r}. "
            f"Pass e.g. jnp.asarray({name}, jnp.float32)."
        )


def fft_conv_filter(
    k: Float[Array, "*kbatch K"], length: int, *, causal: bool = True
) -> SpectralFilter:
    """Transform a filter once for repeated use with :func:`fft_conv` on length-``length`` inputs.

    Args:
        k: real filter ``(*kbatch, K)`` with ``K <= length`` (``K == length`` if not causal).
        length: the input length ``L`` it will be applied to.
        causal: as in :func:`fft_conv`.
    """
    check_array("k", k)
    check_real_float("k", k)
    if k.ndim < 1:
        raise ValueError(f"`k` must have shape (..., K); got a scalar of shape {k.shape}.")
    length = check_positive_int("length", length)
    check_lengths(length, k.shape[-1], causal, "length")
    n = conv_fft_size(length, k.shape[-1], causal=causal)
    real = compute_dtype(k.dtype)
    k_f = jnp.fft.rfft(k.astype(real), n=n)
    return SpectralFilter(k_f=k_f, length=length, kernel_size=int(k.shape[-1]), causal=causal)


def check_lengths(
    length: int, ksize: int, causal: bool, long_name: str = "u", hint: str = ""
) -> None:
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"`causal` must be a bool; got {causal!r}.")
    if length < 1 or ksize < 1:
        raise ValueError(f"`u` and `k` need a non-empty last axis; got L={length}, K={ksize}.")
    if causal and ksize > length:
        raise ValueError(
            f"`k` is longer than `{long_name}`: K={ksize} > L={length}; expected K <= L "
            "(truncate the filter to the sequence length)." + hint
        )
    if not causal and ksize != length:
        raise ValueError(
            f"`causal=False` is circular convolution and needs K == L; got K={ksize}, "
            f"L={length}. Use causal=True for a shorter filter, or pad `k` to L."
        )


def check_args(
    u: Array,
    k: Array | SpectralFilter,
    causal: bool,
    *,
    pre_gate: Array | None = None,
    post_gate: Array | None = None,
) -> tuple[Array, Array | SpectralFilter, Array | None, Array | None]:
    """Trace-time validation of :func:`fft_conv`'s arguments, shared by every implementation
    (each public entry point calls it): dtypes, lengths, a :class:`SpectralFilter`'s size, and
    that ``u``, ``k`` and the gates broadcast together. Returns ``(u, k, pre_gate, post_gate)``
    with NumPy arrays as JAX arrays, in the dtype JAX gives them (a NumPy float64 array without
    ``jax_enable_x64`` is float32, as under ``jit``; its raw dtype asked for float64 casts,
    which JAX truncated with a warning, and impl="pallas" refused it)."""
    check_array("u", u)
    check_real_float("u", u)
    if u.ndim < 1:
        raise ValueError(f"`u` must have shape (..., L); got a scalar of shape {u.shape}.")
    length = u.shape[-1]
    if isinstance(k, SpectralFilter):
        # the same check as for an array k (causal=1 compared equal to True and passed)
        if not isinstance(causal, (bool, np.bool_)):
            raise TypeError(f"`causal` must be a bool; got {causal!r}.")
        if k.length != length:
            raise ValueError(
                f"`k` is a SpectralFilter built for length {k.length}; got `u` with L={length}. "
                "Rebuild it with fft_conv_filter(k, length=L)."
            )
        if k.causal != causal:
            raise ValueError(
                f"`k` is a SpectralFilter built with causal={k.causal}; got causal={causal}. "
                f"Expected the same causal, or rebuild it with fft_conv_filter(k, length=L, "
                f"causal={causal})."
            )
        # a list failed with "'list' object has no attribute 'ndim'"; an integer or bool
        # "spectrum" was taken as complex, though no rfft gives one
        check_inexact("k.k_f", k.k_f)
        bins = k.fft_size // 2 + 1
        if k.k_f.ndim < 1 or k.k_f.shape[-1] != bins:
            raise ValueError(
                f"`k` is a SpectralFilter whose k_f has shape {k.k_f.shape}; expected "
                f"(..., {bins}), the rfft bins of its size-{k.fft_size} transform (L={k.length}, "
                f"K={k.kernel_size}, causal={k.causal}). Build it with fft_conv_filter."
            )
        k_lead = tuple(k.k_f.shape[:-1])
    else:
        check_array("k", k)
        check_real_float("k", k)
        if k.ndim < 1:
            raise ValueError(f"`k` must have shape (..., K); got a scalar of shape {k.shape}.")
        hint = ""
        if u.ndim >= 2 and u.shape[-2] >= k.shape[-1] > length:
            # the natural mistake: a time-major (L, H) sequence, as the nn layers take it
            hint = (
                f" fft_conv convolves along the last axis of `u` (..., L), here of size {length}; "
                f"if `u` {tuple(u.shape)} is time-major (..., L, H), pass jnp.swapaxes(u, -1, -2)."
            )
        check_lengths(length, k.shape[-1], causal, hint=hint)
        k_lead = tuple(k.shape[:-1])
    out_lead = broadcast_leading("u", u.shape[:-1], "k", k_lead)
    against = f"`u` {tuple(u.shape[:-1])} broadcast with `k` {k_lead}"
    for name, gate in (("pre_gate", pre_gate), ("post_gate", post_gate)):
        if gate is None:
            continue
        check_array(name, gate)
        check_real_float(name, gate)
        if gate.ndim < 1 or gate.shape[-1] != length:
            raise ValueError(f"`{name}` must have shape (..., L={length}); got {gate.shape}.")
        try:
            lead = np.broadcast_shapes(out_lead, tuple(gate.shape[:-1]))
        except ValueError:
            raise ValueError(
                f"leading dimensions of `{name}` {tuple(gate.shape[:-1])} do not broadcast "
                f"against the output's {out_lead} ({against}); expected a gate of shape "
                f"(*lead, L={length}) whose lead broadcasts with {out_lead} (NumPy rules, as "
                f"in `post_gate * conv(pre_gate * u, k)`), e.g. ({length},)."
            ) from None
        # the second gate must broadcast with what the first made of the output, too
        out_lead, against = lead, f"{against} and with `{name}` {tuple(gate.shape[:-1])}"
    return tuple(
        jnp.asarray(x) if isinstance(x, (np.ndarray, np.generic)) else x
        for x in (u, k, pre_gate, post_gate)
    )


def _sum_to(x: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``x`` over the axes that broadcasting added or expanded to reach ``x.shape``."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1
    )
    if axes:
        x = jnp.sum(x, axis=axes, keepdims=False)
        # re-insert the size-1 axes that were summed (they were kept in shape)
        x = x.reshape(shape)
    return x


# ---------------------------------------------------------------------------------------------
# XLA implementation: forward and backward are each a pair of real FFTs.
# The backward uses correlations: du = corr(g, k), dk = corr(g, u)[:K] (summed over broadcast
# dims). With n >= L + K - 1 the circular correlations equal the linear ones on the kept range.
# ---------------------------------------------------------------------------------------------


def _conv_time_impl(u, k, causal):
    length, ksize = u.shape[-1], k.shape[-1]
    n = conv_fft_size(length, ksize, causal=causal)
    real = compute_dtype(u.dtype, k.dtype)
    u_f = jnp.fft.rfft(u.astype(real), n=n)
    k_f = jnp.fft.rfft(k.astype(real), n=n)
    y = jnp.fft.irfft(u_f * k_f, n=n)[..., :length]
    return y, (u_f, k_f)


def _conv_time_fwd(u, k, causal, meta):
    y, (u_f, k_f) = _conv_time_impl(u, k, causal)
    return y.astype(u.dtype), (u_f, k_f)


def _conv_time_bwd(causal, meta, res, g):
    u_f, k_f = res
    u_shape, u_dtype, k_shape, k_dtype = meta
    length, ksize = u_shape[-1], k_shape[-1]
    n = conv_fft_size(length, ksize, causal=causal)
    real = jnp.real(u_f).dtype
    g_f = jnp.fft.rfft(g.astype(real), n=n)
    # Summed over the broadcast dimensions in the frequency domain (the inverse transform is
    # linear): one inverse FFT per row of u or k, not one per row of the output (a (H, K)
    # filter under a (B, H, L) input took B times the inverse FFTs its gradient needs).
    bins = g_f.shape[-1]
    du_f = _sum_to(g_f * jnp.conj(k_f), tuple(u_shape[:-1]) + (bins,))
    dk_f = _sum_to(g_f * jnp.conj(u_f), tuple(k_shape[:-1]) + (bins,))
    du = jnp.fft.irfft(du_f, n=n)[..., :length].astype(u_dtype)
    dk = jnp.fft.irfft(dk_f, n=n)[..., :ksize].astype(k_dtype)
    return du, dk


def _conv_time_primal(u, k, causal, meta):
    # `meta` (shapes and dtypes of u and k) is static so the backward can un-broadcast.
    return _conv_time_impl(u, k, causal)[0].astype(u.dtype)


_conv_time = jax.custom_vjp(_conv_time_primal, nondiff_argnums=(2, 3))
_conv_time.defvjp(_conv_time_fwd, _conv_time_bwd)


def _rfft_bin_weights(n: int, real) -> Array:
    """Weight of each rfft bin in a real inner product: 1 for DC (and Nyquist if n even), else 2."""
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return jnp.asarray(w, real)


def _conv_freq_impl(u, k_f, n):
    length = u.shape[-1]
    real = compute_dtype(u.dtype, jnp.real(k_f).dtype)
    u_f = jnp.fft.rfft(u.astype(real), n=n)
    y = jnp.fft.irfft(u_f * k_f.astype(complex_dtype(real)), n=n)[..., :length]
    return y, u_f


def _conv_freq_fwd(u, k_f, n, meta):
    y, u_f = _conv_freq_impl(u, k_f, n)
    return y.astype(u.dtype), (u_f, k_f)


def _conv_freq_bwd(n, meta, res, g):
    u_f, k_f = res
    u_shape, u_dtype = meta
    length = u_shape[-1]
    real = jnp.real(u_f).dtype
    g_f = jnp.fft.rfft(g.astype(real), n=n)
    # summed over broadcast dimensions before the inverse FFT, as in _conv_time_bwd
    du_f = _sum_to(g_f * jnp.conj(k_f.astype(u_f.dtype)), tuple(u_shape[:-1]) + (g_f.shape[-1],))
    du = jnp.fft.irfft(du_f, n=n)[..., :length].astype(u_dtype)
    # Cotangent of k_f under JAX's convention for complex inputs (the transpose of the linear
    # map k_f -> irfft(u_f * k_f)): irfft's transpose is conj(w/n * rfft(g)), w the bin weights.
    weights = (_rfft_bin_weights(n, real) / n).astype(u_f.dtype)
    dk_f = jnp.conj(g_f) * u_f * lift_rank(weights, g_f.ndim)
    dk_f = _sum_to(dk_f, tuple(k_f.shape)).astype(k_f.dtype)
    return du, dk_f


def _conv_freq_primal(u, k_f, n, meta):
    return _conv_freq_impl(u, k_f, n)[0].astype(u.dtype)


_conv_freq = jax.custom_vjp(_conv_freq_primal, nondiff_argnums=(2, 3))
_conv_freq.defvjp(_conv_freq_fwd, _conv_freq_bwd)


def _gate(x: Array, gate: Array | None) -> Array:
    """``x * gate`` with explicit broadcasting, in ``x``'s dtype (``x`` unchanged if no gate)."""
    if gate is None:
        return x
    nd = max(x.ndim, gate.ndim)
    x, gate = lift_rank(x, nd), lift_rank(gate, nd)
    shape = jnp.broadcast_shapes(x.shape, gate.shape)
    return jnp.broadcast_to(x, shape) * jnp.broadcast_to(gate, shape).astype(x.dtype)


def fft_conv_xla(
    u: Array,
    k: Array | SpectralFilter,
    *,
    causal: bool = True,
    pre_gate: Array | None = None,
    post_gate: Array | None = None,
) -> Array:
    """The ``impl="xla"`` path: ``jnp.fft`` transforms with an FFT-correlation backward pass;
    gates (``y = post_gate * conv(pre_gate * u, k)``) are plain elementwise products.
    Arguments and result as in :func:`fft_conv`."""
    u, k, pre_gate, post_gate = check_args(u, k, causal, pre_gate=pre_gate, post_gate=post_gate)
    if pre_gate is not None or post_gate is not None:
        # Gates in the compute dtype (float32 for half precision, as the Pallas kernels do):
        # the result is rounded to u's dtype once, at the end.
        v = _gate(u.astype(compute_dtype(u.dtype)), pre_gate)
        return _gate(fft_conv_xla(v, k, causal=causal), post_gate).astype(u.dtype)
    # Equal ranks up front (explicit broadcasting); autodiff of the reshape restores the
    # caller's shapes, and the custom_vjp sums cotangents over the size-1 axes.
    k_arr = k.k_f if isinstance(k, SpectralFilter) else k
    nd = max(u.ndim, k_arr.ndim)
    u = lift_rank(u, nd)
    k_arr = lift_rank(k_arr, nd)
    u_meta = (tuple(u.shape), jnp.dtype(u.dtype))
    if isinstance(k, SpectralFilter):
        return _conv_freq(u, k_arr, k.fft_size, u_meta)
    return _conv_time(u, k_arr, causal, u_meta + (tuple(k_arr.shape), jnp.dtype(k_arr.dtype)))


# Registry of implementations: the Pallas package adds "pallas" (and its supports() predicate).
_IMPLEMENTATIONS: dict[str, Callable[..., Array]] = {"xla": fft_conv_xla}
_SUPPORTS: dict[str, Callable[..., bool]] = {}
_PLATFORMS: dict[str, Callable[[], tuple[str, ...]] | None] = {}


def register_impl(
    name: str,
    fn: Callable[..., Array],
    supports: Callable[..., bool],
    *,
    platforms: Callable[[], tuple[str, ...]] | None = None,
) -> None:
    """Register an fft_conv implementation, selected by ``fft_conv(..., impl=name)``.
    ``supports(u, k, causal)`` says whether ``auto`` may choose it for these arguments on the
    default backend. ``fn(u, k, causal=..., pre_gate=..., post_gate=...)`` receives validated
    arguments (gates only when given). ``platforms()``, if given, names the lowering platforms
    (``"cuda"``, ``"rocm"``, ``"tpu"``, ``"cpu"``) where ``auto`` may run ``fn``: its choice is
    then staged with ``jax.lax.platform_dependent`` and a computation lowered for any other
    platform (e.g. arrays placed on the CPU of a GPU host) runs ``impl="xla"``, with ``fn``
    never lowered there."""
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"`name` must be a non-empty string other than 'auto'; got {name!r}.")
    if not callable(fn) or not callable(supports) or not (platforms is None or callable(platforms)):
        raise TypeError("`fn`, `supports` and `platforms` (if given) must be callables.")
    _IMPLEMENTATIONS[name] = fn
    _SUPPORTS[name] = supports
    _PLATFORMS[name] = platforms


@functools.partial(jax.jit, static_argnames=("fn", "platforms", "causal"))
def _per_platform(u, k, gates, *, fn, platforms, causal):
    """``fn`` where the computation is lowered for one of ``platforms``, XLA elsewhere. Under
    ``jit`` so that an eager call is lowered for the device its arrays live on (outside a
    trace ``platform_dependent`` would pick its branch by the default backend)."""

    def run(impl):
        return lambda u, k, gates: impl(u, k, causal=causal, **gates)

    branches = dict.fromkeys(platforms, run(fn))
    return jax.lax.platform_dependent(u, k, gates, default=run(fft_conv_xla), **branches)


def _auto(u, k, causal, gates):
    """``impl="auto"``: the first registered implementation that supports the arguments,
    restricted to its lowering platforms when it names them; else XLA."""
    for name, ok in _SUPPORTS.items():
        if ok(u, k, causal):
            fn, platforms = _IMPLEMENTATIONS[name], _PLATFORMS.get(name)
            if platforms is None:
                return fn(u, k, causal=causal, **gates)
            return _per_platform(u, k, gates, fn=fn, platforms=tuple(platforms()), causal=causal)
    return fft_conv_xla(u, k, causal=causal, **gates)


def available_impls() -> list[str]:
    """The implementations registered in this process (``"xla"`` always)."""
    return sorted(_IMPLEMENTATIONS)


def fft_conv(
    u: Float[Array, "*#batch L"],
    k: Float[Array, "*#kbatch K"] | SpectralFilter,
    *,
    causal: bool = True,
    impl: str = "auto",
    pre_gate: Float[Array, "*#gbatch L"] | None = None,
    post_gate: Float[Array, "*#gbatch L"] | None = None,
) -> Float[Array, "*batch L"]:
    """FFT convolution of real sequences along the last axis (Hyena/FlashFFTConv long convolution).

    ``causal=True``: ``y[..., t] = sum_{s=0}^{min(t, K-1)} k[..., s] u[..., t-s]``, the linear
    convolution truncated to ``L``, computed with a zero-padded real FFT of a fast size
    (7-smooth, ``>= L + K - 1``). ``causal=False``: circular convolution, ``K == L``.

    The backward pass is itself FFT correlations (``du = corr(g, k)``, ``dk = corr(g, u)``
    summed over broadcast dimensions) through a ``jax.custom_vjp``; no autodiff through rfft.
    Reverse mode only: ``jax.grad``, ``jax.vjp`` and ``jax.jacrev`` work on every path;
    ``jax.jvp`` and ``jax.jacfwd`` of this function raise, as for any ``custom_vjp`` (use
    :func:`spectrax.kernels.fft_conv.fft_conv_reference` for forward mode). Second and higher
    derivatives (grad of grad, ``jax.hessian`` = forward over reverse) work on every path;
    under the Pallas
    kernels (``impl="pallas"``, and ``"auto"`` on a GPU/TPU) the first derivatives run on the
    kernels and the derivatives of those run under ``jnp.fft``.

    Args:
        u: real input ``(..., L)``: float32, bfloat16, float16, or float64 (with x64 on).
        k: real filter ``(..., K)``, ``K <= L``, leading dims broadcastable against ``u``'s
            (e.g. ``u (B, H, L)``, ``k (H, K)``); or a :class:`SpectralFilter` from
            :func:`fft_conv_filter` (a filter transformed once and reused).
        causal: linear (causal) or circular convolution.
        impl: ``"xla"`` (``jnp.fft``), ``"pallas"`` (fused kernel, GPU/TPU), ``"auto"``
            (on a GPU/TPU host, Pallas where it supports the arguments and the computation is
            lowered for that accelerator, chosen per lowering platform with
            ``jax.lax.platform_dependent``; XLA otherwise, e.g. on a CPU host or for arrays
            placed on the host CPU), or a name given to :func:`register_impl`.
        pre_gate, post_gate: optional real gates ``(..., L)`` broadcastable against the
            output: ``y = post_gate * conv(pre_gate * u, k)`` (Hyena/H3 gating; Poli et al.,
            2023, "Hyena Hierarchy"), fused into the Pallas kernel, elementwise under XLA.

    Returns:
        ``(lead, L)`` in ``u``'s dtype, ``lead`` the leading dims of ``u``, ``k`` and the
        gates broadcast together (a gate with more leading dims enlarges the output).
        Half-precision inputs are computed in float32 (XLA has no half-precision FFT) and
        rounded once at the end.

    Numerical limits: causality holds to rounding, not exactly. Every output of a row is
    computed from the whole row's spectrum, so ``y[..., :t]`` carries an error of about
    ``eps * ||u|| ||k||`` from ``u[..., t:]``, and a NaN or inf anywhere in a row of ``u``
    (or ``k``) makes that whole output row NaN, earlier times included (a direct causal sum
    would keep them finite).
    """
    # the built-in names, and any registered with register_impl
    check_choice("impl", impl, tuple(dict.fromkeys((*IMPLS, *_IMPLEMENTATIONS))))
    u, k, pre_gate, post_gate = check_args(u, k, causal, pre_gate=pre_gate, post_gate=post_gate)
    gates = {
        name: gate
        for name, gate in (("pre_gate", pre_gate), ("post_gate", post_gate))
        if gate is not None
    }
    if impl == "auto":
        return _auto(u, k, causal, gates)
    if impl not in _IMPLEMENTATIONS:
        raise ValueError(
            f"`impl`={impl!r} is not available in this installation; available: "
            f"{available_impls()}. The Pallas kernels register themselves when "
            "spectrax.kernels.fft_conv can import jax.experimental.pallas."
        )
    return _IMPLEMENTATIONS[impl](u, k, causal=causal, **gates)
