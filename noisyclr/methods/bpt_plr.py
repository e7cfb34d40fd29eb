"""Method ``bpt_plr`` (Zhang, Jin, Zhu, Wei & Chen, Entropy 26(7):589, 2024): PLReMix's PLR loss and 2-D GMM with a
per-class balanced partition and oversampled semi-supervised epochs.

What it changes in :mod:`.plremix` (spec ``dividemix_plremix_bptplr.md`` §4; reference LanXiaoPang613/BPT-PLR at
``c5eeae4``):

* division: the same 2-D GMM per net (classifier CE averaged over the last 5 epochs when
  ``loss_average_last=5``, the reference's rule at 90 % noise), then :func:`~noisyclr.selection.balanced_partition`
  gives every class (by noisy label) the same quota ⌊|{w > p_thr}|/C⌋ of its most-probably-clean samples (§4.4);
  co-divide as usual;
* oversampled epoch (§4.5): ``max_iters = ⌊(|L| + |U|)/B⌋ + 1`` steps per net, independent of |L|; the labeled
  loader is re-iterated, the unlabeled loader cycles, steps with a batch of size ≤ 1 are skipped and not counted
  (:func:`oversample_plan`);
* the step: targets from the weak views (T = 0.5), MixMatch on the strong views, and ONE forward of
  ``concat[mixed (4B), x³, x⁴, u³, u⁴]``: L_x, L_u and the prior penalty from the mixed logits, the non-flat PLR
  (τ = 1, weight ``lambda_c`` = 1) on the unmixed strong projections f1 = [x³, u³], f2 = [x⁴, u⁴];
* κ = 3, then 2 from epoch 40 for ever (``kappa_milestones: [40]``; the reference's ``elif epoch >= 70`` never runs);
* warm-up: CE (+ negative entropy under asym noise) only (the reference computes a contrastive term and never
  backpropagates it); prototypes are re-initialised after EVERY warm-up epoch;
* prototype EMA (§4.6): PLReMix's first-commit rule, all samples with ``corrected_labels`` (0.8), EMA 0.99, from
  the peer's eval pass (``adaptive_selection: false``, ``prototype_source: peer``).

Reference bugs fixed here (``docs/methods/bpt_plr.md`` lists them all): net2's prototypes ARE updated (the
reference updates net1 twice per epoch), indices are global (the reference indexes the peer's logits with
subset-local indices), λ_c is applied (1 by default, the reference's effective weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.loader import batch_bounds
from ..losses.contrastive import plr_loss
from ..metrics import class_precision, defined_mean, selection_scores
from ..selection import balanced_partition
from .configs import BPTPLRConfig
from .plremix import PLReMix

# ----------------------------------------------------------------------------------------------------------------
# the oversampled epoch as a pure step plan
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    """One iteration of the oversampled epoch.

    ``labeled_pass``: 0-based pass over the labeled loader; ``batch_idx``: position inside that pass (restarts at 0
    every pass; it is the ramp-up's batch index); ``labeled_size`` / ``unlabeled_size``: the batch sizes the two
    loaders yield at this iteration.
    """

    labeled_pass: int
    batch_idx: int
    labeled_size: int
    unlabeled_size: int

    @property
    def skipped(self) -> bool:
        """A batch of size ≤ 1 (batch norm cannot train on it): drawn, then skipped, and not counted."""
        return self.labeled_size <= 1 or self.unlabeled_size <= 1


def loader_batch_sizes(n: int, batch_size: int, drop_last: bool) -> list[int]:
    """Sizes of the batches one pass of a loader over ``n`` samples yields (``DeviceData.batches`` with min_size 1)."""
    return [stop - start for start, stop in batch_bounds(n, batch_size, 1, drop_last)]


def oversample_plan(
    n_labeled: int,
    n_unlabeled: int,
    batch_size: int,
    *,
    drop_last_labeled: bool = True,
    drop_last_unlabeled: bool = True,
    max_iters: int | None = None,
) -> list[PlannedStep]:
    """The iterations of one BPT-PLR oversampled epoch (spec §4.5), skipped ones included.

    ``max_iters = ⌊(n_labeled + n_unlabeled)/B⌋ + 1`` (or the given value) counts the steps that train. As in the
    reference loop: the labeled loader is re-iterated pass after pass; the unlabeled loader cycles independently
    (one batch is drawn per iteration, skipped or not); an iteration where either batch has ≤ 1 sample is skipped
    and does not count; the epoch ends as soon as ``max_iters`` steps trained, mid-pass.

    Returns ``[]`` when no step can ever train (no labeled or no unlabeled batch of ≥ 2 samples), where the
    reference would loop for ever. Otherwise the plan ends: the first iteration of pass p pairs labeled batch 0
    with unlabeled batch (p·len(labeled batches)) mod len(unlabeled batches), which is 0 (a full batch) at least
    every len(unlabeled batches) passes.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_iters is None:
        max_iters = (n_labeled + n_unlabeled) // batch_size + 1
    l_sizes = loader_batch_sizes(n_labeled, batch_size, drop_last_labeled)
    u_sizes = loader_batch_sizes(n_unlabeled, batch_size, drop_last_unlabeled)
    if max_iters < 1 or not any(s > 1 for s in l_sizes) or not any(s > 1 for s in u_sizes):
        return []
    plan: list[PlannedStep] = []
    done, u_pos, labeled_pass = 0, 0, 0
    while done < max_iters:
        for batch_idx, l_size in enumerate(l_sizes):
            step = PlannedStep(labeled_pass, batch_idx, l_size, u_sizes[u_pos % len(u_sizes)])
            u_pos += 1
            plan.append(step)
            if step.skipped:
                continue
            done += 1
            if done == max_iters:
                break
        labeled_pass += 1
    return plan


# ----------------------------------------------------------------------------------------------------------------
# the method
# ----------------------------------------------------------------------------------------------------------------


class BPTPLR(PLReMix):
    Config = BPTPLRConfig
    description = "balanced 2-D GMM partition + oversampled MixMatch with the PLR loss in one forward (Zhang et al. 2024)"

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        if self.mcfg.warmup_contrastive == "none":
            self.warmup_views = ("weak",)  # no strong views to augment when there is no warm-up contrastive term
        # the joint (logits, features, projections) forward of the semi step, compiled when train.compile is on
        self.joint_forwards = [torch.compile(n.forward_all) if cfg.train.compile else n.forward_all for n in self.nets]

    # ---------------------------------------------------------------------------------------------- warm-up
    def after_warmup_epoch(self, epoch: int) -> None:
        """The reference re-initialises both nets' prototypes after EVERY warm-up epoch (not only the last)."""
        self.init_prototypes()

    # ---------------------------------------------------------------------------------------------- division
    def labeled_mask(self, prob: torch.Tensor) -> torch.Tensor:
        """BPT's balanced partition of ``prob`` (§4.4); the plain threshold when ``balanced`` is off."""
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
    def train_semi(self, k: int, peer: int, prob: torch.Tensor, epoch: int) -> dict:
        """One oversampled epoch of net ``k`` on the (balanced) division ``prob`` of net ``peer`` (§4.5)."""
        if not self.mcfg.oversample:
            return super().train_semi(k, peer, prob, epoch)
        ctx = self.ctx
        net, peer_net = self.nets[k], self.nets[peer]
        bs = self.cfg.train.batch_size
        labeled, unlabeled = self.split(prob)
        max_iters = (len(labeled) + len(unlabeled)) // bs + 1  # |L| + |U| = N
        if len(unlabeled) < 2:  # nearly everything labeled: unlabeled batches from the whole set (as DivideMix)
            unlabeled = torch.arange(len(ctx.train), device=ctx.device)
        if len(labeled) < 2:
            return {"loss": 0.0, "images": 0}
        # drop_last as the reference; a set smaller than one batch is taken whole (the reference would loop for ever)
        drop_x = self.mcfg.drop_last and len(labeled) >= bs
        drop_u = self.mcfg.drop_last and len(unlabeled) >= bs
        plan = oversample_plan(len(labeled), len(unlabeled), bs, drop_last_labeled=drop_x,
                               drop_last_unlabeled=drop_u, max_iters=max_iters)
        views = ctx.views(self.semi_views)
        num_iter = len(labeled) // bs + 1  # the ramp-up denominator of DivideMix (one labeled pass)
        net.train()
        peer_net.eval()
        x_iter, u_iter = iter(()), iter(())
        total, images, steps = torch.zeros((), device=ctx.device), 0, 0
        for step in ctx.progress(plan, len(plan), f"net{k + 1} ep{epoch + 1}"):
            if step.batch_idx == 0:  # a new pass over the labeled set (a new shuffle)
                x_iter = ctx.train.batches(bs, views, ctx.generator, subset=labeled, drop_last=drop_x, min_size=1)
            xb = next(x_iter)
            ub = next(u_iter, None)
            if ub is None:  # the unlabeled loader cycles
                u_iter = ctx.train.batches(bs, views, ctx.generator, subset=unlabeled, drop_last=drop_u, min_size=1)
                ub = next(u_iter)
            if (xb.size, ub.size) != (step.labeled_size, step.unlabeled_size):  # shapes only: no device sync
                raise RuntimeError(f"oversample plan out of step with the loaders: {step} vs {len(xb)}, {len(ub)}")
            if step.skipped:
                continue
            total += self.semi_step(k, peer, xb, ub, prob, epoch + step.batch_idx / num_iter, epoch)
            images += len(xb) + len(ub)
            steps += 1
        return {"loss": float(total) / max(steps, 1), "images": images}

    def semi_loss(self, k: int, peer: int, xb, ub, w: torch.Tensor, t: float, epoch: int) -> torch.Tensor:
        """``L_x + λ_u(t)·L_u + L_reg + λ_c·L_PLR`` from ONE forward of [mixed (4B); x³; x⁴; u³; u⁴] (§4.5)."""
        m = self.mcfg
        mixed_x, mixed_y = self.mixed_batch(k, peer, xb, ub, w)
        strong = torch.cat([xb.views[2], xb.views[3], ub.views[2], ub.views[3]])  # unmixed, this rank's rows
        n_mix = mixed_x.shape[0]
        with self.ctx.autocast():
            logits, _, proj = self.joint_forwards[k](torch.cat([mixed_x, strong]))
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
