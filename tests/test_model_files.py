"""load_model on files that are not what Model.save writes (issue 24), and arrays matched by key,
never by their order in the file (issue 23)."""

import doctest
import json
import os
import re
import warnings

import numpy as np
import pytest

import pearlnet
import pearlnet.nn as nn
from pearlnet.optim import Adam, ClipByGlobalNorm

NOT_A_MODEL = "load_model: {path} is not a pearlnet model file: "


def trained_model(rng):
    """Dense, BatchNorm (state), Dropout, Dense; Adam with its state after one epoch."""
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = pearlnet.Model([nn.Dense(6, activation="tanh", input_shape=(4,)), nn.BatchNorm(),
                            nn.Dropout(0.2), nn.Dense(3)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=Adam(1e-2), metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=0)
    return model, x, y


@pytest.fixture
def saved(rng, tmp_path):
    model, x, y = trained_model(rng)
    path = tmp_path / "m.pnl"
    model.save(path)
    return model, x, y, path


def read(path):
    """(config, arrays) of a saved file, in the file's order."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("__config__"))), arrays


def write(path, config, arrays, order=None):
    """A model file from a config (JSON data, or a str written as it is) and arrays, the
    arrays in ``order`` (default: as given)."""
    text = config if isinstance(config, str) else json.dumps(config)
    keys = list(arrays) if order is None else order
    with open(path, "wb") as fh:  # (given a name, np.savez would add .npz to it)
        np.savez(fh, __config__=np.array(text), **{k: arrays[k] for k in keys})
    return path


def refused(path, why):
    """The message load_model gives for a file that is not a model file, as a regex."""
    return re.escape(NOT_A_MODEL.format(path=path) + why)


def assert_same_model(loaded, model, x):
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert list(loaded.params) == list(model.params)
    for name in model.params:
        assert list(loaded.params[name]) == list(model.params[name])


# ---- paths that are no file, and files that are no archive ----------------------------------
def test_a_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^load_model: no such file: .*missing\.pnl$"):
        pearlnet.load_model(tmp_path / "missing.pnl")


def test_a_folder_is_refused_as_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"^load_model: .* is a folder, not a file$"):
        pearlnet.load_model(tmp_path)


@pytest.mark.parametrize("where, error, why", [
    ("missing/model.pnl", FileNotFoundError, "the folder .*missing does not exist"),
    ("a_file/model.pnl", NotADirectoryError, ".*/a_file is not a folder"),
    ("a_folder", IsADirectoryError, "it is a folder"),
])
def test_save_names_the_model_and_the_path_it_cannot_write(saved, tmp_path, where, error,
                                                           why):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(error, match=f"^Model.save: cannot write {tmp_path}/{where}: {why}$"):
        saved[0].save(tmp_path / where)
    # no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder", "m.pnl"]
    assert not list((tmp_path / "a_folder").iterdir())


def test_a_path_that_is_no_path_is_a_type_error():
    with pytest.raises(TypeError, match="load_model: expected a path .*, got int"):
        pearlnet.load_model(3)


@pytest.mark.parametrize("name,content,why", [
    ("empty.pnl", b"", "it is empty (0 bytes)"),
    ("text.pnl", b"not a model", "it is not a NumPy .npz archive (it starts with b'not a '"),
    ("short.pnl", b"PK", "it is not a NumPy .npz archive (it starts with b'PK')"),
])
def test_files_that_are_no_archive_are_value_errors(tmp_path, name, content, why):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=refused(path, why)):
        pearlnet.load_model(path)


def test_a_npy_array_is_a_value_error(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=refused(path, "it holds a single NumPy array (.npy), "
                                                       "not an .npz archive")):
        pearlnet.load_model(path)


def test_a_truncated_file_is_a_value_error(saved):
    model, x, y, path = saved
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=refused(path, "it is not a readable .npz archive "
                                                       "(BadZipFile: ")):
        pearlnet.load_model(path)


def test_every_truncation_loads_identically_or_is_a_value_error(saved, tmp_path):
    model, x, y, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pnl"
    offsets = sorted({*range(0, len(data), max(1, len(data) // 150)),
                      *range(max(0, len(data) - 40), len(data) + 1)})
    loaded_at = []
    for n in offsets:
        cut.write_bytes(data[:n])
        try:
            loaded = pearlnet.load_model(cut)
        except ValueError as err:
            assert str(err).startswith(NOT_A_MODEL.format(path=cut)), (n, err)
            continue
        assert_same_model(loaded, model, x)
        loaded_at.append(n)
    assert loaded_at == [len(data)]


def test_a_damaged_file_is_a_value_error(saved):
    """A flipped byte inside the stored config: the archive's checksum no longer matches."""
    model, x, y, path = saved
    data = bytearray(path.read_bytes())
    at = data.index('"layers"'.encode("utf-32-le"))  # a NumPy str array is UTF-32
    data[at + 4] ^= 0x20  # "Layers"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=refused(path, "it is not a readable .npz archive")):
        pearlnet.load_model(path)


def test_an_entry_that_is_not_an_array_is_a_value_error(saved, tmp_path):
    import zipfile

    model, x, y, path = saved
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match=refused(path, "its entry 'notes.txt' is not a NumPy "
                                                       "array")):
        pearlnet.load_model(path)


def test_read_npz_docstring_example():
    import pearlnet._files as files

    result = doctest.testmod(files)
    assert result.failed == 0 and result.attempted > 0


# ---- archives whose config is not a model's -------------------------------------------------
@pytest.mark.parametrize("key", ["format", "input_shape", "dtype", "layers", "compile"])
def test_a_config_without_a_required_key_is_a_value_error(saved, key):
    model, x, y, path = saved
    config, arrays = read(path)
    del config[key]
    write(path, config, arrays)
    with pytest.raises(ValueError, match=refused(path, f"config has no {key!r}")):
        pearlnet.load_model(path)


def test_an_archive_without_a_config_is_a_value_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match=refused(path, "it has no __config__ entry")):
        pearlnet.load_model(path)


@pytest.mark.parametrize("text,why", [
    ("{not json", "its __config__ is not JSON (JSONDecodeError: "),
    ("[1, 2]", "config is [1, 2], expected a JSON object"),
    ('"layers"', 'config is "layers", expected a JSON object'),
    ("[" * 100000 + "]" * 100000, "its __config__ is not JSON (RecursionError: "),
])
def test_a_config_that_is_not_a_json_object_is_a_value_error(saved, text, why):
    model, x, y, path = saved
    config, arrays = read(path)
    write(path, text, arrays)
    with pytest.raises(ValueError, match=refused(path, why)):
        pearlnet.load_model(path)


def test_a_config_that_is_not_text_is_a_value_error(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    with open(path, "wb") as fh:
        np.savez(fh, __config__=np.arange(3), **arrays)
    with pytest.raises(ValueError, match=refused(path, "its __config__ is int64 of shape (3,), "
                                                       "expected a JSON text")):
        pearlnet.load_model(path)


def test_the_layer_spec_lacking_a_class_is_a_value_error(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    del config["layers"][1]["class"]
    write(path, config, arrays)
    with pytest.raises(ValueError, match=refused(path, "config.layers[1] has no 'class'")):
        pearlnet.load_model(path)


@pytest.mark.parametrize("edit,why", [
    (lambda c: c.update(input_shape="4"), 'config.input_shape is "4", expected a list of '
                                          'positive integers'),
    (lambda c: c.update(input_shape=[0]), "config.input_shape is [0], expected a list of "
                                          "positive integers"),
    (lambda c: c.update(input_shape=[True]), "config.input_shape is [true], expected"),
    (lambda c: c.update(dtype="float128x"), 'config.dtype is "float128x", expected the name of '
                                            'a numeric NumPy dtype'),
    (lambda c: c.update(dtype="str"), 'config.dtype is "str", expected'),
    (lambda c: c.update(layers=[]), "config.layers is empty, expected at least one layer"),
    (lambda c: c.update(layers={"a": 1}), 'config.layers is {"a": 1}, expected a list of '
                                          'layers'),
    (lambda c: c["layers"].__setitem__(0, "dense"), 'config.layers[0] is "dense", expected a '
                                                    'JSON object'),
    (lambda c: c["layers"][0].update({"class": ["Dense"]}), 'config.layers[0].class is '
                                                            '["Dense"], expected a layer class'),
    (lambda c: c["layers"][0].update(name=None), "config.layers[0].name is null, expected a "
                                                 "layer name"),
    (lambda c: c["layers"][0].update(name="a/b"), "config.layers[0].name is 'a/b', expected a "
                                                  "name that neither starts with '#'"),
    (lambda c: c["layers"][3].update(name=c["layers"][0]["name"]),
     "config.layers names two layers 'dense'"),
    (lambda c: c["layers"][0].update(config=[6]), "config.layers[0].config is [6], expected a "
                                                  "JSON object"),
    (lambda c: c["layers"][0].update(custom="yes"), 'config.layers[0].custom is "yes", expected '
                                                    'true or false'),
    (lambda c: c["layers"][0].update(dtype=7), "config.layers[0].dtype is 7, expected a dtype "
                                               "name"),
    (lambda c: c["layers"][0]["config"].update(activation={"__function__": [1]}),
     "config.layers[0].config.activation.__function__ is [1], expected a function name"),
    (lambda c: c["layers"][0]["config"].update(units=5), "its array 'params/dense/W' is "
                                                         "float32 of shape (4, 6), expected a "
                                                         "floating-point array of shape (4, 5)"),
    (lambda c: c.update(input_shape=[5]), "its array 'params/dense/W' is float32 of shape "
                                          "(4, 6), expected a floating-point array of shape "
                                          "(5, 6)"),
    (lambda c: c.update(input_shape=[2, 2]), "its layers do not build on its input shape "
                                             "(2, 2)"),
    (lambda c: c["layers"][0].update({"class": "Dense!"}), 'config.layers[0].class is '
                                                           '"Dense!", expected a layer class'),
    (lambda c: c.update(compile=[]), "config.compile is [], expected a JSON object"),
    (lambda c: c.update(compile={}), "config.compile has no 'loss'"),
    (lambda c: c["compile"].pop("optimizer"), "config.compile has no 'optimizer'"),
    (lambda c: c["compile"].update(loss=""), 'config.compile.loss is "", expected a loss name'),
    (lambda c: c["compile"].update(loss=3), "config.compile.loss is 3, expected a loss name"),
    (lambda c: c["compile"].update(metrics="accuracy"), 'config.compile.metrics is "accuracy", '
                                                        'expected a list of metrics'),
    (lambda c: c["compile"].update(metrics=[None]), "config.compile.metrics[0] is null, "
                                                    "expected a metric name"),
    (lambda c: c["compile"].update(from_logits=1), "config.compile.from_logits is 1, expected "
                                                   "true or false"),
    (lambda c: c["compile"].update(optimizer="adam"), 'config.compile.optimizer is "adam", '
                                                      'expected an optimizer or null'),
    (lambda c: c["compile"]["optimizer"].pop("config"), "config.compile.optimizer has no "
                                                        "'config'"),
    (lambda c: c["compile"]["optimizer"].update(inner={}), "config.compile.optimizer wraps an "
                                                           "optimizer ('inner'), which only"),
    (lambda c: c["compile"]["optimizer"]["config"].update(lr={"__schedule__": {"args": {}}}),
     "config.compile.optimizer.config.lr.__schedule__ has no 'schedule'"),
])
def test_a_malformed_config_is_a_value_error_naming_the_place(saved, edit, why):
    model, x, y, path = saved
    config, arrays = read(path)
    edit(config)
    write(path, config, arrays)
    with pytest.raises(ValueError, match=refused(path, why)):
        pearlnet.load_model(path)


def test_a_newer_format_is_named(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    config["format"] = "pearlnet-model/2"
    write(path, config, arrays)
    with pytest.raises(ValueError, match=f"load_model: {path} has format 'pearlnet-model/2', "
                                         f"which this pearlnet does not read"):
        pearlnet.load_model(path)


def test_a_file_saved_without_its_optimizer_is_compiled_with_sgd_and_says_so(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    config["compile"]["optimizer"] = None  # as an older pearlnet wrote it
    write(path, config, arrays)
    with pytest.warns(RuntimeWarning, match="saved without its optimizer") as record:
        loaded = pearlnet.load_model(path)
    assert record[0].filename == __file__  # the warning points at the caller
    assert type(loaded.optimizer).__name__ == "SGD"
    assert_same_model(loaded, model, x)


def test_the_training_progress_is_saved_and_loaded(saved):
    model, x, y, path = saved
    model.training_progress = {"seed": 2 ** 62 + 1, "epoch": 3}
    model.save(path)
    assert pearlnet.load_model(path).training_progress == {"seed": 2 ** 62 + 1, "epoch": 3}
    model.training_progress = None
    model.save(path)
    assert getattr(pearlnet.load_model(path), "training_progress", None) is None


@pytest.mark.parametrize("progress,why", [
    ({"seed": -1, "epoch": 3}, 'config.training_progress is {"seed": -1, "epoch": 3}, expected'),
    ({"seed": 1}, "config.training_progress has no 'epoch'"),
    ({"seed": 1, "epoch": 2.0}, "config.training_progress.epoch is 2.0, expected an integer"),
    ({"seed": 1, "epoch": 2, "x": 0}, "config.training_progress is"),
    ([1, 2], "config.training_progress is [1, 2], expected a JSON object or null"),
])
def test_a_malformed_training_progress_is_a_value_error(saved, progress, why):
    model, x, y, path = saved
    config, arrays = read(path)
    config["training_progress"] = progress
    write(path, config, arrays)
    with pytest.raises(ValueError, match=refused(path, why)):
        pearlnet.load_model(path)


def test_save_refuses_a_training_progress_it_cannot_write(saved):
    model, x, y, path = saved
    model.training_progress = {"seed": np.random.default_rng(0), "epoch": 1}
    with pytest.raises(ValueError, match="Model.save: cannot save the training progress"):
        model.save(path)


def test_a_bad_layer_argument_names_the_layer(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    config["layers"][2]["config"]["rate"] = "half"
    write(path, config, arrays)
    with pytest.raises(ValueError, match=r"load_model: .*m.pnl: cannot rebuild the layer "
                                         r"'dropout' \(Dropout\) from its saved config"):
        pearlnet.load_model(path)


# ---- arrays: missing, extra, of another shape or kind ---------------------------------------
@pytest.mark.parametrize("edit,why", [
    (lambda a: a.pop("params/dense/W"), "it lacks the array 'params/dense/W' (a floating-point "
                                        "array of shape (4, 6))"),
    (lambda a: a.pop("state/batchnorm/mean"), "it lacks the array 'state/batchnorm/mean'"),
    (lambda a: a.update({"params/dense/W": a["params/dense/W"].T}),
     "its array 'params/dense/W' is float32 of shape (6, 4), expected a floating-point array "
     "of shape (4, 6)"),
    (lambda a: a.update({"params/dense/b": a["params/dense/b"].astype(np.int32)}),
     "its array 'params/dense/b' is int32 of shape (6,), expected a floating-point array"),
    (lambda a: a.update({"params/dense/b": np.array(["x"] * 6)}),
     "its array 'params/dense/b' is <U1 of shape (6,), expected a floating-point array"),
    (lambda a: a.update({"params/dense/extra": np.zeros(2)}),
     "it holds the array 'params/dense/extra', which no layer of the model it describes has"),
    (lambda a: a.update({"params/nothing/W": np.zeros(2)}),
     "it holds the array 'params/nothing/W', which no layer"),
    (lambda a: a.update({"junk": np.zeros(2)}),
     "it holds the array 'junk', expected only arrays under params/, state/ and opt/"),
    (lambda a: a.pop("opt/m/dense/W"), "it lacks the array 'opt/m/dense/W'"),
    (lambda a: a.update({"opt/step": np.zeros(3)}), "its array 'opt/step' is float64 of shape "
                                                    "(3,), expected an integer array of shape ()"),
    (lambda a: a.update({"opt/velocity/dense/W": np.zeros(2)}),
     "it holds the array 'opt/velocity/dense/W', which the state of Adam has no place for"),
])
def test_arrays_that_do_not_fit_are_a_value_error(saved, edit, why):
    model, x, y, path = saved
    config, arrays = read(path)
    edit(arrays)
    write(path, config, arrays)
    with pytest.raises(ValueError, match=refused(path, why)):
        pearlnet.load_model(path)


def test_without_compile_the_optimizer_arrays_are_not_read(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    arrays["opt/step"] = np.zeros(3)
    write(path, config, arrays)
    assert_same_model(pearlnet.load_model(path, compile=False), model, x)


# ---- issue 23: matched by key, in the model's own order -------------------------------------
def test_arrays_in_another_order_load_in_the_model_key_order(saved):
    model, x, y, path = saved
    config, arrays = read(path)
    write(path, config, arrays, order=list(reversed(arrays)))
    assert list(read(path)[1])[0].startswith("opt/")  # the file's order is reversed
    loaded = pearlnet.load_model(path)
    assert_same_model(loaded, model, x)
    assert list(loaded.params) == ["dense", "batchnorm", "dense_1"]
    assert list(loaded.state) == ["batchnorm"]
    assert list(loaded.opt_state) == list(model.opt_state)
    for slot in ("m", "v"):
        assert list(loaded.opt_state[slot]) == list(model.params)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    # training resumes where it stopped, as from a file in the usual order
    h1 = model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=4).history["loss"]
    h2 = loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=4).history["loss"]
    assert h1 == pytest.approx(h2, rel=1e-6)


def test_a_clipped_optimizer_state_in_another_order_resumes(rng, tmp_path):
    model, x, y = trained_model(rng)
    model.compile(optimizer=ClipByGlobalNorm(Adam(1e-2), max_norm=1.0))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=0)
    path = tmp_path / "m.pnl"
    model.save(path)
    config, arrays = read(path)
    write(path, config, arrays, order=sorted(arrays, reverse=True))
    loaded = pearlnet.load_model(path)
    assert type(loaded.optimizer) is ClipByGlobalNorm
    h1 = model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=4).history["loss"]
    h2 = loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=4).history["loss"]
    assert h1 == pytest.approx(h2, rel=1e-6)


def test_a_custom_optimizer_state_is_put_in_the_fresh_state_order(rng, tmp_path):
    class MyAdam(Adam):
        pass

    model, x, y = trained_model(rng)
    model.compile(optimizer=MyAdam(1e-2))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=0)
    path = tmp_path / "m.pnl"
    model.save(path)
    config, arrays = read(path)
    write(path, config, arrays, order=list(reversed(arrays)))
    loaded = pearlnet.load_model(path, custom_objects={"MyAdam": MyAdam})
    assert list(loaded.opt_state["m"]) == list(model.params)
    h1 = model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=4).history["loss"]
    h2 = loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=4).history["loss"]
    assert h1 == pytest.approx(h2, rel=1e-6)


@pytest.mark.parametrize("extra,why", [
    ({"opt/m/dense/W/x": np.zeros(2)}, "its array 'opt/m/dense/W/x' lies inside another array"),
    ({"opt/extra/#0": np.zeros(2), "opt/extra/#2": np.zeros(2)},
     "its arrays under 'opt/extra' are the list items ['#0', '#2'], expected #0 to #1"),
])
def test_a_custom_optimizer_state_that_spells_no_tree_is_a_value_error(rng, tmp_path, extra,
                                                                       why):
    class MyAdam(Adam):
        pass

    model, x, y = trained_model(rng)
    model.compile(optimizer=MyAdam(1e-2))
    path = tmp_path / "m.pnl"
    model.save(path)
    config, arrays = read(path)
    write(path, config, {**arrays, **extra})
    with pytest.raises(ValueError, match=refused(path, why)):
        pearlnet.load_model(path, custom_objects={"MyAdam": MyAdam})


class Swapping(nn.Module):
    """A layer of one's own whose build lists its weights in alternating key order: the same
    weights, dicts that differ only in order."""

    builds = 0

    def __init__(self, units: int = 3, input_shape=None, name=None) -> None:
        super().__init__(input_shape, name)
        self.units = units

    def get_config(self) -> dict:
        return {"units": self.units}

    def build(self, input_shape, rng):
        W = rng.standard_normal((input_shape[-1], self.units)).astype(self.dtype)
        b = np.zeros(self.units, self.dtype)
        Swapping.builds += 1
        self.params = {"W": W, "b": b} if Swapping.builds % 2 else {"b": b, "W": W}
        self.state = {}
        return (self.units,)

    def forward(self, params, x, *, state=None, training=False, rng=None):
        return x @ params["W"] + params["b"], {}


def test_weights_in_another_key_order_save_and_load(rng, tmp_path):
    """Save's rebuild check and load's match compare dicts by key (issue 23)."""
    x = rng.standard_normal((5, 4)).astype(np.float32)
    model = pearlnet.Model([nn.Dense(4, input_shape=(4,)), Swapping(3)], seed=0)
    model.build_model()
    order = list(model.params["swapping"])
    model.save(tmp_path / "m.pnl")  # the rebuilt twin lists b, W the other way round
    loaded = pearlnet.load_model(tmp_path / "m.pnl", custom_objects={"Swapping": Swapping})
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert list(loaded.params["swapping"]) == list(loaded.layers[1].params)
    assert set(loaded.params["swapping"]) == set(order)


# ---- fuzz: every mangled config is a model or a ValueError with a named cause ----------------
BAD_VALUES = [None, True, -1, 2.5, "x", [], {"a": 1}]


def _places(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _places(value, (*path, i))


def _at(node, path):
    for key in path:
        node = node[key]
    return node


def _mutants(config):
    for path in _places(config):
        if not path:
            continue
        if isinstance(_at(config, path[:-1]), dict):
            yield path, "deleted"
        for value in BAD_VALUES:
            yield path, value


def nested_model(rng):
    """A recurrent layer inside Bidirectional, a Sequential inside the Model, a warm-up
    schedule inside a clipped Adam: configs within configs."""
    from pearlnet.optim import schedules

    x = rng.standard_normal((12, 5, 2)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    model = pearlnet.Model([nn.Bidirectional(nn.LSTM(3), input_shape=(5, 2)),
                            nn.Sequential([nn.Dense(4, activation="relu"), nn.Dense(3)])],
                           seed=0)
    lr = schedules.linear_warmup(schedules.cosine(1e-2, total_steps=10), warmup_steps=2)
    model.compile(optimizer=ClipByGlobalNorm(Adam(lr), max_norm=1.0), metrics=["accuracy"])
    model.fit(x, y, batch_size=6, epochs=1, verbose=0, seed=0)
    return model, x, y


@pytest.mark.parametrize("build", [trained_model, nested_model])
def test_every_mangled_config_loads_or_is_a_value_error_naming_why(build, rng, tmp_path):
    model, x, y = build(rng)
    path = tmp_path / "m.pnl"
    model.save(path)
    config, arrays = read(path)
    target = tmp_path / "mangled.pnl"
    outcomes = {"loaded": 0, "refused": 0}
    for where, value in _mutants(config):
        mangled = json.loads(json.dumps(config))
        parent = _at(mangled, where[:-1])
        if value == "deleted":
            del parent[where[-1]]
        else:
            parent[where[-1]] = value
        write(target, mangled, arrays)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # compile.optimizer = null
                loaded = pearlnet.load_model(target)
        except ValueError as err:
            message = str(err)
            assert message.startswith(f"load_model: {target}"), (where, value, message)
            # each cause is found by a check of its own, not by the last-resort net
            assert "rebuilding the model it describes raises" not in message, \
                (where, value, message)
            outcomes["refused"] += 1
            continue
        loaded.predict(x)
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 10, outcomes


def test_files_written_by_save_are_left_as_they_are(saved):
    """load_model reads; it never rewrites the file."""
    model, x, y, path = saved
    before = path.read_bytes(), os.stat(path).st_mtime_ns
    pearlnet.load_model(path)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before
