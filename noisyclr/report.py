"""``report.html``: one self-contained page that shows a run folder to a person.

:func:`write_report` reads a run folder (``config.yaml``, ``summary.json``, ``metrics.jsonl``, ``train_labels.csv``
and ``label_issues.csv`` or else ``labels.csv``) and writes one HTML file with everything inline: the figures are
matplotlib PNGs (Agg, imported only here) and the thumbnails Pillow PNGs, both as ``data:`` URIs, the style sheet is
in the page, nothing is loaded from anywhere and no script runs. The page shows, in this order:

* the headline: method, data, noise, final and best test accuracy, the division's precision / recall, the flagged
  labels, time;
* test accuracy per epoch (the ensemble and each network), the labeled set's size, precision, recall and AUC per
  epoch, the training loss and learning rate, any other per-epoch monitor of the method (TCL's ``rho_hat``,
  Manifold DivideMix's OOD precision, ...), with the numbers as a table;
* the final clean-probability histograms of the truly clean and truly wrong samples (when the true labels are
  known), and for PLReMix / BPT-PLR the 2-D points the last division's GMM was fitted to;
* the estimated (given × suggested, over the flagged labels and the kept ones) and true (given × true) noise
  transition matrices;
* the most likely wrong labels with their image, given and suggested label;
* the summary and the resolved config.

Figures carry alt text and a caption, series differ by line style and marker as well as colour. The page is also
written at the end of every run (``log.report``, :func:`report_after_run`), where the decoded training data and
the method's last division are at hand.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

REPORT = "report.html"
TOP_ISSUES = 24
THUMB_PX = 96
FIGURE_DPI = 120  # 1.25 device pixels per CSS pixel: sharp on most screens, ~1 s for all figures
MAX_SCATTER_POINTS = 6000
# a division recomputed by 'noisyclr report' for the 2-D scatter: at most this many samples on a CPU
RECOMPUTE_CPU_LIMIT = 20_000

# Okabe-Ito: distinguishable with the common colour-vision deficiencies; every series also has its own line style
# and marker, so no information is carried by colour alone
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"), ((0, (1, 2)), "P"))


# ------------------------------------------------------------------------------------------------------ reading


@dataclass
class _Issues:
    """The ranked labels: rows in ranking order (most likely wrong first)."""

    source: str  # "label_issues.csv" or "labels.csv"
    index: np.ndarray
    given: np.ndarray
    p_wrong: np.ndarray
    suggested: np.ndarray
    confidence: np.ndarray | None
    is_issue: np.ndarray
    true: np.ndarray | None
    paths: list[str] | None = None
    threshold: float = 0.5


@dataclass
class _Run:
    path: Path
    cfg: object | None
    config_text: str
    summary: dict | None
    metrics: list[dict]
    given: np.ndarray | None = None  # train_labels.csv
    true: np.ndarray | None = None
    is_ood: np.ndarray | None = None
    paths: list[str] | None = None
    issues: _Issues | None = None
    notes: list[str] = field(default_factory=list)


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _int_column(rows: list[dict], name: str, default: int = -1) -> np.ndarray | None:
    if not rows or name not in rows[0]:
        return None
    values = [row.get(name, "") for row in rows]
    if all(v in ("", None) for v in values):
        return None
    return np.array([int(float(v)) if v not in ("", None) else default for v in values], dtype=np.int64)


def _float_column(rows: list[dict], name: str) -> np.ndarray | None:
    if not rows or name not in rows[0]:
        return None
    return np.array([float(row[name]) if row.get(name) not in ("", None) else math.nan for row in rows])


def _bool_column(rows: list[dict], name: str) -> np.ndarray | None:
    if not rows or name not in rows[0]:
        return None
    return np.array([str(row.get(name, "")).strip().lower() in ("1", "true", "yes") for row in rows])


def _threshold(cfg) -> float:
    value = getattr(getattr(cfg, "method", None), "p_threshold", None)
    return float(value) if isinstance(value, (int, float)) and 0 < value < 1 else 0.5


def _read_issues(run: Path, cfg) -> _Issues | None:
    """``label_issues.csv`` as ranked (written by ``noisyclr detect``), else ``labels.csv`` ranked by ascending
    clean probability (ties by its ``given_prob`` when it has one, then by index); None when the run has neither."""
    issues_path, labels_path = run / "label_issues.csv", run / "labels.csv"
    if issues_path.is_file():
        rows = _read_csv(issues_path)
        if rows and all(k in rows[0] for k in ("index", "given_label", "p_wrong", "suggested_label")):
            p_wrong = _float_column(rows, "p_wrong")
            is_issue = _bool_column(rows, "is_issue")
            paths = [row.get("path", "") for row in rows] if "path" in rows[0] else None
            return _Issues("label_issues.csv", _int_column(rows, "index"), _int_column(rows, "given_label"), p_wrong,
                           _int_column(rows, "suggested_label"), _float_column(rows, "suggested_confidence"),
                           is_issue if is_issue is not None else p_wrong > 0.5, _int_column(rows, "true_label"),
                           paths)
    if labels_path.is_file():
        rows = _read_csv(labels_path)
        if rows and all(k in rows[0] for k in ("index", "given_label", "clean_prob", "predicted_label")):
            clean = _float_column(rows, "clean_prob")
            given_prob = _float_column(rows, "given_prob")  # ties (many at 0): the lower model probability first
            tie = np.zeros(len(rows)) if given_prob is None else np.nan_to_num(given_prob, nan=1.0)
            order = np.lexsort((_int_column(rows, "index"), tie, np.nan_to_num(clean, nan=0.0)))
            thr = _threshold(cfg)

            def pick(a):
                return None if a is None else a[order]

            return _Issues("labels.csv", pick(_int_column(rows, "index")), pick(_int_column(rows, "given_label")),
                           1.0 - clean[order], pick(_int_column(rows, "predicted_label")),
                           pick(_float_column(rows, "predicted_confidence")), clean[order] < thr,
                           pick(_int_column(rows, "true_label")), threshold=thr)
    return None


def _load_run(run_dir: Path) -> _Run:
    from .config import load_saved_config
    from .rundir import CONFIG, METRICS, SUMMARY, is_run
    from .tracking import read_metrics

    if not run_dir.exists():
        raise UserError(f"{run_dir} does not exist; pass the --out folder of a run")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run folder; pass the --out folder of a run")
    if not (run_dir / CONFIG).is_file():
        what = "a noisyclr run without its config.yaml" if is_run(run_dir) else "not a noisyclr run folder"
        raise UserError(f"{run_dir} is {what} (no {CONFIG}); pass the --out folder of a run")
    if not (is_run(run_dir) or (run_dir / METRICS).is_file() or (run_dir / SUMMARY).is_file()):
        raise UserError(f"{run_dir} holds a {CONFIG} but no run (no {METRICS}, {SUMMARY} or checkpoint); pass the "
                        "--out folder of a run")
    config_text = (run_dir / CONFIG).read_text()
    cfg = load_saved_config(run_dir / CONFIG)
    summary = None
    if (run_dir / SUMMARY).is_file():
        try:
            summary = json.loads((run_dir / SUMMARY).read_text())
        except ValueError:
            summary = None
    run = _Run(run_dir, cfg, config_text, summary if isinstance(summary, dict) else None, read_metrics(run_dir))
    if (run_dir / "train_labels.csv").is_file():
        rows = _read_csv(run_dir / "train_labels.csv")
        run.given = _int_column(rows, "given_label")
        run.true = _int_column(rows, "true_label")
        run.is_ood = _bool_column(rows, "is_ood")
        run.paths = [row["path"] for row in rows] if rows and "path" in rows[0] else None
    run.issues = _read_issues(run_dir, cfg)
    if run.issues is not None and run.issues.true is None and run.true is not None:
        if run.issues.index.max(initial=-1) < len(run.true):
            run.issues.true = run.true[run.issues.index]
    if run.issues is not None and run.issues.paths is None and run.paths is not None:
        if run.issues.index.max(initial=-1) < len(run.paths):
            run.issues.paths = [run.paths[i] for i in run.issues.index]
    return run


# ------------------------------------------------------------------------------------------------------ figures


class _Figures:
    """matplotlib (Agg, no pyplot) figures to ``<figure>`` blocks with an inline PNG; unavailable without
    matplotlib (the page then says how to get them)."""

    def __init__(self):
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            from matplotlib.figure import Figure
        except ImportError:
            self.available = False
            return
        self.available = True
        self._Figure = Figure
        self._rc = {
            "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
            "axes.grid": True, "grid.color": "#d0d0d0", "grid.linewidth": 0.6, "axes.spines.top": False,
            "axes.spines.right": False, "figure.facecolor": "white", "axes.facecolor": "white",
            "savefig.facecolor": "white", "lines.linewidth": 1.8, "lines.markersize": 5,
            "axes.prop_cycle": matplotlib.cycler(color=list(COLORS[:6])),
        }
        self._matplotlib = matplotlib

    def new(self, width: float, height: float, cols: int = 1, rows: int = 1, *, left: float = 0.8,
            bottom: float = 0.55, right: float = 0.2, top: float = 0.35, wspace: float = 0.8, hspace: float = 0.7):
        """A figure of ``rows`` × ``cols`` axes with fixed margins and gaps in inches (a layout engine would
        measure every text twice: it doubles the time of a figure, and the report is drawn after every run)."""
        with self._matplotlib.rc_context(self._rc):
            fig = self._Figure(figsize=(width, height), dpi=100)
            axes = fig.subplots(rows, cols, squeeze=False)
            cell_w = (width - left - right - wspace * (cols - 1)) / cols
            cell_h = (height - bottom - top - hspace * (rows - 1)) / rows
            fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                                top=1 - top / height, wspace=wspace / max(cell_w, 0.1),
                                hspace=hspace / max(cell_h, 0.1))
        return fig, [ax for row in axes for ax in row]

    def block(self, fig, alt: str, caption: str, fig_id: str) -> str:
        with self._matplotlib.rc_context(self._rc):
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=FIGURE_DPI)
        w, h = fig.get_size_inches()
        fig.clear()
        return _figure_html(buf.getvalue(), alt, caption, fig_id, int(w * 96), int(h * 96))


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_html(png: bytes, alt: str, caption: str, fig_id: str, width: int, height: int) -> str:
    return (f'<figure id="{fig_id}"><img src="{_data_uri(png)}" alt="{_esc(alt)}" width="{width}" '
            f'height="{height}"><figcaption>{caption}</figcaption></figure>')


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["epoch"], r[key]) for r in rows
           if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) and "epoch" in r]
    if not pts:
        return np.zeros(0), np.zeros(0)
    e, v = zip(*pts)
    return np.asarray(e, dtype=float), np.asarray(v, dtype=float)


def _warmup_span(rows: list[dict]) -> tuple[float, float] | None:
    warm = [r["epoch"] for r in rows if r.get("phase") == "warmup" and "epoch" in r]
    if not warm:
        return None
    return min(warm) - 0.5, max(warm) + 0.5


def _shade_warmup(ax, span) -> None:
    if span is None:
        return
    ax.axvspan(*span, facecolor="#f2f2f2", edgecolor="#9a9a9a", hatch="///", linewidth=0, zorder=0)
    ax.text(span[0] + 0.05 * (span[1] - span[0]), 0.98, "warm-up", transform=ax.get_xaxis_transform(),
            va="top", ha="left", fontsize=8, color="#444444")


def _plot_lines(ax, rows, keys_labels, span) -> list[str]:
    """One line per key present (distinct style and marker); returns the alt-text phrase of each."""
    said = []
    n_epochs = len(rows)
    every = max(1, n_epochs // 25)
    for i, (key, label) in enumerate(keys_labels):
        e, v = _series(rows, key)
        if len(e) == 0:
            continue
        ls, marker = STYLES[i % len(STYLES)]
        ax.plot(e, v, linestyle=ls, marker=marker, markevery=every, color=COLORS[i % len(COLORS)], label=label)
        said.append(f"{label} from {_num(v[0])} (epoch {int(e[0])}) to {_num(v[-1])} (epoch {int(e[-1])})")
    _shade_warmup(ax, span)
    _epoch_axis(ax)
    if said:
        ax.legend(loc="best", frameon=True, framealpha=0.9)
    return said


def _epoch_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    value = float(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _pct(value) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def _accuracy_figure(figs: _Figures, rows: list[dict]) -> str | None:
    keys = [("test_acc", "ensemble" if any("test_acc_net1" in r for r in rows) else "test accuracy")]
    nets = sorted({k for r in rows for k in r if k.startswith("test_acc_net")}, key=lambda k: int(k[12:] or 0))
    keys += [(k, f"net {k[12:]}") for k in nets]
    if any("val_acc" in r for r in rows):
        keys.append(("val_acc", "clean held-out accuracy"))
    if not any(len(_series(rows, k)[0]) for k, _ in keys):
        return None
    fig, (ax,) = figs.new(8.0, 3.6)
    said = _plot_lines(ax, rows, keys, _warmup_span(rows))
    ax.set_ylabel("accuracy")
    ax.set_title("Test accuracy per epoch")
    _ylim_fraction(ax)
    e, v = _series(rows, "test_acc")
    best = f"; best {_num(v.max())} at epoch {int(e[v.argmax()])}" if len(v) else ""
    alt = "Line chart of test accuracy per epoch: " + "; ".join(said) + best + "."
    cap = ("Test accuracy per epoch on the test split" + (": the ensemble (summed logits, solid line with circles) "
           "and each network (dashed and dotted lines)" if nets else "") + "." +
           (" The hatched band marks the warm-up epochs." if _warmup_span(rows) else ""))
    return figs.block(fig, alt, cap, "fig-accuracy")


def _ylim_fraction(ax) -> None:
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(0.0, min(lo, 0.95)) if lo >= 0 else lo, min(1.02, max(hi, 0.05)) if hi <= 1.02 else hi)


def _division_figure(figs: _Figures, rows: list[dict]) -> str | None:
    quality = [("label_precision", "precision"), ("label_recall", "recall"), ("clean_auc", "clean AUC")]
    has_size = any("labeled_size" in r for r in rows)
    has_quality = any(k in r for r in rows for k, _ in quality)
    if not (has_size or has_quality):
        return None
    panels = int(has_size) + int(has_quality)
    fig, axes = figs.new(8.0 if panels == 1 else 10.0, 3.4, cols=panels)
    span = _warmup_span(rows)
    alt, i = [], 0
    if has_size:
        ax = axes[i]
        i += 1
        keys = [("labeled_size", "both nets (mean)" if any("labeled_size_net1" in r for r in rows) else "labeled set")]
        keys += [(k, f"net {k[-1]}") for k in sorted({k for r in rows for k in r if k.startswith("labeled_size_net")})]
        said = _plot_lines(ax, rows, keys, span)
        ax.set_ylabel("samples in the labeled set")
        ax.set_title("Labeled (kept as clean) set size")
        alt.append("labeled-set size " + "; ".join(said))
    if has_quality:
        ax = axes[i]
        said = _plot_lines(ax, rows, quality, span)
        ax.set_ylabel("fraction")
        ax.set_title("Division against the true labels")
        _ylim_fraction(ax)
        alt.append("division quality " + "; ".join(said))
    text = "Line charts per epoch: " + ". ".join(alt) + "."
    cap = ("The division's labeled set per epoch: its size, and against the true labels its precision (the "
           "fraction of kept labels that are correct), recall (the fraction of correct labels kept) and the AUC of "
           "the clean probability. Each series has its own line style and marker.")
    return figs.block(fig, text, cap, "fig-division")


_PLOTTED = {"epoch", "test_acc", "val_acc", "labeled_size", "label_precision", "label_recall", "clean_auc",
            "train_loss", "lr", "epoch_time_s", "train_time_s", "class_recall_min", "phase"}


def _scalar_keys(rows: list[dict]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.append(k)
    return keys


def _other_keys(rows: list[dict]) -> list[str]:
    skip = ("test_acc_net", "labeled_size_net", "label_precision_net", "label_recall_net", "clean_auc_net")
    return [k for k in _scalar_keys(rows) if k not in _PLOTTED and not k.startswith(skip)]


def _training_figure(figs: _Figures, rows: list[dict]) -> str | None:
    extra = _other_keys(rows)[:10]
    panels = [k for k in ("train_loss", "lr") if any(k in r for r in rows)] + extra
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = figs.new(10.0 if cols > 1 else 8.0, 2.6 * nrows, cols=cols, rows=nrows)
    span = _warmup_span(rows)
    said = []
    for i, key in enumerate(panels):
        ax = axes[i]
        e, v = _series(rows, key)
        ls, marker = STYLES[i % len(STYLES)]
        ax.plot(e, v, linestyle=ls, marker=marker, markevery=max(1, len(e) // 25), color=COLORS[i % len(COLORS)])
        _shade_warmup(ax, span)
        ax.set_title(key.replace("_", " "))
        _epoch_axis(ax)
        if len(v):
            said.append(f"{key} from {_num(v[0])} to {_num(v[-1])}")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    alt = "Small line charts per epoch: " + "; ".join(said) + "."
    cap = ("The training loss, the learning rate and the method's other per-epoch monitors, one panel each "
           "(named above each panel, as in metrics.jsonl).")
    return figs.block(fig, alt, cap, "fig-training")


def _histogram_figure(figs: _Figures, issues: _Issues) -> str | None:
    clean_prob = 1.0 - issues.p_wrong
    finite = np.isfinite(clean_prob)
    if not finite.any():
        return None
    bins = np.linspace(0.0, 1.0, 21)
    fig, (ax,) = figs.new(8.0, 3.4)
    groups = []
    if issues.true is not None:
        ood = issues.true < 0
        wrong = (issues.given != issues.true) & ~ood
        groups = [("truly clean", finite & ~wrong & ~ood, dict(histtype="stepfilled", facecolor="#a6cbe3",
                                                             edgecolor=COLORS[0], linewidth=1.6)),
                  ("truly wrong", finite & wrong, dict(histtype="step", edgecolor=COLORS[1], linewidth=2.0,
                                                       linestyle="--", hatch="xx"))]
        if ood.any():
            groups.append(("out of distribution", finite & ood, dict(histtype="step", edgecolor=COLORS[2],
                                                                    linewidth=2.0, linestyle=":")))
    else:
        groups = [("all samples", finite, dict(histtype="stepfilled", facecolor="#a6cbe3", edgecolor=COLORS[0]))]
    said = []
    for label, mask, style in groups:
        if mask.any():
            ax.hist(clean_prob[mask], bins=bins, label=f"{label} ({int(mask.sum()):,})", **style)
            said.append(f"{label}: {int(mask.sum()):,} samples, median clean probability "
                        f"{_num(float(np.median(clean_prob[mask])))}")
    ax.axvline(issues.threshold, color="#333333", linestyle="-.", linewidth=1.2)
    ax.text(issues.threshold, 0.02, f" threshold {issues.threshold:g}", transform=ax.get_xaxis_transform(),
            va="bottom", ha="left", fontsize=8, backgroundcolor="white")
    ax.set_yscale("log")
    ax.minorticks_off()
    ax.set_xlabel("clean probability of the given label (1 − p_wrong)")
    ax.set_ylabel("samples (log scale)")
    ax.set_title("Final clean probability")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper center")
    alt = "Histogram of the final clean probability: " + "; ".join(said) + "."
    src = ("the ranking of label_issues.csv" if issues.source == "label_issues.csv"
           else "the last division (labels.csv)")
    cap = (f"Clean probability of every training sample from {src}, "
           + ("split by whether the given label is truly correct (filled) or truly wrong (hatched, dashed)"
              if issues.true is not None else "all samples (the true labels are unknown)")
           + f"; the dash-dotted line is the threshold {issues.threshold:g}. A good division puts the clean samples "
             "near 1 and the wrong ones near 0.")
    return figs.block(fig, alt, cap, "fig-histogram")


def _scatter_figure(figs: _Figures, points: list[tuple[np.ndarray, np.ndarray]], given, true) -> str | None:
    if not points:
        return None
    n = len(points[0][0])
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(n, MAX_SCATTER_POINTS, replace=False)) if n > MAX_SCATTER_POINTS else np.arange(n)
    fig, axes = figs.new(10.0 if len(points) > 1 else 6.0, 4.4, cols=len(points))
    known = true is not None and given is not None and len(true) == n
    said = []
    for k, ((x, y), ax) in enumerate(zip(points, axes), 1):
        x, y = x[keep], y[keep]
        if known:
            wrong = (given[keep] != true[keep])
            ax.scatter(x[~wrong], y[~wrong], s=12, marker="o", facecolors="none", edgecolors=COLORS[0],
                       linewidths=0.8, label=f"truly clean ({int((~wrong).sum()):,})", alpha=0.7)
            ax.scatter(x[wrong], y[wrong], s=14, marker="x", color=COLORS[1], linewidths=0.9,
                       label=f"truly wrong ({int(wrong.sum()):,})", alpha=0.8)
            ax.legend(loc="upper right", framealpha=0.9)
            said.append(f"net {k}: truly clean samples mean at ({_num(x[~wrong].mean())}, {_num(y[~wrong].mean())}), "
                        f"truly wrong at ({_num(x[wrong].mean())}, {_num(y[wrong].mean())})"
                        if wrong.any() and (~wrong).any() else f"net {k}")
        else:
            ax.scatter(x, y, s=10, marker="o", facecolors="none", edgecolors=COLORS[0], linewidths=0.7)
            said.append(f"net {k}: {len(x):,} samples")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("classification loss (min-max normalised)")
        ax.set_ylabel("prototype loss (min-max normalised)")
        ax.set_title(f"2-D division of net {k}")
    alt = "Scatter plots of the 2-D GMM's points at the final division: " + "; ".join(said) + "."
    cap = ("The points the final 2-D GMM division was fitted to (PLReMix / BPT-PLR): each sample's classification "
           "loss against its prototype (PLR) loss, both min-max normalised; the clean component is the one nearest "
           "the origin. Truly clean samples are hollow circles, truly wrong ones crosses"
           + (f"; {len(keep):,} of {n:,} samples drawn at random" if len(keep) < n else "") + ".")
    return figs.block(fig, alt, cap, "fig-scatter")


def transition_matrices(issues: _Issues, num_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Row-normalised ``(estimated, true)``: row = given label; column = the estimated true label (the suggestion
    for a flagged label, the given label for a kept one) or the true label (None when unknown; OOD rows left out).
    Both are :func:`noisyclr.detect.transition_matrix` over the labels in range."""
    from .detect import transition_matrix

    def rows(given, other):
        ok = (given >= 0) & (given < num_classes) & (other >= 0) & (other < num_classes)
        return transition_matrix(given[ok], other[ok], num_classes)[1]

    est = rows(issues.given, np.where(issues.is_issue, issues.suggested, issues.given))
    true = None if issues.true is None else rows(issues.given, issues.true)
    return est, true


def _matrix_figure(figs: _Figures, issues: _Issues, names: list[str]) -> str | None:
    c = len(names)
    est, true = transition_matrices(issues, c)
    mats = [("estimated", est)] + ([("true", true)] if true is not None else [])
    side = 4.2 if c <= 12 else 4.8
    label_in = 0.0 if c > 20 else 0.085 * max(len(_short(n)) for n in names)  # tick labels, 9-10 pt
    rotated = c <= 20 and max(len(_short(n)) for n in names) > 2
    left, bottom = 0.55 + label_in, 0.5 + (label_in if rotated else 0.2)
    bar = 1.1 if c > 12 else 0.0
    gap = left + 0.15  # the second matrix's y tick labels and axis label
    fig, axes = figs.new(left + (side + gap) * len(mats) - gap + 0.2 + bar, side + bottom + 0.35, cols=len(mats),
                         left=left, bottom=bottom, right=0.2 + bar, wspace=gap)
    image = None
    for (title, m), ax in zip(mats, axes):
        image = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.grid(False)
        ax.set_title(f"{title}: P({'estimated ' if title == 'estimated' else ''}true | given)")
        ax.set_ylabel("given label")
        ax.set_xlabel("estimated true label" if title == "estimated" else "true label")
        if c <= 20:
            short = [_short(n) for n in names]
            ax.set_xticks(range(c), short, rotation=90 if max(map(len, short)) > 2 else 0)
            ax.set_yticks(range(c), short)
        if c <= 12:
            for i in range(c):
                for j in range(c):
                    if m[i, j] >= 0.005:
                        ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if m[i, j] > 0.55 else "#111111")
    if image is not None and c > 12:  # up to 12 classes every cell has its value written in it
        w, h = fig.get_size_inches()
        cax = fig.add_axes((1 - (bar + 0.2 - 0.25) / w, (bottom + 0.1 * side) / h, 0.18 / w, 0.8 * side / h))
        fig.colorbar(image, cax=cax, label="fraction of the given label's samples")
    rate_est = 1 - float(np.mean(np.diag(est)))
    alt = (f"Heat maps of noise transition matrices over {c} classes, rows the given label. Estimated: mean "
           f"off-diagonal mass per row {_pct(rate_est)}")
    if true is not None:
        alt += (f". True: {_pct(1 - float(np.mean(np.diag(true))))}; mean absolute difference per cell "
                f"{_num(float(np.abs(est - true).mean()), 4)}")
    alt += "."
    cap = ("Noise transition matrices, one row per given label, row-normalised"
           + (" (cell values in percent)" if c <= 12 else "") + ". Estimated: the suggested label for the "
           f"{int(issues.is_issue.sum()):,} flagged labels and the given label for the others"
           + (", against the true one: given × true label." if true is not None else
              "; the true labels are unknown."))
    return figs.block(fig, alt, cap, "fig-transition")


def _short(name: str) -> str:
    return name if len(name) <= 10 else name[:9] + "…"


# ------------------------------------------------------------------------------------------------------ thumbnails


def _thumbnail_png(image: np.ndarray) -> bytes:
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    img = Image.fromarray(arr.astype(np.uint8))
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    w, h = img.size
    if max(w, h) < THUMB_PX:  # small images (digits 8×8, CIFAR 32×32): enlarged in whole pixels, kept sharp
        f = max(1, THUMB_PX // max(w, h))
        img = img.resize((w * f, h * f), Image.NEAREST)
    else:
        img.thumbnail((THUMB_PX, THUMB_PX), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _file_image(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((THUMB_PX * 2, THUMB_PX * 2))
        return np.asarray(img, dtype=np.uint8)


def _images_of(table, rows: np.ndarray) -> dict[int, np.ndarray]:
    """The training images of ``rows`` from a prepared table: resident rows directly, a streamed table's files by
    path (only these few are decoded)."""
    import os

    images = getattr(table, "images", None)
    out = {}
    for i in rows.tolist():
        if not 0 <= i < len(table):
            continue
        if images is not None:
            out[i] = np.asarray(images[i])
        else:
            out[i] = _file_image(os.path.join(table.root, table.paths[i]))
    return out


def _prepare_table(run: _Run):
    """The run's training table, prepared again from its saved config (for ``noisyclr report``); None and a note
    when that fails or does not match the run's ``train_labels.csv``."""
    from .data.prepare import prepare_data

    try:
        data = prepare_data(run.cfg)
    except (UserError, OSError, ValueError) as exc:
        run.notes.append(f"The training images could not be loaded again from the saved config ({exc}); the label "
                         "issues are listed without thumbnails.")
        return None
    if run.given is not None and (len(data.train) != len(run.given) or
                                  not np.array_equal(np.asarray(data.train.labels), run.given)):
        run.notes.append("The training data loaded from the saved config does not match this run's "
                         "train_labels.csv (the dataset changed); the label issues are listed without thumbnails.")
        return None
    return data


# ------------------------------------------------------------------------------------------------------ 2-D points


def division_points(method) -> list[tuple[np.ndarray, np.ndarray]]:
    """The points of a 2-D GMM division (PLReMix / BPT-PLR) kept by the method after its last ``divide``: per
    network, the min-max-normalised classification and prototype losses of the given labels. Empty for a method
    without one."""
    info = getattr(method, "info", None)
    if not isinstance(info, (list, tuple)):
        return []
    from .losses import cross_entropy
    from .selection import minmax_normalize

    labels = method.ctx.train.labels
    out = []
    for item in info:
        if not isinstance(item, dict) or "proto_logits" not in item or "logits" not in item:
            continue
        pair = [minmax_normalize(cross_entropy(logits, labels.to(logits.device)).detach()).cpu().numpy()
                for logits in (item["logits"], item["proto_logits"])]
        out.append((pair[0], pair[1]))
    return out


def _recompute_points(run: _Run, data, restore) -> list[tuple[np.ndarray, np.ndarray]]:
    """The last division of a PLReMix / BPT-PLR run recomputed from its checkpoint (``noisyclr report``): one eval
    pass over the training set per network, skipped on the CPU above :data:`RECOMPUTE_CPU_LIMIT` samples.

    ``restore(cfg, data, checkpoint) -> method`` rebuilds the trained method (:func:`noisyclr.engine.restore_method`,
    passed in by the CLI and the API: the engine imports this module for its end-of-run page, so this module does
    not import the engine); None skips the recomputation."""
    from .rundir import CHECKPOINT

    if restore is None or getattr(run.cfg.method, "name", None) not in ("plremix", "bpt_plr") or data is None:
        return []
    if not (run.path / CHECKPOINT).is_file() or getattr(data.train, "images", None) is None:
        return []
    from .context import resolve_device

    cfg = run.cfg
    if resolve_device(cfg.train.device).type == "cpu" and len(data.train) > RECOMPUTE_CPU_LIMIT:
        run.notes.append(f"The 2-D division scatter is drawn at the end of a run; recomputing it here would need an "
                         f"eval pass over {len(data.train):,} samples on the CPU, so it was skipped.")
        return []
    try:
        cfg.log.progress = "off"
        method = restore(cfg, data, run.path / CHECKPOINT)
        method.sample_report()
        return division_points(method)
    except (UserError, RuntimeError, ValueError, KeyError) as exc:
        run.notes.append(f"The 2-D division could not be recomputed from the checkpoint ({str(exc)[:160]}).")
        return []


# ------------------------------------------------------------------------------------------------------ page


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #ffffff; color: #1b1b1b; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
  "Noto Sans", "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; line-height: 1.25; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-top: .6rem; border-top: 1px solid #d6d6d6; }
.sub { color: #4a4a4a; margin: 0 0 1rem; }
a { color: #0b57a4; }
.note { background: #fff7e0; border-left: 4px solid #8a6100; padding: .5rem .8rem; margin: .8rem 0; }
dl.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: .6rem; margin: 1rem 0; }
dl.cards div { border: 1px solid #cfcfcf; border-radius: 6px; padding: .5rem .7rem; background: #fafafa; }
dl.cards dt { font-size: .8rem; color: #4a4a4a; }
dl.cards dd { margin: 0; font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
dl.cards dd small { font-size: .8rem; font-weight: 400; color: #4a4a4a; }
nav ul { display: flex; flex-wrap: wrap; gap: .3rem 1.1rem; padding: 0; list-style: none; margin: .5rem 0; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { font-size: .92rem; color: #333333; margin-top: .3rem; max-width: 80ch; }
table { border-collapse: collapse; font-size: .88rem; font-variant-numeric: tabular-nums; margin: .5rem 0; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d0d0d0; padding: .2rem .5rem; text-align: right; }
th { background: #f1f1f1; }
td.l, th.l { text-align: left; }
.scroll { overflow-x: auto; max-width: 100%; }
ol.issues { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr));
  gap: .8rem; }
ol.issues li { border: 1px solid #cfcfcf; border-radius: 6px; padding: .5rem; background: #fcfcfc; }
ol.issues figure { margin: 0; }
ol.issues img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; display: block;
  margin: 0 auto .35rem; border: 1px solid #bdbdbd; background: #ffffff; }
ol.issues figcaption { font-size: .82rem; margin: 0; }
.verdict { font-weight: 600; }
.wrong { color: #8a2b00; }
.right { color: #1f5e1f; }
details { margin: .6rem 0; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f6f6; border: 1px solid #dddddd; padding: .7rem; overflow-x: auto; font-size: .82rem; }
"""


def _name(names: list[str], label: int) -> str:
    if 0 <= label < len(names):
        name = names[label]
        return str(label) if name == str(label) else f"{label} ({name})"
    return "out of distribution" if label < 0 else str(label)


def _class_names(run: _Run, table) -> list[str]:
    names = list(getattr(table, "class_names", None) or [])
    if names:
        return [str(n) for n in names]
    c = (run.summary or {}).get("num_classes")
    if not isinstance(c, int):
        seen = [a.max(initial=-1) for a in (run.given, run.true) if a is not None]
        if run.issues is not None:
            seen += [run.issues.suggested.max(initial=-1), run.issues.given.max(initial=-1)]
        c = int(max(seen, default=-1)) + 1
    return [str(i) for i in range(c)]


def _headline(run: _Run, names: list[str]) -> str:
    s = run.summary or {}
    cfg = run.cfg
    method = s.get("method") or getattr(cfg.method, "name", "?")
    dataset = s.get("dataset") or cfg.dataset.name
    noise = s.get("noise") or {"kind": cfg.noise.kind, "rate": cfg.noise.rate}
    kind, rate = noise.get("kind"), noise.get("rate")
    noise_text = "no added label noise" if kind == "none" else f"{kind} label noise {_pct(rate) if rate else ''}".strip()
    rows = run.metrics
    cards = []

    def card(label, value, small=""):
        cards.append(f"<div><dt>{_esc(label)}</dt><dd>{value}{f' <small>{small}</small>' if small else ''}</dd></div>")

    e, acc = _series(rows, "test_acc")
    if len(acc):
        card("final test accuracy", _pct(acc[-1]), f"epoch {int(e[-1])}")
        card("best test accuracy", _pct(acc.max()), f"epoch {int(e[acc.argmax()])}")
    last = rows[-1] if rows else {}
    actual = noise.get("actual_rate")
    if actual is None and run.given is not None and run.true is not None:
        actual = float(np.mean(run.given != run.true))
    if actual is not None:
        card("labels truly wrong", _pct(actual))
    if run.issues is not None:
        flagged = int(run.issues.is_issue.sum())
        card("labels flagged", f"{flagged:,}", f"{_pct(flagged / max(len(run.issues.given), 1))} of "
             f"{len(run.issues.given):,}")
    for key, label in (("label_precision", "labeled-set precision"), ("label_recall", "labeled-set recall"),
                       ("clean_auc", "clean AUC")):
        if isinstance(last.get(key), (int, float)):
            card(label, _pct(last[key]) if key != "clean_auc" else f"{last[key]:.3f}")
    if isinstance(s.get("wall_time_s"), (int, float)):
        card("wall time", f"{s['wall_time_s']:.0f} s", _esc(f"{s.get('device', '')}"))
    title = f"{method} on {dataset}: {noise_text}"
    desc = getattr(cfg, "description", "") or ""
    parts = [f"<h1>{_esc(title)}</h1>",
             f'<p class="sub">{_esc(desc)}{" · " if desc else ""}{len(names)} classes · {len(rows)} epoch{"" if len(rows) == 1 else "s"} logged · '
             f"run folder <code>{_esc(run.path)}</code></p>"]
    if run.summary is None:
        parts.append(f'<p class="note">This run has not finished (no summary.json): {len(rows)} of '
                     f"{cfg.train.epochs} epochs are logged.</p>")
    if cards:
        parts.append(f'<dl class="cards">{"".join(cards)}</dl>')
    return "\n".join(parts)


def _metrics_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = ["epoch"] + [k for k in ("phase", "test_acc") if any(k in r for r in rows)]
    keys += sorted({k for r in rows for k in r if k.startswith("test_acc_net")})
    keys += [k for k in ("val_acc", "labeled_size", "label_precision", "label_recall", "clean_auc", "train_loss",
                         "lr", "epoch_time_s") if any(k in r for r in rows)]
    keys += [k for k in _other_keys(rows) if k not in keys]
    head = "".join(f'<th scope="col">{_esc(k)}</th>' for k in keys)
    body = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            text = v if isinstance(v, str) else ("" if v is None or isinstance(v, (list, dict)) else _num(v, 4))
            cells.append(f'<td{" class=l" if isinstance(v, str) else ""}>{_esc(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<details><summary>The numbers per epoch (metrics.jsonl)</summary><div class="scroll"><table>'
            f"<caption>Per-epoch metrics</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></div></details>")


def _issues_section(run: _Run, names: list[str], images: dict[int, np.ndarray], top: int) -> str:
    iss = run.issues
    if iss is None:
        return ("<p>This run has no <code>labels.csv</code> or <code>label_issues.csv</code> (its method keeps no "
                "per-sample clean probability); <code>noisyclr detect</code> ranks the labels of a run.</p>")
    k = min(top, len(iss.index))
    src = ("<code>label_issues.csv</code> (<code>p_wrong</code>, ranked by <code>noisyclr detect</code>)"
           if iss.source == "label_issues.csv" else
           "<code>labels.csv</code>, ranked by ascending clean probability of the last division "
           "(<code>p_wrong</code> = 1 − <code>clean_prob</code>)")
    parts = [f"<p>The {k} training labels most likely wrong, from {src}; {int(iss.is_issue.sum()):,} of "
             f"{len(iss.index):,} are flagged. The suggested label is the trained model's prediction"
             + (" with its probability" if iss.confidence is not None else "") + ".</p>"]
    items = []
    for r in range(k):
        i, g, s = int(iss.index[r]), int(iss.given[r]), int(iss.suggested[r])
        conf = "" if iss.confidence is None or not math.isfinite(iss.confidence[r]) else f" ({_pct(iss.confidence[r])})"
        lines = [f"<strong>#{r + 1}</strong> · sample {i}",
                 f"given: <strong>{_esc(_name(names, g))}</strong>",
                 f"suggested: <strong>{_esc(_name(names, s))}</strong>{conf}",
                 f"p_wrong {iss.p_wrong[r]:.2f}{'' if iss.is_issue[r] else ' (not flagged)'}"]
        alt = f"Training sample {i}: given label {_name(names, g)}, suggested {_name(names, s)}"
        if iss.true is not None:
            t = int(iss.true[r])
            if t < 0:
                lines.append('<span class="verdict wrong">✗ out-of-distribution image</span>')
            elif t != g:
                lines.append(f'<span class="verdict wrong">✗ wrong label; true {_esc(_name(names, t))}</span>')
            else:
                lines.append('<span class="verdict right">✓ given label is correct</span>')
            alt += f", true {_name(names, t)}"
        if iss.paths is not None and iss.paths[r]:
            lines.append(f"<code>{_esc(iss.paths[r])}</code>")
            alt += f", file {iss.paths[r]}"
        image = images.get(i)
        img = ""
        if image is not None:
            png = _thumbnail_png(image)
            img = f'<img src="{_data_uri(png)}" alt="{_esc(alt)}" width="96" height="96">'
        items.append(f"<li><figure>{img}<figcaption>{'<br>'.join(lines)}</figcaption></figure></li>")
    parts.append(f'<ol class="issues">{"".join(items)}</ol>')
    return "\n".join(parts)


def _summary_table(summary: dict | None) -> str:
    if not summary:
        return "<p>No summary.json yet (the run has not finished).</p>"

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    rows = "".join(f'<tr><th scope="row" class="l">{_esc(k)}</th><td class="l">'
                   f"{_esc(_num(v, 4) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)}</td></tr>"
                   for k, v in flat(summary))
    return f'<div class="scroll"><table><caption>summary.json</caption><tbody>{rows}</tbody></table></div>'


def render(run: _Run, *, table=None, points=None, top: int = TOP_ISSUES) -> str:
    """The page of ``run`` (see the module docstring). ``table``: the prepared training table, for class names and
    thumbnails; ``points``: the 2-D division's points (:func:`division_points`)."""
    names = _class_names(run, table)
    rows = run.metrics
    figs = _Figures()
    sections = []
    nav = []

    def section(sid, title, body):
        if body:
            nav.append(f'<li><a href="#{sid}">{_esc(title)}</a></li>')
            sections.append(f'<section id="{sid}" aria-labelledby="{sid}-h"><h2 id="{sid}-h">{_esc(title)}</h2>'
                            f"{body}</section>")

    if not figs.available:
        run.notes.append("The figures need matplotlib, which is not installed: pip install matplotlib, then "
                         f"noisyclr report {run.path}.")
    training = []
    if figs.available and rows:
        training = [f for f in (_accuracy_figure(figs, rows), _division_figure(figs, rows),
                                _training_figure(figs, rows)) if f]
    if rows:
        section("training", "Training", "\n".join(training) + _metrics_table(rows))
    else:
        section("training", "Training", "<p>No epoch has been logged yet (metrics.jsonl is empty).</p>")
    if run.issues is not None and figs.available:
        division = [_histogram_figure(figs, run.issues)]
        if points:
            division.append(_scatter_figure(figs, points, run.given, run.true))
        section("division", "Clean probability", "\n".join(f for f in division if f))
        section("transition", "Noise transition", _matrix_figure(figs, run.issues, names))
    images = {}
    if run.issues is not None and table is not None:
        try:
            images = _images_of(table, run.issues.index[:top])
        except (OSError, UserError, ValueError) as exc:
            run.notes.append(f"The thumbnails could not be read ({exc}).")
    section("issues", "Labels most likely wrong", _issues_section(run, names, images, top))
    section("summary", "Summary", _summary_table(run.summary))
    section("config", "Config", f"<details><summary>config.yaml (the resolved config; <code>noisyclr train "
                                f"config.yaml --out NEW</code> reproduces the run)</summary><pre>"
                                f"{_esc(run.config_text)}</pre></details>")
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in run.notes)
    title = f"noisyclr report: {getattr(run.cfg.method, 'name', '?')} on {run.cfg.dataset.name}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="color-scheme" content="light"><title>{_esc(title)}</title><style>{_CSS}</style></head>\n'
            f"<body><main>\n<header>{_headline(run, names)}{notes}"
            f'<nav aria-label="Sections"><ul>{"".join(nav)}</ul></nav></header>\n'
            + "\n".join(sections) +
            f'\n<footer><p class="sub">Written by noisyclr {_esc(_version())} from {_esc(run.path)}.</p></footer>'
            "\n</main></body></html>\n")


def _version() -> str:
    from . import __version__

    return __version__


def _select_epochs(rows: list[dict], epochs) -> list[dict]:
    if epochs is None:
        return rows
    if isinstance(epochs, tuple) and len(epochs) == 2 and not isinstance(epochs, range):
        first, last = epochs
        return [r for r in rows if (first is None or r.get("epoch", 0) >= first)
                and (last is None or r.get("epoch", 0) <= last)]
    wanted = set(int(e) for e in epochs)
    return [r for r in rows if r.get("epoch") in wanted]


def write_report(run_dir, out=None, *, epochs=None, table=None, points=None, restore=None) -> Path:
    """Write ``report.html`` for the run folder ``run_dir`` (default ``run_dir/report.html``, or ``out``); returns
    its path.

    ``epochs``: the epochs the per-epoch figures show, ``(first, last)`` (inclusive, either may be None) or an
    iterable of epoch numbers; None: all. ``table`` (the prepared training table) and ``points`` (the 2-D
    division's points) are what the end of a run already holds; without them the training data is prepared again
    from the saved config for the thumbnails, and a PLReMix / BPT-PLR division is recomputed from the checkpoint
    with ``restore`` (:func:`noisyclr.engine.restore_method`; None: no recomputation).
    A missing folder or one that is not a run is a UserError.
    """
    from .io import atomic_write_text

    run_dir = Path(run_dir)
    run = _load_run(run_dir)
    run.metrics = _select_epochs(run.metrics, epochs)
    target = Path(out) if out is not None else run_dir / REPORT
    if target.is_dir():
        raise UserError(f"--out {target} is a folder; give the path of the HTML file to write, e.g. {target / REPORT}")
    if not target.parent.is_dir():
        raise UserError(f"cannot write {target}: the folder {target.parent} does not exist")
    if table is None and run.issues is not None:
        data = _prepare_table(run)
        table = data.train if data is not None else None
        if points is None:
            points = _recompute_points(run, data, restore)
    atomic_write_text(target, render(run, table=table, points=points))
    return target


def report_after_run(out_dir, table, method=None) -> Path | None:
    """The end-of-run ``report.html`` (``log.report``): the prepared training table and the method's last division
    are passed in, so nothing is decoded or evaluated again. Never raises: a failure is one warning line."""
    try:
        points = division_points(method) if method is not None else []
        return write_report(out_dir, table=table, points=points)
    except Exception as exc:  # the run has finished and its results are written: a report must not fail it
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        print(f"noisyclr: warning: report.html was not written ({type(exc).__name__}{': ' + detail if detail else ''}); "
              f"write it with 'noisyclr report {out_dir}'", file=sys.stderr)
        return None
