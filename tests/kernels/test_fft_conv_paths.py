"""The Pallas paths beyond one two-level plan, in interpret mode on CPU: matmul precisions,
short filters (overlap-save chunks), frequency-sparse filters and long sequences (the
three-level plan), forward and gradients, GPU and TPU kernel families."""

import re

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu

from spectrax.kernels.fft_conv import fft_conv
from spectrax.kernels.fft_conv._pallas import MIN_CHUNK, fft_conv_pallas, pallas_plan
from spectrax.kernels.fft_conv.gpu import GPU_MAX_FFT, gpu_plan
from spectrax.kernels.fft_conv.monarch import (
    MAX_LENGTH,
    PRECISIONS,
    MonarchPlan,
    band_mask,
    plan_monarch,
)
from spectrax.kernels.fft_conv.outer import (
    INNER_SIZE,
    LONG_MAX_LENGTH,
    OuterPlan,
    outer_conv_reference,
    outer_forward,
    outer_inverse,
    plan_outer,
)
from spectrax.kernels.fft_conv.tpu import TpuBlockSizes, tpu_plan
from tests.helpers import assert_close, rel_err, tol

FAMILIES = [
    pytest.param("gpu", True, id="gpu"),
    pytest.param("tpu", pltpu.InterpretParams(), id="tpu"),
]
# Norm-wise relative error bounds against float64 per matmul precision (the issue: <= 1e-4
# for the float32 mode, <= 1e-2 for bf16).
PRECISION_BOUND = {"f32": tol(jnp.float32), "bf16_3x": 1e-4, "bf16": 1e-2}


def _arrays(shapes, seed=0, scale_last=False):
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    out = []
    for key, shape in zip(keys, shapes, strict=True):
        x = jax.random.normal(key, shape, jnp.float32)
        out.append(x / np.sqrt(shape[-1]) if scale_last else x)
    return out


def np_filtered_conv(u, k, n, mask=1.0):
    """float64 ``irfft(rfft(u, n) rfft(k, n) mask, n)[:L]`` (causal when ``n >= 2L``)."""
    u64, k64 = np.asarray(u, np.float64), np.asarray(k, np.float64)
    y = np.fft.irfft(np.fft.rfft(u64, n) * np.fft.rfft(k64, n) * mask, n)
    return y[..., : u.shape[-1]]


def _grads_equal(pallas, reference, shapes, *, bound, seed=7):
    """d/d(u, k, pre, post) of a loss through both convolutions agree within ``bound``."""
    u, k, pre, post, w = _arrays(shapes, seed=seed)
    k = k / np.sqrt(k.shape[-1])

    def loss(conv, u, k, pre, post):
        y = conv(u, k, pre_gate=pre, post_gate=post)
        return jnp.sum(w * y) + 0.5 * jnp.sum(jnp.square(y))

    grad = jax.grad(loss, argnums=(1, 2, 3, 4))
    # one compiled program for both gradients (eager, the reference's ops compile one by one)
    got, want = jax.jit(lambda *a: (grad(pallas, *a), grad(reference, *a)))(u, k, pre, post)
    for name, a, b in zip(["u", "k", "pre_gate", "post_gate"], got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert_close(a, b, rtol=bound, what=f"d{name}")


def _xla(u, k, **gates):
    return fft_conv(u, k, impl="xla", **gates)


# ---- precisions --------------------------------------------------------------------------


@pytest.mark.parametrize("family, interpret", FAMILIES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_matmul_precisions_meet_their_bounds(family, interpret, precision):
    u, k = _arrays([(2, 3, 1000), (3, 1000)], seed=1, scale_last=True)
    y = fft_conv_pallas(u, k, backend=family, interpret=interpret, precision=precision)
    err = rel_err(y, np_filtered_conv(u, k, 2000))
    assert err <= PRECISION_BOUND[precision], f"{precision}: {err:.2e}"
    if precision != "f32":  # a reduced-precision mode really rounds (not silently exact)
        assert err > 10 * rel_err(_xla(u, k), np_filtered_conv(u, k, 2000))


def test_default_precision_follows_the_input_dtype():
    u, k = _arrays([(2, 1000), (2, 100)], seed=2)
    y32 = fft_conv_pallas(u, k, interpret=True)
    y3x = fft_conv_pallas(u, k, interpret=True, precision="bf16_3x")
    np.testing.assert_array_equal(np.asarray(y32), np.asarray(y3x))
    ub, kb = u.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    yb = fft_conv_pallas(ub, kb, interpret=True)
    np.testing.assert_array_equal(
        np.asarray(yb, np.float32),
        np.asarray(fft_conv_pallas(ub, kb, interpret=True, precision="bf16"), np.float32),
    )


@pytest.mark.usefixtures("library_errors")
def test_bad_precision_raises():
    u, k = _arrays([(2, 256), (2, 16)])
    with pytest.raises(ValueError, match="`precision`.*'tf64'"):
        fft_conv_pallas(u, k, interpret=True, precision="tf64")


# ---- short filters: overlap-save chunks --------------------------------------------------


def test_short_filters_take_the_chunked_path():
    assert pallas_plan(1 << 14, 100).fft_size == 2 * MIN_CHUNK  # auto: C = 1024
    assert pallas_plan(1 << 14, 3000).fft_size == 2 * 4096  # C = next power of two >= K
    assert pallas_plan(1 << 14, 5000).fft_size == 2 * (1 << 14)  # 4C > L: one plan
    assert pallas_plan(1 << 14, 100, chunk=0).fft_size == 2 * (1 << 14)  # disabled
    assert pallas_plan(1 << 14, 100, chunk=2048).fft_size == 4096  # chosen


@pytest.mark.parametrize("family, interpret", FAMILIES)
@pytest.mark.parametrize(
    "length, ksize, chunk",
    [
        (5000, 100, None),  # auto chunk 1024; L not a multiple of it
        (4096, 1024, 1024),  # K == chunk: the longest filter a chunk takes
        (3000, 17, 1024),  # fewer than four chunks, forced
    ],
)
def test_chunked_forward_equals_float64(family, interpret, length, ksize, chunk):
    u, k = _arrays([(2, 3, length), (3, ksize)], seed=3, scale_last=True)
    y = fft_conv_pallas(u, k, backend=family, interpret=interpret, precision="f32", chunk=chunk)
    assert y.shape == u.shape
    assert_close(y, np_filtered_conv(u, k, 2 * length), jnp.float32)


@pytest.mark.parametrize("family, interpret", FAMILIES)
def test_chunked_gradients_with_gates_equal_xla(family, interpret):
    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, backend=family, interpret=interpret, precision="f32", **gates)

    shapes = [(2, 3, 4500), (3, 200), (2, 3, 4500), (3, 4500), (2, 3, 4500)]
    _grads_equal(pallas, _xla, shapes, bound=tol(jnp.float32))


@pytest.mark.usefixtures("library_errors")
def test_bad_chunks_raise():
    u, k = _arrays([(2, 4096), (2, 100)])
    for chunk in (64, 1000, 4096):  # < K, not a power of two, not < L
        with pytest.raises(ValueError, match=f"`chunk` must be a power of two.*got {chunk}"):
            fft_conv_pallas(u, k, interpret=True, chunk=chunk)
    with pytest.raises(ValueError, match="causal"):
        fft_conv_pallas(u, u, causal=False, interpret=True, chunk=1024)
    for chunk in (True, False, 1024.0, "1024"):  # chunk=False once meant "never"
        with pytest.raises(
            ValueError, match=r"`chunk` must be None \(auto\), 0 \(never\) or an int"
        ):
            pallas_plan(4096, 100, chunk=chunk)


def test_numpy_scalars_for_chunk_and_bandwidth():
    """A NumPy integer chunk and a NumPy float bandwidth give the plans of their Python values."""
    assert pallas_plan(4096, 100, chunk=np.int64(1024)) == pallas_plan(4096, 100, chunk=1024)
    assert pallas_plan(4096, 64, bandwidth=np.float32(0.5)) == pallas_plan(4096, 64, bandwidth=0.5)
    assert pallas_plan(4096, 64, bandwidth=np.int64(1)) == pallas_plan(4096, 64, bandwidth=1.0)


@pytest.mark.usefixtures("library_errors")
def test_pallas_plan_names_bad_arguments():
    with pytest.raises(ValueError, match=r"`backend` must be one of \['gpu', 'tpu'\]; got 'cuda'"):
        pallas_plan(4096, 64, backend="cuda")
    with pytest.raises(ValueError, match=r"`k` is longer than `length`: K=65 > L=64"):
        pallas_plan(64, 65)
    with pytest.raises(ValueError, match=r"causal=False.*K=8, L=64"):
        pallas_plan(64, 8, causal=False)
    with pytest.raises(ValueError, match=r"`length` must be an integer >= 1; got 64.0"):
        pallas_plan(64.0, 8)


# ---- frequency-sparse filters ------------------------------------------------------------


def test_band_mask_is_the_kept_low_band():
    plan = plan_monarch(4096, causal=True)  # N = 8192, (N1, N2) = (64, 128)
    assert np.all(band_mask(plan) == 1.0)
    sparse = plan.with_bandwidth(0.2, multiple=8)
    assert sparse.cols == 32 and list(sparse.kept_columns()[[0, 15, 16, 31]]) == [0, 15, 112, 127]
    mask = band_mask(sparse)
    f = sparse.n1 * 16  # 16 columns each side: |f| < 1024 of the 8192-point grid
    assert np.all(mask[:f] == 1.0) and mask[f] == 0.5 and np.all(mask[f + 1 :] == 0.0)
    assert plan.with_bandwidth(1.0, multiple=8).cols is None  # the whole band: dense
    # TPU: whole 128-lane blocks; at N2 = 128 nothing can be skipped
    assert pallas_plan(4096, 4096, backend="tpu", bandwidth=0.2).cols is None
    assert pallas_plan(MAX_LENGTH, 8, backend="tpu", bandwidth=0.2).cols == 128


@pytest.mark.parametrize("family, interpret", FAMILIES)
def test_frequency_sparse_forward_equals_the_band_limited_float64(family, interpret):
    length = 4096 if family == "gpu" else 32768  # a TPU plan skips whole 128-lane blocks
    plan = pallas_plan(length, length, backend=family, bandwidth=0.2)
    assert isinstance(plan, MonarchPlan) and plan.cols is not None and plan.cols < plan.n2
    u, k = _arrays([(2, length), (2, length)], seed=4, scale_last=True)
    y = fft_conv_pallas(u, k, backend=family, interpret=interpret, precision="f32", bandwidth=0.2)
    want = np_filtered_conv(u, k, plan.fft_size, band_mask(plan))
    assert_close(y, want, jnp.float32)
    # the mask really removes spectrum: the dense convolution differs
    assert rel_err(y, np_filtered_conv(u, k, 2 * length)) > 0.1
    # bandwidth=1: the whole band, the dense convolution
    y1 = fft_conv_pallas(u, k, backend=family, interpret=interpret, precision="f32", bandwidth=1)
    assert_close(y1, np_filtered_conv(u, k, 2 * length), jnp.float32)


def test_frequency_sparse_gradients_equal_the_masked_xla_convolution():
    length, bandwidth = 2048, 0.3
    plan = pallas_plan(length, length, bandwidth=bandwidth)
    n, mask = plan.fft_size, jnp.asarray(band_mask(plan), jnp.float32)

    def reference(u, k, pre_gate, post_gate):
        spec = (
            jnp.fft.rfft(u * pre_gate, n)
            * jnp.fft.rfft(k[None], n)
            * mask[None, None].astype(jnp.complex64)
        )
        return post_gate[None] * jnp.fft.irfft(spec, n)[..., :length]

    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, interpret=True, precision="f32", bandwidth=bandwidth, **gates)

    shapes = [(2, 3, length), (3, length), (2, 3, length), (3, length), (2, 3, length)]
    _grads_equal(pallas, reference, shapes, bound=tol(jnp.float32))


@pytest.mark.usefixtures("library_errors")
def test_bad_bandwidths_raise():
    u, k = _arrays([(2, 4096), (2, 64)])
    for bad in (0, 1.5, "low", True, float("nan")):
        with pytest.raises(ValueError, match="`bandwidth`"):
            fft_conv_pallas(u, k, interpret=True, bandwidth=bad)
    with pytest.raises(ValueError, match="`chunk`"):
        fft_conv_pallas(u, k, interpret=True, bandwidth=0.5, chunk=1024)
    long = jax.ShapeDtypeStruct((1, MAX_LENGTH + 1), jnp.float32)
    with pytest.raises(ValueError, match=f"L={MAX_LENGTH + 1}"):
        jax.eval_shape(lambda u: fft_conv_pallas(u, u, interpret=True, bandwidth=0.5), long)


# ---- long sequences: the three-level plan ------------------------------------------------


@pytest.mark.parametrize(
    "length, ksize, causal, inner",
    [(3000, 3000, True, 1024), (3000, 17, True, 256), (4096, 4096, False, 1024)],
)
def test_three_level_reference_equals_float64(length, ksize, causal, inner):
    """The outer step with small inner sizes (P = 8, 32, 4): the algorithm, in plain jnp."""
    plan = plan_outer(length, causal=causal, inner_plan=gpu_plan, inner_size=inner)
    u, k = _arrays([(2, length), (2, ksize)], seed=5, scale_last=True)
    # jitted: eager, the reference's many small jnp ops are dispatched (and checked) one by one
    y = jax.jit(outer_conv_reference, static_argnums=2)(u, k, plan)
    n = plan.fft_size if not causal else 2 * length
    if causal:
        want = np_filtered_conv(u, k, n)
    else:
        want = np.real(
            np.fft.ifft(
                np.fft.fft(np.asarray(u, np.float64)) * np.fft.fft(np.asarray(k, np.float64), n)
            )
        )
    assert_close(y, want, jnp.float32)


def test_long_plans_cover_one_million_and_beyond():
    # GPU programs hold at most GPU_MAX_FFT points, TPU programs 2^16 (INNER_SIZE)
    for planner, inner in ((gpu_plan, GPU_MAX_FFT), (tpu_plan, INNER_SIZE)):
        assert planner(inner, causal=False) is not None
        assert planner(2 * inner, causal=False) is None
        for length in (MAX_LENGTH + 1, 1 << 20, LONG_MAX_LENGTH):
            plan = plan_outer(length, causal=True, inner_plan=planner, inner_size=inner)
            assert isinstance(plan, OuterPlan) and plan.m == inner
            assert plan.fft_size >= 2 * length and plan.rows_in * plan.m >= length
            assert plan.fft_size < 4 * length + 2 * inner  # P: the smallest power of two
    assert plan_outer(LONG_MAX_LENGTH + 1, causal=True, inner_plan=tpu_plan) is None
    assert isinstance(pallas_plan(1 << 20, 1 << 20), OuterPlan)
    assert isinstance(pallas_plan(8192, 8192, backend="gpu"), OuterPlan)
    assert isinstance(pallas_plan(8192, 8192, backend="tpu"), MonarchPlan)
    assert pallas_plan(1 << 20, 64).fft_size == 2 * MIN_CHUNK  # a short filter still chunks


def _largest_constant_bytes(hlo: str) -> int:
    """Bytes of the largest ``stablehlo.constant`` in a lowered program's text."""
    pattern = r"stablehlo\.constant dense<[^>]*>\s*:\s*tensor<((?:\d+x)*)[a-z]+(\d+)>"
    sizes = [0]
    for dims, bits in re.findall(pattern, hlo):
        count = int(np.prod([int(d) for d in dims.split("x") if d]))
        sizes.append(count * max(1, int(bits) // 8))
    return max(sizes)


@pytest.mark.parametrize("family", ["gpu", "tpu"])
def test_outer_step_embeds_no_twiddle_table(family):
    """The outer factors are built in the program: a NumPy table of (P/2+1) x M twiddles was
    a 17 MB constant (each of real and imaginary part) at L = 2^22 on both plans."""
    plan = pallas_plan(LONG_MAX_LENGTH, LONG_MAX_LENGTH, backend=family)
    u = jax.ShapeDtypeStruct((1, LONG_MAX_LENGTH), jnp.float32)
    hlo = jax.jit(lambda u: outer_inverse(*outer_forward(u, plan), plan)).lower(u).as_text()
    assert "stablehlo.constant" in hlo  # (the pattern below reads this program's constants)
    assert _largest_constant_bytes(hlo) <= 1024


@pytest.mark.parametrize("family, interpret", FAMILIES)
def test_long_forward_and_gradients_equal_xla(family, interpret):
    """L = 70000 > MAX_LENGTH: P = 4 outer rows around 2^16-point complex-row kernels (TPU),
    P = 32 around 8192-point ones (GPU)."""
    length = 70000

    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, backend=family, interpret=interpret, precision="f32", **gates)

    u, k = _arrays([(1, 2, length), (2, length)], seed=6, scale_last=True)
    assert_close(pallas(u, k), np_filtered_conv(u, k, 2 * length), jnp.float32)
    shapes = [(1, 2, length), (2, length), (1, 2, length), (2, length), (1, 2, length)]
    _grads_equal(pallas, _xla, shapes, bound=tol(jnp.float32))


def _pallas_outputs(fn, *args) -> list[list[tuple[int, ...]]]:
    """Output shapes of each ``pallas_call`` in the jaxpr of ``fn(*args)``, one list a call."""

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "pallas_call":
                yield [tuple(v.aval.shape) for v in eqn.outvars]
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                yield from walk(sub)

    return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


def test_long_filter_gradient_sums_over_the_batch_before_inverting():
    """A filter shared by Bo = 2 batch rows (L = 8193 > GPU_MAX_FFT: P = 4 around 8192-point
    kernels): its gradient equals XLA's and is summed over the batch in the frequency domain,
    one inverse per filter row, so the backward runs one kernel (du) besides the forward's."""
    length = GPU_MAX_FFT + 1

    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, interpret=True, precision="f32", chunk=0, **gates)

    u, k, w = _arrays([(2, 1, length), (1, length), (2, 1, length)], seed=3, scale_last=True)

    def grad_k(conv):
        return jax.grad(lambda k: jnp.sum(w * conv(u, k)))

    got, want = jax.jit(lambda k: (grad_k(pallas)(k), grad_k(_xla)(k)))(k)
    assert_close(got, want, jnp.float32, what="dk")
    # before: 3 (dk ran the kernel on every batch row, then summed)
    assert len(_pallas_outputs(grad_k(pallas), k)) == 2


def test_tpu_filter_gradient_sums_over_the_batch_on_chip():
    """Two-level TPU plan, a filter shared by Bo = 2 rows, 3 channel rows in blocks of 2 (one
    padded): dk equals XLA's, and the correlation kernel accumulates over the batch and writes
    one (R, rows, N2) tile instead of (Bo, R, rows, N2)."""
    u, k, w = _arrays([(2, 3, 1000), (3, 1000), (2, 3, 1000)], seed=4, scale_last=True)

    def pallas(u, k):
        blocks = TpuBlockSizes(block_rows=2)
        run = dict(interpret=pltpu.InterpretParams(), precision="f32", block_sizes=blocks)
        return fft_conv_pallas(u, k, backend="tpu", **run)

    def grad_k(conv):
        return jax.grad(lambda k: jnp.sum(w * conv(u, k)))

    got, want = jax.jit(lambda k: (grad_k(pallas)(k), grad_k(_xla)(k)))(k)
    assert_close(got, want, jnp.float32, what="dk")
    calls = _pallas_outputs(grad_k(pallas), k)
    # forward and du: (Bo, R, m_out, N2); dk: (R, rows, N2) (before: (Bo, R, rows, N2))
    assert sorted(len(out[0]) for out in calls) == [3, 4, 4], calls


def test_long_bfloat16_through_fft_conv():
    length = MAX_LENGTH + 1000
    u, k = _arrays([(1, length), (1, 500)], seed=8, scale_last=True)
    ub, kb = u.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    y = fft_conv_pallas(ub, kb, interpret=True, chunk=0)  # the long path, not chunks
    assert y.dtype == jnp.bfloat16
    assert_close(y, np_filtered_conv(ub, kb, 2 * length), jnp.bfloat16)


def test_one_million_forward_and_gradients_equal_xla():
    length = 1 << 20  # P = 32 outer rows

    def pallas(u, k, **gates):
        return fft_conv_pallas(u, k, interpret=True, precision="f32", **gates)

    shapes = [(1, 1, length), (1, length), (1, 1, length), (1, length), (1, 1, length)]
    _grads_equal(pallas, _xla, shapes, bound=tol(jnp.float32))


@pytest.fixture(scope="module")
def longest():
    """u, k of the longest supported length and their float64 convolution (2^23-point FFTs),
    computed once for both kernel families."""
    u, k = _arrays([(1, LONG_MAX_LENGTH), (1, LONG_MAX_LENGTH)], seed=9, scale_last=True)
    return u, k, np_filtered_conv(u, k, 2 * LONG_MAX_LENGTH)


@pytest.mark.parametrize("family, interpret", FAMILIES)
def test_the_longest_supported_length_equals_float64(family, interpret, longest):
    u, k, want = longest
    y = fft_conv_pallas(u, k, backend=family, interpret=interpret, precision="f32")
    assert_close(y, want, jnp.float32)
