"""The output-dtype rules README's `spectrax.nn` row states, for float32 parameters under a
bfloat16 input: residual-stream layers and fixed maps return the input's dtype, channel maps and
every model the parameters'. A layer that changes rule fails here before the README goes stale."""

import equinox as eqx
import jax
import jax.numpy as jnp

from spectrax.models import AFNO, FNO, SFNO, SSMSequenceModel, TransformOnce
from spectrax.nn import (
    S4,
    S4D,
    S5,
    AFNOMixer,
    Butterfly,
    ChannelLayerNorm,
    ChannelMLP,
    FourierFeatures,
    HyenaOperator,
    PointwiseLinear,
    RoPE,
    SineLayer,
    Siren,
    SpectralConv,
    SphericalConv,
)

K = jax.random.key(0)
SEQ = jnp.ones((16, 4), jnp.bfloat16)  # (L, H)
FIELD = jnp.ones((2, 16), jnp.bfloat16)  # (C, X)

INPUT_DTYPE = {
    "S4": (lambda: S4(4, 4, key=K), SEQ),
    "S4D": (lambda: S4D(4, 4, key=K), SEQ),
    "S5": (lambda: S5(4, 4, key=K), SEQ),
    "HyenaOperator": (lambda: HyenaOperator(4, 16, key=K), SEQ),
    "AFNOMixer": (lambda: AFNOMixer(1, 4, 3, num_blocks=2, key=K), jnp.ones((4, 16), jnp.bfloat16)),
    "ChannelLayerNorm": (lambda: ChannelLayerNorm(2), FIELD),
    "SphericalConv": (lambda: SphericalConv(2, 3, 4, key=K), jnp.ones((2, 8, 16), jnp.bfloat16)),
    "RoPE": (lambda: RoPE(4), SEQ),
    "FourierFeatures": (lambda: FourierFeatures(2, 4, key=K), jnp.ones((2,), jnp.bfloat16)),
}
PARAM_DTYPE = {
    "SpectralConv": (lambda: SpectralConv(1, 2, 2, 3, key=K), FIELD),
    "PointwiseLinear": (lambda: PointwiseLinear(2, 3, key=K), FIELD),
    "ChannelMLP": (lambda: ChannelMLP(2, 3, 2, key=K), FIELD),
    "Siren": (lambda: Siren(2, 8, 1, 2, key=K), jnp.ones((2,), jnp.bfloat16)),
    "SineLayer": (lambda: SineLayer(2, 3, key=K), jnp.ones((2,), jnp.bfloat16)),
    "Butterfly": (lambda: Butterfly(4, key=K), jnp.ones((4,), jnp.bfloat16)),
    "FNO": (lambda: FNO(1, 2, 1, 4, 3, 1, key=K), FIELD),
    "TransformOnce": (lambda: TransformOnce(1, 2, 1, 4, 3, 1, key=K), FIELD),
    "AFNO": (lambda: AFNO(1, 2, 1, 4, 3, num_blocks=2, key=K), FIELD),
    "SFNO": (
        lambda: SFNO(2, 1, 2, 2, 1, projection_channels=2, key=K),
        jnp.ones((2, 8, 16), jnp.bfloat16),
    ),
    "SSMSequenceModel": (lambda: SSMSequenceModel(4, 2, 4, 1, state_size=2, key=K), SEQ),
}


def test_output_dtypes_follow_the_readme():
    # built and called under one trace (not at collection, and nothing runs): the dtype is
    # known at trace time
    got = {
        name: eqx.filter_eval_shape(lambda x, m=m: m()(x), x).dtype
        for name, (m, x) in {**INPUT_DTYPE, **PARAM_DTYPE}.items()
    }
    want = {name: jnp.dtype(jnp.bfloat16) for name in INPUT_DTYPE}
    want.update({name: jnp.dtype(jnp.float32) for name in PARAM_DTYPE})
    assert got == want
