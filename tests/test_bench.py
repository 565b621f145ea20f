"""bench.py keeps working: every measurement of both settings on CPU at a small size."""
import math

import bench


def test_bench_runs_on_cpu_and_reports_both_settings(capsys):
    results = bench.main(["--device", "cpu", "--workers", "0", "--steps", "1", "--warmup", "1",
                          "--image-size", "64", "--batch-size", "4", "--test-batch-size", "4"])
    assert set(results) == {"reference", "default", "crop"}
    crop = results.pop("crop")
    assert set(crop) == {"crop frames/s, plain loop", "crop frames/s, create_faces, 1 process(es)"}
    assert all(v > 0 for v in crop.values())
    for figures in results.values():
        assert set(figures) == {"loader samples/s", "train pairs/s (model)", "peak memory GiB (train)",
                                "train pairs/s (end to end)", "test frames/s (model)",
                                "test frames/s (end to end)"}
        assert all(math.isfinite(v) and v > 0 for v in figures.values())
    table = capsys.readouterr().out
    assert "| train pairs/s (end to end) |" in table and "default / reference" in table
    assert "crop frames/s, plain loop" in table
