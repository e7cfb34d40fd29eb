"""Layout checks of data sources: ``noisyclr datasets --check ROOT --name NAME`` and :func:`check_dataset`, plus the
cheap helpers the list-file sources (``clothing1m``, ``webvision``) use while they list, so that a bad layout stops a
run at once with one line instead of mid-epoch.

The helpers are built for a million keys: a list file is split in one call (:func:`read_pairs`,
:func:`read_keys`; a line-by-line pass runs only to name the line of a problem), and the files are checked to exist
against one ``os.listdir`` of each folder the keys name (:class:`FileIndex`), not by a ``stat`` per key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

# --------------------------------------------------------------------------------------------------------------
# list files


def _read_text(path: str, shown: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UserError(f"{shown} is missing; restore it") from None
    except IsADirectoryError:
        raise UserError(f"{shown} is a folder, not a list file; restore the file") from None


def _bad_path(key: str) -> bool:
    return key.startswith(("/", "\\")) or ".." in key.replace("\\", "/").split("/")


def _check_inside(text: str, keys: list[str], shown: str, lines_of) -> None:
    """Every key (read from ``text``) is a relative path inside the root (no absolute path, no ``..``)."""
    # the whole file at once, in C: no "..", no backslash, no field starting with "/" (the usual case)
    if ".." not in text and "\\" not in text and not text.lstrip().startswith("/") \
            and not any(f"{ws}/" in text for ws in " \t\r\n"):
        return
    for i, key in enumerate(keys):
        if (key[:1] in "/\\" or ".." in key) and _bad_path(key):
            raise UserError(f"{shown} line {lines_of(i)} names {key[:80]}, which is not a path inside the dataset "
                            "root; fix that line")


def _line_of(text: str):
    """``i -> line number`` of the i-th non-blank line of ``text`` (computed on demand, for an error message)."""
    def find(i: int) -> int:
        seen = -1
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                seen += 1
                if seen == i:
                    return number
        return seen + 1
    return find


def line_number(path, i: int) -> int:
    """The line number in ``path`` of its ``i``-th non-blank line (0-based ``i``): what :func:`read_keys` and
    :func:`read_pairs` return row ``i`` from. Reads the file again; for error messages only."""
    return _line_of(_read_text(str(path), str(path)))(i)


def read_keys(path: str, shown: str) -> list[str]:
    """The keys of a key list (one relative image path per line, blank lines skipped), in file order. Raises
    :class:`UserError` for a missing or empty file, a line with more than one field and a path leaving the root."""
    text = _read_text(path, shown)
    keys = text.split()
    lines = text.splitlines()
    if len(keys) != len(lines) - lines.count(""):  # a line with spaces in it (or only blanks: fine, see below)
        for number, line in enumerate(lines, start=1):
            if len(line.split()) > 1:
                raise UserError(f"{shown} line {number} is not one image path ({line.strip()[:60]!r}); fix that line")
    if not keys:
        raise UserError(f"{shown} lists no images; it needs one image path per line")
    _check_inside(text, keys, shown, _line_of(text))
    return keys


def read_pairs(path: str, shown: str, num_labels: int, what: str) -> tuple[list[str], np.ndarray]:
    """``(keys, labels)`` of a ``path label`` list (one pair per line, blank lines skipped), in file order, every
    label checked to lie in ``0..num_labels-1`` (``what`` names that range in the message). Raises
    :class:`UserError` naming the file and line of the first malformed line or bad label."""
    text = _read_text(path, shown)
    fields = text.split()  # one call for the whole file; the pairs are checked below
    keys, raw = fields[0::2], fields[1::2]
    labels = None
    if len(keys) == len(raw):
        try:
            labels = np.fromiter(map(int, raw), dtype=np.int64, count=len(raw))
        except ValueError:
            labels = None
    if labels is not None and labels.size and not (labels.min() >= 0 and labels.max() < num_labels):
        labels = None
    lines = text.splitlines()
    if labels is None or len(keys) != len(lines) - lines.count(""):
        # some line is malformed (this raises naming it), or only lines of blanks made the counts differ
        _first_bad_pair(lines, shown, num_labels, what)
    if not keys:
        raise UserError(f"{shown} lists no images; it needs 'path label' lines")
    _check_inside(text, keys, shown, _line_of(text))
    return keys, labels


def _first_bad_pair(lines: list[str], shown: str, num_labels: int, what: str) -> None:
    """Raise for the first line of ``lines`` that is not ``path label`` with a label in range; return if none is."""
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise UserError(f"{shown} line {number} is not 'path label' ({line.strip()[:60]!r}); fix that line")
        try:
            value = int(parts[1])
        except ValueError:
            raise UserError(f"{shown} line {number} has label {parts[1][:20]!r}, not an integer; fix that "
                            "line") from None
        if not 0 <= value < num_labels:
            raise UserError(f"{shown} line {number} has label {value}, outside 0..{num_labels - 1} ({what}); fix that "
                            "line")


# --------------------------------------------------------------------------------------------------------------
# files on disk


def _names_in(folder: str) -> list[str]:
    # names only, listed in C: no Python work per entry. A key naming a subfolder passes here and fails at its
    # decode, with the file named.
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError:
        raise UserError(f"cannot read the folder {folder} (permission denied); fix its permissions") from None


class FileIndex:
    """The files under ``root``, read one folder at a time as keys name them (one ``os.listdir`` per folder, each
    folder read once however many lists name it): the existence check of a million keys without a million
    ``stat`` calls."""

    def __init__(self, root):
        self.root = str(root)
        self._read: set[str] = set()  # folders read ("a/b/", "" for the root)
        self._present: set[str] = set()  # relative paths of their entries

    def __contains__(self, rel: str) -> bool:
        return rel in self._present

    def add_folders(self, rels: list[str]) -> None:
        """Read every folder some ``rel`` names that is not read yet."""
        folders = {rel[:rel.rfind("/") + 1] for rel in rels} - self._read
        for folder in folders:
            self._present.update([folder + name for name in _names_in(os.path.join(self.root, folder))])
        self._read |= folders

    def check(self, rels: list[str], where) -> None:
        """Every ``root/rel`` exists; else a :class:`UserError` for the first missing one, ``where(i)`` naming the
        list and line it came from (e.g. ``"clean_test_key_list.txt line 12"``), with the count of missing files."""
        self.add_folders(rels)
        if self._present.issuperset(rels):
            return
        missing = [i for i, rel in enumerate(rels) if rel not in self._present]
        more = f" ({len(missing):,} listed images are missing in all)" if len(missing) > 1 else ""
        raise UserError(f"{where(missing[0])} names {rels[missing[0]]}, which is missing under {self.root}{more}; "
                        "restore the images or drop those lines")


def check_files_exist(root, rels: list[str], where) -> None:
    """Every ``root/rel`` exists (:meth:`FileIndex.check`; several lists under one root: share a
    :class:`FileIndex`)."""
    FileIndex(root).check(rels, where)


def require_files(root, names: list[str], source: str, hint: str) -> None:
    """Each of ``names`` (relative to ``root``) is a file; else a UserError for the first missing one."""
    for name in names:
        if not os.path.isfile(os.path.join(root, name)):
            raise UserError(f"no {name} under {root}; dataset {source} needs it ({hint})")


# --------------------------------------------------------------------------------------------------------------
# the check of any registered source


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
