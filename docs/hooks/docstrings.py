"""A Griffe extension (loaded by mkdocstrings, see mkdocs.yml): pearlnet's docstrings are plain
text with doctest examples and a few reStructuredText habits; this turns them into the Markdown
the API reference renders, without touching the source.

- a doctest example (a run of lines from one starting with ``>>>`` to the next blank line) becomes
  a fenced ``python`` block, so ``>>>`` is not read as a quotation and ``[[0, 1], [2]]`` in its
  output is not read as a cross-reference;
- a role such as :func:`load_mnist` becomes the code span `load_mnist`;
- a paragraph ending in ``::`` (reStructuredText's "a literal block follows") ends in ``:``.

Griffe reads the source; an object made at run time (``Sigmoid = _activation_layer(...)``,
``relu = Activation(..., doc=...)``) has its docstring only at run time. For an object without a
docstring in the source, the docstring it has at run time, its own (not its class's), is used.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import griffe

# the source tree mkdocstrings reads (mkdocs.yml's paths), not another installed copy
SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path[:1]:
    sys.path.insert(0, SRC)

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|const):`~?([^`]+)`")


def markdown(text: str) -> str:
    """The docstring ``text`` with its doctest blocks fenced and its roles turned into code."""
    out: list[str] = []
    fence: str | None = None  # the indentation of an open doctest fence
    in_code = False  # inside a fenced block the docstring wrote itself
    for line in text.splitlines():
        stripped = line.strip()
        if fence is not None and not stripped:
            out.append(f"{fence}```")
            fence = None
        if fence is None and stripped.startswith("```"):
            in_code = not in_code
        if fence is None and not in_code and stripped.startswith(">>>"):
            fence = line[: len(line) - len(line.lstrip())]
            out.append(f"{fence}```python")
        if fence is None and not in_code:
            line = ROLE.sub(r"`\1`", line)
            if line.endswith("::") and not line.endswith(" ::"):
                line = line[:-1]
        out.append(line)
    if fence is not None:
        out.append(f"{fence}```")
    return "\n".join(out)


def runtime_docstring(path: str) -> str | None:
    """The docstring the object at dotted ``path`` has at run time, if it is its own."""
    parts = path.split(".")
    obj: Any = None
    for i in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        break
    if obj is None:
        return None
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    elif inspect.isroutine(obj):
        doc = obj.__doc__
    else:  # an instance: a __doc__ of its own, not its class's
        doc = getattr(obj, "__dict__", {}).get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


class DocstringMarkdown(griffe.Extension):
    """Rewrite every docstring once the object tree is built (see the module docstring)."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is None and obj.kind.value in ("attribute", "class", "function"):
            doc = runtime_docstring(obj.path)
            if doc is not None:
                obj.docstring = griffe.Docstring(doc, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
