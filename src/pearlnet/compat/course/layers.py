"""ReLU, Softmax and Dense (hand-out 001, sections 2.1.1-2.1.3), batch first.

Each forward pass evaluates a pure function written with ``pearlnet.numpy`` under
``pearlnet.vjp``; ``backward`` applies the recorded pullback. Input gradients are per object,
parameter gradients averaged over the batch (section 1.3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.nn import activations, initializers
from pearlnet.nn.module import as_rng

from .interface import Layer, Optimizer

__all__ = ["ReLU", "Softmax", "Dense"]


class ReLU(Layer):
    """y = max(x, 0), elementwise, on inputs of any shape (n, ...); dy/dx = [x > 0]
    (0 at the kink, as the problem book's [H > 0])."""

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return self.record(pnp.relu, inputs)

    def backward(self, grad_outputs: np.ndarray) -> np.ndarray:
        return self.pull(grad_outputs)[0]


class Softmax(Layer):
    """y_i = exp(x_i) / sum_j exp(x_j) over the last axis (computed as exp(x - logsumexp x), so
    large inputs do not overflow); every y_i depends on every x_j, and backward gives
    dL/dx_j = y_j (dL/dy_j - sum_i y_i dL/dy_i), per object."""

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return self.record(activations.softmax, inputs)

    def backward(self, grad_outputs: np.ndarray) -> np.ndarray:
        return self.pull(grad_outputs)[0]


def _dense(x: Any, w: Any, b: Any) -> Any:
    return x @ w + b


class Dense(Layer):
    """Y = X W + B for a batch X of shape (n, d): W (d, c), B (c,), Y (n, c) (section 2.1.3,
    written batch first, so W is the hand-out's matrix transposed).

    Initialisation: W ~ N(0, sqrt(2/d)) (standard deviation sqrt(2/d), He et al. 2015), B = 0.
    ``backward`` stores ``weights_grad`` = X^T G / n and ``biases_grad`` = mean of G over the
    batch, and returns G W^T (G = dL/dY), all from the pullback of the forward pass.

    Args:
        units: c, the number of outputs.
        input_shape: (d,), needed for the first layer of a model (otherwise taken from the
            previous layer, or from the first batch).
        seed: an int, a ``numpy.random.Generator`` or None (fresh entropy) for the weights.
        dtype: dtype of the parameters (float64 by default; float32 halves the time).
    """

    needs_input_shape = True

    def __init__(self, units: int, input_shape: Any = None, *, seed: Any = None,
                 dtype: Any = np.float64) -> None:
        super().__init__(input_shape)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.output_units = self.units  # the hand-out's name
        self.output_shape = (self.units,)
        self.rng = as_rng(seed)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"Dense: dtype must be a floating dtype, got {self.dtype}")
        self.weights: np.ndarray | None = None
        self.biases: np.ndarray | None = None
        self.weights_grad: np.ndarray | None = None
        self.biases_grad: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Dense(units={self.units}, input_shape={self.input_shape})"

    def build(self, optimizer: Optimizer | None, prev_layer: Layer | None = None) -> None:
        """Create the weights and biases once the input shape (d,) is known."""
        super().build(optimizer, prev_layer)
        self.output_shape = (self.units,)
        if self.input_shape is None:
            return  # created at the first forward pass
        if len(self.input_shape) != 1:
            raise ValueError(f"{self.describe()}: expects flat inputs of shape (batch, d), got "
                             f"input shape (batch, {', '.join(map(str, self.input_shape))})")
        (d,) = self.input_shape
        self.weights, self.weights_grad = self.add_parameter(
            "weights", (d, self.units),
            lambda shape: initializers.he_normal(self.rng, shape, self.dtype))
        self.biases, self.biases_grad = self.add_parameter(
            "biases", (self.units,), lambda shape: np.zeros(shape, self.dtype))

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        if inputs.ndim != 2:
            raise ValueError(f"{self.describe()}: expected inputs of shape (batch, d), got "
                             f"{inputs.shape}")
        return self.record(_dense, inputs, self.weights, self.biases)

    def backward(self, grad_outputs: np.ndarray) -> np.ndarray:
        grad_inputs, grad_w, grad_b = self.pull(grad_outputs, self.weights, self.biases)
        n = len(grad_inputs)
        self.weights_grad = grad_w / n
        self.biases_grad = grad_b / n
        return grad_inputs

