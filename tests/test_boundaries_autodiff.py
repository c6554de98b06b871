"""Exact at the boundaries (issue 24, issue 23 defect 2): what comes into and goes out of the
transforms is checked, so that a mistake raises instead of giving wrong derivatives.

1. f's output: grad needs a scalar, jacobian takes trees.
2. Python conversions of traced values (float, int, complex, np.asarray, buf[i] = x).
3. Named tuples and OrderedDicts keep their types.
4. Dicts are matched by key where trees meet.
7. Tangents have their primals' precision.
8. Plain complex arrays get NumPy's result outside complex_step().
9. real and imag carry derivatives.
10. split of an empty axis, the message of np.linalg.norm.
(Items 5 and 6, the engine's own, are in test_core.py.)
"""

import collections
import math
import threading

import numpy as np
import pytest

import pearlnet.numpy as pnp
from pearlnet import (
    gauss_newton_operator,
    gauss_newton_vp,
    grad,
    hessian,
    hvp,
    hvp_operator,
    jacobian,
    jvp,
    linearize,
    ravel,
    tree_flatten,
    tree_map,
    tree_unflatten,
    value_and_grad,
    vjp,
)
from pearlnet.autodiff import tree_leaves_like
from pearlnet.autodiff.core import primitives
from pearlnet.check import check_grad, check_hvp, check_jvp, complex_step
from pearlnet.optim import SGD, Adam, Momentum


# ---- 1. what f returns ------------------------------------------------------------------------
def _no_return(w):
    loss = pnp.sum(w ** 2)  # noqa: F841  (the bug under test: no return)


X3 = np.array([0.5, -1.0, 2.0])


@pytest.mark.parametrize("call", [
    lambda f: grad(f)(X3), lambda f: value_and_grad(f)(X3), lambda f: hvp(f, X3, X3),
    lambda f: hvp_operator(f, X3)(X3), lambda f: hessian(f)(X3),
], ids=["grad", "value_and_grad", "hvp", "hvp_operator", "hessian"])
def test_a_forgotten_return_is_refused_not_zero(call):
    with pytest.raises(TypeError, match=r"f must return a scalar .*got None.*without a return"):
        call(_no_return)


@pytest.mark.parametrize("check", [check_grad, check_hvp])
def test_the_checks_refuse_a_function_returning_none(check):
    # check_grad used to pass with max error 0.0: np.shape(None) == ()
    with pytest.raises(TypeError, match=rf"{check.__name__}: f must return a scalar.*got None"):
        check(_no_return, X3)


def test_check_jvp_refuses_a_function_returning_none():
    with pytest.raises(TypeError, match="check_jvp: f must return an array or a tree of arrays, "
                                        "got None"):
        check_jvp(_no_return, X3)


def test_tuples_and_dicts_without_has_aux_are_named():
    with pytest.raises(TypeError, match=r"grad: .*got a tuple of 2 .*pass has_aux=True"):
        grad(lambda w: (pnp.sum(w), "note"))(X3)
    with pytest.raises(TypeError, match=r"grad: .*got a dict with keys \['loss'\]"):
        grad(lambda w: {"loss": pnp.sum(w)})(X3)
    with pytest.raises(TypeError, match=r"grad: .*got a list of 1"):
        grad(lambda w: [pnp.sum(w)])(X3)
    with pytest.raises(ValueError, match=r"grad\(has_aux=True\): .*got a tuple of 3"):
        grad(lambda w: (pnp.sum(w), 1, 2), has_aux=True)(X3)
    # the same function with has_aux is fine; a shape () NumPy scalar and a Python number too
    g, aux = grad(lambda w: (pnp.sum(w ** 2), "note"), has_aux=True)(X3)
    np.testing.assert_array_equal(g, 2 * X3)
    assert aux == "note"
    np.testing.assert_array_equal(grad(lambda w: 1.0)(X3), np.zeros(3))


def test_vjp_jvp_and_the_curvature_products_refuse_non_arrays():
    with pytest.raises(TypeError, match="vjp: f must return an array or a tree of arrays, got "
                                        "None"):
        vjp(_no_return, X3)
    with pytest.raises(TypeError, match="jvp: f must return .*got None"):
        jvp(_no_return, (X3,), (X3,))
    with pytest.raises(TypeError, match=r"jvp: .*got a str in \(\*, \*\)"):
        jvp(lambda w: (w, "label"), (X3,), (X3,))
    with pytest.raises(TypeError, match="linearize: f must return .*got None"):
        linearize(_no_return, X3)
    with pytest.raises(TypeError, match="gauss_newton_vp: f must return a scalar.*got None"):
        gauss_newton_vp(lambda w: w * 2, _no_return, X3, X3)
    with pytest.raises(TypeError, match="gauss_newton_operator: f must return an array"):
        gauss_newton_operator(_no_return, pnp.sum, X3)
    with pytest.raises(TypeError, match="gauss_newton_operator: f must return a scalar"):
        gauss_newton_operator(lambda w: w * 2, _no_return, X3)(X3)


def test_jacobian_of_a_tree_output_is_a_tree_of_jacobians():
    x = np.array([0.5, 1.0, -2.0])

    def f(a):
        return {"sin": pnp.sin(a), "pair": (pnp.sum(a ** 2), a[:2] * a[0])}

    J = jacobian(f)(x)
    np.testing.assert_allclose(J["sin"], np.diag(np.cos(x)), rtol=1e-15)
    assert J["pair"][0].shape == (3,)
    np.testing.assert_allclose(J["pair"][0], 2 * x, rtol=1e-15)
    assert J["pair"][1].shape == (2, 3)
    np.testing.assert_allclose(J["pair"][1], [[2 * x[0], 0, 0], [x[1], x[0], 0]], rtol=1e-15)
    # an empty output leaf gives an empty block of shape out.shape + x.shape
    J = jacobian(lambda a: (a[:0], pnp.sum(a)))(x)
    assert J[0].shape == (0, 3)
    with pytest.raises(TypeError, match="jacobian: f must return an array .*got None"):
        jacobian(_no_return)(x)


# ---- 2. conversions that would drop a derivative ------------------------------------------------
@pytest.mark.parametrize("convert, name", [
    (lambda a: float(a[0]), "float()"), (lambda a: int(a[0]), "int()"),
    (lambda a: complex(a[0]), "complex()"), (lambda a: math.exp(a[0]), "float()"),
    (lambda a: np.asarray(a, dtype=float), "NumPy array"), (lambda a: np.asarray(a), "NumPy array"),
    (lambda a: np.array([a[0], a[1]]), "NumPy array"),
], ids=["float", "int", "complex", "math.exp", "asarray_dtype", "asarray", "array_of_list"])
def test_conversions_of_traced_values_raise(convert, name):
    x = np.array([1.0, 2.0])

    def f(a):
        return pnp.sum(a * convert(a))

    for transform in (lambda: grad(f)(x), lambda: jvp(f, (x,), (x,)), lambda: hvp(f, x, x)):
        with pytest.raises(TypeError, match=rf"{name}.*derivative.*\.item\(\).*stop_gradient"):
            transform()


def test_writing_a_traced_value_into_a_numpy_buffer_raises():
    # the example gave [0. 1.] where [3. 1.] is right
    def f(a):
        buf = np.zeros(2)
        buf[0] = a[0] * 3
        buf[1] = a[1]
        return pnp.sum(pnp.asarray(buf))

    # NumPy turns the failed float() into "setting an array element with a sequence" (a
    # tracer has __getitem__), keeping ours as the cause
    with pytest.raises((TypeError, ValueError)) as info:
        grad(f)(np.array([1.0, 2.0]))
    error = info.value if isinstance(info.value, TypeError) else info.value.__cause__
    assert isinstance(error, TypeError) and "buf[i] = x" in str(error)
    with pytest.raises(TypeError, match="NumPy array .*buf\\[i\\] = x"):  # a slice: ours directly
        grad(lambda a: pnp.sum(a) + np.zeros(2).__setitem__(slice(0, 2), a))(np.ones(2))


def test_the_explicit_ways_out_and_bool_still_work():
    x = np.array([1.0, -2.0])

    def f(a):
        scale = a[0].item()  # a value, knowingly a constant
        const = pnp.stop_gradient(a)  # a plain array
        assert isinstance(const, np.ndarray) and isinstance(scale, float)
        if a[1] < 0:  # control flow on a value: bool() is fine
            return pnp.sum(a * scale * float(const[0]))
        return pnp.sum(a)

    np.testing.assert_array_equal(grad(f)(x), [1.0, 1.0])
    np.testing.assert_array_equal(hvp(f, x, np.ones(2)), [0.0, 0.0])
    # pnp.asarray keeps the derivative where np.asarray refuses
    np.testing.assert_array_equal(grad(lambda a: pnp.sum(pnp.asarray(a) * 3))(x), [3.0, 3.0])


def test_unknown_numpy_functions_name_their_module():
    with pytest.raises(TypeError, match=r"^numpy\.linalg\.norm has no differentiable version"):
        grad(lambda a: np.linalg.norm(a))(np.ones(3))
    with pytest.raises(TypeError, match=r"^numpy\.fft\.fft has no differentiable version"):
        grad(lambda a: pnp.sum(np.fft.fft(a)))(np.ones(2))


# ---- 3. named tuples and OrderedDicts ---------------------------------------------------------
Params = collections.namedtuple("Params", "w b")


def test_named_tuples_and_ordered_dicts_keep_their_types():
    p = Params(w=np.array([1.0, 2.0]), b=np.array(0.5))

    def f(p):
        return pnp.sum(p.w ** 2) * p.b

    g = grad(f)(p)
    assert type(g) is Params
    np.testing.assert_array_equal(g.w, [1.0, 2.0])
    assert g.b == 5.0
    hv = hvp(f, p, Params(np.ones(2), np.array(1.0)))
    assert type(hv) is Params and hv.b == 6.0
    od = collections.OrderedDict([("z", np.ones(2)), ("a", np.zeros(1))])
    m = tree_map(lambda x: x + 1, od)
    assert type(m) is collections.OrderedDict and list(m) == ["z", "a"]
    dd = collections.defaultdict(list, {"k": np.ones(1)})
    back = tree_unflatten(*reversed(tree_flatten(dd)))
    assert type(back) is collections.defaultdict and back.default_factory is list
    flat, unravel = ravel({"p": p, "od": od})
    tree = unravel(flat)
    assert type(tree["p"]) is Params and type(tree["od"]) is collections.OrderedDict
    g = grad(lambda t: pnp.sum(t["od"]["z"]) + t["p"].b)({"p": p, "od": od})
    assert type(g["p"]) is Params and type(g["od"]) is collections.OrderedDict
    # the structure prints as what it is
    assert repr(tree_flatten(p)[1]) == "Params(w=*, b=*)"
    assert repr(tree_flatten(od)[1]) == "OrderedDict({'z': *, 'a': *})"


def test_a_named_tuple_tangent_may_be_a_plain_tuple():
    p = Params(w=np.array([1.0, 2.0]), b=np.array(0.5))
    hv = hvp(lambda p: pnp.sum(p.w ** 2) * p.b, p, (np.ones(2), np.array(1.0)))
    assert type(hv) is Params  # the primal's structure


# ---- 4. dicts matched by key --------------------------------------------------------------------
PARAMS = {"encoder": np.array([1.0, 2.0]), "decoder": np.array([3.0])}
SWAPPED = {"decoder": np.array([1.0]), "encoder": np.array([0.0, 1.0])}
IN_ORDER = {"encoder": SWAPPED["encoder"], "decoder": SWAPPED["decoder"]}


def _f(p):
    return pnp.sum(p["encoder"] ** 2) * p["decoder"][0]


def _net(p):
    return pnp.concatenate([p["encoder"] * p["decoder"], pnp.sin(p["encoder"])])


def _loss(z):
    return 0.5 * pnp.sum(z ** 2)


@pytest.mark.parametrize("product", [
    lambda t: hvp(_f, PARAMS, t),
    lambda t: jvp(_f, (PARAMS,), (t,))[1],
    lambda t: linearize(_f, PARAMS)[1](t),
    lambda t: hvp_operator(_f, PARAMS)(t),
    lambda t: gauss_newton_vp(_net, _loss, PARAMS, t),
    lambda t: gauss_newton_operator(_net, _loss, PARAMS)(t),
    lambda t: vjp(lambda p: {"a": p["encoder"] * 2, "b": p["decoder"] ** 2}, PARAMS)[1](
        {"b": t["decoder"], "a": t["encoder"]} if list(t)[0] == "encoder"
        else {"a": t["encoder"], "b": t["decoder"]})[0],
], ids=["hvp", "jvp", "linearize", "hvp_operator", "gauss_newton_vp", "gauss_newton_operator",
        "vjp"])
def test_a_tangent_with_the_keys_in_another_order_gives_the_same_product(product):
    got, want = product(SWAPPED), product(IN_ORDER)
    if isinstance(want, dict):
        assert list(got) == list(PARAMS)  # the result has the primal's key order
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    else:
        np.testing.assert_array_equal(got, want)


def test_different_key_sets_are_still_refused_naming_both_structures():
    bad = {"decoder": np.array([1.0]), "encoderr": np.array([0.0, 1.0])}
    with pytest.raises(ValueError, match=r"hvp: tangent 0 has structure \{'decoder': \*, "
                                         r"'encoderr': \*\}, expected \{'encoder': \*, "
                                         r"'decoder': \*\}.*missing keys \['encoder'\], "
                                         r"unexpected keys \['encoderr'\]"):
        hvp(_f, PARAMS, bad)
    with pytest.raises(ValueError, match=r"linearize: tangent 0 .*at \['w'\]: length 1 where 2"):
        linearize(lambda p: pnp.sum(p["w"][0] * p["w"][1]), {"w": [np.ones(1), np.ones(1)]})[1](
            {"w": [np.ones(1)]})
    with pytest.raises(ValueError, match=r"jvp: tangent 0 .*a list where a tuple is expected"):
        jvp(lambda p: p[0], ((np.ones(1),),), ([np.ones(1)],))
    with pytest.raises(ValueError, match=r"tree_map: tree 1 has structure"):
        tree_map(lambda a, b: a + b, {"a": 1.0}, {"b": 1.0})


def test_the_autoencoders_products_take_keys_in_any_order():
    from pearlnet.models import Autoencoder

    model = Autoencoder([4, 3, 2], activation="tanh")
    params = model.init(0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    p = tree_map(lambda a: np.ones_like(a), params)
    swapped = {"decoder": p["decoder"], "encoder": p["encoder"]}
    for product in (model.hessvec, model.gaussnewtonvec):
        got, want = product(params, x, swapped), product(params, x, p)
        assert list(got) == ["encoder", "decoder"]
        for a, b in zip(tree_flatten(got)[0], tree_flatten(want)[0]):
            np.testing.assert_array_equal(a, b)


def test_tree_map_and_tree_leaves_like_match_by_key():
    a = {"x": 1.0, "y": {"p": 2.0, "q": 3.0}}
    b = {"y": {"q": 30.0, "p": 20.0}, "x": 10.0}
    s = tree_map(lambda u, v: u + v, a, b)
    assert s == {"x": 11.0, "y": {"p": 22.0, "q": 33.0}}
    assert list(s) == ["x", "y"] and list(s["y"]) == ["p", "q"]
    assert tree_leaves_like(tree_flatten(a)[1], b) == [10.0, 20.0, 30.0]
    # ravel keeps insertion order for its layout: the two orders give different vectors
    assert ravel(a)[0].tolist() == [1.0, 2.0, 3.0]
    assert ravel(b)[0].tolist() == [30.0, 20.0, 10.0]


def test_the_checks_match_the_numeric_and_ad_trees_by_key():
    from pearlnet.autodiff import Tracer

    def f(p):  # a function whose output dict order depends on whether it is traced
        keys = ["b", "a"] if isinstance(p["a"], Tracer) else ["a", "b"]
        out = {"a": pnp.sin(p["a"]), "b": p["a"] * p["b"]}
        return {k: out[k] for k in keys}

    p = {"a": np.array([0.3, 0.7]), "b": np.array([1.5, -0.5])}
    for method in ("complex", "central"):
        check_jvp(f, p, method=method)
    check_grad(lambda p: pnp.sum(f(p)["b"] ** 2), p)
    check_hvp(lambda p: pnp.sum(f(p)["b"] ** 2), p)


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1), lambda: Momentum(lr=0.1),
                                  lambda: Adam(lr=0.1, weight_decay=0.1)])
def test_optimizers_match_grads_and_state_to_params_by_key(make):
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    grads = {"W": np.full((2, 2), 0.5), "b": np.array([1.0, -1.0])}
    swapped = {"b": grads["b"], "W": grads["W"]}
    opt = make()
    state = opt.init(params)
    new, s1 = opt.update(params, grads, state)
    new2, s2 = opt.update(params, swapped, state)
    assert list(new2) == ["W", "b"]
    for k in params:
        np.testing.assert_array_equal(new2[k], new[k])
    # state slots in another order (as read back from a file) and a decay mask too
    state_swapped = {k: ({"b": v["b"], "W": v["W"]} if isinstance(v, dict) else v)
                     for k, v in s1.items()}
    a, _ = opt.update(new, grads, s1)
    b, _ = opt.update(new, grads, state_swapped)
    for k in params:
        np.testing.assert_array_equal(a[k], b[k])
    masked = Adam(lr=0.1, weight_decay=0.5, decay_mask={"b": False, "W": True})
    m1, _ = masked.update(params, swapped, masked.init(params))
    np.testing.assert_allclose(m1["b"], params["b"] - 0.1 * np.sign(grads["b"]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"update: grads has structure .*missing keys \['b'\]"):
        opt.update(params, {"W": grads["W"], "c": grads["b"]}, state)


# ---- 7. tangent precision ---------------------------------------------------------------------
F32 = np.array([0.5, -1.0], np.float32)
F64_T = np.array([1.0, 2.0])


@pytest.mark.parametrize("product, who", [
    (lambda v: jvp(pnp.sin, (F32,), (v,)), "jvp"),
    (lambda v: hvp(lambda a: pnp.sum(a ** 3), F32, v), "hvp"),
    (lambda v: linearize(pnp.sin, F32)[1](v), "linearize"),
    (lambda v: hvp_operator(lambda a: pnp.sum(a ** 3), F32)(v), "hvp_operator"),
    (lambda v: gauss_newton_vp(pnp.sin, _loss, F32, v), "gauss_newton_vp"),
    (lambda v: gauss_newton_operator(pnp.sin, _loss, F32)(v), "gauss_newton_operator"),
], ids=["jvp", "hvp", "linearize", "hvp_operator", "gauss_newton_vp", "gauss_newton_operator"])
def test_a_float64_tangent_for_a_float32_primal_is_refused(product, who):
    with pytest.raises(TypeError, match=rf"^{who}: tangent 0 has dtype float64, its primal "
                                        rf"float32"):
        product(F64_T)
    out = product(F64_T.astype(np.float32))  # the same tangent in the primal's precision
    leaf = out[1] if isinstance(out, tuple) else out
    assert leaf.dtype == np.float32


def test_allowed_tangents_real_complex_and_python_numbers():
    # a real tangent of a complex primal, and a complex tangent of a real one, are exact
    z = np.array([0.5 + 0.1j, -1.0 + 0.2j])
    _, t = jvp(pnp.sin, (z,), (np.ones(2),))
    np.testing.assert_allclose(t, np.cos(z), rtol=1e-15)
    x = np.array([0.5, -1.0])
    _, t = jvp(pnp.sin, (x,), (np.array([1.0 + 2.0j, 1j]),))
    np.testing.assert_allclose(t, np.cos(x) * [1 + 2j, 1j], rtol=1e-15)
    # a complex64 tangent for a float64 primal mixes precisions: refused
    with pytest.raises(TypeError, match="jvp: tangent 0 has dtype complex64, its primal float64"):
        jvp(pnp.sin, (x,), (np.ones(2, np.complex64),))
    # a Python number has no precision of its own: it takes the primal's
    s = np.float32(0.5)
    _, t = jvp(pnp.sin, (s,), (1.0,))
    assert t.dtype == np.float32
    assert hvp(lambda a: a ** 3, np.float32(2.0), 1.0).dtype == np.float32


def test_a_complex_tangent_of_a_real_primal_is_exact():
    # the rules are complex-linear in the tangent: J (a + ib) = J a + i J b, through casts,
    # concatenation, kinks, products and slices, and H (a + ib) = H a + i H b
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 4))

    def f(x):
        h = pnp.astype(pnp.tanh(x @ w), np.float32)
        h = pnp.concatenate([pnp.relu(h), pnp.maximum(h, 0.1)], axis=1)
        return pnp.sum(pnp.astype(h, np.float64)[:, 1:] ** 2 * x[:, :1])

    x = rng.standard_normal((2, 3))
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    _, t = jvp(f, (x,), (a + 1j * b,))
    np.testing.assert_allclose(t, jvp(f, (x,), (a,))[1] + 1j * jvp(f, (x,), (b,))[1],
                               rtol=1e-6)
    g = lambda x: pnp.sum(pnp.tanh(x @ w) ** 2)  # noqa: E731
    np.testing.assert_allclose(hvp(g, x, a + 1j * b), hvp(g, x, a) + 1j * hvp(g, x, b),
                               rtol=1e-14)


# ---- 8. plain complex arrays --------------------------------------------------------------------
# ties of real parts (1, 1 and -2, -2) and a zero real part (+-1j): where NumPy's lexicographic
# order and the continuation's real-part branches differ
Z = np.array([1.0 + 2.0j, 1.0 + 3.0j, -2.0 + 5.0j, -2.0 + 1.0j, 1.0j, -1.0j])


@pytest.mark.parametrize("fn, numpy_fn", [
    (pnp.abs, np.abs), (pnp.absolute, np.absolute), (pnp.sign, np.sign),
    (pnp.relu, lambda z: np.maximum(z, 0)),
    (lambda z: pnp.maximum(z, 1.0 + 2.5j), lambda z: np.maximum(z, 1.0 + 2.5j)),
    (lambda z: pnp.minimum(z, 1.0 + 2.5j), lambda z: np.minimum(z, 1.0 + 2.5j)),
    (lambda z: pnp.clip(z, -2.0 + 3.0j, 1.0 + 2.5j), lambda z: np.clip(z, -2.0 + 3.0j, 1 + 2.5j)),
    (pnp.max, np.max), (pnp.min, np.min), (pnp.amax, np.amax),
    (lambda z: pnp.max(z.reshape(3, 2), axis=1), lambda z: np.max(z.reshape(3, 2), axis=1)),
    (lambda z: pnp.min(z[:4].reshape(2, 2), axis=1, keepdims=True),
     lambda z: np.min(z[:4].reshape(2, 2), axis=1, keepdims=True)),
    (pnp.softplus, lambda z: np.log1p(np.exp(z))),
    (pnp.var, np.var), (pnp.std, np.std),
    (pnp.argmax, np.argmax), (pnp.argmin, np.argmin),
    (lambda z: pnp.argsort(z[1::-1]), lambda z: np.argsort(z[1::-1])),  # [1 + 3j, 1 + 2j]
    (lambda z: pnp.greater(z, 1 + 2.5j), lambda z: np.greater(z, 1 + 2.5j)),
    (lambda z: pnp.greater_equal(z, 1 + 2.5j), lambda z: np.greater_equal(z, 1 + 2.5j)),
    (lambda z: pnp.less(z, 1 + 2.5j), lambda z: np.less(z, 1 + 2.5j)),
    (lambda z: pnp.less_equal(z, 1 + 2.5j), lambda z: np.less_equal(z, 1 + 2.5j)),
    (lambda z: pnp.window_max(z[:4].reshape(1, 1, 2, 2), 2),
     lambda z: np.max(z[:2]).reshape(1, 1, 1, 1)),
], ids=["abs", "absolute", "sign", "relu", "maximum", "minimum", "clip", "max", "min", "amax",
        "max_axis", "min_axis", "softplus", "var", "std", "argmax", "argmin", "argsort", "greater",
        "greater_equal", "less", "less_equal", "window_max"])
def test_plain_complex_arrays_get_numpys_result(fn, numpy_fn):
    # softplus: the continuation z + log1p(e^-z) and the principal log(1 + e^z) part by 2 pi i
    z = np.array([1.0 + 4.0j, -1.0 + 1.0j]) if fn is pnp.softplus else Z
    got, want = fn(z), numpy_fn(z)
    assert np.result_type(got) == np.result_type(want)
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_complex_step_mode_gives_the_continuation_and_is_per_thread():
    z = np.array([-2.0 + 1e-20j, 3.0 - 1e-20j])
    assert pnp.abs(z).dtype == np.float64
    with complex_step():
        np.testing.assert_array_equal(pnp.abs(z), [2.0 - 1e-20j, 3.0 - 1e-20j])
        np.testing.assert_array_equal(pnp.sign(z), [-1.0, 1.0])
        assert pnp.max(np.array([1 + 2j, 1 + 3j])) == 1 + 2.5j  # ties share, by real part
        assert pnp.maximum(1 + 2j, 1 + 3j) == 1 + 2j
        assert pnp.argmax(np.array([1 + 2j, 1 + 3j])) == 0
        assert not pnp.greater(1 + 3j, 1 + 2j)
        assert pnp.var(np.array([1j, -1j])) == -1.0  # mean (x - mean)^2, not |x - mean|^2
        seen = []
        other = threading.Thread(target=lambda: seen.append(pnp.abs(z)))
        other.start()
        other.join()
        assert seen[0].dtype == np.float64  # another thread is not in the mode
        with complex_step():  # nested: still on after the inner block
            pass
        assert pnp.abs(z).dtype == np.complex128
    assert pnp.abs(z).dtype == np.float64
    # NumPy's own, outside the mode
    assert pnp.maximum(1 + 2j, 1 + 3j) == 1 + 3j
    assert pnp.max(np.array([1 + 2j, 1 + 3j])) == 1 + 3j
    assert pnp.argmax(np.array([1 + 2j, 1 + 3j])) == 1
    assert pnp.greater(1 + 3j, 1 + 2j)
    assert pnp.var(np.array([1j, -1j])) == 1.0


def test_traced_complex_values_always_take_the_continuation():
    # grad at a complex point (the complex step on the gradient): d|x|/dx = sign(Re x)
    z = np.array([-2.0 + 1e-20j, 3.0 + 1e-20j])
    np.testing.assert_array_equal(grad(lambda a: pnp.sum(pnp.abs(a)))(z), [-1.0, 1.0])
    _, t = jvp(pnp.abs, (z,), (np.ones(2),))
    np.testing.assert_array_equal(t, [-1.0, 1.0])
    out, _ = jvp(pnp.abs, (z,), (np.ones(2),))
    np.testing.assert_array_equal(out, [2.0 - 1e-20j, 3.0 + 1e-20j])
    # the complex step of the gradient of |x|^3 is the Hessian-vector product
    x, v, h = np.array([-1.5, 0.5]), np.array([1.0, 2.0]), 1e-20
    f = lambda a: pnp.sum(pnp.abs(a) ** 3)  # noqa: E731
    np.testing.assert_allclose(np.imag(grad(f)(x + 1j * h * v)) / h, hvp(f, x, v), rtol=1e-14)
    check_grad(f, x, method="complex")
    check_hvp(f, x, method="complex")


def test_every_switching_primitive_is_listed():
    # the primitives whose plain-complex result is NumPy's, not the continuation: each is
    # tested above, and a new one must be added there
    switching = {name for name, p in primitives.items() if p.eager is not p.impl}
    assert switching >= {"abs", "sign", "relu", "maximum", "minimum", "softplus", "max", "min",
                         "window_max", "greater", "greater_equal", "less", "less_equal"}
    assert switching <= {"abs", "sign", "relu", "maximum", "minimum", "softplus", "max", "min",
                         "window_max", "greater", "greater_equal", "less", "less_equal"} | {
                             n for n, p in primitives.items() if p.module.startswith("tests")}


# ---- 9. real and imag -----------------------------------------------------------------------
def test_real_and_imag_carry_derivatives():
    x = np.array([0.3, -1.2, 2.0])
    # cos x and sin x through e^(ix): gradients, Hessians, forward mode
    np.testing.assert_allclose(grad(lambda a: pnp.sum(pnp.real(pnp.exp(1j * a))))(x),
                               -np.sin(x), rtol=1e-15)
    np.testing.assert_allclose(grad(lambda a: pnp.sum(pnp.imag(pnp.exp(1j * a))))(x),
                               np.cos(x), rtol=1e-15)
    np.testing.assert_allclose(hvp(lambda a: pnp.sum(pnp.imag(pnp.exp(1j * a))), x, np.ones(3)),
                               -np.sin(x), rtol=1e-15)
    _, t = jvp(lambda a: pnp.real(pnp.exp(1j * a)), (x,), (np.ones(3),))
    np.testing.assert_allclose(t, -np.sin(x), rtol=1e-15)
    assert grad(lambda a: pnp.sum(pnp.real(a * 1j)))(x).dtype == np.float64  # real in, real out
    check_grad(lambda a: pnp.sum(pnp.real(pnp.exp(1j * a)) ** 2), x, method="central")
    check_hvp(lambda a: pnp.sum(pnp.imag(pnp.exp(1j * a)) ** 3), x, method="central")
    # JAX's rules at a complex point: jvp Re t / Im t, vjp g and -i g
    z = np.array([1.0 + 2.0j, -0.5 + 0.3j])
    t = np.array([1.0 + 1.0j, 2.0j])
    np.testing.assert_array_equal(jvp(pnp.real, (z,), (t,))[1], t.real)
    np.testing.assert_array_equal(jvp(pnp.imag, (z,), (t,))[1], t.imag)
    (gr,) = vjp(pnp.real, z)[1](np.array([1.0, 2.0]))
    np.testing.assert_array_equal(gr, [1.0 + 0j, 2.0 + 0j])
    (gi,) = vjp(pnp.imag, z)[1](np.array([1.0, 2.0]))
    np.testing.assert_array_equal(gi, [-1j, -2j])
    # a real traced value: real is the identity (derivatives pass), imag a zero constant
    np.testing.assert_array_equal(grad(lambda a: pnp.sum(pnp.real(a) ** 2))(x), 2 * x)
    np.testing.assert_array_equal(grad(lambda a: pnp.sum(pnp.imag(a) + a))(x), np.ones(3))
    # numpy's own names dispatch
    np.testing.assert_allclose(grad(lambda a: pnp.sum(np.real(pnp.exp(1j * a))))(x), -np.sin(x),
                               rtol=1e-15)


# ---- 10. smaller ------------------------------------------------------------------------------
@pytest.mark.parametrize("x, n", [(np.zeros(0), 2), (np.zeros((0, 3)), 3), (np.arange(6.0), 3),
                                  (np.zeros((2, 0)), 1)])
def test_split_gives_numpys_answer_for_empty_axes(x, n):
    got, want = pnp.split(x, n), np.split(x, n)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="split: an axis of size 6 does not divide into 4"):
        pnp.split(np.arange(6.0), 4)
