"""MLP epoch (WORKLOADS.md, workload 3): pearlnet against PyTorch and a hand-written NumPy loop.

784-256-256-10, ReLU, softmax cross-entropy from logits, Adam(lr 1e-3), batch 128, shuffled,
float32, one epoch over the 60,000 Fashion-MNIST training images (pixels in [0, 1],
standardised with the training set's mean and standard deviation). Prints seconds per epoch
(median over --epochs epochs after one warm-up epoch) and the test accuracy after those epochs,
with the ratio pearlnet / peer. Threads: 2 (torch.set_num_threads(2); OpenBLAS uses both cores).

Run: python bench/mlp_epoch.py [--epochs 3] [--accuracy-epochs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

BATCH = 128


def load(data: Path):
    from pearlnet.data import load_fashion_mnist

    (x, y), (xt, yt) = load_fashion_mnist(root=data, download=False)
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    xt = xt.reshape(len(xt), -1).astype(np.float32) / 255
    m, s = x.mean(), x.std()
    return (x - m) / s, y.astype(np.int64), (xt - m) / s, yt.astype(np.int64)


def run_pearlnet(x, y, xt, yt, epochs, seed):
    import pearlnet
    from pearlnet import nn
    from pearlnet.optim import Adam

    model = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                            nn.Dense(256, activation="relu"), nn.Dense(10)], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-3), metrics=["accuracy"])
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, seed=seed + e)
        times.append(time.perf_counter() - t0)
    return times, model.evaluate(xt, yt)["accuracy"]


def run_torch(x, y, xt, yt, epochs, seed):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            loss = lossf(net(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        acc = (net(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean()
    return times, float(acc)


def run_numpy(x, y, xt, yt, epochs, seed):
    """The floor: forward, backward and Adam written out by hand, in-place where NumPy allows."""
    rng = np.random.default_rng(seed)
    sizes = [784, 256, 256, 10]
    params = []
    for m, n in zip(sizes[:-1], sizes[1:]):
        params += [(rng.standard_normal((m, n)) * np.sqrt(2 / m)).astype(np.float32),
                   np.zeros(n, np.float32)]
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    t = 0
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = x[idx], y[idx]
            w1, b1, w2, b2, w3, b3 = params
            h1 = np.maximum(xb @ w1 + b1, 0)
            h2 = np.maximum(h1 @ w2 + b2, 0)
            z = h2 @ w3 + b3
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1
            d3 = p / len(yb)
            d2 = (d3 @ w3.T) * (h2 > 0)
            d1 = (d2 @ w2.T) * (h1 > 0)
            grads = [xb.T @ d1, d1.sum(0), h1.T @ d2, d2.sum(0), h2.T @ d3, d3.sum(0)]
            t += 1
            c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
            for pr, g, m_, v_ in zip(params, grads, ms, vs):
                m_ *= 0.9
                m_ += 0.1 * g
                v_ *= 0.999
                v_ += 0.001 * g * g
                pr -= 1e-3 * (m_ / c1) / (np.sqrt(v_ / c2) + 1e-8)
        times.append(time.perf_counter() - t0)
    w1, b1, w2, b2, w3, b3 = params
    logits = np.maximum(np.maximum(xt @ w1 + b1, 0) @ w2 + b2, 0) @ w3 + b3
    return times, float((logits.argmax(1) == yt).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after a warm-up)")
    ap.add_argument("--accuracy-epochs", type=int, default=10,
                    help="epochs before the test accuracy is read (0: skip)")
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args(argv)
    x, y, xt, yt = load(args.data)
    systems = [("pearlnet", run_pearlnet), ("PyTorch 2 threads", run_torch),
               ("NumPy by hand", run_numpy)]
    rows = []
    for name, run in systems:
        try:
            times, _ = run(x, y, xt, yt, args.epochs + 1, 0)
        except ImportError:
            continue
        acc = None
        if args.accuracy_epochs:
            acc = run(x, y, xt, yt, args.accuracy_epochs, 1)[1]
        rows.append((name, statistics.median(times[1:]), acc))
    ours = rows[0][1]
    print(f"MLP 784-256-256-10 ReLU, Adam 1e-3, batch {BATCH}, float32, Fashion-MNIST "
          f"(60,000 images): median of {args.epochs} epochs")
    print(f"{'system':<20}{'s/epoch':>10}{'pearlnet / system':>20}{'test acc':>12}")
    for name, sec, acc in rows:
        a = "" if acc is None else f"{100 * acc:.2f}%"
        print(f"{name:<20}{sec:>10.2f}{ours / sec:>20.2f}{a:>12}")
    if args.accuracy_epochs:
        print(f"(test accuracy after {args.accuracy_epochs} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
