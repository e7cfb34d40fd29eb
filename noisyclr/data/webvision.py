"""``webvision``: mini-WebVision, the first 50 classes of the Google subset of WebVision 1.0 (Li et al. 2017,
"WebVision database"), the protocol of DivideMix, PLReMix and their predecessors (spec §1.5, §6.5), with the ILSVRC12
val images of the same 50 synsets as a second test set.

The layout PLReMix's README shows and its loader reads (``dataset.root`` is this folder)::

    <root>/info/train_filelist_google.txt   "google/q0001/<name>.jpg label" per line (label 0..999), paths from the root
    <root>/info/val_filelist.txt            "<name>.jpg label" per line; the images are val_images_256/<name>.jpg
    <root>/info/synsets.txt                 one line per class, wnid first ("n01440764 tench, ..."): line k = class k
    <root>/google/...                       the training images (the resized release)
    <root>/val_images_256/<name>.jpg        the WebVision val images
    <root>/imagenet/val/<wnid>/*            the ILSVRC12 val images of each synset (PLReMix's data/rearrange.py sorts
                                            the flat ILSVRC2012 val folder into this)

Splits: train = the Google training list, keeping labels < ``num_classes`` (default 50), in list order, with the
web labels (themselves noisy: ``true_labels=None``); test = the WebVision val list, labels < ``num_classes``;
``extra_test["imagenet_val"]`` = the ImageNet val images of the first ``num_classes`` synsets, labelled by their
line in synsets.txt, files sorted by name within a class (the reference lists them with ``os.listdir``, in no set
order). ``imagenet_val=false`` leaves that set out (a root without ``imagenet/``).

Every image is decoded to one ``image_size`` square (default 320, the reference's Resize(320); the views then crop
299). :func:`list_webvision` lists the splits without decoding (a streamed run), :func:`load_webvision` decodes them
through :func:`noisyclr.data.folder.load_images_cached`; both check every listed image exists first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .folder import check_positive_option, visible
from .listfiles import FileIndex, decode_listed_splits, read_pairs, resolve_root
from .table import DatasetSplits, FileTable

# ImageNet statistics, as the reference code normalises WebVision and ImageNet val (spec §7)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

#: classes kept by default: the mini-WebVision protocol
DEFAULT_NUM_CLASSES = 50
#: the side every image is decoded to unless dataset.options.image_size says otherwise (the reference's Resize(320))
DEFAULT_IMAGE_SIZE = 320
WEBVISION_CLASSES = 1000

TRAIN_LIST = "info/train_filelist_google.txt"
VAL_LIST = "info/val_filelist.txt"
SYNSETS = "info/synsets.txt"
VAL_DIR = "val_images_256"
IMAGENET_DIR = "imagenet/val"
_HINT = ("the WebVision 1.0 folder: info/train_filelist_google.txt, info/val_filelist.txt, info/synsets.txt, google/, "
         "val_images_256/ and imagenet/val/<wnid>/")


def _check_options(num_classes, image_size, imagenet_val, workers):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UserError(f"dataset.options.num_classes must be a positive integer (50: mini-WebVision), got "
                        f"{num_classes!r}")
    size = check_positive_option("image_size", image_size)
    if size is None:
        raise UserError("dataset.options.image_size must be a positive integer for webvision (its images differ in "
                        f"size, so all are resized to one square; default {DEFAULT_IMAGE_SIZE})")
    if not isinstance(imagenet_val, bool):
        raise UserError(f"dataset.options.imagenet_val must be true or false, got {imagenet_val!r}")
    return int(num_classes), size, imagenet_val, check_positive_option("workers", workers)


def _resolve(root) -> Path:
    return resolve_root(root, "webvision", [TRAIN_LIST, VAL_LIST, SYNSETS], _HINT, needs=_HINT, where=_HINT)


def _synsets(root: Path) -> tuple[list[str], list[str]]:
    """``(wnids, descriptions)`` of info/synsets.txt, line k = class k."""
    wnids, descriptions = [], []
    with open(root / SYNSETS, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            if not fields[0].startswith("n"):
                raise UserError(f"{SYNSETS} line {number} does not start with a wnid (n01440764 ...) "
                                f"({line.strip()[:60]!r}); fix that line")
            wnids.append(fields[0])
            descriptions.append(fields[1].strip() if len(fields) > 1 else "")
    if not wnids:
        raise UserError(f"{SYNSETS} lists no synsets; it needs one wnid per line, line k for class k")
    return wnids, descriptions


def _kept(path: Path, shown: str, num_classes: int) -> tuple[list[str], np.ndarray]:
    """The ``path label`` pairs of a WebVision list with label < ``num_classes``, in list order."""
    keys, labels = read_pairs(str(path), shown, WEBVISION_CLASSES, f"WebVision has {WEBVISION_CLASSES} classes")
    keep = np.flatnonzero(labels < num_classes)
    if not len(keep):
        raise UserError(f"{shown} has no image with a label below num_classes={num_classes}; check the file or "
                        "dataset.options.num_classes")
    if len(keep) == len(keys):
        return keys, labels
    return [keys[i] for i in keep.tolist()], labels[keep]


def _listing(root: Path, num_classes: int, imagenet_val: bool) -> dict:
    wnids, descriptions = _synsets(root)
    if num_classes > len(wnids):
        raise UserError(f"dataset.options.num_classes={num_classes} but {SYNSETS} lists {len(wnids)} synsets; "
                        f"give at most {len(wnids)}")
    splits, index = {}, FileIndex(root)
    for split, listed in (("train", TRAIN_LIST), ("test", VAL_LIST)):
        keys, labels = _kept(root / listed, listed, num_classes)
        rels = keys if split == "train" else [f"{VAL_DIR}/{k}" for k in keys]
        # the line of a missing row is looked up only for the message
        index.check(rels, lambda i, listed=listed, keys=keys:
                          f"{listed} line {_kept_line(root / listed, keys[i])}")
        splits[split] = (rels, labels)
    if imagenet_val:
        if not (root / IMAGENET_DIR).is_dir():
            raise UserError(f"{root} has no {IMAGENET_DIR}/ folder for the ImageNet val test set; sort the ILSVRC2012 "
                            "val images into imagenet/val/<wnid>/ (PLReMix's data/rearrange.py does), or set "
                            "dataset.options.imagenet_val=false")
        rels, labels = [], []
        for k, wnid in enumerate(wnids[:num_classes]):
            folder = root / IMAGENET_DIR / wnid
            if not folder.is_dir():
                raise UserError(f"{IMAGENET_DIR}/{wnid}/ is missing: the ImageNet val images of class {k} ({SYNSETS} "
                                f"line {k + 1}) belong there; run PLReMix's data/rearrange.py on the ILSVRC2012 val "
                                "folder, or set dataset.options.imagenet_val=false")
            names = sorted(e.name for e in os.scandir(folder) if e.is_file() and visible(e.name))
            if not names:
                raise UserError(f"{IMAGENET_DIR}/{wnid}/ has no images (class {k}); restore them, or set "
                                "dataset.options.imagenet_val=false")
            rels += [f"{IMAGENET_DIR}/{wnid}/{n}" for n in names]
            labels += [k] * len(names)
        splits["imagenet_val"] = (rels, np.asarray(labels, dtype=np.int64))
    files = [TRAIN_LIST, VAL_LIST, SYNSETS]
    info = {"root": str(root), "label_files": files, "num_classes": num_classes, "wnids": wnids[:num_classes],
            "synset_descriptions": descriptions[:num_classes]}
    return {"splits": splits, "classes": wnids[:num_classes], "info": info}


def _kept_line(path: Path, key: str) -> int:
    """The line of ``path`` that lists ``key`` (error messages only)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields and fields[0] == key:
                return number
    return 0


def list_webvision(root, *, cache_dir=None, num_classes: int = DEFAULT_NUM_CLASSES,
                   image_size: int = DEFAULT_IMAGE_SIZE, imagenet_val: bool = True,
                   workers: int | None = None) -> DatasetSplits:
    """The splits of :func:`load_webvision` as :class:`FileTable` listings (a streamed run): the lists read and
    every listed image checked to exist, nothing decoded. ``cache_dir`` and ``workers`` are accepted and unused."""
    num_classes, image_size, imagenet_val, _ = _check_options(num_classes, image_size, imagenet_val, workers)
    root = _resolve(root)
    listing = _listing(root, num_classes, imagenet_val)
    real = os.path.realpath(root)
    tables = {}
    for split, (rels, labels) in listing["splits"].items():
        true = None if split == "train" else labels.copy()
        tables[split] = FileTable(real, rels, labels, true, list(listing["classes"]),
                                  image_shape=(image_size, image_size, 3), image_size=image_size)
    extra = {"imagenet_val": tables["imagenet_val"]} if imagenet_val else {}
    return DatasetSplits("webvision", tables["train"], tables["test"], MEAN, STD, info=listing["info"],
                         extra_test=extra)


def load_webvision(root, *, cache_dir=None, num_classes: int = DEFAULT_NUM_CLASSES,
                   image_size: int = DEFAULT_IMAGE_SIZE, imagenet_val: bool = True,
                   workers: int | None = None) -> DatasetSplits:
    """mini-WebVision train (web labels, ``true_labels=None``), test (the WebVision val) and
    ``extra_test["imagenet_val"]`` (ILSVRC12 val of the same classes), every image decoded to an ``image_size``
    square (default 320). ``num_classes`` keeps labels below it (default 50, the mini-WebVision protocol; 1000: all
    of the Google subset). Class names are the wnids of info/synsets.txt. ``paths`` are relative to the root.
    Raises :class:`UserError` for a missing root, list file or ImageNet class folder, a malformed line, a label
    outside 0..999, and a listed image that is missing.
    """
    num_classes, image_size, imagenet_val, workers = _check_options(num_classes, image_size, imagenet_val, workers)
    root = _resolve(root)
    listing = _listing(root, num_classes, imagenet_val)
    tables, stats = decode_listed_splits(root, listing["splits"], tag="webvision", class_names=list(listing["classes"]),
                                         image_size=image_size, cache_dir=cache_dir, workers=workers)
    info = dict(listing["info"], data_mean=stats[0], data_std=stats[1])
    extra = {"imagenet_val": tables["imagenet_val"]} if imagenet_val else {}
    return DatasetSplits("webvision", tables["train"], tables["test"], MEAN, STD, info=info, extra_test=extra)
