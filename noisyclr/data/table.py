"""The tables a data source returns: decoded images in memory (:class:`ImageTable`), or for a streamed run the
file list only (:class:`FileTable`, decoded batch by batch by :mod:`noisyclr.data.stream`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


class _LabelledRows:
    """What both tables share: int64 labels (and true labels), a length and a class count."""

    # which rows hold an out-of-distribution image (noise.ood_rate); None: no OOD noise. A streamed FileTable never
    # has any (OOD images replace decoded ones in memory), an ImageTable has it as a field.
    is_ood: np.ndarray | None = None

    def _normalise_labels(self, rows: int, what: str) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.true_labels is not None:
            self.true_labels = np.asarray(self.true_labels, dtype=np.int64)
        if len(self.labels) != rows:
            raise ValueError(f"{rows} {what} but {len(self.labels)} labels")
        if self.is_ood is not None:
            self.is_ood = np.asarray(self.is_ood, dtype=bool)
            if len(self.is_ood) != rows:
                raise ValueError(f"{rows} {what} but {len(self.is_ood)} is_ood flags")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class ImageTable(_LabelledRows):
    """Images and labels of one split.

    Attributes:
        images: ``(N, H, W, C)`` uint8 array (C = 1 or 3).
        labels: ``(N,)`` int64, the labels training sees (after noise injection these are the noisy ones).
        true_labels: ``(N,)`` int64 clean labels when known, else ``None``.
        class_names: ``C`` names; label ``k`` means ``class_names[k]``.
        paths: for file-based sources, the path of each image relative to the dataset root (dataset order),
            used to match CSV noise files; ``None`` otherwise.
        is_ood: ``(N,)`` bool, True where OOD label noise put an image of no class in the row (its label is the
            row's, its true label -1; docs/data.md, "Out-of-distribution label noise"); ``None``: no OOD noise.
    """

    images: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray | None
    class_names: list[str]
    paths: list[str] | None = None
    is_ood: np.ndarray | None = None

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C) uint8, got {self.images.dtype} {self.images.shape}")
        self._normalise_labels(len(self.images), "images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(self.images.shape[1:])

    def subset(self, index: np.ndarray) -> "ImageTable":
        """Rows ``index`` of this table, in that order."""
        index = np.asarray(index)
        return ImageTable(
            images=self.images[index],
            labels=self.labels[index],
            true_labels=None if self.true_labels is None else self.true_labels[index],
            class_names=list(self.class_names),
            paths=None if self.paths is None else [self.paths[i] for i in index],
            is_ood=None if self.is_ood is None else self.is_ood[index],
        )


@dataclass
class FileTable(_LabelledRows):
    """The files and labels of one split, not decoded: what a streamed run holds (see :mod:`.stream`).

    Attributes:
        root: folder the ``paths`` are relative to.
        paths: ``N`` relative image paths (dataset order); the same ``paths`` an :class:`ImageTable` of the source
            carries, so noise files and ``train_labels.csv`` are identical in both modes.
        labels, true_labels, class_names: as in :class:`ImageTable`.
        image_shape: ``(H, W, C)`` every file is decoded to.
        image_size: side every image is resized to (``dataset.options.image_size``); ``None``: no resizing, and
            an image whose size differs from ``image_shape`` is an error.
        workers: DataLoader worker processes that decode (``None``: one per core, at most 8; 0: the training
            process decodes); prefetch: batches each worker decodes ahead.
    """

    root: str
    paths: list[str]
    labels: np.ndarray
    true_labels: np.ndarray | None
    class_names: list[str]
    image_shape: tuple[int, int, int]
    image_size: int | None = None
    workers: int | None = None
    prefetch: int = 2

    def __post_init__(self):
        self.image_shape = tuple(int(v) for v in self.image_shape)
        self._normalise_labels(len(self.paths), "files")

    @property
    def nbytes(self) -> int:
        """Bytes the split would take decoded to a uint8 table."""
        return len(self) * int(np.prod(self.image_shape))

    def subset(self, index: np.ndarray) -> "FileTable":
        """Rows ``index`` of this table, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            paths=[self.paths[i] for i in index],
            labels=self.labels[index],
            true_labels=None if self.true_labels is None else self.true_labels[index],
            class_names=list(self.class_names),
        )

    def with_labels(self, labels: np.ndarray) -> "FileTable":
        """The same files carrying ``labels`` (e.g. after noise injection)."""
        return replace(self, labels=np.asarray(labels, dtype=np.int64).copy(), paths=list(self.paths),
                       true_labels=None if self.true_labels is None else self.true_labels.copy())


@dataclass
class DatasetSplits:
    """A data source's output: the train and test tables plus the per-channel normalisation.

    ``val`` and ``extra_test`` are optional clean splits of sources that ship them (Clothing1M's clean val,
    mini-WebVision's ILSVRC12 val): evaluated every epoch, never trained on.

    ``mean`` and ``std`` are in [0, 1] pixel units (as torchvision's Normalize after ToTensor). A listing of files
    (:class:`FileTable` splits) may leave them ``None``: they are then estimated from a sample of the train files
    unless the config gives them.
    """

    name: str
    train: ImageTable | FileTable
    test: ImageTable | FileTable
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    info: dict = field(default_factory=dict)
    # a clean validation split the source ships (Clothing1M's clean_val): model selection, never trained on
    val: ImageTable | FileTable | None = None
    # further test sets reported every epoch beside ``test``, by name (mini-WebVision's ``imagenet_val``)
    extra_test: dict = field(default_factory=dict)
