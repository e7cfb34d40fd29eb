"""The cifar10n / cifar100n sources: CIFAR-N human-label files on fake CIFAR pickles and image folders."""

from __future__ import annotations

import csv
import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisyclr.cli import main
from noisyclr.data.cifar_n import read_human_file
from noisyclr.data.noise import CIFAR100_FINE_TO_COARSE
from noisyclr.data.sources import SOURCES, load_dataset
from noisyclr.errors import UserError

C10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
N10, T10 = 30, 10
N100, T100 = 100, 10


def rows(values) -> np.ndarray:
    """One CIFAR row (3072 bytes, channel planes) per value: R = v, G = 3v + 50, B = 255 - v (mod 256)."""
    out = np.zeros((len(values), 3072), np.uint8)
    for i, v in enumerate(values):
        out[i, :1024], out[i, 1024:2048], out[i, 2048:] = v % 256, (3 * v + 50) % 256, (255 - v) % 256
    return out


def dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def flip(labels, every: int, shift: int, classes: int) -> np.ndarray:
    """``labels`` with every ``every``-th one moved ``shift`` classes on."""
    out = np.asarray(labels).copy()
    out[::every] = (out[::every] + shift) % classes
    return out


def write_folder(root: Path, names, train_images, train_labels, test_images, test_labels) -> Path:
    """A PNG folder (lossless, so the pixels can be compared) of the images, the train files named in a scrambled
    order within each class, and its index CSV ``path,index``; returns the CSV."""
    rng = np.random.default_rng(0)
    rels = []
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        tags = rng.permutation(len(images))  # file names unrelated to the original order
        for i, (img, y) in enumerate(zip(images, labels)):
            rel = f"{split}/{names[y]}/{tags[i]:04d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / rel)
            if split == "train":
                rels.append(rel)
    index_csv = root.parent / f"{root.name}-index.csv"
    with open(index_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "index", "clean"])
        for i in rng.permutation(len(rels)):  # rows in any order
            writer.writerow([rels[i], i, int(train_labels[i])])
    return index_csv


def planes(flat: np.ndarray) -> np.ndarray:
    return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def c10(tmp_path_factory):
    """A CIFAR-10 root (pickles, 5 batches of 6, 10 test images, CIFAR-10_human.pt) and a PNG folder of it."""
    tmp = tmp_path_factory.mktemp("cifar10n")
    root = tmp / "cifar10"
    base = root / "cifar-10-batches-py"
    clean = np.array([(7 * i + i // 10) % 10 for i in range(N10)])
    dump(base / "batches.meta", {b"label_names": [n.encode() for n in C10], b"num_vis": 3072})
    for b in range(5):
        part = slice(6 * b, 6 * b + 6)
        dump(base / f"data_batch_{b + 1}", {b"data": rows(range(6 * b, 6 * b + 6)),
                                            b"labels": clean[part].tolist()})
    test_labels = np.arange(T10) % 10
    dump(base / "test_batch", {b"data": rows(range(200, 200 + T10)), b"labels": test_labels.tolist()})
    human = {
        "clean_label": clean,
        "aggre_label": flip(clean, 10, 1, 10),  # 3 of 30 wrong
        "worse_label": flip(clean, 2, 3, 10),  # 15 of 30
        "random_label1": flip(clean, 5, 2, 10),  # 6
        "random_label2": flip(clean, 6, 4, 10),  # 5
        "random_label3": flip(clean, 3, 5, 10),  # 10
    }
    torch.save(human, root / "CIFAR-10_human.pt")
    index = write_folder(tmp / "jpg", C10, planes(rows(range(N10))), clean, planes(rows(range(200, 200 + T10))),
                         test_labels)
    return {"root": root, "folder": tmp / "jpg", "index": index, "human": human, "clean": clean,
            "test": test_labels, "cache": tmp / "cache"}


@pytest.fixture(scope="module")
def c100(tmp_path_factory):
    """A CIFAR-100 root (pickles: 100 train images, one per class, and 10 test) with CIFAR-100_human.pt in the
    official format (fine labels numpy arrays, coarse ones lists of ints), and a PNG folder of it."""
    tmp = tmp_path_factory.mktemp("cifar100n")
    root = tmp / "cifar100"
    base = root / "cifar-100-python"
    fine_names = [f"f{i:02d}" for i in range(100)]
    clean = np.array([(37 * i) % 100 for i in range(N100)])
    test_fine = np.array([(11 * i) % 100 for i in range(T100)])
    dump(base / "meta", {b"fine_label_names": [n.encode() for n in fine_names],
                         b"coarse_label_names": [f"c{i:02d}".encode() for i in range(20)]})
    dump(base / "train", {b"data": rows(range(N100)), b"fine_labels": clean.tolist(),
                          b"coarse_labels": CIFAR100_FINE_TO_COARSE[clean].tolist()})
    dump(base / "test", {b"data": rows(range(150, 150 + T100)), b"fine_labels": test_fine.tolist(),
                         b"coarse_labels": CIFAR100_FINE_TO_COARSE[test_fine].tolist()})
    noisy = flip(clean, 3, 1, 100)
    noisy_coarse = CIFAR100_FINE_TO_COARSE[noisy]
    human = {"clean_label": clean, "noisy_label": noisy,
             "noisy_coarse_label": [int(v) for v in noisy_coarse],
             "clean_coarse_label": [int(v) for v in CIFAR100_FINE_TO_COARSE[clean]]}
    torch.save(human, root / "CIFAR-100_human.pt")
    index = write_folder(tmp / "jpg", fine_names, planes(rows(range(N100))), clean,
                         planes(rows(range(150, 150 + T100))), test_fine)
    return {"root": root, "folder": tmp / "jpg", "index": index, "human": human, "clean": clean,
            "test": test_fine, "cache": tmp / "cache"}


def one_line(exc_info, *needles) -> str:
    message = str(exc_info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# ------------------------------------------------------------------------------------------------------------
# CIFAR-10N


@pytest.mark.parametrize("labels, key, wrong", [
    ("aggre", "aggre_label", 3), ("worst", "worse_label", 15), ("random1", "random_label1", 6),
    ("random2", "random_label2", 5), ("random3", "random_label3", 10), ("worse_label", "worse_label", 15),
    ("random_label3", "random_label3", 10), ("clean", "clean_label", 0),
])
def test_cifar10n_label_sets(c10, labels, key, wrong):
    data = load_dataset("cifar10n", str(c10["root"]), labels=labels)
    assert data.name == "cifar10n" and data.train.num_classes == 10 and data.train.class_names == C10
    assert data.train.labels.tolist() == c10["human"][key].tolist()
    assert data.train.true_labels.tolist() == c10["clean"].tolist()
    assert int((data.train.labels != data.train.true_labels).sum()) == wrong
    assert data.info["labels"] == key and data.info["label_noise_rate"] == pytest.approx(wrong / N10)
    assert data.info["images"] == "pickles" and data.info["clean_label_disagreements"] == 0
    # the images are the pickles', in the original order; the test split is the clean CIFAR test set
    assert np.all(data.train.images[4, ..., 0] == 4) and np.all(data.train.images[4, ..., 2] == 251)
    assert data.test.labels.tolist() == c10["test"].tolist() == data.test.true_labels.tolist()
    assert data.test.images.shape == (T10, 32, 32, 3)
    assert data.mean == (0.4914, 0.4822, 0.4465) and data.std == (0.2023, 0.1994, 0.2010)


def test_cifar10n_default_is_worst_and_the_source_is_listed(c10):
    data = load_dataset("cifar10n", str(c10["root"]))
    assert data.info["labels"] == "worse_label"
    assert "cifar10n" in SOURCES and "cifar100n" in SOURCES
    assert "worst" in SOURCES["cifar10n"] and "noisy_coarse_label" in SOURCES["cifar100n"]


@pytest.mark.parametrize("labels", ["aggre", "worst", "random2"])
def test_cifar10n_folder_equals_pickles(c10, labels):
    pick = load_dataset("cifar10n", str(c10["root"]), labels=labels)
    fold = load_dataset("cifar10n", str(c10["folder"]), cache_dir=str(c10["cache"]), labels=labels,
                        human_file=str(c10["root"] / "CIFAR-10_human.pt"), index_file=str(c10["index"]))
    assert fold.info["images"] == "folder" and fold.info["index_file"] == str(c10["index"])
    # row i is original image i in both layouts: same pixels, labels, true labels
    assert np.array_equal(fold.train.images, pick.train.images)
    assert np.array_equal(fold.train.labels, pick.train.labels)
    assert np.array_equal(fold.train.true_labels, pick.train.true_labels)
    assert fold.train.class_names == pick.train.class_names
    with open(c10["index"], newline="") as handle:
        by_path = {r["path"]: int(r["index"]) for r in csv.DictReader(handle)}
    assert [by_path[p] for p in fold.train.paths] == list(range(N10))
    assert sorted(fold.test.labels.tolist()) == sorted(pick.test.labels.tolist())
    assert pick.train.paths is None


def test_cifar10n_images_option(c10, tmp_path):
    with pytest.raises(UserError) as exc:  # the pickle root has no image folder
        load_dataset("cifar10n", str(c10["root"]), images="folder", index_file=str(c10["index"]))
    assert "train/ folder" in str(exc.value)
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), images="jpeg")
    one_line(exc, "images='jpeg'", "auto, pickles or folder")
    with pytest.raises(UserError) as exc:  # a folder without its index file
        load_dataset("cifar10n", str(c10["folder"]), human_file=str(c10["root"] / "CIFAR-10_human.pt"))
    one_line(exc, "dataset.options.index_file=PATH", "path,index")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(tmp_path / "empty"))
    one_line(exc, "neither cifar-10-batches-py/", "train/<class>/")


def test_cifar10n_legacy_and_plain_pickle_and_numpy1_files(c10, tmp_path):
    human = c10["human"]
    torch.save(human, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    raw = (tmp_path / "legacy.pt").read_bytes()
    # the official files were written by numpy 1.x, which names numpy.core.multiarray
    (tmp_path / "numpy1.pt").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    dump(tmp_path / "plain.pkl", human)
    for name in ("legacy.pt", "numpy1.pt", "plain.pkl"):
        got = read_human_file(tmp_path / name)
        assert sorted(got) == sorted(human)
        assert all(np.array_equal(got[k], human[k]) for k in human), name
    data = load_dataset("cifar10n", str(c10["root"]), labels="aggre", human_file=str(tmp_path / "numpy1.pt"))
    assert data.train.labels.tolist() == human["aggre_label"].tolist()


# ------------------------------------------------------------------------------------------------------------
# CIFAR-100N


def test_cifar100n_fine_and_coarse(c100):
    fine = load_dataset("cifar100n", str(c100["root"]))
    assert fine.info["labels"] == "noisy_label" and fine.train.num_classes == 100
    assert fine.train.labels.tolist() == c100["human"]["noisy_label"].tolist()
    assert fine.train.true_labels.tolist() == c100["clean"].tolist()
    assert fine.test.labels.tolist() == c100["test"].tolist()
    assert fine.mean == (0.507, 0.487, 0.441)
    assert load_dataset("cifar100n", str(c100["root"]), labels="noisy").info["labels"] == "noisy_label"

    coarse = load_dataset("cifar100n", str(c100["root"]), labels="noisy_coarse_label")
    assert coarse.train.num_classes == 20 and coarse.test.num_classes == 20
    assert coarse.train.class_names[13] == "c13" and coarse.info["coarse"] is True
    assert coarse.train.labels.tolist() == c100["human"]["noisy_coarse_label"]
    assert coarse.train.true_labels.tolist() == c100["human"]["clean_coarse_label"]
    # test labels: the pickle's coarse labels
    assert coarse.test.labels.tolist() == CIFAR100_FINE_TO_COARSE[c100["test"]].tolist()
    assert coarse.test.true_labels.tolist() == coarse.test.labels.tolist()
    assert np.array_equal(coarse.train.images, fine.train.images)


@pytest.mark.parametrize("labels", ["noisy_label", "noisy_coarse_label"])
def test_cifar100n_folder_equals_pickles(c100, labels):
    pick = load_dataset("cifar100n", str(c100["root"]), labels=labels)
    fold = load_dataset("cifar100n", str(c100["folder"]), cache_dir=str(c100["cache"]), labels=labels,
                        images="folder", human_file=str(c100["root"] / "CIFAR-100_human.pt"),
                        index_file=str(c100["index"]))
    assert np.array_equal(fold.train.images, pick.train.images)
    assert np.array_equal(fold.train.labels, pick.train.labels)
    assert np.array_equal(fold.train.true_labels, pick.train.true_labels)
    assert fold.train.num_classes == pick.train.num_classes
    assert sorted(fold.test.labels.tolist()) == sorted(pick.test.labels.tolist())


# ------------------------------------------------------------------------------------------------------------
# bad inputs


def test_missing_human_file(c10, tmp_path):
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), human_file=str(tmp_path / "nope.pt"))
    one_line(exc, "nope.pt not found", "CIFAR-10_human.pt", "github.com/UCSC-REAL/cifar-10-100n", "human_file")
    bare = tmp_path / "bare"  # the pickles without the label file, looked for at its default place
    bare.mkdir()
    (bare / "cifar-10-batches-py").symlink_to(c10["root"] / "cifar-10-batches-py")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(bare))
    one_line(exc, str(bare / "CIFAR-10_human.pt"), "not found")


def test_wrong_key_length_type_and_range(c10, tmp_path):
    human = dict(c10["human"])
    del human["worse_label"]
    torch.save(human, tmp_path / "nokey.pt")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), human_file=str(tmp_path / "nokey.pt"))
    one_line(exc, "nokey.pt has no 'worse_label' entry", "aggre_label", "download")
    torch.save({k: v[:-1] for k, v in c10["human"].items()}, tmp_path / "short.pt")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), human_file=str(tmp_path / "short.pt"))
    one_line(exc, "short.pt", f"has {N10 - 1} labels, expected {N10}")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), human_file=str(tmp_path / "list.pt"))
    one_line(exc, "list.pt holds a list, not a dict")
    torch.save({**c10["human"], "aggre_label": c10["human"]["aggre_label"] + 10}, tmp_path / "range.pt")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), labels="aggre", human_file=str(tmp_path / "range.pt"))
    one_line(exc, "range.pt", "outside [0, 9]")
    torch.save({**c10["human"], "aggre_label": c10["human"]["aggre_label"] / 2}, tmp_path / "float.pt")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), labels="aggre", human_file=str(tmp_path / "float.pt"))
    one_line(exc, "float.pt", "not a list of integer labels")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), labels="noisy_label")
    one_line(exc, "labels='noisy_label' is not a CIFAR-10N label set", "aggre, random1")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), label="worst")
    one_line(exc, "did you mean 'labels'")


def test_damaged_and_malicious_files(c10, tmp_path):
    good = (c10["root"] / "CIFAR-10_human.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError) as exc:
        read_human_file(tmp_path / "cut.pt")
    one_line(exc, "cannot read", "cut.pt", "damaged or truncated")
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {shlex.quote(str(marker))}",))

    torch.save({**c10["human"], "x": Payload()}, tmp_path / "evil.pt")
    dump(tmp_path / "evil.pkl", {**c10["human"], "x": Payload()})
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(UserError) as exc:
            read_human_file(tmp_path / name)
        one_line(exc, name, "system", "refused")
    assert not marker.exists()


def test_mismatched_order_mapping_is_refused(c10, tmp_path):
    with open(c10["index"], newline="") as handle:
        table = list(csv.DictReader(handle))
    wrong = tmp_path / "wrong-index.csv"  # every original index moved on by one: another image's labels
    with open(wrong, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "index"])
        for r in table:
            writer.writerow([r["path"], (int(r["index"]) + 1) % N10])
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["folder"]), cache_dir=str(c10["cache"]), index_file=str(wrong),
                     human_file=str(c10["root"] / "CIFAR-10_human.pt"))
    one_line(exc, "clean labels ('clean_label') differ", "does not map the folder's train files", "index_file")
    # pickles whose order is not the file's
    shuffled = {**c10["human"], "clean_label": np.roll(c10["clean"], 3)}
    torch.save(shuffled, tmp_path / "rolled.pt")
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10n", str(c10["root"]), human_file=str(tmp_path / "rolled.pt"))
    one_line(exc, "rolled.pt", "differ from the image source's labels", "does not belong to these CIFAR-10 pickles")
    # a handful of differences is a warning, not an error
    few = {**c10["human"], "clean_label": flip(c10["clean"], 15, 1, 10)}  # 2 of 30
    torch.save(few, tmp_path / "few.pt")
    with pytest.warns(UserWarning, match="2 of 30 clean labels"):
        data = load_dataset("cifar10n", str(c10["root"]), human_file=str(tmp_path / "few.pt"))
    assert data.info["clean_label_disagreements"] == 2
    # an index file with a duplicate or out-of-range index
    for name, change in (("dup", lambda i: 0 if i == 1 else i), ("big", lambda i: i + 100 if i == 5 else i)):
        path = tmp_path / f"{name}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "index"])
            for r in table:
                writer.writerow([r["path"], change(int(r["index"]))])
        with pytest.raises(UserError) as exc:
            load_dataset("cifar10n", str(c10["folder"]), cache_dir=str(c10["cache"]), index_file=str(path),
                         human_file=str(c10["root"] / "CIFAR-10_human.pt"))
        one_line(exc, f"{name}.csv", "index")


# ------------------------------------------------------------------------------------------------------------
# runs


def test_cli_bad_human_file_is_one_line_exit_2(c10, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "standard-ce-cifar10n-worst", f"dataset.root={c10['root']}",
                 f"dataset.options.human_file={tmp_path / 'missing.pt'}", "train.epochs=1", "train.device=cpu",
                 "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "missing.pt not found" in lines[0]
    assert not (out / "checkpoint.pt").exists()


def test_train_run_on_cifar10n(c10, tmp_path):
    from noisyclr import api

    run = api.train("standard-ce-cifar10n-aggre", [
        f"dataset.root={c10['root']}", "train.epochs=1", "train.batch_size=10", "train.eval_batch_size=64",
        "train.device=cpu", "model.backbone=small_cnn", "model.width=4", "log.report=false", "log.progress=off",
    ], out_dir=tmp_path / "run")
    assert run.summary["noise"]["kind"] == "none"
    assert run.summary["noise"]["actual_rate"] == pytest.approx(3 / N10)
    with open(tmp_path / "run" / "train_labels.csv", newline="") as handle:
        saved = list(csv.DictReader(handle))
    assert [int(r["given_label"]) for r in saved] == c10["human"]["aggre_label"].tolist()
    assert [int(r["true_label"]) for r in saved] == c10["clean"].tolist()


@pytest.mark.parametrize("name", [f"{m}-cifar10n-{s}" for m in ("standard-ce", "dividemix", "plremix", "bpt_plr", "tcl")
                                  for s in ("aggre", "random1", "worst")]
                         + [f"{m}-cifar100n-noisy" for m in ("standard-ce", "dividemix", "plremix", "bpt_plr", "tcl")])
def test_presets(name):
    from noisyclr.config import load_config

    cfg = load_config(name)
    assert cfg.noise.kind == "none"
    assert cfg.dataset.name == ("cifar100n" if "cifar100n" in name else "cifar10n")
    if "cifar10n" in name:
        assert cfg.dataset.options["labels"] == name.rsplit("-", 1)[1]
