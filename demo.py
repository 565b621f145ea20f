"""The whole pipeline on built-in demo data, each step run as a user would run it:

    make_demo_data.py -> detect_faces.py -> create_faces_from_dlib_locs.py -> paper_grid.py (train.py for the
    method, and for the Xception baseline at c23 and at c40, on All; then the table, scored and evaluated as
    test.py and eval.py do, on every dataset and level)

Sized for a laptop CPU: small crops, few frames and epochs, no pretrained weights (nothing is downloaded).
Everything lands in OUT; a rerun reuses the demo videos, face locations and crops that are already there.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from forensics import cli

DATA = "demo_data"           # the FF++-shaped demo videos (make_demo_data.py --out)
VIDEOS = 16                  # originals of the demo set (8 pairs)
FRAMES = 16                  # frames of each demo video
OUT = "runs/demo"            # locations, crops, runs, scores, table
IMAGE_SIZE = 64              # crop side; the paper's 299 needs a GPU
EPOCHS = 3                   # the method
BASELINE_EPOCHS = 3          # each Xception baseline
BATCH_SIZE = 16              # small batches: more steps for the same CPU minutes
MAX_FRAMES = 8               # training frames a video (the paper: 270)
LR = 3e-4
WORKERS = cli.default_workers()
DEVICE = "auto"
SEED = 0
EXPECTED_MINUTES = 6         # python demo.py at these defaults on this project's 2-core CPU machine (docs/demo.md)
REPO = Path(__file__).resolve().parent


def run(step, *args):
    """One script as a subprocess, echoed like a shell command; stop the demo if it fails."""
    cmd = [sys.executable, str(REPO / step), *map(str, args)]
    print(f"\n$ python {step} {' '.join(map(str, args))}", flush=True)
    started = time.time()
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        sys.exit(f"demo: {step} failed (see its message above)")
    seconds = time.time() - started
    print(f"[{step}: {seconds:.0f} s]", flush=True)
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, out=OUT, device=DEVICE, workers=WORKERS, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE,
                   epochs=EPOCHS, seed=SEED)
    p.add_argument("--data", default=DATA, help=f"demo videos in FF++'s layout (default: {DATA})")
    p.add_argument("--videos", type=int, default=VIDEOS, help=f"originals of a new demo set (default: {VIDEOS})")
    p.add_argument("--frames", type=int, default=FRAMES, help=f"frames of each demo video (default: {FRAMES})")
    p.add_argument("--baseline-epochs", type=int, default=BASELINE_EPOCHS)
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    p.add_argument("--lr", type=float, default=LR)
    args = p.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    locs, face = out / "jsons", out / "face"
    splits = data / "splits"
    started = time.time()
    timings = {}
    print(f"demo: about {EXPECTED_MINUTES} min at the defaults on an idle 2-core CPU (less on a faster machine, a GPU "
          "or a rerun, which reuses the data; more when other work shares the CPU); each step prints its time",
          flush=True)

    if (splits / "test.json").exists():
        print(f"using the demo videos in {data} (delete it to make them again)")
    else:
        timings["demo data"] = run("make_demo_data.py", "--out", data, "--videos", args.videos,
                                   "--frames", args.frames, "--seed", args.seed, "--workers", args.workers)
    if (locs / "dlib_real.json").exists():
        print(f"using the face locations in {locs}")
    else:
        timings["face detection"] = run("detect_faces.py", "--ffpp-root", data, "--out", locs,
                                        "--workers", args.workers)
    timings["face crops"] = run("create_faces_from_dlib_locs.py", "--ffpp-root", data, "--locs", locs,
                                "--out", face, "--image-size", args.image_size, "--workers", args.workers)
    grid_out = out / "grid"
    timings["train and test"] = run(
        "paper_grid.py", "--face-root", face, "--splits", splits, "--out", grid_out, "--datasets", "All",
        "--epochs", args.epochs, "--baseline-epochs", args.baseline_epochs, "--workers", args.workers,
        "--device", args.device,
        # the rest goes to every train.py run
        "--pretrained", "none", "--image-size", args.image_size, "--batch-size", args.batch_size,
        "--max-frames", args.max_frames, "--lr", args.lr, "--seed", args.seed)
    runs = {"method": grid_out / "method_All", "baseline c23": grid_out / "xception_c23_All",
            "baseline c40": grid_out / "xception_c40_All"}
    table = grid_out / "table"

    sweep = out / "robustness"  # AUC at four H.264 levels, on the first 8 frames of each test and val video
    timings["robustness sweep"] = run(
        "robustness.py", "--ffpp-root", data, "--locs", locs, "--face-root", face, "--splits", splits, "--out", sweep,
        "--image-size", args.image_size, "--crf", 23, 32, 40, 45, "--max-frames", 8, "--val-max-frames", 8,
        "--workers", args.workers, "--device", args.device,
        "--checkpoint", f"method={runs['method']}", "--checkpoint", f"Xception baseline@c23={runs['baseline c23']}",
        "--checkpoint", f"Xception baseline@c40={runs['baseline c40']}")

    history = json.loads((runs["method"] / "history.json").read_text())
    print("\nvalidation AUC of the method per epoch (c23 / c40): " +
          ", ".join(f"{h['epoch']}: {h['val_auc_c23']:.3f} / {h['val_auc_c40']:.3f}" for h in history))
    print("time per step: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"\ndemo finished in {time.time() - started:.0f} s")
    print(f"  checkpoints: {runs['method']}/ (method), {runs['baseline c23']}/ and {runs['baseline c40']}/ (baseline)")
    print(f"  scores, metrics, ROC and histogram plots: {table}/<model>/<c23|c40>/")
    print(f"  table: {table}/table.md and {table}/table.csv")
    print(f"  AUC as compression gets worse: {sweep}/robustness.png, robustness.md and robustness.csv")


if __name__ == "__main__":
    main()
