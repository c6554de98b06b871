"""Datasets: the IDX reader, MNIST / Fashion-MNIST / digits loaders, noisy sine waves, and
preprocessing helpers."""

from .digits import load_digits  # noqa: F401
from .files import DataFileError, UserData, load_data_file  # noqa: F401
from .idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx  # noqa: F401
from .mnist import (  # noqa: F401
    FASHION_MNIST_CLASSES,
    ChecksumError,
    DatasetNotFoundError,
    download_dataset,
    load_fashion_mnist,
    load_mnist,
)
from .preprocess import (  # noqa: F401
    Standardizer,
    batches,
    flatten_images,
    one_hot,
    train_validation_split,
)
from .sine import last_value_mse, load_sine  # noqa: F401

__all__ = ["read_idx", "IDXError", "IMAGES_MAGIC", "LABELS_MAGIC",
           "load_mnist", "load_fashion_mnist", "download_dataset", "DatasetNotFoundError",
           "ChecksumError", "FASHION_MNIST_CLASSES", "load_digits",
           "Standardizer", "flatten_images", "one_hot", "train_validation_split", "batches",
           "load_sine", "last_value_mse", "load_data_file", "DataFileError", "UserData"]
