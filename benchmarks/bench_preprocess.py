"""Throughput of FF++ preprocessing (frames/s): dlib detection and crop cutting, one process against all cores.

Runs on the FF++ c23 samples in ../shared (or --ffpp-root); writes only to a temporary folder.
    pip install -e .    # once, so that forensics imports
    python benchmarks/bench_preprocess.py [--max-frames 60] [--workers N]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from forensics import cli, crops, faces, ffpp, locations
from forensics.fileio import write_image
from forensics.video import read_frames
from models import INPUT_SIZE

FFPP_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffpp_c23_samples"
MAX_FRAMES = 60
IMAGE_SIZE = INPUT_SIZE
WORKERS = cli.default_workers()


def videos(root):
    found = [(m, p.stem, p) for m in (ffpp.REAL,) + ffpp.METHODS
             for p in sorted(ffpp.videos_dir(root, m, "c23").glob("*.mp4"))]
    if not found:
        sys.exit(f"{root}: no FF++ c23 videos found; pass --ffpp-root")
    return found


def timed(label, frames, seconds):
    print(f"{label:<58} {frames:5d} frames in {seconds:6.1f} s = {frames / seconds:7.1f} frames/s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, ffpp_root=str(FFPP_ROOT), workers=WORKERS, image_size=IMAGE_SIZE)
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    args = p.parse_args()
    found = videos(args.ffpp_root)
    print(f"{len(found)} videos, first {args.max_frames} frames each, {args.workers} workers, "
          f"crops {args.image_size} px")

    detector = faces.Detector()
    t = time.perf_counter()
    n = sum(len(faces.detect_video(path, detector, args.max_frames).frames) for _, _, path in found)
    timed("detect (HOG, 640 px), 1 process, decode included", n, time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        tally = faces.detect_all(args.ffpp_root, tmp, max_frames=args.max_frames, workers=args.workers)
        timed(f"detect (HOG, 640 px), {args.workers} processes (detect_faces.py)", tally.frames_done,
              time.perf_counter() - t)
        locs = {m: locations.load_locs(tmp, m, tally) for m in (ffpp.REAL,) + ffpp.METHODS}

        t = time.perf_counter()
        n = 0
        decoded = {}
        for method, video, path in found:
            frames = read_frames(path, args.max_frames)
            decoded[video] = frames
            boxes = locs[method][video]
            for index, crop in crops.crop_frames(frames, boxes, args.image_size):
                write_image(Path(tmp) / "loop" / method / video / f"{index}.png", crop)
                n += 1
        timed("crop c23 (decode, cut, PNG), 1 process, a plain loop", n, time.perf_counter() - t)

        t = time.perf_counter()
        n = sum(1 for m, v, _ in found for _ in crops.crop_frames(decoded[v], locs[m][v], args.image_size))
        timed("cut + resize only, on decoded frames (crop_frames)", n, time.perf_counter() - t)

        for workers in (0, args.workers):
            t = time.perf_counter()
            tally = crops.create_faces(args.ffpp_root, tmp, Path(tmp) / f"face{workers}", qualities=("c23",),
                                       masks=False, image_size=args.image_size, workers=workers)
            timed(f"crop c23, {max(workers, 1)} process(es) (create_faces_from_dlib_locs.py)",
                  tally.frames_done, time.perf_counter() - t)


if __name__ == "__main__":
    main()
