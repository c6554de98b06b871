"""Convolution and pooling on NCHW arrays: functions and the layers Conv2D, MaxPool2D, AvgPool2D,
GlobalAvgPool2D (problem book, sheet 6: exercises 40, 43, 44).

``conv2d`` is cross-correlation, as in PyTorch: y[n, o, p, q] = b[o] + sum_{c, i, j}
w[o, c, i, j] x_pad[n, c, p s_h + i, q s_w + j], computed as im2col followed by one matrix
product: W reshaped to (O, C kh kw) times the windows (C kh kw, OH OW N), batch axis last.
Output sizes round down: OH = (H + padding - kh) // s_h + 1. Pooling windows do not pad.
Derivatives of every order come from the primitives (im2col, col2im, window_max, matmul).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.numpy.conv import _padding, _pair, conv_output_size

from . import activations as act
from . import initializers, regularizers
from .layers import initializer_config, kernel_and_bias_penalty
from .module import Module, flag

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "Conv2D", "MaxPool2D",
           "AvgPool2D", "GlobalAvgPool2D"]


# ---- geometry and validation -----------------------------------------------------------------
def _stride(stride: Any, who: str) -> tuple[int, int]:
    stride = _pair(stride, "stride", who)
    if min(stride) <= 0:
        raise ValueError(f"{who}: stride must be positive, got {stride}")
    return stride


def _kernel(kernel: Any, who: str, what: str = "kernel size") -> tuple[int, int]:
    kernel = _pair(kernel, what, who)
    if min(kernel) <= 0:
        raise ValueError(f"{who}: {what} must be positive, got {kernel}")
    return kernel


def _resolve_padding(padding: Any, hw: tuple, kernel: tuple, stride: tuple, who: str) -> tuple:
    """((top, bottom), (left, right)) from an int, a pair, a pair of pairs, "valid" or "same".

    "same" gives ceil(H / s) outputs per axis with the total padding split evenly, any excess
    at the bottom/right (TensorFlow's rule; PyTorch's for stride 1)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode != "same":
            raise ValueError(f"{who}: padding must be an int, a pair, 'valid' or 'same', got "
                             f"{padding!r}")
        sides = []
        for size, k, s in zip(hw, kernel, stride):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            sides.append((total // 2, total - total // 2))
        return tuple(sides)
    return _padding(padding, who)


def _check_input(who: str, xshape: tuple, channels: int | None = None) -> None:
    if len(xshape) != 4:
        raise ValueError(f"{who}: expected inputs of shape (batch, channels, height, width), "
                         f"got {xshape}")
    if channels is not None and xshape[1] != channels:
        raise ValueError(f"{who}: the kernel expects {channels} input channels, got inputs of "
                         f"shape {xshape} ({xshape[1]} channels)")


def _check_fits(who: str, xshape: tuple, kernel: tuple, padding: tuple) -> None:
    padded = (xshape[-2] + sum(padding[0]), xshape[-1] + sum(padding[1]))
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"{who}: kernel {kernel} is larger than the padded input {padded} "
                         f"(input shape {tuple(xshape)}, padding {padding})")


def _out_hw(hw: tuple, kernel: tuple, stride: tuple, padding: tuple) -> tuple[int, int]:
    return (conv_output_size(hw[0], kernel[0], stride[0], sum(padding[0])),
            conv_output_size(hw[1], kernel[1], stride[1], sum(padding[1])))


# ---- functions -------------------------------------------------------------------------------
def _conv2d(x: Any, w: Any, b: Any, stride: Any, padding: Any, who: str) -> Any:
    xshape, wshape = pnp.shape(x), pnp.shape(w)
    if len(wshape) != 4:
        raise ValueError(f"{who}: expected a kernel of shape (out_channels, in_channels, kh, "
                         f"kw), got {wshape}")
    out_channels, in_channels, kh, kw = wshape
    _check_input(who, xshape, in_channels)
    stride = _stride(stride, who)
    padding = _resolve_padding(padding, xshape[2:], (kh, kw), stride, who)
    _check_fits(who, xshape, (kh, kw), padding)
    if b is not None and pnp.shape(b) != (out_channels,):
        raise ValueError(f"{who}: expected a bias of shape ({out_channels},), got "
                         f"{pnp.shape(b)}")
    n = xshape[0]
    oh, ow = _out_hw(xshape[2:], (kh, kw), stride, padding)
    k = in_channels * kh * kw
    cols = pnp.reshape(pnp.im2col(x, (kh, kw), stride, padding), (k, oh * ow * n))
    y = pnp.matmul(pnp.reshape(w, (out_channels, k)), cols)  # (O, OH OW N): one product
    if b is not None:
        y = y + pnp.reshape(b, (out_channels, 1))
    return pnp.transpose(pnp.reshape(y, (out_channels, oh, ow, n)), (3, 0, 1, 2))


def conv2d(x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0) -> Any:
    """2-D cross-correlation of x (N, C, H, W) with w (O, C, kh, kw), plus b (O,) when given:
    y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] x_pad[n, c, p s_h + i, q s_w + j].

    stride: an int or a pair; padding: an int, a pair (rows, columns), a pair of pairs
    ((top, bottom), (left, right)), "valid" (none) or "same" (ceil(H / s) outputs). Returns
    (N, O, OH, OW) with OH = (H + pad_h - kh) // s_h + 1, a view of batch-last memory (the
    next convolution or pooling reads it without a copy). Cost: one copy of the windows
    (N C kh kw OH OW entries) and one matrix product.

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> conv2d(x, np.ones((1, 1, 3, 3)))[0, 0]
    array([[45., 54.],
           [81., 90.]])
    """
    return _conv2d(x, w, b, stride, padding, "conv2d")


def _pool_geometry(x: Any, size: Any, stride: Any, who: str) -> tuple[tuple, tuple]:
    xshape = pnp.shape(x)
    _check_input(who, xshape)
    kernel = _kernel(size, who, "pool size")
    stride = kernel if stride is None else _stride(stride, who)
    _check_fits(who, xshape, kernel, ((0, 0), (0, 0)))
    return kernel, stride


def _max_pool2d(x: Any, size: Any, stride: Any, who: str) -> Any:
    kernel, stride = _pool_geometry(x, size, stride, who)
    return pnp.window_max(x, kernel, stride)


def _avg_pool2d(x: Any, size: Any, stride: Any, who: str) -> Any:
    kernel, stride = _pool_geometry(x, size, stride, who)
    windows = pnp.im2col(x, kernel, stride)  # (C, kh, kw, OH, OW, N)
    return pnp.transpose(pnp.mean(windows, axis=(1, 2)), (3, 0, 1, 2))


def max_pool2d(x: Any, size: Any, stride: Any = None) -> Any:
    """The largest entry of each size x size window of x (N, C, H, W), windows ``stride`` apart
    (default: ``size``, no overlap); size and stride are ints or pairs; the output size rounds
    down, (H - kh) // s_h + 1, as PyTorch. Decided on real parts; on a tie the first maximum
    of the window gets the gradient.

    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    return _max_pool2d(x, size, stride, "max_pool2d")


def avg_pool2d(x: Any, size: Any, stride: Any = None) -> Any:
    """The mean of each size x size window of x (N, C, H, W); as max_pool2d otherwise."""
    return _avg_pool2d(x, size, stride, "avg_pool2d")


def global_avg_pool2d(x: Any) -> Any:
    """The mean of each channel over its whole image: (N, C, H, W) -> (N, C)."""
    _check_input("global_avg_pool2d", pnp.shape(x))
    return pnp.mean(x, axis=(2, 3))


# ---- layers ----------------------------------------------------------------------------------
class Conv2D(Module):
    """y = f(conv2d(x, W, b, stride, padding)) with ``filters`` kernels W of shape
    (filters, in_channels, kh, kw): in_channels * kh * kw * filters + filters parameters
    (problem book, exercise 46 a). W ~ N(0, 2 / (in_channels kh kw)) (He), b = 0. A saved
    model keeps named initializers only, as ``Dense``.

    >>> layer = Conv2D(6, 5, padding=2, input_shape=(1, 28, 28)); _ = layer.init(0)
    >>> layer(np.zeros((2, 1, 28, 28), np.float32)).shape, layer.count_params()
    ((2, 6, 28, 28), 156)
    """

    def __init__(self, filters: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "he_normal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 input_shape: tuple | None = None, name: str | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__(input_shape, name, dtype)
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"Conv2D: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _kernel(kernel_size, "Conv2D")
        self.stride = _stride(stride, "Conv2D")
        if isinstance(padding, str):
            _resolve_padding(padding, (1, 1), (1, 1), (1, 1), "Conv2D")  # validates the name
            self.padding: Any = padding.lower()
        else:
            self.padding = _padding(padding, "Conv2D")
        self.activation = act.get(activation)
        self.use_bias = flag(type(self).__name__, "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _geometry(self, input_shape: tuple) -> tuple:
        who = self.describe()
        if len(input_shape) != 3:
            raise ValueError(f"{who}: expects inputs of shape (channels, height, width), got "
                             f"{tuple(input_shape)}")
        padding = _resolve_padding(self.padding, input_shape[1:], self.kernel_size, self.stride,
                                   who)
        _check_fits(who, tuple(input_shape), self.kernel_size, padding)
        return padding

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        shape = self.output_shape(input_shape)
        kshape = (self.filters, input_shape[0], *self.kernel_size)
        self.params = {"W": self.kernel_initializer(rng, kshape, self.dtype)}
        if self.use_bias:
            self.params["b"] = self.bias_initializer(rng, (self.filters,), self.dtype)
        self.state = {}
        return shape

    def output_shape(self, input_shape: tuple) -> tuple:
        padding = self._geometry(tuple(input_shape))
        return (self.filters, *_out_hw(input_shape[1:], self.kernel_size, self.stride, padding))

    def forward(self, params, x, *, state=None, training=False, rng=None):
        y = _conv2d(x, params["W"], params.get("b"), self.stride, self.padding, self.describe())
        return self.activation(y), {}

    def penalty(self, params: dict) -> Any:
        return kernel_and_bias_penalty(self, params)

    def get_config(self) -> dict:
        padding = self.padding if isinstance(self.padding, str) else [list(p)
                                                                      for p in self.padding]
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": padding,
                "activation": act.config_name(self.activation, self.describe()),
                "use_bias": self.use_bias, **initializer_config(self),
                "kernel_regularizer": None if self.kernel_regularizer is None
                else self.kernel_regularizer.get_config(),
                "bias_regularizer": None if self.bias_regularizer is None
                else self.bias_regularizer.get_config()}


class _Pool2D(Module):
    _fn: Any = None

    def __init__(self, size: Any = 2, stride: Any = None, input_shape: tuple | None = None,
                 name: str | None = None) -> None:
        super().__init__(input_shape, name)
        who = type(self).__name__
        self.size = _kernel(size, who, "pool size")
        self.stride = self.size if stride is None else _stride(stride, who)

    def output_shape(self, input_shape: tuple) -> tuple:
        who = self.describe()
        if len(input_shape) != 3:
            raise ValueError(f"{who}: expects inputs of shape (channels, height, width), got "
                             f"{tuple(input_shape)}")
        _check_fits(who, tuple(input_shape), self.size, ((0, 0), (0, 0)))
        return (input_shape[0], *_out_hw(input_shape[1:], self.size, self.stride,
                                         ((0, 0), (0, 0))))

    def forward(self, params, x, *, state=None, training=False, rng=None):
        return type(self)._fn(x, self.size, self.stride, self.describe()), {}

    def get_config(self) -> dict:
        return {"size": list(self.size), "stride": list(self.stride)}


class MaxPool2D(_Pool2D):
    """The largest entry of each size x size window, windows ``stride`` apart (default: size);
    the output rounds down: (C, (H - kh) // s_h + 1, (W - kw) // s_w + 1). No parameters."""

    _fn = staticmethod(_max_pool2d)


class AvgPool2D(_Pool2D):
    """The mean of each size x size window, windows ``stride`` apart (default: size)."""

    _fn = staticmethod(_avg_pool2d)


class GlobalAvgPool2D(Module):
    """The mean of each channel over the image: (N, C, H, W) -> (N, C)."""

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 3:
            raise ValueError(f"{self.describe()}: expects inputs of shape (channels, height, "
                             f"width), got {tuple(input_shape)}")
        return (input_shape[0],)

    def forward(self, params, x, *, state=None, training=False, rng=None):
        _check_input(self.describe(), pnp.shape(x))
        return pnp.mean(x, axis=(2, 3)), {}
