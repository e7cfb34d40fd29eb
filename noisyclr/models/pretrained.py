"""``model.pretrained``: start a backbone from a local checkpoint in torchvision's format (docs/models.md).

The file is what ``torch.save(torchvision.models.resnet50(weights=...).state_dict(), path)`` writes, or torchvision's
own download (``resnet50-0676ba61.pth``, ``resnet50-11ad3fa6.pth``): a state dict with torchvision's key names
(``conv1.weight``, ``bn1.running_mean``, ``layer3.5.conv2.weight``, ``layer4.0.downsample.0.weight``,
``fc.weight`` …). Nothing is ever downloaded: the path must exist on the machine that trains.

Loading (:func:`load_torchvision_weights`):

* ``torch.load(path, map_location="cpu", weights_only=True)``; the state dict may be bare or under ``state_dict``
  or ``model`` (training-script checkpoints), and its keys may carry ``module.`` (DataParallel / DDP) or
  ``_orig_mod.`` (``torch.compile``) prefixes;
* :func:`torchvision_to_backbone` renames the keys onto the backbone's modules and drops the ImageNet classifier
  ``fc.*`` (the :class:`~noisyclr.models.network.Network`'s own ``Linear(2048, C)`` keeps its fresh initialisation);
* the result must fit the backbone exactly: every key, no extra key, every shape; anything else is one
  :class:`UserError` line naming the first offending keys. The one tolerated gap is BN's ``num_batches_tracked``,
  which torchvision files saved before PyTorch 0.4.1 lack and which no forward uses (BN momentum is set).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import UserError
from .init import _strip as strip_wrappers

__all__ = ["TORCHVISION_BACKBONES", "load_torchvision_weights", "read_torchvision_checkpoint",
           "torchvision_to_backbone"]

# backbone name -> (torchvision architecture, (pattern, replacement) key renames, classifier prefix to drop)
_MAPPINGS = {
    "resnet50_imagenet": ("resnet50", ((re.compile(r"^(layer\d+\.\d+)\.downsample\."), r"\1.shortcut."),), "fc."),
}
TORCHVISION_BACKBONES = tuple(_MAPPINGS)
_SHOWN = 3  # offending keys named per kind in an error line


def _unsupported(backbone_name: str) -> UserError:
    names = ", ".join(f"{b} (torchvision {arch})" for b, (arch, _, _) in _MAPPINGS.items())
    return UserError(f"model.pretrained loads torchvision weights, which model.backbone={backbone_name} cannot take; "
                     f"use a backbone with a torchvision mapping: {names}, or drop model.pretrained")


def torchvision_to_backbone(state_dict: dict[str, torch.Tensor], backbone_name: str) -> dict[str, torch.Tensor]:
    """Rename a torchvision state dict's keys to those of backbone ``backbone_name``; drop its classifier.

    Pure: the tensors are not copied or checked (see :func:`load_torchvision_weights`). For ``resnet50_imagenet``
    (torchvision ``resnet50``, 320 keys with ``fc``) the only rename is ``layer{s}.{b}.downsample.{0,1}.*`` →
    ``layer{s}.{b}.shortcut.{0,1}.*``; ``conv1.*``, ``bn1.*`` and ``layer{s}.{b}.conv{1,2,3}`` / ``bn{1,2,3}`` keep
    their names, and ``fc.weight`` ``(1000, 2048)`` / ``fc.bias`` are dropped, leaving the backbone's 318 keys.
    ``module.`` / ``_orig_mod.`` key prefixes are stripped first.

    Args:
        state_dict: ``{torchvision key: tensor}``.
        backbone_name: a name of :data:`noisyclr.models.BACKBONES` with a torchvision mapping
            (:data:`TORCHVISION_BACKBONES`).

    Returns:
        ``{backbone key: tensor}`` (same tensor objects), in the file's order.

    Raises:
        UserError: ``backbone_name`` has no torchvision mapping.
    """
    if backbone_name not in _MAPPINGS:
        raise _unsupported(backbone_name)
    _, renames, head = _MAPPINGS[backbone_name]
    out = {}
    for key, value in state_dict.items():
        key = strip_wrappers(str(key))
        if key.startswith(head):
            continue
        for pattern, replacement in renames:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out


def read_torchvision_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``path`` (bare, or under ``state_dict`` / ``model``), keys as saved."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"model.pretrained={path} does not exist or is not a file; copy the torchvision checkpoint "
                        "(e.g. resnet50-0676ba61.pth, the V1 weights the seeds use) to this machine and give its path (docs/models.md)")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise UserError(f"model.pretrained={path} cannot be read as a weights-only state dict ({type(exc).__name__}); "
                        "save it with torch.save(model.state_dict(), path)") from None
    if isinstance(payload, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(payload.get(wrapper), dict):
                payload = payload[wrapper]
                break
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise UserError(f"model.pretrained={path} is not a state dict of tensors; save it with "
                        "torch.save(model.state_dict(), path)")
    return payload


def _examples(keys: list[str]) -> str:
    more = f", … {len(keys)} in all" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) or "scalar"


def load_torchvision_weights(backbone: nn.Module, path: str | Path, backbone_name: str) -> int:
    """Copy the torchvision checkpoint at ``path`` into ``backbone`` (in place, any device); return the number of
    tensors copied.

    Raises:
        UserError: no torchvision mapping for ``backbone_name``, a missing or unreadable file, or a state dict
        that does not fit (missing keys, unexpected keys, shape mismatches), as one line.
    """
    if backbone_name not in _MAPPINGS:
        raise _unsupported(backbone_name)
    state = torchvision_to_backbone(read_torchvision_checkpoint(path), backbone_name)
    target = backbone.state_dict()
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or shapes:
        arch = _MAPPINGS[backbone_name][0]
        parts = []
        if missing:
            parts.append(f"missing keys {_examples(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_examples(unexpected)}")
        if shapes:
            k = shapes[0]
            parts.append(f"shape mismatches {_examples(shapes)} ({k}: file {_shape(state[k])}, "
                         f"model {_shape(target[k])})")
        stem = next(k for k, v in target.items() if v.ndim == 4)
        if stem in shapes and state[stem].ndim == 4 and state[stem].shape[1] != target[stem].shape[1]:
            parts.append(f"the checkpoint takes {state[stem].shape[1]}-channel images but this data has "
                         f"{target[stem].shape[1]}")
        raise UserError(f"model.pretrained={path} does not fit model.backbone={backbone_name}: {'; '.join(parts)}; "
                        f"give the state dict of torchvision's {arch} (torchvision key names, standard width: "
                        "leave model.width unset)")
    with torch.no_grad():
        for key, value in target.items():
            if key in state:
                value.copy_(state[key])
    return sum(k in state for k in target)
