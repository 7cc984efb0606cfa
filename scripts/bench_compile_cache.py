"""What JAX's persistent compilation cache saves a rerun of ``spectrax train``.

``spectrax train`` and ``spectrax eval`` keep compiled programs under ``$SPECTRAX_CACHE/jax``
(``spectrax/train/_cli.py``). For each config this script runs ``spectrax train <config>
--smoke`` as a new process three times, with the data already cached (a first run fills the data
cache and is not timed): with an empty compilation cache (it compiles and writes every program),
again with the cache it wrote (it loads them), and with the cache turned off
(``SPECTRAX_COMPILATION_CACHE=0``: it compiles again without writing), and records each
process's wall time and the cache's size. Writes ``benchmarks/compile-cache-<device>.json``.
Usage::

    python scripts/bench_compile_cache.py                       # s4d_recall and burgers_fno
    python scripts/bench_compile_cache.py --configs darcy_fno
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import time


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["s4d_recall", "burgers_fno"])
    p.add_argument("--out", type=pathlib.Path, default=None)
    return p.parse_args(argv)


def _train(config: str, env: dict[str, str], workdir: pathlib.Path) -> float:
    """Wall seconds of one ``spectrax train <config> --smoke`` process."""
    argv = [sys.executable, "-m", "spectrax", "train", config, "--smoke", "--no-progress"]
    start = time.perf_counter()
    subprocess.run([*argv, "--workdir", str(workdir)], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _size(folder: pathlib.Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def main(argv=None) -> int:
    args = _parse(argv)
    from spectrax._benchmark import provenance, record_path, write_record

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        base = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR",)}
        for config in args.configs:
            cache = root / config
            env = {**base, "SPECTRAX_CACHE": str(cache), "SPECTRAX_COMPILATION_CACHE": "1"}
            off = {**env, "SPECTRAX_COMPILATION_CACHE": "0"}
            _train(config, off, root / f"{config}-data")  # fills the data cache, not timed
            row = {"config": config, "variant": "smoke"}
            row["first_run_s"] = _train(config, env, root / f"{config}-1")
            row["cache_entries"], row["cache_bytes"] = _size(cache / "jax")
            row["cached_run_s"] = _train(config, env, root / f"{config}-2")
            row["uncached_run_s"] = _train(config, off, root / f"{config}-3")
            row["uncached_over_cached"] = row["uncached_run_s"] / row["cached_run_s"]
            logging.info("%s", row)
            rows.append(row)
    result = {
        "benchmark": "spectrax train <config> --smoke as a new process: wall time with JAX's "
        "persistent compilation cache empty (first), filled by that run (cached), and off",
        **provenance(),
        "note": "one process per run, data cache filled beforehand; wall times include Python "
        "and JAX start-up, data loading and the smoke training itself",
        "rows": rows,
    }
    out = write_record(result, args.out or record_path(__file__, "compile-cache"))
    logging.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
