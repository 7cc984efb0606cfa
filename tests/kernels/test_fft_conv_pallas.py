"""Pallas FFT-conv kernels (GPU/Triton and TPU/Mosaic) in interpret mode vs impl="xla" and float64.

Every case runs both kernel families on CPU: the GPU kernel with ``interpret=True``, the TPU
kernel with ``pltpu.InterpretParams()`` (TPU semantics emulated). Sizes are small because
interpret mode is slow; the largest supported length runs once with one row.
"""

import importlib.util
import json
import pathlib

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu

from spectrax.kernels.fft_conv import (
    fft_conv,
    fft_conv_filter,
    fft_conv_reference,
    pallas_status,
)
from spectrax.kernels.fft_conv import gpu as fft_conv_gpu
from spectrax.kernels.fft_conv import tpu as fft_conv_tpu
from spectrax.kernels.fft_conv._pallas import (
    _unsupported_reason,
    fft_conv_pallas,
    pallas_plan,
    supports,
)
from spectrax.kernels.fft_conv.gpu import GpuBlockSizes
from spectrax.kernels.fft_conv.monarch import MAX_LENGTH, band_mask, filter_spectrum, to_tiles
from spectrax.kernels.fft_conv.outer import LONG_MAX_LENGTH
from spectrax.kernels.fft_conv.tpu import TpuBlockSizes
from tests.helpers import assert_close, tol

FAMILIES = [
    pytest.param("gpu", True, None, id="gpu"),
    # block_rows=2 with 3 or 5 channels: channel counts that are not a multiple of the block
    pytest.param("tpu", pltpu.InterpretParams(), TpuBlockSizes(block_rows=2), id="tpu"),
]


def _arrays(shapes, dtype=jnp.float32, seed=0):
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return [
        jax.random.normal(k, s, jnp.float32).astype(dtype)
        for k, s in zip(keys, shapes, strict=True)
    ]


def np_causal(u, k):
    """float64 direct causal convolution, broadcasting leading dims."""
    u, k = np.asarray(u, np.float64), np.asarray(k, np.float64)
    lead = np.broadcast_shapes(u.shape[:-1], k.shape[:-1])
    n = u.shape[-1]
    ub = np.broadcast_to(u, lead + (n,)).reshape(-1, n)
    kb = np.broadcast_to(k, lead + k.shape[-1:]).reshape(-1, k.shape[-1])
    return np.stack([np.convolve(a, b)[:n] for a, b in zip(ub, kb, strict=True)]).reshape(
        lead + (n,)
    )


# smallest issue size (256), non-powers of two with short filters, circular, the largest L
# of a two-level plan (chunk=0: one plan over the whole sequence, not the short-filter path)
CASES = [
    ((2, 3, 256), (3, 256), True, {}),
    ((5, 1000), (5, 37), True, {}),
    ((2, 1, 3, 97), (3, 9), True, {}),
    ((2, 512), (2, 512), False, {}),
    ((1, MAX_LENGTH), (1, 300), True, {"chunk": 0}),
]


@pytest.mark.parametrize("family, interpret, blocks", FAMILIES)
@pytest.mark.parametrize("u_shape, k_shape, causal, kw", CASES)
def test_forward_equals_xla_and_float64(family, interpret, blocks, u_shape, k_shape, causal, kw):
    u, k = _arrays([u_shape, k_shape])
    y = fft_conv_pallas(
        u,
        k,
        causal=causal,
        backend=family,
        interpret=interpret,
        block_sizes=blocks,
        precision="f32",
        **kw,
    )
    assert y.shape == u_shape and y.dtype == jnp.float32
    assert_close(y, fft_conv(u, k, causal=causal, impl="xla"), jnp.float32)
    if causal:
        assert_close(y, np_causal(u, k), jnp.float32)


def np_causal_vjp(u, k, g):
    """float64 cotangents of the causal convolution by direct sums: ``du[t] = sum_s k[s]
    g[t+s]``, ``dk[s] = sum_t g[t] u[t-s]``, summed over the axes ``u`` and ``k`` broadcast."""
    u, k, g = (np.asarray(a, np.float64) for a in (u, k, g))
    n, ksize = u.shape[-1], k.shape[-1]
    ub, kb = np.broadcast_to(u, g.shape), np.broadcast_to(k, g.shape[:-1] + (ksize,))
    du, dk = np.zeros(g.shape), np.zeros(kb.shape)
    for s in range(ksize):
        du[..., : n - s] += kb[..., s : s + 1] * g[..., s:]
        dk[..., s] = np.sum(g[..., s:] * ub[..., : n - s], axis=-1)

    def sum_to(x, shape):
        x = x.reshape((-1,) + x.shape[x.ndim - len(shape) :]).sum(0)
        axes = tuple(i for i, d in enumerate(shape) if d == 1 and x.shape[i] != 1)
        return x.sum(axes, keepdims=True)

    return sum_to(du, u.shape), sum_to(dk, k.shape)


# tiling edges: L = 1 (one sample in a 16 x 16 GPU / 8 x 128 TPU tile); and L = 33 with u
# (1, 3, L) against k (3, 1, K), broadcast both ways, so the filter is materialised as 9 rows,
# which TPU blocks of 2 rows do not divide
VJP_SHAPES = [((1,), (1,)), ((1, 3, 33), (3, 1, 9))]


@pytest.mark.parametrize("family, interpret, blocks", FAMILIES)
@pytest.mark.parametrize("u_shape, k_shape", VJP_SHAPES)
def test_forward_and_vjp_equal_float64_direct_sums(family, interpret, blocks, u_shape, k_shape):
    u, k = _arrays([u_shape, k_shape], seed=11)
    out_shape = np.broadcast_shapes(u_shape[:-1], k_shape[:-1]) + u_shape[-1:]
    (g,) = _arrays([out_shape], seed=12)

    def conv(u, k):
        return fft_conv_pallas(
            u, k, backend=family, interpret=interpret, block_sizes=blocks, precision="f32"
        )

    @jax.jit  # one program: interpreting the kernels eagerly is several times slower
    def forward_and_vjp(u, k, g):
        y, vjp = jax.vjp(conv, u, k)
        return y, *vjp(g)

    y, du, dk = forward_and_vjp(u, k, g)
    du_want, dk_want = np_causal_vjp(u, k, g)
    assert_close(y, np_causal(u, k), jnp.float32, what="y")
    assert_close(du, du_want, jnp.float32, what="du")
    assert_close(dk, dk_want, jnp.float32, what="dk")


@pytest.mark.parametrize("family, interpret, blocks", FAMILIES)
def test_bfloat16_forward(family, interpret, blocks):
    u, k, pre = _arrays([(2, 3, 1000), (3, 64), (3, 1000)], jnp.bfloat16, seed=1)
    y = fft_conv_pallas(u, k, pre_gate=pre, backend=family, interpret=interpret, block_sizes=blocks)
    assert y.dtype == jnp.bfloat16
    expected = fft_conv(u, k, pre_gate=pre, impl="xla")
    assert_close(y, expected, jnp.bfloat16)
    v = np.asarray(u, np.float64) * np.asarray(pre, np.float64)
    assert_close(y, np_causal(v, k), jnp.bfloat16)


@pytest.mark.parametrize("family, interpret, blocks", FAMILIES)
def test_gradients_with_gates_equal_xla(family, interpret, blocks):
    # L = 2048, K = 30: the filter gradient computes only the first rows (short filter path)
    u, k, pre, post = _arrays([(2, 3, 2048), (3, 30), (2, 3, 2048), (3, 2048)], seed=2)
    w = _arrays([(2, 3, 2048)], seed=3)[0]

    def loss(conv, u, k, pre, post):
        return jnp.sum(w * jnp.tanh(conv(u, k, pre_gate=pre, post_gate=post)))

    def pallas(u, k, **gates):
        return fft_conv_pallas(
            u, k, backend=family, interpret=interpret, block_sizes=blocks, precision="f32", **gates
        )

    def xla(u, k, **gates):
        return fft_conv(u, k, impl="xla", **gates)

    grad = jax.grad(loss, argnums=(1, 2, 3, 4))
    # one compiled program for both (eager, the XLA path's ops compile one by one)
    got, want = jax.jit(lambda *a: (grad(pallas, *a), grad(xla, *a)))(u, k, pre, post)
    for name, a, b in zip(["u", "k", "pre_gate", "post_gate"], got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close(a, b, jnp.float32, what=f"d{name}")


# Second derivatives: the two-level plan (both families), overlap-save chunks, a
# frequency-sparse plan and the three-level plan (L = 5000 > GPU_MAX_FFT), with both gates.
SECOND_ORDER = [
    pytest.param("gpu", True, 2, 256, 40, {}, id="two-level-gpu"),
    pytest.param("tpu", pltpu.InterpretParams(), 2, 256, 40, {}, id="two-level-tpu"),
    pytest.param("gpu", True, 1, 512, 100, {"chunk": 128}, id="chunked"),
    pytest.param("gpu", True, 1, 1024, 1024, {"bandwidth": 0.25}, id="band-limited"),
    pytest.param("gpu", True, 1, 5000, 300, {"chunk": 0}, id="three-level"),
]


@pytest.mark.parametrize("family, interpret, batch, length, ksize, kw", SECOND_ORDER)
def test_second_derivatives_equal_xla(family, interpret, batch, length, ksize, kw):
    """grad of grad (reverse over reverse) and jax.hessian (forward over reverse) through the
    kernels equal impl="xla" (on the band-limited filter for a frequency-sparse plan); the
    kernels give the first derivatives, the jnp.fft reference the derivatives of those."""
    u, k, pre, post, w = _arrays(
        [(batch, 3, length), (3, ksize), (batch, 3, length), (3, length), (batch, 3, length)],
        seed=5,
    )
    k = k / np.sqrt(ksize)
    plan = pallas_plan(length, ksize, backend=family, **kw)
    mask = None
    if "bandwidth" in kw:
        assert plan.cols is not None and plan.cols < plan.n2  # really frequency-sparse
        mask = jnp.asarray(band_mask(plan), jnp.complex64)

    def pallas(u, k, **gates):
        return fft_conv_pallas(
            u, k, backend=family, interpret=interpret, precision="f32", **kw, **gates
        )

    def xla(u, k, **gates):
        if mask is None:
            return fft_conv(u, k, impl="xla", **gates)
        # the sparse plan's map: the convolution with the band-limited filter
        n, v = plan.fft_size, u * gates["pre_gate"]
        spec = jnp.fft.rfft(v, n) * jnp.fft.rfft(k, n)[None] * mask[None, None]
        return gates["post_gate"][None] * jnp.fft.irfft(spec, n)[..., :length]

    def loss(conv, u, k, pre, post):
        return jnp.sum(w * jnp.tanh(conv(u, k, pre_gate=pre, post_gate=post)))

    def grad_norm(conv, *args):  # a scalar of the first derivatives, nonlinear in them
        grads = jax.grad(loss, argnums=(1, 2, 3, 4))(conv, *args)
        return sum(jnp.sum(jnp.sin(g)) for g in grads)

    args = (u, k, pre, post)
    got = jax.jit(jax.grad(grad_norm, argnums=(1, 2, 3, 4)), static_argnums=0)(pallas, *args)
    # jitted, both: op-by-op dispatch of the second derivatives took seconds
    want = jax.jit(jax.grad(grad_norm, argnums=(1, 2, 3, 4)), static_argnums=0)(xla, *args)
    for name, a, b in zip(["u", "k", "pre_gate", "post_gate"], got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        # float32 rounding of L-point transforms, differentiated twice: 1e-4, not tol(float32)
        assert_close(a, b, rtol=1e-4, what=f"d/d{name} of the gradients")
    k_small = k[:1, :8]  # a Hessian small enough to compare whole

    def loss_k(conv, kk):
        return loss(conv, u, k.at[:1, :8].set(kk), pre, post)

    hessian = jax.jit(jax.hessian(loss_k, argnums=1), static_argnums=0)
    got, want = hessian(pallas, k_small), hessian(xla, k_small)
    assert got.shape == (1, 8, 1, 8)
    assert_close(got, want, rtol=1e-4, what="Hessian in k")


def test_vmap_over_examples_filters_and_gradients_equals_xla():
    """Modules take one example and are vmapped: the kernels (and their custom_vjp/custom_jvp
    wrappers) batch over the input, the filter, a gate and per-example gradients."""
    u, k, g = _arrays([(4, 3, 256), (3, 40), (4, 3, 256)], seed=6)
    k = k / 6

    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, interpret=True, precision="f32", **gates)

    def xla(u, k, **gates):
        return fft_conv(u, k, impl="xla", **gates)

    def per_example_grads(conv):
        def loss(ui, kk, gi):
            return jnp.sum(jnp.sin(conv(ui, kk, post_gate=gi)))

        return jax.vmap(jax.grad(loss, argnums=(0, 1, 2)), in_axes=(0, None, 0))(u, k, g)

    cases = {
        "examples": lambda conv: jax.vmap(lambda ui: conv(ui, k))(u),
        "filters": lambda conv: jax.vmap(lambda kk: conv(u[0], kk))(jnp.stack([k, 2 * k])),
        "gradients": per_example_grads,
    }
    for name, f in cases.items():
        # jitted: eager, the XLA path's ops and the vmapped wrappers compile one by one
        got, want = jax.jit(lambda f=f: (f(pallas), f(xla)))()
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            assert a.shape == b.shape
            assert_close(a, b, jnp.float32, what=f"vmap over {name}")


def test_impl_pallas_through_fft_conv_is_differentiable_in_a_model():
    """jax.grad of a small gated long-conv layer with impl="pallas" (GPU kernel, interpreted
    on CPU) equals impl="xla"; bf16 inputs, so also the half-precision cotangent dtypes."""
    u, k, gate = _arrays([(2, 4, 300), (4, 300), (4, 300)], jnp.bfloat16, seed=4)

    def loss(k, gate, impl):
        y = fft_conv(u, k, impl=impl, post_gate=gate)
        return jnp.mean(jnp.square(y.astype(jnp.float32)))

    grad = jax.grad(loss, argnums=(0, 1))
    # one compiled program for both (eager, the XLA path's ops compile one by one)
    got, want = jax.jit(lambda k, gate: (grad(k, gate, "pallas"), grad(k, gate, "xla")))(k, gate)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == jnp.bfloat16
        assert_close(a.astype(jnp.float32), b.astype(jnp.float32), jnp.bfloat16)


@pytest.mark.parametrize("family, interpret, blocks", FAMILIES)
def test_empty_batch_gives_an_empty_result_and_zero_filter_gradient(family, interpret, blocks):
    """A batch or channel axis of size 0 (an empty shard, a filtered-out batch) gives an
    empty output as under impl="xla"; the filter gradient is zero. The kernels' grid would
    have a zero-sized axis, which the Pallas interpreter cannot trace."""
    (k,) = _arrays([(3, 9)])

    def conv(u, k):
        return fft_conv_pallas(u, k, backend=family, interpret=interpret, block_sizes=blocks)

    for u_shape, k_shape in (((0, 3, 40), (3, 9)), ((2, 0, 40), (0, 9))):
        u = jnp.ones(u_shape, jnp.float32)
        kk = k[: k_shape[0]]
        y = conv(u, kk)
        assert y.shape == u_shape and y.dtype == jnp.float32
        du, dk = jax.grad(lambda u, k: jnp.sum(conv(u, k)), argnums=(0, 1))(u, kk)
        assert du.shape == u_shape and dk.shape == k_shape
        np.testing.assert_array_equal(np.asarray(dk), np.zeros(k_shape, np.float32))


def test_jit_equals_eager():
    u, k = _arrays([(3, 500), (3, 50)], seed=5)
    # exact float32 matmuls: under jit XLA may drop the bf16 round trips of "bf16_3x"
    # (excess precision), so only the f32 mode is comparable to 1e-5 elementwise
    f = jax.jit(lambda u, k: fft_conv_pallas(u, k, precision="f32"))
    np.testing.assert_allclose(
        np.asarray(f(u, k)),
        np.asarray(fft_conv_pallas(u, k, precision="f32")),
        rtol=tol(jnp.float32),
        atol=tol(jnp.float32),
    )


def test_auto_keeps_xla_on_cpu():
    u, k = _arrays([(2, 256), (2, 16)])
    assert not supports(u, k, True)  # CPU backend: no compiled kernel to choose
    np.testing.assert_array_equal(
        np.asarray(fft_conv(u, k)), np.asarray(fft_conv(u, k, impl="xla"))
    )
    assert "interpret" in pallas_status()


def _export_for(family: str, fn, platform: str, checks, *args):
    """``jax.export`` of ``fn`` for ``platform`` from this CPU host. JAX 0.11's Triton lowering
    reads the GPU's generation from a device ("No supported GPU devices found"): without one,
    an abstract H100 says it (JAX 0.10 needs none; the context is harmless there)."""
    from jax import export

    if family != "gpu":
        return export.export(fn, platforms=[platform], disabled_checks=checks)(*args)
    h100 = jax.sharding.AbstractDevice(
        device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="gpu"
    )
    with jax.sharding.use_abstract_mesh(
        jax.sharding.AbstractMesh((1,), ("x",), abstract_device=h100)
    ):
        return export.export(fn, platforms=[platform], disabled_checks=checks)(*args)


@pytest.mark.parametrize(
    "family, platform, marker",
    [("gpu", "cuda", "xla.gpu.triton"), ("tpu", "tpu", "tpu_custom_call")],
)
def test_auto_chooses_the_kernels_by_the_lowering_platform(monkeypatch, family, platform, marker):
    """On a GPU/TPU host impl="auto" chose the kernels by the default backend, so a computation
    lowered for the host CPU (arrays committed to it, jax.default_device) got a compiled Pallas
    call and failed ("Only interpret mode is supported on CPU backend"). The choice is staged
    with lax.platform_dependent: lowered for the CPU it is XLA, the kernels never lowered there;
    lowered for the accelerator it is the kernels. The host is faked by the backend lookup."""
    from jax import export

    from spectrax.kernels.fft_conv import _pallas

    monkeypatch.setattr(_pallas, "_platform", lambda: (family, True))
    u, k, w = _arrays([(2, 40), (2, 9), (2, 40)], seed=21)
    assert all(_unsupported_reason(u, k, True, family) is None for family in ("gpu", "tpu"))

    def loss(impl):
        return lambda u, k: jnp.sum(w * fft_conv(u, k, impl=impl))

    grad = jax.jit(jax.grad(loss("auto"), argnums=(0, 1)))

    @jax.jit
    def xla(u, k):
        return fft_conv(u, k, impl="xla"), jax.grad(loss("xla"), argnums=(0, 1))(u, k)

    # runs here, on the CPU (a compiled Pallas call cannot be lowered for it), as impl="xla";
    # the forward eagerly (lowered for the arrays' device), the gradient under jit
    y, grads = xla(u, k)
    assert_close(fft_conv(u, k), y, rtol=1e-6)
    for got, want in zip(grad(u, k), grads, strict=True):
        assert_close(got, want, rtol=1e-6)
    checks = [
        export.DisabledSafetyCheck.custom_call(t)
        for t in ("__gpu$xla.gpu.triton", "tpu_custom_call")
    ]
    text = _export_for(family, grad, platform, checks, u, k).mlir_module()
    assert marker in text and "stablehlo.fft" not in text


@pytest.mark.usefixtures("library_errors")
def test_unsupported_arguments_raise_under_pallas_and_fall_back_under_auto(x64):
    u64, k64 = _arrays([(2, 64), (2, 8)], jnp.float64)
    with pytest.raises(TypeError, match="float64"):
        fft_conv(u64, k64, impl="pallas")
    u, k = _arrays([(2, 300), (2, 300)])
    with pytest.raises(ValueError, match="L=300"):
        fft_conv(u, k, causal=False, impl="pallas")
    big = jax.ShapeDtypeStruct((1, LONG_MAX_LENGTH + 1), jnp.float32)
    kb = jax.ShapeDtypeStruct((1, 4), jnp.float32)
    with pytest.raises(ValueError, match="not supported"):
        jax.eval_shape(lambda u, k: fft_conv(u, k, impl="pallas"), big, kb)
    filt = fft_conv_filter(k[:, :8], 300)
    with pytest.raises(ValueError, match="SpectralFilter"):
        fft_conv(u, filt, impl="pallas")
    with pytest.raises(ValueError, match="backend"):
        fft_conv_pallas(u, k, backend="metal")
    # "auto" never raises for these: XLA takes them
    assert_close(fft_conv(u64, k64), np_causal(u64, k64), jnp.float64)
    assert fft_conv(u, k, causal=False).shape == (2, 300)


def _pallas_operand_dtypes(jaxpr) -> set:
    """dtypes of every operand of every pallas_call in ``jaxpr`` and its sub-jaxprs."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "pallas_call":
            found |= {jnp.dtype(v.aval.dtype) for v in eqn.invars}
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found |= _pallas_operand_dtypes(sub)
    return found


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float16])
def test_gates_of_other_dtypes_reach_the_kernels_as_float32(x64, dtype):
    """The kernels take float32 and bfloat16 (what `supports` checks for u and k, so what
    impl="auto" relies on); a float64 or float16 gate with float32 u and k was handed to the
    kernel as it was (Mosaic has no float64). It is rounded to float32, as impl="xla" computes
    the gate products, and its gradient comes back in its own dtype."""
    u, k, w = _arrays([(2, 40), (2, 9), (2, 40)], seed=13)
    g = _arrays([(40,)], seed=14)[0].astype(dtype)

    def loss(conv, u, k, g):
        return jnp.sum(w * conv(u, k, pre_gate=g, post_gate=g))

    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, interpret=True, precision="f32", **gates)

    def xla(u, k, **gates):
        return fft_conv(u, k, impl="xla", **gates)

    grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)
    jaxpr = jax.make_jaxpr(grad, static_argnums=0)(pallas, u, k, g).jaxpr
    assert _pallas_operand_dtypes(jaxpr) == {jnp.dtype(jnp.float32)}
    got, want = grad(pallas, u, k, g), grad(xla, u, k, g)
    assert got[2].dtype == dtype
    for name, a, b in zip(["u", "k", "gate"], got, want, strict=True):
        assert_close(a, b, rtol=max(tol(a.dtype), tol(jnp.float32)), what=name)


@pytest.mark.usefixtures("library_errors")
def test_numpy_float64_without_x64_is_float32_for_the_kernels():
    """Without jax_enable_x64 a NumPy float64 array is float32 in JAX: impl='pallas' refused it
    ("`u` has dtype float64") and supports() said no, so impl='auto' would take XLA for it."""
    assert not jax.config.jax_enable_x64
    rng = np.random.default_rng(0)
    u, k = rng.standard_normal((2, 64)), rng.standard_normal((2, 64))
    assert all(_unsupported_reason(u, k, True, family) is None for family in ("gpu", "tpu"))
    y = fft_conv_pallas(u, k, interpret=True)
    assert y.dtype == jnp.float32
    assert_close(y, fft_conv_reference(u, k), rtol=1e-4)


@pytest.mark.usefixtures("library_errors")
def test_fft_conv_pallas_validates_its_arguments():
    """Called directly (not through fft_conv), bad shapes and options raise named errors."""
    u, k = _arrays([(2, 16), (2, 16)])
    with pytest.raises(ValueError, match=r"K=17 > L=16"):
        fft_conv_pallas(u, jnp.ones((17,), jnp.float32), interpret=True)
    with pytest.raises(ValueError, match=r"causal=False.*K=8, L=16"):
        fft_conv_pallas(u, k[:, :8], causal=False, interpret=True)
    with pytest.raises(ValueError, match=r"leading dimensions of `u` \(2,\) and `k` \(3,\)"):
        fft_conv_pallas(u, jnp.ones((3, 4), jnp.float32), interpret=True)
    with pytest.raises(ValueError, match=r"`post_gate` \(3,\) do not broadcast"):
        fft_conv_pallas(u, k, post_gate=jnp.ones((3, 16), jnp.float32), interpret=True)
    # each gate broadcasts with the output (), not with the other: failed in jnp.broadcast_shapes
    with pytest.raises(ValueError, match=r"`post_gate` \(2, 3\).*and with `pre_gate` \(3, 1\)"):
        fft_conv_pallas(
            u[0],
            k[0],
            pre_gate=jnp.ones((3, 1, 16), jnp.float32),
            post_gate=jnp.ones((2, 3, 16), jnp.float32),
            interpret=True,
        )
    with pytest.raises(TypeError, match=r"`block_sizes` for backend='tpu' must be a TpuBlockSizes"):
        fft_conv_pallas(u, k, backend="tpu", interpret=True, block_sizes=GpuBlockSizes())
    with pytest.raises(ValueError, match=r"`block_rows` must be an integer >= 1; got 0"):
        TpuBlockSizes(block_rows=0)
    with pytest.raises(ValueError, match=r"`num_warps` must be a power of two.*got 3"):
        GpuBlockSizes(num_warps=3)


@pytest.mark.usefixtures("library_errors")
@pytest.mark.parametrize("family, interpret", [("gpu", True), ("tpu", pltpu.InterpretParams())])
def test_kernel_wrappers_check_operands_against_the_plan(family, interpret):
    """The kernel calls refuse operands that do not fit their plan. Pallas itself did not: a
    spectrum with fewer rows than the tiles ran, every row with the first row's filter (block
    reads clamped in interpret mode; out of bounds on hardware), and tiles of another plan
    were read in part."""
    mod = {"gpu": fft_conv_gpu, "tpu": fft_conv_tpu}[family]
    conv, xcorr, cconv = (getattr(mod, f"{op}_{family}") for op in ("conv", "xcorr", "cconv"))
    planner = getattr(mod, f"{family}_plan")
    plan = planner(100, causal=True)
    x = to_tiles(jax.random.normal(jax.random.key(0), (1, 3, 100)), plan)
    kr, ki = filter_spectrum(jax.random.normal(jax.random.key(1), (3, 10)), plan)
    run = {"interpret": interpret}
    with pytest.raises(ValueError, match=r"`kr` must be the filter spectrum \(3, "):
        conv(x, kr[:1], ki[:1], plan, **run)
    other = planner(3000, causal=True)
    with pytest.raises(ValueError, match=r"`x` must be row tiles .*got x.shape=\(1, 3, "):
        conv(x, kr, ki, other, **run)
    with pytest.raises(ValueError, match=r"`post` must have shape \(1, 3, "):
        conv(x, kr, ki, plan, post=x[:, :2], **run)
    with pytest.raises(ValueError, match=r"`b` must have shape"):
        xcorr(x, x[:1, :1], plan, plan.m_out, **run)
    with pytest.raises(ValueError, match=r"`out_rows` must be an integer in \[1, m_out="):
        xcorr(x, x, plan, plan.m_out + 1, **run)
    with pytest.raises(ValueError, match=r"`plan` .* must be circular"):
        cconv(x, x, kr, ki, plan, **run)
    circ = planner(512, causal=False)
    xc = jnp.zeros((1, 3, circ.n1, circ.n2))
    kc = jnp.zeros((1, circ.n1, circ.n2))
    with pytest.raises(ValueError, match=r"`kr` must be the filter spectrum \(3, "):
        cconv(xc, xc, kc, kc, circ, **run)


def _bench_script():
    path = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_fft_conv.py"
    spec = importlib.util.spec_from_file_location("bench_fft_conv", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_script_runs_on_cpu(tmp_path):
    bench = _bench_script()
    out = tmp_path / "fft_conv-cpu.json"
    argv = ["--lengths", "256", str(2 * LONG_MAX_LENGTH), "--total", "512", "--repeats", "1"]
    assert bench.main([*argv, "--dtypes", "float32", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and "unmeasured" in data["notes"]
    (row,) = data["rows"]
    assert row["L"] == 256 and row["B"] * row["H"] * row["L"] >= 512
    assert row["pallas_path"] == "two_level" and row["pallas_precision"] == "bf16_3x"
    assert row["pallas_max_rel_err"] <= 1e-4  # the bound for the float32 mode
    assert row["xla_max_rel_err"] <= tol(jnp.float32)
    assert data["skipped"][0]["L"] == 2 * LONG_MAX_LENGTH


def test_benchmark_peak_memory_is_that_of_the_function(monkeypatch):
    """The peak-memory column read ``memory_stats()["peak_bytes_in_use"]`` where the device has
    it (GPU, TPU): the process's peak since start, which never resets, so each row got the
    largest figure of the rows before it (the Pallas column was never below the XLA one
    measured just before). It is XLA's compiled figure of the function alone."""
    bench = _bench_script()
    devices = jax.devices

    class RaisedPeak:  # a device whose process peak an earlier, larger program set
        device_kind = "test"

        def memory_stats(self):
            return {"peak_bytes_in_use": 1 << 40, "bytes_in_use": 0}

    monkeypatch.setattr(jax, "devices", lambda *a, **kw: devices(*a, **kw) if a else [RaisedPeak()])
    x = jnp.ones((1000,), jnp.float32)
    peak = bench._peak_memory(jax.jit(lambda x: 2 * x).lower(x).compile())
    assert 8000 <= peak < 1 << 20  # argument and output, 4000 bytes each


def test_benchmark_keeps_the_rows_it_finished(tmp_path, monkeypatch):
    """The JSON was written once, after the last row: a run stopped by gpu_session.sh's time
    limit (or an error in a later row) lost every row it had measured. It is rewritten after
    each row."""
    bench = _bench_script()
    done = []

    def bench_length(length, *args, **kwargs):
        if done:
            raise RuntimeError("stopped")  # the time limit, in the second row
        done.append({"L": length})
        return done[-1]

    monkeypatch.setattr(bench, "bench_length", bench_length)
    out = tmp_path / "fft_conv-cpu.json"
    argv = ["--lengths", "256", "512", "--total", "512", "--repeats", "1", "--dtypes", "float32"]
    with pytest.raises(RuntimeError, match="stopped"):
        bench.main([*argv, "--out", str(out)])
    assert json.loads(out.read_text())["rows"] == [{"L": 256}]


# every path and precision: two-level bf16, chunked short filter (bf16_3x), frequency-sparse,
# long three-level, exact float32; with both gates
LOWERING = {
    "bf16": ((2, 8, 1000), (8, 1000), jnp.bfloat16, {}),
    "chunked": ((2, 8, 8192), (8, 64), jnp.float32, {}),
    "sparse": ((2, 8, 65536), (8, 65536), jnp.bfloat16, {"bandwidth": 0.25}),
    "long": ((1, 2, 70000), (2, 70000), jnp.bfloat16, {}),
    "f32": ((2, 8, 1000), (8, 1000), jnp.float32, {"precision": "f32"}),
}


@pytest.mark.parametrize("family, platform", [("gpu", "cuda"), ("tpu", "tpu")])
@pytest.mark.parametrize("config", list(LOWERING))
def test_kernels_lower_for_their_hardware(family, platform, config):
    """Forward and backward lower through Pallas to Triton (CUDA) and Mosaic (TPU) without
    the device (cross-platform export); compiling the lowered kernels needs the hardware."""
    from jax import export

    u_shape, k_shape, dtype, kw = LOWERING[config]
    if config == "sparse" and family == "gpu":  # a two-level GPU plan holds L <= 4096
        u_shape, k_shape = (2, 8, 4096), (8, 4096)
    u = jax.ShapeDtypeStruct(u_shape, dtype)
    k = jax.ShapeDtypeStruct(k_shape, dtype)

    def grads(u, k):
        def loss(u, k):
            y = fft_conv_pallas(
                u, k, pre_gate=u, post_gate=u, backend=family, interpret=False, **kw
            )
            return jnp.sum(y.astype(jnp.float32))

        return jax.grad(loss, argnums=(0, 1))(u, k)

    checks = [
        export.DisabledSafetyCheck.custom_call(t)
        for t in ("__gpu$xla.gpu.triton", "tpu_custom_call")
    ]
    text = _export_for(family, jax.jit(grads), platform, checks, u, k).mlir_module()
    assert ("xla.gpu.triton" if family == "gpu" else "tpu_custom_call") in text


def test_impl_pallas_on_a_cpu_warns_that_it_runs_the_emulator():
    """``impl="pallas"`` where no kernel compiles (this CPU) ran the Pallas interpreter, about
    6x slower than ``impl="xla"``, without a word: a UserWarning now says so and what to use;
    ``interpret=True`` (asked for) is silent."""
    import warnings

    u, k = _arrays([(1, 2, 64), (2, 64)])
    with pytest.warns(UserWarning, match=r"runs in interpret mode .* use impl='auto'"):
        fft_conv(u, k, impl="pallas")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fft_conv_pallas(u, k, interpret=True)
