"""An MkDocs hook (see mkdocs.yml): the API reference covers every public name.

A page of the reference is a file in docs/api/ holding ``::: pearlnet.x`` (mkdocstrings renders
the module from its docstrings). A nav entry ``- pearlnet.x: api/x.md`` under "API reference"
whose file does not exist gets that page generated, so a new module needs one line in mkdocs.yml;
write the file when its page wants prose or options.

A module is public when no part of its dotted name starts with an underscore and it is a package
(``pearlnet``, ``pearlnet.nn``, ``pearlnet.compat.msu``...) or its package lists it in
``__all__`` as the module itself (``pearlnet.nn.losses``, ``pearlnet.optim.schedules``...). Its
public names are its ``__all__``.

After the build, every public module must have an entry in the rendered reference (a heading whose
anchor is its dotted name: a page holding ``::: pearlnet.nn``), and so must every public name:
``pearlnet.nn.Dense``, or the same object under another public name (``pearlnet.autodiff.grad``
is covered by ``pearlnet.grad``). mkdocstrings renders only objects that have a docstring, so a
name without one has no entry and fails the check. Names NumPy documents (``pearlnet.numpy.pi``,
``pearlnet.numpy.zeros``: NumPy's own objects passed through) are exempt.

Each failure is a warning, so ``mkdocs build --strict`` (``make docs``, and the test suite's
strict build) stops on it. Modules and names listed in docs/undocumented.txt are let through for
now (that list must be emptied); a listed name that has its entry now is a warning too, so the
list only shrinks. A listed name that is not public (not yet, or no longer) is only noted, so
work in progress can be listed before it lands.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger("api_reference")

ROOT = Path(__file__).resolve().parents[2]
ALLOWLIST = ROOT / "docs" / "undocumented.txt"
PACKAGE = "pearlnet"
ANCHOR = re.compile(r'\bid="(' + PACKAGE + r'(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"')
SCALARS = (int, float, complex, str, bytes, bool, type(None))

_anchors: set[str] = set()


def _import_package() -> ModuleType:
    # the source tree mkdocstrings reads (mkdocs.yml's paths), whatever else is installed
    src = str(ROOT / "src")
    if src not in sys.path[:1]:
        sys.path.insert(0, src)
    return importlib.import_module(PACKAGE)


def _public_part(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def public_modules() -> dict[str, ModuleType]:
    """{dotted name: module} of every public module (see the module docstring), in a stable
    order: each package before its submodules."""
    found: dict[str, ModuleType] = {}
    todo = [_import_package()]
    while todo:
        module = todo.pop(0)
        found[module.__name__] = module
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        exported = set(getattr(module, "__all__", ()))
        for info in pkgutil.iter_modules(path):
            if not _public_part(info.name):
                continue
            sub = importlib.import_module(f"{module.__name__}.{info.name}")
            # listed in __all__ as the module itself (not a function of the same name)
            if info.ispkg or (info.name in exported and getattr(module, info.name) is sub):
                todo.append(sub)
    return found


def numpy_passthrough(name: str, obj: Any) -> bool:
    """True for NumPy's own object under its own name (documented by NumPy)."""
    import numpy

    return getattr(numpy, name, object()) is obj


def public_names(modules: dict[str, ModuleType]) -> dict[str, Any]:
    """{"module.name": object} of every public name that is not a module or NumPy's own."""
    names = {}
    for mod_name, module in modules.items():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, ModuleType) or numpy_passthrough(name, obj):
                continue
            names[f"{mod_name}.{name}"] = obj
    return names


def resolve(path: str) -> Any:
    """The object at a dotted path such as ``pearlnet.Model.fit`` (None if there is none)."""
    parts = path.split(".")
    obj: Any = _import_package()
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return None
    return obj


def read_allowlist(path: Path = ALLOWLIST) -> list[str]:
    """The dotted names listed in ``path``, one a line (``#`` starts a comment)."""
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def missing_entries(anchors: set[str]) -> tuple[list[str], list[str]]:
    """(public modules without an entry, public names without an entry) given the anchors of
    the rendered reference."""
    modules = public_modules()
    names = public_names(modules)
    by_id: dict[int, set[str]] = {}
    for anchor in anchors:
        obj = resolve(anchor)
        if obj is not None:
            by_id.setdefault(id(obj), set()).add(anchor)
    missing_modules = [m for m in modules if m not in anchors]
    missing_names = []
    for path, obj in names.items():
        if path in anchors:
            continue
        others = by_id.get(id(obj), set())
        if isinstance(obj, SCALARS):  # a shared small int or None says nothing: same name too
            others = {a for a in others if a.rsplit(".", 1)[-1] == path.rsplit(".", 1)[-1]}
        if not others:
            missing_names.append(path)
    return missing_modules, missing_names


def check(anchors: set[str], allowlist: list[str]) -> tuple[list[str], list[str]]:
    """(problems, notes): the problems fail the strict build (empty when the reference is
    complete), the notes are for information."""
    missing_modules, missing_names = missing_entries(anchors)
    allowed = set(allowlist)
    problems = [f"public module {m} has no page in the API reference: add the line "
                f"'- {m}: api/<page>.md' under 'API reference' in mkdocs.yml's nav"
                for m in missing_modules if m not in allowed]
    problems += [f"public name {n} has no entry in the API reference: give it a docstring "
                 f"(mkdocstrings renders only documented objects; a constant or primitive takes "
                 f"a string literal on the line after its assignment), or, if it has one, let "
                 f"its module's page render it" for n in missing_names
                 if n not in allowed and n.rsplit(".", 1)[0] not in allowed]
    public = set(public_modules()) | set(public_names(public_modules()))
    missing = set(missing_modules) | set(missing_names)
    notes = []
    for name in allowlist:
        if name not in public:  # not (yet) public: work in progress elsewhere, or gone
            notes.append(f"docs/undocumented.txt lists {name}, which is not a public name "
                         f"(now)")
        elif name not in missing:
            problems.append(f"docs/undocumented.txt lists {name}, which has its entry in the "
                            f"API reference now: remove it from the list")
    return problems, notes


def _nav_pages(nav: Any) -> list[tuple[str, str]]:
    """Every (title, file) pair of an MkDocs nav, depth first."""
    pairs: list[tuple[str, str]] = []
    for item in nav or []:
        if isinstance(item, dict):
            for title, value in item.items():
                if isinstance(value, str):
                    pairs.append((title, value))
                else:
                    pairs += _nav_pages(value)
    return pairs


# -- MkDocs events -----------------------------------------------------------------------------
def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for title, uri in _nav_pages(config.nav):
        if uri.startswith("api/") and re.fullmatch(PACKAGE + r"(\.\w+)*", title) \
                and files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=f"# {title}\n\n::: {title}\n"))
    return files


def on_pre_build(config: Any) -> None:
    _anchors.clear()


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    _anchors.update(ANCHOR.findall(html))
    return html


def on_post_build(config: Any) -> None:
    allowlist = read_allowlist()
    problems, notes = check(_anchors, allowlist)
    for problem in problems:
        log.warning(problem)
    for note in notes:
        log.info(note)
    if allowlist:
        log.info(f"docs/undocumented.txt lets {len(allowlist) - len(notes)} public names through "
                 f"without an entry; that list must be emptied")
