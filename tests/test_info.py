"""`spectrax info`: versions, backend, devices, kernel support."""

import shutil
import subprocess
import sys

import jax

from spectrax.cli import kernel_support, main


def test_info_reports_versions_devices_and_kernels(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spectrax ")
    assert f"jax              {jax.__version__}" in out
    for dep in ("equinox", "optax", "orbax-checkpoint", "chex", "jaxtyping", "flax"):
        assert dep in out
    assert f"backend  {jax.default_backend()}" in out
    assert f"devices  {len(jax.devices())}:" in out
    assert "fft_conv implementations:" in out and "xla" in out
    assert set(kernel_support()) >= {"xla", "pallas"}


def test_console_script_runs():
    exe = shutil.which("spectrax", path=str(__import__("pathlib").Path(sys.executable).parent))
    cmd = [exe, "info"] if exe else [sys.executable, "-m", "spectrax.cli", "info"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "fft_conv implementations:" in res.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "info" in capsys.readouterr().out
