"""benchmarks/bench_encoder.py at the tiniest sizes: both layouts run and agree, CLI errors are clear."""

from __future__ import annotations

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_encoder")


def test_both_layouts_timed_and_equal(bench, capsys):
    results = bench.main(["--encoders", "base", "paper_crnn", "--batch", "4", "--steps", "1", "--repeats", "1"])
    assert set(results) == {"base", "paper_crnn"}
    for r in results.values():
        assert all(
            r[key] > 0 for key in ("train_contiguous", "train_channels_last", "embed_contiguous", "embed_channels_last")
        )
        assert r["max_diff"] <= 1e-4 * max(r["scale"], 1.0)
    assert "max |diff|" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [(["--encoders", "resnet"], "unknown"), (["--batch", "1"], "at least 2")])
def test_cli_errors(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
