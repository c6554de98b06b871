"""Layers, activations, losses, initialisers and regularisers of pearlnet.nn."""

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
import pearlnet.numpy as pnp
from pearlnet import jit, value_and_grad, vmap
from pearlnet.check import check_grad, check_hvp

F64 = np.float64


# ---- every layer, differentiated through the core and checked by the complex step ------------
def _layer_cases():
    return [
        ("dense-linear", lambda: nn.Dense(4, dtype=F64), (3,)),
        ("dense-tanh", lambda: nn.Dense(4, activation="tanh", dtype=F64), (3,)),
        ("dense-sparse-init", lambda: nn.Dense(4, kernel_initializer=nn.initializers.sparse(2),
                                               dtype=F64), (3,)),
        ("batchnorm-train", lambda: nn.BatchNorm(dtype=F64), (3,)),
        ("prelu", lambda: nn.PReLU(dtype=F64), (3,)),
        ("sequential", lambda: nn.Sequential([nn.Dense(5, activation="softplus", dtype=F64),
                                              nn.Dropout(0.3), nn.Dense(2, dtype=F64)]), (3,)),
        ("flatten-dense", lambda: nn.Sequential([nn.Flatten(), nn.Dense(2, dtype=F64)]), (2, 3)),
    ]


@pytest.mark.parametrize("name,make,shape", _layer_cases(), ids=[c[0] for c in _layer_cases()])
def test_layer_gradients_pass_the_complex_step(name, make, shape, rng):
    layer = make()
    params = layer.init(rng, shape)
    x = rng.standard_normal((6, *shape))
    x[np.abs(x) < 0.05] = 0.3  # keep PReLU away from its kink
    w = rng.standard_normal((6, *layer.output_shape_))

    def loss_params(p):
        y, _ = layer.forward(p, x, state=layer.state, training=True,
                             rng=np.random.default_rng(1))  # the same dropout mask every call
        return pnp.sum(w * y ** 2)

    def loss_inputs(x):
        y, _ = layer.forward(params, x, state=layer.state, training=True,
                             rng=np.random.default_rng(1))
        return pnp.sum(w * y ** 2)

    check_grad(loss_params, params, method="complex")
    check_grad(loss_inputs, x, method="complex")
    check_hvp(loss_params, params, method="complex", rtol=1e-9)


@pytest.mark.parametrize("layer", [nn.Sigmoid(), nn.Tanh(), nn.ReLU(), nn.LeakyReLU(0.1),
                                   nn.AbsReLU(), nn.Softplus(), nn.Swish(1.5), nn.Mish(),
                                   nn.ELU(0.7), nn.Softmax(2.0), nn.LogSoftmax()],
                         ids=lambda layer: type(layer).__name__)
def test_activation_layers_pass_the_complex_step(layer, rng):
    layer.init(0, (4,))
    x = rng.uniform(0.2, 2.0, (5, 4)) * rng.choice([-1, 1], (5, 4))
    w = rng.standard_normal((5, 4))
    check_grad(lambda x: pnp.sum(w * layer.apply({}, x)), x)
    check_hvp(lambda x: pnp.sum(w * layer.apply({}, x)), x, rtol=1e-9)


# ---- activation functions and their derivatives ----------------------------------------------
X = np.array([-2.0, -0.5, 0.3, 1.7])


def _sig(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("fn,d1,d2", [
    (nn.sigmoid, lambda x: _sig(x) * (1 - _sig(x)),
     lambda x: _sig(x) * (1 - _sig(x)) * (1 - 2 * _sig(x))),
    (nn.tanh, lambda x: 1 - np.tanh(x) ** 2,
     lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    (nn.relu, lambda x: (x > 0) * 1.0, lambda x: 0 * x),
    (nn.leaky_relu, lambda x: np.where(x > 0, 1, 0.01), lambda x: 0 * x),
    (nn.abs_relu, np.sign, lambda x: 0 * x),
    (nn.softplus, _sig, lambda x: _sig(x) * (1 - _sig(x))),
    (nn.elu, lambda x: np.where(x > 0, 1, np.exp(x)), lambda x: np.where(x > 0, 0, np.exp(x))),
    (nn.swish, lambda x: _sig(x) + x * _sig(x) * (1 - _sig(x)),
     lambda x: 2 * _sig(x) * (1 - _sig(x)) + x * _sig(x) * (1 - _sig(x)) * (1 - 2 * _sig(x))),
], ids=lambda v: getattr(v, "name", ""))
def test_deriv_and_second_deriv_match_closed_forms(fn, d1, d2):
    np.testing.assert_allclose(fn.deriv(X), d1(X), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fn.second_deriv(X), d2(X), rtol=1e-12, atol=1e-15)


def test_mish_derivative_matches_the_complex_step():
    h = 1e-20
    np.testing.assert_allclose(nn.mish.deriv(X), np.imag(nn.mish(X + 1j * h)) / h, rtol=1e-13)


def test_relu_derivative_at_zero_is_zero_as_in_the_problem_book():
    # seed 003 writes relu' as [H > 0]
    np.testing.assert_array_equal(nn.relu.deriv(np.array([0.0])), [0.0])


def test_hyper_parameters_per_call_and_dtype():
    x = X.astype(np.float32)
    assert nn.leaky_relu.deriv(x, alpha=0.2).dtype == np.float32
    np.testing.assert_allclose(nn.leaky_relu.deriv(x, alpha=0.2), [0.2, 0.2, 1, 1])
    np.testing.assert_allclose(nn.elu(X, alpha=2.0)[0], 2 * np.expm1(-2.0))


def test_softmax_temperature_exercise():
    # seed 003, exercise 31: logits 1, 2, 5
    z = np.array([1.0, 2.0, 5.0])
    for T in (10, 1, 0.1):
        e = np.exp(z / T)
        np.testing.assert_allclose(nn.softmax(z, temperature=T), e / e.sum(), rtol=1e-14)
    # T = 10: e^0.1, e^0.2, e^0.5 = 1.10517, 1.22140, 1.64872; sum 3.97529
    np.testing.assert_allclose(nn.softmax(z, temperature=10), [0.27801, 0.30725, 0.41474],
                               atol=1e-5)
    # T = 1: e^1, e^2, e^5 = 2.71828, 7.38906, 148.41316; sum 158.52050
    np.testing.assert_allclose(nn.softmax(z, temperature=1), [0.01715, 0.04661, 0.93624],
                               atol=1e-5)
    # T -> 0: one-hot on the largest; T -> inf: uniform
    np.testing.assert_allclose(nn.softmax(z, temperature=1e-3), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(nn.softmax(z, temperature=1e6), [1 / 3] * 3, atol=1e-5)
    with pytest.raises(ValueError, match="softmax: temperature must be positive"):
        nn.softmax(z, temperature=0)


def test_softmax_has_no_elementwise_derivative():
    assert not hasattr(nn.softmax, "deriv")


def test_large_inputs_do_not_overflow():
    big = np.array([-800.0, 800.0])
    np.testing.assert_array_equal(nn.softplus(big), [0.0, 800.0])
    np.testing.assert_array_equal(nn.elu(big), [-1.0, 800.0])
    np.testing.assert_allclose(nn.log_softmax(np.array([1000.0, 0.0])), [0.0, -1000.0])


# ---- the problem book's backprop by hand -----------------------------------------------------
def test_backprop_by_hand_example():
    # seed 003: X = [[1, 2], [-1, 2]], W1 = [[1, -1], [0.5, 0]], W2 = [[0.5], [1]], ReLU,
    # loss 0.5 * sum (yhat - y)^2 with y = (2, 1). Forward: H1 = X W1 = [[2, -0.5], [0, 1]],
    # O1 = ReLU(H1) = [[2, 0], [0, 1]], yhat = O1 W2 = (1, 1).
    # Backward: d = yhat - y = (-1, 0); dW2 = O1^T d = (-2, 0);
    # d1 = d W2^T * [H1 > 0] = [[-0.5, 0], [0, 0]] (H1[1,0] = 0 gives 0);
    # dW1 = X^T d1 = [[-0.5, 0], [-1, 0]].
    X_ = np.array([[1.0, 2.0], [-1.0, 2.0]])
    y = np.array([[2.0], [1.0]])
    params = {"W1": np.array([[1.0, -1.0], [0.5, 0.0]]), "W2": np.array([[0.5], [1.0]])}

    def loss(p):
        yhat = nn.relu(X_ @ p["W1"]) @ p["W2"]
        return 0.5 * pnp.sum((yhat - y) ** 2)

    g = pearlnet.grad(loss)(params)
    np.testing.assert_array_equal(g["W2"], [[-2.0], [0.0]])
    np.testing.assert_array_equal(g["W1"], [[-0.5, 0.0], [-1.0, 0.0]])
    assert loss(params) == 0.5  # MSE = 1/(2n) sum = 0.25 in the book, n = 2


# ---- losses ----------------------------------------------------------------------------------
def test_losses_match_their_formulas(rng):
    y = rng.standard_normal((4, 3))
    z = rng.standard_normal((4, 3))
    L = nn.losses
    assert L.squared_error(y, z) == pytest.approx(0.5 * np.sum((y - z) ** 2) / 4)
    assert L.mean_squared_error(y, z) == pytest.approx(np.mean((y - z) ** 2))
    counts = rng.poisson(2.0, (4, 3)).astype(float)
    assert L.poisson_nll(counts, z) == pytest.approx(np.mean(np.exp(z) - counts * z))
    mu = np.exp(z)
    assert L.poisson_nll(counts, mu, log_input=False) == pytest.approx(
        np.mean(mu - counts * np.log(mu + 1e-8)))


def test_crossentropy_labels_one_hot_logits_probabilities_agree(rng):
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[labels]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(5), labels]))
    cce = nn.losses.categorical_crossentropy
    assert cce(labels, logits, from_logits=True) == pytest.approx(expected, rel=1e-14)
    assert cce(onehot, logits, from_logits=True) == pytest.approx(expected, rel=1e-14)
    assert cce(labels, p) == pytest.approx(expected, rel=1e-12)
    # gradient from logits: (softmax - onehot) / n
    g = pearlnet.grad(lambda z: cce(labels, z, from_logits=True))(logits)
    np.testing.assert_allclose(g, (p - onehot) / 5, rtol=1e-12)
    # fused form stays finite for huge logits
    assert np.isfinite(cce(labels, 1e4 * logits, from_logits=True))
    # from probabilities the gradient is -y/(n p), also at p = 1 exactly (a saturated softmax)
    q = np.array([[1.0, 0.0], [0.25, 0.75]])
    g = pearlnet.grad(lambda q: cce(np.array([0, 1]), q))(q)
    np.testing.assert_allclose(g, [[-0.5, 0.0], [0.0, -1 / 1.5]], rtol=1e-15)


def test_crossentropy_integer_labels_on_sequences_pick_the_class_axis(rng):
    cce = nn.losses.categorical_crossentropy
    for n, t in ((3, 3), (2, 5)):  # batch == time used to index batch x time
        logits = rng.standard_normal((n, t, 4))
        labels = rng.integers(0, 4, (n, t))
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected = -np.take_along_axis(logp, labels[..., None], -1).sum() / n
        assert cce(labels, logits, from_logits=True) == pytest.approx(expected, rel=1e-13)
        assert cce(np.eye(4)[labels], logits, from_logits=True) == pytest.approx(expected,
                                                                                rel=1e-13)
        g = pearlnet.grad(lambda z, y=labels: cce(y, z, from_logits=True))(logits)
        np.testing.assert_allclose(g, (np.exp(logp) - np.eye(4)[labels]) / n, rtol=1e-12)
    # the class axis need not be last: (N, K, T) with axis=1
    moved = np.moveaxis(logits, -1, 1)
    assert cce(labels, moved, from_logits=True, axis=1) == pytest.approx(expected, rel=1e-13)
    with pytest.raises(ValueError, match=r"categorical_crossentropy: integer labels for y_pred "
                                         r"of shape \(2, 5, 4\) must have shape \(2, 5\), got "
                                         r"\(5, 2\)"):
        cce(labels.T, logits)


def test_binary_crossentropy_logits_and_probabilities_agree(rng):
    z = rng.standard_normal(6)
    y = np.array([0, 1, 1, 0, 1, 0])
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    bce = nn.losses.binary_crossentropy
    assert bce(y, z, from_logits=True) == pytest.approx(expected, rel=1e-13)
    assert bce(y, p) == pytest.approx(expected, rel=1e-10)
    assert bce(y, 800.0 * (2 * y - 1),  # confidently right: loss 0, no overflow
               from_logits=True) == pytest.approx(0.0, abs=1e-300)


def test_loss_errors_name_the_loss():
    with pytest.raises(ValueError, match=r"squared_error: y_true has shape \(2, 3\)"):
        nn.losses.squared_error(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="labels must lie in"):
        nn.losses.categorical_crossentropy(np.array([0, 5]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="unknown name 'hinge'"):
        nn.losses.get("hinge")
    with pytest.raises(ValueError, match=r"got float64 targets of shape \(2,\) for y_pred of "
                                         r"shape \(2, 3\); pass integer labels or one-hot"):
        nn.losses.categorical_crossentropy(np.array([0.0, 2.0]), np.zeros((2, 3)))


def test_labels_are_checked_at_every_call_of_a_compiled_or_batched_loss():
    """The label check is an operation of the program, not a choice made while compiling: a
    negative label would otherwise be read from the end (a wrong number, silently) and one past
    the classes an IndexError from deep inside."""
    z = np.random.default_rng(0).standard_normal((4, 3))
    loss = jit(value_and_grad(lambda z, y: nn.losses.categorical_crossentropy(
        y, z, from_logits=True)))
    good = loss(z, np.array([0, 1, 2, 1]))
    for bad, seen in (([0, -1, 2, 1], "-1..2"), ([0, 1, 3, 1], "0..3")):
        with pytest.raises(ValueError, match=rf"categorical_crossentropy: labels must lie in "
                                             rf"\[0, 3\), got {seen}"):
            loss(z, np.array(bad))
    assert loss.cache_info()["compiles"] == 1  # the replay raised, not a new recording
    again = loss(z, np.array([0, 1, 2, 1]))  # and the program still works after it
    assert again[0] == good[0] and np.array_equal(again[1], good[1])
    batched = vmap(lambda z, y: nn.losses.categorical_crossentropy(y, z, from_logits=True))
    with pytest.raises(ValueError, match="labels must lie in"):
        batched(np.stack([z, z]), np.array([[0, 1, 2, 1], [2, 2, 2, 5]]))
    bce = jit(lambda y, z: nn.losses.binary_crossentropy(y, z, from_logits=True))
    assert bce(np.array([0.0, 1.0, 0.25]), z[0]) == nn.losses.binary_crossentropy(
        np.array([0.0, 1.0, 0.25]), z[0], from_logits=True)
    soft = np.array([0.0, 1.0 + 2e-16, 1.0 - 3e-7])  # rounding in soft targets passes
    assert bce(soft, z[0]) == nn.losses.binary_crossentropy(soft, z[0], from_logits=True)
    for bad, seen in (([0.0, 2.0, 1.0], "0.0..2.0"), ([0.0, np.nan, 1.0], "nan..nan"),
                      ([-0.01, 0.5, 1.0], "-0.01..1.0")):
        with pytest.raises(ValueError, match=rf"binary_crossentropy: targets must lie in "
                                             rf"\[0, 1\], got {seen}"):
            bce(np.array(bad), z[0])


@pytest.mark.parametrize("compiled", [True, False])
def test_fit_and_evaluate_refuse_labels_outside_the_classes(compiled):
    x = np.random.default_rng(1).standard_normal((40, 5)).astype(np.float32)
    model = pearlnet.Model([nn.Dense(3, input_shape=(5,))], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="sgd", jit=compiled)
    model.fit(x, np.arange(40) % 3, epochs=1, verbose=0)
    labels = np.arange(40) % 3
    labels[25] = -1
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got -1..2"):
        model.fit(x, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got -1..2"):
        model.evaluate(x, labels)
    binary = pearlnet.Model([nn.Dense(1, input_shape=(5,))], seed=0)
    binary.compile(loss="binary_crossentropy", optimizer="sgd", from_logits=True, jit=compiled)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\], got 0.0..2.0"):
        binary.fit(x, np.arange(40) % 3, epochs=1, verbose=0)


# ---- initialisers and regularisers -----------------------------------------------------------
def test_initializer_statistics(rng):
    shape = (400, 300)
    he = nn.initializers.he_normal(rng, shape)
    assert he.dtype == np.float32
    assert he.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert nn.initializers.lecun_normal(rng, shape).std() == pytest.approx(np.sqrt(1 / 400),
                                                                           rel=0.02)
    g = nn.initializers.glorot_uniform(rng, shape)
    assert np.abs(g).max() <= np.sqrt(6 / 700)
    assert g.std() == pytest.approx(np.sqrt(6 / 700) / np.sqrt(3), rel=0.02)
    assert np.abs(nn.initializers.he_uniform(rng, shape)).max() <= np.sqrt(6 / 400)
    sp = nn.initializers.sparse()(rng, shape)
    np.testing.assert_array_equal((sp != 0).sum(axis=0), np.full(300, 15))  # Martens: 15 each
    conv = nn.initializers.sparse(5)(rng, (8, 3, 3, 3))
    np.testing.assert_array_equal((conv.reshape(8, -1) != 0).sum(axis=1), np.full(8, 5))
    np.testing.assert_array_equal(nn.initializers.zeros(rng, (2,)), [0, 0])


def test_regularizers_apply_to_weights_not_biases(rng):
    layer = nn.Dense(3, kernel_regularizer=nn.L2(0.1), dtype=F64)
    params = layer.init(rng, (2,))
    params = {"W": params["W"], "b": np.ones(3)}
    g = pearlnet.grad(layer.penalty)(params)
    np.testing.assert_allclose(g["W"], 0.2 * params["W"])  # d/dW 0.1 sum W^2
    np.testing.assert_array_equal(g["b"], np.zeros(3))
    l1 = nn.L1(0.5)
    assert l1(np.array([-1.0, 2.0])) == 1.5
    with pytest.raises(ValueError, match="L1L2: coefficients must be >= 0"):
        nn.L2(-1)


# ---- modules ---------------------------------------------------------------------------------
def test_sequential_names_params_and_counts():
    model = nn.Sequential([nn.Dense(1000, input_shape=(784,)), nn.ReLU(), nn.Dense(10)])
    model.init(0)
    assert list(model.params) == ["dense", "dense_1"]
    assert model.count_params() == 784 * 1000 + 1000 + 1000 * 10 + 10  # 795,010 (seed 003)
    flat, unravel = pearlnet.ravel(model.params)
    assert flat.size == 795_010 and flat.dtype == np.float32
    assert "795,010" in model.summary_text()


def test_init_is_seeded():
    a = nn.Dense(3).init(7, (4,))["W"]
    b = nn.Dense(3).init(7, (4,))["W"]
    c = nn.Dense(3).init(8, (4,))["W"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_is_inverted_and_off_in_eval(rng):
    layer = nn.Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    y, _ = layer.forward({}, x, training=True, rng=rng)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(layer.forward({}, x, training=False)[0], x)
    with pytest.raises(ValueError, match="training mode needs rng="):
        layer.forward({}, x, training=True)
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\)"):
        nn.Dropout(1.0)


def test_batchnorm_uses_batch_statistics_in_training_and_running_ones_in_eval(rng):
    layer = nn.BatchNorm(momentum=0.5, dtype=F64)
    layer.init(0, (3,))
    x = 5 + 2 * rng.standard_normal((64, 3))
    y, state = layer.forward(layer.params, x, training=True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(0), 1, rtol=1e-4)
    np.testing.assert_allclose(state["mean"], 0.5 * x.mean(0))
    np.testing.assert_allclose(state["var"], 0.5 + 0.5 * x.var(0, ddof=1))
    layer.state = state
    y_eval = layer.apply(layer.params, x, training=False)
    np.testing.assert_allclose(y_eval, (x - state["mean"]) / np.sqrt(state["var"] + 1e-5))


def test_batchnorm_refuses_to_train_on_one_value_per_channel(rng):
    layer = nn.BatchNorm(name="bn")
    layer.init(0, (3,))
    with pytest.raises(ValueError, match=r"BatchNorm 'bn': training needs more than one value "
                                         r"per channel, got input of shape \(1, 3\)"):
        layer.forward(layer.params, np.ones((1, 3), np.float32), training=True)
    # evaluation on one sample is fine, and so is one image of several pixels per channel
    np.testing.assert_allclose(layer(np.ones((1, 3), np.float32)), np.ones((1, 3)) / np.sqrt(
        1 + 1e-5), rtol=1e-6)
    images = nn.BatchNorm(momentum=0.0, dtype=F64)
    images.init(0, (2, 2, 2))
    x = rng.standard_normal((1, 2, 2, 2))
    y, state = images.forward(images.params, x, training=True)
    np.testing.assert_allclose(y.mean((0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(state["var"], x.var((0, 2, 3), ddof=1))


def test_batchnorm_and_prelu_errors_name_the_layer_and_the_shapes(rng):
    bn = nn.BatchNorm(name="bn")
    bn.init(0, (4,))
    for training in (False, True):
        with pytest.raises(ValueError, match=r"BatchNorm 'bn': expected 4 features along axis "
                                             r"1, got inputs of shape \(3, 5\)"):
            bn.forward(bn.params, np.ones((3, 5), np.float32), training=training)
    with pytest.raises(ValueError, match=r"BatchNorm: expected axis in 1..1 or -1..-1 \(a "
                                         r"feature axis of inputs of shape \(None, 4\)\), got "
                                         r"axis=5"):
        nn.BatchNorm(axis=5).init(0, (4,))
    with pytest.raises(ValueError, match="BatchNorm: expected axis in 1..2.*got axis=0"):
        nn.BatchNorm(axis=0).init(0, (4, 3))
    # a negative axis counts from the end: per-feature statistics over batch and time
    last = nn.BatchNorm(axis=-1, dtype=F64)
    last.init(0, (3, 4))
    x = 2 + rng.standard_normal((5, 3, 4))
    y, _ = last.forward(last.params, x, training=True)
    assert last.params["gamma"].shape == (4,)
    np.testing.assert_allclose(y, (x - x.mean((0, 1))) / np.sqrt(x.var((0, 1)) + 1e-5))
    pr = nn.PReLU(name="pr")
    pr.init(0, (4,))
    with pytest.raises(ValueError, match=r"PReLU 'pr': expected inputs with 4 features "
                                         r"\(channels\) along axis 1, got inputs of shape "
                                         r"\(3, 5\)"):
        pr(np.ones((3, 5), np.float32))


@pytest.mark.parametrize("make, pattern", [
    (lambda: nn.Standardize(float("nan"), 1.0), "Standardize: mean must be finite, got nan"),
    (lambda: nn.Standardize(0.0, float("inf")),
     "Standardize: std must be positive and finite, got inf"),
    (lambda: nn.Softmax(temperature=float("nan")),
     "Softmax: temperature must be positive and finite, got nan"),
    (lambda: nn.Softmax(temperature=float("inf")),
     "Softmax: temperature must be positive and finite, got inf"),
    (lambda: nn.softmax(np.ones(3), temperature=float("nan")),
     "softmax: temperature must be positive and finite, got nan"),
    (lambda: nn.L2(float("nan")), r"L1L2: coefficients must be >= 0 and finite, got l1=0.0, "
                                  r"l2=nan"),
    (lambda: nn.L1(float("inf")), r"L1L2: coefficients must be >= 0 and finite, got l1=inf"),
    (lambda: nn.BatchNorm(epsilon=float("nan")),
     "BatchNorm: epsilon must be positive and finite, got nan"),
])
def test_nan_and_inf_settings_are_refused_at_construction(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_a_config_holds_a_named_activation_by_name_and_ones_own_as_itself(tmp_path, rng):
    def scaled_tanh(z):
        return 3.0 * pnp.tanh(z)

    # Model.save stores a function of one's own by name (load_model's custom_objects)
    for make in [lambda: nn.Dense(3, activation=scaled_tanh, name="mine"),
                 lambda: nn.Conv2D(2, 1, activation=scaled_tanh, name="mine"),
                 lambda: nn.RNN(3, activation=scaled_tanh, name="mine"),
                 lambda: nn.Activation(scaled_tanh, name="mine")]:
        layer = make()
        config = layer.get_config()
        assert config["activation"] is scaled_tanh
        twin = type(layer)(**config)
        assert twin.get_config() == config
        assert "scaled_tanh" in repr(layer)
    # the library's own functions, passed as functions, are saved by name and load back as such
    x = rng.standard_normal((5, 4)).astype(np.float32)
    for fn in (nn.relu, nn.tanh, nn.softmax, nn.log_softmax):
        model = pearlnet.Model([nn.Dense(3, activation=fn, input_shape=(4,))])
        model.build_model()
        assert model.layers[0].get_config()["activation"] == fn.__name__
        model.save(tmp_path / "named.pnl")
        loaded = pearlnet.load_model(tmp_path / "named.pnl")
        assert loaded.layers[0].activation is fn
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # a library function with other defaults is not the named one
    steeper = nn.activations.Activation(nn.activations._leaky_relu, "leaky_relu", alpha=0.3)
    with pytest.raises(ValueError, match=r"Dense 'dense': cannot save the activation "
                                         r"Activation\(leaky_relu, alpha=0.3\): the library's "
                                         r"leaky_relu with other defaults, which no name "
                                         r"stands for: use nn.Activation\('leaky_relu', "
                                         r"alpha=0.3\) after a layer without activation, or a "
                                         r"function of one's own \(def\)"):
        nn.Dense(2, activation=steeper, name="dense").get_config()
    assert "leaky_relu" in repr(nn.Dense(2, activation=steeper))  # repr still works


def test_layer_errors_name_the_layer():
    with pytest.raises(ValueError, match="Dense: units must be a positive integer"):
        nn.Dense(0)
    layer = nn.Dense(2)
    layer.init(0, (3,))
    with pytest.raises(ValueError, match=r"Dense.*expected inputs of shape \(batch, 3\)"):
        layer(np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="add a Flatten layer"):
        nn.Dense(2).init(0, (2, 2))
    with pytest.raises(RuntimeError, match="is not built"):
        nn.Dense(2)(np.ones((1, 2)))
    with pytest.raises(TypeError, match="Sequential.add: expected a layer"):
        nn.Sequential().add(lambda x: x)


def test_repr_shows_the_configuration():
    assert repr(nn.Dense(3, activation="relu")).startswith("Dense(units=3, activation='relu'")
    assert repr(nn.relu) == "Activation(relu)"
    assert "Dropout(p=0.5)" in repr(nn.Sequential([nn.Dropout(0.5)]))


def test_elu_takes_the_left_derivative_at_zero():
    # zeros are common (zero biases, padding); the left derivative at 0 is alpha, the second 1
    for alpha in (0.5, 1.0, 2.0):
        g = pearlnet.grad(lambda x, a=alpha: pnp.sum(nn.activations.elu(x, alpha=a)))(np.zeros(3))
        np.testing.assert_array_equal(g, np.full(3, alpha))
    np.testing.assert_array_equal(nn.elu.deriv(np.zeros(2)), [1.0, 1.0])
    np.testing.assert_array_equal(nn.elu.second_deriv(np.zeros(2)), [1.0, 1.0])


@pytest.mark.parametrize("layer, arg", [(nn.LeakyReLU, "alpha"), (nn.Swish, "beta"),
                                        (nn.ELU, "alpha"), (nn.PReLU, "alpha_init")])
def test_activation_layers_refuse_non_finite_settings(layer, arg):
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"{layer.__name__}: {arg} must be a finite number"):
            layer(**{arg: bad})
