"""The paper's table (paper_table.py, paper_grid.py): each checkpoint scored by test.py's path
(scoring.score_splits) and evaluated by eval.py's (evaluation.evaluate), one cell per (model, compression,
dataset), as Markdown and CSV."""
import csv
import io
import re
from pathlib import Path

from models.checkpoints import CheckpointError

from . import ffpp
from .evaluation import evaluate
from .fileio import write_bytes
from .runs import load_model, run_config
from .scoring import ScoreOptions, score_splits

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


def paper_table(checkpoints, *, face_root, splits, out, device, datasets=ffpp.DATASETS,
                compressions=ffpp.COMPRESSIONS, epoch="best", options=ScoreOptions()):
    """Score and evaluate every cell (label, compression, dataset) with options; returns (CSV rows, notes).

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
        scores = score_splits(model, info, face_root=face_root, splits=splits, out=where, device=device,
                              dataset=scored_on, compression=compression, options=options)
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


THRESHOLD_MARKS = {"val": "", "run": "\u2020", None: "\u2021"}  # ACC's threshold, marked in table.md when not val's
THRESHOLD_NOTES = {"run": "\u2020 ACC at the threshold train.py stored for the epoch, for want of usable validation "
                          "frames (none in the face tree, --val-max-frames 0, or of one class only).",
                   None: "\u2021 no ACC: no usable validation frames, and the checkpoint stores no threshold."}


def _acc_mark(cell):
    return THRESHOLD_MARKS[cell.get("threshold_source")] if cell and "threshold_source" in cell else ""


def table_markdown(rows, notes, datasets, compressions):
    lines = ["ACC, AUC and video AUC in %, test split; ACC at the threshold of best validation accuracy "
             "(marked where another was used).", ""]
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
            values = [_percent(c.get(k) if c else None) + (_acc_mark(c) if k == "acc" else "")
                      + ("*" if c and c.get("from_all_model") else "") for c in cells for k in TABLE_COLUMNS]
            lines.append("| " + " | ".join([label, trained] + values) + " |")
        lines.append("")
    if any(r.get("from_all_model") for r in rows):
        lines.append("\\* from a model trained on All; the paper's method columns come from one model per method "
                     "(paper_grid.py trains them).")
        lines.append("")
    sources = {r["threshold_source"] for r in rows if "threshold_source" in r}
    for source, text in THRESHOLD_NOTES.items():
        if source in sources:
            lines += [text, ""]
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
