"""Backbone + linear classifier + optional projection head: the model every method trains."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from ..mixing import MixDraw

HEADS = ("logits", "features", "proj")


class Outputs(NamedTuple):
    """What :meth:`Network.forward` computed for ``heads``; a field not asked for is ``None``."""

    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None
    proj: torch.Tensor | None = None


class Network(nn.Module):
    """A backbone with a classifier and an optional 2-layer projector.

    Args:
        backbone: module mapping ``(B, C, H, W)`` images to ``(B, feat_dim)`` features, in stages: it exposes
            ``feat_dim``, ``num_stages``, ``stage(i, h)`` and ``pool(h)`` (``forward`` = pool after every stage).
        num_classes: outputs of ``classifier = Linear(feat_dim, num_classes)``.
        proj_dim: output size of the projector; ``None`` builds no projector.
        proj_hidden: hidden size of the projector (default ``feat_dim``).
        proj_bn: put BatchNorm after the projector's first layer (SimCLR) or not (PLReMix / BPT-PLR).
        proj_out_bn: put BatchNorm on the projector's output too (TCL: ``… → Linear(hidden, d) → BN``).
        classifier: ``"linear"`` (``Linear(feat_dim, C)``, every method but TCL) or ``"mlp_bn"`` (TCL:
            ``Linear(d, d) → BN → ReLU → Dropout(dropout) → Linear(d, C) → BN(C)``, batch norm on the logits).
        dropout: the dropout probability of the ``mlp_bn`` classifier (TCL 0.25).
        projector: ``"mlp"`` (the 2-layer projector below) or ``"linear"`` (``Linear(feat_dim, proj_dim) [→ BN]``,
            Manifold DivideMix's projection).

    The projector is ``Linear(feat_dim, hidden) → [BN →] ReLU → Linear(hidden, proj_dim) [→ BN]``. Projections
    come back raw; methods L2-normalise them where their loss needs it.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, proj_dim: int | None = None,
                 proj_hidden: int | None = None, proj_bn: bool = True, proj_out_bn: bool = False,
                 classifier: str = "linear", dropout: float = 0.25, projector: str = "mlp"):
        super().__init__()
        self.backbone = backbone
        self.feat_dim = d = int(backbone.feat_dim)
        self.num_classes = c = int(num_classes)
        if classifier == "linear":
            self.classifier = nn.Linear(d, c)
        elif classifier == "mlp_bn":
            self.classifier = nn.Sequential(
                nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(d, c),
                nn.BatchNorm1d(c),
            )
        else:
            raise ValueError(f"unknown classifier {classifier!r}; choose linear or mlp_bn")
        self.projector = None
        if projector not in ("mlp", "linear"):
            raise ValueError(f"unknown projector {projector!r}; choose mlp or linear")
        if proj_dim is not None:
            hidden = proj_hidden or d
            norm = [nn.BatchNorm1d(hidden)] if proj_bn else []
            out_norm = [nn.BatchNorm1d(proj_dim)] if proj_out_bn else []
            layers = [nn.Linear(d, proj_dim)] if projector == "linear" else [
                nn.Linear(d, hidden), *norm, nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim)]
            self.projector = nn.Sequential(*layers, *out_norm)

    def forward(self, x: torch.Tensor, heads: tuple[str, ...] | None = None, mix: MixDraw | None = None):
        """The one forward of every method: backbone stage by stage, then the heads asked for.

        ``x`` ``(B, C, H, W)`` images. ``heads=None`` returns the ``(B, num_classes)`` logits (the plain module
        call); a tuple of ``"logits"``, ``"features"``, ``"proj"`` returns an :class:`Outputs` record with those
        fields computed (the others ``None``): features ``(B, feat_dim)``, raw projections ``(B, proj_dim)``.

        ``mix`` (a :class:`noisyclr.mixing.MixDraw`): mix the hidden state after backbone stage ``mix.stage``
        (0: the input images) as ``λ h + (1 − λ) h[π]`` (manifold mixup, Verma et al. 2019); the caller mixes the
        targets with the same draw. With λ = 1 the result equals the unmixed forward.
        """
        backbone = self.backbone
        stages = backbone.num_stages
        if mix is not None and not 0 <= mix.stage <= stages:
            raise ValueError(f"mix.stage must be in [0, {stages}] for this backbone, got {mix.stage}")
        h = x
        if mix is not None and mix.stage == 0:
            h = mix.apply(h)
        for i in range(stages):
            h = backbone.stage(i, h)
            if mix is not None and mix.stage == i + 1:
                h = mix.apply(h)
        features = backbone.pool(h)
        if heads is None:
            return self.classifier(features)
        unknown = set(heads) - set(HEADS)
        if unknown:
            raise ValueError(f"unknown heads {sorted(unknown)}; choose from {', '.join(HEADS)}")
        if "proj" in heads and self.projector is None:
            raise RuntimeError("this Network has no projector; build it with proj_dim=...")
        return Outputs(
            logits=self.classifier(features) if "logits" in heads else None,
            features=features if "features" in heads else None,
            proj=self.projector(features) if "proj" in heads else None,
        )
