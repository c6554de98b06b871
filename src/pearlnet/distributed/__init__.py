"""pearlnet.distributed: data parallelism over MPI (mpi4py, imported only when a launcher
started this process with more than one rank).

>>> from pearlnet import distributed
>>> comm = distributed.world()          # a SingleProcess outside mpiexec
>>> comm.rank, comm.size
(0, 1)
>>> comm.allreduce({"w": 1.5})
{'w': 1.5}

Launch a script on 4 processes with ``mpiexec -n 4 python my_script.py`` (or ``python -m mpi4py
my_script.py``); ``Model.fit`` then trains data-parallel by itself.
"""

from .communicator import (  # noqa: F401
    CollectiveError,
    Communicator,
    DistributedMismatchError,
    MPICommunicator,
    PackedTree,
    RendezvousTimeout,
    SingleProcess,
    launched_by_mpi,
    rendezvous_timeout,
    world,
)
from .faults import fail_together, install_abort_hook  # noqa: F401
from .fingerprint import check_same, fingerprint_rows, tree_digest  # noqa: F401
from .parallel import (  # noqa: F401
    Shard,
    batch_counts,
    batch_sum,
    current,
    data_parallel,
    shard_bounds,
    sum_across,
)

__all__ = ["world", "Communicator", "SingleProcess", "MPICommunicator", "PackedTree",
           "launched_by_mpi",
           "CollectiveError", "DistributedMismatchError", "RendezvousTimeout",
           "rendezvous_timeout", "fail_together", "install_abort_hook", "Shard",
           "shard_bounds", "sum_across", "data_parallel", "batch_sum", "batch_counts",
           "current", "check_same", "fingerprint_rows", "tree_digest"]
