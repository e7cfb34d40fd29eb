"""Every method's config section, importable without torch.

The config loader types the ``method`` section by ``method.name`` before anything heavy is imported, so that a bad
key or an impossible number is answered in well under a second (issue #10). Each method module takes its
``Config`` from here (``Config: ClassVar = DivideMixConfig``); the registry below maps names to the config classes
and to the modules that hold the methods themselves, which :func:`noisyclr.methods.get_method` imports on demand.

Ranges: ``RANGES`` maps a numeric key to an interval (``"[0, 1)"``, ``"(0, inf)"``); a list value is checked
element-wise and a null value is allowed where the key's type admits null. A spec may be ``(interval, example)``
where the default is null or outside the interval. :func:`noisyclr.config.check_ranges` applies them when the
section is built; ``check(cfg)`` holds the checks across keys.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .errors import UserError

# mirrored from noisyclr.losses / noisyclr.selection (torch modules); tests/test_hardening.py checks they agree
CLASSIFICATION_LOSSES = ("ce", "gce", "mae")
SELECTION_BACKENDS = ("sklearn", "torch")


@dataclass
class MethodConfig:
    """Keys every method has. Subclasses add their own; unknown keys are rejected by the config loader."""

    name: str = ""

    RANGES = {}

    def check(self, cfg) -> None:
        """Cross-section checks for this method (raise UserError); the default accepts everything."""

    def check_data(self, cfg, num_train: int, num_classes: int) -> None:
        """Checks against the prepared data (its size, its class count), before anything is written."""


def check_crop_scale(scale: list[float], example: str, key: str = "method.crop_scale") -> None:
    """``key`` (a crop's area range) is ``[min, max]`` with min <= max (each in (0, 1] by its range); UserError
    otherwise."""
    if len(scale) != 2 or not scale[0] <= scale[1]:
        raise UserError(f"{key} must be [min, max] with 0 < min <= max <= 1, got {scale}; e.g. {key}={example}")


@dataclass
class StandardConfig(MethodConfig):
    loss: str = "ce"  # ce | gce | mae
    q: float = 0.7  # GCE exponent (non-truncated L_q)
    neg_entropy: float = 0.0  # weight of the negative-entropy (confidence) penalty
    track_memorisation: bool = True  # per-epoch clean_auc of the training loss when true labels are known
    loss_history: bool = True  # mean normalised per-sample loss over the epochs, for labels.csv / detect
    # each epoch trains on a fresh class-balanced sample (by given label) of this many rows (Ghosh & Lan's
    # Clothing1M pass: 128,000); null = every row
    epoch_subset: int | None = None

    CHOICES = {"loss": CLASSIFICATION_LOSSES}
    RANGES = {"q": "(0, 1]", "neg_entropy": "[0, inf)", "epoch_subset": ("[2, inf)", "128000")}


@dataclass
class DivideMixConfig(MethodConfig):
    warmup_epochs: int = 10  # CIFAR-10 10, CIFAR-100 30
    warmup_batch_size: int | None = None  # null = 2 x train.batch_size, as the reference
    lambda_u: float = 25.0  # unlabeled-loss weight (per-setting values in the presets)
    p_threshold: float = 0.5  # clean-probability threshold of the labeled set
    temperature: float = 0.5  # sharpening temperature T
    alpha: float = 4.0  # Beta(α, α) of MixMatch
    rampup_length: int = 16  # epochs of the linear λ_u ramp-up after warm-up
    warmup_penalty: bool | None = None  # negative-entropy penalty in warm-up; null = on for asym noise
    loss_average_last: int = 0  # average the normalised losses of the last k epochs (5 at 90% noise)
    gmm_backend: str = "sklearn"  # sklearn (parity with the reference) | torch (on the training device)
    drop_last: bool = False  # drop the last partial labeled batch (DivideMix: no; PLReMix: yes)
    # Clothing1M's recipe: each warm-up epoch trains on a fresh class-balanced sample (by given label) of this many
    # rows, and each later epoch divides and trains on a fresh one of division_subset rows; null = every row
    warmup_subset: int | None = None
    division_subset: int | None = None
    # DivideMix's Clothing1M/WebVision step: forward only the first 2B mixed rows, loss L_x + L_reg (needs lambda_u 0)
    mix_labeled_only: bool = False

    CHOICES = {"gmm_backend": SELECTION_BACKENDS}
    RANGES = {
        "warmup_epochs": "[0, inf)",
        "warmup_batch_size": ("[2, inf)", "128"),
        "lambda_u": "[0, inf)",
        "p_threshold": "[0, 1]",
        "temperature": "(0, inf)",
        "alpha": "(0, inf)",
        "rampup_length": "[1, inf)",
        "loss_average_last": "[0, inf)",
        "warmup_subset": ("[2, inf)", "64000"),
        "division_subset": ("[2, inf)", "32000"),
    }

    def check_data(self, cfg, num_train: int, num_classes: int) -> None:
        if self.mix_labeled_only and self.lambda_u:
            raise UserError(f"method.mix_labeled_only drops the unlabeled mixed rows, so there is no L_u for "
                            f"method.lambda_u={self.lambda_u:g} to weigh; set method.lambda_u=0 (DivideMix's "
                            "Clothing1M/WebVision recipe) or method.mix_labeled_only=false")
        for key in ("warmup_subset", "division_subset"):
            size = getattr(self, key)
            if size is not None and size < num_classes:
                raise UserError(f"method.{key}={size} is smaller than the {num_classes} classes, so a class-balanced "
                                f"sample cannot hold every class; e.g. method.{key}={max(64 * num_classes, 1000)}")
        if self.division_subset and self.loss_average_last > 1:
            raise UserError("method.loss_average_last averages each sample's loss over epochs, but "
                            "method.division_subset draws other samples every epoch; set one of them to 0/null")
        if self.warmup_batch_size is not None and self.warmup_batch_size > num_train:
            raise UserError(f"method.warmup_batch_size={self.warmup_batch_size} is larger than the {num_train} "
                            f"training samples; e.g. method.warmup_batch_size={min(num_train, 128)} or null (2 x "
                            "train.batch_size)")


@dataclass
class PLReMixConfig(DivideMixConfig):
    drop_last: bool = True  # PLReMix's loaders drop the last partial batch
    proj_dim: int = 128
    contrastive: str = "flat_plr"  # flat_plr (CIFAR/Tiny) | plr (Clothing1M/WebVision, BPT-PLR)
    lambda_c: float = 1.0  # weight of the PLR loss
    plr_temperature: float = 1.0
    warmup_contrastive: str = "flatnce"  # flatnce | infonce | none
    warmup_temperature: float = 0.1
    proto_temperature: float = 0.1
    proto_momentum: float = 0.99
    semi_momentum: float = 0.99  # EMA of the self-adaptive thresholds
    kappa: int = 3  # top-κ pseudo-labels at the start
    kappa_milestones: list[int] = field(default_factory=lambda: [40, 70])  # κ drops by one at each
    prototype_source: str = "peer"  # peer (reference) | own
    strong_view: str = "strong"  # strong (CIFAR AutoAugment) | strong_imagenet | randaug | weak
    adaptive_selection: bool = True  # class-aware self-adaptive prototype selection (HEAD b0c4ec3)
    # multi-crop (--mcrop; docs/methods/plremix.md, "Multi-crop"): the two strong views become RandomResizedCrops of
    # side multi_crop_large (area multi_crop_large_scale) and multi_crop_small_views small crops (multi_crop_small,
    # multi_crop_small_scale) join the contrastive losses, each followed by the strong view's ops. WebVision's
    # defaults; Clothing1M: 196 @ [0.7, 1] and 120 @ [0.4, 0.7]
    multi_crop: bool = False
    multi_crop_large: int = 224
    multi_crop_large_scale: list[float] = field(default_factory=lambda: [0.14, 1.0])
    multi_crop_small: int = 128
    multi_crop_small_scale: list[float] = field(default_factory=lambda: [0.05, 0.14])
    multi_crop_small_views: int = 6
    # the view of the warm-up CE: weak (CIFAR, WebVision) | strong (PLReMix's Clothing1M warm-up: its first strong
    # view, the one the warm-up contrastive term also sees)
    warmup_ce_view: str = "weak"

    CHOICES = {
        **DivideMixConfig.CHOICES,
        "warmup_ce_view": ("weak", "strong"),
        "contrastive": ("flat_plr", "plr"),
        "warmup_contrastive": ("flatnce", "infonce", "none"),
        "prototype_source": ("peer", "own"),
        "strong_view": ("strong", "strong_imagenet", "randaug", "weak"),
    }
    RANGES = {
        **DivideMixConfig.RANGES,
        "proj_dim": "[1, inf)",
        "lambda_c": "[0, inf)",
        "plr_temperature": "(0, inf)",
        "warmup_temperature": "(0, inf)",
        "proto_temperature": "(0, inf)",
        "proto_momentum": "[0, 1]",
        "semi_momentum": "[0, 1]",
        "kappa": "[0, inf)",
        "kappa_milestones": "[0, inf)",
        "multi_crop_large": "[1, inf)",
        "multi_crop_large_scale": "(0, 1]",
        "multi_crop_small": "[1, inf)",
        "multi_crop_small_scale": "(0, 1]",
        "multi_crop_small_views": "[0, inf)",
    }

    def check(self, cfg) -> None:
        super().check(cfg)
        if self.multi_crop and self.name not in ("", "plremix"):
            raise UserError(f"method.multi_crop is PLReMix's --mcrop; method {self.name} has no multi-crop, "
                            "set method.multi_crop=false")
        if self.name == "bpt_plr" and self.mix_labeled_only:
            raise UserError("method.mix_labeled_only is DivideMix's Clothing1M/WebVision step; BPT-PLR's joint "
                            "MixMatch + PLR forward has no such variant, set method.mix_labeled_only=false")
        check_crop_scale(self.multi_crop_large_scale, "[0.14,1.0]", "method.multi_crop_large_scale")
        check_crop_scale(self.multi_crop_small_scale, "[0.05,0.14]", "method.multi_crop_small_scale")

    def check_data(self, cfg, num_train: int, num_classes: int) -> None:
        super().check_data(cfg, num_train, num_classes)
        if self.kappa > num_classes:
            raise UserError(f"method.kappa={self.kappa} is more than the {num_classes} classes (top-κ pseudo-labels); "
                            f"e.g. method.kappa={min(3, num_classes)}")


@dataclass
class BPTPLRConfig(PLReMixConfig):
    lambda_u: float = 0.0  # README default; 30 for CIFAR-10 sym 0.5 and asym 0.4 (presets)
    contrastive: str = "plr"  # BPT-PLR uses the non-flat PLR only (flat=False)
    warmup_contrastive: str = "none"  # the reference computes it but never backpropagates it
    kappa_milestones: list[int] = field(default_factory=lambda: [40])  # reference: 3 -> 2 at 40, never 1
    adaptive_selection: bool = False  # BPT: all samples with corrected labels (0.8) update the prototypes
    balanced: bool = True  # per-class balanced partition (false: the plain threshold, for ablations)
    oversample: bool = True  # ⌊(|L|+|U|)/B⌋+1 steps per epoch (false: one labeled pass as DivideMix/PLReMix)


@dataclass
class MWNetConfig(MethodConfig):
    loss: str = "ce"  # the weighted training loss: ce (GL) | gce | mae
    q: float = 0.66  # GCE exponent when loss=gce
    meta_loss: str = "ce"  # loss on the clean meta batch: ce | mae
    inner_lr: float | None = 0.1  # virtual-step learning rate; null = the classifier's current lr (official MW-Net)
    normalize_weights: bool = False  # divide by sum of weights (official) instead of the batch size (GL)
    vnet_hidden: int = 100
    meta_lr: float = 1e-3
    meta_momentum: float = 0.9
    meta_nesterov: bool = True
    meta_weight_decay: float = 1e-4
    meta_batch_size: int | None = None  # null = train.batch_size

    CHOICES = {"loss": CLASSIFICATION_LOSSES, "meta_loss": ("ce", "mae")}
    RANGES = {
        "q": "(0, 1]",
        "inner_lr": "(0, inf)",
        "vnet_hidden": "[1, inf)",
        "meta_lr": "(0, inf)",
        "meta_momentum": "[0, 1)",
        "meta_weight_decay": "[0, inf)",
        "meta_batch_size": ("[2, inf)", "100"),
    }

    def check(self, cfg) -> None:
        if cfg.dataset.clean_holdout < 1:
            raise UserError(
                "method mwnet needs clean meta data: set dataset.clean_holdout=N (Ghosh & Lan hold out 1000 clean "
                "CIFAR training images)"
            )
        if self.meta_batch_size is not None and self.meta_batch_size > cfg.dataset.clean_holdout:
            raise UserError(f"method.meta_batch_size={self.meta_batch_size} is larger than the "
                            f"dataset.clean_holdout={cfg.dataset.clean_holdout} meta samples; e.g. "
                            f"method.meta_batch_size={min(100, cfg.dataset.clean_holdout)} or null")


@dataclass
class SimCLRConfig(MethodConfig):
    temperature: float = 0.5  # NT-Xent τ (simclr-pytorch CIFAR config)
    proj_dim: int = 128  # output of the projection head
    proj_hidden: int | None = None  # hidden width of the head (null = feature size, as the reference 2048-2048-128)
    final_bn: bool = True  # BatchNorm1d on the projection with a frozen zero shift (simclr-pytorch)
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop scale range
    color_strength: float = 0.5  # colour distortion s: jitter (0.8s, 0.8s, 0.8s, 0.2s)
    p_jitter: float = 0.8
    p_gray: float = 0.2
    drop_last: bool = True  # SimCLR drops the last partial batch (negatives per anchor stay constant)
    knn_k: int = 200  # k-NN monitor (0 = off: test_acc is then not computed)
    knn_temperature: float = 0.1
    knn_every: int = 1  # epochs between k-NN evaluations (the last epoch is always evaluated)

    RANGES = {
        "temperature": "(0, inf)",
        "proj_dim": "[1, inf)",
        "proj_hidden": ("[1, inf)", "2048"),
        "crop_scale": "(0, 1]",
        "color_strength": "[0, inf)",
        "p_jitter": "[0, 1]",
        "p_gray": "[0, 1]",
        "knn_k": "[0, inf)",
        "knn_temperature": "(0, inf)",
        "knn_every": "[1, inf)",
    }

    def check(self, cfg) -> None:
        check_crop_scale(self.crop_scale, "[0.08,1.0]")
        if cfg.model.init:
            raise UserError("method simclr pretrains from scratch; remove model.init (it is for fine-tuning)")


@dataclass
class TCLConfig(MethodConfig):
    warmup_epochs: int = 20  # noisy-label supervision while epoch < warmup_epochs, epochs counted from 1 (19 at 20)
    feat_dim: int = 256  # projector output d
    temperature: float = 0.25  # NT-Xent and alignment τ
    gmm_temperature: float | None = None  # τ of the component posterior γ (null = temperature, as TCL)
    sep_gmm: bool = False  # one 2-component GMM per noisy class (TCL CIFAR-100 90%) instead of one global GMM
    scale1: float | None = None  # s1 of the strong-view targets (null = ρ̂, re-estimated every epoch)
    scale2: float | None = None  # s2 of the mixed targets (null = ρ̂; 1.0 in TCL's CIFAR-100 90% config)
    mixup_alpha: float = 1.0  # Beta(α, α), λ = max(λ, 1 − λ)
    dropout: float = 0.25  # of the classifier head
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])  # strong views' RandomResizedCrop scale
    cls_weight: float = 1.0
    align_weight: float = 1.0
    ent_weight: float = 1.0
    ne_weight: float = 1.0
    contrastive_weight: float = 1.0  # 1: the global-batch NT-Xent; 0.25 = 1/W: the published 4-GPU runs' gradient
    forward_weak: bool = True  # the unmixed weak views ride in the one forward (BN statistics) though no loss reads them
    drop_last: bool = True  # TCL's train loader drops the last partial batch
    gmm_backend: str = "sklearn"  # sklearn (as TCL) | torch
    knn_k: int = 200  # weighted k-NN monitor of test projections against train projections (0 = off)
    knn_temperature: float = 0.1
    knn_every: int = 1  # epochs between k-NN evaluations (the last epoch is always evaluated)

    CHOICES = {"gmm_backend": SELECTION_BACKENDS}
    RANGES = {
        "warmup_epochs": "[0, inf)",
        "feat_dim": "[1, inf)",
        "temperature": "(0, inf)",
        "gmm_temperature": ("(0, inf)", "0.25"),
        "scale1": ("[0, 1]", "1.0"),
        "scale2": ("[0, 1]", "1.0"),
        "mixup_alpha": "(0, inf)",
        "dropout": "[0, 1)",
        "crop_scale": "(0, 1]",
        "cls_weight": "[0, inf)",
        "align_weight": "[0, inf)",
        "ent_weight": "[0, inf)",
        "ne_weight": "[0, inf)",
        "contrastive_weight": "[0, inf)",
        "knn_k": "[0, inf)",
        "knn_temperature": "(0, inf)",
        "knn_every": "[1, inf)",
    }

    def check(self, cfg) -> None:
        check_crop_scale(self.crop_scale, "[0.2,1.0]")

    def check_data(self, cfg, num_train: int, num_classes: int) -> None:
        if num_train < 2 * num_classes and self.sep_gmm:
            raise UserError(f"method.sep_gmm=true fits a GMM per class, but {num_train} training samples cannot hold "
                            f"2 per class of {num_classes}; set method.sep_gmm=false")


@dataclass
class ManifoldDivideMixConfig(MethodConfig):
    warmup_epochs: int = 20  # symmetric-CE warm-up epochs (CIFAR 20, mini-ImageNet 10)
    interval: int = 10  # epochs between re-divisions after the first (at warmup_epochs)
    redivide: bool = True  # the seed's --clustering: re-divide every `interval` epochs (false: one division)
    p_threshold: float = 0.3  # labeled set {w > p_threshold} minus the OOD samples
    temperature: float = 0.5  # sharpening T
    alpha: float = 4.0  # Beta(α, α) of MixEMatch, λ = max(λ, 1 − λ)
    unlabeled_threshold: float = 0.9  # confidence mask of the sharpened unlabeled targets
    lambda_x: float = 1.0
    lambda_u: float = 100.0
    lambda_xe: float = 1.0  # the manifold (pooled-feature) branch's labeled loss
    lambda_ue: float = 100.0
    lambda_c: float = 1.0  # NT-Xent on the unlabeled strong views
    prior_weight: float = 1.0  # the uniform-prior penalty on the input-mixup logits
    contrastive_temperature: float = 0.05
    contrastive_views: str = "unlabeled"  # unlabeled (published) | all (labeled projections too: issue #2 of the seed)
    proj_dim: int = 128  # Linear(d, 128) -> BN projection
    backbone_lr: float | None = 0.002  # encoder learning rate (train.lr is the heads'); null = train.lr
    bn_frozen: bool = True  # BN in inference mode throughout (the published runs)
    rampup: str = "published"  # published (r = 1 from the first semi epoch) | linear (clip((t - warm-up)/16, 0, 1))
    rampup_length: int = 16
    warmup_ood: str = "rescale"  # rescale (published: the OOD mask only rescales the batch mean) | exclude
    labeled_loss: str = "sce"  # sce (--LN-loss RL, soft symmetric CE) | ce
    rce_target: str = "log_softmax"  # log_softmax (published: the target vector through a log-softmax) | log_clamp
    ood_filter: bool = True  # the k-NN OOD filter (false: plain single-network DivideMix with MixEMatch)
    ood_k: int = 10
    ood_initial: float = 0.1  # R0 = ceil(ood_initial N) on the starting encoder (CIFAR 0.1, mini-ImageNet 0.01)
    ood_step: float = 0.01  # R grows by ceil(ood_step N) per division
    ood_backend: str = "exact"  # exact (chunked on the device) | faiss
    strong_view: str = "strong"  # strong (CIFAR AutoAugment) | strong_imagenet | randaug | weak
    gmm_backend: str = "sklearn"

    CHOICES = {
        "contrastive_views": ("unlabeled", "all"),
        "rampup": ("published", "linear"),
        "warmup_ood": ("rescale", "exclude"),
        "labeled_loss": ("sce", "ce"),
        "rce_target": ("log_softmax", "log_clamp"),
        "ood_backend": ("exact", "faiss"),
        "strong_view": ("strong", "strong_imagenet", "randaug", "weak"),
        "gmm_backend": SELECTION_BACKENDS,
    }
    RANGES = {
        "warmup_epochs": "[0, inf)",
        "interval": "[1, inf)",
        "p_threshold": "[0, 1]",
        "temperature": "(0, inf)",
        "alpha": "(0, inf)",
        "unlabeled_threshold": "[0, 1]",
        "lambda_x": "[0, inf)",
        "lambda_u": "[0, inf)",
        "lambda_xe": "[0, inf)",
        "lambda_ue": "[0, inf)",
        "lambda_c": "[0, inf)",
        "prior_weight": "[0, inf)",
        "contrastive_temperature": "(0, inf)",
        "proj_dim": "[1, inf)",
        "backbone_lr": ("(0, inf)", "0.002"),
        "rampup_length": "[1, inf)",
        "ood_k": "[1, inf)",
        "ood_initial": "[0, 1)",
        "ood_step": "[0, 1)",
    }

    def check_data(self, cfg, num_train: int, num_classes: int) -> None:
        if self.ood_filter and self.ood_k >= num_train:
            raise UserError(f"method.ood_k={self.ood_k} needs more than {self.ood_k} training samples, there are "
                            f"{num_train}; e.g. method.ood_k={max(1, min(10, num_train - 1))}")


# name -> (config class, module of the method under noisyclr.methods, class name)
REGISTRY: dict[str, tuple[type[MethodConfig], str, str]] = {
    "standard": (StandardConfig, "standard", "Standard"),
    "dividemix": (DivideMixConfig, "dividemix", "DivideMix"),
    "plremix": (PLReMixConfig, "plremix", "PLReMix"),
    "mwnet": (MWNetConfig, "mwnet", "MWNet"),
    "simclr": (SimCLRConfig, "simclr", "SimCLR"),
    "bpt_plr": (BPTPLRConfig, "bpt_plr", "BPTPLR"),
    "tcl": (TCLConfig, "tcl", "TCL"),
    "manifold_dividemix": (ManifoldDivideMixConfig, "manifold_dividemix", "ManifoldDivideMix"),
}


def check_method_name(name: str) -> None:
    """UserError naming the closest registered method when ``name`` is not one."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(str(name), list(REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown method.name '{name}'; {hint}available: {', '.join(sorted(REGISTRY))}")


def method_config_class(name: str) -> type[MethodConfig]:
    """The config dataclass of method ``name``."""
    check_method_name(name)
    return REGISTRY[name][0]
