"""The assignment's sequential ``Model`` (hand-out 001, section 2.4): add, forward, backward,
fit_batch, fit, evaluate, and per-epoch histories of loss and accuracy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pearlnet.nn.module import as_rng

from .interface import Layer, Loss, Optimizer, as_batch

__all__ = ["Model"]


def _accuracy(y_gt: np.ndarray, y_pred: np.ndarray) -> float:
    """The share of objects whose largest predicted entry is the true class (one-hot y_gt)."""
    return float(np.mean(np.argmax(y_pred, axis=1) == np.argmax(y_gt, axis=1)))


def _positive_int(value: Any, name: str, who: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{who}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class Model:
    """A sequential network trained by mini-batch gradient descent.

    ``add`` builds each layer against the previous one (a shape mismatch raises ValueError
    naming the layer and both shapes, at ``add`` when the shapes are known, otherwise at the
    first ``forward``). Histories, one entry per epoch of ``fit``: ``loss_train_history`` and
    ``accuracy_train_history`` (means over the epoch's batches, as they were trained on),
    ``loss_valid_history`` and ``accuracy_valid_history`` (``evaluate`` on the validation set
    after the epoch, when one is given).

    Args:
        loss: a ``Loss`` (per-object values and gradients).
        optimizer: an ``Optimizer``; every parameter gets its own updater.
        seed: int, ``numpy.random.Generator`` or None, for shuffling in ``fit``.

    >>> import numpy as np
    >>> from pearlnet.compat.course import Model, Dense, Softmax, CategoricalCrossentropy, SGD
    >>> model = Model(CategoricalCrossentropy(), SGD(lr=0.1), seed=0)
    >>> model.add(Dense(3, input_shape=(4,), seed=0))
    >>> model.add(Softmax())
    >>> x, y = np.ones((6, 4)), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    >>> model.fit(x, y, batch_size=2, epochs=2, verbose=False)
    >>> len(model.loss_train_history)
    2
    """

    def __init__(self, loss: Loss, optimizer: Optimizer, *, seed: Any = None) -> None:
        if not (callable(loss) and callable(getattr(loss, "gradient", None))):
            raise TypeError(f"Model: loss must be a Loss (callable, with a gradient method), got "
                            f"{loss!r}")
        if not callable(getattr(optimizer, "get_parameter_updater", None)):
            raise TypeError(f"Model: optimizer must be an Optimizer (with "
                            f"get_parameter_updater), got {optimizer!r}")
        self.loss = loss
        self.optimizer = optimizer
        self.rng = as_rng(seed)
        self.layers: list[Layer] = []
        self.last_layer: Layer | None = None
        self.loss_train_history: list[float] = []
        self.loss_valid_history: list[float] = []
        self.accuracy_train_history: list[float] = []
        self.accuracy_valid_history: list[float] = []

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"Model([{layers}], loss={self.loss!r}, optimizer={self.optimizer!r})"

    def add(self, layer: Layer) -> None:
        """Append ``layer``, built with the model's optimizer after the last layer."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Model.add: expected a Layer, got {type(layer).__name__}")
        if any(layer is other for other in self.layers):
            raise ValueError(f"Model.add: {layer!r} is already in the model")
        layer.index = len(self.layers)
        layer.build(self.optimizer, prev_layer=self.last_layer)
        self.layers.append(layer)
        self.last_layer = layer

    def forward(self, x: Any) -> np.ndarray:
        """The network's outputs for a batch x (n, ...); each layer keeps what backward needs."""
        if not self.layers:
            raise ValueError("Model.forward: the model has no layers; add some first")
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, y_gt: Any, y_pred: Any) -> np.ndarray:
        """Back-propagate the loss's per-object gradient through the layers (last to first),
        which store their parameter gradients; returns dL/dx for the model's inputs."""
        grad = self.loss.gradient(y_gt, y_pred)
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def fit_batch(self, x_batch: Any, y_batch: Any) -> tuple[float, float]:
        """One step on a batch: forward, backward, update every parameter. Returns the batch's
        (mean loss, accuracy) before the update."""
        y_pred = self.forward(x_batch)
        loss = float(np.mean(self.loss(y_batch, y_pred)))
        accuracy = _accuracy(np.asarray(y_batch), y_pred)
        self.backward(y_batch, y_pred)
        for layer in self.layers:
            layer.update_parameters()
        return loss, accuracy

    def _data(self, x: Any, y: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = as_batch(x, who, "x"), as_batch(y, who, "y")
        if len(x) != len(y) or y.ndim != 2:
            raise ValueError(f"{who}: expected x of shape (n, ...) and one-hot y of shape (n, d) "
                             f"with the same n, got {x.shape} and {y.shape}")
        return x, y

    def fit(self, x_train: Any, y_train: Any, batch_size: int, epochs: int, shuffle: bool = True,
            verbose: bool = True, x_valid: Any = None, y_valid: Any = None) -> None:
        """``epochs`` passes over the training set in batches of ``batch_size`` (the last one may
        be smaller), reshuffled each epoch when ``shuffle``; appends one entry per epoch to the
        histories and, with ``verbose``, prints them."""
        x_train, y_train = self._data(x_train, y_train, "Model.fit")
        batch_size = _positive_int(batch_size, "batch_size", "Model.fit")
        epochs = _positive_int(epochs, "epochs", "Model.fit", low=0)
        if (x_valid is None) != (y_valid is None):
            raise ValueError("Model.fit: give both x_valid and y_valid, or neither")
        if x_valid is not None:
            x_valid, y_valid = self._data(x_valid, y_valid, "Model.fit (validation)")
        n = len(x_train)
        if n == 0:
            raise ValueError("Model.fit: x_train is empty")
        for epoch in range(epochs):
            start = time.perf_counter()
            order = self.rng.permutation(n) if shuffle else np.arange(n)
            loss_sum = correct = 0.0
            for lo in range(0, n, batch_size):
                idx = order[lo:lo + batch_size]
                loss, accuracy = self.fit_batch(x_train[idx], y_train[idx])
                loss_sum += loss * len(idx)
                correct += accuracy * len(idx)
            self.loss_train_history.append(loss_sum / n)
            self.accuracy_train_history.append(correct / n)
            line = (f"Epoch {epoch + 1}/{epochs}: loss {loss_sum / n:.4f}, "
                    f"accuracy {correct / n:.4f}")
            if x_valid is not None:
                loss, accuracy = self.evaluate(x_valid, y_valid, batch_size)
                self.loss_valid_history.append(loss)
                self.accuracy_valid_history.append(accuracy)
                line += f", valid loss {loss:.4f}, valid accuracy {accuracy:.4f}"
            if verbose:
                print(f"{line} ({time.perf_counter() - start:.1f} s)", flush=True)

    def evaluate(self, x: Any, y: Any, batch_size: int) -> tuple[float, float]:
        """(mean loss, accuracy) over (x, y), computed in batches of ``batch_size``."""
        x, y = self._data(x, y, "Model.evaluate")
        batch_size = _positive_int(batch_size, "batch_size", "Model.evaluate")
        if len(x) == 0:
            raise ValueError("Model.evaluate: x is empty")
        loss_sum = correct = 0.0
        for lo in range(0, len(x), batch_size):
            y_pred = self.forward(x[lo:lo + batch_size])
            y_gt = y[lo:lo + batch_size]
            loss_sum += float(np.sum(self.loss(y_gt, y_pred)))
            correct += float(np.sum(np.argmax(y_pred, axis=1) == np.argmax(y_gt, axis=1)))
        return loss_sum / len(x), correct / len(x)
