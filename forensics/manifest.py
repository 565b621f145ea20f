"""What the preprocessing scripts work on and what they have done: which videos, the run's tally, and the
marker that lets a rerun skip a finished crop folder and redo an interrupted one.
"""
import hashlib
import json
import multiprocessing
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import ffpp, packed, progress
from .fileio import imread, write_json

DONE_MARKER = ".done.json"  # per crop folder, written last: the folder holds every crop its video can give


# ----------------------------------------------------------------------------- the run's tally

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
            progress.write(f"skip: {message}", file=sys.stderr)

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
    bar = dict(total=len(jobs), desc=desc, unit="video", leave=True)
    if workers <= 0 or len(jobs) <= 1:
        if initializer:
            initializer(*initargs)
        yield from progress.bar(map(function, jobs), **bar)
        return
    with multiprocessing.Pool(min(workers, len(jobs)), initializer, initargs) as pool:
        yield from progress.bar(pool.imap_unordered(function, jobs), **bar)


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


# ----------------------------------------------------------------------------- finished crop folders

def video_stamp(path):
    """The source video as a finished crop folder remembers it: a replaced or re-encoded video has another
    size or modification time, so a rerun redoes its crops."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def crop_stamp(boxes, size, video=None, fmt="png"):
    """What a finished crop folder vouches for: crops of these boxes at this size, from this video (path), in
    this format. Other boxes, another --image-size, another video file or another --format make the folder
    stale, so a rerun redoes it. A PNG folder's stamp names no format, as before packed folders existed."""
    digest = hashlib.sha1(json.dumps(sorted(boxes.items())).encode()).hexdigest()
    stamp = {"image_size": size, "boxes": digest}
    if video is not None:
        stamp["video"] = video_stamp(video)
    if fmt != "png":
        stamp["format"] = fmt
    return stamp


def finished_crops(out_dir, stamp, verify=False):
    """The marker of out_dir if the folder holds every crop it lists, each of the byte size it had when it
    was written, cut as stamp says; else None (never finished, interrupted, cut with other boxes, size or
    video, a crop deleted or truncated since, or a marker of an older version that recorded less). verify
    also decodes every crop, for damage that keeps the size. A packed folder (stamp format 'packed') is checked
    as a whole: its two files' sizes, and with verify their SHA-1."""
    out_dir = Path(out_dir)
    try:
        done = json.loads((out_dir / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(done, dict) or {k: done.get(k) for k in stamp} != stamp \
            or done.get("format", "png") != stamp.get("format", "png"):
        return None
    if stamp.get("format") == "packed":
        return _finished_pack(out_dir, done, stamp, verify)
    frames, sizes = done.get("frames"), done.get("bytes")
    if not (isinstance(frames, list) and isinstance(sizes, list) and len(frames) == len(sizes)
            and all(isinstance(v, int) for v in frames + sizes)):
        return None
    for index, size in zip(frames, sizes):
        path = out_dir / f"{index}.png"
        try:
            if path.stat().st_size != size:
                return None
        except OSError:
            return None
        if verify and not _decodes(path, stamp.get("image_size")):
            return None
    return done


def _finished_pack(out_dir, done, stamp, verify):
    """The marker of a packed folder if its pack is the one the marker recorded, with the frames it lists."""
    record, frames = done.get("pack"), done.get("frames")
    if not (isinstance(record, dict) and isinstance(frames, list) and packed.is_packed(out_dir)):
        return None
    if packed.damage(out_dir, None, record, verify, stamp.get("image_size")) is not None:
        return None
    return done if packed.read_frames(out_dir).tolist() == frames else None


def _decodes(path, side):
    import cv2

    image = imread(path, cv2.IMREAD_UNCHANGED)
    return image is not None and (not side or image.shape[:2] == (side, side))


def mark_finished(out_dir, stamp, frames):
    """Written after the last crop, so a folder with a marker was never left half-done. It records each crop's
    byte size (packed: each file's size and SHA-1), so a crop truncated or replaced later is noticed."""
    out_dir = Path(out_dir)
    if stamp.get("format") == "packed":
        written = {"pack": packed.record(out_dir)}
    else:
        written = {"bytes": [(out_dir / f"{i}.png").stat().st_size for i in frames]}
    write_json(out_dir / DONE_MARKER, {**stamp, "frames": list(frames), **written})
