"""MLP epoch (WORKLOADS.md, workload 3): pearlnet against PyTorch and a hand-written NumPy loop.

784-256-256-10, ReLU, softmax cross-entropy from logits, Adam(lr 1e-3), batch 128, shuffled,
float32, one epoch over the 60,000 Fashion-MNIST training images (pixels in [0, 1],
standardised with the training set's mean and standard deviation). Prints seconds per epoch
(median over interleaved rounds after a warm-up round) and the test accuracy after those epochs,
with the ratio pearlnet / peer. Threads: 2 (torch.set_num_threads(2); OpenBLAS uses both cores).

Run: python bench/mlp_epoch.py [--epochs 5] [--accuracy-epochs 10]
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


class PearlnetRun:
    """Model.fit as a user calls it: compiled (jit, the default) or not (EagerRun)."""

    jit = True

    def __init__(self, x, y, xt, yt, seed):
        import pearlnet
        from pearlnet import nn
        from pearlnet.optim import Adam

        self.data, self.seed, self.e = (x, y, xt, yt), seed, 0
        self.model = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                                     nn.Dense(256, activation="relu"), nn.Dense(10)], seed=seed)
        self.model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-3),
                           metrics=["accuracy"], jit=self.jit)

    def compile_seconds(self):
        """Time spent compiling (recording, passes, code generation) so far."""
        programs = list(self.model._programs.values())
        update = self.model.optimizer.__dict__.get("_program")
        return sum(p.compile_seconds for p in programs + ([update] if update else []))

    def epoch(self):
        x, y, _, _ = self.data
        self.model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, seed=self.seed + self.e)
        self.e += 1

    def accuracy(self):
        return self.model.evaluate(self.data[2], self.data[3])["accuracy"]


class EagerRun(PearlnetRun):
    jit = False


class TorchRun:
    def __init__(self, x, y, xt, yt, seed):
        import torch

        torch.set_num_threads(2)
        torch.manual_seed(seed)
        self.torch = torch
        self.net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                       torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                       torch.nn.Linear(256, 10))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.lossf = torch.nn.CrossEntropyLoss()
        self.xs, self.ys = torch.from_numpy(x), torch.from_numpy(y)
        self.xt, self.yt = xt, yt
        self.rng = np.random.default_rng(seed)

    def epoch(self):
        order = self.torch.from_numpy(self.rng.permutation(len(self.xs)))
        for i in range(0, len(self.xs), BATCH):
            idx = order[i:i + BATCH]
            self.opt.zero_grad()
            loss = self.lossf(self.net(self.xs[idx]), self.ys[idx])
            loss.backward()
            self.opt.step()

    def accuracy(self):
        with self.torch.no_grad():
            pred = self.net(self.torch.from_numpy(self.xt)).argmax(1).numpy()
        return float((pred == self.yt).mean())


class NumpyRun:
    """The floor: forward, backward and Adam written out by hand, in place where NumPy allows."""

    def __init__(self, x, y, xt, yt, seed):
        self.rng = np.random.default_rng(seed)
        self.data = (x, y, xt, yt)
        sizes = [784, 256, 256, 10]
        self.params = []
        for m, n in zip(sizes[:-1], sizes[1:]):
            self.params += [(self.rng.standard_normal((m, n)) * np.sqrt(2 / m)).astype(np.float32),
                            np.zeros(n, np.float32)]
        self.ms = [np.zeros_like(p) for p in self.params]
        self.vs = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def epoch(self):
        x, y, _, _ = self.data
        order = self.rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = x[idx], y[idx]
            w1, b1, w2, b2, w3, b3 = self.params
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
            self.t += 1
            c1, c2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
            for pr, g, m_, v_ in zip(self.params, grads, self.ms, self.vs):
                m_ *= 0.9
                m_ += 0.1 * g
                v_ *= 0.999
                v_ += 0.001 * g * g
                pr -= 1e-3 * (m_ / c1) / (np.sqrt(v_ / c2) + 1e-8)

    def accuracy(self):
        _, _, xt, yt = self.data
        w1, b1, w2, b2, w3, b3 = self.params
        logits = np.maximum(np.maximum(xt @ w1 + b1, 0) @ w2 + b2, 0) @ w3 + b3
        return float((logits.argmax(1) == yt).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5,
                    help="timed rounds; each round runs one epoch of every system in turn")
    ap.add_argument("--accuracy-epochs", type=int, default=10,
                    help="epochs before the test accuracy is read (0: skip)")
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--systems", default="pearlnet,eager,torch,numpy",
                    help="comma list of pearlnet, eager (jit=False), torch, numpy: PyTorch's "
                         "OpenMP threads and OpenBLAS's can spin against each other in one "
                         "process (WORKLOADS.md), so also compare without torch")
    args = ap.parse_args(argv)
    wanted = set(args.systems.split(","))
    x, y, xt, yt = load(args.data)
    systems = []
    for key, name, cls in (("pearlnet", "pearlnet", PearlnetRun),
                           ("eager", "pearlnet jit=False", EagerRun),
                           ("torch", "PyTorch 2 threads", TorchRun),
                           ("numpy", "NumPy by hand", NumpyRun)):
        if key not in wanted and key != "pearlnet":
            continue
        try:
            systems.append((name, cls(x, y, xt, yt, 0)))
        except ImportError:
            print(f"{name}: not installed")
    # interleaved rounds: the machine is shared, so every system meets the same conditions;
    # the first round is a warm-up
    times = {name: [] for name, _ in systems}
    for _ in range(args.epochs + 1):
        for name, run in systems:
            t0 = time.perf_counter()
            run.epoch()
            times[name].append(time.perf_counter() - t0)
    accs = {}
    if args.accuracy_epochs:
        for name, run in systems:
            for _ in range(args.accuracy_epochs - args.epochs - 1):
                run.epoch()
            accs[name] = run.accuracy()
    ours = np.array(times["pearlnet"][1:])
    print(f"MLP 784-256-256-10 ReLU, Adam 1e-3, batch {BATCH}, float32, Fashion-MNIST "
          f"(60,000 images); {args.epochs} interleaved rounds after a warm-up")
    print(f"{'system':<20}{'s/epoch (median)':>18}{'pearlnet / system':>20}{'test acc':>12}")
    for name, _ in systems:
        t = np.array(times[name][1:])
        ratio = float(np.median(ours / t))  # per round: both saw the same machine
        a = f"{100 * accs[name]:.2f}%" if name in accs else ""
        print(f"{name:<20}{statistics.median(t):>18.2f}{ratio:>20.2f}{a:>12}")
    print(f"pearlnet's compile time (first epoch, included in the warm-up): "
          f"{systems[0][1].compile_seconds():.2f} s")
    if args.accuracy_epochs:
        print(f"(test accuracy after {max(args.accuracy_epochs, args.epochs + 1)} epochs; the "
              f"ratio is the median over rounds of pearlnet's time / the system's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
