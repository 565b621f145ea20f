"""How detection holds up as compression gets worse: AUC of each checkpoint on the test videos re-encoded on a
ladder of qualities (and, behind flags, other degradations), as a CSV, a Markdown table and a plot.

    python robustness.py --ffpp-root FF++ --locs jsons --face-root face --splits jsons \\
        --checkpoint method=runs/all --checkpoint "Xception c23=runs/xception_c23"

Source: per video the best version present (FF++'s raw, else c23), scored as it is (level 'source') and
re-encoded with libx264 at each --crf; --codecs h265 vp9 adds those codecs at the bitrate H.264 reached at each
CRF, --jpeg per-frame JPEG, --scale scaling down and back. Crops are cut with the boxes of the c23 crops
(--locs) at --image-size (the side the face tree was cut at) and scored as test.py scores; the threshold for
ACC is chosen on the validation split of --face-root at the quality each checkpoint scores through.
A detector run gives two rows, LABEL (LQ) and LABEL (HQ), one per head (--heads); a baseline one.
Encodes and crops are cached in --cache (default OUT/cache): reruns and further checkpoints reuse them.
"""
import argparse

from forensics import cli, degrade, ffpp
from forensics.device import resolve_device
from forensics.fileio import check_writable
from forensics.robustness import HEADS, sweep, write_outputs
from forensics.scoring import ScoreOptions
from models import INPUT_SIZE

FFPP_ROOT = ffpp.ROOT
LOCS = "jsons"
FACE_ROOT = "face"
SPLITS = "jsons"
SPLIT = "test"
CHECKPOINTS = ["method=runs/detector", "Xception baseline@c23=runs/xception_c23",  # as --checkpoint takes them
               "Xception baseline@c40=runs/xception_c40"]
CRF = degrade.CRF_LADDER     # H.264 levels; FF++'s c23 and c40 are CRF 23 and 40
JPEG = degrade.JPEG_QUALITIES  # --jpeg without values
SCALE = degrade.SCALES       # --scale without values
EPOCH = "best"
MAX_FRAMES = ScoreOptions.max_frames  # first located frames of each video (test.py's)
VAL_MAX_FRAMES = ScoreOptions.val_max_frames
IMAGE_SIZE = INPUT_SIZE      # crop side: the face tree's (create_faces_from_dlib_locs.py --image-size)
PRECISION = "auto"
OUT = "runs/robustness"
CACHE = ""                   # empty: OUT/cache
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = ScoreOptions.batch_size


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, ffpp_root=FFPP_ROOT, locs=LOCS, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE,
                   workers=WORKERS, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, precision=PRECISION)
    p.add_argument("--split", default=SPLIT, choices=ffpp.SPLITS, help=f"the split to degrade (default: {SPLIT})")
    p.add_argument("--checkpoint", action="append", default=[], metavar="LABEL[@COMPRESSION]=DIR",
                   help=f"a checkpoint to sweep (repeat; replaces the default {CHECKPOINTS})")
    p.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS),
                   help="the heads of a detector run to score through (default: both)")
    p.add_argument("--crf", nargs="+", type=float, default=list(CRF),
                   help=f"H.264 CRF levels (default: {' '.join(map(str, CRF))})")
    p.add_argument("--codecs", nargs="+", default=[], choices=degrade.MATCHED,
                   help="also these codecs, at the bitrate H.264 reached at each --crf (default: none)")
    p.add_argument("--jpeg", nargs="*", type=float, default=None,
                   help=f"per-frame JPEG qualities (the flag alone: {' '.join(map(str, JPEG))})")
    p.add_argument("--scale", nargs="*", type=float, default=None,
                   help=f"scale factors, down and back up (the flag alone: {' '.join(map(str, SCALE))})")
    p.add_argument("--cache", default=CACHE, help="folder of the encodes and crops (default: OUT/cache)")
    p.add_argument("--epoch", default=EPOCH, help="best, last or an epoch number, for every checkpoint")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES, help="first located frames of each video")
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES)
    args = p.parse_args(argv)
    for flag, value in (("--max-frames", args.max_frames), ("--val-max-frames", args.val_max_frames)):
        if value < 1:
            p.error(f"{flag} {value}: the sweep needs at least the first frame of each video")
    args.checkpoints = cli.parse_checkpoints(args.checkpoint or CHECKPOINTS)
    args.jpeg = JPEG if args.jpeg == [] else args.jpeg or ()
    args.scale = SCALE if args.scale == [] else args.scale or ()
    args.cache = args.cache or f"{args.out}/cache"
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        check_writable(args.out)  # before any encoding: its outputs, and by default its cache, go there
        check_writable(args.cache, "--cache")
        levels = degrade.ladder(args.crf, args.jpeg, args.scale, args.codecs)
        options = ScoreOptions(batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                               max_frames=args.max_frames, val_max_frames=args.val_max_frames)
        rows, report = sweep(args.checkpoints, levels, resolve_device(args.device), ffpp_root=args.ffpp_root,
                             locs_dir=args.locs, face_root=args.face_root, splits_dir=args.splits, cache=args.cache,
                             crop_size=args.image_size, split=args.split, heads=args.heads, epoch=args.epoch,
                             options=options)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"robustness.py: {e}") from None
    print(write_outputs(rows, report, args.out))
    print(f"wrote {args.out}/robustness.csv, robustness.md and robustness.png")
    return rows, report


if __name__ == "__main__":
    main()
