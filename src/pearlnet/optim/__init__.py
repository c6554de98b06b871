"""First-order optimizers, gradient clipping, learning-rate schedules, Hessian-free and K-FAC.

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

from typing import Any

from . import schedules
from .adagrad import AdaGrad
from .adam import Adam
from .base import Optimizer
from .base import get as _get_registered
from .clipping import ClipByGlobalNorm, global_norm
from .hessian_free import HessianFree
from .kfac import KFAC
from .momentum import Momentum
from .nesterov import Nesterov
from .noisy_sgd import NoisySGD
from .rmsprop import RMSProp
from .sgd import SGD


def get(identifier: Any) -> Any:
    """An optimizer by name, default-constructed, or the optimizer passed in unchanged:
    ``optim.base.get``'s names (``"sgd"``, ``"adam"``, ``"hf"``...) and ``"kfac"``
    (``KFAC()``, which runs inside ``Model.fit``).

    >>> get("kfac")
    KFAC(lr=1.0, damping=1.0, decay=0.95, inverse_every=20, fisher_type='mc')
    """
    if isinstance(identifier, str) and identifier.strip().lower() in ("kfac", "k-fac"):
        return KFAC()
    try:
        return _get_registered(identifier)
    except ValueError as err:
        if isinstance(identifier, str):
            raise ValueError(f"{err}, kfac") from None
        raise


__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "NoisySGD",
           "ClipByGlobalNorm", "global_norm", "HessianFree", "KFAC", "get", "schedules"]
