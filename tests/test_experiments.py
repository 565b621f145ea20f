"""experiments.py: statistics against scipy, variants and sets, run states and commands, the result tables;
end to end on the tiny tree (two variants, two seeds), reused on a second call, resumed when stopped."""
import csv
import json
import math
import shlex

import numpy as np
import pytest
import torch
from conftest import load_script
from scipy import stats as scipy_stats

from forensics import experiments, ffpp, stats
from forensics.data import Batch
from forensics.experiments import SETS, Variant
from forensics.training import RELEASED_SETTINGS, TrainConfig, Training, as_flags, seed_everything

runner = load_script("experiments")

A = [0.81, 0.79, 0.84, 0.80, 0.83]
B = [0.78, 0.80, 0.79, 0.77, 0.80]


def test_interval_and_paired_test_match_scipy():
    described = stats.describe(A)
    sem = scipy_stats.sem(A)
    assert described["mean"] == pytest.approx(np.mean(A)) and described["sd"] == pytest.approx(np.std(A, ddof=1))
    assert described["se"] == pytest.approx(sem)
    assert described["ci"] == pytest.approx(list(scipy_stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=sem)))
    pair = stats.paired(A, B, tolerance=0.01)
    diffs = np.subtract(A, B)
    assert pair["differences"] == pytest.approx(list(diffs)) and pair["mean"] == pytest.approx(0.026)
    assert pair["ci"] == pytest.approx(list(scipy_stats.t.interval(0.95, 4, loc=diffs.mean(),
                                                                   scale=scipy_stats.sem(diffs))))
    assert pair["p"] == pytest.approx(scipy_stats.ttest_rel(A, B).pvalue)
    assert pair["p"] == pytest.approx(0.0568, abs=1e-4)  # t = 0.026 / (0.02191 / sqrt 5) = 2.654, 4 dof
    assert pair["sd_reference_pair"] == pytest.approx(math.sqrt(2) * np.std(B, ddof=1))
    # the no-loss test is the one-sided test of the difference shifted by the margin
    assert pair["p_no_loss"] == pytest.approx(
        scipy_stats.ttest_1samp(diffs + 0.01, 0, alternative="greater").pvalue)
    one = stats.paired([0.8], [0.7], tolerance=0.01)
    assert one["mean"] == pytest.approx(0.1) and one["ci"] is None and one["p"] is None and one["p_no_loss"] is None
    assert stats.t_test([0.0, 0.0]) == 1.0 and stats.t_test([0.02, 0.02]) == 0.0
    with pytest.raises(ValueError, match="pair them by seed"):
        stats.paired(A, B[:2], 0.01)


def test_interval_and_margin_tests_in_closed_form():
    # differences +0.01, -0.01, 0: mean 0, SE 0.01 / sqrt(3), t(0.975, 2 dof) = 4.3027
    low, high = stats.interval([0.01, -0.01, 0.0])
    assert low == pytest.approx(-0.024841, abs=1e-6) and high == pytest.approx(0.024841, abs=1e-6)
    assert stats.interval([0.01]) is None and stats.margin_tests([0.01], 0.01) is None
    # with 2 dof, P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2; here t = 0.01 / SE = sqrt(3) both ways
    p = stats.margin_tests([0.01, -0.01, 0.0], 0.01)
    assert p["no_loss"] == pytest.approx(0.112702, abs=1e-6) and p["equivalent"] == pytest.approx(0.112702, abs=1e-6)
    # better by 0.03: no loss (t = 0.04 / SE = 6.928), but not equivalent (t = 0.02 / SE = 3.464)
    p = stats.margin_tests([0.02, 0.04, 0.03], 0.01)
    assert p["no_loss"] == pytest.approx(0.010102, abs=1e-6) and p["equivalent"] == pytest.approx(0.962910, abs=1e-6)
    assert stats.margin_tests([0.0, 0.0], 0.01) == {"no_loss": 0.0, "equivalent": 0.0}
    assert stats.margin_tests([-0.02, -0.02], 0.01) == {"no_loss": 1.0, "equivalent": 1.0}


def test_variants_parse_from_the_command_line():
    assert experiments.parse_variant("no_mask=--mask-weight 0") == Variant("no_mask", ("--mask-weight", "0"))
    assert experiments.parse_variant("method=") == Variant("method", (), ffpp.COMPRESSIONS)
    assert experiments.parse_variant("x40@c40=--model xception --compression c40") == Variant(
        "x40", ("--model", "xception", "--compression", "c40"), ("c40",))
    assert experiments.parse_variant("lr='--lr 3e-4' --loader pil").flags == ("--lr 3e-4", "--loader", "pil")
    for bad in ("no_mask", "no mask=--mask-weight 0", "../up=", "x@c50=--lr 1", "=--lr 1"):
        with pytest.raises(ValueError, match="--variant"):
            experiments.parse_variant(bad)
    assert experiments.parse_reference("xception_c40@c40") == ("xception_c40", ("c40",))
    with pytest.raises(ValueError, match="named twice"):
        experiments.choose_variants("precision", [Variant("fp32")])
    with pytest.raises(ValueError, match="no variants"):
        experiments.choose_variants(None, [])
    chosen = experiments.choose_variants("ablation", [Variant("mine")], ["xception_c40", "mine", "method"])
    assert [v.name for v in chosen] == ["method", "xception_c40", "mine"]
    with pytest.raises(ValueError, match="--only no_such"):
        experiments.choose_variants("ablation", [], ["method", "no_such"])


def test_built_in_sets_are_train_py_flags():
    ablation = {v.name: v.flags for v in SETS["ablation"].variants}
    assert ablation == {
        "method": (), "no_pairing": ("--pairing-weight", "0"), "no_attention": ("--attention-weight", "0"),
        "no_mask": ("--mask-weight", "0"), "mean_metric": ("--metric-reduction", "mean"),
        "classifier": ("--classifier-weight", "1"), "adversarial": ("--adversarial-weight", "0.1"),
        "xception_c23": ("--model", "xception", "--compression", "c23"),
        "xception_c40": ("--model", "xception", "--compression", "c40"),
        "xception_both": ("--model", "xception", "--compression", "both")}
    assert SETS["ablation"].references == (("method", None), ("xception_c40", ("c40",)))
    precision = SETS["precision"]
    assert [(v.name, list(v.flags)) for v in precision.variants] == [("default", []),
                                                                     ("fp32", as_flags(RELEASED_SETTINGS))]
    assert precision.flags == ("--pretrained", "none") and precision.references == (("fp32", None),)
    train = load_script("train")
    for s in SETS.values():
        assert {name for name, _ in s.references} <= {v.name for v in s.variants}
        for v in s.variants:  # every variant is a valid train.py command line
            assert isinstance(train.parse_args([*s.flags, *v.flags]), TrainConfig)
    config = train.parse_args(["--model", "xception", "--compression", "both"])
    assert config.qualities == ffpp.COMPRESSIONS


def _fake_run(folder, aucs, parts=("tail", "hq_head", "lq_head"), checkpoints=True, scored=(), best=None):
    """A run folder as train.py (and test.py + eval.py) leave it: one history entry per AUC, given at both
    qualities, its checkpoints, best.json and the metrics of the compressions in `scored`."""
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"epoch": e, "val_auc": a, "val_auc_c23": a + 0.1, "val_auc_c40": a} for e, a in enumerate(aucs, 1)]
    (folder / "history.json").write_text(json.dumps(history))
    best = best or max(history, key=lambda h: h["val_auc"])["epoch"]
    (folder / "best.json").write_text(json.dumps({"epoch": best}))
    for epoch in range(1, len(aucs) + 1) if checkpoints else ():
        for part in parts:
            (folder / f"{part}_{epoch:06d}.tar").write_bytes(b"")
    for c in scored:
        (folder / f"test_{c}").mkdir(exist_ok=True)
        metrics = {"epoch": best, "auc": aucs[best - 1] - 0.05, "video_auc": 0.9, "acc": 0.7}
        (folder / f"test_{c}" / "metrics.json").write_text(json.dumps(metrics))


def _plan(tmp_path, variants, seeds=(0,), epochs=2):
    return experiments.plan(variants, seeds, tmp_path, epochs, ["--face-root", "F", "--lr", "3e-4"],
                            ["--face-root", "F"])


def test_run_states_and_the_commands_that_finish_them(tmp_path):
    runs = _plan(tmp_path, [Variant("a"), Variant("b", ("--dataset", "Deepfakes")), Variant("c"), Variant("d"),
                            Variant("e", ("--precision", "fp32"), ("c40",)), Variant("f")])
    done, resume, overwrite, test, new, gone = runs
    _fake_run(done.out, [0.7, 0.8], scored=ffpp.COMPRESSIONS)
    _fake_run(resume.out, [0.7])                        # killed after epoch 1 of 2
    overwrite.out.mkdir()
    (overwrite.out / "tail_000001.tar").write_bytes(b"")  # killed inside its first epoch
    _fake_run(test.out, [0.8, 0.7], scored=("c23",))   # killed while scoring
    _fake_run(gone.out, [0.8, 0.7], checkpoints=False)  # checkpoints removed before scoring
    assert [r.state() for r in runs] == ["done", "resume", "overwrite", "test", "new", "unscorable"]
    assert [r.name for r in runs] == [f"{n}_seed0" for n in "abcdef"]

    assert done.commands() == [] and experiments.print_line(done) is None
    steps = resume.commands()
    assert [s for s, _ in steps] == ["train", "test_c23", "eval_c23", "test_c40", "eval_c40"]
    train = steps[0][1]
    assert train[:2] == ["python", "train.py"] and train[-1] == "--resume"
    assert train.index("--lr") < train.index("--dataset") < train.index("--out")  # the user's, the variant's
    assert train[train.index("--out") + 1] == str(resume.out) and train[train.index("--seed") + 1] == "0"
    test_c40 = steps[3][1]
    assert test_c40[:4] == ["python", "test.py", "--face-root", "F"]
    assert shlex.join(test_c40[4:]) == (f"--checkpoint-dir {resume.out} --epoch best --compression c40 --dataset "
                                        f"Deepfakes --out {resume.out / 'test_c40'}")
    assert steps[4][1] == ["python", "eval.py", "--scores", str(resume.out / "test_c40" / "scores.csv"), "--no-plots"]
    assert overwrite.commands()[0][1][-1] == "--overwrite"
    assert [s for s, _ in test.commands()] == ["test_c40", "eval_c40"]  # c23 is scored at its best epoch
    fresh = new.commands()
    assert [s for s, _ in fresh] == ["train", "test_c40", "eval_c40"] and fresh[0][1][-1] == "0"
    assert fresh[1][1][-2:] == ["--precision", "fp32"]  # tested as trained
    line = experiments.print_line(new)
    assert line.count(" && ") == 2 and "--compression c23" not in line
    assert experiments.execute(gone, "python", tmp_path, False) is None  # reported, nothing run
    # a compare_precision run (history only) still gives its validation figures
    assert gone.results(last=2) == pytest.approx({("c23", "val_auc_final"): 0.8, ("c23", "val_auc_last2"): 0.85,
                                                  ("c40", "val_auc_final"): 0.7, ("c40", "val_auc_last2"): 0.75})

    # more epochs than asked for is not this run
    with pytest.raises(ValueError, match="more than --epochs 1"):
        _plan(tmp_path, [Variant("a")], epochs=1)[0].state()


def test_parts_follow_the_run_so_a_critic_run_resumes(tmp_path):
    critic, = _plan(tmp_path, [Variant("adv", ("--adversarial-weight", "0.1"))])
    _fake_run(critic.out, [0.7], parts=("tail", "hq_head", "lq_head"))
    assert critic.parts() == ["tail", "hq_head", "lq_head", "critic"] and critic.state() == "overwrite"
    (critic.out / "critic_000001.tar").write_bytes(b"")
    assert critic.state() == "resume"
    baseline, = _plan(tmp_path, [Variant("x", ("--model", "xception", "--compression", "both"))])
    _fake_run(baseline.out, [0.7], parts=("xception",))
    assert baseline.parts() == ["xception"] and baseline.state() == "resume"


def test_a_redefined_variant_is_not_reused(tmp_path):
    run, = _plan(tmp_path, [Variant("no_pairing", ("--pairing-weight", "0", "--channels-last", "off"))])
    _fake_run(run.out, [0.7, 0.8], scored=ffpp.COMPRESSIONS)
    config = {"pairing_weight": 0.0, "channels_last": False, "pretrained": "imagenet", "seed": 0, "lr": 3e-4}
    (run.out / "config.json").write_text(json.dumps(config))
    run.check()
    (run.out / "config.json").write_text(json.dumps({**config, "pairing_weight": 0.2}))
    with pytest.raises(ValueError, match=r"--pairing-weight 0 \(the run has 0.2\)"):
        run.check()
    (run.out / "config.json").write_text(json.dumps({**config, "seed": 3}))
    with pytest.raises(ValueError, match="--seed 0"):
        run.check()


def test_results_summarise_each_variant_and_each_paired_difference(tmp_path):
    # the precision study's summary, from run folders: final-epoch and last-2 validation AUC at c23 and c40
    seeds = [0, 1, 2]
    variants = [Variant("default"), Variant("fp32")]
    runs = _plan(tmp_path, variants, seeds)
    for run in runs:
        final = {"default": (0.81, 0.79, 0.80), "fp32": (0.79, 0.80, 0.81)}[run.variant.name][run.seed]
        _fake_run(run.out, [0.5, final], scored=ffpp.COMPRESSIONS, best=2)
    values = experiments.collect(runs, last=2)
    assert values["default", 1] == pytest.approx({
        ("c23", "auc"): 0.74, ("c23", "video_auc"): 0.9, ("c23", "acc"): 0.7, ("c40", "auc"): 0.74,
        ("c40", "video_auc"): 0.9, ("c40", "acc"): 0.7, ("c23", "val_auc_final"): 0.89,
        ("c23", "val_auc_last2"): 0.745, ("c40", "val_auc_final"): 0.79, ("c40", "val_auc_last2"): 0.645})
    metrics = experiments.metrics_of(2)
    rows = experiments.summarise(values, variants, seeds, [("fp32", None)], metrics, tolerance=0.01)
    assert len(rows) == 2 * 2 * 5 + 2 * 5
    index = {(r["kind"], r["variant"], r["compression"], r["metric"]): r for r in rows}
    final = index["difference", "default", "c40", "val_auc_final"]
    assert final["differences"] == pytest.approx([0.02, -0.01, -0.01]) and final["reference"] == "fp32"
    assert final["sd_reference_pair"] == pytest.approx(0.01 * 2 ** 0.5)
    assert final["p_no_loss"] > 0.05 and final["seeds"] == seeds
    assert index["difference", "default", "c40", "val_auc_last2"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert index["variant", "fp32", "c23", "val_auc_final"]["mean"] == pytest.approx(0.90)

    # within the margin: no loss and equivalence shown
    narrow = {("default", s): {("c23", "val_auc_final"): v} for s, v in zip(seeds, (0.801, 0.799, 0.800))}
    narrow.update({("fp32", s): {("c23", "val_auc_final"): 0.80} for s in seeds})
    row = experiments.summarise(narrow, variants, seeds, [("fp32", None)], metrics, 0.01)[-1]
    assert row["p_no_loss"] < 0.05 and row["p_equivalent"] == pytest.approx(0.001658, abs=1e-6)

    # a seed missing for one variant drops out of its pairs only
    del values["fp32", 2]
    rows = experiments.summarise(values, variants, seeds, [("fp32", None)], metrics, tolerance=0.01)
    index = {(r["kind"], r["variant"], r["compression"], r["metric"]): r for r in rows}
    assert index["variant", "default", "c23", "auc"]["n"] == 3
    assert index["difference", "default", "c23", "auc"]["seeds"] == [0, 1]

    text = experiments.write_results(tmp_path, runs, values, rows, metrics, "precision", [("fp32", None)],
                                     0.01, 0.05, margins=True)
    assert (tmp_path / "results.md").read_text() == text and (tmp_path / "results.png").stat().st_size > 10_000
    assert "| default | 3 | 0.7500 ± 0.0100 [0.7252, 0.7748] |" in text
    # test AUC differences +0.02, -0.01: SE 0.015, t(0.975, 1 dof) = 12.706, p = 1 - 2 atan(1/3) / pi
    assert "| default - fp32 | 2 | +0.0050 ± 0.0212 [-0.1856, +0.1956], p 0.795 |" in text
    assert "## Margin tests against ±0.01 (level 0.05)" in text
    # compare_precision's summary of the final-epoch c40 AUC, seeds 0 and 1: differences +0.02, -0.01, SE 0.015;
    # fp32 0.79 and 0.80: SD 0.0071, x sqrt(2); 1 dof: p no loss = P(T > 1) = 1/4, TOST P(T < -1/3) = 0.3976
    assert ("| default - fp32 | c40 | val AUC, final epoch | 2 | +0.0050 (0.0150) | [-0.1856, +0.1956] | 0.0100 | "
            "not shown (p 0.250) | not shown (p 0.398) |") in text
    with open(tmp_path / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and table[0]["kind"] == "variant"
    last = next(r for r in table if r["kind"] == "difference" and r["metric"] == "val_auc_final"
                and r["compression"] == "c40")
    assert last["seeds"] == "0 1" and [float(v) for v in last["values"].split()] == pytest.approx([0.02, -0.01])
    with open(tmp_path / "runs.csv", newline="") as f:
        per_run = list(csv.DictReader(f))
    assert len(per_run) == 5 and per_run[0]["variant"] == "default" and float(per_run[0]["c23_auc"]) == 0.76


def test_same_seed_same_initial_weights_where_variants_share_parts():
    def start(**kwargs):
        seed_everything(3)
        return Training(TrainConfig(pretrained="none", **kwargs), torch.device("cpu")).model.state_dict()

    method = start()
    extended = start(classifier_weight=1.0, adversarial_weight=0.1, pairing_weight=0.0)
    assert set(method) < set(extended)
    assert all(torch.equal(method[k], extended[k]) for k in method)


@pytest.mark.slow
def test_baseline_on_both_trains_on_each_frame_at_c23_and_at_c40():
    config = TrainConfig(model="xception", compression="both", pretrained="none", precision="fp32",
                         channels_last=False, compile=False, fused_adam=False)
    assert config.qualities == ("c23", "c40")
    training = Training(config, torch.device("cpu")).to_device()
    seen = []
    net = training.step_model
    training.step_model = lambda x: seen.append(x) or net(x)
    images = {q: torch.rand(2, 3, 64, 64) for q in ffpp.COMPRESSIONS}
    loss, terms = training.step(Batch(images, None, torch.tensor([0, 1]), torch.arange(2)))
    assert torch.equal(seen[0], torch.cat([images["c23"], images["c40"]]))
    assert torch.isfinite(loss) and set(terms) == {"cross_entropy"}


def test_print_commands_without_running_anything(tmp_path, capsys):
    runs = runner.main(["--set", "ablation", "--out", str(tmp_path), "--seeds", "0", "1", "--print-commands",
                        "--max-steps", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(runs) == len(lines) == 20 and not any(tmp_path.iterdir())
    assert lines[0].startswith("python train.py ") and lines[0].endswith("--no-plots")
    assert [shlex.split(line)[shlex.split(line).index("--out") + 1] for line in lines[:2]] == [
        str(tmp_path / "method_seed0"), str(tmp_path / "no_pairing_seed0")]
    both = next(line for line in lines if "xception_both_seed1" in line)
    assert "--max-steps 2 --model xception --compression both --out" in both and "--epochs 15" in both
    # --precision bf16 is how the precision set measures bf16 autocast on a CPU: the default path trains and is
    # tested in bf16, the fp32 path's own flags come after and keep it fp32
    runner.main(["--set", "precision", "--out", str(tmp_path), "--seeds", "4", "--print-commands", "--device", "cpu",
                 "--precision", "bf16"])
    default, fp32 = (shlex.split(line) for line in capsys.readouterr().out.strip().splitlines())
    train = default[:default.index("&&")]
    assert train[train.index("--epochs") + 1] == "6" and train[-2:] == ["--seed", "4"]
    assert " ".join(train).count("--pretrained none --precision bf16 --out") == 1
    tests = [default[i + 1:] for i, word in enumerate(default) if word == "&&" and default[i + 2] == "test.py"]
    assert len(tests) == 2 and all(t[t.index("--precision") + 1] == "bf16" for t in tests)
    assert " ".join(fp32).count("--precision bf16 --precision fp32 --channels-last off") == 1
    assert " ".join(fp32).count("--precision fp32 && python eval.py") == 2
    with pytest.raises(SystemExit):
        runner.main(["--set", "precision", "--reference", "method", "--print-commands"])
    assert "--reference method: not a variant here (default, fp32)" in capsys.readouterr().err


FLAGS = ["--epochs", "1", "--max-steps", "2", "--image-size", "64", "--batch-size", "4", "--workers", "0",
         "--device", "cpu", "--pretrained", "none", "--test-batch-size", "16", "--last", "1"]


METRICS = ("auc", "video_auc", "acc", "val_auc_final", "val_auc_last1")


def _results(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_runner_trains_scores_reuses_and_resumes(tiny_tree, tmp_path, capsys, monkeypatch):
    face_root, splits = tiny_tree
    out = tmp_path / "exp"
    argv = ["--face-root", str(face_root), "--splits", str(splits), "--out", str(out), "--seeds", "0", "1",
            "--jobs", "2", "--variant", "method=", "--variant", "both=--model xception --compression both", *FLAGS]
    rows = runner.main([*argv, "--keep-checkpoints"])
    printed = capsys.readouterr().out
    assert printed.count(": train done") == 4
    table = _results(out)
    assert [(r["kind"], r["variant"], r["reference"], r["compression"], r["metric"]) for r in table] == [
        ("variant", v, "", c, m) for v in ("method", "both") for c in ffpp.COMPRESSIONS
        for m in METRICS] + [("difference", "both", "method", c, m) for c in ffpp.COMPRESSIONS for m in METRICS]
    assert len(rows) == len(table) and all(r["n"] == "2" and r["seeds"] == "0 1" for r in table)
    for seed in (0, 1):
        run = out / f"both_seed{seed}"
        config = json.loads((run / "config.json").read_text())
        assert (config["model"], config["compression"], config["seed"], config["max_steps"]) == (
            "xception", "both", seed, 2)
        history = json.loads((run / "history.json").read_text())
        assert history[0]["val_auc"] == history[0]["val_auc_c40"] and "val_auc_c23" in history[0]
        for c in ffpp.COMPRESSIONS:
            metrics = json.loads((run / f"test_{c}" / "metrics.json").read_text())
            assert metrics["epoch"] == 1 and metrics["compression"] == c
            assert "note: this baseline was trained on" not in (run / f"test_{c}.log").read_text()
        auc = next(r for r in table if r["variant"] == "both" and r["compression"] == "c40" and r["metric"] == "auc")
        assert float(auc["values"].split()[seed]) == json.loads((run / "test_c40" / "metrics.json").read_text())["auc"]
    diff = next(r for r in table if r["kind"] == "difference" and r["compression"] == "c23" and r["metric"] == "auc")
    own = {v: [float(x) for x in next(r for r in table if r["kind"] == "variant" and r["variant"] == v
                                      and r["compression"] == "c23" and r["metric"] == "auc")["values"].split()]
           for v in ("method", "both")}
    assert [float(x) for x in diff["values"].split()] == pytest.approx(np.subtract(own["both"], own["method"]))
    md = (out / "results.md").read_text()
    assert "## Variants at c40" in md and "| both - method | 2 |" in md and (out / "results.png").exists()

    # a second call finds every run scored and runs nothing
    monkeypatch.setattr(experiments.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a[0][:2]}"))
    again = runner.main([*argv, "--keep-checkpoints"])
    assert again == rows and capsys.readouterr().out.count("reusing") == 4
    monkeypatch.undo()

    # a run stopped after epoch 1 of 2 resumes, is scored again at its new best epoch, then loses its checkpoints
    argv = [*argv[:argv.index("--variant")], "--variant", "method@c40=", *FLAGS, "--seeds", "0", "--epochs", "2"]
    assert "--resume" in runner.main([*argv, "--print-commands"])[0].commands()[0][1]
    capsys.readouterr()
    runner.main(argv)
    assert capsys.readouterr().out.count("train done (resume)") == 1
    run = out / "method_seed0"
    assert "resuming" in (run / "train.log").read_text()
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2]
    best = json.loads((run / "best.json").read_text())["epoch"]
    assert json.loads((run / "test_c40" / "metrics.json").read_text())["epoch"] == best
    assert not list(run.glob("*.tar")) and list((out / "method_seed1").glob("*.tar"))
