"""LearningRateScheduler: set the optimizer's learning rate at each epoch's start."""

from __future__ import annotations

from typing import Callable

from .base import Callback


class LearningRateScheduler(Callback):
    """``schedule(epoch, lr) -> new lr`` (Keras' signature), applied to ``optimizer.lr`` before
    each epoch; the rate used is logged as ``lr``.

    >>> import numpy as np, pearlnet, pearlnet.nn as nn
    >>> model = pearlnet.Model([nn.Dense(1, input_shape=(2,))])
    >>> model.compile(loss="mean_squared_error", optimizer=pearlnet.optim.SGD(0.1))
    >>> halve = LearningRateScheduler(lambda epoch, lr: lr / 2 if epoch > 0 else lr)
    >>> history = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=3, verbose=0,
    ...                     callbacks=[halve])
    >>> history.history["lr"]
    [0.1, 0.05, 0.025]
    """

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(self.schedule(epoch, opt.lr))
        if not lr >= 0:
            raise ValueError(f"LearningRateScheduler: schedule gave lr={lr} at epoch {epoch}")
        opt.lr = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.lr)
