"""LeNet-5 step: pearlnet against PyTorch, forward + backward on one batch.

conv 6@5x5 pad 2 - ReLU - max-pool 2 - conv 16@5x5 - ReLU - max-pool 2 - dense 120 - 84 - 10
(61,706 parameters), softmax cross-entropy from logits, float32, a batch of 128 random 28x28
images. One step = the loss and its gradient with respect to every parameter (no update).
Prints milliseconds per step (median over interleaved rounds after a warm-up) and the ratio
pearlnet / PyTorch per round (median). Threads: PyTorch torch.set_num_threads(2); pearlnet
uses what OpenBLAS is given (both cores unless OPENBLAS_NUM_THREADS says otherwise).

With ``--processes K`` every system runs alone in its own process, K times in turn (pearlnet,
pearlnet no jit, PyTorch, pearlnet, ...), and the ratios are of the medians of neighbouring
processes: PyTorch's threads and allocator in the same process slow NumPy's replay, so systems
are compared in separate processes (docs/jit.md).

Run: python bench/cnn.py [--rounds 30] [--steps 5] [--batch 128] [--processes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


class PearlnetStep:
    """The loss and gradient of model.objective, compiled with pearlnet.jit (EagerStep: not)."""

    jit = True

    def __init__(self, x, y, seed):
        import pearlnet
        from pearlnet.models import lenet5

        self.model = lenet5(seed=seed)
        self.model.compile(loss="categorical_crossentropy", optimizer="sgd")
        model = self.model

        def objective(params, x, y, state):
            return model.objective(params, x, y, state, True)

        self.fn = pearlnet.value_and_grad(objective, has_aux=True)
        if self.jit:
            self.fn = pearlnet.jit(self.fn)
        self.x, self.y = x, y

    def step(self):
        (loss, _), grads = self.fn(self.model.params, self.x, self.y, self.model.state)
        return float(loss)


class EagerStep(PearlnetStep):
    jit = False


class TorchStep:
    threads = 2

    def __init__(self, x, y, seed):
        import torch

        torch.set_num_threads(self.threads)
        torch.manual_seed(seed)
        nn = torch.nn
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
        self.lossf = nn.CrossEntropyLoss()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def step(self):
        self.net.zero_grad(set_to_none=True)
        loss = self.lossf(self.net(self.x), self.y)
        loss.backward()
        return loss.item()


SYSTEMS = {"pearlnet": PearlnetStep, "pearlnet no jit": EagerStep, "PyTorch": TorchStep}


def time_systems(names, args, x, y):
    """{name: seconds per step of each timed round} and pearlnet's first-step seconds.

    Interleaved rounds: the machine may be shared, so every system meets the same conditions;
    the first round is a warm-up. Before each timed block a pause lets the other library's
    worker threads stop spinning (OpenBLAS and OpenMP busy-wait for a while after their last
    task), so neither system is timed while the other one's idle threads hold a core; one
    untimed step then wakes the system's own threads."""
    systems = []
    for name in names:
        try:
            systems.append((name, SYSTEMS[name](x, y, 0)))
        except ImportError:
            print(f"{name}: not installed")
    compile_s = None
    if systems and systems[0][0] == "pearlnet":
        t0 = time.perf_counter()
        systems[0][1].step()
        compile_s = time.perf_counter() - t0
    times = {name: [] for name, _ in systems}
    for _ in range(args.rounds + 1):
        for name, run in systems:
            time.sleep(args.pause)
            run.step()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                run.step()
            times[name].append((time.perf_counter() - t0) / args.steps)
    return {name: t[1:] for name, t in times.items()}, compile_s


def separate_processes(args):
    """Each system alone in a process, ``args.processes`` times in turn; prints the medians
    and the ratios of neighbouring processes."""
    medians = {name: [] for name in SYSTEMS}
    base = [sys.executable, __file__, "--rounds", str(args.rounds), "--steps", str(args.steps),
            "--batch", str(args.batch), "--threads", str(args.threads), "--pause",
            str(args.pause)]
    for _ in range(args.processes):
        for name in SYSTEMS:
            out = subprocess.run([*base, "--only", name], capture_output=True, text=True,
                                 check=True).stdout
            times = json.loads(out.splitlines()[-1])
            if times:
                medians[name].append(statistics.median(times))
    print(f"LeNet-5 forward + backward, batch {args.batch} x 1 x 28 x 28, float32; each system "
          f"alone in a process, {args.processes} processes each in turn, {args.rounds} rounds "
          f"of {args.steps} steps per process; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load average "
          f"{os.getloadavg()[0]:.2f}")
    ours = np.array(medians["pearlnet"])
    print(f"{'system':<20}{'ms/step (medians)':>30}{'pearlnet / system':>24}")
    for name, m in medians.items():
        if not m:
            continue
        ratios = ours / np.array(m)
        print(f"{name:<20}{' '.join(f'{1e3 * v:.2f}' for v in m):>30}"
              f"{' '.join(f'{r:.2f}' for r in ratios):>24}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30,
                    help="timed rounds; each round times --steps steps of every system in turn")
    ap.add_argument("--steps", type=int, default=5, help="steps per system per round")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2,
                    help="PyTorch's threads; set OPENBLAS_NUM_THREADS alike for NumPy")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds of rest before each timed block (see time_systems)")
    ap.add_argument("--processes", type=int, default=0,
                    help="run each system alone in a process, this many times in turn")
    ap.add_argument("--only", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    TorchStep.threads = args.threads
    if args.processes:
        return separate_processes(args)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.batch).astype(np.int64)
    if args.only:
        times, _ = time_systems([args.only], args, x, y)
        print(json.dumps(times.get(args.only, [])))
        return 0
    times, compile_s = time_systems(list(SYSTEMS), args, x, y)
    ours = np.array(times["pearlnet"])
    print(f"LeNet-5 forward + backward, batch {args.batch} x 1 x 28 x 28, float32; "
          f"{args.rounds} interleaved rounds of {args.steps} steps after a warm-up; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'system':<20}{'ms/step (median)':>18}{'pearlnet / system':>20}")
    for name, t in times.items():
        ratio = float(np.median(ours / np.array(t)))  # per round: both saw the same machine
        print(f"{name:<20}{1e3 * statistics.median(t):>18.2f}{ratio:>20.2f}")
    print(f"pearlnet's first step (recording and compiling): {compile_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
