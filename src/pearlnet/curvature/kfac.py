"""K-FAC: Kronecker-factored approximate curvature for Dense and Conv2D layers (Martens & Grosse
2015; KFC for convolutions, Grosse & Martens 2016).

For a layer u = a W (+ b) the GGN/Fisher block of its parameters is
(1/N) sum_i sum_c (a_i a_i^T) (x) (d_ic d_ic^T), d_ic the sensitivity of u_i to column c of
the loss Hessian's square-root factor. K-FAC replaces the mean of products by the product of
means:

    A = (1/N) sum_i sum_p a_ip a_ip^T            (inputs, a 1 appended for the bias)
    B = (1/(N P)) sum_i sum_p sum_c d_icp d_icp^T (output sensitivities)

with P the positions of a convolution (1 for Dense; KFC's Omega and Gamma: Grosse & Martens
2016, section 3). Both are *means* over cases, so A (x) B approximates the curvature of the
mean loss (the scale of ``ggn_operator``, curvlinops' ``loss_average="batch"``).

Kronecker order (``LayerInfo`` in ``layers``): pearlnet's Dense W is (in, out) and ``ravel``
stores [W; b] row by row, so the block is **A (x) B** and applies as A V B with V the
(in + 1, out) matrix; Conv2D's W is (out, C, kh, kw), stored as the (out, C kh kw + 1) matrix
[W_mat, b], so its block is **B (x) A**, applied as B V A (PyTorch's and curvlinops' order for
both, since their weights are (out, in)).

``fisher_type`` names what d backpropagates, as curvlinops names it:
"type-2" (the exact expectation: every column of the loss Hessian's square root, K backward
passes), "mc" (``mc_samples`` sampled columns, the Monte Carlo Fisher, one backward pass each)
and "empirical" (the gradient of each case's loss: the empirical Fisher).

Damping and inverses: ``inverse(damping)`` gives M&G's factored Tikhonov damping,
(A + pi sqrt(lambda) I)^-1 (x) (B + sqrt(lambda)/pi I)^-1 with
pi = sqrt((tr A / dim A) / (tr B / dim B)) (section 6.3), or with ``heuristic=False`` the
exact (A (x) B + lambda I)^-1 through the factors' eigendecompositions.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.sparse.linalg import LinearOperator

from pearlnet.autodiff import value_and_grad, vjp

from .layers import LayerInfo, TappedNetwork
from .likelihoods import Likelihood, likelihood_of
from .problem import Problem, as_rng

__all__ = ["FISHER_TYPES", "KFAC", "KFACPreconditioner", "KroneckerFactors",
           "batch_statistics"]

FISHER_TYPES = ("type-2", "mc", "empirical")


def check_fisher_type(fisher_type: str, mc_samples: Any, who: str) -> int:
    if fisher_type not in FISHER_TYPES:
        raise ValueError(f"{who}: fisher_type must be one of {FISHER_TYPES}, got "
                         f"{fisher_type!r}")
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or \
            mc_samples < 1:
        raise ValueError(f"{who}: mc_samples must be a positive integer, got {mc_samples!r}")
    return int(mc_samples)


def batch_statistics(tapped: TappedNetwork, params: dict, x: Any, loss: Callable,
                     lik: Likelihood, fisher_type: str, mc_samples: int,
                     rng: np.random.Generator, gradient: bool = False
                     ) -> tuple[dict, float, Any]:
    """One batch's K-FAC factors {name: (A, B)} (batch means), the batch loss, and (with
    ``gradient``) the loss's gradient in the parameters, from one recorded forward pass: a
    backward pass for the gradient and one per column of ``fisher_type``."""
    n = len(x)
    dtype = np.asarray(x).dtype
    inputs: dict = {}
    probes = tapped.zero_probes(n, dtype)
    if gradient:
        z, pull = vjp(lambda p, pr: tapped.forward(p, x, pr, inputs), params, probes)
    else:
        z, pull_probes = vjp(lambda pr: tapped.forward(params, x, pr, inputs), probes)

        def pull(ct):
            return None, pull_probes(ct)[0]
    z = np.asarray(z)
    value, gz = value_and_grad(loss)(z)
    gz = np.asarray(gz)
    grads = None
    sens_list = []
    if gradient:
        grads, sens = pull(gz)
        if fisher_type == "empirical":
            sens_list.append({k: np.asarray(v) * np.sqrt(n) for k, v in sens.items()})
    if fisher_type == "type-2":
        cols = list(lik.sqrt_columns(z, None, loss))
    elif fisher_type == "mc":
        s = lik.sample_factor(z, None, loss, rng, mc_samples)
        cols = [np.ascontiguousarray(s[:, :, j]).reshape(z.shape) for j in range(mc_samples)]
    else:
        cols = [] if sens_list else [gz * np.sqrt(n)]
    sens_list += [pull(c)[1] for c in cols]
    factors = {}
    for info in tapped.covered:
        rows, positions = tapped.input_rows(info, inputs[info.name])
        rows = rows.astype(np.float64)
        a = rows.T @ rows / n
        b = np.zeros((info.out_dim, info.out_dim))
        for sens in sens_list:
            d = tapped.sensitivity_rows(info, sens[info.name]).astype(np.float64)
            b += d.T @ d
        factors[info.name] = (a, b / positions)
    return factors, float(value), grads


class KroneckerFactors:
    """Per covered layer the pair (A, B) (float64), the layout of the flat parameters, and the
    products with A (x) B, its damped inverse, and their dense forms."""

    def __init__(self, tapped: TappedNetwork, factors: dict, dtype: Any) -> None:
        self.tapped, self.factors, self.dtype = tapped, factors, np.dtype(dtype)
        self.size = tapped.size
        self._work: dict | None = None  # the factors in ``dtype``, for products

    def _apply(self, v: np.ndarray, fn: Callable[[LayerInfo, np.ndarray], np.ndarray],
               dtype: Any = np.float64) -> np.ndarray:
        v = np.asarray(v, dtype=dtype).reshape(-1)
        out = np.zeros_like(v)
        for info in self.tapped.covered:
            out[info.start:info.stop] = info.from_matrix(fn(info, info.to_matrix(v)))
        return out

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """(A (x) B) v blockwise, in ``dtype`` (float32 factors for a float32 model: the
        products are (in x in)(in x out)(out x out) matrix products, twice as fast)."""
        if self._work is None:
            self._work = {k: (a.astype(self.dtype), b.astype(self.dtype))
                          for k, (a, b) in self.factors.items()}

        def block(info, m):
            a, b = self._work[info.name]
            return a @ m @ b if info.kind == "dense" else b @ m @ a
        return self._apply(v, block, self.dtype)

    def inverses(self, damping: float, heuristic: bool = True) -> dict:
        """Per layer what ``solve`` applies: (inv(A + pi gamma I), inv(B + gamma/pi I)) with
        gamma = sqrt(damping), or (Q_A, lam_A, Q_B, lam_B) for the exact damped inverse."""
        out = {}
        for name, (a, b) in self.factors.items():
            if heuristic:
                gamma = np.sqrt(damping)
                ta, tb = np.trace(a) / len(a), np.trace(b) / len(b)
                pi = np.sqrt(ta / tb) if ta > 0 and tb > 0 else 1.0
                out[name] = ("pi", np.linalg.inv(a + pi * gamma * np.eye(len(a))),
                             np.linalg.inv(b + gamma / pi * np.eye(len(b))))
            else:
                la, qa = np.linalg.eigh(a)
                lb, qb = np.linalg.eigh(b)
                out[name] = ("exact", qa, la, qb, lb, float(damping))
        return out

    def solve(self, r: np.ndarray, inverses: dict) -> np.ndarray:
        def block(info, m):
            inv = inverses[info.name]
            if inv[0] == "pi":
                ia, ib = inv[1], inv[2]
                return ia @ m @ ib if info.kind == "dense" else ib @ m @ ia
            _, qa, la, qb, lb, lam = inv
            if info.kind == "dense":
                return qa @ ((qa.T @ m @ qb) / (np.outer(la, lb) + lam)) @ qb.T
            return qb @ ((qb.T @ m @ qa) / (np.outer(lb, la) + lam)) @ qa.T
        return self._apply(r, block)


class KFAC(LinearOperator):
    """The K-FAC approximation of a Model's GGN/Fisher over a dataset, as a (P, P)
    LinearOperator (block-diagonal: one A (x) B block per Dense or Conv2D layer; see the
    module docstring for the order and scaling).

    ``KFAC(model, params, (x, y), fisher_type="mc", mc_samples=1, seed=0, batch_size=None,
    comm=None)``: the factors are means over the whole dataset (batch b weighted n_b / N,
    summed over the ranks of ``comm``). ``factors`` holds {layer name: (A, B)};
    ``inverse(damping, heuristic=True)`` is the damped inverse as a LinearOperator. Every
    parameter of the model must sit in a Dense or Conv2D layer.

    On one Dense layer with squared error, ``KFAC(..., fisher_type="type-2")`` is the exact
    GGN (the inputs do not depend on the parameters and the loss Hessian is c I).
    """

    def __init__(self, model: Any, params: Any = None, data: Any = None, *,
                 fisher_type: str = "mc", mc_samples: int = 1, seed: Any = 0,
                 likelihood: str | None = None, batch_size: int | None = None,
                 comm: Any = None) -> None:
        who = "KFAC"
        mc = check_fisher_type(fisher_type, mc_samples, who)
        problem = Problem(model, params, data, batch_size, None, comm, who)
        if problem.model is None:
            raise TypeError(f"{who}: needs a pearlnet.Model (its Dense and Conv2D layers), "
                            f"got a pair of functions")
        tapped = TappedNetwork(problem.model, problem.params)
        tapped.require_all_covered(who)
        lik = likelihood_of(problem, likelihood, who)
        rng = as_rng(seed, who)
        total: dict = {}
        for batch, weight in problem.batches():
            stats, _, _ = batch_statistics(tapped, problem.params, batch[0],
                                           problem.batch_loss(batch), lik, fisher_type, mc,
                                           rng)
            for name, (a, b) in stats.items():
                if name in total:
                    total[name] = (total[name][0] + weight * a, total[name][1] + weight * b)
                else:
                    total[name] = (weight * a, weight * b)
        total = problem.sum(total)
        self.fisher_type, self.mc_samples = fisher_type, mc
        self.kron = KroneckerFactors(tapped, {k: tuple(v) for k, v in total.items()},
                                     problem.dtype)
        self.factors = self.kron.factors
        n = problem.flat.size
        super().__init__(dtype=problem.dtype, shape=(n, n))

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self.kron.matvec(v).astype(self.dtype)

    def _rmatvec(self, v: np.ndarray) -> np.ndarray:
        return self._matvec(v)

    def _adjoint(self) -> KFAC:
        return self

    def inverse(self, damping: float, heuristic: bool = True) -> LinearOperator:
        """(A (x) B + damping)^-1 as a LinearOperator: M&G's factored damping with pi
        (``heuristic``) or the exact inverse of the damped Kronecker product."""
        inverses = self.kron.inverses(float(damping), heuristic)
        n = self.shape[0]
        return LinearOperator((n, n), dtype=self.dtype,
                              matvec=lambda r: self.kron.solve(r, inverses).astype(self.dtype),
                              rmatvec=lambda r: self.kron.solve(r, inverses).astype(self.dtype))

    def to_dense(self) -> np.ndarray:
        return self @ np.eye(self.shape[1], dtype=self.dtype)


class KFACPreconditioner:
    """``HessianFree(preconditioner=KFACPreconditioner(model))``: M = blockdiag
    (A + pi gamma I) (x) (B + gamma/pi I) approximates G + lambda I layer by layer (Martens &
    Grosse 2015, sections 3 and 6.3), gamma = sqrt(lambda + floor).

    Called by HessianFree once per outer step as ``(params, batch, lam, comm=None) -> solve``
    on the gradient batch: the factors come from its first ``cases`` cases (under ``comm`` each
    rank's first ``cases`` of its share, weighted by the shares and summed), ``fisher_type``
    "mc" with one sample by default (a Gauss-Newton sample at the outputs), and are running
    averages with ``decay``; the inverses are renewed every ``every`` calls with that call's
    lambda, and ``solve(r)`` = M^-1 r on the flat residual. ``targets(batch) -> (x, y)``
    splits HessianFree's batch (default: a pair (x, y) as Model.fit passes it; an
    autoencoder's batch of inputs is ``targets=lambda x: (x, x)``).
    """

    def __init__(self, model: Any, cases: int = 200, decay: float = 0.95,
                 floor: float = 1e-4, every: int = 5, fisher_type: str = "mc",
                 mc_samples: int = 1, seed: Any = 0,
                 targets: Callable[[Any], tuple] | None = None) -> None:
        who = "KFACPreconditioner"
        self.mc = check_fisher_type(fisher_type, mc_samples, who)
        self.model, self.cases, self.decay, self.floor = model, int(cases), float(decay), \
            float(floor)
        self.every, self.fisher_type, self.targets = int(every), fisher_type, targets
        if not 0 <= self.decay < 1 or self.cases < 1 or self.every < 1 or self.floor < 0:
            raise ValueError(f"{who}: expected cases >= 1, 0 <= decay < 1, floor >= 0, "
                             f"every >= 1; got {cases}, {decay}, {floor}, {every}")
        self.seed = seed
        self.rng: np.random.Generator | None = None
        self.factors: dict = {}
        self.inverses: dict = {}
        self.calls = 0

    def _split(self, batch: Any) -> tuple:
        if self.targets is not None:
            return self.targets(batch)
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        raise ValueError("KFACPreconditioner: expected HessianFree's batch as a pair (x, y); "
                         "for another batch pass targets=lambda batch: (x, y)")

    def __call__(self, params: Any, batch: Any, lam: float, comm: Any = None) -> Callable:
        model = self.model
        tapped = TappedNetwork(model, params)
        tapped.require_all_covered("KFACPreconditioner")
        x, y = self._split(batch)
        x, y = x[:self.cases], y[:self.cases]
        if self.rng is None:
            seed = self.seed if comm is None or comm.size == 1 else [self.seed, comm.rank]
            self.rng = self.seed if isinstance(self.seed, np.random.Generator) \
                else np.random.default_rng(seed)
        lik = likelihood_of(_ModelOnly(model), None, "KFACPreconditioner")
        m = len(x)
        if m:
            new, _, _ = batch_statistics(tapped, params, x, lambda z: model._loss(y, z), lik,
                                         self.fisher_type, self.mc, self.rng)
        else:
            new = {info.name: (np.zeros((info.in_dim,) * 2), np.zeros((info.out_dim,) * 2))
                   for info in tapped.covered}
        if comm is not None and comm.size > 1:
            total = comm.allreduce(np.array(m, np.int64))
            new = comm.allreduce(new, scale=m / max(int(total), 1))
        if self.factors:
            self.factors = {k: (self.decay * a + (1 - self.decay) * new[k][0],
                                self.decay * b + (1 - self.decay) * new[k][1])
                            for k, (a, b) in self.factors.items()}
        else:
            self.factors = {k: tuple(v) for k, v in new.items()}
        kron = KroneckerFactors(tapped, self.factors, np.float64)
        if self.calls % self.every == 0 or not self.inverses:
            inv = kron.inverses(lam + self.floor, heuristic=True)
            dtype = np.asarray(x).dtype
            self.inverses = {k: (v[0], v[1].astype(dtype), v[2].astype(dtype))
                             for k, v in inv.items()}
        self.calls += 1
        inverses = self.inverses

        def solve(r: np.ndarray) -> np.ndarray:
            out = np.empty_like(r)
            for info in tapped.covered:
                _, ia, ib = inverses[info.name]
                m_ = info.to_matrix(r)
                u = ia @ m_ @ ib if info.kind == "dense" else ib @ m_ @ ia
                out[info.start:info.stop] = info.from_matrix(u)
            return out

        return solve


class _ModelOnly:
    def __init__(self, model: Any) -> None:
        self.model = model
