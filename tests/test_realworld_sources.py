"""The Clothing1M and mini-WebVision sources on tiny fake layouts, and ``noisyclr datasets --check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisyclr.data.check import check_dataset
from noisyclr.data.listfiles import check_files_exist, read_keys, read_pairs
from noisyclr.data.clothing1m import CLASS_NAMES, MEAN as C1M_MEAN
from noisyclr.data.folder import decode_rows
from noisyclr.data.sources import can_stream, list_dataset, load_dataset
from noisyclr.data.table import FileTable, ImageTable
from noisyclr.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _image(path: Path, seed: int, size=(9, 7)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


# --------------------------------------------------------------------------------------------------------------
# Clothing1M


def _clothing(root: Path, *, kv_order: str = "same", images_dir: bool = True) -> dict:
    """28 noisy train keys (2 per class), 14 val, 14 test; three train keys also carry a clean label. ``kv_order``
    ``reversed`` writes noisy_label_kv.txt in another order than the key list; ``images_dir=False`` is DivideMix's
    layout (the root is the images folder)."""
    train = [f"images/{i % 10}/{i % 3:02d}/t{i:03d}.jpg" for i in range(28)]
    val = [f"images/{i % 10}/5{i % 2}/v{i:03d}.jpg" for i in range(14)]
    test = [f"images/{i % 10}/7{i % 2}/s{i:03d}.jpg" for i in range(14)]
    noisy = {k: i % 14 for i, k in enumerate(train)}
    clean = {k: (3 * i) % 14 for i, k in enumerate(val + test)}
    clean.update({train[0]: 5, train[7]: 7, train[20]: 1})
    for n, key in enumerate(train + val + test):
        rel = key if images_dir else key[len("images/"):]
        _image(root / rel, n, size=(9 + n % 4, 7 + n % 3))
    _write(root / "noisy_train_key_list.txt", train)
    kv = [f"{k} {v}" for k, v in noisy.items()] + ["images/9/99/extra.jpg 13"]
    _write(root / "noisy_label_kv.txt", kv[::-1] if kv_order == "reversed" else kv)
    _write(root / "clean_label_kv.txt", [f"{k} {v}" for k, v in clean.items()])
    _write(root / "clean_val_key_list.txt", val)
    _write(root / "clean_test_key_list.txt", test)
    return {"train": train, "val": val, "test": test, "noisy": noisy, "clean": clean}


@pytest.fixture
def clothing(tmp_path):
    root = tmp_path / "Clothing1M"
    return root, _clothing(root)


def test_clothing1m_listing(clothing):
    root, made = clothing
    assert can_stream("clothing1m")
    splits = list_dataset("clothing1m", str(root), image_size=16)
    train, val, test = splits.train, splits.val, splits.test
    assert isinstance(train, FileTable) and isinstance(val, FileTable) and isinstance(test, FileTable)
    assert train.class_names == CLASS_NAMES and len(CLASS_NAMES) == 14
    assert train.paths == made["train"] and train.labels.tolist() == [made["noisy"][k] for k in made["train"]]
    assert train.true_labels is None
    assert val.paths == made["val"] and val.labels.tolist() == [made["clean"][k] for k in made["val"]]
    assert test.paths == made["test"] and test.labels.tolist() == [made["clean"][k] for k in made["test"]]
    assert (val.true_labels == val.labels).all() and (test.true_labels == test.labels).all()
    assert train.image_shape == (16, 16, 3) and train.image_size == 16
    assert splits.mean == C1M_MEAN and splits.std == (0.3113, 0.3192, 0.3214)
    assert splits.extra_test == {}
    assert splits.info["train_clean_rows"].tolist() == [0, 7, 20]
    assert splits.info["train_clean_labels"].tolist() == [5, 7, 1]
    # defaults: 256² squares; train_keys keeps the first N keys
    assert list_dataset("clothing1m", str(root)).train.image_shape == (256, 256, 3)
    small = list_dataset("clothing1m", str(root), train_keys=5)
    assert small.train.paths == made["train"][:5] and len(small.val) == 14


def test_clothing1m_kv_order_and_dividemix_layout(tmp_path):
    made = _clothing(tmp_path / "a", kv_order="reversed")
    splits = list_dataset("clothing1m", str(tmp_path / "a"))
    assert splits.train.labels.tolist() == [made["noisy"][k] for k in made["train"]]
    made = _clothing(tmp_path / "b", images_dir=False)  # DivideMix: the root is images/, keys lose "images/"
    splits = list_dataset("clothing1m", str(tmp_path / "b"))
    assert splits.train.paths == [k[len("images/"):] for k in made["train"]]
    assert splits.info["layout"] == "dividemix"


def test_clothing1m_loaded_equals_listed(clothing, tmp_path):
    root, _ = clothing
    listed = list_dataset("clothing1m", str(root), image_size=16)
    loaded = load_dataset("clothing1m", str(root), cache_dir=str(tmp_path / "cache"), image_size=16)
    for split in ("train", "val", "test"):
        a, b = getattr(listed, split), getattr(loaded, split)
        assert isinstance(b, ImageTable) and b.images.shape == (len(a), 16, 16, 3)
        assert a.paths == b.paths and (a.labels == b.labels).all()
        assert (a.true_labels is None) == (b.true_labels is None)
        # the streamed decoder gives the resident pixels
        assert (decode_rows(a.root, a.paths, a.image_size, a.image_shape) == b.images).all()
    assert loaded.mean == listed.mean and "data_mean" in loaded.info


# --------------------------------------------------------------------------------------------------------------
# mini-WebVision

WNIDS = [f"n{1440764 + 17 * k:08d}" for k in range(55)]


def _webvision(root: Path, *, imagenet: bool = True) -> dict:
    """55 synsets; train labels {0, 1, 2, 49} kept and {50, 54} dropped by the default 50 classes; one ImageNet val
    image in each of the first 50 synset folders (two in class 1)."""
    _write(root / "info/synsets.txt", [f"{w} class number {k}, a description" for k, w in enumerate(WNIDS)])
    train_labels = [0, 50, 1, 2, 54, 49, 0, 1, 50, 2]
    train = [(f"google/q{1 + i % 3:04d}/{i:06d}.jpg", y) for i, y in enumerate(train_labels)]
    val = [(f"val{i:06d}.jpg", y) for i, y in enumerate([0, 1, 52, 49, 2, 50])]
    _write(root / "info/train_filelist_google.txt", [f"{p} {y}" for p, y in train])
    _write(root / "info/val_filelist.txt", [f"{p} {y}" for p, y in val])
    for n, (path, _) in enumerate(train):
        _image(root / path, 100 + n)
    for n, (name, _) in enumerate(val):
        _image(root / "val_images_256" / name, 200 + n)
    if imagenet:
        for k, wnid in enumerate(WNIDS[:50]):
            for j in range(2 if k == 1 else 1):
                _image(root / "imagenet/val" / wnid / f"ILSVRC2012_val_{k * 10 + j:08d}.png", 300 + k * 10 + j)
        _image(root / "imagenet/val" / WNIDS[52] / "ILSVRC2012_val_99999999.png", 999)  # a class beyond 50: unused
    return {"train": train, "val": val}


@pytest.fixture
def webvision(tmp_path):
    root = tmp_path / "WebVision"
    return root, _webvision(root)


def test_webvision_listing(webvision):
    root, made = webvision
    assert can_stream("webvision")
    splits = list_dataset("webvision", str(root), image_size=12)
    train, test, imagenet = splits.train, splits.test, splits.extra_test["imagenet_val"]
    assert splits.val is None and list(splits.extra_test) == ["imagenet_val"]
    assert train.class_names == WNIDS[:50]
    kept = [(p, y) for p, y in made["train"] if y < 50]
    assert train.paths == [p for p, _ in kept] and train.labels.tolist() == [y for _, y in kept]
    assert train.true_labels is None
    assert test.paths == [f"val_images_256/{p}" for p, y in made["val"] if y < 50]
    assert test.labels.tolist() == [0, 1, 49, 2] and (test.true_labels == test.labels).all()
    assert len(imagenet) == 51 and imagenet.labels.tolist() == [0, 1, 1] + list(range(2, 50))
    assert imagenet.paths[1] == f"imagenet/val/{WNIDS[1]}/ILSVRC2012_val_00000010.png"
    assert (imagenet.true_labels == imagenet.labels).all()
    assert splits.mean == (0.485, 0.456, 0.406) and splits.std == (0.229, 0.224, 0.225)
    assert splits.info["synset_descriptions"][3] == "class number 3, a description"
    assert list_dataset("webvision", str(root)).train.image_shape == (320, 320, 3)


def test_webvision_class_filter_and_no_imagenet(webvision, tmp_path):
    root, _ = webvision
    three = list_dataset("webvision", str(root), num_classes=3)
    assert three.train.labels.tolist() == [0, 1, 2, 0, 1, 2] and three.train.num_classes == 3
    assert three.test.labels.tolist() == [0, 1, 2]
    assert three.extra_test["imagenet_val"].labels.tolist() == [0, 1, 1, 2]
    bare = tmp_path / "bare"
    _webvision(bare, imagenet=False)
    with pytest.raises(UserError, match="imagenet_val=false"):
        list_dataset("webvision", str(bare))
    assert list_dataset("webvision", str(bare), imagenet_val=False).extra_test == {}
    with pytest.raises(UserError, match="lists 55 synsets"):
        list_dataset("webvision", str(root), num_classes=56)


def test_webvision_loaded_equals_listed(webvision, tmp_path):
    root, _ = webvision
    listed = list_dataset("webvision", str(root), image_size=12)
    loaded = load_dataset("webvision", str(root), cache_dir=str(tmp_path / "cache"), image_size=12)
    pairs = [(listed.train, loaded.train), (listed.test, loaded.test),
             (listed.extra_test["imagenet_val"], loaded.extra_test["imagenet_val"])]
    for a, b in pairs:
        assert isinstance(b, ImageTable) and b.images.shape == (len(a), 12, 12, 3)
        assert a.paths == b.paths and (a.labels == b.labels).all()
        assert (decode_rows(a.root, a.paths, a.image_size, a.image_shape) == b.images).all()
    assert list(loaded.extra_test) == ["imagenet_val"]


# --------------------------------------------------------------------------------------------------------------
# the check helpers and noisyclr datasets --check


def test_list_readers_and_existence_check(tmp_path):
    kv = tmp_path / "kv.txt"
    kv.write_text("a/x.jpg 1\r\n\r\n  \nb/y.jpg 0\n")
    keys, labels = read_pairs(str(kv), "kv.txt", 2, "two classes")
    assert keys == ["a/x.jpg", "b/y.jpg"] and labels.tolist() == [1, 0]
    kv.write_text("a/x.jpg 1\n\nb/y.jpg 2\n")
    with pytest.raises(UserError, match=r"kv.txt line 3 has label 2, outside 0..1 \(two classes\)"):
        read_pairs(str(kv), "kv.txt", 2, "two classes")
    kv.write_text("a/x.jpg 1\nb/y.jpg\nc/z.jpg 0 1\n")
    with pytest.raises(UserError, match="kv.txt line 2 is not 'path label'"):
        read_pairs(str(kv), "kv.txt", 2, "two classes")
    kv.write_text("a/x.jpg 1\n../../etc/passwd 0\n")
    with pytest.raises(UserError, match="line 2 names ../../etc/passwd, which is not a path inside"):
        read_pairs(str(kv), "kv.txt", 2, "two classes")
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("a/x.jpg\n\nb/y.jpg\nz.jpg\n")
    assert read_keys(str(keys_file), "keys.txt") == ["a/x.jpg", "b/y.jpg", "z.jpg"]
    for rel in ("a/x.jpg", "z.jpg"):
        _image(tmp_path / rel, 0)
    check_files_exist(tmp_path, ["a/x.jpg", "z.jpg"], str)
    with pytest.raises(UserError, match=r"row 1 names b/y.jpg, which is missing under .* \(2 listed images are "
                                        r"missing in all\)"):
        check_files_exist(tmp_path, ["a/x.jpg", "b/y.jpg", "c/q.jpg"], lambda i: f"row {i}")


def test_check_dataset_any_source():
    found = check_dataset("synthetic", options={"num_classes": 3, "train_size": 30, "test_size": 9})
    assert not found.listed and found.num_classes == 3 and found.splits == {"train": 30, "test": 9}
    assert found.lines()[0].startswith("synthetic: layout OK (loaded")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "noisyclr", "datasets", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_cli_check_good_layouts(clothing, webvision):
    root, _ = clothing
    out = _cli("--check", str(root), "--name", "clothing1m", "--option", "image_size=64")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"clothing1m at {root}: layout OK (listed, nothing decoded)"
    assert lines[1] == "classes: 14 (T-Shirt, Shirt, Knitwear, Chiffon, Sweater, ...)"
    assert lines[2] == "train: 28 images (noisy labels, no true labels; 3 with a clean label)"
    assert lines[3:5] == ["val: 14 images", "test: 14 images"]
    assert lines[5] == ("label files: noisy_train_key_list.txt, noisy_label_kv.txt, clean_label_kv.txt, "
                        "clean_val_key_list.txt, clean_test_key_list.txt")
    root, _ = webvision
    out = _cli("--check", str(root), "--name", "webvision")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:5] == [
        f"classes: 50 ({', '.join(WNIDS[:5])}, ...)", "train: 7 images (noisy labels, no true labels)",
        "test: 4 images", "imagenet_val: 51 images"]


def _one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("noisyclr: error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_check_bad_layouts(clothing, webvision):
    root, made = clothing
    (root / "clean_test_key_list.txt").rename(root / "moved.txt")
    _one_line_error(_cli("--check", str(root), "--name", "clothing1m"), "no clean_test_key_list.txt under")
    (root / "moved.txt").rename(root / "clean_test_key_list.txt")

    (root / made["val"][3]).unlink()
    _one_line_error(_cli("--check", str(root), "--name", "clothing1m"),
                    f"clean_val_key_list.txt line 4 names {made['val'][3]}, which is missing")
    _image(root / made["val"][3], 0)

    kv = root / "noisy_label_kv.txt"
    lines = kv.read_text().splitlines()
    lines[5] = lines[5].rsplit(" ", 1)[0] + " 14"
    kv.write_text("\n".join(lines) + "\n")
    _one_line_error(_cli("--check", str(root), "--name", "clothing1m"),
                    "noisy_label_kv.txt line 6 has label 14, outside 0..13 (Clothing1M has 14 classes)")

    root, _ = webvision
    (root / "info/synsets.txt").unlink()
    _one_line_error(_cli("--check", str(root), "--name", "webvision"), "no info/synsets.txt under")
    # and the verb's own input
    _one_line_error(_cli("--check", str(root)), "needs ROOT and --name NAME")
    _one_line_error(_cli("--check", str(root), "--name", "webvison"), "did you mean 'webvision'")
    _one_line_error(_cli("--check", str(root), "--name", "webvision", "--option", "colour=red"),
                    "unknown option dataset.options.colour")
