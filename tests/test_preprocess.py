"""FF++ preprocessing (detect_faces.py, create_faces_from_dlib_locs.py) on the real FF++ c23 samples.

The samples are linked into a temporary FF++ tree, with c40 made from c23 by libx264 -crf 40 as FF++ did,
synthetic mask videos (the samples have none) and the bad inputs real data has.
"""
import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensics import crops, faces, ffpp, locations, manifest
from forensics.video import read_frames, reencode, video_info, write_video

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "data" / "ffpp_c23_samples"
CROWD = SHARED / "data" / "real_faces" / "videos" / "street_crowd.mp4"
REALS = ("004", "519", "634")
FAKES = {"NeuralTextures": "004_982", "Deepfakes": "519_515", "FaceSwap": "634_660", "Face2Face": "750_743"}
FRAMES = 40  # --max-frames of the end-to-end run
SIZE = 160  # --image-size of the end-to-end run
MASK_FRAMES = {"NeuralTextures": 30}  # shorter than FRAMES: the mask-shorter-than-video case; others 60

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"FF++ samples not found at {SAMPLES}")
needs_crowd = pytest.mark.skipif(not CROWD.is_file(), reason=f"crowd clip not found at {CROWD}")


def run(script, *args):
    proc = subprocess.run([sys.executable, script, *map(str, args)], cwd=REPO, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def mask_frames(n, width, height):
    """A white ellipse that moves with the frame index, so a crop from the wrong frame would not match."""
    out = []
    for i in range(n):
        m = np.zeros((height, width), np.uint8)
        cv2.ellipse(m, (width // 3 + 4 * i, height // 2), (width // 8, height // 5), 0, 0, 360, 255, -1)
        out.append(m)
    return out


# ----------------------------------------------------------------------------- units

def test_dlib_model_path():
    assert faces.dlib_model_path("mmod_human_face_detector.dat").is_file()
    assert faces.dlib_model_path("shape_predictor_68_face_landmarks.dat").is_file()
    with pytest.raises(FileNotFoundError, match="no_such_model.dat"):
        faces.dlib_model_path("no_such_model.dat")


def test_square_box_enlarges_squares_and_clips():
    assert faces.square_box((100, 100, 200, 180), 640, 480, scale=1.3) == [85, 75, 130]
    assert faces.square_box((0, 0, 100, 100), 640, 480, scale=1.3) == [0, 0, 130]  # shifted inside
    assert faces.square_box((600, 420, 640, 480), 640, 480, scale=1.3) == [562, 402, 78]
    assert faces.square_box((0, 0, 640, 480), 640, 480, scale=1.3) == [80, 0, 480]  # shrunk to the frame


def test_fill_gaps_interpolates_within_max_gap_only():
    boxes = {0: [10, 10, 100], 4: [30, 10, 100], 20: [50, 50, 50]}
    filled = faces.fill_gaps(boxes, range(30), max_gap=3, width=640, height=480)
    assert filled[2] == [20, 10, 100]  # halfway between frames 0 and 4
    assert filled[23] == [50, 50, 50] and filled[17] == [50, 50, 50]  # copied from the nearer detection
    assert not {8, 9, 10, 11, 12, 13, 14, 15, 16, 24} & set(filled)  # further than 3 frames from any
    assert faces.fill_gaps(boxes, range(30), max_gap=0, width=640, height=480) == boxes


def test_tracking_keeps_the_main_face_not_a_bigger_passer_by():
    main = {f: [(100 + 2 * f, 100, 200 + 2 * f, 200, 1.0)] for f in range(30)}
    for f in (10, 11, 12):  # a larger face elsewhere for three frames, and the main face missed in one
        main[f].append((400, 50, 560, 210, 2.0))
    del main[20]
    track = faces.track_main_face(main)
    assert sorted(track) == [f for f in range(30) if f != 20]
    assert all(track[f][0] == 100 + 2 * f for f in track)


@needs_crowd
def test_tracking_on_a_crowd_does_not_jump_between_people():
    det = faces.Detector("hog", upsample=0, detect_size=0)  # full size: the crowd's faces are small
    detections = {f: det(frame) for f, frame in read_frames(CROWD, max_frames=105, stride=3).items()}
    frames = [f for f in detections if detections[f]]
    assert sum(len(d) > 1 for d in detections.values()) >= 0.5 * len(detections)  # a real crowd
    track = faces.track_main_face(detections)
    assert len(track) >= 0.8 * len(detections)
    boxes = [faces.square_box(track[f], 1920, 1080) for f in sorted(track)]
    steps = [faces.iou(a, b) for a, b in zip(boxes, boxes[1:])]
    assert min(steps) > 0.3, steps
    # Taking the largest face of each frame instead would jump between people.
    largest = [faces.square_box(max(detections[f], key=lambda r: r[2] - r[0]), 1920, 1080) for f in frames]
    assert min(faces.iou(a, b) for a, b in zip(largest, largest[1:])) < 0.1


def test_shards_partition_by_source_id():
    videos = ["004", "004_982", "982_004", "519", "519_515", "634", "634_660", "750_743", "982"]
    parts = [manifest.in_shard(videos, manifest.parse_shard(f"{k}/3")) for k in range(3)]
    assert sorted(v for p in parts for v in p) == sorted(videos)
    for p in parts:
        assert all(ffpp.target_of(v) in p for v in p if ffpp.target_of(v) in videos)
    with pytest.raises(ValueError, match="K/N"):
        manifest.parse_shard("3")
    with pytest.raises(ValueError, match="0..N-1"):
        manifest.parse_shard("3/3")


def test_load_locs_merges_shards_and_names_missing_ones(tmp_path, capsys):
    (tmp_path / "dlib_real.shard-0-of-3.json").write_text(json.dumps({"004": {"0": [1, 2, 30]}}))
    (tmp_path / "dlib_real.shard-2-of-3.json").write_text(json.dumps({"519": {"5": [3, 4, 40]}}))
    tally = manifest.Tally()
    assert locations.load_locs(tmp_path, "real", tally) == {"004": {0: [1, 2, 30]}, "519": {5: [3, 4, 40]}}
    assert "shards 1 not found" in capsys.readouterr().err
    assert locations.load_locs(tmp_path, "Deepfakes", tally) is None
    (tmp_path / "dlib_FaceSwap.json").write_text("{not json")
    with pytest.raises(ValueError, match="dlib_FaceSwap.json"):
        locations.load_locs(tmp_path, "FaceSwap", tally)


def test_cut_resizes_and_refuses_a_box_outside_the_frame():
    frame = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    assert np.array_equal(crops.cut(frame, [10, 20, 50], 0), frame[20:70, 10:60])
    assert crops.cut(frame, [10, 20, 50], 32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="does not fit"):
        crops.cut(frame, [80, 20, 50], 32)


def test_crop_group_drops_only_the_video_whose_frames_do_not_match(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    write_video(frames, tmp_path / "c23.mp4", crf=0)
    write_video([f[:, :, 0] for f in frames], tmp_path / "mask_ok.mp4", crf=0, gray=True)
    write_video([cv2.resize(f, (128, 96)) for f in frames], tmp_path / "mask_big.mp4", crf=0)
    boxes = {i: [8 + i, 4, 40] for i in range(6)}
    sources = [crops.Source("c23", tmp_path / "c23.mp4", tmp_path / "out" / "c23"),
               crops.Source(ffpp.MASKS, tmp_path / "mask_big.mp4", tmp_path / "out" / "big"),
               crops.Source(ffpp.MASKS, tmp_path / "mask_ok.mp4", tmp_path / "out" / "ok")]
    tally = crops.crop_group(sources, boxes, size=0, name="test")
    assert len(tally.skips) == 1 and "mask_big.mp4: its frames are 128x96, those of the other videos 64x48" in tally.skips[0]
    assert _pngs(tmp_path / "out" / "c23") == _pngs(tmp_path / "out" / "ok") == list(range(6))
    mask = cv2.imread(str(tmp_path / "out" / "ok" / "3.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 40) and (tally.videos_done, tally.videos_skipped) == (2, 1)
    tally = crops.crop_video(tmp_path / "c23.mp4", {i: [30, 10, 40] for i in range(3)}, tmp_path / "far", size=0)
    assert "does not fit in its 64x48 frames" in tally.skips[0] and not _pngs(tmp_path / "far")


# ----------------------------------------------------------------------------- detection rate

def _rate(path):
    found = faces.detect_video(path, faces.Detector(), stride=10, max_gap=0)
    return found.detected, len(found.frames)


@needs_samples
def test_a_face_is_found_in_95_percent_of_the_frames_of_each_sample():
    paths = sorted(SAMPLES.rglob("*.mp4"))
    assert len(paths) == 7
    with ProcessPoolExecutor(2) as pool:
        rates = dict(zip((p.name for p in paths), pool.map(_rate, paths)))
    for name, (hits, n) in rates.items():
        assert n >= 25 and hits >= 0.95 * n, (name, hits, n)


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def pre_tree(tmp_path_factory):
    """An FF++ tree of the samples plus bad inputs, run through both scripts."""
    if not SAMPLES.is_dir():
        pytest.skip(f"FF++ samples not found at {SAMPLES}")
    tmp = tmp_path_factory.mktemp("ffpp")
    root = tmp / "root"
    to_encode = []
    for video in REALS:
        src = ffpp.video_path(SAMPLES, ffpp.REAL, "c23", video)
        ffpp.video_path(root, ffpp.REAL, "c23", video).parent.mkdir(parents=True, exist_ok=True)
        ffpp.video_path(root, ffpp.REAL, "c23", video).symlink_to(src)
        if video != "634":
            to_encode.append((src, ffpp.video_path(root, ffpp.REAL, "c40", video)))
    for method, video in FAKES.items():
        src = ffpp.video_path(SAMPLES, method, "c23", video)
        ffpp.video_path(root, method, "c23", video).parent.mkdir(parents=True)
        ffpp.video_path(root, method, "c23", video).symlink_to(src)
        if method != "Face2Face":  # Face2Face has no c40 folder
            to_encode.append((src, ffpp.video_path(root, method, "c40", video)))
        _, fps, w, h = video_info(src)
        write_video(mask_frames(MASK_FRAMES.get(method, 60), w, h), ffpp.video_path(root, method, "masks", video),
                    fps=fps, gray=True)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: reencode(*job, crf=40), to_encode))
    # Bad inputs: a truncated c23 and a truncated c40 video, a video without a face.
    data = ffpp.video_path(SAMPLES, ffpp.REAL, "c23", "634").read_bytes()
    ffpp.video_path(root, ffpp.REAL, "c23", "999").write_bytes(data[:len(data) // 2])
    ffpp.video_path(root, ffpp.REAL, "c40", "634").write_bytes(data[:len(data) // 2])
    rng = np.random.default_rng(0)
    sky = [cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (31, 31), 10) for _ in range(20)]
    write_video(sky, ffpp.video_path(root, ffpp.REAL, "c23", "998"))
    splits = tmp / "splits"
    splits.mkdir()
    pairs = {"train": [["004", "982"], ["519", "515"], ["634", "660"], ["750", "743"]],
             "val": [["998", "999"]], "test": [["123", "456"]]}
    for name, p in pairs.items():
        (splits / f"{name}.json").write_text(json.dumps(p))

    jsons, face = tmp / "jsons", tmp / "face"
    detect = run("detect_faces.py", "--ffpp-root", root, "--out", jsons, "--splits", splits, "--split", "all",
                 "--max-frames", FRAMES, "--workers", 2)
    create = run("create_faces_from_dlib_locs.py", "--ffpp-root", root, "--locs", jsons, "--out", face,
                 "--image-size", SIZE, "--splits", splits, "--split", "all", "--workers", 2)
    return dict(root=root, jsons=jsons, face=face, splits=splits, detect=detect, create=create)


def _locs(tree, method):
    return json.loads((tree["jsons"] / f"dlib_{method}.json").read_text())


def _pngs(folder):
    return sorted(int(p.stem) for p in folder.glob("*.png"))


def test_detection_runs_through_bad_input_and_loses_nothing_else(pre_tree):
    rc, out = pre_tree["detect"]
    assert rc == 0, out
    root = pre_tree["root"]
    assert f"{ffpp.video_path(root, ffpp.REAL, 'c23', '999')}: OpenCV cannot open" in out  # truncated
    assert f"{ffpp.video_path(root, ffpp.REAL, 'c23', '998')}: no face found in its 20 frames: video skipped" in out
    assert f"{ffpp.video_path(root, ffpp.REAL, 'c23', '123')}: video of the all split not found" in out
    assert f"{ffpp.video_path(root, 'Deepfakes', 'c23', '515_519')}: video of the all split not found" in out
    assert "videos: 7 done, " in out and f"frames: {7 * FRAMES} done" in out
    assert sorted(_locs(pre_tree, ffpp.REAL)) == list(REALS)
    for method, video in FAKES.items():
        boxes = _locs(pre_tree, method)
        assert list(boxes) == [video]
        assert list(boxes[video]) == [str(i) for i in range(FRAMES)]
        assert all(len(b) == 3 and all(isinstance(v, int) for v in b) for b in boxes[video].values())


def test_crops_run_through_bad_input_and_lose_nothing_else(pre_tree):
    rc, out = pre_tree["create"]
    assert rc == 0, out
    root, face = pre_tree["root"], pre_tree["face"]
    assert f"{ffpp.videos_dir(root, 'Face2Face', 'c40')}: folder not found: c40 crops of 1 Face2Face videos" in out
    assert f"{ffpp.video_path(root, ffpp.REAL, 'c40', '634')}: OpenCV cannot open" in out
    assert (f"{ffpp.video_path(root, 'NeuralTextures', 'masks', '004_982')}: mask video has 30 frames, "
            f"c23 video at least {FRAMES}: frames 30-{FRAMES - 1} skipped") in out
    assert "no face locations for real video 998 of the all split" in out
    # Everything else is there: 3 real c23 + 2 real c40 + 3 fakes x 3 + Face2Face c23 and masks.
    assert f"videos: {3 + 2 + 9 + 2} done, " in out
    full = list(range(FRAMES))
    for video in REALS:
        assert _pngs(ffpp.face_dir(face, ffpp.REAL, "c23", video)) == full
    assert _pngs(ffpp.face_dir(face, ffpp.REAL, "c40", "004")) == full
    assert _pngs(ffpp.face_dir(face, ffpp.REAL, "c40", "634")) == []
    for method, video in FAKES.items():
        n = MASK_FRAMES.get(method, FRAMES)
        for q in ("c23", "c40", "masks"):
            expect = [] if (method, q) == ("Face2Face", "c40") else list(range(n))
            assert _pngs(ffpp.face_dir(face, method, q, video)) == expect, (method, q)
    assert not [p for p in face.rglob("*") if p.name.endswith(".tmp")]


def test_c23_c40_and_mask_crops_of_a_frame_share_one_box(pre_tree):
    root, face = pre_tree["root"], pre_tree["face"]
    for method, video in [(ffpp.REAL, "004"), *FAKES.items()]:
        boxes = _locs(pre_tree, method)[video]
        qualities = ["c23", "c40"] + ([] if method == ffpp.REAL else ["masks"])
        for q in qualities:
            folder = ffpp.face_dir(face, method, q, video)
            if not _pngs(folder):
                continue
            frames = read_frames(ffpp.video_path(root, method, q, video), max_frames=FRAMES)
            for i in (0, 17, 29):
                frame = cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY) if q == "masks" else frames[i]
                crop = cv2.imread(str(folder / f"{i}.png"), cv2.IMREAD_UNCHANGED)
                assert crop.shape == ((SIZE, SIZE) if q == "masks" else (SIZE, SIZE, 3)), (method, q)
                assert np.array_equal(crop, crops.cut(frame, boxes[str(i)], SIZE)), (method, q, i)
        if method in ("Deepfakes", "FaceSwap", ffpp.REAL):  # c40 is c23 re-encoded: aligned crops look alike
            for i in (0, 29):
                a, b = (cv2.imread(str(ffpp.face_dir(face, method, q, video) / f"{i}.png")).astype(float)
                        for q in ("c23", "c40"))
                assert np.abs(a - b).mean() < 12, (method, i)


def test_dlib_finds_the_face_again_inside_the_crops(pre_tree):
    det = faces.Detector(upsample=1, detect_size=0)
    for method, video in [*((ffpp.REAL, v) for v in REALS), *FAKES.items()]:
        folder = ffpp.face_dir(pre_tree["face"], method, "c23", video)
        found = [bool(det(cv2.imread(str(folder / f"{i}.png")))) for i in range(0, 30, 5)]
        assert all(found), (method, video, found)


def test_fake_boxes_match_their_target_whether_own_or_copied(pre_tree, tmp_path, capsys):
    tally = faces.detect_all(SAMPLES, tmp_path, max_frames=FRAMES, fake_boxes="target", workers=2)
    err = capsys.readouterr().err
    target = ffpp.video_path(SAMPLES, ffpp.REAL, "c23", "750")
    assert f"{ffpp.video_path(SAMPLES, 'Face2Face', 'c23', '750_743')}: its target original {target} is missing" in err
    assert tally.videos_done == 6 and tally.videos_skipped == 1
    real = json.loads((tmp_path / "dlib_real.json").read_text())
    for method, video in FAKES.items():
        if method == "Face2Face":
            continue
        own = _locs(pre_tree, method)[video]
        copied = json.loads((tmp_path / f"dlib_{method}.json").read_text())[video]
        original = real[ffpp.target_of(video)]
        assert copied == original
        close = [faces.iou(own[f], original[f]) >= 0.6 for f in own]
        assert sum(close) >= 0.9 * len(close), (method, close)


def test_rerun_skips_complete_videos_redoes_broken_ones_and_strict_fails_on_skips(pre_tree):
    face = pre_tree["face"]
    folder = ffpp.face_dir(face, ffpp.REAL, "c23", "004")
    (folder / manifest.DONE_MARKER).unlink()  # as if the run had been killed in this folder
    (folder / "5.png").write_bytes(b"broken")
    (folder / ".6.png.abc.tmp").write_bytes(b"partial")
    other = ffpp.face_dir(face, "Deepfakes", "c40", "519_515") / "3.png"
    before = other.stat().st_mtime_ns
    rc, out = run("create_faces_from_dlib_locs.py", "--ffpp-root", pre_tree["root"], "--locs", pre_tree["jsons"],
                  "--out", face, "--image-size", SIZE, "--workers", 2, "--strict")
    assert rc == 1, out  # the Face2Face c40 folder is still missing
    assert "(13 already complete)" in out, out  # all but real 004 c23 + c40 (reset) and 634 c23 (c40 corrupt)
    assert other.stat().st_mtime_ns == before
    assert cv2.imread(str(folder / "5.png")).shape == (SIZE, SIZE, 3)
    assert not (folder / ".6.png.abc.tmp").exists() and (folder / manifest.DONE_MARKER).exists()
    rc, out = run("create_faces_from_dlib_locs.py", "--ffpp-root", pre_tree["root"], "--locs", pre_tree["jsons"],
                  "--out", face, "--image-size", SIZE, "--workers", 2, "--methods", "Deepfakes", "--strict")
    assert rc == 0 and "videos: 3 done (3 already complete), 0 skipped" in out, out


def test_sharded_detection_merges_to_the_whole(tmp_path):
    for k in range(2):
        rc, out = run("detect_faces.py", "--ffpp-root", SAMPLES, "--out", tmp_path, "--max-frames", 3,
                      "--shard", f"{k}/2", "--workers", 0, "--methods", "real", "NeuralTextures", "FaceSwap")
        assert rc == 0, out
    assert len(list(tmp_path.glob("dlib_*.shard-*-of-2.json"))) == 6
    tally = manifest.Tally()
    assert sorted(locations.load_locs(tmp_path, ffpp.REAL, tally)) == list(REALS)
    assert sorted(locations.load_locs(tmp_path, "FaceSwap", tally)) == ["634_660"]
    assert not tally.skips
