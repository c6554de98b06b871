"""History: the per-epoch figures of a ``fit`` run, returned by it."""

from __future__ import annotations

from .base import Callback


class History(Callback):
    """``history.history`` maps each figure (``loss``, ``accuracy``, ``val_loss``, ...) to a list
    with one value per epoch; ``history.epoch`` lists the epochs run. ``fit`` returns it.

    >>> import numpy as np, pearlnet, pearlnet.nn as nn
    >>> model = pearlnet.Model([nn.Dense(1, input_shape=(2,))])
    >>> model.compile(loss="mean_squared_error", optimizer="sgd")
    >>> history = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=3, verbose=0,
    ...                     validation_data=(np.ones((2, 2)), np.ones((2, 1))))
    >>> history.epoch, sorted(history.history), len(history.history["val_loss"])
    ([0, 1, 2], ['loss', 'val_loss'], 3)
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"
