"""From config to the two tables a run trains and tests on: load the source, inject noise, subset, save labels."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import UserError
from .table import ImageTable

LABELS_FILE = "train_labels.csv"


@dataclass
class PreparedData:
    name: str
    train: ImageTable
    test: ImageTable
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # clean held-out split (dataset.clean_holdout): labels = true labels; None when not asked for
    holdout: ImageTable | None = None

    @property
    def actual_noise_rate(self) -> float | None:
        """Fraction of training labels that differ from the true ones (None when truth is unknown)."""
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


def split_clean_holdout(table: ImageTable, size: int, seed: int) -> tuple[ImageTable, ImageTable]:
    """``(rest, holdout)``: ``size`` rows drawn stratified by the TRUE class, given back their true labels.

    Ghosh & Lan hold 1,000 of the 50,000 CIFAR training images out of the noise (seeded random split, noise injected
    into the other 49,000) as clean meta / validation data. Here the noise is injected into the whole training set
    first (so reference noise files indexed over all N images still apply) and the held-out rows then get their true
    labels back: the rest carries exactly the labels it would have had, and the held-out rows are clean. Both keep
    dataset order. Needs known clean labels.
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
    hold = stratified_subset(table.true_labels, size, seed)
    rest = np.setdiff1d(np.arange(len(table)), hold)
    held = table.subset(hold)
    held.labels = held.true_labels.copy()
    return table.subset(rest), held


def prepare_data(cfg: Config) -> PreparedData:
    """Load ``cfg.dataset``, inject ``cfg.noise`` into the training labels, hold out clean rows, apply the limits."""
    from .noise import apply_noise
    from .sources import load_dataset

    d, n = cfg.dataset, cfg.noise
    splits = load_dataset(d.name, d.root, cache_dir=d.cache_dir, **d.options)
    train = apply_noise(
        splits.train,
        kind=n.kind,
        rate=n.rate,
        seed=n.seed,
        dataset_name=d.name,
        exclude_true=n.exclude_true,
        asym_map=n.asym_map,
        file=n.file,
        column=n.column,
        order_file=n.order_file,
    )
    test = splits.test
    holdout = None
    if d.clean_holdout:
        train, holdout = split_clean_holdout(train, d.clean_holdout, cfg.train.seed)
    if d.train_limit:
        train = train.subset(stratified_subset(train.labels, d.train_limit, cfg.train.seed))
    if d.test_limit:
        test = test.subset(stratified_subset(test.labels, d.test_limit, cfg.train.seed))
    mean = tuple(d.mean) if d.mean is not None else tuple(splits.mean)
    # a data-derived std can be 0 for a constant channel (e.g. an unused blue channel); one grey level keeps the
    # normalisation finite without changing any channel that varies
    std = tuple(d.std) if d.std is not None else tuple(max(float(s), 1 / 255) for s in splits.std)
    channels = train.images.shape[-1]
    if len(mean) != channels or len(std) != channels:
        raise UserError(
            f"dataset.mean/std have {len(mean)}/{len(std)} values but the images have {channels} channels; "
            f"give {channels} values each"
        )
    if test.images.shape[1:] != train.images.shape[1:]:
        raise UserError(
            f"test images are {test.images.shape[1:]} but train images are {train.images.shape[1:]}; "
            "give the source an image_size option so both are resized alike"
        )
    return PreparedData(splits.name, train, test, mean, std, holdout)


def labels_csv_text(table: ImageTable) -> str:
    """The training labels as CSV: ``index,given_label,true_label[,path]`` (true_label empty when unknown)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["index", "given_label", "true_label"] + (["path"] if table.paths else [])
    writer.writerow(header)
    for i, given in enumerate(table.labels.tolist()):
        row = [i, given, "" if table.true_labels is None else int(table.true_labels[i])]
        if table.paths:
            row.append(table.paths[i])
        writer.writerow(row)
    return buf.getvalue()


def save_labels(table: ImageTable, out_dir: Path) -> None:
    """Write the labels the run trains on (and the true ones) to ``train_labels.csv``."""
    from ..io import atomic_write_text

    atomic_write_text(Path(out_dir) / LABELS_FILE, labels_csv_text(table))


def check_saved_labels(table: ImageTable, out_dir: Path) -> None:
    """On resume: the regenerated labels must equal the saved ones, or the data changed under the run."""
    path = Path(out_dir) / LABELS_FILE
    if path.exists() and path.read_text() != labels_csv_text(table):
        raise UserError(
            f"the training labels regenerated for {out_dir} differ from its {LABELS_FILE}: the dataset or noise "
            "file changed since the run started; restore them or start a new run with --out"
        )
