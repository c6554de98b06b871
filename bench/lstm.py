"""One LSTM layer, forward and backward: pearlnet against PyTorch's nn.LSTM (issue 7's speed item).

128 units, 50 time steps, batch 64, 28 input features (WORKLOADS.md, workload 6), float32; the
loss is the mean square of the whole output sequence, and each timed call computes it and its
gradient with respect to all parameters. Three systems hold the same weights:
- pearlnet: ``nn.LSTM`` differentiated by the core (a traced Python loop over the steps);
- PyTorch 2.13 CPU ``nn.LSTM`` (forward, zero_grad, backward), gate order and its two biases
  mapped from pearlnet's;
- NumPy by hand: the floor for any NumPy LSTM, forward and backward written out as PyTorch
  organises them (one matmul for the inputs of all steps, a loop for the recurrence, one matmul
  for each weight gradient).
The script first checks that the three agree on the loss and the gradients.

Timing: interleaved rounds after a warm-up, the median of each round's calls, and the ratio
pearlnet / system as the median of the per-round ratios. Threads: 2 (torch.set_num_threads;
OPENBLAS_NUM_THREADS unless already set). A pause precedes each system's turn, because OpenBLAS'
and PyTorch's worker threads keep spinning for a while after their last call and would slow
down whoever runs next. Prints the load average, since the machine may be shared.

Run: python bench/lstm.py [--rounds 7] [--calls 5] [--threads 2] [--pause 0.5]
     python bench/lstm.py --systems torch        (one system alone in the process)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

BATCH, STEPS, FEATURES, UNITS = 64, 50, 28, 128  # WORKLOADS.md, workload 6


def pearlnet_run(x, seed, jit=True):
    """The loss and gradient; compiled with pearlnet.jit (the time loop unrolled in the
    recorded program) or not."""
    import pearlnet
    import pearlnet.numpy as pnp
    from pearlnet import nn

    layer = nn.LSTM(UNITS, return_sequences=True)
    params = layer.init(seed, (STEPS, FEATURES))

    def loss(p, x):
        return pnp.mean(pnp.square(layer.apply(p, x)))

    step = pearlnet.value_and_grad(loss)
    if jit:
        step = pearlnet.jit(step)

    def call():
        value, grads = step(params, x)
        return float(value), grads

    call.step = step
    return params, call


def torch_run(x, params, threads):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    net = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
    n = UNITS
    # pearlnet's blocks are [i, f, o, g] in columns; PyTorch's [i, f, g, o] in rows
    perm = np.concatenate([np.arange(0, 2 * n), np.arange(3 * n, 4 * n), np.arange(2 * n, 3 * n)])
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(params["V"][:, perm].T.copy()))
        net.weight_hh_l0.copy_(torch.from_numpy(params["W"][:, perm].T.copy()))
        net.bias_ih_l0.copy_(torch.from_numpy(params["b"][perm].copy()))
        net.bias_hh_l0.zero_()
    xt = torch.from_numpy(x)

    def call():
        out, _ = net(xt)
        loss = out.pow(2).mean()
        net.zero_grad()
        loss.backward()
        inv = np.argsort(perm)
        return float(loss.detach()), {
            "V": lambda: net.weight_ih_l0.grad.numpy().T[:, inv],
            "W": lambda: net.weight_hh_l0.grad.numpy().T[:, inv],
            "b": lambda: net.bias_ih_l0.grad.numpy()[inv]}  # = bias_hh's: both enter as b

    return call


def numpy_run(x, params):
    """Forward and backward of the LSTM by hand, blocks [i, f, o, g] as pearlnet's."""
    import numpy as np

    V, W, b = params["V"], params["W"], params["b"]
    n, dt = UNITS, V.dtype
    xs = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(STEPS * BATCH, FEATURES)

    def sigmoid(z):
        return 0.5 * np.tanh(0.5 * z) + 0.5

    def call():
        xw = (xs @ V + b).reshape(STEPS, BATCH, 4 * n)
        hs = np.zeros((STEPS + 1, BATCH, n), dt)
        cs = np.zeros((STEPS + 1, BATCH, n), dt)
        gates = np.empty((STEPS, BATCH, 4 * n), dt)
        tcs = np.empty((STEPS, BATCH, n), dt)
        for t in range(STEPS):
            z = xw[t] + hs[t] @ W
            a = gates[t]
            a[:, :3 * n] = sigmoid(z[:, :3 * n])
            a[:, 3 * n:] = np.tanh(z[:, 3 * n:])
            cs[t + 1] = a[:, n:2 * n] * cs[t] + a[:, :n] * a[:, 3 * n:]
            tcs[t] = np.tanh(cs[t + 1])
            hs[t + 1] = a[:, 2 * n:3 * n] * tcs[t]
        out = hs[1:]
        loss = float(np.mean(out * out))
        d_out = out * (2 / out.size)
        dz = np.empty((STEPS, BATCH, 4 * n), dt)
        dh, dc = np.zeros((BATCH, n), dt), np.zeros((BATCH, n), dt)
        for t in range(STEPS - 1, -1, -1):
            a, tc = gates[t], tcs[t]
            i, f, o, g = a[:, :n], a[:, n:2 * n], a[:, 2 * n:3 * n], a[:, 3 * n:]
            gh = d_out[t] + dh
            dc = dc + gh * o * (1 - tc * tc)
            d = dz[t]
            d[:, :n] = dc * g * i * (1 - i)
            d[:, n:2 * n] = dc * cs[t] * f * (1 - f)
            d[:, 2 * n:3 * n] = gh * tc * o * (1 - o)
            d[:, 3 * n:] = dc * i * (1 - g * g)
            dh = d @ W.T
            dc = dc * f
        dz2 = dz.reshape(STEPS * BATCH, 4 * n)
        return loss, {"V": xs.T @ dz2, "W": hs[:-1].reshape(STEPS * BATCH, n).T @ dz2,
                      "b": dz2.sum(axis=0)}

    return call


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds after a warm-up round")
    ap.add_argument("--calls", type=int, default=5, help="forward+backward calls per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pause", type=float, default=0.5,
                    help="seconds of rest before each system's turn")
    ap.add_argument("--systems", default="pearlnet,eager,torch,numpy",
                    help="comma list of pearlnet, eager (jit=False), torch, numpy; e.g. "
                         "--systems pearlnet,numpy without PyTorch in the process (its OpenMP "
                         "threads and OpenBLAS's can spin against each other, WORKLOADS.md) and "
                         "--systems torch alone in another")
    args = ap.parse_args(argv)
    wanted = set(args.systems.split(","))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np

    x = np.random.default_rng(0).standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    params, ours = pearlnet_run(x, 0)
    import time as _time
    t0 = _time.perf_counter()
    ours()
    compile_s = _time.perf_counter() - t0
    # pearlnet's weights are the reference every system copies, and its result the one the
    # others are checked against, whether or not it is timed
    systems = [("pearlnet", ours)] if "pearlnet" in wanted else []
    if "eager" in wanted:
        systems.append(("pearlnet no jit", pearlnet_run(x, 0, jit=False)[1]))
    try:
        if "torch" in wanted:
            systems.append(("PyTorch 2.13 CPU", torch_run(x, params, args.threads)))
    except ImportError:
        print("PyTorch: not installed (pip install torch==2.13.0)")
    if "numpy" in wanted:
        systems.append(("NumPy by hand", numpy_run(x, params)))

    loss, grads = ours()
    for name, call in systems:
        if call is ours:
            continue
        their_loss, their_grads = call()
        diff = max(float(np.linalg.norm(grads[k] - (g() if callable(g) else g))
                         / np.linalg.norm(grads[k])) for k, g in their_grads.items())
        print(f"agreement with {name}: loss {loss:.6f} vs {their_loss:.6f}; gradients differ "
              f"by at most {diff:.1e} (relative, per parameter)")

    load = os.getloadavg()
    times: dict[str, list] = {name: [] for name, _ in systems}
    for _ in range(args.rounds + 1):  # the first round is a warm-up
        for name, call in systems:
            time.sleep(args.pause)
            per_call = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                call()
                per_call.append(time.perf_counter() - t0)
            times[name].append(statistics.median(per_call))
    first = next(iter(times))  # the ratios are to pearlnet, or to the first system timed
    ours_t = np.array(times[first][1:])
    print(f"LSTM {UNITS} units, {STEPS} steps, batch {BATCH}, {FEATURES} features, float32: "
          f"loss and gradient w.r.t. all parameters; {args.rounds} interleaved rounds of "
          f"{args.calls} calls; {args.threads} threads (OpenBLAS "
          f"{os.environ['OPENBLAS_NUM_THREADS']})")
    print(f"{'system':<20}{'ms/call (median)':>18}{first + ' / system':>26}")
    for name, _ in systems:
        t = np.array(times[name][1:])
        ratio = float(np.median(ours_t / t))  # per round: both saw the same machine
        print(f"{name:<20}{1e3 * statistics.median(t):>18.1f}{ratio:>26.2f}")
    print(f"pearlnet's first call (recording and compiling): {compile_s:.2f} s; "
          f"{len(ours.step.program(params, x).eqns)} operations in the program")
    after = os.getloadavg()
    print(f"load average {load[0]:.2f} before, {after[0]:.2f} after (1-minute); "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
