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
