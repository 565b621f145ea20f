"""bench.py and benchmarks/compare_precision.py keep working, on CPU at small sizes."""
import importlib.util
import json
import math

import pytest

from conftest import REPO, load_script

bench = load_script("bench")


@pytest.mark.slow
def test_bench_runs_on_cpu_and_reports_both_settings(capsys):
    results = bench.main(["--device", "cpu", "--workers", "0", "--steps", "1", "--warmup", "1",
                          "--image-size", "64", "--batch-size", "4", "--test-batch-size", "4"])
    assert set(results) == {"reference", "default"}
    for figures in results.values():
        assert set(figures) == {"loader samples/s", "train pairs/s (model)", "peak memory GiB (train)",
                                "train pairs/s (end to end)", "test frames/s (model)",
                                "test frames/s (end to end)"}
        assert all(math.isfinite(v) and v > 0 for v in figures.values())
    table = capsys.readouterr().out
    ratio = results["default"]["loader samples/s"] / results["reference"]["loader samples/s"]
    assert "default / reference |" in table
    assert f"| loader samples/s | {results['reference']['loader samples/s']:.1f} | " \
           f"{results['default']['loader samples/s']:.1f} | {ratio:.2f}x |" in table


@pytest.mark.slow
def test_ablation_measures_the_default_with_each_part_switched_off(capsys):
    argv = ["--device", "cpu", "--workers", "0", "--steps", "1", "--warmup", "1", "--image-size", "64",
            "--batch-size", "4", "--test-batch-size", "4", "--test-frames", "8"]
    results = bench.main([*argv, "--ablate"])
    assert set(results) == {"default", *bench.ABLATIONS}
    table = capsys.readouterr().out
    assert all(f"| {n} / default |" in table for n in bench.ABLATIONS)
    with pytest.raises(SystemExit):
        bench.main([*argv, "--only", "no compile"])
    assert "not measured without --ablate" in capsys.readouterr().err


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_precision", REPO / "benchmarks" / "compare_precision.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_compare_precision_runs_both_settings_and_reuses_finished_runs(compare, tiny_tree, tmp_path, capsys):
    face_root, splits = tiny_tree
    argv = ["--face-root", str(face_root), "--splits", str(splits), "--out", str(tmp_path), "--device", "cpu",
            "--workers", "0", "--image-size", "64", "--batch-size", "4", "--epochs", "1", "--seeds", "1",
            "--jobs", "2", "--last", "1", "--max-steps", "1"]
    summary = compare.main(argv)
    for q in ("c23", "c40"):
        final = summary[f"final_{q}"]["auc"]
        assert set(final) == {"default", "fp32"} and all(len(v) == 1 for v in final.values())
        assert summary[f"final_{q}"]["difference"] == [final["default"][0] - final["fp32"][0]]
        history = json.loads((tmp_path / "fp32_seed1" / "history.json").read_text())
        assert final["fp32"] == [history[-1][f"val_auc_{q}"]]
    config = (tmp_path / "fp32_seed1" / "config.json").read_text()
    assert '"loader": "pil"' in config and '"seed": 1' in config and '"max_steps": 1' in config
    assert '"loader": "fast"' in (tmp_path / "default_seed1" / "config.json").read_text()
    assert not list(tmp_path.glob("*/*.tar"))  # the comparison needs only the histories
    assert "difference +0.0000 (SE n/a)" in capsys.readouterr().out  # CPU: both paths in fp32
    again = compare.main(argv)
    assert again == summary and capsys.readouterr().out.count("reusing") == 2


def test_compare_precision_interval_and_margin_tests(compare):
    # differences +0.01, -0.01, 0: mean 0, SE 0.01 / sqrt(3), t(0.975, 2 dof) = 4.3027
    low, high = compare.interval([0.01, -0.01, 0.0])
    assert low == pytest.approx(-0.024841, abs=1e-6) and high == pytest.approx(0.024841, abs=1e-6)
    assert compare.interval([0.01]) is None and compare.margin_tests([0.01], 0.01) is None
    # with 2 dof, P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2; here t = 0.01 / SE = sqrt(3) both ways
    p = compare.margin_tests([0.01, -0.01, 0.0], 0.01)
    assert p["no_loss"] == pytest.approx(0.112702, abs=1e-6) and p["equivalent"] == pytest.approx(0.112702, abs=1e-6)
    # default better by 0.03: no loss (t = 0.04 / SE = 6.928), but not equivalent (t = 0.02 / SE = 3.464)
    p = compare.margin_tests([0.02, 0.04, 0.03], 0.01)
    assert p["no_loss"] == pytest.approx(0.010102, abs=1e-6) and p["equivalent"] == pytest.approx(0.962910, abs=1e-6)
    assert compare.margin_tests([0.0, 0.0], 0.01) == {"no_loss": 0.0, "equivalent": 0.0}
    assert compare.margin_tests([-0.02, -0.02], 0.01) == {"no_loss": 1.0, "equivalent": 1.0}

    def run(*aucs):
        return [{"val_auc_c23": a, "val_auc_c40": a} for a in aucs]
    seeds = [0, 1, 2]
    wide = {("default", s): run(0.5, d) for s, d in zip(seeds, (0.81, 0.79, 0.80))}
    wide.update({("fp32", s): run(0.5, f) for s, f in zip(seeds, (0.79, 0.80, 0.81))})
    summary = compare.summarise(wide, seeds, 2, tolerance=0.01)
    final = summary["final_c40"]
    assert final["difference"] == pytest.approx([0.02, -0.01, -0.01])
    assert final["sd_fp32_vs_fp32"] == pytest.approx(0.01 * 2 ** 0.5)
    assert not final["no_loss"] and not final["equivalent"] and final["p_no_loss"] > 0.05
    assert json.loads(json.dumps(summary)) == summary  # plain Python values, as summary.json needs
    assert summary["last_2_c40"]["mean_difference"] == pytest.approx(0.0)
    narrow = {("default", s): run(0.5, d) for s, d in zip(seeds, (0.801, 0.799, 0.800))}
    narrow.update({("fp32", s): run(0.5, 0.80) for s in seeds})
    final = compare.summarise(narrow, seeds, 1, tolerance=0.01)["final_c23"]
    assert final["no_loss"] and final["equivalent"] and final["p_equivalent"] == pytest.approx(0.001658, abs=1e-6)


@pytest.mark.slow
def test_compare_precision_passes_other_flags_to_both_runs_before_their_own(compare, tiny_tree, tmp_path):
    # --precision bf16 is how the comparison measures bf16 autocast on a CPU; the fp32 run must stay fp32
    face_root, splits = tiny_tree
    compare.main(["--face-root", str(face_root), "--splits", str(splits), "--out", str(tmp_path), "--device", "cpu",
                  "--workers", "0", "--image-size", "64", "--batch-size", "4", "--epochs", "1", "--seeds", "0",
                  "--last", "1", "--max-steps", "1", "--precision", "bf16"])
    default = json.loads((tmp_path / "default_seed0" / "config.json").read_text())
    fp32 = json.loads((tmp_path / "fp32_seed0" / "config.json").read_text())
    assert default["precision"] == "bf16" and default["max_steps"] == 1
    assert fp32["precision"] == "fp32" and fp32["max_steps"] == 1
