"""Categorical cross-entropy (hand-out 001, section 2.2.1), per object."""

from __future__ import annotations

from typing import Any

import pearlnet.numpy as pnp

from .interface import Loss

__all__ = ["CategoricalCrossentropy"]


class CategoricalCrossentropy(Loss):
    """L_i = -sum_k y_gt[i, k] ln y_pred[i, k], one value per object (shape (n,)).

    ``gradient`` is dL_i/dy_pred[i] = -y_gt[i] / y_pred[i] (shape (n, d)), the pullback of the
    per-object losses. Probabilities below ``eps`` = 1e-12 are raised to it, so a softmax output
    that underflowed to 0 gives a finite loss (and 0 * ln 0 is taken as 0, not NaN); the gradient
    of such an entry is 0.
    """

    eps = 1e-12

    def loss_fn(self, y_gt: Any, y_pred: Any) -> Any:
        # a lower bound only: clip(p, eps, 1) would halve the derivative at p = 1 exactly (a tie
        # at the bound), which a saturated softmax reaches in floating point
        safe = pnp.where(y_pred > self.eps, y_pred, self.eps)
        return -pnp.sum(y_gt * pnp.log(safe), axis=1)
