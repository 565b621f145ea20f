"""From scores.csv to numbers: frame and video metrics at a validation-chosen threshold, per method and
for All (eval.py), and their plots. The paper's table over several checkpoints is forensics/paper.py's.

The decision threshold (for ACC) is the one of best accuracy on the file's validation rows, and the metrics
are computed on its test rows, so the test split never tunes anything. Without validation rows the threshold
train.py stored for the epoch (meta.json beside the scores) is used; without either, only threshold-free
metrics and the best accuracy over thresholds are reported. Each method's row takes that method's fakes and
all real frames, with its own validation threshold: the numbers test.py --dataset <method> would give.
Video accuracy compares each video's mean frame score with the threshold of best accuracy on the
validation videos' means (or the same fallback).
"""
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from . import ffpp
from .fileio import read_json, write_json
from .metrics import best_threshold, frame_metrics, mask_accuracy, video_metrics, video_scores
from .scoring import digest

REQUIRED = ("video", "frame", "method", "label", "score")  # the columns eval needs of a scores file


def read_scores(path):
    """scores.csv as a dict of arrays; a file without a split column is all test rows. A row that cannot be
    used (a NaN score, a label other than 0 or 1, a field that is not a number) is an error naming its line."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: scores file not found; write it with test.py --out DIR") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: not a CSV text file ({type(e).__name__}: {e}); pass the scores.csv that "
                         "test.py wrote") from None
    missing = [c for c in REQUIRED if c not in header]
    if not rows or missing:
        raise ValueError(f"{path}: " + (f"no column {', '.join(missing)}" if rows else "no rows") +
                         f"; expected a test.py scores file with columns {', '.join(REQUIRED)}")
    frame, label, score = [], [], []
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        try:
            frame.append(int(r["frame"]))
            label.append(int(r["label"]))
            score.append(float(r["score"]))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: line {line}: unreadable row ({e}); the file is corrupt, rerun test.py") from None
    data = {"split": np.array([r.get("split") or "test" for r in rows]),
            "method": np.array([r["method"] for r in rows]),
            "video": np.array([r["video"] for r in rows]),
            "frame": np.array(frame), "label": np.array(label), "score": np.array(score, np.float64)}
    _check_rows(path, data, ~np.isin(data["label"], (0, 1)), "labels must be 0 (real) or 1 (fake)",
                "the file is corrupt; rerun test.py")
    _check_rows(path, data, ~np.isfinite(data["score"]), "scores are NaN or infinite",
                "the checkpoint gives NaN (diverged training?) or the file was edited; test another epoch")
    keys = np.array(["\t".join(map(str, k)) for k in zip(data["split"], data["method"], data["video"], data["frame"])])
    repeated = np.ones(len(keys), bool)
    repeated[np.unique(keys, return_index=True)[1]] = False  # each key's first row is not a repeat
    _check_rows(path, data, repeated, "a frame already scored in an earlier row (same split, method, video, frame)",
                "the file joins the rows of several runs; evaluate each test.py output on its own")
    return data


def _check_rows(path, data, bad, problem, advice):
    """A ValueError naming the first bad rows (file line, method/video, frame), if any."""
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    shown = ", ".join(f"line {i + 2} ({data['method'][i]}/{data['video'][i]} frame {data['frame'][i]})"
                      for i in rows[:3])
    raise ValueError(f"{path}: {len(rows)} of {len(bad)} rows: {problem}: {shown}{', ...' if len(rows) > 3 else ''}; "
                     f"{advice}")


def _check_set(scores_path, meta):
    """Refuse a meta.json that is not of this scores.csv: test.py records the SHA-1 of each file it wrote (older
    versions did not; then nothing can be checked)."""
    recorded = meta.get("files", {}).get("scores.csv")
    if recorded and digest(Path(scores_path).read_bytes()) != recorded:
        raise ValueError(f"{Path(scores_path).with_name('meta.json')}: written with another {Path(scores_path).name} "
                         "(its SHA-1 differs): the files come from different test.py runs; rerun test.py, or delete "
                         "meta.json, maps.npy and masks.npy to evaluate the scores alone")


def _beside(scores_path, name, rows, meta):
    """maps.npy/masks.npy of the same test.py run: the file whose SHA-1 meta.json records (a file it does not
    list is another run's and is not read); without that record (an older test.py), one row per score row."""
    path = Path(scores_path).with_name(name)
    files = meta.get("files")
    if not path.exists() or (files is not None and name not in files):
        return None
    data = path.read_bytes()
    if files is not None and digest(data) != files[name]:
        raise ValueError(f"{path}: not the file test.py wrote beside {scores_path} (its SHA-1 differs from the one "
                         "meta.json records): the files come from different test.py runs; rerun test.py")
    array = np.load(io.BytesIO(data))
    if array.shape[0] != rows:
        raise ValueError(f"{path}: {array.shape[0]} rows but {rows} in {scores_path}: the two come from "
                         "different test.py runs; rerun test.py")
    return array


def _one_class(labels):
    """'real' or 'fake' when labels hold only that class, else None."""
    if labels.size and labels.min() == labels.max():
        return "fake" if labels[0] else "real"
    return None


def evaluate_subset(data, keep, fallback_threshold=None, maps=None, masks=None, warnings=None, name="All"):
    """Metrics of the rows in `keep`: threshold chosen on their val rows, numbers on their test rows.
    Validation rows of one class cannot choose a threshold (every threshold above them is as good), so they
    are not used, and test rows of one class leave AUC, AP and EER undefined: each gets a line in warnings."""
    val, test = keep & (data["split"] == "val"), keep & (data["split"] == "test")
    if not test.any():
        raise ValueError("no test rows to evaluate")
    warnings = [] if warnings is None else warnings
    videos = np.char.add(np.char.add(data["method"], "/"), data["video"])
    only = _one_class(data["label"][val])
    if only:
        instead = "the run's stored threshold is used" if fallback_threshold is not None else "acc is not reported"
        warnings.append(f"{name}: the validation rows hold only {only} frames, so no threshold can be chosen on "
                        f"them: {instead}")
    if val.any() and not only:
        threshold, source = best_threshold(data["label"][val], data["score"][val])[0], "val"
        _, val_means, val_labels = video_scores(videos[val], data["score"][val], data["label"][val])
        video_threshold = best_threshold(val_labels, val_means)[0]
    elif fallback_threshold is not None:
        threshold = video_threshold = fallback_threshold
        source = "run"
    else:
        threshold = video_threshold = source = None
    only = _one_class(data["label"][test])
    if only:
        warnings.append(f"{name}: the test rows hold only {only} frames: AUC, AP and EER are undefined and "
                        "acc counts one class only")
    result = frame_metrics(data["label"][test], data["score"][test], threshold)
    result.update(video_metrics(videos[test], data["score"][test], data["label"][test], video_threshold))
    result["threshold_source"] = source
    result["mask_acc"] = mask_accuracy(maps[test], masks[test]) if maps is not None and masks is not None else None
    return result


def evaluate(scores_path, out=None, plots=True, strict=False):
    """metrics.json (and the plots) of one scores file; returns the metrics. What makes the numbers other than
    asked for (a method missing from an All file, one-class validation or test rows) is printed as a warning
    and listed in metrics.json's "warnings"; strict makes it a ValueError, and nothing is written."""
    scores_path = Path(scores_path)
    data = read_scores(scores_path)
    if not (data["split"] == "test").any():
        raise ValueError(f"{scores_path}: no test rows (split column); rerun test.py, which scores the test split")
    meta_path = scores_path.with_name("meta.json")
    meta = read_json(meta_path, "test.py metadata") if meta_path.exists() else {}
    _check_set(scores_path, meta)
    rows = len(data["score"])
    maps, masks = (_beside(scores_path, name, rows, meta) for name in ("maps.npy", "masks.npy"))
    everything = np.ones(rows, bool)
    fallback = meta.get("run_threshold")
    methods = [m for m in ffpp.METHODS if m in set(data["method"][data["split"] == "test"])]
    warnings = []
    if meta.get("dataset") == "All" and len(methods) < len(ffpp.METHODS):
        lost = [m for m in ffpp.METHODS if m not in methods]
        warnings.append(f"All: the test rows hold {len(methods)} of the {len(ffpp.METHODS)} methods (no "
                        f"{', '.join(lost)}; were their crops made?): its numbers are not those of All")
    metrics = {"scores": str(scores_path), "dataset": meta.get("dataset"), "compression": meta.get("compression"),
               "model": meta.get("model"), "checkpoint_dir": meta.get("checkpoint_dir"), "epoch": meta.get("epoch"),
               "methods": methods}
    metrics.update(evaluate_subset(data, everything, fallback, maps, masks, warnings, name="All"))
    if metrics["threshold_source"] is None:
        metrics["note"] = ("no usable validation rows and no stored run threshold: acc is not reported, "
                           "best_acc is the accuracy of the best threshold on the test rows themselves")
    if len(methods) > 1:
        metrics["per_method"] = {
            m: evaluate_subset(data, np.isin(data["method"], (m, ffpp.REAL)), fallback, maps, masks, warnings, m)
            for m in methods}
    metrics["warnings"] = warnings
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if strict and warnings:
        raise ValueError(f"{scores_path}: --strict: {len(warnings)} warnings (first: {warnings[0]}); nothing written")
    out = Path(out) if out else scores_path.parent
    write_json(out / "metrics.json", _json_safe(metrics), indent=2)
    if plots:
        plot(data, metrics, out)
    return metrics


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def plot(data, metrics, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    test = data["split"] == "test"
    labels, scores = data["label"][test], data["score"][test]
    curves = {"All": np.ones(test.sum(), bool)}
    curves.update({m: np.isin(data["method"][test], (m, ffpp.REAL)) for m in metrics.get("per_method", {})})
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, keep in curves.items():
        if 0 < labels[keep].sum() < keep.sum():
            fpr, tpr, _ = roc_curve(labels[keep], scores[keep])
            auc = (metrics if name == "All" else metrics["per_method"][name])["auc"]
            ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test frames")
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(out / "roc.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.histogram_bin_edges(scores, bins=50)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="real")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="fake")
    if metrics["threshold"] is not None:
        ax.axvline(metrics["threshold"], color="k", ls="--", label=f"threshold ({metrics['threshold_source']})")
    ax.set(xlabel="score", ylabel="frames", title="Scores of the test frames")
    ax.legend(fontsize=8)
    fig.savefig(out / "hist.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _fmt(value):
    return "-" if value is None else f"{value:.4f}"


def format_table(metrics):
    cols = ("frames", "auc", "ap", "eer", "acc", "best_acc", "video_auc", "video_acc", "mask_acc")
    tprs = list(metrics["tpr_at_fpr"])
    header = ["", *cols, *(f"TPR@{t}" for t in tprs)]
    rows = [("All" if metrics.get("per_method") else metrics.get("dataset") or "all", metrics)]
    rows += list(metrics.get("per_method", {}).items())
    lines = [header] + [[name, str(m["frames"]), *(_fmt(m[c]) for c in cols[1:]),
                         *(_fmt(m["tpr_at_fpr"][t]) for t in tprs)] for name, m in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)
    source = {"val": "best accuracy on the validation rows", "run": "stored by train.py for this epoch"}
    text += (f"\nthreshold {metrics['threshold']:.6g} ({source[metrics['threshold_source']]})"
             if metrics["threshold"] is not None else f"\n{metrics['note']}")
    return text
