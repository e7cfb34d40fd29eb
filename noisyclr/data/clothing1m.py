"""``clothing1m``: Clothing1M (Xiao et al., CVPR 2015, "Learning from massive noisy labeled data for image
classification"), 14 clothing classes, 1M training images with noisy labels from the surrounding text of online
shops, and human-checked clean val and test splits.

The layout of the release, as PLReMix's README shows it and its loader reads it (``dataset.root`` is this folder)::

    <root>/noisy_train_key_list.txt    the training keys, one per line ("images/0/00/xxx.jpg")
    <root>/noisy_label_kv.txt          "key label" per line: the noisy label of every noisy key (label 0..13)
    <root>/clean_label_kv.txt          "key label" per line: the human-checked label of every clean key
    <root>/clean_val_key_list.txt      the val keys (14,313), labelled by clean_label_kv.txt
    <root>/clean_test_key_list.txt     the test keys (10,526), labelled by clean_label_kv.txt
    <root>/images/0 .. images/9/...    the images, at the paths the keys name

DivideMix's loader instead takes the ``images`` folder itself as its root, holding the list files too (it drops
the ``images/`` of every key): a root holding the list files and ``0/`` .. ``9/`` but no ``images/`` is read that
way.

Splits: train = the noisy training keys with their noisy labels, in key-list order; ``val`` = the clean val keys
and ``test`` = the clean test keys, with their clean labels. Some training keys also have a clean
label (the release's "both labels" part); the table's ``true_labels`` are all or nothing, so the train table has
``true_labels=None`` and those rows are given as ``info["train_clean_rows"]`` / ``info["train_clean_labels"]``.

Every image is decoded to one ``image_size`` square (default 256, the reference's Resize(256); the views then
crop 224, docs/data.md, "Views at ImageNet scale"). :func:`list_clothing1m` lists the splits without decoding (a
streamed run); :func:`load_clothing1m` decodes them through :func:`noisyclr.data.folder.load_images_cached`.
Both read the five list files and check every listed image exists before returning (one ``os.scandir`` per image
folder), so a broken layout stops a run at once with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .folder import check_positive_option
from .listfiles import FileIndex, decode_listed_splits, line_number, read_keys, read_pairs, resolve_root
from .table import DatasetSplits, FileTable

# Clothing1M statistics, as all three reference repositories normalise (spec §7; docs/data.md, "Normalisation")
MEAN = (0.6959, 0.6537, 0.6371)
STD = (0.3113, 0.3192, 0.3214)

# label k = CLASS_NAMES[k] (the order of the release's category_names_eng.txt)
CLASS_NAMES = ["T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker", "Jacket", "Downcoat",
               "Suit", "Shawl", "Dress", "Vest", "Underwear"]
NUM_CLASSES = len(CLASS_NAMES)
#: the side every image is decoded to unless dataset.options.image_size says otherwise (the reference's Resize(256))
DEFAULT_IMAGE_SIZE = 256

TRAIN_KEYS = "noisy_train_key_list.txt"
NOISY_KV = "noisy_label_kv.txt"
CLEAN_KV = "clean_label_kv.txt"
VAL_KEYS = "clean_val_key_list.txt"
TEST_KEYS = "clean_test_key_list.txt"
LABEL_FILES = [TRAIN_KEYS, NOISY_KV, CLEAN_KV, VAL_KEYS, TEST_KEYS]
IMAGE_DIR = "images"
_PREFIX = IMAGE_DIR + "/"
_HINT = ("the Clothing1M release: noisy_train_key_list.txt, noisy_label_kv.txt, clean_label_kv.txt, "
         "clean_val_key_list.txt, clean_test_key_list.txt and images/0..9/")


def _check_options(image_size, train_keys, workers) -> tuple[int, int | None, int | None]:
    size = check_positive_option("image_size", image_size)
    if size is None:
        raise UserError("dataset.options.image_size must be a positive integer for clothing1m (its images differ in "
                        f"size, so all are resized to one square; default {DEFAULT_IMAGE_SIZE})")
    return size, check_positive_option("train_keys", train_keys), check_positive_option("workers", workers)


def _resolve(root) -> Path:
    return resolve_root(root, "clothing1m", LABEL_FILES, _HINT, needs=f"the folder with {_HINT}",
                        where=f"the Clothing1M folder ({_HINT})")


def _labelled(keys: list[str], table: dict[str, int], path: Path, kv: str) -> np.ndarray:
    """The label of every key from a ``key -> label`` map (a UserError names the first key it lacks)."""
    try:
        return np.fromiter(map(table.__getitem__, keys), dtype=np.int64, count=len(keys))
    except KeyError:
        first = next(i for i, k in enumerate(keys) if k not in table)
        raise UserError(f"{path.name} line {line_number(path, first)} names {keys[first]}, which has no label in "
                        f"{kv}; add its label or drop the key") from None


def _listing(root: Path, train_keys: int | None) -> dict:
    """Paths (relative to the root) and labels of the three splits, every listed image checked to exist."""
    what = f"Clothing1M has {NUM_CLASSES} classes"
    train = read_keys(str(root / TRAIN_KEYS), TRAIN_KEYS)
    if train_keys is not None:
        train = train[:train_keys]
    noisy_keys, noisy_labels = read_pairs(str(root / NOISY_KV), NOISY_KV, NUM_CLASSES, what)
    if noisy_keys[:len(train)] == train:  # the usual case, checked in one comparison: no map of a million keys
        train_labels = noisy_labels[:len(train)].copy()
    else:
        train_labels = _labelled(train, dict(zip(noisy_keys, noisy_labels.tolist())), root / TRAIN_KEYS, NOISY_KV)
    del noisy_keys, noisy_labels
    clean_keys, clean_labels = read_pairs(str(root / CLEAN_KV), CLEAN_KV, NUM_CLASSES, what)
    clean = dict(zip(clean_keys, clean_labels.tolist()))
    keys = {"train": (train, train_labels)}
    for split, name in (("val", VAL_KEYS), ("test", TEST_KEYS)):
        split_keys = read_keys(str(root / name), name)
        keys[split] = (split_keys, _labelled(split_keys, clean, root / name, CLEAN_KV))
    clean_rows = np.flatnonzero(np.fromiter(map(clean.__contains__, train), dtype=bool, count=len(train)))
    clean_of_train = np.fromiter((clean[train[i]] for i in clean_rows.tolist()), dtype=np.int64, count=len(clean_rows))
    # the release's tree (images/ under the root), or DivideMix's (the root is images/: keys lose their "images/")
    strip = not (root / IMAGE_DIR).is_dir() and (root / "0").is_dir()
    if not strip and not (root / IMAGE_DIR).is_dir():
        raise UserError(f"{root} has no {IMAGE_DIR}/ folder, where the images the key lists name belong "
                        f"({IMAGE_DIR}/0..9/); put them there")
    out, index = {}, FileIndex(root)  # one listing of each image folder for the three splits
    for split, (split_keys, labels) in keys.items():
        rels = [k[len(_PREFIX):] if k.startswith(_PREFIX) else k for k in split_keys] if strip else split_keys
        listed = root / {"train": TRAIN_KEYS, "val": VAL_KEYS, "test": TEST_KEYS}[split]
        index.check(rels, lambda i, listed=listed: f"{listed.name} line {line_number(listed, i)}")
        out[split] = (rels, labels)
    info = {"root": str(root), "label_files": list(LABEL_FILES), "train_clean_rows": clean_rows,
            "train_clean_labels": clean_of_train, "layout": "dividemix" if strip else "release"}
    return {"splits": out, "info": info}


def list_clothing1m(root, *, cache_dir=None, image_size: int = DEFAULT_IMAGE_SIZE, train_keys: int | None = None,
                    workers: int | None = None) -> DatasetSplits:
    """The splits of :func:`load_clothing1m` as :class:`FileTable` listings (a streamed run): the list files read
    and every listed image checked to exist, nothing decoded. ``cache_dir`` and ``workers`` are accepted and
    unused."""
    image_size, train_keys, _ = _check_options(image_size, train_keys, workers)
    root = _resolve(root)
    listing = _listing(root, train_keys)
    real = os.path.realpath(root)
    tables = {}
    for split, (rels, labels) in listing["splits"].items():
        true = None if split == "train" else labels.copy()
        tables[split] = FileTable(real, rels, labels, true, list(CLASS_NAMES), image_shape=(image_size, image_size, 3),
                                  image_size=image_size)
    return DatasetSplits("clothing1m", tables["train"], tables["test"], MEAN, STD, info=listing["info"],
                         val=tables["val"])


def load_clothing1m(root, *, cache_dir=None, image_size: int = DEFAULT_IMAGE_SIZE, train_keys: int | None = None,
                    workers: int | None = None) -> DatasetSplits:
    """Clothing1M train (noisy labels, ``true_labels=None``), ``val`` and test (clean labels), every image decoded
    to an ``image_size`` square (default 256). ``train_keys`` keeps the first N keys of the training list (a small
    run; only those are checked and decoded). ``paths`` are the keys (relative to the root). Raises
    :class:`UserError` for a missing root or list file, a malformed line, a label outside 0..13, a key without a
    label and a listed image that is missing.

    The full training set is 1M images, 196 GB decoded at 256²: stream it (``dataset.stream``, the lister).
    """
    image_size, train_keys, workers = _check_options(image_size, train_keys, workers)
    root = _resolve(root)
    listing = _listing(root, train_keys)
    tables, stats = decode_listed_splits(root, listing["splits"], tag="clothing1m", class_names=list(CLASS_NAMES),
                                         image_size=image_size, cache_dir=cache_dir, workers=workers)
    info = dict(listing["info"], data_mean=stats[0], data_std=stats[1])
    return DatasetSplits("clothing1m", tables["train"], tables["test"], MEAN, STD, info=info, val=tables["val"])
