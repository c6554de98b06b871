"""pearlnet train and evaluate on the user's own .npz and .csv files; --log and --plot.

Every bad file, and a saved model that does not fit the file, is argparse's one-line error
(exit 2) with nothing trained or written.
"""

import csv
import os

import numpy as np
import pytest

import pearlnet
from pearlnet import cli


def _table_problem(n: int, seed: int = 0):
    """Five features on scales 1 to 100; the class depends on three of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) * [1.0, 10.0, 100.0, 1.0, 1.0]
    y = (x[:, 0] + x[:, 1] / 10 > 0).astype(np.int64) + (x[:, 2] > 100)
    return x, y


@pytest.fixture
def files(tmp_path):
    x, y = _table_problem(600)
    np.savez(tmp_path / "arrays.npz", x_train=x[:500], y_train=y[:500], x_test=x[500:],
             y_test=y[500:])
    np.savez(tmp_path / "train_only.npz", x_train=x, y_train=y)
    with open(tmp_path / "prices.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["a", "b", "c", "d", "e", "price"])
        for row in x:
            writer.writerow([*row, 2 * row[0] + 0.1 * row[1]])
    return tmp_path


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_train_on_an_npz_logs_plots_saves_and_evaluates(files, capsys):
    log, plot, model = files / "metrics.csv", files / "curves.png", files / "m.pnl"
    code, out = _run(["train", "--data", files / "arrays.npz", "--epochs", 4, "--quiet",
                      "--validation-split", 0.2, "--log", log, "--plot", plot, "--save", model],
                     capsys)
    assert code == 0
    assert "mlp on arrays.npz, 500 training and 100 test samples" in out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 75  # chance is about 40% (the largest class)
    rows = _rows(log)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table's columns are standardised one by one (their scales differ 100-fold)
    standardize = pearlnet.load_model(model).layers[0]
    assert np.asarray(standardize.std).shape == (5,)
    code, out = _run(["evaluate", model, "--data", files / "arrays.npz"], capsys)
    assert code == 0 and f"arrays.npz test: accuracy {accuracy:.2f}%" in out


def test_a_csv_regression_and_a_file_without_a_test_set(files, capsys):
    model = files / "r.pnl"
    code, out = _run(["train", "--data", files / "prices.csv", "--target", "price",
                      "--epochs", 8, "--quiet", "--save", model], capsys)
    assert code == 0
    assert "prices.csv has no test set" in out
    last_loss = float(out.split("the last epoch's loss ")[1].split()[0].rstrip(","))
    assert last_loss < 0.5  # the variance of the target is about 5
    code, out = _run(["evaluate", model, "--data", files / "prices.csv", "--target", "price"],
                     capsys)
    assert code == 0 and "prices.csv training (the file has no test arrays): loss" in out
    code, out = _run(["train", "--data", files / "train_only.npz", "--epochs", 1, "--quiet"],
                     capsys)
    assert code == 0 and "train_only.npz has no test set" in out and "accuracy" in out


class _Killed(Exception):
    """Stands for the process being killed."""


def test_a_resumed_run_keeps_its_log_and_plots_every_epoch(files, capsys, monkeypatch):
    from pearlnet.train import Callback

    log, plot, ckpt = files / "m.csv", files / "c.png", files / "ckpt.pnl"
    common = ["train", "--data", files / "arrays.npz", "--epochs", 3, "--quiet", "--log", log,
              "--checkpoint", ckpt]
    assert _run(common, capsys)[0] == 0
    whole = _rows(log)
    os.remove(ckpt)

    class KillAfterEpoch2(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after the checkpoint and the log have both written epoch 2
                raise _Killed

    fit = pearlnet.Model.fit

    def fit_then_die(self, *args, callbacks=(), **kwargs):
        return fit(self, *args, callbacks=[*callbacks, KillAfterEpoch2()], **kwargs)

    monkeypatch.setattr(pearlnet.Model, "fit", fit_then_die)
    with pytest.raises(_Killed):
        cli.main([str(a) for a in common])
    monkeypatch.setattr(pearlnet.Model, "fit", fit)
    assert [r["epoch"] for r in _rows(log)] == ["0", "1"]
    code, out = _run(common + ["--resume", "--plot", plot], capsys)
    assert code == 0 and "resuming from" in out
    assert _rows(log) == whole  # as the uninterrupted run wrote it
    assert plot.read_bytes()[:4] == b"\x89PNG"


def _write(tmp_path, name, **arrays):
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


@pytest.mark.parametrize("make,extra,message", [
    (lambda d: _write(d, "nan.npz", x_train=np.array([[1.0, np.nan], [2.0, 3.0]]),
                      y_train=np.array([0, 1])), [],
     "nan.npz: x_train has 1 NaN or infinite values (the first at index (0, 1))"),
    (lambda d: _write(d, "empty.npz"), [], "empty.npz: expected arrays "
     "x_train and y_train"),
    (lambda d: _write(d, "neg.npz", x_train=np.ones((3, 2)), y_train=np.array([0, -1, 1])), [],
     "y_train has the negative label -1"),
    (lambda d: _write(d, "ragged.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1])), [],
     "y_train must have one target per sample (3), got 2"),
    (lambda d: _write(d, "text.npz", x_train=np.array([["a", "b"]]), y_train=np.array([0])), [],
     "x_train must hold numbers, got dtype <U1"),
    (lambda d: _write(d, "unseen.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1]),
                      x_test=np.ones((1, 2)), y_test=np.array([4])), [],
     "y_test has label 4, but y_train's labels go only to 1"),
    (lambda d: d / "missing.npz", [], "argument --data: no such file"),
    (lambda d: (d / "t.csv").write_text("a,b\n1,2\n") and d / "t.csv", ["--target", "zz"],
     "t.csv: no column 'zz'; the columns are 'a', 'b'"),
    (lambda d: (d / "t.csv").write_text("a,b\n1,2\n") and d / "t.csv", [],
     "t.csv is a table: name its label column with --target COLUMN"),
    (lambda d: (d / "e.csv").write_text("") == 0 and d / "e.csv", ["--target", "a"],
     "e.csv: the file is empty"),
    (lambda d: _write(d, "a.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1])),
     ["--target", "a"], "argument --target: names a column of a .csv table"),
    (lambda d: _write(d, "a.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1])),
     ["--dataset", "digits"], "--data and --dataset are alternatives"),
    (lambda d: _write(d, "a.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1])),
     ["--model", "lenet5"], "--model lenet5 takes grey images (N, H, W) or (N, 1, H, W)"),
    (lambda d: _write(d, "a.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1])),
     ["--model", "lstm"], "--model lstm takes sequences (N, steps, features)"),
    (lambda d: _write(d, "a.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1])),
     ["--validation-split", "0.1"], "leaves at least one of the 3 a.npz training samples"),
    (lambda d: _write(d, "a.npz", x_train=np.ones((3, 2)), y_train=np.array([0, 1, 1])),
     ["--plot", "{tmp}/no/c.png"], "argument --plot: expected a file path in an existing "
     "folder"),
])
def test_bad_files_exit_2_and_nothing_is_trained_or_written(make, extra, message, tmp_path,
                                                             capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("trained despite a bad file")

    monkeypatch.setattr(pearlnet.Model, "fit", never)
    data = make(tmp_path)
    before = set(os.listdir(tmp_path))
    argv = ["train", "--data", str(data), "--save", str(tmp_path / "m.pnl"), "--log",
            str(tmp_path / "m.csv"), *[a.format(tmp=tmp_path) for a in extra]]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after argparse's usage lines: one line, the error
    assert last.startswith("pearlnet train: error: ") and message in last
    assert set(os.listdir(tmp_path)) == before


def test_options_of_user_data_need_data(capsys):
    for argv, message in ((["train", "--target", "x"], "--target applies to --data FILE"),
                          (["train", "--task", "regress"], "--task applies to --data FILE"),
                          (["evaluate", "m.pnl"], "give --dataset NAME or --data FILE")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_refuses_a_model_that_does_not_fit_the_file(files, capsys):
    model = files / "m.pnl"
    assert _run(["train", "--data", files / "arrays.npz", "--epochs", 1, "--quiet", "--save",
                 model], capsys)[0] == 0
    np.savez(files / "wide.npz", x_train=np.ones((3, 7)), y_train=np.array([0, 1, 1]))
    np.savez(files / "many.npz", x_train=np.ones((3, 5)), y_train=np.array([0, 5, 1]))
    for name, message in (("wide.npz", "the model takes inputs of shape (5,), wide.npz has "
                                       "inputs of shape (7,)"),
                          ("many.npz", "many.npz has label 5, but the model gives 3 outputs "
                                       "(labels 0 to 2)")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["evaluate", str(model), "--data", str(files / name)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(model), "--data", str(files / "prices.csv"), "--target",
                  "price"])
    assert "a classification needs whole-number labels" in capsys.readouterr().err


def test_images_in_an_npz_train_lenet5(tmp_path, capsys):
    from pearlnet.data import load_digits

    (x, y), (xt, yt) = load_digits()
    big = np.kron(x[:300], np.ones((1, 4, 4)))[:, :28, :28]  # 8x8 digits as 28x28 (32 cut)
    big_t = np.kron(xt[:100], np.ones((1, 4, 4)))[:, :28, :28]
    np.savez(tmp_path / "img.npz", x_train=big, y_train=y[:300], x_test=big_t, y_test=yt[:100])
    code, out = _run(["train", "--data", tmp_path / "img.npz", "--model", "lenet5", "--epochs",
                      2, "--batch-size", 32, "--quiet"], capsys)
    assert code == 0 and "lenet5 on img.npz, 300 training and 100 test samples" in out
    assert float(out.split("test accuracy ")[1].split("%")[0]) > 30


def test_curvature_of_a_saved_model_on_a_data_file(files, capsys):
    """pearlnet curvature takes --data like train and evaluate: the spectrum of the model's
    curvature over the file's training arrays, and the same refusals."""
    import json

    model = files / "m.pnl"
    assert _run(["train", "--data", files / "arrays.npz", "--epochs", 1, "--quiet", "--save",
                 model], capsys)[0] == 0
    out = files / "spectrum"
    code, text = _run(["curvature", model, "--data", files / "arrays.npz", "--samples", 200,
                       "--top-k", 2, "--trace-samples", 5, "--lanczos-steps", 10, "--quiet",
                       "--out", out], capsys)
    assert code == 0 and "GGN (Gauss-Newton): top eigenvalues" in text
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["dataset"] == "arrays.npz" and record["cases"] == 200
    np.savez(files / "wide.npz", x_train=np.ones((3, 7)), y_train=np.array([0, 1, 1]))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["curvature", str(model), "--data", str(files / "wide.npz")])
    assert exit_info.value.code == 2
    assert "the model takes inputs of shape (5,), wide.npz has" in capsys.readouterr().err
