"""Run folders are safe: nothing a user had is overwritten, one writer at a time, no half-made folder left behind,
and faults (torn logs, foreign checkpoints, read-only or full disks) are one line with the earlier state intact."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from noisyclr.cli import main
from noisyclr.config import load_config
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.rundir import LOCK, MARKER
from noisyclr.tracking import read_metrics
from test_cli import _write_folder  # the tiny image folder the CLI tests use

TINY = ["dataset.name=synthetic",
        "dataset.options={num_classes: 4, image_size: 8, channels: 3, train_size: 96, test_size: 48, seed: 0}",
        "noise.kind=sym", "noise.rate=0.5", "train.epochs=3", "train.batch_size=16", "train.device=cpu",
        "train.eval_batch_size=32", "model.width=8", "log.progress=off"]
PRESET = "standard-ce-digits-sym50"
DROP = ("epoch_time_s", "train_time_s")


def tiny(*extra):
    return load_config(PRESET, TINY + list(extra))


def strip(rows):
    return [{k: v for k, v in r.items() if k not in DROP} for r in rows]


def one_line_error(capsys, args, code=2):
    got = main(args)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != LOCK}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-epoch run (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run_training(tiny(), out)
    return out


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------- --out rules


def test_out_at_a_file_or_below_one(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    line = one_line_error(capsys, ["train", PRESET, *TINY, "--out", str(f)])
    assert "is an existing file, not a folder" in line
    line = one_line_error(capsys, ["train", PRESET, *TINY, "--out", str(f / "run")])
    assert "which is a file" in line
    assert f.read_text() == "mine\n"


def test_out_at_a_folder_of_someone_elses_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("config.yaml", "summary.json", "metrics.jsonl"):
        (mine / name).write_text(f"my own {name}\n")
    before = snapshot(mine)
    line = one_line_error(capsys, ["train", PRESET, *TINY, "--out", str(mine)])
    assert "is not empty and is not a noisyclr run" in line and "config.yaml" in line
    assert snapshot(mine) == before and not (mine / LOCK).exists()


def test_out_at_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert run_training(tiny("train.epochs=1"), out).summary["epochs"] == 1
    assert (out / MARKER).is_file()


def test_out_at_a_finished_or_half_written_run(tmp_path, capsys, finished):
    before = snapshot(finished)
    line = one_line_error(capsys, ["train", PRESET, *TINY, "--out", str(finished)])
    assert "already holds a finished run (3 epochs)" in line and "--resume" in line
    assert snapshot(finished) == before
    # killed during its first epoch: marked, config and labels written, no checkpoint
    half = copy_run(finished, tmp_path / "half")
    for name in (CHECKPOINT, "summary.json", "metrics.jsonl"):
        (half / name).unlink()
    line = one_line_error(capsys, ["train", PRESET, *TINY, "--out", str(half)])
    assert f"already holds an unfinished run; continue it with --resume {half}" in line
    # ... and --resume starts it again from epoch 0 with its saved config: the same run as never interrupted
    assert main(["train", "--resume", str(half)]) == 0
    assert strip(read_metrics(half)) == strip(read_metrics(finished))


def test_resume_with_out_elsewhere_or_shortening_a_finished_run(tmp_path, capsys, finished):
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    line = one_line_error(capsys, ["train", "--resume", str(run), "--out", str(tmp_path / "other")])
    assert "drop --out" in line
    for extra in (["train.epochs=2"], ["train.epochs=3"], []):
        line = one_line_error(capsys, ["train", "--resume", str(run), *extra])
        assert "has finished its 3 epochs" in line and "N > 3" in line
    assert snapshot(run) == before and not (tmp_path / "other").exists()
    with pytest.raises(UserError, match="has finished its 3 epochs"):
        run_training(None, run, resume=True, overrides=["train.epochs=2"])


def test_unfinished_run_cannot_resume_shorter_than_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    run_training(tiny(), out, stop_after_epoch=2)
    with pytest.raises(UserError, match="after epoch 2, more than train.epochs=1"):
        run_training(None, out, resume=True, overrides=["train.epochs=1"])
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]


# ------------------------------------------------------------------------------------------------- no half-made run


def test_error_after_the_folder_was_made_leaves_nothing(tmp_path, capsys):
    root = tmp_path / "data"
    _write_folder(root, corrupt=True)
    args = ["train", PRESET, "dataset.name=folder", f"dataset.root={root}", f"dataset.cache_dir={tmp_path / 'c'}",
            "train.epochs=1", "train.batch_size=4", "train.device=cpu", "model.width=8"]
    line = one_line_error(capsys, [*args, "--out", str(tmp_path / "new")])
    assert "broken.png" in line and not (tmp_path / "new").exists()
    given = tmp_path / "given"  # an empty folder the user made stays, empty
    given.mkdir()
    one_line_error(capsys, [*args, "--out", str(given)])
    assert given.is_dir() and list(given.iterdir()) == []


def test_checkpoint_of_another_shape_is_one_line(tmp_path, capsys, finished):
    run = copy_run(finished, tmp_path / "run")
    good = (run / CHECKPOINT).read_bytes()
    torch.save({"epoch": 3, "method": {}}, run / CHECKPOINT)
    for args in (["train", "--resume", str(run), "train.epochs=4"], ["evaluate", str(run)]):
        assert "is not a noisyclr checkpoint" in one_line_error(capsys, args)
    # a standard (one-network) checkpoint in a DivideMix run folder
    dm = tmp_path / "dm"
    run_training(load_config("dividemix-digits-sym50", TINY + ["method.warmup_epochs=1"]), dm, stop_after_epoch=1)
    dm_ckpt = (dm / CHECKPOINT).read_bytes()
    (dm / CHECKPOINT).write_bytes(good)
    for args in (["train", "--resume", str(dm)], ["evaluate", str(dm)]):
        line = one_line_error(capsys, args)
        assert "does not fit this run's method dividemix" in line and "start a new run with --out" in line
    (dm / CHECKPOINT).write_bytes(dm_ckpt)  # the real one still resumes
    assert main(["train", "--resume", str(dm)]) == 0


def test_torn_last_line_of_metrics_is_redone_on_resume(tmp_path, finished):
    out = tmp_path / "run"
    run_training(tiny(), out, stop_after_epoch=2)
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "test_a')  # died while appending
    assert len(read_metrics(out)) == 2
    run_training(None, out, resume=True)
    assert strip(read_metrics(out)) == strip(read_metrics(finished))
    text = (out / "metrics.jsonl").read_text()  # a damaged line before the end is not silently dropped
    lines = text.splitlines()
    (out / "metrics.jsonl").write_text("\n".join([lines[0], "{broken", *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="line 2 is not a JSON object"):
        read_metrics(out)


# ------------------------------------------------------------------------------------------------- disks


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the CI and dev machines run as root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """A file that takes all the free space of ``folder``'s file system."""
    filler = folder / f"filler-{uuid.uuid4().hex}"
    with filler.open("wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return filler


def test_full_disk_during_a_checkpoint_then_resume_is_bit_identical(tmp_path, capsys, finished):
    with mounted_tmpfs(tmp_path / "fs", "8m") as fs:
        out = fs / "run"
        args = ["train", PRESET, *TINY, "--out", str(out)]
        filler = _fill(fs)  # full before the run starts: one line, nothing left
        line = one_line_error(capsys, args)
        assert "no space left on the device" in line and not out.exists()
        filler.unlink()
        run_training(tiny(), out, stop_after_epoch=1)
        ckpt = (out / CHECKPOINT).read_bytes()
        filler = _fill(fs)
        line = one_line_error(capsys, ["train", "--resume", str(out)])
        assert "no space left on the device" in line and f"--resume {out}" in line and "intact" in line
        assert (out / CHECKPOINT).read_bytes() == ckpt  # the earlier checkpoint is untouched ...
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # ... and no temp file is left
        line = one_line_error(capsys, ["evaluate", str(out)])
        assert "no space left on the device" in line and "eval.json" in line
        filler.unlink()
        assert main(["train", "--resume", str(out)]) == 0  # ... and resumes to the uninterrupted run
        capsys.readouterr()
        assert strip(read_metrics(out)) == strip(read_metrics(finished))
        a = torch.load(out / CHECKPOINT, weights_only=True)["method"]["nets"][0]
        b = torch.load(finished / CHECKPOINT, weights_only=True)["method"]["nets"][0]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_read_only_file_system(tmp_path, capsys, finished):
    with mounted_tmpfs(tmp_path / "fs", "16m") as fs:
        run = copy_run(finished, fs / "done")
        before = snapshot(run)
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        for args in (["train", PRESET, *TINY, "--out", str(fs / "new")],
                     ["train", "--resume", str(run), "train.epochs=4"],
                     ["evaluate", str(run)]):
            line = one_line_error(capsys, args)
            assert "read-only" in line, (args, line)
        assert snapshot(run) == before


# ------------------------------------------------------------------------------------------------- processes


def _default_sigint():
    # a suite started as a background job (`make test &`, nohup) inherits SIGINT ignored, and so would the run:
    # Python turns SIGINT into KeyboardInterrupt only when it starts with the default disposition
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "noisyclr", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint, **kw)


def _wait_for(pred, proc, timeout=120):
    t0 = time.monotonic()
    while not pred():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


LONG = ["dataset.options={num_classes: 4, image_size: 8, channels: 3, train_size: 4000, test_size: 48, seed: 0}",
        "train.epochs=50", "train.threads=1"]


def test_one_writer_per_run_folder_and_a_killed_runs_lock_does_not_block(tmp_path):
    out = tmp_path / "run"
    first = _start(["train", PRESET, *TINY, *LONG, "--out", str(out)])
    try:
        _wait_for(lambda: (out / MARKER).is_file(), first)
        for args in (["train", PRESET, *TINY, "--out", str(out)], ["train", "--resume", str(out)]):
            second = subprocess.run([sys.executable, "-m", "noisyclr", *args], capture_output=True, text=True,
                                    timeout=120)
            assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
            assert "is in use by another noisyclr run" in second.stderr and f"pid {first.pid}" in second.stderr
        _wait_for(lambda: (out / CHECKPOINT).is_file(), first)
    finally:
        first.kill()  # kill -9: the kernel releases its lock
        first.wait()
    rows = len(read_metrics(out))
    done = subprocess.run([sys.executable, "-m", "noisyclr", "train", "--resume", str(out), "train.epochs=" +
                           str(rows + 1)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["epoch"] for r in read_metrics(out)] == list(range(1, rows + 2))


def test_ctrl_c_before_the_first_checkpoint_keeps_nothing_and_says_so(tmp_path):
    out = tmp_path / "run"
    proc = _start(["train", PRESET, *TINY, *LONG, "--out", str(out)])
    _wait_for(lambda: (out / "config.yaml").is_file(), proc)  # written just before the first epoch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.count("\n") == 1, err
    assert "interrupted before the first epoch was saved; nothing was kept" in err
    assert not out.exists()
