"""The OOD filter's detection per division, over the seeds of a ``benchmarks/seeds.py`` run of manifold_dividemix.

    python benchmarks/ood_report.py runs/seeds-mdm [--append benchmarks/RESULTS.md]

For every preset/noise row under the folder, every run's ``metrics.jsonl`` rows that carry ``ood_precision``
(division 0 is the detection on the starting encoder, before warm-up; division d the d-th re-division) are
collected, and the table gives, per division: R (samples flagged), OOD precision and recall of the flagged set
against the recorded truth (``is_ood``), AUC of the score, as mean ± std over the seeds, and the worst run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def collect(run: Path) -> list[dict]:
    """The OOD rows of one run, in order, with the division index each belongs to."""
    rows, division = [], 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "ood_precision" not in row:
            continue
        division = int(row.get("division", 0))
        rows.append({"division": division, **{k: row[k] for k in ("ood_removed", "ood_precision", "ood_recall",
                                                                    "ood_auc") if k in row}})
    return rows


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {std:.3f} ({min(values):.3f})"


def table(folder: Path) -> str:
    out = []
    for row_dir in sorted(p for p in folder.glob("*/*") if p.is_dir()):
        runs = sorted(p for p in row_dir.iterdir() if (p / "metrics.jsonl").is_file())
        if not runs:
            continue
        per_div: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in runs:
            for r in collect(run):
                for key in ("ood_removed", "ood_precision", "ood_recall", "ood_auc"):
                    if key in r:
                        per_div[r["division"]][key].append(float(r[key]))
        if not per_div:
            continue
        out.append(f"\n{row_dir.parent.name} / {row_dir.name}, {len(runs)} runs: mean ± std (worst)\n")
        out.append("| division | R | OOD precision | OOD recall | AUC of the score |")
        out.append("|---|---|---|---|---|")
        for d in sorted(per_div):
            v = per_div[d]
            r = f"{statistics.fmean(v['ood_removed']):.0f}" if v["ood_removed"] else "-"
            out.append(f"| {d} | {r} | {fmt(v['ood_precision'])} | {fmt(v['ood_recall'])} | {fmt(v['ood_auc'])} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder", type=Path)
    p.add_argument("--append", type=Path)
    args = p.parse_args()
    text = table(args.folder)
    print(text)
    if args.append:
        with open(args.append, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
