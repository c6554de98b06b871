"""Hessian-free optimization (Martens 2010): CG, damping, the Rosenbrock target, Model.fit."""

import math

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
import pearlnet.numpy as pnp
from pearlnet.optim import Adam, HessianFree, Momentum
from pearlnet.optim.hessian_free import conjugate_gradient


def rosenbrock_residuals(p, batch):
    """f(x, y) = (10 (y - x^2))^2 + (1 - x)^2 = 100 (y - x^2)^2 + (1 - x)^2 as r1^2 + r2^2."""
    return pnp.stack([10 * (p[1] - p[0] ** 2), 1 - p[0]])


def sum_of_squares(r, batch):
    return pnp.sum(r ** 2)


def rosenbrock(p):
    return sum_of_squares(rosenbrock_residuals(p, None), None)


# ---- conjugate gradient ----------------------------------------------------------------------
def test_cg_solves_a_spd_system(rng):
    m = rng.standard_normal((20, 20))
    a = m @ m.T + 20 * np.eye(20)
    b = rng.standard_normal(20)
    x, saved, iters = conjugate_gradient(lambda v: a @ v, b, np.zeros(20), max_iters=100,
                                         tol=1e-12)
    np.testing.assert_allclose(a @ x, b, rtol=1e-8, atol=1e-8)
    # n = 20 steps in exact arithmetic; in floating point the residual test stops it soon after
    assert iters <= 30
    assert saved[-1][0] == iters and np.array_equal(saved[-1][1], x)
    assert [i for i, _ in saved[:3]] == [5, 7, 9]  # ceil(5 * 1.3^j)


def test_cg_warm_start_and_preconditioner(rng):
    d = np.linspace(1, 1e4, 50)  # badly conditioned diagonal system
    b = rng.standard_normal(50)
    plain = conjugate_gradient(lambda v: d * v, b, np.zeros(50), max_iters=500, tol=1e-14)
    pre = conjugate_gradient(lambda v: d * v, b, np.zeros(50), max_iters=500, tol=1e-14,
                             precondition=d)
    assert pre[2] < plain[2]  # the exact diagonal preconditioner converges at once
    np.testing.assert_allclose(pre[0], b / d, rtol=1e-10)
    warm = conjugate_gradient(lambda v: d * v, b, b / d, max_iters=500, tol=1e-14)
    assert warm[2] == 0  # started at the solution: the residual is at rounding level


def test_cg_drops_a_warm_start_whose_product_overflows(rng):
    # float32, near-singular curvature: the carried direction grew until A x0 overflowed
    b = rng.standard_normal(8).astype(np.float32)
    x0 = np.full(8, 3e22, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        warm = conjugate_gradient(lambda v: np.float32(1e20) * v, b, x0, max_iters=3)
    cold = conjugate_gradient(lambda v: np.float32(1e20) * v, b, np.zeros(8, np.float32),
                              max_iters=3)
    np.testing.assert_array_equal(warm[0], cold[0])


def test_a_carried_direction_that_overflows_does_not_poison_the_step():
    # lambda near 0 on a fitted model: the CG direction carried between steps grew to 3e22 in
    # float32 (pearlnet train --optimizer hf, digits, epoch 39) and its product overflowed
    hf = HessianFree(rosenbrock_residuals, sum_of_squares, damping=1e-6)
    params = np.array([0.9, 0.8], np.float32)
    state = {**hf.init(params), "direction": np.full(2, 3e37, np.float32)}
    with np.errstate(over="ignore", invalid="ignore"):
        new, state, info = hf.step(params, state)
    assert np.isfinite(new).all() and np.isfinite(state["direction"]).all()
    assert info["loss"] < info["loss_before"]


def test_cg_stops_on_negative_curvature():
    a = np.diag([1.0, -1.0])
    x, saved, iters = conjugate_gradient(lambda v: a @ v, np.array([1.0, 1.0]), np.zeros(2))
    assert iters == 0 and np.array_equal(x, np.zeros(2))


def test_martens_stopping_rule_ends_a_stalled_solve():
    # a 2000-dimensional well-conditioned system converges long before 250 iterations;
    # the relative-progress rule (k = max(10, i/10), tol 5e-4) notices and stops
    d = np.linspace(1, 3, 2000)
    x, _, iters = conjugate_gradient(lambda v: d * v, np.ones(2000), np.zeros(2000))
    assert 10 < iters < 60
    assert np.linalg.norm(d * x - 1) < 1e-3 * np.sqrt(2000)


# ---- the optimizer on Rosenbrock's function --------------------------------------------------
@pytest.mark.parametrize("curvature", ["gauss-newton", "hessian"])
def test_rosenbrock_below_1e_10_within_100_outer_steps(curvature):
    hf = HessianFree(rosenbrock_residuals, sum_of_squares, curvature=curvature)
    params = np.array([-1.2, 1.0])
    state = hf.init(params)
    steps = 0
    while steps < 100:
        params, state, info = hf.step(params, state)
        steps += 1
        if info["loss"] < 1e-10:
            break
    assert info["loss"] < 1e-10, f"{curvature}: f = {info['loss']} after {steps} steps"
    assert rosenbrock(params) == pytest.approx(info["loss"], abs=1e-15)
    np.testing.assert_allclose(params, [1.0, 1.0], atol=1e-5)


def test_info_and_damping_follow_martens(monkeypatch):
    hf = HessianFree(rosenbrock_residuals, sum_of_squares, damping=10.0)
    params = np.array([-1.2, 1.0])
    state = hf.init(params)
    assert state["lambda"] == 10.0 and state["step"] == 0
    params2, state2, info = hf.step(params, state)
    assert set(info) == {"loss", "loss_before", "lambda", "rho", "cg_iters", "rate",
                         "grad_norm"}
    assert info["loss_before"] == pytest.approx(rosenbrock(params))
    assert info["loss"] < info["loss_before"]
    assert info["lambda"] == 10.0
    rho = info["rho"]
    expected = 10.0 * (2 / 3 if rho > 0.75 else 3 / 2 if rho < 0.25 else 1.0)
    assert state2["lambda"] == pytest.approx(expected)
    assert state2["step"] == 1
    # the warm start is the last CG iterate, not the backtracked or line-searched step
    assert state2["direction"].shape == (2,)


def test_rho_compares_actual_and_predicted_decrease():
    # on a quadratic the model is exact: rho = 1 (lambda is dropped) when damping is tiny
    a = np.array([[3.0, 1.0], [1.0, 2.0]])

    def net(p, batch):
        return pnp.stack([p[0], p[1]])

    def loss(z, batch):
        return 0.5 * z @ (a @ z) - z[0]

    hf = HessianFree(net, loss, curvature="hessian", damping=1e-8)
    params, state, info = hf.step(np.array([0.5, -0.5]), hf.init(np.zeros(2)))
    assert info["rho"] == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(params, np.linalg.solve(a, [1.0, 0.0]), rtol=1e-6)


def test_damping_min_is_a_floor_under_the_lambda_each_step_uses():
    # on a quadratic rho = 1, so Martens' rule drops lambda by 2/3 after every step; the floor
    # keeps the lambda used at damping_min, and the step is the damped Newton step with it
    a, b = np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([1.0, 0.0])

    def loss(z, batch):
        return 0.5 * z @ (a @ z) - b @ z

    hf = HessianFree(lambda p, batch: p, loss, curvature="hessian", damping=1e-8,
                     damping_min=1e-3)
    params, state = np.array([0.5, -0.5]), hf.init(np.zeros(2))
    assert state["lambda"] == 1e-8  # the floor applies when a step is taken
    for _ in range(2):
        before = params
        params, state, info = hf.step(params, state)
        assert info["lambda"] == 1e-3 and info["rate"] == 1.0
        assert info["rho"] == pytest.approx(1.0, rel=1e-9)
        assert state["lambda"] == pytest.approx(1e-3 * 2 / 3)
        newton = np.linalg.solve(a + 1e-3 * np.eye(2), b - a @ before)
        np.testing.assert_allclose(params, before + newton, rtol=1e-9)
    with pytest.raises(ValueError, match="HessianFree: damping_min"):
        HessianFree(damping_min=-1e-3)


def test_a_step_that_increases_the_loss_is_rejected_and_lambda_grows():
    # a "curvature" far too small makes CG step far past the minimum
    hf = HessianFree(rosenbrock_residuals, sum_of_squares, damping=1e-12, backtrack=False,
                     line_search=True)
    hf._curvature_product = lambda flat, unravel, batch: (lambda v: 1e-6 * v)
    params = np.array([-1.2, 1.0])
    new, state, info = hf.step(params, hf.init(params))
    assert info["rho"] == -math.inf or info["rho"] < 0.25
    assert state["lambda"] == pytest.approx(1e-12 * 1.5)
    assert info["loss"] <= info["loss_before"]  # the line search never accepts an increase


def test_line_search_tries_bounds_the_armijo_search_and_rejects_past_it():
    # f = sqrt(1 + w^2) at w = 10: f' = 10/sqrt(101), f'' = 101^(-3/2), so the (nearly
    # undamped) Newton step is d = -f'/(f'' + lambda) ~ -1010, landing near w = -1000. Armijo
    # (f(w + t d) <= f(w) + 0.01 t f' d, t = 0.8^k) first holds at the k computed below (18)
    def loss(z, batch):
        return pnp.sum(pnp.sqrt(1 + z ** 2))

    w, lam = 10.0, 1e-6
    g, h = w / math.sqrt(1 + w * w), (1 + w * w) ** -1.5
    d = -g / (h + lam)
    f0, f = math.sqrt(1 + w * w), [math.sqrt(1 + (w + 0.8 ** k * d) ** 2) for k in range(61)]
    k = next(k for k in range(1, 61) if f[k] <= f0 + 0.01 * 0.8 ** k * g * d)
    assert k == 18
    for tries, rate in [(60, 0.8 ** k), (k, 0.8 ** k), (k - 1, 0.0)]:
        hf = HessianFree(lambda p, batch: p, loss, curvature="hessian", damping=lam,
                         line_search_tries=tries)
        params, state, info = hf.step(np.array([w]), hf.init(np.zeros(1)))
        assert info["rate"] == pytest.approx(rate, rel=1e-9, abs=0)
        assert params[0] == pytest.approx(w + rate * d, rel=1e-6)  # rejected: w stays at 10
        assert state["lambda"] == pytest.approx(lam * 1.5)  # the full step raised f: rho < 0
    with pytest.raises(ValueError, match="HessianFree: line_search_tries must be a positive "
                                         "integer, got 0"):
        HessianFree(line_search_tries=0)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="curvature must be 'gauss-newton' or 'hessian'"):
        HessianFree(curvature="fisher")
    with pytest.raises(ValueError, match="HessianFree: cg_max_iters must be a positive integer"):
        HessianFree(cg_max_iters=0)
    with pytest.raises(ValueError, match="give net and loss"):
        HessianFree().step(np.zeros(2), {"lambda": 1.0, "direction": np.zeros(2)})


def test_settings_and_state_that_would_stall_or_reverse_it_are_refused():
    for kwargs, match in [
            ({"precondition_cases": 0}, "precondition_cases must be a positive integer, got 0"),
            ({"precondition_cases": -3}, "precondition_cases must be a positive integer"),
            ({"curvature_batch_size": 0}, r"curvature_batch_size must be a positive integer "
                                          r"\(or None\), got 0"),
            ({"curvature_batch_size": 10.0}, "curvature_batch_size .* got 10.0"),
            ({"cg_min_iters": 10, "cg_max_iters": 5}, r"cg_min_iters must be <= cg_max_iters "
                                                      r"\(5\), got 10")]:
        with pytest.raises(ValueError, match=f"HessianFree: {match}"):
            HessianFree(rosenbrock_residuals, sum_of_squares, **kwargs)
    hf = HessianFree(rosenbrock_residuals, sum_of_squares)
    params = np.array([-1.2, 1.0])
    good = hf.init(params)
    for state, match in [
            (None, "state must be the dict returned by HessianFree.init .* got NoneType"),
            ({**good, "lambda": math.nan}, r"state\['lambda'\] must be a number in \[0.0, inf\), "
                                           "got nan"),
            ({**good, "lambda": -1.0}, r"state\['lambda'\] .* got -1.0"),
            ({**good, "direction": np.zeros(3)}, r"state\['direction'\] must be a real array of "
                                                 r"shape \(2,\) .* got float64 of shape \(3,\)")]:
        with pytest.raises(ValueError, match=f"HessianFree.step: {match}"):
            hf.step(params, state)
    for lr in (-1.0, math.nan, math.inf):
        hf.lr = lr
        with pytest.raises(ValueError, match=r"HessianFree.step: lr .* must be a number in "
                                             r"\[0.0, inf\), got"):
            hf.step(params, good)
    hf.lr = 0.0  # a LearningRateScheduler at the end of a schedule: no step
    new, _, info = hf.step(params, good)
    np.testing.assert_array_equal(new, params)
    hf.lr = 0.5  # a positive factor still works, and so does a lambda read back from an .npz
    _, _, info = hf.step(params, {**good, "lambda": np.array(1.0)})
    assert info["loss"] < info["loss_before"]
    pre = HessianFree(rosenbrock_residuals, sum_of_squares, preconditioner=True)
    with pytest.raises(ValueError, match="HessianFree.step: the preconditioner needs a batch of "
                                         "cases .* got batch=None"):
        pre.step(params, good)


# ---- through Model.fit -----------------------------------------------------------------------
def test_hessian_free_trains_a_model_and_resumes(rng, tmp_path):
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = (x[:, :2] @ np.array([[1.0, -2.0], [0.5, 1.0]]) + 0.1).astype(np.float32)
    model = pearlnet.Model([nn.Dense(8, activation="tanh", input_shape=(4,)), nn.Dense(2)])
    hf = HessianFree(cg_max_iters=50, curvature_batch_size=50)
    model.compile(loss="squared_error", optimizer=hf)
    hist = model.fit(x, y, batch_size=200, epochs=15, verbose=0, seed=0)
    assert hist.history["loss"][-1] < 0.05 * hist.history["loss"][0]
    assert model.hf_info["cg_iters"] >= 1
    model.save(tmp_path / "hf.pnl")
    loaded = pearlnet.load_model(tmp_path / "hf.pnl")
    assert type(loaded.optimizer) is HessianFree
    assert float(loaded.opt_state["lambda"]) == pytest.approx(float(model.opt_state["lambda"]))
    np.testing.assert_array_equal(loaded.opt_state["direction"], model.opt_state["direction"])
    a = model.fit(x, y, batch_size=200, epochs=1, verbose=0, seed=1).history["loss"]
    b = loaded.fit(x, y, batch_size=200, epochs=1, verbose=0, seed=1).history["loss"]
    assert a == pytest.approx(b, rel=1e-5)


def test_hessian_free_beats_first_order_on_rosenbrock_per_step():
    # the benchmark table compares wall-clock; here only that HF needs far fewer steps
    def run(opt, steps):
        p = np.array([-1.2, 1.0])
        state = opt.init(p)
        g = pearlnet.grad(rosenbrock)
        for _ in range(steps):
            p, state = opt.update(p, g(p), state)
        return rosenbrock(p)

    assert run(Adam(0.02), 100) > 1e-6
    assert run(Momentum(1e-4, 0.9), 100) > 1e-6


# ---- a preconditioner given as a callable ----------------------------------------------------
def test_cg_with_a_callable_preconditioner_equal_to_the_inverse_converges_in_one_step(rng):
    m = rng.standard_normal((12, 12))
    a = m @ m.T + np.eye(12)  # dense SPD: no diagonal preconditioner can be exact
    b = rng.standard_normal(12)
    a_inv = np.linalg.inv(a)
    x, _, iters = conjugate_gradient(lambda v: a @ v, b, np.zeros(12), max_iters=50,
                                     tol=1e-14, precondition=lambda r: a_inv @ r)
    assert iters == 1  # p = -M^-1 r0 is the Newton step; the exact line search lands on it
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-12)


def test_hessian_free_calls_a_callable_preconditioner_once_per_step_with_params_batch_lambda():
    calls = []

    def identity_preconditioner(params, batch, lam):
        calls.append((np.array(params), batch, lam))
        return lambda r: r

    hf = HessianFree(rosenbrock_residuals, sum_of_squares, damping=0.5,
                     preconditioner=identity_preconditioner)
    plain = HessianFree(rosenbrock_residuals, sum_of_squares, damping=0.5)
    p0 = np.array([-1.2, 1.0])
    got, _, info = hf.step(p0, hf.init(p0))
    want, _, want_info = plain.step(p0, plain.init(p0))
    assert len(calls) == 1 and calls[0][1] is None and calls[0][2] == 0.5
    np.testing.assert_array_equal(calls[0][0], p0)
    np.testing.assert_allclose(got, want, rtol=1e-12)  # M = I is plain CG
    assert info["cg_iters"] == want_info["cg_iters"]


def test_hessian_free_refuses_a_preconditioner_that_is_neither_a_flag_nor_callable():
    with pytest.raises(ValueError, match="HessianFree: preconditioner must be True, False or "
                                         "a callable"):
        HessianFree(rosenbrock_residuals, sum_of_squares, preconditioner="diagonal")


def test_hessian_free_rebuilds_from_its_config_lr_included():
    hf = HessianFree(cg_max_iters=7, lr=0.25, damping_min=1e-4)
    again = HessianFree(**hf.get_config())
    assert again.get_config() == hf.get_config() and again.lr == 0.25
    assert again.damping_min == 1e-4
    with pytest.raises(ValueError, match="HessianFree: lr"):
        HessianFree(lr=-1.0)
