"""Every loss of the library, once, as pure functions of tensors (no state, no config).

* :mod:`.classification`: CE, soft CE, GCE, MAE, symmetric CE (hard and soft targets), the negative-entropy
  penalty, entropy and marginal entropy;
* :mod:`.contrastive`: the PLR loss (flat and non-flat) with its reliable-negative mask, FlatNCE, InfoNCE/NT-Xent;
* :mod:`.semi`: DivideMix/MixMatch pieces (sharpen, co-refine, co-guess, mixmatch, L_x/L_u, ramp-up, prior) and
  TCL's cross-supervised targets.

Methods compose these; tests check each against hand-computed values.
"""

from .classification import (
    CLASSIFICATION_LOSSES,
    classification_loss,
    cross_entropy,
    entropy,
    generalized_cross_entropy,
    marginal_negative_entropy,
    mean_absolute_error,
    negative_entropy,
    soft_cross_entropy,
    soft_symmetric_cross_entropy,
    symmetric_cross_entropy,
)
from .contrastive import flat_nce_loss, info_nce_loss, kappa_schedule, nt_xent, plr_loss, reliable_negative_mask
from .semi import (
    co_guess,
    co_refine,
    cross_supervised_targets,
    lambda_u_at,
    mixmatch,
    mixmatch_losses,
    sharpen,
    squared_error,
    uniform_prior_penalty,
)

__all__ = [
    "CLASSIFICATION_LOSSES",
    "classification_loss",
    "co_guess",
    "co_refine",
    "cross_entropy",
    "cross_supervised_targets",
    "entropy",
    "flat_nce_loss",
    "generalized_cross_entropy",
    "info_nce_loss",
    "kappa_schedule",
    "lambda_u_at",
    "marginal_negative_entropy",
    "mean_absolute_error",
    "mixmatch",
    "mixmatch_losses",
    "negative_entropy",
    "nt_xent",
    "plr_loss",
    "reliable_negative_mask",
    "sharpen",
    "soft_cross_entropy",
    "soft_symmetric_cross_entropy",
    "squared_error",
    "symmetric_cross_entropy",
    "uniform_prior_penalty",
]
