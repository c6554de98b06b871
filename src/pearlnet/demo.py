"""A short demonstration: differentiate a small tanh autoencoder and check every derivative.

``python -m pearlnet.demo`` builds a 8-4-2-4-8 network with random weights (seeded), takes its
mean squared reconstruction error F, and prints F's gradient, Hessian-vector and
Gauss-Newton-vector products, each checked against forward differences, central differences
and the complex step; then the same products against the dense matrices.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import pearlnet
import pearlnet.numpy as pnp
from pearlnet.check import check_grad, check_hvp, check_jvp


def init_params(rng: np.random.Generator, sizes: list[int]) -> list[dict]:
    """Weights N(0, 1/fan_in), biases zero."""
    return [{"W": rng.standard_normal((m, n)) / np.sqrt(m), "b": np.zeros(n)}
            for m, n in zip(sizes[:-1], sizes[1:])]


def network(params: list[dict], x):
    """tanh on hidden layers, linear code and output."""
    h = x
    code_layer = len(params) // 2 - 1
    for i, layer in enumerate(params):
        h = h @ layer["W"] + layer["b"]
        if i != code_layer and i != len(params) - 1:
            h = pnp.tanh(h)
    return h


def reconstruction_error(z, x):
    """F = (1/n) sum_i 0.5 ||x_i - z_i||^2 (seed 000, formula 1)."""
    return 0.5 * pnp.sum((z - x) ** 2) / x.shape[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Differentiate a small autoencoder and check it.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sizes = [8, 4, 2, 4, 8]
    params = init_params(rng, sizes)
    x = rng.standard_normal((16, 8))
    flat, unravel = pearlnet.ravel(params)
    v = unravel(rng.standard_normal(flat.shape))

    def loss(p):
        return reconstruction_error(network(p, x), x)

    print(f"pearlnet {pearlnet.__version__}: autoencoder {'-'.join(map(str, sizes))}, "
          f"{flat.size} parameters, {x.shape[0]} objects")
    t0 = time.perf_counter()
    value, g = pearlnet.value_and_grad(loss)(params)
    hv = pearlnet.hvp(loss, params, v)
    gn = pearlnet.gauss_newton_vp(lambda p: network(p, x), lambda z: reconstruction_error(z, x),
                                  params, v)
    dt = time.perf_counter() - t0
    print(f"F = {float(value):.6f}   |grad F| = {np.linalg.norm(pearlnet.ravel(g)[0]):.6f}   "
          f"|H v| = {np.linalg.norm(pearlnet.ravel(hv)[0]):.6f}   "
          f"|G v| = {np.linalg.norm(pearlnet.ravel(gn)[0]):.6f}   ({dt * 1e3:.1f} ms)")

    print("\nNumerical checks (largest relative error over 3 random directions):")
    print(f"{'derivative':<26}{'forward diff':>14}{'central diff':>14}{'complex step':>14}")
    rows = [("gradient", check_grad, loss),
            ("Hessian-vector product", check_hvp, loss),
            ("Jacobian-vector (R-op)", check_jvp, lambda p: network(p, x))]
    for name, check, fn in rows:
        errs = [check(fn, params, method=m).max_error for m in ("forward", "central", "complex")]
        print(f"{name:<26}" + "".join(f"{e:>14.2e}" for e in errs))

    def net_flat(w):
        return network(unravel(w), x)

    H = pearlnet.hessian(lambda w: reconstruction_error(net_flat(w), x))(flat)
    J = pearlnet.jacobian(net_flat)(flat).reshape(-1, flat.size)
    G = J.T @ J / x.shape[0]
    vflat = pearlnet.ravel(v)[0]
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)  # noqa: E731
    print("\nAgainst the dense matrices (relative error):")
    print(f"  H v   vs hessian(F) @ v        {rel(pearlnet.ravel(hv)[0], H @ vflat):.2e}")
    print(f"  G v   vs J^T J / n @ v          {rel(pearlnet.ravel(gn)[0], G @ vflat):.2e}")
    print(f"  eigenvalues: H from {np.linalg.eigvalsh(H).min():+.3f}, "
          f"G from {np.linalg.eigvalsh(G).min():+.2e} (G is positive semi-definite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
