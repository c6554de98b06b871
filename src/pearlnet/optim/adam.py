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

    def _leaf(self, p: np.ndarray, g: np.ndarray, slots: tuple, lr: float, t: int,
              ctx: Any) -> tuple[np.ndarray, tuple]:
        m, v = slots
        b1, b2 = self.beta1, self.beta2
        # the docstring's arithmetic in as few passes over memory as NumPy allows, with no
        # temporaries (they dominate an update's cost on large layers):
        # m + (1 - b1)(g - m) (PyTorch's lerp), v + (1 - b2)(g^2 - v), and
        # lr mhat / (sqrt(vhat) + eps) = (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2))
        m_new = np.subtract(g, m, out=np.empty_like(p))  # out=: stays an array when 0-d
        m_new *= 1.0 - b1
        m_new += m
        v_new = np.multiply(g, g, out=np.empty_like(p))
        v_new -= v
        v_new *= 1.0 - b2
        v_new += v
        c1, c2 = 1.0 - b1 ** (t + 1), 1.0 - b2 ** (t + 1)
        root_c2 = float(np.sqrt(c2))
        delta = np.sqrt(v_new, out=np.empty_like(p))
        delta += self.eps * root_c2
        np.divide(m_new, delta, out=delta)
        delta *= lr * root_c2 / c1
        return delta, (m_new, v_new)
