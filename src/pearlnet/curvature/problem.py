"""What every curvature operator and estimator starts from: a network and its loss, the
parameters (or one block of them), and a dataset walked in batches.

A *problem* is given as either

- a compiled ``pearlnet.Model``: the network is ``model.forward`` in evaluation mode (dropout
  off, BatchNorm on its running statistics), the loss the compiled one; the dataset is a pair
  ``(x, y)``; or
- a pair ``(net, loss)`` of functions ``net(params, batch) -> outputs`` and
  ``loss(outputs, batch) -> scalar`` (Hessian-free's convention); the dataset is any tree of
  arrays sharing a leading axis of cases (``x`` alone for an autoencoder, ``(x, y)``...).

The loss of a batch must be the *mean* over its cases of a per-case loss (every pearlnet loss
is), so the full data's loss is sum_b (n_b / N) L_b and every curvature of the full data is
the same weighted sum of the batches' curvatures; the operators use exactly these weights.
Regularisation penalties are not part of it: the curvature is the data term's.

Data-parallel (``comm``, a ``pearlnet.distributed`` communicator): every rank passes its own
share of the dataset; N is the global number of cases, and every product is the ranks' sum.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from pearlnet.autodiff import ravel, tree_flatten, tree_leaves_like, tree_map, tree_structure

__all__ = ["Problem", "layer_blocks", "as_rng"]


def as_rng(seed: Any, who: str) -> np.random.Generator:
    """A Generator from an int seed or a Generator (never the global NumPy RNG)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, float, str)) or seed is None:
        raise TypeError(f"{who}: seed must be a non-negative int or a numpy.random.Generator, "
                        f"got {seed!r}")
    return np.random.default_rng(seed)


def _is_model(obj: Any) -> bool:
    return hasattr(obj, "forward") and hasattr(obj, "loss_fn") and hasattr(obj, "layers")


def _get_path(tree: Any, path: tuple, who: str) -> Any:
    node = tree
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"{who}: block {path!r} is not in the parameters (at {key!r}); "
                             f"known blocks: {layer_blocks(tree)}") from None
    return node


def _set_path(tree: Any, path: tuple, value: Any) -> Any:
    """A copy of ``tree`` with the node at ``path`` replaced (only the nodes on the path are
    new; nothing is modified in place)."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(tree, dict):
        out = dict(tree)
        out[key] = _set_path(tree[key], rest, value)
        return out
    items = list(tree)
    items[key] = _set_path(tree[key], rest, value)
    return type(tree)(items) if isinstance(tree, tuple) else items


def layer_blocks(params: Any) -> list[tuple]:
    """The paths of the innermost nodes whose children are all arrays: one per layer, e.g.
    ``[("dense",), ("dense_1",)]`` for a Model, ``[("encoder", 0), ...]`` for an Autoencoder.
    Each is a valid ``block=`` for the operators."""
    out: list[tuple] = []

    def walk(node: Any, path: tuple) -> None:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) \
            if isinstance(node, (list, tuple)) else None
        if children is None:
            return
        if children and all(not isinstance(c, (dict, list, tuple)) for _, c in children):
            out.append(path)
            return
        for key, child in children:
            walk(child, path + (key,))

    walk(params, ())
    return out


def _leading(data: Any, who: str) -> int:
    leaves = [leaf for leaf in tree_flatten(data)[0]]
    if not leaves:
        raise ValueError(f"{who}: the dataset holds no arrays")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"{who}: every array of the dataset needs the same leading axis of "
                         f"cases, got shapes {[np.shape(leaf) for leaf in leaves]}")
    return sizes.pop()


class Problem:
    """The network, loss, parameters (a flat vector over the chosen block), dataset and
    communicator of a curvature computation. ``batches()`` yields (batch, weight n_b / N)."""

    def __init__(self, model: Any, params: Any, data: Any, batch_size: int | None = None,
                 block: Any = None, comm: Any = None, who: str = "curvature") -> None:
        self.who = who
        self.model = model if _is_model(model) else None
        if self.model is not None:
            m = self.model
            if m.loss_fn is None:
                raise ValueError(f"{who}: the model has no loss; call model.compile(loss=...) "
                                 f"first, or pass a pair (net, loss)")
            if params is None:
                params = m.params
            else:  # the model's tree (dicts matched by key); a dataset here is a slip
                try:
                    tree_leaves_like(tree_structure(m.params), params, who, "params")
                except ValueError as e:
                    hint = (" (the data go third, or as data=(x, y); params=None is the "
                            "model's own)" if data is None and isinstance(params, (tuple, list))
                            else "")
                    raise ValueError(f"{e}{hint}") from None
            x, y = self._model_data(data)
            m._resolve_from_logits()
            data = (x, y)
            self.net = lambda p, b: m.forward(p, b[0], state=m.state, training=False)[0]
            self.loss = lambda z, b: m._loss(b[1], z)
        elif isinstance(model, (tuple, list)) and len(model) == 2 and all(map(callable, model)):
            self.net, self.loss = model
        else:
            raise TypeError(f"{who}: expected a compiled pearlnet.Model or a pair (net, loss) "
                            f"of functions net(params, batch) and loss(outputs, batch), got "
                            f"{type(model).__name__}")
        if params is None:
            raise ValueError(f"{who}: pass the parameters (a tree of arrays)")
        self.params, self.data = params, data
        self.n_local = _leading(data, who)
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"{who}: batch_size must be a positive integer or None, got "
                             f"{batch_size!r}")
        self.batch_size = int(batch_size) if batch_size else max(self.n_local, 1)
        from pearlnet.distributed import SingleProcess

        self.comm = SingleProcess() if comm is None else comm
        self.n_total = int(self.comm.allreduce(np.array(self.n_local, np.int64))) \
            if self.comm.size > 1 else self.n_local
        if self.n_total == 0:
            raise ValueError(f"{who}: the dataset holds no cases")
        if block is None:
            self.path: tuple | None = None
            sub = params
        else:
            self.path = tuple(block) if isinstance(block, (tuple, list)) else (block,)
            sub = _get_path(params, self.path, who)
        flat, self.unravel = ravel(sub)
        self.flat = np.asarray(flat)
        if self.flat.dtype.kind != "f":
            raise TypeError(f"{who}: the parameters must be float32 or float64, got "
                            f"{self.flat.dtype}")
        self.dtype = self.flat.dtype

    def _model_data(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        m = self.model
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise ValueError(f"{self.who}: for a Model the dataset is a pair (x, y), got "
                             f"{type(data).__name__}")
        x = m._inputs(data[0], self.who)
        return x.astype(m.dtype, copy=False), m._targets(data[1], len(x), self.who)

    # -- the parameters of the block -------------------------------------------------------------
    def full(self, w: Any) -> Any:
        """The whole parameter tree with the block replaced by ``unravel(w)``."""
        sub = self.unravel(w)
        return sub if self.path is None else _set_path(self.params, self.path, sub)

    def block_net(self, batch: Any) -> Callable:
        return lambda w: self.net(self.full(w), batch)

    def batch_loss(self, batch: Any) -> Callable:
        return lambda z: self.loss(z, batch)

    def objective(self, batch: Any) -> Callable:
        return lambda w: self.loss(self.net(self.full(w), batch), batch)

    # -- the data --------------------------------------------------------------------------------
    def batches(self) -> Iterator[tuple[Any, float]]:
        """(batch, n_b / N) for this rank's batches in order."""
        for lo in range(0, self.n_local, self.batch_size):
            hi = min(lo + self.batch_size, self.n_local)
            yield tree_map(lambda a, lo=lo, hi=hi: a[lo:hi], self.data), (hi - lo) / self.n_total

    @property
    def n_batches(self) -> int:
        return -(-self.n_local // self.batch_size)

    def sum(self, value: Any) -> Any:
        """The sum over the ranks (the value itself in one process)."""
        return self.comm.allreduce(value) if self.comm.size > 1 else value
