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
