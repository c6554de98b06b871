"""AdaGrad: per-coordinate steps scaled by the accumulated squared gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LearningRate, Optimizer, check_number

__all__ = ["AdaGrad"]


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011), as in the lecture slides (C_0 = 0):

        C <- C + g^2
        P <- P - lr * g / sqrt(C + eps)

    eps sits inside the square root (the slides' ``sqrt(Cache + 1e-10)``); PyTorch and Keras
    put it outside, ``g / (sqrt(C) + eps)``. Rare features get larger steps; the steps of
    every coordinate shrink for ever, which RMSProp fixes.

    Args:
        lr: learning rate >= 0 or a schedule (default 0.01).
        eps: > 0, guards the division (default 1e-10).
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer``.

    State: ``{"step": int, "cache": tree like params}``.
    """

    key = "adagrad"
    slots = ("cache",)

    def __init__(self, lr: LearningRate = 0.01, eps: float = 1e-10, *,
                 weight_decay: float = 0.0, decay_mask: Any = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay_mask=decay_mask)
        self.eps = check_number(self.name, "eps", eps, low=0.0, low_open=True)

    def _hparams(self) -> dict:
        return {"eps": self.eps}

    def _slot_math(self, g: Any, slots: tuple, c: tuple) -> tuple:
        (cache,) = slots
        return (cache + g * g,)

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        (cache,), (lr,) = slots, c
        return lr * g / np.sqrt(cache + self.eps)
