"""``tiny_imagenet``: the official ``tiny-imagenet-200`` layout (200 classes, 64x64 RGB).

    tiny-imagenet-200/wnids.txt                      (optional) one wnid per line
    tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 per class
    tiny-imagenet-200/val/images/*.JPEG              10,000, labelled by
    tiny-imagenet-200/val/val_annotations.txt        filename <TAB> wnid <TAB> bbox...

Classes are ordered by sorted wnid and train files by name within a class: the order the reference noise files
use (docs/data.md, "Layouts and sample order"). ``val`` is the test split (the official ``test/`` has no labels).
Decoding and caching go through :func:`noisyclr.data.folder.load_images_cached`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .folder import check_positive_option, load_images_cached, visible
from .table import DatasetSplits, ImageTable

# ImageNet statistics, as the reference code uses for Tiny-ImageNet (docs/data.md, "Normalisation").
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _resolve(root) -> Path:
    if root is None:
        raise UserError("dataset tiny_imagenet needs a root; set dataset.root=PATH (tiny-imagenet-200 or its parent)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist; set dataset.root to the tiny-imagenet-200 folder")
    if (root / "tiny-imagenet-200").is_dir():
        root = root / "tiny-imagenet-200"
    if not (root / "train").is_dir():
        raise UserError(
            f"{root} has no train/ folder; point dataset.root at tiny-imagenet-200 (unzip tiny-imagenet-200.zip there)"
        )
    return root


def _classes(root: Path) -> list[str]:
    folders = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and visible(p.name))
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        if not folders:
            raise UserError(f"{root / 'train'} has no class folders; expected train/<wnid>/images/*.JPEG")
        return folders
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    missing = [w for w in wnids if w not in folders]
    if missing:
        raise UserError(f"wnids.txt lists {missing[0]} but train/{missing[0]}/ is missing; restore it or fix wnids.txt")
    return wnids


def _val_listing(root: Path, index: dict[str, int]) -> tuple[list[str], np.ndarray]:
    ann = root / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise UserError(f"{ann} not found; the val split needs it (filename<TAB>wnid per line)")
    by_name = {}
    for number, line in enumerate(ann.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise UserError(f"{ann} line {number} is not 'filename<TAB>wnid...'; fix that line")
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise UserError(f"{ann} line {number} names class {wnid}, which has no train/{wnid}/ folder; fix that line")
        if not (root / "val" / "images" / name).is_file():
            raise UserError(f"{ann} line {number} names val/images/{name}, which is missing; restore it or drop the line")
        by_name[name] = index[wnid]
    if not by_name:
        raise UserError(f"{ann} lists no images; the val split needs at least one")
    names = sorted(by_name)
    return [f"val/images/{n}" for n in names], np.asarray([by_name[n] for n in names], dtype=np.int64)


def load_tiny_imagenet(root, *, cache_dir=None, workers: int | None = None) -> DatasetSplits:
    """Tiny-ImageNet train (``(100000, 64, 64, 3)`` for the full set) and val as the test split.

    Labels index the sorted wnids; ``class_names`` are the wnids; ``paths`` are relative to the
    ``tiny-imagenet-200`` folder. Normalisation: ImageNet mean/std (docs/data.md, "Normalisation"); the data's
    own statistics are in ``info["data_mean"]``/``info["data_std"]``.
    """
    root = _resolve(root)
    workers = check_positive_option("workers", workers)
    classes = _classes(root)
    index = {w: k for k, w in enumerate(classes)}
    train_rels, train_labels = [], []
    for wnid in classes:
        image_dir = root / "train" / wnid / "images"
        files = sorted(p.name for p in image_dir.iterdir() if p.is_file() and visible(p.name)) if image_dir.is_dir() else []
        if not files:
            raise UserError(f"train/{wnid}/images/ has no images; restore the class or remove it from wnids.txt")
        train_rels += [f"train/{wnid}/images/{f}" for f in files]
        train_labels += [index[wnid]] * len(files)
    test_rels, test_labels = _val_listing(root, index)
    images, data_mean, data_std = load_images_cached(
        root, {"train": train_rels, "test": test_rels}, tag="tiny_imagenet", cache_dir=cache_dir, workers=workers,
    )
    train_labels = np.asarray(train_labels, dtype=np.int64)
    train = ImageTable(images["train"], train_labels, train_labels.copy(), list(classes), paths=train_rels)
    test = ImageTable(images["test"], test_labels, test_labels.copy(), list(classes), paths=test_rels)
    info = {"root": str(root), "data_mean": data_mean, "data_std": data_std}
    return DatasetSplits("tiny_imagenet", train, test, MEAN, STD, info=info)
