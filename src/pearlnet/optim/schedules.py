"""Learning-rate schedules: callables ``step -> lr``, step t = 0 for the first update.

Any of them goes where an optimizer takes a learning rate: ``SGD(lr=power(0.1, 0.6))``.

The problem book (exercise 18) asks which sequences satisfy the Robbins-Monro conditions,
sum_t eta_t = inf and sum_t eta_t^2 < inf, under which SGD converges on convex differentiable
losses: ``inverse_time`` (p = 1) does, ``power`` and ``robbins_monro`` do for 1/2 < p <= 1;
``exponential`` and ``step`` (with drop < 1) decay too fast (their sum is finite), and
``constant`` too slowly (its squares diverge).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

from .base import check_number

__all__ = ["Schedule", "from_config", "constant", "inverse_time", "power", "robbins_monro",
           "exponential", "step", "cosine", "linear_warmup"]


def _check_int(owner: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class Schedule:
    """Base class: ``__call__(t)`` checks t (an integer >= 0) and returns ``self.value(t)``, or
    a ValueError if that overflows float64; ``__repr__`` lists the constructor arguments kept in
    ``self._args``."""

    _args: dict

    def __call__(self, t: int) -> float:
        name = type(self).__name__
        t = _check_int(name, "the step t", t, 0)
        value = self.value(t)
        if math.isinf(value):  # a growing exponential or step, evaluated too far
            raise ValueError(f"{name}: the learning rate at step t={t} overflows float64 "
                             f"({self!r} grows without bound)")
        return value

    def value(self, t: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args.items())
        return f"{type(self).__name__}({args})"

    def get_config(self) -> dict:
        """{"schedule": class name, "args": constructor arguments}, JSON-ready (a nested
        schedule becomes a nested config); ``from_config`` inverts it."""
        return {"schedule": type(self).__name__,
                "args": {k: v.get_config() if isinstance(v, Schedule) else v
                         for k, v in self._args.items()}}


def from_config(config: dict) -> Schedule:
    """The schedule a ``Schedule.get_config()`` dict describes."""
    cls = globals().get(config.get("schedule", ""))
    if not (isinstance(cls, type) and issubclass(cls, Schedule)):
        raise ValueError(f"schedules.from_config: unknown schedule {config.get('schedule')!r}")
    args = {k: from_config(v) if isinstance(v, dict) and "schedule" in v else v
            for k, v in config["args"].items()}
    return cls(**args)


def _lr(owner: str, lr: Any) -> float:
    return check_number(owner, "lr", lr, low=0.0)


def _scaled_power(lr: float, base: float, exponent: float) -> float:
    """lr * base^exponent where base^exponent alone overflows float64: in logarithms, so a
    product that fits (a decaying ``power``, a small lr) is still returned; inf if it does not
    (``Schedule.__call__`` turns that into an error)."""
    if lr == 0.0:
        return 0.0
    try:
        return math.exp(math.log(lr) + exponent * math.log(base))
    except OverflowError:
        return math.inf


class constant(Schedule):  # lower case: used like functions
    """lr_t = lr."""

    def __init__(self, lr: float) -> None:
        self._args = {"lr": _lr("constant", lr)}

    def value(self, t: int) -> float:
        return self._args["lr"]


class inverse_time(Schedule):
    """lr_t = lr / (t + 1): the problem book's eta_t = 1/t, counted from t = 0."""

    def __init__(self, lr: float) -> None:
        self._args = {"lr": _lr("inverse_time", lr)}

    def value(self, t: int) -> float:
        return self._args["lr"] / (t + 1)


class power(Schedule):
    """lr_t = lr / (t + 1)^p (the book's 0.1 / t^0.3, 1 / sqrt(t), 1 / t^2 family)."""

    def __init__(self, lr: float, p: float) -> None:
        self._args = {"lr": _lr("power", lr), "p": check_number("power", "p", p, low=0.0)}

    def value(self, t: int) -> float:
        try:
            return self._args["lr"] / (t + 1) ** self._args["p"]
        except OverflowError:  # (t + 1)^p beyond float64: the value is tiny, not an error
            return _scaled_power(self._args["lr"], t + 1, -self._args["p"])


class robbins_monro(Schedule):
    """lr_t = lr * (s0 / (s0 + t))^p: the problem book's lambda * (s0 / (s0 + t))^p."""

    def __init__(self, lr: float, s0: float, p: float) -> None:
        self._args = {"lr": _lr("robbins_monro", lr),
                      "s0": check_number("robbins_monro", "s0", s0, low=0.0, low_open=True),
                      "p": check_number("robbins_monro", "p", p, low=0.0)}

    def value(self, t: int) -> float:
        a = self._args
        return a["lr"] * (a["s0"] / (a["s0"] + t)) ** a["p"]


class exponential(Schedule):
    """lr_t = lr * rate^(t / decay_steps) (smooth; ``step`` is the staircase version)."""

    def __init__(self, lr: float, rate: float, decay_steps: int = 1) -> None:
        self._args = {"lr": _lr("exponential", lr),
                      "rate": check_number("exponential", "rate", rate, low=0.0,
                                           low_open=True),
                      "decay_steps": _check_int("exponential", "decay_steps", decay_steps, 1)}

    def value(self, t: int) -> float:
        a = self._args
        try:
            return a["lr"] * a["rate"] ** (t / a["decay_steps"])
        except OverflowError:  # rate > 1 grows without bound
            return _scaled_power(a["lr"], a["rate"], t / a["decay_steps"])


class step(Schedule):
    """lr_t = lr * drop^floor(t / every): multiply by ``drop`` every ``every`` updates."""

    def __init__(self, lr: float, drop: float, every: int) -> None:
        self._args = {"lr": _lr("step", lr),
                      "drop": check_number("step", "drop", drop, low=0.0, low_open=True),
                      "every": _check_int("step", "every", every, 1)}

    def value(self, t: int) -> float:
        a = self._args
        try:
            return a["lr"] * a["drop"] ** (t // a["every"])
        except OverflowError:  # drop > 1 grows without bound
            return _scaled_power(a["lr"], a["drop"], t // a["every"])


class cosine(Schedule):
    """Cosine annealing (Loshchilov & Hutter's SGDR without restarts), T = total_steps:

        lr_t = final + (lr - final) * (1 + cos(pi * min(t, T) / T)) / 2

    from lr at t = 0 down to ``final`` at t = T, and ``final`` after.
    """

    def __init__(self, lr: float, total_steps: int, final: float = 0.0) -> None:
        self._args = {"lr": _lr("cosine", lr),
                      "total_steps": _check_int("cosine", "total_steps", total_steps, 1),
                      "final": check_number("cosine", "final", final, low=0.0)}

    def value(self, t: int) -> float:
        a = self._args
        frac = min(t, a["total_steps"]) / a["total_steps"]
        return a["final"] + (a["lr"] - a["final"]) * 0.5 * (1.0 + math.cos(math.pi * frac))


class linear_warmup(Schedule):
    """A linear ramp over the first W = warmup_steps updates, then the base schedule:

        lr_t = base(t) * (t + 1) / W   for t < W,      lr_t = base(t)   for t >= W

    so the first update uses base(0) / W and update W - 1 the full base(W - 1). ``base`` is a
    float (a constant) or another schedule, evaluated at the same t (not shifted by W).
    """

    def __init__(self, schedule_or_lr: float | Callable[[int], float],
                 warmup_steps: int) -> None:
        base = schedule_or_lr if callable(schedule_or_lr) else _lr("linear_warmup",
                                                                    schedule_or_lr)
        self._args = {"schedule_or_lr": base,
                      "warmup_steps": _check_int("linear_warmup", "warmup_steps",
                                                 warmup_steps, 1)}

    def value(self, t: int) -> float:
        base, w = self._args["schedule_or_lr"], self._args["warmup_steps"]
        lr = float(base(t)) if callable(base) else base
        return lr * (t + 1) / w if t < w else lr
