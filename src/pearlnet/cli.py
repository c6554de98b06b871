"""The ``pearlnet`` command: train and evaluate classifiers, run the curvature demo.

    pearlnet train --dataset fashion-mnist --layers 256,256 --activation relu --optimizer adam \\
        --lr 1e-3 --epochs 10 --batch-size 128 --save model.pnl
    pearlnet evaluate model.pnl --dataset fashion-mnist
    pearlnet demo

Bad arguments are refused (exit code 2, a message naming the argument) before any data is read.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np

DATASETS = ("fashion-mnist", "mnist", "digits")

# The default recipe per dataset: what `pearlnet train --dataset NAME` runs.
RECIPES: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"layers": [512, 512], "dropout": 0.2, "epochs": 20, "batch_size": 128,
                      "lr": 1e-3, "schedule": "cosine"},
    "mnist": {"layers": [512, 512], "dropout": 0.2, "epochs": 15, "batch_size": 128,
              "lr": 1e-3, "schedule": "cosine"},
    "digits": {"layers": [512], "dropout": 0.3, "epochs": 100, "batch_size": 32,
               "lr": 1e-3, "schedule": "cosine"},
}


def _layers(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of layer "
                                         f"widths such as 256,256") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return sizes


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
    from pearlnet.nn import activations

    try:
        activations.get(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _optimizer(text: str) -> str:
    from pearlnet import optim

    try:
        optim.get(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pearlnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a fully connected classifier")
    train.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    train.add_argument("--layers", type=_layers, help="hidden widths, e.g. 256,256 "
                       "(default: the dataset's recipe)")
    train.add_argument("--activation", type=_activation, default="relu")
    train.add_argument("--dropout", type=_fraction)
    train.add_argument("--optimizer", type=_optimizer, default="adam")
    train.add_argument("--lr", type=_positive_float)
    train.add_argument("--schedule", choices=("constant", "cosine"))
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--validation-split", type=_fraction, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save", metavar="PATH", help="write the trained model here (.pnl)")
    train.add_argument("--data-root", metavar="DIR", help="folder holding the four IDX files")
    train.add_argument("--no-download", action="store_true", help="never download data")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = sub.add_parser("evaluate", help="evaluate a saved model on a test set")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("--dataset", choices=DATASETS, required=True)
    evaluate.add_argument("--data-root", metavar="DIR")
    evaluate.add_argument("--no-download", action="store_true")

    sub.add_parser("demo", help="differentiate a small autoencoder and check every derivative")
    return parser


def load_dataset(name: str, root: str | None = None, download: bool = True):
    """(x_train, y_train), (x_test, y_test) as stored: images and integer labels."""
    from pearlnet import data

    if name == "digits":
        return data.load_digits()
    loader = data.load_fashion_mnist if name == "fashion-mnist" else data.load_mnist
    return loader(root=root, download=download)


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    recipe = dict(RECIPES[args.dataset])
    for key in ("layers", "dropout", "lr", "schedule", "epochs", "batch_size"):
        value = getattr(args, key)
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


def cmd_train(args: argparse.Namespace) -> int:
    from pearlnet import optim
    from pearlnet.optim import schedules

    recipe = _recipe(args)
    (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset, args.data_root,
                                                        not args.no_download)
    pixels = x_train.astype(np.float64)
    model = build_classifier(x_train.shape[1:], int(y_train.max()) + 1, float(pixels.mean()),
                             float(pixels.std()), recipe["layers"], args.activation,
                             recipe["dropout"], args.seed)
    steps_per_epoch = math.ceil(len(x_train) * (1 - args.validation_split)
                                / recipe["batch_size"])
    lr = recipe["lr"]
    if recipe["schedule"] == "cosine":
        lr = schedules.cosine(lr, total_steps=recipe["epochs"] * steps_per_epoch)
    opt = optim.get(args.optimizer)
    opt.lr = lr
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    print(f"pearlnet train: {args.dataset}, {len(x_train)} training and {len(x_test)} test "
          f"images; {model.count_params():,} parameters; {args.optimizer} "
          f"lr {recipe['lr']:g} ({recipe['schedule']}), batch {recipe['batch_size']}, "
          f"{recipe['epochs']} epochs", flush=True)
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=recipe["batch_size"], epochs=recipe["epochs"],
              validation_split=args.validation_split, verbose=0 if args.quiet else 1,
              seed=args.seed)
    seconds = time.perf_counter() - t0
    result = model.evaluate(x_test, y_test)
    print(f"test accuracy {100 * result['accuracy']:.2f}% (loss {result['loss']:.4f}) "
          f"after {seconds:.1f} s of training")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pearlnet

    model = pearlnet.load_model(args.model)
    _, (x_test, y_test) = load_dataset(args.dataset, args.data_root, not args.no_download)
    if x_test.shape[1:] != tuple(model.input_shape):
        print(f"pearlnet evaluate: the model takes inputs of shape {model.input_shape}, "
              f"{args.dataset} has {x_test.shape[1:]}", file=sys.stderr)
        return 2
    result = model.evaluate(x_test, y_test)
    print(f"{args.dataset} test: accuracy {100 * result['accuracy']:.2f}%, "
          f"loss {result['loss']:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pearlnet.data import ChecksumError, DatasetNotFoundError, IDXError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
    except (DatasetNotFoundError, ChecksumError, IDXError) as err:
        print(f"pearlnet {args.command}: {err}", file=sys.stderr)
        return 1
    from pearlnet import demo

    return demo.main([])


if __name__ == "__main__":
    sys.exit(main())
