"""The ``spectrax`` command. Subcommands: ``info`` (versions, devices, kernels), ``bench``
(the benchmark scripts of ``scripts/``); ``train`` and ``eval`` come from
:mod:`spectrax.train._cli`."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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


def _scripts_dir() -> Path:
    """``scripts/`` of the checkout spectrax is installed from (an editable install)."""
    return Path(__file__).resolve().parents[1] / "scripts"


def benchmarks() -> dict[str, Path]:
    """``{name: path}`` of the benchmark scripts ``scripts/bench_<name>.py``; empty when
    spectrax is not installed from a checkout (the scripts are not part of the package)."""
    root = _scripts_dir()
    return {p.stem.removeprefix("bench_"): p for p in sorted(root.glob("bench_*.py"))}


def _first_doc_line(path: Path) -> str:
    """The first sentence of a script's docstring on one line (it may wrap over several)."""
    import ast
    import re

    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    sentence = re.match(r"(.+?\.)(?:\s|$)", text)
    return sentence.group(1) if sentence else text


def _add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="benchmark to run (none: list them)")
    p.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="the benchmark's own options (spectrax bench NAME --help lists them)",
    )


def bench(args: argparse.Namespace) -> int:
    """List the benchmarks, or run ``scripts/bench_<name>.py`` with the remaining arguments
    (it writes its JSON under ``benchmarks/`` unless given ``--out``)."""
    found = benchmarks()
    if not found:
        print(
            f"spectrax bench: no benchmark scripts at {_scripts_dir()}; they ship with the "
            f"repository, not the package: install from a clone (pip install -e .).",
            file=sys.stderr,
        )
        return 2
    if args.name is None:
        width = max(len(n) for n in found)
        print("benchmarks (spectrax bench NAME [options]; NAME --help for the options):")
        for name, path in found.items():
            print(f"  {name:<{width}}  {_first_doc_line(path)}")
        return 0
    if args.name not in found:
        print(
            f"spectrax bench: unknown benchmark {args.name!r}; expected one of {list(found)}.",
            file=sys.stderr,
        )
        return 2
    import runpy

    script = found[args.name]
    saved = sys.argv
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:  # the script's own exit status (argparse --help: 0)
        code = e.code
        if isinstance(code, int) or code is None:
            return code or 0
        print(code, file=sys.stderr)  # SystemExit("message"): Python prints it and exits 1
        return 1
    finally:
        sys.argv = saved
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
    "bench": (
        "run a benchmark script of scripts/ (no name: list them)",
        _add_bench_args,
        bench,
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
        prog="spectrax",
        description="Spectral operators and state-space models in JAX.",
        allow_abbrev=False,  # `--smok` is an error, not `--smoke`
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add_args, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_, allow_abbrev=False)
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
