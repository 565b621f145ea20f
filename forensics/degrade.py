"""The degradations of the robustness sweep and their cache: H.264 on a CRF ladder, H.265 and VP9 at the
bitrate H.264 reached at a CRF, per-frame JPEG, scaling down and back; and the face crops of each degraded
video, cut with the boxes of the c23 crops.

Codec levels are encoded once per video into CACHE/videos/<source quality>/<level>/ (ffmpeg through
forensics.video: a temporary name, then a rename, so an interrupted encode never survives under the final
name). The crops of every level go to CACHE/faces/<level>/<Method|real>/crops/<video>/<frame>.png, a
face/-shaped tree that scoring.score_frames reads as it reads face/; each finished folder gets manifest's
.done.json marker, so reruns and further checkpoints reuse encodes and crops alike.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import ffpp
from .crops import cut
from .fileio import write_image, write_json
from .manifest import Tally, crop_stamp, finished_crops, mark_finished
from .video import VideoError, iter_frames, stream_problem, video_info

CRF_LADDER = (18, 23, 28, 32, 36, 40, 45)  # H.264; FF++'s c23 and c40 are CRF 23 and 40
JPEG_QUALITIES = (90, 70, 50, 30)
SCALES = (0.5, 0.25)
CODECS = ("h264", "h265", "vp9")
MATCHED = ("h265", "vp9")  # encoded at the bitrate H.264 reached at the level's CRF, video by video
SOURCE_QUALITIES = ("raw", "c0", "c23")  # the best present is the source: FF++'s raw (c0) set, else c23
CROPS = "crops"  # the quality folder of a level's face/ tree
ENCODER_OPTIONS = {
    "h264": ["-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p"],
    "h265": ["-c:v", "libx265", "-preset", "medium", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1", "-pix_fmt", "yuv420p"],
}
SUFFIX = {"h264": ".mp4", "h265": ".mp4", "vp9": ".webm"}
TITLES = {"source": "source", "h264": "H.264", "h265": "H.265", "vp9": "VP9", "jpeg": "JPEG", "scale": "scale"}


@dataclass(frozen=True)
class Level:
    """One point of the sweep. kind: source, h264, h265, vp9, jpeg or scale; value: the CRF (for h265 and
    vp9, the CRF whose H.264 bitrate they are given), the JPEG quality or the scale factor."""
    kind: str
    value: float | None = None

    @property
    def name(self):
        if self.kind == "source":
            return "source"
        if self.kind in CODECS:
            return f"{self.kind}_crf{self.value:g}"
        return f"jpeg_q{self.value:g}" if self.kind == "jpeg" else f"scale_{self.value:g}"

    def describe(self):
        if self.kind == "source":
            return "source, as it is"
        if self.kind == "h264":
            return f"H.264 at CRF {self.value:g}"
        if self.kind in MATCHED:
            return f"{TITLES[self.kind]} at the bitrate of H.264 at CRF {self.value:g}"
        if self.kind == "jpeg":
            return f"JPEG at quality {self.value:g}, frame by frame"
        return f"scaled to {self.value:g} and back"


def ladder(crf=CRF_LADDER, jpeg=(), scale=(), codecs=()):
    """The levels of a sweep: the source, H.264 at each CRF, each codec of codecs at the bitrate of each of
    those, JPEG at each quality and each scale factor."""
    for name, values, low, high in (("--crf", crf, 0, 51), ("--jpeg", jpeg, 1, 100), ("--scale", scale, 0, 1)):
        bad = [v for v in values if not low <= v <= high or (name == "--scale" and v in (0, 1))]
        if bad:
            raise ValueError(f"{name} {bad[0]:g}: use values from {low} to {high}"
                             + (" (a factor strictly between)" if name == "--scale" else ""))
    unknown = sorted(set(codecs) - set(MATCHED))
    if unknown:
        raise ValueError(f"--codecs {unknown[0]}: choose from {', '.join(MATCHED)}")
    if codecs and not crf:
        raise ValueError("--codecs needs --crf levels: each codec is given the bitrate H.264 reached at them")
    levels = [Level("source"), *(Level("h264", c) for c in crf)]
    levels += [Level(k, c) for k in MATCHED if k in codecs for c in crf]
    levels += [Level("jpeg", q) for q in jpeg] + [Level("scale", f) for f in scale]
    return list(dict.fromkeys(levels))


def source_of(ffpp_root, method, video):
    """(quality, path) of the best version of a video present under ffpp_root, or (None, None)."""
    for quality in SOURCE_QUALITIES:
        path = ffpp.video_path(ffpp_root, method, quality, video)
        if path.is_file():
            return quality, path
    return None, None


def encoded_path(cache, source_quality, level, method, video):
    return Path(cache) / "videos" / source_quality / level.name / method / f"{video}{SUFFIX[level.kind]}"


def level_root(cache, level):
    """The face/-shaped tree of one level's crops (quality folder CROPS)."""
    return Path(cache) / "faces" / level.name


def bitrate_kbps(path):
    """Mean bitrate of a video file in kbit/s: its size over its duration (frames / fps). Headers count too:
    nothing for FF++'s videos of hundreds of frames, a noticeable share in a clip of a few dozen."""
    frames, fps, _, _ = video_info(path)
    if frames <= 0 or fps <= 0:
        raise VideoError(f"{path}: no frame count or frame rate in its header")
    return Path(path).stat().st_size * 8 / (frames / fps) / 1000


def encode(src, dst, level, kbps=None, frames=None):
    """Encode src (its first `frames` frames, or all) as the level says: a CRF, or for h265 and vp9 a target
    bitrate in kbit/s."""
    from .video import transcode

    rate = ["-crf", f"{level.value:g}"] if level.kind == "h264" else ["-b:v", f"{kbps:.0f}k"]
    length = ["-frames:v", str(frames)] if frames else []
    return transcode(src, dst, [*ENCODER_OPTIONS[level.kind], *rate, *length])


def _record(path):
    """Where the byte size of a cached encode is recorded when it is written: <name>.json beside it."""
    return path.with_name(path.name + ".json")


def _whole(path):
    """Whether a cached encode is the file as it was written: its size is the one recorded then (as the crop
    step's marker records each crop's), so one truncated or replaced since is encoded again. An encode of an
    earlier version, without a record, is taken if ffmpeg reads it through, and recorded."""
    try:
        return json.loads(_record(path).read_text())["bytes"] == path.stat().st_size
    except FileNotFoundError:
        if stream_problem(path) is None:
            write_json(_record(path), {"bytes": path.stat().st_size})
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return False


def _long_enough(path, source, frames):
    """Whether a cached encode holds the first `frames` frames (all when None) of its source."""
    have = video_info(path)[0]
    return frames is not None and have >= frames or have >= video_info(source)[0]


def encoded(cache, source_quality, source, level, method, video, frames=None):
    """The cached encode of one video's first `frames` frames (None: all) at one codec level, encoded now if
    absent, damaged or shorter (the H.264 encode at the same CRF first, for the bitrate that h265 and vp9 are
    given). Only the frames the sweep cuts are encoded: FF++'s videos run to hundreds of frames, the sweep reads
    140."""
    dst = encoded_path(cache, source_quality, level, method, video)
    if dst.is_file() and _whole(dst) and _long_enough(dst, source, frames):
        return dst
    for stale in dst.parent.glob(f".{dst.stem}.*.tmp{dst.suffix}"):  # left by a killed run
        stale.unlink()
    kbps = None
    if level.kind in MATCHED:
        h264 = encoded(cache, source_quality, source, Level("h264", level.value), method, video, frames)
        kbps = bitrate_kbps(h264)
    _record(dst).unlink(missing_ok=True)
    try:
        encode(source, dst, level, kbps, frames)
    except VideoError as e:
        first = str(e).partition("ffmpeg failed: ")[2].strip().splitlines() or [str(e)]
        reason = re.sub(r"^\[[^]]*\]\s*", "", first[0])  # ffmpeg's '[in#0 @ 0x...]' prefix
        raise VideoError(f"{source}: ffmpeg cannot encode it as {level.describe()} ({reason})") from None
    write_json(_record(dst), {"bytes": dst.stat().st_size})
    return dst


def degrade_frame(level, frame):
    """A frame-level degradation of a BGR frame (the source level leaves it as it is)."""
    if level.kind == "jpeg":
        ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(level.value)])
        return cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if level.kind == "scale":
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, round(w * level.value)), max(1, round(h * level.value))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if level.kind == "source":
        return frame
    raise ValueError(f"{level.name}: a codec level is encoded, not applied frame by frame")


@dataclass
class VideoJob:
    """One video of the sweep: where its best version is, its face boxes, the levels to cut and where."""
    method: str
    video: str
    source_quality: str
    source: Path
    boxes: dict
    levels: tuple
    cache: Path
    size: int  # crop side

    def crop_dir(self, level):
        return ffpp.face_dir(level_root(self.cache, level), self.method, CROPS, self.video)


@dataclass
class VideoResult:
    """What one video gave: the frames cut per level name (all levels alike), the bitrate of each codec
    level's encode, and the skip lines. failed: the video must be left out at every level."""
    method: str
    video: str
    frames: dict
    kbps: dict
    tally: Tally
    failed: bool = False


def _readers(job, todo):
    """Frame iterators of the source and of each codec level's encode, side by side."""
    limit = max(job.boxes) + 1
    readers = {None: iter_frames(job.source, max_frames=limit)}
    for level in todo:
        if level.kind in CODECS:
            path = encoded(job.cache, job.source_quality, job.source, level, job.method, job.video, limit)
            readers[level] = iter_frames(path, max_frames=limit)
    return readers


def _cut_levels(job, todo):
    """Decode the source and the encodes once, side by side; cut every level of each boxed frame up to the
    end of the shortest. The frames cut."""
    readers = _readers(job, todo)
    written = []
    while True:
        current = {}
        for level, reader in readers.items():
            item = next(reader, None)
            if item is None:
                return written
            current[level] = item
        index, frame = current[None]
        for level, (_, image) in current.items():
            if image.shape != frame.shape:
                raise VideoError(f"{job.source}: its {level.name} encode has frames of {image.shape[1]}x"
                                 f"{image.shape[0]}, the source {frame.shape[1]}x{frame.shape[0]}")
        if index in job.boxes:
            for level in todo:
                image = current[level][1] if level in current else degrade_frame(level, frame)
                write_image(job.crop_dir(level) / f"{index}.png", cut(image, job.boxes[index], job.size))
            written.append(index)


def crop_levels(job):
    """Encode (or take from the cache) and cut one video at every level; problems of the video become skip
    lines of the result and leave it out of the sweep. An OSError is the cache's (a full disk: every video
    after it would fail alike) and stops the sweep, naming the file, so no partial sweep passes for a whole."""
    tally = Tally(echo=False)
    stamp = {**crop_stamp(job.boxes, job.size), "source": job.source_quality}
    done = {level: finished_crops(job.crop_dir(level), stamp) for level in job.levels}
    todo = [level for level in job.levels if done[level] is None]
    frames = {level.name: done[level]["frames"] for level in job.levels if done[level] is not None}
    name = f"{job.method} {job.video}"
    try:
        if todo:
            written = _cut_levels(job, todo)
            for level in todo:
                keep = {f"{i}.png" for i in written}
                folder = job.crop_dir(level)
                for stale in [*folder.glob("*.png"), *folder.glob(".*.tmp")]:
                    if stale.name not in keep:
                        stale.unlink()
                if written:
                    mark_finished(folder, stamp, written)
                frames[level.name] = written
        limit = max(job.boxes) + 1  # the encodes of finished levels too: checked, and repaired if damaged
        kbps = {level.name: bitrate_kbps(encoded(job.cache, job.source_quality, job.source, level, job.method,
                                                 job.video, limit))
                for level in job.levels if level.kind in CODECS}
    except (VideoError, ValueError) as e:
        tally.skip(f"{e}: {name} left out of the sweep at every level", videos=1, frames=len(job.boxes))
        return VideoResult(job.method, job.video, {}, {}, tally, failed=True)
    common = sorted(set.intersection(*(set(f) for f in frames.values())))
    if not common:
        tally.skip(f"{job.source}: no frame could be decoded and cut: {name} left out of the sweep",
                   videos=1, frames=len(job.boxes))
        return VideoResult(job.method, job.video, {}, {}, tally, failed=True)
    if len(common) < len(job.boxes):
        lost = sorted(set(job.boxes) - set(common))
        tally.skip(f"{job.source}: {len(lost)} of its {len(job.boxes)} located frames could not be decoded at "
                   f"every level (from frame {lost[0]}): the sweep scores the other {len(common)}",
                   frames=len(lost))
    tally.videos_done, tally.frames_done = 1, len(common)
    return VideoResult(job.method, job.video, {k: common for k in frames}, kbps, tally)


def mean_kbps(results, level):
    values = [r.kbps[level.name] for r in results if level.name in r.kbps]
    return float(np.mean(values)) if values else None
