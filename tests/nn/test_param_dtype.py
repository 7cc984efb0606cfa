"""A module built with an integer or complex parameter ``dtype`` is refused with an error that
names ``dtype`` (it would otherwise fail inside ``jax.random`` without naming it)."""

import jax
import jax.numpy as jnp
import pytest

from spectrax.nn import (
    S4,
    S4D,
    S5,
    FourierFeatures,
    HyenaFilter,
    HyenaOperator,
    SineLayer,
    Siren,
    SphericalConv,
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
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.complex64, "not a dtype"])
def test_non_float_parameter_dtype_is_named(name, dtype, library_errors):
    with pytest.raises(TypeError, match=r"`dtype` must be a real floating-point type"):
        BUILDERS[name](dtype, jax.random.key(0))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_float_parameter_dtypes_are_accepted(name):
    out = BUILDERS[name](jnp.bfloat16, jax.random.key(0))
    floats = [x for x in jax.tree.leaves(out) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.bfloat16 for x in floats)
