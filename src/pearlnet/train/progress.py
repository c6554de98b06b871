"""A progress bar per epoch: tqdm when it is installed, a one-line fallback otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class _LineBar:
    """The fallback: one carriage-returned line, redrawn at most ten times a second."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.postfix = ""
        self.start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last > 0.1 or self.n == self.total:
            self._last = now
            self._draw(now)

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def refresh(self) -> None:
        self._draw(time.perf_counter())

    def _draw(self, now: float) -> None:
        width = 30
        done = int(width * self.n / max(self.total, 1))
        sys.stderr.write(f"\r{self.desc} [{'=' * done}{' ' * (width - done)}] "
                         f"{self.n}/{self.total} {now - self.start:.1f}s {self.postfix}")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        sys.stderr.write("\n")


def progress_bar(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _LineBar(total, desc)
    return tqdm(total=total, desc=desc, leave=True, dynamic_ncols=True, mininterval=0.1)
