"""The ``noisyclr`` command line.

    noisyclr train PRESET_OR_YAML [key=value ...] --out DIR
    noisyclr train --resume DIR [train.epochs=N ...]
    noisyclr pretrain PRESET_OR_YAML [key=value ...] --out DIR     (SimCLR; writes DIR/encoder.pt + model_card.json)
    noisyclr pretrain --resume DIR [train.epochs=N ...]
    noisyclr evaluate DIR
    noisyclr detect DIR [--threshold 0.5] [--score auto|division|model|mean] [--out DIR2]
    noisyclr detect --train PRESET_OR_YAML [key=value ...] --out DIR     (train, then detect in DIR)
    noisyclr report DIR [--out FILE]                                (DIR/report.html: figures, label issues)
    noisyclr presets
    noisyclr datasets
    noisyclr datasets --check ROOT --name NAME [--option key=value ...]     (validate a layout; nothing is trained)
    noisyclr convert-noise NOISE_JSON ORDER_CSV OUT_CSV

Bad input ends with one line on stderr naming the problem and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as our one-line UserError (exit 2, no usage dump)."""

    def error(self, message):
        raise UserError(f"{message}; run '{self.prog} --help' for usage")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="noisyclr", description="Learning with noisy labels via contrastive representation learning.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"noisyclr {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="train a method (a preset or YAML file, plus key=value overrides)")
    t.add_argument("preset", nargs="?", help="preset name (see 'noisyclr presets') or path of a YAML config")
    t.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.epochs=5 noise.rate=0.8")
    t.add_argument("--out", help="run folder to create (config, metrics, checkpoint, summary)")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")

    pt = sub.add_parser("pretrain", help="SimCLR pretraining (a simclr-* preset): writes encoder.pt for model.init")
    pt.add_argument("preset", nargs="?", help="a simclr-* preset (see 'noisyclr presets') or path of a YAML config")
    pt.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.epochs=100")
    pt.add_argument("--out", help="run folder to create (run files + encoder.pt + model_card.json)")
    pt.add_argument("--resume", metavar="DIR", help="continue the pretraining run in DIR, then export its encoder")

    e = sub.add_parser("evaluate", help="test accuracy of a run folder's latest checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"])

    r = sub.add_parser("report", help="write report.html (curves, division, transition matrices, label issues)")
    r.add_argument("run_dir")
    r.add_argument("--out", metavar="FILE", help="the HTML file to write (default RUN_DIR/report.html)")

    d = sub.add_parser("detect", help="rank the training labels of a run: label_issues.csv + issues_summary.json")
    d.add_argument("run_dir", nargs="?", help="a finished run folder (not with --train)")
    d.add_argument("overrides", nargs="*", help="with --train: section.key=value overrides of the preset")
    d.add_argument("--train", metavar="PRESET", help="train this preset or YAML into --out first, then detect")
    d.add_argument("--out", help="where to write the two files (default: the run folder); with --train the run folder")
    d.add_argument("--threshold", type=float, default=0.5, help="is_issue = p_wrong > threshold (default 0.5)")
    d.add_argument("--score", default="auto", help="auto (default) | division | model | mean (docs/detect.md)")

    sub.add_parser("presets", help="list the shipped presets")
    ds = sub.add_parser("datasets", help="list data sources and what each expects on disk, or check a layout")
    ds.add_argument("--check", metavar="ROOT", help="validate the layout under ROOT for the source --name and print "
                    "what was found (classes, images per split, label files); a problem: one line, exit 2")
    ds.add_argument("--name", help="with --check: the data source (see 'noisyclr datasets')")
    ds.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="with --check: a dataset.options entry, e.g. --option image_size=64 (repeatable)")
    ds.add_argument("--cache-dir", help="with --check: cache folder of sources that decode (default $NOISYCLR_CACHE)")

    c = sub.add_parser("convert-noise", help="map a noise JSON in original CIFAR order onto image-folder paths")
    c.add_argument("noise_json")
    c.add_argument("order_csv", help="CSV with path,index columns (e.g. cifar10n/labels.csv)")
    c.add_argument("out_csv")
    c.add_argument("--overwrite", action="store_true")
    return p


def _start_or_resume(args, verb: str, needs: str, out_hint: str, run):
    """``run(cfg, out_dir, resume=..., overrides=...)`` for ``noisyclr <verb>``: a new run from the preset and
    overrides into ``--out``, or the run in ``--resume`` (the overrides, and a key=value given where the preset
    goes, apply to it).

    Everything that the config and the paths can tell is checked here, before ``run`` imports torch and loads the
    data, so that a bad key, number, path or run folder is answered at once."""
    from .config import check_paths, load_config
    from .rundir import check_new, load_resume_config

    if args.resume:
        overrides = ([args.preset] if args.preset else []) + list(args.overrides)
        args.run_dir = args.resume
        check_paths(load_resume_config(args.resume, overrides, out=args.out))
        return run(None, args.resume, resume=True, overrides=overrides)
    if not args.preset:
        raise UserError(f"noisyclr {verb} needs {needs}")
    if not args.out:
        raise UserError(f"noisyclr {verb} needs --out DIR ({out_hint})")
    cfg = load_config(args.preset, list(args.overrides))
    check_paths(cfg)
    check_new(args.out)
    args.run_dir = args.out
    return run(cfg, args.out)


def _lazy(module: str, name: str):
    """``module.name`` imported when called: the verbs check their input before torch is imported."""
    import importlib

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module, __package__), name)(*args, **kwargs)

    return call


def _cmd_train(args) -> int:
    result = _start_or_resume(args, "train", "a preset or YAML file; run 'noisyclr presets' to list them",
                              "the run folder to write", _lazy(".engine", "run_training"))
    from .distributed import is_main_process

    if not is_main_process():  # under torchrun rank 0 reports for the job
        return 0
    s = result.summary
    print(
        f"{s['method']} on {s['dataset']}: test acc last {s['test_acc_last']:.4f}, best {s['test_acc_best']:.4f}, "
        f"{s['epochs']} epochs in {s['wall_time_s']:.1f}s ({s['images_per_s']:.0f} img/s) -> {result.out_dir}"
    )
    return 0


def _cmd_pretrain(args) -> int:
    result, encoder, card = _start_or_resume(
        args, "pretrain", "a preset or YAML file, e.g. simclr-digits; run 'noisyclr presets'",
        "the run folder to write, with DIR/encoder.pt", _lazy(".pretrain", "pretrain"))
    from .distributed import is_main_process

    if not is_main_process():  # under torchrun rank 0 reports for the job
        return 0
    s = result.summary
    acc = s.get("test_acc_last")
    knn = f"k-NN test acc {acc:.4f}" if acc is not None else "no k-NN accuracy"
    print(
        f"{s['method']} on {s['dataset']}: {knn}, {s['epochs']} epochs in {s['wall_time_s']:.1f}s -> encoder {encoder} "
        f"(model card {card}); fine-tune with model.init={encoder}"
    )
    return 0


def _cmd_evaluate(args) -> int:
    from pathlib import Path

    from .config import check_paths, load_saved_config

    if not (Path(args.run_dir) / "config.yaml").is_file():
        raise UserError(f"{args.run_dir} has no config.yaml; pass the --out folder of a run")
    check_paths(load_saved_config(Path(args.run_dir) / "config.yaml"))
    from .engine import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir, device=args.device), indent=2))
    return 0


def _cmd_report(args) -> int:
    from .engine import restore_method
    from .report import write_report

    print(f"wrote {write_report(args.run_dir, args.out, restore=restore_method)}")
    return 0


def _cmd_detect(args) -> int:
    from .detect import SCORES

    if args.score not in SCORES:  # before any training
        raise UserError(f"unknown detect score '{args.score}'; choose one of {', '.join(SCORES)}")
    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold must be in [0, 1], got {args.threshold:g}; e.g. --threshold 0.5")
    out = args.out
    if args.train:
        if args.run_dir:  # a key=value given where the run folder goes
            args.overrides = [args.run_dir] + list(args.overrides)
        if not args.out:
            raise UserError("noisyclr detect --train needs --out DIR (the run folder to write)")
        args.preset, args.resume = args.train, None
        _start_or_resume(args, "detect --train", "a preset", "the run folder to write", _lazy(".engine", "run_training"))
        run_dir = args.out
    else:
        if args.overrides:
            raise UserError(f"unrecognized arguments: {' '.join(args.overrides)}; key=value overrides go with --train")
        if not args.run_dir:
            raise UserError("noisyclr detect needs a run folder (or --train PRESET --out DIR)")
        run_dir = args.run_dir
    from .detect import detect_run

    issues = detect_run(run_dir, threshold=args.threshold, score=args.score, out_dir=out)
    s = issues.summary
    line = f"{s['num_issues']} of {s['num_samples']} labels flagged (p_wrong > {args.threshold:g}, score {args.score})"
    if s.get("detection"):
        d = s["detection"]
        line += (f"; against the true labels: precision {d['precision'] or 0:.3f}, recall {d['recall'] or 0:.3f}, "
                 f"F1 {d['f1'] or 0:.3f}, AUC {d['auc'] or 0:.3f}")
    print(f"{line} -> {issues.csv_path}")
    return 0


def _cmd_presets(args) -> int:
    from .config import list_presets

    rows = list_presets()
    width = max((len(name) for name, _ in rows), default=0)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_datasets(args) -> int:
    from .data.sources import describe_sources

    if args.check is not None or args.name or args.option:
        if args.check is None or not args.name:
            raise UserError("noisyclr datasets --check needs ROOT and --name NAME, e.g. noisyclr datasets --check "
                            "/data/Clothing1M --name clothing1m")
        from .data.check import check_dataset, parse_options

        found = check_dataset(args.name, args.check, options=parse_options(args.option), cache_dir=args.cache_dir)
        print("\n".join(found.lines()))
        return 0
    rows = describe_sources()
    width = max(len(name) for name, _ in rows)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_convert(args) -> int:
    from .data.noise import convert_noise_to_csv

    convert_noise_to_csv(args.noise_json, args.order_csv, args.out_csv, overwrite=args.overwrite)
    print(f"wrote {args.out_csv}")
    return 0


COMMANDS = {
    "train": _cmd_train,
    "pretrain": _cmd_pretrain,
    "evaluate": _cmd_evaluate,
    "detect": _cmd_detect,
    "report": _cmd_report,
    "presets": _cmd_presets,
    "datasets": _cmd_datasets,
    "convert-noise": _cmd_convert,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``noisyclr`` console script; returns the exit code."""
    try:
        # parse_known_args lets key=value overrides follow --out as well as precede it
        args, extra = _parser().parse_known_args(argv)
        if extra:
            bad = any("=" not in item or item.startswith("-") for item in extra)
            if args.command not in ("train", "pretrain", "detect") or bad:
                raise UserError(f"unrecognized arguments: {' '.join(extra)}; run 'noisyclr --help' for usage")
            args.overrides = list(args.overrides) + extra
        if not args.command:
            _parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"noisyclr: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print(f"noisyclr: {_interrupted_message(locals().get('args'))}", file=sys.stderr)
        return 130
    except OSError as exc:  # reading or writing outside a run folder (which reports its own): one line all the same
        where = f" {exc.filename}" if exc.filename else ""
        print(f"noisyclr: error: cannot access{where}: {exc.strerror or exc}; check the path, its permissions and the "
              "free disk space", file=sys.stderr)
        return UserError.exit_code


def _interrupted_message(args) -> str:
    """What Ctrl-C left behind: the last checkpoint, or nothing (a new run removes its folder then)."""
    from pathlib import Path

    run_dir = getattr(args, "run_dir", None)
    if run_dir is None:
        return "interrupted"
    if (Path(run_dir) / "checkpoint.pt").is_file():
        return (f"interrupted; the checkpoint of the last completed epoch is kept in {run_dir} "
                f"(continue with --resume {run_dir})")
    if Path(run_dir).is_dir():
        return f"interrupted before the first epoch was saved; continue with --resume {run_dir} (it starts at epoch 1)"
    return "interrupted before the first epoch was saved; nothing was kept, run the same command again"


if __name__ == "__main__":
    sys.exit(main())
