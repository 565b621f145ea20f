"""bench.py keeps working, on CPU at small sizes."""
import math

import pytest

from conftest import load_script

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


def test_profile_prints_each_stage_and_writes_a_table_and_a_trace(tmp_path, capsys):
    import json

    import torch

    def step():
        for stage in bench.STAGES:
            with torch.profiler.record_function(stage):
                torch.ones(64, 64) @ torch.ones(64, 64)

    bench.profile(torch.device("cpu"), "default training", "3 steps end to end", step, repeats=3, out=tmp_path)
    printed = capsys.readouterr().out
    assert "profile of default training, 3 steps end to end:" in printed
    for stage in bench.STAGES:
        assert f"{stage}: " in printed and " ms host a step" in printed
    assert "aten::mm" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default_training.trace.json", "default_training.txt"]
    assert (tmp_path / "default_training.txt").read_text() in printed + "\n"
    trace = json.loads((tmp_path / "default_training.trace.json").read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    assert set(bench.STAGES) <= names


def test_out_without_profile_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--out", "somewhere"])
    assert "pass --profile with it" in capsys.readouterr().err


@pytest.mark.slow
def test_profile_records_training_and_the_test_path_of_each_setting(tmp_path, capsys):
    bench.main(["--device", "cpu", "--workers", "0", "--steps", "1", "--warmup", "1", "--image-size", "64",
                "--batch-size", "4", "--test-batch-size", "4", "--test-frames", "8", "--only", "default",
                "--profile", "--out", str(tmp_path / "profiles")])
    printed = capsys.readouterr().out
    assert f"profile of default training, {bench.PROFILE_STEPS} steps end to end:" in printed
    assert all(f"{stage}: " in printed for stage in bench.STAGES)
    assert "profile of default test, test.py's path" in printed
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == [
        "default_test.trace.json", "default_test.txt", "default_training.trace.json", "default_training.txt"]
