"""The documentation runs and builds.

- Every ```python block of README.md and docs/**/*.md runs, in order, each page in one namespace
  (a block may use what an earlier one made), in a fresh working folder. Shell blocks (```sh)
  are launch lines and are not run here; the distributed tests launch mpiexec.
- While they run, Fashion-MNIST is a small subset (the first 1,000 training and 500 test images,
  or stand-in images of the same shape where the dataset is not installed), so a tutorial reads
  as the real run and its test stays short.
- A block may be shortened for its test by HTML comments right above it, which the site does not
  show: ``<!-- in the tests: train_size=2000 => train_size=500 -->`` replaces the text on the
  left by the text on the right, which must occur in the block exactly once.
- Every docstring example (``>>>``) of every pearlnet module runs, those of the docstrings after
  assignments (primitives, constants) included: they are the API reference's examples.
- The site builds with ``mkdocs build --strict``: a broken link or cross-reference, or a public
  name without an entry in the API reference (docs/hooks/api_reference.py), fails it.
"""

from __future__ import annotations

import ast
import doctest
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import pearlnet
import pearlnet.data.mnist

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SHORTEN = re.compile(r"^<!-- in the tests: (.*?) => (.*?) -->\n", re.M)
BLOCK_WITH_NOTES = re.compile(r"((?:^<!-- in the tests: .*? -->\n)*)\n?^```python\n(.*?)^```",
                              re.S | re.M)
SUBSET = (1000, 500)  # the Fashion-MNIST images (training, test) the docs run on


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def runnable_blocks(path: Path) -> list[str]:
    """The ```python blocks of ``path`` as the tests run them: shortened as the HTML comments
    right above each say (see the module docstring)."""
    blocks = []
    for notes, code in BLOCK_WITH_NOTES.findall(path.read_text()):
        for old, new in SHORTEN.findall(notes):
            assert code.count(old) == 1, f"{path.name}: {old!r} is not once in its block"
            code = code.replace(old, new)
        blocks.append(code)
    return blocks


PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


@functools.lru_cache(maxsize=1)
def small_fashion_mnist(train: int = SUBSET[0], test: int = SUBSET[1]):
    """(x_train, y_train), (x_test, y_test): the first ``train`` and ``test`` images of
    Fashion-MNIST, or, where it is not installed, stand-ins of the same shapes and dtypes (a
    bright square per class, with noise) so the pages still run."""
    try:
        (x, y), (xt, yt) = _real_load("fashion-mnist", None, False, "load_fashion_mnist")
        return (x[:train].copy(), y[:train].copy()), (xt[:test].copy(), yt[:test].copy())
    except pearlnet.data.DatasetNotFoundError:
        rng = np.random.default_rng(0)

        def fake(n):
            labels = (np.arange(n) % 10).astype(np.uint8)
            images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
            for k in range(10):
                r, c = divmod(k, 5)
                images[labels == k, 4 + 10 * r:12 + 10 * r, 2 + 5 * c:7 + 5 * c] += 180
            return images, labels

        return fake(train), fake(test)


_real_load = pearlnet.data.mnist._load


@pytest.fixture
def small_datasets(monkeypatch):
    """load_fashion_mnist() returns small_fashion_mnist() however it was imported."""
    def load(name, root, download, caller):
        if name == "fashion-mnist":
            (x, y), (xt, yt) = small_fashion_mnist()
            return (x.copy(), y.copy()), (xt.copy(), yt.copy())
        return _real_load(name, root, download, caller)

    monkeypatch.setattr(pearlnet.data.mnist, "_load", load)


def test_the_docs_have_pages_with_examples():
    assert any(python_blocks(p) for p in PAGES)
    assert all(len(runnable_blocks(p)) == len(python_blocks(p)) for p in PAGES)
    tutorials = sorted((DOCS / "tutorials").glob("*.md"))
    assert len(tutorials) == 6 and all(python_blocks(p) for p in tutorials)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_block_runs(page, tmp_path, monkeypatch, small_datasets):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    # one BLAS thread: the pages' matrices are small, and on a busy 2-core machine a second
    # OpenBLAS thread made them several times slower (pearlnet.report.study.blas_threads)
    with threadpool_limits(limits=1, user_api="blas"):
        for i, code in enumerate(runnable_blocks(page)):
            try:
                exec(compile(code, f"{page.name}[block {i + 1}]", "exec"), namespace)
            except Exception as err:  # name the block, keep the traceback
                raise AssertionError(f"{page.name}, python block {i + 1} failed: "
                                     f"{err!r}") from err


def test_the_subset_is_used(small_datasets):
    (x, y), (xt, yt) = pearlnet.data.load_fashion_mnist()
    assert x.shape == (SUBSET[0], 28, 28) and xt.shape == (SUBSET[1], 28, 28)
    assert x.dtype == np.uint8 and y.dtype == np.uint8 and set(np.unique(y)) == set(range(10))


# -- docstring examples --------------------------------------------------------------------------
MODULES = sorted(m.name for m in pkgutil.walk_packages(pearlnet.__path__, "pearlnet.")
                 if not m.name.endswith("__main__"))


def attribute_doctests(module) -> list[doctest.DocTest]:
    """The examples of the string literals right after a module-level assignment (``exp =
    Primitive(...)`` then its docstring): the API reference renders them, but Python keeps no
    such docstring at run time, so doctest alone never finds them."""
    tree = ast.parse(inspect.getsource(module))
    parser = doctest.DocTestParser()
    tests = []
    for before, node in zip(tree.body, tree.body[1:]):
        if isinstance(before, (ast.Assign, ast.AnnAssign)) and isinstance(node, ast.Expr) \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            targets = before.targets if isinstance(before, ast.Assign) else [before.target]
            name = f"{module.__name__}.{', '.join(ast.unparse(t) for t in targets)}"
            test = parser.get_doctest(inspect.cleandoc(node.value.value), dict(vars(module)),
                                      name, module.__file__, node.lineno - 1)
            if test.examples:
                tests.append(test)
    return tests


@pytest.mark.parametrize("name", ["pearlnet", *MODULES])
def test_every_docstring_example_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    if result.failed:  # run again, reporting, for the message
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        for test in doctest.DocTestFinder().find(module):
            runner.run(test, out=lambda text: print(text, end=""))
    assert result.failed == 0, f"{name}: {result.failed} docstring examples failed (see stdout)"
    runner, report = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS), []
    for test in attribute_doctests(module):
        # not print: doctest captures sys.stdout while it runs, so the report would become
        # the next example's output
        runner.run(test, out=report.append)
    print("".join(report), end="")
    assert runner.failures == 0, f"{name}: {runner.failures} examples of docstrings after " \
                                 f"assignments failed (see stdout)"


# -- the site ------------------------------------------------------------------------------------
def test_the_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``, as ``make docs`` runs it (a few seconds)."""
    if importlib.util.find_spec("mkdocs") is None or \
            importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.fail("the docs extra is not installed: pip install -e '.[docs]' (the test extra "
                    "includes it)")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    problems = [line for line in proc.stderr.splitlines() if not line.startswith("INFO")]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems)
    for page in ("index.html", "api/pearlnet/index.html", "tutorials/1-derivatives/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def _api_reference_hook():
    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("api_reference",
                                                  DOCS / "hooks" / "api_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_check_finds_a_missing_name_and_a_stale_allowlist_entry():
    """The checker itself: a reference that lacks one name, or one module, is caught; an
    allowlisted name that has its entry must leave the list; an unknown one is only noted."""
    hook = _api_reference_hook()
    modules = hook.public_modules()
    names = hook.public_names(modules)
    assert {"pearlnet", "pearlnet.nn", "pearlnet.nn.losses", "pearlnet.compat.msu",
            "pearlnet.compat.msu.layers"} <= set(modules)
    assert "pearlnet.numpy.pi" not in names and "pearlnet.grad" in names  # NumPy's own: exempt
    complete = set(modules) | set(names)
    assert hook.check(complete, []) == ([], [])
    problems, _ = hook.check(complete - {"pearlnet.data.load_digits"}, [])
    assert len(problems) == 1 and "pearlnet.data.load_digits" in problems[0]
    problems, _ = hook.check(complete - {"pearlnet.autodiff.grad"}, [])
    assert problems == []  # the same object is documented as pearlnet.grad
    problems, _ = hook.check(complete - {"pearlnet.models"}, [])
    assert len(problems) == 1 and "module pearlnet.models" in problems[0]
    problems, notes = hook.check(complete, ["pearlnet.data.load_digits", "pearlnet.nothing"])
    assert len(problems) == 1 and "remove it" in problems[0] and len(notes) == 1
