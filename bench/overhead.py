"""Tracer overhead (WORKLOADS.md, workload 2): y = x; 10,000 times y = y * 1.0001 + 0.0001 on a
1-element float64 array; the gradient of sum(y) with respect to x, end to end. Reports
microseconds per op (20,000 ops) for pearlnet and, when installed, PyTorch eager autograd, HIPS
autograd and JAX (eager, no jit), all in this one run, with the ratio pearlnet / peer.

Run: python bench/overhead.py [--steps 10000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def chain_pearlnet(steps: int):
    import pearlnet
    import pearlnet.numpy as pnp

    def f(x):
        y = x
        for _ in range(steps):
            y = y * 1.0001 + 0.0001
        return pnp.sum(y)

    g = pearlnet.grad(f)
    x = np.array([0.5])
    return lambda: g(x)


def chain_pearlnet_jit(steps: int):
    """The same chain compiled: value and gradient replayed without tracers (the value is
    returned too, or the whole program would fold to a constant: the gradient does not
    depend on x)."""
    import pearlnet
    import pearlnet.numpy as pnp

    def f(x):
        y = x
        for _ in range(steps):
            y = y * 1.0001 + 0.0001
        return pnp.sum(y)

    g = pearlnet.jit(pearlnet.value_and_grad(f))
    x = np.array([0.5])
    g(x)  # compile
    return lambda: g(x)


def chain_torch(steps: int):
    import torch

    torch.set_num_threads(2)

    def run():
        x = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
        y = x
        for _ in range(steps):
            y = y * 1.0001 + 0.0001
        y.sum().backward()
        return x.grad

    return run


def chain_autograd(steps: int):
    import autograd
    import autograd.numpy as anp

    def f(x):
        y = x
        for _ in range(steps):
            y = y * 1.0001 + 0.0001
        return anp.sum(y)

    g = autograd.grad(f)
    x = np.array([0.5])
    return lambda: g(x)


def chain_jax(steps: int):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def f(x):
        y = x
        for _ in range(steps):
            y = y * 1.0001 + 0.0001
        return jnp.sum(y)

    g = jax.grad(f)  # eager: no jit, so the per-op dispatch is what is measured
    x = jnp.array([0.5])
    return lambda: g(x).block_until_ready()


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--jax-steps", type=int, default=1_000,
                    help="JAX eager is slow per op; it runs a shorter chain (us/op is per op)")
    args = ap.parse_args(argv)
    ops = 2 * args.steps

    # the answer is known in closed form: dy/dx = 1.0001 ** steps
    expected = 1.0001 ** args.steps
    got = float(chain_pearlnet(args.steps)()[0])
    if abs(got - expected) > 1e-9 * expected:
        print(f"pearlnet gradient {got!r} != {expected!r}", file=sys.stderr)
        return 1

    rows = [("pearlnet", median_seconds(chain_pearlnet(args.steps), args.repeats) / ops * 1e6)]
    peers = [("pearlnet jit", chain_pearlnet_jit, args.steps),
             ("PyTorch eager", chain_torch, args.steps),
             ("HIPS autograd", chain_autograd, args.steps),
             ("JAX eager (no jit)", chain_jax, args.jax_steps)]
    for name, make, steps in peers:
        try:
            fn = make(steps)
        except ImportError:
            rows.append((name, None))
            continue
        rows.append((name, median_seconds(fn, args.repeats if steps == args.steps else 3)
                     / (2 * steps) * 1e6))

    ours = rows[0][1]
    print(f"Tracer overhead: {args.steps} x (y = y * 1.0001 + 0.0001), 1-element float64, "
          f"grad end to end, median of {args.repeats}")
    print(f"{'system':<22}{'us/op':>10}{'pearlnet / system':>20}")
    for name, us in rows:
        if us is None:
            print(f"{name:<22}{'not installed':>10}")
        else:
            print(f"{name:<22}{us:>10.2f}{ours / us:>20.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
