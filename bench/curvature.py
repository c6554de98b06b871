"""Curvature products (WORKLOADS.md, workload 4), pearlnet against PyTorch and JAX in one run.

Autoencoder 784-512-128-2-128-512-784, tanh on hidden layers, linear code and output, loss
0.5 * sum of squares / batch, batch = the first 1,000 Fashion-MNIST training images (pixels in
[0, 1], standardised with the training set's mean and standard deviation), weights N(0, 1/fan_in),
biases 0, a random direction v. Times (median of --repeats after a warm-up) of the gradient, the
Hessian-vector product and the Gauss-Newton-vector product, float64 and float32: pearlnet through
``pearlnet.models.Autoencoder`` (loss_and_grad, hessvec, gaussnewtonvec) and the same functions
compiled with ``pearlnet.jit`` (the rows the ratios use), PyTorch through
torch.func (grad, jvp of grad, jvp then vjp), JAX through jax.jit of the same. The three
systems' results are also compared with one another (relative differences), so a fast wrong
answer cannot pass unnoticed.

Run: python bench/curvature.py [--repeats 5] [--data /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SIZES = [784, 512, 128, 2, 128, 512, 784]
THREADS = [2]  # PyTorch's (--threads); OPENBLAS_NUM_THREADS and XLA_FLAGS set the others
LINEAR = {2, 5}  # layer indices with a linear output: the code layer and the output layer


def load_batch(data_dir: Path, n: int = 1000) -> np.ndarray:
    from pearlnet.data import IMAGES_MAGIC, read_idx

    images = read_idx(data_dir / "train-images-idx3-ubyte.gz", IMAGES_MAGIC)
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return (x[:n] - x.mean()) / x.std()


def init(rng: np.random.Generator) -> tuple[list, list]:
    params = [(rng.standard_normal((m, k)) / np.sqrt(m), np.zeros(k))
              for m, k in zip(SIZES[:-1], SIZES[1:])]
    v = [(rng.standard_normal(w.shape), rng.standard_normal(b.shape)) for w, b in params]
    return params, v


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for pair in tree for a in pair])


def as_tree(pairs) -> dict:
    """(W, b) pairs as the Autoencoder model's parameters: layers 0-2 the encoder, 3-5 the
    decoder."""
    return {"encoder": [{"W": w, "b": b} for w, b in pairs[:3]],
            "decoder": [{"W": w, "b": b} for w, b in pairs[3:]]}


def as_pairs(tree) -> list:
    """The Autoencoder model's parameters (or a tree shaped like them) as (W, b) pairs."""
    return [(layer["W"], layer["b"]) for part in ("encoder", "decoder") for layer in tree[part]]


# ---- the three systems -----------------------------------------------------------------------
def pearlnet_suite(x, params, v):
    """The model's own methods (pearlnet.models.Autoencoder, untied), as a user calls them."""
    from pearlnet.models import Autoencoder

    ae = Autoencoder(SIZES[:4], activation="tanh", dtype=x.dtype)
    p, q = as_tree(params), as_tree(v)  # the same weights as the peers

    return {"grad": lambda: as_pairs(ae.loss_and_grad(p, x)[1]),
            "hvp": lambda: as_pairs(ae.hessvec(p, x, q)),
            "gn": lambda: as_pairs(ae.gaussnewtonvec(p, x, q))}


def pearlnet_jit_suite(x, params, v):
    """The same three products compiled with pearlnet.jit (the batch an argument of the
    program, not a constant of it)."""
    import pearlnet
    from pearlnet.models import Autoencoder

    ae = Autoencoder(SIZES[:4], activation="tanh", dtype=x.dtype)
    p, q = as_tree(params), as_tree(v)

    grad = pearlnet.jit(pearlnet.value_and_grad(ae.loss))
    hvp = pearlnet.jit(lambda p, q, x: pearlnet.hvp(lambda r: ae.loss(r, x), p, q))
    gn = pearlnet.jit(lambda p, q, x: pearlnet.gauss_newton_vp(
        lambda r: ae.reconstruct(r, x), lambda z: ae.data_loss(z, x), p, q))
    suite = {"grad": lambda: as_pairs(grad(p, x)[1]), "hvp": lambda: as_pairs(hvp(p, q, x)),
             "gn": lambda: as_pairs(gn(p, q, x))}
    suite["compile"] = {}
    for k, fn in list(suite.items())[:3]:
        t0 = time.perf_counter()
        fn()
        suite["compile"][k] = time.perf_counter() - t0
    return suite


def torch_suite(x, params, v):
    import torch
    from torch.func import grad, jvp, vjp

    torch.set_num_threads(THREADS[0])
    xt = torch.from_numpy(x)
    pt = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in params]
    vt = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in v]

    def net(p):
        h = xt
        for i, (w, b) in enumerate(p):
            h = h @ w + b
            if i not in LINEAR:
                h = torch.tanh(h)
        return h

    def loss(p):
        return 0.5 * ((net(p) - xt) ** 2).sum() / xt.shape[0]

    def gn():
        _, jv = jvp(net, (pt,), (vt,))
        _, pullback = vjp(net, pt)
        return pullback(jv / xt.shape[0])[0]

    return {"grad": lambda: grad(loss)(pt),
            "hvp": lambda: jvp(grad(loss), (pt,), (vt,))[1],
            "gn": gn}


def jax_suite(x, params, v):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    xj = jnp.asarray(x)
    pj = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    vj = [(jnp.asarray(w), jnp.asarray(b)) for w, b in v]

    def net(p):
        h = xj
        for i, (w, b) in enumerate(p):
            h = h @ w + b
            if i not in LINEAR:
                h = jnp.tanh(h)
        return h

    def loss(p):
        return 0.5 * jnp.sum((net(p) - xj) ** 2) / xj.shape[0]

    g = jax.jit(jax.grad(loss))
    h = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])

    @jax.jit
    def gn(p, v):
        _, jv = jax.jvp(net, (p,), (v,))
        _, pullback = jax.vjp(net, p)
        return pullback(jv / xj.shape[0])[0]

    def ready(tree):
        return jax.block_until_ready(tree)

    return {"grad": lambda: ready(g(pj)), "hvp": lambda: ready(h(pj, vj)),
            "gn": lambda: ready(gn(pj, vj))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args(argv)
    THREADS[0] = args.threads
    x64 = load_batch(args.data)
    params64, v64 = init(np.random.default_rng(0))
    systems = [("pearlnet jit", pearlnet_jit_suite), ("pearlnet", pearlnet_suite),
               ("PyTorch (torch.func)", torch_suite), ("JAX (jit)", jax_suite)]
    print("Curvature products, autoencoder 784-512-128-2-128-512-784, batch 1000, "
          f"median of {args.repeats} (ms)")
    for dtype in (np.float64, np.float32):
        x = x64.astype(dtype)
        params = [(w.astype(dtype), b.astype(dtype)) for w, b in params64]
        v = [(w.astype(dtype), b.astype(dtype)) for w, b in v64]
        times, results, compiles = {}, {}, {}
        for name, make in systems:
            try:
                suite = make(x, params, v)
            except ImportError:
                continue
            compiles[name] = suite.pop("compile", None)
            times[name] = {k: median_ms(fn, args.repeats) for k, fn in suite.items()}
            results[name] = {k: flat(fn()) for k, fn in suite.items()}
        print(f"\n{np.dtype(dtype).name}")
        head = f"{'system':<22}" + "".join(f"{k:>10}" for k in ("grad", "hvp", "gn"))
        print(head + "   pearlnet / system (grad, hvp, gn)")
        ours = times["pearlnet jit"]
        for name, t in times.items():
            ratios = ", ".join(f"{ours[k] / t[k]:.2f}" for k in t)
            print(f"{name:<22}" + "".join(f"{t[k]:>10.1f}" for k in t) + f"   {ratios}")
        if "JAX (jit)" in times:
            jx = times["JAX (jit)"]
            print(f"  targets (issue 25): grad <= 1.0x JAX-jit: {ours['grad'] / jx['grad']:.2f}x; "
                  f"hvp <= 1.0x JAX-jit: {ours['hvp'] / jx['hvp']:.2f}x; "
                  f"gn <= 2x our grad: {ours['gn'] / ours['grad']:.2f}x")
        print("  pearlnet jit's first calls (recording and compiling): " + ", ".join(
            f"{k} {s:.2f} s" for k, s in compiles["pearlnet jit"].items()))
        ref = results["pearlnet jit"]
        for name, res in results.items():
            if name == "pearlnet jit":
                continue
            diffs = ", ".join(
                f"{k} {np.linalg.norm(ref[k] - res[k]) / np.linalg.norm(res[k]):.1e}"
                for k in res)
            print(f"  relative difference from {name}: {diffs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
