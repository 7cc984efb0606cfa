"""Operator losses: closed forms for relative Lp, H1 and negative Sobolev norms of sinusoids,
reductions, gradients (also at zero error), errors."""

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.train import h1_loss, relative_lp_loss, sobolev_loss
from spectrax.transforms import spectral_derivative
from tests.helpers import assert_close

lp1 = functools.partial(relative_lp_loss, num_spatial_dims=1)
h1_1 = functools.partial(h1_loss, num_spatial_dims=1)
sob1 = functools.partial(sobolev_loss, num_spatial_dims=1)


def _x(n):
    return np.arange(n) / n


def test_relative_lp_closed_forms(x64):
    rng = np.random.default_rng(0)
    t = rng.normal(size=(3, 2, 16))
    e = rng.normal(size=(3, 2, 16))
    for p in (1.0, 2.0, 3.0):
        want = np.sum(np.abs(e) ** p, axis=(1, 2)) ** (1 / p) / np.sum(
            np.abs(t) ** p, axis=(1, 2)
        ) ** (1 / p)
        got = lp1(jnp.asarray(t + e), jnp.asarray(t), p=p, reduction="none")
        assert_close(got, want, jnp.float64)
        assert_close(lp1(jnp.asarray(t + e), jnp.asarray(t), p=p), want.mean(), jnp.float64)
    # p = inf is the max norm.
    want = np.max(np.abs(e), axis=(1, 2)) / np.max(np.abs(t), axis=(1, 2))
    got = lp1(jnp.asarray(t + e), jnp.asarray(t), p=math.inf, reduction="none")
    assert_close(got, want, jnp.float64)
    # Two spatial axes, batch (2, 3): norm over (C, X, Y) per example.
    t2, e2 = rng.normal(size=(2, 3, 1, 4, 5)), rng.normal(size=(2, 3, 1, 4, 5))
    got = relative_lp_loss(
        jnp.asarray(t2 + e2), jnp.asarray(t2), num_spatial_dims=2, reduction="sum"
    )
    want = np.linalg.norm(e2.reshape(6, -1), axis=1) / np.linalg.norm(t2.reshape(6, -1), axis=1)
    assert_close(got, want.sum(), jnp.float64)


def test_relative_lp_no_overflow_for_large_values():
    # |x|^3 overflows float32 at 1e13; the norm is scaled by max |x| first.
    t = jnp.full((1, 1, 8), 1e14, jnp.float32)
    got = lp1(t * 1.5, t, p=3.0)
    assert_close(got, np.float64(0.5), jnp.float32)


def test_relative_lp_of_a_diverged_prediction_is_inf():
    # An inf in pred made the max-rescaled sum inf / inf = NaN: the norm of a diverged
    # prediction is inf, and a NaN stays NaN.
    t = jnp.ones((2, 1, 8), jnp.float32)
    pred = t.at[0, 0, 3].set(jnp.inf)
    for p in (1.0, 2.0, 3.5, float("inf")):
        got = np.asarray(lp1(pred, t, p=p, reduction="none"))
        assert got[0] == np.inf and got[1] == 0.0, (p, got)
    assert np.isnan(lp1(t.at[1, 0, 0].set(jnp.nan), t))


def test_h1_and_sobolev_of_a_diverged_prediction_are_inf_as_lp():
    """The FFT of an infinite entry is NaN: h1_loss and sobolev_loss read a diverged prediction
    as NaN, where their docstrings (and relative_lp_loss) say inf."""
    t = jnp.stack([jnp.sin(jnp.arange(8.0)), jnp.cos(jnp.arange(8.0))])[:, None, :]
    for loss in (h1_loss, functools.partial(sobolev_loss, s=-0.5)):
        got = np.asarray(loss(t.at[0, 0, 3].set(jnp.inf), t, num_spatial_dims=1, reduction="none"))
        assert got[0] == np.inf and got[1] == 0.0, got
        got = np.asarray(loss(t.at[0, 0, 3].set(jnp.nan), t, num_spatial_dims=1, reduction="none"))
        assert np.isnan(got[0]) and got[1] == 0.0, got


def test_h1_and_sobolev_closed_forms_on_sinusoids(x64):
    n = 32
    x = _x(n)
    target = np.sin(2 * np.pi * 1 * x)[None, None]
    err = 0.1 * np.cos(2 * np.pi * 4 * x)[None, None]
    pred = target + err
    # ||a sin(2 pi m x)||_{H1}^2 = a^2/2 (1 + (2 pi m)^2).
    want = np.sqrt(0.01 * (1 + (8 * np.pi) ** 2) / (1 + (2 * np.pi) ** 2))
    assert_close(h1_1(jnp.asarray(pred), jnp.asarray(target)), want, jnp.float64)
    for s in (-1.0, -0.5, 1.0):
        want = np.sqrt(0.01 * (1 + (8 * np.pi) ** 2) ** s / (1 + (2 * np.pi) ** 2) ** s)
        assert_close(sob1(jnp.asarray(pred), jnp.asarray(target), s=s), want, jnp.float64)
    hom = sob1(jnp.asarray(pred), jnp.asarray(target), s=-1.0, homogeneous=True)
    assert_close(hom, np.sqrt(0.01 * (8 * np.pi) ** -2 / (2 * np.pi) ** -2), jnp.float64)
    # s = 0 is relative L2.
    assert_close(
        sob1(jnp.asarray(pred), jnp.asarray(target), s=0.0),
        lp1(jnp.asarray(pred), jnp.asarray(target)),
        jnp.float64,
    )


def test_h1_counts_the_gradient_of_a_checkerboard_error(x64):
    # The Nyquist mode a (-1)^j has Fourier coefficient a and |k| = pi n (unit box), so by
    # Parseval ||e||_{H1}^2 = a^2 (1 + (pi n)^2); ||sin 2 pi x||_{H1}^2 = (1 + 4 pi^2) / 2.
    # spectral_derivative drops that bin, which gave 0.022 here (less than the L2 loss 0.141).
    n, a = 32, 0.1
    target = np.sin(2 * np.pi * _x(n))[None, None]
    err = a * (-1.0) ** np.arange(n)[None, None]
    pred, target = jnp.asarray(target + err), jnp.asarray(target)
    l2 = float(lp1(pred, target))
    h1 = float(h1_1(pred, target))
    want = np.sqrt(a**2 * (1 + (np.pi * n) ** 2) / (0.5 * (1 + 4 * np.pi**2)))  # 2.2347
    assert_close(l2, np.sqrt(2) * a, jnp.float64)
    assert_close(h1, want, jnp.float64)
    assert h1 >= l2
    # The same in 2-d, checkerboard along the first (fftfreq) axis, box (2, 3).
    nx, ny = 8, 6
    xx, yy = np.meshgrid(_x(nx) * 2.0, _x(ny) * 3.0, indexing="ij")
    t2 = np.sin(2 * np.pi * yy / 3.0)[None, None]
    e2 = a * (-1.0) ** np.arange(nx)[:, None] * np.ones((nx, ny))
    got = h1_loss(jnp.asarray(t2 + e2), jnp.asarray(t2), num_spatial_dims=2, lengths=(2.0, 3.0))
    want = np.sqrt(a**2 * (1 + (np.pi * nx / 2.0) ** 2) / (0.5 * (1 + (2 * np.pi / 3) ** 2)))
    assert_close(got, want, jnp.float64)


def test_h1_without_nyquist_content_matches_spectral_derivatives(x64):
    # Away from the Nyquist bin, Parseval and ||u||^2 + sum_j ||d_j u||^2 (spectral derivatives)
    # are the same number: the previous definition, on random band-limited fields.
    rng = np.random.default_rng(3)
    shape = (3, 2, 12, 10)

    def band_limited():
        c = np.fft.rfftn(rng.normal(size=shape), axes=(2, 3))
        c[..., 6, :] = 0.0  # Nyquist of axis 0
        c[..., -1] = 0.0  # Nyquist of the last axis
        return jnp.asarray(np.fft.irfftn(c, s=shape[2:], axes=(2, 3)))

    t, e = band_limited(), band_limited()
    lengths = (1.5, 0.7)

    def old_sq(u):
        total = jnp.sum(u**2, axis=(1, 2, 3))
        for orders in ((1, 0), (0, 1)):
            du = spectral_derivative(u, orders, lengths=lengths)
            total = total + jnp.sum(du**2, axis=(1, 2, 3))
        return total

    want = jnp.sqrt(old_sq(e) / old_sq(t))
    got = h1_loss(t + e, t, num_spatial_dims=2, lengths=lengths, reduction="none")
    assert_close(got, want, jnp.float64)
    assert_close(
        got,
        sobolev_loss(t + e, t, num_spatial_dims=2, s=1.0, lengths=lengths, reduction="none"),
        jnp.float64,
    )


def test_h1_2d_with_lengths(x64):
    nx, ny = 16, 12
    x, y = np.meshgrid(_x(nx) * 2.0, _x(ny) * 3.0, indexing="ij")
    target = np.sin(2 * np.pi * x / 2.0)[None, None]
    err = 0.2 * np.cos(2 * np.pi * 2 * y / 3.0)[None, None]
    got = h1_loss(
        jnp.asarray(target + err), jnp.asarray(target), num_spatial_dims=2, lengths=(2.0, 3.0)
    )
    want = np.sqrt(0.04 * (1 + (4 * np.pi / 3) ** 2) / (1 + np.pi**2))
    assert_close(got, want, jnp.float64)


def test_gradients_finite_and_jit(key):
    t = jax.random.normal(key, (4, 1, 32))
    p = t + 0.1 * jax.random.normal(jax.random.key(1), t.shape)
    for loss in (lp1, h1_1, lambda a, b: sob1(a, b, s=-1.0)):
        g = jax.jit(jax.grad(loss))(p, t)
        assert bool(jnp.all(jnp.isfinite(g)))
        assert_close(jax.jit(loss)(p, t), loss(p, t), jnp.float32)
    assert float(lp1(t, t)) == 0.0


# Losses under test, with "plain" float64 formulas of one example (channel and spatial axes)
# for the gradient reference: the p-norm written out, and Parseval on the full fft.
def _plain_lp(p):
    def f(e, t):
        return jnp.sum(jnp.abs(e) ** p) ** (1 / p) / jnp.sum(jnp.abs(t) ** p) ** (1 / p)

    return f


def _plain_sobolev(s, homogeneous=False):
    def f(e, t):
        n = e.shape[-1]
        k2 = (2 * np.pi * np.fft.fftfreq(n, d=1.0 / n)) ** 2
        w = np.where(k2 > 0, k2, 1.0) ** s * (k2 > 0) if homogeneous else (1 + k2) ** s
        w = jnp.asarray(w)

        def sq(u):
            c = jnp.fft.fft(u, axis=-1)
            return jnp.sum(w[None] * (c.real**2 + c.imag**2))

        return jnp.sqrt(sq(e) / sq(t))

    return f


_CASES = [
    *[(f"lp p={p}", functools.partial(lp1, p=p), _plain_lp(p)) for p in (1.0, 2.0, 3.0)],
    (
        "lp p=inf",
        functools.partial(lp1, p=math.inf),
        lambda e, t: jnp.max(jnp.abs(e)) / jnp.max(jnp.abs(t)),
    ),
    ("h1", h1_1, _plain_sobolev(1.0)),
    ("sobolev s=-1", functools.partial(sob1, s=-1.0), _plain_sobolev(-1.0)),
    ("sobolev s=1", functools.partial(sob1, s=1.0), _plain_sobolev(1.0)),
    (
        "sobolev s=-1 hom",
        functools.partial(sob1, s=-1.0, homogeneous=True),
        _plain_sobolev(-1.0, homogeneous=True),
    ),
]


@pytest.mark.parametrize("name,loss,plain", _CASES, ids=[c[0] for c in _CASES])
def test_gradient_at_zero_error_is_zero_and_elsewhere_unchanged(name, loss, plain, x64):
    rng = np.random.default_rng(7)
    t = jnp.asarray(rng.normal(size=(3, 2, 16)))
    e = jnp.asarray(rng.normal(size=(3, 2, 16)))

    @jax.jit  # one program for every gradient below (eager, each op compiled on its own)
    def gradients(t, e):
        out = {"exact": jax.grad(loss, argnums=(0, 1))(t, t)}
        pred = t + e.at[1].set(0.0)
        out["one"] = jax.grad(loss)(pred, t)
        out["one_want"] = [jax.grad(plain)(pred[b] - t[b], t[b]) / 3 for b in (0, 2)]
        pred = t + e
        out["none"] = jax.grad(loss)(pred, t)
        out["none_want"] = jax.vmap(jax.grad(lambda q, tt: plain(q - tt, tt)))(pred, t) / 3
        out["target"] = jax.grad(loss, argnums=1)(pred, t)
        out["target_want"] = jax.vmap(jax.grad(lambda tt, q: plain(q - tt, tt)))(t, pred) / 3
        return out

    out = gradients(t, e)
    # All exact: the zero subgradient (was NaN: sqrt and ** (2/p) at 0), in both arguments.
    g_pred, g_target = out["exact"]
    assert np.all(np.asarray(g_pred) == 0.0), name
    assert np.all(np.asarray(g_target) == 0.0), name
    # Only example 1 exact: zero there, the plain-formula gradient (mean over B=3) elsewhere.
    g = np.asarray(out["one"])
    assert np.all(np.isfinite(g)), name
    assert np.all(g[1] == 0.0), name
    for b, want in zip((0, 2), out["one_want"], strict=True):
        assert_close(g[b], want, jnp.float64, rtol=1e-10, what=f"{name} example {b}")
    # No example exact: the gradient of the plain formula (unchanged away from zero).
    assert_close(out["none"], out["none_want"], jnp.float64, rtol=1e-10, what=name)
    assert_close(
        out["target"], out["target_want"], jnp.float64, rtol=1e-10, what=f"{name} d/dtarget"
    )


@pytest.mark.parametrize("name,loss,plain", _CASES, ids=[c[0] for c in _CASES])
def test_a_nan_prediction_is_not_a_zero_loss(name, loss, plain):
    """A NaN (or inf) in one example's prediction makes that example's loss non-finite, never 0
    (the zero-subgradient guards test `!= 0`, so NaN passes through them)."""
    t = jnp.ones((2, 1, 8))
    for bad in (jnp.nan, jnp.inf):
        per = jax.vmap(lambda p, tt: loss(p[None], tt[None]))(t.at[0, 0, 3].set(bad), t)
        assert not bool(jnp.isfinite(per[0])), (name, bad)
        assert float(per[1]) == 0.0, name


@pytest.mark.parametrize("name,loss,plain", _CASES, ids=[c[0] for c in _CASES])
def test_gradient_finite_with_one_exact_example_float32(name, loss, plain, key):
    t = jax.random.normal(key, (2, 1, 16))
    for pred in (t, t.at[1].add(0.1)):
        g = jax.jit(jax.grad(loss))(pred, t)
        assert g.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(g))), name
        assert bool(jnp.all(g[0] == 0.0)), name


def test_numpy_inputs(x64):
    rng = np.random.default_rng(1)
    t, e = rng.normal(size=(2, 1, 8, 6)), rng.normal(size=(2, 1, 8, 6))
    for loss in (relative_lp_loss, h1_loss, sobolev_loss):
        got = loss(t + e, t, num_spatial_dims=2)
        want = loss(jnp.asarray(t + e), jnp.asarray(t), num_spatial_dims=2)
        assert got.dtype == jnp.float64
        assert_close(got, want, jnp.float64)


def test_num_spatial_dims_is_required(library_errors):
    a = jnp.ones((2, 1, 8, 8))
    for loss in (relative_lp_loss, h1_loss, sobolev_loss):
        with pytest.raises(TypeError, match="num_spatial_dims"):
            loss(a, a)


def test_errors(library_errors):
    a = jnp.ones((2, 1, 8))
    with pytest.raises(ValueError, match="same shape"):
        lp1(a, jnp.ones((2, 1, 9)))
    with pytest.raises(ValueError, match="spatial axes"):
        h1_loss(jnp.ones((8,)), jnp.ones((8,)), num_spatial_dims=1)
    with pytest.raises(ValueError, match="num_spatial_dims"):
        sobolev_loss(a, a, num_spatial_dims=0)
    with pytest.raises(ValueError, match="reduction"):
        lp1(a, a, reduction="max")
    with pytest.raises(ValueError, match=r"`p` must be .*>= 1.*got 0.5"):
        lp1(a, a, p=0.5)
    with pytest.raises(ValueError, match=r"`p` must be .*got nan"):
        lp1(a, a, p=float("nan"))
    with pytest.raises(ValueError, match=r"`p` must be .*got -inf"):
        lp1(a, a, p=-math.inf)
    with pytest.raises(TypeError, match=r"`p` must be a real number.*got str"):
        lp1(a, a, p="2")
    with pytest.raises(TypeError, match="floating"):
        lp1(a.astype(jnp.int32), a)


@pytest.mark.parametrize("loss", [relative_lp_loss, h1_loss, sobolev_loss])
def test_numpy_float64_without_x64_is_float32_without_warning(loss):
    """NumPy float64 arrays (the default NumPy dtype) with x64 off compute in float32, like the
    same values given as float32, and JAX's "will be truncated" warning is not raised."""
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(2, 3, 16)), rng.normal(size=(2, 3, 16))
    assert not jax.config.jax_enable_x64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = loss(pred, target, num_spatial_dims=1)
    assert got.dtype == jnp.float32
    want = loss(pred.astype(np.float32), target.astype(np.float32), num_spatial_dims=1)
    assert_close(got, want, jnp.float32)


@pytest.mark.parametrize("name,loss,plain", _CASES, ids=[c[0] for c in _CASES])
def test_zero_target_is_finite_not_a_division_by_zero(name, loss, plain, x64):
    """An example with a zero target: its denominator is clamped to sqrt(tiny), so it scores
    ||pred|| / sqrt(tiny): finite (no inf/NaN), 1-homogeneous in pred, with a finite gradient;
    0 where pred is 0 too; the other examples of the batch are unchanged."""
    rng = np.random.default_rng(7)
    t = jnp.asarray(rng.normal(size=(3, 2, 16))).at[0].set(0.0)
    e = jnp.asarray(rng.normal(size=(3, 2, 16)))
    eps = float(np.sqrt(np.finfo(np.float64).tiny))
    per = np.asarray(loss(t + e, t, reduction="none"))
    assert np.all(np.isfinite(per)) and per[0] > 1e100, (name, per)
    # ~1e154: ratios, not assert_close (whose norms would square them past float64)
    assert abs(float(loss(t + 3 * e, t, reduction="none")[0]) / (3 * per[0]) - 1) < 1e-12, name
    for b in (1, 2):
        assert_close(per[b], plain(e[b], t[b]), jnp.float64, what=name)
    if name == "lp p=2.0":
        assert abs(per[0] * eps / np.linalg.norm(np.asarray(e[0])) - 1) < 1e-12
    assert float(loss(t, t, reduction="none")[0]) == 0.0, name
    assert bool(jnp.all(jnp.isfinite(jax.grad(loss)(t + e, t)))), name


def _direct_sobolev_sq(u, s, lengths, homogeneous):
    """||u||_{H^s}^2 of one (C, n1, n2) field from explicit DFT sums over every frequency pair
    of the grid (fftfreq on both axes, Nyquist included; no rfft half-spectrum bookkeeping):
    |Omega| sum_k w(k) |c_k|^2 with c_k = mean(u e^{-i k.x}), w = (1 + |k|^2)^s or |k|^{2s}."""
    n1, n2 = u.shape[1:]
    e1 = np.exp(-2j * np.pi * np.outer(np.fft.fftfreq(n1, 1 / n1), np.arange(n1)) / n1) / n1
    e2 = np.exp(-2j * np.pi * np.outer(np.fft.fftfreq(n2, 1 / n2), np.arange(n2)) / n2) / n2
    c = np.einsum("ai,bj,cij->cab", e1, e2, u)
    k1 = 2 * np.pi * np.fft.fftfreq(n1, 1 / n1) / lengths[0]
    k2 = 2 * np.pi * np.fft.fftfreq(n2, 1 / n2) / lengths[1]
    kk = k1[:, None] ** 2 + k2[None, :] ** 2
    w = np.where(kk > 0, kk, 1.0) ** s * (kk > 0) if homogeneous else (1 + kk) ** s
    return lengths[0] * lengths[1] * np.sum(w * np.abs(c) ** 2)


@pytest.mark.parametrize("shape", [(8, 6), (7, 9)])
def test_sobolev_and_h1_match_direct_dft_sums_2d(x64, shape):
    """Random 2-d fields on an anisotropic box, even (Nyquist bins on both axes) and odd sizes:
    the Parseval losses equal the direct sums, for H^-1/2, homogeneous H^-1, H^-2 and H1."""
    rng = np.random.default_rng(5)
    t, e = rng.normal(size=(2, 2, *shape)), 0.3 * rng.normal(size=(2, 2, *shape))
    lengths = (1.5, 0.7)
    kw = dict(num_spatial_dims=2, lengths=lengths, reduction="none")
    for s, hom in ((-0.5, False), (-1.0, True), (-2.0, False), (1.0, False)):
        want = [
            np.sqrt(
                _direct_sobolev_sq(e[b], s, lengths, hom)
                / _direct_sobolev_sq(t[b], s, lengths, hom)
            )
            for b in range(2)
        ]
        got = sobolev_loss(jnp.asarray(t + e), jnp.asarray(t), s=s, homogeneous=hom, **kw)
        assert_close(got, want, jnp.float64, what=f"s={s} homogeneous={hom}")
        if s == 1.0:
            assert_close(h1_loss(jnp.asarray(t + e), jnp.asarray(t), **kw), want, jnp.float64)


def test_h1_loss_grad_in_the_length_closed_form(x64):
    """lengths was refused as a JAX array: no d/dL of a loss, no vmap over domain sizes.
    target sin(2 pi k x / L) and error a sin(2 pi m x / L) on a fixed grid: the relative H1
    error is a sqrt(g), g = (1 + kappa_m^2) / (1 + kappa_k^2), kappa_j = 2 pi j / L."""
    n, k, m, a, ell = 16, 1, 3, 0.1, 1.7
    t = np.sin(2 * np.pi * k * _x(n))[None, None]
    e = a * np.sin(2 * np.pi * m * _x(n))[None, None]
    km2, kk2 = (2 * np.pi * m / ell) ** 2, (2 * np.pi * k / ell) ** 2
    g = (1 + km2) / (1 + kk2)
    dg = (-2 * km2 / ell * (1 + kk2) + (1 + km2) * 2 * kk2 / ell) / (1 + kk2) ** 2
    t, e = jnp.asarray(t), jnp.asarray(e)
    loss, grad = jax.jit(jax.value_and_grad(lambda L: h1_1(t + e, t, lengths=L)))(jnp.float64(ell))
    assert_close(loss, a * np.sqrt(g), jnp.float64)
    assert_close(grad, a * dg / (2 * np.sqrt(g)), jnp.float64)


def test_losses_vmap_and_jit_over_lengths():
    """vmap over a batch of domain lengths (one per axis) equals a loop of jitted calls; the
    traced length gives the Python-float result (the closure compiles it as a constant)."""
    rng = np.random.default_rng(0)
    t = jnp.asarray(rng.normal(size=(2, 1, 8, 6)), jnp.float32)
    p = t + jnp.asarray(0.1 * rng.normal(size=(2, 1, 8, 6)), jnp.float32)

    def losses(L):
        return (
            h1_loss(p, t, num_spatial_dims=2, lengths=L),
            sobolev_loss(p, t, num_spatial_dims=2, s=-1.0, lengths=L, homogeneous=True),
        )

    ells = jnp.asarray([[1.0, 2.0], [0.5, 3.0]])
    batched = jax.jit(jax.vmap(losses))(ells)
    jitted = jax.jit(losses)
    for i in range(2):
        for b, w in zip(batched, jitted(ells[i]), strict=True):
            assert_close(b[i], w, jnp.float32)
    for got, w in zip(jitted(ells[1]), jax.jit(lambda: losses((0.5, 3.0)))(), strict=True):
        assert_close(got, w, jnp.float32)


@pytest.mark.parametrize("scale", [1e-30, 1e-15, 1e15, 1e30])
def test_relative_losses_do_not_depend_on_the_fields_scale(scale):
    """The ratios are scale-free, in float32 too: the Lp denominator was clamped below sqrt(tiny)
    (2.6e-11 for a relative error of 0.5 at 1e-30), and the squared Parseval sums of h1_loss and
    sobolev_loss overflowed (NaN at 1e30) or underflowed (0, with no gradient, at 1e-30)."""
    x = jnp.linspace(0.0, 1.0, 16, endpoint=False)
    target = jnp.stack([jnp.sin(2 * jnp.pi * x), jnp.cos(4 * jnp.pi * x)])[:, None, :]
    pred = target * jnp.asarray([[[1.5]], [[0.8]]]) + 0.1
    losses = {
        "lp": lambda p, t: relative_lp_loss(p, t, num_spatial_dims=1, reduction="none"),
        "h1": lambda p, t: h1_loss(p, t, num_spatial_dims=1, reduction="none"),
        "h-1": lambda p, t: sobolev_loss(p, t, s=-1.0, num_spatial_dims=1, reduction="none"),
        "h2": lambda p, t: sobolev_loss(p, t, s=2.0, num_spatial_dims=1, reduction="none"),
    }
    s = jnp.float32(scale)
    for name, loss in losses.items():
        np.testing.assert_allclose(loss(pred * s, target * s), loss(pred, target), rtol=2e-5)
        grad = jax.grad(lambda p: jnp.sum(loss(p, target * s)))(pred * s)  # noqa: B023
        want = jax.grad(lambda p: jnp.sum(loss(p, target)))(pred)  # noqa: B023
        assert_close(grad * s, want, rtol=5e-4, what=name)  # H2 weights reach 6e6
