"""A small data set in FaceForensics++'s on-disk layout, so the whole pipeline runs in minutes without FF++.

FF++ is only given out after a request form. This module synthesises originals and the four manipulations
from faces that need no download (skimage's astronaut portrait) or from the user's own face videos or photos,
and stores them as FF++ did: a lossless render, then libx264 at -crf 23 (c23) and -crf 40 (c40) at the
source frame rate, binary mask videos, and split files of [id1, id2] pairs.

Each manipulation is a stand-in for the FF++ method whose name it takes, built on dlib's 68 landmarks.
Every fake equals its target outside its mask and blends into it at the boundary, so a detector must find
the forgery itself: there is no patch, border or colour cast outside the face that it could learn instead.
"""
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from . import ffpp
from .cli import default_workers
from .faces import dlib_model_path
from .fileio import write_json
from .video import iter_frames, reencode, video_info, write_video

FPS = 25.0
QUALITIES = {"c23": 23, "c40": 40}
RAW = "raw"  # FF++'s name for the uncompressed (c0) renders, written only on request
FACE_FRACTION = 0.42  # landmark box side / frame side: a close-up like most FF++ videos
BOTTLENECK = 48  # side of the Deepfakes face at its autoencoder's bottleneck: low enough to blur visibly
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MIN_SOURCE_FACE = 64  # px in the source: smaller faces would be upscaled into a blur
SPLIT_SHARES = {"val": 1 / 8, "test": 1 / 4}  # of the pairs, at least one each; train takes the rest

EYES = list(range(36, 48))
MOUTH = list(range(48, 68))
LOWER_JAW = list(range(5, 12))
FACE_OUTLINE = list(range(0, 27))

_DLIB = {}
_CLIPS = {}  # the originals, sent to each fake worker once instead of with every task


@dataclass
class Clip:
    frames: list  # BGR uint8, size x size
    landmarks: np.ndarray  # (frames, 68, 2) float32
    fps: float
    origin: str  # where the clip came from, for the build log


# ----------------------------------------------------------------------------------------- dlib

def _dlib():
    if not _DLIB:
        import dlib

        _DLIB["detector"] = dlib.get_frontal_face_detector()
        _DLIB["predictor"] = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))
        _DLIB["rectangle"] = dlib.rectangle
    return _DLIB


def detect_faces(image):
    """dlib's frontal faces, largest first; upsampled once only when none are found, as that costs 4x."""
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    for upsample in (0, 1):
        faces = list(_dlib()["detector"](rgb, upsample))
        if faces:
            return sorted(faces, key=lambda r: -r.area())
    return []


def _landmarks(image, rect):
    shape = _dlib()["predictor"](cv2.cvtColor(image, cv2.COLOR_BGR2RGB), rect)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def _rect_around(points):
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    return _dlib()["rectangle"](int(x0), int(y0), int(x1), int(y1))


# ------------------------------------------------------------------------------------ geometry

def _face_size(points):
    return float(np.ptp(points, axis=0).max())


def _face_centre(points):
    return (points.min(0) + points.max(0)) / 2


def _apply(m, points):
    return points @ m[:, :2].T + m[:, 2]


def _similarity(src, dst):
    """Least-squares rotation, scale and shift taking src points onto dst (Umeyama, no reflection)."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / (s ** 2).sum(1).mean()
    lin = scale * r
    return np.hstack([lin, (md - lin @ ms)[:, None]]).astype(np.float32)


def _ring(centre, radius, n=16):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return (centre + radius * np.stack([np.cos(a), np.sin(a)], 1)).astype(np.float32)


def _warp_mesh(image, src, dst):
    """Piecewise-affine warp that moves the content at src points to dst points (triangulated on dst).

    Pixels outside the mesh keep their place, so a mesh bounded by fixed points changes nothing outside it.
    """
    h, w = image.shape[:2]
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    tris = Delaunay(dst).simplices
    ids = np.zeros((h, w), np.int32)
    for k, tri in enumerate(tris):
        cv2.fillConvexPoly(ids, np.round(dst[tri]).astype(np.int32), k + 1)
    homog = np.concatenate([dst[tris], np.ones((len(tris), 3, 1))], 2)  # (T, 3, 3)
    affine = np.linalg.pinv(homog) @ src[tris]  # (T, 3, 2); pinv copes with collapsed (closed-mouth) triangles
    map_x, map_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    ys, xs = np.nonzero(ids)
    a = affine[ids[ys, xs] - 1]
    map_x[ys, xs] = xs * a[:, 0, 0] + ys * a[:, 1, 0] + a[:, 2, 0]
    map_y[ys, xs] = xs * a[:, 0, 1] + ys * a[:, 1, 1] + a[:, 2, 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# --------------------------------------------------------------------------------- blending

def _hull_mask(shape, points):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    return mask


def _feathered(hard, radius):
    """Soft blend weight whose support stays inside the hard mask: erode, then blur by the same radius."""
    r = max(1, int(round(radius)))
    inner = cv2.erode(hard, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    return cv2.GaussianBlur(inner.astype(np.float32) / 255, (2 * r + 1, 2 * r + 1), r / 2)


def _blend(target, content, weight):
    """Mix content into target by weight; where weight is 0 the result is the target, bit for bit."""
    w = weight[..., None]
    mixed = np.rint(target * (1 - w) + content.astype(np.float32) * w).astype(np.uint8)
    return np.where(w > 0, mixed, target)


def _match_colour(content, target, region, strength=1.0):
    """Reinhard colour transfer in Lab: content's statistics in region moved toward target's."""
    m = region > 0
    c = cv2.cvtColor(content, cv2.COLOR_BGR2LAB).astype(np.float32)
    t = cv2.cvtColor(target, cv2.COLOR_BGR2LAB).astype(np.float32)
    cm, cs = c[m].mean(0), c[m].std(0) + 1e-3
    tm, ts = t[m].mean(0), t[m].std(0) + 1e-3
    moved = (c - cm) * (ts / cs) + tm
    out = c + strength * (moved - c)
    return cv2.cvtColor(np.clip(np.rint(out), 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def _shift_lab(image, shift, gain=1.0):
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab[..., 0] *= gain
    lab += np.asarray(shift, np.float32)
    return cv2.cvtColor(np.clip(np.rint(lab), 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def _low_res(image, factor):
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------- manipulations

def _expressions(landmarks):
    """Each frame's landmarks with head pose removed, minus the clip's mean, in units of face size."""
    ref = landmarks.mean(0)
    aligned = np.stack([_apply(_similarity(l, ref), l) for l in landmarks])
    return (aligned - aligned.mean(0)) / _face_size(ref), ref


def _reenacted(target, source, points):
    """Target landmarks per frame with the given points moved as the source's expression moves them."""
    expr_t, ref_t = _expressions(target.landmarks)
    expr_s, _ = _expressions(source.landmarks)
    size = _face_size(ref_t)
    out = target.landmarks.copy()
    for t in range(len(out)):
        lin = _similarity(ref_t, target.landmarks[t])[:, :2]
        delta = (expr_s[t % len(expr_s)] - expr_t[t]) * size
        out[t, points] += delta[points] @ lin.T
    return out


def deepfakes(target, source, rng):
    """Deepfakes stand-in: the source face similarity-aligned onto the target, squeezed through a
    BOTTLENECK-pixel face like an autoencoder's output, colour-matched and blended with a wide feather."""
    frames, masks = [], []
    for t, (frame, lt) in enumerate(zip(target.frames, target.landmarks)):
        s = t % len(source.frames)
        h, w = frame.shape[:2]
        aligned = cv2.warpAffine(source.frames[s], _similarity(source.landmarks[s], lt), (w, h),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        side = int(_face_size(lt) * 1.2)
        cx, cy = _face_centre(lt).astype(int)
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        box = aligned[y0:y0 + side, x0:x0 + side]
        aligned[y0:y0 + side, x0:x0 + side] = _low_res(box, box.shape[0] / BOTTLENECK)
        hull = _hull_mask(frame.shape, lt[FACE_OUTLINE])
        content = _match_colour(aligned, frame, hull)
        weight = _feathered(hull, 0.1 * _face_size(lt))
        frames.append(_blend(frame, content, weight))
        masks.append(weight > 0)
    return frames, masks


def faceswap(target, source, rng):
    """FaceSwap stand-in: the source face warped piecewise-affinely onto the target's landmarks (FaceSwap
    fits a 3D model to them), colour-corrected most of the way and blended with a narrow feather."""
    strength = rng.uniform(0.5, 0.8)
    frames, masks = [], []
    for t, (frame, lt) in enumerate(zip(target.frames, target.landmarks)):
        s = t % len(source.frames)
        warped = _warp_mesh(source.frames[s], source.landmarks[s], lt)
        hull = _hull_mask(frame.shape, lt)
        content = _match_colour(warped, frame, hull, strength)
        weight = _feathered(hull, 0.04 * _face_size(lt))
        frames.append(_blend(frame, content, weight))
        masks.append(weight > 0)
    return frames, masks


def face2face(target, source, rng):
    """Face2Face stand-in: the target's own face reenacted; mouth, eyes and chin are warped piecewise-affinely
    to follow the source's expression, and the face is re-rendered smoother with a slight shading change,
    as Face2Face renders a textured 3D model."""
    moved = _reenacted(target, source, MOUTH + EYES + LOWER_JAW)
    shading = rng.uniform(-6, 6, 3)
    frames, masks = [], []
    for frame, lt, ln in zip(target.frames, target.landmarks, moved):
        size = _face_size(lt)
        ring = _ring(_face_centre(lt), 0.85 * size)
        warped = _warp_mesh(frame, np.vstack([lt, ring]), np.vstack([ln, ring]))
        content = _shift_lab(_low_res(warped, 2.5), shading)
        hard = cv2.dilate(_hull_mask(frame.shape, np.vstack([lt, ln])), np.ones((3, 3), np.uint8),
                          iterations=max(1, int(0.04 * size)))
        weight = _feathered(hard, 0.08 * size)
        frames.append(_blend(frame, content, weight))
        masks.append(weight > 0)
    return frames, masks


def neural_textures(target, source, rng):
    """NeuralTextures stand-in: only the mouth, driven by the source's mouth motion and re-rendered with a
    changed texture (lower resolution, shifted lip colour, a faint render grain). The mask is the mouth box,
    as FF++'s NeuralTextures masks are boxes; the blend weight is an ellipse inside it."""
    moved = _reenacted(target, source, MOUTH)
    tint = (0, rng.uniform(4, 10), rng.uniform(-4, 4))
    frames, masks = [], []
    for frame, lt, ln in zip(target.frames, target.landmarks, moved):
        h, w = frame.shape[:2]
        pts = np.vstack([lt[MOUTH], ln[MOUTH]])
        mw = np.ptp(pts[:, 0])
        x0, y0 = np.floor(pts.min(0) - [0.3 * mw, 0.35 * mw]).astype(int)
        x1, y1 = np.ceil(pts.max(0) + [0.3 * mw, 0.3 * mw]).astype(int)
        x0, y0, x1, y1 = int(max(0, x0)), int(max(0, y0)), int(min(w, x1)), int(min(h, y1))
        border = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [(x0 + x1) / 2, y0], [(x0 + x1) / 2, y1],
                           [x0, (y0 + y1) / 2], [x1, (y0 + y1) / 2]], np.float32)
        warped = _warp_mesh(frame, np.vstack([lt[MOUTH], border]), np.vstack([ln[MOUTH], border]))
        grain = rng.normal(0, 3.0, ((y1 - y0 + 1) // 2, (x1 - x0 + 1) // 2, 1)).repeat(2, 0).repeat(2, 1)
        mouth = _shift_lab(_low_res(warped[y0:y1, x0:x1], 3.0), tint).astype(np.float32)
        content = warped.copy()
        content[y0:y1, x0:x1] = np.clip(np.rint(mouth + grain[:y1 - y0, :x1 - x0]), 0, 255).astype(np.uint8)
        box = np.zeros((h, w), np.uint8)
        box[y0:y1, x0:x1] = 255
        ellipse = np.zeros((h, w), np.uint8)
        cv2.ellipse(ellipse, (((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0 - 2, y1 - y0 - 2), 0), 255, -1)
        weight = _feathered(ellipse & box, 0.15 * min(x1 - x0, y1 - y0))
        frames.append(_blend(frame, content, weight))
        masks.append(box > 0)
    return frames, masks


MANIPULATIONS = {"Deepfakes": deepfakes, "Face2Face": face2face, "FaceSwap": faceswap,
                 "NeuralTextures": neural_textures}
assert tuple(MANIPULATIONS) == ffpp.METHODS


# ---------------------------------------------------------------------------- still sources

def _canvas(image, points, size, side):
    """The image resampled so the face has the demo's scale, centred on a side x side canvas."""
    scale = FACE_FRACTION * size / _face_size(points)
    m = np.float32([[scale, 0, 0], [0, scale, 0]])
    m[:, 2] = side / 2 - scale * _face_centre(points)
    canvas = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    return canvas, _apply(m, points)


def _expression(points, mouth, blink, brow):
    """Landmarks with the mouth opened (jaw following), the eyes closed by blink and the brows raised."""
    out = points.copy()
    down = points[8] - points[17:27].mean(0)
    height = np.linalg.norm(down)
    down /= height
    open_ = 0.1 * height * mouth
    for idx, share in (([55, 56, 57, 58, 59, 65, 66, 67], 1.0), ([48, 54, 60, 64], 0.35),
                       ([7, 8, 9], 0.8), ([6, 10], 0.6), ([5, 11], 0.3), ([49, 50, 51, 52, 53, 61, 62, 63], -0.1)):
        out[idx] += share * open_ * down
    for upper, lower in (([37, 38], [41, 40]), ([43, 44], [47, 46])):
        out[upper] += 0.8 * blink * (points[lower] - points[upper])
    out[17:27] -= 0.04 * height * brow * down
    return out


def _animate(canvas, points, frames, size, rng, alpha=None, background=None):
    """A talking-head clip from one still: smooth head motion, speech-like mouth motion, blinks and brows.

    With alpha (the person's matte) the head moves over a fixed background; without, the whole picture moves.
    """
    t = np.arange(frames) / FPS

    def wave(amp, lo, hi):
        return amp * np.sin(2 * np.pi * rng.uniform(lo, hi) * t + rng.uniform(0, 2 * np.pi))

    mouth = rng.uniform(0.4, 1.0) * (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(1.5, 3.5) * t + rng.uniform(0, 6.3)))
    blink = np.zeros(frames)
    for start in np.arange(rng.uniform(0, 1.5), t[-1] + 1e-9, rng.uniform(1.5, 3.5)):
        blink = np.maximum(blink, np.clip(1 - np.abs(t - start - 0.1) / 0.1, 0, 1))
    brow = np.abs(wave(rng.uniform(0, 0.6), 0.3, 1.0))
    angle = wave(rng.uniform(1, 5), 0.2, 0.8)
    scale = 1 + wave(rng.uniform(0, 0.03), 0.2, 0.6)
    dx, dy = wave(rng.uniform(0, 0.03) * size, 0.2, 0.7), wave(rng.uniform(0, 0.02) * size, 0.2, 0.7)

    centre = _face_centre(points)
    ring = _ring(centre, 0.95 * _face_size(points))
    clip, marks = [], []
    for k in range(frames):
        moved = _expression(points, mouth[k], blink[k], brow[k])
        face = _warp_mesh(canvas, np.vstack([points, ring]), np.vstack([moved, ring]))
        m = cv2.getRotationMatrix2D(tuple(map(float, centre)), float(angle[k]), float(scale[k]))
        m[:, 2] += np.array([size / 2 + dx[k], size * 0.52 + dy[k]]) - centre
        frame = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if alpha is not None:
            a = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR)[..., None]
            frame = np.rint(frame * a + background * (1 - a)).astype(np.uint8)
        clip.append(frame)
        marks.append(_apply(m, moved))
    return clip, np.stack(marks).astype(np.float32)


def _astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def _person_matte(shape, points):
    """Soft head-and-shoulders matte of a frontal portrait, from its landmarks, for a new background."""
    c = _face_centre(points)
    fw, fh = np.ptp(points, axis=0)
    hair = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(hair, (int(c[0]), int(c[1] - 0.35 * fh)), (int(0.82 * fw), int(0.98 * fh)), 0, 0, 360, 255, -1)
    hair[int(c[1] - 0.1 * fh):] = 0
    body = np.array([[c[0] - 0.3 * fw, c[1]], [c[0] + 0.3 * fw, c[1]], [c[0] + 0.3 * fw, c[1] + 0.75 * fh],
                     [c[0] + 1.3 * fw, c[1] + 1.05 * fh], [c[0] + 2.5 * fw, c[1] + 4 * fh],
                     [c[0] - 2.5 * fw, c[1] + 4 * fh], [c[0] - 1.3 * fw, c[1] + 1.05 * fh],
                     [c[0] - 0.3 * fw, c[1] + 0.75 * fh]], np.int32)
    matte = hair | _hull_mask(shape, points)
    cv2.fillPoly(matte, [body], 255)
    r = int(0.06 * fw) * 2 + 1
    return cv2.GaussianBlur(matte.astype(np.float32) / 255, (r, r), 0)


_BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "hubble_deep_field", "moon", "coins",
                "immunohistochemistry", "retina")


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
    image = _shift_lab(image, rng.uniform([-25, -15, -15], [25, 15, 15]), gain=rng.uniform(0.7, 1.1))
    sigma = rng.uniform(0.5, 3)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _reshape(points, rng):
    """New face proportions: jaw width, chin length, eye spacing and size, nose and mouth width, brow height."""
    out = points.copy()
    c = _face_centre(points)
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


def _find_landmarks(image, what):
    faces = detect_faces(image)
    if not faces:
        raise ValueError(f"{what}: dlib finds no face")
    return _landmarks(image, faces[0])


def _identity_clip(rng, frames, size):
    """One demo identity from the astronaut portrait: reshaped face, skin tone, mirror, new background."""
    image = _astronaut()
    side = int(1.6 * size) // 2 * 2
    canvas, points = _canvas(image, _find_landmarks(image, "skimage astronaut"), size, side)
    matte = _person_matte(canvas.shape, points)
    ring = _ring(_face_centre(points), 0.95 * _face_size(points))
    canvas = _warp_mesh(canvas, np.vstack([points, ring]), np.vstack([_reshape(points, rng), ring]))
    canvas = _shift_lab(canvas, rng.uniform([-10, -6, -10], [10, 8, 12]), gain=rng.uniform(0.8, 1.1))
    if rng.random() < 0.5:
        canvas, matte = canvas[:, ::-1].copy(), matte[:, ::-1].copy()
    points = _find_landmarks(canvas, "demo identity")
    offset = (side - size) // 2
    background = _background(rng, side)[offset:offset + size, offset:offset + size]
    return _animate(canvas, points, frames, size, rng, matte, background)


# ---------------------------------------------------------------------------- user sources

def _read_image(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: OpenCV cannot read this image")
    return image


def _probe(path):
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
    faces = detect_faces(cv2.resize(first, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    if not faces:
        return "dlib finds no face in its first frame"
    if len(faces) > 1 and faces[1].area() > 0.3 * faces[0].area():
        return f"{len(faces)} faces in its first frame (the demo needs one person)"
    if faces[0].width() / scale < MIN_SOURCE_FACE:
        return f"face only {faces[0].width() / scale:.0f} px wide (need {MIN_SOURCE_FACE})"
    return count, (fps if fps and fps > 0 else FPS)


def _video_clip(path, start, frames, size, flip):
    """A fixed square crop around the face of one source video, landmarks found in every frame."""
    raw = [f for i, f in iter_frames(path, max_frames=start + frames) if i >= start]
    h, w = raw[0].shape[:2]
    points = _find_landmarks(raw[0], str(path))
    side = int(min(_face_size(points) / FACE_FRACTION, h, w))
    cx, cy = _face_centre(points)
    x0 = int(np.clip(cx - side / 2, 0, w - side))
    y0 = int(np.clip(cy - side / 2, 0, h - side))
    clip, marks = [], []
    rect = None
    for frame in raw:
        crop = cv2.resize(frame[y0:y0 + side, x0:x0 + side], (size, size),
                          interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        if flip:
            crop = np.ascontiguousarray(crop[:, ::-1])
        faces = detect_faces(crop)
        if faces:
            rect = faces[0]
        elif rect is None:  # the first crop's face missed: start from where the full frame had it
            pts = (points - [x0, y0]) * size / side
            rect = _rect_around(np.c_[size - 1 - pts[:, 0], pts[:, 1]] if flip else pts)
        marks.append(_landmarks(crop, rect))
        if not faces:  # track: the next frame starts from this frame's landmarks
            rect = _rect_around(marks[-1])
        clip.append(crop)
    return clip, np.stack(marks)


def _source_files(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--source {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTS | IMAGE_EXTS)
    if not files:
        raise ValueError(f"--source {folder}: no video ({', '.join(sorted(VIDEO_EXTS))}) "
                         f"or photo ({', '.join(sorted(IMAGE_EXTS))}) in it")
    return files


# ----------------------------------------------------------------------------------- workers

def _rng(seed, *keys):
    return np.random.default_rng([seed, *keys])


def _encode(frames, out, method, name, fps, raw, scratch):
    """Lossless render first, then c23 and c40 from it, as FF++ made its compressed sets."""
    master = ffpp.video_path(out, method, RAW, name) if raw else Path(scratch) / f"{method}_{name}.mp4"
    write_video(frames, master, fps=fps, crf=0)
    for quality, crf in QUALITIES.items():
        reencode(master, ffpp.video_path(out, method, quality, name), crf)
    if not raw:
        master.unlink()


def _make_original(task):
    index, plan, frames, size, seed, out, raw, scratch = task
    rng = _rng(seed, 1, index)
    if plan is None:
        clip, marks = _identity_clip(rng, frames, size)
        fps, origin = FPS, "skimage astronaut, identity %d" % index
    else:
        path, start, flip, fps = plan
        if path.suffix.lower() in IMAGE_EXTS:
            image = _read_image(path)
            if flip:
                image = np.ascontiguousarray(image[:, ::-1])
            side = int(1.6 * size) // 2 * 2
            canvas, points = _canvas(image, _find_landmarks(image, str(path)), size, side)
            clip, marks = _animate(canvas, _find_landmarks(canvas, str(path)), frames, size, rng)
        else:
            clip, marks = _video_clip(path, start, frames, size, flip)
        origin = f"{path.name}" + (f" from frame {start}" if start else "") + (" mirrored" if flip else "")
    name = f"{index:03d}"
    _encode(clip, out, ffpp.REAL, name, fps, raw, scratch)
    return name, Clip(clip, marks, fps, origin)


def _make_fake(task):
    method, target, source, seed, out, raw, scratch = task
    tgt, src = _CLIPS[target], _CLIPS[source]
    rng = _rng(seed, 2, ffpp.METHODS.index(method), int(target), int(source))
    frames, masks = MANIPULATIONS[method](tgt, src, rng)
    name = f"{target}_{source}"
    if not all(m.any() for m in masks):
        raise RuntimeError(f"{method} {name}: empty mask in a frame (face lost?)")
    _encode(frames, out, method, name, tgt.fps, raw, scratch)
    write_video([m.astype(np.uint8) * 255 for m in masks], ffpp.video_path(out, method, ffpp.MASKS, name),
                fps=tgt.fps, crf=0, gray=True)
    return name


def _init_worker(clips):
    cv2.setNumThreads(1)  # the pool already uses every core
    _CLIPS.update(clips)


def _map(fn, tasks, workers, clips=None):
    """fn over tasks in worker processes. Spawned, not forked: a fork of a process whose OpenCV thread
    pool is running (any caller that used cv2 before) can deadlock in the child."""
    if workers <= 1:
        return [fn(t) for t in tasks]
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker,
                                                   initargs=(clips or {},)) as pool:
        return pool.map(fn, tasks, chunksize=1)


# ------------------------------------------------------------------------------------- build

def split_sizes(n_pairs, val_pairs=None, test_pairs=None):
    """(val, test) pair counts: as given, else SPLIT_SHARES of the pairs (at least one each); train keeps
    the rest, at least one."""
    n_val, n_test = (max(1, round(n_pairs * SPLIT_SHARES[s])) if n is None else n
                     for s, n in (("val", val_pairs), ("test", test_pairs)))
    if min(n_val, n_test) < 1 or n_val + n_test >= n_pairs:
        raise ValueError(f"{n_val} val and {n_test} test pairs out of {n_pairs}: each split needs at least "
                         "one pair; lower --val-pairs/--test-pairs or raise --videos")
    return n_val, n_test


def split_pairs(pairs, seed, val_pairs=None, test_pairs=None):
    """FF++-style splits: pairs shuffled by seed, split_sizes of them to val and test, the rest to train."""
    order = [pairs[i] for i in _rng(seed, 3).permutation(len(pairs))]
    n_val, n_test = split_sizes(len(pairs), val_pairs, test_pairs)
    chosen = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {s: sorted(chosen[s]) for s in ffpp.SPLITS}


def _plan(source, videos, frames, workers, log):
    """Which source file (start frame, mirrored, fps) each original comes from; None = built-in identity."""
    if source is None:
        return [None] * videos
    files = _source_files(source)
    probes = _map(_probe, files, workers)
    usable = [(p, r) for p, r in zip(files, probes) if not isinstance(r, str)]
    for path, reason in zip(files, probes):
        if isinstance(reason, str):
            log(f"skipping {path}: {reason}")
    if not usable:
        raise ValueError(f"--source {source}: no usable face in any file; "
                         + "; ".join(f"{p.name}: {r}" for p, r in zip(files, probes)))
    plans = []
    for i in range(videos):
        (path, (count, fps)), repeat = usable[i % len(usable)], i // len(usable)
        segments = max(1, count // frames)  # a reused video goes on where its last use ended, then mirrored
        plans.append((path, (repeat % segments) * frames, bool(repeat // segments % 2), fps))
    return plans


def build(out, videos=16, frames=32, size=256, seed=0, source=None, workers=None, raw=False, val_pairs=None,
          test_pairs=None, log=print):
    """Write the demo set under out; returns {'seconds', 'originals', 'fakes', 'pairs'} for the log."""
    if videos < 6 or videos % 2:
        raise ValueError(f"--videos {videos}: need an even number, at least 6 (three pairs: train, val, test)")
    split_sizes(videos // 2, val_pairs, test_pairs)  # fails here, before any work
    if frames < 1:
        raise ValueError(f"--frames {frames}: need at least one frame")
    if size < 64 or size % 2:
        raise ValueError(f"--size {size}: need an even frame side of at least 64 (libx264's yuv420p)")
    workers = default_workers() if workers is None else workers
    start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _dlib()  # fails here, before any work, if the landmark model is missing
    plans = _plan(source, videos, frames, workers, log)
    with tempfile.TemporaryDirectory(dir=out, prefix=".render.") as scratch:
        tasks = [(i, plans[i], frames, size, seed, out, raw, scratch) for i in range(videos)]
        clips = dict(_map(_make_original, tasks, workers))
        for name, clip in clips.items():
            log(f"original {name}: {len(clip.frames)} frames at {clip.fps:g} fps from {clip.origin}")
        ids = sorted(clips)
        pairs = [[ids[i], ids[i + 1]] for i in range(0, videos, 2)]
        tasks = [(m, t, s, seed, out, raw, scratch) for a, b in pairs for m in ffpp.METHODS
                 for t, s in ((a, b), (b, a))]
        _CLIPS.update(clips)  # for workers <= 1, which run in this process
        try:
            fakes = _map(_make_fake, tasks, workers, clips)
        finally:
            _CLIPS.clear()
    for name, split in split_pairs(pairs, seed, val_pairs, test_pairs).items():
        write_json(out / "splits" / f"{name}.json", split)
    seconds = time.time() - start
    log(f"wrote {videos} originals and {len(fakes)} fakes ({len(fakes) // len(ffpp.METHODS)} per method), "
        f"c23, c40, masks{', raw' if raw else ''} and splits/ to {out} in {seconds:.1f} s")
    return {"seconds": seconds, "originals": ids, "fakes": fakes, "pairs": pairs}
