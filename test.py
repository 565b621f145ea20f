"""Score the validation and test splits with a trained detector, the released checkpoints or the Xception baseline.

    python test.py --face-root face/ --splits jsons/ --checkpoint-dir runs/all --epoch best --compression c40
    python test.py --checkpoint-dir checkpoints/All --epoch 13 --model detector --format mat   # released files

c40 goes through the LQ head, c23 through the HQ head. Writes, in --out: scores.csv (one row per frame:
split, method, video, frame, label, score, label 1 = fake), maps.npy (the attention maps, float16, in the
row order of scores.csv), masks.npy (the ground-truth masks at map size, when the face tree has them) and
meta.json; eval.py --scores OUT/scores.csv turns them into metrics. The validation split is scored too so
that eval.py can choose the decision threshold on it, never on the test split.
--model auto and --image-size auto take the run's config.json (released folders: detector, 299 px).
"""
import argparse
import csv
import io
import os
from pathlib import Path

import numpy as np
import torch

from forensics import cli, ffpp
from forensics.data import DATASETS, FaceFrames, index_frames
from forensics.fileio import read_json, write_bytes, write_json
from forensics.losses import mask_target
from forensics.metrics import best_threshold
from forensics.scoring import make_loader, score_frames
from models import build_model
from models.checkpoints import CheckpointError, checkpoint_path, load_part

FACE_ROOT = "face"
SPLITS = "jsons"
CHECKPOINT_DIR = "runs/detector"
EPOCH = "best"               # best (the run's best.json), last, or an epoch number
MODEL = "auto"               # auto: the run's config.json, else detector (released checkpoints)
DATASET = "All"
COMPRESSION = "c40"
MAX_FRAMES = 140             # first frames of each test video (released: 140)
VAL_MAX_FRAMES = 140         # first frames of each validation video; 0 skips the validation split
IMAGE_SIZE = "auto"          # auto: the run's config.json, else 299
FORMAT = "csv"               # csv, or mat to also write the .mat files of the released eval
PRECISION = "auto"           # auto: bf16 autocast and channels_last on CUDA, fp32 on the CPU
OUT = "runs/test"
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = 128
SEED = 0
DEFAULT_IMAGE_SIZE = 299
COLUMNS = ("split", "method", "video", "frame", "label", "score", "compression")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=SEED)
    p.add_argument("--checkpoint-dir", default=CHECKPOINT_DIR,
                   help="a train.py run, or a folder of released head_N.tar/tail_N.tar files")
    p.add_argument("--epoch", default=EPOCH, help="best (from best.json), last, or an epoch number")
    p.add_argument("--model", default=MODEL, choices=("auto", "detector", "xception"))
    p.add_argument("--dataset", default=DATASET, choices=DATASETS)
    p.add_argument("--compression", default=COMPRESSION, choices=ffpp.COMPRESSIONS)
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES, help="first frames of each test video")
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES,
                   help="first frames of each validation video (0: skip the validation split)")
    p.add_argument("--format", default=FORMAT, choices=("csv", "mat"),
                   help="mat also writes <compression>_<split>.mat for the released eval")
    p.add_argument("--precision", default=PRECISION, choices=("auto", "fp32", "bf16"))
    return p.parse_args(argv)


def _epochs(directory, part):
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in Path(directory).glob(f"{part}_*.tar")
                  if p.stem.rsplit("_", 1)[1].isdigit())


def _config(directory):
    path = Path(directory) / "config.json"
    return read_json(path, "run configuration") if path.exists() else {}


def resolve_epoch(directory, epoch, part):
    """'best' (a run's best.json), 'last' (the highest epoch of this part) or a number."""
    directory = Path(directory)
    found = _epochs(directory, part)
    if str(epoch) == "best":
        best = directory / "best.json"
        if not best.exists():
            raise CheckpointError(f"{best} not found: --epoch best needs a train.py run; "
                                  f"pass --epoch N (epochs of {part} here: {found or 'none'})")
        return int(read_json(best, "best epoch")["epoch"])
    if str(epoch) == "last":
        if not found:
            raise CheckpointError(f"{directory}: no {part}_NNNNNN.tar checkpoint; check --checkpoint-dir")
        return found[-1]
    try:
        return int(epoch)
    except ValueError:
        raise ValueError(f"--epoch {epoch!r}: use best, last or an epoch number") from None


def _need(directory, part, epoch):
    path = checkpoint_path(directory, part, epoch)
    if not path.is_file():
        raise CheckpointError(f"{path}: {part} checkpoint not found; {directory} holds {part} epochs "
                              f"{_epochs(directory, part) or 'none'}: pass one of them as --epoch, "
                              "or check --checkpoint-dir")
    return path


def _run_threshold(directory, epoch, compression):
    """The validation threshold train.py stored for this epoch and quality, if any."""
    for name in ("best.json", "history.json"):
        path = Path(directory) / name
        if path.exists():
            entries = read_json(path, "training history")
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry.get("epoch") == epoch and entry.get(f"val_threshold_{compression}") is not None:
                    return float(entry[f"val_threshold_{compression}"])
    return None


def load_model(directory, epoch=EPOCH, compression=COMPRESSION, model=MODEL):
    """The network of a run or released folder, ready to score `compression`, and what eval needs to
    know about it. Only the head that scores this quality is loaded (released folders have no HQ head)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: checkpoint folder not found; pass --checkpoint-dir DIR "
                                "(a train.py run, or a folder of released head_N.tar and tail_N.tar)")
    config = _config(directory)
    if model == "auto":
        model = config.get("model") or ("xception" if _epochs(directory, "xception") and not
                                        _epochs(directory, "tail") else "detector")
    net = build_model(model)
    if model == "xception":
        epoch = resolve_epoch(directory, epoch, "xception")
        load_part(net, _need(directory, "xception", epoch))
        trained_on = config.get("compression")
    else:
        epoch = resolve_epoch(directory, epoch, "tail")
        tail = _need(directory, "tail", epoch)
        names = ("hq_head",) if compression == "c23" else ("lq_head", "head")
        heads = [checkpoint_path(directory, n, epoch) for n in names]
        head = next((h for h in heads if h.is_file()), None)
        if head is None:
            raise CheckpointError(
                f"{directory}: no {' or '.join(h.name for h in heads)} for {compression} at epoch {epoch}"
                + ("; released folders hold only the LQ head (head_N.tar): test them at --compression c40"
                   if compression == "c23" and _epochs(directory, "head") else "; check --checkpoint-dir and --epoch"))
        load_part(net.tail, tail)
        load_part(net.head(compression), head)
        trained_on = "c23+c40"
    info = {"checkpoint_dir": str(directory), "epoch": epoch, "model": model, "trained_on": trained_on,
            "image_size": config.get("image_size"),
            "run_threshold": _run_threshold(directory, epoch, compression)}
    return net.eval(), info


def _masks_available(face_root, frames):
    return all(os.path.exists(ffpp.face_dir(face_root, f.method, ffpp.MASKS, f.video) / f"{f.frame}.png")
               for f in frames if f.label)


def ground_truth_masks(face_root, frames, image_size, map_size, batch_size, workers):
    """Masks read as in training (crop at image size), then resized to the map and binarised like its
    training target (forensics.losses.mask_target); real frames are all zeros."""
    dataset = FaceFrames(face_root, frames, image_size, qualities=(), masks=True)
    out = np.zeros((len(frames), *map_size), np.uint8)
    for mask, _, index in make_loader(dataset, batch_size, workers):
        out[index.numpy()] = mask_target(mask, map_size)[:, 0].numpy().astype(np.uint8)
    return out


def _csv_text(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _write_mat(path, labels, scores, threshold, maps, masks):
    from scipy.io import savemat

    empty = np.zeros((0,), np.float32)
    results = {"lab": labels.astype(np.int64), "score": scores.astype(np.float32),
               "pred": (scores >= threshold).astype(np.uint8),
               "mask": maps.astype(np.float32) if maps is not None else empty,
               "msk": masks.astype(np.float32) if masks is not None else empty}
    buffer = io.BytesIO()
    savemat(buffer, results)
    write_bytes(path, buffer.getvalue())


def test(model, info, face_root, splits, out, dataset=DATASET, compression=COMPRESSION, image_size=None,
         device="cpu", batch_size=BATCH_SIZE, workers=0, max_frames=MAX_FRAMES, val_max_frames=VAL_MAX_FRAMES,
         fmt=FORMAT, precision=PRECISION):
    """Score the val and test splits with a loaded model and write the files eval.py reads; returns the
    path of scores.csv."""
    out = Path(out)
    device = torch.device(device)
    cuda = device.type == "cuda"
    precision = ("bf16" if cuda else "fp32") if precision == "auto" else precision
    image_size = int(image_size or info.get("image_size") or DEFAULT_IMAGE_SIZE)
    split_frames = {}
    if val_max_frames > 0:
        split_frames["val"] = index_frames(face_root, splits, "val", dataset, val_max_frames, (compression,),
                                           need_masks=False)
    split_frames["test"] = index_frames(face_root, splits, "test", dataset, max_frames, (compression,),
                                        need_masks=False)
    if info["model"] == "xception" and info.get("trained_on") not in (None, compression):
        print(f"note: this baseline was trained on {info['trained_on']}, tested here on {compression}")
    frames = [f for s in split_frames.values() for f in s]
    splits_of = [s for s, fs in split_frames.items() for _ in fs]
    model.to(device)
    scores, maps = score_frames(model, face_root, frames, compression, device, image_size, batch_size, workers,
                                precision, channels_last=cuda, keep_maps=True, progress=True)
    masks = None
    if maps is not None:
        maps = maps[:, 0]
        if _masks_available(face_root, frames):
            masks = ground_truth_masks(face_root, frames, image_size, maps.shape[-2:], batch_size, workers)
        else:
            print(f"note: {face_root} lacks mask crops for some fake frames: no masks.npy, no mask accuracy")
    labels = np.array([f.label for f in frames], np.int64)

    rows = [(s, f.method, f.video, f.frame, f.label, repr(float(v)), compression)
            for s, f, v in zip(splits_of, frames, scores)]
    write_bytes(out / "scores.csv", _csv_text(rows).encode())
    for name, array in (("maps.npy", maps), ("masks.npy", masks)):
        if array is not None:
            buffer = io.BytesIO()
            np.save(buffer, array)
            write_bytes(out / name, buffer.getvalue())
        elif (out / name).exists():
            (out / name).unlink()  # a stale file of an earlier run would be read as this run's
    meta = dict(info, dataset=dataset, compression=compression, image_size=image_size, face_root=str(face_root),
                splits=str(splits), max_frames=max_frames, val_max_frames=val_max_frames, rows=len(rows),
                frames={s: len(fs) for s, fs in split_frames.items()})
    write_json(out / "meta.json", meta, indent=2)

    if fmt == "mat":
        is_val = np.array([s == "val" for s in splits_of])
        threshold = best_threshold(labels[is_val], scores[is_val])[0] if is_val.any() else info["run_threshold"]
        if threshold is None:
            raise ValueError("--format mat needs a decision threshold for 'pred': score the validation split "
                             "(--val-max-frames > 0) or test a train.py run whose history stores one")
        for split in split_frames:
            keep = np.array([s == split for s in splits_of])
            _write_mat(out / f"{compression}_{split}.mat", labels[keep], scores[keep], threshold,
                       None if maps is None else maps[keep], None if masks is None else masks[keep])
    return out / "scores.csv"


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    try:
        image_size = None if args.image_size == "auto" else int(args.image_size)
    except ValueError:
        raise SystemExit(f"--image-size {args.image_size!r}: use auto or a number of pixels") from None
    device = cli.resolve_device(args.device)
    try:
        model, info = load_model(args.checkpoint_dir, args.epoch, args.compression, args.model)
        print(f"{info['model']} from {args.checkpoint_dir}, epoch {info['epoch']}, on {device}")
        path = test(model, info, args.face_root, args.splits, args.out, args.dataset, args.compression, image_size,
                    device, args.batch_size, args.workers, args.max_frames, args.val_max_frames, args.format,
                    args.precision)
    except (CheckpointError, FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"test.py: {e}") from None
    print(f"wrote {path}; next: python eval.py --scores {path}")
    return path


if __name__ == "__main__":
    main()
