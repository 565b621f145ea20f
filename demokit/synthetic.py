"""A synthetic face/ tree with its split files, for tests and benchmarks that need no video or dlib.

Each "real" crop is smooth random texture; its fakes carry high-frequency noise inside an elliptic mask,
blended at the edge; the c40 crop is the c23 crop re-encoded as a low-quality JPEG, so that the pair
differs the way two compression levels do.
"""
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from forensics import ffpp
from forensics.fileio import write_image, write_json


def _texture(rng, size):
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), (0, 0), size / 32)


def _mask(rng, size):
    mask = np.zeros((size, size), np.uint8)
    centre = tuple(int(c) for c in rng.integers(size // 3, 2 * size // 3, 2))
    axes = tuple(int(a) for a in rng.integers(size // 6, size // 3, 2))
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return mask


def _c40(image):
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _write_video(args):
    root, video, frames, size, seed, methods = args
    rng = np.random.default_rng(seed)
    base = _texture(rng, size)
    for f in range(frames):
        shift = np.roll(base, f, axis=1)
        real = np.clip(shift.astype(np.int16) + rng.integers(-4, 5, shift.shape), 0, 255).astype(np.uint8)
        write_image(ffpp.face_dir(root, ffpp.REAL, "c23", video) / f"{f}.png", real)
        write_image(ffpp.face_dir(root, ffpp.REAL, "c40", video) / f"{f}.png", _c40(real))
        for k, (method, fake_video) in enumerate(methods):
            mask = _mask(rng, size)
            alpha = cv2.GaussianBlur(mask, (0, 0), 2).astype(np.float32)[..., None] / 255
            noise = rng.normal(0, 12 + 6 * k, real.shape)
            fake = np.clip(real + alpha * noise, 0, 255).astype(np.uint8)
            write_image(ffpp.face_dir(root, method, "c23", fake_video) / f"{f}.png", fake)
            write_image(ffpp.face_dir(root, method, "c40", fake_video) / f"{f}.png", _c40(fake))
            write_image(ffpp.face_dir(root, method, ffpp.MASKS, fake_video) / f"{f}.png", mask)


def make_face_tree(root, pairs=(3, 1, 1), frames=4, size=64, seed=0, methods=ffpp.METHODS, workers=1):
    """Write a face/ tree under root/face and FF++-style splits under root/splits with the given numbers
    of (train, val, test) pairs; returns (face_root, splits_dir)."""
    root = Path(root)
    face_root, splits_dir = root / "face", root / "splits"
    ids = [f"{i:03d}" for i in range(2 * sum(pairs))]
    all_pairs = [[ids[2 * i], ids[2 * i + 1]] for i in range(sum(pairs))]
    bounds = np.cumsum((0,) + tuple(pairs))
    for name, lo, hi in zip(ffpp.SPLITS, bounds[:-1], bounds[1:]):
        write_json(splits_dir / f"{name}.json", all_pairs[lo:hi])
    jobs = []
    for a, b in all_pairs:
        for target, source in ((a, b), (b, a)):
            jobs.append((face_root, target, frames, size, seed * 1000 + int(target),
                         [(m, f"{target}_{source}") for m in methods]))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_video, jobs))
    else:
        for job in jobs:
            _write_video(job)
    return face_root, splits_dir
