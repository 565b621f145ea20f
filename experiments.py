"""Paired-seed experiments: train named variants with the same seeds, score each on the test split, and say
what the differences between them are worth.

    python experiments.py --set ablation --face-root face --splits jsons --seeds 0 1 2 3 4 --jobs 2
    python experiments.py --set precision --face-root face --splits jsons --seeds 0 1 2
    python experiments.py --variant method= --variant no_mask='--mask-weight 0' --seeds 0 1 2
    python experiments.py --set ablation --seeds 0 1 2 --print-commands > jobs.txt   # for a cluster

A variant is a set of train.py flags; each (variant, seed) is one train.py run in OUT/<variant>_seed<N>, then
test.py at c23 and c40 (--epoch best: the epoch of best validation AUC) and eval.py (threshold of best
validation accuracy), as a user would run them. The same seed gives every variant the same data order and
the same initial weights where the model is the same (the detector and the one-stream Xception draw theirs
differently: across them a seed pairs the data, not the weights). A scored run is reused, an interrupted
one resumed, so an experiment goes on where it stopped and seeds can be added later; --print-commands
prints the line that finishes each unfinished run instead, for a cluster, and the same command without it
then collects the results. A finished run's checkpoints are removed once it is scored, unless --keep-checkpoints.

Sets: precision (train.py's fast path against the released fp32 path, from scratch, 6 epochs; reference
fp32), ablation (the method; without pairing, attention transfer or mask supervision; with the per-sample
mean metric loss, the classifier, the adversarial critic; the Xception baseline trained at c23, at c40 and
on both; 15 epochs; references: the method, and the c40 baseline at c40). --variant NAME='flags' adds one
(NAME@c40=... tests it at c40 only).

Writes, in OUT: results.md (printed too) with each variant's frame AUC, video AUC and accuracy on the test
split and its validation AUC (final epoch, mean of the last --last), as mean, SD and 95% interval over
seeds, and each variant's paired difference against each reference with its interval and p-value;
results.csv (the same rows, plus the no-loss and equivalence (TOST) tests against +-TOLERANCE); runs.csv
(every run's figures); results.png (mean and 95% interval per variant). Flags it does not know go to every
train.py run, before each variant's own.
"""
import argparse
import sys
from pathlib import Path

from forensics import cli, experiments
from forensics.experiments import SETS
from forensics.scoring import ScoreOptions
from forensics.training import TrainConfig
from models import INPUT_SIZE

REPO = Path(__file__).resolve().parent  # where train.py, test.py and eval.py are

FACE_ROOT = "face"
SPLITS = "jsons"
OUT = ""                     # empty: runs/<set>, or runs/experiments for --variant alone
SET = None                   # precision or ablation; None: only the --variant ones
SEEDS = (0, 1, 2)
EPOCHS = 0                   # 0: the set's (precision 6, ablation 15); train.py's 15 for --variant alone
IMAGE_SIZE = INPUT_SIZE
BATCH_SIZE = TrainConfig.batch_size
JOBS = 1                     # runs at once (they share the device)
LAST = 3                     # also reported: the mean validation AUC of the last epochs
TOLERANCE = 0.01             # the margin of the no-loss and equivalence tests
ALPHA = 0.05                 # their level
TEST_FRAMES = ScoreOptions.max_frames  # first frames of each test and validation video test.py scores
TEST_BATCH_SIZE = ScoreOptions.batch_size
DEVICE = "auto"
WORKERS = cli.default_workers()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # a train.py flag must never pass for an abbreviation of ours
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, epochs=EPOCHS)
    p.add_argument("--set", default=SET, choices=SETS, help="a built-in set of variants")
    p.add_argument("--variant", action="append", default=[], metavar="NAME='FLAGS'",
                   help="a variant of one's own: its train.py flags (NAME@c40=... tests it at c40 only); repeatable")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these variants of the set")
    p.add_argument("--reference", nargs="+", metavar="NAME[@c40]",
                   help="variants to take the paired differences against (default: the set's, else the first)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--jobs", type=int, default=JOBS, help="runs at once")
    p.add_argument("--last", type=int, default=LAST, help="also report the mean validation AUC of these last epochs")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's checkpoints (removed by default once it is scored)")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="margin of the no-loss and equivalence tests of the mean difference")
    p.add_argument("--alpha", type=float, default=ALPHA, help="level of those tests")
    p.add_argument("--margins", action="store_true", help="show those tests in results.md (the precision set does)")
    p.add_argument("--test-frames", type=int, default=TEST_FRAMES,
                   help="first frames of each test and validation video that test.py scores")
    p.add_argument("--test-batch-size", type=int, default=TEST_BATCH_SIZE)
    p.add_argument("--print-commands", action="store_true",
                   help="print the line that finishes each unfinished run instead of running it")
    args, extra = p.parse_known_args(argv)  # anything else goes to every train.py run
    chosen = SETS.get(args.set)
    try:
        variants = experiments.choose_variants(args.set, [experiments.parse_variant(v) for v in args.variant],
                                               args.only)
        references = ([experiments.parse_reference(r) for r in args.reference] if args.reference
                      else [r for r in chosen.references if r[0] in {v.name for v in variants}] if chosen
                      else [])
        references = references or [(variants[0].name, None)]
    except ValueError as e:
        p.error(str(e))
    unknown = [name for name, _ in references if name not in {v.name for v in variants}]
    if unknown:
        p.error(f"--reference {unknown[0]}: not a variant here ({', '.join(v.name for v in variants)})")
    epochs = args.epochs or (chosen.epochs if chosen else TrainConfig.epochs)
    if not 1 <= args.last <= epochs:
        p.error(f"--last {args.last}: needs 1 to --epochs ({epochs})")
    out = Path(args.out or f"runs/{args.set or 'experiments'}")
    set_flags = list(chosen.flags) if chosen else []
    train_args = ["--face-root", args.face_root, "--splits", args.splits, "--device", args.device, "--workers",
                  str(args.workers), "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                  "--epochs", str(epochs), *set_flags, *extra]
    test_args = ["--face-root", args.face_root, "--splits", args.splits, "--device", args.device, "--workers",
                 str(args.workers), "--batch-size", str(args.test_batch_size), "--max-frames", str(args.test_frames),
                 "--val-max-frames", str(args.test_frames)]
    runs = experiments.plan(variants, args.seeds, out, epochs, train_args, test_args)
    try:
        for run in runs:
            if run.state() in ("done", "test", "unscorable", "resume"):
                run.check()
    except ValueError as e:
        raise SystemExit(f"experiments.py: {e}") from None
    if args.print_commands:
        for run in runs:
            line = experiments.print_line(run)
            if line:
                print(line)
        return runs
    experiments.run_all(runs, args.jobs, sys.executable, REPO, args.keep_checkpoints)
    metrics = experiments.metrics_of(args.last)
    values = experiments.collect(runs, args.last)
    rows = experiments.summarise(values, variants, args.seeds, references, metrics, args.tolerance)
    title = (f"{args.set or 'experiment'}: {len(variants)} variants, seeds {' '.join(map(str, args.seeds))}, "
             f"{epochs} epochs")
    text = experiments.write_results(out, runs, values, rows, metrics, title, references, args.tolerance,
                                     args.alpha, args.margins or bool(chosen and chosen.margins))
    print(text)
    print(f"wrote {out / 'results.md'}, results.csv, runs.csv and results.png")
    return rows


if __name__ == "__main__":
    main()
