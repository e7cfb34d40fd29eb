"""Pack the CIFAR-10 JPEG folder and its noise files into one file that can travel to the GPU machine.

    python benchmarks/pack_cifar10.py [--src ../shared/data] [--out .gpudata/cifar10.pack]
                                      [--train-per-class N] [--test-per-class M]
    python benchmarks/pack_cifar10.py --unpack .gpudata/cifar10.pack DEST [--workers 16]

Run HERE (the machine with ``../shared/data``) before a device call that names ``.gpudata`` in ``carry``; on the
device ``benchmarks/gpu_check.sh`` unpacks it with :func:`unpack` into ``DEST/cifar10-jpg/{train,test}/<class>/*.jpg``
(the layout the ``folder`` source reads), ``DEST/noise-files/cifar10/*.json`` and ``DEST/cifar10n/labels.csv``.

Why a pack: the folder is 60,000 files of ~950 bytes (236 MB on disk, 56.9 MB of bytes), and every one of these
32x32 JPEGs starts with the same ~620-byte header (JFIF, quantisation and Huffman tables, frame, scan header). The
pack stores that common prefix once and each file's remaining bytes, so the JPEG bytes come back bit-identical
(checked with one SHA-256 over all files on unpack) in about a third of the space, and as one file instead of
60,000. The pack is a ZIP (stdlib only): ``manifest.json`` (paths, byte counts, prefix length, digest),
``prefix.bin``, ``suffixes.bin`` and the extra files under ``files/``.

``--train-per-class`` / ``--test-per-class`` pack only the first N / M files of each class (a documented subset,
recorded in the manifest) in case the whole set ever does not fit beside the working tree; the default is all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

FORMAT = 1
# What the device may carry: the working tree plus carried paths, 64 MiB in all (device README "Limits").
CARRY_LIMIT = 64 * 2**20
# Files beside the JPEGs that the CIFAR-10 JPEG presets read (relative to --src), plus their READMEs.
EXTRA_FILES = [
    "README.md",
    "cifar10-jpg/README.md",
    "cifar10n/README.md",
    "cifar10n/labels.csv",
    "noise-files/README.md",
    "noise-files/cifar10/0.20.json",
    "noise-files/cifar10/0.40_asym.json",
    "noise-files/cifar10/0.50.json",
    "noise-files/cifar10/0.80.json",
    "noise-files/cifar10/0.90.json",
]


def list_jpegs(root: Path, train_per_class: int | None = None, test_per_class: int | None = None) -> list[str]:
    """``split/class/file`` paths under ``root`` (``cifar10-jpg``), sorted, at most N / M per class per split."""
    out = []
    for split, limit in (("train", train_per_class), ("test", test_per_class)):
        split_dir = root / split
        if not split_dir.is_dir():
            raise SystemExit(f"pack_cifar10: {split_dir} is missing; --src must hold cifar10-jpg/{{train,test}}/<class>/")
        for cls in sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")):
            files = sorted(e.name for e in os.scandir(split_dir / cls) if e.is_file() and not e.name.startswith("."))
            out += [f"{split}/{cls}/{f}" for f in files[:limit]]
    return out


def common_prefix(blobs: list[bytes]) -> bytes:
    """The longest byte string every blob starts with."""
    if not blobs:
        return b""
    lo, hi = min(blobs), max(blobs)  # the common prefix of all is that of the min and max (lexicographic)
    n = 0
    for a, b in zip(lo, hi):
        if a != b:
            break
        n += 1
    return lo[:n]


def git_state(repo: Path) -> str:
    """``<short commit>[ (+local changes)]`` of ``repo``, or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' (+local changes)' if dirty else ''}" if commit else "unknown"


def working_tree_bytes(repo: Path) -> int | None:
    """Bytes of what travels with every device call besides ``carry``: tracked files and untracked files git does
    not ignore (``git ls-files -co --exclude-standard``); None outside a git checkout."""
    try:
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                               capture_output=True, timeout=30).stdout.split(b"\0")
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0
    for name in names:
        if name:
            try:
                total += (repo / os.fsdecode(name)).stat().st_size
            except OSError:
                pass
    return total


def pack(src: Path, out: Path, *, train_per_class: int | None = None, test_per_class: int | None = None,
         extra: list[str] | None = None, quiet: bool = False) -> dict:
    """Write the pack of ``src/cifar10-jpg`` (+ ``extra`` files relative to ``src``) to ``out``; returns the
    manifest plus ``packed_bytes``."""
    t0 = time.perf_counter()
    root = src / "cifar10-jpg"
    paths = list_jpegs(root, train_per_class, test_per_class)
    if not paths:
        raise SystemExit(f"pack_cifar10: no JPEGs under {root}")
    blobs = [(root / p).read_bytes() for p in paths]
    prefix = common_prefix(blobs)
    digest = hashlib.sha256()
    for b in blobs:
        digest.update(b)
    suffixes = b"".join(b[len(prefix):] for b in blobs)
    extra = EXTRA_FILES if extra is None else extra
    present = [rel for rel in extra if (src / rel).is_file()]
    manifest = {
        "format": FORMAT,
        "what": "CIFAR-10 JPEG folder (cifar10-jpg) + reference noise files; see benchmarks/pack_cifar10.py",
        "source": str(src.resolve()),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "commit": git_state(Path(__file__).resolve().parents[1]),
        "subset": {"train_per_class": train_per_class, "test_per_class": test_per_class},
        "num_files": len(paths),
        "num_train": sum(p.startswith("train/") for p in paths),
        "num_test": sum(p.startswith("test/") for p in paths),
        "jpeg_bytes": sum(len(b) for b in blobs),
        "prefix_len": len(prefix),
        "sizes": [len(b) - len(prefix) for b in blobs],
        "paths": paths,
        "sha256": digest.hexdigest(),
        "extra_files": present,
        "missing_extra_files": [rel for rel in extra if rel not in present],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("prefix.bin", prefix)
        z.writestr("suffixes.bin", suffixes)
        for rel in present:
            z.write(src / rel, f"files/{rel}")
    os.replace(tmp, out)
    manifest["packed_bytes"] = out.stat().st_size
    manifest["pack_seconds"] = time.perf_counter() - t0
    if not quiet:
        print(f"packed {manifest['num_files']:,} JPEGs ({manifest['num_train']:,} train + {manifest['num_test']:,} "
              f"test, {manifest['jpeg_bytes'] / 2**20:.1f} MiB of JPEG bytes, common prefix {len(prefix)} B) and "
              f"{len(present)} extra files into {out}: {manifest['packed_bytes']:,} bytes "
              f"({manifest['packed_bytes'] / 2**20:.1f} MiB) in {manifest['pack_seconds']:.1f} s")
        if manifest["missing_extra_files"]:
            print(f"missing extra files (not packed): {', '.join(manifest['missing_extra_files'])}")
        if train_per_class or test_per_class:
            print(f"SUBSET: only the first {train_per_class or 'all'} train / {test_per_class or 'all'} test files "
                  "of each class were packed")
    return manifest


# ------------------------------------------------------------------------------------------------------- unpack

_BLOB: dict = {}


def _write_range(args: tuple[str, int, int]) -> int:
    """Worker: write files ``start:stop`` of the pack held in ``_BLOB`` (inherited through fork) under ``dest``."""
    dest, start, stop = args
    prefix, suffixes, offsets, paths = _BLOB["prefix"], _BLOB["suffixes"], _BLOB["offsets"], _BLOB["paths"]
    for i in range(start, stop):
        with open(os.path.join(dest, paths[i]), "wb") as handle:
            handle.write(prefix)
            handle.write(suffixes[offsets[i]:offsets[i + 1]])
    return stop - start


def unpack(pack_path: Path, dest: Path, *, workers: int | None = None) -> dict:
    """Unpack ``pack_path`` into ``dest`` (``cifar10-jpg/``, ``noise-files/``, ``cifar10n/``); verifies the
    SHA-256 of all JPEG bytes. Returns the manifest (without the path lists) plus ``unpack_seconds``."""
    t0 = time.perf_counter()
    with zipfile.ZipFile(pack_path) as z:
        manifest = json.loads(z.read("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise SystemExit(f"pack_cifar10: {pack_path} has format {manifest.get('format')}, expected {FORMAT}")
        prefix, suffixes = z.read("prefix.bin"), z.read("suffixes.bin")
        for rel in manifest["extra_files"]:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(f"files/{rel}"))
    paths, sizes = manifest["paths"], manifest["sizes"]
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    if offsets[-1] != len(suffixes):
        raise SystemExit(f"pack_cifar10: {pack_path} is corrupt (suffix bytes {len(suffixes)} != {offsets[-1]})")
    digest = hashlib.sha256()
    for i in range(len(paths)):
        digest.update(prefix)
        digest.update(suffixes[offsets[i]:offsets[i + 1]])
    if digest.hexdigest() != manifest["sha256"]:
        raise SystemExit(f"pack_cifar10: {pack_path}: SHA-256 of the JPEG bytes does not match the manifest")
    jpg = dest / "cifar10-jpg"
    for d in sorted({p.rsplit("/", 1)[0] for p in paths}):
        (jpg / d).mkdir(parents=True, exist_ok=True)
    _BLOB.update(prefix=prefix, suffixes=suffixes, offsets=offsets, paths=paths)
    workers = workers or min(16, os.cpu_count() or 1)
    n = len(paths)
    chunk = max(1, -(-n // (workers * 4)))
    ranges = [(str(jpg), s, min(s + chunk, n)) for s in range(0, n, chunk)]
    try:
        ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
        if workers > 1 and ctx is not None and n >= 2048:
            with ctx.Pool(workers) as pool:
                written = sum(pool.map(_write_range, ranges))
        else:
            written = sum(map(_write_range, ranges))
    finally:
        _BLOB.clear()
    info = {k: v for k, v in manifest.items() if k not in ("paths", "sizes")}
    info.update(written=written, workers=workers, unpack_seconds=time.perf_counter() - t0, root=str(jpg))
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", default="../shared/data", help="folder holding cifar10-jpg/, cifar10n/, noise-files/")
    p.add_argument("--out", default=".gpudata/cifar10.pack")
    p.add_argument("--train-per-class", type=int, default=None)
    p.add_argument("--test-per-class", type=int, default=None)
    p.add_argument("--unpack", nargs=2, metavar=("PACK", "DEST"), help="unpack PACK into DEST instead")
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    if args.unpack:
        info = unpack(Path(args.unpack[0]), Path(args.unpack[1]), workers=args.workers)
        print(f"unpacked {info['written']:,} JPEGs + {len(info['extra_files'])} files into {args.unpack[1]} in "
              f"{info['unpack_seconds']:.1f} s ({info['workers']} processes); SHA-256 ok")
        return 0
    manifest = pack(Path(args.src), Path(args.out), train_per_class=args.train_per_class,
                    test_per_class=args.test_per_class)
    repo = Path(__file__).resolve().parents[1]
    tree = working_tree_bytes(repo)
    if tree is not None:
        total = tree + manifest["packed_bytes"]
        verdict = "fits" if total <= CARRY_LIMIT else "DOES NOT FIT"
        print(f"working tree (tracked + untracked, not ignored) {tree / 2**20:.1f} MiB + pack "
              f"{manifest['packed_bytes'] / 2**20:.1f} MiB = {total / 2**20:.1f} MiB of the 64 MiB a device call "
              f"carries: {verdict}")
        if total > CARRY_LIMIT:
            return 1
    print(f"device call: carry=[\"{Path(args.out).parts[0]}\"], command 'bash benchmarks/gpu_check.sh'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
