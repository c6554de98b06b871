"""Fully connected layers of the autoencoder assignment (seed 000, section 3.2, module layers.py).

Data are laid out features x objects. A layer computes Z = g(W X + b) = g(W-bar X-bar) (section
1.1) with the extended weight matrix W-bar = [W, b] (the bias its last column; W-bar = W without
a bias), flattened row by row into the layer's parameter vector.

The layer is the pure function f(W-bar, X) = g(W-bar[:, :p] X + W-bar[:, p]) written with
``pearlnet.numpy``; every pass is a transform of it by the autodiff core:
- forward: f, recording the backward pass (``vjp``);
- backward(G): the recorded pullback, (G^T dZ/dX, G^T dZ/dW-bar), formula (3);
- Rp_forward(R{X}): ``jvp`` of f with tangents (P, R{X}), formula (4);
- Rp_backward(R{G}): the R{.} operator applied to the backward pass (section 1.3), i.e. ``jvp``
  of (W-bar, X, G) -> backward(G) with tangents (P, R{X}, R{G}): forward over reverse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearlnet.autodiff import jvp, vjp

from .activations import BaseActivationFunction

__all__ = ["BaseLayer", "FCLayer"]


class BaseLayer:
    """The interface every layer of an ``FFNet`` has (seed 000, section 3.2).

    ``shape = (num_inputs, num_outputs)``; ``inputs`` is the last forward input (None before).
    ``backward`` and ``Rp_backward`` return (derivatives with respect to the inputs,
    num_inputs x batch; derivatives with respect to the parameters, a vector).
    """

    shape: tuple[int, int]
    inputs: np.ndarray | None = None

    def get_params_number(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.get_params_number")

    def get_weights(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.get_weights")

    def set_weights(self, w: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__}.set_weights")

    def set_direction(self, p: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__}.set_direction")

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, derivs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def Rp_forward(self, Rp_inputs: np.ndarray) -> np.ndarray:  # noqa: N802, N803 (the seed's names)
        raise NotImplementedError(f"{type(self).__name__}.Rp_forward")

    def Rp_backward(self, Rp_derivs: np.ndarray  # noqa: N802, N803
                    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__}.Rp_backward")

    def get_activations(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.get_activations")

    def _state(self) -> Any:
        """What a recorded pass depends on besides its data (FFNet compares it to notice new
        weights): ``_version`` when the layer keeps one."""
        return getattr(self, "_version", None)


def as_array(x: Any, who: str, what: str) -> np.ndarray:
    """x as a float or complex ndarray (integers become float64; nothing else is converted)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who}: {what} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind in "iu":
        return x.astype(np.float64)
    if x.dtype.kind not in "fc":
        raise TypeError(f"{who}: {what} must hold float (or complex) numbers, got dtype "
                        f"{x.dtype}")
    return x


def as_matrix(x: Any, rows: int, who: str, what: str, cols: int | None = None) -> np.ndarray:
    """x as a (rows x cols) float matrix, cols free when None; TypeError / ValueError else."""
    x = as_array(x, who, what)
    if x.ndim != 2 or x.shape[0] != rows or (cols is not None and x.shape[1] != cols):
        expected = f"({rows}, {'batch' if cols is None else cols})"
        raise ValueError(f"{who}: {what} must have shape {expected}, got {x.shape}")
    return x


def frozen(x: np.ndarray, *, owned: bool = False) -> np.ndarray:
    """x as an array nobody can change in place, for a pass that reads it later: x itself when
    it is read-only already or ``owned`` (a fresh array no caller holds; it is made read-only),
    else a read-only copy."""
    if x.flags.writeable:
        if not owned:
            x = x.copy()
        x.flags.writeable = False
    return x


def as_vector(x: Any, size: int, who: str, what: str) -> np.ndarray:
    x = as_array(x, who, what)
    if x.shape != (size,):
        raise ValueError(f"{who}: {what} must be a vector of shape ({size},), got {x.shape}")
    return x


class FCLayer(BaseLayer):
    """A fully connected layer Z = g(W X + b), ``shape = (num_inputs, num_outputs)``.

    W-bar = [W, b] is num_outputs x (num_inputs + 1) with ``use_bias`` (num_outputs x num_inputs
    otherwise), the layer's parameter vector its rows one after another. Initial weights:
    W ~ N(0, 1/num_inputs) from ``numpy.random.default_rng(seed)``, b = 0; set your own with
    ``set_weights`` (or ``FFNet.set_weights``).

    >>> import numpy as np
    >>> from pearlnet.compat.msu.activations import TanhActivationFunction
    >>> layer = FCLayer((3, 2), TanhActivationFunction(), use_bias=True)
    >>> layer.get_params_number(), layer.forward(np.ones((3, 5))).shape
    (8, (2, 5))
    """

    def __init__(self, shape: tuple[int, int], afun: BaseActivationFunction,
                 use_bias: bool = False, *, seed: Any = 0) -> None:
        if not isinstance(shape, (tuple, list)) or len(shape) != 2 or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
            raise TypeError(f"FCLayer: shape must be a pair of ints (num_inputs, num_outputs), "
                            f"got {shape!r}")
        if min(shape) <= 0:
            raise ValueError(f"FCLayer: shape must hold positive sizes, got {tuple(shape)}")
        if not isinstance(afun, BaseActivationFunction):
            raise TypeError(f"FCLayer: afun must be a BaseActivationFunction, got "
                            f"{type(afun).__name__}")
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"FCLayer: use_bias must be a bool, got {type(use_bias).__name__}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.afun = afun
        self.use_bias = bool(use_bias)
        p, q = self.shape
        self._wshape = (q, p + self.use_bias)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        w = np.zeros(self._wshape)
        w[:, :p] = rng.standard_normal((q, p)) / np.sqrt(p)
        self._w = w
        self._p: np.ndarray | None = None
        self._p_version = 0
        self._version = 0  # bumped by set_weights: passes recorded before are stale
        self.inputs = None
        self._clear()

    def _clear(self) -> None:
        self._outputs = self._pullback = self._derivs = self._Rp_inputs = None
        self._forward_version = self._Rp_version = -1

    # ---- parameters ------------------------------------------------------------------------
    def get_params_number(self) -> int:
        """num_outputs * (num_inputs + 1) with a bias, num_outputs * num_inputs without."""
        return self._wshape[0] * self._wshape[1]

    def get_weights(self) -> np.ndarray:
        """W-bar flattened row by row (a copy)."""
        return self._w.ravel().copy()

    def set_weights(self, w: np.ndarray) -> None:
        """W-bar from its row-by-row vector (a float or complex vector of get_params_number())."""
        w = as_vector(w, self.get_params_number(), f"{self!r}.set_weights", "w")
        self._w = w.reshape(self._wshape).copy()
        self._version += 1

    def set_direction(self, p: np.ndarray) -> None:
        """The direction P-bar (laid out like W-bar) of the R_p passes."""
        p = as_vector(p, self.get_params_number(), f"{self!r}.set_direction", "p")
        self._p = p.reshape(self._wshape).copy()
        self._p_version += 1

    # ---- the pure function the passes transform --------------------------------------------
    def _f(self, w: Any, x: Any) -> Any:
        """f(W-bar, X) = g(W X + b): operators and the activation, traced by pearlnet.numpy."""
        if self.use_bias:
            n_in = self.shape[0]
            return self.afun.val(w[:, :n_in] @ x + w[:, n_in:])
        return self.afun.val(w @ x)

    def _backward_of(self, w: Any, x: Any, g: Any) -> tuple:
        """(dX, dW-bar) = the backward pass of f at (W-bar, X) for output derivatives g."""
        dw, dx = vjp(self._f, w, x)[1](g)
        return dx, dw

    # ---- passes ------------------------------------------------------------------------------
    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Z = g(W X + b): num_inputs x batch in, num_outputs x batch out; the backward pass is
        recorded for ``backward``. Z is read-only: the recorded pass reads it (the derivatives of
        sigmoid and tanh are written with their outputs), so change a copy. ``inputs`` is a
        read-only snapshot of the array given (the array itself when it is read-only already),
        so changing that array later cannot mix batches in the later passes."""
        x = as_matrix(inputs, self.shape[0], f"{self!r}.forward", "inputs")
        x = frozen(x, owned=x is not inputs)
        self._clear()
        self._outputs, self._pullback = vjp(self._f, self._w, x)
        self._outputs.flags.writeable = False
        self.inputs = x
        self._forward_version = self._state()
        return self._outputs

    def backward(self, derivs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dL/dX, num_inputs x batch; dL/dW-bar as a row-by-row vector) for derivs = dL/dZ."""
        who = f"{self!r}.backward"
        self._require_forward(who)
        g = as_matrix(derivs, self.shape[1], who, "derivs", self.inputs.shape[1])
        g = frozen(g, owned=g is not derivs)  # Rp_backward reads it
        dw, dx = self._pullback(g)
        self._derivs = g
        return dx, dw.ravel()

    def Rp_forward(self, Rp_inputs: np.ndarray) -> np.ndarray:  # noqa: N802, N803
        """R_p{Z} = g'(U) * (W-bar R_p{X-bar} + P-bar X-bar) (formula 4), by forward mode."""
        who = f"{self!r}.Rp_forward"
        self._require_forward(who)
        self._require_direction(who)
        rx = as_matrix(Rp_inputs, self.shape[0], who, "Rp_inputs", self.inputs.shape[1])
        rx = frozen(rx, owned=rx is not Rp_inputs)  # Rp_backward reads it
        x = self.inputs
        if rx.any():
            _, rz = jvp(self._f, (self._w, x), (self._p, rx))
        else:  # the first layer (R_p{z^0} = 0): no product with a zero tangent
            _, rz = jvp(lambda w: self._f(w, x), (self._w,), (self._p,))
        self._Rp_inputs, self._Rp_version = rx, self._p_version
        return rz

    def Rp_backward(self, Rp_derivs: np.ndarray  # noqa: N802, N803
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(R_p{dL/dX}; R_p{dL/dW-bar} as a vector): the backward pass differentiated along
        (P-bar, R_p{X}, R_p{dL/dZ}), forward over reverse. Needs forward, Rp_forward and
        backward first."""
        who = f"{self!r}.Rp_backward"
        self._require_forward(who)
        if self._Rp_inputs is None or self._derivs is None:
            raise RuntimeError(f"{who}: call Rp_forward and backward after forward first")
        if self._Rp_version != self._p_version:
            raise RuntimeError(f"{who}: the direction changed since the last Rp_forward; call "
                               f"Rp_forward again")
        rg = as_matrix(Rp_derivs, self.shape[1], who, "Rp_derivs", self.inputs.shape[1])
        x, rx = self.inputs, self._Rp_inputs
        if rx.any():
            _, (rdx, rdw) = jvp(self._backward_of, (self._w, x, self._derivs),
                                (self._p, rx, rg))
        else:
            _, (rdx, rdw) = jvp(lambda w, g: self._backward_of(w, x, g),
                                (self._w, self._derivs), (self._p, rg))
        return rdx, rdw.ravel()

    def get_activations(self) -> np.ndarray:
        """The outputs Z of the last forward pass, num_outputs x batch (read-only)."""
        self._require_forward(f"{self!r}.get_activations")
        return self._outputs

    # ---- checks ------------------------------------------------------------------------------
    def _require_forward(self, who: str) -> None:
        if self._pullback is None:
            raise RuntimeError(f"{who}: call forward first")
        if self._forward_version != self._state():
            raise RuntimeError(f"{who}: the weights changed (or the activation's parameters) "
                               f"since the last forward; call forward again")

    def _state(self) -> tuple:
        """The weights' version and the activation's parameters (LeakyReLU's alpha can be
        reassigned): a pass recorded under other values is stale."""
        return self._version, tuple(getattr(self.afun, "_params", {}).items())

    def _require_direction(self, who: str) -> None:
        if self._p is None:
            raise RuntimeError(f"{who}: call set_direction first")

    def __repr__(self) -> str:
        return (f"FCLayer({self.shape}, {self.afun!r}, use_bias={self.use_bias})")
