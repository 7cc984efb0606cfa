"""README's Python examples run as written, and its test command is the one CI runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run():
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "README has no python example"
    for i, src in enumerate(blocks):
        exec(compile(src, f"README.md[python block {i}]", "exec"), {"__name__": "readme"})


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = re.search(r"# 2\. .*\n.*?&& (pip install .*)\n", readme).group(1).strip()
    assert cmd in ci, f"README test command {cmd!r} is not in .ci/run"
