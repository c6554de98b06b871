"""Model.fit's compiled step writes its results in place (donated arrays): the same numbers as
the uncompiled step, with and without TerminateOnNaN, and never over an array anybody else
holds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pearlnet
from pearlnet import nn
from pearlnet.autodiff import tree_flatten
from pearlnet.autodiff.tree import sole_holder
from pearlnet.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSProp

OPTIMIZERS = [lambda: SGD(0.05), lambda: Momentum(0.05), lambda: Nesterov(0.05),
              lambda: RMSProp(0.01), lambda: AdaGrad(0.05),
              lambda: Adam(0.01, weight_decay=0.1)]


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 40)).astype(np.float32)
    return x, rng.integers(0, 5, n)


def model(optimizer, jit=True):
    # 40 x 64 and 64 x 64 weights have >= 2048 entries: fused (with Numba) and in place;
    # the biases are not: NumPy's calls, in place as well
    m = pearlnet.Model([nn.Dense(64, activation="tanh", input_shape=(40,)),
                        nn.Dense(64, activation="relu"), nn.Dense(5)], seed=3)
    m.compile(loss="categorical_crossentropy", optimizer=optimizer, jit=jit)
    return m


def arrays(tree):
    return [a for a in tree_flatten(tree)[0] if isinstance(a, np.ndarray)]


def same(a, b):
    for x, y in zip(arrays(a), arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("terminate_on_nan", [True, False])
def test_the_in_place_step_gives_the_uncompiled_numbers(make, terminate_on_nan):
    x, y = data()
    runs = {}
    for jit in (True, False):
        m = model(make(), jit)
        m.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=1,
              terminate_on_nan=terminate_on_nan)
        runs[jit] = m
    same(runs[True].params, runs[False].params)
    same(runs[True].opt_state, runs[False].opt_state)
    assert runs[True].opt_state["step"] == runs[False].opt_state["step"] == 18


@pytest.mark.parametrize("terminate_on_nan", [True, False])
def test_the_step_reuses_the_model_s_own_arrays(terminate_on_nan):
    """Unguarded, the new parameters and slots are written over the old ones; guarded
    (TerminateOnNaN), the parameters go over those before the last (the last are what
    TerminateOnNaN would restore), so two sets take turns. The slots stay where they are."""
    x, y = data()
    m = model(Adam(0.01))
    m.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=1, terminate_on_nan=terminate_on_nan)
    params, slots = set(), set()

    class Ids(pearlnet.train.Callback):
        def on_batch_end(self, batch, logs=None):
            params.update(id(a) for a in arrays(self.model.params))
            slots.update(id(a) for a in arrays(self.model.opt_state))

    m.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=2, callbacks=[Ids()],
          terminate_on_nan=terminate_on_nan)  # 12 steps
    n = len(arrays(m.params))
    assert len(slots) == 2 * n
    assert len(params) == (2 * n if terminate_on_nan else n)


def test_arrays_held_elsewhere_are_never_written():
    x, y = data()
    kept = []

    class Keep(pearlnet.train.Callback):
        def on_batch_end(self, batch, logs=None):
            p, s = self.model.params, self.model.opt_state
            if batch % 3 == 0:
                kept.append((p, [a.copy() for a in arrays(p)]))  # the whole tree
            elif batch % 3 == 1:
                layer = next(iter(p.values()))
                kept.append((layer, [a.copy() for a in arrays(layer)]))  # a layer's dict
                kept.append((s, [a.copy() for a in arrays(s)]))  # the optimizer state
            else:
                leaf = arrays(s)[-1]
                kept.append((leaf, [leaf.copy()]))  # one slot array

    for terminate_on_nan in (True, False):
        kept.clear()
        m = model(Adam(0.01))
        m.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=1, callbacks=[Keep()],
              terminate_on_nan=terminate_on_nan)
        for tree, values in kept:
            for a, v in zip(arrays(tree), values, strict=True):
                np.testing.assert_array_equal(a, v)
        plain = model(Adam(0.01), jit=False)
        plain.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=1,
                  terminate_on_nan=terminate_on_nan)
        same(m.params, plain.params)
        same(m.opt_state, plain.opt_state)


def test_callbacks_see_the_updated_model_at_batch_end():
    x, y = data(32)
    class Look(pearlnet.train.Callback):
        def __init__(self, seen):
            super().__init__()
            self.seen = seen

        def on_batch_end(self, batch, logs=None):
            self.seen.append([a.copy() for a in arrays(self.model.params)])

    for jit in (True, False):
        seen: list = []
        m = model(SGD(0.1), jit)
        before = [a.copy() for a in arrays(m.params)]
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[Look(seen)])
        assert not all(np.array_equal(a, b) for a, b in zip(seen[0], before))
        for a, b in zip(seen[-1], arrays(m.params), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_non_finite_step_is_held_back_in_place_as_without_jit():
    """A NaN in the fourth batch: the compiled step computed its update over the slots and
    the spare parameters, selecting the old values; TerminateOnNaN puts back the parameters
    of the third step, and the optimizer state is the third update's, as without jit."""
    x, y = data()
    x[50, 0] = np.nan  # batch 4 of 16 rows, unshuffled
    runs = {}
    for jit in (True, False):
        m = model(Adam(0.01), jit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        assert any("TerminateOnNaN: loss is nan at epoch 1, batch 4" in str(w.message)
                   for w in caught)
        assert all(np.isfinite(a).all() for a in arrays(m.params) + arrays(m.opt_state))
        runs[jit] = m
    same(runs[True].params, runs[False].params)
    same(runs[True].opt_state, runs[False].opt_state)
    assert runs[True].opt_state["step"] == 3
    # and training goes on from there as it would without jit
    for m in runs.values():
        m.fit(x[:48], y[:48], batch_size=16, epochs=1, shuffle=False, verbose=0)
    same(runs[True].params, runs[False].params)


def test_sole_holder_counts_every_way_to_an_array():
    class Box:
        pass

    box = Box()
    box.tree = {"dense": {"W": np.ones((2, 2)), "b": np.ones(2)}, "out": [np.ones(3)],
                "step": 4}

    def sole():  # not inside an assert: pytest's rewriting keeps the operands (references)
        return sole_holder(box.tree, 1)

    assert sole()
    for grab in (lambda t: t, lambda t: t["dense"], lambda t: t["dense"]["W"],
                 lambda t: t["out"], lambda t: t["out"][0][1:]):
        held = grab(box.tree)
        assert not sole()
        del held
        assert sole()
    box.tree["out"][0] = np.ones(6)[:3]  # a view: its memory is another array's
    assert not sole()
