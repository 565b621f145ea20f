"""Frames of the face/ tree for training and testing: the frame index, the dataset, one loader builder and
the one step that moves a batch to the device.

Workers only decode PNGs into uint8 tensors; conversion to float and normalisation (the networks' mean and
std, models.PRETRAINED_CFG: 0.5 and 0.5, as the released code) happen on the device in one batched step
(Batch.to). The released code's per-sample
PIL path is kept behind decoder="pil" for comparison: its batches arrive normalised already. A crop folder
may be packed (forensics/packed.py) in place of its PNGs: everything here reads either, to the same pixels.
"""
import json
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torch.utils.data.distributed import DistributedSampler

from models.xception import MEAN, PRETRAINED_CFG, STD

from . import ffpp, packed
from .fileio import imread
from .manifest import DONE_MARKER

DECODERS = ("fast", "pil")  # fast: uint8 PNG decode in the workers; pil: the released code's path


@dataclass(frozen=True)
class Frame:
    method: str
    video: str
    frame: int

    @property
    def label(self):
        return 0 if self.method == ffpp.REAL else 1


MAX_BAD_SHARE = 0.01  # more crops than this share unreadable stops a run: the tree is damaged, not one crop


class DataError(ValueError):
    """The face tree cannot give the run that was asked for; the message says what is wrong and what to do."""


class EmptySplit(DataError):
    """A split without real or without fake frames: its file lists no videos, or the face tree has no usable
    crops of them (test.py can go on without the validation split)."""


def frame_numbers(folder):
    """The frame numbers of a crop folder's crops, PNG or packed (a pack whose list cannot be read: none)."""
    if not folder.is_dir():
        return set()
    if packed.is_packed(folder):
        try:
            return set(packed.read_frames(folder).tolist())
        except packed.PackError:
            return set()
    return {int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit()}


def crop_path(face_root, frame, quality):
    """The file that holds a frame's crop at a quality: its PNG, or its folder's pack."""
    folder = ffpp.face_dir(face_root, frame.method, quality, frame.video)
    return folder / ffpp.PACKED_CROPS if packed.is_packed(folder) else folder / f"{frame.frame}.png"


def _marker(folder):
    """The folder's .done.json (create_faces_from_dlib_locs.py) as a dict, {} without a readable one."""
    try:
        done = json.loads((folder / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return done if isinstance(done, dict) else {}


def _recorded_sizes(folder):
    """{frame: byte size} of a PNG folder from its .done.json, or {} without one."""
    try:
        done = _marker(folder)
        return {int(f): int(b) for f, b in zip(done["frames"], done["bytes"])}
    except (ValueError, KeyError, TypeError):
        return {}


def _damage(path, recorded, verify):
    """Why the crop at path cannot be used, or None: missing, empty, not the size its folder's marker recorded
    (truncated or replaced since), or, with verify, not decodable."""
    try:
        size = path.stat().st_size
    except OSError:
        return "missing"
    if size == 0:
        return "empty"
    if recorded is not None and size != recorded:
        return f"{size} bytes, its folder's {DONE_MARKER} recorded {recorded}"
    if verify and imread(path, cv2.IMREAD_UNCHANGED) is None:
        return "does not decode"
    return None


class _Index:
    """What index_frames found besides the frames: the crops it left out and the changes of the experiment."""

    def __init__(self, verify):
        self.verify = verify
        self.damaged = []  # (path, why)
        self.lacking = {}  # quality -> first crop folder missing where the video has crops at another quality
        self.warnings = []
        self.checked = 0

    def frame_numbers(self, folder):
        """frame_numbers(folder); a pack whose frame list cannot be read lends its marker's (usable() then
        leaves them out, naming the file) or, without a marker, is recorded as damaged."""
        found = frame_numbers(folder)
        if found or not packed.is_packed(folder):
            return found
        recorded = _marker(folder).get("frames")
        if isinstance(recorded, list) and all(isinstance(n, int) for n in recorded):
            return set(recorded)
        self.damaged.append(packed.damage(folder))
        return set()

    def usable(self, folders, numbers):
        """The frames in numbers whose crop in every folder is sound; the others are recorded as damaged. A pack
        is checked as a whole: when it is damaged, every frame it holds is."""
        bad, paths = {}, []
        for folder in folders:
            if packed.is_packed(folder):
                problem = packed.damage(folder, folder.parent.name == ffpp.MASKS, _marker(folder).get("pack"),
                                        self.verify)
                for n in numbers if problem else ():
                    bad.setdefault(n, problem)
            else:
                recorded = _recorded_sizes(folder)
                paths += [(n, folder / f"{n}.png", recorded.get(n)) for n in numbers]
        self.checked += len(numbers)
        if self.verify:
            with ThreadPoolExecutor(min(32, os.cpu_count() or 1)) as pool:  # OpenCV decodes without the GIL
                why = list(pool.map(lambda item: _damage(item[1], item[2], True), paths))
        else:
            why = [_damage(path, recorded, False) for _, path, recorded in paths]
        for (n, path, _), reason in zip(paths, why):
            if reason:
                bad.setdefault(n, (path, reason))
        self.damaged += [bad[n] for n in numbers if n in bad]
        return [n for n in numbers if n not in bad]


def index_frames(face_root, splits_dir, split, dataset, max_frames=270, qualities=ffpp.COMPRESSIONS,
                 need_masks=True, balance=False, strict=False, verify=False):
    """The frames of one split: for each real and fake video, its first max_frames frames that exist
    at every quality. A fake frame without its mask crop is an error, never a silent all-zero mask.
    With balance, real frames are repeated to match the number of fake frames (for All).

    Checked before any step, so that a run does not die halfway: a crop that is missing, empty or not of the
    size its folder's .done.json recorded (verify: that does not decode) leaves its frame out with one skip
    line naming it; a damaged pack (unreadable, truncated, not of its recorded size; verify: not of its recorded
    SHA-1) leaves out every frame it holds, with one line. More than MAX_BAD_SHARE of such frames stop the run.
    A video or a whole method left out at some quality changes the experiment: a warning line says so (strict:
    a DataError)."""
    face_root = Path(face_root)
    pairs = ffpp.read_split(splits_dir, split)
    if not pairs:
        raise EmptySplit(f"{Path(splits_dir) / f'{split}.json'}: the {split} split lists no videos; use FF++'s "
                         f"split files (python -m forensics.ffpp --out DIR) or pass another --splits")
    frames = {ffpp.REAL: [], **{m: [] for m in ffpp.methods_of(dataset)}}
    index = _Index(verify)
    for method in frames:
        videos = ffpp.split_videos(pairs, method)
        without = {}  # quality -> videos with crops at another quality but none at this one
        absent = []
        for video in videos:
            folders = [ffpp.face_dir(face_root, method, q, video) for q in qualities]
            found = [index.frame_numbers(folder) for folder in folders]
            if not any(found):
                absent.append(video)
            for q, numbers in zip(qualities, found):
                if not numbers and any(found):
                    without.setdefault(q, []).append(video)
            chosen = sorted(set.intersection(*found))[:max_frames]
            if method != ffpp.REAL and need_masks and chosen:
                masks = index.frame_numbers(ffpp.face_dir(face_root, method, ffpp.MASKS, video))
                lost = [n for n in chosen if n not in masks]
                if lost:
                    path = crop_path(face_root, Frame(method, video, lost[0]), ffpp.MASKS)
                    raise FileNotFoundError(
                        f"{path}: mask crop missing for {len(lost)} of {len(chosen)} frames of {method}/{video}. "
                        "Rerun create_faces_from_dlib_locs.py with the mask videos present, or train without "
                        "the mask loss (--mask-weight 0), which reads no masks.")
                folders.append(ffpp.face_dir(face_root, method, ffpp.MASKS, video))
            chosen = index.usable(folders, chosen)
            frames[method] += [Frame(method, video, n) for n in chosen]
        for q, lost in without.items():
            index.lacking.setdefault(q, face_root / method / q / lost[0])
            index.warnings.append(
                f"{method}: {len(lost)} of {len(videos)} videos of the {split} split have crops at another "
                f"quality but none at {q} ({face_root / method / q}/{lost[0]}/ ...): left out")
        if absent and len(absent) < len(videos):
            index.warnings.append(f"{method}: {len(absent)} of {len(videos)} videos of the {split} split have no "
                                  f"crops ({face_root / method}/<quality>/{absent[0]}/ ...): left out")
    _check(index, frames, face_root, splits_dir, split, dataset, qualities, strict)
    fakes = [f for m in frames if m != ffpp.REAL for f in frames[m]]
    reals = frames[ffpp.REAL]
    if balance and len(fakes) > len(reals):
        repeat = int(round(len(fakes) / len(reals)))
        reals = reals * repeat
    return reals + fakes


def _check(index, frames, face_root, splits_dir, split, dataset, qualities, strict):
    """Print the index's skip and warning lines; stop where the run would not be the one asked for."""
    for (path, why), count in Counter(index.damaged).items():  # a damaged pack: one line for its frames
        lost = "frame left out" if count == 1 else f"{count} frames left out"
        print(f"skip: {path}: {why}: {lost} (rerun create_faces_from_dlib_locs.py, which redoes its folder; "
              "--verify checks every crop)", file=sys.stderr)
    fakes = sum(len(frames[m]) for m in frames if m != ffpp.REAL)
    if not fakes or not frames[ffpp.REAL]:
        missing = "fake" if not fakes else "real"
        if index.lacking:
            raise EmptySplit(f"{face_root}: no frames of the {split} split with crops at {'+'.join(qualities)} for "
                             f"--dataset {dataset}: {_lacking_quality(index.lacking, qualities)}")
        raise EmptySplit(
            f"{face_root}: no {missing} frames for --dataset {dataset} in the {split} split of {splits_dir} "
            f"(looked in {face_root}/<real|Method>/{'|'.join(qualities)}/<video>/). "
            f"Run create_faces_from_dlib_locs.py first (--split {split} cuts this split alone), or check "
            "--face-root and --splits.")
    if len(index.damaged) > MAX_BAD_SHARE * index.checked:
        raise DataError(f"{face_root}: {len(index.damaged)} of {index.checked} frames of the {split} split have "
                        f"unusable crops (more than {MAX_BAD_SHARE:.0%}; first: {index.damaged[0][0]}): the crop "
                        "tree is damaged. Rerun create_faces_from_dlib_locs.py --verify, which redoes those folders")
    present = [m for m in frames if m != ffpp.REAL and frames[m]]
    for m in frames:
        if m != ffpp.REAL and not frames[m]:
            index.warnings.append(f"no {m} frames in the {split} split at {'+'.join(qualities)} in {face_root}: "
                                  f"--dataset {dataset} covers {len(present)} of {len(frames) - 1} methods")
    for line in index.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if strict and (index.warnings or index.damaged):
        what = index.warnings[0] if index.warnings else f"{index.damaged[0][0]}: {index.damaged[0][1]}"
        raise DataError(f"--strict: {len(index.warnings)} warnings and {len(index.damaged)} unusable crops in the "
                        f"{split} split (first: {what}); fix the face tree or run without --strict")


def _lacking_quality(lacking, qualities):
    """Why frames read at several qualities are lacking when one quality's crops are missing, and what to do:
    get that quality's videos, or train on the quality that is there."""
    missing = list(lacking)
    present = [q for q in qualities if q not in lacking]
    one = present[0] if len(present) == 1 else "c23 or c40"
    return (f"the videos have crops at {'+'.join(present) or 'another quality'} but none at {'/'.join(missing)} "
            f"(first: {lacking[missing[0]]}/), and every frame is read at {'+'.join(qualities)}. Get the "
            f"{'/'.join(missing)} videos (FF++'s download script, -c {missing[0]}) and rerun "
            "create_faces_from_dlib_locs.py, which cuts every quality whose videos are present; or train the "
            f"baseline on one quality: train.py --model xception --compression {one}.")


def read_png(path, size, grey=False):
    """HxW(x3) uint8 array of side `size` (resized only when the crop has another size); BGR or grey."""
    image = imread(path, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if image is None:
        what = "mask" if grey else "image"
        raise OSError(f"{path}: cannot read this {what} (missing or corrupt); rerun create_faces_from_dlib_locs.py "
                      "(--verify decodes every crop)")
    return fit(image, size, grey)


def fit(image, size, grey=False):
    """image at side `size`, resized only when it has another size (as the PNG path always did)."""
    if image.shape[0] != size or image.shape[1] != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if grey else cv2.INTER_LINEAR)
    return image


def read_image(path, size):
    """RGB uint8 CHW tensor."""
    return rgb_chw(read_png(path, size))


def rgb_chw(bgr):
    """The model's input layout for a BGR uint8 image: RGB uint8 CHW (normalised later, on the device)."""
    return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)


def read_mask(path, size):
    """1xHxW uint8 tensor, 0..255 as cropped (binarised later, at the map's size)."""
    return torch.from_numpy(read_png(path, size, grey=True))[None]


@dataclass
class Batch:
    """A batch by name. images: {quality: NCHW}, uint8 from the fast decoder or normalised float from the
    PIL one until `to` makes both normalised float on the device; mask: Nx1xHxW 0..255 (zeros for real
    frames), or None when the dataset reads no masks; label: 1 = fake; index: positions in the frame list;
    skipped: samples left out because a crop did not decode (a batch may hold none at all)."""
    images: dict
    mask: torch.Tensor | None
    label: torch.Tensor
    index: torch.Tensor
    skipped: int = 0

    def pin_memory(self):
        return Batch({q: x.pin_memory() for q, x in self.images.items()},
                     None if self.mask is None else self.mask.pin_memory(),
                     self.label.pin_memory(), self.index.pin_memory(), self.skipped)

    def to(self, device, channels_last=False):
        """The batch on the device, images normalised: (x / 255 - mean) / std."""
        return Batch({q: model_input(x, device, channels_last) for q, x in self.images.items()},
                     None if self.mask is None else self.mask.to(device, non_blocking=True),
                     self.label.to(device, non_blocking=True), self.index, self.skipped)


def model_input(images, device, channels_last=False):
    """uint8 images are normalised on the device, (x / 255 - mean) / std as one division and one subtraction
    (x / 127.5 - 1 at the networks' 0.5 and 0.5); float images (the PIL decoder's) are normalised already.
    The model gets the layout it asks for (collate's uint8 batches arrive channels_last), made on the device."""
    x = images.to(device, non_blocking=True)
    if not channels_last:
        x = x.contiguous()
    if x.dtype == torch.uint8:
        x = x.float().div_(255 * STD).sub_(MEAN / STD)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def stack_images(images):
    """One NCHW batch of CHW images. A uint8 crop is an HxWx3 array seen as CHW: stacked as it lies (a plain copy)
    and seen as NCHW again, which is channels_last in memory. A copy into contiguous NCHW strides through
    memory and costs five times as much (at 299 px, 11 ms against 2 for 64 crops, most of a packed sample's
    time); model_input makes the layout the model asks for, on the device. default_collate stacks into shared
    memory in a loader worker, which spares the copy that sending the batch to the main process would make."""
    if images[0].dtype == torch.uint8:
        return default_collate([x.permute(1, 2, 0) for x in images]).permute(0, 3, 1, 2)
    return default_collate(images)


def collate(samples):
    """One Batch of the samples; those the dataset skipped (None) are left out and counted."""
    kept = [s for s in samples if s is not None]
    skipped = len(samples) - len(kept)
    if not kept:
        empty = torch.zeros(0, dtype=torch.long)
        return Batch({}, None, empty, empty, skipped)
    images, masks, labels, indices = zip(*kept)
    return Batch({q: stack_images([s[q] for s in images]) for q in images[0]},
                 None if masks[0] is None else default_collate(masks),
                 torch.tensor(labels), torch.tensor(indices), skipped)


class SkippedFrames:
    """Counts the frames left out of one pass over a loader because a crop did not decode (each named by the
    worker that met it), and stops the run when they pass MAX_BAD_SHARE of the frames: then the tree is
    damaged and the run would not be the one asked for."""

    def __init__(self, total):
        self.total = total
        self.count = 0

    def batches(self, loader):
        """The loader's batches that hold at least one sample."""
        for batch in loader:
            self.count += batch.skipped
            if self.count > MAX_BAD_SHARE * self.total:
                raise DataError(f"{self.count} of {self.total} frames could not be decoded (more than "
                                f"{MAX_BAD_SHARE:.0%}; each named above): the crop tree is damaged. Rerun "
                                "create_faces_from_dlib_locs.py --verify, which redoes the folders that fail")
            if len(batch.label):
                yield batch


class FaceFrames(Dataset):
    """Samples (images {quality: CHW}, mask or None, label, index) of a frame list; real frames get an
    all-zero mask. decoder 'fast' gives uint8, 'pil' the released per-sample PIL/torchvision floats. A packed
    folder's crop is copied out of its memory map: the same pixels as its PNG, without decoding."""

    def __init__(self, face_root, frames, image_size, qualities=ffpp.COMPRESSIONS, masks=True, decoder="fast"):
        if decoder not in DECODERS:
            raise ValueError(f"--loader {decoder!r}: choose one of {', '.join(DECODERS)}")
        self.face_root = Path(face_root)
        self.frames = list(frames)
        self.size = image_size
        self.qualities = tuple(qualities)
        self.masks = masks
        self.decoder = decoder
        self.packs = packed.Packs()
        self._folders = {}  # (method, quality, video) -> crop folder: pathlib costs more than copying a packed crop
        if decoder == "pil":
            from torchvision import transforms

            resize = transforms.Resize((image_size, image_size))
            self.transform = transforms.Compose([resize, transforms.ToTensor(),
                                                 transforms.Normalize(PRETRAINED_CFG["mean"], PRETRAINED_CFG["std"])])
            self.mask_transform = transforms.Compose([resize, transforms.ToTensor()])

    def __len__(self):
        return len(self.frames)

    def folder(self, frame, quality):
        key = (frame.method, quality, frame.video)
        if key not in self._folders:
            self._folders[key] = ffpp.face_dir(self.face_root, *key)
        return self._folders[key]

    def path(self, frame, quality):
        return self.folder(frame, quality) / f"{frame.frame}.png"

    def _packed(self, frame, quality, grey):
        """The frame's crop (RGB or grey) if its folder is packed, else None."""
        folder = self.folder(frame, quality)
        return self.packs.crop(folder, frame.frame, grey) if self.packs.is_packed(folder) else None

    def _image(self, frame, quality):
        rgb = self._packed(frame, quality, grey=False)
        if self.decoder == "fast":
            if rgb is not None:
                return torch.from_numpy(fit(rgb, self.size)).permute(2, 0, 1)
            return read_image(self.path(frame, quality), self.size)
        from PIL import Image

        if rgb is not None:
            return self.transform(Image.fromarray(rgb))
        path = self.path(frame, quality)
        try:
            return self.transform(Image.open(path).convert("RGB"))
        except (OSError, Image.DecompressionBombError) as e:  # a header that claims a huge image
            raise OSError(f"{path}: cannot read this image ({e}); rerun create_faces_from_dlib_locs.py") from None

    def _mask(self, frame):
        if not frame.label:
            return torch.zeros(1, self.size, self.size, dtype=torch.uint8 if self.decoder == "fast" else torch.float)
        grey = self._packed(frame, ffpp.MASKS, grey=True)
        if self.decoder == "fast":
            if grey is not None:
                return torch.from_numpy(fit(grey, self.size, grey=True))[None]
            return read_mask(self.path(frame, ffpp.MASKS), self.size)
        from PIL import Image

        if grey is not None:
            return self.mask_transform(Image.fromarray(grey)).mul(255)
        path = self.path(frame, ffpp.MASKS)
        try:
            return self.mask_transform(Image.open(path).convert("L")).mul(255)
        except (OSError, Image.DecompressionBombError) as e:  # a header that claims a huge image
            raise OSError(f"{path}: cannot read this mask ({e}); rerun create_faces_from_dlib_locs.py") from None

    def __getitem__(self, i):
        """The sample of frame i, or None (with one line naming the crop) when a crop cannot be read: one bad
        file costs its frame, not the run (collate leaves it out, SkippedFrames counts it)."""
        frame = self.frames[i]
        try:
            images = {q: self._image(frame, q) for q in self.qualities}
            return images, self._mask(frame) if self.masks else None, frame.label, i
        except OSError as e:
            print(f"skip: {e}: frame left out of its batch", file=sys.stderr, flush=True)
            return None


def make_loader(dataset, batch_size, workers, sampler=None, drop_last=False, device=None, generator=None):
    cuda = device is not None and device.type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=cuda,
                      drop_last=drop_last, collate_fn=collate, generator=generator,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)


def training_loader(face_root, frames, *, qualities, masks, image_size, batch_size, workers, decoder, device,
                    seed=0, world=1, rank=0):
    """The shuffled training loader (train.py and bench.py). Its order is a function of the seed and the
    epoch alone (loader.sampler.set_epoch): one DistributedSampler shard per process, a single one without
    torchrun, and worker seeds from the loader's own generator, so that a resumed run reads the batches an
    uninterrupted one would. The last incomplete batch is dropped when there is a full one per process."""
    dataset = FaceFrames(face_root, frames, image_size, qualities, masks=masks, decoder=decoder)
    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=seed)
    return make_loader(dataset, batch_size, workers, sampler=sampler, drop_last=len(dataset) >= batch_size * world,
                       device=device, generator=torch.Generator().manual_seed(seed))
