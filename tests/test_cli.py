"""The pearlnet command: argument checks, training to an accuracy floor, save and evaluate."""

import os
from pathlib import Path

import pytest

from pearlnet import cli

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("argv,message", [
    (["train", "--epochs", "-1"], "argument --epochs: must be positive"),
    (["train", "--epochs", "ten"], "argument --epochs: 'ten' is not an integer"),
    (["train", "--layers", "256,x"], "argument --layers: '256,x' is not a comma-separated list"),
    (["train", "--layers", "256,0"], "argument --layers: layer widths must be positive"),
    (["train", "--dataset", "cifar10"], "argument --dataset: invalid choice: 'cifar10'"),
    (["train", "--optimizer", "adamax"], "argument --optimizer: optim.get: unknown optimizer"),
    (["train", "--activation", "gelu"], "argument --activation: activation: unknown name"),
    (["train", "--lr", "-0.1"], "argument --lr: must be a positive number"),
    (["train", "--dropout", "1.5"], "argument --dropout: must be in [0, 1)"),
    (["evaluate", "model.pnl"], "the following arguments are required: --dataset"),
    (["train", "--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (["train", "--dataset", "sine"], "--dataset sine is a sequence task: use --model lstm"),
    (["train", "--model", "lenet5", "--dataset", "digits"],
     "--model lenet5 does not fit --dataset digits (it takes: fashion-mnist, mnist)"),
    (["train", "--model", "lstm", "--dataset", "sine", "--layers", "8"],
     "--layers applies to --model mlp, not --model lstm"),
    (["train", "--units", "8"], "--units applies to --model lstm"),
])
def test_bad_arguments_exit_2_before_any_work(argv, message, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("data was loaded despite bad arguments")

    monkeypatch.setattr(cli, "load_dataset", never)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_dataset_is_a_message_not_a_traceback(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "mnist", "--data-root", str(tmp_path),
                     "--no-download", "--epochs", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("pearlnet train: ") and "Traceback" not in err


def test_digits_default_recipe_reaches_96_percent_and_round_trips(tmp_path, capsys):
    path = tmp_path / "digits.pnl"
    assert cli.main(["train", "--dataset", "digits", "--quiet", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 96.0, out
    assert os.listdir(tmp_path) == ["digits.pnl"]
    assert cli.main(["evaluate", str(path), "--dataset", "digits"]) == 0
    assert f"accuracy {accuracy:.2f}%" in capsys.readouterr().out


def test_hessian_free_trains_the_digits_with_large_batches(capsys):
    # no learning rate is set on HF and its batches are at least 1,000 (at the recipe's 32 it
    # reached 66%); 20 epochs at batch 1,000 is 40 outer steps
    assert cli.main(["train", "--dataset", "digits", "--optimizer", "hf", "--epochs", "20",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "hf, batch 1000, 20 epochs" in out
    assert float(out.split("test accuracy ")[1].split("%")[0]) >= 95.0, out


def test_lstm_on_sine_waves_beats_repeating_the_last_value_and_round_trips(tmp_path, capsys):
    # the default task (8,192 series of 50 steps), 2 of the recipe's 5 epochs: seconds
    path = tmp_path / "sine.pnl"
    assert cli.main(["train", "--model", "lstm", "--dataset", "sine", "--epochs", "2",
                     "--quiet", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    mse = float(out.split("test mean squared error ")[1].split()[0])
    baseline = float(out.split("repeating the last value: ")[1].split(")")[0])
    assert mse < 0.9 * baseline, out
    assert cli.main(["evaluate", str(path), "--dataset", "sine"]) == 0
    assert f"sine test: loss {mse:.5f}" in capsys.readouterr().out


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed here "
                    "(apt-get install dataset-fashion-mnist; `make test` does it when it can)")
def test_fashion_mnist_mlp_reaches_88_percent_in_10_epochs():
    """The issue's recipe: 784-256-256-10 ReLU, Adam 1e-3, batch 128, 10 epochs, standardised
    inputs: >= 88.0% (PyTorch: 88.3-89.0% over seeds; pearlnet seeds 0-2: 88.8, 89.2, 88.5)."""
    import numpy as np

    import pearlnet
    import pearlnet.nn as nn
    from pearlnet.data import load_fashion_mnist
    from pearlnet.optim import Adam

    (x, y), (xt, yt) = load_fashion_mnist(download=False)
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    xt = xt.reshape(len(xt), -1).astype(np.float32) / 255
    m, s = x.mean(), x.std()
    model = pearlnet.Model([nn.Dense(256, activation="relu", input_shape=(784,)),
                            nn.Dense(256, activation="relu"), nn.Dense(10)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-3), metrics=["accuracy"])
    model.fit((x - m) / s, y, batch_size=128, epochs=10, verbose=0, seed=0)
    assert model.evaluate((xt - m) / s, yt)["accuracy"] >= 0.880
