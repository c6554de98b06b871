"""pearlnet.jit's first-call compile time and peak memory, per workload, against NumPy by hand.

For each workload (WORKLOADS.md 3: one MLP training step of Model.fit's; 6: the LSTM's loss and
gradient; 5: LeNet-5's loss and gradient; 4: the autoencoder's gradient and Hessian-vector
product, float32 and float64) and each system (pearlnet compiled, pearlnet without jit, the
NumPy-by-hand floor where bench/ has one), a fresh process measures:
- the first call (for jit: recording, passes, code generation and the call; Numba, when
  installed, is imported before it: its import is a process's, not a program's, cost);
- the peak of memory (tracemalloc, which sees every array) above what was held before the
  first call, during it; and in the steady state (calls after a warm-up call, which loads the
  fused kernels), the peak above what was held before them plus the compiled programs'
  persistent buffers (their working memory between calls), in MB.
Compile time target: <= 2 s; memory target: no more than NumPy by hand (steady state).

Run: python bench/jit.py [--calls 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
DATA = Path("/usr/share/datasets/fashion-mnist")


def _mlp(system):
    sys.path.insert(0, str(HERE))
    import mlp_epoch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((128 * 6, 784)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    if system == "numpy":
        run = mlp_epoch.NumpyRun(x, y, x, y, 0)
    else:
        run = (mlp_epoch.PearlnetRun if system == "jit" else mlp_epoch.EagerRun)(x, y, x, y, 0)
    return run.epoch  # six steps of 128


def _lstm(system):
    sys.path.insert(0, str(HERE))
    import lstm

    x = np.random.default_rng(0).standard_normal(
        (lstm.BATCH, lstm.STEPS, lstm.FEATURES)).astype(np.float32)
    params, ours = lstm.pearlnet_run(x, 0, jit=system == "jit")
    return lstm.numpy_run(x, params) if system == "numpy" else ours


def _lenet(system):
    sys.path.insert(0, str(HERE))
    import cnn

    rng = np.random.default_rng(0)
    x = rng.random((128, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 128).astype(np.int64)
    return (cnn.PearlnetStep if system == "jit" else cnn.EagerStep)(x, y, 0).step


def _autoencoder(system, dtype, product):
    sys.path.insert(0, str(HERE))
    import curvature

    x = curvature.load_batch(DATA).astype(dtype) if DATA.exists() else \
        np.random.default_rng(1).standard_normal((1000, 784)).astype(dtype)
    params, v = curvature.init(np.random.default_rng(0))
    params = [(w.astype(dtype), b.astype(dtype)) for w, b in params]
    v = [(w.astype(dtype), b.astype(dtype)) for w, b in v]
    if system == "numpy":
        return _autoencoder_by_hand(x, params)
    if system == "jit":
        return _lazy_jit_suite(curvature, x, params, v)[product]
    return curvature.pearlnet_suite(x, params, v)[product]


def _lazy_jit_suite(curvature, x, params, v):
    """pearlnet_jit_suite without its own first calls (the first call is what is measured)."""
    import pearlnet
    from pearlnet.models import Autoencoder

    ae = Autoencoder(curvature.SIZES[:4], activation="tanh", dtype=x.dtype)
    p, q = curvature.as_tree(params), curvature.as_tree(v)
    grad = pearlnet.jit(pearlnet.value_and_grad(ae.loss))
    hvp = pearlnet.jit(lambda p, q, x: pearlnet.hvp(lambda r: ae.loss(r, x), p, q))
    return {"grad": lambda: grad(p, x), "hvp": lambda: hvp(p, q, x)}


def _autoencoder_by_hand(x, params):
    """The loss and its gradient written out in NumPy (forward, then backward), the memory
    floor: the same job as the compiled ``value_and_grad`` (the loss 0.5 sum r^2 / n of the
    residual r, then the gradient), as a NumPy programmer writes it."""
    linear = {2, 5}

    def grad():
        hs, h = [x], x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i not in linear:
                h = np.tanh(h)
            hs.append(h)
        r = h - x
        loss = 0.5 * np.sum(r * r) / len(x)
        d = r / len(x)
        grads = []
        for i in range(len(params) - 1, -1, -1):
            w, _ = params[i]
            if i not in linear:
                d = d * (1 - hs[i + 1] * hs[i + 1])
            grads.append((hs[i].T @ d, d.sum(0)))
            if i:
                d = d @ w.T
        return loss, grads

    return grad


WORKLOADS = {
    "MLP step (WORKLOADS 3)": (_mlp, ("jit", "eager", "numpy")),
    "LSTM (WORKLOADS 6)": (_lstm, ("jit", "eager", "numpy")),
    "LeNet-5 (WORKLOADS 5)": (_lenet, ("jit", "eager")),
    "autoencoder grad f32": (lambda s: _autoencoder(s, np.float32, "grad"),
                             ("jit", "eager", "numpy")),
    "autoencoder grad f64": (lambda s: _autoencoder(s, np.float64, "grad"),
                             ("jit", "eager", "numpy")),
    "autoencoder hvp f32": (lambda s: _autoencoder(s, np.float32, "hvp"), ("jit", "eager")),
    "autoencoder hvp f64": (lambda s: _autoencoder(s, np.float64, "hvp"), ("jit", "eager")),
}


def measure(workload: str, system: str, calls: int) -> dict:
    """In this process: the first call's time, then peak memory of the first and later calls."""
    make, _ = WORKLOADS[workload]
    fn = make(system)
    try:
        import numba  # noqa: F401  (a process's cost, not the program's)
    except ImportError:
        pass
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    first_peak = tracemalloc.get_traced_memory()[1] - base
    fn()  # warm-up: the fused kernels load at the first replay
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in range(calls):
        fn()
    steady = tracemalloc.get_traced_memory()[1] - held + _buffer_bytes()
    tracemalloc.stop()
    return {"first_s": first, "first_mb": first_peak / 2**20, "steady_mb": steady / 2**20,
            "held_mb": (held - base) / 2**20}


def _buffer_bytes() -> int:
    """The persistent buffers and recycled outputs of every compiled program alive."""
    import gc

    from pearlnet.autodiff.program import Program

    total = 0
    for obj in gc.get_objects():
        if isinstance(obj, Program):
            for shape, dtype, _ in obj.slots + obj.pool_specs:
                total += int(np.prod(shape)) * np.dtype(dtype).itemsize
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("WORKLOAD", "SYSTEM"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.calls)))
        return 0
    print(f"{'workload':<26}{'system':<8}{'first call s':>13}{'peak MB first':>15}"
          f"{'peak MB steady':>16}{'vs NumPy':>10}")
    for workload, (_, systems) in WORKLOADS.items():
        rows = {}
        for system in systems:
            out = subprocess.run([sys.executable, __file__, "--calls", str(args.calls), "--one",
                                  workload, system], capture_output=True, text=True)
            if out.returncode:
                print(f"{workload:<26}{system:<8} failed: {out.stderr.strip()[-300:]}")
                continue
            rows[system] = json.loads(out.stdout.strip().splitlines()[-1])
        for system, r in rows.items():
            ratio = (f"{r['steady_mb'] / rows['numpy']['steady_mb']:.2f}" if "numpy" in rows
                     and rows["numpy"]["steady_mb"] else "")
            print(f"{workload:<26}{system:<8}{r['first_s']:>13.2f}{r['first_mb']:>15.1f}"
                  f"{r['steady_mb']:>16.1f}{ratio:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
