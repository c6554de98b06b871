"""LearningRateScheduler: set the optimizer's learning rate at each epoch's start."""

from __future__ import annotations

from typing import Callable

from .base import Callback


class LearningRateScheduler(Callback):
    """``schedule(epoch, lr) -> new lr`` (Keras' signature), applied to ``optimizer.lr`` before
    each epoch; the rate used is logged as ``lr``."""

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
