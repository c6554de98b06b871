"""The IDX reader on small files written here: good files round-trip, bad headers are named."""

import gzip
import re

import numpy as np
import pytest

from idx_files import write_idx
from pearlnet.data import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx


def test_images_and_labels_round_trip(tmp_path, rng):
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "img.gz", images), IMAGES_MAGIC)
    np.testing.assert_array_equal(got, images)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "lab", labels), LABELS_MAGIC),
                                  labels)


def test_float_idx(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = read_idx(write_idx(tmp_path / "f", a, code=0x0D))
    np.testing.assert_array_equal(got, a)
    assert got.dtype == np.float32


def test_wrong_magic_is_named(tmp_path):
    labels = np.zeros(3, np.uint8)
    path = write_idx(tmp_path / "lab", labels)
    with pytest.raises(IDXError, match="has magic 2049, expected 2051"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_and_padded_files_are_refused(tmp_path):
    images = np.zeros((2, 2, 2), np.uint8)
    path = write_idx(tmp_path / "img", images)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with pytest.raises(IDXError, match="has 23 bytes; dimensions \\(2, 2, 2\\)"):
        read_idx(path)
    write_idx(path, images, extra=b"\0")
    with pytest.raises(IDXError, match="has 25 bytes; .* need 24"):
        read_idx(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(IDXError, match="does not start with an IDX magic number"):
        read_idx(path)
    write_idx(path, np.zeros(2, np.uint8), code=0x07)
    with pytest.raises(IDXError, match="unknown type code 0x07"):
        read_idx(path)


def test_truncated_or_corrupt_gzip_is_named(tmp_path):
    good = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    for name, data, why in [("truncated.gz", good[:-6], "Compressed file ended"),
                            ("plain.gz", bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]), "Not a gzipped file"),
                            ("corrupt.gz", b"\x1f\x8b\x08\x00garbagegarbage", "Error -3")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IDXError, match=f"read_idx: {re.escape(str(path))} is not a valid "
                                           rf"gzip file \({why}.*\); expected a gzip-compressed"):
            read_idx(path)
