"""The compression-robustness sweep (forensics.degrade, forensics.robustness, robustness.py).

Unit tests work on one or two tiny videos: the ladder, the encoder settings each level really carries,
crops that line up with the c23 crops, the cache and skipping a broken video. The slow tier runs
robustness.py end to end on a tiny FF++-shaped tree with a detector run made here, beside test.py.
"""
import json
import re
import subprocess

import cv2
import numpy as np
import pytest
import torch
from conftest import load_script, randomize_bn

from forensics import crops, degrade, ffpp, video
from forensics.locations import write_locs
from forensics.video import write_video

W, H, N = 128, 96, 6  # frame size and frames of the tiny videos
SIZE = 64  # crop side (the face tree's and the run's)


def box(frame):
    return [20 + 2 * frame, 10, 72]


def clip(seed, fake=None):
    """Frames with smooth texture and a bright square that move 6 and 8 px a frame, so neighbours differ; a
    fake (fake: its noise seed) adds noise to a patch."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 4)
    noise = np.random.default_rng(fake)
    frames = []
    for i in range(N):
        f = np.roll(base, 6 * i, axis=1).copy()
        cv2.rectangle(f, (30 + 8 * i, 30), (46 + 8 * i, 46), (255, 255, 255), -1)
        if fake is not None:
            patch = f[40:80, 40:90].astype(np.int16) + noise.integers(-40, 41, (40, 50, 3))
            f[40:80, 40:90] = np.clip(patch, 0, 255).astype(np.uint8)
        frames.append(f)
    return frames


def ffmpeg_report(path):
    """The 'Video: ...' line ffmpeg prints about a file's stream (what ffprobe reports)."""
    proc = subprocess.run([video.ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return re.search(r"Video: .*", proc.stderr).group(0)


@pytest.fixture(scope="module")
def one_video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one")
    return write_video(clip(7), folder / "c23.mp4", crf=23)


def job_of(path, cache, levels, method="real", name="004"):
    return degrade.VideoJob(method, name, "c23", path, {i: box(i) for i in range(N)}, tuple(levels), cache, SIZE)


# ----------------------------------------------------------------------------- units: the ladder

def test_ladder_names_levels_and_refuses_values_out_of_range():
    levels = degrade.ladder()
    assert [lv.name for lv in levels] == ["source"] + [f"h264_crf{c}" for c in (18, 23, 28, 32, 36, 40, 45)]
    levels = degrade.ladder((23, 40), jpeg=(70,), scale=(0.5,), codecs=("vp9", "h265"))
    assert [lv.name for lv in levels] == ["source", "h264_crf23", "h264_crf40", "h265_crf23", "h265_crf40",
                                          "vp9_crf23", "vp9_crf40", "jpeg_q70", "scale_0.5"]
    assert levels[3].describe() == "H.265 at the bitrate of H.264 at CRF 23"
    with pytest.raises(ValueError, match="--crf 60: use values from 0 to 51"):
        degrade.ladder((23, 60))
    with pytest.raises(ValueError, match="--scale 1: .*strictly between"):
        degrade.ladder(scale=(1,))
    with pytest.raises(ValueError, match="--codecs needs --crf"):
        degrade.ladder((), codecs=("h265",))


def test_checkpoint_specs_read_what_parse_checkpoints_gives(tmp_path):
    from forensics.cli import parse_checkpoints
    from forensics.robustness import checkpoint_specs

    for name in ("run", "b23", "b40"):
        (tmp_path / name).mkdir()
    run, b23, b40 = (str(tmp_path / n) for n in ("run", "b23", "b40"))
    given = parse_checkpoints([f"method={run}", f"X@c23={b23}", f"X@c40={b40}"])
    assert checkpoint_specs(given) == [("method", run, None), ("X (c23)", b23, "c23"), ("X (c40)", b40, "c40")]
    assert checkpoint_specs(parse_checkpoints([f"X@c23={b23}"])) == [("X", b23, "c23")]
    with pytest.raises(ValueError, match="X@Deepfakes: the sweep scores every method at once"):
        checkpoint_specs(parse_checkpoints([f"X@Deepfakes={b23}"]))
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found: .*nowhere"):
        checkpoint_specs(parse_checkpoints([f"X={tmp_path / 'nowhere'}"]))


# ----------------------------------------------------------------------------- units: encodes and crops

def test_each_encode_carries_the_settings_of_its_level(one_video, tmp_path):
    levels = degrade.ladder((32,), codecs=("h265", "vp9"))
    result = degrade.crop_levels(job_of(one_video, tmp_path, levels))
    assert not result.failed and result.tally.skips == []

    def path(level):
        return degrade.encoded_path(tmp_path, "c23", level, "real", "004")

    h264, h265, vp9 = levels[1:]
    assert "crf=32.0" in video.x264_settings(path(h264))
    assert ffmpeg_report(path(h264)).startswith("Video: h264")
    # H.265 and VP9 are given the bitrate the H.264 encode of the same CRF has
    kbps = degrade.bitrate_kbps(path(h264))
    assert f" bitrate={kbps:.0f} " in video.x265_settings(path(h265))
    assert ffmpeg_report(path(h265)).startswith("Video: hevc")
    assert ffmpeg_report(path(vp9)).startswith("Video: vp9") and path(vp9).suffix == ".webm"
    assert result.kbps == {lv.name: pytest.approx(degrade.bitrate_kbps(path(lv))) for lv in levels[1:]}


def test_crops_of_every_level_line_up_with_the_c23_crops(one_video, tmp_path):
    levels = degrade.ladder((18, 40), jpeg=(50,), scale=(0.5,))
    result = degrade.crop_levels(job_of(one_video, tmp_path, levels))
    assert result.frames == {lv.name: list(range(N)) for lv in levels}
    job = job_of(one_video, tmp_path, levels)
    c23 = dict(crops.crop_frames(video.read_frames(one_video), job.boxes, SIZE))  # what create_faces cuts

    def crop(level, i):
        return cv2.imread(str(job.crop_dir(level) / f"{i}.png")).astype(np.int16)

    for i in range(N):
        assert np.array_equal(crop(levels[0], i), c23[i])  # the source level is the c23 crop itself
    for level in levels[1:]:
        for i in range(N):
            same = np.abs(crop(level, i) - c23[i]).mean()
            others = [np.abs(crop(level, i) - c23[j]).mean() for j in range(N) if j != i]
            assert same < 0.7 * min(others), (level.name, i, same, others)
    assert (np.abs(crop(levels[2], 3) - c23[3]).mean() > np.abs(crop(levels[1], 3) - c23[3]).mean())  # 40 vs 18
    jpeg = cv2.imdecode(cv2.imencode(".jpg", video.read_frames(one_video)[2], [cv2.IMWRITE_JPEG_QUALITY, 50])[1],
                        cv2.IMREAD_COLOR)
    assert np.array_equal(crop(levels[3], 2), crops.cut(jpeg, box(2), SIZE))


def test_a_rerun_reuses_the_cache_and_redoes_only_what_is_missing(one_video, tmp_path):
    levels = degrade.ladder((23, 40), codecs=("h265",))
    degrade.crop_levels(job_of(one_video, tmp_path, levels))

    def stamps():
        return {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    before = stamps()
    again = degrade.crop_levels(job_of(one_video, tmp_path, levels))
    assert stamps() == before and again.frames == {lv.name: list(range(N)) for lv in levels}
    # a deleted crop: that level is cut again from its cached encode, nothing is encoded again
    gone = job_of(one_video, tmp_path, levels).crop_dir(levels[2]) / "3.png"
    gone.unlink()
    degrade.crop_levels(job_of(one_video, tmp_path, levels))
    changed = {p for p, t in stamps().items() if before.get(p) != t}
    assert gone.exists() and all(p.parent == gone.parent for p in changed)
    assert not any(p.suffix in (".mp4", ".webm") for p in changed)


def test_only_the_frames_the_sweep_cuts_are_encoded_and_a_longer_need_encodes_again(one_video, tmp_path):
    level = degrade.Level("h264", 23)

    def encode(frames):
        path = degrade.encoded(tmp_path, "c23", one_video, level, "real", "004", frames)
        return video.video_info(path)[0], path.stat().st_mtime_ns

    three, first = encode(3)
    assert three == 3 and encode(2) == (3, first)
    assert encode(5)[0] == 5
    whole, last = encode(50)  # more than the source has: all of it, and reused from then on
    assert whole == N and encode(50) == (N, last) and encode(None) == (N, last)


def test_an_interrupted_encode_leaves_no_file_under_its_name(one_video, tmp_path, monkeypatch):
    level = degrade.Level("h264", 23)
    dst = degrade.encoded_path(tmp_path, "c23", level, "real", "004")

    def killed(cmd, **kwargs):
        with open(cmd[-1], "wb") as f:  # ffmpeg's output, half written
            f.write(b"\x00\x00\x00\x18ftypisom")
        raise KeyboardInterrupt

    monkeypatch.setattr(video.subprocess, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        degrade.encoded(tmp_path, "c23", one_video, level, "real", "004")
    assert list(dst.parent.iterdir()) == []
    monkeypatch.undo()
    (dst.parent / f".{dst.stem}.999.tmp.mp4").write_bytes(b"left by a killed run")
    assert degrade.encoded(tmp_path, "c23", one_video, level, "real", "004") == dst
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name, f"{dst.name}.json"]  # the encode, its size
    assert "crf=23.0" in video.x264_settings(dst)


def test_a_truncated_video_is_left_out_with_a_line_naming_it(one_video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(one_video.read_bytes()[:1500])
    levels = degrade.ladder((23,))
    result = degrade.crop_levels(job_of(broken, tmp_path / "cache", levels, "Deepfakes", "004_005"))
    assert result.failed and result.frames == {} and result.tally.videos_skipped == 1
    (line,) = result.tally.skips
    assert line == (f"{broken}: ffmpeg cannot encode it as H.264 at CRF 23 (moov atom not found): "
                    "Deepfakes 004_005 left out of the sweep at every level")
    assert not list((tmp_path / "cache").rglob("*.mp4")) and not list((tmp_path / "cache").rglob("*.png"))


# ----------------------------------------------------------------------------- end to end (slow)

PAIRS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
BROKEN = ("Face2Face", "005_004")  # its c23 video is truncated


def _tree(root):
    """A tiny FF++ tree (c23 and c40 videos), its face locations, splits and face/ tree."""
    from forensics.fileio import write_json

    data, locs_dir, splits = root / "ffpp", root / "jsons", root / "splits"
    for name, pairs in PAIRS.items():
        write_json(splits / f"{name}.json", pairs)
    locs = {m: {} for m in (ffpp.REAL,) + ffpp.METHODS}
    for a, b in PAIRS["val"] + PAIRS["test"]:
        for target, source in ((a, b), (b, a)):
            clips = {(ffpp.REAL, target): clip(int(target))}
            clips.update({(m, f"{target}_{source}"): clip(int(target), fake=10 * int(target) + k)
                          for k, m in enumerate(ffpp.METHODS)})
            for (method, name), frames in clips.items():
                for quality, crf in (("c23", 23), ("c40", 40)):
                    write_video(frames, ffpp.video_path(data, method, quality, name), crf=crf)
                locs[method][name] = {i: box(i) for i in range(N)}
    broken = ffpp.video_path(data, *BROKEN[:1], "c23", BROKEN[1])
    broken.write_bytes(broken.read_bytes()[:2000])
    for method, boxes in locs.items():
        write_locs(locs_dir, method, boxes)
    crops.create_faces(data, locs_dir, root / "face", masks=False, image_size=SIZE)
    return data, locs_dir, splits, root / "face", broken


def _run(root):
    from models import AntiCompressionDetector
    from forensics.training import save_part

    torch.manual_seed(0)
    detector = AntiCompressionDetector().eval()
    randomize_bn(detector)
    run = root / "run"
    for part in ("tail", "hq_head", "lq_head"):
        save_part(run / f"{part}_000001.tar", getattr(detector, part))
    (run / "config.json").write_text(json.dumps({"model": "detector", "image_size": SIZE}))
    (run / "best.json").write_text(json.dumps({"epoch": 1, "val_auc": 0.5}))
    return run


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    import contextlib
    import io

    root = tmp_path_factory.mktemp("sweep")
    data, locs_dir, splits, face, broken = _tree(root)
    run = _run(root)
    args = ["--ffpp-root", str(data), "--locs", str(locs_dir), "--face-root", str(face), "--splits", str(splits),
            "--out", str(root / "out"), "--image-size", str(SIZE), "--crf", "23", "40", "--jpeg", "50",
            "--checkpoint", f"method={run}", "--device", "cpu", "--workers", "2", "--batch-size", "32"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        rows, report = load_script("robustness").main(args)
    return dict(root=root, face=face, splits=splits, run=run, broken=broken, args=args, rows=rows,
                report=report, stdout=stdout.getvalue(), stderr=stderr.getvalue(), out=root / "out")


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


LEVELS = ("source", "h264_crf23", "h264_crf40", "jpeg_q50")


@pytest.mark.slow
def test_one_row_per_checkpoint_and_level(swept):
    rows = _csv(swept["out"] / "robustness.csv")
    assert [(r["checkpoint"], r["compression"], r["name"]) for r in rows] == [
        (f"method ({head})", quality, level) for head, quality in (("LQ", "c40"), ("HQ", "c23")) for level in LEVELS]
    assert {r["threshold_source"] for r in rows} == {"val"}
    assert {(r["videos"], r["frames"]) for r in rows} == {("9", str(9 * N))}  # ten test videos, one truncated
    assert all(r[f"auc_{m}"] for r in rows for m in ffpp.METHODS)  # Face2Face keeps 004_005
    assert {r["kbps"] == "" for r in rows if r["degradation"] in ("source", "jpeg")} == {True}
    assert all(float(r["kbps"]) > 0 for r in rows if r["degradation"] == "h264")
    table = (swept["out"] / "robustness.md").read_text()
    assert "| level | kbit/s | method (LQ) | method (HQ) |" in table and "| H.264 at CRF 40 |" in table
    assert "every level is a second compression on top of FF++'s own" in table
    assert (swept["out"] / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_source_level_equals_test_py_at_c23(swept, tmp_path):
    from forensics.evaluation import evaluate

    load_script("test").main(["--face-root", str(swept["face"]), "--splits", str(swept["splits"]),
                              "--checkpoint-dir", str(swept["run"]), "--compression", "c23", "--out", str(tmp_path),
                              "--device", "cpu", "--workers", "0"])
    metrics = evaluate(tmp_path / "scores.csv", plots=False)
    (row,) = [r for r in swept["rows"] if r["checkpoint"] == "method (HQ)" and r["name"] == "source"]
    assert row["frames"] == metrics["frames"] == 9 * N
    for key in ("auc", "video_auc", "acc"):
        assert row[key] == pytest.approx(metrics[key], abs=1e-12)
    assert row["auc_Deepfakes"] == pytest.approx(metrics["per_method"]["Deepfakes"]["auc"], abs=1e-12)
    crf40 = [r for r in swept["rows"] if r["checkpoint"] == "method (HQ)" and r["name"] == "h264_crf40"]
    assert crf40[0]["auc"] != row["auc"]  # the levels differ: the comparison above is not vacuous


@pytest.mark.slow
def test_a_truncated_video_is_skipped_and_the_sweep_finishes(swept):
    method, name = BROKEN
    line = (f"skip: {swept['broken']}: ffmpeg cannot encode it as H.264 at CRF 23 (moov atom not found): "
            f"{method} {name} left out of the sweep at every level")
    assert line in swept["stderr"].splitlines()
    summary = "videos: 9 done, 1 skipped; frames: 54 done, 6 skipped"
    assert summary in swept["stdout"].splitlines() and swept["report"].skipped == [line[len("skip: "):]]
    table = (swept["out"] / "robustness.md").read_text()
    assert f"Preparation: {summary}." in table and f"- {line}" in table


@pytest.mark.slow
def test_a_rerun_reuses_every_encode_and_crop(swept):
    cache = swept["out"] / "cache"

    def stamps():
        return {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    before = stamps()
    assert sum(p.suffix == ".mp4" for p in before) == 2 * 9  # two CRFs, nine videos
    rows, _ = load_script("robustness").main(swept["args"])
    assert stamps() == before
    assert [(r["name"], r["auc"]) for r in rows] == [(r["name"], r["auc"]) for r in swept["rows"]]
