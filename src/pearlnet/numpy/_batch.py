"""Shared shapes of vmap's batching rules (pearlnet.autodiff.batching): each primitive registers
its own rule next to its derivative rules, most of them made here.

A rule gets the arguments with the batch tracers unwrapped and their batch axes ``dims`` (None:
the same for every example) and returns (output, its batch axis). The rules are written with
primitives, so whatever traces sit below vmap (grad, jit, an outer vmap) see batched work.
"""

from __future__ import annotations

from typing import Any, Callable

from pearlnet.autodiff.batching import Batched

from ._util import Primitive, shape_of

__all__ = ["Batched", "ndim", "batch_size", "to_front", "to_front_or_broadcast", "elementwise",
           "same_axis", "reduction", "shift_axis", "loop", "pad_after_batch"]


def ndim(x: Any) -> int:
    return len(shape_of(x))


def batch_size(args: Any, dims: Any) -> int:
    """The batch length, from the first batched argument (or a Batched inside a tuple)."""
    for a, d in zip(args, dims):
        if d is not None:
            return shape_of(a)[d]
        if isinstance(a, Batched):
            return shape_of(a.value)[a.dim]
        if type(a) in (tuple, list):
            for i in a:
                if isinstance(i, Batched):
                    return shape_of(i.value)[i.dim]
    raise AssertionError("batch_size: nothing is batched")


def to_front(x: Any, d: int | None) -> Any:
    """x with its batch axis d moved to the front (x itself when it is there or unbatched)."""
    if not d:
        return x
    from .shapes import moveaxis
    return moveaxis(x, d, 0)


def to_front_or_broadcast(x: Any, d: int | None, size: int) -> Any:
    """x with a leading batch axis: moved there, or broadcast along a new one."""
    if d is not None:
        return to_front(x, d)
    from .shapes import broadcast_to, expand_dims
    return broadcast_to(expand_dims(x, 0), (size, *shape_of(x)))


def pad_after_batch(x: Any, rank: int) -> Any:
    """A batch-first x whose examples have fewer than ``rank`` axes, given leading axes of
    length 1 after the batch axis (so that NumPy broadcasting aligns it per example)."""
    shape = shape_of(x)
    missing = rank - (len(shape) - 1)
    if missing <= 0:
        return x
    from .shapes import reshape
    return reshape(x, (shape[0],) + (1,) * missing + shape[1:])


def elementwise(prim: Primitive) -> Callable:
    """The rule of a broadcasting elementwise primitive (any number of arguments): batched
    arguments go batch-first, padded to the examples' broadcast rank; unbatched ones broadcast
    as they are (NumPy aligns trailing axes). One argument batched: its axis stays put."""
    def rule(args, dims, **params):
        rank = max(ndim(a) - (d is not None) for a, d in zip(args, dims))
        batched = [k for k, d in enumerate(dims) if d is not None]
        if len(batched) == 1:
            k = batched[0]
            d = dims[k]
            # no move needed when this example is of full rank and the unbatched arguments
            # reach no further back than the axes after the batch axis
            if ndim(args[k]) - 1 == rank and all(ndim(a) <= rank - d for j, a in
                                                  enumerate(args) if j != k):
                return prim(*args, **params), d
        new = [a if d is None else pad_after_batch(to_front(a, d), rank)
               for a, d in zip(args, dims)]
        return prim(*new, **params), 0

    rule.__name__ = f"_{prim.name}_batch"
    return rule


def same_axis(prim: Primitive) -> Callable:
    """The rule of a primitive that maps its first argument entry by entry (the others are
    parameters: a dtype, a number of decimals): the batch axis stays where it is."""
    def rule(args, dims, **params):
        if any(d is not None for d in dims[1:]):
            return loop(prim, args, dims, params)
        return prim(*args, **params), dims[0]

    rule.__name__ = f"_{prim.name}_batch"
    return rule


def shift_axis(axis: Any, rank: int) -> Any:
    """A per-example ``axis`` (None, int or tuple) of a rank-``rank`` example, as axes of the
    batch-first array."""
    if axis is None:
        return tuple(range(1, rank + 1))
    if isinstance(axis, tuple):
        return tuple(int(a) % rank + 1 for a in axis)
    return int(axis) % rank + 1


def reduction(prim: Primitive) -> Callable:
    """The rule of a reduction ``prim(x, axis=..., keepdims=...)``: batch first, axes shifted."""
    def rule(args, dims, axis, keepdims):
        x = to_front(args[0], dims[0])
        return prim(x, axis=shift_axis(axis, ndim(x) - 1), keepdims=keepdims), 0

    rule.__name__ = f"_{prim.name}_batch"
    return rule


def _take(a: Any, d: int | None, b: int) -> Any:
    if isinstance(a, Batched):
        return _take(a.value, a.dim, b)
    if type(a) in (tuple, list) and d is None:
        return type(a)(_take(i, None, b) for i in a)
    if d is None:
        return a
    from .shapes import getitem
    return getitem(a, (slice(None),) * d + (b,))


def loop(prim: Primitive, args: Any, dims: Any, params: dict) -> tuple[Any, int]:
    """The fallback: the primitive example by example, stacked (a Python loop over the batch,
    used only where the rules say so: an index that differs per example in a way one NumPy
    call cannot express)."""
    from .shapes import stack
    size = batch_size(list(args) + list(params.values()), list(dims) + [None] * len(params))
    outs = [prim(*[_take(a, d, b) for a, d in zip(args, dims)],
                 **{k: _take(v, None, b) for k, v in params.items()}) for b in range(size)]
    return stack(outs), 0
