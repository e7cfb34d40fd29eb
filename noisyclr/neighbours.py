"""Nearest neighbours in an embedding space: pure functions of tensors, on the tensors' device.

The k-NN monitor of SimCLR (Wu et al. 2018), and the neighbourhoods TCL and Manifold DivideMix build on: exact
cosine top-k, chunked over the queries so that memory stays ``chunk × N``; Manifold DivideMix's k-NN OOD score, the
top-R flags and its R schedule (spec ``tcl_mdm_contrastinit.md`` §2.3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import UserError

KNN_BACKENDS = ("exact", "faiss")


@torch.no_grad()
def cosine_topk(bank: torch.Tensor, query: torch.Tensor, k: int, *, chunk: int = 1024,
                exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most cosine-similar rows of ``bank`` for every row of ``query``: ``(similarities, indices)``.

    s_ij = ⟨q_i/‖q_i‖, b_j/‖b_j‖⟩; row i of the result holds the k largest s_ij (descending) and their j.

    Args:
        bank: ``(N, D)``; query: ``(M, D)`` (any float dtype; computed in float32).
        k: neighbours per query, clipped to the bank size (minus one with ``exclude_self``).
        chunk: queries per similarity block.
        exclude_self: ``query`` IS ``bank`` (M = N) and a row is not its own neighbour (its s_ii is masked).

    Returns:
        ``(M, k)`` float32 similarities and ``(M, k)`` int64 bank indices.
    """
    b = F.normalize(bank.float(), dim=1)
    q = F.normalize(query.float(), dim=1)
    if exclude_self and q.shape[0] != b.shape[0]:
        raise ValueError(f"exclude_self needs query = bank, got {q.shape[0]} and {b.shape[0]} rows")
    k = max(1, min(int(k), b.shape[0] - (1 if exclude_self else 0)))
    sims, idx = [], []
    for start in range(0, q.shape[0], chunk):
        s = q[start:start + chunk] @ b.T
        if exclude_self:
            rows = torch.arange(s.shape[0], device=s.device)
            s[rows, rows + start] = float("-inf")
        top, where = s.topk(k, dim=1)
        sims.append(top)
        idx.append(where)
    if not sims:
        return q.new_zeros(0, k), torch.zeros(0, k, dtype=torch.long, device=q.device)
    return torch.cat(sims), torch.cat(idx)


def knn_monitor_due(epoch: int, epochs: int, k: int, every: int) -> bool:
    """Whether a k-NN monitor runs after 0-based ``epoch`` of ``epochs``: ``k > 0`` and every ``every`` epochs, the
    last one always (and an evaluation outside training, ``epoch < 0``)."""
    last = epoch + 1 >= epochs or epoch < 0
    return k > 0 and (last or (epoch + 1) % every == 0)


@torch.no_grad()
def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, query: torch.Tensor, num_classes: int, *,
                k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted k-NN class prediction (Wu et al. 2018, the SimCLR / TCL monitor) for each row of ``query``.

    Features are L2-normalised; for each query the ``k`` most cosine-similar training rows (:func:`cosine_topk`) vote for their label with
    weight ``exp(s / temperature)``; the class with the largest vote wins.

    Args:
        train_features: ``(N, D)``.
        train_labels: ``(N,)`` int64 in ``[0, num_classes)``.
        query: ``(M, D)``.
        k: neighbours (clipped to N).
        chunk: queries per similarity block (memory ``chunk × N``).

    Returns:
        ``(M,)`` int64 predictions.
    """
    if query.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=query.device)
    top, idx = cosine_topk(train_features, query, k, chunk=chunk)
    votes = torch.zeros(top.shape[0], num_classes, device=top.device, dtype=top.dtype)
    votes.scatter_add_(1, train_labels[idx], torch.exp(top / temperature))
    return votes.argmax(dim=1)


@torch.no_grad()
def knn_ood_score(features: torch.Tensor, k: int = 10, *, chunk: int = 1024, backend: str = "exact") -> torch.Tensor:
    """Manifold DivideMix's OOD score: the mean cosine distance of each sample to its ``k`` nearest neighbours.

    d_i = (1/k) Σ_{j ∈ N_k(i)} (1 − ⟨f_i/‖f_i‖, f_j/‖f_j‖⟩), N_k(i) the k most cosine-similar rows other than i.
    d_i is in [0, 2]; a larger d_i is further from the data manifold, i.e. more likely out of distribution. This is
    the ranking of cleanlab's ``OutOfDistribution().fit_score`` (k = 10, cosine), which the seed calls: cleanlab
    reports exp(−d_i / median d), a decreasing function of d_i, so the R samples it flags are the R largest d_i.

    Args:
        features: ``(N, D)`` encoder features (any float dtype, computed in float32), N >= 2; L2-normalised here.
        k: neighbours per sample, clipped to N − 1.
        chunk: rows per similarity block of the exact backend (memory ``chunk × N``, on the features' device).
        backend: ``exact`` (:func:`cosine_topk`, self excluded) or ``faiss`` (an exact inner-product index, for
            millions of samples; needs the ``faiss`` package). Both give the same scores up to float rounding.

    Returns:
        ``(N,)`` float32 scores on the features' device.
    """
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"knn_ood_score needs (N, D) features with N >= 2, got shape {tuple(features.shape)}")
    if int(k) < 1:
        raise ValueError(f"knn_ood_score needs k >= 1, got {k}")
    if backend not in KNN_BACKENDS:
        raise UserError(f"unknown k-NN backend '{backend}'; use one of {', '.join(KNN_BACKENDS)}")
    k = min(int(k), features.shape[0] - 1)
    if backend == "faiss":
        sims = _faiss_self_topk(features, k)
    else:
        sims, _ = cosine_topk(features, features, k, chunk=chunk, exclude_self=True)
    return (1.0 - sims).mean(dim=1)


def _faiss_self_topk(features: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, k)`` cosine similarities of each row to its k nearest other rows, through faiss' exact flat index."""
    try:
        import faiss
    except ImportError:
        raise UserError("the faiss k-NN backend needs the faiss package (pip install faiss-cpu, or faiss-gpu); "
                        "or use backend=exact") from None
    import numpy as np

    x = F.normalize(features.float(), dim=1).cpu().numpy()
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(x, k + 1)
    # A row's own entry is normally first, but exact duplicates can come before it: drop it wherever it is (the
    # last entry when it is not among the k + 1, all of which are then duplicates at similarity 1).
    own = idx == np.arange(len(x))[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(len(x)), drop] = False
    return torch.from_numpy(sims[keep].reshape(len(x), k)).to(features.device)


def ood_flags(score: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean ``(N,)`` mask of the ``count`` largest scores (the samples the OOD filter removes).

    Ties are broken by index (the lower index is flagged first, a stable descending sort), so the mask is the
    same on every device and run. ``count`` is clipped to N.
    """
    if count < 0:
        raise ValueError(f"ood_flags needs count >= 0, got {count}")
    if torch.isnan(score).any():
        raise ValueError("ood_flags got NaN scores; the features are not finite")
    order = torch.sort(score, descending=True, stable=True).indices[: int(count)]
    flags = torch.zeros(score.shape[0], dtype=torch.bool, device=score.device)
    flags[order] = True
    return flags


def ood_removal_count(n: int, division_index: int, initial_fraction: float, step_fraction: float) -> int:
    """R, how many samples the OOD filter removes at a division (spec §2.3):

        R = ceil(initial_fraction · n) + division_index · ceil(step_fraction · n), at most n.

    ``division_index`` is 0 for the detection on the self-supervised encoder before any supervised training and i
    for the i-th division after it. The seed's schedules (``--remove-ood 0.01``): CIFAR ``initial_fraction=0.1``
    (its ceil(0.01·10·N)), ``step_fraction=0.01``: N = 50,000 gives R = 5,000, then 5,500, ..., 19,000 at the 28th
    division; mini-ImageNet ``initial_fraction=step_fraction=0.01``.

    The products are rounded to 9 decimals before the ceil, so that a fraction that is not exact in binary does
    not round up a whole sample (0.07 · 100 is 7.000000000000001 in floating point; R is 7, not 8).
    """
    if n < 0 or division_index < 0:
        raise ValueError(f"ood_removal_count needs n >= 0 and division_index >= 0, got {n} and {division_index}")
    if not (0.0 <= initial_fraction <= 1.0 and 0.0 <= step_fraction <= 1.0):
        raise ValueError(f"fractions must be in [0, 1], got {initial_fraction} and {step_fraction}")
    first = math.ceil(round(initial_fraction * n, 9))
    step = math.ceil(round(step_fraction * n, 9))
    return min(int(n), first + int(division_index) * step)
