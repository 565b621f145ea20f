"""Building the demo set: which source each original comes from, the originals and fakes made in a pool of
worker processes, their encoding as FF++ encoded, and the split files."""
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensics import ffpp
from forensics.cli import default_workers
from forensics.fileio import write_json
from forensics.video import reencode, write_video

from .animation import FPS
from .landmarks import load_models
from .manipulations import MANIPULATIONS
from .sources import IMAGE_EXTS, identity_clip, photo_clip, probe, source_files, video_clip

QUALITIES = {"c23": 23, "c40": 40}
RAW = "raw"  # FF++'s name for the uncompressed (c0) renders, written only on request
SPLIT_SHARES = {"val": 1 / 8, "test": 1 / 4}  # of the pairs, at least one each; train takes the rest

_CLIPS = {}  # the originals, sent to each fake worker once instead of with every task


@dataclass
class Clip:
    frames: list  # BGR uint8, size x size
    landmarks: np.ndarray  # (frames, 68, 2) float32
    fps: float
    origin: str  # where the clip came from, for the build log


def _rng(seed, *keys):
    return np.random.default_rng([seed, *keys])


def _encode(frames, out, method, name, fps, raw, scratch):
    """Lossless render first, then c23 and c40 from it, as FF++ made its compressed sets."""
    master = ffpp.video_path(out, method, RAW, name) if raw else Path(scratch) / f"{method}_{name}.mp4"
    write_video(frames, master, fps=fps, crf=0)
    for quality, crf in QUALITIES.items():
        reencode(master, ffpp.video_path(out, method, quality, name), crf)
    if not raw:
        master.unlink()


def _make_original(task):
    index, plan, frames, size, seed, out, raw, scratch = task
    rng = _rng(seed, 1, index)
    if plan is None:
        clip, marks = identity_clip(rng, frames, size)
        fps, origin = FPS, "skimage astronaut, identity %d" % index
    else:
        path, start, flip, fps = plan
        if path.suffix.lower() in IMAGE_EXTS:
            clip, marks = photo_clip(path, frames, size, flip, rng)
        else:
            clip, marks = video_clip(path, start, frames, size, flip)
        origin = f"{path.name}" + (f" from frame {start}" if start else "") + (" mirrored" if flip else "")
    name = f"{index:03d}"
    _encode(clip, out, ffpp.REAL, name, fps, raw, scratch)
    return name, Clip(clip, marks, fps, origin)


def _make_fake(task):
    method, target, source, seed, out, raw, scratch = task
    tgt, src = _CLIPS[target], _CLIPS[source]
    rng = _rng(seed, 2, ffpp.METHODS.index(method), int(target), int(source))
    frames, masks = MANIPULATIONS[method](tgt, src, rng)
    name = f"{target}_{source}"
    if not all(m.any() for m in masks):
        raise RuntimeError(f"{method} {name}: empty mask in a frame (face lost?)")
    _encode(frames, out, method, name, tgt.fps, raw, scratch)
    write_video([m.astype(np.uint8) * 255 for m in masks], ffpp.video_path(out, method, ffpp.MASKS, name),
                fps=tgt.fps, crf=0, gray=True)
    return name


def _init_worker(clips):
    cv2.setNumThreads(1)  # the pool already uses every core
    _CLIPS.update(clips)


def _map(fn, tasks, workers, clips=None):
    """fn over tasks in worker processes. Spawned, not forked: a fork of a process whose OpenCV thread
    pool is running (any caller that used cv2 before) can deadlock in the child."""
    if workers <= 1:
        return [fn(t) for t in tasks]
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker,
                                                   initargs=(clips or {},)) as pool:
        return pool.map(fn, tasks, chunksize=1)


def split_sizes(n_pairs, val_pairs=None, test_pairs=None):
    """(val, test) pair counts: as given, else SPLIT_SHARES of the pairs (at least one each); train keeps
    the rest, at least one."""
    n_val, n_test = (max(1, round(n_pairs * SPLIT_SHARES[s])) if n is None else n
                     for s, n in (("val", val_pairs), ("test", test_pairs)))
    if min(n_val, n_test) < 1 or n_val + n_test >= n_pairs:
        raise ValueError(f"{n_val} val and {n_test} test pairs out of {n_pairs}: each split needs at least "
                         "one pair; lower --val-pairs/--test-pairs or raise --videos")
    return n_val, n_test


def split_pairs(pairs, seed, val_pairs=None, test_pairs=None):
    """FF++-style splits: pairs shuffled by seed, split_sizes of them to val and test, the rest to train."""
    order = [pairs[i] for i in _rng(seed, 3).permutation(len(pairs))]
    n_val, n_test = split_sizes(len(pairs), val_pairs, test_pairs)
    chosen = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {s: sorted(chosen[s]) for s in ffpp.SPLITS}


def plan_sources(source, videos, frames, workers, log):
    """Which source file (start frame, mirrored, fps) each original comes from; None = built-in identity."""
    if source is None:
        return [None] * videos
    files = source_files(source)
    probes = _map(probe, files, workers)
    usable = [(p, r) for p, r in zip(files, probes) if not isinstance(r, str)]
    for path, reason in zip(files, probes):
        if isinstance(reason, str):
            log(f"skipping {path}: {reason}")
    if not usable:
        raise ValueError(f"--source {source}: no usable face in any file; "
                         + "; ".join(f"{p.name}: {r}" for p, r in zip(files, probes)))
    plans = []
    for i in range(videos):
        (path, (count, fps)), repeat = usable[i % len(usable)], i // len(usable)
        segments = max(1, count // frames)  # a reused video goes on where its last use ended, then mirrored
        plans.append((path, (repeat % segments) * frames, bool(repeat // segments % 2), fps))
    return plans


def build(out, videos=16, frames=32, size=256, seed=0, source=None, workers=None, raw=False, val_pairs=None,
          test_pairs=None, log=print):
    """Write the demo set under out; returns {'seconds', 'originals', 'fakes', 'pairs'} for the log."""
    if videos < 6 or videos % 2:
        raise ValueError(f"--videos {videos}: need an even number, at least 6 (three pairs: train, val, test)")
    split_sizes(videos // 2, val_pairs, test_pairs)  # fails here, before any work
    if frames < 1:
        raise ValueError(f"--frames {frames}: need at least one frame")
    if size < 64 or size % 2:
        raise ValueError(f"--size {size}: need an even frame side of at least 64 (libx264's yuv420p)")
    workers = default_workers() if workers is None else workers
    start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    load_models()  # fails here, before any work, if the landmark model is missing
    plans = plan_sources(source, videos, frames, workers, log)
    with tempfile.TemporaryDirectory(dir=out, prefix=".render.") as scratch:
        tasks = [(i, plans[i], frames, size, seed, out, raw, scratch) for i in range(videos)]
        clips = dict(_map(_make_original, tasks, workers))
        for name, clip in clips.items():
            log(f"original {name}: {len(clip.frames)} frames at {clip.fps:g} fps from {clip.origin}")
        ids = sorted(clips)
        pairs = [[ids[i], ids[i + 1]] for i in range(0, videos, 2)]
        tasks = [(m, t, s, seed, out, raw, scratch) for a, b in pairs for m in ffpp.METHODS
                 for t, s in ((a, b), (b, a))]
        _CLIPS.update(clips)  # for workers <= 1, which run in this process
        try:
            fakes = _map(_make_fake, tasks, workers, clips)
        finally:
            _CLIPS.clear()
    for name, split in split_pairs(pairs, seed, val_pairs, test_pairs).items():
        write_json(out / "splits" / f"{name}.json", split)
    seconds = time.time() - start
    log(f"wrote {videos} originals and {len(fakes)} fakes ({len(fakes) // len(ffpp.METHODS)} per method), "
        f"c23, c40, masks{', raw' if raw else ''} and splits/ to {out} in {seconds:.1f} s")
    return {"seconds": seconds, "originals": ids, "fakes": fakes, "pairs": pairs}
