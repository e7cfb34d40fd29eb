"""Method ``dividemix`` (Li, Socher & Hoi, ICLR 2020): co-divided two-network training with MixMatch.

Per epoch (docs/methods/dividemix.md, "Algorithm"):

* warm-up (``epoch < warmup_epochs``): each net, in turn, one pass of CE on the given labels over all data with
  batch 2B (+ the negative-entropy confidence penalty under asymmetric noise);
* afterwards, at the start of the epoch, each net scores every training sample (eval pass, test view, per-sample
  CE) and a 2-component GMM on the min-max-normalised losses gives its clean probability w ("Division");
* co-divide: net1 is trained on the division of net2 (labeled {w₂ > p_thr} with weights w₂, the rest unlabeled),
  then net2 on net1's division — net2's step sees the already-updated net1 as its peer;
* each semi-supervised step ("Semi-supervised step", "Step formulas"): co-refined labeled targets, co-guessed
  unlabeled targets, sharpening with T, MixMatch over all 4B rows with λ' = max(λ, 1−λ), ``L = L_x + λ_u(t)·L_u +
  L_reg``.

The test prediction is the ensemble ``argmax(logits₁ + logits₂)``.

Deviations from the reference code, each deliberate:

* λ and the MixMatch permutation come from the run's seeded device generator, not NumPy's unseeded global RNG, so
  runs are reproducible and resumable bit-exactly.
* The GMM is fitted with a fixed ``random_state`` (the reference passes none); ``method.gmm_backend=torch`` fits it
  on the training device instead of scikit-learn.
* If the unlabeled set has fewer than 2 samples (nearly all labels judged clean), unlabeled batches are drawn from
  the whole training set instead of crashing (the reference's iterator would fail on an empty set).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..loop import LabeledPass, OnePass, run_epoch
from ..losses import cross_entropy, negative_entropy, soft_cross_entropy
from ..losses.semi import co_guess, co_refine, lambda_u_at, mixmatch, mixmatch_losses, sharpen, uniform_prior_penalty
from ..metrics import class_recall, clean_auc, selection_scores
from ..selection import clean_probability_1d
from .base import Method, prediction_report
from ..method_configs import DivideMixConfig


class DivideMix(Method):
    Config = DivideMixConfig
    distributed = True
    # the views of a batch, by name -> kind: two weak views for the targets and for MixMatch
    semi_views = {"weak1": "weak", "weak2": "weak"}
    warmup_views = {"weak": "weak"}

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.nets = [self.build_net() for _ in range(2)]
        self.optimizers = [ctx.sgd(net.parameters()) for net in self.nets]
        self.forwards = [ctx.compiled(net) for net in self.nets]
        self.loss_history: list[list[torch.Tensor]] = [[], []]
        self.last_division: list[torch.Tensor | None] = [None, None]

    def build_net(self):
        return self.ctx.build_network()

    @property
    def warmup_penalty(self) -> bool:
        flag = self.mcfg.warmup_penalty
        return self.cfg.noise.kind == "asym" if flag is None else flag

    # ---------------------------------------------------------------------------------------------- epoch
    def train_epoch(self, epoch: int) -> dict:
        for opt in self.optimizers:
            self.ctx.schedule(opt, epoch)  # the seeds set the learning rate once per epoch
        if epoch < self.mcfg.warmup_epochs:
            out = []
            for k in (0, 1):  # DivideMix's Clothing1M warm-up draws a fresh sample for each net
                with self.ctx.train_rows(self.epoch_sample(self.mcfg.warmup_subset)):
                    out.append(self.warmup(k, epoch))
                    if k == 1:  # PLReMix's prototypes start from the sample net2 warmed up on
                        self.after_warmup_epoch(epoch)
            stats = {"phase": "warmup"}
        else:
            # one sample for both divisions and both nets' semi-supervised passes (the reference's eval_train set)
            with self.ctx.train_rows(self.epoch_sample(self.mcfg.division_subset)):
                probs = [self.divide(k, epoch) for k in (0, 1)]
                stats = {"phase": "semi", **self.division_metrics(probs)}
                out = []
                for k in (0, 1):
                    peer = 1 - k
                    out.append(self.train_semi(k, peer, probs[peer], epoch))
                    self.after_train(k, epoch)
        stats["train_loss"] = sum(o["loss"] for o in out) / len(out)
        stats["images"] = sum(o["images"] for o in out)
        stats["lr"] = self.optimizers[0].param_groups[0]["lr"]
        return stats

    def after_warmup_epoch(self, epoch: int) -> None:
        """Hook after both nets' warm-up pass (PLReMix initialises prototypes here)."""

    def after_train(self, k: int, epoch: int) -> None:
        """Hook after net ``k``'s semi-supervised pass (PLReMix updates prototypes here)."""

    # ---------------------------------------------------------------------------------------------- warm-up
    def warmup_loss(self, k: int, batch) -> torch.Tensor:
        """CE on the given labels (+ the negative-entropy penalty under asymmetric noise), batch means."""
        with self.ctx.autocast():
            logits = self.forwards[k](self.warmup_ce_input(batch))
        mean = self.ctx.dist.batch_mean
        loss = mean(cross_entropy(logits, batch.labels), batch.size)
        if self.warmup_penalty:
            loss = loss + mean(negative_entropy(logits, reduction="none"), batch.size)
        return loss

    def warmup_ce_input(self, batch) -> torch.Tensor:
        """The images of the warm-up CE: the weak view (PLReMix may take a strong one)."""
        return batch["weak"]

    def warmup(self, k: int, epoch: int) -> dict:
        """One warm-up pass of net ``k`` over all training data with batch 2B."""
        ctx = self.ctx
        bs = self.mcfg.warmup_batch_size or 2 * self.cfg.train.batch_size
        self.nets[k].train()
        plan = OnePass(ctx.train, bs, ctx.views(self.warmup_views))
        return run_epoch(ctx, plan, lambda s: self.warmup_loss(k, s.batch), self.optimizers[k], epoch=epoch,
                         desc=f"warmup net{k + 1} ep{epoch + 1}")

    # ---------------------------------------------------------------------------------------------- division
    def divide(self, k: int, epoch: int) -> torch.Tensor:
        """Clean probability ``(N,)`` of every training sample according to net ``k`` (dividemix.md, "Division")."""
        (logits,) = self.ctx.eval_logits([self.nets[k]], self.ctx.train)
        losses = cross_entropy(logits, self.ctx.train.labels)
        prob, _ = clean_probability_1d(
            losses, history=self.history(k), average_last=self.mcfg.loss_average_last, backend=self.mcfg.gmm_backend
        )
        prob = self.ctx.dist.broadcast_(prob.contiguous())  # rank 0's division rules (see broadcast_)
        self.last_division[k] = prob
        return prob

    def history(self, k: int) -> list[torch.Tensor] | None:
        """Net ``k``'s list of earlier normalised losses, trimmed to what averaging reads (None: no averaging)."""
        keep = self.mcfg.loss_average_last
        if keep <= 1:
            return None
        del self.loss_history[k][: -(keep - 1) or None]  # the call appends this epoch's vector
        return self.loss_history[k]

    def division_metrics(self, probs: list[torch.Tensor]) -> dict:
        """Size, precision and recall of the labeled set and AUC of the clean probability, when truth is known.

        The headline keys score the mean of the two nets' clean probabilities (what ``labels.csv`` reports);
        ``_net1``/``_net2`` keys score each net's own division.
        """
        mean = (probs[0] + probs[1]) / 2
        labeled = self.labeled_mask(mean)
        out = {"labeled_size": int(labeled.sum())}
        is_clean = self.ctx.train.is_clean
        if is_clean is None:
            return out
        out.update(selection_scores(labeled, is_clean))
        out["clean_auc"] = clean_auc(mean, is_clean)
        # per class: a threshold on one global loss GMM starves the classes asymmetric noise hits (BPT-PLR's case)
        out["class_recall"] = class_recall(labeled, self.ctx.train.labels, is_clean, self.ctx.num_classes)
        defined = [v for v in out["class_recall"] if v is not None]
        out["class_recall_min"] = min(defined) if defined else float("nan")
        for k, prob in enumerate(probs, 1):
            scores = selection_scores(self.labeled_mask(prob), is_clean)
            out[f"labeled_size_net{k}"] = scores["labeled_size"]
            out[f"label_precision_net{k}"] = scores["label_precision"]
            out[f"label_recall_net{k}"] = scores["label_recall"]
            out[f"clean_auc_net{k}"] = clean_auc(prob, is_clean)
        return out

    # ---------------------------------------------------------------------------------------------- semi
    def labeled_mask(self, prob: torch.Tensor) -> torch.Tensor:
        """Boolean (N,) mask of the labeled set for clean probabilities ``prob``: {w > p_thr}.

        The one place the labeled-set rule lives (training split and division metrics); BPT-PLR overrides it
        with the per-class balanced partition.
        """
        return prob > self.mcfg.p_threshold

    def split(self, prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global indices of the labeled set (:meth:`labeled_mask`) and of the unlabeled rest."""
        labeled = self.labeled_mask(prob)
        return labeled.nonzero().squeeze(1), (~labeled).nonzero().squeeze(1)

    def semi_plan(self, labeled: torch.Tensor, unlabeled: torch.Tensor, views):
        """DivideMix's epoch: one pass over the labeled set, the unlabeled iterator restarting when exhausted."""
        return LabeledPass(self.ctx.train, self.cfg.train.batch_size, views, labeled, unlabeled,
                           drop_last=self.mcfg.drop_last)

    def train_semi(self, k: int, peer: int, prob: torch.Tensor, epoch: int) -> dict:
        """One epoch of net ``k`` on the division ``prob`` of net ``peer``."""
        ctx = self.ctx
        labeled, unlabeled = self.split(prob)
        if len(unlabeled) < 2:
            unlabeled = torch.arange(len(ctx.train), device=ctx.device)
        if len(labeled) < 2:
            return {"loss": 0.0, "images": 0}
        num_iter = len(labeled) // self.cfg.train.batch_size + 1  # the reference's ramp-up denominator
        self.nets[k].train()
        self.nets[peer].eval()

        def step(s):  # prob: the peer's clean probability of every sample, gathered per batch as the x weights
            return self.semi_loss(k, peer, s.x, s.u, prob.index_select(0, s.x.indices),
                                  epoch + s.batch_idx / num_iter, epoch)

        plan = self.semi_plan(labeled, unlabeled, ctx.views(self.semi_views))
        return run_epoch(ctx, plan, step, self.optimizers[k], epoch=epoch, desc=f"net{k + 1} ep{epoch + 1}")

    @torch.no_grad()
    def targets(self, k: int, peer: int, xb, ub, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sharpened co-refined labeled targets and co-guessed unlabeled targets, from the two weak views.

        The trained net stays in train mode (as the reference: these passes update its BN running statistics);
        the peer is in eval mode.
        """
        net, peer_net = self.forwards[k], self.forwards[peer]
        T = self.mcfg.temperature
        x1, x2 = xb["weak1"], xb["weak2"]
        u1, u2 = ub["weak1"], ub["weak2"]
        with self.ctx.autocast():
            pu = [net(u1), net(u2), peer_net(u1), peer_net(u2)]
            px = [net(x1), net(x2)]
        pu = [torch.softmax(z.float(), 1) for z in pu]
        px = [torch.softmax(z.float(), 1) for z in px]
        targets_u = sharpen(co_guess(pu), T)
        one_hot = F.one_hot(xb.labels, self.ctx.num_classes).float()
        targets_x = sharpen(co_refine(px, one_hot, w.float()), T)
        return targets_x, targets_u

    def mix_inputs(self, xb, ub) -> list[torch.Tensor]:
        """The 4 image blocks MixMatch mixes (every row of the global batch): DivideMix mixes the same two weak
        views."""
        return [xb.all("weak1"), xb.all("weak2"), ub.all("weak1"), ub.all("weak2")]

    def mixed_batch(self, k: int, peer: int, xb, ub, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets, then MixMatch over the 4 blocks of :meth:`mix_inputs`: ``(mixed inputs, mixed targets)``.

        Under torchrun the targets of every rank are gathered, every rank mixes the whole global batch with the
        same λ and permutation, and this rank's rows of each block are returned.
        """
        dist = self.ctx.dist
        targets_x, targets_u = self.targets(k, peer, xb, ub, w)
        if dist.enabled:
            targets_x = dist.gather_rows(targets_x, dist.shard.sizes(xb.size))
            targets_u = dist.gather_rows(targets_u, dist.shard.sizes(ub.size))
        targets = [targets_x, targets_x, targets_u, targets_u]
        mixed_x, mixed_y, _ = mixmatch(self.mix_inputs(xb, ub), targets, self.mcfg.alpha, self.ctx.generator)
        blocks = [xb.size, xb.size, ub.size, ub.size]
        return dist.local_blocks(mixed_x, blocks), dist.local_blocks(mixed_y, blocks)

    def mixmatch_loss(self, logits: torch.Tensor, mixed_y: torch.Tensor, xb, ub, t: float) -> torch.Tensor:
        """``L_x + λ_u(t)·L_u + L_reg`` of the mixed rows' logits (dividemix.md, "Step formulas"): means over
        the global batch."""
        dist = self.ctx.dist
        n_x = 2 * len(xb)
        if self.mcfg.mix_labeled_only:  # Clothing1M / WebVision: L_x + L_reg over the 2B labeled mixed rows only
            l_x = dist.batch_mean(soft_cross_entropy(logits, mixed_y), 2 * xb.size)
            return l_x + uniform_prior_penalty(logits, combine=dist.logsumexp_over_ranks, rows=2 * xb.size)
        l_x, l_u = mixmatch_losses(logits[:n_x], mixed_y[:n_x], logits[n_x:], mixed_y[n_x:],
                                   batch_mean=dist.batch_mean, rows=(2 * xb.size, 2 * ub.size))
        lam_u = lambda_u_at(t, self.mcfg.warmup_epochs, self.mcfg.lambda_u, self.mcfg.rampup_length)
        penalty = uniform_prior_penalty(logits, combine=dist.logsumexp_over_ranks, rows=2 * (xb.size + ub.size))
        return l_x + lam_u * l_u + penalty

    def semi_loss(self, k: int, peer: int, xb, ub, w: torch.Tensor, t: float, epoch: int) -> torch.Tensor:
        """``L_x + λ_u(t)·L_u + L_reg`` of one MixMatch step (dividemix.md, "Step formulas")."""
        mixed_x, mixed_y = self.mixed_batch(k, peer, xb, ub, w)
        if self.mcfg.mix_labeled_only:
            # DivideMix's Clothing1M/WebVision step (dividemix.md, "Clothing1M and WebVision"): only the first 2B
            # mixed rows (labeled inputs, their partners drawn from all 4B) are forwarded
            mixed_x, mixed_y = mixed_x[: 2 * len(xb)], mixed_y[: 2 * len(xb)]
        with self.ctx.autocast():
            logits = self.forwards[k](mixed_x)
        return self.mixmatch_loss(logits, mixed_y, xb, ub, t)

    # ---------------------------------------------------------------------------------------------- outputs
    def sample_report(self) -> dict:
        """Final division by the trained nets: mean clean probability and the ensemble's predicted label."""
        ctx = self.ctx
        logits = ctx.eval_logits(self.nets, ctx.train)
        probs = [self.divide(k, ctx.cfg.train.epochs) for k in (0, 1)]
        # the ensemble's prediction: the softmax of the summed logits, whose argmax is the test prediction
        return {"clean_prob": ((probs[0] + probs[1]) / 2).cpu().numpy(),
                **prediction_report(logits[0] + logits[1], ctx.train.labels)}

    def extra_state(self) -> dict:
        return {"loss_history": [list(h) for h in self.loss_history]}

    def load_extra_state(self, state: dict) -> None:
        history = state.get("loss_history")
        if history is not None:
            self.loss_history = [[t.to(self.ctx.device) for t in h] for h in history]
