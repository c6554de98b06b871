"""What ``Model.fit`` needs to run data-parallel and to restart exactly: the communicator,
the training seed, the epoch's order, the batches, and the fingerprint every rank checks.

Every random choice of a run derives from (seed, epoch): the epoch's shuffle is a permutation
drawn from ``default_rng([seed, epoch])``, dropout masks and Hessian-free's curvature cases
come from ``SampleStream(seed, epoch, sample indices)``. Nothing depends on how many epochs ran
in this process, on which rank computes a sample, or on how the batch is split, so a run
resumed at epoch k draws what the uninterrupted run drew, and N ranks draw what one draws.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from pearlnet import distributed
from pearlnet.distributed import CollectiveError, Communicator, SingleProcess

__all__ = ["communicator_for", "training_seed", "epoch_order", "batch_count",
           "model_fingerprint", "ReplicaMismatchError"]


class ReplicaMismatchError(CollectiveError):
    """``check_replicas`` found ranks whose parameters or optimizer state differ."""


def communicator_for(distributed_arg: Any, who: str) -> Communicator:
    """"auto" or True: the job's (``distributed.world()``; one process outside mpiexec);
    False: this process alone; a Communicator: that one."""
    if isinstance(distributed_arg, Communicator):
        return distributed_arg
    if distributed_arg is False:
        return SingleProcess()
    if distributed_arg is True or distributed_arg == "auto":
        return distributed.world()
    raise ValueError(f"{who}: distributed must be 'auto', True, False or a Communicator, got "
                     f"{distributed_arg!r}")


def training_seed(seed: Any, model_seed: Any, comm: Communicator, who: str) -> int:
    """The run's integer seed: ``seed``, else the model's; a Generator gives one draw of it;
    None gives fresh entropy. Rank 0's is used on every rank."""
    source = model_seed if seed is None else seed
    if isinstance(source, np.random.Generator):
        value = int(source.integers(2 ** 63))
    elif source is None:
        value = int(np.random.SeedSequence().entropy % (2 ** 63))
    elif isinstance(source, (int, np.integer)) and not isinstance(source, bool) and source >= 0:
        value = int(source)
    else:
        raise ValueError(f"{who}: seed must be a non-negative int, a numpy.random.Generator or "
                         f"None, got {source!r}")
    return int(comm.broadcast(value)) if comm.size > 1 else value


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The epoch's sample order: a permutation from (seed, epoch) alone."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_count(n: int, batch_size: int, ranks: int) -> int:
    """Batches per epoch. A short last batch smaller than max(2, ranks) joins the one before:
    BatchNorm needs two samples, and every rank at least one."""
    nb = math.ceil(n / batch_size)
    if nb > 1 and 0 < n % batch_size < max(2, ranks):
        nb -= 1
    return nb


def model_fingerprint(model: Any, x: Any, y: Any, settings: dict) -> dict:
    """What every rank of a data-parallel fit must agree on: the architecture, the parameter
    shapes, the optimizer, the data (shape, dtype, sampled rows) and the fit's settings."""
    try:
        layers = json.dumps([[type(la).__name__, la.name, la.get_config()]
                             for la in model.layers], sort_keys=True, default=_name_of)
    except (ValueError, TypeError):
        layers = repr(model)
    shapes = [(k, [(np.shape(a), str(np.result_type(a))) for a in _leaves(v)])
              for k, v in model.params.items()]
    return {"architecture": layers, "parameter shapes": shapes,
            "optimizer": _ADDRESS.sub("", repr(model.optimizer)), "loss": model.loss_name,
            "inputs": distributed.fingerprint_rows(x), "targets": distributed.fingerprint_rows(y),
            **settings}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # differs between processes, means nothing


def _name_of(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _leaves(tree: Any) -> list:
    from pearlnet.autodiff import tree_flatten

    return tree_flatten(tree)[0]
