"""The 8x8 handwritten digits that scikit-learn ships (1797 images), split into train and test.

scikit-learn is an optional dependency (``pip install scikit-learn``, or the ``digits`` extra);
it is imported only when :func:`load_digits` is called. The data come from inside the package,
so this dataset is always available offline.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_digits"]

TEST_FRACTION = 0.25


def load_digits(seed: int = 0
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits as ``(x_train, y_train), (x_test, y_test)``, a quarter held out.

    Images are float64 of shape (n, 8, 8) with values in [0, 16] (as scikit-learn stores them),
    labels uint8 in 0..9. The split is stratified: in each class, a seeded permutation (a
    ``numpy.random.Generator`` from ``seed``) picks ``round(n_class / 4)`` test images (halves
    rounded up), 451 of 1797 in all. Both parts keep scikit-learn's order.

    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape
    ((1346, 8, 8), (451, 8, 8))
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"load_digits: seed must be a non-negative integer, got {seed!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise ImportError("load_digits needs scikit-learn, an optional dependency: "
                          "pip install scikit-learn (or pip install 'pearlnet[digits]')") from exc
    bunch = sklearn_load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    labels = np.asarray(bunch.target).astype(np.uint8)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        n_test = int(np.floor(len(members) * TEST_FRACTION + 0.5))
        test[rng.permutation(members)[:n_test]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])
