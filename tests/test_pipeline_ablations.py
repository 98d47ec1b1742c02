"""The ablations pipeline under conf/test: every variant as a nested MLflow run, the paper's tables,
and a resumed sweep that does not redo finished variants."""

import json
import os
import shlex
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from mc_simclr.shards import ShardedAudio
from mc_simclr.sweeps import parse_variants

from conftest import PROJECT_ROOT, conf_parameters, run_pipeline, tracking_uri

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)

# every variant of the sweep (conf/test inherits conf/base's list); table 1's rows come first
SWEEP = parse_variants(conf_parameters("test")["ablations"])
VARIANTS = [variant.name for variant in SWEEP]
TABLE1 = [variant.name for variant in SWEEP if "table1" in variant.tables]
METRICS = [
    "linear_probe_accuracy",
    "linear_probe_azimuth_error",
    "knn_azimuth_error",
    "fine_tune_accuracy",
    "fine_tune_azimuth_error",
]


def _sweep_runs(project, sweep="ablations"):
    mlflow.set_tracking_uri(tracking_uri(project))
    runs = mlflow.search_runs(experiment_names=["mc-simclr-test"], order_by=["start_time ASC"])
    sweeps = runs[runs["tags.mlflow.runName"].str.startswith(f"{sweep} · test · split_crnn · seeds ")]
    return runs, list(sweeps["run_id"])


def test_ablation_sweep(simulated_project):
    run_pipeline(simulated_project, "ablations")

    reporting = simulated_project / "data/08_reporting/ablations"
    one = pd.read_csv(reporting / "table1.csv")
    assert list(one["variant"]) == TABLE1
    assert len(TABLE1) == 7  # the paper's seven rows
    n_test = ShardedAudio(simulated_project / "data/03_primary/spatial_audio").metadata["split"].eq("test").sum()
    accuracies = one[[m for m in METRICS if m.endswith("accuracy")]].to_numpy() * n_test / 100
    np.testing.assert_allclose(accuracies, np.round(accuracies), atol=1e-9)  # whole test clips
    two = pd.read_csv(reporting / "table2.csv")
    assert list(two["channel_drop_p"]) == [0.0, 0.05, 0.1, 0.2]
    assert "| + CS + MU + RRC + CD |" in (reporting / "table1.md").read_text()
    assert "| 0.05 |" in (reporting / "table2.md").read_text()
    assert (reporting / "channel_drop.png").stat().st_size > 1000
    for name in VARIANTS:
        assert (simulated_project / f"data/06_models/ablations/{name}/encoder.pt").is_file()

    runs, sweeps = _sweep_runs(simulated_project)
    assert len(sweeps) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == sweeps[0]].set_index("tags.mlflow.runName")
    assert sorted(children.index) == sorted(VARIANTS)
    assert children.loc["cs_rrc_cd", "params.augmentations"] == "cs+rrc+cd"
    assert children.loc["p_0_2", "params.augmentations.channel_drop.p"] == "0.2"
    assert children.loc["cs_cd", "params.augmentations.mixup.enabled"] == "False"
    assert pd.isna(children.loc["random"].get("params.pretraining.epochs"))  # no pretraining
    for metric in METRICS:  # each variant's nested run holds its row of the tables
        nested = children.loc[list(one["variant"]), f"metrics.evaluation.{metric}"].to_numpy()
        np.testing.assert_allclose(nested, one[metric].to_numpy())
    client = mlflow.tracking.MlflowClient()
    cs = children.loc["cs", "run_id"]
    (cs_seed,) = runs.loc[runs["tags.mlflow.parentRunId"] == cs, "run_id"]  # one nested run per seed
    assert [m.step for m in client.get_metric_history(cs_seed, "pretraining.loss")] == [1]
    assert {a.path for a in client.list_artifacts(cs_seed)} == {"models"}
    assert {a.path for a in client.list_artifacts(cs)} == {"reporting"}
    sweep_artifacts = {a.path for a in client.list_artifacts(sweeps[0], "reporting")}
    assert {"reporting/table1.csv", "reporting/table2.md", "reporting/channel_drop.png"} <= sweep_artifacts
    sweep = runs.set_index("run_id").loc[sweeps[0]]
    assert sweep["metrics.ablations.cs_mu_rrc_cd.fine_tune_accuracy"] == one.loc[6, "fine_tune_accuracy"]

    # An interrupted sweep: one variant lost its evaluation. Re-running redoes only that one.
    work = simulated_project / "data/06_models/ablations"
    (work / "cs" / "seed_0" / "evaluation.json").unlink()
    stamps = {n: (work / n / "seed_0" / "evaluation.json").stat().st_mtime_ns for n in VARIANTS if n != "cs"}
    checkpoints = {
        n: (work / n / "seed_0" / "pretraining_checkpoint.pt").stat().st_mtime_ns for n in VARIANTS if n != "random"
    }
    run_pipeline(simulated_project, "ablations")
    assert {n: (work / n / "seed_0" / "evaluation.json").stat().st_mtime_ns for n in stamps} == stamps
    assert {
        n: (work / n / "seed_0" / "pretraining_checkpoint.pt").stat().st_mtime_ns for n in checkpoints
    } == checkpoints
    assert (work / "cs" / "seed_0" / "evaluation.json").is_file()
    runs, sweeps = _sweep_runs(simulated_project)
    children = runs[runs["tags.mlflow.parentRunId"] == sweeps[-1]].set_index("tags.mlflow.runName")
    assert sorted(children.index) == sorted(VARIANTS)  # the new sweep run lines up every variant again
    seeds = runs[runs["tags.mlflow.parentRunId"].isin(children["run_id"])].set_index("tags.sweep_variant")
    assert seeds.loc["cs", "tags.evaluation_cached"] == "false"
    assert (seeds.drop(index="cs")["tags.evaluation_cached"] == "true").all()
    assert pd.read_csv(reporting / "table1.csv").equals(one)


def _readme_command(prefix: str) -> list[str]:
    """The README's ``kedro run`` line starting with ``prefix``, as arguments (comment removed)."""
    for line in (PROJECT_ROOT / "README.md").read_text().splitlines():
        if line.startswith(prefix):
            return shlex.split(line.split("#")[0])
    raise AssertionError(f"README.md has no line starting with {prefix!r}")


def test_readme_namespaced_variants_from_a_fresh_clone(kedro_project):
    """The README's commands for some variants only, on conf/test in a fresh project folder."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "250"}
    some = _readme_command("kedro run --pipeline=ablations --namespaces=")
    shared = _readme_command("kedro run --pipelines=data_simulation,feature_extraction")

    def kedro(args):
        command = [sys.executable, "-m", "kedro", *args[1:], "--env=test"]
        return subprocess.run(command, cwd=kedro_project, env=env, capture_output=True, text=True, timeout=900)

    first = kedro(some)  # the shared inputs do not exist yet: a clear error that names the command
    assert first.returncode != 0
    output = " ".join((first.stdout + first.stderr).split())  # log lines may wrap
    assert "Run `kedro run --pipelines=data_simulation,feature_extraction` first" in output
    assert kedro(shared).returncode == 0
    done = kedro(some)
    assert done.returncode == 0, done.stderr[-3000:]
    namespaces = next(a for a in some if a.startswith("--namespaces=")).split("=", 1)[1].split(",")
    names = [namespace.split(".", 1)[1] for namespace in namespaces]
    assert names
    assert all(names)
    for name in names:
        assert (kedro_project / f"data/06_models/ablations/{name}/encoder.pt").is_file()
        assert (kedro_project / f"data/08_reporting/ablations/{name}/results.json").is_file()
    assert not (kedro_project / "data/06_models/ablations/cs").exists()  # only the selected variants


def test_seed_study(simulated_project):
    """``kedro run --pipeline=seeds`` on conf/test: two variants x two seeds, mean, spread and intervals,
    and subset fine-tuning (``seeds.subsets``) on the test split."""
    run_pipeline(simulated_project, "seeds", runtime_params={"seeds": {"subsets": {"amounts": [0.5, 1.0]}}})
    reporting = simulated_project / "data/08_reporting/seeds"
    summary = pd.read_csv(reporting / "summary.csv")
    names = ["mc_simclr", "mc_simclr_ft_0_3", "mc_simclr_ft_1_0", "random"]
    assert sorted(summary["variant"].unique()) == names
    assert set(summary["split"]) == {"test", "confirmation"}
    assert (summary["seeds"] == 2).all()
    for column in ("linear_probe_azimuth_error", "linear_probe_keep_accuracy", "linear_probe_recalibrate_accuracy"):
        assert summary[f"{column}_std"].notna().all()
        assert (summary[f"{column}_ci_low"] <= summary[column]).all()
        assert (summary[column] <= summary[f"{column}_ci_high"]).all()
    results = json.loads((reporting / "mc_simclr" / "results.json").read_text())
    per_seed = pd.DataFrame(results["per_seed"])
    assert sorted(per_seed["seed"]) == [0, 1]
    test = summary[(summary["variant"] == "mc_simclr") & (summary["split"] == "test")].iloc[0]
    assert test["fine_tune_azimuth_error"] == pytest.approx(per_seed["fine_tune_azimuth_error"].mean())
    assert test["fine_tune_azimuth_error_std"] == pytest.approx(per_seed["fine_tune_azimuth_error"].std(ddof=1))
    markdown = (reporting / "summary.md").read_text()
    assert "± " in markdown
    # subset fine-tuning: its own columns on test (the full amount is the fine-tuning), none on confirmation
    for column in ("fine_tune_50pct_accuracy", "fine_tune_50pct_azimuth_error"):
        assert test[column] == pytest.approx(per_seed[column].mean())
        assert test[f"{column}_std"] == pytest.approx(per_seed[column].std(ddof=1))
    assert test["fine_tune_100pct_accuracy"] == test["fine_tune_accuracy"]
    confirmation = summary[summary["split"] == "confirmation"]
    assert confirmation["fine_tune_50pct_accuracy"].isna().all()
    assert "| FT 50 % accuracy % | FT 50 % error ° |" in markdown.split("## confirmation")[0]
    assert "FT 50 %" not in markdown.split("## confirmation")[1].split("Cells:")[0]

    # the fine-tuning variants evaluate mc_simclr's encoders: no pretraining of their own, the same
    # linear probe and k-NN, their own fine-tuning
    models = simulated_project / "data/06_models/seeds"
    for name in ("mc_simclr_ft_0_3", "mc_simclr_ft_1_0"):
        assert not list((models / name).glob("**/*.pt"))
        assert (models / name / "seed_1" / "evaluation.json").is_file()
        tuned = pd.DataFrame(json.loads((reporting / name / "results.json").read_text())["per_seed"])
        for column in ("linear_probe_accuracy", "linear_probe_azimuth_error", "knn_azimuth_error"):
            np.testing.assert_array_equal(tuned[column], per_seed[column])
        assert not np.array_equal(tuned["fine_tune_azimuth_error"], per_seed["fine_tune_azimuth_error"])

    runs, sweeps = _sweep_runs(simulated_project, "seeds")
    variants = runs[runs["tags.mlflow.parentRunId"] == sweeps[0]]
    assert sorted(variants["tags.mlflow.runName"]) == names
    assert set(variants.loc[variants["tags.mlflow.runName"] == "mc_simclr_ft_1_0", "params.encoder_from"]) == {
        "mc_simclr"
    }
    seeds = runs[runs["tags.mlflow.parentRunId"].isin(variants["run_id"])]
    assert sorted(seeds["tags.seed"]) == ["0", "0", "0", "0", "1", "1", "1", "1"]
    assert (models / "mc_simclr/seed_1/pretraining_checkpoint.pt").is_file()
