"""Stand-ins for FF++'s four manipulations, built on dlib's 68 landmarks.

Each takes the target and source originals (objects with .frames, BGR uint8, and .landmarks, (frames, 68, 2))
and an rng, and returns the fake frames and their boolean masks. Every fake equals its target outside its mask
and blends into it at the boundary, so a detector must find the forgery itself: there is no patch, border or
colour cast outside the face that it could learn instead.
"""
import cv2
import numpy as np

from .imaging import apply_affine, face_centre, face_size, hull_mask, ring, shift_lab, similarity, warp_mesh

BOTTLENECK = 48  # side of the Deepfakes face at its autoencoder's bottleneck: low enough to blur visibly

EYES = list(range(36, 48))
MOUTH = list(range(48, 68))
LOWER_JAW = list(range(5, 12))
FACE_OUTLINE = list(range(0, 27))


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


def _low_res(image, factor):
    """The image through a factor-times smaller copy: the blur of a generator's limited resolution."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _expressions(landmarks):
    """Each frame's landmarks with head pose removed, minus the clip's mean, in units of face size."""
    ref = landmarks.mean(0)
    aligned = np.stack([apply_affine(similarity(marks, ref), marks) for marks in landmarks])
    return (aligned - aligned.mean(0)) / face_size(ref), ref


def _reenacted(target, source, points):
    """Target landmarks per frame with the given points moved as the source's expression moves them."""
    expr_t, ref_t = _expressions(target.landmarks)
    expr_s, _ = _expressions(source.landmarks)
    size = face_size(ref_t)
    out = target.landmarks.copy()
    for t in range(len(out)):
        lin = similarity(ref_t, target.landmarks[t])[:, :2]
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
        aligned = cv2.warpAffine(source.frames[s], similarity(source.landmarks[s], lt), (w, h),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        side = int(face_size(lt) * 1.2)
        cx, cy = face_centre(lt).astype(int)
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        box = aligned[y0:y0 + side, x0:x0 + side]
        aligned[y0:y0 + side, x0:x0 + side] = _low_res(box, box.shape[0] / BOTTLENECK)
        hull = hull_mask(frame.shape, lt[FACE_OUTLINE])
        content = _match_colour(aligned, frame, hull)
        weight = _feathered(hull, 0.1 * face_size(lt))
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
        warped = warp_mesh(source.frames[s], source.landmarks[s], lt)
        hull = hull_mask(frame.shape, lt)
        content = _match_colour(warped, frame, hull, strength)
        weight = _feathered(hull, 0.04 * face_size(lt))
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
        size = face_size(lt)
        fixed = ring(face_centre(lt), 0.85 * size)
        warped = warp_mesh(frame, np.vstack([lt, fixed]), np.vstack([ln, fixed]))
        content = shift_lab(_low_res(warped, 2.5), shading)
        hard = cv2.dilate(hull_mask(frame.shape, np.vstack([lt, ln])), np.ones((3, 3), np.uint8),
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
        warped = warp_mesh(frame, np.vstack([lt[MOUTH], border]), np.vstack([ln[MOUTH], border]))
        grain = rng.normal(0, 3.0, ((y1 - y0 + 1) // 2, (x1 - x0 + 1) // 2, 1)).repeat(2, 0).repeat(2, 1)
        mouth = shift_lab(_low_res(warped[y0:y1, x0:x1], 3.0), tint).astype(np.float32)
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
