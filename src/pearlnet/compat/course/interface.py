"""The assignment's abstract classes: ``Layer``, ``Loss``, ``Optimizer`` (hand-out 001, 2.1-2.3).

Batch first: every array a layer sees has shape (n, ...), n the number of objects. A layer's
``backward(grad_outputs)`` takes dL/dO_i (n, ...) and returns dL/dO_{i-1} per object; a layer
with parameters also stores dL/dP, averaged over the batch, in ``<name>_grad`` (section 1.3).

The stateful "forward stores, backward reads" style lives here only. Derivatives are not written
a second time: ``Layer.record`` takes ``pearlnet.vjp`` of the layer's pure function during the
forward pass, and ``Layer.pull`` applies that pullback in ``backward``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from pearlnet.autodiff import vjp

__all__ = ["Layer", "Loss", "Optimizer"]

Shape = tuple[int, ...]


def as_shape(shape: Any, who: str, what: str = "input_shape") -> Shape | None:
    """``shape`` as a tuple of positive ints (an int is a 1-tuple), or None."""
    if shape is None:
        return None
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{who}: {what} must be a tuple of positive integers, got "
                        f"{shape!r}") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
               for d in dims):
        raise ValueError(f"{who}: {what} must be a tuple of positive integers, got {shape!r}")
    return tuple(int(d) for d in dims)


def as_batch(x: Any, who: str, what: str = "inputs") -> np.ndarray:
    """``x`` as a float or complex array with a batch axis; integer and bool arrays become
    float64 (exact for the values a batch of images or labels holds)."""
    x = np.asarray(x)
    if x.dtype.kind in "iub":
        x = x.astype(np.float64)
    elif x.dtype.kind not in "fc":
        raise TypeError(f"{who}: {what} must be a numeric array, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{who}: {what} must have a batch axis, shape (n, ...), got a scalar")
    return x


class Layer:
    """A layer of a sequential network: ``outputs = layer(inputs)``, then
    ``grad_inputs = layer.backward(grad_outputs)`` and ``layer.update_parameters()``.

    ``input_shape`` and ``output_shape`` exclude the batch axis. ``build`` (called by
    ``Model.add``) takes the input shape from the previous layer and creates the parameters;
    a layer whose input shape is still unknown then (the first layer without ``input_shape``)
    takes it from its first batch. ``__call__`` stores ``forward_inputs`` and
    ``forward_outputs``; subclasses implement ``forward`` and ``backward``.
    """

    #: True for layers whose parameters need the input shape (Dense): such a layer infers its
    #: input shape on first use even when it was never built.
    needs_input_shape = False

    def __init__(self, input_shape: Any = None) -> None:
        self.input_shape: Shape | None = as_shape(input_shape, type(self).__name__)
        self.output_shape: Shape | None = None
        self.forward_inputs: np.ndarray | None = None
        self.forward_outputs: np.ndarray | None = None
        self.optimizer: Optimizer | None = None
        self.updaters: dict[str, Callable] = {}
        self.parameter_names: list[str] = []
        self.index: int | None = None  # position in a Model, for messages
        self._built = False
        self._tape: tuple | None = None

    # ---- description ---------------------------------------------------------------------
    def describe(self) -> str:
        """The layer's name for messages: its repr, and its position when in a model."""
        where = "" if self.index is None else f" (layer {self.index} of the model)"
        return f"{self!r}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(input_shape={self.input_shape})"

    # ---- building --------------------------------------------------------------------------
    def build(self, optimizer: Optimizer | None, prev_layer: Layer | None = None) -> None:
        """Remember the optimizer and take the input shape from ``prev_layer``; parameter-free
        layers keep the shape (output_shape = input_shape). Subclasses with parameters call this
        first, then create them with ``add_parameter`` once ``input_shape`` is known.

        Raises ValueError when this layer's own ``input_shape`` differs from the previous
        layer's ``output_shape``.
        """
        self.optimizer = optimizer
        if prev_layer is not None and prev_layer.output_shape is not None:
            prev = tuple(prev_layer.output_shape)
            if self.input_shape is not None and self.input_shape != prev:
                raise ValueError(f"{self.describe()}: expects inputs of shape (batch, "
                                 f"{_dims(self.input_shape)}), but the previous layer "
                                 f"{prev_layer.describe()} outputs (batch, {_dims(prev)})")
            self.input_shape = prev
        self.output_shape = self.input_shape
        self._built = True

    def add_parameter(self, name: str, shape: Any, initializer: Callable[[Shape], Any]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(param, grad): ``initializer(shape)`` and zeros of its shape. The parameter is stored
        by the caller as ``self.<name>`` and its gradient as ``self.<name>_grad``; the optimizer
        (when the layer was built with one) gives it an updater."""
        shape = tuple(int(d) for d in shape)
        param = np.asarray(initializer(shape))
        if param.shape != shape:
            raise ValueError(f"{self.describe()}: the initializer of '{name}' returned shape "
                             f"{param.shape}, expected {shape}")
        if name not in self.parameter_names:
            self.parameter_names.append(name)
        if self.optimizer is not None:
            self.updaters[name] = self.optimizer.get_parameter_updater(shape)
        return param, np.zeros_like(param)

    def update_parameters(self) -> None:
        """``self.<name> = updater(self.<name>, self.<name>_grad)`` for every parameter."""
        if self.parameter_names and not self.updaters:
            raise RuntimeError(f"{self.describe()}: has parameters but no optimizer; build it "
                               f"with one first (Model.add does)")
        for name, updater in self.updaters.items():
            setattr(self, name, updater(getattr(self, name), getattr(self, name + "_grad")))

    # ---- passes ----------------------------------------------------------------------------
    def __call__(self, inputs: Any) -> np.ndarray:
        inputs = as_batch(inputs, self.describe())
        got = inputs.shape[1:]
        if self.input_shape is None:
            if self._built or self.needs_input_shape:
                self.input_shape = got  # the first batch fixes the shape, then build
                self.build(self.optimizer)
        elif got != self.input_shape:
            raise ValueError(f"{self.describe()}: expected inputs of shape (batch, "
                             f"{_dims(self.input_shape)}), got {inputs.shape}")
        if self.needs_input_shape and not self._built:
            self.build(self.optimizer)  # used on its own, never added to a model
        self.forward_inputs = inputs
        self.forward_outputs = self.forward(inputs)
        return self.forward_outputs

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_outputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    # ---- derivatives from the core ---------------------------------------------------------
    def record(self, fn: Callable, inputs: np.ndarray, *params: np.ndarray) -> np.ndarray:
        """``fn(inputs, *params)``, keeping its pullback (``pearlnet.vjp``) for ``pull``."""
        outputs, pullback = vjp(fn, inputs, *params)
        self._tape = (inputs, params, pullback, np.shape(outputs))
        return outputs

    def pull(self, grad_outputs: Any, *params: np.ndarray) -> tuple:
        """(dL/dinputs, dL/dparams...) for ``grad_outputs`` = dL/doutputs, summed over the
        batch for the parameters. Uses the pullback of the last forward pass when it ran on
        ``forward_inputs`` and the current ``params``; otherwise runs ``forward`` again."""
        inputs = self.forward_inputs
        tape = self._tape
        if (tape is None or (inputs is not None and inputs is not tape[0])
                or any(p is not q for p, q in zip(params, tape[1]))):
            if inputs is None:
                raise RuntimeError(f"{self.describe()}: backward before any forward pass")
            self.forward(inputs)  # records a fresh tape
            tape = self._tape
        grad_outputs = np.asarray(grad_outputs)
        if grad_outputs.shape != tape[3]:
            raise ValueError(f"{self.describe()}: backward expected grad_outputs of the "
                             f"outputs' shape {tape[3]}, got {grad_outputs.shape}")
        if grad_outputs.dtype.kind not in "fc":
            grad_outputs = grad_outputs.astype(np.float64)
        return tape[2](grad_outputs)


def _dims(shape: Shape) -> str:
    return ", ".join(map(str, shape))


class Loss:
    """A loss function: ``loss(y_gt, y_pred)`` gives the per-object losses, shape (n,), and
    ``loss.gradient(y_gt, y_pred)`` = dL_i/dy_pred_i per object, shape (n, d).

    Subclasses either define ``loss_fn(y_gt, y_pred)`` (the per-object losses, written with
    ``pearlnet.numpy``), from which both methods follow (the gradient by ``pearlnet.vjp``), or
    override ``__call__`` and ``gradient`` themselves, as the hand-out does.
    """

    loss_fn: Callable | None = None

    def _pair(self, y_gt: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
        who = f"{type(self).__name__}"
        y_gt = as_batch(y_gt, who, "y_gt")
        y_pred = as_batch(y_pred, who, "y_pred")
        if y_gt.shape != y_pred.shape or y_pred.ndim != 2:
            raise ValueError(f"{who}: y_gt and y_pred must both have shape (n, d), got "
                             f"{y_gt.shape} and {y_pred.shape}")
        return y_gt, y_pred

    def __call__(self, y_gt: Any, y_pred: Any) -> np.ndarray:
        if self.loss_fn is None:
            raise NotImplementedError(f"{type(self).__name__}.__call__")
        return np.asarray(self.loss_fn(*self._pair(y_gt, y_pred)))

    def gradient(self, y_gt: Any, y_pred: Any) -> np.ndarray:
        """Per-object gradients: the pullback of sum_i L_i at ones (L_i depends on row i only)."""
        if self.loss_fn is None:
            raise NotImplementedError(f"{type(self).__name__}.gradient")
        y_gt, y_pred = self._pair(y_gt, y_pred)
        values, pullback = vjp(lambda p: self.loss_fn(y_gt, p), y_pred)
        return pullback(np.ones(np.shape(values), dtype=np.result_type(values)))[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Optimizer:
    """Gives every parameter its own updater: ``updater = opt.get_parameter_updater(shape)``,
    then ``new_parameter = updater(parameter, parameter_grad)`` once per step."""

    def get_parameter_updater(self, parameter_shape: Shape) -> Callable:
        raise NotImplementedError(f"{type(self).__name__}.get_parameter_updater")
