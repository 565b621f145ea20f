"""From scores.csv to numbers: frame and video metrics at a validation-chosen threshold, per method and
for All (eval.py), their plots, and the paper's table over several checkpoints (paper_table.py).

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
import re
import sys
from pathlib import Path

import numpy as np

from models.checkpoints import CheckpointError

from . import ffpp
from .fileio import read_json, write_bytes, write_json
from .metrics import best_threshold, frame_metrics, mask_accuracy, video_metrics, video_scores
from .runs import load_model, run_config
from .scoring import score_splits

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


def _beside(scores_path, name, rows):
    """maps.npy/masks.npy of the same test.py run, checked against the number of score rows."""
    path = Path(scores_path).with_name(name)
    if not path.exists():
        return None
    array = np.load(path)
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
    rows = len(data["score"])
    maps, masks = _beside(scores_path, "maps.npy", rows), _beside(scores_path, "masks.npy", rows)
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


TABLE_COLUMNS = ("acc", "auc", "video_auc")  # the paper's columns
TABLE_METRICS = ("acc", "auc", "video_auc", "best_acc", "eer", "ap", "video_acc", "frames", "videos",
                 "threshold_source")
TABLE_CSV_COLUMNS = ("model", "compression", "dataset") + TABLE_METRICS + (
    "trained_on", "trained_dataset", "from_all_model", "checkpoint_dir", "epoch")


def label_folders(labels):
    """{label: folder name} of the table's rows: letters, digits, '-' and '_' only, so a label can never
    reach outside --out; two labels that would share a folder are refused, as one would overwrite the other."""
    folders = {label: re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_") or "model" for label in labels}
    taken = {}
    for label, folder in folders.items():
        if folder in taken:
            raise ValueError(f"--checkpoint labels {taken[folder]!r} and {label!r} would share the output folder "
                             f"{folder!r}; rename one")
        taken[folder] = label
    return folders


def _cell(metrics, dataset):
    """The metrics of one dataset out of an evaluation, or None when the face tree lacks it."""
    if dataset == "All" or metrics["methods"] == [dataset]:
        return metrics
    return metrics.get("per_method", {}).get(dataset)


def choose_checkpoint(cells, dataset, compression):
    """The folder that scores one cell of the table, from {(dataset, compression): DIR} with None for any:
    the most specific one given (this dataset before All before any, this compression before any)."""
    for d in (dataset, "All", None):
        for c in (compression, None):
            if (d, c) in cells:
                return cells[d, c], d
    return None, None


def _trained_dataset(folder, qualifier):
    """What the model in folder was trained on: the --checkpoint qualifier, else its run's config.json."""
    return qualifier or run_config(folder).get("dataset")


def paper_table(checkpoints, face_root, splits, out, device, datasets=ffpp.DATASETS,
                compressions=ffpp.COMPRESSIONS, epoch="best", image_size=None, batch_size=128, workers=0,
                max_frames=140, val_max_frames=140):
    """Score and evaluate every cell (label, compression, dataset); returns (CSV rows, notes).

    checkpoints: {label: {(dataset or None, compression or None): DIR}} (cli.parse_checkpoints). A folder that
    serves one method's cells only is scored on that method (out/<label>/<compression>/<method>/), as the
    released code tested one model per manipulation; a folder that serves All, or several methods, is scored
    once on All (out/<label>/<compression>/) and each method's cell is its per-method evaluation. A cell of one
    method filled by a model trained on All is flagged (from_all_model)."""
    plan = {}  # (label, compression, folder) -> {dataset: trained dataset}
    notes = []
    for label, cells in checkpoints.items():
        for compression in compressions:
            lacking = []
            for dataset in datasets:
                folder, qualifier = choose_checkpoint(cells, dataset, compression)
                if folder is None:
                    lacking.append(dataset)
                else:
                    plan.setdefault((label, compression, folder), {})[dataset] = qualifier
            if lacking:
                which = "" if len(lacking) == len(datasets) else f"{', '.join(lacking)} at "
                notes.append(f"{label}: no checkpoint given for {which}{compression}")
    missing = sorted({folder for _, _, folder in plan if not Path(folder).is_dir()})
    if missing:
        raise FileNotFoundError(f"checkpoint folder not found: {', '.join(missing)}; train them first (train.py, "
                                "--model xception for the baseline; paper_grid.py trains them all) or pass "
                                "--checkpoint LABEL=DIR")
    rows, folders = [], label_folders(checkpoints)
    for (label, compression, folder), served in plan.items():
        try:
            model, info = load_model(folder, epoch, compression)
        except CheckpointError as e:
            notes.append(f"{label} at {compression}: {folder} not tested: {e}")
            print(f"skipped: {notes[-1]}")
            continue
        scored_on = next(iter(served)) if len(served) == 1 and "All" not in served else "All"
        where = Path(out) / folders[label] / compression / ("" if scored_on == "All" else scored_on)
        print(f"{label} at {compression}: {info['model']} from {folder}, epoch {info['epoch']}, on {scored_on}")
        scores = score_splits(model, info, face_root, splits, where, scored_on, compression,
                              image_size, device, batch_size, workers, max_frames,
                              val_max_frames)
        metrics = evaluate(scores)
        for dataset, qualifier in served.items():
            trained = _trained_dataset(folder, qualifier)
            row = {"model": label, "compression": compression, "dataset": dataset, "trained_on": info["trained_on"],
                   "trained_dataset": trained, "checkpoint_dir": folder, "epoch": info["epoch"],
                   "from_all_model": dataset != "All" and trained == "All"}
            m = _cell(metrics, dataset)
            if m is not None:
                row.update({k: m[k] for k in TABLE_METRICS})
            rows.append(row)
    order = {(label, c, d): i for i, (label, c, d) in enumerate(
        (label, c, d) for label in checkpoints for c in compressions for d in datasets)}
    rows.sort(key=lambda r: order[r["model"], r["compression"], r["dataset"]])
    return rows, notes


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f}"


def table_markdown(rows, notes, datasets, compressions):
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
            values = [_percent(c.get(k) if c else None) + ("*" if c and c.get("from_all_model") else "")
                      for c in cells for k in TABLE_COLUMNS]
            lines.append("| " + " | ".join([label, trained] + values) + " |")
        lines.append("")
    if any(r.get("from_all_model") for r in rows):
        lines.append("\\* from a model trained on All; the paper's method columns come from one model per method "
                     "(paper_grid.py trains them).")
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def write_table(out, rows, notes, datasets, compressions):
    """table.md and table.csv in out; returns the Markdown."""
    text = table_markdown(rows, notes, datasets, compressions)
    write_bytes(Path(out) / "table.md", text.encode())
    write_bytes(Path(out) / "table.csv", table_csv(rows).encode())
    return text


def table_csv(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, TABLE_CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in TABLE_CSV_COLUMNS} for r in rows)
    return buffer.getvalue()
