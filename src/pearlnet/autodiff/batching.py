"""vmap: a function of one example mapped over a batch axis, by batching rules, not a loop.

``vmap(f, in_axes, out_axes)(*args)`` opens a ``BatchTrace`` with a level of its own and hands
f a ``BatchTracer`` for every batched input leaf: the batched array and the axis its batch runs
along (``bdim``). f sees per-example shapes (``x.shape`` leaves the batch axis out), so it is
written for one example. A primitive applied to a batch tracer runs its *batching rule*,

    prim.batch(args, dims, **params) -> (out, out_dim)

where ``args`` are the arguments with this trace's tracers unwrapped, ``dims`` their batch axes
(None: not batched), and ``out_dim`` where the result's batch axis is (None: not batched). The
rules live next to each primitive's derivative rules (pearlnet/numpy/*.py) and are written with
primitives, so the lower traces (an enclosing grad, jit's recording, an outer vmap) see the
batched computation, and a transform inside f (grad, jvp, hvp) runs its rules on batch tracers:
``vmap(grad(loss), in_axes=(None, 0, 0))`` gives per-example gradients (JAX's design, Bradbury
et al. 2018; torch.func.vmap follows it too).

Batch tracers are *opaque* like jit's program values: ``strip`` stops at them, so a rule that
reads data (a ReLU mask, a comparison, an argmax, a ``where`` condition) gets a batched value,
not a silently wrong constant, and non-differentiable primitives are batched too (the engine
hands them to the innermost opaque trace's ``record``). Python control flow on a batched value
(``bool(x)``, ``x.item()``) is a TypeError, as under jit.

Inside a rule, tracers of this trace held in an index (``x[labels]``, a tuple argument) come as
``Batched(value, dim)``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .core import Primitive, Tracer, new_level
from .tree import tree_flatten, tree_leaves_like, tree_unflatten

__all__ = ["vmap", "BatchTrace", "BatchTracer", "Batched"]


class Batched(NamedTuple):
    """A batched value met inside a rule's index or tuple argument: its array and batch axis."""

    value: Any
    dim: int


def _shape(x: Any) -> tuple:
    return x.shape if isinstance(x, Tracer) else np.shape(x)


def _dtype(x: Any) -> np.dtype:
    return np.dtype(x.dtype) if isinstance(x, Tracer) else np.result_type(x)


def _ndim(x: Any) -> int:
    return len(_shape(x))


def _refuse(what: str) -> TypeError:
    return TypeError(f"vmap: {what} of a batched value: its data differ between examples, so a "
                     f"Python branch on them has no single answer. Use pearlnet.numpy.where (or "
                     f"another array operation) instead")


class BatchTracer(Tracer):
    """A batched value: the array with the batch axis (``value``) and where it runs (``bdim``).
    ``shape`` and ``dtype`` are one example's."""

    __slots__ = ("value", "bdim")
    opaque = True

    def __init__(self, value: Any, trace: BatchTrace, bdim: int) -> None:
        self.value = value
        self.trace = trace
        self.bdim = bdim

    @property
    def shape(self) -> tuple:
        s = _shape(self.value)
        return s[:self.bdim] + s[self.bdim + 1:]

    @property
    def dtype(self) -> np.dtype:
        return _dtype(self.value)

    def __repr__(self) -> str:
        return f"BatchTracer(level={self.trace.level}, bdim={self.bdim}, shape={self.shape})"

    def __bool__(self) -> bool:
        raise _refuse("bool()")

    def item(self, *args: Any) -> Any:
        raise _refuse(".item()")

    def tolist(self) -> Any:
        raise _refuse(".tolist()")


class BatchTrace:
    """Runs each primitive's batching rule on the batched values of one vmap."""

    __slots__ = ("level", "size")
    records = False

    def __init__(self, size: int) -> None:
        self.level = new_level()
        self.size = size

    def _unwrap(self, a: Any) -> tuple[Any, int | None]:
        if isinstance(a, BatchTracer) and a.trace is self:
            return a.value, a.bdim
        if type(a) in (tuple, list) and any(isinstance(i, Tracer) for i in a):
            return type(a)(Batched(i.value, i.bdim) if isinstance(i, BatchTracer)
                           and i.trace is self else i for i in a), None
        return a, None

    def process(self, prim: Primitive, args: Sequence, params: dict) -> Any:
        vals, dims = [], []
        for a in args:
            v, d = self._unwrap(a)
            vals.append(v)
            dims.append(d)
        params = {k: Batched(v.value, v.bdim) if isinstance(v, BatchTracer) and v.trace is self
                  else self._unwrap(v)[0] for k, v in params.items()}
        rule = prim.batch
        if rule is None:
            raise NotImplementedError(
                f"vmap: no batching rule for primitive {prim.name!r} (argument batch axes "
                f"{tuple(dims)}, batch size {self.size}); define one with "
                f"{prim.name}.defbatch(rule), rule(args, dims, **params) -> (out, out_dim)")
        out, out_dim = rule(vals, dims, **params)
        if out_dim is None:
            return out
        return BatchTracer(out, self, out_dim)

    def record(self, prim: Primitive, args: Sequence, params: dict, fn: Callable) -> Any:
        """A non-differentiable primitive (called with the stripped values): batched as any."""
        return self.process(prim, args, params)


# ---- vmap ------------------------------------------------------------------------------------
def _axes_leaves(axes: Any, tree: Any, who: str, what: str) -> list:
    """The axis of every leaf of ``tree``: ``axes`` is an int or None for all of them, or a
    tree of ints/None of the same structure (dicts matched by key)."""
    leaves, treedef = tree_flatten(tree)
    if axes is None or isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        return [axes] * len(leaves)
    if not isinstance(axes, (dict, list, tuple)):
        raise ValueError(f"{who}: {what} is {axes!r}; expected an int, None, or a tree of "
                         f"them with the structure of the argument")
    return tree_leaves_like(treedef, axes, who, what)


def vmap(f: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable:
    """f mapped over a batch axis: ``vmap(f)(xs)[i] == f(xs[i])``, computed with batching rules
    on whole arrays (no Python loop over examples, except in the rules that say so).

    ``in_axes``: the batch axis of every argument (an int, or None for an argument shared by
    all examples), or a tuple with one entry per positional argument, each an int, None, or a
    tree of them matching that argument. ``out_axes``: where the batch axis goes in each output
    leaf (an int, None for an output that does not depend on the batch, or a tree). Every
    batched axis must have the same length. Composes with the other transforms:
    ``vmap(grad(loss), in_axes=(None, 0, 0))(params, X, Y)`` is the per-example gradients,
    ``grad(lambda p: sum(vmap(f, (None, 0))(p, X)))`` differentiates through it, vmap nests,
    and ``jit(vmap(f))`` compiles it. JAX's ``vmap`` (Bradbury et al. 2018) is the model.

    >>> import numpy as np, pearlnet, pearlnet.numpy as pnp
    >>> pearlnet.vmap(lambda w, x: pnp.dot(w, x), in_axes=(None, 0))(np.ones(2), np.eye(2) * 3)
    array([3., 3.])
    """
    who = f"vmap({getattr(f, '__name__', 'f')})"

    def vmapped(*args: Any) -> Any:
        if isinstance(in_axes, (tuple, list)):
            if len(in_axes) != len(args):
                raise ValueError(f"{who}: in_axes {tuple(in_axes)!r} has {len(in_axes)} entries "
                                 f"for {len(args)} positional arguments")
            per_arg = list(in_axes)
        else:
            per_arg = [in_axes] * len(args)
        size, first, boxed_args, flat = None, None, [], []
        for i, (a, ax) in enumerate(zip(args, per_arg)):
            leaves, treedef = tree_flatten(a)
            axes = _axes_leaves(ax, a, who, f"in_axes entry {i}")
            flat.append((leaves, treedef, axes))
            for leaf, axis in zip(leaves, axes):
                if axis is None:
                    continue
                if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
                    raise ValueError(f"{who}: in_axes entry {i} holds {axis!r}; expected an "
                                     f"int or None")
                shape = _shape(leaf)
                if not -len(shape) <= axis < len(shape):
                    raise ValueError(f"{who}: in_axes {axis} is out of range for argument {i} "
                                     f"of shape {shape}")
                n = shape[axis]
                if size is None:
                    size, first = n, (i, axis, shape)
                elif n != size:
                    raise ValueError(f"{who}: inconsistent batch sizes: argument {first[0]} has "
                                     f"{size} along axis {first[1]} (shape {first[2]}), "
                                     f"argument {i} has {n} along axis {axis} (shape {shape})")
        if size is None:
            raise ValueError(f"{who}: no argument is batched (in_axes {in_axes!r}); give at "
                             f"least one argument an int axis")
        trace = BatchTrace(size)
        for leaves, treedef, axes in flat:
            boxed = [leaf if axis is None else BatchTracer(
                leaf if isinstance(leaf, Tracer) else np.asarray(leaf), trace,
                int(axis) % _ndim(leaf)) for leaf, axis in zip(leaves, axes)]
            boxed_args.append(tree_unflatten(treedef, boxed))
        out = f(*boxed_args)
        out_leaves, out_def = tree_flatten(out)
        axes = _axes_leaves(out_axes, out, who, "out_axes")
        return tree_unflatten(out_def, [_output(o, trace, axis, who)
                                        for o, axis in zip(out_leaves, axes)])

    vmapped.__name__ = who
    vmapped.__doc__ = getattr(f, "__doc__", None)
    return vmapped


def _output(o: Any, trace: BatchTrace, axis: Any, who: str) -> Any:
    """An output leaf with its batch axis at ``axis`` (a leaf that does not depend on the
    batch is broadcast along it, as JAX does; None keeps it unbatched)."""
    import pearlnet.numpy as pnp  # the array layer builds on this module's engine

    batched = isinstance(o, BatchTracer) and o.trace is trace
    if axis is None:
        if batched:
            raise ValueError(f"{who}: out_axes None for an output that depends on the batched "
                             f"arguments (shape {o.shape}); give it an int axis")
        return o
    ndim = _ndim(o) + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"{who}: out_axes {axis} is out of range for an output with "
                         f"{ndim - 1} dimensions per example")
    axis = int(axis) % ndim
    if not batched:
        if not isinstance(o, Tracer):  # a writable array of its own, as a batched one is
            o = np.asarray(o)
            return np.moveaxis(np.repeat(o[None], trace.size, axis=0), 0, axis)
        v = pnp.broadcast_to(pnp.expand_dims(o, 0), (trace.size, *_shape(o)))
        return pnp.moveaxis(v, 0, axis) if axis else v
    return o.value if o.bdim == axis else pnp.moveaxis(o.value, o.bdim, axis)
