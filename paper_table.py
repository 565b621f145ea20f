"""The paper's table in one command: ACC, AUC and video AUC of each checkpoint on Deepfakes, Face2Face,
FaceSwap, NeuralTextures and All, at c23 and c40, as Markdown (table.md) and CSV (table.csv).

    python paper_table.py --face-root face/ --splits jsons/ --checkpoint method=runs/all \\
        --checkpoint "Xception baseline@c23=runs/xception_c23" --checkpoint "Xception baseline@c40=runs/xception_c40"
    python paper_table.py --checkpoint method@Deepfakes=runs/paper/method_Deepfakes ... --checkpoint method@All=...

A checkpoint is LABEL=DIR (a row of the table, every column) or narrowed by qualifiers, a compression and/or
a dataset: LABEL@c23=DIR, LABEL@Deepfakes=DIR, LABEL@Deepfakes@c40=DIR. Each cell takes the most specific
folder given. The paper's table (and the released test.py) used one model per manipulation: give one
folder per method, as paper_grid.py does; a method's cell filled by a model trained on All is marked with *
(its number is eval.py's per-method row: that method's fakes and all real frames, with the threshold chosen
on the same subset of the validation split). Scores, metrics and plots stay under --out/<model>/<compression>/.
"""
import argparse
from pathlib import Path

from forensics import cli, ffpp
from forensics.device import resolve_device
from forensics.paper import paper_table, write_table
from forensics.scoring import ScoreOptions

FACE_ROOT = "face"
SPLITS = "jsons"
CHECKPOINTS = ["method=runs/detector", "Xception baseline@c23=runs/xception_c23",  # as --checkpoint takes them
               "Xception baseline@c40=runs/xception_c40"]
EPOCH = "best"
MAX_FRAMES = ScoreOptions.max_frames
VAL_MAX_FRAMES = ScoreOptions.val_max_frames
IMAGE_SIZE = "auto"
OUT = "runs/table"
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = ScoreOptions.batch_size


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE)
    p.add_argument("--checkpoint", action="append", default=[], metavar="LABEL[@DATASET][@COMPRESSION]=DIR",
                   help=f"a row of the table, or some of its cells (repeat; replaces the default {CHECKPOINTS})")
    p.add_argument("--datasets", nargs="+", default=list(ffpp.DATASETS), choices=ffpp.DATASETS)
    p.add_argument("--compressions", nargs="+", default=list(ffpp.COMPRESSIONS), choices=ffpp.COMPRESSIONS)
    p.add_argument("--epoch", default=EPOCH, help="best, last or an epoch number, for every checkpoint")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES)
    args = p.parse_args(argv)
    args.checkpoints = cli.parse_checkpoints(args.checkpoint or CHECKPOINTS)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        options = ScoreOptions(image_size=args.image_size, batch_size=args.batch_size, workers=args.workers,
                               max_frames=args.max_frames, val_max_frames=args.val_max_frames)
        rows, notes = paper_table(args.checkpoints, face_root=args.face_root, splits=args.splits, out=args.out,
                                  device=resolve_device(args.device), datasets=args.datasets,
                                  compressions=args.compressions, epoch=args.epoch, options=options)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"paper_table.py: {e}") from None
    print(write_table(args.out, rows, notes, args.datasets, args.compressions))
    print(f"wrote {Path(args.out) / 'table.md'} and {Path(args.out) / 'table.csv'}")
    return rows


if __name__ == "__main__":
    main()
