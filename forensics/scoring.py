"""Scoring frames with a trained model: shared by train.py's validation and test.py."""
import contextlib

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data import FaceFrames, to_model_input


def autocast(device, precision):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_loader(dataset, batch_size, workers, shuffle=False, sampler=None, drop_last=False, device=None):
    cuda = device is not None and device.type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=cuda, drop_last=drop_last,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)


@torch.no_grad()
def score_frames(model, face_root, frames, quality, device, image_size=299, batch_size=128, workers=0,
                 precision="fp32", channels_last=False, keep_maps=False, progress=False):
    """Score of every frame (distance from the centre, or the baseline's fake probability), in order,
    and, with keep_maps, the attention maps as a float16 array."""
    dataset = FaceFrames(face_root, frames, image_size, qualities=(quality,), masks=False)
    loader = make_loader(dataset, batch_size, workers, device=device)
    was_training = model.training
    model.eval()
    scores, maps = np.empty(len(dataset), np.float64), []
    try:
        for images, _, _, index in tqdm(loader, desc=f"score {quality}", disable=not progress, leave=False):
            with autocast(device, precision):
                score, attention = model.score(to_model_input(images, device, channels_last), quality)
            scores[index.numpy()] = score.float().cpu().numpy()
            if keep_maps and attention is not None:
                maps.append(attention.float().cpu().numpy().astype(np.float16))
    finally:
        model.train(was_training)
    return scores, (np.concatenate(maps) if maps else None)
