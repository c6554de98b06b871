"""Nesterov's accelerated gradient, in Sutskever et al.'s momentum form."""

from __future__ import annotations

from typing import Any

from .momentum import Momentum

__all__ = ["Nesterov"]


class Nesterov(Momentum):
    """Nesterov momentum with the gradient taken at the parameters passed in (I_0 = 0):

        I <- beta * I + lr * g
        P <- P - (beta * I + lr * g)          (with the new I)

    This is Sutskever et al. (2013)'s look-ahead momentum, v <- beta v - lr grad L(W + beta v);
    W <- W + v, rewritten in the look-ahead variable P = W + beta v (``I = -v``): the
    parameters returned are the look-ahead point, where the next gradient is due, so the
    caller never evaluates the gradient anywhere but at the params it holds. The classical
    iterate is recovered as ``W = P + beta * I``. It is PyTorch's ``SGD(nesterov=True)`` with
    buf = I / lr (identical for a constant lr; see ``Momentum`` for a changing lr).

    Args:
        lr: learning rate >= 0 or a schedule (default 0.01).
        beta: momentum in [0, 1) (default 0.9); ``beta = 0`` is SGD.
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer``.

    State: ``{"step": int, "inertia": tree like params}``.
    """

    key = "nesterov"  # constructor, hyper-parameters and state are Momentum's

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        # the new inertia from Momentum's _slot_math, then one more look-ahead
        (inertia,), (lr,) = slots, c
        return self.beta * inertia + lr * g
