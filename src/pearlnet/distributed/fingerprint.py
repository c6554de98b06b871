"""Checking that every rank started the same job, before the first collective of a step.

The stall Horovod's users meet most is ranks that disagree (another dataset, another batch
size, a different model) and so call different collectives, waiting for each other forever.
``check_same`` gathers a small description from every rank and, where they differ, raises the
same ``DistributedMismatchError`` on every rank, naming what differs and on which ranks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from pearlnet.autodiff import tree_flatten

from .communicator import Communicator, DistributedMismatchError

__all__ = ["check_same", "fingerprint_rows", "tree_digest"]


def fingerprint_rows(array: Any, rows: int = 16) -> dict:
    """Shape, dtype and a digest of ``rows`` rows spread over the array (the first and the
    last included): cheap on a memory-mapped file, and different data almost surely differs."""
    a = np.asarray(array) if not hasattr(array, "shape") else array
    n = a.shape[0] if a.ndim else 0
    picks = np.unique(np.linspace(0, n - 1, min(rows, n)).astype(np.int64)) if n else []
    h = hashlib.blake2b(digest_size=12)
    for i in picks:
        h.update(np.ascontiguousarray(a[int(i)]).tobytes())
    return {"shape": tuple(a.shape), "dtype": str(a.dtype), "rows": h.hexdigest()}


def tree_digest(tree: Any) -> str:
    """A digest of every leaf's bytes, shape and dtype (replicas must agree bit for bit)."""
    h = hashlib.blake2b(digest_size=16)
    leaves, treedef = tree_flatten(tree)
    h.update(repr(treedef).encode())
    for leaf in leaves:
        a = np.ascontiguousarray(leaf)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_same(comm: Communicator, facts: dict, who: str) -> None:
    """Raise on every rank if the ranks' ``facts`` (a dict of comparable values) differ."""
    if comm.size == 1:
        return
    everyone = comm.allgather(facts)
    keys = sorted({k for f in everyone for k in f})
    problems = []
    for key in keys:
        values = [f.get(key) for f in everyone]
        if any(v != values[0] for v in values[1:]):
            groups: dict[str, list[int]] = {}
            for rank, v in enumerate(values):
                groups.setdefault(repr(v), []).append(rank)
            described = "; ".join(f"ranks {ranks}: {v}" for v, ranks in groups.items())
            problems.append(f"{key} differs ({described})")
    if problems:
        raise DistributedMismatchError(
            f"{who}: the {comm.size} ranks were not started alike: " + "; ".join(problems) +
            ". Every rank must call it with the same model, data and arguments")
