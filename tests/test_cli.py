"""The command line: verbs, and bad input as one line on stderr with exit code 2 and nothing lost."""

import json
import subprocess
import sys

import pytest

from noisyclr.cli import main

TINY = [
    "dataset.name=synthetic",
    "dataset.options={num_classes: 3, image_size: 8, train_size: 48, test_size: 24}",
    "train.epochs=1",
    "train.batch_size=16",
    "train.device=cpu",
    "model.width=8",
]


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, needle):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and needle in lines[0], lines[0]


def test_train_evaluate_presets_datasets(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "standard-ce-digits-sym50", *TINY, "--out", str(out))
    assert code == 0 and "test acc last" in stdout
    code, stdout, _ = run_cli(capsys, "evaluate", str(out))
    assert code == 0
    evaluated = json.loads(stdout)
    summary = json.loads((out / "summary.json").read_text())
    assert evaluated["test_acc"] == pytest.approx(summary["test_acc_last"])
    code, stdout, _ = run_cli(capsys, "presets")
    assert code == 0 and "standard-ce-digits-sym50" in stdout
    code, stdout, _ = run_cli(capsys, "datasets")
    assert code == 0 and "folder" in stdout and "digits" in stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "standard-ce-digits-sym50", "train.lrr=1", "--out", "{tmp}/x"], "did you mean 'train.lr'"),
        (["train", "standard-ce-digits-sym50", "noise.rate=2", "--out", "{tmp}/x"], "noise.rate must be in [0, 1]"),
        (["train", "standard-ce-digits-sym50", "dataset.name=folder", "dataset.root={tmp}/nowhere", "--out", "{tmp}/x"], "nowhere"),
        (["train", "no-such-preset", "--out", "{tmp}/x"], "no preset"),
        (["train", "standard-ce-digits-sym50"], "--out"),
        (["train", "--resume", "{tmp}/empty"], "does not exist"),
        (["evaluate", "{tmp}"], "config.yaml"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, needle)


def test_resume_without_or_with_corrupt_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "standard-ce-digits-sym50", *TINY, "--out", str(out))[0] == 0
    ckpt = out / "checkpoint.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 3])
    metrics_before = (out / "metrics.jsonl").read_text()
    code, _, err = run_cli(capsys, "train", "--resume", str(out), "train.epochs=2")
    assert_one_line_error(code, err, "corrupt")
    assert (out / "metrics.jsonl").read_text() == metrics_before  # nothing already written is lost
    ckpt.unlink()
    code, _, err = run_cli(capsys, "train", "--resume", str(out), "train.epochs=2")
    assert_one_line_error(code, err, "no checkpoint")
    code, _, err = run_cli(capsys, "train", "--resume", str(out))  # finished, and no epoch to add
    assert_one_line_error(code, err, "has finished its 1 epochs")


def test_console_script_entry_point_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "noisyclr", "train", "standard-ce-digits-sym50", "noise.rate=1.5", "--out", str(tmp_path / "x")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def _write_folder(root, corrupt=False, extra_test_class=False):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (40 * i, 100 if cls == "a" else 200, 0)).save(d / f"{i}.png")
    if corrupt:
        (root / "train" / "b" / "broken.png").write_bytes(b"not an image at all")
    if extra_test_class:
        d = root / "test" / "zebra"
        d.mkdir()
        Image.new("RGB", (8, 8)).save(d / "0.png")


FOLDER = ["dataset.name=folder", "train.epochs=1", "train.batch_size=4", "train.device=cpu", "model.width=8"]


@pytest.mark.parametrize(
    "setup, extra, needle",
    [
        ({"corrupt": True}, [], "broken.png"),
        ({"extra_test_class": True}, [], "zebra"),
        ({}, ["noise.kind=file", "noise.file={tmp}/noise.json"], "has 3 labels, expected 6"),
        ({}, ["noise.kind=file", "noise.file={tmp}/bad_range.json"], "label 7 at position 2 is outside [0, 1]"),
        ({}, ["noise.kind=asym", "noise.rate=0.4"], "asym"),
    ],
)
def test_data_errors_through_the_cli(tmp_path, capsys, setup, extra, needle):
    root = tmp_path / "data"
    _write_folder(root, **setup)
    (tmp_path / "noise.json").write_text(json.dumps([0, 1, 0]))
    (tmp_path / "bad_range.json").write_text(json.dumps([0, 1, 7, 0, 1, 0]))
    args = ["train", "standard-ce-digits-sym50", *FOLDER, f"dataset.root={root}",
            f"dataset.cache_dir={tmp_path / 'cache'}", *[a.replace("{tmp}", str(tmp_path)) for a in extra],
            "--out", str(tmp_path / "run")]
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, needle)


def test_empty_dataset_root(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "train", "standard-ce-digits-sym50", *FOLDER, f"dataset.root={tmp_path / 'empty'}",
                           "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "train")


def test_folder_dataset_trains_end_to_end(tmp_path, capsys):
    root = tmp_path / "data"
    _write_folder(root)
    code, stdout, _ = run_cli(capsys, "train", "standard-ce-digits-sym50", *FOLDER, f"dataset.root={root}",
                              f"dataset.cache_dir={tmp_path / 'cache'}", "noise.rate=0.0", "--out", str(tmp_path / "run"))
    assert code == 0
    header = (tmp_path / "run" / "train_labels.csv").read_text().splitlines()[0]
    assert header == "index,given_label,true_label,path"


def test_optional_logger_missing_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("torch")
    try:
        import torch.utils.tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    code, _, err = run_cli(capsys, "train", "standard-ce-digits-sym50", *TINY, "log.tensorboard=true", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "pip install tensorboard")
