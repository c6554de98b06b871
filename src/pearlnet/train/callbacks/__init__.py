"""Callbacks for ``Model.fit`` (Keras' names and hooks)."""

from .base import Callback, CallbackList  # noqa: F401
from .csv_logger import CSVLogger  # noqa: F401
from .early_stopping import EarlyStopping  # noqa: F401
from .history import History  # noqa: F401
from .lr_scheduler import LearningRateScheduler  # noqa: F401
from .model_checkpoint import ModelCheckpoint  # noqa: F401
from .terminate_on_nan import TerminateOnNaN  # noqa: F401

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
           "LearningRateScheduler", "TerminateOnNaN"]
