"""score_frames: scores and maps in dataset order across batches and worker processes."""
import numpy as np
import torch

from forensics.data import FaceFrames, index_frames, to_model_input
from forensics.scoring import score_frames


class MeanScorer(torch.nn.Module):
    """A score that differs from frame to frame: the mean pixel, and a corner of the image as the map."""

    def score(self, x, quality):
        return x.mean(dim=(1, 2, 3)), x[:, :1, :8, :8]


def test_scores_and_maps_in_frame_order_across_batches_and_workers(tiny_tree):
    face_root, splits = tiny_tree
    frames = index_frames(face_root, splits, "val", "All", need_masks=False)
    dataset = FaceFrames(face_root, frames, 64, ("c40",), masks=False)
    x = to_model_input(torch.stack([dataset[i][0] for i in range(len(frames))]), torch.device("cpu"), False)
    expected, corner = MeanScorer().score(x, "c40")
    model = MeanScorer().train()
    scores, maps = score_frames(model, face_root, frames, "c40", torch.device("cpu"), 64, batch_size=4,
                                workers=2, keep_maps=True)
    assert len(frames) > 8 and len(np.unique(expected.numpy())) == len(frames)
    assert scores.dtype == np.float64 and maps.dtype == np.float16 and model.training
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(maps, corner.numpy().astype(np.float16))
