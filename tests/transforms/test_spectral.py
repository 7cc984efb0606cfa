"""Spectral helpers: closed-form Sobolev norms, exact derivatives, mode truncation/padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.transforms import (
    conv_fft_size,
    irfft_trunc,
    next_fast_len,
    pad_modes,
    rfft_padded,
    sobolev_norm,
    spectral_derivative,
    truncate_modes,
    wavenumbers,
)
from tests.helpers import assert_close


def _is_7_smooth(n):
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def test_next_fast_len_is_minimal_7_smooth():
    for n in range(1, 1200):
        m = next_fast_len(n)
        assert m >= n and _is_7_smooth(m)
        assert not any(_is_7_smooth(j) for j in range(n, m))


def test_fft_sizes_refuse_floats_and_bools_whatever_was_cached(library_errors):
    # next_fast_len(np.int64(11)) used to cache a key equal to 11.0, which then skipped the check
    assert next_fast_len(np.int64(11)) == 12 and next_fast_len(np.int64(1)) == 1
    for bad in (11.0, True):
        with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
            next_fast_len(bad)
    with pytest.raises(ValueError, match=r"`length` must be an integer >= 1; got 10.7"):
        conv_fft_size(10.7, 3)
    with pytest.raises(ValueError, match=r"`length` must be an integer >= 1; got -5"):
        conv_fft_size(-5, 3, causal=False)
    with pytest.raises(ValueError, match=r"`kernel_size` must be an integer >= 1; got 3.9"):
        conv_fft_size(16, 3.9)
    with pytest.raises(TypeError, match=r"`causal` must be a bool"):
        conv_fft_size(16, 3, causal="no")
    assert conv_fft_size(np.int64(16), np.int64(3)) == next_fast_len(18)


def test_conv_fft_size_avoids_wraparound():
    assert conv_fft_size(1000, 25) >= 1024
    assert conv_fft_size(97, 97, causal=False) == 97


@pytest.mark.parametrize("length,n", [(1, 1), (7, 7), (7, 16), (9, 5)])
def test_rfft_padded_and_irfft_trunc_equal_the_explicit_dft(x64, length, n):
    """The rfft of x zero-padded (or cut) to n is sum_j x_j exp(-2 pi i k j / n), k <= n // 2,
    and irfft_trunc inverts it on the first min(length, n) samples (odd, even, size 1)."""
    x = np.random.default_rng(0).standard_normal((2, length))
    xp = np.zeros((2, n))
    xp[:, : min(length, n)] = x[:, :n]
    k = np.arange(n // 2 + 1)
    dft = xp @ np.exp(-2j * np.pi * np.outer(np.arange(n), k) / n)
    got = rfft_padded(jnp.asarray(x), n)
    assert got.dtype == jnp.complex128
    assert_close(got, dft, jnp.float64)
    keep = min(length, n)
    back = irfft_trunc(got, n, keep)
    assert back.shape == (2, keep) and back.dtype == jnp.float64
    assert_close(back, xp[:, :keep], jnp.float64)


def test_rfft_padded_and_irfft_trunc_refuse_bad_input(library_errors):
    """They had no checks: length=-1 returned n - 1 samples, length > n returned n, a
    spectrum of the wrong length (another n) was cut or zero-padded, a real spectrum or an
    int signal was cast, all silently; a float n failed inside range()."""
    x = jnp.ones((3, 7))
    spec = rfft_padded(x, 16)
    assert spec.shape == (3, 9) and spec.dtype == jnp.complex64
    for bad in (-1, 0, 2.0, True):
        with pytest.raises(ValueError, match=r"`length` must be an integer >= 1"):
            irfft_trunc(spec, 16, bad)
        with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
            rfft_padded(x, bad)
    with pytest.raises(ValueError, match=r"`length`=17 is more than the FFT size `n`=16"):
        irfft_trunc(spec, 16, 17)
    with pytest.raises(ValueError, match=r"`x_f` has 9 frequency bins .* expects n // 2 \+ 1 = 17"):
        irfft_trunc(spec, 32, 7)
    with pytest.raises(
        TypeError, match=r"`x_f` must be complex64 or complex128.*got dtype float32"
    ):
        irfft_trunc(spec.real, 16, 7)
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*int32"):
        rfft_padded(jnp.ones(4, jnp.int32), 8)
    with pytest.raises(TypeError, match=r"`x` must be a real floating-point array.*complex64"):
        rfft_padded(spec, 8)
    with pytest.raises(TypeError, match=r"`x` must be float32 or float64.*bfloat16"):
        rfft_padded(jnp.ones(4, jnp.bfloat16), 8)
    with pytest.raises(ValueError, match=r"`x` is a scalar"):
        rfft_padded(jnp.asarray(1.0), 8)


def _grid(n, length=1.0):
    return np.arange(n) / n * length


@pytest.mark.parametrize("s", [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
def test_sobolev_norm_of_sinusoids_1d(x64, s):
    n = 64
    x = _grid(n)
    terms = [(1.3, 1, "sin"), (-0.7, 4, "cos"), (0.25, 9, "sin")]
    u = sum(a * (np.sin if f == "sin" else np.cos)(2 * np.pi * m * x) for a, m, f in terms)
    u = u + 0.4  # a mean: weight (1 + 0)^s = 1
    expected_sq = 0.4**2 + sum(a**2 / 2 * (1 + (2 * np.pi * m) ** 2) ** s for a, m, _ in terms)
    got = sobolev_norm(jnp.asarray(u), s, squared=True)
    assert_close(got, expected_sq, jnp.float64)
    hom = sobolev_norm(jnp.asarray(u), s, homogeneous=True)
    expected_hom = np.sqrt(sum(a**2 / 2 * (2 * np.pi * m) ** (2 * s) for a, m, _ in terms))
    assert_close(hom, expected_hom, jnp.float64)


def test_sobolev_norm_2d_and_lengths(x64):
    nx, ny, lx, ly = 32, 24, 2.0, 3.0
    x = _grid(nx, lx)[:, None]
    y = _grid(ny, ly)[None, :]
    kx, ky = 2 * np.pi * 3 / lx, 2 * np.pi * 2 / ly
    u = 2.0 * np.sin(kx * x) * np.cos(ky * y)  # four Fourier modes of |c|^2 = (2/4)^2
    s = -0.75
    expected_sq = lx * ly * 4 * 0.25 * (1 + kx**2 + ky**2) ** s
    got = sobolev_norm(jnp.asarray(u), s, num_spatial_dims=2, lengths=(lx, ly), squared=True)
    assert_close(got, expected_sq, jnp.float64)


def test_sobolev_l2_is_parseval_and_batched(key):
    u = jax.random.normal(key, (3, 5, 40), jnp.float32)
    got = sobolev_norm(u, 0.0)
    assert got.shape == (3, 5)
    assert_close(got, np.sqrt(np.mean(np.asarray(u, np.float64) ** 2, axis=-1)), jnp.float32)
    # Odd lengths: no Nyquist bin.
    u_odd = u[..., :39]
    assert_close(
        sobolev_norm(u_odd, 0.0),
        np.sqrt(np.mean(np.asarray(u_odd, np.float64) ** 2, -1)),
        jnp.float32,
    )


@pytest.mark.parametrize("n", [32, 33])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_spectral_derivative_1d_exact(x64, n, order):
    length = 2.5
    x = _grid(n, length)
    w = 2 * np.pi * 3 / length
    u = np.sin(w * x) + 0.5 * np.cos(2 * w * x)
    # d^p/dx^p sin(wx) = w^p sin(wx + p pi/2)
    expected = w**order * np.sin(w * x + order * np.pi / 2) + 0.5 * (2 * w) ** order * np.cos(
        2 * w * x + order * np.pi / 2
    )
    got = spectral_derivative(jnp.asarray(u), order, lengths=length)
    assert_close(got, expected, jnp.float64)


def _dft_derivative_matrix(n, order, ell):
    """F^-1 diag((2 pi i k / L)^o) F from explicit DFT sums (Nyquist zeroed for odd o, even n)."""
    j = np.arange(n)
    k = np.fft.fftfreq(n, 1.0 / n)
    f = np.exp(-2j * np.pi * np.outer(j, j) / n)
    mult = (2j * np.pi * k / ell) ** order
    if order % 2 and n % 2 == 0:
        mult[n // 2] = 0.0
    return (np.conj(f).T @ np.diag(mult) @ f / n).real


def test_spectral_derivative_is_the_dft_differentiation_matrix(x64):
    """Tiny sizes (1, 2, 3) against the explicit DFT matrix D (n = 2: the Nyquist bin of a first
    derivative zeroed); the gradient of <w, D u> is the
    transpose, D^T w = (-1)^o D w."""
    ell = 2.5
    rng = np.random.default_rng(0)
    # one compiled program per case, not one per eager primitive
    deriv = jax.jit(spectral_derivative, static_argnums=1, static_argnames="lengths")
    for n, o in ((1, 1), (2, 1), (3, 3)):
        u = rng.standard_normal((2, n))
        got = deriv(jnp.asarray(u), o, lengths=ell)
        assert_close(got, u @ _dft_derivative_matrix(n, o, ell).T, jnp.float64, what=f"{n}, {o}")
    u, w = jnp.asarray(rng.standard_normal((2, 3))), jnp.asarray(rng.standard_normal((2, 3)))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(w * deriv(v, 3, lengths=ell))))(u)
    assert_close(grad, np.asarray(w) @ _dft_derivative_matrix(3, 3, ell), jnp.float64)
    assert_close(grad, -deriv(w, 3, lengths=ell), jnp.float64)


def test_spectral_derivative_2d_mixed_and_float32():
    n = 32
    x = _grid(n)[:, None]
    y = _grid(n)[None, :]
    u = np.sin(2 * np.pi * 2 * x) * np.cos(2 * np.pi * 3 * y)
    expected = (
        (2 * np.pi * 2) * np.cos(2 * np.pi * 2 * x) * (-(2 * np.pi * 3)) * np.sin(2 * np.pi * 3 * y)
    )
    got = spectral_derivative(jnp.asarray(u, jnp.float32), (1, 1))
    assert got.dtype == jnp.float32
    assert_close(got, expected, jnp.float32, rtol=1e-5)


def test_spectral_derivative_3d(x64):
    n = 12
    g = _grid(n)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    u = np.cos(2 * np.pi * x) * np.sin(2 * np.pi * 2 * y) * np.cos(2 * np.pi * 3 * z)
    expected = -((2 * np.pi * 3) ** 2) * u
    assert_close(spectral_derivative(jnp.asarray(u), (0, 0, 2)), expected, jnp.float64)


@pytest.mark.parametrize(
    "spatial,modes", [((16,), (5,)), ((16, 12), (4, 3)), ((8, 10, 12), (2, 3, 7))]
)
def test_truncate_then_pad_keeps_exactly_the_chosen_modes(key, spatial, modes):
    d = len(spatial)
    x = jax.random.normal(key, (2,) + spatial, jnp.float32)
    axes = tuple(range(1, d + 1))
    x_hat = jnp.fft.rfftn(x, axes=axes)
    t = truncate_modes(x_hat, modes)
    assert t.shape == (2,) + tuple(2 * m for m in modes[:-1]) + (modes[-1],)
    padded = pad_modes(t, spatial)
    assert padded.shape == x_hat.shape
    # Mask of kept frequencies built independently from fftfreq.
    mask = np.ones(x_hat.shape[1:], bool)
    for i, (n, m) in enumerate(zip(spatial, modes, strict=False)):
        if i == d - 1:
            f = np.arange(n // 2 + 1)
            keep = f < m
        else:
            f = np.fft.fftfreq(n, 1.0 / n).astype(int)
            keep = (f >= -m) & (f < m)
        shape = [1] * d
        shape[i] = keep.size
        mask = mask & keep.reshape(shape)
    np.testing.assert_array_equal(np.asarray(padded), np.where(mask[None], np.asarray(x_hat), 0))


def test_pad_modes_changes_resolution(x64):
    """Band-limited field: truncate on a coarse grid, pad to a fine grid, get the fine samples."""
    coarse, fine = 16, 40
    f = lambda x: np.sin(2 * np.pi * x) + 0.3 * np.cos(2 * np.pi * 3 * x)  # noqa: E731
    u_hat = jnp.fft.rfft(jnp.asarray(f(_grid(coarse)))) / coarse
    up = jnp.fft.irfft(pad_modes(truncate_modes(u_hat, (5,)), (fine,)), n=fine) * fine
    assert_close(up, f(_grid(fine)), jnp.float64)


def test_wavenumbers_shapes():
    kx, ky = wavenumbers((8, 6), (1.0, 2.0))
    assert kx.shape == (8, 1) and ky.shape == (1, 4)
    np.testing.assert_allclose(np.asarray(ky).ravel(), 2 * np.pi * np.arange(4) / 2.0, rtol=1e-6)


def test_errors(key, library_errors):
    x_hat = jnp.fft.rfftn(jax.random.normal(key, (16, 12)), axes=(0, 1))
    with pytest.raises(ValueError, match=r"`modes\[0\]`=9 is out of range .* size 16.*<= 8"):
        truncate_modes(x_hat, (9, 3))
    # the rfft axis of 5 frequencies came from 8 or 9 points: the error named "size 8" alone
    with pytest.raises(
        ValueError,
        match=r"`modes\[1\]`=6 is more than the 5 frequencies of the last \(rfft\) axis of "
        r"`x_hat` \(shape \(6, 5\), a grid of 8 or 9 points\): expected 1 <= modes\[1\] <= 5",
    ):
        truncate_modes(jnp.fft.rfftn(jnp.ones((6, 9))), (2, 6))
    with pytest.raises(ValueError, match=r"`x_hat` has 2 axes, fewer than len\(modes\)=3"):
        truncate_modes(x_hat, (3, 3, 3))
    with pytest.raises(ValueError, match=r"`x_trunc` spatial axes \(3, 4\).*even length"):
        pad_modes(jnp.zeros((3, 4), jnp.complex64), (16, 12))
    # pad_modes has no `modes` argument: the grid too coarse for x_trunc's kept modes is named
    with pytest.raises(
        ValueError,
        match=r"`modes\[1\]`=8 is too many for the `spatial_shape` spatial shape \(16, 12\): "
        r"axis 1 of size 12 holds at most 7 modes",
    ):
        pad_modes(jnp.zeros((4, 8), jnp.complex64), (16, 12))
    with pytest.raises(
        ValueError, match=r"too many for the `spatial_shape` spatial shape \(3, 8\)"
    ):
        pad_modes(jnp.zeros((4, 5), jnp.complex64), (3, 8))
    with pytest.raises(TypeError, match=r"`u` must be a real floating-point array"):
        spectral_derivative(jnp.zeros(8, jnp.int32), 1)
    with pytest.raises(ValueError, match=r"`orders` must be non-negative"):
        spectral_derivative(jnp.zeros(8), -1)
    with pytest.raises(ValueError, match=r"`lengths\[0\]` must be positive and finite; got -1.0"):
        sobolev_norm(jnp.zeros(8), 1.0, lengths=-1.0)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1; got 0"):
        next_fast_len(0)


def _trig_derivative(kind, k, order, x):
    """d^order/dx^order of cos(k x) or sin(k x): k^order * f(k x + order pi/2)."""
    f = np.cos if kind == "cos" else np.sin
    return k**order * f(k * x + order * np.pi / 2)


@pytest.mark.parametrize("orders", [(0, 1), (2, 1), (1, 0), (1, 1), (3, 2)])
def test_spectral_derivative_keeps_nyquist_of_other_axes(x64, orders):
    """Nyquist content on an axis is masked only when that axis' own order is odd: the exact
    derivative sampled on the grid (cos(pi n x + a pi/2) vanishes there for odd a)."""
    nx, ny, lx, ly = 8, 6, 2.0, 1.5
    x = _grid(nx, lx)[:, None]
    y = _grid(ny, ly)[None, :]
    kxn, kyn = np.pi * nx / lx, np.pi * ny / ly  # Nyquist wavenumbers
    kx1, ky1 = 2 * np.pi / lx, 2 * np.pi * 2 / ly
    # (amplitude, (kind, k) along x, (kind, k) along y)
    terms = [
        (1.0, ("cos", kxn), ("sin", ky1)),  # x-Nyquist
        (0.7, ("sin", 2 * kx1), ("cos", kyn)),  # y-Nyquist
        (-0.4, ("cos", kxn), ("cos", kyn)),  # both
        (0.3, ("cos", kx1), ("sin", ky1)),
    ]
    u = sum(a * _trig_derivative(*fx, 0, x) * _trig_derivative(*fy, 0, y) for a, fx, fy in terms)
    ox, oy = orders
    expected = sum(
        a * _trig_derivative(*fx, ox, x) * _trig_derivative(*fy, oy, y) for a, fx, fy in terms
    )
    got = spectral_derivative(jnp.asarray(u), orders, lengths=(lx, ly))
    assert_close(got, expected, jnp.float64)


def _band_limited(f, in_shape, out_shape, modes, in_shape_kw):
    """Sample ``f`` on ``in_shape``, keep ``modes``, evaluate on ``out_shape`` via pad_modes."""
    d = len(in_shape)
    grids = np.meshgrid(*(_grid(n) for n in in_shape), indexing="ij")
    c = jnp.fft.rfftn(jnp.asarray(f(*grids)), norm="forward")
    t = truncate_modes(c, modes)
    padded = pad_modes(t, out_shape, **in_shape_kw)
    assert padded.shape == tuple(out_shape[:-1]) + (out_shape[-1] // 2 + 1,)
    return jnp.fft.irfftn(padded, s=out_shape, axes=tuple(range(d)), norm="forward")


_PI = np.pi


@pytest.mark.parametrize(
    "f,in_shape,out_shape,modes",
    [
        # last-axis Nyquist kept, finer even / odd grid
        (lambda x: 0.3 + np.sin(2 * _PI * x) + np.cos(8 * _PI * x), (8,), (16,), (5,)),
        (lambda x: 0.3 + np.sin(2 * _PI * x) + np.cos(8 * _PI * x), (8,), (13,), (5,)),
        # an interior input frequency that is the Nyquist bin of a coarser output
        (lambda x: np.cos(8 * _PI * x + 0.3) + np.sin(2 * _PI * x), (10,), (8,), (5,)),
        # leading-axis Nyquist, both axes' Nyquist, and a cross term
        (
            lambda x, y: (
                np.cos(8 * _PI * x) * np.cos(2 * _PI * y)
                + np.sin(2 * _PI * x) * np.cos(6 * _PI * y)
                - 0.6 * np.cos(8 * _PI * x) * np.cos(6 * _PI * y)
                + 0.5 * np.cos(2 * _PI * (x + 2 * y) + 0.2)
            ),
            (8, 6),
            (16, 9),
            (4, 4),
        ),
        # only the last axis refined: the leading Nyquist bin stays one
        (
            lambda x, y: np.cos(8 * _PI * x) * np.sin(2 * _PI * y) + np.cos(6 * _PI * y),
            (8, 6),
            (8, 10),
            (4, 4),
        ),
        (
            lambda x, y, z: (
                np.cos(4 * _PI * x) * np.cos(6 * _PI * y) * np.cos(4 * _PI * z)
                + np.sin(2 * _PI * (x + y + z))
                + 0.5 * np.cos(4 * _PI * x) * np.sin(2 * _PI * (y - z))
            ),
            (4, 6, 4),
            (8, 12, 7),
            (2, 3, 3),
        ),
    ],
)
def test_pad_modes_in_shape_evaluates_band_limited_field(x64, f, in_shape, out_shape, modes):
    """With ``in_shape`` a kept Nyquist bin (read as c cos(pi n x)) is resampled correctly on
    another grid: the closed-form function on the output grid."""
    got = _band_limited(f, in_shape, out_shape, modes, {"in_shape": in_shape})
    fine = np.meshgrid(*(_grid(n) for n in out_shape), indexing="ij")
    assert_close(got, f(*fine), jnp.float64)


def test_pad_modes_in_shape_keeps_the_last_axis_nyquist_column_a_cosine(x64):
    """A kept last-axis Nyquist column whose leading-axis content is not Hermitian (FNO keeps
    frequency -m but not +m) was halved as it was: off the input grid the field gained
    0.35 sin(2 pi (2y - x))-type sine terms that vanish on the input grid. It is the cosine
    ``H(x) cos(4 pi y)`` with ``H`` the real part irfftn keeps on the input grid."""
    a = lambda x: np.cos(2 * _PI * x) + 0.7 * np.sin(2 * _PI * x)  # noqa: E731
    f = lambda x, y: 0.2 + a(x) * np.cos(4 * _PI * y)  # noqa: E731
    # modes (1, 3) on (5, 4) keep x-frequencies {0, -1} of the y-Nyquist column: half of a(x)
    kept = lambda x, y: 0.2 + 0.5 * a(x) * np.cos(4 * _PI * y)  # noqa: E731
    # one compiled program per output grid, not one per eager primitive
    band_limited = jax.jit(
        lambda out: _band_limited(f, (5, 4), out, (1, 3), {"in_shape": (5, 4)}), static_argnums=0
    )
    same = band_limited((5, 4))
    assert_close(same, kept(*np.meshgrid(_grid(5), _grid(4), indexing="ij")), jnp.float64)
    got = band_limited((10, 7))
    fine = np.meshgrid(_grid(10), _grid(7), indexing="ij")
    assert_close(got, kept(*fine), jnp.float64)


def test_pad_modes_default_unchanged_and_same_grid(x64, key):
    # Without in_shape the bins are copied: a kept last-axis Nyquist bin (-1)^j comes back
    # doubled on a finer grid (the documented default, which SpectralConv compensates itself).
    f = lambda x: np.cos(8 * _PI * x)  # noqa: E731
    got = _band_limited(f, (8,), (16,), (5,), {})
    np.testing.assert_allclose(np.asarray(got[::2]), 2 * f(_grid(8)), atol=1e-12)
    # in_shape changes nothing on the same grid, nor where no kept bin is a Nyquist bin of
    # only one of the two grids (axis 1 keeps |k| < 3 of 6, refined to 7).
    x_hat = jnp.fft.rfftn(jax.random.normal(key, (8, 6, 10)), norm="forward")
    for modes, out in [((4, 3, 6), (8, 6, 10)), ((4, 2, 6), (8, 7, 10))]:
        t = truncate_modes(x_hat, modes)
        np.testing.assert_array_equal(
            np.asarray(pad_modes(t, out, in_shape=(8, 6, 10))), np.asarray(pad_modes(t, out))
        )


def test_sobolev_norm_gradient_at_zero_is_zero(x64):
    n = 16
    u = np.stack([np.zeros(n), np.sin(2 * np.pi * _grid(n)) + 0.3])
    g = jax.grad(lambda v: jnp.sum(sobolev_norm(v, 0.0)))(jnp.asarray(u))
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_array_equal(np.asarray(g[0]), np.zeros(n))
    # L2 norm sqrt(mean u^2): gradient u / (n ||u||) away from 0.
    norm = np.sqrt(np.mean(u[1] ** 2))
    assert_close(g[1], u[1] / (n * norm), jnp.float64)
    # Homogeneous seminorm of a constant is 0: also the zero subgradient, not NaN.
    gh = jax.grad(lambda v: sobolev_norm(v, -1.0, homogeneous=True))(jnp.full(n, 2.0))
    np.testing.assert_array_equal(np.asarray(gh), np.zeros(n))
    # Away from 0 the gradient is that of sqrt: grad(squared) / (2 norm).
    v = jnp.asarray(u[1])
    g1 = jax.grad(lambda w: sobolev_norm(w, 1.0))(v)
    g2 = jax.grad(lambda w: sobolev_norm(w, 1.0, squared=True))(v)
    assert_close(g1, g2 / (2 * sobolev_norm(v, 1.0)), jnp.float64)


def test_grid_and_length_errors(library_errors):
    with pytest.raises(ValueError, match=r"`spatial_shape\[0\]` must be an integer >= 1; got 0"):
        wavenumbers((0,))
    with pytest.raises(ValueError, match=r"`spatial_shape\[1\]` must be an integer >= 1; got -4"):
        wavenumbers((8, -4))
    for bad in [float("nan"), float("inf"), 0.0]:
        with pytest.raises(
            ValueError, match=rf"`lengths\[1\]` must be positive and finite; got {bad}"
        ):
            spectral_derivative(jnp.zeros((8, 8)), (0, 1), lengths=(1.0, bad))
        with pytest.raises(
            ValueError, match=rf"`lengths\[0\]` must be positive and finite; got {bad}"
        ):
            sobolev_norm(jnp.zeros(8), 1.0, lengths=bad)
    t = jnp.zeros((4, 5), jnp.complex64)
    with pytest.raises(ValueError, match=r"`in_shape` must have one entry per spatial axis \(2\)"):
        pad_modes(t, (16, 16), in_shape=(8,))
    with pytest.raises(
        ValueError, match=r"`modes\[1\]`=5 is too many for the `in_shape` spatial shape \(8, 6\)"
    ):
        pad_modes(t, (16, 16), in_shape=(8, 6))
    with pytest.raises(ValueError, match=r"`in_shape\[0\]` must be an integer >= 1; got 0"):
        pad_modes(t, (16, 16), in_shape=(0, 8))


def test_sobolev_norm_of_a_nan_field_is_nan():
    """The zero-subgradient guard does not turn a NaN field's norm into 0."""
    u = jnp.asarray([[1.0, jnp.nan, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    norm = sobolev_norm(u, 1.0)
    assert bool(jnp.isnan(norm[0])) and float(norm[1]) == 0.0


def test_helpers_name_bad_arguments(library_errors):
    u = jnp.ones((2, 8))
    with pytest.raises(ValueError, match=r"`num_spatial_dims` must be an integer >= 1; got 1.9"):
        sobolev_norm(u, 1.0, num_spatial_dims=1.9)
    with pytest.raises(ValueError, match=r"`num_spatial_dims`=3 is more than the 2 axes of `u`"):
        sobolev_norm(u, 1.0, num_spatial_dims=3)
    with pytest.raises(ValueError, match=r"`s` must be finite; got nan"):
        sobolev_norm(u, float("nan"))
    with pytest.raises(TypeError, match=r"`s` must be a real number; got 'a'"):
        sobolev_norm(u, "a")
    with pytest.raises(TypeError, match=r"`orders` must be non-negative integers; got 1.5"):
        spectral_derivative(u, 1.5)
    with pytest.raises(TypeError, match=r"`modes` must be one int per spatial axis"):
        truncate_modes(jnp.fft.rfft(u), 3)
    # non-integer sizes and modes are named, not truncated (64.5 used to mean 64)
    with pytest.raises(ValueError, match=r"`spatial_shape\[0\]` must be an integer >= 1; got 8.5"):
        wavenumbers((8.5,))
    t = jnp.zeros((4, 3), jnp.complex64)
    with pytest.raises(ValueError, match=r"`spatial_shape\[1\]` must be an integer >= 1; got 16.5"):
        pad_modes(t, (16, 16.5))
    with pytest.raises(
        ValueError, match=r"`spatial_shape` must be a sequence of ints.*e.g. \(16,\) for a 1-d"
    ):
        pad_modes(t, 16)
    with pytest.raises(ValueError, match=r"`modes\[0\]` must be an integer >= 1; got 2.5"):
        truncate_modes(jnp.fft.rfft(u), (2.5,))
    # NumPy integer sizes are sizes
    assert pad_modes(t, np.array([16, 16])).shape == (16, 9)
    assert wavenumbers(np.array([8]))[0].shape == (5,)
    # a traced s still works (the derivative in the smoothness index)
    ds = jax.grad(lambda s: jnp.sum(sobolev_norm(jnp.sin(jnp.arange(8.0)), s)))(1.0)
    assert bool(jnp.isfinite(ds))


@pytest.mark.parametrize("flag", ["homogeneous", "squared"])
@pytest.mark.parametrize("bad", ["False", None, 0, jnp.asarray(True)])
def test_sobolev_norm_flags_must_be_bools(flag, bad, library_errors):
    """homogeneous and squared were taken by truthiness: homogeneous="False" dropped the mean
    and used |k|^(2s), squared=None returned the norm, both silently."""
    with pytest.raises(TypeError, match=rf"`{flag}` must be a Python bool.*got"):
        sobolev_norm(jnp.ones((2, 8)), 1.0, **{flag: bad})


def test_sobolev_norm_refuses_a_complex_s(library_errors):
    with pytest.raises(TypeError, match=r"`s` must be a real number; got 1j"):
        sobolev_norm(jnp.ones((2, 8)), 1j)


@pytest.mark.parametrize("to_array", [np.asarray, jnp.asarray], ids=["numpy", "jax"])
def test_sobolev_norm_checks_a_0d_array_s_as_a_number(to_array, library_errors):
    """A 0-d array s skipped the number checks: a complex one lost its imaginary part (the
    s = 1 norm came back), True was read as 1, NaN and inf gave a NaN or inf norm."""
    u = jnp.sin(2 * jnp.pi * jnp.arange(16.0) / 16)
    for bad, dtype in ((1 + 2j, "complex"), (True, "bool")):
        with pytest.raises(
            TypeError,
            match=rf"`s` must be a real number; got a 0-d array of "
            rf"dtype {dtype}",
        ):
            sobolev_norm(u, to_array(bad))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"`s` must be finite; got -?(nan|inf)"):
            sobolev_norm(u, to_array(np.float32(bad)))
    # a real 0-d array (integer or float) is a smoothness index, as the same Python number
    for good in (np.float32(0.5), np.int32(1)):
        expected = sobolev_norm(u, float(good))
        np.testing.assert_allclose(sobolev_norm(u, to_array(good)), expected, rtol=1e-6)


def test_bools_and_non_numbers_are_not_orders_or_lengths(library_errors):
    """orders=True was a first derivative and lengths=True a unit domain, silently; a string or
    None as lengths failed inside NumPy with a message naming nothing. (A real JAX array is a
    length now: see test_lengths_may_be_jax_arrays.)"""
    u = jnp.ones((4, 8))
    for bad in (True, np.bool_(False)):
        with pytest.raises(TypeError, match=r"`orders` must be non-negative integers; got"):
            spectral_derivative(u, bad)
    for bad in (True, "a", None, (1.0, "b"), (1.0, False), (1.0, jnp.asarray(True))):
        with pytest.raises(TypeError, match=r"`lengths` must be a real number or a sequence"):
            spectral_derivative(u, (1, 1), lengths=bad)
        with pytest.raises(TypeError, match=r"`lengths` must be a real number or a sequence"):
            sobolev_norm(u, 1.0, num_spatial_dims=2, lengths=bad)
        with pytest.raises(TypeError, match=r"`lengths` must be a real number or a sequence"):
            wavenumbers((4, 8), bad)
    # NumPy numbers and arrays are numbers
    (k,) = wavenumbers((4,), np.float64(2.0))
    assert_close(k, 2 * np.pi * np.arange(3) / 2.0, jnp.float32)  # rfft axis: k = 0, 1, 2
    assert wavenumbers((4, 8), np.array([1.0, 2.0]))[1].shape == (1, 5)


def test_mode_helpers_refuse_non_float_spectra(library_errors):
    """An int spectrum was sliced and padded as int (with in_shape its halved Nyquist bin
    became 0), a list or None failed with AttributeError naming nothing."""
    for bad, got in ((jnp.arange(5), "int32"), ([1.0, 2.0, 3.0], "list"), (None, "NoneType")):
        with pytest.raises(TypeError, match=rf"`x_hat` must be .*floating-point or complex.*{got}"):
            truncate_modes(bad, (2,))
        with pytest.raises(
            TypeError, match=rf"`x_trunc` must be .*floating-point or complex.*{got}"
        ):
            pad_modes(bad, (8,), in_shape=(4,))


def test_empty_orders_are_refused(library_errors):
    """No derivative axis is an error naming `orders` (it failed inside zip() with 'argument 2
    is shorter than argument 1')."""
    for orders in ((), []):
        with pytest.raises(ValueError, match=r"`orders` must give at least one spatial axis"):
            spectral_derivative(jnp.ones((4, 8)), orders)


def test_wavenumbers_refuse_a_non_floating_dtype(library_errors):
    """The wavenumbers 2 pi k / length need a real floating dtype: int32 truncated them to
    [0, 6, 12, 18, 25] silently, complex64 gave complex wavenumbers."""
    for dtype in (jnp.int32, jnp.complex64, "foo"):
        with pytest.raises(TypeError, match=r"`dtype` must be a real floating-point type"):
            wavenumbers((8,), dtype=dtype)
    (k,) = wavenumbers((8,), dtype=jnp.bfloat16)
    assert k.dtype == jnp.bfloat16


def _sin_norm_sq(length, k, s):
    """``||sin(2 pi k x / L)||_{H^s}^2 = L/2 (1 + kappa^2)^s``, ``kappa = 2 pi k / L``, and its
    derivative in ``L`` with the samples held fixed (``d kappa / dL = -kappa / L``)."""
    kap2 = (2 * np.pi * k / length) ** 2
    q = 0.5 * length * (1 + kap2) ** s
    dq = 0.5 * (1 + kap2) ** s - s * kap2 * (1 + kap2) ** (s - 1)
    return q, dq


def test_sobolev_norm_grad_in_the_length_closed_form(x64):
    """lengths was refused as a JAX array, so d/dL of a norm could not be taken."""
    n, k, ell, s = 16, 3, 1.7, -0.5
    row = np.sin(2 * np.pi * k * np.arange(n) / n)
    q, dq = _sin_norm_sq(ell, k, s)
    g = jax.jit(jax.grad(lambda L: sobolev_norm(jnp.asarray(row), s, lengths=L)))(jnp.float64(ell))
    assert g.dtype == jnp.float64
    assert_close(g, dq / (2 * np.sqrt(q)), jnp.float64)
    # 2-d, one length per axis as a (2,) array; the field is constant along y, so the squared
    # norm is Ly times the 1-d one
    ly = 0.6
    u2 = jnp.asarray(np.repeat(row[:, None], 4, axis=1))
    g2 = jax.jit(
        jax.grad(lambda L: sobolev_norm(u2, s, num_spatial_dims=2, lengths=L, squared=True))
    )(jnp.asarray([ell, ly]))
    assert_close(g2, np.array([ly * dq, q]), jnp.float64)


def test_lengths_may_be_jax_arrays():
    """A traced length under jit equals the eager Python-float result; vmap over lengths equals a
    loop; a concrete JAX length gives the same numbers as a Python one."""
    u = jnp.asarray(np.sin(2 * np.pi * np.arange(8)[:, None] / 8) + np.cos(np.arange(6) / 3.0))
    ells = [1.5, 0.5, 4.0]

    def apply(L):
        return (
            sobolev_norm(u, -1.0, num_spatial_dims=2, lengths=(L, 2.0)),
            spectral_derivative(u, (1, 2), lengths=(L, 2.0)),
        )

    jitted = jax.jit(apply)
    for got, w in zip(jitted(jnp.float32(ells[0])), apply(ells[0]), strict=True):
        assert got.dtype == w.dtype
        assert_close(got, w, jnp.float32)
    batched = jax.jit(jax.vmap(apply))(jnp.asarray(ells))
    for i, ell in enumerate(ells):
        for b, w in zip(batched, jitted(jnp.float32(ell)), strict=True):
            assert_close(b[i], w, jnp.float32)
    (k,) = wavenumbers((8,), jnp.float32(1.5))  # concrete JAX length: same numbers as Python
    assert_close(k, wavenumbers((8,), 1.5)[0], jnp.float32)


def test_length_dtypes(x64):
    """A float64 length computes in float64; a float32 length does not narrow a float64 field."""
    u32 = jnp.sin(jnp.arange(8, dtype=jnp.float32))
    u64 = u32.astype(jnp.float64)
    l64, l32 = jnp.float64(1.3), jnp.float32(1.3)

    def dtype(f, *args):  # traced only: the dtype is decided at trace time
        return jax.eval_shape(f, *args).dtype

    assert dtype(lambda u, L: sobolev_norm(u, 1.0, lengths=L), u32, l64) == jnp.float64
    assert dtype(lambda u, L: sobolev_norm(u, 1.0, lengths=L), u64, l32) == jnp.float64
    assert dtype(lambda u, L: sobolev_norm(u, 1.0, lengths=L), u32, l32) == jnp.float32
    # a Python float under grad is weakly typed: it does not widen a float32 field
    assert dtype(jax.grad(lambda L: sobolev_norm(u32, 1.0, lengths=L)), 1.3) == jnp.float64
    assert dtype(lambda L: sobolev_norm(u32, 1.0, lengths=L), 1.3) == jnp.float32
    assert dtype(lambda u, L: spectral_derivative(u, 1, lengths=L), u32, l64) == jnp.float32
    (k,) = wavenumbers((8,), l32, dtype=jnp.float64)
    assert k.dtype == jnp.float64
    assert_close(k, 2 * np.pi * np.arange(5) / np.float64(np.float32(1.3)), jnp.float64)


def test_bad_jax_lengths_are_named(library_errors):
    u = jnp.ones((4, 8))
    for bad, i, got in [
        (jnp.asarray(-1.0), 0, "-1.0"),
        (jnp.asarray([1.0, jnp.nan]), 1, "nan"),
        ((1.0, jnp.asarray(0.0)), 1, "0.0"),
        (jnp.asarray([2, 0]), 1, "0.0"),
    ]:
        with pytest.raises(
            ValueError, match=rf"`lengths\[{i}\]` must be positive and finite; got {got}"
        ):
            sobolev_norm(u, 1.0, num_spatial_dims=2, lengths=bad)
        with pytest.raises(
            ValueError, match=rf"`lengths\[{i}\]` must be positive and finite; got {got}"
        ):
            spectral_derivative(u, (1, 1), lengths=bad)
    with pytest.raises(
        ValueError,
        match=r"`lengths` must be a scalar or have one entry per "
        r"spatial axis, shape \(\) or \(2,\); got an array of shape \(3,\)",
    ):
        wavenumbers((4, 8), jnp.ones(3))
    with pytest.raises(TypeError, match=r"`lengths` must be a real .*array; got dtype complex64"):
        sobolev_norm(u, 1.0, lengths=jnp.asarray(1j))
    with pytest.raises(TypeError, match=r"`lengths` must be a real .*array; got dtype bool"):
        sobolev_norm(u, 1.0, lengths=jnp.asarray(True))


def test_empty_modes_are_refused(library_errors):
    """No spatial axis is an error naming `modes` (it was a bare IndexError from modes[-1])."""
    x_hat = jnp.ones((4, 5), jnp.complex64)
    for modes in ((), []):
        with pytest.raises(ValueError, match=r"`modes` must give one mode count per spatial axis"):
            truncate_modes(x_hat, modes)


def test_sobolev_norm_refuses_an_array_s(library_errors):
    """An array `s` broadcast against the last (rfft) axis: one of its length gave per-mode
    exponents, a number silently; another length failed inside the power, naming nothing."""
    u = jnp.sin(2 * jnp.pi * jnp.arange(8, dtype=jnp.float32) / 8)
    for bad in (jnp.asarray([1.0, 2.0, 3.0, 4.0, 5.0]), np.ones(2), jnp.ones((1,))):
        with pytest.raises(ValueError, match=r"`s` must be one smoothness index, a scalar"):
            sobolev_norm(u, bad)
    # a 0-d array is a scalar, also a traced one
    s = jnp.asarray(1.0)
    assert_close(jax.jit(sobolev_norm)(u, s), sobolev_norm(u, 1.0), jnp.float32)


def test_zero_length_spatial_axis_is_named(library_errors):
    """A spatial axis of length 0 is refused naming `u` (it failed in XLA's lowering with a
    verifier error about tensor<0xcomplex<f32>>); a length-0 batch axis is not spatial."""
    for u, d in [(jnp.ones(0), 1), (jnp.ones((0, 8)), 2), (jnp.ones((4, 0)), 1)]:
        with pytest.raises(ValueError, match=r"`u` has shape .*a spatial axis of length 0"):
            spectral_derivative(u, (1,) * d)
        with pytest.raises(ValueError, match=r"`u` has shape .*a spatial axis of length 0"):
            sobolev_norm(u, 1.0, num_spatial_dims=d)
    assert spectral_derivative(jnp.ones((0, 8)), 1).shape == (0, 8)
    assert sobolev_norm(jnp.ones((0, 8)), 1.0).shape == (0,)


def test_int_modes_and_sizes_mean_the_same_on_every_axis(key, library_errors):
    # FNO / SpectralConv take an int `modes`; the helpers refused it. Where the number of spatial
    # axes is known (num_spatial_dims, spatial_shape) an int is the same on every axis.
    x = jax.random.normal(key, (3, 16, 12))
    x_hat = jnp.fft.rfftn(x, axes=(1, 2))
    t = truncate_modes(x_hat, 4, num_spatial_dims=2)
    np.testing.assert_array_equal(np.asarray(t), np.asarray(truncate_modes(x_hat, (4, 4))))
    assert t.shape == (3, 8, 4)
    # the kept bins are the FNO corners of a float64 NumPy spectrum
    ref = np.fft.rfftn(np.asarray(x, np.float64), axes=(1, 2))
    ref = np.concatenate([ref[:, :4, :4], ref[:, -4:, :4]], axis=1)
    np.testing.assert_allclose(np.asarray(t), ref, rtol=0, atol=1e-4)
    assert pad_modes(t, (16, 12), in_shape=16).shape == (3, 16, 7)
    np.testing.assert_array_equal(
        np.asarray(pad_modes(t, (20, 12), in_shape=(16, 16))),
        np.asarray(pad_modes(t, (20, 12), in_shape=16)),
    )
    (k,) = wavenumbers(8, 2.0)  # an int grid is the 1-d grid (n,), as np.fft.rfftfreq(n)
    np.testing.assert_allclose(np.asarray(k), 2 * np.pi * np.fft.rfftfreq(8, 1 / 8) / 2.0, 1e-6)
    # an int alone cannot say how many axes of x_hat are spatial: the error says what to pass
    with pytest.raises(TypeError, match=r"e\.g\. \(4,\) in 1-d or \(4, 4\) in 2-d.*num_spatial"):
        truncate_modes(x_hat, 4)
    with pytest.raises(
        ValueError, match=r"`modes` \(4, 4\) has 2 entries but `num_spatial_dims`=3"
    ):
        truncate_modes(x_hat, (4, 4), num_spatial_dims=3)
    with pytest.raises(ValueError, match=r"`num_spatial_dims` must be an integer >= 1; got 0"):
        truncate_modes(x_hat, 4, num_spatial_dims=0)
    with pytest.raises(
        ValueError, match=r"`modes\[0\]`=4 is too many for the `in_shape` spatial shape \(7, 7\)"
    ):
        pad_modes(t, (20, 12), in_shape=7)


def test_wavenumbers_float64_needs_x64(library_errors):
    # float64 outside 64-bit mode came back float32 with only a warning (the GRFs raise)
    with pytest.raises(TypeError, match=r"`dtype`=float64 needs 64-bit mode.*enable_x64"):
        wavenumbers((8,), dtype=jnp.float64)
    with jax.enable_x64(True):
        (k,) = wavenumbers((8,), dtype=jnp.float64)
        assert k.dtype == jnp.float64


def test_truncate_modes_returns_a_jax_array_in_every_dimension():
    """A 1-d NumPy spectrum was only sliced and came back a NumPy complex128 array, a 2-d one a
    JAX complex64 array."""
    x = np.random.default_rng(0).standard_normal((8, 8))
    for x_hat, modes in ((np.fft.rfft(x[0]), (3,)), (np.fft.rfft2(x), (2, 3))):
        out = truncate_modes(x_hat, modes)
        assert isinstance(out, jax.Array) and out.dtype == jnp.complex64, (type(out), out.dtype)
