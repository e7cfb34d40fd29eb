"""Bad numbers and bad config files: one line, exit 2, no run folder, and answered before torch is imported."""

import dataclasses
import json
import subprocess
import sys
import typing

import pytest

from noisyclr.cli import main
from noisyclr.config import Config, check_ranges, in_interval, load_config

TINY = ["dataset.name=synthetic",
        "dataset.options={num_classes: 3, image_size: 8, train_size: 48, test_size: 24}",
        "train.epochs=1", "train.batch_size=16", "train.device=cpu", "model.width=8", "log.progress=off"]


def one_line_error(capsys, args):
    code = main(args)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# every number the matrix found accepted or ending in a traceback, with the words its one line must hold
BAD_NUMBERS = [
    (["train.lr=.inf"], "train.lr must be a finite number (positive), got inf; e.g. train.lr=0.02"),
    (["train.lr=.nan"], "train.lr must be a finite number"),
    (["train.momentum=-1"], "train.momentum must be in [0, 1), got -1.0; e.g. train.momentum=0.9"),
    (["train.weight_decay=-1"], "train.weight_decay must be >= 0, got -1.0; e.g. train.weight_decay=0.0005"),
    (["train.eval_batch_size=0"], "train.eval_batch_size must be at least 1, got 0; e.g. train.eval_batch_size=1024"),
    (["train.seed=-1"], "train.seed must be in [0, 4294967295], got -1; e.g. train.seed=0"),
    (["train.seed=1099511627776"], "train.seed must be in [0, 4294967295], got 1099511627776"),
    (["train.threads=-1"], "train.threads must be in [1, 1024], got -1; e.g. train.threads=1"),
    (["dataset.train_limit=-5"], "dataset.train_limit must be at least 1, got -5; e.g. dataset.train_limit=5000"),
    (["model.width=0"], "model.width must be at least 1, got 0; e.g. model.width=16"),
    (["model.width=-1"], "model.width must be at least 1, got -1"),
    (["train.lr_warmup_epochs=-1"], "train.lr_warmup_epochs must be >= 0, got -1.0"),
    (["train.schedule=step", "train.step_size=2", "train.gamma=-1"], "train.gamma must be positive, got -1.0"),
    (["train.milestones=[5,-2]", "train.schedule=multistep"], "train.milestones must be at least 1, got [5, -2]"),
    (["noise.seed=-3"], "noise.seed must be in [0, 4294967295]"),
    (["log.checkpoint_every=0"], "log.checkpoint_every must be at least 1"),
    (["dataset.std=[0.2,0.0,0.2]"], "dataset.std must be positive"),
    (["method.q=0"], "method.q must be in (0, 1], got 0.0; e.g. method.q=0.7"),
    (["model.backbone=resnet19"], "did you mean 'resnet18'"),
    (["train.batch_size=100000"], "train.batch_size=100000 is larger than the 48 training samples; e.g. train.batch_size=48"),
    (["dataset.train_limit=500"], "dataset.train_limit=500 is more than the 48 training samples of synthetic"),
    (["dataset.test_limit=25"], "dataset.test_limit=25 is more than the 24 test samples"),
]


@pytest.mark.parametrize("extra, needle", BAD_NUMBERS, ids=[" ".join(e) for e, _ in BAD_NUMBERS])
def test_bad_number_is_one_line_and_no_run_folder(tmp_path, capsys, extra, needle):
    out = tmp_path / "run"
    line = one_line_error(capsys, ["train", "standard-ce-digits-sym50", *TINY, *extra, "--out", str(out)])
    assert needle in line, line
    assert not out.exists()


METHOD_NUMBERS = [
    ("dividemix-digits-sym50", "method.p_threshold=1.5", "method.p_threshold must be in [0, 1]"),
    ("dividemix-digits-sym50", "method.alpha=0", "method.alpha must be positive"),
    ("dividemix-digits-sym50", "method.rampup_length=0", "method.rampup_length must be at least 1"),
    ("dividemix-digits-sym50", "method.warmup_batch_size=1000", "method.warmup_batch_size=1000 is larger than the 48"),
    ("plremix-digits-sym50", "method.proto_momentum=1.5", "method.proto_momentum must be in [0, 1]"),
    ("plremix-digits-sym50", "method.kappa=7", "method.kappa=7 is more than the 3 classes"),
    ("simclr-digits", "method.crop_scale=[0.5,0.2]", "method.crop_scale must be [min, max]"),
    ("simclr-digits", "method.knn_temperature=-1", "method.knn_temperature must be positive"),
]


@pytest.mark.parametrize("preset, extra, needle", METHOD_NUMBERS, ids=[e for _, e, _ in METHOD_NUMBERS])
def test_method_numbers(tmp_path, capsys, preset, extra, needle):
    verb = "pretrain" if preset.startswith("simclr") else "train"
    line = one_line_error(capsys, [verb, preset, *TINY, extra, "--out", str(tmp_path / "run")])
    assert needle in line, line
    assert not (tmp_path / "run").exists()


def _numeric(tp) -> bool:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list:
        return _numeric(args[0])
    if args:
        return any(_numeric(a) for a in args if a is not type(None))
    return tp in (int, float)


def _sections():
    from noisyclr.method_configs import REGISTRY

    hints = typing.get_type_hints(Config)
    yield from ((name, hints[name]) for name in ("dataset", "noise", "model", "augment", "train", "log"))
    yield from ((f"method[{name}]", cls) for name, (cls, _, _) in REGISTRY.items())


@pytest.mark.parametrize("name, cls", list(_sections()), ids=[n for n, _ in _sections()])
def test_every_numeric_key_has_a_range_and_its_default_is_in_it(name, cls):
    hints = typing.get_type_hints(cls)
    ranges = getattr(cls, "RANGES", {})
    numeric = {f.name for f in dataclasses.fields(cls) if _numeric(hints[f.name])}
    assert numeric - set(ranges) == set(), f"{name}: numeric keys without a range"
    assert set(ranges) <= numeric, f"{name}: ranges for keys that are not numeric"
    check_ranges(cls(), name)  # every default is valid


def test_interval_edges():
    assert in_interval(0.0, "[0, 1)") and not in_interval(1.0, "[0, 1)")
    assert not in_interval(0.0, "(0, inf)") and in_interval(1e300, "(0, inf)")
    assert not in_interval(float("inf"), "(0, inf)") and not in_interval(float("nan"), "[0, 1]")
    assert in_interval(4294967295, "[0, 4294967295]") and not in_interval(4294967296, "[0, 4294967295]")


def test_torch_free_names_mirror_the_torch_modules():
    from noisyclr.config import BACKBONE_NAMES
    from noisyclr.losses import CLASSIFICATION_LOSSES
    from noisyclr import method_configs as configs
    from noisyclr.models import BACKBONES
    from noisyclr.selection import SELECTION_BACKENDS

    assert tuple(BACKBONES) == BACKBONE_NAMES
    assert configs.CLASSIFICATION_LOSSES == CLASSIFICATION_LOSSES
    assert configs.SELECTION_BACKENDS == SELECTION_BACKENDS


def test_config_file_not_utf8_and_scalar_sections(tmp_path, capsys):
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("description: caf\xe9\ninherit: standard-ce-digits-sym50\n".encode("latin-1"))
    line = one_line_error(capsys, ["train", str(latin), "--out", str(tmp_path / "a")])
    assert "is not UTF-8 text" in line and "save it as UTF-8" in line
    for body in ("train: 5\n", "train: 0\n", "train: ''\n", "method: dividemix\n", "train: [1, 2]\n"):
        path = tmp_path / "scalar.yaml"
        path.write_text("inherit: standard-ce-digits-sym50\n" + body)
        line = one_line_error(capsys, ["train", str(path), "--out", str(tmp_path / "b")])
        assert "must be a mapping of keys" in line, (body, line)
    empty = tmp_path / "empty_section.yaml"  # an empty section is the defaults, as YAML users write it
    empty.write_text("inherit: standard-ce-digits-sym50\naugment:\n")
    assert load_config(str(empty)).augment.padding == 4
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


AT_ONCE = [
    ["train", "standard-ce-digits-sym50", "train.lrr=1", "--out", "{tmp}/x"],
    ["train", "standard-ce-digits-sym50", "train.momentum=-1", "--out", "{tmp}/x"],
    ["train", "standard-ce-digits-sym50", "model.backbone=resnet19", "--out", "{tmp}/x"],
    ["train", "no-such-preset", "--out", "{tmp}/x"],
    ["train", "standard-ce-digits-sym50", "dataset.name=folder", "dataset.root={tmp}/nowhere", "--out", "{tmp}/x"],
    ["train", "standard-ce-digits-sym50", "noise.kind=file", "noise.file={tmp}/none.json", "--out", "{tmp}/x"],
    ["train", "standard-ce-digits-sym50", "model.init={tmp}/no-encoder.pt", "--out", "{tmp}/x"],
    ["train", "standard-ce-digits-sym50", "--out", "{tmp}/file"],
    ["train", "--resume", "{tmp}/nothing"],
    ["pretrain", "simclr-digits", "method.temperature=0", "--out", "{tmp}/x"],
    ["evaluate", "{tmp}"],
]


def test_config_and_path_errors_answer_before_torch_is_imported(tmp_path):
    """Run each in a fresh interpreter: exit 2, one line, and torch never imported (so it answers at once)."""
    (tmp_path / "file").write_text("a user's file\n")
    script = (
        "import json, sys\n"
        "from contextlib import redirect_stderr\n"
        "import io\n"
        "from noisyclr.cli import main\n"
        "out = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    with redirect_stderr(err):\n"
        "        code = main(args)\n"
        "    out.append([code, err.getvalue(), 'torch' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    cases = [[a.replace("{tmp}", str(tmp_path)) for a in args] for args in AT_ONCE]
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for args, (code, err, torch_loaded) in zip(cases, json.loads(proc.stdout)):
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (args, err)
        assert not torch_loaded, (args, err)
    assert not (tmp_path / "x").exists()
    assert (tmp_path / "file").read_text() == "a user's file\n"
