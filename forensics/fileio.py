"""Atomic writes: a crash or a full disk never leaves a half-written file under the final name; and reading
images and JSON with errors that name the file."""
import errno
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _atomic(path, write, suffix="", by_name=False):
    """mkstemp creates 0600 files; give the result the permissions a plain open() would. A failed write (a full
    disk, no permission) leaves nothing behind and raises an OSError that names the file. write gets the open
    temporary file, or with by_name its path (for writers that open the file themselves)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=suffix + ".tmp")
        if by_name:
            os.close(fd)
            write(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                write(f)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_error(path, error):
    """The same kind of OSError, saying which file could not be written and what to do."""
    what = error.strerror or str(error)
    hint = ("free some space there" if error.errno == errno.ENOSPC else
            "check the folder's permissions, or pick another --out" if isinstance(error, PermissionError) else
            "check the disk and the folder")
    return type(error)(error.errno, f"{path}: cannot write ({what}); {hint}, then rerun") if error.errno else \
        OSError(f"{path}: cannot write ({what}); {hint}, then rerun")


def write_bytes(path, data: bytes):
    return _atomic(path, lambda f: f.write(data))


def write_by_name(path, export):
    """What export(file_name) writes (an exporter that takes a file name, such as a profiler's trace), atomically."""
    return _atomic(path, export, by_name=True)


def write_json(path, obj, indent=None):
    return write_bytes(path, json.dumps(obj, indent=indent).encode())


def write_image(path, image: np.ndarray):
    """Write an image (BGR or grayscale uint8) in the format its suffix names."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode a {image.shape} image as {path.suffix}")
    return write_bytes(path, buf.tobytes())


def write_npy(path, array: np.ndarray):
    """An array as an .npy file, which np.load can map into memory (mmap_mode)."""
    array = np.ascontiguousarray(array)
    return _atomic(path, lambda f: np.lib.format.write_array(f, array, allow_pickle=False))


def write_torch(path, obj):
    """torch.save through the atomic write. It serialises into memory first and then writes the bytes, so
    that a full disk is the OSError (ENOSPC) of that write, naming the file and the full disk, not the
    RuntimeError of PyTorch's writer ('unexpected pos')."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return _atomic(path, lambda f: f.write(buffer.getbuffer()))


def check_writable(folder, flag="--out"):
    """Create folder if needed and write a scratch file in it: a script finds an unwritable --out before its
    work, not after hours of it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise type(e)(e.errno, f"{folder}: cannot write there ({e.strerror or e}); check the path and its "
                               f"permissions, or pick another {flag}") from None
    return folder


def imread(path, flags=cv2.IMREAD_COLOR):
    """cv2.imread, None for every file it cannot decode: also one whose header claims more pixels than OpenCV
    allows (a 69-byte PNG can claim 50000x50000), where imread raises cv2.error instead of returning None."""
    try:
        return cv2.imread(str(path), flags)
    except cv2.error:
        return None


def read_json(path, what="JSON file"):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: {what} is not valid JSON ({e}); regenerate it or fix the file") from None
