"""The hand-out's ``./run.py unittest <section>``, over the project's own tests:

    python -m pearlnet.compat.course unittest relu|softmax|dense|crossentropy|sgd|momentum|mnist

runs the matching group of tests/test_compat_course.py with pytest (``all`` runs every group,
``interface`` and ``model`` the base classes and the Model); extra arguments go to pytest. The
exit code is pytest's.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: section -> the test class of tests/test_compat_course.py that covers it
GROUPS = {
    "relu": "TestReLU",
    "softmax": "TestSoftmax",
    "dense": "TestDense",
    "crossentropy": "TestCrossentropy",
    "sgd": "TestSGD",
    "momentum": "TestMomentum",
    "mnist": "TestMNIST",
    "interface": "TestInterface",
    "model": "TestModel",
}

USAGE = ("usage: python -m pearlnet.compat.course unittest <section> [pytest options]\n"
         f"sections: {', '.join(GROUPS)}, all")


def tests_file() -> Path:
    """tests/test_compat_course.py of the source checkout (src/pearlnet/compat/course/ -> root)."""
    return Path(__file__).resolve().parents[4] / "tests" / "test_compat_course.py"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) < 2 or args[0] != "unittest":
        print(USAGE, file=sys.stderr)
        return 2
    section, extra = args[1].lower(), args[2:]
    if section != "all" and section not in GROUPS:
        print(f"unknown section {args[1]!r}\n{USAGE}", file=sys.stderr)
        return 2
    path = tests_file()
    if not path.is_file():
        print(f"the tests are not here: {path} does not exist (they ship with the source "
              f"checkout, not the installed package)", file=sys.stderr)
        return 2
    try:
        import pytest
    except ImportError:
        print("pytest is not installed: pip install pytest", file=sys.stderr)
        return 2
    selection = [] if section == "all" else ["-k", GROUPS[section]]
    return int(pytest.main([str(path), *selection, *extra]))


if __name__ == "__main__":
    sys.exit(main())
