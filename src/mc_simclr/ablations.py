"""Ablation variants of MC-SimCLR (the paper's Table 1 and Table 2) and the sweep's tables.

A *variant* is a named change to the pretraining configuration: which of the four augmentations
are on (ChannelSwap ``cs``, Mixup ``mu``, RandomResizedCrop ``rrc``, ChannelDrop ``cd``), the
ChannelDrop probability, optional overrides of the ``pretraining`` / ``encoder`` blocks, or no
pretraining at all (``random``). Variants come from the ``ablations.variants`` parameter block;
this module validates them, turns one into the parameter blocks that
:func:`~mc_simclr.training.pretrain_from_params` takes, evaluates a variant's encoder with a cache
keyed by fingerprint (so an interrupted sweep resumes without redoing finished variants) and
assembles the sweep tables and plot. Kedro- and MLflow-free: the ablations pipeline logs to MLflow.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from mc_simclr.augment import AUGMENTATIONS
from mc_simclr.config import check_keys
from mc_simclr.evaluation import PROTOCOLS, SupervisedConfig, load_splits, run_protocols
from mc_simclr.reporting import metric_headers, results_table, to_markdown
from mc_simclr.training import unpack_encoder
from mc_simclr.utils import deep_merge, fingerprint, write_text_atomic

SHORT_NAMES = {"cs": "channel_swap", "mu": "mixup", "rrc": "random_resized_crop", "cd": "channel_drop"}
TABLES = ("table1", "table2")
VARIANT_KEYS = {"label", "pretrain", "augmentations", "channel_drop_p", "tables", "pretraining", "encoder"}
# the columns of reporting.results_table, in its order
METRIC_COLUMNS = tuple(f"{p}_{m}" for p in PROTOCOLS for m in ("accuracy", "azimuth_error"))


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

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any] | None) -> Variant:
        where = f"ablations.variants.{name}"
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
        for block in ("pretraining", "encoder"):
            if not isinstance(params.get(block, {}) or {}, dict):
                raise ValueError(f"{where}.{block}: expected a mapping of overrides, got {params[block]!r}")
        return cls(
            name=name,
            label=str(params.get("label", name)),
            pretrain=pretrain,
            augmentations=tuple(dict.fromkeys(augmentations)),
            channel_drop_p=None if p is None else float(p),
            tables=tables,
            pretraining=dict(params.get("pretraining", {}) or {}),
            encoder=dict(params.get("encoder", {}) or {}),
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
        }


def parse_variants(ablations: dict[str, Any]) -> list[Variant]:
    """The variants of the ``ablations`` parameter block, in their YAML order."""
    variants = (ablations or {}).get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ValueError("ablations.variants: expected a non-empty mapping of variant name -> settings")
    return [Variant.from_params(str(name), params) for name, params in variants.items()]


def variant_blocks(
    variant: Variant,
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    ablations: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ``pretraining``, ``encoder`` and ``augmentations`` blocks of one variant.

    Order of precedence: the project's blocks < ``ablations.pretraining`` (shared by every
    variant) < the variant's own overrides. Each variant checkpoints under
    ``ablations.work_dir/<name>/`` so that its training resumes on its own.
    """
    pre = deep_merge(deep_merge(pretraining, ablations.get("pretraining", {}) or {}), variant.pretraining)
    pre["checkpoint_path"] = str(Path(ablations["work_dir"]) / variant.name / "pretraining_checkpoint.pt")
    enc = deep_merge(encoder, variant.encoder)
    return pre, enc, variant.augmentation_params(augmentations)


# --------------------------------------------------------------------------------------------
# Evaluation cache: one JSON per variant, valid while its fingerprint matches
# --------------------------------------------------------------------------------------------
def cache_path(ablations: dict[str, Any], name: str) -> Path:
    return Path(ablations["work_dir"]) / name / "evaluation.json"


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


def evaluation_params(evaluation: dict[str, Any], ablations: dict[str, Any]) -> dict[str, Any]:
    """The ``evaluation`` block with ``ablations.evaluation`` merged over it (shorter schedules)."""
    return deep_merge(evaluation, ablations.get("evaluation", {}) or {})


def evaluate_variant_encoder(
    variant: Variant,
    encoder_state: dict[str, Any],
    feature_patches,
    class_names: list[str],
    evaluation: dict[str, Any],
    ablations: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    """Linear probing, k-NN and fine-tuning of one variant's encoder, or its cached result.

    Returns the result (variant, settings, test metrics, validation scores, wall times, fingerprint)
    and whether it came from the cache (same encoder, settings and data).
    """
    params = evaluation_params(evaluation, ablations)
    expected = evaluation_fingerprint(
        encoder_state["pretraining_fingerprint"],
        {
            "supervised": params["supervised"],
            "feature_shards": sorted(feature_patches.shard_ids),
            "classes": list(class_names),
        },
    )
    path = cache_path(ablations, variant.name)
    cached = load_cached(path, expected)
    if cached is not None:
        return cached, True
    started = time.perf_counter()
    model, extractor = unpack_encoder(encoder_state)
    outcome = run_protocols(
        model,
        variant.pretrain,
        load_splits(feature_patches),
        len(class_names),
        SupervisedConfig.from_params(params["supervised"]),
        subset_amounts=[],
        n_mics=extractor.n_mics,
    )
    result = {
        "variant": variant.name,
        "settings": variant.settings(),
        "metrics": results_table({variant.name: outcome.clips}).drop(columns="encoder").iloc[0].to_dict(),
        "validation": outcome.validation,
        "wall_s": {
            "pretraining": float(encoder_state.get("pretraining_s", 0.0)),
            "evaluation": time.perf_counter() - started,
        },
        "fingerprint": expected,
    }
    save_cached(path, result)
    return result, False


# --------------------------------------------------------------------------------------------
# Sweep tables and plot
# --------------------------------------------------------------------------------------------
def sweep_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per variant: its settings, the metrics of every protocol and its wall times."""
    records = []
    for result in results:
        record = {"variant": result["variant"], **result["settings"], **result["metrics"]}
        record.update({f"{k}_s": v for k, v in result.get("wall_s", {}).items()})
        record["mlflow_run_id"] = result.get("run_id", "")
        records.append(record)
    return pd.DataFrame.from_records(records)


def table1(frame: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1: one row per augmentation set, linear probing, k-NN and fine-tuning."""
    rows = frame[frame["tables"].str.split(",").map(lambda t: "table1" in t)]
    return rows[["variant", "label", *METRIC_COLUMNS]].reset_index(drop=True)


def table2(frame: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2: fine-tuning (and linear probing) against the ChannelDrop probability."""
    rows = frame[frame["tables"].str.split(",").map(lambda t: "table2" in t)]
    columns = ["variant", "channel_drop_p", *METRIC_COLUMNS]
    return rows[columns].sort_values("channel_drop_p", kind="stable").reset_index(drop=True)


def table_headers(knn_k: int) -> dict[str, str]:
    """Column titles of the sweep tables (the k-NN title follows ``knn_k``)."""
    return {"label": "Pre-training", "channel_drop_p": "p", **metric_headers(knn_k, short=True)}


def tables_markdown(table_1: pd.DataFrame, table_2: pd.DataFrame, title: str, knn_k: int) -> tuple[str, str]:
    """Markdown of both tables, with the paper's column names."""
    headers = table_headers(knn_k)
    one = f"# {title}: Table 1 (augmentations)\n\n" + to_markdown(
        table_1.drop(columns="variant").rename(columns=headers)
    )
    table_2 = table_2.drop(columns="variant").assign(channel_drop_p=table_2["channel_drop_p"].map(lambda p: f"{p:g}"))
    two = f"# {title}: Table 2 (ChannelDrop probability)\n\n" + to_markdown(table_2.rename(columns=headers))
    return one, two


def plot_channel_drop(table_2: pd.DataFrame) -> plt.Figure:
    """Accuracy and azimuth error against the ChannelDrop probability p (fine-tuning and linear probing)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for protocol, name in (("fine_tune", "fine-tuning"), ("linear_probe", "linear probing")):
        axes[0].plot(table_2["channel_drop_p"], table_2[f"{protocol}_accuracy"], marker="o", label=name)
        axes[1].plot(table_2["channel_drop_p"], table_2[f"{protocol}_azimuth_error"], marker="o", label=name)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("azimuth error (°)")
    for ax in axes:
        ax.set_xlabel("ChannelDrop probability p")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Performance against ChannelDrop probability")
    fig.tight_layout()
    return fig


def sweep_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    """``{variant}.{metric}`` for the sweep's MLflow run (the nested runs hold the same values)."""
    metrics = {}
    for record in frame.to_dict("records"):
        for column in METRIC_COLUMNS:
            value = record.get(column)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                metrics[f"{record['variant']}.{column}"] = {"value": float(value), "step": 0}
    return metrics


@dataclass
class SweepReport:
    """The sweep's outputs: every variant, Table 1 and Table 2 (frames and Markdown), the plot, MLflow metrics."""

    variants: pd.DataFrame
    table1: pd.DataFrame
    table1_markdown: str
    table2: pd.DataFrame
    table2_markdown: str
    channel_drop_figure: plt.Figure
    metrics: dict[str, Any]

    @property
    def variant_wall_s(self) -> float:
        """Pretraining and evaluation seconds of all variants together."""
        columns = [c for c in ("pretraining_s", "evaluation_s") if c in self.variants]
        return float(self.variants[columns].to_numpy().sum())


def build_sweep_report(results: list[dict[str, Any]], title: str, knn_k: int) -> SweepReport:
    """Assemble the sweep's tables, plot and metrics from the variants' results."""
    frame = sweep_frame(results)
    one, two = table1(frame), table2(frame)
    markdown_1, markdown_2 = tables_markdown(one, two, title, knn_k)
    return SweepReport(frame, one, markdown_1, two, markdown_2, plot_channel_drop(two), sweep_metrics(frame))
