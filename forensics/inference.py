"""detect.py's path from files to verdicts: inputs -> face tracks -> crops -> scores -> verdicts.

A video is read twice. Pass 1 decodes it in a thread and finds faces with dlib in worker processes on its
keyframes (faces.FaceFinder), then tracks them as detect_faces.py does (faces.boxed_tracks, fill_track).
Pass 2 decodes it again in a thread, cuts each crop as create_faces_from_dlib_locs.py does (crops.cut:
INTER_AREA to the model's size) and scores batches of them through scoring.score_batch, the arithmetic of
score_frames. Pass 1 of the next input runs while this one is scored. Decoding twice costs less than holding
a long video's frames.
"""
import csv
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from . import faces, progress
from .crops import cut
from .data import rgb_chw, stack_images
from .fileio import imread, write_bytes, write_json
from .metrics import verdict
from .overlay import Overlay
from .runs import load_model, run_threshold
from .scoring import score_batch
from .video import VideoError, iter_frames, prefetch, stream_problem, video_info
from models import HEADS
from models.checkpoints import CheckpointError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CALIBRATION = ("the threshold of best accuracy on the run's validation split: calibrated to FF++-like data, "
               "not to this footage (another dataset, camera or compression shifts the scores)")


class Skip(Exception):
    """Why an input cannot be scored; the message is the reason (the caller names the file)."""


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Input:
    path: Path
    kind: str  # video or image


def kind_of(path):
    return "image" if Path(path).suffix.lower() in IMAGE_SUFFIXES else "video"


def gather_inputs(paths, recursive=False, out=None):
    """(inputs, ignored files) from the command line's paths, in order, each file once. A folder gives its
    videos and images by suffix (with recursive, those of its subfolders too) and ignores other files, hidden
    ones and those in out (detect.py's own overlays, from an earlier run into a folder it scores); a file named
    on the command line is an image by its suffix, else tried as a video; a path that does not exist stays an
    input, reported when its turn comes."""
    inputs, ignored, seen = [], [], set()
    own = Path(out).resolve() if out is not None else None
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(p for p in (given.rglob("*") if recursive else given.iterdir())
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(given).parts)
                           and not (own and p.resolve().is_relative_to(own)))
            media = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES]
            ignored += [p for p in found if p not in media]
        else:
            media = [given]
        for p in media:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                inputs.append(Input(p, kind_of(p)))
    return inputs, ignored


# ----------------------------------------------------------------------------- pass 1: decode, detect, track

@dataclass
class Settings:
    """How faces are found and which frames are scored (detect.py's flags of the same names)."""
    max_frames: int = 300  # 0: every frame
    stride: int = 1
    detection: faces.DetectionSettings = faces.FOOTAGE
    min_face: int = 64  # smallest box side in pixels worth scoring
    min_track: int = 5  # --all-faces: a face needs detections in this many keyframes (fewer keyframes: all)
    all_faces: bool = False


@dataclass
class Found:
    """Pass 1's result for one input."""
    seen: faces.FrameDetections  # the frames read, the keyframes, the detections
    fps: float | None
    seconds: float = 0.0


@dataclass
class Face:
    """One tracked face: index 0 is the main face (the track with the largest sum of box sides)."""
    index: int
    boxes: dict  # {frame: [x, y, size]}, the frames scored
    detected: set  # the frames whose box is a detection (the others: fill_gaps)


def read_still(path):
    """An image as BGR (grey and alpha dropped as OpenCV reads them), or Skip."""
    image = imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise Skip("cannot be read as an image (corrupt, or not an image)")
    return image


def frames_of(item, settings, every=1):
    """(index, BGR frame) of the frames an input is scored on: frames 0, stride, ... below max_frames of a
    video (with every > 1 only every every-th decoded to a picture, the others None); frame 0 of an image."""
    if item.kind == "image":
        return iter([(0, read_still(item.path))])
    return iter_frames(item.path, settings.max_frames or None, settings.stride, every)


def find(item, finder, settings):
    """Pass 1 of one input: Found, or Skip saying why it cannot be scored."""
    started = time.perf_counter()
    path = item.path
    if not path.exists():
        raise Skip("not found")
    if not path.is_file():
        raise Skip("not a file")
    fps = None
    if item.kind == "video":
        problem = stream_problem(path)
        if problem:
            raise Skip(f"ffmpeg cannot read it cleanly ({problem}): truncated, damaged or not a video")
        fps = video_info(path)[1] or None
    try:
        seen = finder.detect(frames_of(item, settings, settings.detection.detect_every))
    except VideoError as e:
        raise Skip(str(e).removeprefix(f"{path}: ")) from None
    except faces.Cancelled:
        raise Skip("cancelled") from None
    return Found(seen, fps, time.perf_counter() - started)


def choose_faces(found, settings):
    """The faces to score (the main face, or every face with --all-faces), largest first, with their boxes
    (as detect_faces.py makes them: square_box, then fill_gaps); Skip when there is none."""
    seen, detection = found.seen, settings.detection
    looked = _frames(len(seen.frames)) + (f" (detected on {len(seen.keyframes)}, every {detection.detect_every}th)"
                                           if len(seen.keyframes) < len(seen.frames) else "")
    if not seen.found:
        raise Skip(f"no face found in its {looked} ({faces.no_face_hint(detection, seen.width, seen.height)})")
    boxed = faces.boxed_tracks(seen.found, seen.width, seen.height, detection.scale)
    sides = [float(np.median([b[2] for b in boxes.values()])) for boxes in boxed]
    large = [boxes for boxes, side in zip(boxed, sides) if side >= settings.min_face]
    if not large:
        raise Skip(f"face too small: its box is {max(sides):.0f} px, below --min-face {settings.min_face}")
    if settings.all_faces:
        needed = min(settings.min_track, len(seen.keyframes))
        chosen = [boxes for boxes in large if len(boxes) >= needed]
        if not chosen:
            raise Skip(f"no face was found in at least --min-track {needed} of its {looked}")
    else:
        chosen = large[:1]
    return [Face(k, faces.fill_track(boxes, seen, detection, settings.stride), set(boxes))
            for k, boxes in enumerate(chosen)]


def _frames(n):
    return f"{n} frame" + ("" if n == 1 else "s")


# ----------------------------------------------------------------------------- pass 2: crops -> scores

@dataclass
class Threshold:
    value: float | None
    source: str


def load_detector(directory, epoch="best", head="lq"):
    """(model, info, {head name: quality}) for --head lq, hq or both; a baseline run has one stream, named
    'xception'. Both heads share one tail."""
    compressions = [HEADS[h] for h in HEADS if head in (h, "both")]
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: checkpoint folder not found; pass --checkpoint DIR (a train.py run, "
                                "or a folder of released head_N.tar and tail_N.tar)")
    released = not list(directory.glob("hq_head_*.tar")) and list(directory.glob("head_*.tar"))
    if "c23" in compressions and released:
        raise CheckpointError(f"{directory}: a released checkpoint folder holds only the LQ head (head_N.tar), "
                              f"no HQ head for --head {head}: use --head lq")
    model, info = load_model(directory, epoch, compressions[0])
    if info["model"] == "xception":
        return model, info, {"xception": info.get("trained_on") or "c23"}
    if len(compressions) == 2:
        model.hq_head = load_model(directory, info["epoch"], "c23")[0].hq_head
    return model, info, {h: HEADS[h] for h in HEADS if HEADS[h] in compressions}


def thresholds_of(directory, info, heads, override=None):
    """{head: Threshold}: --threshold if given, else the validation threshold train.py stored for this epoch
    and quality (history.json / best.json); None where there is none (a released folder)."""
    out = {}
    for name, quality in heads.items():
        if override is not None:
            out[name] = Threshold(float(override), "--threshold")
            continue
        value = run_threshold(directory, info["epoch"], quality)
        if value is None:
            out[name] = Threshold(None, f"none: {directory} stores no validation threshold for epoch "
                                        f"{info['epoch']} at {quality} (a released folder has none); pass "
                                        "--threshold T for a verdict")
        else:
            out[name] = Threshold(value, f"{directory}/history.json, epoch {info['epoch']} at {quality}: "
                                         + CALIBRATION)
    return out


class Scorer:
    """Batches of crops through every head asked for, with the run's crop size and device.py's precision."""

    def __init__(self, model, heads, device, image_size, batch_size=32, precision="fp32", channels_last=False):
        self.model = model.to(device).eval()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.heads, self.device, self.image_size = heads, device, image_size
        self.batch_size, self.precision, self.channels_last = batch_size, precision, channels_last

    def crop(self, frame, box):
        """The model's input for one face: cut and resized as the crop tree's crops are, RGB CHW uint8."""
        return rgb_chw(cut(frame, box, self.image_size))

    def __call__(self, images):
        """{head: (scores float64, maps float16 N x h x w or None)} of a uint8 NCHW stack."""
        out = {}
        for name, quality in self.heads.items():
            score, attention = score_batch(self.model, images, quality, self.device, self.precision,
                                           self.channels_last)
            out[name] = (score.float().cpu().numpy().astype(np.float64),
                         None if attention is None else attention[:, 0].float().cpu().numpy().astype(np.float16))
        return out


def score_faces(item, faces_, scorer, settings, on_frame=None):
    """Pass 2: {face index: {frame: {head: score}}}. on_frame(frame index, BGR frame, [(face, box, scores,
    maps)]) is called for every frame with a face, in order, once its faces are scored (the overlay)."""
    wanted = sorted({f for face in faces_ for f in face.boxes})
    scores = {face.index: {} for face in faces_}
    batch, held = [], []  # batch: (frame, face, crop); held: (frame index, frame or None, [(face, box)])

    def flush():
        if not batch:
            return
        result = scorer(stack_images([crop for _, _, crop in batch]))
        at = {}
        for k, (f, face, _) in enumerate(batch):
            scores[face.index][f] = {h: float(s[k]) for h, (s, _) in result.items()}
            at[(f, face.index)] = {h: (None if m is None else m[k]) for h, (_, m) in result.items()}
        if on_frame is not None:
            for f, frame, here in held:
                on_frame(f, frame, [(face, box, scores[face.index][f], at[(f, face.index)]) for face, box in here])
        batch.clear()
        held.clear()

    frames = prefetch(frames_of(item, settings))
    try:
        for f, frame in frames:
            if f > wanted[-1]:
                break
            here = [(face, face.boxes[f]) for face in faces_ if f in face.boxes]
            if not here:
                continue
            batch.extend((f, face, scorer.crop(frame, box)) for face, box in here)
            held.append((f, frame if on_frame is not None else None, here))
            if len(batch) >= scorer.batch_size:
                flush()
    finally:
        frames.close()
    flush()
    lost = [f for f in wanted if all(f not in scores[face.index] for face in faces_)]
    if lost:
        raise Skip(f"decoding gave other frames the second time (frame {lost[0]} lost): damaged video")
    return scores


# ----------------------------------------------------------------------------- verdicts and outputs

def summarise(item, found, faces_, scores, thresholds, seconds):
    """The results.json entry of a scored input. An input's score is its main face's mean frame score (as
    eval.py's video score); with several faces, the highest face score, and it is fake if any face is."""
    entries = []
    for face in faces_:
        frames = [{"frame": f, "box": [int(v) for v in face.boxes[f]], "detected": f in face.detected,
                   "scores": scores[face.index][f]} for f in sorted(face.boxes)]
        mean = {h: float(np.mean([fr["scores"][h] for fr in frames])) for h in thresholds}
        entries.append({"face": face.index, "frames_scored": len(frames), "score": mean,
                        "verdict": {h: verdict(mean[h], thresholds[h].value) for h in thresholds},
                        "frames": frames})
    top = {h: max(e["score"][h] for e in entries) for h in thresholds}
    return {"path": str(item.path), "kind": item.kind, "status": "scored", "reason": None,
            "width": found.seen.width, "height": found.seen.height, "fps": found.fps,
            "frames_read": len(found.seen.frames), "frames_detected_on": len(found.seen.keyframes),
            "frames_scored": sum(e["frames_scored"] for e in entries), "faces": entries, "score": top,
            "verdict": {h: verdict(top[h], thresholds[h].value) for h in thresholds}, "seconds": seconds}


def skipped(item, reason):
    return {"path": str(item.path), "kind": item.kind, "status": "skipped", "reason": reason}


def line(entry):
    """The terminal line of an input: path, verdict, score and frames scored (each head with --head both)."""
    if entry["status"] != "scored":
        return f"skip: {entry['path']}: {entry['reason']}"
    heads = list(entry["score"])
    shown = {h: entry["verdict"][h].upper() if entry["verdict"][h] else "no verdict" for h in heads}
    parts = [(f"{h} " if len(heads) > 1 else "") + f"{shown[h]}  {entry['score'][h]:.4f}" for h in heads]
    faces_ = len(entry["faces"])
    counted = f"{_frames(entry['frames_scored'])}" + (f" ({faces_} faces)" if faces_ > 1 else "")
    return f"{entry['path']}  {'  '.join(parts)}  {counted}"


CSV_FIXED = ("path", "kind", "status", "reason", "face", "frame", "x", "y", "size", "detected")


def results_csv(entries, heads):
    """One row per scored face and frame, with the input's score and verdict; one row per skipped input."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_FIXED, *(f"score_{h}" for h in heads), *(f"input_score_{h}" for h in heads),
                     *(f"input_verdict_{h}" for h in heads)])
    for e in entries:
        head = [e["path"], e["kind"], e["status"], e["reason"] or ""]
        if e["status"] != "scored":
            writer.writerow(head + [""] * (len(CSV_FIXED) - len(head) + 3 * len(heads)))
            continue
        tail = [*(repr(e["score"][h]) for h in heads), *((e["verdict"][h] or "") for h in heads)]
        for face in e["faces"]:
            for fr in face["frames"]:
                writer.writerow(head + [face["face"], fr["frame"], *fr["box"], int(fr["detected"]),
                                        *(repr(fr["scores"][h]) for h in heads)] + tail)
    return buffer.getvalue()


def _output_name(path, used):
    name, k = path.stem, 1
    while name in used:
        k += 1
        name = f"{path.stem}-{k}"
    used.add(name)
    return name


@dataclass
class Report:
    """What run() did: the results.json entries and the time it took."""
    entries: list = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # --strict stopped at a skipped input

    @property
    def skipped(self):
        return [e for e in self.entries if e["status"] != "scored"]

    @property
    def frames_scored(self):
        return sum(e.get("frames_scored", 0) for e in self.entries)


def run(inputs, scorer, thresholds, settings, out_dir, workers=0, overlay=False, strict=False, meta=None,
        echo=progress.write):
    """Score every input, write out_dir/results.json and results.csv (and the overlays) and return a Report.
    A bad input is skipped with one line naming it and the reason, the others go on; strict stops at the first.
    """
    out_dir = Path(out_dir)
    report, used = Report(), set()
    started = time.perf_counter()

    def pass_one(item):
        try:
            return item, find(item, finder, settings), None
        except Skip as e:
            return item, None, str(e)

    with faces.FaceFinder(settings.detection, workers) as finder:
        ahead = prefetch(map(pass_one, inputs), depth=1)
        bar = progress.bar(total=len(inputs), desc="inputs", unit="input")
        try:
            for item, found, reason in ahead:
                entry = _score_one(item, found, reason, scorer, thresholds, settings, out_dir, overlay, used)
                report.entries.append(entry)
                echo(line(entry))
                bar.update()
                if strict and entry["status"] != "scored":
                    report.stopped = True
                    break
        finally:
            bar.close()
            finder.cancel()  # an interrupted or --strict run does not wait for the next input's detection
            ahead.close()
    report.seconds = time.perf_counter() - started
    write_results(report, thresholds, settings, out_dir, meta or {})
    return report


def _score_one(item, found, reason, scorer, thresholds, settings, out_dir, overlay, used):
    if reason is not None:
        return skipped(item, reason)
    started = time.perf_counter()
    drawing = None
    try:
        faces_ = choose_faces(found, settings)
        if overlay:
            drawing = Overlay(item.path, out_dir, _output_name(item.path, used),
                              {h: t.value for h, t in thresholds.items()}, found.fps, settings.stride,
                              video=item.kind == "video")
        scores = score_faces(item, faces_, scorer, settings, drawing.frame if drawing else None)
        seconds = {"detect": round(found.seconds, 3), "score": round(time.perf_counter() - started, 3)}
        entry = summarise(item, found, faces_, scores, thresholds, seconds)
        if drawing:
            entry.update(drawing.finish(entry))
        return entry
    except (Skip, VideoError, ValueError) as e:
        if drawing:
            drawing.abort()
        return skipped(item, str(e).removeprefix(f"{item.path}: "))
    except BaseException:
        if drawing:
            drawing.abort()
        raise


def flat_settings(settings):
    """Settings as one flat dict, the detection fields among the others (results.json's "settings")."""
    flat = asdict(settings)
    flat.update(flat.pop("detection"))
    return flat


def write_results(report, thresholds, settings, out_dir, meta):
    """results.json (settings, thresholds and where they came from, one entry per input) and results.csv."""
    heads = list(thresholds)
    scored = [e for e in report.entries if e["status"] == "scored"]
    summary = {"inputs": len(report.entries), "scored": len(scored), "skipped": len(report.skipped),
               "stopped_at_first_skip": report.stopped, "frames_scored": report.frames_scored,
               "seconds": round(report.seconds, 3),
               "frames_per_s": round(report.frames_scored / report.seconds, 3) if report.seconds else None}
    document = {**meta, "heads": {h: {"threshold": t.value, "threshold_source": t.source}
                                  for h, t in thresholds.items()},
                "settings": flat_settings(settings), "summary": summary, "inputs": report.entries}
    write_json(Path(out_dir) / "results.json", document, indent=1)
    write_bytes(Path(out_dir) / "results.csv", results_csv(report.entries, heads).encode())
