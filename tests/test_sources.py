"""Data sources: registry, digits, synthetic, folder (+ cache), cifar pickles, tiny-imagenet layout."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisyclr.data import folder as folder_mod
from noisyclr.data.sources import SOURCES, describe_sources, load_dataset
from noisyclr.errors import UserError

# ------------------------------------------------------------------------------------------------------------
# helpers and fixtures


def pattern(value: int, size: int = 4) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 image whose pixels encode ``value`` (so PNG round-trips can be checked exactly)."""
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = np.arange(size)[:, None] * 10
    img[..., 2] = 255 - value
    return img


def save(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


@pytest.fixture
def tiny_folder_dataset(tmp_path) -> Path:
    """root/train/{zebra,ant}/ with 3 and 2 PNGs, root/test/{ant,zebra}/ with 1 each, plus hidden junk."""
    root = tmp_path / "imgs"
    # Created out of order on purpose: classes and files must come back sorted.
    for name, value in [("train/zebra/b.png", 30), ("train/zebra/a.png", 20), ("train/zebra/c.png", 40),
                        ("train/ant/2.png", 60), ("train/ant/1.png", 50),
                        ("test/zebra/x.png", 70), ("test/ant/y.png", 80)]:
        save(root / name, pattern(value))
    (root / "train" / "ant" / ".DS_Store").write_bytes(b"junk")
    (root / "train" / ".hidden_class").mkdir()
    return root


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


# ------------------------------------------------------------------------------------------------------------
# registry


def test_registry_lists_every_source():
    names = [n for n, _ in describe_sources()]
    assert names == sorted(["digits", "synthetic", "cifar10", "cifar100", "folder", "tiny_imagenet", "animal10n", "mini_imagenet_cnwl",
                            "cifar10n", "cifar100n", "clothing1m", "webvision"])
    assert all(isinstance(d, str) and d and "\n" not in d for d in SOURCES.values())


def test_unknown_dataset_name_suggests_closest():
    with pytest.raises(UserError, match=r"unknown dataset 'cifar_10'; did you mean 'cifar10'\? valid names: animal10n, cifar10, "):
        load_dataset("cifar_10")


def test_unknown_option_is_rejected():
    with pytest.raises(UserError, match=r"unknown option dataset.options.num_clases for dataset synthetic; "
                                        r"did you mean 'num_classes'\?"):
        load_dataset("synthetic", num_clases=3)
    with pytest.raises(UserError, match=r"unknown option dataset.options.size for dataset digits; it takes no options"):
        load_dataset("digits", size=3)


def test_file_sources_need_a_root():
    for name in ("folder", "cifar10", "cifar100", "tiny_imagenet"):
        with pytest.raises(UserError, match=f"dataset {name} needs a root folder; set dataset.root=PATH"):
            load_dataset(name)


# ------------------------------------------------------------------------------------------------------------
# digits and synthetic


def test_digits():
    data = load_dataset("digits")
    assert data.train.images.shape == (1297, 8, 8, 1) and data.test.images.shape == (500, 8, 8, 1)
    assert data.train.images.dtype == np.uint8 and data.train.images.max() == 255
    assert data.train.class_names == [str(k) for k in range(10)]
    assert np.array_equal(data.train.labels, data.train.true_labels)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Stratified: each class's test count is its share of the 500 test images, to within one.
    share = 500 * np.bincount(bunch.target) / len(bunch.target)
    assert np.all(np.abs(np.bincount(data.test.labels) - share) <= 1)
    assert set(np.unique(data.train.images)) <= {round(v * 255 / 16) for v in range(17)}
    assert len(data.train) + len(data.test) == len(bunch.target)
    pixels = data.train.images.astype(np.float64) / 255
    assert data.mean == pytest.approx((pixels.mean(),)) and data.std == pytest.approx((pixels.std(),))
    again = load_dataset("digits")
    assert np.array_equal(again.test.images, data.test.images)


def test_synthetic_shapes_balance_and_determinism():
    data = load_dataset("synthetic", num_classes=5, image_size=6, channels=3, train_size=100, test_size=30, seed=3)
    assert data.train.images.shape == (100, 6, 6, 3) and data.test.images.shape == (30, 6, 6, 3)
    assert np.array_equal(np.bincount(data.train.labels), [20] * 5)
    assert data.train.class_names == ["class0", "class1", "class2", "class3", "class4"]
    same = load_dataset("synthetic", num_classes=5, image_size=6, channels=3, train_size=100, test_size=30, seed=3)
    other = load_dataset("synthetic", num_classes=5, image_size=6, channels=3, train_size=100, test_size=30, seed=4)
    assert np.array_equal(same.train.images, data.train.images) and np.array_equal(same.test.labels, data.test.labels)
    assert not np.array_equal(other.train.images, data.train.images)
    gray = load_dataset("synthetic", channels=1)
    assert gray.train.images.shape == (256, 8, 8, 1) and len(gray.mean) == 1


def test_synthetic_is_learnable():
    # Nearest class mean on raw pixels already separates the classes, so a small CNN learns them quickly.
    data = load_dataset("synthetic")
    x = data.train.images.reshape(len(data.train), -1).astype(np.float64)
    centroids = np.stack([x[data.train.labels == k].mean(axis=0) for k in range(4)])
    t = data.test.images.reshape(len(data.test), -1).astype(np.float64)
    pred = np.argmin(((t[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == data.test.labels) > 0.95


def test_synthetic_bad_option():
    with pytest.raises(UserError, match=r"dataset.options.num_classes must be an integer >= 2, got 1"):
        load_dataset("synthetic", num_classes=1)


# ------------------------------------------------------------------------------------------------------------
# folder


def test_folder_order_paths_and_pixels(tiny_folder_dataset, cache_dir):
    data = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    assert data.train.class_names == ["ant", "zebra"]
    assert data.train.paths == ["train/ant/1.png", "train/ant/2.png", "train/zebra/a.png", "train/zebra/b.png",
                                "train/zebra/c.png"]
    assert data.train.labels.tolist() == [0, 0, 1, 1, 1]
    assert data.test.paths == ["test/ant/y.png", "test/zebra/x.png"] and data.test.labels.tolist() == [0, 1]
    assert np.array_equal(data.train.true_labels, data.train.labels)
    assert np.array_equal(data.train.images[0], pattern(50)) and np.array_equal(data.train.images[4], pattern(40))
    pixels = data.train.images.reshape(-1, 3).astype(np.float64) / 255
    assert data.mean == pytest.approx(tuple(pixels.mean(0))) and data.std == pytest.approx(tuple(pixels.std(0)))


def test_folder_second_load_hits_cache_and_mtime_change_rebuilds(tiny_folder_dataset, cache_dir, monkeypatch):
    calls = []
    real = folder_mod.decode_images

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(folder_mod, "decode_images", counting)
    first = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    assert len(calls) == 2  # train and test
    second = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    assert len(calls) == 2
    assert np.array_equal(first.train.images, second.train.images) and first.mean == second.mean
    assert len(list(cache_dir.glob("folder-*.npz"))) == 1

    target = tiny_folder_dataset / "train" / "ant" / "1.png"
    save(target, pattern(99))
    later = time.time() + 10
    os.utime(target, (later, later))
    third = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    assert len(calls) == 4
    assert np.array_equal(third.train.images[0], pattern(99))
    assert len(list(cache_dir.glob("folder-*.npz"))) == 1  # the stale entry was replaced


def test_folder_corrupt_cache_is_rebuilt_silently(tiny_folder_dataset, cache_dir):
    load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    (entry,) = cache_dir.glob("folder-*.npz")
    entry.write_bytes(b"garbage")
    data = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    assert np.array_equal(data.train.images[0], pattern(50))
    assert np.load(entry)["images_train"].shape == (5, 4, 4, 3)


def test_folder_default_cache_dir_from_env(tiny_folder_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYCLR_CACHE", str(tmp_path / "envcache"))
    load_dataset("folder", str(tiny_folder_dataset))
    assert len(list((tmp_path / "envcache").glob("folder-*.npz"))) == 1


def test_folder_corrupt_image_is_named(tiny_folder_dataset, cache_dir):
    (tiny_folder_dataset / "train" / "zebra" / "d.png").write_bytes(b"this is not a png")
    with pytest.raises(UserError, match=r"cannot read image train/zebra/d.png .*; delete or replace that file"):
        load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))


def test_folder_truncated_jpeg_is_named(tiny_folder_dataset, cache_dir):
    path = tiny_folder_dataset / "train" / "ant" / "3.jpg"
    save(path, pattern(10, 32), "JPEG")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match=r"train/ant/3.jpg"):
        load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))


def test_folder_parallel_decode_matches_serial(tiny_folder_dataset, cache_dir, monkeypatch):
    rels = [f"train/zebra/{n}.png" for n in "abc"] * 3 + ["train/ant/1.png"]
    serial, serial_hist = folder_mod.decode_images(tiny_folder_dataset, rels, workers=1)
    monkeypatch.setattr(folder_mod, "_PARALLEL_MIN", 1)
    monkeypatch.setattr(folder_mod, "_CHUNK", 3)
    parallel, parallel_hist = folder_mod.decode_images(tiny_folder_dataset, rels, workers=2)
    assert np.array_equal(serial, parallel) and np.array_equal(serial_hist, parallel_hist)
    (tiny_folder_dataset / "train" / "zebra" / "bad.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="cannot read image train/zebra/bad.png"):
        folder_mod.decode_images(tiny_folder_dataset, rels + ["train/zebra/bad.png"], workers=2)


def test_folder_mixed_sizes_rejected_or_resized(tiny_folder_dataset, cache_dir):
    save(tiny_folder_dataset / "train" / "zebra" / "big.png", pattern(5, 6))
    with pytest.raises(UserError, match=r"image train/zebra/big.png is 6x6 but earlier images are 4x4; "
                                        r"set dataset.options.image_size=N"):
        load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))
    data = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir), image_size=5)
    assert data.train.images.shape == (6, 5, 5, 3) and data.test.images.shape == (2, 5, 5, 3)


def test_folder_grayscale_and_rgba_become_rgb(tmp_path, cache_dir):
    root = tmp_path / "g"
    save(root / "train" / "a" / "0.png", np.full((4, 4), 77, np.uint8))
    save(root / "train" / "b" / "0.png", np.full((4, 4, 4), 9, np.uint8))
    save(root / "test" / "a" / "0.png", np.full((4, 4), 3, np.uint8))
    data = load_dataset("folder", str(root), cache_dir=str(cache_dir))
    assert data.train.images.shape == (2, 4, 4, 3) and np.all(data.train.images[0] == 77)


def test_folder_test_class_absent_from_train(tiny_folder_dataset, cache_dir):
    save(tiny_folder_dataset / "test" / "yak" / "0.png", pattern(1))
    with pytest.raises(UserError, match=r"test class folder test/yak has no train/yak"):
        load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir))


@pytest.mark.parametrize(
    "layout,match",
    [
        (None, r"dataset root .*nothing does not exist"),
        ([], r"has no train/ folder"),
        (["train/"], r"train has no class folders"),
        (["train/a/", "test/a/0.png"], r"class folder train/a has no images"),
        (["train/a/0.png"], r"has no test/ folder"),
        (["train/a/0.png", "test/a/"], r"test has no images"),
    ],
)
def test_folder_layout_errors(tmp_path, cache_dir, layout, match):
    root = tmp_path / "nothing"
    if layout is not None:
        root.mkdir()
        for item in layout:
            if item.endswith("/"):
                (root / item).mkdir(parents=True)
            else:
                save(root / item, pattern(1))
    with pytest.raises(UserError, match=match):
        load_dataset("folder", str(root), cache_dir=str(cache_dir))


def test_folder_bad_image_size_option(tiny_folder_dataset, cache_dir):
    with pytest.raises(UserError, match=r"dataset.options.image_size must be a positive integer, got 'big'"):
        load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir), image_size="big")


def test_folder_noisy_labels_option(tiny_folder_dataset, cache_dir):
    data = load_dataset("folder", str(tiny_folder_dataset), cache_dir=str(cache_dir), clean_labels=False)
    assert data.train.true_labels is None and data.test.true_labels is not None


# ------------------------------------------------------------------------------------------------------------
# cifar pickles


def cifar_rows(values: list[int]) -> np.ndarray:
    """One CIFAR row per value: the R plane holds ``value``, G holds 100 + value, B holds 200 + value (mod 256)."""
    rows = np.zeros((len(values), 3072), np.uint8)
    for i, v in enumerate(values):
        rows[i, :1024], rows[i, 1024:2048], rows[i, 2048:] = v, (100 + v) % 256, (200 + v) % 256
    return rows


def dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


@pytest.fixture
def fake_cifar10(tmp_path) -> Path:
    base = tmp_path / "c10" / "cifar-10-batches-py"
    names = [n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]]
    dump(base / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    for b in range(1, 6):
        values = [10 * b, 10 * b + 1]
        dump(base / f"data_batch_{b}", {b"data": cifar_rows(values), b"labels": [b, b + 4]})
    dump(base / "test_batch", {b"data": cifar_rows([7, 8, 9]), b"labels": [0, 1, 2]})
    return tmp_path / "c10"


def test_cifar10_pickles(fake_cifar10):
    data = load_dataset("cifar10", str(fake_cifar10))
    assert data.train.images.shape == (10, 32, 32, 3) and data.test.images.shape == (3, 32, 32, 3)
    assert data.train.labels.tolist() == [1, 5, 2, 6, 3, 7, 4, 8, 5, 9]
    assert data.train.class_names[0] == "airplane" and data.train.class_names[9] == "truck"
    # (N, 3, 32, 32) -> (N, 32, 32, 3): channel planes become the last axis, in data_batch_1..5 order.
    assert np.all(data.train.images[2, ..., 0] == 20) and np.all(data.train.images[2, ..., 2] == 220)
    assert data.mean == (0.4914, 0.4822, 0.4465) and data.std == (0.2023, 0.1994, 0.2010)
    inner = load_dataset("cifar10", str(fake_cifar10 / "cifar-10-batches-py"))
    assert np.array_equal(inner.test.images, data.test.images)


def test_cifar10_missing_batch_is_named(fake_cifar10):
    (fake_cifar10 / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(UserError, match=r"data_batch_3 not found"):
        load_dataset("cifar10", str(fake_cifar10))
    with pytest.raises(UserError, match=r"dataset root .*elsewhere does not exist"):  # checked before loading
        load_dataset("cifar10", str(fake_cifar10 / "elsewhere"))
    (fake_cifar10 / "elsewhere").mkdir()
    with pytest.raises(UserError, match=r"elsewhere holds neither cifar-10-batches-py/batches.meta nor batches.meta"):
        load_dataset("cifar10", str(fake_cifar10 / "elsewhere"))


def test_cifar10_corrupt_pickle_is_named(fake_cifar10):
    (fake_cifar10 / "cifar-10-batches-py" / "test_batch").write_bytes(b"corrupt")
    with pytest.raises(UserError, match=r"cannot read .*test_batch .*extract the archive again"):
        load_dataset("cifar10", str(fake_cifar10))


def test_cifar100_pickles(tmp_path):
    base = tmp_path / "cifar-100-python"
    fine = [f"f{i:02d}".encode() for i in range(100)]
    coarse = [f"c{i:02d}".encode() for i in range(20)]
    dump(base / "meta", {b"fine_label_names": fine, b"coarse_label_names": coarse})
    dump(base / "train", {b"data": cifar_rows([1, 2, 3]), b"fine_labels": [99, 0, 4], b"coarse_labels": [13, 4, 0]})
    dump(base / "test", {b"data": cifar_rows([4]), b"fine_labels": [1], b"coarse_labels": [1]})
    data = load_dataset("cifar100", str(tmp_path))
    assert data.train.images.shape == (3, 32, 32, 3) and data.train.num_classes == 100
    assert data.train.labels.tolist() == [99, 0, 4] and data.train.class_names[99] == "f99"
    assert data.info["coarse_labels_train"].tolist() == [13, 4, 0]
    assert data.info["coarse_class_names"][13] == "c13"
    assert data.mean == (0.507, 0.487, 0.441) and data.std == (0.267, 0.256, 0.276)


# ------------------------------------------------------------------------------------------------------------
# tiny-imagenet


@pytest.fixture
def fake_tiny_imagenet(tmp_path) -> Path:
    base = tmp_path / "ti" / "tiny-imagenet-200"
    wnids = ["n03", "n01", "n02"]
    (base / "train").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for k, wnid in enumerate(wnids):
        for j in (1, 0):
            img = np.full((64, 64, 3), 40 * k + 10 * j, np.uint8)
            save(base / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", img, "JPEG")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, wnid in enumerate(["n02", "n03", "n01", "n02"]):
        save(base / "val" / "images" / f"val_{i}.JPEG", np.full((64, 64, 3), 5 * i, np.uint8), "JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "ti"


def test_tiny_imagenet_layout(fake_tiny_imagenet, cache_dir, monkeypatch):
    data = load_dataset("tiny_imagenet", str(fake_tiny_imagenet), cache_dir=str(cache_dir))
    assert data.train.class_names == ["n01", "n02", "n03"]
    assert data.train.images.shape == (6, 64, 64, 3) and data.test.images.shape == (4, 64, 64, 3)
    assert data.train.paths[:2] == ["train/n01/images/n01_0.JPEG", "train/n01/images/n01_1.JPEG"]
    assert data.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.test.labels.tolist() == [1, 2, 0, 1]  # val_0..val_3 -> n02, n03, n01, n02
    # n03 was listed first in wnids.txt but is class 2; its image 1 has value 40*0+10 (JPEG is near-lossless on flats).
    assert abs(int(data.train.images[5].mean()) - 10) <= 2
    assert data.mean == (0.485, 0.456, 0.406) and data.std == (0.229, 0.224, 0.225)
    monkeypatch.setattr(folder_mod, "decode_images", lambda *a, **k: pytest.fail("cache was not used"))
    again = load_dataset("tiny_imagenet", str(fake_tiny_imagenet / "tiny-imagenet-200"), cache_dir=str(cache_dir))
    assert np.array_equal(again.train.images, data.train.images)


def test_tiny_imagenet_unknown_val_class(fake_tiny_imagenet, cache_dir):
    ann = fake_tiny_imagenet / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match=r"val_annotations.txt line 5 names class n99"):
        load_dataset("tiny_imagenet", str(fake_tiny_imagenet), cache_dir=str(cache_dir))


def test_tiny_imagenet_missing_class_folder(fake_tiny_imagenet, cache_dir):
    (fake_tiny_imagenet / "tiny-imagenet-200" / "wnids.txt").write_text("n01\nn02\nn03\nn04\n")
    with pytest.raises(UserError, match=r"wnids.txt lists n04 but train/n04/ is missing"):
        load_dataset("tiny_imagenet", str(fake_tiny_imagenet), cache_dir=str(cache_dir))
