"""K-FAC as an optimizer (Martens & Grosse 2015, "Optimizing neural networks with
Kronecker-factored approximate curvature"), for Models of Dense and Conv2D layers.

Each step, on the minibatch:

1. one recorded forward pass gives the loss, its gradient g (one backward pass) and the
   K-FAC statistics (one more backward pass per sampled column: ``fisher_type="mc"`` with one
   sample, M&G's choice; "type-2" and "empirical" as in ``pearlnet.curvature.kfac``);
2. the factors are running averages, A <- eps A + (1 - eps) A_batch with
   eps = min(1 - 1/k, ``decay``) at step k (M&G section 5: decay 0.95);
3. every ``inverse_every`` steps (M&G's T3 = 20) the damped inverses are renewed:
   (A + pi gamma I)^-1 and (B + gamma/pi I)^-1, gamma = sqrt(lambda) (factored Tikhonov
   damping, section 6.3; M&G also tune gamma separately, here gamma follows lambda);
4. Delta = -F_hat^-1 g, and the step delta = alpha Delta + mu delta_prev with alpha, mu
   minimising the quadratic model 1/2 d^T (G + lambda I) d + g^T d, G the exact GGN of the
   minibatch (two GGN-vector products: section 7, "re-scaling and momentum");
5. every ``damping_every`` steps (T1 = 5) lambda follows the Levenberg-Marquardt rule on the
   reduction ratio rho = (h(theta + delta) - h(theta)) / (1/2 delta^T G delta + g^T delta):
   rho > 3/4 multiplies lambda by omega = (19/20)^T1, rho < 1/4 divides it by omega
   (section 6.5).

``lr`` multiplies the final step (1: M&G's); ``damping`` is lambda's start (M&G used 150 for
their autoencoders' summed squared errors; 1 here, for losses that average over outputs too).
Regularisation penalties enter the gradient and the objective, not the curvature (the damping
stands in for their Hessian). The network runs in evaluation mode, as in HessianFree: dropout
is off; a layer with parameters other than Dense and Conv2D (BatchNorm, PReLU) is refused by
name. ``pearlnet train --optimizer kfac`` takes no ``--lr`` or ``--schedule``.

Data-parallel in ``Model.fit``: every rank computes its share; the gradient, the loss, the
factor statistics and each GGN product are weighted by the shares and summed across the
ranks, so every rank takes the same step. The Monte Carlo draws come from (seed, epoch, step,
rank), so they differ with the number of ranks; "type-2" and "empirical" do not draw.

>>> import numpy as np, pearlnet, pearlnet.nn as nn
>>> model = pearlnet.Model([nn.Dense(8, activation="tanh", input_shape=(4,)), nn.Dense(3)])
>>> model.compile(loss="categorical_crossentropy", optimizer=KFAC(), metrics=["accuracy"])
>>> x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
>>> h = model.fit(x, np.argmax(x[:, :3], axis=1), batch_size=32, epochs=3, verbose=0)
>>> h.history["loss"][-1] < h.history["loss"][0]
True
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from pearlnet.autodiff import gauss_newton_operator, ravel, tree_map, value_and_grad

from .base import check_number

__all__ = ["KFAC"]


def _factor_shapes(params: dict) -> dict:
    """{layer: (dim A, dim B)} from the parameter shapes (Dense: W 2-D; Conv2D: W 4-D)."""
    shapes = {}
    for name, p in params.items():
        if not isinstance(p, dict) or "W" not in p:
            continue
        w = np.shape(p["W"])
        bias = 1 if "b" in p else 0
        if len(w) == 2:
            shapes[name] = (w[0] + bias, w[1])
        elif len(w) == 4:
            shapes[name] = (int(np.prod(w[1:])) + bias, w[0])
    return shapes


class KFAC:
    """K-FAC for ``Model.compile(optimizer=KFAC())`` (see the module docstring).

    Args:
        lr: a factor on the step (1: M&G's automatic scale).
        damping: lambda's initial value (adapted every ``damping_every`` steps).
        decay: the factors' running-average decay (0.95).
        inverse_every: steps between renewals of the inverses (M&G's T3 = 20).
        damping_every: steps between adaptations of lambda (T1 = 5).
        fisher_type, mc_samples: what the output factor backpropagates ("mc", 1).
        momentum: True: M&G's momentum mu chosen with alpha by the quadratic model; False:
            mu = 0.
        damping_min: lambda's floor.
        seed: the root of the Monte Carlo draws.

    State: {"step", "lambda", "delta" (the previous step, flat), "A", "B" (the running factors
    per layer), "A_inv", "B_inv" (their damped inverses)}: arrays only, ready for Model.save.
    """

    key = "kfac"

    def __init__(self, lr: float = 1.0, damping: float = 1.0, decay: float = 0.95,
                 inverse_every: int = 20, damping_every: int = 5, fisher_type: str = "mc",
                 mc_samples: int = 1, momentum: bool = True, damping_min: float = 1e-8,
                 seed: int = 0) -> None:
        from pearlnet.curvature.kfac import check_fisher_type

        self.lr = check_number("KFAC", "lr", lr, low=0.0)
        self.damping = check_number("KFAC", "damping", damping, low=0.0, low_open=True)
        self.decay = check_number("KFAC", "decay", decay, low=0.0, high=1.0, high_open=True)
        self.damping_min = check_number("KFAC", "damping_min", damping_min, low=0.0)
        for name, value, low in (("inverse_every", inverse_every, 1),
                                 ("damping_every", damping_every, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                what = "a positive" if low else "a non-negative"
                raise ValueError(f"KFAC: {name} must be {what} integer, got {value!r}")
        self.inverse_every, self.damping_every = inverse_every, damping_every
        self.mc_samples = check_fisher_type(fisher_type, mc_samples, "KFAC")
        self.fisher_type = fisher_type
        if not isinstance(momentum, (bool, np.bool_)):
            raise ValueError(f"KFAC: momentum must be True or False, got {momentum!r}")
        self.momentum, self.seed = bool(momentum), seed

    # -- state -----------------------------------------------------------------------------------
    def init(self, params: Any) -> dict:
        """Zero factors shaped from the parameters, lambda = ``damping``, no previous step."""
        flat, _ = ravel(params)
        shapes = _factor_shapes(params) if isinstance(params, dict) else {}
        zeros = {name: np.zeros((a, a)) for name, (a, _) in shapes.items()}
        zeros_b = {name: np.zeros((b, b)) for name, (_, b) in shapes.items()}
        return {"step": 0, "lambda": self.damping,
                "delta": np.zeros_like(np.asarray(flat)), "A": zeros,
                "B": zeros_b, "A_inv": tree_map(np.copy, zeros),
                "B_inv": tree_map(np.copy, zeros_b)}

    def update(self, params: Any, grads: Any, state: dict) -> tuple[Any, dict]:
        raise TypeError("KFAC.update: K-FAC needs the layers' inputs and sensitivities, so it "
                        "runs only inside Model.fit (model.compile(optimizer=KFAC())), through "
                        "fit_step")

    # -- the step --------------------------------------------------------------------------------
    def fit_step(self, model: Any) -> Callable:
        """The step Model.fit calls: ``step(xb, yb, stream, shard) -> (loss, metric_sums,
        apply_update)``, the loss being the batch's (global) objective before the update."""
        from pearlnet.curvature.kfac import KroneckerFactors, batch_statistics
        from pearlnet.curvature.layers import TappedNetwork
        from pearlnet.curvature.likelihoods import likelihood_of
        from pearlnet.distributed import data_parallel

        class _Problem:
            pass

        holder = _Problem()
        holder.model = model

        def step(xb, yb, stream, shard):
            comm = shard.comm
            params, state = model.params, model.opt_state
            tapped = TappedNetwork(model, params)
            tapped.require_all_covered("KFAC")
            lik = likelihood_of(holder, None, "KFAC")
            k = int(state["step"])
            rank = comm.rank if comm.size > 1 else 0
            rng = np.random.default_rng([self.seed, stream.seed, stream.epoch, k, rank])
            weight = shard.fraction if comm.size > 1 else 1.0
            flat, unravel = ravel(params)
            flat = np.asarray(flat)
            n = len(xb)

            def loss(z):
                return model._loss(yb, z)

            if n:
                stats, value, grads = batch_statistics(tapped, params, xb, loss, lik,
                                                       self.fisher_type, self.mc_samples, rng,
                                                       gradient=True)
                g = np.asarray(ravel(grads)[0], dtype=np.float64)
                out = np.asarray(tapped.forward(params, xb)) if model.metric_fns else None
            else:
                stats = {info.name: (np.zeros((info.in_dim,) * 2),
                                     np.zeros((info.out_dim,) * 2)) for info in tapped.covered}
                value, g, out = 0.0, np.zeros(flat.size), None
            metric_sums = model._metric_sums(yb, out) if out is not None else \
                {name: 0.0 for name, _ in model.metric_fns}
            if comm.size > 1:
                stats, g, v, msums = _weighted_sum(comm, weight, stats, g, value,
                                                   metric_sums)
                value = float(v)
                metric_sums = dict(zip(metric_sums, map(float, msums)))
            if model.has_penalty():
                pv, pg = value_and_grad(model.penalty)(params)
                value += float(pv)
                g = g + np.asarray(ravel(pg)[0], dtype=np.float64)
            lam = max(float(state["lambda"]), self.damping_min)

            # running factors and their inverses
            eps = min(1.0 - 1.0 / (k + 1), self.decay)
            A = {name: eps * np.asarray(state["A"][name]) + (1 - eps) * stats[name][0]
                 for name in stats}
            B = {name: eps * np.asarray(state["B"][name]) + (1 - eps) * stats[name][1]
                 for name in stats}
            kron = KroneckerFactors(tapped, {name: (A[name], B[name]) for name in A},
                                    np.float64)
            if k % self.inverse_every == 0:
                inv = kron.inverses(lam, heuristic=True)
                A_inv = {name: v[1] for name, v in inv.items()}
                B_inv = {name: v[2] for name, v in inv.items()}
            else:
                A_inv = {name: np.asarray(state["A_inv"][name]) for name in A}
                B_inv = {name: np.asarray(state["B_inv"][name]) for name in A}
            inverses = {name: ("pi", A_inv[name], B_inv[name]) for name in A}
            nat = -kron.solve(g, inverses)
            prev = np.asarray(state["delta"], dtype=np.float64)

            # the exact GGN of the minibatch for the step's scale (and the momentum)
            def net(w):
                return model.forward(unravel(w), xb, state=model.state, training=False)[0]

            with data_parallel(comm, shard.total, n):
                gn = gauss_newton_operator(net, loss, flat) if n else None
            vecs = [nat] + ([prev] if self.momentum and k > 0 and np.any(prev) else [])
            prods = []
            for v in vecs:
                p = np.asarray(gn(v.astype(flat.dtype)), dtype=np.float64) if gn is not None \
                    else np.zeros(flat.size)
                prods.append(p)
            if comm.size > 1:
                prods = list(comm.allreduce(tuple(prods), scale=weight))
            m = np.array([[vi @ pj for pj in prods] for vi in vecs])  # V^T G V
            rhs = -np.array([g @ v for v in vecs])
            damped = m + lam * np.array([[vi @ vj for vj in vecs] for vi in vecs])
            try:
                coef = np.linalg.solve(damped, rhs)
            except np.linalg.LinAlgError:
                coef = np.zeros(len(vecs))
            if not np.all(np.isfinite(coef)):
                coef = np.zeros(len(vecs))
            delta = sum(c * v for c, v in zip(coef, vecs))
            model_decrease = 0.5 * coef @ m @ coef - rhs @ coef  # 1/2 d^T G d + g^T d
            delta = self.lr * delta
            new_flat = flat + delta.astype(flat.dtype)
            new_params = unravel(new_flat)

            # Levenberg-Marquardt on lambda every damping_every steps
            new_lam, rho = lam, None
            if (k + 1) % self.damping_every == 0 and model_decrease < 0:
                after = float(loss(net(new_flat))) if n else 0.0
                if comm.size > 1:
                    after = float(comm.allreduce(np.float64(after * weight)))
                if model.has_penalty():
                    after += float(model.penalty(new_params))
                rho = (after - value) / model_decrease if math.isfinite(after) else -math.inf
                omega = (19 / 20) ** self.damping_every
                if rho > 0.75:
                    new_lam = lam * omega
                elif rho < 0.25:
                    new_lam = lam / omega
            new_state = {"step": k + 1, "lambda": max(new_lam, self.damping_min),
                         "delta": delta.astype(flat.dtype), "A": A, "B": B,
                         "A_inv": A_inv, "B_inv": B_inv}
            model.kfac_info = {"lambda": lam, "alpha": float(coef[0]) if len(coef) else 0.0,
                               "mu": float(coef[1]) if len(coef) > 1 else 0.0, "rho": rho,
                               "model_decrease": float(model_decrease)}

            def apply_update():
                model.last_finite = (params, model.state)
                model.params, model.opt_state = new_params, new_state

            return value, metric_sums, apply_update

        return step

    def get_config(self) -> dict:
        return {"lr": self.lr, "damping": self.damping, "decay": self.decay,
                "inverse_every": self.inverse_every, "damping_every": self.damping_every,
                "fisher_type": self.fisher_type, "mc_samples": self.mc_samples,
                "momentum": self.momentum, "damping_min": self.damping_min, "seed": self.seed}

    def __repr__(self) -> str:
        return (f"KFAC(lr={self.lr!r}, damping={self.damping!r}, decay={self.decay!r}, "
                f"inverse_every={self.inverse_every}, fisher_type={self.fisher_type!r})")


def _weighted_sum(comm: Any, weight: float, stats: dict, g: np.ndarray, value: float,
                  metric_sums: dict) -> tuple:
    """The shares' weighted statistics, gradient and loss, and the metric sums, summed over
    the ranks in one message per dtype."""
    weighted = comm.allreduce((stats, g, np.float64(value)), scale=weight)
    msums = comm.allreduce(np.array(list(metric_sums.values()), dtype=np.float64))
    return weighted[0], weighted[1], weighted[2], msums

