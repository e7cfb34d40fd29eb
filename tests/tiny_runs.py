"""The tiny CPU run the method tests share: the synthetic source, symmetric noise, small batches, width-8 nets."""

from __future__ import annotations


def tiny_run(train_size: int = 128, test_size: int = 48, seed: int = 0, noise_rate: float = 0.5) -> list[str]:
    """Config overrides of a run on ``train_size`` + ``test_size`` synthetic 8×8 RGB images of 4 classes (data seed
    ``seed``) with ``noise_rate`` symmetric label noise, batch 16, eval batch 64, width-8 networks, on the CPU."""
    return [
        "dataset.name=synthetic",
        "dataset.options={num_classes: 4, image_size: 8, channels: 3, "
        f"train_size: {train_size}, test_size: {test_size}, seed: {seed}}}",
        "noise.kind=sym",
        f"noise.rate={noise_rate}",
        "train.batch_size=16",
        "train.device=cpu",
        "train.eval_batch_size=64",
        "model.width=8",
    ]
