"""Reading videos with OpenCV and writing them with ffmpeg's libx264, as FF++ encoded its c23/c40 sets.

Reading needs only OpenCV, so training and testing never import ffmpeg; writing imports imageio-ffmpeg
lazily, for the demo data and the tests that make c40 from c23.
"""
import errno
import os
import queue
import re
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np

from .fileio import write_error

# FFmpeg's own decoder messages ("[h264 @ 0x...] error while decoding MB ...") name no file and would flood the
# terminal on a damaged video; the scripts print one line naming the video instead. Read when the first video
# is opened; set OPENCV_FFMPEG_LOGLEVEL=16 to see them again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


def iter_frames(path, max_frames=None, stride=1, every=1):
    """Yield (frame_index, BGR uint8 frame) for frames 0, stride, 2*stride, ... below max_frames. With every > 1
    only every every-th of them (the first, ...) is converted to a picture, the others come as (index, None):
    decoding a frame without converting it costs a quarter as much (the keyframes of faces.find_main_face)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open this video (corrupt or not a video)")
        index = 0
        while max_frames is None or index < max_frames:
            wanted = index % stride == 0
            ok = cap.grab()
            frame = None
            if ok and wanted and index // stride % every == 0:
                ok, frame = cap.retrieve()
            if not ok:
                break
            if wanted:
                yield index, frame
            index += 1
        if index == 0:
            raise VideoError(f"{path}: no frame could be decoded (corrupt or empty video)")
    finally:
        cap.release()


def prefetch(iterable, depth=8):
    """The items of iterable, produced up to depth ahead by a background thread (decoding in OpenCV and dlib
    in other processes leave the GIL free meanwhile); an exception there is raised here."""
    items, stop, end = queue.Queue(depth), threading.Event(), object()

    def put(entry):
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        iterator = iter(iterable)
        try:
            for item in iterator:
                if not put((item, None)):
                    break
            else:
                put((end, None))
        except BaseException as e:  # handed to the consumer, which raises it
            put((None, e))
        finally:
            if hasattr(iterator, "close"):
                iterator.close()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def read_frames(path, max_frames=None, stride=1):
    """All wanted frames as a dict {frame_index: BGR frame}."""
    return dict(iter_frames(path, max_frames, stride))


def video_info(path):
    """(frame_count, fps, width, height) from the container's header; frame_count may be approximate."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open this video (corrupt or not a video)")
        return (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS),
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def ffmpeg_exe():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # ffmpeg failed because its output could not be written


def _ffmpeg_failure(dst, message):
    """The error of an ffmpeg run that failed: the OSError of fileio's writes (naming dst, and the full disk)
    when writing its output failed, else a VideoError with ffmpeg's message."""
    for code in WRITE_ERRORS:
        if os.strerror(code) in message:
            return write_error(dst, OSError(code, os.strerror(code)))
    return VideoError(f"{dst}: ffmpeg failed: {message}")


def _run_ffmpeg(args, dst, stdin=None):
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp{dst.suffix}")
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", *args, str(tmp)]
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True)
        if proc.returncode != 0:
            raise _ffmpeg_failure(dst, proc.stderr.decode(errors="replace").strip())
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dst


def write_video(frames, dst, fps=25.0, crf=23, gray=False):
    """Encode BGR (or gray) uint8 frames with libx264 at a CRF; crf=0 is lossless.

    yuv420p as FF++'s videos are; a lossless master keeps yuv444p so that it is truly lossless.
    """
    frames = [np.ascontiguousarray(f) for f in frames]
    if not frames:
        raise ValueError(f"{dst}: no frames to write")
    h, w = frames[0].shape[:2]
    pix_in = "gray" if gray else "bgr24"
    pix_out = "yuv444p" if crf == 0 else "yuv420p"
    if crf != 0 and (h % 2 or w % 2):
        raise ValueError(f"{dst}: yuv420p needs even width and height, got {w}x{h}")
    args = ["-f", "rawvideo", "-pix_fmt", pix_in, "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-",
            "-an", "-c:v", "libx264", "-crf", str(crf), "-preset", "medium", "-pix_fmt", pix_out]
    return _run_ffmpeg(args, dst, stdin=b"".join(f.tobytes() for f in frames))


def reencode(src, dst, crf):
    """Re-encode a video with libx264 at a CRF and the source frame rate (how FF++ made c40 from its raw set)."""
    if not Path(src).is_file():
        raise VideoError(f"{src}: video not found")
    return _run_ffmpeg(["-i", str(src), "-an", "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p"], dst)


def transcode(src, dst, options):
    """Re-encode a video's first video stream with the given ffmpeg output options, frame for frame (no frame
    dropped or repeated, so frame i stays frame i); written under a temporary name, then renamed."""
    if not Path(src).is_file():
        raise VideoError(f"{src}: video not found")
    return _run_ffmpeg(["-i", str(src), "-map", "0:v:0", "-an", "-fps_mode", "passthrough", *options], dst)


def _settings_string(path, marker):
    data = Path(path).read_bytes()
    start = data.find(marker)
    if start < 0:
        return None
    end = data.find(b"\x00", start)
    return data[start:end].rstrip(b"\x80").decode(errors="replace")


def x264_settings(path):
    """The encoder settings string x264 writes into the stream (holds e.g. 'crf=40.0')."""
    return _settings_string(path, b"x264 - core")


def x265_settings(path):
    """The encoder settings string x265 writes into the stream (holds e.g. 'bitrate=300')."""
    return _settings_string(path, b"x265 (build")



def stream_problem(path):
    """ffmpeg's complaint about a file's first video stream, read packet by packet without decoding (fast),
    or None. Catches what OpenCV passes over in silence: a truncated file decodes up to the cut and stops as
    if the video had ended."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                           "-f", "null", "-"], capture_output=True)
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
             for line in proc.stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if proc.returncode == 0 and not lines:
        return None
    telling = [line for line in lines if re.search(r"partial file|prematurely|moov atom|end of file", line, re.I)]
    return (telling or lines or [f"ffmpeg exited with status {proc.returncode}"])[0]


class VideoWriter:
    """libx264 video written frame by frame through an ffmpeg pipe, published under dst only by a close()
    after which ffmpeg succeeded: an error or an interruption leaves no half-written file. Odd frame sizes are
    padded by one pixel for yuv420p."""

    def __init__(self, dst, fps=25.0, crf=23, preset="medium"):
        self.dst = Path(dst)
        self.tmp = self.dst.with_name(f".{self.dst.stem}.{os.getpid()}.tmp{self.dst.suffix}")
        self.fps, self.crf, self.preset = fps, crf, preset
        self.proc, self.size, self.frames = None, None, 0

    def _start(self, w, h):
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self.size = (w, h)
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
               "-r", f"{self.fps}", "-i", "-", "-an", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264",
               "-crf", str(self.crf), "-preset", self.preset, "-pix_fmt", "yuv420p", str(self.tmp)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame):
        h, w = frame.shape[:2]
        if self.proc is None:
            self._start(w, h)
        elif (w, h) != self.size:
            raise ValueError(f"{self.dst}: frame of {w}x{h} in a {self.size[0]}x{self.size[1]} video")
        try:
            self.proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except BrokenPipeError:
            self.abort()
            raise VideoError(f"{self.dst}: ffmpeg stopped while writing") from None
        self.frames += 1

    def close(self):
        """Finish the file and move it to dst; returns dst."""
        if self.proc is None:
            raise ValueError(f"{self.dst}: no frames to write")
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg is gone: its status and message say why
        error = self.proc.stderr.read().decode(errors="replace").strip()
        if self.proc.wait() != 0:
            self.abort()
            raise _ffmpeg_failure(self.dst, error)
        os.replace(self.tmp, self.dst)
        self.proc = None
        return self.dst

    def abort(self):
        """Stop ffmpeg and delete the unfinished file."""
        if self.proc is not None:
            self.proc.kill()
            for pipe in (self.proc.stdin, self.proc.stderr):
                try:
                    pipe.close()
                except OSError:  # unflushed frames for a process that is gone
                    pass
            self.proc.wait()
            self.proc = None
        if self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()
