"""``ablations`` pipeline: one pretraining + evaluation template, instantiated per variant.

The variants are read from the ``ablations.variants`` parameter block when the pipeline is
created (:func:`mc_simclr.pipelines.ablations.variants.variant_names`), so adding a variant is a
YAML edit. Variant ``cs`` becomes the namespace ``ablations.cs`` with the datasets
``ablations.cs.encoder`` and ``ablations.cs.results`` (dataset factories in the catalog); the
simulated audio and feature patches are shared inputs, computed once by the other pipelines.
"""

from __future__ import annotations

import functools

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines import data_simulation, feature_extraction
from mc_simclr.pipelines.ablations.nodes import build_sweep_tables, evaluate_variant, pretrain_variant
from mc_simclr.pipelines.ablations.variants import variant_names
from mc_simclr.pipelines.pretraining.pipeline import PRETRAINING_INPUTS

#: Datasets every variant shares (written once by data_simulation and feature_extraction).
SHARED_INPUTS = {"spatial_audio", "feature_patches", "class_names"}
PRETRAIN_VARIANT_INPUTS = [*PRETRAINING_INPUTS, "params:evaluation", "params:ablations"]
EVALUATE_VARIANT_INPUTS = ["encoder", "feature_patches", "class_names", "params:evaluation", "params:ablations"]
#: Parameters stay un-namespaced: every variant reads the project's blocks and merges its overrides.
SHARED_PARAMETERS = {name for name in PRETRAIN_VARIANT_INPUTS + EVALUATE_VARIANT_INPUTS if name.startswith("params:")}


def _bind(func, name: str):
    """``func`` with the variant's name bound, keeping the function's name for Kedro and kedro-viz."""
    return functools.update_wrapper(functools.partial(func, name=name), func)


def template(name: str) -> Pipeline:
    """Pretrain one variant's encoder, then evaluate it (un-namespaced dataset names)."""
    return Pipeline(
        [
            Node(
                _bind(pretrain_variant, name),
                inputs=PRETRAIN_VARIANT_INPUTS,
                outputs="encoder",
                name="pretrain_variant",
            ),
            Node(
                _bind(evaluate_variant, name),
                inputs=EVALUATE_VARIANT_INPUTS,
                outputs="results",
                name="evaluate_variant",
            ),
        ]
    )


def create_pipeline(variants: list[str] | None = None, **kwargs) -> Pipeline:
    """Simulation and features (shared), every variant's namespaced template, then the sweep report.

    Both shared pipelines skip finished shards, so running them first costs little once they are
    done, and the sweep also runs on a fresh checkout. ``--namespaces=ablations.<name>`` leaves
    them out (their outputs must then exist).
    """
    names = variant_names() if variants is None else list(variants)
    if not names:
        return Pipeline([])
    per_variant = [
        Pipeline(template(name), namespace=f"ablations.{name}", inputs=SHARED_INPUTS, parameters=SHARED_PARAMETERS)
        for name in names
    ]
    report = Node(
        build_sweep_tables,
        inputs=["params:ablations", "params:evaluation", *[f"ablations.{name}.results" for name in names]],
        outputs=[
            "ablations.variants_table",
            "ablations.table1",
            "ablations.table1_markdown",
            "ablations.table2",
            "ablations.table2_markdown",
            "ablations.channel_drop_plot",
            "ablations.sweep_metrics",
        ],
        name="build_sweep_report",
        namespace="ablations",
    )
    shared = data_simulation.create_pipeline() + feature_extraction.create_pipeline()
    return shared + Pipeline([*per_variant, report])
