"""Nearest neighbours in an embedding space: pure functions of tensors, on the tensors' device.

The k-NN monitor of SimCLR (Wu et al. 2018), and the neighbourhoods TCL and Manifold DivideMix build on (the
following issues): exact cosine top-k, chunked over the queries so that memory stays ``chunk × N``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
