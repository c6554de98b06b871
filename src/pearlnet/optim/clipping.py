"""Gradient clipping by global norm, as a wrapper around any optimizer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pearlnet.autodiff.tree import tree_flatten, tree_map

from .base import LearningRate, check_number

__all__ = ["ClipByGlobalNorm", "global_norm"]


def global_norm(tree: Any) -> float:
    """sqrt(sum of g^2 over every entry of every leaf), accumulated in float64."""
    total = 0.0
    for leaf in tree_flatten(tree)[0]:
        x = np.asarray(leaf, dtype=np.float64).ravel()
        total += float(x @ x)
    return math.sqrt(total)


class ClipByGlobalNorm:
    """Wraps an optimizer; rescales the whole gradient tree before each update:

        n = sqrt(sum_i ||g_i||^2)                  (over all leaves i)
        g_i <- g_i * min(1, max_norm / n)

    so the direction is kept and the norm is at most max_norm (Pascanu et al. 2013). A zero
    gradient is passed as it is; a non-finite norm makes the gradient NaN (no silent repair).
    Same interface as the wrapped optimizer: ``init`` and the state are its own; ``lr`` and
    ``current_lr`` read and write the wrapped optimizer's.

    >>> from pearlnet.optim import SGD
    >>> opt = ClipByGlobalNorm(SGD(lr=0.1), max_norm=1.0)
    """

    def __init__(self, optimizer: Any, max_norm: float) -> None:
        if not (callable(getattr(optimizer, "init", None))
                and callable(getattr(optimizer, "update", None))):
            raise ValueError(f"ClipByGlobalNorm: expected an optimizer (with init and update), "
                             f"got {optimizer!r}")
        self.optimizer = optimizer
        self.max_norm = check_number("ClipByGlobalNorm", "max_norm", max_norm, low=0.0,
                                     low_open=True)

    @property
    def name(self) -> str:
        return f"ClipByGlobalNorm({getattr(self.optimizer, 'name', '?')})"

    @property
    def lr(self) -> LearningRate:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: LearningRate) -> None:
        self.optimizer.lr = value

    def current_lr(self, step: int) -> float:
        return self.optimizer.current_lr(step)

    def init(self, params: Any) -> dict:
        return self.optimizer.init(params)

    def update(self, params: Any, grads: Any, state: dict) -> tuple[Any, dict]:
        """Clip ``grads`` to global norm max_norm, then the wrapped optimizer's update."""
        norm = global_norm(grads)
        if not math.isfinite(norm):
            scale = math.nan
        else:
            scale = min(1.0, self.max_norm / norm) if norm > 0.0 else 1.0
        if scale != 1.0:
            grads = tree_map(lambda g: np.asarray(g) * scale, grads)
        return self.optimizer.update(params, grads, state)

    def __repr__(self) -> str:
        return f"ClipByGlobalNorm({self.optimizer!r}, max_norm={self.max_norm!r})"
