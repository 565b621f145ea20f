"""The anti-compression detector (two attention heads, one shared tail) and the one-stream Xception baseline."""
import torch
import torch.nn as nn
from timm.models.xception import Xception

from .xception import EMBEDDING_DIM, HEAD_CHANNELS, PRETRAINED_CFG, AttentionHead, XceptionTail, \
    imagenet_state_dict, load_pretrained_backbone

TAIL_BATCHES = ("per-stream", "joint")
HEADS = {"lq": "c40", "hq": "c23"}  # the detector's heads and the quality each scores: LQ for c40, HQ for c23


class AntiCompressionDetector(nn.Module):
    """HQ head for c23, LQ head for c40, one tail. A frame's score is the norm of its embedding
    (its distance from the fixed centre 0): small for real faces, large for fakes.

    tail_batch 'per-stream' runs the tail once per stream, as the released code did, so in training its
    BatchNorm layers normalise HQ and LQ features each with their own batch statistics; 'joint' runs it once
    on both streams concatenated (one larger batch, statistics of c23 and c40 mixed)."""

    def __init__(self, classifier=False, tail_batch="per-stream"):
        super().__init__()
        if tail_batch not in TAIL_BATCHES:
            raise ValueError(f"--tail-batch {tail_batch!r}: choose one of {', '.join(TAIL_BATCHES)}")
        self.hq_head = AttentionHead()
        self.lq_head = AttentionHead()
        self.tail = XceptionTail()
        self.tail_batch = tail_batch
        self.classifier = nn.Linear(EMBEDDING_DIM, 2) if classifier else None
        self.pretrained_cfg = dict(PRETRAINED_CFG)

    def head(self, quality):
        """The head that scores this quality (HEADS)."""
        return getattr(self, {q: h for h, q in HEADS.items()}[quality] + "_head")

    def forward(self, hq, lq):
        """Both streams of a batch of paired frames."""
        hq_att, hq_map, hq_feat = self.hq_head(hq)
        lq_att, lq_map, lq_feat = self.lq_head(lq)
        if self.tail_batch == "joint":
            hq_emb, lq_emb = self.tail(torch.cat([hq_att, lq_att])).chunk(2)
        else:
            hq_emb, lq_emb = self.tail(hq_att), self.tail(lq_att)
        out = {"hq_emb": hq_emb, "lq_emb": lq_emb, "hq_map": hq_map, "lq_map": lq_map,
               "hq_feat": hq_feat, "lq_feat": lq_feat}
        if self.classifier is not None:
            out["hq_logits"], out["lq_logits"] = self.classifier(torch.cat([hq_emb, lq_emb])).chunk(2)
        return out

    def embed(self, x, quality="c40"):
        """(embedding, attention map) of one stream, as test.py scores it."""
        att, attention, _ = self.head(quality)(x)
        return self.tail(att), attention

    def score(self, x, quality="c40"):
        emb, attention = self.embed(x, quality)
        return emb.float().norm(dim=1), attention

    def init_from(self, source):
        """ImageNet (or a local Xception file) into both heads and the tail; the classifier is dropped."""
        state = imagenet_state_dict(source)
        for part in (self.hq_head, self.lq_head, self.tail):
            load_pretrained_backbone(part, state, str(source))


class CompressionCritic(nn.Module):
    """Tells HQ from LQ head features (a WGAN critic: one unbounded score per sample, no sigmoid).
    No batch norm, as the gradient penalty needs per-sample gradients."""

    def __init__(self, channels=HEAD_CHANNELS, width=256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))

    def forward(self, features):
        return self.net(features).squeeze(1)


class XceptionBaseline(Xception):
    """FaceForensics++'s Xception baseline: one stream, two-way classifier, trained with cross-entropy."""

    def __init__(self):
        super().__init__(num_classes=2)
        self.pretrained_cfg = dict(PRETRAINED_CFG)

    def score(self, x, quality=None):
        """Probability of 'fake'; no attention map."""
        return self(x).float().softmax(dim=1)[:, 1], None

    def init_from(self, source):
        load_pretrained_backbone(self, imagenet_state_dict(source), str(source), own_layers=("fc.",))


def build_model(name, classifier=False, tail_batch="per-stream"):
    if name == "detector":
        return AntiCompressionDetector(classifier=classifier, tail_batch=tail_batch)
    if name == "xception":
        return XceptionBaseline()
    raise ValueError(f"unknown model {name!r}: use 'detector' or 'xception'")
