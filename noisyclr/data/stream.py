"""Streamed data: a split that stays files on disk and is decoded batch by batch in DataLoader workers.

For datasets whose decoded uint8 table does not fit on the device (Clothing1M, WebVision scale).
:class:`StreamingData` has the interface of :class:`~noisyclr.data.loader.DeviceData` that methods use, with the
same semantics, so method code does not change:

* labels and true labels are device tensors, as before; only the images are not resident;
* the epoch permutation is drawn from the caller's generator exactly as ``DeviceData.batches`` draws it (lazily,
  at the first batch), and the views are applied by :func:`~noisyclr.data.loader.make_batch` in the training
  process, on the device, from the same generator. A streamed run therefore consumes the generator identically
  and sees the same batches and views as a resident one (bit-identical on the CPU), resumes exactly from a
  checkpoint, and is sharded under torchrun unchanged;
* only the decoding moves: the index chunks go to a ``torch.utils.data.DataLoader`` (one chunk per item) whose
  workers decode the files with Pillow to fixed-size uint8 (:func:`noisyclr.data.folder.decode_rows`, the
  decoder of the resident path); the training process moves each chunk to the device.

A DataLoader keeps its workers across epochs (``persistent_workers``) and takes a new list of chunks for every
pass. Methods iterate two passes at once (DivideMix's labeled and unlabeled loaders), so a split keeps a small pool
of DataLoaders and each pass borrows an idle one.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import UserError
from .folder import _pool_context, decode_images, decode_rows, default_workers, stats_from_histogram
from .loader import Batch, DeviceData, Shard, View, subset_rows, batch_bounds, make_batch
from .table import FileTable

#: files decoded to estimate the normalisation of a streamed split when the config gives none
STATS_SAMPLE = 2048


def sample_mean_std(table: FileTable, limit: int = STATS_SAMPLE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units of at most ``limit`` files of ``table``, evenly spaced in dataset
    order (deterministic, and spread over every class of a class-sorted listing). With ``len(table) <= limit`` these
    are exactly the statistics of the decoded table."""
    rows = np.unique(np.linspace(0, len(table) - 1, min(limit, len(table))).round().astype(np.int64))
    _, hist = decode_images(table.root, [table.paths[i] for i in rows], image_size=table.image_size,
                            workers=table.workers)
    return stats_from_histogram(hist)


class _Rows(Sampler):
    """The chunks (lists of row numbers) of the current pass; replaced before every pass, so that one DataLoader
    and its persistent workers serve every epoch."""

    def __init__(self):
        self.rows: list[list[int]] = []

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class _Files(Dataset):
    """Item = a list of row numbers → their images as one ``(n, C, H, W)`` uint8 tensor, or ``("error", message)``
    (see :func:`~noisyclr.data.folder.decode_rows`)."""

    def __init__(self, table: FileTable):
        self.root = table.root
        # One fixed-width bytes array rather than a list of str: reading it touches no reference counts, so the
        # pages forked workers share stay shared (a list of a million str ends up copied into every worker).
        self.paths = np.array([p.encode() for p in table.paths])
        self.image_size, self.shape = table.image_size, table.image_shape

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows: list[int]):
        arr = decode_rows(self.root, [self.paths[i].decode() for i in rows], self.image_size, self.shape)
        if isinstance(arr, tuple):
            return arr
        # NHWC -> NCHW here, in the worker, as DeviceData stores its table
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _as_is(item):
    return item


class StreamingData:
    """One split streamed from files: the :class:`~noisyclr.data.loader.DeviceData` interface, images decoded
    per batch by ``table.workers`` DataLoader workers (0: in this process)."""

    def __init__(self, table: FileTable, device: torch.device | str):
        self.device = torch.device(device)
        self.labels = torch.as_tensor(table.labels, dtype=torch.long, device=self.device)
        self.true_labels = (
            None if table.true_labels is None else torch.as_tensor(table.true_labels, dtype=torch.long, device=self.device)
        )
        self.is_ood = None  # OOD label noise replaces images in memory: refused for streamed runs (config)
        self.num_classes = table.num_classes
        self.shard: Shard | None = None  # set under torchrun: batches then hold this rank's rows only
        self.workers = default_workers() if table.workers is None else int(table.workers)
        self.prefetch = int(table.prefetch)
        self._files = _Files(table)
        self._idle: list[tuple[DataLoader, _Rows]] = []  # DataLoaders no pass is using
        # The finalizer holds the pool too, so the pool is never cyclic garbage with this object: when this object
        # goes, the finalizer empties the pool first and the DataLoaders stop their workers at once. (Collected in
        # one cycle, their queues may be closed before their workers are told to stop: a 5 s wait per worker.)
        self._release = weakref.finalize(self, self._idle.clear)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every decoded image."""
        h, w, c = self._files.shape
        return c, h, w

    # Same definitions as the resident split: they only use len(), labels, gather and shard.
    is_clean = DeviceData.is_clean
    batch = DeviceData.batch
    num_batches = DeviceData.num_batches
    epoch_order = DeviceData.epoch_order

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """The raw uint8 images ``(len(indices), C, H, W)`` of rows ``indices``, decoded now in this process and
        moved to the device."""
        return self._on_device(self._files[indices.tolist()])

    def subset(self, index: torch.Tensor) -> "StreamingData":
        """Rows ``index`` as a split of their own (row ``i`` of it is file ``index[i]`` here), same shard and
        worker settings: an epoch's sample of a million-file listing. Only the paths are copied; it starts its
        own DataLoaders (so the parent's persistent workers are not fed another split's rows)."""
        new = copy.copy(self)
        index = index.to(self.device)
        new._files = copy.copy(self._files)
        new._files.paths = self._files.paths[index.cpu().numpy()]
        subset_rows(new, self, index)
        new._idle = []
        new._release = weakref.finalize(new, new._idle.clear)
        return new

    def ordered_chunks(self, batch_size: int, rows: tuple[int, int] | None = None
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(indices, raw uint8 images)`` of rows ``[start, stop)`` (default: all) in dataset order, ``batch_size``
        rows at a time, decoded ahead by the workers (the evaluation pass)."""
        start, stop = (0, len(self)) if rows is None else rows
        index = torch.arange(start, stop)
        yield from self._decoded(self._chunks(index, batch_size, 1, False))

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
        """Iterate over ``subset`` (default: all rows) in batches of ``batch_size``, as ``DeviceData.batches``.

        ``shuffle`` draws the permutation from ``generator`` with the same call on the same device, at the first
        batch; the views are applied here in batch order. A final batch smaller than ``min_size`` is skipped, as is
        any partial batch when ``drop_last``.
        """
        index = self.epoch_order(generator, subset, shuffle)
        for chunk, raw in self._decoded(self._chunks(index, batch_size, min_size, drop_last)):
            yield make_batch(raw, self.labels.index_select(0, chunk), chunk, views, generator, self.shard)

    def close(self) -> None:
        """Stop the idle DataLoaders' workers (they also stop when this object is garbage-collected); a later pass
        starts new ones."""
        self._idle.clear()

    # ------------------------------------------------------------------------------------------------ internals
    def _chunks(self, index: torch.Tensor, batch_size: int, min_size: int, drop_last: bool
                ) -> list[tuple[torch.Tensor, list[int]]]:
        """``(device indices, row numbers)`` of every batch-sized chunk of ``index`` that is kept."""
        rows = index.cpu().tolist()  # one device sync per pass; the workers need plain row numbers
        return [(index[start:stop].to(self.device), rows[start:stop])
                for start, stop in batch_bounds(len(rows), batch_size, min_size, drop_last)]

    def _decoded(self, chunks: list[tuple[torch.Tensor, list[int]]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(indices, raw images on the device)`` of every chunk, in order, through an idle pooled DataLoader."""
        if not chunks:
            return
        entry = self._idle.pop() if self._idle else self._new_loader()
        loader, sampler = entry
        sampler.rows = [rows for _, rows in chunks]
        decoded = None
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about fork in a process with threads; the workers only use PIL and NumPy.
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = iter(loader)  # persistent workers: resets them to this pass, dropping stale prefetches
            for (index, _), out in zip(chunks, decoded):
                yield index, self._on_device(out)
        except GeneratorExit:  # the pass was abandoned part-way: the next pass resets the workers
            self._idle.append(entry)
            raise
        except BaseException:
            # A failed pass (a bad file, a dead worker): drop this DataLoader. The traceback keeps this frame's
            # locals, so they are cleared here: the last reference goes now and the workers stop at once; left to
            # the cycle collector, the queues may be closed first and the shutdown waits out the workers' timeouts.
            entry = loader = sampler = decoded = None
            raise
        else:
            self._idle.append(entry)

    def _new_loader(self) -> tuple[DataLoader, _Rows]:
        sampler = _Rows()
        parallel = {}
        if self.workers > 0:
            parallel = dict(persistent_workers=True, prefetch_factor=self.prefetch,
                            multiprocessing_context=_pool_context())
        loader = DataLoader(
            self._files, sampler=sampler, batch_size=None, collate_fn=_as_is, num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            # its own generator: a DataLoader draws a seed for its workers at every pass, which must not come from
            # torch's global RNG (that would make a streamed run's random stream differ from a resident one's)
            generator=torch.Generator(),
            **parallel,
        )
        return loader, sampler

    def _on_device(self, out) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):  # ("error", message) from decode_rows
            raise UserError(out[1])
        return out.to(self.device, non_blocking=True)
