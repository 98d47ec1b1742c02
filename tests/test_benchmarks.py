"""bench_training.py and bench_features.py at the tiniest sizes: they run the settings of conf/."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from conftest import conf_parameters, load_benchmark


@pytest.fixture(scope="module")
def setups():
    return load_benchmark("setups")


def test_setups_are_read_from_conf(setups):
    base, paper_crnn, paper = (setups.load_setup(name) for name in ("base", "paper_crnn", "paper"))
    conf = conf_parameters()
    square = {"in_channels": 10, "mel_channels": 4}  # the channels conf derives from the paper's array
    assert base["encoder"] == {**conf["encoder"], **square}
    assert base["augmentations"] == conf["augmentations"]
    assert base["encoder"]["architecture"] == "split_crnn"
    assert base["pretraining"]["branch_loss_weight"] > 0
    assert paper_crnn["encoder"] == {**conf["encoder"], **square, "architecture": "crnn"}
    assert (paper_crnn["pretraining"]["joint_loss_weight"], paper_crnn["pretraining"]["branch_loss_weight"]) == (1, 0)
    assert paper["encoder"] == {**conf_parameters("paper")["encoder"], **square}
    assert paper["features"]["n_mels"] == 96
    with pytest.raises(ValueError, match="unknown setup"):
        setups.load_setup("resnet")


def test_bench_training_times_the_split_default(capsys):
    bench = load_benchmark("bench_training")
    results = bench.main(["--device", "cpu", "--batch", "2", "--steps", "1", "--clips", "3"])
    (result,) = results
    assert result.encoder == "base"
    assert result.wall_s > 0
    assert result.clips_per_s > 0
    assert {"stft", "gcc_phat", "random_resized_crop"} <= set(result.breakdown)
    assert "(b) by stage" in capsys.readouterr().out


def test_bench_training_runs_each_precision(capsys):
    bench = load_benchmark("bench_training")
    results = bench.main(
        ["--device", "cpu", "--batch", "2", "--steps", "1", "--clips", "3", "--precision", "float32", "bf16"]
    )
    assert [r.precision for r in results] == ["float32", "bf16"] and [r.label for r in results] == [
        "cpu float32",
        "cpu bf16",
    ]
    for r in results:
        assert r.utilisation is None
        assert r.layout == "channels_last"  # no GPU; the CPU always runs channels-last
        assert r.compute_limit == pytest.approx(r.batch * r.steps / (r.augment_s + r.train_s))
    out = capsys.readouterr().out
    assert "cpu bf16" in out
    assert "limit/s" in out


def test_utilisation_sampler_reads_nvidia_smi_until_stopped(tmp_path, monkeypatch):
    bench = load_benchmark("bench_training")
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    missing = bench.UtilisationSampler(bench.torch.device("cuda", 0))
    missing.start()
    missing.stop()
    assert missing.mean is None
    assert missing.error == "nvidia-smi not found"

    # a stand-in nvidia-smi: two samples, then it loops on as the real one does with --loop-ms
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\necho 50\necho 70\nexec sleep 60\n')
    fake.chmod(0o755)
    monkeypatch.undo()  # shutil.which finds programs again
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    sampler = bench.UtilisationSampler(bench.torch.device("cuda", 0), interval_ms=50)
    sampler.start()
    deadline = time.monotonic() + 10
    while len(sampler.samples) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    sampler.stop()
    assert time.monotonic() - started < 5  # stop() ends the looping process
    assert sampler.samples == [0.5, 0.7]
    assert sampler.mean == pytest.approx(0.6)
    args = (tmp_path / "args").read_text().split()
    assert "--query-gpu=utilization.gpu" in args
    assert "--loop-ms=50" in args
    assert any(a.startswith("--id=") for a in args)


def test_bench_features_compares_with_the_reference(capsys):
    bench = load_benchmark("bench_features")
    bench.main(["--patches", "2", "--batch", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "speed-up" in out
    assert "max |torch - numpy|" in out


@pytest.mark.slow
def test_bench_execution_renders_alike_on_every_backend(tmp_path, capsys):
    bench = load_benchmark("bench_execution")
    sizes = ["unlabeled=2", "labeled=2", "validation=0", "test=0", "confirmation=0"]
    results = bench.main(["--workers", "2", "--workdir", str(tmp_path), "--clips-per-split", *sizes])
    assert set(results) == {"local", "processes", "dask"}
    assert all(r["identical"] == 1.0 and r["wall_s"] > 0 and r["peak_rss_gib"] > 0 for r in results.values())
    assert "speed-up" in capsys.readouterr().out


def test_paper_scale_projects_run_the_paper_environment_on_the_standin(tmp_path):
    from mc_simclr.params import load_parameters

    bench = load_benchmark("paper_scale")
    project = bench.make_project(tmp_path / "project", tmp_path / "standin", max_steps=3, storage_dtype="int16")
    params = load_parameters(project / "conf", "paper")  # what `kedro run --env=paper` reads there
    assert params["corpus"]["source"] == "fsdnoisy18k"
    assert params["corpus"]["fsdnoisy18k"]["root"] == str(tmp_path / "standin")
    assert params["simulation"]["storage_dtype"] == "int16"
    assert params["pretraining"]["max_steps"] == 3
    assert params["pretraining"]["batch_size"] == 512
    evaluation = params["evaluation"]
    assert evaluation["subsets"]["amounts"] == []
    assert evaluation["supervised"]["finetune_epochs"] == 1
    paper = conf_parameters("paper")  # the paper's settings are kept apart from the overrides
    assert params["features"] == paper["features"]
    assert params["encoder"] == paper["encoder"]


def test_paper_scale_results_merge_by_stage_and_fraction(tmp_path):
    bench = load_benchmark("paper_scale")
    path = tmp_path / "paper_scale.csv"
    row = {"stage": "evaluation", "fraction": 0.25, "audio_h": 9.5, "wall_s": 1.0, "peak_rss_gib": 2.0, "disk_gb": 0}
    bench.save_rows(path, [row, {**row, "stage": "data_simulation", "fraction": 0.5}])
    bench.save_rows(path, [{**row, "wall_s": 7.0}, {**row, "fraction": 0.125}])  # 0.25 measured again
    saved = pd.read_csv(path)
    assert list(zip(saved["stage"], saved["fraction"], strict=True)) == [
        ("evaluation", 0.125),
        ("evaluation", 0.25),
        ("data_simulation", 0.5),
    ]
    assert saved.loc[1, "wall_s"] == 7.0
    assert not list(tmp_path.glob(".*"))


def test_bench_scenes_measures_speed_memory_and_clicks(capsys):
    bench = load_benchmark("bench_scenes")
    out = bench.main(["--recordings", "1", "--duration", "3"])
    assert len(out["speed"]) == 3 and all(len(v) == 1 and v[0] > 0 for v in out["speed"].values())
    assert len(out["memory_mib"]) == 1
    # the crossfades leave the tone's spectrum clean; hard switches between RIRs spread clicks over it
    split, crossfade, hard = out["clicks_db"].values()
    assert split < -80 and crossfade < -80 and hard > crossfade + 40
    assert "x as fast" in capsys.readouterr().out
