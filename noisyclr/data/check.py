"""Layout checks of data sources: ``noisyclr datasets --check ROOT --name NAME`` and :func:`check_dataset` (the list
readers and existence checks they share with the sources: :mod:`noisyclr.data.listfiles`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError


@dataclass
class DatasetCheck:
    """What :func:`check_dataset` found: the classes, the size of every split and the label files read."""

    name: str
    root: str | None
    listed: bool  # True: the source's lister (nothing decoded); False: the source was loaded (decoded)
    class_names: list[str]
    splits: dict[str, int]  # split name -> number of images: train, val, test, then the extra test sets
    label_files: list[str] = field(default_factory=list)
    train_labels: str = ""  # how the train labels relate to the truth: clean / noisy (no true labels) / ...

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def lines(self, shown_classes: int = 5) -> list[str]:
        """The human-readable report, one finding per line."""
        how = "listed, nothing decoded" if self.listed else "loaded (images decoded)"
        first = ", ".join(self.class_names[:shown_classes]) + (", ..." if self.num_classes > shown_classes else "")
        out = [f"{self.name}{'' if self.root is None else ' at ' + self.root}: layout OK ({how})",
               f"classes: {self.num_classes} ({first})"]
        for split, count in self.splits.items():
            extra = f" ({self.train_labels})" if split == "train" and self.train_labels else ""
            out.append(f"{split}: {count:,} images{extra}")
        if self.label_files:
            out.append(f"label files: {', '.join(self.label_files)}")
        return out


def parse_options(items: list[str] | None) -> dict:
    """``["image_size=64", "color=red"]`` -> ``{"image_size": 64, "color": "red"}`` (values read as YAML scalars,
    as ``dataset.options.*`` overrides are)."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--option {item!r} is not of the form key=value (e.g. --option image_size=64)")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key] = value
    return out


def _check_split(name: str, split, table, classes: int) -> None:
    if len(table) == 0:
        raise UserError(f"dataset {name}: the {split} split is empty; check the layout (noisyclr datasets)")
    for what, labels in (("label", table.labels), ("true label", table.true_labels)):
        if labels is None or not len(labels):
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= classes:
            bad = int(np.flatnonzero((labels < 0) | (labels >= classes))[0])
            where = f" ({table.paths[bad]})" if getattr(table, "paths", None) else ""
            raise UserError(f"dataset {name}: {split} row {bad}{where} has {what} {int(labels[bad])}, outside the "
                            f"{classes} classes 0..{classes - 1}; fix the label file")


def check_dataset(name: str, root=None, *, options: dict | None = None, cache_dir=None) -> DatasetCheck:
    """Validate the layout of the registered source ``name`` under ``root``: list it (its lister when it can
    stream, else load it, which decodes and caches), then check that every split is non-empty and every label lies
    in the classes. Returns what was found (:class:`DatasetCheck`); the first problem is a :class:`UserError`."""
    from .sources import can_stream, list_dataset, load_dataset

    options = dict(options or {})
    listed = can_stream(name)
    splits = (list_dataset if listed else load_dataset)(name, root, cache_dir=cache_dir, **options)
    classes = splits.train.class_names
    tables = {"train": splits.train}
    if splits.val is not None:
        tables["val"] = splits.val
    tables["test"] = splits.test
    tables.update(splits.extra_test)
    for split, table in tables.items():
        _check_split(name, split, table, len(classes))
    info = splits.info or {}
    files = info.get("label_files")
    if files is None and info.get("split_file"):
        files = [info["split_file"]]
    train = splits.train
    if train.true_labels is None:
        known = info.get("train_clean_rows")
        truth = "noisy labels, no true labels" + ("" if known is None else f"; {len(known):,} with a clean label")
    else:
        rate = float(np.mean(train.labels != train.true_labels))
        truth = "clean labels" if rate == 0 else f"labels with {rate:.2%} noise against the true labels"
    shown_root = None if root is None else str(info.get("root", root))
    return DatasetCheck(name, shown_root, listed, list(classes), {s: len(t) for s, t in tables.items()},
                        list(files or []), truth)
