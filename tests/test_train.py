"""train.py on a tiny synthetic face tree: files, loss, resume after a kill, torchrun, clear errors."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import torch

from conftest import REPO
from models.checkpoints import load_part
from models import AntiCompressionDetector

FLAGS = ["--pretrained", "none", "--image-size", "64", "--batch-size", "8", "--workers", "0", "--lr", "3e-4"]


def train(tree, out, *extra, **kwargs):
    face_root, splits = tree
    cmd = [sys.executable, str(REPO / "train.py"), "--face-root", str(face_root), "--splits", str(splits),
           "--out", str(out), *FLAGS, *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, **kwargs)


def test_short_run_lowers_loss_and_writes_the_released_files(tiny_tree, tmp_path):
    run = train(tiny_tree, tmp_path / "run", "--epochs", "3")
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "run"
    for epoch in (1, 2, 3):
        for part in ("tail", "hq_head", "lq_head"):
            saved = torch.load(out / f"{part}_{epoch:06d}.tar", weights_only=True)
            assert set(saved) == {"net", "optim"} and saved["optim"]["state"]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(0 <= h["val_auc"] <= 1 for h in history)
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "All" and config["loss_weights"]["pairing"] == 0.2 and config["epochs"] == 3
    best = json.loads((out / "best.json").read_text())
    assert best["val_auc"] == max(h["val_auc"] for h in history)
    assert any((out / "tensorboard").iterdir())
    model = AntiCompressionDetector()
    for part in ("tail", "hq_head", "lq_head"):
        load_part(getattr(model, part), out / f"{part}_000003.tar")


def test_killed_run_resumes_from_its_last_complete_epoch(tiny_tree, tmp_path):
    out = tmp_path / "run"
    face_root, splits = tiny_tree
    cmd = [sys.executable, str(REPO / "train.py"), "--face-root", str(face_root), "--splits", str(splits),
           "--out", str(out), *FLAGS, "--epochs", "3"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "history.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    history = json.loads((out / "history.json").read_text())
    assert history and history[-1]["epoch"] < 3, "the run finished before it could be killed"
    done = history[-1]["epoch"]
    before = (out / f"tail_{done:06d}.tar").read_bytes()

    run = train(tiny_tree, out, "--epochs", "3", "--resume")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"resuming {out} after epoch {done}" in run.stdout
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert (out / f"tail_{done:06d}.tar").read_bytes() == before


def test_resume_without_a_complete_epoch_is_refused(tiny_tree, tmp_path):
    run = train(tiny_tree, tmp_path / "empty", "--epochs", "1", "--resume")
    assert run.returncode != 0 and "holds no complete epoch" in run.stderr


def test_two_process_torchrun_with_gloo(tiny_tree, tmp_path):
    face_root, splits = tiny_tree
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "train.py"), "--face-root", str(face_root), "--splits", str(splits), "--out", str(out),
           *FLAGS, "--epochs", "1", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert config["world_size"] == 2 and history[0]["epoch"] == 1
    # each of the two processes took half of the training frames
    assert history[0]["steps"] == config["train_frames"] // (8 * 2)
    assert (out / "lq_head_000001.tar").exists()


def test_empty_split_and_missing_mask_are_clear_errors(tiny_tree, tmp_path):
    run = train(tiny_tree, tmp_path / "x", "--dataset", "Deepfakes", "--epochs", "1",
                "--face-root", str(tmp_path / "nowhere"))
    assert run.returncode != 0 and "no fake frames" in run.stderr and "create_faces_from_dlib_locs.py" in run.stderr

    face_root, splits = tiny_tree
    broken = tmp_path / "face"
    shutil.copytree(face_root, broken)
    (broken / "FaceSwap" / "masks" / "000_001" / "2.png").unlink()
    run = train((broken, splits), tmp_path / "y", "--dataset", "FaceSwap", "--epochs", "1")
    assert run.returncode != 0
    assert "masks/000_001/2.png: mask crop missing" in run.stderr


def test_xception_baseline_trains(tiny_tree, tmp_path):
    run = train(tiny_tree, tmp_path / "base", "--model", "xception", "--compression", "c40", "--epochs", "1",
                "--dataset", "Face2Face")
    assert run.returncode == 0, run.stderr[-3000:]
    history = json.loads((tmp_path / "base" / "history.json").read_text())
    assert "val_auc_c40" in history[0] and (tmp_path / "base" / "xception_000001.tar").exists()


def test_classifier_and_adversarial_critic_train_and_save(tiny_tree, tmp_path):
    run = train(tiny_tree, tmp_path / "adv", "--epochs", "1", "--classifier-weight", "1", "--adversarial-weight",
                "0.1", "--max-steps", "3")
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "adv"
    for part in ("tail", "hq_head", "lq_head", "classifier", "critic"):
        assert (out / f"{part}_000001.tar").exists()
    assert json.loads((out / "history.json").read_text())[0]["steps"] == 3
    # the released parts stay loadable alone, without the extras
    load_part(AntiCompressionDetector().tail, out / "tail_000001.tar")
