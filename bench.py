"""Throughput of the released code's settings against this project's defaults, in one run on one machine.

    python bench.py --device cuda                     # one GPU: 299x299, batch 64 (the issue's reference)
    python bench.py                                   # CPU: small sizes, a smoke test of every measurement

reference: fp32, eager, plain Adam, per-sample PIL decode + torchvision transforms in the workers.
default:   this project's defaults on the device (bf16 autocast, channels_last, torch.compile and fused Adam on
           CUDA), uint8 PNG decode in the workers, normalisation on the device.
Both run on the same face tree (a synthetic one unless --face-root is given) and print side by side.
--ablate measures which parts of the fast path matter: the default, then the default with one of them off.
--packed adds a column: the default settings on a packed copy of the same crops (create_faces_from_dlib_locs.py
--format packed), where the workers copy crops out of a memory map in place of decoding PNGs. The copy of
the train split's videos goes to a temporary folder first (S*S*3 bytes a crop: with --face-root, a small
tree, or pass a tree cut with --format packed as --face-root and leave --packed out).
The preprocessing steps (detection, cropping) are timed by benchmarks/bench_preprocess.py; the loader on
the CPU, stage by stage, by benchmarks/bench_loader.py.
--profile says where the time goes: after the timed runs it records a few end-to-end training steps and
test batches of each setting with torch.profiler and prints the time of each stage (next batch, to device,
train step) and the operators that take the most (device time on CUDA); with --out it also writes each
profile as a table and a Chrome trace (open in Perfetto or chrome://tracing).
"""
import argparse
import dataclasses
import gc
import re
import resource
import tempfile
import time

import torch

from demokit.synthetic import make_face_tree
from forensics import cli, packed
from forensics.fileio import check_writable, write_by_name, write_bytes
from forensics.data import FaceFrames, index_frames, make_loader, training_loader
from forensics.device import autocast, resolve_device, synchronize
from forensics.scoring import ScoreOptions, score_frames
from forensics.training import RELEASED_SETTINGS, TrainConfig, Training
from models import INPUT_SIZE

DEVICE = "auto"
IMAGE_SIZE = 0          # 0: the networks' 299 (models.INPUT_SIZE) on CUDA, 64 on CPU
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
    "reference": RELEASED_SETTINGS,
    "default": {},
}
ABLATIONS = {  # --ablate: the default with one part of the fast path switched off at a time
    "fp32": {"precision": "fp32"},
    "no channels_last": {"channels_last": "off"},
    "no compile": {"compile": "off"},
    "plain Adam": {"fused_adam": "off"},
    "PIL loader": {"loader": "pil"},
    "joint tail": {"tail_batch": "joint"},  # not a speed-up that keeps the arithmetic: it mixes the BN batches
}
PACKED = "packed"  # --packed: the default settings on the packed copy of the tree
PROFILE_STEPS = 5       # --profile: end-to-end training steps (and test batches) recorded per setting
PROFILE_ROWS = 15       # --profile: operators printed per profile
STAGES = ("next batch", "to device", "train step")  # the labelled parts of an end-to-end training step


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


def profile(device, title, what, run, repeats=1, out=None):
    """Record run() (repeats times) with torch.profiler; print the time of each labelled stage a repeat and the
    operators that take the most, and with out write them and a Chrome trace there (file names from title)."""
    cuda = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(repeats):
            run()
        synchronize(device)
    events = prof.key_averages()
    stages = [f"{e.key}: {e.cpu_time_total / 1e3 / repeats:.1f} ms host" +
              (f", {e.device_time_total / 1e3 / repeats:.1f} ms device" if cuda else "") + " a step"
              for name in STAGES for e in events if e.key == name]
    table = events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
                         row_limit=PROFILE_ROWS)
    text = "\n".join([f"profile of {title}, {what}:", *stages, table])
    print(text, flush=True)
    if out is not None:
        stem = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")
        write_bytes(out / f"{stem}.txt", (text + "\n").encode())
        write_by_name(out / f"{stem}.trace.json", prof.export_chrome_trace)


def batches(loader):
    """Batches forever (a loader's epochs back to back)."""
    while True:
        yield from loader


def measure(name, settings, opts, face_root, splits, device):
    config = TrainConfig(face_root=str(face_root), splits=str(splits), image_size=opts.image_size,
                         batch_size=opts.batch_size, workers=opts.workers, pretrained="none")
    config = dataclasses.replace(config, **settings).resolved(device)
    frames = index_frames(face_root, splits, "train", "All", config.max_frames, balance=True)
    result = {}

    # loader alone
    loader = training_loader(face_root, frames, qualities=config.qualities, masks=True, image_size=config.image_size,
                             batch_size=config.batch_size, workers=config.workers, decoder=config.loader,
                             device=device)
    stream = batches(loader)
    result["loader samples/s"] = opts.batch_size * opts.steps / timed(device, opts.steps, 2, lambda: next(stream))

    # training step alone, on one batch kept on the device
    reset_peak(device)
    training = Training(config, device).to_device()
    batch = next(stream).to(device, config.channels_last)
    seconds = timed(device, opts.steps, opts.warmup, lambda: training.step(batch))
    result["train pairs/s (model)"] = opts.batch_size * opts.steps / seconds
    result["peak memory GiB (train)"] = peak_memory_gib(device)

    # training end to end: loader, host-to-device copy, normalisation, step
    def full_step():
        with torch.profiler.record_function(STAGES[0]):
            batch = next(stream)
        with torch.profiler.record_function(STAGES[1]):
            batch = batch.to(device, config.channels_last)
        with torch.profiler.record_function(STAGES[2]):
            training.step(batch)

    result["train pairs/s (end to end)"] = opts.batch_size * opts.steps / timed(device, opts.steps, 2, full_step)
    if opts.profile:
        profile(device, f"{name} training", f"{PROFILE_STEPS} steps end to end", full_step, PROFILE_STEPS, opts.out)

    # test.py's path: LQ head and tail over c40 crops, alone and with loading (a test set is large, so the
    # loader's start-up is amortised: the warm-up pass is not timed)
    model = training.model.eval()
    probe = FaceFrames(face_root, frames, config.image_size, ("c40",), masks=False, decoder=config.loader)
    x = next(iter(make_loader(probe, opts.test_batch_size, 0))).to(device, config.channels_last).images["c40"]

    @torch.no_grad()
    def infer():
        with autocast(device, config.precision):
            return model.score(x, "c40")

    seconds = timed(device, opts.steps, opts.warmup, infer)
    result["test frames/s (model)"] = len(x) * opts.steps / seconds
    test_frames = (frames * (opts.test_frames // len(frames) + 1))[: opts.test_frames]
    options = ScoreOptions(image_size=config.image_size, batch_size=opts.test_batch_size, workers=opts.workers,
                           precision=config.precision, channels_last=config.channels_last)
    score = lambda n: score_frames(model, face_root, test_frames[:n], "c40", device, options)  # noqa: E731
    score(opts.test_batch_size * 4)
    synchronize(device)
    started = time.perf_counter()
    score(len(test_frames))
    synchronize(device)
    result["test frames/s (end to end)"] = len(test_frames) / (time.perf_counter() - started)
    if opts.profile:
        profile(device, f"{name} test", f"test.py's path over {PROFILE_STEPS} batches",
                lambda: score(opts.test_batch_size * PROFILE_STEPS), out=opts.out)
    reset_peak(device)
    print(f"  {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, device=DEVICE, workers=WORKERS, image_size=IMAGE_SIZE,
                   batch_size=BATCH_SIZE, seed=SEED, out=None)
    p.add_argument("--test-batch-size", type=int, default=TEST_BATCH_SIZE)
    p.add_argument("--test-frames", type=int, default=TEST_FRAMES)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--only", choices=(*SETTINGS, *ABLATIONS, PACKED), help="measure one setting only")
    p.add_argument("--ablate", action="store_true",
                   help="instead of the reference, measure the default with each part of the fast path switched off")
    p.add_argument("--packed", action="store_true",
                   help="also measure the default settings on a packed copy of the crops (--format packed)")
    p.add_argument("--profile", action="store_true",
                   help="also profile each setting with torch.profiler (stages and top operators; --out: files)")
    opts = p.parse_args(argv)
    if opts.out is not None:
        if not opts.profile:
            p.error("--out holds the profiles: pass --profile with it")
        opts.out = check_writable(opts.out)
    settings = {"default": {}, **ABLATIONS} if opts.ablate else dict(SETTINGS)
    if opts.packed:
        settings[PACKED] = {}
    if opts.only not in (None, *settings):
        needs = "without --packed" if opts.only == PACKED else f"{'with' if opts.ablate else 'without'} --ablate"
        p.error(f"--only {opts.only}: not measured {needs}; choose one of {', '.join(settings)}")
    device = resolve_device(opts.device)
    cuda = device.type == "cuda"
    opts.image_size = opts.image_size or (INPUT_SIZE if cuda else 64)
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
        roots = {n: face_root for n in settings}
        if PACKED in settings and opts.only in (None, PACKED):
            started = time.perf_counter()
            train = index_frames(face_root, splits, "train", "All", TrainConfig.max_frames, need_masks=False)
            roots[PACKED] = packed.pack_tree(face_root, f"{tmp}/packed", opts.workers,
                                             {(f.method, f.video) for f in train})
            print(f"packed copy of the crops made in {time.perf_counter() - started:.1f} s")
        name = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
        print(f"device: {name}, torch {torch.__version__}, image {opts.image_size}, batch {opts.batch_size}, "
              f"test batch {opts.test_batch_size}, {opts.steps} timed steps after {opts.warmup}, "
              f"{opts.workers} workers", flush=True)
        results = {n: measure(n, f, opts, roots[n], splits, device)
                   for n, f in settings.items() if opts.only in (None, n)}

    base = "default" if opts.ablate else "reference"
    others = [n for n in results if n != base] if base in results else []
    print(f"\n| measure | {' | '.join(results)} |" + "".join(f" {n} / {base} |" for n in others))
    print("|---|" + "---|" * (len(results) + len(others)))
    for k in next(iter(results.values())):
        row = [f"{results[n][k]:.1f}" for n in results] + [f"{results[n][k] / results[base][k]:.2f}x" for n in others]
        print(f"| {k} | " + " | ".join(row) + " |")
    return results


if __name__ == "__main__":
    main()
