"""Random numbers keyed by what they are for, so that a run draws the same numbers however it
is split into batches, processes or restarts.

``Model.fit`` hands its layers a ``SampleStream`` for each batch: the training seed, the epoch
and the global index of each sample in the batch (its row in the training set). A layer asks
it for numbers under a key of its own (its name). Row i of every draw depends only on
(seed, epoch, key, index[i]), so

- a sample gets the same dropout mask whichever batch it falls in and whichever rank of a
  data-parallel job computes it: N ranks draw what one process draws;
- a run resumed at epoch k draws what the uninterrupted run drew in epoch k.

The numbers are SplitMix64 sequences (Steele, Lea & Flood 2014, "Fast splittable pseudorandom
number generators"): each row's state is a 64-bit hash of its key, and entry j of the row is the
SplitMix64 finaliser of state + j * golden-ratio constant, computed for every entry at once with
NumPy's wrapping uint64 arithmetic. SplitMix64 passes BigCrush; it is the generator Java's
SplittableRandom uses and the one NumPy's SeedSequence-style seeding builds on.

Under jit (``Model.fit``'s compiled step) seed, epoch and indices are arrays the program takes,
and each draw is a helper primitive the program replays: the masks are never constants of the
program, and are bit for bit the masks of an uncompiled run.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from pearlnet.autodiff.core import Tracer, nondiff

__all__ = ["SampleStream", "stream_key"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11 = np.uint64(11)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place on a uint64 array (array arithmetic wraps, silently)."""
    z ^= z >> _S30
    z *= _MIX1
    z ^= z >> _S27
    z *= _MIX2
    z ^= z >> _S31
    return z


def stream_key(*parts: Any) -> int:
    """A 64-bit key from ints and strings (a string by its CRC-32; an int modulo 2^64)."""
    h = np.zeros(1, dtype=np.uint64)
    for part in parts:
        if isinstance(part, str):
            part = zlib.crc32(part.encode())
        h += np.array([int(part) % (1 << 64)], dtype=np.uint64)
        h = _mix(h + _GOLDEN)
    return int(h[0])


class SampleStream:
    """Per-sample random numbers for one batch: row i of every draw is a function of
    (seed, epoch, key, indices[i]) alone.

    >>> s = SampleStream(seed=0, epoch=3, indices=np.array([7, 2]))
    >>> t = SampleStream(seed=0, epoch=3, indices=np.array([2]))
    >>> bool((s.random((2, 4), "dropout")[1] == t.random((1, 4), "dropout")[0]).all())
    True
    """

    __slots__ = ("seed", "epoch", "indices")

    def __init__(self, seed: Any, epoch: Any, indices: Any) -> None:
        # ints, or (under jit) 0-d integer arrays the program takes
        self.seed, self.epoch = (x if isinstance(x, Tracer) else int(x) for x in (seed, epoch))
        if not isinstance(indices, Tracer):
            indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.indices = indices

    def _shape(self, shape: tuple) -> tuple:
        shape = tuple(int(d) for d in shape)
        n = self.indices.shape[0]
        if not shape or shape[0] != n:
            raise ValueError(f"SampleStream: expected a shape whose first axis is the batch's "
                             f"{n} samples, got {shape}")
        return shape

    def random(self, shape: tuple, key: str = "") -> np.ndarray:
        """Uniform floats in [0, 1) (53 random bits each), float64."""
        return _random(self.seed, self.epoch, self.indices, self._shape(shape), key)

    def keep_mask(self, shape: tuple, p: float, key: str = "") -> np.ndarray:
        """Booleans, each True with probability 1 - p (to 2^-64): a dropout mask."""
        return _keep_mask(self.seed, self.epoch, self.indices, self._shape(shape), float(p), key)

    def row_keys(self, key: str = "") -> np.ndarray:
        """One uniform float in [0, 1) per sample (ranking them draws a random subset)."""
        return self.random((len(self.indices), 1), key)[:, 0]

    def __repr__(self) -> str:
        return (f"SampleStream(seed={self.seed}, epoch={self.epoch}, "
                f"{self.indices.shape[0]} samples)")


def _bits(seed: Any, epoch: Any, indices: np.ndarray, shape: tuple, key: str) -> np.ndarray:
    """64 random bits per entry of an array of ``shape`` (rows: the batch's samples)."""
    base = np.uint64(stream_key(int(seed), int(epoch), key))
    rows = _mix(np.asarray(indices).astype(np.uint64) * _GOLDEN + base)
    count = math.prod(shape[1:])
    cols = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
    bits = rows[:, None] + cols[None, :]
    return _mix(bits).reshape(shape)


def _random_impl(seed, epoch, indices, shape, key):
    return (_bits(seed, epoch, indices, shape, key) >> _S11) * (1.0 / (1 << 53))


def _keep_mask_impl(seed, epoch, indices, shape, p, key):
    threshold = np.uint64(min(int(p * 2.0 ** 64), (1 << 64) - 1))
    return _bits(seed, epoch, indices, shape, key) >= threshold


# helper primitives: called on a compiled step's arrays they are recorded, not baked in
_random = nondiff(_random_impl, "sample_stream_random")
_keep_mask = nondiff(_keep_mask_impl, "sample_stream_keep_mask")


def keep_mask(rng: Any, shape: tuple, p: float, key: str) -> np.ndarray:
    """A dropout keep-mask from a SampleStream (per-sample, keyed) or a Generator."""
    if isinstance(rng, SampleStream):
        return rng.keep_mask(shape, p, key)
    return rng.random(shape) >= p
