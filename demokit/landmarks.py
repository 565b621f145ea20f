"""dlib's frontal face detector and 68-landmark predictor, as the demo builder uses them to place faces.

The preprocessing detector (forensics.faces.Detector) is tuned for FF++ frames; this one only has to find the
single face of a demo still or crop, so it upsamples only when a first pass finds nothing.
"""
import functools

import cv2
import numpy as np

from forensics.faces import dlib_model_path


@functools.cache
def load_models():
    """(detector, predictor), loaded once a process; build calls it first so a missing model fails early."""
    import dlib

    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat"))))


def largest_faces(image):
    """dlib's frontal faces in a BGR image, largest first; upsampled once only when none are found, as that
    costs 4x."""
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    for upsample in (0, 1):
        faces = list(load_models()[0](rgb, upsample))
        if faces:
            return sorted(faces, key=lambda r: -r.area())
    return []


def landmarks(image, rect):
    """The 68 landmarks, (68, 2) float32, of the face in rect."""
    shape = load_models()[1](cv2.cvtColor(image, cv2.COLOR_BGR2RGB), rect)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def rect_around(points):
    """A dlib rectangle around points, to run the predictor where the detector found nothing."""
    import dlib

    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    return dlib.rectangle(int(x0), int(y0), int(x1), int(y1))


def find_landmarks(image, what):
    """Landmarks of the largest face; what names the image in the error when there is none."""
    faces = largest_faces(image)
    if not faces:
        raise ValueError(f"{what}: dlib finds no face")
    return landmarks(image, faces[0])
