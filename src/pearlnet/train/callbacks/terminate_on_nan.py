"""TerminateOnNaN: on by default in ``fit``; stops at the first non-finite loss."""

from __future__ import annotations

import math
import warnings

from .base import Callback


class TerminateOnNaN(Callback):
    """At the first NaN or infinite batch loss: warn (naming the epoch and batch, through
    ``warnings`` so it shows even with verbose=0), put back the parameters of the last step whose
    loss was finite, and stop training. ``fit`` adds one unless ``terminate_on_nan=False``."""

    def on_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None or math.isfinite(loss):
            return
        epoch = logs.get("epoch", 0)
        warnings.warn(f"TerminateOnNaN: loss is {loss} at epoch {epoch + 1}, batch {batch + 1}; "
                      f"training stopped with the parameters of the last finite step",
                      RuntimeWarning, stacklevel=2)
        self.model.params, self.model.state = self.model.last_finite
        self.model.stop_training = True
