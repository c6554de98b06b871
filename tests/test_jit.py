"""pearlnet.jit: recording, replay and the cache; exactness over the primitive spec table;
composition with the transforms; the passes (fusion with Numba, pearlnet[fast], where it is
installed); the compiled steps of Model, Hessian-free and the LSTM. Exact means bitwise: fusion
compiles only arithmetic IEEE rounds exactly, in NumPy's order, so it keeps the bits too."""

from __future__ import annotations

import numpy as np
import pytest

import pearlnet
import pearlnet.numpy as pnp
from pearlnet import jit
from pearlnet.autodiff import fusion, passes
from pearlnet.autodiff.program import Eqn, Program, Var
from test_primitives import Problem, _params


def leaves(tree):
    return pearlnet.tree_flatten(tree)[0]


def assert_same(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype, (x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_array_equal(x, y)


def twice(f, *args):
    """The recording's result and the replay's, for f compiled."""
    g = jit(f)
    first = g(*args)
    second = g(*args)
    assert g.cache_info()["compiles"] == 1
    return first, second


# ---- exactness over the spec table ---------------------------------------------------------
@pytest.mark.parametrize("spec, c", _params(per_argnum=False))
def test_value_gradient_and_hvp_replay_bitwise(spec, c):
    p = Problem(spec, c)
    want = p.f(*p.xs)
    for got in twice(lambda *xs: p.f(*xs), *p.xs):
        assert_same(got, want)
    for i in spec.diff_argnums(c):
        Li = p.only(p.L, i)
        x = p.xs[i]
        v = np.random.default_rng(i).standard_normal(x.shape).astype(x.dtype)
        want_g, want_hv = pearlnet.grad(Li)(x), pearlnet.hvp(Li, x, v)
        for got in twice(pearlnet.grad(Li), x):
            assert_same(got, want_g)
        for got in twice(lambda x, v, Li=Li: pearlnet.hvp(Li, x, v), x, v):
            assert_same(got, want_hv)


@pytest.mark.parametrize("spec, c", _params(lambda s: s.analytic, per_argnum=False))
def test_complex_step_and_float32_replay_bitwise(spec, c):
    p = Problem(spec, c)
    i = spec.diff_argnums(c)[0]
    x = p.xs[i]
    z = x + 1e-20j * np.random.default_rng(3).standard_normal(x.shape)
    g = pearlnet.grad(p.only(p.L, i))
    with pearlnet.check.complex_step():
        want = g(z)
        for got in twice(g, z):
            assert_same(got, want)
    p32 = Problem(spec, c, np.float32)
    f32 = pearlnet.grad(p32.only(p32.L, i))
    for got in twice(f32, p32.xs[i]):
        assert_same(got, f32(p32.xs[i]))


# ---- composition --------------------------------------------------------------------------
def f(w, x):
    return pnp.sum(pnp.tanh(x @ w) ** 2) + pnp.sum(pnp.relu(w) * w)


@pytest.fixture
def wx(rng):
    return rng.standard_normal((4, 3)), rng.standard_normal((5, 4)), rng.standard_normal((4, 3))


def test_jit_of_transforms_and_transforms_of_jit(wx):
    w, x, v = wx
    cases = [
        (lambda w: pearlnet.grad(f)(w, x), lambda w: pearlnet.grad(jit(f))(w, x)),
        (lambda w: pearlnet.hvp(lambda a: f(a, x), w, v),
         lambda w: pearlnet.hvp(lambda a: jit(f)(a, x), w, v)),
        (lambda w: pearlnet.jvp(lambda a: f(a, x), (w,), (v,)),
         lambda w: pearlnet.jvp(lambda a: jit(f)(a, x), (w,), (v,))),
        (lambda w: pearlnet.vjp(lambda a: jnp_tanh(x @ a), w)[1](np.ones((5, 3))),
         lambda w: pearlnet.vjp(jit(lambda a: jnp_tanh(x @ a)), w)[1](np.ones((5, 3)))),
        (lambda w: pearlnet.gauss_newton_vp(lambda a: pnp.tanh(x @ a),
                                            lambda z: 0.5 * pnp.sum(z * z), w, v),
         lambda w: pearlnet.gauss_newton_vp(jit(lambda a: pnp.tanh(x @ a)),
                                            lambda z: 0.5 * pnp.sum(z * z), w, v)),
    ]
    for plain, outer in cases:
        want = plain(w)
        for got in twice(plain, w):  # jit(transform)
            assert_same(got, want)
        assert_same(outer(w), want)  # transform(jit)


def jnp_tanh(a):
    return pnp.tanh(a)


def test_jit_inside_jit_and_closures_over_a_transform(wx):
    w, x, _ = wx
    inner = jit(lambda a: pnp.sin(a) * a)
    outer = jit(lambda a: pnp.sum(x @ inner(a)))
    assert_same(outer(w), pnp.sum(x @ (pnp.sin(w) * w)))
    assert_same(outer(w), pnp.sum(x @ (pnp.sin(w) * w)))
    assert inner.cache_info()["inlined"] == 1 and inner.cache_info()["compiles"] == 0
    # f reads a value of the enclosing grad through a closure: it runs as it is
    g = pearlnet.grad(lambda a: jit(lambda b: pnp.sum(b * a))(np.ones_like(w)))(w)
    assert_same(g, np.ones_like(w))


def test_float32_float64_and_complex128():
    for dtype in (np.float32, np.float64, np.complex128):
        x = (np.arange(6.0).reshape(2, 3) / 7).astype(dtype)
        fn = jit(pearlnet.grad(lambda a: pnp.sum(pnp.exp(a) * pnp.sin(a))))
        with pearlnet.check.complex_step():
            want = pearlnet.grad(lambda a: pnp.sum(pnp.exp(a) * pnp.sin(a)))(x)
            assert_same(fn(x), want)
            assert_same(fn(x), want)


# ---- what is traced, what is static, and branches -----------------------------------------
def test_a_branch_on_a_traced_value_names_the_line():
    def g(x):
        if pnp.sum(x) > 0:  # the line the error names
            return x
        return -x

    with pytest.raises(TypeError, match=r"test_jit\.py:\d+"):
        jit(g)(np.ones(3))
    with pytest.raises(TypeError, match="bool"):
        jit(pearlnet.grad(lambda x: pnp.sum(x) if pnp.sum(x) > 0 else -pnp.sum(x)))(np.ones(3))
    with pytest.raises(TypeError, match="item"):
        jit(lambda x: x * x.sum().item())(np.ones(3))
    # eager mode keeps Python control flow on values
    assert pearlnet.grad(lambda x: pnp.sum(x) if pnp.sum(x) > 0 else -pnp.sum(x))(
        np.ones(3)).tolist() == [1.0, 1.0, 1.0]


def test_shapes_and_static_arguments_key_the_cache():
    calls = []

    def g(x, n, scale):
        calls.append(1)
        return pnp.sum(x[:n]) * scale if x.shape[0] > 2 else x

    c = jit(g, static_argnums=1)
    c(np.ones(4), 2, 3.0)
    c(np.ones(4) * 2, 2, 3.0)  # replayed
    assert len(calls) == 1 and c.cache_info()["programs"] == 1
    assert float(c(np.ones(4) * 2, 2, 3.0)) == 12.0
    c(np.ones(5), 2, 3.0)  # a new shape
    c(np.ones(4), 3, 3.0)  # a new static value
    c(np.ones(4), 2, 2.0)  # Python numbers are static
    c(np.ones(4, np.float32), 2, 3.0)  # a new dtype
    assert len(calls) == 5 and c.cache_info()["compiles"] == 5
    small = jit(lambda x: x + 1, cache_size=2)
    for n in range(1, 5):
        small(np.ones(n))
    assert small.cache_info()["programs"] == 2
    with pytest.raises(TypeError, match="neither an array nor a static value"):
        jit(lambda x, o: x)(np.ones(2), object())


def test_closure_arrays_are_constants_and_inputs_are_not():
    data = np.arange(3.0)
    c = jit(lambda x: x * data)
    assert c(np.ones(3)).tolist() == [0.0, 1.0, 2.0]
    assert c(np.full(3, 2.0)).tolist() == [0.0, 2.0, 4.0]


def test_outputs_are_fresh_arrays_never_buffers():
    c = jit(lambda x: pnp.tanh(x * 2.0) + 1.0)
    a = c(np.ones((8, 8)))
    b = c(np.zeros((8, 8)))
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, np.tanh(2.0) + 1.0)


# ---- the passes ---------------------------------------------------------------------------
def record(fn, *args):
    c = jit(fn)
    c(*args)
    return c.program(*args)


def test_dead_code_is_removed():
    prog = record(lambda x: (pnp.exp(x), pnp.sin(x))[1], np.ones(3))
    assert [e.prim.name for e in prog.eqns] == ["sin"]
    # hvp's unused primal gradient leaves nothing behind
    prog = record(lambda x, v: pearlnet.hvp(lambda a: pnp.sum(pnp.tanh(a)), x, v),
                  np.ones(3), np.ones(3))
    assert len(prog.eqns) < len(record(lambda x, v: pearlnet.jvp(
        pearlnet.grad(lambda a: pnp.sum(pnp.tanh(a))), (x,), (v,)), np.ones(3),
        np.ones(3)).eqns) + 1


def test_common_subexpressions_are_merged():
    prog = record(lambda x: pnp.exp(x) * pnp.exp(x) + pnp.exp(x), np.ones(3))
    assert [e.prim.name for e in prog.eqns].count("exp") == 1


def test_folding_what_does_not_depend_on_the_inputs():
    data = np.arange(3.0)
    prog = Program([0], [], [], [None, None, None])
    ex = pnp.exp.eager
    prog.eqns = [Eqn(ex, pnp.exp, [data], {}, 1), Eqn(np.add, pnp.add, [Var(1), Var(0)], {}, 2)]
    prog.outputs = [Var(2)]
    passes.fold(prog)
    assert len(prog.eqns) == 1 and type(prog.eqns[0].args[0]) is np.ndarray
    np.testing.assert_array_equal(prog.eqns[0].args[0], np.exp(data))
    # binding an input folds what depends on it alone (Hessian-free's product per step)
    prog = Program([0, 1], [Eqn(ex, pnp.exp, [Var(0)], {}, 2),
                            Eqn(np.multiply, pnp.multiply, [Var(2), Var(1)], {}, 3)],
                   [Var(3)], [None] * 4)
    passes.fold(prog, {0: np.zeros(2)})
    assert prog.inputs == [1] and len(prog.eqns) == 1


def test_collectives_are_kept_in_order_never_merged_or_dropped():
    import pearlnet.train  # noqa: F401  (marks sum_across as a collective)
    from pearlnet.distributed import SingleProcess, sum_across

    comm = SingleProcess()

    def g(x):
        a = sum_across(x, comm)
        sum_across(x, comm)  # unused, and the same as a: kept all the same
        return a * 2.0

    prog = record(g, np.ones(3))
    assert [e.prim.name for e in prog.eqns] == ["sum_across", "sum_across", "multiply"]
    assert all(e.effect for e in prog.eqns[:2])


def test_buffers_are_reused_from_liveness():
    def chain(x):
        for _ in range(20):
            x = pnp.tanh(x * 1.5 + 0.25)
        return pnp.sum(x)

    prog = record(chain, np.ones((64, 64)))
    inplace = [e for e in prog.eqns if e.out_buf is not None and e.out_buf[0] == "arg"]
    assert len(prog.eqns) >= 40  # 60 operations, or 40 with the multiply-adds fused
    assert len(inplace) >= len(prog.eqns) - 2  # each result written over its dying argument
    assert len(prog.slots) <= 2  # a couple of persistent buffers for all of them
    x = np.random.default_rng(0).standard_normal((64, 64))
    c = jit(chain)
    assert_same([c(x), c(x)], [chain(x), chain(x)])


def test_results_of_other_shapes_share_a_buffer_once_its_reader_has_run():
    """Persistent buffers are flat and shared by size: a (64, 48) product, then a (48, 64)
    one, a (32, 64) one and a transposed result, each dead before the next is made, live in
    one buffer (each a view of its first entries, in its own layout); same bits."""

    def chain(x, w, v):
        a = x @ w  # (64, 48)
        b = pnp.transpose(a) @ x  # (48, 64): a dies here
        c = b[:32] @ v  # (32, 64)
        return pnp.sum(pnp.tanh(c))

    rng = np.random.default_rng(0)
    x, w, v = rng.standard_normal((64, 64)), rng.standard_normal((64, 48)), \
        rng.standard_normal((64, 64))
    c = jit(chain)
    expect = chain(x, w, v)
    assert_same([c(x, w, v), c(x, w, v)], [expect, expect])
    prog = c.program(x, w, v)
    shapes = {view[1] for view in prog.views}
    assert {(64, 48), (48, 64), (32, 64)} <= shapes
    assert len(prog.slots) < len(prog.views)  # fewer buffers than results in them
    assert sum(int(np.prod(s)) for s, _, _ in prog.slots) <= 2 * 64 * 64


def test_fusion_of_elementwise_chains_keeps_the_bits(rng):
    pytest.importorskip("numba")
    from pearlnet.optim import Adam

    opt = Adam(weight_decay=0.01)
    params = {"W": rng.standard_normal((64, 96)).astype(np.float32),
              "b": rng.standard_normal(96).astype(np.float32)}
    a = b = params
    sa = sb = opt.init(params)
    for _ in range(3):
        grads = pearlnet.tree_map(lambda p: rng.standard_normal(p.shape).astype(p.dtype),
                                  params)
        a, sa = opt.update(a, grads, sa)
        b, sb = opt.compiled_update(b, grads, sb)
    assert_same((a, sa["m"], sa["v"]), (b, sb["m"], sb["v"]))
    program = next(iter(opt._program.cache.values()))[0]
    kernels = [e for e in program.eqns if e.prim is None]
    assert len(kernels) == 3  # m, v and the parameter: one loop each (the bias stays NumPy's)
    chain = jit(lambda x, y: pnp.sqrt(x * x + y * y) / (x - 2.0 * y) - x)
    x, y = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    assert_same([chain(x, y), chain(x, y)], [np.sqrt(x * x + y * y) / (x - 2.0 * y) - x] * 2)
    assert len(chain.program(x, y).eqns) == 1
    assert fusion.available()


def test_inputs_are_never_written():
    x = np.random.default_rng(0).standard_normal((16, 16))
    keep = x.copy()
    c = jit(lambda a: pnp.sum(pnp.tanh(a * 2.0) * a))
    c(x)
    c(x)
    np.testing.assert_array_equal(x, keep)


# ---- Model, Hessian-free, LSTM --------------------------------------------------------------
def _fit(jit_on, layers, x, y, **kw):
    from pearlnet.optim import Adam

    model = pearlnet.Model(layers(), seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2), metrics=["accuracy"],
                  jit=jit_on)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=5, **kw)
    return model, history.history


def _mlp():
    from pearlnet import nn

    return [nn.Dense(16, activation="relu", input_shape=(6,)), nn.Dropout(0.4),
            nn.BatchNorm(), nn.Dense(3)]


def test_fit_evaluate_predict_same_numbers_with_and_without_jit(rng):
    x = rng.standard_normal((100, 6)).astype(np.float32)  # 100 = 3 batches of 32 and one of 4
    y = rng.integers(0, 3, 100)
    (a, ha), (b, hb) = _fit(True, _mlp, x, y), _fit(False, _mlp, x, y)
    assert ha == hb
    assert_same((a.params, a.state, a.opt_state["m"], a.opt_state["v"]),
                (b.params, b.state, b.opt_state["m"], b.opt_state["v"]))
    assert_same(a.predict(x, batch_size=30), b.predict(x, batch_size=30))
    assert a.evaluate(x, y) == b.evaluate(x, y)
    info = a._programs["training_step"].cache_info()  # gradients and Adam in one program
    assert info["programs"] == 2  # the full batch and the short last one
    assert not b._programs


def test_fit_with_an_optimizer_jit_cannot_compile_is_the_same_too(rng):
    from pearlnet.optim import NoisySGD

    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    params = []
    for flag in (True, False):
        model = pearlnet.Model(_mlp(), seed=0)
        model.compile(loss="categorical_crossentropy", optimizer=NoisySGD(seed=3), jit=flag)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=1)
        params.append(model.params)
    assert_same(params[0], params[1])


def test_dropout_masks_are_program_inputs_not_constants():
    from pearlnet import nn
    from pearlnet.nn.random import SampleStream

    layer = nn.Dropout(0.5, name="drop")
    x = np.ones((4, 8), np.float32)

    def masked(x, seed_epoch, indices):
        stream = SampleStream(seed_epoch[0], seed_epoch[1], indices)
        return layer.forward({}, x, training=True, rng=stream)[0]

    c = jit(masked)
    for seed, epoch, idx in ((1, 0, [0, 1, 2, 3]), (1, 0, [4, 5, 6, 7]), (2, 3, [0, 1, 2, 3])):
        idx = np.array(idx)
        got = c(x, np.array([seed, epoch]), idx)
        want = layer.forward({}, x, training=True, rng=SampleStream(seed, epoch, idx))[0]
        assert_same(got, want)
    assert c.cache_info()["compiles"] == 1
    a = c(x, np.array([1, 0]), np.arange(4))
    b = c(x, np.array([1, 0]), np.arange(4, 8))
    assert not np.array_equal(a, b)  # other samples, other masks


def test_hessian_free_product_is_compiled_and_exact(rng):
    from pearlnet.optim import HessianFree

    x = rng.standard_normal((30, 5))
    w0 = rng.standard_normal(5 * 4 + 4 * 5) * 0.3

    def net(w, batch):
        return pnp.tanh(batch @ pnp.reshape(w[:20], (5, 4))) @ pnp.reshape(w[20:], (4, 5))

    def loss(z, batch):
        return 0.5 * pnp.sum((z - batch) ** 2) / 30

    results = []
    for flag in (True, False):
        hf = HessianFree(net, loss, cg_max_iters=20, jit=flag)
        w, state = w0.copy(), None
        state = hf.init(w)
        for _ in range(3):
            w, state, info = hf.step(w, state, x)
        results.append((w, state["direction"], info["cg_iters"]))
    assert_same(results[0][:2], results[1][:2])
    assert results[0][2] == results[1][2]


def test_lstm_gradient_and_hvp_compiled_exactly(rng):
    from pearlnet import nn

    layer = nn.LSTM(5, return_sequences=True)
    params = layer.init(0, (7, 3))
    x = rng.standard_normal((4, 7, 3)).astype(np.float32)
    v = pearlnet.tree_map(lambda a: np.ones_like(a), params)

    def loss(p):
        return pnp.mean(pnp.square(layer.apply(p, x)))

    want = pearlnet.value_and_grad(loss)(params)
    for got in twice(pearlnet.value_and_grad(loss), params):
        assert_same(got, want)
    want = pearlnet.hvp(loss, params, v)
    for got in twice(lambda p, v: pearlnet.hvp(loss, p, v), params, v):
        assert_same(got, want)


def test_call_into_writes_outputs_into_offered_arrays_with_the_same_numbers():
    import pearlnet

    def f(w, x):
        return pearlnet.grad(lambda w: pnp.sum(pnp.tanh(x @ w) ** 2))(w), pnp.sum(x)

    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((4, 3)), rng.standard_normal((5, 4))
    compiled = pearlnet.jit(f)
    expected = compiled(w, x)  # records the program
    target = np.empty((4, 3))
    g, s = compiled.call_into([target, None], w, x)
    np.testing.assert_array_equal(g, expected[0])
    assert g is target  # computed right in the offered array
    # an array that does not fit (shape, dtype, layout) is ignored, never written
    wrong = np.zeros((3, 4))
    g2, _ = compiled.call_into([wrong, None], w, x)
    assert g2 is not wrong and not wrong.any()
    np.testing.assert_array_equal(g2, expected[0])


def test_packed_tree_views_share_one_buffer_per_dtype():
    from pearlnet.distributed import PackedTree

    tree = {"a": np.ones((2, 3), np.float32), "b": np.arange(4.0), "c": np.zeros(3, np.float32)}
    packed = PackedTree(tree)
    assert sorted(str(d) for d in packed.buffers) == ["float32", "float64"]
    assert packed.buffers[np.dtype(np.float32)].size == 9
    assert all(np.shares_memory(v, packed.buffers[v.dtype]) for v in packed.views)
    assert packed.fits({"a": np.zeros((2, 3), np.float32), "b": np.ones(4),
                        "c": np.ones(3, np.float32)})
    assert not packed.fits({"a": np.zeros((2, 3)), "b": np.ones(4), "c": np.ones(3)})


def test_outputs_held_by_the_caller_are_never_recycled_and_free_ones_are():
    import pearlnet.autodiff.program as program

    step = jit(lambda w, g: w - 0.1 * g)
    w, g = np.ones(1000), np.full(1000, 2.0)
    held = [step(w, g)]  # a caller keeping every result: none may be overwritten
    for _ in range(5):
        held.append(step(held[-1], g))
    np.testing.assert_allclose([h[0] for h in held], 1 - 0.2 * np.arange(1, 7), atol=1e-12)
    made = []
    real = program.empty
    program.empty = lambda *spec: made.append(spec) or real(*spec)
    try:
        w = held[-1]
        del held
        for _ in range(6):  # keeping only the last result (and its input): recycled
            w = step(w, g)
    finally:
        program.empty = real
    assert len(made) <= 3
    np.testing.assert_allclose(w[0], 1 - 0.2 * 12, atol=1e-12)


def test_donated_arguments_are_written_over_once_read_and_never_before():
    """donate_argnums: an output of a donated array's shape lands in that array once the
    program has read it for the last time; a donated array still read later is not written
    before that read; the numbers are those of f."""

    def after(w, g):  # w's last reader is the update: written in place
        s = pnp.sum(w)
        return w - 0.1 * pnp.tanh(g) * w, s

    def before(w, g):  # w is read after the update: the update may not go over it
        new = w - 0.1 * pnp.tanh(g) * w
        return new, pnp.sum(w)

    g = np.linspace(-1.0, 1.0, 4096).reshape(64, 64)
    for fn, in_place in ((after, True), (before, False)):
        step = jit(fn, donate_argnums=0)
        expect = fn(np.full((64, 64), 3.0), g)
        step(np.full((64, 64), 3.0), g)  # the recording computes into fresh arrays
        for _ in range(2):
            w = np.full((64, 64), 3.0)
            new, total = step(w, g)
            assert (new is w) == in_place
            np.testing.assert_array_equal(new, expect[0])
            assert float(total) == float(expect[1])
        assert g[0, 0] == -1.0  # an argument not donated is never written


def test_an_output_written_over_a_donated_input_is_not_written_again():
    """v_new lands in v's memory (donated, dead after it) and is then read by sqrt: nothing
    may be written over it afterwards, in place or otherwise (it is returned)."""

    def rms(v, g):
        v_new = v * 0.9 + g * g
        return v_new, g / pnp.sqrt(v_new + 1e-8)

    g = np.linspace(0.5, 1.5, 256)
    step = jit(rms, donate_argnums=0)
    step(np.ones(256), g)
    v = np.ones(256)
    v_new, update = step(v, g)
    expect = rms(np.ones(256), g)
    assert v_new is v
    np.testing.assert_array_equal(v_new, expect[0])
    np.testing.assert_array_equal(update, expect[1])


def test_donation_refuses_shared_read_only_and_static_arguments():
    step = jit(lambda w, g: w - g, donate_argnums=0)
    w = np.ones(100)
    step(w.copy(), w)
    with pytest.raises(ValueError, match=r"jit\(<lambda>\): argument leaves 0 and 1 share "
                                         r"memory and the first is donated"):
        step(w, w[::-1])
    frozen = np.ones(100)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="donated argument leaf 0 is read-only"):
        step(frozen, w)
    with pytest.raises(ValueError, match="both static and donated"):
        jit(lambda w, n: w, static_argnums=1, donate_argnums=(0, 1))
    with pytest.raises(ValueError, match="donate_argnums .* does not fit 2 arguments"):
        jit(lambda w, g: w - g, donate_argnums=5)(w.copy(), w)
    tree = jit(lambda p, g: {k: v - g for k, v in p.items()}, donate_argnums=0)
    tree({"a": np.ones(100), "b": np.ones(100)}, w)
    p = {"a": np.ones(100), "b": np.ones(100)}
    out = tree(p, w)
    assert out["a"] is p["a"] and out["b"] is p["b"]
    np.testing.assert_array_equal(out["a"], np.zeros(100))


def test_tanh_and_sigmoid_derivatives_fuse_into_one_loop_in_place_and_keep_the_bits():
    """tanh_grad and sigmoid_grad state their arithmetic (fused_form): compiled, each is one
    loop written over its dying cotangent (no buffer of its own), bit for bit the eager
    three passes."""
    if not fusion.available():
        pytest.skip("fusion needs Numba (pearlnet[fast]), which the test extra installs")
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((64, 96)).astype(dtype)
        w = rng.standard_normal((96, 96)).astype(dtype)

        def loss(w, x):
            h = pnp.tanh(x @ w)
            return pnp.sum(pnp.sigmoid(h @ w) * h)

        step = pearlnet.jit(pearlnet.value_and_grad(loss))
        want = pearlnet.value_and_grad(loss)(w, x)
        for _ in range(2):  # the recording, then a replay
            got = step(w, x)
            assert got[0] == want[0] and np.array_equal(got[1], want[1])
        eqns = step.program(w, x).eqns
        names = [getattr(e.fn, "__name__", "") for e in eqns]
        assert not any(n in ("tanh_grad", "sigmoid_grad") for n in names), names
        loops = [e for e in eqns if "(a1[i] * a1[i])" in getattr(e.fn, "__name__", "")
                 or "- a1[i]) * a1[i])" in getattr(e.fn, "__name__", "")]
        assert len(loops) == 2 and all(e.out_buf[0] == "arg" for e in loops)


def test_slice_cotangents_are_added_as_soon_as_they_are_made(monkeypatch):
    """The reverse pass adds each slice's cotangent into the whole's only when it reaches the
    whole, at the end; hoist_accumulations moves each addition up, so the slices' cotangents
    die at once instead of waiting, one buffer each, with the same bits."""
    rng = np.random.default_rng(0)
    # slices (32 x 128) larger than the step's values (32 x 64): waiting, their cotangents
    # could not borrow those values' buffers, which the buffer plan shares by size
    x = rng.standard_normal((12, 32, 128))
    w = rng.standard_normal((192, 64))

    def loss(x, w):
        steps = [x[t] for t in range(12)]  # all slices first, as the LSTM layer takes them
        h = pnp.zeros((32, 64))
        for xt in steps:  # a recurrence over the slices, as an LSTM's time steps
            h = pnp.tanh(xt @ w[:128] + h @ w[128:])
        return pnp.sum(h * h)

    def slot_bytes(step):
        return sum(int(np.prod(s)) * np.dtype(d).itemsize
                   for s, d, _ in step.program(x, w).slots)

    want = pearlnet.grad(loss)(x, w)
    hoisted = jit(pearlnet.grad(loss))
    for _ in range(2):
        assert np.array_equal(hoisted(x, w), want)
    monkeypatch.setattr(passes, "hoist_accumulations", lambda program: None)
    waiting = jit(pearlnet.grad(loss))
    assert np.array_equal(waiting(x, w), want)
    # the cotangents of x's 12 slices (32 x 128 each) no longer wait for the end
    assert slot_bytes(waiting) - slot_bytes(hoisted) >= 10 * 32 * 128 * 8
