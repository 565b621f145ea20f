"""score_frames: scores, maps and masks in frame order across batches and worker processes."""
import numpy as np
import torch

from forensics.data import FaceFrames, collate, index_frames
from forensics.losses import mask_target
from forensics.scoring import ScoreOptions, score_frames


class MeanScorer(torch.nn.Module):
    """A score that differs from frame to frame: the mean pixel, and a corner of the image as the map."""

    def score(self, x, quality):
        return x.mean(dim=(1, 2, 3)), x[:, :1, :8, :8]


def test_scores_maps_and_masks_in_frame_order_across_batches_and_workers(tiny_tree):
    face_root, splits = tiny_tree
    frames = index_frames(face_root, splits, "val", "All", need_masks=False)
    dataset = FaceFrames(face_root, frames, 64, ("c40",), masks=True)
    batch = collate([dataset[i] for i in range(len(frames))]).to(torch.device("cpu"))
    expected, corner = MeanScorer().score(batch.images["c40"], "c40")
    model = MeanScorer().train()
    scores, maps, masks = score_frames(model, face_root, frames, "c40", torch.device("cpu"),
                                       ScoreOptions(image_size=64, batch_size=4, workers=2), keep_maps=True,
                                       keep_masks=True)
    assert len(frames) > 8 and len(np.unique(expected.numpy())) == len(frames)
    assert scores.dtype == np.float64 and maps.dtype == np.float16 and model.training
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(maps, corner[:, 0].numpy().astype(np.float16))
    target = mask_target(batch.mask, (8, 8))[:, 0].numpy()
    labels = np.array([f.label for f in frames])
    assert masks.dtype == np.uint8 and np.array_equal(masks, target) and not masks[labels == 0].any()
    assert masks[labels == 1].any()


def test_a_batch_is_normalised_on_the_device_and_has_no_mask_unless_read(tiny_tree):
    face_root, splits = tiny_tree
    frames = index_frames(face_root, splits, "val", "All", need_masks=False)[:3]
    fast = collate([FaceFrames(face_root, frames, 64, masks=False)[i] for i in range(3)])
    assert fast.mask is None and fast.images["c23"].dtype == torch.uint8 and fast.label.tolist() == [0, 0, 0]
    on_device = fast.to(torch.device("cpu"))
    expected = fast.images["c23"].float() / 255 * 2 - 1
    torch.testing.assert_close(on_device.images["c23"], expected)
    pil = collate([FaceFrames(face_root, frames, 64, masks=True, decoder="pil")[i] for i in range(3)])
    assert pil.images["c40"].dtype == torch.float32 and pil.mask.shape == (3, 1, 64, 64)
    # the released PIL path and the fast path decode the same pixels
    torch.testing.assert_close(pil.to(torch.device("cpu")).images["c23"], expected, atol=1e-6, rtol=0)
