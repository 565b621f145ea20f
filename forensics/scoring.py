"""The one path from crops to scores (train.py's validation, test.py, the benchmarks), and the files
test.py writes for eval.py: scores.csv, the attention maps, the ground-truth masks, meta.json and the
released eval's .mat files."""
import csv
import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models import input_size

from . import ffpp
from .data import MAX_BAD_SHARE, EmptySplit, FaceFrames, SkippedFrames, crop_path, frame_numbers, index_frames, \
    make_loader, model_input
from .device import autocast, resolve_precision, resolve_switch
from .fileio import write_bytes, write_json
from .losses import mask_target
from .metrics import best_threshold
from .progress import bar

SCORE_COLUMNS = ("split", "method", "video", "frame", "label", "score", "compression")


@dataclass(frozen=True)
class ScoreOptions:
    """How crops are scored, as test.py's flags of the same names: one object that test.py, train.py's
    validation, the paper table, the robustness sweep and the benchmarks hand on whole."""
    image_size: int | None = None  # crops are resized to this; None: the model's input size (models.input_size)
    batch_size: int = 128
    workers: int = 0
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere (device.py)
    channels_last: str | bool = "auto"  # auto: on CUDA
    max_frames: int = 140  # first frames of each test video (released: 140)
    val_max_frames: int = 140  # first frames of each validation video; 0 skips the validation split


@torch.no_grad()
def score_frames(model, face_root, frames, quality, device, options=ScoreOptions(), *, keep_maps=False,
                 keep_masks=False, progress=False, folder=None):
    """Score of every frame (distance from the centre, or the baseline's fake probability), in order, with
    options' image size, batch size, workers and precision (its frame limits are the caller's).
    keep_maps adds the attention maps (float16, N x h x w); keep_masks the ground-truth masks read in the
    same pass, resized to the map and binarised as the training target is (uint8, N x h x w). Either is
    None for a model without maps. folder: the crop folder to read in place of <quality>/ (the robustness
    sweep's degraded crops), still scored through the head of quality. A frame whose crop does not decode
    (named by the worker) scores NaN, with a NaN map and an empty mask; more than data.MAX_BAD_SHARE of them
    stop with a DataError."""
    folder = folder or quality
    precision = resolve_precision(options.precision, device)
    channels_last = resolve_switch(options.channels_last, device)
    dataset = FaceFrames(face_root, frames, options.image_size or input_size(model), qualities=(folder,),
                         masks=keep_masks)
    loader = make_loader(dataset, options.batch_size, options.workers, device=device)
    was_training = model.training
    model.eval()
    scores, maps, masks = np.full(len(dataset), np.nan), None, None
    skipped = SkippedFrames(len(dataset))
    try:
        for batch in bar(skipped.batches(loader), total=len(loader), desc=f"score {quality}", unit="batch",
                         disable=not progress):
            score, attention = score_batch(model, batch.images[folder], quality, device, precision, channels_last)
            rows = batch.index.numpy()
            scores[rows] = score.float().cpu().numpy()
            if attention is not None and keep_maps:
                if maps is None:
                    maps = np.full((len(dataset), *attention.shape[-2:]), np.nan, np.float16)
                maps[rows] = attention[:, 0].float().cpu().numpy()
            if attention is not None and keep_masks:
                if masks is None:
                    masks = np.zeros((len(dataset), *attention.shape[-2:]), np.uint8)
                masks[rows] = mask_target(batch.mask, attention.shape[-2:])[:, 0].numpy()
    finally:
        model.train(was_training)
    return scores, maps, masks


@torch.no_grad()
def score_batch(model, images, quality, device, precision="fp32", channels_last=False):
    """(scores, attention maps or None) of one batch of NCHW RGB images through the head of `quality`: uint8
    images (a crop tree's, or detect.py's crops cut in memory) are normalised on the device as in training."""
    with autocast(device, precision):
        return model.score(model_input(images, device, channels_last), quality)


def _masks_available(face_root, frames):
    found = {}  # (method, video) -> the frame numbers of its mask crops, PNG or packed
    for f in frames:
        if not f.label:
            continue
        if (f.method, f.video) not in found:
            found[f.method, f.video] = frame_numbers(ffpp.face_dir(face_root, f.method, ffpp.MASKS, f.video))
        if f.frame not in found[f.method, f.video]:
            return False
    return True


def _csv_text(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _mat_bytes(labels, scores, threshold, maps, masks):
    from scipy.io import savemat

    empty = np.zeros((0,), np.float32)
    results = {"lab": labels.astype(np.int64), "score": scores.astype(np.float32),
               "pred": (scores >= threshold).astype(np.uint8),
               "mask": maps.astype(np.float32) if maps is not None else empty,
               "msk": masks.astype(np.float32) if masks is not None else empty}
    buffer = io.BytesIO()
    savemat(buffer, results)
    return buffer.getvalue()


# Every file test.py writes in its --out: the ones of an earlier run go before any new one is written.
SET_FILES = ("scores.csv", "maps.npy", "masks.npy", "meta.json",
             *(f"{c}_{s}.mat" for c in ffpp.COMPRESSIONS for s in ("val", "test")))


def digest(data):
    return hashlib.sha1(data).hexdigest()


def write_set(out, files, meta):
    """test.py's files as one set that cannot mix with another run's: the earlier set's files are deleted
    first, meta.json records the SHA-1 of each new file (eval.py pairs maps with scores by it) and scores.csv,
    the file eval.py opens, is written last. A failure part-way leaves no scores.csv, never a mixed set."""
    out = Path(out)
    for name in SET_FILES:
        (out / name).unlink(missing_ok=True)
    for name, data in files.items():
        if name != "scores.csv":
            write_bytes(out / name, data)
    write_json(out / "meta.json", dict(meta, files={name: digest(data) for name, data in files.items()}), indent=2)
    write_bytes(out / "scores.csv", files["scores.csv"])


def _without_validation(info):
    """What eval.py's threshold is when no validation split was scored."""
    if info.get("run_threshold") is None:
        return "this checkpoint stores no threshold, so eval.py reports no acc (best_acc is over the test rows)"
    return f"eval.py takes the threshold train.py stored for this epoch ({info['run_threshold']:.6g}) for acc"


def score_splits(model, info, *, face_root, splits, out, device, dataset="All", compression="c40",
                 options=ScoreOptions(), fmt="csv"):
    """Score the val and test splits with a loaded model (runs.load_model) and write what eval.py reads;
    returns the path of scores.csv. The validation split is scored so that eval.py can choose the
    decision threshold on it, never on the test split; without validation frames (an empty split file, no
    crops of it) the test split alone is scored, with a note: eval.py then takes the run's stored threshold."""
    out = Path(out)
    image_size = options.image_size or input_size(model)
    split_frames = {}
    if options.val_max_frames > 0:
        try:
            split_frames["val"] = index_frames(face_root, splits, "val", dataset, options.val_max_frames,
                                               (compression,), need_masks=False)
        except EmptySplit as e:
            print(f"note: {e}\nnote: the test split alone is scored; {_without_validation(info)} (--val-max-frames 0 "
                  "skips the validation split without this note)", file=sys.stderr)
    split_frames["test"] = index_frames(face_root, splits, "test", dataset, options.max_frames, (compression,),
                                        need_masks=False)
    if info["model"] == "xception" and info.get("trained_on") not in (None, compression, "c23+c40"):
        print(f"note: this baseline was trained on {info['trained_on']}, tested here on {compression}")
    frames = [f for s in split_frames.values() for f in s]
    splits_of = [s for s, fs in split_frames.items() for _ in fs]
    with_masks = info["model"] == "detector" and _masks_available(face_root, frames)
    if info["model"] == "detector" and not with_masks:
        print(f"note: {face_root} lacks mask crops for some fake frames: no masks.npy, no mask accuracy")
    model.to(device)
    scores, maps, masks = score_frames(model, face_root, frames, compression, device, options, keep_maps=True,
                                       keep_masks=with_masks, progress=True)
    scored = ~np.isnan(scores)
    if not scored.all():
        lost = int((~scored).sum())
        if lost > MAX_BAD_SHARE * len(frames):
            raise ValueError(f"{lost} of {len(frames)} frames got no score (more than {MAX_BAD_SHARE:.0%}): the model "
                             "gives NaN (a diverged checkpoint?) or the crops named above do not decode")
        first = frames[int(np.flatnonzero(~scored)[0])]
        path = crop_path(face_root, first, compression)
        print(f"skip: {lost} frames got no score (crops that do not decode, named above; first: {path}): left out "
              "of scores.csv", file=sys.stderr)
        frames = [f for f, keep in zip(frames, scored) if keep]
        splits_of = [s for s, keep in zip(splits_of, scored) if keep]
        scores, maps, masks = (None if a is None else a[scored] for a in (scores, maps, masks))
    labels = np.array([f.label for f in frames], np.int64)

    rows = [(s, f.method, f.video, f.frame, f.label, repr(float(v)), compression)
            for s, f, v in zip(splits_of, frames, scores)]
    files = {name: _npy_bytes(array) for name, array in (("maps.npy", maps), ("masks.npy", masks))
             if array is not None}
    if fmt == "mat":
        is_val = np.array([s == "val" for s in splits_of])
        threshold = best_threshold(labels[is_val], scores[is_val])[0] if is_val.any() else info["run_threshold"]
        if threshold is None:
            raise ValueError("--format mat needs a decision threshold for 'pred': score the validation split "
                             "(--val-max-frames > 0) or test a train.py run whose history stores one")
        for split in split_frames:
            keep = np.array([s == split for s in splits_of])
            files[f"{compression}_{split}.mat"] = _mat_bytes(
                labels[keep], scores[keep], threshold, None if maps is None else maps[keep],
                None if masks is None else masks[keep])
    files["scores.csv"] = _csv_text(rows).encode()
    meta = dict(info, dataset=dataset, compression=compression, image_size=image_size, face_root=str(face_root),
                splits=str(splits), max_frames=options.max_frames, val_max_frames=options.val_max_frames,
                rows=len(rows), frames={s: len(fs) for s, fs in split_frames.items()},
                skipped_frames=int((~scored).sum()))
    write_set(out, files, meta)
    return out / "scores.csv"
