"""README's Python examples run as written, and its test command is the one CI runs."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


BLOCKS = _python_blocks((ROOT / "README.md").read_text())


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 1, "README has no python example"


# one test per block: each runs on its own, and the parallel runner spreads them out
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    src = BLOCKS[index]
    exec(compile(src, f"README.md[python block {index}]", "exec"), {"__name__": "readme"})


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = re.search(r"# 2\. .*\n.*?&& (pip install .*)\n", readme).group(1).strip()
    assert cmd in ci, f"README test command {cmd!r} is not in .ci/run"
