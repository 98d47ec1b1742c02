"""benchmarks/gpu_experiment.py end to end at the tiniest sizes on CPU, its CLI errors and its imports."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from conftest import PROJECT_ROOT, load_benchmark

SCRIPT = PROJECT_ROOT / "benchmarks" / "gpu_experiment.py"

TINY = [
    "--device",
    "cpu",
    "--unlabeled",
    "4",
    "--labeled",
    "4",
    "--validation",
    "2",
    "--test",
    "3",
    "--confirmation",
    "2",
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "--probe-epochs",
    "1",
    "--finetune-epochs",
    "1",
    "--set",
    "corpus.synthetic.mean_duration_s={unlabeled: 1.2, labeled: 1.0, validation: 1.0, test: 1.0, confirmation: 1.0}",
    "--set",
    "corpus.synthetic.duration_range_s=[0.3, 2.0]",
    "--set",
    "simulation.scene.rt60=[0.1, 0.3]",
    "--set",
    "simulation.shard_size=4",
    "--set",
    "features.n_mels=32",
    "--set",
    "feature_extraction.max_patches_per_clip=2",
    "--set",
    "encoder.filters=[4, 4]",
    "--set",
    "encoder.pools=[[2, 4], [2, 4]]",
    "--set",
    "encoder.gru_hidden=8",
    "--set",
    "encoder.embedding_dim=16",
    "--set",
    "pretraining.projection={hidden_dim: 16, out_dim: 16}",
    "--set",
    "evaluation.supervised.batch_size=8",
]


@pytest.fixture(scope="module")
def experiment():
    return load_benchmark("gpu_experiment")


@pytest.mark.slow
def test_tiny_run_writes_both_rows_with_finite_numbers(experiment, tmp_path):
    assert experiment.main([*TINY, "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "gpu_experiment_split.csv")
    assert sorted(table["encoder"]) == ["MC-SimCLR", "random init"]
    columns = [c for c in table.columns if c.endswith(("_accuracy", "_azimuth_error"))]
    for protocol in ("linear_probe", "fine_tune"):
        assert {f"{protocol}_accuracy", f"{protocol}_azimuth_error"} <= set(columns)
    assert all(math.isfinite(v) for v in table[columns].to_numpy().ravel())
    report = json.loads((tmp_path / "out" / "gpu_experiment_split.json").read_text())
    assert set(report["timings_s"]) == {"corpus", "simulation", "features", "pretraining", "evaluation", "total"}
    assert report["pretraining"]["clips"] == 4
    assert report["pretraining"]["clips_per_s_wall"] > 0
    assert report["parameters"]["pretraining"]["epochs"] == 1
    assert report["parameters"]["pretraining"]["warmup_epochs"] == 0  # 10 of conf/base, capped at 1 / 4


@pytest.mark.slow
def test_precisions_run_side_by_side_in_one_work_dir(experiment, tmp_path, capsys):
    argv = [*TINY, "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    assert experiment.main([*argv, "--precision", "float32", "bf16"]) == 0
    float32 = json.loads((tmp_path / "out" / "gpu_experiment_split.json").read_text())
    bf16 = json.loads((tmp_path / "out" / "gpu_experiment_split_bf16.json").read_text())
    assert (float32["precision"], bf16["precision"]) == ("float32", "bf16")
    assert bf16["parameters"]["pretraining"]["precision"] == "bf16"
    assert bf16["shards"]["audio"]["skipped"] > 0  # the second run reuses the first one's shards
    assert float32["pretraining"]["final_loss"] != bf16["pretraining"]["final_loss"]
    assert (tmp_path / "work" / "encoder.pt").exists()
    assert (tmp_path / "work" / "encoder_bf16.pt").exists()
    out = capsys.readouterr().out
    assert "Precision compared" in out
    assert "| bf16 " in out
    compared = pd.read_csv(tmp_path / "out" / "gpu_experiment_split_precisions.csv")
    assert list(compared["precision"]) == ["float32", "bf16"]
    assert "linear_probe_accuracy" in compared


@pytest.mark.slow
def test_set_precision_is_the_default_of_precision(experiment, tmp_path):
    argv = [*TINY, "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    assert experiment.main([*argv, "--set", "pretraining.precision=bf16"]) == 0
    assert json.loads((tmp_path / "out" / "gpu_experiment_split_bf16.json").read_text())["precision"] == "bf16"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "one"], "--batch-size"),
        (["--labeled", "1"], "--labeled"),
        (["--encoder", "big"], "--encoder"),
        (["--set", "features.n_mels"], "--set"),
        (["--set", "nothing.here=1"], "--set"),
        (["--precision", "fp16"], "--precision"),
    ],
)
def test_bad_values_name_the_option(experiment, capsys, argv, option):
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(argv)
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_paper_encoder_takes_conf_paper_encoder_and_joint_loss(experiment):
    args = experiment.build_parser().parse_args(["--encoder", "paper", "--device", "cpu"])
    params = experiment.experiment_parameters(args)
    assert params["encoder"]["architecture"] == "crnn"
    assert params["encoder"]["filters"] == [128, 128, 128]
    assert params["encoder"]["kernel_size"] == 5
    assert params["pretraining"]["joint_loss_weight"] > 0
    assert params["pretraining"]["branch_loss_weight"] == 0
    assert params["features"]["hop_length"] == experiment.load_parameters(experiment.CONF)["features"]["hop_length"]


@pytest.mark.slow
def test_script_imports_neither_kedro_nor_mlflow():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('gpu_experiment', {str(SCRIPT)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'kedro', 'kedro_datasets', 'kedro_mlflow', 'mlflow'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
