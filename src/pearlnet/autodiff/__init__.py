"""The automatic-differentiation core: tracing engine, transforms, trees and gradient checks."""

from . import check  # noqa: F401,E402
from .batching import vmap  # noqa: F401
from .compiled import Jitted, jit  # noqa: F401
from .core import Primitive, Tracer, primitives, strip  # noqa: F401  (imported first: numpy needs it)
from .transforms import (  # noqa: F401
    gauss_newton_operator,
    gauss_newton_vp,
    grad,
    hessian,
    hvp,
    hvp_operator,
    jacobian,
    jvp,
    linearize,
    value_and_grad,
    vjp,
)
from .tree import (  # noqa: F401
    TreeDef,
    ravel,
    tree_flatten,
    tree_leaves_like,
    tree_map,
    tree_structure,
    tree_unflatten,
)

__all__ = ["Primitive", "Tracer", "primitives", "strip", "grad", "value_and_grad", "vjp", "jvp",
           "linearize", "hvp", "hvp_operator", "gauss_newton_vp", "gauss_newton_operator",
           "jacobian", "hessian", "vmap", "jit", "Jitted", "ravel", "tree_flatten", "tree_map",
           "tree_unflatten",
           "tree_structure", "tree_leaves_like", "TreeDef", "check"]
