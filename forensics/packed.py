"""Packed crop folders: every crop of a folder in one uint8 array that loaders read through a memory map.

A packed folder face/<Method|real>/<c23|c40|masks>/<video>/ holds ffpp.PACKED_CROPS (crops.npy: N x S x S x 3
uint8 in RGB order, or N x S x S for mask crops) and ffpp.PACKED_FRAMES (frames.npy: the N frame numbers,
int64, ascending). The pixels are exactly those the folder's PNGs would decode to (both are lossless; a
lossy format would erase the compression artefacts this detector learns), stored in the model's RGB order,
so a loader worker only copies a crop out of the page cache: no decoding, no colour conversion. The price is
disk space: S * S * 3 bytes a crop, uncompressed.

A folder is packed when it holds frames.npy. The writer deletes frames.npy before it redoes a folder and
writes it after crops.npy, both atomically, so a frames.npy never sits beside a crops.npy it does not
describe; the folder's .done.json (forensics.manifest) records both files' sizes and SHA-1.
"""
import hashlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from . import ffpp
from .fileio import imread, write_npy

OPEN_PACKS = 256  # memory maps a reader keeps open (each holds a file descriptor)
REDO = "rerun create_faces_from_dlib_locs.py --format packed, which redoes its folder"


class PackError(OSError):
    """A pack that cannot be read; the message names the file, says what is wrong and what to do."""


def is_packed(folder):
    return (Path(folder) / ffpp.PACKED_FRAMES).is_file()


def write_pack(folder, frames, crops):
    """Write the crops (N x S x S x 3 RGB or N x S x S grey, uint8) of the frames (ascending) into folder."""
    frames = np.asarray(frames, np.int64)
    if crops.dtype != np.uint8 or crops.ndim not in (3, 4) or len(crops) != len(frames):
        raise ValueError(f"{folder}: a pack takes N uint8 crops for N frames, got {crops.dtype} {crops.shape} "
                         f"for {len(frames)} frames")
    folder = Path(folder)
    write_npy(folder / ffpp.PACKED_CROPS, crops)
    write_npy(folder / ffpp.PACKED_FRAMES, frames)


def _sha1(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def record(folder):
    """What a finished folder's marker vouches for: each file's byte size and SHA-1."""
    folder = Path(folder)
    return {name: {"bytes": (folder / name).stat().st_size, "sha1": _sha1(folder / name)}
            for name in (ffpp.PACKED_CROPS, ffpp.PACKED_FRAMES)}


def _read_frames(folder):
    """(frame numbers, None) of a packed folder, or (None, why they cannot be used)."""
    try:
        frames = np.load(Path(folder) / ffpp.PACKED_FRAMES, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        return None, f"cannot read the frame numbers of this pack ({e})"
    if frames.ndim != 1 or frames.dtype.kind not in "iu" or np.any(np.diff(frames) <= 0):
        return None, f"not a list of ascending frame numbers ({frames.dtype} {frames.shape})"
    return frames, None


def read_frames(folder):
    """The frame numbers of a packed folder, or a PackError naming frames.npy."""
    frames, why = _read_frames(folder)
    if why:
        raise PackError(f"{Path(folder) / ffpp.PACKED_FRAMES}: {why}; {REDO}")
    return frames


def _header(path):
    """(shape, dtype, fortran order, data offset) of an .npy file, without reading its data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read[version](f)
        return shape, dtype, fortran, f.tell()


def _shape_problem(shape, dtype, fortran, grey, count):
    if dtype != np.uint8 or fortran:
        return f"holds {dtype}{' in Fortran order' if fortran else ''}, not uint8 crops"
    colour = len(shape) == 4 and shape[3] == 3
    if not (colour or len(shape) == 3) or shape[1] != shape[2]:
        return f"holds an array of shape {shape}, not N square crops"
    if grey is not None and colour == grey:
        return f"holds {'colour' if colour else 'grey'} crops of shape {shape}, {'grey' if grey else 'colour'} expected"
    if shape[0] != count:
        return f"holds {shape[0]} crops, its {ffpp.PACKED_FRAMES} lists {count} frames"
    return None


def damage(folder, grey=None, recorded=None, verify=False, side=None):
    """(path, why) of the first thing that makes a packed folder unusable, or None: frame numbers or header
    unreadable, not uint8 crops (grey: mask crops; side: of this size), a size other than its header says
    (truncated) or than its folder's marker recorded (recorded: manifest's record), and with verify a
    content whose SHA-1 is not the recorded one (without a record: a file that cannot be read through)."""
    folder = Path(folder)
    frames_path, crops_path = folder / ffpp.PACKED_FRAMES, folder / ffpp.PACKED_CROPS
    frames, why = _read_frames(folder)
    if why:
        return frames_path, why
    count = len(frames)
    try:
        shape, dtype, fortran, offset = _header(crops_path)
        size = crops_path.stat().st_size
    except FileNotFoundError:
        return crops_path, "missing"
    except (OSError, ValueError, EOFError) as e:
        return crops_path, f"not a readable .npy file ({e})"
    problem = _shape_problem(shape, dtype, fortran, grey, count)
    if problem:
        return crops_path, problem
    if side and shape[1] != side:
        return crops_path, f"holds {shape[1]} px crops, {side} px expected"
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        cut = "truncated" if size < expected else "damaged"
        return crops_path, f"{size} bytes, its header says {expected} ({shape[0]} crops of {shape[1]} px): {cut}"
    for path in (crops_path, frames_path):
        want = recorded.get(path.name) if isinstance(recorded, dict) else None
        want = want if isinstance(want, dict) else {}
        if "bytes" in want and path.stat().st_size != want["bytes"]:
            return path, f"{path.stat().st_size} bytes, its folder's .done.json recorded {want['bytes']}"
        if verify:
            try:
                digest = _sha1(path)
            except OSError as e:
                return path, f"cannot be read through ({e})"
            if "sha1" in want and digest != want["sha1"]:
                return path, "content changed since its folder's .done.json recorded its SHA-1"
    return None


class Packs:
    """Crops out of packed folders for one process. A folder's format, frame numbers and .npy header are read
    once (np.load(mmap_mode='r') would parse the header at every opening: 170 us against 65 for np.memmap at
    the data offset, at 299 px); the last `limit` packs stay mapped (each map holds a file descriptor). Pickled
    (to a loader worker) it travels empty: each process reads and maps the files itself."""

    def __init__(self, limit=OPEN_PACKS):
        self.limit = limit
        self._packed = {}  # folder -> whether it is packed
        self._index = {}  # folder -> ({frame: row}, shape, data offset)
        self._maps = OrderedDict()  # folder -> memmap, least recently used first

    def __reduce__(self):
        return Packs, (self.limit,)

    def is_packed(self, folder):
        """is_packed(folder), looked up once per folder."""
        if folder not in self._packed:
            self._packed[folder] = is_packed(folder)
        return self._packed[folder]

    def _indexed(self, folder):
        if folder not in self._index:
            rows = {int(f): i for i, f in enumerate(read_frames(folder))}
            path = folder / ffpp.PACKED_CROPS
            try:
                shape, dtype, fortran, offset = _header(path)
            except (OSError, ValueError, EOFError) as e:
                raise PackError(f"{path}: cannot read this pack ({e}); {REDO}") from None
            problem = _shape_problem(shape, dtype, fortran, None, len(rows))
            if problem:
                raise PackError(f"{path}: {problem}; {REDO}")
            self._index[folder] = rows, shape, offset
        return self._index[folder]

    def _mapped(self, folder, shape, offset):
        crops = self._maps.pop(folder, None)
        if crops is None:
            path = folder / ffpp.PACKED_CROPS
            try:
                crops = np.memmap(path, np.uint8, "r", offset, shape)
            except (OSError, ValueError) as e:  # a file shorter than its header says: "mmap length is greater..."
                raise PackError(f"{path}: cannot map this pack ({e}); {REDO}") from None
        self._maps[folder] = crops
        if len(self._maps) > self.limit:
            self._maps.popitem(last=False)
        return crops

    def crop(self, folder, frame, grey=False):
        """The crop of frame (S x S x 3 RGB, or S x S for grey) as an array of its own, or a PackError."""
        folder = Path(folder)
        rows, shape, offset = self._indexed(folder)
        if frame not in rows:
            raise PackError(f"{folder / ffpp.PACKED_FRAMES}: frame {frame} is not in this pack; {REDO}")
        if (len(shape) == 3) != grey:
            raise PackError(f"{folder / ffpp.PACKED_CROPS}: holds {'grey' if len(shape) == 3 else 'colour'} crops, "
                            f"{'grey' if grey else 'colour'} expected; {REDO}")
        return np.array(self._mapped(folder, shape, offset)[rows[frame]])


def pack_folder(src, dst, grey):
    """Pack the <frame>.png crops of folder src into folder dst (same pixels, RGB); the number of crops."""
    src = Path(src)
    frames = sorted(int(p.stem) for p in src.glob("*.png") if p.stem.isdigit())
    images = []
    for n in frames:
        image = imread(src / f"{n}.png", cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"{src / f'{n}.png'}: cannot read this crop; rerun create_faces_from_dlib_locs.py")
        images.append(image if grey else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if len({im.shape for im in images}) > 1:
        raise ValueError(f"{src}: crops of different sizes (cut with --image-size 0?): a pack holds one size")
    if images:
        write_pack(dst, frames, np.stack(images))
    return len(images)


def pack_tree(src_root, dst_root, workers=1, videos=None):
    """Write a packed copy of the PNG crop tree src_root into dst_root (each <method>/<quality>/<video>/
    folder with crops; videos: only those of these (method, video) pairs); returns dst_root."""
    src_root, dst_root = Path(src_root), Path(dst_root)
    folders = [v for m in sorted(src_root.iterdir()) if m.is_dir() for q in sorted(m.iterdir()) if q.is_dir()
               for v in sorted(q.iterdir()) if v.is_dir() and (videos is None or (m.name, v.name) in videos)]
    jobs = [(v, dst_root / v.relative_to(src_root), v.parent.name == ffpp.MASKS) for v in folders]
    with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV decodes without the GIL
        list(pool.map(lambda job: pack_folder(*job), jobs))
    return dst_root
