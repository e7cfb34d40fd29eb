"""Method ``simclr`` (Chen et al. 2020) and ``noisyclr pretrain``: a label-free encoder for ``model.init``.

The pretraining stage of Ghosh & Lan (spec §3.1, simclr-pytorch's CIFAR recipe): per step a batch of B training
images (labels unused), two independent ``contrastive`` views each (random resized crop 0.08-1, flip, colour
jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, **no** mean/std normalisation), one backbone pass over the
2B views (batch-norm statistics shared by both views), projection head, NT-Xent with τ = 0.5 over the 2B anchors
(:func:`noisyclr.losses.nt_xent`; every other view in the batch is a negative). LARS or SGD with the engine's
per-step warm-up + cosine schedule (``train.optimizer``, ``train.schedule=cosine``, ``train.cosine_per_step``).

Projection head: the network's projector ``Linear(d, h) → BN → ReLU → Linear(h, proj_dim)`` followed, with
``final_bn`` (default), by ``BatchNorm1d(proj_dim)`` whose shift is frozen at 0, as simclr-pytorch's
``BatchNorm1dNoBias``. Embeddings are L2-normalised inside the loss.

Per epoch ``test_acc`` is the **weighted k-NN accuracy** of the (L2-normalised) backbone features on the test set
against the training set with its given labels (k = 200, τ = 0.1, Wu et al. 2018; ``knn_acc`` holds the same value).
The labels only serve this monitor; training never reads them.

:func:`pretrain` (the ``noisyclr pretrain`` verb) runs the engine and then :func:`export_encoder` writes, next to
the usual run files, ``encoder.pt`` (a plain backbone state dict: ``torch.load(..., weights_only=True)``) and
``model_card.json`` (data, model, recipe, loss curve, k-NN accuracy curve, timing, SHA-256 of the encoder).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..distributed import is_main_process
from ..errors import UserError
from ..losses import nt_xent
from .base import Method
from .configs import SimCLRConfig

__all__ = ["Embedder", "SimCLR", "SimCLRConfig", "export_encoder", "knn_predict", "pretrain"]


@torch.no_grad()
def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, query: torch.Tensor, num_classes: int, *,
                k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted k-NN class prediction (Wu et al. 2018, the SimCLR / TCL monitor) for each row of ``query``.

    Features are L2-normalised; for each query the ``k`` most cosine-similar training rows vote for their label with
    weight ``exp(s / temperature)``; the class with the largest vote wins.

    Args:
        train_features: ``(N, D)``.
        train_labels: ``(N,)`` int64 in ``[0, num_classes)``.
        query: ``(M, D)``.
        k: neighbours (clipped to N).
        chunk: queries per similarity block (memory ``chunk × N``).

    Returns:
        ``(M,)`` int64 predictions.
    """
    bank = F.normalize(train_features.float(), dim=1)
    q_all = F.normalize(query.float(), dim=1)
    k = max(1, min(int(k), bank.shape[0]))
    preds = []
    for start in range(0, q_all.shape[0], chunk):
        sim = q_all[start:start + chunk] @ bank.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device, dtype=sim.dtype)
        votes.scatter_add_(1, train_labels[idx], torch.exp(top / temperature))
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=query.device)


class Embedder(nn.Module):
    """``images → projections``: backbone, projector and the optional final BN, as one module (one compile unit)."""

    def __init__(self, net: nn.Module, out_bn: nn.Module | None):
        super().__init__()
        self.net, self.out_bn = net, out_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net.project(self.net.forward_features(x))
        return z if self.out_bn is None else self.out_bn(z)


class SimCLR(Method):
    distributed = True
    Config = SimCLRConfig
    description = "SimCLR self-supervised pretraining (NT-Xent, 2 views, LARS/SGD); test_acc = k-NN accuracy"

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        m = self.mcfg
        net = ctx.build_network(proj_dim=m.proj_dim, proj_hidden=m.proj_hidden, proj_bn=True)
        self.nets = [net]
        out_bn = None
        if m.final_bn:
            out_bn = ctx.sync_norm(nn.BatchNorm1d(m.proj_dim)).to(ctx.device)
            out_bn.bias.requires_grad_(False)  # simclr-pytorch BatchNorm1dNoBias: the shift stays 0
            self.nets.append(out_bn)
        embedder = Embedder(net, out_bn)
        self.optimizers = [ctx.optimizer(embedder)]
        self.embed = ctx.compiled(embedder)  # images -> raw projections (the loss normalises them)
        self.views = ctx.views(["contrastive", "contrastive"], crop_scale=tuple(m.crop_scale),
                               color_strength=m.color_strength, p_jitter=m.p_jitter, p_gray=m.p_gray)
        if m.drop_last and len(ctx.train) < cfg.train.batch_size:
            raise UserError(
                f"train.batch_size={cfg.train.batch_size} exceeds the {len(ctx.train)} training images and SimCLR "
                "drops the last partial batch; lower train.batch_size or set method.drop_last=false"
            )
        self.epoch = -1

    def eval_nets(self) -> list[nn.Module]:
        return self.nets[:1]

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """NT-Xent over the 2B anchors of the two views' projections ``(B, D)`` each."""
        return nt_xent(torch.stack([z1, z2], dim=1), temperature=self.mcfg.temperature)

    def train_epoch(self, epoch: int) -> dict:
        ctx, opt = self.ctx, self.optimizers[0]
        self.epoch = epoch
        bs, drop_last = self.cfg.train.batch_size, self.mcfg.drop_last
        steps = ctx.train.num_batches(bs, drop_last=drop_last)
        for net in self.nets:
            net.train()
        total = torch.zeros((), device=ctx.device)
        images, rows, lr = 0, 0, 0.0
        batches = ctx.train.batches(bs, self.views, ctx.generator, drop_last=drop_last)
        for step, batch in enumerate(ctx.progress(batches, steps, f"epoch {epoch + 1}")):
            lr = ctx.schedule(opt, epoch, step, steps)
            n = len(batch)
            with ctx.autocast():
                z = self.embed(torch.cat(batch.views))  # one pass over both views: shared BN statistics
            # under torchrun the negatives are every rank's views (gathered with gradients)
            z = ctx.dist.gather_blocks_with_grad(z, [n, n], [batch.size, batch.size])
            loss = self.loss(z[: batch.size], z[batch.size :])
            ctx.step(loss, opt)
            total += loss.detach() * batch.size  # accumulated on the device: no host sync per step
            rows += batch.size
            images += n
        return {"train_loss": float(total) / max(rows, 1), "images": images, "lr": lr}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """k-NN test accuracy of the backbone features (``unit`` view, no normalisation), every ``knn_every`` epochs."""
        m = self.mcfg
        last = self.epoch + 1 >= self.cfg.train.epochs or self.epoch < 0
        if m.knn_k == 0 or not (last or (self.epoch + 1) % m.knn_every == 0):
            return {"test_acc": None}
        ctx = self.ctx
        feats = lambda net, x: net.forward_features(x)  # noqa: E731
        (train_f,) = ctx.eval_pass(self.nets[:1], ctx.train, forward=feats, view="unit")
        (test_f,) = ctx.eval_pass(self.nets[:1], ctx.test, forward=feats, view="unit")
        pred = knn_predict(train_f, ctx.train.labels, test_f, ctx.num_classes, k=m.knn_k, temperature=m.knn_temperature)
        acc = float((pred == ctx.test.labels).float().mean())
        return {"test_acc": acc, "knn_acc": acc}


# ------------------------------------------------------------------------------------------------------------------
# noisyclr pretrain


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
    from ..config import config_to_dict, load_saved_config
    from ..engine import CHECKPOINT, CONFIG, SUMMARY, load_checkpoint, save_checkpoint
    from ..io import atomic_write_json
    from ..models.init import ENCODER_FILE, MODEL_CARD, read_encoder
    from ..tracking import read_metrics

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
    from ..config import load_saved_config
    from ..engine import CONFIG, run_training

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
