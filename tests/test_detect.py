"""detect.py and forensics.inference: inputs -> tracks -> crops -> scores -> verdicts -> files.

Unit tests use a synthetic clip of scikit-image's astronaut (dlib finds her face) and a cheap model whose
score depends on every pixel and on the channel order. The slow tier trains a small model in the test and
runs detect.py on the videos in ../shared (no claim about accuracy: mechanics only).
"""
import csv
import dataclasses
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch
from conftest import SHARED, astronaut, load_script

from forensics import faces, inference
from forensics.crops import cut
from forensics.data import Frame
from forensics.fileio import write_image
from forensics.metrics import verdict
from forensics.overlay import GREEN, RED, YELLOW, blend_map, draw_faces, score_colour, score_plot
from forensics.runs import load_model
from forensics.scoring import ScoreOptions, score_frames
from forensics.video import VideoWriter, ffmpeg_exe, read_frames, stream_problem, video_info, \
    write_video

SIZE = 32  # crop side for the cheap model


class ChannelScorer(torch.nn.Module):
    """A score from every pixel, weighted by channel (so that BGR for RGB would show), and the red channel's
    corner as the map."""

    def score(self, x, quality):
        weights = torch.tensor([1.0, 2.0, 3.0] if quality == "c40" else [3.0, 1.0, 2.0]).view(1, 3, 1, 1)
        return (x * weights).mean(dim=(1, 2, 3)), torch.sigmoid(x[:, :1, :8, :8])


def clip_frames(n=6):
    """The astronaut's head (a face of about 105 px) moving right by 6 px a frame over a plain background."""
    head = cv2.resize(astronaut()[20:260, 100:340], (260, 260), interpolation=cv2.INTER_AREA)
    frames = []
    for k in range(n):
        frame = np.full((300, 400, 3), (40, 90, 140), np.uint8)
        frame[20:280, 20 + 6 * k:280 + 6 * k] = head
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A clip with a face, an image with a face, a faceless image, a truncated clip, a text file."""
    root = tmp_path_factory.mktemp("media")
    write_video(clip_frames(), root / "clip.mp4", fps=10, crf=18)
    noise = np.random.default_rng(1).integers(0, 256, (40, 64, 96, 3), np.uint8)
    write_video(list(noise), root / "long.mp4", fps=10, crf=18)
    write_image(root / "portrait.jpg", astronaut())
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (200, 300, 3), np.uint8), (0, 0), 3)
    write_image(root / "faceless.png", texture)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(root / "long.mp4"), "-c", "copy", "-movflags", "+faststart",
                    str(root / "whole.mp4")], check=True)
    data = (root / "whole.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # header first: OpenCV reads up to the cut
    for name in ("long.mp4", "whole.mp4"):
        (root / name).unlink()
    (root / "notes.txt").write_text("not a video")
    return root


def scorer(batch_size=4, heads=None):
    return inference.Scorer(ChannelScorer(), heads or {"lq": "c40"}, torch.device("cpu"), SIZE, batch_size)


# ----------------------------------------------------------------------------- faces to score

def _found(detections, frames, width=360, height=256):
    return inference.Found(faces.FrameDetections(list(frames), list(frames), detections, width, height), 10.0)


def test_choose_faces_boxes_as_detect_faces_and_skips_with_the_reason():
    main = {f: [(100 + 2 * f, 60, 200 + 2 * f, 160, 1.0)] for f in range(12) if f not in (3, 9, 10, 11)}
    for f in range(2, 6):
        main.setdefault(f, []).append((10, 10, 40, 40, 1.0))  # a 39 px box: under --min-face 64
    for f in range(0, 12, 2):
        main.setdefault(f, []).append((250, 100, 330, 180, 1.0))  # a face in every other frame
    found = _found(main, range(12))
    every_frame = faces.DetectionSettings(max_gap=2)  # as the detections given: on every frame
    settings = inference.Settings(detection=every_frame, min_face=64, min_track=5)
    chosen = inference.choose_faces(found, settings)
    expected = faces.fill_gaps({f: faces.square_box(r, 360, 256) for f, r in faces.track_main_face(main).items()},
                               range(12), 2, 360, 256)
    assert len(chosen) == 1 and chosen[0].boxes == expected and 3 in expected and 11 not in expected
    assert chosen[0].detected == set(range(12)) - {3, 9, 10, 11}

    every = inference.choose_faces(found, inference.Settings(detection=every_frame, min_face=64, min_track=5,
                                                             all_faces=True))
    assert [face.index for face in every] == [0, 1] and every[0].boxes == expected
    assert sorted(every[1].detected) == list(range(0, 12, 2))  # the small face is left out
    assert len(inference.choose_faces(found, inference.Settings(detection=every_frame, all_faces=True,
                                                                min_track=7))) == 1

    with pytest.raises(inference.Skip, match="face too small: its box is 51 px, below --min-face 64"):
        inference.choose_faces(_found({0: [(10, 10, 49, 49, 1.0)]}, [0]), settings)
    with pytest.raises(inference.Skip, match="no face found in its 12 frames .*--upsample 1"):
        inference.choose_faces(_found({}, range(12)), settings)
    with pytest.raises(inference.Skip, match="no face was found in at least --min-track 7 of its 12 frames"):
        inference.choose_faces(_found({f: main[f][-1:] for f in range(0, 12, 2)}, range(12)),
                               inference.Settings(detection=every_frame, all_faces=True, min_track=7))


# ----------------------------------------------------------------------------- inputs

def test_inputs_from_folders_by_suffix_files_as_given(tmp_path):
    for name in ("b.mp4", "a.JPG", "c.webp", "notes.txt", ".hidden.mp4", "sub/d.mkv", "sub/e.png", ".cache/f.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    inputs, ignored = inference.gather_inputs([tmp_path])
    assert [(i.path.name, i.kind) for i in inputs] == [("a.JPG", "image"), ("b.mp4", "video"), ("c.webp", "image")]
    assert [p.name for p in ignored] == ["notes.txt"]
    inputs, _ = inference.gather_inputs([tmp_path, tmp_path / "b.mp4", tmp_path / "notes.txt", "missing.mov"],
                                        recursive=True)
    assert [i.path.name for i in inputs] == ["a.JPG", "b.mp4", "c.webp", "d.mkv", "e.png", "notes.txt", "missing.mov"]
    assert [i.kind for i in inputs][-2:] == ["video", "video"]


def test_a_truncated_video_is_caught_before_opencv_reads_it_to_the_cut(media):
    frames, _, _, _ = video_info(media / "truncated.mp4")
    assert frames == 40 and 5 < len(read_frames(media / "truncated.mp4")) < 40  # OpenCV alone says nothing
    assert "partial file" in stream_problem(media / "truncated.mp4")
    assert stream_problem(media / "clip.mp4") is None
    assert "Invalid data" in stream_problem(media / "notes.txt")


# ----------------------------------------------------------------------------- scores

def test_scores_are_score_frames_on_the_same_crops(media, tmp_path):
    boxes = {f: [20 + 6 * f, 20, 260] for f in range(6) if f != 2}
    face = inference.Face(0, boxes, set(boxes))
    item = inference.Input(media / "clip.mp4", "video")
    seen = []
    scores = inference.score_faces(item, [face], scorer(batch_size=2, heads={"lq": "c40", "hq": "c23"}),
                                   inference.Settings(max_frames=0), on_frame=lambda *a: seen.append(a))
    assert sorted(scores[0]) == sorted(boxes) and [s[0] for s in seen] == sorted(boxes)
    frames = read_frames(media / "clip.mp4")
    tree = tmp_path / "face"
    for f, box in boxes.items():
        write_image(tree / "real" / "c40" / "clip" / f"{f}.png", cut(frames[f], box, SIZE))
        write_image(tree / "real" / "c23" / "clip" / f"{f}.png", cut(frames[f], box, SIZE))
    listed = [Frame("real", "clip", f) for f in sorted(boxes)]
    for head, quality in (("lq", "c40"), ("hq", "c23")):
        expected, maps, _ = score_frames(ChannelScorer(), tree, listed, quality, torch.device("cpu"),
                                         ScoreOptions(image_size=SIZE), keep_maps=True)
        np.testing.assert_allclose([scores[0][f][head] for f in sorted(boxes)], expected, rtol=1e-6)
        np.testing.assert_array_equal(np.stack([s[2][0][3][head] for s in seen]), maps)
    assert len({round(scores[0][f]["lq"], 6) for f in boxes}) == len(boxes)


def test_verdict_threshold_and_source(tmp_path):
    assert verdict(2.0, 2.0) == "fake" and verdict(1.99, 2.0) == "real"
    assert verdict(5.0, None) is None
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "val_threshold_c40": 3.5, "val_threshold_c23": 2.5},
                                                  {"epoch": 2, "val_threshold_c40": 4.5}]))
    got = inference.thresholds_of(run, {"epoch": 2}, {"lq": "c40", "hq": "c23"})
    assert got["lq"].value == 4.5 and "history.json, epoch 2 at c40" in got["lq"].source
    assert "calibrated to FF++-like data" in got["lq"].source
    assert got["hq"].value is None and "--threshold" in got["hq"].source
    assert inference.thresholds_of(run, {"epoch": 2}, {"lq": "c40"}, 7.0)["lq"] == inference.Threshold(7.0,
                                                                                                     "--threshold")


# ----------------------------------------------------------------------------- outputs

def test_video_writer_streams_every_frame_and_leaves_nothing_when_aborted(tmp_path):
    frames = [np.full((35, 47, 3), 20 * k, np.uint8) for k in range(7)]  # odd sizes: padded for yuv420p
    with VideoWriter(tmp_path / "v.mp4", fps=5) as writer:
        for frame in frames:
            writer.write(frame)
    back = read_frames(tmp_path / "v.mp4")
    assert len(back) == 7 and back[0].shape == (36, 48, 3)
    assert abs(int(back[3][10, 10, 0]) - 60) <= 6 and abs(int(back[5][10, 10, 0]) - 100) <= 6
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(tmp_path / "w.mp4") as writer:
        writer.write(frames[0])
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    with pytest.raises(ValueError, match="frame of 10x10 in a 47x35 video"):
        with VideoWriter(tmp_path / "x.mp4") as writer:
            writer.write(frames[0])
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_overlay_colours_maps_and_plot():
    assert score_colour(0.0, 4.0) == tuple(GREEN) and score_colour(4.0, 4.0) == tuple(YELLOW)
    assert score_colour(9.0, 4.0) == tuple(RED) and score_colour(1.0, None) == tuple(YELLOW)
    face = np.full((40, 40, 3), 100, np.uint8)
    assert np.array_equal(blend_map(face, np.zeros((8, 8))), face)
    hot = blend_map(face, np.ones((8, 8)))
    assert not np.array_equal(hot, face) and hot.shape == face.shape
    frame = np.zeros((120, 160, 3), np.uint8)
    drawn = draw_faces(frame, [([30, 40, 60], 9.0, np.ones((8, 8)), "fake 9")], 4.0)
    assert tuple(drawn[70, 30]) == tuple(RED) and frame.max() == 0  # the box's left edge; the input untouched
    png = score_plot({"lq": ([0, 1, 2], [1.0, 2.0, 3.0])}, {"lq": 2.5}, "clip", fps=25)
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (300, 800)


def test_run_scores_the_good_inputs_reports_the_bad_and_writes_everything(media, tmp_path):
    inputs, ignored = inference.gather_inputs([media])
    assert [i.path.name for i in inputs] == ["clip.mp4", "faceless.png", "portrait.jpg", "truncated.mp4"]
    inputs.insert(1, inference.Input(media / "notes.txt", "video"))
    settings = inference.Settings(max_frames=5, stride=2)
    thresholds = {"lq": inference.Threshold(2.0, "test")}
    lines = []
    report = inference.run(inputs, scorer(), thresholds, settings, tmp_path / "out", workers=1, overlay=True,
                           meta={"checkpoint": "none"}, echo=lines.append)
    entries = json.loads((tmp_path / "out" / "results.json").read_text())["inputs"]
    assert entries == json.loads(json.dumps(report.entries))
    assert [(e["path"], e["status"]) for e in entries] == [(str(i.path), s) for i, s in zip(
        inputs, ["scored", "skipped", "skipped", "scored", "skipped"])]
    reasons = {e["path"]: e["reason"] for e in entries if e["reason"]}
    assert "truncated, damaged or not a video" in reasons[str(media / "truncated.mp4")]
    assert "Invalid data" in reasons[str(media / "notes.txt")]
    assert reasons[str(media / "faceless.png")].startswith("no face found in its 1 frame ")
    assert lines[1] == f"skip: {media / 'notes.txt'}: {reasons[str(media / 'notes.txt')]}"

    clip = entries[0]
    expected = faces.detect_video(media / "clip.mp4", faces.Detector(settings.detection), max_frames=5, stride=2)
    assert [fr["frame"] for fr in clip["faces"][0]["frames"]] == [0, 2, 4] == sorted(expected.boxes)
    assert [fr["box"] for fr in clip["faces"][0]["frames"]] == [expected.boxes[f] for f in (0, 2, 4)]
    assert clip["frames_read"] == 3 and clip["frames_scored"] == 3 and (clip["width"], clip["height"]) == (400, 300)
    mean = np.mean([fr["scores"]["lq"] for fr in clip["faces"][0]["frames"]])
    assert clip["score"]["lq"] == pytest.approx(mean) and clip["verdict"]["lq"] == ("fake" if mean >= 2 else "real")
    assert lines[0] == f"{media / 'clip.mp4'}  {clip['verdict']['lq'].upper()}  {mean:.4f}  3 frames"

    overlay = read_frames(clip["overlay"])
    assert len(overlay) == 3 and overlay[0].shape == (300, 400, 3)
    assert cv2.imread(clip["plot"]).shape[:2] == (300, 800)
    portrait = entries[3]
    assert portrait["frames_scored"] == 1 and cv2.imread(portrait["overlay"]).shape == (512, 512, 3)

    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["path"], r["frame"]) for r in rows] == [(str(media / "clip.mp4"), str(f)) for f in (0, 2, 4)] + [
        (str(media / "notes.txt"), ""), (str(media / "faceless.png"), ""), (str(media / "portrait.jpg"), "0"),
        (str(media / "truncated.mp4"), "")]
    assert float(rows[1]["score_lq"]) == clip["faces"][0]["frames"][1]["scores"]["lq"]
    assert [rows[0][k] for k in ("x", "y", "size")] == [str(v) for v in expected.boxes[0]]
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == ["clip.overlay.mp4", "clip.scores.png", "portrait.overlay.png", "results.csv", "results.json"]


def test_strict_stops_at_the_first_skip(media, tmp_path):
    inputs = [inference.Input(media / "faceless.png", "image"), inference.Input(media / "portrait.jpg", "image")]
    report = inference.run(inputs, scorer(), {"lq": inference.Threshold(None, "none")}, inference.Settings(),
                           tmp_path, strict=True, echo=lambda _: None)
    assert report.stopped and [e["status"] for e in report.entries] == ["skipped"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"]["stopped_at_first_skip"] and len(saved["inputs"]) == 1


# ----------------------------------------------------------------------------- slow: detect.py on ../shared

REAL_VIDEOS = SHARED / "data" / "real_faces" / "videos"
DFDC = SHARED / "data" / "dfdc_samples"
FFPP = SHARED / "data" / "ffpp_c23_samples"
needs_shared = pytest.mark.skipif(not all(p.is_dir() for p in (REAL_VIDEOS, DFDC, FFPP)),
                                  reason=f"shared videos not found under {SHARED / 'data'}")
MAX_FRAMES, STRIDE = 9, 3


@pytest.fixture(scope="module")
def shared_run(one_step_run, tmp_path_factory):
    """detect.py on the three shared folders plus a faceless image and a truncated copy of a shared clip."""
    extra = tmp_path_factory.mktemp("bad")
    write_image(extra / "faceless.png", np.full((240, 320, 3), 128, np.uint8))
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(REAL_VIDEOS / "liveportrait_d11.mp4"), "-c", "copy",
                    "-movflags", "+faststart", str(extra / "whole.mp4")], check=True)
    (extra / "truncated.mp4").write_bytes((extra / "whole.mp4").read_bytes()[:200_000])
    (extra / "whole.mp4").unlink()
    out = tmp_path_factory.mktemp("detect")
    paths = [REAL_VIDEOS, extra / "faceless.png", extra / "truncated.mp4", DFDC, FFPP]
    status = load_script("detect").main([*map(str, paths), "--recursive", "--checkpoint", str(one_step_run),
                                         "--out", str(out), "--device", "cpu", "--workers", "2", "--overlay",
                                         "--max-frames", str(MAX_FRAMES), "--stride", str(STRIDE)])
    return out, status, extra, json.loads((out / "results.json").read_text())


@pytest.mark.slow
@needs_shared
def test_detect_on_the_shared_videos_boxes_frames_and_skips(shared_run, one_step_run, capsys):
    out, status, extra, results = shared_run
    expected_paths = [*sorted(REAL_VIDEOS.glob("*.mp4")), extra / "faceless.png", extra / "truncated.mp4",
                      *sorted(DFDC.glob("*.mp4")), *sorted(FFPP.rglob("*.mp4"))]
    entries = results["inputs"]
    assert [e["path"] for e in entries] == [str(p) for p in expected_paths] and status == 1
    best = json.loads((one_step_run / "best.json").read_text())
    assert results["heads"]["lq"]["threshold"] == best["val_threshold_c40"]
    bad = {e["path"]: e["reason"] for e in entries if e["path"].startswith(str(extra))}
    assert bad[str(extra / "faceless.png")].startswith("no face found in its 1 frame")
    assert "partial file" in bad[str(extra / "truncated.mp4")]
    detector = faces.Detector(faces.FOOTAGE)  # detect.py's defaults
    for entry, path in zip(entries, expected_paths):
        if path.parent == extra:
            continue
        count, _, width, height = video_info(path)
        expected = faces.detect_video(path, detector, max_frames=MAX_FRAMES, stride=STRIDE)
        if not expected.boxes:  # no face in these frames at --detect-size 640: skipped with that reason
            assert entry["status"] == "skipped" and entry["reason"].startswith("no face found in its 3 frames")
            continue
        assert entry["status"] == "scored", entry
        assert entry["frames_read"] == len(range(0, min(count, MAX_FRAMES), STRIDE)) == 3
        frames = entry["faces"][0]["frames"]
        assert {fr["frame"]: fr["box"] for fr in frames} == expected.boxes
        assert entry["frames_scored"] == len(expected.boxes)
        assert all(0 <= x and 0 <= y and x + s <= width and y + s <= height for x, y, s in (fr["box"] for fr in frames))
        assert (entry["width"], entry["height"]) == (width, height)
        overlay = read_frames(entry["overlay"])
        assert len(overlay) == entry["frames_scored"] and overlay[0].shape[:2] == (height + height % 2,
                                                                                    width + width % 2)
    scored = [e for e in entries if e["status"] == "scored"]
    assert len(scored) >= 20 and any(e["path"].startswith(str(DFDC)) for e in scored)
    threshold = results["heads"]["lq"]["threshold"]
    assert all(e["verdict"]["lq"] == ("fake" if e["score"]["lq"] >= threshold else "real") for e in scored)


@pytest.mark.slow
@needs_shared
def test_detect_scores_are_score_frames_on_the_same_crops(shared_run, one_step_run, tmp_path):
    _, _, _, results = shared_run
    model, info = load_model(one_step_run, "best", "c40")
    picked = [e for e in results["inputs"] if e["status"] == "scored"][::6]
    listed, expected = [], []
    for k, entry in enumerate(picked):
        frames = read_frames(entry["path"], max_frames=MAX_FRAMES, stride=STRIDE)
        for fr in entry["faces"][0]["frames"]:
            write_image(tmp_path / "real" / "c40" / f"v{k}" / f"{fr['frame']}.png",
                        cut(frames[fr["frame"]], fr["box"], info["image_size"]))
            listed.append(Frame("real", f"v{k}", fr["frame"]))
            expected.append(fr["scores"]["lq"])
    scores, _, _ = score_frames(model, tmp_path, listed, "c40", torch.device("cpu"),
                                ScoreOptions(image_size=info["image_size"]))
    assert len(picked) >= 3 and len(set(expected)) > 1
    np.testing.assert_allclose(expected, scores, rtol=1e-5)


@pytest.mark.slow
@needs_shared
def test_all_faces_on_the_crowd_finds_several_tracks(one_step_run, tmp_path):
    crowd = REAL_VIDEOS / "street_crowd.mp4"
    status = load_script("detect").main([str(crowd), "--checkpoint", str(one_step_run), "--out", str(tmp_path),
                                         "--device", "cpu", "--workers", "0", "--all-faces", "--detect-size", "0",
                                         "--detect-every", "1",
                                         "--max-frames", "40", "--stride", "4", "--min-track", "3"])
    entry = json.loads((tmp_path / "results.json").read_text())["inputs"][0]
    assert status == 0 and len(entry["faces"]) >= 2
    assert entry["frames_scored"] == sum(len(face["frames"]) for face in entry["faces"])
    assert entry["score"]["lq"] == max(face["score"]["lq"] for face in entry["faces"])
    every_frame = dataclasses.replace(faces.FOOTAGE, detect_size=0, detect_every=1)
    main = faces.detect_video(crowd, faces.Detector(every_frame), max_frames=40, stride=4)
    assert {fr["frame"]: fr["box"] for fr in entry["faces"][0]["frames"]} == main.boxes
    first = [{fr["frame"]: fr["box"] for fr in face["frames"]} for face in entry["faces"]]
    shared = set(first[0]) & set(first[1])
    assert shared and all(faces.iou(first[0][f], first[1][f]) < 0.1 for f in shared)


@pytest.mark.slow
@needs_shared
def test_released_folder_both_heads_and_a_corrupt_checkpoint(one_step_run, tmp_path, capsys):
    clip = REAL_VIDEOS / "liveportrait_d0.mp4"
    detect = load_script("detect").main
    common = [str(clip), "--device", "cpu", "--workers", "0", "--max-frames", "6", "--stride", "2"]
    assert detect([*common, "--checkpoint", str(one_step_run), "--out", str(tmp_path / "both"), "--head", "both"]) == 0
    both = json.loads((tmp_path / "both" / "results.json").read_text())
    assert set(both["heads"]) == {"lq", "hq"} and both["heads"]["hq"]["threshold"] is not None
    frames = both["inputs"][0]["faces"][0]["frames"]
    assert len(frames) == 3 and all(set(fr["scores"]) == {"lq", "hq"} for fr in frames)

    released = tmp_path / "released"
    released.mkdir()
    lq = torch.load(one_step_run / "lq_head_000001.tar", weights_only=True)
    torch.save({"net": {"module." + k: v for k, v in lq["net"].items()}}, released / "head_000001.tar")
    shutil.copy(one_step_run / "tail_000001.tar", released / "tail_000001.tar")
    base = [*common, "--checkpoint", str(released), "--epoch", "1", "--image-size", "64"]
    assert detect([*base, "--out", str(tmp_path / "released_out")]) == 0
    printed = capsys.readouterr().out
    assert "threshold lq: no verdict (none:" in printed and "NO VERDICT" not in printed
    plain = json.loads((tmp_path / "released_out" / "results.json").read_text())["inputs"][0]
    assert plain["verdict"] == {"lq": None}
    assert [fr["scores"]["lq"] for fr in plain["faces"][0]["frames"]] == pytest.approx(
        [fr["scores"]["lq"] for fr in frames], rel=1e-6)
    assert f"{clip}  no verdict  {plain['score']['lq']:.4f}  3 frames" in printed
    assert detect([*base, "--out", str(tmp_path / "thresholded"), "--threshold", "0"]) == 0
    assert json.loads((tmp_path / "thresholded" / "results.json").read_text())["inputs"][0]["verdict"] == {
        "lq": "fake"}
    with pytest.raises(SystemExit, match="holds only the LQ head .*use --head lq"):
        detect([*base, "--out", str(tmp_path / "x"), "--head", "hq"])

    data = (released / "tail_000001.tar").read_bytes()
    (released / "tail_000001.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit, match=r"tail_000001\.tar: truncated or corrupt checkpoint"):
        detect([*base, "--out", str(tmp_path / "y")])
    assert not (tmp_path / "y").exists()
