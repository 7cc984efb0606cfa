"""Configs: typed overrides, validation messages naming the key, serialisation, mesh rules."""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from spectrax.train import (
    Config,
    ConfigError,
    MeshConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    make_mesh,
)
from spectrax.train._config import config_differences, flat_keys
from tests.train.conftest import TOY


@pytest.fixture(scope="module")
def base():
    return load_config(TOY)


def test_overrides_are_typed(base):
    c = apply_overrides(
        base,
        [
            "optim.learning_rate=3e-4",
            "loop.num_steps=7",
            "output.plots=false",
            "task.nan_examples=1,2",
            "max_test_error=none",
        ],
    )
    assert c.optim.learning_rate == 3e-4 and isinstance(c.optim.learning_rate, float)
    assert c.loop.num_steps == 7 and isinstance(c.loop.num_steps, int)
    assert c.output.plots is False
    assert c.task.nan_examples == (1, 2)
    assert c.max_test_error is None
    assert base.loop.num_steps == 60  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.loop.num_steps = 3  # type: ignore[misc]


def test_unknown_key_lists_valid_keys(base):
    with pytest.raises(ConfigError, match=r"unknown config key `optim\.lr`.*optim\.learning_rate"):
        apply_overrides(base, ["optim.lr=1e-3"])


@pytest.mark.parametrize(
    ("override", "meant"),
    [
        ("optim.learning_rte=1e-3", "optim.learning_rate"),  # a typo
        ("learning_rate=1e-3", "optim.learning_rate"),  # the section left out
        ("loop.numsteps=3", "loop.num_steps"),
        ("optm.learning_rate=1e-3", "optim.learning_rate"),  # a typo in the section
    ],
)
def test_unknown_key_suggests_the_one_meant(base, override, meant):
    with pytest.raises(ConfigError, match=rf"; did you mean `{re.escape(meant)}`\? valid keys:"):
        apply_overrides(base, [override])


@pytest.mark.parametrize("key", ["zzz", "optim.lr"])
def test_unknown_key_far_from_every_key_gets_no_suggestion(base, key):
    # "optim.lr" shares "optim." with "optim.b1": compared whole, that looked close
    with pytest.raises(ConfigError, match=rf"unknown config key `{re.escape(key)}`; valid keys:"):
        apply_overrides(base, [f"{key}=1"])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("loop.num_steps=ten", r"`loop\.num_steps` expects an int; got 'ten'"),
        ("output.plots=maybe", r"`output\.plots` expects a bool"),
        ("optim.learning_rate=-1e-3", r"`optim\.learning_rate` must be > 0\.0; got -0\.001"),
        ("optim.b1=1.5", r"`optim\.b1` must be < 1\.0"),
        ("optim.b2=1.0", r"`optim\.b2` must be < 1\.0; got 1\.0"),
        ("optim.learning_rate=nan", r"`optim\.learning_rate` must be a finite number; got nan"),
        ("optim.weight_decay=inf", r"`optim\.weight_decay` must be a finite number"),
        ("max_test_error=nan", r"`max_test_error` must be a finite number"),
        ("loop.batch_size=0", r"`loop\.batch_size` must be >= 1"),
        ("mesh.params=zero3", r"`mesh\.params` must be one of \['replicated', 'fsdp'\]"),
        ("loop.num_steps", r"not of the form key=value"),
        # these read "unknown config key ``" and "unknown config key `optim`"
        ("=3", r"override '=3' has no key before '='; expected key=value"),
        ("optim=3", r"`optim` is a section, not a key; set one of its keys: `optim\.b1`, "),
        ("loop.eval_every=100", r"`loop\.eval_every` \(100\) exceeds `loop\.num_steps`"),
    ],
)
def test_bad_values_name_the_key(base, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(base, [override])


def test_wrong_python_type_in_config_file(base, library_errors):
    bad = dataclasses.replace(base, loop=dataclasses.replace(base.loop, batch_size=8.0))
    from spectrax.train import validate_config

    with pytest.raises(ConfigError, match=r"`loop\.batch_size` must be int; got 8\.0"):
        validate_config(bad)


def test_batch_must_divide_data_axis(base):
    c = apply_overrides(base, ["loop.batch_size=12"])
    with pytest.raises(
        ConfigError, match=r"`loop\.batch_size` \(12\) must be divisible by the data axis"
    ):
        make_mesh(c)
    with pytest.raises(ConfigError, match=r"`mesh\.model` \(3\) must divide"):
        make_mesh(apply_overrides(base, ["mesh.model=3"]))
    mesh = make_mesh(apply_overrides(base, ["mesh.model=2"]))
    assert dict(mesh.shape) == {"data": jax.device_count() // 2, "model": 2}
    # An explicit data axis needs only data x model devices: the model axis need not divide
    # them all (as `mesh.data=3` alone takes 3 of 8).
    mesh = make_mesh(apply_overrides(base, ["mesh.data=2", "mesh.model=3", "loop.batch_size=8"]))
    assert dict(mesh.shape) == {"data": 2, "model": 3} and mesh.devices.size == 6
    with pytest.raises(ConfigError, match=r"`mesh\.data` x `mesh\.model` = 3 x 3 needs 9 devices"):
        make_mesh(apply_overrides(base, ["mesh.data=3", "mesh.model=3", "loop.batch_size=9"]))
    # a model axis larger than the machine: setting `mesh.data` cannot help, so it is not offered
    n = jax.device_count()
    for data in (-1, 1):
        over = apply_overrides(base, [f"mesh.model={2 * n}", f"mesh.data={data}"])
        with pytest.raises(
            ConfigError,
            match=rf"`mesh\.model` \({2 * n}\) needs {2 * n} devices; {n} available\. "
            rf"Use a model axis of at most {n}\.$",
        ):
            make_mesh(over)


def test_make_mesh_takes_a_mesh_config_alone(library_errors):
    """A mesh for one's own loop, without a task: ``make_mesh(MeshConfig(...))`` failed with
    "'MeshConfig' object has no attribute 'mesh'"."""
    devices = jax.devices()
    mesh = make_mesh(MeshConfig(data=-1, model=2), devices)
    assert dict(mesh.shape) == {"data": len(devices) // 2, "model": 2}
    assert mesh.devices.size == len(devices)
    with pytest.raises(ConfigError, match=r"`mesh.model`"):
        make_mesh(MeshConfig(model=3 * len(devices)), devices)
    with pytest.raises(TypeError, match=r"`config` must be a Config or a MeshConfig.*got dict"):
        make_mesh({"data": 1})


def test_mesh_must_hold_a_device_of_every_process(base, library_errors):
    """Over 2 processes of 2 devices, `mesh.data=2` took process 0's two devices only:
    process 1 crashed before the first step and process 0 waited on it for minutes."""
    devices = [types.SimpleNamespace(id=i, process_index=i // 2) for i in range(4)]
    c = apply_overrides(base, ["mesh.data=2", "loop.batch_size=8"])
    with pytest.raises(ConfigError, match=r"2 x 1 uses the first 2 of 4 devices, none of .*\[1\]"):
        make_mesh(c, devices)


def test_dict_round_trip_and_differences(base):
    d = config_to_dict(base)
    assert d["optim"]["learning_rate"] == base.optim.learning_rate
    other = config_to_dict(
        apply_overrides(base, ["optim.learning_rate=1e-4", "output.plots=false"])
    )
    assert config_differences(d, other) == ["optim.learning_rate: 0.03 != 0.0001"]
    assert set(flat_keys(base)) >= {"seed", "task.resolution", "mesh.data", "checkpoint.keep"}


def test_unknown_config_and_variant(library_errors, monkeypatch):
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_config")
    # run from the checkout, its configs/ is one place to look, named once
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    with pytest.raises(ConfigError, match="not found") as info:
        load_config("no_such_config")
    assert str(info.value).count(str(Path.cwd() / "configs")) == 1, info.value
    # an override without its value, first on the command line, is read as the config's name
    with pytest.raises(
        ConfigError, match=r"'optim.learning_rate' looks like a config key: .*=value"
    ):
        load_config("optim.learning_rate")
    with pytest.raises(ConfigError, match=r"`variant` must be one of"):
        load_config(TOY, variant="huge")
    with pytest.raises(ConfigError, match="must return a spectrax.train.Config"):
        from spectrax.train import validate_config

        validate_config({"name": "x"})  # type: ignore[arg-type]
    assert isinstance(load_config(TOY, variant="smoke"), Config)


def test_no_configs_folder_says_where_configs_live(tmp_path, monkeypatch, library_errors):
    """An installation without spectrax/configs/ (a wheel holds them there), run from a folder
    without configs/: the error says where configs live; with the folder, they are found."""
    import spectrax.train._config as config_module

    monkeypatch.chdir(tmp_path)
    module = tmp_path / "site" / "spectrax" / "train" / "_config.py"
    monkeypatch.setattr(config_module, "__file__", str(module))
    with pytest.raises(ConfigError, match=r"available: none\. .*installed, in spectrax/configs/"):
        load_config("burgers_fno")
    (tmp_path / "site" / "spectrax" / "configs").mkdir(parents=True)
    (tmp_path / "site" / "spectrax" / "configs" / "toy.py").write_text(Path(TOY).read_text())
    assert load_config("toy").name == load_config(TOY).name


def test_an_installed_package_reads_no_foreign_configs_folder(tmp_path, monkeypatch):
    """Installed (no pyproject.toml above the package), the configs/ folder beside spectrax in
    site-packages belongs to another distribution: its files were run by name and listed as
    available. `__init__` (the package file of spectrax/configs) is no config name either."""
    import spectrax.train._config as config_module

    monkeypatch.chdir(tmp_path)
    site = tmp_path / "site"
    monkeypatch.setattr(config_module, "__file__", str(site / "spectrax" / "train" / "_config.py"))
    (site / "configs").mkdir(parents=True)
    (site / "configs" / "mnist.py").write_text(Path(TOY).read_text())
    (site / "spectrax" / "configs").mkdir(parents=True)
    (site / "spectrax" / "configs" / "__init__.py").write_text('"""configs"""\n')
    (site / "spectrax" / "configs" / "toy.py").write_text(Path(TOY).read_text())
    with pytest.raises(ConfigError, match=r"config 'mnist' not found.*available: toy\."):
        load_config("mnist")
    with pytest.raises(ConfigError, match=r"config '__init__' not found"):
        load_config("__init__")
    assert load_config("toy").name == load_config(TOY).name
    (site / "pyproject.toml").write_text("")  # a checkout: its configs/ is spectrax's
    assert load_config("mnist").name == load_config(TOY).name


@pytest.mark.parametrize("bad", ["../escaped", "a/b", "", ".hidden", "with space"])
def test_name_is_one_path_component(bad, library_errors):
    with pytest.raises(ConfigError, match=r"`name` must be letters"):
        load_config(TOY, [f"name={bad}"])
    assert load_config(TOY, ["name=my_run-2.b"]).name == "my_run-2.b"


def test_name_fits_a_file_name(library_errors):
    """A 250-character name passed validation and then failed to create the run directory
    (OSError: file name too long) after the data were built."""
    with pytest.raises(ConfigError, match=r"`name` must be at most 200 characters.*got 201"):
        load_config(TOY, ["name=" + "a" * 201])
    assert load_config(TOY, ["name=" + "a" * 200]).name == "a" * 200


def test_seed_fits_a_prng_key(library_errors):
    """Seeds up to 2**63 - 1 passed, but jax.random.key keeps 32 bits outside 64-bit mode:
    seed=2**32 initialised the same model as seed=0. They are refused by name."""
    for seed in (2**63, 2**32):
        with pytest.raises(ConfigError, match=rf"`seed`.*got {seed}"):
            load_config(TOY, [f"seed={seed}"])
    assert load_config(TOY, [f"seed={2**32 - 1}"]).seed == 2**32 - 1
    with jax.enable_x64(False):  # the collision the bound prevents
        same = jax.random.key_data(jax.random.key(2**32 + 5)) == jax.random.key_data(
            jax.random.key(5)
        )
        assert bool(jnp.all(same))


def test_learning_rates_fit_float32(library_errors):
    """optim.learning_rate=1e39 passed validation, was inf in the float32 step, and every
    update was skipped as non-finite until the run stopped (exit 3)."""
    for key in ("optim.learning_rate", "optim.ssm_learning_rate", "optim.weight_decay"):
        with pytest.raises(ConfigError, match=rf"`{key}`.*got 1e\+39"):
            load_config(TOY, [f"{key}=1e39"])
    assert load_config(TOY, ["optim.learning_rate=1e38"]).optim.learning_rate == 1e38


def test_a_built_task_in_place_of_its_dataclass_says_how_to_wrap_it(library_errors):
    """A Task object (what build() returns) passed as ``task`` was refused without saying that
    a ``build()`` wrapper is what is wanted."""
    import numpy as np

    from spectrax.train import SequenceClassificationTask, validate_config

    x = np.zeros((4, 6, 1), np.float32)
    y = np.zeros((4,), np.int32)
    task = SequenceClassificationTask(lambda k: None, (x, y), (x, y))
    with pytest.raises(
        ConfigError, match=r"got SequenceClassificationTask.*wrap it.*build\(self\)"
    ):
        validate_config(Config(name="mine", task=task))


@dataclasses.dataclass(frozen=True)
class _TupleTask:
    modes: tuple[int, ...] = dataclasses.field(default=(8, 8), metadata={"min": 1})
    pair: tuple[int, float] = (1, 2.0)

    def build(self):
        raise NotImplementedError


def test_tuple_fields_are_checked_item_by_item(library_errors):
    """A range on a tuple field holds for each item (it crashed validation with a TypeError from
    math.isfinite), items are type-checked, and a fixed-length tuple parses each position with
    its own type and refuses another length."""
    from spectrax.train import validate_config

    config = validate_config(Config(name="t", task=_TupleTask()))
    with pytest.raises(ConfigError, match=r"`task.modes\[1\]` must be >= 1; got 0"):
        apply_overrides(config, ["task.modes=(4,0)"])
    assert apply_overrides(config, ["task.modes=[4, 6, 2]"]).task.modes == (4, 6, 2)
    with pytest.raises(ConfigError, match=r"`task.modes\[0\]` must be int; got 'a'"):
        validate_config(Config(name="t", task=_TupleTask(modes=("a",))))
    assert apply_overrides(config, ["task.pair=(3,2.5)"]).task.pair == (3, 2.5)
    with pytest.raises(ConfigError, match=r"`task.pair` expects 2 comma-separated values"):
        apply_overrides(config, ["task.pair=(1,2,3)"])
    with pytest.raises(ConfigError, match=r"`task.pair` must be tuple\[int, float\]; got \(1,\)"):
        validate_config(Config(name="t", task=_TupleTask(pair=(1,))))


@dataclasses.dataclass(frozen=True)
class _NestedTupleTask:
    blocks: tuple[tuple[int, int], ...] = ((1, 2), (3, 4))

    def build(self):
        raise NotImplementedError


def test_a_nested_tuple_field_equals_its_json_copy():
    """A checkpoint stores config_to_dict as JSON; an inner tuple left as a tuple differed from
    its stored list, so a run with such a field refused its own checkpoint (resume and eval)."""
    import json

    config = Config(name="t", task=_NestedTupleTask())
    as_dict = config_to_dict(config)
    assert as_dict["task"]["blocks"] == [[1, 2], [3, 4]]
    assert config_differences(json.loads(json.dumps(as_dict)), as_dict) == []


@pytest.mark.parametrize("key", ["loop.num_steps", "loop.max_nonfinite", "optim.step_every"])
def test_step_counts_fit_the_int32_of_the_jitted_step(base, key, library_errors):
    """2**31 passed validation and then crashed the first step with an OverflowError (the
    guard's limit and the step schedule are int32 inside the jitted step)."""
    with pytest.raises(ConfigError, match=rf"`{key}` must be <= 2147483647; got 2147483648"):
        apply_overrides(base, [f"{key}=2147483648"])
    assert flat_keys(apply_overrides(base, [f"{key}=2147483647"]))[key] == 2**31 - 1


def test_a_single_string_of_overrides_is_refused_naming_the_argument(base):
    """A string is a sequence of characters: ``load_config(name, "loop.num_steps=3")`` failed
    with "override 'l' is not of the form key=value", naming neither the argument nor the fix."""
    for call in (
        lambda: apply_overrides(base, "loop.num_steps=3"),
        lambda: load_config(TOY, "loop.num_steps=3"),
    ):
        with pytest.raises(TypeError, match=r"`overrides`.*single string.*\['loop\.num_steps=3'\]"):
            call()


def test_a_dict_of_overrides_is_refused_naming_the_argument(base, library_errors):
    """Iterated, a dict gives its keys: ``load_config(name, {"loop.num_steps": 3})`` failed with
    "override 'loop.num_steps' is not of the form key=value", naming neither argument nor fix."""
    for call in (
        lambda: apply_overrides(base, {"loop.num_steps": 3}),
        lambda: load_config(TOY, {"loop.num_steps": 3}),
    ):
        with pytest.raises(TypeError, match=r"`overrides`.*got a dict.*\['loop\.num_steps=3'\]"):
            call()


def test_a_config_file_is_one_config_whether_loaded_or_imported():
    """The CLI loads a config file as module ``spectrax_config_<stem>``; imported, it is
    ``configs.<stem>``: the recorded task class differed, so a checkpoint the CLI wrote was
    refused by the same config imported (``Checkpointer(..., config_dict=...)``)."""
    import importlib.util
    import sys

    from spectrax.train import validate_config

    loaded = config_to_dict(load_config("burgers_fno", variant="smoke"))
    path = Path(__file__).resolve().parents[2] / "configs" / "burgers_fno.py"
    spec = importlib.util.spec_from_file_location("configs.burgers_fno", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        imported = config_to_dict(validate_config(module.get_config("smoke")))
    finally:
        del sys.modules[spec.name]
    assert loaded["task"]["__class__"] != imported["task"]["__class__"]
    assert config_differences(loaded, imported) == []
    # another file's class, or another class of the file, is still another config
    for other in ("configs.darcy_fno.BurgersFNO", "spectrax_config_burgers_fno.Other"):
        moved = {**imported, "task": {**imported["task"], "__class__": other}}
        assert config_differences(loaded, moved) == [
            f"task.__class__: {loaded['task']['__class__']!r} != {other!r}"
        ]
