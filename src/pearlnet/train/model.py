"""Model: a Sequential network with Keras' training vocabulary (compile, fit, evaluate, predict).

The loop only orchestrates: each step takes ``value_and_grad`` of the pure objective
loss(y, net(params, x)) + penalties, and hands (params, grads, state) to the optimizer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from pearlnet.autodiff import tree_flatten, value_and_grad
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
                 seed: Any = 0, dtype: Any = None) -> None:
        # set before the layers are added: add() builds as soon as the input shape is known
        self.seed = seed
        self.optimizer: Any = None
        self.opt_state: Any = None
        self._opt_layout: Any = None
        self.loss_fn: Callable | None = None
        self.loss_name: str | None = None
        self.from_logits = False
        self._from_logits_arg: bool | None = None
        self.metric_fns: list[tuple[str, Callable]] = []
        self.stop_training = False
        self.last_finite: tuple = ({}, {})
        super().__init__(list(layers or []), name)
        self._dtype = None if dtype is None else np.dtype(dtype)

    # -- set-up ------------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The compute dtype inputs are cast to: the widest of the layers' dtypes (float32
        unless a layer says otherwise, so a float64 model keeps float64 inputs; Keras casts to
        the layers' compute dtype likewise), or the ``dtype`` given to the Model."""
        if self.__dict__.get("_dtype") is not None:
            return self._dtype
        dtypes = [d for d in _layer_dtypes(self.layers) if d.kind in "fc"]
        return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)

    @dtype.setter
    def dtype(self, value: Any) -> None:
        self._dtype = np.dtype(value)

    def _added(self, layer: Module) -> None:
        # Keras builds a model as soon as its input shape is known; a built model builds the
        # new layer alone, so the trained layers keep their weights
        super()._added(layer)
        if not self.built and self.input_shape is not None:
            self.init(self.seed)

    def _how_to_build(self) -> str:
        if self.input_shape is not None:
            return f"call build({self.input_shape})"
        return ("its input shape is not known yet: give the first layer input_shape=(...), "
                "call build(input_shape), or call fit, predict or the model itself on data, "
                "which build it from the data's shape")

    def build(self, input_shape: tuple, seed: Any = None) -> tuple:
        """Build every layer for inputs of ``input_shape``: the shape of one object, or
        Keras' form with the batch axis as None, ``(None, 4)``. ``seed`` (an int or a
        Generator; the model's seed by default) draws the initial weights. Returns the
        output shape of one object."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                   for d in shape):
            raise ValueError(f"Model.build: expected an input shape of positive ints (one "
                             f"object, or (None, ...) with the batch axis), got {input_shape!r}")
        if not self.layers:
            raise ValueError("Model.build: the model has no layers; add layers first")
        rng = self.seed if seed is None else seed
        out = super().build(shape, as_rng(rng))
        self.input_shape = tuple(int(d) for d in shape)
        self.output_shape_ = out
        self.built = True
        if self.optimizer is not None:
            self._init_optimizer_state()
        return out

    def build_model(self, seed: Any = None) -> None:
        """Build from the input shape the first layer declares (``load_model`` uses it)."""
        if not self.layers:
            raise ValueError("Model: add layers before building")
        if self.input_shape is None:
            raise ValueError("Model: the first layer needs input_shape=(...) (the shape of one "
                             "object, without the batch axis)")
        self.init(self.seed if seed is None else seed)

    def _build_from(self, x: np.ndarray, who: str) -> None:
        """Build on first use from the data's shape (Keras), unless built."""
        if self.built:
            return
        if x.ndim < 2:
            raise ValueError(f"Model.{who}: the model is not built and inputs of shape "
                             f"{x.shape} have no object axis to build it from; expected "
                             f"(n, features...)")
        if not self.layers:
            raise ValueError(f"Model.{who}: the model has no layers; add layers first")
        self.build(x.shape[1:])

    def compile(self, loss: str | Callable = "categorical_crossentropy", optimizer: Any = "sgd",
                metrics: Sequence[str | Callable] = (), from_logits: bool | None = None) -> None:
        """Choose the loss (a function or its name), the optimizer (an object of pearlnet.optim
        or its name) and the metrics. For a cross-entropy loss, ``from_logits`` defaults to True
        when the last layer has no softmax/sigmoid (the fused, stable form). A model whose
        input shape is not known yet is built by the first ``fit``. A compile that raises
        leaves the model as it was."""
        loss_fn = losses.get(loss)
        optimizer = _optimizer(optimizer)
        metric_fns = [metrics_mod.get(m) for m in metrics]
        if from_logits is not None and not isinstance(from_logits, (bool, np.bool_)):
            raise ValueError(f"Model.compile: from_logits must be True, False or None, got "
                             f"{from_logits!r}")
        opt_state = optimizer.init(self.params) if self.built else None
        self.loss_fn, self.optimizer, self.metric_fns = loss_fn, optimizer, metric_fns
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)
        self._from_logits_arg = None if from_logits is None else bool(from_logits)
        self._resolve_from_logits()
        self.opt_state = opt_state
        self._opt_layout = _layout(self.params) if self.built else None

    def _resolve_from_logits(self) -> None:
        if self._from_logits_arg is not None or not self.layers:
            self.from_logits = bool(self._from_logits_arg)
            return
        last = getattr(self.layers[-1], "fn", None) or getattr(self.layers[-1],
                                                               "activation", None)
        self.from_logits = getattr(last, "name", getattr(last, "__name__", "")) not in (
            "softmax", "sigmoid")

    def _init_optimizer_state(self) -> None:
        """The optimizer's state for the current parameters. After layers were added, the
        entries of the layers that were there are kept (Keras keeps an optimizer's slots per
        variable) and the new ones start fresh; anything else is initialised anew."""
        fresh = self.optimizer.init(self.params)
        if self.opt_state is not None and self._opt_layout is not None:
            fresh = _merge_state(self.opt_state, fresh)
        self.opt_state = fresh
        self._opt_layout = _layout(self.params)

    def _prepare(self, x: np.ndarray, who: str) -> None:
        """Before fit/evaluate: built, and the optimizer state fits the parameters."""
        self._build_from(x, who)
        self._resolve_from_logits()
        if self.optimizer is not None and (self.opt_state is None
                                           or self._opt_layout != _layout(self.params)):
            self._init_optimizer_state()

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
        if x.ndim == 0:
            raise ValueError(f"Model.{who}: expected an array of inputs (n, features...), got "
                             f"the scalar {x!r}")
        if x.dtype.kind not in "biufc":
            raise ValueError(f"Model.{who}: expected numeric inputs, got dtype {x.dtype}")
        self._build_from(x, who)
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
        out = tuple(self.output_shape_) if self.built else None
        if out == (1,) and y.ndim == 1:
            y = y.reshape(-1, 1)  # (N,) targets for a single output (N, 1), as Keras takes them
        elif out is not None and len(out) == 1 and out[0] > 1 and y.ndim == 2 and \
                y.shape[1] == 1 and y.dtype.kind in "iu":
            y = y[:, 0]  # sparse labels of shape (N, 1), as Keras takes them
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
        if validation_data is not None and not (
                isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            got = (f"a {type(validation_data).__name__} of {len(validation_data)}"
                   if isinstance(validation_data, (tuple, list))
                   else type(validation_data).__name__)
            raise ValueError(f"Model.fit: validation_data must be a pair (x_val, y_val), got "
                             f"{got}; sample weights are not supported")
        x = self._inputs(x, "fit")
        self._prepare(x, "fit")
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
        """Outputs of the network in evaluation mode, computed batch by batch (a model not
        built yet is built from the inputs' shape)."""
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
        self._prepare(x, "evaluate")
        y = self._targets(y, len(x), "evaluate")
        if len(x) == 0:
            raise ValueError("Model.evaluate: expected at least one sample, got 0")
        out = self.predict(x, batch_size)
        result = {"loss": float(self._loss(y, out) + self.penalty(self.params))}
        for name, fn in self.metric_fns:
            result[name] = self._metric(fn, y, out)
        return result

    def __call__(self, x: Any, training: bool | None = None, rng: Any = None) -> Any:
        """The network on x (built from x's shape on first use, as Keras builds a model)."""
        if not self.built:
            self._inputs(x, "__call__")
        return super().__call__(x, training, rng)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Architecture (JSON) and weights (npz) in one file, written atomically. Classes and
        functions of one's own (layers, losses, metrics, optimizers, activations) are saved by
        name (``load_model(path, custom_objects=...)`` rebuilds them); what no name can bring
        back (a lambda, two objects of one name, a config that does not rebuild the object) is
        refused before any file is written (pearlnet.train.io)."""
        from .io import save_model

        save_model(self, path)


def _layer_dtypes(layers: Sequence[Module]) -> list[np.dtype]:
    out = []
    for layer in layers:
        if isinstance(layer, Sequential):
            out += _layer_dtypes(layer.layers)
        else:
            out.append(np.dtype(layer.dtype))
    return out


def _layout(tree: Any) -> tuple:
    """What an optimizer state depends on: the parameters' structure, shapes and dtypes."""
    leaves, treedef = tree_flatten(tree)
    return treedef, tuple((np.shape(a), np.result_type(a).str) for a in leaves)


def _merge_state(old: Any, fresh: Any) -> Any:
    """``fresh`` with every entry of ``old`` that has the same layout kept: whole entries (a
    step count, Hessian-free's lambda), and in per-layer trees (Adam's m and v) the layers
    whose parameters did not change."""
    if isinstance(old, dict) and isinstance(fresh, dict):
        return {k: _merge_state(old[k], v) if k in old else v for k, v in fresh.items()}
    return old if _layout(old) == _layout(fresh) else fresh
