"""FaceForensics++ on-disk layout, split files and the face/ crop tree, in one place."""
import re
import shlex
import tempfile
import urllib.request
from pathlib import Path

from .fileio import read_json, write_bytes

ROOT = "FaceForensics++"  # --ffpp-root's default in every script: the folder given to FF++'s download script
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
REAL = "real"
COMPRESSIONS = ("c23", "c40")
DATASETS = METHODS + ("All",)  # what a model is trained or tested on: one method, or all four
MASKS = "masks"
SPLITS = ("train", "val", "test")
SPLITS_URL = "https://raw.githubusercontent.com/ondyari/FaceForensics/master/dataset/splits/{}.json"
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")  # FF++'s NNN and NNN_MMM, and the plain names of other sets
CROP_FORMATS = ("png", "packed")  # how a crop folder holds its crops (see face_dir)
PACKED_CROPS = "crops.npy"  # packed: every crop of the folder, N x S x S x 3 uint8 RGB (N x S x S for masks)
PACKED_FRAMES = "frames.npy"  # packed: their N frame numbers (int64, ascending); its presence marks the format


def is_plain_name(value):
    return isinstance(value, str) and PLAIN_NAME.fullmatch(value) is not None


def check_id(kind, value, source=None):
    """value, if it is a plain name (letters, digits, _ and -); else a ValueError naming source and value.

    Video ids, method and quality names become folder and file names (face/<method>/<quality>/<video>/), and
    location and split files often come from other people: a '/', '..' or an absolute path there would make
    a script write, or clean up, outside its --out. So every id is checked before it becomes a path."""
    if not is_plain_name(value):
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}{kind} {value!r} is not a plain name (letters, digits, _ and - only): refused, "
                         "since it would become a path; fix or replace the file")
    return value


def video_path(root, method, quality, video):
    """Path of one FF++ video. method is one of METHODS or REAL; quality is c23, c40 or masks."""
    root = Path(root)
    for kind, value in (("method", method), ("quality", quality), ("video", video)):
        check_id(kind, value)
    if method == REAL:
        if quality == MASKS:
            raise ValueError("real videos have no masks")
        return root / "original_sequences" / "youtube" / quality / "videos" / f"{video}.mp4"
    return root / "manipulated_sequences" / method / quality / "videos" / f"{video}.mp4"


def videos_dir(root, method, quality):
    return video_path(root, method, quality, "x").parent


def qualities_on_disk(root, method):
    """The compressions whose video folder of method exists under an FF++ root."""
    return [q for q in COMPRESSIONS if videos_dir(root, method, q).is_dir()]


def face_dir(face_root, method, quality, video):
    """Folder of one video's crops: face/<method or real>/<c23|c40|masks>/<video>/. It holds either one
    <frame>.png per crop (the released code's layout) or, packed, PACKED_CROPS and PACKED_FRAMES: the same
    pixels in one array that loaders read through a memory map (forensics/packed.py)."""
    for kind, value in (("method", method), ("quality", quality), ("video", str(video))):
        check_id(kind, value)
    return Path(face_root) / method / quality / str(video)


def target_of(video):
    """The original whose frames a fake was built on: NNN for NNN_MMM (FF++ puts the target first)."""
    return str(video).split("_")[0]


def methods_of(dataset):
    """The fake methods of a dataset name (one of DATASETS)."""
    if dataset not in DATASETS:
        raise ValueError(f"--dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    return METHODS if dataset == "All" else (dataset,)


def split_videos(pairs, method):
    """Video names of one split for one method (REAL: id1 and id2; fakes: id1_id2 and id2_id1)."""
    if method == REAL:
        return [v for a, b in pairs for v in (a, b)]
    return [v for a, b in pairs for v in (f"{a}_{b}", f"{b}_{a}")]


def read_split(splits_dir, name):
    """One split file as a list of [id1, id2] pairs, with an error that says what to do."""
    path = Path(splits_dir) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: split file not found. Download FF++'s official splits with "
            f"`python -m forensics.ffpp --out {shlex.quote(str(splits_dir))}` or pass --splits DIR")
    pairs = read_json(path, "split file")
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(i, str) for i in p) for p in pairs):
        raise ValueError(f"{path}: expected a JSON list of [id1, id2] string pairs, as FF++'s split files are")
    for pair in pairs:  # a whole file is refused: a split with a path in it is not FF++'s, and it is small
        for video in pair:
            check_id("video id", video, path)
    return pairs


def download_splits(out_dir, url=SPLITS_URL):
    """Fetch FF++'s official train/val/test split files from the FaceForensics repository; a file that is
    not a valid split list is refused before it replaces anything."""
    for name in SPLITS:
        try:
            with urllib.request.urlopen(url.format(name), timeout=30) as r:
                data = r.read()
        except OSError as e:
            raise OSError(f"{url.format(name)}: download failed ({e}); without a network, copy FF++'s "
                          f"dataset/splits/{name}.json into {out_dir} by hand") from None
        with tempfile.TemporaryDirectory() as tmp:
            write_bytes(Path(tmp) / f"{name}.json", data)
            read_split(tmp, name)
        write_bytes(Path(out_dir) / f"{name}.json", data)
        print(f"wrote {Path(out_dir) / f'{name}.json'}")


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Download FF++'s official split files (needs a network).")
    p.add_argument("--out", default="jsons", help="folder to write train.json, val.json, test.json into")
    download_splits(p.parse_args().out)
