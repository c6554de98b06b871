"""pearlnet.nn: modules, dense, convolutional and recurrent layers, activations, losses,
initialisers and regularisers."""

from . import activations, initializers, losses, regularizers  # noqa: F401
from .activations import (  # noqa: F401
    abs_relu,
    elu,
    leaky_relu,
    linear,
    log_softmax,
    mish,
    relu,
    sigmoid,
    softmax,
    softplus,
    swish,
    tanh,
)
from .conv import (  # noqa: F401
    AvgPool2D,
    Conv2D,
    GlobalAvgPool2D,
    MaxPool2D,
    avg_pool2d,
    conv2d,
    global_avg_pool2d,
    max_pool2d,
)
from .layers import (  # noqa: F401
    ELU,
    AbsReLU,
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Standardize,
    Swish,
    Tanh,
)
from .module import Module, Sequential  # noqa: F401
from .recurrent import GRU, LSTM, RNN, Bidirectional  # noqa: F401
from .regularizers import L1, L1L2, L2  # noqa: F401

__all__ = ["Module", "Sequential", "Dense", "Dropout", "BatchNorm", "Flatten", "Standardize",
           "Activation",
           "PReLU", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "AbsReLU", "Softplus", "Swish",
           "Mish", "ELU", "Softmax", "LogSoftmax", "sigmoid", "tanh", "relu", "leaky_relu",
           "abs_relu", "softplus", "swish", "mish", "elu", "linear", "softmax", "log_softmax",
           "losses", "initializers", "regularizers", "activations", "L1", "L2", "L1L2",
           "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "conv2d", "max_pool2d",
           "avg_pool2d", "global_avg_pool2d", "RNN", "LSTM", "GRU", "Bidirectional"]
