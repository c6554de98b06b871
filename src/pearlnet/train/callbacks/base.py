"""Callback base class and the list that dispatches to several callbacks (Keras' interface)."""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks called by ``Model.fit``. ``self.model`` is set before training starts; a callback
    stops training by setting ``self.model.stop_training = True``. ``logs`` holds the epoch's
    figures: ``loss``, the metrics, and their ``val_`` twins.

    >>> import numpy as np, pearlnet, pearlnet.nn as nn
    >>> class StopBelow(Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         if logs["loss"] < 0.1:
    ...             self.model.stop_training = True
    >>> model = pearlnet.Model([nn.Dense(1, input_shape=(2,))])
    >>> model.compile(loss="mean_squared_error", optimizer="adam")
    >>> history = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=500, verbose=0,
    ...                     callbacks=[StopBelow()])
    >>> len(history.epoch) < 500, history.history["loss"][-1] < 0.1
    (True, True)
    """

    def __init__(self) -> None:
        self.model: Any = None

    def set_model(self, model: Any) -> None:
        """Called by ``fit`` before training: the model this callback watches."""
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Before the first epoch (reset per-run state here)."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """After the last epoch, or after a stop."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Before epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """After epoch ``epoch``; ``logs`` has its figures (a callback may add its own)."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After batch ``batch`` of the epoch, its update applied (as Keras's
        ``on_train_batch_end``; with a TerminateOnNaN, a step whose loss is not finite is not
        applied); ``logs`` has its ``loss`` and ``epoch``."""


class CallbackList(Callback):
    """Several callbacks called in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    def set_model(self, model: Any) -> None:
        for c in self.callbacks:
            c.set_model(model)

    def on_train_begin(self, logs=None):
        for c in self.callbacks:
            c.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for c in self.callbacks:
            c.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_batch_end(self, batch, logs=None):
        for c in self.callbacks:
            c.on_batch_end(batch, logs)
