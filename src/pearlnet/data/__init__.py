"""Datasets: the IDX reader (more loaders arrive with the training issue)."""

from .idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx  # noqa: F401

__all__ = ["read_idx", "IDXError", "IMAGES_MAGIC", "LABELS_MAGIC"]
