"""torchrun data parallelism on the CPU (gloo): shards, collectives with gradients, synced BN, and whole runs that
must match a single-process run on the same global batch."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn

from noisyclr.data.loader import Batch, DeviceData, Shard
from noisyclr.data.table import ImageTable
from noisyclr.distributed import Distributed, GlobalBatchNorm, convert_sync_batchnorm
from tiny_runs import tiny_run

TINY = tiny_run() + ["train.sync_bn=true", "log.progress=off"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------- shards


def test_shard_splits_rows_contiguously_and_completely():
    for n in (0, 1, 5, 16, 17):
        for world in (1, 2, 3):
            bounds = [Shard(r, world).bounds(n) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert [hi - lo for lo, hi in bounds] == Shard(0, world).sizes(n)
            assert max(Shard(0, world).sizes(n)) - min(Shard(0, world).sizes(n)) <= 1


def test_a_rank_sees_its_rows_of_the_same_global_batch():
    import numpy as np

    rng = np.random.default_rng(0)
    table = ImageTable(rng.integers(0, 255, (20, 4, 4, 3), dtype=np.uint8), rng.integers(0, 3, 20), None, list("abc"))
    noisy = lambda x, g: x.float() + torch.rand(x.shape, generator=g)  # noqa: E731 (a view that uses the generator)
    batches = {}
    for rank in (None, 0, 1):
        data = DeviceData(table, "cpu")
        data.shard = None if rank is None else Shard(rank, 2)
        g = torch.Generator().manual_seed(3)
        batches[rank] = list(data.batches(7, [noisy], g))
    for whole, b0, b1 in zip(batches[None], batches[0], batches[1]):
        assert torch.equal(torch.cat([b0.indices, b1.indices]), whole.indices)
        assert torch.equal(torch.cat([b0.views[0], b1.views[0]]), whole.views[0])
        assert b0.size == b1.size == len(whole) and torch.equal(b0.all_views[0], whole.views[0])
    assert isinstance(batches[None][0], Batch) and batches[None][0].size == 7


def test_one_process_collectives_are_the_plain_operations():
    d = Distributed.single()
    x = torch.randn(5, 3)
    assert torch.equal(d.batch_mean(x, 99), x.mean())
    assert d.gather_rows(x) is x and d.gather_with_grad(x) is x and d.local_blocks(x, [2, 3]) is x
    assert torch.equal(d.logsumexp_over_ranks(x), x) and d.sum_scalar(3.0) == 3.0


def test_a_rank_share_of_a_batch_mean_scales_for_gradient_averaging():
    values = torch.arange(8.0).view(2, 4)  # this rank's 2 rows of C = 4 elements, global batch of 5 rows
    assert torch.equal(Distributed(1, 2).batch_mean(values, 5), values.sum() * 2 / (5 * 4))
    # a rank can hold no row of a small final batch (3+ ranks): its share is zero, not an error
    assert float(Distributed(2, 3).batch_mean(torch.zeros(0, 4), 2)) == 0.0
    assert float(Distributed(2, 3).batch_mean(torch.zeros(0), 2)) == 0.0


def test_global_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2),
                        nn.BatchNorm1d(2))
    synced = convert_sync_batchnorm(__import__("copy").deepcopy(net), torch.device("cpu"))
    assert isinstance(synced[1], GlobalBatchNorm) and isinstance(synced[5], GlobalBatchNorm)
    assert synced.state_dict().keys() == net.state_dict().keys()
    x = torch.randn(6, 3, 8, 8)
    assert torch.equal(synced(x), net(x))
    assert torch.equal(synced[1].running_mean, net[1].running_mean)


# ---------------------------------------------------------------------------------------------------- 2 processes


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """Each rank: its share of a batch through synced BN, with the global-mean loss, a contrastive term over the
    gathered rows and the logsumexp combination; writes its rank-averaged parameter gradients."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    d = Distributed(rank, world)
    torch.manual_seed(0)
    net = convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                                               nn.Linear(4 * 36, 3)), torch.device("cpu"))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    x, y = torch.randn(9, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(9) % 3
    lo, hi = d.shard.bounds(9)  # 5 and 4 rows: the padded gather
    logits = net(x[lo:hi])
    ce = nn.functional.cross_entropy(logits, y[lo:hi], reduction="none")
    z = nn.functional.normalize(logits, dim=1)
    keys = d.gather_with_grad(z, d.shard.sizes(9))  # a loss over gathered rows: the same on every rank
    contrast = (keys @ keys.T).logsumexp(1).mean()
    lse = d.logsumexp_over_ranks(torch.logsumexp(logits.log_softmax(1), 0))
    loss = d.batch_mean(ce, 9) + contrast + lse.sum() * 0.1
    loss.backward()
    d.average_gradients(opt)
    torch.save({n: p.grad for n, p in net.named_parameters()} | {"running": net[1].running_var}, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_ranks_give_the_single_process_gradients(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))
    x, y = torch.randn(9, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(9) % 3
    logits = net(x)
    z = nn.functional.normalize(logits, dim=1)
    loss = (nn.functional.cross_entropy(logits, y) + (z @ z.T).logsumexp(1).mean()
            + torch.logsumexp(logits.log_softmax(1), 0).sum() * 0.1)
    loss.backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"{rank}.pt")
        assert torch.allclose(got.pop("running"), net[1].running_var, atol=1e-6)
        for name, p in net.named_parameters():
            assert torch.allclose(got[name], p.grad, atol=1e-5, rtol=1e-4), (rank, name)


# ---------------------------------------------------------------------------------------------------- torchrun


def _noisyclr(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if nproc == 1:
        cmd = [sys.executable, "-m", "noisyclr", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={free_port()}", "-m", "noisyclr", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _clean_probs(out: Path) -> list[float]:
    with open(out / "labels.csv") as handle:
        return [float(r["clean_prob"]) for r in csv.DictReader(handle)]


def _assert_same_run(a: Path, b: Path) -> None:
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == len(rb)  # rank 0 alone logs: no duplicated rows
    for x, y in zip(ra, rb):
        for key in ("test_acc", "test_acc_net1", "test_acc_net2", "labeled_size", "label_precision", "label_recall"):
            assert x.get(key) == y.get(key), (x["epoch"], key, x.get(key), y.get(key))
        for key in ("train_loss", "clean_auc"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["epoch"], key)
    pa, pb = _clean_probs(a), _clean_probs(b)
    assert max(abs(p - q) for p, q in zip(pa, pb)) < 1e-4  # the same division on every sample


def test_torchrun_dividemix_matches_one_process_and_resumes(tmp_path):
    # a constant learning rate: the resumed run is then the same schedule as the uninterrupted one
    args = ["train", "dividemix-digits-sym50", *TINY, "method.warmup_epochs=1", "train.schedule=constant"]
    one = _noisyclr(args[:2] + ["--out", str(tmp_path / "one")] + args[2:] + ["train.epochs=3"], 1)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _noisyclr(args[:2] + ["--out", str(tmp_path / "two")] + args[2:] + ["train.epochs=2"], 2)
    assert two.returncode == 0, two.stderr[-2000:]
    assert len(two.stdout.strip().splitlines()) == 1  # rank 0 alone reports
    resumed = _noisyclr(["train", "--resume", str(tmp_path / "two"), "train.epochs=3"], 2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same_run(tmp_path / "one", tmp_path / "two")
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 3


def test_three_ranks_with_a_rank_left_without_rows(tmp_path):
    # 130 rows: the last warm-up batch (2B = 32) has 2 rows, so one of 3 ranks gets none of it
    args = [*tiny_run(train_size=130), "train.sync_bn=true", "log.progress=off", "method.warmup_epochs=1",
            "train.epochs=2"]
    for nproc in (1, 3):
        res = _noisyclr(["train", "dividemix-digits-sym50", "--out", str(tmp_path / f"p{nproc}"), *args], nproc)
        assert res.returncode == 0, res.stderr[-3000:]
    _assert_same_run(tmp_path / "p1", tmp_path / "p3")


@pytest.mark.parametrize(
    "verb,preset,extra",
    [
        # FlatNCE warm-up (gathered negatives), 2-D GMM, PLR over the gathered batch, prototypes, adaptive selection
        ("train", "plremix-digits-sym50", ["method.proj_dim=16", "method.warmup_contrastive=flatnce"]),
        # balanced partition, oversampled epoch, joint forward
        ("train", "bpt_plr-digits-sym50", ["method.proj_dim=16", "method.lambda_u=5"]),
        ("pretrain", "simclr-digits", ["method.proj_dim=16", "method.knn_k=10", "train.batch_size=32"]),
        # TCL: gathered NT-Xent, mixup over the global 3B rows, gathered targets, all-reduced marginal entropy,
        # the noise model from the gathered eval pass; epoch 1 warm-up, epoch 2 cross-supervised targets (gathered
        # t0). Dropout off: each rank draws the masks of its own rows. s1 = s2 = 0: TCL's GMM (scikit-learn's
        # reg_covar 1e-6 on a tight clean cluster) turns the 1e-7 float differences of a sharded eval pass into
        # 1e-4 in w, which one more epoch grows to 1e-2 (docs/methods/tcl.md, "Deviations"); w is a per-sample
        # lookup, the same code in one process or many
        ("train", "tcl-digits-sym50", ["method.feat_dim=16", "method.knn_k=10", "method.warmup_epochs=2",
                                       "train.lr_warmup_epochs=1", "method.dropout=0", "method.scale1=0",
                                       "method.scale2=0"]),
    ],
)
def test_torchrun_contrastive_methods_match_one_process(tmp_path, verb, preset, extra):
    args = [*TINY, "method.warmup_epochs=1", "train.epochs=2", *extra]
    if verb == "pretrain":
        args = [a for a in args if not a.startswith(("noise.", "method.warmup_epochs"))]
    runs = {}
    for nproc in (1, 2):
        out = tmp_path / f"p{nproc}"
        res = _noisyclr([verb, preset, "--out", str(out), *args], nproc)
        assert res.returncode == 0, res.stderr[-3000:]
        runs[nproc] = out
    if verb == "pretrain":
        a, b = _rows(runs[1]), _rows(runs[2])
        assert [r["train_loss"] for r in b] == pytest.approx([r["train_loss"] for r in a], rel=1e-4)
        assert [r["test_acc"] for r in b] == [r["test_acc"] for r in a]  # k-NN accuracy on the gathered features
        assert (runs[2] / "encoder.pt").is_file() and (runs[2] / "model_card.json").is_file()
    else:
        _assert_same_run(runs[1], runs[2])


def test_torchrun_refuses_a_method_not_made_global_yet(tmp_path):
    res = _noisyclr(["train", "mwnet-simclr-digits-sym50", "--out", str(tmp_path / "p"), "model.init=null",
                     "train.device=cpu", "train.epochs=1"], 2)
    assert res.returncode != 0
    assert "does not run under torchrun yet" in res.stderr
