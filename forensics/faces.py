"""dlib face detection and the one-face-per-video boxes of the face-location files.

A box is [x, y, size]: the top-left corner and side of a square, in pixels of the full frame. It is the
detection enlarged around its centre by `scale`, made square and moved inside the frame (shrunk only when
it is larger than the frame), as in the location files released with the paper's code.
"""
import bisect
import collections
import functools
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2

from . import ffpp
from .fileio import check_writable, write_bytes, write_error
from .locations import parse_boxes, write_locs
from .manifest import Tally, in_shard, pool_map, select_videos, split_ids, video_stamp
from .video import VideoError, iter_frames, prefetch

MAX_SHIFT = 0.5  # a detection continues a track if its centre moved less than this many box sides ...
SHIFT_PER_FRAME = 0.05  # ... plus this much per frame since the track was last seen ...
MAX_SHIFT_CAP = 1.0  # ... up to this
MAX_SIZE_RATIO = 1.5  # and its size changed by less than this factor
CHUNK = 4  # keyframes per job sent to a FaceFinder worker process


@dataclass(frozen=True)
class DetectionSettings:
    """How faces are found and boxed: one field per flag of cli.add_detector_flags, which detect_faces.py and
    detect.py share. The defaults are the released preprocessing's (dlib's HOG on every frame, one pass);
    FOOTAGE below is for ordinary footage."""
    detector: str = "hog"  # hog, or cnn (dlib's MMOD CNN)
    upsample: int = 0  # dlib's upsampling steps: each finds faces half as large, four times slower
    detect_size: int = 640  # detect on a copy whose longest side is at most this (0: full size)
    fallback_size: int = 0  # a keyframe where that finds no face is searched again on a copy this large; 0: never
    detect_every: int = 1  # detect on every Nth frame read (the keyframes), interpolate the boxes between
    scale: float = 1.3  # box side = this times the detection's longer side
    max_gap: int = 5  # a box is carried this many frames past a frame detected on without the face

    def reach(self, stride=1):
        """How many frames away (in frame numbers) a detection gives its box to a frame without one: the
        frames between keyframes, plus max_gap."""
        return self.max_gap + (self.detect_every - 1) * stride


FFPP_FRAMES = 270  # first frames of each FF++ video detected (the released training used 270, its test 140)
FFPP = DetectionSettings()  # FF++ preprocessing (detect_faces.py), as the released location files were made
# Ordinary footage (detect.py, other datasets): faces smaller than HOG's 80 px at 640 are searched again at 1280
# px (DFDC's portrait clips), and detection on every 5th frame with boxes interpolated between agrees with
# detection on every frame (mean IoU 0.95) for about a quarter of the CPU time (benchmarks/README.md).
FOOTAGE = DetectionSettings(fallback_size=1280, detect_every=5)


def dlib_model_path(name):
    """Path of one of the dlib model files shipped in face_recognition_models, e.g.
    'mmod_human_face_detector.dat' or 'shape_predictor_68_face_landmarks.dat'. Found without importing the
    package, whose __init__ needs pkg_resources."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"dlib model {name}: the package face_recognition_models is not installed; "
                                "run `pip install face_recognition_models`")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib model file not found; reinstall face_recognition_models")
    return path


@functools.cache
def _dlib_model(kind):
    """dlib's detector of a kind, loaded once a process (the HOG model alone takes about a second)."""
    import dlib

    if kind == "hog":
        return dlib.get_frontal_face_detector()
    return dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))


class Detector:
    """dlib's frontal face detector ('hog', or 'cnn': the MMOD CNN) on a copy of the frame whose longest side
    is at most settings.detect_size (0: full size), with boxes mapped back to the full frame; where it finds
    nothing and settings.fallback_size is larger than that copy, once more on a copy of that size."""

    def __init__(self, settings=FFPP):
        kind, upsample = settings.detector, settings.upsample
        if kind not in ("hog", "cnn"):
            raise ValueError(f"--detector {kind!r}: choose hog or cnn")
        model = _dlib_model(kind)
        if kind == "hog":
            self._run = lambda rgb: list(zip(*model.run(rgb, upsample, 0.0)[:2]))
        else:
            self._run = lambda rgb: [(d.rect, d.confidence) for d in model(rgb, upsample)]
        self.settings = settings

    def __call__(self, frame):
        """[(left, top, right, bottom, score)] in full-frame pixels, for a BGR frame."""
        found = self.detect_rgb(*detection_copy(frame, self.settings.detect_size))
        if found or not needs_fallback(frame.shape, self.settings):
            return found
        return self.detect_rgb(*detection_copy(frame, self.settings.fallback_size, enlarge=True))

    def detect_rgb(self, rgb, f=1.0):
        """One pass on a copy made by detection_copy, mapped back to the full frame by its factor f."""
        return [(r.left() / f, r.top() / f, (r.right() + 1) / f, (r.bottom() + 1) / f, float(score))
                for r, score in self._run(rgb)]


def detection_copy(frame, size, enlarge=False):
    """(the RGB copy of a BGR frame that the detector runs on, its scale factor f): longest side at most size
    (0: full size), or exactly size with enlarge."""
    h, w = frame.shape[:2]
    f = size / max(h, w) if size and (max(h, w) > size or enlarge) else 1.0
    if f != 1.0:
        frame = cv2.resize(frame, (round(w * f), round(h * f)),
                           interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), f


def needs_fallback(shape, settings):
    """Whether a frame of this shape gets the fallback pass where the first finds nothing: only when its copy
    would be larger than the first pass's."""
    side = max(shape[:2])
    first = min(side, settings.detect_size) if settings.detect_size else side
    return settings.fallback_size > first


def no_face_hint(settings, width, height):
    """The sizes looked at when no face was found with these settings, and what a user can still try."""
    side = max(width, height)
    looked = max(min(side, settings.detect_size) if settings.detect_size else side,
                 settings.fallback_size if needs_fallback((height, width), settings) else 0)
    tries = []
    if settings.upsample == 0:
        tries.append("--upsample 1")
    if side > looked:
        tries.append("--detect-size 0")
    if settings.detector == "hog":
        tries.append("--detector cnn (turned faces)")
    smallest = f", whose smallest face is about {80 // 2 ** settings.upsample} px there" \
        if settings.detector == "hog" else ""
    return (f"dlib {settings.detector} on frames of at most {looked} px{smallest}"
            + (f": try {' or '.join(tries)}" if tries else ""))


def _clip(cx, cy, side, width, height):
    side = max(1, min(int(round(side)), width, height))
    x = min(max(int(round(cx - side / 2)), 0), width - side)
    y = min(max(int(round(cy - side / 2)), 0), height - side)
    return [x, y, side]


def square_box(rect, width, height, scale=1.3):
    """[x, y, size] for a detection (left, top, right, bottom, ...) in a width x height frame."""
    left, top, right, bottom = rect[:4]
    side = max(right - left, bottom - top) * scale
    return _clip((left + right) / 2, (top + bottom) / 2, side, width, height)


def iou(a, b):
    """Intersection over union of two [x, y, size] boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / (a[2] ** 2 + b[2] ** 2 - inter)


def _side(rect):
    return max(rect[2] - rect[0], rect[3] - rect[1])


def _shift(a, b):
    """Distance between the centres of two rects, in mean sides."""
    d = math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    return d / ((_side(a) + _side(b)) / 2)


def track_faces(detections):
    """Every face's detections, as tracks [{frame: rect}, ...] in the order they appeared, from
    {frame: [rect, ...]}: detections are linked frame to frame (closest centre first; a track may pause)."""
    tracks = []  # each {frame: rect}, in frame order
    for frame in sorted(detections):
        rects = detections[frame]
        pairs = []
        for t, track in enumerate(tracks):
            last_frame = next(reversed(track))
            last = track[last_frame]
            limit = min(MAX_SHIFT + SHIFT_PER_FRAME * (frame - last_frame - 1), MAX_SHIFT_CAP)
            for r, rect in enumerate(rects):
                ratio = _side(rect) / _side(last)
                shift = _shift(last, rect)
                if shift <= limit and 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
                    pairs.append((shift, t, r))
        used_tracks, used_rects = set(), set()
        for _, t, r in sorted(pairs):
            if t not in used_tracks and r not in used_rects:
                tracks[t][frame] = rects[r]
                used_tracks.add(t)
                used_rects.add(r)
        tracks += [{frame: rect} for r, rect in enumerate(rects) if r not in used_rects]
    return tracks


def track_weight(track):
    """Sum of the box sides of a track: large for a face that is big and long-lived."""
    return sum(_side(rect) for rect in track.values())


def track_main_face(detections):
    """The detections of the video's main face: {frame: rect} from {frame: [rect, ...]}.

    The main face is the track (track_faces) with the largest sum of box sides: big and long-lived, so
    neither a face in the background nor a passer-by, and a frame with several faces never makes it jump
    to another person.
    """
    return max(track_faces(detections), key=track_weight, default={})


def boxed_tracks(detections, width, height, scale):
    """Every face's boxes at its detections, [{frame: [x, y, size]}, ...], the main face (track_weight) first."""
    tracks = sorted(track_faces(detections), key=track_weight, reverse=True)
    return [{f: square_box(rect, width, height, scale=scale) for f, rect in t.items()} for t in tracks]


def fill_gaps(boxes, frames, max_gap, width, height):
    """boxes ({frame: [x, y, size]} of the frames with a detection) plus a box for each other frame in
    frames that has a detected frame at most max_gap frames away: interpolated when there is one on each
    side, else copied from the nearer. Frames further from any detection stay out."""
    known = sorted(boxes)
    out = dict(boxes)
    for frame in frames:
        if frame in boxes:
            continue
        i = bisect.bisect(known, frame)
        before = known[i - 1] if i > 0 and frame - known[i - 1] <= max_gap else None
        after = known[i] if i < len(known) and known[i] - frame <= max_gap else None
        if before is not None and after is not None:
            w = (frame - before) / (after - before)
            a, b = boxes[before], boxes[after]
            cx = (1 - w) * (a[0] + a[2] / 2) + w * (b[0] + b[2] / 2)
            cy = (1 - w) * (a[1] + a[2] / 2) + w * (b[1] + b[2] / 2)
            side = (1 - w) * a[2] + w * b[2]
            out[frame] = _clip(cx, cy, side, width, height)
        elif before is not None:
            out[frame] = list(boxes[before])
        elif after is not None:
            out[frame] = list(boxes[after])
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- keyframes: detect, then track

@dataclass
class FrameDetections:
    """What detection saw in one video's frames."""
    frames: list  # the frame numbers read
    keyframes: list  # those detected on
    found: dict  # {frame: [rect, ...]} of the keyframes with a face
    width: int = 0
    height: int = 0


def is_keyframe(position, frame, settings):
    """Whether the frame at this position among those read is detected on: every settings.detect_every-th, from
    the first, where its picture was decoded (video.iter_frames(every=...) decodes only those)."""
    return frame is not None and position % settings.detect_every == 0


class Cancelled(Exception):
    """FaceFinder.cancel was called during a detection."""


def detect_frames(frames, detector, cancelled=None):
    """FrameDetections of (frame number, BGR frame or None) pairs, in order, detecting on the keyframes; raises
    Cancelled once the threading.Event cancelled is set."""
    seen = FrameDetections([], [], {})
    for position, (index, frame) in enumerate(frames):
        if cancelled is not None and cancelled.is_set():
            raise Cancelled
        seen.frames.append(index)
        if is_keyframe(position, frame, detector.settings):
            seen.height, seen.width = frame.shape[:2]
            seen.keyframes.append(index)
            found = detector(frame)
            if found:
                seen.found[index] = found
    return seen


def find_main_face(frames, settings=FOOTAGE, detector=None):
    """The main face of one video: a box [x, y, size] or None for each frame, in the order given.

    frames: the video's frames in order, BGR (any iterable; an entry may be None where the caller did not
    decode a frame that is not a keyframe). dlib runs on every settings.detect_every-th frame (the keyframes,
    from the first; a second pass at settings.fallback_size where the first finds nothing); the main face is
    the heaviest track over the keyframes (track_main_face), boxed as the location files are (square_box) and
    interpolated between keyframes (fill_gaps, up to settings.reach() frames from a detection). None: no box,
    as for a frame further than that from any detection of the main face. detector: a Detector made with the
    same settings, to reuse one across videos (else one is made here). For frames sampled far apart (a few
    evenly spaced frames of a video), detect on each: dataclasses.replace(settings, detect_every=1).
    """
    detector = detector or Detector(settings)
    seen = detect_frames(enumerate(frames), detector)
    _, boxes = main_face_boxes(seen, settings)
    return [boxes.get(f) for f in seen.frames]


def main_face_boxes(seen, settings, stride=1):
    """({frame: [x, y, size]} of the main face's detections, the same with the gaps filled) in FrameDetections
    of frames stride apart."""
    tracks = boxed_tracks(seen.found, seen.width, seen.height, settings.scale)
    main = tracks[0] if tracks else {}
    return main, fill_track(main, seen, settings, stride)


def fill_track(boxes, seen, settings, stride=1):
    """A track's boxes at its detections, plus those of the frames within settings.reach(stride) of one."""
    return fill_gaps(boxes, seen.frames, settings.reach(stride), seen.width, seen.height)


_DETECTOR = None  # a worker process's own detector


def _init_worker(settings):
    global _DETECTOR
    _DETECTOR = Detector(settings)


def _init_finder(settings):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _init_worker(settings)


def _detect_copies(copies):
    return [_DETECTOR.detect_rgb(rgb, f) for rgb, f in copies]


class FaceFinder:
    """detect_frames on `workers` processes (0: in this one), fed by a thread that decodes ahead, for one video
    after another. Make it before any other thread starts: the processes are forked."""

    def __init__(self, settings, workers=0):
        self.settings, self.workers = settings, workers
        self.pool = self.detector = None
        if workers > 0:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self.pool = context.Pool(workers, _init_finder, (settings,))
        else:
            self.detector = Detector(settings)
        self.cancelled = threading.Event()

    def cancel(self):
        """Make a detection under way stop at its next frames (it raises Cancelled)."""
        self.cancelled.set()

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def detect(self, frames):
        """FrameDetections of an iterable of (frame number, BGR frame or None), decoded ahead in a thread. With
        processes, that thread also makes the keyframes' first-pass copies, and a keyframe where they find
        nothing is sent again as a fallback copy."""
        if self.pool is None:
            decoded = prefetch(frames)
            try:
                return detect_frames(decoded, self.detector, self.cancelled)
            finally:
                decoded.close()
        settings = self.settings

        def copies():
            for position, (index, frame) in enumerate(frames):
                if is_keyframe(position, frame, settings):
                    yield index, frame, detection_copy(frame, settings.detect_size)
                else:
                    yield index, None, None

        decoded = prefetch(copies())
        seen = FrameDetections([], [], {})
        pending, chunk = collections.deque(), []
        try:
            for index, frame, copy in decoded:
                seen.frames.append(index)
                if frame is None:
                    continue
                seen.height, seen.width = frame.shape[:2]
                seen.keyframes.append(index)
                chunk.append((index, frame, copy))
                if len(chunk) == CHUNK:
                    self._submit(pending, chunk)
                    chunk = []
                    while len(pending) > 2 * self.workers:  # memory stays bounded: wait for the oldest
                        self._collect(pending, seen)
            if chunk:
                self._submit(pending, chunk)
            while pending:
                self._collect(pending, seen)
            return seen
        finally:
            decoded.close()

    def _submit(self, pending, jobs):
        """Send [(frame number, frame for a fallback pass or None, copy)] to the processes."""
        pending.append((jobs, self.pool.apply_async(_detect_copies, ([copy for _, _, copy in jobs],))))

    def _collect(self, pending, seen):
        """Wait for the oldest job; keep its detections and send its faceless frames' fallback copies."""
        jobs, result = pending.popleft()
        found = result.get()
        if self.cancelled.is_set():
            raise Cancelled
        again = []
        for (index, frame, _), rects in zip(jobs, found):
            if rects:
                seen.found[index] = rects
            elif frame is not None and needs_fallback(frame.shape, self.settings):
                again.append((index, None, detection_copy(frame, self.settings.fallback_size, enlarge=True)))
        if again:
            self._submit(pending, again)


# ----------------------------------------------------------------------------- FF++: detect_faces.py

@dataclass
class VideoBoxes:
    """The boxes of one video and how they were found."""
    boxes: dict = field(default_factory=dict)  # {frame: [x, y, size]}
    frames: list = field(default_factory=list)  # the frame indices looked at
    detected: int = 0  # frames whose box is a detection of the main face
    filled: int = 0  # frames whose box came from neighbours (fill_gaps)
    target: Path = None  # with --fake-boxes target: the original video whose boxes these are


def detect_video(path, detector, max_frames=None, stride=1, frames=None):
    """VideoBoxes of the main face in frames 0, stride, ... below max_frames of one video, with the detector's
    settings (keyframes, fallback, boxes); frames: those (index, frame) pairs if already decoded."""
    settings = detector.settings
    if frames is None:
        frames = iter_frames(path, max_frames, stride, every=settings.detect_every)
    seen = detect_frames(frames, detector)
    main, boxes = main_face_boxes(seen, settings, stride)
    return VideoBoxes(boxes, seen.frames, detected=len(main), filled=len(boxes) - len(main))


def _ranges(missing, stride):
    runs = []
    for f in missing:
        if runs and f - runs[-1][1] == stride:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:5])
    return text + (", ..." if len(runs) > 5 else "")


def _detect_job(job):
    method, video, path, settings, count_only = job
    try:
        if count_only:
            return method, video, VideoBoxes(frames=[i for i, _ in iter_frames(path, settings["max_frames"],
                                                                               settings["stride"])]), None
        return method, video, detect_video(path, _DETECTOR, **settings), None
    except VideoError as e:
        return method, video, None, str(e)


def choose_videos(ffpp_root, methods, compression, splits_dir, split, shard, tally):
    """{method: the videos to detect on}: those on disk, of the split if one is given, of this shard. A method
    whose folder is missing is left out, a video of the split missing from disk skipped; both with a skip line.
    No folder at this compression for any method is an error that names the compressions that are there."""
    pairs = split_ids(splits_dir, split) if split else None
    chosen = {}
    for method in methods:
        folder = ffpp.videos_dir(ffpp_root, method, compression)
        if not folder.is_dir():
            others = [q for q in ffpp.qualities_on_disk(ffpp_root, method) if q != compression]
            hint = f" ({others[0]} videos are there: --compression {others[0]} reads them)" if others else ""
            tally.skip(f"{folder}: folder not found: {method} {compression} videos skipped{hint}")
            continue
        on_disk = set()
        for p in sorted(folder.glob("*.mp4")):
            if ffpp.is_plain_name(p.stem):
                on_disk.add(p.stem)
            else:
                tally.skip(f"{p}: the name {p.stem!r} is not a plain name (letters, digits, _ and - only), so it "
                           "cannot name a crop folder: video skipped (rename it)", videos=1)
        wanted = ffpp.split_videos(pairs, method) if pairs is not None else None
        chosen[method] = select_videos(
            in_shard(on_disk if wanted is None else wanted, shard), on_disk, tally,
            lambda v, m=method: f"{ffpp.video_path(ffpp_root, m, compression, v)}: video of the {split} split "
                                "not found: skipped")
    if methods and not chosen:
        others = sorted({q for m in methods for q in ffpp.qualities_on_disk(ffpp_root, m)} - {compression})
        looked = ffpp.videos_dir(ffpp_root, methods[0], compression)
        hint = (f"the {'/'.join(others)} videos are there: pass --compression {others[0]} to detect on them (the "
                "crops of every quality are cut with the same boxes)" if others else
                "--ffpp-root must be the folder that holds original_sequences/ and manipulated_sequences/, as FF++'s "
                "download script writes it")
        raise FileNotFoundError(f"{ffpp_root}: no {compression} videos of {', '.join(methods)} (looked in "
                                f"{looked}/, ...); {hint}")
    return chosen


def plan_jobs(ffpp_root, chosen, compression, settings, copy_targets):
    """The detection jobs (method, video, path, settings, count_only) of the chosen videos. With copy_targets
    (--fake-boxes target) a fake's frames are only counted, and the target originals on disk that the chosen
    fakes copy from are detected too, chosen or not (last)."""
    jobs = [(m, v, ffpp.video_path(ffpp_root, m, compression, v), settings, copy_targets and m != ffpp.REAL)
            for m in chosen for v in chosen[m]]
    if copy_targets:
        targets = {ffpp.target_of(v) for m in chosen if m != ffpp.REAL for v in chosen[m]}
        paths = {v: ffpp.video_path(ffpp_root, ffpp.REAL, compression, v)
                 for v in sorted(targets - set(chosen.get(ffpp.REAL, [])))}
        jobs += [(ffpp.REAL, v, path, settings, False) for v, path in paths.items() if path.is_file()]
    return jobs


class DetectionLog:
    """The detections finished so far, one JSON line per video in --out, appended as each video finishes: a
    killed run loses only the videos in flight, and a rerun takes the others from here. A line counts only for
    the same video file (size and time), settings and detector; a line cut short by a kill is ignored."""

    NAME = "detect_faces.progress"

    def __init__(self, out_dir, shard, settings, detection):
        k_of_n = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
        self.path = Path(out_dir) / f"{self.NAME}{k_of_n}.jsonl"
        self.settings = [settings, asdict(detection)]
        self._file = None

    def key(self, job):
        method, video, path, _, count_only = job
        stamp = video_stamp(path) if Path(path).is_file() else None
        text = json.dumps([method, video, str(path), count_only, stamp, self.settings], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()

    def _read(self):
        done = {}
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return done
        for line in lines:
            try:
                entry = json.loads(line)
                boxes, bad = parse_boxes(entry["boxes"])
                if not bad:
                    done[entry["key"]] = (line, VideoBoxes(boxes, [int(f) for f in entry["frames"]],
                                                           int(entry["detected"]), int(entry["filled"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return done

    def resume(self, jobs):
        """(the jobs still to run, {(method, video): VideoBoxes} of those done before). The log keeps only the
        lines of these jobs, and is open for appending from here on."""
        done = self._read()
        keys = [self.key(job) for job in jobs]
        kept = {k: done[k] for k in keys if k in done}
        write_bytes(self.path, "".join(line + "\n" for line, _ in kept.values()).encode())
        try:
            self._file = open(self.path, "a")
        except OSError as e:
            raise write_error(self.path, e) from None
        self._keys = dict(zip(((j[0], j[1]) for j in jobs), keys))
        found = {(j[0], j[1]): kept[k][1] for j, k in zip(jobs, keys) if k in kept}
        return [j for j, k in zip(jobs, keys) if k not in kept], found

    def add(self, method, video, found):
        entry = {"key": self._keys[method, video], "method": method, "video": video,
                 "boxes": {str(f): b for f, b in found.boxes.items()}, "frames": found.frames,
                 "detected": found.detected, "filled": found.filled}
        try:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:  # a full disk: say which file, and that the disk is full
            raise write_error(self.path, e) from None

    def close(self):
        if self._file:
            self._file.close()


def run_detection(jobs, methods, workers, detection, tally, log=None):
    """{method: {video: VideoBoxes}} for every method (even one without a video: its file is still written) and
    every job's; a video that cannot be read gets a skip line instead. With a DetectionLog, the videos it holds
    are taken from it and each video detected here is added to it as soon as it finishes."""
    results = {m: {} for m in [*methods, *(job[0] for job in jobs)]}
    if log is not None:
        jobs, earlier = log.resume(jobs)
        for (method, video), found in earlier.items():
            results[method][video] = found
        if earlier:
            print(f"resuming: {len(earlier)} videos taken from {log.path}, {len(jobs)} to detect", file=sys.stderr)
    for method, video, found, error in pool_map(_detect_job, jobs, workers, "detecting", _init_worker, (detection,)):
        if error:
            tally.skip(f"{error}: video skipped", videos=1)
        else:
            results[method][video] = found
            if log is not None:
                log.add(method, video, found)
    return results


def copy_target_boxes(results, ffpp_root, compression):
    """--fake-boxes target, in place: each fake takes its target original's boxes in the frames it has. Returns
    the (method, video) of the fakes whose original is missing, unreadable or has no face."""
    originals = results.get(ffpp.REAL, {})
    orphans = set()
    for method, found in results.items():
        if method == ffpp.REAL:
            continue
        for video, counted in found.items():
            target = ffpp.target_of(video)
            original = originals.get(target)
            if original is None or not original.boxes:
                orphans.add((method, video))
                original = VideoBoxes()
            boxes = {f: original.boxes[f] for f in counted.frames if f in original.boxes}
            found[video] = VideoBoxes(boxes, counted.frames,
                                      target=ffpp.video_path(ffpp_root, ffpp.REAL, compression, target))
    return orphans


def report_videos(results, ffpp_root, compression, stride, orphans, tally):
    """Skip lines for the videos and frames left without a box, counts for the rest. Returns how many boxes
    were (detected, filled)."""
    detected = filled = 0
    for method, found_by_video in results.items():
        for video, found in sorted(found_by_video.items()):
            path = ffpp.video_path(ffpp_root, method, compression, video)
            if (method, video) in orphans:
                tally.skip(f"{path}: its target original {found.target} is missing, unreadable or has no face: "
                           "video skipped (or use --fake-boxes own)", videos=1, frames=len(found.frames))
                continue
            why = f"no box in its target {found.target}" if found.target else "no face found"
            if not found.boxes:
                tally.skip(f"{path}: {why} in its {len(found.frames)} frames: video skipped",
                           videos=1, frames=len(found.frames))
                continue
            missing = [f for f in found.frames if f not in found.boxes]
            if missing:
                tally.skip(f"{path}: {why} in {len(missing)} of {len(found.frames)} frames "
                           f"({_ranges(missing, stride)}): those frames left out", frames=len(missing))
            tally.videos_done += 1
            tally.frames_done += len(found.boxes)
            detected += found.detected
            filled += found.filled
    return detected, filled


def write_results(results, out_dir, shard):
    """One face-location file per method, of the videos with a box."""
    for method, found in results.items():
        locs = {v: r.boxes for v, r in sorted(found.items()) if r.boxes}
        path = write_locs(out_dir, method, locs, shard)
        print(f"wrote {path} ({len(locs)} videos)", file=sys.stderr)


def detect_all(ffpp_root, out_dir, methods=(ffpp.REAL,) + ffpp.METHODS, compression="c23", max_frames=FFPP_FRAMES,
               stride=1, detection=FFPP, fake_boxes="own", splits_dir=None, split=None, shard=None, workers=0):
    """Detect the main face in every selected video with DetectionSettings `detection` and write
    out_dir/dlib_<method>.json (with a shard: dlib_<method>.shard-K-of-N.json). Returns the run's Tally; its
    frames_done counts frames with a box.
    out_dir is checked for writing first; each video's boxes go to a DetectionLog there as it finishes, so a
    killed run resumes where it stopped."""
    if fake_boxes not in ("own", "target"):
        raise ValueError(f"--fake-boxes {fake_boxes!r}: choose own or target")
    if not Path(ffpp_root).is_dir():
        raise FileNotFoundError(f"{ffpp_root}: FF++ root (--ffpp-root) not found")
    check_writable(out_dir)
    tally = Tally()
    chosen = choose_videos(ffpp_root, methods, compression, splits_dir or out_dir, split, shard, tally)
    settings = dict(max_frames=max_frames or None, stride=stride)
    jobs = plan_jobs(ffpp_root, chosen, compression, settings, copy_targets=fake_boxes == "target")
    log = DetectionLog(out_dir, shard, settings, detection)
    try:
        results = run_detection(jobs, list(chosen), workers, detection, tally, log)
    finally:
        log.close()
    orphans = copy_target_boxes(results, ffpp_root, compression) if fake_boxes == "target" else set()
    detected, filled = report_videos(results, ffpp_root, compression, stride, orphans, tally)
    write_results(results, out_dir, shard)
    copies = " (fakes copy their target's with --fake-boxes target)" if fake_boxes == "target" else ""
    print(f"boxes: {detected} detected, {filled} filled from a detection at most {detection.reach(stride)} frames "
          f"away{copies}")
    return tally
