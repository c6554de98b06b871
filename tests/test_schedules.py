"""Learning-rate schedules: values against their formulas, use as an optimizer's lr, bad input."""

import math

import numpy as np
import pytest

from pearlnet.optim import SGD, Adam, ClipByGlobalNorm
from pearlnet.optim.schedules import (
    constant,
    cosine,
    exponential,
    inverse_time,
    linear_warmup,
    power,
    robbins_monro,
    step,
)

# (schedule, lr at t = 0, 1, 10), each written from the docstring formula
CASES = [
    (constant(0.1), (0.1, 0.1, 0.1)),
    # lr / (t + 1)
    (inverse_time(1.0), (1.0, 1 / 2, 1 / 11)),
    # lr / (t + 1)^p
    (power(0.5, 0.5), (0.5, 0.5 / math.sqrt(2), 0.5 / math.sqrt(11))),
    # lr (s0 / (s0 + t))^p: t = 10 gives 0.5 (10/20)^0.75 = 0.5 * 0.5946... = 0.2973...
    (robbins_monro(0.5, s0=10, p=0.75), (0.5, 0.5 * (10 / 11) ** 0.75, 0.29730177875068026)),
    # lr rate^(t / decay_steps): 0.5^(1/2), 0.5^5
    (exponential(1.0, 0.5, decay_steps=2), (1.0, math.sqrt(0.5), 1 / 32)),
    # lr drop^floor(t / every): floor(10/3) = 3
    (step(1.0, 0.5, every=3), (1.0, 1.0, 0.125)),
    # final + (lr - final)(1 + cos(pi t / T))/2 with T = 20: t = 10 is halfway, 0.1 + 0.45
    (cosine(1.0, total_steps=20, final=0.1),
     (1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 20)) / 2, 0.55)),
    # base (t + 1) / W for t < W = 4, then base: 0.1/4, 0.1*2/4, 0.1
    (linear_warmup(0.1, 4), (0.025, 0.05, 0.1)),
    # a schedule as base, at the same t: 1*(1/4), (1/2)(2/4), 1/11
    (linear_warmup(inverse_time(1.0), 4), (0.25, 0.25, 1 / 11)),
]


@pytest.mark.parametrize("schedule,values", CASES, ids=[repr(c[0]) for c in CASES])
def test_values_at_0_1_10(schedule, values):
    got = [schedule(t) for t in (0, 1, 10)]
    np.testing.assert_allclose(got, values, rtol=1e-14)
    assert all(isinstance(v, float) for v in got)


def test_ends_and_integer_steps():
    c = cosine(1.0, total_steps=20, final=0.1)
    assert c(20) == pytest.approx(0.1, rel=1e-15) and c(1000) == c(20)
    w = linear_warmup(0.1, 4)
    assert w(3) == 0.1 and w(4) == 0.1
    assert step(1.0, 0.5, every=3)(np.int64(3)) == 0.5


def test_repr():
    assert repr(robbins_monro(0.5, 10, 0.75)) == "robbins_monro(lr=0.5, s0=10.0, p=0.75)"
    assert repr(linear_warmup(cosine(0.1, 100), 5)) == (
        "linear_warmup(schedule_or_lr=cosine(lr=0.1, total_steps=100, final=0.0), "
        "warmup_steps=5)")


def test_sgd_uses_a_schedule():
    # lr_t = 1/(t + 1); gradient 1 each step: w = 0 - 1 - 1/2 - 1/3
    opt = SGD(lr=inverse_time(1.0))
    w = np.array([0.0], np.float32)
    state = opt.init(w)
    for _ in range(3):
        w, state = opt.update(w, np.ones(1, np.float32), state)
    np.testing.assert_allclose(w, [-(1 + 1 / 2 + 1 / 3)], rtol=1e-6)
    assert w.dtype == np.float32
    assert opt.current_lr(2) == 1 / 3


def test_adam_and_clipping_read_the_schedule_by_step():
    # a step schedule halves the lr after 2 updates; Adam's first steps move by lr sign(g)
    opt = ClipByGlobalNorm(Adam(lr=step(0.1, 0.5, every=2), eps=1e-12), max_norm=1.0)
    w = np.array([0.0])
    state = opt.init(w)
    moves = []
    for _ in range(3):
        new, state = opt.update(w, np.array([-2.0]), state)
        moves.append(float(new[0] - w[0]))
        w = new
    np.testing.assert_allclose(moves, [0.1, 0.1, 0.05], rtol=1e-10)


def test_growing_schedules_overflow_with_a_named_error_and_power_underflows():
    # rate or drop > 1 is allowed (an lr range test grows the rate) until lr_t leaves float64
    assert exponential(1.0, 10.0)(308) == 1e308
    with pytest.raises(ValueError, match=r"exponential: the learning rate at step t=309 "
                                         r"overflows float64 \(exponential\(lr=1.0, rate=10.0"):
        exponential(1.0, 10.0)(309)
    with pytest.raises(ValueError, match="step: the learning rate at step t=700 overflows"):
        step(1.0, 10.0, every=2)(700)
    with pytest.raises(ValueError, match="exponential: the learning rate at step t=400"):
        SGD(exponential(1.0, 10.0)).update(np.ones(2), np.ones(2), {"step": 400})
    assert exponential(1e-300, 10.0)(400) == pytest.approx(1e100, rel=1e-12)  # fits: returned
    # (t + 1)^p beyond float64 makes lr_t tiny, not an error
    assert power(1.0, 200.0)(100) == 0.0
    assert power(1e300, 200.0)(100) == pytest.approx(1e300 / 101.0 ** 100 / 101.0 ** 100,
                                                     rel=1e-12)


@pytest.mark.parametrize("make,match", [
    (lambda: constant(-1.0), "constant: lr"),
    (lambda: power(0.1, -1), "power: p"),
    (lambda: robbins_monro(0.1, 0, 1), "robbins_monro: s0"),
    (lambda: exponential(0.1, 0.0), "exponential: rate"),
    (lambda: exponential(0.1, 0.5, decay_steps=0), "exponential: decay_steps must be an "
                                                   "integer >= 1, got 0"),
    (lambda: step(0.1, 0.5, every=2.5), "step: every must be an integer >= 1, got 2.5"),
    (lambda: step(0.1, -0.5, every=2), "step: drop"),
    (lambda: cosine(0.1, 0), "cosine: total_steps"),
    (lambda: cosine(0.1, 10, final=-1.0), "cosine: final"),
    (lambda: linear_warmup(0.1, 0), "linear_warmup: warmup_steps"),
    (lambda: inverse_time(0.1)(-1), "inverse_time: the step t must be an integer >= 0"),
    (lambda: inverse_time(0.1)(1.5), "inverse_time: the step t"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
