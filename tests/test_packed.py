"""Packed crop folders (create_faces_from_dlib_locs.py --format packed): the same pixels as the PNGs through
every reader, damage reported like a damaged PNG, and reruns that reuse or redo a folder as they do for PNGs."""
import io
import json
import re

import cv2
import numpy as np
import pytest
import torch
from conftest import load_script

from forensics import crops, data, ffpp, locations, manifest, packed
from forensics.losses import mask_target
from forensics.scoring import ScoreOptions, score_frames
from forensics.video import iter_frames, write_video

SIZE = 32
FRAMES = 5


def _frames(seed, gray=False):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (48, 64) if gray else (48, 64, 3), dtype=np.uint8) for _ in range(FRAMES)]


@pytest.fixture(scope="module")
def ffpp_tree(tmp_path_factory):
    """A tiny FF++ tree (two originals, their two Deepfakes with masks; lossless 64x48 noise videos), its
    face-location files and splits, cut once as PNGs and once packed."""
    root = tmp_path_factory.mktemp("ffpp")
    ffpp_root, locs_dir, splits = root / "ffpp", root / "jsons", root / "splits"
    videos = {ffpp.REAL: ["000", "001"], "Deepfakes": ["000_001", "001_000"]}
    for seed, (method, names) in enumerate(videos.items()):
        for k, video in enumerate(names):
            for q in ffpp.COMPRESSIONS + ((ffpp.MASKS,) if method != ffpp.REAL else ()):
                path = ffpp.video_path(ffpp_root, method, q, video)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_video(_frames(10 * seed + k, gray=q == ffpp.MASKS), path, crf=0, gray=q == ffpp.MASKS)
        boxes = {v: {str(f): [2 + f, 3, 40] for f in range(FRAMES)} for v in names}
        locations.write_locs(locs_dir, method, boxes)
    splits.mkdir()
    for split in ffpp.SPLITS:
        (splits / f"{split}.json").write_text(json.dumps([["000", "001"]]))
    trees = {}
    for fmt in ffpp.CROP_FORMATS:
        trees[fmt] = root / fmt
        tally = crops.create_faces(ffpp_root, locs_dir, trees[fmt], methods=tuple(videos), image_size=SIZE, fmt=fmt)
        assert (tally.videos_done, tally.frames_done, tally.skips) == (10, 50, [])
    return ffpp_root, locs_dir, splits, trees


def _batch(face_root, frames, size, decoder, qualities=ffpp.COMPRESSIONS):
    dataset = data.FaceFrames(face_root, frames, size, qualities, masks=True, decoder=decoder)
    return data.collate([dataset[i] for i in range(len(frames))])


class Recorder(torch.nn.Module):
    """Keeps every input score_frames gives it; its score and map depend on the pixels."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def score(self, x, quality):
        self.inputs.append(x.clone())
        return x.mean(dim=(1, 2, 3)), x[:, :1, :8, :8]


def test_packed_crops_are_the_png_crops_bit_for_bit_through_the_loader_and_scoring(ffpp_tree):
    _, _, splits, trees = ffpp_tree
    folder = {fmt: ffpp.face_dir(trees[fmt], "Deepfakes", "c40", "001_000") for fmt in trees}
    assert sorted(p.name for p in folder["packed"].iterdir()) == sorted(
        [manifest.DONE_MARKER, ffpp.PACKED_CROPS, ffpp.PACKED_FRAMES])
    assert sorted(p.name for p in folder["png"].iterdir()) == sorted(
        [manifest.DONE_MARKER] + [f"{f}.png" for f in range(FRAMES)])
    pack = np.load(folder["packed"] / ffpp.PACKED_CROPS)
    assert pack.dtype == np.uint8 and pack.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.load(folder["packed"] / ffpp.PACKED_FRAMES).tolist() == list(range(FRAMES))
    for f in range(FRAMES):  # the pack holds the PNG's pixels, in RGB
        assert np.array_equal(pack[f], cv2.cvtColor(cv2.imread(str(folder["png"] / f"{f}.png")), cv2.COLOR_BGR2RGB))
    masks = np.load(ffpp.face_dir(trees["packed"], "Deepfakes", ffpp.MASKS, "000_001") / ffpp.PACKED_CROPS)
    png_mask = ffpp.face_dir(trees["png"], "Deepfakes", ffpp.MASKS, "000_001") / "3.png"
    assert masks.shape == (FRAMES, SIZE, SIZE) and np.array_equal(masks[3], cv2.imread(str(png_mask), 0))

    frames = {fmt: data.index_frames(trees[fmt], splits, "train", "Deepfakes", balance=True) for fmt in trees}
    assert frames["png"] == frames["packed"] and len(frames["png"]) == 4 * FRAMES
    for decoder in data.DECODERS:
        for size in (SIZE, 24):  # the crops' own size, and one the loader resizes to
            png, pack = (_batch(trees[fmt], frames[fmt], size, decoder) for fmt in ("png", "packed"))
            assert png.images.keys() == pack.images.keys() == set(ffpp.COMPRESSIONS)
            for q in ffpp.COMPRESSIONS:
                assert png.images[q].shape[-1] == size and torch.equal(png.images[q], pack.images[q])
            assert png.mask.any() and torch.equal(png.mask, pack.mask) and torch.equal(png.label, pack.label)

    recorded = {}
    for fmt in trees:
        model = Recorder()
        scores, _, masks = score_frames(model, trees[fmt], frames[fmt], "c40", torch.device("cpu"),
                                        ScoreOptions(image_size=SIZE, batch_size=8), keep_maps=True, keep_masks=True)
        recorded[fmt] = torch.cat(model.inputs), scores, masks
    assert recorded["png"][0].shape == (4 * FRAMES, 3, SIZE, SIZE)
    assert torch.equal(recorded["png"][0], recorded["packed"][0])
    assert np.array_equal(recorded["png"][1], recorded["packed"][1])
    assert np.array_equal(recorded["png"][2], recorded["packed"][2]) and recorded["png"][2].any()
    expected = mask_target(_batch(trees["png"], frames["png"], SIZE, "fast").mask, (8, 8))[:, 0].numpy()
    assert np.array_equal(recorded["packed"][2], expected)


@pytest.fixture()
def packed_tree(tiny_tree, tmp_path):
    """A packed copy of the synthetic tree (no markers) that a test may damage."""
    face, splits = tiny_tree
    return packed.pack_tree(face, tmp_path / "packed"), splits


def test_index_frames_on_a_packed_tree_is_that_of_its_pngs(tiny_tree, packed_tree):
    face, splits = tiny_tree
    packed_face, _ = packed_tree
    assert not list(packed_face.rglob("*.png"))
    for split in ffpp.SPLITS:
        for kwargs in ({"dataset": "All", "balance": True}, {"dataset": "FaceSwap", "qualities": ("c40",)}):
            expected = data.index_frames(face, splits, split, **kwargs)
            assert data.index_frames(packed_face, splits, split, **kwargs) == expected and expected
    frames = data.index_frames(packed_face, splits, "val", "All", need_masks=False)
    png, pack = (_batch(root, frames, 64, "fast").images["c23"] for root in (face, packed_face))
    assert torch.equal(png, pack)


def test_a_damaged_pack_is_left_out_with_one_line_naming_it(packed_tree, capsys, monkeypatch):
    face, splits = packed_tree
    whole = data.index_frames(face, splits, "train", "Deepfakes")
    pack = ffpp.face_dir(face, "Deepfakes", "c40", "000_001") / ffpp.PACKED_CROPS
    size = pack.stat().st_size
    with open(pack, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(data.DataError, match=re.escape(f"3 of 24 frames of the train split have unusable crops "
                                                       f"(more than 1%; first: {pack})")):
        data.index_frames(face, splits, "train", "Deepfakes")
    assert (f"skip: {pack}: {size - 100} bytes, its header says {size} (3 crops of 64 px): truncated: 3 frames left "
            "out (rerun create_faces_from_dlib_locs.py, which redoes its folder") in capsys.readouterr().err
    monkeypatch.setattr(data, "MAX_BAD_SHARE", 0.2)
    frames = data.index_frames(face, splits, "train", "Deepfakes")
    assert set(whole) - set(frames) == {data.Frame("Deepfakes", "000_001", n) for n in range(3)}
    listing = ffpp.face_dir(face, ffpp.REAL, "c23", "001") / ffpp.PACKED_FRAMES
    listing.write_bytes(b"\x93NUMPY garbage")
    frames = data.index_frames(face, splits, "train", "Deepfakes")
    err = capsys.readouterr().err
    assert re.search(f"skip: {re.escape(str(listing))}: cannot read the frame numbers of this pack \\(.+\\): frame "
                     "left out", err)
    assert {f.video for f in frames} == {f.video for f in whole} - {"001", "000_001"}

    # Damaged after the index was made: in a loader worker it costs the frames it holds, each with a line.
    dataset = data.FaceFrames(face, frames, 64)
    victim = ffpp.face_dir(face, "Deepfakes", ffpp.MASKS, "001_000") / ffpp.PACKED_CROPS
    victim.write_bytes(victim.read_bytes()[:1000])
    counter = data.SkippedFrames(len(frames) * 100)
    assert sum(len(b.label) for b in counter.batches(data.make_loader(dataset, 4, 0))) == len(frames) - 3
    assert counter.count == 3 and dataset[[f.video for f in frames].index("001_000")] is None
    assert f"skip: {victim}: cannot map this pack (" in capsys.readouterr().err
    missing = data.FaceFrames(face, [data.Frame("Deepfakes", "001_000", 7)], 64, ("c23",), masks=False)
    assert missing[0] is None
    assert (f"{ffpp.face_dir(face, 'Deepfakes', 'c23', '001_000') / ffpp.PACKED_FRAMES}: frame 7 is not in this "
            "pack; rerun create_faces_from_dlib_locs.py --format packed") in capsys.readouterr().err


def test_crops_cut_from_frames_already_decoded_equal_those_read_from_the_file(tmp_path):
    """Cross-dataset preparation hands crop_video the frames its face detection decoded, at a stride."""
    video = tmp_path / "c23.mp4"
    write_video(_frames(1), video, crf=0)
    boxes = {i: [i, 0, 40] for i in (0, 2, 4)}
    read = crops.crop_video(video, boxes, tmp_path / "read", size=16, fmt="packed")
    given = crops.crop_video(video, boxes, tmp_path / "given", size=16, fmt="packed",
                             frames=list(iter_frames(video, 5, stride=2)))
    assert (read.frames_done, given.frames_done, given.skips) == (3, 3, [])
    for name in (ffpp.PACKED_CROPS, ffpp.PACKED_FRAMES, manifest.DONE_MARKER):
        assert (tmp_path / "given" / name).read_bytes() == (tmp_path / "read" / name).read_bytes()


def test_rerun_reuses_a_finished_pack_and_redoes_a_damaged_or_changed_one(tmp_path):
    video = tmp_path / "c23.mp4"
    write_video(_frames(1)[:4], video, crf=0)
    out = tmp_path / "crops"
    boxes = {i: [i, 0, 40] for i in range(4)}
    first = crops.crop_video(video, boxes, out, size=16, fmt="packed")
    assert (first.videos_done, first.frames_done) == (1, 4)
    good = (out / ffpp.PACKED_CROPS).read_bytes()
    marker = json.loads((out / manifest.DONE_MARKER).read_text())
    assert marker["format"] == "packed" and marker["frames"] == [0, 1, 2, 3]
    assert marker["pack"][ffpp.PACKED_CROPS]["bytes"] == len(good) == 128 + 4 * 16 * 16 * 3
    assert crops.crop_video(video, boxes, out, size=16, fmt="packed").videos_already == 1
    (out / ffpp.PACKED_CROPS).write_bytes(good[:-10])  # truncated
    again = crops.crop_video(video, boxes, out, size=16, fmt="packed")
    assert again.videos_already == 0 and (out / ffpp.PACKED_CROPS).read_bytes() == good
    (out / ffpp.PACKED_CROPS).write_bytes(good[:-10] + b"\0" * 10)  # damaged in place, same size
    assert crops.crop_video(video, boxes, out, size=16, fmt="packed").videos_already == 1
    redo = crops.crop_group([crops.Source("video", video, out)], boxes, 16, "v", verify=True, fmt="packed")
    assert redo.videos_already == 0 and (out / ffpp.PACKED_CROPS).read_bytes() == good
    # Another format redoes the folder and leaves only that format's files, with the same pixels.
    assert crops.crop_video(video, boxes, out, size=16).videos_already == 0
    assert sorted(p.name for p in out.iterdir()) == [manifest.DONE_MARKER, "0.png", "1.png", "2.png", "3.png"]
    assert np.array_equal(cv2.imread(str(out / "2.png"))[..., ::-1], np.load(io.BytesIO(good))[2])
    assert crops.crop_video(video, boxes, out, size=16, fmt="packed").videos_already == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([manifest.DONE_MARKER, ffpp.PACKED_CROPS,
                                                            ffpp.PACKED_FRAMES])
    assert (out / ffpp.PACKED_CROPS).read_bytes() == good
    assert manifest.finished_crops(out, manifest.crop_stamp(boxes, 16, video)) is None  # a PNG stamp: not packed
    assert manifest.finished_crops(out, manifest.crop_stamp(boxes, 16, video, "packed")) == json.loads(
        (out / manifest.DONE_MARKER).read_text())


def test_the_format_flag_of_the_crop_script(ffpp_tree, tmp_path, capsys):
    ffpp_root, locs_dir, _, trees = ffpp_tree
    script = load_script("create_faces_from_dlib_locs")
    common = ["--ffpp-root", str(ffpp_root), "--locs", str(locs_dir), "--workers", "0", "--methods", "real"]
    assert script.main([*common, "--out", str(tmp_path / "a"), "--image-size", str(SIZE), "--format", "packed"]) == 0
    folder = ffpp.face_dir(tmp_path / "a", ffpp.REAL, "c40", "001")
    reference = ffpp.face_dir(trees["packed"], ffpp.REAL, "c40", "001") / ffpp.PACKED_CROPS
    assert (folder / ffpp.PACKED_CROPS).read_bytes() == reference.read_bytes()
    assert script.main([*common, "--out", str(tmp_path / "b"), "--image-size", str(SIZE)]) == 0
    assert (ffpp.face_dir(tmp_path / "b", ffpp.REAL, "c40", "001") / "4.png").is_file()
    assert not packed.is_packed(ffpp.face_dir(tmp_path / "b", ffpp.REAL, "c40", "001"))
    with pytest.raises(SystemExit) as stop:
        script.main([*common, "--out", str(tmp_path / "c"), "--image-size", "0", "--format", "packed"])
    assert "error: --format packed needs one crop size for all crops: give --image-size (not 0)" in str(stop.value)
    with pytest.raises(SystemExit):
        script.main([*common, "--out", str(tmp_path / "c"), "--format", "jpg"])
    assert "invalid choice: 'jpg'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_uint8_batch_is_stacked_as_it_lies_and_gets_the_models_layout_on_the_device(tiny_tree, packed_tree):
    face, splits = tiny_tree
    frames = data.index_frames(face, splits, "val", "All")
    for root in (face, packed_tree[0]):
        dataset = data.FaceFrames(root, frames, 64)
        samples = [dataset[i] for i in range(len(frames))]
        batch = data.collate(samples)
        images = batch.images["c40"]
        assert images.shape == (len(frames), 3, 64, 64) and images.is_contiguous(memory_format=torch.channels_last)
        assert not images.is_contiguous()
        expected = torch.stack([s[0]["c40"].contiguous() for s in samples])
        assert torch.equal(images, expected)
        plain = data.model_input(images, torch.device("cpu"))
        assert plain.is_contiguous() and torch.equal(plain, expected.float().div(127.5).sub(1.0))
        last = data.model_input(images, torch.device("cpu"), channels_last=True)
        assert last.is_contiguous(memory_format=torch.channels_last) and torch.equal(last, plain)
        assert batch.mask.is_contiguous() and torch.equal(batch.mask, torch.stack([s[1] for s in samples]))
    pil = _batch(face, frames, 64, "pil")
    assert pil.images["c23"].dtype == torch.float32 and pil.images["c23"].is_contiguous()
