"""Small helpers shared by the rule modules: shapes and dtypes of possibly traced values."""

from __future__ import annotations

from typing import Any

import numpy as np

from pearlnet.autodiff import core
from pearlnet.autodiff.core import ForwardTracer, Primitive, Tracer, strip

__all__ = ["Primitive", "Tracer", "strip", "shape_of", "dtype_of", "real_dtype", "normalize_axis"]


def _add_in_place(total: Any, c: Any) -> Any:
    """total + c for the backward pass, written into total (an array the pass made and alone
    holds) when c's shape and dtype leave total's unchanged: no new array per accumulation."""
    if (type(total) is np.ndarray and total.ndim and not isinstance(c, Tracer)
            and np.shape(c) == total.shape and np.result_type(total, c) == total.dtype):
        return np.add(total, c, out=total)
    return total + c


core.add_into[0] = _add_in_place


def _pending_spec(x: Any) -> tuple | None:
    """(shape, dtype) of a value under tracers that is not computed yet, else None."""
    while isinstance(x, Tracer):
        if isinstance(x, ForwardTracer) and x.pending is not None:
            return x.pending[3:5]
        x = x.value
    return None


def shape_of(x: Any) -> tuple:
    if type(x) is np.ndarray:  # the common case, first: rules ask for shapes all the time
        return x.shape
    if isinstance(x, Tracer):
        spec = _pending_spec(x)
        if spec is not None:
            return spec[0]
    x = strip(x)  # a tracer's shape property calls back here: read the value under it
    try:
        return x.shape  # arrays and NumPy scalars have it
    except AttributeError:
        return np.shape(x)


def dtype_of(x: Any) -> np.dtype:
    if isinstance(x, Tracer):
        spec = _pending_spec(x)
        if spec is not None:
            return spec[1]
    return np.result_type(strip(x))


def real_dtype(x: Any) -> np.dtype:
    """The real dtype matching x (float64 for complex128): weights multiplying x use it so that
    they never upcast a float32 computation."""
    dt = dtype_of(x)
    if dt.kind == "c":
        return np.finfo(dt).dtype
    if dt.kind == "f":
        return dt
    return np.dtype(np.float64)


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    """axis (None, int or tuple) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(int(a) % ndim if ndim else 0)
    return tuple(sorted(out))
