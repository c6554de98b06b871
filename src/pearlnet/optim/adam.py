"""Adam: momentum plus RMSProp, with bias correction."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LearningRate, Optimizer, check_number

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with bias correction; m_0 = v_0 = 0, t = 1 at the first update:

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        mhat = m / (1 - beta1^t),  vhat = v / (1 - beta2^t)
        P <- P - lr * mhat / (sqrt(vhat) + eps)

    eps is outside the square root, as in the paper, PyTorch and Keras. With
    ``weight_decay > 0`` this is AdamW (Loshchilov & Hutter): P also moves by ``-lr * wd * P``,
    exactly PyTorch's ``AdamW`` (which multiplies P by 1 - lr * wd before the Adam step).

    Args:
        lr: learning rate >= 0 or a schedule (default 1e-3).
        beta1, beta2: decay rates in [0, 1) (defaults 0.9, 0.999).
        eps: > 0 (default 1e-8).
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer``.

    State: ``{"step": int, "m": tree like params, "v": tree like params}``.
    """

    key = "adam"
    slots = ("m", "v")

    def __init__(self, lr: LearningRate = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, *, weight_decay: float = 0.0,
                 decay_mask: Any = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay_mask=decay_mask)
        self.beta1 = check_number(self.name, "beta1", beta1, low=0.0, high=1.0,
                                  high_open=True)
        self.beta2 = check_number(self.name, "beta2", beta2, low=0.0, high=1.0,
                                  high_open=True)
        self.eps = check_number(self.name, "eps", eps, low=0.0, low_open=True)

    def _hparams(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _coefficients(self, lr: float, t: int) -> tuple[float, ...]:
        c1, c2 = 1.0 - self.beta1 ** (t + 1), 1.0 - self.beta2 ** (t + 1)
        root_c2 = float(np.sqrt(c2))
        return self.eps * root_c2, lr * root_c2 / c1

    # the docstring's arithmetic with bias corrections folded into two numbers:
    # m + (1 - b1)(g - m) (PyTorch's lerp), v + (1 - b2)(g^2 - v), and
    # lr mhat / (sqrt(vhat) + eps) = (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2)).
    # Written as expressions for jit (Model.fit's default), which fuses each into one
    # pass over memory in place; eagerly each operation makes a temporary
    def _slot_math(self, g: Any, slots: tuple, c: tuple) -> tuple:
        m, v = slots
        return (g - m) * (1.0 - self.beta1) + m, (g * g - v) * (1.0 - self.beta2) + v

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        (m, v), (eps_c, step_c) = slots, c
        return m / (np.sqrt(v) + eps_c) * step_c
