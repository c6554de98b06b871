"""Saving and loading models: one .npz file holding the architecture as JSON and the arrays.

Arrays are stored under their tree paths ("params/dense/W", "state/batchnorm/mean",
"opt/m/dense/W"); the JSON holds the layers, the compile settings and, once a fit has run,
``Model.training_progress`` (the run's seed and the epochs done: a fit resumes from them). The
file is written to a temporary name in the same folder and moved into
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

``load_model`` trusts nothing in the file: a missing path is a FileNotFoundError, a folder an
IsADirectoryError, and anything that is not what ``Model.save`` writes (an empty, truncated or
damaged file, a .npy array, a config that is not JSON or lacks a key or holds a wrong type, an
array missing, extra, or of another shape or kind than the layer needs) one ValueError
"load_model: <path> is not a pearlnet model file: <why>". Arrays are matched to the rebuilt
model's parameters by their paths, never by their order in the file, and the loaded trees keep
the model's own key order (layer order).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pearlnet._files import read_npz, replacing

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
    """The tree the arrays under ``prefix`` spell (for a state no template describes: a custom
    optimizer's)."""
    tree: dict = {}
    start = prefix + "/"
    for key, value in arrays.items():
        if not key.startswith(start):
            continue
        node = tree
        *parents, last = key[len(start):].split("/")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _Malformed(f"its array {key!r} lies inside another array")
        if last in node:
            raise _Malformed(f"its array {key!r} is also the folder of other arrays")
        node[last] = value
    return _lists(tree, prefix)


def _lists(node: Any, path: str) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.startswith("#") for k in node):
        if set(node) != {f"#{i}" for i in range(len(node))}:
            raise _Malformed(f"its arrays under {path!r} are the list items {sorted(node)}, "
                             f"expected #0 to #{len(node) - 1}")
        return [_lists(node[f"#{i}"], f"{path}/#{i}") for i in range(len(node))]
    return {k: _lists(v, f"{path}/{k}") for k, v in node.items()}


_KINDS = {"f": "floating-point", "c": "complex", "i": "integer", "u": "integer", "b": "boolean"}


def _fill(template: Any, arrays: dict, prefix: str, used: set) -> Any:
    """``template`` (a tree the rebuilt model or optimizer made) with each leaf replaced by the
    file's array at the leaf's path, of its shape and kind (not cast: the dtype is the file's):
    matched by key, in the template's key order whatever the file's. None and empty containers
    are not saved, and come from the template."""
    if isinstance(template, dict):
        return {k: _fill(v, arrays, f"{prefix}/{k}", used) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        items = [_fill(v, arrays, f"{prefix}/#{i}", used) for i, v in enumerate(template)]
        return items if isinstance(template, list) else tuple(items)
    if template is None:
        return None
    want = np.asarray(template)
    kind = _KINDS.get(want.dtype.kind, str(want.dtype))
    article = "an" if kind[0] in "aeiou" else "a"
    if prefix not in arrays:
        raise _Malformed(f"it lacks the array {prefix!r} ({article} {kind} array of shape "
                         f"{want.shape})")
    got = arrays[prefix]
    used.add(prefix)
    if got.shape != want.shape or _KINDS.get(got.dtype.kind, str(got.dtype)) != kind:
        raise _Malformed(f"its array {prefix!r} is {got.dtype} of shape {got.shape}, expected "
                         f"{article} {kind} array of shape {want.shape}")
    return got


def _by_key(template: Any, tree: Any) -> Any:
    """``tree`` with each dict that has the keys of its counterpart in ``template`` in that
    one's key order."""
    if isinstance(template, dict) and isinstance(tree, dict) and set(template) == set(tree):
        return {k: _by_key(template[k], tree[k]) for k in template}
    if isinstance(template, (list, tuple)) and isinstance(tree, list) \
            and len(template) == len(tree):
        return [_by_key(a, b) for a, b in zip(template, tree)]
    return tree


# ---- what a file's config must hold ----------------------------------------------------------
class _Malformed(ValueError):
    """Why a file is not a pearlnet model file (what ``Model.save`` writes); load_model names
    the file."""


_REQUIRED = object()


def _brief(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is(value: Any, kind: type | tuple) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _object(spec: Any, where: str) -> dict:
    if not isinstance(spec, dict):
        raise _Malformed(f"{where} is {_brief(spec)}, expected a JSON object")
    return spec


def _field(spec: Any, key: str, kind: type | tuple, where: str, expected: str,
           default: Any = _REQUIRED) -> Any:
    """``spec[key]`` of a JSON object ``spec`` (found at ``where`` in the config), checked to
    be of ``kind``; ``default`` when the key is optional and absent."""
    _object(spec, where)
    if key not in spec:
        if default is _REQUIRED:
            raise _Malformed(f"{where} has no {key!r}")
        return default
    value = spec[key]
    if not _is(value, kind):
        raise _Malformed(f"{where}.{key} is {_brief(value)}, expected {expected}")
    return value


def _identifier(spec: Any, key: str, where: str, expected: str) -> str:
    """A class or function name (what Model.save writes: a Python identifier)."""
    name = _field(spec, key, str, where, expected)
    if not name.isidentifier():
        raise _Malformed(f"{where}.{key} is {_brief(name)}, expected {expected}")
    return name


def _dtype(text: str, where: str) -> np.dtype:
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        raise _Malformed(f"{where} is {_brief(text)}, expected the name of a numeric NumPy "
                         f"dtype such as 'float32'")
    return dtype


def _name(spec: Any, where: str) -> str:
    name = _field(spec, "name", str, where, "a layer name")
    if name.startswith("#") or "/" in name:
        raise _Malformed(f"{where}.name is {name!r}, expected a name that neither starts with "
                         f"'#' nor holds '/'")
    return name


def _distinct(layers: list, where: str) -> None:
    names = [layer.name for layer in layers]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _Malformed(f"{where} names two layers {twice[0]!r} (a layer's weights are "
                         f"found by its name)")


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

    def function(self, spec: Any, kind: str, library: Callable[[str], Any], where: str,
                 architecture: bool = False) -> Callable:
        """A function saved as its library name or as {"__function__": name} (at ``where``
        in the config)."""
        custom = isinstance(spec, dict)
        if custom:
            name = _identifier(spec, "__function__", where, "a function name")
        elif isinstance(spec, str) and spec.isidentifier():
            name = spec
        else:
            raise _Malformed(f"{where} is {_brief(spec)}, expected a {kind} name or "
                             f'{{"__function__": name}}')
        return self.get(name, kind, library, custom, callable, "a function", architecture)

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


def _config_from_spec(value: Any, key: str, objects: _Objects, where: str) -> Any:
    if isinstance(value, dict) and "__function__" in value:
        return objects.function(value, f"{key} function", lambda name: None, where,
                                architecture=True)
    if isinstance(value, dict):
        return {k: _config_from_spec(v, k, objects, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_config_from_spec(v, key, objects, f"{where}[{i}]")
                for i, v in enumerate(value)]
    return value


def _layer_from_spec(spec: Any, objects: _Objects, where: str) -> Any:
    """The layer ``spec`` (at ``where`` in the config) describes, its weights not yet set."""
    from pearlnet.nn.module import Module, Sequential

    class_name = _identifier(spec, "class", where, "a layer class name")
    name = _name(spec, where)
    custom = _field(spec, "custom", bool, where, "true or false", default=False)
    config = _field(spec, "config", dict, where, "a JSON object (the layer's arguments)")
    dtype = _field(spec, "dtype", str, where, "a dtype name", default=None)  # older files
    cls = objects.get(class_name, "layer class", _layer_registry().get, custom,
                      lambda c: isinstance(c, type) and issubclass(c, Module),
                      "a subclass of pearlnet.nn.Module", architecture=True)
    what = f"the layer {name!r} ({cls.__name__})"
    if issubclass(cls, Sequential) and "layers" in config:
        specs = _field(config, "layers", list, f"{where}.config", "a list of layers")
        layers = [_layer_from_spec(s, objects, f"{where}.config.layers[{i}]")
                  for i, s in enumerate(specs)]
        _distinct(layers, f"{where}.config.layers")
        layer = objects.construct(cls, {"layers": layers}, what)
    else:
        layer = objects.construct(cls, _config_from_spec(config, "config", objects,
                                                         f"{where}.config"), what)
    layer.name = name
    if dtype is not None:
        _set_dtype(layer, _dtype(dtype, f"{where}.dtype"))
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


def _shapes(tree: Any) -> Any:
    """The tree's shapes, dicts compared by key (their order aside), as load_model matches."""
    if isinstance(tree, dict):
        return {k: _shapes(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_shapes(v) for v in tree]
    return None if tree is None else np.shape(tree)


def _leaf_shapes(tree: Any) -> list:
    from pearlnet.autodiff import tree_flatten

    return [np.shape(leaf) for leaf in tree_flatten(tree)[0]]


def _check_layer(layer: Any, spec: dict, objects: _Objects, where: str) -> None:
    """Model.save: the layer rebuilds from ``spec``; a class of one's own, with the shapes of
    its weights too (pearlnet's own layers are tested for that)."""
    from pearlnet.nn.module import Sequential

    twin = _layer_from_spec(spec, objects, where)
    if spec.get("custom"):
        twin.init(0, input_shape=layer.input_shape)
        if (_shapes(twin.params), _shapes(twin.state)) != (_shapes(layer.params),
                                                           _shapes(layer.state)):
            raise ValueError(f"Model.save: cannot save {layer.describe()}: rebuilt from its "
                             f"get_config() {spec['config']}, it has weights of shapes "
                             f"{_leaf_shapes(twin.params)}, not {_leaf_shapes(layer.params)} "
                             f"(its get_config() must return the constructor's arguments)")
    if isinstance(layer, Sequential):
        for i, (inner, inner_spec) in enumerate(zip(layer.layers, spec["config"]["layers"])):
            _check_layer(inner, inner_spec, objects, f"{where}.config.layers[{i}]")


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


def _value_from_spec(key: str, value: Any, objects: _Objects, where: str) -> Any:
    if isinstance(value, dict) and "__schedule__" in value:
        return _schedule_from_spec(value["__schedule__"], objects, f"{where}.__schedule__")
    if isinstance(value, dict) and "__function__" in value:
        return objects.function(value, f"{key} function", lambda name: None, where)
    return value


def _schedule_from_spec(spec: Any, objects: _Objects, where: str) -> Any:
    from pearlnet.optim.schedules import Schedule

    name = _identifier(spec, "schedule", where, "a schedule class name")
    custom = _field(spec, "custom", bool, where, "true or false", default=False)
    saved = _field(spec, "args", dict, where, "a JSON object (the schedule's arguments)")
    cls = objects.get(name, "schedule class", _schedules(), custom,
                      lambda c: isinstance(c, type) and issubclass(c, Schedule),
                      "a subclass of pearlnet.optim.schedules.Schedule")
    args = {k: _schedule_from_spec(v, objects, f"{where}.args.{k}")
            if isinstance(v, dict) and "schedule" in v
            else _value_from_spec(k, v, objects, f"{where}.args.{k}") for k, v in saved.items()}
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


def _optimizer_from_spec(spec: Any, objects: _Objects, where: str) -> Any:
    from pearlnet import optim

    name = _identifier(spec, "class", where, "an optimizer class name")
    custom = _field(spec, "custom", bool, where, "true or false", default=False)
    saved = _field(spec, "config", dict, where, "a JSON object (the optimizer's arguments)")
    if "inner" in spec:
        if name != "ClipByGlobalNorm" or custom:
            raise _Malformed(f"{where} wraps an optimizer ('inner'), which only the library's "
                             f"ClipByGlobalNorm does, and is {name!r}")
        inner = _optimizer_from_spec(spec["inner"], objects, f"{where}.inner")
        return objects.construct(optim.ClipByGlobalNorm, {"optimizer": inner, **saved},
                                 "the optimizer ClipByGlobalNorm")
    cls = objects.get(name, "optimizer class", _optimizers(), custom,
                      lambda c: isinstance(c, type), "a class")
    config = {k: _value_from_spec(k, v, objects, f"{where}.config.{k}")
              for k, v in saved.items()}
    return objects.construct(cls, config, f"the optimizer {cls.__name__}")


def _library_optimizer(spec: dict) -> bool:
    """Whether the optimizer is pearlnet's own (and so is its state's layout)."""
    return not spec.get("custom") and ("inner" not in spec or _library_optimizer(spec["inner"]))


def _check_optimizer(opt: Any, spec: dict, objects: _Objects) -> None:
    """Model.save: the saved spec rebuilds an optimizer with the same spec."""
    twin = _optimizer_from_spec(spec, objects, "compile.optimizer")
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


def _progress_spec(progress: Any) -> dict | None:
    """``Model.training_progress`` (the run's seed and the epochs done, from which a fit
    resumes), or None."""
    if progress is None:
        return None
    if not (isinstance(progress, Mapping) and set(progress) == {"seed", "epoch"}
            and all(_is(v, (int, np.integer)) and v >= 0 for v in progress.values())):
        raise ValueError(f"Model.save: cannot save the training progress {progress!r}: "
                         f"expected None or {{'seed': int >= 0, 'epoch': int >= 0}}")
    return {"seed": int(progress["seed"]), "epoch": int(progress["epoch"])}


def _progress_from_spec(spec: Any) -> dict | None:
    """What _progress_spec wrote (files written before it was saved have none)."""
    if spec is None:
        return None
    where = "config.training_progress"
    progress = {key: _field(spec, key, int, where, "an integer >= 0")
                for key in ("seed", "epoch")}
    if any(v < 0 for v in progress.values()) or set(spec) != set(progress):
        raise _Malformed(f"{where} is {_brief(spec)}, expected {{\"seed\": int >= 0, "
                         f"\"epoch\": int >= 0}}")
    return progress


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
        "training_progress": _progress_spec(getattr(model, "training_progress", None)),
    }
    text = json.dumps(config)
    # rebuild what the file describes, as load_model will, so a file it cannot read is never
    # written
    saved = json.loads(text)
    objects = _Objects(customs, "Model.save", compiling=False)
    for i, (layer, spec) in enumerate(zip(model.layers, saved["layers"])):
        _check_layer(layer, spec, objects, f"layers[{i}]")
    if saved["compile"] is not None:
        _check_optimizer(model.optimizer, saved["compile"]["optimizer"], objects)
    arrays: dict[str, np.ndarray] = {}
    _flatten("params", model.params, arrays)
    _flatten("state", model.state, arrays)
    if model.opt_state is not None:
        _flatten("opt", model.opt_state, arrays)
    with replacing(path, "Model.save") as tmp, open(tmp, "wb") as fh:
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

    A missing ``path`` raises FileNotFoundError, a folder IsADirectoryError, and a file that is
    not what ``Model.save`` writes a ValueError "load_model: <path> is not a pearlnet model
    file: <why>" (the module's docstring lists what is checked).
    """
    if custom_objects is None:
        custom_objects = {}
    if not (isinstance(custom_objects, Mapping)
            and all(isinstance(k, str) for k in custom_objects)):
        raise ValueError(f"load_model: custom_objects must be a dict of names to classes or "
                         f"functions, got {custom_objects!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_model: expected a path (a str or os.PathLike), got "
                        f"{type(path).__name__}")
    path = Path(path)
    arrays = read_npz(path, "load_model", "a pearlnet model file")
    objects = _Objects(custom_objects, f"load_model: {path}", compiling=True)
    try:
        config = _config(arrays.pop("__config__", None))
        return _model_from_file(config, arrays, objects, compile, path)
    except _Malformed as err:
        raise ValueError(f"load_model: {path} is not a pearlnet model file: {err}") from None
    except (ValueError, MemoryError):
        raise  # a name custom_objects lacks, a newer format: their own messages
    except Exception as err:  # a check this module lacks: still no raw error from a file
        raise ValueError(f"load_model: {path} is not a pearlnet model file: rebuilding the "
                         f"model it describes raises {type(err).__name__}: {err}") from err


def _config(text: Any) -> dict:
    """The file's __config__ entry, a JSON object."""
    if text is None:
        raise _Malformed("it has no __config__ entry (the architecture, as JSON)")
    if text.dtype.kind != "U" or text.shape != ():
        raise _Malformed(f"its __config__ is {text.dtype} of shape {text.shape}, expected a "
                         f"JSON text")
    try:
        config = json.loads(str(text))
    except (ValueError, RecursionError) as err:
        raise _Malformed(f"its __config__ is not JSON ({type(err).__name__}: {err})") from None
    return _object(config, "config")


def _model_from_file(config: dict, arrays: dict, objects: _Objects, compile: bool,
                     path: Path) -> Any:
    from pearlnet.train.model import Model

    fmt = _field(config, "format", str, "config", f"{FORMAT!r}")
    if fmt != FORMAT:
        if fmt.startswith("pearlnet-model/"):
            raise ValueError(f"load_model: {path} has format {fmt!r}, which this pearlnet "
                             f"does not read (it reads {FORMAT!r})")
        raise _Malformed(f"config.format is {fmt!r}, expected {FORMAT!r}")
    shape = _field(config, "input_shape", list, "config", "a list of positive integers")
    if not all(_is(d, int) and d > 0 for d in shape):
        raise _Malformed(f"config.input_shape is {_brief(shape)}, expected a list of positive "
                         f"integers")
    dtype = _dtype(_field(config, "dtype", str, "config", "a dtype name"), "config.dtype")
    specs = _field(config, "layers", list, "config", "a list of layers")
    if not specs:
        raise _Malformed("config.layers is empty, expected at least one layer")
    comp = _field(config, "compile", (dict, type(None)), "config",
                  "a JSON object (loss, metrics, optimizer) or null")
    progress = _progress_from_spec(_field(config, "training_progress", (dict, type(None)),
                                          "config", "a JSON object or null", default=None))
    strays = [k for k in arrays if k.split("/")[0] not in ("params", "state", "opt")
              or "/" not in k]
    if strays:
        raise _Malformed(f"it holds the array {strays[0]!r}, expected only arrays under "
                         f"params/, state/ and opt/")
    layers = [_layer_from_spec(s, objects, f"config.layers[{i}]") for i, s in enumerate(specs)]
    _distinct(layers, "config.layers")
    try:  # (a Model may build as soon as its first layer knows its input shape)
        model = Model(layers)
        model.input_shape = tuple(shape)
        model.dtype = dtype
        model.build_model(seed=0)
    except MemoryError:
        raise
    except Exception as err:
        raise _Malformed(f"its layers do not build on its input shape {tuple(shape)} "
                         f"({type(err).__name__}: {err})") from err
    used: set = set()
    params = _fill(model.params, arrays, "params", used)
    state = _fill(model.state, arrays, "state", used)
    extra = [k for k in arrays if k.split("/")[0] in ("params", "state") and k not in used]
    if extra:
        raise _Malformed(f"it holds the array {extra[0]!r}, which no layer of the model it "
                         f"describes has")
    model.params, model.state = params, state
    _assign(model.layers, params, state)
    if compile and comp is not None:
        _compile(model, comp, objects, {k: v for k, v in arrays.items()
                                        if k.startswith("opt/")}, path)
    if progress is not None:
        model.training_progress = progress
    return model


def _compile(model: Any, comp: dict, objects: _Objects, saved: dict, path: Path) -> None:
    """Compile as the file says; the optimizer's state from the arrays under opt/ (``saved``)."""
    where = "config.compile"
    loss_spec = _field(comp, "loss", (str, dict), where, 'a loss name or {"__function__": name}')
    loss = objects.function(loss_spec, "loss", _losses(), f"{where}.loss")
    metrics = [objects.function(m, "metric", _metrics(), f"{where}.metrics[{i}]")
               for i, m in enumerate(_field(comp, "metrics", list, where, "a list of metrics"))]
    from_logits = _field(comp, "from_logits", bool, where, "true or false")
    spec = _field(comp, "optimizer", (dict, type(None)), where, "an optimizer or null")
    if spec is None:  # an older pearlnet saved the model without it
        warnings.warn(f"load_model: {path} was saved without its optimizer; the model is "
                      f"compiled with SGD() and the saved optimizer state is not used",
                      RuntimeWarning, stacklevel=4)
        model.compile(loss=loss, optimizer="sgd", metrics=metrics, from_logits=from_logits)
        return
    opt = _optimizer_from_spec(spec, objects, f"{where}.optimizer")
    model.compile(loss=loss, optimizer=opt, metrics=metrics, from_logits=from_logits)
    if not saved:  # no state in the file: the fresh one
        return
    if _library_optimizer(spec):  # its state's layout is known: matched leaf by leaf
        used: set = set()
        state = _fill(model.opt_state, saved, "opt", used)
        extra = [k for k in saved if k not in used]
        if extra:
            raise _Malformed(f"it holds the array {extra[0]!r}, which the state of "
                             f"{type(opt).__name__} has no place for")
    else:  # a class of one's own keeps what it likes: its dicts put in the fresh state's order
        state = _by_key(model.opt_state, _unflatten("opt", saved))
    model.opt_state = _restore_scalars(state)


def _restore_scalars(tree: Any) -> Any:
    """0-d arrays saved from Python numbers (a step counter) come back as Python numbers."""
    if isinstance(tree, dict):
        return {k: _restore_scalars(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_restore_scalars(v) for v in tree)
    if isinstance(tree, np.ndarray) and tree.ndim == 0 and tree.dtype.kind in "iu":
        return int(tree)
    return tree
