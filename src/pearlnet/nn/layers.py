"""Layers: Dense, Dropout, BatchNorm, Flatten, PReLU and the activation layers.

Inputs are batch-first: (N, features) for dense layers, (N, C, H, W) for images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.distributed import batch_counts, batch_sum

from . import activations as act
from . import initializers, regularizers
from .module import Module, as_rng, flag, number
from .random import keep_mask

__all__ = ["Dense", "Dropout", "BatchNorm", "Flatten", "Standardize", "Activation", "PReLU",
           "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "AbsReLU", "Softplus", "Swish", "Mish", "ELU",
           "Softmax", "LogSoftmax"]


def _check_features(layer: Module, x: Any, expected: tuple) -> None:
    got = pnp.shape(x)[1:]
    if got != expected:
        raise ValueError(f"{layer.describe()}: expected inputs of shape (batch, "
                         f"{', '.join(map(str, expected))}), got {pnp.shape(x)}")


def kernel_and_bias_penalty(layer: Module, params: dict) -> Any:
    """The layer's kernel_regularizer(W) + bias_regularizer(b) (0.0 when it has neither)."""
    total = 0.0
    if layer.kernel_regularizer is not None:
        total = total + layer.kernel_regularizer(params["W"])
    if layer.bias_regularizer is not None and layer.use_bias:
        total = total + layer.bias_regularizer(params["b"])
    return total


def initializer_name(fn: Any) -> str | None:
    """The name ``initializers.get`` maps back to ``fn`` itself ("he_normal", "sparse"), or
    None for an initializer no name stands for (``normal(0.1)``, ``sparse(20)``, a function of
    one's own)."""
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return None
    for candidate in (name, name.split("(")[0]):  # the default sparse() is named "sparse(15)"
        try:
            if initializers.get(candidate) is fn:
                return candidate
        except ValueError:
            continue
    return None


def initializer_config(layer: Module) -> dict:
    """The layer's kernel_initializer and bias_initializer for get_config, each by its name;
    one without a name is left out (a loaded layer has the weights, but re-initialises with
    the default)."""
    names = {key: initializer_name(getattr(layer, key))
             for key in ("kernel_initializer", "bias_initializer")}
    return {key: name for key, name in names.items() if name is not None}


class Dense(Module):
    """y = f(x W + b), W of shape (in, units); W ~ N(0, 2/in) by default (He), b = 0.

    A saved model keeps the initializers given by name or as a library function
    (``initializers.zeros``); another one (``initializers.normal(0.1)``, a function of one's
    own) is not saved, and the loaded layer re-initialises (``init``) with the defaults.

    >>> import numpy as np, pearlnet.nn as nn
    >>> layer = Dense(3, input_shape=(4,)); _ = layer.init(0)
    >>> layer(np.ones((2, 4), np.float32)).shape
    (2, 3)
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "he_normal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 input_shape: tuple | None = None, name: str | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__(input_shape, name, dtype)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = act.get(activation)
        self.use_bias = flag("Dense", "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        if len(input_shape) != 1:
            raise ValueError(f"{self.describe()}: expects flat inputs (features,), got "
                             f"{input_shape}; add a Flatten layer before it")
        self.params = {"W": self.kernel_initializer(rng, (input_shape[0], self.units),
                                                    self.dtype)}
        if self.use_bias:
            self.params["b"] = self.bias_initializer(rng, (self.units,), self.dtype)
        self.state = {}
        return (self.units,)

    def output_shape(self, input_shape: tuple) -> tuple:
        return (self.units,)

    def forward(self, params, x, *, state=None, training=False, rng=None):
        _check_features(self, x, (params["W"].shape[0],))
        y = x @ params["W"]
        if self.use_bias:
            y = y + params["b"]
        return self.activation(y), {}

    def penalty(self, params: dict) -> Any:
        return kernel_and_bias_penalty(self, params)

    def get_config(self) -> dict:
        return {"units": self.units,
                "activation": act.config_name(self.activation, self.describe()),
                "use_bias": self.use_bias, **initializer_config(self),
                "kernel_regularizer": None if self.kernel_regularizer is None
                else self.kernel_regularizer.get_config(),
                "bias_regularizer": None if self.bias_regularizer is None
                else self.bias_regularizer.get_config()}


class Dropout(Module):
    """Inverted dropout: in training each input is zeroed with probability p and the rest are
    scaled by 1/(1 - p), so evaluation (which passes x through) needs no rescaling."""

    def __init__(self, p: float, input_shape: tuple | None = None, name: str | None = None) -> None:
        super().__init__(input_shape, name)
        p = number("Dropout", "p", p)
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, params, x, *, state=None, training=False, rng=None):
        """In training, ``rng`` is a seed, a Generator, or the ``SampleStream`` that
        ``Model.fit`` passes (masks keyed by the layer's name and each sample's index)."""
        if not training or self.p == 0:
            return x, {}
        if rng is None:
            raise ValueError(f"{self.describe()}: training mode needs rng= (a seed or a "
                             f"numpy.random.Generator) for the mask; calling the layer, "
                             f"layer(x, training=True), draws from its own stream")
        keep = keep_mask(as_rng(rng), pnp.shape(x), self.p, self.name or "dropout")
        scale = np.asarray(1 / (1 - self.p), dtype=pnp.asarray(x).dtype)
        return x * (keep * scale), {}

    def get_config(self) -> dict:
        return {"p": self.p}


def _finite(layer: str, name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{layer}: {name} must be a finite number, got {value}")
    return value


class BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy 2015): y = gamma (x - mu) / sqrt(var + eps) + beta,
    with the batch's mean and (biased) variance in training and running averages in
    evaluation; running <- momentum * running + (1 - momentum) * batch (the unbiased batch
    variance, as PyTorch). Normalises over every axis but ``axis`` (features; channels for NCHW;
    negative counts from the end). Training needs more than one value per channel, as PyTorch.
    In a data-parallel ``fit`` the batch moments are the global batch's (synchronised across
    the ranks, as PyTorch's SyncBatchNorm), so N ranks train the network one process trains.
    """

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5, axis: int = 1,
                 input_shape: tuple | None = None, name: str | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__(input_shape, name, dtype)
        momentum, epsilon = number("BatchNorm", "momentum", momentum), number(
            "BatchNorm", "epsilon", epsilon)
        axis = number("BatchNorm", "axis", axis, integer=True)
        if not 0 <= momentum < 1:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1), got {momentum}")
        if not 0 < epsilon < math.inf:
            raise ValueError(f"BatchNorm: epsilon must be positive and finite, got {epsilon}")
        self.momentum, self.epsilon, self.axis = float(momentum), float(epsilon), int(axis)

    def _feature_axis(self, shape: tuple) -> int:
        """``axis`` as a non-negative axis of a batch of shape ``shape`` (axis 0 is the batch)."""
        ndim = len(shape)
        if not (1 <= self.axis < ndim or -ndim < self.axis <= -1):
            raise ValueError(f"{self.describe()}: expected axis in 1..{ndim - 1} or "
                             f"-{ndim - 1}..-1 (a feature axis of inputs of shape {shape}), got "
                             f"axis={self.axis}")
        return self.axis % ndim

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        n = input_shape[self._feature_axis((None, *input_shape)) - 1]
        self.params = {"gamma": np.ones(n, self.dtype), "beta": np.zeros(n, self.dtype)}
        self.state = {"mean": np.zeros(n, self.dtype), "var": np.ones(n, self.dtype)}
        return tuple(input_shape)

    def forward(self, params, x, *, state=None, training=False, rng=None):
        state = self.state if state is None else state
        shape = pnp.shape(x)
        axis = self._feature_axis(shape)
        n = pnp.shape(params["gamma"])[0]
        if shape[axis] != n:
            raise ValueError(f"{self.describe()}: expected {n} features along axis {self.axis}, "
                             f"got inputs of shape {shape}")
        bshape = tuple(n if i == axis else 1 for i in range(len(shape)))
        axes = tuple(i for i in range(len(shape)) if i != axis)
        if training:
            # the moments of the whole global batch: in a data-parallel step the per-rank sums
            # are summed over the ranks (PyTorch's SyncBatchNorm), so N ranks normalise as
            # one process does; in one process batch_sum is the identity
            count = batch_counts(math.prod(shape[i] for i in axes))
            if count < 2:  # the variance of one value is 0: y = beta, running var -> 0
                raise ValueError(f"{self.describe()}: training needs more than one value per "
                                 f"channel, got input of shape {shape}")
            mean = batch_sum(pnp.sum(x, axis=axes, keepdims=True)) / count
            var = batch_sum(pnp.sum(pnp.square(x - mean), axis=axes, keepdims=True)) / count
            m = self.momentum
            unbiased = pnp.stop_gradient(var).reshape(-1) * (count / (count - 1))
            new_state = {"mean": m * state["mean"] + (1 - m) * pnp.stop_gradient(mean).reshape(-1),
                         "var": m * state["var"] + (1 - m) * unbiased}
        else:
            mean = state["mean"].reshape(bshape)
            var = state["var"].reshape(bshape)
            new_state = state
        y = (x - mean) / pnp.sqrt(var + self.epsilon)
        return y * params["gamma"].reshape(bshape) + params["beta"].reshape(bshape), new_state

    def get_config(self) -> dict:
        return {"momentum": self.momentum, "epsilon": self.epsilon, "axis": self.axis}


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def output_shape(self, input_shape: tuple) -> tuple:
        return (math.prod(input_shape),)

    def forward(self, params, x, *, state=None, training=False, rng=None):
        return pnp.reshape(x, (pnp.shape(x)[0], -1)), {}


class Standardize(Module):
    """y = (x - mean) / std with constants fixed at construction: the training set's
    statistics travel with a saved model, so it takes raw inputs (pixels 0..255).

    ``mean`` and ``std`` are numbers (one for all features, as for pixels) or arrays that
    broadcast against one sample (one per column of a table, as scikit-learn's StandardScaler).

    >>> import numpy as np
    >>> layer = Standardize([1.0, 10.0], [2.0, 5.0], input_shape=(2,))
    >>> layer.forward({}, np.array([[3.0, 20.0]]))[0]
    array([[1., 2.]])
    """

    def __init__(self, mean: Any, std: Any, input_shape: tuple | None = None,
                 name: str | None = None) -> None:
        super().__init__(input_shape, name)
        mean_a = np.asarray(mean, dtype=np.float64)
        std_a = np.asarray(std, dtype=np.float64)
        if not np.isfinite(mean_a).all():
            raise ValueError(f"Standardize: mean must be finite, got {mean}")
        if not ((std_a > 0) & (std_a < math.inf)).all():
            raise ValueError(f"Standardize: std must be positive and finite, got {std}")
        try:
            np.broadcast_shapes(mean_a.shape, std_a.shape)
        except ValueError:
            raise ValueError(f"Standardize: mean (shape {mean_a.shape}) and std (shape "
                             f"{std_a.shape}) must broadcast together") from None
        # plain floats when scalar, so configs and reprs of pixel models stay as they were
        self.mean = float(mean_a) if mean_a.ndim == 0 else mean_a
        self.std = float(std_a) if std_a.ndim == 0 else std_a
        self._scale = 1.0 / self.std

    def forward(self, params, x, *, state=None, training=False, rng=None):
        mean, scale = self.mean, self._scale
        dtype = pnp.asarray(x).dtype
        if not isinstance(mean, float) and dtype.kind == "f" and dtype != mean.dtype:
            # float64 constants would promote float32 inputs, as Python floats do not
            mean, scale = mean.astype(dtype), np.asarray(scale, dtype)
        return (x - mean) * scale, {}

    def get_config(self) -> dict:
        return {"mean": self.mean if isinstance(self.mean, float) else self.mean.tolist(),
                "std": self.std if isinstance(self.std, float) else self.std.tolist()}


class Activation(Module):
    """An activation function as a layer: ``Activation("relu")`` or a callable."""

    def __init__(self, activation: Any, input_shape: tuple | None = None,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(input_shape, name)
        self.fn = act.get(activation)
        self.kwargs = kwargs

    def forward(self, params, x, *, state=None, training=False, rng=None):
        return self.fn(x, **self.kwargs), {}

    def get_config(self) -> dict:
        if type(self) is not Activation:  # the named subclasses fix the function
            return dict(self.kwargs)
        return {"activation": act.config_name(self.fn, self.describe()), **self.kwargs}


def _activation_layer(cls_name: str, fn_name: str, doc: str, **defaults: Any) -> type:
    def __init__(self, input_shape=None, name=None, **kwargs):
        Activation.__init__(self, fn_name, input_shape, name, **{**defaults, **kwargs})

    return type(cls_name, (Activation,), {"__init__": __init__, "__doc__": doc})


Sigmoid = _activation_layer("Sigmoid", "sigmoid", "1 / (1 + exp(-x)).")
Tanh = _activation_layer("Tanh", "tanh", "tanh(x).")
ReLU = _activation_layer("ReLU", "relu", "max(x, 0).")
AbsReLU = _activation_layer("AbsReLU", "abs_relu", "|x|.")
Softplus = _activation_layer("Softplus", "softplus", "log(1 + exp(x)).")
Mish = _activation_layer("Mish", "mish", "x tanh(softplus(x)).")
LogSoftmax = _activation_layer("LogSoftmax", "log_softmax", "x - logsumexp(x) (last axis).")


class LeakyReLU(Activation):
    """x for x > 0, alpha x otherwise."""

    def __init__(self, alpha: float = 0.01, input_shape=None, name=None) -> None:
        alpha = _finite(type(self).__name__, "alpha", alpha)
        super().__init__("leaky_relu", input_shape, name, alpha=alpha)


class Swish(Activation):
    """x sigmoid(beta x)."""

    def __init__(self, beta: float = 1.0, input_shape=None, name=None) -> None:
        beta = _finite(type(self).__name__, "beta", beta)
        super().__init__("swish", input_shape, name, beta=beta)


class ELU(Activation):
    """x for x > 0, alpha (exp(x) - 1) otherwise."""

    def __init__(self, alpha: float = 1.0, input_shape=None, name=None) -> None:
        alpha = _finite(type(self).__name__, "alpha", alpha)
        super().__init__("elu", input_shape, name, alpha=alpha)


class Softmax(Activation):
    """exp(x/T) / sum exp(x/T) over the last axis, T the temperature."""

    def __init__(self, temperature: float = 1.0, input_shape=None, name=None) -> None:
        if not 0 < temperature < math.inf:
            raise ValueError(f"Softmax: temperature must be positive and finite, got "
                             f"{temperature}")
        super().__init__("softmax", input_shape, name, temperature=float(temperature))


class PReLU(Module):
    """x for x > 0, alpha_c x otherwise, with a learnable alpha per channel (He et al. 2015):
    per feature for (N, F) inputs, per channel (axis 1) for images. alpha starts at 0.25."""

    def __init__(self, alpha_init: float = 0.25, input_shape=None, name=None,
                 dtype: Any = np.float32) -> None:
        super().__init__(input_shape, name, dtype)
        self.alpha_init = _finite("PReLU", "alpha_init", alpha_init)

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        self.params = {"alpha": np.full(input_shape[0], self.alpha_init, self.dtype)}
        self.state = {}
        return tuple(input_shape)

    def forward(self, params, x, *, state=None, training=False, rng=None):
        n = pnp.shape(params["alpha"])[0]
        if len(pnp.shape(x)) < 2 or pnp.shape(x)[1] != n:
            raise ValueError(f"{self.describe()}: expected inputs with {n} features (channels) "
                             f"along axis 1, got inputs of shape {pnp.shape(x)}")
        shape = [1] * len(pnp.shape(x))
        shape[1] = -1
        alpha = pnp.reshape(params["alpha"], tuple(shape))
        return pnp.where(x > 0, x, alpha * x), {}

    def get_config(self) -> dict:
        return {"alpha_init": self.alpha_init}
