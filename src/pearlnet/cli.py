"""The ``pearlnet`` command: train and evaluate classifiers, run the curvature demo.

    pearlnet train --dataset fashion-mnist --layers 256,256 --activation relu --optimizer adam \\
        --lr 1e-3 --epochs 10 --batch-size 128 --save model.pnl
    pearlnet train --model lenet5 --dataset fashion-mnist
    pearlnet train --model lstm --dataset sine
    pearlnet evaluate model.pnl --dataset fashion-mnist
    pearlnet train --data arrays.npz --log metrics.csv --plot curves.png --save model.pnl
    pearlnet train --data table.csv --target label
    pearlnet evaluate model.pnl --data arrays.npz
    pearlnet autoencoder --dataset fashion-mnist --archs 784-2,784-128-2,784-256-64-2 \\
        --optimizers sgd,momentum,rmsprop,adam,hf --epochs 20 --batch-size 100 \\
        --train-size 10000 --out report/
    pearlnet curvature model.pnl --dataset fashion-mnist --samples 1000 --out spectrum
    pearlnet curvature model.pnl --data arrays.npz --out spectrum
    pearlnet demo

Bad arguments are refused (exit code 2, a message naming the argument) before any data is read;
a saved model that does not fit the dataset (its inputs, or one output per class) likewise, once
the dataset is read; so is a --data file that cannot be trained on (cli_user_data.py).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pearlnet._args import non_negative_int as _seed
from pearlnet._files import replacing
from pearlnet.cli_user_data import (
    USER_RECIPES,
    add_data_options,
    build_user_model,
    check_data_options,
    check_model_fits_data,
    check_split,
    feature_statistics,
    load_user_data,
    model_task,
    plot_training_curves,
)

DATASETS = ("fashion-mnist", "mnist", "digits", "sine")
MODELS = ("mlp", "lenet5", "lstm")

# The default recipe per dataset: what `pearlnet train --dataset NAME` runs.
RECIPES: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"layers": [512, 512], "dropout": 0.2, "epochs": 20, "batch_size": 128,
                      "lr": 1e-3, "schedule": "cosine"},
    "mnist": {"layers": [512, 512], "dropout": 0.2, "epochs": 15, "batch_size": 128,
              "lr": 1e-3, "schedule": "cosine"},
    "digits": {"layers": [512], "dropout": 0.3, "epochs": 100, "batch_size": 32,
               "lr": 1e-3, "schedule": "cosine"},
}

# The recipes of the other models, per (model, dataset); the pairs not listed are refused.
MODEL_RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("lenet5", "fashion-mnist"): {"epochs": 15, "batch_size": 128, "lr": 2e-3,
                                  "schedule": "cosine", "weight_decay": 0.05},
    ("lenet5", "mnist"): {"epochs": 10, "batch_size": 128, "lr": 2e-3, "schedule": "cosine",
                          "weight_decay": 0.05},
    ("lstm", "fashion-mnist"): {"units": 128, "epochs": 10, "batch_size": 128, "lr": 2e-3,
                                "schedule": "cosine"},
    ("lstm", "mnist"): {"units": 128, "epochs": 10, "batch_size": 128, "lr": 2e-3,
                        "schedule": "cosine"},
    ("lstm", "digits"): {"units": 64, "epochs": 60, "batch_size": 32, "lr": 3e-3,
                         "schedule": "cosine"},
    ("lstm", "sine"): {"units": 32, "epochs": 5, "batch_size": 64, "lr": 5e-3,
                       "schedule": "cosine"},
}
MLP_ONLY = ("layers", "dropout")

# The training-set sizes the loaders return (what --validation-split is checked against before
# any data is read): the IDX loaders insist on 60,000; the digits' stratified split keeps 1,346
# of 1,797; load_sine() makes 8,192 series.
TRAIN_SIZES = {"fashion-mnist": 60000, "mnist": 60000, "digits": 1346, "sine": 8192}


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a word starting with '-' and a digit is always a value:
    argparse takes only plain negative numbers ("-5", "-0.1") as values, so ``--layers -5,3``
    would be refused as "expected one argument" instead of for its negative width. No option
    of the pearlnet command starts with a digit, so nothing else changes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")


def _positive_ints(text: str, what: str, example: str) -> list[int]:
    """A non-empty comma-separated list of positive ints: no empty item (``12,,3`` is a
    typo, not 12,3), no empty list (``--layers ,`` would silently train a linear model)."""
    items = text.split(",")
    empty = [i for i, item in enumerate(items, 1) if item.strip() == ""]
    if empty:
        why = "it holds no number" if len(empty) == len(items) else f"item {empty[0]} is empty"
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what} "
                                         f"such as {example}: {why}")
    try:
        values = [int(item) for item in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what} "
                                         f"such as {example}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be positive, got {text!r}")
    return values


def _layers(text: str) -> list[int]:
    return _positive_ints(text, "layer widths", "256,256")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _activation(text: str) -> str:
    """A hidden layer's activation: elementwise, so not softmax or log_softmax (they couple a
    layer's units into one distribution: output activations)."""
    from pearlnet.nn import activations

    try:
        fn = activations.get(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if fn in (activations.softmax, activations.log_softmax):
        raise argparse.ArgumentTypeError(f"{text!r} is an output activation (it normalises "
                                         f"across a layer's units), not a hidden one; use an "
                                         f"elementwise one such as relu or tanh")
    return text


def _optimizer(text: str) -> str:
    from pearlnet import optim

    try:
        optim.get(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _archs(text: str) -> list[list[int]]:
    archs = []
    for part in text.split(","):
        try:
            sizes = [int(s) for s in part.strip().split("-")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an arch such as 784-128-2 "
                                             f"(encoder widths joined by '-')") from None
        if len(sizes) < 2 or any(s <= 0 for s in sizes) or sizes[-1] != 2:
            raise argparse.ArgumentTypeError(f"arch {part!r} must list at least two positive "
                                             f"widths ending in the 2-unit code, e.g. 784-2 or "
                                             f"784-128-2")
        archs.append(sizes)
    return archs


def _optimizer_list(text: str) -> list[str]:
    from pearlnet.report.study import OPTIMIZERS

    names = [s.strip().lower() for s in text.split(",")]
    bad = [n for n in names if n not in OPTIMIZERS]  # an empty item too: a typo
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list drawn from "
                                         f"{','.join(OPTIMIZERS)}")
    return list(dict.fromkeys(names))


def _batch_sizes(text: str) -> list[int]:
    return _positive_ints(text, "batch sizes", "100,200")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="pearlnet", description=__doc__.splitlines()[0])
    from pearlnet import __version__

    parser.add_argument("--version", action="version", version=f"pearlnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier (fully connected, LeNet-5 or "
                           "row-by-row LSTM) or the LSTM on noisy sine waves")
    train.add_argument("--model", choices=MODELS, default="mlp",
                       help="mlp (default), lenet5 (28x28 images) or lstm (images read row by "
                       "row, or --dataset sine: the next value of noisy sine waves)")
    train.add_argument("--dataset", choices=DATASETS, help="default fashion-mnist")
    add_data_options(train)
    train.add_argument("--layers", type=_layers, help="mlp: hidden widths, e.g. 256,256 "
                       "(default: the dataset's recipe)")
    train.add_argument("--units", type=_positive_int, help="lstm: hidden units")
    train.add_argument("--activation", type=_activation, default="relu",
                       help="mlp: hidden activation")
    train.add_argument("--dropout", type=_fraction, help="mlp: dropout after each hidden layer")
    train.add_argument("--optimizer", type=_optimizer, default="adam")
    train.add_argument("--lr", type=_positive_float)
    train.add_argument("--schedule", choices=("constant", "cosine"))
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--validation-split", type=_fraction, default=0.0)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--save", metavar="PATH", help="write the trained model here (.pnl)")
    train.add_argument("--checkpoint", metavar="PATH",
                       help="write a restart point here after every epoch (weights, optimizer "
                            "state, seed and epochs done; atomic)")
    train.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint PATH when it exists (the run then ends "
                            "where the uninterrupted run ends); start afresh when it does not")
    train.add_argument("--data-root", metavar="DIR", help="folder holding the four IDX files")
    train.add_argument("--no-download", action="store_true", help="never download data")
    train.add_argument("--log", metavar="PATH", help="write each epoch's figures to this CSV "
                       "file (Keras' CSVLogger)")
    train.add_argument("--plot", metavar="PATH", help="draw the loss and accuracy curves, "
                       "training and validation, to this PNG file (needs matplotlib)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = sub.add_parser("evaluate", help="evaluate a saved model on a test set")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("--dataset", choices=DATASETS)
    add_data_options(evaluate)
    evaluate.add_argument("--data-root", metavar="DIR")
    evaluate.add_argument("--no-download", action="store_true")

    study = sub.add_parser(
        "autoencoder", help="the autoencoder study: optimizers compared, 2-D codes, PCA, and "
        "an HTML + PDF report",
        description="Train the autoencoder of every arch with every optimizer (step sizes by a "
        "grid search on a held-out split), compare with PCA, and write figures, results.json, "
        "report.html and report.pdf into --out.")
    study.add_argument("--dataset", choices=DATASETS, default="mnist",
                       help="default mnist, the assignment's; when it is missing the command "
                       "says so and stops rather than switch datasets")
    study.add_argument("--archs", type=_archs, help="encoder widths ending in the 2-unit code, "
                       "comma-separated, e.g. 784-2,784-128-2,784-256-64-2 (the default; for "
                       "digits 64-2,64-32-2,64-32-16-2)")
    study.add_argument("--optimizers", type=_optimizer_list,
                       help="from sgd,momentum,rmsprop,adam,hf (default: all)")
    study.add_argument("--epochs", type=_positive_int, help="default 20 (--quick: 4)")
    study.add_argument("--batch-size", type=_positive_int, default=100,
                       help="minibatch size of the first-order methods (default 100)")
    study.add_argument("--train-size", type=_positive_int, help="the first N training images "
                       "(default 10000; --quick: 2000); the next N/10 are the held-out split")
    study.add_argument("--val-size", type=_positive_int, help="the first N test images "
                       "(default 2000)")
    study.add_argument("--grid-epochs", type=_positive_int,
                       help="epochs per grid-search candidate (default 2; --quick: 1)")
    study.add_argument("--grid-batch-sizes", type=_batch_sizes, help="minibatch sizes crossed with "
                       "the step sizes in the grid search (default: just --batch-size)")
    study.add_argument("--hf-cg-iters", type=_positive_int, help="Hessian-free: CG iterations "
                       "per outer step at most (default 50)")
    study.add_argument("--hf-steps-per-epoch", type=_positive_int, help="Hessian-free: outer "
                       "steps per epoch, on that many parts of the training set (default 5)")
    study.add_argument("--activation", type=_activation, default="tanh",
                       help="hidden-layer activation (code and output layers are linear)")
    study.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    study.add_argument("--seed", type=_seed, default=0)
    study.add_argument("--blas-threads", type=_positive_int, default=1, help="BLAS threads "
                       "during the study (default 1: its matrices are small, and on a shared "
                       "machine more threads can be much slower); needs threadpoolctl")
    study.add_argument("--out", metavar="DIR", default="report")
    study.add_argument("--quick", action="store_true", help="a reduced study in under two "
                       "minutes: two small archs, sgd,adam,hf, 4 epochs, 2000 images")
    study.add_argument("--quiet", action="store_true", help="no progress bar")
    study.add_argument("--data-root", metavar="DIR", help="folder holding the four IDX files")
    study.add_argument("--no-download", action="store_true", help="never download data")

    curv = sub.add_parser(
        "curvature", help="the Hessian's or GGN's top eigenvalues, trace and spectral density "
        "for a saved model (PNG and JSON)",
        description="Top eigenvalues (Lanczos), trace (Hutch++) and spectral density "
        "(stochastic Lanczos quadrature) of a saved model's loss curvature over the first "
        "--samples training images; writes OUT.png and OUT.json.")
    curv.add_argument("model", metavar="MODEL")
    curv.add_argument("--dataset", choices=DATASETS)
    add_data_options(curv)
    curv.add_argument("--samples", type=_positive_int, default=1000,
                      help="the first N training cases (default 1000)")
    curv.add_argument("--curvature", choices=("ggn", "hessian", "both"), default="both")
    curv.add_argument("--top-k", type=_positive_int, default=5)
    curv.add_argument("--trace-samples", type=_positive_int, default=30,
                      help="matrix-vector products for Hutch++ (default 30)")
    curv.add_argument("--lanczos-steps", type=_positive_int, default=60)
    curv.add_argument("--runs", type=_positive_int, default=1, help="SLQ runs (default 1)")
    curv.add_argument("--batch-size", type=_positive_int, default=1000)
    curv.add_argument("--seed", type=_seed, default=0)
    curv.add_argument("--out", metavar="PATH", default="spectrum",
                      help="output path without suffix (default: spectrum -> spectrum.png, "
                      "spectrum.json)")
    curv.add_argument("--data-root", metavar="DIR")
    curv.add_argument("--no-download", action="store_true")
    curv.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("demo", help="differentiate a small autoencoder and check every derivative")
    # so main's checks report as "pearlnet train: ..."
    for command in (train, evaluate, study, curv):
        command.set_defaults(command_parser=command)
    return parser


def load_dataset(name: str, root: str | None = None, download: bool = True):
    """(x_train, y_train), (x_test, y_test) as stored: images and integer labels."""
    from pearlnet import data

    if name == "digits":
        return data.load_digits()
    if name == "sine":
        return data.load_sine()
    loader = data.load_fashion_mnist if name == "fashion-mnist" else data.load_mnist
    return loader(root=root, download=download)


def check_output_file(parser: argparse.ArgumentParser, option: str, path: str) -> None:
    """Exit 2 (parser.error) unless ``path`` can be written as a file: not a folder, in a folder
    that exists and is writable. Checked before any work, so a long run cannot end in it."""
    if path == "":
        parser.error(f"argument {option}: expected a file path such as model.pnl, got ''")
    target = Path(path)
    if target.is_dir():
        parser.error(f"argument {option}: expected a file path, got {path!r}, which is a "
                     f"folder (e.g. {str(target / 'model.pnl')!r})")
    folder = target.parent
    if not folder.exists():
        parser.error(f"argument {option}: expected a file path in an existing folder, got "
                     f"{path!r}: folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        parser.error(f"argument {option}: expected a file path in a folder, got {path!r}: "
                     f"{str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"argument {option}: expected a file path in a writable folder, got "
                     f"{path!r}: folder {str(folder)!r} is not writable")


def check_output_folder(parser: argparse.ArgumentParser, option: str, path: str) -> None:
    """Exit 2 (parser.error) unless ``path`` is a writable folder or one that can be created
    (its nearest existing ancestor is a writable folder)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        parser.error(f"argument {option}: expected a folder, got {path!r}, which exists and is "
                     f"not a folder")
    ancestor = target
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        parser.error(f"argument {option}: expected a folder that can be created, got {path!r}: "
                     f"{str(ancestor)!r} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        parser.error(f"argument {option}: expected a writable folder, got {path!r}: "
                     f"{str(ancestor)!r} is not writable")


def check_validation_split(parser: argparse.ArgumentParser, fraction: float,
                           dataset: str) -> None:
    """Exit 2 unless holding out ``fraction`` of the dataset's training set (the last
    round(n * fraction), as Model.fit does) leaves at least one sample on each side."""
    check_split(parser, fraction, TRAIN_SIZES[dataset], dataset)


def check_train_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 (parser.error) on a model that does not fit the dataset, options the optimizer
    does not take, a validation split that leaves nothing on one side, or a --save path that
    cannot be written, all before data is read."""
    check_data_options(parser, args, "fashion-mnist")
    check_model_args(parser, args)
    if _is_second_order(args.optimizer):
        given = [f"--{key}" for key in ("lr", "schedule") if getattr(args, key) is not None]
        if given:
            verb = "does" if len(given) == 1 else "do"
            how = ("Hessian-free takes its steps from conjugate gradient and a line search"
                   if _is_hessian_free(args.optimizer) else
                   "K-FAC scales its steps by the exact curvature's quadratic model")
            parser.error(f"{' and '.join(given)} {verb} not apply to --optimizer "
                         f"{args.optimizer}: {how}, with no learning rate or schedule")
    if args.data is None:
        check_validation_split(parser, args.validation_split, args.dataset)
    for option in ("save", "log", "plot"):
        if getattr(args, option) is not None:
            check_output_file(parser, f"--{option}", getattr(args, option))
    if args.plot is not None:
        from pearlnet.report import plots

        try:
            plots.require_matplotlib()
        except ImportError:
            parser.error("argument --plot: drawing the curves needs matplotlib: pip install "
                         "matplotlib (or pip install 'pearlnet[plots]')")
    if args.resume and args.checkpoint is None:
        parser.error("--resume continues from a checkpoint: give --checkpoint PATH too")
    if args.checkpoint is not None:
        check_output_file(parser, "--checkpoint", args.checkpoint)


def check_model_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 (parser.error) on a model that does not fit the dataset (--data files are
    checked once read)."""
    if args.data is not None:
        if args.units is not None and args.model != "lstm":
            parser.error("--units applies to --model lstm")
        for key in MLP_ONLY:
            if getattr(args, key) is not None and args.model != "mlp":
                parser.error(f"--{key} applies to --model mlp, not --model {args.model}")
        return
    if args.model == "mlp":
        if args.dataset == "sine":
            parser.error("--dataset sine is a sequence task: use --model lstm")
        if args.units is not None:
            parser.error("--units applies to --model lstm")
        return
    if (args.model, args.dataset) not in MODEL_RECIPES:
        fits = ", ".join(d for m, d in MODEL_RECIPES if m == args.model)
        parser.error(f"--model {args.model} does not fit --dataset {args.dataset} (it takes: "
                     f"{fits})")
    for key in MLP_ONLY:
        if getattr(args, key) is not None:
            parser.error(f"--{key} applies to --model mlp, not --model {args.model}")
    if args.model == "lenet5" and args.units is not None:
        parser.error("--units applies to --model lstm")


HF_BATCH_SIZE = 1000  # pearlnet train --optimizer hf without --batch-size


def _is_hessian_free(name: str | None) -> bool:
    from pearlnet import optim

    return name is not None and isinstance(optim.get(name), optim.HessianFree)


def _is_second_order(name: str | None) -> bool:
    """Hessian-free or K-FAC: optimizers that choose their own step (no lr, no schedule)."""
    from pearlnet import optim

    return name is not None and isinstance(optim.get(name), (optim.HessianFree, optim.KFAC))


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "data", None) is not None:
        table = USER_RECIPES[args.model]
    else:
        table = RECIPES[args.dataset] if args.model == "mlp" else MODEL_RECIPES[
            (args.model, args.dataset)]
    recipe = dict(table)
    if _is_hessian_free(getattr(args, "optimizer", None)):
        # HF's curvature and line search need large batches (Martens 2010): on the digits,
        # 10 epochs gave 65.9% test accuracy at batch 32, 94.9% at 256 and 97.3% at 1,000
        recipe["batch_size"] = max(recipe["batch_size"], HF_BATCH_SIZE)
    for key in ("layers", "dropout", "units", "lr", "schedule", "epochs", "batch_size"):
        value = getattr(args, key, None)
        if value is not None:
            recipe[key] = value
    return recipe


def build_classifier(input_shape: tuple, num_classes: int, mean: float, std: float,
                     layers: list[int], activation: str, dropout: float, seed: int):
    """Flatten, standardise with the training set's statistics, hidden Dense layers (with
    dropout after each), and a linear output (logits)."""
    import pearlnet
    from pearlnet import nn

    stack = [nn.Flatten(input_shape=input_shape), nn.Standardize(mean, std)]
    for width in layers:
        stack.append(nn.Dense(width, activation=activation))
        if dropout:
            stack.append(nn.Dropout(dropout))
    stack.append(nn.Dense(num_classes))
    return pearlnet.Model(stack, seed=seed)


def build_for_dataset(args: argparse.Namespace, recipe: dict, x_train: np.ndarray,
                      num_classes: int) -> tuple[Any, np.ndarray]:
    """(model, training inputs as the model takes them) for --model and --dataset."""
    if args.dataset == "sine":
        from pearlnet.models import lstm_regressor

        return lstm_regressor(steps=x_train.shape[1], features=x_train.shape[2],
                              units=recipe["units"], seed=args.seed), x_train
    mean, std = feature_statistics(x_train, per_feature=False)  # the pixels' mean and std
    if args.model == "lenet5":
        from pearlnet.models import lenet5

        images = x_train.reshape(len(x_train), 1, *x_train.shape[1:])
        return lenet5(images.shape[1:], num_classes, mean=mean, std=std, seed=args.seed), images
    if args.model == "lstm":
        from pearlnet.models import lstm_classifier

        return lstm_classifier(x_train.shape[1:], num_classes, units=recipe["units"], mean=mean,
                               std=std, seed=args.seed), x_train
    return build_classifier(x_train.shape[1:], num_classes, mean, std, recipe["layers"],
                            args.activation, recipe["dropout"], args.seed), x_train


def _as_model_input(model: Any, x: np.ndarray) -> np.ndarray:
    """Images (N, H, W) as (N, 1, H, W) for a model built for channels, else x."""
    shape = tuple(model.input_shape)
    if x.shape[1:] != shape and shape == (1, *x.shape[1:]):
        return x.reshape(len(x), *shape)
    return x


def _say(*args: Any, **kwargs: Any) -> None:
    """print, on rank 0 only (under mpiexec every rank runs the command)."""
    from pearlnet import distributed

    if distributed.world().rank == 0:
        print(*args, **kwargs)


def resume_from(parser: argparse.ArgumentParser, path: str, model: Any) -> tuple[Any, int, int]:
    """(the checkpoint's model, epochs done, seed) for --resume, or exit 2 when the file is
    not a checkpoint of the model these options build."""
    import pearlnet

    try:
        saved = pearlnet.load_model(path)
    except (ValueError, OSError) as err:
        parser.error(f"argument --checkpoint: cannot resume from {path!r}: {err}")
    progress = saved.training_progress
    if not progress or saved.optimizer is None:
        parser.error(f"argument --checkpoint: {path!r} is a model file but not a checkpoint "
                     f"(no training progress or optimizer state): it was not written by "
                     f"--checkpoint")
    # a resumed run ends where the uninterrupted one ends only if it is the same run: the
    # same layers and weights' shapes, and the same optimizer (a cosine schedule's length
    # comes from --epochs)
    differences = []
    mine, theirs = _architecture(model), _architecture(saved)
    if mine != theirs:
        at = next((i for i, (a, b) in enumerate(zip(theirs, mine)) if a != b),
                  min(len(mine), len(theirs)))
        got = theirs[at][2] if at < len(theirs) else "no layer"
        want = mine[at][2] if at < len(mine) else "no layer"
        differences.append(f"{len(theirs)} layers, layer {at + 1} {got} (these options: "
                           f"{len(mine)} layers, layer {at + 1} {want})")
    if _ADDRESS.sub("", repr(saved.optimizer)) != _ADDRESS.sub("", repr(model.optimizer)):
        differences.append(f"optimizer {saved.optimizer!r} (these options: "
                           f"{model.optimizer!r})")
    if differences:
        parser.error(f"argument --checkpoint: {path!r} was written by another run: "
                     f"{'; '.join(differences)}; resume with the options of the run that "
                     f"wrote it")
    return saved, int(progress["epoch"]), int(progress["seed"])


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _architecture(model: Any) -> list:
    """Each layer's class, name, config and weight shapes (what --resume compares)."""
    from pearlnet.autodiff import tree_flatten

    return [(type(layer).__name__, layer.name, repr(layer),
             [np.shape(a) for a in tree_flatten(layer.params)[0]]) for layer in model.layers]


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    from pearlnet import optim
    from pearlnet.optim import schedules
    from pearlnet.train import CSVLogger, ModelCheckpoint

    parser = parser or build_parser()
    recipe = _recipe(args)
    if args.data is not None:
        data = load_user_data(parser, args)
        check_split(parser, args.validation_split, len(data.x_train), Path(args.data).name)
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
        regression, num_classes = not data.classes, data.classes
        model, x_train, x_test = build_user_model(parser, args, recipe, data)
        source = Path(args.data).name
    else:
        (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset, args.data_root,
                                                            not args.no_download)
        regression = args.dataset == "sine"
        num_classes = 0 if regression else int(y_train.max()) + 1
        model, x_train = build_for_dataset(args, recipe, x_train, num_classes)
        x_test = _as_model_input(model, x_test)
        source = args.dataset
    steps_per_epoch = math.ceil(len(x_train) * (1 - args.validation_split)
                                / recipe["batch_size"])
    lr = recipe["lr"]
    if recipe["schedule"] == "cosine":
        lr = schedules.cosine(lr, total_steps=recipe["epochs"] * steps_per_epoch)
    opt = optim.get(args.optimizer)
    hessian_free = _is_second_order(args.optimizer)
    if not hessian_free:  # HF's and K-FAC's steps come from the curvature: no learning rate
        opt.lr = lr
        opt.weight_decay = recipe.get("weight_decay", 0.0)  # decoupled, on the kernels only
    if regression:
        model.compile(loss="mse", optimizer=opt)
    else:
        model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    start, seed = 0, args.seed
    if args.resume and os.path.exists(args.checkpoint):
        model, start, seed = resume_from(parser, args.checkpoint, model)
        _say(f"pearlnet train: resuming from {args.checkpoint} after epoch {start} of "
             f"{recipe['epochs']}", flush=True)
    elif args.resume:
        _say(f"pearlnet train: no checkpoint at {args.checkpoint} yet; starting afresh",
             flush=True)
    from pearlnet import distributed

    ranks = distributed.world().size
    decay = f", weight decay {opt.weight_decay:g}" if getattr(opt, "weight_decay", 0) else ""
    step = "" if hessian_free else f" lr {recipe['lr']:g} ({recipe['schedule']}){decay}"
    what = ("series" if regression else "images") if args.data is None else "samples"
    tests = f"{len(x_test)} test" if x_test is not None else "no test"
    _say(f"pearlnet train: {args.model} on {source}, {len(x_train)} training and "
         f"{tests} {what}; "
         f"{model.count_params():,} parameters; {args.optimizer}{step}, "
         f"batch {recipe['batch_size']}, "
         f"{recipe['epochs']} epochs" + (f"; data-parallel on {ranks} ranks" if ranks > 1
                                         else ""),
         flush=True)
    callbacks: list = [] if args.checkpoint is None else [ModelCheckpoint(args.checkpoint)]
    logger = None
    if args.log is not None:  # a resumed run keeps the log's rows of the epochs it keeps
        logger = CSVLogger(args.log, append=start > 0)
        callbacks.append(logger)
    initial_epoch = min(start, recipe["epochs"])
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=recipe["batch_size"],
                        epochs=recipe["epochs"], validation_split=args.validation_split,
                        verbose=0 if args.quiet else 1, seed=seed, initial_epoch=initial_epoch,
                        callbacks=callbacks)
    seconds = time.perf_counter() - t0
    if args.plot is not None and distributed.world().rank == 0:
        plot_training_curves(args.plot, f"{args.model} on {source}", history, initial_epoch,
                             logger)
    if x_test is None:
        last = {k: v[-1] for k, v in history.history.items() if v}
        shown = ", ".join(f"{k} {v:.5g}" for k, v in last.items() if k != "lr")
        _say(f"{source} has no test set (x_test, y_test): after {seconds:.1f} s of training, "
             f"the last epoch's {shown or 'figures are those of the resumed run'}")
    elif regression:
        result = model.evaluate(x_test, y_test)
        from pearlnet.data import last_value_mse

        if args.data is None:
            baseline = f"repeating the last value: {last_value_mse(x_test, y_test):.5f}"
        else:
            mean = y_train.mean(axis=0)
            baseline = (f"predicting the training mean: "
                        f"{float(np.mean((y_test - mean) ** 2)):.5f}")
        _say(f"test mean squared error {result['loss']:.5f} ({baseline}) after {seconds:.1f} s "
             f"of training")
    else:
        result = model.evaluate(x_test, y_test)
        _say(f"test accuracy {100 * result['accuracy']:.2f}% (loss {result['loss']:.4f}) "
             f"after {seconds:.1f} s of training")
    if args.save is not None:
        model.save(args.save)
        _say(f"saved to {args.save}")
    for option, what in (("log", "the epochs' figures"), ("plot", "the training curves")):
        if getattr(args, option) is not None:
            _say(f"wrote {what} to {getattr(args, option)}")
    return 0


def load_model_arg(parser: argparse.ArgumentParser, path: str) -> Any:
    """The model saved at ``path``; exit 2 (parser.error) when it is missing or unreadable."""
    import pearlnet

    if not os.path.exists(path):
        parser.error(f"argument MODEL: expected a model file written by Model.save or "
                     f"pearlnet train --save, got {path!r}: no such file")
    if os.path.isdir(path):
        parser.error(f"argument MODEL: expected a model file, got {path!r}, which is a folder")
    if not zipfile.is_zipfile(path):
        parser.error(f"argument MODEL: expected a model file written by Model.save or "
                     f"pearlnet train --save (a NumPy .npz archive), got {path!r}, which is "
                     f"not one")
    try:
        return pearlnet.load_model(path)
    except (ValueError, OSError) as err:  # load_model's messages name the file and the cause
        parser.error(f"argument MODEL: cannot load {path!r}: {err}")


def check_model_fits(parser: argparse.ArgumentParser, model: Any, dataset: str,
                     x_test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> None:
    """Exit 2 (parser.error) unless the model takes the dataset's inputs and gives one output
    per class (for sine, the targets' shape)."""
    inputs, outputs = tuple(model.input_shape), tuple(model.output_shape_)
    if x_test.shape[1:] != inputs:
        parser.error(f"argument MODEL: the model takes inputs of shape {inputs}, {dataset} "
                     f"has inputs of shape {x_test.shape[1:]}")
    if dataset == "sine":
        if outputs != y_test.shape[1:]:
            parser.error(f"argument MODEL: the model gives outputs of shape {outputs}, {dataset} "
                         f"has targets of shape {y_test.shape[1:]}")
        return
    classes = int(max(y_train.max(), y_test.max())) + 1
    if outputs != (classes,):
        width = (f"{outputs[0]} output{'s' if outputs[0] != 1 else ''}" if len(outputs) == 1
                 else f"outputs of shape {outputs}")
        parser.error(f"argument MODEL: the model gives {width} (one per class), {dataset} has "
                     f"{classes} classes")


def cmd_evaluate(args: argparse.Namespace, model: Any) -> int:
    """The test-set figures of a saved model (for --data, the file's test arrays, or its
    training arrays when it has none). A model saved without compile has no loss: a
    classifier's accuracy (and a regression's mean squared error) is computed from
    ``predict`` all the same, and the line says the loss is missing."""
    from pearlnet.train import metrics

    parser = args.command_parser
    if args.data is not None:
        # the saved model's loss says whether whole numbers are classes or values
        data = load_user_data(parser, args, task=args.task or model_task(model))
        part = "test" if data.x_test is not None else "training (the file has no test arrays)"
        x_test, y_test = ((data.x_test, data.y_test) if data.x_test is not None
                          else (data.x_train, data.y_train))
        x_test = _as_model_input(model, x_test)
        name, regression = Path(args.data).name, not data.classes
        check_model_fits_data(parser, model, name, x_test, y_test, data.classes)
    else:
        (_, y_train), (x_test, y_test) = load_dataset(args.dataset, args.data_root,
                                                      not args.no_download)
        x_test = _as_model_input(model, x_test)
        name, part, regression = args.dataset, "test", args.dataset == "sine"
        check_model_fits(parser, model, args.dataset, x_test, y_train, y_test)
    result: dict[str, float] = {}
    if model.loss_fn is not None:
        try:
            result = model.evaluate(x_test, y_test)
        except ValueError as err:  # a loss that does not take these targets
            parser.error(f"argument MODEL: cannot evaluate it on {name}: {err}")
    figures = []
    if regression:
        if "loss" not in result:
            pred = model.predict(x_test).reshape(y_test.shape)
            mse = float(np.mean((pred - y_test) ** 2))
            figures.append(f"mean squared error {mse:.5f}")
    else:
        accuracy = result.get("accuracy")
        if accuracy is None:
            accuracy = metrics.accuracy(y_test, model.predict(x_test))
        figures.append(f"accuracy {100 * accuracy:.2f}%")
    if "loss" in result:
        figures.append(f"loss {result['loss']:.5f}" if regression
                       else f"loss {result['loss']:.4f}")
    line = f"{name} {part}: {', '.join(figures)}"
    if model.loss_fn is None:
        line += " (the model was saved without compile: no loss)"
    _say(line)
    return 0


def check_autoencoder_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 (parser.error) on an arch whose input width is not the dataset's, before any
    data is read."""
    from pearlnet.report.study import FEATURES

    width = FEATURES[args.dataset]
    for sizes in args.archs or []:
        if sizes[0] != width:
            arch = "-".join(map(str, sizes))
            parser.error(f"argument --archs: arch {arch} starts with width {sizes[0]}, but "
                         f"{args.dataset} images have {width} values; start every arch with "
                         f"{width} (e.g. {width}-2)")


def cmd_autoencoder(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pearlnet.report import document, plots, study

    try:
        plots.require_matplotlib()
    except ImportError as err:
        print(f"pearlnet autoencoder: {err}", file=sys.stderr)
        return 1
    train, test = load_dataset(args.dataset, args.data_root, not args.no_download)
    overrides = {"archs": args.archs, "optimizers": args.optimizers, "epochs": args.epochs,
                 "batch_size": args.batch_size, "grid_epochs": args.grid_epochs,
                 "grid_batch_sizes": args.grid_batch_sizes, "activation": args.activation,
                 "dtype": args.dtype, "seed": args.seed, "blas_threads": args.blas_threads}
    if args.quick:
        config = study.quick_config(args.dataset, **overrides)
    else:
        defaults = {"archs": study.default_archs(args.dataset),
                    "optimizers": list(study.OPTIMIZERS)}
        config = study.StudyConfig(**{**defaults, **{k: v for k, v in overrides.items()
                                                    if v is not None}})
    hf = {"cg_max_iters": args.hf_cg_iters, "steps_per_epoch": args.hf_steps_per_epoch}
    config.hf = replace(config.hf, **{k: v for k, v in hf.items() if v is not None})
    train_size = args.train_size
    if train_size is None and args.quick and study.FEATURES[args.dataset] == 784:
        train_size = 2000
    try:
        split = study.prepare_data(args.dataset, train, test, train_size, args.val_size,
                                   dtype=np.dtype(args.dtype))
    except ValueError as err:
        print(f"pearlnet autoencoder: error: {err}", file=sys.stderr)
        return 2
    d = split.description
    archs = ", ".join(study.arch_label(a) for a in config.archs)
    print(f"pearlnet autoencoder: {args.dataset}, {d['train_size']} training / "
          f"{d['holdout_size']} held-out / {d['val_size']} validation images; archs {archs}; "
          f"{', '.join(config.optimizers)}; {config.epochs} epochs; writing {args.out}/",
          flush=True)
    output = study.run_study(config, split, progress=not args.quiet)
    written = document.write_report(output, args.out)
    results = output.results
    header, rows = document.results_table(results)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    for arch, name in results["winners"].items():
        print(f"{arch}: best validation loss with {name}")
    check = results["linear_check"]
    print(f"linear check: linear {check['arch']} / PCA training loss = {check['ratio']:.4f} "
          f"({'passed' if check['passed'] else 'FAILED'}, tolerance {check['tol']:g})")
    print(f"{len(written)} files in {args.out}/ after {results['total_seconds']:.0f} s of study")
    return 0


def cmd_curvature(args: argparse.Namespace, model: Any) -> int:
    """The spectrum of a saved model's curvature over the first --samples training cases (of
    --dataset, or of the --data file's training arrays)."""
    import json

    from pearlnet import curvature
    from pearlnet.report import plots, spectrum
    from pearlnet.train.progress import progress_bar

    parser = args.command_parser
    if model.loss_fn is None:
        parser.error("argument MODEL: the model was saved without compile, so it has no loss "
                     "whose curvature could be measured")
    if args.data is not None:
        data = load_user_data(parser, args, task=args.task or model_task(model))
        source = Path(args.data).name
        x = _as_model_input(model, data.x_train[:args.samples])
        y = data.y_train[:args.samples]
        check_model_fits_data(parser, model, source, x, y, data.classes)
    else:
        (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset, args.data_root,
                                                            not args.no_download)
        source = args.dataset
        x = _as_model_input(model, x_train[:args.samples])
        check_model_fits(parser, model, args.dataset, x, y_train, y_test)
        y = y_train[:args.samples]
    names = ["ggn", "hessian"] if args.curvature == "both" else [args.curvature]
    planned = len(names) * (args.trace_samples + args.lanczos_steps * args.runs
                            + 2 * args.top_k + 20)
    bar = None if args.quiet else progress_bar(planned, "curvature products")
    summaries = {}
    try:
        for name in names:
            make = curvature.ggn_operator if name == "ggn" else curvature.hessian_operator
            op = make(model, None, (x, y), batch_size=args.batch_size)
            if bar is not None:
                bar.set_postfix_str(name)
            summaries[spectrum.CURVATURES[name]] = spectrum.summarize(
                op, args.top_k, args.trace_samples, args.lanczos_steps, args.runs, args.seed,
                tick=None if bar is None else (lambda: bar.update(1)))
        if bar is not None:  # the plan is an upper bound: Lanczos may stop early
            bar.total = bar.n
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    out = Path(args.out)
    record = {"model": args.model, "dataset": source, "cases": int(len(x)),
              "parameters": int(model.count_params()), "loss": model.loss_name,
              "curvatures": summaries}
    with replacing(out.with_suffix(".json"), "pearlnet curvature") as tmp:
        tmp.write_text(json.dumps(record) + "\n")
    try:
        plots.require_matplotlib()
        fig = spectrum.spectrum_figure(summaries, f"{Path(args.model).name} on {len(x)} "
                                       f"{source} training cases")
        plots.save(fig, out.with_suffix(".png"))
        wrote = f"{out.with_suffix('.png')} and {out.with_suffix('.json')}"
    except ImportError:
        wrote = f"{out.with_suffix('.json')} (no PNG: matplotlib is not installed)"
    for name, s in summaries.items():
        top = ", ".join(f"{v:.5g}" for v in s["top_eigenvalues"])
        _say(f"{name}: top eigenvalues {top}; trace {s['trace']:.5g} ± {s['trace_stderr']:.2g} "
             f"({s['matvecs']} products, {s['seconds']:.1f} s)")
    _say(f"wrote {wrote}")
    return 0


def _dataset_hint(args: argparse.Namespace) -> str:
    """For the autoencoder study: the datasets to use instead of a missing one."""
    if args.command != "autoencoder":
        return ""
    others = {"fashion-mnist": "--dataset fashion-mnist (apt-get install "
                               "dataset-fashion-mnist puts it in /usr/share/datasets)",
              "digits": "--dataset digits (scikit-learn's 8x8 digits, always available; its "
                        "archs start at 64, e.g. --archs 64-2,64-32-2)"}
    choices = [v for k, v in others.items() if k != args.dataset]
    return (f"\nThe study does not switch datasets by itself; to run it on another one, "
            f"pass {' or '.join(choices)}.")


def main(argv: list[str] | None = None) -> int:
    from pearlnet.data import ChecksumError, DatasetNotFoundError, IDXError

    parser = build_parser()
    args = parser.parse_args(argv)
    parser = getattr(args, "command_parser", parser)
    if args.command == "autoencoder":
        check_autoencoder_args(parser, args)
        check_output_folder(parser, "--out", args.out)
    if args.command == "train":
        check_train_args(parser, args)
    if args.command in ("evaluate", "curvature"):
        check_data_options(parser, args, None)
    if args.command in ("evaluate", "curvature"):
        model = load_model_arg(parser, args.model)
    if args.command == "curvature":
        check_output_file(parser, "--out", args.out + ".json")
    try:
        if args.command == "train":
            return cmd_train(args, parser)
        if args.command == "evaluate":
            return cmd_evaluate(args, model)
        if args.command == "autoencoder":
            return cmd_autoencoder(args)
        if args.command == "curvature":
            return cmd_curvature(args, model)
    except (DatasetNotFoundError, ChecksumError, IDXError) as err:
        print(f"pearlnet {args.command}: {err}{_dataset_hint(args)}", file=sys.stderr)
        return 1
    from pearlnet import demo

    return demo.main([])


if __name__ == "__main__":
    sys.exit(main())
