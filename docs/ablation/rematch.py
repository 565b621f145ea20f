"""The rematch's analysis (rematch.md): `select` picks each arm's setting from the tuning runs' validation AUC
alone; `pack` keeps the test runs' test-frame scores in one committed file (the runs' folders do not outlive a
session; the study spans several); `report` compares the arms on that file, with the two-way bootstrap of
forensics/stats.py; `change` (added after step 3's result was seen) how a difference moved from one packed
file to another; `validation` tabulates the test runs' validation AUC at their chosen epoch (best.json).

    python docs/ablation/rematch.py select RUNS/tune > docs/ablation/rematch_tuning.md
    python docs/ablation/rematch.py pack RUNS/test docs/ablation/rematch_scores_64.csv.gz --arms method c40 mixed
    python docs/ablation/rematch.py report docs/ablation/rematch_scores_64.csv.gz --arms method c40 mixed
    python docs/ablation/rematch.py change docs/ablation/rematch_scores_128.csv.gz \
        docs/ablation/rematch_scores_64.csv.gz --arms method c40
    python docs/ablation/rematch.py validation RUNS/test --arms method c40 mixed

Run folders are experiments.py's (<variant>_seed<N>); the tuning variants are named <arm>_<L> with the arm
method_r (released metric scale), method_m (mean), c40 or mixed, and L the learning rate."""
import argparse
import collections
import csv
import gzip
import io
import json
import re
import statistics
from pathlib import Path

import numpy as np

from forensics import stats
from forensics.fileio import write_bytes

RUN = re.compile(r"(?P<variant>.+)_seed(?P<seed>\d+)")
TUNING = re.compile(r"(?P<arm>method_r|method_m|c40|mixed)_(?P<lr>[0-9.e+-]+)")
ARM_OF = {"method_r": "method", "method_m": "method", "c40": "c40", "mixed": "mixed"}
REDUCTION = {"method_r": "released", "method_m": "mean"}
MARGIN = 0.02          # the plan's non-inferiority margin
REPLICATES = 10_000    # the plan's bootstrap replicates, bootstrap seed 0
HEADLINE = ("method", "c40", "c40")  # arm minus arm, at this compression
COMPRESSIONS = ("c40", "c23")
KEY = ["compression", "method", "video", "frame", "label"]


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
    values = collections.defaultdict(dict)
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
    """{(method, video, frame): (label, score as written)} of a scores.csv's test rows."""
    with open(path, newline="") as f:
        return {(r["method"], r["video"], int(r["frame"])): (int(r["label"]), r["score"])
                for r in csv.DictReader(f) if r["split"] == "test"}


def finished(folder):
    """Scored at both compressions at the run's validation-chosen epoch."""
    best = folder / "best.json"
    if not best.exists():
        return False
    epoch = json.loads(best.read_text())["epoch"]
    metrics = [folder / f"test_{c}" / "metrics.json" for c in COMPRESSIONS]
    return all(m.exists() and json.loads(m.read_text()).get("epoch") == epoch for m in metrics)


def float32(text, where):
    """A score that is a float32 (test.py's are): packed in 9 significant digits, which give it back exactly."""
    value = float(text)
    if float(np.float32(value)) != value:
        raise ValueError(f"{where}: score {text} is not a float32 value; pack keeps 9 digits, which would round it")
    return value


def read_packed(path):
    """{(variant, seed): {(compression, method, video, frame): (label, score)}} of a packed file, each score the
    float32 that test.py wrote."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    names = [n for n in (rows[0] if rows else {}) if n not in KEY]
    packed = {}
    for name in names:
        match = RUN.fullmatch(name)
        packed[match["variant"], int(match["seed"])] = {
            (r["compression"], r["method"], r["video"], int(r["frame"])): (int(r["label"]), float(np.float32(r[name])))
            for r in rows}
    return packed


def pack(root, path, arms):
    """Add root's test runs to the packed file, a seed once every arm has finished it; runs already packed are
    kept as they are (a run is never replaced). Returns the run names added."""
    packed = read_packed(path) if path.exists() else {}
    runs = runs_of(root)
    added = {}
    for seed in sorted({s for (_, s) in runs}):
        folders = {arm: runs.get((arm, seed)) for arm in arms if (arm, seed) not in packed}
        if not folders or not all(f is not None and finished(f) for f in folders.values()):
            continue
        for arm, folder in folders.items():
            scores = {}
            for c in COMPRESSIONS:
                source = folder / f"test_{c}" / "scores.csv"
                scores.update({(c, *key): (label, float32(score, source))
                               for key, (label, score) in read_scores(source).items()})
            added[arm, seed] = scores
    if not added:
        return []
    table = {**packed, **added}
    keys = sorted(next(iter(table.values())))
    for (variant, seed), scores in table.items():
        if sorted(scores) != keys:
            raise ValueError(f"{variant}_seed{seed}: its test frames differ from the other runs'; every run must "
                             "score the same test set")
    names = sorted(table, key=lambda r: (r[1], r[0]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(KEY + [f"{v}_seed{s}" for v, s in names])
    for key in keys:
        label = table[names[0]][key][0]
        writer.writerow([*key, label, *(f"{np.float32(table[name][key][1]):.9g}" for name in names)])
    write_bytes(path, gzip.compress(out.getvalue().encode(), mtime=0))
    return [f"{v}_seed{s}" for v, s in sorted(added, key=lambda r: (r[1], r[0]))]


def score_matrix(tables, compression):
    """(labels, video of each frame, (seeds, frames) scores) over the frames every run scored at compression."""
    keys = sorted(set.intersection(*(set(k for k in t if k[0] == compression) for t in tables)))
    labels = np.array([tables[0][k][0] for k in keys])
    videos = np.array([f"{k[1]}/{k[2]}" for k in keys])
    return labels, videos, np.array([[t[k][1] for k in keys] for t in tables])


def video_matrix(labels, videos, scores):
    """The same at video level: each video's mean frame score, as eval.py's video AUC takes it."""
    ids, inverse = np.unique(videos, return_inverse=True)
    counts = np.bincount(inverse)
    means = np.stack([np.bincount(inverse, weights=s) / counts for s in scores])
    video_labels = np.zeros(len(ids), dtype=int)
    video_labels[inverse] = labels
    return video_labels, ids, means


def compare(runs, arm_a, arm_b, compression, level, seeds=None):
    """Frame and video AUC of arm_a minus arm_b on the seeds both have (of `seeds`, if given): seed-only t
    interval and p, seed-only bootstrap, two-way bootstrap (paired and unpaired). runs: read_packed's."""
    seeds = sorted(s for (v, s) in runs if v == arm_a and (arm_b, s) in runs and (seeds is None or s in seeds))
    tables = [runs[arm_a, s] for s in seeds] + [runs[arm_b, s] for s in seeds]
    labels, videos, scores = score_matrix(tables, compression)
    result = {"seeds": seeds}
    for unit, (lab, units, sc) in (("frame", (labels, videos, scores)),
                                   ("video", video_matrix(labels, videos, scores))):
        a, b = sc[:len(seeds)], sc[len(seeds):]
        auc_a, auc_b = stats.run_aucs(lab, a), stats.run_aucs(lab, b)
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


def report(path, arms, seeds=None, level=stats.LEVEL):
    runs = read_packed(path)
    lines = []
    for compression in COMPRESSIONS:
        for arm_b in arms[1:]:
            arm_a = arms[0]
            result = compare(runs, arm_a, arm_b, compression, level, seeds)
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


def change(path, base_path, arms, seeds=None, level=stats.LEVEL):
    """How arm_a minus arm_b changed from base_path's runs to path's (step 3: 64 px to 128 px), on the seeds
    both files have at every arm, paired by seed (a seed number starts both sizes from the same draws), one
    test-video draw for every run in a replicate: the seed-only t interval and p of the per-seed change and
    the two-way bootstrap of stats.contrast_interval. Added to the analysis after step 3's result was seen
    (rematch.md says so)."""
    arm_a, arm_b = arms
    runs, base = read_packed(path), read_packed(base_path)
    both = sorted(s for (v, s) in runs if v == arm_a and all((arm, s) in r for arm in arms for r in (runs, base)))
    seeds = [s for s in both if seeds is None or s in seeds]
    lines = []
    for compression in COMPRESSIONS:
        tables = [r[arm, s] for r in (runs, base) for arm in arms for s in seeds]
        if len({frozenset(k for k in t if k[0] == compression) for t in tables}) > 1:
            raise ValueError(f"{path} and {base_path} do not hold the same {compression} test frames: the change "
                             "needs one test set")
        labels, videos, scores = score_matrix(tables, compression)
        lines += [f"## change in {arm_a} minus {arm_b} from {base_path.name} to {path.name}, tested at "
                  f"{compression} ({len(seeds)} seeds: {seeds[0]} to {seeds[-1]})", "",
                  f"| AUC | {base_path.name} | {path.name} | change | seeds only: t interval, p "
                  "| two-way bootstrap, paired |", "|---|---|---|---|---|---|"]
        for unit, (lab, units, sc) in (("frame", (labels, videos, scores)),
                                       ("video", video_matrix(labels, videos, scores))):
            groups = np.split(sc, 4)  # path's a, b, then base's a, b
            aucs = [stats.run_aucs(lab, g) for g in groups]
            now, before = ([x - y for x, y in zip(aucs[i], aucs[i + 1])] for i in (0, 2))
            seed_only = stats.paired(now, before, MARGIN, level)
            boot = stats.contrast_interval(groups, [1, -1, -1, 1], lab, units, level=level,
                                           replicates=REPLICATES, seed=0)
            lines.append(f"| {unit} | {statistics.mean(before):+.3f} | {statistics.mean(now):+.3f} "
                         f"| {boot['estimate']:+.3f} | {_ci(seed_only['ci'])}, p {seed_only['p']:.3f} "
                         f"| {_ci(boot['ci'])} |")
        lines.append("")
    return "\n".join(lines)


def validation(root, arms, seeds=None, level=stats.LEVEL):
    """Per arm, the finished runs' c40 and c23 validation AUC at the epoch each run chose (best.json), and how
    often each epoch was chosen: the check that the test seeds train as the tuning seeds did."""
    runs = {key: folder for key, folder in runs_of(root).items()
            if key[0] in arms and finished(folder) and (seeds is None or key[1] in seeds)}
    lines = ["| arm | runs | c40 validation AUC | c23 validation AUC | epoch chosen (epoch: runs) |",
             "|---|---:|---|---|---|"]
    for arm in arms:
        bests = [json.loads((runs[key] / "best.json").read_text()) for key in sorted(runs) if key[0] == arm]
        if not bests:
            continue
        cells = []
        for compression in ("c40", "c23"):  # a baseline trained at c40 alone validates at c40 alone
            values = [b[f"val_auc_{compression}"] for b in bests if f"val_auc_{compression}" in b]
            d = stats.describe(values, level)
            cells.append("—" if not values else
                         f"{d['mean']:.4f}" + (f" [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}]" if d["ci"] else ""))
        epochs = collections.Counter(b["epoch"] for b in bests)
        lines.append(f"| {arm} | {len(bests)} | {cells[0]} | {cells[1]} | "
                     + ", ".join(f"{e}: {n}" for e, n in sorted(epochs.items())) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("select").add_argument("root", type=Path)
    k = sub.add_parser("pack")
    k.add_argument("root", type=Path, help="experiments.py's --out of the test runs")
    k.add_argument("packed", type=Path, help="the packed scores (.csv.gz), created or added to")
    r = sub.add_parser("report")
    r.add_argument("packed", type=Path)
    c = sub.add_parser("change")
    c.add_argument("packed", type=Path)
    c.add_argument("base", type=Path, help="the packed scores the change is measured from")
    v = sub.add_parser("validation")
    v.add_argument("root", type=Path, help="experiments.py's --out of the test runs")
    for q in (r, c, v):
        q.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: every seed there is)")
    for q in (k, r, c, v):
        q.add_argument("--arms", nargs="+", default=["method", "c40", "mixed"],
                       help="variant names: the first minus each of the others")
    args = p.parse_args(argv)
    if args.command == "change" and len(args.arms) != 2:
        p.error("change takes two --arms: the change in the first minus the second")
    if args.command == "select":
        print(select(args.root), end="")
    elif args.command == "pack":
        added = pack(args.root, args.packed, args.arms)
        print(f"{args.packed}: added {len(added)} runs" + (f" ({', '.join(added)})" if added else ""))
    elif args.command == "change":
        print(change(args.packed, args.base, args.arms, args.seeds), end="")
    elif args.command == "validation":
        print(validation(args.root, args.arms, args.seeds), end="")
    else:
        print(report(args.packed, args.arms, args.seeds), end="")


if __name__ == "__main__":
    main()
