"""Parameter trees: nested dicts, lists and tuples of arrays, and their flat-vector form.

Dict keys keep their insertion order (a model's layers in order), so ``ravel`` lays out
parameters the way they were built. A tree's *structure* (its ``TreeDef``) records each node's
type, so a named tuple, an ``OrderedDict`` or a ``defaultdict`` comes back as what it was.

Where two trees meet (a tangent and its primal, gradients and parameters, the trees given to
``tree_map``), dicts are matched by key, as Python compares them: ``{"a": 1, "b": 2}`` and
``{"b": 2, "a": 1}`` have the same structure, and ``tree_leaves_like`` gives the second one's
leaves in the first one's order. Different key sets, lengths or kinds (dict, list, tuple) are
refused. Results take the structure, and so the key order, of the first tree.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, defaultdict
from typing import Any, Callable

import numpy as np

__all__ = ["TreeDef", "tree_flatten", "tree_unflatten", "tree_map", "tree_structure",
           "tree_leaves_like", "ravel"]

_LEAF = None


def _kind(node: Any) -> str | None:
    """'dict', 'list' or 'tuple' for a tree node (subclasses included), None for a leaf."""
    if isinstance(node, dict):
        return "dict"
    if isinstance(node, tuple):
        return "tuple"
    if isinstance(node, list):
        return "list"
    return None


class TreeDef:
    """The structure of a tree node: its kind ('dict', 'list', 'tuple'), the type it is rebuilt
    as, its keys (dicts) or length (sequences), and its children's structures (None: a leaf).

    The type is the node's own for dict, ``OrderedDict``, ``defaultdict`` (with its default
    factory), list, tuple and named tuples; another subclass of dict, list or tuple comes back
    as its base type. Two structures are equal when kinds, types, keys in order and children
    are; ``tree_leaves_like`` is the looser match of trees that meet (dicts by key).
    """

    __slots__ = ("kind", "type", "factory", "keys", "children", "_k", "_h")

    def __init__(self, kind: str, type_: type, factory: Any, keys: Any, children: tuple):
        self.kind, self.type, self.factory = kind, type_, factory
        self.keys, self.children = keys, children
        self._k = self._h = None  # the key and its hash, made once (jit's cache asks often)

    @classmethod
    def of(cls, node: Any, children: tuple) -> TreeDef:
        kind, t = _kind(node), type(node)
        if kind == "dict":
            factory = node.default_factory if isinstance(node, defaultdict) else None
            t = t if t in (dict, OrderedDict, defaultdict) else dict
            return cls(kind, t, factory, tuple(node), children)
        if kind == "tuple" and not (t is tuple or hasattr(t, "_fields")):
            t = tuple
        elif kind == "list":
            t = list
        return cls(kind, t, None, len(node), children)

    def rebuild(self, items: list) -> Any:
        if self.kind == "dict":
            pairs = zip(self.keys, items)
            return defaultdict(self.factory, pairs) if self.type is defaultdict else self.type(
                pairs)
        if self.type is list or self.type is tuple:
            return self.type(items)
        return self.type(*items)  # a named tuple

    def _key(self) -> tuple:
        if self._k is None:
            self._k = (self.kind, self.type, self.factory, self.keys, self.children)
        return self._k

    def __eq__(self, other: Any) -> bool:
        return self is other or (isinstance(other, TreeDef) and hash(self) == hash(other)
                                 and self._key() == other._key())

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(self._key())
        return self._h

    def __repr__(self) -> str:
        kids = ["*" if c is _LEAF else repr(c) for c in self.children]
        if self.kind == "dict":
            body = "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(self.keys, kids)) + "}"
            return body if self.type is dict else f"{self.type.__name__}({body})"
        if self.type is list:
            return "[" + ", ".join(kids) + "]"
        if self.type is tuple:
            return "(" + ", ".join(kids) + ("," if len(kids) == 1 else "") + ")"
        return f"{self.type.__name__}(" + ", ".join(
            f"{f}={c}" for f, c in zip(self.type._fields, kids)) + ")"


def tree_flatten(tree: Any) -> tuple[list, Any]:
    """(leaves, treedef): the leaves in order (dicts in insertion order) and the structure
    that rebuilds the tree (``tree_unflatten``). A leaf is anything not a dict, list or tuple."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


# module-level recursions, not closures: a closure that calls itself is a reference cycle, and
# would keep the leaves (and what they hold) alive until the cyclic garbage collector runs
def _flatten(node: Any, leaves: list) -> Any:
    t = type(node)  # the plain containers first: this runs on every transform call
    if t is dict:
        return TreeDef("dict", dict, None, tuple(node),
                       tuple([_flatten(n, leaves) for n in node.values()]))
    if t is list or t is tuple:
        return TreeDef(t.__name__, t, None, len(node), tuple([_flatten(n, leaves) for n in node]))
    if isinstance(node, (dict, list, tuple)):
        children = node.values() if isinstance(node, dict) else node
        return TreeDef.of(node, tuple([_flatten(n, leaves) for n in children]))
    leaves.append(node)
    return _LEAF


def _build(d: Any, it: Any) -> Any:
    if d is _LEAF:
        return next(it)
    items = [_build(c, it) for c in d.children]
    t = d.type
    if t is dict:
        return dict(zip(d.keys, items))
    if t is list:
        return items
    return tuple(items) if t is tuple else d.rebuild(items)


def tree_unflatten(treedef: Any, leaves: list) -> Any:
    """The tree of structure ``treedef`` holding ``leaves`` in order."""
    it = iter(leaves)
    try:
        out = _build(treedef, it)
    except StopIteration:
        raise ValueError(f"tree_unflatten: {len(leaves)} leaves for the structure "
                         f"{treedef}, which has more places") from None
    if next(it, it) is not it:
        raise ValueError("tree_unflatten: more leaves than the tree has places")
    return out


def tree_structure(tree: Any) -> Any:
    """The structure of ``tree`` without its leaves, ``tree_flatten(tree)[1]``: a ``TreeDef``, or
    None for a leaf. Trees of one structure flatten to their leaves in the same order.

    >>> import numpy as np
    >>> treedef = tree_structure({"w": np.ones(2), "b": [1.0, 2.0]})
    >>> treedef
    {'w': *, 'b': [*, *]}
    >>> tree_unflatten(treedef, [10, 20, 30])
    {'w': 10, 'b': [20, 30]}
    """
    return tree_flatten(tree)[1]


def _path_str(path: tuple) -> str:
    return "".join(f"[{k!r}]" for k in path) or "the root"


def _show(treedef: Any) -> str:
    return "*" if treedef is _LEAF else repr(treedef)


def _gather(d: Any, node: Any, leaves: list) -> bool:
    """Append node's leaves in d's order; False at the first difference (no message: the fast
    path of ``tree_leaves_like``, which runs on every transform call)."""
    if d is _LEAF:
        if isinstance(node, (dict, list, tuple)):
            return False
        leaves.append(node)
        return True
    if d.kind == "dict":
        if not isinstance(node, dict) or len(node) != len(d.keys):
            return False
        for k, c in zip(d.keys, d.children):
            if k not in node or not _gather(c, node[k], leaves):
                return False
        return True
    if not isinstance(node, list if d.kind == "list" else tuple) or len(node) != d.keys:
        return False
    for c, n in zip(d.children, node):
        if not _gather(c, n, leaves):
            return False
    return True


def tree_leaves_like(treedef: Any, tree: Any, who: str = "tree_leaves_like",
                     what: str = "the tree") -> list:
    """The leaves of ``tree`` in the order of ``treedef``: dicts are matched by key (in any
    order, recursively), lists and tuples by position (a named tuple matches a tuple).

    A difference in keys, lengths or kinds raises a ValueError naming ``who``, ``what``, both
    structures and the first place they differ.

    >>> tree_leaves_like(tree_structure({"a": 1, "b": 2}), {"b": 20, "a": 10})
    [10, 20]
    """
    leaves: list = []
    if _gather(treedef, tree, leaves):
        return leaves

    def fail(path: tuple, detail: str):
        raise ValueError(f"{who}: {what} has structure {_show(tree_structure(tree))}, expected "
                         f"{_show(treedef)} (at {_path_str(path)}: {detail})")

    def walk(d, node, path):  # the same walk again, to say where the trees differ
        kind = _kind(node)
        if d is _LEAF:
            if kind is not None:
                fail(path, f"a {type(node).__name__} where a leaf is expected")
            return
        if kind != d.kind:
            fail(path, f"a {type(node).__name__ if kind else 'leaf'} where a {d.kind} is "
                       f"expected")
        if kind == "dict":
            if len(node) != len(d.keys) or any(k not in node for k in d.keys):
                missing = [k for k in d.keys if k not in node]
                extra = [k for k in node if k not in d.keys]
                fail(path, f"missing keys {missing}, unexpected keys {extra}")
            for k, c in zip(d.keys, d.children):
                walk(c, node[k], path + (k,))
        else:
            if len(node) != d.keys:
                fail(path, f"length {len(node)} where {d.keys} is expected")
            for i, (c, n) in enumerate(zip(d.children, node)):
                walk(c, n, path + (i,))

    walk(treedef, tree, ())
    raise AssertionError("tree_leaves_like: the trees differ but no difference was found")


def sole_holder(tree: Any, holders: int) -> bool:
    """Is ``tree`` the only way to its arrays? True when the root has ``holders`` references
    besides the caller's argument, every dict, list or tuple below it and every array in it
    has one (its parent's), and no array is a view of another's memory: then writing over the
    arrays changes nothing anybody else can see (Model.fit's in-place update; CPython's
    reference counts, as the jit recycler's)."""
    refcount = sys.getrefcount
    if refcount(tree) != holders + 2:  # + this function's argument + refcount's own
        return False
    stack = [tree]
    while stack:
        node = stack.pop()
        kind = _kind(node)
        children = node.values() if kind == "dict" else node if kind else ()
        for child in children:
            if type(child) is np.ndarray:
                # the parent's, the loop's name and refcount's argument
                if refcount(child) != 3 or child.base is not None:
                    return False
            elif _kind(child) is not None:
                if refcount(child) != 3:
                    return False
                stack.append(child)
        del node, children
    return True


def tree_map(f: Callable, tree: Any, *rest: Any) -> Any:
    """f applied leaf by leaf to trees of one structure (dicts matched by key); the result has
    the structure, and the key order, of the first tree."""
    leaves, treedef = tree_flatten(tree)
    others = [tree_leaves_like(treedef, r, "tree_map", f"tree {i + 1}")
              for i, r in enumerate(rest)]
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


def ravel(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(flat, unravel): all leaves as one 1-D vector, and the inverse map back to the tree.

    The vector has the common dtype of the leaves, laid out in ``tree_flatten`` order (dicts in
    insertion order); ``unravel`` restores each leaf's own shape and dtype. Both directions are
    differentiable.
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
