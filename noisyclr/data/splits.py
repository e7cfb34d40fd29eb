"""The training-side object of one split, by how it is stored: the one place that knows both kinds.

:mod:`noisyclr.data.loader` (device-resident tables) and :mod:`noisyclr.data.stream` (files decoded per batch,
built on the loader's batch arithmetic) do not know about each other's callers; the engine asks here.
"""

from __future__ import annotations

import torch

from .loader import DeviceData
from .table import FileTable


def open_split(table, device: torch.device | str):
    """A device-resident :class:`~noisyclr.data.loader.DeviceData` for an in-memory
    :class:`~noisyclr.data.table.ImageTable`, a :class:`~noisyclr.data.stream.StreamingData` (files decoded per
    batch by DataLoader workers) for a :class:`~noisyclr.data.table.FileTable` listing."""
    if isinstance(table, FileTable):
        from .stream import StreamingData  # workers, Pillow: imported only for listed splits

        return StreamingData(table, device)
    return DeviceData(table, device)
