"""Batched device-side augmentation: primitives (:mod:`.basic`) and named views (:mod:`.views`)."""

from noisyclr.augment.basic import center_crop, normalize, random_crop, random_hflip
from noisyclr.augment.views import (
    VIEWS, CenterCrop, Normalize, RandomCrop, RandomHFlip, View, build_view, make_views, register_view,
)

__all__ = [
    "normalize", "random_crop", "random_hflip", "center_crop",
    "View", "Normalize", "RandomCrop", "RandomHFlip", "CenterCrop",
    "VIEWS", "build_view", "make_views", "register_view",
]

# registers the strong views (AutoAugment "strong" / "strong_imagenet", "randaug")
from noisyclr.augment import autoaugment  # noqa: E402,F401
# registers the SimCLR "contrastive" view (no normalisation, [0, 1]) and its evaluation counterpart "unit"
from noisyclr.augment import contrastive  # noqa: E402,F401
