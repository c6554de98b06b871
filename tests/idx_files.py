"""Writing small IDX files for the tests (the format read_idx checks, see pearlnet.data.idx)."""

import gzip


def write_idx(path, array, code=0x08, magic=None, extra=b""):
    """``array`` as an IDX file at ``path`` (gzipped for a .gz name): unsigned bytes for type
    code 0x08, big-endian float32 otherwise; ``magic`` overrides the header, ``extra`` appends
    bytes, so tests can write broken files too."""
    header = bytes([0, 0, code, array.ndim]) if magic is None else magic.to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(">u1" if code == 0x08 else ">f4").tobytes() + extra
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(data)
    return path
