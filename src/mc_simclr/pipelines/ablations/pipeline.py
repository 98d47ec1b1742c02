"""The sweeps (``ablations``; ``seeds``): one pretraining + evaluation template, instantiated per variant.

The variants are read from the ``<sweep>.variants`` parameter block when the pipeline is created
(:func:`mc_simclr.pipelines.ablations.variants.variant_sources`), so adding a variant is a YAML edit.
Variant ``cs`` of the ablations becomes the namespace ``ablations.cs`` with the datasets
``ablations.cs.encoder`` and ``ablations.cs.results`` (dataset factories in the catalog); the
simulated audio and feature patches are shared inputs, computed once by the other pipelines. Each
variant runs every seed of ``<sweep>.seeds``.
"""

from __future__ import annotations

import functools

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines import data_simulation, feature_extraction
from mc_simclr.pipelines.ablations.nodes import (
    build_seed_summary,
    build_sweep_tables,
    evaluate_variant,
    pretrain_variant,
)
from mc_simclr.pipelines.ablations.variants import variant_sources
from mc_simclr.pipelines.pretraining.pipeline import PRETRAINING_INPUTS

#: Datasets every variant shares (written once by data_simulation and feature_extraction).
SHARED_INPUTS = {"spatial_audio", "feature_patches", "class_names"}
SWEEPS = ("ablations", "seeds")


def pretrain_inputs(sweep: str) -> list[str]:
    """Inputs of a variant's pretraining node: the pretraining node's, then evaluation and the sweep block."""
    return [*PRETRAINING_INPUTS, "params:evaluation", f"params:{sweep}"]


def evaluate_inputs(sweep: str) -> list[str]:
    return ["encoder", "feature_patches", "class_names", "params:evaluation", f"params:{sweep}"]


def shared_parameters(sweep: str) -> set[str]:
    """Parameters stay un-namespaced: every variant reads the project's blocks and merges its overrides."""
    return {name for name in pretrain_inputs(sweep) + evaluate_inputs(sweep) if name.startswith("params:")}


def _bind(func, name: str, sweep: str):
    """``func`` with the variant and sweep bound, keeping the function's name for Kedro and kedro-viz."""
    return functools.update_wrapper(functools.partial(func, name=name, sweep=sweep), func)


def template(name: str, sweep: str = "ablations", encoder_from: str | None = None) -> Pipeline:
    """Pretrain one variant's encoders (every seed), then evaluate them (un-namespaced dataset names).

    A variant with ``encoder_from`` has only the evaluation node; :func:`sweep_pipeline` maps its
    ``encoder`` input to the other variant's.
    """
    evaluate = Node(_bind(evaluate_variant, name, sweep), evaluate_inputs(sweep), "results", name="evaluate_variant")
    if encoder_from:
        return Pipeline([evaluate])
    pretrain = Node(_bind(pretrain_variant, name, sweep), pretrain_inputs(sweep), "encoder", name="pretrain_variant")
    return Pipeline([pretrain, evaluate])


#: The report node of each sweep: its function and its outputs (below the sweep's namespace).
REPORTS = {
    "ablations": (
        build_sweep_tables,
        [
            "variants_table",
            "summary",
            "summary_markdown",
            "table1",
            "table1_markdown",
            "table2",
            "table2_markdown",
            "channel_drop_plot",
            "sweep_metrics",
        ],
    ),
    "seeds": (build_seed_summary, ["variants_table", "summary", "summary_markdown", "sweep_metrics"]),
}


def sweep_pipeline(sweep: str, variants: list[str] | dict[str, str | None] | None = None) -> Pipeline:
    """Simulation and features (shared), every variant's namespaced template, then the sweep's report.

    ``variants`` (default: the project's ``<sweep>.variants``) are names of variants that train their
    own encoders, or a mapping name -> the variant whose encoders it evaluates (None: its own).
    Both shared pipelines skip finished shards, so running them first costs little once they are
    done, and the sweep also runs on a fresh checkout. ``--namespaces=<sweep>.<name>`` leaves them
    out (their outputs must then exist).
    """
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; expected one of {SWEEPS}")
    if variants is None:
        sources = variant_sources(sweep=sweep)
    else:
        sources = dict(variants) if isinstance(variants, dict) else dict.fromkeys(variants)
    names = list(sources)
    if not names:
        return Pipeline([])
    per_variant = []
    for name, source in sources.items():
        nodes = template(name, sweep, source)
        used = nodes.inputs()
        inputs = {dataset: dataset for dataset in SHARED_INPUTS & used}
        if source:  # the encoders of another variant
            inputs["encoder"] = f"{sweep}.{source}.encoder"
        per_variant.append(
            Pipeline(nodes, namespace=f"{sweep}.{name}", inputs=inputs, parameters=shared_parameters(sweep) & used)
        )
    function, outputs = REPORTS[sweep]
    report = Node(
        function,
        inputs=[f"params:{sweep}", "params:evaluation", *[f"{sweep}.{name}.results" for name in names]],
        outputs=[f"{sweep}.{output}" for output in outputs],
        name="build_sweep_report",
        namespace=sweep,
    )
    shared = data_simulation.create_pipeline() + feature_extraction.create_pipeline()
    return shared + Pipeline([*per_variant, report])


def create_pipeline(variants: list[str] | dict[str, str | None] | None = None, **kwargs) -> Pipeline:
    """The ablation sweep: the paper's Table 1 and Table 2."""
    return sweep_pipeline("ablations", variants)
