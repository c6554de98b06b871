"""Weight initialisers: ``init(rng, shape, dtype)`` -> array, with fan_in = shape[0] for a dense
kernel (in, out) and in_channels * kh * kw for a convolution kernel (out, in, kh, kw)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

__all__ = ["zeros", "ones", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
           "lecun_normal", "lecun_uniform", "normal", "sparse", "get", "fans"]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel: dense (in, out); conv (out, in, *kernel)."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) > 2:
        field = math.prod(shape[2:])
        return shape[1] * field, shape[0] * field
    n = shape[0] if shape else 1
    return n, n


def zeros(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
    """W = 0 (biases; ``rng`` is not used).

    >>> zeros(np.random.default_rng(0), (2, 3))
    array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    return np.zeros(shape, dtype)


def ones(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
    """W = 1 (BatchNorm's scale; ``rng`` is not used).

    >>> ones(np.random.default_rng(0), (2,), np.float64)
    array([1., 1.])
    """
    return np.ones(shape, dtype)


def _normal(std: float, rng, shape, dtype):
    return (std * rng.standard_normal(shape)).astype(dtype)


def _uniform(limit: float, rng, shape, dtype):
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_uniform(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fi, fo = fans(shape)
    return _uniform(math.sqrt(6 / (fi + fo)), rng, shape, dtype)


def glorot_normal(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
    """N(0, 2 / (fan_in + fan_out))."""
    fi, fo = fans(shape)
    return _normal(math.sqrt(2 / (fi + fo)), rng, shape, dtype)


def he_normal(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
    """N(0, 2 / fan_in), standard deviation sqrt(2/d) (He et al. 2015): for ReLU networks."""
    return _normal(math.sqrt(2 / fans(shape)[0]), rng, shape, dtype)


def he_uniform(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
    """U(-l, l), l = sqrt(6 / fan_in)."""
    return _uniform(math.sqrt(6 / fans(shape)[0]), rng, shape, dtype)


def lecun_normal(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
    """N(0, 1 / fan_in) (LeCun et al. 1998): for tanh and SELU networks."""
    return _normal(math.sqrt(1 / fans(shape)[0]), rng, shape, dtype)


def lecun_uniform(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
    """U(-l, l), l = sqrt(3 / fan_in)."""
    return _uniform(math.sqrt(3 / fans(shape)[0]), rng, shape, dtype)


def normal(std: float = 0.05) -> Callable:
    """N(0, std^2), whatever the shape."""
    def init(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
        return _normal(std, rng, shape, dtype)
    init.__name__ = f"normal({std})"
    return init


def sparse(connections: int = 15, std: float = 1.0) -> Callable:
    """Martens' sparse initialisation (2010, section 5): each unit gets exactly ``connections``
    non-zero incoming weights drawn from N(0, std^2), the rest zero (all inputs when fewer)."""
    def init(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32):
        fan_in = fans(shape)[0]
        out = np.zeros((fan_in, int(np.prod(shape)) // fan_in))
        k = min(connections, fan_in)
        for unit in range(out.shape[1]):
            rows = rng.choice(fan_in, size=k, replace=False)
            out[rows, unit] = std * rng.standard_normal(k)
        if len(shape) == 2:
            return out.astype(dtype)
        return out.T.reshape(shape).astype(dtype)
    init.__name__ = f"sparse({connections})"
    return init


_BY_NAME: dict[str, Callable] = {
    "zeros": zeros, "ones": ones, "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "he_uniform": he_uniform, "he_normal": he_normal,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform, "sparse": sparse(),
    "xavier_uniform": glorot_uniform, "xavier_normal": glorot_normal,
}


def get(name: str | Callable) -> Callable:
    """The initialiser called ``name`` ("glorot_uniform", "he_normal", "sparse", ...; "xavier_*"
    are Glorot's); a callable ``init(rng, shape, dtype)`` is returned as it is. An unknown name
    is a ValueError listing the known ones.

    >>> w = get("he_normal")(np.random.default_rng(0), (784, 256))  # std sqrt(2 / 784)
    >>> round(float(w.std()), 2)
    0.05
    """
    if callable(name):
        return name
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"initializer: unknown name {name!r}; known: "
                         f"{', '.join(sorted(_BY_NAME))}") from None
