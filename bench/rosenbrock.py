"""Rosenbrock from (-1.2, 1): Hessian-free (Gauss-Newton and Hessian curvature) against Adam and
Momentum.

f(x, y) = 100 (y - x^2)^2 + (1 - x)^2, minimum 0 at (1, 1), written for Hessian-free as the
residuals r(p) = (10 (y - x^2), 1 - x) and the loss sum(r^2). Every method starts at (-1.2, 1)
in float64 and stops as soon as f < --tol (1e-10) or at its step limit: Hessian-free 100 outer
steps (default settings: damping 1, CG up to 250 iterations, CG-backtracking, Armijo line
search), Adam and Momentum (beta 0.9) 20,000 steps with gradients from ``pearlnet.grad``. The
first-order learning rates are picked by a grid (Adam lr in {1e-3, 3e-3, 1e-2, 3e-2, 1e-1},
Momentum lr in {1e-4, 3e-4, 1e-3, 2e-3}): the winner is the rate reaching f < tol in the fewest
steps, or, if none does, the one with the lowest final f. Every grid point is printed.

Columns: steps (outer steps for HF, updates for the first-order methods); CG iterations (= the
number of curvature-vector products, HF only); gradient evaluations (HF: one per outer step;
first-order: one per update); function evaluations beyond those (HF: CG-backtracking, the
reduction ratio and line-search probes); the final f; wall-clock milliseconds of the whole run
(one run, this machine, including pearlnet's tracing overhead: on a 2-parameter problem the
time is almost all Python overhead, not arithmetic).

Run: python bench/rosenbrock.py [--tol 1e-10] [--hf-steps 100] [--fo-steps 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import pearlnet
import pearlnet.numpy as pnp
from pearlnet.optim import Adam, HessianFree, Momentum

START = (-1.2, 1.0)
ADAM_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
MOMENTUM_LRS = (1e-4, 3e-4, 1e-3, 2e-3)


def residuals(p: Any, batch: Any = None) -> Any:
    """r(p) = (10 (y - x^2), 1 - x): f = sum(r^2) is Rosenbrock's function."""
    return pnp.stack([10 * (p[1] - p[0] ** 2), 1 - p[0]])


def sum_of_squares(r: Any, batch: Any = None) -> Any:
    return pnp.sum(r ** 2)


def rosenbrock(p: Any) -> Any:
    return sum_of_squares(residuals(p))


@dataclass
class Result:
    method: str
    hparams: str
    steps: int
    cg_iters: int | None
    products: int | None
    grad_evals: int
    extra_f_evals: int | None
    final_f: float
    ms: float
    converged: bool


def run_hf(curvature: str, max_steps: int, tol: float) -> Result:
    """Outer HF steps until f < tol; counts CG iterations and the objective evaluations."""
    calls = {"f": 0}

    def counted_loss(r: Any, batch: Any = None) -> Any:
        calls["f"] += 1
        return sum_of_squares(r)

    hf = HessianFree(residuals, counted_loss, curvature=curvature)
    products = {"n": 0, "f": 0}  # B v products, and the loss calls made to build and apply them
    make_product = hf._curvature_product  # wrapped on this instance to count B v products

    def counting_product(*a: Any) -> Any:
        before = calls["f"]
        product = make_product(*a)
        products["f"] += calls["f"] - before

        def counted(v: np.ndarray) -> np.ndarray:
            products["n"] += 1
            before = calls["f"]
            out = product(v)
            products["f"] += calls["f"] - before
            return out
        return counted

    hf._curvature_product = counting_product  # type: ignore[method-assign]
    params = np.array(START, dtype=np.float64)
    t0 = time.perf_counter()
    state = hf.init(params)
    steps = cg = 0
    f = float(rosenbrock(params))
    while f >= tol and steps < max_steps:
        params, state, info = hf.step(params, state)
        steps += 1
        cg += int(info["cg_iters"])
        f = float(info["loss"])
    ms = (time.perf_counter() - t0) * 1e3
    f = float(rosenbrock(params))
    # the loss runs once per gradient, while the curvature operator is built or applied (how
    # often depends on the operator: a recorded one traces it once per outer step) and once per
    # plain objective evaluation; the last are the extra ones
    extra = calls["f"] - steps - products["f"]
    return Result(f"HF ({curvature})", f"damping {hf.damping:g}, cg<={hf.cg_max_iters}", steps,
                  cg, products["n"], steps, extra, f, ms, f < tol)


def run_first_order(name: str, opt: Any, hparams: str, max_steps: int, tol: float) -> Result:
    value_and_grad = pearlnet.value_and_grad(rosenbrock)
    params = np.array(START, dtype=np.float64)
    t0 = time.perf_counter()
    state = opt.init(params)
    steps = 0
    f, g = value_and_grad(params)
    grads = 1
    while float(f) >= tol and steps < max_steps:
        params, state = opt.update(params, np.asarray(g), state)
        steps += 1
        f, g = value_and_grad(params)
        grads += 1
        if not np.isfinite(float(f)):
            break
    ms = (time.perf_counter() - t0) * 1e3
    f = float(f)
    return Result(name, hparams, steps, None, None, grads, None, f, ms, f < tol)


def pick(results: list[Result]) -> Result:
    """The fastest converged run, else the lowest final f (NaN last)."""
    done = [r for r in results if r.converged]
    if done:
        return min(done, key=lambda r: r.steps)
    return min(results, key=lambda r: r.final_f if np.isfinite(r.final_f) else np.inf)


def table(rows: list[Result]) -> str:
    head = (f"{'method':<18} {'hyper-parameters':<22} {'steps':>6} {'CG iters':>9} "
            f"{'B v':>5} {'grad evals':>10} {'extra f':>8} {'final f':>10} {'ms':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cg = "-" if r.cg_iters is None else str(r.cg_iters)
        bv = "-" if r.products is None else str(r.products)
        extra = "-" if r.extra_f_evals is None else str(r.extra_f_evals)
        lines.append(f"{r.method:<18} {r.hparams:<22} {r.steps:>6} {cg:>9} {bv:>5} "
                     f"{r.grad_evals:>10} "
                     f"{extra:>8} {r.final_f:>10.2e} {r.ms:>9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=1e-10, help="stop when f < tol")
    parser.add_argument("--hf-steps", type=int, default=100, help="HF outer-step limit")
    parser.add_argument("--fo-steps", type=int, default=20000, help="first-order step limit")
    args = parser.parse_args(argv)

    hf_rows = [run_hf(c, args.hf_steps, args.tol) for c in ("gauss-newton", "hessian")]

    grid: list[Result] = []
    best: list[Result] = []
    for name, make, lrs in (("Adam", lambda lr: Adam(lr=lr), ADAM_LRS),
                            ("Momentum", lambda lr: Momentum(lr=lr, beta=0.9), MOMENTUM_LRS)):
        runs = []
        for lr in lrs:
            hp = f"lr {lr:g}" + (", beta 0.9" if name == "Momentum" else "")
            runs.append(run_first_order(name, make(lr), hp, args.fo_steps, args.tol))
        grid.extend(runs)
        best.append(pick(runs))

    print(f"Rosenbrock f = 100 (y - x^2)^2 + (1 - x)^2 from {START}, float64; stop at "
          f"f < {args.tol:g} (HF <= {args.hf_steps} outer steps, first-order <= "
          f"{args.fo_steps} steps)\n")
    print("Learning-rate grid (first-order):")
    print(table(grid))
    print("\nResult (first-order rows: the best learning rate of the grid):")
    print(table(hf_rows + best))
    print("\nsteps: outer steps for HF, updates for first-order; CG iters: HF's conjugate-gradient "
          "iterations;\nB v: all curvature-vector products (CG iterations + CG's initial residual "
          "+ the predicted\nreduction, per outer step); extra f: objective evaluations besides "
          "the gradients\n(CG-backtracking, reduction ratio, line search).")
    for r, lrs in zip(best, (ADAM_LRS, MOMENTUM_LRS)):
        lr = float(r.hparams.split()[1].rstrip(","))
        if lr in (lrs[0], lrs[-1]):
            print(f"note: {r.method}'s best rate {lr:g} is at the edge of its grid")
    for r in hf_rows + best:
        if not r.converged:
            print(f"note: {r.method} ({r.hparams}) did not reach f < {args.tol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
