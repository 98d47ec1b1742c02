"""benchmarks/bench_encoder.py at the tiniest sizes: both layouts run and agree, CLI errors are clear."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_encoder.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_encoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_layouts_timed_and_equal(bench, capsys):
    results = bench.main(["--encoders", "base", "paper_crnn", "--batch", "4", "--steps", "1", "--repeats", "1"])
    assert set(results) == {"base", "paper_crnn"}
    for r in results.values():
        assert all(r[key] > 0 for key in ("train_contiguous", "train_channels_last", "embed_contiguous", "embed_channels_last"))
        assert r["max_diff"] <= 1e-4 * max(r["scale"], 1.0)
    assert "max |diff|" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [(["--encoders", "resnet"], "unknown"), (["--batch", "1"], "at least 2")])
def test_cli_errors(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
