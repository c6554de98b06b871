"""Parameter trees: nested dicts, lists and tuples of arrays, and their flat-vector form.

Dict keys keep their insertion order (a model's layers in order), so ``ravel`` lays out
parameters the way they were built.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["tree_flatten", "tree_unflatten", "tree_map", "tree_structure", "ravel"]

_LEAF = None


def tree_flatten(tree: Any) -> tuple[list, Any]:
    """(leaves, treedef): the leaves in order and a description to rebuild the tree."""
    leaves: list = []

    def walk(node):
        if isinstance(node, dict):
            keys = tuple(node)
            return ("dict", keys, tuple(walk(node[k]) for k in keys))
        if isinstance(node, (list, tuple)):
            return (type(node).__name__, len(node), tuple(walk(n) for n in node))
        leaves.append(node)
        return _LEAF

    return leaves, walk(tree)


def tree_unflatten(treedef: Any, leaves: list) -> Any:
    it = iter(leaves)

    def build(d):
        if d is _LEAF:
            return next(it)
        kind, keys, children = d
        if kind == "dict":
            return {k: build(c) for k, c in zip(keys, children)}
        items = [build(c) for c in children]
        return items if kind == "list" else tuple(items)

    out = build(treedef)
    if next(it, it) is not it:
        raise ValueError("tree_unflatten: more leaves than the tree has places")
    return out


def tree_structure(tree: Any) -> Any:
    return tree_flatten(tree)[1]


def tree_map(f: Callable, tree: Any, *rest: Any) -> Any:
    """f applied leaf by leaf to trees of one structure."""
    leaves, treedef = tree_flatten(tree)
    others = []
    for r in rest:
        rl, rd = tree_flatten(r)
        if rd != treedef:
            raise ValueError(f"tree_map: trees differ in structure: {treedef} and {rd}")
        others.append(rl)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


def ravel(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(flat, unravel): all leaves as one 1-D vector, and the inverse map back to the tree.

    The vector has the common dtype of the leaves; ``unravel`` restores each leaf's own shape
    and dtype. Both directions are differentiable.
    """
    import pearlnet.numpy as pnp

    leaves, treedef = tree_flatten(tree)
    shapes = [pnp.shape(leaf) for leaf in leaves]
    dtypes = [pnp.asarray(leaf).dtype if not hasattr(leaf, "dtype") else leaf.dtype
              for leaf in leaves]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    total = sum(sizes)
    flat_dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    if leaves:
        flat = pnp.concatenate([pnp.astype(pnp.reshape(leaf, (-1,)), flat_dtype)
                                for leaf in leaves])
    else:
        flat = np.zeros(0, dtype=flat_dtype)

    def unravel(vector: Any) -> Any:
        if pnp.shape(vector) != (total,):
            raise ValueError(f"unravel: expected a vector of shape ({total},), got "
                             f"{pnp.shape(vector)}")
        # a vector of the flat dtype goes back to the leaves' own dtypes; another dtype (a
        # complex step, a float64 direction for float32 weights) is kept, never truncated
        restore = pnp.asarray(vector).dtype == flat_dtype
        parts, start = [], 0
        for shape, size, dtype in zip(shapes, sizes, dtypes):
            part = pnp.reshape(vector[start:start + size], shape)
            parts.append(pnp.astype(part, dtype) if restore else part)
            start += size
        return tree_unflatten(treedef, parts)

    return flat, unravel
