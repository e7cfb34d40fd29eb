"""``cifar10`` and ``cifar100`` from the official python pickles (``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html, extracted).

Images come in the original order (data_batch_1..5, then test_batch), which is the order of the reference noise
files. Normalisation is the published constants (docs/data.md, "Normalisation").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .safe_pickle import load_pickle
from .table import DatasetSplits, ImageTable

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
# DivideMix / BPT-PLR values; PLReMix's (0.5071, 0.4865, 0.4409); (0.2673, 0.2564, 0.2762) differ in the 4th digit.
CIFAR100_MEAN, CIFAR100_STD = (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)

_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _resolve(root, folder: str, marker: str, name: str) -> Path:
    if root is None:
        raise UserError(f"dataset {name} needs a root; set dataset.root=PATH (the folder holding {folder}/)")
    root = Path(root).expanduser()
    if (root / folder / marker).is_file():
        return root / folder
    if (root / marker).is_file():
        return root
    raise UserError(
        f"{root} holds neither {folder}/{marker} nor {marker}; download the python version from {_URL} "
        f"and extract it into {root}"
    )


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} not found; the CIFAR folder is incomplete, extract the archive from {_URL} again")
    # Restricted: plain data and numpy arrays only, so a crafted batch cannot run code (see safe_pickle).
    batch = load_pickle(path, what="CIFAR python pickle", source=_URL, encoding="bytes")
    if not isinstance(batch, dict):
        raise UserError(
            f"{path} holds a {type(batch).__name__}, not a dict; it is not a CIFAR python pickle, "
            "extract the archive again"
        )
    return batch


def _field(batch: dict, key: bytes, path: Path):
    if key not in batch:
        raise UserError(f"{path} has no {key.decode()!r} entry; it is not a CIFAR python pickle, extract the archive again")
    return batch[key]


def _images(batch: dict, path: Path) -> np.ndarray:
    data = np.asarray(_field(batch, b"data", path), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: data has shape {data.shape}, expected (N, 3072); extract the archive again")
    # Stored channel-major (R plane, G plane, B plane) per image.
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _names(meta: dict, key: bytes, path: Path) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in _field(meta, key, path)]


def _table(images, labels, names) -> ImageTable:
    labels = np.asarray(labels, dtype=np.int64)
    return ImageTable(images, labels, labels.copy(), list(names))


def load_cifar10(root) -> DatasetSplits:
    """CIFAR-10: train ``(50000, 32, 32, 3)`` uint8 in data_batch_1..5 order, test ``(10000, 32, 32, 3)``.

    ``root`` contains ``cifar-10-batches-py/`` or is that folder.
    """
    base = _resolve(root, "cifar-10-batches-py", "batches.meta", "cifar10")
    names = _names(_unpickle(base / "batches.meta"), b"label_names", base / "batches.meta")
    batches = [(base / f"data_batch_{i}", _unpickle(base / f"data_batch_{i}")) for i in range(1, 6)]
    train_x = np.concatenate([_images(b, p) for p, b in batches])
    train_y = np.concatenate([np.asarray(_field(b, b"labels", p)) for p, b in batches])
    test_path = base / "test_batch"
    test = _unpickle(test_path)
    return DatasetSplits(
        "cifar10",
        _table(train_x, train_y, names),
        _table(_images(test, test_path), _field(test, b"labels", test_path), names),
        CIFAR10_MEAN,
        CIFAR10_STD,
        info={"root": str(base)},
    )


def load_cifar100(root) -> DatasetSplits:
    """CIFAR-100 fine labels: train ``(50000, 32, 32, 3)``, test ``(10000, 32, 32, 3)``, 100 classes.

    ``root`` contains ``cifar-100-python/`` or is that folder. The coarse (superclass) labels are kept in
    ``info["coarse_labels_train"]``, ``info["coarse_labels_test"]`` and ``info["coarse_class_names"]``.
    """
    base = _resolve(root, "cifar-100-python", "meta", "cifar100")
    meta = _unpickle(base / "meta")
    names = _names(meta, b"fine_label_names", base / "meta")
    coarse_names = _names(meta, b"coarse_label_names", base / "meta") if b"coarse_label_names" in meta else None
    splits = {}
    info: dict = {"root": str(base)}
    for split in ("train", "test"):
        path = base / split
        batch = _unpickle(path)
        splits[split] = _table(_images(batch, path), _field(batch, b"fine_labels", path), names)
        if b"coarse_labels" in batch:
            info[f"coarse_labels_{split}"] = np.asarray(batch[b"coarse_labels"], dtype=np.int64)
    if coarse_names is not None:
        info["coarse_class_names"] = coarse_names
    return DatasetSplits("cifar100", splits["train"], splits["test"], CIFAR100_MEAN, CIFAR100_STD, info=info)
