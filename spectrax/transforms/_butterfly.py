"""Butterfly matrices: products of ``log2 n`` sparse factors that each mix pairs of entries with
a 2x2 block, applied in ``O(n log n)``; twiddles for the Walsh–Hadamard transform and the FFT.

Dao, Gu, Eichhorn, Rudra & Ré, 2019, "Learning Fast Algorithms for Linear Transforms Using
Butterfly Factorizations".

Layout, shared by every function here. For ``n = 2^k`` a twiddle has shape ``(k, n/2, 2, 2)``;
``twiddle[j]`` holds the ``n/2`` blocks of the factor ``B_j`` of stride ``s = 2^j``, which mixes
the pairs ``(i, i + s)`` with bit ``j`` of ``i`` clear. Writing such an ``i`` as
``i = h 2s + l`` (``0 <= l < s``), its pair has index ``p = h s + l`` and

    (B_j x)[i]     = twiddle[j, p, 0, 0] x[i] + twiddle[j, p, 0, 1] x[i + s]
    (B_j x)[i + s] = twiddle[j, p, 1, 0] x[i] + twiddle[j, p, 1, 1] x[i + s].

Equivalently ``B_j`` acts on ``x.reshape(n/(2s), 2, s)`` with ``twiddle[j].reshape(n/(2s), s,
2, 2)``. ``twiddle[j]`` always belongs to stride ``2^j``, whatever the order of application:
``increasing_stride=True`` gives ``B = B_{k-1} ... B_1 B_0`` (stride 1 applied first: the
paper's recursion ``B^(N) = B_N diag(B^(N/2), B^(N/2))`` and the decimation-in-time FFT),
``False`` gives ``B = B_0 B_1 ... B_{k-1}``.
Hence the transpose of a butterfly is the butterfly of the opposite order with every block
transposed: ``B(tw, inc)^T = B(swapaxes(tw, -1, -2), not inc)``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Inexact, Int

from spectrax._checks import (
    check_bool,
    check_choice,
    check_inexact,
    check_x64_dtype,
    lift_rank,
    result_dtype,
)

FFT_NORMS = ("backward", "ortho", "forward")
_STATIC = " (it picks the order of the factors at trace time)"
# Scale of every 2x2 block: the k = log2(n) factors multiply to 1, 1/sqrt(n), 1/n.
_FFT_BLOCK_SCALE = {"backward": 1.0, "ortho": 1.0 / math.sqrt(2.0), "forward": 0.5}


def _check_size(name: str, n) -> int:
    """``n`` as an int power of two ``>= 2`` or a ValueError naming ``name``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; got {type(n).__name__} {n!r}.")
    n = int(n)
    if n < 2 or n & (n - 1):
        nxt = max(2, 1 << max(n - 1, 0).bit_length())
        raise ValueError(
            f"`{name}`={n} is not a power of two >= 2 (2, 4, 8, ...); a butterfly of "
            f"log2(n) factors needs one. Use e.g. {name}={nxt} and zero-pad the data."
        )
    return n


def _check_dtype(name: str, dtype, kind, what: str) -> np.dtype:
    try:
        d = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be a {what} dtype; got {dtype!r}.") from None
    if not jnp.issubdtype(d, kind):
        raise TypeError(f"`{name}` must be a {what} dtype; got {d}.")
    # float64 / complex128 outside 64-bit mode came back 32-bit with only JAX's warning
    return check_x64_dtype(name, d)


def _work_dtype(dtype) -> np.dtype:
    """Arithmetic dtype: half precision runs in float32 (each of the log2(n) stages would
    otherwise round), everything else in itself."""
    dtype = jnp.dtype(dtype)
    if dtype in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return jnp.dtype(jnp.float32)
    return dtype


def butterfly_multiply(
    twiddle: Inexact[Array, "K M 2 2"],
    x: Inexact[Array, "*batch n"],
    *,
    increasing_stride: bool = True,
) -> Inexact[Array, "*batch n"]:
    """Multiply the last axis of ``x`` by the butterfly matrix of ``twiddle``: ``y = B x``.

    Dao et al., 2019. With ``n = x.shape[-1] = 2^k`` and ``B_j`` the factor of stride ``2^j``
    (layout in the module docstring), ``B = B_{k-1} ... B_0`` when ``increasing_stride`` (stride
    1 applied first) and ``B = B_0 ... B_{k-1}`` otherwise. ``k`` stages of reshapes and
    elementwise products, ``2 n log2(n)`` multiplications; the ``n x n`` matrix is never built
    (:func:`butterfly_to_dense` builds it).

    Args:
        twiddle: real or complex ``(k, n/2, 2, 2)``: ``twiddle[j, p]`` the 2x2 block of pair
            ``p`` in factor ``j``.
        x: real or complex ``(..., n)``, ``n`` a power of two ``>= 2``; any leading batch axes.
        increasing_stride: order of the factors (default True, strides ``1, 2, ..., n/2``).

    Returns:
        ``(..., n)`` in the standard JAX promotion of ``x.dtype`` and ``twiddle.dtype`` (complex
        if either is). Half-precision results are computed in float32 and rounded once at the
        end. Differentiable in both arguments.
    """
    tdtype = check_inexact("twiddle", twiddle)
    xdtype = check_inexact("x", x)
    if x.ndim == 0:
        raise ValueError(
            "`x` is a scalar (shape ()); expected (..., n) with n a power of two >= 2."
        )
    n = x.shape[-1]
    if n < 2 or n & (n - 1):
        nxt = max(2, 1 << max(n - 1, 0).bit_length())
        raise ValueError(
            f"`x` has length {n} along its last axis (shape {x.shape}); a butterfly needs a "
            f"power of two >= 2 (2, 4, 8, ...). Zero-pad that axis, e.g. to {nxt}."
        )
    expected = (n.bit_length() - 1, n // 2, 2, 2)
    if tuple(twiddle.shape) != expected:
        raise ValueError(
            f"`twiddle` has shape {tuple(twiddle.shape)}; for x of shape {x.shape} (n={n}) "
            f"expected (log2 n, n/2, 2, 2) = {expected}."
        )
    increasing_stride = check_bool("increasing_stride", increasing_stride, _STATIC)
    out = result_dtype(xdtype, tdtype)
    return _butterfly(twiddle, x, increasing_stride, out)


# Jitted so an eager call compiles once per shape rather than dispatching every stage.
@functools.partial(jax.jit, static_argnums=(2, 3))
def _butterfly(twiddle: Array, x: Array, increasing_stride: bool, out: np.dtype) -> Array:
    work = _work_dtype(out)
    n = x.shape[-1]
    k = twiddle.shape[0]
    lead = x.shape[:-1]
    y = x.astype(work)
    tw = twiddle.astype(work)
    for j in range(k) if increasing_stride else reversed(range(k)):
        s = 1 << j
        y = y.reshape(lead + (n // (2 * s), 2, s))
        a, b = y[..., 0, :], y[..., 1, :]
        # (n/2, 2, 2) -> (n/(2s), s, 2, 2): pair p = h s + l sits at [h, l].
        t = tw[j].reshape(n // (2 * s), s, 2, 2)
        t00, t01, t10, t11 = (lift_rank(t[..., r, c], a.ndim) for r in (0, 1) for c in (0, 1))
        # Elementwise, not an einsum: exact products on every backend (no TF32 matmul).
        y = jnp.stack([t00 * a + t01 * b, t10 * a + t11 * b], axis=-2)
    return y.reshape(lead + (n,)).astype(out)


def butterfly_to_dense(
    twiddle: Inexact[Array, "K M 2 2"], *, increasing_stride: bool = True
) -> Inexact[Array, "n n"]:
    """The ``n x n`` butterfly matrix ``B`` with ``butterfly_multiply(twiddle, x) == B @ x``.

    Built by multiplying the identity, ``O(n^2 log n)``: for tests and analysis, not for use in
    a model. Same dtype rules as :func:`butterfly_multiply`.

    Args:
        twiddle: real or complex ``(k, n/2, 2, 2)`` with ``n = 2^k``, ``k >= 1``.
        increasing_stride: order of the factors, as in :func:`butterfly_multiply`.

    Returns:
        ``(n, n)``, in ``twiddle``'s dtype.
    """
    check_inexact("twiddle", twiddle)
    increasing_stride = check_bool("increasing_stride", increasing_stride, _STATIC)
    # All of the shape is checked before the n x n identity is built: a wrong leading axis
    # (e.g. 40) would otherwise ask for a 2^40 x 2^40 matrix and abort the process.
    if (
        twiddle.ndim != 4
        or twiddle.shape[0] < 1
        or twiddle.shape[2:] != (2, 2)
        or twiddle.shape[1] != 2 ** (twiddle.shape[0] - 1)
    ):
        raise ValueError(
            f"`twiddle` has shape {tuple(twiddle.shape)}; expected (log2 n, n/2, 2, 2) for "
            "some n = 2^k, e.g. (3, 4, 2, 2) for n = 8."
        )
    n = 2 ** twiddle.shape[0]
    eye = jnp.eye(n, dtype=twiddle.dtype)
    # Row i of the result is B e_i, i.e. column i of B.
    return butterfly_multiply(twiddle, eye, increasing_stride=increasing_stride).T


def bit_reversal_permutation(n: int) -> Int[np.ndarray, " n"]:
    """Bit-reversal permutation of ``0..n-1``: ``perm[i]`` is ``i`` with its ``log2 n`` bits
    reversed.

    An involution (``perm[perm] == arange(n)``). A NumPy array, so that ``x[..., perm]`` is a
    static gather under ``jit``; see :func:`fft_twiddle` for its use.

    Args:
        n: a power of two ``>= 2``.
    """
    n = _check_size("n", n)
    k = n.bit_length() - 1
    i = np.arange(n)
    perm = np.zeros(n, dtype=np.int64)
    for b in range(k):
        perm |= ((i >> b) & 1) << (k - 1 - b)
    return perm


def hadamard_twiddle(n: int, dtype=jnp.float32) -> Inexact[Array, "K M 2 2"]:
    """Twiddle of the orthonormal Walsh–Hadamard transform in Sylvester order.

    Every block is ``[[1, 1], [1, -1]] / sqrt(2)``, so each factor is orthogonal and
    ``butterfly_multiply(hadamard_twiddle(n), x)`` equals ``walsh_hadamard(x)``
    (``H[i, j] = (-1)^popcount(i & j) / sqrt(n)``, ``scipy.linalg.hadamard(n) / sqrt(n)``), for
    either ``increasing_stride`` (the factors commute).

    Args:
        n: a power of two ``>= 2``.
        dtype: a floating or complex dtype (default float32).

    Returns:
        ``(log2 n, n/2, 2, 2)`` in ``dtype``.
    """
    n = _check_size("n", n)
    dtype = _check_dtype("dtype", dtype, jnp.inexact, "floating-point or complex")
    block = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)
    tw = np.broadcast_to(block, (n.bit_length() - 1, n // 2, 2, 2))
    return jnp.asarray(tw, dtype)


def fft_twiddle(
    n: int, *, norm: str = "backward", dtype=jnp.complex64
) -> Complex[Array, "K M 2 2"]:
    """Twiddle of the radix-2 decimation-in-time FFT: ``B P = F``, the DFT matrix.

    Cooley & Tukey, 1965. With ``perm = bit_reversal_permutation(n)``::

        butterfly_multiply(fft_twiddle(n, norm=norm), x[..., perm]) == jnp.fft.fft(x, norm=norm)

    Block ``p = h s + l`` of the factor of stride ``s = 2^j`` is ``c [[1, w^l], [1, -w^l]]``
    with ``w = exp(-2 pi i / (2s))``: it merges two DFTs of length ``s`` into one of length
    ``2s``. The scale ``c`` is ``1`` (``norm="backward"``), ``1/sqrt 2`` (``"ortho"``: each
    block, hence each factor, is unitary) or ``1/2`` (``"forward"``), spreading the overall
    ``1``, ``1/sqrt n`` or ``1/n`` evenly over the ``log2 n`` factors.

    The permutation can sit on the output instead: ``F`` and ``P`` are symmetric, so
    ``F = P B^T`` and ``butterfly_multiply(swapaxes(tw, -1, -2), x, increasing_stride=False)
    [..., perm]`` is also the DFT of ``x`` (decimation in frequency).

    Args:
        n: a power of two ``>= 2``.
        norm: ``"backward"`` (default), ``"ortho"`` or ``"forward"``, as in ``jnp.fft.fft``.
        dtype: complex dtype (default complex64). Angles are computed in float64.

    Returns:
        ``(log2 n, n/2, 2, 2)`` in ``dtype``.
    """
    n = _check_size("n", n)
    check_choice("norm", norm, FFT_NORMS)
    dtype = _check_dtype("dtype", dtype, jnp.complexfloating, "complex")
    k = n.bit_length() - 1
    tw = np.empty((k, n // 2, 2, 2), dtype=np.complex128)
    for j in range(k):
        s = 1 << j
        w = np.exp(-2j * np.pi * np.arange(s) / (2 * s))  # w^l, l = 0..s-1
        w = np.tile(w, n // (2 * s))  # pair p = h s + l -> w^l
        tw[j, :, 0, 0] = 1.0
        tw[j, :, 0, 1] = w
        tw[j, :, 1, 0] = 1.0
        tw[j, :, 1, 1] = -w
    return jnp.asarray(tw * _FFT_BLOCK_SCALE[norm], dtype)
