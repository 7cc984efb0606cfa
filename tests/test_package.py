"""The top-level package: every subpackage is reachable from `import spectrax`."""

import importlib

import pytest

import spectrax

SUBPACKAGES = ("data", "models", "nn", "ssm", "theory", "train")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_is_an_attribute_after_import_spectrax(name, monkeypatch):
    """``import spectrax; spectrax.nn.S4D`` raised AttributeError unless another import had
    loaded the subpackage (as it has in this process: removed from the package here)."""
    module = importlib.import_module(f"spectrax.{name}")
    monkeypatch.delattr(spectrax, name)
    assert getattr(spectrax, name) is module
    assert name in dir(spectrax) and name in spectrax.__all__


def test_unknown_attribute_still_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        spectrax.nope  # noqa: B018


def test_the_wheel_ships_the_configs_and_py_typed(tmp_path):
    """A built wheel (``pip wheel .``) holds every subpackage, the typing marker and the configs,
    and an installation of it finds its configs by name from any folder: ``spectrax train`` in a
    non-editable install said "config 'burgers_fno' not found; available: none" (the configs
    lived only in the checkout's configs/ folder)."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # built from a copy of what the wheel is made of: setuptools builds in place and ships
    # whatever an earlier build left in build/lib (a deleted config, say)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, src / name)
    for name in ("spectrax", "configs"):
        shutil.copytree(
            root / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("spectrax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (root / "configs").glob("*.py"))
    assert "__init__.py" in configs and len(configs) > 1
    assert {n for n in names if n.startswith("spectrax/configs/")} == {
        f"spectrax/configs/{c}" for c in configs
    }
    assert "spectrax/py.typed" in names
    packages = {p.parent.relative_to(root).as_posix() for p in root.glob("spectrax/**/__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= names

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import spectrax, spectrax.train._config as t; "
        "print(spectrax.__file__); print(t.resolve_config_path('burgers_fno'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout.split()
    assert out[0] == str(site / "spectrax" / "__init__.py")
    assert out[1] == str(site / "spectrax" / "configs" / "burgers_fno.py")
