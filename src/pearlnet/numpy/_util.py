"""Small helpers shared by the rule modules: shapes and dtypes of possibly traced values, and
the complex-step switch (``complex_step``, ``numpy_own``, ``continuing``)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

import numpy as np

from pearlnet.autodiff import core
from pearlnet.autodiff.core import ForwardTracer, Primitive, Tracer, nondiff, strip

__all__ = ["Primitive", "Tracer", "strip", "nondiff", "known", "shape_of", "dtype_of",
           "real_dtype", "normalize_axis",
           "complex_step", "complex_step_state", "continuing", "numpy_own", "numpy_semantics"]


def _add_in_place(total: Any, c: Any) -> Any:
    """total + c for the backward pass, written into total (an array the pass made and alone
    holds) when c's shape and dtype leave total's unchanged: no new array per accumulation."""
    if (type(total) is np.ndarray and total.ndim and not isinstance(c, Tracer)
            and np.shape(c) == total.shape and np.result_type(total, c) == total.dtype):
        return np.add(total, c, out=total)
    return total + c


core.add_into[0] = _add_in_place


def _pending_spec(x: Any) -> tuple | None:
    """(shape, dtype) of a value under tracers that is not computed yet, else None (an opaque
    value, jit's or vmap's, answers for itself: a batched one's shape is one example's)."""
    while isinstance(x, Tracer) and not x.opaque:
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
        x = strip(x)
        if isinstance(x, Tracer):  # a program value of jit's recording trace
            return x.dtype
    return np.result_type(x)


def known(x: Any) -> bool:
    """Can x's data be read now (to choose a path)? Not when it is, or holds, a program value of
    jit's recording trace: a choice made on it would be baked into the compiled program."""
    return not isinstance(strip(x), Tracer)


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


# ---- the complex-step switch -----------------------------------------------------------------
# A kinked function (abs, sign, relu, maximum, max, ...) has two meanings on complex input:
# NumPy's own (abs is the modulus) and the analytic continuation of its real function, with the
# branch chosen on the real part, which is what the complex step Im f(x + ih)/h differentiates.
# Traced values always take the continuation (derivatives are complex-linear); plain arrays take
# NumPy's own result unless the thread is inside ``complex_step()``. The switch is one flag per
# thread, read at one place: a kinked primitive's ``eager`` function (``numpy_own``), and for
# the one composition with a NumPy meaning of its own, var (and std through it),
# ``numpy_semantics``.
class _ComplexStepState(threading.local):
    """depth > 0: this thread is inside ``complex_step()``."""

    def __init__(self) -> None:
        self.depth = 0

    def reset(self) -> None:
        self.depth = 0


complex_step_state = _ComplexStepState()


@contextlib.contextmanager
def complex_step() -> Iterator[None]:
    """Within this block (this thread only), functions with kinks compute the analytic
    continuation of their real function on plain complex arrays too, deciding each kink on the
    real part, so that Im f(x + ih)/h is f's derivative: ``abs(z) = z * sign(Re z)``,
    ``maximum(z, w)`` picks by real parts, ``max`` averages real-part ties. The checks with
    ``method="complex"`` enter it themselves; enter it for a complex step of one's own.

    >>> import numpy as np, pearlnet.numpy as pnp
    >>> from pearlnet.check import complex_step
    >>> pnp.abs(np.array([-2 + 1e-20j]))  # NumPy's modulus
    array([2.])
    >>> with complex_step():
    ...     pnp.abs(np.array([-2 + 1e-20j]))  # the continuation of |x| at x = -2: -z
    array([2.-1.e-20j])
    """
    state = complex_step_state
    state.depth += 1
    try:
        yield
    finally:
        state.depth -= 1


def continuing(x: Any) -> bool:
    """Does x take the analytic continuation (traced, or inside ``complex_step()``)?"""
    return isinstance(x, Tracer) or complex_step_state.depth > 0


def _has_complex(args: tuple) -> bool:
    for a in args:
        if isinstance(a, np.ndarray):
            if a.dtype.kind == "c":
                return True
        elif isinstance(a, (complex, np.complexfloating)) or (
                isinstance(a, (list, tuple)) and np.iscomplexobj(a)):
            return True
    return False


def numpy_semantics(*args: Any) -> bool:
    """Do these arguments get NumPy's result rather than the continuation: all plain, one
    complex, outside ``complex_step()``? (For compositions with a NumPy meaning of their own,
    such as var: NumPy's is mean |x - mean|^2, the continuation's mean (x - mean)^2.)"""
    return (not complex_step_state.depth and _has_complex(args)
            and not any(isinstance(a, Tracer) for a in args))


def numpy_own(prim: Primitive, own: Callable) -> None:
    """Make ``own`` (NumPy's result) what ``prim`` returns for plain arguments of which one is
    complex, outside ``complex_step()``. Real input, traced input and complex-step mode keep
    ``prim.impl``, the continuation."""
    continued = prim.impl
    state = complex_step_state

    def eager(*args: Any, **params: Any) -> Any:
        if state.depth or not _has_complex(args):
            return continued(*args, **params)
        return own(*args, **params)

    eager.__name__ = f"{prim.name}_eager"
    prim.eager = eager


def _complex_step_key() -> bool:
    return complex_step_state.depth > 0


# a program recorded inside complex_step() computes kinks on the real part: another signature
from pearlnet.autodiff.compiled import context_keys  # noqa: E402

context_keys.append(_complex_step_key)
