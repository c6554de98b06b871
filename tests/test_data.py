"""Dataset loaders and preprocessing, on small IDX files written here; the network is never used.

The MNIST loader is pointed at a fake "mnist" spec (6 + 4 images of 3x4, hashes of the fake
files) and at folders under tmp_path; downloads go through a fetcher serving bytes from memory.
The real Fashion-MNIST is loaded when Debian's package has installed it.
"""

import doctest
import gzip
import hashlib
import io
import re
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pearlnet.data.digits as digits_module
import pearlnet.data.mnist as mnist
import pearlnet.data.preprocess as preprocess_module
from idx_files import write_idx
from pearlnet.data import (
    FASHION_MNIST_CLASSES,
    ChecksumError,
    DatasetNotFoundError,
    IDXError,
    Standardizer,
    batches,
    download_dataset,
    flatten_images,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_sine,
    one_hot,
    train_validation_split,
)

FILES = mnist.FILES
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST, SHAPE = 6, 4, (3, 4)


def idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def fake_arrays(tag=0):
    """Four small arrays; ``tag`` is the first training label, so a test can tell copies apart."""
    gen = np.random.default_rng(tag)
    x_train = gen.integers(0, 256, size=(N_TRAIN, *SHAPE), dtype=np.uint8)
    y_train = np.array([tag, 1, 2, 3, 4, 9], np.uint8)
    x_test = gen.integers(0, 256, size=(N_TEST, *SHAPE), dtype=np.uint8)
    y_test = np.array([5, 6, 7, 8], np.uint8)
    return x_train, y_train, x_test, y_test


def write_dataset(folder, tag=0, gz=(True, True, True, True), skip=()):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fake_arrays(tag)
    for base, array, zipped in zip(FILES, arrays, gz):
        if base not in skip:
            write_idx(folder / (f"{base}.gz" if zipped else base), array)
    return arrays


def assert_loaded(got, arrays):
    (x_train, y_train), (x_test, y_test) = got
    for a, b in zip((x_train, y_train, x_test, y_test), arrays):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.uint8


SERVED = {f"{base}.gz": idx_bytes(a) for base, a in zip(FILES, fake_arrays(0))}
MIRRORS = ("https://mirror-one.invalid/mnist/", "https://mirror-two.invalid/mnist/")


class Server:
    """A fetcher: ``fetch(url)`` serves SERVED bytes, or what ``behaviour[mirror]`` says."""

    def __init__(self, **behaviour):
        self.behaviour = behaviour  # "one"/"two" -> "down", "wrong", "midway"
        self.calls = []

    def __call__(self, url):
        self.calls.append(url)
        mirror = "one" if url.startswith(MIRRORS[0]) else "two"
        what = self.behaviour.get(mirror, "ok")
        if what == "down":
            raise urllib.error.URLError(f"no route to {url}")
        data = SERVED[url.rsplit("/", 1)[1]]
        if what == "wrong":
            return io.BytesIO(data[:-1] + b"X")
        if what in ("midway", "interrupt"):
            return Midway(data, KeyboardInterrupt if what == "interrupt" else ConnectionResetError)
        return io.BytesIO(data)


class Midway(io.BytesIO):
    """A response that delivers a few bytes, then fails."""

    def __init__(self, data, error):
        super().__init__(data)
        self.error = error

    def read(self, n=-1):
        if self.tell():
            raise self.error("connection lost midway")
        return super().read(10)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(mnist, "_urlopen", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Fake MNIST spec; HOME, the system folder and PEARLNET_DATA all under tmp_path."""
    spec = replace(mnist.DATASETS["mnist"], mirrors=MIRRORS, n_train=N_TRAIN, n_test=N_TEST,
                   shape=SHAPE,
                   sha256={f: hashlib.sha256(b).hexdigest() for f, b in SERVED.items()})
    monkeypatch.setitem(mnist.DATASETS, "mnist", spec)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PEARLNET_DATA", raising=False)
    monkeypatch.setattr(mnist, "SYSTEM_DATASETS", tmp_path / "system")
    return {"env": tmp_path / "env" / "mnist", "cache": tmp_path / "home/.cache/pearlnet/mnist",
            "system": tmp_path / "system" / "mnist", "root": tmp_path / "root"}


def serve(monkeypatch, **behaviour):
    server = Server(**behaviour)
    monkeypatch.setattr(mnist, "_urlopen", server)
    return server


# ---- where the files are looked for ----------------------------------------------------------

def test_search_order_env_then_cache_then_system(places, monkeypatch):
    monkeypatch.setenv("PEARLNET_DATA", str(places["env"].parent))
    arrays = {p: write_dataset(places[p], tag=t) for p, t in (("env", 0), ("cache", 7),
                                                               ("system", 8))}
    assert_loaded(load_mnist(download=False), arrays["env"])
    monkeypatch.delenv("PEARLNET_DATA")
    assert_loaded(load_mnist(download=False), arrays["cache"])
    monkeypatch.setenv("HOME", str(places["root"]))
    assert_loaded(load_mnist(download=False), arrays["system"])


def test_explicit_root_wins_and_is_the_only_place_searched(places):
    cached = write_dataset(places["cache"], tag=7)
    arrays = write_dataset(places["root"], tag=0, gz=(True, False, False, True))
    assert_loaded(load_mnist(root=places["root"]), arrays)
    assert_loaded(load_mnist(root=str(places["root"])), arrays)
    assert_loaded(load_mnist(), cached)
    empty = places["root"].parent / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="root=") as info:
        load_mnist(root=empty)
    message = str(info.value)
    assert str(empty) in message and str(places["cache"]) not in message
    assert all(base in message for base in FILES)


def test_plain_and_gzipped_names_both_count(places):
    arrays = write_dataset(places["cache"], gz=(False, True, False, True))
    assert_loaded(load_mnist(download=False), arrays)


def test_a_partial_folder_is_skipped_and_reported(places):
    write_dataset(places["cache"], tag=7, skip=(FILES[3],))
    arrays = write_dataset(places["system"], tag=0)
    assert_loaded(load_mnist(download=False), arrays)
    for path in places["system"].iterdir():
        path.unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(download=False)
    message = str(info.value)
    assert f"{places['cache']} (missing {FILES[3]})" in message
    assert f"{places['system']} (none of the files)" in message


def test_never_falls_back_to_another_dataset(places):
    write_dataset(places["system"].parent / "fashion-mnist")
    with pytest.raises(DatasetNotFoundError, match="MNIST not found"):
        load_mnist(download=False)


def test_not_found_without_download_names_folders_files_and_where_to_put_them(places,
                                                                            monkeypatch):
    monkeypatch.setenv("PEARLNET_DATA", str(places["env"].parent))
    server = serve(monkeypatch)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(download=False)
    assert server.calls == []
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert message.startswith("load_mnist: MNIST not found; download=False")
    for folder in ("env", "cache", "system"):
        assert f"{places[folder]} (no such folder)" in message
    assert all(f"{base}.gz" in message for base in FILES)
    assert f"Put them in {places['env']}" in message


# ---- downloading -----------------------------------------------------------------------------

def test_download_into_the_cache_verifies_and_keeps_the_files(places, monkeypatch):
    server = serve(monkeypatch)
    assert_loaded(load_mnist(), fake_arrays(0))
    assert sorted(p.name for p in places["cache"].iterdir()) == sorted(SERVED)
    assert {p.stat().st_mode & 0o777 for p in places["cache"].iterdir()} == {0o644}
    assert server.calls == [MIRRORS[0] + name for name in (f"{b}.gz" for b in FILES)]
    assert_loaded(load_mnist(), fake_arrays(0))
    assert len(server.calls) == 4  # found in the cache the second time


def test_download_goes_to_pearlnet_data_when_set(places, monkeypatch):
    monkeypatch.setenv("PEARLNET_DATA", str(places["env"].parent))
    serve(monkeypatch)
    assert_loaded(load_mnist(), fake_arrays(0))
    assert sorted(p.name for p in places["env"].iterdir()) == sorted(SERVED)
    assert not places["cache"].exists()


def test_download_fetches_only_the_missing_files(places, monkeypatch):
    write_dataset(places["cache"], skip=(FILES[0], FILES[2]))
    server = serve(monkeypatch)
    assert_loaded(load_mnist(), fake_arrays(0))
    assert server.calls == [MIRRORS[0] + f"{FILES[0]}.gz", MIRRORS[0] + f"{FILES[2]}.gz"]


def test_first_mirror_failing_second_serving(places, monkeypatch):
    for failure in ("down", "wrong", "midway"):
        server = serve(monkeypatch, one=failure)
        assert_loaded(load_mnist(), fake_arrays(0))
        assert server.calls[:2] == [MIRRORS[0] + f"{FILES[0]}.gz", MIRRORS[1] + f"{FILES[0]}.gz"]
        assert sorted(p.name for p in places["cache"].iterdir()) == sorted(SERVED)
        for path in places["cache"].iterdir():
            path.unlink()


def test_wrong_hash_names_the_file_and_both_hashes_and_leaves_nothing(places, monkeypatch):
    serve(monkeypatch, one="wrong", two="wrong")
    with pytest.raises(ChecksumError) as info:
        load_mnist()
    file = f"{FILES[0]}.gz"
    expected = mnist.DATASETS["mnist"].sha256[file]
    got = hashlib.sha256(SERVED[file][:-1] + b"X").hexdigest()
    message = str(info.value)
    assert file in message and expected in message and got in message
    assert message.count(f"expected {expected}, got {got}") == 2  # one line per mirror
    assert not places["cache"].exists()


def test_failure_midway_leaves_no_partial_file(places, monkeypatch):
    serve(monkeypatch, one="midway", two="midway")
    with pytest.raises(DatasetNotFoundError, match="ConnectionResetError"):
        load_mnist()
    assert not places["cache"].exists()
    serve(monkeypatch, one="interrupt")
    with pytest.raises(KeyboardInterrupt):
        load_mnist()
    assert not places["cache"].exists()
    write_dataset(places["cache"], skip=(FILES[1],))  # a folder that was there stays as it was
    before = sorted(places["cache"].iterdir())
    serve(monkeypatch, one="midway", two="midway")
    with pytest.raises(DatasetNotFoundError, match=f"{FILES[1]}.gz"):
        load_mnist()
    assert sorted(places["cache"].iterdir()) == before


def test_offline_error_lists_folders_files_mirrors_and_where_to_put_them(places, monkeypatch):
    serve(monkeypatch, one="down", two="down")
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert message.startswith("load_mnist: MNIST not found; downloading it failed too")
    assert f"{places['cache']} (no such folder)" in message
    assert f"{places['system']} (no such folder)" in message
    assert all(f"{base}.gz" in message for base in FILES)
    assert f"Put them in {places['cache']}" in message
    assert all(f"{m}{FILES[0]}.gz: URLError" in message for m in MIRRORS)
    assert not places["cache"].exists()


def test_download_dataset_directly(places, tmp_path):
    folder = download_dataset("mnist", tmp_path / "here", _fetch=Server())
    assert folder == tmp_path / "here"
    assert_loaded(load_mnist(root=folder), fake_arrays(0))
    with pytest.raises(ValueError, match="download_dataset: unknown dataset 'cifar'"):
        download_dataset("cifar", tmp_path)


# ---- validating what is loaded ---------------------------------------------------------------

def test_wrong_image_count_is_named(places):
    write_dataset(places["root"], skip=(FILES[0],))
    path = write_idx(places["root"] / f"{FILES[0]}.gz", np.zeros((5, *SHAPE), np.uint8))
    with pytest.raises(IDXError, match=f"{path} holds uint8 images of shape \\(5, 3, 4\\), "
                                       f"expected uint8 of shape \\(6, 3, 4\\)"):
        load_mnist(root=places["root"])


def test_wrong_image_size_is_named(places):
    write_dataset(places["root"], skip=(FILES[2],))
    path = write_idx(places["root"] / FILES[2], np.zeros((N_TEST, 4, 3), np.uint8))
    with pytest.raises(IDXError, match=f"{path} holds .* shape \\(4, 4, 3\\)"):
        load_mnist(root=places["root"])


def test_label_count_mismatch_is_named(places):
    write_dataset(places["root"], skip=(FILES[3],))
    path = write_idx(places["root"] / FILES[3], np.zeros(N_TEST + 1, np.uint8))
    with pytest.raises(IDXError, match=f"{path} holds uint8 labels of shape \\(5,\\), expected "
                                       f"uint8 of shape \\(4,\\)"):
        load_mnist(root=places["root"])


def test_label_out_of_range_is_named(places):
    write_dataset(places["root"], skip=(FILES[1],))
    labels = np.array([0, 1, 2, 10, 4, 5], np.uint8)
    path = write_idx(places["root"] / FILES[1], labels)
    with pytest.raises(IDXError, match=f"{path} has label 10, expected labels in 0..9"):
        load_mnist(root=places["root"])


def test_swapped_files_fail_the_magic_check(places):
    write_dataset(places["root"], skip=(FILES[0],))
    path = write_idx(places["root"] / FILES[0], np.zeros(N_TRAIN, np.uint8))
    with pytest.raises(IDXError, match="has magic 2049, expected 2051"):
        load_mnist(root=places["root"])
    assert path.exists()


def test_truncated_gz_is_named(places):
    write_dataset(places["root"])
    path = places["root"] / f"{FILES[2]}.gz"
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(IDXError, match=f"read_idx: {path} is not a valid gzip file"):
        load_mnist(root=places["root"])


# ---- the real Fashion-MNIST (Debian's dataset-fashion-mnist) ---------------------------------

needs_fashion = pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason="Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist "
           "(apt-get install dataset-fashion-mnist)")


@needs_fashion
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PEARLNET_DATA", raising=False)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert 0 < x_train.mean() < 255 and x_train.max() == 255
    assert len(FASHION_MNIST_CLASSES) == 10
    (x_root, _), _ = load_fashion_mnist(root=DEBIAN_FASHION)
    np.testing.assert_array_equal(x_root, x_train)


@needs_fashion
def test_fashion_mnist_hashes_are_those_of_the_upstream_files():
    """Debian's .gz files are the upstream deflate streams with a rewritten gzip header.

    Putting the upstream header back (the file name, the 2017 time stamp, OS 3) must give bytes
    whose SHA-256 are the constants the downloader checks against.
    """
    stamps = {"train": 1504176606, "t10k": 1504176627}
    for base in FILES:
        data = (DEBIAN_FASHION / f"{base}.gz").read_bytes()
        header = bytes([0x1F, 0x8B, 8, 8]) + stamps[base[:5].rstrip("-")].to_bytes(4, "little")
        upstream = header + bytes([0, 3]) + base.encode() + b"\0" + data[10:]
        want = mnist.DATASETS["fashion-mnist"].sha256[f"{base}.gz"]
        assert hashlib.sha256(upstream).hexdigest() == want, base


# ---- scikit-learn's digits -------------------------------------------------------------------

def test_load_digits_shapes_ranges_and_stratified_split():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1346, 8, 8) and x_test.shape == (451, 8, 8)
    assert y_train.shape == (1346,) and y_test.shape == (451,)
    assert x_train.dtype == np.float64 and y_train.dtype == np.uint8
    assert x_train.min() == 0 and x_train.max() == 16
    assert set(np.unique(y_test)) == set(range(10))
    total = np.bincount(y_train) + np.bincount(y_test)
    np.testing.assert_array_equal(np.bincount(y_test), np.floor(total / 4 + 0.5))


def test_load_digits_is_seeded():
    (a, _), _ = load_digits(seed=0)
    (b, _), _ = load_digits(seed=0)
    (c, _), _ = load_digits(seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("seed", [-1, np.int64(-3), 0.5, True, "0", None])
def test_load_digits_refuses_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match=r"^load_digits: seed must be a non-negative integer, "
                                         rf"got {re.escape(repr(seed))}$"):
        load_digits(seed=seed)


@pytest.mark.parametrize("seed", [-1, np.int64(-3), 0.5, True, "0"])
def test_load_sine_refuses_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match=r"^load_sine: seed must be a non-negative integer, a "
                                         rf"numpy\.random\.Generator or None, got "
                                         rf"{re.escape(repr(seed))}$"):
        load_sine(n_train=2, n_test=0, steps=2, seed=seed)


@pytest.mark.parametrize("noise", ["x", None, True, [0.1], np.nan, np.inf, -0.1])
def test_load_sine_refuses_a_noise_that_is_not_a_non_negative_number(noise):
    with pytest.raises(ValueError, match=r"^load_sine: noise must be a non-negative number, "
                                         rf"got {re.escape(repr(noise))}$"):
        load_sine(n_train=2, n_test=0, steps=2, noise=noise)


def test_load_sine_takes_numpy_scalars_and_a_generator():
    a = load_sine(n_train=2, n_test=1, steps=2, noise=np.float64(0.1), seed=np.int64(5))
    b = load_sine(n_train=2, n_test=1, steps=2, noise=0.1, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0][0], b[0][0])


def test_load_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()


# ---- preprocessing ---------------------------------------------------------------------------

def test_docstring_examples():
    for module in (preprocess_module, digits_module):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_standardizer_scalar_statistics(rng):
    x = rng.integers(0, 256, size=(50, 4, 5), dtype=np.uint8)
    s = Standardizer().fit(x)
    assert s.mean.shape == () and s.std.shape == ()
    np.testing.assert_allclose(s.mean, x.mean())
    np.testing.assert_allclose(s.std, x.std())
    z = s.transform(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose([z.mean(), z.std()], [0, 1], atol=1e-5)
    np.testing.assert_array_equal(Standardizer().fit_transform(x), z)
    other = rng.integers(0, 256, size=(3, 20), dtype=np.uint8)  # scalar mode takes any shape
    np.testing.assert_allclose(s.transform(other), (other - x.mean()) / x.std(), rtol=1e-6)
    assert "fitted" in repr(s) and "unfitted" in repr(Standardizer())


def test_standardizer_per_feature_and_dtype(rng):
    x = rng.normal(3.0, 2.0, size=(40, 2, 3))
    s = Standardizer(per_feature=True, dtype=np.float64).fit(x)
    assert s.mean.shape == (2, 3) and s.feature_shape == (2, 3)
    z = s.transform(x)
    assert z.dtype == np.float64
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-12)
    with pytest.raises(ValueError, match="Standardizer.transform: fitted per feature on samples "
                                         "of shape \\(2, 3\\), got a batch of shape \\(40, 6\\)"):
        s.transform(x.reshape(40, 6))


def test_standardizer_zero_std_gives_zeros_not_nan():
    x = np.zeros((4, 3))
    x[:, 1] = [1, 2, 3, 4]
    z = Standardizer(per_feature=True).fit_transform(x)  # warnings are errors here
    np.testing.assert_array_equal(z[:, [0, 2]], 0)
    assert np.all(np.isfinite(z))
    np.testing.assert_array_equal(Standardizer().fit_transform(np.full((3, 2), 7)), 0)


def test_standardizer_errors():
    with pytest.raises(ValueError, match="Standardizer.transform: call fit"):
        Standardizer().transform(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Standardizer: dtype must be a floating dtype"):
        Standardizer(dtype=np.int32)
    with pytest.raises(ValueError, match="Standardizer.fit: expected a batch"):
        Standardizer().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="Standardizer.fit: x contains NaN"):
        Standardizer().fit(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="Standardizer.fit: expected integer or real"):
        Standardizer().fit(np.ones((2, 2), complex))


def test_flatten_images():
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    flat = flatten_images(x)
    assert flat.shape == (2, 784) and flat.dtype == np.uint8
    np.testing.assert_array_equal(flat[1], x[1].ravel())
    assert flatten_images(np.zeros((3, 1, 4, 5))).shape == (3, 20)
    with pytest.raises(ValueError, match="flatten_images: expected a batch of images .* got "
                                         "shape \\(28, 28\\)"):
        flatten_images(x[0])


def test_one_hot():
    got = one_hot(np.array([2, 0, 1, 2], np.uint8))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.eye(3)[[2, 0, 1, 2]])
    assert one_hot([1], num_classes=4, dtype=np.int64).tolist() == [[0, 1, 0, 0]]
    assert one_hot(np.array([], int), 5).shape == (0, 5)
    with pytest.raises(ValueError, match="one_hot: labels must be in 0..2, got values from 0 "
                                         "to 3"):
        one_hot([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="one_hot: labels must be in 0..2, got values from -1"):
        one_hot([-1, 2])
    with pytest.raises(ValueError, match="one_hot: expected integer labels of shape \\(n,\\), got "
                                         "float64"):
        one_hot([0.0, 1.0])
    with pytest.raises(ValueError, match="one_hot: expected integer labels .* shape \\(2, 1\\)"):
        one_hot([[0], [1]])
    with pytest.raises(ValueError, match="one_hot: cannot infer num_classes"):
        one_hot(np.array([], int))
    with pytest.raises(ValueError, match="one_hot: num_classes must be an integer >= 1"):
        one_hot([0], num_classes=0)


def test_train_validation_split_partitions_and_keeps_pairs():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 3
    (x_tr, y_tr), (x_val, y_val) = train_validation_split(x, y, 0.3, seed=1)
    assert len(x_val) == 3 and len(x_tr) == 7
    np.testing.assert_array_equal(x_tr[:, 0] // 2 * 3, y_tr)
    np.testing.assert_array_equal(x_val[:, 0] // 2 * 3, y_val)
    assert sorted(np.concatenate([y_tr, y_val]).tolist()) == y.tolist()
    (x_again, _), _ = train_validation_split(x, y, 0.3, seed=1)
    np.testing.assert_array_equal(x_again, x_tr)
    rng = np.random.default_rng(0)
    (a, _), _ = train_validation_split(x, y, 0.5, seed=rng)
    (b, _), _ = train_validation_split(x, y, 0.5, seed=rng)
    assert not np.array_equal(a, b)  # a Generator advances


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), "half"])
def test_train_validation_split_refuses_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError, match="train_validation_split: validation_fraction must be in "
                                         "\\(0, 1\\)"):
        train_validation_split(np.zeros((10, 2)), np.zeros(10), fraction, seed=0)


def test_train_validation_split_other_errors():
    with pytest.raises(ValueError, match="train_validation_split: x and y need the same number"):
        train_validation_split(np.zeros((10, 2)), np.zeros(9), 0.2)
    with pytest.raises(ValueError, match="gives 0 validation and 4 training samples"):
        train_validation_split(np.zeros((4, 2)), np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="train_validation_split: seed must be"):
        train_validation_split(np.zeros((4, 2)), np.zeros(4), 0.5, seed=np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"^train_validation_split: seed must be a non-negative "
                                         r"int, got -3$"):
        train_validation_split(np.zeros((4, 2)), np.zeros(4), 0.5, seed=-3)
    with pytest.raises(ValueError, match=r"^batches: seed must be a non-negative int, got -1$"):
        list(batches(5, 2, seed=-1))


def test_batches_in_order_and_shuffled():
    got = list(batches(7, 3, shuffle=False))
    assert [b.tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6]]
    rng = np.random.default_rng(0)
    first = np.concatenate(list(batches(7, 3, seed=rng)))
    second = np.concatenate(list(batches(7, 3, seed=rng)))
    assert sorted(first.tolist()) == list(range(7)) and not np.array_equal(first, second)
    same = [np.concatenate(list(batches(7, 3, seed=5))) for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert list(batches(0, 4)) == []


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 60), batch_size=st.integers(1, 70), shuffle=st.booleans())
def test_batches_cover_every_index_once(n, batch_size, shuffle):
    got = list(batches(n, batch_size, shuffle=shuffle, seed=0))
    assert [len(b) for b in got[:-1]] == [batch_size] * (len(got) - 1)
    assert len(got) == -(-n // batch_size)
    assert sorted(np.concatenate(got or [np.array([], int)]).tolist()) == list(range(n))


@pytest.mark.parametrize("n, batch_size, what", [(10, 0, "batch_size"), (10, -2, "batch_size"),
                                                 (10, 2.5, "batch_size"), (-1, 4, "n"),
                                                 (3.0, 4, "n")])
def test_batches_errors_are_raised_at_the_call(n, batch_size, what):
    with pytest.raises(ValueError, match=f"batches: {what} must be an integer"):
        batches(n, batch_size)
