"""Jobs the distributed tests run under ``mpiexec -n k python tests/mpi_jobs.py JOB OUT``.

Each job is a function of a communicator returning a dict of arrays, so the tests run the same
function in their own process (one rank) for the reference. Under MPI each rank writes
OUT.rank<r>.npz. Everything is float64, so distributed and single runs agree to rounding.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import pearlnet
import pearlnet.nn as nn
from pearlnet import distributed
from pearlnet.autodiff import tree_flatten
from pearlnet.optim import Adam, HessianFree
from pearlnet.train import Callback, ModelCheckpoint

F64 = np.float64


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in tree_flatten(tree)[0]])


def classification(n=100, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((d, k))
    return x, np.argmax(x @ w + 0.5 * rng.standard_normal((n, k)), axis=1)


def mlp(seed=0):
    return pearlnet.Model([nn.Dense(16, activation="tanh", input_shape=(8,), dtype=F64),
                           nn.Dense(3, dtype=F64)], seed=seed)


class Recorder:
    """An 'optimizer' that keeps the gradients it is given and leaves the parameters."""

    def init(self, params):
        return {"step": 0}

    def update(self, params, grads, state):
        self.grads = grads
        return params, {"step": state["step"] + 1}


# -- jobs ----------------------------------------------------------------------------------
def gradient(comm):
    x, y = classification(n=97)
    model = mlp()
    rec = Recorder()
    model.compile(loss="categorical_crossentropy", optimizer=rec)
    model.fit(x, y, batch_size=97, epochs=1, verbose=0, seed=1, distributed=comm)
    return {"grads": flat(rec.grads)}


def fit_mlp(comm):
    x, y = classification(n=100)
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2), metrics=["accuracy"])
    # batches of 32 (shares 10, 11, 11 on 3 ranks) and a short last batch of 4 (1, 1, 2)
    h = model.fit(x, y, batch_size=32, epochs=3, verbose=0, seed=3, distributed=comm,
                  validation_data=classification(n=31, seed=9), check_replicas=2)
    return {"params": flat(model.params), "opt": flat(model.opt_state["m"]),
            "loss": np.array(h.history["loss"]), "accuracy": np.array(h.history["accuracy"]),
            "val_loss": np.array(h.history["val_loss"])}


def fit_in_place(comm):
    """Model.fit's compiled update writes in place on every rank: the arrays the parameters
    and the optimizer slots live in over 9 steps, with and without TerminateOnNaN."""
    x, y = classification(n=96)
    out = {}
    for guarded in (True, False):
        model = mlp()
        model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2))
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, seed=3, distributed=comm,
                  terminate_on_nan=guarded)
        ids = _Ids()
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, seed=4, distributed=comm,
                  terminate_on_nan=guarded, callbacks=[ids])
        name = "guarded" if guarded else "unguarded"
        out[f"{name}_params"] = flat(model.params)
        out[f"{name}_counts"] = np.array([len(ids.params), len(ids.slots),
                                          len(tree_flatten(model.params)[0])])
    return out


class _Ids(pearlnet.train.Callback):
    """The arrays the model's parameters and optimizer slots live in, batch by batch."""

    def __init__(self):
        super().__init__()
        self.params, self.slots = set(), set()

    def on_batch_end(self, batch, logs=None):
        self.params.update(id(a) for a in tree_flatten(self.model.params)[0])
        self.slots.update(id(a) for a in tree_flatten(self.model.opt_state)[0]
                          if isinstance(a, np.ndarray))


def fit_cnn(comm):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 1, 8, 8))
    y = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 4:].mean() > 0)
    # no bias before BatchNorm: BN cancels it, so its gradient is rounding noise (true value 0)
    model = pearlnet.Model([nn.Conv2D(4, 3, use_bias=False, input_shape=(1, 8, 8), dtype=F64),
                            nn.BatchNorm(dtype=F64), nn.ReLU(), nn.Dropout(0.3),
                            nn.Flatten(), nn.Dense(3, dtype=F64)], seed=2)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2))
    model.fit(x, y, batch_size=20, epochs=3, verbose=0, seed=4, distributed=comm)
    return {"params": flat(model.params), "state": flat(model.state)}


def fit_lstm(comm):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 5, 3))
    y = x.sum(axis=(1, 2))[:, None] * 0.1
    model = pearlnet.Model([nn.LSTM(8, input_shape=(5, 3), dtype=F64), nn.Dense(1, dtype=F64)],
                           seed=5)
    model.compile(loss="mean_squared_error", optimizer=Adam(1e-2))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=6, distributed=comm)
    return {"params": flat(model.params)}


def hessian_free(comm):
    x, y = classification(n=50)
    model = mlp()
    model.compile(loss="categorical_crossentropy",
                  optimizer=HessianFree(preconditioner=True, curvature_batch_size=20,
                                        precondition_cases=16))
    model.fit(x, y, batch_size=50, epochs=5, verbose=0, seed=7, distributed=comm)
    return {"params": flat(model.params), "lambda": np.array(model.opt_state["lambda"]),
            "direction": model.opt_state["direction"]}


def evaluate(comm):
    x, y = classification(n=100)
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    result = model.evaluate(x, y, batch_size=7, distributed=comm)
    out = model.predict(x, batch_size=7, distributed=comm)
    return {"loss": np.array(result["loss"]), "accuracy": np.array(result["accuracy"]),
            "correct": np.array(round(result["accuracy"] * len(x))), "predict": out}


# -- faults ------------------------------------------------------------------------------------
class RaiseOnRank(Callback):
    def __init__(self, rank, epoch):
        super().__init__()
        self.rank, self.epoch = rank, epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch and distributed.world().rank == self.rank:
            raise RuntimeError(f"deliberate failure in epoch {epoch + 1}")


class KillRank(Callback):
    def __init__(self, rank, epoch):
        super().__init__()
        self.rank, self.epoch = rank, epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch and distributed.world().rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


def raising(comm):
    x, y = classification(n=100)
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2))
    model.fit(x, y, batch_size=20, epochs=4, verbose=0, callbacks=[RaiseOnRank(1, 1)])
    return {}


def resumable(comm, checkpoint, epochs=6, kill_at=None):
    """Train with a checkpoint every epoch, resuming from it when it exists."""
    x, y = classification(n=100)
    callbacks = [ModelCheckpoint(checkpoint)]
    if kill_at is not None:
        callbacks.append(KillRank(1, kill_at))
    if os.path.exists(checkpoint):
        model = pearlnet.load_model(checkpoint)
        progress = model.training_progress
        start, seed = progress["epoch"], progress["seed"]
    else:
        model = pearlnet.Model([nn.Dense(16, activation="tanh", input_shape=(8,), dtype=F64),
                                nn.Dropout(0.2), nn.Dense(3, dtype=F64)], seed=0)
        model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2))
        start, seed = 0, 11
    model.fit(x, y, batch_size=16, epochs=epochs, initial_epoch=start, verbose=0, seed=seed,
              callbacks=callbacks, distributed=comm)
    return {"params": flat(model.params), "start": np.array(start)}


def killed(comm):
    return resumable(comm, os.environ["CHECKPOINT"], kill_at=3)


def resumed(comm):
    return resumable(comm, os.environ["CHECKPOINT"])


def mismatched(comm):
    x, y = classification(n=100, seed=comm.rank)  # each rank its own data: a mistake
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2))
    try:
        model.fit(x, y, batch_size=20, epochs=2, verbose=0)
    except distributed.DistributedMismatchError as err:
        print(f"rank {comm.rank} caught: {err}", flush=True)
        return {"caught": np.array(1)}
    return {"caught": np.array(0)}


def rank_zero_predict(comm):
    x, _ = classification(n=20)
    model = mlp()
    if comm.rank == 0:
        model.predict(x)  # the others never call it: rank 0 must not wait forever
    return {}


JOBS = {f.__name__: f for f in (gradient, fit_mlp, fit_in_place, fit_cnn, fit_lstm,
                                 hessian_free, evaluate, raising, killed, resumed, mismatched,
                                 rank_zero_predict)}

if __name__ == "__main__":
    job, out = sys.argv[1], sys.argv[2]
    comm = distributed.world()
    result = JOBS[job](comm)
    np.savez(f"{out}.rank{comm.rank}.npz", **result)
