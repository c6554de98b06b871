"""vmap: every spec of the primitive table batched equals a Python loop stacked; every
registered primitive has a batching rule; vmap composes with grad, jvp, hvp, jit and itself;
bad axes and missing rules are errors that say what came."""

from __future__ import annotations

import numpy as np
import pytest

import pearlnet
import pearlnet.numpy as pnp
from pearlnet.autodiff.batching import BatchTracer
from pearlnet.autodiff.core import Primitive, primitives
from test_primitives import SPECS, Problem, _seed

B = 3


def _leaves(tree):
    return pearlnet.tree_flatten(tree)[0]


def _batch_inputs(spec, c, axis=0):
    """B draws of the spec's inputs from its domain, stacked along ``axis``."""
    p = Problem(spec, c)
    draws = []
    for b in range(B):
        rng = np.random.default_rng(_seed("vmap", spec.name, c.id, b))
        draws.append([np.asarray(x, dtype=spec.in_dtype)
                      for x in spec.domain(rng, list(c.shapes))])
    stacked = [np.stack([d[i] for d in draws], axis=axis if np.ndim(draws[0][i]) or axis == 0
                        else 0) for i in range(len(p.xs))]
    return p, draws, stacked


def _assert_batched(got, want, out_axis=0):
    got_leaves, want_leaves = _leaves(got), _leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        g = np.moveaxis(np.asarray(g), out_axis, 0)
        w = np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        scale = max(np.max(np.abs(w), initial=0), 1)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * scale)


def _loop(f, per_example, shared=None):
    """np.stack of f over the examples; ``shared``: {input position: the value all share}."""
    outs = []
    for xs in per_example:
        xs = list(xs)
        for i, v in (shared or {}).items():
            xs[i] = v
        outs.append(f(*xs))
    leaves0, treedef = pearlnet.tree_flatten(outs[0])
    cols = [np.stack([np.asarray(_leaves(o)[k]) for o in outs]) for k in range(len(leaves0))]
    return pearlnet.tree_unflatten(treedef, cols)


ALL = [pytest.param(s, c, id=f"{s.name}-{c.id}") for s in SPECS for c in s.cases]
MULTI = [pytest.param(s, c, id=f"{s.name}-{c.id}") for s in SPECS for c in s.cases
         if len(c.shapes) > 1]


@pytest.mark.parametrize("spec, c", ALL)
def test_vmap_equals_loop(spec, c):
    p, draws, stacked = _batch_inputs(spec, c)
    got = pearlnet.vmap(p.f)(*stacked)
    _assert_batched(got, _loop(p.f, draws))


@pytest.mark.parametrize("spec, c", ALL)
def test_vmap_last_axis_in_and_out(spec, c):
    """Batch axes elsewhere than first, in and out: the rules' axis bookkeeping."""
    p, draws, _ = _batch_inputs(spec, c)
    stacked = [np.stack([d[i] for d in draws], axis=-1) for i in range(len(draws[0]))]
    got = pearlnet.vmap(p.f, in_axes=-1, out_axes=-1)(*stacked)
    _assert_batched(got, _loop(p.f, draws), out_axis=-1)


@pytest.mark.parametrize("spec, c", MULTI)
def test_vmap_first_argument_shared(spec, c):
    p, draws, stacked = _batch_inputs(spec, c)
    shared = draws[0][0]
    in_axes = (None,) + (0,) * (len(stacked) - 1)
    got = pearlnet.vmap(p.f, in_axes=in_axes)(shared, *stacked[1:])
    _assert_batched(got, _loop(p.f, draws, {0: shared}))


@pytest.mark.parametrize("spec, c", MULTI)
def test_vmap_only_first_argument_batched(spec, c):
    p, draws, stacked = _batch_inputs(spec, c)
    rest = draws[0][1:]
    in_axes = (0,) + (None,) * (len(stacked) - 1)
    got = pearlnet.vmap(p.f, in_axes=in_axes)(stacked[0], *rest)
    _assert_batched(got, _loop(p.f, draws, {i + 1: r for i, r in enumerate(rest)}))


# ---- every primitive has a rule --------------------------------------------------------------
#: registered primitives without a batching rule, each with the reason (none today)
EXEMPT: dict[str, str] = {}


def test_every_registered_primitive_has_a_batching_rule():
    import pearlnet.distributed  # noqa: F401  (registers sum_across)

    missing = sorted(n for n, p in primitives.items() if p.batch is None and n not in EXEMPT
                     and p.module.startswith("pearlnet."))
    assert not missing, f"primitives without a batching rule: {missing}"


def test_missing_rule_names_primitive_and_axes():
    prim = Primitive("vmap_test_no_rule", lambda x: x * 2, register=False)
    prim.defvjp(lambda g, ans, x: g * 2)
    with pytest.raises(NotImplementedError, match=r"vmap_test_no_rule.*\(1,\)"):
        pearlnet.vmap(lambda x: prim(x), in_axes=1)(np.ones((2, 3)))


# ---- data-dependent primitives are batched, not stripped -------------------------------------
def test_comparisons_argmax_and_where_conditions_are_batched():
    x = np.array([[1.0, -2.0, 3.0], [-1.0, 5.0, 0.5]])

    def f(v):
        return pnp.where(v > 0, v, 0.0 * v), pnp.argmax(v), pnp.sign(v), pnp.stop_gradient(v)

    got = pearlnet.vmap(f)(x)
    for g, w in zip(got, _loop(f, [(r,) for r in x])):
        np.testing.assert_array_equal(g, w)


def test_python_branch_on_batched_value_is_an_error():
    def f(v):
        if pnp.sum(v) > 0:
            return v
        return -v

    with pytest.raises(TypeError, match="vmap: bool"):
        pearlnet.vmap(f)(np.ones((2, 3)))


def test_per_example_shapes_are_seen():
    seen = []

    def f(v):
        seen.append((v.shape, v.ndim, pnp.shape(v), len(v)))
        assert isinstance(v, BatchTracer)
        return v

    pearlnet.vmap(f, in_axes=1)(np.zeros((4, 5, 6)))
    assert seen == [((4, 6), 2, (4, 6), 4)]


# ---- composition ---------------------------------------------------------------------------
def _mlp(params, x):
    h = pnp.tanh(x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def _loss(params, x, y):
    """Mean cross-entropy over a batch (rows of x, integer labels y)."""
    return pearlnet.nn.losses.categorical_crossentropy(y, _mlp(params, x), from_logits=True)


def _params(rng, dtype=np.float64):
    return {"W1": rng.standard_normal((5, 4)).astype(dtype),
            "b1": rng.standard_normal(4).astype(dtype),
            "W2": rng.standard_normal((4, 3)).astype(dtype),
            "b2": rng.standard_normal(3).astype(dtype)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_example_gradients(dtype):
    rng = np.random.default_rng(0)
    params, X, Y = _params(rng, dtype), rng.standard_normal((6, 5)).astype(dtype), \
        rng.integers(0, 3, 6)

    def one(p, x, y):
        return _loss(p, x[None], y[None])

    got = pearlnet.vmap(pearlnet.grad(one), in_axes=(None, 0, 0))(params, X, Y)
    want = [pearlnet.grad(one)(params, X[n], Y[n]) for n in range(len(X))]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in params:
        assert got[k].dtype == dtype
        np.testing.assert_allclose(got[k], np.stack([w[k] for w in want]), rtol=tol, atol=tol)


def test_vmap_of_jvp_and_hvp():
    rng = np.random.default_rng(1)
    X, V = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))

    def f(x):
        return pnp.sum(pnp.sin(x) * x ** 2)

    got = pearlnet.vmap(lambda x, v: pearlnet.jvp(f, (x,), (v,)))(X, V)
    want = [pearlnet.jvp(f, (x,), (v,)) for x, v in zip(X, V)]
    np.testing.assert_allclose(got[0], [w[0] for w in want], rtol=1e-12)
    np.testing.assert_allclose(got[1], [w[1] for w in want], rtol=1e-12)
    hv = pearlnet.vmap(lambda x, v: pearlnet.hvp(f, x, v))(X, V)
    np.testing.assert_allclose(hv, [pearlnet.hvp(f, x, v) for x, v in zip(X, V)], rtol=1e-12)


def test_grad_of_vmap():
    rng = np.random.default_rng(2)
    params, X = _params(rng), rng.standard_normal((6, 5))

    def total(p):
        outs = pearlnet.vmap(lambda x: pnp.sum(pnp.tanh(_mlp(p, x[None]))), in_axes=0)(X)
        return pnp.sum(outs ** 2)

    def looped(p):
        return sum(pnp.sum(pnp.tanh(_mlp(p, X[n][None]))) ** 2 for n in range(len(X)))

    got, want = pearlnet.grad(total)(params), pearlnet.grad(looped)(params)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12)


def test_nested_vmap():
    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal(5)
    got = pearlnet.vmap(pearlnet.vmap(lambda a, v: pnp.tanh(a @ v), in_axes=(0, None)),
                        in_axes=(0, None))(A, x)
    np.testing.assert_allclose(got, np.tanh(A @ x), rtol=1e-12)


def test_jit_of_vmap_of_grad():
    rng = np.random.default_rng(4)
    params, X, Y = _params(rng), rng.standard_normal((6, 5)), rng.integers(0, 3, 6)

    def one(p, x, y):
        return _loss(p, x[None], y[None])

    per_example = pearlnet.vmap(pearlnet.grad(one), in_axes=(None, 0, 0))
    compiled = pearlnet.jit(per_example)
    want = per_example(params, X, Y)
    for _ in range(2):  # the recording, then the replay
        got = compiled(params, X, Y)
        for k in params:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12)
    assert compiled.cache_info()["compiles"] == 1


def test_vmap_of_conv_pool_and_lstm_layers_equals_loop():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((2, 3, 3, 3))
    X = rng.standard_normal((4, 3, 6, 6))

    def f(w, x):
        cols = pnp.im2col(x[None], 3, 1, 1)  # (C, 3, 3, H, W, 1)
        y = pnp.einsum("ocij,cijhwn->nohw", w, cols)
        return pnp.window_max(pnp.relu(y), 2)[0]

    g = pearlnet.vmap(pearlnet.grad(lambda w, x: pnp.sum(f(w, x) ** 2)), in_axes=(None, 0))(W, X)
    want = np.stack([pearlnet.grad(lambda w, x: pnp.sum(f(w, x) ** 2))(W, x) for x in X])
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)
    z, c = rng.standard_normal((4, 8)), rng.standard_normal((4, 2))
    step = pearlnet.grad(lambda z, c: pnp.sum(pnp.lstm_cell(z, c)[0] ** 2), argnums=(0, 1))
    got = pearlnet.vmap(step)(z, c)
    for k in range(2):
        np.testing.assert_allclose(got[k], np.stack([step(a, b)[k] for a, b in zip(z, c)]),
                                   rtol=1e-12, atol=1e-12)


def test_unbatched_output_is_broadcast_and_trees_of_axes():
    out = pearlnet.vmap(lambda x, c: {"x": x["a"] * 2, "c": c}, in_axes=({"a": 0}, None),
                        out_axes={"x": 1, "c": None})
    got = out({"a": np.ones((3, 2))}, np.ones(2))
    assert got["x"].shape == (2, 3) and got["c"].shape == (2,)
    got = pearlnet.vmap(lambda x: 1.0 + 0 * pnp.sum(np.ones(2)))(np.ones((3, 2)))
    assert got.shape == (3,)


# ---- errors ----------------------------------------------------------------------------------
def test_in_axes_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"vmap\(.*in_axes \(0,\) has 1 entries for 2"):
        pearlnet.vmap(lambda a, b: a + b, in_axes=(0,))(np.ones(3), np.ones(3))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match=r"vmap\(.*in_axes 2 is out of range for argument 0 "
                                         r"of shape \(3, 4\)"):
        pearlnet.vmap(lambda a: a, in_axes=2)(np.ones((3, 4)))


def test_inconsistent_batch_sizes():
    with pytest.raises(ValueError, match=r"vmap\(.*inconsistent batch sizes.*argument 0 has 3"
                                         r".*argument 1 has 4"):
        pearlnet.vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))


def test_nothing_batched_and_bad_out_axes():
    with pytest.raises(ValueError, match="no argument is batched"):
        pearlnet.vmap(lambda a: a, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="out_axes None for an output that depends"):
        pearlnet.vmap(lambda a: a, out_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="in_axes entry 0"):
        pearlnet.vmap(lambda a: a, in_axes=({"b": 0},))({"a": np.ones(3)})


# ---- indices that differ per example ---------------------------------------------------------
#: pnp.getitem, not x[...]: a plain NumPy array indexed by a batched value is NumPy's own
#: __getitem__, which no tracer can enter (as under jit)
INDEXINGS = {
    "labels": lambda x, i: pnp.getitem(x, i),
    "column_of_labels": lambda x, i: pnp.getitem(x, (slice(None), i)),
    "labels_then_slice": lambda x, i: pnp.getitem(x, (i, slice(1, 3))),
    "grid_and_labels": lambda x, i: pnp.getitem(x, (np.arange(2), i)),
    "labels_and_int": lambda x, i: pnp.getitem(x, (i, 2)),
}


@pytest.mark.parametrize("name", sorted(INDEXINGS))
@pytest.mark.parametrize("x_batched", [True, False])
def test_batched_integer_indices_equal_a_loop(name, x_batched):
    rng = np.random.default_rng(_seed("index", name))
    f = INDEXINGS[name]
    xs, idx = rng.standard_normal((B, 4, 5)), rng.integers(0, 4, (B, 2))
    x0 = xs[0]
    in_axes = (0 if x_batched else None, 0)
    got = pearlnet.vmap(f, in_axes=in_axes)(xs if x_batched else x0, idx)
    want = np.stack([f(xs[b] if x_batched else x0, idx[b]) for b in range(B)])
    np.testing.assert_array_equal(got, want)
    # and the gradient through it (untake with a batched index)
    def g(x, i):
        return pearlnet.grad(lambda v: pnp.sum(f(v, i) ** 2))(x)

    got = pearlnet.vmap(g, in_axes=in_axes)(xs if x_batched else x0, idx)
    want = np.stack([g(xs[b] if x_batched else x0, idx[b]) for b in range(B)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_vmap_of_jit_and_jit_of_data_dependent_vmap():
    x = np.random.default_rng(6).standard_normal((5, 4))

    def f(v):
        return pnp.where(v > 0, v ** 2, -v), pnp.argmax(v), pnp.max(v)

    want = _loop(f, [(r,) for r in x])
    inner = pearlnet.jit(f)
    compiled = pearlnet.jit(pearlnet.vmap(f))
    for got in (pearlnet.vmap(inner)(x), compiled(x), compiled(x)):  # record, then replay
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    assert inner.cache_info()["inlined"] == 1  # under vmap, jit runs f as it is
    assert compiled.cache_info()["compiles"] == 1
