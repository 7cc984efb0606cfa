"""Synthetic long-range sequence tasks: the label is where the task says, seeded, validated."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.data import delayed_copy, delayed_recall


def test_delayed_recall_contract():
    x, y = delayed_recall(jax.random.key(0), 64, 300, min_lag=256, num_classes=4, num_noise=3)
    assert x.shape == (64, 300, 7) and y.shape == (64,) and y.dtype == jnp.int32
    tokens = np.argmax(np.asarray(x), axis=-1)
    np.testing.assert_array_equal(np.asarray(x).sum(-1), 1.0)  # one-hot
    for seq, label in zip(tokens, np.asarray(y), strict=True):
        signal = np.flatnonzero(seq < 4)
        assert signal.size == 1 and seq[signal[0]] == label
        assert 300 - 1 - signal[0] >= 256
    x2, y2 = delayed_recall(jax.random.key(0), 64, 300, min_lag=256, num_classes=4, num_noise=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert len(set(np.asarray(y).tolist())) == 4


def test_delayed_copy_is_a_delay():
    u, y = delayed_copy(jax.random.key(0), 3, 100, delay=17, channels=2)
    np.testing.assert_array_equal(y[:, 17:], u[:, :83])
    np.testing.assert_array_equal(y[:, :17], 0.0)
    np.testing.assert_allclose(np.sqrt(np.mean(np.asarray(u) ** 2, axis=1)), 1.0, rtol=1e-5)


def test_errors(library_errors):
    # the message names min_lag, whose default of 256 is what a short length runs into
    with pytest.raises(ValueError, match=r"`length`=100 must exceed `min_lag`=256"):
        delayed_recall(jax.random.key(0), 4, 100)
    with pytest.raises(ValueError, match=r"`length` must be an integer >= 1; got 0"):
        delayed_recall(jax.random.key(0), 4, 0)
    with pytest.raises(ValueError, match="num_classes"):
        delayed_recall(jax.random.key(0), 4, 300, num_classes=1)
    with pytest.raises(ValueError, match="cutoff"):
        delayed_copy(jax.random.key(0), 4, 100, cutoff=0.0)


def test_same_data_with_and_without_x64():
    """The data are a function of the key only: the integers are drawn as int32 in both modes
    (the default int64 of 64-bit mode is another random stream)."""
    key = jax.random.key(3)
    x, y = delayed_recall(key, 8, 40, min_lag=8)
    u, _ = delayed_copy(key, 2, 32, delay=3)
    with jax.enable_x64(True):
        x64, y64 = delayed_recall(key, 8, 40, min_lag=8)
        u64, _ = delayed_copy(key, 2, 32, delay=3)
    assert y64.dtype == jnp.int32 and x64.dtype == jnp.float32
    np.testing.assert_array_equal(x64, x)
    np.testing.assert_array_equal(y64, y)
    np.testing.assert_array_equal(u64, u)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_delayed_copy_half_precision_is_the_float32_data_rounded(dtype):
    """Half precision is drawn and filtered in float32 and rounded once (it failed inside the
    FFT: 'RFFT input must be float32 or float64, got bfloat16')."""
    key = jax.random.key(1)
    u, y = delayed_copy(key, 2, 32, delay=3, dtype=dtype)
    u32, y32 = delayed_copy(key, 2, 32, delay=3)
    assert u.dtype == y.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(u), np.asarray(u32.astype(dtype)))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y32.astype(dtype)))


@pytest.mark.parametrize("task", [delayed_copy, delayed_recall])
def test_bad_dtype_named(task, library_errors):
    """An integer dtype failed inside jax.random (or gave an integer one-hot) and float64
    outside 64-bit mode was narrowed to float32 with only a warning."""
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="`dtype` must be a real floating-point type"):
        task(key, 2, 300, dtype=jnp.int32)
    with pytest.raises(TypeError, match=r"`dtype`=float64 needs 64-bit mode"):
        task(key, 2, 300, dtype=jnp.float64)


def test_cutoff_type_named(library_errors):
    with pytest.raises(TypeError, match="`cutoff` must be a Python float; got str"):
        delayed_copy(jax.random.key(0), 2, 16, cutoff="0.1")


def test_delayed_copy_refuses_a_cutoff_that_leaves_a_constant_input(library_errors):
    """Below 1 / length only the constant frequency passed the filter: after normalising, every
    input was +-1 at every step, a task with nothing to learn, returned silently."""
    with pytest.raises(ValueError, match=r"`cutoff`=0.0001 keeps no frequency above 0 .* 0.1"):
        delayed_copy(jax.random.key(0), 2, 10, delay=2, cutoff=1e-4)
    with pytest.raises(ValueError, match=r"`cutoff`=0.05 .* `length`=16"):  # the default cutoff
        delayed_copy(jax.random.key(0), 2, 16, delay=2)
    u, _ = delayed_copy(jax.random.key(0), 2, 10, delay=2, cutoff=0.1)  # the lowest one kept
    assert float(jnp.min(jnp.std(u, axis=1))) > 0.5


def test_delayed_copy_refuses_a_delay_that_leaves_nothing_to_copy(library_errors):
    """With the default delay of 256, any length <= 256 gave all-zero targets, silently."""
    with pytest.raises(ValueError, match=r"`delay`=256 must be less than `length`=200"):
        delayed_copy(jax.random.key(0), 2, 200)
    with pytest.raises(ValueError, match=r"`delay`=16 must be less than `length`=16"):
        delayed_copy(jax.random.key(0), 2, 16, delay=16)
    u, y = delayed_copy(jax.random.key(0), 2, 16, delay=15, cutoff=0.25)  # one step to copy
    np.testing.assert_array_equal(y[:, 15], u[:, 0])


@pytest.mark.parametrize("length, cutoff", [(30, 0.1), (60, 0.05), (120, 0.2), (100, 0.05)])
def test_delayed_copy_keeps_the_band_edge_and_ignores_x64(length, cutoff):
    """The band is [0, cutoff] with its edge: k / L = cutoff was dropped when x64 was off
    (k * float32(1 / L) rounded above the cutoff), so the same key gave other data with x64."""
    key = jax.random.key(1)
    u, _ = delayed_copy(key, 1, length, delay=0, cutoff=cutoff)
    spectrum = np.abs(np.fft.rfft(np.asarray(u, np.float64)[0, :, 0]))
    edge = round(cutoff * length)
    assert spectrum[edge] > 1e-3 * spectrum.max()
    assert np.all(spectrum[edge + 1 :] < 1e-5 * spectrum.max())
    with jax.enable_x64(True):
        u64, _ = delayed_copy(key, 1, length, delay=0, cutoff=cutoff)
    np.testing.assert_array_equal(u, u64)
