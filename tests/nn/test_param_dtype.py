"""A module built with an integer or complex parameter ``dtype`` is refused with an error that
names ``dtype`` (it would otherwise fail inside ``jax.random`` without naming it, or, for the
factorised spectral weights, store a complex dtype where real and imaginary parts belong)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import AFNO, FNO, SFNO, SSMSequenceModel, TransformOnce
from spectrax.nn import (
    S4,
    S4D,
    S5,
    AFNOMixer,
    Butterfly,
    ChannelLayerNorm,
    ChannelMLP,
    CPWeight,
    DenseWeight,
    FourierFeatures,
    HyenaFilter,
    HyenaOperator,
    PointwiseLinear,
    SineLayer,
    Siren,
    SpectralConv,
    SphericalConv,
    SphericalLocationEncoder,
    TTWeight,
    TuckerWeight,
)
from spectrax.ssm import init_log_dt

BUILDERS = {
    "SineLayer": lambda dtype, key: SineLayer(3, 4, dtype=dtype, key=key),
    "Siren": lambda dtype, key: Siren(2, 8, 1, 2, dtype=dtype, key=key),
    "FourierFeatures": lambda dtype, key: FourierFeatures(2, 4, dtype=dtype, key=key),
    "SphericalConv": lambda dtype, key: SphericalConv(2, 3, 4, dtype=dtype, key=key),
    "HyenaOperator": lambda dtype, key: HyenaOperator(4, 16, dtype=dtype, key=key),
    "HyenaFilter": lambda dtype, key: HyenaFilter(2, 16, order=4, dtype=dtype, key=key),
    "init_log_dt": lambda dtype, key: init_log_dt(key, (3,), dtype=dtype),
    "S4D": lambda dtype, key: S4D(2, 4, dtype=dtype, key=key),
    "S4": lambda dtype, key: S4(2, 4, dtype=dtype, key=key),
    "S5": lambda dtype, key: S5(2, 4, dtype=dtype, key=key),
    "SpectralConv": lambda dtype, key: SpectralConv(1, 2, 2, 3, dtype=dtype, key=key),
    "PointwiseLinear": lambda dtype, key: PointwiseLinear(2, 3, dtype=dtype, key=key),
    "FNO": lambda dtype, key: FNO(1, 1, 1, 4, 3, 1, dtype=dtype, key=key),
    "TransformOnce": lambda dtype, key: TransformOnce(1, 1, 1, 4, 3, 1, dtype=dtype, key=key),
    "TransformOnceDCT": lambda dtype, key: TransformOnce(
        1, 1, 1, 4, 3, 1, transform="dct", dtype=dtype, key=key
    ),
    "AFNOMixer": lambda dtype, key: AFNOMixer(1, 4, 3, num_blocks=2, dtype=dtype, key=key),
    "Butterfly": lambda dtype, key: Butterfly(4, dtype=dtype, key=key),
    "ChannelLayerNorm": lambda dtype, key: ChannelLayerNorm(3, dtype=dtype),
    "ChannelMLP": lambda dtype, key: ChannelMLP(2, 3, 2, dtype=dtype, key=key),
    "DenseWeight": lambda dtype, key: DenseWeight((2, 2, 3), std=1.0, dtype=dtype, key=key),
    "CPWeight": lambda dtype, key: CPWeight((2, 2, 3), 2, std=1.0, dtype=dtype, key=key),
    "TuckerWeight": lambda dtype, key: TuckerWeight((2, 2, 3), 0.5, std=1.0, dtype=dtype, key=key),
    "TTWeight": lambda dtype, key: TTWeight((2, 2, 3), 0.5, std=1.0, dtype=dtype, key=key),
    "SphericalLocationEncoder": lambda dtype, key: SphericalLocationEncoder(
        2, 4, 1, dtype=dtype, key=key
    ),
    "SFNO": lambda dtype, key: SFNO(1, 1, 2, 2, 1, projection_channels=2, dtype=dtype, key=key),
    "SSMSequenceModel": lambda dtype, key: SSMSequenceModel(
        1, 1, 2, 1, state_size=2, dtype=dtype, key=key
    ),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.complex64, "not a dtype"])
def test_non_float_parameter_dtype_is_named(name, dtype, library_errors):
    with pytest.raises(TypeError, match=r"`dtype` must be a real floating"):
        BUILDERS[name](dtype, jax.random.key(0))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_float64_parameters_outside_x64_are_refused(name, library_errors):
    """dtype=float64 with jax_enable_x64 off built float32 parameters with only JAX's truncation
    warnings (every module but the operator models, which checked it themselves)."""
    assert not jax.config.jax_enable_x64
    with pytest.raises(TypeError, match=r"`dtype`=float64 needs 64-bit mode"):
        BUILDERS[name](jnp.float64, jax.random.key(0))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_half_precision_parameters_are_the_float32_ones_rounded_once(name):
    """Half-precision parameters are accepted and equal the float32 module's, rounded once.
    jax.random drawn in bfloat16 takes only 128 distinct values (a normal none beyond 2.89
    sigma): a bfloat16 PointwiseLinear(256, 256) had 128 distinct weights among 65536, and the
    draws were unrelated to the float32 ones of the same key."""
    key = jax.random.key(0)
    ref = jax.tree.leaves(eqx.filter(BUILDERS[name](jnp.float32, key), eqx.is_array))
    assert any(jnp.issubdtype(r.dtype, jnp.floating) for r in ref)
    # bfloat16 only: float16 takes the same path (spectrax._random, tested in test_random.py)
    half = jax.tree.leaves(eqx.filter(BUILDERS[name](jnp.bfloat16, key), eqx.is_array))
    for a, r in zip(half, ref, strict=True):
        if not jnp.issubdtype(r.dtype, jnp.floating):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(r))
            continue
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(
            np.asarray(a, np.float32), np.asarray(r.astype(jnp.bfloat16), np.float32)
        )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, "0.1", True])
def test_afno_sparsity_threshold_is_checked(bad, library_errors):
    with pytest.raises((TypeError, ValueError), match=r"`sparsity_threshold` must be"):
        AFNOMixer(1, 4, 3, num_blocks=2, sparsity_threshold=bad, key=jax.random.key(0))
    with pytest.raises((TypeError, ValueError), match=r"`sparsity_threshold` must be"):
        AFNO(1, 1, 1, 4, 3, num_blocks=2, sparsity_threshold=bad, key=jax.random.key(0))
