"""mini_imagenet_cnwl: the CNWL red/blue layout (split lists, all_images/, validation/<label>/) on a fake root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisyclr.cli import main
from noisyclr.config import load_config
from noisyclr.data.mini_imagenet import MEAN, NUM_CLASSES, STD, split_file_name
from noisyclr.data.prepare import prepare_data
from noisyclr.data.sources import can_stream, describe_sources, list_dataset, load_dataset
from noisyclr.data.table import FileTable
from noisyclr.errors import UserError

# (name, label, pixel value); web images are named by a 16-hex id, ImageNet ones by synset + 8-digit index
RED_02 = [("5922767e5677aef4.jpg", 3, 10), ("n0153282900000005.jpg", 0, 20), ("0a1b2c3d4e5f6071.png", 99, 30),
          ("n0191074700000012.jpg", 7, 40)]
BLUE_04 = [("n0191074700000012.jpg", 12, 40), ("n0153282900000005.jpg", 0, 20), ("n0185567200000001.jpg", 55, 50)]
CLEAN_VAL = [("n0153282900000500.jpg", 0, 60), ("n0185567200000600.jpg", 55, 70)]


def write_image(path: Path, value: int, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path, format="PNG")  # PNG: exact pixels


def write_list(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name} {label}\n" for name, label, _ in rows))


@pytest.fixture
def cnwl_root(tmp_path) -> Path:
    """A fake CNWL mini-ImageNet: red 0.2 and blue 0.4 lists into all_images/, clean_validation into validation/."""
    root = tmp_path / "mini-imagenet"
    for name, _, value in RED_02 + BLUE_04:
        write_image(root / "all_images" / name, value, 84)
    for name, label, value in CLEAN_VAL:
        write_image(root / "validation" / str(label) / name, value, 84)
    write_list(root / "split" / "red_noise_nl_0.2", RED_02)
    write_list(root / "split" / "blue_noise_nl_0.4", BLUE_04)
    write_list(root / "split" / "clean_validation", CLEAN_VAL)
    return root


def load(root, tmp_path, **options):
    return load_dataset("mini_imagenet_cnwl", str(root), cache_dir=str(tmp_path / "cache"), **options)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_registered_and_streamable():
    assert "mini_imagenet_cnwl" in dict(describe_sources())
    assert can_stream("mini_imagenet_cnwl")
    assert split_file_name("red", 0.4) == "red_noise_nl_0.4"
    assert split_file_name("blue", 0) == "blue_noise_nl_0.0" and split_file_name("red", 0.05) == "red_noise_nl_0.05"


def test_red_split_tables(cnwl_root, tmp_path):
    splits = load(cnwl_root, tmp_path, color="red", noise_rate=0.2)
    train, test = splits.train, splits.test
    assert len(train) == 4 and len(test) == 2
    assert train.paths == [f"all_images/{n}" for n, _, _ in RED_02]  # list order kept
    assert train.labels.tolist() == [3, 0, 99, 7]
    assert train.true_labels is None  # the noise is real: the lists carry no clean mark
    assert train.num_classes == NUM_CLASSES == 100 and test.num_classes == 100
    assert train.images.shape == (4, 84, 84, 3) and train.images[:, 0, 0, 0].tolist() == [10, 20, 30, 40]
    assert test.paths == ["validation/0/n0153282900000500.jpg", "validation/55/n0185567200000600.jpg"]
    assert test.labels.tolist() == [0, 55] and test.true_labels.tolist() == [0, 55]
    assert test.images[:, 0, 0, 0].tolist() == [60, 70]
    assert (splits.mean, splits.std) == (MEAN, STD) == ((0.4728, 0.4487, 0.4031), (0.2744, 0.2663, 0.2806))
    assert splits.info["split_file"] == "split/red_noise_nl_0.2" and "data_mean" in splits.info
    assert splits.info["imagenet_named"].tolist() == [False, True, False, True]


def test_blue_split_resized_to_32_and_cached(cnwl_root, tmp_path):
    splits = load(cnwl_root, tmp_path, color="blue", noise_rate=0.4, image_size=32)
    assert splits.train.labels.tolist() == [12, 0, 55] and splits.train.images.shape == (3, 32, 32, 3)
    assert splits.test.images.shape == (2, 32, 32, 3)
    assert splits.train.images[:, 5, 5, 0].tolist() == [40, 20, 50]  # a constant image stays constant
    # one entry per training list, one for the shared test list
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("*.npz")) == ["blue_noise_nl_0.4",
                                                                                         "clean_validation"]
    # larger files are resized to the default 84
    write_image(cnwl_root / "all_images" / "n0185567200000001.jpg", 50, 100)
    assert load(cnwl_root, tmp_path, color="blue", noise_rate=0.4).train.images.shape == (3, 84, 84, 3)


def test_parent_root_and_stream_listing(cnwl_root, tmp_path):
    listed = list_dataset("mini_imagenet_cnwl", str(cnwl_root.parent), color="red", noise_rate=0.2)
    assert isinstance(listed.train, FileTable) and listed.train.image_shape == (84, 84, 3)
    assert listed.train.paths == load(cnwl_root, tmp_path).train.paths  # defaults: red, 0.2
    assert listed.train.labels.tolist() == [3, 0, 99, 7] and listed.train.true_labels is None
    assert listed.test.true_labels.tolist() == [0, 55] and (listed.mean, listed.std) == (MEAN, STD)


def test_missing_root_and_split_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist") as err:
        load(tmp_path / "nowhere", tmp_path)
    one_line_error(err)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"has no split/ folder") as err:
        load(tmp_path / "empty", tmp_path)
    one_line_error(err)


def test_missing_split_file_names_the_present_ones(cnwl_root, tmp_path):
    with pytest.raises(UserError) as err:
        load(cnwl_root, tmp_path, color="red", noise_rate=0.6)
    message = one_line_error(err)
    assert "no split/red_noise_nl_0.6" in message and "color=red, noise_rate=0.6" in message
    assert "the split files there: blue_noise_nl_0.4, red_noise_nl_0.2" in message
    (cnwl_root / "split" / "clean_validation").unlink()
    with pytest.raises(UserError, match=r"no split/clean_validation under"):
        load(cnwl_root, tmp_path)


def test_bad_options(cnwl_root, tmp_path):
    with pytest.raises(UserError, match=r"dataset.options.color must be red or blue .*, got 'green'"):
        load(cnwl_root, tmp_path, color="green")
    for bad in (1.5, -0.1, True, "abc"):
        with pytest.raises(UserError, match=r"dataset.options.noise_rate must be a number in \[0, 1\)"):
            load(cnwl_root, tmp_path, noise_rate=bad)
    with pytest.raises(UserError, match=r"dataset.options.image_size must be a positive integer"):
        load(cnwl_root, tmp_path, image_size=0)
    with pytest.raises(UserError, match=r"unknown option dataset.options.nosie_rate .* did you mean 'noise_rate'"):
        load(cnwl_root, tmp_path, nosie_rate=0.2)


def test_missing_image_and_bad_lines(cnwl_root, tmp_path):
    (cnwl_root / "all_images" / "0a1b2c3d4e5f6071.png").unlink()
    with pytest.raises(UserError) as err:
        load(cnwl_root, tmp_path)
    message = one_line_error(err)
    assert "split/red_noise_nl_0.2 line 3 names all_images/0a1b2c3d4e5f6071.png, which is missing" in message
    (cnwl_root / "validation" / "55" / "n0185567200000600.jpg").unlink()
    with pytest.raises(UserError, match=r"split/clean_validation line 2 names validation/55/n0185567200000600.jpg, "
                                        r"which is missing"):
        load(cnwl_root, tmp_path, color="blue", noise_rate=0.4)
    (cnwl_root / "split" / "blue_noise_nl_0.4").write_text("n0191074700000012.jpg 12\n\nn0153282900000005.jpg 100\n")
    with pytest.raises(UserError, match=r"split/blue_noise_nl_0.4 line 3 has label 100, outside 0..99") as err:
        load(cnwl_root, tmp_path, color="blue", noise_rate=0.4)
    one_line_error(err)
    (cnwl_root / "split" / "blue_noise_nl_0.4").write_text("n0191074700000012.jpg\n")
    with pytest.raises(UserError, match=r"split/blue_noise_nl_0.4 line 1 is not 'name.jpg label'"):
        load(cnwl_root, tmp_path, color="blue", noise_rate=0.4)
    (cnwl_root / "split" / "blue_noise_nl_0.4").write_text("n0191074700000012.jpg x\n")
    with pytest.raises(UserError, match=r"line 1 has label 'x', not an integer"):
        load(cnwl_root, tmp_path, color="blue", noise_rate=0.4)


def preset(tmp_path, root, *extra) -> Path:
    path = tmp_path / "cnwl.yaml"
    path.write_text("\n".join([
        "description: DivideMix on CNWL mini-ImageNet, red noise 20% (test preset)",
        "inherit: dividemix-cifar10-sym50",
        "dataset:",
        "  name: mini_imagenet_cnwl",
        f"  root: {root}",
        f"  cache_dir: {tmp_path / 'cache'}",
        "  options: {color: red, noise_rate: 0.2}",
        "noise:",
        "  kind: none",
        "  rate: 0.0",
        *extra,
    ]) + "\n")
    return path


def test_preset_like_config_prepares_the_data(cnwl_root, tmp_path):
    cfg = load_config(str(preset(tmp_path, cnwl_root)), ["train.device=cpu"])
    data = prepare_data(cfg)
    assert data.name == "mini_imagenet_cnwl" and len(data.train) == 4 and len(data.test) == 2
    assert data.train.labels.tolist() == [3, 0, 99, 7] and data.train.true_labels is None
    assert data.actual_noise_rate is None and data.mean == MEAN and data.std == STD
    assert data.train.image_shape == (84, 84, 3) and data.train.num_classes == 100
    streamed = prepare_data(load_config(str(preset(tmp_path, cnwl_root)),
                                        ["train.device=cpu", "dataset.stream=on", "dataset.options.image_size=32"]))
    assert isinstance(streamed.train, FileTable) and streamed.train.image_shape == (32, 32, 3)
    assert streamed.train.labels.tolist() == [3, 0, 99, 7] and streamed.mean == MEAN


def test_cli_exit_code_2(cnwl_root, tmp_path, capsys):
    code = main(["train", str(preset(tmp_path, cnwl_root)), "dataset.options.noise_rate=0.8", "train.device=cpu",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "no split/red_noise_nl_0.8" in lines[0] and "blue_noise_nl_0.4, red_noise_nl_0.2" in lines[0]


def test_84_pixels_give_512_features_where_the_seed_pool_gives_2048():
    """The seed's pooling mismatch (docs/data.md): an 84x84 input leaves an 11x11 map after layer4; the seed's fixed
    avg_pool2d(4) makes it 2x2x512 = 2048 features, our global average pool 512."""
    import torch
    import torch.nn.functional as F

    from noisyclr.models import preact_resnet18

    net = preact_resnet18().eval()
    x = torch.zeros(1, 3, 84, 84)
    with torch.no_grad():
        h = x
        for i in range(net.num_stages):
            h = net.stage(i, h)
        assert h.shape == (1, 512, 11, 11)
        assert torch.flatten(F.avg_pool2d(h, 4), 1).shape == (1, 2048)  # the seed's Linear(512, C) cannot take it
        assert net.pool(h).shape == (1, 512) == net(x).shape and net.feat_dim == 512
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 512)  # image_size=32: the CIFAR geometry (4x4 map)
