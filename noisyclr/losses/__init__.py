"""Every loss of the library, once, as pure functions of tensors (no state, no config).

Methods compose these; tests check each against hand-computed values.
"""

from .classification import (
    CLASSIFICATION_LOSSES,
    classification_loss,
    cross_entropy,
    generalized_cross_entropy,
    mean_absolute_error,
    negative_entropy,
    soft_cross_entropy,
)

__all__ = [
    "CLASSIFICATION_LOSSES",
    "classification_loss",
    "cross_entropy",
    "generalized_cross_entropy",
    "mean_absolute_error",
    "negative_entropy",
    "soft_cross_entropy",
]
