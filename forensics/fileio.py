"""Atomic writes: a crash or a full disk never leaves a half-written file under the final name."""
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


def _atomic(path, write, suffix=""):
    """mkstemp creates 0600 files; give the result the permissions a plain open() would."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=suffix + ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes(path, data: bytes):
    return _atomic(path, lambda f: f.write(data))


def write_json(path, obj, indent=None):
    return write_bytes(path, json.dumps(obj, indent=indent).encode())


def write_image(path, image: np.ndarray):
    """Write an image (BGR or grayscale uint8) in the format its suffix names."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode a {image.shape} image as {path.suffix}")
    return write_bytes(path, buf.tobytes())


def write_torch(path, obj):
    import torch

    return _atomic(path, lambda f: torch.save(obj, f))


def read_json(path, what="JSON file"):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: {what} is not valid JSON ({e}); regenerate it or fix the file") from None
