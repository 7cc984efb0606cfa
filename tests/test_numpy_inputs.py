"""NumPy inputs, as users pass them: computed as JAX computes them, silently.

Without ``jax_enable_x64`` a NumPy float64 array is float32 in JAX. Functions that read the raw
NumPy dtype asked float64 of their casts and JAX truncated each with a UserWarning ("Explicitly
requested dtype float64 ... not available"), one to five per call; NumPy integer sizes were traced
by a compiled model call and refused as if they were not integers. The runtime jaxtyping check
is off here (``library_errors``), as it is for users: the annotations name ``jax.Array``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax import ssm
from spectrax.models import TransformOnce
from spectrax.nn import (
    ChannelLayerNorm,
    GroupNorm,
    SphericalConv,
    afno_mix,
    apply_rope,
    fourier_features,
    positional_encoding,
    spectral_conv,
    spherical_harmonic_encoding,
)
from spectrax.nn._hyena import hyena_recurrence
from spectrax.transforms import gaunt_product, pad_modes, sobolev_norm, spectral_derivative
from tests.helpers import assert_close

pytestmark = pytest.mark.usefixtures("library_errors")

_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((2, 8))
_W = jnp.asarray(
    _RNG.standard_normal((2, 2, 3)) + 1j * _RNG.standard_normal((2, 2, 3)), jnp.complex64
)
_AFNO = [
    jnp.asarray(_RNG.standard_normal(s) + 1j * _RNG.standard_normal(s), jnp.complex64)
    for s in ((1, 2, 2), (1, 2), (1, 2, 2), (1, 2))
]
_SPHERE, _FIELD = SphericalConv(1, 1, 2, key=jax.random.key(0)), _RNG.standard_normal((1, 4, 7))

_LAM = np.array([-0.5 + 1j, -0.2 + 3j])
_CW = _RNG.standard_normal(2) + 1j * _RNG.standard_normal(2)
_HIPPO = ssm.hippo("legs", 4)
_NPLR = ssm.nplr("legs", 4)
_DPLR = (_NPLR[0], (_NPLR[3].conj().T @ _NPLR[1].T).T, _NPLR[3].conj().T @ _NPLR[2])
_C4 = _RNG.standard_normal((2, 4)) + 0j
_BU = _RNG.standard_normal((5, 2))
_HYENA = [_RNG.standard_normal(s) for s in ((2, 5), (1, 2, 5), (1, 2, 3), (1, 2))]

# name -> f(as_input): the call, with its array inputs passed through as_input
CALLS = {
    "spectral_conv": lambda a: spectral_conv(a(_X), _W, (3,)),
    "afno_mix": lambda a: afno_mix(a(_X), *_AFNO, (3,), 0.01),
    "sobolev_norm": lambda a: sobolev_norm(a(_X), 1.0),
    "spectral_derivative": lambda a: spectral_derivative(a(_X), 1),
    "pad_modes": lambda a: pad_modes(a(_X[:, :3] + 0.5j * _X[:, 3:6]), (8,)),
    "gaunt_product": lambda a: gaunt_product(a(_X[0, :4]), a(_X[1, :4])),
    "SphericalConv": lambda a: _SPHERE(a(_FIELD)),
    "vandermonde_kernel": lambda a: ssm.vandermonde_kernel(a(np.exp(0.1 * _LAM)), a(_CW), 5),
    "dense_kernel": lambda a: ssm.dense_kernel(a(0.5 * np.eye(2)), a(np.ones(2)), a(_BU[0]), 4),
    "dplr_kernel": lambda a: ssm.dplr_kernel(*map(a, _DPLR), a(_C4), a(np.array([0.1, 0.2])), 4),
    "transfer_continuous": lambda a: ssm.transfer_continuous(
        *map(a, _HIPPO), a(np.ones(4)), None, a(np.array([1j, 2j]))
    ),
    "transfer_discrete": lambda a: ssm.transfer_discrete(
        a(0.1 * _HIPPO[0]), a(_HIPPO[1]), a(np.ones(4)), 0.5, a(np.array([1 + 0j, -1 + 0j]))
    ),
    "scan_diagonal": lambda a: ssm.scan_diagonal(a(np.exp(0.1 * _LAM)[None]), a(_BU + 0j)),
    "scan_dense": lambda a: ssm.scan_dense(a(0.5 * np.eye(2)), a(_BU)),
    "hyena_recurrence": lambda a: hyena_recurrence(*map(a, _HYENA)),
    # these warned one to four times per call as well
    "apply_rope": lambda a: apply_rope(a(_X[:, :4])),
    "fourier_features": lambda a: fourier_features(a(_BU), a(_X[:, :2].T)),
    "positional_encoding": lambda a: positional_encoding(a(_BU), 3),
    "spherical_harmonic_encoding": lambda a: spherical_harmonic_encoding(a(_BU), 2),
    "ChannelLayerNorm": lambda a: ChannelLayerNorm(2)(a(_X)),
    "GroupNorm": lambda a: GroupNorm(1, 2)(a(_X)),
}


@pytest.mark.parametrize("name", CALLS)
def test_numpy_float64_without_x64_computes_as_float32(name):
    assert not jax.config.jax_enable_x64
    call = CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JAX's truncation warning fails the test
        got = call(np.asarray)
    want = call(lambda x: jnp.asarray(x, jnp.complex64 if np.iscomplexobj(x) else jnp.float32))
    assert got.dtype == want.dtype and got.dtype in (jnp.float32, jnp.complex64)
    assert_close(got, want, jnp.float32)


def test_numpy_integer_out_shape_of_a_compiled_model_call():
    """``out_shape`` from NumPy arithmetic (np.int64 entries): the compiled call traced them and
    said "`out_shape[0]` must be an integer >= 1; got JitTracer(int32[])" for 16."""
    model = TransformOnce(1, 1, 1, 4, 3, 1, key=jax.random.key(0))
    x = jnp.asarray(_X[:1], jnp.float32)
    want = model(x, (16,))
    assert_close(model(x, (np.int64(16),)), want, jnp.float32)
    assert_close(model(x, out_shape=tuple(np.array(x.shape[1:]) * 2)), want, jnp.float32)
    # an array is traced: the error says so and how to pass sizes
    with pytest.raises(ValueError, match=r"`out_shape\[0\]`.*traced value.*pass Python ints"):
        model(x, jnp.array([16]))
