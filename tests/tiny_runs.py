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
        "log.report=false",  # tests/test_report.py turns it on; elsewhere ~1 s of matplotlib per run
    ]


def build_method(cfg):
    """The method of config ``cfg`` on the CPU, built as the engine builds it (seeded, data prepared)."""
    import torch

    from noisyclr.data.prepare import prepare_data
    from noisyclr.engine import build_context, seed_everything
    from noisyclr.methods import get_method

    seed_everything(cfg.train.seed)
    ctx = build_context(cfg, prepare_data(cfg), torch.device("cpu"))
    return get_method(cfg.method.name)(cfg, ctx)
