"""``evaluation`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.evaluation.nodes import (
    build_report,
    evaluate_pretrained,
    evaluate_random_init,
    export_seld_model,
    srp_phat_baseline,
    supervised_azimuth_ceiling,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Encoder + feature patches -> protocols for pretrained and random-init encoders, SRP-PHAT -> report."""
    inputs = ["encoder", "feature_patches", "class_names", "params:evaluation"]
    return Pipeline(
        [
            Node(evaluate_pretrained, inputs=inputs, outputs="pretrained_results", name="evaluate_pretrained"),
            Node(evaluate_random_init, inputs=inputs, outputs="random_init_results", name="evaluate_random_init"),
            Node(
                supervised_azimuth_ceiling,
                inputs=inputs,
                outputs="supervised_azimuth_results",
                name="supervised_azimuth_ceiling",
            ),
            Node(
                export_seld_model,
                inputs=["pretrained_results", "encoder", "class_names"],
                outputs="seld_model",
                name="export_seld_model",
            ),
            Node(
                srp_phat_baseline,
                inputs=["spatial_audio", "feature_index", "params:evaluation", "params:audio"],
                outputs="srp_phat_results",
                name="srp_phat_baseline",
            ),
            Node(
                build_report,
                inputs=[
                    "pretrained_results",
                    "random_init_results",
                    "srp_phat_results",
                    "supervised_azimuth_results",
                    "encoder",
                    "params:evaluation",
                ],
                outputs=[
                    "results_table",
                    "results_markdown",
                    "results_breakdown",
                    "subset_results",
                    "subset_plot",
                    "embedding_plot",
                    "evaluation_metrics",
                ],
                name="build_report",
            ),
        ]
    )
