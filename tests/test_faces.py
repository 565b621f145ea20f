"""forensics.faces on ordinary footage: detection settings, keyframes and tracking, the fallback pass.

Unit tests use tiny generated frames (a stand-in detector that reads the face's place from the frame, or
scikit-image's astronaut for dlib). The slow tier runs detect.py's defaults on the DFDC clips in ../shared.
"""
import dataclasses

import cv2
import numpy as np
import pytest
from conftest import SHARED, astronaut, load_script

from forensics import cli, faces, inference
from forensics.video import iter_frames, read_frames, write_video

DFDC = SHARED / "data" / "dfdc_samples"


def test_every_track_is_kept_and_the_main_face_is_the_heaviest():
    left = {f: [(100 + f, 100, 200 + f, 200, 1.0)] for f in range(10)}
    for f in range(10):
        left[f].append((400, 300, 440, 340, 1.0))  # a small face all along
    for f in (4, 5):
        left[f].append((600, 50, 760, 210, 2.0))  # a large passer-by for two frames
    tracks = faces.track_faces(left)
    assert [sorted(t) for t in tracks] == [list(range(10)), list(range(10)), [4, 5]]
    assert [t[0][0] for t in tracks[:2]] == [100, 400] and tracks[2][4][0] == 600
    assert faces.track_main_face(left) == tracks[0] == max(tracks, key=faces.track_weight)
    assert faces.track_faces({}) == [] and faces.track_main_face({}) == {}


def test_detection_on_a_shrunk_copy_is_detection_on_the_frame():
    frame = cv2.resize(astronaut(), (1100, 1100))
    detector = faces.Detector(faces.DetectionSettings(detect_size=640))
    rgb, f = faces.detection_copy(frame, 640)
    assert rgb.shape == (640, 640, 3) and f == pytest.approx(640 / 1100)
    found = detector(frame)
    assert len(found) == 1 and found == detector.detect_rgb(rgb, f)


class Marked:
    """A stand-in detector: a face of 20 px whose left edge is the frame's first pixel (0: no face)."""

    def __init__(self, settings):
        self.settings, self.calls = settings, []

    def __call__(self, frame):
        self.calls.append(int(frame[1, 0, 0]))
        x = int(frame[0, 0, 0])
        return [(x, 10, x + 20, 30, 1.0)] if x else []


def marked(xs):
    frames = [np.zeros((48, 64, 3), np.uint8) for _ in xs]
    for k, (frame, x) in enumerate(zip(frames, xs)):
        frame[0, 0, 0], frame[1, 0, 0] = x, k
    return frames


def test_keyframes_are_detected_on_and_the_boxes_between_interpolated():
    settings = faces.DetectionSettings(detect_every=4, max_gap=0, scale=1.0)
    xs = [4 + 2 * k for k in range(14)]  # moving right by 2 px a frame
    detector = Marked(settings)
    boxes = faces.find_main_face(marked(xs), settings, detector)
    assert detector.calls == [0, 4, 8, 12]
    assert boxes[:13] == [[x, 10, 20] for x in xs[:13]]  # between keyframes: as if detected
    assert boxes[13] == boxes[12]  # after the last keyframe: copied

    # A keyframe without the face: its neighbours take the boxes of the keyframes beside it, up to the
    # frames between keyframes plus max_gap (here 0) away; the keyframe itself is too far from both.
    xs[8] = 0
    boxes = faces.find_main_face(marked(xs), settings, Marked(settings))
    assert boxes[8] is None and boxes[5:8] == [boxes[4]] * 3 and boxes[9:12] == [boxes[12]] * 3
    wider = dataclasses.replace(settings, max_gap=1)
    boxes = faces.find_main_face(marked(xs), wider, Marked(wider))
    assert boxes[8] == [20, 10, 20]  # halfway between frames 4 and 12

    # Frames that are not keyframes need not be decoded: None there gives the same boxes.
    frames = [f if k % 4 == 0 else None for k, f in enumerate(marked(xs))]
    assert faces.find_main_face(frames, settings, Marked(settings)) == faces.find_main_face(
        marked(xs), settings, Marked(settings))
    assert faces.find_main_face([], settings, Marked(settings)) == []


def test_every_frame_is_the_released_detection():
    settings = faces.DetectionSettings(max_gap=2, scale=1.0)  # faces.FFPP's keyframes: every frame
    xs = [10, 12, 0, 0, 18, 0, 0, 0, 0, 0, 30]
    detector = Marked(settings)
    boxes = faces.find_main_face(marked(xs), settings, detector)
    assert detector.calls == list(range(len(xs))) and settings.reach() == 2
    expected = faces.fill_gaps({k: [x, 10, 20] for k, x in enumerate(xs) if x}, range(len(xs)), 2, 64, 48)
    assert boxes == [expected.get(k) for k in range(len(xs))]
    assert boxes[7] is None and boxes[6] == boxes[4]


def test_the_face_finder_s_processes_find_what_this_process_finds():
    """FaceFinder's processes get first-pass copies from the decoding thread and a fallback copy where they find
    nothing: the same detections as Detector in this process."""
    settings = faces.DetectionSettings(detect_size=160, fallback_size=320, detect_every=2)
    frames = [(k, _small_face(240) if k != 2 else np.full((240, 320, 3), 90, np.uint8)) for k in range(5)]
    expected = faces.detect_frames(frames, faces.Detector(settings))
    assert sorted(expected.found) == [0, 4] and expected.keyframes == [0, 2, 4]
    with faces.FaceFinder(settings, workers=1) as finder:
        assert finder.detect(frames) == expected
        finder.cancel()
        with pytest.raises(faces.Cancelled):
            finder.detect(frames)


def test_iter_frames_decodes_only_every_nth_picture(tmp_path):
    frames = [np.full((16, 16, 3), 20 * k, np.uint8) for k in range(9)]
    write_video(frames, tmp_path / "v.mp4", fps=10, crf=0)
    every = list(iter_frames(tmp_path / "v.mp4", stride=2, every=3))
    assert [i for i, _ in every] == [0, 2, 4, 6, 8]
    assert [f is not None for _, f in every] == [True, False, False, True, False]
    pictures = read_frames(tmp_path / "v.mp4")
    assert np.array_equal(every[0][1], pictures[0]) and np.array_equal(every[3][1], pictures[6])


def _small_face(side):
    """A frame of 4/3 * side by side with the astronaut's head filling its left; her face is 0.43 * side."""
    head = cv2.resize(astronaut()[20:260, 100:340], (side, side), interpolation=cv2.INTER_AREA)
    frame = np.full((side, side * 4 // 3, 3), 120, np.uint8)
    frame[:, :side] = head
    return frame


def test_the_fallback_pass_finds_a_face_too_small_for_the_first():
    frame = _small_face(240)  # 320 x 240, a face of about 100 px: 50 px on a copy of 160, under HOG's 80
    first = faces.DetectionSettings(detect_size=160)
    assert faces.Detector(first)(frame) == []
    found = faces.Detector(dataclasses.replace(first, fallback_size=320))(frame)
    assert len(found) == 1 and 80 <= found[0][2] - found[0][0] <= 120  # in full-frame pixels

    small = _small_face(120)  # 160 x 120: the fallback enlarges it to 320, and maps the box back
    assert faces.Detector(faces.FFPP)(small) == []
    found = faces.Detector(dataclasses.replace(faces.FFPP, fallback_size=320))(small)
    assert len(found) == 1 and 40 <= found[0][2] - found[0][0] <= 60 and found[0][0] >= 0
    rgb, f = faces.detection_copy(small, 320, enlarge=True)
    assert rgb.shape == (240, 320, 3) and f == 2.0


def test_the_fallback_runs_only_where_its_copy_is_larger():
    assert faces.needs_fallback((1920, 1080), faces.FOOTAGE)  # 640 first, then 1280
    assert not faces.needs_fallback((1920, 1080), faces.FFPP)  # no fallback
    assert not faces.needs_fallback((1920, 1080), dataclasses.replace(faces.FOOTAGE, detect_size=0))
    assert not faces.needs_fallback((720, 1280), dataclasses.replace(faces.FOOTAGE, fallback_size=640))
    assert faces.needs_fallback((360, 640), faces.FOOTAGE)  # enlarged twice


def test_the_no_face_hint_suggests_only_what_was_not_tried():
    hint = faces.no_face_hint(faces.FOOTAGE, 1920, 1080)
    assert "at most 1280 px" in hint and "--upsample 1" in hint and "--detect-size 0" in hint
    tried = dataclasses.replace(faces.FOOTAGE, upsample=1, detect_size=0)
    hint = faces.no_face_hint(tried, 1920, 1080)
    assert "--upsample" not in hint and "--detect-size" not in hint and "about 40 px" in hint
    assert faces.no_face_hint(dataclasses.replace(tried, detector="cnn"), 1920, 1080) == \
        "dlib cnn on frames of at most 1920 px"
    assert "--detect-size" not in faces.no_face_hint(faces.FOOTAGE, 640, 360)  # already at full size


def test_the_detection_flags_come_from_one_settings_object():
    args = load_script("detect").parse_args(["clip.mp4"])
    assert cli.detection_settings(args) == faces.FOOTAGE
    args = load_script("detect").parse_args(["clip.mp4", "--detect-every", "1", "--fallback-size", "0",
                                             "--upsample", "1"])
    assert cli.detection_settings(args) == dataclasses.replace(faces.FFPP, upsample=1)
    with pytest.raises(SystemExit):
        load_script("detect").parse_args(["clip.mp4", "--detect-every", "0"])


@pytest.mark.slow
@pytest.mark.skipif(not DFDC.is_dir(), reason=f"DFDC samples not found at {DFDC}")
def test_detect_py_defaults_find_the_face_in_every_dfdc_clip():
    """Two of the four are portrait clips whose faces HOG misses at 640 px: the fallback pass finds them."""
    settings = load_script("detect").settings_of(load_script("detect").parse_args(["x"]))
    clips = sorted(DFDC.glob("*.mp4"))
    assert len(clips) == 4
    with faces.FaceFinder(settings.detection, workers=2) as finder:
        for clip in clips:
            found = inference.find(inference.Input(clip, "video"), finder, settings)
            main = inference.choose_faces(found, settings)[0]
            assert len(found.seen.keyframes) == 60 and len(main.boxes) >= 0.9 * len(found.seen.frames), clip
