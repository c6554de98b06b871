"""Operators and array methods for tracers, so that traced code reads like NumPy code.

NumPy functions and ufuncs applied to a tracer are sent to the pearlnet.numpy function of the
same name (``np.exp(x)`` is ``pnp.exp(x)``); where none exists they raise TypeError rather than
silently drop the derivative. So do the conversions that would leave the derivative behind:
``float()``, ``int()``, ``complex()`` (and ``math`` functions, which call them), and turning a
tracer into a NumPy array (``np.asarray(x)``, ``np.array(x, dtype=float)``, ``buf[i] = x``). The
explicit ways out are ``x.item()`` (the value of a one-entry array) and ``pnp.stop_gradient(x)``
(the plain array). ``bool()`` is allowed: Python control flow on a value is legitimate in eager
mode, and a branch has no derivative to lose.
"""

from __future__ import annotations

from typing import Any

from pearlnet.autodiff.core import Primitive, Tracer, strip

from . import elementwise as ew
from . import linalg, nondiff, reductions, shapes
from ._util import dtype_of


def _namespace():
    import pearlnet.numpy as pnp
    return pnp


def _dispatch(name: str, args: tuple, kwargs: dict, module: str = "numpy") -> Any:
    fn = getattr(_namespace(), name, None)
    if fn is None or not callable(fn):
        raise TypeError(f"{module}.{name} has no differentiable version in pearlnet.numpy; "
                        f"call a pearlnet.numpy function on traced values")
    return fn(*args, **kwargs)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method != "__call__" or kwargs:
        raise TypeError(f"numpy.{ufunc.__name__}.{method} with {sorted(kwargs)} is not "
                        f"differentiable; use pearlnet.numpy.{ufunc.__name__}")
    return _dispatch(ufunc.__name__, inputs, {})


def _array_function(self, func, types, args, kwargs):
    return _dispatch(func.__name__, args, kwargs, getattr(func, "__module__", None) or "numpy")


_WAYS_OUT = ("x.item() for the value of a one-entry array, or pearlnet.numpy.stop_gradient(x) "
             "for a constant")


def _conversion(name: str):
    def convert(self):
        raise TypeError(f"{name}() of a traced value (which math functions and writing it into "
                        f"a NumPy array, buf[i] = x, also call) would drop its derivative; use "
                        f"{_WAYS_OUT}")
    convert.__name__ = f"__{name}__"
    return convert


def _array(self, dtype=None, copy=None):
    raise TypeError(f"a traced value cannot become a NumPy array (np.asarray, np.array, or "
                    f"writing it into one: buf[i] = x) without dropping its derivative; use "
                    f"pearlnet.numpy functions (pnp.asarray, pnp.stack, pnp.where) to keep it, "
                    f"or {_WAYS_OUT}")


def _rev(f):
    def r(self, other):
        return f(other, self)
    return r


def _no_setitem(self, index, value):
    raise TypeError("a traced array cannot be assigned to in place: build the result with "
                    "pearlnet.numpy.where, concatenate or stack")


def _len(self):
    s = shapes.shape_of(self)
    if not s:
        raise TypeError("len() of a 0-d traced array")
    return s[0]


def _iter(self):
    for i in range(_len(self)):
        yield shapes.getitem(self, i)


def _reshape_method(self, *shape):
    return shapes.reshape(self, shape[0] if len(shape) == 1 else shape)


def _transpose_method(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = axes[0]
    return shapes.transpose(self, axes or None)


_OPERATORS = {
    "__add__": ew.add, "__radd__": _rev(ew.add),
    "__sub__": ew.subtract, "__rsub__": _rev(ew.subtract),
    "__mul__": ew.multiply, "__rmul__": _rev(ew.multiply),
    "__truediv__": ew.true_divide, "__rtruediv__": _rev(ew.true_divide),
    "__pow__": ew.power, "__rpow__": _rev(ew.power),
    "__matmul__": linalg.matmul, "__rmatmul__": _rev(linalg.matmul),
    "__neg__": ew.negative, "__pos__": lambda self: self, "__abs__": ew.abs,
    "__getitem__": shapes.getitem, "__setitem__": _no_setitem,
    "__lt__": nondiff.less, "__le__": nondiff.less_equal,
    "__gt__": nondiff.greater, "__ge__": nondiff.greater_equal,
    "__eq__": nondiff.equal, "__ne__": nondiff.not_equal, "__hash__": object.__hash__,
    "__len__": _len, "__iter__": _iter,
    "__bool__": lambda self: bool(strip(self)),
    "__float__": _conversion("float"), "__int__": _conversion("int"),
    "__complex__": _conversion("complex"), "__array__": _array,
    "__array_ufunc__": _array_ufunc, "__array_function__": _array_function,
    "reshape": _reshape_method, "transpose": _transpose_method,
    "sum": reductions.sum, "mean": reductions.mean, "var": reductions.var,
    "std": reductions.std, "max": reductions.max, "min": reductions.min,
    "prod": reductions.prod, "dot": linalg.dot, "astype": shapes.astype,
    "squeeze": shapes.squeeze, "swapaxes": shapes.swapaxes, "ravel": shapes.ravel,
    "flatten": shapes.ravel, "clip": ew.clip,
    "item": lambda self: strip(self).item(),
    "shape": property(lambda self: shapes.shape_of(self)),
    "dtype": property(lambda self: dtype_of(self)),
    "ndim": property(lambda self: len(shapes.shape_of(self))),
    "size": property(lambda self: nondiff.size(self)),
    "T": property(lambda self: shapes.transpose(self)),
    "real": property(lambda self: ew.real(self)), "imag": property(lambda self: ew.imag(self)),
    "argmax": lambda self, axis=None: nondiff.argmax(self, axis),
    "argmin": lambda self, axis=None: nondiff.argmin(self, axis),
    "round": lambda self, decimals=0: nondiff.round(self, decimals),
    "copy": lambda self: self,  # a traced value is never written in place: it is its copy
    "itemsize": property(lambda self: dtype_of(self).itemsize),
    "nbytes": property(lambda self: nondiff.size(self) * dtype_of(self).itemsize),
}

def _method(prim):
    """A primitive as a method (a Primitive object is not a descriptor, so it would not bind)."""
    def method(self, *args, **kwargs):
        return prim(self, *args, **kwargs)
    method.__name__ = prim.name
    return method


for _name, _op in _OPERATORS.items():
    setattr(Tracer, _name, _method(_op) if isinstance(_op, Primitive) else _op)
