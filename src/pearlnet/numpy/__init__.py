"""pearlnet.numpy: a differentiable NumPy namespace.

Write functions with ``import pearlnet.numpy as pnp`` and transform them with ``pearlnet.grad``,
``jvp``, ``hvp``...; on plain arrays every function here is NumPy's own, at NumPy's speed.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.tanh(x) ** 2))(pnp.array([0.5, 1.0]))
array([0.7268..., 0.6397...])

Complex numbers. Derivatives are complex-linear, so the complex step Im f(x + ih)/h measures
them. For that, a function with a kink (abs, sign, relu, maximum, minimum, clip, max, min,
window_max, softplus's two formulas, the comparisons and argmax/argmin/argsort) computes on
complex input the analytic continuation of its real function, deciding the kink on the real
part: abs(z) = z sign(Re z), maximum picks by real parts, max shares real-part ties. It does so

- always on traced values (inside grad, jvp, hvp, ...), whatever the mode;
- on plain complex arrays only inside ``pearlnet.check.complex_step()`` (one flag per thread),
  which ``check_grad``, ``check_hvp`` and ``check_jvp`` enter for their numerical side.

Elsewhere a plain complex array gets NumPy's own result: ``pnp.abs(3 + 4j)`` is 5.0, ``pnp.max``
orders lexicographically, ``pnp.var`` is the real mean |x - mean|^2 (the continuation's is
mean (x - mean)^2). Functions without a kink (exp, log, sin, tanh, sigmoid, logsumexp...) have
one meaning. ``real`` and ``imag`` are not complex-linear; they carry derivatives by
JAX's rules, which the complex step cannot check.

Traced values never turn into Python or NumPy numbers silently: ``float(x)``, ``int(x)``,
``complex(x)``, ``math.exp(x)``, ``np.asarray(x)`` and ``buf[i] = x`` raise TypeError; take
``x.item()`` or ``pnp.stop_gradient(x)`` for a constant.
"""

from numpy import (  # noqa: F401  constructors and constants pass straight through
    arange,
    complex64,
    complex128,
    e,
    empty,
    eye,
    float16,
    float32,
    float64,
    full,
    inf,
    int32,
    int64,
    linspace,
    nan,
    newaxis,
    ones,
    pi,
    zeros,
)

from . import tracer_ops  # noqa: F401  (attaches operators to tracers)
from .cells import *  # noqa: F401,F403
from .cells import __all__ as _ce
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _cv
from .elementwise import *  # noqa: F401,F403
from .elementwise import __all__ as _ew
from .linalg import *  # noqa: F401,F403
from .linalg import __all__ as _la
from .nondiff import *  # noqa: F401,F403
from .nondiff import __all__ as _nd
from .reductions import *  # noqa: F401,F403
from .reductions import __all__ as _rd
from .shapes import *  # noqa: F401,F403
from .shapes import __all__ as _sh

__all__ = [*_ew, *_la, *_nd, *_rd, *_sh, *_cv, *_ce, "arange", "eye", "ones", "zeros", "full",
           "empty", "linspace", "float32", "float64", "complex128", "pi", "e", "inf", "nan",
           "newaxis"]
