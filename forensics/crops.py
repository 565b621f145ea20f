"""Cutting face crops from face locations, and the bookkeeping both preprocessing scripts share.

OpenCV only (no dlib, no ffmpeg), so crops can be cut on a machine that cannot run the detector.
The c23, c40 and mask videos of one fake are decoded side by side and every frame of them is cut with
the same box, so the three crops of a frame are pixel-aligned.
"""
import hashlib
import json
import multiprocessing
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from . import ffpp
from .fileio import read_json, write_image, write_json
from .video import VideoError, iter_frames

DONE = ".done.json"  # per crop folder, written last: the folder holds every crop its video can give


# ----------------------------------------------------------------------------- reporting

@dataclass
class Tally:
    """Counts for the closing summary, and the skip lines (one per file and problem).

    Only the main process's tally prints (echo); a worker's lines are printed when it is added there.
    """
    videos_done: int = 0
    videos_skipped: int = 0
    videos_already: int = 0
    frames_done: int = 0
    frames_skipped: int = 0
    skips: list = field(default_factory=list)
    echo: bool = True

    COUNTS = ("videos_done", "videos_skipped", "videos_already", "frames_done", "frames_skipped")

    def skip(self, message, videos=0, frames=0):
        self.skips.append(message)
        self.videos_skipped += videos
        self.frames_skipped += frames
        if self.echo:
            tqdm.write(f"skip: {message}", file=sys.stderr)

    def add(self, other):
        for message in other.skips:
            self.skip(message)
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def finish(self, strict=False):
        """Print the summary; the exit status: 1 under --strict when anything was skipped."""
        print(self.summary())
        return 1 if strict and self.skips else 0

    def summary(self):
        already = f" ({self.videos_already} already complete)" if self.videos_already else ""
        return (f"videos: {self.videos_done} done{already}, {self.videos_skipped} skipped; "
                f"frames: {self.frames_done} done, {self.frames_skipped} skipped")


def pool_map(function, jobs, workers, desc, initializer=None, initargs=()):
    """Results of function over jobs, in any order, on `workers` processes (0: here) with a progress bar."""
    bar = dict(total=len(jobs), desc=desc, unit="video", file=sys.stderr, dynamic_ncols=True)
    if workers <= 0 or len(jobs) <= 1:
        if initializer:
            initializer(*initargs)
        yield from tqdm(map(function, jobs), **bar)
        return
    with multiprocessing.Pool(min(workers, len(jobs)), initializer, initargs) as pool:
        yield from tqdm(pool.imap_unordered(function, jobs), **bar)


# ----------------------------------------------------------------------------- which videos

def parse_shard(text):
    """'K/N' -> (K, N) with 0 <= K < N, for a job array that numbers its tasks from 0."""
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/8 for the first of 8 machines") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {text}: K must be in 0..N-1 (got K={k}, N={n})")
    return k, n


def in_shard(videos, shard):
    """The videos of one shard. Shards split by source id (NNN), so an original and every fake built on
    it land on the same machine, which --fake-boxes target needs."""
    if shard is None:
        return list(videos)
    k, n = shard
    ids = sorted({ffpp.target_of(v) for v in videos})
    mine = set(ids[k::n])
    return [v for v in videos if ffpp.target_of(v) in mine]


def split_ids(splits_dir, split):
    """The (id1, id2) pairs of one split, or of train+val+test for split 'all'."""
    names = ffpp.SPLITS if split == "all" else (split,)
    return [pair for name in names for pair in ffpp.read_split(splits_dir, name)]


def select_videos(wanted, available, tally, describe):
    """available restricted to wanted (a split's video names; None: all of available). A wanted video
    that is not available gets a skip line saying describe(video)."""
    if wanted is None:
        return sorted(available)
    chosen = []
    for video in wanted:
        if video in available:
            chosen.append(video)
        else:
            tally.skip(describe(video), videos=1)
    return sorted(set(chosen))


# ----------------------------------------------------------------------------- face locations

def locs_path(locs_dir, method):
    return Path(locs_dir) / f"dlib_{method}.json"


def shard_locs_path(locs_dir, method, shard):
    k, n = shard
    return Path(locs_dir) / f"dlib_{method}.shard-{k}-of-{n}.json"


def load_locs(locs_dir, method, tally):
    """{video: {frame: [x, y, size]}} for one method, merged from dlib_<method>.json and any shard files
    (dlib_<method>.shard-K-of-N.json) that detect_faces.py --shard wrote. None when there is none."""
    paths = [p for p in [locs_path(locs_dir, method)] if p.exists()]
    parts = sorted(Path(locs_dir).glob(f"dlib_{method}.shard-*-of-*.json"))
    paths += parts
    if not paths:
        return None
    counts = {}
    for p in parts:
        k, _, n = p.name.split(".")[-2][len("shard-"):].split("-")
        counts.setdefault(int(n), set()).add(int(k))
    for n, ks in counts.items():
        if len(ks) < n:
            missing = ", ".join(str(k) for k in range(n) if k not in ks)
            tally.skip(f"{Path(locs_dir) / f'dlib_{method}.shard-K-of-{n}.json'}: "
                       f"shards {missing} not found: their {method} videos skipped (is that job still running?)")
    locs = {}
    for p in paths:
        data = read_json(p, "face-location file")
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected {{video: {{frame: [x, y, size]}}}}; regenerate it with detect_faces.py")
        for video, boxes in data.items():
            try:
                locs.setdefault(video, {}).update({int(f): [int(v) for v in b] for f, b in boxes.items()})
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"{p}: video {video!r}: expected {{frame: [x, y, size]}}; "
                                 "regenerate it with detect_faces.py") from None
    return locs


# ----------------------------------------------------------------------------- cutting

def cut(frame, box, size=299):
    """The square crop box = [x, y, side] of frame, resized to size x size (size 0: native side)."""
    x, y, s = (int(v) for v in box)
    h, w = frame.shape[:2]
    if not _fits((x, y, s), w, h):
        raise ValueError(f"box {[x, y, s]} does not fit in a {w}x{h} frame")
    crop = frame[y:y + s, x:x + s]
    if size and size != s:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop


def to_mask(frame):
    """Mask videos are stored as colour video; their crops are single-channel, kept grey (not binarised)."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def crop_frames(frames, boxes, size=299, mask=False):
    """(index, crop) for each (index, frame) in frames that has a box; frames may be any iterable of pairs
    or a dict, e.g. already decoded frames."""
    items = frames.items() if isinstance(frames, dict) else frames
    for index, frame in items:
        if index in boxes:
            yield index, cut(to_mask(frame) if mask else frame, boxes[index], size)


@dataclass
class Source:
    """One video of a group and the folder its crops go to."""
    quality: str  # c23, c40 or masks
    path: Path
    out_dir: Path

    @property
    def mask(self):
        return self.quality == ffpp.MASKS


def _stamp(boxes, size):
    digest = hashlib.sha1(json.dumps(sorted(boxes.items())).encode()).hexdigest()
    return {"image_size": size, "boxes": digest}


def _complete(source, stamp):
    """Whether source's folder already holds its crops for these boxes and this size."""
    marker = source.out_dir / DONE
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if {k: done.get(k) for k in stamp} != stamp:
        return None
    if not all((source.out_dir / f"{i}.png").exists() for i in done.get("frames", [])):
        return None
    return done


def _fits(box, width, height):
    x, y, side = box
    return side > 0 and x >= 0 and y >= 0 and x + side <= width and y + side <= height


def _size_problem(frame, boxes, size):
    """Why frame's video cannot be cut with boxes beside a video of frames of size (h, w), or None."""
    h, w = frame.shape[:2]
    if size and (h, w) != tuple(size):
        return f"its frames are {w}x{h}, those of the other videos {size[1]}x{size[0]}: crops would not align"
    bad = sorted(f for f, b in boxes.items() if not _fits(b, w, h))
    if bad:
        return (f"face box {boxes[bad[0]]} of frame {bad[0]} does not fit in its {w}x{h} frames "
                "(face locations made from another video?)")
    return None


def _what(source):
    return "mask video" if source.mask else f"{source.quality} video"


def crop_group(sources, boxes, size=299, name=""):
    """Cut the crops of one video at every quality (c23, c40 and, for a fake, its mask) with the same boxes.

    A frame is cut only where every source that can be read has it. Each source is decoded once, all of
    them side by side. Returns a Tally; problems become its skip lines, never exceptions.
    """
    tally = Tally(echo=False)
    boxes = {int(f): [int(v) for v in b] for f, b in boxes.items()}
    live = []
    for s in sources:
        if not boxes:
            tally.skip(f"{s.path}: no face locations: {s.quality} crops of {name} skipped", videos=1)
        elif s.path.is_file():
            live.append(s)
        else:
            tally.skip(f"{s.path}: video not found: {s.quality} crops of {name} skipped",
                       videos=1, frames=len(boxes))
    stamp = _stamp(boxes, size)
    done = [_complete(s, stamp) for s in live]
    if live and all(done):
        tally.videos_done = tally.videos_already = len(live)
        tally.frames_done = sum(len(d["frames"]) for d in done)
        return tally

    needed = max(boxes, default=-1) + 1
    readers = {id(s): iter_frames(s.path, max_frames=needed) for s in live}
    written = {id(s): [] for s in live}
    ended = {}
    index = 0
    first_size = None
    while live and index < needed and not ended:
        frames = {}
        for s in list(live):
            try:
                frames[id(s)] = next(readers[id(s)])[1]
            except StopIteration:
                ended[id(s)] = index
            except VideoError as e:
                tally.skip(f"{e}: {s.quality} crops of {name} skipped", videos=1, frames=len(boxes))
                live.remove(s)
                continue
            if index == 0 and id(s) in frames:
                problem = _size_problem(frames[id(s)], boxes, first_size)
                first_size = first_size or frames[id(s)].shape[:2]
                if problem:
                    tally.skip(f"{s.path}: {problem}: {s.quality} crops of {name} skipped",
                               videos=1, frames=len(boxes))
                    live.remove(s)
        if ended or index not in boxes:
            index += 1
            continue
        for s in live:
            frame = frames[id(s)]
            write_image(s.out_dir / f"{index}.png", cut(to_mask(frame) if s.mask else frame, boxes[index], size))
            written[id(s)].append(index)
        index += 1

    # Where one video ended early, count the others' frames to say which frames were lost.
    for s in live:
        if id(s) not in ended:
            ended[id(s)] = index + sum(1 for _ in readers[id(s)])
    if live:
        longest = max(live, key=lambda s: ended[id(s)])
        most = ended[id(longest)]
        for s in live:
            n = ended[id(s)]
            if n < most:
                at_least = "at least " if most == needed else ""
                tally.skip(f"{s.path}: {_what(s)} has {n} frames, {_what(longest)} {at_least}{most}: "
                           f"frames {n}-{most - 1} skipped")
        if most < needed:
            tally.skip(f"{longest.path}: {_what(longest)} has {most} frames, its face locations go on to frame "
                       f"{needed - 1}: those frames skipped")

    for s in live:
        keep = {f"{i}.png" for i in written[id(s)]}
        for stale in [*s.out_dir.glob("*.png"), *s.out_dir.glob(".*.tmp")]:
            if stale.name not in keep:
                stale.unlink()
        tally.frames_skipped += len(boxes) - len(written[id(s)])
        if written[id(s)]:
            write_json(s.out_dir / DONE, {**stamp, "frames": written[id(s)]})
            tally.videos_done += 1
            tally.frames_done += len(written[id(s)])
        else:
            tally.skip(f"{s.path}: no frame could be cut: {s.quality} crops of {name} skipped", videos=1)
    return tally


def crop_video(path, boxes, out_dir, size=299, mask=False):
    """Cut the crops of one video into out_dir/<frame>.png (see crop_group for several aligned videos)."""
    quality = ffpp.MASKS if mask else "video"
    return crop_group([Source(quality, Path(path), Path(out_dir))], boxes, size, name=str(path))


def _crop_job(job):
    return crop_group(*job)


def create_faces(ffpp_root, locs_dir, face_root, methods=(ffpp.REAL,) + ffpp.METHODS, qualities=ffpp.COMPRESSIONS,
                 masks=True, image_size=299, max_frames=None, splits_dir=None, split=None, workers=0):
    """Write the face/ tree for the videos in the face-location files; returns the run's Tally."""
    tally = Tally()
    for folder, what in ((ffpp_root, "FF++ root (--ffpp-root)"), (locs_dir, "face-location folder (--locs)")):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: {what} not found")
    wanted_pairs = split_ids(splits_dir, split) if split else None
    jobs = []
    for method in methods:
        locs = load_locs(locs_dir, method, tally)
        if locs is None:
            tally.skip(f"{locs_path(locs_dir, method)}: face-location file not found: {method} skipped "
                       "(run detect_faces.py first, or check --locs)")
            continue
        locs = {v: {f: b for f, b in boxes.items() if max_frames is None or f < max_frames}
                for v, boxes in locs.items()}
        wanted = ffpp.split_videos(wanted_pairs, method) if wanted_pairs is not None else None
        videos = select_videos(
            wanted, locs, tally,
            lambda v: f"{locs_path(locs_dir, method)}: no face locations for {method} video {v} of the "
                      f"{split} split (video missing, or no face found in it): skipped")
        kinds = list(qualities) + ([ffpp.MASKS] if masks and method != ffpp.REAL else [])
        present = []
        for q in kinds:
            folder = ffpp.videos_dir(ffpp_root, method, q)
            if folder.is_dir():
                present.append(q)
            else:
                frames = sum(len(locs[v]) for v in videos)
                tally.skip(f"{folder}: folder not found: {q} crops of {len(videos)} {method} videos skipped",
                           videos=len(videos), frames=frames)
        if not present:
            continue
        for video in videos:
            sources = [Source(q, ffpp.video_path(ffpp_root, method, q, video),
                              ffpp.face_dir(face_root, method, q, video)) for q in present]
            jobs.append((sources, locs[video], image_size, f"{method} {video}"))
    for result in pool_map(_crop_job, jobs, workers, "cropping"):
        tally.add(result)
    return tally
