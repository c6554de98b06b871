"""RMSProp: AdaGrad with a decaying average of squared gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LearningRate, Optimizer, check_number

__all__ = ["RMSProp"]


class RMSProp(Optimizer):
    """RMSProp (Hinton's lecture 6e), as in the lecture slides (C_0 = 0):

        C <- gamma * C + (1 - gamma) * g^2
        P <- P - lr * g / sqrt(C + eps)

    gamma is the decay of the gradient history (the problem book's alpha, PyTorch's alpha,
    Keras's rho). eps sits inside the square root as in the slides; PyTorch and Keras put it
    outside, ``g / (sqrt(C) + eps)``.

    Args:
        lr: learning rate >= 0 or a schedule (default 1e-3, as Keras).
        gamma: decay in [0, 1) (default 0.9).
        eps: > 0 (default 1e-10).
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer``.

    State: ``{"step": int, "cache": tree like params}``.
    """

    key = "rmsprop"
    slots = ("cache",)

    def __init__(self, lr: LearningRate = 1e-3, gamma: float = 0.9, eps: float = 1e-10, *,
                 weight_decay: float = 0.0, decay_mask: Any = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay_mask=decay_mask)
        self.gamma = check_number(self.name, "gamma", gamma, low=0.0, high=1.0,
                                  high_open=True)
        self.eps = check_number(self.name, "eps", eps, low=0.0, low_open=True)

    def _hparams(self) -> dict:
        return {"gamma": self.gamma, "eps": self.eps}

    def _slot_math(self, g: Any, slots: tuple, c: tuple) -> tuple:
        (cache,) = slots
        return (self.gamma * cache + (1.0 - self.gamma) * (g * g),)

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        (cache,), (lr,) = slots, c
        return lr * g / np.sqrt(cache + self.eps)
