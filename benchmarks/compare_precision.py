"""Validation AUC of the default fast path against the released fp32 path, over several seeds.

    python benchmarks/compare_precision.py --face-root runs/demo/face --splits demo_data/splits --seeds 0 1 2

default: bf16 autocast, channels_last, torch.compile, fused Adam, uint8 loader (train.py's defaults on CUDA).
fp32:    fp32, eager, plain Adam, PIL loader (the released code's settings).
Each (setting, seed) is one train.py run in OUT/<setting>_seed<N>, with the same data, seed and epochs; a run
whose history already holds every epoch is reused, so an interrupted comparison goes on where it stopped.
A finished run's checkpoints are removed unless --keep-checkpoints (e.g. to score them with test.py).
--jobs runs that many at once (they share the GPU: compare AUCs, not the pairs/s of such runs). Prints each
seed's validation AUC at c23 and c40 for both settings (final epoch, and the mean of the --last epochs), their
means, the paired differences with their standard error and 95% confidence interval, and two one-sided t-tests
against +-TOLERANCE (the issue's "within 0.01"): "no loss" (the default is not worse than fp32 by TOLERANCE or
more) and "equivalent" (TOST: neither worse nor better by that much), each at level --alpha (0.05); writes
OUT/summary.json. For scale it also gives the SD of the difference between two fp32 runs of different seeds
(sqrt(2) x the fp32 SD): what one run against one run can resolve at all.

Arguments it does not know go to every train.py run, before each setting's own flags. On a CPU with bf16
support, `--device cpu --precision bf16` makes "default" bf16 autocast (its only change from fp32 there, as the
CPU runs eager with the same pixels), so the effect of bf16 on training can be measured without a GPU.
"""
import argparse
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scipy import stats

from forensics import cli
from forensics.fileio import read_json, write_json
from forensics.training import RELEASED_SETTINGS, as_flags

REPO = Path(__file__).resolve().parent.parent  # where train.py is

FACE_ROOT = "runs/demo/face"
SPLITS = "demo_data/splits"
OUT = "runs/precision"
SEEDS = (0, 1, 2)
EPOCHS = 6
IMAGE_SIZE = 299
BATCH_SIZE = 64
JOBS = 1
LAST = 3                # also reported: the mean AUC of the last epochs
TOLERANCE = 0.01        # the margin of the no-loss and equivalence tests
ALPHA = 0.05            # their level
WORKERS = cli.default_workers()
DEVICE = "auto"
QUALITIES = ("c23", "c40")
SETTINGS = {
    "default": [],
    "fp32": as_flags(RELEASED_SETTINGS),
}


def history(run, epochs):
    """The run's history when it holds every epoch, else None."""
    path = run / "history.json"
    if not path.exists():
        return None
    entries = read_json(path, "training history")
    return entries[:epochs] if len(entries) >= epochs else None


def train(setting, seed, args, extra):
    run = Path(args.out) / f"{setting}_seed{seed}"
    done = history(run, args.epochs)
    if done is not None:
        print(f"{run.name}: reusing its {len(done)} epochs", flush=True)
        return done
    run.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(REPO / "train.py"), "--face-root", args.face_root, "--splits", args.splits,
           "--out", str(run), "--device", args.device, "--workers", str(args.workers), "--image-size",
           str(args.image_size), "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
           "--seed", str(seed), "--pretrained", "none", *extra, *SETTINGS[setting]]
    started = time.time()
    with open(run / "train.log", "w") as log:
        code = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"{run.name}: train.py exited with {code}; see {run / 'train.log'}")
    print(f"{run.name}: {args.epochs} epochs in {time.time() - started:.0f} s", flush=True)
    if not args.keep_checkpoints:  # about 0.3 GB an epoch: 40 runs of 4 epochs would fill 50 GB
        for path in run.glob("*.tar"):
            path.unlink()
    return history(run, args.epochs)


def auc(entries, quality, last):
    """Validation AUC of the final epoch (last=1) or its mean over the last epochs, which evens out the
    epoch-to-epoch swings of a short from-scratch run."""
    return statistics.mean(h[f"val_auc_{quality}"] for h in entries[-last:])


def _sd(values):
    """Sample standard deviation; None for a single value."""
    return statistics.stdev(values) if len(values) > 1 else None


def _se(values):
    """Standard error of the mean; None for a single value."""
    sd = _sd(values)
    return None if sd is None else sd / math.sqrt(len(values))


def _fmt(value):
    return "n/a" if value is None else f"{value:.4f}"


def interval(diffs, level=0.95):
    """Student-t confidence interval of the mean paired difference; None for a single seed."""
    se = _se(diffs)
    if se is None:
        return None
    mean, half = statistics.mean(diffs), float(stats.t.ppf(0.5 + level / 2, len(diffs) - 1)) * se
    return [mean - half, mean + half]


def margin_tests(diffs, tolerance):
    """One-sided t-test p-values of the mean paired difference against the margin: "no_loss" rejects
    mean <= -tolerance, "equivalent" (TOST) rejects both mean <= -tolerance and mean >= +tolerance.
    None for a single seed."""
    se = _se(diffs)
    if se is None:
        return None
    mean, t = statistics.mean(diffs), stats.t(len(diffs) - 1)
    if se == 0:  # identical differences (e.g. both paths in fp32 on a CPU): nothing is uncertain
        p_above, p_below = float(mean <= -tolerance), float(mean >= tolerance)
    else:
        p_above = float(t.sf((mean + tolerance) / se))   # H0: mean <= -tolerance
        p_below = float(t.cdf((mean - tolerance) / se))  # H0: mean >= +tolerance
    return {"no_loss": p_above, "equivalent": max(p_above, p_below)}


def summarise(results, seeds, last, tolerance, alpha=ALPHA):
    """Per statistic and quality: each setting's AUC per seed, mean and SD, and default - fp32 per seed
    with its mean, standard error, 95% interval and the margin tests' p-values and verdicts."""
    summary = {}
    for statistic, k in {"final": 1, f"last_{last}": last}.items():
        for q in QUALITIES:
            values = {s: [auc(results[s, seed], q, k) for seed in seeds] for s in SETTINGS}
            diffs = [d - f for d, f in zip(values["default"], values["fp32"])]
            sd = {s: _sd(v) for s, v in values.items()}
            p = margin_tests(diffs, tolerance) or {}
            summary[f"{statistic}_{q}"] = entry = {
                "auc": values, "difference": diffs,
                "mean": {s: statistics.mean(v) for s, v in values.items()}, "sd": sd,
                "mean_difference": statistics.mean(diffs),
                "se_difference": _se(diffs),
                "ci95_difference": interval(diffs),
                "sd_fp32_vs_fp32": None if sd["fp32"] is None else math.sqrt(2) * sd["fp32"]}
            for test in ("no_loss", "equivalent"):
                entry[f"p_{test}"] = p.get(test)
                entry[test] = test in p and p[test] < alpha
    return summary


def print_summary(summary, seeds, epochs, last, tolerance):
    for statistic, title in (("final", f"final-epoch validation AUC after {epochs} epochs"),
                             (f"last_{last}", f"mean validation AUC of epochs {epochs - last + 1}-{epochs}")):
        rows = {q: summary[f"{statistic}_{q}"] for q in QUALITIES}
        print(f"\n{title}")
        print("| seed | " + " | ".join(f"{s} {q}" for q in QUALITIES for s in SETTINGS) + " | "
              + " | ".join(f"difference {q}" for q in QUALITIES) + " |")
        print("|---" * (1 + 3 * len(QUALITIES)) + "|")
        for i, seed in enumerate(seeds):
            cells = [f"{rows[q]['auc'][s][i]:.4f}" for q in QUALITIES for s in SETTINGS]
            cells += [f"{rows[q]['difference'][i]:+.4f}" for q in QUALITIES]
            print(f"| {seed} | " + " | ".join(cells) + " |")
        for q, r in rows.items():
            m, sd, ci = r["mean"], r["sd"], r["ci95_difference"]
            print(f"{q}: default {m['default']:.4f} (SD {_fmt(sd['default'])}), fp32 {m['fp32']:.4f} "
                  f"(SD {_fmt(sd['fp32'])}), difference {r['mean_difference']:+.4f} (SE {_fmt(r['se_difference'])}"
                  + ("" if ci is None else f", 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}]") + ")")
            if ci is None:
                print("  margin tests: n/a with one seed")
                continue
            print(f"  two fp32 runs of different seeds differ with SD {r['sd_fp32_vs_fp32']:.4f}; "
                  f"no loss beyond {tolerance}: {'shown' if r['no_loss'] else 'not shown'} (p = {r['p_no_loss']:.3f}); "
                  f"equivalent within +-{tolerance}: {'shown' if r['equivalent'] else 'not shown'} "
                  f"(TOST p = {r['p_equivalent']:.3f})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, epochs=EPOCHS)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--jobs", type=int, default=JOBS, help="train.py runs at once")
    p.add_argument("--last", type=int, default=LAST, help="also report the mean AUC of this many last epochs")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's checkpoints (removed by default: the comparison reads only the histories)")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="margin of the no-loss and equivalence tests of the mean difference")
    p.add_argument("--alpha", type=float, default=ALPHA, help="level of those tests")
    args, extra = p.parse_known_args(argv)  # anything else goes to every train.py run
    if not 1 <= args.last <= args.epochs:
        p.error(f"--last {args.last}: needs 1 to --epochs ({args.epochs})")
    runs = [(s, seed) for seed in args.seeds for s in SETTINGS]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(runs, pool.map(lambda r: train(*r, args, extra), runs)))
    summary = summarise(results, args.seeds, args.last, args.tolerance, args.alpha)
    write_json(Path(args.out) / "summary.json", {"seeds": args.seeds, "epochs": args.epochs,
                                                 "tolerance": args.tolerance, "alpha": args.alpha, **summary},
               indent=2)
    print_summary(summary, args.seeds, args.epochs, args.last, args.tolerance)
    return summary


if __name__ == "__main__":
    main()
