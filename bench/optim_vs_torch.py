"""pearlnet's optimizers against PyTorch's on the same steps.

A small least-squares problem, loss = 0.5 mean_i |x_i W + b - y_i|^2 with W (5, 3) and b (3,)
in float64, from the same initial parameters. Each framework takes the same number of steps;
the gradient of every step is computed by one NumPy function from that framework's own current
parameters. The table shows the largest absolute difference between the two parameter
trajectories over all steps and entries, and the time per update of each (tiny arrays: this is
per-step overhead, not arithmetic).

Conventions lined up:
- Momentum/Nesterov: ours keeps I = lr * buf (PyTorch's buffer times lr); identical for a
  constant lr. The last row changes lr mid-run to show where the conventions part.
- AdaGrad/RMSProp: ours divides by sqrt(C + eps), PyTorch by sqrt(C) + eps. Both run with
  eps = 1e-30, far below C's entries, so the placement cannot matter. RMSProp with a constant
  lr ends up hopping around the optimum, where g / sqrt(C) with tiny g and C amplifies
  last-bit rounding differences (1e-16 for the first 40 steps, then growing): its difference
  is rounding, amplified, not a different rule.
- AdamW: PyTorch multiplies P by (1 - lr wd) then takes the Adam step; ours subtracts
  lr wd P beside the step, the same number. Ours decays only ndim >= 2 leaves by default, so
  PyTorch gets two parameter groups: W with weight_decay, b without.
- Clipping: torch.nn.utils.clip_grad_norm_ scales by max_norm / (norm + 1e-6), ours by
  max_norm / norm, so that row differs at about 1e-6 relative to the step.

Run: python bench/optim_vs_torch.py [--steps 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pearlnet.optim import SGD, AdaGrad, Adam, ClipByGlobalNorm, Momentum, Nesterov, RMSProp
from pearlnet.optim.schedules import step as step_schedule

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 5))
Y = X @ RNG.standard_normal((5, 3)) + 0.1 * RNG.standard_normal((64, 3))
P0 = {"W": 0.5 * RNG.standard_normal((5, 3)), "b": np.zeros(3)}


def grads(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = (X @ W + b - Y) / len(X)
    return X.T @ r, r.sum(axis=0)


def run_pearlnet(opt, steps: int) -> tuple[list, float]:
    params = {k: v.copy() for k, v in P0.items()}
    state = opt.init(params)
    traj, times = [], []
    for _ in range(steps):
        gW, gb = grads(params["W"], params["b"])
        t0 = time.perf_counter()
        params, state = opt.update(params, {"W": gW, "b": gb}, state)
        times.append(time.perf_counter() - t0)
        traj.append(np.concatenate([params["W"].ravel(), params["b"]]))
    return traj, statistics.median(times)


def run_torch(make, steps: int, clip: float | None = None, lr_at=None) -> tuple[list, float]:
    import torch

    W = torch.tensor(P0["W"], requires_grad=True)
    b = torch.tensor(P0["b"], requires_grad=True)
    opt = make(W, b)
    traj, times = [], []
    for k in range(steps):
        gW, gb = grads(W.detach().numpy(), b.detach().numpy())
        W.grad, b.grad = torch.from_numpy(gW), torch.from_numpy(gb)
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(k)
        t0 = time.perf_counter()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([W, b], clip)
        opt.step()
        times.append(time.perf_counter() - t0)
        traj.append(np.concatenate([W.detach().numpy().ravel(), b.detach().numpy()]))
    return traj, statistics.median(times)


def cases():
    import torch.optim as to

    lr_sched = step_schedule(0.05, 0.5, every=10)
    return [
        ("SGD", SGD(lr=0.1), "SGD", lambda W, b: to.SGD([W, b], lr=0.1), {}),
        ("Momentum", Momentum(lr=0.05, beta=0.9), "SGD(momentum=0.9)",
         lambda W, b: to.SGD([W, b], lr=0.05, momentum=0.9), {}),
        ("Nesterov", Nesterov(lr=0.05, beta=0.9), "SGD(momentum=0.9, nesterov=True)",
         lambda W, b: to.SGD([W, b], lr=0.05, momentum=0.9, nesterov=True), {}),
        ("AdaGrad (eps 1e-30)", AdaGrad(lr=0.1, eps=1e-30), "Adagrad(eps=1e-30)",
         lambda W, b: to.Adagrad([W, b], lr=0.1, eps=1e-30), {}),
        ("RMSProp (eps 1e-30)", RMSProp(lr=0.01, gamma=0.9, eps=1e-30),
         "RMSprop(alpha=0.9, eps=1e-30)",
         lambda W, b: to.RMSprop([W, b], lr=0.01, alpha=0.9, eps=1e-30), {}),
        ("Adam", Adam(lr=0.01), "Adam", lambda W, b: to.Adam([W, b], lr=0.01), {}),
        ("Adam, weight_decay=0.1", Adam(lr=0.01, weight_decay=0.1), "AdamW (W decayed, b not)",
         lambda W, b: to.AdamW([{"params": [W], "weight_decay": 0.1},
                                {"params": [b], "weight_decay": 0.0}], lr=0.01), {}),
        ("ClipByGlobalNorm(Adam, 0.5)", ClipByGlobalNorm(Adam(lr=0.01), 0.5),
         "clip_grad_norm_(0.5) + Adam", lambda W, b: to.Adam([W, b], lr=0.01), {"clip": 0.5}),
        ("Momentum, lr halved every 10", Momentum(lr=lr_sched, beta=0.9),
         "SGD(momentum) + same lr (differs)",
         lambda W, b: to.SGD([W, b], lr=0.05, momentum=0.9), {"lr_at": lr_sched}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    print(f"{args.steps} steps, float64, W (5, 3) + b (3,); torch {torch.__version__}, "
          f"numpy {np.__version__}")
    head = (f"{'pearlnet':30} {'torch.optim':34} {'max |diff|':>10} {'pearlnet us':>11} "
            f"{'torch us':>9} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    for name, opt, tname, make, kw in cases():
        ours, t_ours = run_pearlnet(opt, args.steps)
        theirs, t_theirs = run_torch(make, args.steps, **kw)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs))
        print(f"{name:30} {tname:34} {diff:10.1e} {t_ours * 1e6:11.1f} {t_theirs * 1e6:9.1f} "
              f"{t_ours / t_theirs:6.2f}")


if __name__ == "__main__":
    main()
