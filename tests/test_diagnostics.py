"""The diagnostics of docs/experiments/hard.md on made-up numbers with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.diagnostics import (
    band_labels,
    constant_errors,
    elevation_spread,
    elevation_symmetries,
    instance_accuracy,
    level_db,
    linear_r2,
    noisy_views,
    scores_by_band,
)

from conftest import PROJECT_ROOT, conf_parameters, run_pipeline


def test_bands_are_half_open_but_the_last_holds_its_upper_edge():
    labels = band_labels(np.array([0.0, 4.99, 5.0, 9.9, 10.0, 20.0, 20.5, -1.0]))
    assert list(labels) == ["0-5 dB", "0-5 dB", "5-10 dB", "5-10 dB", "10-20 dB", "10-20 dB", "", ""]


def test_scores_by_band_count_and_score_each_band():
    clips = pd.DataFrame(
        {
            "class_index": [0, 1, 0, 1],
            "pred_class": [0, 0, 0, 1],
            "azimuth_deg": [0.0, 0.0, 90.0, 90.0],
            "pred_azimuth": [10.0, 30.0, 90.0, 80.0],
            "noise_snr_db": [1.0, 2.0, 15.0, 12.0],
        }
    )
    table = scores_by_band(clips).set_index("band")
    assert table.loc["0-5 dB", "clips"] == 2
    assert table.loc["0-5 dB", "accuracy"] == pytest.approx(50.0)
    assert table.loc["0-5 dB", "azimuth_error"] == pytest.approx(20.0)
    assert table.loc["10-20 dB", "azimuth_error"] == pytest.approx(5.0)
    assert "5-10 dB" not in table.index  # no clip in it
    assert table.loc["all", "clips"] == 4
    with pytest.raises(ValueError, match="no 'rt' column"):
        scores_by_band(clips, column="rt")


def test_linear_r2_is_one_for_a_linear_target_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((400, 8)), rng.standard_normal((200, 8))
    w = rng.standard_normal(8)
    assert linear_r2(x, x @ w + 3, xt, xt @ w + 3, ridge=1e-8) == pytest.approx(1.0, abs=1e-6)
    assert abs(linear_r2(x, rng.standard_normal(400), xt, rng.standard_normal(200))) < 0.1
    with pytest.raises(ValueError, match="as many rows"):
        linear_r2(x, w, xt, xt @ w)


def test_level_is_decibels_of_the_rms():
    assert level_db(np.full((4, 100), 0.1)) == pytest.approx(-20.0)
    assert level_db(np.zeros((4, 100))) == pytest.approx(-240.0)


def test_half_the_mic_format_symmetries_negate_elevation():
    table = elevation_symmetries(ArraySymmetries.of(ArrayGeometry.from_params({"kind": "tetrahedral"})))
    assert len(table) == 8
    assert table["elevation"].value_counts().to_dict() == {"keeps": 4, "negates": 4}
    assert table.loc[0, "elevation"] == "keeps"  # the identity
    square = elevation_symmetries(ArraySymmetries.of(4))
    assert set(square["elevation"]) == {"keeps"}


def test_elevation_spread_of_the_papers_scenes_is_centred_on_the_horizon():
    spread = elevation_spread(SceneConfig(array=ArrayGeometry.from_params({"kind": "tetrahedral"})), n=500)
    assert abs(spread["mean"]) < 3.0
    assert spread["p5"] < -20.0
    assert spread["p95"] > 20.0
    assert spread["constant_mae"] > 5.0


def test_the_script_refuses_an_unknown_environment_and_missing_data(capsys, tmp_path):
    script = load_script()
    with pytest.raises(SystemExit):
        script.main(["--env", "nowhere"])
    assert "no folder conf/nowhere" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--env", "test", "--data-root", str(tmp_path)])
    assert "run `kedro run --env=test --pipelines=data_simulation,feature_extraction,pretraining` first" in (
        capsys.readouterr().err.replace("\n", " ")
    )


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("diagnose_hard", PROJECT_ROOT / "scripts" / "diagnose_hard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_writes_the_elevation_diagnostic_of_an_environment(tmp_path, capsys):
    assert load_script().main(["--env", "tetra", "--elevation", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "elevation.md").read_text()
    assert text.count("| negates |") == 4
    assert "constant_mae" in text


def test_instance_accuracy_counts_views_whose_nearest_other_view_is_their_pair():
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((6, 8))
    assert instance_accuracy(z1, z1 + 1e-3 * rng.standard_normal((6, 8))) == 1.0
    # pair 0's second view is pair 1's first: views 0, 6 (pair 0) and 1 (pair 1) find another pair
    z2 = z1 + 1e-3 * rng.standard_normal((6, 8))
    z2[0] = z1[1]
    assert instance_accuracy(z1, z2) == pytest.approx(9 / 12)
    assert instance_accuracy(z1, 3.0 * z1) == 1.0  # cosine: the scale does not matter
    with pytest.raises(ValueError, match="instance_accuracy"):
        instance_accuracy(z1, z1[:5])


def test_noisy_views_swap_the_noise_and_keep_or_swap_the_snr():
    rng = np.random.default_rng(1)
    clean = rng.standard_normal((4, 1000))
    noise, other = rng.standard_normal((4, 1000)), rng.standard_normal((4, 300))
    views = noisy_views(clean, noise, 10.0, other, 0.0)
    assert set(views) == {"shared", "other noise", "other noise and SNR", "clean"}
    first, second = views["shared"]
    assert np.array_equal(first, second)
    for condition in ("other noise", "other noise and SNR"):
        assert np.array_equal(views[condition][0], first)  # view 1 is always the clip as rendered
    power = np.mean(clean**2)
    added = views["other noise"][1] - clean
    assert np.allclose(added[:, 300:600], added[:, :300])  # the shorter noise is repeated
    assert 10 * np.log10(power / np.mean((first - clean) ** 2)) == pytest.approx(
        10.0 - 10 * np.log10(np.mean(noise**2))
    )
    gain_10, gain_0 = np.sqrt(power / 10.0), np.sqrt(power)
    assert np.allclose(views["other noise"][1] - clean, gain_10 * np.tile(other, (1, 4))[:, :1000])
    assert np.allclose(views["other noise and SNR"][1] - clean, gain_0 * np.tile(other, (1, 4))[:, :1000])
    assert np.array_equal(views["clean"][0], clean)
    with pytest.raises(ValueError, match="noisy_views"):
        noisy_views(clean, noise[:3], 10.0, other, 0.0)


@pytest.mark.slow
def test_the_noise_swap_rebuilds_the_rendered_clips_and_scores_every_condition(kedro_project, tmp_path):
    import torch

    from mc_simclr.features import FeatureExtractor
    from mc_simclr.model_files import package_encoder
    from mc_simclr.networks import EncoderConfig, build_encoder

    noise = {"simulation": {"noise": {"enabled": True, "snr_db": [0.0, 20.0]}}}
    run_pipeline(kedro_project, "data_simulation", runtime_params=noise)
    params = conf_parameters("test")
    params["simulation"]["noise"] = noise["simulation"]["noise"]
    extractor = FeatureExtractor.from_params(params["features"], int(params["audio"]["sample_rate"]))
    encoder = build_encoder(EncoderConfig.from_params(params["encoder"]).for_array(4), extractor.n_mels)
    path = tmp_path / "encoder.pt"
    torch.save(package_encoder(encoder, extractor, params["features"]), path)
    script, out = load_script(), tmp_path / "out"
    assert script.noise_swap(params, kedro_project / "data", {"mine": path}, out, 1, "test") == 0
    table = pd.read_csv(out / "noise_swap.csv")
    assert set(table["encoder"]) == {"mine", "random init"}
    assert set(table["second view"]) == {"shared", "other noise", "other noise and SNR", "clean"}
    assert table["accuracy"].between(0.0, 1.0).all()
    assert "chance" in (out / "noise_swap.md").read_text()
    params["simulation"]["seed"] += 1  # other noise than the shards hold: refused, not scored
    with pytest.raises(SystemExit, match="does not match the rendered shard"):
        script.noise_swap(params, kedro_project / "data", {"mine": path}, tmp_path / "other", 1, "test")


def test_the_constant_predictor_is_the_labeled_median_scored_per_clip():
    items = pd.DataFrame(
        {
            "clip_id": ["a", "a", "b", "c", "d", "e"],  # patches: clip a twice, counted once
            "split": ["labeled", "labeled", "labeled", "labeled", "test", "test"],
            "elevation_deg": [10.0, 10.0, -20.0, 4.0, 0.0, 14.0],
        }
    )
    table = constant_errors(items).set_index("split")
    assert table.loc["labeled", "constant"] == 4.0
    assert table.loc["labeled", "clips"] == 3
    assert table.loc["labeled", "mae"] == pytest.approx((6.0 + 24.0 + 0.0) / 3)
    assert table.loc["test", "mae"] == pytest.approx((4.0 + 10.0) / 2)
    with pytest.raises(ValueError, match="no 'labeled' clips"):
        constant_errors(items[items["split"] == "test"])
    with pytest.raises(ValueError, match="elevation_deg"):
        constant_errors(items.drop(columns="elevation_deg"))
