"""Noisy sine waves, generated on the fly from a seed: next-value prediction for recurrent nets.

Each series is s_t = A sin(2 pi t / P + phi) + eps_t for t = 0..steps, with amplitude
A ~ U(0.5, 1.5), period P ~ U(8, 32) steps, phase phi ~ U(0, 2 pi) and i.i.d. noise
eps_t ~ N(0, noise^2); the network sees s_0..s_{steps-1} and predicts s_steps. No predictor
beats noise^2 (the next value's own noise); repeating the last value scores about
2 noise^2 + E[A^2] E[1 - cos(2 pi / P)] (about 0.14 with the defaults).

>>> (x, y), (x_test, y_test) = load_sine(n_train=100, n_test=20, steps=30)
>>> x.shape, y.shape, x.dtype
((100, 30, 1), (100, 1), dtype('float32'))
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["load_sine", "last_value_mse"]

AMPLITUDE = (0.5, 1.5)
PERIOD = (8.0, 32.0)


def _count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"load_sine: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def load_sine(n_train: int = 8192, n_test: int = 2048, steps: int = 50, noise: float = 0.1,
              seed: int | np.random.Generator | None = 0
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``: x of shape (n, steps, 1) and y, the value that
    follows, of shape (n, 1), float32. Train and test series are independent draws from one
    ``numpy.random.Generator`` made from ``seed``, so a seed fixes both."""
    n_train = _count(n_train, "n_train", 1)
    n_test = _count(n_test, "n_test", 0)
    steps = _count(steps, "steps", 1)
    if (isinstance(noise, bool) or not isinstance(noise, numbers.Real)
            or not np.isfinite(noise) or noise < 0):
        raise ValueError(f"load_sine: noise must be a non-negative number, got {noise!r}")
    if seed is not None and not isinstance(seed, np.random.Generator) and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise ValueError(f"load_sine: seed must be a non-negative integer, a "
                         f"numpy.random.Generator or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    amplitude = rng.uniform(*AMPLITUDE, size=(n, 1))
    omega = 2 * np.pi / rng.uniform(*PERIOD, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.arange(steps + 1)
    series = amplitude * np.sin(omega * t + phase) + noise * rng.standard_normal((n, steps + 1))
    series = series.astype(np.float32)
    x, y = series[:, :steps, None], series[:, steps:]
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def last_value_mse(x: np.ndarray, y: np.ndarray) -> float:
    """The "repeat the last value" baseline: mean((y - x[:, -1])^2), for x (n, steps, k) and y
    (n, k)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 3 or y.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"last_value_mse: expected x (n, steps, k) and y (n, k), got "
                         f"{x.shape} and {y.shape}")
    return float(np.mean((y - x[:, -1]) ** 2))
