"""The study's figures, drawn with matplotlib's object API (``Figure``, no pyplot), so nothing here
touches the caller's backend or global state. matplotlib is imported when a figure is made;
``pearlnet`` itself never needs it.

Each function returns a ``matplotlib.figure.Figure``; ``save(fig, path)`` writes a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pearlnet._files import replacing

__all__ = ["require_matplotlib", "convergence_figure", "codes_figure",
           "reconstructions_figure", "linear_check_figure", "curvature_figure",
           "training_curves_figure", "save",
           "COLORS"]

#: One colour per optimizer, the same in every figure.
COLORS = {"sgd": "tab:blue", "momentum": "tab:orange", "rmsprop": "tab:green",
          "adam": "tab:red", "hf": "tab:purple", "pca": "black"}
LABELS = {"sgd": "SGD", "momentum": "Momentum (0.9)", "rmsprop": "RMSProp", "adam": "Adam",
          "hf": "Hessian-free", "pca": "PCA"}


def require_matplotlib() -> None:
    """Raise ImportError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError("the autoencoder report needs matplotlib, an optional dependency: "
                          "pip install matplotlib (or pip install 'pearlnet[plots]')") from exc


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (Agg) and return the path: to a temporary file moved into place
    when complete (``files.replacing``), so a failure leaves the previous file or none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with replacing(path, "plots.save") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)


def convergence_figure(arch: str, runs: list[dict], pca_val_loss: float) -> Any:
    """Two panels: validation loss against epoch (left) and against training seconds (right),
    one line per optimizer, log scale, PCA's validation loss dashed."""
    fig = _figure(11, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    for run in runs:
        h, name = run["history"], run["optimizer"]
        hp = run.get("hyperparameters", {})
        label = LABELS.get(name, name)
        if "lr" in hp:
            label += f" (lr {hp['lr']:g}, batch {hp['batch_size']})"
        y = np.asarray(h["val_loss"], dtype=float)
        axes[0].plot(h["epoch"], y, marker="o", ms=3, color=COLORS.get(name), label=label)
        axes[1].plot(h["seconds"][1:], y[1:], marker="o", ms=3, color=COLORS.get(name),
                     label=label)
    from matplotlib.ticker import FormatStrFormatter

    for ax in axes:
        ax.axhline(pca_val_loss, color="black", ls="--", lw=1, label="PCA (2 components)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_xscale("log")  # HF takes far longer per epoch: a log axis shows every method
    axes[1].xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("training time, s (log scale; evaluations excluded; epoch 0 not shown)")
    axes[0].set_ylabel("validation loss  F = (1/n) Σ ½‖x − z‖²")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(f"Autoencoder {arch}: validation loss against epochs (left) and seconds (right)")
    return fig


def _scatter_codes(ax: Any, codes: np.ndarray, labels: np.ndarray, names: list[str],
                   title: str) -> None:
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10"]
    finite = np.all(np.isfinite(codes), axis=1)
    for k in np.unique(labels):
        sel = (labels == k) & finite
        ax.scatter(codes[sel, 0], codes[sel, 1], s=4, alpha=0.6, color=cmap(int(k) % 10),
                   label=names[int(k)] if int(k) < len(names) else str(k), rasterized=True,
                   linewidths=0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("code 1")
    ax.set_ylabel("code 2")


def codes_figure(arch: str, optimizer: str, before: np.ndarray, after: np.ndarray,
                 pca_codes: np.ndarray, labels: np.ndarray, names: list[str]) -> Any:
    """The 2-D codes of the validation images at the initial parameters, after training, and
    PCA's for reference, coloured by class, with a legend."""
    fig = _figure(13, 4.4)
    axes = fig.subplots(1, 3)
    _scatter_codes(axes[0], before, labels, names, "before training (initial parameters)")
    _scatter_codes(axes[1], after, labels, names,
                   f"after training with {LABELS.get(optimizer, optimizer)}")
    _scatter_codes(axes[2], pca_codes, labels, names, "PCA: top two principal components")
    handles, texts = axes[2].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside right center", markerscale=3, fontsize=8,
               title="class")
    fig.suptitle(f"Autoencoder {arch}: 2-D codes of the validation images")
    return fig


def reconstructions_figure(arch: str, optimizer: str, inputs: np.ndarray,
                           reconstructions: np.ndarray, pca_reconstructions: np.ndarray,
                           image_shape: tuple[int, ...], titles: list[str]) -> Any:
    """Rows: the input images, their reconstructions by the autoencoder trained with
    ``optimizer``, and PCA's (two components)."""
    n = len(inputs)
    shape = image_shape if int(np.prod(image_shape)) == inputs.shape[1] else \
        (1, inputs.shape[1])
    fig = _figure(1.1 * n + 1.4, 4.0)
    axes = np.atleast_2d(fig.subplots(3, n))
    rows = [("input", inputs), (LABELS.get(optimizer, optimizer), reconstructions),
            ("PCA", pca_reconstructions)]
    for r, (name, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c].reshape(shape), 0, 1), cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and c < len(titles):
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(f"Autoencoder {arch}: validation images and reconstructions "
                 f"(best optimizer: {LABELS.get(optimizer, optimizer)})")
    return fig


def linear_check_figure(check: dict) -> Any:
    """The linear autoencoder's training loss per epoch against PCA's."""
    fig = _figure(6.5, 4.0)
    ax = fig.subplots()
    h = check["history"]
    ax.plot(h["epoch"], h["train_loss"], marker="o", ms=3, color=COLORS["hf"],
            label=f"linear autoencoder {check['arch']}, {LABELS.get(check['optimizer'])}")
    ax.axhline(check["pca_train_loss"], color="black", ls="--", lw=1,
               label=f"PCA: {check['pca_train_loss']:.4f}")
    ax.axhline((1 + check["tol"]) * check["pca_train_loss"], color="gray", ls=":", lw=1,
               label=f"PCA + {100 * check['tol']:g}%")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    verdict = "reached" if check["passed"] else "did NOT reach"
    ax.set_title(f"Linear check: {verdict} PCA's error (ratio {check['ratio']:.4f})",
                 fontsize=10)
    return fig


def curvature_figure(arch: str, runs: list[dict]) -> Any:
    """The spectral densities (SLQ) of the Hessian (left) and the GGN (right) at each
    optimizer's final parameters, log scale, each run's top eigenvalue marked."""
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2)
    for ax, (key, title) in zip(axes, (("hessian", "Hessian"), ("ggn", "Gauss-Newton (GGN)"))):
        for run in runs:
            c = run.get("curvature")
            if not c:
                continue
            s, name = c[key], run["optimizer"]
            top = s["top_eigenvalues"][0]
            ax.semilogy(s["grid"], np.asarray(s["density"]) + 1e-7, color=COLORS.get(name),
                        lw=1.2, label=f"{LABELS.get(name, name)}: λmax {top:.3g}")
            ax.axvline(s["top_eigenvalues"][0], color=COLORS.get(name), ls="--", lw=0.7)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (log scale)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Autoencoder {arch}: curvature spectra at the final parameters "
                 "(stochastic Lanczos quadrature; dashed: top eigenvalue by Lanczos)")
    return fig


def training_curves_figure(epochs: list[int], figures: dict[str, list[float]],
                           title: str) -> Any:
    """The training curves of one run, as Keras' History holds them: the loss (left) and,
    when logged, the accuracy (right), each for the training set and, when there is one
    (``val_`` keys), the validation set, against the epoch (counted from 1)."""
    panels = [name for name in ("loss", "accuracy") if name in figures]
    if not panels:
        raise ValueError(f"training_curves_figure: expected 'loss' among the figures, got "
                         f"{sorted(figures)}")
    from matplotlib.ticker import MaxNLocator

    fig = _figure(5.5 * len(panels), 4.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    x = [e + 1 for e in epochs]
    for ax, name in zip(axes, panels):
        for key, label, color in ((name, "training", "tab:blue"),
                                  (f"val_{name}", "validation", "tab:orange")):
            if key in figures:
                ax.plot(x, figures[key], marker="o", ms=3, color=color, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if name == "loss" and min(min(v) for k, v in figures.items()
                                  if k in ("loss", "val_loss")) > 0:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig
