"""``synthetic``: generated class-structured images for tests and smoke runs.

Each class has a fixed random smooth template (a coarse random grid upsampled bilinearly); a sample is its class
template plus a per-sample brightness shift and pixel noise. Classes are far apart relative to the noise, so a
small CNN learns them in a few epochs. Everything is determined by ``seed``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .folder import channel_mean_std
from .table import DatasetSplits, ImageTable

_CONTRAST = 80.0  # template amplitude in grey levels around 128
_NOISE = 24.0  # per-pixel noise std
_BRIGHTNESS = 10.0  # per-sample brightness shift std


def _upsample_matrix(coarse: int, size: int) -> np.ndarray:
    """``(size, coarse)`` linear-interpolation weights mapping a coarse 1-D grid onto ``size`` pixel centres."""
    pos = np.linspace(0.0, coarse - 1.0, size)
    lo = np.clip(np.floor(pos).astype(int), 0, coarse - 2)
    frac = pos - lo
    weights = np.zeros((size, coarse))
    weights[np.arange(size), lo] = 1.0 - frac
    weights[np.arange(size), lo + 1] = frac
    return weights


def _templates(rng: np.random.Generator, num_classes: int, size: int, channels: int) -> np.ndarray:
    """``(C, size, size, channels)`` smooth patterns in [-1, 1]."""
    coarse = max(2, -(-size // 3))
    grid = rng.uniform(-1.0, 1.0, size=(num_classes, channels, coarse, coarse))
    up = _upsample_matrix(coarse, size)
    smooth = np.einsum("hi,kcij,wj->khwc", up, grid, up)
    return smooth / np.maximum(np.abs(smooth).max(axis=(1, 2, 3), keepdims=True), 1e-8)


def _samples(rng: np.random.Generator, templates: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    num_classes = len(templates)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    shift = rng.normal(0.0, _BRIGHTNESS, size=(n, 1, 1, 1))
    noise = rng.normal(0.0, _NOISE, size=(n,) + templates.shape[1:])
    pixels = 128.0 + _CONTRAST * templates[labels] + shift + noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"dataset.options.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def load_synthetic(*, num_classes: int = 4, image_size: int = 8, channels: int = 3, train_size: int = 256,
                   test_size: int = 128, seed: int = 0) -> DatasetSplits:
    """Train ``(train_size, image_size, image_size, channels)`` and test ``(test_size, ...)`` uint8 images.

    Classes are balanced (counts differ by at most one), named ``"class0"``..; mean/std from the train images.
    """
    num_classes = _positive_int("num_classes", num_classes, 2)
    image_size = _positive_int("image_size", image_size, 2)
    channels = _positive_int("channels", channels)
    if channels not in (1, 3):
        raise UserError(f"dataset.options.channels must be 1 or 3, got {channels}")
    train_size = _positive_int("train_size", train_size, num_classes)
    test_size = _positive_int("test_size", test_size)
    seed = _positive_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    templates = _templates(rng, num_classes, image_size, channels)
    train_x, train_y = _samples(rng, templates, train_size)
    test_x, test_y = _samples(rng, templates, test_size)
    names = [f"class{k}" for k in range(num_classes)]
    mean, std = channel_mean_std(train_x)
    return DatasetSplits(
        "synthetic",
        ImageTable(train_x, train_y, train_y.copy(), names),
        ImageTable(test_x, test_y, test_y.copy(), list(names)),
        mean,
        std,
        info={"seed": seed},
    )
