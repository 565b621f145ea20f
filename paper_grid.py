"""Train every run of the paper's table, then build the table: the method on each of Deepfakes, Face2Face,
FaceSwap, NeuralTextures and All, and the Xception baseline on each at c23 and at c40 (15 runs).

    python paper_grid.py --face-root face/ --splits jsons/ --out runs/paper
    python paper_grid.py --face-root face/ --splits jsons/ --out runs/paper --print-commands > jobs.txt

A run that holds all its epochs is skipped and one that stopped part-way resumes from its last complete
epoch, so the same command continues an interrupted grid. --print-commands prints the train.py (or torchrun)
line of every unfinished run, one per line, for a cluster's job array; once they have run, the same command
without it finds them complete and builds the table (OUT/table/table.md and table.csv), one model per
method and compression as the released test.py tested them. Flags it does not know go to every train.py run.
"""
import argparse
from pathlib import Path

from forensics import cli, ffpp, grid
from forensics.device import resolve_device
from forensics.paper import paper_table, write_table
from forensics.scoring import ScoreOptions
from forensics.training import TrainConfig

FACE_ROOT = "face"
SPLITS = "jsons"
OUT = "runs/paper"
DATASETS = list(ffpp.DATASETS)
EPOCHS = TrainConfig.epochs
BASELINE_EPOCHS = 0          # 0: as many as the method's
NPROC = 1                    # > 1: each run under torchrun --nproc_per_node=NPROC
DEVICE = "auto"
WORKERS = cli.default_workers()
BATCH_SIZE = ScoreOptions.batch_size  # for scoring the table; training takes train.py's (pass --batch-size after --)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # a train.py flag must never pass for an abbreviation of ours
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   epochs=EPOCHS)
    p.add_argument("--datasets", nargs="+", default=DATASETS, choices=ffpp.DATASETS)
    p.add_argument("--baseline-epochs", type=int, default=BASELINE_EPOCHS)
    p.add_argument("--nproc", type=int, default=NPROC, help="processes (GPUs) per run, through torchrun")
    p.add_argument("--print-commands", action="store_true",
                   help="print the commands of the unfinished runs instead of running them")
    p.add_argument("--table-batch-size", type=int, default=BATCH_SIZE)
    args, train_args = p.parse_known_args(argv)
    train_args = ["--face-root", args.face_root, "--splits", args.splits, "--workers", str(args.workers),
                  "--device", args.device, *train_args]
    runs = grid.plan(args.out, args.datasets, epochs=args.epochs, baseline_epochs=args.baseline_epochs)
    if args.print_commands:
        for run in grid.pending(runs):
            print(grid.shell_line(grid.command(run, train_args, python="python", nproc=args.nproc)))
        return runs
    grid.train_all(runs, train_args, Path(__file__).resolve().parent, args.nproc)
    table = Path(args.out) / "table"
    # a grid with All fills every method's column too, from the All model where it has no model of its own (*)
    columns = list(ffpp.DATASETS) if "All" in args.datasets else args.datasets
    try:
        rows, notes = paper_table(grid.checkpoints(runs), face_root=args.face_root, splits=args.splits, out=table,
                                  device=resolve_device(args.device), datasets=columns,
                                  options=ScoreOptions(batch_size=args.table_batch_size, workers=args.workers))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"paper_grid.py: {e}") from None
    print(write_table(table, rows, notes, columns, ffpp.COMPRESSIONS))
    print(f"wrote {table / 'table.md'} and {table / 'table.csv'}")
    return runs


if __name__ == "__main__":
    main()
