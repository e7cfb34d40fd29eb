"""Class prototypes on the unit sphere.

Method: docs/methods/plremix.md, "Prototypes and self-adaptive selection"; BPT-PLR's variant:
docs/methods/bpt_plr.md, "What it changes in PLReMix" (Prototype EMA).

A prototype matrix P (C, D) holds one unit row per class. It receives no gradient: it is initialised from class
means of the embeddings at the end of warm-up and then moved by an EMA towards the class means of selected samples.
Prototype logits g = ⟨z, P_c⟩ / τ feed the prototype loss of the 2-D GMM and the sample selection.

Two selection rules decide which samples move the prototypes:

* :func:`corrected_labels` (PLReMix's first commit and BPT-PLR): all samples, with the predicted label replaced
  by a confident combined prediction.
* :class:`AdaptiveThreshold` (PLReMix HEAD): a FreeMatch-style self-adaptive, class-aware confidence threshold.

TCL (docs/methods/tcl.md, "Noise model") uses the same unit-sphere prototypes without an EMA: one M-step
(:func:`soft_prototypes`, the classifier's posteriors as responsibilities) and one E-step (:func:`component_posterior`).

Everything is vectorised (``index_add_``) and stays on the input's device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PROTOTYPE_TEMPERATURE = 0.1
PROTOTYPE_MOMENTUM = 0.99
CORRECTION_THRESHOLD = 0.8


def _float(x: torch.Tensor) -> torch.Tensor:
    """At least float32: embeddings from autocast may be float16, and the means need the precision."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _class_sums(
    embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums (C, D) and counts (C,) of the embeddings, over the samples where ``mask`` is True."""
    z = _float(embeddings)
    labels = labels.to(device=z.device, dtype=torch.int64)
    if mask is None:
        weight = torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
    else:
        mask = mask.to(device=z.device, dtype=torch.bool)
        weight = mask.to(z.dtype)
        # where, not a product: a NaN in an unselected row must not leak into its class sum
        z = torch.where(mask[:, None], z, torch.zeros_like(z))
    sums = torch.zeros(num_classes, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, labels, z)
    counts = torch.zeros(num_classes, dtype=z.dtype, device=z.device).index_add_(0, labels, weight)
    return sums, counts


@torch.no_grad()
def init_prototypes(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Initial prototypes P_c = normalize(mean{z_i : y_i = c}).

    Method: docs/methods/plremix.md, "Prototypes and self-adaptive selection" (Init).

    Shapes: ``embeddings`` (N, D) (the eval-transform embeddings of the whole training set), ``labels`` (N,)
    int64 in [0, C): the **noisy** labels. Returns (C, D) unit rows, float32 or wider, on the embeddings' device.

    Raises ValueError naming the classes with no sample (their mean is undefined); this check reads one small
    tensor back from the device, once per call.
    """
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings must be (N, D) and labels (N,), got {tuple(embeddings.shape)} "
                         f"and {tuple(labels.shape)}")
    sums, counts = _class_sums(embeddings.detach(), labels, num_classes, None)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"cannot initialise prototypes: class(es) {missing} have no sample among the "
                         f"{embeddings.shape[0]} given")
    return F.normalize(sums / counts[:, None], dim=1)


@torch.no_grad()
def ema_update_prototypes(
    prototypes: torch.Tensor,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    momentum: float = PROTOTYPE_MOMENTUM,
) -> torch.Tensor:
    """EMA step towards the normalised class means of the selected samples.

    Method: docs/methods/plremix.md, "Prototypes and self-adaptive selection" (EMA update); BPT-PLR:
    docs/methods/bpt_plr.md, "What it changes in PLReMix" (Prototype EMA).

    m_c = normalize(mean{z_i : mask_i, y_i = c}); P_c ← momentum·P_c + (1 − momentum)·m_c for the classes with at
    least one selected sample; the others keep P_c. Then **all** rows are renormalised.

    Shapes: ``prototypes`` (C, D) unit rows; ``embeddings`` (N, D); ``labels`` (N,) int64 in [0, C): the
    (possibly corrected) *predicted* labels, not the noisy ones; ``mask`` (N,) bool or None (all samples).
    Returns a new (C, D) tensor; copy it into the model's buffer (``model.prototypes.copy_(...)``).

    Pitfall (docs/methods/plremix.md, "Deviations and switches", prototype EMA source): the seeds update a
    network's prototypes with the *peer's* embeddings and labels; which ones to pass is the caller's decision.
    """
    sums, counts = _class_sums(embeddings.detach(), labels, prototypes.shape[0], mask)
    class_mean = F.normalize(sums / counts.clamp_min(1)[:, None], dim=1)
    p = _float(prototypes.detach())
    moved = momentum * p + (1.0 - momentum) * class_mean.to(p.dtype)
    return F.normalize(torch.where((counts > 0)[:, None], moved, p), dim=1)


def prototype_logits(
    z: torch.Tensor, prototypes: torch.Tensor, temperature: float = PROTOTYPE_TEMPERATURE
) -> torch.Tensor:
    """Prototype logits g_c(x) = ⟨z, P_c⟩ / τ: ``z`` (N, D), ``prototypes`` (C, D) -> (N, C).

    Method: docs/methods/plremix.md, "What it adds to DivideMix" (Model; τ = 0.1).

    With unit vectors the logits lie in [−1/τ, 1/τ] (±10 at τ = 0.1). Gradients flow into ``z`` only if the
    caller passes a prototype buffer (which has none).
    """
    return (z @ prototypes.to(z.dtype).T) / temperature


@torch.no_grad()
def soft_prototypes(z: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """TCL's M-step: component means ``μ_k = normalize(Σ_i p_ik z_i)`` ``(C, D)`` from unit embeddings ``z``
    ``(N, D)`` and the classifier's posteriors ``probs`` ``(N, C)``.

    Method: docs/methods/tcl.md, "Noise model" (step 2). The paper divides the sum by ``Σ_i p_ik``; a positive
    factor per row changes nothing after the L2 normalisation, so it is left out (the question of TCL issue #6).
    A component no sample is assigned to (all ``p_ik = 0``) gets the zero vector (``F.normalize`` of 0).
    """
    return F.normalize(_float(probs).T @ _float(z), dim=1)


def component_posterior(z: torch.Tensor, prototypes: torch.Tensor, temperature: float = 0.25) -> torch.Tensor:
    """TCL's E-step: ``γ_ik = exp(z_i·μ_k/τ) / Σ_j exp(z_i·μ_j/τ)`` ``(N, C)``: the softmax of
    :func:`prototype_logits`.

    Method: docs/methods/tcl.md, "Noise model" (step 3). Equal mixing weights and one shared isotropic spread,
    which the temperature τ (0.25) stands in for (the question of TCL issues #2 and #6): with unit vectors,
    ``exp(−‖z − μ‖²/2σ²) ∝ exp(z·μ/σ²)``, so τ = σ² of a von Mises–Fisher-like component.
    """
    return torch.softmax(prototype_logits(_float(z), prototypes, temperature), dim=1)


@torch.no_grad()
def corrected_labels(
    pred_labels: torch.Tensor,
    proto_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    threshold: float = CORRECTION_THRESHOLD,
) -> torch.Tensor:
    """Confident relabelling for the prototype update (PLReMix's first commit, BPT-PLR).

    Method: docs/methods/plremix.md, "Prototypes and self-adaptive selection" (Selection, first-commit rule);
    docs/methods/bpt_plr.md, "What it changes in PLReMix" (Prototype EMA).

    s_i = ½ softmax(g_i) + ½ softmax(o_i); the label is argmax_c s_ic where max_c s_ic > ``threshold``
    (strictly), else ``pred_labels``. Shapes: ``pred_labels`` (N,) int64, ``proto_logits`` g and ``cls_logits``
    o (N, C). Returns a new (N,) int64 tensor (the seeds overwrite the label tensor in place).
    """
    s = 0.5 * F.softmax(_float(proto_logits), dim=1) + 0.5 * F.softmax(_float(cls_logits), dim=1)
    score, label = s.max(dim=1)
    return torch.where(score > threshold, label, pred_labels.to(label.device, torch.int64))


class AdaptiveThreshold:
    """Class-aware self-adaptive selection for the prototype update (PLReMix HEAD; FreeMatch SAT).

    Method: docs/methods/plremix.md, "Prototypes and self-adaptive selection" (Selection S, HEAD rule).

    State: the global threshold τ (init 1/C) and the class marginal p̃ (init uniform), both EMAs with momentum
    m (0.99). One instance is shared by both networks and updated after each network's training, i.e. twice per
    epoch; it decides which samples update the prototypes, not the clean/noisy division.

    Order, as in the seed (``pseudo_selection``) and in FreeMatch: the EMAs are updated with this call's
    predictions **first**, and the selection uses the updated values. Early on τ ≈ 1/C, so almost every sample
    passes.

    Checkpoint with :meth:`state_dict` (plain tensors and floats, loadable with ``torch.load(weights_only=True)``).
    """

    def __init__(self, num_classes: int, *, momentum: float = 0.99, device: torch.device | str | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_classes = num_classes
        self.momentum = momentum
        self.tau = torch.full((), 1.0 / num_classes, device=device)
        self.class_prob = torch.full((num_classes,), 1.0 / num_classes, device=device)

    @staticmethod
    def mixing_weight(epoch: int, num_epochs: int) -> float:
        """α_e = ½(1 + cos(π·e/E)): 1 at e = 0 (classifier only), 0 at e = E (prototypes only)."""
        return 0.5 * (1.0 + math.cos(math.pi * epoch / num_epochs))

    def class_thresholds(self) -> torch.Tensor:
        """τ_c = τ · p̃_c / max_k p̃_k, shape (C,)."""
        return self.tau * self.class_prob / self.class_prob.max()

    @torch.no_grad()
    def update_and_select(
        self, proto_logits: torch.Tensor, cls_logits: torch.Tensor, epoch: int, num_epochs: int
    ) -> torch.Tensor:
        """Update the EMAs with this epoch's predictions, then return the selection mask.

        q_i = softmax((1 − α_e)·g_i + α_e·o_i) (the **logits** are mixed, not the probabilities);
        τ ← m·τ + (1 − m)·mean_i max_c q_ic;  p̃ ← m·p̃ + (1 − m)·mean_i q_i;
        selected_i = max_c q_ic ≥ τ_{argmax_c q_ic}.

        Shapes: ``proto_logits`` g and ``cls_logits`` o (N, C) over all training samples (the seeds pass the
        peer's stored eval outputs); ``epoch`` e and ``num_epochs`` E as in the lr schedule. Returns (N,) bool on
        the logits' device; the state moves to that device.
        """
        alpha = self.mixing_weight(epoch, num_epochs)
        q = F.softmax((1.0 - alpha) * _float(proto_logits) + alpha * _float(cls_logits), dim=1)
        max_q, pred = q.max(dim=1)
        m = self.momentum
        self.tau = m * self.tau.to(q) + (1.0 - m) * max_q.mean()
        self.class_prob = m * self.class_prob.to(q) + (1.0 - m) * q.mean(dim=0)
        return max_q >= self.class_thresholds()[pred]

    def state_dict(self) -> dict:
        return {"tau": self.tau.detach().clone(), "class_prob": self.class_prob.detach().clone(),
                "momentum": float(self.momentum)}

    def load_state_dict(self, state: dict) -> None:
        class_prob = torch.as_tensor(state["class_prob"])
        if class_prob.shape != (self.num_classes,):
            raise ValueError(f"class_prob in the state has shape {tuple(class_prob.shape)}, "
                             f"expected ({self.num_classes},)")
        device = self.class_prob.device
        self.tau = torch.as_tensor(state["tau"]).detach().clone().to(device).reshape(())
        self.class_prob = class_prob.detach().clone().to(device)
        self.momentum = float(state.get("momentum", self.momentum))
