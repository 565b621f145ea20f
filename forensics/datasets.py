"""The test sets detectors are judged on after training on FF++, each read from its own layout and label files.

An adapter turns a dataset root into the labelled test videos its authors define: Celeb-DF (v2 and v1),
DFDC (a training part's metadata.json, or the public test set's labels.csv), the DFDC preview (dataset.json),
DeeperForensics-1.0 (end_to_end fakes of its test list, FF++'s originals as the real videos), FF++'s own
FaceShifter and DeepFakeDetection (DFD) sets, FF++ itself (the test split), and a plain real/ and fake/ folder.
Labels follow the project: 1 = fake. A root without the files its adapter reads is a LayoutError that lists
them; a video the labels name but the disk lacks is kept in Listing.missing, for the caller to report.
"""
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import ffpp
from .inference import VIDEO_SUFFIXES

FFPP_QUALITIES = ("c23", "c40", "raw")  # --ffpp-quality auto: the first of these that is on disk
FAKE = "fake"  # the group of a fake video whose dataset names no method


class LayoutError(FileNotFoundError):
    """A root that does not look like its adapter's dataset; the message lists the files expected."""


@dataclass(frozen=True)
class Video:
    name: str  # as the dataset's files name it: its path under the root (unique within the dataset)
    path: Path
    label: int  # 1 = fake
    method: str = ffpp.REAL  # real, or the manipulation (or folder) the dataset files a fake under


@dataclass
class Listing:
    """What an adapter found: the labelled videos on disk, those the labels name but the disk lacks, and the
    files the labels came from."""
    videos: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    def add(self, video):
        (self.videos if video.path.is_file() else self.missing).append(video)


@dataclass(frozen=True)
class Options:
    """What some adapters need besides their root: FF++'s root (DeeperForensics' real videos), its splits
    (ffpp, faceshifter) and the FF++ quality to read (auto: the first of FFPP_QUALITIES present)."""
    ffpp_root: Path | None = None
    splits: Path | None = None
    ffpp_quality: str = "auto"


def _expect(root, name, expected, problem, hint=None):
    lines = "\n".join(f"  {root / e}" for e in expected)
    hint = hint or f"check --dataset {name}=ROOT (the folder that holds these)"
    return LayoutError(f"{root}: not a {name} root ({problem}); expected:\n{lines}\n{hint}")


def _need(root, name, expected, required):
    """A LayoutError unless the root and each required entry exist."""
    root = Path(root)
    if not root.is_dir():
        raise _expect(root, name, expected, "folder not found")
    lost = [r for r in required if not (root / r).exists()]
    if lost:
        raise _expect(root, name, expected, f"no {', '.join(lost)}")
    return root


def _bad(path, line, problem, expected):
    return ValueError(f"{path}: line {line}: {problem}; expected {expected}. Is this the dataset's own file?")


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); is this the dataset's own file?") from None


# ----------------------------------------------------------------------------- Celeb-DF

CELEBDF_FILES = ("List_of_testing_videos.txt", "Celeb-real/", "Celeb-synthesis/", "YouTube-real/")


def celebdf(root, options=None, name="celebdf"):
    """Celeb-DF (v2, and v1 in the same layout): the videos of List_of_testing_videos.txt, lines '<label>
    <folder>/<file>.mp4' under Celeb-real/, YouTube-real/ and Celeb-synthesis/. That list calls a real video 1
    and a synthesised one 0; here 1 = fake, so the label read is 1 minus the list's."""
    root = _need(root, name, CELEBDF_FILES, CELEBDF_FILES[:1])
    listing = Listing(sources=[root / CELEBDF_FILES[0]])
    for number, line in enumerate(_lines(listing.sources[0]), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise _bad(listing.sources[0], number, f"{line.strip()!r}",
                       "'1 Celeb-real/id0_0000.mp4' (1 = real, 0 = synthesised)")
        folder = parts[1].split("/")[0]
        listing.add(Video(parts[1], root / parts[1], 1 - int(parts[0]), ffpp.REAL if parts[0] == "1" else folder))
    return listing


def celebdf_v1(root, options=None):
    return celebdf(root, options, name="celebdf-v1")


def _lines(path):
    try:
        return Path(path).read_text().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e}); is this the dataset's own file?") from None


# ----------------------------------------------------------------------------- DFDC and its preview

DFDC_FILES = ("labels.csv and videos/ (the public test set)", "or metadata.json (one training part, e.g. "
              "dfdc_train_part_0/)", "or dfdc_train_part_*/metadata.json (several parts)")
DFDC_LABELS = {"REAL": 0, "FAKE": 1}


def dfdc(root, options=None):
    """DFDC: the public test set (labels.csv with columns filename and label, 1 = fake; the videos in videos/
    or beside it), a training part (metadata.json: {file: {"label": "REAL" or "FAKE", ...}} beside its
    videos), or a folder of training parts, each with its metadata.json."""
    root = _need(root, "dfdc", DFDC_FILES, ())
    if (root / "labels.csv").is_file():
        return _dfdc_test(root)
    parts = [root] if (root / "metadata.json").is_file() else sorted(p.parent for p in root.glob("*/metadata.json"))
    if not parts:
        raise _expect(root, "dfdc", DFDC_FILES, "no labels.csv or metadata.json")
    listing = Listing()
    for part in parts:
        path = part / "metadata.json"
        listing.sources.append(path)
        metadata = _read_json(path)
        if not isinstance(metadata, dict):
            raise ValueError(f"{path}: expected a JSON object {{file: {{\"label\": \"REAL\" or \"FAKE\", ...}}}}")
        for file, entry in sorted(metadata.items()):
            label = entry.get("label") if isinstance(entry, dict) else None
            if label not in DFDC_LABELS:
                raise ValueError(f"{path}: {file}: label {label!r}; expected \"REAL\" or \"FAKE\"")
            name = str((part / file).relative_to(root))
            listing.add(Video(name, part / file, DFDC_LABELS[label], FAKE if DFDC_LABELS[label] else ffpp.REAL))
    return listing


def _dfdc_test(root):
    path = root / "labels.csv"
    listing = Listing(sources=[path])
    with open(path, newline="") as f:
        try:
            rows = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error) as e:
            raise ValueError(f"{path}: not a CSV text file ({e}); is this the dataset's own file?") from None
    if not rows or not {"filename", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected the columns filename and label (1 = fake)")
    videos = root / "videos" if (root / "videos").is_dir() else root
    for number, row in enumerate(rows, start=2):
        if row["label"] not in ("0", "1") or not row["filename"]:
            raise _bad(path, number, f"filename {row['filename']!r}, label {row['label']!r}", "a file name and 0 or 1")
        label = int(row["label"])
        listing.add(Video(str((videos / row["filename"]).relative_to(root)), videos / row["filename"], label,
                          FAKE if label else ffpp.REAL))
    return listing


DFDCP_FILES = ("dataset.json", "original_videos/", "method_A/", "method_B/")
DFDCP_LABELS = {"real": 0, "fake": 1}


def dfdcp(root, options=None):
    """The DFDC preview: dataset.json's videos of set "test", {path under the root: {"label": "real" or
    "fake", "set": "train" or "test", ...}}; a fake's method is the folder it lies in (method_A, method_B)."""
    root = _need(root, "dfdcp", DFDCP_FILES, DFDCP_FILES[:1])
    path = root / DFDCP_FILES[0]
    listing = Listing(sources=[path])
    entries = _read_json(path)
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected a JSON object {{path: {{\"label\": ..., \"set\": ...}}}}")
    for name, entry in sorted(entries.items()):
        if not isinstance(entry, dict) or entry.get("label") not in DFDCP_LABELS or "set" not in entry:
            raise ValueError(f"{path}: {name}: {entry!r}; expected {{\"label\": \"real\" or \"fake\", \"set\": ...}}")
        if entry["set"] == "test":
            label = DFDCP_LABELS[entry["label"]]
            listing.add(Video(name, root / name, label, name.split("/")[0] if label else ffpp.REAL))
    return listing


# ----------------------------------------------------------------------------- FF++ and the sets built on it

def ffpp_quality(root, name, folders, requested="auto", hint=None):
    """The FF++ quality to read: the requested one, or (auto) the first of FFPP_QUALITIES whose folders (each
    with {q} for the quality) all exist; a LayoutError listing them when none has."""
    root = Path(root)
    tried = FFPP_QUALITIES if requested == "auto" else (requested,)
    for quality in tried:
        if all((root / f.format(q=quality)).is_dir() for f in folders):
            return quality
    expected = [f.format(q="|".join(tried)) for f in folders]
    raise _expect(root, name, expected, f"no folders at {' or '.join(tried)}" + (
        "" if requested == "auto" else "; --ffpp-quality auto takes whichever is present"), hint)


YOUTUBE = "original_sequences/youtube/{q}/videos/"
ACTORS = "original_sequences/actors/{q}/videos/"


def _manipulated(method):
    return f"manipulated_sequences/{method}/{{q}}/videos/"


def _ffpp_video(root, folder, quality, video, label, method):
    rel = folder.format(q=quality) + f"{ffpp.check_id('video', video)}.mp4"
    return Video(rel, Path(root) / rel, label, method)


def _split_listing(root, name, methods, options):
    """FF++'s test split (--splits) at one quality: the originals and the fakes of the given methods."""
    folders = [YOUTUBE] + [_manipulated(m) for m in methods]
    root = _need(root, name, [f.format(q="c23|c40|raw") for f in folders], ())
    quality = ffpp_quality(root, name, folders, options.ffpp_quality)
    if options.splits is None:
        raise ValueError(f"--dataset {name} reads FF++'s test split: pass --splits DIR (with test.json)")
    pairs = ffpp.read_split(options.splits, "test")
    listing = Listing(sources=[Path(options.splits) / "test.json"])
    for video in ffpp.split_videos(pairs, ffpp.REAL):
        listing.add(_ffpp_video(root, YOUTUBE, quality, video, 0, ffpp.REAL))
    for method in methods:
        for video in ffpp.split_videos(pairs, method):
            listing.add(_ffpp_video(root, _manipulated(method), quality, video, 1, method))
    return listing


def ffpp_test(root, options):
    """FF++ itself: the test split of --splits (test.json), originals and the four methods, at the first of
    c23, c40 and raw present (or --ffpp-quality)."""
    return _split_listing(root, "ffpp", ffpp.METHODS, options)


def faceshifter(root, options):
    """FF++'s FaceShifter set (manipulated_sequences/FaceShifter/), on FF++'s test split, with its originals."""
    return _split_listing(root, "faceshifter", ("FaceShifter",), options)


def dfd(root, options):
    """FF++'s DeepFakeDetection set: every video of manipulated_sequences/DeepFakeDetection/ (fake) and of
    original_sequences/actors/ (real); it has no split."""
    folders = [ACTORS, _manipulated("DeepFakeDetection")]
    root = _need(root, "dfd", [f.format(q="c23|c40|raw") for f in folders], ())
    quality = ffpp_quality(root, "dfd", folders, options.ffpp_quality)
    listing = Listing(sources=[root / f.format(q=quality) for f in folders])
    for folder, label in zip(folders, (0, 1)):
        for path in sorted((root / folder.format(q=quality)).glob("*.mp4")):
            listing.add(Video(str(path.relative_to(root)), path, label, "DeepFakeDetection" if label else ffpp.REAL))
    return listing


DEEPER_FILES = ("lists/splits/test.txt", "manipulated_videos/end_to_end/")


def deeperforensics(root, options):
    """DeeperForensics-1.0: the fakes of lists/splits/test.txt (one file name a line, e.g. 001_W006.mp4) in
    manipulated_videos/end_to_end/; its real videos are the FF++ originals the fakes were made on (the NNN of
    NNN_<actor>), read from --ffpp-root."""
    root = _need(root, "deeperforensics", DEEPER_FILES, DEEPER_FILES)
    path = root / DEEPER_FILES[0]
    listing = Listing(sources=[path])
    targets = set()
    for number, line in enumerate(_lines(path), start=1):
        file = line.strip().split("/")[-1]
        if not file:
            continue
        stem = file.removesuffix(".mp4")
        target = stem.split("_")[0]
        if "_" not in stem or not ffpp.is_plain_name(stem):
            raise _bad(path, number, repr(line.strip()), "a file name like 001_W006.mp4 (FF++ target _ actor)")
        targets.add(target)
        rel = f"{DEEPER_FILES[1]}{stem}.mp4"
        listing.add(Video(rel, root / rel, 1, "end_to_end"))
    if options.ffpp_root is None or not Path(options.ffpp_root).is_dir():
        raise LayoutError(f"--dataset deeperforensics takes its real videos from FF++'s originals: --ffpp-root "
                          f"{options.ffpp_root} not found; pass --ffpp-root DIR (holding {YOUTUBE.format(q='c23')})")
    quality = ffpp_quality(options.ffpp_root, "FF++", [YOUTUBE], options.ffpp_quality,
                           hint="check --ffpp-root: deeperforensics takes its real videos from FF++'s originals")
    for target in sorted(targets):
        listing.add(_ffpp_video(options.ffpp_root, YOUTUBE, quality, target, 0, ffpp.REAL))
    return listing


# ----------------------------------------------------------------------------- anything else

FOLDER_FILES = ("real/", "fake/")


def folder(root, options=None):
    """ROOT/real/** and ROOT/fake/**: every video (by suffix) under each, at any depth."""
    root = _need(root, "folder", FOLDER_FILES, FOLDER_FILES)
    listing = Listing(sources=[root / f for f in FOLDER_FILES])
    for sub, label in zip(FOLDER_FILES, (0, 1)):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("."):
                listing.add(Video(str(path.relative_to(root)), path, label, FAKE if label else ffpp.REAL))
    return listing


ADAPTERS = {"celebdf": celebdf, "celebdf-v1": celebdf_v1, "dfdc": dfdc, "dfdcp": dfdcp,
            "deeperforensics": deeperforensics, "faceshifter": faceshifter, "dfd": dfd, "ffpp": ffpp_test,
            "folder": folder}


def read_dataset(name, root, options=Options()):
    """The Listing of one dataset by adapter name."""
    if name not in ADAPTERS:
        raise ValueError(f"--dataset {name}: no such adapter; choose one of {', '.join(ADAPTERS)}")
    return ADAPTERS[name](Path(root), options)
