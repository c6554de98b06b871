"""Curvature matrices of a network's loss over a whole dataset, as SciPy ``LinearOperator``s.

One operator per curvature (curvlinops' design), each of shape (P, P) over the flat
parameters of the chosen block (``ravel`` order) and of the parameters' dtype (float32 or
float64), so SciPy's solvers (``eigsh``, ``cg``, ``minres``) and pearlnet's estimators take
any of them unchanged:

- ``hessian_operator``: H = sum_b (n_b/N) H_b, H_b the Hessian of batch b's mean loss;
- ``ggn_operator``: G = sum_b (n_b/N) J_b^T H_L J_b (the generalised Gauss-Newton matrix;
  H_L the loss's Hessian in the outputs); with ``mc_samples=k > 0`` the Monte Carlo Fisher:
  H_L replaced by (1/k) sum_s s s^T, s sampled so that E[s s^T] = H_L (for the library's
  likelihoods the gradient of the loss at a target drawn from the model's predictive
  distribution, as BackPACK and curvlinops do; see ``likelihoods``);
- ``empirical_fisher_operator``: F = (1/N) sum_i g_i g_i^T, g_i the gradient of case i's own
  loss (curvlinops' ``EFLinearOperator``);
- ``jacobian_operator``: J, the (N * outputs, P) Jacobian of the network's outputs (cases in
  data order, each case's outputs flattened), with J^T as ``rmatvec``.

How: the dataset is walked in batches; for each batch the forward pass is recorded once
(``hvp_operator`` and ``gauss_newton_operator``: each product is then an R-forward walk over
the tape and a backward walk) and the recorded batches are kept (``cache=True``), so a product
costs about two gradients of the whole dataset. With ``cache=False`` nothing is kept and every
product records each batch again (``matmat`` records each batch once for all its columns).
The Fisher variants apply their middle matrix as the Hessian of a quadratic in the outputs,
so they reuse ``gauss_newton_operator`` as it is.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.sparse.linalg import LinearOperator

import pearlnet.numpy as pnp
from pearlnet.autodiff import (
    gauss_newton_operator,
    grad,
    hvp_operator,
    linearize,
    strip,
    tree_flatten,
    vjp,
)

from .likelihoods import likelihood_of
from .problem import Problem, as_rng

__all__ = ["CurvatureOperator", "hessian_operator", "ggn_operator",
           "empirical_fisher_operator", "jacobian_operator"]


class CurvatureOperator(LinearOperator):
    """A symmetric (P, P) operator sum_b w_b C_b over a dataset's batches (summed over the
    ranks of ``comm``). ``products`` counts the matrix-vector products applied (a matmat of
    k columns counts k); ``on_product(count)``, when set, is called after each (progress)."""

    def __init__(self, problem: Problem, make: Callable[[Any], Callable], cache: bool,
                 name: str) -> None:
        self.problem, self._make, self.cache, self.name = problem, make, bool(cache), name
        self._made: list | None = None
        self.products = 0
        self.on_product: Callable[[int], None] | None = None
        n = problem.flat.size
        super().__init__(dtype=problem.dtype, shape=(n, n))

    def _per_batch(self):
        if not self.cache:
            for batch, weight in self.problem.batches():
                yield self._make(batch), weight
            return
        if self._made is None:
            self._made = [(self._make(batch), weight) for batch, weight in
                          self.problem.batches()]
        yield from self._made

    def _matmat(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v)
        if v.ndim == 1:
            v = v[:, None]
        v = v.astype(self.dtype, copy=False)
        out = np.zeros(v.shape, dtype=self.dtype)
        for product, weight in self._per_batch():
            for j in range(v.shape[1]):
                out[:, j] += weight * np.asarray(product(np.ascontiguousarray(v[:, j])))
        out = self.problem.sum(out)
        for _ in range(v.shape[1]):
            self.products += 1
            if self.on_product is not None:
                self.on_product(self.products)
        return out

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(v, (-1, 1)))[:, 0]

    def _rmatvec(self, v: np.ndarray) -> np.ndarray:
        return self._matvec(v)

    def _rmatmat(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(v)

    def _adjoint(self) -> CurvatureOperator:
        return self

    _transpose = _adjoint

    def to_dense(self) -> np.ndarray:
        """The (P, P) matrix, one product per column: for small problems and tests."""
        return self @ np.eye(self.shape[1], dtype=self.dtype)

    def __repr__(self) -> str:
        p = self.problem
        return (f"<{self.name} {self.shape[0]}x{self.shape[1]} {self.dtype} over {p.n_total} "
                f"cases in batches of {p.batch_size}>")


def _checked_mc(mc_samples: Any, who: str) -> int:
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or \
            mc_samples < 0:
        raise ValueError(f"{who}: mc_samples must be an integer >= 0 (0: exact), got "
                         f"{mc_samples!r}")
    return int(mc_samples)


def hessian_operator(model: Any, params: Any = None, data: Any = None, *,
                     batch_size: int | None = None, block: Any = None, comm: Any = None,
                     cache: bool = True) -> CurvatureOperator:
    """H, the Hessian of the mean loss over ``data`` (see the module docstring).

    ``model``: a compiled Model (``data`` = (x, y); ``params`` defaults to model.params) or a
    pair (net, loss). ``block``: a path into the parameters (a layer name, or a tuple such as
    ``("encoder", 0)``; ``layer_blocks(params)`` lists them): the operator is then that block's
    diagonal block of H. Cost per product: about two gradients of the dataset (the R-forward
    and R-backward passes over the recorded ``grad``).

    >>> import numpy as np, pearlnet.numpy as pnp
    >>> net = lambda p, x: x @ p
    >>> loss = lambda z, x: 0.5 * pnp.sum(z ** 2) / len(x)
    >>> x = np.eye(3)
    >>> H = hessian_operator((net, loss), np.zeros(3), x)
    >>> np.allclose(H @ np.ones(3), np.ones(3) / 3)
    True
    """
    problem = Problem(model, params, data, batch_size, block, comm, "hessian_operator")

    def make(batch: Any) -> Callable:
        return hvp_operator(problem.objective(batch), problem.flat)

    return CurvatureOperator(problem, make, cache, "hessian_operator")


def _quadratic(middle: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """A function of the outputs z whose Hessian is the per-case matrix M that ``middle``
    builds (once, from the outputs' values) as factors S of shape (n, K, k): 1/2 sum_i
    |S_i^T z_i|^2, so its Hessian is sum_i S_i S_i^T (a block per case)."""
    cache: dict = {}

    def q(z: Any) -> Any:
        if "s" not in cache:
            cache["s"] = middle(np.asarray(strip(z)))
        s = cache["s"]
        n = pnp.shape(z)[0]
        c = pnp.sum(pnp.reshape(z, (n, -1, 1)) * s, axis=1)
        return 0.5 * pnp.sum(c * c)

    return q


def ggn_operator(model: Any, params: Any = None, data: Any = None, *, mc_samples: int = 0,
                 seed: Any = 0, likelihood: str | None = None, batch_size: int | None = None,
                 block: Any = None, comm: Any = None, cache: bool = True
                 ) -> CurvatureOperator:
    """G = sum_b (n_b/N) J_b^T H_L J_b, the generalised Gauss-Newton matrix (positive
    semi-definite for a convex loss); with ``mc_samples=k`` the Monte Carlo Fisher, H_L
    replaced per case by the mean of k sampled s s^T with E[s s^T] = H_L (drawn once per
    batch from ``seed``, so the operator is one fixed symmetric matrix).

    ``likelihood`` (for a pair (net, loss); a Model's is read from its loss): "gaussian",
    "categorical" (logits), "bernoulli" (logits) or None (the loss's exact per-case Hessian,
    sampled as N(0, H_L)). Arguments otherwise as ``hessian_operator``. Cost per product:
    one R-forward walk and one backward walk over each recorded batch (about a gradient and
    a half).
    """
    who = "ggn_operator"
    mc = _checked_mc(mc_samples, who)
    problem = Problem(model, params, data, batch_size, block, comm, who)
    if mc == 0:
        def make(batch: Any) -> Callable:
            return gauss_newton_operator(problem.block_net(batch), problem.batch_loss(batch),
                                         problem.flat)

        return CurvatureOperator(problem, make, cache, who)
    lik = likelihood_of(problem, likelihood, who)
    rng = as_rng(seed, who)
    draws: dict[int, np.ndarray] = {}  # batch b's draw, kept: cache=False reuses it
    counter = [0]

    def make_mc(batch: Any) -> Callable:
        b = counter[0] % problem.n_batches
        counter[0] += 1

        def middle(z: np.ndarray) -> np.ndarray:
            if b not in draws:
                draws[b] = lik.sample_factor(z, batch, problem.batch_loss(batch), rng, mc)
            return draws[b]

        return gauss_newton_operator(problem.block_net(batch), _quadratic(middle),
                                     problem.flat)

    return CurvatureOperator(problem, make_mc, cache, f"{who}(mc_samples={mc})")


def empirical_fisher_operator(model: Any, params: Any = None, data: Any = None, *,
                              batch_size: int | None = None, block: Any = None,
                              comm: Any = None, cache: bool = True) -> CurvatureOperator:
    """F = (1/N) sum_i g_i g_i^T, g_i the gradient of case i's loss ell_i (the batch loss is
    the mean of the ell_i): the uncentred gradient covariance ("empirical Fisher"). Applied as
    J^T M J with M_i = r_i r_i^T / N, r_i = d ell_i / d z_i, so no per-case gradient is
    formed. Arguments as ``hessian_operator``; cost per product as ``ggn_operator``."""
    who = "empirical_fisher_operator"
    problem = Problem(model, params, data, batch_size, block, comm, who)

    def make(batch: Any) -> Callable:
        loss = problem.batch_loss(batch)

        def middle(z: np.ndarray) -> np.ndarray:
            n = len(z)
            g = np.asarray(grad(loss)(z)).reshape(n, -1, 1)
            # the batch loss's gradient is r_i / n; the weight n/N is applied outside
            return g * np.sqrt(n)

        return gauss_newton_operator(problem.block_net(batch), _quadratic(middle),
                                     problem.flat)

    return CurvatureOperator(problem, make, cache, who)


class JacobianOperator(LinearOperator):
    """J: (N * K, P), the outputs' Jacobian over the dataset (see ``jacobian_operator``)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self._fwd: list | None = None
        self._bwd: list | None = None
        batch0 = next(problem.batches())[0]
        out = np.asarray(problem.block_net(_first_case(batch0))(problem.flat))
        self.outputs_per_case = int(np.prod(out.shape[1:], dtype=np.int64))
        comm = problem.comm
        self.counts = comm.allgather(problem.n_local) if comm.size > 1 else [problem.n_local]
        self.offset = sum(self.counts[:comm.rank]) * self.outputs_per_case
        rows = problem.n_total * self.outputs_per_case
        super().__init__(dtype=problem.dtype, shape=(rows, problem.flat.size))

    def _forward(self) -> list:
        if self._fwd is None:
            self._fwd = [linearize(self.problem.block_net(b), self.problem.flat)[1]
                         for b, _ in self.problem.batches()]
        return self._fwd

    def _backward(self) -> list:
        if self._bwd is None:
            self._bwd = [vjp(self.problem.block_net(b), self.problem.flat)
                         for b, _ in self.problem.batches()]
        return self._bwd

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=self.dtype).reshape(-1)
        parts = [np.asarray(f(v)).reshape(-1) for f in self._forward()]
        local = np.concatenate(parts) if parts else np.zeros(0, self.dtype)
        comm = self.problem.comm
        return comm.allgather_rows(local) if comm.size > 1 else local

    def _rmatvec(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=self.dtype).reshape(-1)
        at, out = self.offset, np.zeros(self.problem.flat.size, self.dtype)
        for outputs, pullback in self._backward():
            size = np.size(outputs)
            out += np.asarray(pullback(u[at:at + size].reshape(np.shape(outputs)))[0])
            at += size
        return self.problem.sum(out)


def _first_case(batch: Any) -> Any:
    """The first case of a batch (for the outputs' shape)."""
    leaves, treedef = tree_flatten(batch)
    from pearlnet.autodiff import tree_unflatten

    return tree_unflatten(treedef, [leaf[:1] for leaf in leaves])


def jacobian_operator(model: Any, params: Any = None, data: Any = None, *,
                      batch_size: int | None = None, block: Any = None,
                      comm: Any = None) -> JacobianOperator:
    """J, the Jacobian of the network's outputs over the dataset: shape (N * K, P), K the
    outputs per case; row i * K + k is output k of case i (data order; under ``comm`` the
    ranks' shares in rank order). ``matvec`` is J v (forward mode over each batch's recorded
    forward pass), ``rmatvec`` J^T u (a backward walk per batch). Not scaled by 1/N."""
    problem = Problem(model, params, data, batch_size, block, comm, "jacobian_operator")
    return JacobianOperator(problem)
