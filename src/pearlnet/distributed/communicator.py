"""Communicators: sums, broadcasts and gathers of parameter trees across the processes of a job.

A communicator knows arrays and trees, never models (ChainerMN's split: the communicator, and a
thin layer that makes a training loop data-parallel). ``world()`` returns the one for this
process: an MPI communicator when the process was started by ``mpiexec`` with more than one
rank, else ``SingleProcess``, whose collectives return their input, so the same code runs
everywhere. Every MPI call of pearlnet lives in this module.

Trees travel packed: ``allreduce`` copies the leaves of each dtype into one contiguous buffer
(scaled on the way, when asked) and makes one ``Allreduce`` call per dtype, the "flat" scheme
of ChainerMN and Horovod's tensor fusion: a model of 50 arrays costs one message, not 50.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from pearlnet.autodiff import tree_flatten, tree_unflatten

__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "PackedTree", "world",
           "launched_by_mpi",
           "CollectiveError", "DistributedMismatchError", "RendezvousTimeout",
           "rendezvous_timeout"]

_OPS = ("sum", "mean")

# environment variables the common launchers set in every process they start: MPICH's and
# Intel MPI's hydra (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE), PMIx launchers and Slurm
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                   "SLURM_NTASKS")


class CollectiveError(RuntimeError):
    """An error every rank raises together (decided from the same gathered facts), so the job
    can end cleanly or the caller can handle it; any other exception during a data-parallel
    ``fit`` aborts the job, since the other ranks would wait for it forever."""


class DistributedMismatchError(CollectiveError, ValueError):
    """Ranks were started with different models, data or settings."""


class RendezvousTimeout(CollectiveError):
    """Not every rank reached a collective call within the timeout."""


def rendezvous_timeout() -> float:
    """Seconds a rank waits at the start of a data-parallel fit, evaluate or predict for the
    others (``PEARLNET_MPI_TIMEOUT``, 300 by default): past it, the waiting rank raises instead
    of hanging (a rank that never calls, such as ``if rank == 0: model.predict(x)``)."""
    value = os.environ.get("PEARLNET_MPI_TIMEOUT", "300")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"PEARLNET_MPI_TIMEOUT must be a number of seconds, got "
                         f"{value!r}") from None
    if not seconds > 0:
        raise ValueError(f"PEARLNET_MPI_TIMEOUT must be positive, got {value!r}")
    return seconds


def launched_by_mpi() -> int:
    """The number of processes a launcher (mpiexec, srun) says the job has; 0 when none did."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


def _check_op(op: str, who: str) -> None:
    if op not in _OPS:
        raise ValueError(f"{who}: op must be 'sum' or 'mean', got {op!r}")


def _leaf_array(leaf: Any, who: str) -> np.ndarray:
    a = np.asarray(leaf)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"{who}: expected numeric leaves (arrays or numbers), got {a.dtype} "
                        f"from {type(leaf).__name__}")
    return a


def _like(value: np.ndarray, leaf: Any) -> Any:
    """A reduced leaf back in its input's kind: Python numbers stay Python numbers."""
    if isinstance(leaf, (bool, int, float, complex)) and value.shape == ():
        return type(leaf)(value.item())
    return value


class PackedTree:
    """One contiguous buffer per dtype, and in it a view per leaf of a tree's layout: memory a
    computation can write its results into (``jit``'s ``call_into``), so that summing them
    across ranks (``allreduce_packed``) needs no packing copy, the zero-copy form of
    ChainerMN's and Horovod's fusion buffer.

    >>> import numpy as np
    >>> packed = PackedTree({"W": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)})
    >>> [v.shape for v in packed.views], packed.buffers[np.dtype(np.float32)].shape
    ([(2, 3), (3,)], (9,))
    """

    def __init__(self, tree: Any) -> None:
        leaves, self.treedef = tree_flatten(tree)
        arrays = [_leaf_array(x, "PackedTree") for x in leaves]
        self.layout = self._layout(self.treedef, arrays)
        self.buffers: dict[np.dtype, np.ndarray] = {}
        self.views: list[np.ndarray] = [None] * len(arrays)  # type: ignore[list-item]
        for dtype, members in MPICommunicator._groups(arrays).items():
            buffer = self.buffers[dtype] = np.empty(sum(arrays[i].size for i in members),
                                                    dtype=dtype)
            start = 0
            for i in members:
                self.views[i] = buffer[start:start + arrays[i].size].reshape(arrays[i].shape)
                start += arrays[i].size

    @staticmethod
    def _layout(treedef: Any, arrays: list) -> tuple:
        return treedef, tuple((a.shape, a.dtype.str) for a in arrays)

    def fits(self, tree: Any) -> bool:
        """Whether ``tree`` has this layout (structure, shapes, dtypes)."""
        leaves, treedef = tree_flatten(tree)
        return self._layout(treedef, [np.asarray(x) for x in leaves]) == self.layout


class Communicator:
    """What pearlnet needs of a group of processes. ``rank`` (0..size-1) and ``size``."""

    rank: int = 0
    size: int = 1

    def allreduce(self, tree: Any, op: str = "sum", scale: float | None = None,
                  workspace: str | None = None) -> Any:
        """The leafwise sum (or mean) over ranks of ``tree`` (arrays and numbers of any
        dtypes); every rank gets the same result. ``scale`` multiplies each rank's leaves
        first, in the same pass that packs them. One message per dtype.

        ``workspace`` (a name) packs into buffers kept under that name and reused by the next
        call with the same name and layout, instead of fresh ones: the results are views of
        them, valid until that next call (a training step's gradients, consumed by the update
        before the next step). A fresh 1 MB buffer costs page faults every step."""
        raise NotImplementedError

    def allreduce_packed(self, packed: PackedTree, tree: Any) -> Any:
        """The sum over ranks of ``tree`` (of ``packed``'s layout), computed in ``packed``'s
        buffers: each leaf that is not already its view is copied into it, then one
        ``Allreduce`` per buffer, in place. Returns the tree of views, valid until the
        buffers are used again."""
        return self.allreduce(tree)

    def broadcast(self, tree: Any, root: int = 0) -> Any:
        """``root``'s tree on every rank (the others' trees are not read)."""
        raise NotImplementedError

    def allgather(self, obj: Any) -> list:
        """Every rank's ``obj`` (any picklable value), in rank order, on every rank."""
        raise NotImplementedError

    def allgather_rows(self, array: np.ndarray) -> np.ndarray:
        """Every rank's array, concatenated along axis 0 in rank order, on every rank (the
        other axes and the dtype must agree)."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return once every rank has called it."""

    def rendezvous(self, what: str, timeout: float | None = None) -> None:
        """A barrier that gives up: a ``RendezvousTimeout`` naming ``what`` if the other
        ranks do not arrive within ``timeout`` seconds (``rendezvous_timeout()``)."""

    def abort(self, code: int = 1) -> None:
        """End every process of the job at once (MPI_Abort)."""
        os._exit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """A job of one process: every collective returns its input (scaled when asked)."""

    def allreduce(self, tree: Any, op: str = "sum", scale: float | None = None,
                  workspace: str | None = None) -> Any:
        _check_op(op, "SingleProcess.allreduce")
        if scale is None:
            return tree
        leaves, treedef = tree_flatten(tree)
        return tree_unflatten(treedef, [_like(_leaf_array(x, "allreduce") * scale, x)
                                        for x in leaves])

    def broadcast(self, tree: Any, root: int = 0) -> Any:
        if root != 0:
            raise ValueError(f"SingleProcess.broadcast: root must be 0 (one process), got "
                             f"{root!r}")
        return tree

    def allgather(self, obj: Any) -> list:
        return [obj]

    def allgather_rows(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)


class MPICommunicator(Communicator):
    """A communicator over an mpi4py ``Comm`` (``MPI.COMM_WORLD`` by default)."""

    def __init__(self, comm: Any = None) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        #: set to {} to accumulate seconds spent packing, in Allreduce and unpacking
        #: ("pack", "allreduce", "unpack", "calls", "bytes"); bench/distributed.py reads it
        self.profile: dict | None = None
        self._workspaces: dict[tuple, np.ndarray] = {}

    # -- packing -------------------------------------------------------------------------
    @staticmethod
    def _groups(arrays: list[np.ndarray]) -> dict[np.dtype, list[int]]:
        groups: dict[np.dtype, list[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.dtype, []).append(i)
        return groups

    def allreduce(self, tree: Any, op: str = "sum", scale: float | None = None,
                  workspace: str | None = None) -> Any:
        _check_op(op, "MPICommunicator.allreduce")
        profile = self.profile
        clock = time.perf_counter
        t0 = clock() if profile is not None else 0.0
        leaves, treedef = tree_flatten(tree)
        arrays = [_leaf_array(x, "MPICommunicator.allreduce") for x in leaves]
        out: list = [None] * len(arrays)
        for dtype, members in self._groups(arrays).items():
            if dtype.kind == "b":
                raise TypeError("MPICommunicator.allreduce: cannot sum booleans; cast them")
            total = sum(arrays[i].size for i in members)
            if workspace is None:
                buffer = np.empty(total, dtype=dtype)
            else:
                key = (workspace, dtype, total)
                buffer = self._workspaces.get(key)
                if buffer is None:
                    buffer = self._workspaces[key] = np.empty(total, dtype=dtype)
            start = 0
            for i in members:  # pack (and scale) in one pass per leaf
                a = arrays[i]
                view = buffer[start:start + a.size].reshape(a.shape)
                if scale is None:
                    view[...] = a
                else:
                    np.multiply(a, scale, out=view, casting="unsafe")
                start += a.size
            t0 = self._sum_in_place(buffer, t0)
            if op == "mean":
                buffer /= self.size
            start = 0
            for i in members:  # unpack as views of the buffer: no second copy
                a = arrays[i]
                out[i] = _like(buffer[start:start + a.size].reshape(a.shape), leaves[i])
                start += a.size
        result = tree_unflatten(treedef, out)
        if profile is not None:
            profile["unpack"] = profile.get("unpack", 0.0) + clock() - t0
        return result

    def _sum_in_place(self, buffer: np.ndarray, t0: float) -> float:
        """One in-place Allreduce (sum) of ``buffer``; with ``profile``, the time since t0
        counts as packing and the call's own as the allreduce. Returns the clock after it."""
        profile, clock = self.profile, time.perf_counter
        if profile is None:
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
            return t0
        t1 = clock()
        profile["pack"] = profile.get("pack", 0.0) + t1 - t0
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        t2 = clock()
        profile["allreduce"] = profile.get("allreduce", 0.0) + t2 - t1
        profile["calls"] = profile.get("calls", 0) + 1
        profile["bytes"] = profile.get("bytes", 0) + buffer.nbytes
        return t2

    def allreduce_packed(self, packed: PackedTree, tree: Any) -> Any:
        profile, clock = self.profile, time.perf_counter
        t0 = clock() if profile is not None else 0.0
        leaves, _ = tree_flatten(tree)
        if len(leaves) != len(packed.views):
            raise ValueError(f"MPICommunicator.allreduce_packed: a tree of {len(leaves)} "
                             f"leaves for a buffer of {len(packed.views)}")
        for leaf, view in zip(leaves, packed.views):
            if leaf is not view:  # written elsewhere: copy it in (the packing, where needed)
                view[...] = leaf
        for buffer in packed.buffers.values():
            t0 = self._sum_in_place(buffer, t0)
        result = tree_unflatten(packed.treedef, list(packed.views))
        if profile is not None:
            profile["unpack"] = profile.get("unpack", 0.0) + clock() - t0
        return result

    def broadcast(self, tree: Any, root: int = 0) -> Any:
        if not (isinstance(root, int) and 0 <= root < self.size):
            raise ValueError(f"MPICommunicator.broadcast: root must be a rank in "
                             f"0..{self.size - 1}, got {root!r}")
        # the layout (structure, shapes, dtypes, and the non-array leaves themselves) goes
        # pickled; the arrays go packed, one Bcast per dtype
        layout = None
        if self.rank == root:
            leaves, treedef = tree_flatten(tree)
            specs = [(np.shape(x), np.asarray(x).dtype.str) if isinstance(x, np.ndarray)
                     else ("value", x) for x in leaves]
            layout = (treedef, specs)
        treedef, specs = self.comm.bcast(layout, root=root)
        arrays = {}
        for i, (a, b) in enumerate(specs):
            if a != "value":
                arrays[i] = (tuple(a), np.dtype(b))
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, (_, dtype) in arrays.items():
            by_dtype.setdefault(dtype, []).append(i)
        out = [b if a == "value" else None for a, b in specs]
        for dtype, members in by_dtype.items():
            sizes = [int(np.prod(arrays[i][0], dtype=np.int64)) for i in members]
            buffer = np.empty(sum(sizes), dtype=dtype)
            if self.rank == root:
                leaves = tree_flatten(tree)[0]
                start = 0
                for i, n in zip(members, sizes):
                    buffer[start:start + n] = np.asarray(leaves[i]).reshape(-1)
                    start += n
            self.comm.Bcast(buffer, root=root)
            start = 0
            for i, n in zip(members, sizes):
                out[i] = buffer[start:start + n].reshape(arrays[i][0])
                start += n
        return tree_unflatten(treedef, out)

    def allgather(self, obj: Any) -> list:
        return self.comm.allgather(obj)

    def allgather_rows(self, array: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(array)
        heads = self.comm.allgather((array.shape, array.dtype.str))
        tails = {(tuple(s[1:]), d) for s, d in heads}
        if len(tails) != 1:
            raise DistributedMismatchError(
                f"MPICommunicator.allgather_rows: the ranks' arrays differ beyond axis 0: "
                f"{[(s, d) for s, d in heads]}")
        row = int(np.prod(array.shape[1:], dtype=np.int64))
        counts = [s[0] * row for s, _ in heads]
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
        out = np.empty((sum(s[0] for s, _ in heads), *array.shape[1:]), dtype=array.dtype)
        self.comm.Allgatherv(array.reshape(-1), [out.reshape(-1), (counts, displs)])
        return out

    def barrier(self) -> None:
        self.comm.Barrier()

    def rendezvous(self, what: str, timeout: float | None = None) -> None:
        limit = rendezvous_timeout() if timeout is None else timeout
        request = self.comm.Ibarrier()
        start, pause = time.monotonic(), 1e-4
        while not request.Test():
            waited = time.monotonic() - start
            if waited > limit:
                # the others may never come: leave the barrier pending and say so
                raise RendezvousTimeout(
                    f"{what}: rank {self.rank} of {self.size} waited {waited:.0f} s for the "
                    f"other ranks, which did not arrive; under MPI every rank must call it "
                    f"(with the same data), or pass distributed=False for a call of one "
                    f"rank's own (PEARLNET_MPI_TIMEOUT sets the wait)")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


_world: Communicator | None = None


def world() -> Communicator:
    """The communicator of every process of this job: MPI's COMM_WORLD when the process was
    started by an MPI launcher with more than one rank (mpi4py imported then, and only then),
    else a ``SingleProcess``. The first MPI one also installs the exception hook that ends the
    whole job when any rank fails (``pearlnet.distributed.faults``)."""
    global _world
    if _world is not None:
        return _world
    size = launched_by_mpi()
    already = "mpi4py.MPI" in sys.modules  # e.g. python -m mpi4py script.py
    if size <= 1 and not already:
        _world = SingleProcess()
        return _world
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise ImportError(
            f"pearlnet.distributed: this process is one of {size} started by an MPI launcher, "
            f"but mpi4py is not installed; install it with  pip install 'pearlnet[mpi]'  (or  "
            f"pip install mpi4py mpich  on a machine without an MPI of its own)") from None
    comm = MPICommunicator()
    if comm.size == 1:
        _world = SingleProcess()
        return _world
    from .faults import install_abort_hook

    install_abort_hook(comm)
    _world = comm
    return _world
