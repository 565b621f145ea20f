"""cross_dataset.py, forensics.datasets and forensics.cross: each dataset's layout and label files -> labelled
videos -> cached faces and crops -> scores -> metrics and the table.

Unit tests build each layout from one tiny generated video copied under the dataset's own names, with the
dataset's own label files, and stand in for dlib and the network (a fixed box, a cheap pixel score). The slow
tier trains a small model in the test and runs the script on the clips in ../shared, killing it once during
preparation.
"""
import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, SHARED, load_script

from forensics import cli, cross, crops, datasets, faces, ffpp
from forensics.fileio import write_json
from forensics.robustness import Scorer
from forensics.video import ffmpeg_exe, write_video

W, H, FRAMES = 64, 48, 10
BOX = [8, 4, 32]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The bytes of a 10-frame 64x48 H.264 clip of smooth moving texture."""
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (6, 8, 3), np.uint8), (2 * W, H), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video([np.ascontiguousarray(base[:, k:k + W]) for k in range(FRAMES)], path, fps=10, crf=18)
    return path.read_bytes()


def put(root, names, data):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def labels_of(listing):
    return {v.name: v.label for v in listing.videos}


# ----------------------------------------------------------------------------- adapters: labels as the files say

@pytest.mark.parametrize("name", ["celebdf", "celebdf-v1"])
def test_celebdf_reads_the_testing_list_where_1_is_real(clip, tmp_path, name):
    listed = {"YouTube-real/00170.mp4": 1, "Celeb-real/id0_0003.mp4": 1, "Celeb-synthesis/id1_id0_0007.mp4": 0,
              "Celeb-synthesis/id3_id2_0001.mp4": 0}
    (tmp_path / "List_of_testing_videos.txt").write_text("".join(f"{v} {k}\n" for k, v in listed.items()) + "\n")
    put(tmp_path, [k for k in listed if k != "Celeb-synthesis/id3_id2_0001.mp4"] + ["Celeb-real/id9_0000.mp4"], clip)
    listing = datasets.read_dataset(name, tmp_path)
    # the list's 1 (real) is the project's 0; the training video id9_0000 is not in the list, so not tested
    assert labels_of(listing) == {k: 1 - v for k, v in listed.items() if k != "Celeb-synthesis/id3_id2_0001.mp4"}
    assert [v.name for v in listing.missing] == ["Celeb-synthesis/id3_id2_0001.mp4"]
    assert {v.method for v in listing.videos} == {"real", "Celeb-synthesis"}
    assert listing.sources == [tmp_path / "List_of_testing_videos.txt"]


def test_dfdc_training_parts_read_their_metadata(clip, tmp_path):
    metadata = {"part0": {"aaa.mp4": {"label": "FAKE", "split": "train", "original": "bbb.mp4"},
                          "bbb.mp4": {"label": "REAL", "split": "train", "original": None}},
                "part1": {"ccc.mp4": {"label": "FAKE", "split": "train", "original": "ddd.mp4"},
                          "ddd.mp4": {"label": "REAL", "split": "train", "original": None}}}
    for part, entries in metadata.items():
        write_json(tmp_path / part / "metadata.json", entries)
        put(tmp_path / part, [f for f in entries if f != "ccc.mp4"], clip)
    expected = {f"{p}/{f}": int(e["label"] == "FAKE") for p, es in metadata.items() for f, e in es.items()}
    everything = datasets.read_dataset("dfdc", tmp_path)
    assert {**labels_of(everything), **{v.name: v.label for v in everything.missing}} == expected
    assert [v.name for v in everything.missing] == ["part1/ccc.mp4"]
    one_part = datasets.read_dataset("dfdc", tmp_path / "part0")  # a part's own folder
    assert labels_of(one_part) == {"aaa.mp4": 1, "bbb.mp4": 0}


def test_dfdc_public_test_set_reads_labels_csv(clip, tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\naaqaifqrwn.mp4,1\naayfryxljh.mp4,0\nacazlolrpz.mp4,1\n")
    put(tmp_path / "videos", ["aaqaifqrwn.mp4", "aayfryxljh.mp4", "acazlolrpz.mp4"], clip)
    listing = datasets.read_dataset("dfdc", tmp_path)
    assert labels_of(listing) == {"videos/aaqaifqrwn.mp4": 1, "videos/aayfryxljh.mp4": 0, "videos/acazlolrpz.mp4": 1}


def test_dfdc_preview_reads_the_test_set_of_dataset_json(clip, tmp_path):
    entries = {"method_A/643049/643049_A/1955231_A_001.mp4": {"label": "fake", "set": "test", "target_id": "643049"},
               "method_B/1224068/1224068_C/1001_C_000.mp4": {"label": "fake", "set": "test"},
               "original_videos/643049/1955231_A_001.mp4": {"label": "real", "set": "test"},
               "original_videos/643049/1955231_A_002.mp4": {"label": "real", "set": "train"}}
    write_json(tmp_path / "dataset.json", entries)
    put(tmp_path, entries, clip)
    listing = datasets.read_dataset("dfdcp", tmp_path)
    assert labels_of(listing) == {k: int(e["label"] == "fake") for k, e in entries.items() if e["set"] == "test"}
    assert sorted(v.method for v in listing.videos) == ["method_A", "method_B", "real"]


@pytest.fixture
def ffpp_root(clip, tmp_path):
    """An FF++ root at c40 only: originals 000-003, FaceShifter and Deepfakes of the pairs, DFD, and the splits."""
    root = tmp_path / "FF++"
    put(root, [f"original_sequences/youtube/c40/videos/{v}.mp4" for v in ("000", "001", "002", "003")], clip)
    for method in ("FaceShifter", "Deepfakes"):
        put(root, [f"manipulated_sequences/{method}/c40/videos/{v}.mp4" for v in ("000_001", "001_000", "002_003")],
            clip)
    put(root, ["original_sequences/actors/c40/videos/01__talking.mp4",
               "manipulated_sequences/DeepFakeDetection/c40/videos/01_02__talking__YVGY8LOK.mp4"], clip)
    splits = tmp_path / "splits"
    for split, pairs in (("train", [["002", "003"]]), ("val", []), ("test", [["000", "001"]])):
        write_json(splits / f"{split}.json", pairs)
    return root, splits


def test_faceshifter_dfd_and_ffpp_read_ffpp_trees_at_the_quality_present(ffpp_root):
    root, splits = ffpp_root
    options = datasets.Options(splits=splits)
    shifter = datasets.read_dataset("faceshifter", root, options)
    assert labels_of(shifter) == {"original_sequences/youtube/c40/videos/000.mp4": 0,
                                  "original_sequences/youtube/c40/videos/001.mp4": 0,
                                  "manipulated_sequences/FaceShifter/c40/videos/000_001.mp4": 1,
                                  "manipulated_sequences/FaceShifter/c40/videos/001_000.mp4": 1}
    assert datasets.read_dataset("dfd", root, options).videos == [
        datasets.Video("original_sequences/actors/c40/videos/01__talking.mp4",
                       root / "original_sequences/actors/c40/videos/01__talking.mp4", 0, "real"),
        datasets.Video("manipulated_sequences/DeepFakeDetection/c40/videos/01_02__talking__YVGY8LOK.mp4",
                       root / "manipulated_sequences/DeepFakeDetection/c40/videos/01_02__talking__YVGY8LOK.mp4", 1,
                       "DeepFakeDetection")]
    with pytest.raises(datasets.LayoutError, match=re.escape("Face2Face/c23|c40|raw/videos")):  # all four methods
        datasets.read_dataset("ffpp", root, options)
    for method in ("Face2Face", "FaceSwap", "NeuralTextures"):
        (root / "manipulated_sequences" / method / "c40" / "videos").mkdir(parents=True)
    listing = datasets.read_dataset("ffpp", root, options)
    assert labels_of(listing) == {**{k: v for k, v in labels_of(shifter).items() if "FaceShifter" not in k},
                                  "manipulated_sequences/Deepfakes/c40/videos/000_001.mp4": 1,
                                  "manipulated_sequences/Deepfakes/c40/videos/001_000.mp4": 1}
    assert len(listing.missing) == 6 and {v.method for v in listing.missing} == {"Face2Face", "FaceSwap",
                                                                                "NeuralTextures"}
    with pytest.raises(datasets.LayoutError, match="no folders at c23.*--ffpp-quality auto"):
        datasets.read_dataset("faceshifter", root, datasets.Options(splits=splits, ffpp_quality="c23"))


def test_deeperforensics_takes_its_test_list_and_the_ffpp_originals_of_its_fakes(clip, ffpp_root, tmp_path):
    root = tmp_path / "DeeperForensics-1.0"
    (root / "lists" / "splits").mkdir(parents=True)
    (root / "lists" / "splits" / "test.txt").write_text("000_M101.mp4\n002_W006.mp4\n\n")
    (root / "lists" / "splits" / "train.txt").write_text("001_M004.mp4\n")
    put(root / "manipulated_videos" / "end_to_end", ["000_M101.mp4", "001_M004.mp4", "002_W006.mp4"], clip)
    listing = datasets.read_dataset("deeperforensics", root, datasets.Options(ffpp_root=ffpp_root[0]))
    assert labels_of(listing) == {"manipulated_videos/end_to_end/000_M101.mp4": 1,
                                  "manipulated_videos/end_to_end/002_W006.mp4": 1,
                                  "original_sequences/youtube/c40/videos/000.mp4": 0,
                                  "original_sequences/youtube/c40/videos/002.mp4": 0}
    with pytest.raises(datasets.LayoutError, match="--ffpp-root"):
        datasets.read_dataset("deeperforensics", root, datasets.Options(ffpp_root=tmp_path / "nowhere"))


def test_folder_takes_every_video_under_real_and_fake(clip, tmp_path):
    put(tmp_path, ["real/a/one.mp4", "real/two.MOV", "fake/x/y/three.avi"], clip)
    (tmp_path / "real" / "notes.txt").write_text("not a video")
    assert labels_of(datasets.read_dataset("folder", tmp_path)) == {"real/a/one.mp4": 0, "real/two.MOV": 0,
                                                                    "fake/x/y/three.avi": 1}


# ----------------------------------------------------------------------------- adapters: bad roots and files

EXPECTED = {"celebdf": ["List_of_testing_videos.txt", "Celeb-real", "Celeb-synthesis", "YouTube-real"],
            "celebdf-v1": ["List_of_testing_videos.txt"], "dfdc": ["labels.csv", "metadata.json"],
            "dfdcp": ["dataset.json", "method_A"], "deeperforensics": ["lists/splits/test.txt", "end_to_end"],
            "faceshifter": ["manipulated_sequences/FaceShifter", "original_sequences/youtube"],
            "dfd": ["original_sequences/actors", "manipulated_sequences/DeepFakeDetection"],
            "ffpp": ["manipulated_sequences/NeuralTextures"], "folder": ["real", "fake"]}


@pytest.mark.parametrize("name", datasets.ADAPTERS)
def test_a_root_that_is_not_the_dataset_lists_the_files_expected(tmp_path, name):
    (tmp_path / "something_else.mp4").write_bytes(b"")
    for root in (tmp_path, tmp_path / "nowhere"):
        with pytest.raises(datasets.LayoutError) as caught:
            datasets.read_dataset(name, root, datasets.Options(splits=tmp_path))
        message = str(caught.value)
        assert message.startswith(f"{root}: not a {name} root") and f"--dataset {name}=ROOT" in message
        assert all(e in message for e in EXPECTED[name]), message


def test_label_files_that_are_not_the_datasets_are_errors_naming_them(tmp_path):
    cases = [("celebdf", "List_of_testing_videos.txt", "1 Celeb-real/a.mp4\nreal Celeb-real/b.mp4\n",
              r"List_of_testing_videos.txt: line 2: 'real Celeb-real/b.mp4'"),
             ("dfdc", "metadata.json", '{"a.mp4": {"label": "MAYBE"}}', r"metadata.json: a.mp4: label 'MAYBE'"),
             ("dfdc", "labels.csv", "name,fake\na.mp4,1\n", r"labels.csv: expected the columns filename and label"),
             ("dfdc", "labels.csv", "filename,label\na.mp4,FAKE\n", r"labels.csv: line 2: .*'FAKE'"),
             ("dfdcp", "dataset.json", "{not json", r"dataset.json: not valid JSON"),
             ("deeperforensics", "lists/splits/test.txt", "000_M101.mp4\n../x.mp4\n", r"test.txt: line 2"),
             ("celebdf", "List_of_testing_videos.txt", b"\xff\xfe\x00", r"List_of_testing_videos.txt: not a text")]
    for k, (name, file, content, error) in enumerate(cases):
        root = tmp_path / str(k)
        (root / file).parent.mkdir(parents=True)
        (root / file).write_bytes(content if isinstance(content, bytes) else content.encode())
        (root / "manipulated_videos" / "end_to_end").mkdir(parents=True)
        with pytest.raises(ValueError, match=error):
            datasets.read_dataset(name, root, datasets.Options(ffpp_root=tmp_path))


# ----------------------------------------------------------------------------- which videos, which frames

def test_max_videos_is_a_seeded_label_balanced_subset():
    videos = [datasets.Video(f"v{i:02d}", None, int(i % 4 == 0)) for i in range(40)]  # 10 fake, 30 real
    chosen = cross.balanced_subset(videos, 8, seed=3)
    assert len(chosen) == 8 and sum(v.label for v in chosen) == 4
    assert chosen == cross.balanced_subset(list(reversed(videos)), 8, seed=3)  # the order given does not matter
    assert chosen != cross.balanced_subset(videos, 8, seed=4)
    assert sum(v.label for v in cross.balanced_subset(videos, 30, seed=3)) == 10  # every fake there is
    assert cross.balanced_subset(videos, 0) == videos


def test_frames_are_evenly_spaced_over_the_whole_video(clip, tmp_path):
    (tmp_path / "v.mp4").write_bytes(clip)
    assert cross.sampling(tmp_path / "v.mp4", 3) == (3, 9)  # frames 0, 3, 6 of 10
    assert cross.sampling(tmp_path / "v.mp4", 32) == (1, 32)
    assert cross.sampling(tmp_path / "v.mp4", 0) == (1, None)
    assert len({cross.video_key(n) for n in ("a/b-c.mp4", "a-b/c.mp4", "a_b_c.mp4")}) == 3
    assert ffpp.is_plain_name(cross.video_key("method_A/643049/643049_A/1955231_A_001.mp4"))


def test_no_face_names_the_frames_and_the_library_hint(clip, tmp_path):
    (tmp_path / "v.mp4").write_bytes(clip)
    detection = cross.Detection()
    text = cross.no_face(tmp_path / "v.mp4", 8, detection)
    assert text.startswith("no face found in its 8 frames (dlib hog on frames of at most")
    assert "--upsample 1" in text
    assert "--upsample 1" not in cross.no_face(tmp_path / "v.mp4", 8, cross.Detection(
        settings=dataclasses.replace(detection.settings, upsample=1)))


def test_checkpoint_grammar_takes_a_bare_run_and_refuses_method_cells(tmp_path):
    (tmp_path / "all").mkdir()
    parsed = cli.parse_checkpoints([str(tmp_path / "all"), f"b@c23={tmp_path / 'all'}"])
    assert parsed == {"all": {(None, None): str(tmp_path / "all")}, "b": {(None, "c23"): str(tmp_path / "all")}}
    assert cross.checkpoint_rows(parsed) == [("all", str(tmp_path / "all"), None), ("b", str(tmp_path / "all"), "c23")]
    assert [cross.slug(x) for x in ("method (LQ)", "..", "../x")] == ["method_LQ", "checkpoint", "x"]
    with pytest.raises(ValueError, match="m@Deepfakes: a cross-dataset row scores whole datasets"):
        cross.checkpoint_rows(cli.parse_checkpoints([f"m@Deepfakes={tmp_path / 'all'}"]))


# ----------------------------------------------------------------------------- the script without dlib or a network

class PixelScorer(torch.nn.Module):
    """A score from every pixel, by channel (a BGR/RGB mix-up shows), per head; a run of 32 px crops."""

    pretrained_cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}

    def score(self, x, quality):
        weights = torch.tensor([1.0, 2.0, 3.0] if quality == "c40" else [3.0, 1.0, 2.0]).view(1, 3, 1, 1)
        return (x * weights).mean(dim=(1, 2, 3)), None


@pytest.fixture
def stand_ins(monkeypatch, tmp_path):
    """dlib and the checkpoints replaced: a fixed box in every frame read (none in a 'faceless' video), and two
    runs of 32 px whose heads are PixelScorer. Returns the calls to the face finder."""
    calls = []

    def boxes(path, detection, stride, limit, frames=None):
        calls.append(path.name)
        assert frames is None or [i for i, _ in frames] == list(range(0, min(limit or FRAMES, FRAMES), stride))
        frames = list(range(0, min(limit or FRAMES, FRAMES), stride))
        found = {} if "faceless" in path.name else {f: list(BOX) for f in frames}
        return faces.VideoBoxes(found, frames, detected=len(found))

    def scorers(specs, epoch, heads, notes):
        for label, folder, _ in specs:
            info = {"checkpoint_dir": folder, "epoch": 1, "image_size": 32, "model": "detector"}
            for head in heads:
                yield Scorer(f"{label} ({head.upper()})", PixelScorer(), info, cross.HEADS[head])

    monkeypatch.setattr(cross, "main_face_boxes", boxes)
    monkeypatch.setattr(cross, "load_scorers", scorers)
    for name in ("one", "two"):
        write_json(tmp_path / name / "config.json", {"image_size": 32})
        write_json(tmp_path / name / "best.json", {"epoch": 1, "val_threshold_c40": 0.1, "val_threshold_c23": 0.2})
    return calls


@pytest.fixture
def dfdc_part(clip, tmp_path):
    """A DFDC training part: two real and two fake clips, a faceless fake, a truncated real, one listed but absent."""
    part = tmp_path / "dfdc_train_part_0"
    labels = {"real1.mp4": "REAL", "real2.mp4": "REAL", "fake1.mp4": "FAKE", "fake2.mp4": "FAKE",
              "facelessfake.mp4": "FAKE", "cut.mp4": "REAL", "absent.mp4": "FAKE"}
    write_json(part / "metadata.json", {k: {"label": v, "split": "train"} for k, v in labels.items()})
    put(part, [n for n in labels if n not in ("cut.mp4", "absent.mp4")], clip)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(part / "real1.mp4"), "-c", "copy", "-movflags",
                    "+faststart", str(tmp_path / "whole.mp4")], check=True)
    (part / "cut.mp4").write_bytes((tmp_path / "whole.mp4").read_bytes()[:1500])
    return part, labels


def run_script(tmp_path, part, *extra):
    return load_script("cross_dataset").main(
        ["--checkpoint", f"one={tmp_path / 'one'}", "--checkpoint", f"two={tmp_path / 'two'}", "--dataset",
         f"dfdc={part}", "--out", str(tmp_path / "out"), "--device", "cpu", "--workers", "0", "--max-frames", "4",
         *extra])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_script_labels_scores_and_tabulates_each_prepared_video(stand_ins, dfdc_part, tmp_path, capsys):
    part, labels = dfdc_part
    status = run_script(tmp_path, part)
    err = capsys.readouterr().err
    out = tmp_path / "out"
    assert status == 1
    for name, why in (("absent.mp4", "not found (named by"), ("facelessfake.mp4", "no face found in its 4 frames"),
                      ("cut.mp4", "ffmpeg cannot read it cleanly")):
        assert sum(line.startswith(f"skip: {part / name}: {why}") for line in err.splitlines()) == 1, err
    videos = {r["video"]: r for r in read_csv(out / "dfdc" / "videos.csv")}
    assert {v: int(r["label"]) for v, r in videos.items()} == {k: int(v == "FAKE") for k, v in labels.items()}
    prepared = {v for v, r in videos.items() if r["status"] == "prepared"}
    assert prepared == {"real1.mp4", "real2.mp4", "fake1.mp4", "fake2.mp4"}
    # two runs of one size share one preparation: each video was looked at once
    assert sorted(stand_ins) == sorted(prepared | {"facelessfake.mp4"})
    frames = {}
    for row in ("one_LQ", "one_HQ", "two_LQ", "two_HQ"):
        rows = read_csv(out / "dfdc" / row / "scores.csv")
        assert {r["video"]: int(r["label"]) for r in rows} == {v: int(labels[v] == "FAKE") for v in prepared}
        frames[row] = [(r["video"], int(r["frame"])) for r in rows]
        metrics = json.loads((out / "dfdc" / row / "metrics.json").read_text())
        scores = np.array([float(r["score"]) for r in rows])
        truth = np.array([int(r["label"]) for r in rows])
        assert metrics["threshold"] == (0.1 if row.endswith("LQ") else 0.2)
        assert metrics["acc"] == pytest.approx(((scores >= metrics["threshold"]) == truth).mean())
        assert metrics["videos"] == 4 and metrics["frames"] == 16 and "oracle" in metrics["best_acc_note"]
    assert all(f == [(v, n) for v in sorted(prepared) for n in (0, 2, 4, 6)] for f in frames.values())
    # the score is the pixel function of the crop cut by the box from the decoded frame, in RGB
    cap = cv2.VideoCapture(str(part / "fake1.mp4"))
    first = cap.read()[1]
    cap.release()
    crop = cv2.cvtColor(cv2.resize(first[4:36, 8:40], (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    expected = float(PixelScorer().score(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1,
                                         "c40")[0])
    row = next(r for r in read_csv(out / "dfdc" / "one_LQ" / "scores.csv") if r["video"] == "fake1.mp4")
    assert float(row["score"]) == pytest.approx(expected, rel=1e-5)
    table = read_csv(out / "table.csv")
    assert [r["checkpoint"] for r in table] == ["one (LQ)", "one (HQ)", "two (LQ)", "two (HQ)"]
    lq = json.loads((out / "dfdc" / "one_LQ" / "metrics.json").read_text())
    assert float(table[0]["dfdc_auc"]) == lq["auc"] and float(table[0]["mean_video_auc"]) == lq["video_auc"]
    text = (out / "table.md").read_text()
    assert "| checkpoint | dfdc AUC | dfdc video AUC | mean AUC | mean video AUC |" in text
    assert f"| one (LQ) | {100 * lq['auc']:.2f} | {100 * lq['video_auc']:.2f} |" in text
    assert "dfdc: 4 videos scored (2 real, 2 fake), 3 skipped" in text

    stand_ins.clear()  # a rerun reuses the faces and crops; another --max-frames finds them again
    assert run_script(tmp_path, part) == 1 and stand_ins == []
    assert [(r["video"], int(r["frame"])) for r in read_csv(out / "dfdc" / "one_LQ" / "scores.csv")] == frames["one_LQ"]
    listing = datasets.read_dataset("dfdc", part)
    chosen = {v.name for v in cross.balanced_subset(listing.videos + listing.missing, 2, seed=5)}
    assert sorted(labels[v] for v in chosen) == ["FAKE", "REAL"]
    status = run_script(tmp_path, part, "--max-frames", "2", "--max-videos", "2", "--seed", "5")
    assert status == int(not chosen <= prepared)
    assert set(stand_ins) == chosen - {"cut.mp4", "absent.mp4"}  # other frames: found again
    assert {r["video"] for r in read_csv(out / "dfdc" / "videos.csv")} == chosen


def test_preparation_decodes_each_video_once_unless_its_frames_are_too_large_to_keep(stand_ins, dfdc_part, tmp_path,
                                                                                     monkeypatch):
    part, _ = dfdc_part
    decoded, decode = [], cross.iter_frames
    monkeypatch.setattr(cross, "iter_frames", lambda path, *a: decoded.append(path.name) or decode(path, *a))
    monkeypatch.setattr(crops, "iter_frames", lambda *a, **k: pytest.fail("the crops decoded a video again"))
    assert run_script(tmp_path, part) == 1
    assert sorted(decoded) == sorted(stand_ins) == ["facelessfake.mp4", "fake1.mp4", "fake2.mp4", "real1.mp4",
                                                    "real2.mp4"]
    kept = (tmp_path / "out" / "dfdc" / "one_LQ" / "scores.csv").read_bytes()
    monkeypatch.setattr(crops, "iter_frames", decode)
    monkeypatch.setattr(cross, "KEPT_FRAMES_BYTES", 0)  # each step reads the file: the same crops, the same scores
    (tmp_path / "out").rename(tmp_path / "kept")
    assert run_script(tmp_path, part) == 1
    assert (tmp_path / "out" / "dfdc" / "one_LQ" / "scores.csv").read_bytes() == kept


def test_script_errors_name_what_to_fix(stand_ins, tmp_path, capsys):
    main = load_script("cross_dataset").main
    with pytest.raises(SystemExit, match="not a dfdc root.*no labels.csv or metadata.json"):
        main(["--checkpoint", str(tmp_path / "one"), "--dataset", f"dfdc={tmp_path}", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="checkpoint folder not found"):
        main(["--checkpoint", str(tmp_path / "none"), "--dataset", f"dfdc={tmp_path}", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        main(["--dataset", f"celebdv={tmp_path}"])
    assert "NAME one of celebdf, celebdf-v1, dfdc" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--dataset", f"dfdc={tmp_path}", "--dataset", f"dfdc={tmp_path}"])
    assert "each NAME once" in capsys.readouterr().err


# ----------------------------------------------------------------------------- slow: ../shared, a trained model, a kill

DFDC = SHARED / "data" / "dfdc_samples"
FFPP = SHARED / "data" / "ffpp_c23_samples"
needs_shared = pytest.mark.skipif(not (DFDC.is_dir() and FFPP.is_dir()),
                                  reason=f"shared clips not found under {SHARED / 'data'}")
SLOW_FRAMES = "8"


@pytest.fixture(scope="module")
def shared_roots(tmp_path_factory):
    """The DFDC clips as a training part (their labels.json written as the part's metadata.json, the videos linked)
    and a test split naming every FF++ sample (the official one holds only one of them)."""
    root = tmp_path_factory.mktemp("shared")
    part = root / "dfdc_part"
    labels = json.loads((DFDC / "labels.json").read_text())
    write_json(part / "metadata.json", {k: {"label": v, "split": "train"} for k, v in labels.items()})
    for name in labels:
        os.symlink(DFDC / name, part / name)
    write_json(root / "splits" / "test.json", [["519", "515"], ["634", "660"], ["004", "982"], ["750", "743"]])
    return part, root / "splits", labels


def slow_args(one_step_run, shared_roots, out, *datasets_):
    part, splits, _ = shared_roots
    given = {"dfdc": f"dfdc={part}", "ffpp": f"ffpp={FFPP}"}
    return ["--checkpoint", f"tiny={one_step_run}", *[a for d in datasets_ for a in ("--dataset", given[d])],
            "--splits", str(splits), "--out", str(out), "--device", "cpu", "--workers", "2",
            "--max-frames", SLOW_FRAMES]


@pytest.fixture(scope="module")
def shared_run(one_step_run, shared_roots, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross")
    status = load_script("cross_dataset").main(slow_args(one_step_run, shared_roots, out, "dfdc", "ffpp"))
    return out, status


@pytest.mark.slow
@needs_shared
def test_cross_dataset_on_the_shared_clips(shared_run, shared_roots, capsys):
    out, status = shared_run
    _, _, labels = shared_roots
    assert status == 1  # the split names originals and fakes the samples lack
    expected = {"dfdc": {k: int(v == "FAKE") for k, v in labels.items()},
                "ffpp": {str(p.relative_to(FFPP)): int("manipulated" in str(p)) for p in FFPP.rglob("*.mp4")}}
    for name, truth in expected.items():
        videos = {r["video"]: r for r in read_csv(out / name / "videos.csv")}
        scored = {v for v, r in videos.items() if r["status"] == "prepared"}
        for row in ("tiny_LQ", "tiny_HQ"):
            rows = read_csv(out / name / row / "scores.csv")
            assert {r["video"]: int(r["label"]) for r in rows} == {v: truth[v] for v in scored}
        assert all(int(r["label"]) == truth[v] for v, r in videos.items() if v in truth)
        # every video on disk is prepared or named with its reason (today's detector misses some DFDC faces)
        assert set(truth) <= set(videos) and all(r["reason"] for r in videos.values() if r["status"] == "skipped")
    assert len([r for r in read_csv(out / "dfdc" / "videos.csv") if r["status"] == "prepared"]) >= 2
    assert {r["video"] for r in read_csv(out / "ffpp" / "videos.csv") if r["status"] == "prepared"} == \
        set(expected["ffpp"])
    table = read_csv(out / "table.csv")
    assert [r["checkpoint"] for r in table] == ["tiny (LQ)", "tiny (HQ)"] and table[0]["ffpp_auc"]
    assert "| tiny (LQ) |" in (out / "table.md").read_text()


@pytest.mark.slow
@needs_shared
def test_a_kill_during_preparation_then_a_rerun_gives_the_same_scores(shared_run, one_step_run, shared_roots, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, str(REPO / "cross_dataset.py"), *slow_args(one_step_run, shared_roots, out, "dfdc")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    boxes = out / "prep" / "dfdc" / "boxes"
    try:
        while not list(boxes.glob("*.json")) and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "preparation finished before the kill"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the script and its worker processes
        process.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in boxes.glob("*.json")}
    assert kept and not (out / "dfdc" / "videos.csv").exists()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    assert all((boxes / name).stat().st_mtime_ns == when for name, when in kept.items())  # reused, not redone
    for row in ("tiny_LQ", "tiny_HQ"):
        assert read_csv(out / "dfdc" / row / "scores.csv") == read_csv(shared_run[0] / "dfdc" / row / "scores.csv")
