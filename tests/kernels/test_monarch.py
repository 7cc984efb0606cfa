"""DFT-as-matmul (Monarch / four-step) factors: exact DFTs, round trips, convolutions vs float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.kernels.fft_conv.gpu import GPU_MAX_FFT, gpu_plan
from spectrax.kernels.fft_conv.monarch import (
    MAX_LENGTH,
    monarch_conv,
    monarch_factors,
    monarch_forward,
    monarch_inverse_real,
    monarch_xcorr_tile,
    plan_monarch,
    to_tiles,
    unit_roots,
)
from spectrax.kernels.fft_conv.tpu import tpu_plan
from tests.helpers import assert_close


def np_conv(u, k, causal):
    """float64 NumPy linear (truncated) or circular convolution, row by row."""
    u, k = np.asarray(u, np.float64), np.asarray(k, np.float64)
    n = u.shape[-1]
    if causal:
        return np.stack([np.convolve(a, b)[:n] for a, b in zip(u, k, strict=True)])
    return np.real(np.fft.ifft(np.fft.fft(u) * np.fft.fft(k, n=n)))


@pytest.mark.parametrize("length", [1, 7, 256, 1000, 4096])
def test_forward_is_the_dft_in_kernel_order(length):
    plan = plan_monarch(length, causal=True)
    x = np.random.default_rng(0).standard_normal((2, length))
    cr, ci = monarch_forward(to_tiles(jnp.asarray(x, jnp.float32), plan), monarch_factors(plan))
    # C[k1, k2] = X[k1 + N1 k2]: the natural-order spectrum read as (N2, N1), transposed
    expected = np.fft.fft(x, n=plan.fft_size).reshape(2, plan.n2, plan.n1).transpose(0, 2, 1)
    assert_close(np.asarray(cr) + 1j * np.asarray(ci), expected, jnp.complex64)


@pytest.mark.parametrize("length, causal", [(1000, True), (1024, False), (384, False)])
def test_inverse_round_trip(length, causal):
    plan = plan_monarch(length, causal=causal)
    x = jax.random.normal(jax.random.key(1), (3, plan.m_in, plan.n2))
    fac = monarch_factors(plan)
    back = monarch_inverse_real(*monarch_forward(x, fac), fac)
    assert_close(back, x[:, : plan.m_out], jnp.float32)


@pytest.mark.parametrize(
    "length, ksize, causal",
    [
        (1, 1, True),
        (97, 5, True),
        (256, 256, True),
        (1000, 37, True),
        (4096, 4096, True),
        (1024, 1024, False),
        (384, 384, False),
    ],
)
def test_monarch_conv_equals_float64_convolution(length, ksize, causal):
    rng = np.random.default_rng(2)
    u = rng.standard_normal((2, length))
    k = rng.standard_normal((2, ksize))
    y = monarch_conv(jnp.asarray(u, jnp.float32), jnp.asarray(k, jnp.float32), causal=causal)
    assert_close(y, np_conv(u, k, causal), jnp.float32)


@pytest.mark.usefixtures("library_errors")
def test_monarch_conv_refuses_arguments_of_another_convolution():
    """A given plan was used whatever ``causal`` said (a circular plan under causal=True gave
    the circular convolution, silently), and a filter longer than ``u`` was convolved."""
    u = jnp.ones((1, 128))
    with pytest.raises(ValueError, match=r"`plan` must be a causal plan .*causal=True; got"):
        monarch_conv(u, u, causal=True, plan=plan_monarch(128, causal=False))
    with pytest.raises(ValueError, match=r"`plan` must be a circular plan of size L"):
        monarch_conv(u, u, causal=False, plan=plan_monarch(128, causal=True))
    with pytest.raises(ValueError, match=r"`plan` must be a causal plan .*L=2000"):
        monarch_conv(jnp.ones((1, 2000)), u, plan=plan_monarch(128, causal=True))
    with pytest.raises(ValueError, match=r"`k` must have 1 <= K <= L=100 .*\(1, 128\)"):
        monarch_conv(u[:, :100], u)
    with pytest.raises(ValueError, match=r"`u` has length L=100, which has no two-level"):
        monarch_conv(u[:, :100], u[:, :100], causal=False)


def test_xcorr_tile_is_the_filter_gradient_correlation():
    length, ksize = 300, 20
    plan = plan_monarch(length, causal=True)
    rng = np.random.default_rng(3)
    g, v = rng.standard_normal(length), rng.standard_normal(length)
    c = monarch_xcorr_tile(
        to_tiles(jnp.asarray(g, jnp.float32), plan),
        to_tiles(jnp.asarray(v, jnp.float32), plan),
        monarch_factors(plan),
    )
    expected = [np.dot(g[s:], v[: length - s]) for s in range(ksize)]
    assert_close(np.asarray(c).ravel()[:ksize], np.asarray(expected), jnp.float32)


@pytest.mark.parametrize("length", [1, 255, 256, 1000, 4097, 65536])
def test_plans_cover_the_linear_convolution(length):
    g, t = gpu_plan(length, causal=True), tpu_plan(length, causal=True)
    for plan in (plan_monarch(length, causal=True), g, t):
        if plan is None:  # one GPU program holds at most GPU_MAX_FFT points
            assert plan is g and 2 * length > GPU_MAX_FFT
            continue
        assert plan.padded_length >= length
        assert plan.fft_size >= 2 * length - 1  # no wrap-around for any K <= L
        assert plan.n1 == 2 * plan.m_in and plan.m_out == plan.m_in
    if g is not None:
        assert all(d >= 16 and d & (d - 1) == 0 for d in (g.m_in, g.n2))
        assert g.fft_size <= GPU_MAX_FFT
    assert t.n2 % 128 == 0 and t.m_in % 8 == 0


def test_plan_limits():
    assert plan_monarch(MAX_LENGTH + 1, causal=True) is None
    assert plan_monarch(300, causal=False) is None  # circular needs L = N1 * N2 exactly
    assert plan_monarch(384, causal=False).fft_size == 384
    assert gpu_plan(384, causal=False) is None  # Triton tiles are powers of two


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", [16, 64, 128, 256, 1024, 4096, 8192])
def test_gpu_plans_have_triton_sized_tiles(length, causal):
    """Every matrix product of a GPU plan (N1 x m_in by m_in x N2, and the inverse) has each
    dimension >= 16, the Triton dot minimum: a circular plan of L < 256 would have N1 < 16
    rows, so it is not offered (the XLA path runs it)."""
    plan = gpu_plan(length, causal=causal)
    if plan is None:
        assert (not causal and length < 256) or plan_monarch(
            length, causal=causal, min_n2=16, min_rows=16, pow2=True
        ).fft_size > GPU_MAX_FFT
        return
    assert min(plan.n1, plan.n2, plan.m_in, plan.m_out) >= 16
    assert plan.fft_size == (2 * plan.m_in * plan.n2 if causal else length)


@pytest.mark.parametrize("n", [1 << 23, 1 << 10, 3000])
def test_unit_roots_are_as_accurate_as_a_rounded_float64_table(n):
    # exponents over a whole period and beyond it (reduced mod n exactly in int32)
    e = np.concatenate(
        [np.arange(0, n, max(1, n // 200_003)), n - 1 - np.arange(1000), [n, 5 * n + 3]]
    )
    cr, ci = jax.jit(unit_roots, static_argnums=1)(jnp.asarray(e, jnp.int32), n)
    exact = np.exp(-2j * np.pi * (e % n) / n)
    err = np.abs(np.asarray(cr, np.float64) + 1j * np.asarray(ci, np.float64) - exact)
    table = exact.real.astype(np.float32) + 1j * exact.imag.astype(np.float32)
    table_rms = np.sqrt(np.mean(np.abs(table - exact) ** 2))
    # measured on CPU at n = 2^23: max 9.3e-8, rms 2.6e-8 (the rounded table: 4.2e-8, 2.0e-8);
    # float32 cos/sin of the unreduced angle 2 pi e / n: max 2.3e-7, rms 4.5e-8
    assert err.max() <= 2.0**-23
    if n & (n - 1) == 0:  # (the angle's scale pi / (2 n) is exact in float32)
        assert np.sqrt(np.mean(err**2)) <= 1.5 * table_rms


def test_unit_roots_are_exact_at_quarter_turns():
    for n in (1, 2, 4, 8, 1 << 22):
        e = np.arange(0, 3 * n, max(1, n // 4))
        cr, ci = jax.jit(unit_roots, static_argnums=1)(jnp.asarray(e, jnp.int32), n)
        want = np.round(np.exp(-2j * np.pi * (e % n) / n))
        assert np.array_equal(np.asarray(cr) + 1j * np.asarray(ci), want), n
