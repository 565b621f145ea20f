"""The paper's table in one command: ACC, AUC and video AUC of each checkpoint on Deepfakes, Face2Face,
FaceSwap, NeuralTextures and All, at c23 and c40, as Markdown (table.md) and CSV (table.csv).

    python paper_table.py                                   # the demo data and runs (constants below)
    python paper_table.py --face-root face/ --splits jsons/ --checkpoint method=runs/all \\
        --checkpoint "Xception baseline@c23=runs/xception_c23" --checkpoint "Xception baseline@c40=runs/xception_c40"

Each checkpoint is scored once per compression on All (test.py, in-process) and evaluated by eval.py; a
method's column is eval.py's per-method row (that method's fakes and all real frames, with the threshold
chosen on the same subset of the validation split), which is what test.py --dataset <method> gives.
Scores, metrics and plots of every run stay under --out/<model>/<compression>/.
"""
import argparse
import csv
import importlib.util
import io
import re
import sys
from pathlib import Path

import torch

from forensics import cli, ffpp
from forensics.fileio import write_bytes
from models.checkpoints import CheckpointError

REPO = Path(__file__).resolve().parent
FACE_ROOT = "runs/demo/face"
SPLITS = "demo_data/splits"
# label -> run folder, or label -> {compression: run folder} for a model trained per compression
CHECKPOINTS = {"method": "runs/demo/detector", "Xception baseline": "runs/demo/xception_c23"}
DATASETS = ffpp.METHODS + ("All",)
COMPRESSIONS = ffpp.COMPRESSIONS
EPOCH = "best"
MAX_FRAMES = 140
VAL_MAX_FRAMES = 140
IMAGE_SIZE = "auto"
OUT = "runs/demo/table"
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = 64
SEED = 0
COLUMNS = ("acc", "auc", "video_auc")
METRICS = ("acc", "auc", "video_auc", "best_acc", "eer", "ap", "video_acc", "frames", "videos", "threshold_source")
CSV_COLUMNS = ("model", "compression", "dataset") + METRICS + ("trained_on", "checkpoint_dir", "epoch")


def _script(name):
    """test.py and eval.py by path: 'test' would otherwise resolve to the standard library's test package."""
    module_name = f"_ffpp_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / f"{name}.py")
        sys.modules[module_name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[module_name])
    return sys.modules[module_name]


def parse_checkpoints(values):
    """LABEL=DIR (every compression) or LABEL@c23=DIR (one compression) into CHECKPOINTS' form."""
    checkpoints = {}
    for value in values:
        key, sep, folder = value.partition("=")
        label, at, compression = key.partition("@")
        if not sep or not label or (at and compression not in ffpp.COMPRESSIONS):
            raise SystemExit(f"--checkpoint {value!r}: use LABEL=DIR or LABEL@c23=DIR / LABEL@c40=DIR")
        if at:
            entry = checkpoints.setdefault(label, {})
            if not isinstance(entry, dict):
                raise SystemExit(f"--checkpoint {value!r}: {label} already has one folder for every compression")
            entry[compression] = folder
        else:
            checkpoints[label] = folder
    return checkpoints


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=SEED)
    p.add_argument("--checkpoint", action="append", default=[], metavar="LABEL[@COMPRESSION]=DIR",
                   help=f"a row of the table (repeat; replaces the default {CHECKPOINTS})")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--compressions", nargs="+", default=list(COMPRESSIONS), choices=ffpp.COMPRESSIONS)
    p.add_argument("--epoch", default=EPOCH, help="best, last or an epoch number, for every checkpoint")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES)
    args = p.parse_args(argv)
    args.checkpoints = parse_checkpoints(args.checkpoint) if args.checkpoint else dict(CHECKPOINTS)
    try:
        args.image_size = None if args.image_size == "auto" else int(args.image_size)
    except ValueError:
        raise SystemExit(f"--image-size {args.image_size!r}: use auto or a number of pixels") from None
    return args


def _slug(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def _cell(metrics, dataset):
    """The metrics of one dataset out of an All evaluation, or None when the face tree lacks it."""
    if dataset == "All":
        return metrics
    if "per_method" in metrics:
        return metrics["per_method"].get(dataset)
    return metrics if metrics["methods"] == [dataset] else None


def build_table(args):
    """Score and evaluate every (checkpoint, compression); returns (CSV rows, notes)."""
    test, evaluate = _script("test"), _script("eval")
    folders = {(label, c): value.get(c) if isinstance(value, dict) else value
               for label, value in args.checkpoints.items() for c in args.compressions}
    missing = sorted({f for f in folders.values() if f and not Path(f).is_dir()})
    if missing:
        raise SystemExit(f"checkpoint folder not found: {', '.join(missing)}; train them first (train.py, "
                         "--model xception for the baseline) or pass --checkpoint LABEL=DIR")
    device = cli.resolve_device(args.device)
    rows, notes = [], []
    for (label, compression), folder in folders.items():
        if folder is None:
            notes.append(f"{label}: no checkpoint given for {compression}")
            continue
        try:
            model, info = test.load_model(folder, args.epoch, compression)
        except CheckpointError as e:
            notes.append(f"{label} at {compression}: not tested: {e}")
            print(f"skipped: {notes[-1]}")
            continue
        print(f"{label} at {compression}: {info['model']} from {folder}, epoch {info['epoch']}")
        out = Path(args.out) / _slug(label) / compression
        scores = test.test(model, info, args.face_root, args.splits, out, "All", compression, args.image_size,
                           device, args.batch_size, args.workers, args.max_frames, args.val_max_frames)
        metrics = evaluate.evaluate(scores)
        for dataset in args.datasets:
            m = _cell(metrics, dataset)
            row = {"model": label, "compression": compression, "dataset": dataset, "trained_on": info["trained_on"],
                   "checkpoint_dir": folder, "epoch": info["epoch"]}
            if m is not None:
                row.update({k: m[k] for k in METRICS})
            rows.append(row)
    return rows, notes


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f}"


def markdown(rows, notes, datasets, compressions):
    lines = ["ACC, AUC and video AUC in %, test split; ACC at the threshold of best validation accuracy.", ""]
    labels = list(dict.fromkeys(r["model"] for r in rows))
    index = {(r["model"], r["compression"], r["dataset"]): r for r in rows}
    for compression in compressions:
        header = ["Model", "Trained on"] + [f"{d} {c}" for d in datasets
                                            for c in ("ACC", "AUC", "video AUC")]
        lines += [f"### {compression}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
        for label in labels:
            cells = [index.get((label, compression, d)) for d in datasets]
            if not any(cells):
                continue
            trained = next(c["trained_on"] for c in cells if c) or "?"
            values = [_percent(c.get(k) if c else None) for c in cells for k in COLUMNS]
            lines.append("| " + " | ".join([label, trained] + values) + " |")
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def csv_text(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in CSV_COLUMNS} for r in rows)
    return buffer.getvalue()


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    try:
        rows, notes = build_table(args)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"paper_table.py: {e}") from None
    text = markdown(rows, notes, args.datasets, args.compressions)
    out = Path(args.out)
    write_bytes(out / "table.md", text.encode())
    write_bytes(out / "table.csv", csv_text(rows).encode())
    print(text)
    print(f"wrote {out / 'table.md'} and {out / 'table.csv'}")
    return rows


if __name__ == "__main__":
    main()
