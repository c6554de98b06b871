"""Metrics ``metric(y_true, y_pred) -> float`` over a batch (plain NumPy: no derivatives)."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["accuracy", "get"]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of objects whose predicted class is right: argmax over the last axis for K > 1
    outputs (labels integer or one-hot); for a single output, class 1 when it exceeds
    ``threshold`` (0.5 for a probability; ``Model`` passes 0 when the output is a logit, as
    Keras' BinaryAccuracy does for from_logits)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        pred = (y_pred.reshape(len(y_pred), -1)[:, 0] > threshold).astype(int)
        truth = y_true.reshape(len(y_true), -1)[:, 0].astype(int)
    else:
        pred = np.argmax(y_pred, axis=-1)
        truth = y_true if y_true.ndim == y_pred.ndim - 1 else np.argmax(y_true, axis=-1)
    return float(np.mean(pred == truth))


_BY_NAME: dict[str, Callable] = {"accuracy": accuracy, "acc": accuracy}


def get(metric: str | Callable) -> tuple[str, Callable]:
    """(name, function) for a metric name or a callable."""
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    try:
        return ("accuracy" if metric == "acc" else metric), _BY_NAME[metric]
    except KeyError:
        raise ValueError(f"metric: unknown name {metric!r}; known: "
                         f"{', '.join(sorted(_BY_NAME))}") from None
