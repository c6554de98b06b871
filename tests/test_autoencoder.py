"""The autoencoder model: tied and untied weights, exact curvature products, every optimizer."""

import numpy as np
import pytest

import pearlnet
from pearlnet.check import check_grad, check_hvp
from pearlnet.models import Autoencoder
from pearlnet.optim import SGD, Adam, HessianFree, Momentum, RMSProp


def instance(tied, l2=0.0, sizes=(6, 4, 2), activation="tanh", seed=0):
    ae = Autoencoder(list(sizes), activation=activation, tied=tied, l2=l2)
    params = ae.init(seed)
    x = np.random.default_rng(seed + 1).standard_normal((7, sizes[0]))
    return ae, params, x


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("l2", [0.0, 1e-2], ids=["no-l2", "l2"])
def test_curvature_products_agree_with_dense_matrices_and_the_complex_step(tied, l2):
    ae, params, x = instance(tied, l2)
    flat, unravel = pearlnet.ravel(params)
    rng = np.random.default_rng(5)
    p = rng.standard_normal(flat.size)

    def loss_flat(w):
        return ae.loss(unravel(w), x)

    H = pearlnet.hessian(loss_flat)(flat)
    J = pearlnet.jacobian(lambda w: ae.reconstruct(unravel(w), x))(flat).reshape(-1, flat.size)
    weights = pearlnet.ravel(pearlnet.tree_map(
        lambda a: np.full_like(a, 2 * l2) if a.ndim == 2 else np.zeros_like(a), params))[0]
    G = J.T @ J / len(x) + np.diag(weights)  # the l2 term's Hessian is exact in G as well

    value, g = ae.loss_and_grad(params, x)
    assert value == pytest.approx(float(loss_flat(flat)))
    np.testing.assert_allclose(pearlnet.ravel(g)[0], pearlnet.grad(loss_flat)(flat), rtol=1e-13)
    assert rel(pearlnet.ravel(ae.hessvec(params, x, unravel(p)))[0], H @ p) <= 1e-8
    assert rel(pearlnet.ravel(ae.gaussnewtonvec(params, x, unravel(p)))[0], G @ p) <= 1e-8
    # and by the numerical checks: complex step for the gradient and for H p
    assert check_grad(lambda q: ae.loss(q, x), params).max_error <= 1e-8
    assert check_hvp(lambda q: ae.loss(q, x), params).max_error <= 1e-8
    assert check_hvp(lambda q: ae.loss(q, x), params, method="central").max_error <= 1e-6


def test_gauss_newton_is_the_hessian_only_when_the_output_is_linear_in_theta():
    # seed 000, section 1.4: G = H when z is linear in theta (one linear layer, its weights the
    # parameters); a linear 5-3-5 autoencoder is bilinear in (encoder, decoder), so G != H
    ae, params, x = instance(tied=False, sizes=(5, 3), activation="linear")
    flat, unravel = pearlnet.ravel(params)
    v = unravel(np.random.default_rng(2).standard_normal(flat.size))
    hv = pearlnet.ravel(ae.hessvec(params, x, v))[0]
    gv = pearlnet.ravel(ae.gaussnewtonvec(params, x, v))[0]
    assert rel(hv, gv) > 1e-3

    def net(w):
        return x @ w

    def loss(z):
        return 0.5 * pearlnet.numpy.sum((z - x[:, :3]) ** 2) / len(x)

    w = np.random.default_rng(3).standard_normal((5, 3))
    u = np.random.default_rng(4).standard_normal((5, 3))
    np.testing.assert_allclose(pearlnet.gauss_newton_vp(net, loss, w, u),
                               pearlnet.hvp(lambda w: loss(net(w)), w, u), rtol=1e-13)


def test_tied_weights_share_one_matrix_and_add_both_gradients():
    ae, params, x = instance(tied=True)
    assert [set(layer) for layer in params["decoder"]] == [{"b"}, {"b"}]
    # the gradient of the shared matrix is the sum of its encoder and (transposed) decoder uses
    untied = Autoencoder([6, 4, 2], tied=False)
    up = {"encoder": params["encoder"],
          "decoder": [{"W": params["encoder"][1 - j]["W"].T, "b": d["b"]}
                      for j, d in enumerate(params["decoder"])]}
    np.testing.assert_allclose(untied.reconstruct(up, x), ae.reconstruct(params, x), rtol=1e-14)
    _, g_tied = ae.loss_and_grad(params, x)
    _, g_untied = untied.loss_and_grad(up, x)
    for i in range(2):
        expected = g_untied["encoder"][i]["W"] + g_untied["decoder"][1 - i]["W"].T
        np.testing.assert_allclose(g_tied["encoder"][i]["W"], expected, rtol=1e-12)


def test_shapes_names_and_counts():
    ae = Autoencoder([784, 256, 64, 2], tied=True)
    params = ae.init(0)
    assert ae.arch == "784-256-64-2-64-256-784"
    weights = 784 * 256 + 256 * 64 + 64 * 2
    biases = 256 + 64 + 2 + 64 + 256 + 784
    assert ae.count_params(params) == weights + biases
    assert Autoencoder([784, 256, 64, 2]).count_params(Autoencoder([784, 256, 64, 2]).init(0)) \
        == 2 * weights + biases
    x = np.zeros((3, 784))
    assert ae.encode(params, x).shape == (3, 2)
    assert ae.decode(params, np.zeros((3, 2))).shape == (3, 784)
    with pytest.raises(ValueError, match=r"Autoencoder.encode: expected x of shape \(n, 784\)"):
        ae.encode(params, np.zeros((3, 10)))
    with pytest.raises(ValueError, match="at least two positive widths"):
        Autoencoder([784])


@pytest.mark.parametrize("make", [lambda: SGD(0.05), lambda: Momentum(0.02, 0.9),
                                  lambda: RMSProp(1e-3), lambda: Adam(1e-2)],
                         ids=["sgd", "momentum", "rmsprop", "adam"])
def test_every_first_order_optimizer_decreases_the_loss(make):
    ae, params, x = instance(tied=True, sizes=(6, 4, 2))
    opt = make()
    state = opt.init(params)
    start = ae.loss(params, x)
    for _ in range(50):
        _, g = ae.loss_and_grad(params, x)
        params, state = opt.update(params, g, state)
    assert ae.loss(params, x) < 0.9 * start


def test_hessian_free_trains_the_autoencoder():
    ae, params, x = instance(tied=False, sizes=(6, 4, 2))
    hf = HessianFree(ae.net, ae.hf_loss)
    state = hf.init(params)
    start = ae.loss(params, x)
    for _ in range(10):
        params, state, info = hf.step(params, state, x)
    assert info["loss"] < 0.5 * start
    assert info["loss"] == pytest.approx(ae.loss(params, x))
