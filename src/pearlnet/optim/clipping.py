"""Gradient clipping by global norm, as a wrapper around any optimizer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pearlnet.autodiff.tree import tree_flatten, tree_map

from .base import LearningRate, check_number

__all__ = ["ClipByGlobalNorm", "global_norm"]


def _scaled_norm(tree: Any) -> tuple[float, int]:
    """(r, e) with the global norm = r * 2^e: the entries are first scaled by the power of two
    2^-e that brings the largest |g| into [0.5, 1), so the sum of squares neither overflows nor
    underflows; where the plain float64 sum does neither, r * 2^e is exactly its sqrt.
    A NaN or infinite entry gives r = NaN or inf (e = 0)."""
    leaves = [np.asarray(leaf, dtype=np.float64).ravel() for leaf in tree_flatten(tree)[0]]
    leaves = [x for x in leaves if x.size]
    if not leaves:
        return 0.0, 0
    biggest = float(np.max([np.max(np.abs(x)) for x in leaves]))  # NaN propagates
    if biggest == 0.0 or not math.isfinite(biggest):
        return biggest, 0
    e = math.frexp(biggest)[1]
    total = 0.0
    for x in leaves:
        x = np.ldexp(x, -e)  # exact: a power of two
        total += float(x @ x)
    return math.sqrt(total), e


def global_norm(tree: Any) -> float:
    """sqrt(sum of g^2 over every entry of every leaf), in float64 and without overflow or
    underflow in the squares (inf only when the norm itself exceeds the float64 range)."""
    return _unscale(*_scaled_norm(tree))


def _unscale(r: float, e: int) -> float:
    try:
        return math.ldexp(r, e)
    except OverflowError:
        return math.inf


class ClipByGlobalNorm:
    """Wraps an optimizer; rescales the whole gradient tree before each update:

        n = sqrt(sum_i ||g_i||^2)                  (over all leaves i)
        g_i <- g_i * min(1, max_norm / n)

    so the direction is kept and the norm is at most max_norm (Pascanu et al. 2013). A zero
    gradient is passed as it is; a NaN or infinite entry makes the gradient NaN (no silent
    repair). The norm is computed scaled, so a finite gradient too large to square in float64
    is still clipped exactly.
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
        r, e = _scaled_norm(grads)  # norm = r * 2^e, kept apart so a huge norm still clips
        if not math.isfinite(r):
            scale = math.nan
        elif _unscale(r, e) <= self.max_norm:
            scale = 1.0
        else:
            scale = math.ldexp(self.max_norm / r, -e)  # = max_norm / norm, without overflow
        if scale != 1.0:
            grads = tree_map(lambda g: np.asarray(g) * scale, grads)
        return self.optimizer.update(params, grads, state)

    def __repr__(self) -> str:
        return f"ClipByGlobalNorm({self.optimizer!r}, max_norm={self.max_norm!r})"
