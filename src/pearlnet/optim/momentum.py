"""Gradient descent with momentum (the heavy ball)."""

from __future__ import annotations

from typing import Any

from .base import LearningRate, Optimizer, check_number

__all__ = ["Momentum"]


class Momentum(Optimizer):
    """Momentum, in the course's form with the learning rate inside the inertia I (I_0 = 0):

        I <- beta * I + lr * g
        P <- P - I

    ``beta = 0`` is SGD; past gradients weigh in with beta^k after k steps.

    Relation to PyTorch (``torch.optim.SGD(momentum=beta)``: buf <- beta * buf + g;
    P <- P - lr * buf): with a constant lr, I = lr * buf and the two are identical. When lr
    changes (a schedule), ours applies each step's lr to that step's gradient only, while
    PyTorch rescales the whole accumulated buffer by the new lr. Keras's SGD(momentum) is ours.

    Args:
        lr: learning rate >= 0 or a schedule (default 0.01).
        beta: momentum in [0, 1) (default 0.9).
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer`` (not accumulated
            in I).

    State: ``{"step": int, "inertia": tree like params}``.
    """

    key = "momentum"
    slots = ("inertia",)

    def __init__(self, lr: LearningRate = 0.01, beta: float = 0.9, *,
                 weight_decay: float = 0.0, decay_mask: Any = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay_mask=decay_mask)
        self.beta = check_number(self.name, "beta", beta, low=0.0, high=1.0, high_open=True)

    def _hparams(self) -> dict:
        return {"beta": self.beta}

    def _slot_math(self, g: Any, slots: tuple, c: tuple) -> tuple:
        (inertia,), (lr,) = slots, c
        return (self.beta * inertia + lr * g,)

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        return slots[0]
