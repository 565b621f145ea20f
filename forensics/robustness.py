"""The compression-robustness sweep (robustness.py): each checkpoint's AUC on one split's videos degraded at
every level of a ladder (forensics.degrade), with the crops cut by the boxes of the c23 crops and scored by
scoring.score_frames, the path of test.py.

Thresholds are chosen as eval.py chooses them: on the validation split of the normal face tree (--face-root)
at the quality the checkpoint scores through (its training compression), by evaluation.evaluate_subset;
without those crops, the threshold train.py stored for the epoch. A detector run gives two rows, one per
head: 'LABEL (LQ)' scores every level through the LQ head (thresholds from c40), 'LABEL (HQ)' through the
HQ head (from c23).
"""
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import HEADS
from models.checkpoints import CheckpointError

from . import degrade, ffpp, progress
from .data import Frame, index_frames
from .evaluation import evaluate_subset
from .fileio import write_bytes
from .locations import load_locs, locs_path
from .manifest import Tally, pool_map, select_videos
from .runs import load_model
from .scoring import ScoreOptions, score_frames

FF_MARKS = {"c23": 23, "c40": 40}  # FF++'s own levels, H.264 CRF
METRICS = ("auc", "video_auc", "acc")
COLUMNS = (("checkpoint", "compression", "degradation", "level", "name", "kbps", "frames", "videos")
           + METRICS + tuple(f"{k}_{m}" for m in ffpp.METHODS for k in METRICS)
           + ("threshold_source", "checkpoint_dir", "epoch"))


# ----------------------------------------------------------------------------- which checkpoints

@dataclass
class Scorer:
    """One row group of the output: a loaded model and the quality (head) it scores through."""
    label: str
    model: object
    info: dict
    compression: str


def checkpoint_specs(checkpoints):
    """[(label, folder, compression or None)] from cli.parse_checkpoints' {label: {(dataset, compression): DIR}}.
    A label with several compressions gives one entry each, named 'LABEL (c23)'."""
    specs = []
    for label, entries in checkpoints.items():
        for (dataset, compression), folder in entries.items():
            if dataset not in (None, "All"):
                raise ValueError(f"--checkpoint {label}@{dataset}: the sweep scores every method at once; "
                                 "pass a checkpoint trained on All, without @Method")
            named = label if len(entries) == 1 or compression is None else f"{label} ({compression})"
            specs.append((named, folder, compression))
    missing = sorted({folder for _, folder, _ in specs if not Path(folder).is_dir()})
    if missing:
        raise FileNotFoundError(f"checkpoint folder not found: {', '.join(missing)}; train it first (train.py) "
                                "or pass --checkpoint LABEL=DIR")
    return specs


def load_scorers(specs, epoch="best", heads=tuple(HEADS), notes=None):
    """The Scorers of specs, loaded one at a time: a detector folder without a compression gives one per
    head of heads, 'LABEL (LQ)' and 'LABEL (HQ)'; a baseline scores at the compression it was trained on."""
    notes = [] if notes is None else notes
    for label, folder, compression in specs:
        wanted = [(label, compression)] if compression else [(f"{label} ({h.upper()})", HEADS[h]) for h in heads]
        for name, quality in wanted:
            try:
                model, info = load_model(folder, epoch, quality)
            except CheckpointError as e:
                notes.append(f"{name}: not scored: {e}")
                print(f"skipped: {notes[-1]}", file=sys.stderr)
                continue
            if info["model"] == "xception":
                trained = info.get("trained_on")
                if compression and trained not in (None, compression):
                    notes.append(f"{name}: trained on {trained}, given as {compression}: thresholds from {compression}")
                yield Scorer(label, model, info, compression or trained or "c23")
                break  # one row: the baseline has no heads
            yield Scorer(name, model, info, quality)


# ----------------------------------------------------------------------------- which videos

def plan_videos(ffpp_root, locs_dir, splits_dir, split, levels, cache, size, max_frames=140, tally=None):
    """One degrade.VideoJob per video of the split that has face locations and a video: its first max_frames
    located frames (test.py's frames of it). The others get a skip line."""
    tally = tally if tally is not None else Tally()
    if not Path(ffpp_root).is_dir():
        raise FileNotFoundError(f"{ffpp_root}: FF++ root (--ffpp-root) not found")
    pairs = ffpp.read_split(splits_dir, split)
    jobs = []
    for method in (ffpp.REAL,) + ffpp.METHODS:
        locs = load_locs(locs_dir, method, tally)
        if locs is None:
            tally.skip(f"{locs_path(locs_dir, method)}: face-location file not found: {method} left out of the "
                       "sweep (run detect_faces.py first, or check --locs)")
            continue
        videos = select_videos(
            ffpp.split_videos(pairs, method), locs, tally,
            lambda v: f"{locs_path(locs_dir, method)}: no face locations for {method} video {v} of the {split} "
                      "split: left out of the sweep")
        for video in videos:
            quality, path = degrade.source_of(ffpp_root, method, video)
            if path is None or not locs[video]:
                missing = f"{ffpp.video_path(ffpp_root, method, 'c23', video)}: video not found (nor raw, c0)"
                tally.skip(f"{missing if path is None else f'{path}: no face located'}: left out of the sweep",
                           videos=1)
                continue
            frames = sorted(locs[video])[:max_frames]
            jobs.append(degrade.VideoJob(method, video, quality, path, {f: locs[video][f] for f in frames},
                                         tuple(levels), Path(cache), size))
    return jobs


def degrade_videos(jobs, workers, tally):
    """crop_levels over the jobs on `workers` processes; the videos that gave crops at every level."""
    results = []
    for result in pool_map(degrade.crop_levels, jobs, workers, "encode and crop"):
        tally.add(result.tally)
        if not result.failed:
            results.append(result)
    return sorted(results, key=lambda r: (r.method != ffpp.REAL, r.method, r.video))


# ----------------------------------------------------------------------------- scoring and metrics

def _data(val_frames, val_scores, test_frames, test_scores):
    frames = list(val_frames) + list(test_frames)
    return {"split": np.array(["val"] * len(val_frames) + ["test"] * len(test_frames)),
            "method": np.array([f.method for f in frames]), "video": np.array([f.video for f in frames]),
            "label": np.array([f.label for f in frames], np.int64),
            "score": np.concatenate([np.asarray(val_scores, np.float64), np.asarray(test_scores, np.float64)])}


def level_metrics(val_frames, val_scores, test_frames, test_scores, fallback_threshold=None):
    """{'All' or method: eval.py's metrics} of one level: thresholds on the val rows, numbers on the test rows."""
    data = _data(val_frames, val_scores, test_frames, test_scores)
    result = {"All": evaluate_subset(data, np.ones(len(data["score"]), bool), fallback_threshold)}
    test = data["split"] == "test"
    for method in ffpp.METHODS:
        keep = np.isin(data["method"], (method, ffpp.REAL))
        if (keep & test & (data["label"] == 1)).any():
            result[method] = evaluate_subset(data, keep, fallback_threshold)
    return result


def _row(scorer, level, kbps, metrics):
    every = metrics["All"]
    row = {"checkpoint": scorer.label, "compression": scorer.compression, "degradation": level.kind,
           "level": "" if level.value is None else f"{level.value:g}", "name": level.name,
           "kbps": None if kbps is None else round(kbps, 1), "frames": every["frames"], "videos": every["videos"],
           "threshold_source": every["threshold_source"], "checkpoint_dir": scorer.info["checkpoint_dir"],
           "epoch": scorer.info["epoch"]}
    row.update({k: every[k] for k in METRICS})
    for method in ffpp.METHODS:
        row.update({f"{k}_{method}": metrics[method][k] if method in metrics else None for k in METRICS})
    return row


def _score(scorer, root, frames, device, options, folder=None):
    scores, _, _ = score_frames(scorer.model, root, frames, scorer.compression, device, options, folder=folder)
    return scores


def validation(scorer, face_root, splits_dir, device, options, notes):
    """(frames, scores) of the validation split at the scorer's quality, from the normal face tree; empty
    (and a note) where that tree lacks them."""
    try:
        frames = index_frames(face_root, splits_dir, "val", "All", options.val_max_frames, (scorer.compression,),
                              need_masks=False)
    except (FileNotFoundError, ValueError) as e:
        source = "the threshold train.py stored" if scorer.info.get("run_threshold") is not None else "none"
        notes.append(f"{scorer.label}: no validation frames at {scorer.compression} ({e}); threshold: {source}")
        return [], np.empty(0)
    return frames, _score(scorer, face_root, frames, device, options)


# ----------------------------------------------------------------------------- the sweep

@dataclass
class Report:
    """What the sweep did, for the Markdown summary: sources, skips, frames and timings."""
    split: str
    levels: list
    kbps: dict
    sources: dict
    videos: int
    frames: int
    summary: str
    skipped: list
    notes: list
    encode_s: float
    score_s: float
    scored: int
    validation: int
    device: str
    workers: int


def sweep(checkpoints, levels, device, *, ffpp_root, locs_dir, face_root, splits_dir, cache, crop_size, split="test",
          heads=tuple(HEADS), epoch="best", options=ScoreOptions()):
    """Degrade, cut and score; returns (rows of the CSV, Report). checkpoints: cli.parse_checkpoints' dict.
    Crops are cut crop_size pixels square; options' frame limits, workers (encoding and cropping too), batch
    size and precision apply to every checkpoint, each scoring at its own input size unless options give one."""
    specs = checkpoint_specs(checkpoints)
    tally, notes = Tally(), []
    started = time.time()
    jobs = plan_videos(ffpp_root, locs_dir, splits_dir, split, levels, cache, crop_size, options.max_frames, tally)
    results = degrade_videos(jobs, options.workers, tally)
    encode_s = time.time() - started
    if not any(r.method == ffpp.REAL for r in results) or all(r.method == ffpp.REAL for r in results):
        raise ValueError(f"no {'real' if results else 'real or fake'} video of the {split} split could be degraded "
                         f"and cut (see the skip lines above); check --ffpp-root, --locs and --splits")
    frames = [Frame(r.method, r.video, f) for r in results for f in r.frames["source"]]
    kbps = {level.name: degrade.mean_kbps(results, level) for level in levels}
    rows, scored, validated, started = [], 0, 0, time.time()
    for scorer in load_scorers(specs, epoch, heads, notes):
        scorer.model.to(device)
        val_frames, val_scores = validation(scorer, face_root, splits_dir, device, options, notes)
        validated += len(val_frames)
        for level in progress.bar(levels, desc=f"score {scorer.label}", unit="level", leave=True):
            scores = _score(scorer, degrade.level_root(cache, level), frames, device, options, folder=degrade.CROPS)
            metrics = level_metrics(val_frames, val_scores, frames, scores, scorer.info.get("run_threshold"))
            rows.append(_row(scorer, level, kbps[level.name], metrics))
            scored += len(frames)
        scorer.model.to("cpu")
    if not rows:
        raise ValueError("no checkpoint could be scored: " + "; ".join(notes))
    quality_of = {(j.method, j.video): j.source_quality for j in jobs}
    sources = {}
    for r in results:
        sources[quality_of[r.method, r.video]] = sources.get(quality_of[r.method, r.video], 0) + 1
    print(tally.summary())
    report = Report(split, list(levels), kbps, sources, len(results), len(frames), tally.summary(),
                    list(tally.skips), notes, encode_s, time.time() - started, scored, validated, str(device),
                    options.workers)
    return rows, report


# ----------------------------------------------------------------------------- output

def _text(value):
    return "" if value is None else str(value)


def rows_csv(rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: _text(r.get(k)) for k in COLUMNS} for r in rows)
    return buffer.getvalue()


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.1f}"


def source_note(report):
    """Which videos were the source, and the caveat when it is c23."""
    found = ", ".join(f"{n} {q}" for q, n in sorted(report.sources.items()))
    text = f"Source videos: {found}."
    if "c23" in report.sources:
        text += (" Where the source is c23, every level is a second compression on top of FF++'s own "
                 "(H.264 at CRF 23): CRF 23 here is not FF++'s c23, and CRF 40 is not its c40.")
    return text


def _rate(count, seconds):
    return f"{count / max(seconds, 1e-9):.1f} frames/s"


def timing_lines(report, checkpoints):
    crops = len(report.levels) * report.frames
    total = report.encode_s + report.score_s
    return [f"{report.videos} videos, {report.frames} frames a level, {len(report.levels)} levels, "
            f"{checkpoints} checkpoint rows. Preparation: {report.summary}.",
            f"Encode and crop: {crops} crops in {report.encode_s:.1f} s ({_rate(crops, report.encode_s)}, "
            f"{report.workers} workers); scoring: {report.scored} degraded and {report.validation} validation "
            f"frames in {report.score_s:.1f} s ({_rate(report.scored + report.validation, report.score_s)} on "
            f"{report.device}).",
            f"Whole sweep: {report.scored} degraded frames scored in {total:.1f} s: {_rate(report.scored, total)}."]


def markdown(rows, report):
    labels = list(dict.fromkeys(r["checkpoint"] for r in rows))
    cell = {(r["checkpoint"], r["name"]): r for r in rows}
    lines = [f"Frame AUC (video AUC) in %, {report.split} split, all methods; per-method AUC and the accuracy "
             "at the validation threshold are in robustness.csv.", "",
             "| level | kbit/s | " + " | ".join(labels) + " |", "|---|---:|" + "---:|" * len(labels)]
    for level in report.levels:
        kbps = report.kbps.get(level.name)
        values = [cell.get((label, level.name)) for label in labels]
        lines.append(f"| {level.describe()} | {'' if kbps is None else f'{kbps:.0f}'} | " + " | ".join(
            "-" if v is None else f"{_percent(v['auc'])} ({_percent(v['video_auc'])})" for v in values) + " |")
    lines += [""] + [f"- {line}" for line in (source_note(report), *timing_lines(report, len(labels)))]
    lines += [f"- {n}" for n in report.notes] + [f"- skip: {s}" for s in report.skipped]
    return "\n".join(lines) + "\n"


def _x(row):
    return float(row["level"])


def plot(rows, report, path):
    """AUC against CRF (FF++'s c23 and c40 marked), one line per checkpoint, the source level dashed; one
    further panel per other degradation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("h264", "h265", "vp9", "jpeg", "scale") if any(r["degradation"] == k for r in rows)]
    labels = list(dict.fromkeys(r["checkpoint"] for r in rows))
    colours = {label: f"C{i}" for i, label in enumerate(labels)}
    columns = min(3, max(1, len(kinds)))
    lines = -(-max(1, len(kinds)) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.4 * columns, 3.4 * lines + 0.3 * len(labels)),
                             squeeze=False, sharey=True, layout="constrained")
    aucs = [r["auc"] for r in rows if r["auc"] is not None]
    for ax, kind in zip(axes.flat, kinds or ["source"]):
        for label in labels:
            mine = sorted((r for r in rows if r["checkpoint"] == label and r["degradation"] == kind
                           and kind != "source"), key=_x)
            if mine:
                ax.plot([_x(r) for r in mine], [r["auc"] for r in mine], "o-", color=colours[label], label=label)
            source = [r for r in rows if r["checkpoint"] == label and r["degradation"] == "source"]
            if source and source[0]["auc"] is not None:
                ax.axhline(source[0]["auc"], color=colours[label], ls="--", lw=0.8)
        ax.axhline(0.5, color="0.6", ls=":", lw=0.8)
        if kind == "h264":
            for name, crf in FF_MARKS.items():
                ax.axvline(crf, color="0.3", lw=0.8, ls="-.")
                right = crf > 30  # the label on the side of the line with room for it
                ax.annotate(f"FF++ {name}", (crf, 1), xycoords=("data", "axes fraction"),
                            xytext=(-2 if right else 2, -10), textcoords="offset points", fontsize=8,
                            ha="right" if right else "left")
        if kind in degrade.CODECS:
            ax.set_xlabel("H.264 CRF" if kind == "h264" else "at the bitrate of H.264 at CRF")
        elif kind == "jpeg":
            ax.set_xlabel("JPEG quality")
            ax.invert_xaxis()
        elif kind == "scale":
            ax.set_xlabel("scale factor (down and back up)")
            ax.invert_xaxis()
        ax.set_title(degrade.TITLES[kind])
        ax.set_ylim(min([0.45, *aucs]) - 0.03, 1.01)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(kinds or ["source"]):]:
        ax.set_visible(False)
    for line in axes:
        line[0].set_ylabel(f"frame AUC, {report.split} split")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, fontsize=8, frameon=False,
               title="dashed: the same checkpoint on the source", title_fontsize=8)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return path


def write_outputs(rows, report, out):
    """robustness.csv, robustness.md and robustness.png in out; the Markdown text."""
    out = Path(out)
    write_bytes(out / "robustness.csv", rows_csv(rows).encode())
    text = markdown(rows, report)
    write_bytes(out / "robustness.md", text.encode())
    plot(rows, report, out / "robustness.png")
    return text
