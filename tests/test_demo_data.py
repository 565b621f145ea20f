"""The demo set: FF++'s layout and compression, masks that cover every change, faces dlib finds, determinism.

Unmarked tests are unit tests that run in seconds without building a demo set; the slow ones build whole
sets (and run dlib over them).
"""
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from demokit.animation import FPS, expression
from demokit.build import QUALITIES, RAW, build, plan_sources, split_pairs, split_sizes
from demokit.manipulations import MANIPULATIONS
from demokit.sources import source_files
from forensics import ffpp
from forensics.video import read_frames, video_info, x264_settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_VIDEOS = SHARED / "data" / "real_faces" / "videos"
BUILTIN = dict(videos=6, frames=10, size=160, seed=5)


def _quiet(*_):
    pass


def _pairs(n):
    return [[f"{2 * i:03d}", f"{2 * i + 1:03d}"] for i in range(n)]


def _frames(path):
    return np.stack(list(read_frames(path).values()))


def _all_videos(root, pairs, quality):
    ids = [i for p in pairs for i in p]
    yield from (ffpp.video_path(root, ffpp.REAL, quality, i) for i in ids)
    for m in ffpp.METHODS:
        yield from (ffpp.video_path(root, m, quality, v) for v in ffpp.split_videos(pairs, m))


def _face_rate(root, pairs):
    import dlib

    detector = dlib.get_frontal_face_detector()
    found = total = 0
    for path in _all_videos(root, pairs, "c23"):
        for frame in _frames(path):
            found += len(detector(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 1)) > 0
            total += 1
    return found / total, total


def _arc(cx, cy, rx, ry, n, a0, a1, endpoint=False):
    a = np.linspace(a0, a1, n, endpoint=endpoint)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def _face_points(cx, cy, s, mouth_open=0.0):
    """A 68-point layout in dlib's order (jaw, brows, nose, eyes, lips), so the manipulations run without dlib."""
    jaw = _arc(cx, cy, 0.5 * s, 0.6 * s, 17, np.pi, 0, endpoint=True)
    brows = [np.stack([np.linspace(cx + k * 0.4 * s, cx + k * 0.1 * s, 5)[::k], np.full(5, cy - 0.3 * s)], 1)
             for k in (-1, 1)]
    bridge = np.stack([np.full(4, cx), np.linspace(cy - 0.2 * s, cy + 0.05 * s, 4)], 1)
    nostrils = np.stack([np.linspace(cx - 0.1 * s, cx + 0.1 * s, 5), np.full(5, cy + 0.1 * s)], 1)
    eyes = [_arc(cx + dx * s, cy - 0.15 * s, 0.08 * s, 0.03 * s, 6, np.pi, 3 * np.pi) for dx in (-0.2, 0.2)]
    lips = _arc(cx, cy + 0.3 * s, 0.18 * s, (0.07 + mouth_open) * s, 12, np.pi, 3 * np.pi)
    inner = _arc(cx, cy + 0.3 * s, 0.12 * s, (0.02 + mouth_open) * s, 8, np.pi, 3 * np.pi)
    return np.vstack([jaw, *brows, bridge, nostrils, *eyes, lips, inner]).astype(np.float32)


def _toy_clip(seed, mouth, drift):
    """Smooth random 128 px frames with a template face that drifts and moves its mouth."""
    rng = np.random.default_rng(seed)
    frames = [cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (128, 128), interpolation=cv2.INTER_CUBIC)
              for _ in mouth]
    marks = np.stack([_face_points(64 + drift * k, 62, 56, m) for k, m in enumerate(mouth)])
    return SimpleNamespace(frames=frames, landmarks=marks)


# ------------------------------------------------------------------------------------------ unit tests

def test_manipulations_cover_ffpp_methods():
    assert tuple(MANIPULATIONS) == ffpp.METHODS


@pytest.mark.parametrize("method", ffpp.METHODS)
def test_manipulation_changes_pixels_only_inside_its_mask(method):
    target = _toy_clip(1, [0.0, 0.02, 0.04], drift=1)
    source = _toy_clip(2, [0.06, 0.0, 0.03], drift=-1)
    frames, masks = MANIPULATIONS[method](target, source, np.random.default_rng(3))
    again, _ = MANIPULATIONS[method](target, source, np.random.default_rng(3))
    assert len(frames) == len(masks) == 3
    for fake, mask, real, same in zip(frames, masks, target.frames, again):
        assert fake.dtype == np.uint8 and fake.shape == real.shape and mask.shape == real.shape[:2]
        changed = (fake != real).any(-1)
        assert not (changed & ~mask).any(), f"{method}: pixels changed outside the mask"
        assert changed[mask].mean() > 0.3, f"{method}: most of the mask is left as it was"
        assert 0.02 < mask.mean() < 0.25, f"{method}: the mask is not the face ({mask.mean():.1%} of the frame)"
        assert np.array_equal(fake, same), f"{method}: not determined by its rng"
        if method == "NeuralTextures":
            ys, xs = np.nonzero(mask)
            assert mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all(), "the mask is not a box"


def test_expression_moves_mouth_eyes_and_brows():
    points = _face_points(100, 100, 80)
    assert np.array_equal(expression(points, 0, 0, 0), points)
    down = points[8] - points[17:27].mean(0)
    height = np.linalg.norm(down)
    down /= height
    closed = expression(points, 0, 1, 0)
    for upper, lower in (([37, 38], [41, 40]), ([43, 44], [47, 46])):
        np.testing.assert_allclose(closed[upper], points[upper] + 0.8 * (points[lower] - points[upper]), atol=1e-4)
    opened = expression(points, 1, 0, 0)
    np.testing.assert_allclose((opened[66] - opened[62]) - (points[66] - points[62]), 0.11 * height * down,
                               atol=1e-4)  # lower lip down by 0.1, upper lip up by 0.01 face heights
    raised = expression(points, 0, 0, 1)
    np.testing.assert_allclose(raised[17:27] - points[17:27], np.tile(-0.04 * height * down, (10, 1)), atol=1e-4)
    assert np.array_equal(raised[:17], points[:17])


@pytest.mark.parametrize("n_pairs, val_test", [(3, (1, 1)), (4, (1, 1)), (8, (1, 2)), (16, (2, 4)), (32, (4, 8))])
def test_split_sizes_default_shares(n_pairs, val_test):
    assert split_sizes(n_pairs) == val_test


@pytest.mark.parametrize("n_pairs, val, test", [(2, None, None), (8, 6, 2), (8, 0, 2), (8, 1, 0)])
def test_split_sizes_leave_every_split_a_pair(n_pairs, val, test):
    with pytest.raises(ValueError, match="each split needs at least one pair"):
        split_sizes(n_pairs, val, test)


def test_split_pairs_is_a_seeded_shuffle():
    assert split_pairs(_pairs(8), 0) == {
        "train": [["004", "005"], ["008", "009"], ["010", "011"], ["012", "013"], ["014", "015"]],
        "val": [["000", "001"]], "test": [["002", "003"], ["006", "007"]]}
    assert split_pairs(_pairs(8), 1)["val"] == [["004", "005"]]
    chosen = split_pairs(_pairs(16), 0, val_pairs=9, test_pairs=2)
    assert {s: len(v) for s, v in chosen.items()} == {"train": 5, "val": 9, "test": 2}
    assert sorted(p for v in chosen.values() for p in v) == _pairs(16)


def test_source_files_finds_videos_and_photos(tmp_path):
    for name in ("b/clip.MP4", "a.jpg", "notes.txt", "b/c/face.png", "video.mkv.part"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert source_files(tmp_path) == [tmp_path / "a.jpg", tmp_path / "b/c/face.png", tmp_path / "b/clip.MP4"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        source_files(tmp_path / "a.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no video \(.avi, .m4v, .mkv, .mov, .mp4, .webm\) or photo"):
        source_files(tmp_path / "empty")


def test_plan_sources_reuses_a_video_further_on_then_mirrored(tmp_path, monkeypatch):
    probes = {"a.mp4": (20, 30.0), "b.png": (1, 25.0), "c.mp4": "dlib finds no face in its first frame"}
    for name in probes:
        (tmp_path / name).touch()
    monkeypatch.setattr("demokit.build.probe", lambda path: probes[path.name])
    lines = []
    plans = plan_sources(tmp_path, 6, 8, 1, lines.append)
    a, b = tmp_path / "a.mp4", tmp_path / "b.png"
    assert plans == [(a, 0, False, 30.0), (b, 0, False, 25.0), (a, 8, False, 30.0), (b, 0, True, 25.0),
                     (a, 0, True, 30.0), (b, 0, False, 25.0)]
    assert lines == [f"skipping {tmp_path / 'c.mp4'}: dlib finds no face in its first frame"]
    assert plan_sources(None, 6, 8, 1, lines.append) == [None] * 6
    probes.update({"a.mp4": "cannot be read (x)", "b.png": "dlib finds no face in its first frame"})
    with pytest.raises(ValueError, match="no usable face in any file; a.mp4: cannot be read"):
        plan_sources(tmp_path, 6, 8, 1, _quiet)


@pytest.mark.parametrize("kwargs, message", [
    (dict(videos=5), "--videos 5"), (dict(videos=4), "--videos 4"), (dict(size=127), "--size 127"),
    (dict(frames=0), "--frames 0"), (dict(val_pairs=7), "each split needs at least one pair"),
    (dict(source="/nonexistent"), "not a folder")])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build(tmp_path, log=_quiet, **kwargs)


# ------------------------------------------------------------------------------- whole demo sets (slow)

@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    result = build(root, raw=True, workers=2, log=_quiet, **BUILTIN)
    return root, result


@pytest.fixture(scope="module")
def from_source(tmp_path_factory):
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"{REAL_VIDEOS} absent: the shared real-face clips are not in this checkout")
    root = tmp_path_factory.mktemp("demo_source")
    lines = []
    result = build(root, videos=16, frames=6, size=160, seed=1, source=REAL_VIDEOS, workers=2, log=lines.append)
    return root, result, lines


@pytest.mark.slow
def test_layout_and_splits(builtin):
    root, result = builtin
    ids = [f"{i:03d}" for i in range(BUILTIN["videos"])]
    assert result["originals"] == ids
    pairs = _pairs(BUILTIN["videos"] // 2)
    assert result["pairs"] == pairs
    for quality in ffpp.COMPRESSIONS:
        assert sorted(p.name for p in ffpp.videos_dir(root, ffpp.REAL, quality).iterdir()) == [f"{i}.mp4" for i in ids]
        for method in ffpp.METHODS:
            expected = sorted(f"{v}.mp4" for v in ffpp.split_videos(pairs, method))
            assert sorted(p.name for p in ffpp.videos_dir(root, method, quality).iterdir()) == expected
            assert sorted(p.name for p in ffpp.videos_dir(root, method, ffpp.MASKS).iterdir()) == expected
    assert {s: ffpp.read_split(root / "splits", s) for s in ffpp.SPLITS} == split_pairs(pairs, BUILTIN["seed"])


@pytest.mark.slow
def test_h264_at_the_crf_it_claims(builtin):
    root, result = builtin
    for quality, crf in QUALITIES.items():
        for path in _all_videos(root, result["pairs"], quality):
            settings = x264_settings(path)
            assert settings is not None, f"{path}: not an x264 stream"
            assert f"crf={crf}.0" in settings, f"{path}: {settings}"
            count, fps, w, h = video_info(path)
            assert (fps, w, h) == (FPS, BUILTIN["size"], BUILTIN["size"])
            assert len(read_frames(path)) == BUILTIN["frames"]
    c23 = ffpp.video_path(root, "Deepfakes", "c23", "000_001").stat().st_size
    assert ffpp.video_path(root, "Deepfakes", "c40", "000_001").stat().st_size < c23


@pytest.mark.slow
@pytest.mark.parametrize("method", ffpp.METHODS)
def test_fake_differs_from_target_only_inside_its_mask(builtin, method):
    root, result = builtin
    for video in ffpp.split_videos(result["pairs"], method):
        target = ffpp.target_of(video)
        masks = _frames(ffpp.video_path(root, method, ffpp.MASKS, video))[..., 0]
        assert ((masks < 30) | (masks > 225)).all(), f"{video}: mask is not binary"
        masks = masks > 127
        assert masks.reshape(len(masks), -1).any(1).all(), f"{video}: a frame with an empty mask"
        fake = _frames(ffpp.video_path(root, method, RAW, video)).astype(int)
        real = _frames(ffpp.video_path(root, ffpp.REAL, RAW, target)).astype(int)
        changed = np.abs(fake - real).max(-1) > 0
        assert not (changed & ~masks).any(), f"{method} {video}: pixels changed outside the mask"
        assert np.abs(fake - real)[masks].mean() > 1.0, f"{method} {video}: the fake hardly changes its target"
        for f, m in zip(fake, masks):  # the forged region is textured, never a flat patch
            assert f[m].std(0).min() > 3, f"{method} {video}: a flat patch inside the mask"
        fake23 = _frames(ffpp.video_path(root, method, "c23", video)).astype(int)
        real23 = _frames(ffpp.video_path(root, ffpp.REAL, "c23", target)).astype(int)
        outside = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0 for m in masks])
        noise = np.abs(real23 - real)[outside].mean()  # what c23 alone does to these pixels
        assert np.abs(fake23 - real23)[outside].mean() < 2 * noise + 0.5, \
            f"{method} {video}: c23 differs outside the mask"


@pytest.mark.slow
def test_neural_textures_masks_are_mouth_boxes(builtin):
    root, result = builtin
    for video in ffpp.split_videos(result["pairs"], "NeuralTextures"):
        for mask in _frames(ffpp.video_path(root, "NeuralTextures", ffpp.MASKS, video))[..., 0] > 127:
            ys, xs = np.nonzero(mask)
            box = np.zeros_like(mask)
            box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            assert (box == mask).all()
            assert mask.mean() < 0.15


@pytest.mark.slow
def test_dlib_finds_faces_in_builtin_demo(builtin):
    root, result = builtin
    rate, total = _face_rate(root, result["pairs"])
    assert total == BUILTIN["frames"] * BUILTIN["videos"] * 5
    assert rate >= 0.95, f"dlib found a face in only {rate:.1%} of {total} frames"


@pytest.mark.slow
def test_dlib_finds_faces_in_demo_from_source(from_source):
    root, result, lines = from_source
    rate, total = _face_rate(root, result["pairs"])
    assert rate >= 0.95, f"dlib found a face in only {rate:.1%} of {total} frames"
    skipped = {Path(line.split(": ")[0].removeprefix("skipping ")).name: line.split(": ", 1)[1]
               for line in lines if line.startswith("skipping")}
    assert skipped == {"short_hamilton_clip.mp4": "face only 53 px wide (need 64)",
                       "street_crowd.mp4": "2 faces in its first frame (the demo needs one person)"}
    used = {line.split(" from ")[1].split()[0] for line in lines if line.startswith("original")}
    assert len(used) == 14 and all(u.startswith(("liveportrait", "WDA")) for u in used)


@pytest.mark.slow
def test_same_seed_same_frames(tmp_path):
    small = dict(videos=6, frames=3, size=128, log=_quiet)
    a = build(tmp_path / "a", seed=7, workers=2, **small)
    build(tmp_path / "b", seed=7, workers=1, **small)
    build(tmp_path / "c", seed=8, workers=2, **small)
    for quality in ("c23", ffpp.MASKS):
        for method in ffpp.METHODS + ((ffpp.REAL,) if quality != ffpp.MASKS else ()):
            for video in ffpp.split_videos(a["pairs"], method):
                frames = [_frames(ffpp.video_path(tmp_path / d, method, quality, video)) for d in "abc"]
                assert np.array_equal(frames[0], frames[1]), f"{method} {quality} {video}"
                if method == ffpp.REAL:
                    assert not np.array_equal(frames[0], frames[2]), f"seed changes nothing in {video}"


@pytest.mark.slow
def test_photos_as_source_and_errors_that_name_the_file(tmp_path):
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "brick.png"), data.brick())
    with pytest.raises(ValueError, match="brick.png: dlib finds no face"):
        build(tmp_path / "none", videos=6, frames=2, size=128, source=photos, log=_quiet)
    cv2.imwrite(str(photos / "astronaut.png"), data.astronaut()[:, :, ::-1])
    lines = []
    result = build(tmp_path / "out", videos=6, frames=4, size=128, source=photos, workers=2, log=lines.append)
    assert f"skipping {photos / 'brick.png'}: dlib finds no face in its first frame" in lines
    origins = [line.split(" from ", 1)[1] for line in lines if line.startswith("original")]
    assert origins == ["astronaut.png", "astronaut.png mirrored"] * 3
    first = _frames(ffpp.video_path(tmp_path / "out", ffpp.REAL, "c23", "000"))
    assert not np.array_equal(first[0], first[-1]), "a photo source must be animated"
    assert len(result["fakes"]) == 12 * 2


@pytest.mark.slow
def test_script_runs(tmp_path, capsys):
    import make_demo_data

    make_demo_data.main(["--out", str(tmp_path), "--videos", "6", "--frames", "2", "--size", "128"])
    out = capsys.readouterr().out
    assert re.search(rf"^wrote 6 originals and 24 fakes \(6 per method\), c23, c40, masks and splits/ "
                     rf"to {re.escape(str(tmp_path))} in \d+\.\d s$", out, re.M), out
    assert {s: ffpp.read_split(tmp_path / "splits", s) for s in ffpp.SPLITS} == split_pairs(_pairs(3), 0)
