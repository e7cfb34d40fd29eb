"""The list-file readers and existence checks the list-file sources (``clothing1m``, ``webvision``) use while they
list, so that a bad layout stops a run at once with one line instead of mid-epoch; ``noisyclr datasets --check``
(:mod:`noisyclr.data.check`) reports with them.

The helpers are built for a million keys: a list file is split in one call (:func:`read_pairs`,
:func:`read_keys`; a line-by-line pass runs only to name the line of a problem), and the files are checked to exist
against one ``os.listdir`` of each folder the keys name (:class:`FileIndex`), not by a ``stat`` per key.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def decode_listed_splits(root, splits: dict, *, tag: str, class_names: list[str], image_size: int, cache_dir,
                         workers) -> tuple[dict, tuple]:
    """The resident path of a list-file source: every split ``name -> (rels, labels)`` decoded (through the
    decode cache) to an ``image_size`` square :class:`ImageTable`; the train split's labels are the noisy ones
    (``true_labels=None``), the others' are clean. Returns ``(tables, (train mean, train std))``."""
    from .folder import load_images_cached
    from .table import ImageTable

    tables, stats = {}, None
    for split, (rels, labels) in splits.items():
        images, mean, std = load_images_cached(root, {split: rels}, tag=f"{tag}-{split}", image_size=image_size,
                                               cache_dir=cache_dir, workers=workers, stats_split=split)
        if split == "train":
            stats = (mean, std)
        true = None if split == "train" else labels.copy()
        tables[split] = ImageTable(images[split], labels, true, list(class_names), paths=rels)
    return tables, stats


def resolve_root(root, source: str, files: list[str], hint: str, *, needs: str, where: str) -> Path:
    """The root folder of a list-file source, checked: given, a folder, holding its list ``files``. One-line
    :class:`UserError` otherwise: ``needs`` says what the root is, ``where`` what to set it to."""
    if root is None:
        raise UserError(f"dataset {source} needs a root; set dataset.root=PATH ({needs})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist; set dataset.root to {where}")
    require_files(root, files, source, hint)
    return root

