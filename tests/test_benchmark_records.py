"""The record writer every benchmark script of ``scripts/`` shares (``spectrax/_benchmark.py``)."""

import json
from pathlib import Path

import pytest

from spectrax._benchmark import provenance, record_path, write_record

ROOT = Path(__file__).resolve().parents[1]


def test_default_record_lands_in_the_checkouts_benchmarks_folder(tmp_path, monkeypatch):
    # bench_gaunt, bench_spectral_conv, bench_t1_vs_fno, bench_fno_accuracy and the check_*
    # scripts wrote to ./benchmarks of the working directory, the others beside scripts/
    monkeypatch.chdir(tmp_path)
    script = ROOT / "scripts" / "bench_gaunt.py"
    assert record_path(script, "gaunt") == ROOT / "benchmarks" / "gaunt-cpu.json"
    h100 = ROOT / "benchmarks" / "fft_conv-h100.json"
    assert record_path(str(script), "fft_conv", "h100") == h100


def test_a_record_is_replaced_in_one_step(tmp_path, monkeypatch):
    out = tmp_path / "new" / "folder" / "r.json"
    record = {"benchmark": "b", **provenance(), "rows": [{"L": 256, "ms": 1.5}]}
    assert write_record(record, out) == out
    assert json.loads(out.read_text()) == record
    assert out.read_text().endswith("}\n")

    # killed after writing the new text, before it replaced the record: the old one is whole
    def killed(self, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_record({"benchmark": "b", "rows": []}, out)
    assert json.loads(out.read_text()) == record


def test_an_unserialisable_record_leaves_the_previous_file(tmp_path):
    out = tmp_path / "r.json"
    write_record({"rows": [1]}, out)
    with pytest.raises(TypeError):
        write_record({"rows": [object()]}, out)
    assert json.loads(out.read_text()) == {"rows": [1]}
