"""Metrics of a scores.csv written by test.py: frame and video level, overall and per method.

    python eval.py --scores runs/test/scores.csv

The decision threshold (for ACC) is the one of best accuracy on the file's validation rows, and the metrics
are computed on its test rows, so the test split never tunes anything; each method's row has its own
(details in forensics/evaluation.py). Writes metrics.json, roc.png and hist.png beside the scores (or in --out).
What makes the numbers other than asked for (a method missing from an All file, validation or test rows of one
class) is printed as a warning and listed in metrics.json; --strict makes it an error (exit status 1).
"""
import argparse
from pathlib import Path

from forensics.evaluation import evaluate, format_table

SCORES = "runs/test/scores.csv"
OUT = ""                     # empty: the folder of --scores
STRICT = False               # True: a warning is an error


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", default=SCORES, help=f"scores.csv written by test.py (default: {SCORES})")
    p.add_argument("--out", default=OUT, help="folder for metrics.json and the plots (default: beside --scores)")
    p.add_argument("--no-plots", action="store_true", help="skip roc.png and hist.png")
    p.add_argument("--strict", action="store_true", default=STRICT,
                   help="exit with status 1, writing nothing, on any warning about the scores")
    args = p.parse_args(argv)
    try:
        metrics = evaluate(args.scores, args.out or None, plots=not args.no_plots, strict=args.strict)
    except (OSError, ValueError) as e:
        raise SystemExit(f"eval.py: {e}") from None
    print(format_table(metrics))
    print(f"wrote {Path(args.out or Path(args.scores).parent) / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main()
