"""OOD label noise (noisyclr/data/ood.py): the bookkeeping of the injection, its composition with ID noise, the class
subset, the pools (folder, ImageNet32 batches, a dataset source), train_labels.csv and the one-line errors."""

import csv
import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from noisyclr.cli import main
from noisyclr.config import load_config
from noisyclr.data import ood
from noisyclr.data.loader import DeviceData
from noisyclr.data.noise import noise_rate, sym_noise_dividemix, sym_noise_exclusive
from noisyclr.data.prepare import (LABELS_FILE, check_saved_labels, labels_csv_text, prepare_data, save_labels,
                                   split_clean_holdout)
from noisyclr.data.table import ImageTable
from noisyclr.errors import UserError

C = 4


def id_table(n=200, shape=(6, 6, 3)):
    """Row i: every pixel of channel 0 is i % 256, channel 1 is 0 (pool images have 255 there)."""
    images = np.zeros((n,) + shape, np.uint8)
    images[..., 0] = (np.arange(n) % 256)[:, None, None]
    labels = np.arange(n) % C
    return ImageTable(images, labels, labels.copy(), [f"c{k}" for k in range(C)])


def marked_pool(m=100, shape=(6, 6, 3)):
    """Pool image j: channel 0 is j, channel 1 is 255 (the OOD mark)."""
    images = np.zeros((m,) + shape, np.uint8)
    images[..., 0] = np.arange(m)[:, None, None]
    images[..., 1] = 255
    return ood.array_pool("marked", images)


def inject(table, pool, *, ood_rate=0.2, kind="sym", rate=0.2, seed=7, exclude_true=False):
    return ood.apply_ood_noise(table, pool, ood_rate=ood_rate, kind=kind, rate=rate, seed=seed,
                               dataset_name="synthetic", exclude_true=exclude_true)


# --------------------------------------------------------------------------------------------------------------
# bookkeeping and composition


@pytest.mark.parametrize("exclude_true", [False, True])
def test_injection_bookkeeping_and_id_composition(exclude_true):
    table, pool = id_table(), marked_pool()
    out = inject(table, pool, exclude_true=exclude_true)
    slots = np.flatnonzero(out.is_ood)
    assert len(slots) == int(0.2 * 200) == 40
    # images: the OOD slots hold pool images, each pool image at most once; the others are untouched
    assert (out.images[slots][..., 1] == 255).all()
    assert len(np.unique(out.images[slots][:, 0, 0, 0])) == 40
    rest = np.flatnonzero(~out.is_ood)
    assert np.array_equal(out.images[rest], table.images[rest]) and (out.images[rest][..., 1] == 0).all()
    assert not np.shares_memory(out.images, table.images)
    # labels kept at the OOD slots, true label -1 there
    assert np.array_equal(out.labels[slots], table.labels[slots])
    assert (out.true_labels[slots] == -1).all() and np.array_equal(out.true_labels[rest], table.true_labels[rest])
    # ID noise: the project's sym generator at r / (1 - rho) over the non-OOD slots, in their order
    generator = sym_noise_exclusive if exclude_true else sym_noise_dividemix
    assert np.array_equal(out.labels[rest], generator(table.true_labels[rest], 0.2 / 0.8, C, 7))
    changed = int(np.sum(out.labels[rest] != table.labels[rest]))
    if exclude_true:  # every selected slot changes: exactly int(0.25 * 160) = 40 = r * N
        assert changed == int(0.25 * 160) == 40
        assert noise_rate(out) == (40 + 40) / 200
    else:  # a selected slot may redraw its own label
        assert 20 < changed < 40
        assert noise_rate(out) == (40 + changed) / 200
    # the device view: is_ood as a bool tensor, and an OOD row is never clean
    dev = DeviceData(out, "cpu")
    assert dev.is_ood.dtype == torch.bool and torch.equal(dev.is_ood, torch.from_numpy(out.is_ood))
    assert not dev.is_clean[dev.is_ood].any()
    assert DeviceData(table, "cpu").is_ood is None
    # subsets carry the flags
    assert np.array_equal(out.subset(np.arange(10, 30)).is_ood, out.is_ood[10:30])


def test_reproducible_from_the_seed_and_different_for_another():
    table, pool = id_table(), marked_pool()
    a, b, c = inject(table, pool, seed=3), inject(table, pool, seed=3), inject(table, pool, seed=4)
    for field in ("images", "labels", "true_labels", "is_ood"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.is_ood, c.is_ood)
    # the slots are exactly those ood_slots draws from default_rng(seed)
    slots, _ = ood.ood_slots(200, 0.2, 3)
    assert np.array_equal(np.flatnonzero(a.is_ood), slots)


def test_noise_file_gives_every_slot_its_label(tmp_path):
    table, pool = id_table(n=40), marked_pool()
    file = tmp_path / "noisy.json"
    file.write_text(str([(k + 1) % C for k in range(40)]))
    out = ood.apply_ood_noise(table, pool, ood_rate=0.25, kind="file", rate=0.0, seed=0, dataset_name="synthetic",
                              file=str(file))
    assert out.is_ood.sum() == 10 and np.array_equal(out.labels, (np.arange(40) + 1) % C)


def test_bad_rates_and_small_pool():
    table = id_table()
    with pytest.raises(UserError, match=r"noise.rate \+ noise.ood_rate must be at most 1.*0.6 \+ 0.5"):
        inject(table, marked_pool(), ood_rate=0.5, rate=0.6)
    with pytest.raises(UserError, match=r"noise.ood_rate must be in \[0, 1\)"):
        inject(table, marked_pool(), ood_rate=1.0, rate=0.0)
    with pytest.raises(UserError, match="has 30 images, fewer than the 40 OOD slots"):
        inject(table, marked_pool(30))
    # r + rho = 1 exactly: every non-OOD slot is selected
    out = inject(table, marked_pool(), ood_rate=0.2, rate=0.8, exclude_true=True)
    assert (out.labels[~out.is_ood] != table.labels[~out.is_ood]).all()


# --------------------------------------------------------------------------------------------------------------
# image fitting, class subsets, pools


def test_fit_images_converts_channels_and_size():
    rgb = np.zeros((2, 4, 6, 3), np.uint8)
    rgb[0] = (10, 20, 30)
    rgb[1] = (200, 100, 50)
    grey = ood.fit_images(rgb, (2, 3, 1))
    assert grey.shape == (2, 2, 3, 1)
    want = [Image.fromarray(img).convert("L").getpixel((0, 0)) for img in rgb]  # ITU-R 601-2 luma
    assert (grey[0] == want[0]).all() and (grey[1] == want[1]).all() and want[0] == 18
    back = ood.fit_images(grey, (5, 5, 3))
    assert back.shape == (2, 5, 5, 3) and (back[..., 0] == back[..., 2]).all() and (back[0] == want[0]).all()
    assert np.array_equal(ood.fit_images(rgb, (4, 6, 3)), rgb)


def test_keep_classes_relabels_in_the_order_given():
    labels = np.array([0, 3, 1, 2, 3, 1, 0])
    table = ImageTable(np.arange(7, dtype=np.uint8).reshape(7, 1, 1, 1), labels, labels.copy(),
                       ["zero", "one", "two", "three"])
    sub = ood.keep_classes(table, [3, 1], "toy")
    assert sub.images[:, 0, 0, 0].tolist() == [1, 2, 4, 5]  # rows in dataset order
    assert sub.labels.tolist() == [0, 1, 0, 1] and sub.true_labels.tolist() == [0, 1, 0, 1]
    assert sub.class_names == ["three", "one"]
    with pytest.raises(UserError, match=r"dataset.classes has class 4, but toy has classes 0..3"):
        ood.keep_classes(table, [1, 4], "toy")
    pool = ood.class_pool(table, [3, 1])
    assert pool.size == 3 and pool.take(np.arange(3), (1, 1, 1))[:, 0, 0, 0].tolist() == [0, 3, 6]


def digits_cfg(*extra):
    return load_config("standard-ce-digits-sym50", ["dataset.classes=[0,1,2,3,4]", "noise.rate=0.2",
                                                    "noise.ood_rate=0.2", "noise.ood_source=classes", *extra])


def test_digits_proxy_one_config(tmp_path):
    """Digits 0-4 in distribution, 5-9 as the OOD pool, 20% OOD + 20% sym: one config."""
    from noisyclr.data.digits import load_digits

    data = prepare_data(digits_cfg())
    source = load_digits()
    train = data.train
    kept = np.isin(source.train.labels, range(5))
    assert len(train) == kept.sum() and train.num_classes == 5 and train.class_names == list("01234")
    assert set(data.test.labels.tolist()) == set(range(5)) and len(data.test) == np.isin(source.test.labels,
                                                                                          range(5)).sum()
    assert train.is_ood.sum() == int(0.2 * len(train))
    # an OOD slot holds a training image of a digit 5-9; the other slots hold the 0-4 images in source order
    pool = {img.tobytes() for img in source.train.images[~kept]}
    assert all(img.tobytes() in pool for img in train.images[train.is_ood])
    assert np.array_equal(train.images[~train.is_ood], source.train.images[kept][~train.is_ood])
    assert data.actual_noise_rate > 0.2 + 0.15
    # train_labels.csv says which rows are OOD; a resume with the same config passes, with another it fails
    save_labels(train, tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / LABELS_FILE).read_text())))
    assert list(rows[0]) == ["index", "given_label", "true_label", "is_ood"]
    assert [int(r["is_ood"]) for r in rows] == train.is_ood.astype(int).tolist()
    assert all(r["true_label"] == "-1" for r in rows if r["is_ood"] == "1")
    check_saved_labels(prepare_data(digits_cfg()).train, tmp_path)
    with pytest.raises(UserError, match="differ from its train_labels.csv"):
        check_saved_labels(prepare_data(digits_cfg("noise.seed=5")).train, tmp_path)
    with pytest.raises(UserError, match="was started with OOD noise .*has is_ood column"):
        check_saved_labels(prepare_data(digits_cfg("noise.ood_rate=0")).train, tmp_path)


def test_without_ood_noise_nothing_changes(tmp_path):
    """ood_rate 0: the labels, the CSV (no is_ood column, as before) and the device view are as they were."""
    from noisyclr.data.digits import load_digits

    data = prepare_data(load_config("standard-ce-digits-sym50"))
    assert data.train.is_ood is None and DeviceData(data.train, "cpu").is_ood is None
    assert np.array_equal(data.train.labels, sym_noise_dividemix(load_digits().train.labels, 0.5, 10, 123))
    text = labels_csv_text(data.train)
    assert text.startswith("index,given_label,true_label\n0,")
    (tmp_path / LABELS_FILE).write_text(text)  # a file written before the column existed
    check_saved_labels(data.train, tmp_path)
    with pytest.raises(UserError, match="was started without OOD noise"):
        check_saved_labels(prepare_data(digits_cfg()).train, tmp_path)


def test_clean_holdout_never_takes_an_ood_row():
    table = inject(id_table(), marked_pool())
    rest, held = split_clean_holdout(table, 50, seed=0)
    assert held.is_ood is None and (held.images[..., 1] == 0).all() and (held.labels == held.true_labels).all()
    assert rest.is_ood.sum() == 40 and len(rest) == 150


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_pool_lists_recursively_and_resizes(tmp_path):
    root = tmp_path / "places"
    _write(root / "a.png", np.full((5, 7, 3), (255, 0, 0), np.uint8))  # flat files of any size
    _write(root / "b.jpg", np.full((20, 20, 3), (0, 0, 255), np.uint8))
    _write(root / "sub" / "c.png", np.full((3, 3), 77, np.uint8))  # grey, in a sub-folder
    _write(root / ".hidden" / "d.png", np.zeros((2, 2, 3), np.uint8))
    (root / "README.txt").write_text("not an image")
    (root / ".e.png").write_bytes(b"")
    pool = ood.folder_pool(root)
    assert pool.size == 3
    got = pool.take(np.array([2, 0, 1]), (8, 8, 3))  # sorted: a.png, b.jpg, sub/c.png
    assert got.shape == (3, 8, 8, 3)
    assert (got[0] == 77).all() and (got[1] == (255, 0, 0)).all() and (np.abs(got[2].astype(int) - (0, 0, 255)) <= 2).all()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no image files"):
        ood.folder_pool(tmp_path / "empty")
    with pytest.raises(UserError, match="does not exist or is not a folder"):
        ood.folder_pool(tmp_path / "missing")


def test_synthetic_with_folder_pool_through_the_config(tmp_path):
    root = tmp_path / "pool"
    for k in range(30):
        _write(root / f"{k:02d}.png", np.full((16, 12, 3), (k * 8, 255, 0), np.uint8))
    cfg = load_config("standard-ce-digits-sym50", [
        "dataset.name=synthetic", "dataset.options={num_classes: 3, image_size: 8, train_size: 48, test_size: 12}",
        "noise.rate=0.25", "noise.ood_rate=0.5", "noise.ood_source=folder", f"noise.ood_root={root}"])
    train = prepare_data(cfg).train
    assert train.is_ood.sum() == 24 and train.image_shape == (8, 8, 3)
    assert (train.images[train.is_ood][..., 1] == 255).all()  # the pool's green mark, resized to 8x8
    assert len({int(v) for v in train.images[train.is_ood][:, 0, 0, 0]}) == 24
    # fewer pool images than OOD slots
    small = load_config("standard-ce-digits-sym50", [
        "dataset.name=synthetic", "dataset.options={num_classes: 3, image_size: 8, train_size: 100}",
        "noise.ood_rate=0.5", "noise.ood_source=folder", f"noise.ood_root={root}"])
    with pytest.raises(UserError, match="has 30 images, fewer than the 50 OOD slots"):
        prepare_data(small)


def _batch(n, offset):
    """n images of 32x32, image j all (offset + j, 2 * j, 255 - j) stored channel-major as ImageNet32 does."""
    rgb = np.stack([offset + np.arange(n), 2 * np.arange(n), 255 - np.arange(n)], axis=1).astype(np.uint8)
    return np.repeat(rgb[:, :, None], 1024, axis=2).reshape(n, 3072)


def test_imagenet32_batches(tmp_path):
    root = tmp_path / "imagenet32"
    root.mkdir()
    with open(root / "train_data_batch_1", "wb") as f:
        pickle.dump({"data": _batch(5, 0), "labels": [1, 2, 3, 4, 5], "mean": np.zeros(3072)}, f, protocol=2)
    np.savez(root / "train_data_batch_2.npz", data=_batch(4, 100), labels=np.arange(4) + 1)
    (root / "val_data").write_bytes(b"not read")
    pool = ood.imagenet32_pool(root)
    assert pool.size == 9
    got = pool.take(np.array([4, 5, 8]), (32, 32, 3))  # across the batch boundary
    assert got[:, 0, 0].tolist() == [[4, 8, 251], [100, 0, 255], [103, 6, 252]] and (got == got[:, :1, :1]).all()
    assert pool.take(np.array([0]), (8, 8, 1)).shape == (1, 8, 8, 1)
    (root / "train_data_batch_3").write_bytes(pickle.dumps(os.system))
    with pytest.raises(UserError, match="is not a plain ImageNet32 batch: it asks for"):
        ood.imagenet32_pool(root)
    with pytest.raises(UserError, match="has no train_data_batch_<k> files"):
        ood.imagenet32_pool(tmp_path)


def test_a_dataset_source_as_pool():
    """Digits (grey 8x8) as OOD images for a 3-channel synthetic set: converted to RGB, only the asked classes."""
    cfg = load_config("standard-ce-digits-sym50", [
        "dataset.name=synthetic", "dataset.options={num_classes: 3, image_size: 8, train_size: 60}",
        "noise.kind=none", "noise.ood_rate=0.3", "noise.ood_source=digits", "noise.ood_classes=[7]"])
    from noisyclr.data.digits import load_digits

    train = prepare_data(cfg).train
    sevens = {np.repeat(img, 3, axis=2).tobytes() for img in load_digits().train.images[load_digits().train.labels == 7]}
    assert train.is_ood.sum() == 18 and all(img.tobytes() in sevens for img in train.images[train.is_ood])


def test_folder_dataset_class_subset_proxy(tmp_path):
    """The CIFAR-10 JPEG OOD proxy in small: a folder source, 2 classes in distribution, the other 2 as OOD."""
    root = tmp_path / "jpg"
    for split, n in (("train", 8), ("test", 2)):
        for k, name in enumerate(["ant", "bee", "cat", "dog"]):
            for i in range(n):
                _write(root / split / name / f"{i}.png", np.full((8, 8, 3), (k * 60, i * 20, 7), np.uint8))
    over = [f"dataset.root={root}", "dataset.name=folder", f"dataset.cache_dir={tmp_path / 'cache'}",
            "dataset.classes=[1,3]", "noise.ood_rate=0.25", "noise.rate=0.25", "noise.ood_source=classes"]
    data = prepare_data(load_config("standard-ce-digits-sym50", over))
    train = data.train
    assert train.class_names == ["bee", "dog"] and len(train) == 16 and train.is_ood.sum() == 4
    assert set(train.images[train.is_ood][:, 0, 0, 0].tolist()) <= {0, 120}  # ant and cat images
    assert set(train.images[~train.is_ood][:, 0, 0, 0].tolist()) == {60, 180}
    assert sorted(data.test.paths) == sorted(f"test/{c}/{i}.png" for c in ("bee", "dog") for i in range(2))
    assert "is_ood" in labels_csv_text(train).splitlines()[0].split(",")
    # a folder source with a folder pool (a JPEG CIFAR with Places365 images): the pool is another folder
    places = load_config("standard-ce-digits-sym50", over[:3] + [
        "noise.ood_rate=0.25", "noise.ood_source=folder", f"noise.ood_root={root / 'train' / 'cat'}"])
    mixed = prepare_data(places).train
    assert len(mixed) == 32 and mixed.is_ood.sum() == 8 and (mixed.images[mixed.is_ood][:, 0, 0, 0] == 120).all()
    # a folder that would stream cannot take OOD images
    with pytest.raises(UserError, match="streams from disk.*set dataset.stream=off"):
        prepare_data(load_config("standard-ce-digits-sym50", over + ["dataset.resident_limit_gb=0.000000001"]))


# --------------------------------------------------------------------------------------------------------------
# the config and the command line: one line, exit 2, no run folder


TINY = ["dataset.name=synthetic", "dataset.options={num_classes: 6, image_size: 8, train_size: 48, test_size: 24}",
        "train.epochs=1", "train.batch_size=16", "train.device=cpu", "model.width=8", "log.progress=off"]
SUBSET = ["dataset.classes=[0,1,2]", "noise.ood_source=classes"]

BAD = [
    (["noise.ood_rate=1", *SUBSET], "noise.ood_rate must be in [0, 1), got 1.0; e.g. noise.ood_rate=0.0"),
    (["noise.ood_rate=0.6", "noise.rate=0.5", *SUBSET], "noise.rate + noise.ood_rate must be at most 1"),
    (["noise.ood_rate=0.2"], "noise.ood_rate=0.2 needs noise.ood_source"),
    (["noise.ood_rate=0.2", "noise.ood_source=classes"], "noise.ood_source=classes draws OOD images from the classes"),
    (["noise.ood_rate=0.2", "noise.ood_source=folder", "noise.ood_root={tmp}/nowhere"],
     "noise.ood_root {tmp}/nowhere does not exist or is not a folder"),
    (["noise.ood_rate=0.2", "noise.ood_source=folder"], "noise.ood_source=folder needs noise.ood_root=PATH"),
    (["noise.ood_rate=0.2", "noise.ood_source=imagenett", "noise.ood_root={tmp}"], "did you mean 'imagenet32'"),
    (["noise.ood_rate=0.2", "noise.ood_source=cifar100"], "dataset cifar100 needs a root folder; set noise.ood_root=PATH"),
    (["noise.ood_rate=0.2", "noise.ood_source=digits", "noise.ood_options={size: 3}"],
     "unknown option noise.ood_options.size for dataset digits"),
    (["noise.ood_rate=0.2", "noise.ood_source=synthetic"], "is the training dataset itself"),
    (["noise.ood_rate=0.2", "noise.ood_classes=[2,5]", *SUBSET], "noise.ood_classes and dataset.classes share class 2"),
    (["noise.ood_rate=0.2", "noise.ood_source=folder", "noise.ood_root={tmp}", "noise.ood_classes=[1]"],
     "noise.ood_classes applies to classes or a dataset source"),
    (["noise.ood_rate=0.2", "dataset.stream=on", *SUBSET], "set dataset.stream=off"),
    (["noise.ood_sorce=classes"], "did you mean 'noise.ood_source'"),
    (["dataset.classes=[1,1]"], "dataset.classes must list at least 2 different classes"),
    (["dataset.classes=[0,-1]"], "dataset.classes must be >= 0"),
    (["dataset.classes=[0,9]"], "dataset.classes has class 9, but synthetic has classes 0..5"),
    (["noise.ood_rate=0.5", "noise.ood_classes=[4]", *SUBSET], "has 8 images, fewer than the 12 OOD slots"),
]


@pytest.mark.parametrize("extra, needle", BAD, ids=[" ".join(e) for e, _ in BAD])
def test_bad_ood_config_is_one_line_exit_2(tmp_path, capsys, extra, needle):
    out = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code = main(["train", "standard-ce-digits-sym50", *TINY, *args, "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle.replace("{tmp}", str(tmp_path)) in lines[0], lines[0]
    assert not out.exists()
