"""Ready models: the fully connected (optionally tied) autoencoder of the course assignment,
LeNet-5, and LSTM sequence models."""

from .autoencoder import Autoencoder  # noqa: F401
from .lenet import lenet5  # noqa: F401
from .sequence import lstm_classifier, lstm_regressor  # noqa: F401

__all__ = ["Autoencoder", "lenet5", "lstm_regressor", "lstm_classifier"]
