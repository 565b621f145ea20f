"""Write a small demo data set in FaceForensics++'s on-disk layout, so the whole pipeline runs in minutes.

Originals come from skimage's astronaut portrait (no download) or from --source (face videos or photos);
each pair of originals gets FF++'s four manipulations both ways, as documented stand-ins built on dlib's
landmarks, with binary mask videos. Every video is rendered losslessly, then encoded with libx264 at
-crf 23 (c23) and -crf 40 (c40), as FF++ did. The generator is the package demokit/.
"""
import argparse

from demokit.build import build
from forensics import cli

OUT = "demo_data"
VIDEOS = 16  # originals 000..015: 8 pairs, split 5 train / 1 val / 2 test
FRAMES = 32
SIZE = 256
SEED = 0
SOURCE = None  # None: the built-in astronaut identities
VAL_PAIRS = None  # None: 1 in 8 of the pairs (at least one)
TEST_PAIRS = None  # None: 1 in 4 of the pairs (at least one); the other pairs train
WORKERS = cli.default_workers()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, out=OUT, seed=SEED, workers=WORKERS)
    p.add_argument("--videos", type=int, default=VIDEOS, help=f"originals, an even number >= 6 (default: {VIDEOS})")
    p.add_argument("--frames", type=int, default=FRAMES, help=f"frames per video (default: {FRAMES})")
    p.add_argument("--size", type=int, default=SIZE, help=f"frame side in pixels, even (default: {SIZE})")
    p.add_argument("--source", default=SOURCE,
                   help="folder of face videos or photos to use instead of the built-in faces (default: built-in)")
    p.add_argument("--raw", action="store_true", help="also keep the lossless renders, as FF++'s raw/ videos")
    p.add_argument("--val-pairs", type=int, default=VAL_PAIRS, help="pairs in the val split (default: 1 in 8)")
    p.add_argument("--test-pairs", type=int, default=TEST_PAIRS, help="pairs in the test split (default: 1 in 4)")
    a = p.parse_args(argv)
    build(a.out, videos=a.videos, frames=a.frames, size=a.size, seed=a.seed, source=a.source,
          workers=a.workers, raw=a.raw, val_pairs=a.val_pairs, test_pairs=a.test_pairs)


if __name__ == "__main__":
    main()
