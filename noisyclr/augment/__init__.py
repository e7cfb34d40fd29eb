"""Batched device-side augmentation: primitives (:mod:`.basic`) and named views (:mod:`.views`)."""

from noisyclr.augment.basic import center_crop, normalize, random_crop, random_hflip, random_resized_crop
from noisyclr.augment.views import (
    CROP_MODES, VIEWS, CenterCrop, Normalize, RandomCrop, RandomHFlip, RandomResizedCrop, View, build_view,
    check_crop, crop_ops, make_views, register_view,
)

__all__ = [
    "normalize", "random_crop", "random_hflip", "center_crop", "random_resized_crop",
    "View", "Normalize", "RandomCrop", "RandomHFlip", "CenterCrop", "RandomResizedCrop",
    "VIEWS", "build_view", "make_views", "register_view", "crop_ops", "check_crop", "CROP_MODES",
]

# registers the strong views (AutoAugment "strong" / "strong_imagenet", "randaug")
from noisyclr.augment import autoaugment  # noqa: E402,F401
# registers the SimCLR "contrastive" view (no normalisation, [0, 1]) and its evaluation counterpart "unit"
from noisyclr.augment import contrastive  # noqa: E402,F401
