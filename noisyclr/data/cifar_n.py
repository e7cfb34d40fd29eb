"""``cifar10n`` / ``cifar100n``: CIFAR-10/100 trained on the CIFAR-N human labels (Wei et al., ICLR 2022,
"Learning with Noisy Labels Revisited: A Study Using Real-World Human Annotations", http://www.noisylabels.com/).

The labels come from the official files ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` (``data/`` of
https://github.com/UCSC-REAL/cifar-10-100n): a ``torch.save``d dict of 50,000 labels per key, in the original CIFAR
training order (``data_batch_1..5`` / ``train``). Keys:

* CIFAR-10N: ``clean_label``, ``aggre_label``, ``worse_label``, ``random_label1``, ``random_label2``,
  ``random_label3`` (numpy arrays);
* CIFAR-100N: ``clean_label``, ``noisy_label`` (fine, numpy arrays), ``clean_coarse_label``, ``noisy_coarse_label``
  (the 20 superclasses, lists of ints; added by the repository's ``fine2coarse.py``).

The images come from a CIFAR source under the same root:

* the python pickles (``cifar-10-batches-py/`` / ``cifar-100-python/``, read by :mod:`.cifar`), already in the
  original order; or
* a JPEG folder ``train/<class>/*``, ``test/<class>/*`` (read by :mod:`.folder`) with an index CSV
  (``path,index`` columns, e.g. ``cifar10n/labels.csv`` of the shared data) giving the original index of every
  train file. The train rows are put into the original order, so both layouts give the same rows, row by row.

Train labels are the chosen human labels, ``true_labels`` the file's ``clean_label`` (checked against the image
source's labels: more than a handful of differences means a wrong file or order mapping, refused). The test split is
the CIFAR test set with its clean labels. Normalisation is the CIFAR constants of :mod:`.cifar` in both layouts.

The file is read without running code: ``torch.load(weights_only=True)`` with only numpy's array-rebuilding globals
allowed for that one call (the names :data:`noisyclr.data.safe_pickle.ADMITTED` lists), or, for a plain pickle, the
restricted unpickler of :mod:`.safe_pickle`.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from .cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, load_cifar10, load_cifar100
from .folder import load_folder
from .noise import CIFAR100_FINE_TO_COARSE, _match_paths, _read_order_file
from .safe_pickle import ADMITTED, load_pickle
from .table import DatasetSplits, ImageTable

HUMAN_URL = "https://github.com/UCSC-REAL/cifar-10-100n"

#: ``torch.serialization.MAGIC_NUMBER``: the first pickle of a legacy (pre-zip) ``torch.save`` file.
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C

#: short name -> key of the label file (the file's own key names are accepted too)
CIFAR10N_SETS = {
    "aggre": "aggre_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "worst": "worse_label",
    "clean": "clean_label",
}
CIFAR100N_SETS = {
    "noisy": "noisy_label",
    "noisy_coarse": "noisy_coarse_label",
    "clean": "clean_label",
    "clean_coarse": "clean_coarse_label",
}
IMAGE_SOURCES = ("auto", "pickles", "folder")

# the ``coarse_label_names`` of the CIFAR-100 meta pickle (for a JPEG folder, which has the fine classes only)
CIFAR100_COARSE_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)


@dataclass(frozen=True)
class _Variant:
    name: str  # the source name
    title: str  # CIFAR-10N
    cifar: str  # CIFAR-10
    file_name: str  # CIFAR-10_human.pt
    sets: dict
    pickle_dir: str  # cifar-10-batches-py
    pickle_marker: str  # batches.meta
    load_pickles: Callable[..., DatasetSplits]
    mean: tuple
    std: tuple


CIFAR10N = _Variant("cifar10n", "CIFAR-10N", "CIFAR-10", "CIFAR-10_human.pt", CIFAR10N_SETS,
                    "cifar-10-batches-py", "batches.meta", load_cifar10, CIFAR10_MEAN, CIFAR10_STD)
CIFAR100N = _Variant("cifar100n", "CIFAR-100N", "CIFAR-100", "CIFAR-100_human.pt", CIFAR100N_SETS,
                     "cifar-100-python", "meta", load_cifar100, CIFAR100_MEAN, CIFAR100_STD)


def _fix(variant: _Variant) -> str:
    return (f"download data/{variant.file_name} from {HUMAN_URL} into the dataset root, or set "
            f"dataset.options.human_file=PATH")


# --------------------------------------------------------------------------------------------------------------
# the label file


def _torch_safe_globals() -> list:
    """What ``torch.load(weights_only=True)`` may use beyond its defaults to rebuild numpy arrays: the globals
    :data:`~noisyclr.data.safe_pickle.ADMITTED` names, under the spellings numpy 1.x and 2 write (``_codecs.encode``
    torch admits itself), and the dtype classes, whose instances the pickle's BUILD sets the state of."""
    admitted = [(obj, f"{module}.{name}") for (module, name), obj in ADMITTED.items() if module != "_codecs"]
    dtypes = sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"}, key=lambda t: t.__name__)
    return admitted + dtypes


def _torch_load(path: Path, variant: _Variant):
    import torch

    version = tuple(int(v) for v in re.findall(r"\d+", torch.__version__)[:2])
    if version < (2, 6):  # torch.serialization.safe_globals with (object, "module.name") pairs
        raise UserError(f"reading {path} needs torch >= 2.6 (a weights-only torch.load of numpy arrays), this is "
                        f"torch {torch.__version__}; upgrade torch")
    try:
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a refused global, a damaged zip or pickle: almost anything
        text = str(exc)
        name = re.search(r"GLOBAL ([\w.]+)", text)
        if name or any(word in text for word in ("unrecognized function", "Can only create", "Unsupported")):
            thing = f"the Python global {name.group(1)}" if name else "an object it may not build"
            raise UserError(
                f"{path} is not a plain {variant.title} label file: it asks for {thing}, which is refused (only "
                f"numbers, lists, dicts and numpy arrays are read, so a label file cannot run code); delete it and "
                f"{_fix(variant)}"
            ) from None
        raise UserError(f"cannot read {path} ({type(exc).__name__}); the {variant.title} label file is damaged or "
                        f"truncated, delete it and {_fix(variant)}") from None


def read_human_file(path, variant: _Variant = CIFAR10N) -> dict:
    """The dict of a CIFAR-N label file, read without running code: a ``torch.save`` file (zip or legacy) through
    a weights-only ``torch.load`` admitting numpy arrays, a plain pickle through :func:`~.safe_pickle.load_pickle`.
    One-line :class:`UserError` when it is missing, damaged, asks for anything else, or is not a dict."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{variant.title} label file {path} not found; {_fix(variant)}")
    what = f"{variant.title} label file"
    if zipfile.is_zipfile(path):
        data = _torch_load(path, variant)
    else:
        # only the first pickle of the file is read: the whole dict of a plain pickle, the magic number of a legacy
        # torch.save file
        data = load_pickle(path, what=what, fix=f"delete it and {_fix(variant)}", source=HUMAN_URL,
                           encoding="latin1")
        if isinstance(data, int) and not isinstance(data, bool) and data == _TORCH_MAGIC:
            data = _torch_load(path, variant)
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a {type(data).__name__}, not a dict of label arrays; it is not the "
                        f"{variant.title} label file, {_fix(variant)}")
    return data


def _label_array(data: dict, key: str, path: Path, n: int, num_classes: int, variant: _Variant) -> np.ndarray:
    """``data[key]`` as ``(n,)`` int64 labels in ``[0, num_classes)``; one-line UserErrors otherwise."""
    if key not in data:
        keys = ", ".join(sorted(str(k) for k in data)) or "none"
        raise UserError(f"{path} has no '{key}' entry (it has: {keys}); it is not the {variant.title} label file "
                        f"this label set needs, {_fix(variant)}")
    value = data[key]
    if hasattr(value, "numpy") and callable(value.numpy):  # a torch tensor (a file converted by hand)
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except Exception:
        arr = np.asarray([], dtype=object)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise UserError(f"{path}: '{key}' is not a list of integer labels (got {type(value).__name__} of dtype "
                        f"{arr.dtype}, shape {arr.shape}); it is not the {variant.title} label file, {_fix(variant)}")
    if len(arr) != n:
        raise UserError(f"{path}: '{key}' has {len(arr)} labels, expected {n} (one per {variant.cifar} training "
                        f"image of the image source); use the {variant.title} file of this data, {_fix(variant)}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
    if bad.size:
        raise UserError(f"{path}: '{key}' has label {int(arr[bad[0]])} at index {int(bad[0])}, outside "
                        f"[0, {num_classes - 1}]; it is not the {variant.title} label file, {_fix(variant)}")
    return arr


def label_key(variant: _Variant, labels) -> str:
    """The file key of the label set ``labels`` (a short name such as ``worst``, or a key such as ``worse_label``)."""
    keys = set(variant.sets.values())
    if isinstance(labels, str) and labels in variant.sets:
        return variant.sets[labels]
    if isinstance(labels, str) and labels in keys:
        return labels
    short = ", ".join(variant.sets)
    raise UserError(f"dataset.options.labels={labels!r} is not a {variant.title} label set; use one of {short} "
                    f"(or the file's keys {', '.join(variant.sets.values())})")


# --------------------------------------------------------------------------------------------------------------
# the images


def _has_pickles(root: Path, variant: _Variant) -> bool:
    return (root / variant.pickle_dir / variant.pickle_marker).is_file() or (root / variant.pickle_marker).is_file()


def _image_kind(root: Path, images, variant: _Variant) -> str:
    if images not in IMAGE_SOURCES:
        raise UserError(f"dataset.options.images={images!r} is not an image source; use auto, pickles or folder")
    if images != "auto":
        return images
    if _has_pickles(root, variant):
        return "pickles"
    if (root / "train").is_dir():
        return "folder"
    raise UserError(f"{root} holds neither {variant.pickle_dir}/ (the {variant.cifar} python pickles) nor a "
                    f"train/<class>/ image folder; put one of them there, or point dataset.root at the folder that "
                    "holds them")


def _folder_in_original_order(root: Path, index_file, cache_dir, variant: _Variant) -> DatasetSplits:
    """The JPEG folder with its train rows put into the original CIFAR order given by ``index_file``."""
    if index_file is None:
        raise UserError(f"the {variant.cifar} image folder {root} needs dataset.options.index_file=PATH, a CSV with "
                        "path,index columns giving each train file's original CIFAR index (e.g. cifar10n/labels.csv "
                        "of the shared data)")
    if not isinstance(index_file, (str, Path)):
        raise UserError(f"dataset.options.index_file must be a path, got {index_file!r}")
    splits = load_folder(root, cache_dir=cache_dir)
    train = splits.train
    index_path, paths, index = _read_order_file(Path(index_file).expanduser())
    source = f"index file {index_path}"
    # the original index of every train file, in folder order
    original = index[_match_paths(train.paths, paths, source)]
    n = len(train)
    bad = np.flatnonzero((original < 0) | (original >= n))
    if bad.size:
        raise UserError(f"{source}: index {int(original[bad[0]])} of {train.paths[bad[0]]} is outside 0..{n - 1} "
                        f"(the folder has {n} train images); give the index file of this folder")
    seen = np.zeros(n, dtype=bool)
    seen[original] = True
    if not seen.all():
        twice = np.flatnonzero(np.bincount(original, minlength=n) > 1)[0]
        raise UserError(f"{source} gives index {int(twice)} to more than one file; every train file needs its own "
                        "original index, give the index file of this folder")
    order = np.empty(n, dtype=np.int64)
    order[original] = np.arange(n)  # order[i]: the folder row of original index i
    splits.train = train.subset(order)
    splits.info["index_file"] = str(index_path)
    return splits


def _check_clean(clean: np.ndarray, source: np.ndarray, path: Path, what: str, hint: str) -> int:
    """The number of rows where the file's clean labels differ from the image source's; refused beyond a
    handful (0.1 %, at least 5), which means the file or the order mapping is wrong; a warning below that."""
    bad = np.flatnonzero(clean != source)
    allowed = max(5, len(clean) // 1000)
    if bad.size > allowed:
        raise UserError(f"{path}: {bad.size} of {len(clean)} {what} differ from the image source's labels (first at "
                        f"original index {int(bad[0])}): {hint}")
    if bad.size:
        warnings.warn(f"{path}: {bad.size} of {len(clean)} {what} differ from the image source's labels (first at "
                      f"original index {int(bad[0])}); the file's clean labels are used as true labels",
                      stacklevel=4)
    return int(bad.size)


def _coarse(fine: np.ndarray) -> np.ndarray:
    return CIFAR100_FINE_TO_COARSE[np.asarray(fine, dtype=np.int64)]


# --------------------------------------------------------------------------------------------------------------
# the sources


def _load(variant: _Variant, root, *, cache_dir, labels, human_file, images, index_file) -> DatasetSplits:
    if root is None:
        raise UserError(f"dataset {variant.name} needs a root; set dataset.root=PATH (the folder holding "
                        f"{variant.file_name} and {variant.pickle_dir}/ or a train/ test/ image folder)")
    root = Path(root).expanduser()
    key = label_key(variant, labels)
    if human_file is not None and not isinstance(human_file, (str, Path)):
        raise UserError(f"dataset.options.human_file must be a path, got {human_file!r}")
    human_path = Path(human_file).expanduser() if human_file is not None else root / variant.file_name
    kind = _image_kind(root, images, variant)
    data = read_human_file(human_path, variant)  # before the images: a missing file is found at once

    if kind == "pickles":
        splits = variant.load_pickles(root)
        hint = (f"the label file does not belong to these {variant.cifar} pickles (or is in another order); use the "
                f"official {variant.file_name}")
    else:
        splits = _folder_in_original_order(root, index_file, cache_dir, variant)
        hint = (f"the index file {splits.info['index_file']} does not map the folder's train files onto the "
                f"original {variant.cifar} order (or the class folders are not the {variant.cifar} classes in "
                "their canonical order); give the right dataset.options.index_file")
    train, test = splits.train, splits.test
    n, fine_classes = len(train), train.num_classes
    clean = _label_array(data, "clean_label", human_path, n, fine_classes, variant)
    differ = _check_clean(clean, train.labels, human_path, "clean labels ('clean_label')", hint)

    coarse = key.endswith("coarse_label")
    if coarse:
        if fine_classes != 100:
            raise UserError(f"labels={labels} needs the 100 CIFAR-100 classes, but the image source has "
                            f"{fine_classes}; use the CIFAR-100 pickles or image folder")
        info = splits.info
        source_coarse = info.get("coarse_labels_train")
        source_coarse = _coarse(train.labels) if source_coarse is None else source_coarse
        test_labels = info.get("coarse_labels_test")
        test_labels = _coarse(test.labels) if test_labels is None else test_labels
        names = list(info.get("coarse_class_names") or CIFAR100_COARSE_NAMES)
        true = _label_array(data, "clean_coarse_label", human_path, n, len(names), variant)
        differ = max(differ, _check_clean(true, source_coarse, human_path, "clean superclass labels "
                                          "('clean_coarse_label')", hint))
    else:
        test_labels, names, true = test.labels, list(train.class_names), clean
    given = _label_array(data, key, human_path, n, len(names), variant)

    train_table = ImageTable(train.images, given, true.copy(), names, paths=train.paths)
    test_table = ImageTable(test.images, np.asarray(test_labels, dtype=np.int64),
                            np.asarray(test_labels, dtype=np.int64).copy(), names, paths=test.paths)
    info = {
        "root": str(root), "images": kind, "human_file": str(human_path), "labels": key,
        "label_noise_rate": float(np.mean(given != true)), "clean_label_disagreements": differ,
    }
    if "index_file" in splits.info:
        info["index_file"] = splits.info["index_file"]
    if coarse:
        info["coarse"] = True
    return DatasetSplits(variant.name, train_table, test_table, variant.mean, variant.std, info=info)


def load_cifar10n(root, *, cache_dir=None, labels: str = "worst", human_file: str | None = None,
                  images: str = "auto", index_file: str | None = None) -> DatasetSplits:
    """CIFAR-10 with the CIFAR-10N human labels: train labels are the label set ``labels`` (``aggre``,
    ``random1``, ``random2``, ``random3``, ``worst`` (default), ``clean``, or the file's key names), true labels
    the file's ``clean_label``; the test split is the CIFAR-10 test set.

    ``human_file`` (default ``<root>/CIFAR-10_human.pt``) is the official label file; ``images`` is where the
    images come from: ``pickles`` (``cifar-10-batches-py/`` under ``root``, or ``root`` itself), ``folder``
    (``root/train/<class>/*``, ``root/test/<class>/*``, with ``index_file``, a CSV with ``path,index`` columns
    mapping each train file to its original index) or ``auto`` (the pickles if there, else the folder).
    Train rows are in the original CIFAR order in both layouts.
    """
    return _load(CIFAR10N, root, cache_dir=cache_dir, labels=labels, human_file=human_file, images=images,
                 index_file=index_file)


def load_cifar100n(root, *, cache_dir=None, labels: str = "noisy_label", human_file: str | None = None,
                   images: str = "auto", index_file: str | None = None) -> DatasetSplits:
    """CIFAR-100 with the CIFAR-100N human labels: ``labels`` ``noisy_label`` (default; short ``noisy``, the 100
    fine classes, true labels ``clean_label``) or ``noisy_coarse_label`` (``noisy_coarse``: the 20 superclasses,
    true labels ``clean_coarse_label``, test labels the CIFAR-100 coarse labels); ``clean`` / ``clean_coarse``
    train on the clean labels. ``human_file`` (default ``<root>/CIFAR-100_human.pt``), ``images`` and
    ``index_file`` as in :func:`load_cifar10n` (pickles: ``cifar-100-python/``).
    """
    return _load(CIFAR100N, root, cache_dir=cache_dir, labels=labels, human_file=human_file, images=images,
                 index_file=index_file)
