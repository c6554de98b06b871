"""The autoencoder study of the course assignment (seed 000, section 2, item 5).

For every architecture (encoder widths ending in a 2-unit code) and every optimizer, train the
autoencoder of :class:`pearlnet.models.Autoencoder` on the objective (seed formula 1)

    F(theta) = (1/n) sum_i 1/2 ||x_i - z^L(x_i, theta)||^2,

record the validation loss after every epoch against epochs and against training seconds, the
2-D codes of the validation images before and after training, and compare with PCA, the best
linear 2-D code. The step sizes (and minibatch sizes) of the first-order optimizers are chosen
by a short grid search scored on a held-out split; Hessian-free runs with Martens' defaults.

Everything here is NumPy and pearlnet; the figures and the report live in ``plots`` and
``document`` (matplotlib, imported lazily).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pearlnet import optim
from pearlnet._files import replacing
from pearlnet.models import Autoencoder

__all__ = ["FIRST_ORDER", "OPTIMIZERS", "FEATURES", "StudyConfig", "HFSettings", "Split", "PCA",
           "prepare_data", "fit_pca", "make_optimizer", "train_first_order", "train_hf",
           "grid_search", "linear_check", "run_study", "write_results", "arch_label",
           "quick_config", "default_archs", "curvature_at"]

FIRST_ORDER = ("sgd", "momentum", "rmsprop", "adam")
OPTIMIZERS = FIRST_ORDER + ("hf",)

#: Input width (pixels) of each dataset the study knows.
FEATURES = {"mnist": 784, "fashion-mnist": 784, "digits": 64}
#: The value a pixel is divided by to land in [0, 1].
PIXEL_SCALE = {"mnist": 255.0, "fashion-mnist": 255.0, "digits": 16.0}

#: Step-size grids, a factor of about 3 apart, centred where each rule works on image data
#: scaled to [0, 1]; the grid is extended past an edge that wins (see ``grid_search``).
GRIDS = {"sgd": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
         "momentum": [3e-6, 1e-5, 3e-5, 1e-4, 3e-4],
         "rmsprop": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
         "adam": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]}
QUICK_GRIDS = {"sgd": [3e-5, 3e-4], "momentum": [3e-6, 3e-5], "rmsprop": [1e-3, 1e-2],
               "adam": [3e-3, 3e-2]}
#: When every step size tried diverged, smaller ones are tried, at most this many.
RESCUE = 5

#: A minibatch loss above this multiple of the loss at initialisation counts as divergence.
BLOWUP = 100.0


def default_archs(dataset: str, quick: bool = False) -> list[list[int]]:
    """The issue's architectures (784-2, 784-128-2, 784-256-64-2), or their 64-wide analogues
    for digits; ``quick``: two small ones."""
    d = FEATURES[dataset]
    if d == 784:
        return [[784, 2], [784, 64, 2]] if quick else [[784, 2], [784, 128, 2], [784, 256, 64, 2]]
    return [[d, 2], [d, 16, 2]] if quick else [[d, 2], [d, 32, 2], [d, 32, 16, 2]]


def arch_label(sizes: list[int] | tuple[int, ...]) -> str:
    """Encoder widths as given on the command line: [784, 128, 2] -> "784-128-2"."""
    return "-".join(str(s) for s in sizes)


@dataclass
class HFSettings:
    """Hessian-free in the study. One HF "epoch" is ``steps_per_epoch`` outer steps whose
    gradient batches partition the training set (Martens' large chunks; 1 would be the whole
    set), so an HF epoch reads every training image once for the gradient, as a first-order
    epoch does. The curvature products use a fresh random ``curvature_fraction`` of the
    gradient batch (Martens: about 1/5), CG runs at most ``cg_max_iters`` iterations."""

    steps_per_epoch: int = 5
    curvature_fraction: float = 0.2
    cg_max_iters: int = 50
    damping: float = 1.0
    preconditioner: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.steps_per_epoch, int) and self.steps_per_epoch >= 1
                and isinstance(self.cg_max_iters, int) and self.cg_max_iters >= 1
                and 0 < self.curvature_fraction <= 1 and self.damping > 0):
            raise ValueError(f"HFSettings: expected steps_per_epoch >= 1, cg_max_iters >= 1, "
                             f"0 < curvature_fraction <= 1 and damping > 0, got {self}")


@dataclass
class StudyConfig:
    """What to run. ``grid`` maps each first-order optimizer to its step sizes;
    ``grid_batch_sizes`` (None: just ``batch_size``) are crossed with them; each candidate
    trains ``grid_epochs`` epochs; an edge of the step-size grid that wins is extended by one
    point, at most ``grid_extensions`` times."""

    archs: list[list[int]]
    optimizers: list[str]
    epochs: int = 20
    batch_size: int = 100
    grid: dict[str, list[float]] = field(default_factory=lambda: dict(GRIDS))
    grid_batch_sizes: list[int] | None = None
    grid_epochs: int = 2
    grid_extensions: int = 2
    hf: HFSettings = field(default_factory=HFSettings)
    activation: str = "tanh"
    dtype: str = "float64"
    seed: int = 0
    linear_check_epochs: int = 500
    linear_check_tol: float = 0.01
    blas_threads: int | None = 1
    quick: bool = False
    #: curvature at each run's final parameters, on the first ``curvature_size`` training
    #: images: top ``curvature_top_k`` Hessian and GGN eigenvalues (Lanczos), the traces
    #: (Hutch++, ``curvature_trace_samples`` products) and the spectral densities (SLQ,
    #: ``curvature_lanczos_steps`` steps); 0 images: no curvature section
    curvature_size: int = 500
    curvature_top_k: int = 3
    curvature_trace_samples: int = 30
    curvature_lanczos_steps: int = 40

    def __post_init__(self) -> None:
        bad = [o for o in self.optimizers if o not in OPTIMIZERS]
        if bad or not self.optimizers:
            raise ValueError(f"StudyConfig: optimizers must be a non-empty list drawn from "
                             f"{list(OPTIMIZERS)}, got {self.optimizers}")
        for sizes in self.archs:
            if len(sizes) < 2 or sizes[-1] != 2 or any(int(s) <= 0 for s in sizes):
                raise ValueError(f"StudyConfig: every arch lists positive encoder widths ending "
                                 f"in the 2-unit code, e.g. [784, 128, 2]; got {sizes}")
        missing = [o for o in self.optimizers if o in FIRST_ORDER and not self.grid.get(o)]
        if missing:
            raise ValueError(f"StudyConfig: no step sizes in grid for {missing}")
        for name in ("epochs", "batch_size", "grid_epochs", "linear_check_epochs",
                     "curvature_top_k", "curvature_trace_samples", "curvature_lanczos_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"StudyConfig: {name} must be a positive integer, got "
                                 f"{value!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"StudyConfig: dtype must be 'float64' or 'float32', got "
                             f"{self.dtype!r}")


def quick_config(dataset: str, **overrides: Any) -> StudyConfig:
    """The reduced study behind ``--quick``: two small archs, sgd/adam/hf, 4 epochs, two step
    sizes per optimizer scored after one epoch, HF with 2 steps per epoch and at most 30 CG
    iterations; ``overrides`` that are not None replace any of these."""
    settings: dict[str, Any] = dict(
        archs=default_archs(dataset, quick=True), optimizers=["sgd", "adam", "hf"], epochs=4,
        grid=dict(QUICK_GRIDS), grid_epochs=1, grid_extensions=0,
        hf=HFSettings(steps_per_epoch=2, cg_max_iters=30), quick=True, curvature_size=200,
        curvature_top_k=2, curvature_trace_samples=15, curvature_lanczos_steps=20)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return StudyConfig(**settings)


# -- data ------------------------------------------------------------------------------------
@dataclass
class Split:
    """The prepared data: flat rows scaled to [0, 1], and a description of where each part came
    from (for the report)."""

    x_train: np.ndarray
    x_holdout: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    image_shape: tuple[int, ...]
    class_names: list[str]
    description: dict


def prepare_data(dataset: str, train: tuple[np.ndarray, np.ndarray],
                 test: tuple[np.ndarray, np.ndarray], train_size: int | None = None,
                 val_size: int | None = None, holdout_fraction: float = 0.1,
                 dtype: Any = np.float64) -> Split:
    """Flatten, divide by 255 (digits: by 16), and split without shuffling:

    - training: the first ``train_size`` training images (None: 10,000, or for a set with
      fewer as many as leave room for the held-out split);
    - held-out (for the grid search): the next ceil(holdout_fraction * train_size) training
      images, never trained on;
    - validation: the first ``val_size`` test images (None: min(2000, all)).

    Raises ValueError naming the sizes available when a requested size does not fit.
    """
    from pearlnet.data import FASHION_MNIST_CLASSES

    if dataset not in FEATURES:
        raise ValueError(f"prepare_data: unknown dataset {dataset!r}, expected one of "
                         f"{sorted(FEATURES)}")
    (x_tr, _), (x_te, y_te) = train, test
    n_avail, n_test = len(x_tr), len(x_te)
    if train_size is None:
        train_size = min(10_000, int(n_avail / (1 + holdout_fraction)))
    n_hold = math.ceil(holdout_fraction * train_size)
    if train_size < 1 or train_size + n_hold > n_avail:
        raise ValueError(f"prepare_data: --train-size {train_size} plus its held-out split of "
                         f"{n_hold} needs {train_size + n_hold} training images; {dataset} has "
                         f"{n_avail}, so use at most {int(n_avail / (1 + holdout_fraction))}")
    if val_size is None:
        val_size = min(2000, n_test)
    if not 1 <= val_size <= n_test:
        raise ValueError(f"prepare_data: --val-size must be in 1..{n_test} ({dataset} has "
                         f"{n_test} test images), got {val_size}")
    scale = PIXEL_SCALE[dataset]

    def flat(x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64).reshape(len(x), -1) / scale).astype(dtype)

    names = list(FASHION_MNIST_CLASSES) if dataset == "fashion-mnist" else \
        [str(k) for k in range(10)]
    description = {
        "dataset": dataset, "pixel_scale": f"pixels divided by {scale:g} into [0, 1]",
        "train": f"training images 0..{train_size - 1} ({train_size})",
        "holdout": f"training images {train_size}..{train_size + n_hold - 1} ({n_hold}), "
                   f"used only to score the grid search",
        "validation": f"test images 0..{val_size - 1} ({val_size})",
        "train_size": train_size, "holdout_size": n_hold, "val_size": val_size,
        "features": int(np.prod(x_tr.shape[1:])), "dtype": np.dtype(dtype).name}
    return Split(flat(x_tr[:train_size]), flat(x_tr[train_size:train_size + n_hold]),
                 flat(x_te[:val_size]), np.asarray(y_te[:val_size]), tuple(x_tr.shape[1:]),
                 names, description)


# -- PCA -------------------------------------------------------------------------------------
@dataclass
class PCA:
    """The top-k principal components by SVD of the centred training data (Goodfellow et al.,
    section 5.8.1, seed 002 section 2.8): X - mu = U S V^T, codes c = (x - mu) V_k, reconstruction
    x' = mu + c V_k^T. Among all rank-k affine maps this minimises the training loss, so a linear
    autoencoder with a k-unit code can at best equal it."""

    mean: np.ndarray
    components: np.ndarray  # (k, D): the rows of V_k^T
    explained_variance_ratio: np.ndarray

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.encode(x) @ self.components + self.mean

    def loss(self, x: np.ndarray) -> float:
        """(1/n) sum_i 1/2 ||x_i - x'_i||^2, the autoencoder's objective."""
        r = x - self.reconstruct(x)
        return float(0.5 * np.sum(r * r, dtype=np.float64) / len(x))


def fit_pca(x: np.ndarray, k: int = 2) -> PCA:
    """PCA of the rows of ``x`` (n, D) with ``k`` components, computed in float64."""
    x64 = np.asarray(x, np.float64)
    if x64.ndim != 2 or not 1 <= k <= min(x64.shape):
        raise ValueError(f"fit_pca: expected x of shape (n, D) and 1 <= k <= min(n, D), got "
                         f"shape {x64.shape} and k={k}")
    mean = x64.mean(axis=0)
    _, s, vt = np.linalg.svd(x64 - mean, full_matrices=False)
    var = s ** 2
    return PCA(mean.astype(x.dtype), vt[:k].astype(x.dtype), var[:k] / var.sum())


# -- training --------------------------------------------------------------------------------
def make_optimizer(name: str, lr: float) -> Any:
    """sgd: SGD(lr); momentum: Momentum(lr, 0.9); rmsprop: RMSProp(lr, 0.9); adam: Adam(lr)."""
    if name == "sgd":
        return optim.SGD(lr)
    if name == "momentum":
        return optim.Momentum(lr, 0.9)
    if name == "rmsprop":
        return optim.RMSProp(lr, 0.9)
    if name == "adam":
        return optim.Adam(lr)
    raise ValueError(f"make_optimizer: expected one of {list(FIRST_ORDER)}, got {name!r}")


Tick = Callable[[str], None]


def _loss(ae: Autoencoder, params: dict, x: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(ae.loss(params, x))
    return value if math.isfinite(value) else math.nan


def _new_history(ae: Autoencoder, params: dict, x_eval: np.ndarray | None,
                 *per_step: str) -> dict[str, Any]:
    """A training history at epoch 0 (the shape :func:`train_first_order` documents), with an
    empty list for each name in ``per_step``."""
    hist: dict[str, Any] = {"epoch": [0], "seconds": [0.0], "train_loss": [math.nan],
                            "val_loss": [_loss(ae, params, x_eval)] if x_eval is not None
                            else [], "diverged": None}
    hist.update({name: [] for name in per_step})
    return hist


def _end_epoch(hist: dict, ae: Autoencoder, params: dict, epoch: int, epochs: int,
               elapsed: float, train_loss: float, x_eval: np.ndarray | None,
               tick: Tick | None, stop: Callable[[float], bool] | None) -> bool:
    """Record a finished epoch (and the loss on ``x_eval``), tick the progress bar; True when
    ``stop`` ends training here."""
    hist["epoch"].append(epoch)
    hist["seconds"].append(elapsed)
    hist["train_loss"].append(train_loss)
    if x_eval is not None:
        hist["val_loss"].append(_loss(ae, params, x_eval))
    if tick is not None:
        tick(f"epoch {epoch}/{epochs}")
    return stop is not None and x_eval is not None and stop(hist["val_loss"][-1])


def train_first_order(ae: Autoencoder, params: dict, opt: Any, x: np.ndarray,
                      batch_size: int, epochs: int, seed: int = 0,
                      x_eval: np.ndarray | None = None, tick: Tick | None = None,
                      stop: Callable[[float], bool] | None = None,
                      jit: bool = True) -> tuple[dict, dict]:
    """Minibatch training: each epoch a fresh permutation, steps on consecutive batches of
    ``batch_size`` rows (the last may be smaller), ``params, state = opt.update(params,
    grad, state)`` with ``loss, grad = ae.loss_and_grad(params, batch)``. With ``jit`` (the
    default) the loss and gradient and the update run compiled (pearlnet.jit,
    ``opt.compiled_update``): the same numbers, without the tracer's cost per operation.

    Returns (params, history) with history lists indexed by epoch 0..epochs: "seconds" (training
    time only, evaluations excluded), "val_loss" (F on ``x_eval``, if given) and "train_loss"
    (the mean minibatch loss of the epoch; NaN at epoch 0). A non-finite minibatch loss, or one
    above BLOWUP times the first, stops training: history["diverged"] is the epoch.
    ``stop(loss on x_eval)`` ends training after an epoch when it returns True.
    """
    rng = np.random.default_rng(seed)
    state = opt.init(params)
    n = len(x)
    hist = _new_history(ae, params, x_eval)
    loss_and_grad, update = ae.loss_and_grad, opt.update
    if jit:
        from pearlnet.autodiff import jit as compile_fn
        from pearlnet.autodiff import value_and_grad

        compiled = compile_fn(value_and_grad(ae.loss))

        def loss_and_grad(params: dict, xb: np.ndarray) -> tuple[float, dict]:
            value, grads = compiled(params, xb)
            return float(value), grads

        update = getattr(opt, "compiled_update", opt.update)
    elapsed, first = 0.0, None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, n, batch_size):
                xb = x[order[start:start + batch_size]]
                loss, grads = loss_and_grad(params, xb)
                first = loss if first is None else first
                if not (math.isfinite(loss) and loss <= BLOWUP * first):
                    hist["diverged"] = epoch
                    break
                params, state = update(params, grads, state)
                total += loss * len(xb)
        elapsed += time.perf_counter() - t0
        if hist["diverged"] is not None:
            break
        if _end_epoch(hist, ae, params, epoch, epochs, elapsed, total / n, x_eval, tick, stop):
            break
    return params, hist


def train_hf(ae: Autoencoder, params: dict, x: np.ndarray, epochs: int,
             settings: HFSettings, seed: int = 0, x_eval: np.ndarray | None = None,
             tick: Tick | None = None, stop: Callable[[float], bool] | None = None
             ) -> tuple[dict, dict]:
    """Hessian-free (Gauss-Newton curvature, Martens' damping, CG-backtracking, line search):
    per HF epoch, ``settings.steps_per_epoch`` outer steps on the parts of a fresh permutation
    of the training set (one step: the whole set), curvature on a fresh random
    ``curvature_fraction`` of each part. History as in :func:`train_first_order`, plus per
    step "lambda", "rho" and "cg_iters". ``stop(loss on x_eval)`` ends training after an epoch
    when it returns True."""
    from pearlnet.optim import HessianFree

    rng = np.random.default_rng(seed)
    hf = HessianFree(ae.net, ae.hf_loss, damping=settings.damping,
                     cg_max_iters=settings.cg_max_iters, preconditioner=settings.preconditioner)
    state = hf.init(params)
    n = len(x)
    hist = _new_history(ae, params, x_eval, "lambda", "rho", "cg_iters")
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        k = settings.steps_per_epoch
        parts = [None] if k == 1 else np.array_split(rng.permutation(n), k)
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for part in parts:
                xb = x if part is None else x[part]
                m = max(1, round(settings.curvature_fraction * len(xb)))
                xc = xb[np.sort(rng.choice(len(xb), m, replace=False))]
                params, state, info = hf.step(params, state, xb, xc)
                total += info["loss"] * len(xb)
                hist["lambda"].append(info["lambda"])
                hist["rho"].append(info["rho"] if math.isfinite(info["rho"]) else None)
                hist["cg_iters"].append(info["cg_iters"])
        elapsed += time.perf_counter() - t0
        if _end_epoch(hist, ae, params, epoch, epochs, elapsed, total / n, x_eval, tick, stop):
            break
    return params, hist


def _ladder(lr: float, up: bool) -> float:
    """The neighbour of ``lr`` on the 1, 3, 10, 30, ... ladder (a factor of about 3)."""
    e = math.floor(math.log10(lr) + 1e-9)
    m = lr / 10 ** e
    if abs(m - 1) < 1e-6:
        new = (3 if up else 0.3) * 10 ** e
    elif abs(m - 3) < 1e-6:
        new = (10 if up else 1) * 10 ** e
    else:
        new = lr * 3 if up else lr / 3
    return float(f"{new:.3g}")


def grid_search(ae: Autoencoder, name: str, init_params: dict, x_train: np.ndarray,
                x_holdout: np.ndarray, lrs: list[float], batch_sizes: list[int], epochs: int,
                extensions: int = 2, seed: int = 0, tick: Tick | None = None,
                on_extend: Callable[[int], None] | None = None) -> dict:
    """Score every (step size, batch size) by the held-out loss after ``epochs`` epochs of
    training from ``init_params``. If the best step size is the smallest or the largest tried,
    try the next one beyond it on the 1-3-10 ladder, at most ``extensions`` times. A diverged
    candidate scores NaN; if all diverge, smaller step sizes are tried (at most RESCUE).
    Returns {"candidates": [{"lr", "batch_size", "holdout_loss", "diverged", "seconds"}...],
    "chosen": {"lr", "batch_size"}, "epochs", "criterion"}."""
    tried: list[dict] = []

    def trial(lr: float) -> None:
        if on_extend is not None and len(tried) >= len(lrs) * len(batch_sizes):
            on_extend(epochs * len(batch_sizes))
        for bs in batch_sizes:
            t0 = time.perf_counter()
            params, hist = train_first_order(ae, init_params, make_optimizer(name, lr), x_train,
                                             bs, epochs, seed, tick=tick)
            score = math.nan if hist["diverged"] else _loss(ae, params, x_holdout)
            tried.append({"lr": lr, "batch_size": bs, "holdout_loss": score,
                          "diverged": hist["diverged"] is not None,
                          "seconds": time.perf_counter() - t0})
            if tick is not None and hist["diverged"]:
                for _ in range(epochs - len(hist["epoch"]) + 1):
                    tick("diverged")

    def finite() -> list[dict]:
        return [c for c in tried if math.isfinite(c["holdout_loss"])]

    for lr in sorted(float(v) for v in lrs):
        trial(lr)
    for _ in range(RESCUE):
        if finite():
            break
        trial(_ladder(min(c["lr"] for c in tried), up=False))
    if not finite():
        raise RuntimeError(f"grid_search: {name} diverged at every step size tried "
                           f"({sorted({c['lr'] for c in tried})}); give smaller ones")
    for _ in range(extensions):
        best, seen = min(finite(), key=lambda c: c["holdout_loss"])["lr"], \
            sorted({c["lr"] for c in tried})
        if best not in (seen[0], seen[-1]):
            break
        trial(_ladder(best, up=best == seen[-1]))
    chosen = min(finite(), key=lambda c: c["holdout_loss"])
    return {"candidates": tried, "chosen": {"lr": chosen["lr"],
                                            "batch_size": chosen["batch_size"]},
            "epochs": epochs, "criterion": "lowest held-out loss after training on the "
            f"training split for {epochs} epoch(s) from the run's initial parameters"}


def linear_check(x_train: np.ndarray, x_val: np.ndarray, pca: PCA, dtype: Any = np.float64,
                 seed: int = 0, tol: float = 0.01, lr: float = 3e-3, batch_size: int = 100,
                 max_epochs: int = 500, tick: Tick | None = None) -> dict:
    """Train the linear autoencoder D-2-D (``Autoencoder([D, 2], activation="linear")``: code
    and output linear, z = W2 (W1 x + b1) + b2) from the study's initialisation with Adam
    until its training loss is within ``tol`` of PCA's (at most ``max_epochs``). Its minimum
    is PCA's error (Eckart-Young: the best rank-2 affine reconstruction), so it must get
    there. Returns losses, their ratio, epochs, seconds, "passed" and the history
    (history["train_loss"]: exact training loss per epoch)."""
    d = x_train.shape[1]
    ae = Autoencoder([d, 2], activation="linear", dtype=dtype)
    target = pca.loss(x_train)
    opt = optim.Adam(lr)

    def stop(loss: float) -> bool:
        return loss <= (1 + tol) * target

    params, hist = train_first_order(ae, ae.init(seed), opt, x_train, batch_size, max_epochs,
                                     seed, x_train, tick, stop)
    train_loss = hist["val_loss"][-1]
    history = {"epoch": hist["epoch"], "seconds": hist["seconds"],
               "train_loss": hist["val_loss"]}
    return {"arch": f"{d}-2", "activation": "linear", "optimizer": "adam", "lr": lr,
            "batch_size": batch_size, "tol": tol,
            "max_epochs": max_epochs,
            "epochs": hist["epoch"][-1], "seconds": hist["seconds"][-1],
            "train_loss": train_loss, "val_loss": _loss(ae, params, x_val),
            "pca_train_loss": target, "pca_val_loss": pca.loss(x_val),
            "ratio": train_loss / target, "passed": bool(train_loss <= (1 + tol) * target),
            "history": history}


# -- the whole study -------------------------------------------------------------------------
@dataclass
class StudyOutput:
    """``results`` (JSON-ready) and the arrays the figures need."""

    results: dict
    codes_before: dict[str, np.ndarray]
    codes_after: dict[tuple[str, str], np.ndarray]
    reconstructions: dict[tuple[str, str], np.ndarray]
    samples: np.ndarray  # indices into the validation set shown in the reconstruction grid
    pca_codes: np.ndarray
    pca_reconstruction: np.ndarray
    split: Split


def _sample_indices(labels: np.ndarray, per_class: int = 1) -> np.ndarray:
    out = []
    for k in np.unique(labels):
        out.extend(np.flatnonzero(labels == k)[:per_class].tolist())
    return np.asarray(out[:12])


@contextlib.contextmanager
def blas_threads(n: int | None):
    """Limit the BLAS thread pool to ``n`` threads inside the block (threadpoolctl, installed
    with scikit-learn); yields what was done, for the record. The study's matrices are small:
    on a 2-core machine shared with other work, OpenBLAS's second thread made a minibatch
    epoch up to 10 times slower, while one thread costs at most about 1.5 times when idle."""
    if n is None:
        yield "unchanged"
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "unchanged (threadpoolctl is not installed)"
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield str(n)


def run_study(config: StudyConfig, split: Split, progress: bool = True) -> StudyOutput:
    """Run every (arch, optimizer) pair of ``config`` on ``split`` (see the module docstring),
    the PCA baseline and the linear check, with one progress bar over all the epochs, BLAS
    limited to ``config.blas_threads`` threads."""
    with blas_threads(config.blas_threads) as threads:
        out = _run_study(config, split, progress)
    out.results["settings"]["blas_threads"] = threads
    return out


def _run_study(config: StudyConfig, split: Split, progress: bool) -> StudyOutput:
    from pearlnet.train.progress import progress_bar

    dtype = np.dtype(config.dtype)
    t_start = time.perf_counter()
    width = split.x_train.shape[1]
    for sizes in config.archs:
        if sizes[0] != width:
            raise ValueError(f"run_study: arch {arch_label(sizes)} starts with width {sizes[0]}, "
                             f"the data have {width} features")
    batch_sizes = config.grid_batch_sizes or [config.batch_size]
    total = 0
    for _ in config.archs:
        for name in config.optimizers:
            total += config.epochs
            if name in FIRST_ORDER:
                total += len(config.grid[name]) * len(batch_sizes) * config.grid_epochs
    bar = progress_bar(total, "autoencoder study") if progress else None
    where = {"text": ""}

    def tick(what: str) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{where['text']} {what}")
            bar.update(1)

    def extend(n: int) -> None:
        if bar is not None:
            bar.total += n
            if hasattr(bar, "refresh"):
                bar.refresh()

    t0 = time.perf_counter()
    pca = fit_pca(split.x_train, 2)
    pca_result = {"seconds": time.perf_counter() - t0,
                  "train_loss": pca.loss(split.x_train), "val_loss": pca.loss(split.x_val),
                  "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
                  "method": "top 2 right singular vectors of the centred training data"}
    x_val = split.x_val
    samples = _sample_indices(split.y_val)
    out = StudyOutput({}, {}, {}, {}, samples, pca.encode(x_val), pca.reconstruct(x_val[samples]),
                      split)
    runs: list[dict] = []
    winners: dict[str, str] = {}
    equal_time: dict[str, dict] = {}
    try:
        for sizes in config.archs:
            label = arch_label(sizes)
            ae = Autoencoder(sizes, activation=config.activation, dtype=dtype)
            init = ae.init(config.seed)
            out.codes_before[label] = np.asarray(ae.encode(init, x_val))
            arch_runs = []
            for name in config.optimizers:
                where["text"] = f"{label} {name}"
                record, params = _run_pair(ae, init, label, name, config, split, batch_sizes,
                                           pca_result, tick, extend, where)
                out.codes_after[(label, name)] = np.asarray(ae.encode(params, x_val))
                out.reconstructions[(label, name)] = np.asarray(
                    ae.reconstruct(params, x_val[samples]))
                arch_runs.append(record)
            ok = [r for r in arch_runs if math.isfinite(r["final"]["val_loss"])]
            if ok:
                winners[label] = min(ok, key=lambda r: r["final"]["val_loss"])["optimizer"]
                equal_time[label] = _equal_time(ok)
            runs.extend(arch_runs)
        where["text"] = "linear check"

        def check_tick(what: str) -> None:
            extend(1)
            tick(what)

        check = linear_check(split.x_train, x_val, pca, dtype, config.seed,
                             config.linear_check_tol, max_epochs=config.linear_check_epochs,
                             tick=check_tick)
    finally:
        if bar is not None:
            bar.close()
    out.results = {
        "settings": {**{k: v for k, v in asdict(config).items() if k != "hf"},
                     "hf": asdict(config.hf), "grid_batch_sizes": batch_sizes},
        "data": split.description, "pca": pca_result, "runs": runs, "winners": winners,
        "winners_equal_time": equal_time,
        "linear_check": check, "total_seconds": time.perf_counter() - t_start,
        "objective": "F(theta) = (1/n) sum_i 1/2 ||x_i - z^L(x_i)||^2 (sum over pixels, mean "
                     "over images)"}
    return out


def _run_pair(ae: Autoencoder, init: dict, label: str, name: str, config: StudyConfig,
              split: Split, batch_sizes: list[int], pca_result: dict, tick: Tick,
              extend: Callable[[int], None], where: dict) -> tuple[dict, dict]:
    """One (arch, optimizer) run: the grid search (first-order methods), training, and the
    final losses and gradient norm. Returns (its results record, the trained parameters)."""
    record: dict[str, Any] = {"arch": label, "layer_sizes": ae.layer_sizes,
                              "activation": config.activation, "optimizer": name}
    x_train, x_val = split.x_train, split.x_val
    if name in FIRST_ORDER:
        where["text"] = f"{label} {name} grid"
        search = grid_search(ae, name, init, x_train, split.x_holdout, config.grid[name],
                             batch_sizes, config.grid_epochs, config.grid_extensions,
                             config.seed, tick, extend)
        where["text"] = f"{label} {name}"
        lr, bs = search["chosen"]["lr"], search["chosen"]["batch_size"]
        opt = make_optimizer(name, lr)
        params, hist = train_first_order(ae, init, opt, x_train, bs, config.epochs,
                                         config.seed, x_val, tick)
        if hist["diverged"]:
            for _ in range(config.epochs - len(hist["epoch"]) + 1):
                tick("diverged")
        record["hyperparameters"] = {"lr": lr, "batch_size": bs, "epochs": config.epochs,
                                     **_extra(opt)}
        record["grid_search"] = search
    else:
        hf = config.hf
        params, hist = train_hf(ae, init, x_train, config.epochs, hf, config.seed, x_val, tick)
        part = len(x_train) / hf.steps_per_epoch
        record["hyperparameters"] = {
            "epochs": config.epochs, **asdict(hf), "gradient_batch": round(part),
            "curvature_batch": max(1, round(hf.curvature_fraction * part)),
            "curvature": "gauss-newton", "cg_tol": 5e-4, "cg_decay": 0.95,
            "backtracking": True, "line_search": "Armijo"}
        record["grid_search"] = None
    with np.errstate(over="ignore", invalid="ignore"):
        train_loss, grads = ae.loss_and_grad(params, x_train)
    final = {"train_loss": train_loss if math.isfinite(train_loss) else math.nan,
             "val_loss": _loss(ae, params, x_val), "train_grad_norm": optim.global_norm(grads),
             "seconds": hist["seconds"][-1], "epochs_done": hist["epoch"][-1],
             "diverged_at_epoch": hist["diverged"]}
    final["val_over_pca"] = final["val_loss"] / pca_result["val_loss"]
    final["train_over_pca"] = final["train_loss"] / pca_result["train_loss"]
    record["final"] = final
    record["history"] = hist
    if config.curvature_size:
        where["text"] = f"{label} {name} curvature"
        finite = all(np.all(np.isfinite(a)) for a in ae_leaves(params))
        record["curvature"] = curvature_at(ae, params, x_train[:config.curvature_size],
                                           config) if finite else None
    return record, params


def ae_leaves(params: dict) -> list:
    from pearlnet.autodiff import tree_flatten

    return tree_flatten(params)[0]


def curvature_at(ae: Autoencoder, params: dict, x: np.ndarray, config: StudyConfig) -> dict:
    """{"hessian": summary, "ggn": summary} of the data loss F at ``params`` over ``x``
    (``pearlnet.report.spectrum.summarize``): top eigenvalues, trace and spectral density.
    Penalties are left out (the curvature of the data term)."""
    from pearlnet import curvature

    from .spectrum import summarize

    out = {"images": int(len(x))}
    with np.errstate(over="ignore", invalid="ignore"):
        for name, make in (("hessian", curvature.hessian_operator),
                           ("ggn", curvature.ggn_operator)):
            op = make((ae.net, ae.hf_loss), params, x)
            out[name] = summarize(op, config.curvature_top_k, config.curvature_trace_samples,
                                  config.curvature_lanczos_steps, seed=config.seed)
    return out


def _equal_time(runs: list[dict]) -> dict:
    """Compare at the training time T of the quickest run: each run's validation loss at its
    last epoch ending by T (the initial loss if none did)."""
    budget = min(r["history"]["seconds"][-1] for r in runs)
    at = {}
    for r in runs:
        h = r["history"]
        k = max(i for i, t in enumerate(h["seconds"]) if t <= budget + 1e-12)
        at[r["optimizer"]] = {"val_loss": h["val_loss"][k], "epoch": h["epoch"][k]}
    ok = {k: v for k, v in at.items() if math.isfinite(v["val_loss"])}
    return {"seconds": budget, "runs": at,
            "optimizer": min(ok, key=lambda k: ok[k]["val_loss"]) if ok else None}


def _extra(opt: Any) -> dict:
    """The optimizer's fixed hyper-parameters (beta, gamma, eps...), besides lr."""
    config = opt.get_config()
    return {k: v for k, v in config.items()
            if k not in ("lr", "weight_decay", "decay_mask") and not callable(v)}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def write_results(results: dict, path: str | Path) -> Path:
    """``results`` as indented JSON (NaN and infinities become null), written to a temporary
    file and moved into place (``files.replacing``)."""
    path = Path(path)
    text = json.dumps(_json_safe(results), indent=1) + "\n"
    with replacing(path, "write_results") as tmp:
        tmp.write_text(text)
    return path
