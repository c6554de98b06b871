"""Sequence models: an LSTM next-value regressor and a row-by-row LSTM image classifier.

Both return a ``pearlnet.Model`` ready for ``compile`` and ``fit``:

>>> model = lstm_regressor(steps=30, units=8)
>>> model.compile(loss="mse", optimizer="adam")
>>> model.count_params()  # LSTM 4(8(8 + 1) + 8) = 320, Dense 8 + 1 = 9
329
"""

from __future__ import annotations

from pearlnet import nn
from pearlnet.train import Model

__all__ = ["lstm_regressor", "lstm_classifier"]


def lstm_regressor(steps: int = 50, features: int = 1, units: int = 32, outputs: int = 1,
                   seed: int = 0) -> Model:
    """LSTM(units) over (steps, features) sequences, then a linear Dense(outputs) on the last
    state: the next value of a series (``pearlnet.data.load_sine``; train with the "mse"
    loss)."""
    return Model([nn.LSTM(units, input_shape=(steps, features)), nn.Dense(outputs)], seed=seed)


def lstm_classifier(input_shape: tuple = (28, 28), num_classes: int = 10, units: int = 128,
                    mean: float = 0.0, std: float = 1.0, bidirectional: bool = False,
                    seed: int = 0) -> Model:
    """An image of shape (rows, columns) read row by row: a sequence of ``rows`` steps of
    ``columns`` features. Standardize (the training set's pixel mean and std, so it takes raw
    pixels), LSTM(units) (both directions, concatenated, with ``bidirectional``), and a linear
    Dense(num_classes) giving logits (train with "categorical_crossentropy")."""
    if len(input_shape) != 2:
        raise ValueError(f"lstm_classifier: input_shape must be (rows, columns), got "
                         f"{tuple(input_shape)}")
    lstm = nn.LSTM(units)
    return Model([nn.Standardize(mean, std, input_shape=tuple(input_shape)),
                  nn.Bidirectional(lstm) if bidirectional else lstm,
                  nn.Dense(num_classes)], seed=seed)
