"""Typed configuration tree: YAML presets + ``key=value`` overrides, validated with clear errors.

A run is described by one :class:`Config`. It is built from a preset (a YAML file shipped in
``noisyclr/presets/`` or any path), then ``section.key=value`` overrides from the command line. Every key is
checked against the dataclasses below; an unknown key or a value of the wrong type raises
:class:`~noisyclr.errors.UserError` naming the key and the closest valid one. The method section is typed by the
chosen method: each method class carries its own ``Config`` dataclass (see ``noisyclr/methods``).

A preset may start with ``inherit: <preset name or path>``; its keys are then merged over that preset's.
The fully resolved config is written to every run folder as ``config.yaml``; training again from that file
reproduces the run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


@dataclass
class DatasetConfig:
    name: str = "digits"
    root: str | None = None
    cache_dir: str | None = None
    # Source-specific options (e.g. synthetic: num_classes, image_size, train_size; folder: image_size).
    options: dict = field(default_factory=dict)
    # Train and test on these classes of the source only, relabelled 0..k-1 in the order given (before any noise);
    # the others can be the OOD pool (noise.ood_source=classes). null = all classes.
    classes: list[int] | None = None
    # Per-channel normalisation in [0, 1] units; null = the source's default (published constants or data stats).
    mean: list[float] | None = None
    std: list[float] | None = None
    # Stratified subset of the training set (after noise injection, so reference noise files still apply);
    # for short CPU benchmarks. null = all.
    train_limit: int | None = None
    test_limit: int | None = None
    # Clean held-out split (Ghosh & Lan: 1,000 CIFAR training images, never corrupted): drawn stratified by the
    # true class from the training set after noise injection and given back its true labels; the rest trains.
    # Used as MW-Net meta data and for model selection (val_acc). 0 = none. Needs known clean labels.
    clean_holdout: int = 0
    # Streaming (the folder and mini_imagenet_cnwl sources): the splits stay files on disk and DataLoader workers
    # decode each batch; off = decode everything once into a table held on the device; auto = stream only when that
    # table (train + test, uint8) would exceed resident_limit_gb. The other sources are always resident.
    stream: str = "auto"  # auto | on | off
    resident_limit_gb: float = 8.0
    # Worker processes that decode streamed batches (null = one per core, at most 8; 0 = the training process).
    stream_workers: int | None = None
    stream_prefetch: int = 2  # batches each worker decodes ahead
    # ImageNet-scale views (docs/data.md, "Views at ImageNet scale"): the train views crop crop x crop out of the
    # decoded square (random: RandomCrop(crop), no padding, augment.padding unused; resized: RandomResizedCrop(crop),
    # scale 0.08-1) and the test view centre-crops it; at most the image side. null = no crop (pad-and-crop).
    crop: int | None = None
    crop_mode: str = "random"  # random | resized

    CHOICES = {"stream": ("auto", "on", "off"), "crop_mode": ("random", "resized")}
    RANGES = {
        "mean": ("[0, 1]", "[0.4914,0.4822,0.4465]"),
        "std": ("(0, inf)", "[0.247,0.243,0.261]"),
        "train_limit": ("[1, inf)", "5000"),
        "test_limit": ("[1, inf)", "1000"),
        "classes": ("[0, inf)", "[0,1,2,3,4]"),
        "clean_holdout": "[0, inf)",
        "resident_limit_gb": "(0, inf)",
        "stream_workers": ("[0, inf)", "4"),
        "stream_prefetch": "[1, inf)",
        "crop": ("[1, inf)", "224"),
    }


@dataclass
class NoiseConfig:
    kind: str = "none"  # none | sym | asym | file | human
    rate: float = 0.0
    seed: int = 123  # the DivideMix-family noise files were generated with random.seed(123)
    exclude_true: bool = False  # sym: draw the new label among the C-1 other classes
    asym_map: str | None = None  # null = chosen from the dataset (cifar10, cifar100_next_in_block, pairflip)
    file: str | None = None  # JSON list in dataset order, or CSV path,label
    column: str | None = None  # CSV label column (e.g. CIFAR-10N 'worst')
    order_file: str | None = None  # CSV path,index mapping a JSON list in original order onto folder paths
    # Out-of-distribution label noise (docs/data.md, "Out-of-distribution label noise"): int(ood_rate * N) training
    # slots get an image of no training class and keep their label; the ID noise above then selects each other slot
    # with probability rate / (1 - ood_rate), so about rate * N overall (Manifold DivideMix's composition).
    ood_rate: float = 0.0
    # where the OOD images come from: classes (the source's training images of the classes dataset.classes leaves
    # out), folder (every image under ood_root, e.g. Places365), imagenet32 (ood_root holds train_data_batch_1..10),
    # or the name of a dataset source (its train split; ood_root and ood_options as dataset.root / dataset.options)
    ood_source: str | None = None
    ood_root: str | None = None
    ood_options: dict = field(default_factory=dict)
    ood_classes: list[int] | None = None  # classes / a dataset source: only these classes of the pool (null = all)

    RANGES = {"rate": "[0, 1]", "seed": "[0, 4294967295]", "ood_rate": "[0, 1)",
              "ood_classes": ("[0, inf)", "[5,6,7,8,9]")}


def check_noise_keys(noise: NoiseConfig, dataset: DatasetConfig) -> None:
    """The cross-key checks of the noise section and dataset.classes (one-line UserErrors)."""
    from .data.ood import OOD_POOLS  # torch-free (NumPy, Pillow)

    if dataset.classes is not None:
        if len(dataset.classes) < 2 or len(set(dataset.classes)) != len(dataset.classes):
            raise UserError(f"dataset.classes must list at least 2 different classes, got {dataset.classes}; "
                            "e.g. dataset.classes=[0,1,2,3,4]")
    if noise.ood_rate == 0:
        return
    if noise.ood_source is None:
        raise UserError(f"noise.ood_rate={noise.ood_rate:g} needs noise.ood_source (where the OOD images come from: "
                        f"{', '.join(OOD_POOLS)} or a dataset name), e.g. noise.ood_source=classes")
    if noise.kind in ("sym", "asym") and noise.rate + noise.ood_rate > 1 + 1e-12:
        raise UserError(f"noise.rate + noise.ood_rate must be at most 1 (the ID noise selects rate / (1 - ood_rate) "
                        f"of the other slots), got {noise.rate:g} + {noise.ood_rate:g}; lower one of them")
    if dataset.stream == "on":
        raise UserError("noise.ood_rate replaces training images in memory, which a streamed run does not hold; "
                        "set dataset.stream=off")
    source = noise.ood_source
    if source == "classes":
        if dataset.classes is None:
            raise UserError("noise.ood_source=classes draws OOD images from the classes dataset.classes leaves out; "
                            "set dataset.classes, e.g. dataset.classes=[0,1,2,3,4]")
        shared = sorted(set(noise.ood_classes or ()) & set(dataset.classes))
        if shared:
            raise UserError(f"noise.ood_classes and dataset.classes share class {shared[0]}; an OOD image must come "
                            "from a class that is not trained on")
    elif source == dataset.name and source not in OOD_POOLS:  # the folder pool is not the folder source
        raise UserError(f"noise.ood_source={source} is the training dataset itself; use noise.ood_source=classes "
                        "with dataset.classes to draw OOD images from its other classes")
    if source in ("folder", "imagenet32") and noise.ood_root is None:
        raise UserError(f"noise.ood_source={source} needs noise.ood_root=PATH (the folder of the OOD images)")
    if source in OOD_POOLS and noise.ood_options:
        raise UserError(f"noise.ood_options applies to a dataset source, not noise.ood_source={source}; drop it")
    if source in ("folder", "imagenet32") and noise.ood_classes is not None:
        raise UserError(f"noise.ood_classes applies to classes or a dataset source, not noise.ood_source={source}; "
                        "drop it")


def check_crop_keys(dataset: DatasetConfig) -> None:
    """dataset.crop against the side the source is told to decode to (the prepared images are checked again when
    the views are built: :func:`noisyclr.augment.views.check_crop`); crop_mode only with a crop."""
    if dataset.crop is None:
        if dataset.crop_mode != "random":
            raise UserError(f"dataset.crop_mode={dataset.crop_mode} needs dataset.crop=N (the side of the crop), "
                            "e.g. dataset.crop=224")
        return
    side = dataset.options.get("image_size") if isinstance(dataset.options, dict) else None
    if isinstance(side, int) and not isinstance(side, bool) and dataset.crop > side:
        raise UserError(f"dataset.crop={dataset.crop} is larger than the {side}x{side} images "
                        f"(dataset.options.image_size={side}); e.g. dataset.crop={side} or null (no crop)")


@dataclass
class ModelConfig:
    backbone: str = "small_cnn"
    width: int | None = None
    proj_dim: int | None = None
    proj_hidden: int | None = None
    # Pretrained encoder for the backbone (noisyclr pretrain's encoder.pt, its run folder, or a run's checkpoint.pt):
    # projector dropped, classifier zero-initialised (see noisyclr/models/init.py).
    init: str | None = None
    # Local torchvision-format checkpoint (e.g. resnet50-0676ba61.pth, the V1 weights the seeds use) for the backbone only; never downloaded
    # (see noisyclr/models/pretrained.py, docs/models.md).
    pretrained: str | None = None

    RANGES = {"width": ("[1, inf)", "16"), "proj_dim": ("[1, inf)", "128"), "proj_hidden": ("[1, inf)", "512")}


@dataclass
class AugmentConfig:
    padding: int = 4  # pad-and-crop padding of the weak view (4 for 32x32 CIFAR, 1 for 8x8 digits)
    flip: bool = True

    RANGES = {"padding": "[0, inf)"}


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    optimizer: str = "sgd"  # sgd | lars (SimCLR: LARS, norm-layer parameters and biases excluded)
    lars_trust: float = 0.001  # LARS trust coefficient eta
    no_decay_bn: bool = False  # no weight decay on normalisation-layer parameters (Ghosh & Lan fine-tuning)
    schedule: str = "constant"  # constant | step | multistep | cosine
    milestones: list[int] = field(default_factory=list)  # multistep
    step_size: int = 0  # step: decay every step_size epochs
    gamma: float = 0.1
    cosine_tmax: int | None = None  # cosine period in epochs (null = epochs)
    eta_min: float = 0.0  # cosine floor (torch CosineAnnealingLR eta_min; BPT-PLR 2e-4)
    cosine_per_step: bool = False
    lr_warmup_epochs: float = 0.0  # linear learning-rate ramp (fractional epochs allowed); not method.warmup_epochs
    cosine_after_warmup: bool = False  # cosine position counted from the end of lr_warmup_epochs (TCL)
    lr_reference_batch: int | None = None  # lr and eta_min are per this batch: scaled by batch_size / it (TCL: 256)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; bf16/fp16 meant for CUDA)
    compile: bool = False
    channels_last: bool | None = None  # null = on for CUDA, off for CPU
    eval_batch_size: int = 1024
    threads: int | None = None  # torch intra-op threads on the CPU (null = torch default)
    fused_optimizer: bool | None = None  # SGD's fused kernel (null = on for CUDA, off for CPU: foreach there)
    sync_bn: bool = False  # under torchrun: batch-norm statistics over the global batch (SyncBatchNorm)
    # the nets the final test scores: last (the last epoch's) | best_val (each net at its best clean-val accuracy,
    # DivideMix's Clothing1M protocol; needs a val split: the source's, or dataset.clean_holdout)
    select: str = "last"

    RANGES = {
        "epochs": "[1, inf)",
        "batch_size": "[2, inf)",  # batch norm needs 2 samples
        "lr": "(0, inf)",
        "momentum": "[0, 1)",
        "weight_decay": "[0, inf)",
        "lars_trust": "(0, inf)",
        "milestones": ("[1, inf)", "[150]"),
        "step_size": ("[0, inf)", "30"),
        "gamma": ("(0, inf)", "0.1"),
        "cosine_tmax": ("[1, inf)", "300"),
        "eta_min": "[0, inf)",
        "lr_warmup_epochs": "[0, inf)",
        "lr_reference_batch": ("[1, inf)", "256"),
        "seed": "[0, 4294967295]",  # NumPy's seed range
        "eval_batch_size": "[1, inf)",
        "threads": ("[1, 1024]", "1"),
    }


@dataclass
class LogConfig:
    progress: str = "auto"  # auto (bar only on a terminal) | on | off
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "noisyclr"
    wandb_mode: str = "offline"
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always saved)
    report: bool = True  # write report.html (figures, label issues) at the end of the run

    RANGES = {"checkpoint_every": "[1, inf)"}


@dataclass
class Config:
    description: str = ""
    method: Any = None  # the chosen method's own Config dataclass
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)


_CHOICES = {
    "noise.kind": ("none", "sym", "asym", "file", "human"),
    "train.schedule": ("constant", "step", "multistep", "cosine"),
    "train.optimizer": ("sgd", "lars"),
    "train.select": ("last", "best_val"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "log.progress": ("auto", "on", "off"),
    "log.wandb_mode": ("offline", "online", "disabled"),
}

# The names of noisyclr.models.BACKBONES (a torch module), so that a typo is answered before torch is imported;
# tests/test_hardening.py checks the two agree.
BACKBONE_NAMES = ("inception_resnet_v2", "preact_resnet18", "preact_resnet18_bn", "resnet18", "resnet34", "resnet50",
                  "resnet50_imagenet", "small_cnn", "vgg19_bn")
_CHOICES["model.backbone"] = BACKBONE_NAMES


# --------------------------------------------------------------------------------------------------------------
# presets


def preset_dir() -> Path:
    """Folder of the presets shipped inside the package."""
    return Path(str(resources.files("noisyclr") / "presets"))


def list_presets() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every shipped preset, sorted by name."""
    out = []
    for path in sorted(preset_dir().glob("*.yaml")):
        raw = _read_yaml(path)
        out.append((path.stem, str(raw.get("description", "")).strip().splitlines()[0] if raw.get("description") else ""))
    return out


def _find_preset(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = preset_dir() / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = [p.stem for p in preset_dir().glob("*.yaml")]
    close = difflib.get_close_matches(str(name_or_path), names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(
        f"no preset or YAML file named '{name_or_path}'; {hint}run 'noisyclr presets' to list presets, "
        "or pass the path of a .yaml file"
    )


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                        "save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}; check the path and its permissions") from None
    except yaml.YAMLError as exc:
        raise UserError(f"cannot read config file {path}: {str(exc).splitlines()[0]}; fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "options":
            out[key] = _deep_merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_raw(name_or_path: str, _seen: tuple = ()) -> dict:
    """The preset's raw mapping with ``inherit:`` chains resolved (child keys win)."""
    path = _find_preset(name_or_path)
    if path.resolve() in _seen:
        raise UserError(f"preset {path} inherits from itself; remove the cycle in its 'inherit:' chain")
    raw = _read_yaml(path)
    parent = raw.pop("inherit", None)
    if parent:
        base = load_raw(str(parent), _seen + (path.resolve(),))
        raw = _deep_merge(base, raw)
    return raw


def parse_overrides(items: list[str]) -> dict:
    """Turn ``["train.lr=0.1", "noise.kind=sym"]`` into a nested dict; values are parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override '{item}' is not of the form section.key=value (e.g. train.epochs=5)")
        key, _, value = item.partition("=")
        key = key.strip()
        if not key:
            raise UserError(f"override '{item}' has an empty key; write section.key=value")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{item}' sets a key below '{part}', which is not a section")
        node[parts[-1]] = parsed
    return out


# --------------------------------------------------------------------------------------------------------------
# typed construction


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value, tp, key: str):
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats. Returns the value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError as exc:
                errors.append(exc)
        raise errors[0]
    if tp is Any:
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{key}' must be a list, got {value!r}; write e.g. {key}=[1,2]")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, bool):  # YAML 1.1 reads a bare on/off as a boolean: log.progress=off
            return "on" if value else "off"
    elif isinstance(value, tp):
        return value
    raise UserError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")


_INTERVAL = re.compile(r"^([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])$")


def parse_interval(spec: str) -> tuple[float, float, bool, bool]:
    """``"[0, 1)"`` → ``(0.0, 1.0, True, False)``: bounds and whether each is included (``inf`` allowed)."""
    m = _INTERVAL.match(spec)
    if not m:
        raise ValueError(f"bad interval {spec!r}")
    return float(m.group(2)), float(m.group(3)), m.group(1) == "[", m.group(4) == "]"


def _interval_words(spec: str) -> str:
    lo, hi, lo_in, _ = parse_interval(spec)
    if math.isinf(hi):
        if lo == 0 and not lo_in:
            return "positive"
        bound = int(lo) if lo.is_integer() else lo
        return f"at least {bound}" if lo_in and lo != 0 else (f">= {bound}" if lo_in else f"> {bound}")
    return f"in {spec}"


def in_interval(value: float, spec: str) -> bool:
    """Whether ``value`` is a finite number inside the interval ``spec``."""
    lo, hi, lo_in, hi_in = parse_interval(spec)
    if not math.isfinite(value):
        return False
    return (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)


def check_ranges(section, prefix: str) -> None:
    """Check every key of ``section`` named in its class's ``RANGES`` (see :mod:`noisyclr.method_configs`).

    One UserError naming the key, its valid range, the value given and a valid example (the default, or the spec's
    own example). Lists are checked element by element; null passes (the type decides whether null is allowed).
    """
    for key, spec in getattr(type(section), "RANGES", {}).items():
        interval, example = spec if isinstance(spec, tuple) else (spec, None)
        value = getattr(section, key)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None or in_interval(item, interval):
                continue
            if example is None:
                default = next(f for f in dataclasses.fields(section) if f.name == key)
                example = default.default if default.default is not dataclasses.MISSING else default.default_factory()
                example = yaml.safe_dump(example, default_flow_style=True).strip().removesuffix("...").strip()
            words = _interval_words(interval)
            if not math.isfinite(item):
                words = f"a finite number ({words})"
            raise UserError(f"{prefix}.{key} must be {words}, got {value!r}; e.g. {prefix}.{key}={example}")


# Keys that were renamed: the old spelling is refused with the new one (a saved run's config.yaml is migrated).
RENAMED = {
    "train.warmup_epochs": ("train.lr_warmup_epochs",
                            "the learning-rate ramp, in epochs; a method's warm-up phase is method.warmup_epochs"),
}


def build_section(cls, raw: dict | None, prefix: str):
    """Instantiate dataclass ``cls`` from ``raw``; unknown keys, wrong types and values outside ``cls.RANGES``
    are UserErrors. An empty section (``train:`` with nothing below) is the defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config section '{prefix}' must be a mapping of keys, got {raw!r}; "
                        f"write e.g. '{prefix}:' followed by indented 'key: value' lines")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            if f"{prefix}.{key}" in RENAMED:
                new, what = RENAMED[f"{prefix}.{key}"]
                raise UserError(f"config key '{prefix}.{key}' is now '{new}' ({what}); rename it")
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean '{prefix}.{close[0]}'?" if close else f"valid keys: {', '.join(sorted(fields))}"
            raise UserError(f"unknown config key '{prefix}.{key}'; {hint}")
        full = f"{prefix}.{key}"
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = build_section(hints[key], value, full)
            continue
        kwargs[key] = _coerce(value, hints[key], full)
        choices = _CHOICES.get(full) or getattr(cls, "CHOICES", {}).get(key)
        if choices and kwargs[key] is not None and kwargs[key] not in choices:
            close = difflib.get_close_matches(str(kwargs[key]), choices, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"config key '{full}' must be one of {', '.join(choices)}, got '{kwargs[key]}'; {hint}".rstrip("; "))
    section = cls(**kwargs)
    check_ranges(section, prefix)
    return section


def build_config(raw: dict) -> Config:
    """A validated :class:`Config` from a raw nested mapping (preset merged with overrides)."""
    from .method_configs import method_config_class

    raw = dict(raw)
    top = {f.name for f in dataclasses.fields(Config)}
    for key in raw:
        if key not in top:
            close = difflib.get_close_matches(key, sorted(top), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid sections: {', '.join(sorted(top))}"
            raise UserError(f"unknown config key '{key}'; {hint}")
    method_raw = raw.pop("method", None)
    if method_raw is not None and not isinstance(method_raw, dict):
        raise UserError(f"config section 'method' must be a mapping of keys, got {method_raw!r}; "
                        "write e.g. 'method:' followed by an indented 'name: dividemix'")
    method_raw = dict(method_raw or {})
    name = method_raw.pop("name", "standard")
    method_cls = method_config_class(name)
    method = build_section(method_cls, method_raw, "method")
    method.name = name
    sections = {}
    hints = typing.get_type_hints(Config)
    for key, value in raw.items():
        if key == "description":
            sections[key] = "" if value is None else str(value)
        else:
            sections[key] = build_section(hints[key], value, key)
    cfg = Config(method=method, **sections)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-key checks that a single type annotation cannot express."""
    # (single-key ranges are checked as each section is built: check_ranges)
    if cfg.noise.kind in ("file", "human") and not cfg.noise.file:
        raise UserError(f"noise.kind={cfg.noise.kind} needs noise.file=PATH (a JSON list or a CSV path,label)")
    check_noise_keys(cfg.noise, cfg.dataset)
    check_crop_keys(cfg.dataset)
    if cfg.train.schedule == "multistep" and not cfg.train.milestones:
        raise UserError("train.schedule=multistep needs train.milestones=[...] (epochs at which lr is multiplied by gamma)")
    if cfg.train.schedule == "step" and cfg.train.step_size < 1:
        raise UserError("train.schedule=step needs train.step_size=N (decay every N epochs), e.g. train.step_size=30")
    if cfg.model.pretrained is not None and cfg.model.init is not None:
        raise UserError("model.pretrained and model.init both load the backbone; set one of them (pretrained: a "
                        "torchvision checkpoint, init: a noisyclr pretrain encoder)")
    check = getattr(cfg.method, "check", None)
    if check:
        check(cfg)


def check_paths(cfg: Config) -> None:
    """The paths a config names, checked before torch and the data are loaded: the dataset source and its root,
    the noise and order files, the encoder of ``model.init`` (one-line UserErrors). The source's own layout is
    checked when it loads."""
    from .data.sources import check_source

    d = cfg.dataset
    check_source(d.name, d.root, d.options)
    if d.cache_dir is not None and Path(d.cache_dir).expanduser().exists() and not Path(d.cache_dir).expanduser().is_dir():
        raise UserError(f"dataset.cache_dir {d.cache_dir} is a file; point it at a folder (or leave it null)")
    for key, value in (("noise.file", cfg.noise.file), ("noise.order_file", cfg.noise.order_file)):
        if value is not None and cfg.noise.kind in ("file", "human") and not Path(value).expanduser().is_file():
            raise UserError(f"{key} {value} does not exist or is not a file; give the path of the noisy-label file")
    if cfg.noise.ood_rate > 0:
        from .data.ood import check_ood_source

        check_ood_source(cfg.noise.ood_source, cfg.noise.ood_root, cfg.noise.ood_options)
    if cfg.model.init is not None and not Path(cfg.model.init).expanduser().exists():
        raise UserError(f"model.init {cfg.model.init} does not exist; give an encoder.pt (noisyclr pretrain), its run "
                        "folder, or a run's checkpoint.pt")
    if cfg.model.pretrained is not None and not Path(cfg.model.pretrained).expanduser().is_file():
        raise UserError(f"model.pretrained {cfg.model.pretrained} does not exist or is not a file; copy the torchvision "
                        "checkpoint (e.g. resnet50-0676ba61.pth, the V1 weights the seeds use) to this machine and give its path (docs/models.md)")


def load_config(preset: str, overrides: list[str] | None = None) -> Config:
    """Resolve ``preset`` (name or YAML path) with ``key=value`` overrides into a validated :class:`Config`."""
    raw = load_raw(preset)
    raw = _deep_merge(raw, parse_overrides(overrides or []))
    return build_config(raw)


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict of ``cfg`` (the method section includes its ``name``)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: Path) -> None:
    """Write the fully resolved config as YAML (atomically)."""
    from .io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_saved_config(path: Path) -> Config:
    """Re-read a run's ``config.yaml`` (one written before a key was renamed reads under the new name)."""
    return build_config(migrate_renamed(_read_yaml(path)))


def migrate_renamed(raw: dict) -> dict:
    """``raw`` with every :data:`RENAMED` key moved to its new name (saved configs only: a user's spelling of an
    old key is answered with the new one)."""
    raw = dict(raw)
    for old, (new, _) in RENAMED.items():
        (sec, key), (new_sec, new_key) = old.split("."), new.split(".")
        if isinstance(raw.get(sec), dict) and key in raw[sec]:
            value = raw[sec][key]
            raw[sec] = {k: v for k, v in raw[sec].items() if k != key}
            raw[new_sec] = {**(raw.get(new_sec) or {}), new_key: value}
    return raw
