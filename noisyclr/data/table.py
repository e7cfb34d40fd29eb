"""The in-memory table every data source returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageTable:
    """Images and labels of one split.

    Attributes:
        images: ``(N, H, W, C)`` uint8 array (C = 1 or 3).
        labels: ``(N,)`` int64, the labels training sees (after noise injection these are the noisy ones).
        true_labels: ``(N,)`` int64 clean labels when known, else ``None``.
        class_names: ``C`` names; label ``k`` means ``class_names[k]``.
        paths: for file-based sources, the path of each image relative to the dataset root (dataset order),
            used to match CSV noise files; ``None`` otherwise.
    """

    images: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray | None
    class_names: list[str]
    paths: list[str] | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.true_labels is not None:
            self.true_labels = np.asarray(self.true_labels, dtype=np.int64)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C) uint8, got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: np.ndarray) -> "ImageTable":
        """Rows ``index`` of this table, in that order."""
        index = np.asarray(index)
        return ImageTable(
            images=self.images[index],
            labels=self.labels[index],
            true_labels=None if self.true_labels is None else self.true_labels[index],
            class_names=list(self.class_names),
            paths=None if self.paths is None else [self.paths[i] for i in index],
        )


@dataclass
class DatasetSplits:
    """A data source's output: the train and test tables plus the per-channel normalisation.

    ``mean`` and ``std`` are in [0, 1] pixel units (as torchvision's Normalize after ToTensor).
    """

    name: str
    train: ImageTable
    test: ImageTable
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict = field(default_factory=dict)
