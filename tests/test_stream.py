"""The streaming data path: StreamingData gives the batches, views and eval chunks of DeviceData, a streamed run
the metrics of a resident one; bad files and bad settings are one-line UserErrors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from noisyclr.augment import build_view
from noisyclr.config import load_config
from noisyclr.data.folder import list_folder, load_folder
from noisyclr.data.loader import DeviceData, Shard
from noisyclr.data.splits import open_split
from noisyclr.data.prepare import prepare_data
from noisyclr.data.stream import StreamingData, sample_mean_std
from noisyclr.data.table import FileTable, ImageTable
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.tracking import read_metrics

CLASSES, PER_CLASS, TEST_PER_CLASS, SIDE = ("cat", "dog", "emu"), 8, 3, 8


@pytest.fixture
def root(tmp_path):
    """root/{train,test}/{cat,dog,emu}/NN.png: 3 classes x 8 (train) / 3 (test) random 8x8 RGB images."""
    rng = np.random.default_rng(0)
    base = tmp_path / "imgs"
    for split, count in (("train", PER_CLASS), ("test", TEST_PER_CLASS)):
        for k, name in enumerate(CLASSES):
            folder = base / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
                img[..., k] //= 2  # a class signal, so the short training runs learn something
                Image.fromarray(img).save(folder / f"{i:02d}.png")
    return base


def pair(root, tmp_path, workers: int) -> tuple[DeviceData, StreamingData, ImageTable]:
    """The train split of ``root`` resident and streamed (``workers`` decode processes)."""
    resident = load_folder(root, cache_dir=tmp_path / "cache").train
    listed = list_folder(root).train
    listed.workers = workers
    return DeviceData(resident, "cpu"), open_split(listed, "cpu"), resident


def weak_view():
    return build_view("weak", mean=(0.5,) * 3, std=(0.25,) * 3, image_size=SIDE, padding=1, flip=True)


def assert_same_batches(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert torch.equal(x.indices, y.indices) and torch.equal(x.labels, y.labels)
        assert x.size == y.size and len(x.views) == len(y.views)
        for u, v in zip(x.views, y.views):
            assert u.dtype == torch.float32 and torch.equal(u, v)
        for u, v in zip(x.all_views, y.all_views):
            assert torch.equal(u, v)


# ------------------------------------------------------------------------------------------------------------
# (a) batches and views, (b) ordered chunks


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_and_views_equal_resident(root, tmp_path, workers):
    resident, streamed, table = pair(root, tmp_path, workers)
    assert isinstance(streamed, StreamingData)
    assert len(streamed) == len(resident) == len(CLASSES) * PER_CLASS
    assert streamed.image_shape == resident.image_shape == (3, SIDE, SIDE)
    assert streamed.num_classes == resident.num_classes == 3
    assert torch.equal(streamed.labels, resident.labels) and torch.equal(streamed.is_clean, resident.is_clean)
    idx = torch.tensor([5, 0, 23, 5])
    assert torch.equal(streamed.gather(idx), resident.gather(idx))
    assert torch.equal(streamed.gather(idx), torch.from_numpy(table.images[[5, 0, 23, 5]]).permute(0, 3, 1, 2))

    views = [weak_view(), weak_view()]
    cases = [
        dict(),
        dict(subset=torch.tensor([1, 3, 4, 8, 9, 10, 15, 16, 17, 18, 20, 22, 23]), drop_last=True),
        dict(subset=torch.tensor([1, 3, 4, 8, 9, 10, 15, 16, 17, 18, 20, 22, 23])),
        dict(subset=torch.tensor([2, 7, 11, 19, 21]), min_size=1),
        dict(shuffle=False),
    ]
    global_rng = torch.get_rng_state()
    for shard in (None, Shard(1, 2)):
        resident.shard = streamed.shard = shard
        for kwargs in cases:
            g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
            a = resident.batches(5, views, g1, **kwargs)
            b = streamed.batches(5, views, g2, **kwargs)
            assert_same_batches(a, b)
            assert torch.equal(g1.get_state(), g2.get_state())  # the generator was consumed identically
            size = len(kwargs.get("subset", range(len(resident))))
            n = streamed.num_batches(5, size, kwargs.get("drop_last", False), kwargs.get("min_size", 2))
            assert n == resident.num_batches(5, size, kwargs.get("drop_last", False), kwargs.get("min_size", 2))
        if shard is not None:  # this rank's contiguous share of a 5-row batch
            first = next(iter(streamed.batches(5, views, torch.Generator().manual_seed(7))))
            assert len(first) == 2 and first.size == 5 and first.all_views[0].shape[0] == 5
    assert torch.equal(torch.get_rng_state(), global_rng)  # the DataLoader drew nothing from torch's global RNG


def test_interleaved_passes_match_resident(root, tmp_path):
    """Two passes iterated at once (DivideMix's labeled and restarting unlabeled loaders), one abandoned part-way:
    the pool hands each its own DataLoader and the persistent workers are reused."""
    resident, streamed, _ = pair(root, tmp_path, workers=2)
    views = [weak_view()]
    created = []
    new_loader = streamed._new_loader
    streamed._new_loader = lambda: created.append(1) or new_loader()

    def divide_mix_pattern(data, g):
        out, u_iter = [], iter(())
        labeled, unlabeled = torch.arange(0, 24, 2), torch.arange(1, 24, 2)
        for epoch in range(2):
            for xb in data.batches(4, views, g, subset=labeled):
                ub = next(u_iter, None)
                if ub is None:
                    u_iter = data.batches(5, views, g, subset=unlabeled, drop_last=True)
                    ub = next(u_iter)
                out += [xb, ub]
        return out

    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert_same_batches(divide_mix_pattern(resident, g1), divide_mix_pattern(streamed, g2))
    assert torch.equal(g1.get_state(), g2.get_state())
    assert len(created) == len(streamed._idle) == 2  # two passes at a time: two DataLoaders, reused by every pass
    abandoned = streamed.batches(4, views, g2)
    next(abandoned)
    del abandoned  # closed part-way: its DataLoader goes back to the pool and the next pass resets it
    assert len(streamed._idle) == 2
    assert torch.equal(next(iter(streamed.ordered_chunks(24)))[1], resident.gather(torch.arange(24)))
    assert len(created) == 2
    streamed.close()
    assert streamed._idle == []


@pytest.mark.parametrize("workers", [0, 2])
def test_ordered_chunks_equal_resident(root, tmp_path, workers):
    resident, streamed, _ = pair(root, tmp_path, workers)
    for kwargs in (dict(), dict(rows=(3, 17))):
        a = list(resident.ordered_chunks(5, **kwargs))
        b = list(streamed.ordered_chunks(5, **kwargs))
        assert len(a) == len(b) > 0
        for (ia, xa), (ib, xb) in zip(a, b):
            assert torch.equal(ia, ib) and torch.equal(xa, xb)
    assert [len(i) for i, _ in b] == [5, 5, 4]


def test_listing_decodes_nothing_and_samples_statistics(root, tmp_path, monkeypatch):
    from noisyclr.data import folder

    calls = []
    real = folder._decode_one
    monkeypatch.setattr(folder, "_decode_one", lambda *a: calls.append(a[1]) or real(*a))
    splits = list_folder(root, image_size=6)
    assert calls == ["train/cat/00.png", "test/cat/00.png"]  # the first image of each split, for its size
    resident = load_folder(root, cache_dir=tmp_path / "cache", image_size=6)
    for split in ("train", "test"):
        table, full = getattr(splits, split), getattr(resident, split)
        assert isinstance(table, FileTable) and table.paths == full.paths
        assert np.array_equal(table.labels, full.labels) and np.array_equal(table.true_labels, full.true_labels)
        assert table.image_shape == full.image_shape == (6, 6, 3) and table.nbytes == full.images.nbytes
    # all files sampled: exactly the resident statistics; a bounded sample differs
    assert sample_mean_std(splits.train) == (resident.mean, resident.std)
    assert sample_mean_std(splits.train, limit=3) != (resident.mean, resident.std)
    # resized images stream exactly as they are cached
    streamed = open_split(splits.train, "cpu")
    assert torch.equal(streamed.gather(torch.arange(24)), DeviceData(resident.train, "cpu").gather(torch.arange(24)))


# ------------------------------------------------------------------------------------------------------------
# (c) a whole run


def run_cfg(root, tmp_path, *extra):
    return load_config("standard-ce-digits-sym50", [
        "dataset.name=folder", f"dataset.root={root}", f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.clean_holdout=3", "dataset.train_limit=18", "dataset.stream_workers=2",
        "noise.kind=sym", "noise.rate=0.5", "train.epochs=2", "train.batch_size=4", "train.eval_batch_size=7",
        "train.device=cpu", "model.backbone=small_cnn", "model.width=8", "augment.padding=1", *extra,
    ])


def test_streamed_run_equals_resident_run(root, tmp_path):
    streamed_cfg = run_cfg(root, tmp_path, "dataset.stream=on")
    data = prepare_data(streamed_cfg)
    assert isinstance(data.train, FileTable) and isinstance(data.holdout, FileTable)
    assert len(data.train) == 18 and len(data.holdout) == 3

    runs = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        runs[mode] = run_training(run_cfg(root, tmp_path, f"dataset.stream={mode}"), out)
        runs[mode].rng = torch.get_rng_state()
    drop = ("epoch_time_s", "train_time_s")
    rows = {m: [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(tmp_path / m)] for m in runs}
    assert len(rows["on"]) == 2 and "val_acc" in rows["on"][0] and "clean_auc" in rows["on"][0]
    assert rows["on"] == rows["off"]
    assert (tmp_path / "on" / "train_labels.csv").read_text() == (tmp_path / "off" / "train_labels.csv").read_text()
    a = torch.load(tmp_path / "on" / CHECKPOINT, weights_only=True)["method"]["nets"][0]
    b = torch.load(tmp_path / "off" / CHECKPOINT, weights_only=True)["method"]["nets"][0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(runs["on"].rng, runs["off"].rng)  # torch's global RNG advanced identically

    # a streamed run killed after epoch 1 and resumed ends where the uninterrupted one did
    part = tmp_path / "part"
    run_training(run_cfg(root, tmp_path, "dataset.stream=on"), part, stop_after_epoch=1)
    run_training(None, part, resume=True)
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(part)] == rows["on"]
    summary = json.loads((part / "summary.json").read_text())
    assert summary["test_acc_last"] == runs["on"].summary["test_acc_last"]


def test_auto_streams_only_above_the_limit(root, tmp_path):
    assert isinstance(prepare_data(run_cfg(root, tmp_path)).train, ImageTable)  # default auto, 8 GB limit
    assert isinstance(prepare_data(run_cfg(root, tmp_path, "dataset.stream=off")).train, ImageTable)
    small = run_cfg(root, tmp_path, "dataset.resident_limit_gb=0.000001", "dataset.mean=[0.5,0.5,0.5]",
                    "dataset.std=[0.2,0.2,0.2]", "dataset.stream_prefetch=3")
    data = prepare_data(small)
    assert isinstance(data.train, FileTable) and isinstance(data.test, FileTable)
    assert (data.train.workers, data.train.prefetch, data.test.prefetch) == (2, 3, 3)
    assert data.mean == (0.5,) * 3 and data.std == (0.2,) * 3
    # the resident-only sources ignore auto
    synthetic = load_config("standard-ce-digits-sym50", ["dataset.name=synthetic", "dataset.resident_limit_gb=0.000000001"])
    assert isinstance(prepare_data(synthetic).train, ImageTable)


# ------------------------------------------------------------------------------------------------------------
# (d) errors


@pytest.mark.parametrize("damage, workers, message", [
    ("corrupt", 2, r"^cannot read image train/dog/03\.png \(.*\); delete or replace that file$"),
    ("missing", 0, r"^image /.*/train/dog/03\.png is missing; restore it, or start a new run"),
    ("resized", 2, r"^image train/dog/03\.png is 5x5 but earlier images are 8x8; set dataset\.options\.image_size=N"),
])
def test_bad_file_while_streaming_is_a_user_error(root, tmp_path, damage, workers, message):
    _, streamed, _ = pair(root, tmp_path, workers)
    bad = root / "train" / "dog" / "03.png"
    if damage == "corrupt":
        bad.write_bytes(b"not an image")
    elif damage == "missing":
        bad.unlink()
    else:
        Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(bad)
    with pytest.raises(UserError, match=message) as info:
        for _ in streamed.batches(4, [weak_view()], torch.Generator().manual_seed(0)):
            pass
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    assert streamed._idle == []  # the failed pass's DataLoader was dropped, not pooled for reuse
    with pytest.raises(UserError, match=message):
        list(streamed.ordered_chunks(8))
    # the split still streams afterwards (the error left no DataLoader half-way)
    assert len(list(streamed.ordered_chunks(8, rows=(0, 8)))) == 1


@pytest.mark.parametrize("override, message", [
    ("dataset.stream=maybe", r"config key 'dataset.stream' must be one of auto, on, off, got 'maybe'"),
    ("dataset.stream_workers=-1", r"dataset.stream_workers must be >= 0, got -1"),
    ("dataset.stream_workers=two", r"config key 'dataset.stream_workers' must be int, got 'two'"),
    ("dataset.stream_prefetch=0", r"dataset.stream_prefetch must be at least 1, got 0"),
    ("dataset.resident_limit_gb=0", r"dataset.resident_limit_gb must be positive, got 0.0"),
    ("dataset.streem=on", r"unknown config key 'dataset.streem'; did you mean 'dataset.stream'\?"),
])
def test_bad_stream_settings_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        load_config("standard-ce-digits-sym50", [override])


def test_stream_on_needs_a_source_that_can_stream():
    cfg = load_config("standard-ce-digits-sym50", ["dataset.stream=on"])
    with pytest.raises(UserError, match=r"dataset.stream=on needs a source that can stream \(clothing1m, folder, mini_imagenet_cnwl, webvision\); "
                                        r"dataset digits is always decoded into memory, set dataset.stream=auto"):
        prepare_data(cfg)
