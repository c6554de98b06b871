"""The loss's curvature in the network's outputs, as factors: what the GGN diagonal, the Monte
Carlo Fisher and K-FAC backpropagate instead of the Hessian H_L itself.

For a batch of n cases with outputs z (n, K) and a loss that is a mean of per-case losses,
H_L (of the *batch* loss) is block-diagonal with one K x K block per case. A likelihood gives

- ``sqrt_columns(z, ...)``: C arrays s_c shaped like z with sum_c s_c s_c^T = H_L blockwise
  (BackPACK's ``sqrt_hessian``): the exact GGN diagonal and K-FAC's "type-2" factor
  backpropagate each column once;
- ``sample_factor(z, ..., rng, k)``: S of shape (n, K, k) with E[S S^T] = H_L (BackPACK's
  ``sqrt_hessian_sampled``, curvlinops' "mc"): the gradient of the per-case loss at a target
  drawn from the model's predictive distribution, over sqrt(k).

Closed forms (outputs (n, K)):

- "gaussian" (``squared_error``, ``mean_squared_error``): H_L = c I, c measured by one
  Hessian-vector product of the loss (1/n for the mean of 1/2 |y - z|^2, 2/(nK) for MSE);
  columns sqrt(c) e_k; samples sqrt(c) eps, eps ~ N(0, I) (the gradient at y ~ N(z, I)).
- "categorical" (cross-entropy from logits): per case (diag(p) - p p^T)/n, p = softmax(z);
  column k = sqrt(p_k) (e_k - p)/sqrt(n) (so S S^T = diag p - p p^T); samples
  (p - onehot(y))/sqrt(n), y ~ Categorical(p).
- "bernoulli" (binary cross-entropy from logits, a mean over all n K entries): diagonal
  sigma (1 - sigma)/(nK); samples (sigma - y)/sqrt(nK), y ~ Bernoulli(sigma).
- None (any other loss): the per-case blocks are measured exactly, one Hessian-vector product
  of the loss per output k with e_k in every case (the loss must be a sum over cases); their
  symmetric square roots (eigenvalues clipped at 0) are the columns, and samples are
  N(0, H_L) draws sqrt(H_L) eps.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from pearlnet.autodiff import hvp

__all__ = ["Likelihood", "likelihood_of", "LIKELIHOODS"]

LIKELIHOODS = ("gaussian", "categorical", "bernoulli")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Likelihood:
    """See the module docstring. ``name`` is one of LIKELIHOODS or "exact"."""

    def __init__(self, name: str | None) -> None:
        self.name = name or "exact"

    def _flat(self, z: np.ndarray, who: str) -> np.ndarray:
        z = np.asarray(z)
        if z.ndim < 1 or len(z) == 0:
            raise ValueError(f"{who}: expected outputs with a leading axis of cases, got shape "
                             f"{z.shape}")
        if self.name in ("categorical",) and z.ndim != 2:
            raise ValueError(f"{who}: the categorical likelihood needs outputs (n, classes), "
                             f"got shape {z.shape}; pass likelihood=None for the exact one")
        return z.reshape(len(z), -1)

    def _gaussian_scale(self, z: np.ndarray, loss: Callable) -> float:
        ones = np.ones_like(z)
        h1 = np.asarray(hvp(loss, z, ones))
        c = float(np.mean(h1))
        if not np.allclose(h1, c, rtol=1e-6, atol=1e-12 * max(abs(c), 1e-300)):
            raise ValueError("likelihood 'gaussian': the loss's Hessian in the outputs is not "
                             "a multiple of the identity; pass likelihood=None")
        return c

    def _blocks(self, z: np.ndarray, loss: Callable) -> np.ndarray:
        """(n, K, K): each case's Hessian block, one hvp per output k."""
        n, k = len(z), int(np.prod(z.shape[1:], dtype=np.int64))
        cols = []
        for j in range(k):
            e = np.zeros((n, k), z.dtype)
            e[:, j] = 1
            cols.append(np.asarray(hvp(loss, z, e.reshape(z.shape))).reshape(n, k))
        h = np.stack(cols, axis=2)
        return 0.5 * (h + np.swapaxes(h, 1, 2))

    def _sqrt_blocks(self, z: np.ndarray, loss: Callable) -> np.ndarray:
        lam, u = np.linalg.eigh(self._blocks(z, loss).astype(np.float64))
        root = (u * np.sqrt(np.clip(lam, 0, None))[:, None, :]) @ np.swapaxes(u, 1, 2)
        return root.astype(z.dtype)

    def n_columns(self, z: np.ndarray) -> int:
        return int(np.prod(np.shape(z)[1:], dtype=np.int64))

    def sqrt_columns(self, z: np.ndarray, batch: Any, loss: Callable,
                     who: str = "sqrt_columns") -> Iterator[np.ndarray]:
        """Arrays shaped like z, one per output k, with sum_k s_k s_k^T = H_L per case."""
        z = np.asarray(z)
        zf = self._flat(z, who)
        n, k = zf.shape
        if self.name == "gaussian":
            root = np.sqrt(self._gaussian_scale(z, loss))
            for j in range(k):
                s = np.zeros_like(zf)
                s[:, j] = root
                yield s.reshape(z.shape)
        elif self.name == "categorical":
            p = _softmax(zf.astype(np.float64))
            for j in range(k):
                s = -p * np.sqrt(p[:, j:j + 1])
                s[:, j] += np.sqrt(p[:, j])
                yield (s / np.sqrt(n)).astype(z.dtype).reshape(z.shape)
        elif self.name == "bernoulli":
            sig = 1 / (1 + np.exp(-zf.astype(np.float64)))
            for j in range(k):
                s = np.zeros_like(zf, dtype=np.float64)
                s[:, j] = np.sqrt(sig[:, j] * (1 - sig[:, j]) / zf.size)
                yield s.astype(z.dtype).reshape(z.shape)
        else:
            root = self._sqrt_blocks(zf, lambda y: loss(y.reshape(z.shape)))
            for j in range(k):
                yield np.ascontiguousarray(root[:, :, j]).reshape(z.shape)

    def sample_factor(self, z: np.ndarray, batch: Any, loss: Callable,
                      rng: np.random.Generator, k: int,
                      who: str = "sample_factor") -> np.ndarray:
        """S (n, K, k) with E[S S^T] = H_L per case (see the module docstring)."""
        z = np.asarray(z)
        zf = self._flat(z, who)
        n, m = zf.shape
        if self.name == "gaussian":
            c = self._gaussian_scale(z, loss)
            s = rng.standard_normal((n, m, k)) * np.sqrt(c / k)
        elif self.name == "categorical":
            p = _softmax(zf.astype(np.float64))
            u = rng.random((n, 1, k))
            labels = (u > np.cumsum(p, axis=1)[:, :, None]).sum(axis=1)  # (n, k)
            labels = np.minimum(labels, m - 1)
            onehot = np.zeros((n, m, k))
            np.put_along_axis(onehot, labels[:, None, :], 1.0, axis=1)
            s = (p[:, :, None] - onehot) / np.sqrt(n * k)
        elif self.name == "bernoulli":
            sig = 1 / (1 + np.exp(-zf.astype(np.float64)))
            y = (rng.random((n, m, k)) < sig[:, :, None]).astype(np.float64)
            s = (sig[:, :, None] - y) / np.sqrt(zf.size * k)
        else:
            root = self._sqrt_blocks(zf, lambda y: loss(y.reshape(z.shape))).astype(np.float64)
            s = root @ rng.standard_normal((n, m, k)) / np.sqrt(k)
        return s.astype(z.dtype)

    def __repr__(self) -> str:
        return f"Likelihood({self.name!r})"


def likelihood_of(problem: Any, likelihood: str | None, who: str) -> Likelihood:
    """The likelihood named, or a Model's (read from its compiled loss), or the exact one."""
    if likelihood is not None:
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"{who}: likelihood must be one of {LIKELIHOODS} or None, got "
                             f"{likelihood!r}")
        return Likelihood(likelihood)
    model = getattr(problem, "model", None)
    if model is None:
        return Likelihood(None)
    from pearlnet.nn import losses

    fn = model.loss_fn
    if fn in (losses.squared_error, losses.mean_squared_error):
        return Likelihood("gaussian")
    if fn is losses.categorical_crossentropy and model.from_logits and \
            len(model.output_shape_) == 1:
        return Likelihood("categorical")
    if fn is losses.binary_crossentropy and model.from_logits:
        return Likelihood("bernoulli")
    return Likelihood(None)
