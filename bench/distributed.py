"""Data-parallel training on this machine (WORKLOADS.md, workload 7): allreduce on loopback,
the MLP epoch and a Hessian-free step, one process with 2 BLAS threads against 2 MPI ranks with
1 thread each, and where each step's time goes.

- allreduce: float32 messages of 1 KB to 64 MB between 2 ranks (shared memory on one host):
  median time of 20 calls (5 for the largest), and the bus bandwidth 2(p-1)/p * bytes / time,
  the figure the ring-allreduce model's B stands for.
- MLP (WORKLOADS 3): 784-256-256-10 ReLU, Adam 1e-3, global batch 128, float32, one epoch of
  the 60,000 Fashion-MNIST images through ``Model.fit``; seconds per epoch (median of --epochs
  after a warm-up epoch), and per step: the time inside Allreduce (the message and the wait
  for the slower rank) and packing/unpacking (copying the gradients into one buffer and
  back), from ``MPICommunicator.profile``.
- Hessian-free: the deep autoencoder of bench/hf_autoencoder.py (784-400-200-100-2-100-200-400-
  784, tanh, linear code and output, float32) on 10,000 images, gradient batch 5,000,
  curvature batch 1,000, CG capped at 10 iterations, Martens' defaults otherwise; seconds per
  outer step (median of --hf-steps after a warm-up step) and the same split.

- The ring-allreduce cost model, T(p) = 2(p-1) alpha + 2(p-1)/p * bytes / B (Patarasuk & Yuan
  2009; the model Horovod's and Baidu's ring allreduce follow), with this machine's compute
  times measured at each per-machine share (one process, 2 BLAS threads: the MLP's step on
  128/p images; HF's gradient and loss on 5,000/p, its Gauss-Newton product on 1,000/p),
  predicts the epoch time and the parallel efficiency T_1 / (p T_p) for p = 2..64 machines
  like this one at 10, 25 and 100 Gb/s (alpha = --alpha, 10 us). Strong scaling: the global
  batch stays 128 (Adam) or 5,000/1,000 (HF), as a user who wants the same run faster would
  keep it; "weak eff." is the MLP with 128 images per machine (the global batch growing with
  the machines, as the published ChainerMN and Horovod figures are measured).

The configurations run one after another, alternating, --rounds times; medians and best rounds
are printed. Run: python bench/distributed.py [--rounds 2] [--epochs 3] [--hf-steps 4]
(needs mpiexec: pip install mpi4py mpich). Internal: --worker allreduce|mlp|hf.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


# -- workers (run inside mpiexec or alone) --------------------------------------------------
def fashion(n: int | None = None, standardise: bool = True):
    from pearlnet.data import load_fashion_mnist

    (x, y), _ = load_fashion_mnist(download=False)
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    if n is not None:
        x, y = x[:n], y[:n]
    if standardise:
        x = (x - x.mean()) / x.std()
    return x.astype(np.float32), y.astype(np.int64)


class StepClock:
    """Wall time of every batch (step) and epoch, and the communicator's profile."""

    def __init__(self, comm):
        from pearlnet.train import Callback

        clock = self

        class _Cb(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.epoch_start = time.perf_counter()
                clock.last = clock.epoch_start

            def on_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                clock.steps.append(now - clock.last)
                clock.last = now

            def on_epoch_end(self, epoch, logs=None):
                clock.epochs.append(time.perf_counter() - clock.epoch_start)
                clock.profiles.append(dict(getattr(comm, "profile", None) or {}))

        self.callback = _Cb()
        self.steps, self.epochs, self.profiles = [], [], []


def worker_allreduce(comm) -> dict:
    sizes = [2 ** k for k in range(10, 27, 2)]  # 1 KB .. 64 MB
    rows = []
    for nbytes in sizes:
        a = np.ones(nbytes // 4, dtype=np.float32)
        reps = 20 if nbytes < 2 ** 24 else 5
        times = []
        for _ in range(reps + 2):
            comm.barrier()
            t = time.perf_counter()
            comm.allreduce(a)
            times.append(time.perf_counter() - t)
        t, best = statistics.median(times[2:]), min(times[2:])
        bus = 2 * (comm.size - 1) / comm.size * nbytes / t
        rows.append({"bytes": nbytes, "seconds": t, "best": best, "bus_GBps": bus / 1e9,
                     "best_bus_GBps": 2 * (comm.size - 1) / comm.size * nbytes / best / 1e9})
    return {"allreduce": rows}


def worker_mlp(comm, epochs: int) -> dict:
    import pearlnet
    from pearlnet import nn
    from pearlnet.optim import Adam

    x, y = fashion()
    model = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                            nn.Dense(256, activation="relu"), nn.Dense(10)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-3))
    clock = StepClock(comm)
    if comm.size > 1:
        comm.profile = {}
    model.fit(x, y, batch_size=128, epochs=epochs + 1, verbose=0, seed=0,
              callbacks=[clock.callback], distributed=comm)
    return summarise(clock, comm, epochs, "mlp")


def worker_hf(comm, steps: int) -> dict:
    import pearlnet
    from pearlnet import nn
    from pearlnet.optim import HessianFree

    x, _ = fashion(10_000)
    layers = [nn.Dense(400, activation="tanh", input_shape=(784,),
                       kernel_initializer="lecun_normal")]
    for width in (200, 100):
        layers.append(nn.Dense(width, activation="tanh", kernel_initializer="lecun_normal"))
    layers.append(nn.Dense(2, kernel_initializer="lecun_normal"))
    for width in (100, 200, 400):
        layers.append(nn.Dense(width, activation="tanh", kernel_initializer="lecun_normal"))
    layers.append(nn.Dense(784, kernel_initializer="lecun_normal"))
    model = pearlnet.Model(layers, seed=0)
    model.compile(loss="squared_error",
                  optimizer=HessianFree(cg_max_iters=10, curvature_batch_size=1000))
    clock = StepClock(comm)
    if comm.size > 1:
        comm.profile = {}
    epochs = (steps + 2) // 2 + 1
    model.fit(x, x, batch_size=5000, epochs=epochs, verbose=0, seed=0,
              callbacks=[clock.callback], distributed=comm)
    out = summarise(clock, comm, epochs - 1, "hf", per_step=True)
    out["hf_info"] = {k: v for k, v in model.hf_info.items() if isinstance(v, (int, float))}
    return out


def summarise(clock: StepClock, comm, counted: int, name: str, per_step: bool = False) -> dict:
    """Medians after the warm-up epoch; the profile difference over the counted epochs."""
    first, last = clock.profiles[0], clock.profiles[-1]
    steps_per_epoch = len(clock.steps) // len(clock.epochs)
    counted_steps = clock.steps[steps_per_epoch:]
    n = len(counted_steps)
    prof = {k: (last.get(k, 0) - first.get(k, 0)) / n for k in ("pack", "unpack", "allreduce",
                                                                 "calls", "bytes")}
    return {"name": name, "ranks": comm.size, "epoch_s": statistics.median(clock.epochs[1:]),
            "step_s": statistics.median(counted_steps), "mean_step_s": statistics.mean(
                counted_steps), "steps": n, "per_step": prof}


def worker_compute(repeats: int = 7) -> dict:
    """This machine's compute times (one process) at the per-machine shares of p machines."""
    import pearlnet
    from pearlnet import nn
    from pearlnet.autodiff import gauss_newton_operator, ravel, value_and_grad
    from pearlnet.optim import Adam

    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    machines = [1, 2, 4, 8, 16, 32, 64]
    x, y = fashion()
    mlp = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                          nn.Dense(256, activation="relu"), nn.Dense(10)], seed=0)
    mlp.compile(loss="categorical_crossentropy", optimizer=Adam(1e-3))
    step = mlp._first_order_step()
    from pearlnet.distributed import Shard, SingleProcess
    from pearlnet.nn.random import SampleStream

    def mlp_step(b):
        idx = np.arange(b)
        _, _, apply = step(x[:b], y[:b], SampleStream(0, 0, idx), Shard(SingleProcess(), idx))
        apply()

    out: dict = {"machines": machines,
                 "mlp_step": [timed(lambda b=128 // p: mlp_step(b)) for p in machines],
                 "mlp_params": int(ravel(mlp.params)[0].size)}
    # the HF autoencoder as bench/hf_autoencoder.py has it, through the library's transforms
    sys.path.insert(0, str(HERE.parent))
    import hf_autoencoder as ae

    ae.set_architecture("784-400-200-100-2")
    ae.build_model(np.dtype(np.float32))
    xa = fashion(10_000)[0]
    params = ae.init_params("gaussian", 0, np.dtype(np.float32))
    flat, unravel = ravel(params)
    flat = np.asarray(flat)

    def objective(w, batch):
        return ae.objective(unravel(w), batch)

    grad_t, prod_t, loss_t = [], [], []
    v = np.ones_like(flat) * 1e-3
    for p in machines:
        g, c = xa[:5000 // p], xa[:1000 // p]
        grad_t.append(timed(lambda g=g: value_and_grad(objective)(flat, g)))
        loss_t.append(timed(lambda g=g: objective(flat, g)))
        op = gauss_newton_operator(lambda w, c=c: ae.net(unravel(w), c),
                                   lambda z, c=c: ae.loss(z, c), flat)
        prod_t.append(timed(lambda op=op: op(v)))
    out.update(hf_grad=grad_t, hf_loss=loss_t, hf_product=prod_t, hf_params=int(flat.size))
    return out


def predictions(compute: dict, alpha: float, cg_iters: int, loss_evals: int) -> str:
    """Epoch time and efficiency T_1 / (p T_p) from the ring-allreduce model."""
    lines = []
    machines = compute["machines"]

    def ring(p, nbytes, bandwidth):
        return 0.0 if p == 1 else 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / bandwidth

    mlp_bytes = compute["mlp_params"] * 4
    hf_bytes = compute["hf_params"] * 4
    for gbit in (10, 25, 100):
        bw = gbit * 1e9 / 8
        lines.append(f"\n{gbit} Gb/s, alpha {alpha * 1e6:.0f} us:")
        lines.append(f"{'machines':>9} | {'MLP epoch s':>11} {'eff.':>5} {'comm %':>6} "
                     f"{'weak eff.':>9} | {'HF step s':>9} {'eff.':>5} {'comm %':>6}")
        base_mlp = base_hf = None
        for i, p in enumerate(machines):
            steps = 469
            mlp_comp = compute["mlp_step"][i]
            mlp_comm = ring(p, mlp_bytes, bw)
            mlp_epoch = steps * (mlp_comp + mlp_comm)
            # HF step: gradient, cg_iters products, loss_evals losses (backtracking, rho, line
            # search); allreduces: the gradient, each product, the rho product; 8-byte losses
            hf_comp = (compute["hf_grad"][i] + cg_iters * compute["hf_product"][i]
                       + loss_evals * compute["hf_loss"][i])
            hf_comm = (cg_iters + 2) * ring(p, hf_bytes, bw) + loss_evals * ring(p, 8, bw)
            hf_step = hf_comp + hf_comm
            if p == 1:
                base_mlp, base_hf = mlp_epoch, hf_step
            # weak scaling: 128 images per machine, so the step's compute stays t(128)
            weak = compute["mlp_step"][0] / (compute["mlp_step"][0] + mlp_comm)
            lines.append(f"{p:>9} | {mlp_epoch:>11.2f} {base_mlp / (p * mlp_epoch):>5.2f} "
                         f"{100 * mlp_comm / (mlp_comp + mlp_comm):>6.1f} {weak:>9.2f} | "
                         f"{hf_step:>9.3f} "
                         f"{base_hf / (p * hf_step):>5.2f} {100 * hf_comm / hf_step:>6.1f}")
    return "\n".join(lines)


def run_worker(kind: str, args) -> None:
    from pearlnet import distributed

    comm = distributed.world()
    if kind == "allreduce":
        result = worker_allreduce(comm)
    elif kind == "compute":
        result = worker_compute()
    elif kind == "mlp":
        result = worker_mlp(comm, args.epochs)
    else:
        result = worker_hf(comm, args.hf_steps)
    if comm.rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


# -- the orchestrator --------------------------------------------------------------------------
def launch(kind: str, ranks: int, threads: int, args) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(HERE), "--worker", kind, "--epochs", str(args.epochs),
           "--hf-steps", str(args.hf_steps)]
    if ranks > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks)] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")


def machine() -> str:
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i.get('internal_api')} {i.get('architecture')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "threadpoolctl not installed"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    return (f"{cpu}, {os.cpu_count()} cores; BLAS {blas}; OPENBLAS_CORETYPE="
            f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=["allreduce", "mlp", "hf", "compute"])
    parser.add_argument("--alpha", type=float, default=10e-6,
                        help="latency per message of the modelled network, seconds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hf-steps", type=int, default=4)
    parser.add_argument("--skip", default="",
                        help="comma list of allreduce,mlp,hf,model to skip")
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.worker, args)
        return 0
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")
    if "allreduce" not in skip:
        rows = launch("allreduce", 2, 1, args)["allreduce"]
        print("\nallreduce, 2 ranks on loopback (float32, median):")
        print(f"{'bytes':>12} {'median':>12} {'bus GB/s':>9} {'best':>12} {'bus GB/s':>9}")
        for r in rows:
            print(f"{r['bytes']:>12,} {r['seconds'] * 1e6:>10.1f}us {r['bus_GBps']:>9.2f} "
                  f"{r['best'] * 1e6:>10.1f}us {r['best_bus_GBps']:>9.2f}")
    for kind in ("mlp", "hf"):
        if kind in skip:
            continue
        results: dict = {1: [], 2: []}
        for _ in range(args.rounds):
            results[1].append(launch(kind, 1, 2, args))
            results[2].append(launch(kind, 2, 1, args))
        label = "MLP epoch (batch 128)" if kind == "mlp" else "Hessian-free step (5,000/1,000)"
        print(f"\n{label}:")
        print(f"{'configuration':<26}{'step ms':>9}{'epoch s':>9}{'allreduce':>11}"
              f"{'pack+unpack':>13}{'MB/step':>9}")
        for ranks, rs in results.items():
            step = statistics.median(r["step_s"] for r in rs)
            best = min(r["step_s"] for r in rs)
            epoch = statistics.median(r["epoch_s"] for r in rs)
            p = rs[-1]["per_step"]
            comm_ms = p["allreduce"] * 1e3
            pack_ms = (p["pack"] + p["unpack"]) * 1e3
            name = "1 rank x 2 threads" if ranks == 1 else "2 ranks x 1 thread"
            print(f"{name:<26}{step * 1e3:>9.2f}{epoch:>9.2f}"
                  f"{comm_ms:>8.2f}ms{pack_ms:>10.3f}ms{p['bytes'] / 1e6:>9.2f}"
                  f"   (best step {best * 1e3:.2f} ms; allreduce {comm_ms / step / 10:.1f}%, "
                  f"packing {pack_ms / step / 10:.2f}% of the step)")
            if ranks > 1:  # the shared host's memory bandwidth varies: every round's share
                shares = [100 * (r["per_step"]["pack"] + r["per_step"]["unpack"])
                          / r["mean_step_s"] for r in rs]
                print(f"{'':<26}packing per round: "
                      + ", ".join(f"{v:.2f}%" for v in shares)
                      + f"; median {statistics.median(shares):.2f}%, best {min(shares):.2f}%")
    if "model" not in skip:
        compute = launch("compute", 1, 2, args)
        print("\nmeasured compute (1 process, 2 threads), per step at each machine's share:")
        for i, p in enumerate(compute["machines"]):
            print(f"  p={p:>2}: MLP step {compute['mlp_step'][i] * 1e3:7.2f} ms | HF gradient "
                  f"{compute['hf_grad'][i] * 1e3:7.1f} ms, GN product "
                  f"{compute['hf_product'][i] * 1e3:6.1f} ms, loss "
                  f"{compute['hf_loss'][i] * 1e3:6.1f} ms")
        print(predictions(compute, args.alpha, cg_iters=10, loss_evals=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
