"""Model: a Sequential network with Keras' training vocabulary (compile, fit, evaluate, predict).

The loop only orchestrates: each step takes ``value_and_grad`` of the pure objective
loss(y, net(params, x)) + penalties, and hands (params, grads, state) to the optimizer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from pearlnet.autodiff import value_and_grad
from pearlnet.nn import losses
from pearlnet.nn.module import Module, Sequential, as_rng

from . import metrics as metrics_mod
from .callbacks import Callback, CallbackList, History, TerminateOnNaN
from .progress import progress_bar

__all__ = ["Model"]


def _optimizer(spec: Any) -> Any:
    from pearlnet import optim

    return optim.get(spec)


def _check_batch_size(batch_size: Any, who: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"Model.{who}: batch_size must be a positive integer, got "
                         f"{batch_size!r}")


class Model(Sequential):
    """A trainable stack of layers.

    >>> import numpy as np, pearlnet, pearlnet.nn as nn
    >>> model = pearlnet.Model([nn.Dense(8, activation="relu", input_shape=(4,)), nn.Dense(3)])
    >>> model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    >>> x, y = np.ones((6, 4), np.float32), np.array([0, 1, 2, 0, 1, 2])
    >>> sorted(model.fit(x, y, epochs=2, verbose=0, seed=0).history)
    ['accuracy', 'loss']
    """

    def __init__(self, layers: Sequence[Module] | None = None, name: str | None = None,
                 seed: Any = 0) -> None:
        super().__init__(list(layers or []), name)
        self.seed = seed
        self.optimizer: Any = None
        self.opt_state: Any = None
        self.loss_fn: Callable | None = None
        self.loss_name: str | None = None
        self.from_logits = False
        self.metric_fns: list[tuple[str, Callable]] = []
        self.stop_training = False
        self.last_finite: tuple = ({}, {})

    # -- set-up ------------------------------------------------------------------------------
    def build_model(self, seed: Any = None) -> None:
        if not self.layers:
            raise ValueError("Model: add layers before building")
        if self.input_shape is None:
            raise ValueError("Model: the first layer needs input_shape=(...) (the shape of one "
                             "object, without the batch axis)")
        self.init(self.seed if seed is None else seed)

    def compile(self, loss: str | Callable = "categorical_crossentropy", optimizer: Any = "sgd",
                metrics: Sequence[str | Callable] = (), from_logits: bool | None = None) -> None:
        """Choose the loss (a function or its name), the optimizer (an object of pearlnet.optim
        or its name) and the metrics. For a cross-entropy loss, ``from_logits`` defaults to True
        when the last layer has no softmax/sigmoid (the fused, stable form)."""
        self.loss_fn = losses.get(loss)
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)
        self.optimizer = _optimizer(optimizer)
        self.metric_fns = [metrics_mod.get(m) for m in metrics]
        if not self.built:
            self.build_model()
        if from_logits is None:
            last = getattr(self.layers[-1], "fn", None) or getattr(self.layers[-1],
                                                                   "activation", None)
            from_logits = getattr(last, "name", getattr(last, "__name__", "")) not in (
                "softmax", "sigmoid")
        self.from_logits = bool(from_logits)
        self.opt_state = self.optimizer.init(self.params)

    def _loss(self, y_true: Any, y_pred: Any) -> Any:
        if self.loss_fn in (losses.categorical_crossentropy, losses.binary_crossentropy):
            return self.loss_fn(y_true, y_pred, from_logits=self.from_logits)
        return self.loss_fn(y_true, y_pred)

    def _metric(self, fn: Callable, y_true: Any, y_pred: Any) -> float:
        # a single binary-cross-entropy output is a logit when from_logits: its class
        # boundary is 0, not 0.5
        if fn is metrics_mod.accuracy and self.from_logits and \
                self.loss_fn is losses.binary_crossentropy:
            return float(fn(y_true, y_pred, threshold=0.0))
        return float(fn(y_true, y_pred))

    def objective(self, params: dict, x: Any, y: Any, state: dict | None = None,
                  training: bool = True, rng: Any = None) -> tuple[Any, tuple]:
        """(loss + penalties, (new state, outputs)): what ``fit`` differentiates."""
        out, new_state = self.forward(params, x, state=state, training=training, rng=rng)
        return self._loss(y, out) + self.penalty(params), (new_state, out)

    def _require_compiled(self, who: str) -> None:
        if self.loss_fn is None or self.optimizer is None:
            raise RuntimeError(f"Model.{who}: call compile(loss=..., optimizer=...) first")

    def _inputs(self, x: Any, who: str) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[1:] != tuple(self.input_shape):
            raise ValueError(f"Model.{who}: expected inputs of shape (n, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        return x

    def _targets(self, y: Any, n: int, who: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 0:
            raise ValueError(f"Model.{who}: expected an array of {n} targets, got the scalar "
                             f"{y!r}")
        if len(y) != n:
            raise ValueError(f"Model.{who}: {n} inputs but {len(y)} targets")
        return y if y.dtype.kind in "iub" else y.astype(self.dtype, copy=False)

    # -- training ----------------------------------------------------------------------------
    def fit(self, x: Any, y: Any, batch_size: int = 32, epochs: int = 1,
            validation_data: tuple | None = None, validation_split: float = 0.0,
            shuffle: bool = True, callbacks: Sequence[Callback] = (), verbose: int = 1,
            seed: Any = None, terminate_on_nan: bool = True) -> History:
        """Train for ``epochs`` passes over (x, y) in minibatches of ``batch_size``.

        Returns a History whose ``.history`` holds ``loss``, each metric, and with validation
        data their ``val_`` twins, one value per epoch. ``validation_split`` holds out the last
        fraction of (x, y), as Keras does; given ``validation_data`` takes precedence over it
        (Keras' rule), and then nothing is held out. A last batch of a single sample is
        trained with the batch before it. verbose=1 draws a progress bar per epoch,
        2 prints a line per epoch, 0 is silent. ``seed`` drives shuffling and dropout.
        """
        self._require_compiled("fit")
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Model.fit: epochs must be a non-negative integer, got {epochs!r}")
        _check_batch_size(batch_size, "fit")
        x = self._inputs(x, "fit")
        y = self._targets(y, len(x), "fit")
        if validation_split and not 0 < validation_split < 1:
            raise ValueError(f"Model.fit: validation_split must be in (0, 1), got "
                             f"{validation_split}")
        if validation_split and validation_data is None:  # given validation_data wins (Keras)
            cut = int(round(len(x) * (1 - validation_split)))
            if cut == 0 or cut == len(x):
                raise ValueError(f"Model.fit: validation_split={validation_split} of {len(x)} "
                                 f"samples leaves {cut} for training and {len(x) - cut} for "
                                 f"validation; both need at least one")
            validation_data = (x[cut:], y[cut:])
            x, y = x[:cut], y[:cut]
        if len(x) == 0:
            raise ValueError("Model.fit: expected at least one training sample, got 0")
        rng = as_rng(seed)
        history = History()
        cbs = list(callbacks)
        if terminate_on_nan and not any(isinstance(c, TerminateOnNaN) for c in callbacks):
            cbs.append(TerminateOnNaN())
        cbs.append(history)  # last, so it records what the other callbacks add to the logs
        cb = CallbackList(cbs)
        cb.set_model(self)
        self.stop_training = False
        self.last_finite = (self.params, self.state)  # what TerminateOnNaN restores
        step = getattr(self.optimizer, "fit_step", None)
        train_step = step(self) if step is not None else self._first_order_step()
        cb.on_train_begin()
        n = len(x)
        for epoch in range(epochs):
            cb.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else np.arange(n)
            nb = math.ceil(n / batch_size)
            if nb > 1 and n % batch_size == 1:
                nb -= 1  # a last batch of one sample joins the one before (BatchNorm needs 2)
            bar = progress_bar(nb, f"epoch {epoch + 1}/{epochs}") if verbose == 1 else None
            sums = {"loss": 0.0, **{name: 0.0 for name, _ in self.metric_fns}}
            seen = 0
            for b in range(nb):
                idx = order[b * batch_size:(b + 1) * batch_size if b < nb - 1 else n]
                xb = x[idx].astype(self.dtype, copy=False)
                yb = y[idx]
                # a diverging step overflows; TerminateOnNaN reports that once, clearly,
                # instead of NumPy warning about every overflowing operation
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    loss, out, apply_update = train_step(xb, yb, rng)
                    cb.on_batch_end(b, {"loss": loss, "epoch": epoch})
                    if self.stop_training and not math.isfinite(loss):
                        break
                    apply_update()
                k = len(idx)
                seen += k
                sums["loss"] += loss * k
                for name, fn in self.metric_fns:
                    sums[name] += self._metric(fn, yb, out) * k
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"loss {sums['loss'] / seen:.4f}")
            if bar is not None:
                bar.close()
            # no batch finished (the first loss was not finite): no figure, not 0
            logs = {key: value / seen if seen else math.nan for key, value in sums.items()}
            if validation_data is not None and not (self.stop_training and seen < n):
                val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                logs.update({f"val_{k}": v for k, v in val.items()})
            cb.on_epoch_end(epoch, logs)
            if verbose in (1, 2):
                print(f"epoch {epoch + 1}/{epochs}: " +
                      ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
            if self.stop_training:
                break
        cb.on_train_end()
        return history

    def _first_order_step(self) -> Callable:
        """A step for the first-order optimizers: gradient, then ``optimizer.update``."""
        value_and_grad_fn = value_and_grad(self.objective, has_aux=True)

        def step(xb, yb, rng):
            params, state = self.params, self.state
            (loss, (new_state, out)), grads = value_and_grad_fn(params, xb, yb, state, True, rng)
            loss = float(loss)

            def apply_update():
                self.last_finite = (params, state)
                self.params, self.opt_state = self.optimizer.update(params, grads,
                                                                    self.opt_state)
                self.state = new_state if new_state else state

            return loss, out, apply_update

        return step

    # -- inference ---------------------------------------------------------------------------
    def predict(self, x: Any, batch_size: int = 1024) -> np.ndarray:
        """Outputs of the network in evaluation mode, computed batch by batch."""
        self._require_built()
        _check_batch_size(batch_size, "predict")
        x = self._inputs(x, "predict")
        outs = [np.asarray(self.apply(self.params, x[i:i + batch_size].astype(self.dtype,
                                                                                copy=False),
                                      training=False))
                for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, *self.output_shape_), self.dtype)

    def evaluate(self, x: Any, y: Any, batch_size: int = 1024) -> dict[str, float]:
        """{"loss": ..., metric: ...} on (x, y) in evaluation mode (loss includes penalties)."""
        self._require_compiled("evaluate")
        _check_batch_size(batch_size, "evaluate")
        x = self._inputs(x, "evaluate")
        y = self._targets(y, len(x), "evaluate")
        if len(x) == 0:
            raise ValueError("Model.evaluate: expected at least one sample, got 0")
        out = self.predict(x, batch_size)
        result = {"loss": float(self._loss(y, out) + self.penalty(self.params))}
        for name, fn in self.metric_fns:
            result[name] = self._metric(fn, y, out)
        return result

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Architecture (JSON) and weights (npz) in one file, written atomically. Classes and
        functions of one's own (layers, losses, metrics, optimizers, activations) are saved by
        name (``load_model(path, custom_objects=...)`` rebuilds them); what no name can bring
        back (a lambda, two objects of one name, a config that does not rebuild the object) is
        refused before any file is written (pearlnet.train.io)."""
        from .io import save_model

        save_model(self, path)
