"""Discretisation, convolution kernels, scans and transfer functions against float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from spectrax._checks import complex_dtype
from spectrax.ssm import (
    MEASURES,
    dense_kernel,
    discretize_dense,
    discretize_diagonal,
    dplr_kernel,
    hippo,
    init_log_dt,
    log_discrete_eigenvalues,
    nplr,
    scan_dense,
    scan_diagonal,
    transfer_continuous,
    transfer_discrete,
    vandermonde_kernel,
)
from tests.helpers import assert_close, rel_err, tol

DISCS = ("zoh", "bilinear")
# Jitted once here: eager associative scans dispatch hundreds of small ops under the test hook.
_scan_diagonal = jax.jit(scan_diagonal, static_argnames="method")
_scan_dense = jax.jit(scan_dense, static_argnames="method")


def _rand_complex(key, shape, dtype=jnp.complex128):
    kr, ki = jax.random.split(key)
    real = jnp.float64 if dtype == jnp.complex128 else jnp.float32
    return jax.lax.complex(jax.random.normal(kr, shape, real), jax.random.normal(ki, shape, real))


def _stable_diag(key, shape, real=jnp.float64):
    kr, ki = jax.random.split(key)
    re = -jnp.exp(jax.random.uniform(kr, shape, real, -2.0, 0.5))
    return jax.lax.complex(re, jax.random.uniform(ki, shape, real, -10.0, 10.0))


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("method", DISCS)
def test_discretize_diagonal_matches_dense(method, key):
    lam = _stable_diag(key, (3, 5))
    dt = jnp.asarray([0.01, 0.3, 2.0])
    lam_bar, gamma = discretize_diagonal(lam, dt[:, None], method)
    b = jnp.ones((3, 5, 1), jnp.complex128)
    a_bar, b_bar = discretize_dense(jax.vmap(jnp.diag)(lam), b, dt, method)
    assert_close(jax.vmap(jnp.diag)(lam_bar), a_bar, jnp.float64)
    assert_close(gamma, b_bar[..., 0], jnp.float64)


@pytest.mark.usefixtures("x64")
def test_discretize_dense_zoh_is_expm_and_integral(key):
    a = np.asarray(jax.random.normal(key, (4, 4)), np.float64) - 3 * np.eye(4)
    b = np.asarray(jax.random.normal(jax.random.key(1), (4, 2)), np.float64)
    a_bar, b_bar = discretize_dense(jnp.asarray(a), jnp.asarray(b), jnp.asarray(0.2), "zoh")
    assert_close(a_bar, scipy.linalg.expm(0.2 * a), jnp.float64)
    assert_close(b_bar, np.linalg.solve(a, scipy.linalg.expm(0.2 * a) - np.eye(4)) @ b, rtol=1e-11)
    a_bil, _ = discretize_dense(jnp.asarray(a), jnp.asarray(b), jnp.asarray(0.2), "bilinear")
    ref = np.linalg.solve(np.eye(4) - 0.1 * a, np.eye(4) + 0.1 * a)
    assert_close(a_bil, ref, jnp.float64)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_discretize_dense_zoh_at_a_large_norm_step(dtype, x64):
    """ZOH of HiPPO-LegS (N = 16, ||A||_1 = 264) at dt = 1e4: ||A dt||_1 ≈ 2.6e6 needs 18 or 19
    squarings, beyond jax's default 16, and Ā, B̄ came back NaN (for S4-LegS at N = 256 already
    beyond dt ≈ 3.4). The system has decayed: Ā ≈ 0 and B̄ = A^{-1}(Ā - I) B ≈ -A^{-1} B."""
    a, b = hippo("legs", 16)
    dense = jax.jit(discretize_dense, static_argnums=3)  # eager expm dispatches many small ops
    a_bar, b_bar = dense(jnp.asarray(a, dtype), jnp.asarray(b[:, None], dtype), 1e4, "zoh")
    m = scipy.linalg.expm(1e4 * np.block([[a, b[:, None]], [np.zeros((1, 17))]]))
    assert np.all(np.isfinite(np.asarray(a_bar))) and np.all(np.isfinite(np.asarray(b_bar)))
    assert np.max(np.abs(np.asarray(a_bar, np.float64) - m[:16, :16])) < 1e-6
    # 18-19 squarings, each adding its rounding: 3e-11 in float64, 1.5e-6 in float32
    assert_close(b_bar, m[:16, 16:], rtol={jnp.float32: 2e-5, jnp.float64: 2e-10}[dtype])
    assert_close(m[:16, 16:], -np.linalg.solve(a, b[:, None]), rtol=1e-12)


def test_init_log_dt_range(key):
    log_dt = init_log_dt(key, (1000,), 1e-3, 1e-1)
    dt = np.exp(np.asarray(log_dt))
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    # log-uniform: the median is the geometric mean of the ends, 1e-2.
    assert 0.7e-2 < np.median(dt) < 1.4e-2
    with pytest.raises(ValueError, match="dt_min"):
        init_log_dt(key, (3,), 0.0, 1e-1)
    with pytest.raises(ValueError, match="dt_min"):
        init_log_dt(key, (3,), 1e-1, 1e-2)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("chunk", [1, 7, 64, 5000])
def test_vandermonde_equals_power_sum(chunk, key):
    lam_bar = jnp.exp(_stable_diag(key, (2, 6)) * 0.1)
    w = _rand_complex(jax.random.key(1), (2, 6))
    k = vandermonde_kernel(lam_bar, w, 300, chunk=chunk)
    ref = dense_kernel(jax.vmap(jnp.diag)(lam_bar), jnp.ones((2, 6), jnp.complex128), w, 300)
    assert_close(k, ref, rtol=1e-12)


def test_vandermonde_float32(key):
    lam_bar = jnp.exp(_stable_diag(key, (2, 6), jnp.float32) * 0.1)
    w = _rand_complex(jax.random.key(1), (2, 6), jnp.complex64)
    k = vandermonde_kernel(lam_bar, w, 500, chunk=128)
    assert k.dtype == jnp.complex64
    with jax.enable_x64(True):
        ref = dense_kernel(
            jax.vmap(jnp.diag)(lam_bar.astype(jnp.complex128)),
            jnp.ones((2, 6), jnp.complex128),
            w.astype(jnp.complex128),
            500,
        )
    assert_close(k, ref, rtol=1e-4)


@pytest.mark.parametrize("negated", [False, True])
def test_vandermonde_takes_order_sqrt_length_exponentials(key, negated):
    """The powers factor as ``Λ̄^(c chunk) Λ̄^j``: ``N (chunk + L / chunk)`` exponentials, about
    ``2 N sqrt(L)`` (32 x 2 x 64 here) where ``exp(l log Λ̄)`` took ``N L`` (32 x 4096: 4 to 41x
    slower on CPU at L = 1K to 16K), and the result is the float64 power sum's, also at
    ``L = 4096`` with the flipped modes' ``(-1)^l``."""
    h, n, length = 3, 32, 4096
    log_lam = _stable_diag(key, (h, n), jnp.float32) * 0.05
    w = _rand_complex(jax.random.key(1), (h, n), jnp.complex64)
    flip = (jnp.arange(n) % 3 == 0)[None, :].repeat(h, 0) if negated else None

    def kernel(log_lam, w):
        return vandermonde_kernel(jnp.exp(log_lam), w, length, log_Lambda_bar=log_lam, negated=flip)

    def exponentials(jaxpr) -> int:  # elements exponentiated, loops' bodies times their trips
        total = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "exp":
                total += int(np.prod(eqn.outvars[0].aval.shape))
            trips = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        total += trips * exponentials(inner)
        return total

    count = exponentials(jax.make_jaxpr(kernel)(log_lam, w).jaxpr)
    # the two factors' exponentials plus exp(log Λ̄) for Lambda_bar itself, outside the kernel
    assert count <= h * n * (2 * 64 + 2), count
    got = np.asarray(kernel(log_lam, w), np.complex128)
    l = np.arange(length)[:, None]
    a = np.asarray(log_lam, np.complex128)
    sign = np.where(np.asarray(flip)[:, None, :] & (l % 2 == 1), -1.0, 1.0) if negated else 1.0
    ref = np.sum(sign * np.asarray(w, np.complex128)[:, None, :] * np.exp(l * a[:, None, :]), -1)
    assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref))


def _dplr_system(measure, n, h, key):
    lam, p, b, v = nplr(measure, n)
    vh = v.conj().T
    c = _rand_complex(key, (h, n))
    return jnp.asarray(lam), jnp.asarray((vh @ p.T).T), jnp.asarray(vh @ b), c


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    ("measure", "length"),
    [(m, 63) for m in MEASURES] + [(m, 128) for m in MEASURES] + [("legs", 1), ("legs", 2)],
)
def test_dplr_kernel_equals_naive_power_sum(measure, length, key):
    lam, p, b, c = _dplr_system(measure, 8, 3, key)
    dt = jnp.asarray([0.005, 0.1, 0.7])
    k = jax.jit(dplr_kernel, static_argnums=5)(lam, p, b, c, dt, length)
    a = jnp.diag(lam) - p.T @ jnp.conj(p)
    a_bar, b_bar = discretize_dense(
        jnp.broadcast_to(a, (3, 8, 8)), jnp.broadcast_to(b[:, None], (3, 8, 1)), dt, "bilinear"
    )
    ref = jax.jit(dense_kernel, static_argnums=3)(a_bar, b_bar[..., 0], c, length)
    assert_close(k, ref, rtol=1e-10, what=f"{measure} L={length}")


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(("measure", "length"), [("legt", 129), ("fout", 64)])
def test_dplr_kernel_in_frequency_blocks_equals_naive_power_sum_and_one_block(
    measure, length, key, monkeypatch
):
    """Long kernels form their Cauchy sums a block of frequencies at a time (here forced: 16
    frequencies of 3 channels x 8 states per block; 128 = 8 x 16 fills the last block, 63 =
    3 x 16 + 15 pads it), each block rematerialised in the backward pass: the same kernel as
    the naive power sum, and the same gradients as one block."""
    from spectrax.ssm import _kernel

    lam, p, b, c = _dplr_system(measure, 8, 3, key)
    dt = jnp.asarray([0.005, 0.1, 0.7])

    def loss(lam, p, b, c, dt):
        k = dplr_kernel(lam, p, b, c, dt, length)
        return jnp.sum(jnp.real(k) ** 2 + jnp.imag(k) * jnp.real(k))

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))
    one = grad(lam, p, b, c, dt)
    monkeypatch.setitem(_kernel._DPLR_BLOCK_ELEMENTS, "cpu", 16 * 3 * 8)
    assert _kernel._frequency_block(length - 1, 3 * 8) == 16
    # new closures: a jit of dplr_kernel itself could reuse a trace made before the patch
    k = jax.jit(lambda *a: dplr_kernel(*a, length))(lam, p, b, c, dt)
    jaxpr = str(jax.make_jaxpr(lambda *a: dplr_kernel(*a, length))(lam, p, b, c, dt))
    assert "checkpoint" in jaxpr or "remat" in jaxpr, "the blocked path did not run"
    a = jnp.diag(lam) - p.T @ jnp.conj(p)
    a_bar, b_bar = discretize_dense(
        jnp.broadcast_to(a, (3, 8, 8)), jnp.broadcast_to(b[:, None], (3, 8, 1)), dt, "bilinear"
    )
    ref = jax.jit(dense_kernel, static_argnums=3)(a_bar, b_bar[..., 0], c, length)
    assert_close(k, ref, rtol=1e-10, what=f"{measure} L={length}")
    blocked = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))(lam, p, b, c, dt)
    for name, g1, g2 in zip(("Lambda", "P", "B", "C", "dt"), one, blocked, strict=True):
        assert bool(jnp.all(jnp.isfinite(g2))), name
        assert_close(g2, g1, rtol=1e-10, what=name)


def test_dplr_kernel_blocks_bound_the_memory_of_long_kernels(key):
    """An S4-sized kernel (16 channels, N = 32, L = 8192; float32) forward and backward: XLA's
    temporaries in frequency blocks at most a third of one block's (measured 2026-12-07:
    H = 64, N = 64, L = 16384, 98 MB against 1.2 GB)."""
    from spectrax.ssm import _kernel

    lam, p, b, v = nplr("legs", 32)
    vh = v.conj().T
    lam, p, b = (jnp.asarray(x, jnp.complex64) for x in (lam, (vh @ p.T).T, vh @ b))
    c = _rand_complex(key, (16, 32), jnp.complex64)
    dt = jnp.full((16,), 0.01, jnp.float32)

    def temp(budget):
        def loss(c):
            with pytest.MonkeyPatch.context() as mp:
                mp.setitem(_kernel._DPLR_BLOCK_ELEMENTS, "cpu", budget)
                return jnp.sum(jnp.abs(dplr_kernel(lam, p, b, c, dt, 8192)) ** 2)

        compiled = jax.jit(jax.grad(loss)).lower(c).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    one, blocked = temp(2**40), temp(2**18)
    assert blocked * 3 <= one, (blocked, one)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dplr_kernel_of_any_rank_equals_naive_power_sum(rank, key):
    """Ranks 1 and 2 (the HiPPO measures') run a closed-form determinant, higher ranks an LU."""
    k1, k2, k3 = jax.random.split(key, 3)
    lam = _stable_diag(k1, (6,))
    p = 0.3 * _rand_complex(k2, (rank, 6))
    b = _rand_complex(k3, (6,))
    c = _rand_complex(jax.random.key(9), (2, 6))
    dt = jnp.asarray([0.05, 0.4])
    k = jax.jit(dplr_kernel, static_argnums=5)(lam, p, b, c, dt, 40)
    a = jnp.diag(lam) - p.T @ jnp.conj(p)
    a_bar, b_bar = discretize_dense(
        jnp.broadcast_to(a, (2, 6, 6)), jnp.broadcast_to(b[:, None], (2, 6, 1)), dt, "bilinear"
    )
    ref = dense_kernel(a_bar, b_bar[..., 0], c, 40)
    assert_close(k, ref, rtol=1e-10, what=f"rank {rank}")


def test_dplr_kernel_float32(key):
    with jax.enable_x64(True):
        lam, p, b, c = _dplr_system("legs", 16, 2, key)
    dt = jnp.asarray([0.01, 0.1], jnp.float32)
    k = jax.jit(dplr_kernel, static_argnums=5)(
        lam.astype(jnp.complex64),
        p.astype(jnp.complex64),
        b.astype(jnp.complex64),
        c.astype(jnp.complex64),
        dt,
        256,
    )
    with jax.enable_x64(True):
        ref = jax.jit(dplr_kernel, static_argnums=5)(lam, p, b, c, dt.astype(jnp.float64), 256)
    assert k.dtype == jnp.complex64
    assert_close(k, ref, rtol=1e-4)


def test_dplr_kernel_float32_near_a_resonance(key):
    """LegT's diagonal part has Re Λ = 0: its poles lie on the unit circle, and at some (L, dt)
    one falls within rounding of a root of unity. The Woodbury correction then cancels a huge
    Cauchy term; before the pole was taken out of the sums, float32 kept 2 digits here
    (relative error 5e-3 to 1e-2, depending on C; 10 to 25 at L = 16384, dt = 1e-2) where it is
    now about 2e-6. The reference is
    float64 on the same float32-rounded inputs: the algorithm's error alone."""
    with jax.enable_x64(True):
        sys64 = _dplr_system("legt", 16, 1, key)
    sys32 = [x.astype(jnp.complex64) for x in sys64]
    dt = jnp.asarray([0.1], jnp.float32)
    k = jax.jit(dplr_kernel, static_argnums=5)(*sys32, dt, 4096)
    with jax.enable_x64(True):
        rounded = [x.astype(jnp.complex128) for x in sys32]
        ref = jax.jit(dplr_kernel, static_argnums=5)(*rounded, dt.astype(jnp.float64), 4096)
    assert k.dtype == jnp.complex64
    assert_close(k, ref, rtol=1e-4)


def _dplr_float32_error(measure, n, length, dts, key):
    """Relative error of each channel's float32 DPLR kernel against float64 on the same
    float32-rounded inputs (the algorithm's error alone)."""
    with jax.enable_x64(True):
        sys64 = _dplr_system(measure, n, len(dts), key)
    sys32 = [x.astype(jnp.complex64) for x in sys64]
    dt = jnp.asarray(dts, jnp.float32)
    k = jax.jit(dplr_kernel, static_argnums=5)(*sys32, dt, length)
    assert k.dtype == jnp.complex64
    with jax.enable_x64(True):
        rounded = [x.astype(jnp.complex128) for x in sys32]
        ref = jax.jit(dplr_kernel, static_argnums=5)(*rounded, dt.astype(jnp.float64), length)
        return [rel_err(k[i], ref[i]) for i in range(len(dts))]


def test_dplr_kernel_float32_at_small_steps(key):
    """``1 - z`` at the roots of unity near 1 (small k): formed from a rounded ``z`` in float32
    its real part was 0 for k < L/5800, and ``(1 - z)/dt`` is what a pole near z cancels
    against. LegT, N = 16, L = 4096 was 7e-5 (dt = 1e-3) and 1.8e-5 (dt = 1e-2) from float64;
    from the half angle in float64 it is 2e-6 and 5e-7."""
    errs = _dplr_float32_error("legt", 16, 4096, [1e-3, 1e-2], key)
    assert max(errs) < 1e-5, errs


def test_dplr_kernel_float32_far_from_normal(key):
    """``C (I - Ā^L)`` and the geometric sum by repeated squaring that holds each power as
    ``Ā^(2^j) - I`` where that is the smaller (near I), not as ``Ā^(2^j)``: Ā rounded as a matrix
    near I loses the digits of ``dt A``, and LagT's far-from-normal ``Ā``
    carries that rounding through its powers growing with L. LagT, N = 32, L = 2048 was 4e-5
    (dt = 1e-3) and 4e-4 (dt = 1e-2) from float64; now 7e-7 and 2e-6."""
    errs = _dplr_float32_error("lagt", 32, 2048, [1e-3, 1e-2], key)
    assert max(errs) < 1e-5, errs


def test_dplr_kernel_float32_powers_near_minus_identity(key):
    """FouT at N = 256, dt = 0.1 has modes with ``Ā`` near -1, where ``Ā - I`` is larger than
    ``Ā``: squaring the difference there (as everywhere) put the float32 kernel 3.6e-3 from
    float64; squaring whichever of ``Ā^(2^j)`` and ``Ā^(2^j) - I`` is smaller, 5.6e-4 (as close
    as squaring ``Ā`` alone, 5.9e-4, which lost LagT's digits)."""
    errs = _dplr_float32_error("fout", 256, 4096, [0.1], key)
    assert max(errs) < 1.5e-3, errs


@pytest.mark.usefixtures("x64")
def test_dplr_kernel_promotes_a_real_lambda(key):
    """A real Lambda with complex P, B, C is promoted, not the reverse (which would drop their
    imaginary parts): equal to the kernel of the same Lambda given as complex."""
    lam = jnp.asarray([-1.0, -2.0, -0.5])
    p = _rand_complex(key, (1, 3))
    b, c = _rand_complex(jax.random.key(7), (3,)), _rand_complex(jax.random.key(8), (2, 3))
    dt = jnp.asarray([0.1, 0.3])
    kernel = jax.jit(dplr_kernel, static_argnums=5)  # eager, the kernel dispatches op by op
    got = kernel(lam, p, b, c, dt, 32)
    assert got.dtype == jnp.complex128
    assert_close(got, kernel(lam.astype(jnp.complex128), p, b, c, dt, 32), rtol=1e-14)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("method", DISCS)
def test_kernel_fft_is_transfer_function_at_roots_of_unity(method, key):
    n, length = 6, 64
    lam = _stable_diag(key, (n,))
    lam_bar, gamma = discretize_diagonal(lam, jnp.full((n,), 0.5), method)
    b = _rand_complex(jax.random.key(1), (n,))
    c = _rand_complex(jax.random.key(2), (n,))
    k = vandermonde_kernel(lam_bar, c * gamma * b, length)
    z = jnp.exp((2j * jnp.pi / length) * jnp.arange(length, dtype=jnp.float64).astype(complex))
    # Truncation to L steps is exactly C -> C (I - Ā^L) in the transfer function.
    c_trunc = c * (1.0 - lam_bar**length)
    h = transfer_discrete(lam_bar, gamma * b, c_trunc, None, z)
    assert_close(jnp.fft.fft(k), h, jnp.float64)
    # ... and the untruncated one when Ā^L is negligible (decay to < 1e-13 here).
    long = 512
    lam_fast, gamma_fast = discretize_diagonal(lam - 3.0, jnp.full((n,), 0.5), method)
    k_fast = vandermonde_kernel(lam_fast, c * gamma_fast * b, long)
    assert float(jnp.max(jnp.abs(lam_fast))) ** long < 1e-13
    z_long = jnp.exp((2j * jnp.pi / long) * jnp.arange(long, dtype=jnp.float64).astype(complex))
    h_fast = transfer_discrete(lam_fast, gamma_fast * b, c, None, z_long)
    assert_close(jnp.fft.fft(k_fast), h_fast, rtol=1e-11)


@pytest.mark.usefixtures("x64", "library_errors")
def test_transfer_functions_keep_float64_points_and_refuse_integer_ones():
    """complex128 points (or a float64 D) with a float32 system were cast down to complex64
    (1.7e-8 relative off the float64 value, silently); boolean or integer points were cast to
    complex (True evaluated H at 1)."""
    a, b = jnp.asarray([-0.5, -2.0], jnp.float32), jnp.ones(2, jnp.float32)
    c = jnp.asarray([1.0, 3.0], jnp.float32)  # every system entry exact in float32
    s = jnp.asarray([0.1j, 1.3 + 0.7j, -0.3 + 2.9j])
    sn = np.asarray(s)
    want = 1.0 / (sn + 0.5) + 3.0 / (sn + 2.0)
    for a_ in (a, jnp.diag(a)):
        h = transfer_continuous(a_, b, c, None, s)
        assert h.dtype == jnp.complex128
        assert_close(h, want, rtol=1e-14)
    h = transfer_continuous(a, b, c, jnp.asarray(0.1, jnp.float64), s.astype(jnp.complex64))
    assert h.dtype == jnp.complex128  # D is float64
    z = jnp.asarray(np.exp(1j * np.asarray([0.3, 1.1, 2.9])))
    zn = np.asarray(z)
    # H(z) = z C (zI - A)^-1 B for the discrete system with A_bar = diag(0.25, -0.5)
    a_bar = jnp.asarray([0.25, -0.5], jnp.float32)
    h = transfer_discrete(a_bar, b, c, None, z)
    assert h.dtype == jnp.complex128
    assert_close(h, zn / (zn - 0.25) + 3.0 * zn / (zn + 0.5), rtol=1e-14)
    # a Python float D takes the system's precision
    assert transfer_continuous(a, b, c, 0.1, s.astype(jnp.complex64)).dtype == jnp.complex64
    for bad in (jnp.ones(2, bool), jnp.arange(2)):
        with pytest.raises(TypeError, match=r"`s` must be a floating-point or complex array"):
            transfer_continuous(a, b, c, None, bad)
        with pytest.raises(TypeError, match=r"`z` must be a floating-point or complex array"):
            transfer_discrete(a_bar, b, c, None, bad)


@pytest.mark.usefixtures("library_errors")
def test_transfer_functions_name_a_boolean_or_listed_system():
    """A boolean A, B, C or D was cast to complex silently (A = [True, False] evaluated the
    system with poles at 1 and 0); a list failed at `.shape` with an AttributeError."""
    a, v, s = jnp.asarray([-1.0, -2.0]), jnp.ones(2), jnp.asarray([1j, 2j])
    flags = jnp.asarray([True, False])
    for i, name in enumerate("ABC"):
        args = [a, v, v]
        args[i] = flags
        with pytest.raises(TypeError, match=rf"`{name}` must be .*floating-point or complex"):
            transfer_continuous(*args, None, s)
    with pytest.raises(TypeError, match=r"`A_bar` must be a jax.Array or NumPy array"):
        transfer_discrete([0.5, 0.25], v, v, None, s)
    for d in (True, jnp.asarray(True)):
        with pytest.raises(TypeError, match=r"`D` must be"):
            transfer_continuous(a, v, v, d, s)
    # numbers are still fine: a Python float, a Python int
    sn = np.asarray(s)
    for d in (0.5, 1):
        want = 1.0 / (sn + 1.0) + 1.0 / (sn + 2.0) + d
        assert_close(transfer_continuous(a, v, v, d, s), want, jnp.complex64)


@pytest.mark.usefixtures("x64")
def test_transfer_continuous_diagonal_dense_and_mimo(key):
    lam, _, b, v = nplr("legs", 6)
    a = v @ np.diag(lam) @ v.conj().T  # the normal part: diagonal in the basis V
    c = np.asarray(jax.random.normal(key, (6,)), np.float64)
    s = jax.lax.complex(jnp.zeros(41), jnp.linspace(-20.0, 20.0, 41))
    h_dense = transfer_continuous(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c), None, s)
    h_diag = transfer_continuous(
        jnp.asarray(lam), jnp.asarray(v.conj().T @ b), jnp.asarray(c @ v), None, s
    )
    assert_close(h_diag, h_dense, rtol=1e-12)
    # Closed form of a scalar system: 1 / (s + 2) + 3.
    one = transfer_continuous(
        jnp.asarray([-2.0]), jnp.asarray([1.0]), jnp.asarray([1.0]), jnp.asarray(3.0), s
    )
    assert_close(one, 1.0 / (s + 2.0) + 3.0, jnp.float64)
    mimo = transfer_continuous(
        jnp.asarray(a), jnp.ones((6, 2)), jnp.ones((3, 6)), jnp.zeros((3, 2)), s
    )
    assert mimo.shape == (41, 3, 2)
    d = jnp.arange(6.0).reshape(3, 2)
    with_d = transfer_continuous(jnp.asarray(a), jnp.ones((6, 2)), jnp.ones((3, 6)), d, s)
    assert_close(with_d - mimo, jnp.broadcast_to(d, with_d.shape).astype(with_d.dtype), rtol=1e-14)
    with pytest.raises(ValueError, match=r"`D`.*\(3, 2\).*D.shape=\(2, 3\)"):
        transfer_continuous(jnp.asarray(a), jnp.ones((6, 2)), jnp.ones((3, 6)), d.T, s)
    # vector B: D may be (H_out, 1) or (H_out,)
    col = transfer_continuous(jnp.asarray(a), jnp.ones(6), jnp.ones((3, 6)), d[:, :1], s)
    vec = transfer_continuous(jnp.asarray(a), jnp.ones(6), jnp.ones((3, 6)), d[:, 0], s)
    assert col.shape == vec.shape == (41, 3)
    assert_close(col, vec, rtol=1e-15)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("per_step", [False, True])
def test_scans_agree_with_python_loop(per_step, key):
    n, length = 4, 37
    lam = _stable_diag(key, (2, n))
    dt = (
        jax.random.uniform(jax.random.key(5), (2, length, 1), jnp.float64, 0.01, 0.5)
        if per_step
        else jnp.full((2, 1, 1), 0.1)
    )
    lam_bar, _ = discretize_diagonal(lam[:, None, :], dt, "zoh")
    bu = _rand_complex(jax.random.key(1), (2, length, n))
    x0 = _rand_complex(jax.random.key(2), (2, n))
    xs = []
    x = x0
    for t in range(length):
        x = lam_bar[:, t if per_step else 0] * x + bu[:, t]
        xs.append(x)
    ref = jnp.stack(xs, axis=1)
    for method in ("sequential", "associative"):
        out = _scan_diagonal(lam_bar, bu, x0, method=method)
        assert_close(out, ref, rtol=1e-12, what=method)


@pytest.mark.usefixtures("x64")
def test_scan_dense_methods_agree(key):
    a = 0.3 * _rand_complex(key, (5, 5))
    bu = _rand_complex(jax.random.key(1), (20, 5))
    seq = _scan_dense(a, bu, method="sequential")
    par = _scan_dense(a, bu, method="associative")
    assert_close(par, seq, rtol=1e-12)
    assert_close(seq[1], a @ seq[0] + bu[1], jnp.float64)


def test_scan_jit_vmap_float32(key):
    lam_bar = jnp.exp(_stable_diag(key, (3, 1, 4), jnp.float32) * 0.1)
    bu = _rand_complex(jax.random.key(1), (3, 50, 4), jnp.complex64)
    eager = scan_diagonal(lam_bar, bu, method="sequential")
    jitted = _scan_diagonal(lam_bar, bu, method="sequential")
    par = _scan_diagonal(lam_bar, bu)
    vmapped = jax.jit(jax.vmap(scan_diagonal))(lam_bar, bu)
    looped = jnp.stack([_scan_diagonal(lam_bar[i], bu[i]) for i in range(3)])
    assert eager.dtype == par.dtype == jnp.complex64
    assert_close(jitted, eager, rtol=tol(jnp.float32))
    assert_close(vmapped, looped, rtol=tol(jnp.float32))
    assert_close(par, eager, rtol=1e-4)


def test_errors(key, library_errors):
    lam = jnp.asarray([-1.0 + 1j], jnp.complex64)
    with pytest.raises(ValueError, match="method"):
        discretize_diagonal(lam, jnp.ones((1,)), "euler")
    with pytest.raises(ValueError, match="rank"):
        discretize_diagonal(lam, jnp.ones((1, 1)), "zoh")
    with pytest.raises(ValueError, match="Lambda_bar"):
        scan_diagonal(lam, jnp.ones((5, 1), jnp.complex64))
    with pytest.raises(ValueError, match="method"):
        scan_diagonal(lam[None], jnp.ones((5, 1), jnp.complex64), method="fast")
    with pytest.raises(ValueError, match="length"):
        vandermonde_kernel(lam, lam, 0)
    with pytest.raises(ValueError, match="expected Lambda"):
        dplr_kernel(lam, jnp.ones((1, 2), jnp.complex64), lam, lam, jnp.ones(()), 4)
    with pytest.raises(ValueError, match="A"):
        discretize_dense(jnp.ones((2, 3)), jnp.ones((2, 1)), jnp.ones(()), "zoh")
    with pytest.raises(ValueError, match="expected A"):
        transfer_continuous(
            jnp.ones((2, 2)), jnp.ones((3,)), jnp.ones((2,)), None, jnp.ones((4,), jnp.complex64)
        )


# --- numerical edges -------------------------------------------------------------------------


def test_vandermonde_zero_and_negative_real_eigenvalues(x64):
    """An eigenvalue that underflowed to 0 contributes at l = 0 only (0^0 = 1), with finite
    gradients; real negative eigenvalues (bilinear, large dt) are powered in the complex plane."""
    lam = jnp.asarray([0.946 + 0.095j, 0.0], jnp.complex64)
    w = jnp.asarray([1.0 + 0.5j, 2.0], jnp.complex64)
    want = np.array([np.sum(np.asarray(w) * np.asarray(lam, np.complex128) ** l) for l in range(5)])
    got = vandermonde_kernel(lam, w, 5, chunk=2)
    assert_close(got, want, jnp.float32)
    grad = jax.grad(
        lambda lr: jnp.sum(jnp.real(vandermonde_kernel(lam.at[0].set(lr.astype(lam.dtype)), w, 5)))
    )
    assert np.isfinite(float(grad(jnp.float32(0.9))))
    real = jnp.asarray([-0.5, 0.5], jnp.float64)
    got = vandermonde_kernel(real, jnp.ones(2, jnp.float64), 4)
    assert jnp.iscomplexobj(got)
    assert_close(got, [2.0, 0.0, 0.5, 0.0], jnp.float64)


def test_conv_and_scan_agree_when_a_mode_underflows():
    """ZOH with Re(Λ) dt < -87 underflows Λ̄ to 0 in float32: the kernel stays finite and equal to
    the scan's impulse response."""
    lam = jnp.asarray([-0.5 + 1j, -900 + 3j], jnp.complex64)
    lam_bar, gamma = discretize_diagonal(lam, jnp.full((2,), 0.1, jnp.float32))
    assert float(jnp.abs(lam_bar[1])) == 0.0
    k = vandermonde_kernel(lam_bar, gamma, 6)
    impulse = jnp.zeros((6, 2), jnp.complex64).at[0].set(gamma)
    states = _scan_diagonal(lam_bar[None], impulse)
    assert_close(k, jnp.sum(states, axis=-1), jnp.float32)


def test_zoh_input_factor_without_cancellation(x64):
    """(exp(Λ dt) - 1)/Λ by expm1: float32 keeps full relative accuracy at tiny Λ dt."""
    lam = np.array([-0.5 + 0.0j, -1e-3 + 0j, -1e-3 + 2e-3j, -20 + 5j])
    for dt in (1e-3, 1e-5, 1e-7):
        want = np.expm1(lam * dt) / lam
        _, gamma = discretize_diagonal(
            jnp.asarray(lam, jnp.complex64), jnp.full((4,), dt, jnp.float32)
        )
        np.testing.assert_allclose(np.asarray(gamma), want, rtol=2e-6)


def test_zoh_at_a_zero_eigenvalue_is_the_integrator(x64):
    """Λ = 0 (FouT's frequency 0, odd-N LegT's NPLR): ZOH's B̄ factor is its limit dt, with a
    finite gradient in dt and Λ."""
    lam = jnp.asarray(nplr("fout", 3)[0])
    assert np.any(np.asarray(lam) == 0)
    dt = 0.1
    lam_bar, gamma = discretize_diagonal(lam, dt)
    want = np.where(
        np.asarray(lam) == 0,
        dt,
        np.expm1(np.asarray(lam) * dt) / np.where(np.asarray(lam) == 0, 1, np.asarray(lam)),
    )
    assert_close(gamma, want, rtol=1e-14)
    assert_close(lam_bar, np.exp(np.asarray(lam) * dt), rtol=1e-14)

    def total(lam, dt):
        return jnp.sum(jnp.abs(discretize_diagonal(lam, dt)[1]) ** 2)

    g_lam, g_dt = jax.grad(total, argnums=(0, 1))(lam, jnp.asarray(dt))
    assert np.all(np.isfinite(np.asarray(g_lam))) and np.isfinite(float(g_dt))
    # d gamma / d Lambda at 0 is dt^2 / 2 (series dt + Lambda dt^2 / 2), not 0
    zero = int(np.flatnonzero(np.asarray(lam) == 0)[0])
    d_re = jax.grad(lambda l: jnp.real(discretize_diagonal(l, dt)[1][zero]))(lam)
    assert_close(d_re[zero], dt**2 / 2, rtol=1e-14)
    eps = 1e-6  # the dt-derivative at Λ = 0 included: d|dt|^2/d dt = 2 dt
    fd = (total(lam, dt + eps) - total(lam, dt - eps)) / (2 * eps)
    assert_close(g_dt, fd, rtol=1e-8)


def test_a_float64_dt_is_not_narrowed(x64):
    """A float64 dt array with a complex64 Lambda computes in complex128 (a Python float dt
    takes Lambda's precision), for the diagonal and dense discretisations and the DPLR kernel."""
    lam, p, b, _ = (jnp.asarray(x) for x in nplr("legs", 4))
    lam32 = lam.astype(jnp.complex64)
    assert discretize_diagonal(lam32, 0.1)[1].dtype == jnp.complex64
    assert discretize_diagonal(lam32, jnp.asarray(0.1, jnp.float32))[1].dtype == jnp.complex64
    wide = discretize_diagonal(lam32, jnp.asarray(0.1, jnp.float64))
    assert wide[0].dtype == wide[1].dtype == jnp.complex128
    c = jnp.ones((2, lam.shape[-1]), jnp.complex64)
    args = (lam32, p.astype(jnp.float32), b.astype(jnp.float32), c)
    # dtypes only: traced, not run (eager, the kernel dispatches op by op)
    kernel = lambda dt: jax.eval_shape(lambda *a: dplr_kernel(*a, dt, 8), *args)  # noqa: E731
    assert kernel(0.1).dtype == jnp.complex64
    assert kernel(jnp.full((2,), 0.1, jnp.float64)).dtype == jnp.complex128
    # discretize_dense likewise (it cast a float64 dt to A's float32: 1e-9 of a step was lost);
    # bilinear only: the dtype rule is shared with ZOH, and eager expm is slow under the hook
    a32, b32 = jnp.asarray([[-1.0]], jnp.float32), jnp.asarray([[1.0]], jnp.float32)
    assert discretize_dense(a32, b32, 0.1, "bilinear")[0].dtype == jnp.float32
    step = 0.1 + 1e-9  # not a float32 number
    a_bar, b_bar = discretize_dense(a32, b32, jnp.asarray(step, jnp.float64), "bilinear")
    assert a_bar.dtype == b_bar.dtype == jnp.float64
    assert abs(float(a_bar[0, 0]) - (1.0 - step / 2) / (1.0 + step / 2)) < 1e-15
    a_c, b_c = (x.astype(jnp.complex64) for x in (a32, b32))
    wide = discretize_dense(a_c, b_c, jnp.asarray(step, jnp.float64), "bilinear")
    assert wide[0].dtype == wide[1].dtype == jnp.complex128


def test_dplr_kernel_checks_dt(library_errors):
    lam, p, b, _ = (jnp.asarray(x) for x in nplr("legs", 4))
    c = jnp.ones((2, lam.shape[-1]), lam.dtype)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"`dt` must be finite and > 0"):
            dplr_kernel(lam, p, b, c, bad, 8)


def test_scan_promotes_to_complex_and_checks_x0(library_errors):
    """A complex Λ̄ with a real input keeps its imaginary part (no silent cast to Bu's dtype)."""
    lam = jnp.asarray([[0.5 + 0.5j]], jnp.complex64)
    bu = jnp.ones((3, 1), jnp.float32)
    for method in ("associative", "sequential"):
        got = _scan_diagonal(lam, bu, method=method)
        assert_close(got[:, 0], [1.0, 1.5 + 0.5j, 1.5 + 1.0j], jnp.float32)
        got = _scan_dense(jnp.asarray([[0.5 + 0.5j]], jnp.complex64), bu, method=method)
        assert_close(got[:, 0], [1.0, 1.5 + 0.5j, 1.5 + 1.0j], jnp.float32)
    with pytest.raises(ValueError, match="x0"):
        scan_diagonal(lam, bu, jnp.zeros((2,), jnp.complex64))
    with pytest.raises(ValueError, match="x0"):
        scan_dense(lam, bu, jnp.zeros((2,), jnp.complex64))


def test_python_float_dt_and_scalar_d(x64, library_errors):
    lam = jnp.asarray([-1.0 + 2j, -0.5 + 0j], jnp.complex128)
    a, g = discretize_diagonal(lam, 0.1)
    b, h = discretize_diagonal(lam, jnp.full((2,), 0.1))
    assert_close(a, b, jnp.float64)
    assert_close(g, h, jnp.float64)
    A = -jnp.eye(2, dtype=jnp.float64)
    ad, bd = discretize_dense(A, jnp.ones((2, 1), jnp.float64), 0.1)
    assert_close(ad, np.exp(-0.1) * np.eye(2), jnp.float64)
    with pytest.raises(ValueError, match="dt"):
        discretize_dense(A, jnp.ones((2, 1), jnp.float64), jnp.ones((3,)))
    # MIMO with a scalar D adds D to every entry of C (sI - A)^-1 B.
    A3, B3, C3 = -jnp.eye(3), jnp.ones((3, 2)), jnp.ones((4, 3))
    s = jnp.asarray([1j, 2.0 + 0j])
    with_d = transfer_continuous(A3, B3, C3, 1.5, s)
    without = transfer_continuous(A3, B3, C3, None, s)
    assert with_d.shape == (2, 4, 2)
    assert_close(with_d - without, np.full((2, 4, 2), 1.5), jnp.float64)
    with pytest.raises(ValueError, match="`D`"):
        transfer_continuous(A3, B3, C3, jnp.ones((3, 3)), s)


# --- input validation and dtypes ----------------------------------------------------------------


def test_discretize_dense_validates_inputs(library_errors):
    a, b = -jnp.eye(3), jnp.ones((3, 1))
    with pytest.raises(ValueError, match=r"`A` must be square.*A.shape=\(3,\)"):
        discretize_dense(jnp.ones(3), b, 0.1)
    # hippo's B is a vector (N,): the error says how to make it a column
    with pytest.raises(ValueError, match=r"`B`.*3 rows.*B.shape=\(3,\).*pass B\[\.\.\., None\]"):
        discretize_dense(a, jnp.ones(3), 0.1)
    with pytest.raises(ValueError, match=r"`B`.*B.shape=\(2, 1\)"):
        discretize_dense(a, jnp.ones((2, 1)), 0.1)
    with pytest.raises(ValueError, match=r"`B`.*leading.*B.shape=\(3, 3, 1\)"):
        discretize_dense(jnp.broadcast_to(a, (2, 3, 3)), jnp.ones((3, 3, 1)), jnp.ones(2))
    with pytest.raises(TypeError, match="`A` must be a floating-point or complex"):
        discretize_dense(-jnp.eye(3, dtype=jnp.int32), jnp.ones((3, 1), jnp.int32), 0.1)
    with pytest.raises(TypeError, match="`dt` must be real"):
        discretize_dense(a, b, jnp.asarray(0.1 + 0j))
    with pytest.raises(ValueError, match="method"):
        discretize_dense(a, b, 0.1, "euler")
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"`dt` must be finite and > 0"):
            discretize_dense(a, b, bad)
    # the plain number (it printed NumPy's repr, np.float64(-1.0))
    with pytest.raises(ValueError, match=r"`dt` must be finite and > 0.*got -1\.0 \(at 1 of 2"):
        discretize_dense(
            jnp.broadcast_to(a, (2, 3, 3)), jnp.ones((2, 3, 1)), jnp.asarray([1.0, -1])
        )
    # the diagonal function checks the same values
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"`dt` must be finite and > 0"):
            discretize_diagonal(jnp.asarray([-1.0 + 1j]), bad)
    # traced steps cannot be checked, and are not refused
    a_bar, _ = jax.jit(discretize_dense, static_argnums=3)(a, b, jnp.asarray(0.1), "zoh")
    assert_close(a_bar, np.exp(-0.1) * np.eye(3), jnp.float32)


def test_init_log_dt_validates_bounds(key, library_errors):
    for lo, hi, what in [
        (1e-3, float("inf"), "dt_max"),
        (float("nan"), 1e-1, "dt_min"),
        (1e-3, float("nan"), "dt_max"),
        (-1e-3, 1e-1, "dt_min"),
    ]:
        with pytest.raises(ValueError, match=f"`{what}`"):
            init_log_dt(key, (3,), lo, hi)
    with pytest.raises(ValueError, match=r"dt_min <= dt_max.*dt_min=0.1, dt_max=0.01"):
        init_log_dt(key, (3,), 1e-1, 1e-2)
    for lo, hi, what in [("1e-3", 1e-1, "dt_min"), (1e-3, True, "dt_max")]:
        with pytest.raises(TypeError, match=f"`{what}`"):
            init_log_dt(key, (3,), lo, hi)
    with pytest.raises(TypeError, match="`dtype`"):
        init_log_dt(key, (3,), 1e-3, 1e-1, jnp.int32)
    # equal bounds are allowed: a constant step
    np.testing.assert_allclose(np.exp(np.asarray(init_log_dt(key, (3,), 0.01, 0.01))), 0.01, 1e-6)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_scans_compute_in_the_promoted_dtype(method):
    """A float64 transition or initial state with a float32 input is not narrowed to float32:
    1 - 1e-9 is 1.0 in float32, which changes the sum of 100 steps by 5e-6 (relative)."""
    length, lam = 100, 1.0 - 1e-9
    ref = np.cumsum(lam ** np.arange(length))[:, None]  # x_k = sum_{j <= k} lam^j, x_{-1} = 0
    bu = jnp.ones((length, 1), jnp.float32)
    got = _scan_diagonal(jnp.full((1, 1), lam), bu, method=method)
    assert got.dtype == jnp.float64
    assert_close(got, ref, jnp.float64)
    got = _scan_dense(jnp.full((1, 1), lam), bu, method=method)
    assert got.dtype == jnp.float64
    assert_close(got, ref, jnp.float64)
    # x0 alone float64: x_k = x0 + k + 1 with x0 = 1 + 1e-9
    x0 = jnp.asarray([1.0 + 1e-9])
    want = 1.0 + 1e-9 + np.arange(1, length + 1, dtype=np.float64)[:, None]
    for fn in (_scan_diagonal, _scan_dense):
        one = jnp.ones((1, 1), jnp.float32)
        got = fn(one, bu, x0, method=method)
        assert got.dtype == jnp.float64
        assert_close(got, want, jnp.float64)
    # complex64 transition with a complex128 input: complex128
    lam_c = jnp.asarray([[0.5 + 0.5j]], jnp.complex64)
    bu_c = jnp.asarray([[1.0 + 1e-9j], [0.0], [0.0]], jnp.complex128)
    want_c = (1.0 + 1e-9j) * (0.5 + 0.5j) ** np.arange(3)
    for fn in (_scan_diagonal, _scan_dense):
        got = fn(lam_c, bu_c, method=method)
        assert got.dtype == jnp.complex128
        assert_close(got[:, 0], want_c, jnp.complex128)


@pytest.mark.usefixtures("x64")
def test_kernels_promote_mixed_precision_explicitly(key):
    """Mixed complex64/complex128 inputs work under strict promotion and give complex128."""
    lam = jnp.exp(_stable_diag(key, (6,)) * 0.1)
    w = _rand_complex(jax.random.key(1), (6,))
    ref = vandermonde_kernel(lam, w, 40)
    got = vandermonde_kernel(lam.astype(jnp.complex64), w, 40)
    assert got.dtype == jnp.complex128
    assert_close(got, vandermonde_kernel(lam.astype(jnp.complex64).astype(jnp.complex128), w, 40))
    assert_close(ref, dense_kernel(jnp.diag(lam), jnp.ones(6, jnp.complex64), w, 40), rtol=1e-12)
    assert dense_kernel(jnp.diag(lam), jnp.ones(6, jnp.complex64), w, 4).dtype == jnp.complex128


def test_shape_mismatches_are_named(library_errors):
    """Shapes that do not fit raise the library's message naming the arguments, not a JAX
    broadcasting error from inside a scan."""
    bu = jnp.ones((3, 16, 4), jnp.complex64)
    with pytest.raises(ValueError, match=r"`Lambda_bar` must have Bu's rank.*\(3, 5, 4\)"):
        scan_diagonal(jnp.ones((3, 5, 4), jnp.complex64), bu)  # time axis neither 1 nor L
    with pytest.raises(ValueError, match=r"`Lambda_bar` must have Bu's rank.*\(2, 1, 4\)"):
        scan_diagonal(jnp.ones((2, 1, 4), jnp.complex64), bu)  # batch 2 against 3
    with pytest.raises(ValueError, match=r"`Bu` must have shape \(\.\.\., L, N\)"):
        scan_diagonal(jnp.ones((4,), jnp.complex64), jnp.ones((4,), jnp.complex64))
    # 0-d arrays failed with an IndexError (or "Too many indices") naming nothing
    one = jnp.float32(1.0)
    with pytest.raises(ValueError, match=r"expected A_bar \(N, N\) and Bu \(L, N\).*Bu.shape=\(\)"):
        scan_dense(jnp.eye(2), one)
    with pytest.raises(ValueError, match=r"`Lambda_bar` and `W` must have shape \(\.\.\., N\)"):
        vandermonde_kernel(one, one, 4)
    for transfer in (transfer_continuous, transfer_discrete):
        with pytest.raises(ValueError, match=r"expected A \(N, N\) or diagonal.*A.shape=\(\)"):
            transfer(-one, jnp.ones(1), jnp.ones(1), None, jnp.array([1j]))
    a = jnp.eye(4, dtype=jnp.complex64)
    with pytest.raises(ValueError, match=r"expected A_bar \(\.\.\., N, N\).*B_bar.shape=\(5,\)"):
        dense_kernel(a, jnp.ones(5, jnp.complex64), jnp.ones(4, jnp.complex64), 8)
    with pytest.raises(ValueError, match=r"broadcastable leading dims.*C.shape=\(3, 4\)"):
        dense_kernel(jnp.stack([a, a]), jnp.ones(4), jnp.ones((3, 4)), 8)
    for fn, name in ((transfer_continuous, "s"), (transfer_discrete, "z")):
        with pytest.raises(ValueError, match=rf"`{name}` must be a 1-d array.*got \(\)"):
            fn(jnp.ones(4), jnp.ones(4), jnp.ones(4), None, jnp.asarray(1j))


def test_dense_kernel_broadcasts_a_shared_input_vector(x64):
    """A batch of systems (H, N, N) with one B (N,): each kernel is that system's C A^l B
    (the scan carry is broadcast once, so its shape does not change after the first step)."""
    rng = np.random.default_rng(0)
    a = 0.3 * rng.standard_normal((2, 4, 4))
    b, c = rng.standard_normal(4), rng.standard_normal((2, 4))
    got = dense_kernel(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c), 6)
    want = np.stack(
        [[c[h] @ np.linalg.matrix_power(a[h], t) @ b for t in range(6)] for h in range(2)]
    )
    assert got.shape == (2, 6)
    assert_close(got, want, jnp.float64)
    # one B and one C for the batch of systems (explicit broadcasting: the tests raise on
    # implicit rank promotion), and one system with a batch of C
    got = dense_kernel(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c[0]), 6)
    shared_c = np.stack(
        [[c[0] @ np.linalg.matrix_power(a[h], t) @ b for t in range(6)] for h in range(2)]
    )
    assert_close(got, shared_c, jnp.float64)
    got = dense_kernel(jnp.asarray(a[0]), jnp.asarray(b), jnp.asarray(c), 6)
    want = np.stack(
        [[c[h] @ np.linalg.matrix_power(a[0], t) @ b for t in range(6)] for h in range(2)]
    )
    assert_close(got, want, jnp.float64)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_log_discrete_eigenvalues_keep_slow_modes_accurate(x64, method):
    """exp(log Λ̄) is Λ̄; and in float32 the Vandermonde kernel from log Λ̄ computed from
    (Λ, dt) is closer to the float64 kernel than the one from the rounded Λ̄ (slow modes,
    dt = 1e-3: Λ̄ within 1e-3 of 1)."""
    n, length, dt = 32, 4096, 1e-3
    lam = -0.5 + 1j * np.pi * np.arange(n)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    lam_bar64, _ = discretize_diagonal(jnp.asarray(lam), jnp.asarray(dt), method)
    log64 = log_discrete_eigenvalues(jnp.asarray(lam), jnp.asarray(dt), method)
    assert_close(jnp.exp(log64), lam_bar64, jnp.float64)
    ref = np.asarray(vandermonde_kernel(lam_bar64, jnp.asarray(w), length))
    lam32, w32 = jnp.asarray(lam, jnp.complex64), jnp.asarray(w, jnp.complex64)
    lam_bar32, _ = discretize_diagonal(lam32, dt, method)
    plain = vandermonde_kernel(lam_bar32, w32, length)
    from_log = vandermonde_kernel(
        lam_bar32, w32, length, log_Lambda_bar=log_discrete_eigenvalues(lam32, dt, method)
    )
    assert from_log.dtype == jnp.complex64
    err_plain, err_log = rel_err(plain, ref), rel_err(from_log, ref)
    assert err_log < 1e-5 and err_log < err_plain / 5, (err_log, err_plain)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
@pytest.mark.parametrize("dt", [0.1, 1.0])
def test_log_discrete_eigenvalues_keep_fast_modes_and_decay_rates(x64, method, dt):
    """Fast modes (|Im Λ dt| up to 400): the log's phase lies in (-π, π] and the float32
    kernel from it is as accurate as the one from Λ̄ (a phase left at 400 rounds l times
    coarser: 4.7e-3 at dt = 1); the decay rate of a slow mode with a large phase keeps its
    digits (log1p(z) - log1p(-z) cancelled it to 0: a mode that never decays)."""
    n, length = 128, 4096
    lam = (-5e-4 + 1j * np.pi * np.arange(n)).astype(np.complex64)
    w = np.ones(n, np.complex64)
    dt32 = jnp.asarray(dt, jnp.float32)
    dt64 = jnp.asarray(dt32, jnp.float64)  # the same step, exactly
    lam_bar64, _ = discretize_diagonal(jnp.asarray(lam, jnp.complex128), dt64, method)
    ref = np.asarray(vandermonde_kernel(lam_bar64, jnp.asarray(w, jnp.complex128), length))
    log32 = log_discrete_eigenvalues(jnp.asarray(lam), dt32, method)
    assert np.all(np.abs(np.imag(log32)) <= np.pi + 1e-6)
    assert_close(np.exp(np.asarray(log32, np.complex128)), lam_bar64, rtol=1e-5)
    lam_bar32, _ = discretize_diagonal(jnp.asarray(lam), dt32, method)
    plain = vandermonde_kernel(lam_bar32, jnp.asarray(w), length)
    from_log = vandermonde_kernel(lam_bar32, jnp.asarray(w), length, log_Lambda_bar=log32)
    err_plain, err_log = rel_err(plain, ref), rel_err(from_log, ref)
    assert err_log < 1.5 * err_plain + 1e-6, (err_log, err_plain)
    # the decay rate of Λ = -1e-6 + 30i: about -4.4e-9 per step, not 0
    slow = jnp.asarray([-1e-6 + 30j], jnp.complex64)
    rate = float(np.real(np.asarray(log_discrete_eigenvalues(slow, dt32, method)))[0])
    want = np.real(log_discrete_eigenvalues(jnp.asarray(slow, jnp.complex128), dt64, method))
    assert want < 0 and abs(rate - want) <= 1e-5 * abs(want), (rate, want)


def test_a_zero_discrete_eigenvalue_from_its_log_contributes_at_l0_only(x64):
    """Bilinear at Λ dt = -2 gives Λ̄ = 0 and log Λ̄ = -inf: the kernel is W at l = 0 and 0
    after (the powers 0^l), as from Λ̄ itself, not NaN."""
    lam = jnp.asarray([-2.0 + 0j, -1.0 + 0j])
    w = jnp.ones(2, jnp.complex128)
    lam_bar, _ = discretize_diagonal(lam, 1.0, "bilinear")
    log_bar = log_discrete_eigenvalues(lam, 1.0, "bilinear")
    got = vandermonde_kernel(lam_bar, w, 4, log_Lambda_bar=log_bar)
    want = np.array([2.0, 1 / 3, 1 / 9, 1 / 27])
    assert_close(got, want, jnp.float64)
    assert_close(vandermonde_kernel(lam_bar, w, 4), want, jnp.float64)


def test_gradient_is_finite_where_a_bilinear_eigenvalue_is_zero():
    """S4D-Lin's real mode Λ = -1/2 at dt = 4 (bilinear, Λ dt = -2, Λ̄ = 0): artanh's infinite
    derivative there times the kernel's zero cotangent made NaN gradients in Λ and dt (S4D's
    default conv mode, every parameter of the layer after one step); the log is -inf + 0j, not
    -inf + NaN j."""
    lam = jnp.asarray([-0.5 + 0j, -0.5 + 0.1j], jnp.complex64)
    dt = jnp.asarray([4.0, 4.0], jnp.float32)

    @jax.jit
    def grads(lam, dt):
        def loss(lam, dt):
            total = 0.0
            for half_turn in (False, True):
                out = log_discrete_eigenvalues(lam, dt, "bilinear", half_turn=half_turn)
                log_bar, negated = out if half_turn else (out, None)
                lam_bar = discretize_diagonal(lam, dt, "bilinear")[0]
                w = jnp.ones(2, jnp.complex64)
                k = vandermonde_kernel(lam_bar, w, 6, log_Lambda_bar=log_bar, negated=negated)
                total = total + jnp.sum(jnp.abs(k) ** 2)
            return total

        return jax.grad(loss, argnums=(0, 1))(lam, dt)

    for half_turn in (False, True):
        out = log_discrete_eigenvalues(lam, dt, "bilinear", half_turn=half_turn)
        log_bar = out[0] if half_turn else out
        assert jnp.real(log_bar[0]) == -jnp.inf and jnp.imag(log_bar[0]) == 0
    for g in grads(lam, dt):
        assert bool(jnp.all(jnp.isfinite(g))), g


def test_log_lambda_bar_shape_is_checked(library_errors):
    lam = jnp.full((4,), 0.9 + 0.1j, jnp.complex64)
    with pytest.raises(ValueError, match=r"`log_Lambda_bar` must have the shape of `Lambda_bar`"):
        vandermonde_kernel(lam, lam, 8, log_Lambda_bar=jnp.log(lam)[:3])


def test_discretize_diagonal_names_dt_that_does_not_broadcast(library_errors):
    """A per-channel dt whose leading dims do not fit Lambda's gets the library's ValueError
    naming both shapes, not JAX's bare "mul got incompatible shapes" TypeError."""
    lam = jnp.full((2, 5), -1.0 + 1j, jnp.complex64)
    for fn in (discretize_diagonal, log_discrete_eigenvalues):
        with pytest.raises(ValueError, match=r"`dt`.*dt.shape=\(3, 1\).*Lambda.shape=\(2, 5\)"):
            fn(lam, jnp.ones((3, 1)))
        with pytest.raises(ValueError, match=r"`dt`.*dt.shape=\(2, 4\)"):
            fn(lam, jnp.ones((2, 4)))


def test_vandermonde_names_shapes_that_do_not_broadcast(library_errors):
    lam = jnp.full((2, 6), 0.5 + 0.1j, jnp.complex64)
    with pytest.raises(ValueError, match=r"`Lambda_bar` and `W`.*\(2, 6\).*\(3, 6\)"):
        vandermonde_kernel(lam, jnp.ones((3, 6), jnp.complex64), 8)  # batch 2 against 3
    with pytest.raises(ValueError, match=r"`Lambda_bar` and `W`.*\(2, 6\).*\(2, 5\)"):
        vandermonde_kernel(lam, jnp.ones((2, 5), jnp.complex64), 8)  # N = 6 against 5


def test_dplr_kernel_refuses_a_batched_lambda(library_errors):
    """Lambda is one shared (N,) diagonal: a per-channel (H, N) one (or a scalar C) gets the
    shape message, not a broadcasting or reshape error from inside the kernel."""
    lam, p, b, _ = (jnp.asarray(x) for x in nplr("legs", 4))
    c = jnp.ones((2, 4), lam.dtype)
    for bad_lam, bad_c in ((jnp.stack([lam, lam]), c), (jnp.stack([lam] * 4), c), (lam, c[0, 0])):
        with pytest.raises(ValueError, match=r"expected Lambda \(N,\), P \(r, N\).*Lambda.shape="):
            dplr_kernel(bad_lam, p, b, bad_c, 0.1, 8)


def test_state_carried_across_chunks_is_one_long_run(x64):
    """The associative scans fold x0 into their first input: running a sequence in chunks, each
    started from the last state of the one before, gives the states of one long run (diagonal
    with a per-step Λ̄, and dense). Measured: 4e-16."""
    rng = np.random.default_rng(0)
    lam_bar = jnp.asarray(
        np.exp(-rng.uniform(0.01, 0.5, (39, 3)) + 1j * rng.uniform(-3, 3, (39, 3)))
    )
    bu = jnp.asarray(rng.standard_normal((39, 3)) + 1j * rng.standard_normal((39, 3)))
    x0 = jnp.asarray(rng.standard_normal(3) + 1j * rng.standard_normal(3))
    a = jnp.asarray(0.3 * (rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))))
    for fn, per_step in ((_scan_diagonal, True), (_scan_dense, False)):
        trans = lam_bar if per_step else a
        whole = fn(trans, bu, x0, method="associative")
        parts, state = [], x0
        for lo in range(0, 39, 13):  # equal chunks: one compilation
            chunk = trans[lo : lo + 13] if per_step else trans
            parts.append(fn(chunk, bu[lo : lo + 13], state, method="associative"))
            state = parts[-1][-1]
        assert_close(jnp.concatenate(parts), whole, rtol=1e-13)


@pytest.mark.parametrize("real", [jnp.float32, jnp.float64])
def test_zoh_input_factor_is_dt_where_lambda_dt_underflows(x64, real):
    """ZOH's γ = (exp(Λ dt) - 1)/Λ tends to dt as Λ dt -> 0. Where Λ is a normal number but
    Λ dt underflows (Λ = -1e-37, dt = 1e-2 in float32: Λ dt is flushed to 0, expm1 gives 0)
    γ was 0: the mode silently lost its input, next to Λ = 0 and Λ = -1e-30 where γ = dt."""
    cdt = complex_dtype(real)
    tiny = float(jnp.finfo(real).tiny)
    mags = tiny * np.logspace(-3.0, 12.0, 16)  # subnormal, normal with Λ dt below tiny, small
    lam = np.concatenate([-mags, -mags * (1 - 1j), 1j * mags, [0.0]]).astype(np.complex128)
    for dt in (1e-2, 1e-6):
        _, gamma = jax.jit(discretize_diagonal)(jnp.asarray(lam, cdt), jnp.asarray(dt, real))
        assert gamma.dtype == cdt
        np.testing.assert_allclose(np.asarray(gamma), np.full(lam.shape, dt), rtol=4 * tol(real))


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_scans_of_zero_steps_are_empty(method):
    """L = 0 gives (0, N) states in both forms (the dense associative scan folded x0 into b[0],
    an IndexError on an empty sequence, where the sequential one returned (0, N))."""
    x0 = jnp.ones((3,), jnp.float32)
    out = scan_dense(0.5 * jnp.eye(3), jnp.zeros((0, 3)), x0, method=method)
    assert out.shape == (0, 3) and out.dtype == jnp.float32
    out = scan_diagonal(jnp.full((1, 3), 0.5), jnp.zeros((0, 3)), x0, method=method)
    assert out.shape == (0, 3) and out.dtype == jnp.float32


def _loop_float64(lam, bu):
    """x_k = lam_k x_{k-1} + bu_k from x = 0 in NumPy float64/complex128, a Python loop."""
    lam, bu = np.asarray(lam, np.complex128), np.asarray(bu, np.complex128)
    x, xs = np.zeros(bu.shape[-1], np.complex128), np.empty(bu.shape, np.complex128)
    for k in range(bu.shape[0]):
        x = lam[k if lam.shape[0] > 1 else 0] * x + bu[k]
        xs[k] = x
    return xs


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_long_scans_in_low_precision_match_a_float64_loop(method):
    """L = 5000 (not a power of two) with slow modes (memory up to 1e4 steps) against a float64
    loop on the same rounded inputs. Measured (scan_diagonal's docstring): complex64 1.4e-5
    associative, 1.3e-6 sequential; bfloat16 inputs with a float32 Λ̄ compute in float32,
    1.1e-5 and 6.7e-7. A wrong combine or an off-by-one step would be O(1)."""
    rng = np.random.default_rng(0)
    length, n = 5000, 8
    bound = {"associative": 1e-4, "sequential": 1e-5}[method]
    lam = np.exp(-rng.uniform(1e-4, 1e-2, (1, n)) + 1j * rng.uniform(-1.0, 1.0, (1, n)))
    bu = rng.normal(size=(length, n)) + 1j * rng.normal(size=(length, n))
    lam32, bu32 = jnp.asarray(lam, jnp.complex64), jnp.asarray(bu, jnp.complex64)
    got = _scan_diagonal(lam32, bu32, method=method)
    assert got.dtype == jnp.complex64
    assert rel_err(got, _loop_float64(lam32, bu32)) < bound
    lam_r = jnp.asarray(np.abs(lam), jnp.float32)
    bu_bf = jnp.asarray(bu.real, jnp.bfloat16)
    got = _scan_diagonal(lam_r, bu_bf, method=method)
    assert got.dtype == jnp.float32
    assert rel_err(got, _loop_float64(lam_r, bu_bf).real) < bound


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("method", DISCS)
def test_discretize_with_one_step_per_system_matches_scipy(method):
    """A (3,) dt for three dense systems and a (3, 1) dt for three diagonal ones: each system
    with its own step, against scipy.linalg.expm of the augmented matrix (ZOH) or the bilinear
    closed form."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 4, 4)) - 2.0 * np.eye(4)
    b = rng.normal(size=(3, 4, 2))
    dt = np.array([1e-3, 0.2, 1.5])

    def reference(a, b, h):
        if method == "zoh":
            m = scipy.linalg.expm(h * np.block([[a, b], [np.zeros((b.shape[1], 4 + b.shape[1]))]]))
            return m[:4, :4], m[:4, 4:]
        inv = np.linalg.inv(np.eye(4) - 0.5 * h * a)
        return inv @ (np.eye(4) + 0.5 * h * a), inv @ (h * b)

    dense = jax.jit(discretize_dense, static_argnums=3)  # eager expm dispatches many small ops
    a_bar, b_bar = dense(jnp.asarray(a), jnp.asarray(b), jnp.asarray(dt), method)
    for i in range(3):
        ra, rb = reference(a[i], b[i], dt[i])
        assert_close(a_bar[i], ra, rtol=1e-13, what=f"A_bar[{i}]")
        assert_close(b_bar[i], rb, rtol=1e-13, what=f"B_bar[{i}]")
    lam = -rng.uniform(0.1, 3.0, (3, 4)) + 1j * rng.uniform(-20.0, 20.0, (3, 4))
    lam_bar, gamma = discretize_diagonal(jnp.asarray(lam), jnp.asarray(dt[:, None]), method)
    for i in range(3):
        ra, rb = reference(np.diag(lam[i]), np.eye(4), dt[i])
        assert_close(lam_bar[i], np.diag(ra), rtol=1e-13, what=f"Lambda_bar[{i}]")
        assert_close(gamma[i], np.diag(rb), rtol=1e-13, what=f"gamma[{i}]")


def test_integer_or_boolean_only_inputs_are_refused_by_name(library_errors):
    """Scans and power-sum kernels need an inexact dtype: boolean inputs alone ran
    x = a & x | b (not a linear recurrence) and integers an integer one; the Vandermonde
    kernel failed in finfo ('not inexact') without naming an argument."""
    i3, b3 = jnp.ones((1, 3), jnp.int32), jnp.ones((4, 3), bool)
    for method in ("associative", "sequential"):
        with pytest.raises(TypeError, match=r"`Lambda_bar`.*Bu.dtype=bool"):
            scan_diagonal(jnp.ones((1, 3), bool), b3, method=method)
        with pytest.raises(TypeError, match=r"`Lambda_bar`.*int32"):
            scan_diagonal(i3, jnp.ones((4, 3), jnp.int32), method=method)
        with pytest.raises(TypeError, match=r"`A_bar`.*int32"):
            scan_dense(jnp.eye(3, dtype=jnp.int32), jnp.ones((4, 3), jnp.int32), method=method)
    with pytest.raises(TypeError, match=r"`Lambda_bar` or `W`.*int32"):
        vandermonde_kernel(i3, i3, 4)
    with pytest.raises(TypeError, match=r"`A_bar`, `B_bar` or `C`.*bool"):
        dense_kernel(jnp.eye(3, dtype=bool), jnp.ones(3, bool), jnp.ones(3, bool), 4)
    # one inexact input is enough: an integer Bu with a float Λ̄ computes in float32
    got = scan_diagonal(jnp.full((1, 3), 0.5), jnp.ones((4, 3), jnp.int32))
    assert got.dtype == jnp.float32
    assert_close(got[:, 0], [1.0, 1.5, 1.75, 1.875], jnp.float32)


def test_lists_are_refused_by_name(library_errors):
    """The kernels and scans failed on a list at `.ndim` or `.shape` with an AttributeError
    that named no argument."""
    v, lam = [1.0, 1.0], jnp.asarray([0.5, 0.25])
    cases = [
        ("Lambda_bar", lambda: vandermonde_kernel(v, lam, 4)),
        ("W", lambda: vandermonde_kernel(lam, v, 4)),
        ("log_Lambda_bar", lambda: vandermonde_kernel(lam, lam, 4, log_Lambda_bar=v)),
        ("A_bar", lambda: dense_kernel([v, v], lam, lam, 4)),
        ("C", lambda: dense_kernel(jnp.eye(2), lam, v, 4)),
        ("Lambda", lambda: dplr_kernel(v, lam[None], lam, lam, 0.1, 4)),
        ("P", lambda: dplr_kernel(lam, [v], lam, lam, 0.1, 4)),
        ("Lambda_bar", lambda: scan_diagonal([v], jnp.ones((3, 2)))),
        ("Bu", lambda: scan_diagonal(lam[None], [v, v])),
        ("x0", lambda: scan_diagonal(lam[None], jnp.ones((3, 2)), v)),
        ("A_bar", lambda: scan_dense([v, v], jnp.ones((3, 2)))),
        ("Bu", lambda: scan_dense(jnp.eye(2), [v])),
    ]
    for name, call in cases:
        with pytest.raises(TypeError, match=rf"`{name}` must be a jax.Array or NumPy array.*list"):
            call()


@pytest.mark.parametrize("method", DISCS)
@pytest.mark.parametrize("half", [jnp.bfloat16, jnp.float16])
def test_discretize_dense_computes_half_precision_in_float32(method, half):
    """A bfloat16 or float16 system failed inside jax (expm: 'A.dtype=bfloat16 is not
    supported'; LU: NotImplementedError 'Unsupported dtype float16') naming neither argument;
    it computes in float32, as discretize_diagonal, on the values as given."""
    a = (jnp.diag(jnp.asarray([-1.0, -2.0, -0.5])) + 0.25 * jnp.ones((3, 3))).astype(half)
    b = jnp.asarray([[1.0], [0.5], [-1.0]], half)
    dense = jax.jit(discretize_dense, static_argnums=3)  # eager expm dispatches many small ops
    a_bar, b_bar = dense(a, b, 0.1, method)
    ref_a, ref_b = dense(a.astype(jnp.float32), b.astype(jnp.float32), 0.1, method)
    assert a_bar.dtype == b_bar.dtype == jnp.float32
    assert_close(a_bar, ref_a, jnp.float32)
    assert_close(b_bar, ref_b, jnp.float32)


@pytest.mark.parametrize("method", DISCS)
def test_half_turn_logs_and_their_powers(x64, method):
    """log_discrete_eigenvalues(..., half_turn=True) is log(-Λ̄) exactly where Re Λ̄ < 0, its
    phase within [-π/2, π/2]; vandermonde_kernel's `negated` puts (-1)^l back. Modes on both
    sides of |Λ dt/2| = 1 (bilinear) and of cos(Im Λ dt) = 0 (ZOH), and Λ = 0."""
    lam = jnp.asarray([0.0, -0.5 + 1.0j, -0.5 + 30.0j, -0.1 - 45.0j, -3.0, -50.0 + 2.0j])
    dt = jnp.asarray(0.1)
    lam_bar, _ = discretize_diagonal(lam, dt, method)
    log_abs, negated = log_discrete_eigenvalues(lam, dt, method, half_turn=True)
    assert negated.dtype == jnp.bool_
    np.testing.assert_array_equal(negated, np.asarray(jnp.real(lam_bar)) < 0)
    assert np.any(negated) and not np.all(negated)
    assert float(jnp.max(jnp.abs(jnp.imag(log_abs)))) <= np.pi / 2 + 1e-12
    assert_close(jnp.where(negated, -1.0, 1.0) * jnp.exp(log_abs), lam_bar, jnp.float64)
    w = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6)) + 0j)  # a batch of two
    powers = np.asarray(lam_bar)[None, :] ** np.arange(9)[:, None]
    # blocks of odd and even sizes, one or several: every block starts at an even step
    for chunk in (1, 3, 4, 1024):
        got = vandermonde_kernel(
            lam_bar[None], w, 9, chunk=chunk, log_Lambda_bar=log_abs[None], negated=negated[None]
        )
        assert_close(got, np.asarray(w) @ powers.T, jnp.float64)


def test_negated_needs_a_log_of_its_shape(library_errors):
    lam, neg = jnp.asarray([0.5, -0.5]), jnp.asarray([False, True])
    with pytest.raises(ValueError, match=r"`negated` needs `log_Lambda_bar`"):
        vandermonde_kernel(lam, lam, 4, negated=neg)
    with pytest.raises(ValueError, match=r"`negated` needs.*negated.shape=\(1,\)"):
        vandermonde_kernel(lam, lam, 4, log_Lambda_bar=lam, negated=neg[:1])
    with pytest.raises(TypeError, match=r"`negated` must be a boolean array; got dtype int32"):
        vandermonde_kernel(lam, lam, 4, log_Lambda_bar=lam, negated=jnp.asarray([0, 1]))
    with pytest.raises(TypeError, match=r"`half_turn` must be a Python bool"):
        log_discrete_eigenvalues(lam, 0.1, half_turn="yes")


def test_a_python_float_dt_gives_the_same_dtype_under_jit(x64):
    """Under jit a Python float dt arrives as a weakly typed float64 tracer; it was taken for a
    float64 array and widened complex64 to complex128 (eager: complex64), so jit(f) != f."""
    lam, p, b, _ = (jnp.asarray(x) for x in nplr("legs", 4))
    lam32 = lam.astype(jnp.complex64)
    a32, b32 = jnp.diag(lam32), b.astype(jnp.float32)
    c = jnp.ones((2, 4), jnp.complex64)
    calls = {
        "discretize_diagonal": lambda dt: discretize_diagonal(lam32, dt)[1],
        "log_discrete_eigenvalues": lambda dt: log_discrete_eigenvalues(lam32, dt, "bilinear"),
        "discretize_dense": lambda dt: discretize_dense(a32, a32, dt, "bilinear")[0],
        "dplr_kernel": lambda dt: dplr_kernel(lam32, p.astype(jnp.float32), b32, c, dt, 8),
    }
    assert calls["discretize_diagonal"](0.1).dtype == jnp.complex64  # eager: Lambda's
    for name, f in calls.items():  # eval_shape traces as jit does: 0.1 is a weak float64 there
        assert jax.eval_shape(f, 0.1).dtype == jnp.complex64, name


def test_boolean_arrays_are_not_eigenvalues_or_vectors(library_errors):
    """Integers are taken as numbers; a boolean array was read as 0 and 1 silently (True an
    unstable eigenvalue +1), where transfer_* and dense_kernel refuse it by name."""
    t, f = jnp.array([True, False]), jnp.ones(2)
    lam, p, c = -jnp.ones(2, jnp.complex64), jnp.ones((1, 2), jnp.complex64), jnp.ones((3, 2))
    calls = {
        "Lambda": [
            lambda: discretize_diagonal(t, 0.1),
            lambda: log_discrete_eigenvalues(t, 0.1),
            lambda: dplr_kernel(t, p, f, c, 0.1, 4),
        ],
        "Lambda_bar": [lambda: vandermonde_kernel(t, f, 4)],
        "W": [lambda: vandermonde_kernel(f, t, 4)],
        "P": [lambda: dplr_kernel(lam, t[None], f, c, 0.1, 4)],
        "B": [lambda: dplr_kernel(lam, p, t, c, 0.1, 4)],
        "C": [lambda: dplr_kernel(lam, p, f, jnp.ones((3, 2), bool), 0.1, 4)],
    }
    for name, fns in calls.items():
        for fn in fns:
            with pytest.raises(TypeError, match=rf"`{name}` must be a numeric .*got dtype bool"):
                fn()
    # an integer diagonal is still a number
    assert_close(
        discretize_diagonal(jnp.array([-1, -2]), 0.1)[0], jnp.exp(-0.1 * jnp.arange(1.0, 3.0))
    )
