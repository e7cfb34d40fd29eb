"""Manifold DivideMix's k-NN OOD filter (noisyclr/neighbours.py): the score, the top-R flags, the R schedule."""

import importlib.util
import math

import pytest
import torch

from noisyclr.errors import UserError
from noisyclr.neighbours import knn_ood_score, ood_flags, ood_removal_count

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# a = (1, 0), b = (0, 1), c = (-1, 0), d = (3, 3) (not unit length: the score normalises).
# cosines: ab 0, ac -1, ad 1/√2, bc 0, bd 1/√2, cd -1/√2
FOUR = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [3.0, 3.0]]
H = math.sqrt(2) / 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k, expected", [
    (1, [1 - H, 1 - H, 1.0, 1 - H]),                      # a->d, b->d, c->b, d->a (or b)
    (2, [1 - H / 2, 1 - H / 2, 1 + H / 2, 1 - H]),        # a: d, b; b: d, a; c: b, d; d: a, b
    (3, [(4 - H) / 3, (3 - H) / 3, (4 + H) / 3, (3 - H) / 3]),  # every other point
])
def test_score_by_hand_on_four_points(device, k, expected):
    features = torch.tensor(FOUR, device=device)
    got = knn_ood_score(features, k=k)
    assert got.device.type == device and got.dtype == torch.float32
    assert torch.allclose(got.cpu(), torch.tensor(expected), atol=1e-6), got
    # k beyond N - 1 is clipped: 10 neighbours of 4 points are the 3 others
    if k == 3:
        assert torch.allclose(knn_ood_score(features, k=10), got, atol=1e-6)


def test_score_is_scale_free_and_chunk_free():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 5, generator=g, dtype=torch.float64)
    ref = knn_ood_score(x, k=4)
    scaled = knn_ood_score(x * (0.1 + 10 * torch.rand(37, 1, generator=g, dtype=torch.float64)), k=4)
    assert torch.allclose(ref, scaled, atol=1e-5)
    for chunk in (1, 5, 36, 1000):
        assert torch.allclose(knn_ood_score(x, k=4, chunk=chunk), ref, atol=1e-6), chunk


def _clusters_and_outliers(n_per=60, clusters=3, outliers=6, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(clusters, dim, generator=g), dim=1)
    inliers = centres.repeat_interleave(n_per, 0) + 0.05 * torch.randn(clusters * n_per, dim, generator=g)
    far = torch.randn(outliers, dim, generator=g)  # random directions: cosine about 0 to every centre
    x = torch.cat([inliers, far])
    order = torch.randperm(len(x), generator=g)  # outliers anywhere in the index order
    truth = torch.zeros(len(x), dtype=torch.bool)
    truth[-outliers:] = True
    return x[order], truth[order]


@pytest.mark.parametrize("device", DEVICES)
def test_constructed_outliers_rank_first(device):
    x, truth = _clusters_and_outliers()
    score = knn_ood_score(x.to(device), k=10, chunk=17)
    flags = ood_flags(score, int(truth.sum()))
    assert torch.equal(flags.cpu(), truth)
    # the margin: every outlier scores above every inlier
    assert score[truth.to(device)].min() > score[~truth.to(device)].max()
    # flagging more than the outliers keeps all of them
    assert ood_flags(score, 10).cpu()[truth].all()


def test_flags_break_ties_by_index_and_clip():
    score = torch.tensor([1.0, 3.0, 3.0, 0.0, 3.0])
    assert ood_flags(score, 2).tolist() == [False, True, True, False, False]
    assert ood_flags(score, 4).tolist() == [True, True, True, False, True]
    assert ood_flags(score, 0).tolist() == [False] * 5
    assert ood_flags(score, 99).all()
    with pytest.raises(ValueError, match="NaN"):
        ood_flags(torch.tensor([0.0, float("nan")]), 1)
    with pytest.raises(ValueError, match="count >= 0"):
        ood_flags(score, -1)


def test_removal_schedules_of_the_seed():
    # CIFAR (--remove-ood 0.01): R0 = ceil(0.01 * 10 * N) on the SSL encoder, + ceil(0.01 N) per division
    cifar = [ood_removal_count(50_000, i, 0.1, 0.01) for i in (0, 1, 2, 28)]
    assert cifar == [5_000, 5_500, 6_000, 19_000]
    # mini-ImageNet: 1%, +1%
    assert [ood_removal_count(50_000, i, 0.01, 0.01) for i in (0, 1, 5)] == [500, 1_000, 3_000]
    # ceil on a fraction of a sample, no spurious round-up from binary fractions, capped at n
    assert ood_removal_count(1297, 0, 0.1, 0.01) == 130 and ood_removal_count(1297, 1, 0.1, 0.01) == 143
    assert ood_removal_count(100, 0, 0.07, 0.0) == 7
    assert ood_removal_count(100, 200, 0.1, 0.01) == 100
    with pytest.raises(ValueError):
        ood_removal_count(100, -1, 0.1, 0.01)


def test_backends_and_bad_input():
    x, _ = _clusters_and_outliers(n_per=10, outliers=2)
    with pytest.raises(UserError, match="unknown k-NN backend 'annoy'; use one of exact, faiss"):
        knn_ood_score(x, backend="annoy")
    if importlib.util.find_spec("faiss") is None:
        with pytest.raises(UserError, match="needs the faiss package"):
            knn_ood_score(x, backend="faiss")
    else:
        assert torch.allclose(knn_ood_score(x, backend="faiss"), knn_ood_score(x), atol=1e-5)
    with pytest.raises(ValueError, match="N >= 2"):
        knn_ood_score(torch.ones(1, 3))
    with pytest.raises(ValueError, match="k >= 1"):
        knn_ood_score(x, k=0)
