"""Estimators that take any symmetric linear operator (a curvature operator, a dense matrix, a
``scipy.sparse.linalg.LinearOperator``), so each can be checked against a dense matrix.

- ``top_eigenvalues(op, k)``: Lanczos (``scipy.sparse.linalg.eigsh``, implicitly restarted,
  ``which="LA"``: the k largest algebraic eigenvalues), or power iteration with deflation
  with PyHessian's defaults (``maxIter=100``, ``tol=1e-3``: stop when the Rayleigh quotient
  changes by less than tol relative; random normal start).
- ``trace(op, method, samples)``: Hutchinson (Rademacher probes, PyHessian's choice; its
  default is up to 100 probes, stopping at a relative change of 1e-3, where ours spends
  exactly ``samples``) or Hutch++ (Meyer et al. 2021: a third of the products sketch the
  top of the spectrum exactly, the rest run Hutchinson on the deflated remainder).
- ``diagonal(op, samples)``: Hutchinson's diagonal, mean of v * (A v) over Rademacher v
  (Bekas et al. 2007).

The stochastic ones return an ``Estimate`` with the standard error of the mean over probes
(for Hutch++, of its Hutchinson part; the sketched part is exact). Random numbers come only
from ``seed`` (an int or a Generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator, eigsh

from .problem import as_rng

__all__ = ["Estimate", "Eigen", "top_eigenvalues", "trace", "diagonal", "rademacher"]


@dataclass
class Estimate:
    """``value`` (a float or an array) and its standard error (``stderr``, same shape; 0 where
    exact), from ``samples`` probes costing ``matvecs`` products."""

    value: Any
    stderr: Any
    samples: int
    matvecs: int
    method: str

    def __float__(self) -> float:
        return float(self.value)


@dataclass
class Eigen:
    """Eigenvalues in decreasing order, their unit eigenvectors as columns, and the cost."""

    values: np.ndarray
    vectors: np.ndarray
    matvecs: int
    method: str
    history: list = field(default_factory=list)


def _operator(op: Any, who: str) -> Any:
    a = aslinearoperator(op)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"{who}: expected a square operator, got shape {a.shape}")
    return a


def _dtype(a: Any) -> np.dtype:
    dt = np.dtype(a.dtype) if a.dtype is not None else np.dtype(np.float64)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def rademacher(rng: np.random.Generator, shape: tuple, dtype: Any = np.float64) -> np.ndarray:
    """Entries +1 or -1 with probability 1/2 each."""
    return (2 * rng.integers(0, 2, size=shape) - 1).astype(dtype)


def _positive(value: Any, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


def top_eigenvalues(op: Any, k: int = 1, method: str = "lanczos", *, tol: float | None = None,
                    maxiter: int | None = None, seed: Any = 0, ncv: int | None = None,
                    v0: np.ndarray | None = None) -> Eigen:
    """The k largest eigenvalues of a symmetric operator and their eigenvectors.

    method="lanczos": ``eigsh(op, k, which="LA", tol=tol or 0 (machine precision), v0)``
    with v0 a normal draw from ``seed`` (or the given ``v0``: warm starts across training
    steps). method="power": PyHessian's power iteration with deflation against the vectors
    found, tol 1e-3 and at most ``maxiter`` (100) products per eigenvalue; it finds the
    largest in magnitude, which for a positive semi-definite matrix is the largest.

    >>> a = np.diag(np.arange(1.0, 11.0))
    >>> top_eigenvalues(a, k=2).values
    array([10.,  9.])
    """
    who = "top_eigenvalues"
    a = _operator(op, who)
    n = a.shape[0]
    k = _positive(k, "k", who)
    if k > n:
        raise ValueError(f"{who}: k={k} exceeds the dimension {n}")
    rng = as_rng(seed, who)
    dtype = _dtype(a)
    counted = _Counting(a)
    if method == "lanczos":
        if v0 is None:
            v0 = rng.standard_normal(n)
        if k >= n - 1:  # ARPACK needs k < n - 1: small problems go dense
            dense = counted.matmat(np.eye(n, dtype=dtype))
            lam, vec = np.linalg.eigh(0.5 * (dense + dense.T))
            order = np.argsort(lam)[::-1][:k]
            return Eigen(lam[order], vec[:, order], counted.count, "dense")
        wrapped = LinearOperator((n, n), matvec=counted.matvec, dtype=dtype)
        lam, vec = eigsh(wrapped, k=k, which="LA", tol=0 if tol is None else tol,
                         maxiter=maxiter, ncv=ncv, v0=np.asarray(v0, dtype=dtype))
        order = np.argsort(lam)[::-1]
        return Eigen(lam[order], vec[:, order], counted.count, "lanczos")
    if method == "power":
        tol = 1e-3 if tol is None else tol
        maxiter = 100 if maxiter is None else maxiter
        values, vectors, history = [], [], []
        for _ in range(k):
            v = rng.standard_normal(n).astype(dtype)
            v /= np.linalg.norm(v)
            value = None
            trail = []
            for _ in range(maxiter):
                for u in vectors:
                    v = v - (u @ v) * u
                v /= np.linalg.norm(v)
                av = counted.matvec(v)
                estimate = float(v @ av)
                trail.append(estimate)
                norm = np.linalg.norm(av)
                if norm == 0:
                    value = 0.0
                    break
                v = av / norm
                if value is not None and abs(value - estimate) / (abs(value) + 1e-6) < tol:
                    value = estimate
                    break
                value = estimate
            values.append(value)
            vectors.append(v)
            history.append(trail)
        return Eigen(np.array(values), np.stack(vectors, axis=1), counted.count, "power",
                     history)
    raise ValueError(f"{who}: method must be 'lanczos' or 'power', got {method!r}")


class _Counting:
    """A LinearOperator wrapper counting the products (columns of a matmat included)."""

    def __init__(self, a: Any) -> None:
        self.a, self.count = a, 0
        self.shape, self.dtype = a.shape, _dtype(a)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        self.count += 1
        return np.asarray(self.a.matvec(np.asarray(v, dtype=self.dtype))).reshape(-1)

    def matmat(self, v: np.ndarray) -> np.ndarray:
        self.count += v.shape[1]
        return np.asarray(self.a.matmat(np.asarray(v, dtype=self.dtype)))

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        return self.matvec(v) if np.ndim(v) == 1 else self.matmat(v)


def trace(op: Any, method: str = "hutchinson", samples: int = 100, *, seed: Any = 0
          ) -> Estimate:
    """tr(A) of a symmetric operator from ``samples`` matrix-vector products.

    "hutchinson": mean of v^T A v over Rademacher v (unbiased; variance 2 sum_{i != j}
    A_ij^2 per probe), ``stderr`` = sample std / sqrt(samples). "hutch++" (Meyer, Musco,
    Musco, Woodruff 2021): S with m = samples // 3 Rademacher columns, Q = orth(A S),
    tr(A) = tr(Q^T A Q) + Hutchinson on (I - QQ^T) A (I - QQ^T) with the remaining products;
    ``stderr`` is that second part's. ``samples`` >= 3 for hutch++.

    >>> est = trace(np.diag(np.arange(1.0, 11.0)), samples=20)
    >>> est.value, est.stderr   # a diagonal matrix: every Rademacher probe is exact
    (55.0, 0.0)
    """
    who = "trace"
    a = _operator(op, who)
    n = a.shape[0]
    samples = _positive(samples, "samples", who)
    rng = as_rng(seed, who)
    dtype = _dtype(a)
    if method == "hutchinson":
        v = rademacher(rng, (n, samples), dtype)
        av = np.asarray(a.matmat(v))
        q = np.einsum("ij,ij->j", v, av, dtype=np.float64)
        err = float(q.std(ddof=1) / np.sqrt(samples)) if samples > 1 else float("inf")
        return Estimate(float(q.mean()), err, samples, samples, "hutchinson")
    if method == "hutch++":
        if samples < 3:
            raise ValueError(f"{who}: hutch++ needs samples >= 3, got {samples}")
        m = samples // 3
        s = rademacher(rng, (n, m), dtype)
        q, _ = np.linalg.qr(np.asarray(a.matmat(s)).astype(np.float64))
        aq = np.asarray(a.matmat(q.astype(dtype))).astype(np.float64)
        exact = float(np.einsum("ij,ij->", q, aq))
        rest = samples - 2 * m
        g = rademacher(rng, (n, rest), np.float64)
        g = g - q @ (q.T @ g)
        ag = np.asarray(a.matmat(g.astype(dtype))).astype(np.float64)
        ag = ag - q @ (q.T @ ag)
        r = np.einsum("ij,ij->j", g, ag)
        err = float(r.std(ddof=1) / np.sqrt(rest)) if rest > 1 else float("inf")
        return Estimate(exact + float(r.mean()), err, rest, samples, "hutch++")
    raise ValueError(f"{who}: method must be 'hutchinson' or 'hutch++', got {method!r}")


def diagonal(op: Any, samples: int = 100, *, seed: Any = 0, batch: int = 32) -> Estimate:
    """diag(A) by Hutchinson: the mean over Rademacher v of v * (A v) (unbiased; entry i has
    variance sum_{j != i} A_ij^2 per probe). ``stderr`` per entry = std / sqrt(samples).
    Products are taken ``batch`` columns at a time (one ``matmat``).

    >>> diagonal(np.diag([1.0, 2.0, 3.0]), samples=4).value
    array([1., 2., 3.])
    """
    who = "diagonal"
    a = _operator(op, who)
    n = a.shape[0]
    samples = _positive(samples, "samples", who)
    rng = as_rng(seed, who)
    dtype = _dtype(a)
    total = np.zeros(n)
    squares = np.zeros(n)
    done = 0
    while done < samples:
        m = min(batch, samples - done)
        v = rademacher(rng, (n, m), dtype)
        d = (v * np.asarray(a.matmat(v))).astype(np.float64)
        total += d.sum(axis=1)
        squares += (d * d).sum(axis=1)
        done += m
    mean = total / samples
    var = (squares - samples * mean ** 2) / max(samples - 1, 1)
    err = np.sqrt(np.clip(var, 0, None) / samples) if samples > 1 else np.full(n, np.inf)
    return Estimate(mean, err, samples, samples, "hutchinson")
