"""The contract every public Equinox module of ``spectrax.nn`` and ``spectrax.models`` keeps:

- ``jax.vmap`` over a batch equals the unbatched call, under ``eqx.filter_jit``;
- ``eqx.filter_grad`` of a scalar loss gives finite gradients, and a non-zero one for every
  trainable (inexact) leaf: a parameter stored but never used, or cut off from the output,
  shows up as an exactly-zero gradient;
- ``eqx.tree_serialise_leaves`` / ``tree_deserialise_leaves`` into the module's abstract
  skeleton (``eqx.filter_eval_shape`` of the constructor, as a checkpoint restore builds it)
  gives a bit-identical output;
- the same key builds the same module, another key other parameters;
- wrapped with ``EqxToNNX`` (Flax NNX) the module gives the same output and gradients.

A class is covered by a case of its own or as a part of a composite case (every leaf of an
``FNO`` is checked, so its blocks, spectral convolutions and pointwise layers are too): one
jitted program per case keeps the sweep fast.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jaxtyping import Array, Float

import spectrax.models as models
import spectrax.nn as nn
from spectrax._checks import check_parameters
from spectrax.models import (
    AFNO,
    FNO,
    SFNO,
    AFNOBlock,
    FNOBlock,
    SFNOBlock,
    SSMBlock,
    SSMSequenceModel,
    TransformOnce,
    spatiotemporal_fno,
)
from spectrax.nn import (
    S4,
    S4D,
    S5,
    AFNOMixer,
    Butterfly,
    ChannelLayerNorm,
    ChannelMLP,
    CPWeight,
    EqxToNNX,
    FourierFeatures,
    NNXToEqx,
    RoPE,
    Siren,
    SphericalLocationEncoder,
    TTWeight,
    TuckerWeight,
)
from tests.helpers import assert_close


def _real(y):
    """Complex outputs as their real and imaginary parts, so a real loss sees both."""
    return jnp.stack([y.real, y.imag]) if jnp.iscomplexobj(y) else y


@dataclass(frozen=True)
class Case:
    build: Callable  # key -> module
    shape: tuple[int, ...] | None  # one unbatched input; None: the call takes no array
    call: Callable = lambda m, x: m(x)
    keyed: bool = True  # built from a key
    # checked wrapped in EqxToNNX too (off for the larger operators, whose leaves are of the
    # kinds the small cases have; tests/nn/test_nnx.py trains a wrapped FNO)
    nnx: bool = True


CASES: dict[str, Case] = {
    "Butterfly": Case(lambda k: Butterfly(8, key=k), (8,)),
    "S4": Case(lambda k: S4(2, 4, key=k), (8, 2)),
    "S4D": Case(lambda k: S4D(2, 4, key=k), (8, 2)),
    "S5": Case(lambda k: S5(2, 4, key=k), (8, 2)),
    "CPWeight": Case(lambda k: CPWeight((2, 3, 3), 2, std=1.0, key=k), None),
    "TuckerWeight": Case(lambda k: TuckerWeight((2, 3, 3), 0.5, std=1.0, key=k), None),
    "TTWeight": Case(lambda k: TTWeight((2, 3, 3), 0.5, std=1.0, key=k), None),
    "FourierFeatures": Case(
        lambda k: FourierFeatures(2, 4, sigma=1.0, trainable=True, key=k), (2,)
    ),
    "RoPE": Case(lambda k: RoPE(4), (6, 4), keyed=False),
    "Siren": Case(lambda k: Siren(2, 8, 1, 2, key=k), (2,)),
    "SphericalLocationEncoder": Case(lambda k: SphericalLocationEncoder(2, 8, 2, key=k), (2,)),
    # an NNX module in Equinox clothes: not wrapped back
    "NNXToEqx": Case(lambda k: NNXToEqx(nnx.Linear(3, 2, rngs=nnx.Rngs(k))), (3,), nnx=False),
    # AFNOBlock, AFNOMixer, ChannelLayerNorm, ChannelMLP, PointwiseLinear
    "AFNO": Case(lambda k: AFNO(1, 1, 1, 4, 3, 1, num_blocks=2, key=k), (1, 8), nnx=False),
    # FNOBlock, SpectralConv, DenseWeight
    "FNO": Case(
        lambda k: FNO(1, 1, 1, 4, 3, 1, projection_channels=8, channel_mlp_expansion=0.5, key=k),
        (1, 8),
        nnx=False,
    ),
    # an FNO over space and time (its own error for a field of the wrong rank)
    "SpatiotemporalFNO": Case(
        lambda k: spatiotemporal_fno(1, 1, 1, 4, 3, 1, projection_channels=8, key=k),
        (1, 8, 6),
        nnx=False,
    ),
    # GroupNorm, in both of a block's places; SoftGating; depthwise spectral weights
    "FNONorm": Case(
        lambda k: FNO(
            1,
            1,
            1,
            4,
            3,
            1,
            projection_channels=8,
            channel_mlp_expansion=0.5,
            norm="instance",
            skip="soft_gating",
            separable=True,
            key=k,
        ),
        (1, 8),
        nnx=False,
    ),
    # SFNOBlock, SphericalConv
    "SFNO": Case(lambda k: SFNO(1, 1, 4, 3, 1, projection_channels=8, key=k), (1, 4, 8), nnx=False),
    # SSMBlock, HyenaOperator, HyenaFilter
    "SSMSequenceModel": Case(
        lambda k: SSMSequenceModel(
            2,
            3,
            4,
            1,
            layer="hyena",
            max_len=8,
            layer_kwargs={"filter_order": 4, "num_frequencies": 2},
            key=k,
        ),
        (8, 2),
    ),
    "TransformOnce": Case(  # T1Layer
        lambda k: TransformOnce(1, 1, 1, 4, 3, 1, key=k), (1, 8), nnx=False
    ),
    "TransformOnceDCT": Case(  # real T1Layer
        lambda k: TransformOnce(1, 1, 1, 4, 3, 1, transform="dct", key=k), (1, 8), nnx=False
    ),
}
for _name in (
    "CPWeight",
    "TuckerWeight",
    "TTWeight",
):  # factorised weights: the dense complex tensor
    CASES[_name] = Case(CASES[_name].build, None, lambda m, _: m.complex())


def _submodules(tree) -> list:
    """``tree`` and every Equinox module inside it."""
    found = [tree] if isinstance(tree, eqx.Module) else []
    children = jax.tree.leaves(tree, is_leaf=lambda x: x is not tree and isinstance(x, eqx.Module))
    for child in children:
        if isinstance(child, eqx.Module):
            found += _submodules(child)
    return found


def _module_types(tree) -> set[type]:
    return {type(m) for m in _submodules(tree)}


def test_every_public_module_class_is_covered():
    """A new public module class must join the sweep, as a case or inside one."""
    covered = set()
    for case in CASES.values():
        covered |= _module_types(eqx.filter_eval_shape(case.build, jax.random.key(0)))
    public = {
        getattr(package, name)
        for package in (nn, models)
        for name in package.__all__
        if isinstance(getattr(package, name), type)
        and issubclass(getattr(package, name), eqx.Module)
    }
    assert public <= covered, f"no contract case for {sorted(c.__name__ for c in public - covered)}"


# NNXToEqx wraps an NNX module built from nnx.Rngs: it takes no key of its own
@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.keyed and n != "NNXToEqx"))
def test_every_keyed_module_names_a_bad_key(name, library_errors):
    """A key that is not one is refused by name: SineLayer, Siren, FourierFeatures,
    PointwiseLinear, ChannelMLP, Butterfly, SphericalLocationEncoder, CPWeight, TTWeight, FNO,
    AFNO, SFNO, TransformOnce and spatiotemporal_fno failed inside JAX ("stack requires ndarray
    or scalar arguments", "unexpected PRNG key type", "invalid PRNG key data") naming nothing."""
    case = CASES[name]
    for bad, got in ((None, "NoneType None"), (0, "int 0")):
        with pytest.raises(TypeError, match=rf"`key` must be a PRNG key.*got {got}"):
            case.build(bad)
    with pytest.raises(ValueError, match=r"`key` must be a single PRNG key"):
        case.build(jax.random.split(jax.random.key(0), 2))


def _params(module):
    return eqx.filter(module, eqx.is_inexact_array)


def _serialise_round_trip(module, like):
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, module)
    buffer.seek(0)
    return eqx.tree_deserialise_leaves(buffer, like)


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_contract(name):
    case = CASES[name]
    module = case.build(jax.random.key(0))
    if case.shape is None:
        xs = jnp.zeros((2, 1), jnp.float32)  # the call ignores it; vmap runs it twice
    else:
        xs = jax.random.normal(jax.random.key(2), (2, *case.shape), jnp.float32)

    def batched(m):
        return jax.vmap(lambda x: _real(case.call(m, x)))(xs)

    spec = jax.eval_shape(batched, module)
    target = jax.random.normal(jax.random.key(3), spec.shape, spec.dtype)

    def loss(m):
        return jnp.sum((batched(m) - target) ** 2)

    @eqx.filter_jit
    def program(m):
        single = _real(case.call(m, xs[1]))
        if not case.nnx:
            return batched(m), single, eqx.filter_grad(loss)(m), None
        # EqxToNNX: `.module` rebuilds the Equinox module from the NNX variables (what a call
        # of the wrapper goes through)
        wrapped = EqxToNNX(m)
        nnx_grads = nnx.grad(lambda w: loss(w.module), argnums=nnx.DiffState(0, nnx.Param))
        return batched(m), single, eqx.filter_grad(loss)(m), jax.tree.leaves(nnx_grads(wrapped))

    out, single, grads, nnx_grads = program(module)

    # (1) jit, vmap, grad
    assert_close(out[1], single, jnp.float32, what="vmap vs unbatched call")
    assert bool(jnp.all(jnp.isfinite(out)))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(grads)]
    grad_leaves = jax.tree.leaves(grads)
    assert len(grad_leaves) == len(jax.tree.leaves(_params(module)))
    for path, g in zip(paths, grad_leaves, strict=True):
        assert bool(jnp.all(jnp.isfinite(g))), f"non-finite gradient for {path}"
        assert bool(jnp.any(g != 0)), f"zero gradient for parameter {path}: never used?"
    if case.nnx:  # (5) the NNX-wrapped module: the same gradients
        assert len(nnx_grads) == len(grad_leaves)
        for path, gn, g in zip(paths, nnx_grads, grad_leaves, strict=True):
            assert_close(gn, g, rtol=1e-6, what=f"EqxToNNX gradient of {path}")

    # (2) serialisation round trip into the abstract skeleton a checkpoint restore builds
    # (eqx.filter_eval_shape: the constructor must be traceable)
    skeleton = eqx.filter_eval_shape(case.build, jax.random.key(1))
    restored = _serialise_round_trip(module, skeleton)
    np.testing.assert_array_equal(np.asarray(program(restored)[0]), np.asarray(out))

    # (4) same key, same module; another key, other parameters
    again = case.build(jax.random.key(0))
    for a, b in zip(jax.tree.leaves(module), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if case.keyed:
        other = case.build(jax.random.key(1))
        pairs = zip(jax.tree.leaves(_params(module)), jax.tree.leaves(_params(other)), strict=True)
        assert any(not np.array_equal(a, b) for a, b in pairs), "another key, same parameters"


def _blocks(dtype) -> dict[str, eqx.Module]:
    k = jax.random.split(jax.random.key(0), 5)
    afno = AFNOBlock(
        ChannelLayerNorm(4, dtype=dtype),
        AFNOMixer(1, 4, 3, num_blocks=2, dtype=dtype, key=k[0]),
        ChannelLayerNorm(4, dtype=dtype),
        ChannelMLP(4, 4, 4, dtype=dtype, key=k[1]),
    )
    common = dict(channel_mlp_expansion=0.5, activation="gelu", dtype=dtype)
    fno = FNOBlock(1, 4, 3, factorization="dense", rank=0.1, impl="auto", key=k[2], **common)
    sfno = SFNOBlock(4, 3, key=k[3], **common)
    ssm = SSMBlock("s4d", 4, 4, 0.0, {}, dtype, key=k[4])
    return {"AFNOBlock": afno, "FNOBlock": fno, "SFNOBlock": sfno, "SSMBlock": ssm}


def test_blocks_keep_the_input_dtype_with_other_parameter_dtypes():
    """A block with bfloat16 parameters applied to a float32 input returns float32 (the models
    cast their input first; a block used on its own must not fail to promote). Built and
    applied in one jitted program."""
    x = jax.random.normal(jax.random.key(2), (4, 4, 8), jnp.float32)

    @jax.jit
    def apply(x):
        blocks = _blocks(jnp.bfloat16)
        return {
            "AFNOBlock": blocks["AFNOBlock"](x[:, 0]),
            "FNOBlock": blocks["FNOBlock"](x[:, 0]),
            "SFNOBlock": blocks["SFNOBlock"](x),
            "SSMBlock": blocks["SSMBlock"](x[0].T, key=None, inference=True),
        }

    for name, y in apply(x).items():
        assert y.dtype == jnp.float32, f"{name}: output {y.dtype}, expected float32"
        assert bool(jnp.all(jnp.isfinite(y))), name


# NNXToEqx holds an NNX module's state, whose shapes are Flax's to check
@pytest.mark.parametrize("name", sorted(n for n in CASES if n != "NNXToEqx"))
def test_every_parameter_swapped_in_at_another_shape_is_named(name):
    """Each parameter replaced (``eqx.tree_at``) by a scalar of its dtype, a shape that
    broadcasts against most (a scalar skip weight ran as one weight for every channel, others
    failed in an IndexError or inside JAX), is refused on the call, naming the field and what
    it got. Checked abstractly: the error comes at trace time. The same parameters as NumPy
    arrays pass."""
    case = CASES[name]
    module = case.build(jax.random.key(0))
    x = jnp.zeros((2, 1) if case.shape is None else case.shape, jnp.float32)
    # NumPy parameters (jax.device_get of a layer, to save or pickle it) fit as they are: an
    # eager call checks them as NumPy arrays (an abstract one would see tracers)
    for layer in _submodules(jax.device_get(module)):
        check_parameters(layer)
    leaves = jax.tree_util.tree_leaves_with_path(_params(module))
    for path, leaf in leaves:
        where = lambda m, path=path: functools.reduce(_step_into, path, m)  # noqa: E731
        broken = eqx.tree_at(where, module, jnp.zeros((), leaf.dtype))
        # named by its path from the module called (`FNO.blocks[1].mlp.fc1.bias`)
        named = re.escape(type(module).__name__ + jax.tree_util.keystr(path))
        with pytest.raises(
            ValueError,
            match=rf"`{named}`( \(an eqx\.nn\.\w+\))? does not fit the layer: got "
            rf"{leaf.dtype}\[\]",
        ):
            eqx.filter_eval_shape(case.call, broken, x)


def _step_into(node, key):
    if isinstance(key, jax.tree_util.GetAttrKey):
        return getattr(node, key.name)
    return node[key.idx]


def test_a_parameter_that_broadcasts_is_refused_and_one_of_the_same_shape_is_not():
    """A ``(1,)`` bias or skip weight broadcast over the channels without a word; the same
    shape in another dtype (a half-precision policy) or with other values passes, as does an
    ensemble built and called under ``eqx.filter_vmap`` (per-member shapes at trace time)."""
    key = jax.random.key(0)
    layer = nn.PointwiseLinear(3, 4, key=key)
    x = jnp.ones((3, 5))
    with pytest.raises(ValueError, match=r"`PointwiseLinear.bias` .* got float32\[1\]"):
        eqx.tree_at(lambda m: m.bias, layer, jnp.ones((1,)))(x)
    s4d = S4D(4, 8, key=key)
    with pytest.raises(ValueError, match=r"`S4D.D` .* got float32\[1\]; expected .*'H'"):
        eqx.tree_at(lambda m: m.D, s4d, jnp.ones((1,)))(jnp.ones((6, 4)))
    # checked against the configuration too: a lone weight has no other parameter to agree
    # with, and parameters swapped together agree with each other
    features = FourierFeatures(2, 4, sigma=1.0, trainable=True, key=key)
    with pytest.raises(
        ValueError, match=r"`FourierFeatures.B` .* got float32\[1, 2\].*\(num_features=4, in_"
    ):
        eqx.tree_at(lambda m: m.B, features, features.B[:1])(jnp.ones(2))
    fields = lambda m: (m.log_Lambda_re, m.Lambda_im, m.B, m.C, m.D, m.log_dt)  # noqa: E731
    narrower = eqx.tree_at(fields, s4d, tuple(p[:2] for p in fields(s4d)))
    with pytest.raises(
        ValueError, match=r"`S4D.log_Lambda_re` .* got float32\[2, 4\].*\(channels=4, M=4\)"
    ):
        narrower(jnp.ones((6, 4)))
    half = eqx.tree_at(lambda m: m.weight, layer, layer.weight.astype(jnp.bfloat16))
    assert half(x).shape == (4, 5)
    np.testing.assert_allclose(
        eqx.tree_at(lambda m: m.D, s4d, 2 * s4d.D)(jnp.ones((6, 4))) - s4d(jnp.ones((6, 4))),
        np.broadcast_to(np.asarray(s4d.D), (6, 4)),
        rtol=1e-5,
        atol=1e-6,
    )
    ensemble = eqx.filter_vmap(lambda k: S4D(4, 8, key=k))(jax.random.split(key, 3))
    out = eqx.filter_vmap(lambda m: m(jnp.ones((6, 4))))(ensemble)
    assert out.shape == (3, 6, 4)


def test_a_parameter_deep_in_a_model_is_named_by_its_path_and_checked_once_per_trace(
    monkeypatch,
):
    """The error names the parameter by its path in the model called, eagerly and under
    ``jax.jit`` (it named the class alone, ``S4D.D``: one of four in this model), and by its
    path from a block or layer called on its own. A model is walked when it is traced: its
    next eager call, or a new model object of the same shapes (after an update), walks
    nothing (the walk over an FNO's 33 modules took about 250 us, its eager call 300 us); a
    layer called eagerly outside a model remembers the object that passed."""
    import spectrax._checks as checks

    key = jax.random.key(0)
    model = models.SSMSequenceModel(3, 2, 8, 4, state_size=8, key=key)
    x = jnp.ones((6, 3))
    model(x, key=None, inference=True)
    broken = eqx.tree_at(lambda m: m.blocks[2].ssm.D, model, jnp.ones((1,)))
    named = r"`SSMSequenceModel\.blocks\[2\]\.ssm\.D` does not fit the layer: got float32\[1\]"
    with pytest.raises(ValueError, match=named):
        broken(x, key=None, inference=True)
    with pytest.raises(ValueError, match=named):
        jax.jit(lambda m: m(x, key=None, inference=True))(broken)
    fno = FNO(1, 1, 1, 8, 4, 2, channel_mlp_expansion=0.5, factorization="tucker", key=key)
    bias = lambda m: m.blocks[1].mlp.fc1.bias  # noqa: E731
    with pytest.raises(ValueError, match=r"`FNO\.blocks\[1\]\.mlp\.fc1\.bias` .* got f"):
        eqx.tree_at(bias, fno, bias(fno)[:1])(jnp.ones((1, 16)))
    core = lambda m: m.conv.weight.core  # noqa: E731
    block = fno.blocks[0]
    with pytest.raises(ValueError, match=r"`FNOBlock\.conv\.weight\.core` .* got f"):
        eqx.tree_at(core, block, core(block)[:1])(jnp.ones((8, 16)))

    walked = []
    monkeypatch.setattr(checks, "_check_any", lambda module, path: walked.append(path))
    model(x, key=None, inference=True)
    eqx.tree_at(lambda m: m.blocks[2].ssm.D, model, 2 * model.blocks[2].ssm.D)(
        x, key=None, inference=True
    )
    assert walked == []
    gate = nn.SoftGating(4)
    gate(jnp.ones((4, 3)))
    assert walked == ["SoftGating"]
    gate(jnp.ones((4, 3)))
    assert walked == ["SoftGating"]


def test_sizes_a_layer_derives_from_its_configuration_and_tuple_elements_are_checked():
    """Sizes that no other parameter pins are checked against the configuration: the degree
    axis of a spherical convolution (l_max + 1), the gates' count of a Hyena operator (from
    its order and layout); each element of a tuple field is bound to the other fields' sizes
    (a per-layer bias of shape (1,) broadcast silently) and named by its index; a
    per-channel scale against the channel count the layer was built with."""
    key = jax.random.key(0)
    conv = nn.SphericalConv(2, 3, 3, key=key)
    with pytest.raises(ValueError, match=r"`SphericalConv.weight` .* got float32\[3, 2, 1\].*"):
        eqx.tree_at(lambda m: m.weight, conv, conv.weight[..., :1])(jnp.ones((2, 4, 8)))
    op = nn.HyenaOperator(4, 16, key=key)
    with pytest.raises(ValueError, match=r"`HyenaOperator.D` .* got float32\[1, 4\]"):
        eqx.tree_at(lambda m: m.D, op, jnp.ones((1, 4)))(jnp.ones((16, 4)))
    hyena_filter = op.filter
    biases = (*hyena_filter.biases[:1], jnp.ones((1,)), *hyena_filter.biases[2:])
    with pytest.raises(ValueError, match=r"`HyenaFilter.biases\[1\]` .* got float32\[1\]"):
        eqx.tree_at(lambda m: m.biases, hyena_filter, biases)(16)
    # the per-channel layers keep their channel count: a (1,) weight in place of all of them
    # was reported as the input's mismatch ("`x` must have 1 channels")
    for layer, field in (
        (nn.SoftGating(4), "weight"),
        (nn.ChannelLayerNorm(4), "scale"),
        (nn.GroupNorm(2, 4), "shift"),
    ):
        one = eqx.tree_at(lambda m, f=field: getattr(m, f), layer, jnp.ones((1,)))
        named = rf"`{type(layer).__name__}.{field}` .* got float32\[1\].*\(channels=4"
        with pytest.raises(ValueError, match=named):
            one(jnp.ones((4, 8)))


def test_a_layer_may_run_on_its_shard_of_the_parameters_under_shard_map():
    """Inside ``jax.shard_map`` a layer may hold a shard (a column-parallel pointwise map):
    the parameters are checked against each other there, not against the configuration."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((2,), ("x",), devices=jax.devices()[:2])
    layer = nn.PointwiseLinear(3, 4, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 5))
    specs = nn.PointwiseLinear(3, 4, key=jax.random.key(0))
    specs = eqx.tree_at(lambda m: (m.weight, m.bias), specs, (P("x", None), P("x")))
    sharded = jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), layer, specs)
    column_parallel = jax.jit(
        jax.shard_map(lambda m, v: m(v), mesh=mesh, in_specs=(specs, P()), out_specs=P("x"))
    )
    assert_close(column_parallel(sharded, x), layer(x), jnp.float32, what="sharded map")
    # a per-channel scale on its shard of the channels (it built with all 4)
    gate = eqx.tree_at(lambda m: m.weight, nn.SoftGating(4), jnp.arange(1.0, 5.0))
    field = jax.random.normal(jax.random.key(2), (4, 5))
    per_shard = jax.jit(
        jax.shard_map(lambda m, v: m(v), mesh=mesh, in_specs=P("x"), out_specs=P("x"))
    )
    on_mesh = lambda a: jax.device_put(a, NamedSharding(mesh, P("x")))  # noqa: E731
    assert_close(
        per_shard(on_mesh(gate), on_mesh(field)), gate(field), jnp.float32, what="sharded gate"
    )


def test_a_subclass_whose_own_annotations_do_not_resolve_is_checked_on_its_parents_fields():
    """``typing.get_type_hints`` fails on a subclass naming a type it imports only for type
    checkers (here a local name); its calls ran before the checks and still do."""
    local = int

    class Hooked(nn.PointwiseLinear):
        tag: local | None = eqx.field(static=True, default=None)

    layer = Hooked(3, 4, key=jax.random.key(0))
    assert layer(jnp.ones((3, 5))).shape == (4, 5)
    with pytest.raises(ValueError, match=r"`Hooked.bias` .* got float32\[1\]"):
        eqx.tree_at(lambda m: m.bias, layer, jnp.ones((1,)))(jnp.ones((3, 5)))


class _Loose(eqx.Module):
    """A user's module whose annotations its values do not meet (two sizes named ``n``)."""

    a: Float[Array, " n"]
    b: Float[Array, " n"]


class _DeepS4D(eqx.Module):
    """A user's sequence mixer scanning over S4D layers stacked by ``eqx.filter_vmap``
    (Equinox's scan-over-layers pattern): each stacked array has a leading depth axis."""

    layers: S4D

    def __init__(self, channels, depth, key):
        self.layers = eqx.filter_vmap(lambda k: S4D(channels, 8, key=k))(
            jax.random.split(key, depth)
        )

    def __call__(self, x):
        params, static = eqx.partition(self.layers, eqx.is_array)
        return jax.lax.scan(lambda h, p: (eqx.combine(p, static)(h), None), x, params)[0]


class _Pair(NamedTuple):
    first: eqx.Module
    second: eqx.Module


def test_a_users_module_inside_a_layer_is_left_to_its_own_call():
    """The walk checks spectrax's layers and the Equinox layers they hold, and does not enter
    a user's module inside one: its annotations are its own, and the layers it holds may be
    stacked for a scan (refused at rest as layers at another shape, where they ran before the
    walk). A spectrax layer in a subclass's field, or in a NamedTuple there, is named by its
    path as ``jax.tree_util.keystr`` writes it."""

    class Tagged(nn.PointwiseLinear):
        extra: Any

        def __init__(self, extra, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.extra = extra

    key = jax.random.key(0)
    loose = _Loose(jnp.ones(2), jnp.ones(3))
    layer = Tagged(loose, 3, 4, key=key)
    assert layer(jnp.ones((3, 5))).shape == (4, 5)
    model = models.SSMSequenceModel(3, 2, 8, 2, state_size=8, key=key)
    deep = eqx.tree_at(lambda m: m.blocks[0].ssm, model, _DeepS4D(8, 3, key))
    assert deep(jnp.ones((6, 3)), key=None, inference=True).shape == (2,)
    inner = Tagged(_Pair(nn.SoftGating(4), nn.SoftGating(4)), 3, 4, key=key)
    one = jnp.ones((1,))
    with pytest.raises(ValueError, match=r"`Tagged\.extra\.second\.weight` .* got float32\[1\]"):
        eqx.tree_at(lambda m: m.extra.second.weight, inner, one)(jnp.ones((3, 5)))
