"""Landmark geometry and image operations shared by the manipulations, the animation and the sources."""
import cv2
import numpy as np
from scipy.spatial import Delaunay


def face_size(points):
    return float(np.ptp(points, axis=0).max())


def face_centre(points):
    return (points.min(0) + points.max(0)) / 2


def apply_affine(m, points):
    return points @ m[:, :2].T + m[:, 2]


def similarity(src, dst):
    """Least-squares rotation, scale and shift taking src points onto dst (Umeyama, no reflection)."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / (s ** 2).sum(1).mean()
    lin = scale * r
    return np.hstack([lin, (md - lin @ ms)[:, None]]).astype(np.float32)


def ring(centre, radius, n=16):
    """Fixed points around a face, so that a mesh warp bounded by them leaves the rest of the image alone."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return (centre + radius * np.stack([np.cos(a), np.sin(a)], 1)).astype(np.float32)


def warp_mesh(image, src, dst):
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


def hull_mask(shape, points):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    return mask


def shift_lab(image, shift, gain=1.0):
    """Lightness scaled by gain, then Lab shifted: a change of skin tone, shading or lighting."""
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab[..., 0] *= gain
    lab += np.asarray(shift, np.float32)
    return cv2.cvtColor(np.clip(np.rint(lab), 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)
