"""Run folders: who may write one, and what is left when a run fails (no torch here, so it answers at once).

A run folder belongs to one process at a time. :class:`RunFolder` takes an exclusive ``flock`` on ``DIR/.lock``
for the whole run: a second writer (a second ``--out`` to the same folder, a ``--resume`` of a run still training)
is refused in one line while the first lives; the kernel drops the lock when its process dies, however it dies, so
a lock left by a killed run never blocks ``--resume``. A new run marks its folder with ``.noisyclr-run``, which is
how a folder that holds someone else's ``config.yaml`` is told from a run, and a half-written run (killed before its
first checkpoint) from a finished one.

The rules, checked before anything is created (:func:`check_new`, :func:`load_resume_config`):

* ``--out`` at a file, or below one: refused.
* ``--out`` at a folder holding files that no run of ours wrote: refused, nothing touched.
* ``--out`` at a run: refused, pointing at ``--resume`` (unfinished) or at a new folder (finished).
* ``--resume`` of a finished run that would not run a further epoch: refused (nothing is rewritten).
* ``--resume`` of a half-written run (marked, no checkpoint yet): starts it again from epoch 0 with its saved config.

A new run that fails before its first checkpoint (bad data found after the folder was made, Ctrl-C during the first
epoch, a full disk) removes what it created, so the same command can simply be run again (:meth:`RunFolder.discard`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from .errors import UserError

MARKER = ".noisyclr-run"
LOCK = ".lock"
CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
METRICS = "metrics.jsonl"

# what a run of any verb may leave in its folder (a folder holding only these and no marker is still not ours)
RUN_FILES = {MARKER, LOCK, CONFIG, CHECKPOINT, SUMMARY, METRICS, "train_labels.csv", "labels.csv", "eval.json",
             "encoder.pt", "model_card.json", "label_issues.csv", "issues_summary.json", "report.html",
             "tensorboard", "wandb"}


def _ours(name: str) -> bool:
    """A file a run writes, or the temporary file of an atomic write (``.NAME.xxxx.tmp``) left by a crash."""
    return name in RUN_FILES or (name.startswith(".") and name.endswith(".tmp"))


def _first_file_above(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def is_run(path: Path) -> bool:
    """Whether ``path`` holds a noisyclr run (the marker of this version, or an earlier version's checkpoint)."""
    return (path / MARKER).is_file() or (path / CHECKPOINT).is_file()


def finished_epochs(path: Path) -> int | None:
    """Epochs of a finished run (its ``summary.json``), None when the run has not finished."""
    try:
        summary = json.loads((path / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    epochs = summary.get("epochs") if isinstance(summary, dict) else None
    return epochs if isinstance(epochs, int) else None


def _holder(path: Path) -> str:
    try:
        info = json.loads((path / LOCK).read_text() or "{}")
        return f"pid {info['pid']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def check_not_in_use(path: Path) -> None:
    """UserError if another live process holds ``path``'s lock."""
    lock = path / LOCK
    if not lock.is_file():
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"{path} is in use by another noisyclr run ({_holder(path)}); wait for it to end, "
                        "or choose another --out folder") from None
    finally:
        os.close(fd)


def check_new(out_dir: str | os.PathLike) -> None:
    """Refuse an ``--out`` that would overwrite or mix with something (see the module docstring)."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is an existing file, not a folder; choose a folder path for the run")
    above = _first_file_above(path)
    if above is not None:
        raise UserError(f"--out {path} is below {above}, which is a file; choose a folder path for the run")
    if not path.is_dir():
        return
    check_not_in_use(path)
    entries = sorted(p.name for p in path.iterdir() if p.name != LOCK)
    if not entries:
        return
    if is_run(path):
        done = finished_epochs(path)
        if done is not None:
            raise UserError(f"{path} already holds a finished run ({done} epochs); choose a new --out folder, or "
                            f"extend it with --resume {path} train.epochs=N (N > {done})")
        raise UserError(f"{path} already holds an unfinished run; continue it with --resume {path}, "
                        "or choose a new --out folder")
    shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
    raise UserError(f"--out {path} is not empty and is not a noisyclr run (it holds {shown}); "
                    "choose a new or empty folder, nothing in it was touched")


# Keys that may change when a run is resumed: how long it runs and how it reports, never what it computes.
RESUMABLE_OVERRIDES = ("train.epochs", "train.device", "train.threads", "dataset.stream_workers",
                       "dataset.stream_prefetch", "log.")


def check_resume_overrides(overrides: list[str]) -> None:
    """UserError for an override that would change what a resumed run computes."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_OVERRIDES):
            raise UserError(
                f"'{key}' cannot change when resuming (only train.epochs, train.device, train.threads, "
                "dataset.stream_workers, dataset.stream_prefetch and log.*); start a new run with --out to change it"
            )


def load_resume_config(run_dir: str | os.PathLike, overrides: list[str] | None = None, *,
                       out: str | os.PathLike | None = None, check_lock: bool = True):
    """The config a ``--resume`` of ``run_dir`` continues with (saved config + ``overrides``), after refusing a
    resume that cannot continue the run (see the module docstring).

    ``out``: an ``--out`` given beside ``--resume``, which must name the same folder; ``check_lock``: refuse while
    another process holds the folder (off on torchrun ranks other than 0, which write nothing).
    """
    from .config import _deep_merge, build_config, config_to_dict, load_saved_config, parse_overrides

    path = Path(run_dir)
    if out is not None and Path(out).resolve() != path.resolve():
        raise UserError(f"--resume {path} continues the run in its own folder; drop --out {out} (to start a new run "
                        "there, use 'noisyclr train CONFIG --out DIR' without --resume)")
    if not path.is_dir():
        raise UserError(f"cannot resume: {path} does not exist; pass the --out folder of an earlier run")
    if check_lock:
        check_not_in_use(path)
    if not (path / CONFIG).is_file():
        raise UserError(f"cannot resume: {path} has no {CONFIG}; pass the --out folder of an earlier run")
    overrides = list(overrides or [])
    check_resume_overrides(overrides)
    cfg = build_config(_deep_merge(config_to_dict(load_saved_config(path / CONFIG)), parse_overrides(overrides)))
    done = finished_epochs(path)
    if done is not None and cfg.train.epochs <= done:
        raise UserError(f"the run in {path} has finished its {done} epochs, and train.epochs={cfg.train.epochs} would "
                        f"run none; extend it with train.epochs=N (N > {done}); nothing was changed")
    if not (path / CHECKPOINT).is_file() and (done is not None or not (path / MARKER).is_file()):
        raise UserError(f"no checkpoint at {path / CHECKPOINT}; resume needs a run folder written by "
                        "'noisyclr train --out'")
    return cfg


def write_error(exc: OSError, where: Path, run_dir: Path, resumable: bool) -> UserError:
    """One line for an OSError met while writing ``where`` (the error's own file name first) in ``run_dir``."""
    where = exc.filename or where
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        tail = (f"free some space, then continue with --resume {run_dir} (the last checkpoint is intact)"
                if resumable else "free some space and run the command again")
        return UserError(f"no space left on the device while writing {where}; {tail}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = "the file system is read-only" if exc.errno == errno.EROFS else "permission denied"
        return UserError(f"cannot write {where}: {reason}; choose a writable folder (--out), or make it writable")
    return UserError(f"cannot write {where}: {exc.strerror or exc}; check the disk and the folder's permissions")


class RunFolder:
    """The run folder held by this process: lock, marker, and clean-up of a run that never checkpointed.

    ``RunFolder(path, new=True)`` creates the folder (or takes an empty one), locks it and marks it;
    ``RunFolder(path, new=False)`` locks an existing run for ``--resume``. Use as a context manager: on an
    exception, a new run that has not written a checkpoint (:meth:`checkpointed`) is removed again (only what
    it created), then the lock is released.
    """

    def __init__(self, path: str | os.PathLike, *, new: bool):
        self.path = Path(path)
        self.new = new
        self._created_dir = False
        self._fd: int | None = None
        try:
            if new:
                check_new(self.path)
                try:
                    self.path.mkdir(parents=True)
                    self._created_dir = True
                except FileExistsError:  # made by a run starting beside this one: the lock decides
                    pass
            self._lock()  # a UserError when held elsewhere; nothing is removed then
        except OSError as exc:
            if self._fd is not None:
                self.discard()
            elif self._created_dir:  # made just now and never locked (the disk is full, say): take it back
                with contextlib.suppress(OSError):
                    lock = self.path / LOCK
                    if lock.is_file() and lock.stat().st_size == 0:
                        lock.unlink()
                    self.path.rmdir()
            raise write_error(exc, self.path, self.path, resumable=False) from None
        if not new:
            return
        try:
            entries = [p.name for p in self.path.iterdir() if p.name != LOCK]
            if entries:  # another run got here between the check and the lock
                self.release()
                check_new(self.path)  # raises the precise message
                raise UserError(f"{self.path} changed while this run was starting; choose another --out folder")
            (self.path / MARKER).write_text(json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        except OSError as exc:
            self.discard()
            raise write_error(exc, self.path, self.path, resumable=False) from None

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.path} is in use by another noisyclr run ({_holder(self.path)}); wait for it to "
                            "end, or choose another --out folder") from None
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())

    def checkpointed(self) -> bool:
        """Whether the folder holds a checkpoint (then it is a resumable run and is never removed)."""
        return (self.path / CHECKPOINT).is_file()

    def discard(self) -> None:
        """Remove what a new run created, unless it has checkpointed; release the lock. Only while holding the
        lock: a folder another run holds is never touched."""
        if self._fd is None:
            return
        try:
            if self.new and not self.checkpointed() and self.path.is_dir():
                if self._created_dir:
                    shutil.rmtree(self.path, ignore_errors=True)
                else:  # an empty folder the user gave: empty again
                    for child in self.path.iterdir():
                        if _ours(child.name):
                            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        finally:
            self.release()

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def write_error(self, exc: OSError) -> UserError:
        """:func:`write_error` for this folder (resumable once it holds a checkpoint)."""
        return write_error(exc, self.path, self.path, resumable=self.checkpointed())

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.release()
        else:
            self.discard()
