"""Cut the face/ tree from the face-location files: the c23, c40 and mask crops of a frame with one box.

Layout: face/<Method>/{c23,c40,masks}/<video>/<frame>.png and face/real/{c23,c40}/<video>/<frame>.png.
Crops are --image-size pixels square (0 keeps each box's own size). --format packed writes, in place of a
folder's PNGs, one array of all its crops (crops.npy, RGB; grey for masks) and their frame numbers
(frames.npy): the same pixels, lossless, read through a memory map without decoding, at the cost of more
disk (S*S*3 bytes a crop). Each video is decoded once. Crops are written atomically and a folder is marked
complete last, with what it vouches for (the boxes, the size, the format, the video file's size and time,
each crop's byte size or the pack's size and SHA-1), so a rerun skips finished videos and redoes what a
crash interrupted, what changed since and any crop truncated since; --verify also decodes every crop
(packed: checks the SHA-1).
"""
import argparse
import sys

from forensics import cli, crops, ffpp
from models import INPUT_SIZE

FFPP_ROOT = ffpp.ROOT
LOCS = "jsons"
FACE_ROOT = "face"
IMAGE_SIZE = INPUT_SIZE        # the networks' input side (models.INPUT_SIZE): the paper's 299
FORMAT = "png"  # what the released code wrote; "packed" for the loader's fast path (see the README)
WORKERS = cli.default_workers()
MAX_FRAMES = 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, ffpp_root=FFPP_ROOT, locs=LOCS, out=FACE_ROOT, image_size=IMAGE_SIZE, workers=WORKERS)
    p.add_argument("--face-root", dest="out", help="same as --out: the face crop tree to write")
    cli.add_video_selection(p, splits_fallback="--locs", every_video="every video in the location files")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                   help="only frames below this index, 0 for every frame with a box (default: 0)")
    p.add_argument("--format", choices=ffpp.CROP_FORMATS, default=FORMAT,
                   help="png: one PNG per crop (the released layout); packed: one uint8 array per crop folder "
                        f"(lossless, no decoding when read; needs --image-size > 0) (default: {FORMAT})")
    p.add_argument("--verify", action="store_true",
                   help="decode every crop of the folders marked finished and redo those where one fails (slower)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if anything was skipped")
    args = p.parse_args(argv)
    try:
        tally = crops.create_faces(
            args.ffpp_root, args.locs, args.out, methods=args.methods, image_size=args.image_size,
            max_frames=args.max_frames or None, splits_dir=args.splits or args.locs, split=args.split,
            workers=args.workers, verify=args.verify, fmt=args.format)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    return tally.finish(args.strict)


if __name__ == "__main__":
    sys.exit(main())
