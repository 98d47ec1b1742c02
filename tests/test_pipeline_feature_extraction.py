"""The feature_extraction pipeline under conf/test reads the simulated shards and writes patches."""

import json

import numpy as np
import pandas as pd
import pytest

from mc_simclr.shards import FeatureShards

from conftest import run_pipeline

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)


def test_feature_extraction_run(simulated_project):
    run_pipeline(simulated_project, "feature_extraction")

    classes = json.loads((simulated_project / "data/04_feature/class_names.json").read_text())
    meta = pd.read_parquet(simulated_project / "data/03_primary/spatial_metadata.parquet")
    assert classes == sorted(meta.loc[meta["split"] == "labeled", "label"].unique())

    store = FeatureShards(simulated_project / "data/04_feature/patches")
    items = store.items
    assert set(items["split"]) == {"labeled", "validation", "test", "confirmation"}
    assert set(items["clip_id"]) == set(meta.loc[meta["split"] != "unlabeled", "clip_id"])
    assert items.groupby("clip_id")["patch"].count().max() <= 2
    features, rows = store.load(items["split"] == "test")
    assert features.shape[1:] == (10, 51, 32)  # conf/test: 32 Mel bands and GCC lags
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    assert len(rows) == len(features) == (items["split"] == "test").sum()

    # labels and directions travel with every patch
    merged = rows.merge(meta[["clip_id", "azimuth_deg", "label"]], on="clip_id", suffixes=("", "_meta"))
    assert np.allclose(merged["azimuth_deg"], merged["azimuth_deg_meta"])
    known = merged["label"].isin(classes)
    assert (merged.loc[known, "class_index"] == [classes.index(v) for v in merged.loc[known, "label"]]).all()
    assert (merged.loc[~known, "class_index"] == -1).all()

    index = pd.read_parquet(simulated_project / "data/04_feature/feature_index.parquet")
    assert len(index) == len(items)
