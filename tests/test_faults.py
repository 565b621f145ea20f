"""Faults a hostile but fair user injects: ids that are paths, damaged and changed inputs, kills, full disks,
missing parts of the data and one-class splits.

Unit tests inject one fault each into one function. The slow tier runs the scripts on a small demo tree as a
user would and checks after every step that nothing outside its --out was created or removed, every PNG
decodes, every checkpoint loads and every skip line names a file.
"""
import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, load_script

from forensics import crops, data, faces, ffpp, fileio, locations, manifest
from forensics.evaluation import evaluate
from forensics.training import save_part
from forensics.video import iter_frames, read_frames, write_video
from models.checkpoints import CheckpointError, read_checkpoint


def _noise_video(path, n, size=(48, 64)):
    rng = np.random.default_rng(n)
    write_video([rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(n)], path, crf=0)
    return path


def _png(value=7, side=8):
    return cv2.imencode(".png", np.full((side, side, 3), value, np.uint8))[1].tobytes()


# ----------------------------------------------------------------------------- ids that would be paths

def test_ids_that_would_be_paths_are_refused_where_they_become_paths(tmp_path):
    for good in ("004", "004_982", "clip-7", "A_b-9"):
        assert ffpp.check_id("video", good) == good
    for bad in ("/some/dir", "../../x", "..", ".", "", "a b", "a/b", "a\\b", None, 4):
        with pytest.raises(ValueError, match="not a plain name"):
            ffpp.check_id("video", bad, "x.json")
    with pytest.raises(ValueError, match=r"x\.json: video '\.\./\.\./x' is not a plain name"):
        ffpp.check_id("video", "../../x", "x.json")
    with pytest.raises(ValueError, match="not a plain name"):
        ffpp.face_dir(tmp_path, ffpp.REAL, "c23", "/etc")
    with pytest.raises(ValueError, match="not a plain name"):
        ffpp.face_dir(tmp_path, "../real", "c23", "004")
    with pytest.raises(ValueError, match="not a plain name"):
        ffpp.video_path(tmp_path, ffpp.REAL, "c23", "../../004")
    (tmp_path / "train.json").write_text(json.dumps([["000", "001"], ["002", "../../x"]]))
    with pytest.raises(ValueError, match=r"train\.json: video id '\.\./\.\./x' is not a plain name"):
        ffpp.read_split(tmp_path, "train")


def test_a_location_key_that_is_a_path_is_skipped_and_nothing_outside_is_touched(tmp_path):
    """The attack of the issue: a key /some/dir beside /some/dir.mp4 made the crop step write into /some/dir
    and delete the user's holiday.png there."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "holiday.png").write_bytes(b"holiday")
    _noise_video(outside / "dir.mp4", 3)
    root, locs_dir, face = tmp_path / "root", tmp_path / "jsons", tmp_path / "face"
    video = ffpp.video_path(root, ffpp.REAL, "c23", "004")
    video.parent.mkdir(parents=True)
    shutil.copy(outside / "dir.mp4", video)
    boxes = {str(i): [0, 0, 40] for i in range(3)}
    keys = [str(outside / "dir"), "../../../outside/dir", "004"]
    locs_dir.mkdir()
    (locs_dir / "dlib_real.json").write_text(json.dumps({k: boxes for k in keys}))
    before = sorted(p.relative_to(tmp_path) for p in outside.rglob("*"))
    tally = crops.create_faces(root, locs_dir, face, methods=(ffpp.REAL,), qualities=("c23",), image_size=16)
    assert sorted(p.relative_to(tmp_path) for p in outside.rglob("*")) == before
    assert (outside / "dir" / "holiday.png").read_bytes() == b"holiday"
    assert [s for s in tally.skips if "not a plain name" in s] == [
        f"{locs_dir / 'dlib_real.json'}: video key {k!r} is not a plain name (letters, digits, _ and - only): that "
        "entry skipped, since it would become a path outside the crop tree" for k in keys[:2]]
    assert sorted(p.name for p in ffpp.face_dir(face, ffpp.REAL, "c23", "004").iterdir()) == [
        manifest.DONE_MARKER, "0.png", "1.png", "2.png"]


def test_cleanup_deletes_only_names_the_crop_step_writes(tmp_path):
    video = _noise_video(tmp_path / "c23.mp4", 3)
    out = tmp_path / "crops"
    (out / "sub").mkdir(parents=True)
    mine = ["7.png", ".1.png.ab_12x.tmp", "..done.json.k3j4.tmp"]
    theirs = ["holiday.png", "notes.txt", "1.png.bak", "x7.png", ".hidden.png", ".done.json.k3j4.tmp", "sub/3.png"]
    for name in mine + theirs:
        (out / name).write_bytes(b"x")
    tally = crops.crop_video(video, {i: [0, 0, 40] for i in range(3)}, out, size=16)
    assert tally.videos_done == 1 and not tally.skips
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == sorted([manifest.DONE_MARKER, "0.png", "1.png", "2.png"] + theirs)


# ----------------------------------------------------------------------------- the finished-folder marker

def test_a_rerun_repairs_a_truncated_crop_and_redoes_a_replaced_video(tmp_path):
    short = _noise_video(tmp_path / "short.mp4", 3)
    video = tmp_path / "c23.mp4"
    shutil.copy(short, video)
    out = tmp_path / "crops"
    boxes = {i: [i, 0, 40] for i in range(6)}
    first = crops.crop_video(video, boxes, out, size=16)
    assert first.frames_done == 3
    (out / "1.png").write_bytes((out / "1.png").read_bytes()[:30])
    again = crops.crop_video(video, boxes, out, size=16)
    assert again.videos_already == 0 and cv2.imread(str(out / "1.png")) is not None
    assert crops.crop_video(video, boxes, out, size=16).videos_already == 1
    _noise_video(video, 6)  # the fixed video: all six frames
    fixed = crops.crop_video(video, boxes, out, size=16)
    assert fixed.videos_already == 0 and fixed.frames_done == 6
    frames = read_frames(video)
    assert np.array_equal(cv2.imread(str(out / "5.png")), crops.cut(frames[5], boxes[5], 16))
    assert np.array_equal(cv2.imread(str(out / "0.png")), crops.cut(frames[0], boxes[0], 16))


def test_verify_redoes_a_folder_whose_crop_is_damaged_in_place(tmp_path):
    video = _noise_video(tmp_path / "c23.mp4", 3)
    out = tmp_path / "crops"
    boxes = {i: [0, 0, 40] for i in range(3)}
    crops.crop_video(video, boxes, out, size=16)
    good = (out / "2.png").read_bytes()
    (out / "2.png").write_bytes(b"\0" * len(good))
    assert crops.crop_video(video, boxes, out, size=16).videos_already == 1  # the cheap check cannot see it
    assert crops.crop_group([crops.Source("video", video, out)], boxes, 16, "v", verify=True).videos_already == 0
    assert (out / "2.png").read_bytes() == good


# ----------------------------------------------------------------------------- bad boxes

def test_a_malformed_box_costs_its_frame_with_a_line_naming_the_file(tmp_path):
    path = tmp_path / "dlib_real.json"
    path.write_text(json.dumps({"004": {"0": [1, 2, 30], "1": [1, 2], "2": [1, 2, "a"], "3": [-1, 0, 9],
                                        "4": [0, 0, 0], "x": [1, 2, 3], "5": [1.0, 2, 30], "6": [True, 0, 9]}}))
    tally = manifest.Tally(echo=False)
    assert locations.load_locs(tmp_path, "real", tally) == {"004": {0: [1, 2, 30], 5: [1, 2, 30]}}
    assert tally.skips == [
        f"{path}: video 004: 6 frames whose entry is not frame: [x, y, size] with x, y >= 0 and size > 0: "
        "1 ([1, 2]), 2 ([1, 2, 'a']), 3 ([-1, 0, 9]), ...: those frames skipped (regenerate the file with "
        "detect_faces.py)"]
    assert tally.frames_skipped == 6


# ----------------------------------------------------------------------------- full disks and unwritable --out

class _FullDisk:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_and_leaves_nothing_behind(tmp_path, monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode: _FullDisk(real(fd, mode)))
    with pytest.raises(OSError, match=re.escape(f"{tmp_path / 'a' / '3.png'}: cannot write (No space left on "
                                                "device); free some space there")):
        fileio.write_image(tmp_path / "a" / "3.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(OSError, match=re.escape(f"{tmp_path / 'tail_000001.tar'}: cannot write")):
        save_part(tmp_path / "tail_000001.tar", torch.nn.Linear(2, 2))
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    # The crop step stops with that one line, not a traceback from a worker.
    root = tmp_path / "root"
    video = ffpp.video_path(root, ffpp.REAL, "c23", "004")
    video.parent.mkdir(parents=True)
    _noise_video(video, 2)
    (tmp_path / "jsons").mkdir()
    (tmp_path / "jsons" / "dlib_real.json").write_text('{"004": {"0": [0, 0, 40]}}')
    with pytest.raises(SystemExit, match=r"error: \[Errno 28\] .*face/real/c23/004/0\.png: cannot write"):
        load_script("create_faces_from_dlib_locs").main(
            ["--ffpp-root", str(root), "--locs", str(tmp_path / "jsons"), "--out", str(tmp_path / "face"),
             "--workers", "0", "--methods", "real"])


def test_an_unwritable_out_is_found_before_any_detection(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match=re.escape(f"{tmp_path / 'file' / 'jsons'}: cannot write there")):
        faces.detect_all(tmp_path / "root", tmp_path / "file" / "jsons")


# ----------------------------------------------------------------------------- detection resumes

def test_detection_log_resumes_and_ignores_stale_or_cut_lines(tmp_path, capsys):
    videos = {v: _noise_video(tmp_path / f"{v}.mp4", n) for v, n in (("004", 2), ("519", 3), ("634", 4))}
    settings = {"max_frames": None, "stride": 1}
    jobs = [(ffpp.REAL, v, path, settings, True) for v, path in videos.items()]
    log = faces.DetectionLog(tmp_path, None, settings, faces.FFPP)
    # 004 was detected before (its line says frames [0]: proof that it is taken, not redone); 519's line is of
    # other settings; a kill cut the last line short.
    old = faces.DetectionLog(tmp_path, None, {**settings, "stride": 2}, faces.FFPP)
    lines = [json.dumps({"key": log.key(jobs[0]), "boxes": {}, "frames": [0], "detected": 0, "filled": 0}),
             json.dumps({"key": old.key(jobs[1]), "boxes": {}, "frames": [0, 2], "detected": 0, "filled": 0}),
             '{"key": "' + log.key(jobs[2])[:10]]
    log.path.write_text("\n".join(lines))
    tally = manifest.Tally(echo=False)
    try:
        results = faces.run_detection(jobs, [ffpp.REAL], 0, faces.FFPP, tally, log)
    finally:
        log.close()
    assert {v: r.frames for v, r in results[ffpp.REAL].items()} == {"004": [0], "519": [0, 1, 2], "634": [0, 1, 2, 3]}
    assert f"resuming: 1 videos taken from {log.path}, 2 to detect" in capsys.readouterr().err
    kept = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [e["key"] for e in kept] == [log.key(j) for j in jobs]  # stale and cut lines dropped, new ones added
    os.utime(videos["004"], ns=(0, 0))  # the video changed: its line no longer counts
    assert log.key(jobs[0]) != kept[0]["key"]


# ----------------------------------------------------------------------------- the frame index and the loader

@pytest.fixture()
def tree(tiny_tree, tmp_path):
    """A copy of the synthetic tree that a test may damage."""
    face, splits = tiny_tree
    shutil.copytree(face, tmp_path / "face")
    return tmp_path / "face", splits


def test_the_index_leaves_out_damaged_crops_and_stops_on_many(tree, capsys, monkeypatch):
    face, splits = tree
    monkeypatch.setattr(data, "MAX_BAD_SHARE", 0.1)  # 2 of the tiny tree's 24 frames
    whole = data.index_frames(face, splits, "train", "Deepfakes", balance=False)
    folder = ffpp.face_dir(face, "Deepfakes", "c40", "000_001")
    (folder / "1.png").write_bytes(b"")
    manifest.mark_finished(ffpp.face_dir(face, ffpp.REAL, "c23", "000"), {}, [0, 1, 2])
    real = ffpp.face_dir(face, ffpp.REAL, "c23", "000") / "2.png"
    real.write_bytes(real.read_bytes()[:50])  # truncated after its folder's marker recorded its size
    frames = data.index_frames(face, splits, "train", "Deepfakes", balance=False)
    assert set(whole) - set(frames) == {data.Frame("Deepfakes", "000_001", 1), data.Frame(ffpp.REAL, "000", 2)}
    err = capsys.readouterr().err
    assert f"skip: {folder / '1.png'}: empty: frame left out" in err
    assert re.search(f"skip: {re.escape(str(real))}: 50 bytes, its folder's .done.json recorded \\d+: frame left out",
                     err)
    with pytest.raises(data.DataError, match="--strict: 0 warnings and 2 unusable crops"):
        data.index_frames(face, splits, "train", "Deepfakes", strict=True)
    for i in (0, 2):
        (folder / f"{i}.png").write_bytes(b"")
    with pytest.raises(data.DataError, match=r"4 of 24 frames of the train split have unusable crops \(more than 10%"):
        data.index_frames(face, splits, "train", "Deepfakes")


def test_verify_decodes_every_crop_before_the_first_step(tree, capsys):
    face, splits = tree
    crop = ffpp.face_dir(face, "FaceSwap", "masks", "001_000") / "0.png"
    crop.write_bytes(b"\x89PNG" + b"\0" * 200)
    assert data.Frame("FaceSwap", "001_000", 0) in data.index_frames(face, splits, "train", "FaceSwap")
    with pytest.raises(data.DataError, match="more than 1%"):  # one of 24 frames
        data.index_frames(face, splits, "train", "FaceSwap", verify=True)
    assert f"skip: {crop}: does not decode: frame left out" in capsys.readouterr().err


def test_a_method_or_quality_missing_is_said_loudly_and_strict_stops(tree, capsys):
    face, splits = tree
    shutil.rmtree(face / "NeuralTextures" / "c40")
    shutil.rmtree(ffpp.face_dir(face, "Face2Face", "c23", "001_000"))
    frames = data.index_frames(face, splits, "train", "All")
    assert {f.method for f in frames} == {ffpp.REAL, "Deepfakes", "Face2Face", "FaceSwap"}
    err = capsys.readouterr().err
    assert (f"warning: NeuralTextures: 4 of 4 videos of the train split have crops at another quality but none at "
            f"c40 ({face / 'NeuralTextures' / 'c40'}/000_001/ ...): left out") in err
    assert (f"warning: Face2Face: 1 of 4 videos of the train split have crops at another quality but none at c23 "
            f"({face / 'Face2Face' / 'c23'}/001_000/ ...): left out") in err
    assert "warning: no NeuralTextures frames in the train split at c23+c40" in err
    assert "--dataset All covers 3 of 4 methods" in err
    with pytest.raises(data.DataError, match="--strict: 3 warnings"):
        data.index_frames(face, splits, "train", "All", strict=True)


def test_a_crop_that_fails_in_a_worker_costs_its_sample_with_a_line(tree, capfd):
    face, splits = tree
    frames = data.index_frames(face, splits, "train", "Deepfakes")
    bad = frames[5]
    path = ffpp.face_dir(face, bad.method, "c40", bad.video) / f"{bad.frame}.png"
    path.write_bytes(b"\0" * path.stat().st_size)  # damaged after the index was made
    for decoder in data.DECODERS:
        dataset = data.FaceFrames(face, frames, 64, decoder=decoder)
        assert dataset[5] is None
        assert f"skip: {path}: cannot read this image" in capfd.readouterr().err
        batch = data.collate([dataset[i] for i in (4, 5, 6)])
        assert batch.skipped == 1 and batch.index.tolist() == [4, 6] and batch.images["c40"].shape[0] == 2
    assert data.collate([None, None]).skipped == 2
    loader = data.make_loader(data.FaceFrames(face, frames, 64), 4, 0)
    counter = data.SkippedFrames(len(frames) * 100)
    assert sum(len(b.label) for b in counter.batches(loader)) == len(frames) - 1 and counter.count == 1
    with pytest.raises(data.DataError, match=r"1 of 24 frames could not be decoded \(more than 1%"):
        list(data.SkippedFrames(len(frames)).batches(loader))


class _MeanScore(torch.nn.Module):
    """A stand-in detector: the score is the image mean, the map its first channel."""

    def score(self, x, quality):
        return x.float().mean(dim=(1, 2, 3)), x[:, :1].float()


def test_scoring_leaves_out_a_crop_that_fails_with_lines_naming_it(tree, tmp_path, monkeypatch, capfd):
    from forensics import scoring

    face, splits = tree
    frames = data.index_frames(face, splits, "test", "All", qualities=("c40",), need_masks=False)
    bad = frames[4]
    path = ffpp.face_dir(face, bad.method, "c40", bad.video) / f"{bad.frame}.png"
    path.write_bytes(b"\0" * path.stat().st_size)
    info = {"model": "detector", "trained_on": "c23+c40", "run_threshold": None}
    with pytest.raises(data.DataError, match="1 of 60 frames could not be decoded"):
        scoring.score_splits(_MeanScore(), info, face_root=face, splits=splits, out=tmp_path / "out",
                             device=torch.device("cpu"), options=scoring.ScoreOptions(image_size=64))
    monkeypatch.setattr(data, "MAX_BAD_SHARE", 0.05)
    monkeypatch.setattr(scoring, "MAX_BAD_SHARE", 0.05)
    scores, maps, masks = scoring.score_frames(_MeanScore(), face, frames, "c40", torch.device("cpu"),
                                               scoring.ScoreOptions(image_size=64), keep_maps=True, keep_masks=True)
    assert np.isnan(scores[4]) and np.isnan(maps[4]).all() and not masks[4].any()
    assert np.isfinite(np.delete(scores, 4)).all() and np.isfinite(np.delete(maps, 4, axis=0)).all()
    assert f"skip: {path}: cannot read this image" in capfd.readouterr().err
    written = scoring.score_splits(_MeanScore(), info, face_root=face, splits=splits, out=tmp_path / "out",
                                   device=torch.device("cpu"), options=scoring.ScoreOptions(image_size=64))
    assert f"skip: 1 frames got no score (crops that do not decode, named above; first: {path})" in \
        capfd.readouterr().err
    rows = written.read_text().splitlines()
    assert len(rows) == 60 and f"test,{bad.method},{bad.video},{bad.frame}," not in written.read_text()
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["skipped_frames"] == 1
    assert np.load(tmp_path / "out" / "maps.npy").shape[0] == 59 and np.isfinite(
        np.load(tmp_path / "out" / "maps.npy")).all()


# ----------------------------------------------------------------------------- eval on bad scores

def _scores(path, rows, dataset=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["split,video,frame,method,label,score"] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    if dataset:
        path.with_name("meta.json").write_text(json.dumps({"dataset": dataset}))
    return path


def _rows(split, method, label, scores, video="000"):
    name = video if method == ffpp.REAL else f"{video}_001"
    return [(split, name, i, method, label, s) for i, s in enumerate(scores)]


def test_eval_names_the_rows_it_cannot_use_and_refuses_a_png(tmp_path):
    rows = _rows("test", ffpp.REAL, 0, [0.1, "nan", 0.2]) + _rows("test", "Deepfakes", 1, [0.9, "inf"])
    path = _scores(tmp_path / "scores.csv", rows)
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: 2 of 5 rows: scores are NaN or infinite: line 3 (real/000 frame 1), line 6 (Deepfakes/000_001 "
            "frame 1); the checkpoint gives NaN")):
        evaluate(path, plots=False)
    rows[2] = ("test", "000", "two", "real", 0, 0.3)
    with pytest.raises(ValueError, match=r"line 4: unreadable row"):
        evaluate(_scores(path, rows), plots=False)
    png = tmp_path / "roc.png"
    png.write_bytes(_png() + b"\xff\xfe")
    with pytest.raises(SystemExit, match=rf"eval.py: {re.escape(str(png))}: not a CSV text file"):
        load_script("eval").main(["--scores", str(png)])


def test_eval_warns_on_one_class_splits_and_a_missing_method_and_strict_fails(tmp_path, capsys):
    rows = (_rows("val", ffpp.REAL, 0, [0.1, 0.2]) + _rows("test", ffpp.REAL, 0, [0.1, 0.6], "002")
            + _rows("test", "Deepfakes", 1, [0.9, 0.4], "002") + _rows("test", "FaceSwap", 1, [0.8, 0.7], "002"))
    path = _scores(tmp_path / "scores.csv", rows, dataset="All")
    metrics = evaluate(path, plots=False)
    assert metrics["threshold"] is None and metrics["acc"] is None  # not the threshold inf of a one-class split
    assert metrics["warnings"] == [
        "All: the test rows hold 2 of the 4 methods (no Face2Face, NeuralTextures; were their crops made?): its "
        "numbers are not those of All",
        "All: the validation rows hold only real frames, so no threshold can be chosen on them: acc is not reported",
        "Deepfakes: the validation rows hold only real frames, so no threshold can be chosen on them: acc is not "
        "reported",
        "FaceSwap: the validation rows hold only real frames, so no threshold can be chosen on them: acc is not "
        "reported"]
    assert json.loads((tmp_path / "metrics.json").read_text())["warnings"] == metrics["warnings"]
    assert capsys.readouterr().err.count("warning: ") == 4
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(SystemExit, match="eval.py: .*--strict: 4 warnings"):
        load_script("eval").main(["--scores", str(path), "--strict", "--no-plots"])
    assert not (tmp_path / "metrics.json").exists()
    fakes_only = _scores(tmp_path / "f" / "scores.csv", _rows("val", ffpp.REAL, 0, [0.1]) +
                         _rows("val", "Deepfakes", 1, [0.9]) + _rows("test", "Deepfakes", 1, [0.8, 0.95]))
    metrics = evaluate(fakes_only, plots=False)
    assert metrics["acc"] == 0.5 and metrics["auc"] is None
    assert metrics["warnings"] == ["All: the test rows hold only fake frames: AUC, AP and EER are undefined and "
                                   "acc counts one class only"]
    with pytest.raises(SystemExit):
        load_script("eval").main(["--scores", str(fakes_only), "--strict", "--no-plots"])


# ----------------------------------------------------------------------------- smaller ones

def test_a_pickled_checkpoint_is_refused_without_advice_to_load_it_unsafely(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return os.system, ("true",)

    torch.save({"net": RunsCode()}, tmp_path / "tail_000001.tar")
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(tmp_path / "tail_000001.tar")
    assert str(refused.value) == (f"{tmp_path / 'tail_000001.tar'}: refused: the file holds Python objects that could "
                                  "run code, not only tensors (unsupported GLOBAL posix.system). Re-save it as a "
                                  "plain state dict.")


def test_a_damaged_video_gives_no_decoder_noise(tmp_path, capfd):
    video = _noise_video(tmp_path / "v.mp4", 6, size=(96, 128))
    data_ = bytearray(video.read_bytes())
    for i in range(len(data_) // 3, len(data_), 61):
        data_[i] ^= 0x5A
    video.write_bytes(bytes(data_))
    try:
        list(iter_frames(video))
    except Exception:
        pass
    assert "[h264" not in capfd.readouterr().err


def test_printed_commands_quote_paths_with_spaces(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        ffpp.read_split(tmp_path / "my splits", "test")
    command = re.search(r"`(python -m forensics\.ffpp [^`]*)`", str(missing.value)).group(1)
    assert shlex.split(command)[-1] == str(tmp_path / "my splits")


# ----------------------------------------------------------------------- run folders: nothing merged, nothing stale

def _record(folder, epochs=1, **config):
    """A run folder as experiments.py leaves a scored run: its record (config, history, best epoch), no checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model": "detector", "lr": 1e-4, "seed": 0, **config}))
    (folder / "history.json").write_text(json.dumps([{"epoch": e, "val_auc": 0.7} for e in range(1, epochs + 1)]))
    (folder / "best.json").write_text(json.dumps({"epoch": 1, "val_auc": 0.7}))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_folder_holding_a_run_record_is_refused_and_the_runners_overwrite_it(tmp_path):
    from forensics import experiments, grid, runs

    out = tmp_path / "method_seed0"
    before = _record(out)
    with pytest.raises(SystemExit, match=re.escape(f"{out} holds another run's record (config.json, history.json, "
                                                   "best.json): pass --resume to continue it, --overwrite")):
        load_script("train").main(["--out", str(out), "--face-root", str(tmp_path / "none"), "--device", "cpu"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(SystemExit, match="holds no complete epoch; start over with --overwrite"):
        load_script("train").main(["--out", str(out), "--face-root", str(tmp_path / "none"), "--device", "cpu",
                                   "--resume"])
    # paper_grid and experiments start such a folder over with --overwrite, not as a new run that train.py refuses
    assert grid.command(grid.GridRun("method", "All", None, out, 2), [], python="python")[-1] == "--overwrite"
    run, = experiments.plan([experiments.Variant("method")], [0], tmp_path, 2, [], [])
    assert run.state() == "overwrite" and run.commands()[0][1][-1] == "--overwrite"
    # the new training's figures are never paired with the old one's test metrics
    (out / "test_c40").mkdir()
    (out / "test_c40" / "metrics.json").write_text(json.dumps({"epoch": 1, "auc": 0.9}))
    ran = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(experiments.subprocess, "run", lambda cmd, **_: ran.append(cmd) or subprocess.CompletedProcess(
            cmd, 1))
        assert "train.py exited with 1" in experiments.execute(run, "python", tmp_path, False)
    assert ran[0][-1] == "--overwrite" and not (out / "test_c40" / "metrics.json").exists()
    runs.clear_run(out)
    assert runs.run_files(out) == [] and sorted(p.name for p in out.iterdir()) == ["test_c40", "train.log"]


def test_a_resume_or_a_reuse_with_other_settings_is_refused_naming_each(tmp_path):
    import dataclasses

    from forensics import experiments
    from forensics.training import TrainConfig

    out = tmp_path / "run"
    saved = dataclasses.asdict(TrainConfig(out=str(out), device="cpu").resolved(torch.device("cpu")))
    _record(out, **saved, world_size=1, train_frames=64, torch=torch.__version__)
    train = load_script("train")
    args = ["--out", str(out), "--device", "cpu", "--resume", "--workers", "3", "--epochs", "30"]
    with pytest.raises(SystemExit, match=re.escape(
            f"--resume: {out} was trained with other settings: --lr 0.0003 (the run has 0.0001), --mask-weight 0.0 "
            "(the run has 1.0), --channels-last on (the run has off). Resume with the run's own settings")):
        train.main([*args, "--lr", "3e-4", "--mask-weight", "0", "--channels-last", "on"])
    # the run's own settings pass (workers, epochs and device may change): the next check is its epochs
    with pytest.raises(SystemExit, match="holds no complete epoch"):
        train.main(args)
    # experiments.py reuses a finished run only if its whole config.json is what the experiment asks for
    run, = experiments.plan([experiments.Variant("method")], [0], tmp_path, 1, ["--lr", "1e-4"], [])
    shutil.copytree(out, run.out)
    run.check()
    run, = experiments.plan([experiments.Variant("method", ("--pairing-weight", "0.2"))], [0], tmp_path, 1,
                            ["--lr", "3e-4", "--image-size", "128"], [])
    with pytest.raises(ValueError, match=re.escape(
            "trained with other settings than variant method asks for here: --image-size 128 (the run has 299), "
            "--lr 3e-4 (the run has 0.0001). Runs with other settings are not merged")):
        run.check()


def _sweep_tree(root):
    """The smallest tree a robustness sweep reads: one real and one fake test video (3 frames), their boxes and
    splits, and a checkpoint folder."""
    from forensics.locations import write_locs

    (root / "jsons").mkdir(parents=True)
    (root / "jsons" / "test.json").write_text(json.dumps([["000", "001"]]))
    for method, video in ((ffpp.REAL, "000"), ("Deepfakes", "000_001")):
        _noise_video(ffpp.video_path(root / "ffpp", method, "c23", video), 3)
        write_locs(root / "jsons", method, {video: {i: [0, 0, 40] for i in range(3)}})
    (root / "run").mkdir()
    return ["--ffpp-root", str(root / "ffpp"), "--locs", str(root / "jsons"), "--splits", str(root / "jsons"),
            "--checkpoint", f"m={root / 'run'}", "--crf", "23", "--workers", "0", "--device", "cpu",
            "--image-size", "32"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_a_full_cache_disk_stops_the_sweep_naming_the_disk_not_the_source(tmp_path, monkeypatch):
    from forensics import video

    real = video.ffmpeg_exe()
    full = tmp_path / "ffmpeg_on_a_full_disk"  # the real ffmpeg, its output sent to a full device
    full.write_text(f"#!{sys.executable}\nimport os, sys\n"
                    f"os.execv({real!r}, [{real!r}, *sys.argv[1:-1], '-f', 'mp4', '/dev/full'])\n")
    full.chmod(0o755)
    args = _sweep_tree(tmp_path)
    monkeypatch.setattr(video, "ffmpeg_exe", lambda: str(full))
    out = tmp_path / "out"
    encode = out / "cache" / "videos" / "c23" / "h264_crf23" / ffpp.REAL / "000.mp4"
    with pytest.raises(SystemExit, match=re.escape(f"robustness.py: [Errno 28] {encode}: cannot write (No space "
                                                   "left on device); free some space there, then rerun")):
        load_script("robustness").main([*args, "--out", str(out)])
    assert not [p for p in out.rglob("*") if p.is_file() and "robustness" in p.name]


def test_a_damaged_cached_encode_is_encoded_again(tmp_path):
    from forensics import degrade

    source = _noise_video(tmp_path / "c23.mp4", 3)
    levels = tuple(degrade.ladder((23,)))
    job = degrade.VideoJob(ffpp.REAL, "004", "c23", source, {i: [0, 0, 40] for i in range(3)}, levels,
                           tmp_path / "cache", 32)
    first = degrade.crop_levels(job)
    encode = degrade.encoded_path(job.cache, "c23", levels[1], ffpp.REAL, "004")
    whole = encode.read_bytes()
    encode.write_bytes(whole[:len(whole) // 2])  # truncated in the cache, its crops still finished
    again = degrade.crop_levels(job)
    assert not again.failed and not again.tally.skips and again.frames == first.frames
    assert encode.read_bytes() == whole and again.kbps == first.kbps
    encode.write_bytes(whole[:100])  # and with its crops to cut again
    shutil.rmtree(job.crop_dir(levels[1]))
    assert not degrade.crop_levels(job).failed and encode.read_bytes() == whole


class _ScaledScore(_MeanScore):
    """Another 'epoch' of the stand-in: other scores and other maps."""

    def score(self, x, quality):
        score, attention = super().score(x, quality)
        return score * 2, attention * 2


def test_test_py_writes_its_files_as_one_set_and_eval_refuses_a_mixed_one(tree, tmp_path, monkeypatch):
    from forensics import scoring

    face, splits = tree
    out = tmp_path / "out"
    info = {"model": "detector", "trained_on": "c23+c40", "run_threshold": None, "epoch": 1}
    scoring.score_splits(_MeanScore(), info, face_root=face, splits=splits, out=out, device=torch.device("cpu"),
                         options=scoring.ScoreOptions(image_size=64))
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(old) == {"scores.csv", "maps.npy", "masks.npy", "meta.json"}
    real_write = scoring.write_bytes

    def full_at_scores(path, data):
        if path.name == "scores.csv":
            raise OSError(errno.ENOSPC, f"{path}: cannot write")
        return real_write(path, data)

    monkeypatch.setattr(scoring, "write_bytes", full_at_scores)
    with pytest.raises(OSError):
        scoring.score_splits(_ScaledScore(), dict(info, epoch=2), face_root=face, splits=splits, out=out,
                             device=torch.device("cpu"), options=scoring.ScoreOptions(image_size=64))
    monkeypatch.undo()
    assert not (out / "scores.csv").exists()  # the new maps are there, but no scores to pair them with
    with pytest.raises(FileNotFoundError, match="scores file not found"):
        evaluate(out / "scores.csv", plots=False)
    # the old epoch's scores put back beside the new maps and meta.json: refused, not a wrong mask accuracy
    (out / "scores.csv").write_bytes(old["scores.csv"])
    with pytest.raises(ValueError, match=r"meta\.json: written with another scores\.csv"):
        evaluate(out / "scores.csv", plots=False)
    (out / "meta.json").write_bytes(old["meta.json"])
    with pytest.raises(ValueError, match=r"maps\.npy: not the file test\.py wrote beside .*the files come from "
                                         "different test.py runs"):
        evaluate(out / "scores.csv", plots=False)
    scoring.score_splits(_ScaledScore(), dict(info, epoch=2), face_root=face, splits=splits, out=out,
                             device=torch.device("cpu"), options=scoring.ScoreOptions(image_size=64))
    assert evaluate(out / "scores.csv", plots=False)["epoch"] == 2


def test_links_out_of_the_crop_tree_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    (outside / "004").mkdir(parents=True)
    (outside / "004" / "7.png").write_bytes(b"the user's")  # a name the crop step writes and cleans up
    (outside / "NeuralTextures").mkdir()
    root, locs_dir, face = tmp_path / "root", tmp_path / "jsons", tmp_path / "face"
    locs_dir.mkdir()
    for method, video in ((ffpp.REAL, "004"), ("Deepfakes", "004_005")):
        for quality in ("c23", "c40"):
            _noise_video(ffpp.video_path(root, method, quality, video), 3)
        (locs_dir / f"dlib_{method}.json").write_text(json.dumps({video: {str(i): [0, 0, 40] for i in range(3)}}))
    link = ffpp.face_dir(face, ffpp.REAL, "c23", "004")
    link.parent.mkdir(parents=True)
    link.symlink_to(outside / "004")
    (face / "Deepfakes").symlink_to(outside / "NeuralTextures")  # a method folder linked out
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    tally = crops.create_faces(root, locs_dir, face, methods=(ffpp.REAL, "Deepfakes"), masks=False, image_size=16)
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in ffpp.face_dir(face, ffpp.REAL, "c40", "004").iterdir()) == [
        manifest.DONE_MARKER, "0.png", "1.png", "2.png"]
    assert tally.skips == [f"{link}: a link takes it out of the crop tree (to {outside / '004'}): c23 crops of real "
                           f"004 skipped; crops are written only inside {face} (replace the link by a folder)"] + [
        f"{ffpp.face_dir(face, 'Deepfakes', q, '004_005')}: a link takes it out of the crop tree (to "
        f"{outside / 'NeuralTextures' / q / '004_005'}): {q} crops of Deepfakes 004_005 skipped; crops are written "
        f"only inside {face} (replace the link by a folder)" for q in ("c23", "c40")]


def _huge_png(side=50000):
    """A 69-byte PNG whose header claims side x side pixels: more than OpenCV and PIL agree to decode."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + \
        chunk(b"IEND", b"")


def test_an_image_whose_header_claims_a_huge_size_costs_only_itself_with_a_line(tree, tmp_path, monkeypatch, capfd):
    from forensics import inference, packed

    face, splits = tree
    frames = data.index_frames(face, splits, "train", "Deepfakes")
    bad = frames[5]
    folder = ffpp.face_dir(face, bad.method, "c40", bad.video)
    path = folder / f"{bad.frame}.png"
    path.write_bytes(_huge_png())
    assert len(_huge_png()) == 69
    for decoder in data.DECODERS:  # train.py's and test.py's loaders
        assert data.FaceFrames(face, frames, 64, decoder=decoder)[5] is None
        assert f"skip: {path}: cannot read this image" in capfd.readouterr().err
    monkeypatch.setattr(data, "MAX_BAD_SHARE", 0.1)
    assert bad not in data.index_frames(face, splits, "train", "Deepfakes", verify=True)
    assert f"skip: {path}: does not decode: frame left out" in capfd.readouterr().err
    manifest.mark_finished(folder, {}, [0, 1, 2])  # create_faces --verify redoes the folder
    assert manifest.finished_crops(folder, {}) and manifest.finished_crops(folder, {}, verify=True) is None
    with pytest.raises(OSError, match=re.escape(f"{path}: cannot read this crop")):
        packed.pack_folder(folder, tmp_path / "pack", grey=False)
    with pytest.raises(inference.Skip, match="cannot be read as an image"):  # detect.py: a line, then the next file
        inference.read_still(path)


def test_detect_checks_its_out_before_scoring_anything(tmp_path, monkeypatch):
    from forensics import inference

    loaded = []  # the checkpoint is read first (a bad one stops before --out is created), then --out is checked
    monkeypatch.setattr(inference, "load_detector", lambda *args: loaded.append(args) or (None, {}, {}))
    monkeypatch.setattr(inference, "run", lambda *args, **kwargs: pytest.fail("scored before --out was checked"))
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    refusal = r"detect\.py: \[Errno 20\] " + re.escape(f"{blocked / 'out'}: cannot write there")
    with pytest.raises(SystemExit, match=refusal):
        load_script("detect").main([str(tmp_path), "--checkpoint", str(tmp_path / "run"), "--out",
                                    str(blocked / "out")])
    assert loaded


def _run_main(script, *args):
    """A script run as `python script.py args` in this process, through its __main__ block."""
    import runpy

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [str(REPO / f"{script}.py"), *map(str, args)])
        runpy.run_path(str(REPO / f"{script}.py"), run_name="__main__")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_errors_name_the_file_the_full_disk_and_the_right_flag(tree, tmp_path, monkeypatch, capsys):
    # detect_faces' progress file on a full disk
    log = faces.DetectionLog(tmp_path, None, {}, faces.FFPP)
    log.resume([])
    log._file.close()
    log._file = open("/dev/full", "a")
    log._keys = {("real", "004"): "k"}
    with pytest.raises(OSError, match=re.escape(f"{log.path}: cannot write (No space left on device); free some "
                                                "space there")):
        log.add("real", "004", faces.VideoBoxes({}, [], 0, 0))
    # a checkpoint on a full disk: the disk is named, not PyTorch's 'unexpected pos'
    def full(fd, mode):
        os.close(fd)
        return open("/dev/full", mode)

    with monkeypatch.context() as patch:
        patch.setattr(fileio.os, "fdopen", full)
        with pytest.raises(OSError, match=re.escape(f"{tmp_path / 'tail_000001.tar'}: cannot write (No space left "
                                                    "on device); free some space there")):
            save_part(tmp_path / "tail_000001.tar", torch.nn.Linear(64, 64))
    # robustness.py: an unwritable --out, and --max-frames 0
    args = _sweep_tree(tmp_path / "sweep")
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(SystemExit, match=re.escape(f"{blocked / 'out'}: cannot write there")):
        load_script("robustness").main([*args, "--out", str(blocked / "out")])
    with pytest.raises(SystemExit):
        load_script("robustness").main([*args, "--max-frames", "0"])
    assert "--max-frames 0: the sweep needs at least the first frame of each video" in capsys.readouterr().err
    # train.py: a bad split file and a refused --pretrained are a line, not a traceback
    face, splits = tree
    bad_splits = tmp_path / "splits"
    shutil.copytree(splits, bad_splits)
    (bad_splits / "train.json").write_text(json.dumps([["000", "../x"]]))
    with pytest.raises(SystemExit, match=re.escape(f"train.py: {bad_splits / 'train.json'}: video id '../x' is not "
                                                   "a plain name")):
        _run_main("train", "--face-root", face, "--splits", bad_splits, "--out", tmp_path / "run", "--device", "cpu")
    class RunsCode:
        def __reduce__(self):
            return os.system, ("true",)

    torch.save({"net": RunsCode()}, tmp_path / "xception.pth")
    with pytest.raises(SystemExit, match=re.escape(f"train.py: {tmp_path / 'xception.pth'}: refused")):
        _run_main("train", "--face-root", face, "--splits", splits, "--out", tmp_path / "run", "--device", "cpu",
                  "--pretrained", tmp_path / "xception.pth", "--workers", "0", "--model", "xception")
    # detect.py's messages name its own flag (--checkpoint), or none, never test.py's --checkpoint-dir
    with pytest.raises(SystemExit) as missing:
        load_script("detect").main([str(tmp_path), "--checkpoint", str(tmp_path / "no_run"), "--out",
                                    str(tmp_path / "detected")])
    assert f"{tmp_path / 'no_run'}: checkpoint folder not found" in str(missing.value)
    assert "--checkpoint-dir" not in str(missing.value)


def test_detect_leaves_its_own_outputs_out_and_eval_refuses_duplicate_rows(tmp_path):
    from forensics import inference

    media = tmp_path / "media"
    _noise_video(media / "clip.mp4", 2)
    (media / "out").mkdir()
    for name in ("clip.overlay.mp4", "clip.overlay.png", "clip.scores.png"):  # an earlier run's outputs
        (media / "out" / name).write_bytes(b"")
    inputs, ignored = inference.gather_inputs([media], recursive=True, out=media / "out")
    assert [i.path for i in inputs] == [media / "clip.mp4"] and ignored == []
    rows = _rows("val", ffpp.REAL, 0, [0.1]) + _rows("val", "Deepfakes", 1, [0.9]) + \
        _rows("test", ffpp.REAL, 0, [0.2, 0.3]) + _rows("test", "Deepfakes", 1, [0.8])
    path = _scores(tmp_path / "scores.csv", rows + [rows[3]])
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: 1 of 6 rows: a frame already scored in an earlier row (same split, method, video, frame): "
            "line 7 (real/000 frame 1); the file joins the rows of several runs")):
        evaluate(path, plots=False)
    assert evaluate(_scores(path, rows), plots=False)["auc"] == 1.0


# ----------------------------------------------------------------------------- end to end on a demo tree

IMAGE_SIZE = 64
TRAIN = ["--pretrained", "none", "--image-size", str(IMAGE_SIZE), "--batch-size", "64", "--workers", "0",
         "--device", "cpu", "--val-max-frames", "2"]


def _files(root):
    """{path: (size, mtime)} of every file under root."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*") if p.is_file()}


class Demo:
    """A demo FF++ tree, its reference location files and crops, and a way to run a script that checks what a
    user is promised: nothing outside --out created, changed or removed, every skip line naming its file."""

    def __init__(self, root):
        self.root = root
        self.data, self.jsons, self.face = root / "data", root / "jsons", root / "face"
        self.splits = self.data / "splits"

    def run(self, script, *args, out, expect=0):
        before = {p: s for p, s in _files(self.root).items() if not p.is_relative_to(out)}
        proc = subprocess.run([sys.executable, str(REPO / f"{script}.py"), *map(str, args)], cwd=REPO,
                              capture_output=True, text=True, timeout=1200)
        output = proc.stdout + proc.stderr
        assert proc.returncode == expect, output[-3000:]
        after = {p: s for p, s in _files(self.root).items() if not p.is_relative_to(out)}
        assert after == before, f"{script} touched files outside {out}: {set(after) ^ set(before)}"
        self.check_skips(output)
        return output

    def start(self, script, *args):
        return subprocess.Popen([sys.executable, str(REPO / f"{script}.py"), *map(str, args)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def check_skips(self, output):
        skips = [line for line in output.splitlines() if line.startswith("skip:")]
        assert all(str(self.root) in line for line in skips), [s for s in skips if str(self.root) not in s]
        assert "Traceback" not in output and "[h264" not in output, output[-3000:]
        return skips

    def link_data(self, to):
        """A copy of the FF++ tree made of links, whose videos a test may replace."""
        for path in self.data.rglob("*.mp4"):
            link = to / path.relative_to(self.data)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
        return to


def _kill_when(proc, ready, limit=600):
    deadline = time.time() + limit
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _all_pngs_decode(folder):
    pngs = list(Path(folder).rglob("*.png"))
    assert pngs and all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None for p in pngs)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    demo = Demo(tmp_path_factory.mktemp("faults"))
    demo.run("make_demo_data", "--videos", 6, "--frames", 8, "--out", demo.data, "--workers", 2, out=demo.data)
    demo.run("detect_faces", "--ffpp-root", demo.data, "--out", demo.jsons, "--workers", 2, out=demo.jsons)
    demo.run("create_faces_from_dlib_locs", "--ffpp-root", demo.data, "--locs", demo.jsons, "--out", demo.face,
             "--image-size", IMAGE_SIZE, "--workers", 2, out=demo.face)
    return demo


@pytest.mark.slow
def test_killed_detection_resumes_to_the_same_files_and_checks_out_first(demo):
    out = demo.root / "detect_killed"
    log = out / "detect_faces.progress.jsonl"
    proc = demo.start("detect_faces", "--ffpp-root", demo.data, "--out", out, "--workers", 0)
    _kill_when(proc, lambda: log.exists() and log.read_text().count("\n") >= 3)
    done = log.read_text().count("\n")
    assert 3 <= done < 30 and not list(out.glob("dlib_*.json")), "the run ended before it could be killed"
    output = demo.run("detect_faces", "--ffpp-root", demo.data, "--out", out, "--workers", 2, out=out)
    assert f"resuming: {done} videos taken from {log}" in output
    for path in demo.jsons.glob("dlib_*.json"):
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    blocked = demo.root / "a_file"
    blocked.write_text("")
    started = time.time()
    output = demo.run("detect_faces", "--ffpp-root", demo.data, "--out", blocked / "jsons", out=blocked, expect=1)
    assert f"{blocked / 'jsons'}: cannot write there" in output and "detecting" not in output
    assert time.time() - started < 60


@pytest.mark.slow
def test_killed_cropping_reruns_to_the_same_bytes(demo):
    out = demo.root / "face_killed"
    proc = demo.start("create_faces_from_dlib_locs", "--ffpp-root", demo.data, "--locs", demo.jsons,
                      "--out", out, "--image-size", IMAGE_SIZE, "--workers", 0)
    _kill_when(proc, lambda: len(list(out.rglob(manifest.DONE_MARKER))) >= 3)
    assert len(list(out.rglob(manifest.DONE_MARKER))) < 84, "the run ended before it could be killed"
    _all_pngs_decode(out)
    demo.run("create_faces_from_dlib_locs", "--ffpp-root", demo.data, "--locs", demo.jsons, "--out", out,
             "--image-size", IMAGE_SIZE, "--workers", 2, out=out)
    reference = {p.relative_to(demo.face): p.read_bytes() for p in demo.face.rglob("*") if p.is_file()}
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == reference


@pytest.mark.slow
def test_hostile_keys_bad_boxes_and_a_damaged_video_cost_only_themselves(demo):
    data_root = demo.link_data(demo.root / "hostile_data")
    damaged = ffpp.video_path(data_root, "Deepfakes", "c23", "000_001")
    video = bytearray(damaged.read_bytes())
    damaged.unlink()
    for i in range(len(video) // 4, len(video), 37):
        video[i] ^= 0x5A
    damaged.write_bytes(bytes(video))
    outside = demo.root / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "holiday.png").write_bytes(_png())
    shutil.copy(ffpp.video_path(demo.data, ffpp.REAL, "c23", "000"), outside / "dir.mp4")
    locs = demo.root / "hostile_jsons"
    shutil.copytree(demo.jsons, locs, ignore=shutil.ignore_patterns("*.jsonl"))
    real = json.loads((locs / "dlib_real.json").read_text())
    real[str(outside / "dir")] = real["../../outside/dir"] = real["000"]
    real["000"]["3"] = real["000"]["3"][:2]
    real["000"]["5"] = [250, 250, 100]
    (locs / "dlib_real.json").write_text(json.dumps(real))
    out = demo.root / "hostile_face"
    output = demo.run("create_faces_from_dlib_locs", "--ffpp-root", data_root, "--locs", locs, "--out", out,
                      "--image-size", IMAGE_SIZE, "--workers", 2, "--strict", out=out, expect=1)
    skips = demo.check_skips(output)
    assert sum("is not a plain name" in s for s in skips) == 2
    assert any(f"{locs / 'dlib_real.json'}: video 000: 1 frames whose entry is not" in s for s in skips)
    assert any(f"{ffpp.video_path(data_root, ffpp.REAL, 'c23', '000')}: 1 face boxes do not fit" in s for s in skips)
    assert any(s.startswith(f"skip: {damaged}") for s in skips)
    assert sorted(int(p.stem) for p in ffpp.face_dir(out, ffpp.REAL, "c40", "000").glob("*.png")) == [0, 1, 2, 4, 6, 7]
    assert sorted(p.name for p in (outside / "dir").iterdir()) == ["holiday.png"]
    _all_pngs_decode(out)


@pytest.mark.slow
def test_a_rerun_repairs_damaged_crops_and_redoes_a_replaced_video(demo):
    data_root = demo.link_data(demo.root / "replaced_data")
    video = ffpp.video_path(data_root, ffpp.REAL, "c23", "000")
    full = video.resolve()
    video.unlink()
    write_video(list(read_frames(full, max_frames=3).values()), video, crf=23)
    out = demo.root / "replaced_face"
    args = ["--ffpp-root", data_root, "--locs", demo.jsons, "--out", out, "--image-size", IMAGE_SIZE, "--workers", 2]
    demo.run("create_faces_from_dlib_locs", *args, out=out)
    folder = ffpp.face_dir(out, ffpp.REAL, "c23", "000")
    assert len(list(folder.glob("*.png"))) == 3
    video.unlink()
    video.symlink_to(full)  # the fixed video
    truncated = ffpp.face_dir(out, "FaceSwap", "c40", "001_000") / "4.png"
    truncated.write_bytes(truncated.read_bytes()[:100])
    zeroed = ffpp.face_dir(out, "Face2Face", "masks", "000_001") / "2.png"
    zeroed.write_bytes(b"\0" * zeroed.stat().st_size)
    output = demo.run("create_faces_from_dlib_locs", *args, out=out)
    assert "(79 already complete)" in output  # of 84: real 000 c23 and c40 redone, FaceSwap 001_000's three folders
    assert cv2.imread(str(zeroed)) is None  # same size: only --verify decodes
    output = demo.run("create_faces_from_dlib_locs", *args, "--verify", out=out)
    assert "(81 already complete)" in output  # Face2Face 000_001's three folders redone
    reference = {p.relative_to(demo.face): p.read_bytes() for p in demo.face.rglob("*") if p.is_file()}
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == reference


@pytest.fixture(scope="module")
def trained(demo):
    """A training run killed after its first epoch and resumed, on a face tree with a fake crop that no longer
    decodes but kept its size, so that only a loader worker meets it: 64 fake and 4 x 16 real frames, two
    batches an epoch."""
    face = demo.root / "train_face"
    shutil.copytree(demo.face, face)
    zeroed = ffpp.face_dir(face, "Deepfakes", "c23", "001_000") / "6.png"
    zeroed.write_bytes(b"\0" * zeroed.stat().st_size)
    out = demo.root / "run"
    args = ["--face-root", face, "--splits", demo.splits, "--out", out, *TRAIN, "--epochs", "2"]
    proc = demo.start("train", *args)
    _kill_when(proc, lambda: (out / "history.json").exists())
    killed = [p.name for p in out.glob("*.tar")]
    for path in out.glob("*.tar"):
        read_checkpoint(path)
    output = demo.run("train", *args, "--resume", out=out)
    return face, out, output, zeroed, killed


@pytest.mark.slow
def test_training_skips_a_crop_that_fails_and_stops_when_many_do(demo, trained):
    face, out, output, zeroed, killed = trained
    assert {"tail_000001.tar", "hq_head_000001.tar", "lq_head_000001.tar"} <= set(killed)
    assert f"resuming {out} after epoch 1" in output
    assert f"skip: {zeroed}: cannot read this image" in output
    history = json.loads((out / "history.json").read_text())
    assert [h["skipped_frames"] for h in history] == [1, 1] and "1 frames skipped (named above)" in output
    for path in out.glob("*.tar"):
        read_checkpoint(path)
    # A truncated crop is seen before the first step; one of the 80 distinct frames is more than 1%.
    truncated = ffpp.face_dir(face, ffpp.REAL, "c40", "001") / "3.png"
    truncated.write_bytes(truncated.read_bytes()[:100])
    stopped = demo.root / "stopped"
    output = demo.run("train", "--face-root", face, "--splits", demo.splits, "--out", stopped, *TRAIN, "--epochs", "1",
                      out=stopped, expect=1)
    assert re.search(f"skip: {re.escape(str(truncated))}: 100 bytes, its folder's .done.json recorded \\d+", output)
    assert (f"train.py: {face}: 1 of 80 frames of the train split have unusable crops (more than 1%; first: "
            f"{truncated})") in output and not stopped.exists()
    shutil.copy(ffpp.face_dir(demo.face, ffpp.REAL, "c40", "001") / "3.png", truncated)
    # Three fake crops of the 128 frames that fail in the workers: the run stops at the second.
    for i in (0, 1):
        crop = ffpp.face_dir(face, "FaceSwap", "c40", "000_001") / f"{i}.png"
        crop.write_bytes(b"\0" * crop.stat().st_size)
    output = demo.run("train", "--face-root", face, "--splits", demo.splits, "--out", stopped, *TRAIN, "--epochs", "1",
                      out=stopped, expect=1)
    assert re.search(r"train\.py: [23] of 128 frames could not be decoded \(more than 1%", output)
    assert not list(stopped.glob("*.tar"))


@pytest.mark.slow
def test_a_missing_method_is_said_loudly_and_strict_stops(demo, trained):
    face = demo.root / "face_without_nt"
    shutil.copytree(demo.face, face, ignore=lambda folder, names: ["c40"] if folder.endswith("NeuralTextures") else [])
    out = demo.root / "strict_run"
    output = demo.run("train", "--face-root", face, "--splits", demo.splits, "--out", out, *TRAIN, "--epochs", "1",
                      "--strict", out=out, expect=1)
    assert "train.py: --strict: " in output and "no NeuralTextures frames in the train split" in output
    scored = demo.root / "scores with space"
    output = demo.run("test", "--face-root", face, "--splits", demo.splits, "--checkpoint-dir", trained[1],
                      "--epoch", "1", "--device", "cpu", "--workers", "0", "--val-max-frames", "2",
                      "--out", scored, out=scored)
    assert "warning: no NeuralTextures frames in the test split at c40" in output
    command = shlex.split(output.split("next: ")[1].splitlines()[0])
    assert command[:3] == ["python", "eval.py", "--scores"] and Path(command[3]) == scored / "scores.csv"
    output = demo.run("eval", *command[2:], out=scored)
    metrics = json.loads((scored / "metrics.json").read_text())
    assert metrics["warnings"][0].startswith("All: the test rows hold 3 of the 4 methods (no NeuralTextures")
    assert "warning: All: the test rows hold 3 of the 4 methods" in output
    (scored / "metrics.json").unlink()
    demo.run("eval", *command[2:], "--strict", out=scored, expect=1)
    assert not (scored / "metrics.json").exists()
