"""Darcy: second-order convergence to a manufactured solution, the discrete residual, a direct
sparse (SciPy) solve of an independently assembled matrix, and the dataset generator."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from spectrax.data import darcy_dataset, darcy_operator, darcy_solve, grf_neumann
from tests.helpers import assert_close, rel_err

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


@pytest.mark.filterwarnings("error")  # the FNO coefficients converge: no residual warning
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
        (dict(a_high=float("inf")), "`a_high` must be a finite number"),
        # float32 coefficient field: 1e300 was cast to inf (a NumPy overflow warning) and
        # 1e-50 to 0 (a singular solve)
        (dict(a_low=1e300), r"`a_low`=1e\+300 does not fit the float32 coefficient"),
        (dict(a_high=1e-50), r"`a_high`=1e-50 does not fit the float32 coefficient"),
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


@pytest.mark.parametrize("tol", [float("nan"), -1.0, 0.0, 1.0, float("inf")])
def test_tol_validated(key, tol, library_errors):
    """NaN, a negative tol (squared away) or tol >= 1 returned u = 0 from darcy_dataset."""
    with pytest.raises(ValueError, match=r"`tol` must be a finite relative residual"):
        darcy_dataset(key, 1, 9, tol=tol)
    with pytest.raises(ValueError, match=r"`tol` must be a finite relative residual"):
        darcy_solve(jnp.ones((5, 5)), tol=tol)
    with pytest.raises(TypeError, match="`tol` must be a Python float; got NoneType"):
        darcy_dataset(key, 1, 9, tol=None)


def _contrast_coefficient(s, high=1e5, low=1e-5):
    g = jax.random.normal(jax.random.key(1), (s, s))
    return jnp.where(g > 0, jnp.float32(high), jnp.float32(low))


def test_unconverged_solve_raises(library_errors):
    """Contrast 1e10 with max_iter=50: the iterate's residual is ~1e2-1e4, returned silently
    before; now an error naming max_iter, tol, the residual and the failing problems. Under
    jit the check cannot run and u is returned as computed."""
    a = _contrast_coefficient(17)
    with pytest.raises(RuntimeError, match=r"max_iter=50 .* is \S+ \(true \S+\), above tol=1e-05"):
        darcy_solve(a, max_iter=50)
    batch = jnp.stack([a, jnp.ones_like(a), a])  # the constant coefficient converges
    with pytest.raises(RuntimeError, match=r"for 2 of 3 problems \(0, 2\)"):
        darcy_solve(batch, max_iter=50)
    u = jax.jit(lambda a: darcy_solve(a, max_iter=50))(a)
    residual = darcy_operator(a, u)[1:-1, 1:-1] - 1.0
    assert float(jnp.linalg.norm(residual)) / 15 > 1.0  # not converged, as the error said


def test_unconverged_dataset_names_the_samples(key, library_errors):
    """With max_iter=11 some FNO samples (12 to 13 iterations at s = 17) stop short: the error
    lists exactly those, as darcy_solve on each sample's coefficient confirms."""
    with pytest.raises(RuntimeError, match=r"max_iter=11") as err:
        darcy_dataset(key, 6, 17, max_iter=11)
    named = re.search(r"for (\d) of 6 samples \(([\d, ]+)\)", str(err.value))
    assert named, str(err.value)
    failed = {int(i) for i in named.group(2).split(",")}
    assert int(named.group(1)) == len(failed) and 0 < len(failed) < 6
    for i, k in enumerate(jax.random.split(key, 6)):
        a = _fno_coefficient(k, 17, jnp.float32)
        if i in failed:
            with pytest.raises(RuntimeError, match="did not converge"):
                darcy_solve(a, max_iter=11)
        else:
            darcy_solve(a, max_iter=11)


def test_residual_far_above_tol_warns(key):
    """Contrast 1e10 in float32: the iteration meets tol on its recursive residual, but the
    returned u's residual is ~1e-2 (measured 1.1e-2 here, 3e-2 at s = 33), far above 10 tol
    and the round-off bound (2e-5): a RuntimeWarning names the samples. The FNO contrast (4)
    stays below it (test_dataset_properties runs with warnings as errors)."""
    with pytest.warns(RuntimeWarning, match=r"recursively updated residual for .* samples"):
        darcy_dataset(key, 2, 17, a_high=1e5, a_low=1e-5)


def test_float64_rhs_is_not_narrowed(key, x64):
    """A float64 f with a float32 a is solved and returned in float64 (was float32)."""
    a = _fno_coefficient(key, 9, jnp.float32)
    f = jax.random.normal(key, (9, 9), jnp.float64)
    u = darcy_solve(a, f)
    assert u.dtype == jnp.float64
    np.testing.assert_allclose(u, darcy_solve(a.astype(jnp.float64), f), rtol=1e-13, atol=1e-16)
    assert darcy_solve(a, f.astype(jnp.float32)).dtype == jnp.float32
    assert darcy_solve(a.astype(jnp.float16), 1.0).dtype == jnp.float16


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_coefficient_named(bad, library_errors):
    """A zero, NaN or inf node of `a` gave a NaN residual (a RuntimeError saying "after
    max_iter=2000 iterations ... Raise `max_iter`") and a negative one made the system
    indefinite, answered silently."""
    a = jnp.ones((2, 9, 9), jnp.float32).at[1, 4, 5].set(bad)
    match = r"`a` must be positive and finite at every node.*a\[1, 4, 5\] = " + f"{bad:g}"
    with pytest.raises(ValueError, match=match):
        darcy_solve(a)


@pytest.mark.parametrize(
    "f",
    [
        float("nan"),
        np.float32(np.inf),
        jnp.ones((2, 9, 9), jnp.float32).at[1, 4, 5].set(jnp.nan),
    ],
    ids=["nan", "numpy-inf", "array"],
)
def test_non_finite_rhs_named(f, library_errors):
    """A NaN or inf in `f` ran max_iter iterations into "did not converge" (a RuntimeError)."""
    match = r"`f` must be finite" + (r".*f\[1, 4, 5\] = nan" if isinstance(f, jax.Array) else "")
    with pytest.raises(ValueError, match=match):
        darcy_solve(jnp.ones((2, 9, 9), jnp.float32), f)


def test_non_finite_rhs_on_the_boundary_is_ignored():
    f = jnp.ones((9, 9), jnp.float32).at[0, 3].set(jnp.nan)
    u = darcy_solve(jnp.ones((9, 9), jnp.float32), f)
    np.testing.assert_array_equal(u, darcy_solve(jnp.ones((9, 9), jnp.float32), 1.0))


@pytest.mark.parametrize("f", [np.float32(2.0), np.float64(2.0), np.int64(2)])
def test_numpy_scalar_rhs_as_python_float(f):
    """An np.float32 `f` was refused with a shape message (`f.shape=()`)."""
    a = jnp.ones((9, 9), jnp.float32)
    u = darcy_solve(a, f)
    assert u.dtype == jnp.float32
    np.testing.assert_array_equal(u, darcy_solve(a, 2.0))


def test_zero_dim_array_rhs_is_broadcast_to_the_grid(key, x64):
    """A 0-d array `f` (the standard problem f = 1, as jnp.asarray(1.0)) was refused with
    "`f` must end with the grid shape"; it is the same at every node, also traced (vmap over f)."""
    a = _fno_coefficient(key, 9, jnp.float64)
    ones = darcy_solve(a, jnp.ones((9, 9), jnp.float64))
    for f in (jnp.asarray(1.0, jnp.float64), np.asarray(1.0)):
        u = darcy_solve(a, f)
        assert u.dtype == jnp.float64
        np.testing.assert_allclose(u, ones, rtol=1e-12, atol=1e-16)
    u32 = darcy_solve(a.astype(jnp.float32), jnp.asarray(1.0, jnp.float32))
    assert u32.dtype == jnp.float32
    # linear in f: a batch of scalars under vmap (a traced 0-d f)
    us = jax.vmap(lambda c: darcy_solve(a, c))(jnp.asarray([1.0, -3.0], jnp.float64))
    np.testing.assert_allclose(us, np.stack([ones, -3 * ones]), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("scale", [1e-25, 1e25])
def test_rescaled_coefficient_rescales_the_solution(key, scale):
    """-div((c a) grad(u / c)) = f: in float32 the harmonic face mean 2 a b / (a + b) formed
    a b, which underflows for a ~ 1e-20 (a low permeability in SI units) and overflows for
    a ~ 1e20, so those solves gave NaN and a "did not converge" error."""
    a = _fno_coefficient(key, 9, jnp.float32)
    u = darcy_solve(a)
    scaled = darcy_solve(a * jnp.float32(scale))
    assert_close(scaled * jnp.float32(scale), u, rtol=1e-5)


def test_overflow_is_reported_as_a_breakdown(key, library_errors):
    """a ~ 1e-35 in float32 puts u ~ f / a beyond the float32 range: the loop stops at a NaN
    residual (here after 148 iterations), which was reported as "did not converge: after
    max_iter=2000 iterations ... Raise `max_iter`"."""
    a = _fno_coefficient(key, 9, jnp.float32) * jnp.float32(1e-35)
    with pytest.raises(RuntimeError, match=r"broke down: .* is nan after \d+ iterations") as err:
        darcy_solve(a)
    assert "Raise `max_iter`" not in str(err.value)


def test_numpy_float64_coefficient_outside_x64_is_a_float32_solve(key, library_errors):
    """Outside 64-bit mode a NumPy float64 `a` is float32, as any JAX input: it was solved in
    float32 to float64's default tol (1e-11: 26 iterations instead of 14 at 85 nodes) and
    JAX warned that float64 was truncated. Now it is the float32 solve, bit for bit."""
    assert not jax.config.jax_enable_x64
    a = np.where(np.asarray(grf_neumann(key, 17)) >= 0, 12.0, 3.0)  # float64 NumPy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = darcy_solve(a)
    np.testing.assert_array_equal(np.asarray(u), np.asarray(darcy_solve(jnp.asarray(a))))


def test_grid_error_quotes_the_argument_shape(library_errors):
    """The grid check quoted its local variable ("`u` must have shape ...; got x.shape=(5, 4)"),
    a name the caller never used."""
    with pytest.raises(ValueError, match=r"`a` must have shape .*; got a\.shape=\(5, 4\)\."):
        darcy_solve(jnp.ones((5, 4)))
    with pytest.raises(ValueError, match=r"`u` must have shape .*; got u\.shape=\(2, 2\)\."):
        darcy_operator(jnp.ones((5, 5)), jnp.ones((2, 2)))
