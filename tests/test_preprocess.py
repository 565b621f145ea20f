"""FF++ preprocessing (detect_faces.py, create_faces_from_dlib_locs.py).

Unit tests run on tiny synthetic inputs in a few seconds. The slow tier runs both scripts on the real FF++
c23 samples, linked into a temporary FF++ tree with c40 made from c23 by libx264 -crf 40 as FF++ did,
synthetic mask videos (the samples have none) and the bad inputs real data has.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import load_script

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


# ----------------------------------------------------------------------------- units: detection and tracking

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


@pytest.mark.slow
@needs_crowd
def test_tracking_on_a_crowd_does_not_jump_between_people():
    det = faces.Detector(faces.DetectionSettings(detect_size=0))  # full size: the crowd's faces are small
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


# ----------------------------------------------------------------------------- units: which videos, the tally

def test_shards_partition_by_source_id():
    videos = ["004", "004_982", "982_004", "519", "519_515", "634", "634_660", "750_743", "982"]
    parts = [manifest.in_shard(videos, manifest.parse_shard(f"{k}/3")) for k in range(3)]
    # Source ids 004 519 634 750 982, dealt in turn: a shard's share stays the same from run to run.
    assert parts == [["004", "004_982", "750_743"], ["982_004", "519", "519_515", "982"], ["634", "634_660"]]
    assert manifest.in_shard(videos, None) == videos
    with pytest.raises(ValueError, match="K/N"):
        manifest.parse_shard("3")
    with pytest.raises(ValueError, match="0..N-1"):
        manifest.parse_shard("3/3")


def test_select_videos_keeps_the_wanted_ones_on_disk_and_names_the_others():
    tally = manifest.Tally(echo=False)
    assert manifest.select_videos(None, {"519", "004"}, tally, str) == ["004", "519"]
    chosen = manifest.select_videos(["519", "123", "004", "519"], {"004", "519", "634"}, tally,
                                    lambda v: f"no video {v}")
    assert chosen == ["004", "519"]
    assert tally.skips == ["no video 123"] and tally.videos_skipped == 1


def test_split_ids_of_all_is_train_val_test_in_order(tmp_path):
    for i, name in enumerate(ffpp.SPLITS):
        (tmp_path / f"{name}.json").write_text(json.dumps([[f"{i}00", f"{i}01"]]))
    assert manifest.split_ids(tmp_path, "val") == [["100", "101"]]
    assert manifest.split_ids(tmp_path, "all") == [["000", "001"], ["100", "101"], ["200", "201"]]


def test_tally_adds_a_workers_counts_and_lines_and_strict_fails_on_skips(capsys):
    worker = manifest.Tally(echo=False)
    worker.skip("a.mp4: broken", videos=1, frames=40)
    worker.videos_done, worker.frames_done = 2, 80
    assert capsys.readouterr().err == ""  # a worker's lines print only when its tally is added
    tally = manifest.Tally(videos_already=1)
    tally.add(worker)
    assert capsys.readouterr().err == "skip: a.mp4: broken\n"
    assert tally.summary() == "videos: 2 done (1 already complete), 1 skipped; frames: 80 done, 40 skipped"
    assert tally.finish(strict=False) == 0 and tally.finish(strict=True) == 1
    assert capsys.readouterr().out == (tally.summary() + "\n") * 2
    assert manifest.Tally().finish(strict=True) == 0


def test_a_crop_folder_is_finished_only_with_its_boxes_size_video_and_every_crop(tmp_path):
    boxes = {0: [1, 2, 30], 1: [2, 2, 30]}
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    folder = tmp_path / "crops"
    folder.mkdir()
    stamp = manifest.crop_stamp(boxes, 8, video)
    assert stamp != manifest.crop_stamp(boxes, 32, video) and stamp != manifest.crop_stamp({0: [1, 2, 30]}, 8, video)
    assert manifest.finished_crops(folder, stamp) is None
    crop = cv2.imencode(".png", np.full((8, 8, 3), 7, np.uint8))[1].tobytes()
    for i in boxes:
        (folder / f"{i}.png").write_bytes(crop)
    manifest.mark_finished(folder, stamp, [0, 1])
    marker = {**stamp, "frames": [0, 1], "bytes": [len(crop)] * 2}
    assert json.loads((folder / manifest.DONE_MARKER).read_text()) == marker
    assert manifest.finished_crops(folder, stamp) == marker
    assert manifest.finished_crops(folder, stamp, verify=True) == marker
    assert manifest.finished_crops(folder, manifest.crop_stamp(boxes, 32, video)) is None
    # A marker of the older kind (no video, no byte sizes) vouches for nothing.
    (folder / manifest.DONE_MARKER).write_text(json.dumps({**manifest.crop_stamp(boxes, 8), "frames": [0, 1]}))
    assert manifest.finished_crops(folder, manifest.crop_stamp(boxes, 8)) is None
    manifest.mark_finished(folder, stamp, [0, 1])
    # The video replaced by another file of the same size: its time differs.
    os.utime(video, ns=(0, 0))
    assert manifest.finished_crops(folder, manifest.crop_stamp(boxes, 8, video)) is None
    stamp = manifest.crop_stamp(boxes, 8, video)
    manifest.mark_finished(folder, stamp, [0, 1])
    # A crop damaged in place but of the same size passes the cheap check; verify decodes it.
    (folder / "1.png").write_bytes(b"x" * len(crop))
    assert manifest.finished_crops(folder, stamp) == marker | {"video": stamp["video"]}
    assert manifest.finished_crops(folder, stamp, verify=True) is None
    (folder / "1.png").write_bytes(crop[:40])  # truncated
    assert manifest.finished_crops(folder, stamp) is None
    (folder / "1.png").unlink()
    assert manifest.finished_crops(folder, stamp) is None
    (folder / manifest.DONE_MARKER).write_text("{cut short")
    assert manifest.finished_crops(folder, stamp) is None


# ----------------------------------------------------------------------------- units: face-location files

def test_location_files_round_trip_under_their_names(tmp_path):
    assert locations.write_locs(tmp_path, "real", {"004": {0: [1, 2, 30]}}) == tmp_path / "dlib_real.json"
    assert (tmp_path / "dlib_real.json").read_text() == '{"004": {"0": [1, 2, 30]}}'
    assert (locations.write_locs(tmp_path, "real", {"519": {5: [3, 4, 40]}}, shard=(1, 4))
            == tmp_path / "dlib_real.shard-1-of-4.json")
    tally = manifest.Tally(echo=False)
    assert locations.load_locs(tmp_path, "real", tally) == {"004": {0: [1, 2, 30]}, "519": {5: [3, 4, 40]}}
    assert tally.skips == [f"{tmp_path / 'dlib_real.shard-K-of-4.json'}: shards 0, 2, 3 not found: their real "
                           "videos skipped (is that job still running?)"]


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
    (tmp_path / "dlib_Face2Face.json").write_text('{"750_743": [1, 2, 30]}')
    with pytest.raises(ValueError, match="dlib_Face2Face.json: video '750_743'"):
        locations.load_locs(tmp_path, "Face2Face", tally)


# ----------------------------------------------------------------------------- units: cutting crops

def test_cut_resizes_and_refuses_a_box_outside_the_frame():
    frame = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    assert np.array_equal(crops.cut(frame, [10, 20, 50], 0), frame[20:70, 10:60])
    assert np.array_equal(crops.cut(frame, [10, 20, 50], 32),
                          cv2.resize(frame[20:70, 10:60], (32, 32), interpolation=cv2.INTER_AREA))
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
    assert tally.skips == [f"{tmp_path / 'mask_big.mp4'}: its frames are 128x96, those of the other videos 64x48: "
                           "crops would not align: masks crops of test skipped"]
    assert _pngs(tmp_path / "out" / "c23") == _pngs(tmp_path / "out" / "ok") == list(range(6))
    mask = cv2.imread(str(tmp_path / "out" / "ok" / "3.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 40) and (tally.videos_done, tally.videos_skipped) == (2, 1)
    tally = crops.crop_video(tmp_path / "c23.mp4", {i: [30, 10, 40] for i in range(3)}, tmp_path / "far", size=0)
    video = tmp_path / "c23.mp4"
    assert tally.skips == [f"{video}: no face box fits in its 64x48 frames (frames 0 [30, 10, 40], 1 [30, 10, 40], "
                           f"2 [30, 10, 40]; face locations made from another video?): video crops of {video} skipped"]
    assert not _pngs(tmp_path / "far")


def test_a_box_outside_the_frame_costs_its_frame_not_the_video(tmp_path):
    video = _noise_video(tmp_path / "c23.mp4", 4)
    sources = [crops.Source("c23", video, tmp_path / "c23"),
               crops.Source(ffpp.MASKS, _noise_video(tmp_path / "m.mp4", 4, gray=True), tmp_path / "m")]
    boxes = {0: [0, 0, 40], 1: [30, 10, 40], 2: [2, 2, 40], 3: [0, 0, 400]}
    tally = crops.crop_group(sources, boxes, size=16, name="real 004")
    assert tally.skips == [f"{video}: 2 face boxes do not fit in its 64x48 frames (frames 1 [30, 10, 40], "
                           "3 [0, 0, 400]): those frames of real 004 skipped"]
    assert (tally.videos_done, tally.videos_skipped, tally.frames_done, tally.frames_skipped) == (2, 0, 4, 4)
    assert _pngs(tmp_path / "c23") == _pngs(tmp_path / "m") == [0, 2]
    again = crops.crop_group(sources, boxes, size=16, name="real 004")
    assert (again.videos_already, again.frames_done, again.skips) == (2, 4, [])


def _noise_video(path, n, gray=False):
    rng = np.random.default_rng(n)
    frames = [rng.integers(0, 255, (48, 64) if gray else (48, 64, 3), dtype=np.uint8) for _ in range(n)]
    write_video(frames, path, crf=0, gray=gray)
    return path


def test_crop_group_cuts_up_to_the_shortest_video_and_names_the_frames_lost(tmp_path):
    sources = [crops.Source("c23", _noise_video(tmp_path / "c23.mp4", 6), tmp_path / "out" / "c23"),
               crops.Source(ffpp.MASKS, _noise_video(tmp_path / "mask.mp4", 4, gray=True), tmp_path / "out" / "m")]
    boxes = {i: [i, 2, 40] for i in range(8)}
    tally = crops.crop_group(sources, boxes, size=32, name="test")
    assert tally.skips == [
        f"{tmp_path / 'mask.mp4'}: mask video has 4 frames, c23 video 6: frames 4-5 skipped",
        f"{tmp_path / 'c23.mp4'}: c23 video has 6 frames, its face locations go on to frame 7: those frames skipped"]
    assert (tally.videos_done, tally.videos_skipped, tally.frames_done, tally.frames_skipped) == (2, 0, 8, 8)
    for s in sources:
        assert _pngs(s.out_dir) == [0, 1, 2, 3]
        assert json.loads((s.out_dir / manifest.DONE_MARKER).read_text())["frames"] == [0, 1, 2, 3]
    again = crops.crop_group(sources, boxes, size=32, name="test")
    assert (again.videos_done, again.videos_already, again.frames_done, again.skips) == (2, 2, 8, [])
    # Other boxes: the folder is redone, and crops and temporary files of the earlier run are deleted.
    (sources[0].out_dir / "9.png").write_bytes(b"old")
    (sources[0].out_dir / ".2.png.abc.tmp").write_bytes(b"partial")
    tally = crops.crop_group(sources, {i: [i, 2, 40] for i in (1, 2)}, size=32, name="test")
    assert (tally.videos_done, tally.videos_already, tally.skips) == (2, 0, [])
    assert sorted(p.name for p in sources[0].out_dir.iterdir()) == [manifest.DONE_MARKER, "1.png", "2.png"]


def test_crop_group_skips_what_it_cannot_cut_with_a_line_each(tmp_path):
    video = _noise_video(tmp_path / "c23.mp4", 3)
    tally = crops.crop_group([crops.Source("c23", video, tmp_path / "a")], {}, 16, name="real 004")
    assert tally.skips == [f"{video}: no face locations: c23 crops of real 004 skipped"]
    missing = crops.Source("c40", tmp_path / "c40.mp4", tmp_path / "b")
    broken = crops.Source(ffpp.MASKS, tmp_path / "broken.mp4", tmp_path / "c")
    broken.path.write_bytes(video.read_bytes()[:100])
    late = crops.Source("c23", video, tmp_path / "d")
    tally = crops.crop_group([missing, broken, late], {5: [0, 0, 40], 6: [0, 0, 40]}, 16, name="real 004")
    assert tally.skips == [
        f"{missing.path}: video not found: c40 crops of real 004 skipped",
        f"{broken.path}: OpenCV cannot open this video (corrupt or not a video): masks crops of real 004 skipped",
        f"{video}: c23 video has 3 frames, its face locations go on to frame 6: those frames skipped",
        f"{video}: no frame could be cut: c23 crops of real 004 skipped"]
    assert (tally.videos_done, tally.videos_skipped, tally.frames_done, tally.frames_skipped) == (0, 3, 0, 6)
    assert not (late.out_dir / manifest.DONE_MARKER).exists()


# ----------------------------------------------------------------------------- units: the steps of detect_all

def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_choose_videos_per_method_of_the_split_and_shard(tmp_path):
    root = tmp_path / "root"
    for video in ("004", "519", "982"):
        _touch(ffpp.video_path(root, ffpp.REAL, "c23", video))
    for video in ("004_982", "519_515"):
        _touch(ffpp.video_path(root, "Deepfakes", "c23", video))
    methods = (ffpp.REAL, "Deepfakes", "Face2Face")
    tally = manifest.Tally(echo=False)
    assert faces.choose_videos(root, methods, "c23", None, None, None, tally) == {
        ffpp.REAL: ["004", "519", "982"], "Deepfakes": ["004_982", "519_515"]}
    assert tally.skips == [f"{ffpp.videos_dir(root, 'Face2Face', 'c23')}: folder not found: Face2Face c23 videos "
                           "skipped"]
    (tmp_path / "train.json").write_text(json.dumps([["004", "982"], ["123", "456"]]))
    tally = manifest.Tally(echo=False)
    chosen = faces.choose_videos(root, methods[:2], "c23", tmp_path, "train", None, tally)
    assert chosen == {ffpp.REAL: ["004", "982"], "Deepfakes": ["004_982"]}
    not_found = [(ffpp.REAL, "123"), (ffpp.REAL, "456"), ("Deepfakes", "982_004"), ("Deepfakes", "123_456"),
                 ("Deepfakes", "456_123")]
    assert tally.skips == [f"{ffpp.video_path(root, m, 'c23', v)}: video of the train split not found: skipped"
                           for m, v in not_found]
    assert tally.videos_skipped == 5
    assert faces.choose_videos(root, methods[:2], "c23", None, None, (1, 2), tally) == {
        ffpp.REAL: ["519"], "Deepfakes": ["519_515"]}


def test_a_tree_at_another_compression_is_named_not_a_silent_zero(tmp_path):
    root = tmp_path / "root"
    _touch(ffpp.video_path(root, ffpp.REAL, "c40", "004"))
    _touch(ffpp.video_path(root, "Deepfakes", "c40", "004_982"))
    with pytest.raises(SystemExit) as stop:
        load_script("detect_faces").main(["--ffpp-root", str(root), "--out", str(tmp_path / "jsons")])
    assert "no c23 videos of real, Deepfakes" in str(stop.value)
    assert "the c40 videos are there: pass --compression c40" in str(stop.value)
    with pytest.raises(FileNotFoundError, match="--ffpp-root must be the folder that holds original_sequences"):
        faces.choose_videos(tmp_path, (ffpp.REAL,), "c23", None, None, None, manifest.Tally(echo=False))
    _touch(ffpp.video_path(root, ffpp.REAL, "c23", "004"))  # one method at c23: the other gets a line
    tally = manifest.Tally(echo=False)
    assert faces.choose_videos(root, (ffpp.REAL, "Deepfakes"), "c23", None, None, None, tally) == {ffpp.REAL: ["004"]}
    assert tally.skips == [f"{ffpp.videos_dir(root, 'Deepfakes', 'c23')}: folder not found: Deepfakes c23 videos "
                           "skipped (c40 videos are there: --compression c40 reads them)"]


def test_plan_jobs_adds_the_target_originals_only_to_copy_boxes(tmp_path):
    root = tmp_path / "root"
    for video in ("004", "519"):
        _touch(ffpp.video_path(root, ffpp.REAL, "c23", video))
    chosen = {ffpp.REAL: ["519"], "Deepfakes": ["004_982", "519_515", "750_743"]}

    def path(m, v):
        return ffpp.video_path(root, m, "c23", v)

    own = [(ffpp.REAL, "519", path(ffpp.REAL, "519"), {}, False),
           *(("Deepfakes", v, path("Deepfakes", v), {}, False) for v in chosen["Deepfakes"])]
    assert faces.plan_jobs(root, chosen, "c23", {}, copy_targets=False) == own
    # Fakes only count frames; 004 is added (519 is already chosen, 750 is not on disk).
    counted = [(m, v, p, s, True) for m, v, p, s, _ in own[1:]]
    assert faces.plan_jobs(root, chosen, "c23", {}, copy_targets=True) == [
        own[0], *counted, (ffpp.REAL, "004", path(ffpp.REAL, "004"), {}, False)]


def test_run_detection_names_an_unreadable_video_and_keeps_every_methods_file(tmp_path):
    jobs = [(ffpp.REAL, "004", tmp_path / "004.mp4", {"max_frames": 3, "stride": 1}, True)]
    tally = manifest.Tally(echo=False)
    results = faces.run_detection(jobs, [ffpp.REAL, "Deepfakes"], 0, faces.FFPP, tally)
    assert results == {ffpp.REAL: {}, "Deepfakes": {}}
    assert tally.skips == [f"{tmp_path / '004.mp4'}: video not found: video skipped"] and tally.videos_skipped == 1


def test_fakes_copy_their_targets_boxes_and_every_gap_gets_a_line(tmp_path):
    box = [10, 10, 50]
    results = {ffpp.REAL: {"004": faces.VideoBoxes({0: box, 1: box}, [0, 1, 2], detected=1, filled=1),
                           "998": faces.VideoBoxes({}, [0, 1])},
               "NeuralTextures": {"004_982": faces.VideoBoxes(frames=[0, 1, 2, 3])},
               "Face2Face": {"750_743": faces.VideoBoxes(frames=[0, 1])}}
    orphans = faces.copy_target_boxes(results, tmp_path, "c23")
    assert orphans == {("Face2Face", "750_743")}
    target = ffpp.video_path(tmp_path, ffpp.REAL, "c23", "004")
    assert results["NeuralTextures"]["004_982"] == faces.VideoBoxes({0: box, 1: box}, [0, 1, 2, 3], target=target)
    tally = manifest.Tally(echo=False)
    assert faces.report_videos(results, tmp_path, "c23", 1, orphans, tally) == (1, 1)

    def path(m, v):
        return ffpp.video_path(tmp_path, m, "c23", v)

    assert tally.skips == [
        f"{path(ffpp.REAL, '004')}: no face found in 1 of 3 frames (2): those frames left out",
        f"{path(ffpp.REAL, '998')}: no face found in its 2 frames: video skipped",
        f"{path('NeuralTextures', '004_982')}: no box in its target {target} in 2 of 4 frames (2-3): those frames "
        "left out",
        f"{path('Face2Face', '750_743')}: its target original {path(ffpp.REAL, '750')} is missing, unreadable or has "
        "no face: video skipped (or use --fake-boxes own)"]
    assert (tally.videos_done, tally.videos_skipped, tally.frames_done, tally.frames_skipped) == (2, 2, 4, 7)


def test_fakes_without_any_original_are_skipped_not_a_crash(tmp_path):
    results = {"Face2Face": {"750_743": faces.VideoBoxes(frames=[0, 1])}}
    assert faces.copy_target_boxes(results, tmp_path, "c23") == {("Face2Face", "750_743")}


# ----------------------------------------------------------------------------- detection rate

def _rate(path):
    found = faces.detect_video(path, faces.Detector(faces.DetectionSettings(max_gap=0)), stride=10)
    return found.detected, len(found.frames)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_dlib_finds_the_face_again_inside_the_crops(pre_tree):
    det = faces.Detector(faces.DetectionSettings(upsample=1, detect_size=0))
    for method, video in [*((ffpp.REAL, v) for v in REALS), *FAKES.items()]:
        folder = ffpp.face_dir(pre_tree["face"], method, "c23", video)
        found = [bool(det(cv2.imread(str(folder / f"{i}.png")))) for i in range(0, 30, 5)]
        assert all(found), (method, video, found)


@pytest.mark.slow
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


@pytest.mark.slow
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
    frame = read_frames(ffpp.video_path(pre_tree["root"], ffpp.REAL, "c23", "004"), max_frames=6)[5]
    box = _locs(pre_tree, ffpp.REAL)["004"]["5"]
    assert np.array_equal(cv2.imread(str(folder / "5.png")), crops.cut(frame, box, SIZE))
    assert not (folder / ".6.png.abc.tmp").exists() and (folder / manifest.DONE_MARKER).exists()
    rc, out = run("create_faces_from_dlib_locs.py", "--ffpp-root", pre_tree["root"], "--locs", pre_tree["jsons"],
                  "--out", face, "--image-size", SIZE, "--workers", 2, "--methods", "Deepfakes", "--strict")
    assert rc == 0 and "videos: 3 done (3 already complete), 0 skipped" in out, out


@pytest.mark.slow
@needs_samples
def test_sharded_detection_merges_to_the_whole(tmp_path):
    methods = (ffpp.REAL, "NeuralTextures", "FaceSwap")
    for k in range(2):
        rc, out = run("detect_faces.py", "--ffpp-root", SAMPLES, "--out", tmp_path / "shards", "--max-frames", 3,
                      "--shard", f"{k}/2", "--workers", 0, "--methods", *methods)
        assert rc == 0, out
    assert len(list((tmp_path / "shards").glob("dlib_*.shard-*-of-2.json"))) == 6
    faces.detect_all(SAMPLES, tmp_path / "whole", methods=methods, max_frames=3)
    tally = manifest.Tally()
    for method in methods:
        whole = locations.load_locs(tmp_path / "whole", method, tally)
        assert locations.load_locs(tmp_path / "shards", method, tally) == whole and whole, method
    assert sorted(whole) == ["634_660"] and not tally.skips
