"""Is this video fake? Score videos, images or folders of them with a trained detector.

    python detect.py clip.mp4 --checkpoint runs/all --overlay
    python detect.py downloads/ --recursive --checkpoint checkpoints/All --epoch 13 --threshold 9.5

For each input: dlib finds faces on every 5th frame (--detect-every; a second pass at --fallback-size where
the first finds none), the main face is tracked as detect_faces.py does and its boxes interpolated between
(--all-faces: every face); each face is cut and normalised as in training and scored through the head of
--head (lq: the c40 head, the default; hq; both). A video's score is the mean of its frame scores (eval.py's
video score); it is fake when score >= the run's validation threshold (history.json), which is calibrated to
FF++-like data only. Released checkpoint folders carry no threshold: pass --threshold for a verdict. Writes
OUT/results.json and OUT/results.csv (per input and per frame: box and score); --overlay adds an MP4 per
video with the face box coloured by score and the regression map over the face, and a plot of the score over
time. A bad input is reported on one line and skipped; the exit status is 1 if anything was skipped.
"""
import argparse
import sys

from forensics import cli, faces, inference
from forensics.device import resolve_device, resolve_precision, resolve_switch
from forensics.fileio import check_writable
from models import input_size
from models.checkpoints import CheckpointError

CHECKPOINT = "runs/detector"
EPOCH = "best"               # best (the run's best.json), last, or an epoch number
HEAD = "lq"                  # lq: the c40 head, hq: the c23 head, both
OUT = "runs/detect"
DEVICE = "auto"
WORKERS = cli.default_workers()
IMAGE_SIZE = "auto"          # auto: the run's config.json, else 299
BATCH_SIZE = 32
PRECISION = "auto"           # auto: bf16 autocast and channels_last on CUDA, fp32 on the CPU
MAX_FRAMES = inference.Settings.max_frames  # first frames of a video, 0 for all
STRIDE = inference.Settings.stride
DETECTION = faces.FOOTAGE    # dlib on every 5th frame, a second pass at 1280 px where it finds none (faces.py)
MIN_FACE = inference.Settings.min_face  # smallest face box side (pixels) worth scoring
MIN_TRACK = inference.Settings.min_track  # --all-faces: keyframes a face must be detected in


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="videos, images (jpg, png, webp) or folders of them")
    p.add_argument("--checkpoint", default=CHECKPOINT,
                   help=f"a train.py run, or a folder of released head_N.tar/tail_N.tar (default: {CHECKPOINT})")
    p.add_argument("--epoch", default=EPOCH, help=f"best (from best.json), last, or a number (default: {EPOCH})")
    p.add_argument("--head", choices=("lq", "hq", "both"), default=HEAD,
                   help="the LQ (c40) head, the HQ (c23) head, or both; released folders hold only the LQ head "
                        f"(default: {HEAD})")
    p.add_argument("--threshold", type=float, default=None,
                   help="fake when score >= this (default: the run's validation threshold for the epoch and head)")
    cli.add_common(p, out=OUT, device=DEVICE, workers=WORKERS, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE,
                   precision=PRECISION)
    p.add_argument("--recursive", action="store_true", help="also the videos and images in subfolders")
    p.add_argument("--max-frames", type=cli.at_least(0), default=MAX_FRAMES,
                   help=f"only the first N frames of a video, 0 for all (default: {MAX_FRAMES})")
    p.add_argument("--stride", type=cli.at_least(1), default=STRIDE, help=f"every Nth frame (default: {STRIDE})")
    p.add_argument("--all-faces", action="store_true", help="score every tracked face, not only the main one")
    p.add_argument("--min-track", type=int, default=MIN_TRACK,
                   help=f"--all-faces: a face must be detected in this many of the frames detected on (--detect-every) "
                        f"(default: {MIN_TRACK})")
    p.add_argument("--min-face", type=int, default=MIN_FACE,
                   help=f"skip faces whose box is smaller than this many pixels (default: {MIN_FACE})")
    p.add_argument("--overlay", action="store_true",
                   help="also write NAME.overlay.mp4 (NAME.overlay.png for an image) and NAME.scores.png")
    p.add_argument("--strict", action="store_true", help="stop at the first input that cannot be scored")
    cli.add_detector_flags(p, DETECTION)
    return p.parse_args(argv)


def settings_of(args):
    return inference.Settings(max_frames=args.max_frames, stride=args.stride, detection=cli.detection_settings(args),
                              min_face=args.min_face, min_track=args.min_track, all_faces=args.all_faces)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    settings = settings_of(args)
    try:
        model, info, heads = inference.load_detector(args.checkpoint, args.epoch, args.head)
        check_writable(args.out)  # before any scoring, not when the results are written; a bad checkpoint makes none
    except (CheckpointError, OSError, ValueError) as e:
        raise SystemExit(f"detect.py: {e}") from None
    thresholds = inference.thresholds_of(args.checkpoint, info, heads, args.threshold)
    size = args.image_size or input_size(model)
    print(f"{info['model']} from {args.checkpoint}, epoch {info['epoch']}, heads {', '.join(heads)}, {size} px, "
          f"on {device} ({precision})")
    for head, threshold in thresholds.items():
        value = "no verdict" if threshold.value is None else f"{threshold.value:.6g}"
        print(f"threshold {head}: {value} ({threshold.source})")
    inputs, ignored = inference.gather_inputs(args.paths, args.recursive, out=args.out)
    if ignored:
        print(f"ignored {len(ignored)} files that are not videos or images by their suffix (e.g. {ignored[0]})")
    if not inputs:
        raise SystemExit(f"detect.py: no video or image in {' '.join(args.paths)}")
    scorer = inference.Scorer(model, heads, device, size, args.batch_size, precision,
                              channels_last=resolve_switch("auto", device))
    meta = {"checkpoint": str(args.checkpoint), "epoch": info["epoch"], "model": info["model"], "image_size": size,
            "device": str(device), "precision": precision}
    report = inference.run(inputs, scorer, thresholds, settings, args.out, args.workers, args.overlay,
                           args.strict, meta)
    rate = f" ({report.frames_scored / report.seconds:.1f} frames/s)" if report.seconds else ""
    stopped = ", stopped at the first (--strict)" if report.stopped else ""
    print(f"{len(report.entries) - len(report.skipped)} of {len(inputs)} inputs scored, {len(report.skipped)} "
          f"skipped{stopped}; {report.frames_scored} frames in {report.seconds:.1f} s{rate}; "
          f"wrote {args.out}/results.json and results.csv")
    return 1 if report.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
