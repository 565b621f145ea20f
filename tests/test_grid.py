"""paper_grid.py: the runs of the paper's table, skipped when complete, resumed when interrupted."""
import csv
import json
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

from forensics import grid


def _fake_epochs(run, parts, epochs):
    run.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, epochs + 1):
        for part in parts:
            (run / f"{part}_{epoch:06d}.tar").write_bytes(b"")
    (run / "history.json").write_text(json.dumps([{"epoch": e} for e in range(1, epochs + 1)]))


def test_plan_names_fifteen_runs_and_commands_resume_only_what_stopped(tmp_path):
    runs = grid.plan(tmp_path, epochs=3, baseline_epochs=2)
    assert len(runs) == 15
    assert {r.out.name for r in runs} >= {"method_All", "method_Deepfakes", "xception_c23_FaceSwap",
                                          "xception_c40_NeuralTextures"}
    method, baseline = runs[0], next(r for r in runs if r.compression == "c40")
    _fake_epochs(method.out, ("tail", "hq_head", "lq_head"), 1)  # killed after epoch 1 of 3
    _fake_epochs(baseline.out, ("xception",), 2)                  # complete
    assert method in grid.pending(runs) and baseline not in grid.pending(runs)
    cmd = grid.command(method, ["--face-root", "F"], python="python")
    assert cmd[:4] == ["python", "train.py", "--face-root", "F"] and cmd[-1] == "--resume"
    assert cmd[cmd.index("--dataset") + 1] == method.dataset and cmd[cmd.index("--model") + 1] == "detector"
    fresh = grid.command(runs[1], [], nproc=4)
    assert fresh[:3] == ["torchrun", "--standalone", "--nproc_per_node=4"] and "--resume" not in fresh
    table = grid.checkpoints(runs)
    assert table["method"][method.dataset, None] == str(method.out)
    assert table["Xception baseline"][baseline.dataset, "c40"] == str(baseline.out)


def _grid(tree, out, *extra):
    face_root, splits = tree
    cmd = [sys.executable, "paper_grid.py", "--face-root", str(face_root), "--splits", str(splits), "--out",
           str(out), "--datasets", "Deepfakes", "--device", "cpu", "--workers", "0", "--pretrained", "none",
           "--image-size", "64", "--batch-size", "8", "--max-steps", "1", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_grid_trains_resumes_skips_and_builds_the_table(tiny_tree, tmp_path):
    out = tmp_path / "grid"
    printed = _grid(tiny_tree, out, "--epochs", "1", "--print-commands")
    lines = printed.stdout.strip().splitlines()
    assert printed.returncode == 0 and len(lines) == 3 and not out.exists()
    assert all(shlex.split(line)[:2] == ["python", "train.py"] for line in lines)

    first = _grid(tiny_tree, out, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("train.py --face-root") == 3
    # two epochs now: every run stopped after its first, as if killed there, and resumes
    again = _grid(tiny_tree, out, "--epochs", "2", "--print-commands")
    assert len(again.stdout.strip().splitlines()) == 3 and all(
        line.endswith("--resume") for line in again.stdout.strip().splitlines())
    second = _grid(tiny_tree, out, "--epochs", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("resuming") == 3
    for run in ("method_Deepfakes", "xception_c23_Deepfakes", "xception_c40_Deepfakes"):
        assert [h["epoch"] for h in json.loads((out / run / "history.json").read_text())] == [1, 2]
    # complete: nothing to run, the same command only rebuilds the table
    third = _grid(tiny_tree, out, "--epochs", "2")
    assert third.returncode == 0 and "train.py --face-root" not in third.stdout
    with open(out / "table" / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["model"], r["compression"], r["checkpoint_dir"]) for r in rows} == {
        ("method", "c23", str(out / "method_Deepfakes")), ("method", "c40", str(out / "method_Deepfakes")),
        ("Xception baseline", "c23", str(out / "xception_c23_Deepfakes")),
        ("Xception baseline", "c40", str(out / "xception_c40_Deepfakes"))}
