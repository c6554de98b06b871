"""The edge of stability (Cohen, Kaur, Li, Kolter, Talwalkar 2021, "Gradient descent on neural
networks typically occurs at the edge of stability"), reproduced with pearlnet.curvature.

Full-batch gradient descent with step size lr is stable on a quadratic only while the top
Hessian eigenvalue (the *sharpness*) stays below 2/lr. Cohen et al. found that on neural
networks the sharpness first rises ("progressive sharpening") until it reaches 2/lr, and then
hovers just above it while the loss keeps falling, non-monotonically.

Setup, after the paper's: a tanh MLP 784-200-200-10 (pearlnet Dense layers, float32),
squared error on one-hot targets (F = (1/n) sum_i 1/2 |f(x_i) - y_i|^2), full-batch gradient
descent on the first 5,000 Fashion-MNIST training images (pixels /255, centred), weights
N(0, 1/fan_in), every learning rate from the same initialisation (the sharpness is about 33
there). Every ``--every`` steps the sharpness is computed exactly (to Lanczos' tolerance): the
top eigenvalue of ``hessian_operator`` over all 5,000 images by ``top_eigenvalues`` (scipy's
eigsh), warm-started from the previous eigenvector.

Run: python examples/edge_of_stability.py [--steps 3000] [--lrs 0.0667,0.05]

Measured (2026-12-07, AMD EPYC, one BLAS thread, 7-21 minutes per rate on a shared machine):
at lr 2/30 the sharpness falls from 32 to 23, climbs to 2/lr by step 700 and then stays there
(median 30.4 over steps 1,500-3,000, between 29.6 and 31.3) while the loss keeps falling, with
spikes; at lr 2/40 it climbs from 25 to 40 by step 2,025 and then hovers (median 40.4,
between 38.2 and 41.8, over steps 2,100-3,000).

Writes examples/results/edge_of_stability.png (sharpness and loss against steps, 2/lr dashed)
and .json (every number).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import pearlnet
import pearlnet.nn as nn
from pearlnet import curvature
from pearlnet.autodiff import tree_map, value_and_grad

RESULTS = Path(__file__).resolve().parent / "results"


def load(dataset: str, n: int, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first n training images, flattened, /scale, centred (each pixel's mean over the n
    images removed); one-hot targets."""
    from pearlnet import data

    if dataset == "digits":
        (x, y), _ = data.load_digits()
        scale = 16.0
    else:
        (x, y), _ = data.load_fashion_mnist(root=root, download=False)
        scale = 255.0
    x = x[:n].reshape(min(n, len(x)), -1).astype(np.float64) / scale
    x = x - x.mean(axis=0)
    onehot = np.eye(10)[np.asarray(y[:len(x)], dtype=np.int64)]
    return x.astype(np.float32), onehot.astype(np.float32)


def make_model(inputs: int, width: int, depth: int, seed: int) -> Any:
    layers = [nn.Dense(width, activation="tanh", input_shape=(inputs,),
                       kernel_initializer="lecun_normal")]
    layers += [nn.Dense(width, activation="tanh", kernel_initializer="lecun_normal")
               for _ in range(depth - 1)]
    model = pearlnet.Model(layers + [nn.Dense(10, kernel_initializer="lecun_normal")],
                           seed=seed)
    model.compile(loss="squared_error", optimizer="sgd")
    return model


def sharpness(model: Any, params: dict, x: np.ndarray, y: np.ndarray,
              v0: np.ndarray | None) -> tuple[float, np.ndarray, int]:
    """(top Hessian eigenvalue over all of (x, y), its eigenvector, products spent)."""
    op = curvature.hessian_operator(model, params, (x, y))
    top = curvature.top_eigenvalues(op, k=1, tol=1e-3, v0=v0)
    return float(top.values[0]), top.vectors[:, 0], top.matvecs


def run(model: Any, x: np.ndarray, y: np.ndarray, lr: float, steps: int, every: int,
        seed: int = 0, log: Any = None) -> dict:
    """Full-batch GD from the model's initial parameters; the loss every step, the sharpness
    every ``every`` steps (and at the last)."""
    params = model.init(seed)

    def f(p):
        return model._loss(y, model.forward(p, x)[0])

    vg = value_and_grad(f)
    hist = {"lr": lr, "loss": [], "sharpness_step": [], "sharpness": [], "matvecs": 0}
    v0, t0 = None, time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            s, v0, k = sharpness(model, params, x, y, v0)
            hist["sharpness_step"].append(step)
            hist["sharpness"].append(s)
            hist["matvecs"] += k
            if log is not None:
                last = hist["loss"][-1] if hist["loss"] else float("nan")
                log(f"lr {lr:g} step {step:5d}: loss {last:.5f}, sharpness {s:8.3f} "
                    f"(2/lr {2 / lr:.1f}), {time.perf_counter() - t0:.0f} s")
        if step == steps:
            break
        value, g = vg(params)
        hist["loss"].append(float(value))
        if not np.isfinite(float(value)):
            break
        params = tree_map(lambda p, d: p - np.asarray(lr, p.dtype) * d, params, g)
    hist["seconds"] = time.perf_counter() - t0
    return hist


def plot(runs: list[dict], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    from pearlnet.report import plots

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_s, ax_l = fig.subplots(1, 2)
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for h, c in zip(runs, colors):
        ax_s.plot(h["sharpness_step"], h["sharpness"], color=c, marker=".", ms=3,
                  label=f"lr {h['lr']:g}")
        ax_s.axhline(2 / h["lr"], color=c, ls="--", lw=1, label=f"2/lr = {2 / h['lr']:.4g}")
        ax_l.plot(np.arange(len(h["loss"])), h["loss"], color=c, lw=1, label=f"lr {h['lr']:g}")
    ax_s.set_xlabel("gradient descent step")
    ax_s.set_ylabel("sharpness: top Hessian eigenvalue")
    ax_s.legend(fontsize=8)
    ax_s.grid(True, alpha=0.3)
    ax_l.set_yscale("log")
    ax_l.set_xlabel("gradient descent step")
    ax_l.set_ylabel("training loss (full batch)")
    ax_l.legend(fontsize=8)
    ax_l.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    plots.save(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("fashion-mnist", "digits"), default="fashion-mnist")
    p.add_argument("--n", type=int, default=5000, help="training images (full batch)")
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--depth", type=int, default=2, help="hidden layers")
    p.add_argument("--lrs", default="0.0667,0.05",
                   help="learning rates (default 2/30 and 2/40: the sharpness is about 33 at "
                   "initialisation and about 25 after the first steps)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=25, help="steps between sharpness measurements")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(RESULTS / "edge_of_stability"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    x, y = load(args.dataset, args.n, args.data_root)
    model = make_model(x.shape[1], args.width, args.depth, args.seed)
    log = None if args.quiet else (lambda s: print(s, flush=True))
    runs = [run(model, x, y, float(lr), args.steps, args.every, args.seed, log)
            for lr in args.lrs.split(",")]
    arch = "-".join([str(x.shape[1])] + [str(args.width)] * args.depth + ["10"])
    title = (f"Edge of stability: tanh MLP {arch}, squared error, full-batch GD on {len(x)} "
             f"{args.dataset} images")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"settings": vars(args), "runs": runs}))
    try:
        plot(runs, out.with_suffix(".png"), title)
    except ImportError:
        pass
    for h in runs:
        tail = h["sharpness"][len(h["sharpness"]) // 2:]
        print(f"lr {h['lr']:g}: 2/lr {2 / h['lr']:.2f}; sharpness at start "
              f"{h['sharpness'][0]:.2f}, max {max(h['sharpness']):.2f}, median over the second "
              f"half {np.median(tail):.2f}; final loss {h['loss'][-1]:.5f} "
              f"({h['seconds']:.0f} s, {h['matvecs']} Hessian-vector products)")
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
