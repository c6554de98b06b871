"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), read with every header check.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the data in C order. MNIST's images have magic 2051
(unsigned bytes, 3 dimensions), its labels 2049 (unsigned bytes, 1 dimension).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "IDXError", "IMAGES_MAGIC", "LABELS_MAGIC"]

IMAGES_MAGIC = 2051
"""The magic number of an IDX file of images: 0x00000803, unsigned bytes in 3 dimensions."""
LABELS_MAGIC = 2049
"""The magic number of an IDX file of labels: 0x00000801, unsigned bytes in 1 dimension."""

_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IDXError(ValueError):
    """A file that is not a well-formed IDX file of the expected kind."""


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` files are decompressed).

    Checks the magic number (against ``expect_magic`` when given: 2051 for images, 2049 for
    labels), the type code, and that the byte count equals the product of the dimensions; a
    truncated or corrupt ``.gz`` file is an IDXError too.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # truncated or corrupt .gz
        raise IDXError(f"read_idx: {path} is not a valid gzip file ({exc}); expected a "
                       f"gzip-compressed IDX file, as the .gz suffix says") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IDXError(f"read_idx: {path} does not start with an IDX magic number")
    code, ndim = data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise IDXError(f"read_idx: {path} has magic {magic}, expected {expect_magic}")
    if code not in _TYPES:
        raise IDXError(f"read_idx: {path} has unknown type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"read_idx: {path} ends inside its header")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = _TYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise IDXError(f"read_idx: {path} has {len(data)} bytes; dimensions {dims} of "
                       f"{dtype.itemsize}-byte items need {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(
        dtype.newbyteorder("="))
