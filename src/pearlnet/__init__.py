"""pearlnet: a NumPy deep-learning library with exact curvature.

Every function written with ``pearlnet.numpy`` has its gradient, Hessian-vector product and
Gauss-Newton-vector product, each checkable against finite differences and the complex step.
"""

from . import (
    check,  # noqa: F401,E402
    numpy,  # noqa: F401,E402
)
from .autodiff import (  # noqa: F401  (first: pearlnet.numpy builds on the engine)
    Primitive,
    gauss_newton_vp,
    grad,
    hessian,
    hvp,
    jacobian,
    jvp,
    ravel,
    tree_flatten,
    tree_map,
    tree_unflatten,
    value_and_grad,
    vjp,
)

__version__ = "0.1.0"
__all__ = ["grad", "value_and_grad", "vjp", "jvp", "hvp", "gauss_newton_vp", "jacobian",
           "hessian", "ravel", "tree_flatten", "tree_unflatten", "tree_map", "Primitive",
           "check", "numpy"]
