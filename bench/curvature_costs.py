"""What curvature costs, in gradients: curvlinops' cost-per-gradient table on CPU (WORKLOADS 8).

For each workload, the time of each computation divided by the time of one gradient of the
same batch in the same run (float32, the models' default initialisation, Fashion-MNIST images
standardised with the training set's mean and std):

- workloads: the MLP 784-256-256-10 (ReLU, cross-entropy from logits, batch 128; WORKLOADS 3),
  LeNet-5 (batch 128; WORKLOADS 5) and the deep autoencoder 784-400-200-100-2-100-200-400-784
  (tanh, linear code and output, squared error, batch 1,000; WORKLOADS 7), each a pearlnet
  Model;
- gradient: ``value_and_grad`` of the batch loss (the unit);
- HVP: ``pearlnet.hvp`` (records the forward and backward passes, then R-passes) and one product
  of ``hessian_operator`` on its recorded batch (R-passes only: the cost per Lanczos/CG step);
- GGN product: ``gauss_newton_vp`` and one product of ``ggn_operator`` on its recorded batch;
- K-FAC factors: ``curvature.KFAC`` (one forward pass, one Monte Carlo backward pass over the
  probes, the A and B products);
- K-FAC matvec: one product of that KFAC operator;
- exact GGN diagonal: ``diag_ggn`` (one backward pass per output: 10 for the classifiers, 784
  for the autoencoder), and its Monte Carlo estimate from one sample (one backward pass);
- per-example gradients: ``curvature.per_example_grads`` (vmap of grad over the batch; the
  autoencoder's, 1,000 x 0.7 M numbers = 2.9 GB, is left out), and their norms by
  ``per_example_grad_norms`` (Goodfellow's identity, no per-case gradient formed). The peers'
  per-example figures are bench/per_example.py's.

Hygiene: every measurement is repeated ``--rounds`` times, the computations interleaved round
by round, after a warm-up round; medians and best rounds are reported with the machine's load
average before and after; a computation taking over 5 s in the warm-up is timed once more only.
The target of issue 22 is measured last: the top 10 GGN
eigenvalues of the MLP over 10,000 training images (``ggn_operator`` in batches of 1,000,
``top_eigenvalues``, tol 1e-3) in at most 60 s.

Run: python bench/curvature_costs.py [--rounds 5] [--skip-target]
Writes bench/results/curvature_costs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pearlnet
import pearlnet.nn as nn
from pearlnet import curvature
from pearlnet.autodiff import gauss_newton_vp, hvp, ravel, value_and_grad
from pearlnet.data import load_fashion_mnist
from pearlnet.models import lenet5

RESULTS = Path(__file__).resolve().parent / "results"


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    (x, y), _ = load_fashion_mnist(download=False)
    x = x.astype(np.float32) / 255.0
    x = (x - x.mean()) / x.std()
    return x[:n], y[:n]


def workloads(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[Any, tuple]]:
    mlp = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                          nn.Dense(256, activation="relu"), nn.Dense(10)], seed=0)
    mlp.compile(loss="categorical_crossentropy", optimizer="sgd")
    lenet = lenet5()
    lenet.compile(loss="categorical_crossentropy", optimizer="sgd")
    sizes = (784, 400, 200, 100, 2, 100, 200, 400, 784)
    linear = {3, 7}
    ae = pearlnet.Model([nn.Dense(k, activation=None if i in linear else "tanh",
                                  input_shape=(m,) if i == 0 else None,
                                  kernel_initializer="lecun_normal")
                         for i, (m, k) in enumerate(zip(sizes[:-1], sizes[1:]))], seed=0)
    ae.compile(loss="squared_error", optimizer="sgd")
    flat = x.reshape(len(x), -1)
    return {"MLP 784-256-256-10, batch 128": (mlp, (flat[:128], y[:128])),
            "LeNet-5, batch 128": (lenet, (x[:128, None], y[:128])),
            "autoencoder 784-...-2-...-784, batch 1000": (ae, (flat[:1000], flat[:1000]))}


def measurements(model: Any, batch: tuple) -> dict[str, Callable[[], Any]]:
    x, y = batch
    y = model._targets(y, len(x), "bench")
    flat, unravel = ravel(model.params)
    flat = np.asarray(flat)
    v = np.random.default_rng(0).standard_normal(flat.size).astype(flat.dtype)

    def net(w):
        return model.forward(unravel(w), x)[0]

    def loss(z):
        return model._loss(y, z)

    def f(w):
        return loss(net(w))

    vg = value_and_grad(f)
    h_op = curvature.hessian_operator(model, None, (x, y))
    g_op = curvature.ggn_operator(model, None, (x, y))
    h_op @ v, g_op @ v  # record once: the operators' products are the per-step cost
    kfac = curvature.KFAC(model, None, (x, y), fisher_type="mc", seed=0)
    per_example = {}
    if len(x) * flat.size * flat.dtype.itemsize <= 1 << 30:  # the tensor fits in 1 GB
        per_example["per-example gradients"] = lambda: curvature.per_example_grads(
            model, None, (x, y))
    per_example["per-example gradient norms"] = lambda: curvature.per_example_grad_norms(
        model, None, (x, y))
    return {
        "gradient": lambda: vg(flat),
        "HVP (hvp, one call)": lambda: hvp(f, flat, v),
        "HVP (operator product)": lambda: h_op @ v,
        "GGN product (gauss_newton_vp)": lambda: gauss_newton_vp(net, loss, flat, v),
        "GGN product (operator product)": lambda: g_op @ v,
        "K-FAC factors (mc, 1 sample)": lambda: curvature.KFAC(model, None, (x, y), seed=0),
        "K-FAC matvec": lambda: kfac @ v,
        "exact GGN diagonal": lambda: curvature.diag_ggn(model, None, (x, y)),
        "MC GGN diagonal (1 sample)": lambda: curvature.diag_ggn(model, None, (x, y),
                                                                 mc_samples=1),
        **per_example,
    }


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def target(x: np.ndarray, y: np.ndarray) -> dict:
    mlp = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                          nn.Dense(256, activation="relu"), nn.Dense(10)], seed=0)
    mlp.compile(loss="categorical_crossentropy", optimizer="sgd")
    t0 = time.perf_counter()
    op = curvature.ggn_operator(mlp, None, (x.reshape(len(x), -1), y), batch_size=1000)
    top = curvature.top_eigenvalues(op, k=10, tol=1e-3)
    seconds = time.perf_counter() - t0
    return {"images": len(x), "seconds": seconds, "products": top.matvecs,
            "eigenvalues": [float(v) for v in top.values]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip-target", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "curvature_costs.json"))
    args = p.parse_args(argv)
    x, y = data(10_000)
    load_before = os.getloadavg()
    table: dict[str, dict] = {}
    for name, (model, batch) in workloads(x, y).items():
        ms = measurements(model, batch)
        times: dict[str, list[float]] = {k: [] for k in ms}
        slow: set[str] = set()
        for r in range(args.rounds + 1):  # round 0 is the warm-up
            for k, fn in ms.items():
                if k in slow and times[k]:
                    continue  # over 5 s (the autoencoder's 784-pass diagonal): timed once
                t = timed(fn)
                if r:
                    times[k].append(t)
                elif t > 5:
                    slow.add(k)
        grad = float(np.median(times["gradient"]))
        table[name] = {k: {"median_s": float(np.median(t)), "best_s": float(np.min(t)),
                           "per_gradient": float(np.median(t)) / grad} for k, t in times.items()}
        print(f"\n{name} (gradient {1e3 * grad:.1f} ms, median of {args.rounds})")
        for k, row in table[name].items():
            print(f"  {k:<34} {1e3 * row['median_s']:9.1f} ms  {row['per_gradient']:7.2f} x "
                  f"(best {1e3 * row['best_s']:.1f} ms)")
    record = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "load_before": load_before,
              "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
              "rounds": args.rounds, "table": table}
    if not args.skip_target:
        record["target"] = target(x, y)
        t = record["target"]
        verdict = "met" if t["seconds"] <= 60 else "NOT met"
        print(f"\ntop 10 GGN eigenvalues of the MLP over {t['images']} images: "
              f"{t['seconds']:.1f} s, {t['products']} products ({verdict}: <= 60 s); "
              f"{', '.join(f'{v:.4g}' for v in t['eigenvalues'])}")
    record["load_after"] = os.getloadavg()
    print(f"load average before {load_before}, after {record['load_after']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
