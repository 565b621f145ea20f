"""Frames of the face/ tree for training and testing.

Workers only decode PNGs into uint8 tensors; conversion to float, normalisation (mean = std = 0.5, as the
released code) and resizing of masks happen on the device in one batched step (see to_model_input).
"""
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
from torch.utils.data import Dataset

from . import ffpp

DATASETS = ffpp.METHODS + ("All",)


@dataclass(frozen=True)
class Frame:
    method: str
    video: str
    frame: int

    @property
    def label(self):
        return 0 if self.method == ffpp.REAL else 1


def _frame_numbers(folder):
    if not folder.is_dir():
        return set()
    return {int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit()}


def methods_of(dataset):
    if dataset not in DATASETS:
        raise ValueError(f"--dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    return ffpp.METHODS if dataset == "All" else (dataset,)


def index_frames(face_root, splits_dir, split, dataset, max_frames=270, qualities=("c23", "c40"),
                 need_masks=True, balance=False):
    """The frames of one split: for each real and fake video, its first max_frames frames that exist
    at every quality. A fake frame without its mask crop is an error, never a silent all-zero mask.
    With balance, real frames are repeated to match the number of fake frames (for All)."""
    face_root = Path(face_root)
    pairs = ffpp.read_split(splits_dir, split)
    frames = {ffpp.REAL: [], **{m: [] for m in methods_of(dataset)}}
    for method in frames:
        for video in ffpp.split_videos(pairs, method):
            numbers = set.intersection(*(_frame_numbers(ffpp.face_dir(face_root, method, q, video))
                                         for q in qualities))
            chosen = sorted(numbers)[:max_frames]
            if method != ffpp.REAL and need_masks and chosen:
                masks = _frame_numbers(ffpp.face_dir(face_root, method, ffpp.MASKS, video))
                lost = [n for n in chosen if n not in masks]
                if lost:
                    path = ffpp.face_dir(face_root, method, ffpp.MASKS, video) / f"{lost[0]}.png"
                    raise FileNotFoundError(
                        f"{path}: mask crop missing for {len(lost)} of {len(chosen)} frames of {method}/{video}. "
                        "Rerun create_faces_from_dlib_locs.py with the mask videos present.")
            frames[method] += [Frame(method, video, n) for n in chosen]
    fakes = [f for m in frames if m != ffpp.REAL for f in frames[m]]
    reals = frames[ffpp.REAL]
    if not fakes or not reals:
        missing = "fake" if not fakes else "real"
        raise ValueError(
            f"{face_root}: no {missing} frames for --dataset {dataset} in the {split} split of {splits_dir} "
            f"(looked in {face_root}/<real|Method>/{'|'.join(qualities)}/<video>/). "
            "Run create_faces_from_dlib_locs.py first, or check --face-root and --splits.")
    if balance and len(fakes) > len(reals):
        repeat = int(round(len(fakes) / len(reals)))
        reals = reals * repeat
    return reals + fakes


def _read(path, size, flags, interpolation, what):
    image = cv2.imread(str(path), flags)
    if image is None:
        raise OSError(f"{path}: cannot read this {what} (missing or corrupt); rerun create_faces_from_dlib_locs.py")
    if image.shape[0] != size or image.shape[1] != size:
        image = cv2.resize(image, (size, size), interpolation=interpolation)
    return image


def read_image(path, size):
    """RGB uint8 CHW tensor of side `size` (resized only when the crop has another size)."""
    image = _read(path, size, cv2.IMREAD_COLOR, cv2.INTER_LINEAR, "image")
    return torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)


def read_mask(path, size):
    return torch.from_numpy(_read(path, size, cv2.IMREAD_GRAYSCALE, cv2.INTER_AREA, "mask"))[None]


class FaceFrames(Dataset):
    """(image per quality..., mask, label, index) as uint8 tensors; real frames get an all-zero mask."""

    def __init__(self, face_root, frames, image_size=299, qualities=("c23", "c40"), masks=True):
        self.face_root = Path(face_root)
        self.frames = list(frames)
        self.size = image_size
        self.qualities = tuple(qualities)
        self.masks = masks

    def __len__(self):
        return len(self.frames)

    def path(self, frame, quality):
        return ffpp.face_dir(self.face_root, frame.method, quality, frame.video) / f"{frame.frame}.png"

    def __getitem__(self, i):
        frame = self.frames[i]
        images = [read_image(self.path(frame, q), self.size) for q in self.qualities]
        if not self.masks:
            mask = torch.zeros(1, 1, 1, dtype=torch.uint8)
        elif frame.label:
            mask = read_mask(self.path(frame, ffpp.MASKS), self.size)
        else:
            mask = torch.zeros(1, self.size, self.size, dtype=torch.uint8)
        return (*images, mask, frame.label, i)


def to_model_input(images, device, channels_last=True):
    """uint8 NCHW on the host to normalised float on the device: (x / 255 - 0.5) / 0.5."""
    x = images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class ReferenceFaceFrames(FaceFrames):
    """The released code's per-sample path: PIL decode, torchvision Resize, ToTensor and Normalize in the
    worker, floats through the loader. Kept for comparison (bench.py, --loader pil)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from torchvision import transforms

        self.transform = transforms.Compose([
            transforms.Resize((self.size, self.size)), transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3)])
        self.mask_transform = transforms.Compose([transforms.Resize((self.size, self.size)), transforms.ToTensor()])

    def __getitem__(self, i):
        from PIL import Image

        frame = self.frames[i]
        images = [self.transform(Image.open(self.path(frame, q)).convert("RGB")) for q in self.qualities]
        if self.masks and frame.label:
            mask = self.mask_transform(Image.open(self.path(frame, ffpp.MASKS)).convert("L")).mul(255)
        else:
            mask = torch.zeros(1, self.size, self.size)
        return (*images, mask, frame.label, i)


def reference_model_input(images, device, channels_last=False):
    """The reference loader's floats are already normalised; only move them."""
    x = images.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
