"""Optimizers: the problem book's exercise, one-step golden values, weight decay, clipping,
gradient noise, resuming, bad arguments and convergence."""

import math

import numpy as np
import pytest

import pearlnet
from pearlnet import tree_flatten, tree_map, tree_unflatten
from pearlnet.optim import (
    SGD,
    AdaGrad,
    Adam,
    ClipByGlobalNorm,
    Momentum,
    Nesterov,
    NoisySGD,
    Optimizer,
    RMSProp,
    get,
    global_norm,
)
from pearlnet.optim.schedules import exponential

# ---- the problem book (seed 003, exercise 15) ------------------------------------------------
# Two observations x = 1, 2; y = 2, 3; model y = w x; loss L_i(w) = (y_i - w x_i)^2, so
# dL_1/dw = -2 (2 - w) = 2w - 4 and dL_2/dw = -4 (3 - 2w) = 8w - 12.
X, Y = (1.0, 2.0), (2.0, 3.0)


def loss_i(i):
    return lambda w: (Y[i] - w * X[i]) ** 2


def run(opt, grad_of, steps):
    """The iterates w_1..w_steps from w_0 = 0; grad_of(k, w) is the gradient of update k."""
    w = np.array(0.0)
    state = opt.init(w)
    out = []
    for k in range(steps):
        w, state = opt.update(w, grad_of(k, w), state)
        out.append(float(w))
    return out


def test_book_full_batch_gradient_descent():
    # the book averages the two gradients: grad L(w) = ((2w - 4) + (8w - 12)) / 2 = 5w - 8
    #   w1 = 0 - 0.1 (-8) = 0.8;  w2 = 0.8 - 0.1 (4 - 8) = 1.2;  w3 = 1.2 - 0.1 (6 - 8) = 1.4
    def mean_loss(w):
        return (loss_i(0)(w) + loss_i(1)(w)) / 2

    ws = run(SGD(lr=0.1), lambda k, w: pearlnet.grad(mean_loss)(w), 3)
    np.testing.assert_allclose(ws, [0.8, 1.2, 1.4], rtol=0, atol=1e-12)


def sgd_order(k, w):
    """The book's SGD: observation 1, then 2, then 1, ..."""
    return pearlnet.grad(loss_i(k % 2))(w)


def test_book_stochastic_gradient_descent():
    # w1 = 0 - 0.1 (2*0 - 4) = 0.4
    # w2 = 0.4 - 0.1 (8*0.4 - 12) = 0.4 + 0.88 = 1.28
    # w3 = 1.28 - 0.1 (2*1.28 - 4) = 1.28 + 0.144 = 1.424
    # w4 = 1.424 - 0.1 (8*1.424 - 12) = 1.424 + 0.0608 = 1.4848
    ws = run(SGD(lr=0.1), sgd_order, 4)
    np.testing.assert_allclose(ws, [0.4, 1.28, 1.424, 1.4848], rtol=0, atol=1e-12)


# The book leaves the other four items unsolved ("do them yourself"). They say "Momentum SGD",
# so the gradients follow the SGD item's order (observation 1, then 2), with alpha = 0.9,
# eta = 0.1 (Adam: beta1 = beta2 = 0.9, eta = 0.1). The book's formulas have no eps: 1e-16 is
# below float64 resolution next to the numbers involved, so the eps-free values are matched.
def test_book_momentum():
    # I1 = 0.9*0 + 0.1*(-4) = -0.4;              w1 = 0 + 0.4 = 0.4
    # g2 = 8*0.4 - 12 = -8.8
    # I2 = 0.9*(-0.4) + 0.1*(-8.8) = -1.24;      w2 = 0.4 + 1.24 = 1.64
    ws = run(Momentum(lr=0.1, beta=0.9), sgd_order, 2)
    np.testing.assert_allclose(ws, [0.4, 1.64], rtol=0, atol=1e-12)


def test_book_nesterov():
    # Returned params are the look-ahead points phi; I1 = -0.4 as for momentum:
    # phi1 = 0 - (0.9*(-0.4) + 0.1*(-4)) = 0.36 + 0.4 = 0.76
    # g2 = 8*0.76 - 12 = -5.92 (the gradient at the look-ahead point)
    # I2 = 0.9*(-0.4) + 0.1*(-5.92) = -0.36 - 0.592 = -0.952
    # phi2 = 0.76 - (0.9*(-0.952) + 0.1*(-5.92)) = 0.76 + 0.8568 + 0.592 = 2.2088
    # Sutskever's iterates w = phi + 0.9 I: w1 = 0.76 - 0.36 = 0.4, w2 = 2.2088 - 0.8568 = 1.352
    # (directly: v1 = -0.1*g(0) = 0.4; v2 = 0.9*0.4 - 0.1*g(0.4 + 0.36) = 0.36 + 0.592 = 0.952;
    #  w2 = 0.4 + 0.952 = 1.352)
    opt = Nesterov(lr=0.1, beta=0.9)
    w, state = np.array(0.0), opt.init(np.array(0.0))
    phis, ws = [], []
    for k in range(2):
        w, state = opt.update(w, sgd_order(k, w), state)
        phis.append(float(w))
        ws.append(float(w + 0.9 * state["inertia"]))
    np.testing.assert_allclose(phis, [0.76, 2.2088], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ws, [0.4, 1.352], rtol=0, atol=1e-12)


def test_book_rmsprop():
    # C1 = 0.9*0 + 0.1*(-4)^2 = 1.6
    # w1 = 0 + 0.1*4/sqrt(1.6) = 0.4/1.2649110640673518 = sqrt(0.1) = 0.31622776601683794
    # g2 = 8*0.31622776601683794 - 12 = -9.4701778718652965
    # C2 = 0.9*1.6 + 0.1*9.4701778718652965^2 = 1.44 + 0.1*89.684268924767 = 10.408426892476712
    # w2 = 0.31622776601683794 + 0.1*9.4701778718652965/sqrt(10.408426892476712)
    #    = 0.31622776601683794 + 0.94701778718652965/3.2262093689772695
    #    = 0.31622776601683794 + 0.29353884973892466 = 0.6097666157557626
    ws = run(RMSProp(lr=0.1, gamma=0.9, eps=1e-16), sgd_order, 2)
    np.testing.assert_allclose(ws, [0.31622776601683794, 0.6097666157557626], rtol=0,
                               atol=1e-12)


def test_book_adam():
    # t = 1: m1 = 0.1*(-4) = -0.4; v1 = 0.1*16 = 1.6
    #        mhat = -0.4/(1 - 0.9) = -4; vhat = 1.6/(1 - 0.9) = 16
    #        w1 = 0 - 0.1*(-4)/sqrt(16) = 0.1
    # t = 2: g2 = 8*0.1 - 12 = -11.2
    #        m2 = 0.9*(-0.4) + 0.1*(-11.2) = -0.36 - 1.12 = -1.48
    #        v2 = 0.9*1.6 + 0.1*125.44 = 1.44 + 12.544 = 13.984
    #        mhat = -1.48/(1 - 0.81) = -7.7894736842105265; vhat = 13.984/0.19 = 73.6
    #        w2 = 0.1 + 0.1*7.7894736842105265/sqrt(73.6)
    #           = 0.1 + 0.77894736842105265/8.579044235810887
    #           = 0.1 + 0.09079652080234634 = 0.19079652080234634
    ws = run(Adam(lr=0.1, beta1=0.9, beta2=0.9, eps=1e-16), sgd_order, 2)
    np.testing.assert_allclose(ws, [0.1, 0.19079652080234634], rtol=0, atol=1e-12)


# ---- one-step golden values on a small tree --------------------------------------------------
# params W (float32, 2x2) and b (float64, 2); the same gradients for every optimizer:
#   gW = [[2, -4], [0, 1]],  gb = [3, -1]
P0 = {"W": np.array([[1.0, -1.0], [0.5, 2.0]], np.float32), "b": np.array([0.25, -0.5])}
G0 = {"W": np.array([[2.0, -4.0], [0.0, 1.0]], np.float32), "b": np.array([3.0, -1.0])}
SQ = 0.1 * math.sqrt(2 / 3)

GOLDEN = [
    # (optimizer, state before (step, slots), expected step delta (W, b), expected slots after)
    # SGD: delta = 0.1 g
    (SGD(lr=0.1), 0, {}, ([[0.2, -0.4], [0.0, 0.1]], [0.3, -0.1]), {}),
    # Momentum: I = 0.5 I0 + 0.1 g with I0 = [[1, 1], [-1, 0]], [0.2, 0];
    #   W: [[0.5 + 0.2, 0.5 - 0.4], [-0.5 + 0, 0 + 0.1]],  b: [0.1 + 0.3, 0 - 0.1]; delta = I
    (Momentum(lr=0.1, beta=0.5), 4, {"inertia": ([[1, 1], [-1, 0]], [0.2, 0])},
     ([[0.7, 0.1], [-0.5, 0.1]], [0.4, -0.1]),
     {"inertia": ([[0.7, 0.1], [-0.5, 0.1]], [0.4, -0.1])}),
    # Nesterov: same I; delta = 0.5 I + 0.1 g:
    #   W: [[0.35 + 0.2, 0.05 - 0.4], [-0.25 + 0, 0.05 + 0.1]],  b: [0.2 + 0.3, -0.05 - 0.1]
    (Nesterov(lr=0.1, beta=0.5), 4, {"inertia": ([[1, 1], [-1, 0]], [0.2, 0])},
     ([[0.55, -0.35], [-0.25, 0.15]], [0.5, -0.15]),
     {"inertia": ([[0.7, 0.1], [-0.5, 0.1]], [0.4, -0.1])}),
    # AdaGrad: C = C0 + g^2 = [[5 + 4, 0 + 16], [1 + 0, 3 + 1]], [7 + 9, 8 + 1];
    #   delta = 0.1 g / sqrt(C) = [[0.2/3, -0.4/4], [0/1, 0.1/2]], [0.3/4, -0.1/3]
    (AdaGrad(lr=0.1), 2, {"cache": ([[5, 0], [1, 3]], [7, 8])},
     ([[0.2 / 3, -0.1], [0.0, 0.05]], [0.075, -0.1 / 3]),
     {"cache": ([[9, 16], [1, 4]], [16, 9])}),
    # RMSProp (gamma 0.5): C = 0.5 C0 + 0.5 g^2 = [[7 + 2, 8 + 8], [1 + 0, 3.5 + 0.5]],
    #   [11.5 + 4.5, 8.5 + 0.5] = the AdaGrad caches, so the same deltas
    (RMSProp(lr=0.1, gamma=0.5), 2, {"cache": ([[14, 16], [2, 7]], [23, 17])},
     ([[0.2 / 3, -0.1], [0.0, 0.05]], [0.075, -0.1 / 3]),
     {"cache": ([[9, 16], [1, 4]], [16, 9])}),
    # Adam, first update (t = 1): mhat = g, vhat = g^2, delta = 0.1 g/|g| = 0.1 sign(g)
    # (eps = 1e-12 moves the deltas by a relative eps/|g|, below the float64 tolerance 1e-9)
    (Adam(lr=0.1, eps=1e-12), 0, {}, ([[0.1, -0.1], [0.0, 0.1]], [0.1, -0.1]),
     {"m": ([[0.2, -0.4], [0, 0.1]], [0.3, -0.1]),
      "v": ([[0.004, 0.016], [0, 0.001]], [0.009, 0.001])}),
    # Adam, beta1 = beta2 = 0.5, zero moments but step 1 (so t = 2): m = 0.5 g, v = 0.5 g^2,
    #   mhat = 0.5 g/0.75 = 2g/3, vhat = 2g^2/3, delta = 0.1 (2/3) g/(sqrt(2/3)|g|)
    #   = 0.1 sqrt(2/3) sign(g) = 0.0816... sign(g)  (no bias correction would give 0.0707...)
    (Adam(lr=0.1, beta1=0.5, beta2=0.5, eps=1e-12), 1, {}, ([[SQ, -SQ], [0.0, SQ]], [SQ, -SQ]),
     {"m": ([[1, -2], [0, 0.5]], [1.5, -0.5]), "v": ([[2, 8], [0, 0.5]], [4.5, 0.5])}),
    # NoisySGD with sigma = 0: exactly SGD
    (NoisySGD(lr=0.1, sigma=0.0, seed=0), 3, {}, ([[0.2, -0.4], [0.0, 0.1]], [0.3, -0.1]), {}),
]


def as_tree(pair):
    return {"W": np.array(pair[0], np.float32), "b": np.array(pair[1], np.float64)}


def copy_tree(tree):
    return tree_map(lambda a: np.array(a, copy=True), tree)


def assert_tree_equal(a, b):
    (la, da), (lb, db) = tree_flatten(a), tree_flatten(b)
    assert da == db
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("opt,step,slots,delta,slots_after", GOLDEN,
                         ids=[f"{g[0].name}-{i}" for i, g in enumerate(GOLDEN)])
def test_one_step_golden_values(opt, step, slots, delta, slots_after):
    state = opt.init(P0)
    state["step"] = step
    for name, pair in slots.items():
        state[name] = as_tree(pair)
    params, grads = copy_tree(P0), copy_tree(G0)
    state_before = {k: copy_tree(v) for k, v in state.items()}

    new, new_state = opt.update(params, grads, state)

    expected = as_tree(delta)
    np.testing.assert_allclose(new["W"], P0["W"] - expected["W"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(new["b"], P0["b"] - expected["b"], rtol=1e-9, atol=1e-12)
    assert new["W"].dtype == np.float32 and new["b"].dtype == np.float64
    assert new_state["step"] == step + 1
    for name, pair in slots_after.items():
        want = as_tree(pair)
        np.testing.assert_allclose(new_state[name]["W"], want["W"], rtol=1e-6)
        np.testing.assert_allclose(new_state[name]["b"], want["b"], rtol=1e-12)
        assert new_state[name]["W"].dtype == np.float32
    # pure: the inputs are untouched
    assert_tree_equal(params, P0)
    assert_tree_equal(grads, G0)
    for k, v in state_before.items():
        assert_tree_equal(state[k], v)


def test_eps_is_inside_the_square_root():
    # the slides' sqrt(C + eps), not PyTorch's sqrt(C) + eps: g = 1, eps = 3
    # AdaGrad: C = 1, step = 1/sqrt(1 + 3) = 0.5 (outside: 1/(1 + 3) = 0.25)
    # RMSProp (gamma 0.75): C = 0.25, step = 1/sqrt(0.25 + 3.75) = 0.5 (outside: 1/4.25)
    w = np.array([0.0])
    for opt in (AdaGrad(lr=1.0, eps=3.0), RMSProp(lr=1.0, gamma=0.75, eps=3.75)):
        new, _ = opt.update(w, np.array([1.0]), opt.init(w))
        np.testing.assert_allclose(new, [-0.5], rtol=1e-15)


def test_every_registered_optimizer_has_a_golden_test():
    assert {g[0].key for g in GOLDEN} == {get(n).key for n in
                                          ("sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                           "adam", "noisy_sgd")}


def test_float32_kept_with_float64_gradients_and_any_tree():
    params = [np.ones(3, np.float32), (np.ones((2, 2), np.float32), {"s": np.float32(2.0)})]
    grads = tree_map(lambda p: np.full(np.shape(p), 0.5), params)  # float64 gradients
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "noisy_sgd"):
        opt = get(name)
        state = opt.init(params)
        new, state = opt.update(params, grads, state)
        new, state = opt.update(new, grads, state)
        leaves, treedef = tree_flatten(new)
        assert treedef == tree_flatten(params)[1]
        assert all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in leaves), name
        for s in opt.slots:
            assert all(x.dtype == np.float32 for x in tree_flatten(state[s])[0])


# ---- decoupled weight decay ------------------------------------------------------------------
ZERO = tree_map(np.zeros_like, P0)


def test_weight_decay_skips_1d_leaves_by_default():
    # zero gradients: only the decay moves W, by -lr * wd * W = -0.05 W; b (1-D) stays
    new, _ = SGD(lr=0.1, weight_decay=0.5).update(P0, ZERO, SGD().init(P0))
    np.testing.assert_allclose(new["W"], 0.95 * P0["W"], rtol=1e-7)
    np.testing.assert_array_equal(new["b"], P0["b"])


@pytest.mark.parametrize("mask,decayed", [
    (True, {"W", "b"}), (False, set()), ({"W": False, "b": True}, {"b"}),
    (lambda path, leaf: path[-1] != "W", {"b"})])
def test_weight_decay_mask(mask, decayed):
    opt = Momentum(lr=0.1, weight_decay=0.5, decay_mask=mask)
    new, _ = opt.update(P0, ZERO, opt.init(P0))
    for k in ("W", "b"):
        np.testing.assert_allclose(new[k], (0.95 if k in decayed else 1.0) * P0[k], rtol=1e-7)


def test_weight_decay_is_beside_the_adam_step():
    # AdamW: P <- P - lr * wd * P - (the Adam step, which the decay does not enter)
    adam, adamw = Adam(lr=0.1), Adam(lr=0.1, weight_decay=0.2, decay_mask=True)
    plain, s1 = adam.update(P0, G0, adam.init(P0))
    decayed, s2 = adamw.update(P0, G0, adamw.init(P0))
    for k in ("W", "b"):
        np.testing.assert_allclose(decayed[k], plain[k] - 0.1 * 0.2 * P0[k], rtol=1e-6)
        assert_tree_equal(s1["m"], s2["m"])


# ---- clipping --------------------------------------------------------------------------------
def test_clip_by_global_norm_scales_by_the_global_norm():
    grads = {"W": np.array([[3.0, 0.0], [0.0, 0.0]], np.float32), "b": np.array([0.0, 4.0])}
    assert global_norm(grads) == 5.0
    opt = ClipByGlobalNorm(SGD(lr=1.0), max_norm=1.0)
    new, state = opt.update(P0, grads, opt.init(P0))
    # every gradient scaled by min(1, 1/5) = 0.2: W[0,0] moves by 0.6, b[1] by 0.8
    np.testing.assert_allclose(P0["W"] - new["W"], [[0.6, 0], [0, 0]], rtol=1e-6)
    np.testing.assert_allclose(P0["b"] - new["b"], [0, 0.8], rtol=1e-15)
    assert new["W"].dtype == np.float32 and state["step"] == 1
    # under the bound: unchanged
    opt = ClipByGlobalNorm(SGD(lr=1.0), max_norm=10.0)
    new, _ = opt.update(P0, grads, opt.init(P0))
    np.testing.assert_array_equal(P0["b"] - new["b"], [0, 4.0])


def test_clip_by_global_norm_clips_a_gradient_too_large_to_square():
    # |g| = 5 * 2^600: g @ g overflows float64, yet the norm and the clipped step are exact;
    # scaling by a power of two changes no rounding, so the step equals the one for g = [3, 4]
    normal, huge = np.array([3.0, 4.0]), np.array([3.0, 4.0]) * 2.0 ** 600
    assert global_norm(normal) == 5.0 and global_norm(huge) == 5.0 * 2.0 ** 600
    assert global_norm(np.array([3.0, 4.0]) * 2.0 ** -600) == 5.0 * 2.0 ** -600  # no underflow
    opt = ClipByGlobalNorm(SGD(lr=1.0), max_norm=1.0)
    p = np.zeros(2)
    for g in (normal, huge):
        new, _ = opt.update(p, g, opt.init(p))
        np.testing.assert_array_equal(new, [-(3.0 * (1.0 / 5.0)), -0.8])
    new, _ = opt.update(p, np.array([1e200, 1e200]), opt.init(p))  # the audit's case
    np.testing.assert_allclose(new, [-math.sqrt(0.5)] * 2, rtol=1e-15)
    # a gradient with an infinite entry still becomes NaN, as documented
    new, _ = opt.update(p, np.array([math.inf, 1.0]), opt.init(p))
    assert np.isnan(new).all()


def test_clip_forwards_the_learning_rate():
    inner = Adam(lr=0.1)
    opt = ClipByGlobalNorm(inner, max_norm=1.0)
    assert opt.lr == 0.1 and get(opt) is opt
    opt.lr = 0.05
    assert inner.lr == 0.05 and opt.current_lr(7) == 0.05
    assert repr(opt) == ("ClipByGlobalNorm(Adam(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-08), "
                         "max_norm=1.0)")


# ---- gradient noise --------------------------------------------------------------------------
def test_noisy_sgd_with_zero_sigma_is_sgd():
    params = copy_tree(P0)
    a, b = SGD(lr=0.05), NoisySGD(lr=0.05, sigma=0.0)
    sa, sb = a.init(P0), b.init(P0)
    pa = pb = params
    for _ in range(5):
        pa, sa = a.update(pa, G0, sa)
        pb, sb = b.update(pb, G0, sb)
        assert_tree_equal(pa, pb)


@pytest.mark.parametrize("t", [0, 9, 99])
def test_noisy_sgd_noise_std_decays(t):
    # zero gradient, lr 1: the step is -sigma_t z with 40,000 standard normal z; the sample std
    # has relative standard error 1/sqrt(2n) = 0.35%, so 3% is about 8 standard errors
    sigma = 2.0
    opt = NoisySGD(lr=1.0, sigma=sigma, seed=1234)
    params = {"a": np.zeros((100, 200)), "b": np.zeros(20_000, np.float32)}
    state = opt.init(params)
    state["step"] = t
    new, _ = opt.update(params, tree_map(np.zeros_like, params), state)
    want = sigma / (1 + t) ** 0.55
    assert opt.noise_std(t) == pytest.approx(want, rel=1e-15)
    for leaf in tree_flatten(new)[0]:
        assert abs(np.std(leaf) / want - 1) < 0.03
        assert abs(np.mean(leaf)) < 0.03 * want


def test_noisy_sgd_uses_the_documented_generator():
    opt = NoisySGD(lr=0.1, sigma=0.5, seed=7)
    state = opt.init(P0)
    new, state = opt.update(P0, G0, opt.update(P0, G0, state)[1])  # the second update, t = 1
    rng = np.random.default_rng([7, 1])
    zw = rng.standard_normal((2, 2), dtype=np.float32)
    zb = rng.standard_normal(2)
    std = 0.5 / 2 ** 0.55
    np.testing.assert_allclose(new["W"], P0["W"] - 0.1 * (G0["W"] + std * zw), rtol=1e-6)
    np.testing.assert_allclose(new["b"], P0["b"] - 0.1 * (G0["b"] + std * zb), rtol=1e-14)


# ---- resuming from a saved state -------------------------------------------------------------
A = np.array([[3.0, 1.0], [1.0, 2.0]])


def quad_grads(params):
    # f = 0.5 x^T A x for x = W's first row, plus 0.5 |b|^2
    gw = np.zeros_like(params["W"])
    gw[0] = A @ params["W"][0]
    return {"W": gw, "b": params["b"].copy()}


def save_load(state, path):
    """What a Model does: flatten the state into an .npz file and rebuild it."""
    leaves, treedef = tree_flatten(state)
    np.savez(path, *leaves)
    with np.load(path) as f:
        return tree_unflatten(treedef, [f[f"arr_{i}"] for i in range(len(leaves))])


@pytest.mark.parametrize("make", [
    lambda: SGD(lr=0.1), lambda: Momentum(lr=0.1), lambda: Nesterov(lr=0.1),
    lambda: AdaGrad(lr=0.1), lambda: RMSProp(lr=0.01), lambda: Adam(lr=0.1),
    lambda: NoisySGD(lr=0.1, sigma=0.3),
    lambda: ClipByGlobalNorm(Adam(lr=0.1, weight_decay=0.1), 1.0)])
def test_resuming_reproduces_the_trajectory(make, tmp_path):
    opt = make()
    params, state = copy_tree(P0), opt.init(P0)
    straight, saved = [], None
    for k in range(6):
        if k == 3:
            saved = copy_tree(params), save_load(state, tmp_path / "state.npz")
        params, state = opt.update(params, quad_grads(params), state)
        straight.append(params)

    params, state = saved
    resumed = make()  # a fresh object (NoisySGD: seed None; the seed is in the saved state)
    for k in range(3, 6):
        params, state = resumed.update(params, quad_grads(params), state)
        assert_tree_equal(params, straight[k])
    assert state["step"] == 6


def test_noisy_sgd_without_seed_draws_a_fresh_one_per_init():
    opt = NoisySGD(lr=0.1, sigma=1.0)
    s1, s2 = opt.init(P0), opt.init(P0)
    assert s1["seed"] != s2["seed"]
    assert not np.array_equal(opt.update(P0, G0, s1)[0]["b"], opt.update(P0, G0, s2)[0]["b"])


# ---- learning rate attribute -----------------------------------------------------------------
def test_lr_is_a_mutable_attribute():
    opt = SGD(lr=0.1)
    w = np.array([1.0])
    state = opt.init(w)
    w, state = opt.update(w, np.array([1.0]), state)  # 1 - 0.1
    opt.lr = 0.5  # what a LearningRateScheduler callback does between epochs
    w, state = opt.update(w, np.array([1.0]), state)  # 0.9 - 0.5
    np.testing.assert_allclose(w, [0.4], rtol=1e-15)
    assert opt.current_lr(0) == 0.5
    opt.lr = exponential(1.0, 0.5)
    assert opt.current_lr(3) == 0.125


# ---- get and repr ----------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls,lr", [
    ("sgd", SGD, 0.01), ("momentum", Momentum, 0.01), ("nesterov", Nesterov, 0.01),
    ("adagrad", AdaGrad, 0.01), ("rmsprop", RMSProp, 1e-3), ("adam", Adam, 1e-3),
    ("noisy_sgd", NoisySGD, 0.01), ("Adam", Adam, 1e-3)])
def test_get_by_name(name, cls, lr):
    opt = get(name)
    assert type(opt) is cls and opt.lr == lr and isinstance(opt, Optimizer)


def test_get_passes_an_optimizer_through_and_lists_names_on_error():
    opt = Momentum(lr=0.3)
    assert get(opt) is opt
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'.*adagrad, adam, momentum, "
                                         "nesterov, noisy_sgd, rmsprop, sgd"):
        get("adamax")
    with pytest.raises(ValueError, match="expected an optimizer name"):
        get(3)


def test_repr_shows_hyper_parameters():
    assert repr(SGD(lr=0.1)) == "SGD(lr=0.1)"
    assert repr(Momentum(lr=0.1, beta=0.5)) == "Momentum(lr=0.1, beta=0.5)"
    assert repr(Nesterov()) == "Nesterov(lr=0.01, beta=0.9)"
    assert repr(AdaGrad()) == "AdaGrad(lr=0.01, eps=1e-10)"
    assert repr(RMSProp()) == "RMSProp(lr=0.001, gamma=0.9, eps=1e-10)"
    assert repr(Adam(weight_decay=0.01)) == ("Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, "
                                             "weight_decay=0.01)")
    assert repr(NoisySGD(seed=3)) == "NoisySGD(lr=0.01, sigma=0.1, decay=0.55, seed=3)"
    assert repr(SGD(lr=exponential(0.1, 0.5))) == (
        "SGD(lr=exponential(lr=0.1, rate=0.5, decay_steps=1))")


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                                  "noisy_sgd"])
def test_get_config_rebuilds_the_optimizer(name):
    import json

    opt = type(get(name))(lr=0.25, weight_decay=0.5, decay_mask={"W": True, "b": False})
    config = json.loads(json.dumps(opt.get_config()))  # what Model.save stores
    again = type(opt)(**config)
    assert repr(again) == repr(opt) and again.get_config() == opt.get_config()


# ---- bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: SGD(lr=-0.1), r"SGD: lr must be a number in \[0.0, inf\), got -0.1"),
    (lambda: SGD(lr=float("nan")), "SGD: lr"),
    (lambda: SGD(lr="0.1"), "SGD: lr .* got '0.1'"),
    (lambda: Momentum(beta=1.0), r"Momentum: beta must be a number in \[0.0, 1.0\), got 1.0"),
    (lambda: Nesterov(beta=-0.1), "Nesterov: beta"),
    (lambda: AdaGrad(eps=0.0), r"AdaGrad: eps must be a number in \(0.0, inf\), got 0.0"),
    (lambda: RMSProp(gamma=1.5), "RMSProp: gamma"),
    (lambda: RMSProp(eps=-1e-8), "RMSProp: eps"),
    (lambda: Adam(beta1=1.0), "Adam: beta1"),
    (lambda: Adam(beta2=-0.5), "Adam: beta2"),
    (lambda: Adam(eps=0), "Adam: eps"),
    (lambda: Adam(weight_decay=-1e-4), "Adam: weight_decay"),
    (lambda: Adam(decay_mask="biases"), "Adam: decay_mask"),
    (lambda: NoisySGD(sigma=-1.0), "NoisySGD: sigma"),
    (lambda: NoisySGD(decay=-0.5), "NoisySGD: decay"),
    (lambda: NoisySGD(seed=-1), r"NoisySGD: seed must be None or an int >= 0 and < 2\*\*64, "
                                r"got -1"),
    # update would refuse it in the state (as soon as the first step): refused here instead
    (lambda: NoisySGD(seed=2**64), r"NoisySGD: seed .* < 2\*\*64, got 18446744073709551616"),
    (lambda: ClipByGlobalNorm(SGD(), max_norm=0.0), "ClipByGlobalNorm: max_norm"),
    (lambda: ClipByGlobalNorm("sgd", max_norm=1.0), "ClipByGlobalNorm: expected an optimizer"),
])
def test_bad_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_noisy_sgd_takes_the_largest_seed_its_update_accepts():
    opt = NoisySGD(lr=0.1, seed=2**64 - 1)
    params, state = opt.update(P0, G0, opt.init(P0))
    assert state["seed"] == 2**64 - 1 and state["step"] == 1


def test_bad_learning_rate_assignment_and_schedule():
    opt = Adam()
    with pytest.raises(ValueError, match="Adam: lr .* got -1"):
        opt.lr = -1
    opt.lr = lambda t: 0.1 - 0.1 * t  # negative from t = 2
    params, state = P0, opt.init(P0)
    for _ in range(2):
        params, state = opt.update(params, G0, state)
    with pytest.raises(ValueError, match="Adam: the learning rate from .* at step 2"):
        opt.update(params, G0, state)


@pytest.mark.parametrize("grads,state,match", [
    ({"W": G0["W"]}, None, r"Adam.update: grads has structure .*, expected "),
    ([G0["W"], G0["b"]], None, r"Adam.update: grads has structure .*, expected "),
    ({"W": G0["W"].T[:1], "b": G0["b"]}, None,
     r"Adam.update: grads leaf W must have the shape of its parameter, \(2, 2\), got \(1, 2\)"),
    ({"W": G0["W"], "b": G0["b"] * 1j}, None, "Adam.update: grads leaf b must be real"),
    (G0, {"step": 0}, "Adam.update: state has no 'm' entry"),
    (G0, {"step": -1, "m": ZERO, "v": ZERO}, r"Adam.update: state\['step'\]"),
    (G0, {"step": 0, "m": {"W": ZERO["W"]}, "v": ZERO},
     r"Adam.update: state\['m'\] has structure "),
    (G0, [], "Adam.update: state must be the dict returned by Adam.init"),
])
def test_bad_update_arguments(grads, state, match):
    opt = Adam()
    with pytest.raises(ValueError, match=match):
        opt.update(P0, grads, opt.init(P0) if state is None else state)


def test_bad_params_and_noisy_state():
    with pytest.raises(ValueError, match="SGD.init: params leaf a must be a real floating-point"):
        SGD().init({"a": np.arange(3)})
    with pytest.raises(ValueError, match=r"NoisySGD.update: state\['seed'\]"):
        NoisySGD().update(P0, G0, {"step": 0})
    with pytest.raises(ValueError, match="Momentum.update: decay_mask must be a tree of bools"):
        opt = Momentum(weight_decay=0.1, decay_mask={"W": True})
        opt.update(P0, G0, opt.init(P0))


# ---- convergence -----------------------------------------------------------------------------
@pytest.mark.parametrize("opt", [
    SGD(lr=0.2), Momentum(lr=0.05), Nesterov(lr=0.05), AdaGrad(lr=0.5),
    RMSProp(lr=exponential(0.1, 0.97)), Adam(lr=0.1), NoisySGD(lr=0.2, sigma=0.1, seed=0),
    ClipByGlobalNorm(Momentum(lr=0.05), max_norm=1.0)], ids=lambda o: o.name)
def test_converges_on_a_convex_quadratic(opt):
    # f(x) = 0.5 x^T A x, A = [[3, 1], [1, 2]] (eigenvalues 1.38, 3.62); f(x0) = 3.5
    def f(x):
        return 0.5 * x @ A @ x

    x = np.array([1.0, -2.0])
    state = opt.init(x)
    for _ in range(200):
        x, state = opt.update(x, pearlnet.grad(f)(x), state)
    assert f(x) < 1e-4
