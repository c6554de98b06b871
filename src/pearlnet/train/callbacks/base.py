"""Callback base class and the list that dispatches to several callbacks (Keras' interface)."""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks called by ``Model.fit``. ``self.model`` is set before training starts; a callback
    stops training by setting ``self.model.stop_training = True``. ``logs`` holds the epoch's
    figures: ``loss``, the metrics, and their ``val_`` twins."""

    def __init__(self) -> None:
        self.model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


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
