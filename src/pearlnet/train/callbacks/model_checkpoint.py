"""ModelCheckpoint: save the model after each epoch, or only when it improves."""

from __future__ import annotations

import warnings

from .base import Callback


class ModelCheckpoint(Callback):
    """Save to ``path`` (formatted with ``epoch`` and the logs, e.g. "model-{epoch:02d}.pnl")
    at each epoch end; with ``save_best_only`` only when ``monitor`` improves (a decrease for
    losses, an increase for accuracies: ``mode="auto"``; a monitor that is not logged is warned
    about, as EarlyStopping does).

    The file is a whole restart point: the weights, the optimizer's state (Hessian-free's
    damping and CG warm start included) and ``training_progress`` (the seed and the epochs
    done), from which ``fit(..., initial_epoch=progress["epoch"], seed=progress["seed"])``
    continues to the result the uninterrupted run reaches. Saves are atomic (a kill during a
    write leaves the previous file). In a data-parallel fit rank 0 writes, and every rank
    waits at a barrier until it has.

    >>> import os, tempfile, numpy as np, pearlnet, pearlnet.nn as nn
    >>> folder = tempfile.mkdtemp()
    >>> model = pearlnet.Model([nn.Dense(1, input_shape=(2,))])
    >>> model.compile(loss="mean_squared_error", optimizer="sgd")
    >>> save = ModelCheckpoint(os.path.join(folder, "model-{epoch:02d}.pnl"))
    >>> _ = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=2, verbose=0, callbacks=[save])
    >>> sorted(os.listdir(folder))
    ['model-01.pnl', 'model-02.pnl']
    >>> pearlnet.load_model(os.path.join(folder, "model-02.pnl")).training_progress["epoch"]
    2
    """

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be auto, min or max, got {mode!r}")
        self.path, self.monitor, self.save_best_only = str(path), monitor, save_best_only
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"ModelCheckpoint: {self.monitor!r} is not among the logged "
                              f"figures {sorted(logs)}; nothing saved", stacklevel=2)
                return
            better = self.best is None or (value < self.best if self.mode == "min"
                                           else value > self.best)
            if not better:
                return
            self.best = value
        self.model.save(self.path.format(epoch=epoch + 1, **logs))
        comm = getattr(self.model, "_comm", None)
        if comm is not None and comm.size > 1:
            comm.barrier()  # no rank runs past a checkpoint rank 0 is still writing
