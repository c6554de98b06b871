"""The package as users get it: ``python -m build`` makes a wheel and an sdist, the wheel ships
``py.typed``, and, installed into a fresh virtual environment, it passes the smoke test: import,
one gradient check, ``pearlnet --version``.

About 15 s on the 2-core machine (the build in its isolated environment, then the install of the
wheel and NumPy, from pip's cache when it has them). ``make package`` runs the same steps from
the shell. Needs the package registries (setuptools for the isolated build, NumPy for the fresh
environment), as ``make test`` does anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import pearlnet

ROOT = Path(__file__).resolve().parent.parent

SMOKE = """
import pathlib
import numpy as np
import pearlnet
import pearlnet.numpy as pnp
from pearlnet.check import check_grad

assert pathlib.Path(pearlnet.__file__).parent.joinpath("py.typed").is_file()
report = check_grad(lambda w: pnp.sum(pnp.tanh(w) ** 2), np.array([0.3, -1.2, 2.0]))
assert report.max_error < 1e-10
print(pearlnet.__version__, pearlnet.__file__)
"""


def run(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # no PYTHONPATH: a source tree on it would look like an installed pearlnet to pip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, args))} exited {proc.returncode}:\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The wheel and the sdist of this checkout, built by ``python -m build``; or, with
    $PEARLNET_DIST set (``make package``), the ones already built there."""
    if os.environ.get("PEARLNET_DIST"):
        return (ROOT / os.environ["PEARLNET_DIST"]).resolve()
    pytest.importorskip("build", reason="the test extra installs build")
    # a copy of what the sdist is made of, so the build writes nothing into the checkout
    # (setuptools' egg-info) while another test run may be reading it
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, source], cwd=out)
    return out


def test_build_gives_a_wheel_and_an_sdist_with_py_typed(dist):
    version = pearlnet.__version__
    wheel = dist / f"pearlnet-{version}-py3-none-any.whl"
    sdist = dist / f"pearlnet-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist.iterdir())
    names = zipfile.ZipFile(wheel).namelist()
    assert "pearlnet/py.typed" in names and "pearlnet/__init__.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    with tarfile.open(sdist) as tar:
        assert f"pearlnet-{version}/src/pearlnet/py.typed" in tar.getnames()
        assert f"pearlnet-{version}/LICENSE" in tar.getnames()


def test_the_wheel_installs_and_passes_the_smoke_test(dist, tmp_path):
    """A fresh venv without pip; this environment's pip installs the wheel into it
    (``pip --python``), so no pip is bootstrapped there."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    wheel = dist / f"pearlnet-{pearlnet.__version__}-py3-none-any.whl"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
         "--disable-pip-version-check", wheel], cwd=tmp_path)
    # -I: isolated from this checkout and from PYTHON* variables; cwd is not the source tree
    out = run([python, "-I", "-c", SMOKE], cwd=tmp_path).stdout
    assert out.startswith(pearlnet.__version__) and str(venv) in out, out
    version = run([venv / "bin" / "pearlnet", "--version"], cwd=tmp_path).stdout
    assert version.strip() == f"pearlnet {pearlnet.__version__}", version
