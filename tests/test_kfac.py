"""K-FAC: the factors against the exact GGN where K-FAC is exact (one linear layer, squared
error), the Kronecker order and scaling of Dense and Conv2D blocks, the damped inverses, the
Hessian-free preconditioner and the optimizer."""

import numpy as np
import pytest

pytest.importorskip("scipy")

import pearlnet  # noqa: E402
import pearlnet.nn as nn  # noqa: E402
from pearlnet import curvature as cv  # noqa: E402
from pearlnet.optim import KFAC, HessianFree  # noqa: E402

F64 = np.float64


def linear_model(layer):
    model = pearlnet.Model([layer], seed=0)
    model.compile(loss="squared_error", optimizer="sgd")
    return model


def test_type2_kfac_is_the_exact_ggn_of_one_linear_layer_with_squared_error():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
    for bias in (True, False):
        model = linear_model(nn.Dense(3, use_bias=bias, input_shape=(4,), dtype=F64))
        G = cv.ggn_operator(model, None, (x, y)).to_dense()
        K = cv.KFAC(model, None, (x, y), fisher_type="type-2", batch_size=7)
        np.testing.assert_allclose(K.to_dense(), G, rtol=0, atol=1e-13)
        a = np.hstack([x, np.ones((30, 1))]) if bias else x
        np.testing.assert_allclose(K.factors["dense"][0], a.T @ a / 30, atol=1e-13)
        np.testing.assert_allclose(K.factors["dense"][1], np.eye(3), atol=1e-13)
        # Kronecker order: Dense W is (in, out), so the block is A (x) B
        np.testing.assert_allclose(G, np.kron(*K.factors["dense"]), atol=1e-13)
    mc = cv.KFAC(model, None, (x, y), fisher_type="mc", mc_samples=3000, seed=1)
    assert np.abs(mc.to_dense() - G).max() < 0.05 * np.abs(G).max()
    ef = cv.KFAC(model, None, (x, y), fisher_type="empirical")
    r = model.predict(x) - y  # per-case gradient in the outputs
    np.testing.assert_allclose(ef.factors["dense"][1], r.T @ r / 30, atol=1e-12)


def test_conv_kfac_is_b_kron_a_and_exact_for_one_conv_layer_with_squared_error():
    rng = np.random.default_rng(1)
    model = linear_model(nn.Conv2D(2, 2, input_shape=(3, 4, 4), dtype=F64))
    model.add(nn.Flatten())
    x, y = rng.standard_normal((8, 3, 4, 4)), rng.standard_normal((8, 18))
    G = cv.ggn_operator(model, None, (x, y)).to_dense()
    K = cv.KFAC(model, None, (x, y), fisher_type="type-2")
    np.testing.assert_allclose(K.to_dense(), G, rtol=0, atol=1e-12)
    a, b = K.factors["conv2d"]
    assert a.shape == (13, 13) and b.shape == (2, 2)  # C kh kw + 1 inputs, 2 filters
    # the ravel layout (W, then b) is a permutation of the (out, in + 1) matrix [W_mat, b]
    perm = np.concatenate([np.arange(24).reshape(2, 12), 24 + np.arange(2)[:, None]], axis=1)
    order = perm.ravel()
    np.testing.assert_allclose(G[np.ix_(order, order)], np.kron(b, a), atol=1e-12)


def test_damped_inverses():
    rng = np.random.default_rng(2)
    model = pearlnet.Model([nn.Dense(4, activation="tanh", input_shape=(3,), dtype=F64),
                            nn.Dense(2, dtype=F64)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    K = cv.KFAC(model, None, (x, y), fisher_type="type-2")
    dense = K.to_dense()
    v = rng.standard_normal(dense.shape[0])
    exact = K.inverse(0.3, heuristic=False) @ v
    np.testing.assert_allclose((dense + 0.3 * np.eye(len(v))) @ exact, v, atol=1e-10)
    pi = K.inverse(0.3) @ v  # M&G's factored damping: each block's (A + pi g I)(x)(B + g/pi I)
    n0 = 16
    a, b = K.factors["dense"]
    g = np.sqrt(0.3)
    p = np.sqrt((np.trace(a) / 4) / (np.trace(b) / 4))
    block = np.kron(a + p * g * np.eye(4), b + g / p * np.eye(4))
    np.testing.assert_allclose(block @ pi[:n0], v[:n0], atol=1e-10)


def test_kfac_refuses_layers_it_does_not_cover_and_pairs():
    model = pearlnet.Model([nn.Dense(3, input_shape=(4,)), nn.BatchNorm(), nn.Dense(2)])
    model.compile(loss="squared_error", optimizer="sgd")
    x = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="batchnorm"):
        cv.KFAC(model, None, (x, np.ones((4, 2), np.float32)))
    with pytest.raises(TypeError, match="Model"):
        cv.KFAC((lambda p, b: b, lambda z, b: z.sum()), np.ones(2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="fisher_type"):
        cv.KFAC(model, None, (x, x), fisher_type="type-1")


def _classification(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    return x, np.argmax(x[:, :3] + 0.5 * x[:, 3:6], axis=1)


def _mlp(seed=0):
    return pearlnet.Model([nn.Dense(16, activation="tanh", input_shape=(8,)),
                           nn.Dense(3)], seed=seed)


def test_kfac_preconditioner_drives_hessian_free_in_fit():
    x, y = _classification()
    losses = {}
    for name, pre in (("plain", False), ("kfac", "kfac")):
        model = _mlp()
        if pre == "kfac":
            pre = cv.KFACPreconditioner(model, cases=128, every=1)
        model.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                      optimizer=HessianFree(cg_max_iters=3, preconditioner=pre))
        h = model.fit(x, y, batch_size=128, epochs=3, verbose=0, seed=0)
        losses[name] = h.history["loss"][-1]
    assert losses["kfac"] < losses["plain"]


def test_kfac_optimizer_trains_saves_and_is_found_by_name(tmp_path):
    x, y = _classification()
    model = _mlp()
    model.compile(loss="categorical_crossentropy", optimizer="kfac", metrics=["accuracy"])
    assert isinstance(model.optimizer, KFAC)
    h = model.fit(x, y, batch_size=64, epochs=4, verbose=0, seed=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.85
    info = model.kfac_info
    assert info["lambda"] > 0 and np.isfinite(info["alpha"])
    path = tmp_path / "kfac.pnl"
    model.save(str(path))
    again = pearlnet.load_model(str(path))
    assert isinstance(again.optimizer, KFAC) and again.opt_state["step"] == model.opt_state["step"]
    with pytest.raises(TypeError, match="fit_step"):
        KFAC().update(model.params, model.params, model.opt_state)
    with pytest.raises(ValueError, match="inverse_every"):
        KFAC(inverse_every=0)
