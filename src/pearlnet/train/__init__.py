"""pearlnet.train: the Keras-style Model, its callbacks, metrics and model files."""

from . import callbacks, metrics  # noqa: F401
from .callbacks import (  # noqa: F401
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from .io import load_model, save_model  # noqa: F401
from .model import Model  # noqa: F401

__all__ = ["Model", "load_model", "save_model", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "CSVLogger", "LearningRateScheduler", "TerminateOnNaN",
           "callbacks", "metrics"]
