"""Preparing image datasets for training: standardise, flatten, one-hot, split, batch.

Everything is batch-first (samples along axis 0). Randomness comes only from a seed or an
explicit ``numpy.random.Generator``.

>>> import numpy as np
>>> x = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
>>> y = np.array([0, 1, 2, 0, 1, 2])
>>> (x_tr, y_tr), (x_val, y_val) = train_validation_split(x, y, 1 / 3, seed=0)
>>> z = Standardizer().fit(x_tr).transform(flatten_images(x_val))
>>> z.shape, z.dtype, one_hot(y_val, 3).shape
((2, 4), dtype('float32'), (2, 3))
>>> [len(b) for b in batches(len(x_tr), 3, seed=0)]
[3, 1]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["Standardizer", "flatten_images", "one_hot", "train_validation_split", "batches"]

Seed = int | np.random.Generator | None


def _generator(seed: Seed, caller: str) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed < 0:
        raise ValueError(f"{caller}: seed must be a non-negative int, got {seed}")
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise ValueError(f"{caller}: seed must be an int, a numpy.random.Generator or None, "
                     f"got {type(seed).__name__}")


def _count(value: object, name: str, caller: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{caller}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Standardizer:
    """Shift and scale to zero mean and unit standard deviation, fitted on training data.

    ``z = (x - mean) / std``. By default ``mean`` and ``std`` are two scalars over every pixel of
    every training sample (the course's prescription); with ``per_feature=True`` they are arrays
    of shape ``x.shape[1:]`` (one per pixel). A standard deviation of 0 (a constant pixel, or a
    constant dataset) is replaced by 1, so such features become 0 instead of NaN. Statistics are
    computed in float64, and so is :meth:`transform`, which returns ``dtype`` (float32 by
    default), rounded once. After :meth:`fit`, ``feature_shape`` is the shape of one training
    sample, ``x.shape[1:]``.

    >>> s = Standardizer(dtype=np.float64)
    >>> s.fit_transform(np.array([[0, 2], [4, 6]])) * np.sqrt(5)
    array([[-3., -1.],
           [ 1.,  3.]])
    >>> float(s.mean), round(float(s.std) ** 2, 12)
    (3.0, 5.0)
    """

    def __init__(self, per_feature: bool = False, dtype: DTypeLike = np.float32) -> None:
        self.per_feature = bool(per_feature)
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"Standardizer: dtype must be a floating dtype, got {self.dtype}")
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.feature_shape: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        state = "unfitted" if self.mean is None else f"fitted on features {self.feature_shape}"
        return (f"Standardizer(per_feature={self.per_feature}, dtype={self.dtype.name}) "
                f"<{state}>")

    def fit(self, x: np.ndarray) -> Standardizer:
        """Compute ``mean`` and ``std`` from training data ``x`` of shape (n, ...); returns self."""
        x = np.asarray(x)
        if x.ndim < 1 or len(x) == 0:
            raise ValueError(f"Standardizer.fit: expected a batch of shape (n, ...) with n >= 1, "
                             f"got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"Standardizer.fit: expected integer or real floating data, "
                             f"got {x.dtype}")
        axis = 0 if self.per_feature else None
        mean = np.mean(x, axis=axis, dtype=np.float64)
        std = np.std(x, axis=axis, dtype=np.float64)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("Standardizer.fit: x contains NaN or infinite values")
        self.mean = np.asarray(mean)
        self.std = np.where(std == 0, 1.0, std)
        self.feature_shape = x.shape[1:]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as ``dtype``, for ``x`` of shape (m, ...) like the fitted data.

        In the scalar mode any shape is accepted; with ``per_feature=True`` the sample shape
        ``x.shape[1:]`` must equal the fitted one.
        """
        if self.mean is None or self.std is None:
            raise ValueError("Standardizer.transform: call fit (or fit_transform) first")
        x = np.asarray(x)
        if self.per_feature and x.shape[1:] != self.feature_shape:
            raise ValueError(f"Standardizer.transform: fitted per feature on samples of shape "
                             f"{self.feature_shape}, got a batch of shape {x.shape}")
        work = np.result_type(self.dtype, np.float64)  # one rounding, at the end
        return ((x.astype(work) - self.mean) / self.std).astype(self.dtype, copy=False)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)


def flatten_images(x: np.ndarray) -> np.ndarray:
    """Images (n, h, w) or (n, c, h, w) as rows (n, h * w) or (n, c * h * w), dtype unchanged.

    Returns a view when NumPy can (as ``reshape`` does). A 2-D array is refused rather than
    guessed at: it may be one image or a batch that is already flat.
    """
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"flatten_images: expected a batch of images of shape (n, height, "
                         f"width[, ...]), got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def one_hot(labels: np.ndarray, num_classes: int | None = None,
            dtype: DTypeLike = np.float32) -> np.ndarray:
    """Integer labels of shape (n,) as a (n, num_classes) array with a 1 in column ``label``.

    ``num_classes`` defaults to ``labels.max() + 1``. Labels outside ``0..num_classes - 1`` are
    an error, not dropped.

    >>> one_hot(np.array([2, 0]), 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"one_hot: expected integer labels of shape (n,), got {labels.dtype} "
                         f"of shape {labels.shape}")
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from no labels; pass it")
        num_classes = int(labels.max()) + 1
    num_classes = _count(num_classes, "num_classes", "one_hot", 1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in 0..{num_classes - 1}, got values from "
                         f"{labels.min()} to {labels.max()}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def train_validation_split(x: np.ndarray, y: np.ndarray, validation_fraction: float = 0.1,
                           seed: Seed = 0
                           ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shuffle ``(x, y)`` together and hold out ``round(validation_fraction * n)`` samples.

    Returns ``(x_train, y_train), (x_val, y_val)``, each part in shuffled order (new arrays).
    ``seed`` is an int, a ``numpy.random.Generator`` (advanced by the call) or None (fresh
    entropy). Both parts must end up non-empty.
    """
    caller = "train_validation_split"
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or len(x) != len(y):
        raise ValueError(f"{caller}: x and y need the same number of samples along axis 0, "
                         f"got shapes {x.shape} and {y.shape}")
    try:
        fraction = float(validation_fraction)
    except (TypeError, ValueError):
        fraction = float("nan")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{caller}: validation_fraction must be in (0, 1), "
                         f"got {validation_fraction!r}")
    n = len(x)
    n_val = int(np.floor(fraction * n + 0.5))
    if not 0 < n_val < n:
        raise ValueError(f"{caller}: validation_fraction={validation_fraction!r} of {n} samples "
                         f"gives {n_val} validation and {n - n_val} training samples; both must "
                         f"be at least 1")
    order = _generator(seed, caller).permutation(n)
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def batches(n: int, batch_size: int, shuffle: bool = True, seed: Seed = None
            ) -> Iterator[np.ndarray]:
    """Index arrays that cover ``range(n)`` once, ``batch_size`` at a time (the last may be short).

    With ``shuffle`` the order is a permutation drawn from ``seed``: pass one
    ``numpy.random.Generator`` for every epoch to get a new order each time (an int gives the
    same order every time, None fresh entropy). Arguments are checked when ``batches`` is called,
    not at the first batch.

    >>> [b.tolist() for b in batches(5, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    n = _count(n, "n", "batches", 0)
    batch_size = _count(batch_size, "batch_size", "batches", 1)
    order = _generator(seed, "batches").permutation(n) if shuffle else np.arange(n)

    def generate() -> Iterator[np.ndarray]:
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]

    return generate()
