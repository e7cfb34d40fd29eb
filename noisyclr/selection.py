"""Clean/noisy division: min-max normalisation, 2-component GMMs on per-sample losses, balanced partitioning.

Pure functions of tensors, usable without the trainer:

* :func:`clean_probability_1d`: DivideMix (docs/methods/dividemix.md, "Algorithm", Division). A GMM on the
  normalised classifier loss; the clean probability is the posterior of the low-loss component.
* :func:`clean_probability_2d`: PLReMix / BPT-PLR (docs/methods/plremix.md, "What it adds to DivideMix", and
  docs/methods/bpt_plr.md, "What it changes in PLReMix", Division). A full-covariance GMM on the points
  (normalised classifier loss, normalised prototype loss); the clean component is the one nearest the origin.
* :func:`clean_probability_assignment`: TCL (docs/methods/tcl.md, "Noise model"). A 1-D GMM (globally or per
  noisy class) on the normalised statistic ``−γ(i, ỹᵢ)``, the posterior of the annotated component.
* :func:`balanced_partition`: BPT-PLR (docs/methods/bpt_plr.md, "What it changes in PLReMix", Division). The
  same per-class quota for every class.
* :func:`fit_gmm`: the GMM itself, with two backends. ``"sklearn"`` is what the seed repositories ran. ``"torch"``
  runs the same EM on the input's device (see :func:`fit_gmm` for how exactly it matches).

Inputs and outputs are tensors on the same device. The only host transfers are the ones sklearn needs (the whole
fit for ``backend="sklearn"``; the k-means initialisation for ``backend="torch"``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

SELECTION_BACKENDS = ("sklearn", "torch")

# The seeds' GaussianMixture settings (DivideMix, PLReMix and BPT-PLR all use these).
GMM_MAX_ITER = 10
GMM_TOL = 1e-2
GMM_REG_COVAR = 5e-4


# ----------------------------------------------------------------------------------------------------------------
# normalisation
# ----------------------------------------------------------------------------------------------------------------


def minmax_normalize(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise over dim 0: ``(x − min) / (max − min)``, per column for 2-D input.

    Shapes: ``x`` (N,) or (N, D); the result has the same shape, dtype and device, with values in [0, 1].
    A constant vector (or column) has ``max == min``; it maps to zeros instead of 0/0 = NaN.
    """
    lo = x.amin(dim=0, keepdim=True)
    span = x.amax(dim=0, keepdim=True) - lo
    # a safe denominator keeps NaN out of the discarded branch (and out of gradients, should anyone take them)
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (x - lo) / safe, torch.zeros_like(x))


def _normalized_float(x: torch.Tensor) -> torch.Tensor:
    """Detach, promote to at least float32 (the seeds normalise float32 losses) and min-max normalise."""
    x = x.detach()
    return minmax_normalize(x.to(torch.promote_types(x.dtype, torch.float32)))


def _average_with_history(
    current: torch.Tensor, history: list[torch.Tensor] | None, average_last: int, name: str
) -> torch.Tensor:
    """Append ``current`` to ``history`` (when given) and return the mean of its last ``average_last`` entries."""
    if average_last < 0:
        raise ValueError(f"average_last must be >= 0, got {average_last}")
    if history is None:
        if average_last > 1:
            raise ValueError(f"average_last={average_last} needs {name}: the list of earlier normalised vectors")
        return current
    if average_last <= 1:
        history.append(current)
        return current
    # this epoch's vector and the k-1 before it; fewer early on: average what there is (DivideMix's
    # history[-5:].mean(0) after appending)
    window = history[-(average_last - 1):] + [current]
    for old in window:
        if old.shape != current.shape:
            raise ValueError(f"{name} holds a vector of shape {tuple(old.shape)}; "
                             f"this epoch's is {tuple(current.shape)}")
    history.append(current)  # only after the checks, so a failed call leaves the caller's list unchanged
    return torch.stack([h.to(current) for h in window]).mean(dim=0)


# ----------------------------------------------------------------------------------------------------------------
# GMM
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GMMResult:
    """A fitted Gaussian mixture. All tensors are float64 on the input's device.

    * ``means`` (K, D), ``covariances`` (K, D, D) (``reg_covar`` already on the diagonal), ``weights`` (K,).
    * ``responsibilities`` (N, K): posteriors of the training points under the *final* parameters, i.e. what
      ``GaussianMixture.fit(X).predict_proba(X)`` returns. Rows sum to 1.
    * ``converged``: 0-d bool tensor; ``n_iter``: 0-d int64 tensor, EM iterations run (as sklearn's ``n_iter_``).
    * ``lower_bound``: 0-d tensor, the mean log-likelihood of the last iteration (sklearn's ``lower_bound_``).

    ``converged``, ``n_iter`` and ``lower_bound`` are tensors so that the torch backend never waits for the
    device; ``int(result.n_iter)`` and ``bool(result.converged)`` read them (a host sync on CUDA).
    """

    means: torch.Tensor
    covariances: torch.Tensor
    weights: torch.Tensor
    responsibilities: torch.Tensor
    converged: torch.Tensor
    n_iter: torch.Tensor
    lower_bound: torch.Tensor


def _as_points(points: torch.Tensor, n_components: int) -> torch.Tensor:
    """(N,) or (N, D) -> (N, D) float64, with the checks sklearn would make."""
    if points.dim() == 1:
        points = points[:, None]
    if points.dim() != 2:
        raise ValueError(f"points must have shape (N,) or (N, D), got {tuple(points.shape)}")
    if points.shape[0] < max(2, n_components):
        raise ValueError(f"a {n_components}-component GMM needs at least {max(2, n_components)} points, "
                         f"got {points.shape[0]}")
    return points.detach().to(torch.float64)


_THREADPOOLS = None


def _one_thread():
    """Context in which scikit-learn's OpenMP loops (k-means) and SciPy's BLAS run on one thread.

    A fit here is a few thousand 1-D or 2-D points: the worker threads only add start-up and spin-wait time, which
    on a small CPU (or next to a concurrent run) costs more than the fit itself. The results do not depend on
    it: k-means reduces its chunks in a fixed order and the BLAS calls are 2x2 solves and (N, 2) products.
    Only these sklearn calls are limited, never the torch code around them.
    """
    global _THREADPOOLS
    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def _kmeans_responsibilities(x: torch.Tensor, n_components: int, random_state: int) -> torch.Tensor:
    """One-hot (N, K) responsibilities from sklearn's k-means, exactly as ``GaussianMixture(init_params="kmeans")``.

    sklearn builds ``KMeans(n_clusters=K, n_init=1, random_state=RandomState(seed))``; a fresh ``RandomState(seed)``
    and the integer seed give the same stream, so the labels here are the ones the sklearn backend starts from.
    """
    from sklearn.cluster import KMeans

    x_np = x.cpu().numpy()
    with _one_thread():
        labels = KMeans(n_clusters=n_components, n_init=1, random_state=random_state).fit(x_np).labels_
    labels = torch.from_numpy(labels.astype(np.int64)).to(x.device)
    return torch.nn.functional.one_hot(labels, n_components).to(x.dtype)


def _gaussian_parameters(
    x: torch.Tensor, resp: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """M-step statistics (sklearn's ``_estimate_gaussian_parameters``, covariance 'full').

    ``x`` (N, D), ``resp`` (N, K) -> ``nk`` (K,), ``means`` (K, D), ``covariances`` (K, D, D).
    ``nk`` carries sklearn's ``10·eps`` so that an empty component gives finite means instead of 0/0.
    """
    nk = resp.sum(dim=0) + 10 * torch.finfo(resp.dtype).eps
    means = (resp.T @ x) / nk[:, None]
    diff = x[None, :, :] - means[:, None, :]                                  # (K, N, D)
    cov = torch.bmm((resp.T[:, :, None] * diff).transpose(1, 2), diff)        # (K, D, D)
    cov = cov / nk[:, None, None]
    cov = cov + reg_covar * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return nk, means, cov


def _weighted_log_prob(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, cov: torch.Tensor
) -> torch.Tensor:
    """log π_k + log N(x_n | μ_k, Σ_k) for all n, k: (N, K).

    Uses the Cholesky factor L of Σ: the Mahalanobis term is ‖L⁻¹(x − μ)‖² and log det Σ = 2 Σ log diag L.
    ``cholesky_ex`` does not check for failure (a check would sync with the device); Σ is an empirical
    covariance (positive semi-definite) plus ``reg_covar``·I, so it is positive definite in float64.
    """
    d = x.shape[1]
    chol, _ = torch.linalg.cholesky_ex(cov)                                   # (K, D, D) lower
    diff = (x[None, :, :] - means[:, None, :]).transpose(1, 2)                # (K, D, N)
    y = torch.linalg.solve_triangular(chol, diff, upper=False)                # (K, D, N)
    maha = y.square().sum(dim=1)                                              # (K, N)
    log_det_chol = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(dim=-1)   # ½ log det Σ, (K,)
    log_gauss = -0.5 * (d * math.log(2 * math.pi) + maha) - log_det_chol[:, None]
    return (log_gauss + torch.log(weights)[:, None]).T


def _e_step(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (mean log-likelihood (0-d), log responsibilities (N, K))."""
    wlp = _weighted_log_prob(x, weights, means, cov)
    log_norm = torch.logsumexp(wlp, dim=1)
    return log_norm.mean(), wlp - log_norm[:, None]


def _fit_gmm_torch(
    x: torch.Tensor, init_resp: torch.Tensor, *, max_iter: int, tol: float, reg_covar: float,
    early_exit: bool | None = None,
) -> GMMResult:
    """Full-covariance EM, step for step as sklearn's ``BaseMixture.fit_predict`` with ``n_init=1``.

    ``early_exit`` (default: only on the CPU) leaves the loop once converged; otherwise all ``max_iter``
    iterations run with the parameters frozen after convergence. Both give the same result.
    """
    if early_exit is None:
        early_exit = x.device.type == "cpu"
    n = x.shape[0]
    # initialisation (sklearn's _initialize): the init weights are nk / N, later ones nk / Σ nk
    nk, means, cov = _gaussian_parameters(x, init_resp, reg_covar)
    weights = nk / n

    # torch.full, not torch.tensor: a fill kernel instead of a host-to-device copy
    lower_bound = torch.full((), -math.inf, dtype=x.dtype, device=x.device)
    n_iter = torch.zeros((), dtype=torch.int64, device=x.device)
    done = torch.zeros((), dtype=torch.bool, device=x.device)
    for it in range(1, max_iter + 1):
        new_lb, log_resp = _e_step(x, weights, means, cov)
        nk_new, means_new, cov_new = _gaussian_parameters(x, log_resp.exp(), reg_covar)
        change = new_lb - lower_bound
        # sklearn stops after the M-step of the iteration whose change is < tol. Instead of leaving the loop
        # (which needs the value on the host), iterations after convergence still run but are not committed.
        weights = torch.where(done, weights, nk_new / nk_new.sum())
        means = torch.where(done, means, means_new)
        cov = torch.where(done, cov, cov_new)
        lower_bound = torch.where(done, lower_bound, new_lb)
        n_iter = torch.where(done, n_iter, torch.full_like(n_iter, it))
        done = done | (change.abs() < tol)
        # on the CPU reading the flag costs nothing, so skip the idle iterations there
        if early_exit and bool(done):
            break

    # sklearn's final E-step: predict_proba(X) after fit(X) uses the final parameters
    _, log_resp = _e_step(x, weights, means, cov)
    return GMMResult(means=means, covariances=cov, weights=weights, responsibilities=log_resp.exp(),
                     converged=done, n_iter=n_iter, lower_bound=lower_bound)


def _fit_gmm_sklearn(
    x: torch.Tensor, init_resp: torch.Tensor | None, *, n_components: int, max_iter: int, tol: float,
    reg_covar: float, random_state: int,
) -> GMMResult:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    kwargs = {}
    if init_resp is not None:
        # sklearn takes no responsibilities, so hand it the parameters they imply (the same formulas as its own
        # initialisation); the k-means it would run first is replaced by a cheap init whose result is overridden
        nk, means, cov = _gaussian_parameters(x, init_resp, reg_covar)
        kwargs = dict(init_params="random_from_data", weights_init=(nk / x.shape[0]).cpu().numpy(),
                      means_init=means.cpu().numpy(), precisions_init=torch.linalg.inv(cov).cpu().numpy())
    gmm = GaussianMixture(n_components=n_components, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                          covariance_type="full", random_state=random_state, **kwargs)
    x_np = x.cpu().numpy()
    with warnings.catch_warnings():
        # 10 iterations often stop short of tol; the flag is in the result instead of a warning every epoch
        warnings.simplefilter("ignore", ConvergenceWarning)
        with _one_thread():
            gmm.fit(x_np)
            resp = gmm.predict_proba(x_np)

    def back(a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(x.device)

    return GMMResult(
        means=back(gmm.means_), covariances=back(gmm.covariances_), weights=back(gmm.weights_),
        responsibilities=back(resp),
        converged=torch.tensor(bool(gmm.converged_), device=x.device),
        n_iter=torch.tensor(int(gmm.n_iter_), dtype=torch.int64, device=x.device),
        lower_bound=torch.tensor(float(gmm.lower_bound_), dtype=torch.float64, device=x.device),
    )


def fit_gmm(
    points: torch.Tensor,
    *,
    n_components: int = 2,
    max_iter: int = GMM_MAX_ITER,
    tol: float = GMM_TOL,
    reg_covar: float = GMM_REG_COVAR,
    backend: str = "sklearn",
    init: str | torch.Tensor | None = None,
    random_state: int = 0,
) -> GMMResult:
    """Fit a full-covariance Gaussian mixture by EM and return its parameters and posteriors.

    ``points`` (N,) or (N, D), any float dtype; the fit runs in float64. Defaults are the seeds' settings:
    ``GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, covariance_type='full')``.

    Backends:

    * ``"sklearn"``: that very ``GaussianMixture`` on a CPU copy. The seeds pass no ``random_state`` (so their
      k-means initialisation is unseeded); we pass ``random_state`` (default 0) so that a division is
      reproducible. The seeds also feed float32 arrays (sklearn then fits in float32); we fit in float64.
    * ``"torch"``: the same EM in torch on the input's device: the same initialisation (sklearn's k-means on a
      CPU copy, the only host transfer), the same M-step (``nk = Σ resp + 10·eps``; covariances with
      ``reg_covar`` on the diagonal; initial weights ``nk/N``, later ``nk/Σnk``), the same E-step, the same stop
      rule (|change of the mean log-likelihood| < ``tol``, at most ``max_iter`` iterations) and sklearn's final
      E-step, so ``responsibilities`` equal ``GaussianMixture.fit(X).predict_proba(X)`` up to rounding.
      On an accelerator all ``max_iter`` iterations run, with parameters frozen after convergence: no host sync.

    ``init``: ``None`` or ``"kmeans"`` (sklearn's default initialisation, seeded by ``random_state``), or an
    (N, K) tensor of initial responsibilities (one-hot or soft, rows summing to 1), which both backends honour.

    Pitfalls: results depend on the initialisation, so compare backends with the same ``init`` and
    ``random_state``. A component that collapses onto identical points stays finite only thanks to
    ``reg_covar``; do not set it to 0.
    """
    if backend not in SELECTION_BACKENDS:
        raise ValueError(f"unknown GMM backend {backend!r}; choose one of {SELECTION_BACKENDS}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    x = _as_points(points, n_components)
    init_resp = None
    if isinstance(init, torch.Tensor):
        if init.shape != (x.shape[0], n_components):
            raise ValueError(f"init responsibilities must have shape {(x.shape[0], n_components)}, "
                             f"got {tuple(init.shape)}")
        init_resp = init.detach().to(device=x.device, dtype=x.dtype)
    elif init not in (None, "kmeans"):
        raise ValueError(f"init must be None, 'kmeans' or an (N, K) responsibility tensor, got {init!r}")

    if backend == "sklearn":
        return _fit_gmm_sklearn(x, init_resp, n_components=n_components, max_iter=max_iter, tol=tol,
                                reg_covar=reg_covar, random_state=random_state)
    if init_resp is None:
        init_resp = _kmeans_responsibilities(x, n_components, random_state)
    return _fit_gmm_torch(x, init_resp, max_iter=max_iter, tol=tol, reg_covar=reg_covar)


def _component_posterior(gmm: GMMResult, component: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Column ``component`` (a 0-d device tensor: no sync) of the responsibilities, as ``dtype``."""
    return gmm.responsibilities.index_select(1, component.reshape(1)).squeeze(1).to(dtype)


# ----------------------------------------------------------------------------------------------------------------
# clean probabilities
# ----------------------------------------------------------------------------------------------------------------


def clean_probability_1d(
    losses: torch.Tensor,
    *,
    history: list[torch.Tensor] | None = None,
    average_last: int = 0,
    backend: str = "sklearn",
    max_iter: int = GMM_MAX_ITER,
    tol: float = GMM_TOL,
    reg_covar: float = GMM_REG_COVAR,
    init: str | torch.Tensor | None = None,
    random_state: int = 0,
) -> tuple[torch.Tensor, dict]:
    """DivideMix clean probability: a 2-component GMM on min-max normalised per-sample losses.

    Method: docs/methods/dividemix.md, "Algorithm" (Division).

    1. ℓ̂ = (ℓ − min ℓ) / (max ℓ − min ℓ) over the whole training set.
    2. If ``history`` is a list, ℓ̂ is **appended to it** (the one side effect). With ``average_last = k ≥ 2`` the
       GMM is fitted on the mean of the last k entries of ``history``, this epoch's included (fewer early on).
       DivideMix uses k = 5 for CIFAR at 90 % noise. Keep one list per network across epochs, pass it every
       epoch, and checkpoint it with the run; only the last k entries are ever read, so the caller may trim it
       (``del history[:-k]``). Without ``history``, ``average_last`` must be 0 or 1.
    3. w_i = posterior of the component with the smaller mean.

    Shapes: ``losses`` (N,) on any device. Returns ``(w, info)``: ``w`` (N,) in [0, 1] with ``losses``' float
    dtype (at least float32) and device; ``info`` holds ``"gmm"`` (:class:`GMMResult`), ``"clean_component"``
    (0-d int64 tensor) and ``"points"`` (the (N,) vector the GMM was fitted on). The labeled set is
    ``w > p_threshold``. ``backend``, ``max_iter``, ``tol``, ``reg_covar``, ``init`` and ``random_state`` go to
    :func:`fit_gmm`.
    """
    if losses.dim() != 1:
        raise ValueError(f"losses must have shape (N,), got {tuple(losses.shape)}")
    points = _average_with_history(_normalized_float(losses), history, average_last, "history")
    gmm = fit_gmm(points, n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, backend=backend,
                  init=init, random_state=random_state)
    clean = gmm.means[:, 0].argmin()
    return _component_posterior(gmm, clean, points.dtype), {"gmm": gmm, "clean_component": clean, "points": points}


# scikit-learn's GaussianMixture defaults, which TCL's noise model uses
SKLEARN_MAX_ITER = 100
SKLEARN_TOL = 1e-3
SKLEARN_REG_COVAR = 1e-6


def clean_probability_assignment(
    gamma: torch.Tensor,
    labels: torch.Tensor,
    *,
    per_class: bool = False,
    backend: str = "sklearn",
    max_iter: int = SKLEARN_MAX_ITER,
    tol: float = SKLEARN_TOL,
    reg_covar: float = SKLEARN_REG_COVAR,
    random_state: int = 0,
) -> tuple[torch.Tensor, dict]:
    """TCL clean confidence: wrong-label detection as "out of distribution" of the annotated component.

    Method: docs/methods/tcl.md, "Noise model" (steps 4-5).

    1. ``s_i = −γ(i, ỹ_i)``, min-max normalised over the whole training set (high = unlikely under its label).
    2. A 2-component 1-D GMM on ``s`` (``per_class=False``), or one per noisy class ``c`` on ``{s_i : ỹ_i = c}``
       (TCL's ``sep_gmm``; the values keep the global normalisation). Defaults are scikit-learn's
       (``max_iter`` 100, ``tol`` 1e-3, ``reg_covar`` 1e-6, k-means init, ``random_state`` 0), as TCL calls it.
    3. ``w_i`` = posterior of the component with the smaller mean.

    Shapes: ``gamma`` (N, C) posteriors, ``labels`` (N,) int64. Returns ``(w, info)``: ``w`` (N,) float32 in
    [0, 1]; ``info["points"]`` the normalised ``s``. With ``per_class``, a class with fewer than 2 samples (no
    2-component fit exists) takes the global GMM's posteriors (TCL would crash there).
    """
    if gamma.dim() != 2 or labels.shape != gamma.shape[:1]:
        raise ValueError(f"gamma must be (N, C) and labels (N,), got {tuple(gamma.shape)} and {tuple(labels.shape)}")
    labels = labels.to(device=gamma.device, dtype=torch.int64)
    s = _normalized_float(-gamma.gather(1, labels[:, None]).squeeze(1))
    fit = dict(n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, backend=backend,
               random_state=random_state)

    def posterior(points: torch.Tensor) -> torch.Tensor:
        gmm = fit_gmm(points, **fit)
        return _component_posterior(gmm, gmm.means[:, 0].argmin(), torch.float32)

    if not per_class:
        return posterior(s), {"points": s}
    w = torch.empty_like(s, dtype=torch.float32)
    small = []
    for c in range(gamma.shape[1]):
        rows = (labels == c).nonzero().squeeze(1)
        if len(rows) < 2:
            small.append(rows)
        else:
            w[rows] = posterior(s[rows])
    if small:
        rows = torch.cat(small)
        w[rows] = posterior(s)[rows]
    return w, {"points": s}


def clean_probability_2d(
    cls_loss: torch.Tensor,
    proto_loss: torch.Tensor,
    *,
    backend: str = "sklearn",
    cls_history: list[torch.Tensor] | None = None,
    average_last: int = 0,
    max_iter: int = GMM_MAX_ITER,
    tol: float = GMM_TOL,
    reg_covar: float = GMM_REG_COVAR,
    init: str | torch.Tensor | None = None,
    random_state: int = 0,
) -> tuple[torch.Tensor, dict]:
    """PLReMix / BPT-PLR clean probability: a full-covariance 2-component GMM on 2-D points.

    Method: docs/methods/plremix.md, "What it adds to DivideMix" (Division (2-D GMM)); the 5-epoch average of
    the classifier coordinate: docs/methods/bpt_plr.md, "What it changes in PLReMix" (Division (BP-GMM)).

    Each loss is min-max normalised on its own, giving points (ℓ̂_cls,i, ℓ̂_proto,i) ∈ [0, 1]². The clean component
    is the one whose mean is nearest the origin (smallest squared L2 norm), not the one with the smallest
    classifier loss alone; w_i is its posterior.

    ``cls_history`` / ``average_last``: as ``history`` in :func:`clean_probability_1d`, for the classifier
    coordinate only (BPT-PLR at 90 % noise averages the last 5 epochs; the prototype coordinate is always this
    epoch's). PLReMix does not average (``average_last=0``).

    Shapes: ``cls_loss``, ``proto_loss`` (N,) on the same device. Returns ``(w, info)``: ``w`` (N,) in [0, 1];
    ``info`` holds ``"gmm"``, ``"clean_component"`` and ``"points"`` ((N, 2), the fitted points). The GMM options
    go to :func:`fit_gmm`.
    """
    if cls_loss.dim() != 1 or cls_loss.shape != proto_loss.shape:
        raise ValueError(f"cls_loss and proto_loss must both have shape (N,), got {tuple(cls_loss.shape)} "
                         f"and {tuple(proto_loss.shape)}")
    cls_point = _average_with_history(_normalized_float(cls_loss), cls_history, average_last, "cls_history")
    proto_point = _normalized_float(proto_loss).to(cls_point)
    points = torch.stack([cls_point, proto_point], dim=1)
    gmm = fit_gmm(points, n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, backend=backend,
                  init=init, random_state=random_state)
    clean = gmm.means.square().sum(dim=1).argmin()
    return _component_posterior(gmm, clean, points.dtype), {"gmm": gmm, "clean_component": clean, "points": points}


# ----------------------------------------------------------------------------------------------------------------
# balanced partition
# ----------------------------------------------------------------------------------------------------------------


def balanced_partition(
    clean_prob: torch.Tensor, labels: torch.Tensor, num_classes: int, *, threshold: float = 0.5
) -> torch.Tensor:
    """BPT-PLR balanced labeled set: the same quota of most-probably-clean samples in every class.

    Method: docs/methods/bpt_plr.md, "What it changes in PLReMix" (Division (BP-GMM), the balanced partition).

    1. ρ = |{i : w_i > threshold}| / N, the fraction the plain threshold would select.
    2. q = ⌊ρN / C⌋ = ⌊|{w > threshold}| / C⌋ (computed in integers, so no rounding surprise).
    3. In each class c (by noisy label), the min(|I_c|, q) samples with the largest w are labeled; ties are
       broken by the lower index.

    The threshold mask itself is discarded: a crowded class loses high-w samples beyond q, a starved class takes
    low-w samples up to q, and |L| ≤ ρN. Co-divide as usual (net1 trains on the partition from net2's w).

    Shapes: ``clean_prob`` (N,) float, ``labels`` (N,) int64 in [0, C) (not checked: out-of-range labels fail
    inside ``index_add_``). Returns a bool mask (N,) on the same device. Vectorised, no host sync: a stable sort
    by w descending, then a stable sort by class, gives each sample its rank inside its class.
    """
    if clean_prob.dim() != 1 or labels.shape != clean_prob.shape:
        raise ValueError(f"clean_prob and labels must both have shape (N,), got {tuple(clean_prob.shape)} "
                         f"and {tuple(labels.shape)}")
    n = clean_prob.shape[0]
    device = clean_prob.device
    labels = labels.to(device=device, dtype=torch.int64)
    quota = (clean_prob > threshold).sum() // num_classes                       # 0-d int64, stays on device

    by_prob = torch.sort(clean_prob, descending=True, stable=True).indices     # w desc, lower index first on ties
    order = by_prob[torch.sort(labels[by_prob], stable=True).indices]          # grouped by class, w desc inside
    # class sizes by index_add (bincount would sync on CUDA to find its length)
    sizes = torch.zeros(num_classes, dtype=torch.int64, device=device).index_add_(
        0, labels, torch.ones_like(labels))
    class_start = torch.cumsum(sizes, dim=0) - sizes
    rank = torch.arange(n, device=device) - class_start[labels[order]]
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[order] = rank < quota
    return mask


def balanced_subset(labels: torch.Tensor, size: int, generator: torch.Generator | None = None, *,
                    num_classes: int | None = None) -> torch.Tensor:
    """Rows of a class-balanced random subset by given label: DivideMix's Clothing1M epoch sample.

    In one random order (``torch.randperm(N, generator)``) a row is taken while its class has fewer than
    ``size / C`` taken and fewer than ``size`` rows are taken in all (the reference's loop, ``class_num[label] <
    num_samples / 14``): so each class contributes ``min(n_c, ceil(size / C))`` rows and the total is at most
    ``size`` — less when small classes cannot fill their share (the reference does not top them up either).

    Args:
        labels: ``(N,)`` given labels in ``[0, C)``.
        num_classes: C, the problem's classes (the reference's fixed 14); default ``labels.max() + 1``. A class
            with no row still counts in the quota ``size / C``, as in the reference.
        size: the number of rows asked for, ``1 <= size``; ``size >= N`` still balances.
        generator: draws the order (the run's seeded generator, so a resumed run draws the same subsets).

    Returns:
        ``(n,)`` int64 row numbers, sorted (dataset order; a streamed split then reads its files in order).
    """
    n = len(labels)
    classes = num_classes if num_classes is not None else (int(labels.max()) + 1 if n else 0)
    order = torch.randperm(n, generator=generator, device=generator.device if generator is not None else "cpu")
    order = order.to(labels.device)
    lab = labels.index_select(0, order)
    # rank of each row among the earlier rows of its class in this order: a stable sort by class keeps the order
    by_class = torch.sort(lab, stable=True).indices
    counts = torch.bincount(lab, minlength=classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(by_class)
    rank[by_class] = torch.arange(n, device=labels.device) - starts.index_select(0, lab.index_select(0, by_class))
    quota = math.ceil(size / classes) if classes else 0
    taken = order[rank < quota][:size]
    return torch.sort(taken).values

