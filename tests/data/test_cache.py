"""On-disk dataset cache: hit/miss keyed by generator, parameters (defaults included) and
seed; atomic writes; recovery from unreadable files."""

import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.data import burgers_dataset, cache_path, cached, default_cache_dir


@pytest.fixture
def gen():
    """A tiny generator that records how often it really ran (a function attribute: not part
    of the key, as an instance's state would be)."""

    def counter(key, num_samples, resolution=4, *, scale=1.0):
        counter.calls += 1
        x = jax.random.normal(key, (num_samples, resolution), jnp.float32) * scale
        return x, 2 * x

    counter.calls = 0
    return counter


def test_miss_then_hit(tmp_path, key, gen):
    first = cached(gen, key, 3, cache_dir=tmp_path)
    second = cached(gen, key, num_samples=3, resolution=4, cache_dir=tmp_path)
    assert gen.calls == 1
    assert len(first) == 2 and isinstance(second[0], np.ndarray)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(second[1], 2 * second[0])
    assert [p.name for p in tmp_path.iterdir()] == [
        cache_path(gen, key, 3, cache_dir=tmp_path).name
    ]


def test_keyed_by_seed_and_parameters(tmp_path, key, gen):
    base = cache_path(gen, key, 3, cache_dir=tmp_path)
    assert cache_path(gen, key, 3, 4, scale=1.0, cache_dir=tmp_path) == base  # defaults spelt out
    others = {
        cache_path(gen, jax.random.key(1), 3, cache_dir=tmp_path),
        cache_path(gen, key, 4, cache_dir=tmp_path),
        cache_path(gen, key, 3, scale=2.0, cache_dir=tmp_path),
        cache_path(gen, jax.random.PRNGKey(0), 3, cache_dir=tmp_path),  # raw key: other impl tag
    }
    assert base not in others and len(others) == 4


def test_real_generator_round_trip(tmp_path, key):
    a, u = cached(burgers_dataset, key, 2, 16, solver_resolution=32, dt=0.05, cache_dir=tmp_path)
    a2, u2 = burgers_dataset(key, 2, 16, solver_resolution=32, dt=0.05)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(u, u2)
    assert cache_path(
        burgers_dataset, key, 2, 16, solver_resolution=32, dt=0.05, cache_dir=tmp_path
    ).exists()


def test_env_var_and_default_dir(tmp_path, monkeypatch, key, gen):
    monkeypatch.setenv("SPECTRAX_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    cached(gen, key, 2)
    assert len(list((tmp_path / "env").iterdir())) == 1
    monkeypatch.delenv("SPECTRAX_CACHE")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "spectrax"


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch, key, gen):
    """A failure while writing (here: a crash after half the bytes) leaves neither the final
    file nor the temporary one, and the next call recomputes and succeeds."""

    def crashing_savez(fh, *arrays, **named):
        fh.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(KeyboardInterrupt):
        cached(gen, key, 2, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    out = cached(gen, key, 2, cache_dir=tmp_path)
    assert gen.calls == 2 and out[0].shape == (2, 4)


def test_stale_temporary_files_are_removed(tmp_path, key, gen):
    """A writer killed mid-write (SIGKILL) leaves its temporary file; the next write removes
    those untouched for over an hour, but not a concurrent writer's live one nor other files."""
    stem = cache_path(gen, key, 5, cache_dir=tmp_path).stem
    names = [f"{stem}.k1ll_ed0.tmp", f"{stem}.l1ve_ab2.tmp", "notes.tmp", f"{stem}.npz.bak"]
    for name in names:
        (tmp_path / name).write_bytes(b"PK\x03\x04 partial")
    old = time.time() - 2 * 3600
    for name in (names[0], *names[2:]):
        os.utime(tmp_path / name, (old, old))
    cached(gen, key, 2, cache_dir=tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {*names[1:], cache_path(gen, key, 2, cache_dir=tmp_path).name}


@pytest.mark.parametrize("content", [b"not an npz", b"", "truncated", "flipped"])
def test_unreadable_file_is_regenerated(tmp_path, key, gen, content):
    """Garbage, an empty file, an archive cut short (a crash mid-write) or one with a flipped
    byte inside an array (bit rot; caught by the zip CRC, which a memory-mapped read would
    skip) are regenerated, never returned."""
    path = cache_path(gen, key, 2, cache_dir=tmp_path)
    if content in ("truncated", "flipped"):
        cached(gen, key, 2, cache_dir=tmp_path)
        data = bytearray(path.read_bytes())
        if content == "truncated":
            data = data[:-40]
        else:  # the last byte of arr_0's values (its .npy header ends in a newline)
            start = data.index(b"\n", data.index(b"NUMPY", data.index(b"arr_0.npy"))) + 1
            data[start + 2 * 4 * 4 - 1] ^= 0xFF
        content = bytes(data)
        gen.calls = 0
    path.write_bytes(content)
    out = cached(gen, key, 2, cache_dir=tmp_path)
    assert gen.calls == 1 and out[0].shape == (2, 4)
    with np.load(path) as data:
        np.testing.assert_array_equal(data["arr_0"], out[0])
    assert os.listdir(tmp_path) == [path.name]


def test_dtype_parameters_key_the_cache(tmp_path, key):
    """A generator with a dtype default (the sequence tasks) can be cached, keyed by dtype."""
    from spectrax.data import delayed_recall

    a = cache_path(delayed_recall, key, 2, 16, min_lag=4, cache_dir=tmp_path)
    b = cache_path(delayed_recall, key, 2, 16, min_lag=4, dtype=jnp.float32, cache_dir=tmp_path)
    c = cache_path(
        delayed_recall, key, 2, 16, min_lag=4, dtype=np.dtype("float16"), cache_dir=tmp_path
    )
    assert a == b != c
    first = cached(delayed_recall, key, 2, 16, min_lag=4, cache_dir=tmp_path)
    again = cached(delayed_recall, key, 2, 16, min_lag=4, cache_dir=tmp_path)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_each_kind_of_number_has_its_own_key(tmp_path, key):
    """A float's key was its repr, the string "1.5"'s key too; a NumPy scalar's key was its
    value, a Python number's too, though JAX types np.float32(1.5) strongly and 1.5 weakly (a
    generator's output dtype may follow): whichever call filled the cache served them all."""

    def gen(key, scale):  # output dtype follows the argument's type, as JAX's weak types do
        return (np.zeros(1, np.int32),) if isinstance(scale, str) else (np.asarray([scale]),)

    values = [1.5, "1.5", np.float32(1.5), np.float64(1.5), 2, "2", np.int32(2), np.int64(2)]
    paths = [cache_path(gen, key, v, cache_dir=tmp_path) for v in values]
    assert len(set(paths)) == len(values)
    # the same kind and value is the same key
    assert cache_path(gen, key, np.float32(1.5), cache_dir=tmp_path) == paths[2]
    assert cache_path(gen, key, 3.0 / 2, cache_dir=tmp_path) == paths[0]
    got = [cached(gen, key, v, cache_dir=tmp_path)[0] for v in (np.float32(1.5), 1.5, "1.5")]
    assert [a.dtype for a in got] == [np.float32, np.float64, np.int32]


def test_unhashable_parameter(tmp_path, key, gen):
    with pytest.raises(TypeError, match="scale"):
        cache_path(gen, key, 2, scale=object(), cache_dir=tmp_path)
    with pytest.raises(TypeError, match="do not match"):
        cache_path(gen, key, 2, bogus=1, cache_dir=tmp_path)


def test_keyed_by_jax_configuration(tmp_path, monkeypatch, key, gen):
    """Sample i uses split(key, N)[i], which jax_threefry_partitionable changes (JAX 0.5 flipped
    its default), and integer widths follow jax_enable_x64: each flag, and the JAX major.minor
    version, give another file, so data drawn under another configuration are not read back."""
    base = cache_path(gen, key, 3, cache_dir=tmp_path)
    cached(gen, key, 3, cache_dir=tmp_path)
    with jax.enable_x64(not jax.config.jax_enable_x64):
        x64 = cache_path(gen, key, 3, cache_dir=tmp_path)
    with jax.threefry_partitionable(not jax.config.jax_threefry_partitionable):
        threefry = cache_path(gen, key, 3, cache_dir=tmp_path)
        cached(gen, key, 3, cache_dir=tmp_path)
        assert gen.calls == 2  # regenerated, not the other mode's file
    major, minor = jax.__version__.split(".")[:2]
    monkeypatch.setattr(jax, "__version__", f"{major}.{int(minor) + 1}.0")
    version = cache_path(gen, key, 3, cache_dir=tmp_path)
    monkeypatch.undo()
    assert len({base, x64, threefry, version}) == 4
    assert cache_path(gen, key, 3, cache_dir=tmp_path) == base  # the flags are restored


def test_keyed_by_xla_flags_but_not_the_host_device_count(tmp_path, monkeypatch, key, gen):
    """XLA_FLAGS such as the optimisation level change the generated numbers (Burgers inputs by
    up to 3.6e-7, Darcy solutions by 2.8e-9) and were not in the key, so which numbers a run
    trained on depended on which process wrote the file first. The host device count (a
    sharding setting) changes nothing and keeps the file; no flags keep the earlier key."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    plain = cache_path(gen, key, 3, cache_dir=tmp_path)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    assert cache_path(gen, key, 3, cache_dir=tmp_path) == plain
    paths = set()
    for flags in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
        monkeypatch.setenv("XLA_FLAGS", f"{flags} --xla_force_host_platform_device_count=8")
        paths.add(cache_path(gen, key, 3, cache_dir=tmp_path))
    assert len(paths | {plain}) == 3


def test_raw_key_keyed_by_the_default_prng_implementation(tmp_path, key):
    """A raw uint32 key is read by jax_default_prng_impl: under "rbg" and "unsafe_rbg" it is
    the same (4,) words, but split and fold_in give other keys, so other data; both read one
    file before (the key was keyed as "raw" and its words only)."""

    def draw(key, n):
        return (jax.random.normal(jax.random.fold_in(key, 1), (n,)),)

    before = jax.config.jax_default_prng_impl
    paths, data = {}, {}
    try:
        for impl in ("rbg", "unsafe_rbg"):
            jax.config.update("jax_default_prng_impl", impl)
            raw = jax.random.PRNGKey(0)
            paths[impl] = cache_path(draw, raw, 3, cache_dir=tmp_path)
            data[impl] = cached(draw, raw, 3, cache_dir=tmp_path)[0]
    finally:
        jax.config.update("jax_default_prng_impl", before)
    assert paths["rbg"] != paths["unsafe_rbg"]
    assert not np.array_equal(data["rbg"], data["unsafe_rbg"])  # a hit would return rbg's


def test_keyed_by_platform(tmp_path, monkeypatch, key, gen):
    """GPU matmuls (TF32) and FFTs round differently from the CPU's, and a thresholded field
    (Darcy's coefficient) can flip nodes with them: each platform has its own file."""
    paths = {}
    for platform in ("cpu", "gpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda platform=platform: platform)
        paths[platform] = cache_path(gen, key, 3, cache_dir=tmp_path)
    assert len(set(paths.values())) == 3


_GENERATOR_SOURCE = """
import jax
import jax.numpy as jnp


def make(key, num_samples):
    return (jax.random.normal(key, (num_samples, 4), jnp.float32) * {scale},)
"""


def test_keyed_by_generator_source(tmp_path, monkeypatch, key):
    """Editing a generator's code gives another file: data drawn by the old code are not read
    back (here, a module whose scale changes from 1 to 2 between two imports)."""
    import importlib
    import sys

    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.syspath_prepend(str(src))
    module_file = src / "spectrax_cache_probe.py"
    module_file.write_text(_GENERATOR_SOURCE.format(scale=1.0))
    monkeypatch.delitem(sys.modules, "spectrax_cache_probe", raising=False)
    probe = importlib.import_module("spectrax_cache_probe")
    (old,) = cached(probe.make, key, 3, cache_dir=tmp_path / "cache")
    module_file.write_text(_GENERATOR_SOURCE.format(scale=2.0))
    probe = importlib.reload(probe)
    (new,) = cached(probe.make, key, 3, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(new, 2 * old)  # regenerated by the new code, not the stale file
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_spectrax_generators_keyed_by_the_data_package(tmp_path, key, monkeypatch):
    """spectrax's generators call one another and the shared argument checks, so the key covers
    every module of spectrax.data and spectrax._checks: a change in any of them (e.g. the GRF
    that Burgers draws its initial conditions from) is a new file."""
    import spectrax._checks
    from spectrax.data import _cache, _grf

    base = cache_path(burgers_dataset, key, 2, 16, cache_dir=tmp_path)
    for module in (_grf, spectrax._checks):
        edited = pathlib.Path(module.__file__)
        real_read = pathlib.Path.read_bytes

        def read_bytes(self, edited=edited, real_read=real_read):
            data = real_read(self)
            return data + b"\n# edited\n" if self.resolve() == edited.resolve() else data

        monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
        assert cache_path(burgers_dataset, key, 2, 16, cache_dir=tmp_path) != base, module
        monkeypatch.undo()
    assert cache_path(burgers_dataset, key, 2, 16, cache_dir=tmp_path) == base
    assert _cache._source_digest(burgers_dataset.__module__) is not None


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.int8, jnp.bool_])
def test_dtypes_survive_the_round_trip(tmp_path, key, dtype):
    """A hit returns the arrays in the dtype the generator gave: bfloat16 (an ml_dtypes type,
    which the .npy format stores as raw bytes) was read back as void |V2 data."""

    def make(key, n):
        x = jax.random.normal(key, (n, 3), jnp.float32)
        return x.astype(dtype), jnp.arange(n, dtype=jnp.int32)

    first = cached(make, key, 4, cache_dir=tmp_path)
    again = cached(make, key, 4, cache_dir=tmp_path)
    for x, y in zip(first, again, strict=True):
        assert y.dtype == x.dtype, (x.dtype, y.dtype)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    assert again[0].dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("where", ["mkdir", "write"])
def test_unwritable_cache_dir_returns_the_data(tmp_path, monkeypatch, key, gen, where):
    """A read-only or full cache directory costs the cache, not the data: the generated arrays
    come back with a RuntimeWarning naming the file (the OSError used to discard them) and no
    temporary file is left behind."""
    import errno

    if where == "mkdir":

        def fail(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))

        monkeypatch.setattr(pathlib.Path, "mkdir", fail)
    else:

        def fail(fh, *arrays, **named):
            fh.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(np, "savez", fail)
    path = cache_path(gen, key, 2, cache_dir=tmp_path / "cache")
    with pytest.warns(RuntimeWarning, match=r"could not write the cache file .*uncached"):
        x, y = cached(gen, key, 2, cache_dir=tmp_path / "cache")
    monkeypatch.undo()
    expected = gen(key, 2)
    np.testing.assert_array_equal(x, expected[0])
    np.testing.assert_array_equal(y, expected[1])
    assert not path.exists()
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def _scaled(scale):
    def gen(key, n):
        return (jax.random.normal(key, (n,), jnp.float32) * scale,)

    return gen


def test_keyed_by_closure_and_bytecode(tmp_path, key):
    """Generators that share a module and a qualified name are told apart: closures over other
    values (both are `_scaled.<locals>.gen`) and two lambdas (both `<lambda>`) were given one
    file, so the second call read back the first one's data."""
    (one,) = cached(_scaled(1.0), key, 3, cache_dir=tmp_path)
    (hundred,) = cached(_scaled(100.0), key, 3, cache_dir=tmp_path)
    np.testing.assert_allclose(hundred, 100 * one, rtol=1e-6)
    assert cache_path(_scaled(1.0), key, 3, cache_dir=tmp_path) == cache_path(
        _scaled(1.0), key, 3, cache_dir=tmp_path
    )
    zeros, ones = (lambda key, n: (jnp.zeros(n),)), (lambda key, n: (jnp.ones(n),))
    np.testing.assert_array_equal(cached(zeros, key, 2, cache_dir=tmp_path)[0], 0.0)
    np.testing.assert_array_equal(cached(ones, key, 2, cache_dir=tmp_path)[0], 1.0)
    assert len(list(tmp_path.iterdir())) == 4


def _scaled_by_jitted(scale):
    f = jax.jit(lambda x: x * scale)

    def gen(key, n):
        return (f(jax.random.normal(key, (n,), jnp.float32)),)

    return gen


def test_captured_jitted_function_keyed_by_its_closure(tmp_path, key):
    """A closure over a jax.jit-wrapped helper is keyed through the wrapper (a PjitFunction
    has no bytecode of its own): by the helper's code and what it captured."""
    one = cache_path(_scaled_by_jitted(1.0), key, 3, cache_dir=tmp_path)
    assert one == cache_path(_scaled_by_jitted(1.0), key, 3, cache_dir=tmp_path)
    assert one != cache_path(_scaled_by_jitted(2.0), key, 3, cache_dir=tmp_path)


def test_captured_value_that_cannot_be_keyed(tmp_path, key, library_errors):
    config = {"scale": 2.0}

    def gen(key, n):
        return (jax.random.normal(key, (n,), jnp.float32) * config["scale"],)

    with pytest.raises(TypeError, match="`config`, of type dict, which the generator .*captures"):
        cache_path(gen, key, 3, cache_dir=tmp_path)


def test_class_parameter_is_not_keyed_as_a_dtype(tmp_path, key, library_errors):
    """NumPy maps any class to the object dtype, so two different classes passed as a parameter
    gave one key ({"dtype": "object"}); only dtypes are keyed as dtypes."""

    def gen(key, n, kind=dict):
        return (jnp.zeros(n),)

    with pytest.raises(TypeError, match="cannot key the cache on `kind` of type type"):
        cache_path(gen, key, 2, kind=list, cache_dir=tmp_path)
    a = cache_path(gen, key, 2, kind=jnp.float32, cache_dir=tmp_path)
    assert a != cache_path(gen, key, 2, kind=jnp.bfloat16, cache_dir=tmp_path)


def _wrapped_burgers(key, num_samples):
    a, u = burgers_dataset(key, num_samples, 16, solver_resolution=32, dt=0.05)
    return a / 10, u / 10


def test_user_generator_keyed_by_the_data_package(tmp_path, key, monkeypatch):
    """A user's generator that wraps a spectrax one (here, rescaled Burgers data) was keyed on
    its own file only: after an upgrade of spectrax.data it read back what the old solver drew."""
    import spectrax.data._burgers as burgers_module

    base = cache_path(_wrapped_burgers, key, 2, cache_dir=tmp_path)
    edited = pathlib.Path(burgers_module.__file__).resolve()
    real_read = pathlib.Path.read_bytes

    def read_bytes(self):
        data = real_read(self)
        return data + b"\n# edited\n" if self.resolve() == edited else data

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    assert cache_path(_wrapped_burgers, key, 2, cache_dir=tmp_path) != base
    monkeypatch.undo()
    assert cache_path(_wrapped_burgers, key, 2, cache_dir=tmp_path) == base


def test_miss_and_hit_both_writable(tmp_path, key, gen):
    """The first call returned read-only views of the JAX arrays and later calls writable
    arrays read from disk, so in-place normalisation (x -= x.mean()) failed on the first run
    only."""
    for _ in range(2):
        x, _ = cached(gen, key, 2, cache_dir=tmp_path)
        assert x.flags.writeable
        x -= x.mean()
    assert gen.calls == 1


_STRING_CALLS = []


def _strings_and_dates(key, n):
    _STRING_CALLS.append(n)  # a global, not a captured value: not part of the key
    return np.array(["cat", "dog", "emu"][:n]), np.datetime64("2020-01-01") + np.arange(n)


def test_string_and_datetime_arrays_hit(tmp_path, key, caplog):
    """Arrays of NumPy dtypes JAX does not parse by name ('str96', 'datetime64[D]') are read
    back, not regenerated on every call as unreadable."""
    _STRING_CALLS.clear()
    first = cached(_strings_and_dates, key, 2, cache_dir=tmp_path)
    again = cached(_strings_and_dates, key, 2, cache_dir=tmp_path)
    assert len(_STRING_CALLS) == 1 and "unreadable" not in caplog.text
    for x, y in zip(first, again, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_numpy_bool_parameter_keyed_as_bool(tmp_path, key):
    """np.True_ (accepted by the generators' bool checks) raised 'cannot key the cache'."""
    from spectrax.data import grf_periodic

    a = cache_path(grf_periodic, key, 8, zero_mean=np.bool_(True), cache_dir=tmp_path)
    assert a == cache_path(grf_periodic, key, 8, zero_mean=True, cache_dir=tmp_path)
    assert a != cache_path(grf_periodic, key, 8, zero_mean=False, cache_dir=tmp_path)


def _draw_scaled(key, n, scale=1.0, shift=0.0, noise=None):
    key = key if noise is None else noise
    return (scale * jax.random.normal(key, (n,), jnp.float32) + shift,)


class ScaledGenerator:
    """A generator whose numbers depend on its instance's state."""

    def __init__(self, scale):
        self.scale = scale

    def __call__(self, key, n):
        return _draw_scaled(key, n, self.scale)

    def draw(self, key, n):
        return _draw_scaled(key, n, self.scale)


def test_partial_method_and_instance_keyed_by_what_they_hold(tmp_path, key):
    """A functools.partial, a bound method and a callable instance are keyed by the values they
    hold: a bound method ignored its instance's state (another scale read back the first
    scale's data), a partial and an instance failed with an AttributeError (no __qualname__)."""
    import functools

    def data(gen):
        return cached(gen, key, 3, cache_dir=tmp_path)[0]

    for make in (
        lambda s: functools.partial(_draw_scaled, scale=s),
        lambda s: functools.partial(_draw_scaled, shift=0.0, scale=s),
        lambda s: ScaledGenerator(s).draw,
        ScaledGenerator,
    ):
        np.testing.assert_allclose(data(make(3.0)), 3.0 * data(make(1.0)), rtol=1e-6)
    # a PRNG key held as a value (here by a partial) is keyed by its data
    held = [functools.partial(_draw_scaled, noise=jax.random.key(i)) for i in (0, 0, 1)]
    paths = [cache_path(p, key, 3, cache_dir=tmp_path) for p in held]
    assert paths[0] == paths[1] != paths[2]
    assert cache_path(ScaledGenerator(2.0), key, 3, cache_dir=tmp_path).name.startswith(
        "ScaledGenerator-"
    )


def test_instance_state_that_cannot_be_keyed(tmp_path, key, library_errors):
    with pytest.raises(TypeError, match="attribute `scale` .*ScaledGenerator instance"):
        cached(ScaledGenerator({"s": 1}), key, 3, cache_dir=tmp_path)

    class Slotted:
        __slots__ = ("scale",)

        def __call__(self, key, n):
            return _draw_scaled(key, n)

    with pytest.raises(TypeError, match="Slotted instance .*no __dict__"):
        cached(Slotted(), key, 3, cache_dir=tmp_path)


def test_bad_generator_key_and_cache_dir_are_named(tmp_path, key, gen, library_errors):
    """An int seed was hashed into a file name and then failed in JAX with "invalid PRNG key
    data"; a non-callable generator was refused as "cannot key the cache on the state of the
    int instance"; an int cache_dir failed in pathlib with "expected str, bytes or
    os.PathLike object, not int"."""
    for call in (cache_path, cached):
        with pytest.raises(TypeError, match=r"`key` must be a PRNG key.*got int 0"):
            call(gen, 0, 4, cache_dir=tmp_path)
        with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*shape \(2,\)"):
            call(gen, jax.random.split(key, 2), 4, cache_dir=tmp_path)
        with pytest.raises(TypeError, match=r"`generator` must be a dataset function.*got int 3"):
            call(3, key, 4, cache_dir=tmp_path)
        with pytest.raises(TypeError, match=r"`cache_dir` must be a directory path.*got int 3"):
            call(gen, key, 4, cache_dir=3)
    assert not list(tmp_path.iterdir())


def test_keyword_arguments_of_a_var_keyword_generator_are_keyed(tmp_path, key):
    """A generator taking ``**kwargs`` failed with "cannot key the cache on `kw` of type dict"
    (the keywords bind as one dict); each keyword is now keyed by its own name."""

    def scaled(key, n, **kw):
        scaled.calls.append(kw)  # a function attribute: not part of the key
        return (jax.random.normal(key, (n,)) * kw.get("scale", 1.0),)

    scaled.calls = calls = []

    (a,) = cached(scaled, key, 3, scale=2.0, cache_dir=tmp_path)
    (b,) = cached(scaled, key, 3, scale=2.0, cache_dir=tmp_path)
    np.testing.assert_array_equal(a, b)
    assert calls == [{"scale": 2.0}]  # the second call was a hit
    np.testing.assert_allclose(cached(scaled, key, 3, cache_dir=tmp_path)[0], a / 2.0)
    assert len(calls) == 2
    names = {
        cache_path(scaled, key, 3, cache_dir=tmp_path, **kw).name
        for kw in ({}, {"scale": 2.0}, {"scale": 3.0}, {"shift": 2.0})
    }
    assert len(names) == 4


def _as_list(key, n):
    return [np.ones(n), np.arange(n)]


def _as_dict(key, n):
    return {"x": np.ones(n)}


@pytest.mark.parametrize("generator", [_as_list, _as_dict], ids=["list", "dict"])
def test_a_generator_returning_neither_an_array_nor_a_tuple_is_refused(tmp_path, key, generator):
    """A list of arrays was stacked into one float64 array, a dict stored as an object array
    that was never read back (regenerated on every call): refused, nothing written."""
    with pytest.raises(
        TypeError, match=r"must return an array or a tuple of arrays; got (list|dict)"
    ):
        cached(generator, key, 3, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
