"""An eager model call is one compiled program (spectrax._compile.compiled_call): its primitives
were each compiled on their own the first time (49 programs for a 2-layer FNO-1d; an
SSMSequenceModel of two S5 blocks under jax.vmap took 8.4 s instead of about 1 s), and
``jax.disable_jit()`` still runs it op by op, with the same result."""

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.models import FNO, SSMSequenceModel
from spectrax.nn import S5

_COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: (
        _COMPILES.append(name) if name.endswith("backend_compile_duration") else None
    )
)

BUILD = {
    "fno": (lambda k: FNO(1, 1, 1, width=8, modes=4, num_layers=2, key=k), (1, 32)),
    "s5-model": (
        lambda k: SSMSequenceModel(3, 2, 8, 2, state_size=4, layer="s5", key=k),
        (16, 3),
    ),
}


@pytest.mark.parametrize("name", sorted(BUILD))
def test_an_eager_call_is_one_program_and_disable_jit_agrees(name):
    build, shape = BUILD[name]
    model = build(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), shape)
    _COMPILES.clear()
    y = model(x)
    assert len(_COMPILES) == 1, _COMPILES
    _COMPILES.clear()
    # another model of the same structure: the same program, nothing compiled
    other = build(jax.random.key(2))(x)
    assert not _COMPILES and other.shape == y.shape
    with jax.disable_jit():
        _COMPILES.clear()
        eager = model(x)
        assert len(_COMPILES) > 1  # op by op: the path every eager call took before
    np.testing.assert_allclose(np.asarray(eager), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_concrete_value_checks_still_run_before_tracing(library_errors):
    """S5's per-step dt and the model's mask are checked where their values are concrete."""
    layer = S5(2, 4, key=jax.random.key(0))
    x = jnp.ones((5, 2))
    with pytest.raises(ValueError, match=r"`dt` must be finite and positive .* at step 2"):
        layer(x, dt=jnp.array([1.0, 1.0, -1.0, 1.0, 1.0]))
    model = SSMSequenceModel(3, 2, 8, 1, state_size=4, layer="s5", key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`mask` is all False"):
        model(jnp.ones((4, 3)), mask=jnp.zeros(4, bool))


def test_eager_decoding_is_one_program_per_token():
    """SSMSequenceModel.step, token by token outside jit: one compiled program, then none (13 ms
    a token op by op on a 2-core CPU, 0.5 ms so, measured by hand), equal to disable_jit's."""
    model = SSMSequenceModel(
        3, 3, 8, 2, state_size=4, layer="s4d", pooling="none", key=jax.random.key(0)
    )
    state = model.init_state()
    x = jnp.ones(3)
    _COMPILES.clear()
    y, state = model.step(x, state)
    assert len(_COMPILES) == 1, _COMPILES
    _COMPILES.clear()
    y2, _ = model.step(x, state)
    assert not _COMPILES
    with jax.disable_jit():
        ref, _ = model.step(x, state)
    np.testing.assert_allclose(np.asarray(y2), np.asarray(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["S4", "S4D", "S5"])
def test_a_layers_eager_step_is_one_program(layer, library_errors):
    """``S4/S4D/S5.step`` outside jit: one compiled program, then none (each step compiled and
    ran op by op: S4D 4.9 ms a step against 0.3 ms, measured by hand), equal to disable_jit's;
    S5's ``dt`` is traced after its check (a new value compiles nothing; a negative one is
    still refused by name)."""
    from spectrax import nn

    model = getattr(nn, layer)(4, 8, key=jax.random.key(0))
    state = model.init_state()
    x = jnp.ones(4)
    kw = {"dt": 0.5} if layer == "S5" else {}
    jnp.asarray(0.5)  # JAX's own one-time program for a Python float (dt's conversion)
    _COMPILES.clear()
    y, state = model.step(x, state, **kw)
    assert len(_COMPILES) == 1, _COMPILES
    _COMPILES.clear()
    kw = {"dt": 0.25} if layer == "S5" else {}
    y2, _ = model.step(x, state, **kw)
    assert not _COMPILES
    with jax.disable_jit():
        ref, _ = model.step(x, state, **kw)
    np.testing.assert_allclose(np.asarray(y2), np.asarray(ref), rtol=1e-5, atol=1e-6)
    if layer == "S5":
        with pytest.raises(ValueError, match=r"`dt` must be finite and positive"):
            model.step(x, state, dt=-1.0)
