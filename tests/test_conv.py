"""Convolutions and pooling: the problem book's worked numbers (sheet 6), loop references,
parameter counts, derivatives by the complex step, curvature through a CNN, input validation,
and a short LeNet-5 training floor on Fashion-MNIST."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
import pearlnet.numpy as pnp
from pearlnet.check import check_grad, check_hvp, check_jvp
from pearlnet.models import lenet5

# ---- exercise 40: Masha's picture and kernel -------------------------------------------------
IMAGE = np.array([[3, 3, 2, 1, 0],
                  [0, 0, 1, 3, 1],
                  [3, 1, 2, 2, 3],
                  [3, 1, 2, 2, 3],
                  [3, 1, 2, 2, 3]], dtype=np.float64)[None, None]
KERNEL = np.array([[0, 1, 2],
                   [2, 2, 0],
                   [0, 1, 2]], dtype=np.float64)[None, None]

# No padding, stride 1: each entry is the sum of a 3x3 window times the kernel, e.g.
#   (0,0): 3*0 + 3*1 + 2*2 + 0*2 + 0*2 + 1*0 + 3*0 + 1*1 + 2*2 = 3 + 4 + 1 + 4      = 12
#   (0,1): 3*0 + 2*1 + 1*2 + 0*2 + 1*2 + 3*0 + 1*0 + 2*1 + 2*2 = 2 + 2 + 2 + 2 + 4  = 12
#   (0,2): 2*0 + 1*1 + 0*2 + 1*2 + 3*2 + 1*0 + 2*0 + 2*1 + 3*2 = 1 + 2 + 6 + 2 + 6  = 17
#   (1,0): 0*0 + 0*1 + 1*2 + 3*2 + 1*2 + 2*0 + 3*0 + 1*1 + 2*2 = 2 + 6 + 2 + 1 + 4  = 15
#   (1,1): 0*0 + 1*1 + 3*2 + 1*2 + 2*2 + 2*0 + 1*0 + 2*1 + 2*2 = 1 + 6 + 2 + 4 + 2 + 4 = 19
#   (1,2): 1*0 + 3*1 + 1*2 + 2*2 + 2*2 + 3*0 + 2*0 + 2*1 + 3*2 = 3 + 2 + 4 + 4 + 2 + 6 = 21
#   (2,0): 3*0 + 1*1 + 2*2 + 3*2 + 1*2 + 2*0 + 3*0 + 1*1 + 2*2 = 1 + 4 + 6 + 2 + 1 + 4 = 18
#   (2,1): 1*0 + 2*1 + 2*2 + 1*2 + 2*2 + 2*0 + 1*0 + 2*1 + 2*2 = 2 + 4 + 2 + 4 + 2 + 4 = 18
#   (2,2): 2*0 + 2*1 + 3*2 + 2*2 + 2*2 + 3*0 + 2*0 + 2*1 + 3*2 = 2 + 6 + 4 + 4 + 2 + 6 = 24
MAP = np.array([[12, 12, 17],
                [15, 19, 21],
                [18, 18, 24]], dtype=np.float64)


def test_exercise_40_convolution_without_padding():
    out = nn.conv2d(IMAGE, KERNEL)
    assert out.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(out[0, 0], MAP)


def test_exercise_40_pooling_of_the_map():
    m = MAP[None, None]
    # 2x2 windows two apart fit once in a 3x3 map (rounding down, as PyTorch): the top-left
    # window [[12, 12], [15, 19]] has max 19 and mean (12 + 12 + 15 + 19) / 4 = 14.5
    np.testing.assert_array_equal(nn.max_pool2d(m, 2), [[[[19.0]]]])
    np.testing.assert_array_equal(nn.avg_pool2d(m, 2), [[[[14.5]]]])
    # windows one apart: all four 2x2 windows
    np.testing.assert_array_equal(nn.max_pool2d(m, 2, stride=1)[0, 0], [[19, 21], [19, 24]])
    # means: (12+12+15+19)/4, (12+17+19+21)/4, (15+19+18+18)/4, (19+21+18+24)/4
    np.testing.assert_array_equal(nn.avg_pool2d(m, 2, stride=1)[0, 0],
                                  [[14.5, 17.25], [17.5, 20.5]])
    np.testing.assert_array_equal(nn.max_pool2d(m, (2, 2), (1, 1)),
                                  nn.max_pool2d(m, 2, stride=1))


def test_exercise_40_strides():
    # stride 2: the windows at rows/columns 0 and 2 of the map above
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, stride=2)[0, 0], [[12, 17], [18, 24]])
    # stride 3: (5 - 3) // 3 + 1 = 1 window per axis, the top-left one
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, stride=3)[0, 0], [[12]])
    # a stride per axis: rows 2 apart, columns 1 apart
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, stride=(2, 1))[0, 0], MAP[::2])


def test_exercise_40_zero_padding():
    # "zero padding with stride 0": a stride must be positive, so that is an error...
    with pytest.raises(ValueError, match="conv2d.*stride"):
        nn.conv2d(IMAGE, KERNEL, padding=1, stride=0)
    # ...and what is meant is one ring of zeros ("same"), stride 1: a 5x5 map whose inner 3x3
    # is MAP; a corner sees only a 2x2 part of the picture, e.g.
    #   (0,0): kernel[1:, 1:] . [[3, 3], [0, 0]] = 2*3 + 0*3 + 1*0 + 2*0 = 6
    #   (4,4): kernel[:2, :2] . [[2, 3], [2, 3]] = 0*2 + 1*3 + 2*2 + 2*3 = 13
    same = nn.conv2d(IMAGE, KERNEL, padding="same")[0, 0]
    assert same.shape == (5, 5)
    np.testing.assert_array_equal(same[1:4, 1:4], MAP)
    assert same[0, 0] == 6 and same[4, 4] == 13
    np.testing.assert_array_equal(same, nn.conv2d(IMAGE, KERNEL, padding=1)[0, 0])
    np.testing.assert_array_equal(same, nn.conv2d(IMAGE, KERNEL, padding=(1, 1))[0, 0])
    np.testing.assert_array_equal(same, _reference_conv(IMAGE, KERNEL, None, (1, 1),
                                                        ((1, 1), (1, 1)))[0, 0])
    # padding 1 and stride 2: every other entry of the "same" map
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, padding=1, stride=2)[0, 0],
                                  same[::2, ::2])
    # "same" with stride 2 keeps ceil(5 / 2) = 3 outputs per axis
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, padding="same", stride=2)[0, 0],
                                  same[::2, ::2])
    # padding only the rows: 5x3; "valid" is no padding
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, padding=(1, 0))[0, 0], same[:, 1:4])
    np.testing.assert_array_equal(nn.conv2d(IMAGE, KERNEL, padding="valid")[0, 0], MAP)


# ---- loop references -------------------------------------------------------------------------
def _reference_conv(x, w, b, stride, padding):
    (top, bottom), (left, right) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, h, wd = xp.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    out = np.zeros((n, o, oh, ow), dtype=np.result_type(x, w))
    for p in range(oh):
        for q in range(ow):
            win = xp[:, :, p * stride[0]:p * stride[0] + kh, q * stride[1]:q * stride[1] + kw]
            out[:, :, p, q] = np.einsum("ncij,ocij->no", win, w)
    return out if b is None else out + b[None, :, None, None]


def _reference_pool(x, size, stride, reduce):
    n, c, h, w = x.shape
    oh, ow = (h - size[0]) // stride[0] + 1, (w - size[1]) // stride[1] + 1
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for p in range(oh):
        for q in range(ow):
            win = x[:, :, p * stride[0]:p * stride[0] + size[0],
                    q * stride[1]:q * stride[1] + size[1]]
            out[:, :, p, q] = reduce(win, axis=(2, 3))
    return out


CONV_CASES = [  # x shape, w shape, stride, padding as given, padding resolved
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, ((0, 0), (0, 0))),
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 2), ((1, 1), (2, 2))),
    ((1, 2, 8, 9), (3, 2, 4, 4), 2, "same", ((1, 1), (1, 2))),
    ((2, 1, 6, 6), (2, 1, 4, 4), 1, "same", ((1, 2), (1, 2))),
    ((2, 2, 5, 7), (3, 2, 2, 3), 3, ((2, 0), (1, 3)), ((2, 0), (1, 3))),
    ((3, 2, 4, 4), (2, 2, 1, 1), 1, "valid", ((0, 0), (0, 0))),
]


@pytest.mark.parametrize("xs, ws, stride, padding, resolved", CONV_CASES)
def test_conv2d_matches_a_loop(xs, ws, stride, padding, resolved, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    s = (stride, stride) if isinstance(stride, int) else stride
    got = nn.conv2d(x, w, b, stride=stride, padding=padding)
    np.testing.assert_allclose(got, _reference_conv(x, w, b, s, resolved), rtol=1e-12,
                               atol=1e-12)
    f32 = nn.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), stride,
                    padding)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, got, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, size, stride", [
    ((2, 3, 6, 6), 2, None), ((2, 3, 7, 5), 2, None), ((1, 2, 7, 8), (3, 2), (2, 3)),
    ((2, 1, 5, 5), 3, 1), ((1, 2, 9, 4), (4, 1), (2, 1)), ((1, 1, 3, 3), 3, None)])
def test_pooling_matches_a_loop(shape, size, stride, rng):
    x = rng.standard_normal(shape)
    pair = (size, size) if isinstance(size, int) else size
    spair = pair if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    np.testing.assert_array_equal(nn.max_pool2d(x, size, stride),
                                  _reference_pool(x, pair, spair, np.max))
    np.testing.assert_allclose(nn.avg_pool2d(x, size, stride),
                               _reference_pool(x, pair, spair, np.mean), rtol=1e-14)
    assert nn.max_pool2d(x.astype(np.float32), size, stride).dtype == np.float32
    assert nn.avg_pool2d(x.astype(np.float32), size, stride).dtype == np.float32


def test_pooling_rounds_down_like_pytorch():
    x = np.zeros((1, 2, 7, 5))
    assert nn.max_pool2d(x, 2).shape == (1, 2, 3, 2)  # floor((7 - 2) / 2) + 1, floor(3/2) + 1
    assert nn.avg_pool2d(x, (3, 2), stride=(2, 2)).shape == (1, 2, 3, 2)
    layer = nn.MaxPool2D(2)
    layer.init(0, (2, 7, 5))
    assert layer.output_shape_ == (2, 3, 2)


def test_global_avg_pool2d(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    out = nn.global_avg_pool2d(x)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)), rtol=1e-14)
    layer = nn.GlobalAvgPool2D()
    layer.init(0, (4, 5, 6))
    assert layer.output_shape_ == (4,)
    np.testing.assert_allclose(layer(x), out, rtol=1e-15)


def test_im2col_col2im_are_transposes(rng):
    x = rng.standard_normal((2, 3, 6, 7))
    args = ((3, 2), (2, 1), ((1, 0), (2, 1)))
    cols = pnp.im2col(x, *args)
    assert cols.shape == (3, 3, 2, 3, 9, 2)
    u = rng.standard_normal(cols.shape)
    back = pnp.col2im(u, x.shape, *args)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * u), np.sum(x * back), rtol=1e-12)


# ---- parameter counts (exercise 44, 46) ------------------------------------------------------
def test_parameter_count_dense_784_1000_10():
    model = pearlnet.Model([nn.Flatten(input_shape=(28, 28)), nn.Dense(1000), nn.Dense(10)])
    model.build_model()
    assert model.count_params() == 784 * 1000 + 1000 + 1000 * 10 + 10 == 795_010


def test_parameter_count_exercise_lenet_without_padding():
    model = lenet5(padding=0)
    # 6(25 + 1) + 16(6 * 25 + 1) + (16 * 4 * 4 + 1) 120 + (120 + 1) 84 + (84 + 1) 10
    assert model.count_params() == 156 + 2416 + 30840 + 10164 + 850 == 44_426
    shapes = [layer.output_shape_ for layer in model.layers]
    assert shapes == [(6, 24, 24), (6, 12, 12), (16, 8, 8), (16, 4, 4), (256,), (120,), (84,),
                      (10,)]


def test_parameter_count_lenet5():
    model = lenet5()
    # the padded first convolution keeps 28x28, so the flattened map is 16 * 5 * 5 = 400
    assert model.count_params() == 156 + 2416 + 48120 + 10164 + 850 == 61_706
    shapes = [layer.output_shape_ for layer in model.layers]
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,),
                      (10,)]
    assert lenet5(mean=33.0, std=76.0).count_params() == 61_706  # Standardize has none


def test_parameter_count_same_padding_stride_2():
    # exercise 44 d: zero padding and stride 2 in both convolutions: 28 -> 14 -> 7 -> 4 -> 2
    model = pearlnet.Model([
        nn.Conv2D(6, 5, stride=2, padding="same", activation="relu", input_shape=(1, 28, 28)),
        nn.MaxPool2D(2), nn.Conv2D(16, 5, stride=2, padding="same", activation="relu"),
        nn.MaxPool2D(2), nn.Flatten(), nn.Dense(120), nn.Dense(84), nn.Dense(10)])
    model.build_model()
    assert [layer.output_shape_ for layer in model.layers][:5] == [
        (6, 14, 14), (6, 7, 7), (16, 4, 4), (16, 2, 2), (64,)]
    assert model.count_params() == 156 + 2416 + (64 + 1) * 120 + 10164 + 850


@pytest.mark.parametrize("c_in, c_out, k", [(1, 6, 5), (3, 8, (3, 2)), (16, 4, 1)])
def test_conv_layer_parameter_formula(c_in, c_out, k):
    layer = nn.Conv2D(c_out, k, input_shape=(c_in, 9, 9))
    layer.init(0)
    kh, kw = (k, k) if isinstance(k, int) else k
    assert layer.count_params() == c_in * kh * kw * c_out + c_out  # exercise 46 a
    assert nn.Conv2D(c_out, k, use_bias=False).init(0, (c_in, 9, 9))["W"].size == \
        c_in * kh * kw * c_out


# ---- derivatives by the complex step ----------------------------------------------------------
@pytest.mark.parametrize("xs, ws, stride, padding, resolved", CONV_CASES[:5])
def test_conv2d_gradients_complex_step(xs, ws, stride, padding, resolved, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    out_shape = nn.conv2d(x, w, b, stride, padding).shape
    u, u2 = rng.standard_normal(out_shape), rng.standard_normal(out_shape)

    def loss(x, w, b):
        y = nn.conv2d(x, w, b, stride, padding)
        return pnp.sum(u * y) + 0.5 * pnp.sum(u2 * y * y)

    check_grad(lambda a: loss(a, w, b), x)
    check_grad(lambda a: loss(x, a, b), w)
    check_grad(lambda a: loss(x, w, a), b)
    check_hvp(lambda t: loss(*t), (x, w, b), rtol=1e-9)
    check_jvp(lambda t: nn.conv2d(*t, stride=stride, padding=padding), (x, w, b))


def _distinct(rng, shape):
    """Entries pairwise at least 0.05 apart: no ties in any pooling window."""
    n = math.prod(shape)
    return (rng.permutation(n) * 0.05 - 0.025 * n + rng.uniform(0, 0.01, n)).reshape(shape)


@pytest.mark.parametrize("size, stride", [(2, None), (3, 1), ((2, 3), (1, 2)), (2, 3)])
def test_pooling_gradients_complex_step(size, stride, rng):
    x = _distinct(rng, (2, 3, 7, 8))
    out_shape = nn.max_pool2d(x, size, stride).shape
    u, u2 = rng.standard_normal(out_shape), rng.standard_normal(out_shape)
    for fn in (nn.max_pool2d, nn.avg_pool2d):
        def loss(a, fn=fn):
            y = fn(a, size, stride)
            return pnp.sum(u * y) + 0.5 * pnp.sum(u2 * y ** 3)

        check_grad(loss, x)
        check_hvp(loss, x, rtol=1e-9)
        check_jvp(lambda a, fn=fn: fn(a, size, stride), x)
    check_grad(lambda a: pnp.sum(nn.global_avg_pool2d(a) ** 2), x)


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = np.array([[1.0, 3.0, 0.0, 0.0],
                  [3.0, 2.0, 0.0, 0.0]])[None, None]
    g = pearlnet.grad(lambda a: pnp.sum(nn.max_pool2d(a, 2)))(x)
    np.testing.assert_array_equal(g[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0]])
    # the forward mode routes the same way, so hvp is consistent with it
    _, t = pearlnet.jvp(lambda a: nn.max_pool2d(a, 2), (x,), (np.arange(8.0).reshape(x.shape),))
    np.testing.assert_array_equal(t[0, 0], [[1.0, 2.0]])
    # overlapping windows: an entry that wins two windows collects both cotangents
    y = np.array([[0.0, 5.0, 0.0], [1.0, 2.0, 1.0]])[None, None]
    g = pearlnet.grad(lambda a: pnp.sum(nn.max_pool2d(a, 2, stride=1)))(y)
    np.testing.assert_array_equal(g[0, 0], [[0, 2, 0], [0, 0, 0]])


def test_complex_inputs_decide_on_the_real_part():
    x = np.array([[1.0 + 5j, 2.0 - 1j], [0.5 + 9j, -1.0]])[None, None]
    np.testing.assert_array_equal(nn.max_pool2d(x, 2), [[[[2.0 - 1j]]]])
    out = nn.conv2d(x, np.ones((1, 1, 2, 2), complex))
    assert out.dtype == np.complex128 and out[0, 0, 0, 0] == np.sum(x)


def _small_cnn(dtype=np.float64):
    model = pearlnet.Model([
        nn.Conv2D(3, 3, padding=1, activation="tanh", input_shape=(2, 6, 6), dtype=dtype),
        nn.MaxPool2D(2),
        nn.Conv2D(4, (2, 3), stride=(1, 2), padding="same", activation="softplus", dtype=dtype),
        nn.AvgPool2D(2, stride=1),
        nn.Flatten(),
        nn.Dense(3, dtype=dtype)])
    model.build_model(seed=3)
    return model


def test_layers_gradients_complex_step(rng):
    model = _small_cnn()
    x = rng.standard_normal((4, 2, 6, 6))
    y = np.array([0, 2, 1, 2])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")

    def loss(params, x=x):
        return model.objective(params, x, y, training=False)[0]

    check_grad(loss, model.params)
    check_grad(lambda a: loss(model.params, a), x)
    # GlobalAvgPool2D and a ReLU conv layer, at a point away from the kinks
    net = nn.Sequential([nn.Conv2D(3, 2, activation="relu", dtype=np.float64),
                         nn.GlobalAvgPool2D()])
    params = net.init(1, (2, 5, 5))
    w = rng.standard_normal((4, 3))
    check_grad(lambda p: pnp.sum(w * net.apply(p, x[:, :, :5, :5]) ** 2), params)


def test_hvp_through_a_small_cnn_matches_gradient_differences(rng):
    model = _small_cnn()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    x = rng.standard_normal((4, 2, 6, 6))
    y = np.array([0, 2, 1, 2])

    def loss(params):
        return model.objective(params, x, y, training=False)[0]

    flat, unravel = pearlnet.ravel(model.params)
    v = rng.standard_normal(flat.shape)
    hv = pearlnet.ravel(pearlnet.hvp(loss, model.params, unravel(v)))[0]
    eps = 1e-5
    g = pearlnet.grad(loss)
    diff = (pearlnet.ravel(g(unravel(flat + eps * v)))[0]
            - pearlnet.ravel(g(unravel(flat - eps * v)))[0]) / (2 * eps)
    np.testing.assert_allclose(hv, diff, rtol=1e-6, atol=1e-8 * np.abs(hv).max())
    check_hvp(loss, model.params, method="complex", rtol=1e-9)
    # the Gauss-Newton product is symmetric positive semi-definite
    net = lambda p: model.apply(p, x)  # noqa: E731
    ce = lambda out: nn.losses.categorical_crossentropy(y, out, from_logits=True)  # noqa: E731
    u = rng.standard_normal(flat.shape)
    gv = pearlnet.ravel(pearlnet.gauss_newton_vp(net, ce, model.params, unravel(v)))[0]
    gu = pearlnet.ravel(pearlnet.gauss_newton_vp(net, ce, model.params, unravel(u)))[0]
    assert np.isclose(u @ gv, v @ gu, rtol=1e-10) and v @ gv >= 0


def test_float32_in_float32_out(rng):
    model = _small_cnn(np.float32)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    assert model.apply(model.params, x).dtype == np.float32

    def loss(params):
        return model.objective(params, x, y, training=False)[0]

    for leaf in pearlnet.tree_flatten(pearlnet.grad(loss)(model.params))[0]:
        assert leaf.dtype == np.float32
    hv = pearlnet.hvp(loss, model.params, model.params)
    for leaf in pearlnet.tree_flatten(hv)[0]:
        assert leaf.dtype == np.float32


# ---- layers: configuration, validation -------------------------------------------------------
def test_layer_config_round_trip():
    layer = nn.Conv2D(8, (3, 2), stride=(2, 1), padding="same", activation="relu")
    again = nn.Conv2D(**layer.get_config())
    assert again.get_config() == layer.get_config()
    pool = nn.MaxPool2D((2, 3), stride=1)
    assert nn.MaxPool2D(**pool.get_config()).get_config() == pool.get_config()
    assert "Conv2D" in repr(layer)


@pytest.mark.parametrize("call, pattern", [
    (lambda: nn.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 5, 5))),
     r"conv2d: kernel \(5, 5\) is larger than the padded input \(3, 3\)"),
    (lambda: nn.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 5, 5)), padding=(1, 0)),
     r"conv2d: kernel \(5, 5\) is larger than the padded input \(5, 3\)"),
    (lambda: nn.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((1, 3, 3, 3))),
     r"conv2d: the kernel expects 3 input channels.*\(1, 2, 5, 5\)"),
    (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=-1),
     "conv2d: stride must be positive"),
    (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding="full"),
     "conv2d: padding must be"),
    (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=-1),
     "conv2d: padding must be non-negative"),
    (lambda: nn.conv2d(np.zeros((1, 5, 5)), np.zeros((1, 1, 3, 3))),
     r"conv2d: expected inputs of shape \(batch, channels, height, width\)"),
    (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), np.zeros(2)),
     r"conv2d: expected a bias of shape \(1,\)"),
    (lambda: nn.max_pool2d(np.zeros((1, 1, 3, 3)), 4), r"max_pool2d: kernel \(4, 4\) is larger"),
    (lambda: nn.avg_pool2d(np.zeros((1, 1, 3, 3)), 2, stride=0),
     "avg_pool2d: stride must be positive"),
    (lambda: nn.max_pool2d(np.zeros((1, 1, 3, 3)), 0), "max_pool2d: pool size must be positive"),
])
def test_function_errors_name_the_function_and_shapes(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("call, pattern", [
    (lambda: nn.conv2d(np.zeros((1, 1, 5, 5)), np.ones((1, 1, 2, 2)), stride=(1.5, 1.5)),
     r"conv2d: stride must be an int or a pair of ints, got \(1.5, 1.5\)"),
    (lambda: nn.max_pool2d(np.zeros((1, 1, 5, 5)), (2.9, 2.9)),
     r"max_pool2d: pool size must be an int or a pair of ints, got \(2.9, 2.9\)"),
    (lambda: nn.Conv2D(1, (2.7, 2.7)), r"Conv2D: kernel size must be .*, got \(2.7, 2.7\)"),
    (lambda: nn.Conv2D(1, "33"), "Conv2D: kernel size must be an int or a pair of ints, got '33'"),
    (lambda: nn.Conv2D(1, 3, stride=2.0), "Conv2D: stride must be .*, got 2.0"),
    (lambda: nn.AvgPool2D(True), "AvgPool2D: pool size must be .*, got True"),
    (lambda: nn.Conv2D(1, 3, padding=((1.5, 1), (0, 0))), r"Conv2D: padding must be an int, a "
                                                         r"pair or a pair of pairs, got"),
    (lambda: pnp.im2col(np.zeros((1, 1, 4, 4)), (2.0, 2), 1),
     r"im2col: kernel must be an int or a pair of ints, got \(2.0, 2\)"),
])
def test_non_integer_sizes_are_refused_not_truncated(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_numpy_integer_sizes_are_accepted(rng):
    x = rng.standard_normal((2, 3, 7, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    expected = nn.conv2d(x, w, stride=(2, 1), padding=((1, 0), 2))
    got = nn.conv2d(x, w, stride=(np.int64(2), np.int32(1)),
                    padding=((np.int8(1), np.uint8(0)), np.int16(2)))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(nn.max_pool2d(x, np.array([2, 3])), nn.max_pool2d(x, (2, 3)))
    layer = nn.Conv2D(np.int64(2), np.array([3, 2]), stride=np.int64(2))
    assert (layer.kernel_size, layer.stride) == ((3, 2), (2, 2))
    assert all(type(v) is int for v in (*layer.kernel_size, *layer.stride))


def test_layer_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Conv2D 'big': kernel \(7, 7\) is larger than the "
                                         r"padded input \(6, 6\) \(input shape \(1, 4, 4\)"):
        nn.Conv2D(2, 7, padding=1, name="big").init(0, (1, 4, 4))
    with pytest.raises(ValueError, match="Conv2D: stride must be positive"):
        nn.Conv2D(2, 3, stride=0)
    with pytest.raises(ValueError, match="MaxPool2D: stride must be positive"):
        nn.MaxPool2D(2, stride=(1, 0))
    with pytest.raises(ValueError, match=r"MaxPool2D 'pool': kernel \(3, 3\) is larger"):
        nn.MaxPool2D(3, name="pool").init(0, (4, 2, 2))
    layer = nn.Conv2D(2, 3, name="c1")
    layer.init(0, (3, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2D 'c1': the kernel expects 3 input channels.*"
                                         r"\(5, 1, 8, 8\)"):
        layer(np.zeros((5, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="Conv2D 'c1'.*channels, height, width"):
        layer.init(0, (8, 8))
    # the model is built as soon as its input shape is known, so the error comes at once
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d': kernel \(3, 3\) is larger than the "
                                         r"padded input \(2, 8\)"):
        pearlnet.Model([nn.Conv2D(2, 3, input_shape=(1, 2, 8)), nn.Flatten()])


def test_lenet5_arguments():
    with pytest.raises(ValueError, match="lenet5: input_shape"):
        lenet5(input_shape=(28, 28))
    with pytest.raises(ValueError, match="lenet5: give both mean and std"):
        lenet5(mean=0.5)
    model = lenet5(input_shape=(3, 32, 32), num_classes=4)
    assert model.output_shape_ == (4,)
    assert model.count_params() == 6 * 76 + 2416 + (16 * 6 * 6 + 1) * 120 + 10164 + 85 * 4


# ---- training: a short floor on Fashion-MNIST (the full recipe is in the report) -------------
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_lenet5_learns_fashion_mnist_quickly():
    from pearlnet.data import load_fashion_mnist

    (x, y), (xt, yt) = load_fashion_mnist(root=FASHION, download=False)
    x, y = x[:3000, None], y[:3000]
    xt, yt = xt[:1000, None], yt[:1000]
    pixels = x.astype(np.float64)
    model = lenet5(mean=float(pixels.mean()), std=float(pixels.std()), seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=pearlnet.optim.Adam(2e-3),
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, seed=0)
    seconds = time.perf_counter() - t0
    accuracy = model.evaluate(xt, yt)["accuracy"]
    assert accuracy >= 0.75, accuracy
    assert seconds < 30
