"""The fully connected autoencoder of the autoencoder assignment (seed 000, section 1).

Layers z^l = f_l(W^l z^{l-1} + b^l), l = 1..L, with z^0 = x; the decoder mirrors the encoder.
With ``tied=True`` the decoder weight of a layer is the transpose of its encoder twin
(W^{L+1-l} = (W^l)^T, biases separate), and the gradients of both uses add up in the one shared
matrix. The loss is F(theta) = (1/n) sum_i 0.5 ||x_i - z^L(x_i)||^2 (formula 1), plus
l2 * sum ||W||^2 when ``l2 > 0``.

Every derivative comes from the autodiff core: ``loss_and_grad`` is one reverse pass,
``hessvec`` forward-over-reverse (the R{.} backward pass), ``gaussnewtonvec`` J^T J p / n by an
R-forward and a backward pass (section 1.4). Data are batch-first: x of shape (n, features).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.autodiff import gauss_newton_vp, hvp, value_and_grad
from pearlnet.nn import activations
from pearlnet.nn.module import as_rng

__all__ = ["Autoencoder"]


class Autoencoder:
    """``Autoencoder([784, 256, 64, 2], activation="tanh", code_activation="linear",
    tied=True)``: encoder 784-256-64-2, decoder 2-64-256-784.

    >>> ae = Autoencoder([4, 3, 2])
    >>> params = ae.init(seed=0)
    >>> x = np.random.default_rng(1).standard_normal((5, 4))
    >>> ae.reconstruct(params, x).shape, ae.encode(params, x).shape
    ((5, 4), (5, 2))
    """

    def __init__(self, sizes: list[int], activation: Any = "tanh",
                 code_activation: Any = "linear", output_activation: Any = "linear",
                 tied: bool = False, l2: float = 0.0, dtype: Any = np.float64) -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s <= 0 for s in sizes):
            raise ValueError(f"Autoencoder: sizes must list at least two positive widths "
                             f"(input ... code), got {sizes}")
        if l2 < 0:
            raise ValueError(f"Autoencoder: l2 must be >= 0, got {l2}")
        self.sizes = sizes
        self.activation = activations.get(activation)
        self.code_activation = activations.get(code_activation)
        self.output_activation = activations.get(output_activation)
        self.names = (activation, code_activation, output_activation)
        self.tied, self.l2, self.dtype = bool(tied), float(l2), np.dtype(dtype)

    @property
    def layer_sizes(self) -> list[int]:
        """All widths from input to output: [784, 256, 64, 2, 64, 256, 784]."""
        return self.sizes + self.sizes[-2::-1]

    @property
    def arch(self) -> str:
        return "-".join(map(str, self.layer_sizes))

    def init(self, seed: Any = 0) -> dict:
        """Weights N(0, 1/fan_in), biases 0 (the WORKLOADS convention), from a seed or a
        Generator. Returns {"encoder": [{"W", "b"}, ...], "decoder": [{"W"?, "b"}, ...]}."""
        rng = as_rng(seed)
        enc = [{"W": (rng.standard_normal((m, k)) / np.sqrt(m)).astype(self.dtype),
                "b": np.zeros(k, self.dtype)}
               for m, k in zip(self.sizes[:-1], self.sizes[1:])]
        dec = []
        for m, k in zip(self.sizes[:0:-1], self.sizes[-2::-1]):
            layer = {"b": np.zeros(k, self.dtype)}
            if not self.tied:
                layer = {"W": (rng.standard_normal((m, k)) / np.sqrt(m)).astype(self.dtype),
                         **layer}
            dec.append(layer)
        return {"encoder": enc, "decoder": dec}

    def count_params(self, params: dict) -> int:
        from pearlnet.autodiff import ravel

        return int(ravel(params)[0].size)

    # -- the network -------------------------------------------------------------------------
    def _check(self, x: Any, width: int, who: str) -> None:
        shape = pnp.shape(x)
        if len(shape) != 2 or shape[1] != width:
            raise ValueError(f"Autoencoder.{who}: expected x of shape (n, {width}), got {shape}")

    def encode(self, params: dict, x: Any) -> Any:
        """The codes z^{L/2}: (n, code width)."""
        self._check(x, self.sizes[0], "encode")
        h = x
        last = len(params["encoder"]) - 1
        for i, layer in enumerate(params["encoder"]):
            f = self.code_activation if i == last else self.activation
            h = f(h @ layer["W"] + layer["b"])
        return h

    def decode(self, params: dict, codes: Any) -> Any:
        """The reconstructions z^L from codes: (n, input width)."""
        self._check(codes, self.sizes[-1], "decode")
        h = codes
        enc = params["encoder"]
        last = len(params["decoder"]) - 1
        for j, layer in enumerate(params["decoder"]):
            w = pnp.transpose(enc[last - j]["W"]) if self.tied else layer["W"]
            f = self.output_activation if j == last else self.activation
            h = f(h @ w + layer["b"])
        return h

    def reconstruct(self, params: dict, x: Any) -> Any:
        return self.decode(params, self.encode(params, x))

    # -- the objective and its derivatives ---------------------------------------------------
    def data_loss(self, z: Any, x: Any) -> Any:
        """(1/n) sum_i 0.5 ||x_i - z_i||^2; its Hessian in z is I / n."""
        return 0.5 * pnp.sum(pnp.square(z - x)) / pnp.shape(x)[0]

    def penalty(self, params: dict) -> Any:
        """l2 * sum of squared weights (biases are not penalised)."""
        if not self.l2:
            return 0.0
        total = 0.0
        for part in ("encoder", "decoder"):
            for layer in params[part]:
                if "W" in layer:
                    total = total + pnp.sum(pnp.square(layer["W"]))
        return self.l2 * total

    def loss(self, params: dict, x: Any) -> Any:
        """F(theta) on the objects x."""
        return self.data_loss(self.reconstruct(params, x), x) + self.penalty(params)

    def loss_and_grad(self, params: dict, x: Any) -> tuple[float, dict]:
        """(F, grad F): one forward and one backward pass."""
        value, g = value_and_grad(self.loss)(params, x)
        return float(value), g

    def hessvec(self, params: dict, x: Any, p: dict) -> dict:
        """H p, H the Hessian of F: forward over reverse (the R-backward pass)."""
        return hvp(lambda q: self.loss(q, x), params, p)

    def gaussnewtonvec(self, params: dict, x: Any, p: dict) -> dict:
        """(1/n) sum_i J_i^T J_i p (+ 2 l2 p on the weights): the Gauss-Newton product."""
        out = gauss_newton_vp(lambda q: self.reconstruct(q, x),
                              lambda z: self.data_loss(z, x), params, p)
        if self.l2:
            extra = hvp(self.penalty, params, p)
            from pearlnet.autodiff import tree_map
            out = tree_map(lambda a, b: a + b, out, extra)
        return out

    # -- for Hessian-free: net(params, batch) and loss(outputs, batch) --------------------------
    def net(self, params: dict, batch: Any) -> Any:
        return self.reconstruct(params, batch)

    def hf_loss(self, outputs: Any, batch: Any) -> Any:
        return self.data_loss(outputs, batch)

    def __repr__(self) -> str:
        return (f"Autoencoder({self.sizes}, activation={self.names[0]!r}, "
                f"code_activation={self.names[1]!r}, tied={self.tied}, l2={self.l2})")
