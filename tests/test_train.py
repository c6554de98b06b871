"""The Keras-style Model: compile, fit, evaluate, predict, callbacks, save and load."""

import os
import warnings

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
from pearlnet.optim import SGD, Adam
from pearlnet.train import EarlyStopping, LearningRateScheduler, ModelCheckpoint


def blobs(rng, n=300, k=3, d=5):
    """k well-separated Gaussian clusters in d dimensions."""
    centers = 4 * rng.standard_normal((k, d))
    y = rng.integers(0, k, n)
    x = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return x, y


def small_model(d=5, k=3, dropout=0.0, batchnorm=False):
    layers = [nn.Dense(16, activation="relu", input_shape=(d,))]
    if batchnorm:
        layers.append(nn.BatchNorm())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(k))
    return pearlnet.Model(layers)


def test_fit_learns_and_reports_history(rng):
    x, y = blobs(rng)
    model = small_model(dropout=0.1, batchnorm=True)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2), metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=32, epochs=8, validation_split=0.2, verbose=0, seed=0)
    assert sorted(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 8 for v in hist.history.values())
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= 0.95
    assert model.evaluate(x, y)["accuracy"] >= 0.95
    probs = model.predict(x[:4])
    assert probs.shape == (4, 3) and probs.dtype == np.float32


def test_one_hot_and_integer_labels_train_identically(rng):
    x, y = blobs(rng)
    runs = []
    for target in (y, np.eye(3, dtype=np.float32)[y]):
        model = small_model()
        model.compile(loss="categorical_crossentropy", optimizer=SGD(0.1), metrics=["accuracy"])
        runs.append(model.fit(x, target, batch_size=50, epochs=2, verbose=0, seed=3).history)
    np.testing.assert_allclose(runs[0]["loss"], runs[1]["loss"], rtol=1e-6)


def test_fit_is_reproducible_with_a_seed(rng):
    x, y = blobs(rng)
    losses = []
    for _ in range(2):
        model = small_model(dropout=0.3)
        model.compile(optimizer=Adam(1e-2))
        losses.append(model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=5).history["loss"])
    assert losses[0] == losses[1]


def test_save_and_load_predict_identically(rng, tmp_path):
    x, y = blobs(rng)
    model = small_model(batchnorm=True, dropout=0.2)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2), metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=0)
    path = tmp_path / "model.pnl"
    model.save(path)
    assert os.listdir(tmp_path) == ["model.pnl"]  # no temporary left behind
    loaded = pearlnet.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    assert type(loaded.optimizer) is Adam and loaded.opt_state["step"] == model.opt_state["step"]
    # training resumes where it stopped: the same next epoch as the original model
    h1 = model.fit(x, y, batch_size=32, epochs=1, verbose=0, seed=9).history["loss"]
    h2 = loaded.fit(x, y, batch_size=32, epochs=1, verbose=0, seed=9).history["loss"]
    assert h1 == pytest.approx(h2, rel=1e-6)


def test_a_failed_save_leaves_the_old_file_and_no_temporary(rng, tmp_path, monkeypatch):
    x, y = blobs(rng)
    model = small_model()
    model.compile()
    path = tmp_path / "model.pnl"
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pnl"]


def test_load_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.pnl"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="load_model: .* is not a pearlnet model file"):
        pearlnet.load_model(bad)


def test_a_nan_producing_learning_rate_stops_cleanly(rng):
    x, y = blobs(rng)
    x = x * 1e3
    model = small_model()
    model.compile(loss="mse", optimizer=SGD(1e6))
    target = np.eye(3, dtype=np.float32)[y]
    with pytest.warns(RuntimeWarning, match=r"TerminateOnNaN: loss is (nan|inf) at epoch 1, "
                                            r"batch \d+"):
        hist = model.fit(x, target, batch_size=30, epochs=5, verbose=0, seed=0)
    leaves = pearlnet.tree_flatten(model.params)[0]
    assert all(np.isfinite(leaf).all() for leaf in leaves)
    assert len(hist.history["loss"]) == 1  # stopped in the first epoch
    assert np.isfinite(model.evaluate(x, target)["loss"])


def test_early_stopping_restores_the_best_weights(rng):
    x, y = blobs(rng)
    model = small_model()
    model.compile(optimizer=SGD(0.05), metrics=["accuracy"])
    stop = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)

    class Worsen(pearlnet.train.Callback):  # after epoch 3, make things worse every epoch
        def on_epoch_begin(self, epoch, logs=None):
            if epoch >= 3:
                self.model.optimizer.lr = 5.0

    hist = model.fit(x, y, batch_size=32, epochs=30, validation_split=0.25, verbose=0, seed=0,
                     callbacks=[Worsen(), stop], terminate_on_nan=False)
    assert stop.stopped_epoch is not None and len(hist.history["loss"]) < 30
    best = int(np.nanargmin(hist.history["val_loss"]))
    assert best == stop.best_epoch
    val = model.evaluate(x[225:], y[225:])["loss"]
    assert val == pytest.approx(hist.history["val_loss"][best], rel=1e-5)


def test_checkpoint_and_lr_scheduler(rng, tmp_path):
    x, y = blobs(rng)
    model = small_model()
    model.compile(optimizer=SGD(0.1))
    sched = LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    ckpt = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.pnl"))
    hist = model.fit(x, y, epochs=3, verbose=0, seed=0, callbacks=[sched, ckpt])
    assert hist.history["lr"] == [0.1, 0.05, 0.025]
    assert sorted(os.listdir(tmp_path)) == ["m-01.pnl", "m-02.pnl", "m-03.pnl"]
    best = ModelCheckpoint(str(tmp_path / "best.pnl"), monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=2, verbose=0, seed=0, callbacks=[best])
    assert (tmp_path / "best.pnl").exists()


def test_regularization_enters_the_loss(rng):
    x, y = blobs(rng)
    plain = pearlnet.Model([nn.Dense(3, input_shape=(5,))])
    reg = pearlnet.Model([nn.Dense(3, input_shape=(5,), kernel_regularizer=nn.L2(0.1))])
    for m in (plain, reg):
        m.compile(optimizer=SGD(0.0))
    penalty = 0.1 * np.sum(reg.params["dense"]["W"].astype(np.float64) ** 2)
    assert reg.evaluate(x, y)["loss"] == pytest.approx(plain.evaluate(x, y)["loss"] + penalty,
                                                       rel=1e-5)


def test_verbose_modes(rng, capsys):
    x, y = blobs(rng, n=60)
    model = small_model()
    model.compile()
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=1, verbose=2)
    assert "epoch 1/1: loss" in capsys.readouterr().out


def test_bad_arguments_are_named(rng):
    x, y = blobs(rng, n=20)
    model = small_model()
    with pytest.raises(RuntimeError, match="call compile"):
        model.fit(x, y)
    model.compile()
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        model.fit(x, y, epochs=-1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"expected inputs of shape \(n, 5\), got \(20, 4\)"):
        model.fit(x[:, :4], y)
    with pytest.raises(ValueError, match="20 inputs but 19 targets"):
        model.fit(x, y[:-1])
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        model.compile(optimizer="adamax")
    # without an input shape, compile defers the build to the first fit (Keras)
    unbuilt = pearlnet.Model([nn.Dense(2)])
    unbuilt.compile()
    assert not unbuilt.built and unbuilt.opt_state is None


def test_compile_accepts_optimizer_names(rng):
    x, y = blobs(rng, n=40)
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"):
        model = small_model()
        model.compile(optimizer=name, metrics=["accuracy"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.fit(x, y, epochs=1, verbose=0, seed=0)


def test_an_optimizer_with_a_schedule_is_saved_and_restored(rng, tmp_path):
    from pearlnet.optim import schedules

    x, y = blobs(rng, n=60)
    model = small_model()
    model.compile(optimizer=Adam(schedules.linear_warmup(schedules.cosine(0.01, 100), 10)))
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.pnl")
    loaded = pearlnet.load_model(tmp_path / "m.pnl")
    assert repr(loaded.optimizer) == repr(model.optimizer)
    assert loaded.optimizer.current_lr(5) == model.optimizer.current_lr(5)


def test_accuracy_of_a_logit_output_uses_the_class_boundary_zero():
    # one logit per object, logit = x: sigmoid(0.2) = 0.55 is class 1 although 0.2 < 0.5
    model = pearlnet.Model([nn.Dense(1, use_bias=False, input_shape=(1,))])
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    assert model.from_logits
    model.params = {model.layers[0].name: {"W": np.ones((1, 1), np.float32)}}
    model.layers[0].params = model.params[model.layers[0].name]
    x = np.array([[0.2], [0.4], [-0.3], [1.0]], np.float32)
    y = np.array([[1.0], [1.0], [0.0], [1.0]], np.float32)
    assert model.evaluate(x, y)["accuracy"] == 1.0
    # a probability output keeps the threshold 0.5
    assert pearlnet.train.metrics.accuracy(y, np.array([[0.4], [0.6], [0.1], [0.9]])) == 0.75


def test_a_nan_in_the_first_batch_keeps_the_initial_parameters(rng):
    x, y = blobs(rng, n=20)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    before = {k: {n: v.copy() for n, v in p.items()} for k, p in model.params.items()}
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN"):
        hist = model.fit(bad, y, batch_size=5, shuffle=False, verbose=0)
    for layer, p in before.items():
        for name, value in p.items():
            np.testing.assert_array_equal(model.params[layer][name], value)
    # no batch finished: the epoch's figures are NaN, not 0
    assert np.isnan(hist.history["loss"][0]) and np.isnan(hist.history["accuracy"][0])
    assert model.predict(x).shape == (20, 3)


def test_validation_data_takes_precedence_over_validation_split(rng):
    x, y = blobs(rng, n=40)
    xv, yv = blobs(np.random.default_rng(1), n=10)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    hist = model.fit(x, y, epochs=1, validation_data=(xv, yv), validation_split=0.25,
                     shuffle=False, verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(model.evaluate(xv, yv)["loss"])


def test_empty_data_and_bad_batch_sizes_raise(rng):
    x, y = blobs(rng, n=20)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match="Model.fit: expected at least one training sample"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="leaves 20 for training and 0 for validation"):
        model.fit(x, y, validation_split=0.01, verbose=0)
    with pytest.raises(ValueError, match="leaves 0 for training"):
        model.fit(x[:1], y[:1], validation_split=0.9, verbose=0)
    with pytest.raises(ValueError, match="Model.evaluate: expected at least one sample"):
        model.evaluate(x[:0], y[:0])
    for who in ("predict", "evaluate"):
        for bad in (0, -1, 2.5, True):
            with pytest.raises(ValueError, match=f"Model.{who}: batch_size must be a positive"):
                if who == "predict":
                    model.predict(x, batch_size=bad)
                else:
                    model.evaluate(x, y, batch_size=bad)


def test_a_clipped_optimizer_is_saved_and_restored(rng, tmp_path):
    from pearlnet.optim import ClipByGlobalNorm

    x, y = blobs(rng, n=40)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer=ClipByGlobalNorm(Adam(0.05), 1.0))
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    path = tmp_path / "clipped.pnl"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(path)
    loaded = pearlnet.load_model(path)
    assert isinstance(loaded.optimizer, ClipByGlobalNorm)
    assert loaded.optimizer.max_norm == 1.0 and loaded.optimizer.optimizer.lr == 0.05
    assert isinstance(loaded.optimizer.optimizer, Adam)
    # resumed training takes the same steps as the original
    a = model.fit(x, y, epochs=1, verbose=0, seed=1).history["loss"]
    b = loaded.fit(x, y, epochs=1, verbose=0, seed=1).history["loss"]
    assert a == pytest.approx(b, rel=1e-6)


def test_model_files_get_the_usual_permissions(rng, tmp_path):
    model = small_model()
    model.build_model()
    path = tmp_path / "m.pnl"
    model.save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_rejects_a_bad_mode_and_warns_of_a_missing_monitor(rng, tmp_path):
    with pytest.raises(ValueError, match="ModelCheckpoint: mode must be auto, min or max"):
        ModelCheckpoint(str(tmp_path / "m.pnl"), mode="minimum")
    x, y = blobs(rng, n=20)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    ck = ModelCheckpoint(str(tmp_path / "m.pnl"), save_best_only=True)  # val_loss: not logged
    with pytest.warns(UserWarning, match="'val_loss' is not among the logged figures"):
        model.fit(x, y, epochs=1, callbacks=[ck], verbose=0)
    assert not (tmp_path / "m.pnl").exists()


def test_a_scalar_target_is_named(rng):
    x, _ = blobs(rng, n=20)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match="Model.fit: expected an array of 20 targets, got"):
        model.fit(x, 3, verbose=0)


def test_a_last_batch_of_one_sample_joins_the_one_before(rng):
    # 33 samples in batches of 32 with BatchNorm: a batch of one has no variance, so it is
    # trained with the batch before it; the running variance then tracks the data's
    x, y = blobs(rng, n=33)
    model = small_model(batchnorm=True)
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.0))
    seen = []
    step = model._first_order_step

    def counting_step():
        inner = step()

        def run(xb, yb, stream, shard):
            seen.append(len(xb))
            return inner(xb, yb, stream, shard)
        return run

    model._first_order_step = counting_step
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert seen == [33]
    h = np.maximum(x @ model.params[model.layers[0].name]["W"], 0)
    np.testing.assert_allclose(model.state[model.layers[1].name]["var"],
                               0.9 + 0.1 * h.var(axis=0, ddof=1), rtol=1e-4)


# ---- save and load: what a file keeps -------------------------------------------------------
def test_hessian_free_keeps_its_step_factor_through_save_and_load(rng, tmp_path):
    from pearlnet.optim import HessianFree

    x, y = blobs(rng, n=40)
    hf = HessianFree(cg_max_iters=3)
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer=hf)
    model.fit(x, y, batch_size=40, epochs=1, verbose=0, seed=0)
    hf.lr = 0.25  # what a LearningRateScheduler does between epochs
    assert hf.get_config()["lr"] == 0.25
    model.save(tmp_path / "hf.pnl")
    loaded = pearlnet.load_model(tmp_path / "hf.pnl")
    assert type(loaded.optimizer) is HessianFree and loaded.optimizer.lr == 0.25
    a = model.fit(x, y, batch_size=40, epochs=1, verbose=0, seed=1).history["loss"]
    b = loaded.fit(x, y, batch_size=40, epochs=1, verbose=0, seed=1).history["loss"]
    assert a == b


def test_layer_dtypes_and_named_initializers_are_saved_and_restored(rng, tmp_path):
    from pearlnet.nn import initializers

    f64 = np.float64
    model = pearlnet.Model([
        nn.Conv2D(2, 3, kernel_initializer=initializers.lecun_uniform, bias_initializer="ones",
                  dtype=f64, input_shape=(1, 5, 5)),
        nn.BatchNorm(dtype=f64), nn.PReLU(dtype=f64), nn.Flatten(),
        nn.Dense(6, kernel_initializer="zeros", bias_initializer="glorot_normal", dtype=f64),
        nn.Dense(4, kernel_initializer="sparse", dtype=f64)])
    seq = pearlnet.Model([nn.LSTM(3, return_sequences=True, dtype=f64, input_shape=(4, 2)),
                          nn.Bidirectional(nn.GRU(2, kernel_initializer="he_uniform",
                                                  dtype=f64))])
    for i, m in enumerate((model, seq)):
        m.compile(loss="mse")
        m.save(tmp_path / f"m{i}.pnl")
        loaded = pearlnet.load_model(tmp_path / f"m{i}.pnl")
        for a, b in zip(m.layers, loaded.layers):
            assert b.dtype == a.dtype == (np.float32 if a.name == "flatten" else f64), a.name
            for key in ("kernel_initializer", "bias_initializer"):
                assert getattr(b, key, None) is getattr(a, key, None), (a.name, key)
        if i == 1:  # Bidirectional builds its weights in the layers it runs
            bi = loaded.layers[-1]
            assert bi.layer.dtype == bi.forward_layer.dtype == bi.backward_layer.dtype == f64
        # re-initialised, the loaded model draws what the original draws
        new_a, new_b = m.init(3), loaded.init(3)
        leaves_a, leaves_b = pearlnet.tree_flatten(new_a)[0], pearlnet.tree_flatten(new_b)[0]
        assert len(leaves_a) == len(leaves_b)
        for u, v in zip(leaves_a, leaves_b):
            assert u.dtype == v.dtype == f64
            np.testing.assert_array_equal(u, v)


def test_an_initializer_without_a_name_is_not_saved_and_the_weights_are(rng, tmp_path):
    from pearlnet.nn import initializers

    layer = nn.Dense(3, kernel_initializer=initializers.normal(0.1), input_shape=(5,))
    assert "kernel_initializer" not in layer.get_config()
    assert layer.get_config()["bias_initializer"] == "zeros"
    model = pearlnet.Model([layer])
    model.compile(loss="mse")
    model.save(tmp_path / "m.pnl")
    loaded = pearlnet.load_model(tmp_path / "m.pnl")
    np.testing.assert_array_equal(loaded.params["dense"]["W"], model.params["dense"]["W"])
    assert loaded.layers[0].kernel_initializer is initializers.he_normal  # the default


# ---- save and load: classes and functions of one's own (Keras' custom_objects) ---------------
class MyAdam(Adam):
    """A subclass of one's own: saved by name, rebuilt from custom_objects."""


def my_loss(y_true, y_pred):
    import pearlnet.numpy as pnp

    return pnp.mean(pnp.square(y_pred - y_true))


def my_metric(y_true, y_pred):
    return float(np.mean(np.abs(y_pred - y_true)))


def my_lr(t):
    return 0.05 / (1 + t)


def my_mask(path, leaf):
    return path[-1] == "W"


def resumes_alike(a, b, x, y):
    """Two models take the same next epoch, bit for bit."""
    ha = a.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=4).history
    hb = b.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=4).history
    return ha == hb and all(np.array_equal(u, v) for u, v in
                            zip(pearlnet.tree_flatten(a.params)[0],
                                pearlnet.tree_flatten(b.params)[0]))


def regression(rng, n=24):
    return rng.standard_normal((n, 5)).astype(np.float32), \
        rng.standard_normal((n, 3)).astype(np.float32)


def test_an_optimizer_subclass_needs_custom_objects_and_then_resumes_exactly(rng, tmp_path):
    x, y = regression(rng)
    model = small_model()
    model.compile(loss="mse", optimizer=MyAdam(0.05))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    path = tmp_path / "m.pnl"
    model.save(path)
    # never another optimizer with this one's state: a ValueError naming the class
    with pytest.raises(ValueError, match=r"load_model: .*m.pnl: the optimizer class 'MyAdam' is "
                                         r"not part of pearlnet: pass custom_objects="
                                         r"\{'MyAdam': MyAdam\} to load_model"):
        pearlnet.load_model(path)
    loaded = pearlnet.load_model(path, custom_objects={"MyAdam": MyAdam})
    assert type(loaded.optimizer) is MyAdam and repr(loaded.optimizer) == repr(model.optimizer)
    # the architecture and weights alone need no optimizer
    bare = pearlnet.load_model(path, compile=False)
    assert bare.optimizer is None and bare.loss_fn is None
    np.testing.assert_array_equal(bare.predict(x), model.predict(x))
    assert resumes_alike(model, loaded, x, y)


def test_a_class_of_ones_own_named_like_a_library_one_is_not_taken_for_it(rng, tmp_path):
    class SGD(pearlnet.optim.SGD):  # noqa: N801 (the point: pearlnet has an SGD too)
        pass

    model = small_model()
    model.compile(loss="mse", optimizer=SGD(0.3))
    model.save(tmp_path / "m.pnl")
    with pytest.raises(ValueError, match="the optimizer class 'SGD' is not part of pearlnet"):
        pearlnet.load_model(tmp_path / "m.pnl")
    assert type(pearlnet.load_model(tmp_path / "m.pnl", custom_objects={"SGD": SGD})
                .optimizer) is SGD


def test_functions_of_ones_own_round_trip_by_name(rng, tmp_path):
    from pearlnet.optim import schedules

    x, y = regression(rng)
    model = small_model()
    opt = Adam(schedules.linear_warmup(my_lr, 3), weight_decay=0.1, decay_mask=my_mask)
    model.compile(loss=my_loss, optimizer=opt, metrics=[my_metric, "accuracy"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    path = tmp_path / "m.pnl"
    model.save(path)
    objects = {"my_loss": my_loss, "my_metric": my_metric, "my_lr": my_lr, "my_mask": my_mask}
    for missing in objects:
        with pytest.raises(ValueError, match=rf"the \w*\s?\w+ '{missing}' is not part of "
                                             rf"pearlnet: pass custom_objects="
                                             rf"\{{'{missing}': {missing}\}}"):
            pearlnet.load_model(path, custom_objects={k: v for k, v in objects.items()
                                                      if k != missing})
    loaded = pearlnet.load_model(path, custom_objects=objects)
    assert loaded.loss_fn is my_loss and [n for n, _ in loaded.metric_fns] == ["my_metric",
                                                                             "accuracy"]
    assert loaded.optimizer.decay_mask is my_mask
    assert loaded.optimizer.lr._args["schedule_or_lr"] is my_lr
    assert resumes_alike(model, loaded, x, y)
    with pytest.raises(ValueError, match=r"load_model: .*m.pnl: custom_objects\['my_loss'\] "
                                         r"must be a function \(the loss 'my_loss'\), got 3"):
        pearlnet.load_model(path, custom_objects={**objects, "my_loss": 3})
    with pytest.raises(ValueError, match="load_model: custom_objects must be a dict of names"):
        pearlnet.load_model(path, custom_objects=[my_loss])


def test_a_schedule_class_of_ones_own_round_trips_with_custom_objects(rng, tmp_path):
    from pearlnet.optim import schedules

    class halving(schedules.Schedule):  # noqa: N801 (named like the library's schedules)
        def __init__(self, lr):
            self._args = {"lr": lr}

        def value(self, t):
            return self._args["lr"] / 2 ** t

    x, y = regression(rng)
    model = small_model()
    model.compile(loss="mse", optimizer=SGD(schedules.linear_warmup(halving(0.1), 2)))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.pnl")
    with pytest.raises(ValueError, match=r"the schedule class 'halving' is not part of pearlnet: "
                                         r"pass custom_objects=\{'halving': halving\}"):
        pearlnet.load_model(tmp_path / "m.pnl")
    loaded = pearlnet.load_model(tmp_path / "m.pnl", custom_objects={"halving": halving})
    assert repr(loaded.optimizer) == repr(model.optimizer)
    assert resumes_alike(model, loaded, x, y)


def my_act(x):
    """An activation of one's own, written with pearlnet.numpy."""
    import pearlnet.numpy as pnp

    return pnp.tanh(x) * 2


@pytest.mark.parametrize("make, shape", [
    (lambda **kw: nn.Dense(4, activation=my_act, **kw), (5,)),
    (lambda **kw: nn.Activation(my_act, **kw), (5,)),
    (lambda **kw: nn.RNN(3, activation=my_act, **kw), (4, 2)),
    (lambda **kw: nn.Bidirectional(nn.RNN(3, activation=my_act), **kw), (4, 2)),
    (lambda **kw: nn.Conv2D(2, 3, padding="same", activation=my_act, **kw), (1, 4, 4)),
], ids=["dense", "activation", "rnn", "bidirectional-rnn", "conv2d"])
def test_an_activation_function_of_ones_own_round_trips_with_custom_objects(make, shape, rng,
                                                                            tmp_path):
    model = pearlnet.Model([make(input_shape=shape)])
    model.compile(loss="mse", optimizer=Adam(0.01))
    path = tmp_path / "m.pnl"
    model.save(path)
    # the architecture needs it: no compile=False hint
    for compile in (True, False):
        with pytest.raises(ValueError, match=r"load_model: .*m.pnl: the activation function "
                                             r"'my_act' is not part of pearlnet: pass "
                                             r"custom_objects=\{'my_act': my_act\} to "
                                             r"load_model$"):
            pearlnet.load_model(path, compile=compile)
    loaded = pearlnet.load_model(path, custom_objects={"my_act": my_act})
    assert [layer.get_config() for layer in loaded.layers] == \
        [layer.get_config() for layer in model.layers]
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ValueError, match=r"custom_objects\['my_act'\] must be a function \(the "
                                         r"activation function 'my_act'\), got 3"):
        pearlnet.load_model(path, custom_objects={"my_act": 3})


def test_an_activation_function_of_ones_own_shares_names_with_the_rest(rng, tmp_path):
    # one function in two layers and named in custom_objects once; the loss of one's own too
    x, y = regression(rng)
    model = pearlnet.Model([nn.Dense(6, activation=my_act, input_shape=(5,)),
                            nn.Activation(my_act), nn.Dense(3)])
    model.compile(loss=my_loss, optimizer=Adam(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.pnl")
    loaded = pearlnet.load_model(tmp_path / "m.pnl",
                                 custom_objects={"my_act": my_act, "my_loss": my_loss})
    assert loaded.layers[0].activation is my_act and loaded.layers[1].fn is my_act
    assert resumes_alike(model, loaded, x, y)


def test_an_activation_no_name_brings_back_is_refused_before_any_file_is_written(tmp_path):
    def other_act(x):
        return my_act(x)

    other_act.__name__ = "my_act"  # two functions of one name

    def other_loss(y, p):
        return my_loss(y, p)

    other_loss.__name__ = "my_act"  # an activation and a loss of one name

    class Scaled(nn.Module):  # a layer of one's own whose config is not JSON data
        def __init__(self, factor=2.0, input_shape=None, name=None):
            super().__init__(input_shape, name)
            self.factor = factor

        def forward(self, params, x, *, state=None, training=False, rng=None):
            return x * self.factor, {}

        def get_config(self):
            return {"factor": np.float32(self.factor)}

    steeper = nn.activations.Activation(nn.activations._leaky_relu, "leaky_relu", alpha=0.3)
    for layers, loss, match in [
            ([nn.Dense(3, activation=lambda z: 2 * z)], "mse",
             r"Model.save: cannot save the activation of Dense 'dense_1' <function .*<lambda>"
             r".*: load_model rebuilds a function or class of one's own by its __name__ \(from "
             r"custom_objects\), and this has no usable one \(a lambda or a callable object\); "
             r"use a function defined with def"),
            ([nn.Activation(lambda z: 2 * z)], "mse",
             r"Model.save: cannot save the activation of Activation 'activation' <function "
             r".*<lambda>"),
            ([nn.Dense(3, activation=my_act), nn.Dense(3, activation=other_act)], "mse",
             r"Model.save: cannot save the activation of Dense 'dense_2' <function "
             r".*other_act .*: <function my_act .*, also saved, has the same name 'my_act'"),
            ([nn.Dense(3, activation=my_act)], other_loss,
             r"Model.save: cannot save the loss <function .*other_loss .*: <function my_act "
             r".*, also saved, has the same name 'my_act'"),
            ([nn.Dense(3, activation=steeper)], "mse",
             r"Dense 'dense_1': cannot save the activation Activation\(leaky_relu, "
             r"alpha=0.3\): the library's leaky_relu with other defaults"),
            ([Scaled()], "mse",
             r"Model.save: cannot save the config of Scaled 'scaled': \{'factor': .*\} is not "
             r"JSON data")]:
        model = pearlnet.Model([nn.Dense(5, input_shape=(4,)), *layers])
        model.compile(loss=loss)
        with pytest.raises(ValueError, match=match):
            model.save(tmp_path / "m.pnl")
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compile_kw,match", [
    ({"loss": lambda y, p: my_loss(y, p)}, r"cannot save the loss <function"),
    ({"loss": "mse", "metrics": [lambda y, p: 0.0]}, r"cannot save the metric '<lambda>'"),
    ({"optimizer": Adam(lr=lambda t: 0.01)}, r"cannot save the optimizer Adam's lr <function"),
    ({"optimizer": Adam(weight_decay=0.1, decay_mask=lambda path, leaf: True)},
     r"cannot save the optimizer Adam's decay_mask <function"),
    ({"optimizer": SGD(weight_decay=0.1, decay_mask={"dense": {"W": np.bool_(True)}})},
     r"cannot save the optimizer SGD's decay_mask: \{'dense': .* is not JSON data"),
])
def test_what_no_name_brings_back_is_refused_before_any_file_is_written(compile_kw, match,
                                                                        tmp_path):
    model = small_model()
    model.compile(**{"loss": "mse", **compile_kw})
    with pytest.raises(ValueError, match=rf"Model.save: {match}"):
        model.save(tmp_path / "m.pnl")
    assert list(tmp_path.iterdir()) == []


def test_an_optimizer_the_file_would_not_rebuild_is_refused_at_save(tmp_path):
    class Halved(SGD):  # get_config gives the halved lr, which the constructor halves again
        def __init__(self, lr=0.1, **kwargs):
            super().__init__(lr / 2, **kwargs)

    class Tuned(SGD):  # get_config lacks the constructor's required argument
        def __init__(self, boost, **kwargs):
            super().__init__(0.1 * boost, **kwargs)

    class Bare:  # an optimizer with init and update but no get_config
        def init(self, params):
            return {"step": 0}

        def update(self, params, grads, state):
            return params, state

    def other_loss(y, p):
        return my_loss(y, p)

    other_loss.__name__ = "my_loss"  # two functions of one name
    for compile_kw, match in [
            ({"optimizer": Halved(0.2)}, r"cannot save the optimizer Halved\(lr=0.1\): rebuilt "
                                         r"from its get_config\(\) it is Halved\(lr=0.05\)"),
            ({"optimizer": Tuned(2.0)}, r"cannot rebuild the optimizer Tuned from its saved "
                                        r"config .*TypeError"),
            ({"optimizer": Bare()}, r"cannot save the optimizer Bare: it has no get_config"),
            ({"loss": other_loss, "metrics": [my_loss]},
             r"cannot save the metric 'my_loss' <function my_loss .*: <function .*other_loss .*"
             r", also saved, has the same name 'my_loss'")]:
        model = small_model()
        model.compile(**{"loss": "mse", **compile_kw})
        with pytest.raises(ValueError, match=rf"Model.save: {match}"):
            model.save(tmp_path / "m.pnl")
        assert list(tmp_path.iterdir()) == []


def test_layers_of_ones_own_and_nested_sequentials_round_trip(rng, tmp_path):
    class Scale(nn.Module):  # a layer of one's own, with a parameter and a setting
        def __init__(self, init=2.0, input_shape=None, name=None):
            super().__init__(input_shape, name)
            self.init_value = init

        def build(self, input_shape, rng):
            self.params, self.state = {"s": np.full(input_shape, self.init_value,
                                                    np.float32)}, {}
            return tuple(input_shape)

        def forward(self, params, x, *, state=None, training=False, rng=None):
            return x * params["s"], {}

        def get_config(self):
            return {"init": self.init_value}

    x, y = regression(rng)
    inner = nn.Sequential([nn.Dense(4, activation="tanh", input_shape=(5,)), Scale(0.5),
                           nn.BatchNorm()], name="block")
    model = pearlnet.Model([inner, nn.Dropout(0.2), nn.Dense(3)])
    model.compile(loss="mse", optimizer=Adam(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.pnl")
    with pytest.raises(ValueError, match=r"the layer class 'Scale' is not part of pearlnet: "
                                         r"pass custom_objects=\{'Scale': Scale\} to "
                                         r"load_model$"):
        pearlnet.load_model(tmp_path / "m.pnl", compile=False)
    loaded = pearlnet.load_model(tmp_path / "m.pnl", custom_objects={"Scale": Scale})
    block = loaded.layers[0]
    assert type(block) is nn.Sequential and block.name == "block"
    assert [type(layer) for layer in block.layers] == [nn.Dense, Scale, nn.BatchNorm]
    assert block.layers[1].init_value == 0.5
    # each inner layer holds its share of the loaded weights
    np.testing.assert_array_equal(block.layers[0].params["W"], model.params["block"]["dense"]["W"])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert resumes_alike(model, loaded, x, y)


def test_a_layer_its_config_would_not_rebuild_is_refused_at_save(tmp_path):
    class Wide(nn.Dense):  # get_config loses the width: the file would build other weights
        def __init__(self, units=2, **kwargs):
            super().__init__(units, **kwargs)

        def get_config(self):
            return {}

    class Needy(nn.Flatten):  # get_config lacks a required argument
        def __init__(self, how, **kwargs):
            super().__init__(**kwargs)

    for layer, match in [(Wide(7), r"cannot save Wide 'wide': rebuilt from its get_config\(\) "
                                   r"\{\}, it has weights of shapes \[\(5, 2\), \(2,\)\], not "
                                   r"\[\(5, 7\), \(7,\)\]"),
                         (Needy("x"), r"cannot rebuild the layer 'needy' \(Needy\) from its "
                                      r"saved config \{\}: Needy\(\*\*config\) raises "
                                      r"TypeError")]:
        model = pearlnet.Model([nn.Dense(5, input_shape=(4,)), layer])
        model.build_model()
        with pytest.raises(ValueError, match=rf"Model.save: {match}"):
            model.save(tmp_path / "m.pnl")
        assert list(tmp_path.iterdir()) == []


def test_a_layer_name_the_file_cannot_hold_is_refused_and_the_old_file_kept(tmp_path):
    path = tmp_path / "m.pnl"
    good = small_model()
    good.build_model()
    good.save(path)
    before = path.read_bytes()
    for name in ("#0", "a/b"):
        model = pearlnet.Model([nn.Dense(3, input_shape=(5,), name=name)])
        model.build_model()
        with pytest.raises(ValueError, match=rf"Model.save: cannot save the Dense layer named "
                                             rf"'{name}': expected a str name that neither "
                                             rf"starts with '#'"):
            model.save(path)
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.pnl"]


def test_a_file_saved_without_its_optimizer_loads_with_a_warning(rng, tmp_path):
    # what an older pearlnet wrote for an optimizer it could not save: "optimizer": null
    import json

    model = small_model()
    model.compile(loss="mse", optimizer=Adam(0.05))
    model.save(tmp_path / "m.pnl")
    with np.load(tmp_path / "m.pnl") as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays.pop("__config__")))
    config["compile"]["optimizer"] = None
    np.savez(tmp_path / "old.npz", __config__=np.array(json.dumps(config)), **arrays)
    with pytest.warns(RuntimeWarning, match=r"load_model: .*old.npz was saved without its "
                                            r"optimizer; the model is compiled with SGD\(\) "
                                            r"and the saved optimizer state is not used"):
        loaded = pearlnet.load_model(tmp_path / "old.npz")
    assert type(loaded.optimizer) is SGD and set(loaded.opt_state) == {"step"}


def test_the_fallback_progress_bar_redraws_a_new_total(capsys):
    """Without tqdm: update, a total corrected to what ran (pearlnet curvature's plan is an
    upper bound), refresh, close."""
    from pearlnet.train.progress import _LineBar

    bar = _LineBar(10, "work")
    bar.update(3)
    bar.total = bar.n
    bar.refresh()
    bar.close()
    assert capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1].startswith(
        "work [==============================] 3/3")
