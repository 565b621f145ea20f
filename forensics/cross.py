"""Cross-dataset evaluation (cross_dataset.py): checkpoints trained on FF++ scored on datasets they never saw,
each read by its adapter (forensics.datasets), and the table DeepfakeBench lays out: a row per checkpoint and
head, frame and video AUC per dataset, and their mean over the datasets.

Preparation is cached under OUT/prep/<dataset>/ and shared by every checkpoint:
  boxes/<key>.json              the main face's box in each of --max-frames evenly spaced frames of a video
                                (main_face_boxes), stamped with the video file and the detection settings;
  <size>px/<real|fake>/crops/<key>/
                                its crops at one image size, packed (crops.crop_video; a .done.json marker
                                vouches for them), one folder per size any checkpoint asks for.
Each file is written atomically and each video is prepared on its own, so a killed run redoes only the videos
in flight. Scores come from scoring.score_frames, test.py's path, through the head of each row.
"""
import csv
import hashlib
import io
import json
import random
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import ffpp, faces
from .crops import crop_video
from .data import Frame, frame_numbers
from .datasets import Options, read_dataset
from .fileio import check_writable, write_bytes, write_json
from .inference import thresholds_of
from .locations import parse_boxes
from .manifest import Tally, pool_map, video_stamp
from .metrics import frame_metrics, video_metrics
from .robustness import checkpoint_specs, load_scorers
from .runs import run_input_size
from .scoring import ScoreOptions, score_frames
from .video import VideoError, iter_frames, stream_problem, video_info
from models import HEADS, input_size

FAKE = "fake"  # the crop tree's folder of fake videos (real ones go to ffpp.REAL, which data.Frame reads as 0)
CROPS = "crops"  # the crop folder of each video, in place of a quality
SCORE_COLUMNS = ("video", "method", "frame", "label", "score")
BEST_ACC_NOTE = ("best_acc and video_best_acc take the threshold of best accuracy on this dataset's own labels: an "
                 "oracle, optimistic; acc uses the run's FF++ validation threshold")


# ----------------------------------------------------------------------------- faces

# The few frames sampled from each test video lie far apart: each is a keyframe (no boxes interpolated between).
FACES = replace(faces.FOOTAGE, detect_every=1)
KEPT_FRAMES_BYTES = 1 << 30  # a worker keeps the sampled frames of a video up to this size, to cut crops from


@dataclass(frozen=True)
class Detection:
    """Which frames are read and how faces are found in them (cross_dataset.py's flags of the same names)."""
    max_frames: int = 32  # evenly spaced over the video; 0: every frame
    settings: faces.DetectionSettings = FACES


_DETECTORS = {}  # one dlib detector per setting, per process


def main_face_boxes(path, detection, stride, limit, frames=None):
    """The main face's box in frames 0, stride, ... below limit of a video (frames: those, if already decoded):
    the one call into the library's face finding (faces.detect_video: dlib with a second pass for small faces,
    tracked and filled as detect_faces.py and detect.py do)."""
    if detection.settings not in _DETECTORS:
        _DETECTORS[detection.settings] = faces.Detector(detection.settings)
    return faces.detect_video(path, _DETECTORS[detection.settings], max_frames=limit, stride=stride, frames=frames)


def sampling(path, max_frames):
    """(stride, limit): max_frames frames at an even stride over the whole video, as the cross-dataset protocols
    sample a test video (the frame count is the container's); (1, None) for max_frames 0: every frame."""
    if not max_frames:
        return 1, None
    count = video_info(path)[0]
    stride = max(1, count // max_frames) if count > 0 else 1
    return stride, stride * max_frames


def sampled_frames(path, stride, limit):
    """The frames main_face_boxes looks at, decoded once for it and for cutting the crops, when they fit in
    KEPT_FRAMES_BYTES; else None, and each reads the file (every frame, with --max-frames 0)."""
    if limit is None:
        return None
    _, _, width, height = video_info(path)
    if limit // stride * width * height * 3 > KEPT_FRAMES_BYTES:
        return None
    return list(iter_frames(path, limit, stride))


def no_face(path, frames, detection):
    """Why a video gave no box, and what to try."""
    _, _, width, height = video_info(path)
    return f"no face found in its {frames} frames ({faces.no_face_hint(detection.settings, width, height)})"


# ----------------------------------------------------------------------------- preparation

def video_key(name):
    """A folder name for a video that the dataset names by a path: readable, bounded and unique."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name.rsplit(".", 1)[0]).strip("-")[-80:]
    return f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def crop_root(cache, size):
    """The face tree of one dataset's crops at one size: <real|fake>/crops/<key>/, read as test.py reads face/."""
    return Path(cache) / f"{size}px"


def crop_folder(cache, size, video):
    return ffpp.face_dir(crop_root(cache, size), FAKE if video.label else ffpp.REAL, CROPS, video_key(video.name))


@dataclass(frozen=True)
class Job:
    dataset: str
    video: object  # datasets.Video
    cache: Path  # OUT/prep/<dataset>
    sizes: tuple
    detection: Detection


@dataclass
class Prepared:
    """One video after preparation: its frames with a crop at each size, or why it was skipped."""
    dataset: str
    video: object
    frames: dict = field(default_factory=dict)  # {size: number of crops}
    reason: str | None = None
    lines: list = field(default_factory=list)  # frames lost on the way (crop_video's lines)


def _boxes(job):
    """The cached boxes of the job's video if they were found in this file with these settings, else found now
    and cached: {frame: box}, the number of frames read, and the frames if they were decoded now and kept
    (sampled_frames), else None."""
    path = Path(job.cache) / "boxes" / f"{video_key(job.video.name)}.json"
    stamp = {"video": str(job.video.path), **video_stamp(job.video.path), "detection": asdict(job.detection)}
    try:
        entry = json.loads(path.read_text())
        if entry["stamp"] == stamp:
            boxes, bad = parse_boxes(entry["boxes"])
            if not bad:
                return boxes, int(entry["frames_read"]), None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    problem = stream_problem(job.video.path)
    if problem:
        raise VideoError(f"ffmpeg cannot read it cleanly ({problem}): truncated, damaged or not a video")
    stride, limit = sampling(job.video.path, job.detection.max_frames)
    frames = sampled_frames(job.video.path, stride, limit)
    found = main_face_boxes(job.video.path, job.detection, stride, limit, frames)
    write_json(path, {"stamp": stamp, "video": job.video.name, "stride": stride, "frames_read": len(found.frames),
                      "detected": found.detected, "filled": found.filled,
                      "boxes": {str(f): b for f, b in found.boxes.items()}})
    return found.boxes, len(found.frames), frames


def prepare(job):
    """Boxes, then crops at every size, for one video (in a worker process); never raises for a bad video."""
    result = Prepared(job.dataset, job.video)
    try:
        boxes, frames_read, frames = _boxes(job)
    except (VideoError, OSError) as e:
        result.reason = str(e).removeprefix(f"{job.video.path}: ")
        return result
    if not boxes:
        result.reason = no_face(job.video.path, frames_read, job.detection)
        return result
    for size in job.sizes:
        folder = crop_folder(job.cache, size, job.video)
        tally = crop_video(job.video.path, boxes, folder, size, fmt="packed", frames=frames)
        result.frames[size] = len(frame_numbers(folder)) if tally.frames_done else 0
        if not result.frames[size]:
            result.reason = "; ".join(s.removeprefix(f"{job.video.path}: ") for s in tally.skips) or "no crop cut"
            return result
        result.lines += tally.skips
    return result


def balanced_subset(videos, count, seed=0):
    """count videos (all for 0), half real and half fake (the odd one fake), each half drawn with a seed from
    that class in name order; a class with fewer gives all it has."""
    if not count:
        return list(videos)
    chosen = []
    for label, share in ((0, count // 2), (1, count - count // 2)):
        pool = sorted((v for v in videos if v.label == label), key=lambda v: v.name)
        chosen += random.Random(f"{seed}:{label}").sample(pool, min(share, len(pool)))
    return sorted(chosen, key=lambda v: v.name)


def prepare_datasets(datasets, out, sizes, detection, options=Options(), max_videos=0, seed=0, workers=0):
    """({dataset: [Prepared, in name order]}, Tally) for {dataset name: root}. Missing, unreadable and faceless
    videos get one skip line each; the others are prepared for every size in sizes."""
    tally = Tally()
    prepared, jobs = {}, []
    for name, root in datasets.items():
        listing = read_dataset(name, root, options)
        wanted = {v.name for v in balanced_subset(listing.videos + listing.missing, max_videos, seed)}
        named_by = ", ".join(map(str, listing.sources))
        prepared[name] = [Prepared(name, v, reason=f"not found (named by {named_by})")
                          for v in listing.missing if v.name in wanted]
        for result in prepared[name]:
            tally.skip(f"{result.video.path}: {result.reason}: skipped", videos=1)
        videos = [v for v in listing.videos if v.name in wanted]
        jobs += [Job(name, v, Path(out) / "prep" / name, tuple(sizes), detection) for v in videos]
        print(f"{name}: {len(videos)} videos ({sum(v.label for v in videos)} fake) from {root}", file=sys.stderr)
    for result in pool_map(prepare, jobs, workers, "prepare"):
        for line in result.lines:
            tally.skip(line)
        if result.reason:
            tally.skip(f"{result.video.path}: {result.reason}: skipped", videos=1)
        else:
            tally.videos_done += 1
            tally.frames_done += min(result.frames.values())
        prepared[result.dataset].append(result)
    for name in prepared:
        prepared[name].sort(key=lambda r: r.video.name)
        _write_videos(Path(out) / name / "videos.csv", prepared[name])
    return prepared, tally


def _write_videos(path, prepared):
    """Every labelled video of the run: its label, and whether it was prepared or why not."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("video", "method", "label", "status", "frames", "reason", "path"))
    for r in prepared:
        writer.writerow((r.video.name, r.video.method, r.video.label, "skipped" if r.reason else "prepared",
                         min(r.frames.values(), default=0), r.reason or "", str(r.video.path)))
    write_bytes(path, buffer.getvalue().encode())


def frames_of(prepared, cache, size):
    """(frames, their videos) of the prepared videos at one size, in order, as score_frames takes them."""
    frames, videos = [], []
    for result in prepared:
        if result.reason:
            continue
        video = result.video
        for n in sorted(frame_numbers(crop_folder(cache, size, video))):
            frames.append(Frame(FAKE if video.label else ffpp.REAL, video_key(video.name), n))
            videos.append(video)
    return frames, videos


# ----------------------------------------------------------------------------- scoring and metrics

def slug(label):
    """A checkpoint row's label as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "checkpoint"


def checkpoint_rows(checkpoints):
    """[(label, folder, compression or None)] of cli.parse_checkpoints' dict: a row scores whole datasets, so
    a qualifier naming an FF++ method has no meaning here."""
    for label, cells in checkpoints.items():
        for dataset, _ in cells:
            if dataset not in (None, "All"):
                raise ValueError(f"--checkpoint {label}@{dataset}: a cross-dataset row scores whole datasets; "
                                 f"drop @{dataset} (any run trained on FF++ can be given as LABEL=DIR)")
    specs = checkpoint_specs(checkpoints)
    labels = [slug(label) for label, _, _ in specs]
    if len(set(labels)) < len(labels):
        raise ValueError(f"--checkpoint labels {', '.join(label for label, _, _ in specs)} give the same folder "
                         "names; label them apart")
    return specs


def image_sizes(specs, requested=None):
    """The crop sizes the rows will score at: --image-size, or each run's own (its config.json; 299 without)."""
    return sorted({requested or run_input_size(folder) for _, folder, _ in specs})


def dataset_metrics(videos, frames, scores, threshold):
    """metrics.py's frame and video numbers of one dataset's scores, acc at the run's threshold."""
    labels = np.array([v.label for v in videos], np.int64)
    names = np.array([v.name for v in videos])
    result = frame_metrics(labels, scores, threshold.value)
    result.update(video_metrics(names, scores, labels, threshold.value))
    result["real_videos"] = len({n for n, y in zip(names, labels) if not y})
    result["fake_videos"] = len({n for n, y in zip(names, labels) if y})
    result["threshold_source"] = threshold.source
    result["best_acc_note"] = BEST_ACC_NOTE
    return result


def _scores_csv(videos, frames, scores):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    writer.writerows((v.name, v.method, f.frame, v.label, repr(float(s))) for v, f, s in zip(videos, frames, scores))
    return buffer.getvalue()


@dataclass
class Settings:
    """How the rows are scored (cross_dataset.py's flags of the same names)."""
    device: object
    epoch: str = "best"
    heads: tuple = tuple(HEADS)
    image_size: int | None = None  # None: each run's own
    batch_size: int = 128
    workers: int = 0
    precision: str = "fp32"


def score_rows(specs, prepared, out, settings, tally):
    """One table row per checkpoint and head: each dataset's scores.csv and metrics.json written under
    OUT/<dataset>/<row>/, and the row's AUCs."""
    rows, notes = [], []
    for scorer in load_scorers(specs, settings.epoch, settings.heads, notes):
        size = settings.image_size or input_size(scorer.model)
        threshold = thresholds_of(scorer.info["checkpoint_dir"], scorer.info, {"row": scorer.compression})["row"]
        row = {"checkpoint": scorer.label, "head": scorer.compression, "image_size": size,
               "checkpoint_dir": scorer.info["checkpoint_dir"], "epoch": scorer.info["epoch"],
               "threshold": threshold.value, "metrics": {}}
        scorer.model.to(settings.device)
        for name, results in prepared.items():
            cache = Path(out) / "prep" / name
            frames, videos = frames_of(results, cache, size)
            if not frames:
                continue
            options = ScoreOptions(image_size=size, batch_size=settings.batch_size, workers=settings.workers,
                                   precision=settings.precision)
            scores, _, _ = score_frames(scorer.model, crop_root(cache, size), frames, scorer.compression,
                                        settings.device, options, progress=True, folder=CROPS)
            scored = ~np.isnan(scores)
            if not scored.all():
                tally.skip(f"{crop_root(cache, size)}: {int((~scored).sum())} crops of {name} did not decode (named "
                           f"above): left out of {scorer.label}'s scores", frames=int((~scored).sum()))
                frames, videos = [f for f, k in zip(frames, scored) if k], [v for v, k in zip(videos, scored) if k]
                scores = scores[scored]
            folder = Path(out) / name / slug(scorer.label)
            write_bytes(folder / "scores.csv", _scores_csv(videos, frames, scores).encode())
            metrics = {"dataset": name, "checkpoint": scorer.label, "head": scorer.compression,
                       "checkpoint_dir": scorer.info["checkpoint_dir"], "epoch": scorer.info["epoch"],
                       "image_size": size, **dataset_metrics(videos, frames, scores, threshold)}
            write_json(folder / "metrics.json", metrics, indent=2)
            row["metrics"][name] = metrics
        scorer.model.to("cpu")
        rows.append(row)
    if not rows:
        raise ValueError("no checkpoint could be scored: " + "; ".join(notes))
    return rows, notes


# ----------------------------------------------------------------------------- the table

def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def table_rows(rows, datasets):
    """The CSV rows of the table: per dataset frame and video AUC, and their means over the datasets that
    have them."""
    out = []
    for row in rows:
        cells = {"checkpoint": row["checkpoint"], "head": row["head"], "image_size": row["image_size"],
                 "epoch": row["epoch"], "checkpoint_dir": row["checkpoint_dir"]}
        for name in datasets:
            m = row["metrics"].get(name, {})
            cells[f"{name}_auc"], cells[f"{name}_video_auc"] = m.get("auc"), m.get("video_auc")
        cells["mean_auc"] = _mean([cells[f"{n}_auc"] for n in datasets])
        cells["mean_video_auc"] = _mean([cells[f"{n}_video_auc"] for n in datasets])
        out.append(cells)
    return out


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f}"


def markdown(table, datasets, prepared, tally, notes):
    header = ["checkpoint"] + [f"{n} {k}" for n in datasets for k in ("AUC", "video AUC")] + ["mean AUC",
                                                                                           "mean video AUC"]
    lines = ["Cross-dataset AUC in %: frame AUC and video AUC (the mean frame score of a video) per dataset; "
             "the mean over the datasets that have both classes scored.", "",
             "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for cells in table:
        values = [cells[f"{n}_{k}"] for n in datasets for k in ("auc", "video_auc")]
        values += [cells["mean_auc"], cells["mean_video_auc"]]
        lines.append(f"| {cells['checkpoint']} | " + " | ".join(map(_percent, values)) + " |")
    lines.append("")
    for name in datasets:
        done = [r for r in prepared[name] if not r.reason]
        fakes = sum(r.video.label for r in done)
        lines.append(f"- {name}: {len(done)} videos scored ({len(done) - fakes} real, {fakes} fake), "
                     f"{len(prepared[name]) - len(done)} skipped; {name}/videos.csv lists each and why.")
    lines += ["- Accuracy at each run's FF++ validation threshold, AP, EER and the oracle best accuracy: "
              "<dataset>/<checkpoint>/metrics.json."]
    lines += [f"- {n}" for n in notes] + [f"- {tally.summary()}"]
    return "\n".join(lines) + "\n"


def write_table(out, rows, datasets, prepared, tally, notes):
    """table.md (returned) and table.csv in out."""
    table = table_rows(rows, datasets)
    columns = list(table[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in cells.items()} for cells in table)
    write_bytes(Path(out) / "table.csv", buffer.getvalue().encode())
    text = markdown(table, datasets, prepared, tally, notes)
    write_bytes(Path(out) / "table.md", text.encode())
    return text


def evaluate(checkpoints, datasets, out, settings, detection, options=Options(), max_videos=0, seed=0):
    """The whole run: prepare, score, write the table. Returns (table.md's text, Tally); the tally's skips say
    what was left out."""
    check_writable(out)
    specs = checkpoint_rows(checkpoints)
    sizes = image_sizes(specs, settings.image_size)
    prepared, tally = prepare_datasets(datasets, out, sizes, detection, options, max_videos, seed, settings.workers)
    rows, notes = score_rows(specs, prepared, out, settings, tally)
    return write_table(out, rows, list(datasets), prepared, tally, notes), tally
