"""Device-resident data: the uint8 table lives on the training device and a batch is an index gather.

Nothing is re-created per epoch: no DataLoader, no worker processes, no host round trip. A batch is
``Batch(views, labels, indices)`` where ``views`` holds one augmented float tensor per view the method asked for
(``("weak", "weak")`` gives two independently augmented weak views of the same images), ``labels`` are the labels
training sees and ``indices`` are the global dataset indices, so per-sample statistics are always scattered to the
right rows.

All randomness (the epoch permutation and every augmentation) is drawn from one ``torch.Generator`` on the data
device, owned by the caller and saved in checkpoints, which is what makes resumed runs bit-exact.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .table import ImageTable

View = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class ViewSet(tuple):
    """The view callables a method declared, in its order, with their names (``ctx.views({"weak": "weak"})``).

    A tuple of :data:`View` (so it is applied in declaration order, which fixes the draws from the generator) that
    also carries ``names``; a batch made with it answers ``batch["weak"]``.
    """

    names: tuple[str, ...]

    def __new__(cls, names: Sequence[str], views: Sequence[View]):
        names = tuple(names)
        if len(names) != len(views) or len(set(names)) != len(names):
            raise ValueError(f"view names must be unique, one per view, got {names}")
        obj = super().__new__(cls, views)
        obj.names = names
        return obj


@dataclass
class Batch:
    """A batch as one process sees it.

    In a single process ``views``, ``labels`` and ``indices`` cover the whole batch. Under torchrun every rank
    draws the same global batch (one seeded generator on every rank, so the permutation and every augmentation
    match a single-process run) and keeps its contiguous shard of the rows; ``global_views`` and ``global_size``
    then describe the whole batch, for the batch-coupled steps (MixMatch's permutation over all rows).
    """

    views: tuple[torch.Tensor, ...]
    labels: torch.Tensor
    indices: torch.Tensor
    global_views: tuple[torch.Tensor, ...] | None = None
    global_size: int | None = None
    global_indices: torch.Tensor | None = None
    names: tuple[str, ...] | None = None  # of the views, as the method declared them

    def __len__(self) -> int:
        return len(self.indices)

    def _position(self, name: str) -> int:
        if self.names is None or name not in self.names:
            raise KeyError(f"this batch has no view {name!r}; its views: {self.names}")
        return self.names.index(name)

    def __getitem__(self, name: str) -> torch.Tensor:
        """This process's rows of the view ``name``."""
        return self.views[self._position(name)]

    def all(self, name: str) -> torch.Tensor:
        """Every row of the global batch of the view ``name`` (``batch[name]`` in a single process)."""
        return self.all_views[self._position(name)]

    @property
    def size(self) -> int:
        """Rows of the whole (global) batch: ``len(self)`` in a single process."""
        return len(self.indices) if self.global_size is None else self.global_size

    @property
    def all_indices(self) -> torch.Tensor:
        """The dataset indices of every row of the global batch (``indices`` in a single process)."""
        return self.indices if self.global_indices is None else self.global_indices

    @property
    def all_views(self) -> tuple[torch.Tensor, ...]:
        """The views of every row of the global batch (``views`` in a single process)."""
        return self.views if self.global_views is None else self.global_views


class Shard:
    """This process's share of every batch: rank ``rank`` of ``world`` takes a contiguous block of rows, the
    block sizes differing by at most one (``torch.tensor_split``)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def bounds(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this rank's rows in a batch of ``n`` rows."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def sizes(self, n: int) -> list[int]:
        """Every rank's share of ``n`` rows."""
        base, extra = divmod(n, self.world)
        return [base + (1 if r < extra else 0) for r in range(self.world)]


class DeviceData:
    """One split held on ``device``: images ``(N, C, H, W)`` uint8, labels, (when known) true labels, and (with
    OOD label noise) which rows are out of distribution."""

    def __init__(self, table: ImageTable, device: torch.device | str):
        self.device = torch.device(device)
        images = torch.from_numpy(np.ascontiguousarray(table.images)).permute(0, 3, 1, 2)
        self.images = images.contiguous().to(self.device)
        self.labels = torch.as_tensor(table.labels, dtype=torch.long, device=self.device)
        self.true_labels = (
            None if table.true_labels is None else torch.as_tensor(table.true_labels, dtype=torch.long, device=self.device)
        )
        # bool (N,): rows whose image is out of distribution (noise.ood_rate), to score OOD detection; None: no OOD
        self.is_ood = None if table.is_ood is None else torch.as_tensor(table.is_ood, dtype=torch.bool,
                                                                         device=self.device)
        self.num_classes = table.num_classes
        self.shard: Shard | None = None  # set under torchrun: batches then hold this rank's rows only

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def is_clean(self) -> torch.Tensor | None:
        """Boolean mask of samples whose given label equals the true label (None when truth is unknown)."""
        return None if self.true_labels is None else self.labels == self.true_labels

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """The raw uint8 images ``(len(indices), C, H, W)`` of rows ``indices``, on the device."""
        return self.images.index_select(0, indices)

    def subset(self, index: torch.Tensor) -> "DeviceData":
        """Rows ``index`` as a split of their own (row ``i`` of it is row ``index[i]`` here), same shard: an
        epoch's sample (DivideMix's Clothing1M recipe). The images are copied (a resident split is small)."""
        new = copy.copy(self)
        index = index.to(self.device)
        new.images = self.images.index_select(0, index)
        subset_rows(new, self, index)
        return new

    def ordered_chunks(self, batch_size: int, rows: tuple[int, int] | None = None
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(indices, raw uint8 images)`` of rows ``[start, stop)`` (default: all) in dataset order,
        ``batch_size`` rows at a time (the evaluation pass; a torchrun rank passes its share)."""
        start, stop = (0, len(self)) if rows is None else rows
        for lo in range(start, stop, batch_size):
            idx = torch.arange(lo, min(lo + batch_size, stop), device=self.device)
            yield idx, self.gather(idx)

    def batch(self, indices: torch.Tensor, views: Sequence[View], generator: torch.Generator | None) -> Batch:
        """Gather rows ``indices`` and apply each view to them (one call per view, batched on the device).

        Under a :class:`Shard` the views are computed for the whole batch (cheap beside the networks, and it keeps
        every rank's generator in step with a single-process run) and this rank keeps its rows.
        """
        return make_batch(self.gather(indices), self.labels.index_select(0, indices), indices, views, generator,
                          self.shard)

    def batches(
        self,
        batch_size: int,
        views: Sequence[View],
        generator: torch.Generator | None,
        *,
        subset: torch.Tensor | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        min_size: int = 2,
    ) -> Iterator[Batch]:
        """Iterate over ``subset`` (default: all rows) in batches of ``batch_size``.

        ``shuffle`` draws a permutation from ``generator``. A final batch smaller than ``min_size`` is skipped
        (batch norm cannot train on one sample), as is any partial batch when ``drop_last``.
        """
        index = self.epoch_order(generator, subset, shuffle)
        for start, stop in batch_bounds(len(index), batch_size, min_size, drop_last):
            yield self.batch(index[start:stop], views, generator)

    def epoch_order(self, generator: torch.Generator | None, subset: torch.Tensor | None = None,
                    shuffle: bool = True) -> torch.Tensor:
        """The rows of one pass on the device: ``subset`` (default: all), permuted by ``generator`` when
        ``shuffle`` (one ``randperm`` call: a streamed split draws exactly the same)."""
        index = torch.arange(len(self), device=self.device) if subset is None else subset.to(self.device)
        if shuffle:
            index = index[torch.randperm(len(index), generator=generator, device=self.device)]
        return index

    def num_batches(self, batch_size: int, size: int | None = None, drop_last: bool = False, min_size: int = 2) -> int:
        """How many batches :meth:`batches` yields for a subset of ``size`` rows."""
        return len(batch_bounds(len(self) if size is None else size, batch_size, min_size, drop_last))


def subset_rows(new, old, index: torch.Tensor) -> None:
    """``new``'s per-row tensors: ``old``'s rows ``index``."""
    new.labels = old.labels.index_select(0, index)
    new.true_labels = None if old.true_labels is None else old.true_labels.index_select(0, index)
    new.is_ood = None if old.is_ood is None else old.is_ood.index_select(0, index)


def batch_bounds(n: int, batch_size: int, min_size: int, drop_last: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` of the batches a pass over ``n`` rows yields: consecutive ``batch_size`` slices, skipping a
    final one smaller than ``min_size`` (batch norm cannot train on one sample), or any partial one when
    ``drop_last``."""
    bounds = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if stop - start < min_size or (drop_last and stop - start < batch_size):
            continue
        bounds.append((start, stop))
    return bounds


def make_batch(raw: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, views: Sequence[View],
               generator: torch.Generator | None, shard: Shard | None) -> Batch:
    """Apply ``views`` to the raw rows of a (global) batch and keep ``shard``'s rows (all rows when None)."""
    full = tuple(view(raw, generator) for view in views)
    names = getattr(views, "names", None)
    if shard is None or shard.world == 1:
        return Batch(full, labels, indices, names=names)
    lo, hi = shard.bounds(len(indices))
    return Batch(tuple(v[lo:hi] for v in full), labels[lo:hi], indices[lo:hi], global_views=full,
                 global_size=len(indices), global_indices=indices, names=names)

