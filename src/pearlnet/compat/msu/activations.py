"""Activation functions of the autoencoder assignment (seed 000, section 3.1, activations.py).

``val(X)``, ``deriv(X)`` and ``second_deriv(X)`` return g(X), g'(X) and g''(X) elementwise, an
array of X's shape for a number, vector or matrix X. The functions are those of section 1.1
(sigmoid, tanh, ReLU, LeakyReLU max(s, alpha s) with 0 < alpha < 1, and the identity); they come
from ``pearlnet.nn.activations``, whose derivatives are forward-mode passes through the autodiff
core, not a second hand-written formula. Parameters (alpha) go to the constructor.

>>> from pearlnet.compat.msu.activations import SigmoidActivationFunction
>>> SigmoidActivationFunction().deriv(0.0)
array(0.25)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from pearlnet.autodiff.core import Tracer
from pearlnet.nn import activations as _nn

__all__ = ["BaseActivationFunction", "LinearActivationFunction", "SigmoidActivationFunction",
           "TanhActivationFunction", "ReluActivationFunction", "LeakyReluActivationFunction"]


class BaseActivationFunction:
    """An elementwise activation g with ``val``, ``deriv`` and ``second_deriv``.

    A subclass sets ``_function`` (a ``pearlnet.nn.activations.Activation``) and, when it has
    parameters, ``_params`` (keyword arguments of that function); a subclass computing its
    values another way overrides the three methods instead. ``val`` also accepts traced values,
    so the layers differentiate through it.
    """

    _function: _nn.Activation | None = None

    def __init__(self) -> None:
        self._params: dict = {}

    def _fn(self, who: str) -> _nn.Activation:
        if self._function is None:
            raise NotImplementedError(f"{type(self).__name__}.{who}: a subclass of "
                                      f"BaseActivationFunction must implement it")
        return self._function

    def val(self, X: Any) -> Any:
        """g(X), elementwise: an array of X's shape."""
        fn = self._fn("val")
        if isinstance(X, Tracer):  # inside a layer's traced computation
            return fn(X, **self._params)
        return np.asarray(fn(_as_float(X, type(self).__name__, "val"), **self._params))

    def deriv(self, X: Any) -> np.ndarray:
        """g'(X), elementwise (one forward-mode pass)."""
        X = _as_float(X, type(self).__name__, "deriv")
        return np.asarray(self._fn("deriv").deriv(X, **self._params))

    def second_deriv(self, X: Any) -> np.ndarray:
        """g''(X), elementwise (forward mode over forward mode)."""
        X = _as_float(X, type(self).__name__, "second_deriv")
        return np.asarray(self._fn("second_deriv").second_deriv(X, **self._params))

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({extra})"


def _as_float(X: Any, owner: str, who: str) -> np.ndarray:
    """X as a float or complex array; integers become float64 (the values are unchanged)."""
    if isinstance(X, (bool, np.bool_)) or not isinstance(
            X, (numbers.Number, np.ndarray, np.generic, list, tuple)):
        raise TypeError(f"{owner}.{who}: expected a number or a numpy.ndarray, got "
                        f"{type(X).__name__}")
    a = np.asarray(X)
    if a.dtype.kind in "iu":
        return a.astype(np.float64)
    if a.dtype.kind not in "fc":
        raise TypeError(f"{owner}.{who}: expected numbers (float or complex), got an array of "
                        f"dtype {a.dtype}")
    return a


class LinearActivationFunction(BaseActivationFunction):
    """g(s) = s: g' = 1, g'' = 0 (the usual choice for the code layer)."""

    _function = _nn.linear


class SigmoidActivationFunction(BaseActivationFunction):
    """g(s) = 1 / (1 + exp(-s)): g' = g (1 - g), g'' = g' (1 - 2 g)."""

    _function = _nn.sigmoid


class TanhActivationFunction(BaseActivationFunction):
    """g(s) = tanh(s) = 2 sigma(2 s) - 1: g' = 1 - g^2, g'' = -2 g g'."""

    _function = _nn.tanh


class ReluActivationFunction(BaseActivationFunction):
    """g(s) = max(0, s): g' = [s > 0] (0 at the kink s = 0), g'' = 0."""

    _function = _nn.relu


class LeakyReluActivationFunction(BaseActivationFunction):
    """g(s) = max(s, alpha s) with 0 < alpha < 1: g' = 1 for s > 0 and alpha otherwise (alpha
    at the kink), g'' = 0."""

    _function = _nn.leaky_relu

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        """The slope for s < 0; assigning it (checked like the constructor's) changes g."""
        return self._params["alpha"]

    @alpha.setter
    def alpha(self, alpha: float) -> None:
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"LeakyReluActivationFunction: alpha must be a real number, got "
                            f"{type(alpha).__name__}")
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"LeakyReluActivationFunction: alpha must lie in (0, 1) (seed "
                             f"000, section 1.1), got {alpha!r}")
        self._params = {"alpha": float(alpha)}
