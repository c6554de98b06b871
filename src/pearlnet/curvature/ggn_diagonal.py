"""The exact (or Monte Carlo) diagonal of the GGN over a dataset, as BackPACK's DiagGGNExact and
DiagGGNMC compute it.

diag G = sum_b (n_b/N) sum_i sum_c (J_i^T s_ic)^2, s_ic the columns of a square-root factor
of the loss's Hessian in case i's outputs (``likelihoods``): one backward pass per column
(K of them for K outputs per case; ``mc_samples`` of them for the Monte Carlo diagonal, whose
expectation is the exact one).

For a Model whose parameters all sit in Dense and Conv2D layers, each backward pass runs over
the probes of ``TappedNetwork`` and gives every case's sensitivity d at every layer at once;
the squared per-case gradients then follow from the layer inputs a: for Dense,
sum_i a_i^2 (x) d_i^2; for Conv2D, sum_i (sum_p d_ip a_ip^T)^2. Any other network (a pair
(net, loss), or a Model with other parameterised layers) takes every case's J_i^T s_ic at
once with ``vmap`` over the cases of one backward pass (one batched pass per column: memory
n x P per batch), or, when the network applies a primitive with no batching rule, case by
case (one recorded forward pass and K backward passes per case: exact but slow).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearlnet.autodiff import vjp

from .layers import TappedNetwork
from .likelihoods import likelihood_of
from .operators import _checked_mc
from .problem import Problem, as_rng

__all__ = ["diag_ggn"]


def _columns(lik: Any, z: np.ndarray, batch: Any, loss: Any, mc: int, rng: Any) -> list:
    if mc == 0:
        return list(lik.sqrt_columns(z, batch, loss))
    s = lik.sample_factor(z, batch, loss, rng, mc)
    return [np.ascontiguousarray(s[:, :, j]).reshape(z.shape) for j in range(mc)]


def diag_ggn(model: Any, params: Any = None, data: Any = None, *, mc_samples: int = 0,
             seed: Any = 0, likelihood: str | None = None, batch_size: int | None = None,
             comm: Any = None) -> np.ndarray:
    """diag G as a flat vector in ``ravel(params)`` order: exact (``mc_samples=0``: K backward
    passes per batch, K the outputs per case) or the Monte Carlo estimate from
    ``mc_samples`` sampled factors per case (drawn from ``seed``). Arguments as
    ``ggn_operator``; ``comm`` sums the ranks' shares."""
    who = "diag_ggn"
    mc = _checked_mc(mc_samples, who)
    problem = Problem(model, params, data, batch_size, None, comm, who)
    lik = likelihood_of(problem, likelihood, who)
    rng = as_rng(seed, who)
    tapped = None
    if problem.model is not None:
        tapped = TappedNetwork(problem.model, problem.params)
        if tapped.uncovered:
            tapped = None
    total = np.zeros(problem.flat.size, dtype=np.float64)
    for batch, weight in problem.batches():
        if tapped is not None:
            total += weight * _tapped_batch(problem, tapped, lik, batch, mc, rng)
        else:
            total += weight * _per_case(problem, lik, batch, mc, rng)
    return problem.sum(total).astype(problem.dtype)


def _tapped_batch(problem: Problem, tapped: TappedNetwork, lik: Any, batch: Any, mc: int,
                  rng: Any) -> np.ndarray:
    x = batch[0]
    params = problem.params
    inputs: dict = {}
    probes = tapped.zero_probes(len(x), problem.dtype)
    z, pullback = vjp(lambda pr: tapped.forward(params, x, pr, inputs), probes)
    z = np.asarray(z)
    rows = {info.name: tapped.input_rows(info, inputs[info.name]) for info in tapped.covered}
    out = np.zeros(problem.flat.size)
    acc = {info.name: np.zeros((info.in_dim, info.out_dim) if info.kind == "dense"
                               else (info.out_dim, info.in_dim)) for info in tapped.covered}
    for col in _columns(lik, z, batch, problem.batch_loss(batch), mc, rng):
        sens = pullback(col)[0]
        for info in tapped.covered:
            a, positions = rows[info.name]
            d = tapped.sensitivity_rows(info, sens[info.name]).astype(np.float64)
            a = a.astype(np.float64)
            if info.kind == "dense":
                acc[info.name] += (a * a).T @ (d * d)
            else:
                n = len(x)
                g = np.einsum("npo,npk->nok", d.reshape(n, positions, -1),
                              a.reshape(n, positions, -1))
                acc[info.name] += np.einsum("nok,nok->ok", g, g)
    for info in tapped.covered:
        out[info.start:info.stop] = info.from_matrix(acc[info.name])
    return out


def _per_case(problem: Problem, lik: Any, batch: Any, mc: int, rng: Any) -> np.ndarray:
    """sum_i sum_c (J_i^T s_ic)^2 for one batch: every case's pullback at once (vmap)."""
    import pearlnet.numpy as pnp
    from pearlnet.autodiff import tree_map, vmap

    z = np.asarray(problem.block_net(batch)(problem.flat))
    cols = _columns(lik, z, batch, problem.batch_loss(batch), mc, rng)

    def pull(case: Any, s: Any) -> Any:
        one = tree_map(lambda a: pnp.expand_dims(a, 0), case)
        _, pullback = vjp(problem.block_net(one), problem.flat)
        return pullback(pnp.expand_dims(s, 0))[0]

    out = np.zeros(problem.flat.size)
    try:
        for col in cols:
            g = np.asarray(vmap(pull)(batch, col), dtype=np.float64)
            out += np.einsum("np,np->p", g, g)
    except NotImplementedError:  # a primitive without a batching rule: one case at a time
        return _case_by_case(problem, lik, batch, mc, rng, cols)
    return out


def _case_by_case(problem: Problem, lik: Any, batch: Any, mc: int, rng: Any,
                  cols: list | None = None) -> np.ndarray:
    from pearlnet.autodiff import tree_map

    net = problem.block_net(batch)
    z = np.asarray(net(problem.flat))
    if cols is None:
        cols = _columns(lik, z, batch, problem.batch_loss(batch), mc, rng)
    out = np.zeros(problem.flat.size)
    for i in range(len(z)):
        case = tree_map(lambda a, i=i: a[i:i + 1], batch)
        _, pullback = vjp(problem.block_net(case), problem.flat)
        for col in cols:
            g = np.asarray(pullback(col[i:i + 1])[0], dtype=np.float64)
            out += g * g
    return out
