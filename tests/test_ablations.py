"""Ablation variants: validation, parameter blocks, evaluation cache and sweep tables."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mc_simclr.pipelines.ablations.pipeline import create_pipeline
from mc_simclr.pipelines.ablations.variants import variant_names
from mc_simclr.reporting.sweep import sweep_frame, table1, table2, tables_markdown
from mc_simclr.sweeps import (
    RESULT_PROTOCOLS,
    Variant,
    aggregate_seeds,
    clip_records,
    evaluation_fingerprint,
    evaluation_params,
    load_cached,
    parse_seeds,
    parse_subsets,
    parse_variants,
    save_cached,
    seed_blocks,
    variant_blocks,
)
from mc_simclr.utils import deep_merge

from conftest import PROJECT_ROOT

BASE = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_ablations.yml").read_text())["ablations"]
AUGMENTATIONS = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_pretraining.yml").read_text())["augmentations"]


def test_base_variants_are_the_papers_tables():
    variants = {v.name: v for v in parse_variants(BASE)}
    assert [n for n, v in variants.items() if "table1" in v.tables] == [
        "random",
        "no_aug",
        "cs",
        "cs_cd",
        "cs_mu_cd",
        "cs_rrc_cd",
        "cs_mu_rrc_cd",
    ]
    table_2 = sorted((v.channel_drop_p, n) for n, v in variants.items() if "table2" in v.tables)
    assert table_2 == [(0.0, "p_0"), (0.05, "p_0_05"), (0.1, "cs_mu_rrc_cd"), (0.2, "p_0_2")]
    assert not variants["random"].pretrain
    assert variants["no_aug"].augmentations == ()
    assert variants["cs_mu_cd"].augmentations == ("channel_swap", "mixup", "channel_drop")


def test_variant_switches_augmentations_and_channel_drop_p():
    variant = Variant.from_params("x", {"augmentations": ["cs", "random_resized_crop", "cd"], "channel_drop_p": 0.2})
    aug = variant.augmentation_params(AUGMENTATIONS)
    assert {k: aug[k]["enabled"] for k in aug} == {
        "channel_swap": True,
        "mixup": False,
        "random_resized_crop": True,
        "channel_drop": True,
        "diffuse_noise": False,
        "gain": False,
        "spectral_tilt": False,
    }
    assert aug["channel_drop"]["p"] == 0.2
    assert aug["mixup"]["alpha_max"] == AUGMENTATIONS["mixup"]["alpha_max"]
    assert AUGMENTATIONS["mixup"]["enabled"] is True  # the project's block is not modified
    assert variant.settings()["augmentations"] == "cs+rrc+cd"
    noisy = Variant.from_params("y", {"augmentations": ["cs", "mu", "dn", "ga"]})
    assert noisy.settings()["augmentations"] == "cs+mu+dn+ga"
    assert noisy.augmentation_params(AUGMENTATIONS)["diffuse_noise"]["enabled"] is True


def test_variant_blocks_precedence_and_own_checkpoint():
    variant = Variant.from_params(
        "v", {"augmentations": ["cs"], "pretraining": {"epochs": 3}, "encoder": {"gru_hidden": 8}}
    )
    ablations = {"work_dir": "data/06_models/ablations", "pretraining": {"epochs": 30, "batch_size": 16}}
    pre, enc, _ = variant_blocks(
        variant,
        {"epochs": 40, "batch_size": 128, "seed": 0, "split": "unlabeled"},
        {"gru_hidden": 64, "filters": [32]},
        AUGMENTATIONS,
        ablations,
    )
    assert pre == {
        "epochs": 3,
        "batch_size": 16,
        "seed": 0,
        "split": "unlabeled",
        "checkpoint_path": "data/06_models/ablations/v/pretraining_checkpoint.pt",
    }
    assert enc == {"gru_hidden": 8, "filters": [32]}
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"augmentations": ["cs", "flip"]}, "ablations.variants.bad.augmentations: unknown augmentation 'flip'"),
        ({"channel_drop_p": 1.5}, "channel_drop_p: expected a probability"),
        ({"tables": ["table3"]}, "tables: unknown"),
        ({"tables": ["table2"]}, "needs channel_drop_p"),
        ({"pretrain": False, "augmentations": ["cs"]}, "pretrain is false"),
        ({"augmentation": ["cs"]}, "ablations.variants.bad.augmentation"),
        ({"encoder_from": "bad"}, "ablations.variants.bad.encoder_from: expected the name of another variant"),
        (
            {"encoder_from": "cs", "augmentations": ["cs"]},
            "encoder_from reuses the encoders of 'cs', so",
        ),
        ({"evaluation": [1]}, "ablations.variants.bad.evaluation: expected a mapping"),
    ],
)
def test_bad_variants_are_named(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Variant.from_params("bad", params)


def test_a_variant_can_evaluate_another_variants_encoders():
    variants = parse_variants(
        {
            "variants": {
                "ft": {"encoder_from": "full", "evaluation": {"supervised": {"encoder_grad_scale": 1.0}}},
                "full": {"augmentations": ["cs", "cd"], "channel_drop_p": 0.2},
                "random": {"pretrain": False},
            }
        }
    )
    ft, full, _ = variants
    # it describes the encoders it evaluates, and only its evaluation differs
    assert (ft.pretrain, ft.augmentations, ft.channel_drop_p) == (full.pretrain, full.augmentations, 0.2)
    assert ft.settings()["encoder_from"] == "full"
    assert full.settings()["encoder_from"] == ""
    assert ft.settings()["evaluation"] == "evaluation.supervised.encoder_grad_scale=1.0"
    evaluation = {"batchnorm": "keep", "supervised": {"encoder_grad_scale": 0.1, "finetune_epochs": 60}}
    sweep = {"evaluation": {"supervised": {"finetune_epochs": 40}}}
    assert evaluation_params(evaluation, sweep, ft)["supervised"] == {"encoder_grad_scale": 1.0, "finetune_epochs": 40}
    assert evaluation_params(evaluation, sweep, full)["supervised"] == {
        "encoder_grad_scale": 0.1,
        "finetune_epochs": 40,
    }
    assert evaluation_params(evaluation, sweep) == evaluation_params(evaluation, sweep, full)
    # a random-init source passes its pretrain flag on (fine-tuning from scratch stays at full rate)
    assert parse_variants({"variants": {"r": {"pretrain": False}, "f": {"encoder_from": "r"}}})[1].pretrain is False
    for missing in ("nowhere", "ft"):  # not a variant, or one that reuses encoders itself
        with pytest.raises(ValueError, match=f"variants.x.encoder_from: '{missing}' is not a variant"):
            parse_variants({"variants": {"ft": {"encoder_from": "full"}, "full": {}, "x": {"encoder_from": missing}}})


def test_variant_list_must_not_be_empty():
    with pytest.raises(ValueError, match="ablations.variants"):
        parse_variants({"variants": {}})
    with pytest.raises(ValueError, match="identifier"):
        parse_variants({"variants": {"a-b": {}}})


def test_evaluation_cache_is_atomic_and_fingerprinted(tmp_path):
    path = tmp_path / "v" / "evaluation.json"
    key = evaluation_fingerprint("enc", {"supervised": {"lr": 0.01}})
    assert key != evaluation_fingerprint("enc", {"supervised": {"lr": 0.02}})
    save_cached(path, {"fingerprint": key, "metrics": {"a": 1.0}})
    assert load_cached(path, key)["metrics"] == {"a": 1.0}
    assert load_cached(path, "other") is None
    assert [p.name for p in path.parent.iterdir()] == ["evaluation.json"]  # no temp file left
    path.write_text("{half")
    assert load_cached(path, key) is None


def _result(name, tables, p, offset):
    metrics = {m: 50.0 + offset for m in ("linear_probe_accuracy", "knn_accuracy", "fine_tune_accuracy")}
    metrics |= {
        m: 20.0 - offset for m in ("linear_probe_azimuth_error", "knn_azimuth_error", "fine_tune_azimuth_error")
    }
    metrics |= {f"{m}_std": 1.0 for m in list(metrics)} | {f"{m}_ci_low": 0.0 for m in metrics}
    metrics |= {f"{m}_ci_high": 99.0 for m in metrics if not m.endswith(("_std", "_ci_low"))}
    settings = {"label": name.upper(), "pretrain": True, "augmentations": "cs", "channel_drop_p": p, "tables": tables}
    return {
        "variant": name,
        "settings": settings,
        "seeds": [0, 1],
        "splits": {"test": metrics},
        "wall_s": {"pretraining": 1.0, "evaluation": 2.0},
    }


def test_sweep_tables_have_the_papers_shape():
    frame = sweep_frame(
        [_result("a", "table1", 0.0, 0), _result("b", "table1,table2", 0.1, 1), _result("c", "table2", 0.05, 2)]
    )
    one, two = table1(frame), table2(frame)
    assert list(one["variant"]) == ["a", "b"]
    assert list(two["variant"]) == ["c", "b"]  # sorted by p
    assert list(two["channel_drop_p"]) == [0.05, 0.1]
    md_1, md_2 = tables_markdown(one, two, "T", knn_k=7)
    assert "| 7-NN accuracy % | 7-NN error ° |" in md_1
    assert "| 7-NN accuracy % |" in md_2
    assert "| A | 2 | 50.0 ± 1.0 (0.0-99.0) | 20.0 ± 1.0 (0.0-99.0) |" in md_1
    assert "| 0.05 | 2 | 52.0 ± 1.0 (0.0-99.0) | 18.0 ± 1.0 (0.0-99.0) |" in md_2
    assert frame.loc[0, "evaluation_s"] == 2.0


def test_one_namespace_per_variant(tmp_path):
    pipeline = create_pipeline(variants=["random", "cs"])
    namespaces = {n.namespace for n in pipeline.nodes if n.namespace}
    assert {"ablations.random", "ablations.cs", "ablations"} <= namespaces
    outputs = pipeline.all_outputs()
    assert {"ablations.cs.encoder", "ablations.cs.results", "ablations.table1", "feature_patches"} <= outputs
    assert "params:ablations" in pipeline.inputs()
    assert "params:ablations.cs.pretraining" not in pipeline.inputs()
    # a variant with encoder_from evaluates the other variant's encoders and trains none
    reusing = create_pipeline(variants={"cs": None, "ft": "cs"})
    ft = [node for node in reusing.nodes if node.namespace == "ablations.ft"]
    assert [node.name for node in ft] == ["ablations.ft.evaluate_variant"]
    assert "ablations.cs.encoder" in ft[0].inputs
    assert "ablations.ft.encoder" not in reusing.datasets()
    # the shared inputs are not namespaced, so simulation and features run once
    assert not any(
        d.startswith("ablations.") and d.endswith(("spatial_audio", "feature_patches")) for d in pipeline.datasets()
    )


def test_variant_names_follow_the_yaml(tmp_path):
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.kedro]\npackage_name = "mc_simclr"\nproject_name = "x"\nkedro_init_version = "1.7.0"\n'
    )
    (conf / "base" / "parameters_ablations.yml").write_text(
        json.dumps({"ablations": {"variants": {"random": {"pretrain": False}}}})
    )
    assert variant_names(tmp_path, "local") == ["random"]
    (conf / "local" / "parameters_ablations.yml").write_text(
        json.dumps({"ablations": {"variants": {"mine": {"augmentations": ["cs"]}}}})
    )
    assert variant_names(tmp_path, "local") == ["random", "mine"]  # a user adds one in YAML only


@pytest.mark.parametrize(
    "seeds, message",
    [([], "non-empty list"), ([0, 1, 0], r"seed\(s\) \[0\] listed more than once"), ("0,1", "list of integer")],
)
def test_seed_lists_are_checked(seeds, message):
    with pytest.raises(ValueError, match=f"seeds.seeds: .*{message}"):
        parse_seeds({"seeds": seeds}, "seeds")
    assert parse_seeds({"seeds": [2, 0]}, "seeds") == [2, 0]
    assert parse_seeds({}, "ablations") == [0]


def test_seed_blocks_give_each_seed_its_checkpoint():
    block = seed_blocks({"epochs": 3, "seed": 0}, 2, "data/06_models/seeds", "mc_simclr")
    assert block == {
        "epochs": 3,
        "seed": 2,
        "checkpoint_path": "data/06_models/seeds/mc_simclr/seed_2/pretraining_checkpoint.pt",
    }


def test_aggregate_over_seeds_matches_its_parts():
    variant = Variant.from_params("v", {"augmentations": ["cs"]})

    def seed_result(seed, errors):
        clips = pd.DataFrame(
            {
                "clip_id": ["a", "b", "c", "d"],
                "class_index": [0, 1, 0, 1],
                "pred_class": [0, 1, 1, 1],
                "azimuth_deg": [0.0, 0.0, 0.0, 0.0],
                "pred_azimuth": errors,
            }
        )
        records = clip_records(clips)
        metrics = {f"{p}_accuracy": 75.0 for p in RESULT_PROTOCOLS}
        metrics |= {f"{p}_azimuth_error": float(np.mean(errors)) for p in RESULT_PROTOCOLS}
        split = {"metrics": metrics, "clips": {p: records for p in RESULT_PROTOCOLS}}
        return {
            "seed": seed,
            "splits": {"test": split},
            "validation": {},
            "wall_s": {"pretraining": 1, "evaluation": 1},
        }

    result = aggregate_seeds(variant, [seed_result(0, [10.0, 10.0, 10.0, 10.0]), seed_result(1, [20.0, 20, 20, 20])])
    metrics = result["metrics"]
    assert metrics["knn_azimuth_error"] == 15.0
    assert metrics["knn_azimuth_error_std"] == pytest.approx(np.sqrt(50))
    assert metrics["knn_azimuth_error_ci_low"] == metrics["knn_azimuth_error_ci_high"] == 15.0  # no spread over clips
    assert metrics["knn_accuracy"] == 75.0
    assert metrics["knn_accuracy_ci_low"] < 75.0 < metrics["knn_accuracy_ci_high"]
    assert result["seeds"] == [0, 1]
    assert result["wall_s"] == {"pretraining": 2.0, "evaluation": 2.0}


@pytest.mark.parametrize(
    "subsets, message",
    [
        ({"amounts": [0.25, 1.5]}, r"seeds.subsets.amounts: \[1.5\] out of range; expected fractions in \(0, 1\]"),
        ({"amounts": [0.0], "unit": "hours"}, r"seeds.subsets.amounts: \[0.0\] out of range; expected hours > 0"),
        ({"amounts": [0.5, 0.5]}, "more than once"),
        ({"amounts": "0.5"}, "expected a list of numbers"),
        ({"amounts": [0.5], "unit": "clips"}, "seeds.subsets.unit: expected one of"),
        ({"amounts": [0.5], "seeds": 1}, "seeds.subsets"),
    ],
)
def test_sweep_subsets_are_checked(subsets, message):
    with pytest.raises(ValueError, match=message):
        parse_subsets({"subsets": subsets}, "seeds")
    assert parse_subsets({}, "seeds") == ([], "fraction", 0)
    assert parse_subsets({"subsets": {"amounts": [0.25, 1], "seed": 3}}, "seeds") == ([0.25, 1.0], "fraction", 3)
