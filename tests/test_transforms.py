"""The public transforms on worked examples, networks, trees, nesting, depth and bad input."""

import numpy as np
import pytest

import pearlnet
import pearlnet.numpy as pnp
from pearlnet import gauss_newton_vp, grad, hessian, hvp, jacobian, jvp, ravel, value_and_grad, vjp
from pearlnet.check import check_grad, check_hvp, check_jvp


# ---- worked examples -------------------------------------------------------------------------
def test_lecture_graph_example_is_exact():
    # lecture slides (seed 004): y = (a + 2b)(2b + c) at a=1, b=2, c=3:
    # dy/da = 2b + c = 7, dy/db = 2(2b + c) + 2(a + 2b) = 14 + 10 = 24, dy/dc = a + 2b = 5
    def y(a, b, c):
        return (a + 2 * b) * (2 * b + c)

    da, db, dc = grad(y, argnums=(0, 1, 2))(1.0, 2.0, 3.0)
    assert (da, db, dc) == (7.0, 24.0, 5.0)


def test_vanishing_gradient_example_matches_the_closed_form():
    # y = s(s(a + b) + s(b c)) at a=9, b=1, c=100 (seed 004): the saturated sigmoids make every
    # partial derivative tiny. With u = s(a + b), v = s(b c), s' = s (1 - s):
    #   dy/da = s'(u + v) s'(a + b),  dy/db = s'(u + v) (s'(a + b) + c s'(b c)),
    #   dy/dc = s'(u + v) b s'(b c)
    def s(z):
        return 1 / (1 + np.exp(-z))

    def ds(z):
        return s(z) * (1 - s(z))

    a, b, c = 9.0, 1.0, 100.0
    outer = ds(s(a + b) + s(b * c))
    expected = (outer * ds(a + b), outer * (ds(a + b) + c * ds(b * c)), outer * b * ds(b * c))

    def y(a, b, c):
        return pnp.sigmoid(pnp.sigmoid(a + b) + pnp.sigmoid(b * c))

    got = grad(y, argnums=(0, 1, 2))(a, b, c)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, rel=1e-12)
        assert abs(g) < 1e-5  # vanishing: the signal barely reaches the inputs
    assert got[2] < 1e-40  # through s(bc) = s(100) it is gone altogether


# ---- a multilayer tanh network ---------------------------------------------------------------
def init_mlp(rng, sizes, dtype=np.float64):
    return [{"W": (rng.standard_normal((m, n)) / np.sqrt(m)).astype(dtype),
             "b": (0.1 * rng.standard_normal(n)).astype(dtype)}
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp(params, x):
    h = x
    for i, layer in enumerate(params):
        h = h @ layer["W"] + layer["b"]
        if i < len(params) - 1:
            h = pnp.tanh(h)
    return h


def squared_error(z, x):
    """(1/n) sum_i 0.5 ||x_i - z_i||^2 (the autoencoder assignment's loss)."""
    return 0.5 * pnp.sum((z - x) ** 2) / x.shape[0]


def flat_net_and_loss(params, x):
    """(flat parameters, net(w), loss(z)): the mlp as a function of one parameter vector and
    the squared error against x, the (net, loss) pair gauss_newton_vp takes."""
    flat, unravel = ravel(params)

    def net(w):
        return mlp(unravel(w), x)

    def loss(z):
        return squared_error(z, x)

    return flat, net, loss


@pytest.fixture
def small_net(rng):
    params = init_mlp(rng, [3, 4, 3])
    x = rng.standard_normal((5, 3))
    return params, x


def test_network_gradient_hvp_and_gn_agree_with_dense_matrices(small_net, rng):
    params, x = small_net
    flat, unravel = ravel(params)

    def loss_flat(w):
        return squared_error(mlp(unravel(w), x), x)

    def net_flat(w):
        return mlp(unravel(w), x)

    v = rng.standard_normal(flat.shape)
    H = hessian(loss_flat)(flat)
    J = jacobian(net_flat)(flat).reshape(-1, flat.size)  # (n*d, M)
    G = J.T @ J / x.shape[0]  # H_loss = I / n for the mean squared error
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)

    g_tree = grad(lambda p: squared_error(mlp(p, x), x))(params)
    np.testing.assert_allclose(ravel(g_tree)[0], grad(loss_flat)(flat), rtol=1e-13)
    hv = hvp(loss_flat, flat, v)
    np.testing.assert_allclose(hv, H @ v, rtol=1e-11, atol=1e-13)
    gn = gauss_newton_vp(net_flat, lambda z: squared_error(z, x), flat, v)
    np.testing.assert_allclose(gn, G @ v, rtol=1e-11, atol=1e-13)
    # trees in, trees out: the same product on the parameter tree
    gn_tree = gauss_newton_vp(lambda p: mlp(p, x), lambda z: squared_error(z, x), params,
                              unravel(v))
    np.testing.assert_allclose(ravel(gn_tree)[0], G @ v, rtol=1e-11, atol=1e-13)
    # and the Gauss-Newton matrix is positive semi-definite, the Hessian here is not
    assert np.linalg.eigvalsh(G).min() > -1e-12


def test_gauss_newton_equals_hessian_for_a_one_layer_linear_net(rng):
    # seed 000, section 1.4: a linear one-layer net is linear in its parameters, so the second
    # term of the Hessian vanishes and the Gauss-Newton matrix is the Hessian
    params = init_mlp(rng, [4, 4])
    x = rng.standard_normal((6, 4))
    flat, net, loss = flat_net_and_loss(params, x)
    H = hessian(lambda w: loss(net(w)))(flat)
    for _ in range(3):
        v = rng.standard_normal(flat.shape)
        np.testing.assert_allclose(gauss_newton_vp(net, loss, flat, v), H @ v,
                                   rtol=1e-12, atol=1e-13)


def test_gauss_newton_with_a_non_identity_loss_hessian(rng):
    # softmax cross-entropy: H_loss = diag(p) - p p^T per object
    params = init_mlp(rng, [3, 5, 4])
    x = rng.standard_normal((6, 3))
    labels = np.array([0, 1, 2, 3, 1, 0])
    flat, unravel = ravel(params)

    def net(w):
        return mlp(unravel(w), x)

    def xent(z):
        return pnp.mean(pnp.logsumexp(z, axis=1) - z[np.arange(6), labels])

    J = jacobian(net)(flat)  # (6, 4, M)
    z = np.asarray(net(flat))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    G = sum(J[i].T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ J[i] for i in range(6)) / 6
    v = rng.standard_normal(flat.shape)
    np.testing.assert_allclose(gauss_newton_vp(net, xent, flat, v), G @ v, rtol=1e-11,
                               atol=1e-13)


def test_operators_reuse_one_recording_and_match_the_dense_matrices(small_net, rng):
    # linearize / hvp_operator / gauss_newton_operator record f once; every product walks the
    # tape with the stored values, so many products (conjugate gradient) agree with the
    # one-shot transforms and with the dense H and J^T H_L J
    params, x = small_net
    flat, net, loss = flat_net_and_loss(params, x)
    H = hessian(lambda w: loss(net(w)))(flat)
    J = jacobian(net)(flat).reshape(-1, flat.size)
    G = J.T @ J / x.shape[0]
    hess, gn = pearlnet.hvp_operator(lambda w: loss(net(w)), flat), \
        pearlnet.gauss_newton_operator(net, loss, flat)
    out, net_jvp = pearlnet.linearize(net, flat)
    np.testing.assert_array_equal(out, net(flat))
    for _ in range(3):
        v = rng.standard_normal(flat.shape)
        np.testing.assert_allclose(hess(v), H @ v, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(hess(v), hvp(lambda w: loss(net(w)), flat, v), rtol=1e-13)
        np.testing.assert_allclose(gn(v), G @ v, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(net_jvp(v).ravel(), J @ v, rtol=1e-11, atol=1e-13)
    # trees in and out, several primals, constant outputs
    out, f_jvp = pearlnet.linearize(lambda p, s: (mlp(p, x) * s, 2.0), params, np.float64(3.0))
    t = ravel(params)[1](rng.standard_normal(flat.shape))
    got, zero = f_jvp(t, np.float64(0.5))
    want = jvp(lambda p, s: mlp(p, x) * s, (params, np.float64(3.0)), (t, np.float64(0.5)))[1]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert zero == 0
    with pytest.raises(ValueError, match="linearize: tangent 0 has shape"):
        net_jvp(np.zeros(flat.size + 1))
    with pytest.raises(ValueError, match="linearize: 2 tangents for 1 primals"):
        net_jvp(flat, flat)


def test_hvp_skips_the_products_that_only_the_primal_gradient_needs(monkeypatch, rng):
    # forward mode leaves a matmul's output pending (its forward rules never read it); hvp
    # returns tangents only, so x^T g of the primal gradient is never computed, while jvp,
    # which returns the primal too, computes it
    from pearlnet.numpy import linalg

    calls = []
    impl = linalg.matmul.impl
    monkeypatch.setattr(linalg.matmul, "impl", lambda *a, **k: calls.append(1) or impl(*a, **k))
    x, w, v = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def f(w):
        return pnp.sum(pnp.tanh(x @ w))

    hv = hvp(f, w, v)
    n_hvp = len(calls)
    calls.clear()
    g, hv2 = jvp(grad(f), (w,), (v,))
    assert len(calls) == n_hvp + 1
    np.testing.assert_allclose(hv, hv2, rtol=1e-14)
    np.testing.assert_allclose(g, grad(f)(w), rtol=1e-14)
    # a pending value reads like any other: shape and dtype without computing, value on demand
    _, t = jvp(lambda w: (x @ w).shape[1] * pnp.sum((x @ w).astype(np.float32)), (w,), (v,))
    assert t.dtype == np.float32 and t == pytest.approx(4 * np.sum(x @ v), rel=1e-5)


def test_operators_take_the_complex_step(small_net, rng):
    # the operator's H v against the complex step on the gradient, Im grad f(x + ihv)/h
    params, x = small_net
    flat, unravel = ravel(params)
    f = lambda w: squared_error(mlp(unravel(w), x), x)  # noqa: E731
    v = rng.standard_normal(flat.shape)
    hv = pearlnet.hvp_operator(f, flat)(v)
    h = 1e-20
    step = np.imag(grad(f)(flat + 1j * h * v)) / h
    np.testing.assert_allclose(hv, step, rtol=1e-10, atol=1e-13)


def test_network_derivatives_pass_the_numerical_checks(small_net):
    params, x = small_net

    def loss(p):
        return squared_error(mlp(p, x), x)

    for method in ("complex", "central", "forward"):
        check_grad(loss, params, method=method)
    check_hvp(loss, params, method="complex")
    check_hvp(loss, params, method="central")
    check_jvp(lambda p: mlp(p, x), params, method="complex")


# ---- transforms' interfaces ------------------------------------------------------------------
def test_value_and_grad_and_argnums(rng):
    x, y = rng.standard_normal(3), rng.standard_normal(3)

    def f(x, y):
        return pnp.sum(x * pnp.exp(y))

    value, g = value_and_grad(f)(x, y)
    assert value == pytest.approx(np.sum(x * np.exp(y)))
    np.testing.assert_allclose(g, np.exp(y))
    gx, gy = grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gy, x * np.exp(y))
    np.testing.assert_allclose(grad(f, argnums=-1)(x, y), x * np.exp(y))


def test_has_aux(rng):
    x = rng.standard_normal(3)
    g, aux = grad(lambda x: (pnp.sum(x ** 2), {"mean": pnp.mean(x)}), has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * x)
    assert aux["mean"] == pytest.approx(x.mean())
    assert not isinstance(aux["mean"], pearlnet.autodiff.Tracer)


def test_vjp_with_tree_output_and_repeated_pullbacks(rng):
    x = rng.standard_normal(3)
    out, pullback = vjp(lambda x: {"a": pnp.sin(x), "b": pnp.sum(x ** 2)}, x)
    np.testing.assert_allclose(out["a"], np.sin(x))
    (ga,) = pullback({"a": np.ones(3), "b": np.zeros(())})
    np.testing.assert_allclose(ga, np.cos(x))
    (gb,) = pullback({"a": np.zeros(3), "b": np.ones(())})
    np.testing.assert_allclose(gb, 2 * x)


def test_jvp_on_trees_and_constant_outputs(rng):
    p = {"w": rng.standard_normal(3), "s": np.array(2.0)}
    t = {"w": rng.standard_normal(3), "s": np.array(0.5)}
    out, tan = jvp(lambda p: (p["s"] * p["w"], np.ones(2)), (p,), (t,))
    np.testing.assert_allclose(tan[0], t["s"] * p["w"] + p["s"] * t["w"])
    np.testing.assert_array_equal(tan[1], np.zeros(2))


def test_jacobian_and_hessian_shapes_follow_jax(rng):
    x = rng.standard_normal((2, 3))
    J = jacobian(lambda x: pnp.tanh(x)[0])(x)
    assert J.shape == (3, 2, 3)
    H = hessian(lambda x: pnp.sum(pnp.tanh(x) ** 3))(x)
    assert H.shape == (2, 3, 2, 3)
    t = np.tanh(x)
    d2 = (6 * t * (1 - t ** 2) ** 2 - 6 * t ** 3 * (1 - t ** 2)).ravel()
    np.testing.assert_allclose(H.reshape(6, 6), np.diag(d2), atol=1e-13)


def test_ravel_round_trip_keeps_shapes_dtypes_and_order(rng):
    tree = {"layer1": {"W": rng.standard_normal((2, 3)).astype(np.float32),
                       "b": np.zeros(3, np.float32)},
            "layer0": [np.arange(2.0), (np.ones((1, 1)),)]}
    flat, unravel = ravel(tree)
    assert flat.shape == (6 + 3 + 2 + 1,)
    assert flat.dtype == np.float64  # the common dtype
    np.testing.assert_array_equal(flat[:6], tree["layer1"]["W"].ravel())  # insertion order
    back = unravel(flat)
    assert back["layer1"]["W"].dtype == np.float32
    assert isinstance(back["layer0"], list) and isinstance(back["layer0"][1], tuple)
    np.testing.assert_array_equal(back["layer1"]["W"], tree["layer1"]["W"])
    # a complex vector is not truncated back to the leaves' real dtypes
    assert unravel(flat + 1e-20j)["layer1"]["b"].dtype == np.complex128
    with pytest.raises(ValueError, match=r"unravel: expected a vector of shape \(12,\)"):
        unravel(np.zeros(11))


# ---- nesting ---------------------------------------------------------------------------------
def test_derivatives_nest_to_any_order():
    x = np.array(0.4)
    f = pnp.tanh
    t = np.tanh(0.4)
    d1 = 1 - t ** 2
    d2 = -2 * t * d1
    d3 = -2 * d1 ** 2 + 4 * t ** 2 * d1
    assert grad(f)(x) == pytest.approx(d1, rel=1e-14)
    assert grad(grad(f))(x) == pytest.approx(d2, rel=1e-14)
    assert grad(grad(grad(f)))(x) == pytest.approx(d3, rel=1e-13)
    assert jvp(grad(f), (x,), (np.array(1.0),))[1] == pytest.approx(d2, rel=1e-14)
    # grad of jvp (reverse over forward)
    assert grad(lambda x: jvp(f, (x,), (np.array(1.0),))[1])(x) == pytest.approx(d2, rel=1e-14)
    assert jvp(lambda x: jvp(grad(f), (x,), (np.array(1.0),))[1], (x,),
               (np.array(1.0),))[1] == pytest.approx(d3, rel=1e-13)


def test_closed_over_outer_variables_do_not_confuse_levels():
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x
    def f(x):
        return x * grad(lambda y: x * y)(np.array(1.0))

    assert grad(f)(np.array(3.0)) == pytest.approx(6.0)


def test_hvp_complex_step_through_grad():
    # grad works on complex input with the holomorphic convention, so Im grad(x + ih v)/h = H v
    def f(x):
        return pnp.sum(pnp.sin(x) * x ** 2)

    x = np.array([0.3, -1.1, 2.0])
    v = np.array([1.0, 0.5, -2.0])
    h = 1e-20
    cs = np.imag(grad(f)(x + 1j * h * v)) / h
    np.testing.assert_allclose(hvp(f, x, v), cs, rtol=1e-14)


# ---- depth -----------------------------------------------------------------------------------
def test_a_chain_of_20000_ops_differentiates_in_reverse_and_forward_over_reverse():
    def f(x):
        y = x
        for _ in range(10_000):
            y = pnp.tanh(y) * 1.0001 + 0.0001
        return pnp.sum(y)

    x = np.array([0.05])
    g = grad(f)(x)
    assert np.isfinite(g).all() and 0 < g[0] < 1
    h = hvp(f, x, np.ones(1))
    assert np.isfinite(h).all()
    # checked against the complex step through the whole chain
    assert g[0] == pytest.approx(np.imag(f(x + 1e-20j)) / 1e-20, rel=1e-10)


# ---- dtypes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_dtypes_flow_through_unchanged(small_net, dtype):
    params, x = small_net
    params = pearlnet.tree_map(lambda a: a.astype(dtype), params)
    x = x.astype(dtype)
    loss = lambda p: squared_error(mlp(p, x), x)  # noqa: E731
    assert np.asarray(loss(params)).dtype == dtype
    for leaf in pearlnet.tree_flatten(grad(loss)(params))[0]:
        assert leaf.dtype == dtype
    for leaf in pearlnet.tree_flatten(hvp(loss, params, params))[0]:
        assert leaf.dtype == dtype
    gn = gauss_newton_vp(lambda p: mlp(p, x), lambda z: squared_error(z, x), params, params)
    for leaf in pearlnet.tree_flatten(gn)[0]:
        assert leaf.dtype == dtype


# ---- bad input -------------------------------------------------------------------------------
def test_integer_arguments_are_refused():
    with pytest.raises(TypeError, match="grad: cannot differentiate .* dtype int64"):
        grad(lambda x: pnp.sum(x * 1.0))(np.arange(3))
    with pytest.raises(TypeError, match="jvp: cannot differentiate"):
        jvp(pnp.sin, (np.arange(3),), (np.ones(3),))


def test_tangent_shape_must_match_its_primal():
    with pytest.raises(ValueError, match=r"jvp: tangent 0 has shape \(2,\), its primal \(3,\)"):
        jvp(pnp.sin, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="hvp|jvp"):
        hvp(lambda x: pnp.sum(x ** 2), np.ones(3), np.ones(4))


def test_grad_of_a_non_scalar_is_refused():
    with pytest.raises(ValueError, match=r"grad: f must return a scalar .* shape \(3,\)"):
        grad(pnp.sin)(np.ones(3))


def test_pullback_checks_its_cotangent():
    _, pullback = vjp(pnp.sin, np.ones(3))
    with pytest.raises(ValueError, match=r"cotangent of shape \(2,\)"):
        pullback(np.ones(2))


def test_numpy_functions_on_traced_values_dispatch_or_refuse():
    # np.exp on a tracer is pnp.exp, so plain NumPy code differentiates where pnp has the op
    assert grad(lambda x: np.sum(np.exp(x)))(np.array(0.0)) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="no differentiable version"):
        grad(lambda x: np.sum(np.fft.fft(x)).real)(np.ones(2))


def test_traced_arrays_have_numpys_attributes():
    """NumPy code that reads .real, .imag, .argmax(), .round(), .copy(), .nbytes runs traced,
    derivatives included, as it runs on arrays (grad, hvp and jit alike)."""
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    rows = np.arange(2)

    def f(a):
        b = a.copy() * 2.0
        spread = b[rows, b.argmax(axis=1)] - b[rows, b.argmin(axis=1)]
        assert a.nbytes == x.nbytes and a.itemsize == 8
        return pnp.sum(b.real ** 2) + pnp.sum(b.imag) + pnp.sum(spread * a.round()[:, 0])

    expected = 8 * x  # d/da sum (2a)^2; round() is piecewise constant
    expected[rows, x.argmax(axis=1)] += 2 * x.round()[:, 0]
    expected[rows, x.argmin(axis=1)] -= 2 * x.round()[:, 0]
    np.testing.assert_allclose(grad(f)(x), expected, rtol=1e-15)
    np.testing.assert_allclose(pearlnet.jit(grad(f))(x), expected, rtol=1e-15)
    np.testing.assert_allclose(hvp(f, x, np.ones_like(x)), 8 * np.ones_like(x), rtol=1e-15)


def test_in_place_assignment_to_a_traced_array_is_refused():
    def f(x):
        x[0] = 1.0
        return pnp.sum(x)

    with pytest.raises(TypeError, match="cannot be assigned to in place"):
        grad(f)(np.ones(3))


def test_constant_functions_have_zero_gradient():
    g = grad(lambda x: pnp.sum(pnp.stop_gradient(x) ** 2))(np.ones(3))
    np.testing.assert_array_equal(g, np.zeros(3))
    assert g.dtype == np.float64


# ---- accumulation of cotangents -------------------------------------------------------------
def test_cotangent_totals_are_summed_in_place_without_touching_inputs_or_outputs():
    """An entry used many times (slices, repeated indices, whole-array uses) gets the sum of
    all its cotangents; the in-place sums never write into the arguments or the seed."""
    x = np.arange(1.0, 7.0)
    x_before = x.copy()

    def f(x):
        parts = x[0:3] * 2.0 + x[3:6] * x[0:3] + x[[1, 1, 4]].sum() + x[x > 3.5].sum()
        return pnp.sum(parts * parts) + pnp.sum(x * x) + x[2] * x[5]

    g = pearlnet.grad(f)(x)
    eps = 1e-6
    numeric = np.array([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(6)])
    np.testing.assert_allclose(g, numeric, rtol=1e-8)
    np.testing.assert_array_equal(x, x_before)


def test_a_gradient_returned_twice_is_two_arrays():
    """grad of x -> (x, x) style uses: each requested cotangent is its own array, so changing
    one the caller got back cannot change another."""
    def f(a, b):
        return pnp.sum(a * 3.0) + pnp.sum(b[0:2] + b[1:3])

    a = np.ones(3)
    ga, gb = pearlnet.grad(f, argnums=(0, 1))(a, a.copy())
    ga[:] = 0.0
    np.testing.assert_array_equal(gb, [1.0, 2.0, 1.0])


def test_hvp_through_overlapping_slices_matches_the_dense_hessian():
    """Under forward over reverse the cotangents are traced and take the plain rules."""
    def f(x):
        return pnp.sum(pnp.tanh(x[0:4] * x[1:5]) ** 2) + pnp.sum(x[[0, 0, 3]] ** 3)

    x = np.linspace(-0.8, 0.9, 5)
    v = np.linspace(1.0, -1.0, 5)
    H = pearlnet.hessian(f)(x)
    np.testing.assert_allclose(pearlnet.hvp(f, x, v), H @ v, rtol=1e-10, atol=1e-12)


def test_concatenate_of_many_inputs_has_one_forward_rule_for_all_tangents():
    """jvp and linearize through a concatenation of many pieces, some constant: the joint
    forward rule (one concatenation of the tangents, zeros for the constants) agrees with
    the Jacobian."""
    c = np.arange(3.0)

    def f(x):
        pieces = [pnp.sin(x[i:i + 2]) * (i + 1) for i in range(4)]
        return pnp.concatenate([pieces[0], c, pieces[1], pieces[2], c, pieces[3]])

    x = np.linspace(0.1, 0.9, 5)
    t = np.linspace(1.0, -1.0, 5)
    want = pearlnet.jacobian(f)(x) @ t
    _, got = jvp(f, (x,), (t,))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    _, f_jvp = pearlnet.linearize(f, x)
    np.testing.assert_allclose(f_jvp(t), want, rtol=1e-12)


def test_grad_of_grad_through_slices_of_a_slice_fed_value():
    """Second derivatives where some cotangents of one entry are traced and some are not
    (the seed reaches x[0] directly; the other slices' cotangents carry the outer trace)."""
    def f(x):
        return x[0] + pnp.sum(pnp.sin(x[1:3]) * x[0:2]) + x[2] ** 3

    def df0(x):
        return pearlnet.grad(f)(x)[0] + pearlnet.grad(f)(x)[2]

    x = np.array([0.3, -0.7, 1.1])
    H = pearlnet.hessian(f)(x)
    np.testing.assert_allclose(pearlnet.grad(df0)(x), H[0] + H[2], rtol=1e-12)


# ---- cases found by an audit (2026-12-05) ----------------------------------------------------
@pytest.mark.parametrize("index", [((0, 0), slice(None)), (slice(None), (1, 1, 3))])
def test_a_tuple_of_positions_accumulates_its_repeats(index):
    # x[(0, 0), :] picks row 0 twice, as x[[0, 0], :] does: its cotangents add up
    x = np.random.default_rng(0).standard_normal((4, 5))
    v = np.random.default_rng(1).standard_normal((4, 5))
    numpy_index = tuple(np.asarray(i) if isinstance(i, tuple) else i for i in index)
    want_g, want_hv = np.zeros_like(x), np.zeros_like(x)
    np.add.at(want_g, numpy_index, np.cos(x[numpy_index]))
    np.add.at(want_hv, numpy_index, -np.sin(x[numpy_index]) * v[numpy_index])

    def f(a):
        return pnp.sum(pnp.sin(a[index]))

    np.testing.assert_allclose(grad(f)(x), want_g, rtol=1e-14)
    np.testing.assert_allclose(hvp(f, x, v), want_hv, rtol=1e-14)
    # an intermediate indexed the same way (the in-place accumulation path)
    np.testing.assert_allclose(grad(lambda a: f(2 * a))(x), 2 * grad(f)(2 * x), rtol=1e-14)


def test_argnums_naming_an_argument_twice_is_refused():
    for argnums in ((0, 0), (0, -2)):
        with pytest.raises(ValueError, match="grad: argnums .* names an argument twice"):
            grad(lambda a, b: a * b, argnums=argnums)(1.0, 2.0)


def test_forward_mode_through_a_matmul_with_a_nested_list():
    a = [[1.0, 2.0], [3.0, -0.4]]

    def f(x):
        return pnp.sum((a @ x) ** 2)  # f = |A x|^2, H = 2 A^T A

    x, v = np.array([[1.0, 0.5], [2.0, -1.0]]), np.ones((2, 2))
    want = 2 * np.asarray(a).T @ np.asarray(a) @ v
    np.testing.assert_allclose(hvp(f, x, v), want, rtol=1e-14)
    np.testing.assert_allclose(hessian(lambda x: f(x.reshape(2, 2)))(x.ravel()) @ v.ravel(),
                               want.ravel(), rtol=1e-14)


def test_float32_inputs_get_float32_derivatives_where_f_promotes():
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    w = np.ones((3, 2))  # float64: the computation runs in float64

    def f(a):
        return pnp.sum((a @ w) ** 2)

    g = grad(f)(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * (x.astype(np.float64) @ w) @ w.T, rtol=1e-6)
    assert hvp(f, x, np.ones_like(x)).dtype == np.float32
    gn = gauss_newton_vp(lambda a: a @ w, lambda z: pnp.sum(z ** 2), x, np.ones_like(x))
    assert gn.dtype == np.float32


def test_real_of_a_real_value_passes_derivatives_and_inner_takes_scalars():
    x = np.array([0.5, -1.5, 2.0])
    np.testing.assert_array_equal(grad(lambda a: pnp.sum(pnp.real(a) ** 2))(x), 2 * x)
    np.testing.assert_array_equal(hvp(lambda a: pnp.sum(pnp.real(3 * a) ** 2), x,
                                      np.ones(3)), np.full(3, 18.0))
    np.testing.assert_array_equal(pnp.inner(2.0, np.array([1.0, 3.0])), [2.0, 6.0])
    assert grad(lambda s: pnp.sum(pnp.inner(s, np.array([1.0, 3.0]))))(2.0) == 4.0


def test_numpy_argument_forms_of_broadcast_to_concatenate_and_expand_dims():
    x = np.array([[0.5, -1.0], [2.0, 0.3]])
    for fn in (lambda m, a: m.broadcast_to(a[0, 0], 3),
               lambda m, a: m.concatenate([a, 2 * a], axis=None),
               lambda m, a: m.expand_dims(a, (0, 3)),
               lambda m, a: m.expand_dims(a, (-1, 0))):
        np.testing.assert_array_equal(fn(pnp, x), fn(np, x))
        check_grad(lambda a, fn=fn: pnp.sum(fn(pnp, a) ** 3), x)
    with pytest.raises(ValueError, match="expand_dims: repeated axis"):
        pnp.expand_dims(x, (1, 1))


# ---- second audit (2026-12-05) ---------------------------------------------------------------
def test_a_cast_to_integers_carries_no_derivative():
    x = np.array([0.3, 1.7, -2.6])

    def f(a):
        return pnp.sum(pnp.astype(a, np.int64) * a)  # trunc(x) x: the derivative is trunc(x)

    np.testing.assert_array_equal(grad(f)(x), [0.0, 1.0, -2.0])
    np.testing.assert_array_equal(hvp(f, x, np.ones(3)), np.zeros(3))
    np.testing.assert_array_equal(grad(lambda a: pnp.sum(a.astype(bool) * a))(x), np.ones(3))


@pytest.mark.parametrize("fn, slope", [(pnp.sigmoid, 0.25), (pnp.softplus, 0.5)])
def test_two_formula_functions_keep_the_complex_step_at_zero(fn, slope):
    # sign(Re 0) = 0 made sigmoid(ih) = 0.5 + 0i: the complex step read a derivative of 0
    assert np.imag(fn(np.array([1e-20j]))[0]) / 1e-20 == pytest.approx(slope, rel=1e-12)
    x = np.array([0.0, -0.5, 0.0, 2.0])
    check_grad(lambda a: pnp.sum(fn(a) ** 2), x)
    check_hvp(lambda a: pnp.sum(fn(a) ** 2), x, method="central")


@pytest.mark.parametrize("spec, shapes", [("ii->", [(3, 3)]), ("ii->i", [(4, 4)]),
                                          ("iji->j", [(3, 2, 3)]), ("ii,i->", [(3, 3), (3,)]),
                                          ("...ii->...i", [(2, 3, 3)])])
def test_einsum_with_a_repeated_index_is_differentiable(spec, shapes):
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) for s in shapes]

    def f(*a):
        return pnp.sum(pnp.sin(pnp.einsum(spec, *a)))

    for k in range(len(ops)):
        def fk(a, k=k):
            return f(*[a if i == k else o for i, o in enumerate(ops)])
        check_grad(fk, ops[k])
        check_hvp(fk, ops[k])
    np.testing.assert_array_equal(grad(lambda a: pnp.einsum("ii->", a))(ops[0] if spec == "ii->"
                                                                       else np.ones((3, 3))),
                                  np.eye(3))


@pytest.mark.parametrize("zeros", [0, 1, 2, 3])
def test_prod_is_exact_with_zeros_to_second_order(zeros):
    x = np.array([[1.5, -0.7, 2.0, 0.9, -1.1], [0.8, 1.2, -0.6, 1.3, 0.5]])
    x[0, :zeros] = 0.0
    x[1, 4 - zeros + 1:] = 0.0 if zeros else x[1, 4 - zeros + 1:]
    for axis in (None, 1, 0):
        check_grad(lambda a, axis=axis: pnp.sum(pnp.prod(a, axis=axis) ** 2), x,
                   method="central")
        check_hvp(lambda a, axis=axis: pnp.sum(pnp.prod(a, axis=axis)), x, method="central")


def test_prod_with_a_zero_takes_linear_memory():
    import tracemalloc

    x = np.random.default_rng(0).uniform(0.5, 1.5, 4000)
    x[7] = 0.0
    tracemalloc.start()
    g = grad(lambda a: pnp.prod(a))(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000  # the n x n construction took 144 MB here
    assert g[7] == pytest.approx(np.prod(np.delete(x, 7)), rel=1e-10)
    assert not np.delete(g, 7).any()


def test_power_forward_mode_at_a_negative_base():
    # d/dy x^y is not real at x < 0, but a zero y-tangent must not bring its NaN in
    def f(a):
        return a[0] ** a[1]

    x = np.array([-1.5, 2.0])
    with np.errstate(invalid="ignore"):  # log(-1.5), as NumPy warns of it
        _, t = jvp(f, (x,), (np.array([1.0, 0.0]),))
        hv = hvp(f, x, np.array([1.0, 0.0]))
    assert t == pytest.approx(-3.0)
    assert hv[0] == pytest.approx(2.0)


def test_axes_out_of_bounds_are_refused():
    x = np.ones((2, 3))
    for call in (lambda: pnp.transpose(x, (0, 3)), lambda: pnp.transpose(x, (1, 2)),
                 lambda: pnp.swapaxes(x, 0, 3), lambda: pnp.moveaxis(x, 5, 0)):
        with pytest.raises(ValueError, match="is out of bounds for an array of dimension 2"):
            call()
