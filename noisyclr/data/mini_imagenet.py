"""``mini_imagenet_cnwl``: mini-ImageNet with the Controlled Noisy Web Labels (CNWL, Jiang et al., ICML 2020, "Beyond
synthetic noise") red (real web) and blue (synthetic) label noise, 100 classes, 84x84 RGB.

The layout the Manifold DivideMix, PropMix and FaMUS-style loaders read (``dataset.root`` is this folder, or a folder
holding it as ``mini-imagenet/``)::

    <root>/split/red_noise_nl_<r>      training list of red noise at rate r: one "name.jpg label" per line
    <root>/split/blue_noise_nl_<r>     the same for blue noise
    <root>/split/clean_validation      the clean test list (5,000 images), same line format
    <root>/all_images/<name>           every training image a red or blue list names (web and ImageNet images)
    <root>/validation/<label>/<name>   the test images, in one folder per label

``<r>`` is written as Python writes the float (``0.0``, ``0.2``, ``0.4``, ``0.05``), as the reference code's
``'{}_noise_nl_{}'.format(color, r)`` does. Rows keep the order of their list (the reference order). The labels are
the list's: the noise is real (red) or fixed by the release (blue), so nothing is injected here and the train table
has ``true_labels=None``; the lists carry no clean mark (docs/data.md, "mini-ImageNet (CNWL red/blue)"). The test
labels are the clean ones. Decoding and caching go through :func:`noisyclr.data.folder.load_images_cached`;
:func:`list_mini_imagenet_cnwl` lists the same splits for a streamed run.

Normalisation: the constants of Manifold DivideMix's mini-ImageNet script; the data's own statistics are in
``info["data_mean"]`` / ``info["data_std"]``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .folder import _decode_one, check_positive_option, load_images_cached
from .table import DatasetSplits, FileTable, ImageTable

# Manifold DivideMix train_semisup_miniimagenet.py, transforms.Normalize (docs/data.md, "Normalisation")
MEAN = (0.4728, 0.4487, 0.4031)
STD = (0.2744, 0.2663, 0.2806)

NUM_CLASSES = 100
COLORS = ("red", "blue")
#: side every image is resized to unless dataset.options.image_size says otherwise: the release's 84x84
DEFAULT_IMAGE_SIZE = 84
SPLIT_DIR = "split"
TEST_LIST = "clean_validation"
TRAIN_DIR = "all_images"
TEST_DIR = "validation"
# A mini-ImageNet (ImageNet-derived) file of the release: synset + 8-digit index, e.g. n0144076400000009.jpg; a web
# image is named by its 16-hex-digit CNWL id (the convention of TFDS's controlled_noisy_web_labels builder).
_IMAGENET_NAME = re.compile(r"n\d{16}\.[A-Za-z]+")

CLASS_NAMES = [str(k) for k in range(NUM_CLASSES)]


def split_file_name(color: str, noise_rate: float) -> str:
    """``<color>_noise_nl_<r>``, the name of a CNWL training list (``r`` as Python prints the float)."""
    return f"{color}_noise_nl_{float(noise_rate)}"


def _check_options(color, noise_rate, image_size, workers) -> tuple[str, float, int | None, int | None]:
    if color not in COLORS:
        raise UserError(f"dataset.options.color must be red or blue (the CNWL noise), got {color!r}")
    rate = noise_rate
    if isinstance(rate, str):
        try:
            rate = float(rate)
        except ValueError:
            pass
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(rate) < 1.0:
        raise UserError(f"dataset.options.noise_rate must be a number in [0, 1), the r of split/{color}_noise_nl_<r> "
                        f"(e.g. 0.4), got {noise_rate!r}")
    return (color, float(rate), check_positive_option("image_size", image_size),
            check_positive_option("workers", workers))


def _resolve(root) -> Path:
    if root is None:
        raise UserError("dataset mini_imagenet_cnwl needs a root; set dataset.root=PATH (the folder with split/, "
                        "all_images/ and validation/)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist; set dataset.root to the CNWL mini-ImageNet folder "
                        "(with split/, all_images/ and validation/)")
    if not (root / SPLIT_DIR).is_dir() and (root / "mini-imagenet" / SPLIT_DIR).is_dir():
        root = root / "mini-imagenet"
    if not (root / SPLIT_DIR).is_dir():
        raise UserError(f"{root} has no split/ folder; point dataset.root at the CNWL mini-ImageNet folder holding "
                        "split/{red,blue}_noise_nl_<r>, split/clean_validation, all_images/ and validation/")
    return root


def _split_files(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_file() and "_noise_nl_" in e.name)


def _read_list(path: Path, shown: str) -> tuple[list[str], np.ndarray, list[int]]:
    """Names, labels and line numbers of a CNWL list (``name label`` per line, blank lines skipped), in file
    order."""
    names, labels, lines = [], [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise UserError(f"{shown} line {number} is not 'name.jpg label' ({line.strip()[:60]!r}); fix that line")
            name, label = fields
            try:
                value = int(label)
            except ValueError:
                raise UserError(f"{shown} line {number} has label {label!r}, not an integer; fix that line") from None
            if not 0 <= value < NUM_CLASSES:
                raise UserError(f"{shown} line {number} has label {value}, outside 0..{NUM_CLASSES - 1} (mini-ImageNet "
                                "has 100 classes); fix that line")
            if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise UserError(f"{shown} line {number} names {name}, which is not a path inside its image folder; "
                                "fix that line")
            names.append(name)
            labels.append(value)
            lines.append(number)
    if not names:
        raise UserError(f"{shown} lists no images; it needs 'name.jpg label' lines")
    return names, np.asarray(labels, dtype=np.int64), lines


def _check_files(root: Path, rels: list[str], lines: list[int], shown: str, folder: str) -> None:
    """Every listed image exists (a UserError naming the first missing one and how many are missing)."""
    if not (root / folder).is_dir():
        raise UserError(f"{root} has no {folder}/ folder, where the images of {shown} belong; put them there")
    missing = [i for i, rel in enumerate(rels) if not os.path.isfile(root / rel)]
    if missing:
        more = f" ({len(missing)} listed images are missing in all)" if len(missing) > 1 else ""
        raise UserError(f"{shown} line {lines[missing[0]]} names {rels[missing[0]]}, which is missing under "
                        f"{root}{more}; restore the images or drop those lines")


def _listing(root: Path, color: str, noise_rate: float):
    """``(train_rels, train_labels, test_rels, test_labels, split_name)``, every listed file checked to exist."""
    split_dir = root / SPLIT_DIR
    name = split_file_name(color, noise_rate)
    if not (split_dir / name).is_file():
        present = _split_files(split_dir)
        there = f"the split files there: {', '.join(present)}" if present else "split/ holds no *_noise_nl_* file"
        raise UserError(f"no split/{name} under {root} for color={color}, noise_rate={noise_rate:g}; {there}; set "
                        "dataset.options.color and dataset.options.noise_rate to one of them")
    if not (split_dir / TEST_LIST).is_file():
        raise UserError(f"no split/{TEST_LIST} under {root}; the test split needs it ('name.jpg label' per line, "
                        f"images in {TEST_DIR}/<label>/)")
    names, train_labels, lines = _read_list(split_dir / name, f"split/{name}")
    train_rels = [f"{TRAIN_DIR}/{n}" for n in names]
    _check_files(root, train_rels, lines, f"split/{name}", TRAIN_DIR)
    names, test_labels, lines = _read_list(split_dir / TEST_LIST, f"split/{TEST_LIST}")
    test_rels = [f"{TEST_DIR}/{label}/{n}" for n, label in zip(names, test_labels.tolist())]
    _check_files(root, test_rels, lines, f"split/{TEST_LIST}", TEST_DIR)
    return train_rels, train_labels, test_rels, test_labels, name


def _info(root: Path, color: str, noise_rate: float, split_name: str, train_rels: list[str]) -> dict:
    from_imagenet = np.array([bool(_IMAGENET_NAME.fullmatch(rel.rsplit("/", 1)[-1])) for rel in train_rels])
    return {"root": str(root), "color": color, "noise_rate": noise_rate, "split_file": f"{SPLIT_DIR}/{split_name}",
            # which training rows are named like a mini-ImageNet (ImageNet-derived) file rather than a web image id;
            # a diagnostic, not a clean mark (docs/data.md, "mini-ImageNet (CNWL red/blue)")
            "imagenet_named": from_imagenet}


def load_mini_imagenet_cnwl(root, *, cache_dir=None, color: str = "red", noise_rate: float = 0.2,
                            image_size: int | None = DEFAULT_IMAGE_SIZE, workers: int | None = None) -> DatasetSplits:
    """The CNWL training list ``split/<color>_noise_nl_<noise_rate>`` (its labels, ``true_labels=None``) and
    ``split/clean_validation`` as the test split (clean labels), every image resized to ``image_size`` squared
    (default 84, the release's size; 32 for a CIFAR-sized backbone input; ``null`` keeps the files' size, which must
    then agree). Defaults ``red`` / ``0.2`` are the seed's. ``paths`` are relative to the root
    (``all_images/<name>``, ``validation/<label>/<name>``). Raises :class:`UserError` for a missing root, split
    folder or list (naming the split files present), a malformed line, a label outside 0..99 and a listed image
    that is missing.
    """
    color, noise_rate, image_size, workers = _check_options(color, noise_rate, image_size, workers)
    root = _resolve(root)
    train_rels, train_labels, test_rels, test_labels, split_name = _listing(root, color, noise_rate)
    # two cache entries: the training list (one per colour and rate) and the shared test list, so that switching
    # the split neither rebuilds nor duplicates the 5,000 test images
    train_images, data_mean, data_std = load_images_cached(
        root, {"train": train_rels}, tag=f"mini_imagenet_cnwl-{split_name}", image_size=image_size,
        cache_dir=cache_dir, workers=workers)
    test_images, _, _ = load_images_cached(
        root, {"test": test_rels}, tag="mini_imagenet_cnwl-clean_validation", image_size=image_size,
        cache_dir=cache_dir, workers=workers, stats_split="test")
    train = ImageTable(train_images["train"], train_labels, None, list(CLASS_NAMES), paths=train_rels)
    test = ImageTable(test_images["test"], test_labels, test_labels.copy(), list(CLASS_NAMES), paths=test_rels)
    info = _info(root, color, noise_rate, split_name, train_rels)
    info.update(data_mean=data_mean, data_std=data_std)
    return DatasetSplits("mini_imagenet_cnwl", train, test, MEAN, STD, info=info)


def list_mini_imagenet_cnwl(root, *, cache_dir=None, color: str = "red", noise_rate: float = 0.2,
                            image_size: int | None = DEFAULT_IMAGE_SIZE, workers: int | None = None) -> DatasetSplits:
    """The same splits as :func:`load_mini_imagenet_cnwl` as :class:`FileTable` listings (a streamed run): the files
    are checked to exist but not decoded (except the first of each split when ``image_size`` is ``null``, for its
    size). ``mean``/``std`` are the seed's constants. ``cache_dir`` and ``workers`` are accepted and unused."""
    color, noise_rate, image_size, _ = _check_options(color, noise_rate, image_size, workers)
    root = _resolve(root)
    train_rels, train_labels, test_rels, test_labels, split_name = _listing(root, color, noise_rate)
    real = os.path.realpath(root)
    tables = {}
    for split, rels, labels in (("train", train_rels, train_labels), ("test", test_rels, test_labels)):
        if image_size is None:
            shape = _decode_one(os.path.join(real, rels[0]), rels[0], None).shape
        else:
            shape = (image_size, image_size, 3)
        true = None if split == "train" else labels.copy()
        tables[split] = FileTable(real, rels, labels, true, list(CLASS_NAMES), image_shape=shape,
                                  image_size=image_size)
    info = _info(root, color, noise_rate, split_name, train_rels)
    return DatasetSplits("mini_imagenet_cnwl", tables["train"], tables["test"], MEAN, STD, info=info)
