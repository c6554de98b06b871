"""The automatic-differentiation core: tracing engine, transforms, trees and gradient checks."""

from . import check  # noqa: F401,E402
from .core import Primitive, Tracer, primitives, strip  # noqa: F401  (imported first: numpy needs it)
from .transforms import (  # noqa: F401
    gauss_newton_vp,
    grad,
    hessian,
    hvp,
    jacobian,
    jvp,
    value_and_grad,
    vjp,
)
from .tree import ravel, tree_flatten, tree_map, tree_unflatten  # noqa: F401

__all__ = ["Primitive", "Tracer", "primitives", "strip", "grad", "value_and_grad", "vjp", "jvp",
           "hvp", "gauss_newton_vp", "jacobian", "hessian", "ravel", "tree_flatten", "tree_map",
           "tree_unflatten", "check"]
