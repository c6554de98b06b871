"""Saving and loading models: one .npz file holding the architecture as JSON and the arrays.

Arrays are stored under their tree paths ("params/dense/W", "state/batchnorm/mean",
"opt/m/dense/W"). The file is written to a temporary name in the same folder and moved into
place with ``os.replace``, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pearlnet._files import replacing

__all__ = ["save_model", "load_model"]

FORMAT = "pearlnet-model/1"


def _flatten(prefix: str, tree: Any, out: dict) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if "/" in str(key):
                raise ValueError(f"save_model: key {key!r} contains '/'")
            _flatten(f"{prefix}/{key}", value, out)
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            _flatten(f"{prefix}/#{i}", value, out)
    elif tree is not None:
        out[prefix] = np.asarray(tree)


def _unflatten(prefix: str, arrays: dict) -> Any:
    tree: dict = {}
    start = prefix + "/"
    for key, value in arrays.items():
        if not key.startswith(start):
            continue
        node = tree
        parts = key[len(start):].split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.startswith("#") for k in node):
        return [_lists(node[f"#{i}"]) for i in range(len(node))]
    return {k: _lists(v) for k, v in node.items()}


def _layer_registry() -> dict[str, type]:
    """Every layer class pearlnet.nn exports (dense, convolutional, recurrent), by name."""
    import pearlnet.nn as nn
    from pearlnet.nn.module import Module

    return {name: obj for name in nn.__all__ if isinstance(obj := getattr(nn, name), type)
            and issubclass(obj, Module)}


def _optimizer_config(opt: Any) -> dict | None:
    """{"class", "config"} for JSON, schedules included; None (with a warning) when the
    optimizer holds something JSON cannot carry, such as a callable decay_mask."""
    from pearlnet.optim import ClipByGlobalNorm
    from pearlnet.optim.schedules import Schedule

    if opt is None:
        return None
    if isinstance(opt, ClipByGlobalNorm):  # a wrapper: its own setting and the wrapped one's
        inner = _optimizer_config(opt.optimizer)
        return None if inner is None else {"class": "ClipByGlobalNorm",
                                           "config": {"max_norm": opt.max_norm}, "inner": inner}
    if not hasattr(opt, "get_config"):
        warnings.warn(f"save_model: the optimizer {opt!r} has no get_config and is not saved; "
                      f"the weights are", RuntimeWarning, stacklevel=3)
        return None
    config = {k: {"__schedule__": v.get_config()} if isinstance(v, Schedule) else v
              for k, v in opt.get_config().items()}
    try:
        json.dumps(config)
    except TypeError as err:
        warnings.warn(f"save_model: the optimizer {opt!r} is not saved ({err}); the weights "
                      f"are", RuntimeWarning, stacklevel=3)
        return None
    return {"class": type(opt).__name__, "config": config}


def _optimizer_from_config(spec: dict | None) -> Any:
    from pearlnet import optim
    from pearlnet.optim.schedules import from_config

    if spec is None:
        return None
    if "inner" in spec:
        inner = _optimizer_from_config(spec["inner"])
        return None if inner is None else optim.ClipByGlobalNorm(inner, **spec["config"])
    cls = getattr(optim, spec["class"], None)
    if cls is None:
        return None
    config = {k: from_config(v["__schedule__"]) if isinstance(v, dict) and "__schedule__" in v
              else v for k, v in spec["config"].items()}
    # HessianFree's lr (the step factor a LearningRateScheduler sets) is an attribute, not a
    # constructor argument
    late = {"lr": config.pop("lr")} if "lr" in config and not _takes(cls, "lr") else {}
    opt = cls(**config)
    for name, value in late.items():
        setattr(opt, name, value)
    return opt


def _takes(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` accepts the keyword argument ``name``."""
    params = inspect.signature(cls).parameters.values()
    return any(p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               or p.kind == p.VAR_KEYWORD for p in params)


def save_model(model: Any, path: str | os.PathLike) -> None:
    model._require_built()
    config = {
        "format": FORMAT,
        "input_shape": list(model.input_shape),
        "dtype": str(model.dtype),
        "layers": [{"class": type(layer).__name__, "name": layer.name,
                    "dtype": str(layer.dtype), "config": layer.get_config()}
                   for layer in model.layers],
        "compile": None if model.loss_fn is None else {
            "loss": model.loss_name, "metrics": [name for name, _ in model.metric_fns],
            "from_logits": model.from_logits,
            "optimizer": _optimizer_config(model.optimizer)},
    }
    arrays: dict[str, np.ndarray] = {}
    _flatten("params", model.params, arrays)
    _flatten("state", model.state, arrays)
    if model.opt_state is not None:
        _flatten("opt", model.opt_state, arrays)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, __config__=np.array(json.dumps(config)), **arrays)


def load_model(path: str | os.PathLike) -> Any:
    """A Model saved by ``Model.save``: same layers, weights, state, and (when it was compiled)
    loss, metrics and optimizer with its state, so training can resume."""
    from pearlnet.train.model import Model

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(str(data["__config__"]))
            arrays = {k: data[k] for k in data.files if k != "__config__"}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"load_model: {path} is not a pearlnet model file ({err})") from err
    if config.get("format") != FORMAT:
        raise ValueError(f"load_model: {path} has format {config.get('format')!r}, expected "
                         f"{FORMAT!r}")
    registry = _layer_registry()
    layers = []
    for spec in config["layers"]:
        cls = registry.get(spec["class"])
        if cls is None:
            raise ValueError(f"load_model: unknown layer class {spec['class']!r}")
        layer = cls(**spec["config"])
        layer.name = spec["name"]
        if "dtype" in spec:  # not in files written before it was saved
            _set_dtype(layer, np.dtype(spec["dtype"]))
        layers.append(layer)
    model = Model(layers)
    model.input_shape = tuple(config["input_shape"])
    model.dtype = np.dtype(config["dtype"])
    model.build_model(seed=0)
    params, state = _unflatten("params", arrays), _unflatten("state", arrays)
    _check_same_shapes(model.params, params, path)
    model.params, model.state = params, state
    for layer in model.layers:
        layer.params = params.get(layer.name, {})
        layer.state = state.get(layer.name, {})
    comp = config.get("compile")
    if comp is not None and comp["loss"] is not None:
        opt = _optimizer_from_config(comp["optimizer"])
        model.compile(loss=comp["loss"], optimizer=opt if opt is not None else "sgd",
                      metrics=comp["metrics"], from_logits=comp["from_logits"])
        opt_state = _unflatten("opt", arrays)
        if opt_state:
            model.opt_state = _restore_scalars(opt_state)
    return model


def _set_dtype(layer: Any, dtype: np.dtype) -> None:
    """The layer's dtype, given to the layers it runs (Bidirectional's) too: a constructor only
    records it."""
    from pearlnet.nn.module import Module

    for part in (layer, *(v for v in vars(layer).values() if isinstance(v, Module))):
        part.dtype = dtype


def _restore_scalars(tree: Any) -> Any:
    """0-d arrays saved from Python numbers (a step counter) come back as Python numbers."""
    if isinstance(tree, dict):
        return {k: _restore_scalars(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_restore_scalars(v) for v in tree]
    if isinstance(tree, np.ndarray) and tree.ndim == 0 and tree.dtype.kind in "iu":
        return int(tree)
    return tree


def _check_same_shapes(expected: Any, got: Any, path: Path) -> None:
    from pearlnet.autodiff import tree_flatten

    e_leaves, e_def = tree_flatten(expected)
    g_leaves, g_def = tree_flatten(got)
    if e_def != g_def or any(a.shape != b.shape for a, b in zip(e_leaves, g_leaves)):
        raise ValueError(f"load_model: the weights in {path} do not fit the saved architecture")

