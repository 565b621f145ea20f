"""Cross-dataset evaluation: checkpoints trained on FF++ tested on datasets they never saw, in one command.

    python cross_dataset.py --checkpoint method=runs/all --dataset celebdf=Celeb-DF-v2 --dataset dfdc=dfdc_test \\
        --dataset deeperforensics=DeeperForensics-1.0 --ffpp-root FF++ --out runs/cross

--dataset NAME=ROOT (repeat) reads ROOT with the adapter NAME: celebdf, celebdf-v1, dfdc, dfdcp, deeperforensics,
faceshifter, dfd, ffpp or folder (ROOT/real/** and ROOT/fake/**); docs/cross_dataset.md lists the files each
reads. In each video dlib finds and tracks the main face in --max-frames evenly spaced frames; the crops are cut
at each checkpoint's image size and scored as test.py scores, through each head of --heads (a baseline run: its
one stream). Writes OUT/<dataset>/<checkpoint>/scores.csv (video, method, frame, label with 1 = fake, score)
and metrics.json (frame and video AUC, AP, EER, accuracy at the run's FF++ validation threshold, the oracle
best accuracy), OUT/<dataset>/videos.csv (each labelled video and whether it was scored) and OUT/table.md and
table.csv (a row per checkpoint and head; frame and video AUC per dataset and their mean). Faces and crops are
cached in OUT/prep/, shared by every checkpoint of the same image size; a rerun or a killed run reuses them.
A missing, unreadable or faceless video is skipped with one line; the exit status is then 1.
"""
import argparse
import sys

from forensics import cli, cross, datasets, ffpp
from forensics.scoring import ScoreOptions
from forensics.device import resolve_device, resolve_precision
from models import HEADS
from models.checkpoints import CheckpointError

CHECKPOINTS = ["method=runs/detector"]  # as --checkpoint takes them: [LABEL[@c23|@c40]=]RUN
DATASETS = []                # NAME=ROOT, as --dataset takes them
FFPP_ROOT = ffpp.ROOT        # FF++'s originals: the real videos of deeperforensics
FFPP_QUALITY = "auto"        # ffpp, faceshifter, dfd and deeperforensics' reals: auto = c23, else c40, else raw
SPLITS = "jsons"             # FF++'s test split, for ffpp and faceshifter
EPOCH = "best"
MAX_VIDEOS = 0               # 0: every labelled video; N: a seeded subset, half real and half fake
MAX_FRAMES = 32              # frames of each video, evenly spaced (DeepfakeBench's test protocol); 0: all
IMAGE_SIZE = "auto"          # auto: each run's own size (config.json), else 299
PRECISION = "auto"
DETECTION = cross.FACES      # dlib on every sampled frame, again at 1280 px where nothing is found at 640
OUT = "runs/cross"
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = ScoreOptions.batch_size
SEED = 0


def dataset_arg(value):
    name, sep, root = value.partition("=")
    if not sep or not root or name not in datasets.ADAPTERS:
        raise argparse.ArgumentTypeError(f"{value!r}: use NAME=ROOT with NAME one of {', '.join(datasets.ADAPTERS)}")
    return name, root


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", default=[], metavar="[LABEL[@COMPRESSION]=]RUN",
                   help=f"a row of the table (repeat; replaces the default {CHECKPOINTS})")
    p.add_argument("--dataset", action="append", type=dataset_arg, default=[], metavar="NAME=ROOT",
                   help=f"a dataset to test on (repeat); NAME: {', '.join(datasets.ADAPTERS)}")
    cli.add_common(p, ffpp_root=FFPP_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=SEED, precision=PRECISION)
    p.add_argument("--ffpp-quality", choices=("auto",) + datasets.FFPP_QUALITIES, default=FFPP_QUALITY,
                   help=f"the FF++ videos read by ffpp, faceshifter, dfd and deeperforensics (default: {FFPP_QUALITY}: "
                        "the first of c23, c40, raw present)")
    p.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS),
                   help="the heads of a detector run to score through, one row each (default: both)")
    p.add_argument("--epoch", default=EPOCH, help="best, last or an epoch number, for every checkpoint")
    p.add_argument("--max-videos", type=int, default=MAX_VIDEOS,
                   help="a seeded subset of each dataset, half real and half fake (default: 0, every video)")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                   help=f"frames of each video, evenly spaced over it; 0 for all (default: {MAX_FRAMES})")
    cli.add_detector_flags(p, DETECTION)
    args = p.parse_args(argv)
    args.checkpoints = cli.parse_checkpoints(args.checkpoint or CHECKPOINTS)
    given = [name for name, _ in args.dataset] or [v.partition("=")[0] for v in DATASETS]
    if not given:
        p.error("give at least one --dataset NAME=ROOT")
    if len(set(given)) < len(given):
        p.error(f"--dataset: each NAME once (given: {', '.join(given)})")
    args.datasets = dict(args.dataset or map(dataset_arg, DATASETS))
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    settings = cross.Settings(device=device, epoch=args.epoch, heads=tuple(args.heads), image_size=args.image_size,
                              batch_size=args.batch_size, workers=args.workers,
                              precision=resolve_precision(args.precision, device))
    detection = cross.Detection(max_frames=args.max_frames, settings=cli.detection_settings(args))
    options = datasets.Options(ffpp_root=args.ffpp_root, splits=args.splits, ffpp_quality=args.ffpp_quality)
    try:
        text, tally = cross.evaluate(args.checkpoints, args.datasets, args.out, settings, detection, options,
                                     args.max_videos, args.seed)
    except (CheckpointError, FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"cross_dataset.py: {e}") from None
    print(text)
    print(f"wrote {args.out}/table.md and table.csv" + (f"; {len(tally.skips)} skip lines above" if tally.skips
                                                          else ""))
    return 1 if tally.skips else 0


if __name__ == "__main__":
    sys.exit(main())
