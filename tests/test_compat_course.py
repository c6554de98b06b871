"""pearlnet.compat.course: the interface of hand-out 001 ("training multilayer networks on
NumPy"), written against the names, argument orders, shapes and return conventions of the issue.

Test classes match the hand-out's sections (``python -m pearlnet.compat.course unittest relu``
runs TestReLU): TestReLU, TestSoftmax, TestDense, TestCrossentropy, TestSGD, TestMomentum,
TestMNIST, plus TestInterface (the abstract classes), TestModel and TestRunner.

Derivatives are checked against NumPy closed forms, central differences and the complex step.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pearlnet.compat import course
from pearlnet.compat.course import (
    SGD,
    CategoricalCrossentropy,
    Dense,
    Layer,
    Loss,
    Model,
    Optimizer,
    ReLU,
    SGDMomentum,
    Softmax,
    train_mnist_model,
)
from pearlnet.compat.course.__main__ import GROUPS
from pearlnet.compat.course.__main__ import main as runner_main

FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---- numerical oracles ---------------------------------------------------------------------

def central_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """The gradient of the scalar f at x by central differences, entry by entry."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def complex_step_dir(f, x: np.ndarray, p: np.ndarray, h: float = 1e-20) -> float:
    """<grad f(x), p> = Im f(x + i h p) / h, exact to rounding (no subtraction)."""
    return float(np.imag(f(x + 1j * h * p)) / h)


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300))


def away_from_zero(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Normal entries with |x| >= 0.1: no finite-difference step crosses ReLU's kink."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-300) * 0.1 + x, x)


def layer_with(layer: Layer, optimizer: Optimizer | None = None) -> Layer:
    layer.build(optimizer)
    return layer


def toy_problem(rng: np.random.Generator, n: int = 240, d: int = 4, k: int = 3):
    """Inputs (n, d) and one-hot labels (n, k) from a random linear rule (learnable)."""
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((d, k))
    return x, np.eye(k)[np.argmax(x @ w, axis=1)]


def small_model(seed: int = 0, optimizer: Optimizer | None = None, d: int = 4, k: int = 3,
                hidden: int = 8) -> Model:
    model = Model(CategoricalCrossentropy(), optimizer or SGDMomentum(0.1, 0.9), seed=seed)
    model.add(Dense(hidden, input_shape=(d,), seed=seed))
    model.add(ReLU())
    model.add(Dense(k, seed=seed + 1))
    model.add(Softmax())
    return model


class Recorder(Optimizer):
    """An optimizer whose updaters record their calls and subtract the gradient."""

    def __init__(self) -> None:
        self.shapes: list[tuple] = []
        self.calls: list[tuple] = []

    def get_parameter_updater(self, parameter_shape):
        self.shapes.append(tuple(parameter_shape))

        def updater(parameter, parameter_grad):
            self.calls.append((parameter.shape, parameter_grad.shape))
            return parameter - parameter_grad

        return updater


# ---- the abstract interface ----------------------------------------------------------------

class TestInterface:
    def test_exports(self):
        assert set(course.__all__) == {"Layer", "Loss", "Optimizer", "ReLU", "Softmax", "Dense",
                                       "CategoricalCrossentropy", "SGD", "SGDMomentum", "Model",
                                       "train_mnist_model"}
        assert issubclass(ReLU, Layer) and issubclass(Softmax, Layer) and issubclass(Dense, Layer)
        assert issubclass(CategoricalCrossentropy, Loss)
        assert issubclass(SGD, Optimizer) and issubclass(SGDMomentum, Optimizer)

    def test_abstract_methods_raise(self):
        layer = Layer()
        with pytest.raises(NotImplementedError):
            layer(np.ones((2, 3)))
        with pytest.raises(NotImplementedError):
            layer.backward(np.ones((2, 3)))
        with pytest.raises(NotImplementedError):
            Loss()(np.ones((2, 3)), np.ones((2, 3)))
        with pytest.raises(NotImplementedError):
            Loss().gradient(np.ones((2, 3)), np.ones((2, 3)))
        with pytest.raises(NotImplementedError):
            Optimizer().get_parameter_updater((2,))

    def test_call_stores_forward_inputs_and_outputs(self, rng):
        layer = ReLU()
        x = rng.standard_normal((5, 3))
        y = layer(x)
        np.testing.assert_array_equal(layer.forward_inputs, x)
        assert layer.forward_outputs is y

    def test_build_takes_the_previous_output_shape(self):
        first = Dense(7, input_shape=(3,))
        first.build(SGD(0.1))
        act = ReLU()
        act.build(SGD(0.1), prev_layer=first)
        assert act.input_shape == (7,) and act.output_shape == (7,)
        assert first.input_shape == (3,) and first.output_shape == (7,)

    def test_build_rejects_a_mismatching_input_shape(self):
        first = layer_with(Dense(7, input_shape=(3,)), SGD(0.1))
        with pytest.raises(ValueError, match=r"Dense.*\(batch, 6\).*\(batch, 7\)"):
            Dense(2, input_shape=(6,)).build(SGD(0.1), prev_layer=first)

    @pytest.mark.parametrize("shape", [(0,), (-1, 2), (2.5,), ("a",)])
    def test_bad_input_shape(self, shape):
        with pytest.raises(ValueError, match="input_shape"):
            ReLU(input_shape=shape)

    def test_int_input_shape_is_a_one_tuple(self):
        assert Dense(2, input_shape=5).input_shape == (5,)

    def test_add_parameter_and_update_parameters(self):
        class Scale(Layer):
            """y = x * s, a hand-written layer in the hand-out's style."""

            def build(self, optimizer, prev_layer=None):
                super().build(optimizer, prev_layer)
                self.s, self.s_grad = self.add_parameter("s", self.input_shape, np.ones)

            def forward(self, inputs):
                return inputs * self.s

            def backward(self, grad_outputs):
                self.s_grad = np.mean(grad_outputs * self.forward_inputs, axis=0)
                return grad_outputs * self.s

        opt = Recorder()
        layer = Scale(input_shape=(3,))
        layer.build(opt)
        assert opt.shapes == [(3,)]
        np.testing.assert_array_equal(layer.s_grad, np.zeros(3))
        x = np.arange(6.0).reshape(2, 3)
        layer(x)
        layer.backward(np.ones((2, 3)))
        layer.update_parameters()
        np.testing.assert_allclose(layer.s, 1 - x.mean(axis=0))
        assert opt.calls == [((3,), (3,))]

    def test_update_without_optimizer_is_an_error(self, rng):
        layer = Dense(2, input_shape=(3,))
        layer(rng.standard_normal((4, 3)))
        layer.backward(np.ones((4, 2)))
        with pytest.raises(RuntimeError, match="no optimizer"):
            layer.update_parameters()

    def test_backward_before_forward(self):
        with pytest.raises(RuntimeError, match="before any forward"):
            ReLU().backward(np.ones((2, 2)))

    def test_loss_subclass_with_loss_fn_gets_a_core_gradient(self, rng):
        class HalfSquared(Loss):
            def loss_fn(self, y_gt, y_pred):
                import pearlnet.numpy as pnp
                return 0.5 * pnp.sum((y_pred - y_gt) ** 2, axis=1)

        y, p = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
        np.testing.assert_allclose(HalfSquared()(y, p), 0.5 * np.sum((p - y) ** 2, axis=1))
        np.testing.assert_allclose(HalfSquared().gradient(y, p), p - y)

    def test_hand_out_style_subclasses_train_in_a_model(self, rng):
        """Layers, losses and optimizers written the hand-out's way plug into Model."""

        class Tanh(Layer):
            def forward(self, inputs):
                return np.tanh(inputs)

            def backward(self, grad_outputs):
                return grad_outputs * (1 - self.forward_outputs ** 2)

        class Squared(Loss):
            def __call__(self, y_gt, y_pred):
                return np.sum((y_pred - y_gt) ** 2, axis=1)

            def gradient(self, y_gt, y_pred):
                return 2 * (y_pred - y_gt)

        x, y = toy_problem(rng)
        model = Model(Squared(), Recorder(), seed=0)
        model.add(Dense(3, input_shape=(4,), seed=0))
        model.add(Tanh())
        model.fit(x, y * 0.8, batch_size=24, epochs=3, verbose=False)
        assert model.loss_train_history[-1] < model.loss_train_history[0]


# ---- 2.1.1 ReLU ----------------------------------------------------------------------------

class TestReLU:
    @pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
    def test_forward(self, rng, shape):
        x = rng.standard_normal(shape)
        np.testing.assert_array_equal(layer_with(ReLU())(x), np.maximum(x, 0))

    @pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4)])
    def test_backward_is_the_mask(self, rng, shape):
        layer = layer_with(ReLU())
        x, g = rng.standard_normal(shape), rng.standard_normal(shape)
        layer(x)
        grad = layer.backward(g)
        assert grad.shape == shape
        np.testing.assert_array_equal(grad, g * (x > 0))

    def test_derivative_at_zero_is_zero(self):
        layer = ReLU()
        layer(np.array([[0.0, 1.0, -1.0]]))
        np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 1.0, 0.0]])

    def test_backward_numerically(self, rng):
        x, g = away_from_zero(rng, (3, 4)), rng.standard_normal((3, 4))
        layer = ReLU()
        layer(x)
        grad = layer.backward(g)
        f = lambda z: np.sum(g * ReLU()(z))  # noqa: E731
        np.testing.assert_allclose(grad, central_grad(f, x), atol=1e-8)
        p = rng.standard_normal(x.shape)
        assert abs(complex_step_dir(f, x, p) - np.sum(grad * p)) < 1e-12

    def test_float32_stays_float32(self, rng):
        layer = ReLU()
        x = rng.standard_normal((3, 2)).astype(np.float32)
        assert layer(x).dtype == np.float32
        assert layer.backward(np.ones((3, 2), np.float32)).dtype == np.float32

    def test_backward_reads_forward_inputs(self, rng):
        """Backward follows ``forward_inputs``, even when it was replaced after the forward."""
        layer = ReLU()
        layer(np.ones((2, 2)))
        layer.forward_inputs = np.array([[1.0, -1.0], [-1.0, 1.0]])
        np.testing.assert_array_equal(layer.backward(np.ones((2, 2))), [[1, 0], [0, 1]])

    def test_wrong_gradient_shape(self, rng):
        layer = ReLU()
        layer(rng.standard_normal((3, 2)))
        with pytest.raises(ValueError, match=r"ReLU.*\(3, 2\).*\(2, 3\)"):
            layer.backward(np.ones((2, 3)))

    def test_in_a_model_the_shape_is_checked(self, rng):
        model = Model(CategoricalCrossentropy(), SGD(0.1))
        model.add(ReLU(input_shape=(3,)))
        with pytest.raises(ValueError, match=r"ReLU.*layer 0.*\(batch, 3\).*\(2, 4\)"):
            model.forward(np.ones((2, 4)))


# ---- 2.1.2 Softmax -------------------------------------------------------------------------

def softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class TestSoftmax:
    def test_forward(self, rng):
        x = 3 * rng.standard_normal((6, 5))
        y = layer_with(Softmax())(x)
        np.testing.assert_allclose(y, softmax_ref(x), rtol=1e-12)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
        assert np.all((y >= 0) & (y <= 1))

    def test_large_inputs_do_not_overflow(self):
        y = Softmax()(np.array([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -800.0]]))
        np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-15)

    def test_shift_invariance(self, rng):
        x = rng.standard_normal((3, 4))
        np.testing.assert_allclose(Softmax()(x + 50.0), Softmax()(x), rtol=1e-12)

    def test_backward_closed_form(self, rng):
        """dL/dx_j = y_j (dL/dy_j - sum_i y_i dL/dy_i): every input feels every output."""
        x, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
        layer = Softmax()
        y = layer(x)
        expected = y * (g - np.sum(g * y, axis=1, keepdims=True))
        np.testing.assert_allclose(layer.backward(g), expected, rtol=1e-10, atol=1e-14)

    def test_backward_against_jacobian(self, rng):
        x, g = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
        layer = Softmax()
        layer(x)
        grad = layer.backward(g)
        for i in range(2):
            y = softmax_ref(x[i])
            jac = np.diag(y) - np.outer(y, y)
            np.testing.assert_allclose(grad[i], jac.T @ g[i], rtol=1e-10, atol=1e-14)

    def test_backward_numerically(self, rng):
        x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        layer = Softmax()
        layer(x)
        grad = layer.backward(g)
        f = lambda z: np.sum(g * Softmax()(z))  # noqa: E731
        np.testing.assert_allclose(grad, central_grad(f, x), atol=1e-8)
        for _ in range(3):
            p = rng.standard_normal(x.shape)
            assert rel_err(complex_step_dir(f, x, p), np.sum(grad * p)) < 1e-12

    def test_constant_gradient_gives_zero(self, rng):
        """Softmax's outputs sum to 1, so a gradient equal on all outputs cancels."""
        layer = Softmax()
        layer(rng.standard_normal((3, 4)))
        np.testing.assert_allclose(layer.backward(np.full((3, 4), 2.5)), 0, atol=1e-15)


# ---- 2.1.3 Dense ---------------------------------------------------------------------------

class TestDense:
    def test_parameters_after_build(self):
        layer = layer_with(Dense(5, input_shape=(3,), seed=0), SGD(0.1))
        assert layer.weights.shape == (3, 5) and layer.biases.shape == (5,)
        assert layer.weights_grad.shape == (3, 5) and layer.biases_grad.shape == (5,)
        np.testing.assert_array_equal(layer.biases, 0)
        np.testing.assert_array_equal(layer.weights_grad, 0)
        np.testing.assert_array_equal(layer.biases_grad, 0)
        assert layer.output_shape == (5,) and layer.weights.dtype == np.float64

    def test_he_initialisation(self):
        """W ~ N(0, sqrt(2 / input_units)): the sample mean and std over 400 * 300 weights."""
        layer = layer_with(Dense(300, input_shape=(400,), seed=1))
        w = layer.weights
        assert abs(w.mean()) < 4 * np.sqrt(2 / 400) / np.sqrt(w.size)
        assert abs(w.std() / np.sqrt(2 / 400) - 1) < 0.01

    def test_seeded_initialisation_is_reproducible(self):
        a = layer_with(Dense(4, input_shape=(3,), seed=7)).weights
        b = layer_with(Dense(4, input_shape=(3,), seed=np.random.default_rng(7))).weights
        c = layer_with(Dense(4, input_shape=(3,), seed=8)).weights
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_forward(self, rng):
        layer = layer_with(Dense(4, input_shape=(3,), seed=0))
        layer.biases = rng.standard_normal(4)
        x = rng.standard_normal((5, 3))
        np.testing.assert_allclose(layer(x), x @ layer.weights + layer.biases, rtol=1e-13)

    def test_backward_closed_form(self, rng):
        """dL/dX = G W^T per object; dL/dW = X^T G / n and dL/dB = mean of G over the batch."""
        layer = layer_with(Dense(4, input_shape=(3,), seed=0))
        x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
        layer(x)
        grad = layer.backward(g)
        np.testing.assert_allclose(grad, g @ layer.weights.T, rtol=1e-13)
        np.testing.assert_allclose(layer.weights_grad, x.T @ g / 5, rtol=1e-13)
        np.testing.assert_allclose(layer.biases_grad, g.mean(axis=0), rtol=1e-13)

    def test_backward_numerically(self, rng):
        """Parameter gradients are those of (1/n) sum(G * Y); input gradients of sum(G * Y)."""
        layer = layer_with(Dense(3, input_shape=(4,), seed=0))
        layer.biases = rng.standard_normal(3)
        w, b = layer.weights.copy(), layer.biases.copy()
        x, g = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
        layer(x)
        grad = layer.backward(g)

        def out(x_, w_, b_):
            probe = layer_with(Dense(3, input_shape=(4,)))
            probe.weights, probe.biases = w_, b_
            return probe(x_)

        f_x = lambda z: np.sum(g * out(z, w, b))  # noqa: E731
        f_w = lambda z: np.sum(g * out(x, z, b)) / 6  # noqa: E731
        f_b = lambda z: np.sum(g * out(x, w, z)) / 6  # noqa: E731
        np.testing.assert_allclose(grad, central_grad(f_x, x), atol=1e-8)
        np.testing.assert_allclose(layer.weights_grad, central_grad(f_w, w), atol=1e-8)
        np.testing.assert_allclose(layer.biases_grad, central_grad(f_b, b), atol=1e-8)
        for f, at, ad in ((f_x, x, grad), (f_w, w, layer.weights_grad),
                          (f_b, b, layer.biases_grad)):
            p = rng.standard_normal(at.shape)
            assert rel_err(complex_step_dir(f, at, p), np.sum(ad * p)) < 1e-12

    def test_backward_uses_the_current_weights(self, rng):
        """Weights assigned after the forward pass are the ones backward differentiates at."""
        layer = layer_with(Dense(2, input_shape=(3,), seed=0))
        layer(rng.standard_normal((4, 3)))
        layer.weights = np.ones((3, 2))
        np.testing.assert_allclose(layer.backward(np.ones((4, 2))), np.full((4, 3), 2.0))

    def test_update_with_sgd(self, rng):
        layer = layer_with(Dense(2, input_shape=(3,), seed=0), SGD(0.5))
        w = layer.weights.copy()
        layer(rng.standard_normal((4, 3)))
        layer.backward(rng.standard_normal((4, 2)))
        wg, bg = layer.weights_grad.copy(), layer.biases_grad.copy()
        layer.update_parameters()
        np.testing.assert_allclose(layer.weights, w - 0.5 * wg, rtol=1e-14)
        np.testing.assert_allclose(layer.biases, -0.5 * bg, rtol=1e-14)

    def test_float32(self, rng):
        layer = layer_with(Dense(2, input_shape=(3,), dtype=np.float32), SGD(0.1))
        x = rng.standard_normal((4, 3)).astype(np.float32)
        assert layer(x).dtype == np.float32
        assert layer.backward(np.ones((4, 2), np.float32)).dtype == np.float32
        assert layer.weights_grad.dtype == np.float32
        layer.update_parameters()
        assert layer.weights.dtype == np.float32 and layer.biases.dtype == np.float32

    def test_input_shape_from_the_first_batch(self, rng):
        layer = Dense(2)
        assert layer.weights is None
        assert layer(rng.standard_normal((4, 5))).shape == (4, 2)
        assert layer.input_shape == (5,) and layer.weights.shape == (5, 2)
        with pytest.raises(ValueError, match=r"Dense.*\(batch, 5\).*\(4, 6\)"):
            layer(rng.standard_normal((4, 6)))

    def test_wrong_input_shape(self, rng):
        layer = layer_with(Dense(2, input_shape=(3,)))
        with pytest.raises(ValueError, match=r"Dense\(units=2, input_shape=\(3,\)\).*"
                                             r"\(batch, 3\).*\(4, 5\)"):
            layer(rng.standard_normal((4, 5)))

    def test_needs_flat_inputs(self):
        with pytest.raises(ValueError, match="flat inputs"):
            layer_with(Dense(2, input_shape=(3, 4)))

    @pytest.mark.parametrize("units", [0, -2, 2.0, True, "3"])
    def test_bad_units(self, units):
        with pytest.raises(ValueError, match="units"):
            Dense(units)

    def test_bad_dtype(self):
        with pytest.raises(ValueError, match="dtype"):
            Dense(2, dtype=np.int32)


# ---- 2.2.1 CrossEntropy --------------------------------------------------------------------

def probabilities(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return softmax_ref(rng.standard_normal((n, d)))


class TestCrossentropy:
    def test_value_per_object(self, rng):
        p, y = probabilities(rng, 5, 4), np.eye(4)[[0, 3, 1, 1, 2]]
        loss = CategoricalCrossentropy()(y, p)
        assert loss.shape == (5,)
        np.testing.assert_allclose(loss, -np.sum(y * np.log(p), axis=1), rtol=1e-14)
        np.testing.assert_allclose(loss, -np.log(p[np.arange(5), [0, 3, 1, 1, 2]]), rtol=1e-14)

    def test_soft_targets(self, rng):
        p, y = probabilities(rng, 3, 4), probabilities(rng, 3, 4)
        np.testing.assert_allclose(CategoricalCrossentropy()(y, p),
                                   -np.sum(y * np.log(p), axis=1), rtol=1e-14)

    def test_gradient_closed_form(self, rng):
        p, y = probabilities(rng, 5, 4), probabilities(rng, 5, 4)
        grad = CategoricalCrossentropy().gradient(y, p)
        assert grad.shape == (5, 4)
        np.testing.assert_allclose(grad, -y / p, rtol=1e-14)

    def test_gradient_numerically(self, rng):
        p, y = probabilities(rng, 3, 4), probabilities(rng, 3, 4)
        grad = CategoricalCrossentropy().gradient(y, p)
        f = lambda z: np.sum(CategoricalCrossentropy()(y, z))  # noqa: E731
        np.testing.assert_allclose(grad, central_grad(f, p), rtol=1e-7)
        q = rng.standard_normal(p.shape)
        assert rel_err(complex_step_dir(f, p, q), np.sum(grad * q)) < 1e-12

    def test_zero_probabilities_stay_finite(self):
        """A softmax output that underflowed to 0: finite loss, no NaN, no warning."""
        y, p = np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
        assert CategoricalCrossentropy()(y, p)[0] == 0.0
        np.testing.assert_array_equal(CategoricalCrossentropy().gradient(y, p), [[0, -1, 0]])
        wrong = CategoricalCrossentropy()(np.array([[1.0, 0.0, 0.0]]), p)
        assert np.isfinite(wrong).all() and wrong[0] > 20

    def test_after_softmax_the_logit_gradient_is_p_minus_y(self, rng):
        x, y = rng.standard_normal((4, 5)), np.eye(5)[[0, 1, 4, 2]]
        layer = Softmax()
        p = layer(x)
        grad = layer.backward(CategoricalCrossentropy().gradient(y, p))
        np.testing.assert_allclose(grad, p - y, atol=1e-14)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"CategoricalCrossentropy.*\(2, 3\).*\(2, 4\)"):
            CategoricalCrossentropy()(np.ones((2, 3)), np.ones((2, 4)) / 4)
        with pytest.raises(ValueError, match=r"\(n, d\)"):
            CategoricalCrossentropy().gradient(np.ones(3), np.ones(3) / 3)

    def test_float32(self, rng):
        p = probabilities(rng, 3, 4).astype(np.float32)
        y = np.eye(4, dtype=np.float32)[[0, 1, 2]]
        assert CategoricalCrossentropy()(y, p).dtype == np.float32
        assert CategoricalCrossentropy().gradient(y, p).dtype == np.float32


# ---- 2.3.1 SGD -----------------------------------------------------------------------------

class TestSGD:
    def test_one_step(self):
        update = SGD(lr=0.1).get_parameter_updater((2,))
        np.testing.assert_allclose(update(np.array([1.0, -1.0]), np.array([2.0, 0.5])),
                                   [0.8, -1.05], rtol=1e-15)

    def test_steps_and_no_in_place_change(self, rng):
        update = SGD(0.05).get_parameter_updater((3, 2))
        p = rng.standard_normal((3, 2))
        p0 = p.copy()
        grads = [rng.standard_normal((3, 2)) for _ in range(4)]
        for g in grads:
            p = update(p, g)
        np.testing.assert_allclose(p, p0 - 0.05 * sum(grads), rtol=1e-13)

    def test_updaters_are_independent(self):
        opt = SGD(1.0)
        u1, u2 = opt.get_parameter_updater((1,)), opt.get_parameter_updater((2,))
        np.testing.assert_allclose(u1(np.zeros(1), np.ones(1)), [-1.0])
        np.testing.assert_allclose(u2(np.zeros(2), np.ones(2)), [-1.0, -1.0])

    def test_lr_is_read_at_every_step(self):
        opt = SGD(1.0)
        update = opt.get_parameter_updater((1,))
        p = update(np.zeros(1), np.ones(1))
        opt.lr = 0.5
        np.testing.assert_allclose(update(p, np.ones(1)), [-1.5])

    def test_float32_stays_float32(self):
        update = SGD(0.1).get_parameter_updater((2,))
        assert update(np.ones(2, np.float32), np.ones(2, np.float32)).dtype == np.float32

    def test_wrong_shape(self):
        update = SGD(0.1).get_parameter_updater((2, 3))
        with pytest.raises(ValueError, match=r"SGD.*\(2, 3\).*\(3, 2\)"):
            update(np.ones((3, 2)), np.ones((3, 2)))

    @pytest.mark.parametrize("lr", [-0.1, float("nan"), "0.1"])
    def test_bad_lr(self, lr):
        with pytest.raises(ValueError, match="lr"):
            SGD(lr)


# ---- 2.3.2 SGDMomentum ---------------------------------------------------------------------

class TestMomentum:
    def test_golden_values(self):
        """I <- 0.9 I + 0.1 g; P <- P - I, by hand: I = 0.2, 0.18 + 0.1, 0.252 - 0.1."""
        update = SGDMomentum(lr=0.1, momentum=0.9).get_parameter_updater((1,))
        p = np.array([1.0])
        p = update(p, np.array([2.0]))
        np.testing.assert_allclose(p, [0.8], rtol=1e-15)
        p = update(p, np.array([1.0]))
        np.testing.assert_allclose(p, [0.8 - 0.28], rtol=1e-14)
        p = update(p, np.array([-1.0]))
        np.testing.assert_allclose(p, [0.52 - 0.152], rtol=1e-14)

    def test_recurrence(self, rng):
        lr, beta = 0.03, 0.8
        update = SGDMomentum(lr, beta).get_parameter_updater((4, 3))
        p = rng.standard_normal((4, 3))
        ref, inertia = p.copy(), np.zeros((4, 3))
        for _ in range(5):
            g = rng.standard_normal((4, 3))
            inertia = beta * inertia + lr * g
            ref = ref - inertia
            p = update(p, g)
        np.testing.assert_allclose(p, ref, rtol=1e-13)

    def test_zero_momentum_is_sgd(self, rng):
        a = SGDMomentum(0.1).get_parameter_updater((3,))
        b = SGD(0.1).get_parameter_updater((3,))
        p = q = rng.standard_normal(3)
        for _ in range(3):
            g = rng.standard_normal(3)
            p, q = a(p, g), b(q, g)
        np.testing.assert_allclose(p, q, rtol=1e-15)
        assert SGDMomentum(0.1).momentum == 0.0

    def test_each_parameter_has_its_own_inertia(self):
        opt = SGDMomentum(1.0, 0.5)
        u1, u2 = opt.get_parameter_updater((1,)), opt.get_parameter_updater((1,))
        u1(np.zeros(1), np.ones(1))
        np.testing.assert_allclose(u2(np.zeros(1), np.ones(1)), [-1.0])
        np.testing.assert_allclose(u1(np.zeros(1), np.ones(1)), [-1.5])

    def test_schedule_lr(self):
        """A schedule step -> lr: each updater counts its own steps (one per batch)."""
        update = SGDMomentum(lambda t: 1.0 / (t + 1), 0.0).get_parameter_updater((1,))
        p = np.zeros(1)
        for _ in range(3):
            p = update(p, np.ones(1))
        np.testing.assert_allclose(p, [-(1 + 1 / 2 + 1 / 3)], rtol=1e-15)

    @pytest.mark.parametrize("momentum", [1.0, -0.1, 1.5])
    def test_bad_momentum(self, momentum):
        with pytest.raises(ValueError, match="beta"):
            SGDMomentum(0.1, momentum)

    def test_repr(self):
        assert repr(SGDMomentum(0.1, 0.9)) == "SGDMomentum(lr=0.1, momentum=0.9)"


# ---- the Model -----------------------------------------------------------------------------

class TestModel:
    def test_add_builds_against_the_previous_layer(self):
        model = small_model()
        assert [type(layer).__name__ for layer in model.layers] == ["Dense", "ReLU", "Dense",
                                                                     "Softmax"]
        assert model.layers[2].weights.shape == (8, 3)
        assert model.last_layer is model.layers[-1]

    def test_shape_mismatch_at_add(self):
        model = Model(CategoricalCrossentropy(), SGD(0.1))
        model.add(Dense(5, input_shape=(4,)))
        model.add(ReLU())
        with pytest.raises(ValueError, match=r"Dense\(units=2, input_shape=\(6,\)\) \(layer 2 "
                                             r"of the model\).*\(batch, 6\).*ReLU.*\(batch, 5\)"):
            model.add(Dense(2, input_shape=(6,)))

    def test_shape_mismatch_at_first_forward(self, rng):
        """No input_shape on the first layer: the shapes meet at the first batch."""
        model = Model(CategoricalCrossentropy(), SGD(0.1))
        model.add(ReLU())
        model.add(Dense(3, input_shape=(4,)))
        with pytest.raises(ValueError, match=r"Dense.*layer 1.*\(batch, 4\).*\(2, 5\)"):
            model.forward(rng.standard_normal((2, 5)))

    def test_lazy_first_layer(self, rng):
        model = Model(CategoricalCrossentropy(), SGD(0.1), seed=0)
        model.add(Dense(6))
        model.add(ReLU())
        model.add(Dense(2))
        model.add(Softmax())
        assert model.forward(rng.standard_normal((3, 4))).shape == (3, 2)
        assert model.layers[0].weights.shape == (4, 6)
        x, y = toy_problem(rng, 40, 4, 2)
        model.fit(x, y, 8, 1, verbose=False)

    def test_add_type_checks(self):
        model = Model(CategoricalCrossentropy(), SGD(0.1))
        with pytest.raises(TypeError, match="Layer"):
            model.add("relu")
        layer = ReLU(input_shape=(2,))
        model.add(layer)
        with pytest.raises(ValueError, match="already"):
            model.add(layer)
        with pytest.raises(TypeError, match="loss"):
            Model("crossentropy", SGD(0.1))
        with pytest.raises(TypeError, match="optimizer"):
            Model(CategoricalCrossentropy(), "sgd")
        with pytest.raises(ValueError, match="no layers"):
            Model(CategoricalCrossentropy(), SGD(0.1)).forward(np.ones((2, 2)))

    def test_backward_gradients_numerically(self, rng):
        """Model.backward: per-object input gradients, batch-averaged parameter gradients, both
        those of the cross-entropy through the whole network."""
        model = small_model()
        x = away_from_zero(rng, (5, 4))
        _, y = toy_problem(rng, 5)
        grad_x = model.backward(y, model.forward(x))
        dense = model.layers[0]
        w = dense.weights.copy()

        def total(z):
            return np.sum(model.loss(y, model.forward(z)))

        def mean_over_w(z):
            dense.weights = z
            try:
                return np.mean(model.loss(y, model.forward(x)))
            finally:
                dense.weights = w

        np.testing.assert_allclose(grad_x, central_grad(total, x), rtol=1e-6, atol=1e-9)
        wg = dense.weights_grad
        np.testing.assert_allclose(wg, central_grad(mean_over_w, w), rtol=1e-6, atol=1e-9)
        p = rng.standard_normal(w.shape)
        assert rel_err(complex_step_dir(mean_over_w, w, p), np.sum(wg * p)) < 1e-11

    def test_fit_batch_returns_loss_and_accuracy_and_updates(self, rng):
        model = small_model()
        x, y = toy_problem(rng, 16)
        p = model.forward(x)
        loss_before = float(np.mean(model.loss(y, p)))
        acc_before = float(np.mean(p.argmax(1) == y.argmax(1)))
        w = model.layers[0].weights.copy()
        assert model.fit_batch(x, y) == pytest.approx((loss_before, acc_before), rel=1e-12)
        assert not np.array_equal(model.layers[0].weights, w)

    def test_fit_learns_and_fills_the_histories(self, rng):
        model = small_model()
        x, y = toy_problem(rng, 300)
        xv, yv = toy_problem(rng, 60)
        model.fit(x, y, batch_size=32, epochs=6, verbose=False, x_valid=xv, y_valid=yv)
        for history in (model.loss_train_history, model.loss_valid_history,
                        model.accuracy_train_history, model.accuracy_valid_history):
            assert len(history) == 6 and all(isinstance(v, float) for v in history)
        assert model.loss_train_history[-1] < model.loss_train_history[0]
        assert model.accuracy_train_history[-1] > 0.8
        assert (model.loss_valid_history[-1], model.accuracy_valid_history[-1]) == \
            pytest.approx(model.evaluate(xv, yv, 7), rel=1e-12)
        model.fit(x, y, batch_size=32, epochs=2, verbose=False)
        assert len(model.loss_train_history) == 8 and len(model.loss_valid_history) == 6

    def test_evaluate(self, rng):
        model = small_model()
        x, y = toy_problem(rng, 23)
        p = model.forward(x)
        loss, accuracy = model.evaluate(x, y, batch_size=5)
        assert loss == pytest.approx(float(np.mean(-np.sum(y * np.log(p), axis=1))), rel=1e-12)
        assert accuracy == pytest.approx(float(np.mean(p.argmax(1) == y.argmax(1))))

    def test_seeded_training_is_reproducible(self, rng):
        x, y = toy_problem(rng, 100)
        runs = []
        for _ in range(2):
            model = small_model(seed=3)
            model.fit(x, y, batch_size=10, epochs=2, verbose=False)
            runs.append((model.loss_train_history, model.layers[0].weights))
        assert runs[0][0] == runs[1][0]
        np.testing.assert_array_equal(runs[0][1], runs[1][1])

    def test_no_shuffle_visits_in_order(self, rng):
        x, y = toy_problem(rng, 30)
        a, b = small_model(seed=0), small_model(seed=0)
        b.rng = np.random.default_rng(99)  # shuffle=False must not consult the generator
        a.fit(x, y, 10, 2, shuffle=False, verbose=False)
        b.fit(x, y, 10, 2, shuffle=False, verbose=False)
        assert a.loss_train_history == b.loss_train_history

    def test_verbose_prints_one_line_per_epoch(self, rng, capsys):
        model = small_model()
        x, y = toy_problem(rng, 40)
        model.fit(x, y, 10, 2, verbose=True, x_valid=x, y_valid=y)
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 2 and lines[1].startswith("Epoch 2/2: loss ")
        assert "valid accuracy" in lines[0]
        model.fit(x, y, 10, 1, verbose=False)
        assert capsys.readouterr().out == ""

    def test_fit_argument_errors(self, rng):
        model = small_model()
        x, y = toy_problem(rng, 20)
        with pytest.raises(ValueError, match="same n"):
            model.fit(x, y[:10], 5, 1)
        with pytest.raises(ValueError, match="batch_size"):
            model.fit(x, y, 0, 1)
        with pytest.raises(ValueError, match="epochs"):
            model.fit(x, y, 5, -1)
        with pytest.raises(ValueError, match="x_valid and y_valid"):
            model.fit(x, y, 5, 1, x_valid=x)
        with pytest.raises(ValueError, match="batch_size"):
            model.evaluate(x, y, 0)

    def test_repr(self):
        text = repr(small_model())
        assert text.startswith("Model([Dense(units=8, input_shape=(4,)), ReLU(")
        assert "CategoricalCrossentropy()" in text and "SGDMomentum(lr=0.1" in text


# ---- 2.4 MNIST -----------------------------------------------------------------------------

class TestMNIST:
    def test_digits_quickly(self):
        """scikit-learn's 8x8 digits (64-vectors): train_mnist_model is not tied to 784."""
        pytest.importorskip("sklearn")
        from pearlnet.data import Standardizer, flatten_images, load_digits, one_hot

        (x, y), (xt, yt) = load_digits(seed=0)
        s = Standardizer().fit(flatten_images(x))
        x, xt = s.transform(flatten_images(x)), s.transform(flatten_images(xt))
        model = train_mnist_model(x, one_hot(y, 10), xt[:100], one_hot(yt[:100], 10),
                                  verbose=False)
        assert isinstance(model, Model)
        assert len(model.accuracy_valid_history) == 20  # default_epochs for 1346 images
        assert model.evaluate(xt, one_hot(yt, 10), 256)[1] >= 0.95

    @pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed here "
                        "(apt-get install dataset-fashion-mnist)")
    def test_fashion_mnist_10k_images(self):
        """Fashion-MNIST (harder than MNIST), 10,000 training images, the 10,000 test images
        held out: >= 85% (measured 86.4%, about 7 s with OPENBLAS_NUM_THREADS=1)."""
        from pearlnet.data import Standardizer, flatten_images, load_fashion_mnist, one_hot

        (x, y), (xt, yt) = load_fashion_mnist(FASHION, download=False)
        s = Standardizer().fit(flatten_images(x))
        x, xt = s.transform(flatten_images(x)), s.transform(flatten_images(xt))
        idx = np.random.default_rng(1).permutation(len(x))
        train, valid = idx[:10_000], idx[10_000:12_000]
        start = time.perf_counter()
        model = train_mnist_model(x[train], one_hot(y[train], 10), x[valid],
                                  one_hot(y[valid], 10), verbose=False)
        elapsed = time.perf_counter() - start
        loss, accuracy = model.evaluate(xt, one_hot(yt, 10), 1000)
        assert accuracy >= 0.85, (accuracy, loss)
        assert elapsed < 60, elapsed

    def test_argument_errors(self):
        x, y = np.zeros((10, 4)), np.eye(2)[[0, 1] * 5]
        with pytest.raises(ValueError, match="one-hot"):
            train_mnist_model(x, y[:5], x, y, verbose=False)
        with pytest.raises(ValueError, match="validation"):
            train_mnist_model(x, y, x[:, :3], y, verbose=False)

    @pytest.mark.parametrize("name, value, expected", [
        ("batch_size", 0, "an integer >= 1"), ("batch_size", 2.0, "an integer >= 1"),
        ("epochs", 1.5, "an integer >= 1"), ("epochs", 0, "an integer >= 1"),
        ("hidden", True, "an integer >= 1"), ("blas_threads", 0, "an integer >= 1"),
        ("lr", "0.1", r"a number in \(0\.0, inf\)"), ("lr", 0.0, r"a number in \(0\.0, inf\)"),
        ("lr", float("nan"), r"a number in \(0\.0, inf\)"),
        ("momentum", 1.0, r"a number in \[0\.0, 1\.0\)"),
    ])
    def test_numeric_argument_errors(self, name, value, expected):
        """Checked up front: the error names train_mnist_model, the argument, what was expected
        and what came (not a ZeroDivisionError or an internal function's message)."""
        x, y = np.zeros((10, 4)), np.eye(2)[[0, 1] * 5]
        with pytest.raises(ValueError, match=rf"^train_mnist_model: {name} must be {expected}, "
                                             rf"got {re.escape(repr(value))}$"):
            train_mnist_model(x, y, x, y, verbose=False, **{name: value})


# ---- the run.py-style runner ---------------------------------------------------------------

class TestRunner:
    def test_every_section_has_its_test_class(self):
        assert set(GROUPS) >= {"relu", "softmax", "dense", "crossentropy", "sgd", "momentum",
                               "mnist"}
        for cls in GROUPS.values():
            assert isinstance(globals().get(cls), type), cls
        names = list(GROUPS.values())
        assert not any(a != b and a.lower() in b.lower() for a in names for b in names)

    def test_unknown_section_and_usage(self, capsys):
        assert runner_main(["unittest", "conv2d"]) == 2
        err = capsys.readouterr().err
        assert "unknown section 'conv2d'" in err and "relu, softmax, dense" in err
        assert runner_main([]) == 2
        assert "usage" in capsys.readouterr().err

    def test_runs_a_section(self):
        out = subprocess.run([sys.executable, "-m", "pearlnet.compat.course", "unittest", "sgd",
                              "-q", "-p", "no:cacheprovider"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "passed" in out.stdout and "deselected" in out.stdout
