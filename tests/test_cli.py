"""The shared flags: one grammar for LABEL@QUALIFIER=VALUE, one --precision."""
import argparse

import pytest

from forensics import cli


def test_one_grammar_for_labels_qualifiers_and_values():
    assert cli.parse_labelled("Xception baseline@Deepfakes@c40=runs/x=y") == (
        "Xception baseline", ["Deepfakes", "c40"], "runs/x=y")
    assert cli.parse_labelled("method=") == ("method", [], "")
    assert cli.parse_labelled("xception_c40@c40") == ("xception_c40", ["c40"], None)
    assert cli.parse_checkpoints(["method=a", "method@Deepfakes@c40=b", "X@c23=c"]) == {
        "method": {(None, None): "a", ("Deepfakes", "c40"): "b"}, "X": {(None, "c23"): "c"}}
    assert cli.parse_checkpoints(["runs/method/"]) == {"method": {(None, None): "runs/method/"}}  # a bare run
    for bad in ("method=", "=a", "m@c23@c40=a", "m@Deepfakes@FaceSwap=a", "m@c50=a"):
        with pytest.raises(SystemExit, match="use DIR, LABEL=DIR"):
            cli.parse_checkpoints([bad])
    with pytest.raises(SystemExit, match="has a folder for these cells already"):
        cli.parse_checkpoints(["m=a", "m=b"])


def test_precision_is_one_flag_with_the_same_choices_everywhere():
    parser = cli.add_common(argparse.ArgumentParser(), precision="auto")
    assert parser.parse_args([]).precision == "auto" and parser.parse_args(["--precision", "bf16"]).precision == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])
