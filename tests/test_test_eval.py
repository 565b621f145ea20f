"""test.py, eval.py and paper_table.py end to end on the tiny synthetic tree, with checkpoints made here."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import load_script
from conftest import randomize_bn as _randomize_bn
from PIL import Image
from sklearn.metrics import roc_auc_score

from forensics.evaluation import evaluate
from forensics.runs import load_model
from forensics.training import save_part
from models import INPUT_SIZE, AntiCompressionDetector, XceptionBaseline, input_size
from models.checkpoints import CheckpointError

SIZE = 64


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    model = AntiCompressionDetector().eval()
    _randomize_bn(model)
    return model


@pytest.fixture(scope="module")
def released(detector, tmp_path_factory):
    """Released layout: head_N.tar (the LQ head, saved from DataParallel: 'module.' keys) and tail_N.tar."""
    folder = tmp_path_factory.mktemp("released")
    state = {"module." + k: v for k, v in detector.lq_head.state_dict().items()}
    torch.save({"net": state, "optim": {}}, folder / "head_000001.tar")
    save_part(folder / "tail_000001.tar", detector.tail)
    return folder


def _common(tiny_tree, out):
    face, splits = tiny_tree
    return ["--face-root", str(face), "--splits", str(splits), "--out", str(out), "--device", "cpu",
            "--workers", "0", "--batch-size", "16"]


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _model_input(face_root, row, quality):
    """The training preprocessing written out independently: RGB, mean = std = 0.5, fp32."""
    path = face_root / row["method"] / quality / row["video"] / f"{row['frame']}.png"
    image = np.asarray(Image.open(path).convert("RGB").resize((SIZE, SIZE)), np.float32)
    return torch.from_numpy((image / 255 - 0.5) / 0.5).permute(2, 0, 1)


@pytest.fixture(scope="module")
def scored(tiny_tree, released, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored")
    load_script("test").main(_common(tiny_tree, out) + ["--checkpoint-dir", str(released), "--epoch", "1",
                                                    "--image-size", str(SIZE), "--format", "mat"])
    return out


@pytest.mark.slow
def test_released_checkpoints_score_as_a_direct_forward_pass(tiny_tree, detector, scored):
    rows = _read_csv(scored / "scores.csv")
    assert {"split", "video", "frame", "method", "label", "score"} <= set(rows[0])
    assert {r["split"] for r in rows} == {"val", "test"}
    assert {r["method"] for r in rows} == {"real", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    assert all(r["label"] == ("0" if r["method"] == "real" else "1") for r in rows)
    picked = [i for i, r in enumerate(rows) if r["split"] == "test"][::3]
    x = torch.stack([_model_input(tiny_tree[0], rows[i], "c40") for i in picked])
    with torch.no_grad():
        expected, attention = detector.score(x, "c40")
    got = np.array([float(rows[i]["score"]) for i in picked])
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4)
    maps = np.load(scored / "maps.npy")
    assert maps.dtype == np.float16 and maps.shape == (len(rows), *attention.shape[-2:])
    np.testing.assert_allclose(maps[picked], attention[:, 0].numpy(), atol=2e-3)
    masks = np.load(scored / "masks.npy")
    real = np.array([r["label"] == "0" for r in rows])
    assert masks.shape == maps.shape and not masks[real].any() and masks[~real].any()

    from scipy.io import loadmat

    mat = loadmat(scored / "c40_test.mat")
    test_rows = [r for r in rows if r["split"] == "test"]
    assert mat["lab"].ravel().tolist() == [int(r["label"]) for r in test_rows]
    np.testing.assert_allclose(mat["score"].ravel(), [float(r["score"]) for r in test_rows], rtol=1e-6)
    assert mat["mask"].shape == mat["msk"].shape == (len(test_rows), *maps.shape[1:])
    assert mat["pred"].size == len(test_rows)


@pytest.mark.slow
def test_eval_reports_test_metrics_with_the_validation_threshold(scored, capsys):
    metrics = load_script("eval").main(["--scores", str(scored / "scores.csv")])
    assert "Deepfakes" in capsys.readouterr().out
    saved = json.loads((scored / "metrics.json").read_text())
    assert {"auc", "eer", "acc", "video_auc", "ap", "mask_acc", "tpr_at_fpr"} <= set(saved)
    assert set(saved["per_method"]) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    for plot in ("roc.png", "hist.png"):
        assert Image.open(scored / plot).format == "PNG"

    rows = _read_csv(scored / "scores.csv")
    test = [r for r in rows if r["split"] == "test"]
    labels = np.array([int(r["label"]) for r in test])
    scores = np.array([float(r["score"]) for r in test])
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores))
    val = [r for r in rows if r["split"] == "val"]
    val_labels, val_scores = np.array([int(r["label"]) for r in val]), np.array([float(r["score"]) for r in val])
    accs = {t: ((val_scores >= t) == val_labels).mean() for t in sorted(set(val_scores))}
    threshold = max(accs, key=lambda t: (accs[t], -t))
    assert metrics["threshold_source"] == "val" and metrics["threshold"] == pytest.approx(threshold)
    assert metrics["acc"] == pytest.approx(((scores >= threshold) == labels).mean())
    df = [r for r in test if r["method"] in ("real", "Deepfakes")]
    assert metrics["per_method"]["Deepfakes"]["auc"] == pytest.approx(
        roc_auc_score([int(r["label"]) for r in df], [float(r["score"]) for r in df]))
    maps, masks = np.load(scored / "maps.npy"), np.load(scored / "masks.npy")
    is_test = np.array([r["split"] == "test" for r in rows])
    assert metrics["mask_acc"] == pytest.approx(((maps[is_test] >= 0.5) == (masks[is_test] >= 0.5)).mean())


def test_checkpoint_errors_are_clear(released, detector, tmp_path):
    test = load_script("test")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    shutil.copy(released / "head_000001.tar", folder)
    with pytest.raises(CheckpointError, match=r"tail_000001\.tar: tail checkpoint not found"):
        load_model(folder, 1)
    with pytest.raises(SystemExit, match=r"tail_000001\.tar: tail checkpoint not found"):
        test.main(["--checkpoint-dir", str(folder), "--epoch", "1", "--device", "cpu"])

    save_part(folder / "tail_000001.tar", detector.lq_head)  # a head where the tail should be
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(folder, 1)

    data = (released / "tail_000001.tar").read_bytes()
    (folder / "tail_000001.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(folder, 1)

    shutil.copy(released / "tail_000001.tar", folder)
    with pytest.raises(CheckpointError, match=r"head_N\.tar.*--compression c40"):
        load_model(folder, 1, "c23")
    with pytest.raises(CheckpointError, match="best.json not found"):
        load_model(folder, "best")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused(released, tmp_path):
    folder, marker = tmp_path / "ckpt", tmp_path / "code_ran"
    folder.mkdir()
    shutil.copy(released / "head_000001.tar", folder)
    torch.save({"net": _RunsCode(marker)}, folder / "tail_000001.tar")
    with pytest.raises(CheckpointError, match="refused"):
        load_model(folder, 1)
    assert not marker.exists()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A train.py --model xception run folder with its stored validation threshold."""
    folder = tmp_path_factory.mktemp("xception_c23")
    torch.manual_seed(1)
    model = XceptionBaseline().eval()
    _randomize_bn(model)
    save_part(folder / "xception_000001.tar", model)
    (folder / "config.json").write_text(json.dumps({"model": "xception", "image_size": SIZE, "compression": "c23"}))
    (folder / "best.json").write_text(json.dumps({"epoch": 1, "val_auc": 0.5, "val_threshold_c23": 0.5}))
    return folder, model


def test_a_loaded_run_takes_its_own_crop_side_and_a_released_folder_the_papers(released, baseline):
    assert input_size(load_model(baseline[0], 1, "c23")[0]) == SIZE
    assert input_size(load_model(released, 1)[0]) == INPUT_SIZE


@pytest.mark.slow
def test_baseline_run_scored_with_its_stored_threshold(tiny_tree, baseline, tmp_path):
    folder, model = baseline
    test = load_script("test")
    test.main(_common(tiny_tree, tmp_path) + ["--checkpoint-dir", str(folder), "--compression", "c23",
                                              "--val-max-frames", "0"])
    rows = _read_csv(tmp_path / "scores.csv")
    assert {r["split"] for r in rows} == {"test"} and not (tmp_path / "maps.npy").exists()
    x = torch.stack([_model_input(tiny_tree[0], r, "c23") for r in rows[::5]])
    with torch.no_grad():
        expected = model(x).softmax(dim=1)[:, 1]
    np.testing.assert_allclose([float(r["score"]) for r in rows[::5]], expected.numpy(), rtol=1e-4)

    metrics = evaluate(tmp_path / "scores.csv", plots=False)
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    assert metrics["model"] == "xception" and metrics["threshold_source"] == "run" and metrics["threshold"] == 0.5
    assert metrics["acc"] == pytest.approx(((scores >= 0.5) == labels).mean())
    assert metrics["mask_acc"] is None


def test_eval_without_any_threshold_reports_what_it_can(tmp_path, capsys):
    lines = ["video,frame,method,label,score", "000,0,real,0,0.1", "000,1,real,0,0.3", "001,0,real,0,0.2",
             "000_001,0,Deepfakes,1,0.8", "000_001,1,Deepfakes,1,0.25", "001_000,0,Deepfakes,1,0.9"]
    (tmp_path / "scores.csv").write_text("\n".join(lines) + "\n")
    metrics = load_script("eval").main(["--scores", str(tmp_path / "scores.csv"), "--no-plots"])
    assert metrics["acc"] is None and metrics["threshold_source"] is None
    assert metrics["best_acc"] == pytest.approx(5 / 6) and metrics["auc"] == pytest.approx(8 / 9)
    assert metrics["video_auc"] == 1.0
    assert "acc is not reported" in capsys.readouterr().out

    (tmp_path / "bad.csv").write_text("video,frame,label\n000,0,0\n")
    with pytest.raises(SystemExit, match=r"bad\.csv: no column method, score"):
        load_script("eval").main(["--scores", str(tmp_path / "bad.csv")])
    np.save(tmp_path / "maps.npy", np.zeros((2, 2, 2), np.float16))
    with pytest.raises(SystemExit, match=r"maps\.npy: 2 rows but 6"):
        load_script("eval").main(["--scores", str(tmp_path / "scores.csv")])


@pytest.mark.slow
def test_paper_table_equals_per_dataset_runs(tiny_tree, detector, baseline, tmp_path):
    run = tmp_path / "detector"
    for part in ("tail", "hq_head", "lq_head"):
        save_part(run / f"{part}_000002.tar", getattr(detector, part))
    (run / "config.json").write_text(json.dumps({"model": "detector", "image_size": SIZE}))
    (run / "best.json").write_text(json.dumps({"epoch": 2, "val_auc": 0.5}))
    out = tmp_path / "table"
    args = _common(tiny_tree, out) + ["--checkpoint", f"method={run}", "--checkpoint",
                                      f"Xception baseline@c23={baseline[0]}", "--datasets", "Deepfakes", "All"]
    rows = load_script("paper_table").main(args)
    assert [(r["model"], r["compression"], r["dataset"]) for r in rows] == [
        ("method", "c23", "Deepfakes"), ("method", "c23", "All"), ("method", "c40", "Deepfakes"),
        ("method", "c40", "All"), ("Xception baseline", "c23", "Deepfakes"), ("Xception baseline", "c23", "All")]
    table = (out / "table.md").read_text()
    assert "| method | c23+c40 |" in table and "| Xception baseline | c23 |" in table
    assert "Xception baseline: no checkpoint given for c40" in table
    with open(out / "table.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6

    # the Deepfakes column is what test.py --dataset Deepfakes and eval.py give
    single = tmp_path / "single"
    load_script("test").main(_common(tiny_tree, single) + ["--checkpoint-dir", str(run), "--dataset", "Deepfakes"])
    alone = evaluate(single / "scores.csv", plots=False)
    cell = rows[2]
    assert alone["frames"] == cell["frames"]
    for key in ("acc", "auc", "video_auc"):
        assert cell[key] == pytest.approx(alone[key])
    assert all(not r["from_all_model"] for r in rows)  # the run's config names no dataset


@pytest.mark.slow
def test_paper_table_takes_one_checkpoint_per_method_and_marks_cells_of_an_all_model(tiny_tree, detector,
                                                                                     tmp_path):
    torch.manual_seed(3)
    other = AntiCompressionDetector().eval()
    _randomize_bn(other)
    runs = {}
    for name, model, dataset in (("deepfakes", other, "Deepfakes"), ("all", detector, "All")):
        runs[name] = tmp_path / name
        for part in ("tail", "hq_head", "lq_head"):
            save_part(runs[name] / f"{part}_000001.tar", getattr(model, part))
        (runs[name] / "config.json").write_text(json.dumps({"model": "detector", "image_size": SIZE,
                                                            "dataset": dataset}))
        (runs[name] / "best.json").write_text(json.dumps({"epoch": 1, "val_auc": 0.5}))
    out = tmp_path / "table"
    args = _common(tiny_tree, out) + ["--checkpoint", f"method@Deepfakes={runs['deepfakes']}",
                                      "--checkpoint", f"method={runs['all']}", "--compressions", "c40",
                                      "--datasets", "Deepfakes", "FaceSwap", "All"]
    rows = load_script("paper_table").main(args)
    cells = {r["dataset"]: r for r in rows}
    assert cells["Deepfakes"]["checkpoint_dir"] == str(runs["deepfakes"])
    assert cells["FaceSwap"]["checkpoint_dir"] == cells["All"]["checkpoint_dir"] == str(runs["all"])
    assert [cells[d]["from_all_model"] for d in ("Deepfakes", "FaceSwap", "All")] == [False, True, False]
    table = (out / "table.md").read_text()
    faceswap_acc = f"{100 * cells['FaceSwap']['acc']:.2f}*"
    assert faceswap_acc in table and "from a model trained on All" in table
    # the Deepfakes model was scored on Deepfakes alone, as test.py --dataset Deepfakes does
    assert (out / "method" / "c40" / "Deepfakes" / "scores.csv").exists()
    single = tmp_path / "single"
    load_script("test").main(_common(tiny_tree, single) + ["--checkpoint-dir", str(runs["deepfakes"]),
                                                           "--dataset", "Deepfakes"])
    alone = evaluate(single / "scores.csv", plots=False)
    for key in ("acc", "auc", "video_auc", "frames"):
        assert cells["Deepfakes"][key] == pytest.approx(alone[key])


def test_table_labels_become_plain_folder_names_that_never_collide():
    from forensics.paper import label_folders

    assert label_folders(["method", "Xception baseline", "../../etc", "a/b"]) == {
        "method": "method", "Xception baseline": "Xception_baseline", "../../etc": "etc", "a/b": "a_b"}
    assert label_folders([".."]) == {"..": "model"}
    with pytest.raises(ValueError, match="'Xception baseline' and 'Xception_baseline' would share"):
        label_folders(["Xception baseline", "Xception_baseline"])


class _Brightness(torch.nn.Module):
    """A stand-in model: its score is the mean pixel, so that scoring needs no network."""

    def score(self, images, quality):
        return images.float().mean((1, 2, 3)), None


def test_an_empty_validation_split_falls_back_to_the_runs_threshold_with_a_note(tiny_tree, tmp_path, capsys):
    from forensics.scoring import ScoreOptions, score_splits

    face, splits = tiny_tree
    empty = tmp_path / "splits"
    shutil.copytree(splits, empty)
    (empty / "val.json").write_text("[]")
    info = {"model": "xception", "trained_on": "c23", "run_threshold": 0.25}
    options = ScoreOptions(image_size=SIZE, max_frames=1, val_max_frames=2)
    path = score_splits(_Brightness(), info, face_root=face, splits=empty, out=tmp_path / "out", dataset="Deepfakes",
                        compression="c23", device=torch.device("cpu"), options=options)
    err = capsys.readouterr().err
    assert "val.json: the val split lists no videos" in err and "--val-max-frames 0" in err and "0.25" in err
    assert {r["split"] for r in _read_csv(path)} == {"test"}
    metrics = evaluate(path, plots=False)
    assert metrics["threshold_source"] == "run" and metrics["threshold"] == 0.25

    score_splits(_Brightness(), dict(info, run_threshold=None), face_root=face, splits=empty, out=tmp_path / "bare",
                 dataset="Deepfakes", compression="c23", device=torch.device("cpu"), options=options)
    assert "stores no threshold" in capsys.readouterr().err


def test_table_md_says_which_threshold_each_acc_used():
    from forensics.paper import table_markdown

    cell = {"model": "m", "compression": "c23", "trained_on": "c23", "auc": 0.9, "video_auc": 0.95}
    rows = [dict(cell, dataset="Deepfakes", acc=0.8, threshold_source="val"),
            dict(cell, dataset="Face2Face", acc=0.7, threshold_source="run"),
            dict(cell, dataset="All", acc=None, threshold_source=None)]
    text = table_markdown(rows, [], ["Deepfakes", "Face2Face", "All"], ["c23"])
    assert "| m | c23 | 80.00 | 90.00 | 95.00 | 70.00\u2020 | 90.00 | 95.00 | n/a\u2021 | 90.00 | 95.00 |" in text
    assert "\u2020 ACC at the threshold train.py stored" in text and "\u2021 no ACC" in text
    only_val = table_markdown(rows[:1], [], ["Deepfakes"], ["c23"])
    assert "\u2020" not in only_val and "\u2021" not in only_val
