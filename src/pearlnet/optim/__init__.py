"""First-order optimizers, gradient clipping, learning-rate schedules, and Hessian-free.

Every optimizer is pure: ``state = opt.init(params)``, then
``params, state = opt.update(params, grads, state)`` with params and grads trees of one
structure (nested dicts, lists, tuples of float arrays). Nothing is modified in place, each
leaf keeps its dtype, and the state is a dict of parameter-shaped trees plus an int
``state["step"]``, ready to save and resume.

>>> import numpy as np
>>> from pearlnet.optim import Adam
>>> opt = Adam(lr=1e-3)
>>> params = {"W": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}
>>> state = opt.init(params)
>>> grads = {"W": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)}
>>> params, state = opt.update(params, grads, state)
>>> params["W"].dtype, state["step"]
(dtype('float32'), 1)
"""

from . import schedules
from .adagrad import AdaGrad
from .adam import Adam
from .base import Optimizer, get
from .clipping import ClipByGlobalNorm, global_norm
from .hessian_free import HessianFree
from .momentum import Momentum
from .nesterov import Nesterov
from .noisy_sgd import NoisySGD
from .rmsprop import RMSProp
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "NoisySGD",
           "ClipByGlobalNorm", "global_norm", "HessianFree", "get", "schedules"]
