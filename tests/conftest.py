import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory):
    """A synthetic face/ tree (64 px crops, 3 frames a video) and its splits."""
    from forensics.synthetic import make_face_tree

    return make_face_tree(tmp_path_factory.mktemp("tree"), pairs=(2, 1, 1), frames=3, size=64)
