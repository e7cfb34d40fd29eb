"""What the engine hands a method: data on the device, views, precision, optimisers, the eval pass.

A method never builds loaders, picks devices or handles mixed precision itself; it asks the context. That keeps
method files down to the algorithm, and the fast path (bf16 autocast, channels_last, torch.compile) in one place.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from .config import Config
from .data.loader import DeviceData, View, ViewSet
from .distributed import Distributed, convert_sync_batchnorm
from .errors import UserError
from .schedules import learning_rate, set_lr

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU. Asking for CUDA without one is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no CUDA device is visible; use train.device=cpu or auto")
    return torch.device(name)


@dataclass
class RunContext:
    cfg: Config
    device: torch.device
    train: DeviceData
    test: DeviceData
    mean: tuple[float, ...]
    std: tuple[float, ...]
    generator: torch.Generator
    class_names: list[str] = field(default_factory=list)
    progress_enabled: bool = False
    scaler: object | None = None
    # clean held-out split (dataset.clean_holdout): true labels, never corrupted; MW-Net meta data, val_acc
    holdout: DeviceData | None = None
    # further clean test sets by name (mini-WebVision's ``imagenet_val``), evaluated every epoch
    extra_test: dict = field(default_factory=dict)
    # id() of the normalisation-layer parameters of every network built here (train.no_decay_bn)
    _norm_ids: set = field(default_factory=set, repr=False)
    # this process's rank and the collectives (a single process unless launched by torchrun)
    dist: Distributed = field(default_factory=Distributed.single)

    # ---------------------------------------------------------------------------------------------- shapes
    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def in_channels(self) -> int:
        return self.train.image_shape[0]

    @property
    def image_size(self) -> int:
        return self.train.image_shape[1]

    @property
    def channels_last(self) -> bool:
        flag = self.cfg.train.channels_last
        return self.device.type == "cuda" if flag is None else flag

    # ---------------------------------------------------------------------------------------------- views
    def views(self, declared: Mapping[str, str | tuple[str, Mapping]], **options) -> ViewSet:
        """The views a method declared, by name: ``{"weak1": "weak", "weak2": "weak", "strong1": "strong"}`` maps
        each name to a view kind of :func:`noisyclr.augment.build_view`. Returns a :class:`ViewSet` in the declared
        order (the order the views draw from the generator); batches made with it answer ``batch["weak1"]``.

        ``options`` go to the view factories (e.g. ``crop_scale`` of the SimCLR ``contrastive`` view), over the
        dataset's crop (``dataset.crop``/``crop_mode``, checked against the images here). A view may be declared
        as ``(kind, {option: value})`` for options of its own, over both (PLReMix's multi-crops:
        ``("strong_imagenet", {"crop": 224, "crop_mode": "resized", "resized_scale": (0.14, 1.0)})``).
        """
        from .augment import build_view, check_crop

        if not isinstance(declared, Mapping):
            raise TypeError(f"views are declared as a mapping name -> kind, got {declared!r}")
        check_crop(self.cfg.dataset.crop, self.train.image_shape[1:])
        shared = {"crop": self.cfg.dataset.crop, "crop_mode": self.cfg.dataset.crop_mode, **options}
        built, views = {}, []
        for spec in declared.values():
            kind, own = (spec, {}) if isinstance(spec, str) else spec
            key = (kind, repr(sorted(own.items())))
            if key not in built:
                view = build_view(
                    kind,
                    mean=self.mean,
                    std=self.std,
                    image_size=self.image_size,
                    padding=self.cfg.augment.padding,
                    flip=self.cfg.augment.flip,
                    **{**shared, **own},
                )
                built[key] = self._memory_format(view)
            views.append(built[key])
        return ViewSet(list(declared), views)

    def _memory_format(self, view: View) -> View:
        if not self.channels_last:
            return view
        return lambda x, g: view(x, g).contiguous(memory_format=torch.channels_last)

    # ---------------------------------------------------------------------------------------------- networks
    def build_network(
        self, *, proj_dim: int | None = None, proj_hidden: int | None = None, proj_bn: bool = True, **heads
    ) -> nn.Module:
        """The configured backbone + classifier (+ projector), on the device, in the run's memory format.

        ``heads``: a method's own head options (``classifier``, ``dropout``, ``proj_out_bn`` of
        :class:`noisyclr.models.network.Network`).

        With ``model.init`` the backbone is loaded from the pretrained encoder, the projector (if any) keeps its
        fresh initialisation and the classifier is zero-initialised (:func:`noisyclr.models.init.load_encoder`).
        With ``model.pretrained`` the backbone is loaded from a torchvision checkpoint and the heads keep their fresh
        initialisation (:func:`noisyclr.models.pretrained.load_torchvision_weights`).
        """
        from .models import build_network
        from .optim import norm_parameter_ids

        m = self.cfg.model
        net = build_network(
            m.backbone,
            self.num_classes,
            in_channels=self.in_channels,
            proj_dim=proj_dim if proj_dim is not None else m.proj_dim,
            proj_hidden=proj_hidden if proj_hidden is not None else m.proj_hidden,
            proj_bn=proj_bn,
            width=m.width,
            pretrained=m.pretrained,
            **heads,
        )
        if m.init:
            from .models.init import load_encoder

            load_encoder(net, m.init, backbone=m.backbone, width=m.width, mean=self.mean, std=self.std)
        net = self.sync_norm(net).to(self.device)
        self.dist.broadcast_module_(net)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self._norm_ids |= norm_parameter_ids(net)
        return net

    def sync_norm(self, module: nn.Module) -> nn.Module:
        """``module`` with global-batch batch-norm statistics under torchrun with ``train.sync_bn``; unchanged
        otherwise (see :func:`noisyclr.distributed.convert_sync_batchnorm`)."""
        if self.cfg.train.sync_bn and self.dist.enabled:
            return convert_sync_batchnorm(module, self.device)
        return module

    def compiled(self, net: nn.Module) -> nn.Module:
        """``torch.compile(net)`` when ``train.compile`` is on; the same module otherwise.

        The compiled wrapper shares parameters with ``net``, so checkpoints keep using the plain module.
        """
        return torch.compile(net) if self.cfg.train.compile else net

    def optimizer(self, params: Iterable | nn.Module) -> torch.optim.Optimizer:
        """The configured optimiser over ``params`` (a module, or an iterable of parameters or param-group dicts).

        ``train.optimizer=sgd``: SGD with the configured momentum, weight decay and Nesterov flag; with
        ``train.no_decay_bn`` normalisation-layer parameters get no weight decay (one learning rate for all).
        ``train.optimizer=lars``: :class:`noisyclr.optim.LARS` with trust coefficient ``train.lars_trust``;
        norm-layer parameters and biases get neither weight decay nor the trust ratio (SimCLR).
        Norm layers are recognised by module type: of ``params`` when it is a module, else of the networks built
        by :meth:`build_network`. Param-group dicts are passed through unchanged. With the defaults (sgd, no
        ``no_decay_bn``) this is exactly the plain SGD over ``params``.
        """
        from .optim import LARS, decay_groups, norm_parameter_ids

        t = self.cfg.train
        if isinstance(params, nn.Module):
            norm_ids = norm_parameter_ids(params)
            params = list(params.parameters())
        else:
            params = list(params)
            norm_ids = self._norm_ids
        lars = t.optimizer == "lars"
        groups = params
        if (lars or t.no_decay_bn) and params and not isinstance(params[0], dict):
            groups = decay_groups(params, weight_decay=t.weight_decay, no_decay_ids=norm_ids, exclude_1d=lars)
        if lars:
            return LARS(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                        trust_coefficient=t.lars_trust, nesterov=t.nesterov)
        fused = self.device.type == "cuda" if t.fused_optimizer is None else t.fused_optimizer
        # fused: one kernel for the whole update on CUDA; otherwise foreach (multi-tensor) where torch supports it
        kernel = {"fused": True} if fused else {}
        opt = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=t.nesterov,
                              **kernel)
        self.restore_optimizer(opt)
        return opt

    def restore_optimizer(self, opt: torch.optim.Optimizer) -> None:
        """Re-apply this run's optimiser kernel after ``opt.load_state_dict`` (which restores the checkpoint's own
        ``fused`` flag and buffer layouts), and prepare the fused kernel's momentum buffers.

        Torch's fused SGD fails when momentum buffers appear at different steps (PLReMix's projector gets its first
        gradient after warm-up); a zero buffer is the same update as a missing one (dampening 0: the first step sets
        buf = grad either way), so all are created up front. The fused kernel also walks buffer and parameter as
        flat memory, so every buffer takes its parameter's layout (a channels_last CUDA checkpoint resumed on the
        CPU would otherwise update wrongly).
        """
        if type(opt) is not torch.optim.SGD:  # LARS keeps its own kernel
            return
        t = self.cfg.train
        fused = self.device.type == "cuda" if t.fused_optimizer is None else t.fused_optimizer
        for group in opt.param_groups:
            group["fused"] = bool(fused)
            if fused:
                group["foreach"] = None
            for p in group["params"]:
                buf = opt.state[p].get("momentum_buffer") if p in opt.state else None
                if buf is not None and buf.stride() != p.stride():
                    opt.state[p]["momentum_buffer"] = torch.empty_like(p).copy_(buf)
                elif buf is None and fused and group["momentum"]:
                    opt.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def sgd(self, params: Iterable | nn.Module) -> torch.optim.Optimizer:
        """The methods' optimiser (kept name): :meth:`optimizer`, i.e. SGD unless ``train.optimizer=lars``."""
        return self.optimizer(params)

    def schedule(self, optimizer: torch.optim.Optimizer, epoch: int, step: int = 0, steps: int = 1) -> float:
        """Set and return the scheduled learning rate for this epoch and step."""
        lr = learning_rate(self.cfg.train, epoch, step, steps)
        set_lr(optimizer, lr)
        return lr

    # ---------------------------------------------------------------------------------------------- precision
    def autocast(self):
        """Autocast context for ``train.precision`` (a no-op for fp32)."""
        dtype = _DTYPES.get(self.cfg.train.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``zero_grad → backward → (mean over ranks) → step``, through the fp16 gradient scaler when active."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.dist.average_gradients(optimizer)
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.dist.average_gradients(optimizer)
            optimizer.step()

    @contextlib.contextmanager
    def train_rows(self, index: torch.Tensor | None):
        """Within the block, ``self.train`` is its rows ``index`` only (``None``: all rows, nothing changes): a
        method that trains an epoch on a sample (DivideMix's Clothing1M recipe) runs its unchanged epoch on it,
        with row numbers of the sample."""
        if index is None:
            yield self.train
            return
        full = self.train
        self.train = full.subset(index)
        try:
            yield self.train
        finally:
            close = getattr(self.train, "close", None)
            if close is not None:
                close()
            self.train = full

    # ---------------------------------------------------------------------------------------------- passes
    @torch.no_grad()
    def eval_pass(self, nets: Sequence[nn.Module], data: DeviceData, forward=None, view: str = "test") -> list:
        """Outputs of every net on every row of ``data`` (dataset order), in large no-grad batches.

        ``forward(net, x)`` returns a tensor or a tuple of tensors (default: logits). Returns, per net, the
        outputs concatenated over the dataset (float32). Nets are put in eval mode and restored afterwards.
        Under torchrun each rank scores its contiguous share of the rows and the outputs are all-gathered, so
        every rank holds the same full result (and fits the same GMM on it).
        """
        forward = forward or (lambda net, x: net(x))
        (fn,) = self.views({view: view})
        modes = [net.training for net in nets]
        for net in nets:
            net.eval()
        outs: list[list] = [[] for _ in nets]
        bs = self.cfg.train.eval_batch_size
        shard = self.dist.shard
        rows = None if shard is None else shard.bounds(len(data))
        for _idx, raw in data.ordered_chunks(bs, rows=rows):
            x = fn(raw, None)
            with self.autocast():
                for out, net in zip(outs, nets):
                    out.append(forward(net, x))
        for net, mode in zip(nets, modes):
            net.train(mode)
        sizes = None if shard is None else shard.sizes(len(data))
        result = []
        for out in outs:
            if isinstance(out[0], tuple):
                parts = [torch.cat([o[i] for o in out]).float() for i in range(len(out[0]))]
                result.append(tuple(self.dist.gather_rows(p, sizes) for p in parts))
            else:
                result.append(self.dist.gather_rows(torch.cat(out).float(), sizes))
        return result

    def eval_logits(self, nets: Sequence[nn.Module], data: DeviceData, view: str = "test") -> list[torch.Tensor]:
        """Logits ``(N, C)`` of every net on every row of ``data`` (see :meth:`eval_pass`)."""
        return self.eval_pass(nets, data, view=view)

    def progress(self, iterable, total: int, desc: str):
        """A tqdm bar over ``iterable`` when progress is on (a terminal, or ``log.progress=on``)."""
        if not self.progress_enabled:
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
