"""Saving and loading models: one .npz file holding the architecture as JSON and the arrays.

Arrays are stored under their tree paths ("params/dense/W", "state/batchnorm/mean",
"opt/m/dense/W"). The file is written to a temporary name in the same folder and moved into
place with ``os.replace``, so a crash never leaves a half-written model.

What the file names, and how ``load_model`` gets it back (Keras' rule):

- pearlnet's own layers, losses, metrics, optimizers and schedules: by name, by themselves.
- A class or function of one's own (a Module, optimizer or Schedule subclass; a loss, metric,
  learning-rate or decay_mask function; a layer's activation, or any function a layer's
  ``get_config()`` returns): by its ``__name__``, marked as the user's, with the class's
  ``get_config()``. ``load_model(path, custom_objects={"MyAdam": MyAdam})`` rebuilds
  it; without it, load_model raises a ValueError naming it. A same-named library object never
  stands in for it.
- What no name can bring back is refused by ``Model.save`` before any file is written: a lambda
  or a callable object without a ``__name__``, two objects of one name (a class, a loss, an
  activation...), a config that is not JSON data (functions aside) or does not rebuild the
  object (``cls(**get_config())`` fails, or builds other weights or another optimizer), a
  layer name or parameter key starting with "#" (the file's mark of a list position) or
  holding "/".
- Not saved: a Dense/Conv2D initializer without a name (see ``Dense``); the weights are.
- Refused by the layer's ``get_config()`` itself: a library activation with other defaults
  (see ``pearlnet.nn.activations.config_name``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pearlnet._files import replacing

__all__ = ["save_model", "load_model"]

FORMAT = "pearlnet-model/1"


# ---- array trees -----------------------------------------------------------------------------
def _flatten(prefix: str, tree: Any, out: dict) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str) or key.startswith("#") or "/" in key:
                raise ValueError(f"Model.save: cannot save the entry {key!r} of {prefix}: "
                                 f"expected a str key that neither starts with '#' (the "
                                 f"file's mark of a list position) nor holds '/' (its path "
                                 f"separator)")
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


# ---- names: pearlnet's own, or the user's ----------------------------------------------------
def _layer_registry() -> dict[str, type]:
    """Every layer class pearlnet.nn exports (dense, convolutional, recurrent, Sequential), and
    Model, by name."""
    import pearlnet.nn as nn
    from pearlnet.nn.module import Module
    from pearlnet.train.model import Model

    return {"Model": Model, **{name: obj for name in nn.__all__
                               if isinstance(obj := getattr(nn, name), type)
                               and issubclass(obj, Module)}}


def _library_class(module: Any, base: type | None = None) -> Callable[[str], type | None]:
    def lookup(name: str) -> type | None:
        obj = getattr(module, name, None)
        ok = isinstance(obj, type) and (base is None or issubclass(obj, base))
        return obj if ok else None
    return lookup


def _library_function(get: Callable) -> Callable[[str], Callable | None]:
    def lookup(name: str) -> Callable | None:
        try:
            fn = get(name)
        except ValueError:
            return None
        return fn[1] if isinstance(fn, tuple) else fn  # metrics.get gives (name, fn)
    return lookup


def _losses() -> Callable[[str], Callable | None]:
    from pearlnet.nn import losses

    return _library_function(losses.get)


def _metrics() -> Callable[[str], Callable | None]:
    from . import metrics

    return _library_function(metrics.get)


def _optimizers() -> Callable[[str], type | None]:
    from pearlnet import optim

    return _library_class(optim)


def _schedules() -> Callable[[str], type | None]:
    from pearlnet.optim import schedules

    return _library_class(schedules, schedules.Schedule)


def _custom_name(obj: Any, what: str, customs: dict[str, Any]) -> str:
    """The name a class or function of one's own is saved under (load_model finds it in
    custom_objects), recorded in ``customs``."""
    name = getattr(obj, "__name__", None)
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"Model.save: cannot save {what} {obj!r}: load_model rebuilds a "
                         f"function or class of one's own by its __name__ (from "
                         f"custom_objects), and this has no usable one (a lambda or a "
                         f"callable object); use a function defined with def")
    if customs.setdefault(name, obj) is not obj:
        raise ValueError(f"Model.save: cannot save {what} {obj!r}: {customs[name]!r}, also "
                         f"saved, has the same name {name!r}, and custom_objects maps a name "
                         f"to one object")
    return name


class _Objects:
    """What a file names, looked up: pearlnet's own by name (unless marked as the user's), the
    user's in ``custom_objects``. ``who`` starts every message: load_model, or Model.save
    rebuilding what it is about to write."""

    def __init__(self, custom_objects: Mapping[str, Any], who: str, compiling: bool) -> None:
        self.custom, self.who, self.compiling = custom_objects, who, compiling

    def get(self, name: str, kind: str, library: Callable[[str], Any], custom: bool,
            check: Callable[[Any], bool], expected: str, architecture: bool = False) -> Any:
        """``architecture``: the layers need it, so compile=False does not do without it."""
        obj = None if custom else library(name)
        if obj is not None:
            return obj
        if name not in self.custom:
            hint = " (or compile=False for the architecture and weights alone)" \
                if self.compiling and not architecture else ""
            raise ValueError(f"{self.who}: the {kind} {name!r} is not part of pearlnet: pass "
                             f"custom_objects={{{name!r}: {name}}} to load_model{hint}")
        obj = self.custom[name]
        if not check(obj):
            raise ValueError(f"{self.who}: custom_objects[{name!r}] must be {expected} (the "
                             f"{kind} {name!r}), got {obj!r}")
        return obj

    def function(self, spec: Any, kind: str, library: Callable[[str], Any],
                 architecture: bool = False) -> Callable:
        """A function saved as its library name or as {"__function__": name}."""
        custom = isinstance(spec, dict)
        return self.get(spec["__function__"] if custom else spec, kind, library, custom,
                        callable, "a function", architecture)

    def construct(self, cls: type, kwargs: dict, what: str) -> Any:
        try:
            return cls(**kwargs)
        except Exception as err:
            raise ValueError(f"{self.who}: cannot rebuild {what} from its saved config "
                             f"{kwargs!r}: {cls.__name__}(**config) raises "
                             f"{type(err).__name__}: {err} (its get_config() must return the "
                             f"constructor's arguments)") from err


def _json(value: Any, what: str) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Model.save: cannot save {what}: {value!r} is not JSON data "
                         f"({err})") from None
    return value


# ---- layers ----------------------------------------------------------------------------------
def _layer_spec(layer: Any, customs: dict[str, Any]) -> dict:
    from pearlnet.nn.module import Sequential

    name = layer.name
    if not isinstance(name, str) or name.startswith("#") or "/" in name:
        raise ValueError(f"Model.save: cannot save the {type(layer).__name__} layer named "
                         f"{name!r}: expected a str name that neither starts with '#' (the "
                         f"file's mark of a list position) nor holds '/' (its path "
                         f"separator); rename the layer")
    cls = type(layer)
    spec: dict = {"class": cls.__name__, "name": name, "dtype": str(layer.dtype)}
    if _layer_registry().get(cls.__name__) is not cls:
        _custom_name(cls, f"the layer class of {layer.describe()}", customs)
        spec["custom"] = True
    if isinstance(layer, Sequential):
        spec["config"] = {"layers": [_layer_spec(inner, customs) for inner in layer.layers]}
    else:
        config = _config_spec(layer.get_config(), "config", layer.describe(), customs)
        spec["config"] = _json(config, f"the config of {layer.describe()}")
    return spec


def _config_spec(value: Any, key: str, who: str, customs: dict[str, Any]) -> Any:
    """A layer's config with each function in it (an activation of one's own, as
    ``activations.config_name`` gives it) as {"__function__": name}, at any depth (a
    Bidirectional holds its layer's config)."""
    if isinstance(value, dict):
        return {k: _config_spec(v, k, who, customs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_config_spec(v, key, who, customs) for v in value]
    if callable(value) and not isinstance(value, type):
        return {"__function__": _custom_name(value, f"the {key} of {who}", customs)}
    return value


def _config_from_spec(value: Any, key: str, objects: _Objects) -> Any:
    if isinstance(value, dict) and "__function__" in value:
        return objects.function(value, f"{key} function", lambda name: None, architecture=True)
    if isinstance(value, dict):
        return {k: _config_from_spec(v, k, objects) for k, v in value.items()}
    if isinstance(value, list):
        return [_config_from_spec(v, key, objects) for v in value]
    return value


def _layer_from_spec(spec: dict, objects: _Objects) -> Any:
    from pearlnet.nn.module import Module, Sequential

    cls = objects.get(spec["class"], "layer class", _layer_registry().get,
                      spec.get("custom", False),
                      lambda c: isinstance(c, type) and issubclass(c, Module),
                      "a subclass of pearlnet.nn.Module", architecture=True)
    what = f"the layer {spec['name']!r} ({cls.__name__})"
    if issubclass(cls, Sequential) and "layers" in spec["config"]:
        layer = objects.construct(cls, {"layers": [_layer_from_spec(s, objects)
                                                   for s in spec["config"]["layers"]]}, what)
    else:
        layer = objects.construct(cls, _config_from_spec(spec["config"], "config", objects),
                                  what)
    layer.name = spec["name"]
    if "dtype" in spec:  # not in files written before it was saved
        _set_dtype(layer, np.dtype(spec["dtype"]))
    return layer


def _set_dtype(layer: Any, dtype: np.dtype) -> None:
    """The layer's dtype, given to the layers it runs (Bidirectional's) too: a constructor only
    records it."""
    from pearlnet.nn.module import Module

    for part in (layer, *(v for v in vars(layer).values() if isinstance(v, Module))):
        part.dtype = dtype


def _assign(layers: list, params: dict, state: dict) -> None:
    """Each layer's share of the loaded params and state (a nested Sequential's layers too)."""
    from pearlnet.nn.module import Sequential

    for layer in layers:
        layer.params = params.get(layer.name, {})
        layer.state = state.get(layer.name, {})
        if isinstance(layer, Sequential):
            _assign(layer.layers, layer.params, layer.state)


def _shapes(tree: Any) -> tuple:
    from pearlnet.autodiff import tree_flatten

    leaves, treedef = tree_flatten(tree)
    return treedef, [np.shape(leaf) for leaf in leaves]


def _check_layer(layer: Any, spec: dict, objects: _Objects) -> None:
    """Model.save: the layer rebuilds from ``spec``; a class of one's own, with the shapes of
    its weights too (pearlnet's own layers are tested for that)."""
    from pearlnet.nn.module import Sequential

    twin = _layer_from_spec(spec, objects)
    if spec.get("custom"):
        twin.init(0, input_shape=layer.input_shape)
        if (_shapes(twin.params), _shapes(twin.state)) != (_shapes(layer.params),
                                                           _shapes(layer.state)):
            raise ValueError(f"Model.save: cannot save {layer.describe()}: rebuilt from its "
                             f"get_config() {spec['config']}, it has weights of shapes "
                             f"{_shapes(twin.params)[1]}, not {_shapes(layer.params)[1]} (its "
                             f"get_config() must return the constructor's arguments)")
    if isinstance(layer, Sequential):
        for inner, inner_spec in zip(layer.layers, spec["config"]["layers"]):
            _check_layer(inner, inner_spec, objects)


# ---- optimizers and schedules ----------------------------------------------------------------
def _value_spec(value: Any, what: str, customs: dict[str, Any]) -> Any:
    """An optimizer setting or schedule argument for JSON: a schedule as its spec, a function
    of one's own as {"__function__": name}."""
    from pearlnet.optim.schedules import Schedule

    if isinstance(value, Schedule):
        return {"__schedule__": _schedule_spec(value, what, customs)}
    if callable(value):
        return {"__function__": _custom_name(value, what, customs)}
    return _json(value, what)


def _schedule_spec(schedule: Any, what: str, customs: dict[str, Any]) -> dict:
    from pearlnet.optim.schedules import Schedule

    cls = type(schedule)
    spec: dict = {"schedule": cls.__name__}
    if _schedules()(cls.__name__) is not cls:
        _custom_name(cls, f"{what}, a Schedule class of one's own,", customs)
        spec["custom"] = True
    args = getattr(schedule, "_args", None)
    if not isinstance(args, dict):
        raise ValueError(f"Model.save: cannot save {what}, a {cls.__name__}: a Schedule keeps "
                         f"its constructor's arguments in self._args (a dict), got {args!r}")
    # a nested schedule is its bare spec (as Schedule.get_config writes it)
    spec["args"] = {k: _schedule_spec(v, f"{what}'s {k}", customs) if isinstance(v, Schedule)
                    else _value_spec(v, f"{what}'s {k}", customs) for k, v in args.items()}
    return spec


def _value_from_spec(key: str, value: Any, objects: _Objects) -> Any:
    if isinstance(value, dict) and "__schedule__" in value:
        return _schedule_from_spec(value["__schedule__"], objects)
    if isinstance(value, dict) and "__function__" in value:
        return objects.function(value, f"{key} function", lambda name: None)
    return value


def _schedule_from_spec(spec: dict, objects: _Objects) -> Any:
    from pearlnet.optim.schedules import Schedule

    cls = objects.get(spec["schedule"], "schedule class", _schedules(),
                      spec.get("custom", False),
                      lambda c: isinstance(c, type) and issubclass(c, Schedule),
                      "a subclass of pearlnet.optim.schedules.Schedule")
    args = {k: _schedule_from_spec(v, objects) if isinstance(v, dict) and "schedule" in v
            else _value_from_spec(k, v, objects) for k, v in spec["args"].items()}
    return objects.construct(cls, args, f"the schedule {cls.__name__}")


def _optimizer_spec(opt: Any, customs: dict[str, Any]) -> dict:
    from pearlnet.optim import ClipByGlobalNorm

    cls = type(opt)
    if cls is ClipByGlobalNorm:  # a wrapper: its own setting and the wrapped one's
        return {"class": "ClipByGlobalNorm", "config": {"max_norm": opt.max_norm},
                "inner": _optimizer_spec(opt.optimizer, customs)}
    what = f"the optimizer {cls.__name__}"
    if not callable(getattr(opt, "get_config", None)):
        raise ValueError(f"Model.save: cannot save {what}: it has no get_config() to rebuild "
                         f"it from; give the class a get_config() returning its constructor's "
                         f"arguments")
    spec: dict = {"class": cls.__name__}
    if _optimizers()(cls.__name__) is not cls:
        _custom_name(cls, f"{what}, a class of one's own,", customs)
        spec["custom"] = True
    spec["config"] = {k: _value_spec(v, f"{what}'s {k}", customs)
                      for k, v in opt.get_config().items()}
    return spec


def _optimizer_from_spec(spec: dict, objects: _Objects) -> Any:
    from pearlnet import optim

    if "inner" in spec:
        return optim.ClipByGlobalNorm(_optimizer_from_spec(spec["inner"], objects),
                                      **spec["config"])
    cls = objects.get(spec["class"], "optimizer class", _optimizers(),
                      spec.get("custom", False), lambda c: isinstance(c, type), "a class")
    config = {k: _value_from_spec(k, v, objects) for k, v in spec["config"].items()}
    return objects.construct(cls, config, f"the optimizer {cls.__name__}")


def _check_optimizer(opt: Any, spec: dict, objects: _Objects) -> None:
    """Model.save: the saved spec rebuilds an optimizer with the same spec."""
    twin = _optimizer_from_spec(spec, objects)
    again = json.loads(json.dumps(_optimizer_spec(twin, {})))
    if again != spec:
        raise ValueError(f"Model.save: cannot save the optimizer {opt!r}: rebuilt from its "
                         f"get_config() it is {twin!r}, saved as {again}, not {spec} (its "
                         f"get_config() must return the constructor's arguments)")


# ---- the file --------------------------------------------------------------------------------
def _compile_spec(model: Any, customs: dict[str, Any]) -> dict | None:
    if model.loss_fn is None:
        return None
    loss: Any = model.loss_name
    if not (isinstance(loss, str) and _losses()(loss) is model.loss_fn):
        loss = {"__function__": _custom_name(model.loss_fn, "the loss", customs)}
    metrics = [name if _metrics()(name) is fn else
               {"__function__": _custom_name(fn, f"the metric {name!r}", customs)}
               for name, fn in model.metric_fns]
    return {"loss": loss, "metrics": metrics, "from_logits": model.from_logits,
            "optimizer": _optimizer_spec(model.optimizer, customs)}


def save_model(model: Any, path: str | os.PathLike) -> None:
    """``Model.save``: see the module's docstring for what is saved, and what is refused (a
    ValueError, raised before any file is opened)."""
    model._require_built()
    customs: dict[str, Any] = {}
    config = {
        "format": FORMAT,
        "input_shape": list(model.input_shape),
        "dtype": str(model.dtype),
        "layers": [_layer_spec(layer, customs) for layer in model.layers],
        "compile": _compile_spec(model, customs),
    }
    text = json.dumps(config)
    # rebuild what the file describes, as load_model will, so a file it cannot read is never
    # written
    saved = json.loads(text)
    objects = _Objects(customs, "Model.save", compiling=False)
    for layer, spec in zip(model.layers, saved["layers"]):
        _check_layer(layer, spec, objects)
    if saved["compile"] is not None:
        _check_optimizer(model.optimizer, saved["compile"]["optimizer"], objects)
    arrays: dict[str, np.ndarray] = {}
    _flatten("params", model.params, arrays)
    _flatten("state", model.state, arrays)
    if model.opt_state is not None:
        _flatten("opt", model.opt_state, arrays)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, __config__=np.array(text), **arrays)


def load_model(path: str | os.PathLike, custom_objects: Mapping[str, Any] | None = None,
               compile: bool = True) -> Any:
    """A Model saved by ``Model.save``: same layers, weights, state, and (when it was compiled)
    loss, metrics and optimizer with its state, so training can resume.

    ``custom_objects`` maps the names of one's own classes and functions the model was saved
    with (a Module or optimizer subclass, a Schedule subclass, a loss, metric, learning-rate or
    decay_mask function, a layer's activation) to them, as in Keras: ``load_model(path,
    custom_objects={"MyAdam": MyAdam, "my_loss": my_loss, "my_act": my_act})``. A name the
    file needs and custom_objects lacks is a ValueError naming it. ``compile=False`` returns
    the model uncompiled: the architecture and the weights, without loss, metrics or
    optimizer (a layer's class or activation of one's own is still needed).
    """
    from pearlnet.train.model import Model

    if custom_objects is None:
        custom_objects = {}
    if not (isinstance(custom_objects, Mapping)
            and all(isinstance(k, str) for k in custom_objects)):
        raise ValueError(f"load_model: custom_objects must be a dict of names to classes or "
                         f"functions, got {custom_objects!r}")
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
    objects = _Objects(custom_objects, f"load_model: {path}", compiling=True)
    model = Model([_layer_from_spec(spec, objects) for spec in config["layers"]])
    model.input_shape = tuple(config["input_shape"])
    model.dtype = np.dtype(config["dtype"])
    model.build_model(seed=0)
    params, state = _unflatten("params", arrays), _unflatten("state", arrays)
    _check_same_shapes(model.params, params, path)
    model.params, model.state = params, state
    _assign(model.layers, params, state)
    comp = config.get("compile")
    if compile and comp is not None and comp["loss"] is not None:
        _compile(model, comp, objects, _unflatten("opt", arrays), path)
    return model


def _compile(model: Any, comp: dict, objects: _Objects, opt_state: Any, path: Path) -> None:
    loss = objects.function(comp["loss"], "loss", _losses())
    metrics = [objects.function(m, "metric", _metrics()) for m in comp["metrics"]]
    if comp["optimizer"] is None:  # an older pearlnet saved the model without it
        warnings.warn(f"load_model: {path} was saved without its optimizer; the model is "
                      f"compiled with SGD() and the saved optimizer state is not used",
                      RuntimeWarning, stacklevel=3)
        model.compile(loss=loss, optimizer="sgd", metrics=metrics,
                      from_logits=comp["from_logits"])
        return
    opt = _optimizer_from_spec(comp["optimizer"], objects)
    model.compile(loss=loss, optimizer=opt, metrics=metrics, from_logits=comp["from_logits"])
    if opt_state:
        model.opt_state = _restore_scalars(opt_state)


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
