"""Each loss on hand-made tensors against its formula."""
import math

import pytest
import torch

from forensics import losses
from models import CompressionCritic


def test_metric_loss_by_hand():
    # norms 0.005 (real, inside r1), 3 (real), 20 (fake, beyond r2), 4 (fake)
    emb = torch.tensor([[0.003, 0.004], [3.0, 0.0], [12.0, 16.0], [0.0, 4.0]])
    label = torch.tensor([0, 0, 1, 1])
    expected = (0 + (3 - 0.01) + 0 + (18 - 4)) / 4
    assert losses.metric_loss(emb, label, r1=0.01, r2=18).item() == pytest.approx(expected)


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
    assert math.isfinite(losses.critic_loss(critic, feats, feats + 1).item())


def test_detector_losses_sum_the_weighted_terms():
    torch.manual_seed(0)
    out = {"hq_emb": torch.randn(4, 8), "lq_emb": torch.randn(4, 8),
           "hq_map": torch.rand(4, 1, 3, 3), "lq_map": torch.rand(4, 1, 3, 3)}
    label = torch.tensor([0, 1, 0, 1])
    mask = (torch.rand(4, 1, 12, 12) * 255).to(torch.uint8)
    w = losses.LossWeights(pairing=0.2, attention=0.5, mask=2.0)
    total, terms = losses.detector_losses(out, label, mask, w)
    target = losses.mask_target(mask, (3, 3))
    assert terms["pairing"].item() == pytest.approx(0.2 * losses.pairing_loss(out["hq_emb"], out["lq_emb"]).item())
    assert terms["mask_lq"].item() == pytest.approx(2.0 * losses.mask_loss(out["lq_map"], target).item())
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()))
