"""Module: a layer or a stack of layers, holding a parameter tree and a pure forward function.

A module is built for an input shape (without the batch axis) and a Generator; it then holds
``params`` (trainable: a dict of arrays, ready for grad, hvp and ravel) and ``state``
(non-trainable, such as BatchNorm's running statistics). The computation itself is pure:

    y, new_state = module.forward(params, x, state=state, training=True, rng=rng)

``apply(params, x)`` is the common case: evaluation mode, the module's own state. Nothing is
stashed between calls: a dropout mask comes from the ``rng`` passed in, batch statistics go out
in ``new_state``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from pearlnet.autodiff import ravel

from .random import SampleStream

__all__ = ["Module", "Sequential", "as_rng", "flag", "number"]


def flag(owner: str, name: str, value: Any) -> bool:
    """A layer's on/off setting: True or False, nothing else (``use_bias="x"`` or 0 would
    otherwise pass for a bool, and a loaded file could switch a layer silently)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def number(owner: str, name: str, value: Any, integer: bool = False) -> Any:
    """A layer's numeric setting as a Python int or float; a bool or a non-number is a
    ValueError naming the layer (True would otherwise pass for 1)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return int(value) if integer else float(value)


def as_rng(seed: Any) -> Any:
    """A Generator from a seed, a Generator, or None (fresh entropy). A ``SampleStream`` (the
    per-sample random numbers ``Model.fit`` hands its layers) passes through unchanged."""
    if isinstance(seed, (np.random.Generator, SampleStream)):
        return seed
    if isinstance(seed, (bool, float, str)):  # default_rng's own message would not say which
        raise TypeError(f"as_rng: expected a seed (a non-negative int), a "
                        f"numpy.random.Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


class Module:
    """Base class. Subclasses override ``build`` (create params/state, return the output shape)
    and ``forward``; parameter-free layers override only ``forward`` (and ``output_shape``)."""

    _counter = itertools.count()

    def __init__(self, input_shape: tuple | None = None, name: str | None = None,
                 dtype: Any = np.float32) -> None:
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.name = name
        self.dtype = np.dtype(dtype)
        self.params: dict = {}
        self.state: dict = {}
        self.built = False
        self.training = False

    # -- construction ------------------------------------------------------------------------
    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        """Create ``self.params`` and ``self.state`` for inputs of ``input_shape`` (no batch
        axis); return the output shape."""
        self.params, self.state = {}, {}
        return self.output_shape(input_shape)

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def init(self, seed: Any = None, input_shape: tuple | None = None) -> dict:
        """Build (again) from a seed or Generator and return the fresh parameter tree."""
        shape = input_shape if input_shape is not None else self.input_shape
        if shape is None:
            raise ValueError(f"{self.describe()}: no input shape; pass input_shape=")
        self.input_shape = tuple(int(d) for d in shape)
        self.output_shape_ = self.build(self.input_shape, as_rng(seed))
        self.built = True
        return self.params

    # -- computation -------------------------------------------------------------------------
    def forward(self, params: dict, x: Any, *, state: dict | None = None, training: bool = False,
                rng: np.random.Generator | None = None) -> tuple[Any, dict]:
        """(y, new_state): the pure computation. Parameter-free layers keep state = {}."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def apply(self, params: dict, x: Any, training: bool | None = None,
              rng: np.random.Generator | None = None) -> Any:
        """y = f(params, x), using the module's own state (evaluation mode unless training)."""
        training = self.training if training is None else training
        return self.forward(params, x, state=self.state, training=training, rng=rng)[0]

    def __call__(self, x: Any, training: bool | None = None, rng: Any = None) -> Any:
        """y = f(x) with the module's own parameters and state. In training mode (``training``
        or ``module.train()``) ``rng`` is a seed or a Generator for the random layers
        (dropout); without one the module draws from its own stream, seeded with 0 (a
        Model's with its seed), so a run of calls is reproducible and successive calls differ.
        """
        self._require_built()
        training = self.training if training is None else training
        if training:
            rng = self._call_stream() if rng is None else as_rng(rng)
        return self.apply(self.params, x, training, rng)

    def _call_stream(self) -> np.random.Generator:
        stream = self.__dict__.get("_stream")
        if stream is None:
            stream = self.__dict__["_stream"] = as_rng(getattr(self, "seed", 0))
        return stream

    # -- modes and bookkeeping ---------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        self.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def count_params(self) -> int:
        self._require_built()
        return int(ravel(self.params)[0].size)

    def _require_built(self) -> None:
        if not self.built:
            raise RuntimeError(f"{self.describe()} is not built: {self._how_to_build()}")

    def _how_to_build(self) -> str:
        if self.input_shape is None:
            return "call init(seed, input_shape) (or give it input_shape=... and call init(seed))"
        return f"call init(seed) (its input shape {self.input_shape} is known)"

    def get_config(self) -> dict:
        """The constructor's arguments, for saving the architecture as JSON."""
        return {}

    def describe(self) -> str:
        return f"{type(self).__name__}{'' if self.name is None else f' {self.name!r}'}"

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except ValueError:  # a setting no config can hold: a library activation, other defaults
            fn = getattr(self, "activation", getattr(self, "fn", None))
            return f"{type(self).__name__}({'' if fn is None else f'activation={fn!r}, '}...)"
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


class Sequential(Module):
    """Layers applied in order. ``params`` is ``{layer name: layer params}`` in layer order
    (layers without parameters are left out), likewise ``state``."""

    def __init__(self, layers: list[Module] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers: list[Module] = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Module) -> Sequential:
        """Append a layer. Layer names must be unique (as in Keras): a layer without a name gets
        its class's name, numbered if taken; an explicit name that is taken is a ValueError.
        On a built stack the new layer alone is built, from the last layer's output shape:
        the other layers keep their weights."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.add: expected a layer (a pearlnet.nn.Module), got "
                            f"{type(layer).__name__}")
        if any(layer is other for other in self.layers):
            raise ValueError(f"Sequential.add: {layer.describe()} is in this model already; "
                             f"a layer object can appear once (make a new one)")
        taken = {other.name for other in self.layers}
        named = layer.name is None
        if named:
            base = type(layer).__name__.lower()
            layer.name = base if base not in taken else next(
                f"{base}_{i}" for i in itertools.count(1) if f"{base}_{i}" not in taken)
        elif layer.name in taken:
            raise ValueError(f"Sequential.add: a layer named {layer.name!r} is in the model "
                             f"already; layer names must be unique (as in Keras)")
        first_shape = not self.layers and layer.input_shape is not None and \
            self.input_shape is None
        if first_shape:
            self.input_shape = layer.input_shape
        self.layers.append(layer)
        try:
            self._added(layer)
        except BaseException:  # the model stays as it was
            self.layers.pop()
            if named:
                layer.name = None
            if first_shape:
                self.input_shape = None
            raise
        return self

    def _added(self, layer: Module) -> None:
        """A layer was appended: on a built stack, build it alone (the others keep weights)."""
        if not self.built:
            return
        rng = self.__dict__.get("_build_rng") or as_rng(None)
        shape = self.output_shape_
        layer.input_shape = shape
        out = layer.build(shape, rng)
        layer.output_shape_ = out
        layer.built = True
        if layer.params:
            self.params[layer.name] = layer.params
        if layer.state:
            self.state[layer.name] = layer.state
        self.output_shape_ = out

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        self.params, self.state = {}, {}
        shape = tuple(input_shape)
        self._build_rng = rng  # a layer added later is built from the same stream
        for layer in self.layers:
            layer.input_shape = shape
            shape = layer.build(shape, rng)
            layer.output_shape_ = shape
            layer.built = True
            if layer.params:
                self.params[layer.name] = layer.params
            if layer.state:
                self.state[layer.name] = layer.state
        return shape

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def forward(self, params: dict, x: Any, *, state: dict | None = None, training: bool = False,
                rng: np.random.Generator | None = None) -> tuple[Any, dict]:
        state = self.state if state is None else state
        new_state = {}
        for layer in self.layers:
            x, s = layer.forward(params.get(layer.name, {}), x, state=state.get(layer.name, {}),
                                 training=training, rng=rng)
            if s:
                new_state[layer.name] = s
        return x, new_state

    def penalty(self, params: dict) -> Any:
        """The sum of the layers' regularisation penalties at ``params`` (0.0 when none)."""
        total = 0.0
        for layer in self.layers:
            fn = getattr(layer, "penalty", None)
            if fn is not None and layer.name in params:
                total = total + fn(params[layer.name])
        return total

    def has_penalty(self) -> bool:
        """Whether any layer adds a regularisation penalty to the objective: a layer with a
        regularizer set, or a layer of one's own with a ``penalty`` method and no
        ``*_regularizer`` attributes. Decided by the layers, never by the penalty's value at
        some point (a bias penalty is 0 at zero-initialised biases, and still counts)."""
        for layer in self.layers:
            if isinstance(layer, Sequential):
                if layer.has_penalty():
                    return True
                continue
            if not callable(getattr(layer, "penalty", None)):
                continue
            regs = [v for k, v in vars(layer).items() if k.endswith("_regularizer")]
            if not regs or any(r is not None for r in regs):
                return True
        return False

    def summary(self, print_fn: Any = None) -> None:
        """Print a table of the layers, their output shapes and parameter counts (Keras'
        ``summary``). ``print_fn(text)`` receives the table instead of ``print``;
        ``summary_text()`` returns it."""
        (print if print_fn is None else print_fn)(self.summary_text())

    def summary_text(self) -> str:
        """The table ``summary`` prints, as a string."""
        self._require_built()
        rows = [f"{'layer':<24}{'output shape':<20}{'params':>10}"]
        for layer in self.layers:
            n = int(ravel(layer.params)[0].size) if layer.params else 0
            rows.append(f"{layer.name + ' (' + type(layer).__name__ + ')':<24}"
                        f"{str((None, *layer.output_shape_)):<20}{n:>10,}")
        rows.append(f"total parameters: {self.count_params():,}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([\n  {inner}\n])"
