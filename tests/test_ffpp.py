"""FF++ layout helpers and the split download, run against local file:// URLs (no network in tests)."""
import json

import pytest

from conftest import REPO, SHARED, load_script
from forensics import ffpp


def test_layout_and_split_videos():
    assert ffpp.video_path("R", "real", "c40", "004").as_posix() == "R/original_sequences/youtube/c40/videos/004.mp4"
    assert ffpp.video_path("R", "FaceSwap", "masks", "004_982").as_posix() == \
        "R/manipulated_sequences/FaceSwap/masks/videos/004_982.mp4"
    assert ffpp.split_videos([["004", "982"]], "real") == ["004", "982"]
    assert ffpp.split_videos([["004", "982"]], "Deepfakes") == ["004_982", "982_004"]
    assert ffpp.target_of("004_982") == "004"


def test_download_splits_from_a_local_copy(tmp_path):
    source = SHARED / "ffpp_splits"
    if not source.is_dir():
        pytest.skip("../shared/ffpp_splits is absent (it is present in CI)")
    ffpp.download_splits(tmp_path / "jsons", url=source.as_uri() + "/{}.json")
    sizes = {name: len(ffpp.read_split(tmp_path / "jsons", name)) for name in ffpp.SPLITS}
    assert sizes == {"train": 360, "val": 70, "test": 70}   # 720/140/140 videos


def test_a_bad_download_replaces_nothing_and_errors_are_clear(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for name in ffpp.SPLITS:
        (served / f"{name}.json").write_text('{"not": "a split"}')
    out = tmp_path / "jsons"
    out.mkdir()
    (out / "train.json").write_text(json.dumps([["000", "001"]]))
    with pytest.raises(ValueError, match="list of \\[id1, id2\\] string pairs"):
        ffpp.download_splits(out, url=served.as_uri() + "/{}.json")
    assert json.loads((out / "train.json").read_text()) == [["000", "001"]]
    with pytest.raises(OSError, match="download failed"):
        ffpp.download_splits(out, url=(tmp_path / "nowhere").as_uri() + "/{}.json")
    with pytest.raises(FileNotFoundError, match="python -m forensics.ffpp"):
        ffpp.read_split(tmp_path / "empty", "test")


@pytest.mark.parametrize("script", sorted(p.stem for p in REPO.glob("*.py") if "ffpp_root=" in p.read_text()))
def test_every_script_takes_one_ffpp_root_default(script, capsys):
    main = load_script(script)
    entry = main.parse_args if hasattr(main, "parse_args") else main.main
    with pytest.raises(SystemExit):
        entry(["--help"])
    assert main.FFPP_ROOT == ffpp.ROOT and f"(default: {ffpp.ROOT})" in " ".join(capsys.readouterr().out.split())
