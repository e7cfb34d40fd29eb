"""Method ``manifold_dividemix`` (Manifold DivideMix, CVPR 2024 Workshops, arXiv 2308.06861): one network, a k-NN
OOD filter on the encoder's embedding, DivideMix's division, and MixEMatch.

Per epoch (docs/methods/manifold_dividemix.md):

* **OOD filter** ("OOD filter"): before any training, on the starting (self-supervised, ``model.init``) encoder,
  and again at every division on the current one: the mean cosine distance of each sample's L2-normalised
  features to its k = 10 nearest neighbours (self excluded); the R most distant samples are out-of-distribution,
  R = ceil(ood_initial·N) + d·ceil(ood_step·N) at the d-th division.
* **Warm-up** (``epoch < warmup_epochs``): symmetric CE on a weak view of every sample.
* **Division** at the end of warm-up and every ``interval`` epochs after it (``redivide``): a 2-component GMM
  (max_iter 20) on the normalised per-sample CE; labeled {w > 0.3}, unlabeled {w ≤ 0.3}, both without the OOD
  samples; the sets hold until the next division.
* **MixEMatch** ("MixEMatch"): weak-view label refinement and guessing (sharpened, T = 0.5; unlabeled targets
  masked below 0.9 confidence); one Beta(4, 4) draw (λ = max(λ, 1 − λ)) and permutation mixes the strong-view
  images, their pooled encoder features, the targets and the masks; the soft symmetric CE / squared error on both
  branches (input mixup through the whole network, manifold mixup through the classifier); NT-Xent (τ 0.05) on
  the unlabeled strong views; the uniform-prior penalty.

The seed's quirks are keys, each with the published behaviour as default (manifold_dividemix.md, "The seed's
quirks"): ``bn_frozen``, ``rampup``, ``warmup_ood``, ``rce_target``, ``contrastive_views``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..loop import LabeledPass, OnePass, run_epoch
from ..losses import (co_guess, co_refine, cross_entropy, info_nce_loss, sharpen, soft_cross_entropy,
                      soft_symmetric_cross_entropy, squared_error, symmetric_cross_entropy, uniform_prior_penalty)
from ..losses.semi import linear_rampup
from ..method_configs import ManifoldDivideMixConfig
from ..metrics import clean_auc, selection_scores
from ..mixing import draw_mix
from ..neighbours import knn_ood_score, ood_flags, ood_removal_count
from ..selection import clean_probability_1d
from .base import Method, prediction_report

GMM_MAX_ITER = 20  # the seed's GaussianMixture(max_iter=20, tol=1e-2, reg_covar=5e-4)


class ManifoldDivideMix(Method):
    Config = ManifoldDivideMixConfig

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        m = self.mcfg
        net = ctx.build_network(proj_dim=m.proj_dim, projector="linear", proj_out_bn=True)
        self.nets = [net]
        # two learning rates: the heads at train.lr, the encoder at backbone_lr (a group's lr_scale, see set_lr)
        scale = 1.0 if m.backbone_lr is None else m.backbone_lr / cfg.train.lr
        heads = [p for name, p in net.named_parameters() if not name.startswith("backbone.")]
        self.optimizers = [ctx.sgd([{"params": heads, "lr_scale": 1.0},
                                    {"params": list(net.backbone.parameters()), "lr_scale": scale}])]
        self.forward = ctx.compiled(net)
        s = m.strong_view
        self.warmup_views = ctx.views({"weak": "weak"})
        self.semi_views = ctx.views({"weak1": "weak", "weak2": "weak", "strong1": s, "strong2": s})
        # checkpointed state: the OOD set, the last division's clean probability, the number of divisions so far
        self.ood: torch.Tensor | None = None
        self.prob: torch.Tensor | None = None
        self.divisions = 0

    # ---------------------------------------------------------------------------------------------- the epoch
    def divides(self, epoch: int) -> bool:
        """Division at the end of warm-up, then every ``interval`` epochs (0-based epochs, the seed's
        ``epoch % interval == 0``) while ``redivide``."""
        w = self.mcfg.warmup_epochs
        return epoch == w or (self.mcfg.redivide and epoch > w and epoch % self.mcfg.interval == 0)

    def train_mode(self) -> None:
        """BN in inference mode during training with ``bn_frozen`` (the seed never calls ``model.train()``; its
        affine parameters still learn), else train mode."""
        self.nets[0].train(not self.mcfg.bn_frozen)

    def train_epoch(self, epoch: int) -> dict:
        ctx, m = self.ctx, self.mcfg
        ctx.schedule(self.optimizers[0], epoch)  # cosine per epoch, both groups
        stats: dict = {}
        if self.ood is None:  # before any training: the starting encoder's OOD set (division index 0)
            stats.update(self.detect_ood(features=None))
        if epoch < m.warmup_epochs:
            out = self.warmup(epoch)
            stats["phase"] = "warmup"
        else:
            if self.prob is None or self.divides(epoch):
                stats.update(self.divide(epoch))
            out = self.train_semi(epoch)
            stats["phase"] = "semi"
        groups = self.optimizers[0].param_groups
        stats.update({"train_loss": out["loss"], "images": out["images"], "lr": groups[0]["lr"],
                      "lr_backbone": groups[1]["lr"]})
        return stats

    # ---------------------------------------------------------------------------------------------- OOD filter
    @torch.no_grad()
    def detect_ood(self, features: torch.Tensor | None) -> dict:
        """Flag the R samples farthest (mean cosine distance to k neighbours) from the others, R by the schedule."""
        ctx, m = self.ctx, self.mcfg
        n = len(ctx.train)
        if not m.ood_filter:
            self.ood = torch.zeros(n, dtype=torch.bool, device=ctx.device)
            return {}
        if features is None:
            (features,) = ctx.eval_pass(self.nets, ctx.train, forward=lambda net, x: net(x, heads=("features",)).features)
        score = knn_ood_score(features, k=m.ood_k, backend=m.ood_backend)
        r = ood_removal_count(n, self.divisions, m.ood_initial, m.ood_step)
        self.ood = ood_flags(score, r)
        out = {"ood_removed": r}
        truth = ctx.train.is_ood
        if truth is not None:
            scores = selection_scores(self.ood, truth)
            out.update({"ood_precision": scores["label_precision"], "ood_recall": scores["label_recall"],
                        "ood_auc": clean_auc(score, truth)})
        return out

    # ---------------------------------------------------------------------------------------------- warm-up
    def warmup_step(self, s) -> torch.Tensor:
        """Symmetric CE (α = β = 1) on the weak view; the OOD mask as the seed applies it (``warmup_ood``)."""
        b = s.batch
        with self.ctx.autocast():
            logits = self.forward(b["weak"])
        losses = symmetric_cross_entropy(logits, b.labels)
        keep = (~self.ood.index_select(0, b.indices)).float()
        if self.mcfg.warmup_ood == "exclude":
            return (losses * keep).sum() / keep.sum().clamp_min(1.0)
        return losses.mean() * keep.mean()  # the seed masks the batch mean: a rescaling, not an exclusion

    def warmup(self, epoch: int) -> dict:
        self.train_mode()
        plan = OnePass(self.ctx.train, self.cfg.train.batch_size, self.warmup_views)
        return run_epoch(self.ctx, plan, self.warmup_step, self.optimizers[0], epoch=epoch,
                         desc=f"warmup ep{epoch + 1}")

    # ---------------------------------------------------------------------------------------------- division
    @torch.no_grad()
    def divide(self, epoch: int) -> dict:
        """Re-score OOD on the current encoder (R grown by one step), then the loss GMM; returns the metrics."""
        ctx, m = self.ctx, self.mcfg
        self.divisions += 1

        def forward(net, x):
            out = net(x, heads=("logits", "features"))
            return out.logits, out.features

        ((logits, features),) = ctx.eval_pass(self.nets, ctx.train, forward=forward)
        stats = self.detect_ood(features)
        self.prob, _ = clean_probability_1d(cross_entropy(logits, ctx.train.labels), max_iter=GMM_MAX_ITER,
                                            backend=m.gmm_backend)
        labeled, _ = self.split()
        stats.update({"division": self.divisions, "labeled_size": int(labeled.numel())})
        is_clean = ctx.train.is_clean
        if is_clean is not None:
            mask = torch.zeros(len(ctx.train), dtype=torch.bool, device=ctx.device)
            mask[labeled] = True
            stats.update(selection_scores(mask, is_clean))
            stats["clean_auc"] = clean_auc(self.clean_prob(), is_clean)
        return stats

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the labeled {w > p_threshold} and unlabeled {w ≤ p_threshold} sets, OOD samples in neither."""
        keep = ~self.ood
        labeled = (self.prob > self.mcfg.p_threshold) & keep
        return labeled.nonzero().squeeze(1), ((~labeled) & keep).nonzero().squeeze(1)

    def clean_prob(self) -> torch.Tensor:
        """w with the OOD samples at 0 (their labels are wrong by definition): what labels.csv reports."""
        return torch.where(self.ood, torch.zeros_like(self.prob), self.prob)

    # ---------------------------------------------------------------------------------------------- MixEMatch
    def ramp(self, t: float) -> float:
        """r(t): 1 from the first semi-supervised epoch as published (the seed's step counter makes its
        argument ≈ 2·epoch), or the intended linear ramp-up."""
        if self.mcfg.rampup == "published":
            return 1.0
        return linear_rampup(t, self.mcfg.warmup_epochs, self.mcfg.rampup_length)

    @torch.no_grad()
    def targets(self, xb, ub) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sharpened refined labeled targets and guessed unlabeled targets from the weak views; the unlabeled
        confidence mask."""
        m, ctx = self.mcfg, self.ctx
        with ctx.autocast():
            px = [torch.softmax(self.forward(xb[v]).float(), 1) for v in ("weak1", "weak2")]
            pu = [torch.softmax(self.forward(ub[v]).float(), 1) for v in ("weak1", "weak2")]
        one_hot = F.one_hot(xb.labels, ctx.num_classes).float()
        t_x = sharpen(co_refine(px, one_hot, self.prob.index_select(0, xb.indices)), m.temperature)
        t_u = sharpen(co_guess(pu), m.temperature)
        mask_u = (t_u.max(dim=1).values >= m.unlabeled_threshold).float()
        return t_x, t_u, mask_u

    def labeled_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.mcfg.labeled_loss == "ce":
            return soft_cross_entropy(logits, targets)
        return soft_symmetric_cross_entropy(logits, targets, target_log=self.mcfg.rce_target)

    def semi_step(self, s, epoch: int, num_iter: int) -> torch.Tensor:
        """``λx Lx + λu r Lu + λxe Lxe + λue r Lue + λc L_con + penalty`` of one labeled + unlabeled batch."""
        m, ctx = self.mcfg, self.ctx
        xb, ub = s.x, s.u
        nx, nu = len(xb), len(ub)
        t_x, t_u, mask_u = self.targets(xb, ub)
        images = torch.cat([xb["strong1"], xb["strong2"], ub["strong1"], ub["strong2"]])
        with ctx.autocast():
            out = self.forward(images, heads=("features", "proj"))
        h = out.features
        # NT-Xent on the strong views' projections: the unlabeled ones as published, or all (the open question)
        g = F.normalize(out.proj.float(), dim=1)
        if m.contrastive_views == "unlabeled":
            pairs = torch.stack([g[2 * nx : 2 * nx + nu], g[2 * nx + nu :]], dim=1)
        else:
            pairs = torch.stack([torch.cat([g[:nx], g[2 * nx : 2 * nx + nu]]), torch.cat([g[nx : 2 * nx], g[2 * nx + nu :]])], dim=1)
        l_con = info_nce_loss(pairs, temperature=m.contrastive_temperature) if pairs.shape[0] >= 2 else h.sum() * 0

        # one draw mixes the images, their pooled features, the targets and the masks
        draw = draw_mix(m.alpha, images.shape[0], ctx.generator, ctx.device, rule="max")
        targets = draw.apply(torch.cat([t_x, t_x, t_u, t_u]))
        ones = torch.ones(nx, device=ctx.device)
        masks = draw.apply(torch.cat([ones, ones, mask_u, mask_u]))
        with ctx.autocast():
            o_in = self.forward(images, mix=draw)  # input mixup through the whole network
            o_hid = self.nets[0].classifier(draw.apply(h))  # manifold mixup of the pooled features
        r = self.ramp(epoch + s.batch_idx / num_iter)
        split = 2 * nx

        def branch(o):
            l_x = (masks[:split] * self.labeled_loss(o[:split], targets[:split])).mean()
            l_u = (masks[split:] * squared_error(o[split:], targets[split:]).mean(dim=1)).mean()
            return l_x, l_u

        l_x, l_u = branch(o_in)
        l_xe, l_ue = branch(o_hid)
        penalty = uniform_prior_penalty(o_in)
        return (m.lambda_x * l_x + m.lambda_u * r * l_u + m.lambda_xe * l_xe + m.lambda_ue * r * l_ue
                + m.lambda_c * l_con + m.prior_weight * penalty)

    def train_semi(self, epoch: int) -> dict:
        ctx = self.ctx
        labeled, unlabeled = self.split()
        if len(unlabeled) < 2:  # nearly everything judged clean: unlabeled batches from all non-OOD samples
            unlabeled = (~self.ood).nonzero().squeeze(1)
        if len(labeled) < 2:
            return {"loss": 0.0, "images": 0}
        num_iter = len(labeled) // self.cfg.train.batch_size + 1
        self.train_mode()
        plan = LabeledPass(ctx.train, self.cfg.train.batch_size, self.semi_views, labeled, unlabeled)
        return run_epoch(ctx, plan, lambda s: self.semi_step(s, epoch, num_iter), self.optimizers[0], epoch=epoch,
                         desc=f"semi ep{epoch + 1}")

    # ---------------------------------------------------------------------------------------------- outputs
    def sample_report(self) -> dict:
        """The last division's w (0 for the OOD samples) and the network's prediction."""
        ctx = self.ctx
        (logits,) = ctx.eval_logits(self.nets, ctx.train)
        if self.prob is None:  # never divided (a warm-up-only run): the division the next epoch would make
            self.divide(self.cfg.train.epochs)
        return {"clean_prob": self.clean_prob().cpu().numpy(), **prediction_report(logits, ctx.train.labels)}

    def extra_state(self) -> dict:
        state = {"divisions": self.divisions}
        if self.ood is not None:
            state["ood"] = self.ood
        if self.prob is not None:
            state["prob"] = self.prob
        return state

    def load_extra_state(self, state: dict) -> None:
        dev = self.ctx.device
        self.divisions = int(state.get("divisions", 0))
        self.ood = state["ood"].to(dev) if "ood" in state else None
        self.prob = state["prob"].to(dev) if "prob" in state else None
