"""The rematch's analysis (rematch.md): `select` picks each arm's setting from the tuning runs' validation AUC
alone; `report` compares the arms on the test runs, with the two-way bootstrap of forensics/stats.py.

    python docs/ablation/rematch.py select RUNS/tune > docs/ablation/rematch_tuning.md
    python docs/ablation/rematch.py report RUNS/test --arms method c40 mixed > docs/ablation/rematch_results.md

Run folders are experiments.py's (<variant>_seed<N>); the tuning variants are named <arm>_<L> with the arm
method_r (released metric scale), method_m (mean), c40 or mixed, and L the learning rate."""
import argparse
import csv
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from forensics import stats

RUN = re.compile(r"(?P<variant>.+)_seed(?P<seed>\d+)")
TUNING = re.compile(r"(?P<arm>method_r|method_m|c40|mixed)_(?P<lr>[0-9.e+-]+)")
ARM_OF = {"method_r": "method", "method_m": "method", "c40": "c40", "mixed": "mixed"}
REDUCTION = {"method_r": "released", "method_m": "mean"}
MARGIN = 0.02          # the plan's non-inferiority margin
REPLICATES = 10_000    # the plan's bootstrap replicates, bootstrap seed 0
HEADLINE = ("method", "c40", "c40")  # arm minus arm, at this compression


def runs_of(root):
    """{(variant, seed): folder} of the runs under root."""
    found = {}
    for folder in sorted(Path(root).iterdir()):
        match = RUN.fullmatch(folder.name)
        if match and folder.is_dir():
            found[match["variant"], int(match["seed"])] = folder
    return found


def select(root):
    """Each setting's mean c40 validation AUC at its validation-chosen epoch (best.json) over its seeds, and
    each arm's winner (ties: the lower learning rate, then the released reduction)."""
    values = defaultdict(dict)
    for (variant, seed), folder in runs_of(root).items():
        best = folder / "best.json"
        if TUNING.fullmatch(variant) and best.exists():
            values[variant][seed] = json.loads(best.read_text())["val_auc_c40"]
    lines = ["| arm | setting | seeds | c40 validation AUC at the chosen epoch, mean | per seed |",
             "|---|---|---:|---:|---|"]
    chosen = {}
    for variant in sorted(values, key=lambda v: (ARM_OF[TUNING.fullmatch(v)["arm"]], v)):
        match = TUNING.fullmatch(variant)
        arm, lr = ARM_OF[match["arm"]], float(match["lr"])
        seeds = values[variant]
        mean = statistics.mean(seeds.values())
        setting = f"lr {match['lr']}" + (f", {REDUCTION[match['arm']]} metric scale" if arm == "method" else "")
        lines.append(f"| {arm} | {setting} | {len(seeds)} | {mean:.4f} | "
                     + " / ".join(f"{seeds[s]:.3f}" for s in sorted(seeds)) + " |")
        key = (-round(mean, 12), lr, match["arm"] != "method_r")
        if arm not in chosen or key < chosen[arm][0]:
            chosen[arm] = (key, variant, setting, mean)
    lines += ["", "Chosen (highest mean; ties to the lower learning rate, then the released scale):", ""]
    lines += [f"- {arm}: **{variant}** ({setting}), {mean:.4f}" for arm, (_, variant, setting, mean) in
              sorted(chosen.items())]
    return "\n".join(lines) + "\n"


def read_scores(path):
    """{(method, video, frame): (label, score)} of a scores.csv's test rows."""
    with open(path, newline="") as f:
        return {(r["method"], r["video"], int(r["frame"])): (int(r["label"]), float(r["score"]))
                for r in csv.DictReader(f) if r["split"] == "test"}


def score_matrix(folders, compression):
    """(labels, video of each frame, (seeds, frames) scores) over the frames every run scored."""
    tables = [read_scores(f / f"test_{compression}" / "scores.csv") for f in folders]
    keys = sorted(set.intersection(*(set(t) for t in tables)))
    labels = np.array([tables[0][k][0] for k in keys])
    videos = np.array([f"{k[0]}/{k[1]}" for k in keys])
    return labels, videos, np.array([[t[k][1] for k in keys] for t in tables])


def video_matrix(labels, videos, scores):
    """The same at video level: each video's mean frame score, as eval.py's video AUC takes it."""
    ids, inverse = np.unique(videos, return_inverse=True)
    counts = np.bincount(inverse)
    means = np.stack([np.bincount(inverse, weights=s) / counts for s in scores])
    video_labels = np.zeros(len(ids), dtype=int)
    video_labels[inverse] = labels
    return video_labels, ids, means


def compare(runs, arm_a, arm_b, compression, level):
    """Frame and video AUC of arm_a minus arm_b on the seeds both have: seed-only t interval and p, seed-only
    bootstrap, two-way bootstrap (paired and unpaired)."""
    seeds = sorted(s for (v, s) in runs if v == arm_a and (arm_b, s) in runs)
    folders = [runs[arm_a, s] for s in seeds] + [runs[arm_b, s] for s in seeds]
    labels, videos, scores = score_matrix(folders, compression)
    result = {"seeds": seeds}
    for unit, (lab, units, sc) in (("frame", (labels, videos, scores)),
                                   ("video", video_matrix(labels, videos, scores))):
        a, b = sc[:len(seeds)], sc[len(seeds):]
        ones = np.ones(a.shape[1])
        auc_a = [stats.weighted_auc(lab, s, ones) for s in a]
        auc_b = [stats.weighted_auc(lab, s, ones) for s in b]
        seed_only = stats.paired(auc_a, auc_b, MARGIN, level)
        boot = {name: stats.bootstrap_interval(a, b, lab, units, level=level, replicates=REPLICATES, seed=0,
                                               **options)
                for name, options in (("two_way", {}), ("two_way_unpaired", {"paired": False}),
                                      ("seeds_only", {"resample": ("seeds",)}),
                                      ("test_set_only", {"resample": ("units",)}))}
        result[unit] = {"a": stats.describe(auc_a, level), "b": stats.describe(auc_b, level),
                        "t": {k: seed_only[k] for k in ("mean", "sd", "ci", "p")}, **boot}
    return result


def verdict(ci):
    low, high = ci
    if high < 0:
        return "the method is worse"
    if low > 0:
        return "the method is better"
    if low > -MARGIN:
        return f"the method is not worse (by {MARGIN} or more)"
    return "not resolved"


def _ci(ci):
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def report(root, arms, level=stats.LEVEL):
    runs = runs_of(root)
    lines = []
    for compression in ("c40", "c23"):
        for arm_b in arms[1:]:
            arm_a = arms[0]
            result = compare(runs, arm_a, arm_b, compression, level)
            n = len(result["seeds"])
            lines += [f"## {arm_a} minus {arm_b}, tested at {compression} ({n} seeds: "
                      f"{result['seeds'][0]} to {result['seeds'][-1]})", "",
                      f"| AUC | {arm_a} | {arm_b} | difference | seeds only: t interval, p | seeds only: bootstrap "
                      "| test set only: bootstrap | two-way bootstrap, paired | two-way, unpaired |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for unit in ("frame", "video"):
                r = result[unit]
                lines.append(
                    f"| {unit} | {r['a']['mean']:.3f} {_ci(r['a']['ci']).replace('+', '')} "
                    f"| {r['b']['mean']:.3f} {_ci(r['b']['ci']).replace('+', '')} "
                    f"| {r['two_way']['estimate']:+.3f} | {_ci(r['t']['ci'])}, p {r['t']['p']:.3f} "
                    f"| {_ci(r['seeds_only']['ci'])} | {_ci(r['test_set_only']['ci'])} "
                    f"| {_ci(r['two_way']['ci'])} | {_ci(r['two_way_unpaired']['ci'])} |")
            if (arm_a, arm_b, compression) == HEADLINE:
                ci = result["frame"]["two_way"]["ci"]
                lines += ["", f"**Headline verdict** (c40 frame AUC, two-way paired bootstrap {_ci(ci)}, margin "
                          f"{MARGIN}): {verdict(ci)}."]
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("select").add_argument("root", type=Path)
    r = sub.add_parser("report")
    r.add_argument("root", type=Path)
    r.add_argument("--arms", nargs="+", default=["method", "c40", "mixed"],
                   help="variant names: the first minus each of the others")
    args = p.parse_args(argv)
    print(select(args.root) if args.command == "select" else report(args.root, args.arms), end="")


if __name__ == "__main__":
    main()
