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

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .table import ImageTable

View = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class Batch:
    views: tuple[torch.Tensor, ...]
    labels: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return len(self.indices)


class DeviceData:
    """One split held on ``device``: images ``(N, C, H, W)`` uint8, labels and (when known) true labels."""

    def __init__(self, table: ImageTable, device: torch.device | str):
        self.device = torch.device(device)
        images = torch.from_numpy(np.ascontiguousarray(table.images)).permute(0, 3, 1, 2)
        self.images = images.contiguous().to(self.device)
        self.labels = torch.as_tensor(table.labels, dtype=torch.long, device=self.device)
        self.true_labels = (
            None if table.true_labels is None else torch.as_tensor(table.true_labels, dtype=torch.long, device=self.device)
        )
        self.num_classes = table.num_classes

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def is_clean(self) -> torch.Tensor | None:
        """Boolean mask of samples whose given label equals the true label (None when truth is unknown)."""
        return None if self.true_labels is None else self.labels == self.true_labels

    def batch(self, indices: torch.Tensor, views: Sequence[View], generator: torch.Generator | None) -> Batch:
        """Gather rows ``indices`` and apply each view to them (one call per view, batched on the device)."""
        raw = self.images.index_select(0, indices)
        return Batch(tuple(view(raw, generator) for view in views), self.labels.index_select(0, indices), indices)

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
        index = torch.arange(len(self), device=self.device) if subset is None else subset.to(self.device)
        if shuffle:
            index = index[torch.randperm(len(index), generator=generator, device=self.device)]
        for start in range(0, len(index), batch_size):
            chunk = index[start : start + batch_size]
            if len(chunk) < min_size or (drop_last and len(chunk) < batch_size):
                continue
            yield self.batch(chunk, views, generator)

    def num_batches(self, batch_size: int, size: int | None = None, drop_last: bool = False, min_size: int = 2) -> int:
        """How many batches :meth:`batches` yields for a subset of ``size`` rows."""
        size = len(self) if size is None else size
        full, rest = divmod(size, batch_size)
        return full + (1 if rest >= min_size and not drop_last else 0)
