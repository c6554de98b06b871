"""Plain (stochastic) gradient descent."""

from __future__ import annotations

from typing import Any

from .base import LearningRate, Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent: ``P <- P - lr * g``.

    Args:
        lr: learning rate >= 0, or a schedule ``step -> lr`` (default 0.01, as Keras).
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer``.

    State: ``{"step": int}`` only.

    >>> import numpy as np
    >>> opt = SGD(lr=0.1)
    >>> w = np.array([1.0])
    >>> w, state = opt.update(w, np.array([2.0]), opt.init(w))
    >>> w, state["step"]
    (array([0.8]), 1)
    """

    key = "sgd"

    def __init__(self, lr: LearningRate = 0.01, *, weight_decay: float = 0.0,
                 decay_mask: Any = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay_mask=decay_mask)

    def _slot_math(self, g: Any, slots: tuple, c: tuple) -> tuple:
        return ()

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        (lr,) = c
        return lr * g
