"""Each loss on hand-made tensors against its formula."""
import dataclasses
import math

import pytest
import torch

from forensics import losses
from forensics.training import TrainConfig
from models import CompressionCritic


def test_metric_loss_by_hand():
    # norms 0.005 (real, inside r1), 3 (real), 20 (fake, beyond r2), 4 (fake)
    emb = torch.tensor([[0.003, 0.004], [3.0, 0.0], [12.0, 16.0], [0.0, 4.0]])
    label = torch.tensor([0, 0, 1, 1])
    hinges = 0 + (3 - 0.01) + 0 + (18 - 4)
    assert losses.metric_loss(emb, label, r1=0.01, r2=18, reduction="released").item() == pytest.approx(
        hinges / 16)  # released: / B^2
    assert losses.metric_loss(emb, label, r1=0.01, r2=18, reduction="mean").item() == pytest.approx(hinges / 4)


def test_pairing_loss_by_hand():
    hq = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    lq = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    assert losses.pairing_loss(hq, lq).item() == pytest.approx(2.5)


def test_attention_transfer_by_hand():
    hq = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    lq = torch.tensor([[[[0.0, 2.0], [0.0, 0.0]]], [[[2.0, 2.0], [2.0, 2.0]]]])
    # sample 1: unit vectors e1 and e2, distance sqrt(2); sample 2: the same direction, 0
    assert losses.attention_transfer_loss(hq, lq).item() == pytest.approx(math.sqrt(2) / 2)


def test_mask_target_resizes_and_binarises_at_0_2():
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    mask[0, 0, 0, 0] = 255            # top-left 2x2 cell averages 0.25 -> 1
    mask[0, 0, 2:, 2:] = 51           # bottom-right cell 0.2 -> 0 (not above the threshold)
    target = losses.mask_target(mask, (2, 2))
    assert target.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_mask_loss_is_bce_and_safe_under_bf16_autocast():
    p = torch.tensor([[[[0.9, 0.2]]]])
    y = torch.tensor([[[[1.0, 0.0]]]])
    expected = -(math.log(0.9) + math.log(0.8)) / 2
    assert losses.mask_loss(p, y).item() == pytest.approx(expected, rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert losses.mask_loss(p.bfloat16(), y).item() == pytest.approx(expected, rel=1e-2)
        saturated = torch.ones(1, 1, 2, 2, dtype=torch.bfloat16)
        assert math.isfinite(losses.mask_loss(saturated, torch.zeros(1, 1, 2, 2)).item())


def test_classification_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    label = torch.tensor([0, 1])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.e / (1 + math.e))) / 2
    assert losses.classification_loss(logits, label).item() == pytest.approx(expected)


class _Linear(torch.nn.Module):
    """A critic whose score is w . x, so every term is known in closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1)


def test_critic_and_adversarial_losses_by_hand():
    w = torch.tensor([3.0, 4.0])                       # |grad| = 5 everywhere -> penalty (5 - 1)^2 = 16
    critic = _Linear(w)
    hq = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 2, 1, 1)
    lq = torch.tensor([[0.0, 0.0], [1.0, 1.0]]).view(2, 2, 1, 1)
    d_hq, d_lq = (3 + 4) / 2, (0 + 7) / 2
    assert losses.critic_loss(critic, hq, lq, gp_weight=10).item() == pytest.approx(d_lq - d_hq + 10 * 16)
    assert losses.adversarial_loss(critic, hq, lq).item() == pytest.approx(d_hq - d_lq)


def test_critic_runs_on_head_features():
    critic = CompressionCritic()
    feats = torch.randn(3, 728, 19, 19)
    assert critic(feats).shape == (3,)
    assert math.isfinite(losses.critic_loss(critic, feats, feats + 1, gp_weight=10).item())


def test_detector_losses_sum_the_weighted_terms():
    torch.manual_seed(0)
    out = {"hq_emb": torch.randn(4, 8), "lq_emb": torch.randn(4, 8),
           "hq_map": torch.rand(4, 1, 3, 3), "lq_map": torch.rand(4, 1, 3, 3)}
    label = torch.tensor([0, 1, 0, 1])
    mask = (torch.rand(4, 1, 12, 12) * 255).to(torch.uint8)
    w = dataclasses.replace(TrainConfig().loss_weights(), pairing=0.2, attention=0.5, mask=2.0)
    total, terms = losses.detector_losses(out, label, mask, w)
    target = losses.mask_target(mask, (3, 3))
    assert terms["pairing"].item() == pytest.approx(0.2 * losses.pairing_loss(out["hq_emb"], out["lq_emb"]).item())
    assert terms["mask_lq"].item() == pytest.approx(2.0 * losses.mask_loss(out["lq_map"], target).item())
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()))


def test_detector_losses_without_the_mask_term_need_no_masks():
    out = {"hq_emb": torch.randn(4, 8), "lq_emb": torch.randn(4, 8),
           "hq_map": torch.rand(4, 1, 3, 3), "lq_map": torch.rand(4, 1, 3, 3)}
    label = torch.tensor([0, 1, 0, 1])
    total, terms = losses.detector_losses(out, label, None, TrainConfig(mask_weight=0.0).loss_weights())
    assert set(terms) == {"metric_hq", "metric_lq", "pairing", "attention"}
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()))
    with pytest.raises(ValueError, match="no masks"):
        losses.detector_losses(out, label, None, TrainConfig().loss_weights())


def _released_total(out, label, target):
    """The released training loss, transcribed from its formulas: each metric term sums the real hinges
    max(0, d - 0.01) and the fake hinges max(0, 18 - d) over the batch, divides each sum by the batch size
    B and then their total by B again; pairing 0.2 * sum ||e_HQ - e_LQ|| / B; attention transfer
    sum ||m_HQ/||m_HQ|| - m_LQ/||m_LQ|||| / B; the mask BCE a mean over every map pixel, for each head."""
    batch = label.numel()

    def metric(embedding):
        d = embedding.norm(dim=1)
        real, fake = d[label == 0] - 0.01, 18.0 - d[label == 1]
        return (real[real > 0].sum() / batch + fake[fake > 0].sum() / batch) / batch

    def bce(p):
        return -(target * p.log() + (1 - target) * (1 - p).log()).mean()

    hq_maps, lq_maps = out["hq_map"].flatten(1), out["lq_map"].flatten(1)
    attention = (hq_maps / hq_maps.norm(dim=1, keepdim=True) - lq_maps / lq_maps.norm(dim=1, keepdim=True))
    return {"metric_hq": metric(out["hq_emb"]), "metric_lq": metric(out["lq_emb"]),
            "pairing": 0.2 * (out["hq_emb"] - out["lq_emb"]).norm(dim=1).sum() / batch,
            "attention": attention.norm(dim=1).sum() / batch,
            "mask_hq": bce(out["hq_map"]), "mask_lq": bce(out["lq_map"])}


def _batch_of(size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    out = {"hq_emb": 6 * torch.randn(size, 2048, generator=generator) / 45,
           "lq_emb": 6 * torch.randn(size, 2048, generator=generator) / 45,
           "hq_map": torch.rand(size, 1, 19, 19, generator=generator) * 0.98 + 0.01,
           "lq_map": torch.rand(size, 1, 19, 19, generator=generator) * 0.98 + 0.01}
    label = torch.arange(size) % 2
    mask = (torch.rand(size, 1, 299, 299, generator=generator) * 255).to(torch.uint8) * label[:, None, None, None]
    return out, label.to(torch.uint8), mask.to(torch.uint8)


def test_default_losses_equal_the_released_formulas_term_by_term():
    out, label, mask = _batch_of(64)
    total, terms = losses.detector_losses(out, label, mask, TrainConfig().loss_weights())
    expected = _released_total(out, label.long(), losses.mask_target(mask, (19, 19)))
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5), name
    assert total.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)
    # --metric-reduction mean weighs each metric term by the batch size (64) more
    mean = TrainConfig(metric_reduction="mean").loss_weights()
    _, mean_terms = losses.detector_losses(out, label, mask, mean)
    assert mean_terms["metric_lq"].item() == pytest.approx(64 * expected["metric_lq"].item(), rel=1e-5)
    assert mean_terms["pairing"].item() == pytest.approx(expected["pairing"].item(), rel=1e-6)


def test_released_metric_scale_is_the_same_under_ddp():
    # two processes of 8 each: DDP averages their gradients, i.e. the mean of their losses
    out, label, _ = _batch_of(16, seed=1)
    embedding = out["hq_emb"].requires_grad_(True)
    whole = losses.metric_loss(embedding, label, 0.01, 18.0, "released")
    halves = [losses.metric_loss(embedding[i:i + 8], label[i:i + 8], 0.01, 18.0, "released", world=2) for i in (0, 8)]
    averaged = (halves[0] + halves[1]) / 2
    assert averaged.item() == pytest.approx(whole.item(), rel=1e-6)
    grad_whole, = torch.autograd.grad(whole, embedding)
    grad_ddp, = torch.autograd.grad(averaged, embedding)
    torch.testing.assert_close(grad_ddp, grad_whole)
    with pytest.raises(ValueError, match="--metric-reduction 'sum'"):
        losses.metric_loss(embedding, label, 0.01, 18.0, reduction="sum")
