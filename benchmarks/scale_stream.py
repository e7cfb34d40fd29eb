"""The streamed path at Clothing1M size (issue #16): listing, host memory, streamed vs resident images/s, and the
division step, measured on a synthetic Clothing1M layout and extrapolated to 1M files.

    python benchmarks/scale_stream.py [--files 200000] [--sizes 50000 100000 200000] [--root DIR] [--keep]
                                      [--workers 2] [--stream-images 4096] [--full 1000000]

It writes (into a temporary directory unless ``--root``; never into the repository) ``--files`` small JPEGs in the
official layout (``images/<0..9>/<00..99>/<n>.jpg``; 32×32, ~1 KB, so that 200k files fit a laptop's disk) with
``noisy_train_key_list.txt``, ``noisy_label_kv.txt``, ``clean_label_kv.txt`` (a third of the keys, as the real
file covers part of the training set), ``clean_val_key_list.txt`` and ``clean_test_key_list.txt``. Then, for every
``--sizes`` entry (the first n training keys), in a fresh process so its memory is its own:

* **listing**: ``prepare_data`` of the ``clothing1m`` source with ``dataset.stream=on`` (the key lists and label
  files read, the noise bookkeeping, the listing checked against the image folders) and ``train_labels.csv``
  written: wall seconds and the growth of the resident set (VmRSS from ``/proc/self/status``);
* **division** on n synthetic scores: the 1-D GMM (DivideMix, scikit-learn and torch backends), the 2-D GMM
  (PLReMix/BPT-PLR), and the class-balanced epoch sample of n labels; the eval pass is not included.

Once, at the largest size: streamed images/s (``StreamingData`` batches of 128, ``--workers`` decoding processes, the
weak view applied) against resident (the same rows decoded into a ``DeviceData`` first), and the k-NN OOD score
(Manifold DivideMix's filter, exact cosine top-10 of 128-d features) at a few sizes. Each quantity is fitted with
``t = a·n^b`` over the sizes measured and extrapolated to ``--full`` rows (memory: linear fit).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLASSES = 14


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_layout(root: Path, files: int) -> float:
    """The synthetic Clothing1M folder; returns seconds taken."""
    from PIL import Image

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    # a few hundred distinct images, written as bytes: encoding 200k JPEGs would dominate the set-up
    protos = []
    for c in range(CLASSES):
        for v in range(16):
            arr = np.clip(rng.normal(40 + 14 * c, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            path = root / "proto.jpg"
            Image.fromarray(arr).save(path, quality=90)
            protos.append(path.read_bytes())
    (root / "proto.jpg").unlink()
    keys, noisy, clean = [], [], []
    true = rng.integers(0, CLASSES, files + 2000)
    given = np.where(rng.random(len(true)) < 0.38, rng.integers(0, CLASSES, len(true)), true)
    for i in range(files + 2000):
        rel = f"images/{i % 10}/{(i // 10) % 100:02d}/{i}.jpg"
        d = root / os.path.dirname(rel)
        if i < 1000:
            d.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(protos[int(true[i]) * 16 + i % 16])
        keys.append(rel)
        noisy.append(f"{rel} {given[i]}")
        if i % 3 == 0 or i >= files:
            clean.append(f"{rel} {true[i]}")
    (root / "noisy_train_key_list.txt").write_text("\n".join(keys[:files]) + "\n")
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy[:files]) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    (root / "clean_val_key_list.txt").write_text("\n".join(keys[files:files + 1000]) + "\n")
    (root / "clean_test_key_list.txt").write_text("\n".join(keys[files + 1000:]) + "\n")
    return time.perf_counter() - t0


def fit_power(ns, ts):
    """(a, b) of t = a·n^b by least squares in log space; b = 1 when only one point."""
    ns, ts = np.asarray(ns, float), np.maximum(np.asarray(ts, float), 1e-9)
    if len(ns) < 2:
        return ts[0] / ns[0], 1.0
    b, loga = np.polyfit(np.log(ns), np.log(ts), 1)
    return float(np.exp(loga)), float(b)


def measure_size(root: Path, n: int, out_json: Path) -> None:
    """One size, in this (fresh) process: listing + bookkeeping, then the division pieces."""
    import torch

    from noisyclr.config import load_config
    from noisyclr.data.prepare import prepare_data, save_labels
    torch.set_num_threads(1)
    cut = root / f"cut{n}"
    cut.mkdir(exist_ok=True)
    for name in ("noisy_label_kv.txt", "clean_label_kv.txt", "clean_val_key_list.txt", "clean_test_key_list.txt"):
        target = cut / name
        if not target.exists():
            target.symlink_to(root / name)
    keys = (root / "noisy_train_key_list.txt").read_text().splitlines()[:n]
    (cut / "noisy_train_key_list.txt").write_text("\n".join(keys) + "\n")
    del keys
    if not (cut / "images").exists():
        (cut / "images").symlink_to(root / "images")
    cfg = load_config("dividemix-clothing1m", [f"dataset.root={cut}", "dataset.stream=on", "train.device=cpu",
                                                "dataset.options={image_size: 32}", "dataset.crop=32", "dataset.mean=[0.5,0.5,0.5]",
                                                "dataset.std=[0.25,0.25,0.25]"])
    import gc

    gc.collect()
    base = rss_mb()
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        save_labels(data.train, Path(tmp))
    t_list = time.perf_counter() - t0
    gc.collect()
    mem = rss_mb() - base
    labels = torch.as_tensor(data.train.labels)

    times = division_times(n, labels)
    out_json.write_text(json.dumps({"n": n, "list_s": t_list, "list_mb": mem, **times}))


def division_times(n: int, labels=None) -> dict:
    """Seconds of the division pieces on ``n`` synthetic per-sample losses (a bimodal clean / wrong mixture): the
    1-D GMM (both backends), the 2-D GMM, the balanced epoch sample of 32,000 rows; one thread."""
    import torch

    from noisyclr.selection import balanced_subset, clean_probability_1d, clean_probability_2d

    rng = np.random.default_rng(0)
    if labels is None:
        labels = torch.as_tensor(rng.integers(0, CLASSES, n))
    clean = rng.random(n) < 0.62
    loss = torch.as_tensor(np.where(clean, rng.gamma(1.0, 0.3, n), rng.gamma(4.0, 0.8, n)), dtype=torch.float32)
    proto = torch.as_tensor(np.where(clean, rng.gamma(1.0, 0.4, n), rng.gamma(3.0, 0.8, n)), dtype=torch.float32)
    times = {}
    for name, fn in (
        ("gmm1d_sklearn", lambda: clean_probability_1d(loss, backend="sklearn")),
        ("gmm1d_torch", lambda: clean_probability_1d(loss, backend="torch")),
        ("gmm2d_sklearn", lambda: clean_probability_2d(loss, proto, backend="sklearn")),
        ("balanced_subset", lambda: balanced_subset(labels, 32000, torch.Generator().manual_seed(0))),
    ):
        t0 = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t0
    return times


def throughput(root: Path, n: int, workers: int, images: int) -> dict:
    import torch

    from noisyclr.augment.views import make_views
    from noisyclr.config import load_config
    from noisyclr.data.loader import DeviceData
    from noisyclr.data.prepare import prepare_data
    from noisyclr.data.stream import StreamingData

    torch.set_num_threads(1)
    cfg = load_config("dividemix-clothing1m", [f"dataset.root={root / f'cut{n}'}", "dataset.stream=on",
                                                "train.device=cpu", "dataset.options={image_size: 32}", "dataset.crop=32",
                                                "dataset.mean=[0.5,0.5,0.5]", "dataset.std=[0.25,0.25,0.25]",
                                                f"dataset.stream_workers={workers}"])
    data = prepare_data(cfg)
    table = data.train.subset(np.arange(images))
    views = make_views(["weak"], mean=(0.5,) * 3, std=(0.25,) * 3, image_size=32)
    out = {}
    streamed = StreamingData(table, "cpu")
    for rep in range(2):  # the first pass starts the workers
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        count = sum(len(b) for b in streamed.batches(128, list(views.values()), g))
        out["streamed_img_s"] = count / (time.perf_counter() - t0)
    from noisyclr.data.folder import decode_images

    t0 = time.perf_counter()
    decoded, _ = decode_images(table.root, table.paths, image_size=32, workers=workers)
    out["decode_all_s"] = time.perf_counter() - t0
    from noisyclr.data.table import ImageTable

    resident = DeviceData(ImageTable(decoded, table.labels, None, table.class_names), "cpu")
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    count = sum(len(b) for b in resident.batches(128, list(views.values()), g))
    out["resident_img_s"] = count / (time.perf_counter() - t0)
    streamed.close()
    return out


def knn_times(sizes) -> dict:
    import torch

    from noisyclr.neighbours import knn_ood_score

    torch.set_num_threads(1)
    out = {}
    for n in sizes:
        f = torch.randn(n, 128)
        t0 = time.perf_counter()
        knn_ood_score(f, 10)
        out[n] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=200_000)
    p.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the generated folder")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--stream-images", type=int, default=4096)
    p.add_argument("--knn-sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000])
    p.add_argument("--full", type=int, default=1_000_000)
    p.add_argument("--measure", nargs=2, metavar=("N", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        measure_size(args.root, int(args.measure[0]), Path(args.measure[1]))
        return
    root = args.root or Path(tempfile.mkdtemp(prefix="nc-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if not (root / "noisy_train_key_list.txt").exists():
            print(f"generating {args.files} files under {root} ...", flush=True)
            print(f"  {make_layout(root, args.files):.0f} s", flush=True)
        rows = []
        for n in args.sizes:
            out = root / f"m{n}.json"
            subprocess.run([sys.executable, __file__, "--root", str(root), "--measure", str(n), str(out)],
                           check=True)
            rows.append(json.loads(out.read_text()))
            print(json.dumps(rows[-1]), flush=True)
        import torch

        torch.set_num_threads(1)
        direct = division_times(args.full)  # no files needed: measured at full size, not extrapolated
        tp = throughput(root, args.sizes[-1], args.workers, args.stream_images)
        knn = knn_times(args.knn_sizes)
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.processor())
        print(f"\nmachine: {cpu}, {os.cpu_count()} cores; python {platform.python_version()}")
        print("| quantity | " + " | ".join(f"n = {r['n']:,}" for r in rows)
              + f" | growth | at {args.full:,} (fit) | at {args.full:,} (measured) |")
        print("|---|" + "---|" * (len(rows) + 3))
        ns = [r["n"] for r in rows]
        for key, unit in (("list_s", "s"), ("list_mb", "MB"), ("gmm1d_sklearn", "s"), ("gmm1d_torch", "s"),
                          ("gmm2d_sklearn", "s"), ("balanced_subset", "s")):
            vals = [r[key] for r in rows]
            if key.startswith("list"):  # linear in n: a fixed part plus a cost per file
                slope, icpt = np.polyfit(ns, vals, 1) if len(ns) > 1 else (vals[0] / ns[0], 0.0)
                full = slope * args.full + icpt
                growth = f"{slope * 1e3:.3f} KB/file" if unit == "MB" else f"{slope * 1e6:.2f} µs/file"
            else:
                a, b = fit_power(ns, vals)
                full, growth = a * args.full ** b, f"n^{b:.2f}"
            measured = f"{direct[key]:.3g}" if key in direct else "-"
            print(f"| {key} ({unit}) | " + " | ".join(f"{v:.3g}" for v in vals) + f" | {growth} | {full:.3g} | "
                  f"{measured} |")
        a, b = fit_power(list(knn), list(knn.values()))
        print("| knn_ood_score k=10, 128-d (s) | " + ", ".join(f"{n:,}: {t:.3g}" for n, t in knn.items())
              + f" | n^{b:.2f} | {a * args.full ** b:.3g} | - |")
        print(f"\nstreamed {tp['streamed_img_s']:.0f} img/s ({args.workers} workers, 32x32 JPEG, weak view) vs "
              f"resident {tp['resident_img_s']:.0f} img/s; decoding the {args.stream_images} files up front took "
              f"{tp['decode_all_s']:.2f} s")
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
