"""Throughput of the released code's settings against this project's defaults, in one run on one machine.

    python bench.py --device cuda                     # one GPU: 299x299, batch 64 (the issue's reference)
    python bench.py                                   # CPU: small sizes, a smoke test of every measurement

reference: fp32, eager, plain Adam, per-sample PIL decode + torchvision transforms in the workers.
default:   this project's defaults on the device (bf16 autocast, channels_last, torch.compile and fused Adam on
           CUDA), uint8 PNG decode in the workers, normalisation on the device.
Both run on the same face tree (a synthetic one unless --face-root is given) and print side by side,
followed by the crop step's frames/s (create_faces_from_dlib_locs.py) against a single-process loop.
--ablate measures which parts of the fast path matter: the default, then the default with one of them off.
"""
import argparse
import gc
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import train
from forensics import cli, crops, ffpp
from forensics.data import FaceFrames, ReferenceFaceFrames, index_frames, reference_model_input, to_model_input
from forensics.scoring import autocast, make_loader, score_frames
from forensics.fileio import write_image, write_json
from forensics.synthetic import make_face_tree
from forensics.video import read_frames

DEVICE = "auto"
IMAGE_SIZE = 0          # 0: 299 on CUDA, 64 on CPU
BATCH_SIZE = 0          # 0: 64 on CUDA, 8 on CPU
TEST_BATCH_SIZE = 0     # 0: 128 on CUDA, 16 on CPU
TEST_FRAMES = 0         # frames test.py's path scores, after a warm-up pass; 0: 12800 on CUDA, 64 on CPU
STEPS = 0               # timed steps; 0: 40 on CUDA, 3 on CPU
WARMUP = 0              # untimed steps first (compilation, cudnn autotuning); 0: 15 on CUDA, 1 on CPU
WORKERS = cli.default_workers()
FACE_ROOT = None        # a face/ tree with splits; None makes a synthetic one
SPLITS = None
SEED = 0

SETTINGS = {
    "reference": train.RELEASED_SETTINGS,
    "default": [],
}
ABLATIONS = {  # --ablate: the default with one part of the fast path switched off at a time
    "fp32": ["--precision", "fp32"],
    "no channels_last": ["--channels-last", "off"],
    "no compile": ["--compile", "off"],
    "plain Adam": ["--fused-adam", "off"],
    "PIL loader": ["--loader", "pil"],
}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def reset_peak(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed(device, steps, warmup, run_step):
    for _ in range(warmup):
        run_step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        run_step()
    synchronize(device)
    return time.perf_counter() - started


def batches(loader):
    """Batches forever (a loader's epochs back to back)."""
    while True:
        yield from loader


def measure(name, flags, opts, face_root, splits, device):
    args = train.parse_args(["--face-root", str(face_root), "--splits", str(splits), "--device", str(device),
                             "--image-size", str(opts.image_size), "--batch-size", str(opts.batch_size),
                             "--workers", str(opts.workers), "--pretrained", "none", *flags])
    args = train.resolve_auto(args, device)
    frames = index_frames(face_root, splits, "train", "All", args.max_frames, balance=True)
    pil = args.loader == "pil"
    dataset = (ReferenceFaceFrames if pil else FaceFrames)(face_root, frames, args.image_size)
    model_input = reference_model_input if pil else to_model_input
    result = {}

    # loader alone
    loader = make_loader(dataset, args.batch_size, args.workers, shuffle=True, drop_last=True, device=device)
    stream = batches(loader)
    result["loader samples/s"] = opts.batch_size * opts.steps / timed(device, opts.steps, 2, lambda: next(stream))

    # training step alone, on one batch kept on the device
    reset_peak(device)
    training = train.Training(args, device).to_device()
    *images, mask, label, _ = next(stream)
    images = [model_input(x, device, args.channels_last) for x in images]
    mask, label = mask.to(device), label.to(device)
    seconds = timed(device, opts.steps, opts.warmup, lambda: training.step(images, mask, label))
    result["train pairs/s (model)"] = opts.batch_size * opts.steps / seconds
    result["peak memory GiB (train)"] = peak_memory_gib(device)

    # training end to end: loader, host-to-device copy, normalisation, step
    def full_step():
        *images, mask, label, _ = next(stream)
        training.step([model_input(x, device, args.channels_last) for x in images],
                      mask.to(device, non_blocking=True), label.to(device, non_blocking=True))

    result["train pairs/s (end to end)"] = opts.batch_size * opts.steps / timed(device, opts.steps, 2, full_step)

    # test.py's path: LQ head and tail over c40 crops, alone and with loading (a test set is large, so the
    # loader's start-up is amortised: the warm-up pass is not timed)
    model = training.model.eval()
    x = model_input(next(iter(make_loader(dataset, opts.test_batch_size, 0)))[1], device, args.channels_last)

    @torch.no_grad()
    def infer():
        with autocast(device, args.precision):
            return model.score(x, "c40")

    seconds = timed(device, opts.steps, opts.warmup, infer)
    result["test frames/s (model)"] = len(x) * opts.steps / seconds
    test_frames = (frames * (opts.test_frames // len(frames) + 1))[: opts.test_frames]
    score = lambda n: score_frames(model, face_root, test_frames[:n], "c40", device,  # noqa: E731
                                   args.image_size, opts.test_batch_size, opts.workers, args.precision,
                                   args.channels_last)
    score(opts.test_batch_size * 4)
    synchronize(device)
    started = time.perf_counter()
    score(len(test_frames))
    synchronize(device)
    result["test frames/s (end to end)"] = len(test_frames) / (time.perf_counter() - started)
    reset_peak(device)
    print(f"  {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
    return result


def crop_throughput(tmp, workers, image_size=299, videos=12, frames=100, width=640, height=360):
    """create_faces_from_dlib_locs.py's crop step (decode, cut c23 crops, write PNGs) in frames/s: a plain
    single-process loop, create_faces in one process, and on all workers. Videos are made here with OpenCV,
    so this runs where dlib and ffmpeg are not installed."""
    root, locs = Path(tmp) / "crop_ffpp", Path(tmp) / "crop_locs"
    rng = np.random.default_rng(0)
    boxes = {}
    for v in range(videos):
        path = ffpp.video_path(root, ffpp.REAL, "c23", f"{v:03d}")
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
        base = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (width, height))
        for f in range(frames):
            writer.write(np.roll(base, 2 * f, axis=1))
        writer.release()
        boxes[f"{v:03d}"] = {str(f): [200 + f, 60, 240] for f in range(frames)}
    write_json(locs / "dlib_real.json", boxes)
    total = videos * frames
    result = {}
    started = time.perf_counter()
    for video, video_boxes in boxes.items():
        decoded = read_frames(ffpp.video_path(root, ffpp.REAL, "c23", video))
        for index, crop in crops.crop_frames(decoded, {int(k): b for k, b in video_boxes.items()}, image_size):
            write_image(Path(tmp) / "crop_loop" / video / f"{index}.png", crop)
    result["crop frames/s, plain loop"] = total / (time.perf_counter() - started)
    for n in sorted({0, workers}):
        started = time.perf_counter()
        tally = crops.create_faces(root, locs, Path(tmp) / f"crop_face{n}", methods=(ffpp.REAL,),
                                   qualities=("c23",), masks=False, image_size=image_size, workers=n)
        assert tally.frames_done == total, tally.summary()
        result[f"crop frames/s, create_faces, {max(n, 1)} process(es)"] = total / (time.perf_counter() - started)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, device=DEVICE, workers=WORKERS, image_size=IMAGE_SIZE,
                   batch_size=BATCH_SIZE, seed=SEED)
    p.add_argument("--test-batch-size", type=int, default=TEST_BATCH_SIZE)
    p.add_argument("--test-frames", type=int, default=TEST_FRAMES)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--only", choices=(*SETTINGS, *ABLATIONS), help="measure one setting only")
    p.add_argument("--ablate", action="store_true",
                   help="instead of the reference, measure the default with each part of the fast path switched off")
    p.add_argument("--no-crop", dest="crop", action="store_false", help="skip the crop step's measurement")
    opts = p.parse_args(argv)
    settings = {"default": [], **ABLATIONS} if opts.ablate else SETTINGS
    if opts.only not in (None, *settings):
        p.error(f"--only {opts.only}: not measured {'with' if opts.ablate else 'without'} --ablate; "
                f"choose one of {', '.join(settings)}")
    device = cli.resolve_device(opts.device)
    cuda = device.type == "cuda"
    opts.image_size = opts.image_size or (299 if cuda else 64)
    opts.batch_size = opts.batch_size or (64 if cuda else 8)
    opts.test_batch_size = opts.test_batch_size or (128 if cuda else 16)
    opts.test_frames = opts.test_frames or (12800 if cuda else 64)
    opts.steps = opts.steps or (40 if cuda else 3)
    opts.warmup = opts.warmup or (15 if cuda else 1)
    torch.manual_seed(opts.seed)
    torch.backends.cudnn.benchmark = True

    with tempfile.TemporaryDirectory() as tmp:
        face_root, splits = opts.face_root, opts.splits
        if face_root is None:
            needed = opts.batch_size * (opts.steps * 2 + opts.warmup + 4)
            frames = max(2, -(-needed // (16 * 8)))  # 8 train pairs -> 16 real + 64 fake videos
            started = time.perf_counter()
            face_root, splits = make_face_tree(tmp, pairs=(8, 1, 1), frames=frames, size=opts.image_size,
                                               seed=opts.seed, workers=opts.workers)
            print(f"synthetic face tree: {frames} frames a video, {opts.image_size} px, "
                  f"made in {time.perf_counter() - started:.1f} s")
        name = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
        print(f"device: {name}, torch {torch.__version__}, image {opts.image_size}, batch {opts.batch_size}, "
              f"test batch {opts.test_batch_size}, {opts.steps} timed steps after {opts.warmup}, "
              f"{opts.workers} workers", flush=True)
        results = {n: measure(n, f, opts, face_root, splits, device)
                   for n, f in settings.items() if opts.only in (None, n)}
        crop = crop_throughput(tmp, opts.workers) if opts.crop else {}

    base = "default" if opts.ablate else "reference"
    others = [n for n in results if n != base] if base in results else []
    print(f"\n| measure | {' | '.join(results)} |" + "".join(f" {n} / {base} |" for n in others))
    print("|---|" + "---|" * (len(results) + len(others)))
    for k in next(iter(results.values())):
        row = [f"{results[n][k]:.1f}" for n in results] + [f"{results[n][k] / results[base][k]:.2f}x" for n in others]
        print(f"| {k} | " + " | ".join(row) + " |")
    if crop:
        print(f"\ncrop step (CPU, {opts.workers} workers, 299 px crops, synthetic 640x360 videos):")
        for k, v in crop.items():
            print(f"  {k}: {v:.1f}")
    return dict(results, crop=crop)


if __name__ == "__main__":
    main()
