"""``pearlnet.compat.msu``: the autoencoder assignment's interface (seed 000, section 3), data
laid out features x objects.

Submodules ``activations``, ``layers``, ``ffnet`` and ``autoencoder`` keep the hand-out's class
and method names; ``demo`` runs its experiment in small (``python -m pearlnet.compat.msu.demo``).
Every derivative comes from the autodiff core: a layer is a pure function of (W-bar, X), and its
backward, R_p forward and R_p backward passes are vjp, jvp and jvp-of-vjp of it.

>>> from pearlnet.compat.msu import activations, layers, ffnet, autoencoder
"""

from . import activations, autoencoder, ffnet, layers  # noqa: F401
from .activations import (  # noqa: F401
    BaseActivationFunction,
    LeakyReluActivationFunction,
    LinearActivationFunction,
    ReluActivationFunction,
    SigmoidActivationFunction,
    TanhActivationFunction,
)
from .autoencoder import Autoencoder  # noqa: F401
from .ffnet import FFNet  # noqa: F401
from .layers import BaseLayer, FCLayer  # noqa: F401

__all__ = ["activations", "layers", "ffnet", "autoencoder", "BaseActivationFunction",
           "LinearActivationFunction", "SigmoidActivationFunction", "TanhActivationFunction",
           "ReluActivationFunction", "LeakyReluActivationFunction", "BaseLayer", "FCLayer",
           "FFNet", "Autoencoder"]
