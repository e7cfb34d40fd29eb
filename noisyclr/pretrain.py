"""``noisyclr pretrain``: train a self-supervised (SimCLR) config, then export its encoder for ``model.init``.

:func:`pretrain` runs the engine on a ``method.name=simclr`` config (:mod:`noisyclr.methods.simclr`) and
:func:`export_encoder` writes, next to the usual run files, ``encoder.pt`` (a plain backbone state dict:
``torch.load(..., weights_only=True)``) and ``model_card.json`` (data, model, recipe, loss curve, k-NN accuracy
curve, timing, SHA-256 of the encoder). It lives beside the engine, not among the methods: it drives a run.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from .config import config_to_dict, load_saved_config
from .distributed import is_main_process
from .engine import CHECKPOINT, CONFIG, SUMMARY, load_checkpoint, run_training, save_checkpoint
from .errors import UserError
from .io import atomic_write_json
from .models.init import ENCODER_FILE, MODEL_CARD, read_encoder
from .tracking import read_metrics

__all__ = ["export_encoder", "pretrain"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_encoder(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``encoder.pt`` and ``model_card.json`` into the finished SimCLR run folder ``out_dir``.

    Reads only the run folder (``config.yaml``, ``checkpoint.pt``, ``metrics.jsonl``, ``summary.json``), so it also
    works after a resumed run. Returns ``(encoder path, model card path)``.
    """

    out = Path(out_dir)
    cfg = load_saved_config(out / CONFIG)
    load_checkpoint(out / CHECKPOINT)  # a clear UserError if it is missing or corrupt
    state = read_encoder(out / CHECKPOINT)  # the backbone of the first network, heads dropped
    encoder = out / ENCODER_FILE
    save_checkpoint(encoder, state)  # atomic torch.save of a plain dict of tensors
    metrics = read_metrics(out)
    summary = json.loads((out / SUMMARY).read_text()) if (out / SUMMARY).is_file() else {}
    knn = [m.get("knn_acc") for m in metrics]
    knn_last = next((v for v in reversed(knn) if v is not None), None)
    first = next(iter(state.values()))
    conv = next((v for k, v in state.items() if v.ndim == 4), first)
    card = {
        "format": "noisyclr-encoder/1",
        "encoder_file": ENCODER_FILE,
        "sha256": _sha256(encoder),
        "load": "torch.load(path, weights_only=True) -> backbone state dict; in noisyclr: model.init=PATH",
        "model": {
            "backbone": cfg.model.backbone,
            "width": cfg.model.width,
            "in_channels": int(conv.shape[1]) if conv.ndim == 4 else None,
            "tensors": len(state),
            "parameters": int(sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running" not in k)),
        },
        "input": {
            "normalisation": "none",
            "range": [0.0, 1.0],
            "note": "SimCLR inputs are x/255 with no mean/std; fine-tune with dataset.mean=0 and dataset.std=1",
        },
        "data": {
            "dataset": cfg.dataset.name,
            "root": cfg.dataset.root,
            "options": cfg.dataset.options,
            "train_limit": cfg.dataset.train_limit,
            "num_train": summary.get("num_train"),
            "num_test": summary.get("num_test"),
            "labels_used_for_training": False,
        },
        "recipe": {
            "method": config_to_dict(cfg)["method"],
            "train": asdict(cfg.train),
            "views": "contrastive x2: RandomResizedCrop(scale=crop_scale, bicubic), flip, colour jitter "
            "(0.8s,0.8s,0.8s,0.2s) p_jitter, grayscale p_gray, [0,1]",
        },
        "epochs": len(metrics),
        "loss_curve": [m.get("train_loss") for m in metrics],
        "lr_curve": [m.get("lr") for m in metrics],
        "knn_acc_curve": knn,
        "knn_test_acc": knn_last,
        "knn": {
            "k": cfg.method.knn_k,
            "temperature": cfg.method.knn_temperature,
            "features": "L2-normalised backbone features, unit view",
            "bank": "training images with their given labels",
        },
        "wall_time_s": summary.get("wall_time_s"),
        "images_per_s": summary.get("images_per_s"),
        "device": summary.get("device"),
        "seed": cfg.train.seed,
        "version": summary.get("version"),
        "torch": summary.get("torch", torch.__version__),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(out / MODEL_CARD, card)
    return encoder, out / MODEL_CARD


def pretrain(cfg=None, out_dir: str | Path = None, *, resume: bool = False, overrides: list[str] | None = None):
    """Train a SimCLR config into ``out_dir`` (or resume it) and export the encoder.

    Returns ``(RunResult, encoder path, model card path)``. A config whose ``method.name`` is not ``simclr`` is a
    UserError (use ``noisyclr train`` for those).
    """

    if resume:
        saved = Path(out_dir) / CONFIG
        if saved.is_file() and load_saved_config(saved).method.name != "simclr":
            raise UserError(
                f"{out_dir} is not a pretraining run (method.name is not simclr); use noisyclr train --resume"
            )
    elif cfg is None or cfg.method.name != "simclr":
        name = None if cfg is None else cfg.method.name
        raise UserError(
            f"noisyclr pretrain needs a self-supervised preset (method.name=simclr), got method.name={name}; "
            "use e.g. simclr-digits, or 'noisyclr train' for supervised methods"
        )
    result = run_training(cfg, out_dir, resume=resume, overrides=overrides)
    if not is_main_process():  # under torchrun rank 0 writes the encoder
        return result, result.out_dir / "encoder.pt", result.out_dir / "model_card.json"
    encoder, card = export_encoder(result.out_dir)
    return result, encoder, card
