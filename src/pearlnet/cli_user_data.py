"""The ``pearlnet`` command on the user's own data, and the files a training run writes.

    pearlnet train --data arrays.npz --log metrics.csv --plot curves.png
    pearlnet train --data table.csv --target price --task regress
    pearlnet evaluate model.pnl --data arrays.npz

An .npz file holds ``x_train`` and ``y_train`` and optionally ``x_test`` and ``y_test``; a .csv
table has a header row, ``--target`` names its label column and every other column is a
feature. ``pearlnet.data.load_data_file`` checks the file (shapes, dtypes, NaN and infinity,
labels, empty files, a missing column); each problem, and a saved model that does not fit the
data, is argparse's one-line ``error:`` (exit code 2) before anything is trained or written.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

# `pearlnet train --data FILE` per model: the recipe when nothing else is given. The MLP's
# widths and batch size are Keras' usual starting point for a table (batch 32, Keras' default).
USER_RECIPES: dict[str, dict[str, Any]] = {
    "mlp": {"layers": [128, 128], "dropout": 0.0, "epochs": 20, "batch_size": 32, "lr": 1e-3,
            "schedule": "cosine"},
    "lenet5": {"epochs": 15, "batch_size": 128, "lr": 2e-3, "schedule": "cosine",
               "weight_decay": 0.05},
    "lstm": {"units": 64, "epochs": 20, "batch_size": 32, "lr": 3e-3, "schedule": "cosine"},
}

# the losses of a saved model that take class labels (its outputs are one logit per class);
# binary cross-entropy takes 0/1 values of the output's shape, as a regression's targets
_CLASSIFIER_LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")


def add_data_options(command: argparse.ArgumentParser) -> None:
    """--data, --target and --task, for train and evaluate."""
    command.add_argument("--data", metavar="FILE", help="your own data instead of --dataset: "
                         "an .npz file (x_train, y_train[, x_test, y_test]) or a .csv table")
    command.add_argument("--target", metavar="COLUMN", help="--data FILE.csv: the label column")
    command.add_argument("--task", choices=("auto", "classify", "regress"),
                         help="--data: whole-number labels are classes unless --task regress "
                              "(default auto)")


def check_data_options(parser: argparse.ArgumentParser, args: argparse.Namespace,
                       default_dataset: str | None) -> None:
    """Exit 2 unless exactly one of --data and --dataset says what to use (``default_dataset``
    when neither does, if there is one), and --target and --task come only with --data."""
    if args.data is not None and args.dataset is not None:
        parser.error("--data and --dataset are alternatives: give one (--data FILE for your "
                     "own arrays or table, --dataset NAME for a built-in dataset)")
    if args.data is None:
        for option in ("target", "task"):
            if getattr(args, option) is not None:
                parser.error(f"--{option} applies to --data FILE")
        if args.dataset is None:
            if default_dataset is None:
                parser.error("give --dataset NAME or --data FILE")
            args.dataset = default_dataset
        return
    suffix = Path(args.data).suffix.lower()
    if suffix == ".csv" and args.target is None:
        parser.error(f"argument --data: {args.data} is a table: name its label column with "
                     f"--target COLUMN")
    if suffix != ".csv" and args.target is not None:
        parser.error(f"argument --target: names a column of a .csv table, and {args.data} is "
                     f"not one")


def load_user_data(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   task: str | None = None) -> Any:
    """``load_data_file``'s checked ``UserData`` for --data, or exit 2 with its message."""
    from pearlnet.data import DataFileError, load_data_file

    try:
        return load_data_file(args.data, args.target, task or args.task or "auto")
    except DataFileError as err:
        parser.error(f"argument --data: {err}")
    except OSError as err:  # a missing or unreadable file
        parser.error(f"argument --data: cannot read {args.data!r}: "
                     f"{err.strerror or err}")


def check_split(parser: argparse.ArgumentParser, fraction: float, n: int, name: str) -> None:
    """Exit 2 unless holding out ``fraction`` of n samples (the last round(n * fraction), as
    Model.fit does) leaves at least one on each side."""
    if not fraction:
        return
    cut = int(round(n * (1 - fraction)))
    if cut == 0 or cut == n:
        parser.error(f"argument --validation-split: expected a fraction that leaves at least "
                     f"one of the {n} {name} training samples for training and one for "
                     f"validation, got {fraction:g} ({cut} for training, {n - cut} for "
                     f"validation)")


def feature_statistics(x: np.ndarray, per_feature: bool) -> tuple[Any, Any]:
    """The training inputs' mean and std for ``Standardize``: one pair for all values (pixels)
    or one per feature (a table's columns); a constant feature gets std 1, as scikit-learn's
    StandardScaler gives it, so it is centred and left unscaled."""
    values = x.astype(np.float64, copy=False)
    if not per_feature:
        std = float(values.std())
        return float(values.mean()), std if std > 0 else 1.0
    mean, std = values.mean(axis=0), values.std(axis=0)
    std[std == 0] = 1.0
    return mean, std


def build_user_model(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     recipe: dict, data: Any) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """(model, training inputs, test inputs) as --model takes them, for --data: an MLP on any
    sample shape (standardised per feature for a table, per value for images), LeNet-5 on
    images (N, H, W) or (N, 1, H, W), an LSTM on sequences (N, steps, features). Exit 2 when
    the data's shape does not suit the model."""
    import pearlnet
    from pearlnet import nn

    x, xt, classes = data.x_train, data.x_test, data.classes
    outputs = classes or int(np.prod(data.y_train.shape[1:], dtype=np.int64))
    name = Path(args.data).name
    if args.model == "mlp":
        table = x.ndim == 2  # columns standardised one by one; images (N, H, W...) flattened
        mean, std = feature_statistics(x, per_feature=table)
        stack = ([nn.Standardize(mean, std, input_shape=x.shape[1:])] if table else
                 [nn.Flatten(input_shape=x.shape[1:]), nn.Standardize(mean, std)])
        for width in recipe["layers"]:
            stack.append(nn.Dense(width, activation=args.activation))
            if recipe["dropout"]:
                stack.append(nn.Dropout(recipe["dropout"]))
        stack.append(nn.Dense(outputs))
        return pearlnet.Model(stack, seed=args.seed), x, xt
    if args.model == "lenet5":
        if x.ndim == 3:
            x = x.reshape(len(x), 1, *x.shape[1:])
            xt = None if xt is None else xt.reshape(len(xt), 1, *xt.shape[1:])
        if x.ndim != 4 or x.shape[1] != 1 or not classes:
            parser.error(f"--model lenet5 takes grey images (N, H, W) or (N, 1, H, W) with class "
                         f"labels; {name} has x_train of shape {data.x_train.shape} and "
                         f"{'class labels' if classes else 'values to regress'}")
        from pearlnet.models import lenet5

        mean, std = feature_statistics(x, per_feature=False)
        try:
            model = lenet5(x.shape[1:], max(classes, 2), mean=mean, std=std, seed=args.seed)
        except ValueError as err:
            parser.error(f"--model lenet5 does not fit {name}: {err}")
        return model, x, xt
    if x.ndim != 3:
        parser.error(f"--model lstm takes sequences (N, steps, features); {name} has x_train "
                     f"of shape {x.shape}")
    from pearlnet.models import lstm_classifier, lstm_regressor

    if classes:
        mean, std = feature_statistics(x, per_feature=False)
        return lstm_classifier(x.shape[1:], max(classes, 2), units=recipe["units"], mean=mean,
                               std=std, seed=args.seed), x, xt
    return lstm_regressor(steps=x.shape[1], features=x.shape[2], units=recipe["units"],
                          outputs=outputs, seed=args.seed), x, xt


def model_task(model: Any) -> str:
    """"classify" for a saved model whose loss takes class labels, else "regress" ("auto"
    for a model saved without a loss: the file decides)."""
    if model.loss_name is None:
        return "auto"
    return "classify" if model.loss_name in _CLASSIFIER_LOSSES else "regress"


def check_model_fits_data(parser: argparse.ArgumentParser, model: Any, name: str,
                          x: np.ndarray, y: np.ndarray, classes: int) -> None:
    """Exit 2 unless the saved model takes these inputs and gives an output per class (a
    classification) or the targets' shape (a regression)."""
    inputs, outputs = tuple(model.input_shape), tuple(model.output_shape_)
    if x.shape[1:] != inputs:
        parser.error(f"argument MODEL: the model takes inputs of shape {inputs}, {name} has "
                     f"inputs of shape {x.shape[1:]}")
    if classes:
        if len(outputs) != 1 or outputs[0] < 2:
            parser.error(f"argument MODEL: the model gives outputs of shape {outputs}, not one "
                         f"per class, and {name} holds class labels (pass --task regress if "
                         f"they are values)")
        if int(y.max()) >= outputs[0]:
            parser.error(f"argument MODEL: {name} has label {int(y.max())}, but the model gives "
                         f"{outputs[0]} outputs (labels 0 to {outputs[0] - 1})")
        return
    want = y.shape[1:] or (1,)
    if outputs != want:
        parser.error(f"argument MODEL: the model gives outputs of shape {outputs}, {name} has "
                     f"targets of shape {y.shape[1:] or '(one value)'}")


def plot_training_curves(path: str, title: str, history: Any, start: int,
                         logger: Any = None) -> None:
    """Write the loss and accuracy curves as a PNG at ``path`` (atomically): the epochs of the
    run's ``CSVLogger`` when --log gave one (a resumed run's earlier epochs too, which the
    logger read back from its file), else those of ``History``, numbered from ``start``."""
    from pearlnet.report import plots

    if logger is not None:
        rows = logger.rows
        epochs = [int(row["epoch"]) for row in rows]
        figures = {key: [float(row[key]) if row.get(key) not in (None, "") else math.nan
                         for row in rows] for key in logger.keys}
    else:
        logs = history.history
        epochs = list(range(start, start + len(next(iter(logs.values()), []))))
        figures = {key: [float(v) for v in values] for key, values in logs.items()}
    plots.save(plots.training_curves_figure(epochs, figures, title), path)
