"""Method ``bpt_plr`` (Zhang, Jin, Zhu, Wei & Chen, Entropy 26(7):589, 2024): PLReMix's PLR loss and 2-D GMM with a
per-class balanced partition and oversampled semi-supervised epochs.

What it changes in :mod:`.plremix` (docs/methods/bpt_plr.md, "What it changes in PLReMix"; reference
LanXiaoPang613/BPT-PLR at ``c5eeae4``):

* division: the same 2-D GMM per net (classifier CE averaged over the last 5 epochs when ``loss_average_last=5``,
  the reference's rule at 90 % noise), then :func:`~noisyclr.selection.balanced_partition` gives every class (by
  noisy label) the same quota ⌊|{w > p_thr}|/C⌋ of its most-probably-clean samples ("Division (BP-GMM)"); co-divide
  as usual;
* oversampled epoch ("Oversampled epoch (SSO)"): ``max_iters = ⌊(|L| + |U|)/B⌋ + 1`` steps per net, independent of
  |L|; the labeled loader is re-iterated, the unlabeled loader cycles, steps with a batch of size ≤ 1 are skipped
  and not counted (:class:`noisyclr.loop.Oversampled`);
* the step: targets from the weak views (T = 0.5), MixMatch on the strong views, and ONE forward of
  ``concat[mixed (4B), x³, x⁴, u³, u⁴]``: L_x, L_u and the prior penalty from the mixed logits, the non-flat PLR
  (τ = 1, weight ``lambda_c`` = 1) on the unmixed strong projections f1 = [x³, u³], f2 = [x⁴, u⁴];
* κ = 3, then 2 from epoch 40 for ever (``kappa_milestones: [40]``; the reference's ``elif epoch >= 70`` never runs);
* warm-up: CE (+ negative entropy under asym noise) only (the reference computes a contrastive term and never
  backpropagates it); prototypes are re-initialised after EVERY warm-up epoch;
* prototype EMA ("Prototype EMA"): PLReMix's first-commit rule, all samples with ``corrected_labels`` (0.8), EMA
  0.99, from the peer's eval pass (``adaptive_selection: false``, ``prototype_source: peer``).

Reference bugs fixed here (``docs/methods/bpt_plr.md`` lists them all): net2's prototypes ARE updated (the
reference updates net1 twice per epoch), indices are global (the reference indexes the peer's logits with
subset-local indices), λ_c is applied (1 by default, the reference's effective weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..loop import Oversampled
from ..losses.contrastive import plr_loss
from ..metrics import class_precision, defined_mean, selection_scores
from ..selection import balanced_partition
from ..method_configs import BPTPLRConfig
from .plremix import PLReMix

# ----------------------------------------------------------------------------------------------------------------
# the method
# ----------------------------------------------------------------------------------------------------------------


class BPTPLR(PLReMix):
    Config = BPTPLRConfig

    @property
    def warmup_views(self) -> dict[str, str]:
        """No strong views to augment when there is no warm-up contrastive term."""
        if self.mcfg.warmup_contrastive == "none" and self.mcfg.warmup_ce_view == "weak":
            return {"weak": "weak"}
        return super().warmup_views

    # ---------------------------------------------------------------------------------------------- warm-up
    def after_warmup_epoch(self, epoch: int) -> None:
        """The reference re-initialises both nets' prototypes after EVERY warm-up epoch (not only the last)."""
        self.init_prototypes()

    # ---------------------------------------------------------------------------------------------- division
    def labeled_mask(self, prob: torch.Tensor) -> torch.Tensor:
        """BPT's balanced partition of ``prob`` (bpt_plr.md, "Division (BP-GMM)"); the plain threshold when ``balanced``
        is off."""
        if not self.mcfg.balanced:
            return super().labeled_mask(prob)
        return balanced_partition(prob, self.ctx.train.labels, self.ctx.num_classes, threshold=self.mcfg.p_threshold)

    def division_metrics(self, probs: list[torch.Tensor]) -> dict:
        """DivideMix's keys (here scoring the balanced partition), plus the plain-threshold set for comparison and
        the per-class precision before (``class_precision_threshold``) and after (``class_precision_balanced``)
        balancing, as lists of C values (null: no sample of that class selected) with their ``_mean``.

        Headline keys score the mean of the two nets' clean probabilities; ``_net1``/``_net2`` each net's own
        division. Computed once per epoch, outside the training steps.
        """
        out = super().division_metrics(probs)
        thr = self.mcfg.p_threshold
        mean = (probs[0] + probs[1]) / 2
        threshold = mean > thr
        out["labeled_size_threshold"] = int(threshold.sum())
        is_clean = self.ctx.train.is_clean
        if is_clean is None:
            return out
        labels, num_classes = self.ctx.train.labels, self.ctx.num_classes
        balanced = balanced_partition(mean, labels, num_classes, threshold=thr)
        out["label_precision_threshold"] = selection_scores(threshold, is_clean)["label_precision"]
        for name, mask in (("threshold", threshold), ("balanced", balanced)):
            out[f"class_precision_{name}"] = class_precision(mask, labels, is_clean, num_classes)
            out[f"class_precision_{name}_mean"] = defined_mean(out[f"class_precision_{name}"])
        for k, prob in enumerate(probs, 1):
            for name, mask in (("threshold", prob > thr),
                               ("balanced", balanced_partition(prob, labels, num_classes, threshold=thr))):
                out[f"class_precision_{name}_mean_net{k}"] = defined_mean(
                    class_precision(mask, labels, is_clean, num_classes))
        return out

    # ---------------------------------------------------------------------------------------------- semi
    def semi_plan(self, labeled: torch.Tensor, unlabeled: torch.Tensor, views):
        """The oversampled epoch (docs/methods/bpt_plr.md, "Oversampled epoch (SSO)"): ⌊(|L| + |U|)/B⌋ + 1 trained steps
        with |L| + |U| = N, the labeled loader re-iterated, the unlabeled one cycling; drop_last as the reference,
        except that a set smaller than one batch is taken whole (the reference would loop for ever)."""
        if not self.mcfg.oversample:
            return super().semi_plan(labeled, unlabeled, views)
        bs, drop = self.cfg.train.batch_size, self.mcfg.drop_last
        return Oversampled(self.ctx.train, bs, views, labeled, unlabeled, drop_last_labeled=drop and len(labeled) >= bs,
                           drop_last_unlabeled=drop and len(unlabeled) >= bs, max_iters=len(self.ctx.train) // bs + 1)

    def semi_loss(self, k: int, peer: int, xb, ub, w: torch.Tensor, t: float, epoch: int) -> torch.Tensor:
        """``L_x + λ_u(t)·L_u + L_reg + λ_c·L_PLR`` from ONE forward of [mixed (4B); x³; x⁴; u³; u⁴] (bpt_plr.md, "Step")."""
        m = self.mcfg
        mixed_x, mixed_y = self.mixed_batch(k, peer, xb, ub, w)
        strong = torch.cat([xb["strong1"], xb["strong2"], ub["strong1"], ub["strong2"]])  # unmixed, this rank's rows
        n_mix = mixed_x.shape[0]
        with self.ctx.autocast():
            logits, _, proj = self.forwards[k](torch.cat([mixed_x, strong]), heads=("logits", "proj"))
        loss = self.mixmatch_loss(logits[:n_mix], mixed_y, xb, ub, t)
        if m.lambda_c == 0:
            return loss
        z = F.normalize(proj[n_mix:].float(), dim=1)
        bx, bu = xb.size, ub.size
        z = self.ctx.dist.gather_blocks_with_grad(z, [len(xb), len(xb), len(ub), len(ub)], [bx, bx, bu, bu])
        zx3, zx4, zu3, zu4 = torch.split(z, [bx, bx, bu, bu])
        features = torch.stack([torch.cat([zx3, zu3]), torch.cat([zx4, zu4])], dim=1)  # (2B, 2 views, D)
        mask = self.plr_mask(peer, xb, ub, epoch)
        plr = plr_loss(features, mask, temperature=m.plr_temperature, flat=m.contrastive == "flat_plr")
        return loss + m.lambda_c * plr

    # after_train (inherited from PLReMix) updates net k's prototypes from the PEER's eval pass with
    # corrected_labels(0.8) on all samples and EMA 0.99. Reference bug fixed: the reference applies the second
    # update (after training net2, with net1's eval outputs) to net1 again, so net2's prototypes never move after
    # warm-up; here after_train(1) updates net2.
