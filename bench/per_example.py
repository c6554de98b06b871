"""Per-example gradients on the Fashion-MNIST MLP (WORKLOADS 3 and 8): pearlnet's vmap of grad
against one batch gradient, torch.func.vmap(grad) and JAX's jit(vmap(grad)), in one run.

The network: 784-256-256-10, ReLU, softmax cross-entropy from logits, float32, batch 128
(the first 128 Fashion-MNIST training images, standardised; random data of that shape with
--random-data). Every framework gets the same parameters and the same images and computes:

- one batch gradient: grad of the batch's mean loss (the unit of the ratios);
- per-example gradients: the 128 gradients of each image's own loss, the whole tensor
  (128 x 269,322 numbers, 138 MB in float32) materialised:
  pearlnet ``vmap(grad(loss), in_axes=(None, 0, 0))`` (plain and under ``jit``),
  ``curvature.per_example_grads`` (the Model path, batch by batch),
  torch ``torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))``,
  JAX ``jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))``;
- per-example gradient norms without the tensor: ``curvature.per_example_grad_norms``
  (Goodfellow's identity through the layer probes).

The floor: writing the per-example tensor once costs at least its bytes over the machine's
memory write bandwidth, measured here by filling an array of the same size (``np.multiply``
into a preallocated buffer: one read and one write of 138 MB). No framework can beat that
figure; the issue's target (at most 2 batch gradients) is compared with it.

Hygiene: warm-up round first (JAX's compilation, jit's recording), then ``--rounds`` rounds
with the computations interleaved; medians and best times; the load average before and after.
Threads: ``--threads 1`` pins BLAS, PyTorch and XLA to one thread (set before the imports).

Run: python bench/per_example.py [--rounds 7] [--threads 1] [--random-data]
Writes bench/results/per_example[_t1].json.
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

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (784, 256, 256, 10)
BATCH = 128


def _pin_threads(argv: list[str]) -> int | None:
    """Read --threads before numpy, torch and jax are imported (they read the environment)."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = n
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       " --xla_cpu_multi_thread_eigen=false"
                                       f" intra_op_parallelism_threads={n}")
            return int(n)
    return None


THREADS = _pin_threads(sys.argv)

import numpy as np  # noqa: E402

import pearlnet  # noqa: E402
import pearlnet.nn as nn  # noqa: E402
import pearlnet.numpy as pnp  # noqa: E402
from pearlnet import curvature  # noqa: E402


def data(random: bool) -> tuple[np.ndarray, np.ndarray]:
    if not random:
        try:
            from pearlnet.data import load_fashion_mnist
            (x, y), _ = load_fashion_mnist(download=False)
            x = x.astype(np.float32).reshape(len(x), -1) / 255.0
            x = (x - x.mean()) / x.std()
            return x[:BATCH].astype(np.float32), y[:BATCH].astype(np.int64)
        except Exception as e:  # noqa: BLE001  (the dataset is optional here)
            print(f"Fashion-MNIST not loaded ({e}); random data of its shape", file=sys.stderr)
    rng = np.random.default_rng(0)
    return rng.standard_normal((BATCH, 784)).astype(np.float32), rng.integers(0, 10, BATCH)


def init_params() -> dict:
    rng = np.random.default_rng(0)
    params = {}
    for k, (m, n) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        params[f"W{k}"] = (rng.standard_normal((m, n)) * np.sqrt(2.0 / m)).astype(np.float32)
        params[f"b{k}"] = np.zeros(n, np.float32)
    return params


# ---- pearlnet ------------------------------------------------------------------------------
def pn_logits(p: dict, x: Any) -> Any:
    h = pnp.relu(x @ p["W0"] + p["b0"])
    h = pnp.relu(h @ p["W1"] + p["b1"])
    return h @ p["W2"] + p["b2"]


def pn_batch_loss(p: dict, x: Any, y: Any) -> Any:
    z = pn_logits(p, x)
    logp = z - pnp.logsumexp(z, axis=-1, keepdims=True)
    return -pnp.sum(logp[np.arange(len(y)), y]) / len(y)


def pn_case_loss(p: dict, x: Any, y: Any) -> Any:
    """One image (784,) and its label: the loss written for one example (what vmap maps)."""
    z = pn_logits(p, x)
    return pnp.logsumexp(z) - z[y]


def pearlnet_cases(params: dict, x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    batch_grad = pearlnet.grad(pn_batch_loss)
    per_example = pearlnet.vmap(pearlnet.grad(pn_case_loss), in_axes=(None, 0, 0))
    jitted_grad = pearlnet.jit(batch_grad)
    jitted = pearlnet.jit(per_example)
    model = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                            nn.Dense(256, activation="relu"), nn.Dense(10)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    return {
        "pearlnet batch gradient": lambda: batch_grad(params, x, y),
        "pearlnet batch gradient (jit)": lambda: jitted_grad(params, x, y),
        "pearlnet vmap(grad)": lambda: per_example(params, x, y),
        "pearlnet jit(vmap(grad))": lambda: jitted(params, x, y),
        "pearlnet curvature.per_example_grads (Model)":
            lambda: curvature.per_example_grads(model, None, (x, y)),
        "pearlnet per_example_grad_norms (Goodfellow, no tensor)":
            lambda: curvature.per_example_grad_norms(model, None, (x, y)),
    }


# ---- PyTorch and JAX -----------------------------------------------------------------------
def torch_cases(params: dict, x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    import torch
    from torch.func import grad, vmap

    if THREADS:
        torch.set_num_threads(THREADS)
    tp = {k: torch.from_numpy(v.copy()) for k, v in params.items()}
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def logits(p, xb):
        h = torch.relu(xb @ p["W0"] + p["b0"])
        h = torch.relu(h @ p["W1"] + p["b1"])
        return h @ p["W2"] + p["b2"]

    def batch_loss(p, xb, yb):
        return torch.nn.functional.cross_entropy(logits(p, xb), yb)

    def case_loss(p, xi, yi):
        return torch.nn.functional.cross_entropy(logits(p, xi[None]), yi[None])

    batch = grad(batch_loss)
    per = vmap(grad(case_loss), in_dims=(None, 0, 0))
    with torch.no_grad():
        pass
    return {"torch.func grad (batch)": lambda: batch(tp, tx, ty),
            "torch.func vmap(grad)": lambda: per(tp, tx, ty)}, torch.__version__


def jax_cases(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[dict, str]:
    import jax
    import jax.numpy as jnp

    jp = {k: jnp.asarray(v) for k, v in params.items()}
    jx, jy = jnp.asarray(x), jnp.asarray(y)

    def logits(p, xb):
        h = jax.nn.relu(xb @ p["W0"] + p["b0"])
        h = jax.nn.relu(h @ p["W1"] + p["b1"])
        return h @ p["W2"] + p["b2"]

    def batch_loss(p, xb, yb):
        z = logits(p, xb)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], axis=1))

    def case_loss(p, xi, yi):
        z = logits(p, xi)
        return jax.nn.logsumexp(z) - z[yi]

    batch = jax.jit(jax.grad(batch_loss))
    per = jax.jit(jax.vmap(jax.grad(case_loss), in_axes=(None, 0, 0)))

    def block(f):
        return lambda: jax.block_until_ready(f(jp, jx, jy))

    return {"JAX jit(grad) (batch)": block(batch),
            "JAX jit(vmap(grad))": block(per)}, jax.__version__


# ---- checks, the floor, the timing ---------------------------------------------------------
def agree(params, x, y) -> float:
    """The largest difference between pearlnet's per-example gradients and a loop's."""
    got = pearlnet.vmap(pearlnet.grad(pn_case_loss), in_axes=(None, 0, 0))(params, x, y)
    worst = 0.0
    for i in (0, 57, BATCH - 1):
        one = pearlnet.grad(pn_case_loss)(params, x[i], y[i])
        worst = max(worst, max(float(np.abs(got[k][i] - one[k]).max()) for k in params))
    return worst


def bandwidth_floor(nbytes: int, rounds: int) -> dict:
    """Seconds to write (and read) ``nbytes``: np.multiply into a preallocated buffer."""
    n = nbytes // 4
    a = np.ones(n, np.float32)
    out = np.empty_like(a)
    np.multiply(a, 2.0, out=out)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        np.multiply(a, 2.0, out=out)
        times.append(time.perf_counter() - t0)
    write_new = []
    for _ in range(rounds):  # a fresh array: page faults included, as a framework's result has
        t0 = time.perf_counter()
        b = a * 2.0
        write_new.append(time.perf_counter() - t0)
        del b
    return {"bytes": nbytes, "copy_into_buffer_s": float(np.median(times)),
            "GB_per_s_read_plus_write": 2 * nbytes / np.median(times) / 1e9,
            "fresh_array_s": float(np.median(write_new))}


def run(cases: dict[str, Callable], rounds: int) -> dict[str, dict]:
    for fn in cases.values():  # warm-up: compilation, recording, first-touch of memory
        fn()
    times: dict[str, list] = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            out = fn()
            times[k].append(time.perf_counter() - t0)
            del out
    return {k: {"median_ms": 1e3 * float(np.median(v)), "best_ms": 1e3 * float(np.min(v))}
            for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="BLAS/torch/XLA threads")
    p.add_argument("--random-data", action="store_true")
    p.add_argument("--no-peers", action="store_true", help="pearlnet only")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    x, y = data(args.random_data)
    params = init_params()
    n_params = sum(v.size for v in params.values())
    load_before = os.getloadavg()
    cases = pearlnet_cases(params, x, y)
    versions = {"numpy": np.__version__, "pearlnet": pearlnet.__version__}
    if not args.no_peers:
        t_cases, versions["torch"] = torch_cases(params, x, y)
        j_cases, versions["jax"] = jax_cases(params, x, y)
        cases.update(t_cases)
        cases.update(j_cases)
    err = agree(params, x, y)
    results = run(cases, args.rounds)
    floor = bandwidth_floor(BATCH * n_params * 4, args.rounds)
    load_after = os.getloadavg()
    unit = results["pearlnet batch gradient"]["median_ms"]
    tf = results.get("torch.func vmap(grad)", {}).get("median_ms")
    print(f"per-example gradients, MLP 784-256-256-10, batch {BATCH}, float32, "
          f"{n_params:,} parameters; threads: {args.threads or 'default'}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"pearlnet vmap(grad) vs a loop of grad: max |difference| {err:.2e}")
    print(f"{'computation':58s} {'median ms':>10s} {'best ms':>9s} {'/ batch grad':>12s}"
          f" {'/ torch.func':>12s}")
    for k, r in results.items():
        ratio_tf = f"{r['median_ms'] / tf:12.2f}" if tf else f"{'':12s}"
        print(f"{k:58s} {r['median_ms']:10.2f} {r['best_ms']:9.2f} "
              f"{r['median_ms'] / unit:12.2f} {ratio_tf}")
    fl = 1e3 * floor["copy_into_buffer_s"]
    print(f"floor: the per-example tensor is {floor['bytes'] / 1e6:.0f} MB; one read+write pass "
          f"of that size takes {fl:.2f} ms ({floor['GB_per_s_read_plus_write']:.1f} GB/s), "
          f"{fl / unit:.2f} batch gradients; into a fresh array "
          f"{1e3 * floor['fresh_array_s']:.2f} ms ({1e3 * floor['fresh_array_s'] / unit:.2f} "
          f"batch gradients)")
    out = Path(args.out) if args.out else RESULTS / (
        "per_example" + (f"_t{args.threads}" if args.threads else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or
        platform.machine(), "threads": args.threads, "load_before": load_before,
        "load_after": load_after, "versions": versions, "max_abs_vs_loop": err,
        "results_ms": results, "floor": floor, "parameters": n_params}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
