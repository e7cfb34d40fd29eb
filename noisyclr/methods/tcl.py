"""Method ``tcl`` (Huang, Zhang & Zhang, CVPR 2023): Twin Contrastive Learning with noisy labels.

One network, no division into labeled and unlabeled sets (docs/methods/tcl.md):

* **Noise model** ("Noise model"), before the first epoch and after every epoch, on the eval pass of the whole
  training set: component means μ_k = normalize(Σ_i p_ik z_i) from the classifier's posteriors (one M-step), the
  posterior γ_ik = softmax_k(z_i·μ_k/τ) (one E-step), the wrong-label statistic s_i = −γ(i, ỹ_i) min-max
  normalised, a 2-component 1-D GMM on s (global, or per noisy class with ``sep_gmm``); the clean confidence w_i
  is the posterior of the low-s component and ρ̂ = mean(w > 0.5).
* **Training step** ("Training step"), one pass over the data: input mixup of the three views (weak, strong a,
  strong b) with one λ = max(λ, 1 − λ) and one permutation; one encoder pass over the 6B images; NT-Xent between
  the strong views over the global batch; cross-supervised targets (view a learns from view b's prediction and
  the label in proportion w·s₁), mixed targets, the alignment of the mixed projections with the prototypes, the
  entropy and marginal-entropy terms. While epoch < ``warmup_epochs`` (epochs counted from 1) the targets are the
  given labels.

Deviations and switches (docs/methods/tcl.md, "Deviations"):

* ``contrastive_weight``: our NT-Xent's gradient under torchrun is that of the global-batch loss; the published
  4-GPU runs' gather returned only the local gradient, which scales the contrastive gradient by 1/4 against the
  other terms. The presets set 0.25 to reproduce the published dynamics; 1.0 is the loss as written.
* λ and the permutation come from the run's seeded generator (the reference uses NumPy's global RNG).
* The noise model is checkpointed, so a resumed run continues exactly (the reference recomputes nothing on resume
  and starts from empty buffers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..loop import OnePass, StepResult, run_epoch
from ..losses import cross_entropy, cross_supervised_targets, entropy, info_nce_loss, marginal_negative_entropy
from ..losses import soft_cross_entropy
from ..metrics import accuracy, class_recall, clean_auc, selection_scores
from ..method_configs import TCLConfig
from ..mixing import draw_mix
from ..neighbours import knn_monitor_due, knn_predict
from ..prototypes import component_posterior, prototype_logits, soft_prototypes
from ..selection import clean_probability_assignment
from .base import Method, prediction_report

LOSS_TERMS = ("ctr", "cls", "align", "ent", "ne")


def logits_and_unit_projection(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, z)`` of images ``x``: float32 logits ``(B, C)`` and L2-normalised projections ``(B, d)``."""
    out = net(x, heads=("logits", "proj"))
    return out.logits.float(), F.normalize(out.proj.float(), dim=1)


class TCL(Method):
    Config = TCLConfig
    distributed = True

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        m = self.mcfg
        net = ctx.build_network(proj_dim=m.feat_dim, proj_bn=True, proj_out_bn=True, classifier="mlp_bn",
                                dropout=m.dropout)
        self.nets = [net]
        self.optimizers = [ctx.sgd(net.parameters())]
        self.forward = ctx.compiled(net)
        self.views = ctx.views({"weak": "weak", "a": "strong_solarize", "b": "strong_solarize"},
                               crop_scale=tuple(m.crop_scale))
        # the noise model (checkpointed): prototypes μ (C, d), clean confidences w (N,), ρ̂
        self.prototypes: torch.Tensor | None = None
        self.confidence: torch.Tensor | None = None
        self.rho_hat: float | None = None
        self._train_pass: tuple[torch.Tensor, torch.Tensor] | None = None  # (logits, z) of the last model
        self.epoch = -1

    # ---------------------------------------------------------------------------------------------- noise model
    @property
    def scales(self) -> tuple[float, float]:
        """(s₁, s₂): the configured values, or ρ̂ where null."""
        m, rho = self.mcfg, self.rho_hat if self.rho_hat is not None else 1.0
        return (rho if m.scale1 is None else m.scale1), (rho if m.scale2 is None else m.scale2)

    @torch.no_grad()
    def noise_model(self) -> dict:
        """Re-estimate μ, w and ρ̂ from the current network (tcl.md, "Noise model"); returns the division metrics."""
        ctx, m = self.ctx, self.mcfg
        ((logits, z),) = ctx.eval_pass(self.nets, ctx.train, forward=logits_and_unit_projection)
        probs = torch.softmax(logits, dim=1)
        labels = ctx.train.labels
        mu = soft_prototypes(z, probs)
        gamma = component_posterior(z, mu, m.gmm_temperature or m.temperature)
        w, _ = clean_probability_assignment(gamma, labels, per_class=m.sep_gmm, backend=m.gmm_backend)
        # rank 0's model rules (CUDA reductions may differ in the last bit between ranks; see Distributed.broadcast_)
        self.prototypes = ctx.dist.broadcast_(mu.contiguous())
        self.confidence = ctx.dist.broadcast_(w.contiguous())
        self.rho_hat = float((self.confidence > 0.5).float().mean())
        self._train_pass = (logits, z)
        return self.division_metrics(gamma)

    def division_metrics(self, gamma: torch.Tensor) -> dict:
        """ρ̂, the size / precision / recall of {w > 0.5} and the AUC of w, when the true labels are known; the
        classifier's accuracy on the training set against them."""
        ctx, w = self.ctx, self.confidence
        clean = w > 0.5
        out = {"rho_hat": self.rho_hat, "labeled_size": int(clean.sum())}
        is_clean = ctx.train.is_clean
        if is_clean is None:
            return out
        out.update(selection_scores(clean, is_clean))
        out["clean_auc"] = clean_auc(w, is_clean)
        out["gamma_auc"] = clean_auc(gamma.gather(1, ctx.train.labels[:, None]).squeeze(1), is_clean)
        recall = class_recall(clean, ctx.train.labels, is_clean, ctx.num_classes)
        defined = [v for v in recall if v is not None]
        out["class_recall_min"] = min(defined) if defined else float("nan")
        out["train_acc"] = accuracy(self._train_pass[0].argmax(1), ctx.train.true_labels)
        return out

    # ---------------------------------------------------------------------------------------------- training
    def step(self, s, warmup: bool) -> StepResult:
        """The loss of one batch (tcl.md, "Training step"); every mean is over the global batch."""
        ctx, m, dist = self.ctx, self.mcfg, self.ctx.dist
        b = s.batch
        n, B = len(b), b.size
        draw = draw_mix(m.mixup_alpha, 3 * B, ctx.generator, ctx.device, rule="max")
        x_mix = dist.local_blocks(draw.apply(torch.cat([b.all("weak"), b.all("a"), b.all("b")])), [B, B, B])
        blocks = ([b["weak"]] if m.forward_weak else []) + [x_mix, b["a"], b["b"]]
        with ctx.autocast():
            logits, z = logits_and_unit_projection(self.forward, torch.cat(blocks))
        skip = n if m.forward_weak else 0  # the weak views' outputs feed no loss
        o_mix, o_a, o_b = logits[skip:].split([3 * n, n, n])
        z_mix, z_a, z_b = z[skip:].split([3 * n, n, n])

        # NT-Xent between the strong views; negatives: every other view of the global batch
        zg = dist.gather_blocks_with_grad(torch.cat([z_a, z_b]), [n, n], [B, B])
        l_ctr = info_nce_loss(torch.stack([zg[:B], zg[B:]], dim=1), temperature=m.temperature)

        with torch.no_grad():
            y = F.one_hot(b.labels, ctx.num_classes).float()
            y_all = F.one_hot(ctx.train.labels.index_select(0, b.all_indices), ctx.num_classes).float()
            y_mix = dist.local_blocks(draw.apply(y_all.repeat(3, 1)), [B, B, B])
            if not warmup:
                pa, pb = torch.softmax(o_a.detach(), 1), torch.softmax(o_b.detach(), 1)
                w = self.confidence.index_select(0, b.indices)
                t_a, t_b, t0 = cross_supervised_targets(pa, pb, y, w, *self.scales)
                t0_all = dist.gather_rows(t0, dist.shard.sizes(B) if dist.enabled else None)
                t_mix = dist.local_blocks(draw.apply(t0_all.repeat(3, 1)), [B, B, B])

        mean = dist.batch_mean
        align_logits = prototype_logits(z_mix, self.prototypes, m.temperature)
        if warmup:  # the given labels
            l_cls = (mean(cross_entropy(o_a, b.labels), B) + mean(cross_entropy(o_b, b.labels), B)
                     + mean(soft_cross_entropy(o_mix, y_mix), 3 * B))
            l_align = mean(soft_cross_entropy(align_logits, y_mix), 3 * B)
        else:
            l_cls = (mean(soft_cross_entropy(o_a, t_a), B) + mean(soft_cross_entropy(o_b, t_b), B)
                     + mean(soft_cross_entropy(o_mix, t_mix), 3 * B))
            l_align = mean(soft_cross_entropy(align_logits, t_mix), 3 * B)
        q_logits = torch.cat([o_a, o_b, o_mix])
        l_ent = mean(entropy(q_logits, reduction="none"), 5 * B)
        l_ne = marginal_negative_entropy(q_logits, combine=dist.all_sum_with_grad if dist.enabled else None,
                                         rows=5 * B)
        loss = (m.contrastive_weight * l_ctr + m.cls_weight * l_cls + m.align_weight * l_align
                + m.ent_weight * l_ent + m.ne_weight * l_ne)
        terms = (l_ctr, l_cls, l_align, l_ent, l_ne)
        return StepResult(loss, {f"loss_{k}": v.detach() * B for k, v in zip(LOSS_TERMS, terms)})

    def train_epoch(self, epoch: int) -> dict:
        ctx, m = self.ctx, self.mcfg
        self.epoch = epoch
        if self.confidence is None:  # before the first epoch: the noise model of the untrained network
            self.noise_model()
        warmup = epoch + 1 < m.warmup_epochs  # the reference's 1-based `cur_epoch < warmup_epochs`
        self.nets[0].train()
        plan = OnePass(ctx.train, self.cfg.train.batch_size, self.views, drop_last=m.drop_last)
        r = run_epoch(ctx, plan, lambda s: self.step(s, warmup), self.optimizers[0], epoch=epoch,
                      desc=f"epoch {epoch + 1}", lr_per_step=True)
        stats = {"phase": "warmup" if warmup else "tcl", "train_loss": r["loss"], "images": r["images"], "lr": r["lr"]}
        stats.update({f"loss_{k}": ctx.dist.mean_scalar(r[f"loss_{k}"]) for k in LOSS_TERMS if f"loss_{k}" in r})
        stats.update(self.noise_model())  # re-estimated after every epoch (the reference's `reassign: 1`)
        return stats

    # ---------------------------------------------------------------------------------------------- monitors
    # the engine's test pass computes the logits (test_acc) and the projections the k-NN monitor needs at once
    test_forward = staticmethod(logits_and_unit_projection)

    @torch.no_grad()
    def evaluate_extra(self, test_outputs) -> dict:
        """Weighted k-NN accuracy (k, t) of the test projections (``test_outputs``: per net, the rest of
        :attr:`test_forward`) against the training projections, labelled with the true labels when they are known
        (the reference's monitor), else the given ones."""
        m, ctx = self.mcfg, self.ctx
        if not knn_monitor_due(self.epoch, self.cfg.train.epochs, m.knn_k, m.knn_every):
            return {}
        if self._train_pass is None:  # resumed: the noise model came from the checkpoint, not from a pass
            self._train_pass = ctx.eval_pass(self.nets, ctx.train, forward=logits_and_unit_projection)[0]
        bank_labels = ctx.train.true_labels if ctx.train.true_labels is not None else ctx.train.labels
        ((test_z,),) = test_outputs
        pred = knn_predict(self._train_pass[1], bank_labels, test_z, ctx.num_classes, k=m.knn_k,
                           temperature=m.knn_temperature)
        return {"knn_acc": accuracy(pred, ctx.test.labels)}

    # ---------------------------------------------------------------------------------------------- outputs
    def sample_report(self) -> dict:
        """w of the last noise model as the clean probability, the classifier's prediction as the label."""
        if self._train_pass is None or self.confidence is None:
            self.noise_model()
        return {"clean_prob": self.confidence.cpu().numpy(),
                **prediction_report(self._train_pass[0], self.ctx.train.labels)}

    def extra_state(self) -> dict:
        if self.confidence is None:
            return {}
        return {"prototypes": self.prototypes, "confidence": self.confidence, "rho_hat": self.rho_hat}

    def load_extra_state(self, state: dict) -> None:
        if "confidence" in state:
            self.prototypes = state["prototypes"].to(self.ctx.device)
            self.confidence = state["confidence"].to(self.ctx.device)
            self.rho_hat = float(state["rho_hat"])
            self._train_pass = None
