"""A learnable butterfly matrix: ``n x n`` with ``2 n log2 n`` parameters, applied in
``O(n log n)``.

Dao, Gu, Eichhorn, Rudra & Ré, 2019, "Learning Fast Algorithms for Linear Transforms Using
Butterfly Factorizations".
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Inexact, PRNGKeyArray

from spectrax._checks import (
    check_bool,
    check_choice,
    check_inexact,
    check_key,
    check_parameters,
    check_x64_dtype,
    compute_dtype,
)
from spectrax._random import normal, normals
from spectrax.nn._factorized import as_complex
from spectrax.transforms._butterfly import (
    _check_size,
    butterfly_multiply,
    butterfly_to_dense,
    fft_twiddle,
    hadamard_twiddle,
)


def haar_blocks(
    key: PRNGKeyArray, shape: tuple[int, ...], *, complex: bool, dtype
) -> Inexact[Array, "*shape 2 2"]:
    """Independent Haar-random 2x2 orthogonal (``complex=False``) or unitary blocks,
    ``(*shape, 2, 2)``.

    QR of a Gaussian matrix with the signs (phases) of ``diag(R)`` moved into ``Q``
    (Mezzadri, 2007, "How to generate random matrices from the classical compact groups").
    ``dtype`` is the real precision (float32 or float64); complex blocks are complex64/128.
    """
    if complex:
        re, im = normals(list(jax.random.split(key)), [(*shape, 2, 2)] * 2, dtype, [1.0, 1.0])
        g = jax.lax.complex(re, im)
    else:
        g = normal(key, (*shape, 2, 2), dtype)
    q, r = jnp.linalg.qr(g)
    d = jnp.diagonal(r, axis1=-2, axis2=-1)
    return q * (d / jnp.abs(d).astype(d.dtype))[..., None, :]


def _random(key, n, complex, increasing_stride, dtype):
    return haar_blocks(key, (n.bit_length() - 1, n // 2), complex=complex, dtype=dtype)


def _identity(key, n, complex, increasing_stride, dtype):
    return jnp.broadcast_to(jnp.eye(2, dtype=dtype), (n.bit_length() - 1, n // 2, 2, 2))


def _hadamard(key, n, complex, increasing_stride, dtype):
    return hadamard_twiddle(n, dtype)


def _fft(key, n, complex, increasing_stride, dtype):
    if not complex:
        raise ValueError(
            "`init`='fft' needs `complex=True`: the DFT matrix is complex. Pass "
            "Butterfly(n, complex=True, init='fft', ...)."
        )
    cdtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
    tw = fft_twiddle(n, norm="ortho", dtype=cdtype)
    # Decreasing strides apply B^T = P F (F, P symmetric): transpose every block.
    return tw if increasing_stride else jnp.swapaxes(tw, -1, -2)


# init name -> f(key, n, complex, increasing_stride, real_dtype) -> (log2 n, n/2, 2, 2) twiddle
INITS = {"random": _random, "identity": _identity, "hadamard": _hadamard, "fft": _fft}


@functools.partial(jax.jit, static_argnames=("init", "n", "complex", "increasing_stride", "dtype"))
def _twiddle(key, *, init: str, n: int, complex: bool, increasing_stride: bool, dtype):
    """The stored twiddle, built in float32/float64 and rounded once to ``dtype``: one jitted
    program per configuration (eagerly every draw, QR and product compiled on its own: 7 XLA
    compilations for Butterfly(64), 14 complex), with the eager ops' bits."""
    real = compute_dtype(dtype)
    tw = INITS[init](key, n, complex, increasing_stride, real)
    if complex:
        tw = jnp.stack([jnp.real(tw), jnp.imag(tw)]).astype(real)
    return tw.astype(dtype)


class Butterfly(eqx.Module):
    """A learnable butterfly matrix ``B`` on vectors of length ``n``: ``y = B x`` (Dao et al.,
    2019).

    ``B`` is the product of ``log2 n`` factors, each mixing the pairs ``(i, i + 2^j)`` with its
    own 2x2 blocks; see :func:`spectrax.transforms.butterfly_multiply` for the twiddle layout
    and the order (``increasing_stride=True``: ``B = B_{k-1} ... B_0``, stride 1 first). Every
    factor has ``2n`` real entries (``4n`` complex), ``2 n log2 n`` in all, and one product
    costs ``O(n log n)``.

    Initialisations:

    - ``"random"`` (default): every 2x2 block an independent Haar-random orthogonal (real) or
      unitary (complex) matrix (:func:`haar_blocks`). Each factor is then orthogonal, so ``B``
      is exactly orthogonal/unitary and ``||B x|| = ||x||`` at any depth ``log2 n``.
    - ``"identity"``: every block ``I``; ``B = I``.
    - ``"hadamard"``: the orthonormal Walsh–Hadamard transform
      (:func:`spectrax.transforms.hadamard_twiddle`).
    - ``"fft"`` (``complex=True`` only): the unitary DFT with the bit-reversal permutation
      ``P`` (:func:`spectrax.transforms.bit_reversal_permutation`) on the input,
      ``B = F P`` with ``F = fft(., norm="ortho")``; with ``increasing_stride=False``,
      ``B = P F`` (the permutation on the output).

    Args:
        n: length of the vectors, a power of two ``>= 2``.
        complex: complex twiddles (default False). Complex ones are stored as real and
            imaginary parts, so any real optimiser applies.
        init: ``"random"``, ``"identity"``, ``"hadamard"`` or ``"fft"``.
        increasing_stride: order of the factors (default True).
        dtype: real parameter dtype (default float32).
        key: PRNG key (keyword-only; used by ``"random"`` only).

    Attributes:
        twiddle: ``(log2 n, n/2, 2, 2)``, or ``(2, log2 n, n/2, 2, 2)`` with real and imaginary
            parts stacked on the leading axis when ``complex``. :meth:`as_twiddle` gives the
            array :func:`~spectrax.transforms.butterfly_multiply` takes.
    """

    twiddle: Float[Array, "*reim K M 2 2"]
    n: int = eqx.field(static=True)
    complex: bool = eqx.field(static=True)
    increasing_stride: bool = eqx.field(static=True)

    def __init__(
        self,
        n: int,
        *,
        complex: bool = False,
        init: str = "random",
        increasing_stride: bool = True,
        dtype=jnp.float32,
        key: PRNGKeyArray,
    ):
        self.n = _check_size("n", n)
        self.complex = check_bool("complex", complex)
        self.increasing_stride = check_bool("increasing_stride", increasing_stride)
        check_choice("init", init, tuple(INITS))
        check_key("key", key)
        try:
            real_dtype = jnp.dtype(dtype)
        except TypeError:  # not a dtype at all, e.g. "foo": name the argument all the same
            real_dtype = None
        if real_dtype is None or not jnp.issubdtype(real_dtype, jnp.floating):
            raise TypeError(
                f"`dtype` must be a real floating dtype (the parameters are real; complex "
                f"twiddles are stored as real and imaginary parts); got "
                f"{repr(dtype) if real_dtype is None else real_dtype}."
            )
        dtype = check_x64_dtype("dtype", real_dtype)
        # Build in float32/float64, store in `dtype` (one rounding for half precision).
        self.twiddle = _twiddle(
            key,
            init=init,
            n=self.n,
            complex=self.complex,
            increasing_stride=self.increasing_stride,
            dtype=dtype,
        )

    def as_twiddle(self) -> Inexact[Array, "K M 2 2"]:
        """The twiddle for :func:`~spectrax.transforms.butterfly_multiply`: real, or complex
        (complex64; complex128 for float64 parameters)."""
        check_parameters(self)
        return as_complex(self.twiddle) if self.complex else self.twiddle

    def to_dense(self) -> Inexact[Array, "n n"]:
        """The ``n x n`` matrix ``B`` (``O(n^2 log n)``; for analysis and tests)."""
        return butterfly_to_dense(self.as_twiddle(), increasing_stride=self.increasing_stride)

    def __call__(self, x: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        """``B x`` for one vector of shape ``(n,)``, real or complex; batch with ``jax.vmap``.
        The dtype follows :func:`~spectrax.transforms.butterfly_multiply` (complex for a
        complex butterfly)."""
        check_inexact("x", x)
        if np.shape(x) != (self.n,):
            raise ValueError(
                f"`x` must be one vector of shape ({self.n},); got x.shape={np.shape(x)}. "
                "Batch with jax.vmap."
            )
        return butterfly_multiply(self.as_twiddle(), x, increasing_stride=self.increasing_stride)

    @property
    def num_params(self) -> int:
        return int(self.twiddle.size)
