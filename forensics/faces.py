"""dlib face detection and the one-face-per-video boxes of the face-location files.

A box is [x, y, size]: the top-left corner and side of a square, in pixels of the full frame. It is the
detection enlarged around its centre by `scale`, made square and moved inside the frame (shrunk only when
it is larger than the frame), as in the location files released with the paper's code.
"""
import bisect
import hashlib
import importlib.util
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from . import ffpp
from .fileio import check_writable, write_bytes, write_error
from .locations import parse_boxes, write_locs
from .manifest import Tally, in_shard, pool_map, select_videos, split_ids, video_stamp
from .video import VideoError, iter_frames

MAX_SHIFT = 0.5  # a detection continues a track if its centre moved less than this many box sides ...
SHIFT_PER_FRAME = 0.05  # ... plus this much per frame since the track was last seen ...
MAX_SHIFT_CAP = 1.0  # ... up to this
MAX_SIZE_RATIO = 1.5  # and its size changed by less than this factor


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


class Detector:
    """dlib's frontal face detector ('hog', or 'cnn': the MMOD CNN) on a copy of the frame whose longest side
    is at most detect_size (0: full size), with boxes mapped back to the full frame."""

    def __init__(self, kind="hog", upsample=0, detect_size=640):
        import dlib

        if kind == "hog":
            hog = dlib.get_frontal_face_detector()
            self._run = lambda rgb: list(zip(*hog.run(rgb, upsample, 0.0)[:2]))
        elif kind == "cnn":
            cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))
            self._run = lambda rgb: [(d.rect, d.confidence) for d in cnn(rgb, upsample)]
        else:
            raise ValueError(f"--detector {kind!r}: choose hog or cnn")
        self.detect_size = detect_size

    def __call__(self, frame):
        """[(left, top, right, bottom, score)] in full-frame pixels, for a BGR frame."""
        return self.detect_rgb(*detection_copy(frame, self.detect_size))

    def detect_rgb(self, rgb, f=1.0):
        """Detections on a copy made by detection_copy (possibly in another thread or process), mapped back
        to the full frame by its factor f."""
        return [(r.left() / f, r.top() / f, (r.right() + 1) / f, (r.bottom() + 1) / f, float(score))
                for r, score in self._run(rgb)]


def detection_copy(frame, detect_size):
    """(the RGB copy of a BGR frame that the detector runs on, its scale factor f): longest side at most
    detect_size (0: full size)."""
    h, w = frame.shape[:2]
    f = detect_size / max(h, w) if detect_size and max(h, w) > detect_size else 1.0
    if f != 1.0:
        frame = cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), f


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


@dataclass
class VideoBoxes:
    """The boxes of one video and how they were found."""
    boxes: dict = field(default_factory=dict)  # {frame: [x, y, size]}
    frames: list = field(default_factory=list)  # the frame indices looked at
    detected: int = 0  # frames whose box is a detection of the main face
    filled: int = 0  # frames whose box came from neighbours (fill_gaps)
    target: Path = None  # with --fake-boxes target: the original video whose boxes these are


def detect_video(path, detector, max_frames=None, stride=1, scale=1.3, max_gap=5):
    """VideoBoxes of the main face in frames 0, stride, ... below max_frames of one video."""
    detections, frames, size = {}, [], None
    for index, frame in iter_frames(path, max_frames, stride):
        frames.append(index)
        size = frame.shape[1], frame.shape[0]
        found = detector(frame)
        if found:
            detections[index] = found
    main = {f: square_box(rect, *size, scale=scale) for f, rect in track_main_face(detections).items()}
    boxes = fill_gaps(main, frames, max_gap, *size)
    return VideoBoxes(boxes, frames, detected=len(main), filled=len(boxes) - len(main))


def _ranges(missing, stride):
    runs = []
    for f in missing:
        if runs and f - runs[-1][1] == stride:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:5])
    return text + (", ..." if len(runs) > 5 else "")


_DETECTOR = None


def _init_worker(kind, upsample, detect_size):
    global _DETECTOR
    _DETECTOR = Detector(kind, upsample, detect_size)


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

    def __init__(self, out_dir, shard, settings, detector_args):
        k_of_n = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
        self.path = Path(out_dir) / f"{self.NAME}{k_of_n}.jsonl"
        self.settings = [settings, list(detector_args)]
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


def run_detection(jobs, methods, workers, detector_args, tally, log=None):
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
    for method, video, found, error in pool_map(_detect_job, jobs, workers, "detecting", _init_worker, detector_args):
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


def detect_all(ffpp_root, out_dir, methods=(ffpp.REAL,) + ffpp.METHODS, compression="c23", max_frames=270,
               stride=1, detector="hog", upsample=0, detect_size=640, scale=1.3, max_gap=5, fake_boxes="own",
               splits_dir=None, split=None, shard=None, workers=0):
    """Detect the main face in every selected video and write out_dir/dlib_<method>.json (with a shard:
    dlib_<method>.shard-K-of-N.json). Returns the run's Tally; its frames_done counts frames with a box.
    out_dir is checked for writing first; each video's boxes go to a DetectionLog there as it finishes, so a
    killed run resumes where it stopped."""
    if fake_boxes not in ("own", "target"):
        raise ValueError(f"--fake-boxes {fake_boxes!r}: choose own or target")
    if not Path(ffpp_root).is_dir():
        raise FileNotFoundError(f"{ffpp_root}: FF++ root (--ffpp-root) not found")
    check_writable(out_dir)
    tally = Tally()
    chosen = choose_videos(ffpp_root, methods, compression, splits_dir or out_dir, split, shard, tally)
    settings = dict(max_frames=max_frames or None, stride=stride, scale=scale, max_gap=max_gap)
    jobs = plan_jobs(ffpp_root, chosen, compression, settings, copy_targets=fake_boxes == "target")
    detector_args = (detector, upsample, detect_size)
    log = DetectionLog(out_dir, shard, settings, detector_args)
    try:
        results = run_detection(jobs, list(chosen), workers, detector_args, tally, log)
    finally:
        log.close()
    orphans = copy_target_boxes(results, ffpp_root, compression) if fake_boxes == "target" else set()
    detected, filled = report_videos(results, ffpp_root, compression, stride, orphans, tally)
    write_results(results, out_dir, shard)
    copies = " (fakes copy their target's with --fake-boxes target)" if fake_boxes == "target" else ""
    print(f"boxes: {detected} detected, {filled} filled from a detection at most {max_gap} frames away{copies}")
    return tally
