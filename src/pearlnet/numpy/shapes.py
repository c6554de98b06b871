"""Structural primitives: reshape, transpose, broadcast_to, indexing, concatenate, astype.

All are linear, so each forward rule applies the primitive itself to the tangent and each
reverse rule applies its transpose (reshape back, inverse permutation, sum over broadcast
axes, scatter-add, slice).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pearlnet.autodiff.batching import BatchTracer

from ._batch import (
    Batched,
    batch_size,
    loop,
    pad_after_batch,
    reduction,
    same_axis,
    shift_axis,
    to_front,
    to_front_or_broadcast,
)
from ._util import Primitive, Tracer, dtype_of, nondiff, normalize_axis, shape_of, strip

__all__ = ["reshape", "transpose", "broadcast_to", "unbroadcast", "getitem", "concatenate",
           "stack", "split", "expand_dims", "squeeze", "swapaxes", "moveaxis", "astype",
           "ravel", "zeros_tangent"]


def zeros_tangent(x: Any, dtype: Any = None) -> np.ndarray:
    """Zeros of x's shape, in x's dtype unless ``dtype`` is given: a plain array, for a tangent or
    cotangent that is zero (a rule's stand-in for an input that has none). Not in NumPy.

    >>> import pearlnet.numpy as pnp
    >>> pnp.zeros_tangent(pnp.ones((2, 1), dtype=pnp.float32))
    array([[0.],
           [0.]], dtype=float32)
    """
    return np.zeros(shape_of(x), dtype=dtype_of(x) if dtype is None else dtype)


# ---- reshape ---------------------------------------------------------------------------------
# The impls call array methods where they can: NumPy's module-level wrappers (np.reshape,
# np.sum...) add microseconds of Python per call, which a training step pays dozens of times.
def _reshape_impl(x, shape):
    return x.reshape(shape) if isinstance(x, np.ndarray) else np.reshape(x, shape)


reshape_p = Primitive("reshape", _reshape_impl)


def _reshape_vjp(g, ans, x, shape):
    return reshape(g, shape_of(x))


def _reshape_jvp(t, ans, x, shape):
    return reshape(t, shape)


reshape_p.defvjp(_reshape_vjp)
reshape_p.defjvp(_reshape_jvp)


def _reshape_batch(args, dims, shape):
    x = to_front(args[0], dims[0])
    return reshape_p(x, shape=(shape_of(x)[0], *shape)), 0


reshape_p.defbatch(_reshape_batch)


def reshape(x: Any, shape: Any, *more: int) -> Any:
    """NumPy's reshape; ``reshape(x, 2, 3)`` and ``reshape(x, (2, 3))`` both work."""
    if more:
        shape = (shape, *more)
    elif isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    else:
        shape = tuple(int(s) for s in shape)
    if shape == shape_of(x):
        return x
    return reshape_p(x, shape=shape)


def ravel(x: Any) -> Any:
    """x flattened to one axis in C order, as ``reshape(x, (-1,))``; the reverse rule reshapes
    the cotangent back. Unlike NumPy's, no ``order`` argument.

    >>> import pearlnet.numpy as pnp
    >>> pnp.ravel(pnp.array([[1.0, 2.0], [3.0, 4.0]]))
    array([1., 2., 3., 4.])
    """
    return reshape(x, (-1,))


# ---- transpose -------------------------------------------------------------------------------
def _transpose_impl(x, axes):
    return x.transpose(axes) if isinstance(x, np.ndarray) else np.transpose(x, axes)


transpose_p = Primitive("transpose", _transpose_impl)


def _transpose_vjp(g, ans, x, axes):
    return transpose_p(g, axes=tuple(np.argsort(axes).tolist()))


def _transpose_jvp(t, ans, x, axes):
    return transpose_p(t, axes=axes)


transpose_p.defvjp(_transpose_vjp)
transpose_p.defjvp(_transpose_jvp)


def _transpose_batch(args, dims, axes):
    x = to_front(args[0], dims[0])
    return transpose_p(x, axes=(0, *(a + 1 for a in axes))), 0


transpose_p.defbatch(_transpose_batch)


def _axis_in(axis: int, ndim: int, who: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{who}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return int(axis) % ndim


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """x with its axes permuted: axis i of the result is axis ``axes[i]`` of x (None: reversed),
    NumPy's. Linear: the forward rule transposes the tangent the same way, the reverse rule
    transposes the cotangent by the inverse permutation.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.transpose(pnp.ones((2, 3, 4)), (1, 0, 2)).shape
    (3, 2, 4)
    >>> w = pnp.array([[1.0], [2.0]])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.transpose(x) * w))(pnp.zeros((1, 2)))
    array([[1., 2.]])
    """
    ndim = len(shape_of(x))
    axes = tuple(range(ndim))[::-1] if axes is None else tuple(
        _axis_in(a, ndim, "transpose") for a in axes)
    if sorted(axes) != list(range(ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {ndim} dimensions")
    if axes == tuple(range(ndim)):
        return x
    return transpose_p(x, axes=axes)


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """x with axes ``axis1`` and ``axis2`` interchanged, NumPy's: a ``transpose``, whose rules
    it has.

    >>> import pearlnet.numpy as pnp
    >>> pnp.swapaxes(pnp.ones((2, 3, 4)), 0, -1).shape
    (4, 3, 2)
    """
    ndim = len(shape_of(x))
    axis1, axis2 = _axis_in(axis1, ndim, "swapaxes"), _axis_in(axis2, ndim, "swapaxes")
    if ndim == 2 and {axis1 % 2, axis2 % 2} == {0, 1}:
        return transpose_p(x, axes=(1, 0))
    axes = list(range(ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, axes)


def moveaxis(x: Any, source: int, destination: int) -> Any:
    """x with axis ``source`` moved to position ``destination``, the others in order: a
    ``transpose``, whose rules it has. Unlike NumPy's, one axis only (no sequences).

    >>> import pearlnet.numpy as pnp
    >>> pnp.moveaxis(pnp.ones((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    ndim = len(shape_of(x))
    source, destination = _axis_in(source, ndim, "moveaxis"), _axis_in(destination, ndim,
                                                                        "moveaxis")
    axes = [a for a in range(ndim) if a != source % ndim]
    axes.insert(destination % ndim, source % ndim)
    return transpose(x, axes)


# ---- broadcasting ----------------------------------------------------------------------------
broadcast_to_p = Primitive("broadcast_to", lambda x, shape: np.broadcast_to(x, shape))


def unbroadcast(g: Any, shape: tuple) -> Any:
    """Sum g over the axes NumPy broadcasting added to reach its shape from ``shape``: the
    transpose of broadcast_to, used by every rule of a broadcasting binary operation."""
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if axes:
        g = sum_p(g, axis=axes, keepdims=False)
    return reshape(g, shape)


def _broadcast_to_vjp(g, ans, x, shape):
    return unbroadcast(g, shape_of(x))


def _broadcast_to_jvp(t, ans, x, shape):
    return broadcast_to_p(t, shape=shape)


broadcast_to_p.defvjp(_broadcast_to_vjp)
broadcast_to_p.defjvp(_broadcast_to_jvp)


def _broadcast_to_batch(args, dims, shape):
    x = pad_after_batch(to_front(args[0], dims[0]), len(shape))
    return broadcast_to_p(x, shape=(shape_of(x)[0], *shape)), 0


broadcast_to_p.defbatch(_broadcast_to_batch)


def broadcast_to(x: Any, shape: int | Sequence[int]) -> Any:
    """x broadcast to ``shape`` by NumPy's rules (on a plain array NumPy's read-only view). The
    reverse rule sums the cotangent over the broadcast axes (``unbroadcast``), the forward rule
    broadcasts the tangent.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.broadcast_to(pnp.array([1.0, 2.0]), (2, 2))
    array([[1., 2.],
           [1., 2.]])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.broadcast_to(x, (3, 2))))(pnp.array([1.0, 2.0]))
    array([3., 3.])
    """
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if shape_of(x) == shape:
        return x
    return broadcast_to_p(x, shape=shape)


# sum lives here because unbroadcast and broadcast_to are each other's transposes through it
def _sum_impl(x, axis, keepdims):
    if isinstance(x, np.ndarray) and x.dtype.kind in "fc":
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_p = Primitive("sum", _sum_impl)


def _sum_vjp(g, ans, x, axis, keepdims):
    xshape = shape_of(x)
    if not keepdims:
        kept = list(xshape)
        for a in normalize_axis(axis, len(xshape)):
            kept[a] = 1
        g = reshape(g, tuple(kept))
    return broadcast_to(g, xshape)


def _sum_jvp(t, ans, x, axis, keepdims):
    return sum_p(t, axis=axis, keepdims=keepdims)


sum_p.out_impl = lambda out, x, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims,
                                                             out=out)
sum_p.defvjp(_sum_vjp)
sum_p.defjvp(_sum_jvp)
sum_p.defbatch(reduction(sum_p))


# ---- indexing --------------------------------------------------------------------------------
def _strip_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(strip(i) for i in index)
    return strip(index)


def _is_advanced(index: Any) -> bool:
    """True when the index holds integer arrays or sequences, which may repeat positions (a
    tuple inside the index, as in x[(0, 0), :], is a sequence of positions too)."""
    items = index if isinstance(index, tuple) else (index,)
    for i in items:
        if isinstance(i, (list, tuple)) or (isinstance(i, np.ndarray) and i.dtype != bool):
            return True
        if isinstance(i, Tracer) and i.dtype != bool:  # a program value of jit (labels)
            return True
    return False


def _getitem_impl(x, index):
    if _holds_program_value(index):  # reached with an opaque value of a lower trace in the
        return _indexed(getitem_p, x, index)  # index: a trace above passed it on (see there)
    return x[index]


getitem_p = Primitive("getitem", _getitem_impl)


def _untake_impl(g, index, shape):
    if _holds_program_value(index):
        return _indexed(untake_p, g, index, shape=shape)
    out = np.zeros(shape, dtype=np.result_type(g))
    if _is_advanced(index):
        np.add.at(out, index, g)  # repeated indices accumulate
    else:
        out[index] = g
    return out


untake_p = Primitive("untake", _untake_impl)


def _indexed(prim: Primitive, x: Any, index: Any, **params: Any) -> Any:
    """prim(x, index=index, ...), also when an opaque value (vmap's batch, jit's program
    value) sits in the index at a higher level than x (labels per example, and a constant
    cotangent): the engine dispatches on arguments only, so that trace is called here. When
    a trace above x's own passes such an index on (grad inside vmap of a table shared by the
    examples, looked up at per-example positions), its impl lands here again with plain x."""
    top = x.trace if isinstance(x, Tracer) else None
    for i in (index if type(index) is tuple else (index,)):
        if isinstance(i, Tracer) and i.opaque and (top is None or i.trace.level > top.level):
            top = i.trace
    if top is None or isinstance(x, Tracer) and top is x.trace:
        return prim(x, index=index, **params)
    params = dict(params, index=index)
    if top.records:
        return top.record(prim, (x,), params, prim.impl)
    return top.process(prim, (x,), params)


def _getitem_vjp(g, ans, x, index):
    return _indexed(untake_p, g, index, shape=shape_of(x))


def _getitem_jvp(t, ans, x, index):
    return _indexed(getitem_p, t, index)


def _untake_vjp(g, ans, x, index, shape):
    return _indexed(getitem_p, g, index)


def _untake_jvp(t, ans, x, index, shape):
    return _indexed(untake_p, t, index, shape=shape)


def _holds_program_value(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, Tracer) for i in items)


def _holds_batched(*items: Any) -> bool:
    for i in items:
        if isinstance(i, BatchTracer) or (type(i) is tuple and _holds_batched(*i)):
            return True
    return False


def _add_at_impl(total, g, index, shape):
    """total (zeros of ``shape`` where None) with g added at ``index``: a copy (jit's buffer
    reuse makes it in place where total dies)."""
    out = np.zeros(shape, dtype=np.result_type(g)) if total is None else total.copy()
    if _is_advanced(index):
        np.add.at(out, index, g)
    else:
        out[index] += g
    return out


def _add_at_out(out, total, g, index, shape):
    if total is None:
        out[...] = 0
    elif out is not total:
        np.copyto(out, total)
    if _is_advanced(index):
        np.add.at(out, index, g)
    else:
        out[index] += g
    return out


_add_at_out.inplace = (0,)  # jit may give it total's own memory, where total dies
_add_at = nondiff(_add_at_impl, "add_at")
_add_at.out_impl = _add_at_out


def _getitem_vjp_into(total, g, ans, x, index):
    """total + untake(g): g added into its positions of total in place, not through a zeroed
    array of x's size (an LSTM step cuts four gate blocks out of one array)."""
    if (isinstance(g, Tracer) and not g.opaque) or _holds_batched(total, g, x, index):
        return NotImplemented  # (under vmap the plain rule, untake, has the batching rule)
    if isinstance(total, Tracer) or isinstance(g, Tracer) or _holds_program_value(index):
        # under jit: the same arithmetic as below, recorded (in place where total dies)
        if isinstance(total, Tracer) and not (total.opaque and total.dtype == dtype_of(g)):
            return NotImplemented
        return _add_at(total, g, index, shape_of(x))
    if total is None:
        total = np.zeros(shape_of(x), dtype=np.result_type(g))
    elif type(total) is not np.ndarray or np.result_type(total, g) != total.dtype:
        return NotImplemented  # a traced total (a transform over this one), or a wider dtype
    if _is_advanced(index):
        np.add.at(total, index, g)  # repeated indices accumulate
    else:
        total[index] += g
    return total


getitem_p.defvjp(_getitem_vjp)
getitem_p.vjp_into = _getitem_vjp_into
getitem_p.defjvp(_getitem_jvp)
untake_p.defvjp(_untake_vjp)
untake_p.defjvp(_untake_jvp)


# vmap: one NumPy index for all examples where NumPy can express it, else a loop
def _index_items(index: Any) -> tuple:
    return index if type(index) is tuple else (index,)


def _array_ndim(i: Any) -> int | None:
    """The broadcast rank an index item contributes as an advanced index (a boolean array
    becomes one axis of positions), or None for a basic one (slice, None, Ellipsis, int)."""
    if isinstance(i, Batched):
        return 1 if dtype_of(i.value).kind == "b" else len(shape_of(i.value)) - 1
    if isinstance(i, (list, tuple)):
        i = np.asarray(i)
    if isinstance(i, (np.ndarray, Tracer)):
        return 1 if dtype_of(i).kind == "b" else len(shape_of(i))
    return None


def _advanced_layout(items: tuple) -> tuple[int, bool]:
    """(where the batch axis lands in x[(slice(None), *items)], can one NumPy index do it).
    NumPy puts the broadcast axes of advanced indices (integer scalars count, once an array is
    present) in place when they are adjacent, else first: then after them comes the batch."""
    ranks = [_array_ndim(i) for i in items]
    if all(r is None for r in ranks):
        return 0, True
    adv = [k for k, (i, r) in enumerate(zip(items, ranks))
           if r is not None or isinstance(i, (int, np.integer))]
    if adv == list(range(adv[0], adv[-1] + 1)):
        return 0, True
    if any(i is None for i in items):  # where NumPy puts new axes then: not worth guessing
        return 0, False
    return max(r for r in ranks if r is not None), True


def _batched_index(items: tuple, size: int, x_batched: bool) -> tuple | None:
    """An index doing all examples' lookups at once, when every item is an integer (array) and
    some differ per example: the batched ones batch-first, padded to the examples' broadcast
    rank, and a batch counter in front when x is batched too. None when another form is met."""
    ranks = []
    for i in items:
        r = _array_ndim(i)
        if r is None and not isinstance(i, (int, np.integer)):
            return None  # a slice, None, Ellipsis: the examples' results differ in layout
        if isinstance(i, Batched) and dtype_of(i.value).kind == "b":
            return None  # a mask per example: the examples' results differ in length
        if isinstance(i, np.ndarray) and i.dtype == bool:
            return None
        ranks.append(r or 0)
    rank = max(ranks)
    out = [pad_after_batch(to_front(i.value, i.dim), rank) if isinstance(i, Batched) else i
           for i in items]
    if x_batched:
        out.insert(0, np.arange(size).reshape((size,) + (1,) * rank))
    return tuple(out)


def _getitem_batch(args, dims, index):
    x, d = args[0], dims[0]
    items = _index_items(index)
    if any(isinstance(i, Batched) for i in items):
        new = _batched_index(items, batch_size([items], [None]), d is not None)
        if new is None:
            return loop(getitem_p, args, dims, {"index": index})
        return _indexed(getitem_p, to_front(x, d), new), 0
    at, one_call = _advanced_layout(items)
    if not one_call:
        return loop(getitem_p, args, dims, {"index": index})
    return _indexed(getitem_p, to_front(x, d), (slice(None), *items)), at


def _untake_batch(args, dims, index, shape):
    g, d = args[0], dims[0]
    items = _index_items(index)
    if any(isinstance(i, Batched) for i in items):
        size = batch_size([items], [None])
        new = _batched_index(items, size, True)
        if new is None:
            return loop(untake_p, args, dims, {"index": index, "shape": shape})
        return _indexed(untake_p, to_front(g, d), new, shape=(size, *shape)), 0
    at, one_call = _advanced_layout(items)
    if not one_call:
        return loop(untake_p, args, dims, {"index": index, "shape": shape})
    g = to_front(g, d)
    if at:
        g = moveaxis(g, 0, at)  # the batch axis where x[(slice(None), *items)] has it
    return _indexed(untake_p, g, (slice(None), *items), shape=(shape_of(g)[at], *shape)), 0


getitem_p.defbatch(_getitem_batch)
untake_p.defbatch(_untake_batch)


def getitem(x: Any, index: Any) -> Any:
    """x[index]: basic slicing, integer-array and boolean indexing (NumPy semantics)."""
    return _indexed(getitem_p, x, _strip_index(index))


# ---- concatenate -----------------------------------------------------------------------------
concatenate_p = Primitive("concatenate",
                          lambda *xs, axis, bounds: np.concatenate(xs, axis=axis))


def _concatenate_vjp(argnum, g, ans, *xs, axis, bounds):
    ndim = len(shape_of(g))
    index = [slice(None)] * ndim
    index[axis % ndim] = slice(bounds[argnum], bounds[argnum + 1])
    return getitem_p(g, index=tuple(index))


def _concatenate_jvp(argnum, t, ans, *xs, axis, bounds):
    parts = [t if i == argnum else zeros_tangent(x, dtype_of(t))
             for i, x in enumerate(xs)]
    return concatenate_p(*parts, axis=axis, bounds=bounds)


def _concatenate_jvp_joint(tangents, ans, *xs, axis, bounds):
    """The tangents concatenated, zeros where an input has none: one concatenation."""
    dtype = np.result_type(*[dtype_of(t) for t in tangents if t is not None])
    parts = [zeros_tangent(x, dtype) if t is None else t for t, x in zip(tangents, xs)]
    return concatenate_p(*parts, axis=axis, bounds=bounds)


concatenate_p.out_impl = lambda out, *xs, axis, bounds: np.concatenate(xs, axis=axis, out=out)
concatenate_p.defvjp_variadic(_concatenate_vjp)
concatenate_p.defjvp_variadic(_concatenate_jvp)
concatenate_p.jvp_joint = _concatenate_jvp_joint


def _concatenate_batch(args, dims, axis, bounds):
    size = batch_size(args, dims)
    xs = [to_front_or_broadcast(x, d, size) for x, d in zip(args, dims)]
    return concatenate_p(*xs, axis=shift_axis(axis, len(shape_of(xs[0])) - 1),
                         bounds=bounds), 0


concatenate_p.defbatch(_concatenate_batch)


def concatenate(arrays: Sequence[Any], axis: int | None = 0) -> Any:
    """The arrays joined along an existing ``axis`` (None: each flattened first), NumPy's. Linear:
    the reverse rule gives each input its slice of the cotangent, the forward rule concatenates the
    tangents (zeros for an input without one).

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.concatenate([pnp.zeros(2), pnp.ones(1)])
    array([0., 0., 1.])
    >>> pearlnet.grad(lambda a: pnp.sum(pnp.concatenate([a, 3 * a])))(pnp.array([1.0, 2.0]))
    array([4., 4.])
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array")
    if axis is None:  # NumPy: flatten every input first
        arrays, axis = [reshape(x, (-1,)) for x in arrays], 0
    if len(arrays) == 1:
        return arrays[0]
    # where each input starts along the axis (and where the last ends): the reverse rule of
    # input k is then one slice, not a sum over the k inputs before it (T^2 for T time steps)
    bounds = [0]
    for x in arrays:
        shape = shape_of(x)
        if not shape:
            raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
        bounds.append(bounds[-1] + shape[axis])
    return concatenate_p(*arrays, axis=axis, bounds=tuple(bounds))


def expand_dims(x: Any, axis: int | Sequence[int]) -> Any:
    """Insert axes of length 1 at ``axis`` (an int or a tuple, positions in the result)."""
    shape = shape_of(x)
    axes = normalize_axis(axis, len(shape) + (1 if isinstance(axis, (int, np.integer))
                                               else len(axis)))
    if len(set(axes)) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis!r}")
    rest = iter(shape)
    new = tuple(1 if i in axes else next(rest) for i in range(len(shape) + len(axes)))
    return reshape(x, new)


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """x without its axes of length 1 (None: all of them; naming an axis of another length is a
    ValueError), NumPy's: a ``reshape``, whose reverse rule reshapes the cotangent back.

    >>> import pearlnet.numpy as pnp
    >>> pnp.squeeze(pnp.ones((1, 3, 1))).shape
    (3,)
    >>> pnp.squeeze(pnp.ones((1, 3, 1)), axis=0).shape
    (3, 1)
    """
    shape = shape_of(x)
    if axis is None:
        axes = tuple(i for i, s in enumerate(shape) if s == 1)
    else:
        axes = normalize_axis(axis, len(shape))
        for a in axes:
            if shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} has size {shape[a]}, not 1")
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes))


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """The arrays, all of one shape, joined along a new ``axis`` (NumPy's): each given a length-1
    axis there, then concatenated, whose rules it has.

    >>> import pearlnet.numpy as pnp
    >>> pnp.stack([pnp.zeros(2), pnp.ones(2)], axis=1)
    array([[0., 1.],
           [0., 1.]])
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array")
    ndim = len(shape_of(arrays[0])) + 1
    axis = axis % ndim
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """NumPy's split: k equal sections, or the pieces between the given indices; each piece
    is a slice of x (differentiable)."""
    n = shape_of(x)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(f"split: an axis of size {n} does not divide into {k} equal "
                             f"sections")
        bounds = [i * (n // k) for i in range(k + 1)]  # an empty axis: k empty pieces
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    ndim = len(shape_of(x))
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        index = [slice(None)] * ndim
        index[axis % ndim] = slice(lo, hi)
        out.append(getitem(x, tuple(index)))
    return out


# ---- astype ----------------------------------------------------------------------------------
astype_p = Primitive("astype", lambda x, dtype: np.asarray(x).astype(dtype))


def _astype_vjp(g, ans, x, dtype):
    want = dtype_of(x)
    if dtype_of(g).kind == "c" and want.kind == "f":
        if np.dtype(dtype).kind == "c":  # the transpose of a real-to-complex cast: Re (JAX)
            from .elementwise import real
            g = real(g)
        else:  # a real-to-real cast, complex-linear: its complex cotangent stays complex
            want = np.result_type(want, np.complex64)
    return astype_p(g, dtype=want)


def _astype_jvp(t, ans, x, dtype):
    if dtype_of(t).kind == "c" and np.dtype(dtype).kind == "f":  # keep a complex tangent
        dtype = np.result_type(dtype, np.complex64)
    return astype_p(t, dtype=dtype)


astype_p.defvjp(_astype_vjp)
astype_p.defjvp(_astype_jvp)
astype_p.defbatch(same_axis(astype_p))


def astype(x: Any, dtype: Any) -> Any:
    """x in dtype; a cast to integers or booleans is piecewise constant: no derivative."""
    if dtype_of(x) == np.dtype(dtype):
        return x
    if np.dtype(dtype).kind not in "fc":
        return _cast(x, np.dtype(dtype))
    return astype_p(x, dtype=np.dtype(dtype))


def _cast_impl(x, dtype):
    return np.asarray(x).astype(dtype)


_cast = nondiff(_cast_impl, "cast")  # to integers or booleans: no derivative
_cast.defbatch(same_axis(_cast))
