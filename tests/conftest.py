import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))


def randomize_bn(module):
    """Non-trivial running statistics, so that a lost buffer changes a model's output."""
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory):
    """A synthetic face/ tree (64 px crops, 3 frames a video) and its splits."""
    from demokit.synthetic import make_face_tree

    return make_face_tree(tmp_path_factory.mktemp("tree"), pairs=(2, 1, 1), frames=3, size=64)
