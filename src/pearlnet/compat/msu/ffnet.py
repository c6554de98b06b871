"""A feed-forward network of layers (seed 000, section 3.3, module ffnet.py).

The parameter vector of the net is the layers' vectors one after another (each W-bar row by row).
Passes chain the layers' own: forward (2), backward (3), the R_p forward pass (4) from
R_p{z^0} = 0, and the R_p backward pass (section 1.3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import BaseLayer, FCLayer, as_matrix, as_vector, frozen

__all__ = ["FFNet"]


class FFNet:
    """``FFNet(layers)``: layers[0] takes the inputs, layers[-1] gives the outputs; the output
    size of each layer must be the input size of the next. A layer object may appear once only
    (it keeps the state of one forward pass); sharing weights needs layers of their own.

    >>> import numpy as np
    >>> from pearlnet.compat.msu.activations import TanhActivationFunction
    >>> from pearlnet.compat.msu.layers import FCLayer
    >>> net = FFNet([FCLayer((4, 3), TanhActivationFunction(), True),
    ...              FCLayer((3, 2), TanhActivationFunction(), True)])
    >>> net.params_number, net.compute_outputs(np.ones((4, 6))).shape
    (23, (2, 6))
    """

    def __init__(self, layers: list[BaseLayer]) -> None:
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"FFNet: layers must be a list of layers, got "
                            f"{type(layers).__name__}")
        if not layers:
            raise ValueError("FFNet: layers must hold at least one layer, got an empty list")
        seen: dict[int, int] = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, BaseLayer):
                raise TypeError(f"FFNet: layers[{i}] must be a BaseLayer, got "
                                f"{type(layer).__name__}")
            # a layer keeps one forward pass's state: a second use would overwrite the first
            if id(layer) in seen:
                raise ValueError(f"FFNet: layers[{i}] {layer!r} is already in the net (as "
                                 f"layers[{seen[id(layer)]}]); give each place its own layer")
            seen[id(layer)] = i
        for i in range(1, len(layers)):
            out, inp = layers[i - 1].shape[1], layers[i].shape[0]
            if out != inp:
                raise ValueError(f"FFNet: layers[{i - 1}] ({layers[i - 1]!r}) has {out} outputs "
                                 f"but layers[{i}] ({layers[i]!r}) takes {inp} inputs")
        self.layers = list(layers)
        self._sizes = [layer.get_params_number() for layer in self.layers]
        self.params_number = int(sum(self._sizes))
        self.num_inputs = self.layers[0].shape[0]
        self.num_outputs = self.layers[-1].shape[1]
        self._forward_count = 0  # for Autoencoder: which forward/backward the layers hold
        self._last_derivs: np.ndarray | None = None

    def _stamp(self) -> tuple:
        """Identifies the last forward pass and the weights it ran with."""
        return self._forward_count, tuple(layer._state() for layer in self.layers)

    def _split(self, vector: np.ndarray) -> list[np.ndarray]:
        return np.split(vector, np.cumsum(self._sizes)[:-1])

    def get_weights(self) -> np.ndarray:
        """All parameters as one vector of length params_number."""
        return np.concatenate([layer.get_weights() for layer in self.layers])

    def set_weights(self, w: np.ndarray) -> None:
        """Give each layer its part of w (a vector of length params_number)."""
        w = as_vector(w, self.params_number, "FFNet.set_weights", "w")
        for layer, part in zip(self.layers, self._split(w)):
            layer.set_weights(part)

    def set_direction(self, p: np.ndarray) -> None:
        """The direction of the R_p passes, laid out like the weights."""
        p = as_vector(p, self.params_number, "FFNet.set_direction", "p")
        for layer, part in zip(self.layers, self._split(p)):
            layer.set_direction(part)

    def compute_outputs(self, inputs: np.ndarray) -> np.ndarray:
        """The forward pass: num_inputs x num_objects in, num_outputs x num_objects out."""
        z = as_matrix(inputs, self.num_inputs, "FFNet.compute_outputs", "inputs")
        z = frozen(z, owned=z is not inputs)  # the later passes read the batch: a snapshot
        for layer in self.layers:
            z = layer.forward(z)
        self._forward_count += 1
        self._last_derivs = None
        return z

    def _batch(self, who: str) -> int:
        x = self.layers[0].inputs
        if x is None:
            raise RuntimeError(f"FFNet.{who}: call compute_outputs first")
        return x.shape[1]

    def compute_loss_grad(self, derivs: np.ndarray) -> np.ndarray:
        """The backward pass: derivs = dL/d(outputs), num_outputs x num_objects, in; dL/dtheta,
        a vector of length params_number, out."""
        n = self._batch("compute_loss_grad")
        d = as_matrix(derivs, self.num_outputs, "FFNet.compute_loss_grad", "derivs", n)
        d = derivs = frozen(d, owned=d is not derivs)  # the R_p backward pass reads it
        grads = []
        for layer in reversed(self.layers):
            d, g = layer.backward(d)
            if isinstance(layer, FCLayer):  # a fresh array: read-only, and the next layer
                d = frozen(d, owned=True)   # keeps it without a copy
            grads.append(g)
        self._last_derivs = derivs
        return np.concatenate(grads[::-1])

    def compute_Rp_outputs(self) -> np.ndarray:
        """R_p{outputs} = J p for the direction set by set_direction (formula 4, R_p{z^0} = 0),
        num_outputs x num_objects."""
        self._batch("compute_Rp_outputs")
        x = self.layers[0].inputs
        rz: Any = np.zeros_like(x)
        for i, layer in enumerate(self.layers):
            if i == 0 or isinstance(self.layers[i - 1], FCLayer):  # a fresh array: read-only,
                rz = frozen(rz, owned=True)  # and the layer keeps it without a copy
            rz = layer.Rp_forward(rz)
        return rz

    def compute_loss_Rp_grad(self, Rp_derivs: np.ndarray) -> np.ndarray:  # noqa: N802, N803
        """The R_p backward pass: R_p{dL/d(outputs)} in, R_p{dL/dtheta} (length params_number)
        out. Needs compute_outputs, compute_loss_grad and compute_Rp_outputs first."""
        n = self._batch("compute_loss_Rp_grad")
        d = as_matrix(Rp_derivs, self.num_outputs, "FFNet.compute_loss_Rp_grad", "Rp_derivs", n)
        grads = []
        for layer in reversed(self.layers):
            d, g = layer.Rp_backward(d)
            grads.append(g)
        return np.concatenate(grads[::-1])

    def get_activations(self, layer_number: int) -> np.ndarray:
        """The outputs of layer ``layer_number`` (0-based; negative counts from the end, as
        for a list) in the last forward pass: layer_num_outputs x num_objects."""
        if isinstance(layer_number, (bool, np.bool_)) or not isinstance(
                layer_number, (int, np.integer)):
            raise TypeError(f"FFNet.get_activations: layer_number must be an int, got "
                            f"{type(layer_number).__name__}")
        k = len(self.layers)
        if not -k <= layer_number < k:
            raise ValueError(f"FFNet.get_activations: layer_number must be in [{-k}, {k - 1}] "
                             f"for a net of {k} layers, got {layer_number}")
        return self.layers[layer_number].get_activations()

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"FFNet([\n  {inner}])"
