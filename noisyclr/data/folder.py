"""``folder``: an image-classification tree ``root/train/<class>/*`` and ``root/test/<class>/*``.

Also home of the decode + on-disk cache helpers that every file-based source shares
(:func:`load_images_cached`, :func:`channel_mean_std`, :func:`decode_rows`, which the streaming loader's workers
call too). :func:`list_folder` lists the same tree without decoding, for a streamed run.

Decoding tens of thousands of small JPEGs is bound by Python overhead per file, so it runs in worker processes
(threads do not help under the GIL); the decoded arrays and the train mean/std are cached in one uncompressed
``.npz`` keyed by the root, the file list, sizes, mtimes and the target size, so a second load is a file read.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from ..io import atomic_write
from .table import DatasetSplits, FileTable, ImageTable

CACHE_VERSION = "1"
_CHUNK = 512  # images per worker task: big enough to amortise pickling, small enough to balance 2+ workers
_PARALLEL_MIN = 2048  # below this, starting processes costs more than it saves


# --------------------------------------------------------------------------------------------------------------
# shared helpers (also used by tiny_imagenet.py)


def default_cache_dir() -> Path:
    """``$NOISYCLR_CACHE`` if set, else ``~/.cache/noisyclr``."""
    env = os.environ.get("NOISYCLR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "noisyclr"


def visible(name: str) -> bool:
    """False for hidden entries (``.DS_Store``, ``.ipynb_checkpoints``...), which every listing skips."""
    return not name.startswith(".")


def channel_histogram(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """``(C, 256)`` per-channel counts of each grey level in ``(N, H, W, C)`` uint8 images."""
    channels = images.shape[-1]
    offsets = (np.arange(channels) * 256).astype(np.uint16)
    hist = np.zeros(channels * 256, dtype=np.int64)
    for start in range(0, len(images), chunk):
        codes = images[start:start + chunk].reshape(-1, channels).astype(np.uint16) + offsets
        hist += np.bincount(codes.ravel(), minlength=channels * 256)
    return hist.reshape(channels, 256)


def stats_from_histogram(hist: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std in [0, 1] units from a ``(C, 256)`` grey-level histogram."""
    levels = np.arange(256) / 255.0
    count = np.maximum(hist.sum(axis=1), 1)
    mean = hist @ levels / count
    var = np.maximum(hist @ np.square(levels) / count - np.square(mean), 0.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in np.sqrt(var))


def channel_mean_std(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, H, W, C)`` uint8 images, in [0, 1] units (population std).

    Exact, through a grey-level histogram: no float copy of the whole array is ever made.
    """
    return stats_from_histogram(channel_histogram(images))


def _decode_one(full: str, rel: str, size: int | None) -> np.ndarray:
    try:
        with Image.open(full) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        # listed earlier (a streamed run lists once at the start), gone now
        raise UserError(f"image {full} is missing; restore it, or start a new run (--out) so the folder is "
                        "listed again") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise UserError(f"cannot read image {rel} ({reason}); delete or replace that file") from None


def decode_rows(root: str, rels: list[str], size: int | None, shape: tuple | None = None):
    """Decode ``root/rel`` for every ``rel`` into one ``(n, H, W, 3)`` uint8 array (resized to ``size``² when
    given). Every image must have ``shape`` ``(H, W, 3)`` (default: the first one's).

    On failure returns ``("error", message)`` instead of raising, because this runs in worker processes and the
    message must name the file: an exception raised in a worker comes back with its traceback folded in.
    """
    out = []
    for rel in rels:
        try:
            arr = _decode_one(os.path.join(root, rel), rel, size)
        except UserError as exc:
            return ("error", str(exc))
        want = shape if shape is not None else (out[0].shape if out else None)
        if want is not None and arr.shape != tuple(want):
            return ("error", _size_message(rel, arr.shape, want))
        out.append(arr)
    if out:
        return np.stack(out)
    return np.zeros((0,) + tuple(shape or (1, 1, 3)), np.uint8)


def _decode_chunk(root: str, rels: list[str], size: int | None):
    """:func:`decode_rows` plus the chunk's grey-level histogram: ``(array, histogram)`` or ``("error", message)``."""
    arr = decode_rows(root, rels, size)
    if isinstance(arr, tuple):
        return arr
    # The histogram is taken here so that the statistics pass runs in the workers too.
    return arr, channel_histogram(arr)


def _size_message(rel: str, got: tuple, want: tuple) -> str:
    return (
        f"image {rel} is {got[1]}x{got[0]} but earlier images are {want[1]}x{want[0]}; "
        "set dataset.options.image_size=N to resize all images to NxN"
    )


def _pool_context():
    # fork is cheap and, unlike spawn, does not re-run an unguarded user script; the workers only touch PIL/numpy.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def default_workers() -> int:
    """CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def decode_images(root, rel_paths: list[str], *, image_size: int | None = None,
                  workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``root/rel`` for every ``rel`` into one ``(N, H, W, 3)`` uint8 RGB array, in the given order.

    All images must share one size unless ``image_size`` is given (then each is resized to a square of that side
    with bilinear filtering). Raises :class:`UserError` naming the first unreadable or differently sized file.
    Returns ``(images, histogram)`` with the ``(3, 256)`` grey-level histogram of the images
    (see :func:`stats_from_histogram`).
    """
    root = str(root)
    n = len(rel_paths)
    hist = np.zeros((3, 256), dtype=np.int64)
    if n == 0:
        side = image_size or 1
        return np.zeros((0, side, side, 3), np.uint8), hist
    first = _decode_one(os.path.join(root, rel_paths[0]), rel_paths[0], image_size)
    out = np.empty((n,) + first.shape, np.uint8)
    chunks = [(start, rel_paths[start:start + _CHUNK]) for start in range(0, n, _CHUNK)]
    workers = default_workers() if workers is None else max(1, int(workers))
    context = _pool_context()

    def place(start: int, result) -> None:
        if isinstance(result[0], str):
            raise UserError(result[1])
        arr, chunk_hist = result
        if arr.shape[1:] != first.shape:
            raise UserError(_size_message(rel_paths[start], arr.shape[1:], first.shape))
        out[start:start + len(arr)] = arr
        hist[...] += chunk_hist

    if workers > 1 and n >= _PARALLEL_MIN and context is not None:
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork in a process with threads; our workers use no locks of the parent.
            warnings.simplefilter("ignore", DeprecationWarning)
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [(start, pool.submit(_decode_chunk, root, rels, image_size)) for start, rels in chunks]
                try:
                    for start, future in futures:
                        place(start, future.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # a bad file: do not decode the rest first
                    raise
    else:
        for start, rels in chunks:
            place(start, _decode_chunk(root, rels, image_size))
    return out, hist


def _cache_key(tag: str, root: Path, splits: dict[str, list[str]], image_size: int | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{CACHE_VERSION}\0{tag}\0{root}\0{image_size}\0".encode())
    for split in sorted(splits):
        digest.update(f"[{split}]\0".encode())
        for rel in splits[split]:
            try:
                st = os.stat(root / rel)
            except OSError:
                raise UserError(f"image {rel} vanished while reading {root}; run again") from None
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _read_cache(path: Path, key: str, splits: dict[str, list[str]]):
    """The cached arrays if ``path`` holds a valid entry for ``key``, else ``None`` (missing or corrupt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            images = {split: data[f"images_{split}"] for split in splits}
            mean, std = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    for split, rels in splits.items():
        arr = images[split]
        if arr.dtype != np.uint8 or arr.ndim != 4 or len(arr) != len(rels):
            return None
    return images, mean, std


def _write_cache(path: Path, key: str, images: dict[str, np.ndarray], mean, std) -> None:
    arrays = {f"images_{split}": arr for split, arr in images.items()}
    try:
        atomic_write(path, lambda handle: np.savez(handle, key=np.array(key), mean=np.array(mean),
                                                   std=np.array(std), **arrays), mode="wb")
    except OSError as exc:
        warnings.warn(f"could not write the image cache {path} ({exc}); set NOISYCLR_CACHE to a writable folder",
                      stacklevel=3)


def load_images_cached(root, splits: dict[str, list[str]], *, tag: str, image_size: int | None = None,
                       cache_dir=None, workers: int | None = None, stats_split: str = "train"):
    """Decoded images of every split, through the on-disk cache.

    Args:
        root: dataset root; ``splits`` maps a split name to file paths relative to it (decode order).
        tag: the source name, part of the cache file name.
    Returns:
        ``(images, mean, std)``: ``images[split]`` is ``(N, H, W, 3)`` uint8; ``mean``/``std`` are the per-channel
        statistics of ``images[stats_split]`` in [0, 1] units.

    The cache entry ``<cache_dir>/<tag>-<hash of root and image_size>.npz`` holds a key over the root's real path,
    the file lists with sizes and mtimes, and ``image_size``; a stale or unreadable entry is rebuilt silently.
    """
    root = Path(os.path.realpath(root))
    key = _cache_key(tag, root, splits, image_size)
    # One entry per (root, size): a changed dataset overwrites its stale entry instead of piling up new ones;
    # the full key stored inside decides whether the entry is current.
    slot = hashlib.sha256(f"{tag}\0{root}\0{image_size}".encode()).hexdigest()[:16]
    path = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / f"{tag}-{slot}.npz"
    cached = _read_cache(path, key, splits)
    if cached is not None:
        return cached
    images, hists = {}, {}
    for split, rels in splits.items():
        images[split], hists[split] = decode_images(root, rels, image_size=image_size, workers=workers)
    shapes = {arr.shape[1:] for arr in images.values() if len(arr)}
    if len(shapes) > 1 and image_size is None:
        a, b = sorted(shapes)[:2]
        raise UserError(
            f"{tag} splits have different image sizes ({a[1]}x{a[0]} and {b[1]}x{b[0]}); "
            "set dataset.options.image_size=N to resize all images to NxN"
        )
    mean, std = stats_from_histogram(hists[stats_split])
    _write_cache(path, key, images, mean, std)
    return images, mean, std


# --------------------------------------------------------------------------------------------------------------
# the folder source


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and visible(e.name))


def _files(class_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(class_dir) if e.is_file() and visible(e.name))


def scan_folder(root: Path) -> tuple[list[str], dict[str, tuple[list[str], np.ndarray]]]:
    """``(class_names, {split: (relative paths, labels)})`` for ``root/{train,test}/<class>/<file>``.

    Classes are the sorted train folder names; files are sorted by name within a class; paths use ``/``.
    """
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist or is not a folder; set dataset.root to a folder with train/ and test/")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise UserError(f"dataset root {root} has no train/ folder; lay it out as train/<class>/* and test/<class>/*")
    classes = _class_dirs(train_dir)
    if not classes:
        raise UserError(f"{train_dir} has no class folders; put the images in train/<class>/")
    if not (root / "test").is_dir():
        raise UserError(f"dataset root {root} has no test/ folder; add test/<class>/* with the evaluation images")
    unknown = [c for c in _class_dirs(root / "test") if c not in classes]
    if unknown:
        raise UserError(f"test class folder test/{unknown[0]} has no train/{unknown[0]}; rename or remove it")
    out = {}
    for split in ("train", "test"):
        rels, labels = [], []
        for k, name in enumerate(classes):
            class_dir = root / split / name
            if not class_dir.is_dir():
                continue
            files = _files(class_dir)
            if split == "train" and not files:
                raise UserError(f"class folder train/{name} has no images; add images or remove the folder")
            rels += [f"{split}/{name}/{f}" for f in files]
            labels += [k] * len(files)
        out[split] = (rels, np.asarray(labels, dtype=np.int64))
    if not out["test"][0]:
        raise UserError(f"{root / 'test'} has no images; put the evaluation images in test/<class>/")
    return classes, out


def check_positive_option(name: str, value) -> int | None:
    """``value`` if it is ``None`` or a positive int, else a UserError naming ``dataset.options.<name>``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"dataset.options.{name} must be a positive integer, got {value!r}")
    return int(value)


def _folder_options(root, image_size, workers, clean_labels) -> tuple[Path, int | None, int | None]:
    """The checked ``(root, image_size, workers)`` of the folder source (:func:`load_folder`, :func:`list_folder`)."""
    if root is None:
        raise UserError("dataset folder needs a root; set dataset.root=PATH (a folder with train/ and test/)")
    if not isinstance(clean_labels, bool):
        raise UserError(f"dataset.options.clean_labels must be true or false, got {clean_labels!r}")
    return (Path(root).expanduser(), check_positive_option("image_size", image_size),
            check_positive_option("workers", workers))


def _true_labels(split: str, labels: np.ndarray, clean_labels: bool) -> np.ndarray | None:
    return labels.copy() if (clean_labels or split == "test") else None


def load_folder(root, *, cache_dir=None, image_size: int | None = None, workers: int | None = None,
                clean_labels: bool = True) -> DatasetSplits:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*`` (any Pillow format, converted to RGB).

    Labels are the index of the class folder in sorted order; ``paths`` are relative to ``root`` (e.g.
    ``train/frog/0000.jpg``). Normalisation is the train set's per-channel mean/std. ``clean_labels=False`` marks
    the folder labels as themselves noisy (``true_labels=None`` on the train table).
    """
    root, image_size, workers = _folder_options(root, image_size, workers, clean_labels)
    classes, listing = scan_folder(root)
    images, mean, std = load_images_cached(
        root, {split: rels for split, (rels, _) in listing.items()},
        tag="folder", image_size=image_size, cache_dir=cache_dir, workers=workers,
    )
    tables = {}
    for split, (rels, labels) in listing.items():
        tables[split] = ImageTable(images[split], labels, _true_labels(split, labels, clean_labels), list(classes),
                                   paths=rels)
    return DatasetSplits("folder", tables["train"], tables["test"], mean, std, info={"root": str(root)})


def list_folder(root, *, cache_dir=None, image_size: int | None = None, workers: int | None = None,
                clean_labels: bool = True) -> DatasetSplits:
    """The same splits as :func:`load_folder` as :class:`FileTable` listings: files and labels, nothing decoded
    but the first image of each split (for its size when ``image_size`` is not given).

    ``mean``/``std`` are left ``None`` (estimated from a sample by :func:`noisyclr.data.stream.sample_mean_std`
    when the config does not give them). Takes the options of :func:`load_folder`; ``cache_dir`` and ``workers``
    (the cache's decode processes) are accepted for that and unused.
    """
    root, image_size, _ = _folder_options(root, image_size, workers, clean_labels)
    classes, listing = scan_folder(root)
    real = os.path.realpath(root)
    tables = {}
    for split, (rels, labels) in listing.items():
        first = _decode_one(os.path.join(real, rels[0]), rels[0], image_size)
        tables[split] = FileTable(real, rels, labels, _true_labels(split, labels, clean_labels), list(classes),
                                  image_shape=first.shape, image_size=image_size)
    return DatasetSplits("folder", tables["train"], tables["test"], None, None, info={"root": str(root)})
