"""Label noise: the DivideMix-family synthetic generators, transition matrices, and noise files.

Conventions (docs/data.md, "Synthetic label noise"):

* ``sym`` follows DivideMix exactly: a ``random.Random(seed)`` shuffles ``range(N)``, the first ``int(rate * N)``
  indices are noisy, and each noisy sample (in index order) gets ``randint(0, C-1)`` -- the true class included,
  so the real corruption rate is about ``rate * (C-1) / C``. With ``seed=123`` on the original CIFAR order this
  reproduces the published noise files bit for bit.
* ``sym`` with ``exclude_true`` uses the same noisy index set but draws among the C-1 other classes.
* ``asym`` on CIFAR-10 uses the same noisy index set and the fixed DivideMix class map.
* The other asymmetric kinds (CIFAR-100 next-in-block / superclass, pair flip) draw every sample from a row of a
  transition matrix with ``np.random.RandomState(seed).multinomial`` (co-teaching's ``multiclass_noisify``).
* Noise files are JSON lists of labels in dataset order, or CSVs with a ``path`` column and a label column.

OOD label noise (images of no class, ``noise.ood_rate``) composes with these in :mod:`noisyclr.data.ood`.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_write_text
from .table import ImageTable

NOISE_KINDS = ("none", "sym", "asym", "file", "human")
ASYM_MAPS = ("cifar10", "cifar100_next_in_block", "cifar100_superclass", "pairflip")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# DivideMix's CIFAR-10 class map: truck->automobile, bird->airplane, deer->horse, cat<->dog; others unchanged.
CIFAR10_ASYM_TRANSITION = np.array([0, 1, 0, 5, 7, 3, 6, 7, 8, 1], dtype=np.int64)

# The standard CIFAR-100 fine->coarse table (the ``coarse_labels`` of the python pickle, fine labels in alphabetical
# order). Each of the 20 superclasses has exactly 5 fine classes.
CIFAR100_FINE_TO_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)


# --------------------------------------------------------------------------------------------------------------
# validation helpers


def _check_rate(rate) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise UserError(f"noise.rate must be a number in [0, 1], got {rate!r}; e.g. noise.rate=0.5")
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise UserError(f"noise.rate must be in [0, 1], got {rate:g}; e.g. noise.rate=0.5 for 50% noise")
    return rate


def _check_seed(seed) -> int:
    # random.seed("123") and random.seed(123) give different streams, so a string seed is refused, not coerced.
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"noise.seed must be an integer, got {seed!r}; e.g. noise.seed=123")
    return int(seed)


def _labels_array(true_labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    if num_classes < 1:
        raise UserError(f"the dataset has {num_classes} classes; noise needs at least 2")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
        raise UserError(f"label {labels[bad]} at position {bad} is outside [0, {num_classes - 1}]; fix the dataset labels")
    return labels


def _dividemix_noisy_set(n: int, rate: float, rng: random.Random) -> set[int]:
    """DivideMix's noisy index set: shuffle ``range(n)`` with ``rng`` and keep the first ``int(rate * n)``."""
    idx = list(range(n))
    rng.shuffle(idx)
    return set(idx[: int(rate * n)])


# --------------------------------------------------------------------------------------------------------------
# generators


def sym_noise_dividemix(true_labels, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """Symmetric noise, exactly DivideMix's procedure (docs/data.md, "Synthetic label noise").

    ``rng = random.Random(seed)``; ``idx = list(range(N)); rng.shuffle(idx)``; the first ``int(rate * N)`` are
    noisy; then for ``i`` in ``range(N)`` in order, a noisy sample gets ``rng.randint(0, C-1)`` (uniform over ALL
    classes, the true one included) and a clean one keeps its label. The actual corruption is about r(C-1)/C.

    Args:
        true_labels: ``(N,)`` ints in ``[0, C)``, in the order the reference files use (original dataset order).
    Returns:
        ``(N,)`` int64 noisy labels.
    """
    rate, seed = _check_rate(rate), _check_seed(seed)
    labels = _labels_array(true_labels, num_classes)
    rng = random.Random(seed)
    noisy = _dividemix_noisy_set(len(labels), rate, rng)
    # A per-sample loop on purpose: the RNG must be consumed in the reference's order.
    out = [rng.randint(0, num_classes - 1) if i in noisy else int(labels[i]) for i in range(len(labels))]
    return np.asarray(out, dtype=np.int64)


def sym_noise_exclusive(true_labels, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """Symmetric noise that always changes the label: the same noisy index set as :func:`sym_noise_dividemix`
    (same seed), but each noisy sample, in index order, gets a label uniform over the C-1 OTHER classes
    (``k = rng.randint(0, C-2)``, then ``k + 1`` if ``k >= true``). Corruption is about ``rate``.

    Returns ``(N,)`` int64 noisy labels.
    """
    rate, seed = _check_rate(rate), _check_seed(seed)
    if num_classes < 2:
        raise UserError(f"noise.exclude_true needs at least 2 classes, the dataset has {num_classes}")
    labels = _labels_array(true_labels, num_classes)
    rng = random.Random(seed)
    noisy = sorted(_dividemix_noisy_set(len(labels), rate, rng))
    draws = np.asarray([rng.randint(0, num_classes - 2) for _ in noisy], dtype=np.int64)
    out = labels.copy()
    if noisy:
        noisy = np.asarray(noisy)
        out[noisy] = draws + (draws >= labels[noisy])
    return out


def asym_noise_cifar10(true_labels, rate: float, seed: int) -> np.ndarray:
    """CIFAR-10 asymmetric noise, exactly DivideMix's procedure (docs/data.md, "Synthetic label noise").

    The noisy index set is drawn as in :func:`sym_noise_dividemix` (same ``random.Random(seed)`` shuffle, first
    ``int(rate * N)``); DivideMix draws nothing else from the RNG. Each noisy sample is mapped by the fixed map
    truck(9)->automobile(1), bird(2)->airplane(0), deer(4)->horse(7), cat(3)->dog(5), dog(5)->cat(3); other classes
    keep their label. So each of the 5 source classes is flipped with probability about ``rate``.

    Args:
        true_labels: ``(N,)`` ints in ``[0, 10)`` in canonical CIFAR-10 class order.
    Returns:
        ``(N,)`` int64 noisy labels.
    """
    rate, seed = _check_rate(rate), _check_seed(seed)
    labels = _labels_array(true_labels, 10)
    noisy = np.fromiter(_dividemix_noisy_set(len(labels), rate, random.Random(seed)), dtype=np.int64)
    out = labels.copy()
    out[noisy] = CIFAR10_ASYM_TRANSITION[labels[noisy]]
    return out


def noisify_with_transition(true_labels, P, seed: int) -> np.ndarray:
    """Draw each label from row ``P[y_i]`` of a ``(C, C)`` row-stochastic transition matrix.

    The co-teaching / PLReMix ``multiclass_noisify`` convention: one ``np.random.RandomState(seed)``; for ``i`` in
    index order, ``multinomial(1, P[y_i], 1)``. (It cannot be vectorised: multinomial consumes a data-dependent
    number of draws.) PLReMix's CIFAR-100 asym calls it UNSEEDED (``RandomState(None)``, not reproducible); we always
    seed it. The Tiny-ImageNet pair-flip reference uses ``seed=0``.

    Returns ``(N,)`` int64 noisy labels.
    """
    seed = _check_seed(seed)
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise UserError(f"a transition matrix must be square (C, C), got shape {P.shape}")
    if (P < 0).any() or not np.allclose(P.sum(axis=1), 1.0):
        raise UserError("every row of a transition matrix must be non-negative and sum to 1")
    labels = _labels_array(true_labels, P.shape[0])
    flipper = np.random.RandomState(seed)
    out = np.empty_like(labels)
    for i, y in enumerate(labels):
        out[i] = np.flatnonzero(flipper.multinomial(1, P[y], 1)[0])[0]
    return out


def _cycle_within_groups(groups: list[np.ndarray], rate: float, num_classes: int) -> np.ndarray:
    """Transition that sends each class to the next class of its group (wrap-around) with probability ``rate``."""
    P = np.eye(num_classes) * (1.0 - rate)
    for members in groups:
        P[members, np.roll(members, -1)] += rate
    return P


def transition_matrix(kind: str, rate: float, num_classes: int, *, mapping: str | None = None) -> np.ndarray:
    """The EXPECTED ``(C, C)`` transition ``P[true, noisy]`` of a noise model; rows sum to 1.

    Kinds: ``none`` (identity); ``sym`` (DivideMix, true class included: ``(1-r) I + r/C``); ``sym_exclusive``
    (``(1-r) I + r/(C-1)`` off the diagonal); ``asym`` with ``mapping`` one of ``cifar10`` (C=10),
    ``cifar100_next_in_block`` (C=100, blocks of 5 consecutive indices), ``cifar100_superclass`` (C=100, the true
    superclasses, members in increasing fine index), ``pairflip`` (c -> c+1 mod C).
    """
    rate = _check_rate(rate)
    C = int(num_classes)
    if C < 1:
        raise UserError(f"a transition matrix needs at least 1 class, got {C}")
    if kind == "none":
        return np.eye(C)
    if kind == "sym":
        return np.eye(C) * (1.0 - rate) + rate / C
    if kind == "sym_exclusive":
        if C < 2:
            raise UserError("sym_exclusive noise needs at least 2 classes")
        return np.eye(C) * (1.0 - rate) + (1.0 - np.eye(C)) * rate / (C - 1)
    if kind != "asym":
        raise UserError(f"unknown transition kind '{kind}'; use one of none, sym, sym_exclusive, asym")
    mapping = _check_asym_map(mapping)
    if mapping == "cifar10":
        _need_classes(mapping, C, 10)
        P = np.eye(C) * (1.0 - rate)
        P[np.arange(C), CIFAR10_ASYM_TRANSITION] += rate
        return P
    if mapping == "cifar100_next_in_block":
        _need_classes(mapping, C, 100)
        return _cycle_within_groups([np.arange(k, k + 5) for k in range(0, 100, 5)], rate, C)
    if mapping == "cifar100_superclass":
        _need_classes(mapping, C, 100)
        return _cycle_within_groups([np.flatnonzero(CIFAR100_FINE_TO_COARSE == k) for k in range(20)], rate, C)
    if C < 2:
        raise UserError("pairflip noise needs at least 2 classes")
    return _cycle_within_groups([np.arange(C)], rate, C)


def _need_classes(mapping: str, got: int, want: int) -> None:
    if got != want:
        raise UserError(f"noise.asym_map={mapping} needs {want} classes, the dataset has {got}; use noise.asym_map=pairflip")


def _check_asym_map(mapping) -> str:
    if mapping not in ASYM_MAPS:
        raise UserError(f"unknown noise.asym_map '{mapping}'; use one of {', '.join(ASYM_MAPS)}")
    return mapping


def asym_mapping_for(dataset_name: str, class_names, asym_map: str | None = None) -> str:
    """The asymmetric class mapping for a dataset: ``asym_map`` if given, else ``cifar10`` for cifar10/cifar10n or
    any dataset whose class names are the CIFAR-10 names in canonical order (e.g. the JPEG folder copy),
    ``cifar100_next_in_block`` for cifar100 (PLReMix's rule), ``pairflip`` for tiny_imagenet."""
    if asym_map is not None:
        return _check_asym_map(asym_map)
    if dataset_name in ("cifar10", "cifar10n") or tuple(class_names) == CIFAR10_CLASSES:
        return "cifar10"
    if dataset_name == "cifar100":
        return "cifar100_next_in_block"
    if dataset_name == "tiny_imagenet":
        return "pairflip"
    raise UserError(
        f"asymmetric noise has no class mapping for dataset {dataset_name}; use noise.kind=sym or noise.asym_map=pairflip"
    )


def asym_noise(true_labels, rate: float, num_classes: int, seed: int, mapping: str) -> np.ndarray:
    """Asymmetric noise with a named ``mapping`` (see :data:`ASYM_MAPS`); ``(N,)`` int64 noisy labels.

    ``cifar10`` uses the DivideMix index-set procedure (:func:`asym_noise_cifar10`); the others draw per sample from
    :func:`transition_matrix` with :func:`noisify_with_transition`.
    """
    mapping = _check_asym_map(mapping)
    if mapping == "cifar10":
        _need_classes(mapping, num_classes, 10)
        return asym_noise_cifar10(true_labels, rate, seed)
    return noisify_with_transition(true_labels, transition_matrix("asym", rate, num_classes, mapping=mapping), seed)


# --------------------------------------------------------------------------------------------------------------
# noise files


def _read_csv(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {what} {path}: {exc}; check that it is a UTF-8 CSV file") from None
    if not rows:
        raise UserError(f"{what} {path} is empty; it needs a header line and one row per image")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r and any(cell.strip() for cell in r)]
    return header, body


def _column(header: list[str], name: str, path: Path, what: str) -> int:
    if name not in header:
        raise UserError(f"{what} {path} has no '{name}' column (columns: {', '.join(header)}); fix the header")
    return header.index(name)


def _parse_int(text: str, path: Path, line: int, col: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"{path} line {line}: '{col}' is not an integer ({text!r}); fix that row") from None


def _read_order_file(order_file) -> tuple[Path, list[str], np.ndarray]:
    """``(path, paths, index)`` from a CSV with ``path`` and ``index`` columns (one row per image)."""
    order_file = Path(order_file)
    if not order_file.is_file():
        raise UserError(f"order file {order_file} not found; give a CSV with path,index columns (e.g. cifar10n/labels.csv)")
    header, body = _read_csv(order_file, "order file")
    pcol = _column(header, "path", order_file, "order file")
    icol = _column(header, "index", order_file, "order file")
    paths, index = [], []
    for line, row in enumerate(body, start=2):
        if len(row) <= max(pcol, icol):
            raise UserError(f"{order_file} line {line} has {len(row)} fields, expected {len(header)}; fix that row")
        paths.append(row[pcol].strip())
        index.append(_parse_int(row[icol], order_file, line, "index"))
    return order_file, paths, np.asarray(index, dtype=np.int64)


def _read_json_labels(path: Path) -> np.ndarray:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"noise file {path} is not valid JSON ({exc}); it must be a list of integer labels") from None
    if not isinstance(data, list):
        raise UserError(f"noise file {path} must hold a JSON list of integer labels, got a {type(data).__name__}")
    for pos, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"noise file {path}: entry {pos} is {value!r}, not an integer label; fix the file")
    return np.asarray(data, dtype=np.int64)


def _check_range(labels: np.ndarray, num_classes: int, source) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        pos = int(bad[0])
        raise UserError(
            f"noise file {source}: label {int(labels[pos])} at position {pos} is outside [0, {num_classes - 1}]; "
            f"the file does not fit this dataset's {num_classes} classes"
        )


def _match_paths(wanted: list[str], have: list[str], source) -> np.ndarray:
    """Position in ``have`` of every path of ``wanted``; UserError on duplicates, unknown or missing paths."""
    pos = {}
    for i, p in enumerate(have):
        if p in pos:
            raise UserError(f"{source} lists path {p} twice; keep one row per image")
        pos[p] = i
    table_paths = set(wanted)
    unknown = [p for p in have if p not in table_paths]
    if unknown:
        raise UserError(
            f"{source} has {len(unknown)} path(s) that are not in the dataset, e.g. {unknown[0]}; "
            "paths must be relative to the dataset root like train/<class>/<file>"
        )
    missing = [p for p in wanted if p not in pos]
    if missing:
        raise UserError(f"{source} has no row for {len(missing)} dataset image(s), e.g. {missing[0]}; add them")
    return np.asarray([pos[p] for p in wanted], dtype=np.int64)


def load_noise_file(path, *, num_samples: int, num_classes: int, paths: list[str] | None = None,
                    column: str | None = None, order_file=None) -> np.ndarray:
    """Read noisy labels for a training set of ``num_samples`` images; returns ``(num_samples,)`` int64.

    Formats:
      * JSON list of ints in dataset order (the DivideMix/PLReMix files). With ``order_file`` (a CSV with ``path``
        and ``index`` columns, e.g. CIFAR-10N's ``labels.csv``) the list is in the ORIGINAL dataset order and is
        mapped onto ``paths``: ``label[k] = json[index of paths[k]]``.
      * CSV with a header: a label column (``label``, or ``column``, e.g. CIFAR-10N ``aggre``/``worst``/``random1``)
        and either a ``path`` column matched to ``paths`` (file-based sources), or an ``index`` column giving the
        position in dataset order (sources without paths, e.g. the CIFAR pickles).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"noise file {path} not found; check noise.file")
    if path.suffix.lower() == ".json" or (path.suffix.lower() != ".csv" and _looks_like_json(path)):
        if column is not None:
            raise UserError(f"noise.column={column} applies to CSV files, but {path} is JSON; drop noise.column")
        labels = _read_json_labels(path)
        if order_file is not None:
            if paths is None:
                raise UserError("noise.order_file maps labels onto image paths, but this dataset has no paths; drop it")
            order_file, order_paths, index = _read_order_file(order_file)
            bad = np.flatnonzero((index < 0) | (index >= len(labels)))
            if bad.size:
                raise UserError(
                    f"order file {order_file}: index {int(index[bad[0]])} (row {int(bad[0]) + 2}) is outside the "
                    f"{len(labels)} labels of {path}; the files do not belong together"
                )
            labels = labels[index[_match_paths(paths, order_paths, f"order file {order_file}")]]
        elif len(labels) != num_samples:
            raise UserError(
                f"noise file {path} has {len(labels)} labels, expected {num_samples} (one per training image); "
                "use the file made for this dataset, or noise.order_file= for a file in another order"
            )
        _check_range(labels, num_classes, path)
        return labels
    if order_file is not None:
        raise UserError(f"noise.order_file applies to JSON lists, but {path} is a CSV with paths; drop noise.order_file")
    header, body = _read_csv(path, "noise file")
    lcol = _column(header, column or "label", path, "noise file")
    use_paths = paths is not None and "path" in header
    if not use_paths and "index" not in header:
        need = "a 'path' column" if paths is not None else "an 'index' column (this dataset has no file paths)"
        raise UserError(f"noise file {path} needs {need} to match rows to images; fix the header")
    kcol = header.index("path" if use_paths else "index")
    keys, values = [], []
    for line, row in enumerate(body, start=2):
        if len(row) <= max(lcol, kcol):
            raise UserError(f"{path} line {line} has {len(row)} fields, expected {len(header)}; fix that row")
        keys.append(row[kcol].strip())
        values.append(_parse_int(row[lcol], path, line, header[lcol]))
    values = np.asarray(values, dtype=np.int64)
    if use_paths:
        labels = values[_match_paths(list(paths), keys, f"noise file {path}")]
    else:
        index = np.asarray([_parse_int(k, path, i + 2, "index") for i, k in enumerate(keys)], dtype=np.int64)
        if len(index) != num_samples or not np.array_equal(np.sort(index), np.arange(num_samples)):
            raise UserError(
                f"noise file {path} must have exactly one row for each index 0..{num_samples - 1}, "
                f"got {len(index)} rows; use the file made for this dataset"
            )
        labels = np.empty(num_samples, dtype=np.int64)
        labels[index] = values
    _check_range(labels, num_classes, path)
    return labels


def _looks_like_json(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(64).lstrip().startswith(b"[")
    except OSError:
        return False


def convert_noise_to_csv(noise_json, order_file, out_csv, *, overwrite: bool = False) -> int:
    """Write ``path,label`` rows (one per row of ``order_file``, in its order) for a JSON label list that is in the
    ORIGINAL dataset order; ``order_file`` is a CSV with ``path`` and ``index`` columns. The write is atomic.
    Refuses to replace an existing ``out_csv`` unless ``overwrite``. Returns the number of rows written."""
    noise_json, out_csv = Path(noise_json), Path(out_csv)
    if not noise_json.is_file():
        raise UserError(f"noise file {noise_json} not found; give the JSON list to convert")
    if out_csv.exists() and not overwrite:
        raise UserError(f"{out_csv} already exists; delete it or choose another output path")
    labels = _read_json_labels(noise_json)
    order_file, paths, index = _read_order_file(order_file)
    bad = np.flatnonzero((index < 0) | (index >= len(labels)))
    if bad.size:
        raise UserError(
            f"order file {order_file}: index {int(index[bad[0]])} is outside the {len(labels)} labels of {noise_json}; "
            "the files do not belong together"
        )
    lines = ["path,label"] + [f"{p},{int(v)}" for p, v in zip(paths, labels[index])]
    atomic_write_text(out_csv, "\n".join(lines) + "\n")
    return len(paths)


# --------------------------------------------------------------------------------------------------------------
# table-level entry point


def noisy_labels(labels, true_labels, class_names, *, kind: str, rate: float, seed: int, dataset_name: str,
                 exclude_true: bool = False, asym_map: str | None = None, file=None, column: str | None = None,
                 order_file=None, paths: list[str] | None = None) -> np.ndarray:
    """The ``(N,)`` int64 labels :func:`apply_noise` gives rows with these ``labels`` / ``true_labels``
    (``(N,)``; ``true_labels`` ``None`` when unknown), ``class_names`` and (file-based sources) ``paths``.

    No images are needed, so a streamed listing and a subset of rows (the non-OOD slots of
    :func:`noisyclr.data.ood.apply_ood_noise`) get their labels without copying any.
    """
    if kind not in NOISE_KINDS:
        raise UserError(f"unknown noise.kind '{kind}'; use one of {', '.join(NOISE_KINDS)}")
    rate = _check_rate(rate)
    labels = np.asarray(labels, dtype=np.int64)
    base = labels if true_labels is None else np.asarray(true_labels, dtype=np.int64)
    C = len(class_names)
    if kind == "none":
        return labels.copy()
    if kind == "sym":
        return (sym_noise_exclusive if exclude_true else sym_noise_dividemix)(base, rate, C, seed)
    if kind == "asym":
        return asym_noise(base, rate, C, seed, asym_mapping_for(dataset_name, class_names, asym_map))
    if not file:
        raise UserError(f"noise.kind={kind} needs noise.file=PATH (a JSON list or a CSV path,label)")
    if kind == "human" and not column:
        raise UserError("noise.kind=human needs noise.column=NAME, e.g. noise.column=worst for CIFAR-10N")
    return load_noise_file(file, num_samples=len(labels), num_classes=C, paths=paths, column=column,
                           order_file=order_file)


def apply_noise(table: ImageTable, **noise) -> ImageTable:
    """A copy of ``table`` whose ``labels`` carry the requested noise (keywords of :func:`noisy_labels`:
    ``kind``, ``rate``, ``seed``, ``dataset_name``, ``exclude_true``, ``asym_map``, ``file``, ``column``,
    ``order_file``).

    Kinds: ``none`` (unchanged), ``sym`` (:func:`sym_noise_dividemix`, or :func:`sym_noise_exclusive` with
    ``exclude_true``), ``asym`` (mapping from :func:`asym_mapping_for`), ``file`` (:func:`load_noise_file`) and
    ``human`` (a ``file`` that needs ``column``, e.g. CIFAR-10N ``worst``).

    ``true_labels`` of the result are the source's clean labels. A source whose own labels are already noisy has
    ``true_labels=None``: synthetic noise is then added on top of its labels and ``true_labels`` stays ``None``
    (the clean labels are unknown either way). ``is_ood`` is carried over.
    """
    clean = table.true_labels
    noisy = noisy_labels(table.labels, clean, table.class_names, paths=table.paths, **noise)
    return ImageTable(
        images=table.images,
        labels=noisy,
        true_labels=None if clean is None else clean.copy(),
        class_names=list(table.class_names),
        paths=None if table.paths is None else list(table.paths),
        is_ood=None if table.is_ood is None else table.is_ood.copy(),
    )


def noise_rate(table: ImageTable) -> float | None:
    """Fraction of ``labels`` that differ from ``true_labels`` (``None`` when the clean labels are unknown).

    An OOD row (true label -1, docs/data.md "Out-of-distribution label noise") always counts as noisy.
    """
    if table.true_labels is None or len(table) == 0:
        return None
    return float(np.mean(table.labels != table.true_labels))


__all__ = [
    "ASYM_MAPS", "CIFAR100_FINE_TO_COARSE", "CIFAR10_ASYM_TRANSITION", "CIFAR10_CLASSES", "NOISE_KINDS",
    "apply_noise", "asym_mapping_for", "asym_noise", "asym_noise_cifar10", "convert_noise_to_csv",
    "load_noise_file", "noise_rate", "noisify_with_transition", "noisy_labels", "sym_noise_dividemix",
    "sym_noise_exclusive", "transition_matrix",
]

