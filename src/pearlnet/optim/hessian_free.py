"""Hessian-free optimization (Martens 2010, "Deep learning via Hessian-free optimization").

Each outer step minimises the local quadratic model

    q(d) = f(theta) + g.d + 1/2 d.(B + lambda I) d,   B = Gauss-Newton G (default) or Hessian H,

by conjugate gradient, with B applied through ``gauss_newton_operator`` / ``hvp_operator`` on a
curvature minibatch and never formed (the forward pass is recorded once per outer step).
Martens' ingredients, each optional where he made it so:
Levenberg-Marquardt damping driven by the reduction ratio rho (section 4.1), CG warm-started
from 0.95 times the previous direction (4.5), his relative-progress stopping rule (4.4),
CG-backtracking over the saved iterates (4.6), the diagonal preconditioner
(sum_i g_i^2 / N + lambda)^(3/4) (4.7), and an Armijo line search on the chosen step.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import numpy as np

from pearlnet.autodiff import (
    gauss_newton_operator,
    hvp_operator,
    jit,
    ravel,
    tree_map,
    value_and_grad,
)
from pearlnet.distributed import data_parallel
from pearlnet.nn.random import SampleStream

from .base import check_number

__all__ = ["HessianFree", "conjugate_gradient"]


def conjugate_gradient(apply_a: Callable[[np.ndarray], np.ndarray], b: np.ndarray,
                       x0: np.ndarray, max_iters: int = 250, min_iters: int = 1,
                       tol: float = 5e-4, precondition: np.ndarray | None = None
                       ) -> tuple[np.ndarray, list[tuple[int, np.ndarray]], int]:
    """Preconditioned CG for A x = b from x0, with Martens' stopping rule (``conjgrad_1``).

    It tracks the quadratic phi_i = 1/2 x.A x - b.x = 1/2 (r - b).x and stops at iteration i
    when i > k, phi_{i-k} < 0 and (phi_i - phi_{i-k}) / phi_i < k tol, k = max(10, ceil(i/10)):
    the last tenth of the iterations gained too little. It also stops on non-positive curvature
    p.A p <= 0, and when the residual falls to rounding level (|r| <= 1e-14 |b|). Returns (last
    iterate, the iterates saved at i = ceil(5 * 1.3^j) and at the end, iterations done).
    A warm start x0 whose product A x0 is not finite is replaced by 0.
    """
    x = np.array(x0, copy=True)
    r = apply_a(x) - b
    # a warm start whose product overflowed (near-singular curvature, lambda near 0, lets the
    # carried direction grow without bound) is dropped for 0, whose residual is -b. One that
    # is merely worse than 0 is kept, as Martens does: dropping those cost 3-16% of the loss
    # after 40 steps on the autoencoder benchmark
    if not np.isfinite(r).all() and np.isfinite(b).all():
        x, r = np.zeros_like(x), -np.asarray(b)
    # also stop once the residual is at rounding level: further steps only fit noise
    tiny = (1e-14) ** 2 * float(b @ b)
    if float(r @ r) <= tiny:
        return x, [(0, x)], 0
    solve = _preconditioning(precondition)
    y = solve(r)
    p = -y
    ry = float(r @ y)
    phis: list[float] = []
    saved: list[tuple[int, np.ndarray]] = []
    save_at = {math.ceil(5 * 1.3 ** j) for j in range(60)}
    i = 0
    for i in range(1, max_iters + 1):
        ap = apply_a(p)
        pap = float(p @ ap)
        if not pap > 0:  # negative or no curvature along p (or NaN): the model is unbounded
            i -= 1
            break
        alpha = ry / pap
        x = x + alpha * p
        r = r + alpha * ap
        y = solve(r)
        ry_new = float(r @ y)
        p = -y + (ry_new / ry) * p
        ry = ry_new
        phis.append(0.5 * float((r - b) @ x))
        if i in save_at:
            saved.append((i, x))
        k = max(10, math.ceil(0.1 * i))
        if i >= min_iters and i > k and phis[i - k - 1] < 0 and \
                (phis[-1] - phis[i - k - 1]) / phis[-1] < k * tol:
            break
        if ry == 0 or float(r @ r) <= tiny:
            break
    if not saved or saved[-1][0] != i:
        saved.append((i, x))
    return x, saved, i


def _preconditioning(precondition: Any) -> Callable[[np.ndarray], np.ndarray]:
    """r -> M^-1 r for a diagonal M (an array), a callable (applied as is) or None (M = I)."""
    if precondition is None:
        return lambda r: r
    # in the residual's dtype: a float64 preconditioner must not promote float32 CG vectors
    # (the curvature product refuses a tangent of another precision)
    if callable(precondition):
        return lambda r: np.asarray(precondition(r), dtype=r.dtype)
    return lambda r: (r / precondition).astype(r.dtype, copy=False)


class HessianFree:
    """Martens' Hessian-free optimizer for ``loss(net(params, batch), batch)``.

    >>> import numpy as np, pearlnet.numpy as pnp
    >>> def residuals(p, batch):  # Rosenbrock: f = r1^2 + r2^2
    ...     return pnp.stack([10 * (p[1] - p[0] ** 2), 1 - p[0]])
    >>> hf = HessianFree(residuals, lambda r, batch: pnp.sum(r ** 2))
    >>> params, state = np.array([-1.2, 1.0]), None
    >>> state = hf.init(params)
    >>> for _ in range(50):
    ...     params, state, info = hf.step(params, state)
    >>> bool(info["loss"] < 1e-10)
    True

    Args:
        net, loss: ``net(params, batch) -> outputs`` and ``loss(outputs, batch) -> scalar``;
            ``batch`` is whatever the caller passes to ``step`` (None for a plain function).
            Given by the Model when used through ``model.compile(optimizer=HessianFree())``.
        curvature: "gauss-newton" (J^T H_loss J, positive semi-definite: Martens' choice) or
            "hessian".
        damping: the initial lambda; ``damping_factors`` (drop, boost) = (2/3, 3/2): rho > 3/4
            multiplies lambda by 2/3, rho < 1/4 by 3/2.
        damping_min: lambda never goes below it (0, the default, is Martens': no floor). After
            a run of good steps lambda can fall by many orders of magnitude (to 1e-25 in
            bench/hf_autoencoder.py), where it no longer changes the solve; a boost by 3/2 then
            takes dozens of bad steps to matter again. A floor keeps the damping responsive.
        cg_max_iters, cg_min_iters, cg_tol: the CG budget and Martens' progress tolerance.
        cg_decay: CG starts from cg_decay times the previous step's last CG iterate.
        backtrack: pick the best saved CG iterate on the gradient batch (section 4.6).
        preconditioner: True: Martens' diagonal (sum_i g_i^2 / N + lambda)^(3/4), g_i the
            per-case gradients (needs a batch whose arrays share a leading axis of cases;
            ``precondition_cases`` of them are used). Or a callable
            ``preconditioner(params, batch, lam) -> solve`` called once per outer step on the
            gradient batch, ``solve(r)`` returning M^-1 r for the flat residual r (M symmetric
            positive definite, approximating B + lambda I), e.g. a Kronecker-factored one
            (bench/hf_autoencoder.py). False: none.
        line_search: Armijo backtracking (c = 1e-2, factor 0.8, at most ``line_search_tries``
            tries, Martens' 60; a step that never passes is rejected, lambda boosted).
            Fewer tries reject a bad direction sooner: past 20 the step is under 0.8^20 ~ 1%
            of the CG step, and each try costs a loss on the gradient batch.
        penalty: an optional ``penalty(params)`` added to the objective, its exact Hessian
            (by hvp) added to the curvature.
        curvature_batch_size: used by ``Model.fit``: the curvature products use this many
            cases of each training batch (None: the whole batch).
        lr: a factor on the chosen step (1 is Martens'; a LearningRateScheduler sets it).
        jit: compile the curvature product once per outer step (pearlnet.jit), so that every
            CG iteration replays it without tracers; the same numbers as ``jit=False``.
    """

    def __init__(self, net: Callable | None = None, loss: Callable | None = None,
                 curvature: str = "gauss-newton", damping: float = 1.0,
                 damping_factors: tuple[float, float] = (2 / 3, 3 / 2), damping_min: float = 0.0,
                 cg_max_iters: int = 250, cg_min_iters: int = 1, cg_tol: float = 5e-4,
                 cg_decay: float = 0.95, backtrack: bool = True,
                 preconditioner: bool | Callable = False, precondition_cases: int = 64,
                 line_search: bool = True, line_search_tries: int = 60,
                 penalty: Callable | None = None, curvature_batch_size: int | None = None,
                 lr: float = 1.0, jit: bool = True) -> None:
        if curvature not in ("gauss-newton", "hessian"):
            raise ValueError(f"HessianFree: curvature must be 'gauss-newton' or 'hessian', got "
                             f"{curvature!r}")
        self.net, self.loss, self.curvature, self.penalty = net, loss, curvature, penalty
        self.damping = check_number("HessianFree", "damping", damping, low=0.0)
        self.damping_min = check_number("HessianFree", "damping_min", damping_min, low=0.0)
        drop, boost = damping_factors
        self.drop = check_number("HessianFree", "damping_factors[0]", drop, low=0.0, high=1.0,
                                 low_open=True, high_open=True)
        self.boost = check_number("HessianFree", "damping_factors[1]", boost, low=1.0,
                                  low_open=True)
        counts = {"cg_max_iters": cg_max_iters, "cg_min_iters": cg_min_iters,
                  "precondition_cases": precondition_cases,
                  "line_search_tries": line_search_tries}
        if curvature_batch_size is not None:
            counts["curvature_batch_size"] = curvature_batch_size
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                or_none = " (or None)" if name == "curvature_batch_size" else ""
                raise ValueError(f"HessianFree: {name} must be a positive integer{or_none}, "
                                 f"got {value!r}")
        if cg_min_iters > cg_max_iters:
            raise ValueError(f"HessianFree: cg_min_iters must be <= cg_max_iters "
                             f"({cg_max_iters}), got {cg_min_iters}")
        self.cg_max_iters, self.cg_min_iters = cg_max_iters, cg_min_iters
        self.cg_tol = check_number("HessianFree", "cg_tol", cg_tol, low=0.0, low_open=True)
        self.cg_decay = check_number("HessianFree", "cg_decay", cg_decay, low=0.0, high=1.0)
        self.backtrack, self.line_search = bool(backtrack), bool(line_search)
        self.line_search_tries = line_search_tries
        if not (isinstance(preconditioner, bool) or callable(preconditioner)):
            raise ValueError(f"HessianFree: preconditioner must be True, False or a callable "
                             f"(params, batch, lam) -> solve, got {preconditioner!r}")
        self.preconditioner, self.precondition_cases = preconditioner, precondition_cases
        self.curvature_batch_size = curvature_batch_size
        # the Model's LearningRateScheduler may scale the step; 1 is Martens'
        self.lr = check_number("HessianFree", "lr", lr, low=0.0)
        if not isinstance(jit, (bool, np.bool_)):
            raise ValueError(f"HessianFree: jit must be True or False, got {jit!r}")
        self.jit = bool(jit)

    # -- the objective and its curvature -----------------------------------------------------
    def _objective(self, unravel: Callable, batch: Any) -> Callable:
        def f(w):
            params = unravel(w)
            value = self.loss(self.net(params, batch), batch)
            if self.penalty is not None:
                value = value + self.penalty(params)
            return value
        return f

    def _curvature_product(self, flat: np.ndarray, unravel: Callable,
                           batch: Any) -> Callable[[np.ndarray], np.ndarray]:
        """v -> B v on ``batch`` (B without damping). The passes that do not depend on v (the
        forward pass; for the Hessian also the backward pass) run once per outer step, so a CG
        iteration costs only the R-passes (``gauss_newton_operator`` / ``hvp_operator``).
        With ``jit`` (the default) those R-passes are one compiled program per outer step
        (pearlnet.jit; the recorded forward values are its constants), replayed by every CG
        iteration with the same numbers and no tracer."""
        if self.curvature == "hessian":
            product = hvp_operator(self._objective(unravel, batch), flat)
        else:
            def net(w):
                return self.net(unravel(w), batch)

            def loss(z):
                return self.loss(z, batch)

            product = gauss_newton_operator(net, loss, flat)
            if self.penalty is not None:
                gn = product
                penalty = hvp_operator(lambda w: self.penalty(unravel(w)), flat)

                def product(v):
                    return gn(v) + penalty(v)

        if self.jit:
            product = jit(product)
        return lambda v: np.asarray(product(v))

    def _precondition_count(self, batch: Any) -> int:
        """The number of cases in ``batch``, or a ValueError if there are none."""
        leaves = [leaf for leaf in _leaves(batch)]
        if not leaves or len(leaves[0]) == 0:
            got = ("batch=None" if batch is None else "no array with a leading axis"
                   if not leaves else f"arrays of shape {np.shape(leaves[0])}, no case")
            raise ValueError(f"HessianFree.step: the preconditioner needs a batch of cases (arrays "
                             f"with a leading axis of at least one case), got {got}")
        return len(leaves[0])

    def _precondition(self, flat, unravel, batch, lam, cases, total, share):
        """(sum_i g_i^2 / N + lambda)^(3/4) from the per-case gradients of the first N
        cases of the (global) batch (Martens, section 4.7); ``cases`` are the positions of
        this rank's among them, ``total`` is N."""
        squares = np.zeros_like(flat)
        for i in cases:
            case = tree_map(lambda a, i=i: a[i:i + 1], batch)
            g = np.asarray(value_and_grad(self._objective(unravel, case))(flat)[1])
            squares += g * g
        squares = share.sum(squares)
        return (squares / total + lam) ** 0.75

    # -- the optimizer interface -------------------------------------------------------------
    def init(self, params: Any) -> dict:
        """{"lambda": the damping, "direction": zeros (the warm start), "step": 0}."""
        flat, _ = ravel(params)
        return {"lambda": self.damping, "direction": np.zeros_like(np.asarray(flat)),
                "step": 0}

    def step(self, params: Any, state: dict, batch: Any = None,
             curvature_batch: Any = None, comm: Any = None) -> tuple[Any, dict, dict]:
        """One outer step. Returns (params, state, info) with info's loss (after the step),
        loss_before, lambda (used in this step), rho, cg_iters, rate (line search), and
        grad_norm.

        Data-parallel (``comm``, a pearlnet.distributed communicator of several ranks): each
        rank passes its own share of the gradient batch and of the curvature batch (the
        global batches are the ranks' shares in rank order). The objective is the global
        batch's mean: every value, the gradient, and every curvature product are the ranks'
        local ones weighted by their shares and summed (one allreduce each); the
        preconditioner's statistics likewise. CG, the damping, backtracking and the line
        search then run replicated, on identical numbers, so every rank ends the step with
        the same parameters, bit for bit."""
        if self.net is None or self.loss is None:
            raise ValueError("HessianFree.step: give net and loss to the constructor (or use "
                             "it through Model.compile)")
        flat, unravel = ravel(params)
        flat = np.asarray(flat)
        lam, direction = self._check_state(state, flat)
        lam = max(lam, self.damping_min)
        # 0 is allowed: a LearningRateScheduler may take the factor to 0 (no step)
        check_number("HessianFree.step", "lr (the factor on the step)", self.lr, low=0.0)
        cbatch = batch if curvature_batch is None else curvature_batch
        share = _Sharing(comm, batch, cbatch)
        f = self._objective(unravel, batch)
        f0, g = share.value_and_grad(f, flat)
        product = share.product(self._curvature_product, flat, unravel, cbatch)
        if callable(self.preconditioner):
            precond = self._call_preconditioner(params, batch, lam, share.comm)
        elif self.preconditioner:
            # a rank may hold none of the cases; one process always needs some
            n_local = self._precondition_count(batch) \
                if share.n_grad or not share.distributed else 0
            cases, total = share.precondition_cases(n_local, self.precondition_cases)
            precond = self._precondition(flat, unravel, batch, lam, cases, total, share)
        else:
            precond = None
        x0 = self.cg_decay * direction
        x_last, saved, iters = conjugate_gradient(
            lambda v: product(v) + lam * v, -g, x0, self.cg_max_iters, self.cg_min_iters,
            self.cg_tol, precond)
        f = share.values(f, share.n_grad, share.grad_weight)

        # CG-backtracking: walk back from the last saved iterate while the objective improves
        d, f_d = saved[-1][1], float(f(flat + saved[-1][1]))
        if self.backtrack:
            for _, x in reversed(saved[:-1]):
                f_x = float(f(flat + x))
                if not f_x < f_d:
                    break
                d, f_d = x, f_x

        # reduction ratio on the curvature batch, the model without damping (Martens 4.1)
        if cbatch is batch:
            actual = f_d - f0
        else:
            fc = share.values(self._objective(unravel, cbatch), share.n_curv, share.curv_weight)
            actual = float(fc(flat + d)) - float(fc(flat))
        predicted = float(g @ d + 0.5 * d @ product(d))
        rho = actual / predicted if predicted < 0 else -math.inf
        if not math.isfinite(actual) or actual > 0:
            rho = -math.inf
        if not rho >= 0.25:  # NaN included
            new_lam = lam * self.boost
        elif rho > 0.75:
            new_lam = lam * self.drop
        else:
            new_lam = lam

        # Armijo line search on the gradient batch
        rate, f_new = 1.0, f_d
        slope = float(g @ d)
        if self.line_search:
            c, tries = 1e-2, 0
            while not f_new <= f0 + c * rate * slope:
                tries += 1
                if tries > self.line_search_tries:
                    rate, f_new = 0.0, f0
                    break
                rate *= 0.8
                f_new = float(f(flat + rate * d))
        rate *= self.lr
        if rate != 1.0 and self.lr != 1.0:
            f_new = float(f(flat + rate * d))
        if rate == 0.0 or not np.isfinite(d).all():  # rejected: the parameters stay as they were
            rate, f_new, new_flat = 0.0, f0, flat
        else:
            new_flat = flat + rate * d
        finite = bool(np.isfinite(x_last).all())  # else the next CG starts from 0
        state = {"lambda": new_lam, "direction": x_last if finite else np.zeros_like(flat),
                 "step": int(state.get("step", 0)) + 1}
        info = {"loss": f_new, "loss_before": f0, "lambda": lam, "rho": rho,
                "cg_iters": iters, "rate": rate, "grad_norm": float(np.linalg.norm(g))}
        return unravel(new_flat.astype(flat.dtype, copy=False)), state, info

    def _call_preconditioner(self, params: Any, batch: Any, lam: float, comm: Any) -> Any:
        """A callable preconditioner, given ``comm=`` when it takes one (so that it can sum
        its statistics across the ranks) and the job is data-parallel."""
        if comm.size > 1:
            try:
                takes_comm = "comm" in inspect.signature(self.preconditioner).parameters
            except (TypeError, ValueError):
                takes_comm = False
            if takes_comm:
                return self.preconditioner(params, batch, lam, comm=comm)
        return self.preconditioner(params, batch, lam)

    def _check_state(self, state: Any, flat: np.ndarray) -> tuple[float, np.ndarray]:
        """state["lambda"] as a float >= 0 and state["direction"] as an array shaped like the
        flat parameters, or a ValueError naming what is wrong."""
        if not isinstance(state, dict) or "lambda" not in state or "direction" not in state:
            got = f"keys {sorted(state)}" if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"HessianFree.step: state must be the dict returned by "
                             f"HessianFree.init (with 'lambda' and 'direction'), got {got}")
        lam = state["lambda"]
        if isinstance(lam, np.ndarray) and lam.shape == ():  # read back from an .npz
            lam = lam.item()
        lam = check_number("HessianFree.step", "state['lambda']", lam, low=0.0)
        direction = np.asarray(state["direction"])
        if direction.shape != flat.shape or direction.dtype.kind not in "fiu":
            raise ValueError(f"HessianFree.step: state['direction'] must be a real array of shape "
                             f"{flat.shape} (the flat parameters), got {direction.dtype} of shape "
                             f"{direction.shape}")
        return lam, direction.astype(flat.dtype, copy=False)

    # -- Model.fit integration ---------------------------------------------------------------
    def fit_step(self, model: Any) -> Callable:
        """The step ``Model.fit`` calls: net and loss come from the model, in evaluation mode
        (dropout off, BatchNorm on its running statistics), so the objective is deterministic
        within the step. The model's penalties are always part of the objective when any
        layer has a regularizer (whatever their value at the start: a bias penalty is 0 at
        zero biases). Running statistics (BatchNorm) are updated from each accepted step's
        batch by a training-mode forward pass at the parameters the step started from, as a
        first-order step updates them.

        The curvature batch (``curvature_batch_size`` cases of the global batch) is the cases
        with the smallest keys from the sample stream of (seed, epoch), chosen alike on every
        rank; each rank computes the ones in its share."""
        self.net = lambda params, batch: model.forward(params, batch[0], state=model.state,
                                                        training=False)[0]
        self.loss = lambda out, batch: model._loss(batch[1], out)
        self.penalty = model.penalty if model.has_penalty() else None

        def step(xb, yb, stream, shard):
            batch, cbatch, comm = (xb, yb), None, shard.comm
            if self.curvature_batch_size and self.curvature_batch_size < shard.total:
                keys = SampleStream(stream.seed, stream.epoch, shard.indices).row_keys(
                    "hessian_free/curvature")
                chosen = np.sort(np.argsort(keys, kind="stable")[:self.curvature_batch_size])
                mine = chosen[(chosen >= shard.lo) & (chosen < shard.hi)] - shard.lo
                cbatch = (xb[mine], yb[mine])
            params, opt_state, state = model.params, model.opt_state, model.state
            new_params, new_state, info = self.step(params, opt_state, batch, cbatch, comm=comm)
            model.hf_info = info
            running = state
            if state and info["rate"] > 0:
                with data_parallel(comm, shard.total, len(xb)):
                    running = model.forward(params, xb, state=state, training=True,
                                            rng=stream)[1]
            out = model.forward(new_params, xb, state=running, training=False)[0]
            metric_sums = model._metric_sums(yb, np.asarray(out))
            if comm.size > 1 and metric_sums:
                totals = comm.allreduce(np.array(list(metric_sums.values())))
                metric_sums = dict(zip(metric_sums, map(float, totals)))

            def apply_update():
                model.last_finite = (params, state)
                model.params, model.opt_state = new_params, new_state
                model.state = running or state

            return info["loss"], metric_sums, apply_update

        return step

    def get_config(self) -> dict:
        """The constructor's arguments, ``lr`` (the factor on the step a LearningRateScheduler
        sets) included, so ``HessianFree(**hf.get_config())`` rebuilds it."""
        return {"curvature": self.curvature, "damping": self.damping,
                "damping_factors": [self.drop, self.boost], "damping_min": self.damping_min,
                "cg_max_iters": self.cg_max_iters,
                "cg_min_iters": self.cg_min_iters, "cg_tol": self.cg_tol,
                "cg_decay": self.cg_decay, "backtrack": self.backtrack,
                "preconditioner": self.preconditioner,
                "precondition_cases": self.precondition_cases,
                "line_search": self.line_search, "line_search_tries": self.line_search_tries,
                "curvature_batch_size": self.curvature_batch_size, "lr": self.lr,
                "jit": self.jit}

    def __repr__(self) -> str:
        return (f"HessianFree(curvature={self.curvature!r}, damping={self.damping}, "
                f"cg_max_iters={self.cg_max_iters})")


def _leaves(tree: Any) -> list:
    from pearlnet.autodiff import tree_flatten

    return [leaf for leaf in tree_flatten(tree)[0] if np.ndim(leaf) > 0]


def _count(batch: Any) -> int:
    """The number of cases in a batch: the leading axis of its first array (0 for None)."""
    leaves = _leaves(batch)
    return len(leaves[0]) if leaves else 0


class _Sharing:
    """How one step's batches are spread over the ranks of ``comm``: the weights n_rank / N of
    this rank's gradient-batch and curvature-batch means, and the sums across ranks. In one
    process (or without ``comm``) every function is the plain local one, untouched."""

    def __init__(self, comm: Any, batch: Any, cbatch: Any) -> None:
        from pearlnet.distributed import SingleProcess

        self.comm = SingleProcess() if comm is None else comm
        self.n_grad, self.n_curv = _count(batch), _count(cbatch)
        self.grad_weight = self.curv_weight = 1.0
        self.counts = [(self.n_grad, self.n_curv)]
        if self.comm.size > 1:
            if batch is None:
                raise ValueError("HessianFree.step: a data-parallel step needs each rank's "
                                 "share of the batch (arrays with a leading axis of cases), "
                                 "got batch=None")
            self.counts = self.comm.allgather((self.n_grad, self.n_curv))
            total_grad = sum(c[0] for c in self.counts)
            total_curv = sum(c[1] for c in self.counts)
            if total_grad == 0 or total_curv == 0:
                raise ValueError(f"HessianFree.step: the ranks' batches hold {total_grad} "
                                 f"gradient and {total_curv} curvature cases in all; both "
                                 f"need at least one")
            self.grad_weight = self.n_grad / total_grad
            self.curv_weight = self.n_curv / total_curv

    @property
    def distributed(self) -> bool:
        return self.comm.size > 1

    def sum(self, tree: Any, weight: float | None = None) -> Any:
        return self.comm.allreduce(tree, scale=weight) if self.distributed else tree

    def value_and_grad(self, f: Callable, flat: np.ndarray) -> tuple[float, np.ndarray]:
        if not self.distributed:
            f0, g = value_and_grad(f)(flat)
            return float(f0), np.asarray(g)
        if self.n_grad:
            f0, g = value_and_grad(f)(flat)
            f0, g = float(f0), np.asarray(g)
        else:
            f0, g = 0.0, np.zeros_like(flat)
        f0, g = self.sum((np.float64(f0), g), self.grad_weight)
        return float(f0), g

    def values(self, f: Callable, n: int, weight: float) -> Callable:
        """w -> the global mean of f over the ranks' shares (f itself in one process)."""
        if not self.distributed:
            return f

        def global_f(w):
            return float(self.sum(np.float64(float(f(w)) if n else 0.0), weight))

        return global_f

    def product(self, make: Callable, flat: np.ndarray, unravel: Callable,
                cbatch: Any) -> Callable:
        """The curvature product of the global curvature batch."""
        if not self.distributed:
            return make(flat, unravel, cbatch)
        if not self.n_curv:
            return lambda v: self.sum(np.zeros_like(flat), self.curv_weight)
        local = make(flat, unravel, cbatch)
        return lambda v: self.sum(local(v), self.curv_weight)

    def precondition_cases(self, n_local: int, limit: int) -> tuple[range, int]:
        """(this rank's positions among the first ``limit`` cases of the global batch, their
        global number N)."""
        if not self.distributed:
            n = min(n_local, limit)
            return range(n), n
        offset = sum(c[0] for c in self.counts[:self.comm.rank])
        total = min(sum(c[0] for c in self.counts), limit)
        return range(0, max(0, min(n_local, total - offset))), total
