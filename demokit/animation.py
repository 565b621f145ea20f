"""Talking-head clips from one still: the face put on a canvas at the demo's scale, then moved frame by frame
(head motion, speech-like mouth motion, blinks, brows), with its landmarks carried along."""
import cv2
import numpy as np

from .imaging import apply_affine, face_centre, face_size, ring, warp_mesh

FPS = 25.0  # of clips made from stills
FACE_FRACTION = 0.42  # landmark box side / frame side: a close-up like most FF++ videos


def canvas(image, points, size):
    """The image resampled so the face has the demo's scale, centred on a square canvas larger than the
    size x size frame, so that head motion never shows the canvas edge; returns it and the moved points."""
    side = int(1.6 * size) // 2 * 2
    scale = FACE_FRACTION * size / face_size(points)
    m = np.float32([[scale, 0, 0], [0, scale, 0]])
    m[:, 2] = side / 2 - scale * face_centre(points)
    out = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return out, apply_affine(m, points)


def expression(points, mouth, blink, brow):
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


def animate(still, points, frames, size, rng, alpha=None, background=None):
    """A size x size clip and its landmarks from a canvas still and its points.

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

    centre = face_centre(points)
    fixed = ring(centre, 0.95 * face_size(points))
    clip, marks = [], []
    for k in range(frames):
        moved = expression(points, mouth[k], blink[k], brow[k])
        face = warp_mesh(still, np.vstack([points, fixed]), np.vstack([moved, fixed]))
        m = cv2.getRotationMatrix2D(tuple(map(float, centre)), float(angle[k]), float(scale[k]))
        m[:, 2] += np.array([size / 2 + dx[k], size * 0.52 + dy[k]]) - centre
        frame = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if alpha is not None:
            a = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR)[..., None]
            frame = np.rint(frame * a + background * (1 - a)).astype(np.uint8)
        clip.append(frame)
        marks.append(apply_affine(m, moved))
    return clip, np.stack(marks).astype(np.float32)
