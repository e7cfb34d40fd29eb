"""Label-noise generators, transition matrices and noise files (noisyclr.data.noise, noisyclr.data.convert)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from noisyclr.data import noise
from noisyclr.data.convert import main as convert_main
from noisyclr.data.noise import (
    CIFAR100_FINE_TO_COARSE,
    apply_noise,
    asym_mapping_for,
    asym_noise,
    asym_noise_cifar10,
    convert_noise_to_csv,
    load_noise_file,
    noisify_with_transition,
    sym_noise_dividemix,
    sym_noise_exclusive,
    transition_matrix,
)
from noisyclr.data.table import ImageTable
from noisyclr.errors import UserError

SHARED = Path("/work/shared/data")
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def balanced_labels(n: int, num_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % num_classes)


def dividemix_reference(train_label, r, num_classes, seed):
    """DivideMix ``dataloader_cifar.py`` written out literally (global ``random`` replaced by an instance)."""
    rnd = random.Random(seed)
    noise_label = []
    idx = list(range(len(train_label)))
    rnd.shuffle(idx)
    num_noise = int(r * len(train_label))
    noise_idx = idx[:num_noise]
    for i in range(len(train_label)):
        if i in noise_idx:
            noiselabel = rnd.randint(0, num_classes - 1)
            noise_label.append(noiselabel)
        else:
            noise_label.append(train_label[i])
    return noise_label


def multiclass_noisify_reference(y, P, random_state):
    """co-teaching / PLReMix ``multiclass_noisify``, literally (with ``[0][0]``: numpy 2 no longer stores a
    1-element array into a scalar slot; the reference ran with ``y`` of shape ``(m, 1)``)."""
    m = y.shape[0]
    new_y = y.copy()
    flipper = np.random.RandomState(random_state)
    for idx in np.arange(m):
        i = y[idx]
        flipped = flipper.multinomial(1, P[i, :], 1)[0]
        new_y[idx] = np.where(flipped == 1)[0][0]
    return new_y


def tolerance(n: int, p: float, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(max(p * (1 - p), 1e-12) / n)


def table_of(labels, class_names, paths=None, true_labels="same"):
    labels = np.asarray(labels)
    images = np.zeros((len(labels), 2, 2, 3), np.uint8)
    true = labels.copy() if isinstance(true_labels, str) else true_labels
    return ImageTable(images, labels, true, list(class_names), paths=paths)


# ------------------------------------------------------------------------------------------------------------
# symmetric


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_sym_matches_literal_dividemix_loop(num_classes, rate):
    y = balanced_labels(2000, num_classes)
    got = sym_noise_dividemix(y, rate, num_classes, 123)
    want = dividemix_reference([int(v) for v in y], rate, num_classes, 123)
    assert got.dtype == np.int64 and got.shape == (2000,)
    assert got.tolist() == want


@pytest.mark.parametrize("num_classes", [10, 100])
def test_sym_corruption_rate_includes_true_class(num_classes):
    n, rate = 20000, 0.6
    y = balanced_labels(n, num_classes)
    noisy = sym_noise_dividemix(y, rate, num_classes, 7)
    # Exactly int(rate*n) samples are redrawn; each lands off its class with probability (C-1)/C.
    q = (num_classes - 1) / num_classes
    wrong = np.mean(noisy != y)
    assert abs(wrong - rate * q) < 5 * math.sqrt(int(rate * n) * q * (1 - q)) / n + 1e-9
    assert noisy.min() >= 0 and noisy.max() < num_classes


def test_sym_exclusive_corrupts_exactly_the_noisy_set():
    n, rate, C = 5000, 0.4, 10
    y = balanced_labels(n, C)
    excl = sym_noise_exclusive(y, rate, C, 5)
    incl = sym_noise_dividemix(y, rate, C, 5)
    changed = excl != y
    assert changed.sum() == int(rate * n)
    # Same seed, same noisy index set: every sample the inclusive draw changed is in the exclusive set too.
    assert np.all(changed[incl != y])
    # The new label is uniform over the C-1 other classes: offsets (new - true) mod C are 1..C-1 evenly.
    offsets = np.bincount((excl[changed] - y[changed]) % C, minlength=C)
    assert offsets[0] == 0
    expected = changed.sum() / (C - 1)
    assert np.all(np.abs(offsets[1:] - expected) < 5 * math.sqrt(expected))


def test_sym_is_deterministic_by_seed_and_differs_across_seeds():
    y = balanced_labels(3000, 10)
    a = sym_noise_dividemix(y, 0.5, 10, 123)
    assert np.array_equal(a, sym_noise_dividemix(y, 0.5, 10, 123))
    assert not np.array_equal(a, sym_noise_dividemix(y, 0.5, 10, 124))
    b = sym_noise_exclusive(y, 0.5, 10, 1)
    assert np.array_equal(b, sym_noise_exclusive(y, 0.5, 10, 1))
    assert not np.array_equal(b, sym_noise_exclusive(y, 0.5, 10, 2))


def test_sym_rate_edges():
    y = balanced_labels(500, 10)
    assert np.array_equal(sym_noise_dividemix(y, 0.0, 10, 0), y)
    assert np.all(sym_noise_exclusive(y, 1.0, 10, 0) != y)


def test_string_seed_is_refused():
    # random.seed("123") != random.seed(123): silently accepting a string would give different noise.
    with pytest.raises(UserError, match="noise.seed must be an integer"):
        sym_noise_dividemix([0, 1], 0.5, 2, "123")


# ------------------------------------------------------------------------------------------------------------
# asymmetric


def test_cifar10_asym_only_the_five_pairs_each_at_rate():
    n, rate = 20000, 0.4
    y = balanced_labels(n, 10)
    noisy = asym_noise_cifar10(y, rate, 123)
    pairs = set(zip(y[noisy != y].tolist(), noisy[noisy != y].tolist()))
    assert pairs == {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}
    for c in (9, 2, 4, 3, 5):
        flipped = np.mean(noisy[y == c] != c)
        assert abs(flipped - rate) < tolerance(np.sum(y == c), rate)
    assert abs(np.mean(noisy != y) - rate / 2) < tolerance(n, rate / 2)


def test_cifar10_asym_uses_the_dividemix_index_set():
    y = balanced_labels(2000, 10)
    rnd = random.Random(123)
    idx = list(range(2000))
    rnd.shuffle(idx)
    noisy_idx = set(idx[: int(0.3 * 2000)])
    transition = {0: 0, 2: 0, 4: 7, 7: 7, 1: 1, 9: 1, 3: 5, 5: 3, 8: 8, 6: 6}
    want = [transition[int(y[i])] if i in noisy_idx else int(y[i]) for i in range(2000)]
    assert asym_noise_cifar10(y, 0.3, 123).tolist() == want


def test_noisify_with_transition_matches_multiclass_noisify():
    y = balanced_labels(3000, 100)
    P = transition_matrix("asym", 0.4, 100, mapping="cifar100_next_in_block")
    assert np.array_equal(noisify_with_transition(y, P, 3), multiclass_noisify_reference(y, P, 3))


def test_cifar100_next_in_block_stays_within_blocks():
    n, rate = 20000, 0.4
    y = balanced_labels(n, 100)
    noisy = asym_noise(y, rate, 100, 0, "cifar100_next_in_block")
    src, dst = y[noisy != y], noisy[noisy != y]
    assert np.all(src // 5 == dst // 5)
    assert np.array_equal(dst, 5 * (src // 5) + (src % 5 + 1) % 5)
    assert abs(np.mean(noisy != y) - rate) < tolerance(n, rate)


def test_fine_to_coarse_table_has_five_fine_classes_per_superclass():
    assert CIFAR100_FINE_TO_COARSE.shape == (100,)
    assert np.array_equal(np.bincount(CIFAR100_FINE_TO_COARSE, minlength=20), np.full(20, 5))
    # Spot checks from the CIFAR-100 meta: apple(0)->fruit_and_vegetables(4), aquarium_fish(1)->fish(1),
    # beaver(4)->aquatic_mammals(0), whale(95)->aquatic_mammals(0), worm(99)->non-insect_invertebrates(13).
    assert [CIFAR100_FINE_TO_COARSE[i] for i in (0, 1, 4, 95, 99)] == [4, 1, 0, 0, 13]


def test_cifar100_superclass_stays_within_superclasses():
    n, rate = 20000, 0.4
    y = balanced_labels(n, 100)
    noisy = asym_noise(y, rate, 100, 0, "cifar100_superclass")
    src, dst = y[noisy != y], noisy[noisy != y]
    assert np.all(CIFAR100_FINE_TO_COARSE[src] == CIFAR100_FINE_TO_COARSE[dst])
    for s, d in set(zip(src.tolist(), dst.tolist())):
        members = np.flatnonzero(CIFAR100_FINE_TO_COARSE == CIFAR100_FINE_TO_COARSE[s]).tolist()
        assert d == members[(members.index(s) + 1) % 5]
    assert abs(np.mean(noisy != y) - rate) < tolerance(n, rate)


def test_pairflip_offsets_are_all_plus_one():
    n, rate, C = 10000, 0.45, 200
    y = balanced_labels(n, C)
    noisy = asym_noise(y, rate, C, 0, "pairflip")
    assert np.all((noisy[noisy != y] - y[noisy != y]) % C == 1)
    assert abs(np.mean(noisy != y) - rate) < tolerance(n, rate)


@pytest.mark.parametrize(
    "kind,mapping,C,generate",
    [
        ("sym", None, 10, lambda y: sym_noise_dividemix(y, 0.5, 10, 1)),
        ("sym_exclusive", None, 10, lambda y: sym_noise_exclusive(y, 0.5, 10, 1)),
        ("asym", "cifar10", 10, lambda y: asym_noise(y, 0.5, 10, 1, "cifar10")),
        ("asym", "pairflip", 10, lambda y: asym_noise(y, 0.5, 10, 1, "pairflip")),
    ],
)
def test_empirical_transition_matches_transition_matrix(kind, mapping, C, generate):
    y = balanced_labels(20000, C)
    noisy = generate(y)
    empirical = np.zeros((C, C))
    np.add.at(empirical, (y, noisy), 1)
    empirical /= empirical.sum(axis=1, keepdims=True)
    expected = transition_matrix(kind, 0.5, C, mapping=mapping)
    assert np.allclose(expected.sum(axis=1), 1)
    assert np.abs(empirical - expected).max() < 0.04


@pytest.mark.parametrize("mapping,C", [("cifar10", 10), ("cifar100_next_in_block", 100),
                                       ("cifar100_superclass", 100), ("pairflip", 7)])
def test_transition_matrices_are_stochastic(mapping, C):
    P = transition_matrix("asym", 0.3, C, mapping=mapping)
    assert P.shape == (C, C) and np.allclose(P.sum(axis=1), 1) and np.all(P >= 0)
    assert np.allclose(np.diag(P), 0.7) or mapping == "cifar10"


def test_transition_matrix_values():
    assert np.allclose(transition_matrix("sym", 0.5, 4), np.eye(4) * 0.5 + 0.125)
    P = transition_matrix("sym_exclusive", 0.6, 4)
    assert np.allclose(np.diag(P), 0.4) and np.isclose(P[0, 1], 0.2)
    P = transition_matrix("asym", 0.4, 10, mapping="cifar10")
    assert np.isclose(P[9, 1], 0.4) and np.isclose(P[9, 9], 0.6) and P[0, 0] == 1.0
    with pytest.raises(UserError, match="needs 100 classes, the dataset has 10"):
        transition_matrix("asym", 0.4, 10, mapping="cifar100_superclass")
    with pytest.raises(UserError, match="unknown transition kind 'weird'"):
        transition_matrix("weird", 0.4, 10)


def test_asym_mapping_for():
    assert asym_mapping_for("cifar10", CIFAR10_NAMES) == "cifar10"
    assert asym_mapping_for("cifar10n", ["x"] * 10) == "cifar10"
    assert asym_mapping_for("folder", CIFAR10_NAMES) == "cifar10"  # the JPEG folder copy
    assert asym_mapping_for("cifar100", [str(i) for i in range(100)]) == "cifar100_next_in_block"
    assert asym_mapping_for("tiny_imagenet", []) == "pairflip"
    assert asym_mapping_for("folder", ["a", "b"], asym_map="pairflip") == "pairflip"
    with pytest.raises(UserError, match="no class mapping for dataset digits; use noise.kind=sym or noise.asym_map=pairflip"):
        asym_mapping_for("digits", [str(i) for i in range(10)])
    with pytest.raises(UserError, match="unknown noise.asym_map 'flip'"):
        asym_mapping_for("cifar10", CIFAR10_NAMES, asym_map="flip")


# ------------------------------------------------------------------------------------------------------------
# noise files


def test_load_json_noise_file(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps([0, 2, 1, 1]))
    assert load_noise_file(path, num_samples=4, num_classes=3).tolist() == [0, 2, 1, 1]


@pytest.mark.parametrize(
    "content,match",
    [
        ("[0, 1, 2]", r"has 3 labels, expected 4"),
        ("[0, 1, 7, 1]", r"label 7 at position 2 is outside \[0, 2\]"),
        ("[0, 1, -1, 1]", r"label -1 at position 2"),
        ("[0, 1, 1.5, 1]", r"entry 2 is 1.5, not an integer"),
        ("[0, 1, ", r"is not valid JSON"),
        ('{"a": 1}', r"must hold a JSON list"),
    ],
)
def test_bad_json_noise_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=match) as info:
        load_noise_file(path, num_samples=4, num_classes=3)
    assert "bad.json" in str(info.value) and "\n" not in str(info.value)


def test_missing_noise_file(tmp_path):
    with pytest.raises(UserError, match=r"noise file .*nope.json not found"):
        load_noise_file(tmp_path / "nope.json", num_samples=4, num_classes=3)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


PATHS = ["train/a/0.png", "train/a/1.png", "train/b/0.png", "train/b/1.png"]


def test_csv_noise_file_matched_by_path_and_column(tmp_path):
    path = tmp_path / "n.csv"
    write_csv(path, ["path", "label", "worst"], [[PATHS[3], 0, 1], [PATHS[0], 1, 0], [PATHS[2], 1, 1], [PATHS[1], 0, 0]])
    assert load_noise_file(path, num_samples=4, num_classes=2, paths=PATHS).tolist() == [1, 0, 1, 0]
    assert load_noise_file(path, num_samples=4, num_classes=2, paths=PATHS, column="worst").tolist() == [0, 0, 1, 1]
    with pytest.raises(UserError, match="has no 'aggre' column"):
        load_noise_file(path, num_samples=4, num_classes=2, paths=PATHS, column="aggre")


def test_csv_noise_file_by_index_without_paths(tmp_path):
    path = tmp_path / "n.csv"
    write_csv(path, ["index", "label"], [[2, 1], [0, 0], [1, 1]])
    assert load_noise_file(path, num_samples=3, num_classes=2).tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "rows,match",
    [
        ([[PATHS[0], 0], [PATHS[1], 0], [PATHS[2], 1], ["train/c/9.png", 1]], r"not in the dataset, e.g. train/c/9.png"),
        ([[PATHS[0], 0], [PATHS[1], 0], [PATHS[2], 1]], r"no row for 1 dataset image\(s\), e.g. train/b/1.png"),
        ([[PATHS[0], 0], [PATHS[1], 0], [PATHS[2], 1], [PATHS[3], 5]], r"label 5 at position 3 is outside"),
        ([[PATHS[0], 0], [PATHS[1], "x"], [PATHS[2], 1], [PATHS[3], 1]], r"line 3: 'label' is not an integer"),
        ([[PATHS[0], 0], [PATHS[0], 0], [PATHS[2], 1], [PATHS[3], 1]], r"lists path train/a/0.png twice"),
    ],
)
def test_bad_csv_noise_files(tmp_path, rows, match):
    path = tmp_path / "bad.csv"
    write_csv(path, ["path", "label"], rows)
    with pytest.raises(UserError, match=match) as info:
        load_noise_file(path, num_samples=4, num_classes=2, paths=PATHS)
    assert "bad.csv" in str(info.value)


def test_json_with_order_file_maps_original_order_onto_paths(tmp_path):
    # Original order: index 0 is train/b/1.png, 1 is train/a/0.png, ...
    order = tmp_path / "order.csv"
    write_csv(order, ["path", "index", "clean"], [[PATHS[3], 0, 1], [PATHS[0], 1, 0], [PATHS[2], 2, 1], [PATHS[1], 3, 0]])
    labels = tmp_path / "n.json"
    labels.write_text(json.dumps([10, 11, 12, 13]))
    got = load_noise_file(labels, num_samples=4, num_classes=20, paths=PATHS, order_file=order)
    assert got.tolist() == [11, 13, 12, 10]
    with pytest.raises(UserError, match="order file .*missing.csv not found"):
        load_noise_file(labels, num_samples=4, num_classes=20, paths=PATHS, order_file=tmp_path / "missing.csv")
    short = tmp_path / "short.json"
    short.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(UserError, match=r"index 3 .* is outside the 3 labels"):
        load_noise_file(short, num_samples=4, num_classes=20, paths=PATHS, order_file=order)


def test_convert_noise_to_csv_and_cli(tmp_path, capsys):
    order = tmp_path / "order.csv"
    write_csv(order, ["path", "index"], [[PATHS[3], 0], [PATHS[0], 1], [PATHS[2], 2], [PATHS[1], 3]])
    src = tmp_path / "n.json"
    src.write_text(json.dumps([1, 0, 1, 1]))
    out = tmp_path / "out.csv"
    assert convert_noise_to_csv(src, order, out) == 4
    assert out.read_text().splitlines() == ["path,label", f"{PATHS[3]},1", f"{PATHS[0]},0", f"{PATHS[2]},1", f"{PATHS[1]},1"]
    # The CSV reproduces the JSON + order-file labels.
    via_csv = load_noise_file(out, num_samples=4, num_classes=2, paths=PATHS)
    via_json = load_noise_file(src, num_samples=4, num_classes=2, paths=PATHS, order_file=order)
    assert np.array_equal(via_csv, via_json)
    with pytest.raises(UserError, match="already exists; delete it or choose another output path"):
        convert_noise_to_csv(src, order, out)
    assert convert_noise_to_csv(src, order, out, overwrite=True) == 4

    assert convert_main([str(src), str(order), str(tmp_path / "cli.csv")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 4 rows to {tmp_path / 'cli.csv'}"
    assert convert_main([str(src), str(order), str(tmp_path / "cli.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err


# ------------------------------------------------------------------------------------------------------------
# apply_noise


def test_apply_noise_kinds(tmp_path):
    y = balanced_labels(1000, 10)
    table = table_of(y, CIFAR10_NAMES)
    clean = apply_noise(table, kind="none", rate=0.0, seed=1, dataset_name="cifar10")
    assert np.array_equal(clean.labels, y) and np.array_equal(clean.true_labels, y)

    sym = apply_noise(table, kind="sym", rate=0.5, seed=123, dataset_name="cifar10")
    assert np.array_equal(sym.labels, sym_noise_dividemix(y, 0.5, 10, 123))
    assert np.array_equal(sym.true_labels, y) and np.array_equal(table.labels, y)  # input untouched

    excl = apply_noise(table, kind="sym", rate=0.5, seed=123, dataset_name="cifar10", exclude_true=True)
    assert np.sum(excl.labels != y) == 500

    asym = apply_noise(table, kind="asym", rate=0.4, seed=123, dataset_name="folder")  # mapping from class names
    assert np.array_equal(asym.labels, asym_noise_cifar10(y, 0.4, 123))

    path = tmp_path / "n.json"
    path.write_text(json.dumps(((y + 1) % 10).tolist()))
    from_file = apply_noise(table, kind="file", rate=0.0, seed=0, dataset_name="cifar10", file=path)
    assert np.array_equal(from_file.labels, (y + 1) % 10) and np.array_equal(from_file.true_labels, y)


def test_apply_noise_on_labels_that_are_already_noisy():
    y = balanced_labels(200, 4)
    table = table_of(y, ["a", "b", "c", "d"], true_labels=None)
    out = apply_noise(table, kind="sym", rate=0.5, seed=0, dataset_name="folder")
    assert out.true_labels is None
    assert np.array_equal(out.labels, sym_noise_dividemix(y, 0.5, 4, 0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kind="sym", rate=1.5), r"noise.rate must be in \[0, 1\], got 1.5"),
        (dict(kind="sym", rate=-0.1), r"noise.rate must be in \[0, 1\], got -0.1"),
        (dict(kind="symmetric", rate=0.5), r"unknown noise.kind 'symmetric'; use one of none, sym, asym, file, human"),
        (dict(kind="file", rate=0.0), r"noise.kind=file needs noise.file=PATH"),
        (dict(kind="human", rate=0.0, file="x.csv"), r"noise.kind=human needs noise.column=NAME"),
        (dict(kind="asym", rate=0.2), r"asymmetric noise has no class mapping for dataset digits"),
    ],
)
def test_apply_noise_bad_input(kwargs, match):
    table = table_of(balanced_labels(20, 4), ["a", "b", "c", "d"])
    with pytest.raises(UserError, match=match):
        apply_noise(table, seed=0, dataset_name="digits", **kwargs)


def test_noise_rate_helper():
    table = table_of([0, 1, 1, 0], ["a", "b"])
    assert noise.noise_rate(table) == 0.0
    assert noise.noise_rate(table_of([0, 1], ["a", "b"], true_labels=None)) is None


# ------------------------------------------------------------------------------------------------------------
# the shared reference files (skipped where /work/shared/data is absent)

needs_shared = pytest.mark.skipif(not (SHARED / "cifar10n" / "labels.csv").is_file(), reason="no /work/shared/data")


def original_order_clean_labels() -> np.ndarray:
    labels = np.empty(50000, dtype=np.int64)
    with open(SHARED / "cifar10n" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            labels[int(row["index"])] = int(row["clean"])
    return labels


@needs_shared
def test_reference_cifar10_files_are_reproduced_exactly():
    y = original_order_clean_labels()
    sym = json.loads((SHARED / "noise-files" / "cifar10" / "0.50.json").read_text())
    assert sym_noise_dividemix(y, 0.5, 10, 123).tolist() == sym
    asym = json.loads((SHARED / "noise-files" / "cifar10" / "0.40_asym.json").read_text())
    assert asym_noise_cifar10(y, 0.4, 123).tolist() == asym


@needs_shared
def test_reference_file_onto_jpeg_folder_order():
    from noisyclr.data.folder import scan_folder

    classes, listing = scan_folder(SHARED / "cifar10-jpg")
    paths, folder_labels = listing["train"]
    assert classes == CIFAR10_NAMES
    labels = load_noise_file(SHARED / "noise-files" / "cifar10" / "0.50.json", num_samples=len(paths),
                             num_classes=10, paths=paths, order_file=SHARED / "cifar10n" / "labels.csv")
    assert np.mean(labels != folder_labels) == pytest.approx(0.4497, abs=5e-4)
    worst = load_noise_file(SHARED / "cifar10n" / "labels.csv", num_samples=len(paths), num_classes=10,
                            paths=paths, column="worst")
    assert np.mean(worst != folder_labels) == pytest.approx(0.4021, abs=5e-4)
