"""The one training loop, and the plans that say which batches an epoch walks.

A method says what one step computes (a loss from a batch, or from a labeled and an unlabeled batch); it never
batches. :func:`run_epoch` owns the rest, for every method: it walks a plan with the run's generator, shows
progress, sets the learning rate per step where the schedule asks for it, takes the optimiser step (through the
context: gradient scaler, gradient averaging under torchrun) and keeps the loss and image accounting on the device
(no host sync per step).

The three ways of walking an epoch are three plans:

* :class:`OnePass`: one pass over a split or a subset of it (warm-up, CE, SimCLR, MW-Net);
* :class:`LabeledPass`: one pass over the labeled set, each labeled batch paired with the next batch of an
  unlabeled iterator that restarts when exhausted (DivideMix and PLReMix's semi-supervised epoch);
* :class:`Oversampled`: BPT-PLR's epoch of ``max_iters = ⌊(|L| + |U|)/B⌋ + 1`` trained steps whatever |L|: the
  labeled loader is re-iterated, the unlabeled one cycles, a pair with a batch of ≤ 1 row is drawn and skipped.

Every plan yields :class:`Step` items and draws its batches in the same order from the generator (a labeled
batch, then the unlabeled one), which is what makes a run bit-exact on resume. Under torchrun a batch holds this
rank's rows and ``batch.size`` the global batch's; the loop weights losses by the global rows, so the logged mean
is the one a single process logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .data.loader import Batch, ViewSet, batch_bounds


@dataclass(frozen=True)
class Step:
    """One trained step of a plan.

    ``index``: 0-based position among the epoch's trained steps; ``batch_idx``: position inside the current pass
    over the labeled loader (the λ_u ramp-up's batch index; it restarts at 0 every pass); ``batch`` for a
    one-split plan, ``x`` / ``u`` the labeled and unlabeled batches for a paired plan.
    """

    index: int
    batch_idx: int
    batch: Batch | None = None
    x: Batch | None = None
    u: Batch | None = None

    @property
    def images(self) -> int:
        """This process's training images in the step."""
        if self.batch is not None:
            return len(self.batch)
        return len(self.x) + len(self.u)

    @property
    def rows(self) -> int:
        """Rows of the global batch (labeled + unlabeled for a pair)."""
        if self.batch is not None:
            return self.batch.size
        return self.x.size + self.u.size


@dataclass
class StepResult:
    """What a step may return besides a bare loss tensor: ``sums`` are per-step tensors added up over the epoch and
    divided by the epoch's global rows (e.g. MW-Net's meta loss × batch rows, the sum of its sample weights)."""

    loss: torch.Tensor
    sums: dict[str, torch.Tensor]


@dataclass
class OnePass:
    """One pass over ``data`` (or its rows ``subset``) in shuffled batches of ``batch_size``.

    A final batch smaller than ``min_size`` is skipped (batch norm cannot train on one sample), as is any partial
    batch with ``drop_last``. The epoch loss is the mean over rows.
    """

    data: object
    batch_size: int
    views: ViewSet
    subset: torch.Tensor | None = None
    drop_last: bool = False
    min_size: int = 2
    loss_mean: str = "rows"

    def __len__(self) -> int:
        size = None if self.subset is None else len(self.subset)
        return self.data.num_batches(self.batch_size, size, drop_last=self.drop_last, min_size=self.min_size)

    def steps(self, generator: torch.Generator) -> Iterator[Step]:
        batches = self.data.batches(self.batch_size, self.views, generator, subset=self.subset,
                                    drop_last=self.drop_last, min_size=self.min_size)
        for i, batch in enumerate(batches):
            yield Step(i, i, batch=batch)


@dataclass
class LabeledPass:
    """One pass over the ``labeled`` rows; each labeled batch is paired with the next batch of an iterator over the
    ``unlabeled`` rows that restarts (a new shuffle) when exhausted. The epoch loss is the mean over steps.

    With ``drop_last`` an unlabeled set smaller than one batch would yield nothing: it is then taken whole (one
    batch of all its rows).
    """

    data: object
    batch_size: int
    views: ViewSet
    labeled: torch.Tensor
    unlabeled: torch.Tensor
    drop_last: bool = False
    loss_mean: str = "steps"

    def __len__(self) -> int:
        return self.data.num_batches(self.batch_size, len(self.labeled), drop_last=self.drop_last)

    def _unlabeled(self, generator):
        return self.data.batches(self.batch_size, self.views, generator, subset=self.unlabeled,
                                 drop_last=self.drop_last)

    def steps(self, generator: torch.Generator) -> Iterator[Step]:
        u_iter: Iterator[Batch] = iter(())
        x_batches = self.data.batches(self.batch_size, self.views, generator, subset=self.labeled,
                                      drop_last=self.drop_last)
        for i, xb in enumerate(x_batches):
            ub = next(u_iter, None)
            if ub is None:  # the unlabeled iterator restarts when exhausted
                u_iter = self._unlabeled(generator)
                ub = next(u_iter, None)
                if ub is None:  # unlabeled set smaller than one batch with drop_last: take it whole
                    u_iter = self.data.batches(self.batch_size, self.views, generator, subset=self.unlabeled)
                    ub = next(u_iter)
            yield Step(i, i, x=xb, u=ub)


@dataclass
class Oversampled:
    """BPT-PLR's oversampled epoch: ``max_iters`` trained steps (default ``⌊(|L| + |U|)/B⌋ + 1``).

    The labeled loader is re-iterated pass after pass (a new shuffle each, ``batch_idx`` restarting at 0); the
    unlabeled loader cycles independently, one batch drawn per iteration; an iteration where either batch has ≤ 1
    row is drawn, skipped and not counted; the epoch ends as soon as ``max_iters`` steps trained, mid-pass. When no
    step can ever train (no labeled or no unlabeled batch of ≥ 2 rows) the plan is empty, where the reference would
    loop for ever. Loaders yield batches of any size ≥ 1 here (``min_size=1``), as the reference's DataLoaders do.
    """

    data: object
    batch_size: int
    views: ViewSet
    labeled: torch.Tensor
    unlabeled: torch.Tensor
    drop_last_labeled: bool = True
    drop_last_unlabeled: bool = True
    max_iters: int | None = None
    loss_mean: str = "steps"

    @property
    def iterations(self) -> int:
        if self.max_iters is not None:
            return self.max_iters
        return (len(self.labeled) + len(self.unlabeled)) // self.batch_size + 1

    def _trainable(self) -> bool:
        # a batch of >= 2 rows exists in each loader's pass (the loader's own arithmetic, with min_size 2)
        n = self.data.num_batches
        return (self.iterations >= 1
                and n(self.batch_size, len(self.labeled), drop_last=self.drop_last_labeled, min_size=2) > 0
                and n(self.batch_size, len(self.unlabeled), drop_last=self.drop_last_unlabeled, min_size=2) > 0)

    def __len__(self) -> int:
        return self.iterations if self._trainable() else 0

    def steps(self, generator: torch.Generator, trace: list | None = None) -> Iterator[Step]:
        """The trained steps; ``trace`` (a list) also receives a :class:`PlannedStep` for every iteration, skipped
        ones included."""
        if not self._trainable():
            return
        bs, views = self.batch_size, self.views
        u_iter: Iterator[Batch] = iter(())
        done, labeled_pass = 0, 0
        while True:
            x_batches = self.data.batches(bs, views, generator, subset=self.labeled,
                                          drop_last=self.drop_last_labeled, min_size=1)
            for batch_idx, xb in enumerate(x_batches):
                ub = next(u_iter, None)
                if ub is None:  # the unlabeled loader cycles
                    u_iter = self.data.batches(bs, views, generator, subset=self.unlabeled,
                                               drop_last=self.drop_last_unlabeled, min_size=1)
                    ub = next(u_iter)
                if trace is not None:
                    trace.append(PlannedStep(labeled_pass, batch_idx, xb.size, ub.size))
                if xb.size <= 1 or ub.size <= 1:  # batch norm cannot train on one row: skipped, not counted
                    continue
                yield Step(done, batch_idx, x=xb, u=ub)
                done += 1
                if done == self.iterations:
                    return
            labeled_pass += 1


@dataclass(frozen=True)
class PlannedStep:
    """One iteration of an :class:`Oversampled` epoch, as :func:`oversample_plan` lists it.

    ``labeled_pass``: 0-based pass over the labeled loader; ``batch_idx``: position inside that pass;
    ``labeled_size`` / ``unlabeled_size``: the sizes of the two batches drawn at this iteration.
    """

    labeled_pass: int
    batch_idx: int
    labeled_size: int
    unlabeled_size: int

    @property
    def skipped(self) -> bool:
        """A batch of size ≤ 1 (batch norm cannot train on it): drawn, then skipped, and not counted."""
        return self.labeled_size <= 1 or self.unlabeled_size <= 1


@dataclass(frozen=True)
class _Sized:
    """A batch stand-in of ``size`` rows (dry runs of a plan)."""

    size: int

    def __len__(self) -> int:
        return self.size


class _SizesOnly:
    """A split stand-in for dry runs: batches of the sizes a real split's loader yields (the same
    :func:`~noisyclr.data.loader.batch_bounds`), no images, no shuffling."""

    def batches(self, batch_size, views, generator, *, subset, drop_last=False, min_size=2):
        for start, stop in batch_bounds(len(subset), batch_size, min_size, drop_last):
            yield _Sized(stop - start)

    def num_batches(self, batch_size, size, drop_last=False, min_size=2) -> int:
        return len(batch_bounds(size, batch_size, min_size, drop_last))


def oversample_plan(n_labeled: int, n_unlabeled: int, batch_size: int, *, drop_last_labeled: bool = True,
                    drop_last_unlabeled: bool = True, max_iters: int | None = None) -> list[PlannedStep]:
    """Every iteration (skipped ones included) of an :class:`Oversampled` epoch over ``n_labeled`` labeled and
    ``n_unlabeled`` unlabeled rows: a dry run of the plan itself, so the listing and the training cannot differ.

    ``[]`` when no step can ever train. Otherwise the plan ends: the first iteration of pass p pairs labeled batch
    0 with unlabeled batch (p·len(labeled batches)) mod len(unlabeled batches), which is 0 (a full batch) at least
    every len(unlabeled batches) passes.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plan = Oversampled(_SizesOnly(), batch_size, ViewSet((), ()), range(n_labeled), range(n_unlabeled),
                       drop_last_labeled=drop_last_labeled, drop_last_unlabeled=drop_last_unlabeled,
                       max_iters=max_iters)
    trace: list[PlannedStep] = []
    for _ in plan.steps(None, trace):
        pass
    return trace


Plan = OnePass | LabeledPass | Oversampled


def run_epoch(ctx, plan: Plan, step: Callable[[Step], torch.Tensor | StepResult], optimizer: torch.optim.Optimizer,
              *, epoch: int, desc: str, lr_per_step: bool = False) -> dict:
    """Train one plan: for each :class:`Step`, ``loss = step(s)`` (or a :class:`StepResult`), then the optimiser
    step through ``ctx.step``.

    ``lr_per_step``: set the scheduled learning rate before every step (``ctx.schedule(optimizer, epoch, i, n)``);
    otherwise the method set it for the epoch. Returns ``loss`` (the mean over global rows for a :class:`OnePass`,
    over steps for the paired plans; 0.0 for an empty plan), ``images`` (this process's), ``steps``, ``lr`` (the
    last one used) and each ``sums`` key divided by the global rows.
    """
    total = torch.zeros((), device=ctx.device)
    sums: dict[str, torch.Tensor] = {}
    rows = images = steps = 0
    n = len(plan)
    lr = optimizer.param_groups[0]["lr"]
    by_rows = plan.loss_mean == "rows"
    for s in ctx.progress(plan.steps(ctx.generator), n, desc):
        if lr_per_step:
            lr = ctx.schedule(optimizer, epoch, s.index, n)
        out = step(s)
        loss, extra = (out.loss, out.sums) if isinstance(out, StepResult) else (out, None)
        ctx.step(loss, optimizer)
        size = s.rows
        # accumulated on the device: no host sync per step
        total += loss.detach() * size if by_rows else loss.detach()
        for key, value in (extra or {}).items():
            sums[key] = sums[key] + value if key in sums else value
        rows += size
        images += s.images
        steps += 1
    result = {"loss": float(total) / max(rows if by_rows else steps, 1), "images": images, "steps": steps, "lr": lr}
    for key, value in sums.items():
        result[key] = float(value) / max(rows, 1)
    return result
