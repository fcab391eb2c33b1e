"""Every ```python block of docs/*.md and README.md runs: in order, one namespace per file, so drift fails.

The blocks check themselves with ``assert``; a block that raises fails the test with the file
and block number in the traceback.
"""
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
DOC_FILES = sorted(DOCS.glob("*.md")) + [DOCS.parent / "README.md"]


def python_blocks(path):
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


def test_the_tutorials_exist_and_have_code():
    names = {path.name for path in DOC_FILES}
    assert {"concepts.md", "image-kernels.md"} <= names
    assert len(python_blocks(DOCS / "concepts.md")) >= 10
    assert len(python_blocks(DOCS / "image-kernels.md")) >= 5


def test_block_extraction():
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a + 1\n```\n"
    assert PYTHON_BLOCK.findall(text) == ["a = 1\n", "b = a + 1\n"]


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_doc_code_runs(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": f"docs.{path.stem}"}
    for number, block in enumerate(python_blocks(path), start=1):
        code = compile(block, f"{path.name} [python block {number}]", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation is the point
