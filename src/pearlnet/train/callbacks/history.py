"""History: the per-epoch figures of a ``fit`` run, returned by it."""

from __future__ import annotations

from .base import Callback


class History(Callback):
    """``history.history`` maps each figure (``loss``, ``accuracy``, ``val_loss``, ...) to a list
    with one value per epoch; ``history.epoch`` lists the epochs run."""

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
