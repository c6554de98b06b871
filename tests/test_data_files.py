"""The user's own data files (issue 23): .npz arrays and .csv tables, checked before training."""

import numpy as np
import pytest

from pearlnet.data import DataFileError, load_data_file


def npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_an_npz_with_a_test_set_and_a_csv_table_load(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 4, 20)
    d = load_data_file(npz(tmp_path, x_train=x, y_train=y, x_test=x[:5], y_test=y[:5]))
    assert d.classes == int(y.max()) + 1 and d.x_test.shape == (5, 3)
    np.testing.assert_array_equal(d.x_train, x)
    table = tmp_path / "t.csv"
    table.write_text("a,label,b\n1.5,0,2\n-1,2,3e-3\n\n4,1,5\n")
    d = load_data_file(table, target="label")
    np.testing.assert_array_equal(d.x_train, [[1.5, 2], [-1, 3e-3], [4, 5]])
    np.testing.assert_array_equal(d.y_train, [0, 2, 1])
    assert d.classes == 3 and d.x_test is None and d.y_train.dtype == np.int64
    reg = load_data_file(table, target="label", task="regress")
    assert reg.classes == 0 and reg.y_train.dtype == np.float64
    floats = tmp_path / "f.csv"
    floats.write_text("x,y\n1,0.5\n2,1.5\n")
    assert load_data_file(floats, target="y").classes == 0


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=np.ones((3, 2))), r"expected arrays x_train and y_train .* y_train missing"),
    (dict(x_train=np.ones((3, 2)), y_train=np.zeros(2, int)),
     r"y_train must have one target per sample \(3\), got 2"),
    (dict(x_train=np.ones(3), y_train=np.zeros(3, int)), r"x_train must have a sample axis"),
    (dict(x_train=np.ones((0, 2)), y_train=np.zeros(0, int)), "x_train holds no samples"),
    (dict(x_train=np.array([[1.0, np.nan], [np.inf, 0]]), y_train=np.zeros(2, int)),
     r"x_train has 2 NaN or infinite values \(the first at index \(0, 1\)\)"),
    (dict(x_train=np.ones((2, 2)), y_train=np.array([0, -1])), "negative label -1"),
    (dict(x_train=np.ones((2, 2)), y_train=np.array([0, 1]), x_test=np.ones((1, 2)),
          y_test=np.array([5])), r"y_test has label 5, but y_train's labels go only to 1"),
    (dict(x_train=np.ones((2, 2)), y_train=np.array([0, 1]), x_test=np.ones((1, 3)),
          y_test=np.array([0])), r"x_test's samples have shape \(3,\), x_train's \(2,\)"),
    (dict(x_train=np.ones((2, 2)), y_train=np.array([0, 1]), x_test=np.ones((1, 2))),
     "x_test without its partner"),
    (dict(x_train=np.array([["a", "b"]]), y_train=np.zeros(1, int)),
     "x_train must hold numbers, got dtype <U1"),
    (dict(x_train=np.ones((2, 2)), y_train=np.zeros(2, int), w=np.ones(2)),
     r"unexpected arrays \['w'\]"),
])
def test_bad_npz_files_are_one_line_errors(arrays, message, tmp_path):
    with pytest.raises(DataFileError, match=message):
        load_data_file(npz(tmp_path, **arrays))


@pytest.mark.parametrize("text, target, message", [
    ("", "y", "the file is empty"),
    ("a,y\n", "y", "a header row but no samples"),
    ("a,b\n1,2\n", "y", "no column 'y'; the columns are 'a', 'b'"),
    ("a,y\n1,2\n3\n", "y", "line 3 has 1 cells, the header 2"),
    ("a,y\n1,\n", "y", "line 2, column 'y': an empty cell"),
    ("a,y\nx,1\n", "y", "line 2, column 'a': 'x', not a number"),
    ("a,y\nnan,1\n", "y", "x_train has 1 NaN or infinite values"),
    ("y\n1\n", "y", "expected feature columns besides 'y'"),
    ("a,a,y\n1,2,3\n", "y", "column names must be unique"),
])
def test_bad_tables_are_one_line_errors(text, target, message, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        load_data_file(path, target=target)


def test_files_that_are_not_data_files(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        load_data_file(tmp_path / "missing.npz")
    with pytest.raises(DataFileError, match="is empty"):
        (tmp_path / "empty.npz").write_bytes(b"")
        load_data_file(tmp_path / "empty.npz")
    with pytest.raises(DataFileError, match=r"expected an \.npz file .* or a \.csv table"):
        load_data_file(tmp_path / "d.txt")
    with pytest.raises(DataFileError, match="needs the name of its label column"):
        load_data_file(tmp_path / "d.csv")
    with pytest.raises(DataFileError, match="a classification needs whole-number labels"):
        path = tmp_path / "f.csv"
        path.write_text("x,y\n1,0.5\n")
        load_data_file(path, target="y", task="classify")
