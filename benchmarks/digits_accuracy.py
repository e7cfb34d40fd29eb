"""Digits accuracy table: CE vs DivideMix vs PLReMix (and any other preset) on the embedded 8x8 digits, over seeds.

    python benchmarks/digits_accuracy.py [--presets a b ...] [--noise sym50 sym80 asym40] [--rates 0.5 0.8]
                                         [--seeds 3] [--jobs J] [--threads 1] [--out runs/digits-seeds]
                                         [--reference-noise] [--append benchmarks/RESULTS.md] [key=value ...]

A thin front end of ``benchmarks/seeds.py`` (see its docstring for the seed mapping, the noise settings, the
collapse rule, skipping of finished runs and ``results.json``) with the digits defaults: the CE, DivideMix and
PLReMix digits presets, ``train.device=cpu``, 3 seeds, 50% symmetric noise. ``--rates 0.5 0.8`` is the older
spelling of ``--noise sym50 sym80`` (it replaces ``--noise``). On digits ``asymNN`` is the pair flip c→c+1 mod 10
(digits has no class map of its own). Each run is its own process with ``train.threads``; by default as many run
at a time as the cores allow (``--jobs 1`` for wall times that match a single run alone on the machine).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seeds  # noqa: E402

from noisyclr.errors import UserError  # noqa: E402

DEFAULT = ["standard-ce-digits-sym50", "dividemix-digits-sym50", "plremix-digits-sym50"]


def translate_rates(argv: list[str]) -> list[str]:
    """``--rates 0.5 0.8`` -> ``--noise sym50 sym80`` (the preset's noise kind, symmetric for every digits preset)."""
    if "--rates" not in argv:
        return argv
    if any(a == "--noise" or a.startswith("--noise=") for a in argv):
        raise UserError("give either --rates or --noise, not both (--rates 0.5 0.8 is --noise sym50 sym80)")
    i = argv.index("--rates")
    j = i + 1
    rates = []
    while j < len(argv) and not argv[j].startswith("-") and "=" not in argv[j]:
        rates.append(argv[j])
        j += 1
    try:
        tokens = [f"sym{round(float(r) * 100)}" for r in rates]
    except ValueError:
        raise UserError(f"--rates takes numbers in [0, 1], got {' '.join(rates)}") from None
    if not tokens:
        raise UserError("--rates needs at least one rate, e.g. --rates 0.5 0.8")
    return argv[:i] + ["--noise", *tokens] + argv[j:]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    defaults = {"presets": DEFAULT, "noise": ["sym50"], "seeds": 3, "out": "runs/digits-seeds",
                "overrides": ["train.device=cpu"], "title": "digits accuracy over seeds"}
    try:
        argv = translate_rates(argv)
    except UserError as exc:
        print(f"digits_accuracy.py: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    return seeds.main(argv, defaults=defaults, prog="benchmarks/digits_accuracy.py")


if __name__ == "__main__":
    sys.exit(main())
