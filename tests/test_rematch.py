"""docs/ablation/rematch.py: the selection rule of the rematch's plan, and its report's figures."""
import importlib.util
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import REPO


def rematch():
    spec = importlib.util.spec_from_file_location("rematch", REPO / "docs" / "ablation" / "rematch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(root, name, val_auc=None, scores=None, scored_epoch=3, epoch=3, val_auc_c23=0.5):  # None: not validated
    """A run folder as experiments.py leaves it: best.json, and test.py's scores and eval.py's metrics (of
    scored_epoch) per compression."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    best = {"epoch": epoch, "val_auc_c40": val_auc or 0.5}
    (folder / "best.json").write_text(json.dumps(best if val_auc_c23 is None else {**best, "val_auc_c23": val_auc_c23}))
    for compression, rows in (scores or {}).items():
        (folder / f"test_{compression}").mkdir(exist_ok=True)
        lines = ["split,method,video,frame,label,score,compression"]
        lines += [f"{split},{m},{v},{f},{label},{s!r},{compression}" for split, m, v, f, label, s in rows]
        (folder / f"test_{compression}" / "scores.csv").write_text("\n".join(lines) + "\n")
        (folder / f"test_{compression}" / "metrics.json").write_text(json.dumps({"epoch": scored_epoch}))


KEYS = [("orig", f"{v:03d}", f, 0) for v in range(4) for f in range(2)]
KEYS += [("Deepfakes", f"{v:03d}_x", f, 1) for v in range(6) for f in range(2)]


def finished_run(root, name, rng, shift=0.0, **options):
    """A finished test run with float32 scores (as test.py writes them); returns them."""
    scores = [float(np.float32(rng.normal() + shift * label)) for *_, label in KEYS]
    rows = [("test", m, v, f, label, s) for (m, v, f, label), s in zip(KEYS, scores)]
    rows.append(("val", "orig", "999", 0, 0, 0.5))  # validation rows are not read
    run(root, name, scores={"c40": rows, "c23": rows}, **options)
    return scores


def test_select_takes_the_best_mean_validation_auc_and_breaks_ties_as_planned(tmp_path):
    for name, values in {"method_r_1e-4": (0.60, 0.62), "method_m_1e-4": (0.70, 0.50), "method_r_3e-4": (0.61, 0.63),
                         "c40_1e-4": (0.7, 0.7), "c40_3e-4": (0.7, 0.7), "mixed_1e-3": (0.5, 0.9)}.items():
        for seed, value in zip((50, 51), values):
            run(tmp_path, f"{name}_seed{seed}", value)
    (tmp_path / "method_r_1e-3_seed50").mkdir()  # unfinished: no best.json
    text = rematch().select(tmp_path)
    assert "- method: **method_r_3e-4**" in text    # 0.62 beats 0.61 and 0.60
    assert "- c40: **c40_1e-4**" in text            # a tie goes to the lower learning rate
    assert "- mixed: **mixed_1e-3**" in text
    assert "1e-3, released" not in text


def test_report_differences_are_those_of_the_runs_auc(tmp_path):
    rng = np.random.default_rng(0)
    aucs = {}
    for arm, shift in (("method", 0.3), ("c40", 0.8)):
        for seed in (100, 101, 102):
            scores = finished_run(tmp_path / "runs", f"{arm}_seed{seed}", rng, shift)
            aucs[arm, seed] = roc_auc_score([k[3] for k in KEYS], scores)
    module = rematch()
    packed = tmp_path / "scores.csv.gz"
    module.pack(tmp_path / "runs", packed, ["method", "c40"])
    module.REPLICATES = 500
    result = module.compare(module.read_packed(packed), "method", "c40", "c40", 0.95)
    want = np.mean([aucs["method", s] - aucs["c40", s] for s in (100, 101, 102)])
    assert result["seeds"] == [100, 101, 102]
    assert result["frame"]["two_way"]["estimate"] == pytest.approx(want, abs=1e-12)
    assert result["frame"]["t"]["mean"] == pytest.approx(want, abs=1e-12)
    assert result["frame"]["two_way"]["ci"][0] < want < result["frame"]["two_way"]["ci"][1]
    text = module.report(packed, ["method", "c40"])
    assert "**Headline verdict**" in text and "## method minus c40, tested at c23 (3 seeds" in text
    assert "(3 seeds: 100 to 102)" in text
    assert "(2 seeds: 100 to 102)" in module.report(packed, ["method", "c40"], seeds=[100, 102])


def test_pack_adds_a_seed_once_every_arm_has_finished_and_never_replaces_a_packed_run(tmp_path):
    rng = np.random.default_rng(1)
    runs, packed, module = tmp_path / "runs", tmp_path / "scores.csv.gz", rematch()
    first = finished_run(runs, "method_seed100", rng)
    finished_run(runs, "c40_seed100", rng)
    finished_run(runs, "method_seed101", rng)
    finished_run(runs, "c40_seed101", rng, scored_epoch=2)  # scored at an epoch that is no longer its best
    assert module.pack(runs, packed, ["method", "c40"]) == ["c40_seed100", "method_seed100"]
    assert module.pack(runs, packed, ["method", "c40"]) == []
    finished_run(runs, "method_seed100", rng)               # a rerun's folder does not replace what was packed
    finished_run(runs, "c40_seed101", rng)
    assert module.pack(runs, packed, ["method", "c40"]) == ["c40_seed101", "method_seed101"]
    table = module.read_packed(packed)
    assert sorted(table) == [("c40", 100), ("c40", 101), ("method", 100), ("method", 101)]
    assert [table["method", 100]["c40", m, v, f] for m, v, f, _ in KEYS] == [
        (label, s) for (*_, label), s in zip(KEYS, first)]   # every score exactly as test.py wrote it


def test_pack_refuses_scores_it_would_round_and_runs_of_another_test_set(tmp_path):
    module = rematch()
    rows = [("test", m, v, f, label, 0.1) for m, v, f, label in KEYS]   # 0.1 is no float32
    run(tmp_path / "a", "method_seed100", scores={"c40": rows, "c23": rows})
    with pytest.raises(ValueError, match="not a float32 value"):
        module.pack(tmp_path / "a", tmp_path / "a.csv.gz", ["method"])
    rng = np.random.default_rng(2)
    finished_run(tmp_path / "b", "method_seed100", rng)
    rows = [("test", m, v, f, label, 0.5) for m, v, f, label in KEYS[1:]]
    run(tmp_path / "b", "method_seed101", scores={"c40": rows, "c23": rows})
    with pytest.raises(ValueError, match="method_seed101: its test frames differ"):
        module.pack(tmp_path / "b", tmp_path / "b.csv.gz", ["method"])
    assert not (tmp_path / "b.csv.gz").exists()


def test_change_is_the_per_seed_difference_of_differences_on_one_test_set(tmp_path):
    rng = np.random.default_rng(3)
    module = rematch()
    module.REPLICATES = 500
    labels = [k[3] for k in KEYS]
    change = {}
    for size, shifts in (("64", (0.5, 0.8)), ("128", (1.2, 0.9))):
        for seed in (100, 101, 102):
            a = finished_run(tmp_path / size, f"method_seed{seed}", rng, shifts[0])
            b = finished_run(tmp_path / size, f"c40_seed{seed}", rng, shifts[1])
            sign = 1 if size == "128" else -1
            change[seed] = change.get(seed, 0) + sign * (roc_auc_score(labels, a) - roc_auc_score(labels, b))
        module.pack(tmp_path / size, tmp_path / f"{size}.csv.gz", ["method", "c40"])
    text = module.change(tmp_path / "128.csv.gz", tmp_path / "64.csv.gz", ["method", "c40"])
    row = next(line for line in text.splitlines() if line.startswith("| frame"))
    assert row.split(" | ")[3] == f"{np.mean(list(change.values())):+.3f}"
    assert "tested at c40 (3 seeds: 100 to 102)" in text
    two = module.change(tmp_path / "128.csv.gz", tmp_path / "64.csv.gz", ["method", "c40"], seeds=[100, 102])
    assert f"{np.mean([change[100], change[102]]):+.3f}" in two and "(2 seeds: 100 to 102)" in two
    rows = [("test", m, v, f, label, 0.5) for m, v, f, label in KEYS[1:]]   # another test set
    for arm in ("method", "c40"):
        run(tmp_path / "other", f"{arm}_seed100", scores={"c40": rows, "c23": rows})
    module.pack(tmp_path / "other", tmp_path / "other.csv.gz", ["method", "c40"])
    with pytest.raises(ValueError, match="do not hold the same c40 test frames"):
        module.change(tmp_path / "other.csv.gz", tmp_path / "64.csv.gz", ["method", "c40"])


def test_validation_tabulates_the_finished_runs_validation_auc_at_their_chosen_epoch(tmp_path):
    rng = np.random.default_rng(2)
    for seed, (c40, c23, epoch) in {100: (0.6, 0.7, 3), 101: (0.8, 0.5, 2), 102: (0.7, 0.9, 2)}.items():
        finished_run(tmp_path, f"method_seed{seed}", rng, val_auc=c40, val_auc_c23=c23, epoch=epoch,
                     scored_epoch=epoch)
    finished_run(tmp_path, "c40_seed100", rng, val_auc=0.9, scored_epoch=2)  # not scored at its epoch: left out
    finished_run(tmp_path, "c40_seed101", rng, val_auc=0.3, val_auc_c23=None)  # trained at c40: validated there
    module = rematch()
    text = module.validation(tmp_path, ["method", "c40"])
    half = 4.302652729749464 * 0.1 / 3 ** 0.5   # t(0.975, 2) x SD / sqrt(3) of 0.6, 0.8, 0.7
    assert f"| method | 3 | 0.7000 [{0.7 - half:.4f}, {0.7 + half:.4f}] | 0.7000 " in text
    assert "| 2: 2, 3: 1 |" in text
    assert "| c40 | 1 | 0.3000 | — | 3: 1 |" in text
    two = module.validation(tmp_path, ["method"], seeds=[100, 101])
    assert "| method | 2 | 0.7000 [-0.5706, 1.9706] | 0.6000 " in two   # t(0.975, 1) x 0.1 = 1.2706


@pytest.mark.parametrize("ci, words", [((-0.05, -0.01), "the method is worse"),
                                       ((-0.015, 0.03), "the method is not worse (by 0.02 or more)"),
                                       ((0.01, 0.03), "the method is better"), ((-0.04, 0.01), "not resolved")])
def test_verdicts_follow_the_plan(ci, words):
    assert rematch().verdict(ci) == words
