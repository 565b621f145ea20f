"""demo.py, the README's first command, end to end at its smallest size."""
import csv
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_at_its_smallest_size(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    cmd = [sys.executable, "demo.py", "--data", str(data), "--out", str(out), "--videos", "6", "--frames", "8",
           "--image-size", "64", "--epochs", "1", "--baseline-epochs", "1", "--max-frames", "4",
           "--batch-size", "8", "--workers", "2", "--device", "cpu"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for step in ("make_demo_data.py", "detect_faces.py", "create_faces_from_dlib_locs.py", "paper_grid.py"):
        assert f"$ python {step} " in run.stdout
    assert run.stdout.count("train.py --face-root") == 3  # the method, the baseline at c23 and at c40
    with open(out / "grid" / "table" / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cells = {(r["model"], r["compression"], r["dataset"]) for r in rows}
    datasets = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "All")
    assert cells == {(m, c, d) for m in ("method", "Xception baseline") for c in ("c23", "c40") for d in datasets}
    assert all(r["auc"] for r in rows)  # every cell was scored: each split has real and fake frames
    assert {r["trained_on"] for r in rows if r["model"] == "Xception baseline"} == {"c23", "c40"}
    with open(out / "robustness" / "robustness.csv", newline="") as f:
        sweep = [(r["checkpoint"], r["name"]) for r in csv.DictReader(f)]
    checkpoints = ("method (LQ)", "method (HQ)", "Xception baseline (c23)", "Xception baseline (c40)")
    assert sweep == [(c, n) for c in checkpoints for n in ("source", "h264_crf23", "h264_crf32", "h264_crf40",
                                                           "h264_crf45")]
