"""Find one face per FF++ video with dlib and write its boxes to jsons/dlib_<Method>.json and dlib_real.json.

The crops of the c23, c40 and mask videos are all cut with these boxes (create_faces_from_dlib_locs.py),
so detection runs once, on one compression level. Files in the format released with the paper's code
({video: {frame: [x, y, size]}}) can be used instead.

Each video's boxes are appended to --out/detect_faces.progress.jsonl as soon as it is done: a killed run,
rerun with the same flags, detects only the videos it had not finished.
"""
import argparse
import sys

from forensics import cli, faces, ffpp, manifest

FFPP_ROOT = ffpp.ROOT
OUT = "jsons"
WORKERS = cli.default_workers()
COMPRESSION = "c23"
MAX_FRAMES = faces.FFPP_FRAMES  # the released training used the first 270 frames of a video, its test 140
STRIDE = 1
DETECTION = faces.FFPP  # as the released location files were made: HOG on every frame, one pass (faces.py)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, ffpp_root=FFPP_ROOT, out=OUT, workers=WORKERS)
    cli.add_video_selection(p, splits_fallback="--out", every_video="every video found on disk")
    p.add_argument("--compression", choices=ffpp.COMPRESSIONS, default=COMPRESSION,
                   help=f"the videos to detect on (default: {COMPRESSION})")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                   help=f"only the first N frames of a video, 0 for all (default: {MAX_FRAMES}; the paper's test "
                        "used 140)")
    p.add_argument("--stride", type=int, default=STRIDE, help=f"every Nth frame (default: {STRIDE})")
    cli.add_detector_flags(p, DETECTION)
    p.add_argument("--fake-boxes", choices=("own", "target"), default="own",
                   help="own: detect on the fake itself; target: copy the boxes of its target original NNN "
                        "(for NNN_MMM) (default: own)")
    p.add_argument("--shard", default=None,
                   help="K/N: only this machine's share of the videos, K = 0..N-1; writes "
                        "dlib_<Method>.shard-K-of-N.json, which create_faces_from_dlib_locs.py merges")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if anything was skipped")
    args = p.parse_args(argv)
    try:
        shard = manifest.parse_shard(args.shard) if args.shard else None
        tally = faces.detect_all(
            args.ffpp_root, args.out, methods=args.methods, compression=args.compression,
            max_frames=args.max_frames, stride=args.stride, detection=cli.detection_settings(args),
            fake_boxes=args.fake_boxes, splits_dir=args.splits, split=args.split, shard=shard, workers=args.workers)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    return tally.finish(args.strict)


if __name__ == "__main__":
    sys.exit(main())
