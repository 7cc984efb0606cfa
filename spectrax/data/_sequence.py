"""Seeded synthetic long-range sequence tasks for state-space models (nothing downloaded).

- :func:`delayed_recall`: classify a signal token seen at least ``min_lag`` steps before the
  end of a sequence of noise tokens (one-hot inputs, integer label; read the last output).
- :func:`delayed_copy`: sequence-to-sequence regression ``y_t = u_{t - delay}`` of a smooth
  random signal (a pure delay, the response HiPPO-LegT/S4 approximate).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from spectrax._checks import (
    check_float_dtype,
    check_key,
    check_positive_float,
    check_positive_int,
    compute_dtype,
)


def _check_dtype(dtype):
    """``dtype`` as a real floating-point dtype JAX can produce in the current mode: float64
    outside 64-bit mode would be narrowed to float32 with only a warning."""
    return check_float_dtype("dtype", dtype)


def delayed_recall(
    key: PRNGKeyArray,
    num: int,
    length: int,
    *,
    min_lag: int = 256,
    num_classes: int = 4,
    num_noise: int = 4,
    dtype=jnp.float32,
) -> tuple[Float[Array, "B L H"], Int[Array, " B"]]:
    """Recall a token from at least ``min_lag`` steps back.

    Every position holds one of ``num_noise`` noise tokens drawn uniformly, except one position
    ``p`` drawn uniformly in ``[0, length - min_lag)`` that holds one of ``num_classes`` signal
    tokens; the label is that signal token. Read from the last position, the answer is
    ``length - 1 - p >= min_lag`` steps back, so a model whose memory is shorter than
    ``min_lag`` is at chance (``1 / num_classes``).

    Args:
        key: PRNG key (the data are a function of it only, the same with and without
            ``jax_enable_x64``).
        num: number of sequences ``B``. length: ``L > min_lag``.
        min_lag: smallest distance from the signal token to the last position (``>= 1``).
        num_classes: signal tokens (the classes), ``>= 2``. num_noise: noise tokens, ``>= 1``.
        dtype: real float dtype of the one-hot inputs (float32; float64 needs
            ``jax.enable_x64``).

    Returns:
        ``(x, y)``: one-hot inputs ``(B, L, num_classes + num_noise)`` (signal tokens first)
        and int32 labels ``(B,)`` in ``[0, num_classes)``.
    """
    check_key("key", key)
    num = check_positive_int("num", num)
    min_lag = check_positive_int("min_lag", min_lag)
    length = check_positive_int("length", length)
    if length <= min_lag:
        # "`length` must be an integer >= 257" named neither min_lag nor its default of 256
        raise ValueError(
            f"`length`={length} must exceed `min_lag`={min_lag} (the signal token sits at least "
            f"min_lag steps before the end); expected length >= {min_lag + 1}, or a smaller "
            "min_lag (the default is 256)."
        )
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    num_noise = check_positive_int("num_noise", num_noise)
    dtype = _check_dtype(dtype)
    kn, kp, kl = jax.random.split(key, 3)
    # int32 explicitly: the default integer is int64 under jax_enable_x64, a different stream
    i32 = jnp.int32
    noise = jax.random.randint(kn, (num, length), num_classes, num_classes + num_noise, i32)
    pos = jax.random.randint(kp, (num,), 0, length - min_lag, i32)
    labels = jax.random.randint(kl, (num,), 0, num_classes, i32)
    at_pos = jnp.arange(length, dtype=i32)[None, :] == pos[:, None]
    tokens = jnp.where(at_pos, labels[:, None], noise)
    return jax.nn.one_hot(tokens, num_classes + num_noise, dtype=dtype), labels


def delayed_copy(
    key: PRNGKeyArray,
    num: int,
    length: int,
    *,
    delay: int = 256,
    channels: int = 1,
    cutoff: float = 0.05,
    dtype=jnp.float32,
) -> tuple[Float[Array, "B L H"], Float[Array, "B L H"]]:
    """Delay a smooth random signal: ``y[t] = u[t - delay]`` (zero for ``t < delay``).

    ``u`` is white noise low-passed to the normalised frequency band ``[0, cutoff]``
    (cycles per step, ``0 < cutoff <= 0.5``) and scaled to unit RMS per channel.

    Args:
        key: PRNG key. num: number of sequences ``B``. length: ``L > delay``.
        delay: the shift, ``>= 0``. channels: ``H``. cutoff: the band edge, at least
            ``1 / length`` (the lowest frequency above 0).
        dtype: real float dtype of ``u`` and ``y`` (float32). Half precision (bfloat16,
            float16) is drawn and filtered in float32 (XLA has no half-precision FFT) and
            rounded once: the float32 data cast. float64 needs ``jax.enable_x64``.

    Returns:
        ``(u, y)``, each ``(B, L, channels)``.
    """
    check_key("key", key)
    num = check_positive_int("num", num)
    length = check_positive_int("length", length)
    delay = check_positive_int("delay", delay, minimum=0)
    channels = check_positive_int("channels", channels)
    cutoff = check_positive_float("cutoff", cutoff)
    if not cutoff <= 0.5:
        raise ValueError(f"`cutoff` must be in (0, 0.5] cycles per step; got {cutoff!r}.")
    dtype = _check_dtype(dtype)
    if delay >= length:
        # every target was the zero padding: a task with nothing to copy, returned silently
        raise ValueError(
            f"`delay`={delay} must be less than `length`={length} (else every target y[t] = "
            f"u[t - delay] is the zero padding); expected length > delay, e.g. length="
            f"{delay + 1} or more, or a smaller delay (the default is 256)."
        )
    if cutoff < 1.0 / length:
        # only the constant bin passed: after normalising, every input was ±1 throughout
        raise ValueError(
            f"`cutoff`={cutoff!r} keeps no frequency above 0 for `length`={length} (the lowest "
            f"is 1/length = {1.0 / length:g} cycles per step): every input would be constant; "
            f"expected cutoff >= {1.0 / length:g}, or a longer sequence."
        )
    work = compute_dtype(dtype)
    white = jax.random.normal(key, (num, length, channels), work)
    spec = jnp.fft.rfft(white, axis=1)
    # k / L <= cutoff decided on the host in float64 (k / L correctly rounded, as is a decimal
    # cutoff): in float32 k * f32(1 / L) rounded above a cutoff it equals (3/30 > 0.1), and
    # the band edge then depended on jax_enable_x64
    keep = np.arange(length // 2 + 1) / length <= cutoff
    mask = jnp.asarray(keep.reshape(1, -1, 1), spec.dtype)
    u = jnp.fft.irfft(spec * mask, n=length, axis=1).astype(work)
    u = u / jnp.sqrt(jnp.mean(u * u, axis=1, keepdims=True) + jnp.asarray(1e-12, work))
    u = u.astype(dtype)
    y = jnp.concatenate([jnp.zeros((num, min(delay, length), channels), dtype), u], axis=1)
    return u, y[:, :length]
