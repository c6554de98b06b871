"""Ready models: the fully connected (optionally tied) autoencoder of the course assignment."""

from .autoencoder import Autoencoder  # noqa: F401

__all__ = ["Autoencoder"]
