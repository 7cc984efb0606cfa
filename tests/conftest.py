"""Strict, deterministic test setup shared by every test module.

- 8 fake CPU devices (multi-device tests), CPU only.
- XLA:CPU backend optimisation off and XLA:CPU's fusion emitters off (the older loop
  emitter, where the jaxlib still has that flag: 0.10 does, 0.11 not): the suite is bound by
  compile time (thousands of small programs); level 0 halved it, and the older emitter
  compiles a third faster again (the S4/S4D/S5 gradient, mode and PTD tests of
  tests/nn/test_ssm.py: 35.6 s -> 24.0 s on one core, two runs each); results are the same to
  the tolerances tested. Code generation unsplit and Eigen single-threaded
  (tests/models and tests/kernels/test_fft_conv.py with -n 2: 169 s -> 153 s on a 2-core AMD
  EPYC). A run that sets any of these flags in XLA_FLAGS keeps its own.
- Strict dtype promotion and rank promotion errors: silent upcasts or broadcasts are bugs.
- jaxtyping shape/dtype annotations checked at run time on the whole package (beartype).
- JAX's caches cleared after each test module (see `_fresh_caches_per_module`).
"""

import gc
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# `spectrax train` / `eval` called in-process would turn on JAX's persistent compilation cache
# for the rest of the session (tests/test_cli.py tests it in a subprocess)
os.environ.setdefault("SPECTRAX_COMPILATION_CACHE", "0")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _flags = (_flags + " --xla_force_host_platform_device_count=8").strip()
if "xla_backend_optimization_level" not in _flags:
    _flags = (_flags + " --xla_backend_optimization_level=0").strip()


def _xla_takes(flags: list[str]) -> bool:
    """Whether the installed jaxlib starts with these XLA flags: XLA aborts the process on an
    unknown one, and jaxlib 0.11 dropped ``xla_cpu_use_fusion_emitters`` (its name is still in
    the library, so looking for it there said yes). Tried in a subprocess (about 1 s)."""
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu"}
    probe = "import jax; jax.devices()"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True)
    return run.returncode == 0


_candidates = [
    ("xla_cpu_use_fusion_emitters", "false"),
    # one LLVM module per program, not split into parts for parallel code generation (with two
    # workers on two cores there are no idle threads to compile the parts on)
    ("xla_cpu_parallel_codegen_split_count", "1"),
    # Eigen's matmuls and FFTs on the calling thread: the two workers already fill the cores
    ("xla_cpu_multi_thread_eigen", "false"),
]
_candidates = [f"--{flag}={value}" for flag, value in _candidates if flag not in _flags]
# the flags a previous conftest (pytest-xdist's controller, for its workers) found usable
_checked = os.environ.get("SPECTRAX_TEST_XLA_FLAGS")
if _checked is None:
    if _xla_takes([_flags, *_candidates]):
        _checked = " ".join(_candidates)
    else:  # one at a time
        _checked = " ".join(f for f in _candidates if _xla_takes([_flags, f]))
    os.environ["SPECTRAX_TEST_XLA_FLAGS"] = _checked
_flags = f"{_flags} {_checked}".strip()
os.environ["XLA_FLAGS"] = _flags

import jax  # noqa: E402
import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402


def _import_spectrax_dependencies() -> None:
    """Import every module that spectrax's modules import at their top level, before the
    jaxtyping hook below. While the hook runs a spectrax module it points Python's bytecode
    cache at its own file names, so a library module first imported from inside spectrax (jax,
    equinox, orbax, flax, ...: about 1,150 of them) was compiled from source in every test
    process (collecting the suite: 24.5 s before, 22.7 s after, 2-core CPU)."""
    import ast
    import importlib
    from pathlib import Path

    names = set()
    for path in (Path(__file__).resolve().parents[1] / "spectrax").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            stmts = node.body if isinstance(node, ast.Try) else [node]
            for stmt in stmts:
                if isinstance(stmt, ast.Import):
                    names.update(alias.name for alias in stmt.names)
                elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                    names.add(stmt.module)
    for name in sorted(names):
        if name.split(".")[0] != "spectrax":
            try:
                importlib.import_module(name)
            except ImportError:  # an optional dependency (spectrax guards its import)
                pass


_import_spectrax_dependencies()

with install_import_hook("spectrax", "beartype.beartype"):
    # every subpackage, so each module is decorated (a module first imported after this
    # block would escape the check)
    import spectrax  # noqa: F401, E402
    import spectrax.data  # noqa: F401, E402
    import spectrax.models  # noqa: F401, E402
    import spectrax.nn  # noqa: F401, E402
    import spectrax.nn._nnx  # noqa: F401, E402  (loaded on first use, not by spectrax.nn)
    import spectrax.ssm  # noqa: F401, E402
    import spectrax.theory  # noqa: F401, E402
    import spectrax.train  # noqa: F401, E402
    import spectrax.transforms  # noqa: F401, E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh, fixed PRNG key per test."""
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Run the test body with 64-bit types enabled (float64 references and theory checks)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def library_errors():
    """Switch off the runtime jaxtyping check so a test sees the library's own error message,
    the one users get (the import hook exists only in tests)."""
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


@pytest.fixture(autouse=True, scope="module")
def _fresh_caches_per_module():
    """Drop JAX's compilation and tracing caches after each test module. A worker process runs
    hundreds of modules; with everything they compiled still held, each later compile ran
    slower (README's SSM example took 20.7 s after two SSM modules in the same process, 12.8 s
    alone), and the suite took 14m17 on 2 cores instead of 10m43 with this."""
    yield
    jax.clear_caches()
    gc.collect()
