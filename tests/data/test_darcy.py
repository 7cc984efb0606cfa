"""Darcy: second-order convergence to a manufactured solution, the discrete residual, a direct
sparse (SciPy) solve of an independently assembled matrix, and the dataset generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from spectrax.data import darcy_dataset, darcy_operator, darcy_solve, grf_neumann
from tests.helpers import rel_err

# Measured: max error 5.5e-3 (s=33), 1.4e-3 (65); observed order 2.000; float64 residual 4e-12.
MANUFACTURED_ORDER = (1.9, 2.1)
RESIDUAL_RTOL_X64 = 1e-10


def a_exact(x, y):
    return 1.0 + 0.5 * jnp.sin(2 * jnp.pi * x) * jnp.cos(jnp.pi * y)


def u_exact(x, y):
    return jnp.sin(jnp.pi * x) * jnp.sin(2 * jnp.pi * y) * jnp.exp(x)


def f_exact(x, y):
    """-div(a grad u) by automatic differentiation of the closed forms."""

    def flux(x, y):
        ux, uy = jax.grad(u_exact, argnums=(0, 1))(x, y)
        return a_exact(x, y) * ux, a_exact(x, y) * uy

    return -(jax.grad(lambda x: flux(x, y)[0])(x) + jax.grad(lambda y: flux(x, y)[1])(y))


def _nodes(s):
    x = jnp.linspace(0.0, 1.0, s)
    return jnp.meshgrid(x, x, indexing="ij")


def test_manufactured_solution_second_order(x64):
    errs = []
    for s in (17, 33, 65):
        X, Y = _nodes(s)
        u = darcy_solve(a_exact(X, Y), jax.jit(jax.vmap(jax.vmap(f_exact)))(X, Y))
        errs.append(float(jnp.max(jnp.abs(u - u_exact(X, Y)))))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > MANUFACTURED_ORDER[0]) & (orders < MANUFACTURED_ORDER[1])), (
        errs,
        orders,
    )
    assert errs[-1] < 2e-3


def _assemble(a, face_mean="harmonic"):
    """Independent scipy.sparse assembly of the 5-point operator (loops)."""
    a = np.asarray(a, np.float64)
    s = a.shape[0]
    m = s - 2
    h2 = (s - 1) ** 2
    idx = lambda i, j: (i - 1) * m + (j - 1)  # noqa: E731
    rows, cols, vals = [], [], []
    for i in range(1, s - 1):
        for j in range(1, s - 1):
            diag = 0.0
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ni, nj = i + di, j + dj
                if face_mean == "harmonic":
                    face = 2 * a[i, j] * a[ni, nj] / (a[i, j] + a[ni, nj]) * h2
                else:
                    face = (a[i, j] + a[ni, nj]) / 2 * h2
                diag += face
                if 0 < ni < s - 1 and 0 < nj < s - 1:
                    rows.append(idx(i, j))
                    cols.append(idx(ni, nj))
                    vals.append(-face)
            rows.append(idx(i, j))
            cols.append(idx(i, j))
            vals.append(diag)
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(m * m, m * m))


def _fno_coefficient(key, s, dtype=jnp.float64):
    g = grf_neumann(key, s, dtype=dtype)
    return jnp.where(g >= 0, jnp.asarray(12.0, dtype), jnp.asarray(3.0, dtype))


@pytest.mark.parametrize("face_mean", ["harmonic", "arithmetic"])
def test_residual_and_sparse_direct_solve(key, x64, face_mean):
    s = 25
    a = _fno_coefficient(key, s)
    u = darcy_solve(a, face_mean=face_mean)
    res = darcy_operator(a, u, face_mean=face_mean)[1:-1, 1:-1] - 1.0
    assert float(jnp.linalg.norm(res)) / (s - 2) < RESIDUAL_RTOL_X64
    np.testing.assert_array_equal(np.asarray(u)[[0, -1], :], 0.0)
    np.testing.assert_array_equal(np.asarray(u)[:, [0, -1]], 0.0)
    direct = scipy.sparse.linalg.spsolve(_assemble(a, face_mean), np.ones((s - 2) ** 2))
    assert rel_err(np.asarray(u)[1:-1, 1:-1].ravel(), direct) < 1e-10


@pytest.mark.parametrize("face_mean", ["harmonic", "arithmetic"])
def test_operator_matches_assembled_matrix(key, x64, face_mean):
    s = 9
    a = _fno_coefficient(key, s)
    u = jax.random.normal(jax.random.fold_in(key, 1), (s, s), jnp.float64)
    u = u.at[[0, -1], :].set(0.0).at[:, [0, -1]].set(0.0)
    expected = _assemble(a, face_mean) @ np.asarray(u)[1:-1, 1:-1].ravel()
    got = darcy_operator(a, u, face_mean=face_mean)
    assert rel_err(np.asarray(got)[1:-1, 1:-1].ravel(), expected) < 1e-13


def test_face_means_agree_on_smooth_coefficients_to_second_order(x64):
    """Where ``a`` is smooth the two face means differ by O(h^2) in the solution; next to the
    jumps of the FNO coefficient they differ at O(h)."""
    diffs = []
    for s in (17, 33, 65):
        X, Y = _nodes(s)
        a = a_exact(X, Y)
        diffs.append(
            float(jnp.max(jnp.abs(darcy_solve(a) - darcy_solve(a, face_mean="arithmetic"))))
        )
    orders = np.log2(np.array(diffs[:-1]) / np.array(diffs[1:]))
    assert np.all(orders > 1.8), (diffs, orders)


def test_batched_float32_matches_float64(key):
    keys = jax.random.split(key, 3)
    a = jnp.stack([_fno_coefficient(k, 17, jnp.float32) for k in keys])
    u32 = darcy_solve(a)
    assert u32.shape == (3, 17, 17) and u32.dtype == jnp.float32
    with jax.enable_x64(True):
        u64 = darcy_solve(a.astype(jnp.float64))
        assert rel_err(u32, u64) < 1e-5
        np.testing.assert_allclose(darcy_solve(a[1].astype(jnp.float64)), u64[1], rtol=1e-10)


def test_dataset_properties(key):
    """a takes the two values, u vanishes on the boundary and is positive inside (maximum
    principle, f = 1 > 0), and the output nodes are solver nodes (solve on 2x, subsample)."""
    a, u = darcy_dataset(key, 3, 9, solver_resolution=17, batch_size=2)
    assert a.shape == u.shape == (3, 9, 9) and a.dtype == u.dtype == jnp.float32
    assert set(np.unique(np.asarray(a)).tolist()) <= {3.0, 12.0}
    np.testing.assert_array_equal(np.asarray(u)[:, [0, -1], :], 0.0)
    assert float(jnp.min(u[:, 1:-1, 1:-1])) > 0.0
    a_fine = _fno_coefficient(jax.random.split(key, 3)[2], 17, jnp.float32)
    np.testing.assert_array_equal(a[2], a_fine[::2, ::2])
    np.testing.assert_allclose(u[2], darcy_solve(a_fine)[::2, ::2], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(resolution=9, solver_resolution=20), "resolution - 1"),
        (dict(a_low=0.0), "a_low"),
        (dict(resolution=2), "resolution"),
        (dict(face_mean="geometric"), "face_mean"),
    ],
)
def test_dataset_errors(key, kwargs, match, library_errors):
    with pytest.raises(ValueError, match=match):
        darcy_dataset(key, **(dict(num_samples=1, resolution=9) | kwargs))


def test_solve_errors(library_errors):
    with pytest.raises(ValueError, match="`a`"):
        darcy_solve(jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="`f`"):
        darcy_solve(jnp.ones((5, 5)), jnp.ones((4, 4)))
    with pytest.raises(TypeError, match="`a`"):
        darcy_solve(jnp.ones((5, 5), jnp.int32))
    with pytest.raises(ValueError, match="`face_mean`.*'geometric'"):
        darcy_solve(jnp.ones((5, 5)), face_mean="geometric")
    with pytest.raises(ValueError, match="`face_mean`"):
        darcy_operator(jnp.ones((5, 5)), jnp.ones((5, 5)), face_mean="min")


def test_broadcast_rhs_over_batch(key, x64):
    """One coefficient with a batch of right-hand sides: linear in f."""
    a = _fno_coefficient(key, 9)
    f = jax.random.normal(key, (2, 9, 9), jnp.float64)
    u = darcy_solve(a, f)
    assert u.shape == (2, 9, 9)
    np.testing.assert_allclose(
        darcy_solve(a, f[0] + 2 * f[1]), u[0] + 2 * u[1], rtol=1e-9, atol=1e-14
    )
    residual = darcy_operator(a, u)[:, 1:-1, 1:-1] - f[:, 1:-1, 1:-1]
    assert float(jnp.max(jnp.abs(residual))) < 1e-9 * float(jnp.max(jnp.abs(f)))
