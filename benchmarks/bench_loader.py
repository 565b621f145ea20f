"""The loaders on the CPU, PNG and packed crops side by side in one run: the cost of getting one crop per core
(OpenCV, torchvision and PIL decoding a PNG; a copy out of a pack's memory map), where one training sample's
time goes (two crops and a mask), and samples/s with --workers processes of the training loader and of
test.py's (score_frames: one c40 crop a frame, in order).

    pip install -e .    # once, so that forensics imports
    python benchmarks/bench_loader.py                                    # a synthetic tree, 299 px, batch 64
    python benchmarks/bench_loader.py --face-root FACE --splits SPLITS   # a PNG crop tree of your own

The PNG tree (demokit.synthetic.make_face_tree, or --face-root) is packed into a temporary folder, as
create_faces_from_dlib_locs.py --format packed would cut it from the videos; nothing else is written. Both
trees are in the page cache when they are read (just written, or read once first): a tree larger than the
memory is read from disk, where the larger packs cost more. PNG figures depend on the crops' content.
"""
import argparse
import os
import tempfile
import time

import cv2
import numpy as np
import torch

from demokit.synthetic import make_face_tree
from forensics import cli, ffpp, packed
from forensics.data import FaceFrames, collate, index_frames, make_loader, training_loader
from models import INPUT_SIZE

IMAGE_SIZE = INPUT_SIZE
BATCH_SIZE = 64
TEST_BATCH_SIZE = 128  # test.py's
WORKERS = 2
FRAMES = 12      # frames a synthetic video (8 train pairs: 16 real and 64 fake videos)
CROPS = 240      # crops each per-core figure reads
SAMPLES = 64     # loader samples of the per-stage breakdown
REPEATS = 3      # passes of each per-core figure; the fastest counts (the machine may be shared)
WARMUP = 4       # loader batches before the timed ones (workers starting, queues filling)
BATCHES = 24     # loader batches timed
FACE_ROOT = None
SPLITS = None
SEED = 0
FORMATS = ("png", "packed")


def best(function, items, repeats):
    """Seconds per item of the fastest of `repeats` passes of function over items."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            function(item)
        times.append(time.perf_counter() - started)
    return min(times) / len(items)


def row(label, seconds, reference=None):
    ratio = f"  {reference / seconds:5.1f}x" if reference else ""
    print(f"  {label:<64} {seconds * 1e6:9.0f} us {1 / seconds:9.0f} /s{ratio}", flush=True)


def per_core(roots, frames, opts):
    """Crops/s of one thread for each way of getting a crop (RGB, or BGR for OpenCV's own order)."""
    from PIL import Image
    from torchvision.io import decode_png, read_file

    unique = list(dict.fromkeys(frames))  # real and fake frames alike, each once
    chosen = unique[::max(1, len(unique) // opts.crops)][:opts.crops]
    pngs = [str(ffpp.face_dir(roots["png"], f.method, "c23", f.video) / f"{f.frame}.png") for f in chosen]
    packs = [(ffpp.face_dir(roots["packed"], f.method, "c23", f.video), f.frame) for f in chosen]
    mapped, unmapped = packed.Packs(), packed.Packs(limit=0)
    png_kb = np.mean([os.path.getsize(p) for p in pngs]) / 1024
    print(f"\none c23 crop, one thread ({len(pngs)} crops, best of {opts.repeats} passes; a PNG {png_kb:.0f} KiB "
          f"on average, a packed crop {opts.image_size ** 2 * 3 / 1024:.0f} KiB):")
    opencv = best(lambda p: cv2.imread(p, cv2.IMREAD_COLOR), pngs, opts.repeats)
    row("cv2.imread, PNG -> BGR HxWx3", opencv)
    row("torchvision.io.decode_png(read_file), PNG -> RGB 3xHxW", best(lambda p: decode_png(read_file(p)), pngs,
                                                                     opts.repeats), opencv)
    row("PIL Image.open().convert('RGB'), PNG -> RGB HxWx3",
        best(lambda p: np.asarray(Image.open(p).convert("RGB")), pngs, opts.repeats), opencv)
    row("packed, pack mapped once: copy out of the map -> RGB HxWx3",
        best(lambda c: mapped.crop(*c), packs, opts.repeats), opencv)
    row("packed, mapped again for every crop (np.memmap; header known)",
        best(lambda c: unmapped.crop(*c), packs, opts.repeats), opencv)
    row("packed, nothing kept: np.load frames.npy, np.load(mmap_mode='r')",
        best(lambda c: np.array(np.load(c[0] / ffpp.PACKED_CROPS, mmap_mode="r")[
            packed.read_frames(c[0]).tolist().index(c[1])]), packs, opts.repeats), opencv)


def stages(roots, frames, opts):
    """Seconds per sample (c23 and c40 crops and a mask) of each stage of the fast loader, per format."""
    fakes = [f for f in frames if f.label][:opts.samples]
    dataset = {fmt: FaceFrames(roots[fmt], fakes, opts.image_size, masks=True) for fmt in FORMATS}
    folders = {fmt: [[ffpp.face_dir(roots[fmt], f.method, q, f.video) for q in (*ffpp.COMPRESSIONS, ffpp.MASKS)]
                     for f in fakes] for fmt in FORMATS}
    greys = (False, False, True)

    def png_read(i):
        return [(folder / f"{fakes[i].frame}.png").read_bytes() for folder in folders["png"][i]]

    def png_decode(raw):
        return [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE if g else cv2.IMREAD_COLOR)
                for b, g in zip(raw, greys)]

    def png_layout(images):
        c23, c40, mask = images
        return ({q: torch.from_numpy(cv2.cvtColor(x, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)
                 for q, x in zip(ffpp.COMPRESSIONS, (c23, c40))}, torch.from_numpy(mask)[None])

    packs = dataset["packed"].packs

    def packed_read(i):
        return [packs.crop(folder, fakes[i].frame, g) for folder, g in zip(folders["packed"][i], greys)]

    def packed_layout(images):
        c23, c40, mask = images
        return ({q: torch.from_numpy(x).permute(2, 0, 1) for q, x in zip(ffpp.COMPRESSIONS, (c23, c40))},
                torch.from_numpy(mask)[None])

    indices = range(len(fakes))
    print(f"\none loader sample, one thread (c23 and c40 crops and a mask of a fake frame, {len(fakes)} samples, "
          f"best of {opts.repeats} passes):")
    for fmt in FORMATS:
        read, decode, layout = (png_read, png_decode, png_layout) if fmt == "png" else (packed_read, None,
                                                                                      packed_layout)
        raw = [read(i) for i in indices]
        images = [decode(r) for r in raw] if decode else raw
        samples = [(*layout(x), 1, i) for i, x in enumerate(images)]
        batches = [samples[i:i + opts.batch_size] for i in range(0, len(samples), opts.batch_size)]
        parts = {"file read" + (" (copy out of the map)" if fmt == "packed" else ""): best(read, indices,
                                                                                            opts.repeats),
                 "decode": best(decode, raw, opts.repeats) if decode else 0.0,
                 "colour and layout (RGB, CHW)": best(layout, images, opts.repeats),
                 f"collate (batch {opts.batch_size}), per sample": best(collate, batches, opts.repeats)
                 * len(batches) / len(samples)}
        whole = best(dataset[fmt].__getitem__, indices, opts.repeats)
        print(f"  {fmt}:")
        for label, seconds in parts.items():
            print(f"    {label:<56} {seconds * 1e6:9.0f} us")
        print(f"    {'sum':<56} {sum(parts.values()) * 1e6:9.0f} us")
        print(f"    {'FaceFrames[i] as the workers call it (collate not included)':<56} {whole * 1e6:9.0f} us "
              f"= {1 / whole:.0f} samples/s")


def endless(loader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def loader_rate(roots, frames, opts, test=False):
    """Samples/s with opts.workers processes of the training loader (shuffled, two crops and a mask, uint8) or,
    with test, of score_frames' (in order, one c40 crop)."""
    what = (f"test.py's loader, batch {opts.test_batch_size}, c40 only" if test else
            f"the training loader, batch {opts.batch_size}, c23 + c40 + mask")
    print(f"\n{what}, {opts.workers} worker processes, {opts.image_size} px ({opts.batches} batches after "
          f"{opts.warmup}):")
    rates = {}
    for fmt in FORMATS:
        if test:
            dataset = FaceFrames(roots[fmt], list(dict.fromkeys(frames)), opts.image_size, ("c40",),
                                 masks=False)
            loader = make_loader(dataset, opts.test_batch_size, opts.workers)
        else:
            loader = training_loader(roots[fmt], frames, qualities=ffpp.COMPRESSIONS, masks=True,
                                     image_size=opts.image_size, batch_size=opts.batch_size, workers=opts.workers,
                                     decoder="fast", device=torch.device("cpu"), seed=opts.seed)
        batches = endless(loader)
        for _ in range(opts.warmup):
            next(batches)
        started = time.perf_counter()
        samples = sum(len(next(batches).label) for _ in range(opts.batches))
        rates[fmt] = samples / (time.perf_counter() - started)
        batches.close()  # its workers stop before the next format's start
    for fmt in FORMATS:
        ratio = f" ({rates[fmt] / rates['png']:.2f}x PNG)" if fmt != "png" else ""
        print(f"  {fmt:<8} {rates[fmt]:8.1f} samples/s{ratio}")
    return rates


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, workers=WORKERS, image_size=IMAGE_SIZE,
                   batch_size=BATCH_SIZE, seed=SEED)
    p.add_argument("--test-batch-size", type=int, default=TEST_BATCH_SIZE,
                   help=f"batch of test.py's loader (default: {TEST_BATCH_SIZE})")
    for name, default, what in (("frames", FRAMES, "frames a synthetic video"),
                                ("crops", CROPS, "crops each per-core figure reads"),
                                ("samples", SAMPLES, "samples of the per-stage breakdown"),
                                ("repeats", REPEATS, "passes of each per-core figure (the fastest counts)"),
                                ("warmup", WARMUP, "loader batches before the timed ones"),
                                ("batches", BATCHES, "loader batches timed")):
        p.add_argument(f"--{name}", type=int, default=default, help=f"{what} (default: {default})")
    opts = p.parse_args(argv)
    if (opts.face_root is None) != (opts.splits is None):
        p.error("--face-root and --splits go together (a PNG crop tree and its split files)")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; torch {torch.__version__}, "
          f"OpenCV {cv2.__version__}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        face_root, splits = opts.face_root, opts.splits
        if face_root is None:
            started = time.perf_counter()
            face_root, splits = make_face_tree(tmp, pairs=(8, 1, 1), frames=opts.frames, size=opts.image_size,
                                               seed=opts.seed, workers=max(1, opts.workers))
            print(f"synthetic PNG tree: {opts.frames} frames a video, {opts.image_size} px, made in "
                  f"{time.perf_counter() - started:.1f} s")
        frames = index_frames(face_root, splits, "train", "All", balance=True)
        started = time.perf_counter()
        roots = {"png": face_root,
                 "packed": packed.pack_tree(face_root, f"{tmp}/packed", max(1, opts.workers),
                                            {(f.method, f.video) for f in frames})}
        print(f"packed copy of the train split: {time.perf_counter() - started:.1f} s; {len(frames)} samples")
        if opts.face_root is not None:  # bring the user's PNGs into the page cache, as the packs are
            for f in frames:
                for q in (*ffpp.COMPRESSIONS, ffpp.MASKS):
                    path = ffpp.face_dir(face_root, f.method, q, f.video) / f"{f.frame}.png"
                    if path.is_file():
                        path.read_bytes()
        per_core(roots, frames, opts)
        stages(roots, frames, opts)
        loader_rate(roots, frames, opts)
        loader_rate(roots, frames, opts, test=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
