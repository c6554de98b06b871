"""Writing files so that a failure never leaves a truncated one behind (saved models, the
report's files), and reading a NumPy .npz archive so that a file that is not one is a clear
error, never a raw one from NumPy or zipfile."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["replacing", "read_npz"]

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry; an empty zip
_NPY_MAGIC = b"\x93NUMPY"


@contextlib.contextmanager
def replacing(path: str | Path, who: str = "replacing") -> Iterator[Path]:
    """Yield a temporary path in the folder of ``path`` to write the file to; when the block
    ends normally, move it onto ``path`` with ``os.replace`` (atomic on one file system), with
    the mode ``open`` would give (0666 less the umask). On any exception, Ctrl-C included, the
    temporary file is removed and ``path`` is left as it was: the previous file or none, never a
    shortened one. A folder that is missing, not a folder, or not writable is an OSError of the
    same kind whose message names ``who``, the path and the folder.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with replacing(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> sorted(p.name for p in folder.iterdir()), (folder / "a.txt").read_text()
    (['a.txt'], 'done')
    """
    path = Path(path)
    folder = path.parent
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except FileNotFoundError:
        raise FileNotFoundError(f"{who}: cannot write {path}: the folder {folder} does not "
                                f"exist") from None
    except NotADirectoryError:
        raise NotADirectoryError(f"{who}: cannot write {path}: {folder} is not a folder"
                                 ) from None
    except PermissionError:
        raise PermissionError(f"{who}: cannot write {path}: no permission to create a file in "
                              f"{folder}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates the file 0600; give it the mode open() would (0666 less the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            raise IsADirectoryError(f"{who}: cannot write {path}: it is a folder") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_npz(path: str | os.PathLike, who: str, what: str) -> dict[str, np.ndarray]:
    """Every array of the NumPy .npz archive at ``path``, by name, read in full (no pickles).

    A missing path raises FileNotFoundError, a folder IsADirectoryError, a file that cannot be
    opened its OSError, each with a message naming ``who`` and the path. Anything else that is
    not a complete .npz archive of arrays (an empty file, a .npy array, a text file, a truncated
    or damaged archive, an entry that is not an array) raises ValueError
    "``who``: ``path`` is not ``what``: <why>".

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.savez(folder / "a.npz", x=np.arange(3))
    >>> read_npz(folder / "a.npz", "demo", "an archive")
    {'x': array([0, 1, 2])}
    >>> _ = (folder / "b.npz").write_bytes(b"")
    >>> read_npz(folder / "b.npz", "demo", "an archive")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: demo: ... is not an archive: it is empty (0 bytes)
    """
    def refuse(why: str) -> ValueError:
        return ValueError(f"{who}: {path} is not {what}: {why}")

    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{who}: no such file: {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{who}: {path} is a folder, not a file") from None
    except OSError as err:
        raise type(err)(f"{who}: cannot open {path}: {err.strerror or err}") from None
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise refuse("it is empty (0 bytes)")
        head = fh.read(len(_NPY_MAGIC))
        if head.startswith(_NPY_MAGIC):
            raise refuse("it holds a single NumPy array (.npy), not an .npz archive")
        if not head.startswith(_ZIP_MAGICS):
            raise refuse(f"it is not a NumPy .npz archive (it starts with {head!r})")
        fh.seek(0)
        try:
            with np.load(fh, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except MemoryError:
            raise
        except Exception as err:  # zipfile's and NumPy's many ways to find a file damaged
            raise refuse(f"it is not a readable .npz archive ({type(err).__name__}: "
                         f"{err})") from err
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise refuse(f"its entry {name!r} is not a NumPy array")
    return arrays
