"""Data parallelism: which share of a batch a rank computes, and sums across the ranks that
layers mixing samples (BatchNorm) need inside a step.

``sum_across(x, comm)`` is a primitive: the sum of x over the ranks. Its reverse rule is the
same sum of the cotangent (every rank's output depends on every rank's input, so each input's
cotangent is the sum of the output cotangents over ranks) and its forward rule the sum of the
tangent, so gradients, Hessian-vector and Gauss-Newton products see through it, exactly as
JAX's ``psum`` under ``pmap``. The ranks' local objectives must be weighted *before*
differentiation (by n_rank / N) for the summed gradients to be the global one.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import numpy as np

from pearlnet.autodiff import Primitive
from pearlnet.numpy._batch import same_axis as _same_axis_batch

from .communicator import Communicator, SingleProcess

__all__ = ["Shard", "shard_bounds", "sum_across", "data_parallel", "batch_sum",
           "batch_counts"]


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """[lo, hi): rank's contiguous share of n items; shares differ by at most one item."""
    return rank * n // size, (rank + 1) * n // size


class Shard:
    """One rank's share of a global batch: ``indices`` are the global batch's sample indices
    (every rank knows them all), ``lo:hi`` the positions this rank computes."""

    __slots__ = ("comm", "indices", "lo", "hi")

    def __init__(self, comm: Communicator, indices: np.ndarray) -> None:
        self.comm, self.indices = comm, indices
        self.lo, self.hi = shard_bounds(len(indices), comm.rank, comm.size)

    @property
    def total(self) -> int:
        return len(self.indices)

    @property
    def local(self) -> np.ndarray:
        return self.indices[self.lo:self.hi]

    @property
    def fraction(self) -> float:
        """n_rank / N: the weight of this rank's mean in the global mean."""
        return (self.hi - self.lo) / len(self.indices)

    def __repr__(self) -> str:
        return f"Shard(rank {self.comm.rank}: {self.lo}:{self.hi} of {self.total})"


def _sum_across_impl(x: Any, comm: Communicator) -> np.ndarray:
    return np.asarray(comm.allreduce(np.asarray(x)))


sum_across = Primitive("sum_across", _sum_across_impl)
"""``sum_across(x, comm)``: the elementwise sum of the array x over the ranks of ``comm``, a
differentiable primitive (JAX's ``psum``): its reverse rule sums the cotangents over the ranks,
its forward rule the tangents, so ``grad``, ``hvp`` and ``gauss_newton_vp`` of a function that
uses it are the global ones. Weight each rank's local objective by n_rank / N first. In one
process (``world()`` outside mpiexec) it returns x."""


def _sum_across_vjp(g, ans, x, comm):
    return sum_across(g, comm)


def _sum_across_jvp(t, ans, x, comm):
    return sum_across(t, comm)


sum_across.defvjp(_sum_across_vjp)
sum_across.defjvp(_sum_across_jvp)
sum_across.defbatch(_same_axis_batch(sum_across))  # a batch of sums is the sum of the batch
# a collective: a compiled program (pearlnet.jit) never drops, merges or folds it, and keeps
# it where the code put it, so every rank calls it at the same point
sum_across.effect = True


class _Context(threading.local):
    def __init__(self) -> None:
        self.stack: list[tuple[Communicator, int, int]] = []


_context = _Context()
_single = SingleProcess()


@contextlib.contextmanager
def data_parallel(comm: Communicator, global_batch: int, local_batch: int) -> Iterator[None]:
    """Inside: a step computing ``local_batch`` of the ``global_batch`` samples spread over
    ``comm``'s ranks (``batch_sum`` and ``batch_counts`` answer for the whole batch)."""
    _context.stack.append((comm, int(global_batch), int(local_batch)))
    try:
        yield
    finally:
        _context.stack.pop()


def batch_sum(x: Any) -> Any:
    """A per-rank partial sum over the samples, summed over the global batch's ranks (x
    itself outside a data-parallel step or in one process). Differentiable."""
    if not _context.stack or _context.stack[-1][0].size == 1:
        return x
    return sum_across(x, _context.stack[-1][0])


def batch_counts(local: int) -> int:
    """The global count for ``local`` values counted on this rank's share (local is
    local_batch times values per sample)."""
    if not _context.stack or _context.stack[-1][0].size == 1:
        return local
    _, global_n, local_n = _context.stack[-1]
    return local // local_n * global_n


def current() -> Communicator:
    """The communicator of the data-parallel step in progress (a SingleProcess outside)."""
    return _context.stack[-1][0] if _context.stack else _single
