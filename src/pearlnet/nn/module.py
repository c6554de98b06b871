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

__all__ = ["Module", "Sequential", "as_rng"]


def as_rng(seed: Any) -> np.random.Generator:
    """A Generator from a seed, a Generator, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
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
        self._require_built()
        return self.apply(self.params, x, training, rng)

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
            raise RuntimeError(f"{self.describe()} is not built: call init(seed, input_shape) "
                               f"or give the first layer an input_shape")

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
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.add: expected a layer (a pearlnet.nn.Module), got "
                            f"{type(layer).__name__}")
        if layer.name is None or any(layer.name == other.name for other in self.layers):
            base = type(layer).__name__.lower()
            taken = {other.name for other in self.layers}
            layer.name = base if base not in taken else next(
                f"{base}_{i}" for i in itertools.count(1) if f"{base}_{i}" not in taken)
        if not self.layers and layer.input_shape is not None and self.input_shape is None:
            self.input_shape = layer.input_shape
        self.layers.append(layer)
        self.built = False  # built in init()/compile(), once all layers are known
        return self

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        self.params, self.state = {}, {}
        shape = tuple(input_shape)
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

    def summary(self) -> str:
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
