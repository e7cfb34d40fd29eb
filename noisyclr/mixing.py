"""Mixup as two steps: draw (λ, π) once, then apply the same draw to inputs, hidden states and targets.

    λ ~ Beta(α, α),  π = randperm(R),   mix(T) = λ T + (1 − λ) T[π]

The draws are generator-aware (:func:`sample_beta`, :func:`sample_gamma`: a fixed number of draws per call from
an explicit ``torch.Generator``), so a run restored with its generator state replays bit-exactly. One draw serves
every tensor of a batch whose rows correspond: MixMatch mixes the images and their soft targets with it (DivideMix and its descendants), manifold mixup (Verma et al. 2019; Manifold DivideMix's MixEMatch) mixes
the hidden activations after a network stage with it (``Network(x, mix=draw)`` with ``draw.stage = k``) and the
targets with the same λ and π. The λ rule is the method's: MixMatch keeps λ' = max(λ, 1 − λ) so that a mixed row
stays closer to its own row (its first rows stay "labeled"), and so does TCL's input mixup; ``rule="plain"`` keeps λ
as drawn (Zhang et al.'s mixup).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

LAMBDA_RULES = ("max", "plain")


@dataclass(frozen=True)
class MixDraw:
    """One mixup draw for a batch of ``R`` rows.

    ``lam``: 0-dim float32 tensor on the batch's device (no host sync; ``float(lam)`` only for logging);
    ``perm``: ``(R,)`` int64 permutation; ``stage``: where a network mixes its hidden state (0: the inputs, k:
    after stage k, see :meth:`noisyclr.models.network.Network.forward`).
    """

    lam: torch.Tensor
    perm: torch.Tensor
    stage: int = 0

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """``λ t + (1 − λ) t[π]`` for ``t`` of shape ``(R, ...)``, in ``t``'s dtype. With λ = 1 this is ``t``."""
        if t.shape[0] != self.perm.shape[0]:
            raise ValueError(f"a draw for {self.perm.shape[0]} rows cannot mix {t.shape[0]} rows")
        lam = self.lam.to(t.dtype)
        return lam * t + (1.0 - lam) * t[self.perm]

    def at_stage(self, stage: int) -> "MixDraw":
        """The same λ and π, applied after network stage ``stage``."""
        return replace(self, stage=int(stage))


def draw_mix(alpha: float, rows: int, generator: torch.Generator, device: torch.device | str | None = None, *,
             rule: str = "max", stage: int = 0) -> MixDraw:
    """Draw λ (``rule``: ``max`` → λ' = max(λ, 1 − λ), MixMatch; ``plain`` → λ) and then π from ``generator``,
    in that order (λ from :func:`sample_beta`, π by ``randperm`` on the generator's device,
    moved to ``device``)."""
    if rule not in LAMBDA_RULES:
        raise ValueError(f"unknown λ rule {rule!r}; choose one of {', '.join(LAMBDA_RULES)}")
    device = generator.device if device is None else torch.device(device)
    lam = sample_beta(alpha, alpha, generator=generator)
    if rule == "max":
        lam = torch.maximum(lam, 1.0 - lam)
    lam = lam.to(device=device, dtype=torch.float32)
    perm = torch.randperm(rows, generator=generator, device=generator.device).to(device)
    return MixDraw(lam, perm, stage)


# --------------------------------------------------------------------------------------------------------------
# generator-aware Gamma / Beta sampling
# --------------------------------------------------------------------------------------------------------------

#: Marsaglia–Tsang candidates drawn per variate. Its acceptance rate is ≥ 0.95 for shape ≥ 1 (the worst case is
#: shape = 1), so all 16 candidates are rejected with probability < 0.05^16 ≈ 2e-21.
_MT_CANDIDATES = 16


def _log_gamma_sample(alpha: float, size: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``log X`` with ``X ~ Gamma(alpha, 1)``, float64 on ``generator.device``; see :func:`sample_gamma`."""
    if not alpha > 0:
        raise ValueError(f"Gamma shape must be > 0, got {alpha}")
    dev = generator.device
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha  # Gamma(α) = Gamma(α + 1) · U^{1/α} for α < 1
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    shape = (*size, _MT_CANDIDATES)
    x = torch.randn(shape, generator=generator, device=dev, dtype=torch.float64)
    # 1 − U ∈ (0, 1]: log never sees 0
    u = 1.0 - torch.rand(shape, generator=generator, device=dev, dtype=torch.float64)
    v = (1.0 + c * x) ** 3
    v_pos = v > 0
    log_v = torch.log(torch.where(v_pos, v, 1.0))
    accept = v_pos & (torch.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    # first accepted candidate (argmax returns the first maximal index); if none is accepted (p < 2e-21) fall back
    # deterministically to v = 1, i.e. X = d ≈ the mode, instead of looping a data-dependent number of times
    first = accept.to(torch.int32).argmax(dim=-1, keepdim=True)
    log_x = math.log(d) + torch.where(accept.any(dim=-1), log_v.gather(-1, first).squeeze(-1), 0.0)
    if boost:
        u_boost = 1.0 - torch.rand(size, generator=generator, device=dev, dtype=torch.float64)
        log_x = log_x + torch.log(u_boost) / alpha  # log space: U^{1/α} underflows for small α
    return log_x


def sample_gamma(alpha: float, *, generator: torch.Generator, size: tuple[int, ...] = ()) -> torch.Tensor:
    """``Gamma(alpha, 1)`` samples of shape ``size`` (float64, on ``generator.device``) through ``generator``.

    ``torch.distributions.Gamma`` / ``torch._standard_gamma`` take no generator, so this is Marsaglia & Tsang (2000)
    vectorised with a **fixed** number of candidates (16 normals + 16 uniforms per variate, plus one uniform for
    the α < 1 boost ``Gamma(α) = Gamma(α+1)·U^{1/α}``): the generator advances by an amount that depends only on
    ``size`` and on whether α < 1, never on the values drawn, which is what bit-exact resumption needs. The first
    accepted candidate is taken; if all 16 are rejected (probability < 2e-21) the variate is the deterministic
    ``α − 1/3`` (shifted shape for α < 1). No host synchronisation.
    """
    return torch.exp(_log_gamma_sample(alpha, tuple(size), generator))


def sample_beta(a: float, b: float, *, generator: torch.Generator, size: tuple[int, ...] = ()) -> torch.Tensor:
    """``Beta(a, b)`` samples of shape ``size`` (float64, on ``generator.device``): ``X / (X + Y)``.

    ``X ~ Gamma(a, 1)`` and ``Y ~ Gamma(b, 1)`` come from :func:`sample_gamma` (X drawn first). Computed as
    ``sigmoid(log X − log Y)`` so that tiny Gamma variates (small a, b) cannot give 0/0.
    """
    size = tuple(size)
    log_x = _log_gamma_sample(a, size, generator)
    log_y = _log_gamma_sample(b, size, generator)
    return torch.sigmoid(log_x - log_y)
