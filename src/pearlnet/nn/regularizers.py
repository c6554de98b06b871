"""Penalties added to the training loss: ``penalty(weights) -> scalar``.

L2(l) = l * sum(W^2) and L1(l) = l * sum(|W|) (Goodfellow et al., 7.1; Keras' convention: no
factor 1/2). Layers apply them to their kernels only unless a bias regulariser is given.
"""

from __future__ import annotations

import math
from typing import Any

import pearlnet.numpy as pnp

__all__ = ["L1", "L2", "L1L2", "get"]


class L1L2:
    """l1 * sum(|W|) + l2 * sum(W^2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        if not (0 <= l1 < math.inf and 0 <= l2 < math.inf):
            raise ValueError(f"L1L2: coefficients must be >= 0 and finite, got l1={l1}, l2={l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: Any) -> Any:
        total = 0.0
        if self.l1:
            total = total + self.l1 * pnp.sum(pnp.abs(w))
        if self.l2:
            total = total + self.l2 * pnp.sum(pnp.square(w))
        return total

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def L1(l1: float = 0.01) -> L1L2:  # noqa: N802  (Keras' name)
    """l1 * sum(|W|): drives weights to exactly zero (sparsity)."""
    return L1L2(l1=l1)


def L2(l2: float = 0.01) -> L1L2:  # noqa: N802
    """l2 * sum(W^2): weight decay; its gradient is 2 l2 W."""
    return L1L2(l2=l2)


def get(spec: Any) -> L1L2 | None:
    """A regulariser from ``spec``: None, an ``L1L2`` (as it is), or its config dict
    ``{"l1": ..., "l2": ...}`` (how model files store it).

    >>> get({"l1": 0.0, "l2": 0.01})
    L1L2(l1=0.0, l2=0.01)
    """
    if spec is None or isinstance(spec, L1L2):
        return spec
    if isinstance(spec, dict):
        return L1L2(**spec)
    raise ValueError(f"regularizer: expected L1(...), L2(...), L1L2(...) or a config dict, "
                     f"got {spec!r}")
