"""The user's own data: arrays from an .npz file, or a table of numbers from a .csv file.

Everything is checked before it is returned, so a bad file is a one-line ``DataFileError``
naming the problem (what was expected, what came, where), never a wrong model or a traceback
from deep in a training run: a missing file or array, an empty one, arrays whose numbers of
samples disagree, values that are not numbers, NaN or infinity (with their count and first
position), labels that are negative or that the test set has and the training set lacks, and
in a table a missing target column, a ragged row or an empty cell.

The task: ``task="classify"`` wants whole-number labels >= 0 of shape (N,) (or (N, 1)) and
gives ``int(y_train.max()) + 1`` classes; ``"regress"`` takes the targets as values;
``"auto"`` (the default) classifies integer arrays in an .npz file and a table's column of
whole numbers >= 0, and regresses anything else. Pass the task when a column of whole numbers
is a quantity (a count, a price), not a class.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pearlnet._files import read_npz

__all__ = ["DataFileError", "UserData", "load_data_file", "load_npz_data", "load_csv_data"]


class DataFileError(ValueError):
    """A data file that cannot be trained on; the message is one line naming the problem."""


class UserData(NamedTuple):
    """Arrays from a data file: the training pair, the test pair (None when the file has
    none), and the number of classes (0 for a regression)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: int


_TASKS = ("auto", "classify", "regress")


def load_data_file(path: str | os.PathLike, target: str | None = None,
                   task: str = "auto") -> UserData:
    """An .npz file (``target`` must be None) or a .csv file (``target``: the label
    column), checked; ``task`` as in the module's docstring."""
    if task not in _TASKS:
        raise ValueError(f"load_data_file: task must be one of {_TASKS}, got {task!r}")
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        if target is not None:
            raise DataFileError(f"{path}: --target names a column of a .csv table; an .npz "
                                f"file holds x_train and y_train arrays")
        return load_npz_data(path, task)
    if suffix == ".csv":
        if target is None:
            raise DataFileError(f"{path}: a .csv table needs the name of its label column "
                                f"(--target COLUMN)")
        return load_csv_data(path, target, task)
    raise DataFileError(f"{path}: expected an .npz file (arrays x_train, y_train, and "
                        f"optionally x_test, y_test) or a .csv table, got a "
                        f"{suffix or 'suffix-less'} file")


def load_npz_data(path: str | os.PathLike, task: str = "auto") -> UserData:
    """x_train and y_train, and optionally x_test and y_test, from an .npz archive."""
    try:
        arrays = read_npz(path, "data file", "an .npz archive of arrays")
    except (OSError, ValueError) as err:
        raise DataFileError(str(err).replace("data file: ", "")) from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataFileError(f"{path}: expected arrays x_train and y_train (and optionally "
                            f"x_test, y_test), got {sorted(arrays) or 'none'}: "
                            f"{' and '.join(missing)} missing")
    if ("x_test" in arrays) != ("y_test" in arrays):
        have = "x_test" if "x_test" in arrays else "y_test"
        raise DataFileError(f"{path}: {have} without its partner; give both x_test and "
                            f"y_test, or neither")
    extra = sorted(set(arrays) - {"x_train", "y_train", "x_test", "y_test"})
    if extra:
        raise DataFileError(f"{path}: unexpected arrays {extra}; expected x_train, y_train, "
                            f"x_test, y_test")
    return _checked(str(path), arrays["x_train"], arrays["y_train"], arrays.get("x_test"),
                    arrays.get("y_test"), task)


def load_csv_data(path: str | os.PathLike, target: str, task: str = "auto") -> UserData:
    """A table with a header row: ``target`` is the label column, every other column a
    feature. All cells must be numbers. There is no test set in a table."""
    try:
        fh = open(path, newline="")
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as err:
        raise DataFileError(f"{path}: cannot open it ({err.strerror or err})") from None
    with fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if r]  # blank lines
    if not rows:
        raise DataFileError(f"{path}: the file is empty; expected a header row naming the "
                            f"columns, then one row per sample")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise DataFileError(f"{path}: no column {target!r}; the columns are "
                            f"{', '.join(map(repr, header))}")
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise DataFileError(f"{path}: column names must be unique, {twice} appear twice")
    if len(header) < 2:
        raise DataFileError(f"{path}: expected feature columns besides {target!r}, got none")
    body = rows[1:]
    if not body:
        raise DataFileError(f"{path}: a header row but no samples")
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataFileError(f"{path}: line {i} has {len(row)} cells, the header "
                                f"{len(header)}")
        for j, cell in enumerate(row):
            text = cell.strip()
            try:
                values[i - 2, j] = float(text)
            except ValueError:
                what = "an empty cell" if not text else f"{text!r}, not a number"
                raise DataFileError(f"{path}: line {i}, column {header[j]!r}: {what}") from None
    t = header.index(target)
    x = np.delete(values, t, axis=1)
    y = values[:, t]
    if task == "auto" and np.isfinite(y).all() and (y == np.round(y)).all() and \
            (y >= 0).all():
        y = y.astype(np.int64)  # whole numbers: class labels
    return _checked(str(path), x, y, None, None, task)


def _checked(where: str, x: Any, y: Any, xt: Any, yt: Any, task: str) -> UserData:
    x, y = _numbers(where, "x_train", x), _numbers(where, "y_train", y)
    y = _as_task(where, "y_train", y, task)
    if xt is not None:
        yt = _as_task(where, "y_test", _numbers(where, "y_test", yt), task)
    if x.ndim < 2:
        raise DataFileError(f"{where}: x_train must have a sample axis and features, shape "
                            f"(N, features...), got shape {x.shape}")
    if len(x) == 0:
        raise DataFileError(f"{where}: x_train holds no samples")
    y = _targets(where, "y_train", y, len(x))
    classes = int(y.max()) + 1 if y.dtype.kind in "iu" else 0
    if xt is not None:
        xt, yt = _numbers(where, "x_test", xt), _numbers(where, "y_test", yt)
        if xt.shape[1:] != x.shape[1:]:
            raise DataFileError(f"{where}: x_test's samples have shape {xt.shape[1:]}, "
                                f"x_train's {x.shape[1:]}")
        yt = _targets(where, "y_test", yt, len(xt))
        if (yt.dtype.kind in "iu") != (y.dtype.kind in "iu"):
            raise DataFileError(f"{where}: y_train holds {_kind(y)} and y_test {_kind(yt)}; "
                                f"both must be labels or both values")
        if classes and len(yt) and int(yt.max()) >= classes:
            raise DataFileError(f"{where}: y_test has label {int(yt.max())}, but y_train's "
                                f"labels go only to {classes - 1}")
        if not classes and yt.shape[1:] != y.shape[1:]:
            raise DataFileError(f"{where}: y_test's rows have shape {yt.shape[1:]}, "
                                f"y_train's {y.shape[1:]}")
    return UserData(x, y, xt, yt, classes)


def _as_task(where: str, name: str, y: np.ndarray, task: str) -> np.ndarray:
    """Labels as int64 for a classification, values as floats for a regression."""
    if task == "regress":
        return y.astype(np.float64) if y.dtype.kind in "iu" else y
    if task == "classify" and y.dtype.kind == "f":
        if not (y == np.round(y)).all():
            raise DataFileError(f"{where}: a classification needs whole-number labels in "
                                f"{name}, got values such as {float(y[y != np.round(y)][0]):g}")
        return y.astype(np.int64)
    return y


def _kind(y: np.ndarray) -> str:
    return "integer labels" if y.dtype.kind in "iu" else "values (floats)"


def _numbers(where: str, name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.dtype.kind not in "iuf":
        raise DataFileError(f"{where}: {name} must hold numbers, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataFileError(f"{where}: {name} has {int(bad.sum())} NaN or infinite "
                                f"values (the first at index {first})")
    return a


def _targets(where: str, name: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 0 or len(y) != n:
        got = "a scalar" if y.ndim == 0 else f"{len(y)}"
        raise DataFileError(f"{where}: {name} must have one target per sample ({n}), got "
                            f"{got}")
    if y.dtype.kind in "iu":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataFileError(f"{where}: integer {name} must be labels of shape ({n},), "
                                f"got shape {y.shape}")
        if len(y) and int(y.min()) < 0:
            raise DataFileError(f"{where}: {name} has the negative label {int(y.min())}; "
                                f"labels are 0, 1, 2, ...")
        return y.astype(np.int64, copy=False)
    return y
