"""``model.init``: start a network from a pretrained encoder (Ghosh & Lan).

Method: docs/methods/simclr_finetune.md, "2. Initialisation".

The encoder file written by ``noisyclr pretrain`` (``encoder.pt``) is a plain state dict of the **backbone** (keys
as in ``Network.backbone``, e.g. ``conv1.weight``), saved with ``torch.save`` and loadable with
``torch.load(weights_only=True)``. Next to it, ``model_card.json`` records how it was made (backbone, width, input
channels, input convention, data, loss curve, k-NN accuracy).

:func:`load_encoder` mirrors the seed's fine-tuning model:

* only the backbone is loaded (strictly: every key, every shape); a projection head in the file is dropped and the
  network's own projector, if it has one, keeps its fresh initialisation;
* the classifier ``Linear(feat_dim, C)`` gets **zero** weights and bias, as the seed does for its SimCLR and
  ImageNet32 initialisations (so the first logits are all 0 and the first gradient reaches only the head);
* anything that does not fit (wrong backbone, width or number of input channels) is one :class:`UserError` line
  that names the mismatch and what the model card says the encoder was trained with.

Accepted files (:func:`read_encoder`): an ``encoder.pt``; a noisyclr run folder (its ``encoder.pt``, else its
``checkpoint.pt``); a run's ``checkpoint.pt`` (first network); any state dict whose keys start with
``backbone.``, ``module.`` or ``_orig_mod.`` (prefixes stripped, ``projector.*`` / ``classifier.*`` dropped).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import UserError

__all__ = ["ENCODER_FILE", "MODEL_CARD", "encoder_state_dict", "load_encoder", "read_encoder", "read_model_card",
           "resolve_init_path"]

ENCODER_FILE = "encoder.pt"
MODEL_CARD = "model_card.json"
_HEADS = ("projector.", "classifier.")
_WRAPPERS = ("module.", "_orig_mod.")


def encoder_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone of ``net`` (a :class:`~noisyclr.models.network.Network`) as CPU tensors (contiguous, detached)."""
    backbone = net.backbone if hasattr(net, "backbone") else net
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in backbone.state_dict().items()}


def resolve_init_path(path: str | Path) -> Path:
    """A run folder resolves to its ``encoder.pt``, else its ``checkpoint.pt``; a missing path is a UserError."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in (ENCODER_FILE, "checkpoint.pt"):
            if (p / name).is_file():
                return p / name
        raise UserError(
            f"model.init={path} is a folder without {ENCODER_FILE} or checkpoint.pt; "
            "pass the encoder written by 'noisyclr pretrain PRESET --out DIR' (DIR/encoder.pt)"
        )
    if not p.is_file():
        raise UserError(
            f"model.init={path} does not exist; run 'noisyclr pretrain PRESET --out DIR' first "
            "(e.g. noisyclr pretrain simclr-digits --out runs/pretrain/simclr-digits) or fix the path"
        )
    return p


def read_model_card(path: str | Path) -> dict | None:
    """The ``model_card.json`` beside an encoder file (or in a run folder), or ``None``."""
    p = Path(path)
    card = (p if p.is_dir() else p.parent) / MODEL_CARD
    if not card.is_file():
        return None
    try:
        data = json.loads(card.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPERS:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def read_encoder(path: str | Path) -> dict[str, torch.Tensor]:
    """Backbone state dict from ``path`` (see the module docstring for the accepted layouts), on the CPU."""
    file = resolve_init_path(path)
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise UserError(
            f"model.init={path} cannot be read as a weights-only state dict ({type(exc).__name__}); "
            "pass an encoder.pt written by 'noisyclr pretrain' or a noisyclr checkpoint.pt"
        ) from None
    if isinstance(payload, dict) and isinstance(payload.get("method"), dict) and payload["method"].get("nets"):
        payload = payload["method"]["nets"][0]  # a noisyclr run checkpoint: its (first) network
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise UserError(
            f"model.init={path} is not a state dict of tensors; pass an encoder.pt written by 'noisyclr pretrain'"
        )
    state = {_strip(str(k)): v for k, v in payload.items()}
    if any(k.startswith("backbone.") for k in state):  # a whole Network: keep the backbone, drop the heads
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    else:
        state = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    return state


def _shape(t) -> str:
    return "x".join(str(d) for d in t.shape) or "scalar"


def _card_hint(card: dict | None) -> str:
    if not card:
        return "pass the model.backbone / model.width the encoder was pretrained with"
    m = card.get("model", {})
    return (
        f"its model card says backbone={m.get('backbone')}, width={m.get('width')}, "
        f"in_channels={m.get('in_channels')}: pass the same model.backbone / model.width on data with as many channels"
    )


def _check_input_convention(path, card: dict | None, mean, std) -> None:
    """An encoder pretrained on unnormalised [0, 1] inputs must be fine-tuned on the same inputs."""
    if not card or mean is None or std is None:
        return
    if card.get("input", {}).get("normalisation") != "none":
        return
    if any(abs(float(m)) > 1e-6 for m in mean) or any(abs(float(s) - 1.0) > 1e-6 for s in std):
        zeros = ",".join("0" for _ in mean)
        ones = ",".join("1" for _ in std)
        raise UserError(
            f"the encoder in model.init={path} was pretrained on unnormalised [0, 1] inputs (SimCLR, no mean/std), "
            f"but this run normalises with mean {[round(float(m), 4) for m in mean]} and std "
            f"{[round(float(s), 4) for s in std]}; set dataset.mean=[{zeros}] dataset.std=[{ones}] "
            "(the *-simclr-* presets do)"
        )


def load_encoder(net: nn.Module, path: str | Path, *, backbone: str | None = None, width: int | None = None,
                 mean=None, std=None, zero_classifier: bool = True) -> dict:
    """Load the pretrained backbone at ``path`` into ``net.backbone``; zero the classifier.

    Args:
        net: a :class:`~noisyclr.models.network.Network` (on any device; weights are copied in place).
        path: encoder file, run folder or run checkpoint (see :func:`read_encoder`).
        backbone, width: the run's ``model.backbone`` / ``model.width``, only for the error message.
        mean, std: the run's input normalisation; checked against the model card's input convention.
        zero_classifier: zero-initialise ``net.classifier`` (the seed's choice).

    Returns:
        ``{"path": resolved path, "tensors": number of tensors loaded, "card": model card or None}``.

    Raises:
        UserError: unreadable file, missing / unexpected keys or a shape mismatch (one line), or an input
        normalisation that differs from the one the encoder was pretrained with.
    """
    file = resolve_init_path(path)
    card = read_model_card(file)
    state = read_encoder(file)
    target = net.backbone.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatch(es) (e.g. {k}: file {_shape(state[k])}, model {_shape(target[k])})"
            )
            first = next((key for key, v in target.items() if v.ndim == 4), None)  # the stem convolution
            if first in shapes and state[first].ndim == 4 and state[first].shape[1] != target[first].shape[1]:
                parts.append(
                    f"the encoder takes {state[first].shape[1]}-channel images but this data has "
                    f"{target[first].shape[1]} channels"
                )
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[0]})")
        arch = f"model.backbone={backbone or type(net.backbone).__name__}" + (f" width={width}" if width else "")
        raise UserError(f"model.init={path} does not fit {arch}: {', '.join(parts)}; {_card_hint(card)}")
    _check_input_convention(path, card, mean, std)
    with torch.no_grad():
        for key, value in target.items():
            value.copy_(state[key])
        # only a linear classifier: zeroing the last layer of an MLP with BN on the logits would divide by ~0
        if zero_classifier and isinstance(getattr(net, "classifier", None), torch.nn.Linear):
            net.classifier.weight.zero_()
            if net.classifier.bias is not None:
                net.classifier.bias.zero_()
    return {"path": str(file), "tensors": len(target), "card": card}
