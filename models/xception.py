"""Xception cut after block7: a head (entry flow and four middle blocks, 728x19x19 at 299 px) and a tail
(the rest, to a 2048-d embedding). Layers come from timm's legacy Xception, so parameter names are those of
Cadene's Xception and of the paper's released checkpoints (conv1, block1.rep.0.pointwise, ..., bn4).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.xception import SeparableConv2d, Xception

HEAD_LAYERS = ("conv1", "bn1", "conv2", "bn2") + tuple(f"block{i}" for i in range(1, 8))
TAIL_LAYERS = tuple(f"block{i}" for i in range(8, 13)) + ("conv3", "bn3", "conv4", "bn4")
HEAD_CHANNELS = 728
EMBEDDING_DIM = 2048
INPUT_SIZE = 299  # the paper's crop side, Xception's own
MEAN = STD = 0.5  # every channel: RGB in [0, 1] to [-1, 1], the released transforms.Normalize([0.5] * 3, [0.5] * 3)
# What a network takes, named as timm's pretrained_cfg (legacy_xception's says the same). Each model carries a
# copy; a trained run's own crop side replaces input_size when it is loaded (runs.load_model).
PRETRAINED_CFG = {"input_size": (3, INPUT_SIZE, INPUT_SIZE), "mean": (MEAN,) * 3, "std": (STD,) * 3}


def input_size(model):
    """The side of the square image the model takes: its pretrained_cfg's."""
    return model.pretrained_cfg["input_size"][-1]


def released_init(module):
    """The released code's initialisation, applied before any pretrained weights: every Conv2d weight from
    normal(0, sqrt(2 / (k * k * out_channels))), every BatchNorm weight 1 and bias 0. timm's Xception layers
    are drawn from the same distribution already; the regression map is not, hence this."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def _take_layers(module, names):
    backbone = Xception(num_classes=0)
    for name in names:
        setattr(module, name, getattr(backbone, name))


class XceptionHead(nn.Module):
    """Entry flow and block4..block7 of Xception."""

    def __init__(self):
        super().__init__()
        _take_layers(self, HEAD_LAYERS)
        released_init(self)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        for i in range(1, 8):
            x = getattr(self, f"block{i}")(x)
        return x


class RegressionMap(nn.Module):
    """A one-channel attention map in [0, 1], regressed against the manipulation mask.

    The sigmoid runs in fp32 so that the mask BCE stays exact under bf16 autocast.
    """

    def __init__(self, channels=HEAD_CHANNELS):
        super().__init__()
        self.c = released_init(SeparableConv2d(channels, 1, kernel_size=3, stride=1, padding=1))

    def forward(self, x):
        return torch.sigmoid(self.c(x).float())


class AttentionHead(XceptionHead):
    """A head with its regression map; returns (features * map, map, features)."""

    def __init__(self):
        super().__init__()
        self.map = RegressionMap(HEAD_CHANNELS)

    def forward(self, x):
        features = super().forward(x)
        attention = self.map(features)
        return features * attention.to(features.dtype), attention, features


class XceptionTail(nn.Module):
    """block8..block12 and the exit flow; returns the 2048-d globally pooled embedding."""

    def __init__(self):
        super().__init__()
        _take_layers(self, TAIL_LAYERS)
        released_init(self)

    def forward(self, x):
        for i in range(8, 13):
            x = getattr(self, f"block{i}")(x)
        x = F.relu(self.bn3(self.conv3(x)), inplace=True)
        x = F.relu(self.bn4(self.conv4(x)), inplace=True)
        return x.mean(dim=(2, 3))


def imagenet_state_dict(source):
    """ImageNet Xception weights with Cadene/timm names: 'imagenet' through timm (needs a network
    the first time), or a local Cadene or timm Xception file."""
    from .checkpoints import CheckpointError, read_state_dict

    if source == "imagenet":
        import timm

        try:
            return timm.create_model("legacy_xception", pretrained=True).state_dict()
        except Exception as e:
            raise CheckpointError(
                f"--pretrained imagenet: timm could not fetch the ImageNet Xception weights ({e}). "
                "Without a network, pass --pretrained PATH to a local Cadene or timm Xception file, "
                "or --pretrained none.") from None
    state = read_state_dict(source)
    # Cadene's original file stores pointwise convolutions as 2-d matrices.
    return {k: (v[:, :, None, None] if "pointwise" in k and v.dim() == 2 else v) for k, v in state.items()}


def load_pretrained_backbone(module, state, source="pretrained weights", own_layers=("map.",)):
    """Copy every backbone tensor the module has from an Xception state dict; the ImageNet classifier
    is ignored and the module's own layers (the regression map, a new classifier) keep their init."""
    own = module.state_dict()
    wanted = {k for k in own if not k.startswith(own_layers)}
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        raise ValueError(f"{source}: not an Xception state dict: missing {len(missing)} tensors "
                         f"(first: {missing[0]}). Pass a Cadene or timm legacy Xception file.")
    bad = [k for k in wanted if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        k = sorted(bad)[0]
        raise ValueError(f"{source}: tensor {k} has shape {tuple(state[k].shape)}, "
                         f"expected {tuple(own[k].shape)}; this is not a legacy Xception checkpoint")
    module.load_state_dict({k: state[k] for k in wanted}, strict=False)
