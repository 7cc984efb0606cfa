"""spectrax.fft_conv: float64 NumPy references, transformations, custom_vjp gradients, errors."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spectrax
from spectrax.kernels.fft_conv import (
    SpectralFilter,
    fft_conv_filter,
    fft_conv_reference,
    fft_conv_xla,
)
from tests.helpers import assert_close, tol


def direct_conv(u, k, causal=True):
    """float64 NumPy direct convolution, broadcasting leading dims."""
    u = np.asarray(u, np.float64)
    k = np.asarray(k, np.float64)
    lead = np.broadcast_shapes(u.shape[:-1], k.shape[:-1])
    ub = np.broadcast_to(u, lead + u.shape[-1:]).reshape(-1, u.shape[-1])
    kb = np.broadcast_to(k, lead + k.shape[-1:]).reshape(-1, k.shape[-1])
    L = u.shape[-1]
    out = np.empty_like(ub)
    for i, (a, b) in enumerate(zip(ub, kb, strict=False)):
        if causal:
            out[i] = np.convolve(a, b)[:L]
        else:  # circular
            out[i] = [sum(b[s] * a[(t - s) % L] for s in range(L)) for t in range(L)]
    return out.reshape(lead + (L,))


def _inputs(key, u_shape, k_shape, dtype):
    ku, kk = jax.random.split(key)
    u = jax.random.normal(ku, u_shape, jnp.float32).astype(dtype)
    k = jax.random.normal(kk, k_shape, jnp.float32).astype(dtype)
    return u, k


# L prime (97), odd (75), power of two (64, 128), and the degenerate L = 1.
SHAPES = [
    ((97,), (97,)),
    ((97,), (1,)),
    ((3, 75), (3, 40)),
    ((2, 3, 64), (3, 64)),  # u (B, H, L), k (H, K)
    ((4, 1, 128), (5, 17)),  # broadcast both ways
    ((1,), (1,)),
]


@pytest.mark.parametrize("u_shape,k_shape", SHAPES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_matches_direct_convolution(key, u_shape, k_shape, dtype):
    u, k = _inputs(key, u_shape, k_shape, dtype)
    y = spectrax.fft_conv(u, k)
    assert y.dtype == dtype
    assert_close(y, direct_conv(u, k), dtype)


@pytest.mark.parametrize("u_shape,k_shape", SHAPES)
def test_matches_direct_convolution_float64(key, x64, u_shape, k_shape):
    u, k = _inputs(key, u_shape, k_shape, jnp.float64)
    y = spectrax.fft_conv(u, k)
    assert y.dtype == jnp.float64
    assert_close(y, direct_conv(u, k), jnp.float64)


@settings(max_examples=12, deadline=None)
@given(
    L=st.integers(1, 130),
    frac=st.floats(0.0, 1.0),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    k_takes_lead=st.booleans(),
)
def test_random_shapes(L, frac, lead, k_takes_lead):
    K = max(1, int(round(frac * L)))
    lead = tuple(lead)
    k_lead = lead if k_takes_lead else ()
    u, k = _inputs(jax.random.key(L), lead + (L,), k_lead + (K,), jnp.float32)
    assert_close(spectrax.fft_conv(u, k), direct_conv(u, k), jnp.float32)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("L", [31, 64])
def test_circular(key, dtype, L):
    u, k = _inputs(key, (2, L), (2, L), dtype)
    y = spectrax.fft_conv(u, k, causal=False)
    assert_close(y, direct_conv(u, k, causal=False), dtype)


def test_circular_float64(key, x64):
    u, k = _inputs(key, (3, 29), (29,), jnp.float64)
    assert_close(
        spectrax.fft_conv(u, k, causal=False), direct_conv(u, k, causal=False), jnp.float64
    )


def test_causality(key):
    """Changing u after time t leaves y[:t] unchanged (to FFT rounding)."""
    u, k = _inputs(key, (50,), (20,), jnp.float32)
    y1 = spectrax.fft_conv(u, k)
    y2 = spectrax.fft_conv(u.at[30:].set(7.0), k)
    assert_close(y2[:30], y1[:30], jnp.float32)
    assert np.max(np.abs(y1[30:] - y2[30:])) > 1.0


# ---------------------------------------------------------------------------------------------
# Transformations
# ---------------------------------------------------------------------------------------------


def test_jit_matches_eager_and_does_not_retrace(key):
    u, k = _inputs(key, (2, 3, 64), (3, 16), jnp.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(u, k):
        return spectrax.fft_conv(u, k)

    y1 = f(u, k)
    y2 = f(u + 1.0, k * 2.0)  # same shapes: no retrace
    assert_close(y1, spectrax.fft_conv(u, k), jnp.float32)
    assert_close(y2, spectrax.fft_conv(u + 1.0, k * 2.0), jnp.float32)


@pytest.mark.parametrize("axis", [0, 1])
def test_vmap_over_any_axis_equals_loop(key, axis):
    u, k = _inputs(key, (3, 4, 40), (4, 9), jnp.float32)
    y = jax.vmap(lambda ui: spectrax.fft_conv(ui, k if axis == 0 else k[0]), in_axes=axis)(u)
    slices = [
        spectrax.fft_conv(jnp.take(u, i, axis=axis), k if axis == 0 else k[0])
        for i in range(u.shape[axis])
    ]
    assert_close(y, jnp.stack(slices), jnp.float32)


def test_vmap_over_filter_axis(key):
    u, k = _inputs(key, (40,), (5, 9), jnp.float32)
    y = jax.vmap(spectrax.fft_conv, in_axes=(None, 0))(u, k)
    assert_close(y, spectrax.fft_conv(u, k), jnp.float32)


@pytest.mark.parametrize(
    "u_shape,k_shape", [((2, 3, 33), (3, 10)), ((33,), (2, 3, 33)), ((2, 1, 20), (4, 20))]
)
def test_grad_matches_reference_autodiff(key, x64, u_shape, k_shape):
    u, k = _inputs(key, u_shape, k_shape, jnp.float64)
    w = jax.random.normal(
        jax.random.key(3),
        jnp.broadcast_shapes(u_shape[:-1], k_shape[:-1]) + u_shape[-1:],
        jnp.float64,
    )

    def loss(f):
        return lambda u, k: jnp.sum(w * jnp.sin(f(u, k)))

    g = jax.grad(loss(spectrax.fft_conv), (0, 1))(u, k)
    g_ref = jax.grad(loss(fft_conv_reference), (0, 1))(u, k)
    for a, b in zip(g, g_ref, strict=False):
        assert a.shape == b.shape
        assert_close(a, b, jnp.float64)


def test_grad_matches_finite_differences(key, x64):
    u, k = _inputs(key, (2, 12), (2, 5), jnp.float64)
    # jitted: check_grads evaluates many times, op by op when eager (and jit hands the
    # annotated API jax arrays, where check_grads perturbs with NumPy ones)
    conv = jax.jit(spectrax.fft_conv, static_argnames="causal")
    jax.test_util.check_grads(conv, (u, k), order=2, modes=("rev",), atol=1e-7, rtol=1e-7)
    jax.test_util.check_grads(
        lambda u, k: conv(u, k, causal=False),
        (u, k[:, :1] * jnp.ones((1, 12), jnp.float64)),
        order=1,
        modes=("rev",),
        atol=1e-7,
        rtol=1e-7,
    )


def _irfft_shapes(fn, *args) -> list[tuple[int, ...]]:
    """Output shapes of every inverse real FFT in ``fn``'s jaxpr (nested jaxprs included)."""
    import jax.extend

    shapes = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "fft" and eqn.params["fft_type"] == jax.lax.FftType.IRFFT:
                shapes.append(tuple(eqn.outvars[0].aval.shape))
            for value in eqn.params.values():
                for sub in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        walk(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return sorted(shapes)


def test_backward_sums_broadcast_dims_before_the_inverse_fft(key):
    """The backward pass sums the cotangent over the dimensions a filter (or input) was
    broadcast along in the frequency domain, then inverts once per row it has: a (H, K) filter
    under a (B, H, L) input took B * H inverse FFTs for its gradient instead of H (backward
    1.5-1.8x slower on CPU for B=16, H=64, L=4096)."""
    batch, h, length = 4, 3, 16
    u, k = _inputs(key, (batch, h, length), (h, 5), jnp.float32)
    n = spectrax.transforms.conv_fft_size(length, 5)

    def loss(u, k):
        return jnp.sum(spectrax.fft_conv(u, k, impl="xla") ** 2)

    # forward y and du: one per output row; dk: one per filter row
    want = [(1, h, n), (batch, h, n), (batch, h, n)]
    assert _irfft_shapes(jax.grad(loss, argnums=(0, 1)), u, k) == want
    # a shared input under a bank of filters, time-domain and frequency-domain filters
    x = u[0, 0]
    k_f = fft_conv_filter(k, length).k_f

    def loss_f(x, k_f):
        filt = SpectralFilter(k_f, length, 5, True)
        return jnp.sum(spectrax.fft_conv(x, filt, impl="xla") ** 2)

    # y (H rows), du (1 row), and for a time-domain filter dk (H rows)
    assert _irfft_shapes(jax.grad(loss, argnums=0), x, k) == [(1, n), (h, n), (h, n)]
    assert _irfft_shapes(jax.grad(loss_f, argnums=0), x, k_f) == [(1, n), (h, n)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_grad_dtypes_follow_inputs(key, dtype):
    u, k = _inputs(key, (2, 32), (8,), dtype)
    gu, gk = jax.grad(lambda u, k: jnp.sum(spectrax.fft_conv(u, k).astype(jnp.float32)), (0, 1))(
        u, k
    )
    assert gu.dtype == dtype and gk.dtype == dtype
    assert gu.shape == u.shape and gk.shape == k.shape
    gu32, gk32 = jax.grad(lambda u, k: jnp.sum(fft_conv_reference(u, k)), (0, 1))(
        u.astype(jnp.float32), k.astype(jnp.float32)
    )
    assert_close(gu, gu32, dtype)
    assert_close(gk, gk32, dtype)


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_grad_under_checkpoint_equals_grad(key, impl):
    """jax.checkpoint (rematerialisation, saving nothing) around a gated convolution under
    jit: the custom_vjp is re-run in the backward pass and gives the gradients of impl="xla"
    without checkpointing (the Pallas kernel interpreted on CPU)."""
    u, k = _inputs(key, (2, 40), (2, 9), jnp.float32)
    post = _inputs(jax.random.key(1), (40,), (1,), jnp.float32)[0]

    def loss(u, k, post, impl):
        return jnp.sum(jnp.sin(spectrax.fft_conv(u, k, impl=impl, post_gate=post)))

    remat = jax.checkpoint(
        loss, policy=jax.checkpoint_policies.nothing_saveable, static_argnums=(3,)
    )
    got = jax.jit(jax.grad(remat, argnums=(0, 1, 2)), static_argnums=3)(u, k, post, impl)
    want = jax.grad(loss, argnums=(0, 1, 2))(u, k, post, "xla")
    # the kernels' default float32 mode is bf16_3x matmuls: 1e-4 (tests/kernels/test_fft_conv_paths)
    rtol = tol(jnp.float32) if impl == "xla" else 1e-4
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        assert_close(a, b, rtol=rtol)


# ---------------------------------------------------------------------------------------------
# Frequency-domain filters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal,K", [(True, 7), (True, 48), (False, 48)])
def test_spectral_filter_equals_time_domain(key, causal, K):
    u, k = _inputs(key, (3, 2, 48), (2, K), jnp.float32)
    filt = fft_conv_filter(k, 48, causal=causal)
    assert isinstance(filt, SpectralFilter)
    assert filt.k_f.shape == (2, filt.fft_size // 2 + 1)
    assert_close(spectrax.fft_conv(u, filt, causal=causal), direct_conv(u, k, causal), jnp.float32)
    # A pytree: jit and reuse across calls.
    f = jax.jit(lambda u, filt: spectrax.fft_conv(u, filt, causal=causal))
    assert_close(f(u, filt), spectrax.fft_conv(u, k, causal=causal), jnp.float32)


def test_spectral_filter_gradients(key, x64):
    u, k = _inputs(key, (3, 2, 30), (2, 11), jnp.float64)
    filt = fft_conv_filter(k, 30)
    n = filt.fft_size
    w = jax.random.normal(jax.random.key(5), (3, 2, 30), jnp.float64)

    def loss_spectrax(u, k_f):
        return jnp.sum(w * jnp.cos(spectrax.fft_conv(u, SpectralFilter(k_f, 30, 11, True))))

    def loss_autodiff(u, k_f):
        y = jnp.fft.irfft(jnp.fft.rfft(u, n=n) * k_f[None], n=n)[..., :30]
        return jnp.sum(w * jnp.cos(y))

    @jax.jit  # one compiled program (eager, each op of the four gradients compiles on its own)
    def grads(u, k, k_f):
        g = jax.grad(loss_spectrax, (0, 1))(u, k_f)
        g_ref = jax.grad(loss_autodiff, (0, 1))(u, k_f)
        # Chain rule through fft_conv_filter recovers the time-domain filter gradient.
        gk = jax.grad(lambda k: loss_spectrax(u, fft_conv_filter(k, 30).k_f))(k)
        gk_ref = jax.grad(lambda k: jnp.sum(w * jnp.cos(fft_conv_reference(u, k))))(k)
        return g, g_ref, gk, gk_ref

    g, g_ref, gk, gk_ref = grads(u, k, filt.k_f)
    assert_close(g[0], g_ref[0], jnp.float64)
    assert_close(g[1], g_ref[1], jnp.complex128)
    assert_close(gk, gk_ref, jnp.float64)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_errors_name_the_argument(key, library_errors):
    u, k = _inputs(key, (2, 16), (2, 16), jnp.float32)
    with pytest.raises(ValueError, match=r"K=17 > L=16"):
        spectrax.fft_conv(u, jnp.ones((17,), jnp.float32))
    with pytest.raises(TypeError, match=r"`u` must be a real floating-point array.*complex64"):
        spectrax.fft_conv(u.astype(jnp.complex64), k)
    with pytest.raises(TypeError, match=r"`k` must be a real floating-point array.*int32"):
        spectrax.fft_conv(u, jnp.ones((4,), jnp.int32))
    with pytest.raises(ValueError, match=r"leading dimensions of `u` \(2,\) and `k` \(3,\)"):
        spectrax.fft_conv(u, jnp.ones((3, 4), jnp.float32))
    with pytest.raises(ValueError, match=r"causal=False.*K == L.*K=8, L=16"):
        spectrax.fft_conv(u, k[:, :8], causal=False)
    with pytest.raises(ValueError, match=r"`impl` must be one of .*'cuda'"):
        spectrax.fft_conv(u, k, impl="cuda")
    with pytest.raises(ValueError, match=r"SpectralFilter built for length 16; got `u` with L=20"):
        spectrax.fft_conv(jnp.ones((20,), jnp.float32), fft_conv_filter(k, 16))
    with pytest.raises(ValueError, match=r"built with causal=True; got causal=False\. Expected"):
        spectrax.fft_conv(u, fft_conv_filter(k, 16), causal=False)
    # a truthy string would silently mean causal=True
    with pytest.raises(TypeError, match=r"`causal` must be a bool; got 'no'"):
        spectrax.fft_conv(u, k, causal="no")
    with pytest.raises(ValueError, match=r"`k` is longer than `length`: K=30 > L=16"):
        fft_conv_filter(jnp.ones((30,), jnp.float32), 16)


def test_time_major_input_is_named_as_such(key, library_errors):
    # u (L, H) as the nn layers take it, with k (H, K): the error said only "truncate the
    # filter", which does not fix it; it now says which axis is convolved and how to swap.
    u, k = jnp.ones((64, 4), jnp.float32), jnp.ones((4, 32), jnp.float32)
    with pytest.raises(ValueError, match=r"K=32 > L=4.*last axis.*swapaxes\(u, -1, -2\)"):
        spectrax.fft_conv(u, k)
    with pytest.raises(ValueError, match=r"K=17 > L=16;.*sequence length\)\.$"):
        spectrax.fft_conv(jnp.ones((2, 16), jnp.float32), k[:, :17])  # no axis to swap


def test_gates_must_broadcast_with_the_output(key, library_errors):
    """A gate is checked against the output's leading dims (u and k broadcast), not only
    u's: u (1, L) with k (3, K) gives (3, L), so a (2, L) gate is refused by name."""
    u, k = _inputs(key, (1, 8), (3, 4), jnp.float32)
    for name in ("pre_gate", "post_gate"):
        with pytest.raises(
            ValueError, match=rf"`{name}` \(2,\) do not broadcast against the output's \(3,\)"
        ):
            spectrax.fft_conv(u, k, **{name: jnp.ones((2, 8), jnp.float32)})
        with pytest.raises(ValueError, match=rf"`{name}` must have shape \(\.\.\., L=8\)"):
            spectrax.fft_conv(u, k, **{name: jnp.ones((3, 7), jnp.float32)})
    # a gate with more leading dims than u and k is fine: the output takes them
    gate = jax.random.normal(jax.random.key(1), (2, 3, 8), jnp.float32)
    y = spectrax.fft_conv(u, k, post_gate=gate)
    assert_close(y, np.asarray(gate, np.float64) * direct_conv(u, k), jnp.float32)


def test_gates_must_broadcast_with_each_other(library_errors):
    """Each gate broadcast with the output of u and k, (pre (3, 1), post (2, 3) against ()),
    but not with the other: the call passed validation and failed in JAX's broadcasting with a
    message naming no argument. The second gate is checked against what the first made."""
    u, k = jnp.ones((20,), jnp.float32), jnp.ones((3,), jnp.float32)
    pre, post = jnp.ones((3, 1, 20), jnp.float32), jnp.ones((2, 3, 20), jnp.float32)
    msg = r"`post_gate` \(2, 3\) do not broadcast.*\(3, 1\).*and with `pre_gate` \(3, 1\)"
    for conv in (spectrax.fft_conv, fft_conv_xla, fft_conv_reference):
        with pytest.raises(ValueError, match=msg):
            conv(u, k, pre_gate=pre, post_gate=post)
    # gates that broadcast with each other widen the output as before: (3, 1) with (3, 2)
    y = spectrax.fft_conv(u, k, pre_gate=pre, post_gate=jnp.ones((3, 2, 20), jnp.float32))
    assert y.shape == (3, 2, 20)


def test_numpy_float64_without_x64_computes_as_float32(library_errors):
    """A NumPy float64 array without jax_enable_x64 is float32 in JAX. Its raw dtype asked
    float64 of every cast (JAX's "not available, truncated" warning from fft_conv_reference,
    the gradient and the gated path); now each entry point gives the float32 result, silently.
    (The test-time jaxtyping check is off, as for users: the annotations name jax.Array.)"""
    assert not jax.config.jax_enable_x64
    rng = np.random.default_rng(0)
    u, k, gate = rng.standard_normal((2, 16)), rng.standard_normal((5,)), rng.standard_normal(16)
    want = np.asarray(gate) * direct_conv(u, k)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for y in (
            spectrax.fft_conv(u, k, post_gate=gate),
            spectrax.fft_conv(u, k, post_gate=gate, impl="xla"),
            fft_conv_reference(u, k, post_gate=gate),
        ):
            assert y.dtype == jnp.float32
            assert_close(y, want, jnp.float32)
        g = jax.grad(lambda u: spectrax.fft_conv(u, k, pre_gate=gate).sum())(u)
        assert g.dtype == jnp.float32


def test_every_public_entry_point_validates(key, library_errors):
    """fft_conv_xla and fft_conv_filter check their arguments like fft_conv does."""
    u, k = _inputs(key, (2, 16), (2, 16), jnp.float32)
    with pytest.raises(ValueError, match=r"K=17 > L=16"):
        fft_conv_xla(u, jnp.ones((17,), jnp.float32))
    with pytest.raises(ValueError, match=r"causal=False.*K=8, L=16"):
        fft_conv_xla(u, k[:, :8], causal=False)
    with pytest.raises(ValueError, match=r"built with causal=True; got causal=False"):
        fft_conv_xla(u, fft_conv_filter(k, 16), causal=False)
    for bad in (16.5, True, "16"):
        with pytest.raises(ValueError, match=r"`length` must be an integer >= 1"):
            fft_conv_filter(k, bad)


def test_non_arrays_are_refused_by_name(key, library_errors):
    """A Python number or list is not an array: a TypeError names the argument (a float `k`
    failed with AttributeError: 'float' object has no attribute 'ndim')."""
    u, k = _inputs(key, (2, 16), (2, 4), jnp.float32)
    for name, args, kw in (
        ("k", (u, 2.0), {}),
        ("u", ([1.0, 2.0], k[0, :1]), {}),
        ("post_gate", (u, k), {"post_gate": 0.5}),
        ("pre_gate", (u, k), {"pre_gate": [1.0] * 16}),
    ):
        with pytest.raises(TypeError, match=rf"`{name}` must be a JAX or NumPy array; got "):
            spectrax.fft_conv(*args, **kw)
    with pytest.raises(TypeError, match=r"`k` must be a JAX or NumPy array; got float 2.0"):
        fft_conv_filter(2.0, 16)


def test_spectral_filter_of_the_wrong_size_is_refused(key, library_errors):
    u, k = _inputs(key, (2, 16), (2, 16), jnp.float32)
    filt = fft_conv_filter(k, 16, causal=False)  # 9 rfft bins of a 16-point transform
    bad = SpectralFilter(filt.k_f[..., :5], 16, 16, False)
    with pytest.raises(ValueError, match=r"k_f has shape \(2, 5\); expected \(\.\.\., 9\)"):
        spectrax.fft_conv(u, bad, causal=False)
    # a hand-built filter longer than its sequence is refused when it is built
    with pytest.raises(ValueError, match=r"`kernel_size`=20 does not fit `length`=16"):
        SpectralFilter(filt.k_f, 16, 20, True)
    with pytest.raises(ValueError, match=r"`kernel_size`=8 does not fit.*== length \(circular\)"):
        SpectralFilter(filt.k_f, 16, 8, False)
    with pytest.raises(ValueError, match=r"`kernel_size` must be an integer >= 1; got 0"):
        SpectralFilter(filt.k_f, 16, 0, True)
    with pytest.raises(TypeError, match=r"`causal` must be a bool; got 1"):
        SpectralFilter(filt.k_f, 16, 16, 1)
    # as for an array k (causal=0 compared equal to the filter's False and passed)
    with pytest.raises(TypeError, match=r"`causal` must be a bool; got 0"):
        spectrax.fft_conv(u, filt, causal=0)
    # a spectrum that is not a floating-point or complex array is refused by name (a list
    # failed with "'list' object has no attribute 'ndim'", an int32 one was convolved)
    for k_f, got in (([1.0] * 9, "list"), (jnp.ones((2, 9), jnp.int32), "dtype int32")):
        with pytest.raises(TypeError, match=rf"`k.k_f` must be a .*got {got}"):
            spectrax.fft_conv(u, SpectralFilter(k_f, 16, 16, False), causal=False)
    # the filter is still a pytree that maps, vmaps and transforms
    assert jax.tree.map(lambda a: a * 2, filt).length == 16


def test_gated_half_precision_is_rounded_once(key):
    """bf16 with gates under XLA: gates, transform and product in float32, one rounding to
    bf16 at the end (as documented, and as the Pallas kernels do), not one per product."""
    u, k = _inputs(key, (3, 4, 200), (4, 60), jnp.bfloat16)
    pre, post = _inputs(jax.random.key(1), (4, 200), (3, 1, 200), jnp.bfloat16)
    y = spectrax.fft_conv(u, k, pre_gate=pre, post_gate=post, impl="xla")
    assert y.dtype == jnp.bfloat16
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    want = (f32(post) * spectrax.fft_conv(f32(u) * f32(pre)[None], f32(k), impl="xla")).astype(
        jnp.bfloat16
    )
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(want, np.float32))


def test_auto_and_xla_agree(key):
    u, k = _inputs(key, (2, 64), (64,), jnp.float32)
    np.testing.assert_allclose(
        spectrax.fft_conv(u, k, impl="auto"),
        spectrax.fft_conv(u, k, impl="xla"),
        rtol=tol(jnp.float32),
        atol=1e-6,
    )


def test_annotations_are_checked_in_tests(key):
    """The jaxtyping hook is active: a complex input is rejected by the annotation too."""
    u, k = _inputs(key, (16,), (4,), jnp.float32)
    with pytest.raises(TypeError):
        spectrax.fft_conv(u.astype(jnp.complex64), k)


def test_registered_impl_is_selectable_by_name(monkeypatch, library_errors):
    """An implementation added with register_impl is reached by its name (and by "auto" when
    it says it supports the arguments); bad registrations are refused."""
    from spectrax.kernels.fft_conv import fft_conv_xla, ops, register_impl

    monkeypatch.setattr(ops, "_IMPLEMENTATIONS", dict(ops._IMPLEMENTATIONS))
    monkeypatch.setattr(ops, "_SUPPORTS", dict(ops._SUPPORTS))
    calls = []

    def mine(u, k, *, causal, **gates):
        calls.append(causal)
        return fft_conv_xla(u, k, causal=causal, **gates)

    register_impl("mine", mine, lambda u, k, causal: False)
    u = jax.random.normal(jax.random.key(0), (2, 16))
    k = jax.random.normal(jax.random.key(1), (2, 5))
    y = spectrax.fft_conv(u, k, impl="mine")
    assert calls == [True]
    assert_close(y, spectrax.fft_conv(u, k, impl="xla"), rtol=1e-6)
    spectrax.fft_conv(u, k)  # "auto": `mine` declined, so it is not called
    assert calls == [True]
    with pytest.raises(ValueError, match="`impl`.*'nope'"):
        spectrax.fft_conv(u, k, impl="nope")
    with pytest.raises(ValueError, match="`name`"):
        register_impl("auto", mine, lambda u, k, causal: True)
    with pytest.raises(TypeError, match="callables"):
        register_impl("other", None, lambda u, k, causal: True)


def test_reference_takes_the_gates(key, x64):
    """fft_conv_reference, the forward-mode fallback fft_conv's docstring points to, had no
    pre_gate / post_gate: a gated fft_conv (Hyena's) had no reference with its signature to
    take jax.jvp or jax.jacfwd through."""
    rng = np.random.default_rng(0)  # NumPy draws: jax.random in float64 compiles for ~1 s
    u, k, pre, post = (
        jnp.asarray(rng.standard_normal(s)) for s in ((2, 3, 19), (3, 6), (19,), (2, 1, 19))
    )
    ref = jax.jit(fft_conv_reference)  # jitted: op-by-op dispatch compiles every op
    got = ref(u, k, pre_gate=pre, post_gate=post)
    want = np.asarray(post) * direct_conv(np.asarray(pre) * np.asarray(u), k)
    assert_close(got, want, rtol=1e-12)
    assert_close(spectrax.fft_conv(u, k, pre_gate=pre, post_gate=post), got, rtol=1e-12)
    # forward mode: linear in the gate, so the tangent along the gate is the output itself;
    # a gate with more leading dimensions than u and k enlarges the output, as in fft_conv
    x, h = u[0, 0], k[0]
    y, tangent = jax.jit(jax.jvp, static_argnums=0)(
        lambda g: fft_conv_reference(x, h, post_gate=g), (post,), (post,)
    )
    assert_close(y, np.asarray(post) * direct_conv(x, h), rtol=1e-12)
    assert_close(tangent, y, rtol=1e-12)
    # half precision: computed in float32, returned in u's dtype
    b = [np.asarray(a.astype(jnp.bfloat16)) for a in (u, k, pre, post)]
    got = ref(*(jnp.asarray(a) for a in b[:2]), pre_gate=b[2], post_gate=b[3])
    assert got.dtype == jnp.bfloat16
    f64 = [a.astype(np.float64) for a in b]
    assert_close(got, f64[3] * direct_conv(f64[2] * f64[0], f64[1]), jnp.bfloat16)


def test_reference_validates_like_fft_conv(key, library_errors):
    """fft_conv_reference (public, the forward-mode fallback) took any array: a complex `u`
    lost its imaginary part and came back complex, an integer one was truncated, and a
    circular filter of the wrong length was cut to L, all silently. It refuses them by name."""
    u, k = _inputs(key, (16,), (4,), jnp.float32)
    with pytest.raises(TypeError, match=r"`u` must be a real floating-point.*complex64"):
        fft_conv_reference(u.astype(jnp.complex64), k)
    with pytest.raises(TypeError, match=r"`k` must be a real floating-point.*int32"):
        fft_conv_reference(u, k.astype(jnp.int32))
    with pytest.raises(ValueError, match=r"causal=False.*K=4, L=16"):
        fft_conv_reference(u, k, causal=False)
    with pytest.raises(TypeError, match=r"`k` must be a time-domain filter.*SpectralFilter"):
        fft_conv_reference(u, spectrax.kernels.fft_conv.fft_conv_filter(k, 16))
    with pytest.raises(ValueError, match=r"`post_gate` must have shape \(\.\.\., L=16\)"):
        fft_conv_reference(u, k, post_gate=u[:8])


def test_a_jax_without_pallas_imports_and_convolves():
    """A JAX build without ``jax.experimental.pallas``: the package imports, ``import *`` works
    (``__all__`` named the missing Pallas functions: AttributeError), and impl="auto" runs XLA."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['jax.experimental.pallas'] = None\n"
        "import jax, jax.numpy as jnp\n"
        "from spectrax.kernels.fft_conv import *\n"
        "import spectrax.kernels.fft_conv as m\n"
        "assert 'fft_conv_pallas' not in m.__all__ and 'pallas' not in available_impls()\n"
        "y = fft_conv(jnp.ones((2, 8)), jnp.ones((2, 4)))\n"
        "assert y.shape == (2, 8) and float(y[0, -1]) == 4.0, y\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
