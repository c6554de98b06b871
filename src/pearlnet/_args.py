"""argparse value types shared by the ``pearlnet`` command and ``pearlnet.demo``."""

from __future__ import annotations

import argparse


def non_negative_int(text: str) -> int:
    """A seed: an integer >= 0 (NumPy's generators refuse negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value
