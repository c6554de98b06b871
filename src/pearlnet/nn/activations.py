"""Activation functions, each with its elementwise derivatives derived by the autodiff core.

``relu(x)``, ``relu.deriv(x)``, ``relu.second_deriv(x)`` mirror the autoencoder assignment's
``val`` / ``deriv`` / ``second_deriv``: the derivatives are forward-mode passes (one for f', two
nested for f''), never a second hand-written formula. Softmax and log-softmax are not
elementwise and have no ``deriv``.

NOTE on kinks: relu (the primitive ``pnp.relu``), leaky_relu and elu take the left derivative at
exactly 0 (0 for relu), as PyTorch and the problem book's [H > 0] do; ``maximum(x, 0)`` would give
1/2 there.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.autodiff import jvp

__all__ = ["Activation", "sigmoid", "tanh", "relu", "leaky_relu", "abs_relu", "softplus",
           "swish", "mish", "elu", "linear", "softmax", "log_softmax", "get", "config_name"]


def _ones_like(x: Any) -> np.ndarray:
    return np.ones(pnp.shape(x), dtype=pnp.asarray(x).dtype)


class Activation:
    """An elementwise function f with ``f(x)``, ``f.deriv(x)`` = f'(x) and
    ``f.second_deriv(x)`` = f''(x), elementwise, by forward mode through the core.
    Keyword hyper-parameters (alpha, beta) are fixed at construction or passed per call."""

    def __init__(self, fn: Callable, name: str, doc: str = "", **defaults: Any) -> None:
        self.fn = fn
        self.name = name
        self.defaults = defaults
        self.__doc__ = doc
        self.__name__ = name

    def __call__(self, x: Any, **kwargs: Any) -> Any:
        return self.fn(x, **{**self.defaults, **kwargs})

    def deriv(self, x: Any, **kwargs: Any) -> Any:
        """f'(x), elementwise: the tangent of f along a tangent of ones."""
        x = _float_input(x, self.name)
        return jvp(lambda z: self(z, **kwargs), (x,), (_ones_like(x),))[1]

    def second_deriv(self, x: Any, **kwargs: Any) -> Any:
        """f''(x), elementwise: the forward derivative of ``deriv``."""
        x = _float_input(x, self.name)
        return jvp(lambda z: self.deriv(z, **kwargs), (x,), (_ones_like(x),))[1]

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.defaults.items())
        return f"Activation({self.name}{extra})"


def _float_input(x: Any, name: str) -> Any:
    if isinstance(x, (int, float, complex, list, tuple)):
        x = np.asarray(x, dtype=np.result_type(np.asarray(x), np.float64))
    elif isinstance(x, np.ndarray) and x.dtype.kind not in "fc":
        raise TypeError(f"{name}.deriv: expected a float array, got dtype {x.dtype}")
    return x


def _sigmoid(x):
    return pnp.sigmoid(x)


def _tanh(x):
    return pnp.tanh(x)


def _relu(x):
    return pnp.relu(x)


def _leaky_relu(x, alpha):
    return pnp.where(x > 0, x, alpha * x)


def _abs_relu(x):
    return pnp.abs(x)


def _softplus(x):
    return pnp.softplus(x)


def _swish(x, beta):
    return x * pnp.sigmoid(beta * x)


def _mish(x):
    return x * pnp.tanh(pnp.softplus(x))


def _elu(x, alpha):
    # expm1 of x where x <= 0, else of 0: the unused branch never overflows, and at x = 0 the
    # derivative is the left one, alpha (minimum(x, 0) would split a tie and give alpha/2)
    negative = pnp.where(x > 0, 0.0, x)
    return pnp.where(x > 0, x, alpha * pnp.expm1(negative))


def _linear(x):
    return x


sigmoid = Activation(_sigmoid, "sigmoid", "1 / (1 + exp(-x)), computed without overflow.")
tanh = Activation(_tanh, "tanh", "tanh(x).")
relu = Activation(_relu, "relu", "max(x, 0); derivative 0 at x = 0.")
leaky_relu = Activation(_leaky_relu, "leaky_relu", "x for x > 0, alpha x otherwise.", alpha=0.01)
abs_relu = Activation(_abs_relu, "abs_relu",
                      "|x|: absolute value rectification (Goodfellow et al. 6.3.1, alpha = -1).")
softplus = Activation(_softplus, "softplus", "log(1 + exp(x)), computed without overflow.")
swish = Activation(_swish, "swish", "x sigmoid(beta x) (Ramachandran et al. 2017).", beta=1.0)
mish = Activation(_mish, "mish", "x tanh(softplus(x)) (Misra 2019).")
elu = Activation(_elu, "elu", "x for x > 0, alpha (exp(x) - 1) otherwise.", alpha=1.0)
linear = Activation(_linear, "linear", "x (the identity).")


def softmax(x: Any, axis: int = -1, temperature: float = 1.0) -> Any:
    """exp(x/T) / sum(exp(x/T)) along ``axis``, through logsumexp (no overflow). T -> 0 tends to
    the one-hot of the largest entry, T -> inf to the uniform distribution."""
    if not 0 < temperature < math.inf:
        raise ValueError(f"softmax: temperature must be positive and finite, got {temperature}")
    z = x / temperature if temperature != 1.0 else x
    return pnp.exp(z - pnp.logsumexp(z, axis=axis, keepdims=True))


def log_softmax(x: Any, axis: int = -1) -> Any:
    """x - logsumexp(x) along ``axis``: the log-probabilities, stable for any logits."""
    return x - pnp.logsumexp(x, axis=axis, keepdims=True)


_BY_NAME = {a.name: a for a in (sigmoid, tanh, relu, leaky_relu, abs_relu, softplus, swish,
                                mish, elu, linear)}
_BY_NAME.update({"softmax": softmax, "log_softmax": log_softmax, "identity": linear,
                 "none": linear})


def get(name: str | Callable | None) -> Callable:
    """An activation by name ("relu", "tanh", ...), or the callable itself; None is linear."""
    if name is None:
        return linear
    if callable(name):
        return name
    try:
        return _BY_NAME[str(name).lower()]
    except KeyError:
        raise ValueError(f"activation: unknown name {name!r}; known: "
                         f"{', '.join(sorted(_BY_NAME))}") from None


def config_name(fn: Callable, who: str) -> str | Callable:
    """What a layer's config holds for the activation ``fn``: the name ``get`` maps back to
    ``fn`` itself ("relu"), or else ``fn`` itself, a function of one's own, which ``Model.save``
    stores by its ``__name__`` for ``load_model``'s custom_objects (Keras' rule; a lambda is
    refused there). A library activation with other defaults (``Activation(_leaky_relu,
    "leaky_relu", alpha=0.3)``) is neither the named one nor one's own: ValueError naming
    ``who``."""
    name = getattr(fn, "name", getattr(fn, "__name__", None))
    if isinstance(name, str) and _BY_NAME.get(name) is fn:
        return name
    if isinstance(fn, Activation) and fn.name in _BY_NAME:
        settings = "".join(f", {k}={v!r}" for k, v in fn.defaults.items())
        raise ValueError(f"{who}: cannot save the activation {fn!r}: the library's {fn.name} "
                         f"with other defaults, which no name stands for: use "
                         f"nn.Activation({fn.name!r}{settings}) after a layer without "
                         f"activation, or a function of one's own (def) with load_model's "
                         f"custom_objects")
    return fn
