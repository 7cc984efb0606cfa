"""The ``spectrax`` command. Subcommands: ``info`` (versions, devices, kernels)."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Callable, Sequence

_DEPENDENCIES = (
    "jax",
    "jaxlib",
    "equinox",
    "optax",
    "orbax-checkpoint",
    "chex",
    "jaxtyping",
    "flax",
    "numpy",
)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def kernel_support() -> dict[str, str]:
    """Which fft_conv implementations this process can run, and why not where it cannot."""
    import jax

    from spectrax.kernels.fft_conv import available_impls

    backend = jax.default_backend()
    out = {"xla": "yes (jnp.fft on " + backend + ")"}
    if "pallas" in available_impls():
        try:
            from spectrax.kernels.fft_conv import pallas_status  # type: ignore[attr-defined]

            out["pallas"] = pallas_status()
        except ImportError:
            out["pallas"] = "registered"
    else:
        out["pallas"] = "not available in this installation"
    return out


def info(args: argparse.Namespace | None = None) -> int:
    """Print package, JAX and dependency versions, backend, devices and kernel support."""
    import jax

    import spectrax

    lines = [
        f"spectrax {spectrax.__version__}",
        f"python   {platform.python_version()} ({sys.platform})",
    ]
    lines += [f"{d:<17}{_version(d)}" for d in _DEPENDENCIES]
    lines.append(f"backend  {jax.default_backend()}")
    devices = jax.devices()
    lines.append(f"devices  {len(devices)}: " + ", ".join(str(d) for d in devices[:8]))
    if len(devices) > 8:
        lines[-1] += ", ..."
    lines.append("fft_conv implementations:")
    lines += [f"  {name:<8}{state}" for name, state in kernel_support().items()]
    print("\n".join(lines))
    return 0


# Subcommands: name -> (help, add_arguments(parser), run(args) -> exit code). Modules that
# provide a subcommand register it here (train/eval live in spectrax.train).
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
_COMMANDS: dict[str, Command] = {
    "info": (
        "versions, backend, devices and the kernels this machine can run",
        lambda p: None,
        info,
    ),
}
_LAZY_COMMAND_MODULES = ("spectrax.train._cli",)


def _load_commands() -> None:
    for mod in _LAZY_COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        _COMMANDS.update(m.COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="spectrax", description="Spectral operators and state-space models in JAX."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add_args, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add_args(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(_COMMANDS[args.command][2](args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
