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
from mc_simclr.pipelines.ablations.nodes import build_sweep_report, evaluate_variant, pretrain_variant
from mc_simclr.pipelines.ablations.variants import variant_names

SHARED_INPUTS = {"spatial_audio", "feature_patches", "class_names"}
SHARED_PARAMETERS = {
    "params:features",
    "params:pretraining",
    "params:encoder",
    "params:augmentations",
    "params:audio",
    "params:evaluation",
    "params:ablations",
}


def _bind(func, name: str):
    """``func`` with the variant's name bound, keeping the function's name for Kedro and kedro-viz."""
    return functools.update_wrapper(functools.partial(func, name=name), func)


def template(name: str) -> Pipeline:
    """Pretrain one variant's encoder, then evaluate it (un-namespaced dataset names)."""
    return Pipeline(
        [
            Node(
                _bind(pretrain_variant, name),
                inputs=[
                    "spatial_audio",
                    "params:features",
                    "params:pretraining",
                    "params:encoder",
                    "params:augmentations",
                    "params:audio",
                    "params:evaluation",
                    "params:ablations",
                ],
                outputs="encoder",
                name="pretrain_variant",
            ),
            Node(
                _bind(evaluate_variant, name),
                inputs=["encoder", "feature_patches", "class_names", "params:evaluation", "params:ablations"],
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
        build_sweep_report,
        inputs=["params:ablations", *[f"ablations.{name}.results" for name in names]],
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
