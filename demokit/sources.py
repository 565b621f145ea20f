"""Where the originals come from: demo identities made from skimage's astronaut portrait (no download), or the
user's --source folder of face videos and photos."""
from pathlib import Path

import cv2
import numpy as np

from forensics.fileio import imread
from forensics.video import iter_frames, video_info

from .animation import FACE_FRACTION, FPS, animate, canvas
from .imaging import face_centre, face_size, hull_mask, ring, shift_lab, warp_mesh
from .landmarks import find_landmarks, landmarks, largest_faces, rect_around

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MIN_SOURCE_FACE = 64  # px in the source: smaller faces would be upscaled into a blur
_BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "hubble_deep_field", "moon", "coins",
                "immunohistochemistry", "retina")


# ------------------------------------------------------------------------------ built-in identities

def _astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def _person_matte(shape, points):
    """Soft head-and-shoulders matte of a frontal portrait, from its landmarks, for a new background."""
    c = face_centre(points)
    fw, fh = np.ptp(points, axis=0)
    hair = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(hair, (int(c[0]), int(c[1] - 0.35 * fh)), (int(0.82 * fw), int(0.98 * fh)), 0, 0, 360, 255, -1)
    hair[int(c[1] - 0.1 * fh):] = 0
    body = np.array([[c[0] - 0.3 * fw, c[1]], [c[0] + 0.3 * fw, c[1]], [c[0] + 0.3 * fw, c[1] + 0.75 * fh],
                     [c[0] + 1.3 * fw, c[1] + 1.05 * fh], [c[0] + 2.5 * fw, c[1] + 4 * fh],
                     [c[0] - 2.5 * fw, c[1] + 4 * fh], [c[0] - 1.3 * fw, c[1] + 1.05 * fh],
                     [c[0] - 0.3 * fw, c[1] + 0.75 * fh]], np.int32)
    matte = hair | hull_mask(shape, points)
    cv2.fillPoly(matte, [body], 255)
    r = int(0.06 * fw) * 2 + 1
    return cv2.GaussianBlur(matte.astype(np.float32) / 255, (r, r), 0)


def _background(rng, side):
    """A backdrop from skimage's sample pictures or a gradient, tinted and defocused like a portrait's."""
    from skimage import data

    choice = rng.integers(len(_BACKGROUNDS) + 2)
    if choice >= len(_BACKGROUNDS):
        ramp = np.linspace(0, 1, side, dtype=np.float32)
        ramp = ramp[None, :] if choice % 2 else ramp[:, None]
        lo, hi = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
        return np.clip(lo + (hi - lo) * ramp[..., None] * np.ones((side, side, 1)), 0, 255).astype(np.uint8)
    image = getattr(data, _BACKGROUNDS[choice])()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, 2)
    image = np.ascontiguousarray(image[..., :3][:, :, ::-1]).astype(np.uint8)
    h, w = image.shape[:2]
    crop = int(min(h, w) * rng.uniform(0.5, 1.0))
    y, x = rng.integers(h - crop + 1), rng.integers(w - crop + 1)
    image = cv2.resize(image[y:y + crop, x:x + crop], (side, side), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = shift_lab(image, rng.uniform([-25, -15, -15], [25, 15, 15]), gain=rng.uniform(0.7, 1.1))
    sigma = rng.uniform(0.5, 3)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _reshape(points, rng):
    """New face proportions: jaw width, chin length, eye spacing and size, nose and mouth width, brow height."""
    out = points.copy()
    c = face_centre(points)
    fw, fh = np.ptp(points, axis=0)
    out[0:17, 0] = c[0] + (out[0:17, 0] - c[0]) * rng.uniform(0.92, 1.08)
    out[5:12, 1] += fh * rng.uniform(-0.04, 0.06) * np.array([0.3, 0.6, 0.9, 1, 0.9, 0.6, 0.3])
    spread = fw * rng.uniform(-0.03, 0.03)
    for eye, brow, sign in ((range(36, 42), range(17, 22), -1), (range(42, 48), range(22, 27), 1)):
        eye, brow = list(eye), list(brow)
        centre = out[eye].mean(0)
        out[eye] = centre + (out[eye] - centre) * rng.uniform(0.85, 1.2)
        out[eye + brow, 0] += sign * spread
    out[17:27, 1] -= fh * rng.uniform(-0.03, 0.04)
    out[31:36, 0] = out[33, 0] + (out[31:36, 0] - out[33, 0]) * rng.uniform(0.85, 1.2)
    mc = out[48:68].mean(0)
    out[48:68] = mc + (out[48:68] - mc) * [rng.uniform(0.88, 1.12), rng.uniform(0.85, 1.25)]
    return out


def identity_clip(rng, frames, size):
    """One demo identity from the astronaut portrait: reshaped face, skin tone, mirror, new background."""
    image = _astronaut()
    still, points = canvas(image, find_landmarks(image, "skimage astronaut"), size)
    side = still.shape[0]
    matte = _person_matte(still.shape, points)
    fixed = ring(face_centre(points), 0.95 * face_size(points))
    still = warp_mesh(still, np.vstack([points, fixed]), np.vstack([_reshape(points, rng), fixed]))
    still = shift_lab(still, rng.uniform([-10, -6, -10], [10, 8, 12]), gain=rng.uniform(0.8, 1.1))
    if rng.random() < 0.5:
        still, matte = still[:, ::-1].copy(), matte[:, ::-1].copy()
    points = find_landmarks(still, "demo identity")
    offset = (side - size) // 2
    background = _background(rng, side)[offset:offset + size, offset:offset + size]
    return animate(still, points, frames, size, rng, matte, background)


# ------------------------------------------------------------------------------------ user sources

def source_files(folder):
    """The videos and photos under folder, sorted; an error that lists the extensions when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--source {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTS | IMAGE_EXTS)
    if not files:
        raise ValueError(f"--source {folder}: no video ({', '.join(sorted(VIDEO_EXTS))}) "
                         f"or photo ({', '.join(sorted(IMAGE_EXTS))}) in it")
    return files


def _read_image(path):
    image = imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: OpenCV cannot read this image")
    return image


def probe(path):
    """(frame count, fps) of a usable source, or the reason it is not usable."""
    try:
        if path.suffix.lower() in IMAGE_EXTS:
            first, count, fps = _read_image(path), 1, FPS
        else:
            count, fps, _, _ = video_info(path)
            first = next(iter_frames(path, max_frames=1))[1]
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported and skipped, not fatal
        return f"cannot be read ({e})"
    scale = min(1.0, 1920 / max(first.shape[:2]))
    faces = largest_faces(cv2.resize(first, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    if not faces:
        return "dlib finds no face in its first frame"
    if len(faces) > 1 and faces[1].area() > 0.3 * faces[0].area():
        return f"{len(faces)} faces in its first frame (the demo needs one person)"
    if faces[0].width() / scale < MIN_SOURCE_FACE:
        return f"face only {faces[0].width() / scale:.0f} px wide (need {MIN_SOURCE_FACE})"
    return count, (fps if fps and fps > 0 else FPS)


def photo_clip(path, frames, size, flip, rng):
    """A photo animated like the built-in identities, but moving as a whole: it has no matte."""
    image = _read_image(path)
    if flip:
        image = np.ascontiguousarray(image[:, ::-1])
    still, points = canvas(image, find_landmarks(image, str(path)), size)
    return animate(still, find_landmarks(still, str(path)), frames, size, rng)


def video_clip(path, start, frames, size, flip):
    """A fixed square crop around the face of one source video, landmarks found in every frame."""
    raw = [f for i, f in iter_frames(path, max_frames=start + frames) if i >= start]
    h, w = raw[0].shape[:2]
    points = find_landmarks(raw[0], str(path))
    side = int(min(face_size(points) / FACE_FRACTION, h, w))
    cx, cy = face_centre(points)
    x0 = int(np.clip(cx - side / 2, 0, w - side))
    y0 = int(np.clip(cy - side / 2, 0, h - side))
    clip, marks = [], []
    rect = None
    for frame in raw:
        crop = cv2.resize(frame[y0:y0 + side, x0:x0 + side], (size, size),
                          interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        if flip:
            crop = np.ascontiguousarray(crop[:, ::-1])
        faces = largest_faces(crop)
        if faces:
            rect = faces[0]
        elif rect is None:  # the first crop's face missed: start from where the full frame had it
            pts = (points - [x0, y0]) * size / side
            rect = rect_around(np.c_[size - 1 - pts[:, 0], pts[:, 1]] if flip else pts)
        marks.append(landmarks(crop, rect))
        if not faces:  # track: the next frame starts from this frame's landmarks
            rect = rect_around(marks[-1])
        clip.append(crop)
    return clip, np.stack(marks)
