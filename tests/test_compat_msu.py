"""pearlnet.compat.msu: the autoencoder assignment's interface (seed 000, section 3), tested against
the issue's statement of it, against reference pure functions through pearlnet.hvp /
gauss_newton_vp / vjp / jvp, against the complex step, and against the seed's closed forms."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import pearlnet
import pearlnet.numpy as pnp
from pearlnet import optim
from pearlnet.check import check_grad, check_hvp
from pearlnet.compat.msu.activations import (
    BaseActivationFunction,
    LeakyReluActivationFunction,
    LinearActivationFunction,
    ReluActivationFunction,
    SigmoidActivationFunction,
    TanhActivationFunction,
)
from pearlnet.compat.msu.autoencoder import Autoencoder
from pearlnet.compat.msu.ffnet import FFNet
from pearlnet.compat.msu.layers import BaseLayer, FCLayer

H = 1e-20  # complex step
TOL = 1e-8  # the acceptance bound on relative errors
ALPHA = 0.2

# name -> (msu activation factory, independent pnp reference, its g', its g'' in NumPy)
ACTS = {
    "linear": (LinearActivationFunction, lambda u: u,
               lambda x: np.ones_like(x), lambda x: np.zeros_like(x)),
    "sigmoid": (SigmoidActivationFunction, lambda u: 1.0 / (1.0 + pnp.exp(-u)),
                lambda x: _s(x) * (1 - _s(x)), lambda x: _s(x) * (1 - _s(x)) * (1 - 2 * _s(x))),
    "tanh": (TanhActivationFunction, pnp.tanh,
             lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "relu": (ReluActivationFunction, lambda u: pnp.where(u > 0, u, 0.0 * u),
             lambda x: (x > 0).astype(float), lambda x: np.zeros_like(x)),
    "leaky_relu": (lambda: LeakyReluActivationFunction(ALPHA),
                   lambda u: pnp.where(u > 0, u, ALPHA * u),
                   lambda x: np.where(x > 0, 1.0, ALPHA), lambda x: np.zeros_like(x)),
}
NAMES = list(ACTS)


def _s(x):
    return 1 / (1 + np.exp(-x))


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def away_from_kink(shape, rng, margin=0.2):
    """Normal numbers with |x| >= margin (for relu-type checks by differences)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-300) * margin + x, x)


# ---------------------------------------------------------------------------------------------
# nets and their reference pure functions of the flat parameter vector
# ---------------------------------------------------------------------------------------------
D, HID, CODE = 5, 4, 2


def widths(depth: int) -> list[int]:
    """An autoencoder's widths, input to output, for 1 to 4 layers."""
    return {1: [D, D], 2: [D, HID, D], 3: [D, HID, CODE, D], 4: [D, HID, CODE, HID, D]}[depth]


def make(sizes, bias, acts, rng):
    """(layers, reference specs, random flat weights) for widths ``sizes``; ``acts`` a name or a
    list of names per layer."""
    acts = [acts] * (len(sizes) - 1) if isinstance(acts, str) else acts
    bias = [bias] * (len(sizes) - 1) if isinstance(bias, bool) else bias
    lays, specs = [], []
    for p, q, b, a in zip(sizes[:-1], sizes[1:], bias, acts):
        lays.append(FCLayer((p, q), ACTS[a][0](), use_bias=b))
        specs.append((p, q, b, ACTS[a][1]))
    size = sum(q * (p + b) for p, q, b, _ in specs)
    return lays, specs, 0.7 * rng.standard_normal(size)


def pure_outputs(theta, x, specs, with_u=False):
    """The net as a pure function: z^l = g(W-bar^l [z^{l-1}; 1]), W-bar^l read row by row."""
    z, start, us = x, 0, []
    for p, q, b, g in specs:
        k = q * (p + b)
        w = pnp.reshape(theta[start:start + k], (q, p + b))
        start += k
        u = w[:, :p] @ z
        if b:
            u = u + w[:, p:]
        us.append(u)
        z = g(u)
    return (z, us) if with_u else z


def pure_loss(theta, x, specs):
    r = pure_outputs(theta, x, specs) - x
    return 0.5 * pnp.sum(r * r) / x.shape[1]


def kink_margin(theta, x, specs) -> float:
    return min(float(np.min(np.abs(u))) for u in pure_outputs(theta, x, specs, True)[1])


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------
def test_submodules_import_as_stated():
    import pearlnet.compat.msu as msu
    from pearlnet.compat.msu import activations, autoencoder, ffnet, layers

    assert (msu.activations, msu.autoencoder, msu.ffnet, msu.layers) == (
        activations, autoencoder, ffnet, layers)
    for cls in (LinearActivationFunction, SigmoidActivationFunction, TanhActivationFunction,
                ReluActivationFunction, LeakyReluActivationFunction):
        assert issubclass(cls, BaseActivationFunction)
    assert issubclass(FCLayer, BaseLayer)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4)])
def test_activation_values_and_derivatives_match_closed_forms(name, shape, rng):
    factory, ref, d1, d2 = ACTS[name]
    g = factory()
    x = away_from_kink(shape, rng)
    for method, expected in ((g.val, np.asarray(ref(x))), (g.deriv, d1(x)),
                             (g.second_deriv, d2(x))):
        out = method(x)
        assert isinstance(out, np.ndarray) and out.shape == x.shape
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_activation_derivatives_match_complex_step(name, rng):
    g = ACTS[name][0]()
    x = away_from_kink((4, 5), rng)
    assert rel(g.deriv(x), np.imag(g.val(x + 1j * H)) / H) <= 1e-12
    assert rel(g.second_deriv(x), np.imag(g.deriv(x + 1j * H)) / H) <= 1e-12


def test_activation_accepts_numbers_and_int_arrays():
    g = SigmoidActivationFunction()
    assert g.val(0).shape == () and g.deriv(0.0) == 0.25
    np.testing.assert_allclose(g.val(np.array([0, 0])), [0.5, 0.5])
    # the seed's identity tanh(s) = 2 sigma(2 s) - 1
    s = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(TanhActivationFunction().val(s), 2 * g.val(2 * s) - 1)
    assert ReluActivationFunction().deriv(0.0) == 0.0  # the left derivative at the kink


def test_activation_errors():
    g = TanhActivationFunction()
    for bad in ("1.0", None, np.array(["a"]), np.array([True])):
        with pytest.raises(TypeError, match="TanhActivationFunction"):
            g.val(bad)
        with pytest.raises(TypeError):
            g.deriv(bad)
    for alpha in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError, match="alpha"):
            LeakyReluActivationFunction(alpha)
    with pytest.raises(TypeError, match="alpha"):
        LeakyReluActivationFunction("0.1")
    assert LeakyReluActivationFunction(0.3).alpha == 0.3
    base = BaseActivationFunction()
    for method in (base.val, base.deriv, base.second_deriv):
        with pytest.raises(NotImplementedError):
            method(np.zeros(2))


def test_leaky_relu_alpha_can_be_reassigned(rng):
    g = LeakyReluActivationFunction(0.1)
    g.alpha = 0.5
    x = np.array([-2.0, 3.0])
    np.testing.assert_array_equal(g.val(x), [-1.0, 3.0])
    np.testing.assert_array_equal(g.deriv(x), [0.5, 1.0])
    assert g.alpha == 0.5 and repr(g) == "LeakyReluActivationFunction(alpha=0.5)"
    with pytest.raises(ValueError, match=r"LeakyReluActivationFunction: alpha .*got 1\.5"):
        g.alpha = 1.5
    assert g.alpha == 0.5
    # a pass recorded under the old alpha is stale: the products use the new one throughout
    x = rng.standard_normal((D, 6))
    p = rng.standard_normal(D * (HID + 1) + HID * (D + 1))

    def build(alpha):
        return Autoencoder([FCLayer((D, HID), LeakyReluActivationFunction(alpha), True, seed=1),
                            FCLayer((HID, D), TanhActivationFunction(), True, seed=2)])

    expected = build(0.5)
    expected.compute_loss(x)
    ae = build(0.1)
    ae.compute_loss(x)
    ae.net.layers[0].afun.alpha = 0.5
    np.testing.assert_array_equal(ae.compute_hessvec(p), expected.compute_hessvec(p))
    np.testing.assert_array_equal(ae.compute_gaussnewtonvec(p),
                                  expected.compute_gaussnewtonvec(p))
    layer = ae.net.layers[0]
    layer.forward(x)
    layer.afun.alpha = 0.3
    with pytest.raises(RuntimeError, match="call forward again"):
        layer.backward(np.ones((HID, 6)))


# ---------------------------------------------------------------------------------------------
# FCLayer
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_fclayer_weights_layout_row_by_row(bias, rng):
    layer = FCLayer((3, 2), TanhActivationFunction(), use_bias=bias)
    assert layer.get_params_number() == 2 * (3 + bias)
    w = rng.standard_normal(layer.get_params_number())
    layer.set_weights(w)
    got = layer.get_weights()
    np.testing.assert_array_equal(got, w)
    got[0] = 99.0  # a copy
    assert layer.get_weights()[0] == w[0]
    w[1] = 99.0  # set_weights copies too
    assert layer.get_weights()[1] != 99.0
    wbar = layer.get_weights().reshape(2, 3 + bias)
    x = rng.standard_normal((3, 6))
    z = layer.forward(x)
    u = wbar[:, :3] @ x + (wbar[:, 3:] if bias else 0)
    assert z.shape == (2, 6)
    np.testing.assert_allclose(z, np.tanh(u), rtol=1e-14)
    np.testing.assert_array_equal(layer.inputs, x)  # a read-only snapshot, not x itself
    assert layer.inputs is not x and not layer.inputs.flags.writeable
    assert layer.get_activations() is z
    with pytest.raises(ValueError, match="read-only"):  # the recorded backward pass reads z
        z -= 1.0


def test_fclayer_default_initialisation():
    layer = FCLayer((50, 40), LinearActivationFunction(), use_bias=True)
    wbar = layer.get_weights().reshape(40, 51)
    np.testing.assert_array_equal(wbar[:, -1], 0.0)
    assert 0.7 < np.std(wbar[:, :50]) * np.sqrt(50) < 1.3
    again = FCLayer((50, 40), LinearActivationFunction(), use_bias=True)
    np.testing.assert_array_equal(again.get_weights(), layer.get_weights())
    other = FCLayer((50, 40), LinearActivationFunction(), use_bias=True, seed=1)
    assert not np.array_equal(other.get_weights(), layer.get_weights())
    assert layer.inputs is None


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bias", [True, False])
def test_fclayer_backward_matches_seed_formulas(name, bias, rng):
    """Formula (3): dU = G * g'(U), dW-bar = dU [X; 1]^T, dX = W^T dU."""
    g = ACTS[name][0]()
    layer = FCLayer((4, 3), g, use_bias=bias)
    w = rng.standard_normal(layer.get_params_number())
    layer.set_weights(w)
    x, G = rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    layer.forward(x)
    dx, dw = layer.backward(G)
    wbar = w.reshape(3, 4 + bias)
    u = wbar[:, :4] @ x + (wbar[:, 4:] if bias else 0)
    du = G * g.deriv(u)
    xbar = np.vstack([x, np.ones((1, 5))]) if bias else x
    assert dx.shape == (4, 5) and dw.shape == (layer.get_params_number(),)
    np.testing.assert_allclose(dw, (du @ xbar.T).ravel(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, wbar[:, :4].T @ du, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bias", [True, False])
def test_fclayer_rp_passes_match_jvp_and_complex_step(name, bias, rng):
    """Rp_forward is J_(W,X) (P, R{X}); Rp_backward the derivative of backward along
    (P, R{X}, R{G}): both against pearlnet.jvp of an independent pure layer and the complex
    step through the layer itself."""
    factory, ref = ACTS[name][:2]
    p_in, q = 4, 3
    layer = FCLayer((p_in, q), factory(), use_bias=bias)
    n = layer.get_params_number()
    w, pdir = rng.standard_normal(n), rng.standard_normal(n)
    x, rx = rng.standard_normal((p_in, 6)), rng.standard_normal((p_in, 6))
    G, rg = rng.standard_normal((q, 6)), rng.standard_normal((q, 6))
    layer.set_weights(w)
    layer.set_direction(pdir)
    layer.forward(x)
    rz = layer.Rp_forward(rx)
    layer.backward(G)
    rdx, rdw = layer.Rp_backward(rg)
    assert rz.shape == (q, 6) and rdx.shape == (p_in, 6) and rdw.shape == (n,)

    spec = [(p_in, q, bias, ref)]

    def back(theta, xx, gg):
        dtheta, dxx = pearlnet.vjp(lambda t, v: pure_outputs(t, v, spec), theta, xx)[1](gg)
        return dxx, dtheta

    assert rel(rz, pearlnet.jvp(lambda t, v: pure_outputs(t, v, spec), (w, x),
                                (pdir, rx))[1]) <= TOL
    jx, jw = pearlnet.jvp(back, (w, x, G), (pdir, rx, rg))[1]
    assert rel(rdx, jx) <= TOL and rel(rdw, jw) <= TOL

    twin = FCLayer((p_in, q), factory(), use_bias=bias)
    twin.set_weights(w + 1j * H * pdir)
    assert rel(rz, twin.forward(x + 1j * H * rx).imag / H) <= TOL
    cdx, cdw = twin.backward(G + 1j * H * rg)
    assert rel(rdx, cdx.imag / H) <= TOL and rel(rdw, cdw.imag / H) <= TOL


def test_fclayer_zero_rp_inputs_take_the_short_path(rng):
    layer = FCLayer((3, 2), SigmoidActivationFunction(), use_bias=True)
    layer.set_direction(rng.standard_normal(8))
    x, G, rg = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(
        (2, 4))
    layer.forward(x)
    layer.backward(G)
    rz0 = layer.Rp_forward(np.zeros((3, 4)))
    r0 = layer.Rp_backward(rg)
    tiny = np.full((3, 4), 1e-300)  # nonzero: the full path, numerically the same tangent
    rz1 = layer.Rp_forward(tiny)
    r1 = layer.Rp_backward(rg)
    np.testing.assert_allclose(rz0, rz1, rtol=1e-14)
    for a, b in zip(r0, r1):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_fclayer_errors(rng):
    g = TanhActivationFunction()
    for shape in ((3,), (3, 2, 1), "32", (3.0, 2), (True, 2)):
        with pytest.raises(TypeError, match="FCLayer"):
            FCLayer(shape, g)
    with pytest.raises(ValueError, match="positive"):
        FCLayer((0, 2), g)
    with pytest.raises(TypeError, match="afun"):
        FCLayer((3, 2), np.tanh)
    with pytest.raises(TypeError, match="use_bias"):
        FCLayer((3, 2), g, use_bias=1)
    layer = FCLayer((3, 2), g, use_bias=True)
    with pytest.raises(RuntimeError, match="forward first"):
        layer.backward(np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="forward first"):
        layer.get_activations()
    with pytest.raises(TypeError, match="numpy.ndarray"):
        layer.forward([[1.0] * 4] * 3)
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.array([["a"] * 4] * 3))
    with pytest.raises(ValueError, match=r"\(3, batch\)"):
        layer.forward(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(8,\)"):
        layer.set_weights(np.zeros(6))
    with pytest.raises(ValueError, match=r"\(8,\)"):
        layer.set_direction(np.zeros((2, 4)))
    with pytest.raises(TypeError):
        layer.set_weights(list(range(8)))
    x = rng.standard_normal((3, 4))
    layer.forward(x.astype(np.int64))  # integers are taken as float64
    assert layer.inputs.dtype == np.float64
    layer.forward(x)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        layer.backward(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="set_direction"):
        layer.Rp_forward(np.zeros((3, 4)))
    layer.set_direction(np.ones(8))
    with pytest.raises(RuntimeError, match="Rp_forward and backward"):
        layer.Rp_backward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="Rp_inputs"):
        layer.Rp_forward(np.zeros((3, 5)))
    layer.Rp_forward(np.zeros((3, 4)))
    layer.backward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="Rp_derivs"):
        layer.Rp_backward(np.zeros((3, 4)))
    layer.set_direction(np.zeros(8))
    with pytest.raises(RuntimeError, match="direction changed"):
        layer.Rp_backward(np.zeros((2, 4)))
    layer.set_weights(np.zeros(8))
    with pytest.raises(RuntimeError, match="weights changed"):
        layer.backward(np.ones((2, 4)))


def test_base_layer_methods_are_abstract():
    base = BaseLayer()
    calls = [(base.get_params_number, ()), (base.get_weights, ()), (base.set_weights, (None,)),
             (base.set_direction, (None,)), (base.forward, (None,)), (base.backward, (None,)),
             (base.Rp_forward, (None,)), (base.Rp_backward, (None,)),
             (base.get_activations, ())]
    for method, args in calls:
        with pytest.raises(NotImplementedError):
            method(*args)
    assert base.inputs is None


# ---------------------------------------------------------------------------------------------
# FFNet
# ---------------------------------------------------------------------------------------------
def _net(rng, acts=("tanh", "sigmoid", "leaky_relu"), bias=(True, False, True)):
    lays, specs, w = make([4, 3, 5, 2], list(bias), list(acts), rng)
    net = FFNet(lays)
    net.set_weights(w)
    return net, specs, w


def test_ffnet_weights_split_in_layer_order(rng):
    net, specs, w = _net(rng)
    assert net.params_number == 3 * 5 + 5 * 3 + 2 * 6 == w.size
    np.testing.assert_array_equal(net.get_weights(), w)
    sizes = [layer.get_params_number() for layer in net.layers]
    parts = np.split(w, np.cumsum(sizes)[:-1])
    for layer, part in zip(net.layers, parts):
        np.testing.assert_array_equal(layer.get_weights(), part)


def test_ffnet_passes_match_pure_function(rng):
    net, specs, w = _net(rng)
    x = rng.standard_normal((4, 7))
    z = net.compute_outputs(x)
    assert z.shape == (2, 7)
    assert rel(z, pure_outputs(w, x, specs)) <= 1e-14
    for k, width in enumerate((3, 5, 2)):
        assert net.get_activations(k).shape == (width, 7)
    assert net.get_activations(-1) is net.layers[-1].get_activations()
    np.testing.assert_array_equal(net.get_activations(2), z)

    f = lambda t: pure_outputs(t, x, specs)  # noqa: E731
    derivs = rng.standard_normal((2, 7))
    grad = net.compute_loss_grad(derivs)
    assert grad.shape == (net.params_number,)
    assert rel(grad, pearlnet.vjp(f, w)[1](derivs)[0]) <= TOL

    p = rng.standard_normal(w.size)
    net.set_direction(p)
    rz = net.compute_Rp_outputs()
    assert rz.shape == (2, 7)
    assert rel(rz, pearlnet.jvp(f, (w,), (p,))[1]) <= TOL

    rd = rng.standard_normal((2, 7))
    rgrad = net.compute_loss_Rp_grad(rd)
    back = lambda t, g: pearlnet.vjp(f, t)[1](g)[0]  # noqa: E731
    assert rgrad.shape == (net.params_number,)
    assert rel(rgrad, pearlnet.jvp(back, (w, derivs), (p, rd))[1]) <= TOL


def test_ffnet_errors(rng):
    g = TanhActivationFunction()
    with pytest.raises(TypeError, match="list"):
        FFNet(FCLayer((2, 2), g))
    with pytest.raises(ValueError, match="at least one"):
        FFNet([])
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        FFNet([FCLayer((2, 2), g), "layer"])
    with pytest.raises(ValueError, match=r"3 outputs.*takes 4 inputs"):
        FFNet([FCLayer((2, 3), g), FCLayer((4, 2), g)])
    net, specs, w = _net(rng)
    fresh = FFNet([FCLayer((2, 3), g)])
    with pytest.raises(RuntimeError, match="compute_outputs first"):
        fresh.compute_loss_grad(np.zeros((3, 1)))
    with pytest.raises(RuntimeError, match="compute_outputs first"):
        fresh.compute_Rp_outputs()
    for method in (net.set_weights, net.set_direction):
        with pytest.raises(ValueError, match=f"\\({net.params_number},\\)"):
            method(np.zeros(net.params_number + 1))
        with pytest.raises(TypeError, match="numpy.ndarray"):
            method(list(w))
    with pytest.raises(ValueError, match=r"\(4, batch\)"):
        net.compute_outputs(np.zeros((3, 5)))
    with pytest.raises(TypeError):
        net.compute_outputs("inputs")
    net.compute_outputs(rng.standard_normal((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        net.compute_loss_grad(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="Rp_derivs"):
        net.compute_loss_Rp_grad(np.zeros((3, 5)))
    for bad in (1.0, True, "0", None):
        with pytest.raises(TypeError, match="layer_number"):
            net.get_activations(bad)
    for bad in (3, -4):
        with pytest.raises(ValueError, match="layer_number"):
            net.get_activations(bad)


def test_the_same_layer_twice_is_rejected():
    g = TanhActivationFunction()
    shared, other = FCLayer((3, 3), g, True), FCLayer((3, 3), g, True)
    for layers, i, first in (([shared, shared], 1, 0), ([shared, other, shared], 2, 0),
                             ([other, shared, shared], 2, 1)):
        with pytest.raises(ValueError, match=rf"FFNet: layers\[{i}\] FCLayer\(.*is already "
                                             rf"in the net \(as layers\[{first}\]\)"):
            FFNet(layers)
        with pytest.raises(ValueError, match="is already in the net"):
            Autoencoder(layers)
    assert FFNet([shared, other]).params_number == 24  # one activation object may be shared


# ---------------------------------------------------------------------------------------------
# Autoencoder: the loss, its gradient, H p and the Gauss-Newton product
# ---------------------------------------------------------------------------------------------
def _ae(depth, bias, name, rng, n=6):
    lays, specs, w = make(widths(depth), bias, name, rng)
    ae = Autoencoder(lays)
    ae.net.set_weights(w)
    return ae, specs, w, rng.standard_normal((D, n))


def _cs_grad(ae, w, p, x):
    """Im grad F(w + i h p) / h through the adapter: H p by the complex step."""
    ae.net.set_weights(w + 1j * H * p)
    g = ae.compute_loss(x)[1]
    ae.net.set_weights(w)
    return g.imag / H


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_hessvec_and_gaussnewtonvec_match_core_and_complex_step(depth, bias, name, rng):
    ae, specs, w, x = _ae(depth, bias, name, rng)
    loss, grad = ae.compute_loss(x)
    assert isinstance(loss, float) and grad.shape == (ae.net.params_number,)
    assert abs(loss - float(pure_loss(w, x, specs))) <= 1e-14 * max(1.0, loss)
    assert rel(grad, pearlnet.grad(lambda t: pure_loss(t, x, specs))(w)) <= TOL
    for _ in range(2):
        p = rng.standard_normal(w.size)
        hv = ae.compute_hessvec(p)
        gn = ae.compute_gaussnewtonvec(p)
        assert hv.shape == gn.shape == (ae.net.params_number,)
        assert rel(hv, pearlnet.hvp(lambda t: pure_loss(t, x, specs), w, p)) <= TOL
        assert rel(gn, pearlnet.gauss_newton_vp(
            lambda t: pure_outputs(t, x, specs),
            lambda z: 0.5 * pnp.sum((z - x) ** 2) / x.shape[1], w, p)) <= TOL
        assert rel(hv, _cs_grad(ae, w, p, x)) <= TOL
        ae.compute_loss(x)  # restore the batch after the complex pass


@pytest.mark.parametrize("name", ["tanh", "relu", "sigmoid"])
def test_gaussnewtonvec_is_jt_j_by_complex_step(name, rng):
    """(1/n) J^T J p with J, the Jacobian of all outputs in theta, built column by column by the
    complex step through compute_outputs."""
    ae, specs, w, x = _ae(3, True, name, rng)
    n = x.shape[1]
    cols = []
    for k in range(w.size):
        e = np.zeros(w.size)
        e[k] = 1.0
        ae.net.set_weights(w + 1j * H * e)
        cols.append(ae.net.compute_outputs(x).imag.ravel() / H)
    jac = np.stack(cols, axis=1)
    ae.net.set_weights(w)
    ae.compute_loss(x)
    p = rng.standard_normal(w.size)
    assert rel(ae.compute_gaussnewtonvec(p), jac.T @ (jac @ p) / n) <= TOL


@pytest.mark.parametrize("name", NAMES)
def test_reference_functions_pass_pearlnet_check(name, rng):
    """The pure references used above agree with the complex step (pearlnet.check)."""
    ae, specs, w, x = _ae(3, True, name, rng)
    check_grad(lambda t: pure_loss(t, x, specs), w, method="complex")
    check_hvp(lambda t: pure_loss(t, x, specs), w, method="complex")


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_differences_and_complex_step(name, rng):
    ae, specs, w, x = _ae(4, True, name, rng)
    if "relu" in name:  # differences of size ~1e-5 in u must not cross a kink
        assert kink_margin(w, x, specs) > 1e-4
    loss, grad = ae.compute_loss(x)
    for _ in range(3):
        p = rng.standard_normal(w.size)
        eps = np.cbrt(np.finfo(float).eps)
        ae.net.set_weights(w + eps * p)
        fp = ae.compute_loss(x)[0]
        ae.net.set_weights(w - eps * p)
        fm = ae.compute_loss(x)[0]
        ae.net.set_weights(w + 1j * H * p)
        fc = ae.compute_loss(x)[0]
        ae.net.set_weights(w)
        assert isinstance(fc, complex)
        assert rel(grad @ p, (fp - fm) / (2 * eps)) <= 1e-7
        assert rel(grad @ p, fc.imag / H) <= 1e-12


def test_hessian_properties(rng):
    ae, specs, w, x = _ae(3, True, "tanh", rng)
    ae.compute_loss(x)
    u, v = rng.standard_normal(w.size), rng.standard_normal(w.size)
    assert abs(u @ ae.compute_hessvec(v) - v @ ae.compute_hessvec(u)) <= 1e-12
    assert abs(u @ ae.compute_gaussnewtonvec(v) - v @ ae.compute_gaussnewtonvec(u)) <= 1e-12
    assert v @ ae.compute_gaussnewtonvec(v) >= 0
    # one linear layer: z is linear in theta, so Gauss-Newton is the Hessian (section 1.4)
    lin, _, wl, xl = _ae(1, True, "linear", rng)
    lin.compute_loss(xl)
    p = rng.standard_normal(wl.size)
    assert rel(lin.compute_hessvec(p), lin.compute_gaussnewtonvec(p)) <= 1e-13


def test_products_refer_to_the_last_compute_loss_batch(rng):
    ae, specs, w, x = _ae(3, True, "sigmoid", rng)
    p = rng.standard_normal(w.size)
    ae.compute_loss(x)
    expected_h = ae.compute_hessvec(p)
    expected_gn = ae.compute_gaussnewtonvec(p)
    # a Gauss-Newton product ran the backward pass with other derivatives: H p must not mind
    np.testing.assert_allclose(ae.compute_hessvec(p), expected_h, rtol=1e-13)
    ae.net.compute_outputs(rng.standard_normal((D, 9)))  # the net on other data
    np.testing.assert_allclose(ae.compute_hessvec(p), expected_h, rtol=1e-13)
    ae.net.compute_outputs(rng.standard_normal((D, 3)))
    np.testing.assert_allclose(ae.compute_gaussnewtonvec(p), expected_gn, rtol=1e-13)
    w2 = w + 0.1 * rng.standard_normal(w.size)
    ae.net.set_weights(w2)  # new weights: the products at the new weights, same batch
    assert rel(ae.compute_hessvec(p), pearlnet.hvp(lambda t: pure_loss(t, x, specs), w2, p)) \
        <= TOL


def test_changing_the_callers_arrays_in_place_changes_no_product(rng):
    ae, specs, w, x = _ae(3, True, "sigmoid", rng)
    p = rng.standard_normal(w.size)
    ae.compute_loss(x)
    expected_h, expected_gn = ae.compute_hessvec(p), ae.compute_gaussnewtonvec(p)
    buf = x.copy()
    ae.compute_loss(buf)
    assert ae.net.layers[0].inputs is ae._inputs  # one copy of the batch, shared
    buf += 1.0  # a reused minibatch buffer
    np.testing.assert_array_equal(ae.compute_hessvec(p), expected_h)
    np.testing.assert_array_equal(ae.compute_gaussnewtonvec(p), expected_gn)
    frozen = x.copy()
    frozen.flags.writeable = False
    ae.compute_loss(frozen)
    assert ae._inputs is frozen  # already read-only: no copy
    # FFNet: a derivs buffer changed between compute_loss_grad and compute_loss_Rp_grad
    net = ae.net
    derivs, rd = rng.standard_normal((D, x.shape[1])), rng.standard_normal((D, x.shape[1]))
    net.compute_outputs(x)
    net.compute_loss_grad(derivs)
    net.set_direction(p)
    net.compute_Rp_outputs()
    expected = net.compute_loss_Rp_grad(rd)
    net.compute_outputs(buf := x.copy())
    net.compute_loss_grad(dbuf := derivs.copy())
    buf += 1.0
    dbuf *= 2.0
    net.compute_Rp_outputs()
    np.testing.assert_array_equal(net.compute_loss_Rp_grad(rd), expected)


def test_autoencoder_errors(rng):
    g = TanhActivationFunction()
    with pytest.raises(ValueError, match="5 inputs and 3 outputs"):
        Autoencoder([FCLayer((5, 4), g), FCLayer((4, 3), g)])
    with pytest.raises(TypeError):
        Autoencoder("layers")
    ae, specs, w, x = _ae(2, True, "tanh", rng)
    assert isinstance(ae.net, FFNet)
    for method in (ae.compute_hessvec, ae.compute_gaussnewtonvec):
        with pytest.raises(RuntimeError, match="compute_loss first"):
            method(np.zeros(w.size))
    with pytest.raises(ValueError, match=r"\(5, batch\)"):
        ae.compute_loss(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least one"):
        ae.compute_loss(np.zeros((5, 0)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ae.compute_loss(x.tolist())
    ae.compute_loss(x)
    with pytest.raises(ValueError, match="p must be"):
        ae.compute_hessvec(np.zeros(w.size - 1))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ae.compute_gaussnewtonvec(list(np.zeros(w.size)))


# ---------------------------------------------------------------------------------------------
# Autoencoder: run_sgd, run_rmsprop, run_adam
# ---------------------------------------------------------------------------------------------
RUNS = ["run_sgd", "run_rmsprop", "run_adam"]


def test_run_signatures_as_stated():
    common = [("inputs", inspect.Parameter.empty), ("step_size", 0.01)]
    rest = [("num_epoch", 200), ("minibatch_size", 100), ("l2_coef", 1e-5),
            ("test_inputs", None), ("display", False)]
    for name, extra in (("run_sgd", [("momentum", 0.9)]), ("run_rmsprop", []),
                        ("run_adam", [])):
        params = list(inspect.signature(getattr(Autoencoder, name)).parameters.values())[1:]
        stated = common + extra + rest
        assert [(p.name, p.default) for p in params[:len(stated)]] == stated
    sig = inspect.signature(Autoencoder.compute_loss)
    assert list(sig.parameters) == ["self", "inputs"]
    assert list(inspect.signature(FCLayer).parameters)[:3] == ["shape", "afun", "use_bias"]
    assert inspect.signature(FCLayer).parameters["use_bias"].default is False


@pytest.mark.parametrize("method", RUNS)
def test_run_returns_histories(method, rng, capsys):
    ae, specs, w, x = _ae(3, True, "tanh", rng, n=20)
    xt = rng.standard_normal((D, 7))
    h = getattr(ae, method)(x, num_epoch=3, minibatch_size=8)
    assert set(h) == {"train_loss", "train_grad", "test_loss", "test_grad"}
    assert len(h["train_loss"]) == len(h["train_grad"]) == 3
    assert h["test_loss"] == [] and h["test_grad"] == []
    assert capsys.readouterr().out == ""
    h = getattr(ae, method)(x, num_epoch=4, minibatch_size=8, test_inputs=xt, display=True)
    assert all(len(v) == 4 for v in h.values())
    assert all(isinstance(v, float) for vals in h.values() for v in vals)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 4
    for k, line in enumerate(out, 1):
        assert f"epoch {k}/4" in line and "train loss" in line and "test loss" in line
        assert "time" in line
    # the last entries describe the final weights: F + l2 ||theta||^2 and its gradient norm
    theta = ae.net.get_weights()
    f, g = ae.compute_loss(x)
    assert h["train_loss"][-1] == pytest.approx(f + 1e-5 * theta @ theta, rel=1e-12)
    assert h["train_grad"][-1] == pytest.approx(np.linalg.norm(g + 2e-5 * theta), rel=1e-12)
    ft, gt = ae.compute_loss(xt)
    assert h["test_loss"][-1] == pytest.approx(ft + 1e-5 * theta @ theta, rel=1e-12)
    assert h["test_grad"][-1] == pytest.approx(np.linalg.norm(gt + 2e-5 * theta), rel=1e-12)


@pytest.mark.parametrize("method,kwargs", [("run_sgd", {"momentum": 0.0}),
                                           ("run_sgd", {"momentum": 0.9}),
                                           ("run_rmsprop", {}), ("run_adam", {})])
def test_run_updates_follow_pearlnet_optim(method, kwargs, rng):
    """Full batch, three epochs: the weights equal pearlnet.optim's steps on the gradient of
    F + l2 ||theta||^2, i.e. grad F + 2 l2 theta."""
    ae, specs, w, x = _ae(2, True, "sigmoid", rng, n=10)
    lr, l2 = 0.05, 1e-3
    getattr(ae, method)(x, step_size=lr, num_epoch=3, minibatch_size=10, l2_coef=l2, **kwargs)
    opt = {"run_rmsprop": optim.RMSProp(lr), "run_adam": optim.Adam(lr)}.get(method)
    if opt is None:
        opt = optim.Momentum(lr, beta=kwargs["momentum"])
    theta, state = w.copy(), opt.init(w)
    manual = w.copy()
    inertia = np.zeros_like(w)
    for _ in range(3):
        g = pearlnet.grad(lambda t: pure_loss(t, x, specs))(theta) + 2 * l2 * theta
        theta, state = opt.update(theta, g, state)
        if method == "run_sgd":  # the seed's rule written out: I <- mu I + lr g, w <- w - I
            gm = pearlnet.grad(lambda t: pure_loss(t, x, specs))(manual) + 2 * l2 * manual
            inertia = kwargs["momentum"] * inertia + lr * gm
            manual = manual - inertia
            np.testing.assert_allclose(manual, theta, rtol=1e-12)
    np.testing.assert_allclose(ae.net.get_weights(), theta, rtol=1e-10, atol=1e-13)


def test_run_minibatches_and_seed(rng):
    ae, specs, w, x = _ae(2, True, "tanh", rng, n=23)
    sizes = []
    original = ae.net.compute_outputs

    def spy(inputs):
        sizes.append(inputs.shape[1])
        return original(inputs)

    ae.net.compute_outputs = spy
    ae.run_adam(x, num_epoch=2, minibatch_size=10, test_inputs=x[:, :4])
    # per epoch: minibatches of 10, 10, 3, then the test set and the whole training set
    assert sizes == [10, 10, 3, 4, 23] * 2
    ae.net.set_weights(w)
    a = ae.run_sgd(x, num_epoch=2, minibatch_size=5, seed=3)
    ae.net.set_weights(w)
    b = ae.run_sgd(x, num_epoch=2, minibatch_size=5, seed=3)
    ae.net.set_weights(w)
    c = ae.run_sgd(x, num_epoch=2, minibatch_size=5, seed=4)
    assert a == b and a != c


def test_run_reduces_the_loss(rng):
    ae, specs, w, x = _ae(3, True, "tanh", rng, n=40)
    ae.net.compute_outputs(x)
    h = ae.run_adam(x, step_size=0.02, num_epoch=30, minibatch_size=10)
    assert h["train_loss"][-1] < 0.8 * h["train_loss"][0]


@pytest.mark.parametrize("method", RUNS)
def test_run_argument_errors(method, rng):
    ae, specs, w, x = _ae(2, True, "tanh", rng, n=4)
    run = getattr(ae, method)
    for kwargs, err in [({"step_size": 0.0}, ValueError), ({"step_size": -1.0}, ValueError),
                        ({"step_size": "0.1"}, TypeError), ({"num_epoch": 1.5}, TypeError),
                        ({"num_epoch": -1}, ValueError), ({"minibatch_size": 0}, ValueError),
                        ({"minibatch_size": None}, TypeError), ({"l2_coef": -1e-3}, ValueError),
                        ({"display": "yes"}, TypeError),
                        ({"test_inputs": np.zeros((4, 3))}, ValueError),
                        ({"test_inputs": [[0.0]] * 5}, TypeError)]:
        with pytest.raises(err, match=f"Autoencoder.{method}"):
            run(x, num_epoch=kwargs.pop("num_epoch", 1), **kwargs)
    with pytest.raises(ValueError, match=r"\(5, batch\)"):
        run(np.zeros((4, 4)), num_epoch=1)
    with pytest.raises(TypeError, match="real"):
        run(x + 0j, num_epoch=1)
    if method == "run_sgd":
        for bad in (1.0, -0.1):
            with pytest.raises(ValueError, match="momentum"):
                run(x, momentum=bad, num_epoch=1)
    assert run(x, num_epoch=0) == {"train_loss": [], "train_grad": [], "test_loss": [],
                                   "test_grad": []}
    np.testing.assert_array_equal(ae.net.get_weights(), w)


# ---------------------------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------------------------
def test_demo_runs_small(tmp_path, capsys):
    from pearlnet.compat.msu import demo

    result = demo.main(tmp_path / "plots", num_epoch=2, num_train=60, num_test=40,
                       minibatch_size=20)
    assert set(result["histories"]) == {"sgd", "momentum", "rmsprop", "adam"}
    for h in result["histories"].values():
        assert len(h["test_loss"]) == 2 and np.isfinite(h["test_loss"]).all()
    assert set(result["codes"]) == {"initial", "sgd", "momentum", "rmsprop", "adam"}
    assert all(c.shape == (2, 40) for c in result["codes"].values())
    for path in result["plots"]:
        assert path.exists() and path.stat().st_size > 1000
    assert {p.name for p in result["plots"]} == {"convergence.png", "codes.png"}
    assert "saved" in capsys.readouterr().out
    with pytest.raises(ValueError, match="num_train"):
        demo.main(tmp_path, num_train=0)


def test_demo_module_entry_point(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pearlnet.compat.msu.demo", "--output-dir", str(tmp_path),
         "--epochs", "1", "--train", "30", "--test", "20"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "convergence.png").exists() and (tmp_path / "codes.png").exists()
    assert "adam" in out.stdout
