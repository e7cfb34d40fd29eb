"""The one training loop (noisyclr/loop.py): the step counts of its three plans on a tiny table, the unlabeled
iterator's restart, the oversampled plan against its own listing, and the torchrun shard arithmetic."""

import numpy as np
import pytest
import torch

from noisyclr.data.loader import DeviceData, Shard, ViewSet
from noisyclr.data.table import ImageTable
from noisyclr.loop import LabeledPass, OnePass, Oversampled, StepResult, oversample_plan, run_epoch


def table(n: int) -> DeviceData:
    images = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2)  # row i has pixel value i
    labels = np.arange(n) % 3
    return DeviceData(ImageTable(images=images, labels=labels, true_labels=None, class_names=["a", "b", "c"]), "cpu")


IDENTITY = ViewSet(["raw"], [lambda x, g: x.float()])


class FakeContext:
    """What run_epoch asks of a RunContext: device, generator, progress, schedule and the optimiser step."""

    def __init__(self):
        self.device = torch.device("cpu")
        self.generator = torch.Generator().manual_seed(0)
        self.stepped = 0
        self.lrs = []

    def progress(self, iterable, total, desc):
        self.total = total
        return iterable

    def schedule(self, opt, epoch, step, steps):
        lr = 0.1 * (step + 1) / steps
        self.lrs.append((step, steps))
        return lr

    def step(self, loss, opt):
        self.stepped += 1


OPT = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)


def collect(plan, ctx=None):
    ctx = ctx or FakeContext()
    seen = []

    def step(s):
        seen.append(s)
        return torch.tensor(float(s.rows))

    out = run_epoch(ctx, plan, step, OPT, epoch=0, desc="t", lr_per_step=True)
    return out, seen, ctx


def test_one_pass_step_counts_and_accounting():
    data = table(10)
    for kwargs, sizes in [({}, [4, 4, 2]), ({"drop_last": True}, [4, 4]), ({"subset": torch.arange(5)}, [4])]:
        plan = OnePass(data, 4, IDENTITY, **kwargs)
        out, seen, ctx = collect(plan)
        assert [len(s.batch) for s in seen] == sizes and len(plan) == len(sizes) == out["steps"] == ctx.stepped
        assert [s.index for s in seen] == list(range(len(sizes))) and ctx.total == len(sizes)
        assert ctx.lrs == [(i, len(sizes)) for i in range(len(sizes))]  # the schedule sees (step, steps)
        assert out["images"] == sum(sizes)
        # loss = rows per step, averaged over rows: Σ size² / Σ size
        assert out["loss"] == pytest.approx(sum(s * s for s in sizes) / sum(sizes))
    # a pass covers each row once, and batches answer their views by name
    _, seen, _ = collect(OnePass(data, 4, IDENTITY))
    assert sorted(torch.cat([s.batch.indices for s in seen]).tolist()) == list(range(10))
    assert torch.equal(seen[0].batch["raw"][:, 0, 0, 0], seen[0].batch.indices.float())
    with pytest.raises(KeyError, match="no view 'weak'"):
        seen[0].batch["weak"]


def test_labeled_pass_pairs_with_a_restarting_unlabeled_iterator():
    data = table(16)
    labeled, unlabeled = torch.arange(10), torch.arange(10, 16)
    plan = LabeledPass(data, 4, IDENTITY, labeled, unlabeled)
    out, seen, ctx = collect(plan)
    assert [(len(s.x), len(s.u)) for s in seen] == [(4, 4), (4, 2), (2, 4)]
    assert len(plan) == 3 == out["steps"] and out["images"] == 20
    assert [s.batch_idx for s in seen] == [0, 1, 2]
    # steps 0-1 are one pass over the unlabeled rows; step 2 starts a new (reshuffled) pass
    first_pass = torch.cat([seen[0].u.indices, seen[1].u.indices]).tolist()
    assert sorted(first_pass) == list(range(10, 16))
    assert set(seen[2].u.indices.tolist()) <= set(range(10, 16))
    assert sorted(torch.cat([s.x.indices for s in seen]).tolist()) == list(range(10))
    # the paired plans average the loss over steps: (8 + 6 + 6) / 3
    assert out["loss"] == pytest.approx(20 / 3)
    # drop_last with an unlabeled set smaller than one batch: it is taken whole
    _, seen, _ = collect(LabeledPass(data, 4, IDENTITY, labeled, torch.arange(10, 13), drop_last=True))
    assert [(len(s.x), len(s.u)) for s in seen] == [(4, 3), (4, 3)]


def test_the_same_draws_as_the_loop_it_replaced():
    """LabeledPass draws from the generator in the order DivideMix's hand-written loop did."""
    data = table(16)
    labeled, unlabeled = torch.arange(10), torch.arange(10, 16)
    g = torch.Generator().manual_seed(3)
    by_hand = []
    u_iter = iter(())
    for xb in data.batches(4, IDENTITY, g, subset=labeled):
        ub = next(u_iter, None)
        if ub is None:
            u_iter = data.batches(4, IDENTITY, g, subset=unlabeled)
            ub = next(u_iter)
        by_hand.append((xb.indices.tolist(), ub.indices.tolist()))
    steps = LabeledPass(data, 4, IDENTITY, labeled, unlabeled).steps(torch.Generator().manual_seed(3))
    assert [(s.x.indices.tolist(), s.u.indices.tolist()) for s in steps] == by_hand


@pytest.mark.parametrize("n_l, n_u, drop", [(65, 130, False), (128, 65, False), (100, 95, True), (20, 175, False)])
def test_oversampled_plan_trains_n_over_b_plus_one_steps_as_listed(n_l, n_u, drop):
    data = table(n_l + n_u)
    bs = 64
    plan = Oversampled(data, bs, IDENTITY, torch.arange(n_l), torch.arange(n_l, n_l + n_u),
                       drop_last_labeled=drop and n_l >= bs, drop_last_unlabeled=drop and n_u >= bs)
    listing = oversample_plan(n_l, n_u, bs, drop_last_labeled=drop and n_l >= bs,
                              drop_last_unlabeled=drop and n_u >= bs)
    out, seen, _ = collect(plan)
    trained = [p for p in listing if not p.skipped]
    assert out["steps"] == len(plan) == len(trained) == (n_l + n_u) // bs + 1
    assert [(len(s.x), len(s.u)) for s in seen] == [(p.labeled_size, p.unlabeled_size) for p in trained]
    assert [s.batch_idx for s in seen] == [p.batch_idx for p in trained]
    assert all(len(s.x) > 1 and len(s.u) > 1 for s in seen)


def test_oversampled_plan_is_empty_when_nothing_can_train():
    data = table(60)
    plan = Oversampled(data, 64, IDENTITY, torch.arange(50), torch.arange(50, 60))  # drop_last and |L| < B
    assert len(plan) == 0 and collect(plan)[0]["steps"] == 0


def test_shard_arithmetic_local_images_global_rows():
    """Under torchrun a rank's batch holds its rows; images count them, the loss weights use the global batch."""
    data = table(10)
    data.shard = Shard(1, 3)  # rank 1 of 3: global batch of 4 rows -> local 1 (sizes 2, 1, 1)
    plan = OnePass(data, 4, IDENTITY)
    seen_sizes = []

    def step(s):
        seen_sizes.append((len(s.batch), s.batch.size, s.batch.all("raw").shape[0]))
        return StepResult(torch.tensor(float(s.batch.size)), {"local": torch.tensor(float(len(s.batch)))})

    out = run_epoch(FakeContext(), plan, step, OPT, epoch=0, desc="t")
    assert seen_sizes == [(1, 4, 4), (1, 4, 4), (1, 2, 2)]  # global 4, 4, 2: rank 1 keeps 1, 1, 1
    assert out["images"] == 3 and out["steps"] == 3
    assert out["loss"] == pytest.approx((16 + 16 + 4) / 10)  # weighted by the global rows
    assert out["local"] == pytest.approx(3 / 10)  # sums are divided by the global rows
    assert out["lr"] == 0.5  # no per-step schedule: the optimiser's learning rate is reported
