import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def load_script(name):
    """A top-level script as a module, to call its main() in-process. By path: the name 'test' would
    otherwise be the standard library's test package. Only tests do this; scripts never import scripts."""
    module_name = f"script_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / f"{name}.py")
        sys.modules[module_name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[module_name])
    return sys.modules[module_name]


def astronaut():
    """scikit-image's astronaut as BGR (512 px; dlib's HOG finds her face, about 105 px wide)."""
    import cv2
    from skimage.data import astronaut as image

    return cv2.cvtColor(image(), cv2.COLOR_RGB2BGR)


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


@pytest.fixture(scope="session")
def one_step_run(tiny_tree, tmp_path_factory):
    """A detector trained for one step at 64 px by train.py: a run folder with config, history and best."""
    face_root, splits = tiny_tree
    out = tmp_path_factory.mktemp("run")
    load_script("train").main(["--face-root", str(face_root), "--splits", str(splits), "--out", str(out),
                               "--pretrained", "none", "--image-size", "64", "--batch-size", "4", "--workers", "0",
                               "--epochs", "1", "--max-steps", "1", "--device", "cpu"])
    return out
