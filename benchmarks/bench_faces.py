"""Face finding on ordinary footage: keyframes and tracking against detection on every frame.

    pip install -e .    # once, so that forensics imports (or PYTHONPATH=.)
    python benchmarks/bench_faces.py                    # the three parts below, on the clips of ../shared/data
    python benchmarks/bench_faces.py --skip-iou --skip-prep --rounds 5

Speed: detect.py's pass 1 (faces.FaceFinder: decode in a thread, dlib in --workers processes, then the main
face's boxes for every frame) on the first --max-frames of a 720p clip, with the settings of before
(faces.FFPP's: dlib on every frame, one pass) and detect.py's defaults (faces.FOOTAGE: every 5th frame, a
fallback pass), in alternating rounds, so that both meet the same load on a shared machine; then
faces.find_main_face (one process, as cross-dataset preparation calls it) with the same two settings.
Prints frames/s per round, the medians and their ratio, and the load average.

Agreement: on every clip under ../shared/data, the main face's boxes with keyframes every k frames (--every)
against those of detection on every frame with otherwise the same settings (faces.FOOTAGE): the mean IoU over
the frames where both give a box, and the frames where only one does; "steady" is the mean IoU of the
every-frame boxes of consecutive frames (how much the reference itself moves and jitters). Keyframe runs are
taken from the every-frame run's detections at positions 0, k, 2k, ... (the detector is deterministic, and
decoding only the keyframes gives the same pictures); the default k is also run for real and must match.

Preparation: cross_dataset.py's preparation (forensics.cross.prepare: 32 evenly spaced frames, the main face,
299 px crops) of each DFDC sample of ../shared/data/dfdc_samples in this process, the sampled frames decoded
once for detection and crops (kept, the default) against each step reading the file (KEPT_FRAMES_BYTES 0, as
for frames too large to keep), in alternating rounds, each into an empty cache. Prints seconds a video.
"""
import argparse
import dataclasses
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from forensics import cross, datasets, faces
from forensics.video import iter_frames, video_info

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLIP = DATA / "ffpp_c23_samples" / "original_sequences" / "youtube" / "c23" / "videos" / "004.mp4"  # 1280x720
MAX_FRAMES = 300
ROUNDS = 3
WORKERS = [2]
EVERY = [2, 3, 5, 8, 10]
SPEED = {"before (every frame, one pass)": faces.FFPP, "now (detect.py's defaults)": faces.FOOTAGE}


def cpu_seconds():
    """CPU time of this process and of its finished children (the FaceFinder's, once closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pass_one(clip, settings, max_frames, workers):
    """(wall seconds, CPU seconds, frames read) of FaceFinder on the clip and the main face's boxes."""
    started, cpu = time.perf_counter(), cpu_seconds()
    with faces.FaceFinder(settings, workers) as finder:
        seen = finder.detect(iter_frames(clip, max_frames, every=settings.detect_every))
    faces.main_face_boxes(seen, settings)
    return time.perf_counter() - started, cpu_seconds() - cpu, len(seen.frames)


def library(clip, settings, max_frames, detector):
    """The same for faces.find_main_face in this process (the frames that are not keyframes not decoded)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    boxes = faces.find_main_face((f for _, f in iter_frames(clip, max_frames, every=settings.detect_every)),
                                 settings, detector)
    return time.perf_counter() - started, cpu_seconds() - cpu, len(boxes)


def speed(args):
    count, fps, width, height = video_info(args.clip)
    print(f"speed: {args.clip} ({width}x{height}, {fps:g} fps), first {args.max_frames} frames, {args.rounds} rounds "
          f"alternating; load average {os.getloadavg()[0]:.1f} at the start")
    runs = [(f"--workers {w}", lambda s, w=w: pass_one(args.clip, s, args.max_frames, w)) for w in args.workers]
    faces.Detector()  # dlib's model loaded once, before any timing
    runs.append(("find_main_face, 1 process",
                 lambda s: library(args.clip, s, args.max_frames, faces.Detector(s))))
    for label, run in runs:
        rates, costs = {name: [] for name in SPEED}, {name: [] for name in SPEED}
        for k in range(args.rounds):
            for name, settings in SPEED.items():
                seconds, cpu, frames = run(settings)
                rates[name].append(frames / seconds)
                costs[name].append(1000 * cpu / frames)
                print(f"  {label}, round {k + 1}, {name}: {frames} frames in {seconds:.2f} s = "
                      f"{frames / seconds:.1f} frames/s, {1000 * cpu / frames:.1f} CPU ms a frame")
        rate = {name: statistics.median(r) for name, r in rates.items()}
        cost = {name: statistics.median(c) for name, c in costs.items()}
        (old, new), (old_cpu, new_cpu) = rate.values(), cost.values()
        print(f"{label}: median " + ", ".join(f"{name} {rate[name]:.1f} frames/s ({cost[name]:.1f} CPU ms a frame)"
                                              for name in SPEED)
              + f"; ratio {new / old:.2f}x in frames/s, {old_cpu / new_cpu:.2f}x in CPU time")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def clips(root):
    return sorted(root.rglob("*.mp4"))


def keyframes_of(seen, every):
    """The FrameDetections a run on every `every`-th frame would have seen, from an every-frame run's."""
    keyframes = seen.frames[::every]
    found = {f: seen.found[f] for f in keyframes if f in seen.found}
    return faces.FrameDetections(seen.frames, keyframes, found, seen.width, seen.height)


def agreement(reference, boxes):
    """(IoU per frame where both have a box, frames with a box only in reference, only in boxes)."""
    both = sorted(set(reference) & set(boxes))
    return ([faces.iou(reference[f], boxes[f]) for f in both], len(set(reference) - set(boxes)),
            len(set(boxes) - set(reference)))


def iou_study(args):
    every_frame = dataclasses.replace(faces.FOOTAGE, detect_every=1)
    detector = faces.Detector(every_frame)
    default = faces.FOOTAGE.detect_every
    paths = clips(args.data)
    print(f"\nagreement: {len(paths)} clips under {args.data}, first {args.max_frames} frames, main face's boxes with "
          f"keyframes every k frames against detection on every frame (faces.FOOTAGE otherwise)")
    table = {k: [] for k in args.every}
    totals = {k: [0, 0, 0] for k in args.every}  # frames compared, only in reference, only with keyframes
    steadies = []
    print(f"{'clip':<40} {'frames':>6} {'boxed':>6} {'steady':>7} "
          + " ".join(f"{'k=' + str(k):>7}" for k in args.every))
    for path in paths:
        relative = path.relative_to(args.data)
        folder = relative.parts[0] if len(relative.parts) > 1 else "."
        seen = faces.detect_frames(iter_frames(path, args.max_frames), detector)
        _, reference = faces.main_face_boxes(seen, every_frame)
        steady = [faces.iou(reference[f], reference[f + 1]) for f in reference if f + 1 in reference]
        steadies += [float(np.mean(steady))] if steady else []
        row = [f"{np.mean(steady):7.3f}" if steady else f"{'-':>7}"]
        for k in args.every:
            settings = dataclasses.replace(faces.FOOTAGE, detect_every=k)
            _, boxes = faces.main_face_boxes(keyframes_of(seen, k), settings)
            if k == default:
                real = faces.detect_video(path, faces.Detector(settings), args.max_frames).boxes
                assert real == boxes, f"{path}: the keyframe run differs from the every-frame run's keyframes"
            ious, missing, extra = agreement(reference, boxes)
            if ious:
                table[k].append((float(np.mean(ious)), folder))
            totals[k][0] += len(ious)
            totals[k][1] += missing
            totals[k][2] += extra
            row.append(f"{np.mean(ious):7.3f}" if ious else f"{'-':>7}")
        print(f"{str(relative):<40.40} {len(seen.frames):6d} {len(reference):6d} " + " ".join(row))
    print(f"steady: the every-frame boxes of consecutive frames, mean IoU over clips {np.mean(steadies):.3f} "
          f"(lowest {min(steadies):.3f})")
    for k in args.every:
        compared, missing, extra = totals[k]
        means = [m for m, _ in table[k]]
        by_folder = {}
        for m, folder in table[k]:
            by_folder.setdefault(folder, []).append(m)
        print(f"k={k}: mean IoU over clips {np.mean(means):.3f} (lowest {min(means):.3f}; "
              + ", ".join(f"{folder} {np.mean(v):.3f}" for folder, v in by_folder.items())
              + f"), over {compared} frames; {missing} frames boxed only with detection on every frame, {extra} "
              "only with keyframes")


def preparation(args):
    paths = sorted((args.data / "dfdc_samples").glob("*.mp4"))
    print(f"\npreparation: {len(paths)} clips of {args.data / 'dfdc_samples'}, {args.rounds} rounds alternating, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    arms = {"each step reads the file": 0, "frames kept (default)": cross.KEPT_FRAMES_BYTES}
    seconds = {name: [] for name in arms}
    for k in range(args.rounds):
        for name, budget in arms.items():
            cross.KEPT_FRAMES_BYTES = budget
            with tempfile.TemporaryDirectory() as cache:
                started = time.perf_counter()
                for path in paths:
                    video = datasets.Video(path.name, path, label=1)
                    result = cross.prepare(cross.Job("dfdc", video, Path(cache), (299,), cross.Detection()))
                    assert not result.reason, f"{path}: {result.reason}"
                seconds[name].append((time.perf_counter() - started) / len(paths))
            print(f"  round {k + 1}, {name}: {seconds[name][-1]:.2f} s a video")
    median = {name: statistics.median(s) for name, s in seconds.items()}
    (old, new) = median.values()
    print("median " + ", ".join(f"{name} {s:.2f} s a video" for name, s in median.items())
          + f"; ratio {old / new:.2f}x; load average {os.getloadavg()[0]:.1f} at the end")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=CLIP, help="the 720p clip of the speed part (default: FF++ 004)")
    p.add_argument("--data", type=Path, default=DATA, help=f"the clips of the agreement part (default: {DATA})")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--workers", type=int, nargs="+", default=WORKERS, help="detection processes of the speed runs")
    p.add_argument("--every", type=int, nargs="+", default=EVERY, help="keyframe intervals compared")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-iou", action="store_true")
    p.add_argument("--skip-prep", action="store_true")
    args = p.parse_args(argv)
    for path in (args.clip, args.data):
        if not path.exists():
            raise SystemExit(f"{path}: not found; pass --clip or --data")
    if not args.skip_speed:
        speed(args)
    if not args.skip_iou:
        iou_study(args)
    if not args.skip_prep:
        preparation(args)


if __name__ == "__main__":
    main()
