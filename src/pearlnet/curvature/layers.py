"""The layer-access protocol of K-FAC and the exact GGN diagonal: each Dense and Conv2D layer's
input a, and the sensitivities of its pre-activation output u = linear(a).

``TappedNetwork(model).forward(params, x, probes, inputs)`` runs a Sequential model's
evaluation-mode forward pass layer by layer. At a Dense or Conv2D layer it stores the layer's
input in ``inputs[name]``, computes u with the library's own functions (``x @ W + b``,
``nn.conv.conv2d``), adds ``probes[name]`` (zeros of u's shape) and applies the layer's
activation; every other layer runs its own ``forward``. The probes change nothing, but the
gradient of any function of the outputs with respect to them is the sensitivity of each case's
u: so a backward pass of the core (``vjp`` over the probes) gives, for every case at once,
what K-FAC's output factor needs, and no derivative is written by hand. (The bench's earlier
trick, a per-case copy of each bias, does the same for Dense layers with biases only.)

Layout: a Dense layer's (W, b) is the (in + 1, out) matrix [W; b] in ``ravel`` order (W's
rows, then b); a Conv2D layer's is the (out, C kh kw + 1) matrix [W_mat, b], W_mat = W
reshaped to (out, C kh kw), which ``ravel`` stores as W_mat's rows then b.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.autodiff import strip
from pearlnet.nn.conv import Conv2D, conv2d
from pearlnet.nn.layers import Dense

__all__ = ["TappedNetwork", "LayerInfo"]


class LayerInfo:
    """One covered layer: its name, kind ("dense" or "conv2d"), whether it has a bias, the
    matrix shape of its parameters (rows, cols) in the Kronecker layout, and its slice of the
    flat parameters."""

    def __init__(self, layer: Any, kind: str, start: int, params: dict) -> None:
        self.layer, self.name, self.kind = layer, layer.name, kind
        self.bias = "b" in params
        w = np.shape(params["W"])
        if kind == "dense":
            self.w_shape = w
            self.in_dim, self.out_dim = w[0] + self.bias, w[1]
        else:
            self.w_shape = w
            self.in_dim, self.out_dim = int(np.prod(w[1:])) + self.bias, w[0]
        self.w_size = int(np.prod(w))
        self.start = start
        self.stop = start + self.w_size + (self.out_dim if self.bias else 0)

    def to_matrix(self, v: np.ndarray) -> np.ndarray:
        """This layer's part of the flat vector v as its parameter matrix: (in, out) for
        Dense, (out, in) for Conv2D (in counts the bias row/column)."""
        part = v[self.start:self.stop]
        if self.kind == "dense":
            return part.reshape(self.in_dim, self.out_dim)
        w = part[:self.w_size].reshape(self.out_dim, -1)
        if not self.bias:
            return w
        return np.concatenate([w, part[self.w_size:, None]], axis=1)

    def from_matrix(self, m: np.ndarray) -> np.ndarray:
        """The inverse of ``to_matrix``: the flat slice in ``ravel`` order."""
        if self.kind == "dense":
            return m.reshape(-1)
        if not self.bias:
            return m.reshape(-1)
        return np.concatenate([m[:, :-1].reshape(-1), m[:, -1]])


class TappedNetwork:
    """See the module docstring. ``covered`` lists the Dense and Conv2D layers (LayerInfo, in
    order); ``uncovered`` names the other layers that have parameters."""

    def __init__(self, model: Any, params: Any = None) -> None:
        if not hasattr(model, "layers"):
            raise TypeError(f"TappedNetwork: expected a Sequential model (pearlnet.Model), got "
                            f"{type(model).__name__}")
        self.model = model
        params = model.params if params is None else params
        self.covered: list[LayerInfo] = []
        self.uncovered: list[str] = []
        names = {layer.name: layer for layer in model.layers}
        at = 0
        for name, p in params.items():  # ravel order: the params dict's order
            layer = names.get(name)
            size = sum(int(np.size(a)) for a in _leaves(p))
            if isinstance(layer, Dense):
                self.covered.append(LayerInfo(layer, "dense", at, p))
            elif isinstance(layer, Conv2D):
                self.covered.append(LayerInfo(layer, "conv2d", at, p))
            elif size:
                self.uncovered.append(name)
            at += size
        self.size = at
        self._names = {info.name for info in self.covered}

    def require_all_covered(self, who: str) -> None:
        if self.uncovered:
            raise ValueError(f"{who}: K-FAC covers Dense and Conv2D layers; the layers "
                             f"{self.uncovered} have other parameters")

    def forward(self, params: dict, x: Any, probes: dict | None = None,
                inputs: dict | None = None) -> Any:
        state = self.model.state
        for layer in self.model.layers:
            p = params.get(layer.name, {})
            if layer.name in self._names:
                if inputs is not None:
                    inputs[layer.name] = np.asarray(strip(x))
                if isinstance(layer, Dense):
                    u = x @ p["W"]
                    if "b" in p:
                        u = u + p["b"]
                else:
                    u = conv2d(x, p["W"], p.get("b"), layer.stride, layer.padding)
                if probes is not None:
                    u = u + probes[layer.name]
                x = layer.activation(u)
            else:
                x, _ = layer.forward(p, x, state=state.get(layer.name, {}), training=False)
        return x

    def zero_probes(self, n: int, dtype: Any) -> dict:
        return {info.name: np.zeros((n, *info.layer.output_shape_), dtype)
                for info in self.covered}

    @staticmethod
    def input_rows(info: LayerInfo, a: np.ndarray) -> tuple[np.ndarray, int]:
        """(rows, P): the layer's input vectors, one row per case and position (a 1
        appended for the bias), and the number of positions P per case (1 for Dense)."""
        if info.kind == "dense":
            rows = a.reshape(len(a), -1)
            positions = 1
        else:
            layer = info.layer
            padding = layer._geometry(a.shape[1:])
            cols = np.asarray(pnp.im2col(a, layer.kernel_size, layer.stride, padding))
            c, kh, kw, oh, ow, n = cols.shape
            rows = cols.reshape(c * kh * kw, oh * ow * n).T  # row p * N + i? see below
            # im2col's columns run (OH, OW, N) with N innermost: reorder to case-major
            rows = rows.reshape(oh * ow, n, -1).transpose(1, 0, 2).reshape(n * oh * ow, -1)
            positions = oh * ow
        if info.bias:
            rows = np.concatenate([rows, np.ones((len(rows), 1), rows.dtype)], axis=1)
        return rows, positions

    @staticmethod
    def sensitivity_rows(info: LayerInfo, d: np.ndarray) -> np.ndarray:
        """The sensitivities (n, out...) as rows per case and position, case-major."""
        d = np.asarray(d)
        if info.kind == "dense":
            return d.reshape(len(d), -1)
        n, o = d.shape[:2]
        return d.reshape(n, o, -1).transpose(0, 2, 1).reshape(-1, o)


def _leaves(tree: Any) -> list:
    from pearlnet.autodiff import tree_flatten

    return tree_flatten(tree)[0]
