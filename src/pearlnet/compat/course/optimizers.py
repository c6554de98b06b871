"""SGD and SGD with momentum (hand-out 001, sections 2.3.1-2.3.2), as per-parameter updaters
over ``pearlnet.optim``'s ``SGD`` and ``Momentum``, whose conventions are the hand-out's."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from pearlnet import optim

from .interface import Optimizer, Shape, as_shape

__all__ = ["SGD", "SGDMomentum"]


class _CoreOptimizer(Optimizer):
    """An updater per parameter, each keeping its own state of the pearlnet optimizer ``core``
    (its step count drives a learning-rate schedule: one step per batch)."""

    core: optim.Optimizer

    @property
    def lr(self) -> Any:
        """The learning rate: a float, or a schedule step -> lr (step 0 for the first update).
        Assigning it affects every updater from its next step on."""
        return self.core.lr

    @lr.setter
    def lr(self, value: Any) -> None:
        self.core.lr = value

    def get_parameter_updater(self, parameter_shape: Shape) -> Callable:
        shape = as_shape(parameter_shape, f"{type(self).__name__}.get_parameter_updater",
                         "parameter_shape")
        shape = () if shape is None else shape
        core, who = self.core, f"{type(self).__name__} updater"
        state: dict | None = None

        def updater(parameter: np.ndarray, parameter_grad: np.ndarray) -> np.ndarray:
            nonlocal state
            parameter, parameter_grad = np.asarray(parameter), np.asarray(parameter_grad)
            if parameter.shape != shape or parameter_grad.shape != shape:
                raise ValueError(f"{who}: made for shape {shape}, got a parameter of shape "
                                 f"{parameter.shape} and a gradient of shape "
                                 f"{parameter_grad.shape}")
            if state is None:
                state = core.init(parameter)
            new, state = core.update(parameter, parameter_grad, state)
            return new

        return updater


class SGD(_CoreOptimizer):
    """Gradient descent: P <- P - lr * dL/dP (section 1.3; ``pearlnet.optim.SGD``).

    >>> import numpy as np
    >>> update = SGD(lr=0.1).get_parameter_updater((1,))
    >>> update(np.array([1.0]), np.array([2.0]))
    array([0.8])
    """

    def __init__(self, lr: Any) -> None:
        self.core = optim.SGD(lr)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr!r})"


class SGDMomentum(_CoreOptimizer):
    """Gradient descent with inertia I (I = 0 at first; ``pearlnet.optim.Momentum``):

        I <- momentum * I + lr * dL/dP
        P <- P - I

    ``momentum = 0`` is SGD; a past gradient weighs momentum^k after k steps (section 2.3.2).
    ``lr`` may also be a schedule step -> lr (``pearlnet.optim.schedules``).
    """

    def __init__(self, lr: Any, momentum: float = 0.0) -> None:
        self.core = optim.Momentum(lr, beta=momentum)

    @property
    def momentum(self) -> float:
        return self.core.beta

    def __repr__(self) -> str:
        return f"SGDMomentum(lr={self.lr!r}, momentum={self.momentum!r})"
