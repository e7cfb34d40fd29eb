"""Multi-seed accuracy benchmark shared by the accuracy benchmarks (issue #11): every (preset, noise setting, seed)
as its own ``noisyclr train`` process, aggregated into mean ± std, min / max, label precision / recall and a count
of collapsed runs.

    python benchmarks/seeds.py --presets standard-ce-digits-sym50 plremix-digits-sym50 \\
        --noise sym50 sym80 sym90 asym40 --seeds 5 [--jobs J] [--threads 1] [--out runs/seeds] \\
        [--reference-noise] [--append benchmarks/RESULTS.md] [key=value ...]

or from Python: ``run_seeds(presets, noises, seeds=5, jobs=2, threads=1, out="runs/seeds", overrides=[...])``.

Noise settings (``--noise``), applied after the ``key=value`` overrides:

* ``symNN``: ``noise.kind=sym noise.rate=0.NN`` (DivideMix's generator: the new label is uniform over ALL classes,
  the true one included, so the actual corruption is about rate·(C-1)/C).
* ``asymNN``: ``noise.kind=asym noise.rate=0.NN`` with the dataset's own asymmetric map (CIFAR-10: truck→automobile,
  bird→airplane, deer→horse, cat↔dog; CIFAR-100: next class in blocks of 5; Tiny-ImageNet: c→c+1). Sources without
  one (digits, synthetic, animal10n: ``noisyclr/data/noise.py`` refuses ``asym`` there) get the pair flip
  c→c+1 mod C explicitly, ``noise.asym_map=pairflip``, unless the overrides name a ``noise.asym_map``.
* ``pairflipNN``: ``noise.kind=asym noise.asym_map=pairflip noise.rate=0.NN`` on any dataset.
* ``preset``: the preset's own noise (e.g. a reference noise file), unchanged.

Seeds: run ``i`` (0 .. S-1) uses ``train.seed = T0 + i`` and ``noise.seed = N0 + i``, where T0 / N0 are the seeds of
the preset after the overrides (the digits presets: 0 and 123). Seed 0 is thus exactly the preset's single-seed run
(earlier RESULTS.md rows), and every other seed draws a different noisy label set as well as a different init and
batch order. Noise that does not depend on a seed (``noise.kind=file/human/none``) stays fixed, and its row says so.
``--reference-noise`` adds, for every seeded noise setting, a row whose runs keep ``noise.seed = N0`` (the
preset's label set) and vary only ``train.seed``: training variance alone, next to training + label-set variance.

Runs go to ``OUT/<preset>/<noise>/t<train.seed>-n<noise.seed>`` (a run both rows need is trained once), each with
``train.threads=T log.progress=off`` and ``OMP_NUM_THREADS=T``; its stdout/stderr go to ``<run>.log`` beside it.
A run whose ``summary.json`` exists is not trained again (after checking that its saved config is the one asked
for), an interrupted one is continued with ``noisyclr train --resume``, so an interrupted benchmark continues
where it stopped. A failed run is reported as failed with the last line of its stderr. ``OUT/results.json`` holds
every run's figures, each row's aggregate and the header; ``--append FILE`` appends the Markdown section to FILE.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from noisyclr.config import config_to_dict, load_config, load_saved_config  # noqa: E402
from noisyclr import machine as _machine  # noqa: E402
from noisyclr.errors import UserError  # noqa: E402
from noisyclr.rundir import CONFIG, METRICS, SUMMARY, is_run  # noqa: E402

# ------------------------------------------------------------------------------------------------ collapse rule

COLLAPSE_GAP = 0.10  # 10 accuracy points
COLLAPSE_TAIL = 0.25  # the last 25% of the epochs ...
COLLAPSE_STALL = 0.005  # ... moved by less than 0.5 points

COLLAPSE_RULE = (
    "collapsed: a run whose last-epoch test accuracy is more than 10 points below the median of its row's seeds, "
    "or whose test accuracy moved by less than 0.5 points (max - min) over the last 25% of epochs (at least 2) while "
    "ending more than 10 points below the row's best run. The median makes the first test robust to the collapsed "
    "runs themselves (up to half of them); the second catches the case where most seeds collapse and the median is "
    "itself a collapsed value, and asks for a stalled curve so that a merely slower run is not called collapsed "
    "because one seed was lucky. Rows of one run flag nothing."
)


def _median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def stalled(curve: list[float], tail: float = COLLAPSE_TAIL, stall: float = COLLAPSE_STALL) -> bool:
    """Whether the last ``tail`` fraction of a per-epoch test-accuracy ``curve`` (at least 2 epochs) spans less than
    ``stall``; False for curves shorter than 2 epochs."""
    if len(curve) < 2:
        return False
    window = curve[-max(2, math.ceil(tail * len(curve))):]
    return max(window) - min(window) < stall


def collapsed_flags(curves: list[list[float]], gap: float = COLLAPSE_GAP, tail: float = COLLAPSE_TAIL,
                    stall: float = COLLAPSE_STALL) -> list[bool]:
    """The collapse rule (:data:`COLLAPSE_RULE`) for the finished seeds of one row: ``curves[k]`` is the per-epoch
    test accuracy of seed k (fractions), its last entry the last-epoch accuracy. Pure function."""
    lasts = [c[-1] for c in curves]
    if len(lasts) < 2:
        return [False] * len(lasts)
    median, best = _median(lasts), max(lasts)
    return [last < median - gap or (stalled(c, tail, stall) and last < best - gap) for c, last in zip(curves, lasts)]


# ------------------------------------------------------------------------------------------------ noise settings

NOISE_RE = re.compile(r"^(sym|asym|pairflip)(\d{1,3})$")
# sources for which noisyclr picks an asymmetric map itself (a folder only when its classes are CIFAR-10's)
OWN_ASYM_MAP = {"cifar10", "cifar10n", "cifar100", "tiny_imagenet", "folder"}


def noise_overrides(token: str, dataset: str, overrides: list[str] = ()) -> list[str]:
    """The ``key=value`` overrides of a ``--noise`` setting (see the module docstring) on dataset source ``dataset``."""
    if token == "preset":
        return []
    m = NOISE_RE.match(token)
    if not m or int(m.group(2)) > 100:
        raise UserError(f"unknown noise setting '{token}'; use symNN, asymNN or pairflipNN with NN in 0..100 "
                        "(e.g. sym50, asym40), or preset")
    kind, rate = m.group(1), f"noise.rate={int(m.group(2)) / 100:g}"
    if kind == "sym":
        return ["noise.kind=sym", rate]
    if kind == "pairflip":
        return ["noise.kind=asym", "noise.asym_map=pairflip", rate]
    user_map = any(o.split("=", 1)[0].strip() == "noise.asym_map" for o in overrides)
    return ["noise.kind=asym", rate] + ([] if user_map or dataset in OWN_ASYM_MAP else ["noise.asym_map=pairflip"])


def noise_label(noise: dict) -> str:
    """Short description of a resolved ``noise`` config section."""
    kind = noise["kind"]
    if kind == "sym":
        return f"sym {noise['rate']:.0%}" + (" excl. true" if noise.get("exclude_true") else "")
    if kind == "asym":
        return f"asym {noise['rate']:.0%}" + (f" ({noise['asym_map']})" if noise.get("asym_map") else "")
    if kind in ("file", "human"):
        return f"{kind} {Path(noise['file']).name}" + (f" [{noise['column']}]" if noise.get("column") else "")
    return kind


# ------------------------------------------------------------------------------------------------ planning


@dataclass
class RunSpec:
    preset: str
    noise: str
    train_seed: int
    noise_seed: int
    overrides: list[str]  # user overrides + noise setting + the two seeds (not threads / progress)
    run_dir: Path


@dataclass
class RowSpec:
    preset: str
    noise: str  # the --noise token
    label: str  # what the table prints in the noise column
    reference: bool  # noise seed fixed at the preset's (--reference-noise)
    noise_fixed: bool  # the noise does not depend on noise.seed (file, human, none)
    train_seed0: int
    noise_seed0: int
    runs: list[RunSpec] = field(default_factory=list)


def _safe(name: str) -> str:
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)


def plan(presets: list[str], noises: list[str], seeds: int, out: Path, overrides: list[str] = (),
         reference_noise: bool = False) -> list[RowSpec]:
    """The rows of the benchmark and the runs of each (runs shared by two rows are the same object). Pure planning:
    reads the presets, starts nothing; a bad preset, override or noise setting is a UserError."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    overrides = list(overrides)
    rows: list[RowSpec] = []
    runs: dict[Path, RunSpec] = {}
    for preset in presets:
        dataset = load_config(preset, overrides).dataset.name
        for token in noises:
            common = overrides + noise_overrides(token, dataset, overrides)
            cfg = load_config(preset, common)
            t0, n0 = cfg.train.seed, cfg.noise.seed
            fixed = cfg.noise.kind not in ("sym", "asym")
            label = noise_label(config_to_dict(cfg)["noise"])
            variants = [(False, label + (" (fixed)" if fixed else ""))]
            if reference_noise and not fixed:
                variants.append((True, f"{label}, noise.seed {n0} fixed"))
            for reference, text in variants:
                row = RowSpec(preset, token, text, reference, fixed, t0, n0)
                for i in range(seeds):
                    ts, ns = t0 + i, (n0 if reference or fixed else n0 + i)
                    run_dir = out / _safe(preset) / _safe(token) / f"t{ts}-n{ns}"
                    if run_dir not in runs:
                        runs[run_dir] = RunSpec(preset, token, ts, ns, common + [f"train.seed={ts}",
                                                                                   f"noise.seed={ns}"], run_dir)
                    row.runs.append(runs[run_dir])
                rows.append(row)
    return rows


# keys a rerun may change without changing what the run computes
_IGNORED = {("train", "threads"), ("log",)}


def _flat(d: dict, prefix: tuple = ()) -> dict:
    out = {}
    for k, v in d.items():
        key = prefix + (k,)
        if any(key[: len(ig)] == ig for ig in _IGNORED):
            continue
        out.update(_flat(v, key) if isinstance(v, dict) and k != "options" else {key: v})
    return out


def check_existing(spec: RunSpec) -> None:
    """Refuse to reuse a run folder whose saved config is not the one this benchmark asks for."""
    saved = spec.run_dir / CONFIG
    if not saved.is_file():
        return
    want = _flat(config_to_dict(load_config(spec.preset, spec.overrides)))
    try:
        have = _flat(config_to_dict(load_saved_config(saved)))
    except UserError as exc:
        raise UserError(f"{saved} cannot be read ({exc}); delete {spec.run_dir} or choose another --out") from None
    diff = sorted(".".join(k) for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        raise UserError(f"{spec.run_dir} holds a run with other settings ({', '.join(diff[:4])}"
                        f"{', ...' if len(diff) > 4 else ''}); choose another --out or delete that folder")


# ------------------------------------------------------------------------------------------------ running


def _read_run(run_dir: Path) -> dict:
    summary = json.loads((run_dir / SUMMARY).read_text())
    curve, last = [], {}
    with open(run_dir / METRICS) as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                last = row
                if row.get("test_acc") is not None:
                    curve.append(row["test_acc"])
    return {
        "test_acc_last": summary.get("test_acc_last"),
        "test_acc_best": summary.get("test_acc_best"),
        "test_acc_curve": curve,
        "label_precision": last.get("label_precision"),
        "label_recall": last.get("label_recall"),
        "labeled_size": last.get("labeled_size"),
        "clean_auc": last.get("clean_auc"),
        "epochs": summary.get("epochs"),
        "wall_time_s": summary.get("wall_time_s"),
        "actual_noise_rate": (summary.get("noise") or {}).get("actual_rate"),
        "torch": summary.get("torch"),
    }


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no stderr)"


def run_one(spec: RunSpec, threads: int) -> dict:
    """Train ``spec`` in its own process (or skip it when finished, or resume it when interrupted); its record."""
    record = {"preset": spec.preset, "noise": spec.noise, "train_seed": spec.train_seed,
              "noise_seed": spec.noise_seed, "run_dir": str(spec.run_dir), "error": None}
    if (spec.run_dir / SUMMARY).is_file():
        return {**record, "status": "skipped", **_read_run(spec.run_dir)}
    tail = [f"train.threads={threads}", "log.progress=off"]
    if is_run(spec.run_dir):
        cmd = [sys.executable, "-m", "noisyclr", "train", "--resume", str(spec.run_dir), *tail]
    else:
        cmd = [sys.executable, "-m", "noisyclr", "train", spec.preset, *spec.overrides, *tail, "--out", str(spec.run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    spec.run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = spec.run_dir.parent / f"{spec.run_dir.name}.log"
    log.write_text(f"$ {shlex.join(cmd)}\n# exit {proc.returncode} after {time.monotonic() - t0:.1f} s\n"
                   f"## stdout\n{proc.stdout}\n## stderr\n{proc.stderr}")
    record["command"] = shlex.join(cmd)
    record["process_s"] = time.monotonic() - t0
    if proc.returncode != 0 or not (spec.run_dir / SUMMARY).is_file():
        return {**record, "status": "failed", "error": f"exit {proc.returncode}: {_last_line(proc.stderr)}"}
    return {**record, "status": "resumed" if "--resume" in cmd else "trained", **_read_run(spec.run_dir)}


# ------------------------------------------------------------------------------------------------ aggregation


def _stats(values: list[float]) -> dict:
    n = len(values)
    if not n:
        return {"mean": None, "std": None, "min": None, "max": None}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}


def _mean_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def aggregate(records: list[dict]) -> dict:
    """Figures of one row from its runs' records (``status`` ok/failed, ``test_acc_last``, ``test_acc_best``,
    ``test_acc_curve``, optional ``label_precision`` / ``label_recall``), in seed order. Pure function."""
    ok = [r for r in records if r["status"] != "failed" and r.get("test_acc_last") is not None]
    flags = collapsed_flags([r["test_acc_curve"] or [r["test_acc_last"]] for r in ok])
    flag_of = {id(r): f for r, f in zip(ok, flags)}
    per_seed = []
    for r in records:
        if id(r) in flag_of:
            per_seed.append(f"{r['test_acc_last']:.3f}" + ("*" if flag_of[id(r)] else ""))
        else:
            per_seed.append("fail")
    return {
        "n": len(ok),
        "failed": len(records) - len(ok),
        "last": _stats([r["test_acc_last"] for r in ok]),
        "best": _stats([r["test_acc_best"] for r in ok]),
        "label_precision": _mean_or_none([r.get("label_precision") for r in ok]),
        "label_recall": _mean_or_none([r.get("label_recall") for r in ok]),
        "collapsed": sum(flags),
        "per_seed_last": " ".join(per_seed),
        "errors": [r["error"] for r in records if r["status"] == "failed"],
    }


def _f(x, fmt=".4f") -> str:
    return "-" if x is None else format(x, fmt)


def _ms(s: dict) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if s["std"] is not None else "")


TABLE_HEAD = ("| preset | noise | n | test acc last, mean ± std | min / max | best, mean ± std | min / max "
              "| label prec / rec (last) | collapsed | per-seed last (seed 0, 1, ...) |")


def table(rows: list[dict]) -> str:
    """The Markdown table of aggregated rows, with its caption."""
    lines = [TABLE_HEAD, "|" + "---|" * 10]
    for row in rows:
        a = row["stats"]
        n = f"{a['n']}" + (f" (+{a['failed']} failed)" if a["failed"] else "")
        pr = (f"{_f(a['label_precision'], '.3f')} / {_f(a['label_recall'], '.3f')}"
              if a["label_precision"] is not None or a["label_recall"] is not None else "-")
        lines.append(f"| {row['preset']} | {row['label']} | {n} | {_ms(a['last'])} "
                     f"| {_f(a['last']['min'])} / {_f(a['last']['max'])} | {_ms(a['best'])} "
                     f"| {_f(a['best']['min'])} / {_f(a['best']['max'])} | {pr} | {a['collapsed']} "
                     f"| {a['per_seed_last']} |")
    caption = [
        "",
        "Accuracies are fractions of the test set; std is the sample standard deviation (ddof 1) over the finished "
        "seeds; \"best\" is each run's best epoch; label prec / rec is the labeled set of the last epoch against the "
        "truly clean samples (dividing methods only), averaged over seeds. In the per-seed column * marks a "
        f"collapsed run, fail a failed one. {COLLAPSE_RULE[0].upper()}{COLLAPSE_RULE[1:]}",
    ]
    errors = [(row, e) for row in rows for e in row["stats"]["errors"]]
    if errors:
        caption.append("")
        caption += [f"- failed: {row['preset']} {row['label']}: {e}" for row, e in errors]
    return "\n".join(lines + caption)


# ------------------------------------------------------------------------------------------------ environment


cpu_model = _machine.cpu_model


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=30)
        if head.returncode != 0:
            return "unknown (no git checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return head.stdout.strip() + (" dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"


def torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def resolve_jobs(jobs: int | None, threads: int) -> int:
    """``jobs`` (default ``cpu_count // threads``), refused when ``jobs × threads`` exceeds the cores."""
    cores = os.cpu_count() or 1
    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    if jobs is None:
        jobs = cores // threads
        if jobs < 1:
            raise UserError(f"--threads {threads} exceeds the {cores} CPU cores of this machine; use --threads {cores}")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if jobs * threads > cores:
        raise UserError(f"--jobs {jobs} x --threads {threads} = {jobs * threads} processes' threads exceed the "
                        f"{cores} CPU cores of this machine (oversubscription distorts both speed and wall times); "
                        f"use --jobs {max(cores // threads, 1)} or fewer")
    return jobs


def cli_command(presets, noises, seeds, jobs, threads, out, overrides, reference_noise, append) -> str:
    """The ``benchmarks/seeds.py`` command line equivalent to a ``run_seeds`` call."""
    parts = ["python", "benchmarks/seeds.py", "--presets", *presets, "--noise", *noises, "--seeds", str(seeds),
             "--jobs", str(jobs), "--threads", str(threads), "--out", str(out)]
    parts += ["--reference-noise"] if reference_noise else []
    parts += ["--append", str(append)] if append else []
    return shlex.join(parts + list(overrides))


# ------------------------------------------------------------------------------------------------ entry points


def run_seeds(presets: list[str], noises: list[str] = ("preset",), *, seeds: int = 3, jobs: int | None = None,
              threads: int = 1, out: str | os.PathLike = "runs/seeds", overrides: list[str] = (),
              reference_noise: bool = False, append: str | os.PathLike | None = None, command: str | None = None,
              title: str | None = None, echo: bool = True) -> dict:
    """Run (or continue) the benchmark and return ``results.json``'s content: ``header``, ``rows`` (each with its
    ``stats`` from :func:`aggregate`), ``runs`` (one record per run folder), ``markdown`` (the section).

    Bad input (unknown preset / override / noise setting, ``jobs × threads`` over the cores, a reused folder with
    other settings) raises :class:`~noisyclr.errors.UserError` before anything is trained."""
    presets, noises, overrides = list(presets), list(noises), list(overrides)
    jobs = resolve_jobs(jobs, threads)
    out = Path(out)
    rows = plan(presets, noises, seeds, out, overrides, reference_noise)
    specs = list({id(r): r for row in rows for r in row.runs}.values())
    for spec in specs:
        check_existing(spec)
    command = command or cli_command(presets, noises, seeds, jobs, threads, out, overrides, reference_noise, append)
    say = print if echo else (lambda *a, **k: None)
    say(f"{len(specs)} runs ({len(rows)} rows), {jobs} at a time with train.threads={threads} -> {out}", flush=True)

    records: dict[int, dict] = {}
    t_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, spec, threads): spec for spec in specs}
        for k, fut in enumerate(as_completed(futures), start=1):
            spec = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001  (an unreadable summary, a full disk: report, keep going)
                rec = {"preset": spec.preset, "noise": spec.noise, "train_seed": spec.train_seed,
                       "noise_seed": spec.noise_seed, "run_dir": str(spec.run_dir), "status": "failed",
                       "error": f"{type(exc).__name__}: {exc}"}
            records[id(spec)] = rec
            what = (f"last {rec['test_acc_last']:.4f} best {rec['test_acc_best']:.4f}"
                    + (f" in {rec['wall_time_s']:.1f} s" if rec.get("wall_time_s") is not None else "")
                    if rec["status"] != "failed" else f"FAILED {rec['error']}")
            say(f"[{k}/{len(specs)}] {spec.preset} {spec.noise} train.seed={spec.train_seed} "
                f"noise.seed={spec.noise_seed}: {rec['status']}, {what}", flush=True)

    out_rows = []
    for row in rows:
        recs = [records[id(r)] for r in row.runs]
        out_rows.append({"preset": row.preset, "noise": row.noise, "label": row.label, "reference": row.reference,
                         "noise_fixed": row.noise_fixed, "train_seed0": row.train_seed0,
                         "noise_seed0": row.noise_seed0, "run_dirs": [r["run_dir"] for r in recs],
                         "stats": aggregate(recs)})
    header = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "jobs": jobs,
        "torch": torch_version(),
        "commit": git_commit(),
        "command": command,
        "seeds": seeds,
        "seed_mapping": "seed i (0..S-1): train.seed = T0 + i, noise.seed = N0 + i, T0 / N0 = the preset's seeds "
                        "after the overrides; reference-noise rows and fixed noise keep noise.seed = N0",
        "wall_s": time.monotonic() - t_start,
        "runs_wall_s": sum(r.get("wall_time_s") or 0.0 for r in records.values() if r["status"] != "failed"),
        "collapse_rule": COLLAPSE_RULE,
    }
    markdown = section(header, out_rows, title or f"{', '.join(presets)} × {', '.join(noises)}, {seeds} seeds")
    result = {"header": header, "rows": out_rows, "runs": [records[id(s)] for s in specs], "markdown": markdown}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    say("\n" + markdown)
    if append:
        with open(append, "a") as handle:
            handle.write("\n" + markdown + "\n")
    return result


def section(header: dict, rows: list[dict], title: str) -> str:
    """The Markdown section: heading, machine line, seed mapping, command, table with caption."""
    seeds0 = sorted({(r["preset"], r["train_seed0"], r["noise_seed0"]) for r in rows})
    base = "; ".join(f"{p}: T0 {t}, N0 {n}" for p, t, n in seeds0)
    return "\n".join([
        f"## {header['date']} — seeds benchmark: {title}",
        "",
        f"`benchmarks/seeds.py` on {header['cpu']}, {header['cores']} cores, {header['jobs']} run(s) at a time with "
        f"train.threads={header['threads']}, torch {header['torch']}, commit {header['commit']}; "
        f"the runs' training wall times (summary.json wall_time_s, process start-up not included) sum to "
        f"{header['runs_wall_s']:.0f} s (this invocation: {header['wall_s']:.0f} s wall; finished runs are not "
        "trained again). Seed i of a row: train.seed = T0 + i and noise.seed = N0 + i "
        f"(seed 0 = the preset's own run; rows marked fixed keep noise.seed = N0) with {base}.",
        "",
        "```",
        header["command"],
        "```",
        "",
        table(rows),
    ])


OVERRIDE_RE = re.compile(r"^[A-Za-z_][\w.]*=")


def main(argv: list[str] | None = None, *, defaults: dict | None = None, prog: str = "benchmarks/seeds.py") -> int:
    """CLI; ``defaults`` lets another benchmark (digits_accuracy.py) reuse it with its own presets and overrides."""
    d = {"presets": None, "noise": ["preset"], "seeds": 3, "out": "runs/seeds", "overrides": [], "title": None,
         **(defaults or {})}
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=d["presets"], required=d["presets"] is None)
    p.add_argument("--noise", nargs="+", default=d["noise"],
                   help="noise settings: symNN, asymNN, pairflipNN, preset (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=d["seeds"], help="seeds per (preset, noise) (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=None, help="runs at a time (default: cpu_count // threads)")
    p.add_argument("--threads", type=int, default=1, help="train.threads of each run (default: 1)")
    p.add_argument("--out", default=d["out"], help="folder of the run folders and results.json (default: %(default)s)")
    p.add_argument("--reference-noise", action="store_true",
                   help="also a row per seeded noise setting with the preset's noise.seed fixed")
    p.add_argument("--append", default=None, help="append the Markdown section to this file (e.g. benchmarks/RESULTS.md)")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run (anywhere on the line)")
    raw = list(argv if argv is not None else sys.argv[1:])
    # key=value items are taken out first, so that they may follow a list option (--noise sym50 train.epochs=5)
    overrides = [a for a in raw if OVERRIDE_RE.match(a)]
    args = p.parse_args([a for a in raw if not OVERRIDE_RE.match(a)])
    try:
        run_seeds(args.presets, args.noise, seeds=args.seeds, jobs=args.jobs, threads=args.threads, out=args.out,
                  overrides=[*d["overrides"], *overrides], reference_noise=args.reference_noise,
                  append=args.append, command=shlex.join(["python", prog, *raw]), title=d["title"])
    except UserError as exc:
        print(f"{Path(prog).name}: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
