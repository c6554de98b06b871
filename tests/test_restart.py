"""Runs that restart exactly (issue 21): a run killed after epoch k and resumed from its
ModelCheckpoint file ends bit-identical to the uninterrupted run, in one process."""

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
from pearlnet.optim import Adam, HessianFree
from pearlnet.train import Callback, ModelCheckpoint


class Killed(Exception):
    pass


class KillAfter(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((90, 6))
    return x, np.argmax(x @ rng.standard_normal((6, 3)), axis=1)


def first_order():
    m = pearlnet.Model([nn.Dense(12, input_shape=(6,)), nn.BatchNorm(), nn.ReLU(),
                        nn.Dropout(0.3), nn.Dense(3)], seed=4)
    m.compile(loss="categorical_crossentropy", optimizer=Adam(3e-3), metrics=["accuracy"])
    return m


def hessian_free():
    m = pearlnet.Model([nn.Dense(8, activation="tanh", input_shape=(6,), dtype=np.float64),
                        nn.Dense(3, dtype=np.float64)], seed=4)
    m.compile(loss="categorical_crossentropy",
              optimizer=HessianFree(curvature_batch_size=20, cg_max_iters=10))
    return m


@pytest.mark.parametrize("make, batch", [(first_order, 16), (hessian_free, 45)])
def test_a_run_resumed_from_its_checkpoint_ends_bit_identical(make, batch, tmp_path):
    x, y = data()
    whole = make()
    history = whole.fit(x, y, batch_size=batch, epochs=5, verbose=0, seed=9)
    path = str(tmp_path / "run.pnl")
    broken = make()
    with pytest.raises(Killed):
        broken.fit(x, y, batch_size=batch, epochs=5, verbose=0, seed=9,
                   callbacks=[ModelCheckpoint(path), KillAfter(2)])
    resumed = pearlnet.load_model(path)
    assert resumed.training_progress == {"seed": 9, "epoch": 3}
    rest = resumed.fit(x, y, batch_size=batch, epochs=5, verbose=0,
                       initial_epoch=resumed.training_progress["epoch"],
                       seed=resumed.training_progress["seed"])
    assert rest.epoch == [3, 4]
    assert rest.history["loss"] == history.history["loss"][3:]
    for layer, params in whole.params.items():
        for key, value in params.items():
            np.testing.assert_array_equal(resumed.params[layer][key], value)
    for layer, state in whole.state.items():
        for key, value in state.items():
            np.testing.assert_array_equal(resumed.state[layer][key], value)


def test_the_shuffle_and_dropout_depend_on_the_seed_and_epoch_alone():
    x, y = data()
    a, b = first_order(), first_order()
    a.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=1)
    b.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=1)
    b.fit(x, y, batch_size=16, epochs=3, initial_epoch=1, verbose=0, seed=1)
    np.testing.assert_array_equal(a.params["dense"]["W"], b.params["dense"]["W"])
    c = first_order()
    c.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=2)
    assert not np.array_equal(a.params["dense"]["W"], c.params["dense"]["W"])


def test_initial_epoch_is_checked():
    x, y = data()
    m = first_order()
    with pytest.raises(ValueError, match=r"initial_epoch \(4\) is past epochs \(3\)"):
        m.fit(x, y, epochs=3, initial_epoch=4, verbose=0)
    with pytest.raises(ValueError, match="initial_epoch must be a non-negative integer"):
        m.fit(x, y, epochs=3, initial_epoch=-1, verbose=0)


def test_csv_logger_writes_each_epoch_once_across_a_restart(tmp_path):
    import csv

    from pearlnet.train import CSVLogger

    x, y = data()
    log, path = str(tmp_path / "log.csv"), str(tmp_path / "run.pnl")
    whole_log = str(tmp_path / "whole.csv")
    whole = first_order()
    whole.fit(x, y, batch_size=16, epochs=5, verbose=0, seed=9, callbacks=[CSVLogger(whole_log)])
    broken = first_order()
    with pytest.raises(Killed):  # killed after epoch 3's row but before its checkpoint
        broken.fit(x, y, batch_size=16, epochs=5, verbose=0, seed=9,
                   callbacks=[CSVLogger(log), KillAfter(2), ModelCheckpoint(path)])
    resumed = pearlnet.load_model(path)
    assert resumed.training_progress["epoch"] == 2
    resumed.fit(x, y, batch_size=16, epochs=5, initial_epoch=2, seed=9, verbose=0,
                callbacks=[CSVLogger(log, append=True)])
    with open(log, newline="") as fh, open(whole_log, newline="") as wh:
        rows, whole_rows = list(csv.DictReader(fh)), list(csv.DictReader(wh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert rows == whole_rows  # the same figures, bit for bit
