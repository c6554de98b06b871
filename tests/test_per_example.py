"""Per-example quantities against a Python loop over the cases: gradients to 1e-12, norms
(Goodfellow's identity for Dense layers, vmapped gradients elsewhere) to 1e-10, mean, second
moment and variance; BatchNorm in training mode is refused."""

import numpy as np
import pytest

pytest.importorskip("scipy")

import pearlnet  # noqa: E402
import pearlnet.nn as nn  # noqa: E402
import pearlnet.numpy as pnp  # noqa: E402
from pearlnet import curvature as cv  # noqa: E402

F64 = np.float64


def _mlp(dtype=F64, seed=0):
    model = pearlnet.Model([nn.Dense(6, activation="tanh", input_shape=(5,), dtype=dtype),
                            nn.Dense(4, activation="relu", dtype=dtype),
                            nn.Dense(3, dtype=dtype)], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    return model


def _cnn(seed=0):
    model = pearlnet.Model([nn.Conv2D(2, 3, padding=1, activation="relu", input_shape=(1, 6, 6),
                                      dtype=F64),
                            nn.MaxPool2D(2), nn.Flatten(), nn.Dense(3, dtype=F64)], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    return model


def _data(n=9, shape=(5,), dtype=F64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(dtype), rng.integers(0, 3, n)


def _loop_grads(model, x, y):
    """Each case's gradient by a plain grad of the model's loss on that case alone."""
    model._resolve_from_logits()

    def loss(p, xi, yi):
        z = model.forward(p, xi, state=model.state, training=False)[0]
        return model._loss(yi, z)

    out = [pearlnet.grad(loss)(model.params, x[i:i + 1], y[i:i + 1]) for i in range(len(x))]
    return {k: {j: np.stack([o[k][j] for o in out]) for j in out[0][k]} for k in out[0]}


@pytest.mark.parametrize("make, shape", [(_mlp, (5,)), (_cnn, (1, 6, 6))])
def test_per_example_grads_equal_a_loop(make, shape):
    model = make()
    x, y = _data(shape=shape)
    got = cv.per_example_grads(model, None, (x, y), batch_size=4)
    want = _loop_grads(model, x, y)
    for k in want:
        for j in want[k]:
            np.testing.assert_allclose(got[k][j], want[k][j], rtol=1e-12, atol=1e-12)


def test_per_example_grads_float32():
    model = _mlp(np.float32)
    x, y = _data(dtype=np.float32)
    got = cv.per_example_grads(model, None, (x, y))
    want = _loop_grads(model, x, y)
    for k in want:
        for j in want[k]:
            assert got[k][j].dtype == np.float32
            np.testing.assert_allclose(got[k][j], want[k][j], rtol=1e-5, atol=1e-6)


def test_per_example_grads_of_a_net_loss_pair():
    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    x, t = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))

    def net(p, batch):
        return pnp.sin(batch[0] @ p["w"] + p["b"])

    def loss(z, batch):
        return 0.5 * pnp.sum((z - batch[1]) ** 2) / len(z)

    got = cv.per_example_grads((net, loss), params, (x, t), batch_size=3)
    for i in range(len(x)):
        one = (x[i:i + 1], t[i:i + 1])
        want = pearlnet.grad(lambda p, one=one: loss(net(p, one), one))(params)
        for k in params:
            np.testing.assert_allclose(got[k][i], want[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, shape", [(_mlp, (5,)), (_cnn, (1, 6, 6))])
def test_norms_equal_the_norms_of_the_gradients(make, shape):
    model = make()
    x, y = _data(shape=shape)
    grads = cv.per_example_grads(model, None, (x, y))
    want = np.sqrt(sum(np.sum(g.reshape(len(x), -1) ** 2, axis=1)
                       for g in pearlnet.tree_flatten(grads)[0]))
    got = cv.per_example_grad_norms(model, None, (x, y), batch_size=5)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    per = cv.per_example_grad_norms(model, None, (x, y), per_layer=True)
    assert set(per) == {k for k in grads if grads[k]}
    for k in per:
        layer = sum(np.sum(g.reshape(len(x), -1) ** 2, axis=1) for g in grads[k].values())
        np.testing.assert_allclose(per[k], layer, rtol=1e-10)


def test_dense_norms_form_no_gradient(monkeypatch):
    """An all-Dense model never calls the vmapped gradients."""
    from pearlnet.curvature import per_example as pe

    def refuse(*args, **kwargs):
        raise AssertionError("per-case gradients were formed")

    monkeypatch.setattr(pe, "_batch_grads", refuse)
    model = _mlp()
    cv.per_example_grad_norms(model, None, _data())


@pytest.mark.parametrize("dtype", [F64, np.float32])
def test_gradient_moments_against_a_loop(dtype):
    model = _mlp(dtype)
    x, y = _data(n=11, dtype=dtype)
    m = cv.gradient_moments(model, None, (x, y), batch_size=4)
    want = _loop_grads(model, x, y)
    tol = 1e-12 if dtype == F64 else 2e-5
    assert m.n == 11
    for k in want:
        for j in want[k]:
            g = want[k][j].astype(F64)
            for got, ref in ((m.mean, g.mean(0)), (m.second_moment, (g ** 2).mean(0)),
                             (m.variance, g.var(0))):
                assert got[k][j].dtype == dtype
                np.testing.assert_allclose(got[k][j], ref, rtol=tol,
                                           atol=tol * max(np.abs(g).max() ** 2, 1))
    # the mean is the data's gradient
    full = pearlnet.grad(lambda p: model._loss(y, model.forward(p, x, training=False)[0]))(
        model.params)
    np.testing.assert_allclose(m.mean["dense"]["W"], full["dense"]["W"], rtol=tol * 10,
                               atol=tol)


def test_batchnorm_in_training_mode_is_refused():
    model = pearlnet.Model([nn.Dense(4, input_shape=(5,), dtype=F64), nn.BatchNorm(dtype=F64),
                            nn.Dense(3, dtype=F64)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    data = _data()
    for fn in (cv.per_example_grads, cv.per_example_grad_norms, cv.gradient_moments):
        with pytest.raises(ValueError, match=r"BatchNorm.*mixes the examples.*eval"):
            fn(model, None, data, training=True)
    model.train()
    with pytest.raises(ValueError, match="BatchNorm"):
        cv.per_example_grads(model, None, data)
    model.eval()  # inference statistics: each case on its own, as a loop
    got = cv.per_example_grads(model, None, data)
    want = _loop_grads(model, *data)
    bn = model.layers[1].name
    for j in ("gamma", "beta"):
        np.testing.assert_allclose(got[bn][j], want[bn][j], rtol=1e-12, atol=1e-12)


def test_dropout_in_training_mode_is_refused():
    model = pearlnet.Model([nn.Dense(4, input_shape=(5,), dtype=F64), nn.Dropout(0.5),
                            nn.Dense(3, dtype=F64)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"Dropout.*one mask per case"):
        cv.per_example_grads(model, None, _data(), training=True)
    cv.per_example_grads(model, None, _data())  # evaluation mode: dropout off


def test_recurrent_and_pooling_models_equal_a_loop():
    rng = np.random.default_rng(3)
    lstm = pearlnet.Model([nn.LSTM(6, input_shape=(5, 3), dtype=F64), nn.Dense(3, dtype=F64)],
                          seed=0)
    pool = pearlnet.Model([nn.Conv2D(2, 3, input_shape=(1, 6, 6), dtype=F64), nn.AvgPool2D(2),
                           nn.GlobalAvgPool2D(), nn.Dense(3, dtype=F64)], seed=0)
    for model, shape in ((lstm, (5, 3)), (pool, (1, 6, 6))):
        model.compile(loss="categorical_crossentropy", optimizer="sgd")
        x, y = rng.standard_normal((4, *shape)), rng.integers(0, 3, 4)
        got = cv.per_example_grads(model, None, (x, y))
        want = _loop_grads(model, x, y)
        for k in want:
            for j in want[k]:
                np.testing.assert_allclose(got[k][j], want[k][j], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mc", [0, 2])
def test_diag_ggn_of_a_pair_vmapped_equals_case_by_case(mc):
    from pearlnet.curvature import ggn_diagonal as gd
    from pearlnet.curvature.likelihoods import likelihood_of
    from pearlnet.curvature.problem import Problem

    rng = np.random.default_rng(4)
    params = {"w": rng.standard_normal((3, 4)), "v": rng.standard_normal((4, 2))}
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)

    def net(p, batch):
        return pnp.tanh(batch[0] @ p["w"]) @ p["v"]

    def loss(z, batch):
        return nn.losses.categorical_crossentropy(batch[1], z, from_logits=True)

    problem = Problem((net, loss), params, (x, y), None, None, None, "test")
    lik = likelihood_of(problem, None, "test")
    batch = next(problem.batches())[0]
    fast = gd._per_case(problem, lik, batch, mc, np.random.default_rng(0))
    slow = gd._case_by_case(problem, lik, batch, mc, np.random.default_rng(0))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)
