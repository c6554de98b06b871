"""The "training multilayer networks on NumPy" assignment (hand-out 001) on pearlnet, batch first.

The hand-out's interface, unchanged: ``Layer``, ``Loss``, ``Optimizer`` (interface), the layers
``ReLU``, ``Softmax``, ``Dense``, the loss ``CategoricalCrossentropy``, the optimizers ``SGD`` and
``SGDMomentum``, the sequential ``Model``, and ``train_mnist_model``. Every derivative comes from
the autodiff core (``pearlnet.vjp`` of each layer's and the loss's pure function); the updaters
are ``pearlnet.optim``'s. ``python -m pearlnet.compat.course unittest relu`` runs the project's
tests for one section, like the hand-out's ``./run.py unittest relu``.

>>> import numpy as np
>>> from pearlnet.compat.course import Dense
>>> layer = Dense(2, input_shape=(3,), seed=0)
>>> y = layer(np.ones((4, 3)))
>>> layer.backward(np.ones((4, 2))).shape, layer.weights_grad.shape
((4, 3), (3, 2))
"""

from .interface import Layer, Loss, Optimizer
from .layers import Dense, ReLU, Softmax
from .losses import CategoricalCrossentropy
from .mnist import train_mnist_model
from .model import Model
from .optimizers import SGD, SGDMomentum

__all__ = ["Layer", "Loss", "Optimizer", "ReLU", "Softmax", "Dense", "CategoricalCrossentropy",
           "SGD", "SGDMomentum", "Model", "train_mnist_model"]
