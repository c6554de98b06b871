"""The assignment's experiment in small (seed 000, task 5): a 2-unit-code autoencoder on a subset
of scikit-learn's 8x8 digits, trained by SGD, SGD with momentum, RMSProp and Adam from the same
initial weights through ``pearlnet.compat.msu``.

Saves ``convergence.png`` (test loss against epoch per optimizer) and ``codes.png`` (the 2-D codes
of the test images before training and after each optimizer) in the output directory.

    python -m pearlnet.compat.msu.demo [--output-dir DIR] [--epochs 50] [--train 600] [--test 300]

Needs scikit-learn (the digits) and matplotlib (the plots).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .activations import (
    LinearActivationFunction,
    SigmoidActivationFunction,
    TanhActivationFunction,
)
from .autoencoder import Autoencoder
from .layers import FCLayer

__all__ = ["main", "build_autoencoder", "load_data", "OPTIMIZERS"]

#: (name, Autoencoder method, keyword arguments): the best step size of a x3 grid on this demo's
#: data (30 epochs, minibatches of 50)
OPTIMIZERS = [
    ("sgd", "run_sgd", {"step_size": 0.3, "momentum": 0.0}),
    ("momentum", "run_sgd", {"step_size": 0.1, "momentum": 0.9}),
    ("rmsprop", "run_rmsprop", {"step_size": 0.01}),
    ("adam", "run_adam", {"step_size": 0.03}),
]


def load_data(num_train: int, num_test: int, seed: int = 0) -> tuple:
    """(train, test, test labels): digits scaled to [0, 1], laid out 64 features x objects."""
    from pearlnet.data import load_digits

    (x_train, _), (x_test, y_test) = load_digits(seed)
    if not 1 <= num_train <= len(x_train) or not 1 <= num_test <= len(x_test):
        raise ValueError(f"demo: num_train must be in [1, {len(x_train)}] and num_test in "
                         f"[1, {len(x_test)}], got {num_train} and {num_test}")
    train = x_train[:num_train].reshape(num_train, -1).T / 16.0
    test = x_test[:num_test].reshape(num_test, -1).T / 16.0
    return np.ascontiguousarray(train), np.ascontiguousarray(test), y_test[:num_test]


def build_autoencoder(num_features: int = 64, hidden: int = 32, seed: int = 0) -> Autoencoder:
    """num_features-hidden-2-hidden-num_features: tanh hidden layers, a linear 2-unit code (as
    section 1.1 suggests), a sigmoid output for pixels in [0, 1]; every layer with a bias."""
    rng = np.random.default_rng(seed)
    tanh, linear, sigmoid = (TanhActivationFunction(), LinearActivationFunction(),
                             SigmoidActivationFunction())
    return Autoencoder([FCLayer((num_features, hidden), tanh, True, seed=rng),
                        FCLayer((hidden, 2), linear, True, seed=rng),
                        FCLayer((2, hidden), tanh, True, seed=rng),
                        FCLayer((hidden, num_features), sigmoid, True, seed=rng)])


def main(output_dir: str | Path = ".", num_epoch: int = 50, num_train: int = 600,
         num_test: int = 300, minibatch_size: int = 50, hidden: int = 32, seed: int = 0,
         display: bool = True) -> dict:
    """Train one autoencoder per optimizer from the same weights; save the two plots.

    Returns {"histories": {name: run dict}, "codes": {"initial" or name: 2 x num_test},
    "seconds": {name: float}, "plots": [Path, Path]}.
    """
    from pearlnet.report.plots import require_matplotlib

    require_matplotlib()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test, labels = load_data(num_train, num_test, seed)
    ae = build_autoencoder(train.shape[0], hidden, seed)
    w0 = ae.net.get_weights()
    ae.net.compute_outputs(test)
    codes = {"initial": ae.net.get_activations(1).copy()}
    histories, seconds = {}, {}
    for name, method, kwargs in OPTIMIZERS:
        ae.net.set_weights(w0)
        start = time.perf_counter()
        histories[name] = getattr(ae, method)(train, num_epoch=num_epoch,
                                              minibatch_size=minibatch_size, test_inputs=test,
                                              seed=seed, **kwargs)
        seconds[name] = time.perf_counter() - start
        ae.net.compute_outputs(test)
        codes[name] = ae.net.get_activations(1).copy()
        if display:
            print(f"{name:8s} final test loss {histories[name]['test_loss'][-1]:.4f} "
                  f"({seconds[name]:.1f} s)", flush=True)
    plots = [_convergence_plot(histories, out / "convergence.png"),
             _codes_plot(codes, labels, out / "codes.png")]
    if display:
        print("saved " + ", ".join(str(p) for p in plots))
    return {"histories": histories, "codes": codes, "seconds": seconds, "plots": plots}


def _convergence_plot(histories: dict, path: Path) -> Path:
    from matplotlib.figure import Figure

    from pearlnet.report.plots import COLORS, LABELS, save

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, h in histories.items():
        epochs = np.arange(1, len(h["test_loss"]) + 1)
        ax.plot(epochs, h["test_loss"], marker="o", ms=3, color=COLORS.get(name),
                label=LABELS.get(name, name))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test loss  F + l2 ‖θ‖²")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("msu autoencoder on digits: convergence", fontsize=10)
    return save(fig, path)


def _codes_plot(codes: dict, labels: np.ndarray, path: Path) -> Path:
    import matplotlib as mpl
    from matplotlib.figure import Figure

    from pearlnet.report.plots import LABELS, save

    fig = Figure(figsize=(3.2 * len(codes), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(codes)))
    cmap = mpl.colormaps["tab10"]
    for ax, (name, z) in zip(axes, codes.items()):
        for k in np.unique(labels):
            sel = labels == k
            ax.scatter(z[0, sel], z[1, sel], s=5, color=cmap(int(k)), label=str(k))
        ax.set_title("initial weights" if name == "initial" else LABELS.get(name, name),
                     fontsize=9)
    handles, texts = axes[-1].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside right center", markerscale=2, fontsize=7,
               title="digit")
    fig.suptitle("2-D codes of the test digits (the middle layer)", fontsize=10)
    return save(fig, path)


def _cli(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m pearlnet.compat.msu.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=".", help="where to save the plots")
    parser.add_argument("--epochs", type=int, default=50, help="epochs per optimizer")
    parser.add_argument("--train", type=int, default=600, help="training images")
    parser.add_argument("--test", type=int, default=300, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return main(args.output_dir, num_epoch=args.epochs, num_train=args.train,
                num_test=args.test, seed=args.seed)


if __name__ == "__main__":
    _cli()
