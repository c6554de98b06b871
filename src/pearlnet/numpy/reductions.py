"""Reductions: sum (defined with the shape primitives), max, min, prod, logsumexp, and the
compositions mean, var, std.

max and min decide on real parts for traced complex values (and inside ``complex_step()``),
sharing ties; on plain complex arrays they are NumPy's, as are var and std (NumPy's use
|x - mean|^2, the continuation (x - mean)^2). logsumexp shifts by the largest real
part, a positive factor, so its complex value is the principal log of sum(exp(x)) either way."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._batch import ndim, reduction, shift_axis, to_front
from ._util import (
    Primitive,
    known,
    nondiff,
    normalize_axis,
    numpy_own,
    numpy_semantics,
    real_dtype,
    shape_of,
    strip,
)
from .elementwise import exp, multiply, sqrt, square, subtract, true_divide, where
from .shapes import broadcast_to, reshape, sum_p

__all__ = ["sum", "mean", "var", "std", "max", "min", "amax", "amin", "prod", "logsumexp"]


def _kept_shape(xshape: tuple, axis: Any) -> tuple:
    kept = list(xshape)
    for a in normalize_axis(axis, len(xshape)):
        kept[a] = 1
    return tuple(kept)


def _expand(g: Any, xshape: tuple, axis: Any, keepdims: bool) -> Any:
    """A reduced array g, put back to x's shape by broadcasting along the reduced axes."""
    if not keepdims:
        g = reshape(g, _kept_shape(xshape, axis))
    return broadcast_to(g, xshape)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The sum over ``axis`` (None: every axis; an int or a tuple of ints), the reduced axes
    kept with length 1 if ``keepdims``; NumPy's, with no ``dtype``, ``out``, ``initial`` or
    ``where``. Linear: the reverse rule broadcasts the cotangent back along the summed axes, the
    forward rule sums the tangent.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> x = pnp.array([[1.0, 2.0], [3.0, 4.0]])
    >>> pnp.sum(x, axis=0)
    array([4., 6.])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.sum(x, axis=1) ** 2))(x)  # 2 (row sum), broadcast
    array([[ 6.,  6.],
           [14., 14.]])
    """
    return sum_p(x, axis=_axis_param(axis), keepdims=keepdims)


def _axis_param(axis: Any) -> Any:
    if axis is None or isinstance(axis, (int, np.integer)):
        return None if axis is None else int(axis)
    return tuple(int(a) for a in axis)


def _count(x: Any, axis: Any) -> int:
    xshape = shape_of(x)
    return math.prod(xshape[a] for a in normalize_axis(axis, len(xshape)))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """sum(x, axis) / n with n the number of entries reduced (``axis`` and ``keepdims`` as in
    ``sum``): the reverse rule spreads the cotangent over them, g / n each.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> x = pnp.array([[1.0, 2.0], [3.0, 4.0]])
    >>> pnp.mean(x, axis=1)
    array([1.5, 3.5])
    >>> pearlnet.grad(lambda x: pnp.mean(x))(x)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    return true_divide(sum(x, axis, keepdims), _count(x, axis))


def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """sum((x - mean)^2) / (n - ddof); of a plain complex array outside complex_step(),
    NumPy's real sum(|x - mean|^2) / (n - ddof) (std, its square root, follows)."""
    if numpy_semantics(x):
        return np.var(x, axis=_axis_param(axis), keepdims=keepdims, ddof=ddof)
    d = subtract(x, mean(x, axis, keepdims=True))
    return true_divide(sum(square(d), axis, keepdims), _count(x, axis) - ddof)


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """The standard deviation sqrt(var(x, axis, keepdims, ddof)) (see ``var``): d std = d var /
    (2 std), so (x - mean) / ((n - ddof) std) for each entry, not finite where std = 0. Of a plain
    complex array outside ``complex_step()``, NumPy's (from |x - mean|^2).

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.std(pnp.array([[1.0, 3.0], [2.0, 2.0]]), axis=1)
    array([1., 0.])
    >>> pearlnet.grad(lambda x: pnp.std(x))(pnp.array([1.0, 3.0]))
    array([-0.5,  0.5])
    """
    return sqrt(var(x, axis, keepdims, ddof))


# ---- max / min: the gradient goes to the extreme entries, shared equally on ties -------------
def _extreme_weights_impl(x: Any, axis: Any, larger: bool) -> np.ndarray:
    r = np.real(x)
    ext = (np.max if larger else np.min)(r, axis=axis, keepdims=True)
    mask = r == ext
    w = mask / np.sum(mask, axis=axis, keepdims=True)
    return w.astype(real_dtype(x), copy=False)


_extreme_weights_p = nondiff(_extreme_weights_impl, "extreme_weights")


def _extreme_weights_batch(args, dims):
    x, axis, larger = args
    x = to_front(x, dims[0])
    return _extreme_weights_p(x, shift_axis(axis, ndim(x) - 1), larger), 0


_extreme_weights_p.defbatch(_extreme_weights_batch)


def _extreme_weights(x: Any, axis: Any, larger: bool) -> Any:
    return _extreme_weights_p(x, axis, larger)


def _extreme_impl(larger: bool):
    def impl(x, axis, keepdims):
        if np.iscomplexobj(x):
            w = _extreme_weights_impl(x, axis, larger)
            return np.sum(w * x, axis=axis, keepdims=keepdims)
        return (np.max if larger else np.min)(x, axis=axis, keepdims=keepdims)
    return impl


max_p = Primitive("max", _extreme_impl(True))
min_p = Primitive("min", _extreme_impl(False))
# plain complex arrays outside complex_step(): NumPy's lexicographic extreme, one entry
numpy_own(max_p, lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims))
numpy_own(min_p, lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims))


def _make_extreme_rules(prim: Primitive, larger: bool) -> None:
    def vjp(g, ans, x, axis, keepdims):
        return multiply(_expand(g, shape_of(x), axis, keepdims), _extreme_weights(x, axis, larger))

    def jvp(t, ans, x, axis, keepdims):
        return sum_p(multiply(t, _extreme_weights(x, axis, larger)), axis=axis, keepdims=keepdims)

    vjp.__name__, jvp.__name__ = f"_{prim.name}_vjp", f"_{prim.name}_jvp"
    prim.defvjp(vjp)
    prim.defjvp(jvp)
    prim.defbatch(reduction(prim))


_make_extreme_rules(max_p, larger=True)
_make_extreme_rules(min_p, larger=False)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The largest entry along ``axis`` (``axis`` and ``keepdims`` as in ``sum``). The derivative
    goes to the largest entries, shared equally among ties (1/k each for k of them; ``maximum``
    of two gives 1/2 each too). On traced complex values and inside ``complex_step()`` the largest
    real part decides; on plain complex arrays elsewhere, NumPy's lexicographic order. ``amax``
    is the same function.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.max(pnp.array([[1.0, 3.0], [4.0, 2.0]]), axis=0)
    array([4., 3.])
    >>> pearlnet.grad(lambda x: pnp.max(x))(pnp.array([1.0, 3.0, 3.0]))
    array([0. , 0.5, 0.5])
    """
    return max_p(x, axis=_axis_param(axis), keepdims=keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The smallest entry along ``axis``; the derivative goes to the smallest entries, shared
    equally among ties (as ``max``, which see for complex numbers). ``amin`` is the same function.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.min(pnp.array([[1.0, 3.0], [4.0, 2.0]]), axis=1)
    array([1., 2.])
    >>> pearlnet.grad(lambda x: pnp.min(x))(pnp.array([1.0, 1.0, 3.0]))
    array([0.5, 0.5, 0. ])
    """
    return min_p(x, axis=_axis_param(axis), keepdims=keepdims)


amax, amin = max, min


# ---- prod ------------------------------------------------------------------------------------
prod_p = Primitive("prod", lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims))


def _prod_of_others(x: Any, axis: Any) -> Any:
    """For every entry, the product of the other entries of its reduced slice, in O(n) and
    with exact first derivatives (what hvp needs) where the slice has zeros:
    - a non-zero entry: prod/x (its value is 0 if the slice has a zero, its derivative along
      that zero the product of the rest);
    - a zero entry: the product P of the slice's non-zero entries, times 1 if it is the only
      zero, times the other zero x_m if there are two (value 0, derivative P along x_m), and
      0 if there are more (every first derivative keeps a zero factor)."""
    xshape = shape_of(x)
    axes = normalize_axis(axis, len(xshape))
    zero = strip(x) == 0
    if known(zero) and not np.any(zero):  # under jit always the general form
        return true_divide(_expand(prod_p(x, axis=axes, keepdims=True), xshape, axes, True), x)
    safe = where(zero, 1, x)
    count = np.broadcast_to(np.sum(zero, axis=axes, keepdims=True), xshape)
    nonzero_part = true_divide(_expand(prod_p(x, axis=axes, keepdims=True), xshape, axes,
                                       True), safe)
    product_nonzero = _expand(prod_p(safe, axis=axes, keepdims=True), xshape, axes, True)
    zeros_sum = _expand(sum_p(where(zero, x, 0), axis=axes, keepdims=True), xshape, axes, True)
    other_zero = subtract(zeros_sum, x)  # the other zero, where the slice has exactly two
    factor = where(count == 1, 1, where(count == 2, other_zero, 0))
    return where(zero, multiply(product_nonzero, factor), nonzero_part)


def _prod_vjp(g, ans, x, axis, keepdims):
    return multiply(_expand(g, shape_of(x), axis, keepdims), _prod_of_others(x, axis))


def _prod_jvp(t, ans, x, axis, keepdims):
    return sum_p(multiply(t, _prod_of_others(x, axis)), axis=axis, keepdims=keepdims)


prod_p.defvjp(_prod_vjp)
prod_p.defjvp(_prod_jvp)
prod_p.defbatch(reduction(prod_p))


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The product over ``axis`` (``axis`` and ``keepdims`` as in ``sum``): d prod = sum_i
    (product of the other entries) dx_i. That product is computed in O(n) and exactly where the
    slice holds zeros (no division by zero), so second derivatives are exact too.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.prod(pnp.array([[1.0, 2.0], [3.0, 4.0]]), axis=1)
    array([ 2., 12.])
    >>> pearlnet.grad(lambda x: pnp.prod(x))(pnp.array([2.0, 0.0, 4.0]))
    array([0., 8., 0.])
    """
    return prod_p(x, axis=_axis_param(axis), keepdims=keepdims)


# ---- logsumexp -------------------------------------------------------------------------------
def _logsumexp_impl(x, axis, keepdims):
    """m + log sum exp(x - m) with m the largest real part: no overflow, analytic in x."""
    m = np.max(np.real(x), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(real_dtype(x), copy=False)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


logsumexp_p = Primitive("logsumexp", _logsumexp_impl)


def _softmax_of(x, ans, axis, keepdims):
    """exp(x - logsumexp(x)), the derivative of logsumexp, from the saved output."""
    return exp(subtract(x, _expand(ans, shape_of(x), axis, keepdims)))


def _logsumexp_vjp(g, ans, x, axis, keepdims):
    return multiply(_expand(g, shape_of(x), axis, keepdims), _softmax_of(x, ans, axis, keepdims))


def _logsumexp_jvp(t, ans, x, axis, keepdims):
    return sum_p(multiply(t, _softmax_of(x, ans, axis, keepdims)), axis=axis, keepdims=keepdims)


logsumexp_p.defvjp(_logsumexp_vjp)
logsumexp_p.defjvp(_logsumexp_jvp)
logsumexp_p.defbatch(reduction(logsumexp_p))


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x), axis)), computed without overflow."""
    return logsumexp_p(x, axis=normalize_axis(axis, len(shape_of(x))), keepdims=keepdims)

