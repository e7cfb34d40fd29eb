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


def assert_same_resumed_run(full, part, extra_keys=()) -> None:
    """A run stopped and resumed (``part``) equals the uninterrupted one (``full``): every metric but the timings,
    every network tensor, the method state ``extra_keys`` of the checkpoint, and labels.csv."""
    import torch

    from noisyclr.engine import CHECKPOINT
    from noisyclr.tracking import read_metrics

    drop = ("epoch_time_s", "train_time_s")

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in drop} for r in rows]

    assert strip(read_metrics(part)) == strip(read_metrics(full))
    a = torch.load(full / CHECKPOINT, weights_only=True)["method"]
    b = torch.load(part / CHECKPOINT, weights_only=True)["method"]
    for net_a, net_b in zip(a["nets"], b["nets"]):
        for key in net_a:
            assert torch.equal(net_a[key], net_b[key]), key
    for key in extra_keys:  # a tensor, or a list of them (one per network), or absent from both
        va, vb = a["extra"].get(key), b["extra"].get(key)
        assert (va is None) == (vb is None), key
        if va is None:
            continue
        for ta, tb in zip(*((va, vb) if isinstance(va, list) else ([va], [vb]))):
            assert torch.equal(ta, tb), key
    assert (full / "labels.csv").read_text() == (part / "labels.csv").read_text()
