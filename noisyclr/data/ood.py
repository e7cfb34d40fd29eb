"""Out-of-distribution label noise: training slots whose image belongs to no training class (Manifold DivideMix).

Conventions (docs/data.md, "Out-of-distribution label noise"; spec ``tcl_mdm_contrastinit.md`` §2.9):

* ``int(ood_rate * N)`` training slots, drawn without replacement by ``np.random.default_rng(noise.seed)``, get an
  image from the OOD pool (drawn without replacement from the pool by the same generator, resized and converted
  to the training image shape) and **keep the slot's label**, the seed's convention. Their true label is ``-1``
  (the image has no class), so they count as noisy, and the table's ``is_ood`` marks them.
* The in-distribution noise (``noise.kind``) then goes on the other slots only, with the generators of
  :mod:`noisyclr.data.noise` at rate ``r / (1 - ood_rate)``: the seed's selection probability, so about ``r * N``
  slots overall. A noise file (``file``/``human``) gives the label of every slot, the OOD ones included, as the
  seed's JSON does.
* Pools: the training source's own images of other classes (``classes``, with ``dataset.classes``), every image
  file under a folder (``folder``: Places365's flat folder or any tree), the ImageNet32 pickled batches
  (``imagenet32``), or the train split of any registered dataset source.

The seed draws the OOD and the ID slots as independent Bernoulli trials; here the counts are exact (the project's
``int(rate * N)`` convention of :func:`~noisyclr.data.noise.sym_noise_dividemix`), with the same expected values.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import UserError
from .noise import noisy_labels
from .table import ImageTable

# noise.ood_source values that are not dataset sources (the config checks read them from here)
OOD_POOLS = ("classes", "folder", "imagenet32")

_BATCH = re.compile(r"^train_data_batch_(\d+)(\.npz)?$")


# --------------------------------------------------------------------------------------------------------------
# class subsets


def keep_classes(table, classes, source: str):
    """The rows of ``table`` (an ImageTable or a FileTable) whose label is in ``classes``, relabelled: class
    ``classes[j]`` becomes ``j``; class names follow. Row order is kept.

    Rows are chosen by their given label (the source's, before any noise). A true label outside ``classes``
    becomes -1 (no class of the subset).
    """
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < table.num_classes]
    if bad:
        raise UserError(f"dataset.classes has class {bad[0]}, but {source} has classes 0..{table.num_classes - 1}; "
                        "fix dataset.classes")
    remap = np.full(table.num_classes, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    rows = np.flatnonzero(remap[table.labels] >= 0)
    out = table.subset(rows)
    out.labels = remap[out.labels]
    if out.true_labels is not None:
        out.true_labels = np.where(out.true_labels >= 0, remap[np.maximum(out.true_labels, 0)], -1)
    out.class_names = [table.class_names[c] for c in classes]
    return out


# --------------------------------------------------------------------------------------------------------------
# pools


@dataclass(frozen=True)
class OODPool:
    """``size`` candidate OOD images. ``take(index, shape)`` gives the images ``index`` (``(k,)`` ints in
    ``[0, size)``) as ``(k, H, W, C)`` uint8 fitted to ``shape = (H, W, C)`` (:func:`fit_images`); a lazy pool
    (a folder) decodes only those."""

    name: str
    size: int
    take: Callable[[np.ndarray, tuple], np.ndarray]


def fit_images(images: np.ndarray, shape: tuple) -> np.ndarray:
    """``(M, h, w, c)`` uint8 images as ``(M, H, W, C)`` for ``shape = (H, W, C)``, C = 1 or 3.

    Channels: RGB to grey is Pillow's ``convert("L")`` (ITU-R 601-2 luma), grey to RGB repeats the plane. Size:
    Pillow bilinear (antialiased when shrinking), as the seed resizes Places365 images. Images already in
    ``shape`` are returned as they are.
    """
    images = np.asarray(images, dtype=np.uint8)
    H, W, C = (int(v) for v in shape)
    if images.shape[1:] == (H, W, C):
        return images
    out = np.empty((len(images), H, W, C), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).convert("L" if C == 1 else "RGB")
        if pil.size != (W, H):
            pil = pil.resize((W, H), Image.BILINEAR)
        arr = np.asarray(pil, dtype=np.uint8)
        out[i] = arr[..., None] if C == 1 else arr
    return out


def array_pool(name: str, images: np.ndarray) -> OODPool:
    """A pool of decoded ``(M, h, w, c)`` uint8 images."""
    return OODPool(name, len(images), lambda index, shape: fit_images(images[index], shape))


def _rows_of_classes(table, classes, what: str) -> np.ndarray:
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < table.num_classes]
    if bad:
        raise UserError(f"noise.ood_classes has class {bad[0]}, but {what} has classes 0..{table.num_classes - 1}; "
                        "fix noise.ood_classes")
    return np.flatnonzero(np.isin(table.labels, classes))


def class_pool(source_train: ImageTable, kept, classes=None, *, source: str = "the dataset") -> OODPool:
    """The training images of ``source_train`` (the whole source, before ``dataset.classes``) whose class is in
    ``classes``, by default every class not in ``kept``: one data set as in- and out-of-distribution parts."""
    if classes is None:
        classes = [c for c in range(source_train.num_classes) if c not in set(kept)]
        if not classes:
            raise UserError(f"dataset.classes keeps every class of {source}, so noise.ood_source=classes has no "
                            "class left to draw OOD images from; keep fewer classes")
    rows = _rows_of_classes(source_train, classes, source)
    names = ",".join(source_train.class_names[c] for c in classes)
    return array_pool(f"classes {names} of {source}", source_train.images[rows])


def _image_files(root: Path) -> list[str]:
    """Every visible image file under ``root`` (recursively), as sorted ``/``-separated relative paths."""
    from .folder import visible

    extensions = {ext.lower() for ext in Image.registered_extensions()}
    rels = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if visible(d)]
        base = Path(folder).relative_to(root)
        rels += [(base / f).as_posix() for f in files if visible(f) and Path(f).suffix.lower() in extensions]
    return sorted(rels)


def folder_pool(root) -> OODPool:
    """Every image file under ``root`` (any depth, sorted by relative path: a Places365-style flat folder or a
    class tree); only the drawn files are decoded, converted and resized."""
    from .folder import decode_rows

    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"noise.ood_root {root} does not exist or is not a folder; give the folder of the OOD images")
    rels = _image_files(root)
    if not rels:
        raise UserError(f"noise.ood_root {root} holds no image files; put the OOD images (any Pillow format) in it")

    def take(index, shape):
        out = np.empty((len(index),) + tuple(shape), dtype=np.uint8)
        for i, k in enumerate(index):
            # one file at a time: the pool's images may all have different sizes
            arr = decode_rows(str(root), [rels[k]], None)
            if isinstance(arr, tuple):
                raise UserError(arr[1])
            out[i] = fit_images(arr, shape)[0]
        return out

    return OODPool(f"folder {root}", len(rels), take)


def _batch_images(path: Path) -> np.ndarray:
    """The ``(n, s, s, 3)`` uint8 images of one Downsampled-ImageNet batch (pickle, or the ``.npz`` variant):
    ``data`` is ``(n, 3·s·s)``, channel-major (R plane, G plane, B plane) per image, as CIFAR."""
    from .safe_pickle import load_pickle

    fix = "delete it and extract Imagenet32_train.zip again"
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as batch:
                data = batch["data"]
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot read ImageNet32 batch {path} ({type(exc).__name__}); {fix}") from None
    else:
        batch = load_pickle(path, what="ImageNet32 batch", fix=fix)
        data = batch.get("data", batch.get(b"data")) if isinstance(batch, dict) else None
        if data is None:
            raise UserError(f"{path} has no 'data' entry; it is not an ImageNet32 batch, {fix}")
    data = np.asarray(data, dtype=np.uint8)
    side = math.isqrt(data.shape[1] // 3) if data.ndim == 2 else 0
    if data.ndim != 2 or side < 1 or 3 * side * side != data.shape[1]:
        raise UserError(f"{path}: data has shape {data.shape}, expected (N, 3*S*S) such as (N, 3072); {fix}")
    return np.ascontiguousarray(data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))


def imagenet32_pool(root) -> OODPool:
    """The Downsampled ImageNet train batches under ``root`` (``train_data_batch_1`` .. ``10``, pickled, or
    ``.npz``), in batch order. Every batch is read once (about 3.8 GB for all ten) and the drawn images are
    gathered from them; the seed reloads them at every division."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"noise.ood_root {root} does not exist or is not a folder; give the folder holding "
                        "train_data_batch_1..10")
    found = sorted(((int(m.group(1)), p) for p in root.iterdir() if (m := _BATCH.match(p.name))), key=lambda t: t[0])
    if not found:
        raise UserError(f"noise.ood_root {root} has no train_data_batch_<k> files; extract Imagenet32_train.zip "
                        "there (train_data_batch_1..10)")
    batches = [_batch_images(p) for _, p in found]
    if len({b.shape[1:] for b in batches}) > 1:
        raise UserError(f"the batches under {root} have different image sizes; keep one resolution per folder")
    starts = np.cumsum([0] + [len(b) for b in batches])

    def take(index, shape):
        index = np.asarray(index, dtype=np.int64)
        which = np.searchsorted(starts, index, side="right") - 1
        rows = np.stack([batches[b][i - starts[b]] for b, i in zip(which, index)]) if len(index) else \
            np.zeros((0,) + batches[0].shape[1:], np.uint8)
        return fit_images(rows, shape)

    return OODPool(f"imagenet32 {root}", int(starts[-1]), take)


def _ood_wording(message: str) -> str:
    # check_source words its errors for dataset.*; the same checks on the OOD source name the noise.* keys
    return (message.replace("dataset.options.", "noise.ood_options.").replace("dataset.root=", "noise.ood_root=")
            .replace("dataset root ", "noise.ood_root "))


def check_ood_source(source: str, root, options: dict) -> None:
    """``noise.ood_source`` names a pool or a registered dataset source, with the root folder and options it needs
    (one-line UserErrors); nothing is read. The layout under the root is checked when the pool loads."""
    from .sources import SOURCES, check_source

    if source in ("folder", "imagenet32"):
        if root is None or not Path(root).expanduser().is_dir():
            raise UserError(f"noise.ood_root {root} does not exist or is not a folder; give the folder of the OOD "
                            f"images for noise.ood_source={source}")
        return
    if source == "classes":
        return
    if source not in SOURCES:
        close = difflib.get_close_matches(str(source), list(OOD_POOLS) + list(SOURCES), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown noise.ood_source '{source}'; {hint}use one of {', '.join(OOD_POOLS)} or a dataset "
                        f"name ({', '.join(sorted(SOURCES))})")
    try:
        check_source(source, root, options)
    except UserError as exc:
        raise UserError(_ood_wording(str(exc))) from None


def load_ood_pool(source: str, *, root=None, options: dict | None = None, classes=None, kept=None,
                  source_train: ImageTable | None = None, cache_dir=None, dataset_name: str = "the dataset") -> OODPool:
    """The pool ``noise.ood_source`` names.

    Args:
        source: ``classes`` (needs ``source_train``, the training source's whole train split, and ``kept``, the
            ``dataset.classes``), ``folder`` / ``imagenet32`` (need ``root``), or a registered dataset name (its
            train split, loaded from ``root`` with ``options``).
        classes: ``noise.ood_classes``: only these classes of a ``classes`` or dataset pool.
    """
    options = dict(options or {})
    check_ood_source(source, root, options)
    if source == "classes":
        if source_train is None or kept is None:
            raise UserError("noise.ood_source=classes needs dataset.classes (the in-distribution classes); set it")
        return class_pool(source_train, kept, classes, source=dataset_name)
    if source == "folder":
        return folder_pool(root)
    if source == "imagenet32":
        return imagenet32_pool(root)
    from .sources import load_dataset

    try:
        train = load_dataset(source, root, cache_dir=cache_dir, **options).train
    except UserError as exc:
        raise UserError(_ood_wording(str(exc))) from None
    if not isinstance(train, ImageTable):
        raise UserError(f"noise.ood_source={source} did not give decoded images; use noise.ood_source=folder")
    rows = np.arange(len(train)) if classes is None else _rows_of_classes(train, classes, source)
    return array_pool(f"dataset {source}", train.images[rows])


# --------------------------------------------------------------------------------------------------------------
# injection


def ood_slots(n: int, ood_rate: float, seed: int) -> tuple[np.ndarray, np.random.Generator]:
    """The sorted ``(int(ood_rate * n),)`` int64 OOD slots, drawn without replacement by
    ``np.random.default_rng(seed)``, and that generator (the pool images are drawn from it next)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(ood_rate * n), replace=False)), rng


def apply_ood_noise(table: ImageTable, pool: OODPool, *, ood_rate: float, kind: str, rate: float, seed: int,
                    **noise) -> ImageTable:
    """OOD replacement, then ID noise on the other slots (the seed's composition; module docstring).

    Args:
        table: the training split, ``(N, H, W, C)`` images, clean or source labels.
        pool: where the OOD images come from (:func:`load_ood_pool`); it needs at least ``int(ood_rate * N)``
            images (each is used once: a duplicated image would look in-distribution to a k-NN filter).
        ood_rate: ρ in [0, 1); ``kind``, ``rate`` (r, with r + ρ <= 1 for sym/asym), ``seed`` and ``noise``: the
            ID noise, keywords of :func:`~noisyclr.data.noise.noisy_labels`.

    Returns:
        A new table: images replaced at the OOD slots (fitted to ``(H, W, C)``), labels kept there (a noise file's
        labels for ``file``/``human``), true labels -1 there (when known), ``is_ood`` marking them, and the ID noise
        at rate ``r / (1 - ρ)`` over the other slots.
    """
    if isinstance(ood_rate, bool) or not 0.0 <= float(ood_rate) < 1.0:
        raise UserError(f"noise.ood_rate must be in [0, 1), got {ood_rate!r}; e.g. noise.ood_rate=0.2")
    if kind in ("sym", "asym") and rate + ood_rate > 1 + 1e-12:
        raise UserError(f"noise.rate + noise.ood_rate must be at most 1 (the ID noise selects rate / (1 - ood_rate) "
                        f"of the other slots), got {rate:g} + {ood_rate:g}; lower one of them")
    n = len(table)
    count = int(ood_rate * n)
    if count > pool.size:
        raise UserError(f"the OOD pool ({pool.name}) has {pool.size} images, fewer than the {count} OOD slots "
                        f"(noise.ood_rate={ood_rate:g} of {n}); add images to the pool or lower noise.ood_rate")
    slots, rng = ood_slots(n, ood_rate, seed)
    drawn = rng.choice(pool.size, size=count, replace=False)
    is_ood = np.zeros(n, dtype=bool)
    is_ood[slots] = True
    images = table.images.copy()
    if count:
        images[slots] = pool.take(drawn, table.image_shape)

    true = table.true_labels
    if kind in ("file", "human"):
        labels = noisy_labels(table.labels, true, table.class_names, kind=kind, rate=rate, seed=seed,
                              paths=table.paths, **noise)
    else:
        rest = np.flatnonzero(~is_ood)
        labels = table.labels.copy()
        # min: r + ρ = 1 can give 1.0000000000000002
        labels[rest] = noisy_labels(table.labels[rest], None if true is None else true[rest], table.class_names,
                                    kind=kind, rate=min(1.0, rate / (1.0 - ood_rate)), seed=seed, **noise)
    if true is not None:
        true = true.copy()
        true[slots] = -1
    return ImageTable(images, labels, true, list(table.class_names),
                      paths=None if table.paths is None else list(table.paths), is_ood=is_ood)


__all__ = [
    "OODPool", "apply_ood_noise", "array_pool", "check_ood_source", "class_pool", "fit_images", "folder_pool",
    "imagenet32_pool", "keep_classes", "load_ood_pool", "ood_slots",
]
