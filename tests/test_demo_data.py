"""The demo set: FF++'s layout and compression, masks that cover every change, faces dlib finds, determinism."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from demokit.animation import FPS
from demokit.build import QUALITIES, RAW, build, split_pairs
from forensics import ffpp
from forensics.video import read_frames, video_info, x264_settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_VIDEOS = SHARED / "data" / "real_faces" / "videos"
BUILTIN = dict(videos=6, frames=10, size=160, seed=5)


def _quiet(*_):
    pass


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
    result = build(root, videos=16, frames=6, size=160, seed=1, source=REAL_VIDEOS, workers=2,
                             log=lines.append)
    return root, result, lines


def test_layout_and_splits(builtin):
    root, result = builtin
    ids = [f"{i:03d}" for i in range(BUILTIN["videos"])]
    assert result["originals"] == ids
    pairs = [[ids[i], ids[i + 1]] for i in range(0, len(ids), 2)]
    for quality in ffpp.COMPRESSIONS:
        assert sorted(p.name for p in ffpp.videos_dir(root, ffpp.REAL, quality).iterdir()) == [f"{i}.mp4" for i in ids]
        for method in ffpp.METHODS:
            expected = sorted(f"{v}.mp4" for v in ffpp.split_videos(pairs, method))
            assert sorted(p.name for p in ffpp.videos_dir(root, method, quality).iterdir()) == expected
            assert sorted(p.name for p in ffpp.videos_dir(root, method, ffpp.MASKS).iterdir()) == expected
    splits = {s: ffpp.read_split(root / "splits", s) for s in ffpp.SPLITS}
    assert [len(splits[s]) for s in ffpp.SPLITS] == [1, 1, 1]
    assert sorted(p for s in splits.values() for p in s) == pairs
    sizes = {s: len(v) for s, v in split_pairs([[str(2 * i), str(2 * i + 1)] for i in range(8)], 0).items()}
    assert sizes == {"train": 5, "val": 1, "test": 2}
    chosen = split_pairs([[str(2 * i), str(2 * i + 1)] for i in range(16)], 0, val_pairs=9, test_pairs=2)
    assert {s: len(v) for s, v in chosen.items()} == {"train": 5, "val": 9, "test": 2}
    assert sorted(p for v in chosen.values() for p in v) == sorted([str(2 * i), str(2 * i + 1)] for i in range(16))
    with pytest.raises(ValueError, match="each split needs at least one pair"):
        split_pairs([[str(2 * i), str(2 * i + 1)] for i in range(8)], 0, val_pairs=6, test_pairs=2)


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
        assert np.abs(fake23 - real23)[outside].mean() < 2 * noise + 0.5, f"{method} {video}: c23 differs outside the mask"


def test_neural_textures_masks_are_mouth_boxes(builtin):
    root, result = builtin
    for video in ffpp.split_videos(result["pairs"], "NeuralTextures"):
        for mask in _frames(ffpp.video_path(root, "NeuralTextures", ffpp.MASKS, video))[..., 0] > 127:
            ys, xs = np.nonzero(mask)
            box = np.zeros_like(mask)
            box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            assert (box == mask).all()
            assert mask.mean() < 0.15


def test_dlib_finds_faces_in_builtin_demo(builtin):
    root, result = builtin
    rate, total = _face_rate(root, result["pairs"])
    assert total == BUILTIN["frames"] * BUILTIN["videos"] * 5
    assert rate >= 0.95, f"dlib found a face in only {rate:.1%} of {total} frames"


def test_dlib_finds_faces_in_demo_from_source(from_source):
    root, result, lines = from_source
    rate, total = _face_rate(root, result["pairs"])
    assert rate >= 0.95, f"dlib found a face in only {rate:.1%} of {total} frames"
    log = "\n".join(lines)
    assert "skipping" in log and "street_crowd.mp4" in log  # the crowd clip has several faces
    used = {line.split(" from ")[1].split()[0] for line in lines if line.startswith("original")}
    assert len(used) == 14 and all(u.startswith(("liveportrait", "WDA")) for u in used)


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


def test_photos_as_source_and_errors_that_name_the_file(tmp_path):
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "brick.png"), data.brick())
    with pytest.raises(ValueError, match="brick.png: dlib finds no face"):
        build(tmp_path / "none", videos=6, frames=2, size=128, source=photos, log=_quiet)
    cv2.imwrite(str(photos / "astronaut.png"), data.astronaut()[:, :, ::-1])
    lines = []
    result = build(tmp_path / "out", videos=6, frames=4, size=128, source=photos, workers=2,
                             log=lines.append)
    assert any("skipping" in line and "brick.png" in line for line in lines)
    first = _frames(ffpp.video_path(tmp_path / "out", ffpp.REAL, "c23", "000"))
    assert not np.array_equal(first[0], first[-1]), "a photo source must be animated"
    assert len(result["fakes"]) == 12 * 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(videos=5), "--videos 5"), (dict(videos=4), "--videos 4"), (dict(size=127), "--size 127"),
    (dict(frames=0), "--frames 0"), (dict(source="/nonexistent"), "not a folder")])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build(tmp_path, log=_quiet, **kwargs)


def test_script_runs(tmp_path, capsys):
    import make_demo_data

    make_demo_data.main(["--out", str(tmp_path), "--videos", "6", "--frames", "2", "--size", "128"])
    out = capsys.readouterr().out
    assert "wrote 6 originals and 24 fakes" in out and " s" in out
    assert (tmp_path / "splits" / "test.json").is_file()
