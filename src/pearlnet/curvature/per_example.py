"""Per-example quantities: each case's own gradient, its norm, and the gradient's first two
moments over the data (BackPACK's BatchGrad, BatchL2Grad, SumGradSquared and Variance;
Dangel, Kunstner & Hennig 2020).

Conventions. The loss of a batch is the mean of per-case losses ell_i (every pearlnet loss
is; see ``problem``). Here g_i = d ell_i / d params is the gradient of case i's *own* loss, the
loss of a batch holding that case alone, so the data's gradient is their mean (1/N) sum_i g_i.
(BackPACK, differentiating a mean over a batch of n, reports g_i / n instead; multiply by n
to compare.)

How. ``per_example_grads`` is ``vmap(grad(ell), in_axes=(None, 0))`` over each batch: one
batched forward and backward pass, no Python loop over cases. ``per_example_grad_norms``
forms no gradient for Dense layers: with y = a W + b and g_i = d ell_i / d u_i the signal
backpropagated to the layer's output u, d ell_i / dW = a_i^T g_i, so ||d ell_i / dW||^2 =
||a_i||^2 ||g_i||^2 and the bias's is ||g_i||^2 (Goodfellow 2015, "Efficient per-example
gradient computations"); a and g come from the probes of ``TappedNetwork`` (one forward and one
backward pass per batch, as K-FAC uses them). Other layers' norms come from their vmapped
gradients.

Examples must not interact: a Model in training mode with BatchNorm normalises each case with
its batch's statistics, so a case's gradient would depend on the others; it is refused.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.autodiff import (
    grad,
    tree_flatten,
    tree_leaves_like,
    tree_map,
    tree_unflatten,
    vjp,
    vmap,
)

from .layers import TappedNetwork
from .problem import Problem

__all__ = ["per_example_grads", "per_example_grad_norms", "gradient_moments",
           "GradientMoments"]


class GradientMoments(NamedTuple):
    """Trees shaped like the parameters: ``mean`` = (1/N) sum_i g_i (the data's gradient),
    ``second_moment`` = (1/N) sum_i g_i^2 (entrywise), ``variance`` = (1/N) sum_i
    (g_i - mean)^2 = second_moment - mean^2, and the number of cases ``n``."""

    mean: Any
    second_moment: Any
    variance: Any
    n: int


def _layers_of(layers: Any, kind: type) -> list[str]:
    found = []
    for layer in layers:
        if isinstance(layer, kind) and getattr(layer, "p", 1) > 0:
            found.append(layer.name)
        found += _layers_of(getattr(layer, "layers", []), kind)
    return found


def _problem(model: Any, params: Any, data: Any, batch_size: Any, training: Any,
             who: str, comm: Any = None) -> Problem:
    """The Problem, refusing a Model whose training-mode forward pass mixes the cases."""
    problem = Problem(model, params, data, batch_size, None, comm, who)
    m = problem.model
    if m is None:
        return problem
    training = bool(getattr(m, "training", False)) if training is None else bool(training)
    if training:
        from pearlnet.nn.layers import BatchNorm, Dropout

        mixing = _layers_of(m.layers, BatchNorm)
        if mixing:
            raise ValueError(f"{who}: the model is in training mode and has BatchNorm layers "
                             f"{mixing}; BatchNorm in training normalises each case with the "
                             f"batch's mean and variance, which mixes the examples, so a case's "
                             f"gradient depends on the others and per-example quantities are "
                             f"undefined. Use evaluation mode (model.eval() or training=False), "
                             f"where BatchNorm uses its running (inference) statistics")
        dropping = _layers_of(m.layers, Dropout)
        if dropping:  # one mask shared by every case would be no training step's gradient
            raise ValueError(f"{who}: the model is in training mode and has Dropout layers "
                             f"{dropping}; a training step draws one mask per case, which "
                             f"per-example gradients here do not reproduce. Use evaluation mode "
                             f"(model.eval() or training=False)")
        problem.net = lambda p, b: m.forward(p, b[0], state=m.state, training=True, rng=0)[0]
    return problem


def _case_loss(problem: Problem) -> Callable:
    """ell(params, case): the loss of a batch holding one case (the case's arrays get their
    leading axis of length 1 back)."""
    def ell(p: Any, case: Any) -> Any:
        one = tree_map(lambda a: pnp.expand_dims(a, 0), case)
        return problem.loss(problem.net(p, one), one)

    return ell


def _batch_grads(problem: Problem, params: Any, batch: Any, wrt: Any = None) -> Any:
    """Per-case gradients over one batch (of ``wrt``, a sub-dict of the parameters, if given)."""
    ell = _case_loss(problem)
    if wrt is None:
        return vmap(grad(ell), in_axes=(None, 0))(params, batch)

    def ell_sub(sub: Any, case: Any) -> Any:
        return ell({**params, **sub}, case)

    return vmap(grad(ell_sub), in_axes=(None, 0))(wrt, batch)


def per_example_grads(model: Any, params: Any = None, data: Any = None, *,
                      batch_size: int | None = None, training: bool | None = None) -> Any:
    """g_i = d ell_i / d params for every case i of ``data``: a tree shaped like the parameters
    whose leaves have a leading axis of the N cases (BackPACK's BatchGrad times the batch size,
    torch.func's ``vmap(grad)``). ``model``: a compiled Model (data ``(x, y)``) or a pair
    (net, loss) (see ``pearlnet.curvature.problem``); ``params`` default to the model's.

    Computed by ``vmap(grad(ell), in_axes=(None, 0))`` batch by batch (``batch_size`` cases at
    a time; default all): memory N x P numbers. ``training``: run the model's training-mode
    forward pass (default: the model's own mode); refused with BatchNorm, which mixes cases.

    >>> import numpy as np, pearlnet.numpy as pnp
    >>> from pearlnet.curvature import per_example_grads
    >>> net = lambda w, b: b[0] @ w
    >>> loss = lambda z, b: 0.5 * pnp.mean((z - b[1]) ** 2)
    >>> x, y = np.eye(2), np.zeros(2)
    >>> per_example_grads((net, loss), np.ones(2), (x, y))  # row i: (x_i . w - y_i) x_i
    array([[1., 0.],
           [0., 1.]])
    """
    problem = _problem(model, params, data, batch_size, training, "per_example_grads")
    parts = [_batch_grads(problem, problem.params, batch) for batch, _ in problem.batches()]
    if len(parts) == 1:
        return tree_map(np.asarray, parts[0])
    leaves = [tree_flatten(p)[0] for p in parts]
    treedef = tree_flatten(parts[0])[1]
    return tree_unflatten(treedef, [np.concatenate([np.asarray(ls[k]) for ls in leaves])
                                    for k in range(len(leaves[0]))])


def per_example_grad_norms(model: Any, params: Any = None, data: Any = None, *,
                           batch_size: int | None = None, training: bool | None = None,
                           per_layer: bool = False) -> Any:
    """||g_i||_2 for every case i (over all parameters): an array of N norms; with
    ``per_layer``, a dict {layer: N squared norms} (BackPACK's BatchL2Grad, per layer and
    unscaled) whose sum over layers is ||g_i||^2.

    Dense layers of a Model (2-D inputs) use Goodfellow's (2015) identity
    ||d ell_i/dW||^2 + ||d ell_i/db||^2 = (||a_i||^2 + 1) ||s_i||^2, a_i the layer's input and
    s_i the signal backpropagated to its output (from ``TappedNetwork``: one forward and one
    backward pass per batch, no per-case gradient formed); other layers (and a (net, loss)
    pair) from their per-case gradients (``per_example_grads``). Arguments as there."""
    who = "per_example_grad_norms"
    problem = _problem(model, params, data, batch_size, training, who)
    pieces: dict[str, list] = {}
    for batch, _ in problem.batches():
        for name, sq in _batch_sq_norms(problem, batch, training, who).items():
            pieces.setdefault(name, []).append(sq)
    per = {name: np.concatenate(v) for name, v in pieces.items()}
    if per_layer:
        return per
    return np.sqrt(sum(per.values()))


def _tapped(problem: Problem, training: Any) -> TappedNetwork | None:
    m = problem.model
    if m is None or (bool(getattr(m, "training", False)) if training is None else training):
        return None  # the probes run the evaluation-mode forward pass
    return TappedNetwork(m, problem.params)


def _batch_sq_norms(problem: Problem, batch: Any, training: Any, who: str) -> dict:
    """{layer (or "params"): this batch's squared per-case gradient norms}."""
    params = problem.params
    tapped = _tapped(problem, training)
    if tapped is None or not isinstance(params, dict):
        g = _batch_grads(problem, params, batch)
        return {"params": sum(_sq_rows(leaf) for leaf in tree_flatten(g)[0])}
    x, n = batch[0], len(batch[0])
    dtype = problem.dtype
    inputs: dict = {}
    probes = tapped.zero_probes(n, dtype)
    z, pullback = vjp(lambda pr: tapped.forward(params, x, pr, inputs), probes)
    r = grad(problem.batch_loss(batch))(np.asarray(z))
    sens = pullback(r)[0]  # d(batch mean loss)/du_i = (1/n) d ell_i / du_i
    out: dict = {}
    dense = set()
    for info in tapped.covered:
        a, s = np.asarray(inputs[info.name]), np.asarray(sens[info.name]) * n
        if info.kind != "dense" or a.ndim != 2 or s.ndim != 2:
            continue  # a convolution, a Dense on sequences: a sum over positions, formed below
        s2 = np.einsum("ij,ij->i", s, s)
        a2 = np.einsum("ij,ij->i", a, a)
        out[info.name] = s2 * (a2 + (1.0 if info.bias else 0.0))
        dense.add(info.name)
    rest = {k: v for k, v in params.items() if k not in dense and tree_flatten(v)[0]}
    if rest:
        g = _batch_grads(problem, params, batch, wrt=rest)
        for name, sub in g.items():
            out[name] = sum(_sq_rows(leaf) for leaf in tree_flatten(sub)[0])
    return out


def _sq_rows(leaf: Any) -> np.ndarray:
    """Each case's squared norm of a per-case gradient leaf (N, ...)."""
    a = np.asarray(leaf)
    flat = a.reshape(len(a), -1)
    return np.einsum("ij,ij->i", flat, flat)


def gradient_moments(model: Any, params: Any = None, data: Any = None, *,
                     batch_size: int | None = None,
                     training: bool | None = None, comm: Any = None) -> GradientMoments:
    """The per-case gradients' mean (1/N) sum_i g_i, entrywise second moment
    (1/N) sum_i g_i^2 and variance (1/N) sum_i (g_i - mean)^2 over the N cases of ``data``
    (BackPACK's SumGradSquared is second_moment / N for a mean loss over one batch of N; its
    Variance is ``variance``: the population variance, divided by N, not N - 1). The per-case
    gradients of one batch at a time are formed (``per_example_grads``); arguments as there.
    Data-parallel (``comm``, a ``pearlnet.distributed`` communicator): every rank passes its own
    cases, the sums travel in one allreduce, and every rank gets the moments over all N."""
    who = "gradient_moments"
    problem = _problem(model, params, data, batch_size, training, who, comm)
    # accumulated in float64, so that many batches' sums keep float32's digits; from zeros of
    # the parameters' shapes, so that a rank without cases still joins the allreduce
    params, treedef = tree_flatten(problem.params)
    s1 = [np.zeros(np.shape(p), np.float64) for p in params]
    s2 = [np.zeros(np.shape(p), np.float64) for p in params]
    for batch, _ in problem.batches():
        leaves = tree_leaves_like(treedef, _batch_grads(problem, problem.params, batch), who,
                                  "the per-case gradients")
        s1 = [a + np.asarray(g).sum(axis=0, dtype=np.float64) for a, g in zip(s1, leaves)]
        s2 = [a + np.einsum("i...,i...->...", np.asarray(g, np.float64),
                            np.asarray(g, np.float64)) for a, g in zip(s2, leaves)]
    if problem.comm.size > 1:  # one allreduce (per dtype) for both sums
        s1, s2 = problem.comm.allreduce((s1, s2))
    n = problem.n_total
    dtype = problem.dtype
    mean = [(a / n) for a in s1]
    second = [(b / n) for b in s2]
    var = [np.maximum(b - a * a, 0) for a, b in zip(mean, second)]

    def tree(xs: list) -> Any:
        return tree_unflatten(treedef, [x.astype(dtype) for x in xs])

    return GradientMoments(tree(mean), tree(second), tree(var), n)
