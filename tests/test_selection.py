import pytest
import torch

from noisyclr.selection import (
    SELECTION_BACKENDS,
    _fit_gmm_torch,
    _kmeans_responsibilities,
    balanced_partition,
    clean_probability_1d,
    clean_probability_2d,
    fit_gmm,
    minmax_normalize,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_clusters_1d(n_low: int = 300, n_high: int = 100, seed: int = 0) -> torch.Tensor:
    """Low-loss cluster in [0, 0.1], high-loss cluster in [0.8, 1.0], with the exact extremes 0 and 1 present."""
    g = _gen(seed)
    low = 0.1 * torch.rand(n_low, generator=g)
    high = 0.8 + 0.2 * torch.rand(n_high, generator=g)
    low[0], high[0] = 0.0, 1.0
    return torch.cat([low, high])


def overlapping_losses(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss-like data where the two components overlap, so EM needs several iterations (the interesting case)."""
    g = _gen(seed)
    clean = torch.distributions.Gamma(2.0, 20.0).sample((n,))
    noisy = torch.distributions.Gamma(3.0, 5.0).sample((n // 2,))
    cls = torch.cat([clean, noisy])
    proto = 0.6 * cls + 0.3 * torch.rand(cls.shape[0], generator=g)
    return cls, proto


# -------------------------------------------------------------------------------------------------------------- minmax


def test_minmax_1d_hand_values():
    out = minmax_normalize(torch.tensor([2.0, 4.0, 6.0, 3.0]))
    assert torch.equal(out, torch.tensor([0.0, 0.5, 1.0, 0.25]))


def test_minmax_2d_is_per_column_and_constant_column_is_zero():
    x = torch.tensor([[0.0, 10.0, 3.0], [5.0, 20.0, 3.0], [10.0, 30.0, 3.0]], dtype=torch.float64)
    out = minmax_normalize(x)
    assert out.dtype == torch.float64
    assert torch.equal(out, torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64))


def test_minmax_constant_input_gives_zeros_not_nan():
    assert torch.equal(minmax_normalize(torch.full((5,), 7.0)), torch.zeros(5))


# ------------------------------------------------------------------------------------------------------------- 1-D GMM


@pytest.mark.parametrize("backend", SELECTION_BACKENDS)
def test_1d_well_separated_clusters(backend):
    losses = two_clusters_1d()
    w, info = clean_probability_1d(losses, backend=backend)
    assert w.shape == (400,) and w.dtype == torch.float32
    assert w[:300].min() > 0.999
    assert w[300:].max() < 1e-3
    means = info["gmm"].means[:, 0]
    assert means[info["clean_component"]] == means.min()


@pytest.mark.parametrize("backend", SELECTION_BACKENDS)
def test_1d_clean_component_is_smaller_mean_even_when_it_is_index_1(backend):
    losses = two_clusters_1d()
    # initial responsibilities that put the high-loss cluster in component 0
    init = torch.zeros(400, 2, dtype=torch.float64)
    init[:300, 1] = 1.0
    init[300:, 0] = 1.0
    w, info = clean_probability_1d(losses, backend=backend, init=init)
    assert int(info["clean_component"]) == 1
    assert info["gmm"].means[1, 0] < info["gmm"].means[0, 0]
    assert w[:300].min() > 0.999 and w[300:].max() < 1e-3


def test_1d_normalises_before_fitting():
    losses = two_clusters_1d()
    w_raw, info = clean_probability_1d(5.0 * losses + 3.0)
    w_ref, _ = clean_probability_1d(losses)
    assert torch.allclose(info["points"], losses, atol=1e-6)
    assert torch.allclose(w_raw, w_ref, atol=1e-6)


@pytest.mark.parametrize("average_last, expected_rows", [(0, [3]), (1, [3]), (2, [2, 3]), (3, [1, 2, 3]),
                                                         (10, [0, 1, 2, 3])])
def test_1d_history_averages_exactly_the_last_k_vectors(average_last, expected_rows):
    base = two_clusters_1d()
    # earlier epochs' normalised vectors; each is a valid normalised loss vector with a distinct pattern
    history = [minmax_normalize(base.roll(s)) for s in (7, 19, 31)]
    current = base
    vectors = history + [minmax_normalize(current)]
    _, info = clean_probability_1d(current, history=history, average_last=average_last)
    assert len(history) == 4  # this epoch's vector was appended
    assert torch.equal(history[-1], minmax_normalize(current))
    expected = torch.stack([vectors[i] for i in expected_rows]).mean(0)
    assert torch.allclose(info["points"], expected, atol=1e-7)


def test_1d_history_errors():
    losses = two_clusters_1d()
    with pytest.raises(ValueError, match="history"):
        clean_probability_1d(losses, average_last=5)
    history = [torch.zeros(3)]
    with pytest.raises(ValueError, match="shape"):
        clean_probability_1d(losses, history=history, average_last=2)
    assert len(history) == 1  # a failed call leaves the caller's list as it was
    with pytest.raises(ValueError, match="backend"):
        clean_probability_1d(losses, backend="cuml")


# ------------------------------------------------------------------------------------------------------------- 2-D GMM


def near_origin_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster A around (0.1, 0.1) (indices 0..199) and B around (0.05, 0.9) (200..399), plus anchors (0,0), (1,1).

    B has the smaller first coordinate (classifier loss) but A is nearer the origin, so A is clean. The anchors
    make min-max normalisation the identity, so the intended geometry survives.
    """
    g = _gen(3)
    a = torch.tensor([0.1, 0.1]) + 0.04 * (torch.rand(200, 2, generator=g) - 0.5)
    b = torch.tensor([0.05, 0.9]) + 0.04 * (torch.rand(200, 2, generator=g) - 0.5)
    pts = torch.cat([a, b, torch.tensor([[0.0, 0.0], [1.0, 1.0]])])
    return pts[:, 0], pts[:, 1]


@pytest.mark.parametrize("backend", SELECTION_BACKENDS)
def test_2d_clean_component_is_nearest_origin_not_smallest_cls_loss(backend):
    cls, proto = near_origin_case()
    w, info = clean_probability_2d(cls, proto, backend=backend)
    means = info["gmm"].means
    clean = int(info["clean_component"])
    assert torch.allclose(means[clean], torch.tensor([0.1, 0.1], dtype=torch.float64), atol=0.01)
    assert means[1 - clean, 0] < means[clean, 0]  # the noisy component has the smaller classifier loss
    assert w[:200].min() > 0.999 and w[200:400].max() < 1e-3


def test_2d_cls_history_applies_to_the_classifier_coordinate_only():
    cls, proto = near_origin_case()
    history = [minmax_normalize(cls.roll(5))]
    _, info = clean_probability_2d(cls, proto, cls_history=history, average_last=5)
    assert len(history) == 2
    expected_cls = 0.5 * (minmax_normalize(cls.roll(5)) + minmax_normalize(cls))
    assert torch.allclose(info["points"][:, 0], expected_cls, atol=1e-7)
    assert torch.equal(info["points"][:, 1], minmax_normalize(proto))


def test_2d_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        clean_probability_2d(torch.rand(5), torch.rand(6))


# ------------------------------------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dim", [1, 2])
def test_torch_backend_matches_sklearn(seed, dim):
    cls, proto = overlapping_losses(seed=seed)
    if dim == 1:
        ws, info_s = clean_probability_1d(cls, backend="sklearn", random_state=seed)
        wt, info_t = clean_probability_1d(cls, backend="torch", random_state=seed)
    else:
        ws, info_s = clean_probability_2d(cls, proto, backend="sklearn", random_state=seed)
        wt, info_t = clean_probability_2d(cls, proto, backend="torch", random_state=seed)
    gs, gt = info_s["gmm"], info_t["gmm"]
    assert (ws - wt).abs().max() < 1e-3
    assert (gs.responsibilities - gt.responsibilities).abs().max() < 1e-9  # in float64 they agree to rounding
    assert int(gs.n_iter) == int(gt.n_iter) > 1
    assert bool(gs.converged) == bool(gt.converged)
    assert torch.allclose(gs.means, gt.means, atol=1e-10)
    assert torch.allclose(gs.covariances, gt.covariances, atol=1e-10)
    assert torch.allclose(gs.weights, gt.weights, atol=1e-10)


@pytest.mark.parametrize("max_iter, tol", [(3, 1e-12), (50, 1e-6)])
def test_backends_agree_on_iterations_and_convergence(max_iter, tol):
    cls, proto = overlapping_losses(n=2000)
    pts = torch.stack([minmax_normalize(cls), minmax_normalize(proto)], 1)
    gs = fit_gmm(pts, backend="sklearn", max_iter=max_iter, tol=tol)
    gt = fit_gmm(pts, backend="torch", max_iter=max_iter, tol=tol)
    assert int(gs.n_iter) == int(gt.n_iter)
    assert bool(gs.converged) == bool(gt.converged) == (max_iter == 50)
    assert (gs.responsibilities - gt.responsibilities).abs().max() < 1e-9


def test_backends_agree_with_explicit_soft_init():
    cls, _ = overlapping_losses(n=2000)
    x = minmax_normalize(cls)
    init = torch.stack([1 - x, x], 1).to(torch.float64)  # soft responsibilities
    gs = fit_gmm(x, backend="sklearn", init=init)
    gt = fit_gmm(x, backend="torch", init=init)
    assert (gs.responsibilities - gt.responsibilities).abs().max() < 1e-8
    assert int(gs.n_iter) == int(gt.n_iter)


def test_torch_em_without_early_exit_gives_the_same_result():
    """The accelerator path (all iterations, frozen after convergence) equals the CPU early-exit path."""
    cls, proto = overlapping_losses(n=2000)
    x = torch.stack([minmax_normalize(cls), minmax_normalize(proto)], 1).to(torch.float64)
    init = _kmeans_responsibilities(x, 2, 0)
    a = _fit_gmm_torch(x, init, max_iter=10, tol=1e-2, reg_covar=5e-4, early_exit=True)
    b = _fit_gmm_torch(x, init, max_iter=10, tol=1e-2, reg_covar=5e-4, early_exit=False)
    assert int(a.n_iter) == int(b.n_iter) < 10
    assert torch.equal(a.responsibilities, b.responsibilities)
    assert torch.equal(a.means, b.means) and torch.equal(a.lower_bound, b.lower_bound)


def test_fit_gmm_result_shapes_and_errors():
    res = fit_gmm(torch.rand(50, 3, generator=_gen(0)), backend="torch")
    assert res.means.shape == (2, 3) and res.covariances.shape == (2, 3, 3) and res.weights.shape == (2,)
    assert res.responsibilities.shape == (50, 2)
    assert torch.allclose(res.responsibilities.sum(1), torch.ones(50, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least"):
        fit_gmm(torch.rand(1))
    with pytest.raises(ValueError, match="init"):
        fit_gmm(torch.rand(10), init="random")
    with pytest.raises(ValueError, match="shape"):
        fit_gmm(torch.rand(10), init=torch.rand(9, 2))


# -------------------------------------------------------------------------------------------------- balanced partition


def _labels(*sizes: int) -> torch.Tensor:
    return torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])


CROWDED = [0.9, 0.8, 0.95, 0.7, 0.6]   # class 0: all 5 pass the threshold
STARVED = [0.1, 0.55, 0.3, 0.2, 0.05]  # class 1: only one passes


@pytest.mark.parametrize(
    "w, labels, num_classes, expected",
    [
        # 7 pass → q = 7 // 3 = 2. Crowded class 0 keeps its top 2 (0.95, 0.9); starved class 1 takes 0.55 and
        # the below-threshold 0.3; class 2 has exactly q samples, so both (0.9 and 0.2) are labeled.
        (CROWDED + STARVED + [0.9, 0.2], _labels(5, 5, 2), 3,
         [1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1]),
        # 6 pass → q = 2; class 2 has a single sample (fewer than q): it is labeled although w = 0.2
        (CROWDED + STARVED + [0.2], _labels(5, 5, 1), 3,
         [1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1]),
        # ties: 4 pass, C = 2 → q = 2 in class 0: 0.9 first, then the lower index among the 0.7s
        ([0.7, 0.9, 0.7, 0.7], [0, 0, 0, 0], 2, [1, 1, 0, 0]),
        # the threshold is strict: 0.5 does not count, so 1 passes and q = 1 // 2 = 0
        ([0.5, 0.5, 0.6, 0.4], [0, 1, 0, 1], 2, [0, 0, 0, 0]),
    ],
    ids=["crowded-starved-exact", "class-smaller-than-quota", "ties-lower-index", "strict-threshold-zero-quota"],
)
def test_balanced_partition_hand_cases(w, labels, num_classes, expected):
    w = torch.tensor(w)
    labels = torch.as_tensor(labels)
    mask = balanced_partition(w, labels, num_classes)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [bool(e) for e in expected]
    assert mask.sum() <= (w > 0.5).sum()


def test_balanced_partition_threshold_option():
    w = torch.tensor(CROWDED + STARVED)
    # threshold 0.75: 3 pass → q = 1 per class
    mask = balanced_partition(w, _labels(5, 5), 2, threshold=0.75)
    assert mask.nonzero().flatten().tolist() == [2, 6]


def _reference_partition(w, labels, num_classes, threshold=0.5):
    """Per-class loop, the definition in spec §4.4."""
    n = len(w)
    q = int((w > threshold).sum()) // num_classes
    mask = torch.zeros(n, dtype=torch.bool)
    for c in range(num_classes):
        idx = [i for i in range(n) if labels[i] == c]
        idx.sort(key=lambda i: (-float(w[i]), i))
        mask[idx[:q]] = True
    return mask


@pytest.mark.parametrize("seed", range(4))
def test_balanced_partition_matches_per_class_definition(seed):
    g = _gen(seed)
    n, c = 500, 7
    # quantised probabilities create many ties; skewed labels create crowded, starved and tiny classes
    w = torch.randint(0, 20, (n,), generator=g).float() / 19
    labels = torch.multinomial(torch.tensor([30.0, 20, 10, 5, 2, 1, 0.3]), n, replacement=True, generator=g)
    mask = balanced_partition(w, labels, c)
    assert torch.equal(mask, _reference_partition(w, labels, c))
    q = int((w > 0.5).sum()) // c
    for k in range(c):
        assert int(mask[labels == k].sum()) == min(int((labels == k).sum()), q)
    assert mask.sum() <= (w > 0.5).sum()
