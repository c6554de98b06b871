"""A short demonstration: differentiate a small tanh autoencoder and check every derivative.

``python -m pearlnet.demo`` builds a 8-4-2-4-8 network with random weights (seeded), takes its
mean squared reconstruction error F, and prints F's gradient, Hessian-vector and
Gauss-Newton-vector products, each checked against forward differences, central differences
and the complex step; then the same products against the dense matrices. It exits with status 1
when any of these checks misses its tolerance (the checker's for the numerical ones,
``DENSE_RTOL`` against the dense matrices), else 0.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import pearlnet
import pearlnet.numpy as pnp
from pearlnet._args import non_negative_int as _seed
from pearlnet.check import GradientCheckError, check_grad, check_hvp, check_jvp

# H v and G v against hessian(F) @ v and J^T J / n @ v: the same float64 sums in another
# order, so only rounding separates them (about 1e-16 measured)
DENSE_RTOL = 1e-10


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
    """Print the derivatives and their checks; 1 if a check misses its tolerance, else 0."""
    ap = argparse.ArgumentParser(description="Differentiate a small autoencoder and check it.")
    ap.add_argument("--seed", type=_seed, default=0)
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
    failures: list[str] = []
    for name, check, fn in rows:
        cells = []
        for method in ("forward", "central", "complex"):
            try:
                cells.append(f"{check(fn, params, method=method).max_error:>14.2e}")
            except GradientCheckError as err:  # the message names direction, error, tolerance
                cells.append(f"{'FAILED':>14}")
                failures.append(f"{name}: {str(err).splitlines()[0]}")
        print(f"{name:<26}" + "".join(cells))

    def net_flat(w):
        return network(unravel(w), x)

    H = pearlnet.hessian(lambda w: reconstruction_error(net_flat(w), x))(flat)
    J = pearlnet.jacobian(net_flat)(flat).reshape(-1, flat.size)
    G = J.T @ J / x.shape[0]
    vflat = pearlnet.ravel(v)[0]
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)  # noqa: E731
    print("\nAgainst the dense matrices (relative error):")
    dense = [("H v   vs hessian(F) @ v       ", rel(pearlnet.ravel(hv)[0], H @ vflat)),
             ("G v   vs J^T J / n @ v         ", rel(pearlnet.ravel(gn)[0], G @ vflat))]
    for label, err in dense:
        ok = err <= DENSE_RTOL  # NaN fails too
        print(f"  {label} {err:.2e}" + ("" if ok else "  FAILED"))
        if not ok:
            failures.append(f"{' '.join(label.split())}: relative error {err:.2e} > {DENSE_RTOL:g}")
    g_eigs = np.linalg.eigvalsh(G)
    psd = g_eigs.min() >= -DENSE_RTOL * np.abs(g_eigs).max()
    verdict = "G is positive semi-definite" if psd else "FAILED: G must be positive semi-definite"
    print(f"  eigenvalues: H from {np.linalg.eigvalsh(H).min():+.3f}, "
          f"G from {g_eigs.min():+.2e} ({verdict})")
    if not psd:
        failures.append(f"G's smallest eigenvalue {g_eigs.min():+.2e} is below "
                        f"-{DENSE_RTOL:g} x its largest magnitude")
    if failures:
        print(f"\n{len(failures)} check(s) FAILED:")
        for line in failures:
            print(f"  {line}")
        return 1
    print("\nEvery check within its tolerance.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
