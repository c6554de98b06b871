"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as in the problem book's exercise 44 b-c.

conv 6@5x5 (padding 2) - ReLU - max-pool 2 - conv 16@5x5 - ReLU - max-pool 2 - flatten -
dense 120 - ReLU - dense 84 - ReLU - dense num_classes (logits). On 28x28 inputs the padding of
the first convolution gives it the 32x32 geometry of the original: 61,706 parameters.
"""

from __future__ import annotations

from typing import Any

__all__ = ["lenet5"]


def lenet5(input_shape: tuple = (1, 28, 28), num_classes: int = 10, *,
           mean: float | None = None, std: float | None = None, padding: Any = 2,
           seed: Any = 0) -> Any:
    """A ``pearlnet.Model`` (ready for compile/fit) taking NCHW images of ``input_shape``
    (channels, height, width) and returning logits for ``num_classes`` classes.

    ``mean`` and ``std``, when given, add a ``Standardize`` layer first (raw pixels in, the
    training set's statistics saved with the model); ``padding=0`` gives the exercise's
    unpadded variant (44,426 parameters on 28x28).

    >>> lenet5().count_params()
    61706
    >>> lenet5(padding=0).count_params()
    44426
    """
    from pearlnet import nn
    from pearlnet.train import Model

    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"lenet5: input_shape must be (channels, height, width), got "
                         f"{input_shape}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"lenet5: num_classes must be an integer >= 2, got {num_classes!r}")
    if (mean is None) != (std is None):
        raise ValueError("lenet5: give both mean and std, or neither")
    layers: list = []
    if mean is not None:
        layers.append(nn.Standardize(mean, std))
    layers += [
        nn.Conv2D(6, 5, padding=padding, activation="relu"),
        nn.MaxPool2D(2),
        nn.Conv2D(16, 5, activation="relu"),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(120, activation="relu"),
        nn.Dense(84, activation="relu"),
        nn.Dense(num_classes),
    ]
    layers[0].input_shape = input_shape
    model = Model(layers, seed=seed)
    model.build_model()
    return model
