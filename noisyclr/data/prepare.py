"""From config to the two tables a run trains and tests on: load the source, keep its ``dataset.classes``, inject
noise (OOD images, then label noise), subset, save labels.

A streamed run (``dataset.stream``) gets :class:`~noisyclr.data.table.FileTable` listings instead of decoded
tables; label noise, the class subset, the clean holdout, the limits and ``train_labels.csv`` only need labels and
paths, so they are the same in both modes. OOD noise replaces decoded images, so it needs a resident table.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import UserError
from .table import DatasetSplits, FileTable, ImageTable

LABELS_FILE = "train_labels.csv"


@dataclass
class PreparedData:
    name: str
    train: ImageTable | FileTable
    test: ImageTable | FileTable
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # clean validation split: the source's own (Clothing1M's clean val) or rows held out of the training set
    # (dataset.clean_holdout); labels = true labels; None when there is neither
    holdout: ImageTable | FileTable | None = None
    # further clean test sets by name, evaluated every epoch beside ``test`` (mini-WebVision's ``imagenet_val``)
    extra_test: dict = field(default_factory=dict)

    @property
    def actual_noise_rate(self) -> float | None:
        """Fraction of training labels that differ from the true ones (None when truth is unknown); an OOD row
        (true label -1) always counts."""
        t = self.train
        return None if t.true_labels is None else float((t.labels != t.true_labels).mean())


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` rows drawn without replacement, the same share from every label value."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    # rank of each row within its class in a random order; keep the lowest ranks until `size` rows remain
    ranks = np.empty(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        members = order[labels[order] == value]
        ranks[members] = np.arange(len(members)) / len(members) * 1e6
    keep = np.argsort(ranks, kind="stable")[:size]
    return np.sort(keep)


def split_clean_holdout(table, size: int, seed: int) -> tuple:
    """``(rest, holdout)``: ``size`` rows drawn stratified by the TRUE class, given back their true labels.

    Ghosh & Lan hold 1,000 of the 50,000 CIFAR training images out of the noise (seeded random split, noise injected
    into the other 49,000) as clean meta / validation data. Here the noise is injected into the whole training set
    first (so reference noise files indexed over all N images still apply) and the held-out rows then get their true
    labels back: the rest carries exactly the labels it would have had, and the held-out rows are clean. Both keep
    dataset order. Needs known clean labels. ``table`` is an :class:`ImageTable` or a :class:`FileTable`.
    OOD rows (``table.is_ood``) are never held out: their image belongs to no class.
    """
    if table.true_labels is None:
        raise UserError(
            "dataset.clean_holdout needs the clean labels of the training set, which this source does not have; "
            "set dataset.clean_holdout=0"
        )
    if not 0 < size < len(table) - 1:
        raise UserError(
            f"dataset.clean_holdout={size} must be between 1 and {len(table) - 2} (the training set has {len(table)} "
            "images); e.g. 1000 for CIFAR, 100 for digits"
        )
    candidates = np.arange(len(table)) if table.is_ood is None else np.flatnonzero(~table.is_ood)
    if size >= len(candidates) - 1:
        raise UserError(f"dataset.clean_holdout={size} must be less than the {len(candidates) - 1} in-distribution "
                        "training images (OOD rows are never held out); lower it")
    hold = candidates[stratified_subset(table.true_labels[candidates], size, seed)]
    rest = np.setdiff1d(np.arange(len(table)), hold)
    held = table.subset(hold)
    held.labels = held.true_labels.copy()
    held.is_ood = None  # no OOD row is held out
    return table.subset(rest), held


def load_splits(cfg: Config) -> DatasetSplits:
    """The source's splits: :class:`FileTable` listings when the run streams, decoded tables otherwise.

    ``dataset.stream=on`` streams (sources that can: :func:`~noisyclr.data.sources.streaming_sources`); ``auto`` streams when the decoded train and
    test tables together would exceed ``dataset.resident_limit_gb``; ``off`` never streams. A streamed listing
    carries the worker settings, and its mean/std are estimated from a sample of the train files
    (:func:`~noisyclr.data.stream.sample_mean_std`) unless the config gives both.
    """
    from .sources import can_stream, list_dataset, load_dataset, streaming_sources

    d = cfg.dataset
    if d.stream != "off" and can_stream(d.name):
        listed = list_dataset(d.name, d.root, cache_dir=d.cache_dir, **d.options)
        if d.stream == "on" or listed.train.nbytes + listed.test.nbytes > d.resident_limit_gb * 1e9:
            for table in (listed.train, listed.test, listed.val, *listed.extra_test.values()):
                if table is not None:
                    table.workers, table.prefetch = d.stream_workers, d.stream_prefetch
            if listed.mean is None and (d.mean is None or d.std is None):
                from .stream import sample_mean_std

                listed.mean, listed.std = sample_mean_std(listed.train)
            return listed
    elif d.stream == "on":
        raise UserError(
            f"dataset.stream=on needs a source that can stream ({', '.join(streaming_sources())}); dataset {d.name} is always decoded into "
            "memory, set dataset.stream=auto"
        )
    return load_dataset(d.name, d.root, cache_dir=d.cache_dir, **d.options)


def _apply_noise(table, **kwargs):
    """:func:`~noisyclr.data.noise.apply_noise` for an :class:`ImageTable` or a :class:`FileTable`."""
    from .noise import apply_noise, noisy_labels

    if not isinstance(table, FileTable):
        return apply_noise(table, **kwargs)
    return table.with_labels(noisy_labels(table.labels, table.true_labels, table.class_names, paths=table.paths,
                                          **kwargs))


def _inject_noise(cfg: Config, splits: DatasetSplits, train):
    """``train`` with ``cfg.noise``: OOD images then ID label noise when ``noise.ood_rate`` > 0 (drawn from the pool
    ``noise.ood_source``; ``splits.train`` is the whole source for ``classes``), label noise alone otherwise."""
    d, n = cfg.dataset, cfg.noise
    label_noise = dict(kind=n.kind, rate=n.rate, seed=n.seed, dataset_name=d.name, exclude_true=n.exclude_true,
                       asym_map=n.asym_map, file=n.file, column=n.column, order_file=n.order_file)
    if not n.ood_rate:
        return _apply_noise(train, **label_noise)
    if isinstance(train, FileTable):
        raise UserError(
            f"noise.ood_rate replaces training images in memory, but dataset {d.name} streams from disk (its "
            f"decoded splits exceed dataset.resident_limit_gb={d.resident_limit_gb:g}); set dataset.stream=off"
        )
    from .ood import apply_ood_noise, load_ood_pool

    pool = load_ood_pool(n.ood_source, root=n.ood_root, options=n.ood_options, classes=n.ood_classes,
                         kept=d.classes, source_train=splits.train, cache_dir=d.cache_dir, dataset_name=d.name)
    return apply_ood_noise(train, pool, ood_rate=n.ood_rate, **label_noise)


def prepare_data(cfg: Config) -> PreparedData:
    """Load (or, when streaming, list) ``cfg.dataset``, keep ``dataset.classes``, inject ``cfg.noise`` into the
    training split, hold out clean rows, apply the limits."""
    from .ood import keep_classes

    d = cfg.dataset
    splits = load_splits(cfg)
    train, test = splits.train, splits.test
    if d.classes is not None:
        # before the noise: a noise file for a class subset lists the subset's rows
        train, test = keep_classes(train, d.classes, d.name), keep_classes(test, d.classes, d.name)
    train = _inject_noise(cfg, splits, train)
    holdout, extra = splits.val, dict(splits.extra_test)
    if d.classes is not None:
        holdout = None if holdout is None else keep_classes(holdout, d.classes, d.name)
        extra = {name: keep_classes(split, d.classes, d.name) for name, split in extra.items()}
    if d.clean_holdout:
        if holdout is not None:
            raise UserError(f"dataset {d.name} ships its own clean validation split ({len(holdout)} images), used "
                            "for model selection and as clean data; set dataset.clean_holdout=0")
        train, holdout = split_clean_holdout(train, d.clean_holdout, cfg.train.seed)
    for key, limit, split in (("train_limit", d.train_limit, train), ("test_limit", d.test_limit, test)):
        if limit is not None and limit > len(split):
            which = "training" if key == "train_limit" else "test"
            raise UserError(f"dataset.{key}={limit} is more than the {len(split)} {which} samples of {d.name}; "
                            f"e.g. dataset.{key}={len(split)}, or null for all of them")
    if d.train_limit:
        train = train.subset(stratified_subset(train.labels, d.train_limit, cfg.train.seed))
    if d.test_limit:
        test = test.subset(stratified_subset(test.labels, d.test_limit, cfg.train.seed))
    mean = tuple(d.mean) if d.mean is not None else tuple(splits.mean)
    # a data-derived std can be 0 for a constant channel (e.g. an unused blue channel); one grey level keeps the
    # normalisation finite without changing any channel that varies
    std = tuple(d.std) if d.std is not None else tuple(max(float(s), 1 / 255) for s in splits.std)
    channels = train.image_shape[-1]
    if len(mean) != channels or len(std) != channels:
        raise UserError(
            f"dataset.mean/std have {len(mean)}/{len(std)} values but the images have {channels} channels; "
            f"give {channels} values each"
        )
    named = {"test": test, **({"val": holdout} if holdout is not None else {}), **extra}
    for which, split in named.items():
        if split.image_shape != train.image_shape:
            raise UserError(
                f"{which} images are {split.image_shape} but train images are {train.image_shape}; "
                "give the source an image_size option so all splits are resized alike"
            )
    return PreparedData(splits.name, train, test, mean, std, holdout, extra)


def labels_csv_text(table: ImageTable | FileTable) -> str:
    """The training labels as CSV: ``index,given_label,true_label[,is_ood][,path]``.

    ``true_label`` is empty when unknown and -1 on an OOD row; ``is_ood`` (1 on a row whose image is out of
    distribution, else 0) is there only with OOD noise, so the file of a run without it is as it always was.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    ood = table.is_ood
    header = ["index", "given_label", "true_label"] + (["is_ood"] if ood is not None else []) + \
        (["path"] if table.paths else [])
    writer.writerow(header)
    for i, given in enumerate(table.labels.tolist()):
        row = [i, given, "" if table.true_labels is None else int(table.true_labels[i])]
        if ood is not None:
            row.append(int(ood[i]))
        if table.paths:
            row.append(table.paths[i])
        writer.writerow(row)
    return buf.getvalue()


def save_labels(table: ImageTable | FileTable, out_dir: Path) -> None:
    """Write the labels the run trains on (and the true ones) to ``train_labels.csv``."""
    from ..io import atomic_write_text

    atomic_write_text(Path(out_dir) / LABELS_FILE, labels_csv_text(table))


def check_saved_labels(table: ImageTable | FileTable, out_dir: Path) -> None:
    """On resume: the regenerated labels must equal the saved ones, or the data changed under the run."""
    path = Path(out_dir) / LABELS_FILE
    if not path.exists():
        return
    saved, now = path.read_text(), labels_csv_text(table)
    if saved == now:
        return
    had_ood, has_ood = "is_ood" in saved.partition("\n")[0].split(","), table.is_ood is not None
    if had_ood != has_ood:
        raise UserError(
            f"{out_dir} was started {'with' if had_ood else 'without'} OOD noise ({LABELS_FILE} "
            f"{'has' if had_ood else 'has no'} is_ood column) but noise.ood_rate is now "
            f"{'0' if had_ood else 'set'}; resume with the run's own config, or start a new run with --out"
        )
    raise UserError(
        f"the training labels regenerated for {out_dir} differ from its {LABELS_FILE}: the dataset or noise "
        "file changed since the run started; restore them or start a new run with --out"
    )
