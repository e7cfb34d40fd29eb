"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).

The embedded default data set: it ships with scikit-learn, so it needs no download and no root. A fixed stratified
split gives 1,297 train and 500 test images.
"""

from __future__ import annotations

import numpy as np

from .folder import channel_mean_std
from .table import DatasetSplits, ImageTable

TEST_SIZE = 500
SPLIT_SEED = 0


def load_digits() -> DatasetSplits:
    """Digits as ``(N, 8, 8, 1)`` uint8 images (pixel values 0..16 scaled by ``round(v * 255 / 16)``).

    Train ``(1297, 8, 8, 1)`` and test ``(500, 8, 8, 1)`` from ``train_test_split(test_size=500, stratify=y,
    random_state=0)``, each kept in the original sample order; class names ``"0"``..``"9"``; mean/std from the
    train images.
    """
    from sklearn.datasets import load_digits as sk_load_digits  # imported lazily: sklearn import is slow
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    names = [str(k) for k in range(10)]
    train = ImageTable(images[train_idx], labels[train_idx], labels[train_idx].copy(), names)
    test = ImageTable(images[test_idx], labels[test_idx], labels[test_idx].copy(), list(names))
    mean, std = channel_mean_std(train.images)
    return DatasetSplits("digits", train, test, mean, std)
