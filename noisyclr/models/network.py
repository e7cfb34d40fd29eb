"""Backbone + linear classifier + optional projection head: the model every method trains."""

from __future__ import annotations

import torch
import torch.nn as nn


class Network(nn.Module):
    """A backbone with a classifier and an optional 2-layer projector.

    Args:
        backbone: module mapping ``(B, C, H, W)`` images to ``(B, feat_dim)`` features; must expose ``feat_dim``.
        num_classes: outputs of ``classifier = Linear(feat_dim, num_classes)``.
        proj_dim: output size of the projector; ``None`` builds no projector.
        proj_hidden: hidden size of the projector (default ``feat_dim``).
        proj_bn: put BatchNorm after the projector's first layer (SimCLR) or not (PLReMix / BPT-PLR).

    The projector is ``Linear(feat_dim, hidden) → [BN →] ReLU → Linear(hidden, proj_dim)``. Projections come back
    raw; methods L2-normalise them where their loss needs it.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, proj_dim: int | None = None,
                 proj_hidden: int | None = None, proj_bn: bool = True):
        super().__init__()
        self.backbone = backbone
        self.feat_dim = int(backbone.feat_dim)
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(self.feat_dim, self.num_classes)
        self.projector = None
        if proj_dim is not None:
            hidden = proj_hidden or self.feat_dim
            norm = [nn.BatchNorm1d(hidden)] if proj_bn else []
            self.projector = nn.Sequential(
                nn.Linear(self.feat_dim, hidden), *norm, nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim),
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, feat_dim)`` backbone features."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, num_classes)`` logits."""
        return self.classifier(self.backbone(x))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, feat_dim)`` features → ``(B, proj_dim)`` raw projections; raises if there is no projector."""
        if self.projector is None:
            raise RuntimeError("this Network has no projector; build it with proj_dim=...")
        return self.projector(features)

    def forward_all(self, x: torch.Tensor):
        """One backbone pass → ``(logits, features, projections)``; projections are ``None`` without a projector."""
        features = self.backbone(x)
        logits = self.classifier(features)
        proj = self.projector(features) if self.projector is not None else None
        return logits, features, proj
