"""The documentation's examples run: every ```python block of README.md and docs/*.md, in order,
each file in one namespace (a block may use what an earlier one made), in a fresh working
folder. Shell
blocks (```sh) are launch lines and are not run here; the distributed tests launch mpiexec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_the_docs_have_pages_with_examples():
    assert any(python_blocks(p) for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(python_blocks(page)):
        try:
            exec(compile(code, f"{page.name}[block {i + 1}]", "exec"), namespace)
        except Exception as err:  # name the block, keep the traceback
            raise AssertionError(f"{page.name}, python block {i + 1} failed: {err!r}") from err
