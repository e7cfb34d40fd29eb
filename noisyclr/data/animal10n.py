"""``animal10n``: ANIMAL-10N (Song, Kim & Lee, ICML 2019 "SELFIE"), 10 classes of confusable animals, 64x64 RGB.

    <root>/training/*.jpg     50,000 images; the label is the first character of the file name (0..9)
    <root>/testing/*.jpg       5,000 images, same naming

The training labels come from web search and are themselves noisy (about 8 % by the dataset paper), so the train
table has ``true_labels=None``; the test labels are the clean ones (``true_labels = labels``). Files are read in
sorted name order (the reference scripts use ``os.listdir``, whose order is arbitrary). Decoding and caching go
through :func:`noisyclr.data.folder.load_images_cached`.

Normalisation: the Clothing1M constants, which BPT-PLR's Animal-10N loader uses (sic; docs/data.md,
"Normalisation"); the data's own statistics are in ``info["data_mean"]`` / ``info["data_std"]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .folder import check_positive_option, load_images_cached, visible
from .table import DatasetSplits, ImageTable

# Order of the dataset's label digits as listed by the ANIMAL-10N release: (cat, lynx), (wolf, coyote),
# (cheetah, jaguar), (chimpanzee, orangutan), (hamster, guinea pig). Names are for display only; the labels are
# the digits. One third-party loader claims that 4 and 5 (cheetah/jaguar) are swapped in the actual files (not
# verified here).
CLASS_NAMES = ["cat", "lynx", "wolf", "coyote", "cheetah", "jaguar", "chimpanzee", "orangutan", "hamster", "guinea pig"]

# Clothing1M mean/std, used (sic) by BPT-PLR for Animal-10N (docs/data.md, "Normalisation")
MEAN = (0.6959, 0.6537, 0.6371)
STD = (0.3113, 0.3192, 0.3214)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _listing(root: Path, split: str) -> tuple[list[str], np.ndarray]:
    """Sorted relative paths ``split/<file>`` of the images in ``root/split`` and their first-character labels."""
    folder = root / split
    if not folder.is_dir():
        raise UserError(f"Animal-10N root {root} has no {split}/ folder; point dataset.root at the folder holding "
                        "training/ and testing/")
    names = sorted(e.name for e in os.scandir(folder)
                   if e.is_file() and visible(e.name) and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
    if not names:
        raise UserError(f"{folder} has no .jpg images; expected files named <label>_<id>.jpg")
    labels = []
    for name in names:
        if not name[0].isdigit() or not name[0].isascii():
            raise UserError(f"Animal-10N file {split}/{name} does not start with its label digit 0-9; "
                            "rename or remove it")
        labels.append(int(name[0]))
    return [f"{split}/{n}" for n in names], np.asarray(labels, dtype=np.int64)


def load_animal10n(root, *, cache_dir=None, image_size: int | None = None, workers: int | None = None) -> DatasetSplits:
    """ANIMAL-10N train (``(50000, 64, 64, 3)`` for the full set, noisy labels) and test (clean labels).

    ``image_size`` resizes every image to a square of that side (default: keep 64x64). ``paths`` are relative to
    the root (e.g. ``training/0_00001.jpg``). Raises :class:`UserError` for a missing root or split folder and for
    a file whose name does not start with a digit (naming the file).
    """
    if root is None:
        raise UserError("dataset animal10n needs a root; set dataset.root=PATH (the folder with training/ and testing/)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist; set dataset.root to the Animal-10N folder "
                        "(with training/ and testing/)")
    image_size = check_positive_option("image_size", image_size)
    workers = check_positive_option("workers", workers)
    listing = {split: _listing(root, folder) for split, folder in (("train", "training"), ("test", "testing"))}
    images, data_mean, data_std = load_images_cached(
        root, {split: rels for split, (rels, _) in listing.items()},
        tag="animal10n", image_size=image_size, cache_dir=cache_dir, workers=workers,
    )
    train_rels, train_labels = listing["train"]
    test_rels, test_labels = listing["test"]
    train = ImageTable(images["train"], train_labels, None, list(CLASS_NAMES), paths=train_rels)
    test = ImageTable(images["test"], test_labels, test_labels.copy(), list(CLASS_NAMES), paths=test_rels)
    info = {"root": str(root), "data_mean": data_mean, "data_std": data_std}
    return DatasetSplits("animal10n", train, test, MEAN, STD, info=info)
