"""detect.py's throughput on one 10-second 720p clip, end to end (decode, detect, track, crop, score).

    pip install -e .    # once, so that forensics imports (or PYTHONPATH=.)
    python benchmarks/bench_detect.py                       # this machine, default settings
    python benchmarks/bench_detect.py --device cuda --workers 1 4 15

Makes the clip in a temporary folder (the first --seconds of --source, scaled and padded to 1280x720 and
re-encoded with libx264 at CRF 23) and a randomly initialised detector saved as a 299 px run folder, then
runs detect.py on it once per --workers value and prints frames/s: end to end (the command's wall time,
start-up and model loading included) and inside the pipeline (results.json: from the first frame decoded
to the last frame scored), with the time of each pass. Speed only: the model is untrained.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from forensics.fileio import write_json
from forensics.training import save_part
from forensics.video import ffmpeg_exe, video_info
from models import INPUT_SIZE, AntiCompressionDetector
from models.checkpoints import checkpoint_path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "ffpp_c23_samples" / "original_sequences" / "youtube" / "c23" / "videos" \
    / "004.mp4"
SECONDS = 10
WORKERS = [1, 2]


def make_clip(source, seconds, dst):
    """The first `seconds` of source (looped if shorter) as 1280x720 H.264."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t", str(seconds),
                    "-vf", "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2",
                    "-an", "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def make_run(folder, seed=0):
    """A randomly initialised detector in train.py's run layout (epoch 1, 299 px)."""
    torch.manual_seed(seed)
    model = AntiCompressionDetector()
    for part in ("tail", "hq_head", "lq_head"):
        save_part(checkpoint_path(folder, part, 1), getattr(model, part))
    write_json(Path(folder) / "config.json", {"model": "detector", "image_size": INPUT_SIZE})
    return folder


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=SOURCE, help="a video with one face (default: FF++ sample 004)")
    p.add_argument("--seconds", type=float, default=SECONDS)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, nargs="+", default=WORKERS, help="detection processes, one run each")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    if not args.source.is_file():
        raise SystemExit(f"{args.source}: source video not found; pass --source VIDEO")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_clip(args.source, args.seconds, tmp / "clip720p.mp4")
        frames, fps, width, height = video_info(clip)
        run = make_run(tmp / "run")
        print(f"clip: {frames} frames, {width}x{height}, {fps:g} fps; model: random detector, 299 px, LQ head")
        for workers in args.workers:
            out = tmp / f"out{workers}"
            cmd = [sys.executable, str(REPO / "detect.py"), str(clip), "--checkpoint", str(run), "--epoch", "1",
                   "--out", str(out), "--device", args.device, "--workers", str(workers), "--max-frames", "0",
                   "--batch-size", str(args.batch_size)]
            started = time.perf_counter()
            subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            results = json.loads((out / "results.json").read_text())
            entry = results["inputs"][0]
            n, summary, seconds = entry["frames_scored"], results["summary"], entry["seconds"]
            print(f"--workers {workers} on {results['device']} ({results['precision']}): {n} frames, "
                  f"{n / wall:.2f} frames/s end to end ({wall:.1f} s), {summary['frames_per_s']:.2f} frames/s in "
                  f"the pipeline ({summary['seconds']:.1f} s: pass 1, decode and detect, {seconds['detect']:.1f} s; "
                  f"pass 2, decode, crop and score, {seconds['score']:.1f} s)")


if __name__ == "__main__":
    main()
