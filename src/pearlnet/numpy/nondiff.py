"""Functions with no derivative to carry: comparisons, arg-reductions, constructors and
stop_gradient. They strip every tracer and return plain NumPy values. On traced values (and
inside ``complex_step()``) comparisons and arg-reductions decide on the real part, like every
kinked function, so the complex step sees the branch of the real point; on plain complex arrays
they are NumPy's own (lexicographic)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._batch import elementwise as _broadcasting_batch
from ._batch import ndim as _ndim
from ._batch import same_axis as _same_axis_batch
from ._batch import to_front as _to_front
from ._util import Primitive, Tracer, continuing, dtype_of, nondiff, numpy_own, shape_of

__all__ = ["stop_gradient", "greater", "greater_equal", "less", "less_equal", "equal",
           "not_equal", "argmax", "argmin", "argsort", "floor", "ceil", "round", "isfinite",
           "isnan", "zeros_like", "ones_like", "full_like", "shape", "ndim", "size", "array",
           "asarray"]

stop_gradient_p = Primitive("stop_gradient", lambda x: x, differentiable=False)
stop_gradient_p.defbatch(_same_axis_batch(stop_gradient_p))


def stop_gradient(x: Any) -> Any:
    """x itself, seen by every transform as a constant (its derivative is zero)."""
    return stop_gradient_p(x)



def _comparison(name: str, op) -> Primitive:
    prim = Primitive(name, lambda x, y: op(np.real(x), np.real(y)), differentiable=False)
    numpy_own(prim, op)
    prim.defbatch(_broadcasting_batch(prim))
    return prim


greater = _comparison("greater", np.greater)
"""x > y, elementwise, broadcasting like NumPy: a plain boolean array, no derivative (a mask
built from traced values is a constant to the transforms). On traced values and inside
``complex_step()`` it compares real parts; on plain complex arrays elsewhere NumPy's
lexicographic order.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pnp.greater(pnp.array([1.0, 2.0, 3.0]), 2.0)
array([False, False,  True])
>>> pearlnet.grad(lambda x: pnp.sum(x * pnp.greater(x, 0)))(pnp.array([-1.0, 2.0]))
array([0., 1.])
"""
greater_equal = _comparison("greater_equal", np.greater_equal)
"""x >= y, elementwise, broadcasting like NumPy: a plain boolean array, no derivative.
On traced values and inside ``complex_step()`` it compares real parts; on plain complex arrays
elsewhere NumPy's lexicographic order.

>>> import pearlnet.numpy as pnp
>>> pnp.greater_equal(pnp.array([1.0, 2.0, 3.0]), 2.0)
array([False,  True,  True])
"""
less = _comparison("less", np.less)
"""x < y, elementwise, broadcasting like NumPy: a plain boolean array, no derivative.
On traced values and inside ``complex_step()`` it compares real parts; on plain complex arrays
elsewhere NumPy's lexicographic order.

>>> import pearlnet.numpy as pnp
>>> pnp.less(pnp.array([1.0, 2.0, 3.0]), 2.0)
array([ True, False, False])
"""
less_equal = _comparison("less_equal", np.less_equal)
"""x <= y, elementwise, broadcasting like NumPy: a plain boolean array, no derivative.
On traced values and inside ``complex_step()`` it compares real parts; on plain complex arrays
elsewhere NumPy's lexicographic order.

>>> import pearlnet.numpy as pnp
>>> pnp.less_equal(pnp.array([1.0, 2.0, 3.0]), 2.0)
array([ True,  True, False])
"""
equal = Primitive("equal", np.equal, differentiable=False)
"""x == y, elementwise, broadcasting like NumPy (complex numbers compare whole): a plain
boolean array, no derivative.

>>> import pearlnet.numpy as pnp
>>> pnp.equal(pnp.array([1.0, 2.0]), 2.0)
array([False,  True])
"""
not_equal = Primitive("not_equal", np.not_equal, differentiable=False)
"""x != y, elementwise, broadcasting like NumPy (complex numbers compare whole): a plain
boolean array, no derivative.

>>> import pearlnet.numpy as pnp
>>> pnp.not_equal(pnp.array([1.0, 2.0]), 2.0)
array([ True, False])
"""
equal.defbatch(_broadcasting_batch(equal))
not_equal.defbatch(_broadcasting_batch(not_equal))


def _arg_reduction(fn):
    """np.argmax and its kin on the real parts: a helper primitive, so that jit records it."""
    def impl(x, axis):
        return fn(np.real(x), axis=axis)
    prim = nondiff(impl, fn.__name__)

    def batch(args, dims):  # batch first; axis None (the flattened example) as NumPy reads it
        x, axis = _to_front(args[0], dims[0]), args[1]
        if axis is None:
            from .shapes import reshape
            return prim(reshape(x, (shape_of(x)[0], -1)), 1), 0
        return prim(x, int(axis) % (_ndim(x) - 1) + 1), 0

    prim.defbatch(batch)
    return prim


_argmax, _argmin, _argsort = (_arg_reduction(f) for f in (np.argmax, np.argmin, np.argsort))


def argmax(x: Any, axis: int | None = None) -> np.ndarray:
    """The index of the largest entry along ``axis`` (None: of the flattened array), NumPy's;
    an integer array or number, no derivative. On traced values and inside ``complex_step()`` by
    real parts; on plain complex arrays elsewhere by NumPy's lexicographic order.

    >>> import pearlnet.numpy as pnp
    >>> pnp.argmax(pnp.array([[1.0, 3.0], [4.0, 2.0]]), axis=1)
    array([1, 0])
    """
    return _argmax(x, axis) if continuing(x) else np.argmax(x, axis=axis)


def argmin(x: Any, axis: int | None = None) -> np.ndarray:
    """The index of the smallest entry along ``axis`` (None: of the flattened array), NumPy's;
    no derivative; complex numbers as in ``argmax``.

    >>> import pearlnet.numpy as pnp
    >>> pnp.argmin(pnp.array([[1.0, 3.0], [4.0, 2.0]]), axis=1)
    array([0, 1])
    """
    return _argmin(x, axis) if continuing(x) else np.argmin(x, axis=axis)


def argsort(x: Any, axis: int = -1) -> np.ndarray:
    """The indices that sort x along ``axis`` (None: the flattened array), NumPy's default sort;
    no derivative; complex numbers as in ``argmax``. Index with them (``x[order]``) to sort
    differentiably.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> x = pnp.array([3.0, 1.0, 2.0])
    >>> pnp.argsort(x)
    array([1, 2, 0])
    >>> pearlnet.grad(lambda x: pnp.sum(x[pnp.argsort(x)] * pnp.array([1.0, 2.0, 3.0])))(x)
    array([3., 1., 2.])
    """
    return _argsort(x, axis) if continuing(x) else np.argsort(x, axis=axis)


_floor, _ceil, _isfinite, _isnan = (nondiff(f, f.__name__) for f in (np.floor, np.ceil,
                                                                       np.isfinite, np.isnan))
_round = nondiff(np.round, "round")
for _p in (_floor, _ceil, _isfinite, _isnan, _round):
    _p.defbatch(_same_axis_batch(_p))


def floor(x: Any) -> np.ndarray:
    """The largest integer <= x, elementwise (NumPy's); piecewise constant: a plain array, no
    derivative.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.floor(pnp.array([-1.5, 1.5]))
    array([-2.,  1.])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.floor(x) * x))(pnp.array([1.5, 2.5]))  # a constant
    array([1., 2.])
    """
    return _floor(x)


def ceil(x: Any) -> np.ndarray:
    """The smallest integer >= x, elementwise (NumPy's); piecewise constant: a plain array, no
    derivative.

    >>> import pearlnet.numpy as pnp
    >>> pnp.ceil(pnp.array([-1.5, 1.5]))
    array([-1.,  2.])
    """
    return _ceil(x)


def round(x: Any, decimals: int = 0) -> np.ndarray:
    """x rounded to ``decimals`` decimals, halves to even (NumPy's); piecewise constant: a plain
    array, no derivative.

    >>> import pearlnet.numpy as pnp
    >>> pnp.round(pnp.array([0.5, 1.5, 2.5, 0.123]))
    array([0., 2., 2., 0.])
    >>> pnp.round(pnp.array([0.123]), 2)
    array([0.12])
    """
    return _round(x, decimals)


def isfinite(x: Any) -> np.ndarray:
    """True where x is neither infinite nor NaN, elementwise (NumPy's): a plain boolean array.

    >>> import pearlnet.numpy as pnp
    >>> pnp.isfinite(pnp.array([1.0, pnp.inf, pnp.nan]))
    array([ True, False, False])
    """
    return _isfinite(x)


def isnan(x: Any) -> np.ndarray:
    """True where x is NaN, elementwise (NumPy's): a plain boolean array.

    >>> import pearlnet.numpy as pnp
    >>> pnp.isnan(pnp.array([1.0, pnp.inf, pnp.nan]))
    array([False, False,  True])
    """
    return _isnan(x)


def zeros_like(x: Any, dtype: Any = None) -> np.ndarray:
    """Zeros of x's shape and dtype (or ``dtype``), NumPy's; of a traced x, a plain array (a
    constant), not a traced one.

    >>> import pearlnet.numpy as pnp
    >>> pnp.zeros_like(pnp.array([[1.0, 2.0]]))
    array([[0., 0.]])
    """
    if not isinstance(x, Tracer):
        return np.zeros_like(x, dtype=dtype)
    return np.zeros(shape_of(x), dtype=dtype_of(x) if dtype is None else dtype)


def ones_like(x: Any, dtype: Any = None) -> np.ndarray:
    """Ones of x's shape and dtype (or ``dtype``), NumPy's; of a traced x, a plain array (a
    constant), not a traced one.

    >>> import pearlnet.numpy as pnp
    >>> pnp.ones_like(pnp.array([1, 2]), dtype=float)
    array([1., 1.])
    """
    if not isinstance(x, Tracer):
        return np.ones_like(x, dtype=dtype)
    return np.ones(shape_of(x), dtype=dtype_of(x) if dtype is None else dtype)


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> np.ndarray:
    """``fill_value`` in x's shape and dtype (or ``dtype``), NumPy's; of a traced x, a plain array
    (a constant), not a traced one.

    >>> import pearlnet.numpy as pnp
    >>> pnp.full_like(pnp.array([1.0, 2.0]), 7.0)
    array([7., 7.])
    """
    if not isinstance(x, Tracer):
        return np.full_like(x, fill_value, dtype=dtype)
    return np.full(shape_of(x), fill_value, dtype=dtype_of(x) if dtype is None else dtype)


def shape(x: Any) -> tuple:
    """x's shape, a tuple, for plain and traced arrays alike (no derivative to carry).

    >>> import pearlnet.numpy as pnp
    >>> pnp.shape(pnp.ones((2, 3)))
    (2, 3)
    """
    return shape_of(x)


def ndim(x: Any) -> int:
    """x's number of axes, for plain and traced arrays alike.

    >>> import pearlnet.numpy as pnp
    >>> pnp.ndim(pnp.ones((2, 3)))
    2
    """
    return len(shape_of(x))


def size(x: Any) -> int:
    """x's number of entries (the product of its shape), for plain and traced arrays alike;
    unlike NumPy's, no ``axis`` argument.

    >>> import pearlnet.numpy as pnp
    >>> pnp.size(pnp.ones((2, 3)))
    6
    """
    return int(np.prod(shape_of(x), dtype=np.int64))


def _holds_tracer(obj: Any) -> bool:
    if isinstance(obj, Tracer):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_holds_tracer(o) for o in obj)
    return False


def array(obj: Any, dtype: Any = None) -> Any:
    """np.array, except that a (nested) list holding traced values is stacked differentiably."""
    if _holds_tracer(obj):
        from .shapes import astype, stack
        if isinstance(obj, Tracer):
            out = obj
        else:
            out = stack([array(o) if isinstance(o, (list, tuple)) else o for o in obj])
        return out if dtype is None else astype(out, dtype)
    return np.array(obj, dtype=dtype)


def asarray(obj: Any, dtype: Any = None) -> Any:
    """np.asarray, except that a (nested) list holding traced values is stacked differentiably,
    as ``array`` does; a traced array itself passes unchanged.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.asarray([1, 2], dtype=float)
    array([1., 2.])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.asarray([x, 2 * x])))(pnp.array([1.0]))
    array([3.])
    """
    if _holds_tracer(obj):
        return array(obj, dtype)
    return np.asarray(obj, dtype=dtype)
