"""The detector's losses. Each takes plain tensors, so a test can check it against its formula."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASK_TARGET_THRESHOLD = 0.2  # a mask pixel above this counts as manipulated
METRIC_REDUCTIONS = ("released", "mean")


def metric_loss(embedding, label, r1, r2, reduction, world=1):
    """Hinge around the fixed centre 0: real (label 0) within r1, fake (label 1) beyond r2, per sample
    h = (1 - y) max(0, d - r1) + y max(0, r2 - d), d = ||e||.

    'released': sum(h) / B^2 over a global batch of B, as the released MetricLoss (each hinge sum divided by
    the batch size, then their total again). Under DDP a process holds b = B / world samples and divides by
    b * B; DDP averages the gradients over the processes, so each sample weighs 1 / B^2 as on one GPU.
    'mean': mean(h), which weighs the metric terms B times more against the other losses."""
    d = embedding.float().norm(dim=1)
    y = label.float()
    hinge = (1 - y) * F.relu(d - r1) + y * F.relu(r2 - d)
    if reduction == "mean":
        return hinge.mean()
    if reduction == "released":
        return hinge.sum() / (hinge.numel() * hinge.numel() * world)
    raise ValueError(f"--metric-reduction {reduction!r}: choose one of {', '.join(METRIC_REDUCTIONS)}")


def pairing_loss(hq_embedding, lq_embedding):
    """Mean L2 distance between the HQ and LQ embeddings of the same frame."""
    return (hq_embedding.float() - lq_embedding.float()).norm(dim=1).mean()


def attention_transfer_loss(hq_map, lq_map):
    """Mean L2 distance between the per-sample L2-normalised maps."""
    hq = F.normalize(hq_map.float().flatten(1), dim=1)
    lq = F.normalize(lq_map.float().flatten(1), dim=1)
    return (hq - lq).norm(dim=1).mean()


def mask_target(mask, size):
    """Manipulation mask (uint8 0..255, Bx1xHxW) resized to the map and binarised at 0.2."""
    resized = F.interpolate(mask.float() / 255.0, size=size, mode="area")
    return (resized > MASK_TARGET_THRESHOLD).float()


def mask_loss(attention, target):
    """Binary cross-entropy of a map in [0, 1] against a binary target, computed in fp32 with
    autocast off: F.binary_cross_entropy is not allowed under autocast, and bf16 would round it."""
    with torch.autocast(attention.device.type, enabled=False):
        return F.binary_cross_entropy(attention.float(), target.float())


def classification_loss(logits, label):
    return F.cross_entropy(logits.float(), label.long())


def critic_loss(critic, hq_features, lq_features, gp_weight):
    """WGAN-GP critic loss: the critic scores HQ features high and LQ features low; the gradient
    penalty keeps it 1-Lipschitz on random interpolates."""
    hq, lq = hq_features.detach().float(), lq_features.detach().float()
    alpha = torch.rand(hq.shape[0], 1, 1, 1, device=hq.device)
    mixed = (alpha * hq + (1 - alpha) * lq).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return critic(lq).mean() - critic(hq).mean() + gp_weight * penalty


def adversarial_loss(critic, hq_features, lq_features):
    """What the heads minimise to fool the critic: its Wasserstein estimate between HQ and LQ features."""
    return critic(hq_features.float()).mean() - critic(lq_features.float()).mean()


@dataclass
class LossWeights:
    """Loss weights and the metric reduction, as config.json's loss_weights records them. Their defaults are
    TrainConfig's (forensics.training), which builds this: TrainConfig().loss_weights() is the released
    script's (the classifier and the critic, not in it, are off)."""
    r1: float
    r2: float
    metric: float
    pairing: float
    attention: float
    mask: float
    classifier: float
    adversarial: float
    gradient_penalty: float
    metric_reduction: str


def detector_losses(out, label, mask, w: LossWeights, critic=None, world=1):
    """All the heads' and tail's terms for one batch of the detector's forward output (on one of `world`
    DDP processes). mask may be None when w.mask is 0: the mask terms are then left out."""
    terms = {
        "metric_hq": w.metric * metric_loss(out["hq_emb"], label, w.r1, w.r2, w.metric_reduction, world),
        "metric_lq": w.metric * metric_loss(out["lq_emb"], label, w.r1, w.r2, w.metric_reduction, world),
        "pairing": w.pairing * pairing_loss(out["hq_emb"], out["lq_emb"]),
        "attention": w.attention * attention_transfer_loss(out["hq_map"], out["lq_map"]),
    }
    if w.mask:
        if mask is None:
            raise ValueError("the mask loss is on (mask weight > 0) but the batch holds no masks")
        target = mask_target(mask, out["hq_map"].shape[-2:])
        terms["mask_hq"] = w.mask * mask_loss(out["hq_map"], target)
        terms["mask_lq"] = w.mask * mask_loss(out["lq_map"], target)
    if w.classifier and "hq_logits" in out:
        terms["cls_hq"] = w.classifier * classification_loss(out["hq_logits"], label)
        terms["cls_lq"] = w.classifier * classification_loss(out["lq_logits"], label)
    if w.adversarial and critic is not None:
        terms["adversarial"] = w.adversarial * adversarial_loss(critic, out["hq_feat"], out["lq_feat"])
    return sum(terms.values()), terms
