"""CSVLogger: each epoch's figures as a row of a CSV file (Keras' name and columns)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from pearlnet._files import replacing

from .base import Callback


class CSVLogger(Callback):
    """Write ``epoch`` and every logged figure (``loss``, the metrics, their ``val_`` twins,
    ``lr``...) as one row per epoch to ``path``, with a header row, as Keras' CSVLogger does.

    The whole file is rewritten atomically after every epoch, so a crash never leaves half a
    row. With ``append=True`` (a resumed run, ``fit(initial_epoch=k)``) the rows already in
    the file are kept up to epoch k and the new epochs follow; rows of epochs at or after k
    (written before a crash, after the last checkpoint) are dropped, so the file lists each
    epoch once, as the uninterrupted run would. In a data-parallel fit rank 0 writes.

    >>> import numpy as np, pearlnet, pearlnet.nn as nn, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> m = pearlnet.Model([nn.Dense(2, input_shape=(3,))])
    >>> m.compile(loss="mean_squared_error", optimizer="sgd")
    >>> _ = m.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=2, verbose=0,
    ...           callbacks=[CSVLogger(path)])
    >>> Path(path).read_text().splitlines()[0]
    'epoch,loss'
    """

    def __init__(self, path: str, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.path, self.separator, self.append = str(path), separator, bool(append)
        self.rows: list[dict] = []
        self.keys: list[str] = []

    def _writes(self) -> bool:
        comm = getattr(self.model, "_comm", None)
        return comm is None or comm.rank == 0

    def on_train_begin(self, logs=None):
        self.rows, self.keys = [], []
        path = Path(self.path)
        if self.append and path.exists():
            start = (getattr(self.model, "training_progress", None) or {}).get("epoch", 0)
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh, delimiter=self.separator)
                self.keys = [k for k in (reader.fieldnames or []) if k != "epoch"]
                for row in reader:
                    try:
                        if int(row["epoch"]) < start:
                            self.rows.append(row)
                    except (KeyError, TypeError, ValueError):
                        raise ValueError(f"CSVLogger: {path} is not a log this callback wrote "
                                         f"(a row without an integer 'epoch': {row})") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        for key in logs:
            if key not in self.keys:
                self.keys.append(key)
        self.rows.append({"epoch": epoch, **{k: _fmt(v) for k, v in logs.items()}})
        if not self._writes():
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["epoch", *self.keys], delimiter=self.separator,
                                restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        with replacing(self.path, "CSVLogger") as tmp:
            tmp.write_text(text.getvalue())


def _fmt(value: object) -> object:
    """Figures as repr-exact text (nan and inf as Python writes them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(float(value)) if isinstance(value, float) else value
