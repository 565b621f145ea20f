"""Cutting face crops from face locations.

OpenCV only (no dlib, no ffmpeg), so crops can be cut on a machine that cannot run the detector.
The c23, c40 and mask videos of one fake are decoded side by side and every frame of them is cut with
the same box, so the three crops of a frame are pixel-aligned. A folder gets one PNG per crop, or with
fmt 'packed' one array of them all (forensics/packed.py), held in memory until the video is cut.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import ffpp, packed
from .fileio import write_image
from .locations import load_locs, locs_path
from .manifest import DONE_MARKER, Tally, crop_stamp, finished_crops, mark_finished, pool_map, select_videos, \
    split_ids
from .video import VideoError, iter_frames


def cut(frame, box, size):
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


def crop_frames(frames, boxes, size, mask=False):
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
    frames: object = None  # its (index, frame) pairs in order when already decoded (by face detection): not read again

    @property
    def mask(self):
        return self.quality == ffpp.MASKS


def _fits(box, width, height):
    x, y, side = box
    return side > 0 and x >= 0 and y >= 0 and x + side <= width and y + side <= height


def _size_problem(frame, size):
    """Why frame's video cannot be cut beside a video of frames of size (h, w), or None."""
    h, w = frame.shape[:2]
    if size and (h, w) != tuple(size):
        return f"its frames are {w}x{h}, those of the other videos {size[1]}x{size[0]}: crops would not align"
    return None


def _misfits(boxes, frame):
    """The frames whose box does not fit in frames like this one, in order."""
    h, w = frame.shape[:2]
    return sorted(f for f, b in boxes.items() if not _fits(b, w, h))


def _what(source):
    return "mask video" if source.mask else f"{source.quality} video"


class _Decoding:
    """One source while its video is decoded: the current frame and its index, the crops written."""

    def __init__(self, source, frame_limit, stamp, fmt="png", capacity=0):
        self.source = source
        self.stamp = stamp  # what its finished folder will vouch for, taken before decoding
        self._frames = (iter(source.frames) if source.frames is not None
                        else iter_frames(source.path, max_frames=frame_limit))
        self.frame = None
        self.index = -1
        self.written = []
        self.fmt = fmt
        self.capacity = capacity  # packed: the most crops the pack can get (the number of boxes)
        self.pack = None  # packed: the crops cut so far, RGB or grey

    def advance(self):
        """Read the next frame; False at the end of the video. The first call raises VideoError for a video that
        cannot be opened or has no decodable frame."""
        try:
            self.index, self.frame = next(self._frames)
        except StopIteration:
            return False
        return True

    def seek(self, index):
        """Read up to frame index; whether the source has it (False past its end)."""
        while self.index < index and self.advance():
            pass
        return self.index == index

    def length(self):
        """Its frame count (up to the frame limit; for frames decoded at a stride, up to the last one), decoding
        the frames left."""
        for self.index, _ in self._frames:
            pass
        return self.index + 1

    def write(self, index, box, size):
        frame = to_mask(self.frame) if self.source.mask else self.frame
        crop = cut(frame, box, size)
        if self.fmt == "png":
            write_image(self.source.out_dir / f"{index}.png", crop)
        else:
            if self.pack is None:
                self.pack = np.empty((self.capacity, *crop.shape), np.uint8)
            self.pack[len(self.written)] = crop if self.source.mask else cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        self.written.append(index)

    def save_pack(self):
        """Packed: write the crops cut (the folder's frames.npy is gone since its redo began)."""
        packed.write_pack(self.source.out_dir, self.written, self.pack[:len(self.written)])

    def own_files(self):
        """The names of the files this run wrote in the folder, the ones its cleanup keeps."""
        if self.fmt == "png":
            return {f"{i}.png" for i in self.written}
        return {ffpp.PACKED_CROPS, ffpp.PACKED_FRAMES}


def _present_sources(sources, boxes, name, tally):
    """The sources that have face locations and a video file; the others get a skip line."""
    present = []
    for s in sources:
        if not boxes:
            tally.skip(f"{s.path}: no face locations: {s.quality} crops of {name} skipped", videos=1)
        elif s.path.is_file():
            present.append(s)
        else:
            tally.skip(f"{s.path}: video not found: {s.quality} crops of {name} skipped",
                       videos=1, frames=len(boxes))
    return present


def _open_sources(sources, stamps, boxes, name, tally, fmt="png"):
    """A _Decoding at frame 0 for each source that opens and has the frame size of the first source's (or the
    crops of a frame would not align); the others get a skip line."""
    decodings, first_size = [], None
    for s, stamp in zip(sources, stamps):
        decoding = _Decoding(s, frame_limit=max(boxes) + 1, stamp=stamp, fmt=fmt, capacity=len(boxes))
        try:
            decoding.advance()
        except VideoError as e:
            tally.skip(f"{e}: {s.quality} crops of {name} skipped", videos=1, frames=len(boxes))
            continue
        problem = _size_problem(decoding.frame, first_size)
        first_size = first_size or decoding.frame.shape[:2]
        if problem:
            tally.skip(f"{s.path}: {problem}: {s.quality} crops of {name} skipped", videos=1, frames=len(boxes))
        else:
            decodings.append(decoding)
    return decodings


def _fitting_boxes(decodings, boxes, name, tally):
    """The boxes that fit in the videos' frames. A box outside the frame costs its frame, with one line for the
    video; when no box fits, the locations were made from another video and every source is skipped."""
    bad = _misfits(boxes, decodings[0].frame)
    if not bad:
        return boxes
    h, w = decodings[0].frame.shape[:2]
    shown = ", ".join(f"{f} {boxes[f]}" for f in bad[:3]) + (", ..." if len(bad) > 3 else "")
    if len(bad) == len(boxes):
        for d in decodings:
            tally.skip(f"{d.source.path}: no face box fits in its {w}x{h} frames (frames {shown}; face locations "
                       f"made from another video?): {d.source.quality} crops of {name} skipped",
                       videos=1, frames=len(boxes))
        return {}
    tally.skip(f"{decodings[0].source.path}: {len(bad)} face boxes do not fit in its {w}x{h} frames (frames "
               f"{shown}): those frames of {name} skipped")
    return {f: b for f, b in boxes.items() if f not in set(bad)}


def _cut_frames(decodings, boxes, size):
    """Cut each frame with a box from every source, up to the end of the shortest: a frame is cut only where all
    of them have it."""
    for index in sorted(boxes):
        if all([d.seek(index) for d in decodings]):
            for d in decodings:
                d.write(index, boxes[index], size)


def _report_short_videos(decodings, boxes, tally):
    """Skip lines for the frames lost because a source ended before another, or before its face locations."""
    frame_limit = max(boxes) + 1
    lengths = [d.length() for d in decodings]
    most = max(lengths)
    longest = decodings[lengths.index(most)].source
    for d, n in zip(decodings, lengths):
        if n < most:
            at_least = "at least " if most == frame_limit else ""
            tally.skip(f"{d.source.path}: {_what(d.source)} has {n} frames, {_what(longest)} {at_least}{most}: "
                       f"frames {n}-{most - 1} skipped")
    if most < frame_limit:
        tally.skip(f"{longest.path}: {_what(longest)} has {most} frames, its face locations go on to frame "
                   f"{frame_limit - 1}: those frames skipped")


_PACK_FILES = "|".join(re.escape(n) for n in (ffpp.PACKED_CROPS, ffpp.PACKED_FRAMES))
_OWN_FILE = re.compile(rf"(\d+\.png|{_PACK_FILES}|\.(\d+\.png|{_PACK_FILES}|{re.escape(DONE_MARKER)})\.\w+\.tmp)")


def _remove_stale(out_dir, keep):
    """Delete what an earlier run of this step left in out_dir (crops of other boxes, temporary files of a
    crash): only files directly in this crop folder, and only names this step writes, never anything else."""
    for path in out_dir.iterdir():
        if _OWN_FILE.fullmatch(path.name) and path.name not in keep and not path.is_dir():
            path.unlink()


def _finish_folders(decodings, boxes, name, tally):
    """Per source: write its pack (packed), delete the crops and temporary files this run did not write (other
    boxes, the other format, a crash), then mark the folder finished and count it."""
    for d in decodings:
        s = d.source
        if d.written and d.fmt == "packed":
            d.save_pack()
        if s.out_dir.is_dir():
            _remove_stale(s.out_dir, d.own_files() if d.written else set())
        tally.frames_skipped += len(boxes) - len(d.written)
        if d.written:
            mark_finished(s.out_dir, d.stamp, d.written)
            tally.videos_done += 1
            tally.frames_done += len(d.written)
        else:
            tally.skip(f"{s.path}: no frame could be cut: {s.quality} crops of {name} skipped", videos=1)


def check_format(fmt, size):
    """A ValueError for a crop format that does not exist or cannot be written at this size."""
    if fmt not in ffpp.CROP_FORMATS:
        raise ValueError(f"--format {fmt!r}: choose one of {', '.join(ffpp.CROP_FORMATS)}")
    if fmt == "packed" and not size:
        raise ValueError("--format packed needs one crop size for all crops: give --image-size (not 0), e.g. 299")


def crop_group(sources, boxes, size, name="", verify=False, fmt="png"):
    """Cut the crops of one video at every quality (c23, c40 and, for a fake, its mask) with the same boxes,
    as PNGs or (fmt 'packed', which needs a size) one pack per folder.

    A frame is cut only where every source that can be read has it. Each source is decoded once, all of
    them side by side. A source whose folder is finished (its marker vouches for these boxes, this size,
    this video file and every crop's byte size; with verify, every crop decodes) is not cut again unless
    another source of the group needs cutting. Returns a Tally; problems become its skip lines, never
    exceptions.
    """
    tally = Tally(echo=False)
    boxes = {int(f): [int(v) for v in b] for f, b in boxes.items()}
    sources = _present_sources(sources, boxes, name, tally)
    check_format(fmt, size)
    stamps = [crop_stamp(boxes, size, s.path, fmt) for s in sources]
    finished = [finished_crops(s.out_dir, stamp, verify) for s, stamp in zip(sources, stamps)]
    if sources and all(finished):
        tally.videos_done = tally.videos_already = len(sources)
        tally.frames_done = sum(len(done["frames"]) for done in finished)
        return tally
    decodings = _open_sources(sources, stamps, boxes, name, tally, fmt)
    fitting = _fitting_boxes(decodings, boxes, name, tally) if decodings else {}
    if fitting:
        for d in decodings:  # being redone: until it is finished again it vouches for nothing, and is no pack
            (d.source.out_dir / DONE_MARKER).unlink(missing_ok=True)
            (d.source.out_dir / ffpp.PACKED_FRAMES).unlink(missing_ok=True)
        _cut_frames(decodings, fitting, size)
        _report_short_videos(decodings, boxes, tally)
        _finish_folders(decodings, boxes, name, tally)
    return tally


def crop_video(path, boxes, out_dir, size, mask=False, fmt="png", frames=None):
    """Cut the crops of one video into out_dir/<frame>.png or its pack (see crop_group for several aligned
    videos); frames: its (index, frame) pairs if they are already decoded, else the file is read."""
    quality = ffpp.MASKS if mask else "video"
    return crop_group([Source(quality, Path(path), Path(out_dir), frames)], boxes, size, name=str(path), fmt=fmt)


def _inside_tree(source, root, name, frames, tally):
    """Whether a crop folder is inside the crop tree once links are followed; one that a link takes out of it
    gets a skip line, since cutting it would write and delete files outside --out."""
    target = source.out_dir.resolve()
    if target.is_relative_to(root):
        return True
    tally.skip(f"{source.out_dir}: a link takes it out of the crop tree (to {target}): {source.quality} crops of "
               f"{name} skipped; crops are written only inside {root} (replace the link by a folder)",
               videos=1, frames=frames)
    return False


def _crop_job(job):
    return crop_group(*job)


def create_faces(ffpp_root, locs_dir, face_root, *, image_size, methods=(ffpp.REAL,) + ffpp.METHODS,
                 qualities=ffpp.COMPRESSIONS, masks=True, max_frames=None, splits_dir=None, split=None, workers=0,
                 verify=False, fmt="png"):
    """Write the face/ tree for the videos in the face-location files, crops image_size pixels square (0: each
    box's own side), as PNGs or packed (fmt); returns the run's Tally. verify decodes every crop of a finished
    folder (packed: checks its SHA-1) and redoes the folders where one fails."""
    check_format(fmt, image_size)
    tally = Tally()
    for folder, what in ((ffpp_root, "FF++ root (--ffpp-root)"), (locs_dir, "face-location folder (--locs)")):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: {what} not found")
    wanted_pairs = split_ids(splits_dir, split) if split else None
    root = Path(face_root).resolve()
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
            sources = [s for s in sources if _inside_tree(s, root, f"{method} {video}", len(locs[video]), tally)]
            jobs.append((sources, locs[video], image_size, f"{method} {video}", verify, fmt))
    for result in pool_map(_crop_job, jobs, workers, "cropping"):
        tally.add(result)
    return tally
