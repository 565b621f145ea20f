"""Reading videos with OpenCV and writing them with ffmpeg's libx264, as FF++ encoded its c23/c40 sets.

Reading needs only OpenCV, so training and testing never import ffmpeg; writing imports imageio-ffmpeg
lazily, for the demo data and the tests that make c40 from c23.
"""
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np

# FFmpeg's own decoder messages ("[h264 @ 0x...] error while decoding MB ...") name no file and would flood the
# terminal on a damaged video; the scripts print one line naming the video instead. Read when the first video
# is opened; set OPENCV_FFMPEG_LOGLEVEL=16 to see them again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


def iter_frames(path, max_frames=None, stride=1):
    """Yield (frame_index, BGR uint8 frame) for frames 0, stride, 2*stride, ... below max_frames."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open this video (corrupt or not a video)")
        index = 0
        while max_frames is None or index < max_frames:
            if index % stride == 0:
                ok, frame = cap.read()
            else:
                ok = cap.grab()
                frame = None
            if not ok:
                break
            if frame is not None:
                yield index, frame
            index += 1
        if index == 0:
            raise VideoError(f"{path}: no frame could be decoded (corrupt or empty video)")
    finally:
        cap.release()


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


def _run_ffmpeg(args, dst, stdin=None):
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp{dst.suffix}")
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", *args, str(tmp)]
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True)
        if proc.returncode != 0:
            raise VideoError(f"{dst}: ffmpeg failed: {proc.stderr.decode(errors='replace').strip()}")
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


def x264_settings(path):
    """The encoder settings string x264 writes into the stream (holds e.g. 'crf=40.0')."""
    data = Path(path).read_bytes()
    start = data.find(b"x264 - core")
    if start < 0:
        return None
    end = data.find(b"\x00", start)
    return data[start:end].decode(errors="replace")
