"""TCL: each block by hand (prototypes, posterior, wrong-label GMM, targets, entropy terms, the schedule, the heads,
the solarised strong view), the step's loss decreasing under SGD, a short run, exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from noisyclr.augment import build_view
from noisyclr.augment.contrastive import random_solarize
from noisyclr.config import TrainConfig, load_config
from noisyclr.engine import run_training
from noisyclr.errors import UserError
from noisyclr.losses import cross_supervised_targets, entropy, marginal_negative_entropy
from noisyclr.models import build_network
from noisyclr.prototypes import component_posterior, soft_prototypes
from noisyclr.schedules import learning_rate
from noisyclr.selection import clean_probability_assignment, minmax_normalize
from noisyclr.tracking import read_metrics
from tiny_runs import assert_same_resumed_run, build_method, tiny_run

TINY = tiny_run() + ["train.epochs=3", "method.warmup_epochs=2", "method.feat_dim=16", "method.knn_k=10",
                     "train.lr_warmup_epochs=1"]


def tiny(*extra):
    return load_config("tcl-digits-sym50", TINY + list(extra))


# ------------------------------------------------------------------------------------------------------------
# the noise model


def test_soft_prototypes_are_the_normalised_posterior_weighted_sums():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    mu = soft_prototypes(z, p)
    # class 0: 1·(1, 0) + 0.5·(0, 1) = (1, 0.5); class 1: 0.5·(0, 1) + (0.6, 0.8) = (0.6, 1.3)
    assert torch.allclose(mu[0], torch.tensor([1.0, 0.5]) / math.sqrt(1.25))
    assert torch.allclose(mu[1], torch.tensor([0.6, 1.3]) / math.sqrt(0.36 + 1.69))
    # the paper's normaliser Σ_i p_ik is a positive factor per row: the L2 normalisation removes it
    assert torch.allclose(soft_prototypes(z, p * torch.tensor([3.0, 0.2])), mu)


def test_component_posterior_is_a_softmax_of_cosines_over_tau():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mu = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gamma = component_posterior(z, mu, temperature=0.25)
    e = math.exp(4.0)
    assert torch.allclose(gamma, torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]]))
    assert torch.allclose(gamma.sum(1), torch.ones(2))


def _gamma_with_wrong_labels(n=200, c=4, wrong=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % c
    gamma = torch.full((n, c), 0.02)
    gamma[torch.arange(n), labels] = 0.85 + 0.1 * torch.rand(n, generator=g)  # confident in the annotated class
    noisy = torch.randperm(n, generator=g)[:wrong]
    gamma[noisy, labels[noisy]] = 0.05 + 0.1 * torch.rand(wrong, generator=g)  # unlikely under its label
    return gamma / gamma.sum(1, keepdim=True), labels, noisy


def test_wrong_label_gmm_flags_the_unlikely_annotated_component():
    gamma, labels, noisy = _gamma_with_wrong_labels()
    w, info = clean_probability_assignment(gamma, labels)
    clean = torch.ones(len(labels), dtype=torch.bool)
    clean[noisy] = False
    assert bool((w[clean] > 0.5).all()) and bool((w[~clean] < 0.5).all())
    # the statistic: −γ(i, ỹ_i) min-max normalised over the whole set
    s = minmax_normalize(-gamma[torch.arange(len(labels)), labels].double())
    assert torch.allclose(info["points"], s.to(info["points"].dtype))


def test_wrong_label_gmm_equals_scikit_learn_with_its_defaults():
    from sklearn.mixture import GaussianMixture

    gamma, labels, _ = _gamma_with_wrong_labels(seed=1)
    w, info = clean_probability_assignment(gamma, labels)
    s = info["points"].double().numpy()[:, None]
    gm = GaussianMixture(n_components=2, random_state=0).fit(s)  # TCL's call: scikit-learn defaults
    expected = gm.predict_proba(s)[:, int(np.argmin(gm.means_))]
    assert np.allclose(w.numpy(), expected, atol=1e-6)


def test_per_class_gmm_fits_each_noisy_class_on_the_global_normalisation():
    from sklearn.mixture import GaussianMixture

    gamma, labels, _ = _gamma_with_wrong_labels(seed=2)
    w, info = clean_probability_assignment(gamma, labels, per_class=True)
    s = info["points"].double().numpy()
    for c in range(4):
        rows = (labels == c).numpy()
        gm = GaussianMixture(n_components=2, random_state=0).fit(s[rows, None])
        expected = gm.predict_proba(s[rows, None])[:, int(np.argmin(gm.means_))]
        assert np.allclose(w.numpy()[rows], expected, atol=1e-6)
    global_w, _ = clean_probability_assignment(gamma, labels)
    assert not torch.allclose(w, global_w)  # a different fit, not the global one


def test_per_class_gmm_falls_back_to_the_global_fit_for_a_class_of_one():
    gamma, labels, _ = _gamma_with_wrong_labels(seed=3)
    labels = labels.clone()
    labels[labels == 3] = 2
    labels[0] = 3  # class 3 now holds one sample
    w, _ = clean_probability_assignment(gamma, labels, per_class=True)
    global_w, _ = clean_probability_assignment(gamma, labels)
    assert w[0] == global_w[0]


# ------------------------------------------------------------------------------------------------------------
# the training step's pieces


def test_cross_supervised_targets_by_hand():
    pa = torch.tensor([[0.6, 0.4]])
    pb = torch.tensor([[0.2, 0.8]])
    y = torch.tensor([[1.0, 0.0]])
    t_a, t_b, t0 = cross_supervised_targets(pa, pb, y, torch.tensor([0.5]), scale1=0.8, scale2=1.0)
    # a = 0.5·0.8 = 0.4: t_a = 0.4·y + 0.6·p_b, t_b = 0.4·y + 0.6·p_a; b = 0.5: t0 = 0.5·y + 0.5·(p_a + p_b)/2
    assert torch.allclose(t_a, torch.tensor([[0.4 + 0.12, 0.48]]))
    assert torch.allclose(t_b, torch.tensor([[0.4 + 0.36, 0.24]]))
    assert torch.allclose(t0, torch.tensor([[0.5 + 0.2, 0.3]]))
    # w = 0: pure cross-supervision; w = 1 with scales 1: the given label
    t_a, t_b, _ = cross_supervised_targets(pa, pb, y, torch.tensor([0.0]), 1.0, 1.0)
    assert torch.equal(t_a, pb) and torch.equal(t_b, pa)
    t_a, _, t0 = cross_supervised_targets(pa, pb, y, torch.tensor([1.0]), 1.0, 1.0)
    assert torch.equal(t_a, y) and torch.equal(t0, y)


def test_entropy_terms_by_hand():
    uniform = torch.zeros(3, 4)
    assert torch.allclose(entropy(uniform), torch.tensor(math.log(4)))
    assert torch.allclose(marginal_negative_entropy(uniform), torch.tensor(-math.log(4)))
    # two confident rows on different classes: each entropy ≈ 0, the marginal is (½, ½) → −log 2
    sure = torch.tensor([[30.0, 0.0], [0.0, 30.0]])
    assert float(entropy(sure)) < 1e-6
    assert torch.allclose(marginal_negative_entropy(sure), torch.tensor(-math.log(2)), atol=1e-6)
    # collapsed onto one class: the marginal term is at its maximum 0
    assert abs(float(marginal_negative_entropy(torch.tensor([[30.0, 0.0], [30.0, 0.0]])))) < 1e-6
    p = torch.softmax(torch.tensor([[1.0, 2.0, 0.0]]), 1)
    assert torch.allclose(entropy(torch.tensor([[1.0, 2.0, 0.0]]), reduction="none"), -(p * p.log()).sum(1))


def test_tcl_schedule_linear_scaling_warmup_and_the_offset_cosine():
    cfg = TrainConfig(epochs=200, batch_size=1024, lr=0.03, eta_min=0.0003, lr_reference_batch=256,
                      schedule="cosine", cosine_per_step=True, cosine_after_warmup=True, lr_warmup_epochs=20)
    steps = 48
    assert learning_rate(cfg, 10, 0, steps) == pytest.approx(0.12 * (10 + 1 / 48) / 20)  # linear from ~0
    assert learning_rate(cfg, 20, 0, steps) == pytest.approx(0.12)  # the cosine starts at the end of warm-up
    t = 110
    assert learning_rate(cfg, t, 0, steps) == pytest.approx(0.0012 + 0.5 * 0.1188 * (1 + math.cos(math.pi * 90 / 200)))
    last = learning_rate(cfg, 199, 47, steps)
    assert last == pytest.approx(0.0012 + 0.5 * 0.1188 * (1 + math.cos(math.pi * (199 + 47 / 48 - 20) / 200)))
    assert 0.004 < last < 0.0042  # the period is all 200 epochs: the rate ends above the floor


# ------------------------------------------------------------------------------------------------------------
# network and views


def test_tcl_heads_and_the_final_bn_backbone():
    net = build_network("preact_resnet18_bn", 10, proj_dim=256, proj_out_bn=True, classifier="mlp_bn", dropout=0.25,
                        width=8)
    kinds = [type(m) for m in net.classifier]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear, nn.BatchNorm1d]
    assert net.classifier[3].p == 0.25 and net.classifier[-1].num_features == 10  # BN on the logits
    assert [type(m) for m in net.projector] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
    net.train()
    out = net(torch.randn(6, 3, 32, 32), heads=("logits", "features", "proj"))
    assert out.logits.shape == (6, 10) and out.proj.shape == (6, 256)
    assert bool((out.features >= 0).all())  # BN → ReLU after the last stage, then the pool
    # in train mode the BN on the logits centres every class's logit over the batch
    assert torch.allclose(out.logits.mean(0), torch.zeros(10), atol=1e-5)
    plain = build_network("preact_resnet18", 10, width=8)
    assert plain.backbone.bn_final is None and isinstance(plain.classifier, nn.Linear)


def test_random_solarize_inverts_levels_at_or_above_128():
    x = torch.tensor([[[[0.0, 127.0, 128.0, 255.0]]]]).repeat(2, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_solarize(x, g, p=1.0)[0], torch.tensor([[[0.0, 127.0, 127.0, 0.0]]]))
    assert torch.equal(random_solarize(x, g, p=0.0), x)


def test_strong_solarize_view_is_seeded_and_normalised():
    view = build_view("strong_solarize", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), image_size=16)
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    a = view(x, torch.Generator().manual_seed(1))
    b = view(x, torch.Generator().manual_seed(1))
    c = view(x, torch.Generator().manual_seed(2))
    assert a.dtype == torch.float32 and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= -2.0 - 1e-5 and float(a.max()) <= 2.0 + 1e-5  # (x/255 − 0.5)/0.25


# ------------------------------------------------------------------------------------------------------------
# the method


def test_config_defaults_follow_the_published_configs():
    m = load_config("tcl-cifar10-sym90").method
    assert (m.warmup_epochs, m.feat_dim, m.temperature, m.mixup_alpha, m.dropout) == (20, 256, 0.25, 1.0, 0.25)
    assert m.sep_gmm is False and m.scale1 is None and m.scale2 is None and m.contrastive_weight == 0.25
    c100 = load_config("tcl-cifar100-sym90").method
    assert c100.sep_gmm is True and c100.scale2 == 1.0 and c100.scale1 is None
    t = load_config("tcl-cifar10-sym90").train
    assert learning_rate(t, 20, 0, 48) == pytest.approx(0.12) and t.weight_decay == 1e-3


def test_one_forward_of_six_batches_and_the_loss_decreases():
    method = build_method(tiny())
    ctx = method.ctx
    method.noise_model()
    batch = ctx.train.batch(torch.arange(16), method.views, ctx.generator)
    sizes = []
    hook = method.nets[0].classifier.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    from noisyclr.loop import Step

    first = method.step(Step(0, 0, batch=batch), warmup=False)
    hook.remove()
    assert sizes == [6 * 16]  # weak, 3 mixed, strong a, strong b: one encoder pass
    assert set(first.sums) == {"loss_ctr", "loss_cls", "loss_align", "loss_ent", "loss_ne"}
    method.nets[0].train()
    opt = torch.optim.SGD(method.nets[0].parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(12):
        g = torch.Generator().manual_seed(5)  # the same views and mixup draw every step
        ctx.generator.set_state(g.get_state())
        b = ctx.train.batch(torch.arange(16), method.views, ctx.generator)
        loss = method.step(Step(0, 0, batch=b), warmup=False).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5, losses


def test_short_run_logs_the_noise_model_and_writes_labels(tmp_path):
    run_training(tiny(), tmp_path)
    rows = read_metrics(tmp_path)
    assert [r["phase"] for r in rows] == ["warmup", "tcl", "tcl"]
    for r in rows:
        assert 0.0 <= r["rho_hat"] <= 1.0 and 0.0 <= r["knn_acc"] <= 1.0
        assert r["labeled_size"] == round(r["rho_hat"] * 128)
        for key in ("label_precision", "label_recall", "clean_auc", "loss_ctr", "loss_align", "train_acc"):
            assert key in r
    lines = (tmp_path / "labels.csv").read_text().splitlines()
    assert lines[0].startswith("index,given_label,clean_prob,predicted_label") and len(lines) == 129


def test_resume_is_bit_identical_including_the_noise_model(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run_training(tiny(), full)
    run_training(tiny(), part, stop_after_epoch=2)  # the checkpoint holds the noise model after epoch 2
    run_training(None, part, resume=True)
    assert_same_resumed_run(full, part, ("prototypes", "confidence"))


@pytest.mark.parametrize("override,word", [
    ("method.temperature=0", "method.temperature"),
    ("method.scale1=1.5", "method.scale1"),
    ("method.crop_scale=[0.9,0.2]", "method.crop_scale"),
    ("method.dropout=1", "method.dropout"),
])
def test_impossible_numbers_are_one_line_errors(override, word):
    with pytest.raises(UserError, match=word.replace(".", r"\.")):
        load_config("tcl-digits-sym50", [override])
