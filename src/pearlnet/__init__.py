"""pearlnet: a NumPy deep-learning library with exact curvature.

Every function written with ``pearlnet.numpy`` has its gradient, Hessian-vector product and
Gauss-Newton-vector product, each checkable against finite differences and the complex step.
"""

import os as _os

# importing any submodule runs pearlnet.autodiff first (pearlnet.numpy builds on its engine)
from . import check, nn, numpy, optim  # noqa: F401
from ._malloc import keep_freed_memory
from .autodiff import (  # noqa: F401
    Primitive,
    gauss_newton_operator,
    gauss_newton_vp,
    grad,
    hessian,
    hvp,
    hvp_operator,
    jacobian,
    jit,
    jvp,
    linearize,
    ravel,
    tree_flatten,
    tree_map,
    tree_unflatten,
    value_and_grad,
    vjp,
    vmap,
)
from .train import Model, load_model  # noqa: F401

if _os.environ.get("PEARLNET_MALLOC", "").lower() == "keep":  # opt-in (pearlnet/_malloc.py)
    keep_freed_memory()

__version__ = "0.1.0"
__all__ = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "hvp", "hvp_operator",
           "gauss_newton_vp", "gauss_newton_operator", "jacobian", "hessian", "vmap", "jit",
           "ravel", "tree_flatten", "tree_unflatten", "tree_map", "Primitive",
           "check", "numpy", "nn", "optim", "Model", "load_model", "keep_freed_memory"]
