"""SGD with annealed Gaussian gradient noise (Neelakantan et al. 2015)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LearningRate, Optimizer, check_number

__all__ = ["NoisySGD"]


class NoisySGD(Optimizer):
    """SGD on a gradient with annealed Gaussian noise, the lecture slides' way off a saddle:

        sigma_t = sigma / (1 + t)^decay          (t = 0 at the first update)
        P <- P - lr * (g + sigma_t * z),   z ~ N(0, I)

    ``sigma = 0`` is exactly SGD. Note the parameterisation: here ``decay`` anneals the
    standard deviation. Neelakantan et al. anneal the variance, sigma_t^2 = eta / (1 + t)^0.55
    with eta in {0.01, 0.3, 1.0}; their schedule is ``sigma = sqrt(eta), decay = 0.275``.

    Randomness: the noise of update t comes from its own generator,
    ``numpy.random.default_rng([seed, t])`` (a counter-based derivation: SeedSequence hashes
    the pair), drawn leaf by leaf in tree order. The seed lives in the state
    (``state["seed"]``), so a run resumed from a saved state draws the same noise as the
    uninterrupted run, whichever NoisySGD object continues it. With ``seed=None``, ``init``
    draws a fresh seed from the operating system's entropy (never the global NumPy RNG).

    Args:
        lr: learning rate >= 0 or a schedule (default 0.01).
        sigma: noise standard deviation at t = 0, >= 0 (default 0.1, i.e. eta = 0.01).
        decay: exponent >= 0 of the annealing (default 0.55).
        seed: an int in [0, 2**64), or None.
        weight_decay, decay_mask: decoupled weight decay, see ``Optimizer``.

    State: ``{"step": int, "seed": int}``.
    """

    key = "noisy_sgd"

    def __init__(self, lr: LearningRate = 0.01, sigma: float = 0.1, decay: float = 0.55,
                 seed: int | None = None, *, weight_decay: float = 0.0,
                 decay_mask: Any = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay_mask=decay_mask)
        self.sigma = check_number(self.name, "sigma", sigma, low=0.0)
        self.decay = check_number(self.name, "decay", decay, low=0.0)
        # below 2**64: the state holds the seed as an unsigned 64-bit int, which update
        # checks (and an .npz file stores)
        if seed is not None and not (isinstance(seed, (int, np.integer))
                                     and not isinstance(seed, bool) and 0 <= seed < 2**64):
            raise ValueError(f"{self.name}: seed must be None or an int >= 0 and < 2**64, got "
                             f"{seed!r}")
        self.seed = None if seed is None else int(seed)

    def _hparams(self) -> dict:
        return {"sigma": self.sigma, "decay": self.decay, "seed": self.seed}

    def noise_std(self, t: int) -> float:
        """sigma / (1 + t)^decay, the noise standard deviation of update t (from 0)."""
        return self.sigma / (1.0 + t) ** self.decay

    def _init_extra(self) -> dict:
        seed = self.seed
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        return {"seed": seed}

    def _begin(self, state: dict, t: int) -> Any:
        seed = np.asarray(state.get("seed", -1))
        if seed.shape != () or seed.dtype.kind not in "iu" or int(seed) < 0:
            raise ValueError(f"{self.name}.update: state['seed'] must be the int >= 0 set by "
                             f"{self.name}.init, got {state.get('seed')!r}")
        std = self.noise_std(t)
        return (np.random.default_rng([int(seed), t]), std) if std else None

    def _leaf(self, p: np.ndarray, g: np.ndarray, slots: tuple, lr: float, t: int,
              ctx: Any) -> tuple[np.ndarray, tuple]:
        if ctx is None:
            return lr * g, ()
        rng, std = ctx
        dtype = p.dtype if p.dtype in (np.float32, np.float64) else np.float64
        z = rng.standard_normal(p.shape, dtype=dtype).astype(p.dtype, copy=False)
        return lr * (g + std * z), ()
