"""MNIST and Fashion-MNIST: find the four IDX files on disk, or download and verify them.

``load_mnist()`` and ``load_fashion_mnist()`` return the arrays as stored, like Keras::

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    # x_train: uint8 (60000, 28, 28), y_train: uint8 (60000,) in 0..9; the test pair has 10000

Where they look, in order (``<name>`` is ``mnist`` or ``fashion-mnist``):

1. ``root=``, when given: the folder holding the four files. Nothing else is searched.
2. ``$PEARLNET_DATA/<name>``, when the variable is set.
3. ``~/.cache/pearlnet/<name>``.
4. ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` installs there).

A folder counts when it holds all four files, each either gzipped (``train-images-idx3-ubyte.gz``)
or not (``train-images-idx3-ubyte``; the plain one is read when both are there). Failing that,
and unless ``download=False``, the missing files are downloaded into ``$PEARLNET_DATA/<name>``
(or ``~/.cache/pearlnet/<name>``) from the public mirrors, each checked against its SHA-256 below
before it is moved into place; a failed or interrupted download leaves no file behind. Files
found on disk are not hashed (Debian re-wrote the gzip headers of its copies, so their bytes
differ from the mirrors'); they are validated by content instead: the IDX magic numbers and byte
counts, 60000/10000 images of 28x28, as many labels as images, labels in 0..9.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx

__all__ = ["load_mnist", "load_fashion_mnist", "download_dataset", "DatasetNotFoundError",
           "ChecksumError", "FASHION_MNIST_CLASSES", "FILES", "SYSTEM_DATASETS"]

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
"""The four files of either dataset, without the ``.gz`` suffix, in the order they are returned."""

SYSTEM_DATASETS = Path("/usr/share/datasets")
"""The system-wide dataset folder searched last."""

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
"""Fashion-MNIST's class names, indexed by label.

``FASHION_MNIST_CLASSES[9]`` is ``"Ankle boot"``."""

Fetch = Callable[[str], IO[bytes]]
_CHUNK = 1 << 20
_TIMEOUT = 60.0


@dataclass(frozen=True)
class Dataset:
    """What a loader needs to know about one dataset: mirrors, SHA-256 of each ``.gz``, sizes."""

    name: str
    title: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]
    n_train: int = 60000
    n_test: int = 10000
    shape: tuple[int, int] = (28, 28)
    num_classes: int = 10


# SHA-256 of the gzipped files as the mirrors serve them (the LeCun/Zalando originals). They are
# the values in TensorFlow Datasets' url_checksums (mnist.txt, fashion_mnist.txt). The Fashion-MNIST
# ones were also checked against Debian's copies: its .gz files differ only in the gzip header
# (no file name, a 2020 time stamp); restoring the original header reproduces these hashes.
DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        name="mnist", title="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        sha256={
            "train-images-idx3-ubyte.gz":
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz":
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz":
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz":
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        }),
    "fashion-mnist": Dataset(
        name="fashion-mnist", title="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz":
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz":
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz":
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz":
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        }),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the searched folders and could not be downloaded."""


class ChecksumError(OSError):
    """A downloaded file whose SHA-256 is not the expected one (it was deleted)."""


def cache_dir() -> Path:
    """``~/.cache/pearlnet``, the per-user folder searched and downloaded into."""
    return Path.home() / ".cache" / "pearlnet"


def _urlopen(url: str) -> IO[bytes]:
    return urllib.request.urlopen(url, timeout=_TIMEOUT)


def _find_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The four files present in ``folder`` (plain name first, then ``.gz``) and those missing."""
    found, missing = [], []
    for base in FILES:
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            missing.append(base)
    return found, missing


def _search_dirs(name: str) -> list[Path]:
    dirs = []
    env = os.environ.get("PEARLNET_DATA")
    if env:
        dirs.append(Path(env).expanduser() / name)
    dirs.append(cache_dir() / name)
    dirs.append(SYSTEM_DATASETS / name)
    return dirs


def _download_dir(name: str) -> Path:
    env = os.environ.get("PEARLNET_DATA")
    return (Path(env).expanduser() if env else cache_dir()) / name


def _fetch_verified(urls: list[str], target: Path, sha256: str, fetch: Fetch) -> list[str]:
    """Fetch ``target`` from the first of ``urls`` whose bytes hash to ``sha256``.

    Each try streams into a temporary file beside ``target``, hashes it, and moves it into place
    only when the hash matches; the temporary is deleted on any failure. Returns the failures
    ("url: reason") when every url failed, an empty list on success.
    """
    failures = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, fetch(url) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            got = digest.hexdigest()
            if got != sha256:
                failures.append(f"{url}: SHA-256 mismatch, expected {sha256}, got {got}")
                os.unlink(tmp)
                continue
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the data are public
            os.replace(tmp, target)
            return []
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            Path(tmp).unlink(missing_ok=True)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return failures


def download_dataset(name: str, folder: str | os.PathLike | None = None, *,
                     _fetch: Fetch | None = None) -> Path:
    """Download the files of ``name`` ("mnist" or "fashion-mnist") missing from ``folder``.

    ``folder`` defaults to ``$PEARLNET_DATA/<name>`` or ``~/.cache/pearlnet/<name>``. Each file is
    tried on every mirror in turn and kept only if its SHA-256 matches; ``_fetch(url)`` opens a
    URL (``urllib.request.urlopen`` with a 60 s timeout by default; tests pass their own).
    Returns the folder. Raises :class:`ChecksumError` when some mirror served wrong bytes and no
    mirror served right ones, :class:`DatasetNotFoundError` when no mirror could be reached.
    """
    if name not in DATASETS:
        raise ValueError(f"download_dataset: unknown dataset {name!r}, expected one of "
                         f"{sorted(DATASETS)}")
    spec = DATASETS[name]
    fetch = _fetch if _fetch is not None else _urlopen
    folder = Path(folder) if folder is not None else _download_dir(name)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for base in _find_files(folder)[1]:
            file = f"{base}.gz"
            failures = _fetch_verified([m + file for m in spec.mirrors], folder / file,
                                       spec.sha256[file], fetch)
            if not failures:
                continue
            detail = "\n".join(f"  {f}" for f in failures)
            if any("SHA-256 mismatch" in f for f in failures):
                raise ChecksumError(f"download_dataset: no mirror served {spec.title} file {file} "
                                    f"with the expected SHA-256; nothing was kept:\n{detail}")
            raise DatasetNotFoundError(f"download_dataset: could not download {spec.title} file "
                                       f"{file} into {folder}:\n{detail}")
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return folder


def _state(folder: Path, missing: list[str]) -> str:
    """How a searched folder looked, for the not-found message."""
    if not folder.is_dir():
        return f"{folder} (no such folder)"
    if len(missing) == len(FILES):
        return f"{folder} (none of the files)"
    return f"{folder} (missing {', '.join(missing)})"


def _not_found(spec: Dataset, caller: str, searched: list[str], reason: str,
               put_in: str | None = None) -> DatasetNotFoundError:
    if put_in is None:
        put_in = (f"{_download_dir(spec.name)}, or in $PEARLNET_DATA/{spec.name} with "
                  f"PEARLNET_DATA set, or pass root= the folder holding them")
    lines = [f"{caller}: {spec.title} not found; {reason}.", "Searched, in order:",
             *(f"  {state}" for state in searched),
             f"The {spec.title} files are " + ", ".join(f"{b}.gz" for b in FILES)
             + " (gzipped or not).",
             f"Put them in {put_in}."]
    return DatasetNotFoundError("\n".join(lines))


def _read_split(images_path: Path, labels_path: Path, n: int, spec: Dataset, caller: str
                ) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    want = (n, *spec.shape)
    if images.dtype != np.uint8 or images.shape != want:
        raise IDXError(f"{caller}: {images_path} holds {images.dtype} images of shape "
                       f"{images.shape}, expected uint8 of shape {want} for {spec.title}")
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise IDXError(f"{caller}: {labels_path} holds {labels.dtype} labels of shape "
                       f"{labels.shape}, expected uint8 of shape ({len(images)},) to match "
                       f"{images_path}")
    if labels.size and labels.max() >= spec.num_classes:
        raise IDXError(f"{caller}: {labels_path} has label {int(labels.max())}, expected "
                       f"labels in 0..{spec.num_classes - 1}")
    return images, labels


def _load(name: str, root: str | os.PathLike | None, download: bool, caller: str):
    spec = DATASETS[name]
    if root is not None:
        root = Path(root).expanduser()
        found, missing = _find_files(root)
        if missing:
            raise _not_found(spec, caller, [_state(root, missing)],
                             f"root={str(root)!r} was given, so no other folder is searched",
                             put_in=f"{root}, or leave root=None to search the usual folders "
                                    f"and download")
    else:
        searched = []
        for folder in _search_dirs(name):
            found, missing = _find_files(folder)
            if not missing:
                break
            searched.append(_state(folder, missing))
        else:
            if not download:
                raise _not_found(spec, caller, searched,
                                 "download=False, so nothing was downloaded")
            try:
                folder = download_dataset(name)
            except DatasetNotFoundError as exc:
                err = _not_found(spec, caller, searched, "downloading it failed too")
                raise DatasetNotFoundError(f"{err}\n{exc}") from exc
            found, _ = _find_files(folder)
    train = _read_split(found[0], found[1], spec.n_train, spec, caller)
    test = _read_split(found[2], found[3], spec.n_test, spec, caller)
    return train, test


def load_mnist(root: str | os.PathLike | None = None, download: bool = True
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST's handwritten digits as ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 of shape (60000, 28, 28) and (10000, 28, 28), labels uint8 in 0..9. See the
    module docstring for where the files are looked for and how they are downloaded.

    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    """
    return _load("mnist", root, download, "load_mnist")


def load_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True
                       ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Zalando's Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Same layout as :func:`load_mnist`; label ``k`` names ``FASHION_MNIST_CLASSES[k]``. On Debian,
    ``apt-get install dataset-fashion-mnist`` provides the files in
    ``/usr/share/datasets/fashion-mnist``.
    """
    return _load("fashion-mnist", root, download, "load_fashion_mnist")
