"""EarlyStopping: stop when a monitored figure has stopped improving."""

from __future__ import annotations

import warnings

from .base import Callback


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without an improvement of ``monitor`` by more than
    ``min_delta`` (a decrease for losses, an increase for accuracies: ``mode="auto"``). With
    ``restore_best_weights`` the model ends with the parameters of its best epoch.

    An epoch improves on the best value b when value < b - min_delta (mode "min") or
    value > b + min_delta (mode "max"); training stops at the end of the ``patience``-th epoch
    in a row without an improvement (Keras' rule).

    >>> import numpy as np, pearlnet, pearlnet.nn as nn
    >>> model = pearlnet.Model([nn.Dense(1, input_shape=(2,))])
    >>> model.compile(loss="mean_squared_error", optimizer="sgd")
    >>> stop = EarlyStopping(monitor="loss", patience=2, min_delta=100.0)  # nothing is enough
    >>> history = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=50, verbose=0,
    ...                     callbacks=[stop])
    >>> history.epoch, stop.stopped_epoch
    ([0, 1, 2], 2)
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        super().__init__()
        if patience < 0 or min_delta < 0:
            raise ValueError(f"EarlyStopping: patience and min_delta must be >= 0, got "
                             f"{patience}, {min_delta}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be auto, min or max, got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.best = None
        self.best_epoch = -1
        self.best_params = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} is not among the logged figures "
                          f"{sorted(logs or {})}", stacklevel=2)
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_params = (self.model.params, self.model.state)
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras: stop after `patience` epochs without gain
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_params is not None:
            self.model.params, self.model.state = self.best_params
