"""Score the validation and test splits with a trained detector, the released checkpoints or the Xception baseline.

    python test.py --face-root face/ --splits jsons/ --checkpoint-dir runs/all --epoch best --compression c40
    python test.py --checkpoint-dir checkpoints/All --epoch 13 --model detector --format mat   # released files

c40 goes through the LQ head, c23 through the HQ head. Writes, in --out: scores.csv (one row per frame:
split, method, video, frame, label, score, compression; label 1 = fake), maps.npy (the attention maps,
float16, in the row order of scores.csv), masks.npy (the ground-truth masks at map size, when the face tree
has them) and meta.json; eval.py --scores OUT/scores.csv turns them into metrics. The validation split is
scored too so that eval.py can choose the decision threshold on it, never on the test split.
--model auto and --image-size auto take the run's config.json (released folders: detector, 299 px).
"""
import argparse
import shlex

from forensics import cli, ffpp
from forensics.device import resolve_device
from forensics.runs import load_model
from forensics.scoring import ScoreOptions, score_splits
from models.checkpoints import CheckpointError

FACE_ROOT = "face"
SPLITS = "jsons"
CHECKPOINT_DIR = "runs/detector"
EPOCH = "best"               # best (the run's best.json), last, or an epoch number
MODEL = "auto"               # auto: the run's config.json, else detector (released checkpoints)
DATASET = "All"
COMPRESSION = "c40"
MAX_FRAMES = ScoreOptions.max_frames          # first frames of each test video (released: 140)
VAL_MAX_FRAMES = ScoreOptions.val_max_frames  # first frames of each validation video; 0 skips it
IMAGE_SIZE = "auto"          # auto: the run's config.json, else 299
FORMAT = "csv"               # csv, or mat to also write the .mat files of the released eval
PRECISION = "auto"           # auto: bf16 autocast and channels_last on CUDA, fp32 on the CPU
OUT = "runs/test"
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = ScoreOptions.batch_size


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, precision=PRECISION)
    p.add_argument("--checkpoint-dir", default=CHECKPOINT_DIR,
                   help="a train.py run, or a folder of released head_N.tar/tail_N.tar files")
    p.add_argument("--epoch", default=EPOCH, help="best (from best.json), last, or an epoch number")
    p.add_argument("--model", default=MODEL, choices=("auto", "detector", "xception"))
    p.add_argument("--dataset", default=DATASET, choices=ffpp.DATASETS)
    p.add_argument("--compression", default=COMPRESSION, choices=ffpp.COMPRESSIONS)
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES, help="first frames of each test video")
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES,
                   help="first frames of each validation video (0: skip the validation split)")
    p.add_argument("--format", default=FORMAT, choices=("csv", "mat"),
                   help="mat also writes <compression>_<split>.mat for the released eval")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    try:
        model, info = load_model(args.checkpoint_dir, args.epoch, args.compression, args.model)
        print(f"{info['model']} from {args.checkpoint_dir}, epoch {info['epoch']}, on {device}")
        options = ScoreOptions(image_size=args.image_size, batch_size=args.batch_size, workers=args.workers,
                               precision=args.precision, max_frames=args.max_frames,
                               val_max_frames=args.val_max_frames)
        path = score_splits(model, info, face_root=args.face_root, splits=args.splits, out=args.out, device=device,
                            dataset=args.dataset, compression=args.compression, options=options, fmt=args.format)
    except (CheckpointError, FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"test.py: {e}") from None
    print(f"wrote {path}; next: python eval.py --scores {shlex.quote(str(path))}")
    return path


if __name__ == "__main__":
    main()
