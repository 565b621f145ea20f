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


def run(root, name, val_auc=None, scores=None):
    folder = root / name
    folder.mkdir(parents=True)
    if val_auc is not None:
        (folder / "best.json").write_text(json.dumps({"epoch": 3, "val_auc_c40": val_auc}))
    for compression, rows in (scores or {}).items():
        (folder / f"test_{compression}").mkdir()
        lines = ["split,method,video,frame,label,score,compression"]
        lines += [f"{split},{m},{v},{f},{label},{s!r},{compression}" for split, m, v, f, label, s in rows]
        (folder / f"test_{compression}" / "scores.csv").write_text("\n".join(lines) + "\n")


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
    keys = [("orig", f"{v:03d}", f, 0) for v in range(4) for f in range(2)]
    keys += [("Deepfakes", f"{v:03d}_x", f, 1) for v in range(6) for f in range(2)]
    aucs = {}
    for arm, shift in (("method", 0.3), ("c40", 0.8)):
        for seed in (100, 101, 102):
            scores = [float(rng.normal() + shift * label) for *_, label in keys]
            rows = [("test", m, v, f, label, s) for (m, v, f, label), s in zip(keys, scores)]
            rows.append(("val", "orig", "999", 0, 0, 0.5))  # validation rows are not read
            run(tmp_path, f"{arm}_seed{seed}", scores={"c40": rows, "c23": rows})
            aucs[arm, seed] = roc_auc_score([k[3] for k in keys], scores)
    module = rematch()
    module.REPLICATES = 500
    result = module.compare(module.runs_of(tmp_path), "method", "c40", "c40", 0.95)
    want = np.mean([aucs["method", s] - aucs["c40", s] for s in (100, 101, 102)])
    assert result["seeds"] == [100, 101, 102]
    assert result["frame"]["two_way"]["estimate"] == pytest.approx(want)
    assert result["frame"]["t"]["mean"] == pytest.approx(want)
    assert result["frame"]["two_way"]["ci"][0] < want < result["frame"]["two_way"]["ci"][1]
    text = module.report(tmp_path, ["method", "c40"])
    assert "**Headline verdict**" in text and "## method minus c40, tested at c23 (3 seeds" in text


@pytest.mark.parametrize("ci, words", [((-0.05, -0.01), "the method is worse"),
                                       ((-0.015, 0.03), "the method is not worse (by 0.02 or more)"),
                                       ((0.01, 0.03), "the method is better"), ((-0.04, 0.01), "not resolved")])
def test_verdicts_follow_the_plan(ci, words):
    assert rematch().verdict(ci) == words
