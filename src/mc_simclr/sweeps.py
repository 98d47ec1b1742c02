"""Sweeps of MC-SimCLR variants over pretraining seeds: the paper's ablation tables and the seed study.

A *sweep* is a parameter block (``ablations``: the paper's Table 1 and Table 2; ``seeds``: the
default configuration and random init over several seeds) with a list of ``seeds`` and named
*variants*. A variant is a change to the pretraining configuration: which of the four
augmentations are on (ChannelSwap ``cs``, Mixup ``mu``, RandomResizedCrop ``rrc``, ChannelDrop
``cd``), the ChannelDrop probability, optional overrides of the ``pretraining`` / ``encoder``
blocks, or no pretraining at all (``pretrain: false``, the random-init baseline). Every variant is
pretrained and evaluated once per seed.

This module validates variants, turns one into the parameter blocks that
:func:`~mc_simclr.pretraining.pretrain_from_params` takes, evaluates a variant's encoders with a cache
keyed by fingerprint (so an interrupted sweep resumes without redoing finished seeds), aggregates
the seeds (mean and standard deviation over seeds, and a 95 % bootstrap interval over test clips of
the seed mean). The sweep's tables and plot are :mod:`mc_simclr.reporting.sweep`'s. Kedro- and
MLflow-free: the pipelines log to MLflow.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.augment import AUGMENTATIONS, SHORT_NAMES
from mc_simclr.evaluation import (
    BATCHNORM_MODES,
    PROTOCOLS,
    SupervisedConfig,
    batchnorm_mode,
    load_splits,
    probe_key,
    run_protocols,
)
from mc_simclr.evaluation import parse_subsets as parse_subsets_block
from mc_simclr.metrics import LOCATION_METRICS, bootstrap_interval, clip_scores, location_metrics
from mc_simclr.model_files import encoder_geometry, unpack_encoder
from mc_simclr.params import check_keys
from mc_simclr.utils import deep_merge, fingerprint, flatten, write_text_atomic

TABLES = ("table1", "table2")
VARIANT_KEYS = {
    "label",
    "pretrain",
    "augmentations",
    "channel_drop_p",
    "tables",
    "pretraining",
    "encoder",
    "evaluation",
    "encoder_from",
}
#: Keys of a variant that change its encoders, meaningless for one that reuses another's (``encoder_from``).
PRETRAINING_KEYS = ("pretrain", "augmentations", "channel_drop_p", "pretraining", "encoder")
SWEEP_KEYS = {"title", "work_dir", "seeds", "pretraining", "evaluation", "variants", "subsets"}
#: Protocols of every variant's results: the paper's three, and the linear probe under both
#: BatchNorm protocols (``linear_probe`` is the one ``evaluation.batchnorm`` chose).
RESULT_PROTOCOLS = (*PROTOCOLS, *(probe_key(mode) for mode in BATCHNORM_MODES))
# the columns of reporting.results_table, in its order (the paper's array; an array that resolves
# elevation adds elevation and angular errors, a linear array has axis-angle errors: present_columns)
METRIC_COLUMNS = tuple(f"{p}_{m}" for p in PROTOCOLS for m in ("accuracy", "azimuth_error"))
RESULT_COLUMNS = tuple(f"{p}_{m}" for p in RESULT_PROTOCOLS for m in ("accuracy", "azimuth_error"))
#: Clip columns kept per seed for the bootstrap intervals of the aggregate (those a table has of
#: LOCATION_COLUMNS are kept too).
CLIP_COLUMNS = ("clip_id", "class_index", "pred_class", "azimuth_deg", "pred_azimuth")
LOCATION_COLUMNS = ("elevation_deg", "pred_elevation", "axis_angle_deg", "pred_axis_angle")


def present_columns(protocols: tuple[str, ...], columns) -> tuple[str, ...]:
    """``<protocol>_<metric>`` columns of a sweep frame, protocol by protocol in table order."""
    names = set(columns)
    metrics = ("accuracy", *LOCATION_METRICS)
    return tuple(f"{p}_{m}" for p in protocols for m in metrics if f"{p}_{m}" in names)


@dataclass(frozen=True)
class Variant:
    """One row of an ablation table."""

    name: str
    label: str
    pretrain: bool = True
    augmentations: tuple[str, ...] = ()
    channel_drop_p: float | None = None
    tables: tuple[str, ...] = ("table1",)
    pretraining: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # overrides of the evaluation block
    encoder_from: str | None = None  # evaluate that variant's encoders instead of pretraining its own

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any] | None, sweep: str = "ablations") -> Variant:
        where = f"{sweep}.variants.{name}"
        if not name.isidentifier():
            raise ValueError(f"{where}: a variant name must be a Python identifier (letters, digits, _), got {name!r}")
        params = dict(params or {})
        check_keys(params, VARIANT_KEYS, where)
        augmentations = []
        for item in params.get("augmentations", []) or []:
            full = SHORT_NAMES.get(item, item)
            if full not in AUGMENTATIONS:
                raise ValueError(
                    f"{where}.augmentations: unknown augmentation {item!r}; expected any of "
                    f"{sorted(SHORT_NAMES)} or {list(AUGMENTATIONS)}"
                )
            augmentations.append(full)
        tables = tuple(params.get("tables", ["table1"]) or [])
        unknown = [t for t in tables if t not in TABLES]
        if unknown:
            raise ValueError(f"{where}.tables: unknown {unknown}; expected any of {list(TABLES)}")
        p = params.get("channel_drop_p")
        if p is not None and not (isinstance(p, (int, float)) and 0.0 <= float(p) < 1.0):
            raise ValueError(f"{where}.channel_drop_p: expected a probability in [0, 1), got {p!r}")
        if "table2" in tables and p is None:
            raise ValueError(f"{where}: a Table 2 variant needs channel_drop_p (its x value)")
        pretrain = bool(params.get("pretrain", True))
        if not pretrain and (augmentations or params.get("pretraining")):
            raise ValueError(f"{where}: pretrain is false, so augmentations and pretraining overrides mean nothing")
        for block in ("pretraining", "encoder", "evaluation"):
            if not isinstance(params.get(block, {}) or {}, dict):
                raise ValueError(f"{where}.{block}: expected a mapping of overrides, got {params[block]!r}")
        source = params.get("encoder_from")
        if source is not None:
            if not isinstance(source, str) or source == name:
                raise ValueError(f"{where}.encoder_from: expected the name of another variant, got {source!r}")
            mixed = [key for key in PRETRAINING_KEYS if key in params]
            if mixed:
                raise ValueError(
                    f"{where}: encoder_from reuses the encoders of {source!r}, so {mixed} mean nothing here; "
                    "a variant with encoder_from changes only the evaluation"
                )
        return cls(
            name=name,
            label=str(params.get("label", name)),
            pretrain=pretrain,
            augmentations=tuple(dict.fromkeys(augmentations)),
            channel_drop_p=None if p is None else float(p),
            tables=tables,
            pretraining=dict(params.get("pretraining", {}) or {}),
            encoder=dict(params.get("encoder", {}) or {}),
            evaluation=dict(params.get("evaluation", {}) or {}),
            encoder_from=source,
        )

    def reusing(self, source: Variant) -> Variant:
        """This variant (``encoder_from`` = ``source.name``) with the source's pretraining settings, so that
        its rows describe the encoders it evaluates."""
        return dataclasses.replace(
            self,
            pretrain=source.pretrain,
            augmentations=source.augmentations,
            channel_drop_p=source.channel_drop_p,
            pretraining=source.pretraining,
            encoder=source.encoder,
        )

    def augmentation_params(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (the ``augmentations`` block) with each augmentation switched on or off."""
        out = copy.deepcopy(dict(base))
        for name in AUGMENTATIONS:
            out.setdefault(name, {})
            out[name] = dict(out[name] or {}, enabled=name in self.augmentations)
        if self.channel_drop_p is not None:
            out["channel_drop"]["p"] = self.channel_drop_p
        return out

    def settings(self) -> dict[str, Any]:
        """Flat description for MLflow parameters and the tables."""
        return {
            "label": self.label,
            "pretrain": self.pretrain,
            "augmentations": "+".join(k for k, v in SHORT_NAMES.items() if v in self.augmentations) or "none",
            "channel_drop_p": self.channel_drop_p if "channel_drop" in self.augmentations else 0.0,
            "tables": ",".join(self.tables),
            "encoder_from": self.encoder_from or "",
            "evaluation": ", ".join(f"{k}={v}" for k, v in flatten("evaluation", self.evaluation).items()),
        }


def parse_variants(block: dict[str, Any], sweep: str = "ablations") -> list[Variant]:
    """The variants of a sweep's parameter block (``ablations`` or ``seeds``), in their YAML order."""
    variants = (block or {}).get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"{sweep}.variants: expected a non-empty mapping of variant name -> settings")
    parsed = {str(name): Variant.from_params(str(name), params, sweep) for name, params in variants.items()}
    for name, variant in parsed.items():
        source = parsed.get(variant.encoder_from) if variant.encoder_from else None
        if variant.encoder_from and (source is None or source.encoder_from):
            trained = sorted(n for n, v in parsed.items() if not v.encoder_from)
            raise ValueError(
                f"{sweep}.variants.{name}.encoder_from: {variant.encoder_from!r} is not a variant of this sweep "
                f"that trains its own encoders; expected one of {trained}"
            )
        if source is not None:
            parsed[name] = variant.reusing(source)
    return list(parsed.values())


def parse_seeds(block: dict[str, Any], sweep: str = "ablations") -> list[int]:
    """The pretraining seeds of a sweep (``<sweep>.seeds``): a non-empty list of distinct integers."""
    seeds = (block or {}).get("seeds", [0])
    if (
        not isinstance(seeds, (list, tuple))
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ValueError(f"{sweep}.seeds: expected a non-empty list of integer seeds, got {seeds!r}")
    duplicated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if duplicated:
        raise ValueError(f"{sweep}.seeds: seed(s) {duplicated} listed more than once; each seed is one run")
    return [int(s) for s in seeds]


def parse_subsets(block: dict[str, Any], sweep: str = "ablations") -> tuple[list[float], str, int]:
    """Subset fine-tuning of a sweep (``<sweep>.subsets``, as ``evaluation.subsets``): the amounts of
    labeled data (none by default), the unit and the subset seed."""
    return parse_subsets_block((block or {}).get("subsets") or {}, f"{sweep}.subsets")


def subset_protocol(amount: float, unit: str) -> str:
    """The result key of subset fine-tuning on ``amount`` (``fine_tune_25pct``, ``fine_tune_0.5h``)."""
    return f"fine_tune_{amount * 100:g}pct" if unit == "fraction" else f"fine_tune_{amount:g}h"


def check_sweep(block: dict[str, Any], sweep: str = "ablations") -> None:
    """Check a sweep's parameter block: known keys, seeds, variants, subsets."""
    check_keys(block or {}, SWEEP_KEYS, sweep)
    parse_seeds(block, sweep)
    parse_variants(block, sweep)
    parse_subsets(block, sweep)


def variant_blocks(
    variant: Variant,
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    ablations: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ``pretraining``, ``encoder`` and ``augmentations`` blocks of one variant.

    Order of precedence: the project's blocks < ``<sweep>.pretraining`` (shared by every variant)
    < the variant's own overrides. Each variant checkpoints under ``<sweep>.work_dir/<name>/`` (one
    folder per seed, :func:`seed_blocks`) so that its training resumes on its own.
    """
    pre = deep_merge(deep_merge(pretraining, ablations.get("pretraining", {}) or {}), variant.pretraining)
    pre["checkpoint_path"] = str(Path(ablations["work_dir"]) / variant.name / "pretraining_checkpoint.pt")
    enc = deep_merge(encoder, variant.encoder)
    return pre, enc, variant.augmentation_params(augmentations)


def seed_blocks(pretraining: dict[str, Any], seed: int, work_dir: str | Path, name: str) -> dict[str, Any]:
    """A variant's ``pretraining`` block for one seed: that seed and its own checkpoint."""
    folder = Path(work_dir) / name / f"seed_{seed}"
    return {**pretraining, "seed": int(seed), "checkpoint_path": str(folder / "pretraining_checkpoint.pt")}


# --------------------------------------------------------------------------------------------
# Evaluation cache: one JSON per variant, valid while its fingerprint matches
# --------------------------------------------------------------------------------------------
def cache_path(ablations: dict[str, Any], name: str, seed: int) -> Path:
    return Path(ablations["work_dir"]) / name / f"seed_{seed}" / "evaluation.json"


def evaluation_fingerprint(encoder_fingerprint: str, inputs: dict[str, Any]) -> str:
    """Digest of what an evaluation depends on: the encoder, the settings and the data."""
    return fingerprint({"encoder": encoder_fingerprint, "inputs": inputs})


def load_cached(path: Path, expected: str) -> dict[str, Any] | None:
    """The cached result at ``path`` if its fingerprint is ``expected``, else None."""
    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return cached if cached.get("fingerprint") == expected else None


def save_cached(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` atomically (temp name, then rename)."""
    write_text_atomic(path, json.dumps(result, indent=2, sort_keys=True))


def evaluation_params(
    evaluation: dict[str, Any], ablations: dict[str, Any], variant: Variant | None = None
) -> dict[str, Any]:
    """The ``evaluation`` block with ``<sweep>.evaluation`` (shorter schedules), then the variant's own
    ``evaluation`` overrides merged over it."""
    merged = deep_merge(evaluation, ablations.get("evaluation", {}) or {})
    return deep_merge(merged, variant.evaluation) if variant is not None else merged


def clip_records(clips: pd.DataFrame) -> dict[str, list[Any]]:
    """Clip predictions as JSON-friendly columns (NaN as None), for the bootstrap of the aggregate."""
    columns = [c for c in (*CLIP_COLUMNS, *LOCATION_COLUMNS) if c in clips]
    return {c: [None if isinstance(v, float) and math.isnan(v) else v for v in clips[c].tolist()] for c in columns}


def clip_frame(records: dict[str, list[Any]]) -> pd.DataFrame:
    """Inverse of :func:`clip_records`."""
    frame = pd.DataFrame(records)
    floats = [c for c in ("pred_class", "pred_azimuth", "azimuth_deg", *LOCATION_COLUMNS) if c in frame]
    return frame.astype(dict.fromkeys(floats, float))


def evaluate_seed(
    variant: Variant,
    encoder_state: dict[str, Any],
    seed: int,
    feature_patches,
    class_names: list[str],
    evaluation: dict[str, Any],
    ablations: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    """Linear probing (both BatchNorm protocols), k-NN, fine-tuning and subset fine-tuning
    (``<sweep>.subsets``) of one seed's encoder, or its cached result.

    Returns the result (per split ``test``/``confirmation``: metrics and clip predictions of every
    protocol of :data:`RESULT_PROTOCOLS`, and on ``test`` of each subset's fine-tuning under
    :func:`subset_protocol`; validation scores; wall times; fingerprint) and whether it came from the
    cache (same encoder, settings and data).
    """
    params = evaluation_params(evaluation, ablations, variant)
    amounts, unit, subset_seed = parse_subsets(ablations)
    inputs = {
        "supervised": params["supervised"],
        "batchnorm": batchnorm_mode(params),
        "feature_shards": sorted(feature_patches.shard_ids),
        "classes": list(class_names),
    }
    if amounts:  # absent without subsets, so that results cached before subsets existed stay valid
        inputs["subsets"] = {"amounts": amounts, "unit": unit, "seed": subset_seed}
    expected = evaluation_fingerprint(encoder_state["pretraining_fingerprint"], inputs)
    path = cache_path(ablations, variant.name, seed)
    cached = load_cached(path, expected)
    if cached is not None:
        return cached, True
    started = time.perf_counter()
    model, _ = unpack_encoder(encoder_state)
    outcome = run_protocols(
        model,
        variant.pretrain,
        load_splits(feature_patches),
        len(class_names),
        SupervisedConfig.from_params(params["supervised"]),
        subset_amounts=amounts,
        subset_unit=unit,
        subset_seed=subset_seed,
        array=ArraySymmetries.of(encoder_geometry(encoder_state)),
        batchnorm=batchnorm_mode(params),
    )
    splits = {}
    for split, clips in outcome.clips.items():
        clips = dict(clips)
        if split == "test":
            clips.update({subset_protocol(a, unit): outcome.subsets[a] for a in amounts})
        protocols = [p for p in (*RESULT_PROTOCOLS, *(subset_protocol(a, unit) for a in amounts)) if p in clips]
        metrics = {f"{p}_{m}": v for p in protocols for m, v in clip_scores(clips[p]).items()}
        splits[split] = {"metrics": metrics, "clips": {p: clip_records(clips[p]) for p in protocols}}
    result = {
        "seed": int(seed),
        "splits": splits,
        "validation": outcome.validation,
        "wall_s": {
            "pretraining": float(encoder_state.get("pretraining_s", 0.0)),
            "evaluation": time.perf_counter() - started,
        },
        "fingerprint": expected,
    }
    save_cached(path, result)
    return result, False


def aggregate_seeds(variant: Variant, per_seed: list[dict[str, Any]], n_resamples: int = 1000) -> dict[str, Any]:
    """One variant's result over its seeds.

    ``metrics`` (test) and ``splits[split]`` hold, for every column of :data:`RESULT_COLUMNS`, the
    mean over seeds, and ``<column>_std`` (standard deviation over seeds, ddof 1; NaN for one seed),
    ``<column>_ci_low`` / ``<column>_ci_high`` (95 % bootstrap interval over clips of the seed mean).
    ``seeds`` lists each seed's own test metrics. Subset fine-tuning (test only) is aggregated as
    its own protocols (:func:`subset_protocol`).
    """
    splits: dict[str, dict[str, float]] = {}
    extra = [p for p in per_seed[0]["splits"]["test"]["clips"] if p not in RESULT_PROTOCOLS]
    for split in per_seed[0]["splits"]:
        runs = [result["splits"][split] for result in per_seed]
        summary: dict[str, float] = {}
        for protocol in (*RESULT_PROTOCOLS, *(p for p in extra if p in runs[0]["clips"])):
            frames = [clip_frame(run["clips"][protocol]) for run in runs]
            for metric in ("accuracy", *location_metrics(frames[0])):
                column = f"{protocol}_{metric}"
                values = np.array([run["metrics"][column] for run in runs], dtype=np.float64)
                summary[column] = float(np.mean(values))
                summary[f"{column}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
                low, high = bootstrap_interval(frames, metric, n_resamples)
                summary[f"{column}_ci_low"], summary[f"{column}_ci_high"] = low, high
        splits[split] = summary
    return {
        "variant": variant.name,
        "settings": variant.settings(),
        "seeds": [int(r["seed"]) for r in per_seed],
        "metrics": splits["test"],
        "splits": splits,
        "per_seed": [{"seed": int(r["seed"]), **r["splits"]["test"]["metrics"]} for r in per_seed],
        "validation": {str(r["seed"]): r["validation"] for r in per_seed},
        "wall_s": {k: float(sum(r["wall_s"][k] for r in per_seed)) for k in ("pretraining", "evaluation")},
    }
