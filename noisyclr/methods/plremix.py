"""Method ``plremix`` (Liu, Zhou, Yue & Cheng, WACV 2025): DivideMix + the PLR contrastive loss + a 2-D GMM.

What it adds to :mod:`.dividemix` (docs/methods/plremix.md, "What it adds to DivideMix"):

* a projector ``Linear(d, d) → ReLU → Linear(d, 128)`` with L2-normalised output, and per net a prototype matrix
  ``P ∈ R^{C×128}`` (unit rows, no gradient);
* warm-up: CE on a weak view + the FlatNCE (or InfoNCE) loss on two strong views, τ = 0.1 ("Warm-up losses"); the
  prototypes are initialised from noisy-label class means at the end of the last warm-up epoch ("Prototypes and
  self-adaptive selection");
* division: a full-covariance 2-component GMM on (classifier CE, prototype CE), each min-max normalised; the clean
  component is the one nearest the origin ("Division (2-D GMM)");
* semi-supervised step: targets from the two weak views, MixMatch on the two **strong** views, plus
  ``λ_c · L_PLR`` on the unmixed strong views of labeled and unlabeled samples with the reliable-negative mask from
  the peer's stored logits and top-κ pseudo-labels (κ 3→2→1 at epochs 40/70) ("Contrastive losses, exactly");
* after each net's pass: class-aware self-adaptive selection and the prototype EMA ("Prototypes and self-adaptive
  selection").

Deviations and switches (also in ``docs/methods/plremix.md``):

* ``prototype_source=peer`` (default) reproduces the reference, which updates a net's prototypes with the *peer's*
  embeddings and predictions; ``own`` uses the net's own eval pass, which keeps each prototype matrix in its own
  embedding space.
* ``warmup_contrastive=infonce`` is a proper InfoNCE; the reference's ``--crl plr`` warm-up on CIFAR pushes
  positives apart (plremix.md, "Warm-up losses"), so we do not reproduce that path.
* Indices are global everywhere (the reference's Clothing1M/WebVision index bugs do not apply).

Multi-crop (``multi_crop``, the reference's ``--mcrop`` on Clothing1M/WebVision; plremix.md, "Multi-crop"): the two
strong views become ``RandomResizedCrop(multi_crop_large)`` crops and ``multi_crop_small_views`` (6) small crops
join them, each followed by the strong view's ops. The two large crops stay the MixMatch inputs (the reference's
img3/img4); the warm-up contrastive term and the PLR loss see all V = 2 + 6 views, the large and the small crops
in one forward each, concatenated into ``(N, V, 128)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cross_entropy
from ..losses.contrastive import flat_nce_loss, info_nce_loss, kappa_schedule, plr_loss, reliable_negative_mask
from ..prototypes import AdaptiveThreshold, corrected_labels, ema_update_prototypes, init_prototypes, prototype_logits
from ..selection import clean_probability_2d
from ..method_configs import PLReMixConfig
from ..errors import UserError
from .dividemix import DivideMix


def unit_projection(net, x: torch.Tensor) -> torch.Tensor:
    """z = P(h)/‖P(h)‖: the L2-normalised float32 projection ``(B, proj_dim)`` of images ``x`` by ``net``."""
    return F.normalize(net(x, heads=("proj",)).proj.float(), dim=1)


class PLReMix(DivideMix):
    Config = PLReMixConfig

    def __init__(self, cfg, ctx):
        m = cfg.method
        counts = torch.bincount(ctx.train.labels, minlength=ctx.num_classes)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:  # a prototype is the mean of its class's embeddings: refused before anything is trained
            names = [ctx.class_names[c] if c < len(ctx.class_names) else str(c) for c in empty[:5]]
            raise UserError(f"{len(empty)} of the {ctx.num_classes} classes have no training image (e.g. "
                            f"{', '.join(names)}), so {cfg.method.name} cannot initialise their prototypes; train "
                            "on the classes present (dataset.classes=[...], or the source's num_classes option)")
        super().__init__(cfg, ctx)
        self.prototypes: list[torch.Tensor | None] = [None, None]
        self.threshold = AdaptiveThreshold(ctx.num_classes, momentum=m.semi_momentum, device=ctx.device)
        self.info: list[dict | None] = [None, None]  # per net: eval-pass outputs of this epoch

    @property
    def semi_views(self) -> dict:
        """Two weak views for the targets, two strong ones for MixMatch and the PLR loss (+ the small crops)."""
        return {"weak1": "weak", "weak2": "weak", **self.contrastive_views}

    @property
    def warmup_views(self) -> dict:
        """A weak view for CE (none with ``warmup_ce_view=strong``: the CE takes strong1), two strong views (+ the
        small crops) for the warm-up contrastive term."""
        weak = {} if self.mcfg.warmup_ce_view == "strong" else {"weak": "weak"}
        return {**weak, **self.contrastive_views}

    def warmup_ce_input(self, batch) -> torch.Tensor:
        # PLReMix's Clothing1M warm-up: CE on a strong view (spec 7, "Which view feeds what")
        return batch["strong1"] if self.mcfg.warmup_ce_view == "strong" else batch["weak"]

    @property
    def contrastive_views(self) -> dict:
        """The views of the contrastive losses, by name, in their order in ``(N, V, D)``: ``strong1``, ``strong2``
        (MixMatch's inputs too), and with multi-crop the large crops in their place and ``small1``, ``small2``, ..."""
        m = self.mcfg
        s = m.strong_view
        if not m.multi_crop:
            return {"strong1": s, "strong2": s}

        def crop(side, scale):  # the strong view with its crop replaced by RandomResizedCrop(side, scale)
            return (s, {"crop": side, "crop_mode": "resized", "resized_scale": tuple(scale)})

        large = crop(m.multi_crop_large, m.multi_crop_large_scale)
        small = crop(m.multi_crop_small, m.multi_crop_small_scale)
        return {"strong1": large, "strong2": large,
                **{f"small{j}": small for j in range(1, m.multi_crop_small_views + 1)}}

    def project_views(self, k: int, batches: list) -> torch.Tensor:
        """Unit projections ``(N, V, D)`` of the :attr:`contrastive_views` of ``batches`` (their rows concatenated:
        ``[batch]`` in warm-up, ``[labeled, unlabeled]`` in the semi step; N counts every rank's rows), view-major
        as the losses stack them.

        Views of one size share one forward (the two strong views; with multi-crop the large crops and the small
        crops are two forwards); under torchrun every rank's rows are gathered with their gradients.
        """
        names = list(self.contrastive_views)
        local, total = [len(b) for b in batches], [b.size for b in batches]
        groups: dict[tuple, list[str]] = {}
        for name in names:  # first-appearance order, so without multi-crop this is the one forward it always was
            groups.setdefault(tuple(batches[0][name].shape[-2:]), []).append(name)
        per_view: dict[str, torch.Tensor] = {}
        for group in groups.values():
            with self.ctx.autocast():
                z = self.embed(k, torch.cat([b[name] for name in group for b in batches]))
            z = self.ctx.dist.gather_blocks_with_grad(z, local * len(group), total * len(group))
            per_view.update(zip(group, z.split(sum(total))))
        return torch.stack([per_view[name] for name in names], dim=1)

    def build_net(self):
        # PLReMix's projector: Linear(d, d) -> ReLU -> Linear(d, 128), no batch norm
        return self.ctx.build_network(proj_dim=self.mcfg.proj_dim, proj_bn=False)

    def embed(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised projection ``z`` of images ``x`` by net ``k``."""
        return unit_projection(self.forwards[k], x)

    # ---------------------------------------------------------------------------------------------- warm-up
    def warmup_loss(self, k: int, batch) -> torch.Tensor:
        loss = super().warmup_loss(k, batch)
        kind = self.mcfg.warmup_contrastive
        if kind == "none":
            return loss
        features = self.project_views(k, [batch])  # (B, V, D), the negatives of all ranks
        fn = flat_nce_loss if kind == "flatnce" else info_nce_loss
        return loss + fn(features, temperature=self.mcfg.warmup_temperature)

    def after_warmup_epoch(self, epoch: int) -> None:
        if epoch == self.mcfg.warmup_epochs - 1:
            self.init_prototypes()

    @torch.no_grad()
    def init_prototypes(self) -> None:
        """P_c = normalize(mean of eval-pass embeddings with noisy label c), for both nets (plremix.md, "Prototypes and
        self-adaptive selection")."""
        ctx = self.ctx
        zs = ctx.eval_pass(self.nets, ctx.train, forward=unit_projection)
        self.prototypes = [ctx.dist.broadcast_(init_prototypes(z, ctx.train.labels, ctx.num_classes)) for z in zs]

    # ---------------------------------------------------------------------------------------------- division
    @torch.no_grad()
    def divide(self, k: int, epoch: int) -> torch.Tensor:
        """2-D GMM clean probability of net ``k`` (plremix.md, "Division (2-D GMM)"); stores its logits, pseudo-labels, prototype logits, z."""
        ctx = self.ctx
        if self.prototypes[k] is None:  # no warm-up epochs: initialise from the untrained nets
            self.init_prototypes()

        def forward(net, x):
            out = net(x, heads=("logits", "proj"))
            return out.logits, F.normalize(out.proj.float(), dim=1)

        ((logits, z),) = ctx.eval_pass([self.nets[k]], ctx.train, forward=forward)
        g = prototype_logits(z, self.prototypes[k], temperature=self.mcfg.proto_temperature)
        labels = ctx.train.labels
        prob, _ = clean_probability_2d(
            cross_entropy(logits, labels),
            cross_entropy(g, labels),
            backend=self.mcfg.gmm_backend,
            cls_history=self.history(k),
            average_last=self.mcfg.loss_average_last,
        )
        prob = ctx.dist.broadcast_(prob.contiguous())  # rank 0's division rules (see Distributed.broadcast_)
        self.info[k] = {"logits": logits, "pseudo": logits.argmax(1), "proto_logits": g, "z": z}
        self.last_division[k] = prob
        return prob

    # ---------------------------------------------------------------------------------------------- semi
    def mix_inputs(self, xb, ub) -> list[torch.Tensor]:
        """PLReMix mixes the strong views (weak views only give the targets)."""
        return [xb.all("strong1"), xb.all("strong2"), ub.all("strong1"), ub.all("strong2")]

    def semi_loss(self, k: int, peer: int, xb, ub, w: torch.Tensor, t: float, epoch: int) -> torch.Tensor:
        loss = super().semi_loss(k, peer, xb, ub, w, t, epoch)
        if self.mcfg.lambda_c == 0:
            return loss
        mask = self.plr_mask(peer, xb, ub, epoch)  # (N, N) over the global batch [labeled; unlabeled]
        features = self.project_views(k, [xb, ub])  # (N, V, D): [x³; u³], [x⁴; u⁴] (+ the small crops)
        plr = plr_loss(features, mask, temperature=self.mcfg.plr_temperature, flat=self.mcfg.contrastive == "flat_plr")
        return loss + self.mcfg.lambda_c * plr

    def plr_mask(self, peer: int, xb, ub, epoch: int) -> torch.Tensor:
        """Reliable-negative mask (2B, 2B) of the batch [labeled; unlabeled] from the peer's stored eval logits and
        the noisy labels, with κ from the schedule (plremix.md, "Reliable negatives")."""
        idx = torch.cat([xb.all_indices, ub.all_indices])
        kappa = kappa_schedule(epoch, tuple(self.mcfg.kappa_milestones), self.mcfg.kappa)
        return reliable_negative_mask(
            self.info[peer]["logits"].index_select(0, idx), self.ctx.train.labels.index_select(0, idx), kappa
        )

    @torch.no_grad()
    def after_train(self, k: int, epoch: int) -> None:
        """Self-adaptive selection, then the prototype EMA of net ``k`` (plremix.md, "Prototypes and
        self-adaptive selection")."""
        source = self.info[1 - k] if self.mcfg.prototype_source == "peer" else self.info[k]
        labels = source["pseudo"]
        if self.mcfg.adaptive_selection:  # HEAD b0c4ec3
            selected = self.threshold.update_and_select(source["proto_logits"], source["logits"], epoch, self.cfg.train.epochs)
        else:  # initial commit 77cf96b / BPT-PLR: all samples, confident ones relabelled
            selected = None
            labels = corrected_labels(labels, source["proto_logits"], source["logits"])
        self.prototypes[k] = self.ctx.dist.broadcast_(ema_update_prototypes(
            self.prototypes[k], source["z"], labels, selected, momentum=self.mcfg.proto_momentum
        ).contiguous())

    # ---------------------------------------------------------------------------------------------- state
    def extra_state(self) -> dict:
        state = super().extra_state()
        state["prototypes"] = [p for p in self.prototypes if p is not None]
        state["threshold"] = self.threshold.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        protos = state.get("prototypes") or []
        self.prototypes = [p.to(self.ctx.device) for p in protos] if len(protos) == 2 else [None, None]
        if "threshold" in state:
            self.threshold.load_state_dict(state["threshold"])
