"""Model: a Sequential network with Keras' training vocabulary (compile, fit, evaluate, predict).

The loop only orchestrates: each step takes ``value_and_grad`` of the pure objective
loss(y, net(params, x)) + penalties, and hands (params, grads, state) to the optimizer.

With ``compile(..., jit=True)`` (the default) the step is compiled (pearlnet.jit): the gradient
step, with the dropout masks drawn inside it from (seed, epoch, sample indices) arrays it takes,
and the optimizer's update are each one program per batch shape, replayed for every batch with
the same numbers as ``jit=False``. Between them, in a data-parallel fit, the gradients'
allreduce, the same on every rank. The programs are made again by ``compile``; a layer's
setting changed after the first ``fit`` (a Dropout's p) needs a new ``compile``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from pearlnet.autodiff import jit as compile_fn
from pearlnet.autodiff import (
    tree_flatten,
    tree_leaves_like,
    tree_map,
    tree_unflatten,
    value_and_grad,
)
from pearlnet.autodiff.tree import sole_holder
from pearlnet.distributed import (
    PackedTree,
    Shard,
    check_same,
    data_parallel,
    fail_together,
    shard_bounds,
    tree_digest,
)
from pearlnet.distributed import fingerprint_rows as distributed_fingerprint_rows
from pearlnet.nn import losses
from pearlnet.nn.module import Module, Sequential, as_rng
from pearlnet.nn.random import SampleStream

from . import metrics as metrics_mod
from . import parallel
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
        # {"seed": s, "epoch": k}: where fit stands (saved in a checkpoint, for initial_epoch)
        self.training_progress: dict | None = None
        self._comm: Any = None  # the communicator of the last fit (rank 0 writes files)
        self._guarded = True  # does the fit under way have a TerminateOnNaN
        self.jit = True  # compile the training and inference steps (compile(jit=...))
        self._programs: dict = {}  # the compiled steps, by name (reset by compile)
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
                metrics: Sequence[str | Callable] = (), from_logits: bool | None = None,
                jit: bool = True) -> None:
        """Choose the loss (a function or its name), the optimizer (an object of pearlnet.optim
        or its name) and the metrics. For a cross-entropy loss, ``from_logits`` defaults to True
        when the last layer has no softmax/sigmoid (the fused, stable form). A model whose
        input shape is not known yet is built by the first ``fit``. ``jit`` (default True):
        fit, evaluate and predict run compiled steps (pearlnet.jit), the same numbers as
        uncompiled ones (``jit=False``), without the tracer's cost per operation. A compile
        that raises leaves the model as it was."""
        if not isinstance(jit, (bool, np.bool_)):
            raise ValueError(f"Model.compile: jit must be True or False, got {jit!r}")
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
        self.jit, self._programs = bool(jit), {}

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
            seed: Any = None, terminate_on_nan: bool = True, initial_epoch: int = 0,
            distributed: Any = "auto", check_replicas: int = 0) -> History:
        """Train from epoch ``initial_epoch`` up to ``epochs`` (Keras' meaning: the index of the
        last epoch + 1) in minibatches of ``batch_size``.

        Returns a History whose ``.history`` holds ``loss``, each metric, and with validation
        data their ``val_`` twins, one value per epoch. ``validation_split`` holds out the last
        fraction of (x, y), as Keras does; given ``validation_data`` takes precedence over it
        (Keras' rule), and then nothing is held out. A last batch of a single sample is
        trained with the batch before it. verbose=1 draws a progress bar per epoch,
        2 prints a line per epoch, 0 is silent.

        ``seed`` (an int; a Generator gives one draw; the model's seed by default) is the
        root of every random choice: epoch e's shuffle and dropout masks derive from
        (seed, e) and the samples' indices, so a run resumed with ``initial_epoch=k`` (from a
        ``ModelCheckpoint`` file: ``model.training_progress``) ends bit-identical to the
        uninterrupted run.

        Data parallelism (``distributed="auto"``: whenever the process is one of several
        started by mpiexec; False opts out; or a Communicator): every rank calls ``fit`` with
        the same arrays (a memory-mapped .npy is fine) and computes its contiguous share of
        each global batch of ``batch_size``; the ranks' gradients, weighted by their shares,
        are summed in one message per dtype, and every rank applies the same update, so the
        replicas stay identical and train the network one process trains (BatchNorm's
        moments are the global batch's). Parameters and optimizer state start from rank
        0's; a fingerprint of the model, data and settings is checked first. Only rank 0
        prints and writes checkpoints. ``check_replicas=k`` compares a digest of every
        rank's parameters and optimizer state every k steps (a ``ReplicaMismatchError`` on
        a difference). An exception on one rank ends the whole job (MPI_Abort).
        """
        self._require_compiled("fit")
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch),
                            ("check_replicas", check_replicas)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Model.fit: {name} must be a non-negative integer, got "
                                 f"{value!r}")
        if initial_epoch > epochs:
            raise ValueError(f"Model.fit: initial_epoch ({initial_epoch}) is past epochs "
                             f"({epochs}); epochs is the index of the last epoch + 1, as in "
                             f"Keras")
        _check_batch_size(batch_size, "fit")
        if validation_data is not None and not (
                isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            got = (f"a {type(validation_data).__name__} of {len(validation_data)}"
                   if isinstance(validation_data, (tuple, list))
                   else type(validation_data).__name__)
            raise ValueError(f"Model.fit: validation_data must be a pair (x_val, y_val), got "
                             f"{got}; sample weights are not supported")
        comm = parallel.communicator_for(distributed, "Model.fit")
        if batch_size < comm.size:
            raise ValueError(f"Model.fit: batch_size ({batch_size}) is smaller than the "
                             f"{comm.size} ranks; each rank needs a sample of every batch")
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
        if comm.size > 1:
            comm.rendezvous("Model.fit")
        seed = parallel.training_seed(seed, self.seed, comm, "Model.fit")
        if comm.size > 1:
            self._start_together(comm, x, y, validation_data, dict(
                batch_size=int(batch_size), epochs=int(epochs), initial_epoch=int(initial_epoch),
                shuffle=bool(shuffle), check_replicas=int(check_replicas)))
        verbose = verbose if comm.rank == 0 else 0
        history = History()
        cbs = list(callbacks)
        if terminate_on_nan and not any(isinstance(c, TerminateOnNaN) for c in callbacks):
            cbs.append(TerminateOnNaN())
        cbs.append(history)  # last, so it records what the other callbacks add to the logs
        cb = CallbackList(cbs)
        cb.set_model(self)
        self.stop_training = False
        guarded = any(isinstance(c, TerminateOnNaN) for c in cbs)
        # what TerminateOnNaN restores (nothing does without one: then the compiled step may
        # write the new parameters over the old ones)
        self.last_finite = (self.params, self.state) if guarded else ({}, {})
        self.training_progress = {"seed": seed, "epoch": int(initial_epoch)}
        self._comm, self._guarded = comm, guarded
        step = getattr(self.optimizer, "fit_step", None)
        train_step = step(self) if step is not None else self._first_order_step()
        n, steps = len(x), 0
        with fail_together(comm):
            cb.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                cb.on_epoch_begin(epoch)
                order = parallel.epoch_order(seed, epoch, n, shuffle)
                nb = parallel.batch_count(n, batch_size, comm.size)
                bar = progress_bar(nb, f"epoch {epoch + 1}/{epochs}") if verbose == 1 else None
                sums = {"loss": 0.0, **{name: 0.0 for name, _ in self.metric_fns}}
                seen = 0
                for b in range(nb):
                    shard = Shard(comm, order[b * batch_size:(b + 1) * batch_size
                                              if b < nb - 1 else n])
                    local = shard.local
                    xb = x[local].astype(self.dtype, copy=False)
                    yb = y[local]
                    stream = SampleStream(seed, epoch, local)
                    # a diverging step overflows; TerminateOnNaN reports that once, clearly,
                    # instead of NumPy warning about every overflowing operation
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        loss, metric_sums, apply_update = train_step(xb, yb, stream, shard)
                        # the callbacks see the updated model (as Keras's do); with a
                        # TerminateOnNaN a step whose loss is not finite is not applied
                        if not guarded or math.isfinite(loss):
                            apply_update()
                        # let go of the step's old trees now: the next compiled step writes
                        # over their arrays only when nothing else holds them
                        del apply_update
                        cb.on_batch_end(b, {"loss": loss, "epoch": epoch})
                        if self.stop_training and not math.isfinite(loss):
                            break
                    steps += 1
                    if check_replicas and steps % check_replicas == 0:
                        self._check_replicas(comm, steps)
                    k = shard.total
                    seen += k
                    sums["loss"] += loss * k
                    for name, value in metric_sums.items():
                        sums[name] += value
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"loss {sums['loss'] / seen:.4f}")
                if bar is not None:
                    bar.close()
                # no batch finished (the first loss was not finite): no figure, not 0
                logs = {key: value / seen if seen else math.nan for key, value in sums.items()}
                if validation_data is not None and not (self.stop_training and seen < n):
                    val = self.evaluate(*validation_data, batch_size=max(batch_size, 256),
                                        distributed=comm)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                if not (self.stop_training and seen < n):
                    self.training_progress = {"seed": seed, "epoch": epoch + 1}
                cb.on_epoch_end(epoch, logs)
                if verbose in (1, 2):
                    print(f"epoch {epoch + 1}/{epochs}: " +
                          ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
                if self.stop_training:
                    break
            cb.on_train_end()
        return history

    def _start_together(self, comm: Any, x: np.ndarray, y: np.ndarray,
                        validation_data: Any, settings: dict) -> None:
        """Every rank checks that all ranks run the same job, then takes rank 0's parameters,
        state and optimizer state."""
        if validation_data is not None:
            settings["validation"] = [distributed_fingerprint_rows(np.asarray(a))
                                      for a in validation_data]
        check_same(comm, parallel.model_fingerprint(self, x, y, settings), "Model.fit")
        self.params, self.state, self.opt_state = comm.broadcast(
            (self.params, self.state, self.opt_state))
        self._assign_layers()

    def _assign_layers(self) -> None:
        """Give each layer its entry of the model's params and state (after a broadcast)."""
        for layer in self.layers:
            if layer.name in self.params:
                layer.params = self.params[layer.name]
            if layer.name in self.state:
                layer.state = self.state[layer.name]

    def _check_replicas(self, comm: Any, steps: int) -> None:
        digests = comm.allgather(tree_digest((self.params, self.state, self.opt_state)))
        if len(set(digests)) > 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise parallel.ReplicaMismatchError(
                f"Model.fit: after step {steps} the parameters or optimizer state of ranks "
                f"{differ} differ from rank 0's (check_replicas); the replicas must stay "
                f"bitwise identical")

    def _metric_sums(self, yb: Any, out: Any) -> dict[str, float]:
        """Each metric times the number of samples (sums add across batches and ranks)."""
        k = len(yb)
        if k == 0:
            return {name: 0.0 for name, _ in self.metric_fns}
        return {name: self._metric(fn, yb, out) * k for name, fn in self.metric_fns}

    def _weighted(self, params, x, y, state, training, rng, weight):
        value, aux = self.objective(params, x, y, state, training, rng)
        return value * weight, aux

    def _gradient_step(self, params: Any, x: Any, y: Any, state: Any, seed_epoch: Any,
                       indices: Any, comm: Any, total: int, weight: float) -> tuple:
        """(loss, new state, outputs, gradients) of one batch: the part of a step that is
        compiled. The dropout masks come from (seed, epoch) and the samples' indices, arrays
        the compiled program takes (never constants of it). ``comm`` None: one process."""
        stream = SampleStream(seed_epoch[0], seed_epoch[1], indices)
        if comm is None:
            (loss, (new_state, out)), grads = value_and_grad(self.objective, has_aux=True)(
                params, x, y, state, True, stream)
        else:
            with data_parallel(comm, total, pnp_len(x)):
                (loss, (new_state, out)), grads = value_and_grad(self._weighted, has_aux=True)(
                    params, x, y, state, True, stream, weight)
        return loss, new_state, out, grads

    def _training_step(self, params: Any, x: Any, y: Any, state: Any, seed_epoch: Any,
                       indices: Any, slots: list, coefficients: tuple, mask: tuple,
                       spare: list | None = None) -> tuple:
        """One process: the gradient step and the optimizer's rule in one compiled program
        (the gradients never leave it). Returns (loss, new state, outputs, new params, new
        slot leaves). With ``spare`` (the leaves of the parameters before these, which
        nothing needs any more unless this step's loss is not finite) the step is guarded:
        where the loss is not finite, the slots come back unchanged and the new parameters
        are the spare leaves themselves (the optimizer's ``guard``)."""
        import pearlnet.numpy as pnp

        loss, new_state, out, grads = self._gradient_step(params, x, y, state, seed_epoch,
                                                          indices, None, 0, 1.0)
        ps, treedef = tree_flatten(params)
        gs = tree_leaves_like(treedef, grads, "Model.fit", "the gradients")
        guard = None if spare is None else (pnp.isfinite(loss), spare)
        new_ps, new_slots = self.optimizer._apply(ps, gs, slots, coefficients, mask,
                                                  guard=guard)
        return loss, new_state, out, tree_unflatten(treedef, new_ps), new_slots

    def _program(self, name: str, fn: Callable, static_argnums: tuple = (),
                 donate_argnums: tuple = ()) -> Callable:
        """The compiled form of ``fn`` (made once per compile()), or fn itself (jit=False)."""
        if not self.jit:
            return fn
        program = self._programs.get(name)
        if program is None:
            program = self._programs[name] = compile_fn(fn, static_argnums=static_argnums,
                                                        donate_argnums=donate_argnums)
        return program

    def _fused_inputs(self, guarded: bool) -> tuple | None:
        """(params, slot leaves, coefficients, mask, spare) for the compiled training step,
        whose program writes its results over arrays it is given (donated): the slots, and
        the parameters (unguarded) or the spare leaves (guarded, the parameters before these,
        which TerminateOnNaN no longer needs once this step's loss is finite). Only arrays
        that nothing but the model holds are given (``sole_holder``); for the others, copies
        (of parameters and slots) or new arrays (the spare, whose values a finite step does
        not read). None when the optimizer's rule cannot be compiled."""
        params_sole = not guarded and sole_holder(self.params, 1)
        slots_sole = sole_holder(self.opt_state, 1)
        spare_sole = guarded and sole_holder(self.last_finite[0], 1)
        params = self.params
        inputs = self.optimizer.step_inputs(params, self.opt_state)
        if inputs is None:
            return None
        slots, coefficients, mask = inputs
        if not slots_sole:
            slots = [[np.array(a) for a in leaves] for leaves in slots]
        spare = None
        if guarded:
            # the spare leaves only lend their memory (the new parameters are unflattened
            # with the parameters' structure), so arrays of the leaves' shapes will do
            ps = tree_flatten(params)[0]
            spare = tree_flatten(self.last_finite[0])[0]
            if not (spare_sole and len(spare) == len(ps) and all(
                    type(s) is np.ndarray and s.shape == p.shape and s.dtype == p.dtype
                    and s.flags.c_contiguous for s, p in zip(spare, ps))):
                spare = [np.empty_like(p) for p in ps]
        elif not params_sole:
            params = tree_map(np.array, params)
        return params, slots, coefficients, mask, spare

    def _update_in_place(self, grads: Any, guarded: bool) -> None:
        """The data-parallel step's update, after the allreduce, as one compiled program that
        writes in place as the one-process step does (``_fused_inputs``): the slots over the
        old ones, the new parameters over the old ones (unguarded) or into the spare leaves
        (guarded; offered as the outputs' memory, since only finite steps reach here)."""
        inputs = self._fused_inputs(guarded)
        if inputs is None:
            params = self.params
            if guarded:
                self.last_finite = (params, self.state)
            self.params, self.opt_state = self.optimizer.compiled_update(params, grads,
                                                                         self.opt_state)
            return
        params, slots, coefficients, mask, spare = inputs
        del inputs
        ps, treedef = tree_flatten(params)
        gs = tree_leaves_like(treedef, grads, "Model.fit", "the gradients")
        if guarded:
            program = self._program("update", self.optimizer._apply, (4,), (2,))
            into = list(spare) + [None] * (len(ps) * len(slots))
            new_ps, new_slots = program.call_into(into, ps, gs, slots, coefficients, mask)
            self.last_finite = (self.params, self.state)
        else:
            program = self._program("unguarded_update", self.optimizer._apply, (4,),
                                    (0, 2))
            new_ps, new_slots = program(ps, gs, slots, coefficients, mask)
        del params, ps, slots, spare
        self.opt_state = self.optimizer.step_state(self.opt_state, self.params, new_slots)
        self.params = tree_unflatten(treedef, [np.asarray(a) for a in new_ps])

    def _first_order_step(self) -> Callable:
        """A step for the first-order optimizers: gradient, then ``optimizer.update``.

        In a data-parallel step each rank differentiates its share's mean loss (plus the
        penalty) weighted by n_rank / N, so the weighted gradients sum to the global batch's
        mean gradient exactly, uneven shares included; the loss and the metric sums travel in
        the same allreduce as the gradients (one message per dtype). Compiled (jit), the
        gradient step and the update are two programs and the allreduce runs between them,
        in the same order on every rank."""
        gradient_step = self._program("gradient_step", self._gradient_step, (6, 7, 8))
        compiled = getattr(self.optimizer, "compiled_update", None)
        update = compiled if self.jit and compiled is not None else self.optimizer.update
        step_inputs = getattr(self.optimizer, "step_inputs", None) if self.jit else None
        fusion: dict = {"packed": None, "offset": 0}  # the data-parallel gradient buffer
        guarded = self._guarded  # a TerminateOnNaN may stop this fit at a non-finite loss

        def step(xb, yb, stream, shard):
            # no reference to the parameters here before the fused step: it writes over them
            # only when the model alone holds them
            state, comm = self.state, shard.comm
            seed_epoch = np.array([stream.seed, stream.epoch], dtype=np.int64)
            inputs = self._fused_inputs(guarded) if step_inputs and comm.size == 1 else None
            if inputs is not None:  # one program: gradients and the update, in place
                params, slots, coefficients, mask, spare = inputs
                del inputs
                if guarded:  # the slots and the spare leaves are written over
                    training_step = self._program("training_step", self._training_step, (8,),
                                                  (6, 9))
                    results = training_step(params, xb, yb, state, seed_epoch, stream.indices,
                                            slots, coefficients, mask, spare)
                else:  # the parameters and the slots are
                    training_step = self._program("unguarded_training_step",
                                                  self._training_step, (8,), (0, 6))
                    results = training_step(params, xb, yb, state, seed_epoch, stream.indices,
                                            slots, coefficients, mask)
                del slots, spare
                loss, new_state, out, new_params, new_slots = results
                del results
                loss = float(loss)
                metric_sums = self._metric_sums(yb, out)

                def apply_fused():
                    if guarded:
                        self.last_finite = (self.params, state)
                    self.opt_state = self.optimizer.step_state(self.opt_state, new_params,
                                                               new_slots)
                    self.params = tree_map(np.asarray, new_params)
                    self.state = new_state if new_state else state

                return loss, metric_sums, apply_fused
            params = self.params
            if comm.size == 1:
                loss, new_state, out, grads = gradient_step(
                    params, xb, yb, state, seed_epoch, stream.indices, None, 0, 1.0)
                loss = float(loss)
                metric_sums = self._metric_sums(yb, out)
            else:
                args = (params, xb, yb, state, seed_epoch, stream.indices, comm, shard.total,
                        shard.fraction)
                packed, offset = fusion["packed"], fusion["offset"]
                call_into = getattr(gradient_step, "call_into", None)
                if packed is not None and call_into is not None:
                    # the compiled step writes each gradient straight into its slice of the
                    # allreduce buffer: no packing copy (the update reads the sums before the
                    # next step writes the buffer again)
                    loss, new_state, out, grads = call_into([None] * offset + packed.views,
                                                            *args)
                else:
                    loss, new_state, out, grads = gradient_step(*args)
                if packed is None or not packed.fits(grads):
                    packed = fusion["packed"] = PackedTree(grads)
                    fusion["offset"] = len(tree_flatten((loss, new_state, out))[0])
                grads = comm.allreduce_packed(packed, grads)
                stats = comm.allreduce(np.array([float(loss),
                                                 *self._metric_sums(yb, out).values()]),
                                       workspace="Model.fit")
                loss = float(stats[0])
                metric_sums = dict(zip((name for name, _ in self.metric_fns),
                                       map(float, stats[1:])))

            if step_inputs is not None and comm.size > 1:  # compiled: in place, as above
                del params, args  # (the update finds the parameters held by the model alone)

                def apply_in_place():
                    self._update_in_place(grads, guarded)
                    self.state = new_state if new_state else state

                return loss, metric_sums, apply_in_place

            def apply_update():
                if guarded:
                    self.last_finite = (params, state)
                self.params, self.opt_state = update(params, grads, self.opt_state)
                self.state = new_state if new_state else state

            return loss, metric_sums, apply_update

        return step

    # -- inference ---------------------------------------------------------------------------
    def _inference(self, params: Any, state: Any, x: Any) -> Any:
        return self.forward(params, x, state=state, training=False)[0]

    def _local_outputs(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        forward = self._program("inference", self._inference)
        outs = [np.asarray(forward(self.params, self.state,
                                   x[i:i + batch_size].astype(self.dtype, copy=False)))
                for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, *self.output_shape_), self.dtype)

    def _inference_comm(self, distributed: Any, x: np.ndarray, who: str,
                        y: np.ndarray | None = None) -> Any:
        comm = parallel.communicator_for(distributed, who)
        if comm.size > 1:
            comm.rendezvous(who)
            facts = {"inputs": distributed_fingerprint_rows(x),
                     "parameters": tree_digest(self.params)}
            if y is not None:
                facts["targets"] = distributed_fingerprint_rows(y)
            check_same(comm, facts, who)
        return comm

    def predict(self, x: Any, batch_size: int = 1024, distributed: Any = "auto") -> np.ndarray:
        """Outputs of the network in evaluation mode, computed batch by batch (a model not
        built yet is built from the inputs' shape). Under MPI (``distributed="auto"``) every
        rank computes its share of x and every rank gets all the outputs; every rank must call
        it with the same x (``distributed=False`` for one rank's own inputs)."""
        _check_batch_size(batch_size, "predict")
        x = self._inputs(x, "predict")
        comm = self._inference_comm(distributed, x, "Model.predict")
        if comm.size == 1:
            return self._local_outputs(x, batch_size)
        with fail_together(comm):
            lo, hi = shard_bounds(len(x), comm.rank, comm.size)
            return comm.allgather_rows(self._local_outputs(x[lo:hi], batch_size))

    def evaluate(self, x: Any, y: Any, batch_size: int = 1024,
                 distributed: Any = "auto") -> dict[str, float]:
        """{"loss": ..., metric: ...} on (x, y) in evaluation mode (loss includes penalties).
        Under MPI every rank evaluates its share, and the figures are global: sums of losses
        and of metric counts over all ranks divided by the number of samples, never a mean
        of the ranks' means."""
        self._require_compiled("evaluate")
        _check_batch_size(batch_size, "evaluate")
        x = self._inputs(x, "evaluate")
        self._prepare(x, "evaluate")
        y = self._targets(y, len(x), "evaluate")
        if len(x) == 0:
            raise ValueError("Model.evaluate: expected at least one sample, got 0")
        comm = self._inference_comm(distributed, x, "Model.evaluate", y)
        if comm.size == 1:
            out = self._local_outputs(x, batch_size)
            result = {"loss": float(self._loss(y, out) + self.penalty(self.params))}
            for name, fn in self.metric_fns:
                result[name] = self._metric(fn, y, out)
            return result
        with fail_together(comm):
            lo, hi = shard_bounds(len(x), comm.rank, comm.size)
            sums = np.zeros(1 + len(self.metric_fns))
            if hi > lo:
                out = self._local_outputs(x[lo:hi], batch_size)
                sums[0] = float(self._loss(y[lo:hi], out)) * (hi - lo)
                sums[1:] = list(self._metric_sums(y[lo:hi], out).values())
            sums = comm.allreduce(sums) / len(x)
            result = {"loss": float(sums[0] + self.penalty(self.params))}
            result.update({name: float(v) for (name, _), v in zip(self.metric_fns, sums[1:])})
            return result

    def __call__(self, x: Any, training: bool | None = None, rng: Any = None) -> Any:
        """The network on x (built from x's shape on first use, as Keras builds a model)."""
        if not self.built:
            self._inputs(x, "__call__")
        return super().__call__(x, training, rng)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str, all_ranks: bool = False) -> None:
        """Architecture (JSON) and weights (npz) in one file, written atomically, with the
        optimizer state and ``training_progress`` when there are. Classes and
        functions of one's own (layers, losses, metrics, optimizers, activations) are saved by
        name (``load_model(path, custom_objects=...)`` rebuilds them); what no name can bring
        back (a lambda, two objects of one name, a config that does not rebuild the object) is
        refused before any file is written (pearlnet.train.io).

        After or during a data-parallel fit only rank 0 writes (the replicas are identical;
        every rank may call it); ``all_ranks=True`` writes on every rank that calls it (a path
        of each rank's own). Call ``distributed.world().barrier()`` before another rank reads
        the file."""
        from .io import save_model

        comm = self._comm
        if comm is not None and comm.size > 1 and comm.rank != 0 and not all_ranks:
            return
        save_model(self, path)


def pnp_len(x: Any) -> int:
    """The number of rows of an array or a traced array."""
    return int(np.shape(x)[0]) if not hasattr(x, "shape") else int(x.shape[0])


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
