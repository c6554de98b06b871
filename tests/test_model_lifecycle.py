"""Issue 24 (and issue 23's first defect): the Model lifecycle, dtypes and Keras' edges.

Each test reproduces a defect found when pearlnet was tried as a Keras user would try it."""

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
from pearlnet.optim import Adam, HessianFree
from pearlnet.train import EarlyStopping


def data(rng, n=64, d=3):
    x = rng.standard_normal((n, d))
    return x, x @ np.arange(1.0, d + 1)[:, None] + 4.0


# -- built as soon as the input shape is known (issue 23, defect 1) -------------------------
def test_a_model_is_built_when_its_first_layer_has_an_input_shape():
    m = pearlnet.Model()
    m.add(nn.Dense(300, input_shape=(400,)))
    assert m.built and m.count_params() == 400 * 300 + 300
    assert m.predict(np.ones((2, 400))).shape == (2, 300)
    assert "120,300" in m.summary_text()
    m2 = pearlnet.Model([nn.Dense(300, input_shape=(400,))])
    assert m2.count_params() == 120_300
    # the same weights whether the layers came one by one or as a list
    a = pearlnet.Model([nn.Dense(4, input_shape=(3,)), nn.Dense(2)], seed=5)
    b = pearlnet.Model(seed=5)
    b.add(nn.Dense(4, input_shape=(3,)))
    b.add(nn.Dense(2))
    for la, lb in zip(a.layers, b.layers):
        for k in la.params:
            np.testing.assert_array_equal(la.params[k], lb.params[k])


def test_the_not_built_message_says_what_to_do():
    m = pearlnet.Model([nn.Dense(3)])
    with pytest.raises(RuntimeError, match="input shape is not known yet.*build"):
        m.count_params()
    layer = nn.Dense(3)
    with pytest.raises(RuntimeError, match=r"Dense is not built: call init\(seed, input_shape"):
        layer.count_params()


def test_summary_prints_and_summary_text_returns(capsys):
    m = pearlnet.Model([nn.Dense(3, input_shape=(2,))])
    assert m.summary() is None
    assert "total parameters: 9" in capsys.readouterr().out
    lines = []
    m.summary(print_fn=lines.append)
    assert lines == [m.summary_text()]


# -- a model without input_shape -----------------------------------------------------------
def test_a_model_without_input_shape_builds_on_first_fit_and_predict(rng):
    x, y = data(rng)
    m = pearlnet.Model([nn.Dense(4, activation="tanh"), nn.Dense(1)])
    m.compile(loss="mean_squared_error", optimizer="sgd")
    assert not m.built
    m.fit(x, y, verbose=0, seed=0)
    assert m.built and m.input_shape == (3,)
    p = pearlnet.Model([nn.Dense(2)])
    assert p.predict(np.ones((5, 7))).shape == (5, 2) and p.input_shape == (7,)
    q = pearlnet.Model([nn.Dense(2)])
    assert q(np.ones((1, 6))).shape == (1, 2)


def test_build_takes_keras_shapes_and_an_optional_seed():
    m = pearlnet.Model([nn.Dense(4)])
    assert m.build((None, 3)) == (4,)
    assert m.built and m.predict(np.ones((2, 3))).shape == (2, 4)
    n = pearlnet.Model([nn.Dense(4)])
    n.build((3,), seed=7)
    o = pearlnet.Model([nn.Dense(4)])
    o.build((3,), np.random.default_rng(7))
    np.testing.assert_array_equal(n.params["dense"]["W"], o.params["dense"]["W"])
    with pytest.raises(ValueError, match="Model.build: expected an input shape of positive"):
        pearlnet.Model([nn.Dense(4)]).build((None, 0))


def test_a_failed_compile_leaves_the_model_as_it_was(rng):
    x, y = data(rng)
    m = pearlnet.Model([nn.Dense(1, input_shape=(3,))])
    m.compile(loss="mean_squared_error", optimizer="sgd")
    before = (m.loss_fn, m.optimizer, m.opt_state, m.metric_fns)
    for bad in (dict(optimizer="adamax"), dict(loss="nope"), dict(metrics=["nope"])):
        with pytest.raises(ValueError):
            m.compile(**{"loss": "mean_squared_error", **bad})
        assert (m.loss_fn, m.optimizer, m.opt_state, m.metric_fns) == before
    m.fit(x, y, verbose=0, seed=0)


# -- add after training ----------------------------------------------------------------------
def test_add_after_training_keeps_the_trained_weights(rng):
    x, y = data(rng)
    m = pearlnet.Model([nn.Dense(4, input_shape=(3,), activation="tanh")])
    m.compile(loss="mean_squared_error", optimizer=Adam(1e-2))
    m.fit(x, np.zeros((64, 4)), verbose=0, seed=0)
    trained = m.params["dense"]["W"].copy()
    moment = m.opt_state["m"]["dense"]["W"].copy()
    m.add(nn.Dense(1))
    np.testing.assert_array_equal(m.params["dense"]["W"], trained)
    assert m.output_shape_ == (1,) and set(m.params) == {"dense", "dense_1"}
    # fit without compiling again: the old layer's Adam moments and the step count carry on
    m.fit(x, y, epochs=0, verbose=0)
    np.testing.assert_array_equal(m.opt_state["m"]["dense"]["W"], moment)
    assert m.opt_state["step"] == 2 and m.opt_state["m"]["dense_1"]["W"].shape == (4, 1)
    m.fit(x, y, verbose=0, seed=0)
    # compile again: the weights stay, the optimizer starts over
    trained = m.params["dense"]["W"].copy()
    m.compile(loss="mean_squared_error", optimizer="sgd")
    np.testing.assert_array_equal(m.params["dense"]["W"], trained)


def test_a_layer_that_does_not_fit_is_refused_and_the_model_is_unchanged():
    m = pearlnet.Model([nn.Conv2D(2, 3, input_shape=(1, 6, 6))])
    with pytest.raises(ValueError, match="add a Flatten layer"):
        m.add(nn.Dense(3))
    assert len(m.layers) == 1 and m.built
    m.add(nn.Flatten())
    m.add(nn.Dense(3))
    assert m.output_shape_ == (3,)


def test_explicit_layer_names_must_be_unique():
    with pytest.raises(ValueError, match="a layer named 'a' is in the model already"):
        pearlnet.Model([nn.Dense(4, input_shape=(3,), name="a"), nn.Dense(1, name="a")])
    layer = nn.Dense(2)
    m = pearlnet.Model([nn.Dense(2, input_shape=(2,)), layer])
    with pytest.raises(ValueError, match="in this model already"):
        m.add(layer)
    # names given by the model are still numbered
    assert [la.name for la in m.layers] == ["dense", "dense_1"]


# -- dropout's random numbers ------------------------------------------------------------------
def test_dropout_takes_a_seed_and_training_calls_have_a_default_stream():
    d = nn.Dropout(0.5)
    d.init(0, (6,))
    a = d(np.ones((2, 6)), training=True, rng=0)
    b = d(np.ones((2, 6)), training=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 2.0}
    m = pearlnet.Model([nn.Dense(8, input_shape=(3,)), nn.Dropout(0.5)], seed=1)
    m.train()
    first, second = m(np.ones((2, 3))), m(np.ones((2, 3)))
    assert (first == 0).any() and not np.array_equal(first, second)
    again = pearlnet.Model([nn.Dense(8, input_shape=(3,)), nn.Dropout(0.5)], seed=1).train()
    np.testing.assert_array_equal(again(np.ones((2, 3))), first)  # reproducible


# -- dtypes ------------------------------------------------------------------------------------
def test_a_float64_model_keeps_float64_inputs():
    m = pearlnet.Model([nn.Dense(1, input_shape=(1,), dtype=np.float64,
                                 kernel_initializer="ones")])
    assert m.dtype == np.float64
    assert m.predict(np.array([[1 + 1e-9]]))[0, 0] - 1 == pytest.approx(1e-9, rel=1e-6)
    m.compile(loss="mean_squared_error", optimizer="sgd")
    assert m.evaluate(np.array([[1 + 1e-9]]), np.array([[1.0]]))["loss"] == pytest.approx(
        1e-18, rel=1e-5)
    # float32 layers keep float32 inputs; Model(dtype=...) decides explicitly
    assert pearlnet.Model([nn.Dense(1, input_shape=(1,))]).dtype == np.float32
    assert pearlnet.Model([nn.Dense(1, input_shape=(1,))], dtype="float64").dtype == np.float64


def test_hessian_free_in_float64_is_exact_beyond_float32(rng):
    x = rng.standard_normal((32, 2))
    y = x @ np.array([[1.0], [-2.0]]) + 1e-9 * x[:, :1]
    m = pearlnet.Model([nn.Dense(1, input_shape=(2,), dtype=np.float64, use_bias=False)])
    # undamped, CG solves the least-squares problem in one outer step
    m.compile(loss="mean_squared_error", optimizer=HessianFree(damping=0.0))
    m.fit(x, y, batch_size=32, epochs=3, verbose=0, seed=0)
    np.testing.assert_allclose(m.params["dense"]["W"][:, 0], [1 + 1e-9, -2.0], rtol=0,
                               atol=1e-13)


# -- Hessian-free and the model --------------------------------------------------------------
def test_hessian_free_keeps_a_penalty_that_is_zero_at_the_start(rng):
    x, y = data(rng)
    biases = []
    for reg in (None, nn.L2(100.0)):
        m = pearlnet.Model([nn.Dense(1, input_shape=(3,), bias_regularizer=reg,
                                     dtype=np.float64)])
        m.compile(loss="mean_squared_error", optimizer=HessianFree(damping=0.0))
        m.fit(x, y, batch_size=64, epochs=3, verbose=0, seed=0)
        biases.append(float(m.params["dense"]["b"][0]))
    # the exact minimisers, by least squares on [x, 1] with the penalty 100 b^2 as a row
    a = np.hstack([x, np.ones((64, 1))])
    plain = np.linalg.lstsq(a, y[:, 0], rcond=None)[0]
    ridge = np.linalg.lstsq(np.vstack([a / 8, [0, 0, 0, 10]]),
                            np.concatenate([y[:, 0] / 8, [0]]), rcond=None)[0]
    assert biases == pytest.approx([plain[3], ridge[3]], abs=1e-8)
    assert abs(biases[1]) < 0.1 < biases[0]


def test_hessian_free_updates_batchnorm_running_statistics(rng):
    x, y = data(rng)
    x = 5 * x + 3
    layers = [nn.Dense(4, input_shape=(3,), dtype=np.float64),
              nn.BatchNorm(momentum=0.0, dtype=np.float64), nn.Dense(1, dtype=np.float64)]
    m = pearlnet.Model(layers, seed=3)
    w0, b0 = m.params["dense"]["W"].copy(), m.params["dense"]["b"].copy()
    m.compile(loss="mean_squared_error", optimizer=HessianFree())
    m.fit(x, y, batch_size=64, epochs=1, verbose=0, seed=0)
    assert m.hf_info["rate"] > 0  # the step was accepted
    # momentum 0: the running statistics are the batch's, at the weights the step started from
    h = x @ w0 + b0
    np.testing.assert_allclose(m.state["batchnorm"]["mean"], h.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.state["batchnorm"]["var"], h.var(axis=0, ddof=1), rtol=1e-12)


# -- Keras conventions -----------------------------------------------------------------------
def test_early_stopping_stops_after_patience_epochs_without_improvement(rng):
    x, y = data(rng)
    for patience in (0, 1, 3):
        m = pearlnet.Model([nn.Dense(1, input_shape=(3,))])
        m.compile(loss="mean_squared_error", optimizer="sgd")
        stop = EarlyStopping(monitor="loss", patience=patience, mode="max")  # never improves
        history = m.fit(x, y, epochs=10, verbose=0, callbacks=[stop], seed=0)
        # epoch 0 sets the best; then `patience` epochs without improvement (at least one)
        assert len(history.epoch) == 1 + max(patience, 1)


def test_targets_of_shape_n_for_one_output_and_sparse_labels_n_by_1(rng):
    x, y = data(rng)
    m = pearlnet.Model([nn.Dense(1, input_shape=(3,))])
    m.compile(loss="mean_squared_error", optimizer="sgd")
    flat = m.fit(x, y[:, 0], verbose=0, seed=0).history["loss"]
    m2 = pearlnet.Model([nn.Dense(1, input_shape=(3,))])
    m2.compile(loss="mean_squared_error", optimizer="sgd")
    assert m2.fit(x, y, verbose=0, seed=0).history["loss"] == flat
    b = pearlnet.Model([nn.Dense(1, input_shape=(3,))])
    b.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    labels = (y[:, 0] > 4).astype(np.int64)
    b.fit(x, labels, verbose=0, seed=0)
    assert b.evaluate(x, labels)["accuracy"] == b.evaluate(x, labels[:, None])["accuracy"]
    c = pearlnet.Model([nn.Dense(3, input_shape=(3,))])
    c.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    sparse = rng.integers(0, 3, 64)
    c.fit(x, sparse[:, None], verbose=0, seed=0)
    assert c.evaluate(x, sparse[:, None]) == c.evaluate(x, sparse)


def test_validation_data_with_sample_weights_is_refused_by_name(rng):
    x, y = data(rng)
    m = pearlnet.Model([nn.Dense(1, input_shape=(3,))])
    m.compile(loss="mean_squared_error", optimizer="sgd")
    with pytest.raises(ValueError, match=r"validation_data must be a pair \(x_val, y_val\), got "
                                         r"a tuple of 3; sample weights are not supported"):
        m.fit(x, y, validation_data=(x, y, np.ones(64)), verbose=0)


# -- layer settings that are not what they claim (found by the model-file fuzz) ------------------
@pytest.mark.parametrize("make, message", [
    (lambda: nn.Dense(3, use_bias="x"), "Dense: use_bias must be True or False, got 'x'"),
    (lambda: nn.Conv2D(3, 2, use_bias=0), "Conv2D: use_bias must be True or False, got 0"),
    (lambda: nn.BatchNorm(epsilon=True), "BatchNorm: epsilon must be a number, got True"),
    (lambda: nn.BatchNorm(axis=True), "BatchNorm: axis must be an integer, got True"),
    (lambda: nn.Dropout("x"), "Dropout: p must be a number, got 'x'"),
    (lambda: nn.LSTM(4, return_sequences=""), "LSTM: return_sequences must be True or False"),
    (lambda: nn.LSTM(4, go_backwards=[]), "LSTM: go_backwards must be True or False"),
    (lambda: nn.LSTM(4, peephole="x"), "LSTM: peephole must be True or False"),
    (lambda: nn.LSTM(4, unit_forget_bias=1), "LSTM: unit_forget_bias must be True or False"),
])
def test_layer_flags_and_numbers_are_checked(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()
