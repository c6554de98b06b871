"""Losses ``loss(y_true, y_pred)``: the mean over objects (Keras' argument order).

Each is a plain differentiable function, so ``grad``, ``hvp`` and ``gauss_newton_vp`` see through
it. Classification targets may be integer labels (N,) or one-hot / probability rows (N, K);
for sequence outputs (N, T, K), labels (N, T) or one-hot targets (N, T, K).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.numpy._util import dtype_of, known

__all__ = ["squared_error", "mean_squared_error", "categorical_crossentropy",
           "binary_crossentropy", "poisson_nll", "get"]


def _n(y: Any) -> int:
    shape = pnp.shape(y)
    return shape[0] if shape else 1


def _check_pair(name: str, y_true: Any, y_pred: Any) -> None:
    if pnp.shape(y_true) != pnp.shape(y_pred):
        raise ValueError(f"{name}: y_true has shape {pnp.shape(y_true)}, y_pred "
                         f"{pnp.shape(y_pred)}; they must match")


def squared_error(y_true: Any, y_pred: Any) -> Any:
    """(1/n) sum_i 0.5 ||y_i - z_i||^2: summed over features, averaged over objects (the
    autoencoder assignment's loss, formula 1). Its Hessian in z is I/n."""
    _check_pair("squared_error", y_true, y_pred)
    return 0.5 * pnp.sum(pnp.square(y_pred - y_true)) / _n(y_pred)


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """mean((y - z)^2) over every entry (Keras' and PyTorch's MSE)."""
    _check_pair("mean_squared_error", y_true, y_pred)
    return pnp.mean(pnp.square(y_pred - y_true))


def _labels_or_onehot(name: str, y_true: Any, y_pred: Any,
                      axis: int = -1) -> tuple[np.ndarray | None, Any]:
    """(integer labels, None) or (None, target rows). Labels have y_pred's shape without the
    class axis ``axis``: (N,) for (N, K), (N, T) for (N, T, K)."""
    y = pnp.stop_gradient(y_true)  # plain, or under jit an array of the compiled program
    y = np.asarray(y) if known(y) else y  # (whose values are checked where they are known)
    shape, yshape, ykind = pnp.shape(y_pred), pnp.shape(y), dtype_of(y).kind
    k = shape[axis]
    if len(yshape) == len(shape) - 1 and ykind in "iub":
        expected = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
        if yshape != expected:
            raise ValueError(f"{name}: integer labels for y_pred of shape {shape} must have "
                             f"shape {expected}, got {yshape}")
        return pnp.astype(pnp.check_range(y, 0, k - 1, name, f"labels must lie in [0, {k})"),
                          np.intp), None
    if len(yshape) == len(shape) - 1 and ykind in "fc":  # labels' shape, not of integers
        raise ValueError(f"{name}: got {dtype_of(y)} targets of shape {yshape} for y_pred of "
                         f"shape {shape}; pass integer labels or one-hot rows of shape {shape}")
    _check_pair(name, y_true, y_pred)
    return None, y_true


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                             axis: int = -1) -> Any:
    """-(1/n) sum_i sum_k y_ik log p_ik. From probabilities p = y_pred (raised to at least 1e-7,
    the course's formula; no upper clip, whose tie rule would halve the gradient at p = 1);
    from logits, log p = logits - logsumexp(logits), fused and stable.
    y_true: integer labels (N,) or one-hot rows (N, K); for sequences (N, T, K), labels (N, T)
    or one-hot (N, T, K), summed over time and averaged over the N objects."""
    labels, target = _labels_or_onehot("categorical_crossentropy", y_true, y_pred, axis)
    if from_logits:
        logp = y_pred - pnp.logsumexp(y_pred, axis=axis, keepdims=True)
    else:
        logp = pnp.log(pnp.maximum(y_pred, 1e-7))
    n = _n(y_pred)
    if labels is not None:  # log p at each label: the label along ``axis``, grids elsewhere
        grids = np.ix_(*(np.arange(d) for d in labels.shape))
        ax = axis % pnp.ndim(y_pred)
        return -pnp.sum(logp[(*grids[:ax], labels, *grids[ax:])]) / n
    return -pnp.sum(target * logp) / n


_TARGET_SLACK = 1e-6  # about 8 float32 ulps at 1


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Any:
    """Logloss -(1/n) sum [y log p + (1 - y) log(1 - p)], averaged over every entry. From
    logits z: softplus(z) - y z, which never overflows. Targets lie in [0, 1] (labels 0/1 or
    probabilities, up to rounding of 1e-6); others are a ValueError, also in a compiled
    program."""
    y_true = pnp.astype(y_true, pnp.asarray(y_pred).dtype) if dtype_of(
        pnp.asarray(y_true)).kind in "iub" else y_true
    _check_pair("binary_crossentropy", y_true, y_pred)
    # a target outside [0, 1] (a class label 2 given to one output) makes the loss unbounded
    # below; the slack admits rounding in soft targets (mixup's lam y1 + (1 - lam) y2)
    y_true = pnp.check_range(y_true, -_TARGET_SLACK, 1 + _TARGET_SLACK, "binary_crossentropy",
                             "targets must lie in [0, 1]")
    if from_logits:
        return pnp.mean(pnp.softplus(y_pred) - y_true * y_pred)
    p = pnp.clip(y_pred, 1e-7, 1 - 1e-7)
    return -pnp.mean(y_true * pnp.log(p) + (1 - y_true) * pnp.log(1 - p))


def poisson_nll(y_true: Any, y_pred: Any, log_input: bool = True) -> Any:
    """Poisson negative log-likelihood without the log(y!) constant, averaged over entries:
    exp(z) - y z for a log-rate z (log_input, as PyTorch's default), else mu - y log(mu)."""
    _check_pair("poisson_nll", y_true, y_pred)
    if log_input:
        return pnp.mean(pnp.exp(y_pred) - y_true * y_pred)
    return pnp.mean(y_pred - y_true * pnp.log(y_pred + 1e-8))


_BY_NAME: dict[str, Callable] = {
    "squared_error": squared_error, "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error, "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy, "logloss": binary_crossentropy,
    "poisson_nll": poisson_nll, "poisson": poisson_nll,
}


def get(loss: str | Callable) -> Callable:
    """A loss by name or the callable itself."""
    if callable(loss):
        return loss
    try:
        return _BY_NAME[loss]
    except KeyError:
        raise ValueError(f"loss: unknown name {loss!r}; known: "
                         f"{', '.join(sorted(_BY_NAME))}") from None
