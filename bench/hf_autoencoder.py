"""Hessian-free against tuned first-order methods on a deep autoencoder, at equal wall-clock time.

What is measured: the full training loss each method reaches within the same wall-clock budget
of training: Hessian-free (Martens 2010, Gauss-Newton curvature) against SGD, Momentum, RMSProp
and Adam, each first-order method with its learning rate tuned on a small grid.

- Data: the first --n (10,000) Fashion-MNIST training images, flattened to 784 pixels, /255, then
  standardised with the scalar mean and standard deviation of those images (``--pixels unit``
  keeps [0, 1]: it did not change the outcome, HF/Adam was 1.5 at 60 s, so standardised stays).
  float32: HF's steps in float64 matched float32's (same losses, rho and CG lengths to within a
  few per cent over 8 steps) at twice the cost, so float32 for every method (``--dtype``).
- Model: 784-400-200-100-2-100-200-400-784, tanh on every hidden layer, a linear 2-unit code and
  a linear output, a ``pearlnet.Model`` of Dense layers (so that the library's K-FAC
  preconditioner can read its layers; the initial draws are those of the earlier plain
  function of a parameter list, and HF's first steps are the same to the last digit).
  Loss F = (1/n) sum_i 0.5 ||x_i - z_i||^2 (``pearlnet.nn.losses.squared_error``).
  ``--arch`` sets the encoder (the decoder mirrors it). Martens' deeper CURVES shape,
  ``--arch 784-400-200-100-50-25-6``, did not favour HF either: at --quick's 15 s, Adam 62.0
  against HF 105.0.
- ``--activation sigmoid --init sparse --pixels unit`` is Martens' own setting (logistic units,
  sparse init, pixels in [0, 1]); it does not favour HF either: at 60 s (8 s grid points) RMSProp
  9.70, Adam 10.01, HF 13.57 (1.40x), HF in Martens' regime (10,000/1,000/CG <= 100) 15.83.
- Initialisation: one seed, the same parameters for every method. ``--init gaussian`` (the
  default): weights N(0, 1/fan_in), biases 0. ``--init sparse``: Martens' sparse init, 15
  incoming N(0, 1) weights per unit; with tanh units and standardised pixels it saturates the
  network (initial loss 4,916 against 414) and slows every method (60 s: Adam 111, HF 364,
  Momentum stuck at 275), so it is not the default.
- First-order methods: minibatches of --batch (100) cases, reshuffled every epoch. Each rate of
  the method's grid (GRIDS below) gets --grid-budget (15) seconds; the rate with the lowest full
  training loss then wins and gets the full run. Momentum and RMSProp use beta/gamma 0.9, Adam
  (0.9, 0.999).
- Hessian-free: ``pearlnet.optim.HessianFree(net, loss, curvature="gauss-newton")`` at the
  library's defaults (CG warm start 0.95, Martens' CG stopping rule, CG-backtracking, Armijo line
  search, Levenberg-Marquardt damping with rho on the curvature batch) except: initial damping
  --hf-damping (1), at most --hf-cg-iters (3) CG iterations preconditioned by --hf-precond
  (kronecker: ``kronecker_preconditioner`` below, the library's K-FAC preconditioner), the
  Armijo line search giving up (rejecting the step) after --hf-ls-tries (20) tries instead of
  Martens' 60 (each try costs a loss on the gradient batch, and past 20 the step is under 1%
  of CG's: 60 tries cost up to 10 s per bad step on 10,000 images, 120 s of one 600 s race),
  lambda held at or above --hf-damping-min (1e-4, the preconditioner's own floor: without it
  lambda fell to 1e-25 in one race, where each bad step's x1.5 boost did nothing), the
  gradient (and the backtracking / line-search objective) on --hf-grad-batch (1,000) images
  and the curvature products on --hf-curv-batch (200) of them, both drawn afresh every outer
  step and both growing with the training time t spent, by the factor 1 + t/--hf-growth (30 s:
  5,000/1,000 at 120 s, all 10,000 images and 2,000 from 270 s on; --hf-grad-max stops the
  gradient batch earlier: 5,000 did not help). With this preconditioner
  three CG iterations go further than 25 plain or diagonally preconditioned ones, at a fifth
  of the cost; with fixed 1,000/200 batches the loss stalls after about 60 s (lambda climbs:
  the steps fit the batch's noise), and the growing batches remove that stall. It is the best
  HF found (2026-12-05); the alternatives tried and their losses are in the README. A second
  HF run, "HF-1", uses Martens' regime as the issue suggested it: the gradient on all 10,000
  images, 1,000-case curvature batches, up to 100 CG iterations, no preconditioner
  (--hf-variant).
  CG's products reuse one recorded forward pass per outer step (gauss_newton_operator).
- Clock: every method gets --budget seconds of training time on the wall clock. The clock is
  paused while the full training loss is evaluated (at t = 0, then every budget/--points seconds
  and after every HF outer step), so evaluation costs nobody budget. An HF step that ends after
  the budget is thrown away: the final loss is the one at the last point inside the budget.
  The runs are raced side by side (the one with the least training time so far goes next, for
  about budget/--points seconds or one HF step), so a change in the load of a shared machine
  hits all of them alike; each run's process CPU time is printed to show contention. On a busy
  machine set OPENBLAS_NUM_THREADS=1: with two BLAS threads fighting another process for two
  cores, a 100-case step became 20 times slower here.
- Acceptance protocol (the issue's "equal wall-clock budget"): the race alone on the machine with
  OPENBLAS_NUM_THREADS=2, so each method has the whole machine, and --budget 600. HF/best
  first-order was 0.960, 0.959, 0.896 on seeds 4, 5, 6 (2026-12-06); at 120 s 1.075, 1.103,
  0.962, and with one thread, two races sharing the machine, 0.94-1.05 at 600 s (README).

Outputs: the learning-rate grid, the table of the full runs (winner marked, the ratio of each
HF run's final loss to the best first-order method's), bench/results/hf_autoencoder.png (loss
against seconds, log y) and bench/results/hf_autoencoder.json (every number).

Run: python bench/hf_autoencoder.py [--budget 120] [--quick]   (--quick: 15 s runs, 4 s grid)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import pearlnet
from pearlnet.curvature import KFACPreconditioner
from pearlnet.data import load_fashion_mnist
from pearlnet.nn.initializers import sparse
from pearlnet.nn.losses import squared_error
from pearlnet.optim import SGD, Adam, HessianFree, Momentum, RMSProp

SIZES = (784, 400, 200, 100, 2, 100, 200, 400, 784)
LINEAR = {3, 7}  # the code layer (2 units) and the output layer have no tanh


def set_architecture(encoder: str) -> None:
    """--arch: the encoder's sizes, e.g. 784-400-200-100-50-25-6 (Martens' CURVES
    autoencoder); the decoder mirrors it, the code and output layers are linear."""
    global SIZES, LINEAR
    sizes = [int(k) for k in encoder.split("-")]
    if len(sizes) < 2 or sizes[0] != 784 or min(sizes) < 1:
        raise SystemExit(f"--arch: expected sizes 784-...-code, got {encoder!r}")
    SIZES = tuple(sizes + sizes[-2::-1])
    LINEAR = {len(sizes) - 2, len(SIZES) - 2}
RESULTS = Path(__file__).resolve().parent / "results"
# the second HF run by default: Martens' regime (the whole training set for the gradient, a
# large curvature batch, a long CG budget), the settings the issue suggested
MARTENS_STYLE = ("grad=10000,curv=1000,cg=100,damping=1,precond=none,growth=0,ls=60,dmin=0,"
                 "gmax=0")

# learning-rate grids of the first-order methods (the loss sums over 784 pixels, so the
# gradients are large and the plain-gradient rates small)
GRIDS: dict[str, tuple[float, ...]] = {
    "SGD": (3e-4, 1e-3, 3e-3, 6e-3, 1e-2),
    "Momentum": (3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    "RMSProp": (3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    "Adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
}

Params = dict  # {layer name: {"W": (in, out), "b": (out,)}}, a pearlnet.Model's parameters
PRECONDITIONERS = ("none", "diagonal", "kronecker")


# ---- data, model, initialisation -------------------------------------------------------------
def load_images(n: int, pixels: str, dtype: np.dtype, root: str | None) -> np.ndarray:
    """The first n training images as (n, 784) rows: /255, then standardised (scalar mean and
    std of these n images) unless pixels == "unit"."""
    (x, _), _ = load_fashion_mnist(root=root, download=False)
    x = x[:n].reshape(n, -1).astype(np.float64) / 255.0
    if pixels == "standardised":
        x = (x - x.mean()) / x.std()
    return np.ascontiguousarray(x, dtype=dtype)


ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid"}
ACTIVATION = "tanh"  # the hidden units' nonlinearity (--activation)
MODEL: Any = None  # the network as a pearlnet.Model of Dense layers (build_model)


def build_model(dtype: np.dtype) -> Any:
    """The autoencoder as a Model of Dense layers (hidden ACTIVATION, linear code and output):
    the library's K-FAC preconditioner reads its layers."""
    global MODEL
    layers = [pearlnet.nn.Dense(k, activation=None if i in LINEAR else ACTIVATION,
                                input_shape=(m,) if i == 0 else None, dtype=dtype)
              for i, (m, k) in enumerate(zip(SIZES[:-1], SIZES[1:]))]
    MODEL = pearlnet.Model(layers, seed=0)
    MODEL.compile(loss="squared_error", optimizer="sgd")
    return MODEL


def init_params(kind: str, seed: int, dtype: np.dtype) -> Params:
    """The same draws as always (weights in layer order, then the layer's zero bias), as the
    Model's parameter dict."""
    rng = np.random.default_rng(seed)
    params = {}
    for layer, (m, k) in zip(MODEL.layers, zip(SIZES[:-1], SIZES[1:])):
        if kind == "gaussian":
            w = rng.standard_normal((m, k)) / np.sqrt(m)
        else:
            w = sparse(connections=15, std=1.0)(rng, (m, k), np.float64)
        params[layer.name] = {"W": np.asarray(w, dtype=dtype), "b": np.zeros(k, dtype=dtype)}
    return params


def net(params: Any, batch: Any) -> Any:
    """The autoencoder's reconstruction of ``batch`` (its input is its target)."""
    return MODEL.forward(params, batch)[0]


def loss(outputs: Any, batch: Any) -> Any:
    """(1/n) sum_i 0.5 ||x_i - z_i||^2."""
    return squared_error(batch, outputs)


def objective(params: Any, batch: Any) -> Any:
    return loss(net(params, batch), batch)


def full_loss(params: Params, x: np.ndarray, chunk: int = 5000) -> float:
    """The training loss on all of x (in chunks, float64 accumulation)."""
    total = 0.0
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        total += float(objective(params, xb)) * len(xb)
    return total / len(x)


def kronecker_preconditioner(seed: int = 0) -> Any:
    """HessianFree(preconditioner=...): the library's K-FAC preconditioner
    (``pearlnet.curvature.KFACPreconditioner``: M = blockdiag (A + pi gamma I) (x)
    (B + gamma/pi I), gamma = sqrt(lambda + 1e-4), Martens & Grosse 2015, sections 3 and 6.3)
    with this benchmark's settings: factors from the first 200 cases of the gradient batch,
    one Gauss-Newton sample at the outputs, running averages with decay 0.95, inverses renewed
    every 5 outer steps. The batch is the inputs, which are also the targets."""
    return KFACPreconditioner(MODEL, cases=200, decay=0.95, floor=1e-4, every=5,
                              fisher_type="mc", seed=seed, targets=lambda batch: (batch, batch))


# ---- the clocked runs ------------------------------------------------------------------------
@dataclass
class Run:
    method: str
    hparams: dict
    curve: list[tuple[float, float]] = field(default_factory=list)  # (seconds, full loss)
    steps: int = 0
    seconds: float = 0.0  # training time at the last point inside the budget
    final_loss: float = float("inf")
    clock: float = 0.0  # training time spent so far (a discarded last step included)
    cpu: float = 0.0  # process CPU time spent training (all threads), to show contention
    info: dict = field(default_factory=dict)

    def record(self, t: float, value: float) -> None:
        self.curve.append((t, value))
        self.seconds, self.final_loss = t, value if np.isfinite(value) else float("inf")


class Stopwatch:
    """Training time of one run: ``with watch:`` around training only."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def __enter__(self) -> Stopwatch:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.run.clock += time.perf_counter() - self.t0
        self.run.cpu += time.process_time() - self.c0


def first_order(name: str, opt: Any, hparams: dict, params: Params, x: np.ndarray,
                budget: float, batch: int, seed: int, interval: float) -> tuple[Run, Iterator]:
    """Minibatch steps until the training clock reaches ``budget``; the full loss (clock
    paused) every ``interval`` seconds. Returns the run and a generator that trains one
    interval per ``next``."""
    run = Run(name, hparams)

    def chunks() -> Iterator[None]:
        nonlocal params
        rng = np.random.default_rng(seed)
        vg = pearlnet.value_and_grad(objective)
        run.record(0.0, full_loss(params, x))
        state = opt.init(params)
        order, pos = rng.permutation(len(x)), 0
        watch = Stopwatch(run)
        while run.clock < budget:
            stop = min(run.clock + interval, budget)
            with watch, np.errstate(over="ignore", invalid="ignore"):  # a diverging rate
                t0, start = time.perf_counter(), run.clock
                while start + time.perf_counter() - t0 < stop:
                    if pos + batch > len(x):
                        order, pos = rng.permutation(len(x)), 0
                    xb = x[order[pos:pos + batch]]
                    pos += batch
                    _, g = vg(params, xb)
                    params, state = opt.update(params, g, state)
                    run.steps += 1
            with np.errstate(over="ignore", invalid="ignore"):
                value = full_loss(params, x)
            run.record(min(run.clock, budget), value)
            run.info["epochs"] = run.steps * batch / len(x)
            if not np.isfinite(value):
                break
            yield

    return run, chunks()


def hessian_free(params: Params, x: np.ndarray, budget: float, grad_batch: int,
                 curv_batch: int, cg_iters: int, damping: float, seed: int,
                 label: str = "HF", precond: str = "none",
                 growth: float = 0.0, line_search_tries: int = 60,
                 damping_min: float = 0.0, grad_max: int = 0) -> tuple[Run, Iterator]:
    """Outer HF steps until the training clock passes ``budget``; a step that ends past it is
    discarded. The full loss is evaluated (clock paused) after every step, one step per
    ``next``. With ``growth`` > 0 both batches grow with the training time t already spent,
    by the factor 1 + t/growth (the gradient batch at most ``grad_max``, 0: all of x): cheap
    noisy steps first, more exact ones once the easy decrease is had (Byrd et al. 2012 grow
    the sample in the same spirit; Martens 2010, section 4.6, argues for large gradient
    batches)."""
    hparams = {"GN, grad batch": grad_batch, "curv batch": curv_batch, "cg_max_iters": cg_iters,
               "damping": damping}
    if precond != "none":
        hparams["preconditioner"] = precond
    if growth > 0:
        hparams["batches grow, s"] = growth
    if line_search_tries != 60:
        hparams["line search tries"] = line_search_tries
    if damping_min > 0:
        hparams["damping_min"] = damping_min
    limit = grad_max if 0 < grad_max < len(x) else len(x)  # the gradient batch's largest size
    if limit < len(x):
        hparams["grad batch at most"] = limit
    run = Run(label, hparams)

    def chunks() -> Iterator[None]:
        nonlocal params
        rng = np.random.default_rng(seed)
        hf = HessianFree(net, loss, curvature="gauss-newton", damping=damping,
                         damping_min=damping_min,
                         cg_max_iters=cg_iters, line_search_tries=line_search_tries,
                         preconditioner={"none": False, "diagonal": True}.get(
                             precond, kronecker_preconditioner(seed=seed)))
        run.record(0.0, full_loss(params, x))
        state = hf.init(params)
        watch, log = Stopwatch(run), []
        run.info.update({"cg_iters_total": 0, "steps_log": log})
        while run.clock < budget:
            # both batches grow by one factor, which stops when the gradient batch reaches limit
            scale = min(1.0 + run.clock / growth if growth > 0 else 1.0, limit / grad_batch)
            n_grad = min(int(grad_batch * scale), limit)
            n_curv = min(int(curv_batch * scale), n_grad)
            with watch:
                if n_grad >= len(x):
                    gb = x
                else:
                    gb = x[rng.choice(len(x), n_grad, replace=False)]
                cb = gb[rng.choice(len(gb), n_curv, replace=False)] \
                    if n_curv < len(gb) else None
                new_params, state, info = hf.step(params, state, gb, cb)
            if run.clock > budget:
                run.info["discarded_step_ends_at"] = run.clock
                break
            params = new_params
            run.steps += 1
            run.info["cg_iters_total"] += int(info["cg_iters"])
            value = full_loss(params, x)
            run.record(run.clock, value)
            log.append({"t": round(run.clock, 2), "loss": value, "lambda": info["lambda"],
                        "grad_batch": n_grad, "curv_batch": n_curv,
                        "rho": info["rho"], "cg_iters": info["cg_iters"],
                        "rate": info["rate"]})
            if not np.isfinite(value):
                break
            yield

    return run, chunks()


def race(entries: list[tuple[Run, Iterator]]) -> None:
    """Advance the runs in turns, always the one with the least training time so far, so that
    they proceed side by side and a change in the machine's load hits them all alike."""
    active = list(entries)
    while active:
        entry = min(active, key=lambda e: e[0].clock)
        try:
            next(entry[1])
        except StopIteration:
            active.remove(entry)


# ---- the experiment --------------------------------------------------------------------------
def make_optimizer(name: str, lr: float) -> tuple[Any, dict]:
    if name == "SGD":
        return SGD(lr=lr), {"lr": lr}
    if name == "Momentum":
        return Momentum(lr=lr, beta=0.9), {"lr": lr, "beta": 0.9}
    if name == "RMSProp":
        return RMSProp(lr=lr, gamma=0.9), {"lr": lr, "gamma": 0.9}
    return Adam(lr=lr), {"lr": lr, "betas": (0.9, 0.999)}


def fmt_hparams(h: dict) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in h.items()
                     if k != "betas")


def print_table(runs: list[Run], winner: Run | None = None) -> None:
    w = max(len(fmt_hparams(r.hparams)) for r in runs)
    head = (f"{'':2}{'method':<9} {'hyper-parameters':<{w}} {'final loss':>11} {'steps':>7} "
            f"{'time s':>7}")
    print(head)
    print("-" * len(head))
    for r in runs:
        mark = "* " if r is winner else "  "
        print(f"{mark}{r.method:<9} {fmt_hparams(r.hparams):<{w}} {r.final_loss:>11.4f} "
              f"{r.steps:>7} {r.seconds:>7.1f}")


def plot(runs: list[Run], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6.5))
    for r in runs:
        t, v = zip(*r.curve)
        label = f"{r.method} ({fmt_hparams(r.hparams)})"
        ax.plot(t, v, label=label, marker="." if r.method.startswith("HF") else None,
                lw=2 if r.method.startswith("HF") else 1.2)
    ax.set_yscale("log")
    ax.set_xlabel("training wall-clock seconds (loss evaluation excluded)")
    ax.set_ylabel("training loss on all images")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_hf(spec: str, defaults: dict) -> dict:
    """"grad=5000,curv=1000,cg=50,damping=1,precond=1" -> HF settings (missing keys:
    defaults)."""
    out = dict(defaults)
    for item in filter(None, spec.split(",")):
        key, value = item.split("=")
        if key not in out:
            raise ValueError(f"--hf-variant: unknown key {key!r}; known: {', '.join(out)}")
        out[key] = (float(value) if key in ("damping", "growth", "dmin") else value
                    if key == "precond" else int(value))
        if key == "precond" and value not in PRECONDITIONERS:
            raise ValueError(f"--hf-variant: precond must be one of {PRECONDITIONERS}, got "
                             f"{value!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=120.0, help="seconds per method (full runs)")
    p.add_argument("--grid-budget", type=float, default=15.0,
                   help="seconds per learning rate in the grid search")
    p.add_argument("--quick", action="store_true", help="15 s budgets, 4 s grid points")
    p.add_argument("--arch", default="784-400-200-100-2",
                   help="encoder sizes; the decoder mirrors them (default: the issue's)")
    p.add_argument("--n", type=int, default=10000, help="number of training images")
    p.add_argument("--pixels", choices=("standardised", "unit"), default="standardised")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), default="tanh",
                   help="hidden units (Martens 2010 used logistic sigmoid units)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="float32 (default, about twice as fast) or float64")
    p.add_argument("--init", choices=("gaussian", "sparse"), default="gaussian")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=100, help="first-order minibatch size")
    p.add_argument("--methods", default="SGD,Momentum,RMSProp,Adam",
                   help="comma-separated first-order methods to run ('' for none)")
    p.add_argument("--lrs", default=None,
                   help="skip the grid for these: fixed rates, e.g. SGD=1e-3,Adam=1e-3")
    p.add_argument("--hf-grad-batch", type=int, default=1000,
                   help="HF gradient batch, resampled every outer step (all images when >= --n)")
    p.add_argument("--hf-curv-batch", type=int, default=200,
                   help="HF curvature batch, resampled every outer step")
    p.add_argument("--hf-cg-iters", type=int, default=3, help="HF cg_max_iters")
    p.add_argument("--hf-damping", type=float, default=1.0, help="HF initial damping")
    p.add_argument("--hf-precond", choices=PRECONDITIONERS, default="kronecker",
                   help="CG's preconditioner: Martens' diagonal (4.7), Kronecker-factored "
                        "(kronecker_preconditioner) or none")
    p.add_argument("--hf-growth", type=float, default=30.0,
                   help="HF's batches grow by the factor 1 + t/growth after t seconds of "
                        "training (0: fixed batches)")
    p.add_argument("--hf-ls-tries", type=int, default=20,
                   help="HF's Armijo line search gives up (rejects the step) after this many "
                        "tries (Martens: 60)")
    p.add_argument("--hf-damping-min", type=float, default=1e-4,
                   help="HF's floor on lambda (HessianFree damping_min; Martens: 0)")
    p.add_argument("--hf-grad-max", type=int, default=0,
                   help="the growing gradient batch stops at this size (0: all the images)")
    p.add_argument("--hf-variant", action="append", default=None,
                   help="extra HF runs beside the main one, e.g. 'grad=5000,curv=500,cg=50' "
                        "(repeatable; default: one Martens-style run "
                        f"'{MARTENS_STYLE}'; 'none' for no extra run)")
    p.add_argument("--points", type=int, default=60, help="loss evaluations per run")
    p.add_argument("--data", default=None, help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--out", default=str(RESULTS / "hf_autoencoder"),
                   help="output path without suffix (.png and .json are added)")
    args = p.parse_args(argv)
    if args.quick:
        args.budget, args.grid_budget = 15.0, 4.0
    if args.hf_variant is None:
        args.hf_variant = [MARTENS_STYLE]
    args.hf_variant = [v for v in args.hf_variant if v != "none"]

    global ACTIVATION
    set_architecture(args.arch)
    ACTIVATION = ACTIVATIONS[args.activation]
    dtype = np.dtype(args.dtype)
    build_model(dtype)
    x = load_images(args.n, args.pixels, dtype, args.data)
    params0 = init_params(args.init, args.seed, dtype)
    arch = "-".join(map(str, SIZES))
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"Autoencoder {arch} ({args.activation}, linear code and output), squared error; "
          f"{args.n} Fashion-MNIST images ({args.pixels} pixels, {args.dtype}), init {args.init} "
          f"(seed {args.seed}); budget {args.budget:g} s per method; OPENBLAS_NUM_THREADS "
          f"{threads}; load average {os.getloadavg()[0]:.2f}")
    print(f"initial training loss {full_loss(params0, x):.4f}\n", flush=True)

    # the learning-rate grids: every grid point of every method raced side by side
    fixed = dict(kv.split("=") for kv in args.lrs.split(",")) if args.lrs else {}
    methods = [m for m in args.methods.split(",") if m]
    chosen = {m: float(fixed[m]) for m in methods if m in fixed}
    grid = [first_order(m, *make_optimizer(m, lr), params0, x, args.grid_budget, args.batch,
                        args.seed, args.grid_budget / 3)
            for m in methods if m not in fixed for lr in GRIDS[m]]
    race(grid)
    grid_rows = [{"method": r.method, "lr": r.hparams["lr"], "loss": r.final_loss,
                  "steps": r.steps, "seconds": r.seconds, "cpu": r.cpu} for r, _ in grid]
    if grid:
        print(f"Learning-rate grid: {args.grid_budget:g} s of training per rate, minibatch "
              f"{args.batch}; full training loss at the end")
    for m in methods:
        rows = [g for g in grid_rows if g["method"] == m]
        if not rows:
            continue
        for g in rows:
            print(f"  {m:<9} lr {g['lr']:<7g} loss {g['loss']:>12.4g}  ({g['steps']} steps, "
                  f"cpu {g['cpu']:.1f} s)")
        best = min(rows, key=lambda g: g["loss"])
        if not np.isfinite(best["loss"]):
            print(f"  {m}: every rate diverged; skipped")
            continue
        chosen[m] = best["lr"]
        edge = " (at the edge of the grid)" if best["lr"] in (GRIDS[m][0], GRIDS[m][-1]) \
            else ""
        print(f"  {m:<9} winner lr {best['lr']:g}{edge}", flush=True)

    # the full runs, raced side by side
    interval = args.budget / args.points
    entries = []
    for m, lr in chosen.items():
        opt, hp = make_optimizer(m, lr)
        hp["batch"] = args.batch
        entries.append(first_order(m, opt, hp, params0, x, args.budget, args.batch, args.seed,
                                   interval))
    base = {"grad": min(args.hf_grad_batch, args.n), "curv": args.hf_curv_batch,
            "cg": args.hf_cg_iters, "damping": args.hf_damping, "precond": args.hf_precond,
            "growth": args.hf_growth, "ls": args.hf_ls_tries, "dmin": args.hf_damping_min,
            "gmax": args.hf_grad_max}
    hf_settings = [base] + [parse_hf(v, base) for v in args.hf_variant]
    for i, h in enumerate(hf_settings):
        entries.append(hessian_free(params0, x, args.budget, min(h["grad"], args.n), h["curv"],
                                    h["cg"], h["damping"], args.seed,
                                    "HF" if i == 0 else f"HF-{i}", h["precond"],
                                    h["growth"], h["ls"], h["dmin"], h["gmax"]))
    load_before = os.getloadavg()
    race(entries)
    runs = [r for r, _ in entries]
    fo_runs = [r for r in runs if not r.method.startswith("HF")]
    hf_runs = [r for r in runs if r.method.startswith("HF")]

    winner = min(runs, key=lambda r: r.final_loss)
    print(f"\nFull runs, {args.budget:g} s of training each, raced side by side "
          f"(* = lowest final training loss):")
    print_table(runs, winner)
    best_fo = min(fo_runs, key=lambda r: r.final_loss) if fo_runs else None
    ratios = {r.method: r.final_loss / best_fo.final_loss if best_fo else float("nan")
              for r in hf_runs}
    ratio = ratios["HF"]
    if best_fo:
        print()
        for name, q in ratios.items():
            verdict = "lower" if q < 1 else "NOT lower"
            print(f"{name} final loss / best first-order final loss ({best_fo.method}) = "
                  f"{q:.3f}: {name} is {verdict}")
    print("CPU seconds used (all threads): " + ", ".join(f"{r.method} {r.cpu:.0f}" for r in runs))
    for r in hf_runs:
        print(f"{r.method} steps (t, full loss, damping used, rho, CG iterations, gradient "
              "batch):")
        print("  " + "; ".join(f"{s['t']:.0f}s {s['loss']:.2f} lam {s['lambda']:.3g} "
                               f"rho {s['rho']:.2f} cg {s['cg_iters']} b {s['grad_batch']}"
                               for s in r.info["steps_log"]))
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before the full runs {_load(load_before)}, after "
          f"{_load(load_after)}")

    out = Path(args.out)
    title = (f"Autoencoder {arch} ({args.activation}), squared error, {args.n} Fashion-MNIST "
             "images\n"
             f"{args.pixels} pixels, {args.dtype}, init {args.init}; "
             f"{args.budget:g} s of training per method")
    plot(runs, out.with_suffix(".png"), title)
    record = {"settings": vars(args), "openblas_num_threads": threads,
              "load_average_before": load_before, "load_average_after": load_after,
              "grid": grid_rows, "chosen_lrs": chosen, "runs": [asdict(r) for r in runs],
              "winner": winner.method, "hf_over_best_first_order": ratio,
              "hf_runs_over_best_first_order": ratios,
              "best_first_order": best_fo.method if best_fo else None}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(_finite(record), indent=1))
    print(f"\nwrote {out.with_suffix('.png')} and {out.with_suffix('.json')}")
    return 0


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{a:.2f}" for a in avg)


def _finite(o: Any) -> Any:
    """JSON-ready: inf/NaN become None, NumPy scalars Python numbers, tuples lists."""
    if isinstance(o, dict):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


if __name__ == "__main__":
    sys.exit(main())
