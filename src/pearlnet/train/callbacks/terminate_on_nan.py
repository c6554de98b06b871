"""TerminateOnNaN: on by default in ``fit``; stops at the first non-finite loss."""

from __future__ import annotations

import math
import warnings

from .base import Callback


class TerminateOnNaN(Callback):
    """At the first NaN or infinite batch loss: warn (naming the epoch and batch, through
    ``warnings`` so it shows even with verbose=0), put back the parameters of the last step whose
    loss was finite, and stop training. ``fit`` adds one unless ``terminate_on_nan=False``.

    >>> import warnings, numpy as np, pearlnet, pearlnet.nn as nn
    >>> model = pearlnet.Model([nn.Dense(1, input_shape=(2,))])
    >>> model.compile(loss="mean_squared_error", optimizer=pearlnet.optim.SGD(1e30))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     history = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=5, verbose=0)
    >>> "TerminateOnNaN" in str(caught[0].message), model.stop_training, len(history.epoch) < 5
    (True, True, True)
    >>> bool(np.isfinite(model.predict(np.ones((1, 2)))).all())  # the last finite weights
    True
    """

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
