"""The flags every script shares, so that --face-root or --workers mean the same everywhere.

Scripts keep their defaults as UPPERCASE constants at the top and pass them in here:
    p = argparse.ArgumentParser(description=__doc__)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT)
or, where a dataclass holds the settings and their defaults (train.py's TrainConfig), take a flag per field:
    cli.add_config(p, TrainConfig)
"""
import argparse
import dataclasses
import os

from . import faces, ffpp

PRECISIONS = ("auto", "bf16", "fp32")  # --precision (device.resolve_precision decides auto)
SWITCH = ("auto", "on", "off")  # --channels-last, --compile, --fused-adam (device.resolve_switch decides auto)

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
    "precision": "bf16 autocast or fp32; auto: bf16 on CUDA, fp32 on the CPU",
}
CHOICES = {"precision": PRECISIONS}


def add_common(parser, **defaults):
    """Add the shared flags named in defaults, each with its default and its standard help."""
    for name, default in defaults.items():
        text = f"{HELP[name]} (default: {default})"
        kind = type(default) if default is not None and not isinstance(default, bool) else str
        if name == "image_size" and default == "auto":
            kind, default = auto_or_int, None
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=default, type=kind, help=text,
                            choices=CHOICES.get(name))
    return parser


def add_config(parser, config):
    """A flag for every field of the dataclass config, named after it (max_frames -> --max-frames), with the
    field's default, type and the help and choices of its metadata (a shared flag's from HELP and CHOICES);
    a bool field is a switch that turns it on."""
    for f in dataclasses.fields(config):
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        text = f.metadata.get("help") or HELP[f.name]
        flag = "--" + f.name.replace("_", "-")
        if f.type is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", default=default, help=text)
        else:
            parser.add_argument(flag, dest=f.name, type=f.type, default=default, help=f"{text} (default: {default})",
                                choices=f.metadata.get("choices") or CHOICES.get(f.name))
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


def add_detector_flags(parser, defaults):
    """The flags of dlib face detection and boxing that detect_faces.py and detect.py share, one per field of
    faces.DetectionSettings, with the script's defaults (a DetectionSettings); detection_settings reads them."""
    d = defaults
    parser.add_argument("--detector", choices=("hog", "cnn"), default=d.detector,
                        help="dlib's HOG detector, or its CNN (MMOD) detector: better on turned faces, much slower "
                             f"without a GPU build of dlib (default: {d.detector})")
    parser.add_argument("--upsample", type=at_least(0), default=d.upsample,
                        help="dlib upsampling steps; 1 finds faces half as large, four times slower "
                             f"(default: {d.upsample})")
    parser.add_argument("--detect-size", type=at_least(0), default=d.detect_size,
                        help="detect on a copy whose longest side is at most this, 0 for full size; HOG misses faces "
                             f"under about 80 px there (default: {d.detect_size})")
    parser.add_argument("--fallback-size", type=at_least(0), default=d.fallback_size,
                        help="where a frame's first pass finds no face, detect again on a copy whose longest side is "
                             "this (scaled up or down; only if larger than the first copy), 0 for no second pass "
                             f"(default: {d.fallback_size})")
    parser.add_argument("--detect-every", type=at_least(1), default=d.detect_every,
                        help="detect on every Nth frame read (the first, the N+1th, ...; only these are decoded "
                             "to pictures for detection) and interpolate the boxes between; 1: every frame "
                             f"(default: {d.detect_every})")
    parser.add_argument("--scale", type=float, default=d.scale,
                        help=f"box side = this times the detection's longer side (default: {d.scale})")
    parser.add_argument("--max-gap", type=at_least(0), default=d.max_gap,
                        help="a frame without a detection takes its box from detections at most this many frames "
                             "away, plus the frames between keyframes (interpolated between two, else copied); "
                             f"frames further away are left out (default: {d.max_gap})")


def detection_settings(args):
    """The faces.DetectionSettings of the flags add_detector_flags added."""
    names = [f.name for f in dataclasses.fields(faces.DetectionSettings)]
    return faces.DetectionSettings(**{name: getattr(args, name) for name in names})


def at_least(low):
    """argparse type of an integer flag with a lower bound."""
    def parse(text):
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        return value
    return parse


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


def parse_labelled(text):
    """LABEL[@QUALIFIER...][=VALUE], the grammar of --checkpoint (paper_table.py, robustness.py) and of
    experiments.py's --variant and --reference: (label, [qualifiers], value, or None without '=')."""
    key, sep, value = text.partition("=")
    label, *qualifiers = key.split("@")
    return label, qualifiers, value if sep else None


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
        label, qualifiers, folder = parse_labelled(value)
        datasets = [q for q in qualifiers if q in ffpp.DATASETS]
        compressions = [q for q in qualifiers if q in ffpp.COMPRESSIONS]
        if not label or not folder or len(datasets) > 1 or len(compressions) > 1 \
                or len(datasets) + len(compressions) != len(qualifiers):
            raise SystemExit(f"--checkpoint {value!r}: {usage}")
        cell = (datasets[0] if datasets else None, compressions[0] if compressions else None)
        if cell in checkpoints.setdefault(label, {}):
            raise SystemExit(f"--checkpoint {value!r}: {label} has a folder for these cells already")
        checkpoints[label][cell] = folder
    return checkpoints
