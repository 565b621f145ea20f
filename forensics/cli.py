"""The flags every script shares, so that --face-root or --workers mean the same everywhere.

Scripts keep their defaults as UPPERCASE constants at the top and pass them in here:
    p = argparse.ArgumentParser(description=__doc__)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT)
"""
import argparse
import os

from . import ffpp

HELP = {
    "ffpp_root": "FF++ root holding original_sequences/ and manipulated_sequences/",
    "locs": "folder of face-location JSONs (dlib_<Method>.json, dlib_real.json)",
    "face_root": "face crop tree: <Method or real>/<c23|c40|masks>/<video>/<frame>.png (or packed: crops.npy)",
    "splits": "folder with FF++'s train.json, val.json, test.json",
    "out": "where this script writes its output",
    "device": "auto, cpu, cuda or cuda:N",
    "workers": "worker processes (0 = in the main process)",
    "image_size": "side of the square face image in pixels (auto, where allowed: the run's own size)",
    "batch_size": "samples per batch",
    "epochs": "training epochs",
    "seed": "random seed",
}


def add_common(parser, **defaults):
    """Add the shared flags named in defaults, each with its default and its standard help."""
    for name, default in defaults.items():
        text = f"{HELP[name]} (default: {default})"
        kind = type(default) if default is not None and not isinstance(default, bool) else str
        if name == "image_size" and default == "auto":
            kind, default = auto_or_int, None
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=default, type=kind, help=text)
    return parser


def add_video_selection(parser, splits_fallback, every_video):
    """--splits, --split and --methods of the preprocessing scripts: which FF++ videos to work on."""
    parser.add_argument("--splits", default=None,
                        help=f"{HELP['splits']} (default: {splits_fallback}); used with --split")
    parser.add_argument("--split", choices=ffpp.SPLITS + ("all",), default=None,
                        help=f"only the videos of this split (default: {every_video})")
    parser.add_argument("--methods", nargs="+", choices=(ffpp.REAL,) + ffpp.METHODS,
                        default=[ffpp.REAL, *ffpp.METHODS], metavar="METHOD",
                        help="real and/or FF++ methods (default: all five)")
    return parser


def add_detector_flags(parser, detector, upsample, detect_size, scale, max_gap):
    """The flags of dlib face detection and boxing that detect_faces.py and detect.py share, with the
    script's defaults."""
    parser.add_argument("--detector", choices=("hog", "cnn"), default=detector,
                        help="dlib's HOG detector, or its CNN (MMOD) detector: better on turned faces, much slower "
                             f"without a GPU build of dlib (default: {detector})")
    parser.add_argument("--upsample", type=int, default=upsample,
                        help="dlib upsampling steps; 1 finds faces half as large, four times slower "
                             f"(default: {upsample})")
    parser.add_argument("--detect-size", type=int, default=detect_size,
                        help="detect on a copy whose longest side is at most this, 0 for full size "
                             f"(default: {detect_size})")
    parser.add_argument("--scale", type=float, default=scale,
                        help=f"box side = this times the detection's longer side (default: {scale})")
    parser.add_argument("--max-gap", type=int, default=max_gap,
                        help="a frame without a detection takes its box from detections at most this many frames "
                             f"away (interpolated between two), else it is left out; 0 leaves it out "
                             f"(default: {max_gap})")


def default_workers():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_or_int(value):
    """argparse type of --image-size where 'auto' (the run's own size) is allowed: None or an int."""
    if value in (None, "auto"):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: use auto or a number of pixels") from None


def parse_checkpoints(values):
    """--checkpoint [LABEL[@QUALIFIER...]=]DIR, repeated, as {label: {(dataset, compression): DIR}}. A qualifier
    is a compression (c23, c40) or a dataset (Deepfakes, ..., All); one left out is None: any. The label is a
    row of the table ('method@Deepfakes=DIR' says DIR scores the Deepfakes columns of that row); a bare DIR is
    labelled with its folder's name."""
    checkpoints = {}
    usage = "use DIR, LABEL=DIR, LABEL@c23=DIR, LABEL@Deepfakes=DIR or LABEL@Deepfakes@c40=DIR"
    for value in values:
        if "=" not in value and value.strip("/"):
            value = f"{os.path.basename(value.rstrip('/'))}={value}"
        key, sep, folder = value.partition("=")
        label, *qualifiers = key.split("@")
        datasets = [q for q in qualifiers if q in ffpp.DATASETS]
        compressions = [q for q in qualifiers if q in ffpp.COMPRESSIONS]
        if not sep or not label or not folder or len(datasets) > 1 or len(compressions) > 1 \
                or len(datasets) + len(compressions) != len(qualifiers):
            raise SystemExit(f"--checkpoint {value!r}: {usage}")
        cell = (datasets[0] if datasets else None, compressions[0] if compressions else None)
        if cell in checkpoints.setdefault(label, {}):
            raise SystemExit(f"--checkpoint {value!r}: {label} has a folder for these cells already")
        checkpoints[label][cell] = folder
    return checkpoints
